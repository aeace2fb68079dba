#!/bin/bash
# lib-bench.sh - what the shim benchmarks (bench_shim.sh, bench_exim.sh, bench_memory.sh) share:
# the loopback world they measure in, and small statistics helpers. Sourced after
# tests/lib/world.sh (world_enter done) and tests/e2e/lib-exim.sh.
#
# The world (bench_world):
#   good.test  enforce, mx: mx.good.test; MX mx.good.test -> 127.0.0.11, a receiving Exim with a
#              certificate for mx.good.test from the world CA: every session verifies and passes.
#   cold.test  same MX and policy, left out of the cache (the first-message-cold measurement).
#   dec.test   enforce, mx: mx.dec.test; MX mx.dec.test -> 127.0.0.12 (bench_decision listens
#              there itself).
#   bad.test   enforce, mx: mx.other.test; MX mx.bad.test -> 127.0.0.13: the shim refuses the
#              connect (the proof that the shim is deciding in a process).
# Policies of good.test, dec.test and bad.test are fetched into the cache before measuring (the
# hot path is a warm cache). The shim's settings are lib-exim.sh's (log to $WORLD/mtasts.log, JSON
# reports in $WORLD/reports), with bench_decision added to `programs`.

# bench_quickack: no delayed ACKs on loopback in this namespace (route metric quickack). Call it
# first, before any connection. smtpclient does not set TCP_NODELAY: without this its small writes
# after the TLS handshake wait for the receiver's delayed ACK (the 40 ms minimum) and that stall,
# not the work, would be 80% of every session and hide what the shim adds.
bench_quickack() {
	ip route change local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1 &&
	ip route change local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1
}

# bench_world: set up and start all of the above; 1 on failure
bench_world() {
	bench_quickack || { echo "bench: cannot set quickack on the loopback routes" >&2; return 1; }
	world_pki || return 1
	exim_world_init || return 1
	mtasts_conf programs="exim4 exim smtpclient bench_decision"
	world_cert mx.good.test || return 1
	policy_domain good.test 127.0.0.31 enforce mx.good.test || return 1
	policy_domain cold.test 127.0.0.32 enforce mx.good.test || return 1
	policy_domain dec.test 127.0.0.33 enforce mx.dec.test || return 1
	policy_domain bad.test 127.0.0.34 enforce mx.other.test || return 1
	dns_mx good.test mx.good.test 10
	dns_mx cold.test mx.good.test 10
	dns_mx dec.test mx.dec.test 10
	dns_mx bad.test mx.bad.test 10
	dns_host mx.good.test 127.0.0.11
	dns_host mx.dec.test 127.0.0.12
	dns_host mx.bad.test 127.0.0.13
	# a script may declare more (dns_mx, dns_host, policy_domain) in bench_world_extra
	if declare -F bench_world_extra > /dev/null; then bench_world_extra || return 1; fi
	world_dns_start "${DNS_ARGS[@]}" || return 1
	policy_hosts_start || return 1
	exim_receiver good 127.0.0.11 --cert mx.good.test || return 1
	exim_sender || return 1
	[ -f "$SHIM_LIB" ] || { echo "bench: $SHIM_LIB missing (run make)" >&2; return 1; }
	local d
	for d in good.test dec.test bad.test; do
		"$BUILD/mtasts" fetch "$d" > "$WORLD/fetch-$d.out" 2>&1 ||
			{ echo "bench: mtasts fetch $d failed:" >&2; cat "$WORLD/fetch-$d.out" >&2; return 1; }
	done
}

# bench_header NAME: one line saying where and on what the figures were measured
bench_header() {
	echo "# $1: $(nproc) CPU(s), load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)," \
		"shim $(stat -c '%y' "$SHIM_LIB" | cut -d. -f1)"
}

now_ns() { date +%s%N; }

# shim_log_lines: lines in the shim's log (one per session)
shim_log_lines() { wc -l < "$WORLD/mtasts.log"; }
# shim_allow_lines: of those, verified enforce sessions that were allowed
shim_allow_lines() { grep -c 'policy=enforce result=success action=allow' "$WORLD/mtasts.log"; }

# ratio_stats FILE: FILE has lines "round mode value" (mode off|on); prints
# "sum_off sum_on ratio median_round_ratio min_round_ratio max_round_ratio rounds"
ratio_stats() {
	awk '{ v[$1, $2] = $3; r[$1] = 1; if ($2 == "off") off += $3; else on += $3 }
	END {
		n = 0
		for (k in r) if (v[k, "off"] > 0) q[++n] = v[k, "on"] / v[k, "off"]
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
		med = n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
		printf "%.6f %.6f %.4f %.4f %.4f %.4f %d\n", off, on, on / off, med, q[1], q[n], n
	}' "$1"
}

# paired_stats FILE SESSIONS_PER_ROUND: FILE as for ratio_stats (values in seconds per block);
# prints "off_us on_us added_us ci_us ratio ratio_lo ratio_hi rounds": per-session means, the mean
# per-session difference of the paired rounds with 2 standard errors (ci_us), the ratio of the
# sums and the ratio with the difference at -2 and +2 standard errors
paired_stats() {
	awk -v k="$2" '{ v[$1, $2] = $3; r[$1] = 1 }
	END {
		for (x in r) if ((x, "off") in v && (x, "on") in v) {
			n++; off += v[x, "off"]; on += v[x, "on"]
			d[n] = (v[x, "on"] - v[x, "off"]) / k * 1e6; sd += d[n]
		}
		m = sd / n; for (i = 1; i <= n; i++) ss += (d[i] - m) ^ 2
		se = n > 1 ? sqrt(ss / (n - 1) / n) : 0
		offu = off / n / k * 1e6; onu = on / n / k * 1e6
		printf "%.1f %.1f %.1f %.1f %.4f %.4f %.4f %d\n", offu, onu, m, 2 * se, onu / offu,
			1 + (m - 2 * se) / offu, 1 + (m + 2 * se) / offu, n
	}' "$1"
}

# rss_of PID: "VmRSS RssAnon RssFile VmHWM" in KiB from /proc/PID/status (empty when gone)
rss_of() {
	awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^VmHWM:/ { h = $2 }
	     END { if (r != "") print r, a, f, h }' "/proc/$1/status" 2>/dev/null
}
