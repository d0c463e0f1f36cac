"""An --ini file starts the same server as the equivalent flags (reference §3.6).

The ini file uses what real ones do: placeholders (`base = %d`, `%(base)app.sock`), magic
variables (`%d` with its trailing slash, `%n`), `$(ENV)`, a boolean written `true`, a
placeholder holding a number, and comments. The server fixture also gives `--socket` on the
command line, so the server binds both that socket and the ini's unix socket; requests go
through the ini's socket to show it was bound where the placeholders say.
"""

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

import uwsgi_wire as wire

APP = '''\
import json
import os


def application(environ, start_response):
    body = json.dumps(
        {
            "greeting": os.environ.get("RWSGI_INI_GREETING"),
            "cwd": os.getcwd(),
            "SCRIPT_NAME": environ.get("SCRIPT_NAME"),
            "PATH_INFO": environ.get("PATH_INFO"),
            "QUERY_STRING": environ.get("QUERY_STRING"),
            "multithread": environ.get("wsgi.multithread"),
        },
        sort_keys=True,
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
'''

INI = """\
; the site, as an ini file would describe it
[uwsgi]
base = %d
socket = %(base)app.sock
wsgi-file = %(base)app.py
chdir = %(base)
# a placeholder holding a number, then used as one
nthreads = 2
threads = %(nthreads)
master = true
env = RWSGI_INI_GREETING=$(RWSGI_INI_TEST_GREETING) from %n

[staging]
socket = %dstaging.sock
wsgi-file = %dapp.py
chdir = %d
env = RWSGI_INI_GREETING=staging $(RWSGI_INI_TEST_GREETING)
"""

ENV = {"RWSGI_INI_TEST_GREETING": "hello"}


@pytest.fixture
def site():
    """A short directory (unix socket paths must stay under ~108 bytes) holding app.py and site.ini."""
    base = Path(tempfile.mkdtemp(prefix="rwsgi-ini-", dir=os.environ.get("RWSGI_SOCKDIR", "/tmp")))
    (base / "app.py").write_text(APP)
    (base / "site.ini").write_text(INI)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def answer(address, path="/probe", query="a=1"):
    status, _, body = wire.split_response(wire.get(address, path, query))
    assert status.startswith("HTTP/1.1 200"), (status, body)
    return json.loads(body)


def test_ini_starts_the_same_server_as_flags(server, site):
    from_ini = server("--ini", site / "site.ini", env=ENV)
    sock = site / "app.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode), "the socket goes where %(base)app.sock says"
    via_ini = answer(str(sock))
    assert via_ini == answer(from_ini.address), "both sockets serve the same app"

    from_flags = server(
        "--wsgi-file", site / "app.py",
        "--chdir", str(site) + "/",
        "--threads", "2",
        "--master",
        "--env", "RWSGI_INI_GREETING=hello from site",
        env=ENV,
    )
    assert via_ini == answer(from_flags.address)
    assert via_ini == {
        "greeting": "hello from site",
        "cwd": str(site.resolve()),
        "SCRIPT_NAME": "",
        "PATH_INFO": "/probe",
        "QUERY_STRING": "a=1",
        "multithread": True,
    }
    log = from_ini.log()
    assert "unknown option" not in log and "ignoring" not in log, "placeholders are not options"


def test_named_section_and_command_line_override(server, site):
    other = Path(tempfile.mkdtemp(prefix="rwsgi-ini-cwd-"))
    try:
        srv = server("--ini", f"{site / 'site.ini'}:staging", "--chdir", other, env=ENV)
        got = answer(str(site / "staging.sock"))
        assert got["greeting"] == "staging hello"
        assert got["cwd"] == str(other.resolve()), "a flag after --ini overrides the file"
        assert not (site / "app.sock").exists(), "only the [staging] section was read"
        assert answer(srv.address) == got
    finally:
        shutil.rmtree(other, ignore_errors=True)
