//! The response head as it goes back to nginx: `PROTO STATUS\r\n`, `Name: value\r\n`..., `\r\n`.
//!
//! A uwsgi response has no framing of its own: raw HTTP, ended by closing the connection. The checks
//! here are where rwsgi refuses what uWSGI passed through: a CR, LF or NUL in a status or header is
//! response splitting, and a malformed status line makes nginx answer 502.

use std::fmt;

/// Why a status or header cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The status is not three digits followed by nothing or a space and a reason.
    BadStatus(String),
    /// A header name is empty or holds a character outside RFC 9110's token set.
    BadHeaderName(String),
    /// A header value holds CR, LF or NUL.
    BadHeaderValue {
        /// The name of the header whose value is refused.
        name: String,
    },
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::BadStatus(s) => {
                write!(
                    f,
                    "invalid status {s:?}: expected three digits and a reason, like '200 OK'"
                )
            }
            HeadError::BadHeaderName(n) => write!(f, "invalid header name {n:?}"),
            HeadError::BadHeaderValue { name } => {
                write!(
                    f,
                    "header {name:?} has a CR, LF or NUL in its value (response splitting refused)"
                )
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// Check a status line's text and return its numeric code. A bare code (`"404"`) is allowed; the
/// encoder adds the standard reason.
pub fn check_status(status: &[u8]) -> Result<u16, HeadError> {
    let bad = || HeadError::BadStatus(String::from_utf8_lossy(status).into_owned());
    let code = status
        .get(..3)
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .ok_or_else(bad)?;
    match status.get(3) {
        None | Some(b' ') => {}
        Some(_) => return Err(bad()),
    }
    if status.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(bad());
    }
    Ok(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

/// RFC 9110 token characters, the only ones a header name may hold.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Check one header.
pub fn check_header(name: &[u8], value: &[u8]) -> Result<(), HeadError> {
    if name.is_empty() || !name.iter().copied().all(is_token) {
        return Err(HeadError::BadHeaderName(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(HeadError::BadHeaderValue {
            name: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(())
}

/// The standard reason phrase for a code.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The protocol for the status line: the request's `SERVER_PROTOCOL` when it is an HTTP version,
/// else `HTTP/1.0` (as uWSGI does when the var is missing). Only visible ASCII is echoed: the var
/// comes from the request, and a CR or LF in it would split the response.
pub fn status_protocol(server_protocol: Option<&[u8]>) -> &[u8] {
    match server_protocol {
        Some(p)
            if p.starts_with(b"HTTP/") && p.len() <= 16 && p.iter().all(u8::is_ascii_graphic) =>
        {
            p
        }
        _ => b"HTTP/1.0",
    }
}

/// Append a status line for an already checked `status`.
pub fn push_status_line(out: &mut Vec<u8>, protocol: &[u8], status: &[u8]) {
    out.extend_from_slice(protocol);
    out.push(b' ');
    out.extend_from_slice(status);
    if status.len() == 3 {
        let code = status
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d.wrapping_sub(b'0')));
        out.push(b' ');
        out.extend_from_slice(reason(code).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Append one already checked header line.
pub fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A complete response the server makes itself (errors), with a plain-text body.
pub fn simple_response(protocol: &[u8], status: &str, body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    push_status_line(&mut out, protocol, status.as_bytes());
    push_header(&mut out, b"Content-Type", b"text/plain; charset=utf-8");
    push_header(
        &mut out,
        b"Content-Length",
        body.len().to_string().as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(check_status(b"200 OK"), Ok(200));
        assert_eq!(check_status(b"404"), Ok(404));
        assert_eq!(check_status(b"599 Whatever it is"), Ok(599));
        assert!(check_status(b"abc").is_err());
        assert!(check_status(b"20").is_err());
        assert!(check_status(b"2000 OK").is_err());
        assert!(check_status(b"200 OK\r\nX: y").is_err());
    }

    #[test]
    fn headers() {
        assert!(check_header(b"Content-Type", b"text/plain").is_ok());
        assert!(check_header(b"X-Empty", b"").is_ok());
        assert!(check_header(b"X-Bad", b"a\r\nInjected: yes").is_err());
        assert!(check_header(b"X-Nul", b"a\0").is_err());
        assert!(check_header(b"Bad Name", b"v").is_err());
        assert!(check_header(b"", b"v").is_err());
        assert!(check_header(b"X:Y", b"v").is_err());
    }

    #[test]
    fn status_line_gets_a_reason_when_bare() {
        let mut out = Vec::new();
        push_status_line(&mut out, b"HTTP/1.1", b"404");
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n");
        out.clear();
        push_status_line(&mut out, status_protocol(None), b"200 OK");
        assert_eq!(out, b"HTTP/1.0 200 OK\r\n");
    }

    #[test]
    fn simple_response_is_framed() {
        let r = simple_response(b"HTTP/1.1", "500 Internal Server Error", "oops\n");
        assert_eq!(
            r,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 5\r\n\r\noops\n"
        );
    }
}
