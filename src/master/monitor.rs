//! The master's monitoring ports: `--stats` (uWSGI's JSON, raw or with `--stats-http` as HTTP) and
//! `--metrics` (HTTP: Prometheus `/metrics`, `/health`, `/ready`; the stats port answers those paths
//! too with `--stats-http`). Each connection gets one answer and is closed, from the master's loop.

use crate::config::{Config, SocketSpec};
use crate::request::Conn;
use crate::server::Listener;
use crate::stats::http::Route;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Request bytes a client may send that are read and discarded before close, and how long the
/// master waits for them.
const DRAIN_LIMIT: u64 = 64 * 1024;
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// How long the master waits for an HTTP request head, and its largest size.
const HEAD_WAIT: Duration = Duration::from_millis(300);
const HEAD_LIMIT: usize = 8192;

/// Which port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Stats,
    Metrics,
}

/// The bound monitoring sockets.
pub struct Monitor {
    stats: Option<Listener>,
    stats_http: bool,
    metrics: Option<Listener>,
}

fn bind(flag: &str, addr: &str) -> Result<Listener, String> {
    let spec = SocketSpec::parse(addr).map_err(|e| format!("{flag}: {e}"))?;
    Listener::bind(&spec, 64, None, 0).map_err(|e| format!("{flag}: {e}"))
}

impl Monitor {
    /// Bind `--stats` and `--metrics`.
    pub fn bind(config: &Config) -> Result<Monitor, String> {
        let stats = match &config.stats {
            Some(addr) => {
                let l = bind("--stats", addr)?;
                tracing::info!(
                    "*** Stats server enabled on {} fd: {} ***",
                    l.spec(),
                    l.fd()
                );
                Some(l)
            }
            None => None,
        };
        let metrics = match &config.ops.metrics {
            Some(addr) => {
                let l = bind("--metrics", addr)?;
                tracing::info!(
                    "metrics on http://{}/metrics (and /health, /ready) fd {}",
                    l.spec(),
                    l.fd()
                );
                Some(l)
            }
            None => None,
        };
        Ok(Monitor {
            stats,
            stats_http: config.stats_http,
            metrics,
        })
    }

    /// Close the sockets (in a forked worker).
    pub fn close(&mut self) {
        self.stats = None;
        self.metrics = None;
    }

    /// The descriptors to poll.
    pub fn fds(&self) -> Vec<(RawFd, Port)> {
        let stats = self.stats.iter().map(|l| (l.fd(), Port::Stats));
        stats
            .chain(self.metrics.iter().map(|l| (l.fd(), Port::Metrics)))
            .collect()
    }

    /// Answer every waiting connection on `port`; `answer(route, http)` makes the bytes to send.
    pub fn serve(&self, port: Port, answer: impl Fn(Route, bool) -> String) {
        let (listener, http, default) = match port {
            Port::Stats => (&self.stats, self.stats_http, Route::Stats),
            Port::Metrics => (&self.metrics, true, Route::NotFound),
        };
        let Some(listener) = listener else { return };
        while let Ok(socket) = listener.accept() {
            let conn = Conn::new(socket);
            let route = if http {
                crate::stats::http::route(&read_head(&conn), default)
            } else {
                Route::Stats
            };
            let body = answer(route, http);
            if conn
                .write_all_vectored(&[body.as_bytes()], Duration::from_secs(1))
                .is_ok()
            {
                // Closing over unread request bytes would reset the connection before the client
                // read the answer: send the FIN, then discard what it sent until it closes
                // (briefly: this is the master's loop).
                conn.shutdown_write();
                let _ = conn.drain(DRAIN_LIMIT, DRAIN_WAIT);
            }
        }
    }
}

/// Read an HTTP request head (bounded in size and time); what arrived, complete or not.
fn read_head(conn: &Conn) -> Vec<u8> {
    let deadline = Instant::now() + HEAD_WAIT;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while head.len() < HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match conn.read_timeout(&mut buf, left) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}
