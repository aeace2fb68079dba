#!/bin/bash
# bench_e2e.sh - end-to-end cost of the shim with a real Exim and with the OpenSSL test client, in
# the loopback world of the tests (tests/lib/world.sh, tests/e2e/lib-exim.sh). Needs root.
# Measures, without and with the shim loaded, for an enforce domain whose MX has a valid
# certificate (so both runs deliver over TLS and the difference is the shim's work):
#   - exim -odf, one message per run (fork/exec, setuid re-exec, routing, TLS, delivery), N runs;
#   - exim -qff over N queued messages (one process, connection reuse);
#   - smtpclient --count N (OpenSSL client, one session per message, no exec);
#   - the first delivery with an empty policy cache (discovery + fetch by the detached fetcher).
# Usage: bench/bench_e2e.sh [BUILD_DIR] [N]     (defaults: build, 50)
set -u
src=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ -z "${WORLD_INSIDE:-}" ]; then
	BUILD=$(cd "${1:-$src/build}" && pwd) || exit 1
	export BUILD BENCH_N=${2:-50}
fi
. "$src/tests/lib/world.sh"
world_enter "$@"
. "$src/tests/e2e/lib-exim.sh"
N=${BENCH_N:-50}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# stats LABEL FILE_OF_MS: count, mean, median, p90, max
stats() {
	sort -n "$2" | awk -v label="$1" '{ v[NR] = $1; s += $1 } END {
		if (NR == 0) { printf "| %-44s | no samples |\n", label; exit }
		printf "| %-44s | %4d | %7.1f | %7.1f | %7.1f | %7.1f |\n", label, NR, s / NR, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }'
}

world_pki
exim_world_init
world_cert mx.good.test
policy_domain good.test 127.0.0.31 enforce mx.good.test
policy_domain cold.test 127.0.0.32 enforce mx.good.test
dns_mx good.test mx.good.test 10
dns_mx cold.test mx.good.test 10
dns_host mx.good.test 127.0.0.11
{ world_dns_start "${DNS_ARGS[@]}" && policy_hosts_start &&
  exim_receiver good 127.0.0.11 --cert mx.good.test && exim_sender; } || { echo "bench: world did not start" >&2; exit 1; }
[ -f "$SHIM_LIB" ] || { echo "bench: $SHIM_LIB missing" >&2; exit 1; }
# warm the cache for good.test so that the steady-state runs measure the hot path
"$BUILD/mtasts" fetch good.test >/dev/null 2>&1 || echo "bench: mtasts fetch good.test failed" >&2

echo "# bench_e2e: N=$N, $(nproc) CPU(s), $(exim4 --version | head -n 1 | cut -d' ' -f1-3), $(uname -r)"
echo "| what (milliseconds per message unless said) | n | mean | median | p90 | max |"
echo "|---|---|---|---|---|---|"
for mode in off on; do
	if [ "$mode" = on ]; then shim_on || exit 1; else shim_off; fi
	e2e_reset
	f=$WORLD/odf-$mode.ms; : > "$f"
	for i in $(seq 1 "$N"); do
		t0=$(now_ms); send_odf user@good.test; t1=$(now_ms)
		echo $((t1 - t0)) >> "$f"
	done
	wait_for 30 mbox_at_least good "$N"
	[ "$(mbox_tls_count good)" -eq "$N" ] || echo "bench: only $(mbox_tls_count good)/$N delivered over TLS (shim $mode)" >&2
	stats "exim -odf, shim $mode" "$f"

	e2e_reset
	touch "$WORLD/exim/sender/queue_only"
	for i in $(seq 1 "$N"); do send_odf user@good.test; done
	rm -f "$WORLD/exim/sender/queue_only"
	t0=$(now_ms); queue_run; t1=$(now_ms)
	wait_for 30 mbox_at_least good "$N"
	[ "$(queue_count)" -eq 0 ] || echo "bench: queue not empty after -qff (shim $mode)" >&2
	awk -v t=$((t1 - t0)) -v n="$N" -v m="$mode" 'BEGIN { printf "| %-44s | %4d | %7.1f |  |  | total %d |\n", "exim -qff of N queued, shim " m, n, t / n, t }'

	e2e_reset
	t0=$(now_ms); run_mta "$SMTPCLIENT" --count "$N" user@good.test > "$WORLD/client-$mode.out" 2>&1; rc=$?; t1=$(now_ms)
	[ "$rc" -eq 0 ] || echo "bench: smtpclient rc=$rc (shim $mode)" >&2
	wait_for 30 mbox_at_least good "$N"
	awk -v t=$((t1 - t0)) -v n="$N" -v m="$mode" 'BEGIN { printf "| %-44s | %4d | %7.1f |  |  | total %d |\n", "smtpclient --count N (OpenSSL), shim " m, n, t / n, t }'
done

# cold: empty cache, the first message to cold.test waits for the detached fetch
shim_on
e2e_reset
rm -rf "$WORLD/cache/"* 2>/dev/null
t0=$(now_ms); send_odf user@cold.test; t1=$(now_ms)
wait_for 10 mbox_at_least good 1
echo "| first message, empty cache (fetch on MX lookup), shim on | 1 | $((t1 - t0)) |  |  |  |"
e2e_stop_exims
