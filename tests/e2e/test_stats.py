"""The --stats server speaks the JSON uwsgitop reads (reference §3.4)."""

import time

from harness import example, free_port, read_stats

TOP_KEYS = {"version", "listen_queue", "cwd", "uid", "gid", "pid", "workers"}
WORKER_KEYS = {
    "id", "pid", "requests", "exceptions", "signals", "status", "avg_rt", "rss", "vsz", "tx",
    "respawn_count", "harakiri_count", "running_time", "last_spawn", "cores",
}
CORE_KEYS = {"id", "requests", "in_request"}




def test_stats_json_has_what_uwsgitop_reads(stack):
    port = free_port()
    s = stack("--wsgi-file", example("behaviour.py"), "--master", "--threads", "2", "--stats", f"127.0.0.1:{port}")
    for _ in range(3):
        assert s.get("/hello").status == 200
    assert s.get("/raise").status in (500, 502)
    # Counters are updated after the response is out: poll (bounded) until the last request shows.
    end = time.monotonic() + 5
    while True:
        stats = read_stats(port)
        workers = stats.get("workers") or [{}]
        settled = workers[0].get("requests", 0) >= 4 and workers[0].get("status") == "idle"
        if settled or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert TOP_KEYS <= stats.keys(), TOP_KEYS - stats.keys()
    assert stats["pid"] == s.server.pid
    assert len(stats["workers"]) == 1
    worker = stats["workers"][0]
    assert WORKER_KEYS <= worker.keys(), WORKER_KEYS - worker.keys()
    assert worker["status"] == "idle"
    assert worker["requests"] >= 4
    assert worker["exceptions"] >= 1
    assert len(worker["cores"]) == 2
    for core in worker["cores"]:
        assert CORE_KEYS <= core.keys(), CORE_KEYS - core.keys()
    assert sum(core["requests"] for core in worker["cores"]) >= 4
