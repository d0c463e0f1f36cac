//! Listening sockets handed to us rather than bound: by systemd's socket activation
//! (`LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`, `sd_listen_fds(3)`), or by the previous image of a
//! master that reloaded by re-exec (`RWSGI_LISTEN_FDS`).
//!
//! Each passed socket is matched to a `--socket` by the address the kernel reports for it
//! (`getsockname`), so the order of `ListenStream=` lines does not matter; with no `--socket` at all,
//! every passed socket is served. A `--socket` nobody passed is bound as usual; a passed socket no
//! `--socket` names is closed with a warning.

use super::LISTEN_FDS_ENV;
use crate::config::SocketSpec;
use crate::server::Listener;
use socket2::{SockAddr, SockRef};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const SD_LISTEN_FDS_START: RawFd = 3;

/// One passed descriptor.
struct Passed {
    fd: RawFd,
    /// systemd's `FileDescriptorName=`.
    name: Option<String>,
    /// systemd keeps it open (socket activation): a stop leaves it listening for the next start.
    elsewhere: bool,
}

/// The `RWSGI_LISTEN_FDS` entry for a socket a reloading master passes on: its fd, with `s` when
/// systemd owns it.
pub fn pass_on(listener: &Listener) -> String {
    let suffix = if listener.ours() { "" } else { "s" };
    format!("{}{suffix}", listener.fd())
}

/// Sockets passed to this process. The variables are removed, so neither workers nor attached
/// daemons see them.
fn passed() -> Vec<Passed> {
    if let Some(list) = std::env::var_os(LISTEN_FDS_ENV) {
        std::env::remove_var(LISTEN_FDS_ENV);
        return list
            .to_string_lossy()
            .split(',')
            .filter_map(|f| {
                let elsewhere = f.ends_with('s');
                let fd = f.trim_end_matches('s').parse().ok()?;
                Some(Passed {
                    fd,
                    name: None,
                    elsewhere,
                })
            })
            .collect();
    }
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Vec::new();
    };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        tracing::warn!("LISTEN_FDS is set for pid {pid}, not us: ignoring it");
        return Vec::new();
    }
    let count: RawFd = count.parse().unwrap_or(0);
    let mut names = names.split(':').map(str::to_string);
    (SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + count)
        .map(|fd| Passed {
            fd,
            name: names.next().filter(|n| !n.is_empty()),
            elsewhere: true,
        })
        .collect()
}

/// The address a passed socket is bound to.
fn address_of(fd: &OwnedFd) -> std::io::Result<SockAddr> {
    SockRef::from(fd).local_addr()
}

/// What a kernel address reads as in `--socket` spelling.
fn spec_of(addr: &SockAddr) -> Option<SocketSpec> {
    if let Some(inet) = addr.as_socket() {
        return Some(SocketSpec::Tcp(inet));
    }
    if let Some(path) = addr.as_pathname() {
        return Some(SocketSpec::Unix(path.to_path_buf()));
    }
    addr.as_abstract_namespace()
        .map(|name| SocketSpec::Abstract(String::from_utf8_lossy(name).into_owned()))
}

/// Whether a passed socket at `got` is the one `--socket` asks for as `want`.
fn same_address(want: &SocketSpec, got: &SocketSpec) -> bool {
    match (want, got) {
        (SocketSpec::Tcp(w), SocketSpec::Tcp(g)) => {
            w == g || (w.port() == g.port() && w.ip().is_unspecified() && g.ip().is_unspecified())
        }
        (SocketSpec::Unix(w), SocketSpec::Unix(g)) => {
            w == g
                || matches!((std::fs::metadata(w), std::fs::metadata(g)),
                    (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino())
        }
        (SocketSpec::Abstract(w), SocketSpec::Abstract(g)) => w == g,
        _ => false,
    }
}

/// Adopt the passed sockets for `wanted` (the `--socket` list). Returns one entry per wanted
/// socket (`None`: not passed, bind it) and, when `wanted` is empty, every passed socket. `speaks`
/// names the protocol of wanted socket `i` for its log line.
pub fn adopt(
    wanted: &[SocketSpec],
    speaks: &dyn Fn(usize) -> &'static str,
) -> Result<(Vec<Option<Listener>>, Vec<Listener>), String> {
    let mut matched: Vec<Option<Listener>> = wanted.iter().map(|_| None).collect();
    let mut alone = Vec::new();
    for Passed {
        fd,
        name,
        elsewhere,
    } in passed()
    {
        let owned = crate::sys::fd::claim_passed(fd)
            .map_err(|e| format!("cannot adopt inherited socket fd {fd}: {e}"))?;
        let spec = address_of(&owned)
            .ok()
            .as_ref()
            .and_then(spec_of)
            .ok_or_else(|| format!("inherited fd {fd} is not a listening socket"))?;
        let label = name.map(|n| format!(" ({n})")).unwrap_or_default();
        let slot = wanted
            .iter()
            .position(|w| same_address(w, &spec))
            .filter(|&i| matched[i].is_none());
        if slot.is_none() && !wanted.is_empty() {
            tracing::warn!(
                "inherited socket {spec}{label} fd {fd} matches no --socket: closing it"
            );
            drop(owned);
            continue;
        }
        let listener = Listener::inherit(owned, spec.clone())
            .map_err(|e| format!("cannot adopt inherited socket fd {fd}: {e}"))?;
        listener
            .set_cloexec()
            .map_err(|e| format!("inherited socket fd {fd}: {e}"))?;
        let listener = if elsewhere {
            listener.owned_elsewhere()
        } else {
            listener
        };
        match slot {
            Some(i) => {
                tracing::info!("{} socket {i} inherited {spec}{label} fd {fd}", speaks(i));
                matched[i] = Some(listener);
            }
            None => {
                tracing::info!(
                    "uwsgi socket {} inherited {spec}{label} fd {fd}",
                    alone.len()
                );
                alone.push(listener);
            }
        }
    }
    Ok((matched, alone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_addresses_match_exactly_or_both_wildcard() {
        let spec = |s: &str| SocketSpec::parse(s).unwrap();
        assert!(same_address(
            &spec("127.0.0.1:3031"),
            &spec("127.0.0.1:3031")
        ));
        assert!(!same_address(
            &spec("127.0.0.1:3031"),
            &spec("127.0.0.1:3032")
        ));
        assert!(same_address(&spec(":3031"), &spec("[::]:3031")));
        assert!(!same_address(&spec(":3031"), &spec("127.0.0.1:3031")));
        assert!(same_address(&spec("@x"), &spec("@x")));
        assert!(!same_address(&spec("/tmp/a.sock"), &spec("@x")));
    }
}
