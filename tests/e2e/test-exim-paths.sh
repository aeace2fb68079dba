#!/bin/bash
# test-exim-paths.sh - a real Exim's delivery paths and IPv6. Scenarios of issue 3:
#   8. both delivery paths: `exim -odf` (the secure-mode re-exec) and a daemon (`-bd -qq1s`)
#      receiving by SMTP and delivering in re-exec'd queue runners; several messages to one host
#      (connection reuse: Exim hands the open connection to a new process with -MC);
#  12. MX hosts reachable only over IPv6 (fd00::/8 addresses on lo inside the namespace): the same
#      verdicts as over IPv4; and one domain whose policy host too is reachable only over IPv6.
# Every scenario runs as the CONTROL (no shim) first, then with the shim.
. "$(dirname "$(readlink -f "$0")")/../lib/world.sh"
world_enter "$@"
. "$(dirname "$(readlink -f "$0")")/lib-exim.sh"

world_pki
exim_world_init
world_cert mx.p8good.test
world_cert mx.p8bad.test --ca evil
world_cert mx.v6good.test
world_cert mx.v6bad.test --ca evil --san DNS:mx.v6bad.test,DNS:mx.v6pol.test

policy_domain p8good.test 127.0.0.31 enforce mx.p8good.test
policy_domain p8bad.test 127.0.0.32 enforce mx.p8bad.test
policy_domain v6good.test 127.0.0.33 enforce mx.v6good.test
policy_domain v6bad.test 127.0.0.34 enforce mx.v6bad.test
policy_domain v6notls.test 127.0.0.35 enforce mx.v6notls.test
# v6pol.test: its policy host too is reachable only over IPv6
policy_domain v6pol.test fd00::31 enforce mx.v6pol.test
dns_mx p8good.test mx.p8good.test 10;    dns_host mx.p8good.test 127.0.0.51
dns_mx p8bad.test mx.p8bad.test 10;      dns_host mx.p8bad.test 127.0.0.52
dns_mx v6good.test mx.v6good.test 10;    dns_host mx.v6good.test fd00::61
dns_mx v6bad.test mx.v6bad.test 10;      dns_host mx.v6bad.test fd00::62
dns_mx v6notls.test mx.v6notls.test 10;  dns_host mx.v6notls.test fd00::63
dns_mx v6pol.test mx.v6pol.test 10;      dns_host mx.v6pol.test fd00::62

{ world_dns_start "${DNS_ARGS[@]}" && policy_hosts_start &&
  exim_receiver p8good 127.0.0.51 --cert mx.p8good.test &&
  exim_receiver p8bad 127.0.0.52 --cert mx.p8bad.test &&
  exim_receiver v6good fd00::61 --cert mx.v6good.test &&
  exim_receiver v6bad fd00::62 --cert mx.v6bad.test &&
  exim_receiver v6notls fd00::63 --notls &&
  exim_sender; } || { not_ok "the world starts"; e2e_done; }

deferrals_for() { count_in "$(sender_log)" " == user[0-9]*@$1 "; }
deferrals_at_least() { [ "$(deferrals_for "$1")" -ge "$2" ]; }

s8() {
	local m=$1 conns
	scenario "8 [$m] exim -odf and a daemon (-bd -qq1s) with connection reuse"
	e2e_reset
	send_odf user@p8good.test
	wait_for 5 mbox_at_least p8good 1
	check_eq "s8 $m -odf p8good.test: delivered over TLS" 1 "$(mbox_tls_count p8good)"
	send_odf user@p8bad.test
	if [ "$m" = control ]; then
		wait_for 5 mbox_at_least p8bad 1
		check_eq "s8 control -odf p8bad.test: delivered to the bad-certificate host (the violation)" 1 "$(mbox_count p8bad)"
	else
		expect_deferred "s8 shim -odf p8bad.test" 1 p8bad
	fi

	e2e_reset
	sender_daemon_start || not_ok "s8 $m: the sender daemon starts"
	send_daemon user1@p8good.test user2@p8good.test user3@p8good.test user4@p8bad.test user5@p8bad.test ||
		not_ok "s8 $m: messages submitted by SMTP to the sender daemon"
	wait_for 10 mbox_at_least p8good 3
	check_eq "s8 $m daemon p8good.test: 3 messages delivered over TLS" 3 "$(mbox_tls_count p8good)"
	conns=$(recv_connections p8good)
	echo "# s8 $m daemon: 3 messages to mx.p8good.test over $conns connection(s)"
	check "s8 $m daemon p8good.test: a connection carried several messages (reuse exercised)" test "$conns" -lt 3
	if [ "$m" = control ]; then
		wait_for 10 mbox_at_least p8bad 2
		check_eq "s8 control daemon p8bad.test: 2 messages delivered to the bad-certificate host (the violation)" 2 "$(mbox_count p8bad)"
	else
		wait_for 10 deferrals_at_least p8bad.test 2
		sender_daemon_stop
		expect_deferred "s8 shim daemon p8bad.test" 2 p8bad
		expect_shim_log "s8 shim daemon" "mtasts: domain=p8bad\.test mx=mx\.p8bad\.test ip=127\.0\.0\.52 policy=enforce result=certificate-not-trusted action=block"
		expect_shim_log "s8 shim daemon" "mtasts: domain=p8good\.test mx=mx\.p8good\.test ip=127\.0\.0\.51 policy=enforce result=success action=allow"
	fi
	sender_daemon_stop
	scenario_end
}

s12() {
	local m=$1
	scenario "12 [$m] MX hosts reachable only over IPv6"
	e2e_reset
	send_odf user@v6good.test
	wait_for 5 mbox_at_least v6good 1
	check_eq "s12 $m v6good.test: delivered over TLS" 1 "$(mbox_tls_count v6good)"
	check "s12 $m v6good.test: over IPv6" grep -q 'SMTPCONN from=fd00' "$(recv_log v6good)"
	e2e_reset
	send_odf user@v6bad.test
	if [ "$m" = control ]; then
		wait_for 5 mbox_at_least v6bad 1
		check_eq "s12 control v6bad.test: delivered to the bad-certificate host (the violation)" 1 "$(mbox_count v6bad)"
	else
		expect_deferred "s12 shim v6bad.test" 1 v6bad
		expect_shim_log "s12 shim v6bad.test" "mtasts: domain=v6bad\.test mx=mx\.v6bad\.test ip=fd00::62 policy=enforce result=certificate-not-trusted action=block"
	fi
	e2e_reset
	send_odf user@v6notls.test
	if [ "$m" = control ]; then
		wait_for 5 mbox_at_least v6notls 1
		check_eq "s12 control v6notls.test: delivered in clear (the violation)" 1 "$(mbox_clear_count v6notls)"
	else
		expect_deferred "s12 shim v6notls.test" 1 v6notls
		expect_shim_log "s12 shim v6notls.test" "mtasts: domain=v6notls\.test mx=mx\.v6notls\.test ip=fd00::63 policy=enforce result=starttls-not-supported action=block"
	fi
	e2e_reset
	send_odf user@v6pol.test
	if [ "$m" = control ]; then
		wait_for 5 mbox_at_least v6bad 1
		check_eq "s12 control v6pol.test (IPv6 policy host): delivered to the bad-certificate host (the violation)" 1 "$(mbox_count v6bad)"
	else
		expect_deferred "s12 shim v6pol.test (IPv6 policy host)" 1 v6bad
		expect_shim_log "s12 shim v6pol.test (IPv6 policy host)" "mtasts: domain=v6pol\.test mx=mx\.v6pol\.test ip=fd00::62 policy=enforce result=certificate-not-trusted action=block"
	fi
	scenario_end
}

echo "# CONTROL: the shim is not loaded"
shim_off
s8 control; s12 control
echo "# SHIM: the shim is loaded"
if shim_on; then
	s8 shim; s12 shim
else
	not_ok "the shim is built ($SHIM_LIB)"
fi
e2e_done
