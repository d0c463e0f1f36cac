//! The master's loop: a `poll(2)` over its signal pipes and the monitoring ports, with a tick that
//! reaps, respawns, recycles and watches `--touch-reload` files.

use super::chain::{Chain, Step};
use super::cheaper::{Cheaper, Decision, Sample};
use super::daemons::{Daemons, Verdict};
use super::fifo::{Command, Fifo};
use super::notify::Notifier;
use super::signals::{Event, Signals};
use super::{FAILED_APP_CODE, LISTEN_FDS_ENV};
use crate::config::{Config, SocketSpec};
use crate::log::statm;
use crate::python::{self, App};
use crate::recycle::{self, Policy};
use crate::scoreboard::Scoreboard;
use crate::server::{Listener, Stop};
use crate::stats::ports::{Instance, Port, Ports};
use crate::sys::fd;
use crate::sys::process::{self, Forked};
use crate::{stats, worker};
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the master looks at its workers when no signal wakes it.
const TICK: Duration = Duration::from_millis(100);

/// A worker that dies younger than this counts as dying in a loop.
const FAST_DEATH: Duration = Duration::from_secs(1);

/// Longest wait before respawning a worker that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The recycling reason of a worker that retired itself (harakiri, or a limit it checked).
const STOPPED_ACCEPTING: &str = "it stopped accepting";

/// What the master is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Waiting for workers to exit; then exit (or re-exec when `reload`).
    Stopping {
        deadline: Instant,
        reload: bool,
    },
}

/// One worker id's process.
#[derive(Debug, Clone, Copy)]
struct Slot {
    pid: i32,
    spawned: Instant,
    fast_deaths: u32,
    respawn_at: Option<Instant>,
    spawns: u64,
}

struct Master<'a> {
    config: &'a Config,
    /// The command (program first) that re-executes this master for a reload.
    reexec: Vec<OsString>,
    listeners: Vec<Listener>,
    board: Arc<Scoreboard>,
    /// The app imported in the master (`None` with `--lazy-apps`).
    app: Option<App>,
    slots: Vec<Slot>,
    /// Pids told to stop whose successors already run.
    retiring: Vec<i32>,
    signals: Option<Signals>,
    /// The `--stats` and `--metrics` sockets.
    ports: Ports,
    phase: Phase,
    touched: Vec<(PathBuf, Option<SystemTime>)>,
    /// `--touch-chain-reload` files and their last modification times.
    touched_chain: Vec<(PathBuf, Option<SystemTime>)>,
    failed: bool,
    /// `--master-fifo`.
    fifo: Option<Fifo>,
    /// A chain reload in progress.
    chain: Option<Chain>,
    /// systemd's notify socket.
    notify: Notifier,
    /// Attached daemons.
    daemons: Daemons,
    /// Adaptive workers (`--cheaper`), and when the algorithm last looked.
    cheaper: Option<Cheaper>,
    cheaper_at: Instant,
}

/// What a descriptor in the master's poll set is.
#[derive(Clone, Copy)]
enum Source {
    Signal(usize),
    Monitor(Port),
    Fifo,
}

fn mtime(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The first watched file whose modification time changed (all are brought up to date).
fn touched(files: &mut [(PathBuf, Option<SystemTime>)]) -> Option<String> {
    let mut changed = None;
    for (path, seen) in files {
        let now = mtime(path);
        if now != *seen {
            *seen = now;
            changed = Some(path.display().to_string());
        }
    }
    changed
}

/// Run the master until shutdown. `reexec` is the command (program first) a reload re-executes:
/// the binary and its arguments, or the interpreter, script and arguments of a pip-installed rwsgi.
pub fn run(config: &Config, listeners: Vec<Listener>, reexec: Vec<OsString>) -> Result<(), String> {
    let board = Arc::new(
        Scoreboard::new(config.processes, config.threads)
            .map_err(|e| format!("cannot map the scoreboard: {e}"))?,
    );
    let app = if config.lazy_apps {
        None
    } else {
        python::interpreter::initialize(config)?;
        python::uwsgi_module::install(config, &board)?;
        let apps = python::load_app(config)?;
        python::warn_about_threads();
        Some(App::new(config, apps, board.clone())?)
    };
    let ports = Ports::bind(config)?;
    let fifo = match &config.ops.master_fifo {
        Some(path) => {
            Some(Fifo::create(path).map_err(|e| format!("--master-fifo {}: {e}", path.display()))?)
        }
        None => None,
    };
    if let Some(f) = &fifo {
        tracing::info!("master fifo {} ready", f.path().display());
    }
    let signals = Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let now = Instant::now();
    let mut master = Master {
        config,
        reexec,
        listeners,
        board,
        app,
        slots: vec![
            Slot {
                pid: 0,
                spawned: now,
                fast_deaths: 0,
                respawn_at: Some(now),
                spawns: 0
            };
            config.processes
        ],
        retiring: Vec::new(),
        signals: Some(signals),
        ports,
        phase: Phase::Running,
        touched: config
            .touch_reload
            .iter()
            .map(|p| (p.clone(), mtime(p)))
            .collect(),
        touched_chain: config
            .ops
            .touch_chain_reload
            .iter()
            .map(|p| (p.clone(), mtime(p)))
            .collect(),
        failed: false,
        fifo,
        chain: None,
        notify: Notifier::from_env(),
        daemons: Daemons::new(&config.ops.daemons),
        cheaper: config.ops.cheaper.clone().map(Cheaper::new),
        cheaper_at: now,
    };
    if let Some(c) = &master.cheaper {
        // The slots past --cheaper-initial start cheap: no process, none due.
        for slot in master.slots.iter_mut().skip(c.initial()) {
            slot.respawn_at = None;
        }
        tracing::info!(
            "cheaper mode: {} to {} workers, {} at start",
            c.min(),
            config.processes,
            c.initial()
        );
    }
    tracing::info!("spawned rwsgi master process (pid: {})", std::process::id());
    crate::log::procname::name(crate::log::procname::Role::Master);
    master.serve()
}

/// Fork; with Python imported, around CPython's fork hooks (see [`python::fork`]), and with
/// `--gc-freeze` after moving every object the master holds out of the collector's reach.
fn fork(with_python: bool, gc_freeze: bool) -> std::io::Result<Forked> {
    if with_python {
        if gc_freeze {
            python::gc_freeze();
        }
        python::fork()
    } else {
        // No Python: the master runs one thread.
        process::fork_alone()
    }
}

impl Master<'_> {
    fn serve(&mut self) -> Result<(), String> {
        loop {
            self.wait();
            self.reap();
            if self.failed && matches!(self.phase, Phase::Running) {
                self.stop(false, Duration::from_secs(5), libc::SIGTERM);
            }
            match self.phase {
                Phase::Running => {
                    self.board.tick_signals(crate::usignal::local_clock);
                    self.respawn_due()?;
                    self.recycle_due()?;
                    self.check_touch_reload()?;
                    self.chain_step()?;
                    self.notify_tick();
                    let workers_up = self.slots.iter().any(|s| s.pid > 0)
                        && !self
                            .slots
                            .iter()
                            .any(|s| s.pid == 0 && s.respawn_at.is_some());
                    self.daemons.tick(workers_up);
                    self.cheaper_tick()?;
                    self.update_memory();
                }
                Phase::Stopping { deadline, reload } => {
                    self.notify.ping();
                    if self.alive() == 0 {
                        return self.finish(reload);
                    }
                    if Instant::now() >= deadline {
                        tracing::warn!("workers still running after the mercy: killing them");
                        self.kill_all(libc::SIGKILL);
                        self.phase = Phase::Stopping {
                            deadline: Instant::now() + Duration::from_secs(60),
                            reload,
                        };
                    }
                }
            }
        }
    }

    /// Sleep until a signal, a stats connection, or the tick.
    fn wait(&mut self) {
        let Some(signals) = &self.signals else { return };
        let mut sources: Vec<(RawFd, Source)> = signals
            .fds()
            .into_iter()
            .enumerate()
            .map(|(i, fd)| (fd, Source::Signal(i)))
            .collect();
        for (fd, port) in self.ports.fds() {
            sources.push((fd, Source::Monitor(port)));
        }
        if let Some(fifo) = &self.fifo {
            sources.push((fifo.fd(), Source::Fifo));
        }
        let fds: Vec<RawFd> = sources.iter().map(|&(fd, _)| fd).collect();
        let ready = match fd::poll_readable(&fds, TICK) {
            Ok(ready) => ready,
            Err(e) => {
                tracing::error!("poll failed: {e}");
                return;
            }
        };
        for index in ready {
            let i = match sources[index].1 {
                Source::Signal(i) => i,
                Source::Monitor(port) => {
                    self.ports.serve(port, self);
                    continue;
                }
                Source::Fifo => {
                    let commands = self.fifo.as_mut().map(Fifo::commands).unwrap_or_default();
                    for command in commands {
                        self.command(command);
                    }
                    continue;
                }
            };
            let event = self.signals.as_mut().map(|s| s.take(i));
            match event {
                Some(Event::Term) => {
                    tracing::info!("SIGTERM received: graceful shutdown (in-flight requests get --reload-mercy {}s)", self.config.reload_mercy.as_secs());
                    self.stop(false, self.config.reload_mercy, libc::SIGTERM);
                }
                Some(Event::Fast) => {
                    tracing::info!("SIGINT/SIGQUIT received: killing workers...");
                    self.stop(false, Duration::from_secs(3), libc::SIGINT);
                }
                Some(Event::Reload) => self.reload("SIGHUP received"),
                Some(Event::Child) | None => {}
            }
        }
    }

    fn stop(&mut self, reload: bool, mercy: Duration, signal: libc::c_int) {
        if reload {
            self.notify.reloading();
        } else {
            self.notify.stopping();
        }
        self.phase = Phase::Stopping {
            deadline: Instant::now() + mercy,
            reload,
        };
        let shutdown = !reload && signal == libc::SIGTERM;
        if shutdown {
            self.close_listeners_first();
        }
        self.kill_all(signal);
        if shutdown {
            // The master never accepts: its copies go now, so the last worker to let go of the
            // sockets (after taking their backlogs) closes them and new connects are refused.
            self.listeners.iter().for_each(Listener::stop_listening);
        }
    }

    /// A graceful shutdown closes the listening sockets everywhere: tell the workers to take
    /// their backlogs before they let go, and make the sockets refuse new connects now (a unix
    /// path removed, new TCP SYNs dropped) so the backlogs only shrink meanwhile.
    fn close_listeners_first(&self) {
        self.board
            .totals()
            .listeners_closing
            .store(1, Ordering::SeqCst);
        self.listeners
            .iter()
            .for_each(Listener::refuse_new_connects);
    }

    fn kill_all(&self, signal: libc::c_int) {
        for pid in self
            .slots
            .iter()
            .map(|s| s.pid)
            .chain(self.retiring.iter().copied())
            .filter(|p| *p > 0)
        {
            let _ = process::kill(pid, signal);
        }
    }

    fn alive(&self) -> usize {
        self.slots.iter().filter(|s| s.pid > 0).count() + self.retiring.len()
    }

    /// Graceful reload: with `--lazy-apps` replace every worker (the new ones import the new code);
    /// otherwise stop the workers and re-exec the master, keeping the listening sockets.
    fn reload(&mut self, why: &str) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        if self.config.lazy_apps {
            tracing::info!("{why}: replacing every worker (lazy-apps)");
            self.daemons.restart_plain();
            self.notify.reloading();
            for id in 1..=self.slots.len() {
                if self.is_cheap(id) {
                    continue;
                }
                if let Err(e) = self.replace(id, "reload") {
                    tracing::error!("{e}");
                }
            }
        } else {
            tracing::info!("{why}: gracefully killing workers, then reloading the master");
            self.stop(true, self.config.reload_mercy, libc::SIGTERM);
        }
    }

    /// Collect exited children.
    fn reap(&mut self) {
        while let Some((pid, status)) = process::reap_one() {
            if let Some(verdict) = self.daemons.reaped(pid, status) {
                if let Verdict::Shutdown(why) = verdict {
                    if matches!(self.phase, Phase::Running) {
                        tracing::error!("{why}: shutting down");
                        self.stop(false, self.config.reload_mercy, libc::SIGTERM);
                    }
                }
                continue;
            }
            if let Some(i) = self.retiring.iter().position(|p| *p == pid) {
                self.retiring.swap_remove(i);
                tracing::info!("retired worker (pid: {pid}) finished its requests and exited");
                continue;
            }
            let Some(index) = self.slots.iter().position(|s| s.pid == pid) else {
                continue;
            };
            self.on_death(index, pid, status);
        }
    }

    fn on_death(&mut self, index: usize, pid: i32, status: libc::c_int) {
        let id = index + 1;
        let slot = &mut self.slots[index];
        slot.pid = 0;
        let lived = slot.spawned.elapsed();
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exited with code {}", libc::WEXITSTATUS(status))
        };
        if !matches!(self.phase, Phase::Running) {
            tracing::info!("worker {id} buried (pid: {pid}, {how})");
            return;
        }
        let retired = self.board.worker(id).accepting.load(Ordering::SeqCst) == 0;
        if retired && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            // It stopped accepting on its own (a recycling limit, harakiri) and finished before the
            // tick noticed: a planned exit, replaced at once.
            tracing::info!("worker {id} (pid: {pid}) retired: spawning its successor");
            slot.fast_deaths = 0;
            slot.respawn_at = Some(Instant::now());
            return;
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == FAILED_APP_CODE {
            tracing::error!("worker {id} (pid: {pid}) could not load the app: shutting down");
            self.failed = true;
            return;
        }
        tracing::warn!("DAMN ! worker {id} (pid: {pid}) died, {how} :( trying respawn ...");
        if lived < FAST_DEATH {
            slot.fast_deaths += 1;
            let wait = (Duration::from_millis(100) * 2u32.saturating_pow(slot.fast_deaths.min(16)))
                .min(MAX_BACKOFF);
            tracing::warn!(
                "worker {id} died {} time(s) in a row within {}s of its spawn: respawning in {:.1}s",
                slot.fast_deaths,
                FAST_DEATH.as_secs(),
                wait.as_secs_f64()
            );
            slot.respawn_at = Some(Instant::now() + wait);
        } else {
            slot.fast_deaths = 0;
            slot.respawn_at = Some(Instant::now());
        }
    }

    fn respawn_due(&mut self) -> Result<(), String> {
        let now = Instant::now();
        for id in 1..=self.slots.len() {
            let slot = self.slots[id - 1];
            if slot.pid == 0 && slot.respawn_at.is_some_and(|t| t <= now) {
                self.spawn(id)?;
            }
        }
        Ok(())
    }

    /// Replace workers that reached a recycling limit, or that stopped accepting on their own.
    fn recycle_due(&mut self) -> Result<(), String> {
        let policy = Policy::from_config(self.config);
        for id in 1..=self.slots.len() {
            let slot = self.slots[id - 1];
            if slot.pid == 0 {
                continue;
            }
            let w = self.board.worker(id);
            let reason = if w.accepting.load(Ordering::SeqCst) == 0 {
                Some(STOPPED_ACCEPTING.to_string())
            } else {
                let worker = recycle::Worker {
                    id,
                    served: w.delta_requests.load(Ordering::Relaxed),
                    lived: slot.spawned.elapsed(),
                };
                policy
                    .due(worker, || w.rss.load(Ordering::Relaxed))
                    .map(|r| r.to_string())
            };
            if let Some(reason) = reason {
                self.replace(id, &reason)?;
            }
        }
        Ok(())
    }

    /// Tell worker `id` to finish its requests and exit, and start its successor now.
    fn replace(&mut self, id: usize, reason: &str) -> Result<(), String> {
        self.replace_with(id, reason, libc::SIGTERM)
    }

    /// [`Self::replace`], stopping the old worker with `signal` (SIGINT: at once).
    fn replace_with(&mut self, id: usize, reason: &str, signal: libc::c_int) -> Result<(), String> {
        let old = self.slots[id - 1].pid;
        if old > 0 {
            if reason == STOPPED_ACCEPTING {
                tracing::info!(
                    "worker {id} (pid: {old}) stopped accepting: spawning its successor"
                );
            } else {
                tracing::info!(
                    "...The work of process {id} (pid: {old}) is done ({reason}). Seeya!"
                );
            }
            let _ = process::kill(old, signal);
            self.retiring.push(old);
        }
        self.slots[id - 1].pid = 0;
        self.slots[id - 1].fast_deaths = 0;
        self.spawn(id)
    }

    fn check_touch_reload(&mut self) -> Result<(), String> {
        if let Some(path) = touched(&mut self.touched) {
            self.reload(&format!("{path} was touched"));
        }
        if let Some(path) = touched(&mut self.touched_chain) {
            self.start_chain(&format!("{path} was touched"));
        }
        Ok(())
    }

    /// Tell systemd (if it listens) whether every worker accepts, and how many requests were served.
    fn notify_tick(&mut self) {
        if !self.notify.enabled() {
            return;
        }
        let running = self.slots.iter().filter(|s| s.pid > 0).count();
        let accepting = (1..=self.slots.len())
            .filter(|&id| {
                self.slots[id - 1].pid > 0
                    && self.board.worker(id).ready.load(Ordering::SeqCst) == 1
            })
            .count();
        let pending = self
            .slots
            .iter()
            .any(|s| s.pid == 0 && s.respawn_at.is_some());
        let all_ready = running > 0 && accepting == running && !pending && self.chain.is_none();
        let requests = self.board.totals().requests.load(Ordering::Relaxed);
        self.notify.tick(all_ready, || {
            format!("{accepting} of {running} workers accepting, {requests} requests served")
        });
    }

    /// Run one master FIFO command.
    fn command(&mut self, command: Command) {
        tracing::info!("[master-fifo] command {command:?}");
        let running = matches!(self.phase, Phase::Running);
        match command {
            Command::Reload => self.reload("[master-fifo] graceful reload"),
            Command::BrutalReload if running => {
                tracing::info!(
                    "[master-fifo] brutal reload: killing workers, then reloading the master"
                );
                self.stop(true, Duration::from_secs(3), libc::SIGINT);
            }
            Command::ChainReload => self.start_chain("[master-fifo] chain reload"),
            Command::Stop if running => {
                tracing::info!(
                    "[master-fifo] graceful shutdown (in-flight requests get --reload-mercy {}s)",
                    self.config.reload_mercy.as_secs()
                );
                self.stop(false, self.config.reload_mercy, libc::SIGTERM);
            }
            Command::FastStop if running => {
                tracing::info!("[master-fifo] fast shutdown: killing workers...");
                self.stop(false, Duration::from_secs(3), libc::SIGINT);
            }
            Command::ReloadWorkers | Command::BrutalReloadWorkers if running => {
                let (how, signal) = if command == Command::ReloadWorkers {
                    ("gracefully", libc::SIGTERM)
                } else {
                    ("brutally", libc::SIGINT)
                };
                tracing::info!("[master-fifo] {how} reloading workers...");
                for id in 1..=self.slots.len() {
                    if self.slots[id - 1].pid > 0 {
                        if let Err(e) = self.replace_with(id, "workers reload", signal) {
                            tracing::error!("{e}");
                        }
                    }
                }
            }
            Command::Stats => {
                for line in stats::summary(&self.snapshot()) {
                    tracing::info!("{line}");
                }
            }
            Command::MoreWorkers | Command::FewerWorkers if self.cheaper.is_none() => {
                tracing::warn!("[master-fifo] +/- change the worker count only with --cheaper");
            }
            Command::MoreWorkers if running => {
                if let Err(e) = self.grow(1) {
                    tracing::error!("{e}");
                }
            }
            Command::FewerWorkers if running => {
                let min = self.cheaper.as_ref().map_or(1, Cheaper::min);
                if self.slots.iter().filter(|s| s.pid > 0).count() > min {
                    self.cheap_one("[master-fifo] -");
                }
            }
            Command::ReopenLogs => crate::log::master::reopen(),
            _ => tracing::info!("[master-fifo] ignored while stopping"),
        }
    }

    /// A slot with no process that is not due to get one: cheaped (adaptive workers).
    fn is_cheap(&self, id: usize) -> bool {
        let slot = &self.slots[id - 1];
        slot.pid == 0 && slot.respawn_at.is_none()
    }

    /// Once a second with `--cheaper`: let the algorithm look at the workers and act.
    fn cheaper_tick(&mut self) -> Result<(), String> {
        if self.cheaper.is_none() || self.cheaper_at.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.cheaper_at = Instant::now();
        let threads = self.board.threads();
        let mut sample = Sample::default();
        for id in (1..=self.slots.len()).filter(|&id| self.slots[id - 1].pid > 0) {
            let busy = (0..threads)
                .filter(|&c| self.board.core(id, c).request_start.load(Ordering::Relaxed) != 0)
                .count();
            sample.running += 1;
            sample.busy_workers += usize::from(busy > 0);
            sample.busy_threads += busy;
            sample.threads += threads;
        }
        sample.backlog = self
            .socket_infos()
            .iter()
            .map(|s| s.queue)
            .max()
            .unwrap_or(0);
        let decision = match &mut self.cheaper {
            Some(c) => c.decide(sample),
            None => Decision::Hold,
        };
        match decision {
            Decision::Hold => Ok(()),
            Decision::Spawn(n) => self.grow(n),
            Decision::Cheap => {
                self.cheap_one("cheaper: no load");
                Ok(())
            }
        }
    }

    /// Start up to `n` cheap workers.
    fn grow(&mut self, n: usize) -> Result<(), String> {
        let cheap: Vec<usize> = (1..=self.slots.len())
            .filter(|&id| self.is_cheap(id))
            .take(n)
            .collect();
        if !cheap.is_empty() {
            tracing::info!("cheaper: spawning {} worker(s) under load", cheap.len());
        }
        for id in cheap {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// Retire the running worker with the highest id; its slot becomes cheap.
    fn cheap_one(&mut self, why: &str) {
        let Some(id) = (1..=self.slots.len())
            .rev()
            .find(|&id| self.slots[id - 1].pid > 0)
        else {
            return;
        };
        let pid = self.slots[id - 1].pid;
        tracing::info!("{why}: rwsgi worker {id} (pid: {pid}) cheaped");
        let _ = process::kill(pid, libc::SIGTERM);
        self.retiring.push(pid);
        self.slots[id - 1].pid = 0;
        self.slots[id - 1].respawn_at = None;
        // The stats show the slot as "cheap" while the old process finishes its requests.
        self.board.worker(id).pid.store(0, Ordering::SeqCst);
    }

    /// Begin a chain reload (unless one runs or the master is stopping).
    fn start_chain(&mut self, why: &str) {
        if !matches!(self.phase, Phase::Running) || self.chain.is_some() {
            return;
        }
        if !self.config.lazy_apps {
            tracing::info!("{why}: chain reload without --lazy-apps forks the workers from the master's copy of the app (the code does not change)");
        }
        tracing::info!("{why}: chain reload starting...");
        self.notify.reloading();
        self.chain = Some(Chain::new(self.slots.len()));
    }

    /// Move a chain reload on: replace the next worker once the previous successor accepts.
    fn chain_step(&mut self) -> Result<(), String> {
        let Some(chain) = &mut self.chain else {
            return Ok(());
        };
        let slots = &self.slots;
        let board = &self.board;
        let step = chain.step(
            |id| slots[id - 1].pid > 0,
            |id| board.worker(id).ready.load(Ordering::SeqCst) == 1,
        );
        match step {
            Step::Replace(id) => {
                tracing::info!("chain next victim is worker {id}");
                self.replace(id, "chain reload")?;
            }
            Step::Wait => {}
            Step::Done => {
                tracing::info!("chain reloading complete");
                self.chain = None;
            }
        }
        Ok(())
    }

    fn update_memory(&self) {
        if !self.config.memory_report && self.config.reload_on_rss_mb == 0 {
            return;
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.pid > 0 {
                if let Some((vsz, rss)) = statm(slot.pid) {
                    let w = self.board.worker(i + 1);
                    w.vsz.store(vsz, Ordering::Relaxed);
                    w.rss.store(rss, Ordering::Relaxed);
                }
            }
        }
    }

    fn spawn(&mut self, id: usize) -> Result<(), String> {
        let master_pid = std::process::id() as i32;
        // A stop signal must not reach the child before it has its own handlers (it would hit the
        // master's, which the child removes, and be lost): block them across the fork; the worker
        // unblocks once its handlers are installed.
        let saved = process::block_stop_signals();
        // An adopted interpreter runs in the master even with --lazy-apps: fork through Python.
        let with_python = self.app.is_some() || python::interpreter::adopted();
        let forked = fork(with_python, self.config.gc_freeze);
        if !matches!(forked, Ok(Forked::Child)) {
            process::restore_signals(&saved);
        }
        let pid = match forked {
            Ok(Forked::Child) => self.child(id, master_pid),
            Ok(Forked::Parent(pid)) => pid,
            Err(e) => return Err(format!("fork failed: {e}")),
        };
        let slot = &mut self.slots[id - 1];
        slot.pid = pid;
        slot.spawned = Instant::now();
        slot.respawn_at = None;
        slot.spawns += 1;
        self.board.spawned(id, pid);
        if slot.spawns > 1 {
            self.board
                .worker(id)
                .respawn_count
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!("Respawned rwsgi worker {id} (new pid: {pid})");
        } else {
            tracing::info!(
                "spawned rwsgi worker {id} (pid: {pid}, cores: {})",
                self.config.threads
            );
        }
        Ok(())
    }

    /// The worker side of a fork: never returns.
    fn child(&mut self, id: usize, master_pid: i32) -> ! {
        if let Some(signals) = self.signals.take() {
            signals.uninstall();
        }
        self.ports.close();
        self.fifo = None;
        let _ = process::set_parent_death_signal(libc::SIGTERM);
        if process::parent_pid() != master_pid {
            process::exit_now(1);
        }
        python::uwsgi_module::set_worker_id(id);
        let code = match self.child_app() {
            Ok(mut app) => {
                app.worker_id = id;
                let listeners = std::mem::take(&mut self.listeners);
                match worker::run(self.config, listeners, app) {
                    Ok((Stop::Fast, _)) => 0,
                    Ok(_) => {
                        python::interpreter::finalize();
                        0
                    }
                    Err(e) => {
                        tracing::error!("worker {id}: {e}");
                        1
                    }
                }
            }
            Err(code) => code,
        };
        // Leave the worker without running the master's destructors.
        process::exit_now(code)
    }

    fn child_app(&mut self) -> Result<App, i32> {
        if let Some(app) = self.app.take() {
            return Ok(app);
        }
        let loaded = python::interpreter::initialize(self.config)
            .and_then(|()| python::uwsgi_module::install(self.config, &self.board))
            .and_then(|()| python::load_app(self.config))
            .and_then(|apps| App::new(self.config, apps, self.board.clone()));
        loaded.map_err(|e| {
            tracing::error!("{e}");
            FAILED_APP_CODE
        })
    }

    /// The listeners and their accept queues now.
    fn socket_infos(&self) -> Vec<stats::SocketInfo> {
        self.listeners
            .iter()
            .map(|l| stats::SocketInfo {
                name: l.spec().to_string(),
                queue: match l.spec() {
                    SocketSpec::Tcp(_) => l.queue_len(),
                    // The kernel's count for unix sockets (uWSGI always says 0 there).
                    _ => stats::listen_queue::unix_queue(l.fd()).map_or(0, |q| q.0),
                },
                max_queue: self.config.listen,
            })
            .collect()
    }

    /// All workers are gone: exit, or re-exec for a reload.
    fn finish(&mut self, reload: bool) -> Result<(), String> {
        self.daemons.stop(reload);
        if reload {
            return self.exec_self();
        }
        if self.config.vacuum {
            for l in &self.listeners {
                l.vacuum();
            }
        }
        if self.failed {
            return Err("a worker could not load the app".into());
        }
        tracing::info!("goodbye to rwsgi.");
        Ok(())
    }

    /// Replace this process with a fresh copy of itself that inherits the listening sockets.
    fn exec_self(&mut self) -> Result<(), String> {
        for l in &self.listeners {
            l.keep_across_exec()
                .map_err(|e| format!("cannot keep socket across reload: {e}"))?;
        }
        let list = self
            .listeners
            .iter()
            .map(super::sockets::pass_on)
            .collect::<Vec<_>>()
            .join(",");
        tracing::info!("binary reloading rwsgi (listening fds {list})...");
        let (program, args) = self
            .reexec
            .split_first()
            .ok_or("reload failed: no command to re-execute")?;
        let err = std::os::unix::process::CommandExt::exec(
            std::process::Command::new(program)
                .args(args)
                .env(LISTEN_FDS_ENV, list),
        );
        Err(format!("reload failed: cannot exec: {err}"))
    }
}

/// The documents of the monitoring ports are made from the master's view of the instance.
impl Instance for Master<'_> {
    fn snapshot(&self) -> stats::Snapshot<'_> {
        stats::Snapshot {
            board: &self.board,
            sockets: self.socket_infos(),
            master_pid: std::process::id() as i32,
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            memory_report: self.config.memory_report,
        }
    }

    fn worker_rss(&self) -> Vec<Option<u64>> {
        self.slots
            .iter()
            .map(|s| (s.pid > 0).then(|| statm(s.pid).map(|m| m.1)).flatten())
            .collect()
    }

    fn alive(&self) -> bool {
        !self.failed
    }

    /// Running (not shutting down or reloading) with at least one worker accepting.
    fn ready(&self) -> bool {
        matches!(self.phase, Phase::Running)
            && (1..=self.slots.len()).any(|id| {
                self.slots[id - 1].pid > 0
                    && self.board.worker(id).ready.load(Ordering::SeqCst) == 1
            })
    }
}
