#!/bin/sh
# Run the cmocka unit test binaries given as arguments; print one summary
# line "unit: N passed, N failed" and exit non-zero if any test failed.
passed=0
failed=0
for t in "$@"; do
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -E '^\[  (FAILED|ERROR|SKIPPED)|^\[  PASSED  \]|^SKIP ' | sed "s|^|$(basename "$t"): |"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n1)
	passed=$((passed + ${p:-0}))
	if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
		printf '%s\n' "$out" | tail -n 20
		f=1
	fi
	failed=$((failed + ${f:-0}))
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
