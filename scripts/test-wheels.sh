#!/usr/bin/env bash
# The pip-installed rwsgi, the whole matrix (CI runs 3.11 and 3.13 of it on every run):
#
#   bash scripts/test-wheels.sh
#
# 1. scripts/build-wheels.sh: wheels for CPython 3.10, 3.11, 3.12, 3.13 and the sdist, into dist/.
# 2. tests/e2e/test_wheel.py with every wheel: a fresh venv of that version, the wheel and Flask
#    installed, `venv/bin/rwsgi --master --processes 2 --threads 4` behind nginx, no --virtualenv;
#    sys.executable/sys.prefix are the venv's, SIGHUP reloads, SIGTERM exits 0.
# 3. From a fresh clone of HEAD, the README's quick start: `python3 -m venv .venv &&
#    .venv/bin/pip install .` then `.venv/bin/rwsgi --socket ... --wsgi-file examples/hello.py`
#    answers; and the sdist installs the same way with pip.
# Needs scripts/test.sh to have made .venv (pytest, nginx).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
[ -x .venv/bin/python ] || { echo "error: no .venv: run scripts/test.sh first" >&2; exit 1; }

start=$(date +%s)
echo "==> building (scripts/build-wheels.sh)"
bash scripts/build-wheels.sh
built=$(date +%s)

RWSGI_WHEELS="$(ls "$ROOT"/dist/rwsgi-*.whl | paste -sd:)"
export RWSGI_WHEELS
echo "==> tests/e2e/test_wheel.py with $RWSGI_WHEELS"
.venv/bin/python -m pytest tests/e2e/test_wheel.py -v
tested=$(date +%s)

# Serve examples/hello.py with `$1/bin/rwsgi` from directory $2 and check one request.
serve_hello() {
    local venv="$1" dir="$2" port log pid
    port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    log="$(mktemp /tmp/rwsgi-quickstart-XXXXXX.log)"
    (cd "$dir" && exec env -u VIRTUAL_ENV -u RWSGI_VIRTUALENV "$venv/bin/rwsgi" \
        --socket "127.0.0.1:$port" --wsgi-file examples/hello.py) >"$log" 2>&1 &
    pid=$!
    if ! .venv/bin/python - "$port" <<'PY'; then
import sys, time
sys.path.insert(0, "tests/e2e")
import uwsgi_wire as wire
address = ("127.0.0.1", int(sys.argv[1]))
end = time.monotonic() + 30
while True:
    try:
        status, _, body = wire.split_response(wire.get(address, "/", "", 10))
        break
    except OSError:
        if time.monotonic() > end:
            raise
        time.sleep(0.2)
assert status.startswith("HTTP/1.1 200") and body == b"Hello World\n", (status, body)
print("  served:", status, body)
PY
        kill "$pid"; wait "$pid" || true; cat "$log"; return 1
    fi
    kill -TERM "$pid"
    wait "$pid"
}

work="$(mktemp -d /tmp/rwsgi-clone-XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "==> README quick start from a fresh clone of HEAD ($work/rwsgi)"
git clone --quiet "$ROOT" "$work/rwsgi"
(cd "$work/rwsgi" && python3 -m venv .venv && .venv/bin/pip install --quiet --disable-pip-version-check .)
serve_hello "$work/rwsgi/.venv" "$work/rwsgi"

echo "==> the sdist, with pip"
python3 -m venv "$work/sdist-venv"
"$work/sdist-venv/bin/pip" install --quiet --disable-pip-version-check "$ROOT"/dist/rwsgi-*.tar.gz
serve_hello "$work/sdist-venv" "$ROOT"
done_at=$(date +%s)

echo "==> ok: build $((built - start)) s, wheel tests $((tested - built)) s, clone + sdist $((done_at - tested)) s"
ls -l dist/
