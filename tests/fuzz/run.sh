#!/usr/bin/env bash
# Runs one libFuzzer harness for $FUZZ_SECONDS (default 60) and fails if it finds anything.
#   run.sh BINARY NAME MAX_LEN WORKDIR
# Reads the committed seeds in tests/fuzz/corpus/NAME but writes new inputs only to
# WORKDIR/corpus (kept between runs, so repeated `make fuzz` runs build on each other), crash
# inputs to WORKDIR/artifacts, and the full libFuzzer log to WORKDIR/fuzz.log. Prints the final
# statistics; on a finding, the sanitizer report and how to reproduce it.
set -uo pipefail

bin=$1 name=$2 max_len=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-60}
seeds=$here/corpus/$name
dict=$here/$name.dict

mkdir -p "$work/corpus" "$work/artifacts"
rm -rf "$work/tmp" && mkdir -p "$work/tmp"
args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len"
      -print_final_stats=1 -artifact_prefix="$work/artifacts/")
[ -f "$dict" ] && args+=(-dict="$dict")

echo "fuzz.$name: ${seconds}s, log $work/fuzz.log"
# The outer timeout only guards against a hang libFuzzer itself cannot interrupt.
TMPDIR=$work/tmp \
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    timeout --kill-after=30 $((seconds * 2 + 120)) \
    "$bin" "${args[@]}" "$work/corpus" "$seeds" >"$work/fuzz.log" 2>&1
rc=$?

grep -E '^(stat::|Done [0-9]+ runs)' "$work/fuzz.log"
grep -E '^#[0-9]+' "$work/fuzz.log" | tail -n 1
if [ $rc -ne 0 ]; then
    echo "fuzz.$name: FAILED (exit $rc); end of the log:"
    tail -n 120 "$work/fuzz.log"
    crash=$(grep -oE "Test unit written to [^ ]+" "$work/fuzz.log" | tail -n 1 | cut -d' ' -f5)
    if [ -n "$crash" ]; then
        echo "fuzz.$name: reproduce with: $bin $crash"
    fi
fi
exit $rc
