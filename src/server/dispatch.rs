//! The seam between the event loop and the Python threads.
//!
//! A Python thread that is free takes its next request itself: a job the loop queued, or else a
//! new connection from the listeners ([`crate::server::Acceptor`]), read at once. Most requests
//! therefore never cross threads (no wake-up, no context switch), and a busy thread accepts
//! nothing, so the kernel gives each connection to a thread or worker process that is free, as
//! uWSGI's threads do. The loop keeps what needs waiting for: connections whose packet arrived in
//! pieces (handed over by the thread that accepted them, queued back as jobs once complete),
//! signals, and the harakiri watchdog.
//!
//! A job owns its connection and the bytes already read, so once a request is dispatched nothing
//! in the event loop refers to it.

use super::incoming::Incoming;
use super::incoming::Timeouts;
use super::transfer::Transfer;
use crate::protocol::{Limits, RequestHead};
use crate::request::Conn;
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request, from the moment its head is complete.
#[derive(Debug)]
pub struct Job {
    /// The connection the request came in on; the response goes out on it.
    pub conn: Conn,
    /// The packet: header, vars block, and the body bytes that arrived with it.
    pub buf: Vec<u8>,
    /// The validated packet head: modifiers and where the vars block lies in `buf`.
    pub head: RequestHead,
    /// When the connection was accepted (the log line's "in N msecs" counts from here).
    pub accepted: Instant,
    /// The HTTP side of a request that came in on an `--http-socket`.
    pub http: Option<Box<crate::server::http::HttpJob>>,
}

/// Something that wakes the event loop (its mio `Waker`, behind a closure so this module stays
/// free of mio).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// An eventfd: a counter a thread can wait on with epoll.
pub type Notify = crate::sys::event::EventFd;

/// State the loop and the threads share.
pub struct Shared {
    /// False once the worker stops taking new connections (a stop signal, or retiring).
    accepting: AtomicBool,
    retire: AtomicBool,
    /// Readable while a job may be waiting in the queue.
    pub jobs_ready: Notify,
    /// Readable once `accepting` is false (never cleared): wakes every waiting thread.
    pub stopping: Notify,
    wake_loop: Wake,
    /// Python threads still running (each holds a [`JobSource`]).
    alive: AtomicUsize,
    /// What the threads give the loop to finish; `None` once the loop has stopped taking it.
    handoff: Mutex<Option<Handoffs>>,
    /// A thread could not accept for want of descriptors: the loop closes its oldest half-sent
    /// connections.
    fd_pressure: AtomicBool,
}

/// What the threads gave the event loop since it last looked.
#[derive(Default)]
pub struct Handoffs {
    /// Connections a thread accepted whose packet is not complete, for the loop to finish reading.
    pub reading: Vec<Incoming>,
    /// Static responses a slow client has not taken yet, for the loop to finish sending.
    pub sending: Vec<Transfer>,
}

impl Shared {
    fn handoff(&self) -> std::sync::MutexGuard<'_, Option<Handoffs>> {
        // A poisoned lock only means a thread panicked holding it; the vector is still valid.
        self.handoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop_accepting(&self) {
        if self.accepting.swap(false, Ordering::SeqCst) {
            self.stopping.poke();
        }
    }
}

/// The event loop's end.
pub struct JobSink {
    tx: Option<Sender<Job>>,
    shared: Arc<Shared>,
}

/// A Python thread's end: one per thread.
pub struct JobSource {
    pub(crate) rx: Receiver<Job>,
    pub(crate) shared: Arc<Shared>,
    /// The listening sockets this worker accepts from.
    pub(crate) listeners: Arc<[RawFd]>,
    pub(crate) limits: Limits,
    pub(crate) timeouts: Timeouts,
    /// The HTTP settings, when some listeners speak HTTP.
    pub(crate) http: Option<Arc<crate::server::http::HttpSettings>>,
    /// The requests in flight, for the harakiri watchdog (`None` without `--harakiri`).
    pub(crate) inflight: Option<Arc<InFlight>>,
    /// `--static-map` and friends (`None` without any): files sent before any Python runs.
    pub(crate) statics: Option<Arc<crate::statics::StaticRules>>,
}

/// The queue and the shared state for `threads` Python threads accepting from `listeners`.
pub fn channel(
    threads: usize,
    listeners: Vec<RawFd>,
    limits: Limits,
    timeouts: Timeouts,
    inflight: Option<Arc<InFlight>>,
    wake_loop: Wake,
    http: Option<Arc<crate::server::http::HttpSettings>>,
    statics: Option<Arc<crate::statics::StaticRules>>,
) -> io::Result<(JobSink, Vec<JobSource>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        accepting: AtomicBool::new(true),
        retire: AtomicBool::new(false),
        jobs_ready: Notify::new()?,
        stopping: Notify::new()?,
        wake_loop,
        alive: AtomicUsize::new(threads),
        handoff: Mutex::new(Some(Handoffs::default())),
        fd_pressure: AtomicBool::new(false),
    });
    let listeners: Arc<[RawFd]> = listeners.into();
    let sources = (0..threads)
        .map(|_| JobSource {
            rx: rx.clone(),
            shared: shared.clone(),
            listeners: listeners.clone(),
            limits,
            timeouts,
            http: http.clone(),
            inflight: inflight.clone(),
            statics: statics.clone(),
        })
        .collect();
    let sink = JobSink {
        tx: Some(tx),
        shared,
    };
    Ok((sink, sources))
}

impl JobSink {
    /// Queue a job for the next free thread; gives it back when every thread has exited.
    pub fn offer(&self, job: Job) -> Result<(), Job> {
        let tx = self
            .tx
            .as_ref()
            .expect("the queue is open while the sink lives");
        tx.send(job).map_err(|e| e.0)?;
        self.shared.jobs_ready.poke();
        Ok(())
    }

    /// What was handed over since the last call.
    pub fn take_handoffs(&self) -> Handoffs {
        self.shared
            .handoff()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Take nothing more from the threads (they finish reading and sending themselves from now
    /// on); returns what is still waiting.
    pub fn close_handoffs(&self) -> Handoffs {
        self.shared.handoff().take().unwrap_or_default()
    }

    /// Tell the threads to accept nothing more.
    pub fn stop_accepting(&self) {
        self.shared.stop_accepting();
    }

    /// Whether a thread asked the worker to retire (a recycling limit was reached).
    pub fn retire_requested(&self) -> bool {
        self.shared.retire.load(Ordering::SeqCst)
    }

    /// Whether a thread ran out of descriptors since the last call.
    pub fn take_fd_pressure(&self) -> bool {
        self.shared.fd_pressure.swap(false, Ordering::SeqCst)
    }

    /// Whether every Python thread has exited.
    pub fn threads_gone(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst) == 0
    }
}

impl Drop for JobSink {
    /// Close the queue: threads exit once it is empty.
    fn drop(&mut self) {
        self.shared.stop_accepting();
        drop(self.tx.take());
        self.shared.jobs_ready.poke();
    }
}

impl JobSource {
    /// Whether retiring was already asked for.
    pub fn retire_requested(&self) -> bool {
        self.shared.retire.load(Ordering::SeqCst)
    }

    /// Stop accepting and ask the loop to end so this worker can be replaced (once; later calls do
    /// nothing). True the first time.
    pub fn request_retire(&self) -> bool {
        let first = !self.shared.retire.swap(true, Ordering::SeqCst);
        if first {
            self.shared.stop_accepting();
            (self.shared.wake_loop)();
        }
        first
    }

    /// The listeners and the shared state (for [`crate::server::acceptor::Deafener`]).
    pub(crate) fn clone_shared(&self) -> (Arc<[RawFd]>, Arc<Shared>) {
        (self.listeners.clone(), self.shared.clone())
    }

    /// Tell the loop that accepting failed for want of descriptors (once until it has acted).
    pub(crate) fn report_fd_pressure(&self) {
        if !self.shared.fd_pressure.swap(true, Ordering::SeqCst) {
            (self.shared.wake_loop)();
        }
    }

    /// Whether new connections may be accepted.
    pub(crate) fn accepting(&self) -> bool {
        self.shared.accepting.load(Ordering::Acquire)
    }

    /// Give a connection whose packet is incomplete to the loop; gives it back when the loop takes
    /// no more.
    pub(crate) fn hand_off(&self, incoming: Incoming) -> Option<Incoming> {
        match self.shared.handoff().as_mut() {
            Some(waiting) => waiting.reading.push(incoming),
            None => return Some(incoming),
        }
        (self.shared.wake_loop)();
        None
    }

    /// Give a static response the client has not taken yet to the loop; gives it back when the
    /// loop takes no more.
    pub(crate) fn hand_off_transfer(&self, transfer: Transfer) -> Option<Transfer> {
        match self.shared.handoff().as_mut() {
            Some(waiting) => waiting.sending.push(transfer),
            None => return Some(transfer),
        }
        (self.shared.wake_loop)();
        None
    }
}

impl Drop for JobSource {
    fn drop(&mut self) {
        if self.shared.alive.fetch_sub(1, Ordering::SeqCst) == 1 {
            (self.shared.wake_loop)();
        }
    }
}

/// A request a Python thread is running, as the harakiri watchdog sees it.
#[derive(Clone)]
pub struct Running {
    /// The connection, so the watchdog can answer and close it.
    pub conn: Arc<Conn>,
    /// When the app was called; harakiri counts from here.
    pub started: Instant,
    /// Method and URI, for the log.
    pub what: String,
}

/// The requests in flight, one slot per Python thread; filled only when `--harakiri` is set.
pub struct InFlight {
    slots: Vec<Mutex<Option<Running>>>,
}

impl InFlight {
    /// Slots for `threads` threads.
    pub fn new(threads: usize) -> InFlight {
        InFlight {
            slots: (0..threads).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self, core: usize) -> std::sync::MutexGuard<'_, Option<Running>> {
        // A poisoned slot only means a thread panicked while holding it; the data is still valid.
        self.slots[core].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Thread `core` started a request.
    pub fn start(&self, core: usize, running: Running) {
        *self.slot(core) = Some(running);
    }

    /// Thread `core` finished its request.
    pub fn finish(&self, core: usize) {
        *self.slot(core) = None;
    }

    /// Requests running longer than `limit`.
    pub fn overdue(&self, limit: Duration) -> Vec<(usize, Running)> {
        (0..self.slots.len())
            .filter_map(|core| {
                let slot = self.slot(core);
                slot.as_ref()
                    .filter(|r| r.started.elapsed() > limit)
                    .map(|r| (core, r.clone()))
            })
            .collect()
    }
}
