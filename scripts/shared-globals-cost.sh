#!/usr/bin/env bash
# What --py-warn-shared-globals costs: nanoseconds per write to a module global from request code
# (a million `X = i` in one request, median of 7), and microseconds per request that writes none,
# with and without the flag, against a CPython 3.12+ build.
#
#   bash scripts/shared-globals-cost.sh 3.12       # uses target/py3.12/debug/rwsgi, or $RWSGI_BIN
#
# Numbers from a loaded 2-core box are noisy: compare the two lines of one run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version="${1:?usage: shared-globals-cost.sh VERSION}"
binary="${RWSGI_BIN:-target/py$version/debug/rwsgi}"
[ -x "$binary" ] || { echo "error: no $binary (run scripts/smoke-python.sh $version first)" >&2; exit 1; }
work="$(mktemp -d /tmp/rwsgi-cost-XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/cost_app.py" <<'APP'
import time
X = 0

def application(environ, start_response):
    global X
    n = int(environ.get("QUERY_STRING") or 0)
    t = time.perf_counter_ns()
    for i in range(n):
        X = i
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % (time.perf_counter_ns() - t)]
APP

for flag in "" "--py-warn-shared-globals"; do
    "$binary" --socket "$work/app.sock" --wsgi-file "$work/cost_app.py" --threads 1 -L $flag \
        >"$work/server.log" 2>&1 &
    pid=$!
    python3 - "$work/app.sock" "${flag:-(no flag)}" <<'PY'
import socket, statistics, struct, sys, time

path, label = sys.argv[1:3]

def get(query):
    pairs = [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/"), (b"REQUEST_URI", b"/"),
             (b"QUERY_STRING", query.encode()), (b"SERVER_PROTOCOL", b"HTTP/1.1"),
             (b"SERVER_NAME", b"localhost"), (b"SERVER_PORT", b"80"), (b"REMOTE_ADDR", b"127.0.0.1")]
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)
    deadline = time.monotonic() + 30
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    s.sendall(struct.pack("<BHB", 0, len(block), 0) + block)
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    return reply.split(b"\r\n\r\n", 1)[1]

for _ in range(3):
    get("100000")
per_write = statistics.median(int(get("1000000")) / 1e6 for _ in range(7))
t = time.perf_counter()
for _ in range(2000):
    get("0")
per_request = (time.perf_counter() - t) / 2000 * 1e6
print(f"{label:>26}: {per_write:6.1f} ns per global write, {per_request:6.1f} us per request writing none")
PY
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
