//! Why bytes on an HTTP connection are not a request we serve: one enum, each variant with the
//! status the peer gets. Every error closes the connection after the answer: once framing is in
//! doubt, nothing that follows on the stream can be trusted to start a request.

use std::fmt;

/// A request the server refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed or ambiguous: the reason names the rule (for the log line).
    BadRequest(&'static str),
    /// The request line alone is longer than `--buffer-size`.
    UriTooLong {
        /// `--buffer-size`.
        max: usize,
    },
    /// The head is longer than `--buffer-size`, or has more fields than the parser holds.
    HeadersTooLarge {
        /// `--buffer-size`.
        max: usize,
    },
    /// The body is larger than `--limit-post`.
    BodyTooLarge {
        /// The declared `Content-Length`, or for a chunked body the sum of the chunk sizes
        /// announced so far.
        length: u64,
        /// `--limit-post`.
        max: u64,
    },
    /// Not HTTP/1.0 or HTTP/1.1: the HTTP/2 preface, or another version.
    VersionNotSupported,
    /// An `Expect` other than `100-continue`.
    ExpectationFailed,
    /// The peer closed the connection in the middle of a request.
    Truncated,
}

impl HttpError {
    /// The status line the peer is answered with, or `None` when nobody is left to answer.
    pub fn status(&self) -> Option<&'static str> {
        Some(match self {
            HttpError::BadRequest(_) => "400 Bad Request",
            HttpError::UriTooLong { .. } => "414 URI Too Long",
            HttpError::HeadersTooLarge { .. } => "431 Request Header Fields Too Large",
            HttpError::BodyTooLarge { .. } => "413 Content Too Large",
            HttpError::VersionNotSupported => "505 HTTP Version Not Supported",
            HttpError::ExpectationFailed => "417 Expectation Failed",
            HttpError::Truncated => return None,
        })
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad HTTP request: {why}"),
            HttpError::UriTooLong { max } => {
                write!(
                    f,
                    "HTTP request line longer than {max} bytes (--buffer-size)"
                )
            }
            HttpError::HeadersTooLarge { max } => {
                write!(
                    f,
                    "HTTP request head larger than {max} bytes (--buffer-size) or too many fields"
                )
            }
            HttpError::BodyTooLarge { length, max } => {
                write!(
                    f,
                    "HTTP request body of {length} bytes over --limit-post {max}"
                )
            }
            HttpError::VersionNotSupported => {
                write!(f, "not HTTP/1.x (an HTTP/2 preface or another version)")
            }
            HttpError::ExpectationFailed => write!(f, "unsupported Expect (only 100-continue)"),
            HttpError::Truncated => write!(f, "peer closed the connection mid-request"),
        }
    }
}

impl std::error::Error for HttpError {}
