//! A decoded request head: what the server and the WSGI layer need, as offsets into the buffer that
//! holds the packet, so nothing is copied.

use super::error::DecodeError;
use super::header::HEADER_LEN;
use super::vars::Vars;

/// A request whose vars block has been validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The packet header's `modifier1` (0 or 30 for a WSGI request).
    pub modifier1: u8,
    /// The packet header's `modifier2`.
    pub modifier2: u8,
    /// Size of the vars block (the header's `datasize`).
    pub vars_len: usize,
    /// Number of key/value pairs in the block.
    pub var_count: usize,
    /// The body's length from `CONTENT_LENGTH` (0 when absent or empty).
    pub content_length: u64,
}

impl RequestHead {
    /// Offset of the first body byte in the packet buffer.
    pub fn body_start(&self) -> usize {
        HEADER_LEN + self.vars_len
    }

    /// The vars block inside `packet`, the buffer the head was decoded from.
    pub fn vars_block<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        &packet[HEADER_LEN..self.body_start()]
    }

    /// The pairs of the vars block inside `packet`.
    pub fn vars<'a>(&self, packet: &'a [u8]) -> Vars<'a> {
        Vars::new(self.vars_block(packet))
    }
}

/// Parse `CONTENT_LENGTH`: empty means no body; anything but ASCII digits is refused, where uWSGI
/// silently took the leading digits (`2abc` became 2).
pub fn parse_content_length(value: &[u8]) -> Result<u64, DecodeError> {
    if value.is_empty() {
        return Ok(0);
    }
    if value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::BadContentLength);
    }
    // At most 19 digits always fits in a u64.
    Ok(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_forms() {
        assert_eq!(parse_content_length(b""), Ok(0));
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"41943040"), Ok(41_943_040));
        assert_eq!(
            parse_content_length(b"9999999999999999999"),
            Ok(9_999_999_999_999_999_999)
        );
        assert_eq!(
            parse_content_length(b"2abc"),
            Err(DecodeError::BadContentLength)
        );
        assert_eq!(
            parse_content_length(b"-1"),
            Err(DecodeError::BadContentLength)
        );
        assert_eq!(
            parse_content_length(b" 5"),
            Err(DecodeError::BadContentLength)
        );
        assert_eq!(
            parse_content_length(b"99999999999999999999"),
            Err(DecodeError::BadContentLength)
        );
    }
}
