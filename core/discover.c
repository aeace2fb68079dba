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
 *    hot path does not start a fetcher for every message to the many domains without MTA-STS.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtasts/discover.h"
#include "mtasts/dns.h"
#include "mtasts/fetch.h"
#include "mtasts/log.h"
#include "mtasts/txt.h"

#define MTASTS_ID_CHANGE_INTERVAL 60

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
	/* c-ares makes two tries, the second twice as long: about 3 * timeout_ms in all */
	long timeout_ms = config->fetch_timeout * 1000 / 6;

	if (timeout_ms > 3000)
		timeout_ms = 3000;
	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	status = mtasts_dns_new(config->dns_servers, timeout_ms, &dns);
	if (status) {
		snprintf(why, why_len, "resolver setup failed: %s", mtasts_strerror(status));
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

/* Resolve the policy host through the configured resolver so that libcurl does not use
 * another one; addr gets the first address, or stays empty to let libcurl resolve. */
static void resolve_policy_host(const mtasts_config *config, const char *domain,
                                char *addr, size_t addr_len)
{
	char host[MTASTS_DOMAIN_MAX + 16];
	mtasts_strv list = { 0 };
	mtasts_dns *dns = NULL;

	addr[0] = '\0';
	if (!config->dns_servers || !*config->dns_servers)
		return;   /* the system resolver is the configured one: let libcurl use it */
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	if (mtasts_dns_new(config->dns_servers, 3000, &dns) == MTASTS_OK &&
	    mtasts_dns_addrs(dns, host, &list) == MTASTS_OK && list.n > 0)
		snprintf(addr, addr_len, "%s", list.v[0]);
	mtasts_strv_clear(&list);
	mtasts_dns_destroy(&dns);
}

/* Fetch and parse; on success fills a new policy into entry (replacing the old one). */
static mtasts_status fetch_into(const mtasts_config *config, const char *domain, const char *id,
                                mtasts_cache_entry *entry, int64_t now, mtasts_discovery *out)
{
	mtasts_fetch_result fetched = { 0 };
	mtasts_fetch_options options = { 0 };
	mtasts_policy *policy = NULL;
	char addr[64];
	char why[MTASTS_REASON_MAX];
	mtasts_status status;

	resolve_policy_host(config, domain, addr, sizeof(addr));
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
		status = MTASTS_ERR_FETCH;
		goto failed;
	}
	status = mtasts_policy_parse(fetched.body, fetched.len, &policy, why, sizeof(why));
	if (status) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_INVALID, "policy invalid: %s", why);
		status = MTASTS_ERR_FETCH;
		goto failed;
	}
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
	if (status == MTASTS_ERR_CORRUPT) {
		mtasts_log(MTASTS_LOG_WARNING, "cache entry of %s is damaged: starting afresh", domain);
		status = MTASTS_ERR_NOT_FOUND;
	}
	if (status == MTASTS_ERR_NOT_FOUND)
		status = mtasts_cache_entry_new(domain, entry);
	return status;
}

mtasts_status mtasts_discover(const mtasts_config *config, mtasts_cache *cache, const char *domain,
                              unsigned flags, int64_t now, mtasts_discovery *out)
{
	mtasts_cache_entry *entry = NULL;
	char live_id[MTASTS_ID_MAX] = "";
	char txt_why[MTASTS_REASON_MAX] = "";
	int lock_fd = -1;
	mtasts_status status;
	bool fetched_ok = false, fetch_failed = false;

	if (!config || !cache || !domain || !out)
		return MTASTS_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));

	txt_state txt = lookup_txt(config, domain, live_id, txt_why, sizeof(txt_why));
	bool force = (flags & MTASTS_DISCOVER_FORCE_FETCH) != 0;

	status = load_entry(cache, domain, &entry);
	if (status)
		goto out;

	bool cached_valid = entry_policy_valid(entry, now);
	bool want_fetch = false;
	const char *fetch_id = live_id;

	if (txt == TXT_LIVE) {
		want_fetch = !cached_valid || strcmp(entry->id, live_id) != 0 || force;
		if (want_fetch && cached_valid && !force && strcmp(entry->id, live_id) != 0) {
			int64_t last = entry->fetched_at > entry->failed_at ? entry->fetched_at : entry->failed_at;
			if (now - last < MTASTS_ID_CHANGE_INTERVAL) {
				want_fetch = false;   /* id flapping: keep the cached policy for now */
				set_reason(out, MTASTS_RESULT_SUCCESS, "id changed again within %ds: fetch postponed",
				           MTASTS_ID_CHANGE_INTERVAL);
			}
		}
	} else if (force && entry->policy) {
		/* §10.2: refresh over HTTPS whatever the TXT record says, under the cached id. */
		want_fetch = true;
		fetch_id = entry->id;
	}

	if (want_fetch) {
		status = mtasts_cache_lock(cache, domain, true, &lock_fd);
		if (status)
			goto out;
		/* Another process may have fetched while we waited for the lock. */
		status = load_entry(cache, domain, &entry);
		if (status)
			goto out;
		cached_valid = entry_policy_valid(entry, now);
		if (!force && cached_valid && strcmp(entry->id, fetch_id) == 0) {
			want_fetch = false;
		} else if (entry->failed_at && now - entry->failed_at < MTASTS_FETCH_BACKOFF &&
		           strcmp(entry->failed_id, fetch_id) == 0) {
			want_fetch = false;
			fetch_failed = true;
			set_reason(out, entry->failed_result, "backing off after a failed fetch %llds ago: %s",
			           (long long)(now - entry->failed_at), entry->failed_reason);
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
	if (entry->policy && entry->expires_at <= now && !fetched_ok) {
		mtasts_policy_destroy(&entry->policy);
		free(entry->raw);
		entry->raw = NULL;
		entry->raw_len = 0;
	}
	entry->txt_checked_at = now;
	status = mtasts_cache_put(cache, entry);
	if (status) {
		mtasts_log(MTASTS_LOG_WARNING, "cannot write the cache entry of %s: %s", domain,
		           mtasts_strerror(status));
	}

	if (fetched_ok) {
		out->source = MTASTS_SOURCE_NETWORK;
		status = MTASTS_OK;
	} else if (entry->policy && entry->expires_at > now) {
		out->source = MTASTS_SOURCE_CACHE;
		status = MTASTS_OK;
	} else if (fetch_failed || txt == TXT_LIVE) {
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
