#!/bin/sh
# `make fuzz`: run each libFuzzer harness given for SECONDS seconds on a
# fresh scratch copy of its seed corpus (build/fuzz/run/NAME/; the seeds in
# tests/fuzz/corpus/NAME/ are never written to), one summary line per
# harness, and exit non-zero if any found a crash, leak or timeout. The
# input that did it lands in build/fuzz/artifacts/NAME/.
#   sh tests/fuzz/run.sh SECONDS build/fuzz/fuzz_NAME...
set -u
secs=$1
shift
failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	name=${name#fuzz_}
	work=build/fuzz/run/$name
	art=build/fuzz/artifacts/$name
	rm -rf "$work"
	mkdir -p "$work/corpus" "$art"
	cp tests/fuzz/corpus/"$name"/* "$work/corpus/"
	seeds=$(ls "$work/corpus" | wc -l)
	# An input takes milliseconds; 30 s is a hang even on a machine
	# busy with KVM tests.
	set -- -max_total_time="$secs" -print_final_stats=1 -timeout=30 \
		-rss_limit_mb=2048 -artifact_prefix="$art/"
	if [ -f tests/fuzz/"$name".dict ]; then
		set -- "$@" -dict=tests/fuzz/"$name".dict
	fi
	"$bin" "$@" "$work/corpus" >"$work/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
	last=$(grep ' cov: ' "$work/log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corpus=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	if [ "$rc" -eq 0 ]; then
		verdict=ok
	else
		verdict="FAILED (exit $rc; $work/log)"
		failed=1
		grep -E '^==[0-9]+==ERROR|^SUMMARY|^artifact_prefix|Test unit written' \
			"$work/log" | head -n 5 | sed 's/^/  /'
	fi
	printf 'fuzz %-15s %10s execs %7s/s  cov %5s  ft %6s  corpus %-12s seeds %-3s  %s\n' \
		"$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
		"$corpus" "$seeds" "$verdict"
done
exit "$failed"
