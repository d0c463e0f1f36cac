"""Reports the identity the app runs under: uid, gid, supplementary groups and pid, one per line.

Used by the --uid/--gid tests; it imports only modules that are built into CPython, so it loads
even when the user it runs as cannot read the Python installation's directory."""

import os


def application(environ, start_response):
    lines = [
        "uid %d %d" % (os.getuid(), os.geteuid()),
        "gid %d %d" % (os.getgid(), os.getegid()),
        "groups %s" % ",".join(str(g) for g in sorted(os.getgroups())),
        "pid %d" % os.getpid(),
    ]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("\n".join(lines) + "\n").encode()]
