"""The master FIFO (--master-fifo) and --touch-chain-reload, end to end through nginx.

uWSGI's letters: c chain reload (workers replaced one at a time, each once its successor accepts),
r graceful reload, w/W reload the workers only, q graceful stop, Q fast stop, s stats to the log.
Load loops are bounded; every process stopped is one the test started, by pid.
"""

import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import example, gone, started_query, wait_until
from test_process_model import Load, failures, pid_of, ppid, reloadable_copy, set_version, version_of, wait_children

BEHAVIOUR = example("behaviour.py")


def send(fifo, letters):
    # O_NONBLOCK: the master holds the FIFO open, so this never waits; a missing reader is an error.
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, letters.encode())
    finally:
        os.close(fd)


def _chain_under_load(s, app, trigger):
    """Two lazy-apps workers under load from 3 clients; rewrite the app, trigger a chain reload:
    no request fails, the workers are replaced one at a time, and every later request gets B."""
    master = s.server.pid
    offset = s.server.log_size()
    old_workers = wait_children(master, 2)
    with Load(s.nginx.port, "/", threads=3, max_s=10) as load:
        assert load.wait_for(lambda r: r[2] == 200, timeout=5), s.diagnostics()
        time.sleep(0.5)
        set_version(app, "B")
        trigger()
        done = s.server.wait_for_log(r"chain reloading complete", offset, timeout=8)
        time.sleep(0.5)
        results = load.finish()
    assert done, f"the chain reload did not complete\n{s.diagnostics()}"
    assert not failures(results), f"{len(failures(results))} failed requests: {failures(results)[:5]}\n{s.diagnostics()}"
    log = s.server.log_since(offset)
    victims = re.findall(r"chain next victim is worker (\d+)", log)
    assert victims == ["1", "2"], (victims, log[-3000:])
    # One at a time: worker 2 is told to go only after worker 1's successor was spawned.
    assert log.index("chain next victim is worker 2") > log.index("Respawned rwsgi worker 1"), log[-3000:]
    later = [r for r in results if r[0] > time.monotonic() - 0.4]
    assert later and all(version_of(r) == "B" for r in later), later[:3]
    assert {pid_of(r) for r in later}.isdisjoint(old_workers)
    assert s.server.pid == master and s.server.alive()
    print(f"chain reload under load: {len(results)} requests, {len(failures(results))} failed")
    return results


def test_fifo_chain_reload_under_load_loses_nothing(stack, tmp_path):
    app = reloadable_copy(tmp_path)
    fifo = tmp_path / "master.fifo"
    s = stack("--wsgi-file", app, "--lazy-apps", "--processes", "2", "--threads", "2", "--master-fifo", fifo)
    assert s.server.wait_for_log(r"master fifo .* ready", timeout=5), s.diagnostics()
    _chain_under_load(s, app, lambda: send(fifo, "c"))


def test_touch_chain_reload(stack, tmp_path):
    app = reloadable_copy(tmp_path)
    trigger = tmp_path / "chain.trigger"
    trigger.write_text("")
    past = time.time() - 60
    os.utime(trigger, (past, past))
    s = stack("--wsgi-file", app, "--lazy-apps", "--processes", "2", "--threads", "2", "--touch-chain-reload", trigger)
    _chain_under_load(s, app, lambda: os.utime(trigger))


def test_fifo_stats_and_worker_reloads(stack, tmp_path):
    fifo = tmp_path / "master.fifo"
    s = stack("--wsgi-file", BEHAVIOUR, "--processes", "2", "--master-fifo", fifo)
    master = s.server.pid
    assert s.get("/pid").status == 200
    offset = s.server.log_size()
    send(fifo, "s")
    assert s.server.wait_for_log(r"\*\*\* end of rwsgi stats \*\*\*", offset, timeout=5), s.diagnostics()
    assert re.search(r"^.*\b1\t\d+\t\d+\t", s.server.log_since(offset), re.M), s.server.log_since(offset)
    for letter in ("w", "W"):
        before = wait_children(master, 2)
        offset = s.server.log_size()
        send(fifo, letter)
        assert s.server.wait_for_log(r"reloading workers", offset, timeout=5), s.diagnostics()
        end = time.monotonic() + 10
        while time.monotonic() < end and (children_now := wait_children(master, 2, timeout=1)) & before:
            time.sleep(0.1)
        assert not (children_now & before), f"{letter}: old workers {before} still run: {children_now}"
        r = s.get("/pid")
        assert r.status == 200 and int(r.body) not in before and ppid(int(r.body)) == master
    # r: graceful reload re-executes the master under the same pid.
    offset = s.server.log_size()
    send(fifo, "r")
    assert s.server.wait_for_log(r"binary reloading rwsgi", offset, timeout=10), s.diagnostics()
    assert s.server.wait_for_log(r"spawned rwsgi worker 2", offset, timeout=20), s.diagnostics()
    assert s.server.alive() and s.server.pid == master
    assert s.get("/pid").status == 200


def test_fifo_q_stops_gracefully(stack, tmp_path):
    fifo = tmp_path / "master.fifo"
    s = stack("--wsgi-file", BEHAVIOUR, "--threads", "2", "--master-fifo", fifo)
    with ThreadPoolExecutor(max_workers=1) as pool:
        marker = tmp_path / "sleeping"
        pending = pool.submit(s.get, f"/sleep?s=1.5&{started_query(marker)}", timeout=30)
        assert wait_until(marker.exists), s.diagnostics()
        send(fifo, "q")
        r = pending.result(timeout=30)
    assert r.status == 200 and r.body == b"slept 1.500\n", (r, s.diagnostics())
    assert s.server.proc.wait(10) == 0, s.diagnostics()
    assert "graceful shutdown" in s.server.log()


def test_fifo_Q_stops_at_once(stack, tmp_path):
    fifo = tmp_path / "master.fifo"
    s = stack("--wsgi-file", BEHAVIOUR, "--threads", "2", "--master-fifo", fifo)
    with ThreadPoolExecutor(max_workers=1) as pool:
        marker = tmp_path / "sleeping"
        pending = pool.submit(s.get, f"/sleep?s=20&{started_query(marker)}", timeout=30)
        assert wait_until(marker.exists), s.diagnostics()
        started = time.monotonic()
        send(fifo, "Q")
        try:
            s.server.proc.wait(8)
        except subprocess.TimeoutExpired:
            pytest.fail(f"Q did not stop the server within 8 s\n{s.diagnostics()}")
        r = pending.result(timeout=30)
    assert time.monotonic() - started < 8
    assert r.status == 502, f"the in-flight request should be cut off: {r}"
    assert "fast shutdown" in s.server.log()
