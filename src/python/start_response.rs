//! `start_response` and the `write()` callable it returns, with the response state they share.
//!
//! Status and headers are checked and encoded into the head when `start_response` is called (a CR,
//! LF or NUL is a `ValueError`, never an injected header); the head goes out with the first
//! non-empty body chunk, in one `writev`. Calling again before that replaces the head (as uWSGI
//! does); after it, only with `exc_info`, which is then re-raised (PEP 3333).

use crate::protocol::http::response::{
    is_hop_by_hop, plan, push_chunk_size, Exchange, Framing, Plan, CHUNK_END, LAST_CHUNK,
};
use crate::protocol::response::{check_header, check_status, push_header, push_status_line};
use crate::server::http::HttpSettings;
use crate::server::Conn;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The response of one request as it is being sent.
#[pyclass(module = "rwsgi", name = "StartResponse")]
pub struct StartResponse {
    conn: Arc<Conn>,
    timeout: Duration,
    /// The status line's protocol; the two nginx sends are static, so no allocation per request.
    protocol: Cow<'static, [u8]>,
    /// Status line and header lines, without the blank line.
    head: Vec<u8>,
    pub(crate) status: u16,
    pub(crate) header_count: usize,
    pub(crate) has_content_length: bool,
    pub(crate) head_sent: bool,
    pub(crate) head_bytes: usize,
    pub(crate) body_bytes: u64,
    pub(crate) chunks: u64,
    /// Set when a write failed: the client went away or stopped reading.
    pub(crate) write_failed: Option<io::Error>,
    /// Set for a request from an `--http-socket`: the server frames the body.
    http: Option<HttpOut>,
}

/// The HTTP framing of a response: decided when the head goes out.
struct HttpOut {
    exchange: Exchange,
    settings: Arc<HttpSettings>,
    plan: Option<Plan>,
}

/// A `str` as latin-1 bytes, as PEP 3333 requires of status and headers; borrowed from the string
/// itself when it is ASCII (nearly always).
fn latin1_bytes<'a>(s: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    let s = s
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str, not {}", type_name(s))))?;
    let text = s.to_cow()?;
    if let Cow::Borrowed(ascii) = &text {
        if ascii.is_ascii() {
            return Ok(Cow::Borrowed(ascii.as_bytes()));
        }
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Cow::Owned)
        .ok_or_else(|| PyValueError::new_err(format!("{what} {text:?} is not latin-1")))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Responses up to this size are first written with the GIL held.
const ATTACHED_WRITE_MAX: usize = 64 * 1024;

/// Write `bufs` to the connection. A small response nearly always fits the socket buffer, and one
/// non-blocking `writev` with the GIL held costs less than handing the GIL to another Python thread
/// and taking it back; the GIL is released only for a large write or one that must wait.
fn write_all(py: Python<'_>, conn: &Conn, bufs: &[&[u8]], timeout: Duration) -> io::Result<()> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut done = 0;
    if total <= ATTACHED_WRITE_MAX {
        done = conn.write_vectored_now(bufs)?;
        if done == total {
            return Ok(());
        }
    }
    let mut rest: Vec<&[u8]> = Vec::with_capacity(bufs.len());
    for buf in bufs {
        let skip = done.min(buf.len());
        done -= skip;
        if skip < buf.len() {
            rest.push(&buf[skip..]);
        }
    }
    py.detach(|| conn.write_all_vectored(&rest, timeout))
}

impl StartResponse {
    /// A response for a request that asked with `protocol` (its `SERVER_PROTOCOL`).
    pub fn new(conn: Arc<Conn>, protocol: &[u8], timeout: Duration) -> StartResponse {
        StartResponse {
            conn,
            timeout,
            protocol: match protocol {
                b"HTTP/1.1" => Cow::Borrowed(b"HTTP/1.1"),
                b"HTTP/1.0" => Cow::Borrowed(b"HTTP/1.0"),
                other => Cow::Owned(other.to_vec()),
            },
            head: Vec::new(),
            status: 0,
            header_count: 0,
            has_content_length: false,
            head_sent: false,
            head_bytes: 0,
            body_bytes: 0,
            chunks: 0,
            write_failed: None,
            http: None,
        }
    }

    /// Frame the response for an HTTP client (its version, HEAD, keep-alive).
    pub fn set_http(&mut self, exchange: Exchange, settings: Arc<HttpSettings>) {
        // RFC 9110 §2.5: the status line names the server's version, whatever the client's.
        self.protocol = Cow::Borrowed(b"HTTP/1.1");
        self.http = Some(HttpOut {
            exchange,
            settings,
            plan: None,
        });
    }

    /// Whether the connection may carry the next request: an HTTP response whose framing let the
    /// client see where it ended.
    pub fn keep_alive(&self) -> bool {
        self.http
            .as_ref()
            .and_then(|h| h.plan)
            .is_some_and(|p| p.keep_alive)
    }

    /// End the body: the last chunk of a chunked response.
    pub fn finish(&mut self, py: Python<'_>) -> io::Result<()> {
        let chunked = self.http.as_ref().and_then(|h| h.plan).map(|p| p.framing);
        if self.head_sent && chunked == Some(Framing::Chunked) && self.write_failed.is_none() {
            return write_all(py, &self.conn, &[LAST_CHUNK], self.timeout);
        }
        Ok(())
    }

    /// Append the framing and persistence fields and `--add-header` to an HTTP head.
    fn frame_http_head(&mut self) {
        let Some(h) = &mut self.http else {
            return;
        };
        let length = self.has_content_length.then_some(0);
        let p = plan(h.exchange, self.status, length);
        h.plan = Some(p);
        if p.framing == Framing::Chunked {
            self.head
                .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        match (h.exchange.version, p.keep_alive) {
            (crate::protocol::http::Version::Http11, false) => {
                self.head.extend_from_slice(b"Connection: close\r\n")
            }
            (crate::protocol::http::Version::Http10, true) => {
                self.head.extend_from_slice(b"Connection: keep-alive\r\n")
            }
            _ => {}
        }
        for (name, value) in &h.settings.add_headers {
            push_header(&mut self.head, name, value);
        }
    }

    /// The bytes of one body write as they go on the wire: `None` when the response has no body.
    fn http_body<'b>(&self, size_line: &'b mut Vec<u8>, body: &'b [u8]) -> Option<[&'b [u8]; 3]> {
        match self.http.as_ref().and_then(|h| h.plan).map(|p| p.framing) {
            Some(Framing::NoBody) => None,
            Some(Framing::Chunked) if !body.is_empty() => {
                push_chunk_size(size_line, body.len());
                Some([&size_line[..], body, CHUNK_END])
            }
            _ => Some([&[], body, &[]]),
        }
    }

    /// Whether `start_response` has been called.
    pub fn started(&self) -> bool {
        self.status != 0
    }

    /// Add `Content-Length` when the whole body is known and the app did not set one, so nginx can
    /// pass a length to the client instead of chunking.
    pub fn set_length_if_missing(&mut self, len: u64) {
        let no_body = self.status < 200 || self.status == 204 || self.status == 304;
        if self.started() && !self.head_sent && !self.has_content_length && !no_body {
            push_header(
                &mut self.head,
                b"Content-Length",
                len.to_string().as_bytes(),
            );
            self.has_content_length = true;
            self.header_count += 1;
        }
    }

    /// Send the head if it has not gone yet, then `body`, with the GIL released.
    pub fn send(&mut self, py: Python<'_>, body: &[u8]) -> io::Result<()> {
        if let Some(e) = &self.write_failed {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        let result = if self.head_sent && self.http.is_none() {
            write_all(py, &self.conn, &[body], self.timeout)
        } else if self.head_sent {
            let mut size_line = Vec::new();
            match self.http_body(&mut size_line, body) {
                Some(parts) => write_all(py, &self.conn, &parts, self.timeout),
                None => Ok(()),
            }
        } else if !self.conn.claim() {
            Err(io::Error::other(
                "the request was already answered by the harakiri watchdog",
            ))
        } else {
            self.frame_http_head();
            self.head.extend_from_slice(b"\r\n");
            self.head_sent = true;
            self.head_bytes = self.head.len();
            let mut size_line = Vec::new();
            match self.http_body(&mut size_line, body) {
                Some([a, b, c]) => write_all(py, &self.conn, &[&self.head, a, b, c], self.timeout),
                None => write_all(py, &self.conn, &[&self.head], self.timeout),
            }
        };
        match result {
            Ok(()) => {
                self.body_bytes += body.len() as u64;
                if !body.is_empty() {
                    self.chunks += 1;
                }
                Ok(())
            }
            Err(e) => {
                self.write_failed = Some(io::Error::new(e.kind(), e.to_string()));
                Err(e)
            }
        }
    }

    /// Send the head now, if it has not gone (for a response whose body goes out by `sendfile`).
    pub fn send_head(&mut self, py: Python<'_>) -> io::Result<()> {
        if self.head_sent {
            return Ok(());
        }
        self.send(py, &[])
    }

    /// The connection (for `sendfile`).
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The `--socket-timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Check and encode a status and headers into a new head.
    fn encode_head(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<u8>, u16, usize, bool)> {
        let status = latin1_bytes(status, "status")?;
        let status = &status[..];
        let code = check_status(status).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut head = Vec::with_capacity(128);
        push_status_line(&mut head, &self.protocol, status);
        let mut count = 0;
        let mut has_length = false;
        for item in headers.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "headers must be a list of (name, value) tuples, not {}",
                type_name(headers)
            ))
        })? {
            let item = item?;
            let pair = item
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 2)
                .ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "each header must be a (name, value) tuple, not {}",
                        type_name(&item)
                    ))
                })?;
            let (name, value) = (pair.get_item(0)?, pair.get_item(1)?);
            let name = latin1_bytes(&name, "header name")?;
            let value = latin1_bytes(&value, "header value")?;
            check_header(&name, &value).map_err(|e| PyValueError::new_err(e.to_string()))?;
            if self.http.is_some() && is_hop_by_hop(&name) {
                continue; // framing and persistence are the server's (PEP 3333)
            }
            has_length |= name.eq_ignore_ascii_case(b"content-length");
            push_header(&mut head, &name, &value);
            count += 1;
        }
        Ok((head, code, count, has_length))
    }
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, headers, exc_info=None)`; returns `write`.
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut this = slf.borrow_mut();
            if this.head_sent {
                return Err(match exc_info {
                    // PEP 3333: re-raise the app's exception once the head is out.
                    Some(info) => PyErr::from_value(info.get_item(1)?),
                    None => PyRuntimeError::new_err(
                        "start_response called again after the response head was sent",
                    ),
                });
            }
            let (head, code, count, has_length) = this.encode_head(status, headers)?;
            this.head = head;
            this.status = code;
            this.header_count = count;
            this.has_content_length = has_length;
        }
        slf.getattr(pyo3::intern!(py, "write"))
    }

    /// The legacy `write(data)` callable: sends at once.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))
        })?;
        if !self.started() {
            return Err(PyRuntimeError::new_err(
                "write() called before start_response()",
            ));
        }
        self.send(py, data.as_bytes())
            .map_err(|e| PyOSError::new_err(format!("write error: the client went away ({e})")))
    }
}
