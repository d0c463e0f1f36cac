//! Attached daemons (`--attach-daemon`, `--attach-daemon2`, `--smart-attach-daemon[2]`): programs the
//! master starts after the workers, restarts when they die (backing off when they die young), and
//! stops at exit, as uWSGI does (`core/daemons.c`).
//!
//! - A plain daemon runs in the foreground as the master's child (`/bin/sh -c CMD`, in its own
//!   process group, so the stop signal reaches what the shell started); a reload stops it and the
//!   reloaded master starts it again.
//! - A smart daemon has a pidfile: its command daemonizes itself (or, with `daemonize=1`, is kept as
//!   our child like a plain one), the master watches the pid in the file, and a reload leaves it
//!   running: the reloaded master finds it alive through the pidfile.
//! - `control=1`: when the daemon dies, the whole instance shuts down.

use crate::config::ops::DaemonSpec;
use crate::sys::process;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A daemon that dies younger than this counts as dying in a loop.
const FAST_DEATH: Duration = Duration::from_secs(1);
/// Longest back-off before starting a daemon that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often a smart daemon's pidfile is checked.
const PIDFILE_EVERY: Duration = Duration::from_secs(1);
/// How long a stopping daemon gets before SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(5);

struct Daemon {
    spec: DaemonSpec,
    /// Our child: the foreground daemon, or the smart daemon's launcher until it exits.
    child: Option<i32>,
    started: Instant,
    fast_deaths: u32,
    /// When to (re)start it; `None` while it runs.
    start_at: Option<Instant>,
    checked: Instant,
    touched: Vec<(PathBuf, Option<SystemTime>)>,
    spawns: u32,
}

/// What the master must do after a tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Carry,
    /// A `control=1` daemon died: shut the instance down.
    Shutdown(String),
}

/// Every attached daemon.
pub struct Daemons {
    list: Vec<Daemon>,
    started: bool,
}

fn mtime(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The pid a smart daemon's pidfile names, if that process runs.
fn pidfile_alive(path: &PathBuf) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    (pid > 0 && process::kill(pid, 0).is_ok()).then_some(pid)
}

impl Daemons {
    pub fn new(specs: &[DaemonSpec]) -> Daemons {
        let now = Instant::now();
        let list = specs
            .iter()
            .map(|spec| Daemon {
                touched: spec.touch.iter().map(|p| (p.clone(), mtime(p))).collect(),
                spec: spec.clone(),
                child: None,
                started: now,
                fast_deaths: 0,
                start_at: Some(now),
                checked: now,
                spawns: 0,
            })
            .collect();
        Daemons {
            list,
            started: false,
        }
    }

    /// Start, restart and watch the daemons; `workers_up` once every worker has been spawned (the
    /// daemons start after the workers).
    pub fn tick(&mut self, workers_up: bool) {
        if self.list.is_empty() || !(self.started || workers_up) {
            return;
        }
        self.started = true;
        let now = Instant::now();
        for d in &mut self.list {
            if d.start_at.is_some_and(|t| t <= now) {
                d.start_at = None;
                d.start();
            } else if let Some(pidfile) = d.spec.pidfile.clone().filter(|_| {
                d.start_at.is_none()
                    && d.child.is_none()
                    && now.duration_since(d.checked) >= PIDFILE_EVERY
            }) {
                d.checked = now;
                if pidfile_alive(&pidfile).is_none() {
                    tracing::warn!(
                        "[rwsgi-daemons] \"{}\" (pidfile {}) is not running",
                        d.spec.cmd,
                        pidfile.display()
                    );
                    d.died();
                }
            }
            if d.start_at.is_none() && any_touched(&mut d.touched) {
                tracing::info!("[rwsgi-daemons] touched: restarting \"{}\"", d.spec.cmd);
                d.stop(false);
                d.start_at = Some(now);
            }
        }
    }

    /// A child exited: if it is one of ours, note it; `Some` when it was a daemon.
    pub fn reaped(&mut self, pid: i32, status: libc::c_int) -> Option<Verdict> {
        let d = self.list.iter_mut().find(|d| d.child == Some(pid))?;
        d.child = None;
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exited with code {}", libc::WEXITSTATUS(status))
        };
        if d.spec.pidfile.is_some() && !d.spec.daemonize && libc::WIFEXITED(status) {
            // The launcher of a self-daemonizing smart daemon is done; the pidfile tells the rest.
            d.checked = Instant::now();
            return Some(Verdict::Carry);
        }
        tracing::warn!("[rwsgi-daemons] \"{}\" (pid: {pid}) {how}", d.spec.cmd);
        if d.spec.control {
            return Some(Verdict::Shutdown(format!(
                "the control daemon \"{}\" died",
                d.spec.cmd
            )));
        }
        d.died();
        Some(Verdict::Carry)
    }

    /// Stop the daemons: every one at exit; at a reload only those without a pidfile (a smart
    /// daemon outlives reloads). Waits for our children (bounded), then SIGKILLs what is left.
    pub fn stop(&mut self, reload: bool) {
        let mut waiting = Vec::new();
        for d in &mut self.list {
            if reload && d.spec.pidfile.is_some() {
                continue;
            }
            d.start_at = None;
            if let Some(pid) = d.stop(true) {
                waiting.push(pid);
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        while !waiting.is_empty() && Instant::now() < deadline {
            while let Some((pid, _)) = process::reap_one() {
                waiting.retain(|&p| p != pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in waiting {
            tracing::warn!("[rwsgi-daemons] pid {pid} still runs after {STOP_WAIT:?}: SIGKILL");
            let _ = process::kill(-pid, libc::SIGKILL);
            let _ = process::wait_for(pid);
        }
    }

    /// A reload that keeps this master (`--lazy-apps`): restart the plain daemons.
    pub fn restart_plain(&mut self) {
        for d in &mut self.list {
            if d.spec.pidfile.is_none() {
                d.stop(false);
                d.start_at = Some(Instant::now());
            }
        }
    }
}

fn any_touched(files: &mut [(PathBuf, Option<SystemTime>)]) -> bool {
    let mut changed = false;
    for (path, seen) in files {
        let now = mtime(path);
        if now != *seen {
            *seen = now;
            changed = true;
        }
    }
    changed
}

impl Daemon {
    fn start(&mut self) {
        if let Some(pidfile) = &self.spec.pidfile {
            if let Some(pid) = pidfile_alive(pidfile) {
                tracing::info!(
                    "[rwsgi-daemons] \"{}\" already runs (pid: {pid}, from {})",
                    self.spec.cmd,
                    pidfile.display()
                );
                self.checked = Instant::now();
                return;
            }
        }
        let verb = if self.spawns > 0 {
            "respawning"
        } else {
            "spawning"
        };
        self.spawns += 1;
        let spawned = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.spec.cmd)
            .stdin(Stdio::null())
            // Its own process group: the stop signal reaches whatever the shell started.
            .process_group(0)
            .spawn();
        match spawned {
            Ok(child) => {
                let pid = child.id() as i32;
                // The master reaps it (waitpid(-1)); the handle is not waited on.
                drop(child);
                tracing::info!("[rwsgi-daemons] {verb} \"{}\" (pid: {pid})", self.spec.cmd);
                self.child = Some(pid);
            }
            Err(e) => {
                tracing::error!("[rwsgi-daemons] cannot start \"{}\": {e}", self.spec.cmd);
                self.child = None;
                self.died();
                return;
            }
        }
        self.started = Instant::now();
        self.checked = Instant::now();
    }

    /// It died (or its pidfile says so): start it again, later when it dies young.
    fn died(&mut self) {
        let wait = if self.started.elapsed() < FAST_DEATH {
            self.fast_deaths += 1;
            let wait = (Duration::from_millis(250) * 2u32.saturating_pow(self.fast_deaths.min(16)))
                .min(MAX_BACKOFF);
            tracing::warn!(
                "[rwsgi-daemons] throttling \"{}\" for {:.1} seconds",
                self.spec.cmd,
                wait.as_secs_f64()
            );
            wait
        } else {
            self.fast_deaths = 0;
            Duration::ZERO
        };
        self.start_at = Some(Instant::now() + wait);
    }

    /// Send the stop signal; the pid to wait for when it is our child.
    fn stop(&mut self, quiet_smart: bool) -> Option<i32> {
        let signal = self.spec.stop_signal;
        if let Some(pid) = self.child.take() {
            tracing::info!(
                "[rwsgi-daemons] stopping \"{}\" (pid: {pid})",
                self.spec.cmd
            );
            let _ = process::kill(-pid, signal);
            return Some(pid);
        }
        if let Some(pid) = self.spec.pidfile.as_ref().and_then(pidfile_alive) {
            tracing::info!(
                "[rwsgi-daemons] stopping \"{}\" (pid: {pid} from its pidfile)",
                self.spec.cmd
            );
            let _ = process::kill(pid, signal);
        } else if !quiet_smart {
            tracing::debug!("[rwsgi-daemons] \"{}\" was not running", self.spec.cmd);
        }
        None
    }
}
