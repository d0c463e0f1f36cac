"""rwsgi: a uWSGI-protocol application server for Python WSGI apps, written in Rust.

Installed with pip, rwsgi runs inside this interpreter (the one of the environment it was installed
into): `rwsgi ...` on the command line, or `python -m rwsgi ...`. The server itself is the native
module `rwsgi._rwsgi`; `rwsgi --help` lists the flags (uWSGI's spellings).
"""

import sys
import sysconfig

__all__ = ["cli"]


def cli(argv=None):
    """The `rwsgi` command: serve with `argv` (default `sys.argv`) and exit with the server's code."""
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        sys.exit(
            "rwsgi: free-threaded CPython (%s, built with Py_GIL_DISABLED) is not supported yet: "
            "install rwsgi into a CPython built with the GIL" % sys.executable
        )
    from rwsgi._rwsgi import run

    sys.exit(run(list(sys.argv if argv is None else argv)))
