//! An HTTP head as the vars block nginx would have sent over uwsgi (`uwsgi_params` plus one
//! `HTTP_*` var per header), so the WSGI layer builds the environ by one set of rules, whichever
//! protocol the listener speaks.
//!
//! - `HTTP_<NAME>` is the name uppercased with `-` as `_`: a name that holds `_` is dropped, or
//!   `X_Forwarded_For` could pose as `X-Forwarded-For` (nginx's `underscores_in_headers off`,
//!   gunicorn); `Proxy` is dropped too (httpoxy: it would become `HTTP_PROXY`).
//! - `Content-Type`/`Content-Length` become `CONTENT_TYPE`/`CONTENT_LENGTH`; a chunked body has
//!   no `CONTENT_LENGTH` (its length is not known until the app has read it, de-chunked, from
//!   `wsgi.input`, which ends where the body ends: `wsgi.input_terminated`), and
//!   `HTTP_TRANSFER_ENCODING: chunked` says so, as gunicorn and werkzeug have it.
//! - `PATH_INFO` is the path percent-decoded (a decoded NUL is 400), `QUERY_STRING` raw,
//!   `REQUEST_URI` the target as sent; `SERVER_NAME` the host without its port, or the
//!   listener's; `SERVER_PORT` the listener's.

use super::error::HttpError;
use super::head::{BodyKind, Field, Head};

/// Where the connection came in: the vars the peer's head cannot say.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnInfo<'a> {
    /// The peer's IP address as text, for `REMOTE_ADDR`.
    pub remote_addr: &'a [u8],
    /// The peer's port as text, for `REMOTE_PORT`.
    pub remote_port: &'a [u8],
    /// The listener's address, for `SERVER_NAME` when the request names no host.
    pub server_name: &'a [u8],
    /// The listener's port as text, for `SERVER_PORT`.
    pub server_port: &'a [u8],
}

/// Append one var; a key or value over 64 KiB cannot be encoded (the head would have been 431
/// long before: `--buffer-size` is at most 65535).
fn push_var(out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<(), HttpError> {
    push_len(out, key.len())?;
    out.extend_from_slice(key);
    push_len(out, value.len())?;
    out.extend_from_slice(value);
    Ok(())
}

fn push_len(out: &mut Vec<u8>, n: usize) -> Result<(), HttpError> {
    let n = u16::try_from(n).map_err(|_| HttpError::HeadersTooLarge { max: 65535 })?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// The path and query of a path-and-query span's bytes (`""` counts as `/`).
pub fn split_query(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().position(|&b| b == b'?') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, b""),
    }
}

/// Append `path` percent-decoded; an invalid escape is kept as sent. A decoded NUL is refused:
/// it would end the path early in any C string that meets it.
pub fn push_decoded_path(out: &mut Vec<u8>, path: &[u8]) -> Result<(), HttpError> {
    if path.is_empty() {
        out.push(b'/');
        return Ok(());
    }
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        let escaped = (b == b'%')
            .then(|| Some((hex(*path.get(i + 1)?)?, hex(*path.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                let d = hi << 4 | lo;
                if d == 0 {
                    return Err(HttpError::BadRequest("NUL in the path"));
                }
                out.push(d);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The host part of a `Host` value or authority: without the port, IPv6 brackets kept.
pub fn host_name(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// Whether a header field reaches the environ as `HTTP_*`.
fn is_passed(name: &[u8]) -> bool {
    !name.contains(&b'_') && !name.eq_ignore_ascii_case(b"proxy")
}

/// Append the vars of one request to `out`, nginx's `uwsgi_params` order.
pub fn encode_vars(
    buf: &[u8],
    head: &Head,
    fields: &[Field],
    conn: &ConnInfo<'_>,
    out: &mut Vec<u8>,
) -> Result<(), HttpError> {
    let (path, query) = split_query(head.path.get(buf));
    push_var(out, b"QUERY_STRING", query)?;
    push_var(out, b"REQUEST_METHOD", head.method.get(buf))?;
    if let BodyKind::Length(n) = head.body {
        let mut digits = [0u8; 20];
        push_var(out, b"CONTENT_LENGTH", format_u64(n, &mut digits))?;
    }
    push_var(out, b"REQUEST_URI", head.target.get(buf))?;
    push_len(out, b"PATH_INFO".len())?;
    out.extend_from_slice(b"PATH_INFO");
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    push_decoded_path(
        out,
        if head.path.get(buf) == b"*" {
            b"*"
        } else {
            path
        },
    )?;
    let decoded = u16::try_from(out.len() - len_at - 2)
        .map_err(|_| HttpError::HeadersTooLarge { max: 65535 })?;
    out[len_at..len_at + 2].copy_from_slice(&decoded.to_le_bytes());
    push_var(out, b"SERVER_PROTOCOL", head.version.as_bytes())?;
    push_var(out, b"REQUEST_SCHEME", b"http")?;
    push_var(out, b"REMOTE_ADDR", conn.remote_addr)?;
    push_var(out, b"REMOTE_PORT", conn.remote_port)?;
    push_var(out, b"SERVER_PORT", conn.server_port)?;
    let server_name = match head.host {
        Some(h) if !h.is_empty() => host_name(h.get(buf)),
        _ => conn.server_name,
    };
    push_var(out, b"SERVER_NAME", server_name)?;
    if head.host_from_target {
        if let Some(h) = head.host {
            push_var(out, b"HTTP_HOST", h.get(buf))?;
        }
    }
    for f in fields {
        push_field(out, buf, f, head.host_from_target)?;
    }
    Ok(())
}

/// One header field as its var, or nothing.
fn push_field(
    out: &mut Vec<u8>,
    buf: &[u8],
    f: &Field,
    host_from_target: bool,
) -> Result<(), HttpError> {
    let (name, value) = (f.name.get(buf), f.value.get(buf));
    if name.eq_ignore_ascii_case(b"content-type") {
        return push_var(out, b"CONTENT_TYPE", value);
    }
    if name.eq_ignore_ascii_case(b"content-length")
        || (host_from_target && name.eq_ignore_ascii_case(b"host"))
        || !is_passed(name)
    {
        return Ok(());
    }
    push_len(out, 5 + name.len())?;
    out.extend_from_slice(b"HTTP_");
    out.extend(name.iter().map(|&b| match b {
        b'-' => b'_',
        _ => b.to_ascii_uppercase(),
    }));
    push_len(out, value.len())?;
    out.extend_from_slice(value);
    Ok(())
}

/// `n` in decimal, in `digits`.
pub fn format_u64(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[i..];
        }
    }
}
