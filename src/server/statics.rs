//! Static files served by the server itself (`--static-map` and friends), on HTTP and uwsgi
//! sockets alike: resolved by [`crate::statics`] and sent with `sendfile` by a thread that holds
//! no GIL, before any Python runs; what a slow client does not take at once, the event loop sends
//! ([`super::transfer`]). Only `GET` and `HEAD` without a body are looked up; a path that
//! names no file goes on to the app, as in uWSGI.

use super::dispatch::{Job, JobSource};
use super::http::{HttpJob, KeepAlive};
use super::transfer::{Line, Pump, Transfer, THREAD_TURN};
use crate::protocol::http::response::error_response;
use crate::protocol::http::Version;
use crate::protocol::response::{push_header, push_status_line, status_protocol};
use crate::protocol::RequestHead;
use crate::request::Conn;
use crate::statics::{Answer, Conditions, Resolution, StaticFile, StaticRules};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// What became of a job offered to the static-file rules.
pub enum Served {
    /// Not a static file: the app serves it.
    NotStatic(Job),
    /// Answered; an HTTP connection that may carry another request comes back.
    Done(Option<KeepAlive>),
}

/// The request vars a static answer needs.
#[derive(Default)]
struct Want<'a> {
    method: &'a [u8],
    path: &'a [u8],
    protocol: Option<&'a [u8]>,
    gzip: bool,
    cond: Conditions<'a>,
}

fn want<'a>(head: &'a RequestHead, buf: &'a [u8]) -> Want<'a> {
    let mut w = Want::default();
    for (k, v) in head.vars(buf) {
        match k {
            b"REQUEST_METHOD" => w.method = v,
            b"PATH_INFO" => w.path = v,
            b"SERVER_PROTOCOL" => w.protocol = Some(v),
            b"HTTP_ACCEPT_ENCODING" => {
                w.gzip = v.split(|&b| b == b',').any(|t| {
                    let t = t.trim_ascii();
                    t.eq_ignore_ascii_case(b"gzip") || t.starts_with(b"gzip;")
                })
            }
            b"HTTP_IF_NONE_MATCH" => w.cond.if_none_match = Some(v),
            b"HTTP_IF_MODIFIED_SINCE" => w.cond.if_modified_since = Some(v),
            b"HTTP_RANGE" => w.cond.range = Some(v),
            b"HTTP_IF_RANGE" => w.cond.if_range = Some(v),
            _ => {}
        }
    }
    w
}

/// Serve `job` from the static rules if they name a file for it. Sends what the socket takes now
/// and hands the rest to the event loop ([`super::transfer`]); blocks only on a small error
/// answer, or when the loop has stopped taking transfers. The caller holds no GIL.
pub fn serve(rules: &StaticRules, job: Job, source: &JobSource) -> Served {
    let timeout = source.timeouts.idle;
    if rules.is_empty() || job.head.content_length > 0 {
        return Served::NotStatic(job);
    }
    let w = want(&job.head, &job.buf);
    let is_head = w.method == b"HEAD";
    if w.method != b"GET" && !is_head {
        return Served::NotStatic(job);
    }
    let file = match rules.resolve_decoded(w.path, w.gzip) {
        Resolution::NotMapped => return Served::NotStatic(job),
        Resolution::Refused { status, why } => {
            tracing::warn!(
                "static file refused ({status}) for {}: {why}",
                String::from_utf8_lossy(w.path)
            );
            let line = if status == 400 {
                "400 Bad Request"
            } else {
                "403 Forbidden"
            };
            let _ = job
                .conn
                .write_all_vectored(&[&error_response(line)], timeout);
            return Served::Done(None);
        }
        Resolution::File(f) => f,
    };
    let opened = match std::fs::File::open(&file.path) {
        Ok(opened) => opened,
        Err(e) => return cannot_open(&job.conn, &file, &e, source),
    };
    let answer = file.answer(&w.cond);
    let (status, fields) = file.fields(answer, SystemTime::now());
    let (offset, len) = match answer {
        Answer::Full => (0, file.len),
        Answer::Partial { start, end } => (start, end - start),
        Answer::NotModified | Answer::Unsatisfiable => (0, 0),
    };
    let keep_alive = job.http.as_ref().is_some_and(|h| h.exchange.keep_alive);
    let protocol = match &job.http {
        Some(_) => &b"HTTP/1.1"[..],
        None => status_protocol(w.protocol),
    };
    let head = response_head(
        protocol,
        status,
        &fields,
        len,
        job.http.as_deref(),
        keep_alive,
    );
    let keep = job.http.filter(|_| keep_alive);
    let range = (offset, if is_head { 0 } else { len });
    let transfer = Transfer::new(job.conn, opened, head, range, timeout, keep);
    send(transfer, &w, &file, status, source)
}

/// Answer a request for a file that could not be opened: 503 when the worker is out of
/// descriptors (the event loop is told, and frees some), else 403 (it is not readable).
fn cannot_open(conn: &Conn, file: &StaticFile, e: &std::io::Error, source: &JobSource) -> Served {
    let out_of_descriptors = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
    let line = if out_of_descriptors {
        source.report_fd_pressure();
        "503 Service Unavailable"
    } else {
        "403 Forbidden"
    };
    // Out of descriptors, one line a second at most: every request may meet it.
    let now = std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_secs());
    if !out_of_descriptors || LAST_DESCRIPTOR_LOG.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            "static file {} cannot be opened ({line}): {e}",
            file.path.display()
        );
    }
    let _ = conn.write_all_vectored(&[&error_response(line)], source.timeouts.idle);
    Served::Done(None)
}

/// The second (since the epoch) a static file last could not be opened for want of descriptors.
static LAST_DESCRIPTOR_LOG: AtomicU64 = AtomicU64::new(0);

/// The head of a static response of `len` bytes.
fn response_head(
    protocol: &[u8],
    status: u16,
    fields: &[(&'static str, String)],
    len: u64,
    http: Option<&HttpJob>,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    push_status_line(&mut head, protocol, status.to_string().as_bytes());
    for (name, value) in fields {
        push_header(&mut head, name.as_bytes(), value.as_bytes());
    }
    if status != 304 {
        push_header(&mut head, b"Content-Length", len.to_string().as_bytes());
    }
    if let Some(h) = http {
        match (h.exchange.version, keep_alive) {
            (Version::Http11, false) => head.extend_from_slice(b"Connection: close\r\n"),
            (Version::Http10, true) => head.extend_from_slice(b"Connection: keep-alive\r\n"),
            _ => {}
        }
        for (n, v) in h.settings.add_headers.iter() {
            push_header(&mut head, n, v);
        }
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Send what the socket takes now (at most [`THREAD_TURN`] bytes); the rest goes to the event
/// loop, and this thread back to requests.
fn send(
    mut transfer: Transfer,
    w: &Want<'_>,
    file: &StaticFile,
    status: u16,
    source: &JobSource,
) -> Served {
    let end = transfer.pump(THREAD_TURN);
    if matches!(end, Pump::Blocked | Pump::Turn) {
        transfer.describe(Line {
            method: if w.method == b"HEAD" { "HEAD" } else { "GET" },
            path: String::from_utf8_lossy(w.path).into_owned(),
            status,
            file: file.path.clone(),
            gzip: file.gzip,
        });
        return match source.hand_off_transfer(transfer) {
            None => Served::Done(None),
            // The loop is stopping: finish here (bounded by the worker's stop budget).
            Some(transfer) => Served::Done(transfer.finish_here()),
        };
    }
    tracing::info!(
        "static {} {} => {status}, {} bytes from {}{}",
        String::from_utf8_lossy(w.method),
        String::from_utf8_lossy(w.path),
        transfer.sent(),
        file.path.display(),
        if file.gzip { " (gzip)" } else { "" }
    );
    match end {
        Pump::Done => Served::Done(transfer.into_kept()),
        Pump::Truncated => {
            tracing::warn!(
                "static file {} shrank while it was sent: the response was cut after {} bytes",
                file.path.display(),
                transfer.sent()
            );
            Served::Done(None)
        }
        _ => Served::Done(None),
    }
}
