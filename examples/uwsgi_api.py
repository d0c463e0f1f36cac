"""A Flask app using what apps and libraries use from uWSGI: `import uwsgi`, and
`uwsgidecorators.postfork`, `@timer`, `@cron` and `@lock`. The same file runs under uWSGI and
under rwsgi (tests/e2e/test_uwsgi_module.py, scripts/compare-uwsgi-api.sh):

    rwsgi --master --processes 2 --threads 4 --socket 127.0.0.1:3031 --wsgi-file examples/uwsgi_api.py
    uwsgi --master --processes 2 --threads 4 --socket 127.0.0.1:3031 --wsgi-file examples/uwsgi_api.py

Timers and crons append a line to files in $API_STATE_DIR (default /tmp) so a test can see which
worker ran them and when. Routes:
  /info          the uwsgi module as this worker sees it, and whether the tracer thread runs here
                 (?sleep=S first sleeps, so concurrent requests spread over the workers)
  /incr          a read-modify-write of a counter file, under @lock (shared by every worker)
  /counter       the counter file's value
  /logvar?v=X    sets the request's %(who) log variable to X
  /stuck         sleeps 30 s in stuck_here() (for stack dumps and harakiri), after creating the
                 file stuck.started in $API_STATE_DIR (a test waits for it)
  /slow          sleeps 0.3 s (to see requests served while a timer handler runs)
"""

import json
import os
import time

import uwsgi
import uwsgidecorators
from flask import Flask, request

import fake_tracer

DIR = os.environ.get("API_STATE_DIR", "/tmp")
COUNTER = os.path.join(DIR, "counter")
TIMER_SLEEP = float(os.environ.get("API_TIMER_SLEEP", "0"))

app = Flask(__name__)
postforks = []


def note(name, line):
    with open(os.path.join(DIR, name), "a") as fh:
        fh.write(line + "\n")


@uwsgidecorators.postfork
def after_fork():
    postforks.append(uwsgi.worker_id())
    note("postfork", "%d %d" % (uwsgi.worker_id(), os.getpid()))


@uwsgidecorators.timer(1)
def every_second(signum):
    note("timer", "%d %d %d %.3f" % (signum, uwsgi.worker_id(), os.getpid(), time.time()))
    time.sleep(TIMER_SLEEP)


@uwsgidecorators.cron(-1, -1, -1, -1, -1)
def every_minute(signum):
    note("cron", "%d %d %.3f" % (signum, uwsgi.worker_id(), time.time()))


@uwsgidecorators.lock
def increment():
    try:
        with open(COUNTER) as fh:
            value = int(fh.read() or 0)
    except FileNotFoundError:
        value = 0
    time.sleep(0.002)  # widen the window a missing lock would lose updates in
    with open(COUNTER, "w") as fh:
        fh.write(str(value + 1))
    return value + 1


def text(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [text(v) for v in value]
    return value


@app.route("/info")
def info():
    time.sleep(float(request.args.get("sleep", 0)))
    return json.dumps({
        "worker_id": uwsgi.worker_id(),
        "pid": os.getpid(),
        "masterpid": uwsgi.masterpid(),
        "numproc": uwsgi.numproc,
        "version": text(uwsgi.version),
        "hostname_is_bytes": isinstance(uwsgi.hostname, bytes),
        "opt": {k: text(v) for k, v in uwsgi.opt.items()},
        "enable_threads": bool(uwsgi.opt.get("enable-threads")),
        "workers": sorted(w["id"] for w in uwsgi.workers()),
        "total_requests": uwsgi.total_requests(),
        "request_id": uwsgi.request_id(),
        "started_on": uwsgi.started_on,
        "buffer_size": uwsgi.buffer_size,
        "postforks": postforks,
        "tracer": fake_tracer.status(),
        "locked_outside": uwsgi.is_locked(),
    })


@app.route("/incr")
def incr():
    return str(increment())


@app.route("/counter")
def counter():
    with open(COUNTER) as fh:
        return fh.read()


@app.route("/logvar")
def logvar():
    uwsgi.set_logvar("who", request.args.get("v", ""))
    return text(uwsgi.get_logvar("who"))


def stuck_here():
    time.sleep(30)


@app.route("/stuck")
def stuck():
    open(os.path.join(DIR, "stuck.started"), "w").close()
    stuck_here()
    return "unstuck"


@app.route("/slow")
def slow():
    time.sleep(0.3)
    return "slow"


application = app
