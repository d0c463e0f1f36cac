"""Prometheus metrics (--metrics, and /metrics on the --stats-http port), the /health and /ready
probes, and the listen queue depth from the kernel (TCP and unix), end to end through nginx.

Scrapes are parsed with prometheus_client's text parser, the one Prometheus' Python tooling uses.
"""

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

import uwsgi_wire as wire
from harness import example, free_port, read_stats, started_query, wait_until
from test_process_model import Load, failures

BEHAVIOUR = example("behaviour.py")


def http_get(port, path, timeout=5.0):
    """(status, headers text, body) of GET path on the monitoring port."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(), body.decode()


def scrape(port, path="/metrics"):
    status, head, body = http_get(port, path)
    assert status == 200, (status, body)
    assert "text/plain; version=0.0.4" in head
    families = {f.name: f for f in text_string_to_metric_families(body)}
    return families


def samples(families, family, sample_name=None):
    return [s for s in families[family].samples if sample_name is None or s.name == sample_name]


def total(families, family, sample_name=None, **labels):
    return sum(
        s.value for s in samples(families, family, sample_name) if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_under_load_parse_and_add_up(stack):
    metrics_port, stats_port = free_port(), free_port()
    s = stack(
        "--wsgi-file", BEHAVIOUR, "--processes", "2", "--threads", "2",
        "--metrics", f"127.0.0.1:{metrics_port}", "--stats", f"127.0.0.1:{stats_port}", "--stats-http",
    )
    scrapes = []
    with Load(s.nginx.port, "/pid", threads=3, max_s=3) as load:
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            scrapes.append(scrape(metrics_port))
            time.sleep(0.1)
        results = load.finish()
    assert not failures(results), failures(results)[:3]
    assert len(scrapes) >= 5
    # Counters only grow between scrapes taken under load.
    seen = [total(f, "rwsgi_requests") for f in scrapes]
    assert seen == sorted(seen) and seen[-1] > seen[0], seen

    assert s.get("/nope").status == 404
    assert s.get("/raise").status == 500
    served = len(results) + 2

    def settled():
        # A request is counted just after its response went out: wait for the last one.
        got = scrape(metrics_port)
        return got if total(got, "rwsgi_requests") >= served else None

    f = wait_until(settled, timeout=5) or scrape(metrics_port)
    assert total(f, "rwsgi_requests") == served, (total(f, "rwsgi_requests"), served)
    assert total(f, "rwsgi_requests", status="2xx") == len(results)
    assert total(f, "rwsgi_requests", status="4xx") == 1 and total(f, "rwsgi_requests", status="5xx") == 1
    workers = {smp.labels["worker"] for smp in samples(f, "rwsgi_requests")}
    assert workers == {"1", "2"}, workers
    assert total(f, "rwsgi_request_duration_seconds", "rwsgi_request_duration_seconds_count") == served
    inf = total(f, "rwsgi_request_duration_seconds", "rwsgi_request_duration_seconds_bucket", le="+Inf")
    assert inf == served
    assert total(f, "rwsgi_request_duration_seconds", "rwsgi_request_duration_seconds_sum") > 0
    assert total(f, "rwsgi_requests_in_flight") == 0
    assert total(f, "rwsgi_threads", state="idle") == 4 and total(f, "rwsgi_threads", state="busy") == 0
    assert total(f, "rwsgi_response_bytes") > 0
    assert total(f, "rwsgi_harakiri") == 0 and total(f, "rwsgi_worker_respawns") == 0
    rss = samples(f, "rwsgi_worker_rss_bytes")
    assert len(rss) == 2 and all(smp.value > 1_000_000 for smp in rss), rss
    assert total(f, "rwsgi_worker_accepting") == 2 and total(f, "rwsgi_ready") == 1
    assert [smp.labels["socket"] for smp in samples(f, "rwsgi_listen_queue")] == [s.server.socket_arg]

    # The same on the stats port, next to the JSON uwsgitop reads at /.
    g = scrape(stats_port)
    assert total(g, "rwsgi_requests") == served
    status, _, body = http_get(stats_port, "/")
    assert status == 200 and json.loads(body)["workers"][0]["id"] == 1
    assert http_get(metrics_port, "/nope")[0] == 404


def test_in_flight_and_busy_threads_while_requests_run(stack, tmp_path):
    port = free_port()
    s = stack("--wsgi-file", BEHAVIOUR, "--threads", "2", "--metrics", f"127.0.0.1:{port}")
    with ThreadPoolExecutor(max_workers=1) as pool:
        marker = tmp_path / "sleeping"
        pending = pool.submit(s.get, f"/sleep?s=1.5&{started_query(marker)}", timeout=30)
        assert wait_until(marker.exists), s.diagnostics()
        f = scrape(port)
        assert pending.result(30).status == 200
    assert total(f, "rwsgi_requests_in_flight") == 1
    assert total(f, "rwsgi_threads", state="busy") == 1 and total(f, "rwsgi_threads", state="idle") == 1


def test_health_and_ready_probes_through_a_graceful_stop(stack, tmp_path):
    port = free_port()
    s = stack("--wsgi-file", BEHAVIOUR, "--threads", "2", "--metrics", f"127.0.0.1:{port}")
    assert http_get(port, "/health")[0] == 200
    assert http_get(port, "/ready")[0] == 200
    with ThreadPoolExecutor(max_workers=1) as pool:
        marker = tmp_path / "sleeping"
        pending = pool.submit(s.get, f"/sleep?s=2&{started_query(marker)}", timeout=30)
        assert wait_until(marker.exists), s.diagnostics()
        os.kill(s.server.pid, signal.SIGTERM)
        # Draining: still alive, no longer ready (within moments), while the request finishes.
        wait_until(lambda: http_get(port, "/ready")[0] == 503, timeout=1.0)
        ready, _, body = http_get(port, "/ready")
        alive = http_get(port, "/health")[0]
        assert pending.result(30).status == 200
    assert ready == 503 and "not ready" in body, (ready, body)
    assert alive == 200


def test_ready_is_false_while_no_worker_accepts(server, tmp_path):
    """A --lazy-apps worker that takes 2 s to import: the master answers /ready with 503 until it
    accepts, and /health with 200 all along."""
    port = free_port()
    app = tmp_path / "slow_import.py"
    app.write_text("import time\ntime.sleep(2)\n" + open(example("hello.py")).read())
    srv_port = free_port()
    import subprocess
    from harness import REPO, rwsgi_path, stop_process, virtualenv_path
    cmd = [str(rwsgi_path()), "--socket", f"127.0.0.1:{srv_port}", "--wsgi-file", str(app), "--lazy-apps",
           "--metrics", f"127.0.0.1:{port}"]
    if virtualenv_path():
        cmd += ["--virtualenv", virtualenv_path()]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.monotonic() + 10
        answers = []
        while time.monotonic() < end:
            try:
                answers.append((http_get(port, "/ready")[0], http_get(port, "/health")[0]))
            except OSError:
                time.sleep(0.05)
                continue
            if answers[-1][0] == 200:
                break
            time.sleep(0.1)
        assert answers and answers[0] == (503, 200), answers
        assert answers[-1] == (200, 200), answers
    finally:
        stop_process(proc)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_listen_queue_depth_from_the_kernel(server, transport):
    """One busy thread: connections that arrive meanwhile wait in the accept queue, and both the
    stats JSON (uWSGI's listen_queue) and the metrics report how many."""
    metrics_port, stats_port = free_port(), free_port()
    srv = server("--wsgi-file", BEHAVIOUR, "--threads", "1", "--metrics", f"127.0.0.1:{metrics_port}",
                 "--stats", f"127.0.0.1:{stats_port}", transport=transport)
    with ThreadPoolExecutor(max_workers=4) as pool:
        busy = pool.submit(srv.get, "/sleep", "s=2.5", 30)
        time.sleep(0.4)
        waiting = [pool.submit(srv.get, "/pid", "", 30) for _ in range(3)]
        time.sleep(0.4)
        stats = read_stats(stats_port)
        f = scrape(metrics_port)
        assert busy.result(30)[0].startswith("HTTP/1.1 200")
        assert all(w.result(30)[0].startswith("HTTP/1.1 200") for w in waiting)
    assert stats["listen_queue"] == 3, stats["listen_queue"]
    assert stats["sockets"][0]["queue"] == 3
    assert total(f, "rwsgi_listen_queue") == 3
    assert read_stats(stats_port)["listen_queue"] == 0
