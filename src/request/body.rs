//! The socket side of a request body: the bytes still on the wire after the ones that came with
//! the head, never read past the body's end, each wait bounded by `--socket-timeout`.
//!
//! A body of declared length (uwsgi, or HTTP with `Content-Length`) is counted down. A chunked
//! HTTP body is de-chunked as the app reads it: first from the raw bytes that came with the head,
//! then from the socket, so an upload of any size streams through `wsgi.input` without being held
//! in memory first. `--limit-post` bounds it as it is decoded.
//!
//! - A chunked body whose framing turns out bad, or that grows past `--limit-post`, fails the read
//!   that meets it: logged once, answered 400 or 413 by the server when the response head has not
//!   gone out yet (the app's own answer is then not sent), and the connection is closed after the
//!   response, never reused.
//! - `Expect: 100-continue` is answered before the first read that has to wait for the peer,
//!   unless the response head went first: an app that answers without reading the body never
//!   makes the client send it, and the connection is then closed rather than drained.
//! - When the response is done, [`Body::rest`] says what is left on the wire ([`Unread`]); the
//!   server drains it before the connection carries the next request.

use super::response::http_date;
use super::Conn;
use crate::protocol::http::response::{error_page, CONTINUE};
use crate::protocol::http::{Chunk, ChunkedDecoder, HttpError};
use crate::protocol::Recv;
use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Raw bytes asked of one read of a chunked body.
const CHUNKED_READ: usize = 64 * 1024;

/// Reads the body's remaining bytes from the connection. Blocking: call it with the GIL released.
pub struct Body {
    conn: Arc<Conn>,
    timeout: Duration,
    framing: Framing,
}

enum Framing {
    /// A declared length.
    Length {
        /// Body bytes still on the wire.
        unread: u64,
        content_length: u64,
    },
    /// The chunked transfer coding.
    Chunked(Box<Chunked>),
}

/// A chunked body being read.
struct Chunked {
    decoder: ChunkedDecoder,
    /// Raw bytes read off the wire; `raw[pos..]` is not decoded yet.
    raw: Vec<u8>,
    pos: usize,
    /// Decoded data in `raw` not handed out yet.
    pending: Range<usize>,
    /// Data bytes handed out.
    taken: u64,
    /// The status the server answered with when the framing or the limit failed, if it could.
    answered: Option<u16>,
    /// A read failed: the body cannot be read further, nor its end found.
    broken: bool,
}

/// Why a read of a chunked body failed when the bytes, not the connection, were at fault.
#[derive(Debug)]
pub struct Refused {
    /// What was wrong.
    pub error: HttpError,
    /// The status the server answered with (`None`: the response had started).
    pub answered: Option<u16>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.answered {
            Some(status) => write!(f, "{}; the server answered {status}", self.error),
            None => write!(
                f,
                "{}; the response had started, the connection is closed after it",
                self.error
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// What is left of a body when the response is done.
#[derive(Debug)]
pub enum Unread {
    /// This many bytes of a body of declared length are still on the wire.
    Length(u64),
    /// A chunked body whose end has not been read (or whose end was read with bytes after it).
    Chunked(ChunkedRest),
    /// The body's end cannot be found, or the client may never send it (it waits for a
    /// `100 Continue` that was not sent): the connection carries no further request.
    Broken,
}

/// The unread rest of a chunked body: where its decoding stands, and the raw bytes read past it.
#[derive(Debug)]
pub struct ChunkedRest {
    decoder: ChunkedDecoder,
    raw: Vec<u8>,
}

impl Body {
    /// A body of `content_length` bytes of which `unread` are still on the wire.
    pub fn new(conn: Arc<Conn>, unread: u64, content_length: u64, timeout: Duration) -> Body {
        Body {
            conn,
            timeout,
            framing: Framing::Length {
                unread,
                content_length,
            },
        }
    }

    /// A chunked body decoded by `decoder`, whose first raw bytes (`raw`, and maybe bytes past
    /// the body: the next pipelined request) came with the head.
    pub fn chunked(
        conn: Arc<Conn>,
        decoder: ChunkedDecoder,
        raw: Vec<u8>,
        timeout: Duration,
    ) -> Body {
        Body {
            conn,
            timeout,
            framing: Framing::Chunked(Box::new(Chunked {
                decoder,
                raw,
                pos: 0,
                pending: 0..0,
                taken: 0,
                answered: None,
                broken: false,
            })),
        }
    }

    /// Body bytes still on the wire, when that is known (a declared length, or a chunked body
    /// whose end has been read).
    pub fn remaining(&self) -> Option<u64> {
        match &self.framing {
            Framing::Length { unread, .. } => Some(*unread),
            Framing::Chunked(c) if c.decoder.is_done() && c.pending.is_empty() => Some(0),
            Framing::Chunked(_) => None,
        }
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        matches!(self.framing, Framing::Chunked(_))
    }

    /// The declared length (0 for a chunked body).
    pub fn content_length(&self) -> u64 {
        match &self.framing {
            Framing::Length { content_length, .. } => *content_length,
            Framing::Chunked(_) => 0,
        }
    }

    /// Data bytes of a chunked body handed out so far (0 for a declared length).
    pub fn chunked_taken(&self) -> u64 {
        match &self.framing {
            Framing::Length { .. } => 0,
            Framing::Chunked(c) => c.taken,
        }
    }

    /// The status the server answered a refused chunked body with, if it did.
    pub fn answered(&self) -> Option<u16> {
        match &self.framing {
            Framing::Length { .. } => None,
            Framing::Chunked(c) => c.answered,
        }
    }

    /// The wait bound for each read.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection's descriptor (`wsgi.input.fileno()`, as uWSGI has it).
    pub fn fd(&self) -> i32 {
        self.conn.fd()
    }

    /// Send `100 Continue` if the client waits for it and the response head has not gone first:
    /// called before a read that has to wait for the peer.
    fn continue_if_owed(&self) -> io::Result<()> {
        if self.conn.continue_owed() && !self.conn.is_claimed() {
            self.conn.write_all_vectored(&[CONTINUE], self.timeout)?;
            self.conn.owe_continue(false);
        }
        Ok(())
    }

    /// Read body bytes into `dst` (at most what the body has left; 0 only when nothing is left).
    pub fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        let want = match &self.framing {
            Framing::Length { unread, .. } => usize::try_from(*unread)
                .unwrap_or(usize::MAX)
                .min(dst.len()),
            Framing::Chunked(_) => {
                return self.read_chunked(dst.len(), |data| dst[..data.len()].copy_from_slice(data))
            }
        };
        if want == 0 {
            return Ok(0);
        }
        self.continue_if_owed()?;
        let n = self.conn.read_timeout(&mut dst[..want], self.timeout)?;
        self.got(n)
    }

    /// [`Body::read`] into memory not initialised yet: the first `n` bytes of `dst` are
    /// initialised when it returns `Ok(n)`.
    pub fn read_uninit(&mut self, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let want = match &self.framing {
            Framing::Length { unread, .. } => usize::try_from(*unread)
                .unwrap_or(usize::MAX)
                .min(dst.len()),
            Framing::Chunked(_) => {
                return self.read_chunked(dst.len(), |data| {
                    for (slot, &b) in dst.iter_mut().zip(data) {
                        slot.write(b);
                    }
                })
            }
        };
        if want == 0 {
            return Ok(0);
        }
        self.continue_if_owed()?;
        let n = self
            .conn
            .recv_uninit_timeout(&mut dst[..want], self.timeout)?;
        self.got(n)
    }

    /// Account for one read of a body of declared length: end of stream before the body's end is
    /// `UnexpectedEof`.
    fn got(&mut self, n: usize) -> io::Result<usize> {
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Framing::Length { unread, .. } = &mut self.framing {
            *unread -= n as u64;
        }
        Ok(n)
    }

    /// Up to `room` de-chunked bytes, given to `put` (once); 0 only at the body's end.
    fn read_chunked(&mut self, room: usize, mut put: impl FnMut(&[u8])) -> io::Result<usize> {
        if room == 0 {
            return Ok(0);
        }
        loop {
            let Framing::Chunked(c) = &mut self.framing else {
                return Ok(0);
            };
            if c.broken {
                return Err(io::Error::other("the request body already failed to read"));
            }
            if !c.pending.is_empty() {
                let n = c.pending.len().min(room);
                put(&c.raw[c.pending.start..c.pending.start + n]);
                c.pending.start += n;
                c.taken += n as u64;
                return Ok(n);
            }
            match c.decoder.decode(&c.raw[c.pos..]) {
                Ok((n, Chunk::Data(data))) => {
                    let end = c.pos + n;
                    c.pending = end - data.len()..end;
                    c.pos = end;
                }
                Ok((n, Chunk::End)) => {
                    c.pos += n;
                    return Ok(0);
                }
                Ok((n, Chunk::NeedMore)) => {
                    c.pos += n;
                    c.raw.drain(..c.pos);
                    c.pos = 0;
                    if let Err(e) = self.fill() {
                        self.break_off();
                        return Err(e);
                    }
                }
                Err(e) => return Err(self.refuse(e)),
            }
        }
    }

    /// Read more raw bytes of a chunked body (after `100 Continue`, if owed).
    fn fill(&mut self) -> io::Result<()> {
        self.continue_if_owed()?;
        let Framing::Chunked(c) = &mut self.framing else {
            return Ok(());
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.conn.recv_append(&mut c.raw, CHUNKED_READ) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.conn.wait_readable(deadline)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The body cannot be read any further.
    fn break_off(&mut self) {
        if let Framing::Chunked(c) = &mut self.framing {
            c.broken = true;
        }
    }

    /// The chunked body's bytes are bad or too many: log it once, answer it when the response has
    /// not started, and fail this read and every later one.
    fn refuse(&mut self, error: HttpError) -> io::Error {
        self.break_off();
        let answered = error.status().filter(|_| self.conn.claim()).map(|status| {
            let page = error_page(status, &format!("{status}\n"), Some(&http_date()));
            let _ = self.conn.write_all_vectored(&[&page], self.timeout);
            // The FIN right after the answer: a client still sending learns it may stop.
            self.conn.shutdown_write();
            status
                .get(..3)
                .and_then(|code| code.parse().ok())
                .unwrap_or(400)
        });
        if let Framing::Chunked(c) = &mut self.framing {
            c.answered = answered;
        }
        let refused = Refused { error, answered };
        tracing::warn!("{refused}");
        io::Error::new(io::ErrorKind::InvalidData, refused)
    }

    /// What is left on the wire now that the response is done. A client still waiting for
    /// `100 Continue` with the body unread may never send it: the connection is not reused.
    pub fn rest(&mut self) -> Unread {
        let complete = self.remaining() == Some(0);
        if self.conn.continue_owed() && !complete {
            return Unread::Broken;
        }
        match &mut self.framing {
            Framing::Length { unread, .. } => Unread::Length(std::mem::take(unread)),
            Framing::Chunked(c) if c.broken => Unread::Broken,
            Framing::Chunked(c) => Unread::Chunked(ChunkedRest {
                decoder: c.decoder.clone(),
                raw: c.raw.split_off(c.pos),
            }),
        }
    }
}

impl Unread {
    /// Whether draining may wait on the peer.
    pub fn waits(&self) -> bool {
        match self {
            Unread::Length(n) => *n > 0,
            Unread::Chunked(_) => true,
            Unread::Broken => false,
        }
    }

    /// Read and discard the rest of the body (at most `limit` data bytes, each wait bounded by
    /// `timeout`): the raw bytes already read past its end (the start of the next request), or
    /// `None` when the connection cannot carry another request.
    pub fn drain(self, conn: &Conn, limit: u64, timeout: Duration) -> Option<Vec<u8>> {
        match self {
            Unread::Length(0) => Some(Vec::new()),
            Unread::Length(n) => {
                let got = conn.drain(n.min(limit), timeout);
                got.is_ok_and(|got| got == n).then(Vec::new)
            }
            Unread::Chunked(rest) => rest.drain(conn, limit, timeout),
            Unread::Broken => None,
        }
    }
}

impl ChunkedRest {
    fn drain(mut self, conn: &Conn, limit: u64, timeout: Duration) -> Option<Vec<u8>> {
        let mut pos = 0;
        let mut discarded = 0u64;
        loop {
            match self.decoder.decode(&self.raw[pos..]) {
                Ok((n, Chunk::Data(data))) => {
                    discarded += data.len() as u64;
                    pos += n;
                    if discarded > limit {
                        return None;
                    }
                }
                Ok((n, Chunk::End)) => return Some(self.raw.split_off(pos + n)),
                Ok((n, Chunk::NeedMore)) => {
                    self.raw.drain(..pos + n);
                    pos = 0;
                    match conn.recv_append(&mut self.raw, CHUNKED_READ) {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            conn.wait_readable(Instant::now() + timeout).ok()?;
                        }
                        Err(_) => return None,
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "{e} in the unread rest of a chunked request body: the connection is \
                         closed after the response"
                    );
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fd::Socket;
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// Our end of a socket pair as a connection, and the client's end.
    fn pair() -> (Arc<Conn>, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("non-blocking");
        theirs.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        (
            Arc::new(Conn::new(Socket::from_owned(OwnedFd::from(ours)))),
            theirs,
        )
    }

    fn chunked(conn: &Arc<Conn>, limit: u64, raw: &[u8]) -> Body {
        let decoder = ChunkedDecoder::new(limit, 1024);
        Body::chunked(conn.clone(), decoder, raw.to_vec(), TIMEOUT)
    }

    /// Read the whole body `room` bytes at a time.
    fn read_all(body: &mut Body, room: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0; room];
        loop {
            match body.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn chunked_body_read_in_any_pieces_hands_back_what_follows() {
        let wire = b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n";
        for cut in 0..wire.len() {
            for room in [1, 3, 64] {
                let (conn, mut peer) = pair();
                // The bytes up to `cut` came with the head; the rest arrives on the socket.
                let mut body = chunked(&conn, 0, &wire[..cut]);
                peer.write_all(&wire[cut..]).unwrap();
                assert_eq!(read_all(&mut body, room).unwrap(), b"hello world");
                assert_eq!(body.remaining(), Some(0));
                let next = body.rest().drain(&conn, 1 << 20, TIMEOUT);
                // What was read past the body is handed back; the rest is still in the socket.
                let mut all = next.expect("the connection can carry the next request");
                peer.shutdown(std::net::Shutdown::Write).unwrap();
                let mut buf = [0; 64];
                loop {
                    match conn.read_timeout(&mut buf, TIMEOUT).unwrap() {
                        0 => break,
                        n => all.extend_from_slice(&buf[..n]),
                    }
                }
                assert_eq!(all, b"GET / HTTP/1.1\r\n", "cut {cut} room {room}");
            }
        }
    }

    #[test]
    fn an_unread_chunked_body_is_drained_to_its_end() {
        let (conn, mut peer) = pair();
        let mut body = chunked(&conn, 0, b"3\r\nabc\r\n");
        let mut two = [0; 2];
        assert_eq!(body.read(&mut two).unwrap(), 2);
        peer.write_all(b"4\r\ndefg\r\n0\r\n\r\nNEXT").unwrap();
        let rest = body.rest();
        assert!(rest.waits());
        assert_eq!(
            rest.drain(&conn, 100, TIMEOUT).as_deref(),
            Some(&b"NEXT"[..])
        );
        // Past the drain limit, or with bad framing, the connection is not reused.
        let (conn, mut peer) = pair();
        let mut body = chunked(&conn, 0, b"");
        peer.write_all(b"a\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert!(body.rest().drain(&conn, 5, TIMEOUT).is_none());
        let (conn, mut peer) = pair();
        let mut body = chunked(&conn, 0, b"");
        peer.write_all(b"zz\r\n").unwrap();
        assert!(body.rest().drain(&conn, 100, TIMEOUT).is_none());
    }

    #[test]
    fn over_the_limit_is_answered_413_once_and_breaks_the_body() {
        let (conn, mut peer) = pair();
        let mut body = chunked(&conn, 8, b"5\r\nhello\r\n");
        peer.write_all(b"5\r\nworld\r\n0\r\n\r\n").unwrap();
        let e = read_all(&mut body, 64).unwrap_err();
        let refused = e.get_ref().unwrap().downcast_ref::<Refused>().unwrap();
        assert_eq!(refused.answered, Some(413));
        assert_eq!(body.answered(), Some(413));
        assert!(body.read(&mut [0; 8]).is_err(), "a later read fails too");
        assert!(matches!(body.rest(), Unread::Broken));
        assert!(!conn.claim(), "the response is the server's 413");
        let mut answer = Vec::new();
        peer.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 413 Content Too Large\r\nDate: "),
            "{answer}"
        );
        assert!(answer.contains("Connection: close\r\n"));
    }

    #[test]
    fn bad_framing_after_the_head_went_out_is_not_answered() {
        let (conn, mut peer) = pair();
        assert!(conn.claim(), "the app's response started");
        let mut body = chunked(&conn, 0, b"");
        peer.write_all(b"3\r\nabcXY").unwrap();
        let e = read_all(&mut body, 64).unwrap_err();
        let refused = e.get_ref().unwrap().downcast_ref::<Refused>().unwrap();
        assert_eq!(refused.answered, None);
        assert!(matches!(refused.error, HttpError::BadRequest(_)));
        assert!(matches!(body.rest(), Unread::Broken));
        peer.set_nonblocking(true).unwrap();
        assert!(peer.read(&mut [0; 16]).is_err(), "nothing was written");
    }

    #[test]
    fn continue_goes_out_at_the_first_read_that_waits() {
        let (conn, mut peer) = pair();
        conn.owe_continue(true);
        let mut body = Body::new(conn.clone(), 3, 3, TIMEOUT);
        peer.write_all(b"abc").unwrap();
        assert_eq!(read_all(&mut body, 8).unwrap(), b"abc");
        assert!(!conn.continue_owed());
        let mut got = [0; CONTINUE.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, CONTINUE);
        assert!(matches!(body.rest(), Unread::Length(0)));
    }

    #[test]
    fn no_continue_after_the_response_head_and_no_reuse_without_the_body() {
        let (conn, mut peer) = pair();
        conn.owe_continue(true);
        assert!(conn.claim());
        let mut body = chunked(&conn, 0, b"");
        peer.write_all(b"1\r\nx\r\n0\r\n\r\n").unwrap();
        let mut one = [0; 1];
        assert_eq!(body.read(&mut one).unwrap(), 1);
        assert!(conn.continue_owed(), "never sent: the head went first");
        assert!(matches!(body.rest(), Unread::Broken));
        peer.set_nonblocking(true).unwrap();
        assert!(
            peer.read(&mut [0; 32]).is_err(),
            "no 100 Continue after the head"
        );
        // A body the app never read while the client waits for 100: not drained, not reused.
        let (conn, _peer) = pair();
        conn.owe_continue(true);
        let mut body = Body::new(conn.clone(), 10, 10, TIMEOUT);
        assert!(matches!(body.rest(), Unread::Broken));
    }
}
