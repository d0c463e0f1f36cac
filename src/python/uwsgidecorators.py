"""rwsgi's uwsgidecorators: uWSGI's decorator API over rwsgi's built-in ``uwsgi`` module.

Compiled into rwsgi and registered as a module before the app is imported, so ``import
uwsgidecorators`` works under the standalone binary and a pip install alike.

    @postfork          run in every worker after it is forked (or @postfork(2): worker 2 only)
    @lock              hold uwsgi lock 0 (shared by every thread of every worker) during the call
    @timer(secs)       the master raises a signal every secs seconds; one worker runs the function
    @rbtimer(secs)     the same (uWSGI's red-black-tree timer)
    @cron(min, hour, day, month, weekday)   -1 is any, -N is every N
    @filemon(path)     run when path's modification time changes
    @signal(num)       run when uwsgi.signal(num) is raised
    @thread            run the function in a daemon thread
    @harakiri(secs)    kill the worker if one call runs longer than secs

Handlers of timers, crons, file monitors and signals get the signal number and run on the worker's
signal thread, beside the requests. rwsgi has no spooler, mules, farms or RPC: those decorators
raise an error that says so.
"""

import threading

import uwsgi

if uwsgi.masterpid() == 0:
    raise ImportError(
        "uwsgidecorators needs the master process: start rwsgi with --master "
        "(timers, crons and signals are raised by the master)"
    )

postfork_chain = []


def _run_postfork_chain():
    for hook in postfork_chain:
        hook()


uwsgi.post_fork_hook = _run_postfork_chain


def get_free_signal():
    for signum in range(256):
        if not uwsgi.signal_registered(signum):
            return signum
    raise Exception("no free uwsgi signal available")


class postfork:
    """Run after each fork, in each worker; ``@postfork(N)`` runs in worker N only."""

    def __init__(self, f):
        if callable(f):
            self.wid = 0
            self.f = f
        else:
            self.wid = f
            self.f = None
        postfork_chain.append(self)

    def __call__(self, *args, **kwargs):
        if self.f is None:
            self.f = args[0]
            return self
        if self.wid and self.wid != uwsgi.worker_id():
            return None
        return self.f()


class signal:
    def __init__(self, num, **kwargs):
        self.num = num
        self.target = kwargs.get("target", "")

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        return f


class _scheduled:
    def __init__(self, **kwargs):
        self.num = kwargs.get("signum")
        if self.num is None:
            self.num = get_free_signal()
        self.target = kwargs.get("target", "")

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        self.schedule()
        return f


class timer(_scheduled):
    def __init__(self, secs, **kwargs):
        super().__init__(**kwargs)
        self.secs = secs

    def schedule(self):
        uwsgi.add_timer(self.num, self.secs)


class rbtimer(timer):
    def schedule(self):
        uwsgi.add_rb_timer(self.num, self.secs)


class cron(_scheduled):
    def __init__(self, minute, hour, day, month, dayweek, **kwargs):
        super().__init__(**kwargs)
        self.fields = (minute, hour, day, month, dayweek)

    def schedule(self):
        uwsgi.add_cron(self.num, *self.fields)


class filemon(_scheduled):
    def __init__(self, fsobj, **kwargs):
        super().__init__(**kwargs)
        self.fsobj = fsobj

    def schedule(self):
        uwsgi.add_file_monitor(self.num, self.fsobj)


class lock:
    """Hold uwsgi lock 0 during each call."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args, **kwargs):
        uwsgi.lock()
        try:
            return self.f(*args, **kwargs)
        finally:
            uwsgi.unlock()


class thread:
    """Each call starts the function in a daemon thread."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args):
        t = threading.Thread(target=self.f, args=args, daemon=True)
        t.start()
        return self.f


class harakiri:
    """Kill the worker (the master replaces it) if one call runs longer than ``seconds``."""

    def __init__(self, seconds):
        self.s = seconds

    def __call__(self, f):
        def real_call(*args, **kwargs):
            uwsgi.set_user_harakiri(self.s)
            try:
                return f(*args, **kwargs)
            finally:
                uwsgi.set_user_harakiri(0)

        return real_call


def _absent(what, name):
    def refuse(*args, **kwargs):
        raise RuntimeError("@%s: rwsgi has no %s" % (name, what))

    return refuse


spool = _absent("spooler", "spool")
spoolraw = _absent("spooler", "spoolraw")
spoolforever = _absent("spooler", "spoolforever")
mulefunc = _absent("mules", "mulefunc")
mule = _absent("mules", "mule")
muleloop = _absent("mules", "muleloop")
mulemsg = _absent("mules", "mulemsg")
farm = _absent("mule farms", "farm")
rpc = _absent("RPC", "rpc")
erlang = _absent("Erlang bridge", "erlang")
