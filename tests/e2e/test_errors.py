"""What the client and the log see when the app misbehaves (examples/behaviour.py).

The rule: a broken app gives a real HTTP 500 from the server (never a 502 from
nginx because the backend sent nothing or garbage), one traceback in the log,
and the server keeps serving.
"""

import http.client
import os
import re
import uuid

import uwsgi_wire as wire
from harness import example

BEHAVIOUR = example("behaviour.py")


def test_exception_before_start_response_is_a_500_with_one_traceback(stack, transport):
    s = stack("--wsgi-file", BEHAVIOUR, transport=transport)
    tag = uuid.uuid4().hex
    resp = s.get("/raise?tag=" + tag)
    assert resp.status == 500, f"got {resp.status} (uWSGI sends nothing and nginx says 502)\n{s.diagnostics()}"
    assert tag.encode() not in resp.body, "the traceback must not be sent to the client"
    message = "RuntimeError: boom before start_response " + tag
    assert s.server.wait_for_log(re.escape(message)), s.diagnostics()
    log = s.server.log()
    assert log.count(message) == 1, log
    assert log.count("Traceback (most recent call last)") == 1, log
    # The server still answers, on the backend socket and through nginx.
    s.server.assert_serves("/hello")
    assert s.get("/hello").body == b"Hello World\n"


def test_exception_after_part_of_a_declared_length_keeps_the_bytes_sent(stack):
    """With a Content-Length the app declared, a plain close is enough for nginx to see the body
    is short: it passes on the 12 bytes sent and cuts the client's response. A reset (what an
    unknown length needs) would make nginx throw those bytes away (the client got 0 of 12)."""
    s = stack("--wsgi-file", BEHAVIOUR)
    conn = s.nginx.connection(timeout=30)
    try:
        conn.request("GET", "/raise-after-length")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Length") == "100"
        try:
            body = resp.read()
            complete = True
        except http.client.IncompleteRead as err:
            body = err.partial
            complete = False
    finally:
        conn.close()
    assert not complete, f"a short body must not look complete (got {body!r})\n{s.diagnostics()}"
    assert body == b"twelve bytes", (
        f"the bytes the app sent before failing are lost: got {body!r}\n{s.diagnostics()}"
    )
    assert s.server.wait_for_log(r"RuntimeError: boom after 12 of 100"), s.diagnostics()
    assert s.get("/hello").status == 200


def test_exception_after_first_chunk_cuts_the_response_short(stack):
    """Once the head is out a 500 is impossible; the client must still learn the body is cut.

    The response has no Content-Length, so a plain close looks to nginx like a normal end
    of body and the client gets a complete-looking, truncated 200. Aborting the upstream
    connection (a TCP reset) makes nginx abort the client's response instead.
    """
    s = stack("--wsgi-file", BEHAVIOUR)
    conn = s.nginx.connection(timeout=30)
    try:
        conn.request("GET", "/raise-after")
        resp = conn.getresponse()
        assert resp.status == 200
        try:
            body = resp.read()
            complete = True
        except http.client.IncompleteRead as err:
            body = err.partial
            complete = False
    finally:
        conn.close()
    assert b"part1\n".startswith(body), body
    assert not complete, (
        "a response whose app failed midway must not look complete to the client "
        f"(got a clean end after {body!r})\n{s.diagnostics()}"
    )
    assert s.server.wait_for_log(r"RuntimeError: boom after the first chunk"), s.diagnostics()
    assert s.server.log().count("Traceback (most recent call last)") == 1
    assert s.get("/hello").status == 200


def test_no_start_response_is_a_500_never_a_bare_body(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    resp = s.get("/no-start-response")
    assert resp.status == 500, s.diagnostics()
    assert b"no start_response" not in resp.body
    raw = s.server.raw(wire.packet(wire.request_vars("GET", "/no-start-response")))
    assert raw.startswith(b"HTTP/1.1 500 "), f"a reply without a status line: {raw[:80]!r}"
    s.server.assert_serves("/hello")


def test_str_body_is_a_500(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    resp = s.get("/str-body")
    assert resp.status == 500, s.diagnostics()
    assert b"a str body" not in resp.body
    raw = s.server.raw(wire.packet(wire.request_vars("GET", "/str-body")))
    assert raw.startswith(b"HTTP/1.1 500 "), raw[:80]
    s.server.assert_serves("/hello")


def test_header_injection_is_refused(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    resp = s.get("/inject")
    assert resp.status == 500, s.diagnostics()
    assert resp.header("Injected") is None
    assert resp.header("X-Bad") is None
    raw = s.server.raw(wire.packet(wire.request_vars("GET", "/inject")))
    assert raw.startswith(b"HTTP/1.1 500 "), raw[:200]
    assert b"Injected" not in raw
    s.server.assert_serves("/hello")


def test_write_callable(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    resp = s.get("/write")
    assert (resp.status, resp.body) == (200, b"written-returned"), s.diagnostics()


def test_start_response_with_exc_info_replaces_the_headers(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    resp = s.get("/exc-info")
    assert resp.status == 500, s.diagnostics()
    assert resp.reason == "Oops"
    assert resp.header("B") == "2"
    assert resp.header("A") is None
    assert resp.body == b"exc-info body"


def test_unknown_route_is_the_apps_404(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    resp = s.get("/nope")
    assert (resp.status, resp.body) == (404, b"no such route\n")


def test_pid_and_thread_name(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    pid = int(s.get("/pid").body)
    assert pid > 1 and pid != os.getpid()
    assert s.get("/threads").body.strip() != b""
