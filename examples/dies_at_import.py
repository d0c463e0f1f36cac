"""An app whose import kills the process that imports it (exit code 3, no traceback).

With --lazy-apps only the workers import it, so every worker dies right after its spawn: the
master must respawn it with a growing back-off rather than in a tight loop
(tests/e2e/test_process_model.py).
"""

import os

os._exit(3)


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b"unreachable\n"]
