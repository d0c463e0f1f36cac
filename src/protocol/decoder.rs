//! Turn the bytes at the start of a connection into a packet: a request head, a ping, or an error.
//!
//! [`decode`] is pure: it looks at a buffer and answers "need more" (`Ok(None)`), a packet, or an
//! error, checking the header's size against the limits before asking for the vars block.
//! [`RequestReader`] is the connection's read state machine around it, with no socket: the server
//! reads into [`RequestReader::spare`], and the fuzzers feed it arbitrary chunks.

use super::error::DecodeError;
use super::header::{
    looks_like_http, parse_header, HEADER_LEN, MODIFIER_PING, MODIFIER_WSGI, MODIFIER_WSGI_STRIP,
};
use super::request::{parse_content_length, RequestHead};
use super::vars;

/// Largest vars block the protocol can express, and the default `--buffer-size`: nginx refuses to
/// send more, and a smaller default is uWSGI's most reported 502 (`invalid request block size`).
pub const MAX_BUFFER_SIZE: usize = 65535;

/// Body bytes the event loop reads before dispatch; a larger body is read by `wsgi.input` on
/// demand, so a slow small upload never holds a Python thread.
pub const DEFAULT_PREREAD: usize = 64 * 1024;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest vars block accepted (inclusive), `--buffer-size`.
    pub buffer_size: usize,
    /// Largest `CONTENT_LENGTH` accepted, `--limit-post`; 0 means no limit.
    pub limit_post: u64,
    /// Body bytes to collect before a request counts as ready.
    pub preread: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            buffer_size: MAX_BUFFER_SIZE,
            limit_post: 0,
            preread: DEFAULT_PREREAD,
        }
    }
}

/// A whole packet head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A WSGI request.
    Request(RequestHead),
    /// A ping (modifier1 100): answered with PONG.
    Ping,
}

/// The PONG answer to a ping.
pub const PONG: [u8; 4] = [MODIFIER_PING, 0, 0, 1];

/// Decode the packet at the start of `buf`. `Ok(None)` means more bytes are needed.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<Packet>, DecodeError> {
    let Ok((_, header)) = parse_header(buf) else {
        return Ok(None);
    };
    let size = usize::from(header.datasize);
    if looks_like_http(buf) {
        return Err(DecodeError::HttpOnUwsgiSocket {
            size,
            max: limits.buffer_size,
        });
    }
    match header.modifier1 {
        MODIFIER_PING => return Ok(Some(Packet::Ping)),
        MODIFIER_WSGI | MODIFIER_WSGI_STRIP => {}
        modifier1 => {
            return Err(DecodeError::UnknownModifier {
                modifier1,
                modifier2: header.modifier2,
            })
        }
    }
    if size > limits.buffer_size {
        return Err(DecodeError::BlockTooLarge {
            size,
            max: limits.buffer_size,
        });
    }
    if size == 0 {
        return Err(DecodeError::EmptyRequest);
    }
    let Some(block) = buf.get(HEADER_LEN..HEADER_LEN + size) else {
        return Ok(None);
    };
    // `CONTENT_LENGTH` sent twice (an nginx config that adds its own `uwsgi_param` beside
    // `uwsgi_params`) must agree: differing lengths are ambiguous framing and refused (RFC 9110
    // §8.6).
    let mut declared: Option<&[u8]> = None;
    let var_count = vars::validate_with(block, |key, value| {
        if key == b"CONTENT_LENGTH" {
            if declared.is_some_and(|first| first != value) {
                return Err(DecodeError::BadContentLength);
            }
            declared = Some(value);
        }
        Ok(())
    })?;
    let content_length = declared.map_or(Ok(0), parse_content_length)?;
    if limits.limit_post > 0 && content_length > limits.limit_post {
        return Err(DecodeError::BodyTooLarge {
            length: content_length,
            max: limits.limit_post,
        });
    }
    Ok(Some(Packet::Request(RequestHead {
        modifier1: header.modifier1,
        modifier2: header.modifier2,
        vars_len: size,
        var_count,
        content_length,
    })))
}

/// What [`RequestReader::poll`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Read more bytes and poll again.
    NeedMore,
    /// The packet is complete (for a request: the head, and the body up to the preread limit).
    Ready(Packet),
}

/// Something that reads bytes (a socket). Implementations may receive straight into the vector's
/// spare capacity, without zeroing it first (the server's sockets do, in `crate::sys`).
pub trait Recv {
    /// Receive at most `max` bytes onto the end of `buf`; how many arrived (0 at end of stream).
    fn recv_append(&self, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize>;
}

/// The read side of one connection: a growing buffer and the decode of what it holds.
#[derive(Debug)]
pub struct RequestReader {
    /// Holds `filled` bytes that arrived, then room offered to reads (initialised, not yet filled).
    buf: Vec<u8>,
    filled: usize,
    limits: Limits,
    head: Option<RequestHead>,
}

/// Bytes to offer a read when the buffer holds no hint of how much is coming.
const READ_CHUNK: usize = 4096;

impl RequestReader {
    /// An empty reader.
    pub fn new(limits: Limits) -> Self {
        RequestReader {
            buf: Vec::new(),
            filled: 0,
            limits,
            head: None,
        }
    }

    /// Space to read into: at least `READ_CHUNK` bytes, or what the decoded sizes say is missing.
    /// Call [`RequestReader::commit`] with the number of bytes written. The safe, zeroed form of
    /// [`RequestReader::read_from`] for callers without a [`Recv`] source (the property tests, the
    /// fuzzers, the benches); the server reads with `read_from`.
    pub fn spare(&mut self) -> &mut [u8] {
        let want = self.wanted().max(READ_CHUNK);
        // The buffer only grows: room offered before and not filled is offered again without
        // being zeroed again.
        if self.buf.len() < self.filled + want {
            self.buf.resize(self.filled + want, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Read once from `source` into room after what has arrived, at least `READ_CHUNK` bytes or
    /// what the decoded sizes say is missing. Unlike [`RequestReader::spare`], the room is not
    /// zeroed first (4 KiB of `memset` per connection otherwise).
    pub fn read_from<R: Recv + ?Sized>(&mut self, source: &R) -> std::io::Result<usize> {
        let want = self.wanted().max(READ_CHUNK);
        self.buf.truncate(self.filled);
        let n = source.recv_append(&mut self.buf, want)?;
        self.filled = self.buf.len();
        Ok(n)
    }

    /// Keep `n` of the bytes just written into [`RequestReader::spare`].
    pub fn commit(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Append bytes (for tests and fuzzers, which have no socket).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.truncate(self.filled);
        self.buf.extend_from_slice(bytes);
        self.filled = self.buf.len();
    }

    /// Whether the head (header and vars block) is complete; what may still be missing is body.
    pub fn head_complete(&self) -> bool {
        self.head.is_some()
    }

    /// Everything read so far: the packet and any body bytes that came with it.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Give up the buffer (for the job that carries the request to a Python thread).
    pub fn into_buffer(mut self) -> Vec<u8> {
        self.buf.truncate(self.filled);
        self.buf
    }

    /// Decode what has arrived.
    pub fn poll(&mut self) -> Result<Progress, DecodeError> {
        let head = match &self.head {
            Some(head) => head.clone(),
            None => match decode(self.buffer(), &self.limits)? {
                None => return Ok(Progress::NeedMore),
                Some(Packet::Ping) => return Ok(Progress::Ready(Packet::Ping)),
                Some(Packet::Request(head)) => {
                    self.head = Some(head.clone());
                    head
                }
            },
        };
        if self.body_missing(&head) > 0 {
            return Ok(Progress::NeedMore);
        }
        Ok(Progress::Ready(Packet::Request(head)))
    }

    /// The peer closed its side: the error for a packet cut short, or `None` if nothing arrived.
    pub fn eof(&self) -> Option<DecodeError> {
        if self.filled == 0 {
            return None;
        }
        let need = match &self.head {
            Some(head) => head.body_start() + self.preread_target(head),
            None => match parse_header(self.buffer()) {
                Ok((_, h)) => HEADER_LEN + usize::from(h.datasize),
                Err(_) => HEADER_LEN,
            },
        };
        Some(DecodeError::Truncated {
            have: self.filled,
            need,
        })
    }

    fn preread_target(&self, head: &RequestHead) -> usize {
        usize::try_from(head.content_length)
            .map_or(self.limits.preread, |cl| cl.min(self.limits.preread))
    }

    fn body_missing(&self, head: &RequestHead) -> usize {
        let have = self.filled.saturating_sub(head.body_start());
        self.preread_target(head).saturating_sub(have)
    }

    fn wanted(&self) -> usize {
        match &self.head {
            Some(head) => self.body_missing(head),
            None => match parse_header(self.buffer()) {
                Ok((_, h)) => (HEADER_LEN + usize::from(h.datasize)).saturating_sub(self.filled),
                Err(_) => 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode::encode_packet;

    fn request(pairs: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
        let mut p = encode_packet(MODIFIER_WSGI, 0, pairs).unwrap();
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn need_more_until_the_block_is_whole() {
        let p = request(&[(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/")], b"");
        for cut in 0..p.len() {
            assert_eq!(
                decode(&p[..cut], &Limits::default()),
                Ok(None),
                "cut at {cut}"
            );
        }
        let Some(Packet::Request(head)) = decode(&p, &Limits::default()).unwrap() else {
            panic!("expected a request");
        };
        assert_eq!(head.var_count, 2);
        assert_eq!(head.body_start(), p.len());
    }

    #[test]
    fn oversized_block_is_refused_from_the_header_alone() {
        let limits = Limits {
            buffer_size: 4096,
            ..Limits::default()
        };
        let err = decode(&[0, 0x01, 0x10, 0], &limits).unwrap_err();
        assert_eq!(
            err,
            DecodeError::BlockTooLarge {
                size: 4097,
                max: 4096
            }
        );
        assert!(err
            .to_string()
            .starts_with("invalid request block size: 4097 (max 4096)"));
        assert_eq!(decode(&[0, 0x00, 0x10, 0], &limits), Ok(None));
    }

    #[test]
    fn http_is_recognised_whatever_the_limit() {
        let err = decode(b"GET / HTTP/1.1\r\n", &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::HttpOnUwsgiSocket {
                size: 21573,
                max: MAX_BUFFER_SIZE
            }
        );
        assert!(err.to_string().contains("looks like HTTP"));
    }

    #[test]
    fn ping_and_unknown_modifiers() {
        assert_eq!(
            decode(&[100, 0, 0, 0], &Limits::default()),
            Ok(Some(Packet::Ping))
        );
        assert_eq!(
            decode(&[5, 0, 0, 0], &Limits::default()),
            Err(DecodeError::UnknownModifier {
                modifier1: 5,
                modifier2: 0
            })
        );
        assert_eq!(
            decode(&[0, 0, 0, 0], &Limits::default()),
            Err(DecodeError::EmptyRequest)
        );
    }

    #[test]
    fn content_length_is_checked() {
        let p = request(&[(b"CONTENT_LENGTH", b"12x")], b"");
        assert_eq!(
            decode(&p, &Limits::default()),
            Err(DecodeError::BadContentLength)
        );
        let p = request(&[(b"CONTENT_LENGTH", b"100")], b"");
        let limits = Limits {
            limit_post: 99,
            ..Limits::default()
        };
        assert_eq!(
            decode(&p, &limits),
            Err(DecodeError::BodyTooLarge {
                length: 100,
                max: 99
            })
        );
    }

    #[test]
    fn repeated_content_length_must_agree() {
        let same = request(
            &[(b"CONTENT_LENGTH", b"5"), (b"CONTENT_LENGTH", b"5")],
            b"hello",
        );
        let Ok(Some(Packet::Request(head))) = decode(&same, &Limits::default()) else {
            panic!("identical lengths are one length");
        };
        assert_eq!(head.content_length, 5);
        let differ = request(
            &[(b"CONTENT_LENGTH", b"3"), (b"CONTENT_LENGTH", b"5")],
            b"hello",
        );
        assert_eq!(
            decode(&differ, &Limits::default()),
            Err(DecodeError::BadContentLength)
        );
    }

    #[test]
    fn reader_waits_for_the_preread_body() {
        let p = request(&[(b"CONTENT_LENGTH", b"5")], b"hello");
        let mut r = RequestReader::new(Limits::default());
        for (i, b) in p.iter().enumerate() {
            assert_eq!(r.poll(), Ok(Progress::NeedMore), "byte {i}");
            r.feed(&[*b]);
        }
        assert!(matches!(r.poll(), Ok(Progress::Ready(Packet::Request(_)))));
        assert_eq!(r.into_buffer(), p);
    }

    #[test]
    fn reader_dispatches_large_bodies_without_them() {
        let limits = Limits {
            preread: 8,
            ..Limits::default()
        };
        let p = request(&[(b"CONTENT_LENGTH", b"1000")], b"12345678");
        let mut r = RequestReader::new(limits);
        r.feed(&p[..p.len() - 1]);
        assert_eq!(r.poll(), Ok(Progress::NeedMore));
        r.feed(&p[p.len() - 1..]);
        assert!(matches!(r.poll(), Ok(Progress::Ready(Packet::Request(_)))));
    }

    /// Hands out `data` at most `chunk` bytes per call, as a socket might.
    struct Trickle {
        data: Vec<u8>,
        at: std::cell::Cell<usize>,
        chunk: usize,
    }

    impl Recv for Trickle {
        fn recv_append(&self, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
            let at = self.at.get();
            let n = self.chunk.min(max).min(self.data.len() - at);
            buf.extend_from_slice(&self.data[at..at + n]);
            self.at.set(at + n);
            Ok(n)
        }
    }

    #[test]
    fn read_from_keeps_only_what_arrived() {
        let p = request(&[(b"CONTENT_LENGTH", b"5"), (b"A", b"b")], b"hello");
        for chunk in [1, 3, 7, 4096] {
            let source = Trickle {
                data: p.clone(),
                at: std::cell::Cell::new(0),
                chunk,
            };
            let mut r = RequestReader::new(Limits::default());
            let ready = loop {
                let n = r.read_from(&source).unwrap();
                assert!(
                    n > 0,
                    "chunk {chunk}: ran dry before the packet was complete"
                );
                assert_eq!(r.buffer(), &p[..source.at.get()]);
                if let Progress::Ready(packet) = r.poll().unwrap() {
                    break packet;
                }
            };
            let Packet::Request(head) = ready else {
                panic!("chunk {chunk}: not a request");
            };
            assert_eq!(head.content_length, 5);
            assert_eq!(&r.into_buffer()[head.body_start()..], b"hello");
        }
    }

    #[test]
    fn spare_and_commit_keep_only_what_arrived() {
        let p = request(&[(b"A", b"b")], b"");
        let mut r = RequestReader::new(Limits::default());
        let spare = r.spare();
        assert!(spare.len() >= p.len());
        spare[..3].copy_from_slice(&p[..3]);
        r.commit(3);
        assert_eq!(r.buffer(), &p[..3]);
        assert_eq!(r.eof(), Some(DecodeError::Truncated { have: 3, need: 4 }));
        let spare = r.spare();
        spare[..p.len() - 3].copy_from_slice(&p[3..]);
        r.commit(p.len() - 3);
        assert!(matches!(r.poll(), Ok(Progress::Ready(Packet::Request(_)))));
    }
}
