//! `wsgi.input`: the request body, never read past `CONTENT_LENGTH`.
//!
//! Bytes that arrived with the packet are served first; the rest is read from the socket with the
//! GIL released, each wait bounded by `--socket-timeout`. A timeout or a client that went away raises
//! `OSError` with a message saying how much of the body was missing.

use crate::server::Conn;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from the socket at a time when looking for a line end.
const LINE_CHUNK: usize = 64 * 1024;

/// The body stream of one request.
#[pyclass(module = "rwsgi", name = "Input")]
pub struct Input {
    conn: Arc<Conn>,
    /// Body bytes read but not yet handed to the app.
    buf: Vec<u8>,
    pos: usize,
    /// Body bytes still in the socket.
    unread: u64,
    content_length: u64,
    timeout: Duration,
    /// Set when reading failed: the client is gone or too slow.
    pub(crate) failed: Option<io::ErrorKind>,
}

impl Input {
    /// A body of `content_length` bytes whose first bytes (`prefix`, never more than the length)
    /// already arrived.
    pub fn new(conn: Arc<Conn>, prefix: Vec<u8>, content_length: u64, timeout: Duration) -> Input {
        let unread = content_length - prefix.len() as u64;
        Input {
            conn,
            buf: prefix,
            pos: 0,
            unread,
            content_length,
            timeout,
            failed: None,
        }
    }

    /// Body bytes the app has not taken: buffered plus still in the socket.
    fn left(&self) -> u64 {
        (self.buf.len() - self.pos) as u64 + self.unread
    }

    /// Body bytes still in the socket (to drain after the response).
    pub fn unread(&self) -> u64 {
        self.unread
    }

    fn error(&mut self, py: Python<'_>, e: io::Error) -> PyErr {
        let _ = py;
        self.failed = Some(e.kind());
        let missing = self.unread;
        let what = if e.kind() == io::ErrorKind::TimedOut {
            format!("timeout after {}s", self.timeout.as_secs())
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            "client closed the connection".to_string()
        } else {
            e.to_string()
        };
        PyOSError::new_err(format!(
            "error reading wsgi.input: {what}; {missing} of {} body bytes (CONTENT_LENGTH) never arrived",
            self.content_length
        ))
    }

    /// Read up to `max` body bytes from the socket onto the end of `out`, with the GIL released.
    fn read_socket(&mut self, py: Python<'_>, out: &mut Vec<u8>, max: usize) -> PyResult<usize> {
        let want = usize::try_from(self.unread).unwrap_or(usize::MAX).min(max);
        let start = out.len();
        out.resize(start + want, 0);
        let r = self.recv_into(py, &mut out[start..]);
        out.truncate(start + *r.as_ref().unwrap_or(&0));
        r
    }

    /// Read body bytes from the socket into `dst` (at most what the body has left), with the GIL
    /// released. End of stream before the body's end is an error.
    fn recv_into(&mut self, py: Python<'_>, dst: &mut [u8]) -> PyResult<usize> {
        let want = self.want(dst.len());
        if want == 0 {
            return Ok(0);
        }
        let (conn, timeout) = (&self.conn, self.timeout);
        let dst = &mut dst[..want];
        let r = py.detach(|| conn.read_timeout(dst, timeout));
        self.received(py, r)
    }

    /// [`Input::recv_into`] for memory not initialised yet: the first `n` bytes of `dst` are
    /// initialised when it returns `Ok(n)`.
    fn recv_uninit(&mut self, py: Python<'_>, dst: &mut [MaybeUninit<u8>]) -> PyResult<usize> {
        let want = self.want(dst.len());
        if want == 0 {
            return Ok(0);
        }
        let (conn, timeout) = (&self.conn, self.timeout);
        let dst = &mut dst[..want];
        let r = py.detach(|| conn.recv_uninit_timeout(dst, timeout));
        self.received(py, r)
    }

    /// How many bytes a read into `room` bytes may take: no more than the body has left.
    fn want(&self, room: usize) -> usize {
        usize::try_from(self.unread).unwrap_or(usize::MAX).min(room)
    }

    /// Account for one socket read.
    fn received(&mut self, py: Python<'_>, r: io::Result<usize>) -> PyResult<usize> {
        match r {
            Ok(0) => Err(self.error(py, io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                self.unread -= n as u64;
                Ok(n)
            }
            Err(e) => Err(self.error(py, e)),
        }
    }

    /// Take `n` bytes (fewer only at the end of the body) as a new `bytes`, filled in place: the
    /// socket reads land in the object itself, with no zeroing and no copy.
    fn take<'py>(&mut self, py: Python<'py>, n: u64) -> PyResult<Bound<'py, PyBytes>> {
        let n = usize::try_from(n.min(self.left())).unwrap_or(usize::MAX);
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

    /// One line, up to `limit` bytes.
    fn line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let limit = limit.unwrap_or(usize::MAX);
        loop {
            let window = &self.buf[self.pos..];
            let end = window.iter().position(|&b| b == b'\n').map(|i| i + 1);
            let cut = match end {
                Some(e) => Some(e.min(limit)),
                None if window.len() >= limit => Some(limit),
                None if self.unread == 0 => Some(window.len()),
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
            r?;
        }
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
        self.conn.fd()
    }
}
