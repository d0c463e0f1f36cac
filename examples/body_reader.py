"""Every way of reading `wsgi.input`, and a long streamed response, for the input tests.

Routes (the body is whatever the client POSTs):
- `/read`            read() all at once
- `/read-chunks?n=N` read(N) until empty
- `/readline?n=N`    readline() (or readline(N)) until empty; lines joined with '|' after repr
- `/readlines?hint=H` readlines(H) once, then readlines() for the rest
- `/iterate`         `for line in wsgi.input`
- `/report-error`    read() and, if that raises OSError, answer 200 with the message (to see it)
- `/stream?n=N`      N chunks of 64 KiB, for a client that goes away mid-response
"""

import json


def _lines(data):
    return json.dumps([chunk.decode("latin-1") for chunk in data]).encode()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    stream = environ["wsgi.input"]
    if path == "/read":
        body = stream.read()
        out = json.dumps({"len": len(body), "again": len(stream.read())}).encode()
    elif path == "/read-chunks":
        n = int(query.get("n", "7"))
        chunks = []
        while True:
            chunk = stream.read(n)
            if not chunk:
                break
            chunks.append(chunk)
        out = _lines(chunks)
    elif path == "/readline":
        n = int(query["n"]) if "n" in query else None
        lines = []
        while True:
            line = stream.readline(n) if n is not None else stream.readline()
            if not line:
                break
            lines.append(line)
        out = _lines(lines)
    elif path == "/readlines":
        first = stream.readlines(int(query.get("hint", "1")))
        rest = stream.readlines()
        out = json.dumps([_lines(first).decode(), _lines(rest).decode()]).encode()
    elif path == "/iterate":
        out = _lines(list(stream))
    elif path == "/report-error":
        try:
            stream.read()
            out = b"no error"
        except OSError as e:
            out = ("OSError: %s" % e).encode()
    elif path == "/stream":
        n = int(query.get("n", "1000"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * 65536 for _ in range(n))
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route\n"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [out]
