"""The request log line keeps uWSGI's format (reference §3.5): people grep it and parse it."""

import re
import time
from datetime import datetime

import uwsgi_wire as wire
from harness import example

BEHAVIOUR = example("behaviour.py")

CTIME = r"\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\]"


def line_re(method, uri, status=200, proto="HTTP/1.1", addr=r"127\.0\.0\.1"):
    return re.compile(
        r"^\[pid: (?P<pid>\d+)\|app: 0\|req: (?P<app_req>\d+)/(?P<all_req>\d+)\] " + addr + r" \(\) "
        r"\{(?P<vars>\d+) vars in (?P<pktsize>\d+) bytes\} " + CTIME + " "
        + method + " " + re.escape(uri) + r" => generated (?P<size>\d+) bytes in (?P<msecs>\d+) msecs "
        r"\(" + re.escape(proto) + " " + str(status) + r"\) (?P<headers>\d+) headers in (?P<hsize>\d+) bytes "
        r"\((?P<switches>\d+) switches on core (?P<core>\d+)\)$",
        re.M,
    )


def test_request_log_line_through_nginx(stack, transport):
    s = stack("--wsgi-file", BEHAVIOUR, transport=transport)
    pid = int(s.get("/pid").body)
    offset = s.server.log_size()
    assert s.get("/hello?x=1").status == 200
    found = s.server.wait_for_log(line_re("GET", "/hello?x=1"), offset)
    assert found, f"no request log line for GET /hello?x=1 in:\n{s.server.log_since(offset)}"
    assert int(found["pid"]) == pid
    assert (found["app_req"], found["all_req"]) == ("2", "2")
    assert found["size"] == "12"  # b"Hello World\n"
    assert int(found["headers"]) >= 1  # Content-Type, and Content-Length if the server adds it
    assert int(found["vars"]) % 2 == 0 and int(found["vars"]) >= 28


def test_request_log_line_counts_vars_bytes_and_time(server):
    srv = server("--wsgi-file", BEHAVIOUR)
    pairs = wire.request_vars("GET", "/sleep", "s=0.3")
    raw = srv.raw(wire.packet(pairs))
    status, headers, body = wire.split_response(raw)
    assert status == "HTTP/1.1 200 OK"
    found = srv.wait_for_log(line_re("GET", "/sleep?s=0.3"))
    assert found, srv.log()
    # "generated" counts body bytes; "headers in" counts the whole head, status line to blank line.
    assert int(found["size"]) == len(body)
    assert int(found["headers"]) == len(headers)
    assert int(found["hsize"]) == len(raw) - len(body)
    assert int(found["vars"]) == 2 * len(pairs)
    assert int(found["pktsize"]) == len(wire.encode_vars(pairs))
    assert 300 <= int(found["msecs"]) < 5000


def test_request_log_line_for_a_post_and_an_error(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    assert s.request("POST", "/ignore-body", body=b"abc").status == 200
    assert s.server.wait_for_log(line_re("POST", "/ignore-body")), s.server.log()
    s.get("/raise")
    assert s.server.wait_for_log(line_re("GET", "/raise", status=500)), s.server.log()
    assert s.get("/nope").status == 404
    assert s.server.wait_for_log(line_re("GET", "/nope", status=404)), s.server.log()


def test_logto_sends_the_log_and_the_apps_output_to_a_file(server, tmp_path):
    logfile = tmp_path / "rwsgi.log"
    logfile.write_bytes(b"an earlier line\n")
    srv = server("--wsgi-file", BEHAVIOUR, "--logto", logfile)
    srv.assert_serves("/hello")
    assert wire.split_response(wire.get(srv.address, "/raise"))[0].endswith("500 Internal Server Error")
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:
        text = logfile.read_text()
        if line_re("GET", "/raise", status=500).search(text):
            break
        time.sleep(0.05)
    assert text.startswith("an earlier line\n"), "--logto must append, not truncate"
    assert "WSGI app 0 (mountpoint='') ready" in text
    assert line_re("GET", "/hello").search(text), text
    assert "Traceback (most recent call last)" in text, "the app's traceback goes to the file too"
    assert line_re("GET", "/raise", status=500).search(text), text
    # Nothing but the command line the harness wrote reaches the server's own stderr.
    stderr = srv.log_path.read_text().splitlines()
    assert stderr[1:] == [], stderr


def test_disable_logging_keeps_the_requests_asked_for(server):
    """--disable-logging with --log-5xx and --log-slow: only the failed and the slow request
    get a line, as in uWSGI."""
    srv = server("--wsgi-file", BEHAVIOUR, "--disable-logging", "--log-5xx", "--log-slow", "200")
    offset = srv.log_size()
    srv.assert_serves("/hello")
    wire.get(srv.address, "/raise")
    wire.get(srv.address, "/sleep", "s=0.3")
    srv.assert_serves("/hello")
    assert srv.wait_for_log(line_re("GET", "/sleep?s=0.3"), offset), srv.log_since(offset)
    assert srv.wait_for_log(line_re("GET", "/raise", status=500), offset), srv.log_since(offset)
    text = srv.log_since(offset)
    assert not line_re("GET", "/hello").search(text), text


LOG_FORMAT = (
    '%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" '
    '"%(uagent)" %(msecs)ms %(var.HTTP_X_TRACE)'
)


def format_re(uri, referer, uagent, trace, status=200):
    return re.compile(
        r"^127\.0\.0\.1 - - \[(?P<ltime>[^\]]+)\] "
        + re.escape(f'"GET {uri} HTTP/1.1" {status} ')
        + r"(?P<size>\d+) "
        + re.escape(f'"{referer}" "{uagent}" ')
        + r"(?P<msecs>\d+)ms "
        + re.escape(trace)
        + "$",
        re.M,
    )


def test_log_format_writes_the_uwsgi_variables(server):
    """--log-format replaces uWSGI's line: the Apache-like format common in uWSGI configs, every
    field checked against what was sent and answered; absent vars print "-" as in uWSGI."""
    srv = server("--wsgi-file", BEHAVIOUR, "--log-format", LOG_FORMAT)
    offset = srv.log_size()
    extra = [
        ("HTTP_REFERER", "http://ref.example/page?q=1"),
        ("HTTP_USER_AGENT", "probe/1.0 (e2e; test)"),
        ("HTTP_X_TRACE", "trace-42"),
    ]
    before = time.time()
    raw = srv.raw(wire.packet(wire.request_vars("GET", "/hello", "a=1", extra=extra)))
    status, _, body = wire.split_response(raw)
    assert status == "HTTP/1.1 200 OK" and body == b"Hello World\n"
    found = srv.wait_for_log(
        format_re("/hello?a=1", "http://ref.example/page?q=1", "probe/1.0 (e2e; test)", "trace-42"), offset
    )
    assert found, srv.log_since(offset)
    # uWSGI's %(size) is the whole response, head and body (%(rsize) is the body alone).
    assert int(found["size"]) == len(raw)
    assert 0 <= int(found["msecs"]) < 5000
    ltime = datetime.strptime(found["ltime"], "%d/%b/%Y:%H:%M:%S %z")
    assert before - 2 <= ltime.timestamp() <= time.time() + 1, found["ltime"]
    assert ltime.utcoffset() == datetime.fromtimestamp(before).astimezone().utcoffset()

    # Without the headers, their variables print "-".
    srv.assert_serves("/hello")
    assert srv.wait_for_log(format_re("/hello", "-", "-", "-"), offset), srv.log_since(offset)
    text = srv.log_since(offset)
    assert not line_re("GET", "/hello").search(text), "the default line is replaced, not added to"
    assert "%(" not in text, text


def test_log_format_with_disable_logging_rules(server):
    """--disable-logging --log-5xx picks the requests, --log-format shapes their line; an unknown
    variable is warned about once at startup and prints "-"."""
    srv = server(
        "--wsgi-file", BEHAVIOUR, "-L", "--log-5xx", "--log-format", "%(status) %(method) %(uri) %(bogus) %(bogus)"
    )
    offset = srv.log_size()
    srv.assert_serves("/hello")
    wire.get(srv.address, "/raise")
    srv.assert_serves("/hello")
    assert srv.wait_for_log(re.compile(r"^500 GET /raise - -$", re.M), offset), srv.log_since(offset)
    text = srv.log()
    assert not re.search(r"^200 ", text, re.M), text
    assert len(re.findall(r"--log-format: %\(bogus\)", text)) == 1, text
