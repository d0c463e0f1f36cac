"""Fixtures for the end-to-end suite: the real rwsgi binary behind a real nginx.

Nothing is built here. The server binary is `$RWSGI_BIN` (default
`target/release/rwsgi`); nginx is `$NGINX_BIN` or `nginx` on PATH (or /usr/sbin).
A missing binary fails the run loudly: these tests never skip.

- `server(*args, transport="tcp"|"unix", env={})` starts the server with
  `--socket ADDR` plus `args`, waits until it answers a uwsgi PING, and stops it
  (by its pid) at teardown. Its stdout and stderr go to a log file the test can read.
- `nginx(server, conf=None)` renders the site config shipped in nginx/ (the TCP
  or the unix one, matching the server's transport) into a complete nginx.conf
  under a temporary prefix, starts nginx on a free loopback port, and stops it.
- `stack(*args, ...)` is both at once.

If `$RWSGI_VIRTUALENV`, `$VIRTUAL_ENV`, or the venv pytest runs in is set, the
server gets `--virtualenv PATH` so the embedded interpreter finds Flask and Django.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness import UWSGI_PARAMS, Nginx, Server, Stack, free_port, nginx_path, rwsgi_path, tail


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def rwsgi_bin():
    path = rwsgi_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"the rwsgi binary {path} does not exist or is not executable: run `cargo build --release` "
            "(scripts/test.sh does) or point RWSGI_BIN at it",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def nginx_bin():
    path = nginx_path()
    if not path:
        pytest.fail(
            "nginx is not installed (not on PATH nor in /usr/sbin): the end-to-end tests need a real nginx. "
            "Install it (`apt-get install -y nginx-light`, which scripts/test.sh does as root) or set NGINX_BIN.",
            pytrace=False,
        )
    if not UWSGI_PARAMS.is_file():
        pytest.fail(f"{UWSGI_PARAMS} is missing: install Debian's nginx-common (it ships uwsgi_params)", pytrace=False)
    return path


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def server(request, tmp_path_factory):
    """Factory: `server(*args, transport="tcp", env=None, binary=None, virtualenv=True)` -> a running
    Server. `binary` replaces `$RWSGI_BIN` (a pip-installed `venv/bin/rwsgi`, which also wants
    `virtualenv=False`: it runs in its own venv)."""
    started = []
    base = tmp_path_factory.mktemp("server")
    # Unix socket paths must stay under ~108 bytes: use a short directory of our own.
    sockdir = Path(os.environ.get("RWSGI_SOCKDIR", "/tmp"))

    def start(*args, transport="tcp", env=None, binary=None, virtualenv=True):
        n = len(started)
        if transport == "tcp":
            address = ("127.0.0.1", free_port())
        elif transport == "unix":
            short = Path(tempfile.mkdtemp(prefix="rwsgi-e2e-", dir=sockdir))
            address = str(short / "app.sock")
        else:
            raise ValueError(transport)
        full_env = dict(os.environ)
        for key, value in (env or {}).items():  # None removes a variable
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        srv = Server(
            args=args, transport=transport, address=address, log_path=base / f"server{n}.log", virtualenv=virtualenv
        )
        started.append(srv)
        srv.start(binary or request.getfixturevalue("rwsgi_bin"), full_env)
        return srv

    yield start

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for srv in reversed(started):
        srv.stop()
        if failed:
            print(f"\n--- server log {srv.log_path}:\n{tail(srv.log_path)}")
        if srv.transport == "unix":
            shutil.rmtree(Path(srv.address).parent, ignore_errors=True)


@pytest.fixture
def nginx(request, nginx_bin, tmp_path_factory):
    """Factory: `nginx(server, server_extra="")` -> a running Nginx in front of that server;
    `server_extra` is added to its server block."""
    started = []

    def start(srv, server_extra=""):
        ngx = Nginx(binary=nginx_bin, prefix=tmp_path_factory.mktemp("nginx"), server=srv, server_extra=server_extra)
        started.append(ngx)
        ngx.start()
        return ngx

    yield start

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for ngx in reversed(started):
        ngx.stop()
        if failed:
            print(f"\n--- nginx error.log {ngx.error_log}:\n{tail(ngx.error_log)}")


@pytest.fixture
def stack(server, nginx):
    """Factory: `stack(*server_args, transport="tcp", env=None, **server_kw)` -> Stack(server, nginx)."""

    def start(*args, transport="tcp", env=None, **server_kw):
        srv = server(*args, transport=transport, env=env, **server_kw)
        return Stack(srv, nginx(srv))

    return start


@pytest.fixture(params=["tcp", "unix"])
def transport(request):
    return request.param
