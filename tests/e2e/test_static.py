"""--static-map and friends: files the server sends itself (sendfile, no Python), over HTTP and
through nginx on the uwsgi socket; never a file outside the mapped directory."""

import gzip
import http.client
import os
import socket
import time
from pathlib import Path

import pytest

from harness import free_port

HELLO = str(Path(__file__).resolve().parents[2] / "examples" / "hello.py")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.css").write_text("body { color: red }\n")
    (root / "sub" / "index.html").write_text("<p>index</p>\n")
    (root / "big.txt").write_bytes(b"0123456789" * 1000)
    (root / "big.txt.gz").write_bytes(gzip.compress(b"0123456789" * 1000))
    (tmp_path / "secret").write_text("secret\n")
    os.symlink(tmp_path / "secret", root / "link")
    return root


@pytest.fixture
def static_server(server, tree):
    def start(*extra):
        port = free_port()
        srv = server("--http-socket", f"127.0.0.1:{port}", "--wsgi-file", HELLO,
                     "--static-map", f"/static={tree}", "--static-index", "index.html", *extra)
        return srv, port
    return start


def get(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    return r, r.read()


def raw_status(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out.split(b"\r\n", 1)[0]


def test_serves_files_with_validators(static_server):
    srv, port = static_server("--static-expires-type", "text/css=3600")
    r, body = get(port, "/static/a.css")
    assert r.status == 200 and body == b"body { color: red }\n"
    assert r.getheader("Content-Type") == "text/css; charset=utf-8"
    assert r.getheader("Content-Length") == str(len(body))
    assert r.getheader("Cache-Control") == "max-age=3600" and r.getheader("Expires")
    etag, modified = r.getheader("ETag"), r.getheader("Last-Modified")
    assert etag and modified
    r, body = get(port, "/static/a.css", {"If-None-Match": etag})
    assert r.status == 304 and body == b""
    r, body = get(port, "/static/a.css", {"If-Modified-Since": modified})
    assert r.status == 304
    r, body = get(port, "/static/a.css", method="HEAD")
    assert r.status == 200 and body == b"" and r.getheader("Content-Length") == "20"
    r, body = get(port, "/static/sub/")
    assert body == b"<p>index</p>\n"
    assert srv.wait_for_log(r"static GET /static/a.css => 200")


def test_ranges(static_server):
    _, port = static_server()
    r, body = get(port, "/static/big.txt", {"Range": "bytes=2-5"})
    assert r.status == 206 and body == b"2345" and r.getheader("Content-Range") == "bytes 2-5/10000"
    r, body = get(port, "/static/big.txt", {"Range": "bytes=-3"})
    assert r.status == 206 and body == b"789"
    r, _ = get(port, "/static/big.txt", {"Range": "bytes=20000-"})
    assert r.status == 416 and r.getheader("Content-Range") == "bytes */10000"


def test_gzip_sibling(static_server):
    _, port = static_server("--static-gzip-all")
    r, body = get(port, "/static/big.txt", {"Accept-Encoding": "gzip, br"})
    assert r.getheader("Content-Encoding") == "gzip" and gzip.decompress(body) == b"0123456789" * 1000
    r, body = get(port, "/static/big.txt")
    assert r.getheader("Content-Encoding") is None and len(body) == 10000


@pytest.mark.parametrize("path", [b"/static/../secret", b"/static/%2e%2e/secret", b"/static/%2E%2E%2Fsecret",
                                  b"/static/sub/..%2f..%2fsecret", b"/static/link"])
def test_never_outside_the_directory(static_server, path):
    srv, port = static_server()
    status = raw_status(port, path)
    assert status in (b"HTTP/1.1 403 Forbidden", b"HTTP/1.1 400 Bad Request"), status
    assert "secret\n" not in srv.log()
    assert srv.wait_for_log(r"static file refused")


def test_nul_is_refused_and_missing_files_go_to_the_app(static_server):
    _, port = static_server()
    assert raw_status(port, b"/static/a%00.css").startswith(b"HTTP/1.1 400")
    r, body = get(port, "/static/missing.css")
    assert body == b"Hello World\n"
    r, body = get(port, "/elsewhere")
    assert body == b"Hello World\n"


def test_keep_alive_after_a_static_file(static_server):
    _, port = static_server()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in ["/static/a.css", "/", "/static/a.css"]:
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 200 and r.read()


def test_static_map_on_the_uwsgi_socket(stack, tree):
    s = stack("--wsgi-file", HELLO, "--static-map", f"/static={tree}")
    resp = s.get("/static/a.css")
    assert resp.status == 200 and resp.body == b"body { color: red }\n"
    assert s.get("/").body == b"Hello World\n"


def test_a_small_file_goes_out_with_its_head_not_after_a_delayed_ack(static_server):
    """The head and a small file leave in one packet: sent apart, Nagle's algorithm holds the file
    until the client acknowledges the head, which a client delays by 40 ms or more on Linux; over a
    kept-alive connection every response then took over 40 ms instead of well under one."""
    _, port = static_server()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    took = []
    for _ in range(21):
        started = time.monotonic()
        c.request("GET", "/static/a.css")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"body { color: red }\n"
        took.append(time.monotonic() - started)
    median = sorted(took)[len(took) // 2]
    assert median < 0.02, f"median {median * 1000:.1f} ms per request"
