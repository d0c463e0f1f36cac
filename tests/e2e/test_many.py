"""Many instances behind one nginx: nginx/rwsgi-upstream.conf, rendered with three rwsgi instances
on their own unix sockets. A rolling restart of all three under load loses no request; SIGKILL of
one loses at most the requests it was running, and nginx routes around it.

Plus deploy/kubernetes/ validated against the Kubernetes schema with kubernetes-validate.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import REPO, UWSGI_PARAMS, Server, example, extract_server_block, free_port, gone, tail
from test_process_model import Load, children, failures

UPSTREAM_CONF = REPO / "nginx" / "rwsgi-upstream.conf"
DOCUMENTED = [f"unix:/run/rwsgi/app{i}.sock" for i in (1, 2, 3)]
BEHAVIOUR = example("behaviour.py")


def render(prefix, port, sockets):
    """nginx.conf from the shipped upstream config: our sockets, our port, logs under prefix."""
    text = re.sub(r"#[^\n]*", "", UPSTREAM_CONF.read_text())
    upstream = re.search(r"upstream\s+rwsgi_pool\s*\{[^}]*\}", text).group(0)
    for documented, ours in zip(DOCUMENTED, sockets):
        assert f"server {documented} " in upstream, f"{UPSTREAM_CONF} no longer lists {documented}"
        upstream = upstream.replace(f"server {documented} ", f"server unix:{ours} ")
    server = extract_server_block(text)
    server = re.sub(r"^[ \t]*listen[ \t][^;]*;[ \t]*\n", "", server, flags=re.M)
    server = server.replace("{", f"{{\n    listen 127.0.0.1:{port};", 1)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(UWSGI_PARAMS, prefix / "uwsgi_params")
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/temp/client_body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
{upstream}
{server}
}}
""")
    return conf


def fail_timeout():
    return float(re.search(r"fail_timeout=(\d+)s", UPSTREAM_CONF.read_text()).group(1))


class Pool:
    """Three rwsgi instances and the nginx in front of them, all stopped by pid at the end."""

    def __init__(self, rwsgi_bin, nginx_bin, tmp_path, args):
        self.rwsgi_bin, self.tmp = rwsgi_bin, tmp_path
        self.sockdir = Path(tempfile.mkdtemp(prefix="rwsgi-many-", dir="/tmp"))
        self.sockets = [str(self.sockdir / f"app{i}.sock") for i in (1, 2, 3)]
        self.args = args
        self.servers = [None, None, None]
        self.restarts = 0
        self.port = free_port()
        self.prefix = tmp_path / "nginx"
        self.prefix.mkdir()
        self.conf = render(self.prefix, self.port, self.sockets)
        for i in range(3):
            self.start(i)
        self.nginx_log = open(self.prefix / "stderr.log", "wb")
        self.nginx = subprocess.Popen(
            [nginx_bin, "-p", f"{self.prefix}/", "-c", str(self.conf), "-e", str(self.prefix / "error.log")],
            stdin=subprocess.DEVNULL, stdout=self.nginx_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        import socket
        end = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < end and self.nginx.poll() is None, tail(self.prefix / "error.log")
                time.sleep(0.05)

    def start(self, i):
        self.restarts += 1
        log = self.tmp / f"rwsgi{i + 1}-{self.restarts}.log"
        srv = Server(args=self.args, transport="unix", address=self.sockets[i], log_path=log)
        srv.start(self.rwsgi_bin, dict(os.environ))
        self.servers[i] = srv

    def close(self):
        from harness import stop_process
        stop_process(self.nginx)
        self.nginx_log.close()
        for srv in self.servers:
            if srv is not None:
                srv.stop()
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def diagnostics(self):
        logs = "\n".join(f"--- {s.log_path}:\n{tail(s.log_path, 1500)}" for s in self.servers if s)
        return f"{logs}\n--- nginx error.log:\n{tail(self.prefix / 'error.log', 3000)}"


@pytest.fixture
def pool(request, rwsgi_bin, nginx_bin, tmp_path):
    made = []

    def make(*args):
        p = Pool(rwsgi_bin, nginx_bin, tmp_path, [str(a) for a in args])
        made.append(p)
        return p

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for p in made:
        if failed:
            print(p.diagnostics())
        p.close()


def test_upstream_config_passes_nginx_t(nginx_bin, tmp_path):
    conf = render(tmp_path, 1, [str(tmp_path / f"a{i}.sock") for i in (1, 2, 3)])
    out = subprocess.run([nginx_bin, "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", str(tmp_path / "e.log")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    text = UPSTREAM_CONF.read_text()
    for directive in ("max_fails=", "uwsgi_next_upstream error timeout;", "uwsgi_next_upstream_tries"):
        assert directive in text


def test_rolling_restart_of_three_instances_under_load_loses_nothing(pool):
    p = pool("--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--threads", "2")
    old_workers = set().union(*(children(srv.pid) for srv in p.servers))
    new_workers = []
    with Load(p.port, "/pid?s=0.05", threads=6, max_s=40) as load:
        assert load.wait_for(lambda r: r[2] == 200, timeout=5), p.diagnostics()
        for i in range(3):
            old = p.servers[i]
            old.proc.send_signal(signal.SIGTERM)
            assert old.proc.wait(15) == 0, tail(old.log_path)
            old.stop()
            p.start(i)
            new_workers.append(children(p.servers[i].pid))
            # As the config says: wait until nginx has the restarted one back in the rotation.
            time.sleep(fail_timeout() + 0.3)
        results = load.finish()
    bad = failures(results)
    print(f"rolling restart of 3 instances under load: {len(results)} requests, {len(bad)} failed")
    assert not bad, f"{len(bad)} failed: {bad[:5]}\n{p.diagnostics()}"
    pids = {int(r[3]) for r in results if r[2] == 200}
    for i in (0, 1):
        assert new_workers[i] & pids, f"instance {i + 1}'s new workers {new_workers[i]} answered nothing"
    assert old_workers & pids, "the old workers answered nothing: the load started late"


def test_sigkill_of_one_instance_loses_at_most_its_inflight_requests(pool):
    p = pool("--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--threads", "2")
    victim = p.servers[1]
    with Load(p.port, "/pid?s=0.1", threads=6, max_s=20) as load:
        assert load.wait_for(lambda r: r[2] == 200, timeout=5), p.diagnostics()
        time.sleep(0.5)
        workers = children(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(2.0)
        results = load.finish()
    bad = failures(results)
    print(f"SIGKILL of one of 3 instances under load: {len(results)} requests, {len(bad)} failed")
    # Its 2 workers x 2 threads were running at most 4 requests (nginx retries most of them).
    assert len(bad) <= 4, f"{len(bad)} failed: {bad[:5]}\n{p.diagnostics()}"
    after = [r for r in results if r[0] > killed_at + 0.2]
    assert len(after) > 20 and not failures(after), p.diagnostics()
    assert not {int(r[3]) for r in after} & (workers | {victim.pid})
    victim.proc.wait(5)


def test_kubernetes_manifests_validate():
    """deploy/kubernetes/*.yaml against the Kubernetes schema (kubernetes-validate, offline)."""
    files = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
    assert files, "deploy/kubernetes/ has no manifests"
    tool = Path(sys.executable).parent / "kubernetes-validate"
    assert tool.exists(), "kubernetes-validate is not installed (tests/requirements.txt)"
    out = subprocess.run([str(tool), "--strict", "-k", "1.30.0", *map(str, files)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    text = "\n".join(f.read_text() for f in files)
    mercy = int(re.search(r"--reload-mercy[\s\-\"']+(\d+)", text).group(1))
    grace = int(re.search(r"terminationGracePeriodSeconds:\s*(\d+)", text).group(1))
    assert grace > mercy, (grace, mercy)
    for probe in ("path: /ready", "path: /health", "emptyDir", "preStop"):
        assert probe in text, probe
