//! Processes, signals and identities: `fork`, `waitpid`, `kill`, `prctl`, signal masks, the user
//! and group databases, `setuid`/`setgid`, `umask`, resource limits.

use super::{check, check_zero};
use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;

/// The two sides of a fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// This is the new process.
    Child,
    /// This is the parent; the child has this pid.
    Parent(libc::pid_t),
}

/// `fork(2)`.
///
/// # Safety
/// In a process with other threads the child may only do what is sound after a fork there:
/// nothing another thread may have held a lock for at the fork (CPython's fork hooks, which
/// `python::fork` calls around this, make the interpreter such a thing).
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: per the contract above.
    let pid = unsafe { libc::fork() };
    check(pid as libc::c_long).map(|_| match pid {
        0 => Forked::Child,
        pid => Forked::Parent(pid),
    })
}

/// `fork(2)` of a process that has only the calling thread (the master without Python), so the
/// child can do anything. Refused when another thread runs.
pub fn fork_alone() -> io::Result<Forked> {
    if thread_count() != Some(1) {
        return Err(io::Error::other(
            "cannot fork: the process runs more than one thread",
        ));
    }
    // SAFETY: the process is single-threaded, so no lock can be held across the fork.
    unsafe { fork() }
}

/// How many threads this process runs (`/proc/self/task`).
pub fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// `_exit(2)`: leave now, without destructors, atexit handlers or stdio flushes.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// `kill(2)`.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill touches no memory of ours.
    check_zero(unsafe { libc::kill(pid, signal) })
}

/// The parent's pid.
pub fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() }
}

/// The calling thread's kernel id.
pub fn thread_id() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// `prctl(PR_SET_PDEATHSIG, signal)`: this process gets `signal` when its parent dies.
pub fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: prctl with an integer argument; no memory is passed.
    check_zero(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal) })
}

/// One exited child, without waiting (`waitpid(-1, WNOHANG)`): its pid and wait status.
pub fn reap_one() -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: waitpid with a valid status pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Wait for child `pid` to exit; its wait status.
pub fn wait_for(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    // SAFETY: waitpid with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    check(r as libc::c_long).map(|_| status)
}

/// The signals that stop or reload a worker.
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];

/// A thread's signal mask, saved by [`block_stop_signals`].
pub struct SignalMask(libc::sigset_t);

fn stop_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset takes valid signal numbers.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for s in STOP_SIGNALS {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        set.assume_init()
    }
}

/// Block the stop signals (TERM, INT, QUIT, HUP) for the calling thread, around a fork, so a
/// worker never loses one that arrives before it has installed its own handlers; returns the
/// previous mask for [`restore_signals`].
pub fn block_stop_signals() -> SignalMask {
    let set = stop_set();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: valid set pointers; pthread_sigmask fills `old`.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr());
        SignalMask(old.assume_init())
    }
}

/// Put back a mask saved by [`block_stop_signals`].
pub fn restore_signals(old: &SignalMask) {
    // SAFETY: a valid, initialised mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old.0, std::ptr::null_mut()) };
}

/// Unblock the stop signals; pending ones are delivered at once.
pub fn unblock_stop_signals() {
    let set = stop_set();
    // SAFETY: a valid, initialised set.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

/// The open-file limit (`RLIMIT_NOFILE`): soft and hard.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    check_zero(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Set the open-file limit (`RLIMIT_NOFILE`).
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    check_zero(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })
}

/// `umask(2)`: set the file mode creation mask; returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(mask as libc::mode_t) }
}

/// The real user and group ids.
pub fn real_ids() -> (libc::uid_t, libc::gid_t) {
    // SAFETY: these getters have no preconditions and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// The effective user and group ids.
pub fn effective_ids() -> (libc::uid_t, libc::gid_t) {
    // SAFETY: these getters have no preconditions and cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// `setgid(2)`.
pub fn set_gid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: a plain syscall with an integer argument.
    check_zero(unsafe { libc::setgid(gid) })
}

/// `setuid(2)`.
pub fn set_uid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: a plain syscall with an integer argument.
    check_zero(unsafe { libc::setuid(uid) })
}

/// The supplementary groups: `user`'s own (`initgroups`) or, without a user, just `gid`.
pub fn set_groups(user: Option<&CStr>, gid: libc::gid_t) -> io::Result<()> {
    check_zero(match user {
        // SAFETY: a NUL-terminated user name.
        Some(name) => unsafe { libc::initgroups(name.as_ptr(), gid) },
        // SAFETY: one valid gid.
        None => unsafe { libc::setgroups(1, &gid) },
    })
}

/// `chown(2)`; `gid::MAX` leaves the group as it is.
pub fn chown(path: &CStr, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: a NUL-terminated path.
    check_zero(unsafe { libc::chown(path.as_ptr(), uid, gid) })
}

/// A password database entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    /// The user id.
    pub uid: libc::uid_t,
    /// The primary group.
    pub gid: libc::gid_t,
    /// The login name.
    pub name: CString,
}

/// Buffer size for the reentrant database lookups.
const LOOKUP_BUFFER: usize = 16 << 10;

/// Which user to look up.
pub enum UserKey<'a> {
    /// By number.
    Id(libc::uid_t),
    /// By name.
    Name(&'a CStr),
}

/// Look a user up in the password database (`getpwuid_r`/`getpwnam_r`); `None` when absent.
pub fn user_entry(key: UserKey<'_>) -> Option<Passwd> {
    // SAFETY: an all-zero passwd is a valid value (null pointers).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUFFER];
    let r = match key {
        // SAFETY: valid out-pointers and a buffer of the length given.
        UserKey::Id(uid) => unsafe {
            libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found)
        },
        // SAFETY: as above, with a NUL-terminated name.
        UserKey::Name(name) => unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        },
    };
    if r != 0 || found.is_null() {
        return None;
    }
    // SAFETY: the lookup filled `pw`, whose name points into `buf`, still alive here.
    let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_owned();
    Some(Passwd {
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        name,
    })
}

/// Look a group up by name in the group database (`getgrnam_r`); `None` when absent.
pub fn group_id(name: &CStr) -> Option<libc::gid_t> {
    // SAFETY: an all-zero group is a valid value (null pointers).
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUFFER];
    // SAFETY: valid out-pointers, a NUL-terminated name and a buffer of the length given.
    let r = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (r == 0 && !found.is_null()).then_some(gr.gr_gid)
}

/// Show `title` as this process's name: its `comm` (`prctl(PR_SET_NAME)`, 15 bytes, what `top`
/// shows) and its command line (`ps`, `/proc/PID/cmdline`), written over the argv strings as
/// nginx and uWSGI do. A title longer than the original command line is cut to its length.
///
/// Call it while no other thread runs: `std::env::args` reads the same memory.
pub fn set_title(title: &str) -> io::Result<()> {
    let comm: Vec<u8> = title.bytes().filter(|&b| b != 0).take(15).collect();
    let comm = CString::new(comm).map_err(|_| io::Error::other("NUL in the title"))?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes are used).
    check_zero(unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0) })?;
    let (start, end) = argv_area()?;
    let room = end.saturating_sub(start);
    if room < 2 {
        return Ok(());
    }
    let bytes: Vec<u8> = title.bytes().filter(|&b| b != 0).collect();
    let n = bytes.len().min(room - 1);
    let base = start as *mut u8;
    // SAFETY: [start, end) is this process's argv strings area as the kernel reports it: mapped
    // and writable (the initial stack), never freed, and no Rust reference points into it (std
    // copies arguments out when asked). The writes stay inside it.
    unsafe {
        std::ptr::write_bytes(base, 0, room);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), base, n);
    }
    Ok(())
}

/// Where the argv strings lie: fields 48 and 49 (`arg_start`, `arg_end`) of `/proc/self/stat`.
fn argv_area() -> io::Result<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The name (field 2) is in parentheses and may hold spaces: count from after its `)`.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    match (field(48), field(49)) {
        (Some(start), Some(end)) if start > 0 && end > start => Ok((start, end)),
        _ => Err(io::Error::other("no argv area in /proc/self/stat")),
    }
}
