"""A generator response: chunks reach the client as the app yields them.

`/` yields three lines at once. `/slow` yields a first line, then sleeps (`?s=`,
default 1 second) before the rest, so a client can see that the first chunk
arrives long before the app has finished.
"""

import time
from urllib.parse import parse_qs


def _slow(seconds):
    yield b"first chunk\n"
    time.sleep(seconds)
    yield b"second chunk\n"
    yield b"done\n"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    headers = [
        ("Content-Type", "text/plain"),
        # Tell nginx not to hold chunks back in its buffers (it honours this for uwsgi_pass).
        ("X-Accel-Buffering", "no"),
    ]
    if path == "/slow":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        seconds = min(float(query.get("s", ["1"])[0]), 30.0)
        start_response("200 OK", headers)
        return _slow(seconds)
    start_response("200 OK", headers)
    return (b"chunk %d\n" % i for i in range(3))
