#!/usr/bin/env bash
# Build the pip-installable rwsgi into dist/: one manylinux wheel per CPython minor, and the sdist.
#
#   bash scripts/build-wheels.sh                 # 3.10 3.11 3.12 3.13, plus the sdist
#   bash scripts/build-wheels.sh 3.11 3.13       # just these (no sdist)
#   bash scripts/build-wheels.sh .venv/bin/python  # for that interpreter's version
#
# A version's interpreter comes from pyenv (~/.pyenv/versions/3.X*) or `python3.X` on PATH; a missing
# one is an error. maturin and ziglang are installed from PyPI into .build-venv (pinned below) when missing.
#
# Why --zig: zig links against the glibc 2.17 symbol set whatever glibc the build machine has, so the
# wheels carry the manylinux2014 tag (glibc >= 2.17: RHEL/CentOS 7, Amazon Linux 2, Ubuntu 18.04,
# Debian 10 and everything newer) from an ordinary Debian 12 box, with no manylinux container and no
# auditwheel repair step. A native build here gets manylinux_2_34 at best, which leaves out every
# distribution older than glibc 2.34. maturin still audits the result (symbol versions, linked
# libraries: only libc, libgcc_s, ld-linux; never libpython) and refuses a wheel that breaks the tag.
#
# Environment: WHEEL_PROFILE (default release), WHEEL_TARGET_DIR (default target/wheel, apart from
# the binary's target/ so neither rebuilds the other), DIST (default dist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MATURIN_VERSION=1.16.0
ZIGLANG_VERSION=0.17.1
PROFILE="${WHEEL_PROFILE:-release}"
TARGET_DIR="${WHEEL_TARGET_DIR:-target/wheel}"
DIST="${DIST:-dist}"
TOOLS=.build-venv

versions=("$@")
sdist=0
if [ ${#versions[@]} -eq 0 ]; then
    versions=(3.10 3.11 3.12 3.13)
    sdist=1
fi

find_python() {
    local want="$1" found=""
    if [ -x "$want" ]; then echo "$want"; return; fi
    for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*; do
        [ -x "$dir/bin/python$want" ] && found="$dir/bin/python$want"
    done
    [ -n "$found" ] || found="$(command -v "python$want" || true)"
    [ -n "$found" ] || { echo "error: no CPython $want (pyenv or python$want on PATH)" >&2; return 1; }
    echo "$found"
}

# Resolved before PATH gains the tools venv (whose python3.X must not be taken for pyenv's).
pythons=()
for want in "${versions[@]}"; do
    pythons+=("$(find_python "$want")")
done

if ! "$TOOLS/bin/maturin" --version 2>/dev/null | grep -qx "maturin $MATURIN_VERSION" ||
    ! "$TOOLS/bin/python" -c "import ziglang" 2>/dev/null; then
    echo "==> installing maturin $MATURIN_VERSION and ziglang $ZIGLANG_VERSION into $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check \
        "maturin==$MATURIN_VERSION" "ziglang==$ZIGLANG_VERSION"
fi
# maturin (cargo-zigbuild inside it) runs zig as `python3 -m ziglang` when no `zig` is on PATH.
export PATH="$PWD/$TOOLS/bin:$PATH"

mkdir -p "$DIST"
for python in "${pythons[@]}"; do
    tag="$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
    echo "==> wheel for $tag ($python)"
    rm -f "$DIST"/rwsgi-*-"$tag"-*.whl
    maturin build --profile "$PROFILE" --zig --compatibility manylinux2014 \
        --interpreter "$python" --target-dir "$TARGET_DIR" --out "$DIST"
done
if [ "$sdist" -eq 1 ]; then
    echo "==> sdist"
    rm -f "$DIST"/rwsgi-*.tar.gz
    maturin sdist --out "$DIST"
fi
ls -l "$DIST"
