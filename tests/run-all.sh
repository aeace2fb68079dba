#!/bin/bash
# run-all.sh - the test driver behind `make check`: runs every Check unit test binary, then the
# integration and end-to-end scripts (tests/integration/*.sh, tests/e2e/*.sh), and prints one
# closing line "N passed, N failed". Exit status is non-zero when anything failed.
# Usage: tests/run-all.sh BUILD_DIR [unit|integration|e2e]...
set -u
build=${1:?usage: run-all.sh BUILD_DIR [unit|integration|e2e]...}; shift
build=$(cd "$build" && pwd)
kinds=${*:-unit integration e2e}
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0 failures=()

run_one() {  # name command...
	local name=$1; shift
	echo "=== $name"
	if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

for kind in $kinds; do
	case $kind in
	unit)
		for t in "$build"/tests/test_*; do
			[ -x "$t" ] || continue
			run_one "unit/$(basename "$t")" "$t"
		done ;;
	integration|e2e)
		for t in "$here/$kind"/test-*.sh; do
			[ -f "$t" ] || continue
			run_one "$kind/$(basename "$t" .sh)" env BUILD="$build" bash "$t"
		done ;;
	*) echo "unknown test kind: $kind" >&2; exit 64 ;;
	esac
done

for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
