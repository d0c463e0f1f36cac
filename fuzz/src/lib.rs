//! The fuzz targets' bodies, each with an oracle beyond "does not panic". Every target in
//! `fuzz_targets/` is three lines calling one of these. No sockets and no Python: the environ
//! builder needs a live interpreter, so it is not fuzzed here.

use rwsgi::protocol::header::{looks_like_http, parse_header, HEADER_LEN};
use rwsgi::protocol::response::{
    check_header, check_status, push_header, push_status_line, status_protocol,
};
use rwsgi::protocol::vars::{encode_var, validate, Vars};
use rwsgi::protocol::{
    decode as decode_packet, DecodeError, Limits, Packet, Progress, RequestReader,
};

/// The 4-byte header: parses iff four bytes are there, and round-trips.
pub fn header(data: &[u8]) {
    match parse_header(data) {
        Ok((rest, h)) => {
            assert_eq!(&h.to_bytes()[..], &data[..HEADER_LEN]);
            assert_eq!(rest.len(), data.len() - HEADER_LEN);
        }
        Err(_) => assert!(data.len() < HEADER_LEN),
    }
    let _ = looks_like_http(data);
}

/// A vars block: a valid one re-encodes to the same bytes; an error points inside the block.
pub fn vars(data: &[u8]) {
    match validate(data) {
        Ok(n) => {
            let mut again = Vec::with_capacity(data.len());
            let mut count = 0;
            for (k, v) in Vars::new(data) {
                assert!(!k.is_empty());
                encode_var(&mut again, k, v).unwrap();
                count += 1;
            }
            assert_eq!(count, n);
            assert_eq!(again, data);
        }
        Err(
            DecodeError::NullKey { offset }
            | DecodeError::Overrun { offset }
            | DecodeError::TrailingBytes { offset },
        ) => assert!(offset < data.len()),
        Err(e) => panic!("validate returned {e:?}"),
    }
}

/// The limits the decode and reader targets run under: the default and uWSGI's.
fn limit_sets() -> [Limits; 2] {
    [
        Limits::default(),
        Limits {
            buffer_size: 4096,
            limit_post: 1000,
            preread: 100,
        },
    ]
}

/// The whole-packet decoder: decides within `--buffer-size`, never looks past the vars block.
pub fn decode(data: &[u8]) {
    for limits in limit_sets() {
        let got = decode_packet(data, &limits);
        match &got {
            Ok(None) => assert!(data.len() < HEADER_LEN + limits.buffer_size),
            Ok(Some(Packet::Request(head))) => {
                assert!(head.vars_len <= limits.buffer_size);
                assert!(head.body_start() <= data.len());
                assert_eq!(head.vars(data).count(), head.var_count);
                assert_eq!(decode_packet(&data[..head.body_start()], &limits), got);
            }
            Ok(Some(Packet::Ping)) => {}
            Err(e) => {
                let _ = e.reply();
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// What a reader said at the end of a stream.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ready(Packet),
    Error(DecodeError),
    Eof(Option<DecodeError>),
}

/// The connection's read state machine fed `data` through `spare`/`commit` in reads of the given
/// sizes (cycled), polling after each, as the event loop does.
fn run_reader(limits: Limits, stream: &[u8], sizes: &[usize]) -> Outcome {
    let mut reader = RequestReader::new(limits);
    let bound = HEADER_LEN + limits.buffer_size + limits.preread + 4096;
    let mut pos = 0;
    let mut i = 0;
    loop {
        let spare = reader.spare();
        let n = spare
            .len()
            .min(sizes[i % sizes.len()])
            .min(stream.len() - pos);
        i += 1;
        spare[..n].copy_from_slice(&stream[pos..pos + n]);
        reader.commit(n);
        pos += n;
        assert!(reader.buffer().len() <= bound);
        match reader.poll() {
            Ok(Progress::NeedMore) if pos < stream.len() => {}
            Ok(Progress::NeedMore) => {
                let eof = reader.eof();
                if let Some(DecodeError::Truncated { have, need }) = eof {
                    assert!(have < need);
                }
                return Outcome::Eof(eof);
            }
            Ok(Progress::Ready(p)) => return Outcome::Ready(p),
            Err(e) => return Outcome::Error(e),
        }
    }
}

/// Longest stream the reader target feeds: each `spare()` zero-fills a 4 KiB read offer, so tiny
/// reads over a 60 KiB stream would cost seconds per input. The decode target covers big blocks.
const READER_MAX_STREAM: usize = 8192;
/// Longest stream also fed one byte per read.
const READER_BYTEWISE_MAX: usize = 2048;

/// The reader fed arbitrary bytes in arbitrary reads decides as if the stream came in one read.
/// Input: one byte `k` (how many read sizes follow, 0..=7), `k` sizes, then the stream.
pub fn reader(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    let stream = &stream[..stream.len().min(READER_MAX_STREAM)];
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s) + 1).collect();
    for limits in limit_sets() {
        let whole = run_reader(limits, stream, &[usize::MAX]);
        if !sizes.is_empty() {
            assert_eq!(run_reader(limits, stream, &sizes), whole);
        }
        if stream.len() <= READER_BYTEWISE_MAX {
            assert_eq!(run_reader(limits, stream, &[1]), whole);
        }
    }
}

/// The response head: whatever passes the checks makes exactly one line each.
/// Input: three length bytes, then protocol, status, header name, header value.
pub fn response(data: &[u8]) {
    let Some((lens, mut rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let mut take = |n: u8| {
        let (a, b) = rest.split_at(usize::from(n).min(rest.len()));
        rest = b;
        a
    };
    let (proto, status, name) = (take(lens[0] % 24), take(lens[1] % 24), take(lens[2] % 24));
    let value = rest;
    let one_line = |out: &[u8]| {
        let body = out.strip_suffix(b"\r\n").expect("line ends in CRLF");
        assert!(
            !body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "{out:?}"
        );
    };
    if let Ok(code) = check_status(status) {
        assert!((0..=999).contains(&code));
        let mut out = Vec::new();
        push_status_line(&mut out, status_protocol(Some(proto)), status);
        one_line(&out);
    }
    if check_header(name, value).is_ok() {
        let mut out = Vec::new();
        push_header(&mut out, name, value);
        one_line(&out);
    }
}

/// The HTTP read state machine fed `data` in reads of arbitrary sizes reads like the whole stream
/// in one read (and one byte per read); a head that parses makes a valid vars block.
/// Input: one byte `k` (how many read sizes follow, 0..=7), `k` sizes, then the stream.
pub fn http(data: &[u8]) {
    use rwsgi::protocol::http::conn::transcript;
    use rwsgi::protocol::http::environ::{encode_vars, ConnInfo};
    use rwsgi::protocol::http::{parse_head, Limits as HttpLimits};
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s) + 1).collect();
    for limits in [
        HttpLimits::default(),
        HttpLimits {
            buffer_size: 64,
            limit_post: 100,
        },
    ] {
        let whole = transcript(limits, [stream]);
        if !sizes.is_empty() {
            let mut chunks = Vec::new();
            let (mut pos, mut i) = (0, 0);
            while pos < stream.len() {
                let n = sizes[i % sizes.len()].min(stream.len() - pos);
                chunks.push(&stream[pos..pos + n]);
                pos += n;
                i += 1;
            }
            assert_eq!(transcript(limits, chunks), whole);
        }
        if stream.len() <= READER_BYTEWISE_MAX {
            assert_eq!(transcript(limits, stream.chunks(1)), whole);
        }
        let mut fields = Vec::new();
        if let Ok(Some(head)) = parse_head(stream, &limits, &mut fields) {
            assert!(head.len <= limits.buffer_size && head.len <= stream.len());
            let mut out = Vec::new();
            if encode_vars(stream, &head, &fields, &ConnInfo::default(), &mut out).is_ok() {
                assert!(validate(&out).is_ok());
            }
        }
    }
}
