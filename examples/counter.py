"""The seed story: a Flask app whose global COUNT is doubled once per request.

Every request changes COUNT in three steps. Run with several threads
(`rwsgi --socket 127.0.0.1:3031 --wsgi-file examples/counter.py --threads 8`), the
threads share this module, so without the lock two requests could interleave and
lose a doubling. With it, N requests always leave COUNT == 2**N.

Routes: `/test_uwsgi` and `/` double COUNT and return the new value; `/count`
returns the current value without changing it.
"""

import threading

from flask import Flask

COUNT = 1
mutex = threading.Lock()

app = Flask(__name__)


@app.route("/")
@app.route("/test_uwsgi")
def index():
    global COUNT
    with mutex:
        COUNT = COUNT - 1
        COUNT = COUNT + 1
        COUNT = COUNT * 2
        value = COUNT
    return str(value)


@app.route("/count")
def count():
    with mutex:
        return str(COUNT)


application = app
