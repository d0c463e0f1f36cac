#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind: the one figure this noisy 2-core box
# gives the same way twice. Kernel time (accept4, recvfrom, sendmsg, close: about two thirds of a
# hello request) is not counted; the bench's CPU us/req column has it.
#
#   bench/instructions.sh [APP] [REQUESTS] [CONTENDERS]
#   bench/instructions.sh hello 5000 rwsgi,uwsgi      # the defaults
#   bench/instructions.sh flask_app 2000              # APP is a file in bench/apps (the Flask
#                                                     # app is asked for /json)
#   bench/instructions.sh hello 5000 rwsgi,wheel      # the binary against the pip-installed
#                                                     # rwsgi in bench/.venv (`bench/.venv/bin/pip
#                                                     # install dist/rwsgi-*-cp311-*.whl` first)
#
# Each contender runs 1x1 (no master) under valgrind on a unix socket in a tmp dir; uwsgi-load sends
# 1000 warm-up requests, the counters are zeroed, REQUESTS more are sent (4 connections), and the
# counters dumped. Needs valgrind (Debian: valgrind), bench/.venv (made by run.py) and
# target/release/rwsgi. Every process started here is stopped by its pid.
set -euo pipefail

APP=${1:-hello}
REQUESTS=${2:-5000}
CONTENDERS=${3:-rwsgi,uwsgi}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
VENV=$HERE/.venv
LOAD=$HERE/target/release/uwsgi-load
RWSGI=${RWSGI_BIN:-$REPO/target/release/rwsgi}

die() { echo "instructions.sh: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"
command -v callgrind_control >/dev/null || die "callgrind_control is missing (it comes with valgrind)"
[ -f "$HERE/apps/$APP.py" ] || die "no app $HERE/apps/$APP.py"
case ",$CONTENDERS," in *,uwsgi,*)
    [ -x "$VENV/bin/uwsgi" ] || die "no $VENV/bin/uwsgi: run bench/run.py once to make the venv" ;;
esac
case ",$CONTENDERS," in *,rwsgi,*) [ -x "$RWSGI" ] || die "no $RWSGI: cargo build --release" ;; esac
case ",$CONTENDERS," in *,wheel,*)
    [ -x "$VENV/bin/rwsgi" ] || die "no $VENV/bin/rwsgi: install a wheel from scripts/build-wheels.sh into $VENV" ;;
esac
[ -x "$LOAD" ] || cargo build --release --manifest-path "$HERE/Cargo.toml" >&2

PATH_ARG=/
[ "$APP" = flask_app ] && PATH_ARG=/json

TMP=$(mktemp -d /tmp/rwsgi-instr.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -INT "$PID" 2>/dev/null || true
        sleep 1
        kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

count() {
    local name=$1 sock=$TMP/$1.sock cmd
    case $name in
        rwsgi) cmd=("$RWSGI") ;;
        uwsgi) cmd=("$VENV/bin/uwsgi" --need-app) ;;
        # The pip-installed rwsgi runs in $VENV's interpreter; --virtualenv names that same venv.
        wheel) cmd=("$VENV/bin/rwsgi") ;;
        *) die "unknown contender $name (rwsgi, uwsgi, wheel)" ;;
    esac
    valgrind --tool=callgrind --callgrind-out-file="$TMP/$name.%p.out" \
        "${cmd[@]}" --socket "$sock" --wsgi-file "$HERE/apps/$APP.py" --processes 1 --threads 1 \
        --disable-logging --virtualenv "$VENV" >"$TMP/$name.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.1; done
    [ -S "$sock" ] || { cat "$TMP/$name.log" >&2; die "$name did not bind $sock within 60 s"; }
    "$LOAD" --socket "$sock" --connections 4 --requests 1000 --path "$PATH_ARG" >/dev/null
    callgrind_control -z "$PID" >/dev/null 2>&1
    local ok
    ok=$("$LOAD" --socket "$sock" --connections 4 --requests "$REQUESTS" --path "$PATH_ARG" --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["ok"] if d["errors_total"] == 0 else -1)')
    [ "$ok" = "$REQUESTS" ] || die "$name: $ok of $REQUESTS requests succeeded"
    callgrind_control -d "$PID" >/dev/null 2>&1
    sleep 0.5
    kill -INT "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
    # The dump after zeroing is the file with a part suffix (NAME.PID.out.1).
    local dump
    dump=$(ls "$TMP/$name".*.out.* 2>/dev/null | head -1)
    [ -n "$dump" ] || die "$name: no callgrind dump"
    python3 - "$dump" "$REQUESTS" "$name" <<'PY'
import sys
path, n, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
total = None
with open(path) as fh:
    for line in fh:
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
if total is None:
    sys.exit(f"{name}: no totals in {path}")
print(f"{name}\t{total / n:.0f}")
PY
}

echo "# user-space instructions per request, $APP, 1x1, $REQUESTS requests after 1000 warm-up (callgrind)"
printf 'contender\tinstructions/request\n'
IFS=, read -ra names <<<"$CONTENDERS"
for name in "${names[@]}"; do
    count "$name"
done
