#!/usr/bin/env bash
# Build rwsgi against another CPython and check that it serves a request.
#
#   bash scripts/smoke-python.sh 3.12      # or 3.13, or a path to a python3.X binary
#
# The interpreter comes from pyenv (~/.pyenv/versions/X.Y*) unless a path is given. The build goes
# to target/pyX.Y so it does not disturb the main build. Fails loudly if the interpreter is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want="${1:?usage: smoke-python.sh VERSION|PATH}"
if [ -x "$want" ]; then
    python="$want"
else
    python=""
    for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want"*; do
        [ -x "$dir/bin/python$want" ] && python="$dir/bin/python$want"
    done
    [ -n "$python" ] || { echo "error: no CPython $want under pyenv" >&2; exit 1; }
fi
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
target="target/py$version"

echo "==> building rwsgi against $python ($version) into $target"
PYO3_PYTHON="$python" cargo build --quiet --target-dir "$target"

sock="$(mktemp -u /tmp/rwsgi-smoke-XXXXXX.sock)"
log="$(mktemp /tmp/rwsgi-smoke-XXXXXX.log)"
"$target/debug/rwsgi" --socket "$sock" --wsgi-file examples/hello.py --threads 2 >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$sock"; }
trap cleanup EXIT

"$python" - "$sock" "$version" "$log" <<'PY'
import socket, struct, sys, time

path, version, log = sys.argv[1:4]

def packet(pairs):
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)
    return struct.pack("<BHB", 0, len(block), 0) + block

request = packet([(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/"), (b"REQUEST_URI", b"/"),
                  (b"QUERY_STRING", b""), (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"SERVER_NAME", b"localhost"),
                  (b"SERVER_PORT", b"80"), (b"REMOTE_ADDR", b"127.0.0.1")])
deadline = time.monotonic() + 30
while True:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("rwsgi did not come up:\n" + open(log).read())
        time.sleep(0.1)
s.sendall(request)
reply = b""
while chunk := s.recv(65536):
    reply += chunk
assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
assert reply.endswith(b"\r\n\r\nHello World\n"), reply
text = open(log).read()
assert f"Python version: {version}." in text, text
print(f"rwsgi built against Python {version} served a request")
PY
