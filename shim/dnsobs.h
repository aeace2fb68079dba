/*
 * dnsobs.h - the per-process table of what the MTA's own DNS lookups said: domain -> MX hosts
 * (the implicit MX included), host -> addresses, alias -> CNAME target. Fixed size, least
 * recently used entries evicted, inherited over fork.
 */
#ifndef MTASTS_SHIM_DNSOBS_H
#define MTASTS_SHIM_DNSOBS_H

#include <stdbool.h>
#include <stddef.h>
#include "mtasts/domain.h"

#define DNSOBS_MX_MAX 2048
#define DNSOBS_ADDR_MAX 4096
#define DNSOBS_CNAME_MAX 512
#define DNSOBS_MAX_RR 64        /* records looked at per section */
#define DNSOBS_CNAME_CHAIN 8

typedef struct dnsobs_pair {
	char domain[MTASTS_DOMAIN_MAX];
	char host[MTASTS_DOMAIN_MAX];
} dnsobs_pair;

/* An address in a fixed form: family AF_INET or AF_INET6 (v4-mapped IPv6 folded to AF_INET). */
typedef struct dnsobs_addr {
	int family;
	unsigned char bytes[16];
} dnsobs_addr;

/*
 * Parse a raw DNS answer (len bytes, as returned by res_search & co.) and record what it says.
 * Returns the normalised question name through qname (may be NULL) when the answer was an MX
 * answer (so the caller can start a prefetch), else leaves qname[0] == '\0'.
 * Exposed without the table for tests: dnsobs_parse never trusts its input.
 */
void dnsobs_observe(const unsigned char *msg, int len, char qname[MTASTS_DOMAIN_MAX]);

/* Record host -> address (from getaddrinfo / gethostbyname2). */
void dnsobs_add_addr(const char *host, const dnsobs_addr *addr);

/* Fold a sockaddr into a dnsobs_addr; false when it is not IPv4/IPv6. Port in *port. */
bool dnsobs_from_sockaddr(const void *sa, size_t salen, dnsobs_addr *out, unsigned short *port);

/* All (domain, MX host) pairs whose host resolved to addr; returns how many were written. */
size_t dnsobs_candidates(const dnsobs_addr *addr, dnsobs_pair *out, size_t max);

/* Does host (an MX host name) resolve to addr, as far as the table knows? */
bool dnsobs_host_has_addr(const char *host, const dnsobs_addr *addr);

#endif
