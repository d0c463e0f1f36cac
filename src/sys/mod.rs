//! The one home of raw system calls: every libc call that needs `unsafe` is made here, behind a
//! safe wrapper, so the rest of the crate reads as plain Rust (mio keeps its platform code behind
//! one `sys` seam the same way).
//!
//! - [`fd`]: sockets and descriptors (`accept4`, `recvfrom`, `sendmsg`, `close` by `syscall(2)`,
//!   `poll`, `sendfile`, socket options, inherited listeners, `fstat`/`lseek`).
//! - [`event`]: `eventfd` counters and the `epoll` set the Python threads wait on.
//! - [`process`]: `fork`, `waitpid`, `kill`, `prctl`, signal masks, identities and privileges,
//!   `umask`, resource limits, standard stream redirection.
//! - [`host`]: the shared anonymous mapping behind the scoreboard, and what the host reports
//!   (`sysconf`, `gethostname`, `ctime_r`, `localtime_r`).
//!
//! Each `unsafe` block says why it is sound in a `// SAFETY:` comment (clippy's
//! `undocumented_unsafe_blocks` denies one without). Nothing here knows about requests, Python or
//! mio; every module above may use it.

pub mod event;
pub mod fd;
pub mod host;
pub mod process;

use std::io;

/// A libc return value as a result: negative is the `errno` error.
fn check(ret: libc::c_long) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        // Non-negative and at most a buffer length (or a descriptor): fits usize.
        Ok(ret as usize)
    }
}

/// A libc `int` result where anything but 0 is failure (`errno` set).
fn check_zero(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
