#!/bin/bash
# test-discovery.sh - RFC 8461 discovery through `mtasts query` against a real dnsmasq and a
# real HTTPS policy host on loopback: the cache rules of §3.1, §3.3 and §5.1 (a vanished or
# broken TXT record keeps a cached policy, a failed fetch keeps it, id changes refetch, back-off
# per (domain, id), expiry, mode none) and the exit codes the shim and operators rely on.
source "$(dirname "$0")/../lib/world.sh"
world_enter "$@"

M=$BUILD/mtasts
DOC=$WORLD/www
POLICY=$DOC/.well-known/mta-sts.txt
REQS=$WORLD/https-127.0.0.10.requests
mkdir -p "$DOC/.well-known" "$WORLD/cache"
cat > "$WORLD/mtasts.conf" <<EOF
cache_dir = $WORLD/cache
ca_file = $WORLD/pki/ca.pem
fetch_timeout = 2
log = stderr
EOF
export MTASTS_CONFIG=$WORLD/mtasts.conf

world_pki
world_cert mta-sts.example.test
world_cert mta-sts.wrongname.test --san DNS:other.example.test
world_cert mta-sts.expired.test --expired
world_cert mta-sts.untrusted.test --ca evil

enforce_policy() {  # MX...
	{
		printf 'version: STSv1\r\nmode: enforce\r\n'
		for mx in "$@"; do printf 'mx: %s\r\n' "$mx"; done
		printf 'max_age: 604800\r\n'
	} > "$POLICY"
}

dns() {  # TXT... for _mta-sts.example.test ("-" for none)
	local args=(--host-record=mta-sts.example.test,127.0.0.10 --mx-host=example.test,mx1.example.test,10
		--host-record=mx1.example.test,127.0.0.11)
	for t in "$@"; do
		[ "$t" = - ] || args+=("--txt-record=_mta-sts.example.test,$t")
	done
	world_dns_restart "${args[@]}"
}

requests() { grep -c '^GET ' "$REQS" 2>/dev/null || echo 0; }

# age_fetch DOMAIN SECONDS: make the cached entry's last fetch look SECONDS older (a stand-in
# for waiting), replacing the file atomically as the cache itself does.
age_fetch() {
	python3 - "$WORLD/cache" "$1" "$2" <<'EOF'
import os, re, sys
top, domain, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
for root, _, files in os.walk(top):
    if domain in files:
        path = os.path.join(root, domain)
        data = open(path, "rb").read()
        data = re.sub(rb"fetched_at: (\d+)", lambda m: b"fetched_at: %d" % (int(m.group(1)) - seconds), data)
        open(path + "@edit", "wb").write(data)
        os.rename(path + "@edit", path)
EOF
}

# expect DESC EXIT [PATTERN-IN-OUTPUT] -- ARGS of mtasts
expect() {
	local desc=$1 want=$2 pattern=$3; shift 4
	local out rc
	out=$("$M" "$@" 2>&1); rc=$?
	if [ "$rc" != "$want" ]; then
		world_not_ok "$desc" "exit $rc, wanted $want: $out"
	elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out"; then
		world_not_ok "$desc" "output lacks /$pattern/: $out"
	else
		world_ok "$desc"
	fi
}

world_https_start 127.0.0.10 mta-sts.example.test "$DOC"

# --- no policy at all --------------------------------------------------------------------------
dns -
enforce_policy mx1.example.test
expect "no TXT record: no policy (exit 3)" 3 "no policy" -- query example.test
expect "no TXT record: the policy host is not asked" 0 "" -- match x x
[ "$(requests)" = 0 ] && world_ok "no HTTPS request without a TXT record" || world_not_ok "no HTTPS request without a TXT record"

dns 'v=STSv1; id=1' 'v=STSv1; id=2'
expect "two STS TXT records: no policy (exit 3)" 3 "more than one" -- query example.test
dns 'v=STSv1; id=1' 'v=spf1 -all'
expect "an STS record beside an unrelated one is used" 0 '"id":"1"' -- query --json example.test
"$M" cache flush example.test >/dev/null

# --- split strings, JSON output, cache hit ------------------------------------------------------
dns 'v=STSv1; i,d=split1;'   # dnsmasq: a comma starts a new character-string
expect "split TXT strings are joined with nothing" 0 '"id":"split1"' -- query --json example.test
"$M" cache flush example.test >/dev/null
expect "first query comes from the network (trailing dot ignored)" 0 '"source":"network"' -- query --json example.test.
expect "JSON carries mx as an array and RFC 3339 times" 0 \
	'"mx":\["mx1.example.test"\].*"fetched_at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z"' -- query --json example.test
n=$(requests)
expect "same id again: served from the cache" 0 '"source":"cache"' -- query --json EXAMPLE.test
[ "$(requests)" = "$n" ] && world_ok "a cache hit makes no HTTPS request" || world_not_ok "a cache hit makes no HTTPS request"
expect "cache list shows the domain" 0 'example.test +enforce +id=split1' -- cache list
expect "cache show prints the stored entry" 0 'mx1.example.test' -- cache show example.test

# --- id change refetches; TXT gone keeps the cached policy -------------------------------------
enforce_policy mx1.example.test mx2.example.test
dns 'v=STSv1; id=two'

expect "a new id with a cached policy inside 60 s is postponed (flap guard)" 0 '"id":"split1"' -- query --json example.test
"$M" cache flush example.test >/dev/null
expect "a new id fetches the new policy" 0 '"mx":\["mx1.example.test","mx2.example.test"\]' -- query --json example.test
dns -
expect "TXT record gone: the cached policy stays in force" 0 '"id":"two".*"source":"cache"' -- query --json example.test
dns 'v=STSv1; id=two' 'v=STSv1; id=three'
expect "two TXT records with a cached policy: still the cached one" 0 '"id":"two"' -- query --json example.test
dns 'v=STSv1; id=bad-id'
expect "a malformed TXT record with a cached policy: still the cached one" 0 '"id":"two"' -- query --json example.test

# --- a failing fetch keeps the cached policy and backs off --------------------------------------
echo "404" > "$DOC/.behaviour"
dns 'v=STSv1; id=four'
age_fetch example.test 120   # past the 60 s guard against id flapping
expect "id change with a failing fetch: the failure is said" 0 'cached policy: sts-policy-fetch-error' -- query --json example.test
expect "...and the cached policy is used" 0 '"id":"two"' -- query --json example.test
n=$(requests)
expect "back-off: the same (domain, id) is not fetched again within 5 minutes" 0 '"id":"two"' -- query --json example.test
[ "$(requests)" = "$n" ] && world_ok "no HTTPS request while backing off" || world_not_ok "no HTTPS request while backing off"
rm -f "$DOC/.behaviour"

# --- nothing cached: each fetch failure is exit 4 with its RFC 8460 result type -----------------
fail_case() {  # DESC BEHAVIOUR RESULT
	"$M" cache flush example.test >/dev/null 2>&1
	echo "$2" > "$DOC/.behaviour"
	expect "$1" 4 "$3" -- query example.test
	rm -f "$DOC/.behaviour"
}
dns 'v=STSv1; id=five'
fail_case "redirect is not followed" redirect "sts-policy-fetch-error.*(3[0-9][0-9]|redirect)"
fail_case "404 with a valid body is a failure" 404 "sts-policy-fetch-error.*404"
fail_case "204 is not 200" "status 204" "sts-policy-fetch-error"
fail_case "text/html is refused" html "sts-policy-invalid"
fail_case "a body over 64 KiB with Content-Length" big "sts-policy-fetch-error"
fail_case "a chunked body over 64 KiB" bigchunked "sts-policy-fetch-error"
t0=$(date +%s%N)
fail_case "a host that never answers" "hang 20" "sts-policy-fetch-error"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$ms" -ge 1500 ] && [ "$ms" -lt 4500 ]; then world_ok "the hang ends near fetch_timeout=2s (${ms} ms)"
else world_not_ok "the hang ends near fetch_timeout=2s" "${ms} ms"; fi
"$M" cache flush example.test >/dev/null
echo charset > "$DOC/.behaviour"
expect "text/plain; charset=utf-8 is accepted" 0 '"source":"network"' -- query --json example.test
rm -f "$DOC/.behaviour"
"$M" cache flush example.test >/dev/null
printf 'version: STSv1\nmode: enforce\nmax_age: 86400\n' > "$POLICY"
expect "enforce without mx is invalid" 4 "sts-policy-invalid" -- query example.test

# --- certificates of the policy host -------------------------------------------------------------
cert_case() {  # DESC DOMAIN ADDR CERT
	world_https_start "$3" "$4" "$DOC"
	world_dns_restart --host-record="mta-sts.$2,$3" --txt-record="_mta-sts.$2,v=STSv1; id=1"
	expect "$1" 4 "sts-webpki-invalid" -- query "$2"
}
enforce_policy mx1.example.test
cert_case "a certificate for another name" wrongname.test 127.0.0.20 mta-sts.wrongname.test
cert_case "an expired certificate" expired.test 127.0.0.21 mta-sts.expired.test
cert_case "a certificate from an untrusted CA" untrusted.test 127.0.0.22 mta-sts.untrusted.test
world_dns_restart --txt-record="_mta-sts.down.test,v=STSv1; id=1" --host-record=mta-sts.down.test,127.0.0.23
expect "policy host down, nothing cached: exit 4" 4 "sts-policy-fetch-error" -- query down.test

# --- mode none replaces an older policy; expiry ------------------------------------------------
"$M" cache flush >/dev/null
dns 'v=STSv1; id=six'
enforce_policy mx1.example.test
expect "enforce policy cached" 0 '"mode":"enforce"' -- query --json example.test
printf 'version: STSv1\nmode: none\nmax_age: 86400\n' > "$POLICY"
dns 'v=STSv1; id=seven'
age_fetch example.test 120
expect "mode none replaces the older enforce policy" 0 '"mode":"none"' -- query --json example.test
printf 'version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 1\n' > "$POLICY"
"$M" cache flush >/dev/null
dns 'v=STSv1; id=eight'
expect "a policy with max_age 1 is fetched" 0 '"max_age":1' -- query --json example.test
sleep 1.2
dns -
expect "after max_age, with the TXT record gone: no policy" 3 "no policy" -- query example.test

# --- refresh re-fetches whatever the id says --------------------------------------------------
enforce_policy mx1.example.test
dns 'v=STSv1; id=nine'
"$M" cache flush >/dev/null
"$M" query example.test >/dev/null
n=$(requests)
expect "refresh --all re-fetches over HTTPS with an unchanged id" 0 "1 due, 1 refreshed, 0 failed" -- refresh --all
[ "$(requests)" -gt "$n" ] && world_ok "refresh made an HTTPS request" || world_not_ok "refresh made an HTTPS request"
expect "refresh without --all: nothing due yet" 0 "0 due" -- refresh
echo 500 > "$DOC/.behaviour"; echo "status 500" > "$DOC/.behaviour"
expect "refresh with a failing host: exit 1, policy kept" 1 "1 failed" -- refresh --all
expect "...the policy is still cached" 0 '"id":"nine"' -- query --json example.test
rm -f "$DOC/.behaviour"

# --- refresh with the TXT record gone (§10.2): fetch under the cached id, never resurrect -------
# set_field DOMAIN KEY VALUE: rewrite one header field of the cached entry (atomically)
set_field() {
	python3 - "$WORLD/cache" "$1" "$2" "$3" <<'EOF'
import os, re, sys
top, domain, key, value = sys.argv[1:5]
for root, _, files in os.walk(top):
    if domain in files:
        path = os.path.join(root, domain)
        data = open(path, "rb").read()
        data = re.sub(rb"(?m)^" + key.encode() + rb": .*$", (key + ": " + value).encode(), data, count=1)
        open(path + "@edit", "wb").write(data)
        os.rename(path + "@edit", path)
EOF
}
"$M" cache flush >/dev/null
"$M" query example.test >/dev/null
dns -
n=$(requests)
out=$(valgrind -q --error-exitcode=99 "$M" refresh --all 2>&1); rc=$?
if [ "$rc" = 0 ] && grep -q "1 due, 1 refreshed, 0 failed" <<<"$out" && [ "$(requests)" -gt "$n" ]; then
	world_ok "refresh with the TXT record gone re-fetches under the cached id (clean under valgrind)"
else
	world_not_ok "refresh with the TXT record gone re-fetches under the cached id (clean under valgrind)" "exit $rc: $out"
fi
expect "...and keeps the id it was fetched under" 0 '"id":"nine".*"source":"cache"' -- query --json example.test
set_field example.test expires_at $(( $(date +%s) - 10 ))   # the policy has expired
n=$(requests)
expect "refresh of an expired policy whose record is gone: not due" 0 "0 due, 0 refreshed, 0 failed" -- refresh --all
[ "$(requests)" = "$n" ] && world_ok "an expired policy is not brought back by refresh" || world_not_ok "an expired policy is not brought back by refresh"
expect "...and it no longer applies" 3 "no policy" -- query example.test

# --- max_age 0 (STS-058): used once, not kept; it replaces an older policy ----------------------------
"$M" cache flush >/dev/null
enforce_policy mx1.example.test
dns 'v=STSv1; id=ten'
expect "an enforce policy is cached" 0 '"mode":"enforce"' -- query --json example.test
printf 'version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 0\n' > "$POLICY"
dns 'v=STSv1; id=eleven'
age_fetch example.test 120
expect "a max_age 0 policy replaces the cached one and is used for this call" 0 \
	'"mode":"testing","max_age":0.*"source":"network"' -- query --json example.test
expect "...it is not kept: the next call fetches again" 0 '"max_age":0.*"source":"network"' -- query --json example.test
dns -
expect "...and with the record gone the older enforce policy does not come back" 3 "no policy" -- query example.test

# --- concurrency: the per-domain lock --------------------------------------------------------------
lockfile() { find "$WORLD/cache" -name "$1@L" | head -n 1; }
# hold_lock FILE SECONDS: another process holds the flock of FILE (sets holder); returns once held
hold_lock() {
	rm -f "$WORLD/held"
	world_bg holder python3 -c 'import fcntl, sys, time
f = open(sys.argv[1])
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[3], "w").close()
time.sleep(float(sys.argv[2]))' "$1" "$2" "$WORLD/held"
	holder=$WORLD_PID
	for _ in $(seq 1 100); do [ -e "$WORLD/held" ] && return 0; sleep 0.02; done
	world_not_ok "lock holder started"
}
entry_file() { find "$WORLD/cache" -name "$1" -type f | head -n 1; }
"$M" cache flush >/dev/null
enforce_policy mx1.example.test
dns 'v=STSv1; id=twelve'
"$M" query example.test >/dev/null
L=$(lockfile example.test)
E=$(entry_file example.test)
[ -n "$L" ] && [ -n "$E" ] && world_ok "lock file and entry exist" || world_not_ok "lock file and entry exist" "lock '$L' entry '$E'"
# A process that needs no fetch must not write while another holds the lock (it would write back
# what it read before the holder stored its fetch): the entry stays byte for byte.
python3 - "$E" <<'EOF'
import os, re, sys
p = sys.argv[1]
d = re.sub(rb"txt_checked_at: \d+", b"txt_checked_at: 1", open(p, "rb").read())
open(p + "@edit", "wb").write(d)
os.rename(p + "@edit", p)
EOF
before=$(sha256sum < "$E")
hold_lock "$L" 30
expect "a cache hit while another process holds the lock" 0 '"source":"cache"' -- query --json example.test
[ "$(sha256sum < "$E")" = "$before" ] && world_ok "...writes nothing while the lock is held" ||
	world_not_ok "...writes nothing while the lock is held" "$(grep txt_checked_at "$E")"
world_stop "$holder"
expect "a cache hit with the lock free" 0 '"source":"cache"' -- query --json example.test
grep -q '^txt_checked_at: 1$' "$E" && world_not_ok "...records the TXT check" || world_ok "...records the TXT check"

# Concurrent fetchers of a new id wait for the lock holder, and then only one of them fetches.
"$M" cache flush example.test >/dev/null
dns 'v=STSv1; id=thirteen'
hold_lock "$L" 1
n=$(requests)
pids=()
for i in 1 2 3 4 5; do "$M" fetch example.test & pids+=($!); done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
world_stop "$holder"
got=$(( $(requests) - n ))
[ "$fails" = 0 ] && [ "$got" = 1 ] && world_ok "5 concurrent fetches of one domain: all exit 0, one HTTPS request" ||
	world_not_ok "5 concurrent fetches of one domain: all exit 0, one HTTPS request" "$fails failed, $got requests"
expect "...and the policy is cached" 0 '"id":"thirteen".*"source":"cache"' -- query --json example.test

# A lock held far longer than any fetch takes (a stuck process) does not block for ever.
"$M" cache flush example.test >/dev/null
hold_lock "$L" 60
t0=$(date +%s%N)
expect "a stuck lock holder: exit 4 after a bounded wait" 4 "another process" -- query example.test
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
world_stop "$holder"
[ "$ms" -lt 10000 ] && world_ok "the wait is bounded (${ms} ms for fetch_timeout=2)" || world_not_ok "the wait is bounded" "${ms} ms"

# --- the policy host is resolved with the configured DNS servers only -----------------------------
world_dns_restart '--txt-record=_mta-sts.noaddr.test,v=STSv1; id=1'
MTASTS_DNS_SERVERS=127.0.0.1 expect "policy host without an address: exit 4, said clearly" 4 \
	"mta-sts.noaddr.test has no A or AAAA record" -- query noaddr.test

# --- the request the policy host saw ----------------------------------------------------------
if grep -q '^GET /.well-known/mta-sts.txt' "$REQS" && ! grep -Eqi '^(If-Modified-Since|If-None-Match):' "$REQS"; then
	world_ok "GET /.well-known/mta-sts.txt without conditional headers"
else
	world_not_ok "GET /.well-known/mta-sts.txt without conditional headers"
fi
# --- a TXT lookup that fails temporarily (STS-026): no policy now, looked at again soon ---------
world_dns_restart --server=/tempfail.test/127.0.0.99
MTASTS_FETCH_TIMEOUT=6 expect "SERVFAIL/time-out with nothing cached: no policy (exit 3)" 3 \
	"treated as no policy" -- query tempfail.test
checked=$("$M" cache show tempfail.test | sed -n 's/^txt_checked_at: //p')
ago=$(( $(date +%s) - ${checked:-0} ))
# txt_recheck is 3600 s here: the entry must come due again after the 300 s back-off
if [ "$ago" -ge 3290 ] && [ "$ago" -le 3320 ]; then
	world_ok "the temporary failure is re-checked after 5 minutes, not txt_recheck (dated ${ago} s ago)"
else
	world_not_ok "temporary TXT failure re-checked after 5 minutes" "txt_checked_at dated ${ago} s ago"
fi

expect "an address literal has no policy" 3 "address literal" -- query '[127.0.0.1]'
expect "a bad domain is a usage error" 64 "not a valid domain" -- query 'exa_mple..test'

world_finish
