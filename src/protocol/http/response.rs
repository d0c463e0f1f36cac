//! The response side: how a body is framed for this request, and the head that says so.
//!
//! - 1xx, 204 and 304 never have a body, nor does the answer to `HEAD` (its headers are kept);
//! - an app's `Content-Length` frames the body; without one the body is chunked for HTTP/1.1 and
//!   ends at the close for HTTP/1.0;
//! - hop-by-hop fields an app sets (`Connection`, `Keep-Alive`, `Transfer-Encoding`, ...) are
//!   dropped (PEP 3333 forbids them): framing and persistence are the server's to decide;
//! - the status line always says `HTTP/1.1` (RFC 9110 §2.5: the server's version), and
//!   `Connection: close` / `keep-alive` is added where the client's default differs.

use super::head::{parse_content_length, Version};
use crate::protocol::response::{push_header, push_status_line};

/// The interim answer to `Expect: 100-continue`, sent when the app first reads the body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The last chunk of a chunked body, with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// What ends each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// How a response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304): whatever the app yields is dropped.
    NoBody,
    /// Exactly this many bytes (the app's `Content-Length`).
    Length(u64),
    /// Chunked: each write is a chunk, then [`LAST_CHUNK`].
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length).
    Close,
}

/// The framing of one response and whether the connection stays open after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// How the body is delimited on the wire.
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// What the request says about its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// The request's version, which the status line answers with.
    pub version: Version,
    /// The request is `HEAD`: the response head goes out, its body never does.
    pub is_head: bool,
    /// The request allows the connection to stay open.
    pub keep_alive: bool,
}

/// Decide the framing for a response with `status` and the app's `Content-Length`, if any.
pub fn plan(ex: Exchange, status: u16, content_length: Option<u64>) -> Plan {
    let no_body = ex.is_head || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = match (no_body, content_length, ex.version) {
        (true, _, _) => Framing::NoBody,
        (false, Some(n), _) => Framing::Length(n),
        (false, None, Version::Http11) => Framing::Chunked,
        (false, None, Version::Http10) => Framing::Close,
    };
    Plan {
        framing,
        keep_alive: ex.keep_alive && framing != Framing::Close,
    }
}

/// Hop-by-hop fields: the server's, never the app's.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"proxy-connection",
        b"te",
        b"upgrade",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The app's `Content-Length`, when it set a valid one. An invalid one is treated as absent (the
/// body is then chunked or close-delimited, never framed by a number the app got wrong).
pub fn app_content_length<'a>(
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Option<u64> {
    headers
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
        .and_then(|(_, v)| parse_content_length(v.trim_ascii()).ok())
}

/// Append a response head: status line, the app's fields (already checked, hop-by-hop ones
/// dropped; a `Content-Length` only when it frames the body or answers HEAD), the framing and
/// persistence fields, `extra` (`--add-header`), the blank line.
pub fn push_head<'a>(
    out: &mut Vec<u8>,
    ex: Exchange,
    plan: Plan,
    status: &[u8],
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    extra: &[(Vec<u8>, Vec<u8>)],
) {
    push_status_line(out, b"HTTP/1.1", status);
    let keep_length = matches!(plan.framing, Framing::Length(_)) || ex.is_head;
    for (name, value) in headers {
        if is_hop_by_hop(name) || (!keep_length && name.eq_ignore_ascii_case(b"content-length")) {
            continue;
        }
        push_header(out, name, value);
    }
    if plan.framing == Framing::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    match (ex.version, plan.keep_alive) {
        (Version::Http11, false) => out.extend_from_slice(b"Connection: close\r\n"),
        (Version::Http10, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        _ => {}
    }
    for (name, value) in extra {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Append a chunk's size line for `len` data bytes (which the caller sends next, then
/// [`CHUNK_END`]). An empty write makes no chunk: a zero size would end the body.
pub fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Whether an app's `Connection` field value asks for the connection to be closed after this
/// response (the `close` token, RFC 9112 §9.6).
pub fn asks_close(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// The whole answer to a request the server refuses itself: the status, a short text body, and
/// `Connection: close`.
pub fn error_response(status: &str) -> Vec<u8> {
    error_page(status, &format!("{status}\n"), None)
}

/// [`error_response`] with `body` and, when the caller has a clock, a `Date` field (an
/// IMF-fixdate: this layer reads no clock).
pub fn error_page(status: &str, body: &str, date: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    push_status_line(&mut out, b"HTTP/1.1", status.as_bytes());
    if let Some(date) = date {
        push_header(&mut out, b"Date", date);
    }
    push_header(&mut out, b"Content-Type", b"text/plain; charset=utf-8");
    push_header(
        &mut out,
        b"Content-Length",
        body.len().to_string().as_bytes(),
    );
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_close_token() {
        assert!(asks_close(b"close"));
        assert!(asks_close(b"Keep-Alive, CLOSE"));
        assert!(asks_close(b" upgrade ,close "));
        assert!(!asks_close(b"keep-alive"));
        assert!(!asks_close(b"closed"));
        assert!(!asks_close(b""));
    }

    #[test]
    fn error_pages_close_and_carry_the_date_given() {
        let page = error_page(
            "413 Content Too Large",
            "too big\n",
            Some(b"Sat, 28 Nov 2026 07:00:00 GMT"),
        );
        let text = String::from_utf8(page).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 413 Content Too Large\r\nDate: Sat, 28 Nov 2026 07:00:00 GMT\r\n"
        ));
        assert!(
            text.ends_with("Content-Length: 8\r\nConnection: close\r\n\r\ntoo big\n"),
            "{text}"
        );
        assert!(!String::from_utf8(error_response("400 Bad Request"))
            .unwrap()
            .contains("Date"));
    }
}
