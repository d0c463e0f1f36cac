//! Property tests: encode/decode is the identity, the way a stream is split into reads does not
//! matter, and the decoder neither panics nor reads or buffers past its limits.

use crate::support::{feed_chunks, outcome_whole, Outcome};
use proptest::collection::vec;
use proptest::prelude::*;
use rwsgi::protocol::encode::encode_packet;
use rwsgi::protocol::header::HEADER_LEN;
use rwsgi::protocol::response::{
    check_header, check_status, push_header, push_status_line, status_protocol,
};
use rwsgi::protocol::{decode, DecodeError, Limits, Packet, Progress, RequestReader};

/// The reader's smallest read offer (`READ_CHUNK` in decoder.rs).
const READ_CHUNK: usize = 4096;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Keys are never empty; keys and values are any bytes. A few long values exercise two-byte
/// lengths; the whole stays under the 16-bit block size.
fn pairs() -> impl Strategy<Value = Pairs> {
    let short = vec(any::<u8>(), 0..40);
    let long = vec(any::<u8>(), 200..1200);
    vec(
        (vec(any::<u8>(), 1..40), prop_oneof![4 => short, 1 => long]),
        0..24,
    )
    .prop_filter("CONTENT_LENGTH has its own test", |ps| {
        ps.iter().all(|(k, _)| k != b"CONTENT_LENGTH")
    })
}

fn as_refs(pairs: &Pairs) -> Vec<(&[u8], &[u8])> {
    pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect()
}

/// A byte stream worth splitting: a good request with a body, the same with one byte changed, or
/// noise after a plausible header.
fn good_request() -> impl Strategy<Value = Vec<u8>> {
    (
        pairs(),
        vec(any::<u8>(), 0..300),
        prop::sample::select(vec![0u8, 30]),
    )
        .prop_map(|(mut ps, body, m1)| {
            ps.push((
                b"CONTENT_LENGTH".to_vec(),
                body.len().to_string().into_bytes(),
            ));
            let mut p = encode_packet(m1, 0, &as_refs(&ps)).unwrap();
            p.extend_from_slice(&body);
            p
        })
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let good = good_request();
    let mutated = (good_request(), any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(mut p, at, byte)| {
            let i = at.index(p.len());
            p[i] = byte;
            p
        },
    );
    let noise = (any::<[u8; 4]>(), vec(any::<u8>(), 0..600)).prop_map(|(h, rest)| {
        let mut p = h.to_vec();
        p.extend_from_slice(&rest);
        p
    });
    prop_oneof![2 => good, 3 => mutated, 1 => noise]
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        0usize..=65535,
        prop_oneof![Just(0u64), 0u64..5000],
        0usize..5000,
    )
        .prop_map(|(buffer_size, limit_post, preread)| Limits {
            buffer_size,
            limit_post,
            preread,
        })
}

/// Split `stream` at the given (sorted, deduplicated) cut points.
fn split<'a>(stream: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for a in at {
        out.push(&stream[last..a]);
        last = a;
    }
    out.push(&stream[last..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_the_identity(ps in pairs(), m1 in prop::sample::select(vec![0u8, 30]), m2: u8) {
        let packet = encode_packet(m1, m2, &as_refs(&ps)).unwrap();
        let got = decode(&packet, &Limits::default());
        if ps.is_empty() {
            prop_assert_eq!(got, Err(DecodeError::EmptyRequest));
            return Ok(());
        }
        let Ok(Some(Packet::Request(head))) = got else {
            return Err(TestCaseError::fail(format!("not a request: {got:?}")));
        };
        prop_assert_eq!(head.modifier1, m1);
        prop_assert_eq!(head.modifier2, m2);
        prop_assert_eq!(head.var_count, ps.len());
        prop_assert_eq!(head.body_start(), packet.len());
        let back: Pairs = head.vars(&packet).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(back, ps);
    }

    #[test]
    fn any_split_into_reads_decodes_like_the_whole(
        s in stream(),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
        lim in limits(),
    ) {
        let whole = outcome_whole(lim, &s);
        prop_assert_eq!(feed_chunks(lim, split(&s, &cuts)), whole.clone());
        prop_assert_eq!(feed_chunks(lim, s.chunks(1)), whole);
    }

    #[test]
    fn decode_never_panics_and_decides_within_the_limit(s in stream(), lim in limits()) {
        let got = decode(&s, &lim);
        if s.len() >= HEADER_LEN {
            let datasize = usize::from(u16::from_le_bytes([s[1], s[2]]));
            // Nothing past the vars block is looked at.
            let head_only = &s[..s.len().min(HEADER_LEN + datasize)];
            prop_assert_eq!(decode(head_only, &lim), got.clone());
            // "Need more" only while the missing bytes are within --buffer-size.
            if got == Ok(None) {
                prop_assert!(datasize <= lim.buffer_size);
                prop_assert!(s.len() < HEADER_LEN + datasize);
            }
        } else {
            prop_assert_eq!(got.clone(), Ok(None));
        }
        if let Ok(Some(Packet::Request(head))) = got {
            prop_assert!(head.vars_len <= lim.buffer_size);
            prop_assert!(lim.limit_post == 0 || head.content_length <= lim.limit_post);
        }
    }

    #[test]
    fn the_reader_never_buffers_past_its_limits(
        s in stream(),
        reads in vec(1usize..9000, 1..40),
        lim in limits(),
    ) {
        // Reads through spare/commit as the server does, each read as large as the peer offers.
        let mut reader = RequestReader::new(lim);
        let bound = HEADER_LEN + lim.buffer_size + lim.preread + READ_CHUNK;
        let mut pos = 0;
        for want in reads.iter().cycle().take(200) {
            let spare = reader.spare();
            prop_assert!(spare.len() <= READ_CHUNK.max(HEADER_LEN + lim.buffer_size).max(lim.preread));
            let n = spare.len().min(*want).min(s.len() - pos);
            spare[..n].copy_from_slice(&s[pos..pos + n]);
            reader.commit(n);
            pos += n;
            prop_assert!(reader.buffer().len() <= bound);
            match reader.poll() {
                Ok(Progress::NeedMore) if pos < s.len() => continue,
                Ok(Progress::NeedMore) => {
                    // The stream ended early: eof names a cut-short packet, have < need.
                    match reader.eof() {
                        None => prop_assert!(s.is_empty()),
                        Some(DecodeError::Truncated { have, need }) => prop_assert!(have < need),
                        Some(other) => return Err(TestCaseError::fail(format!("eof gave {other:?}"))),
                    }
                    break;
                }
                Ok(Progress::Ready(_)) | Err(_) => break,
            }
        }
        prop_assert_eq!(reader.buffer(), &s[..pos]);
    }

    #[test]
    fn content_length_in_any_position_frames_the_body(
        ps in pairs(), at: prop::sample::Index, cl in 0u64..100_000,
    ) {
        let mut ps = ps;
        let i = at.index(ps.len() + 1);
        ps.insert(i, (b"CONTENT_LENGTH".to_vec(), cl.to_string().into_bytes()));
        let packet = encode_packet(0, 0, &as_refs(&ps)).unwrap();
        let Ok(Some(Packet::Request(head))) = decode(&packet, &Limits::default()) else {
            return Err(TestCaseError::fail("not a request"));
        };
        prop_assert_eq!(head.content_length, cl);
    }

    #[test]
    fn a_checked_status_and_headers_make_exactly_their_lines(
        proto in prop_oneof![
            Just(None),
            vec(any::<u8>(), 0..20).prop_map(Some),
            // SERVER_PROTOCOL comes from the request: anything after an "HTTP/" prefix.
            vec(any::<u8>(), 0..11).prop_map(|t| Some([&b"HTTP/"[..], &t].concat())),
        ],
        status in prop_oneof![
            vec(any::<u8>(), 0..20),
            (100u16..1000, vec(any::<u8>(), 0..12))
                .prop_map(|(code, reason)| [code.to_string().as_bytes(), b" ", &reason].concat()),
        ],
        name in prop_oneof![vec(any::<u8>(), 0..12), "[A-Za-z-]{1,12}".prop_map(String::into_bytes)],
        value in vec(any::<u8>(), 0..20),
    ) {
        if check_status(&status).is_ok() {
            let mut out = Vec::new();
            push_status_line(&mut out, status_protocol(proto.as_deref()), &status);
            prop_assert!(out.ends_with(b"\r\n"));
            let body = &out[..out.len() - 2];
            prop_assert!(!body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
                "status line {:?}", String::from_utf8_lossy(&out));
        }
        if check_header(&name, &value).is_ok() {
            let mut out = Vec::new();
            push_header(&mut out, &name, &value);
            let body = &out[..out.len() - 2];
            prop_assert!(!body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
        }
    }
}

#[test]
fn split_outcome_covers_eof() {
    // A sanity check of the harness itself: a cut-short request ends in eof's error.
    let p = encode_packet(0, 0, &[(b"A", b"b")]).unwrap();
    assert_eq!(
        feed_chunks(Limits::default(), [&p[..3]]),
        Outcome::Eof(Some(DecodeError::Truncated { have: 3, need: 4 }))
    );
}
