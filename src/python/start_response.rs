//! `start_response` and the `write()` callable it returns, with the response state they share.
//!
//! Status and headers are checked and encoded into the head when `start_response` is called (a CR,
//! LF or NUL is a `ValueError`, never an injected header); the head goes out with the first
//! non-empty body chunk, in one `writev`. Calling again before that replaces the head (as uWSGI
//! does); after it, only with `exc_info`, which is then re-raised (PEP 3333).

use crate::request::{
    check_header, check_status, push_header, push_status_line, AppFields, ChunkLine, Response,
};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use std::borrow::Cow;
use std::io;

/// Where the response head is.
#[derive(Debug)]
pub enum Head {
    /// `start_response` has not been called.
    Unset,
    /// Called: the encoded head (status line and headers, no blank line) waits for the first body
    /// bytes. A new call replaces it.
    Ready {
        /// The encoded head.
        head: Vec<u8>,
        /// What the head says.
        summary: Summary,
    },
    /// On the wire.
    Sent {
        /// What the head said.
        summary: Summary,
        /// Its size, blank line included.
        bytes: usize,
    },
}

/// What a response head says, as the log and the framing need it.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// The status code.
    pub status: u16,
    /// Header lines.
    pub headers: usize,
    /// What the fields say that the framing needs (`Content-Length`, `Date`, `Connection: close`).
    pub fields: AppFields,
}

impl Summary {
    /// Whether the status has no body (1xx, 204, 304).
    fn no_body(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }
}

/// The response of one request as it is being sent.
#[pyclass(module = "rwsgi", name = "StartResponse")]
pub struct StartResponse {
    response: Response,
    /// The status line's protocol; the two nginx sends are static, so no allocation per request.
    protocol: Cow<'static, [u8]>,
    head: Head,
    pub(crate) body_bytes: u64,
    pub(crate) chunks: u64,
    /// Set when a write failed: the client went away or stopped reading.
    pub(crate) write_failed: Option<io::Error>,
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
fn write_all(py: Python<'_>, response: &Response, bufs: &[&[u8]]) -> io::Result<()> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut done = 0;
    if total <= ATTACHED_WRITE_MAX {
        done = response.write_now(bufs)?;
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
    py.detach(|| response.write_all(&rest))
}

impl StartResponse {
    /// A response for a request that asked with `protocol` (its `SERVER_PROTOCOL`).
    pub fn new(response: Response, protocol: &[u8]) -> StartResponse {
        let protocol = response.status_protocol(protocol);
        StartResponse {
            protocol: match protocol {
                b"HTTP/1.1" => Cow::Borrowed(b"HTTP/1.1"),
                b"HTTP/1.0" => Cow::Borrowed(b"HTTP/1.0"),
                other => Cow::Owned(other.to_vec()),
            },
            response,
            head: Head::Unset,
            body_bytes: 0,
            chunks: 0,
            write_failed: None,
        }
    }

    /// Whether `start_response` has been called.
    pub fn started(&self) -> bool {
        !matches!(self.head, Head::Unset)
    }

    /// What the head says, once `start_response` was called.
    pub fn summary(&self) -> Option<Summary> {
        match &self.head {
            Head::Unset => None,
            Head::Ready { summary, .. } | Head::Sent { summary, .. } => Some(*summary),
        }
    }

    /// Whether the head is on the wire.
    pub fn head_sent(&self) -> bool {
        matches!(self.head, Head::Sent { .. })
    }

    /// The head's size on the wire (0 before it is sent).
    pub fn head_bytes(&self) -> usize {
        match self.head {
            Head::Sent { bytes, .. } => bytes,
            _ => 0,
        }
    }

    /// The writer (for `sendfile`, the error page and the end of the response).
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// Add `Content-Length` when the whole body is known and the app did not set one, so the
    /// client gets a length instead of a chunked or close-delimited body.
    pub fn set_length_if_missing(&mut self, len: u64) {
        if let Head::Ready { head, summary } = &mut self.head {
            if !summary.fields.has_length && !summary.no_body() {
                push_header(head, b"Content-Length", len.to_string().as_bytes());
                summary.fields.has_length = true;
                summary.headers += 1;
            }
        }
    }

    /// Send the head if it has not gone yet, then `body`, with the GIL released for a large or
    /// slow write. The head must have been set.
    pub fn send(&mut self, py: Python<'_>, body: &[u8]) -> io::Result<()> {
        if let Some(e) = &self.write_failed {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        let result = self.write_head_and(py, body);
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

    fn write_head_and(&mut self, py: Python<'_>, body: &[u8]) -> io::Result<()> {
        let mut line: ChunkLine = [0; 18];
        match std::mem::replace(&mut self.head, Head::Unset) {
            Head::Sent { summary, bytes } => {
                self.head = Head::Sent { summary, bytes };
                let (bufs, n) = self.response.framed(&[], body, &mut line);
                write_all(py, &self.response, &bufs[..n])
            }
            Head::Ready { mut head, summary } => {
                if !self.response.claim() {
                    self.head = Head::Ready { head, summary };
                    return Err(io::Error::other(
                        "the request was already answered by the harakiri watchdog",
                    ));
                }
                self.response
                    .end_head(&mut head, summary.status, summary.fields);
                self.head = Head::Sent {
                    summary,
                    bytes: head.len(),
                };
                let (bufs, n) = self.response.framed(&head, body, &mut line);
                write_all(py, &self.response, &bufs[..n])
            }
            Head::Unset => Err(io::Error::other(
                "no response head: start_response not called",
            )),
        }
    }

    /// End the body once the app is done (the last chunk of a chunked response).
    pub fn end_body(&mut self, py: Python<'_>) -> io::Result<()> {
        match self.response.trailer() {
            Some(trailer) if self.head_sent() && self.write_failed.is_none() => {
                write_all(py, &self.response, &[trailer])
            }
            _ => Ok(()),
        }
    }

    /// Send the head now, if it has not gone (for a response whose body goes out by `sendfile`).
    pub fn send_head(&mut self, py: Python<'_>) -> io::Result<()> {
        if self.head_sent() {
            return Ok(());
        }
        self.send(py, &[])
    }

    /// Check and encode a status and headers into a new head.
    fn encode_head(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<u8>, Summary)> {
        let status = latin1_bytes(status, "status")?;
        let status = &status[..];
        let code = check_status(status).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut head = Vec::with_capacity(128);
        push_status_line(&mut head, &self.protocol, status);
        let mut count = 0;
        let mut fields = AppFields::default();
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
            fields.see(&name, &value);
            if !self.response.keeps_header(&name) {
                continue; // framing and persistence are the server's (PEP 3333)
            }
            push_header(&mut head, &name, &value);
            count += 1;
        }
        let summary = Summary {
            status: code,
            headers: count,
            fields,
        };
        Ok((head, summary))
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
            if this.head_sent() {
                return Err(match exc_info {
                    // PEP 3333: re-raise the app's exception once the head is out.
                    Some(info) => PyErr::from_value(info.get_item(1)?),
                    None => PyRuntimeError::new_err(
                        "start_response called again after the response head was sent",
                    ),
                });
            }
            let (head, summary) = this.encode_head(status, headers)?;
            this.head = Head::Ready { head, summary };
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
