"""--stats-http wraps the stats JSON in an HTTP response; --memory-report puts memory in the
request log line and in the stats."""

import json
import re
import socket
import time

from harness import example, free_port


def fetch(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_stats_http_and_memory_report(server):
    port = free_port()
    s = server(
        "--wsgi-file", example("hello.py"), "--master", "--stats", f"127.0.0.1:{port}",
        "--stats-http", "--memory-report",
    )
    status, _, _ = s.get("/")
    assert status.startswith("HTTP/1.1 200")
    line = s.wait_for_log(r"^\{address space usage: \d+ bytes/\d+MB\} \{rss usage: \d+ bytes/\d+MB\} \[pid: ")
    assert line
    # The master samples worker memory on its tick: poll, bounded.
    end = time.monotonic() + 5
    while True:
        raw = fetch(port)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK") or head.startswith(b"HTTP/1.1 200 OK"), head
        assert re.search(rb"(?im)^content-type: application/json", head), head
        stats = json.loads(body)
        worker = stats["workers"][0]
        if worker["rss"] > 0 or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert worker["rss"] > 1 << 20 and worker["vsz"] >= worker["rss"], worker
