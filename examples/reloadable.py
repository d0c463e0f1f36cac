"""A WSGI app whose answer is a version fixed at import, for the reload tests.

tests/e2e/test_process_model.py copies this file, serves the copy, rewrites VERSION in it and
reloads (SIGHUP, --touch-reload): a response saying the new version proves the new code runs.

  any path -> "<VERSION> <pid>"
"""

import os

VERSION = "A"


def application(environ, start_response):
    body = ("%s %d" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
