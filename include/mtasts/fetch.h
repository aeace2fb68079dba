/*
 * fetch.h - the HTTPS GET of https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3)
 * with libcurl: no redirects, 200 only, text/plain, 64 KiB cap (chunked too), TLS >= 1.2,
 * certificate valid for the policy host, total timeout, no HTTP caching, no proxy from the
 * environment. Every failure is classified by its RFC 8460 result type.
 */
#ifndef MTASTS_FETCH_H
#define MTASTS_FETCH_H

#include <stddef.h>
#include "mtasts/status.h"
#include "mtasts/cache.h"

typedef struct mtasts_fetch_options {
	long timeout_sec;         /* total time for the transfer; <= 0 means 60 */
	const char *ca_file;      /* trust store for the policy host; NULL: system default */
	const char *proxy;        /* NULL or "": no proxy at all (environment ignored) */
	const char *resolve_addr; /* if set, pin mta-sts.<domain>:443 to this address (CURLOPT_RESOLVE) */
} mtasts_fetch_options;

typedef struct mtasts_fetch_result {
	char *body;               /* malloc'd, NUL-terminated after len bytes; NULL on failure */
	size_t len;
	long http_status;         /* 0 when no response */
	mtasts_result result;     /* SUCCESS, STS_POLICY_FETCH_ERROR, STS_WEBPKI_INVALID or STS_POLICY_INVALID */
	char reason[MTASTS_REASON_MAX];
} mtasts_fetch_result;

/* Call once per process before any fetch (curl_global_init); idempotent. */
mtasts_status mtasts_fetch_global_init(void);

/*
 * Fetch the policy body for domain (normalised A-label form). MTASTS_OK with result SUCCESS and
 * body set, or MTASTS_ERR_FETCH with result and reason set. The body is not parsed here.
 */
mtasts_status mtasts_fetch_policy(const char *domain, const mtasts_fetch_options *options,
                                  mtasts_fetch_result *out);
void mtasts_fetch_result_clear(mtasts_fetch_result *result);

/* Media type check (§3.2): text/plain, case-insensitive, parameters allowed. Exposed for tests. */
int mtasts_media_type_is_text_plain(const char *content_type);

#endif
