#!/bin/bash
# test-cli.sh - the `mtasts` command interface that outside tests depend on (README, "The `mtasts`
# command"): --version, --help on every subcommand, usage errors (64), the offline checks with the
# checklist's Part D vectors (check-txt, check-policy, match, verify-cert), query/fetch exit codes
# 0/3/4/70 and JSON fields, cache list/show/flush, configuration errors, and secure-execution mode
# (a set-user-ID copy reads only the root-owned default file, never the environment or --config).
# Runs in the loopback world: nothing leaves the namespace.
source "$(dirname "$0")/../lib/world.sh"
world_enter "$@"

M=$BUILD/mtasts
DOC=$WORLD/www
mkdir -p "$DOC/.well-known" "$WORLD/cache"
cat > "$WORLD/mtasts.conf" <<EOF
cache_dir = $WORLD/cache
ca_file = $WORLD/pki/ca.pem
dns_servers = 127.0.0.1
fetch_timeout = 2
log = stderr
EOF
export MTASTS_CONFIG=$WORLD/mtasts.conf

# expect DESC EXIT PATTERN -- ARGS: run mtasts, check the exit status and (if given) that the
# combined output matches the extended regular expression PATTERN.
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

# expect_in DESC EXIT EXACT-STDOUT INPUT -- ARGS: INPUT (printf format) on standard input, stdout
# compared exactly.
expect_in() {
	local desc=$1 want=$2 exact=$3 input=$4; shift 5
	local out rc
	# shellcheck disable=SC2059
	out=$(printf "$input" | "$M" "$@" 2>/dev/null); rc=$?
	if [ "$rc" != "$want" ]; then
		world_not_ok "$desc" "exit $rc, wanted $want: $out"
	elif [ "$out" != "$exact" ]; then
		world_not_ok "$desc" "stdout '$out', wanted '$exact'"
	else
		world_ok "$desc"
	fi
}

# --- global options and usage errors ------------------------------------------------------------
expect "--version" 0 '^mtasts [0-9]+\.[0-9]+\.[0-9]+$' -- --version
expect "--help" 0 '^usage: mtasts' -- --help
expect "no command: usage error" 64 'usage: mtasts' --
expect "unknown command: usage error" 64 "unknown command 'frobnicate'" -- frobnicate
expect "unknown option: usage error" 64 'unknown option --frob' -- --frob query x.test
expect "--config without a file: usage error" 64 '--config needs a FILE' -- --config
for cmd in check-txt check-policy match query fetch refresh cache verify-cert; do
	out=$("$M" "$cmd" --help 2>/dev/null); rc=$?
	if [ "$rc" = 0 ] && [[ $(head -n 1 <<<"$out") == "usage: mtasts $cmd"* ]]; then
		world_ok "$cmd --help: exit 0, usage on stdout"
	else
		world_not_ok "$cmd --help: exit 0, usage on stdout" "exit $rc: $out"
	fi
done
expect "check-policy -h" 0 '^usage: mtasts check-policy' -- check-policy -h
expect "check-txt without a record" 64 'usage: mtasts check-txt' -- check-txt
expect "check-policy with two files" 64 'usage: mtasts check-policy' -- check-policy a b
expect "check-policy of a missing file" 64 'cannot read /nonexistent/policy' -- check-policy /nonexistent/policy
expect "check-policy of a directory" 64 'cannot read' -- check-policy /
expect "match with one argument" 64 'usage: mtasts match' -- match a.example
expect "query without a domain" 64 'usage: mtasts query' -- query
expect "query with two domains" 64 'usage: mtasts query' -- query a.test b.test
expect "query with an unknown option" 64 'usage: mtasts query' -- query --xml a.test
expect "fetch without a domain" 64 'usage: mtasts fetch' -- fetch
expect "refresh with a stray argument" 64 'usage: mtasts refresh' -- refresh --some
expect "cache without an action" 64 'usage: mtasts cache' -- cache
expect "cache with an unknown action" 64 'usage: mtasts cache' -- cache purge
expect "cache show without a domain" 64 'usage: mtasts cache' -- cache show
expect "verify-cert without --host" 64 'usage: mtasts verify-cert' -- verify-cert /dev/null
expect "verify-cert with an unknown option" 64 'usage: mtasts verify-cert' -- verify-cert --hots x /dev/null
expect "verify-cert of a missing chain file" 64 'cannot read /nonexistent.pem' -- verify-cert --host a.test /nonexistent.pem
expect "a bad domain is a usage error" 64 'not a valid domain' -- query 'exa_mple..test'

# --- check-txt: Part D TXT vectors -----------------------------------------------------------------
expect "TXT v=STSv1; id=20160831085700Z;" 0 '^id=20160831085700Z$' -- check-txt 'v=STSv1; id=20160831085700Z;'
expect "TXT v=STSv1;id=abc" 0 '^id=abc$' -- check-txt 'v=STSv1;id=abc'
expect "TXT with an extension" 0 '^id=A1$' -- check-txt 'v=STSv1; id=A1; foo.bar=baz'
expect "TXT id of 32 characters" 0 "^id=$(printf 'a%.0s' {1..32})\$" -- check-txt "v=STSv1; id=$(printf 'a%.0s' {1..32})"
expect "TXT v=STSv1 alone" 1 'no policy' -- check-txt 'v=STSv1'
expect "TXT id with dashes" 1 'no policy' -- check-txt 'v=STSv1; id=2016-08-31'
expect "TXT id of 33 characters" 1 'no policy' -- check-txt "v=STSv1; id=$(printf 'a%.0s' {1..33})"
expect "TXT V=STSv1" 1 'no policy' -- check-txt 'V=STSv1; id=1'
expect "TXT version not first" 1 'no policy' -- check-txt 'id=1; v=STSv1'
expect "TXT '=' in an extension value" 1 'no policy' -- check-txt 'v=STSv1; id=1; x=a=b'
expect "TXT RRset with an SPF record" 0 '^id=1$' -- check-txt 'v=STSv1; id=1' 'v=spf1 -all'
expect "TXT RRset with two STS records" 1 'more than one' -- check-txt 'v=STSv1; id=1' 'v=STSv1; id=2'
expect "TXT RRset without an STS record" 1 'no policy' -- check-txt 'v=spf1 -all'

# --- check-policy: Part D policy vectors -------------------------------------------------------------
want='{"version":"STSv1","mode":"enforce","max_age":604800,"mx":["mail.example.com","*.example.net"]}'
body='version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800'
expect_in "policy with LF" 0 "$want" "$body\n" -- check-policy
expect_in "policy with CRLF" 0 "$want" "${body//\\n/\\r\\n}\r\n" -- check-policy -
expect_in "policy without a final newline" 0 "$want" "$body" -- check-policy
printf "$body\n" > "$WORLD/policy.txt"
expect "policy from a file" 0 '"mx":\["mail.example.com","\*.example.net"\]' -- check-policy "$WORLD/policy.txt"
expect_in "mode none without mx" 0 '{"version":"STSv1","mode":"none","max_age":86400,"mx":[]}' \
	'mode: none\nversion: STSv1\nmax_age: 86400' -- check-policy
expect_in "max_age 0 is valid" 0 '{"version":"STSv1","mode":"none","max_age":0,"mx":[]}' \
	'version: STSv1\nmode: none\nmax_age: 0\n' -- check-policy
expect_in "duplicate mode: the first wins" 0 '{"version":"STSv1","mode":"testing","max_age":86400,"mx":["mx.example.com"]}' \
	'version: STSv1\nmode: testing\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n' -- check-policy
expect_in "max_age 9999999999 is clamped" 0 '{"version":"STSv1","mode":"testing","max_age":31557600,"mx":["mx.example.com"]}' \
	'version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 9999999999\n' -- check-policy
for bad in 'version: STSv1\nmode: enforce\nmax_age: 86400\n' \
	'version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 86400\n' \
	'version : STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n' \
	'version: STSv1\nmode: enforce\nmx: mail.example.com, mx2.example.com\nmax_age: 86400\n' \
	'version: STSv1\nmode: enforce\nmx: b\xc3\xbccher.example\nmax_age: 86400\n' \
	'version: STSv1\nmode: enforce\nmx: a.example\n'; do
	expect_in "invalid policy: $(printf '%s' "${bad%%\\nmax_age*}" | tr '\n' ' ' | cut -c1-50)" 1 "" "$bad" -- check-policy
done
head -c 70000 /dev/zero | tr '\0' '#' > "$WORLD/big.txt"
expect "policy over 64 KiB" 1 'invalid policy' -- check-policy "$WORLD/big.txt"

# --- match: Part D MX vectors -----------------------------------------------------------------------
expect "match exact, case and trailing dot" 0 "" -- match mail.example.com MAIL.example.com.
expect "match wildcard one label" 0 "" -- match '*.example.com' mx1.example.com
expect "wildcard does not match the parent" 1 "" -- match '*.example.com' example.com
expect "wildcard does not match two labels" 1 "" -- match '*.example.com' a.mx1.example.com
expect "wildcard over A-labels" 0 "" -- match '*.xn--bcher-kva.example' mx.xn--bcher-kva.example
expect "no match" 1 "" -- match mail.example.com mail.example.net

# --- verify-cert: Part D certificate vectors -----------------------------------------------------
world_pki
world_cert wild.example.com --san 'DNS:*.example.com'
world_cert partial.example.com --san 'DNS:m*.example.com'
world_cert cnonly.example.com --cn-only --cn mx1.example.com
world_cert mx1.example.com --expired
world_cert evil.example.com --ca evil --san DNS:mx1.example.com
P=$WORLD/pki
expect "SAN *.example.com passes for mx1.example.com" 0 '^ok$' -- verify-cert --host mx1.example.com --ca-file "$P/ca.pem" "$P/wild.example.com.chain.pem"
expect "SAN *.example.com fails for example.com" 1 '^certificate-host-mismatch' -- verify-cert --host example.com --ca-file "$P/ca.pem" "$P/wild.example.com.chain.pem"
expect "partial wildcard m*.example.com is rejected" 1 '^certificate-host-mismatch' -- verify-cert --host mx1.example.com --ca-file "$P/ca.pem" "$P/partial.example.com.chain.pem"
expect "CN only, no DNS SAN, fails" 1 '^certificate-host-mismatch' -- verify-cert --host mx1.example.com --ca-file "$P/ca.pem" "$P/cnonly.example.com.chain.pem"
expect "expired certificate" 1 '^certificate-expired' -- verify-cert --host mx1.example.com --ca-file "$P/ca.pem" "$P/mx1.example.com.chain.pem"
expect "untrusted CA" 1 '^certificate-not-trusted' -- verify-cert --host mx1.example.com --ca-file "$P/ca.pem" "$P/evil.example.com.chain.pem"
expect "verify-cert --ca-file from the configuration" 0 '^ok$' -- verify-cert --host mx1.example.com "$P/wild.example.com.chain.pem"
expect "verify-cert with a missing trust store" 64 'cannot read the trust store' -- verify-cert --host mx1.example.com --ca-file /nonexistent/ca.pem "$P/wild.example.com.chain.pem"

# --- query and fetch against the loopback DNS and policy host -----------------------------------------
world_cert mta-sts.example.test
world_cert mta-sts.other.test --san DNS:mta-sts.other.test,DNS:mta-sts.third.test
printf 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 604800\n' > "$DOC/.well-known/mta-sts.txt"
world_https_start 127.0.0.10 mta-sts.example.test "$DOC"
world_https_start 127.0.0.12 mta-sts.other.test "$DOC"
world_dns_start --host-record=mta-sts.example.test,127.0.0.10 --host-record=mta-sts.other.test,127.0.0.12 \
	"--txt-record=_mta-sts.example.test,v=STSv1; id=one" "--txt-record=_mta-sts.other.test,v=STSv1; id=two" \
	"--txt-record=_mta-sts.down.test,v=STSv1; id=1" --host-record=mta-sts.down.test,127.0.0.23 \
	"--txt-record=_mta-sts.third.test,v=STSv1; id=3" --host-record=mta-sts.third.test,127.0.0.12

expect "query of a domain without a record: exit 3" 3 'no policy' -- query none.test
expect "query of an address literal: exit 3" 3 'address literal' -- query '[192.0.2.1]'
expect "query with a record but the policy host down: exit 4" 4 'sts-policy-fetch-error' -- query down.test
out=$("$M" fetch down.test 2>&1); rc=$?
[ "$rc" = 4 ] && [ -z "$out" ] && world_ok "fetch is quiet and exits 4 the same" || world_not_ok "fetch is quiet and exits 4 the same" "exit $rc: $out"
out=$("$M" fetch example.test 2>&1); rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] && world_ok "fetch of a good domain: exit 0, no output" || world_not_ok "fetch of a good domain: exit 0, no output" "exit $rc: $out"
json=$("$M" query --json example.test 2>/dev/null)
if python3 - "$json" <<'EOF'
import json, re, sys
d = json.loads(sys.argv[1])
t = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
assert set(d) == {"domain", "id", "mode", "max_age", "mx", "fetched_at", "expires_at", "source"}, d
assert d["domain"] == "example.test" and d["id"] == "one" and d["mode"] == "enforce", d
assert d["max_age"] == 604800 and d["mx"] == ["mx1.example.test"] and d["source"] == "cache", d
assert t.match(d["fetched_at"]) and t.match(d["expires_at"]) and d["expires_at"] > d["fetched_at"], d
EOF
then world_ok "query --json: exactly the README's fields, RFC 3339 times"
else world_not_ok "query --json: exactly the README's fields, RFC 3339 times" "$json"; fi
expect "query text output" 0 '^mode: enforce$' -- query example.test
expect "query U-label is converted to A-labels" 3 'xn--bcher-kva.test' -- query 'bücher.test'

# --- cache list / show / flush -------------------------------------------------------------------
expect "query of a second domain" 0 '"source":"network"' -- query --json other.test
expect "cache list shows both" 0 'other\.test +enforce +id=two' -- cache list
expect "cache list marks a failed fetch" 0 'down\.test.*no policy \(fetch failed\)' -- cache list
expect "cache show" 0 '^domain: example\.test$' -- cache show example.test
expect "cache show of an uncached domain: exit 3" 3 'not found' -- cache show never.test
expect "cache flush DOMAIN" 0 '' -- cache flush example.test
expect "cache flush of an uncached domain: exit 3" 3 'not cached' -- cache flush example.test
expect "cache show after flush: exit 3" 3 '' -- cache show example.test
expect "cache flush all counts what it removed" 0 '^flushed [0-9]+ entries$' -- cache flush
out=$("$M" cache list 2>&1); rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] && world_ok "cache list of an empty cache" || world_not_ok "cache list of an empty cache" "exit $rc: $out"
printf 'cache_dir = /nonexistent/cache\n' > "$WORLD/nocache.conf"
expect "cache list without a cache directory: exit 70" 70 'cache /nonexistent/cache' -- --config="$WORLD/nocache.conf" cache list

# --- the cache cannot be written: query still answers, fetch says so ---------------------------------
chown 0:0 "$WORLD/cache" && chmod 755 "$WORLD/cache"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
out=$(as_nobody "$M" query --json third.test 2>&1); rc=$?
if [ "$rc" = 0 ] && grep -q '"source":"network"' <<<"$out"; then world_ok "read-only cache: query still fetches and answers"
else world_not_ok "read-only cache: query still fetches and answers" "exit $rc: $out"; fi
out=$(as_nobody "$M" fetch other.test 2>&1); rc=$?
if [ "$rc" = 70 ] && grep -q 'could not be updated' <<<"$out"; then world_ok "read-only cache: fetch exits 70 and says why"
else world_not_ok "read-only cache: fetch exits 70 and says why" "exit $rc: $out"; fi

# --- root on a cache owned by the MTA's user works as that user --------------------------------------
mkdir -p "$WORLD/mta-cache" && chown 65534:65534 "$WORLD/mta-cache"
printf 'cache_dir = %s\nca_file = %s\nlog = stderr\n' "$WORLD/mta-cache" "$WORLD/pki/ca.pem" > "$WORLD/mta.conf"
expect "root on a cache owned by another user: query works" 0 '"source":"network"' -- \
	--config "$WORLD/mta.conf" query --json third.test
bad=$(find "$WORLD/mta-cache" ! -user 65534 | head -n 3)
[ -z "$bad" ] && [ -n "$(find "$WORLD/mta-cache" -name third.test -user 65534)" ] &&
	world_ok "...and everything it created belongs to the cache's owner" ||
	world_not_ok "...and everything it created belongs to the cache's owner" "$bad"

# --- configuration errors ----------------------------------------------------------------------
printf 'cache_dir = %s\nfetch_timeout = 5 # seconds\n' "$WORLD/cache" > "$WORLD/bad.conf"
expect "a bad setting: exit 64 naming file and line" 64 "bad.conf:2: fetch_timeout" -- --config "$WORLD/bad.conf" query example.test
expect "a missing --config file: exit 64" 64 '/nonexistent/x.conf' -- --config /nonexistent/x.conf cache list
MTASTS_LOG=sylog expect "a bad environment override: exit 64" 64 'MTASTS_LOG' -- cache list

# --- secure-execution mode: a set-user-ID copy reads only the root-owned default file ------------------
resolv=$(cat /etc/resolv.conf) hosts=$(cat /etc/hosts)
mkdir -p "$WORLD/etc-up" "$WORLD/etc-work" "$WORLD/secure-cache"
if mount -t overlay overlay -o "lowerdir=/etc,upperdir=$WORLD/etc-up,workdir=$WORLD/etc-work" /etc; then
	printf '%s\n' "$resolv" > /etc/resolv.conf
	printf '%s\n' "$hosts" > /etc/hosts
	mkdir -p /etc/mtasts
	printf 'cache_dir = %s\nlog = stderr\n' "$WORLD/secure-cache" > /etc/mtasts/mtasts.conf
	chmod 644 /etc/mtasts/mtasts.conf
	install -o root -m 4755 "$M" "$WORLD/mtasts-suid"
	printf 'bogus = 1\n' > "$WORLD/evil.conf"
	chmod 644 "$WORLD/evil.conf"
	S=$WORLD/mtasts-suid
	out=$(MTASTS_CONFIG=$WORLD/evil.conf "$M" cache list 2>&1); rc=$?
	[ "$rc" = 64 ] && world_ok "control: without set-user-ID the evil file is read" || world_not_ok "control: without set-user-ID the evil file is read" "exit $rc: $out"
	out=$(MTASTS_CONFIG=$WORLD/evil.conf MTASTS_CACHE_DIR=/nonexistent as_nobody "$S" cache list 2>&1); rc=$?
	[ "$rc" = 0 ] && ! grep -q 'evil\|nonexistent' <<<"$out" && world_ok "set-user-ID: MTASTS_CONFIG and MTASTS_CACHE_DIR are ignored" ||
		world_not_ok "set-user-ID: MTASTS_CONFIG and MTASTS_CACHE_DIR are ignored" "exit $rc: $out"
	out=$(as_nobody "$S" --config "$WORLD/evil.conf" cache list 2>&1); rc=$?
	[ "$rc" = 0 ] && world_ok "set-user-ID: --config is ignored" || world_not_ok "set-user-ID: --config is ignored" "exit $rc: $out"
	chmod 664 /etc/mtasts/mtasts.conf
	out=$(as_nobody "$S" cache list 2>&1); rc=$?
	[ "$rc" = 64 ] && grep -q 'must be owned by root and not writable' <<<"$out" &&
		world_ok "set-user-ID: a group-writable default file is refused" ||
		world_not_ok "set-user-ID: a group-writable default file is refused" "exit $rc: $out"
	chmod 644 /etc/mtasts/mtasts.conf
	chown 65534 /etc/mtasts/mtasts.conf
	out=$(as_nobody "$S" cache list 2>&1); rc=$?
	[ "$rc" = 64 ] && grep -q 'must be owned by root' <<<"$out" &&
		world_ok "set-user-ID: a default file not owned by root is refused" ||
		world_not_ok "set-user-ID: a default file not owned by root is refused" "exit $rc: $out"
else
	world_not_ok "overlay over /etc for the secure-mode checks"
fi

world_finish
