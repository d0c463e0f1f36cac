"""Bad bytes straight to the backend socket (no nginx): each is refused with a
log line saying why, and the server goes on serving."""

import select
import socket
import struct
import time

import pytest

import uwsgi_wire as wire
from harness import example

HELLO = example("hello.py")


def padded_packet(datasize, modifier1=0):
    """A well-formed request whose vars block is exactly `datasize` bytes."""
    pairs = wire.request_vars("GET", "/")
    base = len(wire.encode_vars(pairs)) + 4 + len("HTTP_X_PAD")
    assert datasize >= base
    return wire.packet(pairs + [("HTTP_X_PAD", "x" * (datasize - base))], modifier1=modifier1)


def send_and_close(srv, data, timeout=10.0, half_close=False):
    """Send data (then EOF if `half_close`); return whatever comes back until the server closes."""
    with wire.connect(srv.address, timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        try:
            return wire.read_to_eof(sock, timeout)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {timeout} s after {data[:24]!r}...")


def test_vars_block_over_buffer_size_is_refused_and_logged(server, transport):
    srv = server("--wsgi-file", HELLO, "--buffer-size", "4096", transport=transport)
    reply = send_and_close(srv, padded_packet(5000))
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:80]
    assert srv.wait_for_log(r"invalid request block size: 5000 \(max 4096\)"), srv.log()
    srv.assert_serves()
    # The limit is inclusive.
    status, _, body = wire.split_response(srv.raw(padded_packet(4096)))
    assert (status, body) == ("HTTP/1.1 200 OK", b"Hello World\n")


def test_http_spoken_to_the_uwsgi_socket_is_explained_in_the_log(server):
    srv = server("--wsgi-file", HELLO)
    offset = srv.log_size()
    send_and_close(srv, b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n")
    assert srv.wait_for_log(r"(?i)\bHTTP\b", offset), (
        "speaking HTTP to the uwsgi socket must be named in the log (uWSGI only says "
        "'invalid request block size: 21573'):\n" + srv.log_since(offset)
    )
    srv.assert_serves()


def test_unknown_modifier1_is_logged(server):
    srv = server("--wsgi-file", HELLO)
    offset = srv.log_size()
    reply = send_and_close(srv, wire.packet(wire.request_vars("GET", "/"), modifier1=5))
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:80]
    assert srv.wait_for_log(r"(?i)modifier.*\b5\b", offset), srv.log_since(offset)
    srv.assert_serves()


def test_ping_is_answered_with_pong(server, transport):
    srv = server("--wsgi-file", HELLO, transport=transport)
    for _ in range(3):
        assert srv.raw(wire.PING) == bytes([0x64, 0x00, 0x00, 0x01])
    srv.assert_serves()


@pytest.mark.parametrize(
    "data, half_close",
    [
        pytest.param(b"\x00\x00\x00\x00", False, id="empty-request"),
        pytest.param(struct.pack("<BHB", 0, 6, 0) + b"\x00\x00\x02\x00ab", False, id="zero-length-key"),
        pytest.param(struct.pack("<BHB", 0, 8, 0) + b"\x10\x00KEY\x00\x00\x00", False, id="key-overruns-block"),
        pytest.param(struct.pack("<BHB", 0, 9, 0) + b"\x01\x00K\x01\x00V\x00\x00\x00", False, id="trailing-bytes"),
        pytest.param(struct.pack("<BHB", 0, 10, 0) + b"\x01\x00K", True, id="truncated-then-eof"),
        pytest.param(b"\x00\x0a", True, id="half-a-header-then-eof"),
    ],
)
def test_malformed_packets_are_dropped_and_the_server_goes_on(server, data, half_close):
    srv = server("--wsgi-file", HELLO)
    t0 = time.monotonic()
    reply = send_and_close(srv, data, half_close=half_close)
    assert time.monotonic() - t0 < 3.0, "a malformed or closed request must be dropped at once, not on a timeout"
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:80]
    srv.assert_serves()


def test_truncated_idle_packet_does_not_block_other_requests(server, transport):
    """One thread; a client sends half a packet and goes quiet. Others must not wait for it."""
    srv = server("--wsgi-file", HELLO, "--threads", "1", transport=transport)
    idle = wire.connect(srv.address)
    try:
        idle.sendall(struct.pack("<BHB", 0, 300, 0) + b"\x0c\x00QUERY_STR")
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.assert_serves()
        elapsed = time.monotonic() - t0
        assert elapsed < 1.0, f"hello took {elapsed:.2f} s while a truncated packet sat idle"
    finally:
        idle.close()
    srv.assert_serves()


IDLE_CONNECTIONS = 200


def open_idle_connections(address, count, deadline_s=5.0):
    """Open `count` connections that send nothing; return the connected sockets."""
    end = time.monotonic() + deadline_s
    pending, connected = [], []
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    todo = count
    while todo and time.monotonic() < end:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(address)
        if err == 0:
            connected.append(sock)
            todo -= 1
        elif err in (115, 36):  # EINPROGRESS (TCP): wait for it below
            pending.append(sock)
            todo -= 1
        else:  # EAGAIN on a full unix backlog: try again shortly
            sock.close()
            time.sleep(0.01)
    while pending and time.monotonic() < end:
        _, writable, _ = select.select([], pending, [], max(0.0, end - time.monotonic()))
        for sock in writable:
            pending.remove(sock)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(sock)
            else:
                sock.close()
    for sock in pending:
        sock.close()
    return connected


def test_200_idle_connections_do_not_delay_a_request(server, transport):
    srv = server("--wsgi-file", HELLO, "--threads", "1", transport=transport)
    idle = open_idle_connections(srv.address, IDLE_CONNECTIONS)
    try:
        assert len(idle) == IDLE_CONNECTIONS, f"only {len(idle)} of {IDLE_CONNECTIONS} connections were accepted"
        time.sleep(0.2)
        for _ in range(3):
            t0 = time.monotonic()
            srv.assert_serves()
            elapsed = time.monotonic() - t0
            assert elapsed < 1.0, f"hello took {elapsed:.2f} s with {len(idle)} idle connections open"
    finally:
        for sock in idle:
            sock.close()
    srv.assert_serves()
