#!/bin/bash
# test-fetch.sh - core/fetch.c and core/dns.c against a real dnsmasq and real HTTPS servers in
# the loopback test world (tests/lib/world.sh), driven through build/tests/probe.
# One line per case ("ok - ..." / "not ok - ..."); exits non-zero on any failure.
. "$(dirname "$0")/../lib/world.sh"
world_enter "$@"

PROBE=$BUILD/tests/probe
[ -x "$PROBE" ] || { echo "not ok - $PROBE missing (run make)"; exit 1; }
CA=$WORLD/pki/ca.pem
POLICY=$'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n'

# ---- world -----------------------------------------------------------------------------------
world_pki || exit 1
world_cert mta-sts.example.test || exit 1
world_cert mta-sts.expired.test --expired || exit 1
world_cert mta-sts.evil.test --ca evil || exit 1
world_cert mta-sts.wrongname.test --san DNS:mta-sts.other.test || exit 1
world_cert mta-sts.cnonly.test --cn-only || exit 1
world_cert mta-sts.wild.test --san "DNS:*.wild.test" || exit 1
world_cert mta-sts.partial.test --san "DNS:mta-*.partial.test" || exit 1
world_cert mta-sts.v6.test || exit 1

docroot() {  # DIR: a docroot holding the policy
	mkdir -p "$1/.well-known"
	printf '%s' "$POLICY" > "$1/.well-known/mta-sts.txt"
}
for d in main expired evil wrongname cnonly wild partial v6; do docroot "$WORLD/www-$d"; done
MAIN=$WORLD/www-main

world_dns_start \
	--host-record=mta-sts.example.test,127.0.0.10 \
	--host-record=mta-sts.expired.test,127.0.0.11 \
	--host-record=mta-sts.evil.test,127.0.0.12 \
	--host-record=mta-sts.wrongname.test,127.0.0.13 \
	--host-record=mta-sts.refused.test,127.0.0.14 \
	--host-record=mta-sts.cnonly.test,127.0.0.15 \
	--host-record=mta-sts.wild.test,127.0.0.16 \
	--host-record=mta-sts.partial.test,127.0.0.17 \
	--host-record=mta-sts.v6.test,fd00::18 \
	--host-record=v6.test,127.0.0.20,fd00::20 \
	--txt-record=_mta-sts.example.test,"v=STSv1; id=1;" \
	--txt-record=_mta-sts.split.test,"v=STSv1; id=","abc123;" \
	--txt-record=_mta-sts.two.test,"v=STSv1; id=1;" \
	--txt-record=_mta-sts.two.test,"v=STSv1; id=2;" \
	--cname=_mta-sts.alias.test,_mta-sts.target.test \
	--txt-record=_mta-sts.target.test,"v=STSv1; id=cn1;" \
	--host-record=_mta-sts.nodata.test,127.0.0.50 \
	--server=/broken.test/127.0.0.99 || exit 1

world_https_start 127.0.0.10 mta-sts.example.test "$MAIN" || exit 1
world_https_start 127.0.0.11 mta-sts.expired.test "$WORLD/www-expired" || exit 1
world_https_start 127.0.0.12 mta-sts.evil.test "$WORLD/www-evil" || exit 1
world_https_start 127.0.0.13 mta-sts.wrongname.test "$WORLD/www-wrongname" || exit 1
world_https_start 127.0.0.15 mta-sts.cnonly.test "$WORLD/www-cnonly" || exit 1
world_https_start 127.0.0.16 mta-sts.wild.test "$WORLD/www-wild" || exit 1
world_https_start 127.0.0.17 mta-sts.partial.test "$WORLD/www-partial" || exit 1
world_https_start fd00::18 mta-sts.v6.test "$WORLD/www-v6" || exit 1

# ---- helpers ---------------------------------------------------------------------------------
OUT=$WORLD/probe.out
BODY=$WORLD/body

# fetch DOMAIN [probe options...]: run the probe, leave its line in $OUT and its exit in $RC
fetch() {
	local d=$1; shift
	rm -f "$BODY"
	"$PROBE" fetch "$d" --ca-file "$CA" --timeout 5 --body "$BODY" "$@" > "$OUT" 2>&1
	RC=$?
}

# expect DESC WANT_RC REGEX: check the last probe run
expect() {
	local desc=$1 want=$2 re=$3
	if [ "$RC" = "$want" ] && grep -Eq -- "$re" "$OUT"; then
		world_ok "$desc"
	else
		world_not_ok "$desc" "rc=$RC want=$want /$re/ got: $(head -c 400 "$OUT" | tr '\n' '|')"
	fi
}

behave() { printf '%s\n' "$*" > "$MAIN/.behaviour"; }

# ---- HTTPS fetch -----------------------------------------------------------------------------
behave ok
fetch example.test
expect "200 text/plain: success" 0 '^result=success status=200 len=[0-9]+ '
if cmp -s "$BODY" "$MAIN/.well-known/mta-sts.txt"; then world_ok "body delivered byte for byte"
else world_not_ok "body delivered byte for byte"; fi

last_request() { awk 'BEGIN{RS="";} END{print}' "$WORLD/https-127.0.0.10.requests"; }
req=$(last_request)
if grep -q '^GET /.well-known/mta-sts.txt$' <<<"$req" && grep -qi '^Host: mta-sts.example.test$' <<<"$req"; then
	world_ok "GET https://mta-sts.example.test/.well-known/mta-sts.txt"
else world_not_ok "request line and Host" "$req"; fi
if grep -qi '^User-Agent: mtasts-shim/' <<<"$req"; then world_ok "User-Agent mtasts-shim/VERSION"
else world_not_ok "User-Agent mtasts-shim/VERSION" "$req"; fi
if grep -qiE '^(If-Modified-Since|If-None-Match|Cache-Control|Cookie):' <<<"$req"; then
	world_not_ok "no conditional, cache or cookie headers" "$req"
else world_ok "no conditional, cache or cookie headers"; fi

behave ok
fetch example.test --resolve 127.0.0.10
expect "resolve pin to 127.0.0.10" 0 '^result=success status=200'
fetch example.test --resolve 127.0.0.14
expect "resolve pin to an address with nothing listening: fetch error" 1 '^result=sts-policy-fetch-error status=0 '

behave charset
fetch example.test
expect "text/plain; charset=utf-8 accepted" 0 '^result=success status=200'

behave html
fetch example.test
expect "text/html: sts-policy-invalid" 1 '^result=sts-policy-invalid status=200 .*text/html'

behave notype
fetch example.test
expect "no Content-Type: sts-policy-invalid" 1 '^result=sts-policy-invalid status=200'

behave redirect
fetch example.test
expect "301 not followed: fetch error" 1 '^result=sts-policy-fetch-error status=301 .*reason=HTTP 301 redirect not followed'
if [ "$(grep -c '^GET ' "$WORLD/https-127.0.0.10.requests")" -ge 1 ] && ! grep -q '^GET /moved.txt' "$WORLD/https-127.0.0.10.requests"; then
	world_ok "redirect target never requested"
else world_not_ok "redirect target never requested"; fi

behave 404
fetch example.test
expect "404 with a valid body: fetch error" 1 '^result=sts-policy-fetch-error status=404 .*HTTP status 404'

behave status 204
fetch example.test
expect "204: fetch error" 1 '^result=sts-policy-fetch-error status=204'

behave status 203
fetch example.test
expect "203 (other 2xx) with a valid body: fetch error" 1 '^result=sts-policy-fetch-error status=203'

behave status 304
fetch example.test
expect "304: fetch error" 1 '^result=sts-policy-fetch-error status=304'

behave big
fetch example.test
expect "70000 bytes with Content-Length: too large" 1 '^result=sts-policy-fetch-error .*larger than 65536'

behave bigchunked
fetch example.test
expect "70000 bytes chunked: too large" 1 '^result=sts-policy-fetch-error .*larger than 65536'

behave size 65536
fetch example.test
expect "exactly 65536 bytes: accepted" 0 '^result=success status=200 len=65536 '

behave chunked 65536
fetch example.test
expect "exactly 65536 bytes chunked: accepted" 0 '^result=success status=200 len=65536 '

behave chunked 65537
fetch example.test
expect "65537 bytes chunked: too large" 1 '^result=sts-policy-fetch-error .*larger than 65536'

behave hang 30
t0=$(date +%s%N)
fetch example.test --timeout 2
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
expect "server that never answers: fetch error" 1 '^result=sts-policy-fetch-error status=0 .*timeout'
if [ "$ms" -ge 1900 ] && [ "$ms" -le 3000 ]; then world_ok "timeout 2 s ends after ${ms} ms"
else world_not_ok "timeout 2 s ends after ${ms} ms (want 1900..3000)"; fi
behave ok

fetch expired.test
expect "expired certificate: sts-webpki-invalid" 1 '^result=sts-webpki-invalid status=0 '
fetch evil.test
expect "untrusted CA: sts-webpki-invalid" 1 '^result=sts-webpki-invalid status=0 '
fetch wrongname.test
expect "certificate for another name: sts-webpki-invalid" 1 '^result=sts-webpki-invalid status=0 '
fetch cnonly.test
expect "CN-only certificate (no DNS SAN): sts-webpki-invalid" 1 '^result=sts-webpki-invalid status=0 '
fetch wild.test
expect "SAN *.wild.test matches mta-sts.wild.test" 0 '^result=success status=200'
fetch partial.test
expect "partial wildcard mta-*.partial.test: sts-webpki-invalid" 1 '^result=sts-webpki-invalid status=0 '
fetch evil.test --ca-file "$WORLD/pki/evil-ca.pem"
expect "the same server with its CA as trust store: success" 0 '^result=success status=200'
fetch example.test --ca-file "$WORLD/pki/evil-ca.pem"
expect "ca_file is the whole trust store (system CAs dropped)" 1 '^result=sts-webpki-invalid'
fetch refused.test
expect "connection refused: fetch error" 1 '^result=sts-policy-fetch-error status=0 '
fetch nonexistent.test
expect "policy host NXDOMAIN: fetch error" 1 '^result=sts-policy-fetch-error status=0 '
fetch v6.test
expect "IPv6 policy host fd00::18" 0 '^result=success status=200'
fetch v6.test --resolve fd00::18
expect "resolve pin to [fd00::18]" 0 '^result=success status=200'
https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 fetch example.test
expect "proxy environment ignored" 0 '^result=success status=200'
fetch example.test --proxy http://127.0.0.1:9
expect "explicit proxy is used (nothing there: fetch error)" 1 '^result=sts-policy-fetch-error status=0 '
fetch 'example.test/x?' 
expect "domain with URL characters rejected" 1 '^result=sts-policy-fetch-error status=0 .*invalid policy domain'

# ---- DNS ---------------------------------------------------------------------------------------
# txt NAME WANT_RC EXPECTED_OUTPUT DESC [probe options]
txt() {
	local name=$1 want=$2 expected=$3 desc=$4; shift 4
	local got rc
	got=$("$PROBE" txt "$name" "$@" 2>&1); rc=$?
	if [ "$rc" = "$want" ] && [ "$got" = "$expected" ]; then world_ok "$desc"
	else world_not_ok "$desc" "rc=$rc got: $(tr '\n' '|' <<<"$got") want: $(tr '\n' '|' <<<"$expected")"; fi
}
sorted() { sort <<<"$1"; }

txt _mta-sts.example.test 0 "v=STSv1; id=1;" "TXT single record"
txt _mta-sts.example.test. 0 "v=STSv1; id=1;" "TXT name with trailing dot"
txt _MTA-STS.Example.TEST 0 "v=STSv1; id=1;" "TXT name in mixed case"
txt _mta-sts.split.test 0 "v=STSv1; id=abc123;" "TXT split strings joined with nothing"
got=$("$PROBE" txt _mta-sts.two.test 2>&1); rc=$?
if [ "$rc" = 0 ] && [ "$(sorted "$got")" = $'v=STSv1; id=1;\nv=STSv1; id=2;' ]; then world_ok "TXT two STS records both returned"
else world_not_ok "TXT two STS records both returned" "rc=$rc $got"; fi
txt _mta-sts.alias.test 0 "v=STSv1; id=cn1;" "TXT through a CNAME"
txt _mta-sts.none.test 1 "status=NOT_FOUND" "NXDOMAIN: NOT_FOUND"
txt _mta-sts.nodata.test 1 "status=NOT_FOUND" "NODATA: NOT_FOUND"
txt _mta-sts.example.test 1 "status=DNS_TEMP" "nothing listening on the server port: DNS_TEMP" \
	--servers 127.0.0.1:5353 --timeout-ms 300
t0=$(date +%s%N)
txt _mta-sts.broken.test 1 "status=DNS_TEMP" "upstream that never answers: DNS_TEMP" --timeout-ms 300
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$ms" -le 2500 ]; then world_ok "DNS timeout 300 ms x 2 tries ends after ${ms} ms"
else world_not_ok "DNS timeout 300 ms x 2 tries ends after ${ms} ms (want <= 2500)"; fi
txt _mta-sts.example.test 0 "v=STSv1; id=1;" "explicit servers list 127.0.0.1:53" --servers 127.0.0.1:53
txt _mta-sts.example.test 0 "v=STSv1; id=1;" "servers list: first dead, second alive" \
	--servers 127.0.0.1:5353,127.0.0.1:53 --timeout-ms 300
txt _mta-sts.example.test 1 "status=INVALID_ARG" "bad servers string rejected" --servers 'not an address'

got=$("$PROBE" addrs v6.test 2>&1); rc=$?
if [ "$rc" = 0 ] && [ "$(sorted "$got")" = $'127.0.0.20\nfd00::20' ]; then world_ok "addrs: A and AAAA"
else world_not_ok "addrs: A and AAAA" "rc=$rc $got"; fi
got=$("$PROBE" addrs mta-sts.example.test 2>&1); rc=$?
if [ "$rc" = 0 ] && [ "$got" = "127.0.0.10" ]; then world_ok "addrs: A only"
else world_not_ok "addrs: A only" "rc=$rc $got"; fi
got=$("$PROBE" addrs nothing.test 2>&1); rc=$?
if [ "$rc" = 1 ] && [ "$got" = "status=NOT_FOUND" ]; then world_ok "addrs: NXDOMAIN"
else world_not_ok "addrs: NXDOMAIN" "rc=$rc $got"; fi

# dnsmasq reloaded with other records (world_dns_restart)
world_dns_restart --txt-record=_mta-sts.example.test,"v=STSv1; id=2;" || exit 1
txt _mta-sts.example.test 0 "v=STSv1; id=2;" "world_dns_restart replaces the records"

world_finish
