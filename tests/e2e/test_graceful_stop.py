"""A graceful stop under load loses no request nginx has already sent (issue 16, fault 1).

nginx opens a new upstream connection per request and sends the request as soon as the
connect completes. Once a graceful stop begins, the kernel must either still hand each such
connection to a Python thread, or refuse the connect outright (nginx then knows the request never
reached us and, with `uwsgi_next_upstream`, tries another server). What must never happen is a
connection the kernel completed, nginx sent its request on, and rwsgi then reset by exiting with
it still in a listen backlog: that request is lost (a 502 nginx cannot retry).

The scenario: `--master --processes 2 --threads 4`, 32 clients requesting through nginx with
`uwsgi_next_upstream off` (so every failure shows as a 502), two 2-second requests in flight,
then SIGTERM to the master. Every loop is bounded; every socket is loopback or a unix path; the
only processes signalled are the ones the fixtures started, by pid.
"""

import errno
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import Stack, example, gone, started_query, wait_until

BEHAVIOUR = example("behaviour.py")
CLIENTS = 32

# nginx error.log lines for a request that failed after nginx had connected (and so sent it):
# reset while sending it or waiting for the answer, or the connection closed without one.
SENT_AND_LOST = re.compile(
    r"upstream prematurely closed|\((?:104|32): [^)]*\) while (?:reading response header from|sending request to) upstream"
)
# A connect nginx could have retried elsewhere: refused, no socket file, or a full backlog.
REFUSED = re.compile(r"connect\(\) (?:to \S+ )?failed \((?:111|2|11): [^)]*\) while connecting to upstream")


class Clients:
    """`count` clients requesting `path` through nginx back to back, each for at most `max_s`.
    Each result is (started, ended, status or None)."""

    def __init__(self, port, path, count, max_s):
        self.port, self.path, self.max_s = port, path, max_s
        self.done = threading.Event()
        self.results = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self):
        end = time.monotonic() + self.max_s
        while not self.done.is_set() and time.monotonic() < end:
            started = time.monotonic()
            status = None
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            with self._lock:
                self.results.append((started, time.monotonic(), status))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        for t in self._threads:
            t.join(30)
        assert not any(t.is_alive() for t in self._threads), "a client thread did not finish"


def refused(address):
    """True if a new connection to `address` (TCP tuple or unix path) is refused at once."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except OSError as err:
            return err.errno in (errno.ECONNREFUSED, errno.ENOENT)
    return False


def stop_under_load(server, nginx, transport, master=True, fifo=None):
    """With `fifo` (a path), the stop is `q` written to the master FIFO instead of SIGTERM."""
    model = ["--master", "--processes", "2"] if master else []
    if fifo:
        model += ["--master-fifo", str(fifo)]
    srv = server("--wsgi-file", BEHAVIOUR, *model, "--threads", "4", transport=transport)
    ngx = nginx(srv, server_extra="uwsgi_next_upstream off;")
    s = Stack(srv, ngx)
    assert s.get("/hello").status == 200, s.diagnostics()
    with ThreadPoolExecutor(2) as pool, Clients(ngx.port, "/hello", CLIENTS, max_s=20) as clients:
        time.sleep(1.0)
        markers = [Path(srv.log_path).parent / f"long{i}.started" for i in range(2)]
        long = [pool.submit(s.get, f"/sleep?s=2&{started_query(m)}", timeout=30) for m in markers]
        assert wait_until(lambda: all(m.exists() for m in markers)), s.diagnostics()
        sent_term = time.monotonic()
        if fifo:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, b"q")
            finally:
                os.close(fd)
        else:
            os.kill(srv.pid, signal.SIGTERM)
        try:
            code = srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the master still runs 15 s after SIGTERM\n{s.diagnostics()}")
        exited = time.monotonic()
        # Clients keep going for a moment after the exit: their connects must be refused.
        time.sleep(0.5)
        clients.done.set()
        slow = [f.result(timeout=30) for f in long]
    return s, code, sent_term, exited, clients.results, slow


@pytest.mark.parametrize(
    "transport, master, fifo",
    [("tcp", True, False), ("unix", True, False), ("tcp", False, False), ("unix", True, True)],
    ids=["tcp", "unix", "tcp-no-master", "unix-fifo-q"],
)
def test_sigterm_under_load_resets_no_request_nginx_sent(server, nginx, tmp_path, transport, master, fifo):
    """Without a master the one process does what the master and the workers share; `q` on the
    master FIFO is the same graceful stop as SIGTERM."""
    fifo = tmp_path / "master.fifo" if fifo else None
    s, code, sent_term, exited, results, slow = stop_under_load(server, nginx, transport, master, fifo)
    errors = s.nginx.error_log.read_text(errors="replace")
    lost = SENT_AND_LOST.findall(errors)
    refusals = REFUSED.findall(errors)
    during = [r for r in results if r[1] >= sent_term]
    bad = [r for r in results if r[2] != 200]
    summary = (
        f"{transport}{'' if master else ' (no master)'}{' (fifo q)' if fifo else ''}: {len(results)} requests, {len(during)} ended after SIGTERM, "
        f"{len(bad)} not 200 ({sum(r[2] == 502 for r in bad)} x 502); "
        f"nginx: {len(lost)} sent and reset, {len(refusals)} connects refused; "
        f"stop took {exited - sent_term:.2f}s"
    )
    print("\n" + summary)
    assert [r.status for r in slow] == [200, 200], (slow, summary, s.diagnostics())
    assert code == 0, f"exit code {code}: {summary}\n{s.diagnostics()}"
    assert not lost, f"requests nginx had sent were reset: {summary}\n{s.diagnostics()}"
    # Every 502 is a connect nginx saw refused (it could have gone to another upstream).
    assert sum(r[2] == 502 for r in bad) <= len(refusals), f"{summary}\n{s.diagnostics()}"
    assert all(r[2] == 502 for r in bad), f"failures other than 502: {bad[:5]}; {summary}"
    assert refused(s.server.address), "the socket still accepts connections after the master exited"


def test_sigterm_refuses_new_connects_while_requests_finish(server, tmp_path):
    """Within moments of SIGTERM a new connect is refused, though a 2-second request still runs:
    the listening socket is closed everywhere, in the master too."""
    srv = server("--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--threads", "2")
    with ThreadPoolExecutor(1) as pool:
        marker = tmp_path / "sleeping"
        running = pool.submit(srv.get, "/sleep", f"s=2&{started_query(marker)}", 30.0)
        assert wait_until(marker.exists), srv.log()
        os.kill(srv.pid, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while not refused(srv.address):
            assert time.monotonic() < deadline, "new connects still accepted 1 s after SIGTERM"
            time.sleep(0.02)
        assert not running.done(), "the long request ended before the check"
        status, _, body = running.result(timeout=30)
    assert status.endswith("200 OK") and body == b"slept 2.000\n", (status, body)
    assert srv.proc.wait(10) == 0
    assert gone(srv.pid)
