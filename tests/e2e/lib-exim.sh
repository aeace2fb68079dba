#!/bin/bash
# lib-exim.sh - end-to-end helpers on top of tests/lib/world.sh: a sending Exim (Debian's
# exim4-daemon-light, GnuTLS, every TLS option of the smtp transport at its default: no
# hosts_require_tls, tls_tempfail_tryclear on, TCP Fast Open on), receiving Exim daemons (STARTTLS
# with a given certificate, or none), the shim's settings file at /etc/mtasts/mtasts.conf inside the
# private mount namespace, the shim switched on or off per run, and ok/not ok assertions.
#
# Sourced by tests/e2e/test-*.sh after world_enter. Everything lives in $WORLD.
# Proof points a test uses:
#   - receiver mailbox: every message carries "X-Test-TLS: yes|no" (added by the receiver's DATA
#     ACL) and a Received header saying "with TLS <cipher>" or "WITHOUT-TLS";
#   - receiver log: the MAIL, RCPT and DATA ACLs write "SMTPCMD <verb> tls=yes|no ..." for every
#     transaction command that reached the receiver, so "no transaction command reached this
#     receiver in clear" is `recv_clear_cmds NAME` = 0;
#   - the sender's queue (exim -bpc) and its log;
#   - the shim's log ($WORLD/mtasts.log): "mtasts: domain=D mx=H ip=A policy=P result=R action=A".

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(cd "$E2E_DIR/../.." && pwd)
: "${BUILD:=$SRC_DIR/build}"
EXIM=${EXIM:-/usr/sbin/exim4}
PY=/usr/bin/python3
SMTPCLIENT=$BUILD/tests/smtpclient
SHIM_LIB=$BUILD/libmtasts-shim.so
# SHIM is the command prefix that loads the shim; empty while a run is the control.
SHIM=()
SHIM_STATE=off
declare -A RECV_PID=() RECV_ADDR=()
DNS_ARGS=()
declare -A POLICY_ADDR=()

# --- assertions ----------------------------------------------------------------------------------

ok() { world_ok "$*"; }
not_ok() { world_not_ok "$@"; }

# check DESC CMD... : ok when CMD succeeds
check() {
	local desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}

# check_ge DESC MIN ACTUAL
check_ge() {
	if [ "$3" -ge "$2" ] 2>/dev/null; then ok "$1"; else not_ok "$1 (expected >= $2, got '$3')"; fi
}

# wait_for SECONDS CMD... : poll CMD every 20 ms until it succeeds or the deadline passes
wait_for() {
	local deadline=$(( $(date +%s%N) + ${1%.*} * 1000000000 )); shift
	while ! "$@"; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}

# scenario NAME: start a scenario (a heading; failures inside it dump the logs at scenario_end)
scenario() {
	SCENARIO_FAILS=$WORLD_NOT_OK
	echo "# --- $*"
}
scenario_end() {
	[ "$WORLD_NOT_OK" -eq "${SCENARIO_FAILS:-0}" ] || e2e_dump
	return 0
}

# e2e_done: summary line; exit status 1 when anything failed
e2e_done() { e2e_stop_exims; world_finish; }

# --- the namespace's /etc: trusted Exim configs and the shim's settings ----------------------------

# exim_world_init: overlay /etc (private to this mount namespace) so that /etc/exim4/trusted_configs
# and /etc/mtasts/mtasts.conf can exist here without touching the host. Keeps the world's
# resolv.conf and hosts. Creates the Exim directories.
exim_world_init() {
	local resolv hosts
	resolv=$(cat /etc/resolv.conf) hosts=$(cat /etc/hosts)
	mkdir -p "$WORLD/etc-up" "$WORLD/etc-work"
	mount -t overlay overlay -o "lowerdir=/etc,upperdir=$WORLD/etc-up,workdir=$WORLD/etc-work" /etc || return 1
	printf '%s\n' "$resolv" > /etc/resolv.conf
	printf '%s\n' "$hosts" > /etc/hosts
	mkdir -p /etc/mtasts "$WORLD/exim" "$WORLD/cache" "$WORLD/reports"
	chmod 755 "$WORLD" "$WORLD/exim"
	chmod 1777 "$WORLD/cache" "$WORLD/reports"
	: > /etc/exim4/trusted_configs
	chmod 644 /etc/exim4/trusted_configs
	: > "$WORLD/mtasts.log"
	chmod 666 "$WORLD/mtasts.log"
	mtasts_conf
}

# mtasts_conf [KEY=VALUE...]: (re)write /etc/mtasts/mtasts.conf for this world; a KEY=VALUE
# replaces that key's default (an empty VALUE drops the key)
mtasts_conf() {
	local -A conf=(
		[cache_dir]=$WORLD/cache [ca_file]=$WORLD/pki/ca.pem [dns_servers]=127.0.0.1
		[fetch_timeout]=5 [fetch_wait]=5 [programs]="exim4 exim smtpclient"
		[fetcher]=$BUILD/mtasts [smtp_ports]=25 [log]=$WORLD/mtasts.log
		[report_dir]=$WORLD/reports
	)
	local kv k
	for kv in "$@"; do conf[${kv%%=*}]=${kv#*=}; done
	{
		echo "# written by tests/e2e/lib-exim.sh for $WORLD"
		for k in $(printf '%s\n' "${!conf[@]}" | sort); do
			[ -z "${conf[$k]}" ] || echo "$k = ${conf[$k]}"
		done
	} > /etc/mtasts/mtasts.conf
	chmod 644 /etc/mtasts/mtasts.conf
}

# trust_config FILE: list FILE in /etc/exim4/trusted_configs so -C keeps root in Exim's re-execs
trust_config() {
	chmod 644 "$1"
	grep -qxF "$1" /etc/exim4/trusted_configs || echo "$1" >> /etc/exim4/trusted_configs
}

# --- the shim on and off -------------------------------------------------------------------------

# shim_on: later sends/queue runs/daemons load the shim. Exim re-execs itself setuid with an empty
# environment, so the library goes where the loader accepts it in secure-execution mode: a copy with
# the set-user-ID bit bind-mounted over a file of the trusted library directory (mount namespace
# only), preloaded by that bare name; the shim's execve hook puts LD_PRELOAD back into re-execs.
# libBrokenLocale.so.1 ships with every glibc and no program here uses it: its path is trusted
SHIM_TRUSTED_NAME=libBrokenLocale.so.1
SHIM_TRUSTED_PATH=$(ldconfig -p 2>/dev/null | awk -v n="$SHIM_TRUSTED_NAME" '$1 == n { print $NF; exit }')
: "${SHIM_TRUSTED_PATH:=/usr/lib/$(uname -m)-linux-gnu/$SHIM_TRUSTED_NAME}"
shim_on() {
	if [ ! -f "$SHIM_LIB" ]; then
		SHIM=(false "shim not built: $SHIM_LIB")
		SHIM_STATE=missing
		return 1
	fi
	if [ "$SHIM_STATE" != installed ] && [ "$SHIM_STATE" != on ]; then
		cp "$SHIM_LIB" "$WORLD/shim-suid.so" && chmod 4755 "$WORLD/shim-suid.so" || return 1
		mount --bind "$WORLD/shim-suid.so" "$SHIM_TRUSTED_PATH" || return 1
	fi
	SHIM=(env "LD_PRELOAD=$SHIM_TRUSTED_NAME")
	SHIM_STATE=on
}
shim_off() {
	SHIM=()
	[ "$SHIM_STATE" = on ] && SHIM_STATE=installed
	[ "$SHIM_STATE" = missing ] && SHIM_STATE=off
	return 0
}
# run_mta CMD...: CMD with the shim when it is on
run_mta() { "${SHIM[@]}" "$@"; }

# shim_log_has REGEX: the shim's log has a line matching REGEX (extended)
shim_log_has() { grep -Eq -- "$1" "$WORLD/mtasts.log"; }
# shim_log_mark: remember the log size; shim_log_since prints what came after
shim_log_mark() { SHIM_LOG_MARK=$(stat -c %s "$WORLD/mtasts.log"); }
shim_log_since() { tail -c +$(( ${SHIM_LOG_MARK:-0} + 1 )) "$WORLD/mtasts.log"; }
shim_log_since_has() { shim_log_since | grep -Eq -- "$1"; }

# --- receivers -----------------------------------------------------------------------------------

# exim_receiver NAME ADDR [--cert CERTNAME | --notls] [--port PORT] [--data-delay SECONDS]
# A receiving Exim daemon on ADDR:PORT (default 25) that accepts any recipient into
# $WORLD/exim/recv-NAME/mbox. --cert: STARTTLS with $WORLD/pki/CERTNAME.chain.pem; --notls: none.
# --data-delay: the DATA ACL logs SLOWDATA, then holds the message that long before accepting
# (so a sender's processes can be looked at mid-session: bench/bench_memory.sh).
exim_receiver() {
	local name=$1 addr=$2; shift 2
	local cert= notls= port=25 delay=
	while [ $# -gt 0 ]; do
		case $1 in
		--cert) cert=$2; shift ;;
		--notls) notls=1 ;;
		--port) port=$2; shift ;;
		--data-delay) delay=$2; shift ;;
		*) echo "exim_receiver: bad option $1" >&2; return 64 ;;
		esac
		shift
	done
	local d=$WORLD/exim/recv-$name conf=$WORLD/exim/recv-$name.conf advertise='*'
	[ -z "$notls" ] || advertise=
	mkdir -p "$d/spool" "$d/log" "$d/box"
	chown -R Debian-exim:Debian-exim "$d"
	local iface=$addr
	cat > "$conf" <<EOF
# receiver $name for the e2e world $WORLD (written by lib-exim.sh)
primary_hostname = $name
spool_directory = $d/spool
log_file_path = $d/log/%slog
pid_file_path = $d/spool/exim-daemon.pid
exim_user = Debian-exim
exim_group = Debian-exim
keep_environment =
local_interfaces = <; $iface.$port
daemon_smtp_ports = $port
host_lookup =
rfc1413_hosts =
tls_advertise_hosts = $advertise
${cert:+tls_certificate = $WORLD/pki/$cert.chain.pem}
${cert:+tls_privatekey = $WORLD/pki/$cert.key}
log_selector = +all -arguments
acl_smtp_connect = acl_connect
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
acl_smtp_predata = acl_predata
acl_smtp_data = acl_data
received_header_text = Received: from \$sender_rcvhost by \$primary_hostname \${if def:tls_in_cipher_std {with TLS \$tls_in_cipher_std}{WITHOUT-TLS}} id \$message_exim_id for \$received_for

begin acl
acl_connect:
  warn logwrite = SMTPCONN from=\$sender_host_address
  accept
acl_mail:
  warn logwrite = SMTPCMD MAIL tls=\${if def:tls_in_cipher{yes}{no}} from=<\$sender_address>
  accept
acl_rcpt:
  warn logwrite = SMTPCMD RCPT tls=\${if def:tls_in_cipher{yes}{no}} to=<\$local_part@\$domain>
  accept
acl_predata:
  warn logwrite = SMTPCMD DATA tls=\${if def:tls_in_cipher{yes}{no}}
  accept
acl_data:
  warn add_header = X-Test-TLS: \${if def:tls_in_cipher{yes}{no}}
  warn add_header = X-Test-Receiver: $name
${delay:+  warn logwrite = SLOWDATA}
${delay:+  warn delay = ${delay}s}
  accept

begin routers
all:
  driver = accept
  transport = mbox

begin transports
mbox:
  driver = appendfile
  file = $d/box/mbox
  envelope_to_add = true
  user = Debian-exim
  group = Debian-exim
  mode = 0644
EOF
	trust_config "$conf"
	RECV_ADDR[$name]=$addr
	world_addr "$addr" || return 1
	world_bg "recv-$name" "$EXIM" -C "$conf" -bdf
	RECV_PID[$name]=$WORLD_PID
	local pat="$addr:$port"; [[ $addr == *:* ]] && pat="[$addr]:$port"
	wait_for 5 listening "$pat" || { echo "# receiver $name did not start on $pat" >&2; return 1; }
}

listening() { ss -ltnH 2>/dev/null | awk '{print $4}' | grep -qxF -- "$1"; }

exim_receiver_stop() {
	local name=$1 pid=${RECV_PID[$1]:-}
	[ -n "$pid" ] || return 0
	world_stop "$pid"
	unset "RECV_PID[$name]"
}

# exim_receiver_restart NAME ADDR OPTIONS... : stop, then start with new options (same mailbox)
exim_receiver_restart() { exim_receiver_stop "$1"; exim_receiver "$@"; }

recv_log() { echo "$WORLD/exim/recv-$1/log/mainlog"; }
recv_mbox() { echo "$WORLD/exim/recv-$1/box/mbox"; }
# count_in FILE PATTERN: lines of FILE matching PATTERN (0 when FILE is missing)
count_in() { local n; n=$(grep -c -- "$2" "$1" 2>/dev/null); echo "${n:-0}"; }
# mbox_count NAME: messages in the receiver's mailbox
mbox_count() { count_in "$(recv_mbox "$1")" '^From '; }
# mbox_tls_count NAME: of those, received over TLS
mbox_tls_count() { count_in "$(recv_mbox "$1")" '^X-Test-TLS: yes'; }
mbox_clear_count() { count_in "$(recv_mbox "$1")" '^X-Test-TLS: no'; }
# recv_accepted NAME: messages the receiver accepted (its "<=" log lines, written before the 250)
recv_accepted() { count_in "$(recv_log "$1")" ' <= '; }
# recv_clear_cmds NAME: transaction commands (MAIL, RCPT, DATA) that reached the receiver in clear
recv_clear_cmds() { count_in "$(recv_log "$1")" 'SMTPCMD [A-Z]* tls=no'; }
recv_tls_cmds() { count_in "$(recv_log "$1")" 'SMTPCMD [A-Z]* tls=yes'; }
# recv_connections NAME: SMTP connections the receiver saw
recv_connections() { count_in "$(recv_log "$1")" 'SMTPCONN'; }
mbox_at_least() { [ "$(mbox_count "$1")" -ge "$2" ]; }

# truncate_existing FILE: empty FILE when it exists (keeps its owner: Exim's files belong to
# Debian-exim; Exim appends with O_APPEND so an open log continues at the new end)
truncate_existing() { [ ! -f "$1" ] || : > "$1"; }

# recv_reset NAME...: empty mailboxes and logs (Exim writes its log with O_APPEND)
recv_reset() {
	local n
	for n in "$@"; do
		truncate_existing "$(recv_log "$n")"
		truncate_existing "$(recv_mbox "$n")"
	done
}

# --- the sender ----------------------------------------------------------------------------------

# exim_sender: write the sending Exim's config; its SMTP listener (daemon mode) is 127.0.0.2:2525
exim_sender() {
	local d=$WORLD/exim/sender
	SENDER_CONF=$WORLD/exim/sender.conf
	mkdir -p "$d/spool" "$d/log"
	chown -R Debian-exim:Debian-exim "$d"
	cat > "$SENDER_CONF" <<EOF
# sending Exim for the e2e world $WORLD (written by lib-exim.sh).
# The smtp transport keeps every TLS option at Exim's default, as Debian ships it:
# hosts_require_tls unset, tls_tempfail_tryclear = true, hosts_try_fastopen = *,
# tls_try_verify_hosts = *, tls_verify_certificates = system, tls_sni unset.
primary_hostname = sender.test
qualify_domain = sender.test
spool_directory = $d/spool
log_file_path = $d/log/%slog
pid_file_path = $d/spool/exim-daemon.pid
exim_user = Debian-exim
exim_group = Debian-exim
keep_environment =
local_interfaces = <; 127.0.0.2.2525
daemon_smtp_ports = 2525
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
log_selector = +all -arguments
acl_smtp_rcpt = acl_rcpt
queue_only_file = $d/queue_only
queue_run_max = 1

begin acl
acl_rcpt:
  # send_daemon freezes what it submits, then thaws it all at once (one queue run sees it all)
  accept condition = \${if exists{$d/freeze}}
         control = freeze/no_tell
  accept

begin routers
dnslookup:
  driver = dnslookup
  transport = remote_smtp
  # Debian's generated config ignores MX targets in 127.0.0.0/8; the loopback world needs them.
  ignore_target_hosts = <; 0.0.0.0 ; 255.255.255.255
  no_more

begin transports
remote_smtp:
  driver = smtp

begin retry
*  *  F,1h,1m
EOF
	trust_config "$SENDER_CONF"
}

sender_log() { echo "$WORLD/exim/sender/log/mainlog"; }

# send_odf RCPT... : one message, delivered in the foreground (exim -odf: the secure-mode re-exec)
send_odf() {
	printf 'From: sender@sender.test\nSubject: e2e %s\n\nhello from the e2e sender\n' "$*" |
		run_mta "$EXIM" -C "$SENDER_CONF" -odf "$@"
}

# queue_count: messages in the sender's queue
queue_count() { "$EXIM" -C "$SENDER_CONF" -bpc; }
queue_empty() { [ "$(queue_count)" -eq 0 ]; }
queue_is() { [ "$(queue_count)" -eq "$1" ]; }
# queue_run: force a delivery attempt of every queued message (exim -qff, run by root: no exec)
queue_run() { run_mta "$EXIM" -C "$SENDER_CONF" -qff; }

# sender_reset: empty the sender's queue, retry hints and log (between scenarios)
sender_reset() {
	local d=$WORLD/exim/sender/spool
	rm -rf "$d/input" "$d/msglog" "$d/db"
	truncate_existing "$(sender_log)"
}

# sender_daemon_start: `exim -bd -qq1s` (under the shim when it is on), messages received by SMTP
# are queued (queue_only_file) and delivered by the daemon's two-stage queue runners, re-exec'd
# processes; the first stage routes every message so that the second stage sends all messages for
# one host down one connection (Exim passes it on to a new process with -MC)
sender_daemon_start() {
	touch "$WORLD/exim/sender/queue_only"
	# a simple command, not a function, so that $! is Exim itself (env execs it)
	"${SHIM[@]}" "$EXIM" -C "$SENDER_CONF" -bdf -qq1s >> "$WORLD/sender-daemon.log" 2>&1 &
	SENDER_DAEMON_PID=$!
	WORLD_PIDS+=("$SENDER_DAEMON_PID")
	wait_for 5 listening 127.0.0.2:2525
}
sender_daemon_stop() {
	[ -n "${SENDER_DAEMON_PID:-}" ] || return 0
	world_stop "$SENDER_DAEMON_PID"
	SENDER_DAEMON_PID=
	rm -f "$WORLD/exim/sender/queue_only"
	# queue runners and deliveries it started finish on their own: wait for them
	wait_for 10 no_exim_of "$SENDER_CONF"
}
no_exim_of() { ! pgrep -f -- "-C $1" >/dev/null; }

# e2e_stop_exims: stop every Exim process of this world (daemon children, stuck deliveries) so
# that nothing outlives the namespace; called by e2e_done
e2e_stop_exims() {
	local p
	for p in $(pgrep -f -- "-C $WORLD/exim/"); do kill -TERM "$p" 2>/dev/null; done
	wait_for 3 no_exim_of "$WORLD/exim/" || for p in $(pgrep -f -- "-C $WORLD/exim/"); do kill -KILL "$p" 2>/dev/null; done
	return 0
}

# send_daemon RCPT...: submit one message per RCPT, all in one SMTP session, to the sender daemon.
# They are frozen on arrival and thawed together afterwards, so that one queue run finds them all
# (deterministic connection reuse, whatever the timing of the daemon's queue runs).
send_daemon() {
	local rc ids
	touch "$WORLD/exim/sender/freeze"
	"$PY" - "$@" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.2", 2525, local_hostname="client.test", timeout=10)
for i, r in enumerate(sys.argv[1:]):
    s.sendmail("sender@sender.test", [r], "From: sender@sender.test\r\nSubject: daemon %d\r\n\r\nhello %d\r\n" % (i, i))
s.quit()
PY
	rc=$?
	rm -f "$WORLD/exim/sender/freeze"
	ids=$("$EXIM" -C "$SENDER_CONF" -bp | awk '/^ *[0-9]+[smhd] / { print $3 }')
	[ -z "$ids" ] || "$EXIM" -C "$SENDER_CONF" -Mt $ids > /dev/null
	return $rc
}

# --- DNS and policies ----------------------------------------------------------------------------
# A test declares its zone with dns_mx / dns_host / policy_domain (they append to DNS_ARGS), then
# calls world_dns_start "${DNS_ARGS[@]}" and policy_hosts_start.

# dns_mx DOMAIN MXHOST PREF
dns_mx() { DNS_ARGS+=("--mx-host=$1,$2,$3"); }
# dns_host NAME ADDR  (an IPv6 ADDR gives an AAAA record only)
dns_host() { DNS_ARGS+=("--host-record=$1,$2"); }

# policy_file DOCROOT MODE MX... : write DOCROOT/.well-known/mta-sts.txt
policy_file() {
	local root=$1 mode=$2; shift 2
	mkdir -p "$root/.well-known"
	{
		printf 'version: STSv1\r\nmode: %s\r\n' "$mode"
		local m; for m in "$@"; do printf 'mx: %s\r\n' "$m"; done
		printf 'max_age: 86400\r\n'
	} > "$root/.well-known/mta-sts.txt"
}

# policy_domain DOMAIN ADDR MODE MX-PATTERN... : the domain publishes a policy: TXT record
# _mta-sts.DOMAIN, mta-sts.DOMAIN at ADDR with a certificate from the test CA, the policy file
# in $WORLD/www/DOMAIN (served once policy_hosts_start runs)
policy_domain() {
	local d=$1 addr=$2; shift 2
	world_cert "mta-sts.$d" || return 1
	policy_file "$WORLD/www/$d" "$@"
	DNS_ARGS+=("--txt-record=_mta-sts.$d,v=STSv1; id=${POLICY_ID:-20240101};" "--host-record=mta-sts.$d,$addr")
	POLICY_ADDR[$d]=$addr
}

# policy_hosts_start: start every declared policy host at once, return when all listen
policy_hosts_start() {
	local d addr tag i ready
	for d in "${!POLICY_ADDR[@]}"; do
		addr=${POLICY_ADDR[$d]} tag=${addr//:/_}
		world_addr "$addr" || return 1
		rm -f "$WORLD/https-$tag.ready"
		world_bg "https-$tag" "$PY" "$WORLD_LIB/https_server.py" "$addr" 443 \
			"$WORLD/pki/mta-sts.$d.chain.pem" "$WORLD/pki/mta-sts.$d.key" "$WORLD/www/$d" \
			--ready "$WORLD/https-$tag.ready" --requests "$WORLD/https-$tag.requests"
		WORLD_HTTPS_PIDS[$addr]=$WORLD_PID
	done
	for i in $(seq 1 250); do
		ready=1
		for d in "${!POLICY_ADDR[@]}"; do
			tag=${POLICY_ADDR[$d]//:/_}
			[ -s "$WORLD/https-$tag.ready" ] || ready=
		done
		[ -z "$ready" ] || return 0
		sleep 0.02
	done
	echo "# policy hosts did not start" >&2
	return 1
}

# strip_proxy_start ADDR UPSTREAM_ADDR: the STARTTLS-stripping proxy on ADDR:25; log $WORLD/proxy-ADDR.log
strip_proxy_start() {
	world_addr "$1" || return 1
	: > "$WORLD/proxy-$1.log"
	world_bg "proxy-$1.out" "$PY" "$WORLD_LIB/strip_proxy.py" "$1" 25 "$2" 25 "$WORLD/proxy-$1.log"
	wait_for 5 listening "$1:25"
}
proxy_log() { echo "$WORLD/proxy-$1.log"; }
# proxy_clear_mail ADDR: MAIL FROM commands that went through the proxy in clear
proxy_clear_mail() { count_in "$(proxy_log "$1")" 'in clear: MAIL FROM'; }

# describe the outcome of the last runs (for a human reading a failure)
e2e_dump() {
	echo "# --- sender log"; sed 's/^/#   /' "$(sender_log)" 2>/dev/null | tail -n 40
	echo "# --- shim log"; sed 's/^/#   /' "$WORLD/mtasts.log" | tail -n 20
}

# --- outcomes ------------------------------------------------------------------------------------

# e2e_reset: a clean slate between runs: sender queue/log/hints, receivers' mailboxes and logs,
# proxy logs; marks the shim log so shim_log_since shows only this run
e2e_reset() {
	sender_reset
	recv_reset "${!RECV_ADDR[@]}"
	local f; for f in "$WORLD"/proxy-*.log; do [ -f "$f" ] && : > "$f"; done
	shim_log_mark
}

# expect_delivered_tls WHAT RECV N: N messages reached RECV's mailbox, all over TLS; queue empty
expect_delivered_tls() {
	local what=$1 r=$2 n=$3
	wait_for 5 mbox_at_least "$r" "$n"
	check_eq "$what: $n message(s) in $r's mailbox" "$n" "$(mbox_count "$r")"
	check_eq "$what: received over TLS by $r" "$n" "$(mbox_tls_count "$r")"
	check_eq "$what: nothing reached $r in clear" 0 "$(recv_clear_cmds "$r")"
	check_eq "$what: sender's queue is empty" 0 "$(queue_count)"
}

# expect_deferred WHAT N RECV...: N messages still in the sender's queue, none accepted by any
# RECV, and no transaction command reached any RECV in clear
expect_deferred() {
	local what=$1 n=$2 r; shift 2
	check_eq "$what: $n message(s) still queued" "$n" "$(queue_count)"
	for r in "$@"; do
		check_eq "$what: $r accepted nothing" 0 "$(recv_accepted "$r")"
		check_eq "$what: no transaction command reached $r in clear" 0 "$(recv_clear_cmds "$r")"
	done
	check "$what: sender log shows a defer, no bounce" sender_deferred_not_bounced
}
sender_deferred_not_bounced() {
	grep -q ' == ' "$(sender_log)" && ! grep -q ' \*\* ' "$(sender_log)"
}

# expect_shim_log WHAT REGEX: the shim logged a line matching REGEX during this run
# (the line starts "mtasts: " or, in a log file, "<time> mtasts[PID]: ")
expect_shim_log() {
	local re=${2//mtasts: /mtasts(\[[0-9]+\])?: }
	if shim_log_since_has "$re"; then ok "$1: shim logged /$2/"
	else not_ok "$1: shim logged /$2/" "shim log since the run: $(shim_log_since | tr '\n' '|')"; fi
}
# expect_no_shim_log WHAT: the shim logged nothing during this run (control runs)
expect_no_shim_log() { check_eq "$1: no shim log line" "" "$(shim_log_since)"; }

# --- the zone shared by the Exim and the OpenSSL-client tests of scenarios 1-4 and 7 ---------------
# enforce domains and their receivers (name: address, certificate):
#   good.test       -> mx.good.test 127.0.0.11            good: valid certificate
#   untrusted.test  -> mx.untrusted.test 127.0.0.12       untrusted: certificate from an untrusted CA
#   wrongname.test  -> mx.wrongname.test 127.0.0.13       wrongname: certificate for other.test
#   expired.test    -> mx.expired.test 127.0.0.14         expired: expired certificate
#   notallowed.test -> rogue.notallowed.test 127.0.0.15   rogue: valid certificate, MX not in policy
#   twomx.test      -> 10 rogue.twomx.test 127.0.0.15, 20 mx2.twomx.test 127.0.0.16 (allowed)
#   notls.test      -> mx.notls.test 127.0.0.17           notls: no STARTTLS
#   stripped.test   -> mx.stripped.test 127.0.0.18        STARTTLS-stripping proxy -> behindproxy
#                                                         127.0.0.19 (valid certificate)
# policy hosts on 127.0.0.31-38; the sender Exim config.
enforce_zone() {
	world_cert mx.good.test
	world_cert mx.untrusted.test --ca evil
	world_cert mx.untrusted.test.fixed --san DNS:mx.untrusted.test
	world_cert mx.wrongname.test --san DNS:other.test
	world_cert mx.expired.test --expired
	world_cert rogue --san DNS:rogue.notallowed.test,DNS:rogue.twomx.test
	world_cert mx2.twomx.test
	world_cert mx.stripped.test

	policy_domain good.test 127.0.0.31 enforce mx.good.test
	policy_domain untrusted.test 127.0.0.32 enforce mx.untrusted.test
	policy_domain wrongname.test 127.0.0.33 enforce mx.wrongname.test
	policy_domain expired.test 127.0.0.34 enforce mx.expired.test
	policy_domain notallowed.test 127.0.0.35 enforce mx.notallowed.test
	policy_domain twomx.test 127.0.0.36 enforce mx2.twomx.test
	policy_domain notls.test 127.0.0.37 enforce mx.notls.test
	policy_domain stripped.test 127.0.0.38 enforce mx.stripped.test

	dns_mx good.test mx.good.test 10;            dns_host mx.good.test 127.0.0.11
	dns_mx untrusted.test mx.untrusted.test 10;  dns_host mx.untrusted.test 127.0.0.12
	dns_mx wrongname.test mx.wrongname.test 10;  dns_host mx.wrongname.test 127.0.0.13
	dns_mx expired.test mx.expired.test 10;      dns_host mx.expired.test 127.0.0.14
	dns_mx notallowed.test rogue.notallowed.test 10; dns_host rogue.notallowed.test 127.0.0.15
	dns_mx twomx.test rogue.twomx.test 10;       dns_host rogue.twomx.test 127.0.0.15
	dns_mx twomx.test mx2.twomx.test 20;         dns_host mx2.twomx.test 127.0.0.16
	dns_mx notls.test mx.notls.test 10;          dns_host mx.notls.test 127.0.0.17
	dns_mx stripped.test mx.stripped.test 10;    dns_host mx.stripped.test 127.0.0.18

	world_dns_start "${DNS_ARGS[@]}" || return 1
	policy_hosts_start || return 1
	exim_receiver good 127.0.0.11 --cert mx.good.test
	exim_receiver untrusted 127.0.0.12 --cert mx.untrusted.test
	exim_receiver wrongname 127.0.0.13 --cert mx.wrongname.test
	exim_receiver expired 127.0.0.14 --cert mx.expired.test
	exim_receiver rogue 127.0.0.15 --cert rogue
	exim_receiver allowed 127.0.0.16 --cert mx2.twomx.test
	exim_receiver notls 127.0.0.17 --notls
	exim_receiver behindproxy 127.0.0.19 --cert mx.stripped.test
	strip_proxy_start 127.0.0.18 127.0.0.19 || return 1
	exim_sender
}
