#!/bin/bash
# test-openssl-client.sh - the shim's OpenSSL path and its inertness. Scenarios of issue 3:
#  10. tests/helpers/smtpclient.c, a small opportunistic MTA (res_search MX lookup, plain
#      non-blocking connect, STARTTLS with SSL_connect and no verification, retry in clear after a
#      failed handshake), under the shim: the same verdicts as Exim for scenarios 1-4;
#  11. the shim preloaded into programs that are not MTAs (ls, curl, python3 sending SMTP in
#      clear to an enforce domain's MX): no change in behaviour, nothing logged.
# Each scenario runs as the CONTROL (no shim) first, which must show the violation, then with the
# shim. The zone is the one of test-exim-enforce.sh (enforce_zone in lib-exim.sh).
. "$(dirname "$(readlink -f "$0")")/../lib/world.sh"
world_enter "$@"
. "$(dirname "$(readlink -f "$0")")/lib-exim.sh"

world_pki
exim_world_init
enforce_zone || { not_ok "the world starts"; e2e_done; }
[ -x "$SMTPCLIENT" ] || { not_ok "smtpclient is built ($SMTPCLIENT)"; e2e_done; }

# client RCPT: run smtpclient (under the shim when it is on); sets CLIENT_RC and CLIENT_OUT
client() {
	CLIENT_OUT=$(run_mta "$SMTPCLIENT" --timeout 5 "$1" 2>&1)
	CLIENT_RC=$?
	printf '%s\n' "$CLIENT_OUT" | sed 's/^/#   /'
}

# c_good MODE DOMAIN RECV RESULT: delivered over TLS to RECV
c_good() {
	local m=$1 d=$2 r=$3
	scenario "10 [$m] smtpclient -> $d (delivered over TLS to $r)"
	e2e_reset
	client "user@$d"
	check_eq "s10 $m $d: smtpclient exit status" 0 "$CLIENT_RC"
	wait_for 5 mbox_at_least "$r" 1
	check_eq "s10 $m $d: in $r's mailbox over TLS" 1 "$(mbox_tls_count "$r")"
	check_eq "s10 $m $d: nothing reached $r in clear" 0 "$(recv_clear_cmds "$r")"
	[ "$m" = control ] || expect_shim_log "s10 $m $d" "mtasts: domain=${d//./\\.} .*policy=enforce result=success action=allow"
	scenario_end
}

# c_bad MODE DOMAIN RECV RESULT [proxy]: control: delivered to RECV (the violation);
# shim: temporary failure, RECV accepted nothing, no transaction command reached it in clear
c_bad() {
	local m=$1 d=$2 r=$3 result=$4 proxy=${5:-}
	scenario "10 [$m] smtpclient -> $d ($result)"
	e2e_reset
	client "user@$d"
	if [ "$m" = control ]; then
		check_eq "s10 control $d: smtpclient delivered (the violation)" 0 "$CLIENT_RC"
		wait_for 5 mbox_at_least "$r" 1
		check_eq "s10 control $d: in $r's mailbox" 1 "$(mbox_count "$r")"
		[ -z "$proxy" ] || check_ge "s10 control $d: MAIL FROM passed the proxy in clear" 1 "$(proxy_clear_mail "$proxy")"
	else
		check_eq "s10 shim $d: smtpclient gets a temporary failure (75)" 75 "$CLIENT_RC"
		check_eq "s10 shim $d: $r accepted nothing" 0 "$(recv_accepted "$r")"
		check_eq "s10 shim $d: no transaction command reached $r in clear" 0 "$(recv_clear_cmds "$r")"
		[ -z "$proxy" ] || check_eq "s10 shim $d: no MAIL FROM passed the proxy" 0 "$(proxy_clear_mail "$proxy")"
		expect_shim_log "s10 shim $d" "mtasts: domain=${d//./\\.} .*policy=enforce result=$result action=block"
	fi
	scenario_end
}

# c_twomx MODE: first MX outside the policy, second allowed
c_twomx() {
	local m=$1
	scenario "10 [$m] smtpclient -> twomx.test"
	e2e_reset
	client user@twomx.test
	check_eq "s10 $m twomx.test: smtpclient exit status" 0 "$CLIENT_RC"
	if [ "$m" = control ]; then
		wait_for 5 mbox_at_least rogue 1
		check_eq "s10 control twomx.test: delivered to the MX outside the policy (the violation)" 1 "$(mbox_count rogue)"
	else
		wait_for 5 mbox_at_least allowed 1
		check_eq "s10 shim twomx.test: delivered to the allowed MX over TLS" 1 "$(mbox_tls_count allowed)"
		check_eq "s10 shim twomx.test: the disallowed MX accepted nothing" 0 "$(recv_accepted rogue)"
		check_eq "s10 shim twomx.test: the disallowed MX saw no connection" 0 "$(recv_connections rogue)"
	fi
	scenario_end
}

s10() {
	local m=$1
	c_good "$m" good.test good
	c_bad "$m" untrusted.test untrusted certificate-not-trusted
	c_bad "$m" wrongname.test wrongname certificate-host-mismatch
	c_bad "$m" expired.test expired certificate-expired
	c_bad "$m" notallowed.test rogue validation-failure
	c_twomx "$m"
	c_bad "$m" notls.test notls starttls-not-supported
	c_bad "$m" stripped.test behindproxy starttls-not-supported 127.0.0.18
}

# 11. not an MTA: ls, curl, python3 behave the same with the shim preloaded
S11_OUT=()
s11_run() {
	local m=$1 out
	scenario "11 [$m] programs that are not MTAs"
	e2e_reset
	out=$(run_mta ls -l "$WORLD/pki" 2>&1; echo "rc=$?")
	S11_OUT+=("$out")
	out=$(run_mta curl -sS --cacert "$WORLD/pki/ca.pem" https://mta-sts.good.test/.well-known/mta-sts.txt 2>&1; echo "rc=$?")
	S11_OUT+=("$out")
	# python3 speaks SMTP in clear to the MX of an enforce domain: not an MTA, so not enforced
	out=$(run_mta "$PY" - <<-'PY' 2>&1; echo "rc=$?"
	import smtplib, socket
	s = smtplib.SMTP("mx.notls.test", 25, local_hostname="py.test", timeout=5)
	print(s.sendmail("py@py.test", ["user@notls.test"], "Subject: python\r\n\r\nhi\r\n"))
	s.quit()
	PY
	)
	S11_OUT+=("$out")
	wait_for 5 mbox_at_least notls 1
	check_eq "s11 $m: python3 delivered in clear to the enforce domain's MX" 1 "$(mbox_clear_count notls)"
	check_eq "s11 $m: ls and curl succeeded" "rc=0 rc=0" "$(printf '%s\n' "${S11_OUT[@]: -3:2}" | grep -o 'rc=[0-9]*$' | tr '\n' ' ' | sed 's/ $//')"
	[ "$m" = control ] || check_eq "s11 shim: the shim logged nothing for non-MTA programs" "" "$(shim_log_since)"
	scenario_end
}

echo "# CONTROL: the shim is not loaded"
shim_off
s10 control
s11_run control
echo "# SHIM: the shim is loaded"
if shim_on; then
	s10 shim
	s11_run shim
	check_eq "s11: ls output identical with and without the shim" "${S11_OUT[0]}" "${S11_OUT[3]}"
	check_eq "s11: curl output identical with and without the shim" "${S11_OUT[1]}" "${S11_OUT[4]}"
	check_eq "s11: python3 output identical with and without the shim" "${S11_OUT[2]}" "${S11_OUT[5]}"
else
	not_ok "the shim is built ($SHIM_LIB)"
fi
e2e_done
