"""--uid/--gid/--chown-socket: the sockets are bound as root, then every process (master and
workers) runs the app as the given user. Switching identity needs root: without it the test is
skipped with that reason (CI and scripts/test.sh run as root)."""

import os
import pwd
import grp

import pytest

import uwsgi_wire as wire
from harness import example

WHOAMI = example("whoami.py")


def ids_of(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = value.split()
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="switches identity: needs root (CI runs as root)")
def test_uid_gid_drop_before_the_app_runs_in_every_process(server):
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    srv = server(
        "--wsgi-file", WHOAMI, "--master", "--processes", "2",
        "--uid", "nobody", "--gid", "nogroup", "--chown-socket", "nobody:nogroup",
        transport="unix",
    )
    st = os.stat(srv.address)
    assert (st.st_uid, st.st_gid) == (nobody, nogroup), "--chown-socket did not take"

    status, _, body = wire.split_response(wire.get(srv.address, "/"))
    assert status.endswith("200 OK"), body
    report = dict(line.split(" ", 1) for line in body.decode().splitlines())
    assert report["uid"] == f"{nobody} {nobody}"
    assert report["gid"] == f"{nogroup} {nogroup}"
    assert report["groups"] == str(nogroup), "root's supplementary groups must be gone"

    master = ids_of(srv.pid)
    assert master["Uid"] == [str(nobody)] * 4, master
    assert master["Gid"] == [str(nogroup)] * 4, master
    worker = ids_of(int(report["pid"]))
    assert worker["Uid"] == [str(nobody)] * 4 and worker["Gid"] == [str(nogroup)] * 4, worker
    log = srv.log()
    assert "setgid() to %d" % nogroup in log and "setuid() to %d" % nobody in log, log


def test_umask_applies_to_the_socket_and_the_app(server):
    srv = server("--wsgi-file", WHOAMI, "--umask", "027", transport="unix")
    mode = os.stat(srv.address).st_mode & 0o777
    assert mode == 0o750, oct(mode)
    assert wire.split_response(wire.get(srv.address, "/"))[0].endswith("200 OK")
