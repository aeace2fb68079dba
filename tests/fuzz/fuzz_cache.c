/*
 * fuzz_cache.c - libFuzzer target of the cache entry file parser (core/cache.c): any input must
 * be parsed or refused without a crash, leak or overread; whatever parses must format again,
 * re-parse to an identical entry, and format to identical bytes (the format is canonical).
 * Seed corpus: tests/fuzz/corpus/cache (real formatted entries).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mtasts/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_policy(const mtasts_policy *a, const mtasts_policy *b)
{
	if (!a || !b) {
		if (a != b)
			abort();
		return;
	}
	if (a->mode != b->mode || a->max_age != b->max_age || a->mx_count != b->mx_count)
		abort();
	for (size_t i = 0; i < a->mx_count; i++)
		if (strcmp(a->mx[i], b->mx[i]) != 0)
			abort();
}

static void same_entry(const mtasts_cache_entry *a, const mtasts_cache_entry *b)
{
	if (strcmp(a->domain, b->domain) || strcmp(a->id, b->id) || strcmp(a->failed_id, b->failed_id) ||
	    strcmp(a->failed_reason, b->failed_reason) || a->fetched_at != b->fetched_at ||
	    a->expires_at != b->expires_at || a->txt_checked_at != b->txt_checked_at ||
	    a->failed_at != b->failed_at || a->failed_result != b->failed_result ||
	    a->failure_count != b->failure_count || a->raw_len != b->raw_len ||
	    (a->raw_len && memcmp(a->raw, b->raw, a->raw_len) != 0))
		abort();
	same_policy(a->policy, b->policy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mtasts_cache_entry *first = NULL, *second = NULL;
	char *buf1 = NULL, *buf2 = NULL;
	size_t len1 = 0, len2 = 0;

	mtasts_status status = mtasts_cache_entry_parse((const char *)data, size, &first);
	if (status != MTASTS_OK) {
		if (first || (status != MTASTS_ERR_CORRUPT && status != MTASTS_ERR_NOMEM))
			abort();
		return 0;
	}
	if (mtasts_cache_entry_format(first, &buf1, &len1) != MTASTS_OK)
		abort();
	if (mtasts_cache_entry_parse(buf1, len1, &second) != MTASTS_OK)
		abort();
	same_entry(first, second);
	if (mtasts_cache_entry_format(second, &buf2, &len2) != MTASTS_OK)
		abort();
	if (len1 != len2 || memcmp(buf1, buf2, len1) != 0)
		abort();
	free(buf1);
	free(buf2);
	mtasts_cache_entry_destroy(&first);
	mtasts_cache_entry_destroy(&second);
	return 0;
}
