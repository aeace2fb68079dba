/*
 * dns.h - the DNS lookups of discovery, done with c-ares against the configured servers:
 * the `_mta-sts` TXT RRset (CNAMEs followed, character-strings of a record joined with nothing)
 * and the policy host's addresses. Temporary failures (SERVFAIL, REFUSED, timeout) are kept
 * apart from NXDOMAIN/NODATA.
 */
#ifndef MTASTS_DNS_H
#define MTASTS_DNS_H

#include <stddef.h>
#include "mtasts/status.h"

typedef struct mtasts_dns mtasts_dns;

/* servers: "ip,ip:port,[v6]:port" or NULL/"" for /etc/resolv.conf; timeout_ms per try. */
mtasts_status mtasts_dns_new(const char *servers, long timeout_ms, mtasts_dns **out);
void mtasts_dns_destroy(mtasts_dns **dns);

typedef struct mtasts_strv {
	size_t n;
	char **v;        /* n NUL-terminated strings */
	size_t *len;     /* their lengths (TXT data may hold NUL bytes) */
} mtasts_strv;
void mtasts_strv_clear(mtasts_strv *strv);

/* TXT RRset of name: MTASTS_OK (n >= 1), MTASTS_ERR_NOT_FOUND (NXDOMAIN or no TXT),
 * MTASTS_ERR_DNS_TEMP (SERVFAIL, REFUSED, timeout, unreachable). */
mtasts_status mtasts_dns_txt(mtasts_dns *dns, const char *name, mtasts_strv *out);

/* A and AAAA addresses of name as text, same status rules. */
mtasts_status mtasts_dns_addrs(mtasts_dns *dns, const char *name, mtasts_strv *out);

#endif
