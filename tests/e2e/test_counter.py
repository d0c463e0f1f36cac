"""The seed story: a Flask app doubling a global under a lock, served by 8 threads.

50 concurrent requests must leave COUNT == 2**50, and each request must have seen
a different power of two: the threads share one interpreter and one module, and
the lock in the app is what keeps the three-step update whole.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from harness import example

REQUESTS = 50


def test_fifty_concurrent_doublings_give_two_to_the_fifty(stack):
    s = stack("--wsgi-file", example("counter.py"), "--threads", "8")
    assert s.get("/count").body == b"1", s.diagnostics()

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        responses = list(pool.map(lambda i: s.get("/test_uwsgi", timeout=60), range(REQUESTS)))

    assert [r.status for r in responses] == [200] * REQUESTS, s.diagnostics()
    seen = sorted(int(r.body) for r in responses)
    assert seen == [2**k for k in range(1, REQUESTS + 1)]
    assert s.get("/count").body == str(2**REQUESTS).encode()


def test_root_route_doubles_too_and_count_does_not(stack):
    s = stack("--wsgi-file", example("counter.py"), "--threads", "8")
    assert s.get("/").body == b"2"
    assert s.get("/count").body == b"2"
    assert s.get("/count").body == b"2"
    assert s.get("/test_uwsgi").body == b"4"


def test_counter_runs_on_eight_python_threads(stack):
    """The threads really are concurrent: 8 requests that each sleep 1 s finish in well under 8 s."""
    s = stack("--wsgi-file", example("behaviour.py"), "--threads", "8")
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda i: s.get("/sleep?s=1", timeout=60), range(8)))
    elapsed = time.monotonic() - t0
    assert [r.status for r in responses] == [200] * 8, s.diagnostics()
    assert elapsed < 4.0, f"8 one-second requests on 8 threads took {elapsed:.1f} s"
