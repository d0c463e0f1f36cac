#!/usr/bin/env bash
# The one test command: build rwsgi, run the Rust tests, then the end-to-end
# suite (tests/e2e) with the real binary behind a real nginx.
#
#   bash scripts/test.sh [extra pytest args]
#
# Idempotent on a fresh Debian 12 machine as root: installs nginx if it is
# missing, makes .venv from python3 and installs tests/requirements.txt into it.
# Environment: RWSGI_BIN overrides the binary under test (default
# target/release/rwsgi); PYTHON overrides the interpreter the venv is made from.
# A wheel for that interpreter is built into dist/ (maturin and ziglang from PyPI,
# see scripts/build-wheels.sh) and tested installed into a fresh venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }

# -- nginx ------------------------------------------------------------------
if ! have_nginx; then
    [ "$(id -u)" -eq 0 ] || die "nginx is not installed and this is not root: install it (apt-get install -y nginx-light) and rerun"
    command -v apt-get >/dev/null 2>&1 || die "nginx is not installed and there is no apt-get to install it with"
    step "installing nginx"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends nginx-light || apt-get install -y --no-install-recommends nginx
    have_nginx || die "nginx is still missing after apt-get install"
fi
# curl, wrk and ab: the HTTP front-end tests (tests/e2e/test_http.py) drive them as real clients.
missing_clients=()
command -v curl >/dev/null 2>&1 || missing_clients+=(curl)
command -v wrk >/dev/null 2>&1 || missing_clients+=(wrk)
command -v ab >/dev/null 2>&1 || missing_clients+=(apache2-utils)
if [ "${#missing_clients[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing_clients[*]} and this is not root: apt-get install -y ${missing_clients[*]}, then rerun"
    step "installing ${missing_clients[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing_clients[@]}"
fi
[ -f /etc/nginx/uwsgi_params ] || die "/etc/nginx/uwsgi_params is missing (it comes with Debian's nginx-common)"

# -- systemd tools (socket activation and unit checks in tests/e2e/test_systemd.py; no init system) --
if ! command -v systemd-socket-activate >/dev/null 2>&1 || ! command -v systemd-analyze >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "systemd-socket-activate is missing and this is not root: apt-get install -y systemd, and rerun"
    step "installing systemd (for systemd-socket-activate and systemd-analyze)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends systemd
    command -v systemd-socket-activate >/dev/null 2>&1 || die "systemd-socket-activate is still missing"
fi

# -- Python venv --------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV from $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
step "installing tests/requirements.txt into .venv"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

# -- Rust -----------------------------------------------------------------------
step "cargo build --release"
cargo build --release
step "cargo test"
cargo test
if [ "$(id -u)" = 0 ]; then
    step "cargo test: the root-only identity tests"
    cargo test --test privileges -- --include-ignored
else
    step "skipped: the root-only identity tests (tests/privileges.rs) need root"
fi

# -- the pip-installed entry ---------------------------------------------------------
# tests/e2e/test_wheel.py installs this wheel into a fresh venv and serves Flask from it.
tag="$("$VENV/bin/python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
step "wheel for $tag (scripts/build-wheels.sh)"
bash scripts/build-wheels.sh "$VENV/bin/python"
RWSGI_WHEELS="$(ls "$ROOT"/dist/rwsgi-*-"$tag"-*.whl)"
export RWSGI_WHEELS

# -- end to end -------------------------------------------------------------------
export RWSGI_BIN="${RWSGI_BIN:-$ROOT/target/release/rwsgi}"
[ -x "$RWSGI_BIN" ] || die "$RWSGI_BIN was not built"
# The server embeds libpython; --virtualenv (added by the harness from this
# variable) lets it import Flask and Django from .venv.
export VIRTUAL_ENV="$VENV"
export RWSGI_VIRTUALENV="$VENV"
step "pytest tests/e2e (server: $RWSGI_BIN)"
"$VENV/bin/python" -m pytest tests/e2e -q "$@"
