"""uWSGI's config logic (if-env, if-opt, if-exists, for, for-glob, ...): rwsgi reads each file in
tests/ini as real uWSGI does, and a server started from such a file serves only what its true
branches say.

Both print the options they read with `--show-config`; the logic lines themselves, `ini` and
`show-config` are left out of the comparison. rwsgi stops after printing because the files name
no app; uWSGI because `--chdir` names a missing directory (it prints the configuration first).
uWSGI comes from tests/requirements.txt (`uwsgi` in the test venv) or `$UWSGI_BIN`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO, rwsgi_path

INI_DIR = REPO / "tests" / "ini"
# uWSGI's PyPI build has no JSON parser (jansson/yajl), so JSON files are checked in the unit test only.
FILES = sorted(INI_DIR.glob("*.ini")) + sorted(INI_DIR.glob("*.yaml"))
LOGIC = {
    "if-env", "ifenv", "if-not-env", "if-opt", "if-not-opt", "if-exists", "ifexists", "if-not-exists",
    "if-file", "if-not-file", "if-dir", "ifdir", "if-not-dir", "for", "for-glob", "for-readline",
    "for-times", "endif", "end-if", "endfor", "end-for", "end",
}
SKIP_KEYS = LOGIC | {"ini", "yaml", "show-config", "chdir"}
MISSING_DIR = "/nonexistent/rwsgi-ini-logic"


def uwsgi_binary():
    explicit = os.environ.get("UWSGI_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "uwsgi"
    if beside.exists():
        return str(beside)
    pytest.fail("real uWSGI is not installed: pip install -r tests/requirements.txt (or set UWSGI_BIN)")


def file_env(path):
    """The environment a file is read in: its `; env:` line over a clean copy of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UWSGI_", "RWSGI_"))}
    line = next(l for l in path.read_text().splitlines() if l[2:].startswith("env:"))
    for pair in line[len("; env:"):].split():
        key, _, value = pair.partition("=")
        env[key] = value
    return env


def shown(output):
    """The `key = value` lines of a --show-config block, without the logic and bookkeeping keys."""
    block = output.split("[uwsgi]\n", 1)[1].split(";end of configuration", 1)[0]
    pairs = []
    for line in block.splitlines():
        key, _, value = line.partition(" = ")
        if key not in SKIP_KEYS:
            pairs.append((key, value.strip()))
    return pairs


def show(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_uwsgi_reads_the_file_as_rwsgi_does(path):
    env = file_env(path)
    flag = "--" + path.suffix[1:]
    code, rwsgi_out = show([str(rwsgi_path()), flag, str(path), "--show-config"], env)
    assert code != 0 and "[uwsgi]" in rwsgi_out, rwsgi_out
    uwsgi = [uwsgi_binary(), flag, str(path), "--show-config", "--chdir", MISSING_DIR]
    code, uwsgi_out = show(uwsgi, env)
    assert code != 0, uwsgi_out
    if path.stem == "nested":
        # Where rwsgi goes further on purpose: uWSGI 2.0 has no nested blocks.
        assert "recursive logic in options is not supported" in uwsgi_out, uwsgi_out
        assert ("env", "MODE=prod") in shown(rwsgi_out)
        return
    assert "[uwsgi]" in uwsgi_out, uwsgi_out
    assert shown(rwsgi_out) == shown(uwsgi_out), (rwsgi_out, uwsgi_out)
    assert not any(k.startswith("NEVER") for _, v in shown(rwsgi_out) for k in [v])


APP = '''\
import json
import os


def application(environ, start_response):
    keys = sorted(k for k in os.environ if k.startswith("LOGIC_"))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({k: os.environ[k] for k in keys}).encode()]
'''

SITE = """\
[uwsgi]
wsgi-file = %dapp.py
if-env = RWSGI_E2E_LOGIC_PROD
master = true
env = LOGIC_MODE=production
processes = 2
endif =
if-not-env = RWSGI_E2E_LOGIC_PROD
env = LOGIC_MODE=development
endif =
for = a b
env = LOGIC_ITEM_%(_)=%(_)
endfor =
if-exists = %dmissing.txt
env = LOGIC_NEVER=1
endif =
"""


@pytest.mark.parametrize("prod", [False, True], ids=["development", "production"])
def test_only_the_true_branch_takes_effect(server, tmp_path, prod):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "site.ini").write_text(SITE)
    env = {"RWSGI_E2E_LOGIC_PROD": "1"} if prod else {}
    srv = server("--ini", tmp_path / "site.ini", env=env)
    status, _, body = srv.get("/")
    assert status.startswith("HTTP/1.1 200"), (status, body, srv.log())
    seen = json.loads(body)
    assert seen == {
        "LOGIC_ITEM_a": "a",
        "LOGIC_ITEM_b": "b",
        "LOGIC_MODE": "production" if prod else "development",
    }
    assert "ignoring unknown option" not in srv.log(), srv.log()
    # processes = 2 (and so the master) only in production
    assert ("spawned rwsgi master process" in srv.log()) == prod, srv.log()


YAML_SITE = """\
uwsgi:
  wsgi-file: %dapp.py
  env:
    - LOGIC_ITEM_a=a
    - LOGIC_ITEM_b=b
  if-env: RWSGI_E2E_LOGIC_PROD
  env: LOGIC_MODE=production
  endif: true
  if-not-env: RWSGI_E2E_LOGIC_PROD
  env: LOGIC_MODE=development
  endif: true
"""


def test_a_yaml_file_serves_as_its_ini_twin(server, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "site.yaml").write_text(YAML_SITE)
    srv = server("--yaml", tmp_path / "site.yaml", env={"RWSGI_E2E_LOGIC_PROD": "1"})
    status, _, body = srv.get("/")
    assert status.startswith("HTTP/1.1 200"), (status, body, srv.log())
    assert json.loads(body) == {"LOGIC_ITEM_a": "a", "LOGIC_ITEM_b": "b", "LOGIC_MODE": "production"}
