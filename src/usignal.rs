//! uWSGI's signal framework, user locks and timers, as far as `uwsgidecorators` needs them: the
//! state lives in the shared mapping (see [`crate::scoreboard`]) so the master, which raises timers,
//! crons and file monitors, and every worker, which registers and runs the handlers, see one table.
//!
//! A signal is one byte (0..=255). Raising it sends that byte as a datagram to one worker's
//! socket (made before the first fork, one per worker id); the worker's signal thread reads it and
//! runs the Python handler, so requests keep being served while a handler runs. Which worker gets
//! it follows the registration's target, as uWSGI's: `""`/`worker`/`worker0` is one worker
//! (round-robin over the living ones), `workers`/`active-workers` every worker, `workerN` worker N.
//!
//! Nothing here names Python; [`crate::python::uwsgi_module`] is the Python face of it.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Signals are one byte.
pub const SIGNALS: usize = 256;
/// Timers, crons and file monitors together (uWSGI allows 64 of each kind).
pub const TIMERS: usize = 64;
/// `uwsgi.lock(n)` takes `n` in `0..USER_LOCKS`.
pub const USER_LOCKS: usize = 16;
/// Longest `@filemon` path.
const PATH_MAX: usize = 256;

/// Where a raised signal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One worker, whichever is next (uWSGI's default target).
    AnyWorker,
    /// Every worker.
    AllWorkers,
    /// Worker `n` (1-based).
    Worker(u32),
}

impl Target {
    /// uWSGI's target spellings; an error names the ones rwsgi lacks.
    pub fn parse(text: &str) -> Result<Target, String> {
        match text {
            "" | "worker" | "worker0" => Ok(Target::AnyWorker),
            "workers" | "active-workers" => Ok(Target::AllWorkers),
            t => match t.strip_prefix("worker").and_then(|n| n.parse::<u32>().ok()) {
                Some(n) => Ok(Target::Worker(n)),
                None => Err(format!(
                    "signal target {t:?}: rwsgi delivers signals to workers only ('', 'worker', \
                     'workers', 'active-workers', 'workerN'); it has no spooler, mules or farms"
                )),
            },
        }
    }

    fn encode(self) -> u32 {
        match self {
            Target::AnyWorker => 1,
            Target::AllWorkers => 2,
            Target::Worker(n) => 100 + n,
        }
    }

    fn decode(v: u32) -> Option<Target> {
        match v {
            0 => None,
            1 => Some(Target::AnyWorker),
            2 => Some(Target::AllWorkers),
            n => Some(Target::Worker(n.saturating_sub(100))),
        }
    }
}

/// What a timer slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every `secs` seconds (`add_timer`, and `add_rb_timer` with `iterations`, 0 for ever).
    Every {
        /// The period in seconds.
        secs: u32,
        /// How many times it fires before it stops; 0 for ever.
        iterations: u32,
    },
    /// `add_cron(signum, minute, hour, day, month, weekday)`: -1 is "any", -N is "every N".
    Cron([i32; 5]),
    /// `add_file_monitor`: raised when the path's modification time changes.
    FileMonitor,
}

/// A process-shared lock: 0 free, else held. The holder's pid and thread id let a lock whose holder
/// died be taken over, as uWSGI's robust mutexes are.
#[repr(C)]
#[derive(Default)]
pub struct UserLock {
    state: AtomicU32,
    owner_pid: AtomicI32,
    owner_thread: AtomicU64,
}

#[repr(C)]
#[derive(Default)]
struct SignalSlot {
    /// `Target::encode`, 0 while unregistered.
    target: AtomicU32,
}

#[repr(C)]
#[derive(Default)]
struct TimerSlot {
    /// 0 free, 1 every, 2 cron, 3 file monitor.
    kind: AtomicU32,
    signum: AtomicU32,
    secs: AtomicU32,
    /// Raises left for a bounded `add_rb_timer`; 0 for ever.
    iterations: AtomicU32,
    cron: [AtomicI32; 5],
    /// Epoch milliseconds of the next raise (timers), or the minute last checked (crons).
    next: AtomicI64,
    path_len: AtomicU32,
    path: [AtomicU64; PATH_MAX / 8],
}

/// The part of the shared mapping this module owns.
#[repr(C)]
pub struct Area {
    /// Guards registration of signals and timers (short critical sections).
    table_lock: UserLock,
    next_worker: AtomicU32,
    signals: [SignalSlot; SIGNALS],
    timers: [TimerSlot; TIMERS],
    locks: [UserLock; USER_LOCKS],
}

impl Default for Area {
    fn default() -> Area {
        Area {
            table_lock: UserLock::default(),
            next_worker: AtomicU32::new(0),
            signals: std::array::from_fn(|_| SignalSlot::default()),
            timers: std::array::from_fn(|_| TimerSlot::default()),
            locks: std::array::from_fn(|_| UserLock::default()),
        }
    }
}

/// This thread's id as the locks record it (unique among the process's live threads).
fn thread_tag() -> u64 {
    thread_local!(static TAG: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    });
    TAG.with(|t| *t)
}

fn process_alive(pid: i32) -> bool {
    pid <= 0 || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl UserLock {
    fn try_take(&self) -> bool {
        let taken = self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if taken {
            self.owner_pid
                .store(std::process::id() as i32, Ordering::Relaxed);
            self.owner_thread.store(thread_tag(), Ordering::Relaxed);
        }
        taken
    }

    /// Whether this thread holds the lock.
    pub fn held_here(&self) -> bool {
        self.state.load(Ordering::Acquire) != 0
            && self.owner_pid.load(Ordering::Relaxed) == std::process::id() as i32
            && self.owner_thread.load(Ordering::Relaxed) == thread_tag()
    }

    /// Take the lock, waiting as long as it takes: spin briefly, then sleep with a growing backoff
    /// (capped at 1 ms). A lock whose holder process died is taken over.
    pub fn lock(&self) {
        let mut pause = Duration::from_micros(20);
        let mut rounds = 0u32;
        loop {
            if self.try_take() {
                return;
            }
            rounds += 1;
            if rounds < 64 {
                std::hint::spin_loop();
                continue;
            }
            if rounds % 256 == 0 && !process_alive(self.owner_pid.load(Ordering::Relaxed)) {
                tracing::warn!(
                    "a uwsgi lock's holder (pid {}) died holding it: taking it over",
                    self.owner_pid.load(Ordering::Relaxed)
                );
                self.unlock();
                continue;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Release the lock (whoever holds it: `uwsgi.unlock()` trusts the app).
    pub fn unlock(&self) {
        self.owner_pid.store(0, Ordering::Relaxed);
        self.owner_thread.store(0, Ordering::Relaxed);
        self.state.store(0, Ordering::Release);
    }

    /// Whether some thread of any process holds the lock.
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Acquire) != 0
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Area {
    /// User lock `n`.
    pub fn user_lock(&self, n: usize) -> Option<&UserLock> {
        self.locks.get(n)
    }

    fn with_table<T>(&self, f: impl FnOnce() -> T) -> T {
        self.table_lock.lock();
        let out = f();
        self.table_lock.unlock();
        out
    }

    /// Record signal `signum`'s target. Registering again with another target is refused, as
    /// uWSGI refuses a second registration in the master.
    pub fn register(&self, signum: u8, target: Target) -> Result<(), String> {
        let slot = &self.signals[signum as usize];
        self.with_table(
            || match Target::decode(slot.target.load(Ordering::Acquire)) {
                Some(old) if old != target => Err(format!(
                    "signal {signum} is already registered with target {old:?}"
                )),
                _ => {
                    slot.target.store(target.encode(), Ordering::Release);
                    Ok(())
                }
            },
        )
    }

    /// The target signal `signum` was registered with.
    pub fn target(&self, signum: u8) -> Option<Target> {
        Target::decode(self.signals[signum as usize].target.load(Ordering::Acquire))
    }

    /// Add a timer, cron or file monitor raising `signum`. The same schedule for the same signal
    /// is added once (with `--lazy-apps` every worker's import registers it).
    pub fn add(&self, signum: u8, schedule: Schedule, path: &[u8]) -> Result<(), String> {
        if path.len() > PATH_MAX {
            return Err(format!("file monitor path longer than {PATH_MAX} bytes"));
        }
        self.with_table(|| {
            if self.timers.iter().any(|t| {
                t.kind.load(Ordering::Acquire) != 0
                    && t.signum.load(Ordering::Relaxed) == u32::from(signum)
                    && slot_schedule(t) == Some(schedule)
                    && (schedule != Schedule::FileMonitor || slot_path(t) == path)
            }) {
                return Ok(());
            }
            let Some(t) = self
                .timers
                .iter()
                .find(|t| t.kind.load(Ordering::Acquire) == 0)
            else {
                return Err(format!(
                    "no room for another timer, cron or file monitor ({TIMERS} at most)"
                ));
            };
            t.signum.store(u32::from(signum), Ordering::Relaxed);
            let kind = match schedule {
                Schedule::Every { secs, iterations } => {
                    t.secs.store(secs, Ordering::Relaxed);
                    t.iterations.store(iterations, Ordering::Relaxed);
                    t.next
                        .store(now_ms() + i64::from(secs) * 1000, Ordering::Relaxed);
                    1
                }
                Schedule::Cron(fields) => {
                    for (slot, value) in t.cron.iter().zip(fields) {
                        slot.store(value, Ordering::Relaxed);
                    }
                    // Checked at the master's next tick, as uWSGI checks a new cron at once.
                    t.next.store(0, Ordering::Relaxed);
                    2
                }
                Schedule::FileMonitor => {
                    let mut padded = [0u8; PATH_MAX];
                    padded[..path.len()].copy_from_slice(path);
                    for (word, chunk) in t.path.iter().zip(padded.chunks(8)) {
                        let bytes: [u8; 8] = chunk.try_into().unwrap_or([0; 8]);
                        word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
                    }
                    t.path_len.store(path.len() as u32, Ordering::Relaxed);
                    3
                }
            };
            t.kind.store(kind, Ordering::Release);
            Ok(())
        })
    }

    /// The next living worker, round-robin.
    fn pick_worker(&self, workers: &Workers<'_>) -> Option<usize> {
        let n = workers.count;
        let start = self.next_worker.fetch_add(1, Ordering::Relaxed) as usize;
        (0..n)
            .map(|i| (start + i) % n + 1)
            .find(|&id| (workers.alive)(id))
    }
}

fn slot_schedule(t: &TimerSlot) -> Option<Schedule> {
    match t.kind.load(Ordering::Acquire) {
        1 => Some(Schedule::Every {
            secs: t.secs.load(Ordering::Relaxed),
            iterations: t.iterations.load(Ordering::Relaxed),
        }),
        2 => Some(Schedule::Cron(std::array::from_fn(|i| {
            t.cron[i].load(Ordering::Relaxed)
        }))),
        3 => Some(Schedule::FileMonitor),
        _ => None,
    }
}

fn slot_path(t: &TimerSlot) -> Vec<u8> {
    let mut out: Vec<u8> = t
        .path
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    out.truncate(t.path_len.load(Ordering::Relaxed) as usize);
    out
}

/// The sockets signals travel on: one datagram pair per worker id, made before the first fork so
/// the master and every worker hold both ends.
pub struct Hub {
    pairs: Vec<(UnixDatagram, UnixDatagram)>,
}

impl Hub {
    /// One socket pair for each of `workers` worker ids.
    pub fn new(workers: usize) -> std::io::Result<Hub> {
        let pairs = (0..workers)
            .map(|_| {
                let (tx, rx) = UnixDatagram::pair()?;
                tx.set_nonblocking(true)?;
                Ok((tx, rx))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Hub { pairs })
    }

    /// The socket worker `id`'s signal thread reads.
    pub fn receiver(&self, id: usize) -> Option<&UnixDatagram> {
        self.pairs.get(id.checked_sub(1)?).map(|(_, rx)| rx)
    }

    fn send(&self, id: usize, signum: u8) -> bool {
        let Some((tx, _)) = id.checked_sub(1).and_then(|i| self.pairs.get(i)) else {
            return false;
        };
        match tx.send(&[signum]) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!("cannot deliver signal {signum} to worker {id}: {e}");
                false
            }
        }
    }
}

/// The worker slots: how many, and which have a process now.
pub struct Workers<'a> {
    /// How many worker ids there are (ids run from 1 to `count`).
    pub count: usize,
    /// Whether worker `id` has a running process.
    pub alive: &'a dyn Fn(usize) -> bool,
}

/// Raise `signum` towards its registered target. Errors say why nobody will run it.
pub fn raise(area: &Area, hub: &Hub, workers: &Workers<'_>, signum: u8) -> Result<(), String> {
    match area.target(signum) {
        None => Err(format!("signal {signum} is not registered")),
        Some(Target::AnyWorker) => match area.pick_worker(workers) {
            Some(id) => {
                hub.send(id, signum);
                Ok(())
            }
            // Before the first fork (a signal raised at import): worker 1 reads it once it runs.
            None => {
                hub.send(1, signum);
                Ok(())
            }
        },
        Some(Target::AllWorkers) => {
            for id in 1..=workers.count {
                hub.send(id, signum);
            }
            Ok(())
        }
        Some(Target::Worker(n)) if (1..=workers.count).contains(&(n as usize)) => {
            hub.send(n as usize, signum);
            Ok(())
        }
        Some(Target::Worker(n)) => Err(format!("signal {signum}: there is no worker {n}")),
    }
}

/// Local time's minute, hour, day of month, month (1-12) and weekday (0 = Sunday).
pub type Clock = [i32; 5];

/// The local [`Clock`] at epoch second `secs` (`localtime_r`).
pub fn local_clock(secs: i64) -> Option<Clock> {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?);
    let tm = crate::sys::host::local_time(t)?;
    Some([tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon + 1, tm.tm_wday])
}

/// Whether a cron's fields match `now`. `-1` matches anything; `-N` (N > 1) matches values
/// divisible by N, as uWSGI's cron does.
pub fn cron_matches(fields: &[i32; 5], now: &Clock) -> bool {
    fields.iter().zip(now).all(|(&want, &have)| match want {
        -1 => true,
        w if w < -1 => have % -w == 0,
        w => w == have,
    })
}

/// File monitors' last seen modification times, in the master.
static SEEN: Mutex<Vec<(Vec<u8>, Option<SystemTime>)>> = Mutex::new(Vec::new());

/// The master's tick: raise what is due. Cheap when nothing is registered.
pub fn tick(
    area: &Area,
    hub: &Hub,
    workers: &Workers<'_>,
    local_clock: impl Fn(i64) -> Option<Clock>,
) {
    let now = now_ms();
    for t in &area.timers {
        let signum = t.signum.load(Ordering::Relaxed) as u8;
        let due = match slot_schedule(t) {
            None => continue,
            Some(Schedule::Every { secs, iterations }) => {
                let next = t.next.load(Ordering::Relaxed);
                if now < next {
                    continue;
                }
                let period = i64::from(secs.max(1)) * 1000;
                // A master that was busy does not raise a burst: the next raise is a period on.
                let after = if now - next > period { now } else { next };
                t.next.store(after + period, Ordering::Relaxed);
                if iterations > 0 {
                    if iterations == 1 {
                        t.kind.store(0, Ordering::Release);
                    }
                    t.iterations.store(iterations - 1, Ordering::Relaxed);
                }
                true
            }
            Some(Schedule::Cron(fields)) => {
                let minute = now / 60_000;
                if t.next.swap(minute, Ordering::Relaxed) == minute {
                    continue;
                }
                local_clock(now / 1000).is_some_and(|clock| cron_matches(&fields, &clock))
            }
            Some(Schedule::FileMonitor) => file_changed(slot_path(t)),
        };
        if due {
            if let Err(e) = raise(area, hub, workers, signum) {
                tracing::warn!("timer for signal {signum}: {e}");
            }
        }
    }
}

fn file_changed(path: Vec<u8>) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mtime = std::fs::metadata(std::ffi::OsStr::from_bytes(&path))
        .and_then(|m| m.modified())
        .ok();
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    match seen.iter_mut().find(|(p, _)| *p == path) {
        Some((_, old)) if *old == mtime => false,
        Some((_, old)) => {
            *old = mtime;
            true
        }
        None => {
            seen.push((path, mtime));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    #[test]
    fn targets_parse_as_uwsgi_spells_them() {
        assert_eq!(Target::parse(""), Ok(Target::AnyWorker));
        assert_eq!(Target::parse("worker0"), Ok(Target::AnyWorker));
        assert_eq!(Target::parse("workers"), Ok(Target::AllWorkers));
        assert_eq!(Target::parse("worker3"), Ok(Target::Worker(3)));
        assert!(Target::parse("spooler").unwrap_err().contains("no spooler"));
        for t in [Target::AnyWorker, Target::AllWorkers, Target::Worker(7)] {
            assert_eq!(Target::decode(t.encode()), Some(t));
        }
    }

    #[test]
    fn cron_fields_match_any_exact_and_every_n() {
        let clock = [30, 14, 28, 11, 6];
        assert!(cron_matches(&[-1, -1, -1, -1, -1], &clock));
        assert!(cron_matches(&[30, 14, -1, -1, -1], &clock));
        assert!(!cron_matches(&[31, 14, -1, -1, -1], &clock));
        assert!(cron_matches(&[-15, -7, -1, -1, -1], &clock));
        assert!(!cron_matches(&[-7, -1, -1, -1, -1], &clock));
    }

    #[test]
    fn a_timer_is_added_once_and_registration_keeps_its_target() {
        let board = Scoreboard::new(2, 1).unwrap();
        let area = board.usignal();
        let every = Schedule::Every {
            secs: 1,
            iterations: 0,
        };
        area.register(5, Target::AnyWorker).unwrap();
        area.register(5, Target::AnyWorker).unwrap();
        assert!(area.register(5, Target::AllWorkers).is_err());
        area.add(5, every, b"").unwrap();
        area.add(5, every, b"").unwrap();
        let used = area
            .timers
            .iter()
            .filter(|t| t.kind.load(Ordering::Relaxed) != 0)
            .count();
        assert_eq!(used, 1);
    }

    #[test]
    fn a_due_timer_reaches_a_living_worker() {
        let board = Scoreboard::new(2, 1).unwrap();
        board.spawned(2, 4242);
        let area = board.usignal();
        area.register(9, Target::AnyWorker).unwrap();
        area.add(
            9,
            Schedule::Every {
                secs: 1,
                iterations: 1,
            },
            b"",
        )
        .unwrap();
        area.timers[0].next.store(0, Ordering::Relaxed);
        board.tick_signals(|_| None);
        let rx = board.hub().receiver(2).unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 9);
        // One iteration only: the slot is free again.
        assert_eq!(area.timers[0].kind.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn user_locks_exclude_and_know_their_holder() {
        let board = Scoreboard::new(1, 1).unwrap();
        let lock = board.usignal().user_lock(0).unwrap();
        lock.lock();
        assert!(lock.is_locked() && lock.held_here());
        let other = std::thread::scope(|s| s.spawn(|| lock.try_take()).join().unwrap());
        assert!(!other);
        lock.unlock();
        assert!(!lock.is_locked());
    }
}
