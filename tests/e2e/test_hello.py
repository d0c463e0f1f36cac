"""The basic path: nginx -> uwsgi protocol -> rwsgi -> a WSGI app, over TCP and a unix socket."""

from harness import example


def test_hello_through_nginx(stack, transport):
    s = stack("--wsgi-file", example("hello.py"), transport=transport)
    resp = s.get("/")
    assert resp.status == 200, s.diagnostics()
    assert resp.reason == "OK"
    assert resp.body == b"Hello World\n"
    assert resp.header("Content-Type") == "text/plain"
    assert resp.header("Content-Length") == "12"
    # Both headers of the same name reach the client, in order.
    assert resp.header_all("X-Multi") == ["a", "b"]
    assert resp.header("Server").startswith("nginx")


def test_hello_many_sequential_requests(stack, transport):
    s = stack("--wsgi-file", example("hello.py"), transport=transport)
    for i in range(50):
        resp = s.get("/n/%d" % i)
        assert (resp.status, resp.body) == (200, b"Hello World\n"), s.diagnostics()


def test_hello_raw_reply_is_a_status_line_headers_and_body(server, transport):
    srv = server("--wsgi-file", example("hello.py"), transport=transport)
    status, headers, body = srv.get("/hello")
    assert status == "HTTP/1.1 200 OK"
    assert ("Content-Type", "text/plain") in headers
    assert [v for k, v in headers if k == "X-Multi"] == ["a", "b"]
    assert body == b"Hello World\n"


def test_head_request_has_no_body(stack):
    s = stack("--wsgi-file", example("hello.py"))
    resp = s.request("HEAD", "/")
    assert resp.status == 200
    assert resp.body == b""
