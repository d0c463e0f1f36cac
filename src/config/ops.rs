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
    pub touch_chain_reload: Vec<PathBuf>,
    /// `--metrics ADDR`.
    pub metrics: Option<String>,
    /// Attached daemons, in flag order by kind.
    pub daemons: Vec<DaemonSpec>,
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
    }

    /// Validate into [`Ops`].
    pub fn validate(&self) -> Result<Ops, ConfigError> {
        Ok(Ops {
            master_fifo: self.master_fifo.first().cloned(),
            touch_chain_reload: self.touch_chain_reload.clone(),
            metrics: self.metrics.clone(),
            daemons: self.daemons()?,
        })
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
