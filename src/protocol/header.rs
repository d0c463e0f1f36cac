//! The 4-byte uwsgi packet header: `modifier1`, a little-endian `datasize`, `modifier2`.

use nom::number::complete::{le_u16, u8 as byte};
use nom::{IResult, Parser};

/// Bytes in a packet header.
pub const HEADER_LEN: usize = 4;

/// `modifier1` of a WSGI request: nginx's default.
pub const MODIFIER_WSGI: u8 = 0;
/// `modifier1` of a WSGI request whose `PATH_INFO` must lose its `SCRIPT_NAME` prefix.
pub const MODIFIER_WSGI_STRIP: u8 = 30;
/// `modifier1` of a ping; the answer is the same header with `modifier2` 1.
pub const MODIFIER_PING: u8 = 100;

/// A decoded packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which plugin serves the packet: [`MODIFIER_WSGI`] for a request, [`MODIFIER_PING`], ...
    pub modifier1: u8,
    /// Size of the vars block that follows; the body is not counted.
    pub datasize: u16,
    /// A sub-kind for `modifier1`; 0 for WSGI requests.
    pub modifier2: u8,
}

/// Parse a header from the first four bytes of `input`.
pub fn parse_header(input: &[u8]) -> IResult<&[u8], Header> {
    let (rest, (modifier1, datasize, modifier2)) = (byte, le_u16, byte).parse(input)?;
    Ok((
        rest,
        Header {
            modifier1,
            datasize,
            modifier2,
        },
    ))
}

impl Header {
    /// The header as it goes on the wire.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let [lo, hi] = self.datasize.to_le_bytes();
        [self.modifier1, lo, hi, self.modifier2]
    }
}

/// The four bytes of an HTTP request line's start, as they arrive when a browser or curl talks to a
/// uwsgi socket (`GET ` reads as modifier1 71 and datasize 21573).
pub fn looks_like_http(first: &[u8]) -> bool {
    const METHODS: [&[u8; 4]; 10] = [
        b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PRI ",
    ];
    first.len() >= HEADER_LEN && METHODS.iter().any(|m| &first[..HEADER_LEN] == *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_header_decodes() {
        let (rest, h) = parse_header(&[0x00, 0xd8, 0x01, 0x00, 0xff]).unwrap();
        assert_eq!(
            h,
            Header {
                modifier1: 0,
                datasize: 472,
                modifier2: 0
            }
        );
        assert_eq!(rest, &[0xff]);
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            modifier1: 100,
            datasize: 0x1234,
            modifier2: 1,
        };
        assert_eq!(parse_header(&h.to_bytes()).unwrap().1, h);
    }

    #[test]
    fn http_request_line_is_recognised() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        let (_, h) = parse_header(b"GET ").unwrap();
        assert_eq!(h.datasize, 21573);
        assert!(!looks_like_http(&[0, 1, 0, 0]));
        assert!(!looks_like_http(b"GE"));
    }
}
