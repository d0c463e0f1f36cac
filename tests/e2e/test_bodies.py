"""Request and response bodies through nginx: uploads checksummed, a 20 MiB
file_wrapper download, and a POST the app never reads."""

import hashlib
import json
import os
import random

import pytest

from harness import example

KIB = 1024
MIB = 1024 * KIB


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("size", [0, 1, 64 * KIB, 1 * MIB, 40 * MIB], ids=["0B", "1B", "64KiB", "1MiB", "40MiB"])
def test_upload_checksummed(stack, transport, size):
    s = stack("--wsgi-file", example("upload.py"), transport=transport)
    body = random_bytes(size, seed=size)
    resp = s.request("POST", "/upload", body=body, headers=[("Content-Type", "application/octet-stream")], timeout=120)
    assert resp.status == 200, s.diagnostics()
    assert json.loads(resp.body) == {"sha256": hashlib.sha256(body).hexdigest(), "length": size}


def test_download_20mib_through_file_wrapper(stack, transport, tmp_path):
    data = random_bytes(20 * MIB, seed=20)
    (tmp_path / "big.bin").write_bytes(data)
    s = stack("--wsgi-file", example("download.py"), transport=transport, env={"DOWNLOAD_ROOT": str(tmp_path)})
    resp = s.get("/download?file=big.bin", timeout=120)
    assert resp.status == 200, s.diagnostics()
    assert resp.header("Content-Length") == str(len(data))
    assert len(resp.body) == len(data)
    assert hashlib.sha256(resp.body).hexdigest() == hashlib.sha256(data).hexdigest()


def test_download_refuses_paths_outside_its_root(stack, tmp_path):
    (tmp_path / "ok.txt").write_bytes(b"ok\n")
    s = stack("--wsgi-file", example("download.py"), env={"DOWNLOAD_ROOT": str(tmp_path)})
    assert s.get("/download?file=ok.txt").body == b"ok\n"
    assert s.get("/download?file=../../../etc/passwd").status == 404


def test_file_wrapper_is_logged_as_sendfile(server, tmp_path):
    """A file_wrapper over a real file goes out with sendfile(), and the request log says so."""
    (tmp_path / "f.bin").write_bytes(os.urandom(256 * KIB))
    srv = server("--wsgi-file", example("download.py"), env={"DOWNLOAD_ROOT": str(tmp_path)})
    status, _, body = srv.get("/download", query="file=f.bin")
    assert status == "HTTP/1.1 200 OK" and len(body) == 256 * KIB
    assert srv.wait_for_log(r"GET /download\?file=f\.bin => generated \d+ bytes in \d+ msecs via sendfile\(\)"), srv.log()


def test_unread_2mib_body_still_gets_200_five_times(stack, transport):
    """uWSGI closes with the body unread, the kernel sends RST and nginx answers 502."""
    s = stack("--wsgi-file", example("behaviour.py"), transport=transport)
    body = random_bytes(2 * MIB, seed=2)
    statuses = [s.request("POST", "/ignore-body", body=body).status for _ in range(5)]
    assert statuses == [200] * 5, s.diagnostics()
    assert "while sending request to upstream" not in s.nginx.error_log_text()
    s.server.assert_serves("/hello")
