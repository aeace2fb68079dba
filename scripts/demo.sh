#!/bin/bash
# demo.sh - `make demo`: a narrated tour of mtasts-shim with a real Exim, inside a private network
# and mount namespace (nothing leaves loopback, nothing on the host changes). It builds nothing:
# `make demo` builds first and then runs `scripts/demo.sh build`.
#
# The world: dnsmasq for the zone, an HTTPS policy host per domain, receiving Exim daemons, and a
# sending Exim with Debian's default TLS behaviour (opportunistic, falls back to clear text).
#   good.test      enforce; its MX has a valid certificate
#   untrusted.test enforce; its MX presents a certificate from a CA nobody trusts (an impostor)
#   stripped.test  enforce; an attacker in the path removes STARTTLS from the MX's answer
# Act 1 sends one message to each without the shim, act 2 with the shim loaded.
# Exit status 0 when every outcome is the expected one. Needs root (after scripts/deps).
set -u
src=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ -z "${WORLD_INSIDE:-}" ]; then
	BUILD=$(cd "${1:-$src/build}" 2>/dev/null && pwd) || { echo "demo: no build directory ${1:-$src/build}; run make first" >&2; exit 1; }
	export BUILD
	for f in "$BUILD/mtasts" "$BUILD/libmtasts-shim.so"; do
		[ -e "$f" ] || { echo "demo: $f is missing; run make first" >&2; exit 1; }
	done
	for p in exim4 dnsmasq openssl unshare ip /usr/bin/python3; do
		command -v "$p" >/dev/null || { echo "demo: $p is not installed; run scripts/deps" >&2; exit 1; }
	done
fi
. "$src/tests/lib/world.sh"
world_enter "$@"
. "$src/tests/e2e/lib-exim.sh"

say() { if [ -t 1 ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n%s\n' "$*"; fi; }
note() { printf '    %s\n' "$@"; }
show() { sed 's/^/    | /'; }
last_exim_line() { grep -E " (=>|==|\*\*) user@$1 " "$(sender_log)" | tail -n 1 | sed -E 's/^([^ ]+ [^ ]+) \[[0-9]+\] [^ ]+ /\1 /' | cut -c1-220; }

say "Setting up a private loopback world (network + mount namespace)..."
world_pki
exim_world_init
world_cert mx.good.test
world_cert mx.untrusted.test --ca evil
world_cert mx.stripped.test
policy_domain good.test 127.0.0.31 enforce mx.good.test
policy_domain untrusted.test 127.0.0.32 enforce mx.untrusted.test
policy_domain stripped.test 127.0.0.33 enforce mx.stripped.test
dns_mx good.test mx.good.test 10;           dns_host mx.good.test 127.0.0.11
dns_mx untrusted.test mx.untrusted.test 10; dns_host mx.untrusted.test 127.0.0.12
dns_mx stripped.test mx.stripped.test 10;   dns_host mx.stripped.test 127.0.0.13
{ world_dns_start "${DNS_ARGS[@]}" && policy_hosts_start &&
  exim_receiver good 127.0.0.11 --cert mx.good.test &&
  exim_receiver untrusted 127.0.0.12 --cert mx.untrusted.test &&
  exim_receiver behindproxy 127.0.0.14 --cert mx.stripped.test &&
  strip_proxy_start 127.0.0.13 127.0.0.14 &&
  exim_sender; } || { echo "demo: the world did not start (WORLD_KEEP=1 keeps $WORLD for a look)" >&2; exit 1; }
note "DNS: dnsmasq on 127.0.0.1; policy hosts mta-sts.<domain> on 127.0.0.31-33 (HTTPS, test CA)" \
     "MX good.test      -> mx.good.test      127.0.0.11  valid certificate" \
     "MX untrusted.test -> mx.untrusted.test 127.0.0.12  certificate from an untrusted CA" \
     "MX stripped.test  -> mx.stripped.test  127.0.0.13  STARTTLS-stripping proxy in front of a good MX" \
     "Sending Exim: $(exim4 --version | head -n 1 | cut -d' ' -f1-3), TLS options at Debian's defaults (opportunistic)"

say "The policies, as the mtasts command sees them:"
for d in good.test untrusted.test stripped.test; do
	"$BUILD/mtasts" query "$d" 2>&1 | head -n 8 | show
done

say "ACT 1 - the sending Exim WITHOUT the shim"
note "Exim accepts any certificate and falls back to clear text; MTA-STS means nothing to it."
shim_off
e2e_reset
for d in good.test untrusted.test stripped.test; do
	send_odf "user@$d"
	note "user@$d:"
	last_exim_line "$d" | show
done
wait_for 5 mbox_at_least untrusted 1
wait_for 5 mbox_at_least behindproxy 1
act1_bad=$(( $(mbox_count untrusted) + $(mbox_clear_count behindproxy) ))
note "=> the impostor got its message, and the stripped one travelled in clear" \
     "   (MAIL FROM seen in clear by the attacker's proxy: $(proxy_clear_mail 127.0.0.13) time(s))."

say "ACT 2 - the same Exim WITH the shim (setuid copy in the trusted library directory, LD_PRELOAD by bare name)"
note "Policies are fetched on the first MX lookup by a detached 'mtasts fetch', then cached."
shim_on || { echo "demo: cannot load the shim" >&2; exit 1; }
e2e_reset
send_odf user@good.test
wait_for 5 mbox_at_least good 1
note "user@good.test:"; last_exim_line good.test | show
note "good.test's MX received it as:"
grep -m1 '^Received: ' "$(recv_mbox good)" 2>/dev/null | cut -c1-160 | show
send_odf user@untrusted.test
note "user@untrusted.test:"; last_exim_line untrusted.test | show
send_odf user@stripped.test
note "user@stripped.test:"; last_exim_line stripped.test | show
say "The shim's log (log = $WORLD/mtasts.log):"
shim_log_since | grep -E 'domain=' | sed -E 's/^[^ ]+ //' | cut -c1-200 | show
say "The sender's queue now (exim -bp): the refused messages wait, nothing bounced:"
"$EXIM" -C "$SENDER_CONF" -bp | grep -E '^ *[0-9]|@' | show

say "Checking the outcome"
check "act 1 (no shim): the impostor and the stripping proxy got the mail (what MTA-STS is for)" test "$act1_bad" -eq 2
check "act 2: good.test delivered over TLS" test "$(mbox_tls_count good)" -eq 1
check "act 2: untrusted.test not delivered to the impostor" test "$(recv_accepted untrusted)" -eq 0
check "act 2: stripped.test: no MAIL FROM in clear through the attacker's proxy" test "$(proxy_clear_mail 127.0.0.13)" -eq 0
check "act 2: the two refused messages are still queued for a later retry" test "$(queue_count)" -eq 2
check "act 2: the shim logged the blocks" shim_log_since_has 'domain=untrusted\.test .*action=block'
e2e_done
