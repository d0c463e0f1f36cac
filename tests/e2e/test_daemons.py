"""Attached daemons: --attach-daemon (foreground, restarted when it dies, with back-off when it dies
young, stopped at exit and on reload), --smart-attach-daemon (a pidfile; survives reloads) and
--attach-daemon2's keyval form (control=1 stops the instance with it).

The daemons are `sleep`s under a shell that records its pid; every process stopped is one the
test started or a daemon of the master it started, by pid.
"""

import os
import re
import signal
import time
from pathlib import Path

from harness import example, gone, wait_until

HELLO = example("hello.py")


def pids_in(path):
    try:
        return [int(p) for p in Path(path).read_text().split()]
    except FileNotFoundError:
        return []


def test_attach_daemon_lifecycle(server, tmp_path):
    record = tmp_path / "pids"
    cmd = f"echo $$ >> {record}; exec sleep 60"
    srv = server("--wsgi-file", HELLO, "--processes", "2", "--attach-daemon", cmd)
    first = wait_until(lambda: pids_in(record), 10)
    assert len(first) == 1, (first, srv.log())
    # The daemon may record its pid before the master's line about it reaches the log.
    assert srv.wait_for_log(r"\[rwsgi-daemons\] spawning"), srv.log()
    log = srv.log()
    assert log.index("spawned rwsgi worker 2") < log.index("[rwsgi-daemons] spawning"), log
    assert not gone(first[0])

    # Dies: started again (it lived long enough: no back-off).
    time.sleep(1.1)
    os.kill(first[0], signal.SIGKILL)
    second = wait_until(lambda: pids_in(record)[1:], 5)
    assert second and second[0] != first[0], srv.log()
    assert "[rwsgi-daemons] respawning" in srv.log()

    # A reload stops it and the reloaded master starts it again.
    offset = srv.log_size()
    os.kill(srv.pid, signal.SIGHUP)
    third = wait_until(lambda: pids_in(record)[2:], 20)
    assert third, srv.log_since(offset)
    assert wait_until(lambda: gone(second[0]), 5), "the daemon survived the reload"
    srv.assert_serves()

    # Stopped with the instance.
    os.kill(srv.pid, signal.SIGTERM)
    assert srv.proc.wait(15) == 0
    assert wait_until(lambda: gone(third[0]), 5), "the daemon outlived the master"


def test_attach_daemon_dying_young_is_throttled(server, tmp_path):
    record = tmp_path / "runs"
    srv = server("--wsgi-file", HELLO, "--attach-daemon", f"echo x >> {record}; exit 3")
    assert wait_until(lambda: re.findall(r"throttling .* for (\d+\.\d) seconds", srv.log())[1:], 10), srv.log()
    waits = [float(w) for w in re.findall(r"throttling .* for (\d+\.\d) seconds", srv.log())]
    assert waits[1] > waits[0], waits
    runs = len(Path(record).read_text().split())
    assert runs <= 6, f"{runs} runs within a few seconds: no back-off"
    srv.assert_serves()


def test_smart_attach_daemon_survives_reloads(server, tmp_path):
    pidfile = tmp_path / "d.pid"
    # Daemonizes itself: the launcher exits, the sleep runs on with its pid in the file.
    cmd = f"{pidfile} sh -c 'sleep 60 & echo $! > {pidfile}'"
    srv = server("--wsgi-file", HELLO, "--smart-attach-daemon", cmd)
    first = wait_until(lambda: pids_in(pidfile), 10)
    assert first and not gone(first[0]), srv.log()

    offset = srv.log_size()
    os.kill(srv.pid, signal.SIGHUP)
    assert srv.wait_for_log(r"already runs \(pid: %d" % first[0], offset, timeout=20), srv.log_since(offset)
    assert pids_in(pidfile) == first and not gone(first[0])

    os.kill(first[0], signal.SIGKILL)
    restarted = wait_until(lambda: [p for p in pids_in(pidfile) if p != first[0]], 8)
    assert restarted and not gone(restarted[0]), srv.log()

    os.kill(srv.pid, signal.SIGTERM)
    assert srv.proc.wait(15) == 0
    assert wait_until(lambda: gone(restarted[0]), 5), "the smart daemon outlived the master"


def test_attach_daemon2_control_stops_the_instance(server, tmp_path):
    record = tmp_path / "pids"
    srv = server("--wsgi-file", HELLO, "--attach-daemon2", f"cmd=echo $$ >> {record}; exec sleep 60,control=1")
    pid = wait_until(lambda: pids_in(record), 10)
    assert pid, srv.log()
    os.kill(pid[0], signal.SIGTERM)
    assert srv.proc.wait(15) == 0
    assert "control daemon" in srv.log()
