"""Request bodies: `/upload` (or `/`) reads wsgi.input to the end, in chunks, and
returns the body's sha256 and length as JSON. `/ignore` answers without reading
the body at all (the server must still not make nginx see a reset).
"""

import hashlib
import json

CHUNK = 64 * 1024


def _content_length(environ):
    try:
        return max(int(environ.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/ignore":
        body = b"ignored\n"
    else:
        digest = hashlib.sha256()
        left = _content_length(environ)
        stream = environ["wsgi.input"]
        total = 0
        while left > 0:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
            left -= len(chunk)
        body = json.dumps({"sha256": digest.hexdigest(), "length": total}).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
