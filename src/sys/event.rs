//! `eventfd` counters and the `epoll` set the Python threads of a worker wait on (the event loop
//! has its own, behind mio).

use super::check;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An eventfd: a counter a thread can wait on with epoll.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new, non-blocking, close-on-exec eventfd at 0 (not readable).
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd with valid flags; no memory is passed.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        let fd = check(fd as libc::c_long)? as RawFd;
        // SAFETY: a new descriptor nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Make it readable (until [`EventFd::clear`]).
    pub fn poke(&self) {
        let one: u64 = 1;
        // SAFETY: an 8-byte write from a valid u64 to our eventfd. It can only fail if the counter
        // is about to overflow, and then it is readable anyway.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    /// Make it unreadable again.
    pub fn clear(&self) {
        let mut value: u64 = 0;
        // SAFETY: an 8-byte read into a valid u64; EAGAIN (already clear) is fine.
        unsafe { libc::read(self.fd(), (&mut value as *mut u64).cast(), 8) };
    }

    /// The descriptor, for an epoll set.
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// An epoll set whose entries each carry a number, reported back when they are ready.
#[derive(Debug)]
pub struct Epoll(OwnedFd);

/// Most readiness events one [`Epoll::wait`] reports: enough that a worker holding many kept-alive
/// connections learns of a whole round of their next requests in one call.
const MAX_EVENTS: usize = 64;

/// What one [`Epoll::wait`] found: the numbers of the ready entries.
pub struct Ready {
    events: [libc::epoll_event; MAX_EVENTS],
    count: usize,
}

impl Ready {
    /// The numbers the ready entries were added with.
    pub fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        // Copied out: the kernel's struct is packed on x86-64.
        self.events[..self.count].iter().map(|e| e.u64)
    }
}

impl Epoll {
    /// A new close-on-exec epoll set.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 with a valid flag; no memory is passed.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let fd = check(fd as libc::c_long)? as RawFd;
        // SAFETY: a new descriptor nothing else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watch `fd` for readability, reported as `token`. With `exclusive` (`EPOLLEXCLUSIVE`), one
    /// event wakes one of the epoll sets that watch the descriptor, not all of them.
    pub fn add_readable(&self, fd: RawFd, token: u64, exclusive: bool) -> io::Result<()> {
        let mut events = libc::EPOLLIN;
        if exclusive {
            events |= libc::EPOLLEXCLUSIVE;
        }
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl on our epoll descriptor with a valid event.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        check(r as libc::c_long).map(drop)
    }

    /// Stop watching `fd`; one that is not watched (or closed) changes nothing.
    pub fn remove(&self, fd: RawFd) {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; failing (already gone) changes nothing.
        unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event) };
    }

    /// Watch `fd` for new bytes, edge-triggered (`EPOLLET`), reported as `token`: one report each
    /// time data arrives (or the peer closes), however many bytes, until the descriptor is closed.
    /// A descriptor already in the set gets the new token.
    pub fn add_edge(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl on our epoll descriptor with a valid event.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        match check(r as libc::c_long) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // SAFETY: as above.
                let r = unsafe {
                    libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, &mut event)
                };
                check(r as libc::c_long).map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Sleep until an entry is ready, or for at most `timeout` (`None`: no limit; zero: only look).
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> io::Result<Ready> {
        let mut ready = Ready {
            events: [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
            count: 0,
        };
        // Rounded up, so a wait for a deadline does not wake just before it.
        let ms = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
        });
        // SAFETY: epoll_wait into a valid array of MAX_EVENTS events.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                ready.events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                ms,
            )
        };
        ready.count = check(n as libc::c_long)?;
        Ok(ready)
    }
}
