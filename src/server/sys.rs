//! The four system calls every request makes (`accept4`, `recvfrom`, `sendmsg`, `close`), made
//! with `syscall(2)` instead of through glibc's wrappers.
//!
//! glibc's wrappers for these are pthread cancellation points: in a process with more than one
//! thread each call is bracketed by `__pthread_enable_asynccancel` and
//! `__pthread_disable_asynccancel`, 2% of a hello worker's CPU in `perf`. rwsgi never cancels a
//! thread, so that bookkeeping buys nothing here. Errors come back the same way (`-1` and
//! `errno`), so [`io::Error::last_os_error`] reads them as before.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

fn check(ret: libc::c_long) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        // Non-negative and at most the buffer length (or a descriptor): fits usize.
        Ok(ret as usize)
    }
}

/// `accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new descriptor, which the caller
/// owns.
pub fn accept4(fd: RawFd) -> io::Result<RawFd> {
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
    check(ret).map(|fd| fd as RawFd)
}

/// `recvfrom(fd, buf, len, 0, NULL, NULL)`: the kernel writes at most `buf.len()` bytes and
/// returns how many.
pub fn recv(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe writable memory the kernel may fill.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            0,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    check(ret)
}

/// `sendmsg` of `bufs` with `MSG_NOSIGNAL` (a peer gone is `EPIPE`, never `SIGPIPE`).
pub fn send_vectored(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec; the kernel only reads through it.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` points at `bufs`, which outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_sendmsg, fd, &msg, libc::MSG_NOSIGNAL) };
    check(ret)
}

/// `close(fd)`. The descriptor is gone afterwards whatever the result (Linux frees it even when
/// close reports an error), so there is nothing to retry.
///
/// # Safety
/// The caller owns `fd` and never uses it again.
pub unsafe fn close(fd: RawFd) {
    // SAFETY: per the contract above.
    unsafe { libc::syscall(libc::SYS_close, fd) };
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
