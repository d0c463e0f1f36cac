//! Sockets and other descriptors.
//!
//! The four system calls every request makes (`accept4`, `recvfrom`, `sendmsg`, `close`) are made
//! with `syscall(2)` instead of through glibc's wrappers: those are pthread cancellation points,
//! and in a process with more than one thread each call is bracketed by
//! `__pthread_enable_asynccancel` and `__pthread_disable_asynccancel`, 2% of a hello worker's CPU
//! in `perf`. rwsgi never cancels a thread, so that bookkeeping buys nothing here. Errors come back
//! the same way (`-1` and `errno`), so [`io::Error::last_os_error`] reads them as before.

use super::{check, check_zero};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An accepted stream socket (TCP or unix), closed with a raw `close(2)` when dropped.
#[derive(Debug)]
pub struct Socket {
    fd: RawFd,
}

/// What [`Socket::wait`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Bytes to read, or end of stream.
    Readable,
    /// Room in the send buffer.
    Writable,
}

/// `accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new connection, non-blocking and
/// close-on-exec, without its address.
pub fn accept4(fd: RawFd) -> io::Result<Socket> {
    // SAFETY: null address pointers are allowed; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_accept4,
            fd,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    // The kernel returned a new descriptor nobody else owns.
    check(ret).map(|fd| Socket { fd: fd as RawFd })
}

impl std::os::fd::AsFd for Socket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor stays open as long as this Socket: only its Drop closes it.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) }
    }
}

impl Socket {
    /// The peer's address (`None` on a unix socket, or once the peer is gone).
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        socket2::SockRef::from(self).peer_addr().ok()?.as_socket()
    }

    /// The local address the peer connected to (`None` on a unix socket).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        socket2::SockRef::from(self).local_addr().ok()?.as_socket()
    }

    /// Take ownership of an open socket (a connection accepted with std or socket2).
    pub fn from_owned(fd: OwnedFd) -> Socket {
        Socket {
            fd: std::os::fd::IntoRawFd::into_raw_fd(fd),
        }
    }

    /// The descriptor (for `fileno()` and epoll registration); still owned by this socket.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// `recvfrom(fd, buf, len, 0, NULL, NULL)`: the kernel writes at most `buf.len()` bytes and
    /// returns how many; those first bytes of `buf` are initialised afterwards.
    pub fn recv_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        // SAFETY: the pointer and length describe writable memory the kernel may fill.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_recvfrom,
                self.fd,
                buf.as_mut_ptr(),
                buf.len(),
                0,
                std::ptr::null_mut::<libc::sockaddr>(),
                std::ptr::null_mut::<libc::socklen_t>(),
            )
        };
        check(ret)
    }

    /// Receive at most `max` bytes onto the end of `buf`, without zeroing the room first; how
    /// many arrived.
    pub fn recv_append(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        buf.reserve(max);
        let start = buf.len();
        let n = self.recv_uninit(&mut buf.spare_capacity_mut()[..max])?;
        // SAFETY: the kernel wrote the `n <= max` bytes it reported, right after the `start`
        // initialised ones, inside the capacity reserved above.
        unsafe { buf.set_len(start + n) };
        Ok(n)
    }

    /// [`Socket::recv_uninit`] into initialised memory.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the kernel writes only
        // initialised bytes, so `buf` stays initialised.
        let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.recv_uninit(buf)
    }

    /// `sendmsg` of `bufs` with `MSG_NOSIGNAL` (a peer gone is `EPIPE`, never `SIGPIPE`).
    pub fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.sendmsg(bufs, libc::MSG_NOSIGNAL)
    }

    /// [`Socket::send`] with `MSG_MORE`: more follows at once (a file's bytes after its response
    /// head), so TCP sends them together instead of the head alone, which Nagle's algorithm and
    /// the peer's delayed ACK would hold up for tens of milliseconds.
    pub fn send_more(&self, buf: &[u8]) -> io::Result<usize> {
        self.sendmsg(&[IoSlice::new(buf)], libc::MSG_NOSIGNAL | libc::MSG_MORE)
    }

    fn sendmsg(&self, bufs: &[IoSlice<'_>], flags: libc::c_int) -> io::Result<usize> {
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec; the kernel only reads through it.
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        // SAFETY: `msg` points at `bufs`, which outlive the call.
        let ret = unsafe { libc::syscall(libc::SYS_sendmsg, self.fd, &msg, flags) };
        check(ret)
    }

    /// `send` of one buffer (see [`Socket::send_vectored`]).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_vectored(&[IoSlice::new(buf)])
    }

    /// `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: shutdown on our own descriptor; no memory is passed.
        check_zero(unsafe { libc::shutdown(self.fd, how) })
    }

    /// `SO_LINGER` with a zero timeout: the close sends a reset instead of a FIN.
    pub fn set_linger_zero(&self) -> io::Result<()> {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        setsockopt(self.fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger)
    }

    /// `TCP_NODELAY`: each write leaves at once instead of waiting, under Nagle's algorithm, for
    /// the peer to acknowledge the previous one (which a client may delay by 40 ms). Fails with
    /// `EOPNOTSUPP` on a unix socket.
    pub fn set_nodelay(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        setsockopt(self.fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &on)
    }

    /// Wait until the socket is ready, up to `timeout`; false when the time ran out. A signal
    /// interrupting the wait returns `Interrupted`.
    pub fn wait(&self, readiness: Readiness, timeout: Duration) -> io::Result<bool> {
        let events = match readiness {
            Readiness::Readable => libc::POLLIN,
            Readiness::Writable => libc::POLLOUT,
        };
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        check(n as libc::c_long).map(|n| n > 0)
    }

    /// `sendfile(2)` of up to `count` bytes of `file` from `*offset`, which moves past what was
    /// sent; returns the bytes sent (0 at the file's end).
    pub fn sendfile(&self, file: RawFd, offset: &mut u64, count: usize) -> io::Result<usize> {
        let mut off = libc::off_t::try_from(*offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
        // SAFETY: both descriptors are plain integers to the kernel (a closed one is EBADF);
        // `off` is a valid out-pointer for the call.
        let n = unsafe { libc::sendfile(self.fd, file, &mut off, count) };
        let n = check(n as libc::c_long)?;
        *offset += n as u64;
        Ok(n)
    }
}

impl Drop for Socket {
    /// `close(fd)` by `syscall(2)`. The descriptor is gone afterwards whatever the result (Linux
    /// frees it even when close reports an error), so there is nothing to retry.
    fn drop(&mut self) {
        // SAFETY: the descriptor is this Socket's alone and is never used after this.
        unsafe { libc::syscall(libc::SYS_close, self.fd) };
    }
}

/// `setsockopt` of a plain-data option value.
fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, which the kernel only reads.
    check_zero(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

/// `TCP_DEFER_ACCEPT`: the kernel completes `accept` only once data arrived (or `secs` passed).
pub fn set_defer_accept(fd: RawFd, secs: u64) -> io::Result<()> {
    let secs = libc::c_int::try_from(secs.max(1)).unwrap_or(libc::c_int::MAX);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, &secs)
}

/// Connections waiting in a TCP listener's accept queue (`TCP_INFO`'s `tcpi_unacked`).
pub fn tcp_unacked(fd: RawFd) -> io::Result<u32> {
    // SAFETY: tcp_info is plain data: all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel fills at most `len` bytes of `info` and updates `len`.
    check_zero(unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    })?;
    Ok(info.tcpi_unacked)
}

/// Clear `FD_CLOEXEC`: the descriptor survives an `exec` (a reload passes listeners on).
pub fn keep_across_exec(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: fcntl on an open descriptor the caller owns; no memory is passed.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
    check(r as libc::c_long).map(drop)
}

/// Descriptors already claimed by [`claim_passed`].
static CLAIMED: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());

/// Own a descriptor that was passed to this process open at start-up (systemd's `LISTEN_FDS`, or
/// a reloading master's `RWSGI_LISTEN_FDS`): closed when the result is dropped. Each number can be
/// claimed once; 0-2 (the standard streams) and numbers that are not open are refused.
pub fn claim_passed(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a standard stream is not a passed socket",
        ));
    }
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    if claimed.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "descriptor already claimed",
        ));
    }
    // SAFETY: F_GETFD only asks whether the descriptor is open; no memory is passed.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    claimed.push(fd);
    // SAFETY: the descriptor is open, was passed to this process before anything in it could
    // open one under that number (the caller takes it from the environment at start-up), and is
    // claimed once (checked above), so this is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The size of the file behind `fd`, when it is a regular file.
pub fn regular_file_size(fd: RawFd) -> Option<u64> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the buffer when it returns 0; a closed descriptor is EBADF.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    if (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return None;
    }
    u64::try_from(st.st_size).ok()
}

/// The file position of `fd`.
pub fn file_position(fd: RawFd) -> Option<u64> {
    // SAFETY: lseek by 0 from the current position only reads it; no memory is passed.
    let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    u64::try_from(pos).ok()
}

/// Wait up to `timeout` until one of `fds` is readable; the indices of those that are (empty when
/// the time ran out or a signal interrupted the wait).
pub fn poll_readable(fds: &[RawFd], timeout: Duration) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfds` is a valid array of pollfd for the call.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    match check(n as libc::c_long) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Vec::new()),
        Err(e) => Err(e),
        Ok(_) => Ok(pfds
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents != 0)
            .map(|(i, _)| i)
            .collect()),
    }
}

/// Point standard descriptor `target` (1 or 2) at `file` (`dup2`).
pub fn redirect(file: &impl AsRawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 onto a standard stream: the old one is closed atomically by the kernel; Rust
    // code holds no ownership of descriptors 1 and 2 beyond std's (which stays valid).
    let r = unsafe { libc::dup2(file.as_raw_fd(), target) };
    check(r as libc::c_long).map(drop)
}

/// `pipe2(2)` with `O_CLOEXEC`: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array.
    check_zero(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `mkfifo(3)`: make a named pipe at `path`.
pub fn mkfifo(path: &std::path::Path, mode: libc::mode_t) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the FIFO path"))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    check_zero(unsafe { libc::mkfifo(c.as_ptr(), mode) })
}

/// Point descriptor `target` at what `source` refers to (`dup3` with `O_CLOEXEC`): whatever
/// `target` referred to loses this reference in one step, while the number stays taken, so a
/// thread still holding it can never reach a descriptor opened later under the same number.
pub fn replace_fd(target: RawFd, source: RawFd) -> io::Result<()> {
    // SAFETY: dup3 only touches this process's descriptor table; `target` stays open (now a
    // duplicate of `source`), so whoever owns it still closes it exactly once.
    let ret = unsafe { libc::dup3(source, target, libc::O_CLOEXEC) };
    check(ret as libc::c_long).map(|_| ())
}

/// Attach a classic BPF filter to listening TCP socket `fd` that drops every segment with SYN set:
/// no new connection starts (the client's SYN goes unanswered and is retried a second later, when
/// the socket is closed and refuses it), while handshakes already under way and the connections
/// queued in the backlog go on.
pub fn drop_new_syns(fd: RawFd) -> io::Result<()> {
    // A TCP socket's filter sees the segment from its TCP header: byte 13 holds the flags.
    let code = |c: u32| c as u16;
    let mut program = [
        // A = the flags byte.
        libc::sock_filter {
            code: code(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS),
            jt: 0,
            jf: 0,
            k: 13,
        },
        // SYN set: next instruction (drop); else skip it (keep).
        libc::sock_filter {
            code: code(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K),
            jt: 0,
            jf: 1,
            k: 0x02,
        },
        libc::sock_filter {
            code: code(libc::BPF_RET | libc::BPF_K),
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: code(libc::BPF_RET | libc::BPF_K),
            jt: 0,
            jf: 0,
            k: u32::MAX,
        },
    ];
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies the program.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    check(ret as libc::c_long).map(|_| ())
}
