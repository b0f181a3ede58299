#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
# Runs each libFuzzer target (BUILD_DIR/fuzz/TARGET) for SECONDS, one at
# a time, from its seed corpus tests/fuzz/corpus/NAME/ (read only: what
# the run finds goes to BUILD_DIR/corpus/NAME/, kept for the next run).
# A crash, leak, timeout, out-of-memory or sanitizer report fails the
# target; its input is written to BUILD_DIR/crashes/TARGET-*. Ends with
# "fuzz: N passed, N failed".
set -u
build=${1:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...}
secs=${2:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0

mkdir -p "$build/crashes"
for t in "$@"; do
	name=${t#fuzz_}
	seeds=$here/corpus/$name
	work=$build/corpus/$name
	log=$build/fuzz/$t.log
	mkdir -p "$work"
	[ -d "$seeds" ] || { echo "$t: no seed corpus $seeds"; failed=$((failed + 1)); continue; }
	echo "== $t: ${secs}s"
	# -max_len: the seeds are smaller; -timeout: one input, seconds;
	# -rss_limit_mb: the whole process; leaks are detected (the default)
	"$build/fuzz/$t" -max_total_time="$secs" -max_len=16384 \
	    -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
	    -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
	    "$work" "$seeds" >"$log" 2>&1
	rc=$?
	grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
	else
		echo "$t: FAILED (exit $rc); the log: $log"
		grep -E -A 30 '^==[0-9]+==ERROR|runtime error|check failed|ALARM|out-of-memory|Test unit written' "$log" | head -n 60
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
