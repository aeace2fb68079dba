#!/bin/bash
# bench_memory.sh - the shim's memory cost, in the loopback world of the tests
# (bench/lib-bench.sh). Needs root.
#
# 1. RSS of Exim's delivery processes with and without the shim. A receiver on 127.0.0.14 (MX of
#    slow.test, enforce, valid certificate) holds every message for RECV_DELAY seconds in its
#    DATA ACL: while it waits, the sending transport has done everything the shim does for a
#    session (DNS observation, connect decision, TLS verification, write guard), and the script
#    reads /proc/PID/status and smaps_rollup of every process of the sending Exim
#    (exim -odf, its set-user-ID re-exec that delivers, the transport child it forks).
#    MEM_RUNS runs of each, alternating; the medians are printed.
# 2. No growth: one smtpclient process doing MEM_SESSIONS (+100) TLS sessions to good.test under
#    the shim; its RSS is read (while it runs: SIGSTOP would make its recv() with SO_RCVTIMEO fail
#    with EINTR) as soon as its output shows 10, 100, 500, 1000 sessions done (the count printed is
#    the one seen just before the read). The same without the shim, for reference.
# 3. valgrind --leak-check=full over VALGRIND_SESSIONS sessions of smtpclient under the shim:
#    memcheck errors, definite leaks, and any leak record with the shim in its stack.
#
# Usage: bench/bench_memory.sh [BUILD_DIR]
# Environment: MEM_RUNS (3), MEM_SESSIONS (1000), VALGRIND_SESSIONS (50), RECV_DELAY (2).
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
RUNS=${MEM_RUNS:-3}
SESSIONS=${MEM_SESSIONS:-1000}
VG_SESSIONS=${VALGRIND_SESSIONS:-50}
DELAY=${RECV_DELAY:-2}
FAIL=0

bench_world_extra() {
	world_cert mx.slow.test || return 1
	policy_domain slow.test 127.0.0.35 enforce mx.slow.test || return 1
	dns_mx slow.test mx.slow.test 10
	dns_host mx.slow.test 127.0.0.14
}
bench_world || { echo "bench_memory: world did not start" >&2; exit 1; }
"$BUILD/mtasts" fetch slow.test > "$WORLD/fetch-slow.out" 2>&1 || { echo "bench_memory: fetch slow.test failed" >&2; exit 1; }

# the receiver of slow.test holds each message DELAY seconds in its DATA ACL
slow_receiver() { exim_receiver slow 127.0.0.14 --cert mx.slow.test --data-delay "$DELAY"; }
slow_receiver || { echo "bench_memory: slow receiver did not start" >&2; exit 1; }
shim_on || exit 1
shim_off

slow_log() { echo "$WORLD/exim/recv-slow/log/mainlog"; }
slow_waiting() { [ "$(count_in "$(slow_log)" SLOWDATA)" -gt "$1" ]; }

# snapshot MODE RUN: one message to slow.test; while the receiver holds it, one line per process
# of the sending Exim: "MODE RUN ROLE VmRSS RssAnon RssFile VmHWM Pss" (KiB)
snapshot() {
	local mode=$1 run=$2 seen pid ppid cmd role pss
	seen=$(count_in "$(slow_log)" SLOWDATA)
	send_odf user@slow.test &
	local sender=$!
	if ! wait_for 10 slow_waiting "$seen"; then
		echo "bench_memory: the message did not reach the slow receiver's DATA ACL" >&2
		wait "$sender"; return 1
	fi
	for pid in $(pgrep -f -- "-C $SENDER_CONF"); do
		cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || continue
		ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
		case $cmd in
		*-odf*) role=submit-odf ;;
		*-Mc*)
			if tr '\0' ' ' < "/proc/$ppid/cmdline" 2>/dev/null | grep -q -- '-Mc'; then
				role=transport-child
			else
				role=delivery-Mc
			fi ;;
		*) role=other ;;
		esac
		pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
		echo "$mode $run $role $(rss_of "$pid") ${pss:-0}"
	done
	wait "$sender"
}

bench_header bench_memory
echo "# 1. RSS of the sending Exim's processes while the receiver holds the message ($RUNS runs each)"
: > "$WORLD/rss"
for r in $(seq 1 "$RUNS"); do
	order="off on"; [ $((r % 2)) -eq 0 ] && order="on off"
	for mode in $order; do
		if [ "$mode" = on ]; then shim_on; else shim_off; fi
		snapshot "$mode" "$r" >> "$WORLD/rss" || exit 1
	done
done
[ "$(grep -c '^on .* transport-child ' "$WORLD/rss")" -eq "$RUNS" ] ||
	{ echo "bench_memory: transport process not found in every run" >&2; cat "$WORLD/rss" >&2; exit 1; }
grep -q 'domain=slow.test .*policy=enforce result=success action=allow' "$WORLD/mtasts.log" ||
	{ echo "bench_memory: the shim did not verify the slow.test sessions" >&2; exit 1; }
echo "| process (median KiB) | VmRSS off | VmRSS on | added | RssAnon off | RssAnon on | added | RssFile added | Pss off | Pss on | added |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for role in submit-odf delivery-Mc transport-child; do
	awk -v role="$role" '
	function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	$3 == role { m = $1; n[m]++; rss[m, n[m]] = $4; anon[m, n[m]] = $5; file[m, n[m]] = $6; pss[m, n[m]] = $8 }
	END {
		if (!n["off"] || !n["on"]) { printf "| %s | not seen |\n", role; exit }
		for (k in n) { for (i = 1; i <= n[k]; i++) { a[i] = rss[k, i] } R[k] = med(a, n[k])
			for (i = 1; i <= n[k]; i++) { a[i] = anon[k, i] } A[k] = med(a, n[k])
			for (i = 1; i <= n[k]; i++) { a[i] = file[k, i] } F[k] = med(a, n[k])
			for (i = 1; i <= n[k]; i++) { a[i] = pss[k, i] } P[k] = med(a, n[k]) }
		printf "| %-15s | %6d | %6d | %+6d | %6d | %6d | %+6d | %+6d | %6d | %6d | %+6d |\n", role,
			R["off"], R["on"], R["on"] - R["off"], A["off"], A["on"], A["on"] - A["off"], F["on"] - F["off"],
			P["off"], P["on"], P["on"] - P["off"] }' "$WORLD/rss"
done

# 2. growth over many sessions in one process
delivered_lines() { count_in "$1" ' delivered$'; }
# growth MODE: smtpclient --count SESSIONS+100, RSS read at about 10, 100, 500, 1000 (scaled) sessions
growth() {
	local mode=$1 pre=() out=$WORLD/growth-$1.out pid at n
	[ "$mode" = on ] && pre=(env "LD_PRELOAD=$SHIM_LIB")
	: > "$out"
	"${pre[@]}" "$SMTPCLIENT" --count $((SESSIONS + 100)) user@good.test > "$out" 2>&1 &
	pid=$!
	# env execs smtpclient: $! is smtpclient itself
	for at in 10 $((SESSIONS / 10)) $((SESSIONS / 2)) "$SESSIONS"; do
		while n=$(delivered_lines "$out"); [ "$n" -lt "$at" ]; do
			kill -0 "$pid" 2>/dev/null || { echo "bench_memory: smtpclient ended early" >&2; tail -n 3 "$out" >&2; return 1; }
			sleep 0.005
		done
		echo "$mode $n $(rss_of "$pid")"
	done
	wait "$pid" || { echo "bench_memory: smtpclient failed ($mode)" >&2; return 1; }
}
echo
echo "# 2. one smtpclient process, $SESSIONS+ TLS sessions to good.test: RSS after about 10, $((SESSIONS / 10)), $((SESSIONS / 2)), $SESSIONS sessions"
growth on > "$WORLD/growth" || exit 1
growth off >> "$WORLD/growth" || exit 1
echo "| shim | sessions | VmRSS KiB | RssAnon KiB | RssFile KiB | VmHWM KiB |"
echo "|---|---|---|---|---|---|"
awk '{ printf "| %s | %d | %d | %d | %d | %d |\n", $1, $2, $3, $4, $5, $6 }' "$WORLD/growth"
# RssAnon growth (KiB) from the second sample to the last, and from the third to the last. The
# client itself (OpenSSL, malloc) grows for a few hundred sessions, with or without the shim, so
# what is the shim's is the difference: allowed 64 KiB (malloc arenas move a little).
read -r g_on g_off h_on h_off < <(awk '{ v[NR] = $4 } END { print v[4] - v[2], v[8] - v[6], v[4] - v[3], v[8] - v[7] }' "$WORLD/growth")
echo "RssAnon growth from about $((SESSIONS / 10)) to $SESSIONS sessions: shim on ${g_on} KiB, off ${g_off} KiB" \
	"(the shim's share $((g_on - g_off)) KiB); from $((SESSIONS / 2)) to $SESSIONS: on ${h_on} KiB, off ${h_off} KiB"
if [ $((g_on - g_off)) -gt 64 ] || [ $((h_on - h_off)) -gt 64 ]; then
	echo "bench_memory: RSS grows under the shim more than without it" >&2
	FAIL=1
fi

# 3. valgrind
echo
echo "# 3. valgrind --leak-check=full, smtpclient --count $VG_SESSIONS under the shim"
vg=$WORLD/valgrind.log
before=$(shim_allow_lines)
LD_PRELOAD=$SHIM_LIB valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite --num-callers=40 --log-file="$vg" \
	"$SMTPCLIENT" --count "$VG_SESSIONS" --timeout 60 user@good.test > "$WORLD/vg-client.out" 2>&1
rc=$?
logged=$(( $(shim_allow_lines) - before ))
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable' "$vg" | sed 's/^==[0-9]*== */  /'
shim_records=$(awk '/^==[0-9]+== *$/ { if (rec ~ /libmtasts-shim/ && rec ~ /(definitely|indirectly|possibly) lost|Invalid|uninitialised|Mismatched/) n++; rec = ""; next } { rec = rec $0 "\n" } END { print n + 0 }' "$vg")
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$vg" | tail -n 1)
echo "smtpclient exit $rc, $logged of $VG_SESSIONS sessions verified by the shim under valgrind," \
	"${errors:-?} errors, $shim_records error/leak record(s) with the shim in the stack"
if [ "$rc" -ne 0 ] || [ "$logged" -ne "$VG_SESSIONS" ] || [ "${errors:-1}" -ne 0 ] || [ "$shim_records" -ne 0 ]; then
	echo "bench_memory: valgrind run not clean, see below" >&2
	sed 's/^==[0-9]*== //' "$vg" | grep -v '^$' | tail -n 60 >&2
	FAIL=1
fi
e2e_stop_exims
exit "$FAIL"
