#!/bin/bash
# test-shim-unit.sh - quick checks of libmtasts-shim.so without a real MTA:
#   1. the library: exports only its hooks, links no libcurl/c-ares/libssl/libidn2;
#   2. inert in programs not listed in `programs`: same output, same fds, environment untouched;
#   3. exec re-injection of LD_PRELOAD (and MTASTS_CONFIG) in an active program;
#   4. the SMTP command scanner and the DNS answer parser (probes compiled from the sources,
#      including a random-input robustness loop);
#   5. in a loopback world (dnsmasq, HTTPS policy host, a scripted SMTP server): a probe MTA
#      that resolves MX + A itself and opens SMTP with connect() or TCP Fast Open, under
#      enforce / none / mx-mismatch policies fetched by the detached fetcher, plus an SMTP
#      socket inherited over exec (lazily classified), commands cut across writes and iovecs,
#      a second transaction after a message on one connection, a cache entry replaced on disk
#      between two connections of one process (the memo of parsed entries must not hide it).
#      Checks what reached the server,
#      the errno the MTA saw, the session log, no SIGCHLD and no fd leaked into the MTA;
#   6. the certificate verdict memo (shim/verdict.c), with tests/helpers/smtpclient (OpenSSL) and a
#      STARTTLS server whose certificate the test picks per handshake: a verified chain is
#      memoised (file named by the key, the key recomputed here), a memo hit does no new
#      verification, another chain for the same host (untrusted CA) is refused after a good one
#      was memoised (across processes and in one process), foreign / tampered / ended / too long /
#      symlinked memo files are ignored, a well-formed one is honoured (the trust of cache_dir),
#      a damaged one is replaced, a changed trust store gives a new key; the key computed by
#      GnuTLS (a process with GnuTLS loaded hashes with gnutls_hash_*) is the same bytes as
#      libcrypto's: a memo written by such a process is used by an OpenSSL-only one and back;
#   7. secure-execution mode: argv[0] does not activate the shim, only the bare name is put back.
# Needs root (namespaces), cc, dnsmasq, python3. Uses BUILD (absolute build directory).
source "$(dirname "$0")/../lib/world.sh"
world_enter "$@"

SHIM=$BUILD/libmtasts-shim.so
SRC=$(cd "$WORLD_LIB/../.." && pwd)
CC=${CC:-cc}
[ -f "$SHIM" ] || { world_not_ok "library built" "$SHIM missing"; world_finish; }

# ---- 1. the library ------------------------------------------------------------------------
exports=$(nm -D --defined-only "$SHIM" | awk '$2 == "T" || $2 == "W" || $2 == "D" || $2 == "B" {print $3}' | sort | tr '\n' ' ')
expected=$(printf '%s\n' connect socket write writev send sendto sendmsg close close_range closefrom \
	dup dup2 dup3 res_search __res_search res_query __res_query res_nsearch res_nquery \
	res_querydomain res_nquerydomain getaddrinfo gethostbyname2 execve execv execvp execvpe \
	execl execlp execle fexecve posix_spawn posix_spawnp gnutls_handshake gnutls_record_send \
	SSL_connect SSL_do_handshake SSL_write SSL_write_ex | sort | tr '\n' ' ')
[ "$exports" = "$expected" ] && world_ok "exports exactly the hooks" ||
	world_not_ok "exports exactly the hooks" "got: $exports"
needed=$(readelf -d "$SHIM" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
case $needed in
*curl*|*cares*|*libssl*|*idn2*|*gnutls*) world_not_ok "links only libc/libcrypto" "$needed" ;;
*) world_ok "links only libc/libcrypto ($needed)" ;;
esac

# ---- 2. inert ------------------------------------------------------------------------------
export MTASTS_LOG=stderr MTASTS_CACHE_DIR=$WORLD/cache MTASTS_FETCHER=$BUILD/mtasts
unset MTASTS_PROGRAMS MTASTS_CONFIG
world_check "inert: /bin/true exits 0" env LD_PRELOAD="$SHIM" /bin/true
a=$(ls -la /etc 2>&1); b=$(LD_PRELOAD=$SHIM ls -la /etc 2>&1)
[ "$a" = "$b" ] && world_ok "inert: ls output identical" || world_not_ok "inert: ls output identical"
a=$(python3 -c 'import subprocess,os; print(subprocess.run(["echo","x"],capture_output=True).stdout, sorted(os.listdir("/proc/self/fd")))' 2>&1)
b=$(LD_PRELOAD=$SHIM python3 -c 'import subprocess,os; print(subprocess.run(["echo","x"],capture_output=True).stdout, sorted(os.listdir("/proc/self/fd")))' 2>&1)
[ "$a" = "$b" ] && world_ok "inert: python3 output and fds identical" || world_not_ok "inert: python3" "$a / $b"
a=$(LD_PRELOAD=$SHIM ls /proc/self/fd | tr '\n' ' ')
b=$(LD_PRELOAD=$SHIM MTASTS_PROGRAMS=ls ls /proc/self/fd | tr '\n' ' ')
c=$(ls /proc/self/fd | tr '\n' ' ')
[ "$a" = "$c" ] && [ "$b" = "$c" ] && world_ok "no fd of the shim in inert or active programs ($c)" ||
	world_not_ok "no fd leak" "plain=$c inert=$a active=$b"
out=$(LD_PRELOAD=$SHIM bash -c 'exec -c /usr/bin/env' 2>&1)
[ -z "$out" ] && world_ok "inert: exec keeps an empty environment empty" || world_not_ok "inert exec" "$out"

# ---- 3. exec re-injection ------------------------------------------------------------------
out=$(LD_PRELOAD=$SHIM MTASTS_PROGRAMS=bash bash -c 'exec -c /usr/bin/env' 2>&1)
[ "$out" = "LD_PRELOAD=$(readlink -f "$SHIM")" ] && world_ok "active: exec with a wiped environment gets LD_PRELOAD back" ||
	world_not_ok "active: LD_PRELOAD re-injected" "$out"
printf 'programs = bash\nlog = stderr\ncache_dir = %s\n' "$WORLD/cache" > "$WORLD/shim.conf"
out=$(LD_PRELOAD=$SHIM MTASTS_CONFIG=$WORLD/shim.conf bash -c 'exec -c /usr/bin/env' 2>&1 | sort | tr '\n' ' ')
[ "$out" = "LD_PRELOAD=$(readlink -f "$SHIM") MTASTS_CONFIG=$WORLD/shim.conf " ] &&
	world_ok "active: MTASTS_CONFIG re-injected with LD_PRELOAD" || world_not_ok "MTASTS_CONFIG re-injected" "$out"
out=$(LD_PRELOAD="/lib/x86_64-linux-gnu/libc.so.6 $SHIM" MTASTS_PROGRAMS=bash bash -c 'exec /usr/bin/env' 2>&1 | grep '^LD_PRELOAD=')
[ "$out" = "LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6 $SHIM" ] && world_ok "active: an LD_PRELOAD naming the shim is left alone" ||
	world_not_ok "LD_PRELOAD left alone" "$out"
out=$(LD_PRELOAD=$SHIM MTASTS_PROGRAMS=bash bash -c 'LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6 exec /usr/bin/env' 2>&1 | grep '^LD_PRELOAD=')
[ "$out" = "LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6:$(readlink -f "$SHIM")" ] && world_ok "active: the shim is appended to another LD_PRELOAD" ||
	world_not_ok "appended to LD_PRELOAD" "$out"

# ---- 4. scanner and DNS parser probes -------------------------------------------------------
cat > "$WORLD/scan.c" <<'EOC'
/* smtpscan probe: each case is a stream cut into writes ("|" separates them); the events are
 * printed as "<write index>:<command>[=<domain>|=-|=?]" (- no domain, ? unreadable). */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "smtpscan.h"
static int fails, part;
static char got[4096];
static int on_event(void *ctx, const smtpscan_event *ev)
{
	const char *name = ev->cmd == SMTP_CMD_MAIL ? "MAIL" : ev->cmd == SMTP_CMD_RCPT ? "RCPT" :
	                   ev->cmd == SMTP_CMD_DATA ? "DATA" : "BDAT";
	char one[300];
	(void)ctx;
	if (ev->cmd != SMTP_CMD_RCPT)
		snprintf(one, sizeof one, "%d:%s ", part, name);
	else
		snprintf(one, sizeof one, "%d:RCPT=%s ", part, ev->rcpt == SMTPSCAN_RCPT_DOMAIN ? ev->domain :
		         ev->rcpt == SMTPSCAN_RCPT_NONE ? "-" : "?");
	strncat(got, one, sizeof(got) - strlen(got) - 1);
	return 0;
}
static void check(const char *what, const char *stream, const char *want)
{
	static smtpscan s;
	char copy[8192];
	memset(&s, 0, sizeof(s));
	got[0] = '\0';
	part = 0;
	snprintf(copy, sizeof copy, "%s", stream);
	for (char *p = copy, *bar; p; p = bar ? bar + 1 : NULL, part++) {
		bar = strchr(p, '|');
		smtpscan_feed(&s, p, bar ? (size_t)(bar - p) : strlen(p), on_event, NULL);
	}
	if (strcmp(got, want) != 0) {
		printf("FAIL %s: got '%s' want '%s'\n", what, got, want);
		fails++;
	}
}
int main(void)
{
	char big[6000];
	check("ehlo starttls quit", "EHLO x\r\nSTARTTLS\r\nQUIT\r\n", "");
	check("mail", "MAIL FROM:<a@b.test>\r\n", "0:MAIL ");
	check("lower case", "mail from:<>\r\n", "0:MAIL ");
	check("pipelined", "MAIL FROM:<>\r\nRCPT TO:<u@Example.TEST.>\r\nrcpt to:<v@other.test>\r\nDATA\r\n",
	      "0:MAIL 0:RCPT=example.test 0:RCPT=other.test 0:DATA ");
	check("split MA|IL", "EHLO x\r\nMA|IL FROM:<>\r\n", "1:MAIL ");
	check("split one byte at a time", "R|C|P|T| |T|O|:|<|u|@|d|.|t|e|s|t|>|\r|\n|D|A|T|A|\r|\n",
	      "17:RCPT=d.test 24:DATA ");
	check("split MAIL|<space>", "MAIL| FROM:<>\r\n", "1:MAIL ");
	check("split RCPT domain", "RCPT TO:<u@exam|ple.test>\r\n", "1:RCPT=example.test ");
	check("split after the line start", "EHLO x\r|\nMAIL FROM:<>\r\n", "1:MAIL ");
	check("not at line start", "X-MAIL FROM:<>\r\n", "");
	check("leading blanks", "  MAIL FROM:<>\r\n", "0:MAIL ");
	check("mailbox is no command", "MAILBOX\r\nDATABASE\r\n", "");
	check("bare DATA then CRLF", "DATA|\r\n", "1:DATA ");
	check("source route", "RCPT TO:<@relay.test,@r2.test:joe@final.test>\r\n", "0:RCPT=final.test ");
	check("quoted local part", "RCPT TO:<\"a@b\"@q.test>\r\n", "0:RCPT=q.test ");
	check("quoted local part with a space", "RCPT TO:<\"john doe\"@enforce.test>\r\n", "0:RCPT=enforce.test ");
	check("quoted '>' and escape", "RCPT TO:<\"a>\\\"b\"@q.test> NOTIFY=NEVER\r\n", "0:RCPT=q.test ");
	check("unbracketed", "RCPT TO:u@bare.test SIZE=1\r\n", "0:RCPT=bare.test ");
	check("no domain", "RCPT TO:<postmaster>\r\n", "0:RCPT=- ");
	check("literal", "RCPT TO:<u@[127.0.0.1]>\r\n", "0:RCPT=- ");
	check("unreadable domain", "RCPT TO:<u@b\xc3\xa4" "d.test>\r\n", "0:RCPT=? ");
	check("malformed RCPT", "RCPT FOR:<u@d.test>\r\n", "0:RCPT=? ");
	check("unclosed bracket", "RCPT TO:<u@open.test\r\n", "0:RCPT=open.test ");
	check("binary", "\x16\x03\x01\x02\x00MAIL", "");
	check("ten domains in one write",
	      "RCPT TO:<a@d1.test>\r\nRCPT TO:<a@d2.test>\r\nRCPT TO:<a@d3.test>\r\nRCPT TO:<a@d4.test>\r\n"
	      "RCPT TO:<a@d5.test>\r\nRCPT TO:<a@d6.test>\r\nRCPT TO:<a@d7.test>\r\nRCPT TO:<a@d8.test>\r\n"
	      "RCPT TO:<a@d9.test>\r\nRCPT TO:<a@d10.test>\r\n",
	      "0:RCPT=d1.test 0:RCPT=d2.test 0:RCPT=d3.test 0:RCPT=d4.test 0:RCPT=d5.test 0:RCPT=d6.test "
	      "0:RCPT=d7.test 0:RCPT=d8.test 0:RCPT=d9.test 0:RCPT=d10.test ");
	/* message data is not commands; the next transaction is */
	check("body lines are no commands, second transaction seen",
	      "MAIL FROM:<>\r\nRCPT TO:<a@one.test>\r\nDATA\r\n|Received: x\r\n\r\nMAIL FROM: the boss\r\n"
	      "RCPT TO:<x@body.test>\r\n..dot-stuffed\r\n.\r\n|MAIL FROM:<>\r\nRCPT TO:<b@two.test>\r\nDATA\r\n",
	      "0:MAIL 0:RCPT=one.test 0:DATA 2:MAIL 2:RCPT=two.test 2:DATA ");
	check("end of data split across writes", "DATA\r\n|Subject: x\r\n\r\nbody\r|\n.|\r|\nRSET\r\nMAIL FROM:<>\r\n",
	      "0:DATA 4:MAIL ");
	check("'.x' does not end the data", "DATA\r\nReceived: x\r\n.x\r\nMAIL FROM:<>\r\n", "0:DATA ");
	check("empty message", "DATA\r\n.\r\nMAIL FROM:<>\r\n", "0:DATA 0:MAIL ");
	check("DATA refused by the server, next transaction", "DATA\r\n|RSET\r\nMAIL FROM:<>\r\nRCPT TO:<u@n.test>\r\n",
	      "0:DATA 1:MAIL 1:RCPT=n.test ");
	check("DATA refused, MAIL split", "DATA\r\n|MA|IL FROM:<>\r\n", "0:DATA 2:MAIL ");
	check("BDAT chunk skipped by size", "BDAT 27\r\nMAIL FROM:<>\r\nRCPT TO:<x>\r\nMAIL FROM:<>\r\n",
	      "0:BDAT 0:MAIL ");
	check("BDAT chunk across writes", "BDAT 22 LAST\r\n|MAIL FROM:<>\r\n|RCPT TO:|MAIL FROM:<>\r\n",
	      "0:BDAT 3:MAIL ");
	check("BDAT 0 LAST", "BDAT 0 LAST\r\nMAIL FROM:<>\r\n", "0:BDAT 0:MAIL ");
	memset(big, 'x', sizeof big - 1); big[sizeof big - 1] = 0;
	memcpy(big, "RCPT TO:<", 9);
	check("overlong RCPT line: unreadable once the kept head is full", big, "0:RCPT=? ");
	memcpy(big + 3000, "@d.test>\r\n", 10);
	check("overlong RCPT path", big, "0:RCPT=? ");
	/* random input never crashes, and a stream cut anywhere gives the same events */
	srand(7);
	for (int i = 0; i < 200000; i++) {
		char buf[96]; size_t n = (size_t)(rand() % 96);
		static const char alpha[] = "MAILRCPTODABSEQUI :<>@.\"\\\r\n-xyz0123456789";
		for (size_t j = 0; j < n; j++) buf[j] = rand() % 3 ? alpha[rand() % (sizeof(alpha) - 1)] : (char)rand();
		static smtpscan s1, s2; static char whole[4096];
		memset(&s1, 0, sizeof s1); memset(&s2, 0, sizeof s2);
		got[0] = 0; smtpscan_feed(&s1, buf, n, on_event, NULL); snprintf(whole, sizeof whole, "%s", got);
		got[0] = 0;
		for (size_t j = 0; j < n; j++) smtpscan_feed(&s2, buf + j, 1, on_event, NULL);
		/* byte by byte: the same events */
		if (strcmp(whole, got) != 0) { printf("FAIL cut stream: '%s' vs '%s'\n", whole, got); return 1; }
	}
	printf("%d failures\n", fails);
	return fails != 0;
}
EOC
if $CC -D_GNU_SOURCE -std=c11 -Wall -Wextra -I"$SRC/include" -I"$SRC/shim" -o "$WORLD/scan" "$WORLD/scan.c" \
	"$SRC/shim/smtpscan.c" "$SRC/core/domain.c" "$SRC/core/status.c" 2>"$WORLD/scan.err"; then
	out=$("$WORLD/scan" 2>&1) && world_ok "smtp scanner: split commands, pipelining, RCPT domains, message data, BDAT, random input" ||
		world_not_ok "smtp scanner" "$out"
else
	world_not_ok "smtp scanner probe compiles" "$(cat "$WORLD/scan.err")"
fi

cat > "$WORLD/dnsp.c" <<'EOC'
/* dnsobs parser probe: crafted answers and random damage; shim_lock stubs. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "dnsobs.h"
void shim_lock(void); void shim_unlock(void);
void shim_lock(void) {}
void shim_unlock(void) {}
static int fails;
static unsigned char msg[4096]; static size_t len;
static void u16(unsigned v) { msg[len++] = (unsigned char)(v >> 8); msg[len++] = (unsigned char)v; }
static void name(const char *n) { while (*n) { const char *d = strchr(n, '.'); size_t l = d ? (size_t)(d - n) : strlen(n); msg[len++] = (unsigned char)l; memcpy(msg + len, n, l); len += l; n += l; if (*n) n++; } msg[len++] = 0; }
static void header(unsigned an, unsigned ar) { len = 0; u16(0x1234); u16(0x8180); u16(1); u16(an); u16(0); u16(ar); }
static void question(const char *q, unsigned type) { name(q); u16(type); u16(1); }
static void rr_head(unsigned type, unsigned rdlen) { u16(0xc00c); u16(type); u16(1); u16(0); u16(300); u16(rdlen); }
static void expect(const char *what, const char *ip, const char *want)
{
	dnsobs_addr a; dnsobs_pair p[8]; char got[1024] = "";
	memset(&a, 0, sizeof(a)); a.family = strchr(ip, ':') ? AF_INET6 : AF_INET;
	inet_pton(a.family, ip, a.bytes);
	size_t n = dnsobs_candidates(&a, p, 8);
	for (size_t i = 0; i < n; i++) { strcat(got, p[i].domain); strcat(got, ">"); strcat(got, p[i].host); strcat(got, " "); }
	if (strcmp(got, want)) { printf("FAIL %s: got '%s' want '%s'\n", what, got, want); fails++; }
}
int main(void)
{
	char q[254];
	/* MX example.test -> mx1.example.test (compressed suffix) */
	header(1, 0); question("example.test", ns_t_mx);
	rr_head(ns_t_mx, 2 + 6); u16(10); msg[len++] = 3; memcpy(msg + len, "mx1", 3); len += 3; u16(0xc00c);
	dnsobs_observe(msg, (int)len, q);
	if (strcmp(q, "example.test")) { printf("FAIL mx qname '%s'\n", q); fails++; }
	/* A mx1.example.test -> 127.0.0.11 */
	header(1, 0); question("MX1.example.test.", ns_t_a); rr_head(ns_t_a, 4);
	msg[len++] = 127; msg[len++] = 0; msg[len++] = 0; msg[len++] = 11;
	dnsobs_observe(msg, (int)len, q);
	expect("mx + a", "127.0.0.11", "example.test>mx1.example.test ");
	/* implicit MX: NODATA for MX of plain.test, then A plain.test via CNAME to host.other.test */
	header(0, 0); question("plain.test", ns_t_mx); dnsobs_observe(msg, (int)len, q);
	header(2, 0); question("plain.test", ns_t_a);
	rr_head(ns_t_cname, 17); name("host.other.test");
	{ size_t target = len - 17; u16(0xc000 | (unsigned)target); u16(ns_t_a); u16(1); u16(0); u16(60); u16(4);
	  msg[len++] = 127; msg[len++] = 0; msg[len++] = 0; msg[len++] = 12; }
	dnsobs_observe(msg, (int)len, q);
	expect("implicit mx through cname", "127.0.0.12", "plain.test>plain.test ");
	/* null MX: no implicit MX */
	header(1, 0); question("nullmx.test", ns_t_mx); rr_head(ns_t_mx, 3); u16(0); msg[len++] = 0;
	dnsobs_observe(msg, (int)len, q);
	header(1, 0); question("nullmx.test", ns_t_a); rr_head(ns_t_a, 4);
	msg[len++] = 127; msg[len++] = 0; msg[len++] = 0; msg[len++] = 13;
	dnsobs_observe(msg, (int)len, q);
	expect("null mx", "127.0.0.13", "");
	/* shared MX host: two domains */
	header(1, 0); question("second.test", ns_t_mx);
	rr_head(ns_t_mx, 2 + 18); u16(5); name("mx1.example.test");
	dnsobs_observe(msg, (int)len, q);
	expect("shared mx", "127.0.0.11", "example.test>mx1.example.test second.test>mx1.example.test ");
	/* AAAA */
	header(1, 0); question("mx1.example.test", ns_t_aaaa); rr_head(ns_t_aaaa, 16);
	memset(msg + len, 0, 16); msg[len] = 0xfd; msg[len + 15] = 0x10; len += 16;
	dnsobs_observe(msg, (int)len, q);
	expect("aaaa", "fd00::10", "example.test>mx1.example.test second.test>mx1.example.test ");
	/* compression loop and truncation never crash */
	header(1, 0); question("loop.test", ns_t_mx); rr_head(ns_t_mx, 4); u16(1); u16(0xc000 | (unsigned)(len - 2));
	dnsobs_observe(msg, (int)len, q);
	for (size_t cut = 0; cut < len; cut++) dnsobs_observe(msg, (int)cut, q);
	srand(3);
	unsigned char base[512]; size_t blen;
	header(1, 1); question("example.test", ns_t_mx); rr_head(ns_t_mx, 8); u16(1); msg[len++] = 3; memcpy(msg + len, "mx2", 3); len += 3; u16(0xc00c);
	memcpy(base, msg, len); blen = len;
	for (int i = 0; i < 300000; i++) {
		memcpy(msg, base, blen);
		for (int k = 0; k < 1 + rand() % 4; k++) msg[rand() % blen] = (unsigned char)rand();
		dnsobs_observe(msg, (int)(rand() % (blen + 1)), q);
		if (strlen(q) >= sizeof(q)) { printf("FAIL bound\n"); return 1; }
	}
	printf("%d failures\n", fails);
	return fails != 0;
}
EOC
if $CC -D_GNU_SOURCE -std=c11 -I"$SRC/include" -I"$SRC/shim" -o "$WORLD/dnsp" "$WORLD/dnsp.c" \
	"$SRC/shim/dnsobs.c" "$SRC/core/domain.c" "$SRC/core/status.c" -lresolv 2>"$WORLD/dnsp.err"; then
	out=$("$WORLD/dnsp" 2>&1) && world_ok "dns parser: MX, implicit MX, CNAME, null MX, shared MX, AAAA, damage" ||
		world_not_ok "dns parser" "$out"
else
	world_not_ok "dns parser probe compiles" "$(cat "$WORLD/dnsp.err")"
fi

# ---- 5. a probe MTA in a loopback world ----------------------------------------------------
world_pki >/dev/null && world_cert mta-sts.example.test >/dev/null || world_not_ok "pki"
dns_args=(--mx-host=example.test,mx1.example.test,10 --host-record=mx1.example.test,127.0.0.11
	--host-record=mta-sts.example.test,127.0.0.10 --txt-record=_mta-sts.example.test,"v=STSv1; id=1;"
	--mx-host=open.test,mx1.example.test,10)
shared=(); for i in 1 2 3 4 5 6 7 8 9; do dns_args+=(--mx-host=s$i.test,mx1.example.test,10); shared+=(s$i.test); done
world_dns_start "${dns_args[@]}" || world_not_ok "dnsmasq"
# TLS in a program whose libssl is loaded RTLD_LOCAL (Python's _ssl module): the hooks must
# find the real SSL_do_handshake there, inert or active (in-memory handshake, no network)
cat > "$WORLD/tlsmem.py" <<EOC
import ssl
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain("$WORLD/pki/mta-sts.example.test.chain.pem", "$WORLD/pki/mta-sts.example.test.key")
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.load_verify_locations("$WORLD/pki/ca.pem")
ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
c = cctx.wrap_bio(ci, co, server_hostname="mta-sts.example.test"); s = sctx.wrap_bio(si, so, server_side=True)
for _ in range(10):
    for obj in (c, s):
        try: obj.do_handshake()
        except ssl.SSLWantReadError: pass
    si.write(co.read()); ci.write(so.read())
c.write(b"hello"); si.write(co.read()); print(s.read().decode())
EOC
out=$(python3 "$WORLD/tlsmem.py" 2>&1 | tail -1)
a=$(LD_PRELOAD=$SHIM python3 "$WORLD/tlsmem.py" 2>&1 | tail -1)
b=$(LD_PRELOAD=$SHIM MTASTS_PROGRAMS=python3 python3 "$WORLD/tlsmem.py" 2>&1 | tail -1)
[ "$out" = hello ] && [ "$a" = hello ] && [ "$b" = hello ] &&
	world_ok "TLS through a libssl loaded RTLD_LOCAL (python3 ssl) works with the shim inert and active" ||
	world_not_ok "python3 ssl with the shim" "plain=$out inert=$a active=$b"

mkdir -p "$WORLD/www/.well-known"
policy() { printf 'version: STSv1\nmode: %s\nmx: %s\nmax_age: 86400\n' "$1" "$2" > "$WORLD/www/.well-known/mta-sts.txt"; }
policy enforce mx1.example.test
world_https_start 127.0.0.10 mta-sts.example.test "$WORLD/www" || world_not_ok "https"

cat > "$WORLD/smtpd.py" <<'EOC'
import socket, sys, threading
log = open(sys.argv[1], "a", buffering=1)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.11", 25)); srv.listen(16)
def serve(c):
    c.sendall(b"220 mx1.example.test ESMTP\r\n"); buf = b""
    while True:
        try: d = c.recv(4096)
        except OSError: break
        if not d: break
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1); line = line.rstrip(b"\r")
            log.write(line.decode("latin-1") + "\n")
            w = line[:4].upper()
            c.sendall(b"250-mx1\r\n250 PIPELINING\r\n" if w == b"EHLO" else b"354 go\r\n" if w == b"DATA" else b"221 bye\r\n" if w == b"QUIT" else b"250 ok\r\n")
    c.close()
while True:
    c, _ = srv.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
EOC
world_bg smtpd /usr/bin/python3 "$WORLD/smtpd.py" "$WORLD/smtpd.lines"
SMTPD_PID=$WORLD_PID
world_wait_tcp 127.0.0.11 25 || world_not_ok "smtp server"

cat > "$WORLD/probe.c" <<'EOC'
/* probe MTA: probe DOMAIN connect|tfo|fd:N [SCRIPT [DOMAIN...]] ; prints facts on stdout.
 * The extra DOMAINs' MX are looked up first (domains sharing the MX host). SCRIPT, after EHLO:
 *   plain      MAIL + RCPT TO:<u@DOMAIN> in one send
 *   split      "MA", then "IL FROM:..." (a command cut across two writes)
 *   splitrcpt  MAIL, then RCPT TO:<u@DOMAIN> cut across three iovecs of one writev
 *   second     a whole transaction to the first extra domain whose message holds command-like
 *              lines, then MAIL + RCPT TO:<u@DOMAIN> on the same connection
 *   again      as plain, then prints "waiting", reads a line from stdin and connects once more
 *              to the same address in the same process ("connect2: ok" or the error) */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
static volatile sig_atomic_t chld;
static void on_chld(int s) { (void)s; chld++; }
static int nfds(void) { int n = 0; DIR *d = opendir("/proc/self/fd"); struct dirent *e; while ((e = readdir(d))) n += e->d_name[0] != '.'; closedir(d); return n - 1; }
static void rd(int fd) { char b[512]; ssize_t n = read(fd, b, sizeof b); (void)n; }
static int say(int fd, const char *step, const char *text)
{
	ssize_t w = send(fd, text, strlen(text), 0);
	printf("%s: %s\n", step, w == (ssize_t)strlen(text) ? "sent" : strerror(errno));
	if (w > 0) rd(fd);
	return w == (ssize_t)strlen(text);
}
int main(int argc, char **argv)
{
	unsigned char ans[4096]; ns_msg m; ns_rr rr; char mx[256] = "", ip[64] = "", cmd[512];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(25) };
	const char *script = argc > 3 ? argv[3] : "plain";
	int fd = -1, before = nfds();
	signal(SIGCHLD, on_chld);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 4; i < argc; i++) (void)res_search(argv[i], C_IN, T_MX, ans, sizeof ans);
	if (strncmp(argv[2], "fd:", 3) == 0) {
		fd = atoi(argv[2] + 3);
	} else {
		int n = res_search(argv[1], C_IN, T_MX, ans, sizeof ans);
		if (n < 0 || ns_initparse(ans, n, &m) < 0 || ns_parserr(&m, ns_s_an, 0, &rr) < 0) { printf("mx lookup failed\n"); return 1; }
		dn_expand(ans, ans + n, ns_rr_rdata(rr) + 2, mx, sizeof mx);
		n = res_search(mx, C_IN, T_A, ans, sizeof ans);
		if (n < 0 || ns_initparse(ans, n, &m) < 0 || ns_parserr(&m, ns_s_an, 0, &rr) < 0) { printf("a lookup failed\n"); return 1; }
		memcpy(&sa.sin_addr, ns_rr_rdata(rr), 4);
		inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int rc = strcmp(argv[2], "tfo") == 0 ? (int)sendto(fd, NULL, 0, MSG_FASTOPEN, (struct sockaddr *)&sa, sizeof sa)
		                                     : connect(fd, (struct sockaddr *)&sa, sizeof sa);
		if (rc < 0) { printf("connect: %s\n", strerror(errno)); close(fd); printf("sigchld: %d\nfds: %d %d\n", (int)chld, before, nfds()); return 0; }
	}
	rd(fd);
	if (write(fd, "EHLO probe\r\n", 12) != 12) printf("ehlo: %s\n", strerror(errno)); else rd(fd);
	if (strcmp(script, "split") == 0) {
		printf("ma: %s\n", write(fd, "MA", 2) == 2 ? "sent" : strerror(errno));
		say(fd, "mail", "IL FROM:<a@sender.test>\r\n");
	} else if (strcmp(script, "splitrcpt") == 0) {
		if (say(fd, "mail", "MAIL FROM:<a@sender.test>\r\n")) {
			char dom[300];
			snprintf(dom, sizeof dom, "PT TO:<u@%s>\r\n", argv[1]);
			struct iovec iov[3] = { { "RC", 2 }, { dom, 11 }, { dom + 11, strlen(dom) - 11 } };
			ssize_t w = writev(fd, iov, 3);
			printf("rcpt: %s\n", w == (ssize_t)(2 + strlen(dom)) ? "sent" : strerror(errno));
		}
	} else if (strcmp(script, "second") == 0) {
		snprintf(cmd, sizeof cmd, "MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@%s>\r\nDATA\r\n", argc > 4 ? argv[4] : "x.test");
		if (say(fd, "first", cmd)) {
			snprintf(cmd, sizeof cmd, "Received: x\r\n\r\nMAIL FROM:<b@body.test>\r\nRCPT TO:<v@%s>\r\n..\r\n.\r\n", argv[1]);
			if (say(fd, "body", cmd)) {
				usleep(200000);   /* let the server log the message before the connection dies */
				snprintf(cmd, sizeof cmd, "MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@%s>\r\n", argv[1]);
				say(fd, "second", cmd);
			}
		}
	} else {
		snprintf(cmd, sizeof cmd, "MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@%s>\r\n", argv[1]);
		if (say(fd, "mail", cmd)) { (void)!write(fd, "QUIT\r\n", 6); rd(fd); }
	}
	close(fd);
	printf("sigchld: %d\nfds: %d %d\n", (int)chld, before, nfds());
	if (strcmp(script, "again") == 0 && ip[0]) {
		char line[16];
		printf("waiting\n");
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin)) return 1;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
		printf("connect2: %s\n", rc == 0 ? "ok" : strerror(errno));
		close(fd);
	}
	return 0;
}
EOC
$CC -D_GNU_SOURCE -std=c11 -o "$WORLD/probe" "$WORLD/probe.c" -lresolv 2>"$WORLD/probe.err" ||
	world_not_ok "probe compiles" "$(cat "$WORLD/probe.err")"
cat > "$WORLD/world.conf" <<EOC
programs = probe
cache_dir = $WORLD/cache
ca_file = $WORLD/pki/ca.pem
fetcher = $BUILD/mtasts
log = $WORLD/shim.log
fetch_wait = 5
txt_recheck = 3600
EOC
unset MTASTS_LOG MTASTS_CACHE_DIR MTASTS_FETCHER
run_probe() { # DOMAIN HOW -> output in $out, new server lines in $lines
	local before
	before=$(wc -l < "$WORLD/smtpd.lines" 2>/dev/null || echo 0)
	out=$(MTASTS_CONFIG=$WORLD/world.conf LD_PRELOAD=$SHIM "$WORLD/probe" "$@" 2>&1)
	sleep 0.1
	lines=$(tail -n +$((before + 1)) "$WORLD/smtpd.lines" 2>/dev/null | tr '\n' '|')
}
fds_same() { local l; l=$(grep '^fds:' <<< "$out"); set -- $l; [ "$2" = "$3" ]; }

run_probe example.test connect
if grep -q '^mail: Connection reset by peer' <<< "$out" && [ "$lines" = "EHLO probe|" ]; then
	world_ok "enforce, no TLS: EHLO passes, MAIL+RCPT refused with ECONNRESET, nothing else reached the server"
else
	world_not_ok "enforce, no TLS: MAIL refused" "out=$out lines=$lines"
fi
grep -q 'domain=example.test mx=mx1.example.test ip=127.0.0.11 policy=enforce result=starttls-not-supported action=block' "$WORLD/shim.log" &&
	world_ok "session log line for the block" || world_not_ok "session log line" "$(cat "$WORLD/shim.log")"
grep -q '^sigchld: 0' <<< "$out" && world_ok "the detached fetcher sent no SIGCHLD to the MTA" || world_not_ok "no SIGCHLD" "$out"
fds_same && world_ok "no fd leaked into the MTA" || world_not_ok "fd leak" "$out"
[ -n "$(ls -A "$WORLD/cache" 2>/dev/null)" ] && world_ok "the fetcher filled the cache" || world_not_ok "cache filled"

# memory runs out inside the shim while an enforce policy is cached: the policy must still hold,
# so the connection is refused (a temporary failure for the MTA), never let through in clear
cat > "$WORLD/failmalloc.c" <<'EOC'
/* once the program opens its first socket (the shim has read its settings by then), every
 * allocation made by code of libmtasts-shim.so fails, as when memory runs out */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
extern void *__libc_malloc(size_t), *__libc_calloc(size_t, size_t), *__libc_realloc(void *, size_t);
static int armed;
int socket(int domain, int type, int protocol)
{
	static int (*real_socket)(int, int, int);
	if (!real_socket)
		real_socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	armed = 1;
	return real_socket(domain, type, protocol);
}
static int from_shim(const void *caller)
{
	Dl_info info;
	return armed && dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "libmtasts-shim");
}
#define FAIL_FROM_SHIM() do { if (from_shim(__builtin_return_address(0))) { errno = ENOMEM; return NULL; } } while (0)
void *malloc(size_t n) { FAIL_FROM_SHIM(); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { FAIL_FROM_SHIM(); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { FAIL_FROM_SHIM(); return __libc_realloc(p, n); }
EOC
if $CC -D_GNU_SOURCE -shared -fPIC -o "$WORLD/failmalloc.so" "$WORLD/failmalloc.c" 2>"$WORLD/failmalloc.err"; then
	before=$(wc -l < "$WORLD/smtpd.lines" 2>/dev/null || echo 0)
	out=$(MTASTS_CONFIG=$WORLD/world.conf LD_PRELOAD="$SHIM $WORLD/failmalloc.so" "$WORLD/probe" example.test connect 2>&1)
	sleep 0.1
	lines=$(tail -n +$((before + 1)) "$WORLD/smtpd.lines" 2>/dev/null | tr '\n' '|')
	grep -q '^connect: Connection refused' <<< "$out" && [ -z "$lines" ] &&
		world_ok "out of memory with an enforce policy cached: connection refused, nothing sent" ||
		world_not_ok "out of memory fails closed" "out=$out lines=$lines"
	grep -q 'policy=enforce result=validation-failure action=block reason=cache .*out of memory' "$WORLD/shim.log" &&
		world_ok "out of memory: the block is logged with its reason" ||
		world_not_ok "out of memory logged" "$(tail -n 3 "$WORLD/shim.log")"
else
	world_not_ok "failmalloc.so compiles" "$(cat "$WORLD/failmalloc.err")"
fi

run_probe example.test tfo
grep -q '^mail: Connection reset by peer' <<< "$out" && [ "$lines" = "EHLO probe|" ] &&
	world_ok "enforce over TCP Fast Open: MAIL refused" || world_not_ok "TFO enforce" "out=$out lines=$lines"

run_probe open.test connect
grep -q '^mail: sent' <<< "$out" && [[ $lines == *"RCPT TO:<u@open.test>"* ]] &&
	world_ok "domain without policy sharing the MX: transparent" || world_not_ok "no-policy domain" "out=$out lines=$lines"

# a command cut across writes or iovecs is still a command
run_probe example.test connect split
grep -q '^ma: sent' <<< "$out" && grep -q '^mail: Connection reset by peer' <<< "$out" && [ "$lines" = "EHLO probe|" ] &&
	world_ok "enforce: \"MA\" then \"IL FROM\" in two writes: refused at the second" || world_not_ok "split MAIL" "out=$out lines=$lines"
run_probe example.test connect splitrcpt open.test
grep -q '^mail: sent' <<< "$out" && grep -q '^rcpt: Connection reset by peer' <<< "$out" &&
	[ "$lines" = "EHLO probe|MAIL FROM:<a@sender.test>|" ] &&
	world_ok "MX shared with a domain without policy: MAIL passes, RCPT TO the enforce domain cut across iovecs refused" ||
	world_not_ok "split RCPT in writev" "out=$out lines=$lines"
# after a message to the other domain, a second transaction on the connection is still guarded,
# and the message's own command-like lines are not taken for commands
run_probe example.test connect second open.test
grep -q '^body: sent' <<< "$out" && grep -q '^second: Connection reset by peer' <<< "$out" &&
	[[ $lines == *"RCPT TO:<u@open.test>|DATA|Received: x||MAIL FROM:<b@body.test>|RCPT TO:<v@example.test>|..|.|" ]] &&
	[[ $lines != *"RCPT TO:<u@example.test>"* ]] &&
	world_ok "second transaction on one connection: RCPT TO the enforce domain refused after a message to another" ||
	world_not_ok "second transaction" "out=$out lines=$lines"

# more domains share the MX host than a connection keeps candidates: the enforce domain is not
# among them, its RCPT TO is judged all the same
run_probe example.test connect plain "${shared[@]}"
grep -q '^mail: Connection reset by peer' <<< "$out" && [ "$lines" = "EHLO probe|" ] &&
	world_ok "MX shared by 10 domains (more than the candidates kept): RCPT TO the enforce one refused" ||
	world_not_ok "candidates full" "out=$out lines=$lines"

# lazily classified: the socket is opened by an inert shell and inherited over exec
out=$(MTASTS_CONFIG=$WORLD/world.conf LD_PRELOAD=$SHIM bash -c 'exec 3<>/dev/tcp/127.0.0.11/25; exec '"$WORLD"'/probe example.test fd:3' 2>&1)
grep -q '^mail: Connection reset by peer' <<< "$out" && world_ok "inherited SMTP socket: RCPT TO an enforce domain refused" ||
	world_not_ok "lazy classification" "$out"

# mx mismatch: a new policy id and body; the stale cache entry is refreshed in the background
policy enforce '*.elsewhere.test'
world_dns_restart "${dns_args[@]/id=1;/id=2;}" >/dev/null
rm -rf "$WORLD/cache"; mkdir -p "$WORLD/cache"
run_probe example.test connect
grep -q '^connect: Connection refused' <<< "$out" && [ -z "$lines" ] &&
	world_ok "enforce, MX not in the policy: connect refused (ECONNREFUSED)" || world_not_ok "mx mismatch" "out=$out lines=$lines"
grep -q 'result=validation-failure action=block reason=mx-mismatch' "$WORLD/shim.log" &&
	world_ok "mx mismatch logged as validation-failure" || world_not_ok "mx mismatch log"

policy none mx1.example.test
world_dns_restart "${dns_args[@]/id=1;/id=3;}" >/dev/null
rm -rf "$WORLD/cache"; mkdir -p "$WORLD/cache"
run_probe example.test connect
grep -q '^mail: sent' <<< "$out" && [[ $lines == *"MAIL FROM"* ]] && world_ok "mode none: transparent" ||
	world_not_ok "mode none" "out=$out lines=$lines"

# the shim keeps the entries it parsed (shim/acquire.c, the memo): an entry replaced on disk
# must be seen by the very next connection of the same process, without a new MX lookup. First
# connection under enforce mx1.example.test (allowed, MAIL refused without TLS); then, while the
# probe waits, the entry is replaced as put() does (a new file renamed over it) by one of the
# same size whose policy is enforce *.elsewhere.test (the fetcher itself would postpone a second
# id change within a minute); the probe's second connect must be refused.
policy enforce mx1.example.test
rm -rf "$WORLD/cache"; mkdir -p "$WORLD/cache"
"$BUILD/mtasts" --config "$WORLD/world.conf" fetch example.test >"$WORLD/fetch.out" 2>&1 ||
	world_not_ok "memo: fetch" "$(cat "$WORLD/fetch.out")"
entry=$(ls "$WORLD"/cache/*/example.test 2>/dev/null | head -n 1)
rm -f "$WORLD/go"; mkfifo "$WORLD/go"
before=$(wc -l < "$WORLD/smtpd.lines" 2>/dev/null || echo 0)
MTASTS_CONFIG=$WORLD/world.conf LD_PRELOAD=$SHIM "$WORLD/probe" example.test connect again \
	< "$WORLD/go" > "$WORLD/again.out" 2>&1 &
again_pid=$!
exec 7> "$WORLD/go"
for _ in $(seq 100); do grep -q '^waiting' "$WORLD/again.out" && break; sleep 0.1; done
ino_before=$(stat -c %i "$entry" 2>/dev/null); size_before=$(stat -c %s "$entry" 2>/dev/null)
sed 's/mx1\.example\.test/*.elsewhere.test/' "$entry" > "${entry%/*}/@tmp.memotest" &&
	mv "${entry%/*}/@tmp.memotest" "$entry"
ino_after=$(stat -c %i "$entry" 2>/dev/null); size_after=$(stat -c %s "$entry" 2>/dev/null)
"$BUILD/mtasts" --config "$WORLD/world.conf" cache show example.test 2>&1 | grep -q 'elsewhere' ||
	world_not_ok "memo: the replaced entry is valid" "$("$BUILD/mtasts" --config "$WORLD/world.conf" cache show example.test 2>&1)"
echo go >&7
exec 7>&-
wait "$again_pid"
out=$(cat "$WORLD/again.out")
lines=$(tail -n +$((before + 1)) "$WORLD/smtpd.lines" 2>/dev/null | tr '\n' '|')
if grep -q '^mail: Connection reset by peer' <<< "$out" && grep -q '^connect2: Connection refused' <<< "$out" &&
   [ "$lines" = "EHLO probe|" ] && [ -n "$ino_before" ] && [ "$ino_before" != "$ino_after" ] &&
   [ "$size_before" = "$size_after" ]; then
	world_ok "cache entry replaced on disk by one of the same size: the next connect of the same process is refused (mx-mismatch)"
else
	world_not_ok "replaced entry seen by the next connection" "out=$out lines=$lines inode $ino_before -> $ino_after size $size_before -> $size_after"
fi
grep 'domain=example.test' "$WORLD/shim.log" | tail -n 1 | grep -q 'reason=mx-mismatch' &&
	world_ok "the refusal after the replacement is logged as mx-mismatch" ||
	world_not_ok "refusal after replacement logged" "$(tail -n 2 "$WORLD/shim.log")"

# the shim's machinery broken (fetcher missing, no cache): transparent, and it says why
sed -i "s|^fetcher = .*|fetcher = /nonexistent/mtasts|" "$WORLD/world.conf"
rm -rf "$WORLD/cache"
run_probe example.test connect
grep -q '^mail: sent' <<< "$out" && grep -q 'not executable' "$WORLD/shim.log" &&
	world_ok "fetcher missing and no cached policy: transparent, logged" || world_not_ok "broken machinery" "$out"

# ---- 6. certificate verdict memo -------------------------------------------------------------
# smtpclient (OpenSSL) under the shim against a STARTTLS server on mx1.example.test's address; the
# server takes its certificate for each handshake from the first line of $WORLD/tls-certs (the
# line is consumed while more follow). The key is recomputed here from its definition
# (shim/verdict.c): SHA-256 of host, the chain as sent (leaf, CA) and ca_file's identity.
world_stop "$SMTPD_PID"
world_cert mx1.example.test >/dev/null && world_cert mx1-evil --ca evil --san DNS:mx1.example.test >/dev/null ||
	world_not_ok "memo: certificates"
cat > "$WORLD/tlssmtpd.py" <<'EOC'
import socket, ssl, sys, threading
world = sys.argv[1]
log = open(world + "/tlssmtpd.lines", "a", buffering=1)
lock = threading.Lock()
def context():
    with lock:
        names = open(world + "/tls-certs").read().split()
        if len(names) > 1:
            open(world + "/tls-certs", "w").write("\n".join(names[1:]) + "\n")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("%s/pki/%s.chain.pem" % (world, names[0]), "%s/pki/%s.key" % (world, names[0]))
    return ctx
def serve(c):
    tls, data, buf = False, False, b""
    c.sendall(b"220 mx1.example.test ESMTP\r\n")
    while True:
        try: d = c.recv(4096)
        except OSError: break
        if not d: break
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1); line = line.rstrip(b"\r")
            if data:
                if line == b".":
                    data = False; c.sendall(b"250 queued\r\n"); log.write("MESSAGE tls=%s\n" % ("yes" if tls else "no"))
                continue
            log.write("%s tls=%s\n" % (line.decode("latin-1"), "yes" if tls else "no"))
            w = line[:4].upper()
            if w == b"EHLO":
                c.sendall(b"250 mx1\r\n" if tls else b"250-mx1\r\n250 STARTTLS\r\n")
            elif w == b"STAR" and not tls:
                c.sendall(b"220 go ahead\r\n")
                try: c = context().wrap_socket(c, server_side=True)
                except (OSError, ssl.SSLError): c.close(); return
                tls, buf = True, b""
            elif w == b"DATA": data = True; c.sendall(b"354 go\r\n")
            elif w == b"QUIT": c.sendall(b"221 bye\r\n"); break
            else: c.sendall(b"250 ok\r\n")
    c.close()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.11", 25)); srv.listen(16)
while True:
    c, _ = srv.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
EOC
cat > "$WORLD/memokey.py" <<'EOC'
import hashlib, os, re, ssl, struct, sys
host, ca, chain = sys.argv[1:4]
ders = [ssl.PEM_cert_to_DER_cert(p) for p in
        re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", open(chain).read(), re.S)]
u64 = lambda v: struct.pack(">Q", v)
h = hashlib.sha256(b"mtasts-verdict-key 1\0" + host.encode() + b"\0" + u64(len(ders)))
for d in ders: h.update(u64(len(d)) + d)
st = os.stat(ca)
h.update(ca.encode() + b"\0" + u64(1) + u64(st.st_dev) + u64(st.st_ino) + u64(st.st_size) +
         u64(st.st_mtime_ns // 10**9) + u64(st.st_mtime_ns % 10**9))
h.update(b"\0" + u64(0) * 6)   # no certificate directory (ca_file is set)
print(h.hexdigest())
EOC
echo mx1.example.test > "$WORLD/tls-certs"
world_bg tlssmtpd /usr/bin/python3 "$WORLD/tlssmtpd.py" "$WORLD"
world_wait_tcp 127.0.0.11 25 || world_not_ok "memo: STARTTLS server"
policy enforce mx1.example.test
MCACHE=$WORLD/mcache VDIR=$WORLD/mcache/verified CA=$WORLD/pki/ca.pem
mkdir -p "$MCACHE"
cat > "$WORLD/memo.conf" <<EOC
programs = smtpclient
cache_dir = $MCACHE
ca_file = $CA
fetcher = $BUILD/mtasts
log = $WORLD/memo.log
fetch_wait = 5
EOC
: > "$WORLD/memo.log"
# client [COUNT]: run smtpclient under the shim; $out, $rc, $newlog (log lines of this run)
client() {
	local before
	before=$(wc -l < "$WORLD/memo.log")
	out=$(MTASTS_CONFIG=$WORLD/memo.conf LD_PRELOAD=${PRELOAD:-$SHIM} "$BUILD/tests/smtpclient" --timeout 5 --count "${1:-1}" user@example.test 2>&1)
	rc=$?
	newlog=$(tail -n +$((before + 1)) "$WORLD/memo.log")
}
memos() { find "$VDIR" -maxdepth 1 -type f -name '[0-9a-f]*' 2>/dev/null | wc -l; }
key_good=$(python3 "$WORLD/memokey.py" mx1.example.test "$CA" "$WORLD/pki/mx1.example.test.chain.pem")
key_evil=$(python3 "$WORLD/memokey.py" mx1.example.test "$CA" "$WORLD/pki/mx1-evil.chain.pem")
# forge KEY UNTIL [EXTRA]: a memo file written by hand
forge() { printf 'mtasts-verdict 1\nkey %s\nhost mx1.example.test\nresult success\nuntil %s\n%s' "$1" "$2" "${3:-}" > "$VDIR/$1"; }
accepted() { [ "$rc" = 0 ] && grep -q 'result=success action=allow' <<< "$newlog"; }
refused() { [ "$rc" = 75 ] && grep -q 'result=certificate-not-trusted action=block' <<< "$newlog" && ! grep -q 'action=allow' <<< "$newlog"; }

client
notafter=$(date -d "$(openssl x509 -noout -enddate -in "$WORLD/pki/mx1.example.test.pem" | cut -d= -f2)" +%s)
until_=$(sed -n 's/^until //p' "$VDIR/$key_good" 2>/dev/null)
now=$(date +%s)
if accepted && [ "$(memos)" = 1 ] && [ -f "$VDIR/$key_good" ] &&
	[ "$(sed -n 1,4p "$VDIR/$key_good" | tr '\n' '|')" = "mtasts-verdict 1|key $key_good|host mx1.example.test|result success|" ] &&
	[ -n "$until_" ] && [ "$until_" -gt "$now" ] && [ "$until_" -le $((now + 3600)) ] && [ "$until_" -le "$notafter" ] &&
	[ "$(stat -c %a "$VDIR/$key_good")" = 644 ]; then
	world_ok "memo: a verified chain is memoised in cache_dir/verified/<SHA-256 key> (mode 644, until <= now + 1 h and <= notAfter)"
else
	world_not_ok "memo: verified chain memoised" "rc=$rc files=$(ls "$VDIR" 2>&1 | tr '\n' ' ') key=$key_good until=$until_ now=$now notafter=$notafter log=$newlog"
fi
ino=$(stat -c %i "$VDIR/$key_good" 2>/dev/null)
client
accepted && [ "$(stat -c %i "$VDIR/$key_good" 2>/dev/null)" = "$ino" ] && [ "$(memos)" = 1 ] &&
	world_ok "memo: the next process uses the memo (delivered, no new verification: file not rewritten)" ||
	world_not_ok "memo: hit" "rc=$rc log=$newlog"

echo mx1-evil > "$WORLD/tls-certs"
served=$(wc -l < "$WORLD/tlssmtpd.lines")
client
refused && [ ! -e "$VDIR/$key_evil" ] && [ "$(memos)" = 1 ] &&
	! tail -n +$((served + 1)) "$WORLD/tlssmtpd.lines" | grep -q '^MAIL\|^RCPT\|^MESSAGE' &&
	world_ok "memo: another chain for the same host (untrusted CA) is refused after a good one was memoised; failure not memoised" ||
	world_not_ok "memo: untrusted chain after a memoised good one" "rc=$rc log=$newlog"

rm -f "$VDIR"/*
printf 'mx1.example.test\nmx1-evil\n' > "$WORLD/tls-certs"
client 2
[ "$rc" = 75 ] && [ "$(grep -c 'result=success action=allow' <<< "$newlog")" = 1 ] &&
	grep -q 'result=certificate-not-trusted action=block' <<< "$newlog" && [ -f "$VDIR/$key_good" ] &&
	world_ok "memo: in one process, good chain verified and memoised, then the untrusted chain for the same host refused" ||
	world_not_ok "memo: one process, good then untrusted" "rc=$rc log=$newlog"

echo mx1-evil > "$WORLD/tls-certs"
cp "$VDIR/$key_good" "$VDIR/$key_evil"
client
refused && world_ok "memo: a foreign memo (another key's file under the untrusted chain's key) is ignored" ||
	world_not_ok "memo: foreign memo" "rc=$rc log=$newlog"
forge "$key_evil" $(( $(date +%s) + 600 ))
client
accepted && world_ok "memo: a well-formed memo file is honoured (control: cache_dir must be trusted like the policy cache)" ||
	world_not_ok "memo: forged memo control" "rc=$rc log=$newlog"
forge "$key_evil" $(( $(date +%s) - 1 ))
client
refused && world_ok "memo: a memo whose validity ended is not used" || world_not_ok "memo: ended memo" "rc=$rc log=$newlog"
forge "$key_evil" $(( $(date +%s) + 7200 ))
client
refused && world_ok "memo: a memo claiming more than 1 h ahead is not used" || world_not_ok "memo: too long" "rc=$rc log=$newlog"
forge "$key_evil" $(( $(date +%s) + 600 )) "extra line\n"
client
refused && world_ok "memo: a tampered memo (trailing data) is ignored" || world_not_ok "memo: tampered" "rc=$rc log=$newlog"
sed -i 's/^result success/result failure/' "$VDIR/$key_evil"
sed -i '$d' "$VDIR/$key_evil"
client
refused && world_ok "memo: a tampered memo (result line) is ignored" || world_not_ok "memo: tampered result" "rc=$rc log=$newlog"
forge "$key_good" $(( $(date +%s) + 600 ))
mv "$VDIR/$key_good" "$WORLD/forged-memo"
rm -f "$VDIR/$key_evil"
sed -i "s/$key_good/$key_evil/" "$WORLD/forged-memo"
ln -s "$WORLD/forged-memo" "$VDIR/$key_evil"
client
refused && world_ok "memo: a memo that is a symlink is not followed" || world_not_ok "memo: symlink" "rc=$rc log=$newlog"
rm -f "$VDIR/$key_evil"

echo mx1.example.test > "$WORLD/tls-certs"
head -c 300 /dev/urandom > "$VDIR/$key_good"
client
accepted && [ "$(sed -n 2p "$VDIR/$key_good")" = "key $key_good" ] &&
	world_ok "memo: a damaged memo is ignored (full verification, delivered) and replaced" ||
	world_not_ok "memo: damaged memo" "rc=$rc log=$newlog $(head -c 80 "$VDIR/$key_good" | od -c | head -2)"
touch -d '-1 minute' "$CA"
key_new=$(python3 "$WORLD/memokey.py" mx1.example.test "$CA" "$WORLD/pki/mx1.example.test.chain.pem")
client
accepted && [ "$key_new" != "$key_good" ] && [ -f "$VDIR/$key_new" ] &&
	world_ok "memo: a changed trust store (ca_file mtime) gives another key: verified again" ||
	world_not_ok "memo: trust store identity" "rc=$rc key_new=$key_new log=$newlog"

# GnuTLS in the process: gtprobe.so (linked with libgnutls, preloaded after the shim) passes
# gnutls_hash_deinit through and counts its calls, so the shim's key is GnuTLS's; the memo it
# writes must carry the key recomputed here and be used by smtpclient alone, and back.
cat > "$WORLD/gtprobe.c" <<'EOC'
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <gnutls/crypto.h>
void gnutls_hash_deinit(gnutls_hash_hd_t handle, void *digest)
{
	void (*real)(gnutls_hash_hd_t, void *) = (void (*)(gnutls_hash_hd_t, void *))dlsym(RTLD_NEXT, "gnutls_hash_deinit");
	FILE *f = fopen(getenv("GTPROBE_LOG"), "a");
	if (f) { fputs("deinit\n", f); fclose(f); }
	real(handle, digest);
}
EOC
export GTPROBE_LOG=$WORLD/gtprobe.log
if $CC -D_GNU_SOURCE -shared -fPIC -o "$WORLD/gtprobe.so" "$WORLD/gtprobe.c" -Wl,--no-as-needed -lgnutls -ldl 2>"$WORLD/gtprobe.err"; then
	gt_calls() { cat "$GTPROBE_LOG" 2>/dev/null | wc -l; }
	rm -f "$VDIR"/* "$GTPROBE_LOG"
	PRELOAD="$SHIM $WORLD/gtprobe.so" client
	ino=$(stat -c %i "$VDIR/$key_new" 2>/dev/null)
	calls=$(gt_calls)
	client
	accepted && [ -n "$ino" ] && [ "$calls" -ge 1 ] && [ "$(stat -c %i "$VDIR/$key_new" 2>/dev/null)" = "$ino" ] &&
		[ "$(memos)" = 1 ] && [ "$(gt_calls)" = "$calls" ] &&
		world_ok "memo: the key computed by GnuTLS is the recomputed one; its memo is used by an OpenSSL-only process" ||
		world_not_ok "memo: GnuTLS-written memo" "rc=$rc ino=$ino calls=$calls/$(gt_calls) files=$(ls "$VDIR" | tr '\n' ' ') key=$key_new log=$newlog"
	rm -f "$VDIR"/* "$GTPROBE_LOG"
	client
	ino=$(stat -c %i "$VDIR/$key_new" 2>/dev/null)
	PRELOAD="$SHIM $WORLD/gtprobe.so" client
	accepted && [ -n "$ino" ] && [ "$(gt_calls)" -ge 1 ] && [ "$(stat -c %i "$VDIR/$key_new" 2>/dev/null)" = "$ino" ] &&
		[ "$(memos)" = 1 ] &&
		world_ok "memo: a memo written by an OpenSSL-only process is used by a process hashing with GnuTLS" ||
		world_not_ok "memo: OpenSSL-written memo, GnuTLS process" "rc=$rc ino=$ino calls=$(gt_calls) log=$newlog"
else
	world_not_ok "memo: GnuTLS probe" "$(cat "$WORLD/gtprobe.err")"
fi

# ---- 7. secure-execution mode ----------------------------------------------------------------
# A set-user-ID program run by an unprivileged user, with the shim installed the `mtasts-install
# suid` way (set-user-ID copy in a trusted directory, preloaded by its bare name). argv[0] is the
# caller's choice there: it must not activate the shim; the executable's own name does, and the
# exec hook then puts back the bare name only. Last: overlaying /etc hides the world's resolv.conf.
cat > "$WORLD/secprobe.c" <<'EOC'
/* re-execs itself with an empty environment; the child says whether the shim is loaded (the
 * loader strips LD_PRELOAD from a secure child's environment, so look at the mappings) */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	char line[512], *child[] = { argv[0], "child", 0 }, *envp[] = { 0 };
	int loaded = 0;
	FILE *maps;
	if (argc < 2)
		return execve("/proc/self/exe", child, envp);
	maps = fopen("/proc/self/maps", "r");
	while (maps && fgets(line, sizeof line, maps))
		loaded |= strstr(line, "libBrokenLocale.so.1") != NULL;
	printf("%s\n", loaded ? "shim" : "no shim");
	return 0;
}
EOC
trusted=$(ldconfig -p 2>/dev/null | awk '$1 == "libBrokenLocale.so.1" { print $NF; exit }')
mkdir -p "$WORLD/etc-up" "$WORLD/etc-work" "$WORLD/sec"
if [ -n "$trusted" ] && $CC -o "$WORLD/sec/notmta" "$WORLD/secprobe.c" 2>"$WORLD/sec.err" &&
	cp "$WORLD/sec/notmta" "$WORLD/sec/exim4" && chmod 4755 "$WORLD/sec/notmta" "$WORLD/sec/exim4" &&
	chmod 755 "$WORLD/sec" && cp "$SHIM" "$WORLD/shim-suid.so" && chmod 4755 "$WORLD/shim-suid.so" &&
	mount -t overlay overlay -o "lowerdir=/etc,upperdir=$WORLD/etc-up,workdir=$WORLD/etc-work" /etc &&
	mkdir -p /etc/mtasts && printf 'programs = exim4\nlog = none\ncache_dir = %s\n' "$WORLD/cache" > /etc/mtasts/mtasts.conf &&
	chmod 644 /etc/mtasts/mtasts.conf && mount --bind "$WORLD/shim-suid.so" "$trusted"; then
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env -i LD_PRELOAD=libBrokenLocale.so.1 "$@" 2>&1; }
	out=$(as_nobody "$WORLD/sec/exim4")
	[ "$out" = "shim" ] &&
		world_ok "secure mode: a listed set-user-ID program keeps the shim across its re-exec (bare name)" ||
		world_not_ok "secure mode: listed program" "$out"
	out=$(as_nobody bash -c "exec -a exim4 $WORLD/sec/notmta")
	[ "$out" = "no shim" ] && world_ok "secure mode: argv[0] \"exim4\" does not activate the shim in another set-user-ID program" ||
		world_not_ok "secure mode: argv[0] activates the shim" "$out"
else
	world_not_ok "secure-mode set-up" "trusted=$trusted $(cat "$WORLD/sec.err" 2>/dev/null)"
fi

world_finish
