//! Listening sockets: bind TCP, unix and abstract addresses the way uWSGI users expect (stale unix
//! socket files replaced, `--chmod-socket`, the backlog clamped to `somaxconn` with a warning), and
//! accept with one `accept4` that skips the peer address (nginx sends it in the vars).

use crate::config::SocketSpec;
use crate::sys;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

/// A bound, listening, non-blocking socket.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    spec: SocketSpec,
    /// False for a socket another process keeps open for us (socket activation): at a stop it is
    /// neither drained nor unlinked, its owner keeps it listening.
    ours: bool,
    /// New connects are refused (see [`Listener::refuse_new_connects`]): a unix socket's path
    /// is gone.
    unlinked: std::sync::atomic::AtomicBool,
}

/// A bind that failed, with the address for the message.
#[derive(Debug)]
pub struct BindError(pub String);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BindError {}

/// The kernel's cap on listen backlogs.
fn somaxconn() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The backlog to pass to `listen`: what was asked, clamped to `somaxconn` with a warning (uWSGI
/// refuses to start instead).
pub fn effective_backlog(requested: i32) -> i32 {
    match somaxconn() {
        Some(max) if requested > max => {
            tracing::warn!(
                "listen backlog {requested} is greater than net.core.somaxconn ({max}): using {max}"
            );
            max
        }
        _ => requested,
    }
}

/// Remove a unix socket file left by a server that is gone; refuse if one still answers there or
/// the path is not a socket.
fn clear_stale_socket(path: &Path) -> Result<(), BindError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(BindError(format!(
            "cannot bind {}: the path exists and is not a socket",
            path.display()
        )));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(BindError(format!(
            "cannot bind {}: another server is listening on it",
            path.display()
        )));
    }
    std::fs::remove_file(path).map_err(|e| {
        BindError(format!(
            "cannot remove stale socket {}: {e}",
            path.display()
        ))
    })
}

impl Listener {
    /// Bind and listen. A TCP listener with `defer_secs` > 0 accepts only once data has arrived.
    pub fn bind(
        spec: &SocketSpec,
        backlog: i32,
        chmod: Option<u32>,
        defer_secs: u64,
    ) -> Result<Listener, BindError> {
        let fail = |e: io::Error| BindError(format!("cannot bind {spec}: {e}"));
        let socket = match spec {
            SocketSpec::Tcp(addr) => {
                let s = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), None)
                    .map_err(fail)?;
                s.set_reuse_address(true).map_err(fail)?;
                s.bind(&SockAddr::from(*addr)).map_err(fail)?;
                if defer_secs > 0 {
                    set_defer_accept(&s, defer_secs);
                }
                s
            }
            SocketSpec::Unix(path) => {
                clear_stale_socket(path)?;
                let s = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None).map_err(fail)?;
                s.bind(&SockAddr::unix(path).map_err(fail)?).map_err(fail)?;
                if let Some(mode) = chmod {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                        .map_err(fail)?;
                }
                s
            }
            SocketSpec::Abstract(name) => {
                let s = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None).map_err(fail)?;
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(name.as_bytes());
                let addr = SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes)).map_err(fail)?;
                s.bind(&addr).map_err(fail)?;
                s
            }
        };
        socket.listen(backlog).map_err(fail)?;
        socket.set_nonblocking(true).map_err(fail)?;
        Ok(Listener {
            socket,
            spec: spec.clone(),
            ours: true,
            unlinked: false.into(),
        })
    }

    /// Adopt a listening socket passed to this process (see [`crate::sys::fd::claim_passed`]).
    pub fn inherit(fd: OwnedFd, spec: SocketSpec) -> io::Result<Listener> {
        let socket = Socket::from(fd);
        socket.set_nonblocking(true)?;
        Ok(Listener {
            socket,
            spec,
            ours: true,
            unlinked: false.into(),
        })
    }

    /// Accept one connection without fetching its address; non-blocking and close-on-exec.
    pub fn accept(&self) -> io::Result<sys::fd::Socket> {
        accept_on(self.socket.as_raw_fd())
    }

    /// The listening descriptor.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The address it was bound from.
    pub fn spec(&self) -> &SocketSpec {
        &self.spec
    }

    /// Close the descriptor on exec (a socket passed by systemd comes without the flag).
    pub fn set_cloexec(&self) -> io::Result<()> {
        self.socket.set_cloexec(true)
    }

    /// Mark the descriptor inheritable (for a reload by re-exec).
    pub fn keep_across_exec(&self) -> io::Result<()> {
        sys::fd::keep_across_exec(&self.socket)
    }

    /// Connections waiting in the accept queue (TCP only; `TCP_INFO`'s `tcpi_unacked` on a listener).
    pub fn queue_len(&self) -> u32 {
        if !matches!(self.spec, SocketSpec::Tcp(_)) {
            return 0;
        }
        sys::fd::tcp_unacked(self.fd()).unwrap_or(0)
    }

    /// Mark a socket another process keeps open for us (socket activation): a stop leaves it
    /// listening, with its path, for the next server.
    pub fn owned_elsewhere(mut self) -> Listener {
        self.ours = false;
        self
    }

    /// Whether the socket closes with this server (it is not kept open by another process).
    pub fn ours(&self) -> bool {
        self.ours
    }

    /// At a shutdown, before the backlog is taken: let no new connection in, so taking the
    /// backlog ends and nothing arrives between the last accept and the close (it would be reset).
    /// A unix socket's path is removed (a connect fails at once: nginx tries another upstream); a
    /// TCP socket drops new SYNs (retried a second later, they meet the closed socket and are
    /// refused). Not for a socket owned elsewhere, which stays open for the next server.
    pub fn refuse_new_connects(&self) {
        if !self.ours
            || self
                .unlinked
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        match &self.spec {
            SocketSpec::Unix(path) => match std::fs::remove_file(path) {
                Ok(()) => tracing::info!(
                    "unix socket {} removed: new connects are refused",
                    path.display()
                ),
                Err(e) => tracing::warn!("cannot remove unix socket {}: {e}", path.display()),
            },
            SocketSpec::Tcp(_) => {
                if let Err(e) = sys::fd::drop_new_syns(self.fd()) {
                    tracing::warn!("cannot stop new connects to {}: {e}", self.spec);
                }
            }
            SocketSpec::Abstract(_) => {}
        }
    }

    /// Give up this process's reference to the listening socket: once no process holds one the
    /// kernel refuses new connects (and resets whatever is still queued: take it first). The
    /// descriptor number stays valid, pointing at an unbound socket on which accept fails, so a
    /// thread that still has the number never accepts from anything else.
    pub fn stop_listening(&self) {
        let replaced = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)
            .and_then(|dummy| sys::fd::replace_fd(self.fd(), dummy.as_raw_fd()));
        if let Err(e) = replaced {
            tracing::warn!("cannot close listening socket {}: {e}", self.spec);
        }
    }

    /// Remove the unix socket file (`--vacuum`).
    pub fn vacuum(&self) {
        if let SocketSpec::Unix(path) = &self.spec {
            if self.ours && self.unlinked.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::info!("VACUUM: unix socket {} removed", path.display());
                return;
            }
            match std::fs::remove_file(path) {
                Ok(()) => tracing::info!("VACUUM: unix socket {} removed", path.display()),
                Err(e) => {
                    tracing::warn!("VACUUM: cannot remove unix socket {}: {e}", path.display())
                }
            }
        }
    }
}

/// Accept only once data has arrived (nginx writes the packet right after connecting), as uWSGI does.
fn set_defer_accept(socket: &Socket, secs: u64) {
    if let Err(e) = sys::fd::set_defer_accept(socket.as_raw_fd(), secs) {
        tracing::debug!("TCP_DEFER_ACCEPT not set: {e}");
    }
}

/// Accept one connection from listening socket `fd` without fetching its address; non-blocking
/// and close-on-exec.
pub fn accept_on(fd: RawFd) -> io::Result<sys::fd::Socket> {
    loop {
        match sys::fd::accept4(fd) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
