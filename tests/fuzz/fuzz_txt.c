/*
 * fuzz_txt.c - libFuzzer target for txt.c (one record, and the input split at '\n' into an RRset)
 * and for idna.c/domain.c normalisation (the input as a name). Invariants are checked with
 * abort() so that a wrong acceptance is a crash, not only a memory error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mtasts/domain.h"
#include "mtasts/idna.h"
#include "mtasts/txt.h"

#define MAX_RECORDS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= MTASTS_ID_MAX)
		abort();
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			abort();
	}
}

static void fuzz_record(const char *s, size_t n)
{
	char id[MTASTS_ID_MAX];
	const char *why = NULL;
	mtasts_status st = mtasts_txt_parse(s, n, id, &why);

	if (st == MTASTS_OK) {
		if (why || n < 7 || memcmp(s, "v=STSv1", 7) != 0 || memchr(s, '\0', n))
			abort();
		check_id(id);
	} else if (st != MTASTS_ERR_SYNTAX || !why || !*why || id[0]) {
		abort();
	}
}

static void fuzz_rrset(const char *s, size_t n)
{
	const char *recs[MAX_RECORDS];
	size_t lens[MAX_RECORDS], count = 0, p = 0;
	char id[MTASTS_ID_MAX];
	const char *why = NULL;
	mtasts_status st;

	while (p <= n && count < MAX_RECORDS) {
		const char *nl = memchr(s + p, '\n', n - p);
		size_t e = nl ? (size_t)(nl - s) : n;
		recs[count] = s + p;
		lens[count++] = e - p;
		p = e + 1;
	}
	st = mtasts_txt_select(recs, lens, count, id, &why);
	if (st == MTASTS_OK)
		check_id(id);
	else if (!why || id[0])
		abort();
}

static void fuzz_name(const char *s, size_t n)
{
	char name[512], out[MTASTS_DOMAIN_MAX], again[MTASTS_DOMAIN_MAX];

	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	memcpy(name, s, n);
	name[n] = '\0';
	if (mtasts_domain_to_ascii(name, out) == MTASTS_OK) {
		if (!mtasts_domain_is_valid(out))
			abort();
		for (const char *c = out; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				abort();
		if (mtasts_domain_normalize(out, again) != MTASTS_OK || strcmp(out, again) != 0)
			abort();
	} else if (out[0]) {
		abort();
	}
	/* a valid ASCII name matches its own normal form */
	if (mtasts_domain_normalize(name, again) == MTASTS_OK && !mtasts_mx_match(again, name))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	fuzz_record(s, size);
	fuzz_rrset(s, size);
	fuzz_name(s, size);
	return 0;
}
