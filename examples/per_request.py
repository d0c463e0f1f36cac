"""The counterpart of counter.py: an app that keeps its state per request. It reads module-level
constants and config, but every value it changes lives in the request (a local, the environ), so
no thread or worker can see another's. `--py-warn-shared-globals` stays silent for it.
"""

import json

GREETING = "hello"
LIMITS = {"max_items": 3}


def application(environ, start_response):
    items = [i for i in range(LIMITS["max_items"])]
    state = {"greeting": GREETING, "items": items, "path": environ["PATH_INFO"]}
    environ["app.state"] = state
    body = json.dumps(state).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
