"""sleep: an I/O-bound app; each request sleeps 10 ms (GIL released), so the best
possible rate is processes x threads x 100 req/s."""

import time

BODY = b"slept 10 ms\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    time.sleep(0.010)
    start_response("200 OK", HEADERS)
    return [BODY]
