"""Kept-alive HTTP connections parked between requests in the threads' epoll set: each is served
when its next request comes, in any order, and closed after `--http-keepalive` of silence."""

import http.client
import socket
import time
from pathlib import Path

import pytest

from harness import free_port

HELLO = str(Path(__file__).resolve().parents[2] / "examples" / "hello.py")


@pytest.fixture
def http_port(server):
    def start(*args):
        port = free_port()
        server("--http-socket", f"127.0.0.1:{port}", "--wsgi-file", HELLO, *args)
        return port

    return start


def get(conn):
    conn.request("GET", "/")
    r = conn.getresponse()
    return r.status, r.read()


def read_responses(s, count, marker):
    """Read from `s` until `marker` has been seen `count` times; the bytes."""
    got = b""
    while got.count(marker) < count:
        piece = s.recv(65536)
        assert piece, got
        got += piece
    return got


@pytest.mark.parametrize("threads", ["1", "3"])
def test_many_parked_connections_are_served_in_any_order(http_port, threads):
    port = http_port("--threads", threads)
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(40)]
    for c in conns:
        assert get(c) == (200, b"Hello World\n")
    local_ports = [c.sock.getsockname()[1] for c in conns]
    for order in (reversed(conns), conns[::3] + conns[1::3] + conns[2::3]):
        for c in order:
            assert get(c) == (200, b"Hello World\n")
    # The same 40 connections all along: none was closed and reopened by http.client.
    assert [c.sock.getsockname()[1] for c in conns] == local_ports
    for c in conns:
        c.close()


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(http_port):
    port = http_port("--threads", "1", "--http-keepalive", "1")
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    busy = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    read_responses(idle, 1, b"Hello World\n")
    start = time.monotonic()
    # Another client keeps the thread busy meanwhile: the sweep runs under load too.
    while time.monotonic() - start < 0.8:
        assert get(busy) == (200, b"Hello World\n")
    assert idle.recv(4096) == b"", "closed by the server, nothing more sent"
    waited = time.monotonic() - start
    assert 0.8 <= waited < 3, waited
    # The server goes on serving, on a new connection and on the busy one.
    assert get(http.client.HTTPConnection("127.0.0.1", port, timeout=5)) == (200, b"Hello World\n")
    assert get(busy) == (200, b"Hello World\n")


def test_a_parked_connection_whose_peer_closes_is_dropped(http_port):
    port = http_port("--threads", "1")
    for _ in range(50):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        assert get(c) == (200, b"Hello World\n")
        c.close()
    # A head that arrives in two pieces after a parked wait is finished by the event loop.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert read_responses(s, 1, b"Hello World\n").startswith(b"HTTP/1.1 200")
    s.sendall(b"GET / HTTP/1.1\r\n")
    time.sleep(0.2)  # the behaviour under test: the rest of the head comes later
    s.sendall(b"Host: h\r\n\r\n")
    assert read_responses(s, 1, b"Hello World\n").startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_request_sent_while_the_previous_one_runs_is_answered(server, threads):
    """Its bytes arrive while the connection is busy: the readiness report comes then, and the
    connection must be read when it is parked, not wait for a report that never comes again."""
    port = free_port()
    server("--http-socket", f"127.0.0.1:{port}", "--wsgi-file",
           str(Path(HELLO).with_name("behaviour.py")), "--threads", threads)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for _ in range(5):
        s.sendall(b"GET /sleep?s=0.2 HTTP/1.1\r\nHost: h\r\n\r\n")
        time.sleep(0.05)  # the behaviour under test: the next request comes mid-response
        s.sendall(b"GET /sleep?s=0 HTTP/1.1\r\nHost: h\r\n\r\n")
        got = read_responses(s, 2, b"HTTP/1.1 200")
        assert got.count(b"HTTP/1.1 200") == 2


def test_a_get_pipelined_behind_a_post_body_is_answered(server):
    """The body is read to its exact length, which leaves the next request in the kernel: no new
    readiness report comes for it, so it must be read before the connection waits."""
    port = free_port()
    server("--http-socket", f"127.0.0.1:{port}", "--wsgi-file",
           str(Path(HELLO).parents[0] / "body_reader.py"), "--threads", "1")
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    body = b"x" * 20_000  # with the next request, one loopback segment
    for _ in range(3):
        s.sendall(b"POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body + b"GET /read HTTP/1.1\r\nHost: h\r\n\r\n")
        got = read_responses(s, 2, b'"again"')
        assert got.count(b"HTTP/1.1 200") == 2 and b'"len": 20000' in got, got[:300]


def test_a_streamed_response_is_not_held_back_by_nagle(server, tmp_path):
    """A generator's chunks leave as separate writes: with Nagle's algorithm on, each waits for the
    client to acknowledge the previous one, which Linux delays by 40 ms, so every streamed response
    on a kept-alive connection took over 40 ms instead of well under one."""
    app = tmp_path / "stream.py"
    app.write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    for i in range(5):\n"
        "        yield b'chunk %d\\n' % i\n"
    )
    port = free_port()
    server("--http-socket", f"127.0.0.1:{port}", "--wsgi-file", str(app))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    took = []
    for _ in range(21):
        started = time.monotonic()
        assert get(c) == (200, b"".join(b"chunk %d\n" % i for i in range(5)))
        took.append(time.monotonic() - started)
    median = sorted(took)[len(took) // 2]
    assert median < 0.02, f"median {median * 1000:.1f} ms per request"
