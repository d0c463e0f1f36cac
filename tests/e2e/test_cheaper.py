"""Adaptive workers (--cheaper): under a load ramp through nginx the master adds workers up to
--workers and retires them when the load goes, and no request fails while workers come and go.
"""

import time

import pytest

from harness import example, free_port, read_stats
from test_process_model import Load, failures

BEHAVIOUR = example("behaviour.py")


def running(stats_port):
    return sum(1 for w in read_stats(stats_port)["workers"] if w["status"] != "cheap")


@pytest.mark.parametrize("algo", ["spare", "busyness"])
def test_workers_follow_a_load_ramp_without_failing_a_request(stack, algo):
    stats_port = free_port()
    extra = ["--cheaper-busyness-multiplier", "1"] if algo == "busyness" else []
    s = stack(
        "--wsgi-file", BEHAVIOUR, "--master", "--workers", "4", "--threads", "1",
        "--cheaper", "1", "--cheaper-algo", algo, "--cheaper-overload", "1", "--cheaper-step", "1",
        "--stats", f"127.0.0.1:{stats_port}", *extra,
    )
    assert running(stats_port) == 1, read_stats(stats_port)["workers"]
    counts = []
    with Load(s.nginx.port, "/pid", threads=1, max_s=30) as light:
        time.sleep(1.0)
        with Load(s.nginx.port, "/pid?s=0.1", threads=5, max_s=8) as heavy:
            end = time.monotonic() + 8
            while time.monotonic() < end and (not counts or counts[-1] < 4):
                counts.append(running(stats_port))
                time.sleep(0.25)
            heavy_results = heavy.finish()
        peak = max(counts)
        end = time.monotonic() + 12
        while time.monotonic() < end and running(stats_port) > 1:
            time.sleep(0.25)
        after = running(stats_port)
        light_results = light.finish()
    results = heavy_results + light_results
    bad = failures(results)
    print(f"cheaper {algo}: {len(results)} requests while workers went 1 -> {peak} -> {after}, {len(bad)} failed")
    assert not bad, f"{len(bad)} failed: {bad[:3]}\n{s.diagnostics()}"
    assert peak >= 3, f"the load added too few workers: {counts}\n{s.diagnostics()}"
    assert after == 1, f"the workers were not retired once the load went: {after}\n{s.diagnostics()}"
    log = s.server.log()
    assert "cheaper: spawning" in log and "cheaped" in log
    assert s.server.alive()


def test_cheaper_must_be_below_workers(server):
    from harness import rwsgi_path
    import subprocess
    out = subprocess.run([str(rwsgi_path()), "--socket", "127.0.0.1:1", "--wsgi-file", BEHAVIOUR,
                          "--workers", "2", "--cheaper", "2"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "--cheaper 2 needs more --workers" in out.stderr, out.stderr
