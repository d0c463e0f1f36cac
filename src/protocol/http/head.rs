//! The request head: `httparse` reads the syntax, this module makes RFC 9112's decisions on it.
//!
//! Refused with 400 (and a close): a body framed two ways (Content-Length with Transfer-Encoding),
//! Content-Lengths that differ or are not plain digits, a transfer coding other than one
//! `chunked`, Transfer-Encoding on HTTP/1.0, obs-fold, whitespace before a colon, a bare LF as a
//! line end, a missing or repeated `Host` on HTTP/1.1, a target that is neither origin, absolute
//! nor asterisk form. Those are the shapes request smuggling is made of: a front end and rwsgi
//! that disagree on where a request ends.

use super::error::HttpError;
use std::mem::MaybeUninit;

/// Most header fields one request may carry; one more is answered with 431. nginx and hyper use
/// 100 as well.
pub const MAX_FIELDS: usize = 100;

/// Default head limit when none is configured: uWSGI's `--buffer-size` default.
pub const DEFAULT_BUFFER_SIZE: usize = 4096;

/// The limits a head and its body are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head, request line included (`--buffer-size`): past it 414 when the request line
    /// has not ended yet, else 431. Checked before waiting for more bytes.
    pub buffer_size: usize,
    /// Largest body (`--limit-post`), declared or de-chunked: 413 past it; 0 is no limit.
    pub limit_post: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            buffer_size: DEFAULT_BUFFER_SIZE,
            limit_post: 0,
        }
    }
}

/// A byte range of the buffer the head was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The bytes of this span in `buf`, the buffer the head was parsed from.
    #[inline]
    pub fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start..self.end]
    }

    /// `part`, a subslice of `buf`, as a span.
    #[inline]
    fn within(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start,
            end: start + part.len(),
        }
    }

    /// Empty?
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// One header field, as spans of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Field {
    /// The field name, as sent (any case).
    pub name: Span,
    /// The field value, without surrounding whitespace.
    pub value: Span,
}

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: the connection closes after the response unless the client asks to keep it.
    Http10,
    /// `HTTP/1.1`: persistent by default, chunked bodies allowed.
    Http11,
}

impl Version {
    /// As `SERVER_PROTOCOL` and a status line spell it.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: neither Content-Length nor Transfer-Encoding.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, ended by the zero-size chunk.
    Chunked,
}

/// A request head whose framing has been decided. Spans point into the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, the blank line included: the body starts here.
    pub len: usize,
    /// The request method (`GET`, `POST`, ...), case kept.
    pub method: Span,
    /// The request target exactly as sent (`REQUEST_URI`).
    pub target: Span,
    /// Path and query of the target: all of it in origin form, what follows the authority in
    /// absolute form (possibly empty, meaning `/`), `*` in asterisk form.
    pub path: Span,
    /// The authority of an absolute-form target, else the `Host` field (absent on HTTP/1.0).
    pub host: Option<Span>,
    /// Whether the host came from an absolute-form target (the `Host` field is then ignored).
    pub host_from_target: bool,
    /// The version from the request line.
    pub version: Version,
    /// How the body that follows the head is framed.
    pub body: BodyKind,
    /// Whether the connection may carry another request after this one's response.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1: send `100 Continue` before reading the body.
    pub expect_continue: bool,
    /// The method is `HEAD`: the response gets no body.
    pub is_head: bool,
}

/// What the header fields of one head say about framing and the connection.
#[derive(Default)]
struct Seen {
    content_length: Option<u64>,
    chunked: bool,
    transfer_encodings: u32,
    host: Option<Span>,
    hosts: u32,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

/// Parse the head at the start of `buf`. `Ok(None)`: the head is incomplete and within limits.
/// `fields` is cleared and receives the header fields (reused across requests: no allocation once
/// it has grown).
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
    fields: &mut Vec<Field>,
) -> Result<Option<Head>, HttpError> {
    let window = &buf[..buf.len().min(limits.buffer_size)];
    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(window, &mut raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.buffer_size => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(over_limit(window, limits)),
        Err(e) => return Err(syntax_error(e, limits)),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::BadRequest("incomplete request line"));
    };
    let head_bytes = &buf[..len];
    if has_bare_lf(head_bytes) {
        return Err(HttpError::BadRequest("bare LF line end"));
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    fields.clear();
    let mut seen = Seen::default();
    for h in req.headers.iter() {
        let field = Field {
            name: Span::within(buf, h.name.as_bytes()),
            value: Span::within(buf, h.value),
        };
        note_field(&mut seen, h.name.as_bytes(), h.value, field.value)?;
        fields.push(field);
    }
    let method = Span::within(buf, method.as_bytes());
    let target = Span::within(buf, target.as_bytes());
    let (path, authority) = split_target(buf, method, target)?;
    decide(
        buf, len, method, target, path, authority, version, seen, limits,
    )
    .map(Some)
}

/// Everything after the fields were read: framing, host, persistence.
fn decide(
    buf: &[u8],
    len: usize,
    method: Span,
    target: Span,
    path: Span,
    authority: Option<Span>,
    version: Version,
    seen: Seen,
    limits: &Limits,
) -> Result<Head, HttpError> {
    if seen.transfer_encodings > 1 {
        return Err(HttpError::BadRequest("repeated Transfer-Encoding"));
    }
    if seen.transfer_encodings == 1 && !seen.chunked {
        return Err(HttpError::BadRequest("transfer coding other than chunked"));
    }
    if seen.chunked && seen.content_length.is_some() {
        return Err(HttpError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if seen.chunked && version == Version::Http10 {
        return Err(HttpError::BadRequest("Transfer-Encoding on HTTP/1.0"));
    }
    if seen.hosts > 1 {
        return Err(HttpError::BadRequest("more than one Host"));
    }
    if version == Version::Http11 && seen.hosts == 0 {
        return Err(HttpError::BadRequest("HTTP/1.1 without Host"));
    }
    let body = match (seen.chunked, seen.content_length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(0)) | (false, None) => BodyKind::Empty,
        (false, Some(n)) if limits.limit_post != 0 && n > limits.limit_post => {
            return Err(HttpError::BodyTooLarge {
                length: n,
                max: limits.limit_post,
            })
        }
        (false, Some(n)) => BodyKind::Length(n),
    };
    let keep_alive = match version {
        Version::Http11 => !seen.close,
        Version::Http10 => seen.keep_alive && !seen.close,
    };
    Ok(Head {
        len,
        method,
        target,
        path,
        host: authority.or(seen.host),
        host_from_target: authority.is_some(),
        version,
        body,
        keep_alive,
        expect_continue: seen.expect_continue && version == Version::Http11,
        is_head: method.get(buf) == b"HEAD",
    })
}

/// The head did not end within `--buffer-size`: 414 while the request line is still open.
fn over_limit(window: &[u8], limits: &Limits) -> HttpError {
    let body = trim_leading_empty_lines(window);
    if body.contains(&b'\n') {
        HttpError::HeadersTooLarge {
            max: limits.buffer_size,
        }
    } else {
        HttpError::UriTooLong {
            max: limits.buffer_size,
        }
    }
}

/// httparse skips empty lines before the request line (RFC 9112 §2.2); so does the 414 check.
fn trim_leading_empty_lines(mut b: &[u8]) -> &[u8] {
    while let Some(rest) = b.strip_prefix(b"\r\n") {
        b = rest;
    }
    b
}

fn syntax_error(e: httparse::Error, limits: &Limits) -> HttpError {
    match e {
        httparse::Error::Version => HttpError::VersionNotSupported,
        httparse::Error::TooManyHeaders => HttpError::HeadersTooLarge {
            max: limits.buffer_size,
        },
        httparse::Error::HeaderName => {
            HttpError::BadRequest("invalid header name (whitespace before the colon, obs-fold?)")
        }
        httparse::Error::HeaderValue => HttpError::BadRequest("invalid byte in a header value"),
        httparse::Error::NewLine => HttpError::BadRequest("invalid line end"),
        httparse::Error::Token => HttpError::BadRequest("invalid method or request line"),
        _ => HttpError::BadRequest("invalid request line"),
    }
}

/// A LF not preceded by CR. httparse takes a bare LF as a line end; a front end that does not
/// would see other fields, so it is refused.
fn has_bare_lf(head: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in head {
        if b == b'\n' && prev != b'\r' {
            return true;
        }
        prev = b;
    }
    false
}

/// Record what one field says about framing, host and persistence.
fn note_field(seen: &mut Seen, name: &[u8], value: &[u8], span: Span) -> Result<(), HttpError> {
    match name.len() {
        4 if name.eq_ignore_ascii_case(b"host") => {
            if !valid_host(value) {
                return Err(HttpError::BadRequest("invalid Host"));
            }
            seen.hosts += 1;
            seen.host = Some(span);
        }
        14 if name.eq_ignore_ascii_case(b"content-length") => {
            let n = parse_content_length(value)?;
            if seen.content_length.is_some_and(|m| m != n) {
                return Err(HttpError::BadRequest("differing Content-Lengths"));
            }
            seen.content_length = Some(n);
        }
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
            seen.transfer_encodings += 1;
            seen.chunked = value.eq_ignore_ascii_case(b"chunked");
        }
        10 if name.eq_ignore_ascii_case(b"connection") => {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                seen.close |= token.eq_ignore_ascii_case(b"close");
                seen.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        6 if name.eq_ignore_ascii_case(b"expect") => {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(HttpError::ExpectationFailed);
            }
            seen.expect_continue = true;
        }
        _ => {}
    }
    Ok(())
}

/// `Content-Length` is 1*DIGIT (RFC 9110 §8.6): no sign, no spaces inside, no list, at most 19
/// digits so it fits in 64 bits.
pub fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("invalid Content-Length"));
    }
    Ok(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A `Host` value: a reg-name, IPv4 or bracketed IPv6 literal, and an optional port. Only the
/// characters of those are checked: a space, slash, `@` or quote is refused.
fn valid_host(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b))
}

/// Split the target into path (and query) and the authority of an absolute-form target.
fn split_target(buf: &[u8], method: Span, target: Span) -> Result<(Span, Option<Span>), HttpError> {
    let t = target.get(buf);
    if t.first() == Some(&b'/') {
        return Ok((target, None));
    }
    if t == b"*" {
        if method.get(buf) == b"OPTIONS" {
            return Ok((target, None));
        }
        return Err(HttpError::BadRequest(
            "asterisk target on a method other than OPTIONS",
        ));
    }
    let scheme_len = if starts_with_ignore_case(t, b"http://") {
        7
    } else if starts_with_ignore_case(t, b"https://") {
        8
    } else {
        return Err(HttpError::BadRequest(
            "request target not in origin or absolute form",
        ));
    };
    let rest = &t[scheme_len..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || !valid_host(authority) {
        return Err(HttpError::BadRequest(
            "invalid authority in an absolute-form target",
        ));
    }
    Ok((
        Span::within(buf, &rest[end..]),
        Some(Span::within(buf, authority)),
    ))
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}
