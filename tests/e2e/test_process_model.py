"""The process model end to end: the real binary behind a real nginx, one behaviour per test.

Worker death and respawn, harakiri, --max-requests recycling, graceful SIGTERM, graceful reload
(SIGHUP, --touch-reload; prefork and --lazy-apps), uwsgitop reading the stats, an app that cannot
load (with and without a master), a worker dying in a loop, wsgi.multiprocess, --pidfile/--vacuum.

Every loop here is bounded by a deadline, every socket is on loopback or a unix path, and every
process a test stops is one it started (or a worker of a master it started), by pid.
"""

import errno
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import (
    REPO,
    children,
    example,
    free_port,
    gone,
    http_request,
    read_stats,
    started_query,
    stop_process,
    tail,
    virtualenv_path,
    wait_until,
)

BEHAVIOUR = example("behaviour.py")


# --------------------------------------------------------------------------- helpers




def wait_gone(pid, timeout):
    end = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def wait_children(pid, count, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        kids = children(pid)
        if len(kids) == count or time.monotonic() > end:
            return kids
        time.sleep(0.05)


def ppid(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError(f"no PPid in /proc/{pid}/status")




def connection_refused(address):
    """True if a new TCP connection to `address` is refused."""
    try:
        socket.create_connection(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    except OSError as err:
        return err.errno == errno.ECONNREFUSED
    return False


class Load:
    """`threads` clients sending GET `path` through nginx back to back until stopped or
    `max_s` has passed. Each result is (started, ended, status or None, body or error text)."""

    def __init__(self, port, path, threads, max_s):
        self.port, self.path, self.max_s = port, path, max_s
        self.stop = threading.Event()
        self.results = []
        self._lock = threading.Lock()
        # A client holds its gate for the whole of each request: whoever holds every gate knows
        # no request of ours is in flight.
        self.gates = [threading.Lock() for _ in range(threads)]
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.finish()

    def _run(self, i):
        end = time.monotonic() + self.max_s
        while not self.stop.is_set() and time.monotonic() < end:
            with self.gates[i]:
                started = time.monotonic()
                try:
                    r = http_request(self.port, "GET", self.path, timeout=30)
                    result = (started, time.monotonic(), r.status, r.body)
                except Exception as err:  # noqa: BLE001 - every failure is a result to report
                    result = (started, time.monotonic(), None, repr(err))
            with self._lock:
                self.results.append(result)

    def finish(self):
        self.stop.set()
        for t in self._threads:
            t.join(40)
        assert not any(t.is_alive() for t in self._threads), "a load thread did not finish"
        return sorted(self.results)

    def snapshot(self):
        with self._lock:
            return list(self.results)

    def wait_for(self, predicate, timeout):
        """Wait (bounded) until some result satisfies `predicate`; return the first such one."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hits = sorted(r for r in self.snapshot() if predicate(r))
            if hits:
                return hits[0]
            time.sleep(0.02)
        return None

    def pause(self):
        """Hold every gate: no request of ours is in flight until `resume`."""
        for gate in self.gates:
            gate.acquire()

    def resume(self):
        for gate in self.gates:
            gate.release()


def failures(results):
    return [r for r in results if r[2] != 200]


def launch(rwsgi_bin, args, log_path):
    """Start rwsgi like the harness does, without waiting for it to answer a PING (for servers that
    are expected never to become ready). Returns the Popen; the `launched` fixture stops it."""
    cmd = [str(rwsgi_bin), "--socket", f"127.0.0.1:{free_port()}"]
    venv = virtualenv_path()
    if venv:
        cmd += ["--virtualenv", venv]
    cmd += [str(a) for a in args]
    log = open(log_path, "wb")
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return proc


@pytest.fixture
def launched(request, rwsgi_bin, tmp_path):
    """Factory: `launched(*args)` -> (Popen, log path); stopped by pid at teardown."""
    procs = []

    def start(*args):
        log_path = tmp_path / f"rwsgi{len(procs)}.log"
        proc = launch(rwsgi_bin, args, log_path)
        procs.append((proc, log_path))
        return proc, log_path

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for proc, log_path in procs:
        stop_process(proc)
        if failed:
            print(f"\n--- server log {log_path}:\n{tail(log_path)}")


def reloadable_copy(directory, version="A"):
    """A copy of examples/reloadable.py saying `version`, dated a minute ago so that a rewrite
    within the same second can never be mistaken for the cached bytecode of the old one."""
    app = Path(directory) / "reloadable_app.py"
    shutil.copy(example("reloadable.py"), app)
    set_version(app, version)
    past = time.time() - 60
    os.utime(app, (past, past))
    return app


def set_version(app, version):
    text = app.read_text()
    new = re.sub(r'^VERSION = ".*"$', f'VERSION = "{version}"', text, count=1, flags=re.M)
    assert new != text or f'VERSION = "{version}"' in text, "examples/reloadable.py has no VERSION line"
    app.write_text(new)


def version_of(result_or_body):
    body = result_or_body if isinstance(result_or_body, bytes) else result_or_body[3]
    return body.split()[0].decode() if isinstance(body, bytes) and body else None


def pid_of(result_or_body):
    body = result_or_body if isinstance(result_or_body, bytes) else result_or_body[3]
    return int(body.split()[-1])


# --------------------------------------------------------------------------- worker death


def test_sigkilled_worker_is_replaced_and_requests_keep_succeeding(stack):
    """SIGKILL one of two workers while two clients keep sending requests through nginx.

    A request the victim is running when it dies is lost by nature (no server can answer from a
    dead process), so the kill happens while the load holds its gates, i.e. with no request of
    ours in flight, and the load resumes only once the victim is dead: every request sent while
    the worker is missing, while it is respawned, and after, must get a 200.
    """
    stats_port = free_port()
    s = stack(
        "--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--threads", "2",
        "--stats", f"127.0.0.1:{stats_port}",
    )
    master = s.server.pid
    workers = wait_children(master, 2)
    assert len(workers) == 2, f"expected 2 workers under master {master}, found {workers}"
    victim = min(workers)
    log_offset = s.server.log_size()

    with Load(s.nginx.port, "/pid", threads=2, max_s=15) as load:
        time.sleep(0.5)
        load.pause()
        try:
            os.kill(victim, signal.SIGKILL)
            assert wait_gone(victim, 5), f"worker {victim} survived SIGKILL"
            killed_at = time.monotonic()
        finally:
            load.resume()
        # Until a new pid answers (bounded), then a little more.
        fresh = load.wait_for(lambda r: r[2] == 200 and int(r[3]) not in workers, timeout=10)
        time.sleep(0.5)
        results = load.finish()

    assert not failures(results), f"failed requests: {failures(results)[:5]}\n{s.diagnostics()}"
    after = [r for r in results if r[0] >= killed_at]
    assert len(after) >= 10, f"only {len(after)} requests were sent after the kill"
    assert fresh is not None, f"no response came from a new worker; pids seen: {sorted({int(r[3]) for r in results})}"
    assert victim not in {int(r[3]) for r in after}, "the killed worker answered after its death"
    assert s.server.wait_for_log(rf"DAMN ! worker \d+ \(pid: {victim}\)", log_offset, timeout=5), s.diagnostics()

    stats = read_stats(stats_port)
    now = {w["pid"] for w in stats["workers"]}
    assert victim not in now and len(now) == 2, f"stats workers {now}, victim {victim}"
    new = now - workers
    assert len(new) == 1, f"stats should show exactly one new worker pid: {now} vs {workers}"
    assert new == children(master) - workers, "the new worker is not a child of the master"
    assert int(fresh[3]) in new
    by_pid = {w["pid"]: w["respawn_count"] for w in stats["workers"]}
    (new_pid,) = new
    (survivor,) = now - new
    assert by_pid[new_pid] > by_pid[survivor], f"respawn_count does not show the respawn: {by_pid}"


# --------------------------------------------------------------------------- harakiri


def test_harakiri_answers_504_while_the_sibling_request_completes(stack, tmp_path):
    s = stack("--wsgi-file", BEHAVIOUR, "--master", "--processes", "1", "--threads", "2", "--harakiri", "2")
    before = s.get("/pid")
    assert before.status == 200, s.diagnostics()
    old_pid = int(before.body)
    log_offset = s.server.log_size()

    def timed(path):
        started = time.monotonic()
        r = s.get(path, timeout=30)
        return r, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        marker = tmp_path / "slow.started"
        slow = pool.submit(timed, f"/sleep?s=5&{started_query(marker)}")
        assert wait_until(marker.exists), s.diagnostics()
        sibling = pool.submit(timed, "/sleep?s=1.5")
        (slow_r, slow_s), (sib_r, sib_s) = slow.result(timeout=30), sibling.result(timeout=30)

    assert slow_r.status == 504, (slow_r, s.diagnostics())
    assert b"harakiri" in slow_r.body, f"the 504 is not the server's harakiri answer: {slow_r.body!r}"
    assert slow_s < 3.5, f"the harakiri answer took {slow_s:.2f}s (limit 2 s)"
    assert sib_r.status == 200, (sib_r, s.diagnostics())
    assert sib_r.body == b"slept 1.500\n"
    assert 1.4 < sib_s < 3.0, f"the sibling request took {sib_s:.2f}s"
    assert s.server.wait_for_log(r"HARAKIRI", log_offset, timeout=5), s.diagnostics()

    after = s.get("/pid")
    assert after.status == 200, s.diagnostics()
    assert int(after.body) != old_pid, "the worker that hit harakiri still serves"
    assert ppid(int(after.body)) == s.server.pid
    assert s.server.alive()


# --------------------------------------------------------------------------- max-requests


def test_max_requests_recycles_without_failing_a_request(stack):
    """200 requests from 4 clients on one 2-thread worker with --max-requests 20: every one gets a
    200, at least 3 worker pids answer, and no worker serves much more than its 20."""
    s = stack(
        "--wsgi-file", BEHAVIOUR, "--master", "--processes", "1", "--threads", "2",
        "--max-requests", "20", "--min-worker-lifetime", "0",
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda i: s.get(f"/pid?n={i}", timeout=30), range(200)))
    bad = [(r.status, r.body[:80]) for r in responses if r.status != 200]
    assert not bad, f"{len(bad)} failed requests, e.g. {bad[:3]}\n{s.diagnostics()}"
    served = {}
    for r in responses:
        served[int(r.body)] = served.get(int(r.body), 0) + 1
    pids = set(served)
    assert len(pids) >= 3, (
        f"200 requests with --max-requests 20 were served by only {len(pids)} workers (requests per pid: {served})\n"
        f"{s.diagnostics()}"
    )
    # A worker stops taking requests once it has served its 20; allow it a few it had already
    # accepted on its threads (uWSGI checks after each request, in the worker itself).
    assert max(served.values()) <= 2 * 20, (
        f"a worker served far past --max-requests 20 (requests per pid: {served})\n{s.diagnostics()}"
    )
    assert s.server.pid not in pids
    assert re.search(r"max-requests reached", s.server.log()), s.diagnostics()


# --------------------------------------------------------------------------- SIGTERM


def test_sigterm_lets_the_inflight_request_finish(stack, tmp_path):
    s = stack("--wsgi-file", BEHAVIOUR, "--master", "--processes", "1", "--threads", "2")
    with ThreadPoolExecutor(max_workers=1) as pool:
        marker = tmp_path / "sleeping"
        pending = pool.submit(s.get, f"/sleep?s=2&{started_query(marker)}", timeout=30)
        assert wait_until(marker.exists), s.diagnostics()
        os.kill(s.server.pid, signal.SIGTERM)
        r = pending.result(timeout=30)
    assert r.status == 200, (r, s.diagnostics())
    assert r.body == b"slept 2.000\n"
    try:
        code = s.server.proc.wait(5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the master still runs 5 s after its last request finished\n{s.diagnostics()}")
    assert code == 0, f"exit code {code}\n{s.diagnostics()}"
    assert connection_refused(s.server.address), "the socket still accepts connections after the master exited"


# --------------------------------------------------------------------------- reloads


def _reload_under_load(s, app, trigger, lazy):
    """Steady load, rewrite the app to B, `trigger()` the reload; check nothing was lost."""
    master = s.server.pid
    log_offset = s.server.log_size()
    with Load(s.nginx.port, "/", threads=2, max_s=8) as load:
        first_a = load.wait_for(lambda r: r[2] == 200, timeout=5)
        assert first_a is not None and version_of(first_a) == "A", (first_a, s.diagnostics())
        time.sleep(1.0)
        set_version(app, "B")
        trigger()
        first_b = load.wait_for(lambda r: r[2] == 200 and version_of(r) == "B", timeout=6)
        time.sleep(0.7)
        results = load.finish()

    assert not failures(results), f"failed requests: {failures(results)[:5]}\n{s.diagnostics()}"
    assert first_b is not None, f"no response said B; versions: {sorted({version_of(r) for r in results})}\n{s.diagnostics()}"
    assert any(version_of(r) == "A" for r in results)
    later = [r for r in results if r[0] > first_b[1]]
    assert len(later) >= 5, f"only {len(later)} requests after the first B"
    stale = [r for r in later if version_of(r) != "B"]
    assert not stale, f"{len(stale)} requests sent after the reload got old code: {stale[:3]}"
    assert s.server.alive() and s.server.pid == master
    new_pids = {pid_of(r) for r in later}
    assert new_pids.isdisjoint({pid_of(r) for r in results if version_of(r) == "A"})
    for pid in new_pids:
        if not gone(pid):
            assert ppid(pid) == master, f"worker {pid} serving B is not a child of master {master}"
    expect = "replacing every worker" if lazy else "reloading the master"
    assert s.server.wait_for_log(re.escape(expect), log_offset, timeout=2), s.diagnostics()
    return results


@pytest.mark.parametrize("mode", ["prefork", "lazy-apps"])
def test_sighup_under_load_loses_nothing_and_serves_new_code(stack, tmp_path, mode):
    """SIGHUP while two clients keep requesting: every response is 200, once a response says B
    every later request gets B, and the master keeps its pid. Prefork reloads by stopping the
    workers and re-executing the master on the same listening socket; --lazy-apps replaces the
    workers one by one (two of them here) beside the old ones finishing their requests."""
    app = reloadable_copy(tmp_path)
    extra = ["--lazy-apps", "--processes", "2"] if mode == "lazy-apps" else ["--processes", "1"]
    s = stack("--wsgi-file", app, "--master", "--threads", "2", *extra)
    _reload_under_load(s, app, lambda: os.kill(s.server.pid, signal.SIGHUP), lazy=mode == "lazy-apps")


def test_touch_reload_serves_new_code(stack, tmp_path):
    app = reloadable_copy(tmp_path)
    trigger = tmp_path / "reload.trigger"
    trigger.write_text("")
    past = time.time() - 60
    os.utime(trigger, (past, past))
    s = stack("--wsgi-file", app, "--master", "--threads", "2", "--touch-reload", trigger)
    master = s.server.pid
    first = s.get("/")
    assert first.status == 200 and version_of(first.body) == "A", (first, s.diagnostics())

    # Rewriting the app alone reloads nothing: only touching the trigger does.
    set_version(app, "B")
    time.sleep(0.5)
    still = s.get("/")
    assert still.status == 200 and version_of(still.body) == "A", "the app changed without a touch"

    os.utime(trigger)
    end = time.monotonic() + 10
    seen = []
    while time.monotonic() < end:
        r = s.get("/", timeout=30)
        seen.append((r.status, r.body))
        assert r.status == 200, (r, s.diagnostics())
        if version_of(r.body) == "B":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"still serving the old code 10 s after touching {trigger}: {seen[-3:]}\n{s.diagnostics()}")
    assert s.server.alive() and s.server.pid == master
    assert ppid(pid_of(r.body)) == master
    assert re.search(r"was touched", s.server.log()), s.diagnostics()


# --------------------------------------------------------------------------- uwsgitop


def test_uwsgitop_reads_our_stats(stack, tmp_path):
    """uwsgitop is a curses program with no one-shot mode (`uwsgitop --help` offers only
    --frequency), so it runs here as a user runs it: in a terminal, a pseudo-terminal of 200x50
    with TERM=xterm. Its screen output is collected for a few refreshes, then it is sent `q`
    (its quit key). It must not crash (no traceback, exits 0 on `q`) and must show the master pid
    and each worker pid it read from our stats socket."""
    stats_port = free_port()
    s = stack(
        "--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--threads", "2",
        "--stats", f"127.0.0.1:{stats_port}",
    )
    for _ in range(4):
        assert s.get("/hello").status == 200
    workers = wait_children(s.server.pid, 2)
    assert len(workers) == 2

    uwsgitop = Path(os.environ.get("VIRTUAL_ENV") or virtualenv_path() or REPO / ".venv") / "bin" / "uwsgitop"
    assert uwsgitop.is_file(), f"uwsgitop is not installed at {uwsgitop}: pip install uwsgitop into the test venv"
    main_fd, sub_fd = pty.openpty()
    fcntl.ioctl(sub_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = dict(os.environ, TERM="xterm", LINES="50", COLUMNS="200")
    proc = subprocess.Popen(
        [str(uwsgitop), "--frequency", "1", f"127.0.0.1:{stats_port}"],
        stdin=sub_fd, stdout=sub_fd, stderr=sub_fd, env=env, start_new_session=True,
    )
    os.close(sub_fd)
    screen = b""
    try:
        wanted = [str(s.server.pid).encode()] + [str(w).encode() for w in workers]
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(main_fd, 65536)
                except OSError:  # EIO: the program exited and closed the terminal
                    break
                if not data:
                    break
                screen += data
            if proc.poll() is not None:
                break
            if time.monotonic() > end - 2.5 and all(w in screen for w in wanted):
                break  # at least two seconds of refreshes, and everything shown
        if proc.poll() is None:
            os.write(main_fd, b"q")
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        while True:  # what it printed on the way out (a traceback, if any)
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if not ready:
                break
            try:
                data = os.read(main_fd, 65536)
            except OSError:
                break
            if not data:
                break
            screen += data
    finally:
        stop_process(proc, 5)
        os.close(main_fd)

    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]", b" ", screen).decode("utf-8", "replace")
    (tmp_path / "uwsgitop.screen").write_text(text)
    assert "Traceback" not in text and "unable to get" not in text, f"uwsgitop failed:\n{text[-3000:]}"
    assert code == 0, f"uwsgitop did not quit cleanly on `q` (code {code}):\n{text[-3000:]}"
    assert re.search(rf"masterpid: {s.server.pid}\b", text), f"no masterpid in uwsgitop's screen:\n{text[-3000:]}"
    assert re.search(r"\bWID\b.*\bPID\b.*\bREQ\b", text), f"no worker table header:\n{text[-3000:]}"
    for w in workers:
        assert re.search(rf"\b{w}\b", text), f"worker pid {w} not on uwsgitop's screen:\n{text[-3000:]}"


# --------------------------------------------------------------------------- apps that cannot load


def test_lazy_app_failing_at_import_stops_the_master(launched):
    """With --lazy-apps the master imports nothing, so an app that raises at import fails in every
    worker: the master must exit non-zero saying so, not respawn the workers forever."""
    proc, log_path = launched(
        "--wsgi-file", example("broken_import.py"), "--master", "--lazy-apps", "--processes", "2",
    )
    try:
        code = proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the master still runs 20 s after its workers failed to load the app:\n{tail(log_path)}")
    log = log_path.read_text(errors="replace")
    assert code != 0, f"exit code {code}:\n{log}"
    assert re.search(r"could not load the app", log), log
    assert "RuntimeError: examples/broken_import.py fails at import on purpose" in log, log
    assert len(re.findall(r"Respawned rwsgi worker", log)) <= 2, f"workers were respawned in a loop:\n{log}"


def test_need_app_default_exits_with_the_traceback_without_master(launched):
    proc, log_path = launched("--wsgi-file", example("broken_import.py"))
    try:
        code = proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server still runs 20 s after its app failed to import:\n{tail(log_path)}")
    log = log_path.read_text(errors="replace")
    assert code != 0, f"exit code {code}:\n{log}"
    assert "Traceback (most recent call last)" in log, log
    assert "RuntimeError: examples/broken_import.py fails at import on purpose" in log, log
    assert "broken_import.py" in log.split("Traceback", 1)[1], "the traceback does not name the app file"


def test_worker_dying_at_spawn_is_respawned_with_backoff(launched):
    """Each worker exits (code 3) while importing the --lazy-apps app. Respawning on every 0.1 s
    tick would mean ~50 deaths in 5 s; with a doubling back-off there are only a handful, the
    log says how long the master waits, and the master itself keeps running."""
    proc, log_path = launched("--wsgi-file", example("dies_at_import.py"), "--master", "--lazy-apps")
    time.sleep(5)
    log = log_path.read_text(errors="replace")
    assert proc.poll() is None, f"the master exited (code {proc.returncode}) instead of backing off:\n{log}"
    deaths = re.findall(r"DAMN ! worker 1 \(pid: (\d+)\) died, exited with code 3", log)
    assert 2 <= len(deaths) <= 10, f"{len(deaths)} worker deaths in 5 s:\n{log}"
    waits = [float(w) for w in re.findall(r"respawning in ([0-9.]+)s", log)]
    assert waits and waits == sorted(waits) and waits[-1] > waits[0], f"no growing back-off: {waits}\n{log}"
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the master ignored SIGTERM while backing off:\n{tail(log_path)}")
    assert code == 0, f"exit code {code}:\n{tail(log_path)}"


# --------------------------------------------------------------------------- environ, pidfile


@pytest.mark.parametrize("processes, expected", [(1, False), (2, True)])
def test_wsgi_multiprocess_follows_processes(stack, processes, expected):
    s = stack("--wsgi-file", BEHAVIOUR, "--master", "--processes", str(processes))
    r = s.get("/environ")
    assert r.status == 200, s.diagnostics()
    assert json.loads(r.body)["wsgi.multiprocess"] is expected


def test_pidfile_holds_the_master_pid_and_vacuum_removes_it_and_the_socket(server, tmp_path):
    pidfile = tmp_path / "rwsgi.pid"
    srv = server("--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--pidfile", pidfile, "--vacuum",
                 transport="unix")
    assert pidfile.read_text().strip() == str(srv.pid)
    assert Path(srv.address).exists()
    srv.assert_serves("/hello")
    workers = wait_children(srv.pid, 2)
    os.kill(srv.pid, signal.SIGTERM)
    try:
        code = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the master did not exit within 10 s of SIGTERM:\n{tail(srv.log_path)}")
    assert code == 0, tail(srv.log_path)
    assert not pidfile.exists(), "--vacuum left the pidfile behind"
    assert not Path(srv.address).exists(), "--vacuum left the unix socket behind"
    assert all(wait_gone(w, 5) for w in workers), "workers outlived the master"


# --------------------------------------------------------------------------- gc.freeze before fork

FREEZE_APP = """
import gc

IMPORTED = [{"made": "at import"} for _ in range(1000)]

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(gc.get_freeze_count()).encode()]
"""


@pytest.mark.parametrize(
    "flags, frozen",
    [((), True), (("--gc-freeze=false",), False), (("--lazy-apps",), False)],
    ids=["default", "off", "lazy-apps"],
)
def test_gc_freeze_before_fork(server, tmp_path, flags, frozen):
    """The master freezes what the import made before forking (the workers' collections then leave
    those pages shared); not when asked not to, and not with --lazy-apps (nothing to share)."""
    app = tmp_path / "freeze_app.py"
    app.write_text(FREEZE_APP)
    srv = server("--wsgi-file", app, "--master", "--processes", "2", *flags)
    status, _, body = srv.get("/")
    assert status.startswith("HTTP/1.1 200"), (status, body, srv.log())
    count = int(body)
    if frozen:
        assert count >= 1000, f"only {count} objects frozen in the worker"
    else:
        assert count == 0, f"{count} objects frozen in the worker"
