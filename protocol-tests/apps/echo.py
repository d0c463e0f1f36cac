"""The live protocol tests' app: answers `METHOD SCRIPT_NAME PATH_INFO BODY_LENGTH` as text.

`rwsgi --socket 127.0.0.1:3031 --wsgi-file protocol-tests/apps/echo.py`
"""


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    line = "%s %s %s %d\n" % (
        environ.get("REQUEST_METHOD", ""),
        environ.get("SCRIPT_NAME", "") or "-",
        environ.get("PATH_INFO", ""),
        len(body),
    )
    out = line.encode("latin-1")
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))],
    )
    return [out]
