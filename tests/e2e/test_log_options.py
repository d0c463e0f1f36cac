"""uWSGI's logging options: JSON request lines, --req-logger file:, encoders, --log-date,
--log-x-forwarded-for, and whole lines when many threads of many workers log at once."""

import json
import os
import re
import signal
import threading
import time

import pytest

import uwsgi_wire as wire

APP = '''\
import logging
import threading

logging.basicConfig(level=logging.INFO, format="app %(process)d %(threadName)s %(message)s")
log = logging.getLogger("app")


def application(environ, start_response):
    if environ["PATH_INFO"] == "/chatty":
        def chat(n):
            for i in range(50):
                log.info("line %d of thread %d %s", i, n, "x" * 200)
        threads = [threading.Thread(target=chat, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''

JSON_FORMAT = (
    '{"method":"%(method)","uri":"%(uri)","status":%(status),"addr":"%(addr)",'
    '"ua":"%(uagent)","msecs":%(msecs),"size":%(rsize)}'
)


def request(srv, path="/", extra=()):
    pairs = wire.request_vars("GET", path, extra=extra)
    reply = wire.exchange(srv.address, wire.packet(pairs))
    assert reply.startswith(b"HTTP/1.1 200"), reply


def wait_lines(path, count, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > end:
            return lines
        time.sleep(0.05)


def test_json_request_lines_to_a_req_logger_file(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    reqlog = tmp_path / "requests.log"
    srv = server(
        "--wsgi-file", tmp_path / "app.py", "--log-format", JSON_FORMAT,
        "--req-logger", f"file:{reqlog}", "--log-x-forwarded-for",
    )
    agent = 'curl "quoted" \\ back\tslash'
    request(srv, "/a", extra=[("HTTP_USER_AGENT", agent), ("HTTP_X_FORWARDED_FOR", "203.0.113.9")])
    request(srv, '/b"c')
    lines = wait_lines(reqlog, 2)
    assert len(lines) == 2, lines
    first, second = (json.loads(l) for l in lines)
    assert first["uri"] == "/a" and first["ua"] == agent and first["status"] == 200
    assert first["addr"] == "203.0.113.9", "--log-x-forwarded-for"
    assert second["addr"] == "127.0.0.1" and second["uri"] == '/b"c' and second["ua"] == "-"
    assert "GET /a" not in srv.log(), "request lines go to the req-logger, not stderr"


def test_encoders_make_every_line_json(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    srv = server(
        "--wsgi-file", tmp_path / "app.py",
        "--log-encoder", 'json {"unix":${unix},"msg":"${msg}"}', "--log-encoder", "nl",
    )
    request(srv, "/hello")
    assert srv.wait_for_log(r"GET /hello"), srv.log()
    lines = srv.log().splitlines()[1:]  # the harness writes the command line first
    server_lines = [l for l in lines if not l.startswith("app ")]
    decoded = [json.loads(l) for l in server_lines]
    assert any("GET /hello" in d["msg"] for d in decoded), decoded
    assert any("WSGI app 0" in d["msg"] for d in decoded), decoded
    assert all(d["unix"] > 1_700_000_000 for d in decoded)


def test_log_date_prefixes_server_lines_not_request_lines(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    srv = server("--wsgi-file", tmp_path / "app.py", "--log-date=%Y-%m-%d@%H")
    request(srv, "/dated")
    assert srv.wait_for_log(r"GET /dated"), srv.log()
    today = time.strftime("%Y-%m-%d@")
    ready = [l for l in srv.log().splitlines() if "WSGI app 0" in l]
    assert ready and ready[0].startswith(today), ready
    assert re.match(r"\d{4}-\d\d-\d\d@\d\d - ", ready[0]), ready
    request_line = next(l for l in srv.log().splitlines() if "GET /dated" in l)
    assert request_line.startswith("[pid: "), request_line


@pytest.mark.parametrize("log_master", [False, True], ids=["direct", "log-master"])
def test_many_threads_of_many_workers_never_split_a_line(server, tmp_path, log_master):
    """8 threads in each of 2 workers log 50 lines each while requests are logged too: every
    line in the log is whole, whether each process writes the file or the log process does."""
    (tmp_path / "app.py").write_text(APP)
    logto = tmp_path / "all.log"
    extra = ["--log-master"] if log_master else []
    srv = server("--wsgi-file", tmp_path / "app.py", "--processes", "2", "--threads", "4",
                 "--logto", logto, *extra)
    errors = []

    def client():
        try:
            for _ in range(3):
                request(srv, "/chatty")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    assert not errors, errors
    app_line = re.compile(r"^app \d+ Thread-\d+ \(chat\) line \d+ of thread \d x{200}$")
    request_line = re.compile(r"^\[pid: \d+\|app: 0\|req: \d+/\d+\] .* GET /chatty => generated 2 bytes .*\)$")
    lines = wait_lines(logto, 12 * 8 * 50)
    app_lines = [l for l in lines if l.startswith("app ")]
    assert len(app_lines) == 12 * 8 * 50, len(app_lines)
    bad = [l for l in app_lines if not app_line.match(l)]
    assert not bad, bad[:5]
    assert len({l.split()[1] for l in app_lines}) == 2, "both workers logged"
    requests = [l for l in lines if "GET /chatty" in l]
    assert len(requests) == 12 and all(request_line.match(l) for l in requests), requests


def test_rotation_under_load_loses_no_line(server, tmp_path):
    """--log-maxsize rotates the --logto file many times while 8 clients keep 2 workers busy;
    the request lines of every file add up to the requests made, each line whole."""
    (tmp_path / "app.py").write_text(APP)
    logto = tmp_path / "app.log"
    srv = server("--wsgi-file", tmp_path / "app.py", "--processes", "2", "--threads", "4",
                 "--logto", logto, "--log-maxsize", "20000")
    per_client, clients = 150, 8
    errors = []

    def client(n):
        try:
            for i in range(per_client):
                request(srv, f"/r/{n}/{i}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    line = re.compile(r"^\[pid: \d+\|app: 0\|req: \d+/\d+\] .* GET /r/(\d+)/(\d+) => generated 2 bytes .*\)$")
    end = time.monotonic() + 10
    while True:
        files = sorted(tmp_path.glob("app.log*"))
        seen = []
        for f in files:
            seen += [l for l in f.read_text().splitlines() if "GET /r/" in l]
        if len(seen) >= per_client * clients or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert len(files) > 5, f"rotated only into {files}"
    assert all(f.stat().st_size <= 20000 for f in files), [(f, f.stat().st_size) for f in files]
    assert all(line.match(l) for l in seen), [l for l in seen if not line.match(l)][:3]
    got = sorted((int(m[1]), int(m[2])) for m in map(line.match, seen))
    assert got == sorted((n, i) for n in range(clients) for i in range(per_client))


def test_the_log_process_outlives_a_reload(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    logto = tmp_path / "app.log"
    srv = server("--wsgi-file", tmp_path / "app.py", "--master", "--logto", logto, "--log-master",
                 "--log-reopen")
    request(srv, "/before")
    assert wait_lines(logto, 1)
    # What logrotate does: move the file, then reload; --log-reopen makes the log process start
    # a new file, and the reloaded master finds the log process again.
    logto.rename(tmp_path / "moved.log")
    os.kill(srv.pid, signal.SIGHUP)
    # The old worker may still serve what is queued while it drains: ask once the reloaded master
    # has said it runs, in the new file.
    end = time.monotonic() + 15
    while not any("spawned rwsgi master process" in l for l in wait_lines(logto, 1, timeout=0.2)):
        assert time.monotonic() < end, (tmp_path / "moved.log").read_text()
    request(srv, "/after")
    end = time.monotonic() + 10
    while not any("GET /after" in l for l in wait_lines(logto, 1)) and time.monotonic() < end:
        time.sleep(0.1)
    old = (tmp_path / "moved.log").read_text()
    assert "GET /before" in old and "GET /after" not in old, old
    assert any("GET /after" in l for l in logto.read_text().splitlines()), logto.read_text()


def test_the_master_fifo_l_reopens_the_log(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    logto, fifo = tmp_path / "app.log", tmp_path / "app.fifo"
    srv = server("--wsgi-file", tmp_path / "app.py", "--logto", logto, "--log-master", "--master-fifo", fifo)
    request(srv, "/before")
    end = time.monotonic() + 10
    while not any("GET /before" in l for l in wait_lines(logto, 1, timeout=0.2)):
        assert time.monotonic() < end, logto.read_text()
    logto.rename(tmp_path / "moved.log")
    with open(fifo, "w") as f:
        f.write("l")
    # The log process reopens before it writes what comes next.
    end = time.monotonic() + 10
    while "reopening the log file" not in (tmp_path / "moved.log").read_text() + (
        logto.read_text() if logto.exists() else ""
    ):
        assert time.monotonic() < end, (tmp_path / "moved.log").read_text()
        time.sleep(0.05)
    time.sleep(0.2)  # the signal follows the line
    request(srv, "/after")
    end = time.monotonic() + 10
    while not any("GET /after" in l for l in wait_lines(logto, 1, timeout=0.2)):
        assert time.monotonic() < end, (tmp_path / "moved.log").read_text()
    assert "GET /after" not in (tmp_path / "moved.log").read_text()
