"""Process names: `rwsgi master`, `rwsgi worker N` (and `rwsgi log`) in ps, as uWSGI users expect
`uWSGI master` / `uWSGI worker N` with --auto-procname; prefixes and suffixes around them."""

import time
from pathlib import Path

from harness import example

HELLO = example("hello.py")


def cmdline(pid):
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return raw.split(b"\0")[0].decode()


def comm(pid):
    return Path(f"/proc/{pid}/comm").read_text().strip()


def children(pid):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def names_of_children(pid, expected, timeout=10.0):
    """The children's names once they are `expected` (a forked worker names itself a moment after
    the fork), or as they are at the deadline."""
    end = time.monotonic() + timeout
    while True:
        names = sorted(cmdline(c) for c in children(pid))
        if names == expected or time.monotonic() > end:
            return names
        time.sleep(0.1)


def test_auto_procname_names_master_workers_and_log_process(server):
    srv = server("--wsgi-file", HELLO, "--processes", "2", "--auto-procname", "--log-master")
    srv.assert_serves()
    assert cmdline(srv.pid) == "rwsgi master"
    assert comm(srv.pid) == "rwsgi master"
    expected = ["rwsgi log", "rwsgi worker 1", "rwsgi worker 2"]
    assert names_of_children(srv.pid, expected) == expected


def test_prefix_append_and_master_name(server):
    srv = server(
        "--wsgi-file", HELLO, "--processes", "1", "--master",
        "--procname-prefix-spaced", "shop", "--procname-append", " [prod]", "--procname-master", "boss",
    )
    srv.assert_serves()
    assert cmdline(srv.pid) == "shop boss [prod]"
    assert comm(srv.pid) == "shop boss [prod"[:15]
    expected = ["shop rwsgi worker 1 [prod]"]
    assert names_of_children(srv.pid, expected) == expected


def test_names_stay_without_the_options(server):
    srv = server("--wsgi-file", HELLO, "--processes", "2")
    srv.assert_serves()
    binary = cmdline(srv.pid)
    assert binary.endswith("rwsgi"), binary
    assert names_of_children(srv.pid, [binary, binary]) == [binary, binary]
