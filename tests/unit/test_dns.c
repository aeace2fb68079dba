/*
 * test_dns.c - unit tests of core/dns.c against an in-process fake DNS server on 127.0.0.1
 * (an ephemeral UDP port, nothing leaves loopback). The server answers with hand-built, partly
 * hostile messages chosen by the first label of the query name, so the answer walk is tested on
 * what dnsmasq never sends: decoy owners beside a CNAME chain, CNAME loops and long chains,
 * character-strings and rdata running past their bounds, compression loops, lying counts,
 * non-IN classes, SERVFAIL/REFUSED/silence. Real-server cases are in tests/integration/test-fetch.sh.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "unit.h"
#include "mtasts/dns.h"

/* ---- message builder --------------------------------------------------------------------- */

typedef struct msg {
	unsigned char b[8192];
	size_t n;
	unsigned an;
} msg;

static void put8(msg *m, unsigned v) { m->b[m->n++] = (unsigned char)v; }
static void put16(msg *m, unsigned v) { put8(m, v >> 8); put8(m, v & 0xff); }
static void put32(msg *m, uint32_t v) { put16(m, v >> 16); put16(m, v & 0xffff); }

static void put_name(msg *m, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		put8(m, (unsigned)l);
		memcpy(m->b + m->n, name, l);
		m->n += l;
		name += l + (dot ? 1 : 0);
	}
	put8(m, 0);
}

#define QNAME NULL   /* owner = the question name (compression pointer to offset 12) */

/* One RR header; returns the offset of rdlength so the caller may patch it. */
static size_t rr_head(msg *m, const char *owner, unsigned type, unsigned klass)
{
	if (owner)
		put_name(m, owner);
	else
		put16(m, 0xc00c);
	put16(m, type);
	put16(m, klass);
	put32(m, 60);
	size_t at = m->n;
	put16(m, 0);
	m->an++;
	return at;
}

static void rr_end(msg *m, size_t at)
{
	size_t len = m->n - at - 2;
	m->b[at] = (unsigned char)(len >> 8);
	m->b[at + 1] = (unsigned char)(len & 0xff);
}

/* TXT with strings given as (ptr, len) pairs terminated by NULL. */
static void txt(msg *m, const char *owner, unsigned klass, const char *s1, const char *s2)
{
	size_t at = rr_head(m, owner, 16, klass);
	const char *ss[2] = { s1, s2 };
	for (int i = 0; i < 2; i++) {
		if (!ss[i])
			continue;
		put8(m, (unsigned)strlen(ss[i]));
		memcpy(m->b + m->n, ss[i], strlen(ss[i]));
		m->n += strlen(ss[i]);
	}
	rr_end(m, at);
}

static void cname(msg *m, const char *owner, const char *target)
{
	size_t at = rr_head(m, owner, 5, 1);
	put_name(m, target);
	rr_end(m, at);
}

/* ---- fake server ------------------------------------------------------------------------- */

static int srv_fd = -1;
static unsigned srv_port;
static volatile bool srv_stop;
static pthread_t srv_thread, srv_tcp_thread;

/* Build the answer for scenario `label` (query type qtype); false: stay silent. */
static bool scenario(const char *label, unsigned qtype, msg *m, unsigned *rcode)
{
	*rcode = 0;
	if (!strcmp(label, "servfail")) { *rcode = 2; return true; }
	if (!strcmp(label, "refused")) { *rcode = 5; return true; }
	if (!strcmp(label, "nxdomain")) { *rcode = 3; return true; }
	if (!strcmp(label, "nodata")) return true;
	if (!strcmp(label, "silent")) return false;
	if (!strcmp(label, "plain")) {
		txt(m, QNAME, 1, "v=STSv1; id=1;", NULL);
		txt(m, QNAME, 1, "v=spf1 -all", NULL);
		return true;
	}
	if (!strcmp(label, "split")) {
		txt(m, QNAME, 1, "v=STSv1; id=", "abc;");
		return true;
	}
	if (!strcmp(label, "empty")) {   /* a TXT RR with one empty string and one with no strings */
		txt(m, QNAME, 1, "", NULL);
		size_t at = rr_head(m, QNAME, 16, 1);
		rr_end(m, at);
		return true;
	}
	if (!strcmp(label, "nul")) {
		size_t at = rr_head(m, QNAME, 16, 1);
		put8(m, 3); put8(m, 'x'); put8(m, 0); put8(m, 'y');
		rr_end(m, at);
		return true;
	}
	if (!strcmp(label, "decoy")) {
		/* Only the TXT at the end of the chain counts, whatever else the answer carries. */
		txt(m, "other.fake.test", 1, "v=STSv1; id=decoy1;", NULL);
		cname(m, QNAME, "HOP1.Fake.Test");
		txt(m, QNAME, 1, "v=STSv1; id=decoy2;", NULL);
		cname(m, "hop1.fake.test", "final.fake.test");
		txt(m, "hop1.fake.test", 1, "v=STSv1; id=decoy3;", NULL);
		txt(m, "FINAL.fake.test", 1, "v=STSv1; id=real;", NULL);
		return true;
	}
	if (!strcmp(label, "cnameonly")) {
		cname(m, QNAME, "target.fake.test");
		txt(m, "elsewhere.fake.test", 1, "v=STSv1; id=no;", NULL);
		return true;
	}
	if (!strcmp(label, "loop")) {
		cname(m, QNAME, "b.fake.test");
		cname(m, "b.fake.test", "loop.fake.test");
		txt(m, "b.fake.test", 1, "v=STSv1; id=no;", NULL);
		return true;
	}
	if (!strcmp(label, "chain8") || !strcmp(label, "chain9")) {
		int hops = label[5] - '0';
		char from[64], to[64];
		for (int i = 0; i < hops; i++) {
			snprintf(to, sizeof(to), "h%d.fake.test", i + 1);
			if (i == 0) {
				cname(m, QNAME, to);
			} else {
				snprintf(from, sizeof(from), "h%d.fake.test", i);
				cname(m, from, to);
			}
		}
		snprintf(to, sizeof(to), "h%d.fake.test", hops);
		txt(m, to, 1, "v=STSv1; id=deep;", NULL);
		return true;
	}
	if (!strcmp(label, "overrun")) {   /* string length runs past rdlength */
		size_t at = rr_head(m, QNAME, 16, 1);
		put8(m, 20); put8(m, 'v'); put8(m, '=');
		rr_end(m, at);
		txt(m, QNAME, 1, "v=STSv1; id=after;", NULL);
		return true;
	}
	if (!strcmp(label, "rdlen")) {   /* rdlength past the end of the message */
		size_t at = rr_head(m, QNAME, 16, 1);
		put8(m, 2); put8(m, 'v'); put8(m, '=');
		rr_end(m, at);
		m->b[at] = 0x10;
		return true;
	}
	if (!strcmp(label, "ptrloop")) {   /* owner name: a compression pointer to itself */
		size_t self = m->n;
		put16(m, 0xc000 | (unsigned)self);
		put16(m, 16); put16(m, 1); put32(m, 60); put16(m, 2); put8(m, 1); put8(m, 'x');
		m->an++;
		return true;
	}
	if (!strcmp(label, "ancount")) {   /* claims three answers, carries one */
		txt(m, QNAME, 1, "v=STSv1; id=1;", NULL);
		m->an = 3;
		return true;
	}
	if (!strcmp(label, "chaos")) {
		txt(m, QNAME, 3, "v=STSv1; id=chaos;", NULL);
		txt(m, QNAME, 1, "v=STSv1; id=in;", NULL);
		return true;
	}
	if (!strcmp(label, "many256") || !strcmp(label, "many257")) {
		int n = label[6] == '6' ? 256 : 257;
		for (int i = 0; i < n; i++)
			txt(m, QNAME, 1, "", NULL);
		return true;
	}
	if (!strcmp(label, "addrs")) {
		if (qtype == 1) {
			size_t at = rr_head(m, QNAME, 1, 1);
			put32(m, 0xc0000201);   /* 192.0.2.1 */
			rr_end(m, at);
			at = rr_head(m, "x.fake.test", 1, 1);
			put32(m, 0xc0000263);   /* decoy owner */
			rr_end(m, at);
		} else if (qtype == 28) {
			size_t at = rr_head(m, QNAME, 28, 1);
			static const unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
			memcpy(m->b + m->n, v6, 16);
			m->n += 16;
			rr_end(m, at);
		}
		return true;
	}
	if (!strcmp(label, "v4only")) {   /* A fine, AAAA SERVFAIL */
		if (qtype == 28) {
			*rcode = 2;
			return true;
		}
		size_t at = rr_head(m, QNAME, 1, 1);
		put32(m, 0xc0000202);
		rr_end(m, at);
		return true;
	}
	if (!strcmp(label, "badaddr")) {   /* A with 5 bytes of rdata */
		size_t at = rr_head(m, QNAME, 1, 1);
		put32(m, 0xc0000203);
		put8(m, 0);
		rr_end(m, at);
		return true;
	}
	*rcode = 3;
	return true;
}

/* Answer query q (n bytes) into m; false: no answer (malformed query or a silent scenario). */
static bool answer(const unsigned char *q, size_t n, msg *m)
{
	if (n < 17)
		return false;
	/* question: name at 12, then qtype, qclass */
	size_t i = 12;
	while (i < n && q[i])
		i += q[i] + 1u;
	if (i + 5 > n)
		return false;
	size_t qend = i + 5;
	unsigned qtype = (unsigned)(q[i + 1] << 8 | q[i + 2]);
	char label[64] = "";
	size_t l = q[12] < 63 ? q[12] : 63;
	memcpy(label, q + 13, l);
	label[l] = '\0';
	for (char *c = label; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');

	memset(m, 0, sizeof(*m));
	memcpy(m->b, q, qend);
	m->n = qend;
	unsigned rcode = 0;
	if (!scenario(label, qtype, m, &rcode))
		return false;
	m->b[2] = 0x81;                            /* QR, RD */
	m->b[3] = (unsigned char)(0x80 | rcode);   /* RA, rcode */
	m->b[4] = 0; m->b[5] = 1;
	m->b[6] = (unsigned char)(m->an >> 8); m->b[7] = (unsigned char)(m->an & 0xff);
	memset(m->b + 8, 0, 4);
	return true;
}

static int srv_tcp = -1;

static void *server_main(void *arg)
{
	(void)arg;
	unsigned char q[512];
	static msg m;
	while (!srv_stop) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(srv_fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		if (n <= 0 || !answer(q, (size_t)n, &m))
			continue;
		if (m.n > 512) {   /* plain DNS over UDP: truncate to the question, set TC */
			size_t i = 12;
			while (q[i])
				i += q[i] + 1u;
			m.n = i + 5;
			m.b[2] |= 0x02;
			memset(m.b + 6, 0, 6);
		}
		sendto(srv_fd, m.b, m.n, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static void *server_tcp_main(void *arg)
{
	(void)arg;
	static msg m;
	unsigned char q[514];
	while (!srv_stop) {
		int c = accept4(srv_tcp, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		struct timeval tv = { .tv_usec = 500000 };
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		for (;;) {
			size_t got = 0;
			while (got < 2) {
				ssize_t r = recv(c, q + got, 2 - got, 0);
				if (r <= 0)
					goto done;
				got += (size_t)r;
			}
			size_t len = (size_t)(q[0] << 8 | q[1]);
			if (len > 512)
				goto done;
			got = 0;
			while (got < len) {
				ssize_t r = recv(c, q + 2 + got, len - got, 0);
				if (r <= 0)
					goto done;
				got += (size_t)r;
			}
			if (!answer(q + 2, len, &m))
				continue;
			unsigned char pre[2] = { (unsigned char)(m.n >> 8), (unsigned char)(m.n & 0xff) };
			if (send(c, pre, 2, MSG_NOSIGNAL) != 2 ||
			    send(c, m.b, m.n, MSG_NOSIGNAL) != (ssize_t)m.n)
				goto done;
		}
done:
		close(c);
	}
	return NULL;
}

static void server_start(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct timeval tv = { .tv_usec = 50000 };
	srv_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(srv_fd, 0);
	ck_assert_int_eq(bind(srv_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(srv_fd, (struct sockaddr *)&sa, &sl), 0);
	setsockopt(srv_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	srv_port = ntohs(sa.sin_port);
	/* the same port over TCP, for answers that do not fit in 512 bytes */
	srv_tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(srv_tcp, 0);
	ck_assert_int_eq(bind(srv_tcp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(srv_tcp, 8), 0);
	setsockopt(srv_tcp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	srv_stop = false;
	ck_assert_int_eq(pthread_create(&srv_thread, NULL, server_main, NULL), 0);
	ck_assert_int_eq(pthread_create(&srv_tcp_thread, NULL, server_tcp_main, NULL), 0);
}

static void server_stop(void)
{
	srv_stop = true;
	pthread_join(srv_thread, NULL);
	pthread_join(srv_tcp_thread, NULL);
	close(srv_tcp);
	srv_tcp = -1;
	close(srv_fd);
	srv_fd = -1;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static mtasts_dns *dns_for_fake(long timeout_ms)
{
	char servers[64];
	mtasts_dns *dns = NULL;
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", srv_port);
	ck_assert_int_eq(mtasts_dns_new(servers, timeout_ms, &dns), MTASTS_OK);
	ck_assert_ptr_nonnull(dns);
	return dns;
}

static mtasts_status lookup_txt(const char *name, mtasts_strv *out)
{
	mtasts_dns *dns = dns_for_fake(300);
	mtasts_status st = mtasts_dns_txt(dns, name, out);
	mtasts_dns_destroy(&dns);
	ck_assert_ptr_null(dns);
	return st;
}

static bool has(const mtasts_strv *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->len[i] == strlen(s) && memcmp(v->v[i], s, v->len[i]) == 0)
			return true;
	return false;
}

static void expect_status(const char *name, mtasts_status want)
{
	mtasts_strv v = { 0 };
	mtasts_status st = lookup_txt(name, &v);
	ck_assert_msg(st == want, "%s: got %s, want %s", name, mtasts_strerror(st),
	              mtasts_strerror(want));
	ck_assert_int_eq(v.n, 0);
	ck_assert_ptr_null(v.v);
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(txt_plain_records)
{
	mtasts_strv v = { 0 };
	ck_assert_int_eq(lookup_txt("plain.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 2);
	ck_assert(has(&v, "v=STSv1; id=1;"));
	ck_assert(has(&v, "v=spf1 -all"));
	mtasts_strv_clear(&v);
	ck_assert_int_eq(v.n, 0);
	mtasts_strv_clear(&v);
}
END_TEST

START_TEST(txt_split_joined_with_nothing)
{
	mtasts_strv v = { 0 };
	ck_assert_int_eq(lookup_txt("split.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 1);
	ck_assert_str_eq(v.v[0], "v=STSv1; id=abc;");
	mtasts_strv_clear(&v);
}
END_TEST

START_TEST(txt_empty_and_nul)
{
	mtasts_strv v = { 0 };
	ck_assert_int_eq(lookup_txt("empty.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 2);
	ck_assert_int_eq(v.len[0], 0);
	ck_assert_int_eq(v.len[1], 0);
	mtasts_strv_clear(&v);
	ck_assert_int_eq(lookup_txt("nul.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 1);
	ck_assert_int_eq(v.len[0], 3);
	ck_assert_int_eq(memcmp(v.v[0], "x\0y", 4), 0);
	mtasts_strv_clear(&v);
}
END_TEST

START_TEST(txt_only_final_owner_counts)
{
	mtasts_strv v = { 0 };
	ck_assert_int_eq(lookup_txt("decoy.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 1);
	ck_assert_str_eq(v.v[0], "v=STSv1; id=real;");
	mtasts_strv_clear(&v);
	expect_status("cnameonly.fake.test", MTASTS_ERR_NOT_FOUND);
}
END_TEST

START_TEST(txt_cname_chains_bounded)
{
	mtasts_strv v = { 0 };
	ck_assert_int_eq(lookup_txt("chain8.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 1);
	ck_assert_str_eq(v.v[0], "v=STSv1; id=deep;");
	mtasts_strv_clear(&v);
	expect_status("chain9.fake.test", MTASTS_ERR_DNS_TEMP);
	expect_status("loop.fake.test", MTASTS_ERR_DNS_TEMP);
}
END_TEST

START_TEST(txt_malformed_answers)
{
	expect_status("overrun.fake.test", MTASTS_ERR_DNS_TEMP);
	expect_status("rdlen.fake.test", MTASTS_ERR_DNS_TEMP);
	expect_status("ptrloop.fake.test", MTASTS_ERR_DNS_TEMP);
	expect_status("ancount.fake.test", MTASTS_ERR_DNS_TEMP);
}
END_TEST

START_TEST(txt_class_in_only)
{
	mtasts_strv v = { 0 };
	ck_assert_int_eq(lookup_txt("chaos.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 1);
	ck_assert_str_eq(v.v[0], "v=STSv1; id=in;");
	mtasts_strv_clear(&v);
}
END_TEST

START_TEST(txt_answer_size_bound)
{
	mtasts_strv v = { 0 };
	ck_assert_int_eq(lookup_txt("many256.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 256);
	mtasts_strv_clear(&v);
	expect_status("many257.fake.test", MTASTS_ERR_DNS_TEMP);   /* never a partial RRset */
}
END_TEST

START_TEST(txt_rcodes)
{
	expect_status("nxdomain.fake.test", MTASTS_ERR_NOT_FOUND);
	expect_status("nodata.fake.test", MTASTS_ERR_NOT_FOUND);
	expect_status("servfail.fake.test", MTASTS_ERR_DNS_TEMP);
	expect_status("refused.fake.test", MTASTS_ERR_DNS_TEMP);
}
END_TEST

START_TEST(txt_silence_is_temporary_and_bounded)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_status("silent.fake.test", MTASTS_ERR_DNS_TEMP);   /* 300 ms per try, 2 tries */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_msg(ms >= 250 && ms < 2500, "silent server took %ld ms", ms);
}
END_TEST

START_TEST(addrs_both_families_final_owner)
{
	mtasts_dns *dns = dns_for_fake(300);
	mtasts_strv v = { 0 };
	ck_assert_int_eq(mtasts_dns_addrs(dns, "addrs.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 2);
	ck_assert(has(&v, "192.0.2.1"));
	ck_assert(has(&v, "2001:db8::1"));
	mtasts_strv_clear(&v);
	ck_assert_int_eq(mtasts_dns_addrs(dns, "v4only.fake.test", &v), MTASTS_OK);
	ck_assert_int_eq(v.n, 1);
	ck_assert_str_eq(v.v[0], "192.0.2.2");
	mtasts_strv_clear(&v);
	ck_assert_int_eq(mtasts_dns_addrs(dns, "servfail.fake.test", &v), MTASTS_ERR_DNS_TEMP);
	ck_assert_int_eq(mtasts_dns_addrs(dns, "nxdomain.fake.test", &v), MTASTS_ERR_NOT_FOUND);
	ck_assert_int_eq(mtasts_dns_addrs(dns, "nodata.fake.test", &v), MTASTS_ERR_NOT_FOUND);
	ck_assert_int_eq(mtasts_dns_addrs(dns, "badaddr.fake.test", &v), MTASTS_ERR_DNS_TEMP);
	ck_assert_int_eq(v.n, 0);
	mtasts_dns_destroy(&dns);
}
END_TEST

START_TEST(arguments)
{
	mtasts_dns *dns = NULL;
	mtasts_strv v = { 0 };
	ck_assert_int_eq(mtasts_dns_new("not an address", 100, &dns), MTASTS_ERR_INVALID_ARG);
	ck_assert_ptr_null(dns);
	ck_assert_int_eq(mtasts_dns_new(NULL, 100, NULL), MTASTS_ERR_INVALID_ARG);
	dns = dns_for_fake(100);
	ck_assert_int_eq(mtasts_dns_txt(dns, "", &v), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_dns_txt(dns, NULL, &v), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_dns_txt(dns, "x.test", NULL), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_dns_txt(NULL, "x.test", &v), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_dns_addrs(dns, "", &v), MTASTS_ERR_INVALID_ARG);
	mtasts_dns_destroy(&dns);
	ck_assert_ptr_null(dns);
	mtasts_dns_destroy(&dns);
	mtasts_dns_destroy(NULL);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("fake-server");
	tcase_add_unchecked_fixture(tc, server_start, server_stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, txt_plain_records);
	tcase_add_test(tc, txt_split_joined_with_nothing);
	tcase_add_test(tc, txt_empty_and_nul);
	tcase_add_test(tc, txt_only_final_owner_counts);
	tcase_add_test(tc, txt_cname_chains_bounded);
	tcase_add_test(tc, txt_malformed_answers);
	tcase_add_test(tc, txt_class_in_only);
	tcase_add_test(tc, txt_answer_size_bound);
	tcase_add_test(tc, txt_rcodes);
	tcase_add_test(tc, txt_silence_is_temporary_and_bounded);
	tcase_add_test(tc, addrs_both_families_final_owner);
	tcase_add_test(tc, arguments);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(make_suite)
