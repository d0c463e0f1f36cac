//! Why a byte stream is not a request we can serve: one enum for the whole protocol layer.

use std::fmt;

/// A decoding failure. Each variant carries what the log line needs; the server logs it once and
/// decides, from [`DecodeError::reply`], whether the peer gets an answer or only a close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The header announces a vars block larger than `--buffer-size`.
    BlockTooLarge {
        /// The announced size.
        size: usize,
        /// `--buffer-size`.
        max: usize,
    },
    /// The first bytes are an HTTP request line: someone spoke HTTP to the uwsgi socket.
    HttpOnUwsgiSocket {
        /// The size the HTTP bytes read as, taken for a uwsgi header.
        size: usize,
        /// `--buffer-size`.
        max: usize,
    },
    /// A header with `datasize` 0 on a request modifier.
    EmptyRequest,
    /// A key length of zero inside the vars block.
    NullKey {
        /// Where the key length sits in the vars block.
        offset: usize,
    },
    /// A key or value length runs past the end of the vars block.
    Overrun {
        /// Where the offending length prefix sits in the vars block.
        offset: usize,
    },
    /// One or two bytes are left at the end of the block: too few for another length prefix.
    TrailingBytes {
        /// Where the left-over bytes start in the vars block.
        offset: usize,
    },
    /// `modifier1` names a plugin rwsgi does not implement.
    UnknownModifier {
        /// The header's `modifier1`.
        modifier1: u8,
        /// The header's `modifier2`.
        modifier2: u8,
    },
    /// `CONTENT_LENGTH` is neither empty nor a decimal number that fits in 64 bits.
    BadContentLength,
    /// `CONTENT_LENGTH` exceeds `--limit-post`.
    BodyTooLarge {
        /// The announced `CONTENT_LENGTH`.
        length: u64,
        /// `--limit-post`.
        max: u64,
    },
    /// The peer closed the stream before a whole packet arrived.
    Truncated {
        /// Bytes that arrived.
        have: usize,
        /// Bytes the packet needed (header, vars block and preread body).
        need: usize,
    },
}

/// What the peer gets after a [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Close without a byte: the peer does not speak HTTP back (or cannot be answered).
    Close,
    /// An HTTP error response with this status line, then close.
    Status(&'static str),
}

impl DecodeError {
    /// The answer the server owes the peer. nginx turns a bare close into a 502 with a confusing log,
    /// so anything nginx could have sent gets a real status; garbage that is not a uwsgi request is
    /// closed.
    pub fn reply(&self) -> Reply {
        match self {
            DecodeError::BlockTooLarge { .. } => {
                Reply::Status("431 Request Header Fields Too Large")
            }
            DecodeError::HttpOnUwsgiSocket { .. } => Reply::Status("400 Bad Request"),
            DecodeError::BadContentLength => Reply::Status("400 Bad Request"),
            DecodeError::BodyTooLarge { .. } => Reply::Status("413 Content Too Large"),
            DecodeError::EmptyRequest
            | DecodeError::NullKey { .. }
            | DecodeError::Overrun { .. }
            | DecodeError::TrailingBytes { .. }
            | DecodeError::UnknownModifier { .. }
            | DecodeError::Truncated { .. } => Reply::Close,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BlockTooLarge { size, max } => write!(
                f,
                "invalid request block size: {size} (max {max})...skip \
                 (raise --buffer-size up to 65535, or send smaller headers/cookies)"
            ),
            DecodeError::HttpOnUwsgiSocket { size, max } => write!(
                f,
                "invalid request block size: {size} (max {max})...skip \
                 (this looks like HTTP sent to a uwsgi socket: use uwsgi_pass in nginx, not proxy_pass)"
            ),
            DecodeError::EmptyRequest => write!(f, "empty request (datasize 0)...skip"),
            DecodeError::NullKey { offset } => {
                write!(f, "uwsgi key cannot be null (at byte {offset} of the vars block)...skip")
            }
            DecodeError::Overrun { offset } => write!(
                f,
                "invalid uwsgi request: a length at byte {offset} runs past the vars block...skip"
            ),
            DecodeError::TrailingBytes { offset } => write!(
                f,
                "invalid uwsgi request: stray bytes at byte {offset} of the vars block...skip"
            ),
            DecodeError::UnknownModifier { modifier1, modifier2 } => write!(
                f,
                "-- unavailable modifier requested: {modifier1} -- (modifier2 {modifier2}; \
                 rwsgi serves 0 (WSGI), 30 (WSGI, strip SCRIPT_NAME) and 100 (ping))"
            ),
            DecodeError::BadContentLength => write!(f, "invalid CONTENT_LENGTH...skip"),
            DecodeError::BodyTooLarge { length, max } => {
                write!(f, "invalid (too big) CONTENT_LENGTH: {length} (limit-post {max})...skip")
            }
            DecodeError::Truncated { have, need } => write!(
                f,
                "peer closed the connection after {have} of {need} bytes of the request (head and first body bytes)"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}
