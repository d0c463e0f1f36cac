"""A slow reader of a big static file holds no Python thread: the thread sends what the socket takes
and the event loop sends the rest, cuts a reader that stalls past --socket-timeout, keeps an HTTP
connection alive afterwards, and finishes (or cuts) what is under way when the worker stops.

Every server here has one process with one thread, so a thread held by the slow reader would leave
the other requests unanswered until their client's timeout."""

import hashlib
import http.client
import os
import re
import resource
import signal
import socket
import time
from pathlib import Path

import pytest

import uwsgi_wire as wire
from harness import free_port

HELLO = str(Path(__file__).resolve().parents[2] / "examples" / "hello.py")
BIG = 64 << 20
# The other requests must be answered well before this; a held thread answers them only after the
# slow reader's --socket-timeout (30 s) or not at all.
PROMPT_S = 5.0


def pattern_at(offset):
    return b"marker at %d;" % offset


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A 64 MiB sparse file with a marker every 4 MiB (so a misplaced byte range shows), and a small
    one; with the big file's SHA-256."""
    root = tmp_path_factory.mktemp("slowstatic") / "root"
    root.mkdir()
    with open(root / "big.bin", "wb") as fh:
        fh.truncate(BIG)
        for offset in range(0, BIG, 4 << 20):
            fh.seek(offset + 1000)
            fh.write(pattern_at(offset))
        fh.seek(BIG - 16)
        fh.write(b"the very end....")
    (root / "small.txt").write_text("small\n")
    data = (root / "big.bin").read_bytes()
    return root, data


@pytest.fixture
def slow_server(server, tree):
    root, _ = tree

    def start(*extra):
        port = free_port()
        srv = server("--http-socket", f"127.0.0.1:{port}", "--wsgi-file", HELLO, "--processes", "1",
                     "--threads", "1", "--static-map", f"/static={root}", *extra)
        return srv, port
    return start


def slow_socket(address):
    """A client socket with a small receive buffer (set before connecting, so the window stays small)."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(PROMPT_S)
    sock.connect(address)
    return sock


def http_get(sock, path, headers=""):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())


def read_head(sock):
    """The response head and the body bytes that came with it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        assert len(buf) < 65536, buf[:200]
        chunk = sock.recv(4096)
        assert chunk, f"closed before the head ended: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def read_exactly(sock, n, got=b"", deadline_s=60.0):
    """`n` body bytes (`got` already read), in a loop bounded by time."""
    parts = [got]
    have = len(got)
    end = time.monotonic() + deadline_s
    while have < n:
        assert time.monotonic() < end, f"only {have} of {n} bytes within {deadline_s} s"
        chunk = sock.recv(min(1 << 20, n - have))
        assert chunk, f"closed after {have} of {n} bytes"
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def read_to_eof(sock, deadline_s=30.0):
    parts = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
    raise AssertionError(f"no end of stream within {deadline_s} s")


def header(head, name):
    found = re.search(rf"^{name}: (.*)$", head, re.M | re.I)
    return found and found.group(1).strip()


def answered_promptly(port):
    """The app and a small static file answer while the big file waits for its reader."""
    for path, expect in (("/", b"Hello World\n"), ("/static/small.txt", b"small\n")):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=PROMPT_S)
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 200 and r.read() == expect
        c.close()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_a_slow_reader_holds_no_thread_and_gets_every_byte(slow_server, tree):
    _, data = tree
    srv, port = slow_server("--socket-timeout", "30")
    slow = slow_socket(("127.0.0.1", port))
    http_get(slow, "/static/big.bin")
    head, rest = read_head(slow)
    assert head.startswith("HTTP/1.1 200") and header(head, "Content-Length") == str(BIG)
    started = time.monotonic()
    for _ in range(3):
        answered_promptly(port)
    assert time.monotonic() - started < PROMPT_S
    body = read_exactly(slow, BIG, rest)
    assert sha(body) == sha(data)
    assert srv.wait_for_log(rf"static GET /static/big.bin => 200, {BIG} bytes from .*big.bin \(sent by the event loop\)")
    slow.close()


def test_a_stalled_reader_is_cut_once_and_the_worker_keeps_serving(slow_server):
    srv, port = slow_server("--socket-timeout", "1")
    slow = slow_socket(("127.0.0.1", port))
    http_get(slow, "/static/big.bin")
    read_head(slow)
    cut = srv.wait_for_log(r"static GET /static/big.bin => 200: cut after (\d+) of (\d+) bytes: "
                           r"the client took nothing for 1s", timeout=15)
    assert cut, srv.log()
    assert int(cut.group(1)) < BIG and int(cut.group(2)) == BIG
    got = read_to_eof(slow)
    assert len(got) < BIG
    answered_promptly(port)
    assert len(re.findall(r"cut after", srv.log())) == 1
    slow.close()


def test_keep_alive_after_a_response_the_loop_finished(slow_server, tree):
    _, data = tree
    srv, port = slow_server("--socket-timeout", "30")
    slow = slow_socket(("127.0.0.1", port))
    http_get(slow, "/static/big.bin")
    head, rest = read_head(slow)
    assert header(head, "Connection") is None, head
    answered_promptly(port)
    assert sha(read_exactly(slow, BIG, rest)) == sha(data)
    assert srv.wait_for_log(r"big.bin \(sent by the event loop\)")
    for path, expect in (("/static/small.txt", b"small\n"), ("/", b"Hello World\n")):
        http_get(slow, path)
        head, rest = read_head(slow)
        assert head.startswith("HTTP/1.1 200"), head
        assert read_exactly(slow, int(header(head, "Content-Length")), rest) == expect
    slow.close()


def test_a_request_pipelined_behind_a_big_file_is_answered_after_it(slow_server, tree):
    _, data = tree
    srv, port = slow_server("--socket-timeout", "30")
    slow = slow_socket(("127.0.0.1", port))
    slow.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    head, rest = read_head(slow)
    assert head.startswith("HTTP/1.1 200"), head
    answered_promptly(port)
    body = read_exactly(slow, BIG, rest)
    assert sha(body[:BIG]) == sha(data)
    head, rest = read_head(slow)
    assert head.startswith("HTTP/1.1 200"), head
    assert read_exactly(slow, int(header(head, "Content-Length")), rest) == b"Hello World\n"
    slow.close()


def test_a_range_of_a_big_file_through_the_loop(slow_server, tree):
    _, data = tree
    srv, port = slow_server("--socket-timeout", "30")
    first, last = 1_000_000, 40_000_000
    slow = slow_socket(("127.0.0.1", port))
    http_get(slow, "/static/big.bin", f"Range: bytes={first}-{last}\r\n")
    head, rest = read_head(slow)
    assert head.startswith("HTTP/1.1 206"), head
    assert header(head, "Content-Range") == f"bytes {first}-{last}/{BIG}"
    answered_promptly(port)
    body = read_exactly(slow, last - first + 1, rest)
    assert sha(body) == sha(data[first:last + 1])
    assert srv.wait_for_log(rf"=> 206, {last - first + 1} bytes from .* \(sent by the event loop\)")
    slow.close()


def test_the_uwsgi_socket_sends_a_big_file_through_the_loop_and_closes(server, tree):
    root, data = tree
    srv = server("--wsgi-file", HELLO, "--processes", "1", "--threads", "1", "--socket-timeout", "30",
                 "--static-map", f"/static={root}")
    slow = slow_socket(srv.address)
    slow.sendall(wire.packet(wire.request_vars(path="/static/big.bin")))
    head, rest = read_head(slow)
    assert head.startswith("HTTP/1.1 200") and header(head, "Content-Length") == str(BIG), head
    for _ in range(3):
        srv.assert_serves("/", timeout=PROMPT_S)
    body = read_exactly(slow, BIG, rest)
    assert sha(body) == sha(data)
    assert slow.recv(1) == b"", "the uwsgi connection closes after the response"
    slow.close()


def test_a_stopping_worker_finishes_a_transfer_under_way(slow_server, tree):
    _, data = tree
    srv, port = slow_server("--socket-timeout", "30", "--reload-mercy", "30")
    slow = slow_socket(("127.0.0.1", port))
    http_get(slow, "/static/big.bin")
    head, rest = read_head(slow)
    answered_promptly(port)  # the transfer is in the event loop now
    offset = srv.log_size()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.wait_for_log(r"finishing 1 static transfer\(s\) before stopping \(within --reload-mercy 30s\)",
                            offset=offset)
    assert sha(read_exactly(slow, BIG, rest)) == sha(data)
    assert srv.proc.wait(15) == 0
    slow.close()


def test_a_stopping_worker_cuts_a_stalled_transfer_at_its_stop_budget(slow_server):
    srv, port = slow_server("--socket-timeout", "30", "--reload-mercy", "2")
    slow = slow_socket(("127.0.0.1", port))
    http_get(slow, "/static/big.bin")
    read_head(slow)
    answered_promptly(port)
    stopped = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.wait_for_log(r"finishing 1 static transfer\(s\)")
    srv.proc.wait(15)
    assert time.monotonic() - stopped < 10
    assert re.search(r"cut 1 static transfer\(s\) still sending after --reload-mercy 2s", srv.log()), srv.log()
    assert len(read_to_eof(slow)) < BIG
    slow.close()


def test_out_of_descriptors_the_longest_stalled_transfers_make_room(slow_server):
    """Stalled readers hold a socket and the file each until the worker has no descriptor left
    (its limit lowered from outside): the transfers stalled longest are cut, with one line, and a
    new request is served."""
    srv, port = slow_server("--socket-timeout", "60")
    held_before = len(os.listdir(f"/proc/{srv.pid}/fd"))
    _, hard = resource.prlimit(srv.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (held_before + 16, hard))
    # Twelve readers want 24 descriptors: the last ones wait in the backlog (or get a 503).
    readers = [slow_socket(("127.0.0.1", port)) for _ in range(12)]
    for sock in readers:
        http_get(sock, "/static/big.bin")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello World\n"
    assert srv.wait_for_log(r"cut \d+ static transfer\(s\) whose client took nothing for 1s or more: out of "
                            r"file descriptors"), srv.log()[-3000:]
    assert srv.alive()
    for sock in readers:
        sock.close()
