#!/bin/bash
# bench_shim.sh - the shim's hot path with a warm cache (bench/README.md, "Hot path"). Needs root;
# runs in the loopback world of the tests (bench/lib-bench.sh).
#
# 1. Per-session cost: build/tests/smtpclient --count COUNT user@good.test (OpenSSL, one TLS
#    session per message: MX and address lookups, connect, EHLO, STARTTLS, handshake, MAIL, RCPT,
#    DATA, QUIT) to the receiving Exim on 127.0.0.11, ROUNDS rounds of one block without and one
#    block with the shim (LD_PRELOAD), the order alternating (off,on / on,off) so drift cancels.
#    Per session: smtpclient's own clock (first session to last, process start excluded) and
#    the wall time of the whole process (exec and library loading included). Every block must
#    deliver COUNT messages; with the shim every session must be logged as a verified enforce
#    session (policy=enforce result=success action=allow).
# 2. The connect-time decision alone: build/bench/bench_decision (bench_decision.c) under the
#    shim, connect() through the shim against libc's connect() in the same process.
#
# Usage: bench/bench_shim.sh [BUILD_DIR]
# Environment: SHIM_ROUNDS (10), SHIM_COUNT (50 sessions per block), DECISION_N (20000).
set -u
src=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ -z "${WORLD_INSIDE:-}" ]; then
	BUILD=$(cd "${1:-$src/build}" && pwd) || exit 1
	export BUILD
fi
. "$src/tests/lib/world.sh"
world_enter "$@"
. "$src/tests/e2e/lib-exim.sh"
. "$src/bench/lib-bench.sh"
ROUNDS=${SHIM_ROUNDS:-10}
COUNT=${SHIM_COUNT:-50}
DECISION_N=${DECISION_N:-20000}
DECISION=$BUILD/bench/bench_decision

bench_world || { echo "bench_shim: world did not start" >&2; exit 1; }
[ -x "$DECISION" ] || { echo "bench_shim: $DECISION missing (make -C bench build)" >&2; exit 1; }

# block MODE N: one smtpclient process of N sessions; sets BLOCK_SECS (smtpclient's clock),
# BLOCK_WALL (process wall time) and BLOCK_CPU (the client's CPU time, perf task-clock), in seconds
block() {
	local mode=$1 n=$2 pre=(env) t0 t1 out delivered secs before
	[ "$mode" = on ] && pre=(env "LD_PRELOAD=$SHIM_LIB")   # env(1) both ways: same execs
	before=$(shim_allow_lines)
	t0=$(now_ns)
	out=$(perf stat -x, -e task-clock -o "$WORLD/perf.out" "${pre[@]}" "$SMTPCLIENT" --count "$n" user@good.test 2>&1)
	t1=$(now_ns)
	read -r delivered secs < <(echo "$out" | sed -n 's/^smtpclient: delivered \([0-9]*\) of [0-9]* in \([0-9.]*\) s$/\1 \2/p')
	if [ "${delivered:-0}" != "$n" ]; then
		echo "bench_shim: block $mode delivered ${delivered:-0} of $n" >&2
		echo "$out" | grep -v ' delivered$' | tail -n 5 >&2
		return 1
	fi
	if [ "$mode" = on ] && [ $(( $(shim_allow_lines) - before )) -ne "$n" ]; then
		echo "bench_shim: the shim logged $(( $(shim_allow_lines) - before )) verified sessions, not $n" >&2
		return 1
	fi
	[ "$mode" = off ] && [ "$(shim_log_lines)" -ne "$LOG_LINES" ] &&
		{ echo "bench_shim: the shim logged something in a control block" >&2; return 1; }
	LOG_LINES=$(shim_log_lines)
	BLOCK_SECS=$secs
	BLOCK_CPU=$(awk -F, '$3 == "task-clock" { printf "%.6f", $1 / 1000 }' "$WORLD/perf.out")
	BLOCK_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
}

bench_header bench_shim
echo "# hot path: $ROUNDS rounds x (off, on) x $COUNT sessions, smtpclient (OpenSSL) -> Exim on 127.0.0.11, warm cache"
LOG_LINES=$(shim_log_lines)
# warm-up (page cache, the receiver's first forks), not recorded
block off 5 && block on 5 || exit 1
: > "$WORLD/inproc"; : > "$WORLD/wall"; : > "$WORLD/cpu"
for r in $(seq 1 "$ROUNDS"); do
	order="off on"; [ $((r % 2)) -eq 0 ] && order="on off"
	for mode in $order; do
		block "$mode" "$COUNT" || exit 1
		secs=$BLOCK_SECS wall=$BLOCK_WALL
		echo "$r $mode $secs" >> "$WORLD/inproc"
		echo "$r $mode $wall" >> "$WORLD/wall"
		echo "$r $mode $BLOCK_CPU" >> "$WORLD/cpu"
		printf '#   round %2d %-3s  %.3f s in process, %.3f s wall, %.3f s CPU\n' "$r" "$mode" "$secs" "$wall" "$BLOCK_CPU"
	done
done
report() {  # LABEL FILE
	read -r off on added ci ratio lo hi n < <(paired_stats "$2" "$COUNT")
	printf '| %-40s | %8.1f | %8.1f | %+7.1f +- %5.1f | %.4f [%.4f, %.4f] |\n' "$1" "$off" "$on" "$added" "$ci" "$ratio" "$lo" "$hi"
}
echo
echo "| per session, $ROUNDS paired rounds of $COUNT | off (us) | on (us) | added (us), +- 2 SE | ratio on/off [+- 2 SE] |"
echo "|---|---|---|---|---|"
report "wall, smtpclient's clock (no exec)" "$WORLD/inproc"
report "wall, whole process (exec, lib load)" "$WORLD/wall"
report "CPU time of the client (task-clock)" "$WORLD/cpu"

echo
echo "# connect-time decision: $DECISION -n $DECISION_N dec.test bad.test (under the shim)"
env "LD_PRELOAD=$SHIM_LIB" "$DECISION" -n "$DECISION_N" dec.test bad.test || exit 1
e2e_stop_exims
