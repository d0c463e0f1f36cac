"""--http-socket, the request body and the response head: chunked bodies streamed to the app
(de-chunked as it reads, no CONTENT_LENGTH, wsgi.input_terminated), `Expect: 100-continue`
answered when the app first reads, `--limit-post` and bad framing met mid-body, the `Date`
field, the app's `Connection: close`, and the start-up line of each listener.

Each exchange waits on what the server sends (a `100 Continue`, a line the app echoed, the end
of a response), never on a sleep.
"""

import email.utils
import http.client
import json
import re
import shutil
import socket
import subprocess
import time

import pytest

from harness import free_port

APP = r'''
import json


def application(environ, start_response):
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    if path == "/echo":
        body = stream.read()
        out = json.dumps({
            "len": len(body),
            "head": body[:32].decode("latin-1"),
            "again": len(stream.read()),
            "content_length": environ.get("CONTENT_LENGTH"),
            "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
            "terminated": environ.get("wsgi.input_terminated"),
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [out]
    if path == "/echo-lines":
        # Each body line goes back as soon as it is read: the client sees how far the app got.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter(stream)
    if path == "/first":
        got = stream.read(int(environ["QUERY_STRING"] or "5"))
        start_response("200 OK", [("Content-Length", str(len(got)))])
        return [got]
    if path == "/refuse":
        # Answers without reading the body.
        start_response("401 Unauthorized", [("Content-Length", "5")])
        return [b"nope\n"]
    if path == "/catch":
        try:
            stream.read()
            msg = "read it all"
        except OSError as e:
            msg = "OSError: %s" % e
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [msg.encode()]
    if path == "/close":
        start_response("200 OK", [("Content-Length", "4"), ("Connection", "close")])
        return [b"bye\n"]
    if path == "/date":
        start_response("200 OK", [("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Content-Length", "3")])
        return [b"old"]
    start_response("200 OK", [("Content-Length", "3")])
    return [b"hi\n"]
'''

FLASK_APP = r'''
from flask import Flask, request, jsonify

app = Flask(__name__)


@app.post("/upload")
def upload():
    data = request.get_data()
    return jsonify(len=len(data), tail=data[-8:].decode("latin-1"),
                   content_length=request.environ.get("CONTENT_LENGTH"),
                   terminated=request.environ.get("wsgi.input_terminated"))
'''


@pytest.fixture
def http_app(server, tmp_path):
    """Factory: `http_app(*args, app=APP)` -> (server, port) serving `app` on an --http-socket."""

    def start(*args, app=APP, name="body_app.py"):
        path = tmp_path / name
        path.write_text(app)
        port = free_port()
        srv = server("--http-socket", f"127.0.0.1:{port}", "--wsgi-file", str(path), *args)
        return srv, port

    return start


class Client:
    """A raw HTTP/1.1 connection that reads responses one by one (heads, Content-Length and
    chunked bodies), so a test can wait for exactly what it expects."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        got = self.sock.recv(65536)
        if not got:
            raise EOFError("the server closed the connection")
        self.buf += got

    def until(self, marker):
        """Read until `marker` has arrived; returns everything up to and including it."""
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def response(self):
        """One response: (status line, {lowercased name: value}, body), de-chunked."""
        head = self.until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        fields = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self.until(b"\r\n")[:-2].split(b";")[0], 16)
                if size == 0:
                    self.until(b"\r\n")
                    break
                while len(self.buf) < size + 2:
                    self._fill()
                body, self.buf = body + self.buf[:size], self.buf[size + 2:]
        else:
            n = int(fields.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        return lines[0], fields, body

    def closed(self):
        """Whether the server closes the connection with nothing more sent."""
        try:
            while True:
                got = self.sock.recv(65536)
                if not got:
                    return self.buf == b""
                self.buf += got
        except ConnectionResetError:
            return self.buf == b""

    def close(self):
        self.sock.close()


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_POST = (b"POST %s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n%s\r\n")


# --------------------------------------------------------------------------- the response head


IMF = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


def test_date_on_every_response(http_app):
    _, port = http_app()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in ("/", "/echo-lines", "/close"):
        c.request("GET" if path != "/echo-lines" else "POST", path, body=b"x\n" if path != "/" else None)
        r = c.getresponse()
        r.read()
        date = r.getheader("Date")
        assert date and IMF.match(date), (path, date)
        when = email.utils.parsedate_to_datetime(date).timestamp()
        assert abs(when - time.time()) < 5
        assert len(r.headers.get_all("Date")) == 1
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/date")
    r = c.getresponse()
    assert r.headers.get_all("Date") == ["Sun, 06 Nov 1994 08:49:37 GMT"], "the app's own is kept, alone"
    # The server's own answers too.
    c = Client(port)
    c.send(b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400
    status, fields, _ = c.response()
    assert status.startswith("HTTP/1.1 400") and IMF.match(fields["date"])


def test_the_apps_connection_close_is_honoured(http_app):
    _, port = http_app()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.read() == b"hi\n" and not r.will_close
    c.request("GET", "/close")
    r = c.getresponse()
    assert r.read() == b"bye\n" and r.getheader("Connection") == "close" and r.will_close
    # Pipelined behind it: not served, the connection closes after the app's response.
    c = Client(port)
    c.send(b"GET /close HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
    status, fields, body = c.response()
    assert (body, fields["connection"]) == (b"bye\n", "close")
    assert c.closed()
    # HTTP/1.0 with keep-alive asked: no keep-alive granted.
    c = Client(port)
    c.send(b"GET /close HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, fields, body = c.response()
    assert body == b"bye\n" and "connection" not in fields
    assert c.closed()
