//! Per-worker and per-thread counters in memory shared by the master and every worker: a mapping
//! made before the first fork, so a worker's writes are the master's reads (for the stats server,
//! recycling and the log line's instance-wide request count) without any message passing.
//!
//! Every field is an atomic in a `#[repr(C)]` struct; nothing in the mapping is a pointer, so it
//! means the same in every process.

use crate::sys::host::SharedSlice;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Instance-wide counters.
#[repr(C)]
#[derive(Default)]
pub struct Totals {
    /// Requests served by every worker since the master started.
    pub requests: AtomicU64,
    /// 1 once the master shuts down: the listening sockets close everywhere, so a stopping
    /// worker takes what their backlogs hold before it lets go of them.
    pub listeners_closing: AtomicU32,
}

/// One worker process.
#[repr(C)]
#[derive(Default)]
pub struct WorkerSlot {
    /// The worker's process id; 0 when no process holds the slot.
    pub pid: AtomicI32,
    /// 1 while the worker accepts connections, 0 while it stops or is being replaced.
    pub accepting: AtomicU32,
    /// 1 once the worker's threads are up and accepting (set by the worker itself), 0 from its spawn
    /// until then and again once it stops: what chain reloads, readiness and `READY=1` wait for.
    pub ready: AtomicU32,
    /// Requests served by this worker id, across respawns.
    pub requests: AtomicU64,
    /// Requests served since the last spawn.
    pub delta_requests: AtomicU64,
    /// Requests whose app raised (or broke the WSGI contract).
    pub exceptions: AtomicU64,
    /// Times a request of this worker ran past `--harakiri`.
    pub harakiri_count: AtomicU64,
    /// Times this worker id has been forked again.
    pub respawn_count: AtomicU64,
    /// Epoch seconds of the last spawn.
    pub last_spawn: AtomicU64,
    /// Response bytes sent.
    pub tx: AtomicU64,
    /// Microseconds spent serving requests.
    pub running_time: AtomicU64,
    /// Resident set size in bytes after the last request, with `--memory-report`.
    pub rss: AtomicU64,
    /// Address space in bytes after the last request, with `--memory-report`.
    pub vsz: AtomicU64,
    /// Requests by status class: 1xx, 2xx, 3xx, 4xx, 5xx, anything else.
    pub status_classes: [AtomicU64; 6],
    /// Requests by duration: one count per [`DURATION_BUCKETS_US`] bound (a request counts in the
    /// first bound it is under), and a last slot for the slower ones.
    pub durations: [AtomicU64; DURATION_BUCKETS_US.len() + 1],
}

/// Upper bounds of the request duration histogram, in microseconds (Prometheus' default buckets).
pub const DURATION_BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

impl WorkerSlot {
    /// Count a finished request's status class and duration (for the metrics).
    pub fn observe(&self, status: u16, micros: u64) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.status_classes[class].fetch_add(1, Ordering::Relaxed);
        let bucket = DURATION_BUCKETS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(DURATION_BUCKETS_US.len());
        self.durations[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// One Python thread of a worker ("core" in uWSGI's words).
#[repr(C)]
#[derive(Default)]
pub struct CoreSlot {
    /// Requests this thread has finished.
    pub requests: AtomicU64,
    /// Epoch microseconds when the running request started; 0 when idle.
    pub request_start: AtomicU64,
    /// Responses cut short because writing to the client failed.
    pub write_errors: AtomicU64,
    /// uWSGI's per-core read error count, kept for the stats layout: rwsgi counts none yet,
    /// so it reads 0.
    pub read_errors: AtomicU64,
}

/// The shared mappings: the totals, then one slot per worker, then one per thread of each.
pub struct Scoreboard {
    totals: SharedSlice<Totals>,
    workers: SharedSlice<WorkerSlot>,
    cores: SharedSlice<CoreSlot>,
    threads: usize,
    /// `uwsgi`'s signal table, timers and user locks.
    usignal: SharedSlice<crate::usignal::Area>,
    /// The sockets `uwsgi.signal` and the master's timers deliver on.
    hub: crate::usignal::Hub,
}

/// Epoch microseconds now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Scoreboard {
    /// Map zeroed, shared, anonymous regions for `workers` x `threads`.
    pub fn new(workers: usize, threads: usize) -> std::io::Result<Scoreboard> {
        Ok(Scoreboard {
            totals: SharedSlice::new(1)?,
            workers: SharedSlice::new(workers)?,
            cores: SharedSlice::new(workers * threads)?,
            threads,
            usignal: SharedSlice::new(1)?,
            hub: crate::usignal::Hub::new(workers)?,
        })
    }

    /// The signal table, timers and user locks of `uwsgi` (see [`crate::usignal`]).
    pub fn usignal(&self) -> &crate::usignal::Area {
        &self.usignal[0]
    }

    /// The sockets signals are delivered on.
    pub fn hub(&self) -> &crate::usignal::Hub {
        &self.hub
    }

    /// Raise uwsgi signal `signum` towards its registered target.
    pub fn raise_signal(&self, signum: u8) -> Result<(), String> {
        let alive = |id: usize| self.worker(id).pid.load(Ordering::Relaxed) > 0;
        let workers = crate::usignal::Workers {
            count: self.workers.len(),
            alive: &alive,
        };
        crate::usignal::raise(self.usignal(), &self.hub, &workers, signum)
    }

    /// The master's tick: raise the timers, crons and file monitors that are due.
    pub fn tick_signals(&self, local_clock: impl Fn(i64) -> Option<crate::usignal::Clock>) {
        let alive = |id: usize| self.worker(id).pid.load(Ordering::Relaxed) > 0;
        let workers = crate::usignal::Workers {
            count: self.workers.len(),
            alive: &alive,
        };
        crate::usignal::tick(self.usignal(), &self.hub, &workers, local_clock);
    }

    /// Worker processes the board has room for.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Threads per worker.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Instance-wide counters.
    pub fn totals(&self) -> &Totals {
        &self.totals[0]
    }

    /// Worker `id` (1-based, as uWSGI numbers them).
    pub fn worker(&self, id: usize) -> &WorkerSlot {
        assert!(
            id >= 1 && id <= self.workers.len(),
            "worker id {id} out of range"
        );
        &self.workers[id - 1]
    }

    /// Thread `core` (0-based) of worker `id`.
    pub fn core(&self, id: usize, core: usize) -> &CoreSlot {
        assert!(
            id >= 1 && id <= self.workers.len() && core < self.threads,
            "core {id}/{core} out of range"
        );
        &self.cores[(id - 1) * self.threads + core]
    }

    /// Record a fresh process in worker slot `id`.
    pub fn spawned(&self, id: usize, pid: i32) {
        let w = self.worker(id);
        w.pid.store(pid, Ordering::Relaxed);
        w.delta_requests.store(0, Ordering::Relaxed);
        w.accepting.store(1, Ordering::Relaxed);
        w.ready.store(0, Ordering::Relaxed);
        w.last_spawn
            .store(now_micros() / 1_000_000, Ordering::Relaxed);
        for core in 0..self.threads {
            self.core(id, core)
                .request_start
                .store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process;

    #[test]
    fn slots_are_distinct_and_zeroed() {
        let board = Scoreboard::new(3, 4).unwrap();
        board.worker(2).requests.fetch_add(5, Ordering::Relaxed);
        board.core(3, 3).requests.fetch_add(7, Ordering::Relaxed);
        assert_eq!(board.worker(1).requests.load(Ordering::Relaxed), 0);
        assert_eq!(board.worker(2).requests.load(Ordering::Relaxed), 5);
        assert_eq!(board.core(3, 2).requests.load(Ordering::Relaxed), 0);
        assert_eq!(board.core(3, 3).requests.load(Ordering::Relaxed), 7);
        assert_eq!(board.totals().requests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn writes_after_fork_are_seen_by_the_parent() {
        let board = Scoreboard::new(1, 1).unwrap();
        // SAFETY: the child only stores to an atomic and leaves at once, without destructors.
        let pid = match unsafe { process::fork() }.unwrap() {
            process::Forked::Child => {
                board.worker(1).requests.store(42, Ordering::SeqCst);
                process::exit_now(0)
            }
            process::Forked::Parent(pid) => pid,
        };
        process::wait_for(pid).unwrap();
        assert_eq!(board.worker(1).requests.load(Ordering::SeqCst), 42);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn worker_ids_start_at_one() {
        let board = Scoreboard::new(1, 1).unwrap();
        let _ = board.worker(0);
    }
}
