//! One request on a Python thread: environ, the app call, the body out, `close()`, the error answer
//! when the app fails, the drain of an unread body, the log line.

use super::environ::Seen;
use super::file_wrapper::{sendfile_plan, FileWrapper};
use super::input::Input;
use super::start_response::StartResponse;
use super::App;
use crate::log::RequestLine;
use crate::protocol::response::{simple_response, status_protocol};
use crate::scoreboard::now_micros;
use crate::server::dispatch::{Job, Running};
use crate::server::http::{HttpJob, KeepAlive};
use crate::server::Conn;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most unread body bytes discarded after a response before the connection is closed anyway.
const DRAIN_LIMIT: u64 = 256 << 20;

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

/// Serve one job. Nothing here returns an error: every failure is answered or logged here, once.
/// An HTTP connection that may carry another request comes back.
pub fn handle(py: Python<'_>, app: &App, job: Job, core: usize) -> Option<KeepAlive> {
    let Job {
        conn,
        buf,
        head,
        accepted,
        http,
    } = job;
    crate::log::logvars::clear();
    let conn = Arc::new(conn);
    let body_start = head.body_start();
    let arrived = buf.len() - body_start;
    let prefix_len = usize::try_from(head.content_length).map_or(arrived, |cl| cl.min(arrived));
    let prefix = buf[body_start..body_start + prefix_len].to_vec();
    let input = Bound::new(
        py,
        Input::new(conn.clone(), prefix, head.content_length, app.timeout),
    );
    let built = input.map_err(Failure::Raised).and_then(|input| {
        let (environ, seen) = app
            .environ
            .build(py, head.vars(&buf), input.clone().into_any())
            .map_err(Failure::Raised)?;
        Ok((input, environ, seen))
    });
    let (input, environ, seen) = match built {
        Ok(parts) => parts,
        Err(failure) => {
            report(py, &failure, &Seen::default(), false);
            let _ = conn.write_all_vectored(
                &[&simple_response(
                    b"HTTP/1.0",
                    "500 Internal Server Error",
                    "Internal Server Error\n",
                )],
                app.timeout,
            );
            return None;
        }
    };
    let protocol = status_protocol(seen.protocol);
    let started_us = now_micros();
    let core_slot = app.board.core(app.worker_id, core);
    core_slot.request_start.store(started_us, Ordering::Relaxed);
    if let Some(inflight) = &app.inflight {
        let what = format!(
            "{} {}",
            String::from_utf8_lossy(seen.method),
            String::from_utf8_lossy(seen.uri)
        );
        inflight.start(
            core,
            Running {
                conn: conn.clone(),
                started: accepted,
                what,
            },
        );
    }
    let sr = match Bound::new(py, StartResponse::new(conn.clone(), protocol, app.timeout)) {
        Ok(sr) => sr,
        Err(e) => {
            report(py, &Failure::Raised(e), &seen, false);
            return None;
        }
    };
    if let Some(h) = &http {
        sr.borrow_mut().set_http(h.exchange, h.settings.clone());
    }

    let outcome = match seen.app.and_then(|i| app.apps.get(i)) {
        Some((_, callable)) => run_app(py, callable.bind(py), environ, &sr),
        None if app.apps.is_empty() => Err(Failure::Contract(
            "no Python application loaded (see the startup log)".into(),
        )),
        None => Err(Failure::NoApp),
    };
    let outcome = outcome.and_then(|sent| {
        let finished = sr.borrow_mut().finish(py);
        finished.map(|()| sent).map_err(Failure::Client)
    });

    let mut status = sr.borrow().status;
    let mut abort = false;
    let sendfile = matches!(outcome, Ok(true));
    if let Err(failure) = &outcome {
        let client_gone = matches!(failure, Failure::Client(_))
            || input.borrow().failed.is_some()
            || sr.borrow().write_failed.is_some();
        report(py, failure, &seen, client_gone);
        let head_sent = sr.borrow().head_sent;
        if client_gone || head_sent || !conn.claim() {
            // Cut the connection so nginx sees an error, not a short body it takes as complete.
            abort = true;
        } else {
            let (line, body) = match failure {
                Failure::NoApp => ("404 Not Found", "Not Found\n"),
                _ => ("500 Internal Server Error", "Internal Server Error\n"),
            };
            let page = simple_response(protocol, line, body);
            let _ = py.detach(|| conn.write_all_vectored(&[&page], app.timeout));
            status = if matches!(failure, Failure::NoApp) {
                404
            } else {
                500
            };
        }
    }

    // The error's traceback holds the environ, and with it a reference to the connection: let it go
    // so the close below is the last one (a reset must come from the final close).
    let failed_by_client = match &outcome {
        Ok(_) => None,
        Err(failure) => Some(matches!(failure, Failure::Client(_))),
    };
    drop(outcome);

    let unread = input.borrow().unread();
    let mut drained = unread == 0;
    if unread > 0 && !abort {
        let timeout = app.timeout;
        let got = py.detach(|| conn.drain(unread.min(DRAIN_LIMIT), timeout));
        drained = got.is_ok_and(|n| n == unread);
    }
    let keep_alive = sr.borrow().keep_alive() && drained && !abort && failed_by_client.is_none();

    let (header_count, head_bytes, body_bytes, chunks, write_failed) = {
        let s = sr.borrow();
        (
            s.header_count,
            s.head_bytes,
            s.body_bytes,
            s.chunks,
            s.write_failed.is_some(),
        )
    };
    let read_failed = input.borrow().failed.is_some();
    drop((sr, input));
    if let Some(inflight) = &app.inflight {
        inflight.finish(core);
    }
    let next = match http {
        Some(h) if keep_alive => reuse(conn, *h),
        _ => {
            close(conn, abort);
            None
        }
    };

    let worker = app.board.worker(app.worker_id);
    core_slot.requests.fetch_add(1, Ordering::Relaxed);
    core_slot.request_start.store(0, Ordering::Relaxed);
    worker.requests.fetch_add(1, Ordering::Relaxed);
    worker.delta_requests.fetch_add(1, Ordering::Relaxed);
    worker
        .tx
        .fetch_add(body_bytes + head_bytes as u64, Ordering::Relaxed);
    let took_us = now_micros().saturating_sub(started_us);
    worker.running_time.fetch_add(took_us, Ordering::Relaxed);
    worker.observe(status, took_us);
    match failed_by_client {
        Some(true) => core_slot.write_errors.fetch_add(1, Ordering::Relaxed),
        Some(false) if status != 404 => worker.exceptions.fetch_add(1, Ordering::Relaxed),
        Some(false) => 0,
        None => 0,
    };
    let total_requests = app.board.totals().requests.fetch_add(1, Ordering::Relaxed) + 1;
    let worker_requests = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    // With every request log rule off (bench configs), skip even the clock read.
    let logs = app.logging.any();
    let micros = if logs {
        accepted.elapsed().as_micros()
    } else {
        0
    };
    if logs && app.logging.wants(status, micros / 1000, body_bytes) {
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
            vars_bytes: head.vars_len,
            // The wall-clock time of the accept, worked out only for a line that is written.
            started: std::time::SystemTime::now()
                .checked_sub(accepted.elapsed())
                .unwrap_or(std::time::UNIX_EPOCH),
            method: seen.method,
            uri,
            body_bytes,
            micros,
            sendfile,
            protocol: seen.protocol.unwrap_or(b""),
            status,
            header_count,
            head_bytes,
            switches: chunks,
            core,
            worker_id: app.worker_id,
            modifier1: head.modifier1,
            modifier2: head.modifier2,
            content_length: head.content_length,
            vars_block: head.vars_block(&buf),
            write_error: write_failed || failed_by_client == Some(true),
            read_error: read_failed,
        }
        .write(app.log_format.as_ref());
    }
    next
}

/// The connection back for the next request, unless Python still holds it (the app kept its
/// environ): then it is closed.
fn reuse(conn: Arc<Conn>, http: HttpJob) -> Option<KeepAlive> {
    match Arc::try_unwrap(conn) {
        Ok(conn) => {
            conn.unclaim();
            Some(KeepAlive {
                conn,
                leftover: http.leftover,
                settings: http.settings,
                peer: http.peer,
            })
        }
        Err(shared) => {
            shared.shutdown_both();
            None
        }
    }
}

/// Close the connection: a FIN normally, a reset when the response is incomplete. If the app kept a
/// reference to its environ, the descriptor stays open until Python frees it, but the peer is
/// answered now.
fn close(conn: Arc<Conn>, abort: bool) {
    match Arc::try_unwrap(conn) {
        Ok(conn) if abort => conn.abort(),
        Ok(conn) => drop(conn),
        Err(shared) => shared.shutdown_both(),
    }
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

/// Call the app, send what it returns, and always call the iterable's `close()`. `Ok(true)` means
/// the body went out with `sendfile`.
fn run_app(
    py: Python<'_>,
    callable: &Bound<'_, PyAny>,
    environ: Bound<'_, PyDict>,
    sr: &Bound<'_, StartResponse>,
) -> Result<bool, Failure> {
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
    let sendfile = sent?;
    closed.map_err(Failure::Raised)?;
    Ok(sendfile)
}

fn send_result(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    sr: &Bound<'_, StartResponse>,
) -> Result<bool, Failure> {
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if let Some((fd, offset, len)) = sendfile_plan(py, &wrapper.borrow()) {
            let mut s = sr.borrow_mut();
            if !s.started() {
                return Err(Failure::Contract(
                    "the app returned a file without calling start_response".into(),
                ));
            }
            s.send_head(py).map_err(Failure::Client)?;
            let (conn, timeout) = (s.conn(), s.timeout());
            let n = py
                .detach(|| conn.sendfile(fd, offset, len, timeout))
                .map_err(Failure::Client)?;
            s.body_bytes += n;
            return Ok(true);
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
    if !s.head_sent {
        s.set_length_if_missing(0);
        s.send_head(py).map_err(Failure::Client)?;
    }
    Ok(false)
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
