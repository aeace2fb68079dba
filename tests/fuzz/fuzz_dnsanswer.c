/*
 * fuzz_dnsanswer.c - libFuzzer target of the shim's DNS answer parser (shim/dnsobs.c,
 * dnsobs_observe: a raw res_search/res_query answer into the domain -> MX -> address table).
 *
 * Any input must be parsed or ignored without a crash, overread or hang. What the parser
 * recorded is then checked against a second reading of the same message by libresolv's own
 * ns_initparse/ns_parserr (an independent parser; only for messages it accepts whole):
 *   - the returned question name is set exactly for a NOERROR response to one valid MX question,
 *     and is that name normalised;
 *   - every A/AAAA of the question name or of its CNAME chain in the answer section is in the
 *     table for the question name; every A/AAAA of the additional section (when the earlier
 *     sections were read whole, names expanded) is in the table for its owner;
 *   - every MX of the question name or of its chain with a usable exchange is a (domain, host)
 *     pair of the table, and an MX answer holding no MX record at all records the implicit
 *     MX (D, D).
 * The table is the shim's process-wide one and persists across inputs (as in an MTA); checks
 * only ask about what the current input must have added. Seeds: tests/fuzz/corpus/dnsanswer
 * (made by tests/fuzz/make_dns_seeds.py).
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <resolv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsobs.h"
#include "shim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* dnsobs.c takes the shim's process-wide lock; the fuzzer is single-threaded. */
void shim_lock(void)
{
}

void shim_unlock(void)
{
}

static dnsobs_pair pairs[DNSOBS_MX_MAX];
static uint64_t sentinel_serial;

static void check_name(const char *name)
{
	char again[MTASTS_DOMAIN_MAX];

	if (!memchr(name, '\0', MTASTS_DOMAIN_MAX))
		abort();
	if (mtasts_domain_normalize(name, again) != MTASTS_OK || strcmp(name, again) != 0)
		abort();
}

/* Is (domain, host) an MX pair of the table? Asked through a fresh address given to host. */
static bool has_pair(const char *domain, const char *host)
{
	dnsobs_addr sentinel = { .family = AF_INET6 };
	uint64_t serial = ++sentinel_serial;
	size_t n;

	/* 100::/64, the discard-only prefix, with a serial no earlier call used */
	sentinel.bytes[0] = 0x01;
	memcpy(sentinel.bytes + 8, &serial, sizeof(serial));
	dnsobs_add_addr(host, &sentinel);
	n = dnsobs_candidates(&sentinel, pairs, DNSOBS_MX_MAX);
	for (size_t i = 0; i < n; i++) {
		check_name(pairs[i].domain);
		check_name(pairs[i].host);
		if (strcmp(pairs[i].domain, domain) == 0 && strcmp(pairs[i].host, host) == 0)
			return true;
	}
	return false;
}

/* Expand a name at p to its normal form; false when damaged or not a valid domain. */
static bool norm_name(const unsigned char *msg, const unsigned char *eom, const unsigned char *p,
                      char out[MTASTS_DOMAIN_MAX], int *used)
{
	char buf[NS_MAXDNAME];
	int n = dn_expand(msg, eom, p, buf, sizeof(buf));

	if (used)
		*used = n;
	return n >= 0 && mtasts_domain_normalize(buf, out) == MTASTS_OK;
}

static void check_address(const ns_rr *rr, const char *host)
{
	dnsobs_addr addr;

	memset(&addr, 0, sizeof(addr));
	if (ns_rr_type(*rr) == ns_t_a && ns_rr_rdlen(*rr) == 4) {
		addr.family = AF_INET;
		memcpy(addr.bytes, ns_rr_rdata(*rr), 4);
	} else if (ns_rr_type(*rr) == ns_t_aaaa && ns_rr_rdlen(*rr) == 16) {
		addr.family = AF_INET6;
		memcpy(addr.bytes, ns_rr_rdata(*rr), 16);
	} else {
		return;
	}
	if (!dnsobs_host_has_addr(host, &addr))
		abort();
}

/* An answer-section record as the second reading sees it. */
typedef struct an_rr {
	ns_rr rr;
	bool usable;                       /* class IN, owner a valid name */
	char owner[MTASTS_DOMAIN_MAX];
	char target[MTASTS_DOMAIN_MAX];    /* CNAME target / MX exchange inside its rdata, or "" */
} an_rr;

static an_rr answers[DNSOBS_MAX_RR];

static bool in_chain(char (*chain)[MTASTS_DOMAIN_MAX], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(chain[i], name) == 0)
			return true;
	}
	return false;
}

/* The second reading; qname is what dnsobs_observe returned. */
static void cross_check(const unsigned char *msg, size_t len, const char *qname)
{
	const unsigned char *eom = msg + len;
	char question[MTASTS_DOMAIN_MAX], owner[MTASTS_DOMAIN_MAX];
	char chain[DNSOBS_CNAME_CHAIN + 1][MTASTS_DOMAIN_MAX];
	bool mx_question = false, any_mx = false, grew = true;
	int used, qtype = -1, n = 0;
	size_t nchain = 1;
	ns_msg handle;
	ns_rr rr;

	/* the question: needs only the header and the first question to be readable */
	if (len >= 12 && (msg[2] & 0x80) && (msg[3] & 0x0f) == 0 && msg[4] == 0 && msg[5] == 1 &&
	    norm_name(msg, eom, msg + 12, question, &used) && eom - (msg + 12 + used) >= 4) {
		qtype = (msg[12 + used] << 8) | msg[12 + used + 1];
		mx_question = qtype == ns_t_mx;
	}
	if (mx_question ? strcmp(qname, question) != 0 : qname[0] != '\0')
		abort();
	if (qtype < 0 || ns_initparse(msg, (int)len, &handle) < 0)
		return;
	/* the answer section, up to a record whose owner does not expand (dnsobs stops there too) */
	for (; n < ns_msg_count(handle, ns_s_an) && n < DNSOBS_MAX_RR; n++) {
		an_rr *a = &answers[n];
		const unsigned char *rdata;
		uint16_t rdlen;

		if (ns_parserr(&handle, ns_s_an, n, &a->rr) < 0)
			break;
		rdata = ns_rr_rdata(a->rr);
		rdlen = ns_rr_rdlen(a->rr);
		any_mx |= ns_rr_type(a->rr) == ns_t_mx;
		a->usable = ns_rr_class(a->rr) == ns_c_in &&
		            mtasts_domain_normalize(ns_rr_name(a->rr), a->owner) == MTASTS_OK;
		if (!(a->usable &&
		      ((ns_rr_type(a->rr) == ns_t_cname && norm_name(msg, eom, rdata, a->target, &used) &&
		        used <= rdlen) ||
		       (ns_rr_type(a->rr) == ns_t_mx && rdlen >= 3 &&
		        norm_name(msg, eom, rdata + 2, a->target, &used) && used <= rdlen - 2))))
			a->target[0] = '\0';
	}
	/* the CNAME chain of the question name: at each step the first CNAME that leads on */
	memcpy(chain[0], question, MTASTS_DOMAIN_MAX);
	while (grew && nchain <= DNSOBS_CNAME_CHAIN) {
		grew = false;
		for (int i = 0; i < n && !grew; i++) {
			const an_rr *a = &answers[i];
			if (a->usable && ns_rr_type(a->rr) == ns_t_cname && a->target[0] &&
			    strcmp(a->owner, chain[nchain - 1]) == 0 && !in_chain(chain, nchain, a->target)) {
				memcpy(chain[nchain++], a->target, MTASTS_DOMAIN_MAX);
				grew = true;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		const an_rr *a = &answers[i];
		if (!a->usable || !in_chain(chain, nchain, a->owner))
			continue;
		check_address(&a->rr, question);
		if (mx_question && ns_rr_type(a->rr) == ns_t_mx && a->target[0] &&
		    !has_pair(question, a->target))
			abort();
	}
	if (mx_question && !any_mx && !has_pair(question, question))
		abort();
	if (n < ns_msg_count(handle, ns_s_an) || ns_msg_count(handle, ns_s_ns) > DNSOBS_MAX_RR)
		return;
	for (int i = 0; i < ns_msg_count(handle, ns_s_ns); i++) {
		if (ns_parserr(&handle, ns_s_ns, i, &rr) < 0)
			return;   /* ns_initparse skips names without expanding them: dnsobs stops here */
	}
	for (int i = 0; i < ns_msg_count(handle, ns_s_ar) && i < DNSOBS_MAX_RR; i++) {
		if (ns_parserr(&handle, ns_s_ar, i, &rr) < 0)
			return;
		if (ns_rr_class(rr) == ns_c_in &&
		    mtasts_domain_normalize(ns_rr_name(rr), owner) == MTASTS_OK)
			check_address(&rr, owner);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char qname[MTASTS_DOMAIN_MAX];

	if (size > 65535)   /* a DNS message (res_search's answer buffer) is at most 64 KiB */
		return 0;
	memset(qname, 'x', sizeof(qname));
	dnsobs_observe(data, (int)size, qname);
	if (!memchr(qname, '\0', sizeof(qname)))
		abort();
	if (qname[0])
		check_name(qname);
	cross_check(data, size, qname);
	return 0;
}
