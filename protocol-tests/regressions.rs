//! Inputs that once broke the protocol layer, found by the property tests and fuzzers, each
//! named after what it broke. Every one reproduces the original failure against the unfixed code.

use rwsgi::protocol::response::{push_status_line, status_protocol};

/// proptest `a_checked_status_and_headers_make_exactly_their_lines`: a request whose
/// SERVER_PROTOCOL is `HTTP/\n` (any peer can send it on the uwsgi socket) was echoed into the
/// status line, splitting the response head. Now anything but visible ASCII falls back to HTTP/1.0.
#[test]
fn regression_server_protocol_with_lf_split_the_status_line() {
    let mut out = Vec::new();
    push_status_line(&mut out, status_protocol(Some(b"HTTP/\n")), b"100 ");
    assert_eq!(out, b"HTTP/1.0 100 \r\n");
    for bad in [
        &b"HTTP/1.1\r\nX: y"[..],
        b"HTTP/1.1 ",
        b"HTTP/\x00",
        b"HTTP/1.1\x7f",
    ] {
        assert_eq!(status_protocol(Some(bad)), b"HTTP/1.0", "{bad:?}");
    }
    assert_eq!(status_protocol(Some(b"HTTP/1.1")), b"HTTP/1.1");
    assert_eq!(status_protocol(Some(b"HTTP/2.0")), b"HTTP/2.0");
}
