"""--py-warn-shared-globals: the seed's pitfall caught at run time. It needs CPython 3.12's dict
watchers: against a binary built with 3.11 (the default here) the flag must say so; against a 3.12+
build (scripts/check-shared-globals.sh builds one and runs this file) it must name the global, the
module and the line of request code for examples/counter.py and for a module-level dict mutated by
requests, once per global, and stay silent for examples/per_request.py.
"""

import re
from concurrent.futures import ThreadPoolExecutor

from harness import example


def python_version(srv):
    found = srv.wait_for_log(r"Python version: (\d+)\.(\d+)")
    assert found, srv.log()
    return int(found.group(1)), int(found.group(2))


def hammer(srv, path, n=20):
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: srv.get(path)[0], range(n)))
    assert all(r.startswith("HTTP/1.1 200") for r in replies), replies


def test_counter_app_is_reported_once_per_global(server):
    srv = server("--wsgi-file", example("counter.py"), "--threads", "8", "--py-warn-shared-globals")
    hammer(srv, "/test_uwsgi")
    if python_version(srv) < (3, 12):
        assert srv.wait_for_log(r"--py-warn-shared-globals needs CPython 3\.12 or later .* this is Python 3\.11")
        assert "shared global:" not in srv.log()
        return
    found = srv.wait_for_log(
        r"shared global: request code rebinds module global (\S*counter\S*)\.COUNT at "
        r"(\S+counter\.py):(\d+) \(in index\); module globals are shared by the 8 thread\(s\)"
    )
    assert found, srv.log()
    line = int(found.group(3))
    source = open(example("counter.py")).read().splitlines()
    assert "COUNT" in source[line - 1], (line, source[line - 1])
    assert len(re.findall(r"shared global: .*COUNT", srv.log())) == 1, "reported more than once"


def test_mutated_module_dict_is_reported_and_per_request_state_is_not(server, tmp_path):
    app = tmp_path / "cache_app.py"
    app.write_text(
        "CACHE = {}\n"
        "def application(environ, start_response):\n"
        "    CACHE[environ['PATH_INFO']] = len(CACHE)\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n"
    )
    shared = server("--wsgi-file", str(app), "--threads", "4", "--py-warn-shared-globals")
    quiet = server("--wsgi-file", example("per_request.py"), "--threads", "4", "--py-warn-shared-globals")
    hammer(shared, "/a")
    hammer(quiet, "/a")
    if python_version(shared) < (3, 12):
        assert "shared global:" not in shared.log() + quiet.log()
        return
    assert shared.wait_for_log(
        r"shared global: request code mutates the module-level dict \S*cache_app\S*\.CACHE at "
        r"\S+cache_app\.py:3 \(in application\)"
    ), shared.log()
    assert quiet.wait_for_log(r"watching \d+ module dict")
    assert "shared global:" not in quiet.log(), quiet.log()
