/*
 * discover.h - RFC 8461 §3 / §5.1 discovery with the cache: check the live TXT record, fetch
 * when its id differs from the cached one or nothing valid is cached, keep a cached policy
 * through DNS and HTTPS failures until it expires, back off per (domain, id) after a failure.
 */
#ifndef MTASTS_DISCOVER_H
#define MTASTS_DISCOVER_H

#include <stdint.h>
#include "mtasts/status.h"
#include "mtasts/cache.h"
#include "mtasts/config.h"

#define MTASTS_FETCH_BACKOFF 300   /* §3.3: at least 5 minutes per (domain, id) */

typedef enum mtasts_source {
	MTASTS_SOURCE_NONE = 0,        /* no policy */
	MTASTS_SOURCE_CACHE,
	MTASTS_SOURCE_NETWORK,
} mtasts_source;

enum {
	MTASTS_DISCOVER_FORCE_FETCH = 1 << 0,   /* refresh: fetch over HTTPS whatever the id says */
};

typedef struct mtasts_discovery {
	mtasts_cache_entry *entry;     /* the effective entry (policy set) when status is MTASTS_OK */
	mtasts_source source;
	mtasts_result result;          /* failure type when a fetch failed (also with a cached policy) */
	char reason[MTASTS_REASON_MAX];
	mtasts_status cache_status;    /* MTASTS_OK, or why the cache could not be locked or written
	                                * (the outcome above is still right for this call) */
} mtasts_discovery;

/*
 * Discover the effective policy for domain (normalised). Returns MTASTS_OK with a policy,
 * MTASTS_ERR_NOT_FOUND when the domain has no policy (no or unusable TXT record and nothing
 * cached), MTASTS_ERR_FETCH when a TXT record exists but no policy could be fetched and none is
 * cached (result/reason say why; also while backing off, or when another process holds the
 * domain's fetch lock for too long), MTASTS_ERR_DNS_TEMP when the TXT lookup failed temporarily
 * and nothing is cached (treated as no policy, checklist STS-026 option a).
 */
mtasts_status mtasts_discover(const mtasts_config *config, mtasts_cache *cache, const char *domain,
                              unsigned flags, int64_t now, mtasts_discovery *out);
void mtasts_discovery_clear(mtasts_discovery *discovery);

#endif
