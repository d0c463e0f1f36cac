"""wsgi.input: every reading method, never past CONTENT_LENGTH, clear errors for a body that never
arrives, and a client that goes away is one quiet log line (raw uwsgi packets, no nginx)."""

import json
import socket
import time

from harness import example
from uwsgi_wire import connect, packet, read_to_eof, request_vars, split_response

BODY = b"first line\nsecond\n\nfourth has no newline"


def post(s, path, body, query="", declared=None, trailing=b""):
    """POST `body` (plus bytes past CONTENT_LENGTH) and return (status line, body)."""
    length = len(body) if declared is None else declared
    data = packet(request_vars("POST", path, query, body_len=length), body=body + trailing)
    status, _, reply = split_response(s.raw(data))
    return status, reply


def test_every_reading_method(server):
    s = server("--wsgi-file", example("body_reader.py"))
    lines = ["first line\n", "second\n", "\n", "fourth has no newline"]
    # Bytes after CONTENT_LENGTH are never part of the body.
    status, reply = post(s, "/read", BODY, trailing=b"GARBAGE")
    assert status.startswith("HTTP/1.1 200"), reply
    assert json.loads(reply) == {"len": len(BODY), "again": 0}
    _, reply = post(s, "/read-chunks", BODY, query="n=7", trailing=b"GARBAGE")
    chunks = json.loads(reply)
    assert "".join(chunks) == BODY.decode() and all(len(c) <= 7 for c in chunks), chunks
    _, reply = post(s, "/readline", BODY)
    assert json.loads(reply) == lines
    _, reply = post(s, "/readline", BODY, query="n=4")
    limited = json.loads(reply)
    assert "".join(limited) == BODY.decode() and max(map(len, limited)) == 4, limited
    _, reply = post(s, "/readlines", BODY, query="hint=5")
    first, rest = (json.loads(part) for part in json.loads(reply))
    assert first == lines[:1] and rest == lines[1:], (first, rest)
    _, reply = post(s, "/iterate", BODY)
    assert json.loads(reply) == lines


def test_large_body_read_in_pieces_is_exact(server):
    s = server("--wsgi-file", example("body_reader.py"))
    body = bytes(range(256)) * 4096 + b"\nend"  # 1 MiB and a bit: most of it read from the socket
    status, reply = post(s, "/read", body)
    assert status.startswith("HTTP/1.1 200")
    assert json.loads(reply)["len"] == len(body)
    _, reply = post(s, "/iterate", body)
    assert "".join(json.loads(reply)).encode("latin-1") == body


def test_body_shorter_than_content_length_raises_oserror(server):
    # --post-buffering 0: the app gets the request as soon as its head is in, and reads the body
    # from the socket itself (as it does for any body over the default 64 KiB).
    s = server("--wsgi-file", example("body_reader.py"), "--socket-timeout", "1", "--post-buffering", "0")
    # The client sends 3 of 10 bytes, then closes its side.
    with connect(s.address) as sock:
        sock.sendall(packet(request_vars("POST", "/report-error", body_len=10), body=b"abc"))
        sock.shutdown(socket.SHUT_WR)
        status, _, reply = split_response(read_to_eof(sock))
    assert status.startswith("HTTP/1.1 200")
    assert reply.startswith(b"OSError: "), reply
    assert b"7 of 10 body bytes" in reply and b"closed" in reply, reply
    # The client sends 3 of 10 bytes and stalls: a timeout after --socket-timeout.
    start = time.monotonic()
    with connect(s.address) as sock:
        sock.sendall(packet(request_vars("POST", "/report-error", body_len=10), body=b"abc"))
        status, _, reply = split_response(read_to_eof(sock))
    assert b"timeout" in reply and b"7 of 10 body bytes" in reply, reply
    assert 0.8 < time.monotonic() - start < 4, "the timeout is --socket-timeout (1 s)"
    status, _, _ = split_response(s.raw(packet(request_vars("POST", "/read", body_len=2), body=b"ok")))
    assert status.startswith("HTTP/1.1 200")


def test_short_small_body_never_reaches_a_python_thread(server):
    # By default a small body is read by the event loop before dispatch: a client that stops
    # short is closed by the loop after --socket-timeout, with one log line, and the only thread
    # keeps serving meanwhile.
    s = server("--wsgi-file", example("body_reader.py"), "--socket-timeout", "1", "--threads", "1")
    offset = s.log_size()
    stalled = connect(s.address)
    stalled.sendall(packet(request_vars("POST", "/read", body_len=10), body=b"abc"))
    status, _, reply = split_response(s.raw(packet(request_vars("POST", "/read", body_len=2), body=b"ok")))
    assert status.startswith("HTTP/1.1 200") and json.loads(reply)["len"] == 2
    assert read_to_eof(stalled, 5) == b""
    stalled.close()
    s.wait_for_log(r"without a complete request", offset=offset, timeout=5)


def test_client_gone_mid_response_is_one_quiet_line(server):
    s = server("--wsgi-file", example("body_reader.py"))
    offset = s.log_size()
    sock = connect(s.address)
    sock.sendall(packet(request_vars("GET", "/stream", "n=2000")))  # 125 MiB: far more than buffers hold
    assert sock.recv(65536), "the response started"
    # Close with unread data: the kernel resets, and the server's next write fails.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    s.wait_for_log(r"client went away during GET /stream", offset=offset, timeout=10)
    time.sleep(0.3)
    log = s.log_since(offset)
    assert log.count("client went away") == 1, log
    assert "Traceback" not in log, log
    # The server goes on serving.
    status, _, reply = split_response(s.raw(packet(request_vars("POST", "/read", body_len=2), body=b"ok")))
    assert status.startswith("HTTP/1.1 200"), reply
