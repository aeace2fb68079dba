/*
 * dnsobs.c - the table behind dnsobs.h and the bounded parser of raw DNS answers.
 *
 * Hostile-input rules: every length is checked against the end of the message before it is used,
 * names are expanded with dn_expand bounded by the message end and the output size, at most
 * DNSOBS_MAX_RR records per section are looked at, CNAME chains are followed at most
 * DNSOBS_CNAME_CHAIN steps from the question name, and only names that mtasts_domain_normalize
 * accepts are stored. The table is static memory (no allocation: it survives fork as it is) and
 * is only touched under shim_lock().
 *
 * Speed: the connect-time lookup (dnsobs_candidates) and every insertion walk hash chains (address
 * -> address entries, host -> MX pairs, CNAME target -> aliases, domain -> MX pairs, alias ->
 * CNAME), and the least recently used entry is found at the end of a list, so their cost follows
 * what is stored under the key asked, not the size of the table (bench/README.md).
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
	char domain[MTASTS_DOMAIN_MAX];
	char host[MTASTS_DOMAIN_MAX];
} mx_ent;

typedef struct addr_ent {
	dnsobs_addr addr;
	char host[MTASTS_DOMAIN_MAX];
} addr_ent;

typedef struct cname_ent {
	char alias[MTASTS_DOMAIN_MAX];
	char target[MTASTS_DOMAIN_MAX];
} cname_ent;

/* ---- the index of a table -------------------------------------------------------------------
 * Each table is an array of entries plus, per slot, its place in a least-recently-used list and
 * in up to two hash chains (one per key the table is searched by). Every link is a slot number
 * + 1, so 0 means "none" and the all-zero static state is an empty table: no initialisation, and
 * fork copies it as it is. Slots [0, hw) have been used; a slot freed by drop_mx_of is parked at
 * the old end of the list and is the next one taken; when all slots are in use the least
 * recently used entry is evicted. Lookups walk one hash chain, so the cost follows what is
 * stored under the key, not the table's size; a chain is never longer than the table (a name
 * crafted to collide costs at most the whole-table scan the table had before it was indexed). */

#define KEYS 2

typedef struct slot_link {
	uint32_t newer, older;       /* LRU list */
	uint32_t next[KEYS];         /* hash chain of key k */
	uint32_t bucket[KEYS];       /* the bucket the slot is chained in */
	bool used;
} slot_link;

typedef struct table {
	slot_link *links;
	uint32_t *heads[KEYS];       /* bucket heads; NULL for a key the table does not have */
	uint32_t nbuckets;           /* a power of two */
	uint32_t cap;
	uint32_t hw;                 /* slots [0, hw) have been used */
	uint32_t newest, oldest;     /* the ends of the LRU list */
} table;

static mx_ent mx_table[DNSOBS_MX_MAX];
static addr_ent addr_table[DNSOBS_ADDR_MAX];
static cname_ent cname_table[DNSOBS_CNAME_MAX];

static slot_link mx_links[DNSOBS_MX_MAX], addr_links[DNSOBS_ADDR_MAX], cname_links[DNSOBS_CNAME_MAX];
static uint32_t mx_by_host[DNSOBS_MX_MAX], mx_by_domain[DNSOBS_MX_MAX];
static uint32_t addr_by_addr[DNSOBS_ADDR_MAX];
static uint32_t cname_by_target[DNSOBS_CNAME_MAX], cname_by_alias[DNSOBS_CNAME_MAX];

static table mx_tab = { mx_links, { mx_by_host, mx_by_domain }, DNSOBS_MX_MAX, DNSOBS_MX_MAX, 0, 0, 0 };
static table addr_tab = { addr_links, { addr_by_addr, NULL }, DNSOBS_ADDR_MAX, DNSOBS_ADDR_MAX, 0, 0, 0 };
static table cname_tab = { cname_links, { cname_by_target, cname_by_alias }, DNSOBS_CNAME_MAX,
                           DNSOBS_CNAME_MAX, 0, 0, 0 };

_Static_assert((DNSOBS_MX_MAX & (DNSOBS_MX_MAX - 1)) == 0 &&
               (DNSOBS_ADDR_MAX & (DNSOBS_ADDR_MAX - 1)) == 0 &&
               (DNSOBS_CNAME_MAX & (DNSOBS_CNAME_MAX - 1)) == 0, "bucket counts are powers of two");

/* FNV-1a, 32 bits */
static uint32_t hash_bytes(uint32_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static uint32_t hash_name(const char *name)
{
	return hash_bytes(2166136261u, name, strlen(name));
}

static uint32_t hash_addr(const dnsobs_addr *addr)
{
	unsigned char family = addr->family == AF_INET6 ? 6 : 4;

	return hash_bytes(hash_bytes(2166136261u, &family, 1), addr->bytes, 16);
}

/* First slot (+1) of the chain of key k for hash h. */
static uint32_t chain_first(const table *t, int k, uint32_t h)
{
	return t->heads[k][h & (t->nbuckets - 1)];
}

static uint32_t chain_next(const table *t, int k, uint32_t s)
{
	return t->links[s - 1].next[k];
}

static void lru_unlink(table *t, uint32_t s)
{
	slot_link *l = &t->links[s - 1];

	if (l->newer)
		t->links[l->newer - 1].older = l->older;
	else if (t->newest == s)
		t->newest = l->older;
	if (l->older)
		t->links[l->older - 1].newer = l->newer;
	else if (t->oldest == s)
		t->oldest = l->newer;
	l->newer = l->older = 0;
}

static void lru_push_newest(table *t, uint32_t s)
{
	slot_link *l = &t->links[s - 1];

	l->older = t->newest;
	l->newer = 0;
	if (t->newest)
		t->links[t->newest - 1].newer = s;
	t->newest = s;
	if (!t->oldest)
		t->oldest = s;
}

static void lru_push_oldest(table *t, uint32_t s)
{
	slot_link *l = &t->links[s - 1];

	l->newer = t->oldest;
	l->older = 0;
	if (t->oldest)
		t->links[t->oldest - 1].older = s;
	t->oldest = s;
	if (!t->newest)
		t->newest = s;
}

/* Mark slot s as just used. */
static void touch(table *t, uint32_t s)
{
	if (t->newest == s)
		return;
	lru_unlink(t, s);
	lru_push_newest(t, s);
}

static void chains_unlink(table *t, uint32_t s)
{
	slot_link *l = &t->links[s - 1];

	for (int k = 0; k < KEYS; k++) {
		if (!t->heads[k])
			continue;
		uint32_t *p = &t->heads[k][l->bucket[k]];
		while (*p && *p != s)
			p = &t->links[*p - 1].next[k];
		if (*p)
			*p = l->next[k];
		l->next[k] = 0;
	}
}

/* Link a filled slot into its chains (hashes h[k]) as the newest entry. */
static void insert(table *t, uint32_t s, const uint32_t h[KEYS])
{
	slot_link *l = &t->links[s - 1];

	for (int k = 0; k < KEYS; k++) {
		if (!t->heads[k])
			continue;
		l->bucket[k] = h[k] & (t->nbuckets - 1);
		l->next[k] = t->heads[k][l->bucket[k]];
		t->heads[k][l->bucket[k]] = s;
	}
	l->used = true;
	lru_push_newest(t, s);
}

/* Forget slot s; it becomes the next slot taken. */
static void release(table *t, uint32_t s)
{
	chains_unlink(t, s);
	lru_unlink(t, s);
	t->links[s - 1].used = false;
	lru_push_oldest(t, s);
}

/* A slot for a new entry, unlinked: a released one, a never used one, else the least recently
 * used entry (evicted). */
static uint32_t take(table *t)
{
	uint32_t s = t->oldest;

	if (s && !t->links[s - 1].used) {
		lru_unlink(t, s);
		return s;
	}
	if (t->hw < t->cap)
		return ++t->hw;
	chains_unlink(t, s);
	lru_unlink(t, s);
	t->links[s - 1].used = false;
	return s;
}

/* ---- table ---------------------------------------------------------------------------------- */

static void put_mx(const char *domain, const char *host)
{
	uint32_t h[KEYS] = { hash_name(host), hash_name(domain) }, s;

	for (s = chain_first(&mx_tab, 0, h[0]); s; s = chain_next(&mx_tab, 0, s)) {
		if (strcmp(mx_table[s - 1].host, host) == 0 && strcmp(mx_table[s - 1].domain, domain) == 0) {
			touch(&mx_tab, s);
			return;
		}
	}
	s = take(&mx_tab);
	memcpy(mx_table[s - 1].domain, domain, MTASTS_DOMAIN_MAX);
	memcpy(mx_table[s - 1].host, host, MTASTS_DOMAIN_MAX);
	insert(&mx_tab, s, h);
}

static void drop_mx_of(const char *domain)
{
	uint32_t s = chain_first(&mx_tab, 1, hash_name(domain));

	while (s) {
		uint32_t next = chain_next(&mx_tab, 1, s);
		if (strcmp(mx_table[s - 1].domain, domain) == 0)
			release(&mx_tab, s);
		s = next;
	}
}

static bool same_addr(const dnsobs_addr *a, const dnsobs_addr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

static void put_addr(const char *host, const dnsobs_addr *addr)
{
	uint32_t h[KEYS] = { hash_addr(addr), 0 }, s;

	for (s = chain_first(&addr_tab, 0, h[0]); s; s = chain_next(&addr_tab, 0, s)) {
		if (same_addr(&addr_table[s - 1].addr, addr) && strcmp(addr_table[s - 1].host, host) == 0) {
			touch(&addr_tab, s);
			return;
		}
	}
	s = take(&addr_tab);
	addr_table[s - 1].addr = *addr;
	memcpy(addr_table[s - 1].host, host, MTASTS_DOMAIN_MAX);
	insert(&addr_tab, s, h);
}

static void put_cname(const char *alias, const char *target)
{
	uint32_t h[KEYS] = { hash_name(target), hash_name(alias) }, s;

	for (s = chain_first(&cname_tab, 1, h[1]); s; s = chain_next(&cname_tab, 1, s)) {
		if (strcmp(cname_table[s - 1].alias, alias) == 0)
			break;
	}
	if (s) {   /* a new target: re-chained under it */
		chains_unlink(&cname_tab, s);
		lru_unlink(&cname_tab, s);
	} else {
		s = take(&cname_tab);
		memcpy(cname_table[s - 1].alias, alias, MTASTS_DOMAIN_MAX);
	}
	memcpy(cname_table[s - 1].target, target, MTASTS_DOMAIN_MAX);
	insert(&cname_tab, s, h);
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

/* A set of slot numbers as a bitmap, walked in slot order (the order a whole-table scan had). */
#define BITS_WORDS(n) (((n) + 63) / 64)

static void bits_set(uint64_t *bits, uint32_t s)
{
	bits[(s - 1) / 64] |= (uint64_t)1 << ((s - 1) % 64);
}

/* The next slot (+1) of the set after slot `after` (+1, 0 to start); 0 at the end. */
static uint32_t bits_next(const uint64_t *bits, size_t words, uint32_t after)
{
	size_t w = after / 64;
	uint64_t rest;

	if (w >= words)
		return 0;
	rest = bits[w] & (after % 64 ? ~(uint64_t)0 << (after % 64) : ~(uint64_t)0);
	while (!rest) {
		if (++w >= words)
			return 0;
		rest = bits[w];
	}
	return (uint32_t)(w * 64 + (size_t)__builtin_ctzll(rest) + 1);
}

size_t dnsobs_candidates(const dnsobs_addr *addr, dnsobs_pair *out, size_t max)
{
	char hosts[HOSTS_MAX][MTASTS_DOMAIN_MAX];
	int depth[HOSTS_MAX];
	uint64_t addr_bits[BITS_WORDS(DNSOBS_ADDR_MAX)] = { 0 };
	uint64_t mx_bits[BITS_WORDS(DNSOBS_MX_MAX)] = { 0 };
	size_t nhosts = 0, n = 0;
	bool any = false;

	shim_lock();
	/* The host names with this address, in slot order. */
	for (uint32_t s = chain_first(&addr_tab, 0, hash_addr(addr)); s; s = chain_next(&addr_tab, 0, s)) {
		if (same_addr(&addr_table[s - 1].addr, addr)) {
			bits_set(addr_bits, s);
			any = true;
		}
	}
	for (uint32_t s = any ? bits_next(addr_bits, BITS_WORDS(DNSOBS_ADDR_MAX), 0) : 0;
	     s && nhosts < HOSTS_MAX; s = bits_next(addr_bits, BITS_WORDS(DNSOBS_ADDR_MAX), s)) {
		if (!in_set(hosts, nhosts, addr_table[s - 1].host)) {
			depth[nhosts] = 0;
			memcpy(hosts[nhosts++], addr_table[s - 1].host, MTASTS_DOMAIN_MAX);
			touch(&addr_tab, s);
		}
	}
	/* Aliases whose CNAME chain leads to one of these hosts: the MX RR names the alias. At most
	 * DNSOBS_CNAME_CHAIN steps back from an address record. */
	for (size_t k = 0; k < nhosts; k++) {
		if (depth[k] >= DNSOBS_CNAME_CHAIN)
			continue;
		for (uint32_t s = chain_first(&cname_tab, 0, hash_name(hosts[k])); s && nhosts < HOSTS_MAX;
		     s = chain_next(&cname_tab, 0, s)) {
			if (strcmp(cname_table[s - 1].target, hosts[k]) == 0 &&
			    !in_set(hosts, nhosts, cname_table[s - 1].alias)) {
				depth[nhosts] = depth[k] + 1;
				memcpy(hosts[nhosts++], cname_table[s - 1].alias, MTASTS_DOMAIN_MAX);
			}
		}
	}
	/* The (domain, host) pairs of these hosts, in slot order; each pair is stored once. */
	any = false;
	for (size_t k = 0; k < nhosts; k++) {
		for (uint32_t s = chain_first(&mx_tab, 0, hash_name(hosts[k])); s; s = chain_next(&mx_tab, 0, s)) {
			if (strcmp(mx_table[s - 1].host, hosts[k]) == 0) {
				bits_set(mx_bits, s);
				any = true;
			}
		}
	}
	for (uint32_t s = any ? bits_next(mx_bits, BITS_WORDS(DNSOBS_MX_MAX), 0) : 0; s && n < max;
	     s = bits_next(mx_bits, BITS_WORDS(DNSOBS_MX_MAX), s)) {
		memcpy(out[n].domain, mx_table[s - 1].domain, MTASTS_DOMAIN_MAX);
		memcpy(out[n].host, mx_table[s - 1].host, MTASTS_DOMAIN_MAX);
		touch(&mx_tab, s);
		n++;
	}
	shim_unlock();
	return n;
}

bool dnsobs_host_has_addr(const char *host, const dnsobs_addr *addr)
{
	bool found = false;

	shim_lock();
	for (uint32_t s = chain_first(&addr_tab, 0, hash_addr(addr)); s && !found;
	     s = chain_next(&addr_tab, 0, s))
		found = same_addr(&addr_table[s - 1].addr, addr) && strcmp(addr_table[s - 1].host, host) == 0;
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
