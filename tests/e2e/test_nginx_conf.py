"""The shipped site configs in nginx/ are the ones the suite runs, and they are valid nginx."""

import re
import subprocess

import pytest

from harness import DOCUMENTED_UPSTREAM, NGINX_SITES, extract_server_block, render_nginx_conf


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_shipped_site_config(transport):
    block = extract_server_block(NGINX_SITES[transport].read_text())
    assert "include uwsgi_params;" in block
    assert f"uwsgi_pass {DOCUMENTED_UPSTREAM[transport]};" in block
    size = re.search(r"client_max_body_size\s+(\d+)([kKmMgG]?);", block)
    assert size, "set client_max_body_size: nginx's default 1m refuses ordinary uploads"
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[size.group(2).lower()]
    assert int(size.group(1)) * scale >= 40 << 20, "the upload tests send 40 MiB"


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_rendered_config_passes_nginx_t(nginx_bin, tmp_path, transport):
    upstream = "127.0.0.1:1" if transport == "tcp" else "unix:" + str(tmp_path / "app.sock")
    conf = render_nginx_conf(tmp_path, transport, 1, upstream)
    out = subprocess.run(
        [nginx_bin, "-t", "-p", str(tmp_path) + "/", "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr + "\n" + conf.read_text()
    assert "test is successful" in out.stderr
