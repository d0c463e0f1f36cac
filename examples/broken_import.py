"""An app that cannot be imported: importing it raises.

Used by tests/e2e/test_process_model.py: the server must exit non-zero with the traceback
(--need-app is the default), and with --lazy-apps the master must give up, not respawn forever.
"""

raise RuntimeError("examples/broken_import.py fails at import on purpose")


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b"unreachable\n"]
