"""Slow clients cannot use up the server (issue 16, fault 2).

A client that sends its request head a byte at a time keeps moving the per-read deadline
(`--socket-timeout`), so without a deadline for the whole head it holds a descriptor forever; with
enough of them a worker runs out of descriptors and serves nothing. Here: the head deadline
(`--headers-timeout`) cuts a drip and logs it once; with the workers' descriptor limit at 256 and
hundreds of drips holding them, real requests through nginx are still served (the budget of
half-sent connections and closing the oldest ones near the limit); and the start-up log says what
the open-file limit is (`--max-fd`).

Every loop is bounded by a deadline; every socket is loopback or a unix path; the only processes
touched are the ones the fixtures started (the master by pid, its workers by the pids /proc lists
as its children).
"""

import http.client
import re
import resource
import socket
import threading
import time
from pathlib import Path

import pytest

import uwsgi_wire as wire
from harness import children, example

BEHAVIOUR = example("behaviour.py")
HELLO = example("hello.py")

# A request head nobody would finish in time at a byte a second.
SLOW_PACKET = wire.packet(wire.request_vars("GET", "/hello"))


def wait_children(pid, count, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        kids = children(pid)
        if len(kids) >= count or time.monotonic() > end:
            return kids
        time.sleep(0.05)


def open_fds(pid):
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return 0


def dial(address):
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(2)
    sock.connect(address)
    sock.setblocking(False)
    return sock


class Drips:
    """`count` connections that each send SLOW_PACKET one byte per `interval`, reconnecting when
    the server closes one (as a slow-loris client does), until stopped or `max_s` has passed."""

    def __init__(self, address, count, interval=1.0, max_s=30.0):
        self.address, self.count, self.interval, self.max_s = address, count, interval, max_s
        self.socks = []  # [socket, bytes sent]
        self.closed_by_server = 0
        self.connect_failures = 0
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self):
        try:
            sock = dial(self.address)
            sock.send(SLOW_PACKET[:1])
            return [sock, 1]
        except OSError:
            self.connect_failures += 1
            return None

    def _run(self):
        end = time.monotonic() + self.max_s
        # Connect gradually (a burst would only fill the listen backlog).
        for _ in range(self.count):
            if self.done.is_set() or time.monotonic() > end:
                break
            entry = self._connect()
            if entry:
                self.socks.append(entry)
        while not self.done.wait(self.interval) and time.monotonic() < end:
            for i, entry in enumerate(self.socks):
                sock, sent = entry if entry else (None, 0)
                if sock is not None:
                    try:
                        sock.send(SLOW_PACKET[sent : sent + 1])
                        entry[1] = min(sent + 1, len(SLOW_PACKET) - 1)
                        continue
                    except BlockingIOError:
                        continue
                    except OSError:
                        self.closed_by_server += 1
                        sock.close()
                self.socks[i] = self._connect()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self._thread.join(30)
        for entry in self.socks:
            if entry:
                entry[0].close()
        assert not self._thread.is_alive(), "the drip thread did not finish"


def raise_own_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need, "the test cannot open enough sockets"


# --------------------------------------------------------------------------- head deadline


def test_a_drip_past_the_head_deadline_is_cut_and_logged_once(server, transport):
    srv = server("--wsgi-file", HELLO, "--headers-timeout", "2", transport=transport)
    offset = srv.log_size()
    sock = dial(srv.address)
    started = time.monotonic()
    cut_after = None
    sent = 0
    try:
        # A byte every 0.2 s keeps --socket-timeout (4 s) from ever firing: only the head deadline can.
        while time.monotonic() - started < 8 and sent < len(SLOW_PACKET) - 1:
            try:
                sock.send(SLOW_PACKET[sent : sent + 1])
                sent += 1
                data = sock.recv(100) if _readable(sock) else None
                if data == b"":
                    cut_after = time.monotonic() - started
                    break
            except OSError:
                cut_after = time.monotonic() - started
                break
            time.sleep(0.2)
    finally:
        sock.close()
    assert cut_after is not None, f"a drip was still connected after 8 s (head deadline 2 s)\n{srv.log()}"
    assert 1.8 <= cut_after <= 4.0, f"the drip was cut after {cut_after:.2f} s, not at the 2 s deadline"
    line = srv.wait_for_log(r"--headers-timeout", offset, timeout=2)
    assert line, f"no log line for the cut connection\n{srv.log_since(offset)}"
    time.sleep(0.6)
    lines = [l for l in srv.log_since(offset).splitlines() if "--headers-timeout" in l]
    assert len(lines) == 1, f"the cut was logged {len(lines)} times: {lines}"
    # A request that comes whole is served as ever.
    srv.assert_serves()


def test_a_slow_body_is_not_cut_by_the_head_deadline(server):
    """The deadline covers the head only: a body that trickles in (each piece within
    --socket-timeout) is read to the end."""
    srv = server("--wsgi-file", BEHAVIOUR, "--headers-timeout", "1", "--post-buffering", "100")
    body = b"x" * 30
    head = wire.packet(wire.request_vars("POST", "/ignore-body", body_len=len(body)))
    with wire.connect(srv.address) as sock:
        sock.sendall(head)
        for i in range(0, len(body), 10):
            time.sleep(0.6)
            sock.sendall(body[i : i + 10])
        raw = wire.read_to_eof(sock)
    status, _, got = wire.split_response(raw)
    assert status.endswith("200 OK"), (raw[:200], srv.log())
    assert got == b"ignored\n"


def _readable(sock):
    import select

    return bool(select.select([sock], [], [], 0)[0])


# --------------------------------------------------------------------------- descriptor limit


def real_requests(port, window_s, clients=4, timeout=5.0):
    """GET /hello through nginx from `clients` clients, back to back for `window_s`;
    (statuses, errors)."""
    statuses, errors = [], []
    lock = threading.Lock()
    end = time.monotonic() + window_s

    def client():
        while time.monotonic() < end:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request("GET", "/hello")
                resp = conn.getresponse()
                resp.read()
                with lock:
                    statuses.append(resp.status)
            except (OSError, http.client.HTTPException) as err:
                with lock:
                    errors.append(repr(err))
            finally:
                conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(window_s + timeout + 5)
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"
    return statuses, errors


@pytest.mark.parametrize("limit_by", ["max-fd", "prlimit"])
def test_slow_clients_holding_the_descriptors_do_not_starve_real_requests(server, nginx, transport, limit_by):
    """2 workers limited to 256 descriptors each, 700 drips holding them (more than both workers
    can hold): real requests through nginx are all served. `prlimit` lowers the limit of the
    running workers from outside (as a systemd unit or a container would have set it), `--max-fd`
    is the flag."""
    raise_own_fd_limit(2000)
    extra = ["--max-fd", "256"] if limit_by == "max-fd" else []
    srv = server("--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--threads", "2", *extra, transport=transport)
    workers = wait_children(srv.pid, 2)
    assert len(workers) == 2, workers
    if limit_by == "prlimit":
        for pid in workers:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (256, 256))
    ngx = nginx(srv)
    with Drips(srv.address, 700, interval=1.0, max_s=40) as drips:
        # Let the drips connect and fill the workers' descriptors.
        deadline = time.monotonic() + 15
        while len([s for s in drips.socks if s]) < 700 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        held = {pid: open_fds(pid) for pid in workers}
        statuses, errors = real_requests(ngx.port, window_s=6)
    ok = sum(s == 200 for s in statuses)
    summary = (
        f"{transport}/{limit_by}: {ok} of {len(statuses) + len(errors)} real requests served "
        f"(errors {errors[:2]}, statuses {sorted(set(statuses))}); workers held {held} descriptors; "
        f"drips closed by the server {drips.closed_by_server}, connect failures {drips.connect_failures}"
    )
    print("\n" + summary)
    assert srv.alive(), srv.log()[-3000:]
    assert ok >= 5 and ok == len(statuses) + len(errors), f"{summary}\n{srv.log()[-3000:]}"
    assert max(held.values()) > 128, f"the drips never held most descriptors: {summary}"


# --------------------------------------------------------------------------- the limit itself


def test_start_up_logs_the_open_file_limit_and_max_fd_sets_it(server):
    srv = server("--wsgi-file", HELLO, "--max-fd", "300")
    assert re.search(r"detected max file descriptor number: 300\b", srv.log()), srv.log()
    soft, hard = resource.prlimit(srv.pid, resource.RLIMIT_NOFILE)
    assert soft == 300, (soft, hard)


def test_max_fd_and_headers_timeout_work_in_an_ini_file(server, tmp_path):
    ini = tmp_path / "limits.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {HELLO}\nmax-fd = 310\nheaders-timeout = 1\n")
    srv = server("--ini", ini)
    assert re.search(r"detected max file descriptor number: 310\b", srv.log()), srv.log()
    offset = srv.log_size()
    with dial(srv.address) as sock:
        sock.send(SLOW_PACKET[:10])
        assert srv.wait_for_log(r"--headers-timeout 1s", offset, timeout=4), srv.log_since(offset)


def test_start_up_raises_the_soft_limit_to_the_hard_one(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    srv = server("--wsgi-file", HELLO)
    got = resource.prlimit(srv.pid, resource.RLIMIT_NOFILE)
    assert got[0] == hard, (got, hard)
    assert re.search(rf"detected max file descriptor number: {hard}\b", srv.log()), srv.log()
