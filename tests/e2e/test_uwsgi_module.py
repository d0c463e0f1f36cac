"""The app's view of the server: the built-in `uwsgi` module, rwsgi's `uwsgidecorators`, post-fork
hooks, timers and crons, user locks, log variables, and the stack dumps that say where a request
hangs. The app is examples/uwsgi_api.py (Flask), the same file scripts/compare-uwsgi-api.sh runs
under the real uWSGI.
"""

import json
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import EXAMPLES, example, gone, wait_until

API = example("uwsgi_api.py")


def api_server(server, tmp_path, *extra, env=None):
    full_env = {"API_STATE_DIR": str(tmp_path)}
    full_env.update(env or {})
    return server(
        "--master", "--wsgi-file", API, "--pythonpath", str(EXAMPLES), *extra, env=full_env
    )


def info(srv):
    status, _, body = srv.get("/info")
    assert status.startswith("HTTP/1.1 200"), (status, body)
    return json.loads(body)


def lines(path):
    try:
        return [l.split() for l in path.read_text().splitlines() if l.strip()]
    except FileNotFoundError:
        return []


def workers_seen(srv, count, rounds=20):
    """/info from each of `count` workers: concurrent slow requests fill one worker's threads, so
    the kernel hands the rest to the others."""
    seen = {}
    with ThreadPoolExecutor(16) as pool:
        for _ in range(rounds):
            replies = pool.map(lambda _: srv.get("/info", query="sleep=0.2"), range(16))
            for status, _, body in replies:
                assert status.startswith("HTTP/1.1 200"), (status, body)
                data = json.loads(body)
                seen[data["worker_id"]] = data
            if len(seen) == count:
                break
    return seen


def test_the_module_answers_as_uwsgi_does(server, tmp_path):
    srv = api_server(server, tmp_path, "--processes", "2", "--threads", "2")
    data = info(srv)
    assert data["worker_id"] in (1, 2)
    assert data["masterpid"] == srv.pid
    assert data["numproc"] == 2
    assert data["version"].startswith("2.0.")
    assert data["hostname_is_bytes"]
    assert data["enable_threads"], "libraries (ddtrace) refuse to start without enable-threads"
    assert data["opt"]["master"] is True
    assert data["opt"]["threads"] == "2" and data["opt"]["processes"] == "2"
    assert data["opt"]["wsgi-file"] == API
    assert data["workers"] == [1, 2]
    assert data["buffer_size"] == 65535
    assert abs(data["started_on"] - time.time()) < 60
    assert data["locked_outside"] is False
    before = data["total_requests"]
    assert info(srv)["total_requests"] > before


def test_absent_features_raise_errors_that_name_them(server, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import uwsgi, uwsgidecorators\n"
        "def application(environ, start_response):\n"
        "    out = []\n"
        "    for name in ('cache_get', 'spool', 'mule_msg', 'sharedarea_read'):\n"
        "        out.append(str(hasattr(uwsgi, name)))\n"
        "        try:\n"
        "            getattr(uwsgi, name)\n"
        "        except AttributeError as e:\n"
        "            out.append(str(e))\n"
        "    for deco in (uwsgidecorators.spool, uwsgidecorators.mulefunc):\n"
        "        try:\n"
        "            deco(len)\n"
        "        except RuntimeError as e:\n"
        "            out.append(str(e))\n"
        "    try:\n"
        "        uwsgi.register_signal(3, 'spooler', len)\n"
        "    except ValueError as e:\n"
        "        out.append(str(e))\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return ['\\n'.join(out).encode()]\n"
    )
    srv = server("--master", "--wsgi-file", str(probe))
    status, _, body = srv.get("/")
    text = body.decode()
    assert status.startswith("HTTP/1.1 200"), text
    assert "True" not in text, text
    for words in ("rwsgi has no caches", "rwsgi has no spooler", "rwsgi has no mules", "rwsgi has no sharedareas"):
        assert words in text, (words, text)
    assert "@spool: rwsgi has no spooler" in text
    assert "@mulefunc: rwsgi has no mules" in text
    assert "no spooler, mules or farms" in text


def test_postfork_restarts_a_library_thread_in_every_worker(server, tmp_path):
    srv = api_server(server, tmp_path, "--processes", "2", "--threads", "4")
    seen = workers_seen(srv, 2)
    assert sorted(seen) == [1, 2], seen
    for wid, data in seen.items():
        assert data["postforks"] == [wid]
        # The tracer-like thread was started at import (in the master) and again by the hook.
        assert data["tracer"]["started_in"] == [srv.pid, data["pid"]]
        assert data["tracer"]["alive"], data
    # The master never runs post-fork hooks; each worker runs them once.
    ran = lines(tmp_path / "postfork")
    assert sorted(int(w) for w, _ in ran) == [1, 2]
    assert str(srv.pid) not in {pid for _, pid in ran}


def test_postfork_runs_again_after_a_respawn_and_a_reload(server, tmp_path):
    srv = api_server(server, tmp_path, "--processes", "1", "--threads", "2")
    first = info(srv)
    os.kill(first["pid"], signal.SIGKILL)
    second = wait_until(lambda: (d := info_or_none(srv)) and d["pid"] != first["pid"] and d, timeout=15)
    assert second, "no respawned worker answered"
    assert second["postforks"] == [1] and second["tracer"]["alive"], second
    offset = srv.log_size()
    os.kill(srv.pid, signal.SIGHUP)
    assert srv.wait_for_log(r"spawned rwsgi worker 1", offset=offset, timeout=20)
    third = wait_until(lambda: (d := info_or_none(srv)) and d["pid"] not in (first["pid"], second["pid"]) and d, timeout=20)
    assert third and third["postforks"] == [1] and third["tracer"]["alive"], third
    assert len(lines(tmp_path / "postfork")) == 3


def info_or_none(srv):
    try:
        return info(srv)
    except (OSError, AssertionError, ValueError):
        return None


def test_postfork_with_lazy_apps_runs_after_the_import_in_the_worker(server, tmp_path):
    srv = api_server(server, tmp_path, "--processes", "2", "--threads", "2", "--lazy-apps")
    seen = workers_seen(srv, 2)
    assert sorted(seen) == [1, 2]
    for data in seen.values():
        # Imported in the worker itself, then the hook started the thread a second time there.
        assert data["tracer"]["started_in"] == [data["pid"], data["pid"]]
        assert data["tracer"]["alive"]
        assert data["masterpid"] == srv.pid


def test_timer_and_cron_run_in_one_worker_beside_requests(server, tmp_path):
    srv = api_server(
        server, tmp_path, "--processes", "2", "--threads", "2", env={"API_TIMER_SLEEP": "0.6"}
    )
    # The cron (every minute) is checked at once, as uWSGI's is.
    assert wait_until(lambda: lines(tmp_path / "cron"), timeout=5), srv.log()
    # While timer handlers run (0.6 s each, about one a second), requests keep being answered fast.
    slowest = 0.0
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        t0 = time.monotonic()
        status, _, _ = srv.get("/info")
        assert status.startswith("HTTP/1.1 200")
        slowest = max(slowest, time.monotonic() - t0)
    fired = lines(tmp_path / "timer")
    assert 2 <= len(fired) <= 5, fired
    # Each raise went to one worker (never to the master), and the stamps are about 1 s apart.
    assert {int(f[1]) for f in fired} <= {1, 2}
    assert str(srv.pid) not in {f[2] for f in fired}
    stamps = [float(f[3]) for f in fired]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(0.7 < g < 1.6 for g in gaps), gaps
    assert slowest < 0.5, f"a request waited {slowest:.2f}s behind a timer handler"


def test_lock_serialises_every_thread_of_every_worker(server, tmp_path):
    srv = api_server(server, tmp_path, "--processes", "2", "--threads", "4")
    n = 120
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: srv.get("/incr")[0], range(n)))
    assert all(r.startswith("HTTP/1.1 200") for r in results)
    _, _, body = srv.get("/counter")
    assert int(body) == n, "an increment was lost: the lock did not hold across threads and workers"


def test_set_logvar_fills_the_log_format_for_that_request_only(server, tmp_path):
    srv = api_server(server, tmp_path, "--log-format", "LV %(method) %(uri) who=%(who)")
    srv.get("/logvar", query="v=ann")
    srv.get("/info")
    assert srv.wait_for_log(r"^LV GET /logvar\?v=ann who=ann$")
    assert srv.wait_for_log(r"^LV GET /info who=-$")


STACK_LINE = re.compile(r'File ".*uwsgi_api\.py", line \d+, in stuck_here\n\s+time\.sleep\(30\)')


def test_sigusr2_logs_the_busy_threads_stack_and_the_worker_goes_on(server, tmp_path):
    srv = api_server(server, tmp_path, "--processes", "1", "--threads", "2", "--reload-mercy", "1")
    pid = info(srv)["pid"]
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(lambda: srv.get("/stuck", timeout=2))
        assert wait_until((tmp_path / "stuck.started").exists), srv.log()
        offset = srv.log_size()
        os.kill(pid, signal.SIGUSR2)
        assert srv.wait_for_log(r"stack dump of worker 1 .* on SIGUSR2: 1 of 2 thread\(s\) busy", offset=offset)
        assert srv.wait_for_log(r"core \d: GET /stuck running for", offset=offset)
        assert srv.wait_for_log(STACK_LINE, offset=offset), srv.log_since(offset)
        # The worker is still the same process and still serves.
        assert info(srv)["pid"] == pid
        with pytest.raises(TimeoutError):
            stuck.result()


def test_harakiri_log_shows_where_the_request_hung(server, tmp_path):
    srv = api_server(server, tmp_path, "--processes", "1", "--threads", "2", "--harakiri", "1", "--reload-mercy", "1")
    status, _, _ = srv.get("/stuck", timeout=10)
    assert status.startswith("HTTP/1.0 504")
    found = srv.wait_for_log(re.compile(r"HARAKIRI core \d \(pid: \d+\) was here.*\n(.*\n)*?.*in stuck_here\n\s+time\.sleep\(30\)"))
    assert found, srv.log()
    assert srv.wait_for_log(r"HARAKIRI on core \d .*GET /stuck")
