"""File downloads through `wsgi.file_wrapper` (the server may use sendfile).

The file is `?file=NAME` under the directory `$DOWNLOAD_ROOT` (default: this
examples directory); without `?file=` it is `$DOWNLOAD_FILE`, or this script.
Names that would leave DOWNLOAD_ROOT get 404.
"""

import os
from urllib.parse import parse_qs

HERE = os.path.dirname(os.path.abspath(__file__))


def _pick(environ):
    root = os.path.realpath(os.environ.get("DOWNLOAD_ROOT", HERE))
    name = parse_qs(environ.get("QUERY_STRING", "")).get("file", [None])[0]
    if name is None:
        return os.environ.get("DOWNLOAD_FILE", os.path.abspath(__file__))
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        return None
    return path


def application(environ, start_response):
    path = _pick(environ)
    if path is None or not os.path.isfile(path):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    handle = open(path, "rb")
    size = os.fstat(handle.fileno()).st_size
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(size)),
        ],
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is None:
        return iter(lambda: handle.read(65536), b"")
    return wrapper(handle, 65536)
