//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: the decoder keeps its
//! place between calls, so a body may arrive in reads of any size, and data comes back as slices
//! of the input, never copied.
//!
//! Strict where front ends and back ends are known to disagree: the size is 1 to 16 hex digits,
//! every line ends in CRLF (a bare LF or CR is 400), extensions hold no control bytes and are
//! ignored, and the trailer section is read and dropped (WSGI has no trailers), within a budget.

use super::error::HttpError;

/// Hex digits a chunk size may have: 16 fill a u64, so more can only be padding or overflow.
const MAX_SIZE_DIGITS: u32 = 16;
/// Longest chunk extension accepted on one chunk line; past it 400.
const MAX_EXTENSION: u32 = 4096;

/// What one step of decoding produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Body bytes, borrowed from the input.
    Data(&'a [u8]),
    /// The input ended inside the framing: the bytes read so far are consumed, call again with
    /// more.
    NeedMore,
    /// The last chunk and the trailer section have been read: the body is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a size.
    Size { size: u64, digits: u32 },
    /// Whitespace after the size, before a `;`.
    SizeSpace { size: u64 },
    /// A chunk extension, up to the CR.
    Extension { size: u64, len: u32 },
    /// The LF after the size line's CR.
    SizeLf { size: u64 },
    /// Data bytes still to come in this chunk.
    Data { left: u64 },
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// The start of a trailer line, or the CR of the blank line that ends the body.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF of a trailer line.
    TrailerLf,
    /// The LF of the final blank line.
    EndLf,
    /// The body is complete.
    Done,
}

/// The decoder of one chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    /// Data bytes announced so far.
    total: u64,
    /// `--limit-post`; 0 is no limit.
    limit_post: u64,
    /// Trailer bytes still allowed.
    trailer_budget: usize,
    /// The trailer limit, for the error.
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `limit_post` data bytes (0: no limit) with trailers of at
    /// most `max_trailer` bytes (431 past it).
    pub fn new(limit_post: u64, max_trailer: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            total: 0,
            limit_post,
            trailer_budget: max_trailer,
            max_trailer,
        }
    }

    /// Whether the last chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode from `input`: how many bytes were consumed, and what they held. Call again with the
    /// unconsumed rest (and more bytes) until [`Chunk::End`].
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Chunk<'a>), HttpError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok((pos, Chunk::End)),
                State::Data { left } => {
                    let rest = &input[pos..];
                    if rest.is_empty() {
                        return Ok((pos, Chunk::NeedMore));
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    return Ok((pos + n, Chunk::Data(&rest[..n])));
                }
                _ => {}
            }
            let Some(&b) = input.get(pos) else {
                return Ok((pos, Chunk::NeedMore));
            };
            pos += 1;
            self.state = self.step(b)?;
        }
    }

    /// One framing byte.
    fn step(&mut self, b: u8) -> Result<State, HttpError> {
        let bad = |why| Err(HttpError::BadRequest(why));
        Ok(match self.state {
            State::Size { size, digits } => match hex_value(b) {
                Some(_) if digits == MAX_SIZE_DIGITS => return bad("chunk size too long"),
                Some(d) => State::Size {
                    size: size << 4 | u64::from(d),
                    digits: digits + 1,
                },
                None if digits == 0 => return bad("chunk size is not hex"),
                None => {
                    self.announce(size)?;
                    match b {
                        b';' => State::Extension { size, len: 0 },
                        b' ' | b'\t' => State::SizeSpace { size },
                        b'\r' => State::SizeLf { size },
                        _ => return bad("invalid byte after a chunk size"),
                    }
                }
            },
            State::SizeSpace { size } => match b {
                b' ' | b'\t' => State::SizeSpace { size },
                b';' => State::Extension { size, len: 0 },
                _ => return bad("whitespace after a chunk size without an extension"),
            },
            State::Extension { size, len } => match b {
                b'\r' => State::SizeLf { size },
                _ if len >= MAX_EXTENSION => return bad("chunk extension too long"),
                b'\t' | 0x20..=0x7e | 0x80..=0xff => State::Extension { size, len: len + 1 },
                _ => return bad("control byte in a chunk extension"),
            },
            State::SizeLf { size } => match b {
                b'\n' if size == 0 => State::TrailerStart,
                b'\n' => State::Data { left: size },
                _ => return bad("chunk size line not ended by CRLF"),
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size { size: 0, digits: 0 },
            State::DataCr | State::DataLf => return bad("chunk data not followed by CRLF"),
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b' ' | b'\t' => return bad("obs-fold in the trailer section"),
                _ => self.trailer_byte(b)?,
            },
            State::Trailer => match b {
                b'\r' => State::TrailerLf,
                _ => self.trailer_byte(b)?,
            },
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::EndLf if b == b'\n' => State::Done,
            State::TrailerLf | State::EndLf => return bad("trailer line not ended by CRLF"),
            State::Data { .. } | State::Done => unreachable!("handled by decode"),
        })
    }

    /// A chunk of `size` bytes was announced: check it against `--limit-post`.
    fn announce(&mut self, size: u64) -> Result<(), HttpError> {
        self.total = self.total.saturating_add(size);
        if self.limit_post != 0 && self.total > self.limit_post {
            return Err(HttpError::BodyTooLarge {
                length: self.total,
                max: self.limit_post,
            });
        }
        Ok(())
    }

    /// One byte of a trailer field line.
    fn trailer_byte(&mut self, b: u8) -> Result<State, HttpError> {
        if b != b'\t' && (b < 0x20 || b == 0x7f) {
            return Err(HttpError::BadRequest("control byte in a trailer field"));
        }
        if self.trailer_budget == 0 {
            return Err(HttpError::HeadersTooLarge {
                max: self.max_trailer,
            });
        }
        self.trailer_budget -= 1;
        Ok(State::Trailer)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode a whole chunked body held in `input`: the data, and the bytes the body took. `Ok(None)`
/// when the body is incomplete. For tests and small bodies; the server decodes incrementally.
pub fn decode_all(
    input: &[u8],
    limit_post: u64,
    max_trailer: usize,
) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut d = ChunkedDecoder::new(limit_post, max_trailer);
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let (n, chunk) = d.decode(&input[pos..])?;
        pos += n;
        match chunk {
            Chunk::Data(data) => out.extend_from_slice(data),
            Chunk::NeedMore => return Ok(None),
            Chunk::End => return Ok(Some((out, pos))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
        decode_all(input, 0, 1024)
    }

    #[test]
    fn simple_body() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        assert_eq!(
            all(body),
            Ok(Some((b"hello world".to_vec(), body.len() - 4)))
        );
    }

    #[test]
    fn trailers_are_read_and_dropped() {
        let body = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n";
        assert_eq!(all(body), Ok(Some((b"abc".to_vec(), body.len()))));
        assert!(decode_all(body, 0, 4).is_err());
    }

    #[test]
    fn incomplete_is_need_more() {
        assert_eq!(all(b"5\r\nhel"), Ok(None));
        assert_eq!(all(b"0\r\n"), Ok(None));
        assert_eq!(all(b"0\r\n\r"), Ok(None));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"00000000000000000\r\n",
            b"5;a\0b\r\nhello\r\n",
            b"0\r\n folded\r\n\r\n",
            b"0\r\n\n",
        ] {
            assert!(matches!(all(bad), Err(HttpError::BadRequest(_))), "{bad:?}");
        }
    }

    #[test]
    fn sixteen_digits_fit() {
        assert_eq!(all(b"ffffffffffffffff\r\nab"), Ok(None));
        assert_eq!(
            all(b"000000000000000a\r\n0123456789\r\n0\r\n\r\n")
                .unwrap()
                .unwrap()
                .0
                .len(),
            10
        );
    }

    #[test]
    fn limit_post_counts_decoded_bytes() {
        assert_eq!(
            decode_all(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 8, 0),
            Err(HttpError::BodyTooLarge { length: 10, max: 8 })
        );
        assert!(decode_all(b"5\r\nhello\r\n0\r\n\r\n", 5, 0)
            .unwrap()
            .is_some());
    }
}
