//! Blocking the stop signals (TERM, INT, QUIT, HUP) around a fork, so a worker never loses one that
//! arrives before it has installed its own handlers.

use std::mem::MaybeUninit;

const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];

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

/// Block the stop signals for the calling thread; returns the previous mask for [`restore`].
pub fn block_stop_signals() -> libc::sigset_t {
    let set = stop_set();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: valid set pointers; pthread_sigmask fills `old`.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr());
        old.assume_init()
    }
}

/// Put back a mask saved by [`block_stop_signals`].
pub fn restore(old: &libc::sigset_t) {
    // SAFETY: a valid, initialised mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// Unblock the stop signals; pending ones are delivered at once.
pub fn unblock_stop_signals() {
    let set = stop_set();
    // SAFETY: a valid, initialised set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}
