//! The seam between the event loop and the Python threads: a bounded queue of [`Job`]s.
//!
//! A job owns its connection and the bytes already read, so once a request is dispatched nothing in
//! the event loop refers to it. When every thread is busy and the queue is full the loop parks the
//! job and stops accepting (the kernel backlog and the other workers take the load); a thread that
//! takes a job once the queue has drained to half wakes the loop. The pause flag and the queue's own
//! locking make a lost wake-up impossible: the loop sets the flag, then tries the queue once more; a
//! thread takes a job, then reads the flag.

use crate::protocol::RequestHead;
use crate::server::conn::Conn;
use crossbeam_channel::{Receiver, RecvError, Sender, TryRecvError, TrySendError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// One request, from the moment its head is complete.
#[derive(Debug)]
pub struct Job {
    pub conn: Conn,
    /// The packet: header, vars block, and the body bytes that arrived with it.
    pub buf: Vec<u8>,
    pub head: RequestHead,
    /// When the connection was accepted (the log line's "in N msecs" counts from here).
    pub accepted: Instant,
    pub accepted_wall: SystemTime,
}

/// Something that wakes the event loop (its mio `Waker`, behind a closure so this module stays
/// free of mio).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The event loop's end of the queue.
pub struct JobSink {
    tx: Sender<Job>,
    paused: Arc<AtomicBool>,
    retire: Arc<AtomicBool>,
}

/// A Python thread's end of the queue.
#[derive(Clone)]
pub struct JobSource {
    rx: Receiver<Job>,
    paused: Arc<AtomicBool>,
    wake: Wake,
    retire: Arc<AtomicBool>,
    /// A paused loop is woken once the queue has drained to this many jobs, not at every take: one
    /// wake-up (and context switch) per batch instead of one per request.
    low_water: usize,
}

/// Jobs queued per Python thread before the loop stops accepting, when this is the only worker
/// process: nothing else could take the load, and a deep queue means a busy thread finds its next
/// job waiting instead of sleeping until the loop hands one over.
const JOBS_PER_THREAD_ALONE: usize = 16;

/// The same when several worker processes share the listeners: two jobs waiting per thread, so a
/// process with every thread busy stops accepting and the others take the connections (uWSGI's
/// threads accept only when free; a deep queue here would leave slow requests waiting behind each
/// other while another worker idles).
const JOBS_PER_THREAD_SHARED: usize = 2;

/// A queue for `threads` Python threads; `alone` when this is the only worker process. When it is
/// full the loop stops accepting, and the other workers (or the kernel backlog) take the load.
pub fn queue(threads: usize, alone: bool, wake: Wake) -> (JobSink, JobSource) {
    let capacity = if alone {
        (threads.max(1) * JOBS_PER_THREAD_ALONE).max(32)
    } else {
        threads.max(1) * JOBS_PER_THREAD_SHARED
    };
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let paused = Arc::new(AtomicBool::new(false));
    let retire = Arc::new(AtomicBool::new(false));
    let sink = JobSink {
        tx,
        paused: paused.clone(),
        retire: retire.clone(),
    };
    let source = JobSource {
        rx,
        paused,
        wake,
        retire,
        low_water: capacity / 2,
    };
    (sink, source)
}

/// What [`JobSink::offer`] did with a job.
pub enum Offer {
    Queued,
    /// The queue is full and the pause flag is set: park the job and stop accepting.
    Full(Job),
    /// Every Python thread has exited.
    Closed(Job),
}

impl JobSink {
    /// Queue a job without waiting.
    pub fn offer(&self, job: Job) -> Offer {
        match self.tx.try_send(job) {
            Ok(()) => Offer::Queued,
            Err(TrySendError::Disconnected(job)) => Offer::Closed(job),
            Err(TrySendError::Full(job)) => {
                self.paused.store(true, Ordering::SeqCst);
                // A thread may have taken a job between the failed send and the flag.
                match self.tx.try_send(job) {
                    Ok(()) => {
                        self.paused.store(false, Ordering::SeqCst);
                        Offer::Queued
                    }
                    Err(TrySendError::Full(job)) => Offer::Full(job),
                    Err(TrySendError::Disconnected(job)) => Offer::Closed(job),
                }
            }
        }
    }

    /// Whether a job offered now would be queued. When not, the pause flag is set (as by a full
    /// [`JobSink::offer`]) so the thread that makes room wakes the loop.
    pub fn has_room(&self) -> bool {
        if !self.tx.is_full() {
            return true;
        }
        self.paused.store(true, Ordering::SeqCst);
        if self.tx.is_full() {
            return false;
        }
        self.paused.store(false, Ordering::SeqCst);
        true
    }

    /// Queue a job, waiting for room (only at shutdown, when nothing else needs the loop).
    pub fn send_blocking(&self, job: Job) -> Result<(), Job> {
        self.tx.send(job).map_err(|e| e.0)
    }

    /// Whether a thread asked the worker to retire (a recycling limit was reached).
    pub fn retire_requested(&self) -> bool {
        self.retire.load(Ordering::SeqCst)
    }
}

impl JobSource {
    /// Whether retiring was already asked for.
    pub fn retire_requested(&self) -> bool {
        self.retire.load(Ordering::SeqCst)
    }

    /// Ask the loop to stop accepting so this worker can be replaced (once; later calls do nothing).
    pub fn request_retire(&self) {
        if !self.retire.swap(true, Ordering::SeqCst) {
            (self.wake)();
        }
    }

    /// Take the next job: `f` is called to block (a Python thread detaches there), and is skipped when
    /// a job is already waiting. `None` once the loop has closed the queue and it is empty.
    pub fn next(
        &self,
        block: impl FnOnce(&Receiver<Job>) -> Result<Job, RecvError>,
    ) -> Option<Job> {
        let job = match self.rx.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Empty) => block(&self.rx).ok()?,
            Err(TryRecvError::Disconnected) => return None,
        };
        // The loop sets the flag before its last try, and this thread reads it after its take, so
        // one side always sees the other: the paused loop is woken before the queue runs dry.
        if self.paused.load(Ordering::SeqCst)
            && self.rx.len() <= self.low_water
            && self.paused.swap(false, Ordering::SeqCst)
        {
            (self.wake)();
        }
        Some(job)
    }
}

/// A request a Python thread is running, as the harakiri watchdog sees it.
#[derive(Clone)]
pub struct Running {
    pub conn: Arc<Conn>,
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
