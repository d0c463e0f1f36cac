"""Options from the environment (UWSGI_<OPTION>, RWSGI_<OPTION>), strict mode, and the uWSGI options
rwsgi accepts without a warning."""

import json
import os
import subprocess

from harness import rwsgi_path
from test_ini_logic import uwsgi_binary

APP = '''\
import json
import os


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"from_env": os.environ.get("FROM_ENV"), "pid": os.getpid()}).encode()]
'''


def test_options_from_the_environment(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    env = {
        "UWSGI_WSGI_FILE": str(tmp_path / "app.py"),
        "UWSGI_ENV": "FROM_ENV=uwsgi",
        "RWSGI_PROCESSES": "2",
        "UWSGI_PROCESSES": "1",
    }
    srv = server(env=env)
    status, _, body = srv.get("/")
    assert status.startswith("HTTP/1.1 200"), (status, body, srv.log())
    assert json.loads(body)["from_env"] == "uwsgi"
    # RWSGI_PROCESSES=2 wins over UWSGI_PROCESSES=1, and two processes need the master
    assert srv.wait_for_log(r"spawned rwsgi master process"), srv.log()
    assert "ignoring unknown option" not in srv.log(), srv.log()


STRICT = """\
[uwsgi]
socket = /nonexistent/rwsgi-strict.sock
wsgi-file = app.py
procesess = 4
set-ph = base=/srv
chdir = /nonexistent/rwsgi-strict
strict = true
"""


def test_strict_names_a_typo_and_uwsgi_refuses_it_too(tmp_path):
    ini = tmp_path / "strict.ini"
    ini.write_text(STRICT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UWSGI_", "RWSGI_"))}
    out = subprocess.run([str(rwsgi_path()), "--ini", str(ini)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "strict mode: unknown options: procesess" in out.stderr, out.stderr
    assert "base" not in out.stderr.split("strict mode")[1], "set-ph placeholders are allowed"
    real = subprocess.run([uwsgi_binary(), "--ini", str(ini)], env=env, capture_output=True, text=True, timeout=30)
    assert real.returncode == 1, real.stdout + real.stderr
    assert "procesess" in real.stdout + real.stderr


ACCEPTED = """\
[uwsgi]
plugin = python3
plugins = python
ignore-sigpipe = true
ignore-write-errors = true
disable-write-exception = true
py-call-osafterfork = true
enable-threads = true
master = true
single-interpreter = true
thunder-lock = true
die-on-term = true
lazy = true
strict = true
"""


def test_accepted_options_start_without_a_warning(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "site.ini").write_text(ACCEPTED + f"wsgi-file = {tmp_path / 'app.py'}\n")
    srv = server("--ini", tmp_path / "site.ini")
    status, _, body = srv.get("/")
    assert status.startswith("HTTP/1.1 200"), (status, body, srv.log())
    assert "WARN" not in srv.log() and "unknown" not in srv.log(), srv.log()
