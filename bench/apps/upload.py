"""upload: reads a request body (the benchmark sends 1 MiB) from wsgi.input in
64 KiB reads and answers with the byte count; a short read is a 400."""


def application(environ, start_response):
    try:
        expected = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        expected = 0
    stream = environ["wsgi.input"]
    got = 0
    while got < expected:
        chunk = stream.read(min(65536, expected - got))
        if not chunk:
            break
        got += len(chunk)
    body = str(got).encode()
    status = "200 OK" if got == expected else "400 Bad Request"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
