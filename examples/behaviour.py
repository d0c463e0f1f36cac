"""One app, many misbehaviours: what a server must do when a WSGI app gets things wrong.

Each route is a case the end-to-end tests drive (tests/e2e/test_errors.py and friends):

  /hello              plain 200, the control case
  /raise              raises before start_response           -> a real 500, one traceback in the log
  /raise-after        yields a chunk, then raises            -> the response is cut short
  /no-start-response  returns a body, never calls start_response -> 500, never a body without status
  /str-body           yields str instead of bytes            -> 500
  /inject             a header value containing CR LF        -> refused (500)
  /ignore-body        200 without reading a POSTed body
  /sleep?s=N          sleeps N seconds (at most 60); with &started=PATH, it first creates the
                      file PATH (tests wait for it to know the request is in the app)
  /environ[/...]      JSON: the str values of environ, the type names of wsgi.* entries,
                      and the CGI keys whose value is not a str
  /write              uses the write() callable returned by start_response
  /exc-info           calls start_response twice, the second time with exc_info
  /pid[?s=N]          os.getpid(), after sleeping N seconds (default 0)
  /threads            the current thread's name
  /spin?s=N           keeps the CPU busy in Python for N seconds (at most 60), never sleeping;
                      &started=PATH as for /sleep

A path under /tls/ is routed like the path without that prefix: the test nginx
config mounts a location there that tells the app the request came over HTTPS.
"""

import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

TEXT = [("Content-Type", "text/plain")]


def _query(environ):
    return parse_qs(environ.get("QUERY_STRING", ""))


def hello(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [b"Hello World\n"]


def raise_before(environ, start_response):
    tag = _query(environ).get("tag", ["-"])[0]
    raise RuntimeError("boom before start_response " + tag)


def raise_after(environ, start_response):
    start_response("200 OK", list(TEXT))
    yield b"part1\n"
    raise RuntimeError("boom after the first chunk")


def raise_after_length(environ, start_response):
    """Declares 100 bytes, sends 12, then fails."""
    start_response("200 OK", TEXT + [("Content-Length", "100")])
    yield b"twelve bytes"
    raise RuntimeError("boom after 12 of 100 declared bytes")


def no_start_response(environ, start_response):
    return [b"no start_response"]


def str_body(environ, start_response):
    start_response("200 OK", list(TEXT))
    return ["a str body"]


def inject(environ, start_response):
    start_response("200 OK", TEXT + [("X-Bad", "a\r\nInjected: yes")])
    return [b"injected\n"]


def ignore_body(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [b"ignored\n"]


def _mark_started(environ):
    """Create the file named by `started=PATH`, if any: the request now runs in the app."""
    for path in _query(environ).get("started", []):
        open(path, "w").close()


def sleep(environ, start_response):
    seconds = min(float(_query(environ).get("s", ["1"])[0]), 60.0)
    _mark_started(environ)
    time.sleep(seconds)
    start_response("200 OK", list(TEXT))
    return [b"slept %.3f\n" % seconds]


def environ_dump(environ, start_response):
    strings = {k: v for k, v in environ.items() if isinstance(v, str)}
    wsgi_types = {k: type(v).__name__ for k, v in environ.items() if k.startswith("wsgi.")}
    # PEP 3333: keys without a dot are CGI variables and their values must be str.
    non_str = {k: type(v).__name__ for k, v in environ.items() if "." not in k and not isinstance(v, str)}
    body = json.dumps(
        {"environ": strings, "wsgi_types": wsgi_types, "non_str": non_str,
         "wsgi.version": list(environ.get("wsgi.version", ())),
         "wsgi.multithread": environ.get("wsgi.multithread"),
         "wsgi.multiprocess": environ.get("wsgi.multiprocess"),
         "wsgi.run_once": environ.get("wsgi.run_once")},
        sort_keys=True,
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def write_callable(environ, start_response):
    write = start_response("200 OK", list(TEXT))
    write(b"written-")
    return [b"returned"]


def exc_info(environ, start_response):
    start_response("200 OK", [("A", "1")])
    try:
        raise ValueError("replaced before anything was sent")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain"), ("B", "2")], sys.exc_info())
    return [b"exc-info body"]


def pid(environ, start_response):
    time.sleep(min(float(_query(environ).get("s", ["0"])[0]), 60.0))
    start_response("200 OK", list(TEXT))
    return [str(os.getpid()).encode()]


def thread_name(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [threading.current_thread().name.encode()]


def spin(environ, start_response):
    end = time.monotonic() + min(float(_query(environ).get("s", ["0"])[0]), 60.0)
    _mark_started(environ)
    loops = 0
    while time.monotonic() < end:
        loops += 1
    start_response("200 OK", list(TEXT))
    return [str(loops).encode()]


ROUTES = {
    "/": hello,
    "/hello": hello,
    "/raise": raise_before,
    "/raise-after": raise_after,
    "/raise-after-length": raise_after_length,
    "/no-start-response": no_start_response,
    "/str-body": str_body,
    "/inject": inject,
    "/ignore-body": ignore_body,
    "/sleep": sleep,
    "/environ": environ_dump,
    "/write": write_callable,
    "/exc-info": exc_info,
    "/pid": pid,
    "/threads": thread_name,
    "/spin": spin,
}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/") or "/"
    if path.startswith("/tls/"):
        path = path[len("/tls"):]
    handler = ROUTES.get(path)
    if handler is None and path.startswith("/environ/"):
        handler = environ_dump
    if handler is None:
        start_response("404 Not Found", list(TEXT))
        return [b"no such route\n"]
    return handler(environ, start_response)
