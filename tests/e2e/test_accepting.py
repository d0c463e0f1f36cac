"""How connections reach the Python threads: a free thread accepts and reads its own next
request; a packet that arrives in pieces is finished by the event loop and queued back; a busy
worker leaves new connections to a free one."""

import time
from concurrent.futures import ThreadPoolExecutor

import uwsgi_wire as wire
from harness import example

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
