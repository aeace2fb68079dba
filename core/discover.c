/*
 * discover.c - RFC 8461 §3, §3.3 and §5.1 discovery on top of the cache.
 *
 * One call: look at the live `_mta-sts` TXT record, decide whether an HTTPS fetch is needed
 * (no valid cached policy, a different id, or a forced refresh), fetch under the per-domain lock
 * so that concurrent callers coalesce, and write the outcome back. The rules that others got
 * wrong are kept here in one place:
 *  - a vanished, duplicated or malformed TXT record never deletes or shortens a cached policy;
 *  - a failed or invalid fetch never replaces a good cached policy;
 *  - after a failed fetch, the same (domain, id) is not fetched again for MTASTS_FETCH_BACKOFF;
 *  - an id that keeps changing cannot force more than one fetch per MTASTS_ID_CHANGE_INTERVAL
 *    while a valid policy is cached;
 *  - a domain found without a policy is remembered (an entry without policy) so that the shim's
 *    hot path does not start a fetcher for every message to the many domains without MTA-STS;
 *  - the expiry only ever moves with a completed HTTPS fetch (§10.2: a refresh fetches);
 *  - the cache is only written under the domain's lock, after re-reading the entry (see
 *    mtasts_discover), so that concurrent processes never undo each other's fetch.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtasts/discover.h"
#include "mtasts/dns.h"
#include "mtasts/fetch.h"
#include "mtasts/log.h"
#include "mtasts/txt.h"

#define MTASTS_ID_CHANGE_INTERVAL 60
#define LOCK_POLL_MS 50

typedef enum { TXT_LIVE, TXT_ABSENT, TXT_TEMPFAIL } txt_state;

static bool entry_policy_valid(const mtasts_cache_entry *entry, int64_t now)
{
	return entry && entry->policy && entry->expires_at > now;
}

static void set_reason(mtasts_discovery *out, mtasts_result result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_reason(mtasts_discovery *out, mtasts_result result, const char *fmt, ...)
{
	va_list ap;

	out->result = result;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

/* Per-try DNS timeout: c-ares makes two tries, the second twice as long (about 3x in all), and
 * dns.c cuts the whole lookup off after 4x + 0.5 s. */
static long dns_try_ms(const mtasts_config *config)
{
	long ms = config->fetch_timeout * 1000 / 6;
	return ms > 3000 ? 3000 : ms < 100 ? 100 : ms;
}

/* The longest a fetching process holds a domain's lock: policy host lookup, fetch, put. */
static long lock_wait_ms(const mtasts_config *config)
{
	return config->fetch_timeout * 1000 + 4 * dns_try_ms(config) + 500 + 2000;
}

/* Look up and evaluate the TXT record; id gets the live id for TXT_LIVE. */
static txt_state lookup_txt(const mtasts_config *config, const char *domain,
                            char id[MTASTS_ID_MAX], char *why, size_t why_len)
{
	char name[MTASTS_DOMAIN_MAX + 16];
	mtasts_strv records = { 0 };
	mtasts_dns *dns = NULL;
	const char *parse_why = NULL;
	txt_state state = TXT_TEMPFAIL;
	mtasts_status status;

	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	status = mtasts_dns_new(config->dns_servers, dns_try_ms(config), &dns);
	if (status) {
		snprintf(why, why_len, "resolver setup failed (dns_servers = %s): %s",
		         config->dns_servers ? config->dns_servers : "/etc/resolv.conf",
		         mtasts_strerror(status));
		goto out;
	}
	status = mtasts_dns_txt(dns, name, &records);
	if (status == MTASTS_ERR_NOT_FOUND) {
		snprintf(why, why_len, "no TXT record at %s", name);
		state = TXT_ABSENT;
		goto out;
	}
	if (status) {
		snprintf(why, why_len, "TXT lookup of %s failed: %s", name, mtasts_strerror(status));
		goto out;
	}
	status = mtasts_txt_select((const char *const *)records.v, records.len, records.n, id,
	                           &parse_why);
	if (status) {
		snprintf(why, why_len, "TXT record at %s unusable: %s%s%s", name,
		         mtasts_strerror(status), parse_why ? ": " : "", parse_why ? parse_why : "");
		state = TXT_ABSENT;
		goto out;
	}
	state = TXT_LIVE;
out:
	mtasts_strv_clear(&records);
	mtasts_dns_destroy(&dns);
	return state;
}

/*
 * Resolve the policy host through the configured resolver so that libcurl never asks another
 * one; addr gets the first address. Without dns_servers the system resolver is the configured
 * one: addr stays empty and libcurl resolves. Failure is a fetch error with why set.
 */
static mtasts_status resolve_policy_host(const mtasts_config *config, const char *domain,
                                         char *addr, size_t addr_len, char *why, size_t why_len)
{
	char host[MTASTS_DOMAIN_MAX + 16];
	mtasts_strv list = { 0 };
	mtasts_dns *dns = NULL;
	mtasts_status status;

	addr[0] = '\0';
	if (!config->dns_servers || !*config->dns_servers)
		return MTASTS_OK;
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	status = mtasts_dns_new(config->dns_servers, dns_try_ms(config), &dns);
	if (status) {
		snprintf(why, why_len, "resolver setup failed (dns_servers = %s): %s",
		         config->dns_servers, mtasts_strerror(status));
		goto out;
	}
	status = mtasts_dns_addrs(dns, host, &list);
	if (status == MTASTS_ERR_NOT_FOUND)
		snprintf(why, why_len, "policy host %s has no A or AAAA record", host);
	else if (status)
		snprintf(why, why_len, "address lookup of policy host %s failed: %s", host,
		         mtasts_strerror(status));
	else
		snprintf(addr, addr_len, "%s", list.v[0]);
out:
	mtasts_strv_clear(&list);
	mtasts_dns_destroy(&dns);
	return status;
}

/* Fetch and parse; on success fills a new policy into entry (replacing the old one). id must
 * not point into entry. */
static mtasts_status fetch_into(const mtasts_config *config, const char *domain, const char *id,
                                mtasts_cache_entry *entry, int64_t now, mtasts_discovery *out)
{
	mtasts_fetch_result fetched = { 0 };
	mtasts_fetch_options options = { 0 };
	mtasts_policy *policy = NULL;
	char addr[64];
	char why[MTASTS_REASON_MAX];
	mtasts_status status;

	status = resolve_policy_host(config, domain, addr, sizeof(addr), why, sizeof(why));
	if (status) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "%s", why);
		goto failed;
	}
	options.timeout_sec = config->fetch_timeout;
	options.ca_file = config->ca_file;
	options.proxy = config->proxy;
	options.resolve_addr = addr[0] ? addr : NULL;
	status = mtasts_fetch_global_init();
	if (status) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "libcurl initialisation failed");
		goto failed;
	}
	status = mtasts_fetch_policy(domain, &options, &fetched);
	if (status) {
		set_reason(out, fetched.result, "%s", fetched.reason);
		goto failed;
	}
	status = mtasts_policy_parse(fetched.body, fetched.len, &policy, why, sizeof(why));
	if (status) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_INVALID, "policy invalid: %s", why);
		goto failed;
	}
	/* A fetched policy replaces the cached one whatever its mode (§5: none is how a domain
	 * opts out) and whatever its max_age (0: not to be kept). */
	mtasts_policy_destroy(&entry->policy);
	free(entry->raw);
	entry->policy = policy;
	entry->raw = fetched.body;
	entry->raw_len = fetched.len;
	fetched.body = NULL;
	snprintf(entry->id, sizeof(entry->id), "%s", id);
	entry->fetched_at = now;
	entry->expires_at = now + (int64_t)policy->max_age;
	entry->failure_count = 0;
	entry->failed_at = 0;
	entry->failed_id[0] = '\0';
	entry->failed_reason[0] = '\0';
	entry->failed_result = MTASTS_RESULT_SUCCESS;
	out->result = MTASTS_RESULT_SUCCESS;
	out->reason[0] = '\0';
	mtasts_fetch_result_clear(&fetched);
	return MTASTS_OK;
failed:
	entry->failed_at = now;
	snprintf(entry->failed_id, sizeof(entry->failed_id), "%s", id);
	entry->failed_result = out->result;
	snprintf(entry->failed_reason, sizeof(entry->failed_reason), "%s", out->reason);
	if (entry->failure_count < UINT32_MAX)
		entry->failure_count++;
	mtasts_fetch_result_clear(&fetched);
	return MTASTS_ERR_FETCH;
}

static mtasts_status load_entry(mtasts_cache *cache, const char *domain, mtasts_cache_entry **entry)
{
	mtasts_cache_entry_destroy(entry);
	mtasts_status status = mtasts_cache_get(cache, domain, entry);
	if (status == MTASTS_ERR_IO)
		mtasts_log(MTASTS_LOG_ERROR, "cannot read the cache entry of %s: %s", domain,
		           strerror(errno));
	if (status == MTASTS_ERR_CORRUPT) {
		mtasts_log(MTASTS_LOG_WARNING, "cache entry of %s is damaged: starting afresh", domain);
		status = MTASTS_ERR_NOT_FOUND;
	}
	if (status == MTASTS_ERR_NOT_FOUND)
		status = mtasts_cache_entry_new(domain, entry);
	return status;
}

/*
 * Does this call fetch, and under which id? §3.1/§5.1: a live id different from the cached one,
 * or nothing valid cached; §10.2: a refresh fetches whatever the id says, but only a policy that
 * is still in force (an expired one whose record is gone is not brought back). postponed: the id
 * changed again within MTASTS_ID_CHANGE_INTERVAL of the last fetch (flapping id).
 */
static bool fetch_wanted(const mtasts_cache_entry *entry, txt_state txt, const char *live_id,
                         bool force, int64_t now, char fetch_id[MTASTS_ID_MAX], bool *postponed)
{
	bool valid = entry_policy_valid(entry, now);

	*postponed = false;
	fetch_id[0] = '\0';
	if (txt == TXT_LIVE) {
		snprintf(fetch_id, MTASTS_ID_MAX, "%s", live_id);
		if (force || !valid)
			return true;
		if (strcmp(entry->id, live_id) == 0)
			return false;
		int64_t last = entry->fetched_at > entry->failed_at ? entry->fetched_at : entry->failed_at;
		if (now - last < MTASTS_ID_CHANGE_INTERVAL) {
			*postponed = true;
			return false;
		}
		return true;
	}
	if (force && valid) {
		snprintf(fetch_id, MTASTS_ID_MAX, "%s", entry->id);
		return true;
	}
	return false;
}

/* Take the domain's lock, polling for at most wait_ms (0: one try). MTASTS_ERR_BUSY on time-out. */
static mtasts_status lock_domain(mtasts_cache *cache, const char *domain, long wait_ms, int *fd)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		mtasts_status status = mtasts_cache_lock(cache, domain, false, fd);
		if (status != MTASTS_ERR_BUSY)
			return status;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long spent = (long)(now.tv_sec - start.tv_sec) * 1000 +
		             (now.tv_nsec - start.tv_nsec) / 1000000;
		if (spent >= wait_ms)
			return MTASTS_ERR_BUSY;
		struct timespec step = { 0, LOCK_POLL_MS * 1000000L };
		nanosleep(&step, NULL);
	}
}

/*
 * Concurrency: every write is a read-modify-write of the entry under the domain's lock, so a
 * process never writes back an entry it read before another process stored a fetch (or the
 * back-off state of a failed one). A caller that needs a fetch waits for the lock (bounded), then
 * re-reads: when another process fetched the same id meanwhile, it uses that (coalescing). A
 * caller that needs no fetch only tries the lock; when it is held, it writes nothing (the holder
 * writes a newer entry anyway).
 */
mtasts_status mtasts_discover(const mtasts_config *config, mtasts_cache *cache, const char *domain,
                              unsigned flags, int64_t now, mtasts_discovery *out)
{
	mtasts_cache_entry *entry = NULL;
	char live_id[MTASTS_ID_MAX] = "", fetch_id[MTASTS_ID_MAX] = "";
	char txt_why[MTASTS_REASON_MAX] = "";
	int lock_fd = -1;
	mtasts_status status, lock_status;
	bool fetched_ok = false, fetch_failed = false, just_fetched = false, lock_timeout = false;
	bool postponed = false, may_write = false;

	if (!config || !cache || !domain || !out)
		return MTASTS_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));

	txt_state txt = lookup_txt(config, domain, live_id, txt_why, sizeof(txt_why));
	bool force = (flags & MTASTS_DISCOVER_FORCE_FETCH) != 0;

	status = load_entry(cache, domain, &entry);
	if (status)
		goto out;
	int64_t seen_fetched_at = entry->fetched_at;
	bool want_fetch = fetch_wanted(entry, txt, live_id, force, now, fetch_id, &postponed);

	lock_status = lock_domain(cache, domain, want_fetch ? lock_wait_ms(config) : 0, &lock_fd);
	if (lock_status == MTASTS_OK) {
		may_write = true;
		/* Another process may have stored something since the first read. */
		status = load_entry(cache, domain, &entry);
		if (status)
			goto out;
	} else if (lock_status == MTASTS_ERR_BUSY && want_fetch) {
		want_fetch = false;
		lock_timeout = true;
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR,
		           "another process has been fetching the policy for more than %ld s",
		           lock_wait_ms(config) / 1000);
	} else if (lock_status != MTASTS_ERR_BUSY) {
		/* Cannot lock (e.g. the cache is not writable by this user): go on without coalescing;
		 * a fetched policy is still used for this call. */
		out->cache_status = lock_status;
		if (want_fetch) {
			mtasts_log(MTASTS_LOG_WARNING, "cannot lock the cache entry of %s: %s (%s)",
			           domain, mtasts_strerror(lock_status), strerror(errno));
			may_write = true;
		}
	}

	if (want_fetch) {
		if (!force && entry->policy && strcmp(entry->id, fetch_id) == 0 &&
		    (entry_policy_valid(entry, now) || entry->fetched_at != seen_fetched_at)) {
			/* fetched by another process while we waited (even with max_age 0) */
			want_fetch = false;
			just_fetched = !entry_policy_valid(entry, now);
		} else if (entry->failed_at && now - entry->failed_at < MTASTS_FETCH_BACKOFF &&
		           strcmp(entry->failed_id, fetch_id) == 0) {
			want_fetch = false;
			fetch_failed = true;
			set_reason(out, entry->failed_result, "backing off after a failed fetch %llds ago: %s",
			           (long long)(now - entry->failed_at), entry->failed_reason);
		} else if (txt != TXT_LIVE && !entry_policy_valid(entry, now)) {
			want_fetch = false;   /* a refresh of a policy that is gone or expired meanwhile */
		}
	}

	if (want_fetch) {
		status = fetch_into(config, domain, fetch_id, entry, now, out);
		fetched_ok = status == MTASTS_OK;
		fetch_failed = !fetched_ok;
		if (fetch_failed)
			mtasts_log(MTASTS_LOG_WARNING, "policy fetch for %s failed (%u in a row): %s: %s",
			           domain, entry->failure_count, mtasts_result_name(out->result), out->reason);
	}

	/* An expired policy is of no use any more; the entry stays as a negative entry. */
	if (entry->policy && entry->expires_at <= now && !fetched_ok && !just_fetched) {
		mtasts_policy_destroy(&entry->policy);
		free(entry->raw);
		entry->raw = NULL;
		entry->raw_len = 0;
	}
	if (may_write && !postponed) {
		entry->txt_checked_at = now;
		if (txt == TXT_TEMPFAIL && !fetched_ok && !entry_policy_valid(entry, now) &&
		    config->txt_recheck > MTASTS_FETCH_BACKOFF) {
			/* STS-026, option (a): no policy for now, but a SERVFAIL or time-out is no answer:
			 * date the check so that the shim looks again after MTASTS_FETCH_BACKOFF instead of
			 * txt_recheck (an attacker forcing SERVFAIL at first contact gains minutes, not
			 * hours). */
			entry->txt_checked_at = now - config->txt_recheck + MTASTS_FETCH_BACKOFF;
		}
		mtasts_status put = mtasts_cache_put(cache, entry);
		if (put) {
			int saved = errno;
			out->cache_status = put;
			mtasts_log(MTASTS_LOG_ERROR, "cannot write the cache entry of %s: %s (%s)%s", domain,
			           mtasts_strerror(put), strerror(saved),
			           fetched_ok ? ": the fetched policy is used now but not kept" : "");
		}
	}

	if (fetched_ok) {
		out->source = MTASTS_SOURCE_NETWORK;
		status = MTASTS_OK;
	} else if (entry->policy && (entry->expires_at > now || just_fetched)) {
		out->source = MTASTS_SOURCE_CACHE;
		status = MTASTS_OK;
	} else if (fetch_failed || lock_timeout || txt == TXT_LIVE) {
		if (!out->reason[0])
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "no policy could be fetched");
		status = MTASTS_ERR_FETCH;
	} else {
		set_reason(out, MTASTS_RESULT_SUCCESS, "%s", txt_why);
		status = txt == TXT_TEMPFAIL ? MTASTS_ERR_DNS_TEMP : MTASTS_ERR_NOT_FOUND;
	}
	if (status == MTASTS_OK) {
		out->entry = entry;
		entry = NULL;
	}
out:
	mtasts_cache_unlock(&lock_fd);
	mtasts_cache_entry_destroy(&entry);
	return status;
}

void mtasts_discovery_clear(mtasts_discovery *discovery)
{
	if (!discovery)
		return;
	mtasts_cache_entry_destroy(&discovery->entry);
	memset(discovery, 0, sizeof(*discovery));
}
