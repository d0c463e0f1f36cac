//! HTTP/1.x: the head parser's decisions, the smuggling shapes it refuses, the environ vars it
//! makes, the response framing, and properties (any split of a stream reads the same).

use proptest::collection::vec;
use proptest::prelude::*;
use rwsgi::protocol::http::conn::{transcript, Step};
use rwsgi::protocol::http::environ::{encode_vars, ConnInfo};
use rwsgi::protocol::http::response::{self, Exchange, Framing};
use rwsgi::protocol::http::{parse_head, BodyKind, Head, HttpError, Limits, Version};
use rwsgi::protocol::vars::Vars;

fn limits() -> Limits {
    Limits::default()
}

fn head(raw: &[u8]) -> Result<Option<Head>, HttpError> {
    parse_head(raw, &limits(), &mut Vec::new())
}

fn status(raw: &[u8]) -> Option<&'static str> {
    match head(raw) {
        Err(e) => e.status(),
        Ok(h) => panic!("accepted {:?}: {h:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn a_simple_get() {
    let raw = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nNEXT";
    let h = head(raw).unwrap().unwrap();
    assert_eq!(h.len, raw.len() - 4);
    assert_eq!(h.method.get(raw), b"GET");
    assert_eq!(h.target.get(raw), b"/a/b?x=1");
    assert_eq!(h.host.unwrap().get(raw), b"example.com");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.body, BodyKind::Empty);
    assert!(h.keep_alive && !h.expect_continue && !h.is_head);
}

#[test]
fn incomplete_heads_need_more() {
    for cut in 0..40 {
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(head(&raw[..cut.min(raw.len() - 1)]), Ok(None));
    }
}

#[test]
fn keep_alive_rules() {
    let ka = |raw: &[u8]| head(raw).unwrap().unwrap().keep_alive;
    assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n"
    ));
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
}

#[test]
fn framing_decisions() {
    let body = |raw: &[u8]| head(raw).unwrap().unwrap().body;
    assert_eq!(
        body(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n"),
        BodyKind::Length(12)
    );
    assert_eq!(
        body(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
        BodyKind::Empty
    );
    assert_eq!(
        body(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        BodyKind::Length(5)
    );
    assert_eq!(
        body(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"),
        BodyKind::Chunked
    );
}

#[test]
fn smuggling_shapes_are_400() {
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\nX-A: 1\r\n\r\n",
        b"GET / HTTP/1.1\nHost: h\n\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n",
        b"G\0T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n: empty-name\r\n\r\n",
    ] {
        assert_eq!(status(raw), Some("400 Bad Request"), "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn h2_preface_and_other_versions_are_505_at_once() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_eq!(status(preface), Some("505 HTTP Version Not Supported"));
    assert_eq!(
        status(&preface[..16]),
        Some("505 HTTP Version Not Supported")
    );
    assert_eq!(
        status(b"GET / HTTP/2.0\r\n"),
        Some("505 HTTP Version Not Supported")
    );
    assert_eq!(
        status(b"GET / HTTP/1.2\r\n"),
        Some("505 HTTP Version Not Supported")
    );
}

#[test]
fn oversize_line_is_414_and_oversize_block_431() {
    let lim = Limits {
        buffer_size: 64,
        limit_post: 0,
    };
    let long_line = [b"GET /".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(
        parse_head(&long_line, &lim, &mut Vec::new()),
        Err(HttpError::UriTooLong { max: 64 })
    );
    let long_head = [b"GET / HTTP/1.1\r\nHost: h\r\nX: ".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(
        parse_head(&long_head, &lim, &mut Vec::new()),
        Err(HttpError::HeadersTooLarge { max: 64 })
    );
    // Decided as soon as the limit is reached, not when the head ends.
    assert!(parse_head(&long_head[..64], &lim, &mut Vec::new()).is_err());
    assert_eq!(
        parse_head(&long_head[..63], &lim, &mut Vec::new()),
        Ok(None)
    );
    let many: Vec<u8> = [b"GET / HTTP/1.1\r\nHost: h\r\n".as_slice()]
        .into_iter()
        .chain(std::iter::repeat_n(b"A: b\r\n".as_slice(), 120))
        .chain([b"\r\n".as_slice()])
        .flatten()
        .copied()
        .collect();
    assert_eq!(status(&many), Some("431 Request Header Fields Too Large"));
}

#[test]
fn limit_post_is_413_from_the_head() {
    let lim = Limits {
        buffer_size: 4096,
        limit_post: 10,
    };
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(
        parse_head(raw, &lim, &mut Vec::new()).unwrap_err().status(),
        Some("413 Content Too Large")
    );
}

#[test]
fn expect() {
    let h =
        head(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.unwrap().unwrap().expect_continue);
    let h = head(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert!(!h.unwrap().unwrap().expect_continue, "ignored on HTTP/1.0");
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n"),
        Some("417 Expectation Failed")
    );
}

#[test]
fn absolute_and_asterisk_forms() {
    let raw = b"GET http://Example.org:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n";
    let h = head(raw).unwrap().unwrap();
    assert_eq!(h.path.get(raw), b"/p?q=1");
    assert_eq!(h.host.unwrap().get(raw), b"Example.org:8080");
    assert!(h.host_from_target);
    let raw = b"GET https://h?x HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(head(raw).unwrap().unwrap().path.get(raw), b"?x");
    let raw = b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(head(raw).unwrap().unwrap().path.get(raw), b"*");
}

fn vars_of(raw: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let h = parse_head(raw, &limits(), &mut fields).unwrap().unwrap();
    let conn = ConnInfo {
        remote_addr: b"10.0.0.1",
        remote_port: b"5555",
        server_name: b"0.0.0.0",
        server_port: b"8000",
    };
    let mut out = Vec::new();
    encode_vars(raw, &h, &fields, &conn, &mut out).unwrap();
    rwsgi::protocol::vars::validate(&out).unwrap();
    Vars::new(&out)
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn get<'a>(vars: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    vars.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn environ_vars() {
    let raw = b"POST /a%20b/%2e%2e/c?x=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\
        Content-Type: text/plain\r\nContent-Length: 3\r\nX-Forwarded-For: 1.2.3.4\r\n\
        X_Forwarded_For: 6.6.6.6\r\nProxy: http://evil\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n";
    let v = vars_of(raw);
    assert_eq!(get(&v, "REQUEST_METHOD"), ["POST"]);
    assert_eq!(get(&v, "REQUEST_URI"), ["/a%20b/%2e%2e/c?x=%20"]);
    assert_eq!(get(&v, "PATH_INFO"), ["/a b/../c"]);
    assert_eq!(get(&v, "QUERY_STRING"), ["x=%20"]);
    assert_eq!(get(&v, "SERVER_PROTOCOL"), ["HTTP/1.1"]);
    assert_eq!(get(&v, "SERVER_NAME"), ["example.com"]);
    assert_eq!(get(&v, "SERVER_PORT"), ["8000"]);
    assert_eq!(get(&v, "REMOTE_ADDR"), ["10.0.0.1"]);
    assert_eq!(get(&v, "CONTENT_TYPE"), ["text/plain"]);
    assert_eq!(get(&v, "CONTENT_LENGTH"), ["3"]);
    assert_eq!(get(&v, "HTTP_HOST"), ["example.com:8080"]);
    assert_eq!(
        get(&v, "HTTP_X_FORWARDED_FOR"),
        ["1.2.3.4"],
        "the underscore twin is dropped"
    );
    assert_eq!(get(&v, "HTTP_PROXY"), Vec::<&str>::new());
    assert_eq!(
        get(&v, "HTTP_COOKIE"),
        ["a=1", "b=2"],
        "joined by the environ builder"
    );
    assert!(get(&v, "HTTP_CONTENT_TYPE").is_empty() && get(&v, "HTTP_CONTENT_LENGTH").is_empty());
}

#[test]
fn environ_of_absolute_form_and_nul() {
    let v = vars_of(b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(get(&v, "HTTP_HOST"), ["a.example"]);
    assert_eq!(get(&v, "SERVER_NAME"), ["a.example"]);
    assert_eq!(get(&v, "PATH_INFO"), ["/x"]);
    let v = vars_of(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(get(&v, "SERVER_NAME"), ["0.0.0.0"]);
    let raw = b"GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut fields = Vec::new();
    let h = parse_head(raw, &limits(), &mut fields).unwrap().unwrap();
    let got = encode_vars(raw, &h, &fields, &ConnInfo::default(), &mut Vec::new());
    assert_eq!(got.unwrap_err().status(), Some("400 Bad Request"));
}

fn ex(version: Version, is_head: bool, keep_alive: bool) -> Exchange {
    Exchange {
        version,
        is_head,
        keep_alive,
    }
}

#[test]
fn response_framing() {
    let v11 = ex(Version::Http11, false, true);
    assert_eq!(
        response::plan(v11, 200, Some(5)).framing,
        Framing::Length(5)
    );
    assert_eq!(response::plan(v11, 200, None).framing, Framing::Chunked);
    assert_eq!(response::plan(v11, 204, None).framing, Framing::NoBody);
    assert_eq!(response::plan(v11, 304, Some(9)).framing, Framing::NoBody);
    assert_eq!(
        response::plan(ex(Version::Http11, true, true), 200, None).framing,
        Framing::NoBody
    );
    let p = response::plan(ex(Version::Http10, false, true), 200, None);
    assert_eq!((p.framing, p.keep_alive), (Framing::Close, false));
    assert!(response::plan(ex(Version::Http10, false, true), 200, Some(1)).keep_alive);
}

#[test]
fn response_heads() {
    let e = ex(Version::Http11, false, false);
    let p = response::plan(e, 200, None);
    let mut out = Vec::new();
    let hs: [(&[u8], &[u8]); 3] = [
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"keep-alive"),
        (b"Transfer-Encoding", b"gzip"),
    ];
    response::push_head(
        &mut out,
        e,
        p,
        b"200 OK",
        hs,
        &[(b"X-Served-By".to_vec(), b"rwsgi".to_vec())],
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\nX-Served-By: rwsgi\r\n\r\n"
    );
    let e = ex(Version::Http10, true, true);
    let hs: [(&[u8], &[u8]); 1] = [(b"Content-Length", b"42")];
    let p = response::plan(e, 200, response::app_content_length(hs));
    let mut out = Vec::new();
    response::push_head(&mut out, e, p, b"200", hs, &[]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nConnection: keep-alive\r\n\r\n"
    );
    let mut out = Vec::new();
    response::push_chunk_size(&mut out, 0x1a2);
    assert_eq!(out, b"1a2\r\n");
}

#[test]
fn pipelined_requests_come_out_in_order() {
    let stream = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n\
        POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc\
        POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n\
        GET /4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n\
        GET /5 HTTP/1.1\r\nHost: h\r\n\r\n";
    let t = transcript(limits(), [&stream[..]]);
    let kinds: Vec<String> = t
        .iter()
        .map(|s| match s {
            Step::Head(..) => "H".into(),
            Step::Body(b) => String::from_utf8_lossy(b).into_owned(),
            Step::End => "E".into(),
            Step::Closed => "C".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        ["H", "E", "H", "abc", "E", "H", "def", "E", "H", "E", "C"]
    );
}

#[test]
fn eof_mid_request_is_truncated() {
    let t = transcript(
        limits(),
        [&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc"[..]],
    );
    assert_eq!(t.last(), Some(&Step::Eof(Some(HttpError::Truncated))));
    let t = transcript(limits(), [&b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"[..]]);
    assert_eq!(t.last(), Some(&Step::Eof(None)));
}

// ---- properties ----

/// One well-formed request: its bytes.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let path = "/[a-z0-9%._~-]{0,20}(\\?[a-z=&0-9]{0,10})?";
    let header = ("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,30}").prop_filter(
        "framing fields are added by the strategy",
        |(n, _)| {
            let n = n.to_ascii_lowercase();
            ![
                "content-length",
                "transfer-encoding",
                "host",
                "expect",
                "connection",
            ]
            .contains(&n.as_str())
        },
    );
    let body = prop_oneof![
        Just(None),
        vec(any::<u8>(), 0..200).prop_map(|b| Some((b, false))),
        vec(any::<u8>(), 0..200).prop_map(|b| Some((b, true))),
    ];
    (path, vec(header, 0..6), body, any::<bool>(), 1usize..50).prop_map(
        |(path, headers, body, close, chunk)| {
            let mut r = format!("POST {path} HTTP/1.1\r\nHost: h\r\n").into_bytes();
            for (n, v) in headers {
                r.extend_from_slice(format!("{n}: {}\r\n", v.trim()).as_bytes());
            }
            if close {
                r.extend_from_slice(b"Connection: close\r\n");
            }
            match body {
                None => r.extend_from_slice(b"\r\n"),
                Some((b, false)) => {
                    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
                    r.extend_from_slice(&b);
                }
                Some((b, true)) => {
                    r.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for c in b.chunks(chunk) {
                        r.extend_from_slice(format!("{:x};e=1\r\n", c.len()).as_bytes());
                        r.extend_from_slice(c);
                        r.extend_from_slice(b"\r\n");
                    }
                    r.extend_from_slice(b"0\r\nT: 1\r\n\r\n");
                }
            }
            r
        },
    )
}

/// Pipelined requests, possibly with one byte changed.
fn http_stream() -> impl Strategy<Value = Vec<u8>> {
    let good = vec(request(), 1..4).prop_map(|rs| rs.concat());
    let mutated = (
        vec(request(), 1..3),
        any::<prop::sample::Index>(),
        any::<u8>(),
    )
        .prop_map(|(rs, at, byte)| {
            let mut s = rs.concat();
            let i = at.index(s.len());
            s[i] = byte;
            s
        });
    prop_oneof![good, mutated]
}

fn http_limits() -> impl Strategy<Value = Limits> {
    (
        prop_oneof![Just(4096usize), 40usize..400],
        prop_oneof![Just(0u64), 1u64..300],
    )
        .prop_map(|(buffer_size, limit_post)| Limits {
            buffer_size,
            limit_post,
        })
}

fn split_at_cuts<'a>(s: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(s.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for a in at {
        out.push(&s[last..a]);
        last = a;
    }
    out.push(&s[last..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_split_reads_like_the_whole(
        s in http_stream(),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
        lim in http_limits(),
    ) {
        let whole = transcript(lim, [&s[..]]);
        prop_assert_eq!(&transcript(lim, split_at_cuts(&s, &cuts)), &whole);
        prop_assert_eq!(&transcript(lim, s.chunks(1)), &whole);
    }

    #[test]
    fn well_formed_pipelines_read_completely(rs in vec(request(), 1..4)) {
        let s = rs.concat();
        let t = transcript(Limits::default(), [&s[..]]);
        let heads = t.iter().filter(|x| matches!(x, Step::Head(..))).count();
        let ends = t.iter().filter(|x| matches!(x, Step::End)).count();
        prop_assert!(!t.iter().any(|x| matches!(x, Step::Error(_))), "{:?}", t);
        prop_assert_eq!(heads, ends);
        prop_assert!(heads >= 1);
    }
}
