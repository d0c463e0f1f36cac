"""stream: a 1 MiB response streamed from a generator in 16 chunks of 64 KiB,
with a Content-Length (how a file or an export is usually streamed)."""

CHUNK = b"x" * 65536
COUNT = 16
HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(CHUNK) * COUNT))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return (CHUNK for _ in range(COUNT))
