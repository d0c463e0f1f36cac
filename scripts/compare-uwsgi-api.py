#!/usr/bin/env python3
"""Run examples/uwsgi_api.py (Flask: import uwsgi, uwsgidecorators.postfork, @timer, @cron, @lock)
under rwsgi and under the real uWSGI, make the same checks against both, and print them side by side.

    python3 scripts/compare-uwsgi-api.py --rwsgi target/release/rwsgi --uwsgi /tmp/uwsgi-venv/bin/uwsgi \
        --venv /tmp/uwsgi-venv

uWSGI comes from `python3 -m venv /tmp/uwsgi-venv && /tmp/uwsgi-venv/bin/pip install uwsgi flask` (it
compiles; slow). Both servers listen on a unix socket under a temporary directory; both are stopped
by their pid.
"""

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def packet(path, query=""):
    pairs = [
        (b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", path.encode()), (b"QUERY_STRING", query.encode()),
        (b"REQUEST_URI", (path + ("?" + query if query else "")).encode()),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"SERVER_NAME", b"localhost"), (b"SERVER_PORT", b"80"),
        (b"REMOTE_ADDR", b"127.0.0.1"), (b"HTTP_HOST", b"localhost"),
    ]
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)
    return struct.pack("<BHB", 0, len(block), 0) + block


def get(sock_path, path, query="", timeout=10):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(packet(path, query))
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            out += data
    head, _, body = out.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


def wait_ready(sock_path, proc, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            status, _ = get(sock_path, "/info")
            if "200" in status:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server not ready")


def lines(path):
    try:
        return [l.split() for l in Path(path).read_text().splitlines() if l.strip()]
    except FileNotFoundError:
        return []


def run(name, argv, venv):
    state = tempfile.mkdtemp(prefix=f"cmp-{name}-")
    sock_path = os.path.join(state, "app.sock")
    log_path = os.path.join(state, "server.log")
    cmd = [*argv, "--master", "--processes", "2", "--threads", "4", "--socket", sock_path,
           "--wsgi-file", str(EXAMPLES / "uwsgi_api.py"), "--pythonpath", str(EXAMPLES),
           "--log-format", "LV %(method) %(uri) who=%(who)"]
    if venv:
        cmd += ["--virtualenv", venv]
    env = dict(os.environ, API_STATE_DIR=state, API_TIMER_SLEEP="0.5")
    log = open(log_path, "wb")
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    results = {}
    try:
        wait_ready(sock_path, proc)
        seen = {}
        with ThreadPoolExecutor(16) as pool:
            for _ in range(20):
                for _, body in pool.map(lambda _: get(sock_path, "/info", "sleep=0.2"), range(16)):
                    d = json.loads(body)
                    seen[d["worker_id"]] = d
                if len(seen) == 2:
                    break
        results["workers answering"] = sorted(seen)
        results["postfork ran once per worker"] = all(d["postforks"] == [w] for w, d in seen.items())
        results["tracer thread alive in each worker"] = all(d["tracer"]["alive"] for d in seen.values())
        results["tracer started in master then worker"] = all(
            d["tracer"]["started_in"] == [proc.pid, d["pid"]] for d in seen.values())
        one = next(iter(seen.values()))
        results["masterpid() is the master"] = one["masterpid"] == proc.pid
        results["numproc"] = one["numproc"]
        results["opt['master']"] = one["opt"].get("master")
        results["opt['threads']"] = one["opt"].get("threads")
        results["version is bytes 2.0.x"] = one["version"].startswith("2.0.")
        # Requests answered while timer handlers (0.5 s each) run.
        slowest, t_end = 0.0, time.monotonic() + 4
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            get(sock_path, "/info")
            slowest = max(slowest, time.monotonic() - t0)
        results["slowest request during timers (s)"] = round(slowest, 3)
        timer = lines(os.path.join(state, "timer"))
        stamps = [float(t[3]) for t in timer]
        results["@timer(1) raises in ~6 s"] = len(timer)
        results["@timer handler ran in worker(s)"] = sorted({int(t[1]) for t in timer})
        results["@timer never ran in the master"] = str(proc.pid) not in {t[2] for t in timer}
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        results["@timer mean gap (s)"] = round(sum(gaps) / len(gaps), 2) if gaps else None
        cron = lines(os.path.join(state, "cron"))
        results["@cron(-1..) fired at start"] = bool(cron) and float(cron[0][2]) - started < 5
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: get(sock_path, "/incr"), range(120)))
        results["@lock: 120 increments over 2x4 threads"] = int(get(sock_path, "/counter")[1])
        get(sock_path, "/logvar", "v=ann")
        get(sock_path, "/info")
        time.sleep(0.3)
        text = Path(log_path).read_text(errors="replace")
        results["set_logvar in --log-format"] = "LV GET /logvar?v=ann who=ann" in text
        results["logvar not leaking to next request"] = "LV GET /info who=-" in text
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rwsgi", default=str(REPO / "target" / "release" / "rwsgi"))
    ap.add_argument("--uwsgi", default="/tmp/uwsgi-venv/bin/uwsgi")
    ap.add_argument("--venv", default="/tmp/uwsgi-venv", help="a venv with Flask, for both servers")
    args = ap.parse_args()
    both = {
        "rwsgi": run("rwsgi", [args.rwsgi], args.venv),
        "uWSGI": run("uwsgi", [args.uwsgi], args.venv),
    }
    width = max(len(k) for k in both["rwsgi"])
    print(f"{'check':<{width}}  {'rwsgi':<14} uWSGI")
    for key in both["rwsgi"]:
        print(f"{key:<{width}}  {str(both['rwsgi'][key]):<14} {both['uWSGI'].get(key)}")


if __name__ == "__main__":
    sys.exit(main())
