"""A library shaped like a tracer's client (ddtrace, Sentry, OpenTelemetry exporters): at import it
starts a background thread that flushes every 0.1 s, and, when it finds itself under uWSGI (or
rwsgi), it registers a post-fork hook that starts the thread again in each worker, because a
thread started in the master does not run in a forked worker (even if `is_alive()` says so).

`status()` says whether this process's flusher is really running: its last beat is recent and it
beat in this very process.
"""

import os
import threading
import time

_state = {"thread": None, "pid": None, "beat": 0.0, "beat_pid": None, "starts": []}


def _flush_loop():
    while True:
        _state["beat"] = time.monotonic()
        _state["beat_pid"] = os.getpid()
        time.sleep(0.1)


def start():
    t = threading.Thread(target=_flush_loop, name="fake-tracer-flush", daemon=True)
    t.start()
    _state["thread"] = t
    _state["pid"] = os.getpid()
    _state["starts"].append(os.getpid())


def status():
    fresh = time.monotonic() - _state["beat"] < 1.0
    return {
        "alive": bool(fresh and _state["beat_pid"] == os.getpid()),
        "is_alive_says": _state["thread"].is_alive(),
        "started_in": _state["starts"],
    }


start()

try:
    import uwsgidecorators
except ImportError:  # not under uWSGI/rwsgi, or without a master
    uwsgidecorators = None

if uwsgidecorators is not None:
    uwsgidecorators.postfork(start)
