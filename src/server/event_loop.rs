//! The event loop of one worker process: accept, read request heads, hand complete requests to the
//! Python threads. It never takes the GIL, never waits on anything but epoll, and never touches a
//! connection again once it is dispatched.
//!
//! Most nginx packets arrive with the connection, so a new connection is read at once and only
//! registered with epoll when its packet is incomplete.

use super::conn::Conn;
use super::listener::Listener;
use crate::dispatch::{InFlight, Job, JobSink, Offer, Wake};
use crate::protocol::response::simple_response;
use crate::protocol::{DecodeError, Limits, Packet, Progress, Reply, RequestReader, PONG};
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Why [`EventLoop::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: stop accepting, let in-flight requests finish.
    Graceful,
    /// SIGINT or SIGQUIT: exit now.
    Fast,
    /// SIGHUP: like graceful, then load the app again.
    Reload,
    /// Every Python thread has gone.
    WorkersGone,
    /// A request ran past `--harakiri`: it was answered, and this worker must be replaced.
    Harakiri,
    /// A recycling limit (`--max-requests`, `--reload-on-rss`) was reached: finish and be replaced.
    Retire,
}

const WAKER: Token = Token(usize::MAX);
const SIGNAL_BASE: usize = usize::MAX - 8;
const LISTENER_BASE: usize = usize::MAX / 2;

/// Connections accepted per listener event before the loop looks at other sockets again.
const ACCEPT_BATCH: usize = 64;

/// Bytes discarded from a connection that got an error answer, so closing it does not reset the
/// peer before it has read the answer.
const ERROR_DRAIN_LIMIT: u64 = 1 << 20;

/// A connection the loop is still reading.
struct Connection {
    conn: Conn,
    state: State,
    registered: bool,
    deadline: Instant,
    accepted: Instant,
    accepted_wall: SystemTime,
}

enum State {
    /// Waiting for the rest of the request head (and the preread body).
    Reading(RequestReader),
    /// An error answer went out; discard what the peer still sends until it closes.
    Draining { left: u64 },
}

/// What reading a connection led to.
enum Outcome {
    Pending,
    Ready(crate::protocol::RequestHead),
    Close,
}

/// A worker's event loop.
pub struct EventLoop {
    poll: Poll,
    waker: Arc<Waker>,
    listeners: Vec<Listener>,
    accepting: bool,
    conns: Slab<Connection>,
    parked: VecDeque<Job>,
    signals: Vec<(UnixStream, Stop)>,
    limits: Limits,
    timeout: Duration,
    workers_gone: bool,
    watchdog: Option<(Arc<InFlight>, Duration)>,
    next_watch: Instant,
    /// The listeners are in the epoll set.
    listening: bool,
    /// An accept batch ended before the backlog was empty: accept again without waiting.
    accept_pending: bool,
}

/// How often the harakiri watchdog looks at the running requests.
const WATCHDOG_TICK: Duration = Duration::from_millis(200);

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl EventLoop {
    /// A loop over these listeners.
    pub fn new(
        listeners: Vec<Listener>,
        limits: Limits,
        timeout: Duration,
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut event_loop = EventLoop {
            poll,
            waker,
            listeners,
            accepting: true,
            conns: Slab::new(),
            parked: VecDeque::new(),
            signals: Vec::new(),
            limits,
            timeout,
            workers_gone: false,
            watchdog: None,
            next_watch: Instant::now(),
            listening: false,
            accept_pending: false,
        };
        event_loop.listen(true)?;
        Ok(event_loop)
    }

    /// Watch the listeners, or stop watching them (while paused or stopping).
    ///
    /// They are added with `EPOLLEXCLUSIVE` (mio has no way to ask for it): several worker processes
    /// share each listening socket, and without it every one of them wakes for every connection
    /// and all but one find nothing to accept. A paused worker takes its listeners out, so the one
    /// wake-up a connection gets goes to a worker that will accept it.
    fn listen(&mut self, on: bool) -> io::Result<()> {
        if self.listening == on {
            return Ok(());
        }
        for (i, l) in self.listeners.iter().enumerate() {
            let mut event = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET | libc::EPOLLEXCLUSIVE) as u32,
                u64: (LISTENER_BASE + i) as u64,
            };
            let op = if on {
                libc::EPOLL_CTL_ADD
            } else {
                libc::EPOLL_CTL_DEL
            };
            // SAFETY: epoll_ctl on mio's epoll descriptor with a valid event; mio reads the token
            // back from the event's u64, as it does for its own registrations.
            let r = unsafe { libc::epoll_ctl(self.poll.as_raw_fd(), op, l.fd(), &mut event) };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.listening = on;
        Ok(())
    }

    /// Answer requests that run past `limit` with a 504 and stop (`--harakiri`).
    pub fn set_watchdog(&mut self, inflight: Arc<InFlight>, limit: Duration) {
        self.watchdog = Some((inflight, limit));
    }

    /// Answer every overdue request; true if there was one.
    fn harakiri(&mut self) -> bool {
        let Some((inflight, limit)) = &self.watchdog else {
            return false;
        };
        let now = Instant::now();
        if now < self.next_watch {
            return false;
        }
        self.next_watch = now + WATCHDOG_TICK;
        let overdue = inflight.overdue(*limit);
        for (core, running) in &overdue {
            let answered = running.conn.claim();
            if answered {
                let page = simple_response(
                    b"HTTP/1.0",
                    "504 Gateway Timeout",
                    "the request ran past --harakiri\n",
                );
                let _ = running.conn.write_now(&page);
            }
            running.conn.shutdown_both();
            tracing::error!(
                "HARAKIRI on core {core} (pid: {}): {} ran {:.1}s, past --harakiri {}s; {}; \
                 this worker stops accepting and is replaced once its other requests finish",
                std::process::id(),
                running.what,
                running.started.elapsed().as_secs_f64(),
                limit.as_secs(),
                if answered {
                    "answered 504 Gateway Timeout"
                } else {
                    "its response was cut"
                }
            );
        }
        !overdue.is_empty()
    }

    /// A handle the Python threads call to wake the loop.
    pub fn wake_handle(&self) -> Wake {
        let waker = self.waker.clone();
        Arc::new(move || {
            if let Err(e) = waker.wake() {
                tracing::error!("cannot wake the event loop: {e}");
            }
        })
    }

    /// Stop the loop when one of `signals` arrives; `run` then returns `stop`.
    pub fn watch_signals(&mut self, signals: &[libc::c_int], stop: Stop) -> io::Result<()> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        for &signal in signals {
            signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
        }
        let mut read = UnixStream::from_std(read);
        let token = Token(SIGNAL_BASE - self.signals.len());
        self.poll
            .registry()
            .register(&mut read, token, Interest::READABLE)?;
        self.signals.push((read, stop));
        Ok(())
    }

    /// Serve until a signal or the threads' exit; then stop accepting and hand what was already
    /// read to the threads (within `--socket-timeout`) before returning.
    pub fn run(&mut self, sink: &JobSink) -> Stop {
        let stop = self.serve(sink);
        if stop != Stop::Fast {
            self.finish(sink);
        }
        stop
    }

    fn serve(&mut self, sink: &JobSink) -> Stop {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.accept_pending {
                Some(Duration::ZERO)
            } else if self.watchdog.is_some() {
                Some(WATCHDOG_TICK)
            } else {
                (!self.conns.is_empty()).then_some(Duration::from_millis(250))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("epoll failed: {e}");
                    return Stop::Fast;
                }
                continue;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER if sink.retire_requested() => return Stop::Retire,
                    WAKER => self.resume(sink),
                    Token(t) if t > SIGNAL_BASE - 8 && t <= SIGNAL_BASE => {
                        let i = SIGNAL_BASE - t;
                        let mut byte = [0u8; 64];
                        while matches!(self.signals[i].0.read(&mut byte), Ok(n) if n > 0) {}
                        return self.signals[i].1;
                    }
                    Token(t) if t >= LISTENER_BASE => self.accept_all(t - LISTENER_BASE, sink),
                    Token(key) => self.on_readable(key, sink),
                }
            }
            if std::mem::take(&mut self.accept_pending) {
                for i in 0..self.listeners.len() {
                    self.accept_all(i, sink);
                }
            }
            if self.workers_gone {
                return Stop::WorkersGone;
            }
            if self.harakiri() {
                return Stop::Harakiri;
            }
            self.expire();
        }
    }

    /// Accept until the listener has nothing more, or the queue is full, or a batch is done.
    fn accept_all(&mut self, index: usize, sink: &JobSink) {
        let mut accepted = 0;
        while self.accepting && self.parked.is_empty() {
            if accepted == ACCEPT_BATCH {
                // Fairness: let the other ready sockets run first; edge-triggered epoll will not
                // report this backlog again, so come back to it after this round of events.
                self.accept_pending = true;
                return;
            }
            if !sink.has_room() {
                // Every thread is busy and the queue is full: leave the connection in the backlog
                // for another worker, and hear about new ones only once there is room.
                if let Err(e) = self.listen(false) {
                    tracing::error!("cannot pause the listeners: {e}");
                }
                return;
            }
            let socket = match self.listeners[index].accept() {
                Ok(socket) => socket,
                Err(e) if would_block(&e) => return,
                Err(e) => {
                    tracing::error!("accept on {} failed: {e}", self.listeners[index].spec());
                    return;
                }
            };
            accepted += 1;
            let now = Instant::now();
            let connection = Connection {
                conn: Conn::new(socket),
                state: State::Reading(RequestReader::new(self.limits)),
                registered: false,
                deadline: now + self.timeout,
                accepted: now,
                accepted_wall: SystemTime::now(),
            };
            let key = self.conns.insert(connection);
            self.on_readable(key, sink);
        }
    }

    /// Read what a connection has, and act on it.
    fn on_readable(&mut self, key: usize, sink: &JobSink) {
        let Some(c) = self.conns.get_mut(key) else {
            return; // A stale event for a connection already gone.
        };
        match read_connection(c, self.timeout) {
            Outcome::Pending => {
                if !c.registered {
                    let fd = c.conn.fd();
                    match self.poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(key),
                        Interest::READABLE,
                    ) {
                        Ok(()) => c.registered = true,
                        Err(e) => {
                            tracing::error!("cannot register a connection with epoll: {e}");
                            self.conns.remove(key);
                        }
                    }
                }
            }
            Outcome::Close => {
                self.remove(key);
            }
            Outcome::Ready(head) => {
                let c = self.conns.remove(key);
                if c.registered {
                    let _ = self.poll.registry().deregister(&mut SourceFd(&c.conn.fd()));
                }
                let State::Reading(reader) = c.state else {
                    unreachable!("only a reading connection becomes ready");
                };
                let job = Job {
                    conn: c.conn,
                    buf: reader.into_buffer(),
                    head,
                    accepted: c.accepted,
                    accepted_wall: c.accepted_wall,
                };
                self.dispatch(job, sink);
            }
        }
    }

    fn remove(&mut self, key: usize) {
        let c = self.conns.remove(key);
        if c.registered {
            let _ = self.poll.registry().deregister(&mut SourceFd(&c.conn.fd()));
        }
    }

    fn dispatch(&mut self, job: Job, sink: &JobSink) {
        if !self.parked.is_empty() {
            self.parked.push_back(job);
            return;
        }
        match sink.offer(job) {
            Offer::Queued => {}
            Offer::Full(job) => {
                self.parked.push_back(job);
                if let Err(e) = self.listen(false) {
                    tracing::error!("cannot pause the listeners: {e}");
                }
            }
            Offer::Closed(job) => {
                tracing::error!("no Python thread is running: dropping a request");
                self.workers_gone = true;
                drop(job);
            }
        }
    }

    /// Room in the queue again: hand over parked jobs, then accept what waited in the backlog.
    fn resume(&mut self, sink: &JobSink) {
        while let Some(job) = self.parked.pop_front() {
            match sink.offer(job) {
                Offer::Queued => {}
                Offer::Full(job) => {
                    self.parked.push_front(job);
                    return;
                }
                Offer::Closed(_) => {}
            }
        }
        if !self.accepting {
            return;
        }
        if let Err(e) = self.listen(true) {
            tracing::error!("cannot resume the listeners: {e}");
        }
        for i in 0..self.listeners.len() {
            self.accept_all(i, sink);
        }
    }

    /// Close connections that stayed silent past `--socket-timeout`.
    fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            let c = &self.conns[key];
            if let State::Reading(reader) = &c.state {
                if !reader.buffer().is_empty() {
                    tracing::warn!(
                        "closing a connection after {:.1}s without a complete request ({} bytes received)",
                        self.timeout.as_secs_f64(),
                        reader.buffer().len()
                    );
                }
            }
            self.remove(key);
        }
    }

    /// Stop accepting and hand everything already read to the threads.
    fn finish(&mut self, sink: &JobSink) {
        self.accepting = false;
        if let Err(e) = self.listen(false) {
            tracing::error!("cannot stop watching the listeners: {e}");
        }
        // Every accepted connection is served, even one whose packet has not arrived yet: nginx has
        // already sent it (closing it would be a 502). Each gets at most --socket-timeout.
        let deadline = Instant::now() + self.timeout;
        let mut events = Events::with_capacity(256);
        while !self.conns.is_empty() && Instant::now() < deadline {
            let _ = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(100)));
            let keys: Vec<usize> = events
                .iter()
                .map(|e| e.token().0)
                .filter(|t| *t < LISTENER_BASE)
                .collect();
            for key in keys {
                self.on_readable(key, sink);
            }
            self.expire();
        }
        for job in std::mem::take(&mut self.parked) {
            let _ = sink.send_blocking(job);
        }
    }

    /// The listeners (for vacuum and for reload, which passes them on).
    pub fn into_listeners(self) -> Vec<Listener> {
        self.listeners
    }
}

/// Read a connection until its packet is complete or the socket has nothing more.
fn read_connection(c: &mut Connection, timeout: Duration) -> Outcome {
    loop {
        let result = match &mut c.state {
            State::Reading(reader) => {
                let spare = reader.spare();
                let r = c.conn.read_now(spare);
                reader.commit(*r.as_ref().unwrap_or(&0));
                r
            }
            State::Draining { left } => {
                let mut scratch = [0u8; 8192];
                let r = c.conn.read_now(&mut scratch);
                if let Ok(n) = r {
                    *left = left.saturating_sub(n as u64);
                    if *left == 0 {
                        return Outcome::Close;
                    }
                }
                r
            }
        };
        match result {
            Ok(0) => {
                if let State::Reading(reader) = &c.state {
                    if let Some(e) = reader.eof() {
                        tracing::warn!("{e}");
                    }
                }
                return Outcome::Close;
            }
            Ok(_) => c.deadline = Instant::now() + timeout,
            Err(e) if would_block(&e) => return Outcome::Pending,
            Err(e) => {
                tracing::debug!("read from a new connection failed: {e}");
                return Outcome::Close;
            }
        }
        let State::Reading(reader) = &mut c.state else {
            continue;
        };
        match reader.poll() {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Ready(Packet::Ping)) => {
                let _ = c.conn.write_now(&PONG);
                return Outcome::Close;
            }
            Ok(Progress::Ready(Packet::Request(head))) => return Outcome::Ready(head),
            Err(e) => return reject(c, &e),
        }
    }
}

/// Log a bad request once and answer it when the error has an answer.
fn reject(c: &mut Connection, e: &DecodeError) -> Outcome {
    tracing::warn!("{e}");
    match e.reply() {
        Reply::Close => Outcome::Close,
        Reply::Status(status) => {
            let body = format!("{e}\n");
            let response = simple_response(b"HTTP/1.0", status, &body);
            let _ = c.conn.write_now(&response);
            c.conn.shutdown_write();
            c.state = State::Draining {
                left: ERROR_DRAIN_LIMIT,
            };
            Outcome::Pending
        }
    }
}
