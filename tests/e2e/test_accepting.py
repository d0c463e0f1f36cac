"""How connections reach the Python threads: a free thread accepts and reads its own next
request; a packet that arrives in pieces is finished by the event loop and queued back; a busy
worker leaves new connections to a free one."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import uwsgi_wire as wire
from harness import example, started_query, wait_until

BEHAVIOUR = example("behaviour.py")
HELLO = example("hello.py")


def test_packet_sent_in_pieces_is_served(server, transport):
    """Each piece arrives well after the thread's short wait for the packet has run out, so the
    event loop must finish reading it and hand the request back to a thread."""
    srv = server("--wsgi-file", HELLO, "--threads", "1", transport=transport)
    data = wire.packet(wire.request_vars("GET", "/"))
    pieces = [data[:3], data[3:40], data[40:]]
    with wire.connect(srv.address) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.1)
        raw = wire.read_to_eof(sock)
    status, _, body = wire.split_response(raw)
    assert status.endswith("200 OK"), raw[:200]
    assert body == b"Hello World\n"
    srv.assert_serves()


def test_many_pieced_packets_at_once_are_all_served(server, transport):
    """More pieced requests than threads: the loop queues the complete ones and every one is
    answered."""
    srv = server("--wsgi-file", HELLO, "--threads", "2", transport=transport)
    data = wire.packet(wire.request_vars("GET", "/"))
    socks = [wire.connect(srv.address) for _ in range(20)]
    try:
        for sock in socks:
            sock.sendall(data[:10])
        time.sleep(0.1)
        for sock in socks:
            sock.sendall(data[10:])
        replies = [wire.read_to_eof(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for raw in replies:
        status, _, body = wire.split_response(raw)
        assert status.endswith("200 OK") and body == b"Hello World\n", raw[:200]


def test_busy_worker_leaves_new_connections_to_the_free_one(server):
    """2 processes x 1 thread: two slow requests at once run in different workers, side by side,
    instead of the second waiting behind the first in a busy worker."""
    srv = server("--wsgi-file", BEHAVIOUR, "--master", "--processes", "2", "--threads", "1")
    # Both workers are up once each has answered (a worker only accepts when free).
    deadline = time.monotonic() + 10
    seen = set()
    while len(seen) < 2 and time.monotonic() < deadline:
        with ThreadPoolExecutor(2) as pool:
            bodies = list(pool.map(lambda _: wire.get(srv.address, "/pid", "s=0.2"), range(2)))
        seen.update(wire.split_response(b)[2] for b in bodies)
    assert len(seen) == 2, f"only {seen} answered"

    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        bodies = list(pool.map(lambda _: wire.get(srv.address, "/pid", "s=1.5"), range(2)))
    elapsed = time.monotonic() - t0
    pids = {wire.split_response(b)[2] for b in bodies}
    assert len(pids) == 2, f"both slow requests ran in worker {pids}"
    # Side by side: well under the 3 s that running one after the other would take.
    assert elapsed < 2.8, f"two 1.5 s requests took {elapsed:.2f} s"


def test_blocking_requests_overlap_on_threads(server):
    """8 threads, 8 requests that each sleep 0.5 s: they run side by side, not one after another."""
    srv = server("--wsgi-file", BEHAVIOUR, "--threads", "8")
    srv.assert_serves("/hello")
    for _ in range(2):
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: wire.get(srv.address, "/sleep", "s=0.5"), range(8)))
        elapsed = time.monotonic() - t0
        assert all(wire.split_response(r)[0].endswith("200 OK") for r in replies)
        # Serially this is 4 s; side by side 0.5 s plus the time to take each connection over.
        assert elapsed < 2.0, f"8 sleeping requests on 8 threads took {elapsed:.2f} s"


def test_a_long_cpu_request_does_not_hold_up_a_short_one(server, tmp_path):
    """2 threads: while one spins in Python for 3 s, a short request is answered long before the
    spin ends (the other thread takes the connection and the GIL is shared)."""
    srv = server("--wsgi-file", BEHAVIOUR, "--threads", "2")
    srv.assert_serves("/hello")
    with ThreadPoolExecutor(1) as pool:
        marker = tmp_path / "spinning"
        spinning = pool.submit(wire.get, srv.address, "/spin", f"s=3&{started_query(marker)}", 15.0)
        assert wait_until(marker.exists), "the spin did not start"
        t0 = time.monotonic()
        short = wire.get(srv.address, "/hello")
        elapsed = time.monotonic() - t0
        assert wire.split_response(short)[2] == b"Hello World\n"
        assert not spinning.done(), "the spin ended before the short request was answered"
        assert elapsed < 2.0, f"the short request waited {elapsed:.2f} s behind the spin"
        assert wire.split_response(spinning.result())[0].endswith("200 OK")


def voluntary_switches(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
    return total


def test_an_idle_worker_with_threads_makes_no_wakeups(server):
    """After some traffic, an idle worker's threads all sleep: nobody polls."""
    srv = server("--wsgi-file", HELLO, "--threads", "8")
    for _ in range(50):
        srv.assert_serves()
    time.sleep(1.0)
    before = voluntary_switches(srv.pid)
    time.sleep(1.0)
    woke = voluntary_switches(srv.pid) - before
    assert woke < 20, f"an idle worker's threads woke {woke} times in 1 s"
