//! The stats document: the shared scoreboard rendered as the JSON uWSGI 2.0.30's `--stats` server
//! writes (same field names, types and units), so `uwsgitop` and existing dashboards read it as is.
//!
//! [`ports`] serves it (and the Prometheus metrics, [`metrics`]) on the `--stats` and `--metrics`
//! sockets: the master binds them and, when a connection waits, hands over a view of itself
//! ([`ports::Instance`]) to make the document from; the socket I/O is all in [`ports`].
//!
//! The JSON is written by hand: the document is fixed-shape, numbers and a few strings, and a
//! dependency would buy nothing but a second way to build it. Strings go through `push_str`.

use crate::scoreboard::{CoreSlot, Scoreboard, WorkerSlot};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// The `version` field. uwsgitop only displays it (`uwsgi-<version>`); tools that compare it with
/// uWSGI releases see the release whose stats format this follows.
pub const VERSION: &str = concat!("2.0.30-rwsgi-", env!("CARGO_PKG_VERSION"));

/// uWSGI's lock names, listed in its stats; rwsgi takes none of these locks, so all read 0.
const LOCKS: [&str; 8] = [
    "user 0", "signal", "filemon", "timer", "rbtimer", "cron", "rpc", "snmp",
];

/// One listening socket, as the master sees it.
pub struct SocketInfo {
    /// The address as the user wrote it (`127.0.0.1:3031`, a unix path, `@abstract`).
    pub name: String,
    /// Connections waiting in the accept queue now (`Listener::queue_len`).
    pub queue: u32,
    /// The listen backlog the socket was bound with.
    pub max_queue: i32,
}

/// Everything one stats document is made from.
pub struct Snapshot<'a> {
    /// The shared counters of the master, the workers and their threads.
    pub board: &'a Scoreboard,
    /// The listeners, with their accept queue lengths.
    pub sockets: Vec<SocketInfo>,
    /// The master's process id.
    pub master_pid: i32,
    /// The master's working directory.
    pub cwd: String,
    /// `--memory-report`: without it `rss` and `vsz` read 0, as in uWSGI.
    pub memory_report: bool,
}

/// One JSON value in a document being built.
enum V<'a> {
    U(u64),
    I(i64),
    S(&'a str),
    /// Already-rendered JSON (a nested object or array).
    Raw(String),
}

/// Render the stats document (one JSON object, newline-terminated).
pub fn render(s: &Snapshot<'_>) -> String {
    let board = s.board;
    let workers: Vec<String> = (1..=board.workers()).map(|id| worker(s, id)).collect();
    let busy_cores = (1..=board.workers())
        .flat_map(|id| (0..board.threads()).map(move |c| (id, c)))
        .filter(|&(id, c)| board.core(id, c).request_start.load(Relaxed) != 0)
        .count() as u64;
    let locks = LOCKS.iter().map(|name| object(&[(name, V::U(0))]));
    let sockets = s.sockets.iter().map(|sock| {
        object(&[
            ("name", V::S(&sock.name)),
            ("proto", V::S("uwsgi")),
            ("queue", V::U(u64::from(sock.queue))),
            ("max_queue", V::I(i64::from(sock.max_queue))),
            ("shared", V::U(0)),
            ("can_offload", V::U(0)),
        ])
    });
    // uWSGI reports the fullest socket's queue as the instance's.
    let listen_queue = s.sockets.iter().map(|sock| sock.queue).max().unwrap_or(0);
    let (uid, gid) = crate::sys::process::real_ids();
    let mut out = object(&[
        ("version", V::S(VERSION)),
        ("listen_queue", V::U(u64::from(listen_queue))),
        ("listen_queue_errors", V::U(0)),
        ("signal_queue", V::U(0)),
        // Requests running now, across all workers.
        ("load", V::U(busy_cores)),
        ("pid", V::I(i64::from(s.master_pid))),
        ("uid", V::U(u64::from(uid))),
        ("gid", V::U(u64::from(gid))),
        ("cwd", V::S(&s.cwd)),
        ("locks", V::Raw(array(locks))),
        ("sockets", V::Raw(array(sockets))),
        ("workers", V::Raw(array(workers.into_iter()))),
    ]);
    out.push('\n');
    out
}

/// The document as an HTTP/1.0 response, for `--stats-http`.
pub fn http_wrap(json: &str) -> String {
    format!(
        "HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    )
}

/// One worker's object; `id` is 1-based.
fn worker(s: &Snapshot<'_>, id: usize) -> String {
    let w: &WorkerSlot = s.board.worker(id);
    let pid = w.pid.load(Relaxed);
    let cores: Vec<&CoreSlot> = (0..s.board.threads())
        .map(|c| s.board.core(id, c))
        .collect();
    let status = if pid == 0 {
        "cheap"
    } else if cores.iter().any(|c| c.request_start.load(Relaxed) != 0) {
        "busy"
    } else {
        "idle"
    };
    let requests = w.requests.load(Relaxed);
    let running_time = w.running_time.load(Relaxed);
    let avg_rt = running_time.checked_div(requests).unwrap_or(0);
    let (rss, vsz) = if s.memory_report {
        (w.rss.load(Relaxed), w.vsz.load(Relaxed))
    } else {
        (0, 0)
    };
    let delta = w.delta_requests.load(Relaxed);
    let exceptions = w.exceptions.load(Relaxed);
    let app = object(&[
        ("id", V::U(0)),
        ("modifier1", V::U(0)),
        ("mountpoint", V::S("")),
        ("startup_time", V::U(0)),
        // The app is loaded per process, so its count restarts with the worker.
        ("requests", V::U(delta)),
        ("exceptions", V::U(exceptions)),
        ("chdir", V::S("")),
    ]);
    let cores = cores.iter().enumerate().map(|(i, c)| core(i, c));
    object(&[
        ("id", V::U(id as u64)),
        ("pid", V::I(i64::from(pid))),
        ("accepting", V::U(u64::from(w.accepting.load(Relaxed)))),
        ("requests", V::U(requests)),
        ("delta_requests", V::U(delta)),
        ("exceptions", V::U(exceptions)),
        ("harakiri_count", V::U(w.harakiri_count.load(Relaxed))),
        ("signals", V::U(0)),
        ("signal_queue", V::U(0)),
        ("status", V::S(status)),
        ("rss", V::U(rss)),
        ("vsz", V::U(vsz)),
        ("running_time", V::U(running_time)),
        ("last_spawn", V::U(w.last_spawn.load(Relaxed))),
        ("respawn_count", V::U(w.respawn_count.load(Relaxed))),
        ("tx", V::U(w.tx.load(Relaxed))),
        ("avg_rt", V::U(avg_rt)),
        ("apps", V::Raw(array(std::iter::once(app)))),
        ("cores", V::Raw(array(cores))),
    ])
}

/// One core's object; `id` is 0-based.
fn core(id: usize, c: &CoreSlot) -> String {
    let start = c.request_start.load(Relaxed);
    let req_info = if start == 0 {
        object(&[])
    } else {
        object(&[("request_start", V::U(start / 1_000_000))])
    };
    object(&[
        ("id", V::U(id as u64)),
        ("requests", V::U(c.requests.load(Relaxed))),
        ("static_requests", V::U(0)),
        ("routed_requests", V::U(0)),
        ("offloaded_requests", V::U(0)),
        ("write_errors", V::U(c.write_errors.load(Relaxed))),
        ("read_errors", V::U(c.read_errors.load(Relaxed))),
        ("in_request", V::U(u64::from(start != 0))),
        // uWSGI lists the running request's vars here; the scoreboard does not keep them.
        ("vars", V::Raw(array(std::iter::empty()))),
        ("req_info", V::Raw(req_info)),
    ])
}

fn object(fields: &[(&str, V<'_>)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_str(&mut out, key);
        out.push_str(": ");
        match value {
            // Writing to a String cannot fail.
            V::U(n) => drop(write!(out, "{n}")),
            V::I(n) => drop(write!(out, "{n}")),
            V::S(text) => push_str(&mut out, text),
            V::Raw(json) => out.push_str(json),
        }
    }
    out.push('}');
    out
}

fn array(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    format!("[{}]", items.join(", "))
}

/// Append `text` as a JSON string literal: quotes, backslashes and control characters escaped.
fn push_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => drop(write!(out, "\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub mod http;
pub mod listen_queue;
pub mod metrics;
pub mod ports;
mod summary;
pub use summary::summary;

#[cfg(test)]
mod tests;
