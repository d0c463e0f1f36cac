//! How a free Python thread finds its next request: a job the loop queued, or a new connection it
//! accepts and reads itself.
//!
//! Each thread waits in its own epoll set holding the listeners (with `EPOLLEXCLUSIVE`, so a new
//! connection wakes one waiting thread of one worker process, not all of them), the "jobs ready"
//! eventfd and the "stopping" eventfd. A thread accepts only when it is free, so the kernel backlog
//! is the queue and a busy worker leaves connections to the others. Under load a thread goes
//! straight from closing one connection to accepting the next, without sleeping.
//!
//! A connection whose packet is not complete after the first read goes to the event loop, which
//! waits for the rest (up to `--socket-timeout`) without holding a thread.

use super::conn::Conn;
use super::incoming::{Incoming, Outcome};
use super::listener::accept_on;
use crate::dispatch::{Job, JobSource};
use crossbeam_channel::TryRecvError;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

const JOBS: u64 = u64::MAX;
const STOPPING: u64 = u64::MAX - 1;

/// After an accept error that retrying at once cannot fix (out of descriptors or memory), wait
/// this long before trying again instead of spinning on a listener that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// How long a thread waits for the rest of a packet it accepted before it hands the connection to
/// the loop. nginx writes the packet right after connecting, so on a unix socket a thread often
/// accepts before the bytes are there and they follow within microseconds; waiting here costs one
/// sleep, a hand-off to the loop and back costs several. After a wait that ran out, the next
/// connections go to the loop at once (until one arrives whole), so a flood of silent connections
/// costs a thread at most this long per real request.
const PACKET_GRACE: Duration = Duration::from_millis(2);

/// A Python thread's way to its next request.
pub struct Acceptor {
    source: JobSource,
    epoll: OwnedFd,
    /// The listeners (and the stopping eventfd) are in the epoll set.
    listening: bool,
    /// Where the next accept round starts (fairness between several listeners).
    next_listener: usize,
    /// When an accept error was last logged (one line per second at most).
    last_error: Option<Instant>,
    /// The last wait for a packet ran out: skip the wait until a packet arrives whole again.
    grace_spent: bool,
}

fn epoll_add(epoll: RawFd, fd: RawFd, events: i32, data: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: events as u32,
        u64: data,
    };
    // SAFETY: epoll_ctl on our epoll descriptor with a valid event.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn epoll_del(epoll: RawFd, fd: RawFd) {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: as above; failing (already gone) changes nothing.
    unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, &mut event) };
}

/// What one round over the listeners found.
enum Accepted {
    Job(Job),
    Nothing,
}

impl Acceptor {
    /// An epoll set for this thread over the source's listeners.
    pub fn new(source: JobSource) -> io::Result<Acceptor> {
        // SAFETY: epoll_create1 with a valid flag; the descriptor is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = epoll.as_raw_fd();
        epoll_add(raw, source.shared.jobs_ready.fd(), libc::EPOLLIN, JOBS)?;
        epoll_add(raw, source.shared.stopping.fd(), libc::EPOLLIN, STOPPING)?;
        for (i, &listener) in source.listeners.iter().enumerate() {
            epoll_add(
                raw,
                listener,
                libc::EPOLLIN | libc::EPOLLEXCLUSIVE,
                i as u64,
            )?;
        }
        Ok(Acceptor {
            source,
            epoll,
            listening: true,
            next_listener: 0,
            last_error: None,
            grace_spent: false,
        })
    }

    /// The source (for retiring).
    pub fn source(&self) -> &JobSource {
        &self.source
    }

    /// The next request to serve; `None` once the worker stops and the queue is empty. Blocks: a
    /// Python thread calls it detached.
    pub fn next_job(&mut self) -> Option<Job> {
        loop {
            match self.source.rx.try_recv() {
                Ok(job) => {
                    if !self.source.rx.is_empty() {
                        // Pass the wake-up on: another idle thread can take the next one.
                        self.source.shared.jobs_ready.poke();
                    }
                    return Some(job);
                }
                Err(TryRecvError::Disconnected) => {
                    // Wake the next waiting thread so it sees the end too.
                    self.source.shared.jobs_ready.poke();
                    return None;
                }
                Err(TryRecvError::Empty) => {}
            }
            if self.listening {
                if !self.source.accepting() {
                    self.deafen();
                } else if let Accepted::Job(job) = self.accept() {
                    return Some(job);
                }
            }
            self.wait();
        }
    }

    /// Accept from each listener until one yields a complete request or all are empty.
    fn accept(&mut self) -> Accepted {
        let count = self.source.listeners.len();
        for step in 0..count {
            let index = (self.next_listener + step) % count;
            loop {
                let socket = match accept_on(self.source.listeners[index]) {
                    Ok(socket) => socket,
                    Err(e) => {
                        self.accept_failed(index, &e);
                        break;
                    }
                };
                let mut incoming =
                    Incoming::new(Conn::new(socket), self.source.limits, self.source.timeout);
                match self.read_new(&mut incoming) {
                    Outcome::Ready(head) => {
                        self.next_listener = (index + 1) % count;
                        return Accepted::Job(incoming.into_job(head));
                    }
                    Outcome::Close => {}
                    Outcome::Pending => {
                        if let Some(incoming) = self.source.hand_off(incoming) {
                            // The loop is finishing: read the rest here.
                            if let Some(job) = self.finish_reading(incoming) {
                                return Accepted::Job(job);
                            }
                        }
                    }
                }
                if !self.source.accepting() {
                    return Accepted::Nothing;
                }
            }
        }
        Accepted::Nothing
    }

    /// Read a connection just accepted, waiting up to [`PACKET_GRACE`] for its packet.
    fn read_new(&mut self, incoming: &mut Incoming) -> Outcome {
        let outcome = incoming.read(self.source.timeout);
        if !matches!(outcome, Outcome::Pending) {
            self.grace_spent = false;
            return outcome;
        }
        if self.grace_spent {
            return outcome;
        }
        let grace = Instant::now() + PACKET_GRACE;
        while incoming.conn.wait_readable(grace).is_ok() {
            match incoming.read(self.source.timeout) {
                Outcome::Pending => {}
                outcome => return outcome,
            }
        }
        self.grace_spent = true;
        Outcome::Pending
    }

    fn accept_failed(&mut self, index: usize, e: &io::Error) {
        let code = e.raw_os_error().unwrap_or(0);
        match code {
            libc::EAGAIN | libc::ECONNABORTED | libc::EPROTO | libc::EPERM => return,
            _ => {}
        }
        if self
            .last_error
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::error!("accept on listener {index} failed: {e}");
            self.last_error = Some(Instant::now());
        }
        if matches!(
            code,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        ) {
            std::thread::sleep(ACCEPT_BACKOFF);
        } else {
            // The listener itself is unusable (closed at shutdown): stop watching it.
            epoll_del(self.epoll.as_raw_fd(), self.source.listeners[index]);
        }
    }

    /// Read a handed-back connection to the end of its head, waiting on the socket.
    fn finish_reading(&self, mut incoming: Incoming) -> Option<Job> {
        loop {
            if incoming.conn.wait_readable(incoming.deadline).is_err() {
                return None;
            }
            match incoming.read(self.source.timeout) {
                Outcome::Ready(head) => return Some(incoming.into_job(head)),
                Outcome::Close => return None,
                Outcome::Pending => {}
            }
        }
    }

    /// Stop watching the listeners and the stopping signal.
    fn deafen(&mut self) {
        let epoll = self.epoll.as_raw_fd();
        for &listener in self.source.listeners.iter() {
            epoll_del(epoll, listener);
        }
        epoll_del(epoll, self.source.shared.stopping.fd());
        self.listening = false;
    }

    /// Sleep until a listener, the queue or the stop signal has something.
    fn wait(&mut self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
        // SAFETY: epoll_wait on our epoll descriptor into a valid array of 8 events.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 8, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!("epoll_wait failed: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
            return;
        }
        let ready = &events[..n as usize];
        if ready.iter().any(|e| e.u64 == JOBS) {
            self.source.shared.jobs_ready.clear();
        }
    }
}
