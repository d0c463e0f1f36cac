//! One request on a Python thread, in named stages (the private functions of this file):
//! `prepare` (`wsgi.input`, the environ, `start_response`), `run_app` (the call, the body out,
//! `close()`), `fail` (the error answer, or the cut), then the connection goes back to the server
//! ([`Source::finish`]), `account` (the scoreboard) and `log` (the request line).

use super::environ::Seen;
use super::file_wrapper::{sendfile_plan, FileWrapper};
use super::input::Input;
use super::start_response::StartResponse;
use super::App;
use crate::log::RequestLine;
use crate::request::{status_protocol, Conn, End, Finished, Head, Request, Response, Source};
use crate::scoreboard::now_micros;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// How serving the app went wrong.
enum Failure {
    /// The app (or its iterable, or its `close`) raised.
    Raised(PyErr),
    /// The app broke the WSGI contract without raising.
    Contract(String),
    /// Writing failed: the client (nginx) went away or stopped reading.
    Client(io::Error),
    /// No mountpoint matches and no app is mounted at `''`.
    NoApp,
}

/// How the app's response went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Its body was iterated and written.
    Iterated,
    /// Its body went out with `sendfile(2)`.
    Sendfile,
}

/// How a request ended, for the connection, the counters and the log line. The error itself has
/// been logged (once) and dropped by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The app's response went out whole.
    Served(Sent),
    /// The app failed before its head went out, and the server answered `status` itself (500, or
    /// 404 when no app is mounted there).
    Answered {
        /// The status of the server's answer.
        status: u16,
    },
    /// The response was cut short after its head went out, or could not be written.
    Cut {
        /// Who cut it.
        by: Blame,
    },
}

/// Who made a response fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// The app raised or broke the contract.
    App,
    /// Writing failed: the client went away.
    Client,
}

/// A request being served: what the stages after [`prepare`] share.
struct Exchange<'py, 'a> {
    conn: Arc<Conn>,
    input: Bound<'py, Input>,
    sr: Bound<'py, StartResponse>,
    /// The vars the server reads, borrowed from the request's buffer.
    seen: Seen<'a>,
    /// The status line's protocol.
    protocol: &'a [u8],
    /// Epoch microseconds when the app was called (the scoreboard's running time).
    started_us: u64,
}

/// Serve one request and give its connection back to `source`. Nothing here returns an error:
/// every failure is answered or logged here, once.
pub fn handle<S: Source>(py: Python<'_>, app: &App, request: Request, core: usize, source: &mut S) {
    let Request {
        conn,
        buf,
        head,
        framing,
        accepted,
        timeout,
    } = request;
    crate::log::logvars::clear();
    let response = Response::new(conn.clone(), framing.clone(), timeout);
    let exchange = match prepare(py, app, &conn, &buf, &head, response, core) {
        Ok(parts) => parts,
        Err(failure) => {
            // Not even the environ could be built: answer 500 and leave no trace in the counters.
            report(py, &failure, &Seen::default(), false);
            let page = Response::new(conn.clone(), framing, timeout).page(
                b"HTTP/1.0",
                "500 Internal Server Error",
                "Internal Server Error\n",
            );
            let _ = conn.write_all_vectored(&[&page], timeout);
            let finished = Finished {
                conn,
                end: End::Answered,
                body: head.unread(&buf),
                keep_alive: false,
            };
            return finish(py, source, finished);
        }
    };
    let (exchange, environ) = exchange;
    // The exchange holds the connection from here: one reference less, so the server's close at
    // the end can be the last one (a reset must come from the final close).
    drop(conn);
    let outcome = match exchange.seen.app.and_then(|i| app.apps.get(i)) {
        Some((_, callable)) => run_app(py, callable.bind(py), environ, &exchange.sr),
        None if app.apps.is_empty() => Err(Failure::Contract(
            "no Python application loaded (see the startup log)".into(),
        )),
        None => Err(Failure::NoApp),
    };
    let ending = match outcome {
        Ok(sent) => Ending::Served(sent),
        // The error's traceback holds the environ, and with it a reference to the connection:
        // `fail` lets it go so the server's close is the last one.
        Err(failure) => fail(py, &exchange, failure),
    };
    let summary = Summary::of(&exchange, ending);
    let Exchange {
        conn,
        input,
        sr,
        seen,
        started_us,
        ..
    } = exchange;
    // The app is done with wsgi.input (a read still borrowing it cannot be, but if so the body's
    // state is unknown and the connection is not reused).
    let body = input
        .try_borrow_mut()
        .map_or(crate::request::Unread::Broken, |mut i| i.rest());
    drop((input, sr));
    finish(
        py,
        source,
        Finished {
            conn,
            end: summary.end(),
            body,
            keep_alive: summary.keep_alive,
        },
    );
    account(app, core, &summary, started_us);
    log(app, core, &summary, &seen, &head, &buf, accepted);
}

/// Build `wsgi.input`, the environ and `start_response`, and mark the thread busy.
fn prepare<'py, 'a>(
    py: Python<'py>,
    app: &App,
    conn: &Arc<Conn>,
    buf: &'a [u8],
    head: &Head,
    response: Response,
    core: usize,
) -> Result<(Exchange<'py, 'a>, Bound<'py, PyDict>), Failure> {
    let (body, prefix) = head.body(conn.clone(), buf, response.timeout());
    let input = Bound::new(py, Input::new(body, prefix)).map_err(Failure::Raised)?;
    let (environ, seen) = app
        .environ
        .build(py, head.vars(buf), input.clone().into_any())
        .map_err(Failure::Raised)?;
    let protocol = status_protocol(seen.protocol);
    let sr = Bound::new(py, StartResponse::new(response, protocol)).map_err(Failure::Raised)?;
    let started_us = now_micros();
    app.board
        .core(app.worker_id, core)
        .request_start
        .store(started_us, Ordering::Relaxed);
    let exchange = Exchange {
        conn: conn.clone(),
        input,
        sr,
        seen,
        protocol,
        started_us,
    };
    Ok((exchange, environ))
}

/// The app failed: log it once, then answer with an error page when nothing was sent yet, or cut
/// the response.
fn fail(py: Python<'_>, exchange: &Exchange<'_, '_>, failure: Failure) -> Ending {
    if let Some(status) = exchange.input.borrow().answered() {
        // The body was refused (bad chunk framing, over --limit-post) and the server answered,
        // which was logged: what the app did after its read failed is not sent.
        return Ending::Answered { status };
    }
    let client_gone = matches!(failure, Failure::Client(_))
        || exchange.input.borrow().failed.is_some()
        || exchange.sr.borrow().write_failed.is_some();
    report(py, &failure, &exchange.seen, client_gone);
    let blame = if matches!(failure, Failure::Client(_)) {
        Blame::Client
    } else {
        Blame::App
    };
    let head_sent = exchange.sr.borrow().head_sent();
    if client_gone || head_sent || !exchange.conn.claim() {
        return Ending::Cut { by: blame };
    }
    let (status, line, body) = match failure {
        Failure::NoApp => (404, "404 Not Found", "Not Found\n"),
        _ => (500, "500 Internal Server Error", "Internal Server Error\n"),
    };
    let sr = exchange.sr.borrow();
    let response = sr.response();
    let page = response.page(exchange.protocol, line, body);
    let _ = py.detach(|| response.write_all(&[&page]));
    Ending::Answered { status }
}

/// Give the connection back to the server, letting the GIL go only when that has to wait.
fn finish<S: Source>(py: Python<'_>, source: &mut S, finished: Finished) {
    if finished.waits() {
        py.detach(|| source.finish(finished));
    } else {
        source.finish(finished);
    }
}

/// What the counters and the log line need of a finished request.
struct Summary {
    ending: Ending,
    /// The status the client got (`None`: no head went out).
    status: Option<u16>,
    header_count: usize,
    head_bytes: usize,
    body_bytes: u64,
    chunks: u64,
    /// The head declared a `Content-Length`.
    has_length: bool,
    write_failed: bool,
    read_failed: bool,
    /// The framing lets the connection carry another request.
    keep_alive: bool,
}

impl Summary {
    fn of(exchange: &Exchange<'_, '_>, ending: Ending) -> Summary {
        let sr = exchange.sr.borrow();
        let input = exchange.input.borrow();
        let head = sr.summary();
        let status = match ending {
            Ending::Answered { status } => Some(status),
            _ => head.map(|h| h.status),
        };
        Summary {
            ending,
            status,
            header_count: head.map_or(0, |h| h.headers),
            head_bytes: sr.head_bytes(),
            body_bytes: sr.body_bytes,
            chunks: sr.chunks,
            has_length: head.is_some_and(|h| h.fields.has_length),
            write_failed: sr.write_failed.is_some(),
            read_failed: input.failed.is_some(),
            keep_alive: sr.response().keep_alive(),
        }
    }

    /// How the response ended, as the server needs to know it.
    fn end(&self) -> End {
        match self.ending {
            Ending::Served(_) => End::Complete,
            Ending::Answered { .. } => End::Answered,
            Ending::Cut { .. } => End::Cut {
                length_declared: self.has_length,
            },
        }
    }
}

/// Update the scoreboard: the thread is idle again, and the worker's counters.
fn account(app: &App, core: usize, summary: &Summary, started_us: u64) {
    let core_slot = app.board.core(app.worker_id, core);
    let worker = app.board.worker(app.worker_id);
    core_slot.requests.fetch_add(1, Ordering::Relaxed);
    core_slot.request_start.store(0, Ordering::Relaxed);
    worker.requests.fetch_add(1, Ordering::Relaxed);
    worker.delta_requests.fetch_add(1, Ordering::Relaxed);
    worker.tx.fetch_add(
        summary.body_bytes + summary.head_bytes as u64,
        Ordering::Relaxed,
    );
    let took_us = now_micros().saturating_sub(started_us);
    worker.running_time.fetch_add(took_us, Ordering::Relaxed);
    worker.observe(summary.status.unwrap_or(0), took_us);
    match summary.ending {
        Ending::Cut { by: Blame::Client } => {
            core_slot.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        Ending::Cut { by: Blame::App } => {
            worker.exceptions.fetch_add(1, Ordering::Relaxed);
        }
        Ending::Answered { status } if status != 404 => {
            worker.exceptions.fetch_add(1, Ordering::Relaxed);
        }
        Ending::Answered { .. } | Ending::Served(_) => {}
    }
}

/// Write the request line, when a log rule wants it.
fn log(
    app: &App,
    core: usize,
    summary: &Summary,
    seen: &Seen<'_>,
    head: &Head,
    buf: &[u8],
    accepted: Instant,
) {
    let total_requests = app.board.totals().requests.fetch_add(1, Ordering::Relaxed) + 1;
    let worker_requests = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    // With every request log rule off (bench configs), skip even the clock read.
    if !app.logging.any() {
        return;
    }
    let micros = accepted.elapsed().as_micros();
    let status = summary.status.unwrap_or(0);
    if !app.logging.wants(status, micros / 1000, summary.body_bytes) {
        return;
    }
    let uri_owned;
    let uri = if seen.uri.is_empty() && !seen.query_string.is_empty() {
        uri_owned = [seen.path_info, b"?", seen.query_string].concat();
        &uri_owned[..]
    } else if seen.uri.is_empty() {
        seen.path_info
    } else {
        seen.uri
    };
    RequestLine {
        app: seen.app.filter(|&i| i < app.apps.len()),
        worker_requests,
        total_requests,
        memory: app.memory_report.then(crate::log::memory_usage).flatten(),
        remote_addr: seen.remote_addr,
        var_count: head.var_count * 2,
        vars_bytes: head.vars.len(),
        // The wall-clock time of the accept, worked out only for a line that is written.
        started: std::time::SystemTime::now()
            .checked_sub(accepted.elapsed())
            .unwrap_or(std::time::UNIX_EPOCH),
        method: seen.method,
        uri,
        body_bytes: summary.body_bytes,
        micros,
        sendfile: summary.ending == Ending::Served(Sent::Sendfile),
        protocol: seen.protocol.unwrap_or(b""),
        status,
        header_count: summary.header_count,
        head_bytes: summary.head_bytes,
        switches: summary.chunks,
        core,
        worker_id: app.worker_id,
        modifier1: head.modifier1,
        modifier2: head.modifier2,
        content_length: head.content_length,
        vars_block: head.vars_block(buf),
        write_error: summary.write_failed || summary.ending == (Ending::Cut { by: Blame::Client }),
        read_error: summary.read_failed,
    }
    .write(app.log_format.as_ref());
}

/// Log a failure once: a traceback for an app error, one line for a client that went away.
fn report(py: Python<'_>, failure: &Failure, seen: &Seen<'_>, client_gone: bool) {
    let what = format!(
        "{} {}",
        String::from_utf8_lossy(seen.method),
        String::from_utf8_lossy(if seen.uri.is_empty() {
            seen.path_info
        } else {
            seen.uri
        })
    );
    match failure {
        Failure::Client(e) => tracing::info!("client went away during {what}: {e}"),
        Failure::Raised(e) if client_gone => tracing::info!("client went away during {what}: {e}"),
        Failure::Raised(e) => {
            tracing::error!("the app raised an exception for {what}:");
            e.display(py);
        }
        Failure::Contract(msg) => tracing::error!("app error for {what}: {msg}"),
        Failure::NoApp => tracing::warn!("no app is mounted where {what} points (answered 404)"),
    }
}

/// Call the app, send what it returns, and always call the iterable's `close()`.
fn run_app(
    py: Python<'_>,
    callable: &Bound<'_, PyAny>,
    environ: Bound<'_, PyDict>,
    sr: &Bound<'_, StartResponse>,
) -> Result<Sent, Failure> {
    let result = callable
        .call1((environ, sr.clone()))
        .map_err(Failure::Raised)?;
    let sent = send_result(py, &result, sr);
    // A list or tuple has no close(); asking would build an AttributeError per request.
    let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
    let closed = if !plain && result.hasattr(pyo3::intern!(py, "close")).unwrap_or(false) {
        result.call_method0(pyo3::intern!(py, "close")).map(drop)
    } else {
        Ok(())
    };
    let sent = sent?;
    closed.map_err(Failure::Raised)?;
    Ok(sent)
}

fn send_result(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    sr: &Bound<'_, StartResponse>,
) -> Result<Sent, Failure> {
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if let Some((fd, offset, len)) = sendfile_plan(py, &wrapper.borrow()) {
            let mut s = sr.borrow_mut();
            if !s.started() {
                return Err(Failure::Contract(
                    "the app returned a file without calling start_response".into(),
                ));
            }
            s.send_head(py).map_err(Failure::Client)?;
            if s.response().can_sendfile() {
                let response = s.response();
                let n = py
                    .detach(|| response.sendfile(fd, offset, len))
                    .map_err(Failure::Client)?;
                s.body_bytes += n;
                return Ok(Sent::Sendfile);
            }
        }
    }
    if let Ok(list) = result.cast::<PyList>() {
        // The whole body is known: give nginx its length.
        let total: Option<u64> = list
            .iter()
            .map(|i| i.cast::<PyBytes>().ok().map(|b| b.as_bytes().len() as u64))
            .sum();
        if let Some(total) = total {
            sr.borrow_mut().set_length_if_missing(total);
        }
        for item in list.iter() {
            send_item(py, sr, &item)?;
        }
    } else {
        for item in result.try_iter().map_err(Failure::Raised)? {
            send_item(py, sr, &item.map_err(Failure::Raised)?)?;
        }
    }
    let mut s = sr.borrow_mut();
    if !s.started() {
        return Err(Failure::Contract(
            "the app returned without calling start_response".into(),
        ));
    }
    if !s.head_sent() {
        s.set_length_if_missing(0);
        s.send_head(py).map_err(Failure::Client)?;
    }
    s.end_body(py).map_err(Failure::Client)?;
    Ok(Sent::Iterated)
}

fn send_item(
    py: Python<'_>,
    sr: &Bound<'_, StartResponse>,
    item: &Bound<'_, PyAny>,
) -> Result<(), Failure> {
    let bytes = item.cast::<PyBytes>().map_err(|_| {
        let name = item
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        Failure::Contract(format!(
            "the app's body contains a {name}, not bytes (PEP 3333 needs bytes)"
        ))
    })?;
    let data = bytes.as_bytes();
    if data.is_empty() {
        return Ok(());
    }
    let mut s = sr.borrow_mut();
    if !s.started() {
        return Err(Failure::Contract(
            "the app produced a body before calling start_response".into(),
        ));
    }
    s.send(py, data).map_err(Failure::Client)
}
