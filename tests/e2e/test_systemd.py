"""systemd integration without an init system: the notify protocol (Type=notify) read from a unix
datagram socket the test binds as $NOTIFY_SOCKET, and socket activation through
`systemd-socket-activate` (Debian's systemd package; scripts/test.sh installs it when missing).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import uwsgi_wire as wire
from harness import REPO, example, free_port, gone, stop_process, tail, virtualenv_path

HELLO = example("hello.py")


class NotifySocket:
    """The datagram socket systemd would listen on; collects what the server sends."""

    def __init__(self, directory):
        self.path = str(Path(directory) / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def collect(self, until, timeout):
        """Read until a message matches the regex `until` (returns it) or `timeout` passes (None)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append(msg)
            if re.search(until, msg):
                return msg
        return None

    def close(self):
        self.sock.close()


def rwsgi_cmd(rwsgi_bin, *args):
    cmd = [str(rwsgi_bin)]
    venv = virtualenv_path()
    if venv:
        cmd += ["--virtualenv", venv]
    return cmd + [str(a) for a in args]


def start(cmd, log_path, env=None):
    log = open(log_path, "wb")
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return proc


def serves(address, timeout=20.0):
    """Wait (bounded) until `address` answers a GET with Hello World."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            status, _, body = wire.split_response(wire.get(address, "/", "", 5.0))
            if status.startswith("HTTP/1.1 200") and body == b"Hello World\n":
                return True
            last = (status, body)
        except OSError as err:
            last = err
        time.sleep(0.1)
    raise AssertionError(f"{address} did not serve: {last}")


@pytest.fixture
def procs(request, tmp_path):
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for proc, log in started:
        stop_process(proc)
        if failed:
            print(f"\n--- log {log}:\n{tail(log)}")


def test_notify_ready_reloading_stopping_and_watchdog(rwsgi_bin, tmp_path, procs):
    notify = NotifySocket(tmp_path)
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000")
    log = tmp_path / "rwsgi.log"
    proc = start(rwsgi_cmd(rwsgi_bin, "--socket", f"127.0.0.1:{port}", "--wsgi-file", HELLO, "--processes", "2"), log, env)
    procs.append((proc, log))
    try:
        ready = notify.collect(r"READY=1", timeout=30)
        assert ready, f"no READY=1: {notify.messages}\n{tail(log)}"
        assert f"MAINPID={proc.pid}" in ready and "STATUS=2 of 2 workers accepting" in ready, ready
        # READY=1 means serving: a request now succeeds at once.
        serves(("127.0.0.1", port), timeout=2)
        assert notify.collect(r"^WATCHDOG=1$", timeout=2), notify.messages
        pings_before = notify.messages.count("WATCHDOG=1")
        notify.collect(r"^$never", timeout=1.0)
        assert notify.messages.count("WATCHDOG=1") - pings_before >= 3, "WATCHDOG=1 is not sent every WATCHDOG_USEC/2"

        os.kill(proc.pid, signal.SIGHUP)
        assert notify.collect(r"RELOADING=1", timeout=10), notify.messages
        again = notify.collect(r"READY=1", timeout=30)
        assert again and f"MAINPID={proc.pid}" in again, (notify.messages, tail(log))
        assert "binary reloading" in log.read_text(), "the reload did not re-exec the master"
        serves(("127.0.0.1", port), timeout=2)

        os.kill(proc.pid, signal.SIGTERM)
        assert notify.collect(r"STOPPING=1", timeout=10), notify.messages
        assert proc.wait(15) == 0
    finally:
        notify.close()


@pytest.fixture(scope="module")
def socket_activate():
    path = shutil.which("systemd-socket-activate")
    if not path:
        pytest.fail("systemd-socket-activate is missing: apt-get install systemd (scripts/test.sh does)", pytrace=False)
    return path


def activated(socket_activate, rwsgi_bin, listens, fdnames, args):
    cmd = [socket_activate]
    for addr in listens:
        cmd += ["-l", addr]
    cmd += [f"--fdname={':'.join(fdnames)}"]
    for var in ("PATH", "HOME", "VIRTUAL_ENV", "LANG"):
        if var in os.environ:
            cmd += ["-E", var]
    return cmd + rwsgi_cmd(rwsgi_bin, *args)


def test_socket_activation_alone_serves_every_passed_socket_across_reloads(socket_activate, rwsgi_bin, tmp_path, procs):
    port = free_port()
    sockdir = Path(tempfile.mkdtemp(prefix="rwsgi-sa-", dir="/tmp"))
    unix = str(sockdir / "app.sock")
    log = tmp_path / "rwsgi.log"
    cmd = activated(socket_activate, rwsgi_bin, [f"127.0.0.1:{port}", unix], ["web", "local"],
                    ["--wsgi-file", HELLO, "--master", "--processes", "2"])
    proc = start(cmd, log)
    procs.append((proc, log))
    try:
        serves(("127.0.0.1", port))  # the first connection makes systemd-socket-activate exec rwsgi
        serves(unix)
        text = log.read_text()
        assert re.search(rf"uwsgi socket 0 inherited 127.0.0.1:{port} \(web\) fd 3", text), text
        assert re.search(r"uwsgi socket 1 inherited .*app.sock \(local\) fd 4", text), text
        assert "bound to" not in text, "with no --socket nothing is bound by rwsgi itself"
        os.kill(proc.pid, signal.SIGHUP)
        end = time.monotonic() + 20
        while time.monotonic() < end and log.read_text().count("spawned rwsgi worker 2") < 2:
            time.sleep(0.1)
        serves(("127.0.0.1", port))
        serves(unix)
        assert proc.poll() is None
        # systemd owns the sockets (also after the re-exec): a stop leaves the path for the next start.
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0, tail(log)
        assert os.path.exists(unix), f"the activated socket's path was removed at stop\n{tail(log)}"
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def test_socket_activation_matches_socket_flags_by_address(socket_activate, rwsgi_bin, tmp_path, procs):
    passed, unused, own = free_port(), free_port(), free_port()
    log = tmp_path / "rwsgi.log"
    # Passed in the other order than --socket names them; `unused` matches no --socket.
    cmd = activated(socket_activate, rwsgi_bin, [f"127.0.0.1:{unused}", f"127.0.0.1:{passed}"], ["a", "b"],
                    ["--socket", f"127.0.0.1:{own}", "--socket", f"127.0.0.1:{passed}", "--wsgi-file", HELLO])
    proc = start(cmd, log)
    procs.append((proc, log))
    serves(("127.0.0.1", passed))
    serves(("127.0.0.1", own))
    text = log.read_text()
    assert re.search(rf"uwsgi socket 1 inherited 127.0.0.1:{passed} \(b\) fd 4", text), text
    assert re.search(rf"uwsgi socket 0 bound to 127.0.0.1:{own}", text), text
    assert re.search(rf"inherited socket 127.0.0.1:{unused} \(a\) fd 3 matches no --socket: closing it", text), text
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", unused), timeout=1).close()
        except ConnectionRefusedError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the passed socket no --socket names still accepts")


def test_unit_files_verify_and_their_flags_parse(rwsgi_bin, tmp_path):
    """deploy/systemd/: systemd-analyze accepts the units (with ExecStart pointing at the binary
    under test), and rwsgi accepts every flag the service passes."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian's systemd package)"
    deploy = REPO / "deploy" / "systemd"
    service = (deploy / "rwsgi.service").read_text().replace("/usr/local/bin/rwsgi", str(rwsgi_bin))
    (tmp_path / "rwsgi.service").write_text(service)
    shutil.copy(deploy / "rwsgi.socket", tmp_path / "rwsgi.socket")
    out = subprocess.run([analyze, "verify", tmp_path / "rwsgi.service", tmp_path / "rwsgi.socket"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr + out.stdout
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", service.replace("\\\n", " "), re.M).group(1).split()
    assert "Type=notify" in service and "ExecReload=/bin/kill -HUP $MAINPID" in service
    flags = [a for a in exec_start[1:]]
    # Every flag is known: rwsgi warns about unknown ones ("ignoring unknown option").
    out = subprocess.run([str(rwsgi_bin), *flags, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    for flag in (f for f in flags if f.startswith("--")):
        assert flag in out.stdout, f"{flag} is not in --help"


def test_socket_activation_matches_http_socket_too(socket_activate, rwsgi_bin, tmp_path, procs):
    """--http-socket is matched by address like --socket: the passed socket speaks HTTP."""
    uwsgi_port, http_port = free_port(), free_port()
    log = tmp_path / "rwsgi.log"
    cmd = activated(socket_activate, rwsgi_bin, [f"127.0.0.1:{http_port}", f"127.0.0.1:{uwsgi_port}"], ["web", "up"],
                    ["--socket", f"127.0.0.1:{uwsgi_port}", "--http-socket", f"127.0.0.1:{http_port}",
                     "--wsgi-file", HELLO])
    proc = start(cmd, log)
    procs.append((proc, log))
    end = time.monotonic() + 20
    body = None
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", http_port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            if data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n")[0]:
                body = data.partition(b"\r\n\r\n")[2]
                break
        except OSError:
            pass
        time.sleep(0.1)
    assert body == b"Hello World\n", (body, tail(log))
    serves(("127.0.0.1", uwsgi_port))
    text = log.read_text()
    assert re.search(rf"inherited 127.0.0.1:{http_port} \(web\) fd 3", text), text
    assert re.search(rf"inherited 127.0.0.1:{uwsgi_port} \(up\) fd 4", text), text
    assert "bound to" not in text
