"""uWSGI's logging options: JSON request lines, --req-logger file:, encoders, --log-date,
--log-x-forwarded-for, and whole lines when many threads of many workers log at once."""

import json
import re
import threading
import time

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


def test_many_threads_of_many_workers_never_split_a_line(server, tmp_path):
    """8 threads in each of 2 workers log 50 lines each while requests are logged too: every
    line in the log is whole."""
    (tmp_path / "app.py").write_text(APP)
    logto = tmp_path / "all.log"
    srv = server("--wsgi-file", tmp_path / "app.py", "--processes", "2", "--threads", "4",
                 "--logto", logto)
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
