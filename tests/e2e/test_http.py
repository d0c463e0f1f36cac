"""--http-socket: rwsgi speaking HTTP/1.1 to clients directly (curl, http.client, raw sockets).

Every server here also has its uwsgi --socket (the fixture waits for its PING); the HTTP socket is
a second listener on a free port.
"""

import http.client
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = str(EXAMPLES / "hello.py")
BEHAVIOUR = str(EXAMPLES / "behaviour.py")


@pytest.fixture
def http_server(server):
    """Factory: `http_server(*args)` -> (server, port) with `--http-socket 127.0.0.1:port`."""

    def start(*args):
        port = free_port()
        srv = server("--http-socket", f"127.0.0.1:{port}", *args)
        return srv, port

    return start


def raw(port, data, timeout=5.0, pause=None):
    """Send `data` (bytes, or a list of pieces sent `pause` seconds apart) and read until the
    server closes or `timeout` passes. Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        for piece in data if isinstance(data, list) else [data]:
            s.sendall(piece)
            if pause:
                time.sleep(pause)
        out = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                got = s.recv(65536)
            except socket.timeout:
                return out, False
            if not got:
                return out, True
            out += got
        return out, False
    finally:
        s.close()


def test_get_head_and_versions(http_server):
    _, port = http_server("--wsgi-file", HELLO)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    assert (r.status, r.read(), r.getheader("Content-Length")) == (200, b"Hello World\n", "12")
    assert r.version == 11 and not r.will_close
    c.request("HEAD", "/")
    r = c.getresponse()
    assert (r.status, r.read(), r.getheader("Content-Length")) == (200, b"", "12")
    out, closed = raw(port, b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nHello World\n") and closed
    out, closed = raw(port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=1.5)
    assert b"Connection: keep-alive\r\n" in out and not closed


def test_keep_alive_reuses_one_connection(http_server):
    srv, port = http_server("--wsgi-file", BEHAVIOUR)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ports = set()
    for i in range(20):
        c.request("GET", f"/environ?i={i}")
        r = c.getresponse()
        env = json.loads(r.read())["environ"]
        assert env["QUERY_STRING"] == f"i={i}"
        ports.add(env["REMOTE_PORT"])
    assert len(ports) == 1, "every request came over the same connection"
    c.request("GET", "/", headers={"Connection": "close"})
    r = c.getresponse()
    assert r.read() and r.getheader("Connection") == "close"


def test_environ_over_http(http_server):
    _, port = http_server("--wsgi-file", BEHAVIOUR)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest("GET", "/environ/a%20b?x=%20y", skip_host=True)
    c.putheader("Host", "example.com:8080")
    c.putheader("X-Forwarded-For", "1.2.3.4")
    c.putheader("X_Forwarded_For", "6.6.6.6")
    c.putheader("Cookie", "a=1")
    c.putheader("Cookie", "b=2")
    c.endheaders()
    env = json.loads(c.getresponse().read())["environ"]
    assert env["PATH_INFO"] == "/environ/a b"
    assert env["QUERY_STRING"] == "x=%20y"
    assert env["REQUEST_URI"] == "/environ/a%20b?x=%20y"
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == str(port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4", "the underscore twin never lands in the environ"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["wsgi.url_scheme"] == "http"


def test_pipelined_requests_are_answered_in_order(http_server):
    _, port = http_server("--wsgi-file", BEHAVIOUR, "--threads", "4")
    reqs = b"".join(
        b"GET /environ?n=%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5)
    ) + b"GET /environ?n=last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    out, closed = raw(port, reqs)
    assert closed
    order = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"\nHTTP/1.1", 1)[0] or b"{}")
             for part in out.split(b"HTTP/1.1 200 OK")[1:]]
    assert [o["environ"]["QUERY_STRING"] for o in order] == [f"n={i}" for i in range(5)] + ["n=last"]


def test_chunked_request_body_is_dechunked(http_server):
    _, port = http_server("--wsgi-file", str(EXAMPLES / "body_reader.py"))
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    out, _ = raw(port, b"POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                 b"Connection: close\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 200"), out
    assert json.loads(out.split(b"\r\n\r\n", 1)[1]) == {"len": 11, "again": 0}


def test_expect_100_continue(http_server):
    _, port = http_server("--wsgi-file", str(EXAMPLES / "body_reader.py"))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
              b"Connection: close\r\n\r\n")
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"abcd")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    assert out.startswith(b"HTTP/1.1 200") and b'"len": 4' in out


def test_response_without_length_is_chunked_or_close_delimited(http_server):
    _, port = http_server("--wsgi-file", str(EXAMPLES / "streaming.py"))
    out, closed = raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", timeout=1.5)
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head and body.endswith(b"0\r\n\r\n") and not closed
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    assert c.getresponse().read().count(b"\n") >= 3
    out, closed = raw(port, b"GET / HTTP/1.0\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding" not in head and closed and body.count(b"\n") >= 3


SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", SMUGGLING, ids=range(len(SMUGGLING)))
def test_smuggling_shapes_get_400_and_close(http_server, request_bytes):
    srv, port = http_server("--wsgi-file", HELLO)
    out, closed = raw(port, request_bytes + b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), out
    assert closed and out.count(b"HTTP/1.1") == 1, "nothing after the refusal is served"
    assert "/smuggled" not in srv.log()


def test_h2_preface_is_answered_not_hung(http_server):
    _, port = http_server("--wsgi-file", HELLO)
    start = time.monotonic()
    out, closed = raw(port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 505") and closed and time.monotonic() - start < 3


def test_oversize_line_414_and_head_431(http_server):
    _, port = http_server("--wsgi-file", HELLO, "--buffer-size", "1024")
    out, closed = raw(port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414") and closed
    out, closed = raw(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431") and closed


def test_slowloris_is_cut_and_holds_no_thread(http_server):
    _, port = http_server("--wsgi-file", HELLO, "--threads", "1", "--http-timeout", "2")
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n")
    # Meanwhile the only Python thread serves others.
    for _ in range(3):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        c.request("GET", "/")
        assert c.getresponse().read() == b"Hello World\n"
    start = time.monotonic()
    try:
        while True:
            slow.sendall(b"X")  # one byte at a time does not move the header deadline
            if slow.recv(100, socket.MSG_DONTWAIT) == b"":
                break
    except (BlockingIOError, InterruptedError):
        pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    slow.settimeout(5)
    try:
        while slow.recv(100):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    assert time.monotonic() - start < 4.5


def test_idle_keep_alive_holds_no_thread(http_server):
    _, port = http_server("--wsgi-file", HELLO, "--threads", "1")
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.request("GET", "/")
    assert idle.getresponse().read() == b"Hello World\n"
    other = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    other.request("GET", "/")
    assert other.getresponse().read() == b"Hello World\n"
    idle.request("GET", "/")
    assert idle.getresponse().read() == b"Hello World\n", "the idle connection is still served"


def test_keepalive_zero_closes_and_add_header(http_server):
    _, port = http_server("--wsgi-file", HELLO, "--http-keepalive", "0", "--add-header", "X-Served-By: rwsgi")
    out, closed = raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert b"Connection: close\r\n" in out and b"X-Served-By: rwsgi\r\n" in out and closed


def test_flask_counter_over_http(http_server):
    _, port = http_server("--wsgi-file", str(EXAMPLES / "counter.py"), "--threads", "4")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        c.request("GET", "/")
        r = c.getresponse()
        assert r.status == 200 and r.read()


def test_django_over_http(http_server):
    _, port = http_server("--chdir", str(EXAMPLES), "--module", "djangoapp.wsgi:application")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 200 and b"django" in r.read()


def test_curl(http_server):
    curl = shutil.which("curl")
    assert curl, "curl is missing: scripts/test.sh installs it"
    _, port = http_server("--wsgi-file", HELLO)
    url = f"http://127.0.0.1:{port}/"
    out = subprocess.run([curl, "-sS", "-i", url, url], capture_output=True, check=True).stdout
    assert out.count(b"Hello World\n") == 2
    out = subprocess.run([curl, "-sS", "-I", url], capture_output=True, check=True).stdout
    assert out.startswith(b"HTTP/1.1 200") and b"Content-Length: 12" in out


def test_requests_session(http_server):
    import requests

    _, port = http_server("--wsgi-file", str(EXAMPLES / "body_reader.py"))
    with requests.Session() as s:
        for _ in range(3):
            r = s.post(f"http://127.0.0.1:{port}/read", data=b"x" * 1000)
            assert r.status_code == 200 and r.json() == {"len": 1000, "again": 0}
        # A generator body goes out chunked: the server de-chunks it for wsgi.input.
        r = s.post(f"http://127.0.0.1:{port}/read", data=(b"ab" for _ in range(50)))
        assert r.json() == {"len": 100, "again": 0}


def test_wrk_keep_alive_load(http_server):
    wrk = shutil.which("wrk")
    assert wrk, "wrk is missing: scripts/test.sh installs it"
    srv, port = http_server("--wsgi-file", HELLO, "--threads", "4", "--disable-logging")
    out = subprocess.run([wrk, "-t1", "-c16", "-d1s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert "Socket errors" not in out and "Non-2xx" not in out, out
    requests_done = int(out.split(" requests in ")[0].split()[-1])
    assert requests_done > 100, out
    assert srv.alive()


def test_ab_keep_alive(http_server):
    ab = shutil.which("ab")
    assert ab, "ab is missing: scripts/test.sh installs apache2-utils"
    _, port = http_server("--wsgi-file", HELLO, "--threads", "2", "--disable-logging")
    out = subprocess.run([ab, "-q", "-k", "-n", "300", "-c", "8", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Failed requests:        0" in out, out
    assert "Keep-Alive requests:    300" in out, out
    assert "Complete requests:      300" in out, out


def test_idle_keep_alive_connections_do_not_hold_up_a_stop(http_server):
    srv, port = http_server("--wsgi-file", HELLO, "--socket-timeout", "10")
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("GET", "/")
    assert idle.getresponse().read() == b"Hello World\n"
    start = time.monotonic()
    srv.proc.send_signal(15)
    srv.proc.wait(timeout=15)
    assert time.monotonic() - start < 5, "the idle connection was closed, not waited for"


def test_start_up_lines_say_what_each_socket_speaks(http_server):
    srv, port = http_server("--wsgi-file", HELLO)
    log = srv.log()
    # uWSGI's wording for the uwsgi socket (tools and tests grep for it), the protocol for HTTP.
    assert re.search(rf"uwsgi socket 0 bound to {re.escape(srv.socket_arg)} fd \d+", log), log
    assert re.search(rf"http socket 1 bound to 127\.0\.0\.1:{port} fd \d+", log), log
    assert "uwsgi socket 1" not in log
