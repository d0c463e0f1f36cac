"""--master --processes N: requests spread over N worker processes, and SIGTERM
stops the master and every worker."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from harness import example, gone




def test_two_workers_serve_and_sigterm_stops_them_all(stack):
    s = stack("--wsgi-file", example("behaviour.py"), "--master", "--processes", "2", "--threads", "1")
    # Four 0.5 s requests at once on 2 x 1 threads: both workers must take some.
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda i: s.get("/pid?s=0.5", timeout=30), range(4)))
    assert [r.status for r in responses] == [200] * 4, s.diagnostics()
    pids = {int(r.body) for r in responses}
    assert len(pids) == 2, f"expected two worker pids, got {pids}"
    assert s.server.pid not in pids, "requests must run in the workers, not in the master"

    s.server.proc.terminate()
    code = s.server.proc.wait(15)
    assert code is not None
    end = time.monotonic() + 10
    while not all(gone(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)
    alive = [pid for pid in pids if not gone(pid)]
    for pid in alive:  # do not leave them behind: they are ours, by the pids they reported
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their master after SIGTERM"
