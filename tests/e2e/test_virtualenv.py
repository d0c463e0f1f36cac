"""`--virtualenv`: the app runs as under the venv's own `bin/python`.

sys.prefix and sys.executable are the venv's, the venv's `.pth` files run, and the base
interpreter's site-packages stay off sys.path unless pyvenv.cfg says
`include-system-site-packages = true` (uWSGI, which sets PYTHONHOME, isolates the same way).
"""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path


APP = '''
import json, sys
import planted  # found through the .pth file in the venv's site-packages

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"prefix": sys.prefix, "executable": sys.executable,
                        "path": sys.path, "planted": planted.VALUE}).encode()]
'''


def make_venv(root, system_site):
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    if system_site:
        cfg = venv / "pyvenv.cfg"
        cfg.write_text(cfg.read_text().replace("include-system-site-packages = false",
                                               "include-system-site-packages = true"))
        assert "include-system-site-packages = true" in cfg.read_text()
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    extra = root / "extra"
    extra.mkdir()
    (extra / "planted.py").write_text("VALUE = 'from the pth'\n")
    (site_packages / "planted.pth").write_text(str(extra) + "\n")
    app = root / "app.py"
    app.write_text(APP)
    return venv, app


def base_site_packages():
    base = sysconfig.get_path("purelib", vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
    assert Path(base).is_dir(), f"the base interpreter has no site-packages at {base}"
    return base


def fetch(srv):
    status, _, body = srv.get("/")
    assert status.startswith("HTTP/1.1 200"), (status, body, srv.log())
    return json.loads(body)


def test_the_venv_is_isolated_like_its_own_python(server, tmp_path):
    venv, app = make_venv(tmp_path, system_site=False)
    srv = server("--wsgi-file", app, env={"RWSGI_TEST_VIRTUALENV": str(venv)})
    seen = fetch(srv)
    assert Path(seen["prefix"]).resolve() == venv.resolve()
    assert Path(seen["executable"]) == venv / "bin" / "python"
    assert seen["planted"] == "from the pth"
    assert base_site_packages() not in seen["path"], seen["path"]
    assert any(p.startswith(str(venv)) and p.endswith("site-packages") for p in seen["path"]), seen["path"]


def test_system_site_packages_when_the_venv_asks(server, tmp_path):
    venv, app = make_venv(tmp_path, system_site=True)
    srv = server("--wsgi-file", app, env={"RWSGI_TEST_VIRTUALENV": str(venv)})
    seen = fetch(srv)
    assert Path(seen["prefix"]).resolve() == venv.resolve()
    assert seen["planted"] == "from the pth"
    assert base_site_packages() in seen["path"], seen["path"]


def test_a_directory_without_pyvenv_cfg_still_lends_its_packages(server, tmp_path):
    """A bare prefix (no pyvenv.cfg, no bin/python): its site-packages go first on sys.path."""
    venv, app = make_venv(tmp_path, system_site=False)
    (venv / "pyvenv.cfg").unlink()
    srv = server("--wsgi-file", app, env={"RWSGI_TEST_VIRTUALENV": str(venv)})
    seen = fetch(srv)
    assert seen["planted"] == "from the pth"
    assert Path(seen["prefix"]).resolve() == venv.resolve()
