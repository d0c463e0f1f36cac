"""The smallest WSGI app: `rwsgi --socket 127.0.0.1:3031 --wsgi-file examples/hello.py`."""

BODY = b"Hello World\n"


def application(environ, start_response):
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(BODY))),
            # Two headers with one name: servers must keep both, in order.
            ("X-Multi", "a"),
            ("X-Multi", "b"),
        ],
    )
    return [BODY]
