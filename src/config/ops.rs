//! Operations flags (issue 15): the master FIFO, chain reloads, Prometheus metrics, adaptive
//! workers and attached daemons. Kept in their own struct, flattened into [`super::Args`], so the
//! main flag list and `Config::from_args` stay short.

use super::ConfigError;
use clap::Args;
use std::path::PathBuf;

/// The raw flags.
#[derive(Debug, Clone, Default, Args)]
pub struct OpsArgs {
    /// Create this FIFO and read one-letter commands from it: r reload, c chain reload, q graceful
    /// stop, Q fast stop, w/W reload the workers, R brutal reload, s stats to the log.
    #[arg(long, value_name = "PATH", help_heading = "Processes")]
    pub master_fifo: Vec<PathBuf>,

    /// Chain-reload (replace the workers one at a time) when this file's modification time changes.
    #[arg(long, value_name = "FILE", help_heading = "Processes")]
    pub touch_chain_reload: Vec<PathBuf>,

    /// Serve Prometheus metrics over HTTP on ADDR (HOST:PORT or a unix path): /metrics, and the
    /// /health and /ready probes.
    #[arg(long, value_name = "ADDR", help_heading = "Monitoring")]
    pub metrics: Option<String>,

    /// Run CMD (through /bin/sh) beside the workers, in the foreground; restarted when it dies,
    /// stopped at exit and on reload (repeatable).
    #[arg(
        long,
        value_name = "CMD",
        allow_hyphen_values = true,
        help_heading = "Daemons"
    )]
    pub attach_daemon: Vec<String>,

    /// PIDFILE CMD: run CMD, which daemonizes itself and writes PIDFILE; watched through the
    /// pidfile and left running across reloads (repeatable).
    #[arg(
        long,
        value_name = "PIDFILE CMD",
        allow_hyphen_values = true,
        help_heading = "Daemons"
    )]
    pub smart_attach_daemon: Vec<String>,

    /// PIDFILE CMD: like --smart-attach-daemon for a CMD that stays in the foreground.
    #[arg(
        long,
        value_name = "PIDFILE CMD",
        allow_hyphen_values = true,
        help_heading = "Daemons"
    )]
    pub smart_attach_daemon2: Vec<String>,

    /// A daemon as key=value pairs separated by commas: cmd=, pidfile=, daemonize=1, control=1
    /// (its death stops the instance), touch=FILE (restart it when touched), stopsignal=N.
    #[arg(
        long,
        value_name = "KEY=VALUE,...",
        allow_hyphen_values = true,
        help_heading = "Daemons"
    )]
    pub attach_daemon2: Vec<String>,

    /// Adaptive workers: keep at least N running and add up to --workers under load (0: off).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        help_heading = "Adaptive workers"
    )]
    pub cheaper: usize,

    /// Workers started at first with --cheaper (default: the --cheaper minimum).
    #[arg(long, value_name = "N", help_heading = "Adaptive workers")]
    pub cheaper_initial: Option<usize>,

    /// Workers added at once under load.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        help_heading = "Adaptive workers"
    )]
    pub cheaper_step: usize,

    /// How to decide: spare (all busy / none busy), backlog (the accept queue) or busyness (the
    /// share of busy threads).
    #[arg(
        long,
        default_value = "spare",
        value_name = "ALGO",
        help_heading = "Adaptive workers"
    )]
    pub cheaper_algo: String,

    /// Seconds of overload (or idleness) before acting; for backlog, the queue length that is
    /// overload; for busyness, the averaging period.
    #[arg(
        long,
        default_value_t = 3,
        value_name = "N",
        help_heading = "Adaptive workers"
    )]
    pub cheaper_overload: u64,

    /// busyness: add workers above this average percentage of busy threads.
    #[arg(
        long,
        default_value_t = 50,
        value_name = "PCT",
        help_heading = "Adaptive workers"
    )]
    pub cheaper_busyness_max: u64,

    /// busyness: retire a worker below this percentage...
    #[arg(
        long,
        default_value_t = 25,
        value_name = "PCT",
        help_heading = "Adaptive workers"
    )]
    pub cheaper_busyness_min: u64,

    /// busyness: ...held for this many periods.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "N",
        help_heading = "Adaptive workers"
    )]
    pub cheaper_busyness_multiplier: u64,
}

/// Which cheaper algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheaperAlgo {
    /// `spare`: add workers while every running one is busy, retire one while none is.
    Spare,
    /// `backlog`: add workers when more than `--cheaper-overload` connections wait in the
    /// accept queue.
    Backlog,
    /// `busyness`: add or retire workers by the average share of busy threads over a period.
    Busyness,
}

/// Adaptive workers, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheaperSpec {
    /// `--cheaper-algo`: how load is judged.
    pub algo: CheaperAlgo,
    /// The fewest workers (`--cheaper`); `--workers` is the most.
    pub min: usize,
    /// `--cheaper-initial`: workers started at first, between `min` and `--workers`.
    pub initial: usize,
    /// `--cheaper-step`: workers added at once under load (at least 1).
    pub step: usize,
    /// `--cheaper-overload` (at least 1): seconds of overload or idleness before acting; for
    /// `backlog` the queue length that is overload; for `busyness` the averaging period.
    pub overload: u64,
    /// `--cheaper-busyness-max`: `busyness` adds workers above this percentage of busy threads.
    pub busyness_max: u64,
    /// `--cheaper-busyness-min`: `busyness` retires a worker below this percentage of busy
    /// threads...
    pub busyness_min: u64,
    /// `--cheaper-busyness-multiplier`: ...once it has stayed below for this many periods.
    pub busyness_multiplier: u64,
}

/// One attached daemon, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    /// Run through `/bin/sh -c`.
    pub cmd: String,
    /// A smart daemon's pidfile.
    pub pidfile: Option<PathBuf>,
    /// The command stays in the foreground (a smart daemon we keep as our child).
    pub daemonize: bool,
    /// Its death shuts the instance down.
    pub control: bool,
    /// Restart it when one of these files is touched.
    pub touch: Vec<PathBuf>,
    /// The signal that stops it (SIGTERM by default).
    pub stop_signal: i32,
}

impl DaemonSpec {
    fn plain(cmd: &str) -> DaemonSpec {
        DaemonSpec {
            cmd: cmd.to_string(),
            pidfile: None,
            daemonize: false,
            control: false,
            touch: Vec::new(),
            stop_signal: libc::SIGTERM,
        }
    }

    /// `PIDFILE CMD` (`--smart-attach-daemon[2]`).
    fn smart(value: &str, daemonize: bool) -> Result<DaemonSpec, ConfigError> {
        let (pidfile, cmd) = value
            .trim()
            .split_once(char::is_whitespace)
            .filter(|(_, cmd)| !cmd.trim().is_empty())
            .ok_or_else(|| {
                ConfigError(format!(
                    "--smart-attach-daemon {value:?}: expected PIDFILE CMD"
                ))
            })?;
        Ok(DaemonSpec {
            pidfile: Some(PathBuf::from(pidfile)),
            daemonize,
            ..DaemonSpec::plain(cmd.trim())
        })
    }

    /// uWSGI's keyval form (`--attach-daemon2`): `key=value` pairs split at commas (`\,` is a comma).
    fn keyval(value: &str) -> Result<DaemonSpec, ConfigError> {
        let bad = |why: &str| ConfigError(format!("--attach-daemon2 {value:?}: {why}"));
        let mut spec = DaemonSpec::plain("");
        for pair in split_unescaped(value) {
            let (key, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("expected key=value pairs"))?;
            let flag = || matches!(v, "1" | "true" | "yes" | "on");
            match key.trim() {
                "cmd" | "command" | "exec" => spec.cmd = v.to_string(),
                "pidfile" => spec.pidfile = Some(PathBuf::from(v)),
                "daemonize" | "daemon" => spec.daemonize = flag(),
                "control" => spec.control = flag(),
                "touch" => spec.touch.push(PathBuf::from(v)),
                "stopsignal" | "stop_signal" => {
                    spec.stop_signal = v.parse().map_err(|_| bad("stopsignal is a number"))?
                }
                // Accepted, with uWSGI's defaults kept.
                "freq" | "reloadsignal" | "reload_signal" | "stdin" => {}
                other => return Err(bad(&format!("unknown key {other:?}"))),
            }
        }
        if spec.cmd.is_empty() {
            return Err(bad("no cmd="));
        }
        Ok(spec)
    }
}

/// Split at commas not preceded by a backslash (and drop those backslashes).
fn split_unescaped(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                parts.last_mut().expect("never empty").push(',');
                chars.next();
            }
            ',' => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The validated operations settings.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    /// `--master-fifo`: uWSGI reads the first one; rwsgi too.
    pub master_fifo: Option<PathBuf>,
    /// `--touch-chain-reload`: files whose modification time, when it changes, replaces the
    /// workers one at a time.
    pub touch_chain_reload: Vec<PathBuf>,
    /// `--metrics ADDR`.
    pub metrics: Option<String>,
    /// Attached daemons, in flag order by kind.
    pub daemons: Vec<DaemonSpec>,
    /// `--cheaper` and its options, when on.
    pub cheaper: Option<CheaperSpec>,
}

impl OpsArgs {
    /// Whether these flags need the master process.
    pub fn need_master(&self) -> bool {
        !self.master_fifo.is_empty()
            || !self.touch_chain_reload.is_empty()
            || self.metrics.is_some()
            || !self.attach_daemon.is_empty()
            || !self.attach_daemon2.is_empty()
            || !self.smart_attach_daemon.is_empty()
            || !self.smart_attach_daemon2.is_empty()
            || self.cheaper > 0
    }

    /// Validate into [`Ops`].
    pub fn validate(&self, processes: usize) -> Result<Ops, ConfigError> {
        Ok(Ops {
            master_fifo: self.master_fifo.first().cloned(),
            touch_chain_reload: self.touch_chain_reload.clone(),
            metrics: self.metrics.clone(),
            daemons: self.daemons()?,
            cheaper: self.cheaper(processes)?,
        })
    }

    fn cheaper(&self, processes: usize) -> Result<Option<CheaperSpec>, ConfigError> {
        if self.cheaper == 0 {
            return Ok(None);
        }
        if self.cheaper >= processes {
            return Err(ConfigError(format!(
                "--cheaper {} needs more --workers (the most) than that: got {processes}",
                self.cheaper
            )));
        }
        let algo = match self.cheaper_algo.as_str() {
            "spare" => CheaperAlgo::Spare,
            "backlog" => CheaperAlgo::Backlog,
            "busyness" => CheaperAlgo::Busyness,
            other => {
                return Err(ConfigError(format!(
                    "--cheaper-algo {other:?}: expected spare, backlog or busyness"
                )))
            }
        };
        Ok(Some(CheaperSpec {
            algo,
            min: self.cheaper,
            initial: self
                .cheaper_initial
                .unwrap_or(self.cheaper)
                .clamp(self.cheaper, processes),
            step: self.cheaper_step.max(1),
            overload: self.cheaper_overload.max(1),
            busyness_max: self.cheaper_busyness_max,
            busyness_min: self.cheaper_busyness_min.min(self.cheaper_busyness_max),
            busyness_multiplier: self.cheaper_busyness_multiplier.max(1),
        }))
    }

    fn daemons(&self) -> Result<Vec<DaemonSpec>, ConfigError> {
        let plain = self.attach_daemon.iter().map(|c| Ok(DaemonSpec::plain(c)));
        let smart = self
            .smart_attach_daemon
            .iter()
            .map(|v| DaemonSpec::smart(v, false));
        let smart2 = self
            .smart_attach_daemon2
            .iter()
            .map(|v| DaemonSpec::smart(v, true));
        let keyval = self.attach_daemon2.iter().map(|v| DaemonSpec::keyval(v));
        plain.chain(smart).chain(smart2).chain(keyval).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_forms() {
        let smart = DaemonSpec::smart("/tmp/m.pid memcached -d -P /tmp/m.pid", false).unwrap();
        assert_eq!(smart.pidfile, Some(PathBuf::from("/tmp/m.pid")));
        assert_eq!(smart.cmd, "memcached -d -P /tmp/m.pid");
        assert!(DaemonSpec::smart("/tmp/m.pid", false).is_err());
        let kv = DaemonSpec::keyval("cmd=echo a\\,b,control=1,stopsignal=2,touch=/tmp/t").unwrap();
        assert_eq!(kv.cmd, "echo a,b");
        assert!(kv.control && kv.pidfile.is_none());
        assert_eq!(kv.stop_signal, 2);
        assert_eq!(kv.touch, [PathBuf::from("/tmp/t")]);
        assert!(DaemonSpec::keyval("pidfile=/x").is_err());
        assert!(DaemonSpec::keyval("cmd=x,bogus=1").is_err());
    }
}

#[cfg(test)]
mod ini_tests {
    use crate::config::load;
    use std::ffi::OsString;
    use std::path::PathBuf;

    #[test]
    fn operations_flags_work_in_ini_files() {
        let dir = std::env::temp_dir().join(format!("rwsgi-ops-ini-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ini = dir.join("app.ini");
        std::fs::write(
            &ini,
            "[uwsgi]\nsocket = :3031\nmodule = m\nworkers = 4\nmaster-fifo = /tmp/a.fifo\n\
             touch-chain-reload = /tmp/t\nmetrics = 127.0.0.1:9192\n\
             attach-daemon = celery -A proj worker --loglevel=info\n\
             smart-attach-daemon = /tmp/m.pid memcached -d -P /tmp/m.pid\n\
             attach-daemon2 = cmd=sleep 60,control=1\ncheaper = 1\ncheaper-initial = 2\n\
             cheaper-algo = busyness\ncheaper-overload = 5\n",
        )
        .unwrap();
        let argv = ["rwsgi", "--ini", ini.to_str().unwrap()]
            .iter()
            .map(OsString::from)
            .collect();
        let (c, warnings) = load(argv).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let ops = &c.ops;
        assert_eq!(ops.master_fifo, Some(PathBuf::from("/tmp/a.fifo")));
        assert_eq!(ops.touch_chain_reload, [PathBuf::from("/tmp/t")]);
        assert_eq!(ops.metrics.as_deref(), Some("127.0.0.1:9192"));
        let cmds: Vec<&str> = ops.daemons.iter().map(|d| d.cmd.as_str()).collect();
        assert_eq!(
            cmds,
            [
                "celery -A proj worker --loglevel=info",
                "memcached -d -P /tmp/m.pid",
                "sleep 60"
            ]
        );
        let cheaper = ops.cheaper.as_ref().unwrap();
        assert_eq!((cheaper.min, cheaper.initial, cheaper.overload), (1, 2, 5));
        assert_eq!(cheaper.algo, super::CheaperAlgo::Busyness);
        assert!(c.master);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
