//! systemd's notify protocol (`sd_notify(3)`), for `Type=notify` units: `READY=1` once every worker
//! accepts, `STATUS=` lines with the workers and requests, `RELOADING=1` around reloads, `STOPPING=1`
//! at shutdown, and `WATCHDOG=1` every half `WATCHDOG_USEC` while the master's loop runs.
//!
//! The datagrams go to `$NOTIFY_SOCKET` (a path or an `@abstract` name). The variable is left in the
//! environment, so the master re-executed by a reload (same pid) notifies again; `MAINPID=` goes
//! with every `READY=1`. Without `$NOTIFY_SOCKET` every call is a no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// How often `STATUS=` may change.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The master's link to systemd.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    last_ping: Instant,
    /// `READY=1` was sent since the last start or reload.
    ready: bool,
    last_status: (String, Instant),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None => SocketAddr::from_pathname(&path),
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(socket), Ok(addr)) => Some((socket, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("NOTIFY_SOCKET {path:?}: {e}: not notifying systemd");
                    None
                }
            }
        });
        let for_us = std::env::var("WATCHDOG_PID").map_or(true, |pid| {
            pid.parse::<u32>().ok() == Some(std::process::id())
        });
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us && target.is_some())
            .map(Duration::from_micros);
        if let Some(w) = watchdog {
            tracing::info!("systemd watchdog: pinging every {:?}", w / 2);
        }
        Notifier {
            target,
            watchdog,
            last_ping: Instant::now(),
            ready: false,
            last_status: (String::new(), Instant::now()),
        }
    }

    /// Whether there is a systemd to tell.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
                tracing::debug!("sd_notify {message:?}: {e}");
            }
        }
    }

    /// Called on every master tick while running: `READY=1` the first time `all_ready`, `STATUS=`
    /// when it changed (at most once a second), and the watchdog ping when due.
    pub fn tick(&mut self, all_ready: bool, status: impl FnOnce() -> String) {
        if self.target.is_none() {
            return;
        }
        if let Some(w) = self.watchdog {
            if self.last_ping.elapsed() >= w / 2 {
                self.send("WATCHDOG=1");
                self.last_ping = Instant::now();
            }
        }
        let status = status();
        if all_ready && !self.ready {
            self.ready = true;
            self.send(&format!(
                "READY=1\nSTATUS={status}\nMAINPID={}",
                std::process::id()
            ));
            self.last_status = (status, Instant::now());
        } else if status != self.last_status.0 && self.last_status.1.elapsed() >= STATUS_EVERY {
            self.send(&format!("STATUS={status}"));
            self.last_status = (status, Instant::now());
        }
    }

    /// A reload begins (`READY=1` follows once the new workers accept).
    pub fn reloading(&mut self) {
        self.ready = false;
        self.send("RELOADING=1\nSTATUS=reloading");
    }

    /// The instance is shutting down.
    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// Keep the watchdog fed while the master waits for workers to stop.
    pub fn ping(&mut self) {
        if self
            .watchdog
            .is_some_and(|w| self.last_ping.elapsed() >= w / 2)
        {
            self.send("WATCHDOG=1");
            self.last_ping = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_then_status_changes() {
        let dir = std::env::temp_dir().join(format!("rwsgi-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            )),
            watchdog: Some(Duration::from_millis(2)),
            last_ping: Instant::now() - Duration::from_secs(1),
            ready: false,
            last_status: (String::new(), Instant::now()),
        };
        n.tick(false, || "starting".into());
        n.tick(true, || "2 workers".into());
        n.tick(true, || "2 workers".into());
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(len) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(got[0], "WATCHDOG=1");
        let ready: Vec<_> = got.iter().filter(|m| m.starts_with("READY=1")).collect();
        assert_eq!(ready.len(), 1, "{got:?}");
        assert!(ready[0].contains("STATUS=2 workers") && ready[0].contains("MAINPID="));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
