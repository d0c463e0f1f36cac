"""The machinery behind the fixtures in conftest.py: starting and stopping the
server and nginx, rendering nginx/*.conf into a runnable nginx.conf, and small
HTTP helpers. Tests import names from here (`from harness import example`).
"""


import http.client
import os
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import uwsgi_wire as wire

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NGINX_SITES = {"tcp": REPO / "nginx" / "rwsgi-tcp.conf", "unix": REPO / "nginx" / "rwsgi-unix.conf"}
# The upstream each shipped site config names; the harness swaps in the test's own.
DOCUMENTED_UPSTREAM = {"tcp": "127.0.0.1:3031", "unix": "unix:/run/rwsgi/app.sock"}
UWSGI_PARAMS = Path("/etc/nginx/uwsgi_params")

STARTUP_DEADLINE_S = float(os.environ.get("RWSGI_STARTUP_DEADLINE", "30"))
STOP_DEADLINE_S = 10.0


# --------------------------------------------------------------------------- binaries


def rwsgi_path():
    return Path(os.environ.get("RWSGI_BIN", REPO / "target" / "release" / "rwsgi"))


def nginx_path():
    explicit = os.environ.get("NGINX_BIN")
    if explicit:
        return explicit
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin")


def virtualenv_path():
    """The venv whose site-packages the app needs, if any."""
    for var in ("RWSGI_VIRTUALENV", "VIRTUAL_ENV"):
        if os.environ.get(var):
            return os.environ[var]
    if sys.prefix != sys.base_prefix:
        return sys.prefix
    return None


def nginx_version(nginx):
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stderr + out.stdout).strip()


# --------------------------------------------------------------------------- helpers


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc, deadline_s=STOP_DEADLINE_S):
    """Terminate the process we started (by its pid), wait a bounded time, then kill it."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(deadline_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(deadline_s)


def tail(path, limit=6000):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as err:
        return f"<cannot read {path}: {err}>"
    return text[-limit:]


@dataclass
class Response:
    status: int
    reason: str
    headers: list
    body: bytes

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


def http_request(port, method="GET", path="/", body=None, headers=(), timeout=60.0):
    """One HTTP/1.1 request to nginx; `headers` may repeat a name."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, resp.getheaders(), data)
    finally:
        conn.close()


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    args: tuple
    transport: str
    address: object  # ("127.0.0.1", port) or a unix socket path
    log_path: Path
    # False for a pip-installed rwsgi: it runs in its own venv's interpreter, no --virtualenv.
    virtualenv: bool = True
    proc: subprocess.Popen = None
    _log_file: object = None

    @property
    def socket_arg(self):
        if self.transport == "tcp":
            return "%s:%d" % self.address
        return str(self.address)

    @property
    def upstream(self):
        """The address as nginx's uwsgi_pass spells it."""
        return self.socket_arg if self.transport == "tcp" else "unix:" + str(self.address)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_size(self):
        return self.log_path.stat().st_size

    def log_since(self, offset):
        with open(self.log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")

    def wait_for_log(self, pattern, offset=0, timeout=5.0, flags=re.M):
        """Poll the log (from `offset`) until `pattern` matches; return the match or None."""
        end = time.monotonic() + timeout
        while True:
            text = self.log_since(offset)
            found = pattern.search(text) if isinstance(pattern, re.Pattern) else re.search(pattern, text, flags)
            if found or time.monotonic() > end:
                return found
            time.sleep(0.05)

    def alive(self):
        return self.proc.poll() is None

    def raw(self, data, timeout=10.0):
        return wire.exchange(self.address, data, timeout)

    def get(self, path="/", query="", timeout=10.0):
        """A GET straight to the backend socket; returns (status line, headers, body)."""
        return wire.split_response(wire.get(self.address, path, query, timeout))

    def assert_serves(self, path="/", expect=b"Hello World\n", timeout=10.0):
        assert self.alive(), f"the server exited (code {self.proc.returncode}); log:\n{tail(self.log_path)}"
        status, _, body = self.get(path, timeout=timeout)
        assert status.startswith("HTTP/1.1 200"), (status, body, tail(self.log_path))
        assert body == expect

    def start(self, binary, env):
        cmd = [str(binary), "--socket", self.socket_arg]
        venv = (env.get("RWSGI_TEST_VIRTUALENV") or virtualenv_path()) if self.virtualenv else None
        if venv:
            cmd += ["--virtualenv", venv]
        cmd += [str(a) for a in self.args]
        self._log_file = open(self.log_path, "wb")
        self._log_file.write(("$ " + " ".join(cmd) + "\n").encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self):
        """Ready = it answers a uwsgi PING (64 00 00 00) with a PONG (64 00 00 01)."""
        end = time.monotonic() + STARTUP_DEADLINE_S
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the server exited with code {self.proc.returncode} before it was ready.\n"
                    f"log {self.log_path}:\n{tail(self.log_path)}",
                    pytrace=False,
                )
            try:
                reply = wire.exchange(self.address, wire.PING, timeout=2.0)
                if reply.startswith(wire.PONG):
                    return
                last = f"PING got {reply!r}"
            except (OSError, TimeoutError) as err:
                last = repr(err)
            time.sleep(0.05)
        self.stop()
        pytest.fail(
            f"the server did not answer a uwsgi PING within {STARTUP_DEADLINE_S:.0f} s (last: {last}).\n"
            f"log {self.log_path}:\n{tail(self.log_path)}",
            pytrace=False,
        )

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


# --------------------------------------------------------------------------- nginx


def extract_server_block(text):
    """The first `server { ... }` block of a site config, comments removed."""
    text = re.sub(r"#[^\n]*", "", text)
    start = re.search(r"\bserver\s*\{", text)
    if not start:
        raise AssertionError("no server block in the site config")
    depth = 0
    for i in range(start.end() - 1, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start.start() : i + 1]
    raise AssertionError("unbalanced braces in the site config")


def render_site(transport, port, upstream, extra=""):
    """The shipped site's server block, listening on 127.0.0.1:port and passing to `upstream`."""
    block = extract_server_block(NGINX_SITES[transport].read_text())
    documented = "uwsgi_pass %s;" % DOCUMENTED_UPSTREAM[transport]
    assert documented in block, f"{NGINX_SITES[transport]} no longer says `{documented}`"
    block = block.replace(documented, "uwsgi_pass %s;" % upstream)
    block = re.sub(r"^[ \t]*listen[ \t][^;]*;[ \t]*\n", "", block, flags=re.M)
    block = re.sub(r"^([ \t]*)(access_log|error_log)[ \t][^;]*;", r"\1# \2 set globally by the tests", block, flags=re.M)
    head, brace, rest = block.partition("{")
    body, _, _ = rest.rpartition("}")
    return f"{head}{brace}\n    listen 127.0.0.1:{port};\n{body}\n{extra}}}\n"


# Extra locations the tests need on top of the shipped site.
TEST_LOCATIONS = """
    # Like a TLS-terminating front: the app must see wsgi.url_scheme == "https".
    location /tls/ {{
        include uwsgi_params;
        uwsgi_param HTTPS on;
        uwsgi_pass {upstream};
    }}
"""


def render_nginx_conf(prefix, transport, port, upstream, server_extra=""):
    """`server_extra`: directives a test adds to the server block (e.g. `uwsgi_next_upstream off;`)."""
    prefix = Path(prefix)
    extra = TEST_LOCATIONS.format(upstream=upstream) + (f"\n    {server_extra}\n" if server_extra else "")
    site = render_site(transport, port, upstream, extra)
    temp = prefix / "temp"
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / name).mkdir(parents=True, exist_ok=True)
    # `include uwsgi_params` is relative to the directory of nginx.conf.
    shutil.copy(UWSGI_PARAMS, prefix / "uwsgi_params")
    conf = f"""# Rendered by tests/e2e/harness.py from {NGINX_SITES[transport].relative_to(REPO)}.
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    access_log {prefix}/access.log;
    default_type application/octet-stream;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;

{site}
}}
"""
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


@dataclass
class Nginx:
    binary: str
    prefix: Path
    server: Server
    port: int = 0
    server_extra: str = ""
    proc: subprocess.Popen = None
    conf: Path = None
    _out: object = field(default=None, repr=False)

    @property
    def error_log(self):
        return self.prefix / "error.log"

    def start(self):
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = render_nginx_conf(
            self.prefix, self.server.transport, self.port, self.server.upstream, self.server_extra
        )
        self._out = open(self.prefix / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.prefix) + "/", "-c", str(self.conf), "-e", str(self.error_log)],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(
            f"nginx did not start (exit code {self.proc.returncode}).\nconfig {self.conf}:\n{self.conf.read_text()}\n"
            f"stderr:\n{tail(self.prefix / 'stderr.log')}\nerror.log:\n{tail(self.error_log)}",
            pytrace=False,
        )

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        if self._out is not None:
            self._out.close()
            self._out = None

    def error_log_text(self):
        return tail(self.error_log, 20000)

    def request(self, method="GET", path="/", body=None, headers=(), timeout=60.0):
        return http_request(self.port, method, path, body, headers, timeout)

    def get(self, path="/", **kw):
        return self.request("GET", path, **kw)

    def connection(self, timeout=60.0):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)


@dataclass
class Stack:
    server: Server
    nginx: Nginx

    def request(self, *a, **kw):
        return self.nginx.request(*a, **kw)

    def get(self, path="/", **kw):
        return self.nginx.get(path, **kw)

    def diagnostics(self):
        return (
            f"--- server log {self.server.log_path}:\n{tail(self.server.log_path)}\n"
            f"--- nginx error.log:\n{tail(self.nginx.error_log)}"
        )


def example(name):
    """Path of an example app, for --wsgi-file."""
    return str(EXAMPLES / name)


def gone(pid):
    """True once `pid` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        # ProcessLookupError: reaped between the open and the read.
        return True


def wait_until(predicate, timeout=10.0, step=0.05):
    """Poll `predicate` until it returns something true or `timeout` seconds pass; return its last
    value. Tests wait on the condition they need, never on a guessed time."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


def started_query(marker):
    """`started=MARKER` for the behaviour app's /sleep and /spin, which create the file MARKER once
    the request runs in the app: a test waits for it (`wait_until(marker.exists)`) before acting
    on the request in flight."""
    return "started=" + urllib.parse.quote(str(marker))


def children(pid):
    """The live child pids of `pid`, from /proc/<pid>/task/*/children."""
    kids = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return {k for k in kids if not gone(k)}


def read_stats(port, deadline_s=10.0):
    """The stats server's JSON document (it writes it and closes); retried until it parses."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
            return json.loads(b"".join(chunks))
        except (OSError, ValueError):
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
