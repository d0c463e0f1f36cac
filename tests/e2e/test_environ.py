"""The environ the app gets, PEP 3333-correct, as nginx with Debian's uwsgi_params feeds it."""

import json
import re

import pytest

import uwsgi_wire as wire
from harness import example, nginx_path, nginx_version

BEHAVIOUR = example("behaviour.py")


def environ_of(stack_, path="/environ", method="GET", body=None, headers=()):
    resp = stack_.request(method, path, body=body, headers=headers)
    assert resp.status == 200, stack_.diagnostics()
    return json.loads(resp.body)


def test_environ_basics(stack, transport):
    s = stack("--wsgi-file", BEHAVIOUR, transport=transport)
    data = environ_of(s, "/environ?a=1&b=x%20y")
    env = data["environ"]
    assert env["SCRIPT_NAME"] == "", "SCRIPT_NAME must be present (PEP 3333), empty at the root"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=x%20y"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert data["wsgi.version"] == [1, 0]
    assert data["wsgi.run_once"] is False
    for key in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper", "wsgi.multithread", "wsgi.multiprocess"):
        assert key in data["wsgi_types"], key
    assert data["non_str"] == {}, "every CGI (dot-less) environ value must be a str"


def test_path_is_percent_decoded_and_latin1(stack):
    """nginx decodes %XX in PATH_INFO; the UTF-8 bytes reach the app as latin-1 str (PEP 3333)."""
    s = stack("--wsgi-file", BEHAVIOUR)
    env = environ_of(s, "/environ/caf%C3%A9%20x?q=%C3%A9")["environ"]
    assert env["PATH_INFO"] == "/environ/caf\u00e9 x".encode("utf-8").decode("latin-1")
    assert env["REQUEST_URI"] == "/environ/caf%C3%A9%20x?q=%C3%A9"
    assert env["QUERY_STRING"] == "q=%C3%A9"


def test_https_location_gives_https_scheme(stack, transport):
    s = stack("--wsgi-file", BEHAVIOUR, transport=transport)
    env = environ_of(s, "/tls/environ")["environ"]
    assert env["HTTPS"] == "on"
    assert env["wsgi.url_scheme"] == "https"
    assert environ_of(s, "/environ")["environ"]["wsgi.url_scheme"] == "http"


def test_post_has_content_type_and_length_once(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    data = environ_of(s, "/environ", "POST", body=b"x=1", headers=[("Content-Type", "application/x-www-form-urlencoded")])
    env = data["environ"]
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env, "nginx also sends HTTP_CONTENT_TYPE; PEP 3333 has only CONTENT_TYPE"
    assert "HTTP_CONTENT_LENGTH" not in env, "nginx also sends HTTP_CONTENT_LENGTH; PEP 3333 has only CONTENT_LENGTH"


def test_wsgiref_validator_accepts_the_server(stack, transport):
    s = stack("--wsgi-file", example("validated.py"), transport=transport)
    get = s.get("/")
    assert (get.status, get.body) == (200, b"Hello World\n"), s.diagnostics()
    post = s.request("POST", "/form", body=b"a=1&b=2", headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert (post.status, post.body) == (200, b"Hello World\n"), s.diagnostics()
    assert "AssertionError" not in s.server.log()


def test_duplicate_request_headers_are_joined(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    version = nginx_version(nginx_path())
    env = environ_of(
        s,
        "/environ",
        headers=[("X-Dup", "a"), ("X-Dup", "b"), ("Cookie", "a=1"), ("Cookie", "b=2")],
    )["environ"]
    assert env["HTTP_X_DUP"] == "a, b", f"{version}: duplicate headers must be joined with ', '"
    assert env["HTTP_COOKIE"] == "a=1; b=2", f"{version}: Cookie headers must be joined with '; '"


def test_fresh_environ_per_request(stack):
    s = stack("--wsgi-file", BEHAVIOUR)
    first = environ_of(s, "/environ?first=1", headers=[("X-Only-First", "yes")])["environ"]
    second = environ_of(s, "/environ?second=1")["environ"]
    assert first["HTTP_X_ONLY_FIRST"] == "yes"
    assert "HTTP_X_ONLY_FIRST" not in second
    assert second["QUERY_STRING"] == "second=1"


@pytest.mark.parametrize("threads", ["1", "4"])
def test_multithread_flag_follows_threads(stack, threads):
    s = stack("--wsgi-file", BEHAVIOUR, "--threads", threads)
    data = environ_of(s)
    assert data["wsgi.multithread"] is (threads != "1")


def test_mounted_apps_with_manage_script_name(server):
    """uWSGI's `mount = /app=file` + `manage-script-name`: the longest mountpoint PATH_INFO
    starts with picks the app and moves to SCRIPT_NAME; a path no app is mounted at gets 404."""
    srv = server(
        "--mount", "/hello=" + str(example("hello.py")),
        "--mount", "/b=" + str(example("behaviour.py")),
        "--manage-script-name",
    )
    status, _, body = wire.split_response(wire.get(srv.address, "/hello/anything"))
    assert status.endswith("200 OK") and body == b"Hello World\n"
    status, _, body = wire.split_response(wire.get(srv.address, "/b/environ"))
    assert status.endswith("200 OK"), body
    env = json.loads(body)["environ"]
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/b", "/environ")
    status, _, _ = wire.split_response(wire.get(srv.address, "/nowhere"))
    assert status.endswith("404 Not Found")
    assert srv.wait_for_log(re.compile(r"\[pid: \d+\|app: -1\|req: \d+/\d+\] .* GET /nowhere .*\(HTTP/1.1 404\)")), srv.log()
    log = srv.log()
    assert "WSGI app 1 (mountpoint='/b') ready" in log
    assert re.search(r"\[pid: \d+\|app: 1\|req: \d+/\d+\] .* GET /b/environ ", log), log
