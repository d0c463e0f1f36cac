//! The event loop of one worker process. The Python threads accept and read new connections
//! themselves ([`super::Acceptor`]); the loop keeps what must wait without holding a thread:
//! connections whose packet arrived in pieces (queued as jobs once complete, or closed after
//! `--socket-timeout`), error answers being drained, static files a slow client is still taking
//! ([`super::transfer`]), stop signals, and the harakiri watchdog. It never takes the GIL and
//! never waits on anything but epoll.

use super::acceptor::Deafener;
use super::dispatch::{Handoffs, InFlight, JobSink, Wake};
use super::fd_limit;
use super::http::KeepAlive;
use super::incoming::{Incoming, Outcome, Timeouts};
use super::listener::Listener;
use super::transfer::Transfers;
use crate::protocol::response::simple_response;
use crate::protocol::Limits;
use crate::request::Conn;
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io::{self, Read};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// What a stopping worker does with its copies of the listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Let go of them at once: another process (the master) keeps the sockets open, so what
    /// waits in their backlogs is served by the other workers or after the reload.
    Leave,
    /// The sockets close everywhere: take every connection the kernel has already queued, then
    /// let go. With `refuse_first`, this process first makes the sockets refuse new connects
    /// ([`Listener::refuse_new_connects`]; with a master, the master has done it).
    Drain {
        /// This process must make the sockets refuse new connects itself (no master did).
        refuse_first: bool,
    },
}

/// Why half-sent connections were closed early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// The worker holds its budget of them.
    Budget,
    /// Accepting failed for want of descriptors.
    Descriptors,
}

/// Half-sent connections closed early and not yet logged.
#[derive(Debug, Default)]
struct Shed {
    budget: usize,
    descriptors: usize,
    logged: Option<Instant>,
}

impl Shed {
    fn count(&mut self, n: usize, why: Why) {
        match why {
            Why::Budget => self.budget += n,
            Why::Descriptors => self.descriptors += n,
        }
    }

    /// One line a second at most, with what was closed since the last one.
    fn log(&mut self, budget: usize) {
        if self.budget + self.descriptors == 0
            || self
                .logged
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        if self.budget > 0 {
            tracing::warn!(
                "closed {} half-sent connection(s), oldest first: this worker keeps at most {budget} \
                 connections still sending their request",
                self.budget
            );
        }
        if self.descriptors > 0 {
            tracing::warn!(
                "closed {} half-sent connection(s), oldest first: out of file descriptors \
                 (see --max-fd), complete requests come first",
                self.descriptors
            );
        }
        self.budget = 0;
        self.descriptors = 0;
        self.logged = Some(Instant::now());
    }
}

/// Half-sent connections this young are not closed to keep the budget: nginx writes its request
/// right after connecting, but a busy nginx may take a moment, and a burst of new connections
/// must not push out one that is about to be complete.
const SPARE_YOUNGER_THAN: Duration = Duration::from_secs(1);

/// After taking the backlog, how long a stopping worker waits before it looks once more: for
/// connects that were under way (a handshake in flight, a unix connect past its path lookup).
const BACKLOG_SETTLE: Duration = Duration::from_millis(5);

const WAKER: Token = Token(usize::MAX);
const SIGNAL_BASE: usize = usize::MAX - 8;

/// A connection the loop is still reading.
struct Connection {
    incoming: Incoming,
    registered: bool,
}

/// A worker's event loop.
pub struct EventLoop {
    poll: Poll,
    waker: Arc<Waker>,
    listeners: Vec<Listener>,
    conns: Slab<Connection>,
    /// Static responses a slow client is still taking.
    transfers: Transfers,
    /// How long a stopping worker may spend on what it has already taken (`--reload-mercy`):
    /// static transfers still going past it are cut.
    stop_budget: Duration,
    signals: Vec<(UnixStream, Stop)>,
    timeouts: Timeouts,
    limits: Limits,
    /// Most half-sent connections kept (see [`fd_limit::half_sent_budget`]).
    budget: usize,
    /// Half-sent connections closed to make room, not yet logged (one line a second at most).
    shed: Shed,
    /// Takes the listeners out of the Python threads' epoll set before they are given up.
    deafener: Option<Deafener>,
    workers_gone: bool,
    watchdog: Option<(Arc<InFlight>, Duration)>,
    next_watch: Instant,
}

/// The stop budget until [`EventLoop::set_stop_budget`] sets one (`--reload-mercy`'s default).
const DEFAULT_STOP_BUDGET: Duration = Duration::from_secs(60);

/// How long a static transfer's client must have taken nothing before it may be cut when the
/// worker runs out of descriptors.
const STALLED_FOR: Duration = Duration::from_secs(1);

/// How often the harakiri watchdog looks at the running requests.
const WATCHDOG_TICK: Duration = Duration::from_millis(200);

impl EventLoop {
    /// A loop for a worker serving these listeners (which it keeps, for [`EventLoop::into_listeners`];
    /// the Python threads accept from them).
    pub fn new(
        listeners: Vec<Listener>,
        timeouts: Timeouts,
        limits: Limits,
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(EventLoop {
            poll,
            waker,
            listeners,
            conns: Slab::new(),
            transfers: Transfers::default(),
            stop_budget: DEFAULT_STOP_BUDGET,
            signals: Vec::new(),
            timeouts,
            limits,
            budget: fd_limit::half_sent_budget(fd_limit::soft_limit()),
            shed: Shed::default(),
            deafener: None,
            workers_gone: false,
            watchdog: None,
            next_watch: Instant::now(),
        })
    }

    /// The listening descriptors, for the threads that accept from them.
    pub fn listener_fds(&self) -> Vec<RawFd> {
        self.listeners.iter().map(Listener::fd).collect()
    }

    /// How long a stopping worker may spend finishing what it took (`--reload-mercy`).
    pub fn set_stop_budget(&mut self, budget: Duration) {
        self.stop_budget = budget;
    }

    /// How to take the listeners out of the Python threads' epoll set at a stop.
    pub fn set_deafener(&mut self, deafener: Deafener) {
        self.deafener = Some(deafener);
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
            crate::request::report_stuck(*core);
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

    /// Serve until a signal or the threads' exit; then stop accepting, let go of the listening
    /// sockets as `release` says for that stop, and hand what was already accepted to the threads
    /// (within `--socket-timeout`) before returning.
    pub fn run(&mut self, sink: &JobSink, release: impl Fn(Stop) -> Release) -> Stop {
        let stop = self.serve(sink);
        if stop != Stop::Fast {
            sink.stop_accepting();
            self.release_listeners(release(stop), sink);
            self.finish(sink);
        }
        stop
    }

    /// Let go of this process's listening sockets, after taking their backlogs when they close
    /// everywhere: a connection the kernel completed has had its request sent by nginx, and
    /// closing the last reference to the socket would reset it.
    fn release_listeners(&mut self, release: Release, sink: &JobSink) {
        if let Some(deafener) = &self.deafener {
            deafener.deafen();
        }
        if let Release::Drain { refuse_first } = release {
            if refuse_first {
                self.listeners
                    .iter()
                    .for_each(Listener::refuse_new_connects);
            }
            let mut taken = self.take_backlog(sink);
            std::thread::sleep(BACKLOG_SETTLE);
            taken += self.take_backlog(sink);
            if taken > 0 {
                tracing::info!(
                    "took {taken} queued connection(s) from the backlog before closing the listening sockets"
                );
            }
        }
        self.listeners.iter().for_each(Listener::stop_listening);
    }

    /// Accept every connection the listeners we own have queued; how many.
    fn take_backlog(&mut self, sink: &JobSink) -> usize {
        let mut taken = 0;
        for i in 0..self.listeners.len() {
            if !self.listeners[i].ours() {
                continue;
            }
            loop {
                match self.listeners[i].accept() {
                    Ok(socket) => {
                        taken += 1;
                        let incoming = Incoming::new(Conn::new(socket), self.limits, self.timeouts);
                        self.adopt_one(incoming, sink);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                    Err(e) => {
                        tracing::error!("cannot take a queued connection at shutdown: {e}");
                        break;
                    }
                }
            }
        }
        taken
    }

    fn serve(&mut self, sink: &JobSink) -> Stop {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.transfers.has_runnable() {
                Some(Duration::ZERO)
            } else if self.watchdog.is_some() {
                Some(WATCHDOG_TICK)
            } else {
                (!self.conns.is_empty() || !self.transfers.is_empty())
                    .then_some(Duration::from_millis(250))
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
                    WAKER if sink.threads_gone() => return Stop::WorkersGone,
                    WAKER => {
                        if sink.take_fd_pressure() {
                            self.relieve_fd_pressure();
                        }
                        self.adopt(sink.take_handoffs(), sink)
                    }
                    Token(t) if t > SIGNAL_BASE - 8 && t <= SIGNAL_BASE => {
                        let i = SIGNAL_BASE - t;
                        let mut byte = [0u8; 64];
                        while matches!(self.signals[i].0.read(&mut byte), Ok(n) if n > 0) {}
                        return self.signals[i].1;
                    }
                    token => self.on_event(token, sink),
                }
            }
            self.run_transfers(sink);
            if self.workers_gone {
                return Stop::WorkersGone;
            }
            if self.harakiri() {
                return Stop::Harakiri;
            }
            self.expire();
        }
    }

    /// Take connections a thread accepted before their packet was complete, and static responses
    /// a slow client has not taken yet.
    fn adopt(&mut self, handed: Handoffs, sink: &JobSink) {
        for incoming in handed.reading {
            self.adopt_one(incoming, sink);
        }
        for transfer in handed.sending {
            self.transfers.adopt(transfer, self.poll.registry());
        }
    }

    /// A connection's socket is ready: a static transfer's for writing, else one being read.
    fn on_event(&mut self, token: Token, sink: &JobSink) {
        match Transfers::key(token) {
            Some(key) => {
                if let Some(kept) = self.transfers.on_writable(key, self.poll.registry()) {
                    self.keep_alive(kept, sink);
                }
            }
            None => self.on_readable(token.0, sink),
        }
    }

    /// Give the static transfers that spent their turn the next one.
    fn run_transfers(&mut self, sink: &JobSink) {
        for kept in self.transfers.run(self.poll.registry()) {
            self.keep_alive(kept, sink);
        }
    }

    /// An HTTP connection whose static response the loop finished: wait for its next request as
    /// for any idle one (served at once if already here).
    fn keep_alive(&mut self, kept: KeepAlive, sink: &JobSink) {
        let idle = kept
            .settings
            .keepalive
            .unwrap_or(kept.settings.header_timeout);
        let incoming = Incoming::http(
            kept.conn,
            kept.settings,
            kept.leftover,
            Some(kept.peer),
            Instant::now() + idle,
        );
        self.adopt_one(incoming, sink);
    }

    fn adopt_one(&mut self, incoming: Incoming, sink: &JobSink) {
        if self.conns.len() >= self.budget {
            self.close_oldest((self.budget / 64).max(1), Why::Budget);
        }
        let key = self.conns.insert(Connection {
            incoming,
            registered: false,
        });
        // Read again before registering: the rest has often arrived meanwhile.
        self.on_readable(key, sink);
    }

    /// Read what a connection has, and act on it.
    fn on_readable(&mut self, key: usize, sink: &JobSink) {
        let Some(c) = self.conns.get_mut(key) else {
            return; // A stale event for a connection already gone.
        };
        match c.incoming.read(self.timeouts.idle) {
            Outcome::Pending => {
                if !c.registered {
                    let fd = c.incoming.conn.fd();
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
            Outcome::Close => drop(self.remove(key)),
            Outcome::Ready(head) => {
                let job = self.remove(key).into_job(head);
                if let Err(job) = sink.offer(job) {
                    tracing::error!("no Python thread is running: dropping a request");
                    self.workers_gone = true;
                    drop(job);
                }
            }
        }
    }

    fn remove(&mut self, key: usize) -> Incoming {
        let c = self.conns.remove(key);
        if c.registered {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&c.incoming.conn.fd()));
        }
        c.incoming
    }

    /// Close connections that stayed silent past `--socket-timeout`, and cut static transfers
    /// whose client took nothing for as long.
    fn expire(&mut self) {
        let now = Instant::now();
        self.transfers.expire(now, self.poll.registry());
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.incoming.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        let mut head_overdue = (0, 0);
        for key in expired {
            let incoming = self.remove(key);
            if incoming.head_overdue(now) {
                head_overdue = (head_overdue.0 + 1, incoming.received());
            } else if incoming.received() > 0 {
                tracing::warn!(
                    "closing a connection after {:.1}s without a complete request ({} bytes received)",
                    self.timeouts.idle.as_secs_f64(),
                    incoming.received()
                );
            }
        }
        // One line per tick, however many slow clients were cut in it.
        match head_overdue {
            (0, _) => {}
            (1, bytes) => tracing::warn!(
                "closed a connection whose request head took longer than --headers-timeout {}s \
                 ({bytes} bytes received)",
                self.timeouts.head.as_secs()
            ),
            (n, _) => tracing::warn!(
                "closed {n} connections whose request head took longer than --headers-timeout {}s",
                self.timeouts.head.as_secs()
            ),
        }
        self.shed.log(self.budget);
    }

    /// A Python thread could not accept for want of descriptors: read the limit again (it may
    /// have been lowered from outside) and close the oldest eighth of the half-sent connections.
    /// With none of those, it cuts the static transfers whose client has taken nothing for longest
    /// (each holds a socket and a file).
    fn relieve_fd_pressure(&mut self) {
        self.budget = fd_limit::half_sent_budget(fd_limit::soft_limit());
        if self.conns.is_empty() {
            let count = (self.transfers.len() / 8).max(1);
            let cut = self
                .transfers
                .cut_stalled(count, STALLED_FOR, self.poll.registry());
            if cut > 0 {
                tracing::warn!(
                    "cut {cut} static transfer(s) whose client took nothing for {}s or more: out of \
                     file descriptors (see --max-fd), new requests come first",
                    STALLED_FOR.as_secs()
                );
            }
            return;
        }
        self.close_oldest((self.conns.len() / 8).max(1), Why::Descriptors);
        self.shed.log(self.budget);
    }

    /// Close the `count` connections accepted longest ago that are still sending their request
    /// (or draining an error answer): they are the slowest, and complete requests need the room.
    /// Over the budget, connections younger than [`SPARE_YOUNGER_THAN`] are spared (nginx may
    /// not have written its request yet), so a flood can only push the count up to the
    /// descriptor limit, where nothing is spared.
    fn close_oldest(&mut self, count: usize, why: Why) {
        let spare_after = match why {
            Why::Budget => Instant::now().checked_sub(SPARE_YOUNGER_THAN),
            Why::Descriptors => None,
        };
        let mut ages: Vec<(Instant, usize)> = self
            .conns
            .iter()
            .map(|(k, c)| (c.incoming.accepted, k))
            .filter(|(accepted, _)| spare_after.is_none_or(|t| *accepted <= t))
            .collect();
        let count = count.min(ages.len());
        if count == 0 {
            return;
        }
        if count < ages.len() {
            ages.select_nth_unstable(count - 1);
        }
        for &(_, key) in &ages[..count] {
            drop(self.remove(key));
        }
        self.shed.count(count, why);
    }

    /// Hand everything already accepted to the threads, and finish the static transfers under way
    /// (within the stop budget).
    fn finish(&mut self, sink: &JobSink) {
        // Every accepted connection is served, even one whose packet has not arrived yet: nginx has
        // already sent it (closing it would be a 502). Each gets at most --socket-timeout.
        let started = Instant::now();
        let deadline = started + self.timeouts.idle;
        let budget_end = started + self.stop_budget;
        if !self.transfers.is_empty() {
            tracing::info!(
                "finishing {} static transfer(s) before stopping (within --reload-mercy {}s)",
                self.transfers.len(),
                self.stop_budget.as_secs()
            );
        }
        let mut events = Events::with_capacity(256);
        loop {
            self.adopt(sink.take_handoffs(), sink);
            self.close_idle_http();
            if self.conns.is_empty() && self.transfers.is_empty() {
                // From here on a thread that accepted a connection just before it saw the stop
                // reads it to the end itself, and sends its static files itself.
                let late = sink.close_handoffs();
                if late.reading.is_empty() && late.sending.is_empty() {
                    return;
                }
                self.adopt(late, sink);
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                // Past --socket-timeout a request still arriving is given up on.
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                keys.into_iter().for_each(|k| drop(self.remove(k)));
            }
            if now >= budget_end {
                self.cut_at_stop_budget(sink);
                return;
            }
            let wait = if self.transfers.has_runnable() {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            let _ = self.poll.poll(&mut events, Some(wait));
            let tokens: Vec<Token> = events
                .iter()
                .map(|e| e.token())
                .filter(|t| t.0 < SIGNAL_BASE - 8)
                .collect();
            for token in tokens {
                self.on_event(token, sink);
            }
            self.run_transfers(sink);
            self.expire();
        }
    }

    /// Close the HTTP connections waiting between requests with nothing of the next one: a
    /// stopping worker keeps none (the client reopens elsewhere).
    fn close_idle_http(&mut self) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.incoming.idle_http())
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            drop(self.remove(key));
        }
    }

    /// The stop budget ran out: cut the static transfers still going, and take nothing more.
    fn cut_at_stop_budget(&mut self, sink: &JobSink) {
        let late = sink.close_handoffs();
        let cut = self.transfers.cut_all(self.poll.registry()) + late.sending.len();
        if cut > 0 {
            tracing::warn!(
                "cut {cut} static transfer(s) still sending after --reload-mercy {}s",
                self.stop_budget.as_secs()
            );
        }
    }

    /// The listeners (for vacuum and for reload, which passes them on).
    pub fn into_listeners(self) -> Vec<Listener> {
        self.listeners
    }
}
