//! Prometheus metrics in the text exposition format (version 0.0.4), rendered from the scoreboard
//! by hand: a fixed set of counters and gauges needs no client library, and the crates that serve
//! metrics bring an async runtime the master does not want.
//!
//! Every per-worker series has a `worker` label (1-based id, as in the stats JSON); sockets have a
//! `socket` label.

use super::Snapshot;
use crate::scoreboard::DURATION_BUCKETS_US;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// What the metrics need beyond the stats snapshot.
pub struct Extra<'a> {
    /// Resident memory of each worker id's process, in bytes (`None`: no process).
    pub rss: &'a [Option<u64>],
    /// Whether the instance accepts requests (what `/ready` says).
    pub ready: bool,
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Render every metric.
pub fn render(s: &Snapshot<'_>, extra: &Extra<'_>) -> String {
    let mut out = Out(String::with_capacity(8192));
    let board = s.board;
    let ids: Vec<(usize, String)> = (1..=board.workers())
        .map(|id| (id, id.to_string()))
        .collect();
    let per_worker = |out: &mut Out, name: &str, value: &dyn Fn(usize) -> u64| {
        for (id, label) in &ids {
            out.sample(name, &[("worker", label)], value(*id));
        }
    };
    let busy = |id: usize| {
        (0..board.threads())
            .filter(|&c| board.core(id, c).request_start.load(Relaxed) != 0)
            .count() as u64
    };

    out.head(
        "rwsgi_requests_total",
        "counter",
        "Requests served, by worker and status class.",
    );
    for (id, label) in &ids {
        let w = board.worker(*id);
        for (i, class) in STATUS_CLASSES.iter().enumerate() {
            let n = w.status_classes[i].load(Relaxed);
            out.sample(
                "rwsgi_requests_total",
                &[("worker", label), ("status", class)],
                n,
            );
        }
    }
    out.head(
        "rwsgi_requests_in_flight",
        "gauge",
        "Requests being served now.",
    );
    per_worker(&mut out, "rwsgi_requests_in_flight", &busy);
    out.head(
        "rwsgi_threads",
        "gauge",
        "Python threads by state: busy (in a request) or idle.",
    );
    for (id, label) in &ids {
        let running = board.worker(*id).pid.load(Relaxed) != 0;
        let b = busy(*id);
        let idle = if running {
            board.threads() as u64 - b
        } else {
            0
        };
        out.sample("rwsgi_threads", &[("worker", label), ("state", "busy")], b);
        out.sample(
            "rwsgi_threads",
            &[("worker", label), ("state", "idle")],
            idle,
        );
    }
    histogram(&mut out, s, &ids);
    workers(&mut out, s, extra, &ids);
    sockets(&mut out, s);
    out.head(
        "rwsgi_ready",
        "gauge",
        "1 while the instance accepts requests (/ready).",
    );
    out.sample("rwsgi_ready", &[], u64::from(extra.ready));
    out.0
}

/// The per-worker counters and gauges beyond requests and durations.
fn workers(out: &mut Out, s: &Snapshot<'_>, extra: &Extra<'_>, ids: &[(usize, String)]) {
    let board = s.board;
    let per_worker = |out: &mut Out, name: &str, value: &dyn Fn(usize) -> u64| {
        for (id, label) in ids {
            out.sample(name, &[("worker", label)], value(*id));
        }
    };
    out.head(
        "rwsgi_response_bytes_total",
        "counter",
        "Response bytes sent (head and body).",
    );
    per_worker(out, "rwsgi_response_bytes_total", &|id| {
        board.worker(id).tx.load(Relaxed)
    });
    out.head(
        "rwsgi_exceptions_total",
        "counter",
        "Requests the app failed with an exception.",
    );
    per_worker(out, "rwsgi_exceptions_total", &|id| {
        board.worker(id).exceptions.load(Relaxed)
    });
    out.head(
        "rwsgi_harakiri_total",
        "counter",
        "Requests stopped by --harakiri.",
    );
    per_worker(out, "rwsgi_harakiri_total", &|id| {
        board.worker(id).harakiri_count.load(Relaxed)
    });
    out.head(
        "rwsgi_worker_respawns_total",
        "counter",
        "Times the worker was respawned.",
    );
    per_worker(out, "rwsgi_worker_respawns_total", &|id| {
        board.worker(id).respawn_count.load(Relaxed)
    });
    out.head(
        "rwsgi_worker_rss_bytes",
        "gauge",
        "Resident memory of the worker process.",
    );
    for (id, label) in ids {
        if let Some(Some(rss)) = extra.rss.get(id - 1) {
            out.sample("rwsgi_worker_rss_bytes", &[("worker", label)], rss);
        }
    }
    out.head(
        "rwsgi_worker_accepting",
        "gauge",
        "1 while the worker accepts requests.",
    );
    per_worker(out, "rwsgi_worker_accepting", &|id| {
        let w = board.worker(id);
        u64::from(w.pid.load(Relaxed) != 0 && w.ready.load(Relaxed) == 1)
    });
}

fn histogram(out: &mut Out, s: &Snapshot<'_>, ids: &[(usize, String)]) {
    let name = "rwsgi_request_duration_seconds";
    out.head(
        name,
        "histogram",
        "Time from accepting a request to its last byte.",
    );
    let bucket = format!("{name}_bucket");
    for (id, label) in ids {
        let w = s.board.worker(*id);
        let mut cumulative = 0;
        for (i, bound) in DURATION_BUCKETS_US.iter().enumerate() {
            cumulative += w.durations[i].load(Relaxed);
            let le = format!("{}", *bound as f64 / 1e6);
            out.sample(&bucket, &[("worker", label), ("le", &le)], cumulative);
        }
        cumulative += w.durations[DURATION_BUCKETS_US.len()].load(Relaxed);
        out.sample(&bucket, &[("worker", label), ("le", "+Inf")], cumulative);
        let sum = w.running_time.load(Relaxed) as f64 / 1e6;
        out.sample(&format!("{name}_sum"), &[("worker", label)], sum);
        out.sample(&format!("{name}_count"), &[("worker", label)], cumulative);
    }
}

fn sockets(out: &mut Out, s: &Snapshot<'_>) {
    out.head(
        "rwsgi_listen_queue",
        "gauge",
        "Connections waiting in a socket's accept queue.",
    );
    for sock in &s.sockets {
        out.sample("rwsgi_listen_queue", &[("socket", &sock.name)], sock.queue);
    }
    out.head(
        "rwsgi_listen_queue_max",
        "gauge",
        "The socket's listen backlog.",
    );
    for sock in &s.sockets {
        out.sample(
            "rwsgi_listen_queue_max",
            &[("socket", &sock.name)],
            sock.max_queue,
        );
    }
}
