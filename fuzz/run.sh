#!/usr/bin/env bash
# Run one fuzz target: fuzz/run.sh TARGET SECONDS [extra libFuzzer args...]
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z sanitizer flags
# cargo-fuzz passes. Exits non-zero if libFuzzer finds a crash (artifact in fuzz/artifacts/TARGET/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: fuzz/run.sh TARGET SECONDS}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : $# ))
cd "$here"
if ! command -v cargo-fuzz >/dev/null; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2
    exit 2
fi
corpus="$here/corpus/$target"
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ]; then
    "$here/seed.sh" >/dev/null
fi
export RUSTC_BOOTSTRAP=1
# -O: optimised, with debug assertions. Reproduce a crash with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O TARGET fuzz/artifacts/TARGET/crash-...   (from fuzz/)
exec cargo fuzz run -O "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=70000 -print_final_stats=1 "$@"
