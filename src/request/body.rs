//! The socket side of a request body: the bytes still on the wire after the ones that came with
//! the head, never read past the declared length, each wait bounded by `--socket-timeout`.

use super::Conn;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

/// Reads the body's remaining bytes from the connection. Blocking: call it with the GIL released.
pub struct Body {
    conn: Arc<Conn>,
    /// Body bytes still on the wire.
    unread: u64,
    content_length: u64,
    timeout: Duration,
}

impl Body {
    /// A body of `content_length` bytes of which `unread` are still on the wire.
    pub fn new(conn: Arc<Conn>, unread: u64, content_length: u64, timeout: Duration) -> Body {
        Body {
            conn,
            unread,
            content_length,
            timeout,
        }
    }

    /// Body bytes still on the wire.
    pub fn unread(&self) -> u64 {
        self.unread
    }

    /// The declared length.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// The wait bound for each read.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection's descriptor (`wsgi.input.fileno()`, as uWSGI has it).
    pub fn fd(&self) -> i32 {
        self.conn.fd()
    }

    /// How many bytes a read into `room` bytes may take.
    fn want(&self, room: usize) -> usize {
        usize::try_from(self.unread).unwrap_or(usize::MAX).min(room)
    }

    /// Account for one read: end of stream before the body's end is `UnexpectedEof`.
    fn got(&mut self, n: usize) -> io::Result<usize> {
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.unread -= n as u64;
        Ok(n)
    }

    /// Read body bytes into `dst` (at most what the body has left; 0 only when nothing is left).
    pub fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        let want = self.want(dst.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.conn.read_timeout(&mut dst[..want], self.timeout)?;
        self.got(n)
    }

    /// [`Body::read`] into memory not initialised yet: the first `n` bytes of `dst` are
    /// initialised when it returns `Ok(n)`.
    pub fn read_uninit(&mut self, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let want = self.want(dst.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .conn
            .recv_uninit_timeout(&mut dst[..want], self.timeout)?;
        self.got(n)
    }
}
