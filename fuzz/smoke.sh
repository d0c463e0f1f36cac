#!/usr/bin/env bash
# CI smoke: run every fuzz target for N seconds (default 60) and exit non-zero if any crashes.
# Usage: fuzz/smoke.sh [SECONDS]      Logs: ${FUZZ_LOG_DIR:-/tmp/fuzz-logs}/smoke-TARGET.log
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-60}"
logs="${FUZZ_LOG_DIR:-/tmp/fuzz-logs}"
mkdir -p "$logs"
targets=(header vars decode reader response http)
"$here/seed.sh" >/dev/null
# Build once up front so each target's time budget is spent fuzzing.
(cd "$here" && RUSTC_BOOTSTRAP=1 cargo fuzz build -O) || exit 2
failed=()
for t in "${targets[@]}"; do
    log="$logs/smoke-$t.log"
    if "$here/run.sh" "$t" "$seconds" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed+=("$t")
    fi
    stats="$(grep -E '^#[0-9]+' "$log" | tail -1)"
    echo "$t: $status  $stats"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]} (artifacts in fuzz/artifacts/, logs in $logs)" >&2
    exit 1
fi
