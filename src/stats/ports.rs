//! The monitoring ports and their socket I/O: `--stats` (uWSGI's JSON, raw or with `--stats-http`
//! as HTTP) and `--metrics` (HTTP: Prometheus `/metrics`, `/health`, `/ready`; the stats port
//! answers those paths too with `--stats-http`).
//!
//! The master binds them at start-up, polls [`Ports::fds`] in its loop and, when one is readable,
//! calls [`Ports::serve`] with itself as the [`Instance`] the documents are made from. Each
//! connection gets one answer and is closed; every wait is short and bounded, since it is the
//! master's loop that waits.

use super::http::{probe, response, Route};
use super::{metrics, Snapshot};
use crate::config::{Config, SocketSpec};
use crate::request::Conn;
use crate::server::Listener;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Request bytes a client may send that are read and discarded before close, and how long the
/// master waits for them.
const DRAIN_LIMIT: u64 = 64 * 1024;
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// How long the master waits for an HTTP request head, and its largest size (what arrived by then
/// decides the route).
const HEAD_WAIT: Duration = Duration::from_millis(300);
const HEAD_LIMIT: usize = 8192;

/// How long writing an answer may wait for room in the send buffer.
const WRITE_WAIT: Duration = Duration::from_secs(1);

/// What the monitoring ports ask the running instance (the master) for, once per request.
pub trait Instance {
    /// The counters and listeners now.
    fn snapshot(&self) -> Snapshot<'_>;
    /// Resident memory of each worker id's process, in bytes (`None`: no process), for `/metrics`.
    fn worker_rss(&self) -> Vec<Option<u64>>;
    /// Whether the instance is healthy (`/health`): no worker failed to load the app.
    fn alive(&self) -> bool;
    /// Whether the instance accepts requests (`/ready`).
    fn ready(&self) -> bool;
}

/// Which port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// `--stats`.
    Stats,
    /// `--metrics`.
    Metrics,
}

/// The bound monitoring sockets.
pub struct Ports {
    stats: Option<Listener>,
    stats_http: bool,
    metrics: Option<Listener>,
}

fn bind(flag: &str, addr: &str) -> Result<Listener, String> {
    let spec = SocketSpec::parse(addr).map_err(|e| format!("{flag}: {e}"))?;
    Listener::bind(&spec, 64, None, 0).map_err(|e| format!("{flag}: {e}"))
}

impl Ports {
    /// Bind `--stats` and `--metrics`.
    pub fn bind(config: &Config) -> Result<Ports, String> {
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
        Ok(Ports {
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

    /// Answer every waiting connection on `port` with a document made from `instance`.
    pub fn serve(&self, port: Port, instance: &dyn Instance) {
        let (listener, http, default) = match port {
            Port::Stats => (&self.stats, self.stats_http, Route::Stats),
            Port::Metrics => (&self.metrics, true, Route::NotFound),
        };
        let Some(listener) = listener else { return };
        while let Ok(socket) = listener.accept() {
            let conn = Conn::new(socket);
            let route = if http {
                super::http::route(&read_head(&conn), default)
            } else {
                Route::Stats
            };
            let body = answer(instance, route, http);
            if conn
                .write_all_vectored(&[body.as_bytes()], WRITE_WAIT)
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

/// The bytes a monitoring request for `route` gets; `http` wraps the stats JSON in a response.
fn answer(instance: &dyn Instance, route: Route, http: bool) -> String {
    match route {
        Route::Stats => {
            let json = super::render(&instance.snapshot());
            if http {
                super::http_wrap(&json)
            } else {
                json
            }
        }
        Route::Metrics => {
            let rss = instance.worker_rss();
            let extra = metrics::Extra {
                rss: &rss,
                ready: instance.ready(),
            };
            let text = metrics::render(&instance.snapshot(), &extra);
            response("200 OK", metrics::CONTENT_TYPE, &text)
        }
        Route::Health => probe(instance.alive(), "alive"),
        Route::Ready => probe(instance.ready(), "ready"),
        Route::NotFound => response(
            "404 Not Found",
            "text/plain",
            "try /metrics, /health or /ready\n",
        ),
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
