//! The response writer: the head the Python layer encoded, the framing the front protocol needs,
//! and the writes to the connection.
//!
//! A uwsgi response has no framing of its own (raw HTTP, ended by closing the connection); an
//! HTTP/1.1 one to a client is framed by `Content-Length` or chunked. The writer adds what the
//! framing needs, so the Python layer writes the same way for both.

use super::Conn;
use crate::protocol::http::response::Framing as HttpFraming;
use crate::protocol::http::response::{
    asks_close, error_page, is_hop_by_hop, plan, Exchange, Plan, CHUNK_END, LAST_CHUNK,
};
use crate::protocol::http::Version;
use crate::protocol::response::simple_response;
pub use crate::protocol::response::{
    check_header, check_status, push_header, push_status_line, status_protocol,
};
use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// An IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub type HttpDate = [u8; 29];

thread_local! {
    /// This thread's last `Date` value and the second it is for.
    static DATE: Cell<(u64, HttpDate)> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// The current time as an HTTP `Date` value (RFC 9110 §6.6.1), formatted at most once a second
/// per thread.
pub fn http_date() -> HttpDate {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let (second, date) = cached.get();
        if second == now {
            return date;
        }
        let mut date = [b' '; 29];
        let text = crate::statics::httpdate::format(now);
        let n = text.len().min(date.len());
        date[..n].copy_from_slice(&text.as_bytes()[..n]);
        cached.set((now, date));
        date
    })
}

/// What the app's response fields say that the server's framing needs to know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppFields {
    /// A `Content-Length` is among them.
    pub has_length: bool,
    /// A `Date` is among them (the server adds none then).
    pub has_date: bool,
    /// A `Connection: close`: the connection is closed after this response.
    pub close: bool,
}

impl AppFields {
    /// Note one field of the app's head (every field, before [`Response::keeps_header`]).
    pub fn see(&mut self, name: &[u8], value: &[u8]) {
        match name.len() {
            14 => self.has_length |= name.eq_ignore_ascii_case(b"content-length"),
            4 => self.has_date |= name.eq_ignore_ascii_case(b"date"),
            10 => self.close |= name.eq_ignore_ascii_case(b"connection") && asks_close(value),
            _ => {}
        }
    }
}

/// How a response is delimited on its connection.
#[derive(Debug, Clone)]
pub enum Framing {
    /// uwsgi: the head as the app made it and the body as is; closing the connection ends it.
    Close,
    /// HTTP/1.x straight to a client: the app's `Content-Length`, else chunked (1.1) or
    /// close-delimited (1.0); no body for `HEAD`, 1xx, 204, 304; the connection is kept when the
    /// request allows it and the framing shows where the body ends.
    Http {
        /// What the request says about its response.
        exchange: Exchange,
        /// `--add-header` fields appended to every head.
        add_headers: Arc<[(Vec<u8>, Vec<u8>)]>,
    },
}

/// A chunk-size line: up to 16 hex digits and CRLF.
pub type ChunkLine = [u8; 18];

/// Writes one response to the connection.
pub struct Response {
    conn: Arc<Conn>,
    framing: Framing,
    timeout: Duration,
    /// The HTTP framing, decided when the head goes out.
    plan: Option<Plan>,
}

impl Response {
    /// A writer for `conn` framed as `framing`.
    pub fn new(conn: Arc<Conn>, framing: Framing, timeout: Duration) -> Response {
        Response {
            conn,
            framing,
            timeout,
            plan: None,
        }
    }

    /// The wait bound for each write.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Take the right to send the response head; false if someone already has (the harakiri
    /// watchdog answered the request).
    pub fn claim(&self) -> bool {
        self.conn.claim()
    }

    /// The protocol of the status line for a request that said `requested` (its
    /// `SERVER_PROTOCOL`, already checked): HTTP answers with the server's version (RFC 9110
    /// section 2.5), uwsgi echoes the request's as nginx expects.
    pub fn status_protocol<'a>(&self, requested: &'a [u8]) -> &'a [u8] {
        match self.framing {
            Framing::Close => requested,
            Framing::Http { .. } => b"HTTP/1.1",
        }
    }

    /// Whether an app's header goes out: hop-by-hop fields are the server's under HTTP (PEP 3333).
    pub fn keeps_header(&self, name: &[u8]) -> bool {
        !(matches!(self.framing, Framing::Http { .. }) && is_hop_by_hop(name))
    }

    /// End an encoded head (status line and headers): decide the framing, add the fields it
    /// needs (and `Date`, unless the app set one), then the blank line. An app's
    /// `Connection: close` closes the connection after this response.
    pub fn end_head(&mut self, head: &mut Vec<u8>, status: u16, app: AppFields) {
        if let Framing::Http {
            exchange,
            add_headers,
        } = &self.framing
        {
            let mut p = plan(*exchange, status, app.has_length.then_some(0));
            // A client still waiting for `100 Continue` has not sent the body, and may never:
            // the connection is closed after this answer rather than drained.
            p.keep_alive &= !app.close && !self.conn.continue_owed();
            self.plan = Some(p);
            if !app.has_date {
                push_header(head, b"Date", &http_date());
            }
            if p.framing == HttpFraming::Chunked {
                push_header(head, b"Transfer-Encoding", b"chunked");
            }
            match (exchange.version, p.keep_alive) {
                (Version::Http11, false) => push_header(head, b"Connection", b"close"),
                (Version::Http10, true) => push_header(head, b"Connection", b"keep-alive"),
                _ => {}
            }
            for (name, value) in add_headers.iter() {
                push_header(head, name, value);
            }
        }
        head.extend_from_slice(b"\r\n");
    }

    /// The slices that put `head` (empty once sent) and `body` on the wire in this framing, and
    /// how many of them there are; `line` holds a chunk-size line.
    pub fn framed<'a>(
        &self,
        head: &'a [u8],
        body: &'a [u8],
        line: &'a mut ChunkLine,
    ) -> ([&'a [u8]; 4], usize) {
        match self.plan.map(|p| p.framing) {
            Some(HttpFraming::NoBody) => ([head, &[], &[], &[]], 1),
            Some(HttpFraming::Chunked) if !body.is_empty() => {
                let digits = format_hex(body.len(), line);
                ([head, digits, body, CHUNK_END], 4)
            }
            _ => ([head, body, &[], &[]], 2),
        }
    }

    /// What ends the body once the app is done (the last chunk), if anything.
    pub fn trailer(&self) -> Option<&'static [u8]> {
        let chunked = self.plan.is_some_and(|p| p.framing == HttpFraming::Chunked);
        chunked.then_some(LAST_CHUNK)
    }

    /// Whether the framing lets the client see where the response ended and the request allows
    /// the connection to stay open.
    pub fn keep_alive(&self) -> bool {
        self.plan.is_some_and(|p| p.keep_alive)
    }

    /// One write without waiting: the bytes the kernel took, 0 when its buffer is full.
    pub fn write_now(&self, bufs: &[&[u8]]) -> io::Result<usize> {
        self.conn.write_vectored_now(bufs)
    }

    /// Write every byte of `bufs`, each wait bounded by the timeout. Blocks: call it with the GIL
    /// released.
    pub fn write_all(&self, bufs: &[&[u8]]) -> io::Result<()> {
        self.conn.write_all_vectored(bufs, self.timeout)
    }

    /// Whether the body may go out with `sendfile` (as is: no chunk framing, and a body at all).
    pub fn can_sendfile(&self) -> bool {
        !self
            .plan
            .is_some_and(|p| matches!(p.framing, HttpFraming::Chunked | HttpFraming::NoBody))
    }

    /// Send `len` bytes of file `fd` from `offset` with `sendfile(2)`; the bytes sent, fewer only
    /// when the file ended early. Blocks.
    pub fn sendfile(&self, fd: i32, offset: u64, len: u64) -> io::Result<u64> {
        self.conn.sendfile(fd, offset, len, self.timeout)
    }

    /// An answer the server makes itself (an error page) for a request that said `protocol`.
    /// Under HTTP it says `Connection: close` (the connection is not kept after it) and has a
    /// `Date`.
    pub fn page(&self, protocol: &[u8], status: &str, body: &str) -> Vec<u8> {
        match self.framing {
            Framing::Close => simple_response(protocol, status, body),
            Framing::Http { .. } => error_page(status, body, Some(&http_date())),
        }
    }
}

/// `n` in hex and CRLF, into `line`.
fn format_hex(n: usize, line: &mut ChunkLine) -> &[u8] {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        *slot = b"0123456789abcdef"[nibble];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    &line[..digits + 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let date = http_date();
        let secs = crate::statics::httpdate::parse(&date).expect("parses back");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(secs) <= 1, "{secs} vs {now}");
        assert!(date.ends_with(b" GMT"));
    }

    #[test]
    fn app_fields_seen() {
        let mut f = AppFields::default();
        for (n, v) in [
            (&b"content-type"[..], &b"text/plain"[..]),
            (b"X-Date", b"1"),
        ] {
            f.see(n, v);
        }
        assert_eq!(f, AppFields::default());
        f.see(b"Connection", b"keep-alive");
        assert!(!f.close);
        f.see(b"DATE", b"Sat, 28 Nov 2026 07:00:00 GMT");
        f.see(b"Content-Length", b"3");
        f.see(b"connection", b"Close");
        assert!(f.has_date && f.has_length && f.close);
    }

    #[test]
    fn chunk_lines_are_hex() {
        let mut line = [0; 18];
        assert_eq!(format_hex(0, &mut line), b"0\r\n");
        assert_eq!(format_hex(12, &mut line), b"c\r\n");
        assert_eq!(format_hex(0x1000, &mut line), b"1000\r\n");
        assert_eq!(format_hex(usize::MAX, &mut line), b"ffffffffffffffff\r\n");
    }
}
