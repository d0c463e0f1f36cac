"""The pip-installed rwsgi: a built wheel in a fresh venv serves a Flask app through nginx.

`$RWSGI_WHEELS` lists the wheels to test (os.pathsep-separated; scripts/test.sh builds one for its
Python, scripts/test-wheels.sh builds and tests 3.10-3.13). Each goes into a fresh venv made by the
CPython its tag names (pyenv's, or `python3.X` on PATH), with Flask. Then `venv/bin/rwsgi` runs with
no --virtualenv: the app must see the venv's sys.executable and sys.prefix, a SIGHUP reload must
re-execute through the same interpreter and script and serve again, and SIGTERM must exit 0.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import REPO, tail

APP = '''
import os, sys
import flask

app = flask.Flask(__name__)


@app.route("/")
def index():
    return {"executable": sys.executable, "prefix": sys.prefix, "pid": os.getpid(),
            "flask": flask.__file__, "argv": sys.argv}
'''


def wheels():
    listed = os.environ.get("RWSGI_WHEELS", "")
    return [Path(p) for p in listed.split(os.pathsep) if p]


def wheel_python(wheel):
    """The CPython a wheel's tag (`cp311`) names: pyenv's, else `python3.11` on PATH."""
    found = re.search(r"-cp3(\d+)-", wheel.name)
    assert found, f"{wheel.name} has no CPython tag"
    minor = found.group(1)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob(f"3.{minor}.*/bin/python3.{minor}")) if pyenv.is_dir() else []
    on_path = shutil.which(f"python3.{minor}")
    python = str(candidates[-1]) if candidates else on_path
    assert python, f"no CPython 3.{minor} (pyenv or PATH) to install {wheel.name} into"
    return python


def flask_requirement():
    """Flask as tests/requirements.txt pins it."""
    for line in (REPO / "tests" / "requirements.txt").read_text().splitlines():
        if line.startswith("flask=="):
            return line.strip()
    raise AssertionError("tests/requirements.txt pins no flask")


def install(wheel, root):
    venv = root / "venv"
    subprocess.run([wheel_python(wheel), "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel), flask_requirement()], check=True, timeout=600)
    return venv


def params():
    listed = wheels()
    if not listed:
        # Never a silent skip: without wheels this fails and says how to get them.
        return [pytest.param(None, id="no-wheel")]
    return [pytest.param(w, id=re.search(r"-(cp3\d+)-", w.name).group(1) if "-cp3" in w.name else w.name)
            for w in listed]


@pytest.fixture(params=params(), scope="module")
def installed(request, tmp_path_factory):
    wheel = request.param
    if wheel is None:
        pytest.fail("RWSGI_WHEELS names no wheel: run scripts/test.sh (which builds one), or "
                    "scripts/build-wheels.sh and RWSGI_WHEELS=$(ls dist/*.whl | paste -sd:)", pytrace=False)
    assert wheel.is_file(), f"{wheel} does not exist"
    root = tmp_path_factory.mktemp("wheel")
    venv = install(wheel, root)
    app_dir = root / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    return venv, app_dir, "3." + re.search(r"-cp3(\d+)-", wheel.name).group(1)


# The pip-installed rwsgi must not see the test suite's venv: it runs in its own.
NO_OTHER_VENV = {"RWSGI_VIRTUALENV": None, "VIRTUAL_ENV": None, "PYTHONPATH": None, "PYTHONHOME": None}


def seen(stack_):
    r = stack_.get("/", timeout=30)
    assert r.status == 200, (r, stack_.diagnostics())
    return json.loads(r.body)


def test_the_installed_rwsgi_serves_flask_from_its_venv_reloads_and_stops(installed, stack):
    venv, app_dir, version = installed
    s = stack("--master", "--processes", "2", "--threads", "4", "--module", "app:app", "--chdir", app_dir,
              env=NO_OTHER_VENV, binary=venv / "bin" / "rwsgi", virtualenv=False)
    first = seen(s)
    assert Path(first["executable"]).parent == venv / "bin", first
    assert Path(first["prefix"]).resolve() == venv.resolve(), first
    assert Path(first["flask"]).resolve().is_relative_to(venv.resolve()), first
    master = s.server.pid
    assert first["pid"] != master, "requests must run in the workers"
    assert f"Python version: {version}." in s.server.log()

    offset = s.server.log_size()
    os.kill(master, signal.SIGHUP)
    assert s.server.wait_for_log(r"binary reloading", offset, timeout=20), s.diagnostics()
    # The master re-executed itself as the venv's interpreter running the same console script.
    assert s.server.wait_for_log(r"spawned rwsgi worker 2", offset, timeout=30), s.diagnostics()
    cmdline = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].decode() == first["executable"], cmdline
    assert cmdline[1].decode() == str(venv / "bin" / "rwsgi"), cmdline
    end = time.monotonic() + 20
    while True:
        again = seen(s)
        if again["pid"] != first["pid"] or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert Path(again["prefix"]).resolve() == venv.resolve(), again
    assert s.server.proc.poll() is None and s.server.pid == master, "the master must keep its pid"

    s.server.proc.send_signal(signal.SIGTERM)
    assert s.server.proc.wait(30) == 0, tail(s.server.log_path)


def test_python_m_rwsgi_and_a_foreign_virtualenv_is_refused(installed, tmp_path):
    venv, app_dir, _ = installed
    python = venv / "bin" / "python"
    out = subprocess.run([python, "-m", "rwsgi", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--socket" in out.stdout, out

    other = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in NO_OTHER_VENV}
    out = subprocess.run(
        [venv / "bin" / "rwsgi", "--socket", str(tmp_path / "s.sock"), "--module", "app:app", "--chdir", app_dir,
         "--virtualenv", other],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert out.returncode == 1, out
    assert "installed with pip" in out.stderr and str(other) in out.stderr, out.stderr
    assert not (tmp_path / "s.sock").exists(), "nothing may be bound before the refusal"
