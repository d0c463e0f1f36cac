//! `wsgi.input`: the request body, never read past its end (`CONTENT_LENGTH`, or the last chunk of
//! a chunked HTTP body, de-chunked as it is read), so `wsgi.input_terminated` holds.
//!
//! Bytes that arrived with the packet are served first; the rest is read from the socket with the
//! GIL released, each wait bounded by `--socket-timeout`. A timeout or a client that went away raises
//! `OSError` with a message saying how much of the body was missing; so does a chunked body with
//! bad framing or over `--limit-post` (the server has answered 400 or 413 then, see
//! [`crate::request::Body`]).

use crate::request::{Body, Refused, Unread};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::io;
use std::mem::MaybeUninit;

/// Bytes read from the socket at a time when looking for a line end.
const LINE_CHUNK: usize = 64 * 1024;

/// The body stream of one request.
#[pyclass(module = "rwsgi", name = "Input")]
pub struct Input {
    body: Body,
    /// Body bytes read but not yet handed to the app.
    buf: Vec<u8>,
    pos: usize,
    /// Set when reading failed: the client is gone or too slow.
    pub(crate) failed: Option<io::ErrorKind>,
}

impl Input {
    /// A body whose first bytes (`prefix`, never more than its length) already arrived; `body`
    /// reads the rest.
    pub fn new(body: Body, prefix: Vec<u8>) -> Input {
        Input {
            body,
            buf: prefix,
            pos: 0,
            failed: None,
        }
    }

    /// Body bytes the app has not taken, buffered plus still in the socket, when that is known
    /// (not for a chunked body before its end).
    fn left(&self) -> Option<u64> {
        let buffered = (self.buf.len() - self.pos) as u64;
        self.body.remaining().map(|r| r + buffered)
    }

    /// What is left of the body on the wire, for the server to drain after the response.
    pub fn rest(&mut self) -> Unread {
        self.body.rest()
    }

    /// The status the server answered a refused chunked body with (400, 413), if it did: the
    /// app's own response is not sent then.
    pub fn answered(&self) -> Option<u16> {
        self.body.answered()
    }

    fn error(&mut self, e: io::Error) -> PyErr {
        self.failed = Some(e.kind());
        if let Some(refused) = e.get_ref().and_then(|r| r.downcast_ref::<Refused>()) {
            return PyOSError::new_err(format!("error reading wsgi.input: {refused}"));
        }
        let what = describe(&e, self.body.timeout().as_secs());
        if self.body.is_chunked() {
            return PyOSError::new_err(format!(
                "error reading wsgi.input: {what}; the chunked body was cut after {} bytes",
                self.body.chunked_taken()
            ));
        }
        let missing = self.body.remaining().unwrap_or(0);
        PyOSError::new_err(format!(
            "error reading wsgi.input: {what}; {missing} of {} body bytes (CONTENT_LENGTH) never arrived",
            self.body.content_length()
        ))
    }

    /// Read up to `max` body bytes from the socket onto the end of `out`, with the GIL released.
    fn read_socket(&mut self, py: Python<'_>, out: &mut Vec<u8>, max: usize) -> PyResult<usize> {
        let want = match self.body.remaining() {
            Some(r) => usize::try_from(r).unwrap_or(usize::MAX).min(max),
            None => max,
        };
        let start = out.len();
        out.resize(start + want, 0);
        let r = self.recv_into(py, &mut out[start..]);
        out.truncate(start + *r.as_ref().unwrap_or(&0));
        r
    }

    /// Read body bytes from the socket into `dst` (at most what the body has left), with the GIL
    /// released. End of stream before the body's end is an error.
    fn recv_into(&mut self, py: Python<'_>, dst: &mut [u8]) -> PyResult<usize> {
        let body = &mut self.body;
        let r = py.detach(|| body.read(dst));
        r.map_err(|e| self.error(e))
    }

    /// [`Input::recv_into`] for memory not initialised yet: the first `n` bytes of `dst` are
    /// initialised when it returns `Ok(n)`.
    fn recv_uninit(&mut self, py: Python<'_>, dst: &mut [MaybeUninit<u8>]) -> PyResult<usize> {
        let body = &mut self.body;
        let r = py.detach(|| body.read_uninit(dst));
        r.map_err(|e| self.error(e))
    }

    /// Take `n` bytes (fewer only at the end of the body) as a new `bytes`, filled in place: the
    /// socket reads land in the object itself, with no zeroing and no copy.
    fn take<'py>(&mut self, py: Python<'py>, n: u64) -> PyResult<Bound<'py, PyBytes>> {
        let Some(left) = self.left() else {
            return self.take_unknown(py, n);
        };
        let n = usize::try_from(n.min(left)).unwrap_or(usize::MAX);
        let len = pyo3::ffi::Py_ssize_t::try_from(n)
            .map_err(|_| PyOSError::new_err("wsgi.input read size too large"))?;
        // SAFETY: a NULL source asks CPython for an uninitialised bytes object of `len` bytes,
        // which is ours alone until returned; every byte is written below before Python sees it
        // (on an error the object is dropped unseen).
        let bytes = unsafe {
            let ptr = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len);
            Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyBytes>()
        };
        if n == 0 {
            return Ok(bytes);
        }
        // SAFETY: the object's buffer is `n` bytes long and nothing else refers to it yet; it is
        // seen as `MaybeUninit` because its bytes are not initialised.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(
                pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<MaybeUninit<u8>>(),
                n,
            )
        };
        let buffered = (self.buf.len() - self.pos).min(n);
        for (slot, &byte) in dst.iter_mut().zip(&self.buf[self.pos..self.pos + buffered]) {
            slot.write(byte);
        }
        self.pos += buffered;
        let mut filled = buffered;
        while filled < n {
            filled += self.recv_uninit(py, &mut dst[filled..])?;
        }
        Ok(bytes)
    }

    /// [`Input::take`] for a body whose length is not known (chunked): read into a buffer until
    /// `n` bytes or the end, then copy once into the `bytes`.
    fn take_unknown<'py>(&mut self, py: Python<'py>, n: u64) -> PyResult<Bound<'py, PyBytes>> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let buffered = (self.buf.len() - self.pos).min(n);
        let mut out = self.buf[self.pos..self.pos + buffered].to_vec();
        self.pos += buffered;
        while out.len() < n {
            let want = (n - out.len()).min(LINE_CHUNK);
            let got = self.read_socket(py, &mut out, want)?;
            if got == 0 {
                break;
            }
        }
        Ok(PyBytes::new(py, &out))
    }

    /// One line, up to `limit` bytes.
    fn line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let limit = limit.unwrap_or(usize::MAX);
        loop {
            let window = &self.buf[self.pos..];
            let end = window.iter().position(|&b| b == b'\n').map(|i| i + 1);
            let cut = match end {
                Some(e) => Some(e.min(limit)),
                None if window.len() >= limit => Some(limit),
                None if self.body.remaining() == Some(0) => Some(window.len()),
                None => None,
            };
            if let Some(cut) = cut {
                let line = window[..cut].to_vec();
                self.pos += cut;
                return Ok(line);
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let mut buf = std::mem::take(&mut self.buf);
            let r = self.read_socket(py, &mut buf, LINE_CHUNK);
            self.buf = buf;
            if r? == 0 {
                // A chunked body ended: what is buffered is its last line.
                let line = self.buf[self.pos..].to_vec();
                self.pos = self.buf.len();
                return Ok(line);
            }
        }
    }
}

/// Why a read failed, in words.
fn describe(e: &io::Error, timeout_secs: u64) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut => format!("timeout after {timeout_secs}s"),
        io::ErrorKind::UnexpectedEof => "client closed the connection".to_string(),
        _ => e.to_string(),
    }
}

/// A size argument: `None` or negative means "all".
fn size_arg(size: Option<i64>) -> Option<u64> {
    size.and_then(|s| u64::try_from(s).ok())
}

#[pymethods]
impl Input {
    /// Read `size` bytes, or the rest of the body.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let n = size_arg(size).unwrap_or(u64::MAX);
        self.take(py, n)
    }

    /// Read one line (up to `size` bytes).
    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let limit = size_arg(size).map(|s| usize::try_from(s).unwrap_or(usize::MAX));
        let line = self.line(py, limit)?;
        Ok(PyBytes::new(py, &line))
    }

    /// Read lines until the body ends or `hint` bytes have been read.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<i64>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_arg(hint).filter(|h| *h > 0).unwrap_or(u64::MAX);
        let mut lines = Vec::new();
        let mut total = 0u64;
        while total < hint {
            let line = self.line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len() as u64;
            lines.push(PyBytes::new(py, &line));
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    /// Does nothing: the server owns the connection.
    fn close(&self) {}

    /// The connection's descriptor, as uWSGI's `wsgi.input.fileno()` returns.
    fn fileno(&self) -> i32 {
        self.body.fd()
    }
}
