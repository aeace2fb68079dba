#!/bin/bash
# bench_exim.sh - throughput of a real Exim (Debian's exim4-daemon-light, GnuTLS) with and without
# the shim, in the loopback world of the tests (bench/lib-bench.sh). Needs root. The domain is
# good.test: enforce, the MX has a valid certificate, so every run delivers over TLS and the
# difference is the shim's work (DNS observation, connect decision, SNI, chain verification,
# write guard, session log and report). The shim is loaded the way the e2e tests load it (setuid
# copy preloaded by a trusted bare name, lib-exim.sh shim_on), so it follows Exim's re-execs.
#
# 1. exim -odf, one message per process (submission, setuid re-exec, routing, a new connection
#    and TLS session, delivery): BLOCKS rounds of one block of BLOCK messages without and one
#    with the shim, the order alternating (off,on / on,off) so drift cancels.
# 2. exim -qff of QUEUE queued messages (one queue run; Exim 4.96 here opened one connection per
#    message, the shim logs one session per connection), QRUNS
#    rounds of off and on, alternating.
# 3. The first message to a domain with an empty cache (discovery and fetch by the detached
#    fetcher while the connect waits).
# Every block is checked: all messages in the receiver's mailbox, all over TLS, the queue empty;
# with the shim, one `policy=enforce result=success action=allow` line per connection.
#
# Usage: bench/bench_exim.sh [BUILD_DIR]
# Environment: EXIM_BLOCKS (10), EXIM_BLOCK (20), EXIM_QUEUE (200), EXIM_QRUNS (2).
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
BLOCKS=${EXIM_BLOCKS:-10}
BLOCK=${EXIM_BLOCK:-20}
QUEUE=${EXIM_QUEUE:-200}
QRUNS=${EXIM_QRUNS:-2}

bench_world || { echo "bench_exim: world did not start" >&2; exit 1; }
shim_on || { echo "bench_exim: shim_on failed" >&2; exit 1; }
shim_off

# Both modes start Exim through env(1) (shim_on's SHIM is `env LD_PRELOAD=...`), so the
# comparison does not charge the shim with one more exec per message.
set_mode() { if [ "$1" = on ]; then shim_on; else shim_off; SHIM=(env); fi; }

# check_block MODE N ALLOW_BEFORE: the last run delivered N messages over TLS, the queue is empty,
# and with the shim the log gained at least one verified session (Exim -qff reuses connections:
# one line per connection, not per message) and no block
check_block() {
	local mode=$1 n=$2 before=$3
	wait_for 10 mbox_at_least good "$n"
	if [ "$(mbox_tls_count good)" -ne "$n" ] || [ "$(queue_count)" -ne 0 ]; then
		echo "bench_exim: shim $mode: $(mbox_tls_count good) of $n delivered over TLS, $(queue_count) queued" >&2
		e2e_dump >&2
		return 1
	fi
	if [ "$mode" = on ] && [ "$(shim_allow_lines)" -le "$before" ]; then
		echo "bench_exim: the shim logged no verified session" >&2
		return 1
	fi
	if grep -q 'action=block' "$WORLD/mtasts.log"; then
		echo "bench_exim: the shim blocked something" >&2
		return 1
	fi
	if [ "$mode" = off ] && [ "$(shim_log_lines)" -ne "$LOG_LINES" ]; then
		echo "bench_exim: the shim logged something without the shim" >&2
		return 1
	fi
	LOG_LINES=$(shim_log_lines)
}

bench_header bench_exim
echo "# $(exim4 --version | head -n 1 | cut -d' ' -f1-3); good.test enforce, valid certificate, warm cache"
LOG_LINES=$(shim_log_lines)

# warm-up, not recorded
for mode in off on; do
	set_mode "$mode"; e2e_reset
	before=$(shim_allow_lines)
	send_odf user@good.test && send_odf user@good.test && check_block "$mode" 2 "$before" || exit 1
done

# 1. exim -odf
: > "$WORLD/odf"
for r in $(seq 1 "$BLOCKS"); do
	order="off on"; [ $((r % 2)) -eq 0 ] && order="on off"
	for mode in $order; do
		set_mode "$mode"; e2e_reset
		before=$(shim_allow_lines)
		t0=$(now_ns)
		for i in $(seq 1 "$BLOCK"); do send_odf user@good.test || { echo "bench_exim: exim -odf failed" >&2; exit 1; }; done
		t1=$(now_ns)
		check_block "$mode" "$BLOCK" "$before" || exit 1
		[ "$mode" = off ] || [ $(( $(shim_allow_lines) - before )) -eq "$BLOCK" ] ||
			{ echo "bench_exim: $(( $(shim_allow_lines) - before )) verified sessions logged, not $BLOCK" >&2; exit 1; }
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
		echo "$r $mode $secs" >> "$WORLD/odf"
		printf '#   round %2d %-3s  %d messages in %.3f s\n' "$r" "$mode" "$BLOCK" "$secs"
	done
done

# 2. exim -qff over a full queue
: > "$WORLD/qff"
for r in $(seq 1 "$QRUNS"); do
	order="off on"; [ $((r % 2)) -eq 0 ] && order="on off"
	for mode in $order; do
		set_mode "$mode"; e2e_reset
		touch "$WORLD/exim/sender/queue_only"
		for i in $(seq 1 "$QUEUE"); do send_odf user@good.test; done
		rm -f "$WORLD/exim/sender/queue_only"
		[ "$(queue_count)" -eq "$QUEUE" ] || { echo "bench_exim: $(queue_count) queued, not $QUEUE" >&2; exit 1; }
		before=$(shim_allow_lines)
		t0=$(now_ns); queue_run; t1=$(now_ns)
		check_block "$mode" "$QUEUE" "$before" || exit 1
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
		echo "$r $mode $secs" >> "$WORLD/qff"
		printf '#   queue run %d %-3s  %d messages in %.3f s, %d connection(s) logged by the shim\n' \
			"$r" "$mode" "$QUEUE" "$secs" $(( $(shim_allow_lines) - before ))
	done
done

# report LABEL FILE MESSAGES_PER_ROUND
report() {
	read -r off on added ci ratio lo hi n < <(paired_stats "$2" "$3")
	# throughput ratio = time off / time on; the +-2 SE interval maps through 1/x
	awk -v l="$1" -v off="$off" -v on="$on" -v added="$added" -v ci="$ci" -v n="$n" -v k="$3" 'BEGIN {
		if (n < 2) {
			printf "| %-34s | %4d | %7.2f | %7.2f | %7.1f | %7.1f | %+6.2f (1 round) | %.4f (1 round: no interval) |\n",
				l, n * k, off / 1000, on / 1000, 1e6 / off, 1e6 / on, added / 1000, off / on
			exit
		}
		printf "| %-34s | %4d | %7.2f | %7.2f | %7.1f | %7.1f | %+6.2f +- %5.2f | %.4f [%.4f, %.4f] |\n",
			l, n * k, off / 1000, on / 1000, 1e6 / off, 1e6 / on, added / 1000, ci / 1000,
			off / on, off / (off + added + ci), off / (off + added - ci) }'
}
echo
echo "| Exim, shim off vs on | messages each | off ms/msg | on ms/msg | off msg/s | on msg/s | added ms/msg +- 2 SE | throughput on/off [+- 2 SE] |"
echo "|---|---|---|---|---|---|---|---|"
report "exim -odf, one message per process" "$WORLD/odf" "$BLOCK"
report "exim -qff of a queue of $QUEUE" "$WORLD/qff" "$QUEUE"

# 3. cold: empty cache, the first message to cold.test waits for the detached fetch
shim_on; e2e_reset
t0=$(now_ns); send_odf user@cold.test; t1=$(now_ns)
wait_for 10 mbox_at_least good 1
if shim_log_since_has 'domain=cold.test .*policy=enforce result=success action=allow'; then
	awk -v t=$((t1 - t0)) 'BEGIN { printf "\nfirst message to cold.test, empty cache (fetch on the MX lookup, connect waits): %.1f ms\n", t / 1e6 }'
else
	echo "bench_exim: the cold message was not verified under an enforce policy" >&2
	shim_log_since >&2
	exit 1
fi
e2e_stop_exims
