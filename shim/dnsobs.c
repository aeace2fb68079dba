/*
 * dnsobs.c - the table behind dnsobs.h and the bounded parser of raw DNS answers.
 *
 * Hostile-input rules: every length is checked against the end of the message before it is used,
 * names are expanded with dn_expand bounded by the message end and the output size, at most
 * DNSOBS_MAX_RR records per section are looked at, CNAME chains are followed at most
 * DNSOBS_CNAME_CHAIN steps from the question name, and only names that mtasts_domain_normalize
 * accepts are stored. The table is static memory (no allocation: it survives fork as it is) and
 * is only touched under shim_lock().
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dnsobs.h"
#include "shim.h"

typedef struct mx_ent {
	uint32_t stamp;         /* 0: free */
	char domain[MTASTS_DOMAIN_MAX];
	char host[MTASTS_DOMAIN_MAX];
} mx_ent;

typedef struct addr_ent {
	uint32_t stamp;
	dnsobs_addr addr;
	char host[MTASTS_DOMAIN_MAX];
} addr_ent;

typedef struct cname_ent {
	uint32_t stamp;
	char alias[MTASTS_DOMAIN_MAX];
	char target[MTASTS_DOMAIN_MAX];
} cname_ent;

static mx_ent mx_table[DNSOBS_MX_MAX];
static addr_ent addr_table[DNSOBS_ADDR_MAX];
static cname_ent cname_table[DNSOBS_CNAME_MAX];
static uint32_t clock_tick;

static uint32_t tick(void)
{
	if (++clock_tick == 0)
		clock_tick = 1;
	return clock_tick;
}

/* ---- table ---------------------------------------------------------------------------------- */

static void put_mx(const char *domain, const char *host)
{
	size_t victim = 0;

	for (size_t i = 0; i < DNSOBS_MX_MAX; i++) {
		if (mx_table[i].stamp && strcmp(mx_table[i].domain, domain) == 0 &&
		    strcmp(mx_table[i].host, host) == 0) {
			mx_table[i].stamp = tick();
			return;
		}
		if (mx_table[i].stamp < mx_table[victim].stamp)
			victim = i;
	}
	memcpy(mx_table[victim].domain, domain, MTASTS_DOMAIN_MAX);
	memcpy(mx_table[victim].host, host, MTASTS_DOMAIN_MAX);
	mx_table[victim].stamp = tick();
}

static void drop_mx_of(const char *domain)
{
	for (size_t i = 0; i < DNSOBS_MX_MAX; i++) {
		if (mx_table[i].stamp && strcmp(mx_table[i].domain, domain) == 0)
			mx_table[i].stamp = 0;
	}
}

static void put_addr(const char *host, const dnsobs_addr *addr)
{
	size_t victim = 0;

	for (size_t i = 0; i < DNSOBS_ADDR_MAX; i++) {
		if (addr_table[i].stamp && addr_table[i].addr.family == addr->family &&
		    memcmp(addr_table[i].addr.bytes, addr->bytes, 16) == 0 &&
		    strcmp(addr_table[i].host, host) == 0) {
			addr_table[i].stamp = tick();
			return;
		}
		if (addr_table[i].stamp < addr_table[victim].stamp)
			victim = i;
	}
	addr_table[victim].addr = *addr;
	memcpy(addr_table[victim].host, host, MTASTS_DOMAIN_MAX);
	addr_table[victim].stamp = tick();
}

static void put_cname(const char *alias, const char *target)
{
	size_t victim = 0;

	for (size_t i = 0; i < DNSOBS_CNAME_MAX; i++) {
		if (cname_table[i].stamp && strcmp(cname_table[i].alias, alias) == 0) {
			memcpy(cname_table[i].target, target, MTASTS_DOMAIN_MAX);
			cname_table[i].stamp = tick();
			return;
		}
		if (cname_table[i].stamp < cname_table[victim].stamp)
			victim = i;
	}
	memcpy(cname_table[victim].alias, alias, MTASTS_DOMAIN_MAX);
	memcpy(cname_table[victim].target, target, MTASTS_DOMAIN_MAX);
	cname_table[victim].stamp = tick();
}

void dnsobs_add_addr(const char *host, const dnsobs_addr *addr)
{
	char norm[MTASTS_DOMAIN_MAX];

	if (!host || mtasts_domain_normalize(host, norm) != MTASTS_OK)
		return;
	shim_lock();
	put_addr(norm, addr);
	shim_unlock();
}

bool dnsobs_from_sockaddr(const void *sa, size_t salen, dnsobs_addr *out, unsigned short *port)
{
	sa_family_t family;

	if (!sa || salen < sizeof(sa_family_t))
		return false;
	memcpy(&family, sa, sizeof(family));
	memset(out, 0, sizeof(*out));
	if (family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof(in));
		out->family = AF_INET;
		memcpy(out->bytes, &in.sin_addr, 4);
		if (port)
			*port = ntohs(in.sin_port);
		return true;
	}
	if (family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof(in6));
		if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
			out->family = AF_INET;
			memcpy(out->bytes, in6.sin6_addr.s6_addr + 12, 4);
		} else {
			out->family = AF_INET6;
			memcpy(out->bytes, in6.sin6_addr.s6_addr, 16);
		}
		if (port)
			*port = ntohs(in6.sin6_port);
		return true;
	}
	return false;
}

static bool in_set(char (*set)[MTASTS_DOMAIN_MAX], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(set[i], name) == 0)
			return true;
	}
	return false;
}

#define HOSTS_MAX 16

size_t dnsobs_candidates(const dnsobs_addr *addr, dnsobs_pair *out, size_t max)
{
	char hosts[HOSTS_MAX][MTASTS_DOMAIN_MAX];
	size_t nhosts = 0, n = 0;

	shim_lock();
	for (size_t i = 0; i < DNSOBS_ADDR_MAX && nhosts < HOSTS_MAX; i++) {
		if (addr_table[i].stamp && addr_table[i].addr.family == addr->family &&
		    memcmp(addr_table[i].addr.bytes, addr->bytes, 16) == 0 &&
		    !in_set(hosts, nhosts, addr_table[i].host)) {
			memcpy(hosts[nhosts++], addr_table[i].host, MTASTS_DOMAIN_MAX);
			addr_table[i].stamp = tick();
		}
	}
	/* Aliases whose CNAME chain leads to one of these hosts: the MX RR names the alias. */
	for (int round = 0; round < DNSOBS_CNAME_CHAIN; round++) {
		bool grew = false;
		for (size_t i = 0; i < DNSOBS_CNAME_MAX && nhosts < HOSTS_MAX; i++) {
			if (cname_table[i].stamp && in_set(hosts, nhosts, cname_table[i].target) &&
			    !in_set(hosts, nhosts, cname_table[i].alias)) {
				memcpy(hosts[nhosts++], cname_table[i].alias, MTASTS_DOMAIN_MAX);
				grew = true;
			}
		}
		if (!grew)
			break;
	}
	for (size_t i = 0; i < DNSOBS_MX_MAX && n < max; i++) {
		if (!mx_table[i].stamp || !in_set(hosts, nhosts, mx_table[i].host))
			continue;
		bool dup = false;
		for (size_t j = 0; j < n; j++) {
			if (strcmp(out[j].domain, mx_table[i].domain) == 0 &&
			    strcmp(out[j].host, mx_table[i].host) == 0)
				dup = true;
		}
		if (dup)
			continue;
		memcpy(out[n].domain, mx_table[i].domain, MTASTS_DOMAIN_MAX);
		memcpy(out[n].host, mx_table[i].host, MTASTS_DOMAIN_MAX);
		mx_table[i].stamp = tick();
		n++;
	}
	shim_unlock();
	return n;
}

bool dnsobs_host_has_addr(const char *host, const dnsobs_addr *addr)
{
	bool found = false;

	shim_lock();
	for (size_t i = 0; i < DNSOBS_ADDR_MAX && !found; i++) {
		found = addr_table[i].stamp && addr_table[i].addr.family == addr->family &&
		        memcmp(addr_table[i].addr.bytes, addr->bytes, 16) == 0 &&
		        strcmp(addr_table[i].host, host) == 0;
	}
	shim_unlock();
	return found;
}

/* ---- parser --------------------------------------------------------------------------------- */

typedef struct rr {
	int type;
	bool valid_owner;
	char owner[MTASTS_DOMAIN_MAX];
	char target[MTASTS_DOMAIN_MAX];   /* CNAME target / MX exchange, "" if not a valid name */
	unsigned char addr[16];
} rr;

typedef struct answer {
	char qname[MTASTS_DOMAIN_MAX];
	int qtype;
	int rcode;
	size_t n;
	rr rrs[2 * DNSOBS_MAX_RR];       /* answer section, then additional section */
	size_t n_answer;                 /* how many of rrs are from the answer section */
} answer;

static answer scratch;   /* used under shim_lock() only: too big for an MTA thread's stack */

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

/* Expand a name at *pos; advance *pos past it. false when damaged. */
static bool take_name(const unsigned char *msg, const unsigned char *eom, const unsigned char **pos,
                      char out[MTASTS_DOMAIN_MAX], bool *valid)
{
	char buf[NS_MAXDNAME];
	int used = dn_expand(msg, eom, *pos, buf, sizeof(buf));

	if (used < 0 || used > eom - *pos)
		return false;
	*pos += used;
	*valid = mtasts_domain_normalize(buf, out) == MTASTS_OK;
	if (!*valid)
		out[0] = '\0';
	return true;
}

/* Parse one resource record (keeping it when keep and there is room). */
static bool take_rr(const unsigned char *msg, const unsigned char *eom, const unsigned char **pos,
                    answer *a, bool keep)
{
	rr tmp, *r = keep && a->n < sizeof(a->rrs) / sizeof(a->rrs[0]) ? &a->rrs[a->n] : &tmp;
	uint16_t type, klass, rdlen;
	const unsigned char *rdata;

	memset(r, 0, sizeof(*r));
	if (!take_name(msg, eom, pos, r->owner, &r->valid_owner))
		return false;
	if (eom - *pos < 10)
		return false;
	type = get16(*pos);
	klass = get16(*pos + 2);
	rdlen = get16(*pos + 8);
	*pos += 10;
	if (eom - *pos < rdlen)
		return false;
	rdata = *pos;
	*pos += rdlen;
	if (klass != ns_c_in || !r->valid_owner)
		return true;
	r->type = type;
	switch (type) {
	case ns_t_a:
		if (rdlen != 4)
			return true;
		memcpy(r->addr, rdata, 4);
		break;
	case ns_t_aaaa:
		if (rdlen != 16)
			return true;
		memcpy(r->addr, rdata, 16);
		break;
	case ns_t_cname: {
		const unsigned char *p = rdata;
		bool valid;
		if (!take_name(msg, eom, &p, r->target, &valid) || p > rdata + rdlen)
			r->type = 0;
		break;
	}
	case ns_t_mx: {
		const unsigned char *p = rdata + 2;
		bool valid;
		if (rdlen < 3 || !take_name(msg, eom, &p, r->target, &valid) || p > rdata + rdlen)
			r->type = 0;
		/* a null MX ("."), or a name we cannot use, stays as an MX RR with target "" */
		break;
	}
	default:
		r->type = 0;
		return true;
	}
	if (r == &a->rrs[a->n] && r->type)
		a->n++;
	return true;
}

static bool parse_answer(const unsigned char *msg, size_t len, answer *a)
{
	const unsigned char *eom = msg + len, *pos = msg + 12;
	uint16_t qd, an, ns, ar;
	bool valid;

	memset(a, 0, offsetof(answer, rrs));
	a->n_answer = 0;   /* after rrs: not cleared above, and stale from the previous answer */
	if (len < 12 || !(msg[2] & 0x80))    /* not a response */
		return false;
	a->rcode = msg[3] & 0x0f;
	qd = get16(msg + 4);
	an = get16(msg + 6);
	ns = get16(msg + 8);
	ar = get16(msg + 10);
	if (qd != 1 || a->rcode != 0)
		return false;
	if (!take_name(msg, eom, &pos, a->qname, &valid) || !valid || eom - pos < 4)
		return false;
	a->qtype = get16(pos);
	pos += 4;
	for (unsigned i = 0; i < an && i < DNSOBS_MAX_RR; i++) {
		if (!take_rr(msg, eom, &pos, a, true)) {
			a->n_answer = a->n;
			return true;   /* keep what was complete */
		}
	}
	a->n_answer = a->n;
	if (an > DNSOBS_MAX_RR)
		return true;
	for (unsigned i = 0; i < ns && i < DNSOBS_MAX_RR; i++) {
		if (!take_rr(msg, eom, &pos, a, false))
			return true;
	}
	if (ns > DNSOBS_MAX_RR)
		return true;
	for (unsigned i = 0; i < ar && i < DNSOBS_MAX_RR; i++) {
		if (!take_rr(msg, eom, &pos, a, true))
			return true;
	}
	return true;
}

static void record_answer(const answer *a, char qname_out[MTASTS_DOMAIN_MAX])
{
	char chain[DNSOBS_CNAME_CHAIN + 1][MTASTS_DOMAIN_MAX];
	size_t nchain = 1;
	bool any_mx = false;

	memcpy(chain[0], a->qname, MTASTS_DOMAIN_MAX);
	/* Follow the CNAME chain of the question name through the answer section. */
	for (bool grew = true; grew && nchain <= DNSOBS_CNAME_CHAIN;) {
		grew = false;
		for (size_t i = 0; i < a->n_answer; i++) {
			const rr *r = &a->rrs[i];
			if (r->type == ns_t_cname && r->target[0] &&
			    strcmp(r->owner, chain[nchain - 1]) == 0 && !in_set(chain, nchain, r->target)) {
				put_cname(r->owner, r->target);
				memcpy(chain[nchain++], r->target, MTASTS_DOMAIN_MAX);
				grew = true;
				break;
			}
		}
	}
	if (a->qtype == ns_t_mx) {
		drop_mx_of(a->qname);
		for (size_t i = 0; i < a->n_answer; i++) {
			const rr *r = &a->rrs[i];
			if (r->type != ns_t_mx || !in_set(chain, nchain, r->owner))
				continue;
			any_mx = true;
			if (r->target[0])
				put_mx(a->qname, r->target);
		}
		if (!any_mx)   /* RFC 5321 §5.1 implicit MX: the domain itself */
			put_mx(a->qname, a->qname);
		if (qname_out)
			memcpy(qname_out, a->qname, MTASTS_DOMAIN_MAX);
	}
	/* Addresses: for the question name (answer section, through its chain) and, from the
	 * additional section, for the names they are given for (MX glue some MTAs use). */
	for (size_t i = 0; i < a->n; i++) {
		const rr *r = &a->rrs[i];
		dnsobs_addr addr;

		if (r->type != ns_t_a && r->type != ns_t_aaaa)
			continue;
		memset(&addr, 0, sizeof(addr));
		addr.family = r->type == ns_t_a ? AF_INET : AF_INET6;
		memcpy(addr.bytes, r->addr, r->type == ns_t_a ? 4 : 16);
		if (i < a->n_answer) {
			if (in_set(chain, nchain, r->owner))
				put_addr(a->qname, &addr);
		} else {
			put_addr(r->owner, &addr);
		}
	}
}

void dnsobs_observe(const unsigned char *msg, int len, char qname[MTASTS_DOMAIN_MAX])
{
	if (qname)
		qname[0] = '\0';
	if (!msg || len < 12)
		return;
	shim_lock();
	if (parse_answer(msg, (size_t)len, &scratch))
		record_answer(&scratch, qname);
	shim_unlock();
}
