#!/usr/bin/env bash
# --py-warn-shared-globals against a CPython 3.12+ build: the seed's counter (a module global
# rebound by request code) and a module-level dict mutated by requests are reported, once each,
# with file:line; an app keeping its state per request is not. Standard library only (no venv).
#
#   bash scripts/check-shared-globals.sh 3.12        # after scripts/smoke-python.sh 3.12 built it
#
# Uses target/pyX.Y/debug/rwsgi (scripts/smoke-python.sh's build). Stops what it starts by pid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version="${1:?usage: check-shared-globals.sh VERSION}"
binary="${RWSGI_BIN:-target/py$version/debug/rwsgi}"
[ -x "$binary" ] || { echo "error: no $binary (run scripts/smoke-python.sh $version first)" >&2; exit 1; }
python=""
for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version"*; do
    [ -x "$dir/bin/python$version" ] && python="$dir/bin/python$version"
done
[ -n "$python" ] || { echo "error: no CPython $version under pyenv" >&2; exit 1; }

work="$(mktemp -d /tmp/rwsgi-globals-XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/seed_counter.py" <<'APP'
COUNT = 1

def application(environ, start_response):
    global COUNT
    COUNT = COUNT - 1
    COUNT = COUNT + 1
    COUNT = COUNT * 2
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(COUNT).encode()]
APP
cat >"$work/cache_app.py" <<'APP'
CACHE = {}

def application(environ, start_response):
    CACHE[environ["PATH_INFO"]] = len(CACHE)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
APP

for app in seed_counter cache_app; do
    "$binary" --socket "$work/$app.sock" --wsgi-file "$work/$app.py" --threads 4 \
        --py-warn-shared-globals >"$work/$app.log" 2>&1 &
    pids+=($!)
done
"$binary" --socket "$work/quiet.sock" --wsgi-file examples/per_request.py --threads 4 \
    --py-warn-shared-globals >"$work/quiet.log" 2>&1 &
pids+=($!)

"$python" - "$work" <<'PY'
import socket, struct, sys, time
from concurrent.futures import ThreadPoolExecutor

work = sys.argv[1]

def get(sock, path="/"):
    pairs = [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", path.encode()), (b"REQUEST_URI", path.encode()),
             (b"QUERY_STRING", b""), (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"SERVER_NAME", b"localhost"),
             (b"SERVER_PORT", b"80"), (b"REMOTE_ADDR", b"127.0.0.1")]
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)
    deadline = time.monotonic() + 30
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(sock)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    s.sendall(struct.pack("<BHB", 0, len(block), 0) + block)
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply
    return reply

for app in ("seed_counter", "cache_app", "quiet"):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: get(f"{work}/{app}.sock", f"/{i % 3}"), range(40)))
time.sleep(0.5)
logs = {app: open(f"{work}/{app}.log").read() for app in ("seed_counter", "cache_app", "quiet")}
seed = [l for l in logs["seed_counter"].splitlines() if "shared global:" in l]
assert len(seed) == 1, logs["seed_counter"]
assert "seed_counter_py.COUNT at " in seed[0] and "seed_counter.py:5 (in application)" in seed[0], seed
assert "shared by the 4 thread(s)" in seed[0], seed
cache = [l for l in logs["cache_app"].splitlines() if "shared global:" in l]
assert len(cache) == 1 and "cache_app_py.CACHE at " in cache[0] and "mutates the module-level dict" in cache[0], logs["cache_app"]
assert "cache_app.py:4 (in application)" in cache[0], cache
assert "watching" in logs["quiet"] and "shared global:" not in logs["quiet"], logs["quiet"]
print("--py-warn-shared-globals: the counter and the module dict reported once each, per-request state silent")
print(seed[0])
print(cache[0])
PY
