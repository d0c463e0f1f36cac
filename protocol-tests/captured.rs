//! Captured vectors: packets real peers sent to a fake backend (`capture/regenerate.py`), each
//! decoded by rwsgi exactly as the capture tool's independent parser recorded it.

use crate::json::Json;
use crate::support::{
    captured, error_from_json, latin1, load_peer, outcome_bytewise, outcome_whole, Outcome, Vector,
};
use rwsgi::protocol::{decode, DecodeError, Limits, Packet, RequestHead};

/// What the issue asks to be captured, per peer. A missing file fails here, not silently.
const REQUIRED: &[(&str, &[&str])] = &[
    (
        "nginx-tcp",
        &[
            "get_query",
            "percent_path",
            "post_body",
            "chunked_upload",
            "cookie_10k",
            "cookie_60k",
            "dup_headers",
            "https_on",
            "uwsgi_param_extras",
            "modifier1_30",
            "modifier1_5",
        ],
    ),
    (
        "nginx-unix",
        &[
            "get_query",
            "percent_path",
            "post_body",
            "chunked_upload",
            "cookie_10k",
            "cookie_60k",
            "dup_headers",
            "uwsgi_param_extras",
            "modifier1_30",
            "modifier1_5",
        ],
    ),
    (
        "apache",
        &[
            "get_query",
            "percent_path",
            "post_body",
            "chunked_upload",
            "dup_headers",
            "cookie_10k",
            "authorization",
            "script_name_mount",
        ],
    ),
    (
        "uwsgi-router",
        &[
            "get_query",
            "percent_path",
            "post_body",
            "chunked_upload",
            "dup_headers",
            "cookie_10k",
        ],
    ),
    (
        "uwsgi_curl",
        &["get_query", "post_data", "headers", "unix_get"],
    ),
];

fn expected_pairs(v: &Vector) -> Vec<(Vec<u8>, Vec<u8>)> {
    let vars = v.expected().get("vars").and_then(Json::arr).unwrap();
    vars.iter()
        .map(|pair| {
            let pair = pair.arr().unwrap();
            (
                latin1(pair[0].str().unwrap()),
                latin1(pair[1].str().unwrap()),
            )
        })
        .collect()
}

fn num(v: &Vector, key: &str) -> i64 {
    v.expected()
        .get(key)
        .and_then(Json::num)
        .unwrap_or_else(|| panic!("{}: expected.{key}", v.id()))
}

/// Decode a captured vector under the default limits and return its head.
fn head_of(v: &Vector) -> RequestHead {
    match decode(&v.bytes, &Limits::default()) {
        Ok(Some(Packet::Request(head))) => head,
        other => panic!("{}: expected a request, got {other:?}", v.id()),
    }
}

/// All values of `key`, in wire order.
fn values<'a>(v: &'a Vector, key: &str) -> Vec<&'a [u8]> {
    head_of(v)
        .vars(&v.bytes)
        .filter(|(k, _)| *k == key.as_bytes())
        .map(|(_, val)| val)
        .collect()
}

fn one(peer: &str, name: &str) -> Vector {
    load_peer(peer)
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector {peer}/{name}"))
}

#[test]
fn every_required_vector_was_captured() {
    for (peer, names) in REQUIRED {
        let have: Vec<String> = load_peer(peer).into_iter().map(|v| v.name).collect();
        for name in *names {
            assert!(
                have.iter().any(|h| h == name),
                "missing vector {peer}/{name}"
            );
        }
    }
}

#[test]
fn every_sidecar_records_its_provenance() {
    for v in captured() {
        for key in [
            "program",
            "version",
            "transport",
            "config",
            "client_request",
        ] {
            let s = v.doc.get(key).and_then(Json::str).unwrap_or("");
            assert!(!s.is_empty(), "{}: no {key}", v.id());
        }
    }
}

#[test]
fn captured_vectors_decode_as_recorded() {
    let all = captured();
    assert!(all.len() >= 38, "only {} captured vectors", all.len());
    for v in &all {
        let limits = Limits::default();
        if v.expected().get("empty_connection").is_some() {
            assert!(v.bytes.is_empty(), "{}", v.id());
            assert_eq!(decode(&v.bytes, &limits), Ok(None));
            assert_eq!(outcome_whole(limits, &v.bytes), Outcome::Eof(None));
            continue;
        }
        if let Some(err) = v.doc.get("expected_error") {
            let err = error_from_json(err);
            assert_eq!(decode(&v.bytes, &limits), Err(err.clone()), "{}", v.id());
            assert_eq!(outcome_bytewise(limits, &v.bytes), Outcome::Error(err));
            continue;
        }
        let head = head_of(v);
        let id = v.id();
        assert_eq!(i64::from(head.modifier1), num(v, "modifier1"), "{id}");
        assert_eq!(i64::from(head.modifier2), num(v, "modifier2"), "{id}");
        assert_eq!(head.vars_len as i64, num(v, "datasize"), "{id}");
        let expected = expected_pairs(v);
        assert_eq!(head.var_count, expected.len(), "{id}");
        let got: Vec<(Vec<u8>, Vec<u8>)> = head
            .vars(&v.bytes)
            .map(|(k, val)| (k.to_vec(), val.to_vec()))
            .collect();
        assert_eq!(got, expected, "{id}");
        assert_eq!(head.content_length as i64, num(v, "content_length"), "{id}");
        let body = latin1(v.expected().get("body").and_then(Json::str).unwrap());
        let start = head.body_start();
        assert_eq!(&v.bytes[start..], &body[..], "{id}: body");
        // The reader, fed one byte per read, agrees and holds exactly the packet.
        assert_eq!(
            outcome_bytewise(limits, &v.bytes),
            Outcome::Ready(Packet::Request(head.clone())),
            "{id}"
        );
        assert_eq!(
            outcome_whole(limits, &v.bytes),
            outcome_bytewise(limits, &v.bytes)
        );
    }
}

#[test]
fn nginx_dechunks_but_still_forwards_transfer_encoding() {
    for peer in ["nginx-tcp", "nginx-unix"] {
        let v = one(peer, "chunked_upload");
        let head = head_of(&v);
        assert_eq!(head.content_length, 20);
        assert_eq!(&v.bytes[head.body_start()..], b"hello chunked world\n");
        assert_eq!(values(&v, "HTTP_TRANSFER_ENCODING"), [b"chunked"]);
    }
}

#[test]
fn nginx_1_22_sends_duplicate_keys_and_drops_underscored_headers() {
    for peer in ["nginx-tcp", "nginx-unix"] {
        let v = one(peer, "dup_headers");
        assert_eq!(values(&v, "HTTP_X_DUP"), [b"1", b"2"]);
        assert_eq!(values(&v, "HTTP_COOKIE"), [b"a=1", b"b=2"]);
        assert!(values(&v, "HTTP_UNDER_SCORE").is_empty());
    }
}

#[test]
fn nginx_decodes_path_info_but_not_request_uri() {
    let v = one("nginx-tcp", "percent_path");
    assert_eq!(values(&v, "PATH_INFO"), [&b"/path/x y/caf\xc3\xa9/a/b"[..]]);
    assert_eq!(
        values(&v, "REQUEST_URI"),
        [&b"/path/x%20y/caf%C3%A9/a%2Fb?next=%2Fhome%3Fx%3D1"[..]]
    );
}

#[test]
fn nginx_sends_empty_params_but_skips_if_not_empty() {
    let v = one("nginx-tcp", "get_query");
    assert_eq!(values(&v, "CONTENT_LENGTH"), [b""]);
    assert_eq!(values(&v, "CONTENT_TYPE"), [b""]);
    assert!(values(&v, "HTTPS").is_empty());
    assert_eq!(head_of(&v).content_length, 0);
    let v = one("nginx-tcp", "uwsgi_param_extras");
    assert_eq!(values(&v, "X_EMPTY"), [b""]);
    assert!(values(&v, "X_SKIPPED").is_empty());
    assert_eq!(values(&v, "X_DEPLOY"), [b"blue green"]);
    assert_eq!(values(&v, "SCRIPT_NAME"), [b"/extras"]);
}

#[test]
fn nginx_https_on_over_tls() {
    let v = one("nginx-tcp", "https_on");
    assert_eq!(values(&v, "HTTPS"), [b"on"]);
    assert_eq!(values(&v, "REQUEST_SCHEME"), [b"https"]);
}

#[test]
fn nginx_modifier1_30_is_served_and_5_is_refused() {
    let v = one("nginx-unix", "modifier1_30");
    assert_eq!(head_of(&v).modifier1, 30);
    let v = one("nginx-unix", "modifier1_5");
    assert_eq!(
        decode(&v.bytes, &Limits::default()),
        Err(DecodeError::UnknownModifier {
            modifier1: 5,
            modifier2: 9
        })
    );
}

#[test]
fn nginx_60k_cookie_fits_the_default_buffer_but_not_uwsgis() {
    let v = one("nginx-tcp", "cookie_60k");
    let head = head_of(&v);
    assert!(head.vars_len > 60 * 1024);
    assert_eq!(values(&v, "HTTP_COOKIE")[0].len(), 2 + 60 * 1024);
    let small = Limits {
        buffer_size: 4096,
        ..Limits::default()
    };
    assert_eq!(
        decode(&v.bytes, &small),
        Err(DecodeError::BlockTooLarge {
            size: head.vars_len,
            max: 4096
        })
    );
    // Refused from the header alone: no need to wait for the 60 KiB.
    assert_eq!(decode(&v.bytes[..4], &small), decode(&v.bytes, &small));
}

#[test]
fn apache_sets_script_name_and_passes_authorization() {
    let v = one("apache", "script_name_mount");
    assert_eq!(values(&v, "SCRIPT_NAME"), [b"/app"]);
    assert_eq!(values(&v, "PATH_INFO"), [b"/sub/page"]);
    let v = one("apache", "authorization");
    assert_eq!(values(&v, "HTTP_AUTHORIZATION"), [b"Basic dXNlcjpwYXNz"]);
    let v = one("apache", "chunked_upload");
    assert!(
        v.bytes.is_empty(),
        "httpd answers 411 and sends the backend nothing"
    );
}

#[test]
fn uwsgi_router_loses_a_chunked_body() {
    let v = one("uwsgi-router", "chunked_upload");
    assert!(values(&v, "CONTENT_LENGTH").is_empty());
    assert_eq!(values(&v, "HTTP_TRANSFER_ENCODING"), [b"chunked"]);
    assert_eq!(head_of(&v).content_length, 0);
}

#[test]
fn uwsgi_curl_sends_a_body_without_content_length() {
    let v = one("uwsgi_curl", "post_data");
    assert_eq!(head_of(&v).content_length, 0);
    assert_eq!(
        v.doc.get("extra_after_body").and_then(Json::str),
        Some("a=1&b=2")
    );
    let v = one("uwsgi_curl", "headers");
    assert_eq!(values(&v, "HTTP_X-TEST"), [b"v"]);
}
