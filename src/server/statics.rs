//! Static files served by the server itself (`--static-map` and friends), on HTTP and uwsgi
//! sockets alike: resolved by [`crate::statics`], sent with `sendfile` by a thread that holds no
//! GIL, before any Python runs. Only `GET` and `HEAD` without a body are looked up; a path that
//! names no file goes on to the app, as in uWSGI.

use super::dispatch::Job;
use super::http::KeepAlive;
use crate::protocol::http::response::error_response;
use crate::protocol::http::Version;
use crate::protocol::response::{push_header, push_status_line, status_protocol};
use crate::request::Conn;
use crate::statics::{Answer, Conditions, Resolution, StaticRules};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

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

fn want<'a>(job: &'a Job) -> Want<'a> {
    let mut w = Want::default();
    for (k, v) in job.head.vars(&job.buf) {
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

/// Serve `job` from the static rules if they name a file for it. Blocks on the socket (with
/// `timeout`): the caller holds no GIL.
pub fn serve(rules: &StaticRules, job: Job, timeout: Duration) -> Served {
    if rules.is_empty() || job.head.content_length > 0 {
        return Served::NotStatic(job);
    }
    let w = want(&job);
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
    let Ok(opened) = std::fs::File::open(&file.path) else {
        let _ = job
            .conn
            .write_all_vectored(&[&error_response("403 Forbidden")], timeout);
        return Served::Done(None);
    };
    let answer = file.answer(&w.cond);
    let (status, fields) = file.fields(answer, SystemTime::now());
    let (offset, len) = match answer {
        Answer::Full => (0, file.len),
        Answer::Partial { start, end } => (start, end - start),
        Answer::NotModified | Answer::Unsatisfiable => (0, 0),
    };
    let keep_alive = job.http.as_ref().is_some_and(|h| h.exchange.keep_alive);
    let mut head = Vec::with_capacity(512);
    let protocol = match &job.http {
        Some(_) => &b"HTTP/1.1"[..],
        None => status_protocol(w.protocol),
    };
    push_status_line(&mut head, protocol, status.to_string().as_bytes());
    for (name, value) in &fields {
        push_header(&mut head, name.as_bytes(), value.as_bytes());
    }
    if status != 304 {
        push_header(&mut head, b"Content-Length", len.to_string().as_bytes());
    }
    if let Some(h) = &job.http {
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
    let sent = send(
        &job.conn,
        &head,
        &opened,
        offset,
        if is_head { 0 } else { len },
        timeout,
    );
    tracing::info!(
        "static {} {} => {status}, {} bytes from {}{}",
        String::from_utf8_lossy(w.method),
        String::from_utf8_lossy(w.path),
        sent.as_ref().map_or(0, |n| *n),
        file.path.display(),
        if file.gzip { " (gzip)" } else { "" }
    );
    match (sent, job.http) {
        (Ok(_), Some(h)) if keep_alive => Served::Done(Some(KeepAlive {
            conn: job.conn,
            leftover: h.leftover,
            settings: h.settings,
            peer: h.peer,
        })),
        _ => Served::Done(None),
    }
}

/// The head, then `len` bytes of `file` from `offset` by `sendfile`.
fn send(
    conn: &Conn,
    head: &[u8],
    file: &std::fs::File,
    offset: u64,
    len: u64,
    timeout: Duration,
) -> std::io::Result<u64> {
    conn.write_all_vectored(&[head], timeout)?;
    if len == 0 {
        return Ok(0);
    }
    conn.sendfile(file.as_raw_fd(), offset, len, timeout)
}
