//! How a free Python thread finds its next request: a job the loop queued, or a new connection it
//! accepts and reads itself.
//!
//! A thread accepts only when it is free, so the kernel backlog is the queue and a busy worker
//! leaves connections to the others. Under load a thread goes straight from closing one connection
//! to accepting the next, without sleeping and without letting go of the GIL.
//!
//! The threads of a worker share one epoll set holding the listeners (with `EPOLLEXCLUSIVE`, so a
//! new connection wakes one worker process, not all of them), the "jobs ready" eventfd and the
//! "stopping" eventfd. One thread, the leader, waits on it; woken, it takes the GIL before it
//! accepts, and it stays the leader while it serves: most requests are short, and once it is done
//! it accepts the next connection itself, exactly as a single-threaded worker would, with no other
//! thread woken. The leader's deputy checks every millisecond on a leader busy with one request:
//! once the leader has slept in the kernel (the app waits on I/O) for `TAKE_OVER_AFTER`, or run
//! for `SWITCH_AFTER` (a long request should not hold up short ones that another thread could
//! interleave under the GIL), the deputy takes the lead and accepts the next connection, so
//! threads still overlap blocking requests. The other idle threads sleep until they are needed as
//! deputy; the deputy rests too once no request has come for `DEPUTY_RESTS_AFTER` polls, so an
//! idle worker makes no wake-ups.
//!
//! Once leaders were found asleep in a request twice within `EAGER_FOR`, the worker turns eager
//! for that long: the leader hands the lead to its deputy as soon as it takes a request, so with
//! an app that blocks the next connection is accepted at once, as uWSGI's threads do, instead of a
//! millisecond later. That costs a wake-up per request, which is what the sticky lead saves for
//! short requests.
//!
//! A connection whose packet is not complete after the first read goes to the event loop, which
//! waits for the rest (up to `--socket-timeout`) without holding a thread. A kept-alive HTTP
//! connection waiting for its next request is parked in the threads' own epoll set instead
//! (`server/parking.rs`): its next request wakes a thread directly, and a thread that finishes a
//! request serves the ready ones before it accepts.

use super::dispatch::{Job, JobSource};
use super::http::{HttpSettings, KeepAlive, Peer};
use super::incoming::{Incoming, Outcome};
use super::listener::accept_on;
use super::parking::{Parked, Parking};
use crate::request::Conn;
use crate::sys::event::Epoll;
use crate::sys::process;
use crossbeam_channel::TryRecvError;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

/// How long the leader may be busy with one request before its deputy takes the lead.
const TAKE_OVER_AFTER: Duration = Duration::from_millis(1);

/// How long the leader may run one request before its deputy takes the lead anyway.
const SWITCH_AFTER: Duration = Duration::from_millis(20);

/// How long a worker stays eager after a request blocked.
const EAGER_FOR: Duration = Duration::from_secs(10);

/// How often the deputy looks at the leader.
const DEPUTY_POLL: Duration = Duration::from_millis(1);

/// Polls without a new request after which the deputy rests until the leader wakes it.
const DEPUTY_RESTS_AFTER: u32 = 100;

/// A kept-alive HTTP connection parked between requests.
struct Idle {
    conn: Conn,
    settings: Arc<HttpSettings>,
    peer: Arc<Peer>,
}

/// What reading a kept-alive connection found.
enum Kept {
    /// Its next request, read to the end of its head.
    Job(Job),
    /// Nothing yet: it waits again.
    Idle(Idle),
    /// Closed by the peer, refused, or handed to the event loop.
    Gone,
}

/// What the threads of one worker share: the epoll set and who waits on it.
struct Lobby {
    epoll: Epoll,
    threads: usize,
    /// Kept-alive HTTP connections armed in `epoll`, and those whose next request has come.
    parking: Mutex<Parking<Idle>>,
    lead: Mutex<Lead>,
    /// The deputy waits here.
    deputy_turn: Condvar,
    /// Threads that are neither leader nor deputy wait here.
    followers: Condvar,
}

struct Lead {
    leader: Option<usize>,
    /// The leader's kernel thread id (to see whether it sleeps).
    leader_tid: libc::pid_t,
    /// When the leader took the request it is serving (`None` while it waits on the epoll set).
    busy_since: Option<Instant>,
    /// Requests the leader has taken (the deputy rests when this stops moving).
    taken: u64,
    deputy: Option<usize>,
    /// The deputy sleeps without a timeout: the leader wakes it when it takes a request.
    deputy_resting: bool,
    /// Until when the leader hands the lead on as soon as it takes a request.
    eager_until: Option<Instant>,
    /// When a deputy last took over from a leader found asleep.
    last_takeover: Option<Instant>,
    /// The listeners and the stopping eventfd have left the epoll set (the worker is stopping).
    deaf: bool,
}

/// What the deputy makes of the leader at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The leader waits for connections, or has not been busy long: look again later.
    Wait,
    /// The leader has slept in its request for `TAKE_OVER_AFTER` (the app waits on I/O): take
    /// the lead. `blocking` when a take-over happened within `EAGER_FOR` already: one can be a
    /// fluke (threads starting up contend for the GIL), a second means the app's requests block
    /// and the worker turns eager.
    TakeOver { blocking: bool },
    /// The leader has run one request for `SWITCH_AFTER`: take the lead, so short requests
    /// interleave with the long one under the GIL.
    Switch,
}

impl Lead {
    /// No leader, no deputy: a worker's threads before the first wait.
    fn new() -> Lead {
        Lead {
            leader: None,
            leader_tid: 0,
            busy_since: None,
            taken: 0,
            deputy: None,
            deputy_resting: false,
            eager_until: None,
            last_takeover: None,
            deaf: false,
        }
    }

    /// The deputy's verdict at `now`; `sleeps(tid)` says whether the leader's thread sleeps in
    /// the kernel, and is asked only once the leader has been busy for `TAKE_OVER_AFTER`.
    fn verdict(&self, now: Instant, sleeps: impl FnOnce(libc::pid_t) -> bool) -> Verdict {
        let Some(since) = self.busy_since else {
            return Verdict::Wait;
        };
        let busy = now.saturating_duration_since(since);
        if busy >= TAKE_OVER_AFTER && sleeps(self.leader_tid) {
            let blocking = self
                .last_takeover
                .is_some_and(|t| now.saturating_duration_since(t) < EAGER_FOR);
            return Verdict::TakeOver { blocking };
        }
        if busy >= SWITCH_AFTER {
            return Verdict::Switch;
        }
        Verdict::Wait
    }

    fn eager(&self) -> bool {
        self.eager_until.is_some_and(|t| Instant::now() < t)
    }

    fn turn_eager(&mut self) {
        self.eager_until = Some(Instant::now() + EAGER_FOR);
    }
}

impl Lobby {
    fn lead(&self) -> MutexGuard<'_, Lead> {
        // A poisoned lock only means a thread panicked holding it; the flags are still valid.
        self.lead.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn parking(&self) -> MutexGuard<'_, Parking<Idle>> {
        // As above: a panic elsewhere leaves the table consistent.
        self.parking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Close the parked connections past their deadline, when that is due at `now`.
    fn sweep(&self, now: Instant) {
        let mut parking = self.parking();
        if parking.sweep_due(now) {
            let expired = parking.sweep(now);
            drop(parking);
            drop(expired);
        }
    }
}

/// A Python thread's way to its next request.
pub struct Acceptor {
    source: JobSource,
    lobby: Arc<Lobby>,
    /// This thread's number among the worker's threads.
    id: usize,
    /// This thread was the leader when it last left [`Acceptor::wait_for_job`] (its deputy may have taken
    /// the lead since).
    leader: bool,
    /// Where the next accept round starts (fairness between several listeners).
    next_listener: usize,
    /// When an accept error was last logged (one line per second at most).
    last_error: Option<Instant>,
    /// The last wait for a packet ran out: skip the wait until a packet arrives whole again.
    grace_spent: bool,
    /// A connection [`Acceptor::take`] accepted whose packet was not there yet.
    unfinished: Option<Incoming>,
    /// The HTTP side of the request this thread serves (see `seam.rs`).
    pub(super) serving: Option<Box<super::http::HttpJob>>,
    /// The next request of a kept-alive HTTP connection, already here: served next.
    pub(super) pipelined: Option<Job>,
    /// A request that may be for a static file, kept for [`Acceptor::wait_for_job`]'s caller to
    /// look at detached (see `seam.rs`).
    pub(super) held: Option<Job>,
    /// The read buffer of the last connection parked, reused for the next one taken (idle
    /// connections hold no buffer).
    spare: Vec<u8>,
}

/// What one round over the listeners found.
enum Accepted {
    Job(Job),
    Nothing,
}

/// What [`Acceptor::take`] found.
pub enum Taken {
    /// A request whose head is complete.
    Job(Job),
    /// Nothing now: call [`Acceptor::wait_for_job`].
    Wait,
    /// The worker is stopping and every request has been taken.
    Done,
}

/// What the queue of loop-finished requests had.
enum Queued {
    Job(Job),
    Empty,
    /// The worker is stopping and the queue is empty.
    Closed,
}

impl Acceptor {
    /// One acceptor per thread, sharing one epoll set over the sources' listeners.
    pub fn for_threads(sources: Vec<JobSource>) -> io::Result<Vec<Acceptor>> {
        let Some(first) = sources.first() else {
            return Ok(Vec::new());
        };
        let epoll = Epoll::new()?;
        epoll.add_readable(first.shared.jobs_ready.fd(), JOBS, false)?;
        epoll.add_readable(first.shared.stopping.fd(), STOPPING, false)?;
        for (i, &listener) in first.listeners.iter().enumerate() {
            epoll.add_readable(listener, i as u64, true)?;
        }
        let lobby = Arc::new(Lobby {
            epoll,
            threads: sources.len(),
            parking: Mutex::new(Parking::default()),
            lead: Mutex::new(Lead::new()),
            deputy_turn: Condvar::new(),
            followers: Condvar::new(),
        });
        Ok(sources
            .into_iter()
            .enumerate()
            .map(|(id, source)| Acceptor {
                source,
                lobby: lobby.clone(),
                id,
                leader: false,
                next_listener: 0,
                last_error: None,
                grace_spent: false,
                unfinished: None,
                serving: None,
                pipelined: None,
                held: None,
                spare: Vec::new(),
            })
            .collect())
    }

    /// The source (for retiring).
    pub fn source(&self) -> &JobSource {
        &self.source
    }

    /// This thread's number among the worker's threads (its harakiri slot).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The next request if one can be had without waiting: a queued job, or a connection whose
    /// packet is there. A Python thread calls it attached, so under load it goes from one request
    /// to the next without giving up the GIL.
    pub fn take(&mut self) -> Taken {
        let next = match self.take_queued() {
            Queued::Job(job) => Taken::Job(job),
            Queued::Closed => Taken::Done,
            Queued::Empty => match self.take_parked() {
                Some(job) => Taken::Job(job),
                None if self.source.accepting() => match self.accept() {
                    Accepted::Job(job) => Taken::Job(job),
                    Accepted::Nothing => Taken::Wait,
                },
                None => Taken::Wait,
            },
        };
        match next {
            Taken::Job(_) => self.took_job(),
            Taken::Done => self.resign(),
            Taken::Wait => {}
        }
        next
    }

    /// A kept-alive HTTP connection after its response: its next request when it is already
    /// here (pipelined); else, with nothing of it read, it is parked in the threads' epoll set;
    /// with part of it read, it goes to the event loop to wait for the rest. Either way it holds
    /// no thread.
    pub fn keep_alive(&mut self, kept: KeepAlive) -> Option<Job> {
        let idle = kept
            .settings
            .keepalive
            .unwrap_or(kept.settings.header_timeout);
        if kept.leftover.is_empty() {
            let KeepAlive {
                conn,
                leftover,
                settings,
                peer,
            } = kept;
            if leftover.capacity() > self.spare.capacity() {
                self.spare = leftover;
            }
            return self.park(Idle {
                conn,
                settings,
                peer,
            });
        }
        let deadline = Instant::now() + idle;
        let mut incoming = Incoming::http(
            kept.conn,
            kept.settings,
            kept.leftover,
            Some(kept.peer),
            deadline,
        );
        match incoming.read(self.source.timeouts.idle) {
            Outcome::Ready(head) => Some(incoming.into_job(head)),
            Outcome::Close => None,
            // A stopping worker keeps no idle connection.
            Outcome::Pending if !self.source.accepting() && incoming.idle_http() => None,
            // A stopping worker's loop takes no more: the idle connection is closed.
            Outcome::Pending => self.source.hand_off(incoming).and(None),
        }
    }

    /// Park an idle kept-alive connection in the threads' epoll set until its next request or
    /// its keep-alive deadline; its request at once when bytes of it may already be here.
    fn park(&mut self, mut idle: Idle) -> Option<Job> {
        loop {
            // A stopping worker keeps no idle connection.
            if !self.source.accepting() {
                return None;
            }
            if idle.conn.maybe_more() {
                idle = match self.read_kept(idle) {
                    Kept::Job(job) => return Some(job),
                    Kept::Gone => return None,
                    Kept::Idle(idle) => idle,
                };
            }
            let fd = idle.conn.fd();
            let slot = usize::try_from(fd).ok()?;
            let wait = idle
                .settings
                .keepalive
                .unwrap_or(idle.settings.header_timeout);
            let mut parking = self.lobby.parking();
            if !idle.conn.watched() {
                let token = parking.register(slot);
                if let Err(e) = self.lobby.epoll.add_edge(fd, token) {
                    drop(parking);
                    tracing::warn!(
                        "cannot wait for the next request of a kept-alive connection: {e}"
                    );
                    return None;
                }
                idle.conn.set_watched();
            }
            match parking.park(slot, idle, Instant::now() + wait) {
                Parked::Waiting | Parked::Refused(_) => return None,
                Parked::ReadNow(back) => {
                    drop(parking);
                    idle = match self.read_kept(back) {
                        Kept::Job(job) => return Some(job),
                        Kept::Gone => return None,
                        Kept::Idle(idle) => idle,
                    };
                }
            }
        }
    }

    /// Read a kept-alive connection that has (or may have) bytes of its next request.
    fn read_kept(&mut self, idle: Idle) -> Kept {
        let Idle {
            conn,
            settings,
            peer,
        } = idle;
        let deadline = Instant::now() + settings.header_timeout;
        let buf = std::mem::take(&mut self.spare);
        let mut incoming = Incoming::http(conn, settings, buf, Some(peer), deadline);
        match incoming.read(self.source.timeouts.idle) {
            Outcome::Ready(head) => Kept::Job(incoming.into_job(head)),
            Outcome::Close => Kept::Gone,
            // Nothing of a request after all: it waits again.
            Outcome::Pending if incoming.idle_http() => match incoming.into_idle_http() {
                Some((conn, settings, Some(peer))) => Kept::Idle(Idle {
                    conn,
                    settings,
                    peer,
                }),
                _ => Kept::Gone,
            },
            // Part of a head: the event loop waits for the rest (up to the header timeout).
            Outcome::Pending => {
                // A stopping worker's loop takes no more: then the connection is closed.
                drop(self.source.hand_off(incoming));
                Kept::Gone
            }
        }
    }

    /// The next parked connection whose request has arrived, read to its head. One whose head
    /// arrived in part goes to the event loop; one the peer closed is dropped.
    fn take_parked(&mut self) -> Option<Job> {
        loop {
            let idle = {
                let mut parking = self.lobby.parking();
                if parking.is_empty() {
                    return None;
                }
                let now = Instant::now();
                if parking.sweep_due(now) {
                    let expired = parking.sweep(now);
                    drop(parking);
                    drop(expired);
                    continue;
                }
                parking.next_ready()?
            };
            match self.read_kept(idle) {
                Kept::Job(job) => return Some(job),
                Kept::Gone => {}
                Kept::Idle(idle) => {
                    if let Some(job) = self.park(idle) {
                        return Some(job);
                    }
                }
            }
        }
    }

    /// This thread is about to serve a request.
    fn took_job(&mut self) {
        if self.lobby.threads > 1 && self.leader {
            self.mark_busy();
        }
    }

    /// The leader took a request: start the deputy's clock, or hand the lead on at once when
    /// eager.
    fn mark_busy(&mut self) {
        let mut lead = self.lobby.lead();
        if lead.leader != Some(self.id) {
            self.leader = false;
            return;
        }
        lead.taken += 1;
        if lead.eager() {
            lead.leader = None;
            lead.busy_since = None;
            self.leader = false;
            lead.deputy_resting = false;
            self.lobby.deputy_turn.notify_one();
            if lead.deputy.is_none() {
                self.lobby.followers.notify_one();
            }
            return;
        }
        lead.busy_since = Some(Instant::now());
        if std::mem::take(&mut lead.deputy_resting) {
            self.lobby.deputy_turn.notify_one();
        }
    }

    /// Wait until a request may be there (then [`Acceptor::take`] again), or finish reading
    /// the connection `take` accepted before its packet was there. Blocks: a Python thread
    /// calls it detached.
    ///
    /// A thread woken here takes the GIL before it accepts: while another thread is running
    /// requests back to back it keeps them, and this one accepts only once that thread lets the
    /// GIL go (the app waits on I/O, or the switch interval runs out). Accepting first would only
    /// leave the connection waiting for the GIL inside this thread instead of in the backlog, at
    /// the price of a GIL hand-off per request.
    pub fn wait_for_job(&mut self) -> Option<Job> {
        if let Some(incoming) = self.unfinished.take() {
            let job = self.finish_new(incoming);
            if job.is_some() {
                self.took_job();
            }
            return job;
        }
        self.lead();
        if !self.source.accepting() {
            self.deafen();
        }
        if !self.lobby.parking().has_ready() {
            self.sleep();
        }
        None
    }

    /// Become the leader: at once if there is none, else as deputy when the leader has been busy
    /// too long. Returns once this thread leads.
    fn lead(&mut self) {
        let lobby = self.lobby.clone();
        let mut lead = lobby.lead();
        let mut seen = lead.taken;
        let mut quiet_polls = 0;
        loop {
            match lead.leader {
                None => break,
                Some(leader) if leader == self.id => break,
                Some(_) => {}
            }
            match lead.deputy {
                None => lead.deputy = Some(self.id),
                Some(deputy) if deputy == self.id => {}
                Some(_) => {
                    lead = lobby
                        .followers
                        .wait(lead)
                        .unwrap_or_else(|e| e.into_inner());
                    continue;
                }
            }
            let now = Instant::now();
            match lead.verdict(now, thread_sleeps) {
                Verdict::Wait => {}
                Verdict::TakeOver { blocking } => {
                    if blocking {
                        if !lead.eager() {
                            tracing::debug!("requests block: threads take the lead eagerly");
                        }
                        lead.turn_eager();
                    }
                    lead.last_takeover = Some(now);
                    break;
                }
                Verdict::Switch => {
                    tracing::debug!("the leader ran one request too long: its deputy leads");
                    break;
                }
            }
            if lead.taken != seen {
                seen = lead.taken;
                quiet_polls = 0;
            }
            if quiet_polls < DEPUTY_RESTS_AFTER {
                quiet_polls += 1;
                lead = lobby
                    .deputy_turn
                    .wait_timeout(lead, DEPUTY_POLL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            } else {
                lead.deputy_resting = true;
                lead = lobby
                    .deputy_turn
                    .wait(lead)
                    .unwrap_or_else(|e| e.into_inner());
                lead.deputy_resting = false;
                quiet_polls = 0;
            }
        }
        lead.leader = Some(self.id);
        lead.leader_tid = process::thread_id();
        lead.busy_since = None;
        if lead.deputy == Some(self.id) {
            // A follower becomes the new deputy.
            lead.deputy = None;
            lobby.followers.notify_one();
        }
        self.leader = true;
    }

    /// Leave the lead and the deputy's place (the thread exits).
    fn resign(&mut self) {
        let mut lead = self.lobby.lead();
        if lead.leader == Some(self.id) {
            lead.leader = None;
            lead.busy_since = None;
            // The deputy (or, without one, a follower) takes the lead. Only an exiting thread
            // resigns, so waking every follower costs nothing that matters.
            self.lobby.deputy_turn.notify_one();
            self.lobby.followers.notify_all();
        }
        if lead.deputy == Some(self.id) {
            lead.deputy = None;
            self.lobby.followers.notify_one();
        }
        self.leader = false;
    }

    fn take_queued(&mut self) -> Queued {
        match self.source.rx.try_recv() {
            Ok(job) => {
                if !self.source.rx.is_empty() {
                    // Pass the wake-up on: another idle thread can take the next one.
                    self.source.shared.jobs_ready.poke();
                }
                Queued::Job(job)
            }
            Err(TryRecvError::Disconnected) => {
                // Wake the next waiting thread so it sees the end too.
                self.source.shared.jobs_ready.poke();
                Queued::Closed
            }
            Err(TryRecvError::Empty) => Queued::Empty,
        }
    }

    /// Accept from each listener until one yields a complete request or all are empty. A
    /// connection whose packet is not there yet ends the round: it is kept for
    /// [`Acceptor::wait_for_job`], which waits for it detached.
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
                self.next_listener = (index + 1) % count;
                let mut incoming = match &self.source.http {
                    Some(h) if index >= h.first_listener => Incoming::http(
                        Conn::new(http_socket(socket)),
                        h.clone(),
                        Vec::new(),
                        None,
                        Instant::now() + h.header_timeout,
                    ),
                    _ => Incoming::new(Conn::new(socket), self.source.limits, self.source.timeouts),
                };
                match incoming.read(self.source.timeouts.idle) {
                    Outcome::Ready(head) => {
                        self.grace_spent = false;
                        return Accepted::Job(incoming.into_job(head));
                    }
                    Outcome::Close => {}
                    Outcome::Pending => {
                        self.unfinished = Some(incoming);
                        return Accepted::Nothing;
                    }
                }
                if !self.source.accepting() {
                    return Accepted::Nothing;
                }
            }
        }
        Accepted::Nothing
    }

    /// A connection just accepted whose packet is not all there: wait up to [`PACKET_GRACE`] for
    /// it, then hand it to the loop.
    fn finish_new(&mut self, mut incoming: Incoming) -> Option<Job> {
        if !self.grace_spent {
            let grace = Instant::now() + PACKET_GRACE;
            while incoming.conn.wait_readable(grace).is_ok() {
                match incoming.read(self.source.timeouts.idle) {
                    Outcome::Pending => {}
                    Outcome::Ready(head) => return Some(incoming.into_job(head)),
                    Outcome::Close => return None,
                }
            }
            self.grace_spent = true;
        }
        match self.source.hand_off(incoming) {
            None => None,
            // The loop is finishing: read the rest here.
            Some(incoming) => self.finish_reading(incoming),
        }
    }

    fn accept_failed(&mut self, index: usize, e: &io::Error) {
        let code = e.raw_os_error().unwrap_or(0);
        match code {
            libc::EAGAIN | libc::ECONNABORTED | libc::EPROTO | libc::EPERM => return,
            // The worker is stopping and gave up the listener under this thread.
            _ if !self.source.accepting() => return,
            _ => {}
        }
        if self
            .last_error
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::error!("accept on listener {index} failed: {e}");
            self.last_error = Some(Instant::now());
        }
        if matches!(code, libc::EMFILE | libc::ENFILE) {
            // The loop closes the oldest half-sent connections: complete requests come first.
            self.source.report_fd_pressure();
        }
        if matches!(
            code,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        ) {
            std::thread::sleep(ACCEPT_BACKOFF);
        } else {
            // The listener itself is unusable (closed at shutdown): stop watching it.
            self.lobby.epoll.remove(self.source.listeners[index]);
        }
    }

    /// Read a handed-back connection to the end of its head, waiting on the socket.
    fn finish_reading(&self, mut incoming: Incoming) -> Option<Job> {
        loop {
            if incoming.conn.wait_readable(incoming.deadline).is_err() {
                return None;
            }
            match incoming.read(self.source.timeouts.idle) {
                Outcome::Ready(head) => return Some(incoming.into_job(head)),
                Outcome::Close => return None,
                Outcome::Pending => {}
            }
        }
    }

    /// Take the listeners and the stopping signal out of the epoll set (once per worker).
    fn deafen(&self) {
        self.deafener().deafen();
    }

    /// A handle that takes the listeners out of this worker's epoll set from another thread: the
    /// event loop must, before it gives up its listening sockets (epoll would keep watching a
    /// socket another process still holds).
    pub fn deafener(&self) -> Deafener {
        Deafener {
            lobby: self.lobby.clone(),
            source: self.source.clone_shared(),
        }
    }

    /// Sleep until a listener, the queue, a parked connection or the stop signal has something,
    /// or a parked connection's deadline comes.
    fn sleep(&mut self) {
        let timeout = self.lobby.parking().timeout(Instant::now());
        let ready = match self.lobby.epoll.wait(timeout) {
            Ok(ready) => ready,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("epoll_wait failed: {e}");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
                return;
            }
        };
        let mut parking = None;
        for token in ready.tokens() {
            match token {
                JOBS => self.source.shared.jobs_ready.clear(),
                STOPPING => {}
                _ if Parking::<Idle>::is_token(token) => parking
                    .get_or_insert_with(|| self.lobby.parking())
                    .fire(token),
                _ => {}
            }
        }
        drop(parking);
        if timeout.is_some() {
            self.lobby.sweep(Instant::now());
        }
    }
}

/// See [`Acceptor::deafener`].
pub struct Deafener {
    lobby: Arc<Lobby>,
    source: (Arc<[RawFd]>, Arc<super::dispatch::Shared>),
}

impl Deafener {
    /// Take the listeners and the stopping signal out of the epoll set, and close the parked
    /// kept-alive connections (once per worker).
    pub fn deafen(&self) {
        let mut lead = self.lobby.lead();
        if lead.deaf {
            return;
        }
        for &listener in self.source.0.iter() {
            self.lobby.epoll.remove(listener);
        }
        self.lobby.epoll.remove(self.source.1.stopping.fd());
        lead.deaf = true;
        drop(lead);
        let idle = self.lobby.parking().close();
        drop(idle);
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.resign();
    }
}

/// An accepted HTTP connection without Nagle's delay: a response written in pieces (a streaming
/// app's chunks) would otherwise wait for the client's delayed acknowledgement, 40 ms each, on a
/// kept-alive connection. (A uwsgi connection is closed after its response, which flushes it.)
fn http_socket(socket: crate::sys::fd::Socket) -> crate::sys::fd::Socket {
    // A unix socket has no Nagle to turn off.
    let _ = socket.set_nodelay();
    socket
}

/// Whether thread `tid` of this process is asleep in the kernel (waiting on I/O, a lock or a
/// timer) rather than running or ready to run: the state letter in `/proc/self/task/TID/stat`.
fn thread_sleeps(tid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain anything.
    let Some(end) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    matches!(stat.get(end + 2), Some(b'S' | b'D'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn busy_for(busy: Duration, now: Instant) -> Lead {
        Lead {
            busy_since: Some(now - busy),
            leader: Some(0),
            ..Lead::new()
        }
    }

    #[test]
    fn a_leader_waiting_for_connections_is_left_alone() {
        let lead = Lead::new();
        let verdict = lead.verdict(Instant::now(), |_| panic!("not asked"));
        assert_eq!(verdict, Verdict::Wait);
    }

    #[test]
    fn a_short_request_is_not_looked_into() {
        let now = Instant::now();
        let lead = busy_for(TAKE_OVER_AFTER - MS / 2, now);
        assert_eq!(lead.verdict(now, |_| panic!("not asked")), Verdict::Wait);
    }

    #[test]
    fn a_leader_asleep_in_its_request_is_taken_over_and_twice_means_blocking() {
        let now = Instant::now();
        let mut lead = busy_for(2 * MS, now);
        assert_eq!(
            lead.verdict(now, |_| true),
            Verdict::TakeOver { blocking: false }
        );
        lead.last_takeover = Some(now - Duration::from_secs(1));
        assert_eq!(
            lead.verdict(now, |_| true),
            Verdict::TakeOver { blocking: true }
        );
        lead.last_takeover = Some(now - EAGER_FOR - MS);
        assert_eq!(
            lead.verdict(now, |_| true),
            Verdict::TakeOver { blocking: false }
        );
    }

    #[test]
    fn a_leader_running_python_keeps_the_lead_until_the_switch_interval() {
        let now = Instant::now();
        let lead = busy_for(2 * MS, now);
        assert_eq!(lead.verdict(now, |_| false), Verdict::Wait);
        let lead = busy_for(SWITCH_AFTER, now);
        assert_eq!(lead.verdict(now, |_| false), Verdict::Switch);
    }

    #[test]
    fn the_sleep_check_is_asked_about_the_leaders_thread() {
        let now = Instant::now();
        let mut lead = busy_for(5 * MS, now);
        lead.leader_tid = 4242;
        let mut asked = None;
        lead.verdict(now, |tid| {
            asked = Some(tid);
            false
        });
        assert_eq!(asked, Some(4242));
    }

    #[test]
    fn thread_sleeps_reads_this_process_own_threads() {
        // This thread is running while it asks about itself.
        assert!(!thread_sleeps(process::thread_id()));
        // A thread parked on a channel sleeps in the kernel.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tid_tx.send(process::thread_id()).unwrap();
            rx.recv().ok();
        });
        let tid = tid_rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !thread_sleeps(tid) {
            assert!(
                Instant::now() < deadline,
                "the parked thread never showed as asleep"
            );
            std::thread::yield_now();
        }
        drop(tx);
        t.join().unwrap();
        assert!(!thread_sleeps(0), "no such thread");
    }
}
