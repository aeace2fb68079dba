#!/bin/bash
# test-exim-enforce.sh - a real Exim (Debian's exim4-daemon-light, GnuTLS, TLS options at their
# defaults) sending to `enforce` domains, with and without the shim. Scenarios of issue 3:
#   1. enforce, valid certificate, MX in policy: delivered over TLS;
#   2. enforce, untrusted certificate / wrong name / expired: deferred, queued, nothing in clear;
#   3. enforce, MX not allowed by the policy: deferred; with a second, allowed MX: delivered there
#      and only there;
#   4. enforce, receiver without STARTTLS, and a STARTTLS-stripping proxy in front of a good
#      receiver: deferred;
#   7. recovery: fix the certificate, run the queue: delivered exactly once, over TLS;
#   and: the shim loaded into Exim while Exim is not in `programs` stays inert (the violation
#   comes back), which shows the shim-side assertions depend on the shim doing its work.
# Every scenario first runs as the CONTROL (shim not loaded) and checks that the control shows the
# violation (delivered to the bad host / in clear), then runs with the shim loaded (exim -odf: the
# setuid re-exec) and checks the enforced outcome and the shim's log line.
. "$(dirname "$(readlink -f "$0")")/../lib/world.sh"
world_enter "$@"
. "$(dirname "$(readlink -f "$0")")/lib-exim.sh"

# --- the world -----------------------------------------------------------------------------------
world_pki
exim_world_init
enforce_zone || { not_ok "the world starts"; e2e_done; }

# --- scenarios -----------------------------------------------------------------------------------

# 1. enforce, valid certificate, MX in policy
s1() {
	scenario "1 [$1] enforce, valid certificate, MX in policy"
	e2e_reset
	send_odf user@good.test
	expect_delivered_tls "s1 $1" good 1
	if [ "$1" = control ]; then
		expect_no_shim_log "s1 control"
	else
		expect_shim_log "s1 shim" "mtasts: domain=good\.test mx=mx\.good\.test ip=127\.0\.0\.11 policy=enforce result=success action=allow"
	fi
	scenario_end
}

# 2. enforce, bad certificate: RECV DOMAIN RESULT
s2() {
	local mode=$1 r=$2 d=$3 result=$4
	scenario "2 [$mode] enforce, $r certificate ($d)"
	e2e_reset
	send_odf "user@$d"
	if [ "$mode" = control ]; then
		# the violation the shim must prevent: Exim delivers to a host whose certificate fails
		wait_for 5 mbox_at_least "$r" 1
		check_eq "s2 control $d: delivered to the bad-certificate host (the violation)" 1 "$(mbox_count "$r")"
		check_eq "s2 control $d: queue empty" 0 "$(queue_count)"
	else
		expect_deferred "s2 shim $d" 1 "$r"
		expect_shim_log "s2 shim $d" "mtasts: domain=${d//./\\.} mx=mx\.${d//./\\.} ip=[0-9.]+ policy=enforce result=$result action=block"
		check "s2 shim $d: a TLS-RPT style JSON record in report_dir" \
			grep -q "\"domain\":\"$d\".*\"action\":\"block\"" $WORLD/reports/*.jsonl
		check "s2 shim $d: Exim saw a TLS failure or a refused cleartext retry" \
			grep -Eq "$d.*(defer|TLS|Connection reset|Connection refused)" "$(sender_log)"
	fi
	scenario_end
}

# 3a. enforce, the only MX is not allowed by the policy
s3a() {
	scenario "3a [$1] enforce, the MX is not allowed by the policy"
	e2e_reset
	send_odf user@notallowed.test
	if [ "$1" = control ]; then
		wait_for 5 mbox_at_least rogue 1
		check_eq "s3a control: delivered to the MX outside the policy (the violation)" 1 "$(mbox_count rogue)"
		check_eq "s3a control: the sender considers it delivered (queue empty)" 0 "$(queue_count)"
	else
		expect_deferred "s3a shim" 1 rogue
		check_eq "s3a shim: the disallowed MX saw no connection" 0 "$(recv_connections rogue)"
		expect_shim_log "s3a shim" "mtasts: domain=notallowed\.test mx=rogue\.notallowed\.test ip=127\.0\.0\.15 policy=enforce result=validation-failure action=block reason=mx-mismatch"
	fi
	scenario_end
}

# 3b. enforce, preferred MX not allowed, second MX allowed
s3b() {
	scenario "3b [$1] enforce, first MX not allowed, second MX allowed"
	e2e_reset
	send_odf user@twomx.test
	if [ "$1" = control ]; then
		wait_for 5 mbox_at_least rogue 1
		check_eq "s3b control: delivered to the preferred MX outside the policy (the violation)" 1 "$(mbox_count rogue)"
		check_eq "s3b control: nothing at the allowed MX" 0 "$(mbox_count allowed)"
		check_eq "s3b control: the sender considers it delivered (queue empty)" 0 "$(queue_count)"
	else
		expect_delivered_tls "s3b shim" allowed 1
		check_eq "s3b shim: the disallowed MX accepted nothing" 0 "$(recv_accepted rogue)"
		check_eq "s3b shim: no transaction command reached the disallowed MX" 0 "$(( $(recv_clear_cmds rogue) + $(recv_tls_cmds rogue) ))"
		expect_shim_log "s3b shim" "mtasts: domain=twomx\.test mx=rogue\.twomx\.test ip=127\.0\.0\.15 policy=enforce result=validation-failure action=block"
		expect_shim_log "s3b shim" "mtasts: domain=twomx\.test mx=mx2\.twomx\.test ip=127\.0\.0\.16 policy=enforce result=success action=allow"
	fi
	scenario_end
}

# 4a. enforce, receiver without STARTTLS
s4a() {
	scenario "4a [$1] enforce, receiver without STARTTLS"
	e2e_reset
	send_odf user@notls.test
	if [ "$1" = control ]; then
		wait_for 5 mbox_at_least notls 1
		check_eq "s4a control: delivered in clear (the violation)" 1 "$(mbox_clear_count notls)"
		check_eq "s4a control: the sender considers it delivered (queue empty)" 0 "$(queue_count)"
		check_ge "s4a control: the receiver saw transaction commands in clear" 1 "$(recv_clear_cmds notls)"
	else
		expect_deferred "s4a shim" 1 notls
		expect_shim_log "s4a shim" "mtasts: domain=notls\.test mx=mx\.notls\.test ip=127\.0\.0\.17 policy=enforce result=starttls-not-supported action=block"
	fi
	scenario_end
}

# 4b. enforce, a STARTTLS-stripping proxy in front of a good receiver
s4b() {
	scenario "4b [$1] enforce, STARTTLS-stripping proxy in front of a good receiver"
	e2e_reset
	send_odf user@stripped.test
	if [ "$1" = control ]; then
		wait_for 5 mbox_at_least behindproxy 1
		check_eq "s4b control: delivered in clear through the proxy (the violation)" 1 "$(mbox_clear_count behindproxy)"
		check_eq "s4b control: the sender considers it delivered (queue empty)" 0 "$(queue_count)"
		check_ge "s4b control: MAIL FROM passed the proxy in clear" 1 "$(proxy_clear_mail 127.0.0.18)"
	else
		expect_deferred "s4b shim" 1 behindproxy
		check_eq "s4b shim: no MAIL FROM passed the proxy" 0 "$(proxy_clear_mail 127.0.0.18)"
		expect_shim_log "s4b shim" "mtasts: domain=stripped\.test mx=mx\.stripped\.test ip=127\.0\.0\.18 policy=enforce result=starttls-not-supported action=block"
	fi
	scenario_end
}

# 7. recovery: a message deferred by the shim is delivered once the certificate is fixed
s7() {
	scenario "7 [shim] recovery: fix the certificate, run the queue"
	e2e_reset
	send_odf user@untrusted.test
	expect_deferred "s7 before the fix" 1 untrusted
	exim_receiver_restart untrusted 127.0.0.12 --cert mx.untrusted.test.fixed
	queue_run
	expect_delivered_tls "s7 after the fix" untrusted 1
	queue_run
	sleep 0.2
	check_eq "s7: delivered exactly once after a second queue run" 1 "$(mbox_count untrusted)"
	expect_shim_log "s7" "mtasts: domain=untrusted\.test mx=mx\.untrusted\.test ip=127\.0\.0\.12 policy=enforce result=success action=allow"
	exim_receiver_restart untrusted 127.0.0.12 --cert mx.untrusted.test
	scenario_end
}

# the shim loaded into Exim, but Exim is not in `programs`: inert, so the violation comes back
# (shows that the shim-side assertions above depend on the shim doing its work)
s_inert() {
	scenario "inert [shim loaded, programs = smtpclient] enforce, untrusted certificate"
	mtasts_conf "programs=smtpclient"
	e2e_reset
	send_odf user@untrusted.test
	wait_for 5 mbox_at_least untrusted 1
	check_eq "inert: delivered to the bad-certificate host as in the control" 1 "$(mbox_count untrusted)"
	check_eq "inert: the shim logged nothing" "" "$(shim_log_since)"
	mtasts_conf
	scenario_end
}

all_scenarios() {
	local m=$1
	s1 "$m"
	s2 "$m" untrusted untrusted.test certificate-not-trusted
	s2 "$m" wrongname wrongname.test certificate-host-mismatch
	s2 "$m" expired expired.test certificate-expired
	s3a "$m"
	s3b "$m"
	s4a "$m"
	s4b "$m"
}

echo "# CONTROL: the shim is not loaded"
shim_off
all_scenarios control
echo "# SHIM: the shim is loaded (setuid copy in the trusted directory, LD_PRELOAD by bare name)"
if shim_on; then
	all_scenarios shim
	s7
	s_inert
else
	not_ok "the shim is built ($SHIM_LIB)"
fi
e2e_done
