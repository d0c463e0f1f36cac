//! Malformed vectors (`vectors/malformed/`, written by `capture/make_malformed.py`): each fails
//! with the `DecodeError` its sidecar names, whichever way the bytes arrive, and maps to the
//! documented reply and log line.

use crate::json::Json;
use crate::support::{
    error_from_json, feed_chunks, limits_from_json, load_peer, outcome_bytewise, outcome_whole,
    Outcome,
};
use rwsgi::protocol::{decode, encode::encode_packet, DecodeError, Limits, Packet, Reply};

const REQUIRED: &[&str] = &[
    "truncated_header",
    "truncated_vars",
    "key_past_block",
    "value_past_block",
    "zero_length_key",
    "stray_trailing_byte",
    "stray_two_bytes",
    "datasize_zero",
    "datasize_over_buffer_size",
    "http_get_on_socket",
    "http_post_on_socket",
    "unknown_modifier1",
    "content_length_garbage",
    "body_shorter_than_content_length",
];

fn reply_text(reply: Reply) -> String {
    match reply {
        Reply::Close => "close".to_owned(),
        Reply::Status(s) => s.to_owned(),
    }
}

#[test]
fn every_listed_malformed_case_has_a_vector() {
    let have: Vec<String> = load_peer("malformed").into_iter().map(|v| v.name).collect();
    for name in REQUIRED {
        assert!(have.iter().any(|h| h == name), "missing malformed/{name}");
    }
}

#[test]
fn malformed_vectors_fail_as_documented() {
    for v in load_peer("malformed") {
        let id = v.id();
        let limits = limits_from_json(v.doc.get("limits"));
        let err = error_from_json(v.doc.get("expected_error").unwrap());
        let shuts_down = v.doc.get("peer_shuts_down").and_then(Json::bool).unwrap();
        if shuts_down {
            // The reader wants more after every prefix; the error comes when the peer closes.
            for cut in 0..v.bytes.len() {
                assert!(
                    matches!(outcome_whole(limits, &v.bytes[..cut]), Outcome::Eof(_)),
                    "{id} cut {cut}"
                );
            }
            assert_eq!(
                outcome_whole(limits, &v.bytes),
                Outcome::Eof(Some(err.clone()))
            );
        } else {
            assert_eq!(decode(&v.bytes, &limits), Err(err.clone()), "{id}");
            assert_eq!(outcome_whole(limits, &v.bytes), Outcome::Error(err.clone()));
        }
        assert_eq!(
            outcome_bytewise(limits, &v.bytes),
            outcome_whole(limits, &v.bytes),
            "{id}"
        );
        let reply = v.doc.get("reply").and_then(Json::str).unwrap();
        assert_eq!(reply_text(err.reply()), reply, "{id}");
        let server = v.doc.get("server").unwrap();
        let log = server.get("log").and_then(Json::str).unwrap();
        assert!(err.to_string().contains(log), "{id}: {err} lacks {log:?}");
        match (server.get("answer").unwrap(), err.reply()) {
            (Json::Null, Reply::Close) => {}
            (Json::Num(code), Reply::Status(s)) => assert!(s.starts_with(&code.to_string())),
            (answer, reply) => panic!("{id}: server answer {answer:?} but reply {reply:?}"),
        }
    }
}

#[test]
fn buffer_size_is_inclusive() {
    let limits = Limits {
        buffer_size: 4096,
        ..Limits::default()
    };
    // One var whose encoding is exactly 4096 bytes: 2 + 1 + 2 + 4091.
    let value = vec![b'v'; 4091];
    let p = encode_packet(0, 0, &[(b"K", &value)]).unwrap();
    assert_eq!(p.len(), 4 + 4096);
    assert!(matches!(decode(&p, &limits), Ok(Some(Packet::Request(_)))));
    let value = vec![b'v'; 4092];
    let p = encode_packet(0, 0, &[(b"K", &value)]).unwrap();
    assert_eq!(
        decode(&p, &limits),
        Err(DecodeError::BlockTooLarge {
            size: 4097,
            max: 4096
        })
    );
}

#[test]
fn bytes_after_a_bad_packet_do_not_change_the_verdict() {
    // A read that brings the bad packet and whatever followed it (pipelined bytes, a body) at once.
    for v in load_peer("malformed") {
        let limits = limits_from_json(v.doc.get("limits"));
        if let Outcome::Error(e) = outcome_whole(limits, &v.bytes) {
            let mut more = v.bytes.clone();
            more.extend_from_slice(&[0u8; 300]);
            assert_eq!(
                outcome_whole(limits, &more),
                Outcome::Error(e.clone()),
                "{}",
                v.id()
            );
            let (a, b) = more.split_at(v.bytes.len() / 2);
            assert_eq!(feed_chunks(limits, [a, b]), Outcome::Error(e), "{}", v.id());
        }
    }
}
