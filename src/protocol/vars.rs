//! The vars block: `u16 LE key_len | key | u16 LE val_len | val`, repeated until the block ends.
//!
//! [`validate`] checks a block once, with every length checked against the block before it is
//! taken; [`Vars`] then walks a validated block without re-checking, borrowing keys and values.

use super::error::DecodeError;
use nom::multi::length_data;
use nom::number::complete::le_u16;
use nom::{IResult, Parser};

/// Parse one `u16`-length-prefixed string.
fn parse_string(input: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(le_u16).parse(input)
}

/// Parse one key/value pair without judging it.
pub fn parse_var(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    (parse_string, parse_string).parse(input)
}

/// Check a whole vars block and return how many pairs it holds.
pub fn validate(block: &[u8]) -> Result<usize, DecodeError> {
    validate_with(block, |_, _| Ok(()))
}

/// [`validate`], calling `visit` with each pair as it is checked, so a caller that wants a few
/// vars at decode time needs no second walk.
#[inline]
pub fn validate_with<'a>(
    block: &'a [u8],
    mut visit: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), DecodeError>,
) -> Result<usize, DecodeError> {
    let mut rest = block;
    let mut count = 0;
    while !rest.is_empty() {
        let offset = block.len() - rest.len();
        if rest.len() < 2 {
            return Err(DecodeError::TrailingBytes { offset });
        }
        let key_len = u16::from_le_bytes([rest[0], rest[1]]);
        if key_len == 0 {
            return Err(DecodeError::NullKey { offset });
        }
        match parse_var(rest) {
            Ok((tail, (key, value))) => {
                visit(key, value)?;
                rest = tail;
            }
            Err(_) => return Err(DecodeError::Overrun { offset }),
        }
        count += 1;
    }
    Ok(count)
}

/// The pairs of a block that [`validate`] accepted, in wire order.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    rest: &'a [u8],
}

impl<'a> Vars<'a> {
    /// Walk `block`, which must have passed [`validate`]; a malformed tail ends the walk early.
    pub fn new(block: &'a [u8]) -> Self {
        Vars { rest: block }
    }
}

/// One `u16`-length-prefixed string and what follows it. The walk of a block already validated
/// by the nom parser above: a plain slice split, which costs a third of a nom call per var (the
/// environ builder walks every var of every request).
#[inline]
fn split_prefixed(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    (len <= rest.len()).then(|| rest.split_at(len))
}

impl<'a> Iterator for Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (key, rest) = split_prefixed(self.rest)?;
        let (value, rest) = split_prefixed(rest)?;
        self.rest = rest;
        Some((key, value))
    }
}

/// Append one pair to `out` in wire form. Lengths over 65535 are a caller error and are refused.
pub fn encode_var(out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<(), VarTooLong> {
    let key_len = u16::try_from(key.len()).map_err(|_| VarTooLong)?;
    let value_len = u16::try_from(value.len()).map_err(|_| VarTooLong)?;
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// A key, value or whole block does not fit the protocol's 16-bit lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarTooLong;

impl std::fmt::Display for VarTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a uwsgi var or vars block is longer than 65535 bytes")
    }
}

impl std::error::Error for VarTooLong {}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in pairs {
            encode_var(&mut out, k, v).unwrap();
        }
        out
    }

    #[test]
    fn pairs_come_back_in_order() {
        let b = block(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"CONTENT_TYPE", b""),
            (b"X", b"y"),
        ]);
        assert_eq!(validate(&b), Ok(3));
        let got: Vec<_> = Vars::new(&b).collect();
        assert_eq!(
            got,
            vec![
                (&b"REQUEST_METHOD"[..], &b"GET"[..]),
                (b"CONTENT_TYPE", b""),
                (b"X", b"y")
            ]
        );
    }

    #[test]
    fn empty_block_has_no_pairs() {
        assert_eq!(validate(&[]), Ok(0));
    }

    #[test]
    fn null_key_is_refused() {
        assert_eq!(
            validate(&[0, 0, 1, 0, b'x']),
            Err(DecodeError::NullKey { offset: 0 })
        );
    }

    #[test]
    fn key_past_block_is_refused() {
        assert_eq!(
            validate(&[5, 0, b'a', b'b']),
            Err(DecodeError::Overrun { offset: 0 })
        );
    }

    #[test]
    fn value_past_block_is_refused() {
        let mut b = block(&[(b"A", b"1")]);
        b.extend_from_slice(&[1, 0, b'K', 9, 0, b'v']);
        assert_eq!(validate(&b), Err(DecodeError::Overrun { offset: 6 }));
    }

    #[test]
    fn key_without_value_length_is_refused() {
        assert_eq!(
            validate(&[1, 0, b'K']),
            Err(DecodeError::Overrun { offset: 0 })
        );
    }

    #[test]
    fn one_stray_byte_is_refused() {
        let mut b = block(&[(b"A", b"1")]);
        b.push(7);
        assert_eq!(validate(&b), Err(DecodeError::TrailingBytes { offset: 6 }));
    }

    #[test]
    fn overlong_var_cannot_be_encoded() {
        let big = vec![b'a'; 65536];
        assert_eq!(encode_var(&mut Vec::new(), b"K", &big), Err(VarTooLong));
    }
}
