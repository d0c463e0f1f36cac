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

import uwsgi_wire as wire
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


# --------------------------------------------------------------------------- chunked bodies


def test_a_chunked_body_reaches_the_app_before_it_is_complete(http_app):
    _, port = http_app()
    c = Client(port)
    # Only the first chunk: the app runs and answers with what it read while the client still
    # holds the rest (a server that buffered the whole body first would never answer).
    c.send(CHUNKED_POST % (b"/first?5", b"") + chunk(b"hello"))
    status, fields, body = c.response()
    assert (status, body) == ("HTTP/1.1 200 OK", b"hello")
    assert "connection" not in fields, "kept alive: the unread rest is drained, not a reason to close"
    # The rest of the body (never read by the app), trailers, then a pipelined request: the server
    # drains the rest and serves the next request on the same connection.
    c.send(chunk(b"x" * 70000) + b"0\r\nX-Checksum: 1\r\n\r\n"
           + b"GET /close HTTP/1.1\r\nHost: h\r\n\r\n")
    status, fields, body = c.response()
    assert (status, body) == ("HTTP/1.1 200 OK", b"bye\n")
    assert c.closed()


def test_chunked_body_split_anywhere_with_trailers_then_pipelined(http_app):
    _, port = http_app()
    stream = (chunk(b"line1\n") + chunk(b"line2\nl") + b"5;ext=x\r\nine3\n\r\n"
              + b"0\r\nX-Trailer: t\r\n\r\n")
    c = Client(port)
    c.send(CHUNKED_POST % (b"/echo-lines", b""))
    # Each piece ends inside the framing (a size line, data, the CRLF after data, a trailer); the
    # next is sent only once the app echoed every line the previous one completed, so the server
    # reads the body in exactly these pieces.
    cuts = [stream.index(b"line2") + 3, stream.index(b"l\r\n") + 2, stream.index(b"ine3") + 5,
            stream.index(b"X-Tr") + 2]
    pieces = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    # Each echoed line is one chunk of the response (left in the buffer, parsed below).
    echoed_after = [b"line1\n", b"line2\n", b"line3\n", None, None]
    for piece, line in zip(pieces, echoed_after):
        c.send(piece)
        while line is not None and chunk(line) not in c.buf:
            c._fill()
    c.send(b"GET /close HTTP/1.1\r\nHost: h\r\n\r\n")
    status, fields, body = c.response()
    assert fields["transfer-encoding"] == "chunked"
    assert body == b"line1\nline2\nline3\n"
    status, _, body = c.response()
    assert (status, body) == ("HTTP/1.1 200 OK", b"bye\n")
    assert c.closed()


def test_chunked_environ_has_no_content_length_and_is_terminated(http_app):
    srv, port = http_app()
    c = Client(port)
    c.send(CHUNKED_POST % (b"/echo", b"") + chunk(b"a" * 3) + chunk(b"b" * 100000) + b"0\r\n\r\n")
    _, _, body = c.response()
    env = json.loads(body)
    assert env == {"len": 100003, "head": "aaa" + "b" * 29, "again": 0, "content_length": None,
                   "transfer_encoding": "chunked", "terminated": True}
    # A body of declared length, on the same connection: CONTENT_LENGTH, and still terminated.
    c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd")
    env = json.loads(c.response()[2])
    assert (env["len"], env["content_length"], env["terminated"]) == (4, "4", True)
    # The uwsgi socket's environ says the same (one environ template for both protocols).
    status, _, body = wire.split_response(srv.raw(wire.packet(
        wire.request_vars("POST", "/echo", body_len=4), body=b"wxyz")))
    env = json.loads(body)
    assert (env["len"], env["content_length"], env["terminated"]) == (4, "4", True)


def test_flask_reads_a_chunked_upload(http_app):
    import requests

    _, port = http_app(app=FLASK_APP, name="flask_upload.py")
    parts = [b"%05d-" % i * 100 for i in range(200)]
    r = requests.post(f"http://127.0.0.1:{port}/upload", data=iter(parts), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"len": sum(map(len, parts)), "tail": parts[-1][-8:].decode(),
                        "content_length": None, "terminated": True}
    curl = shutil.which("curl")
    assert curl, "curl is missing: scripts/test.sh installs it"
    out = subprocess.run([curl, "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                          f"http://127.0.0.1:{port}/upload"], input=b"z" * 300000,
                         capture_output=True, check=True, timeout=30).stdout
    assert json.loads(out)["len"] == 300000


def test_limit_post_bounds_a_chunked_body_met_mid_read(http_app):
    srv, port = http_app("--limit-post", "1000")
    for path in (b"/echo", b"/catch"):
        c = Client(port)
        # Expect: 100-continue makes the exchange deterministic: the 100 comes when the app reads,
        # and only then does the over-limit part go out.
        c.send(CHUNKED_POST % (path, b"Expect: 100-continue\r\n"))
        assert c.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(chunk(b"a" * 600))
        c.send(chunk(b"b" * 600))
        status, fields, body = c.response()
        # The server answers 413 itself; an app that caught the read error does not get its own
        # answer out after that.
        assert status == "HTTP/1.1 413 Content Too Large", (path, status, body)
        assert fields["connection"] == "close" and "date" in fields
        assert c.closed()
        c.close()
    # Each request's log line comes after its answer: wait for the last one, then count.
    assert srv.wait_for_log(r"POST /catch => .*\(HTTP/1.1 413\)")
    refusals = re.findall(r"over --limit-post 1000; the server answered 413", srv.log())
    assert len(refusals) == 2, "logged once per request"
    # A first chunk over the limit that came with the head is refused before the app runs.
    c = Client(port)
    c.send(CHUNKED_POST % (b"/echo", b"") + chunk(b"c" * 1001) + b"0\r\n\r\n")
    status, fields, _ = c.response()
    assert status == "HTTP/1.1 413 Content Too Large" and fields["connection"] == "close"
    assert c.closed()
    # The server still serves.
    c = Client(port)
    c.send(CHUNKED_POST % (b"/echo", b"") + chunk(b"d" * 1000) + b"0\r\n\r\n")
    assert json.loads(c.response()[2])["len"] == 1000


def test_bad_framing_mid_body(http_app):
    srv, port = http_app()
    # Met by the app's read: 400 from the server, the connection closed.
    c = Client(port)
    c.send(CHUNKED_POST % (b"/echo", b"Expect: 100-continue\r\n"))
    assert c.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    c.send(b"5\r\nhelloXX0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    status, fields, _ = c.response()
    assert status == "HTTP/1.1 400 Bad Request" and fields["connection"] == "close"
    assert c.closed()
    # Met while draining a body the app did not read: the app's answer went out, then the
    # connection is closed instead of reading a request from the bad bytes.
    c = Client(port)
    c.send(CHUNKED_POST % (b"/first?3", b"") + chunk(b"hello"))
    status, fields, body = c.response()
    assert (status, body) == ("HTTP/1.1 200 OK", b"hel")
    c.send(b"zz\r\n" + b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    assert c.closed()
    assert "/smuggled" not in srv.log()
    assert srv.wait_for_log(r"chunk size is not hex in the unread rest of a chunked request body")


# --------------------------------------------------------------------------- 100-continue


def test_no_100_continue_for_an_app_that_answers_without_reading(http_app):
    _, port = http_app()
    for framing in (b"Content-Length: 100000\r\n", b"Transfer-Encoding: chunked\r\n"):
        c = Client(port)
        c.send(b"POST /refuse HTTP/1.1\r\nHost: h\r\n" + framing + b"Expect: 100-continue\r\n\r\n")
        status, fields, body = c.response()
        assert (status, body) == ("HTTP/1.1 401 Unauthorized", b"nope\n"), "no 100 Continue first"
        assert fields["connection"] == "close", "the body never sent is not waited for"
        assert c.closed()
    # An app that reads gets the 100 first, on a connection that stays open.
    c = Client(port)
    c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert c.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    c.send(b"abc")
    status, fields, body = c.response()
    assert json.loads(body)["len"] == 3 and "connection" not in fields
    c.send(b"GET /close HTTP/1.1\r\nHost: h\r\n\r\n")
    assert c.response()[2] == b"bye\n"


def test_curl_expect_100_continue(http_app):
    curl = shutil.which("curl")
    assert curl, "curl is missing: scripts/test.sh installs it"
    _, port = http_app()
    body = b"q" * 2_000_000  # curl sends Expect: 100-continue for a body this large
    start = time.monotonic()
    out = subprocess.run([curl, "-sS", "-v", "--data-binary", "@-", "-o", "/dev/null",
                          "-w", "%{http_code}", f"http://127.0.0.1:{port}/refuse"],
                         input=body, capture_output=True, timeout=30)
    assert out.stdout == b"401", out
    assert b"Expect: 100-continue" in out.stderr and b"100 Continue" not in out.stderr, out.stderr
    # curl gave up waiting for a 100 after its 1 s only if the server had said nothing.
    assert time.monotonic() - start < 1.0
    out = subprocess.run([curl, "-sS", "-v", "--data-binary", "@-",
                          f"http://127.0.0.1:{port}/echo"],
                         input=body, capture_output=True, timeout=30, check=True)
    assert b"HTTP/1.1 100 Continue" in out.stderr and json.loads(out.stdout)["len"] == len(body)


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
