/*
 * fuzz_policy.c - libFuzzer target for policy.c (the input as a policy body, with the invariants
 * of a parsed policy checked) and a differential test of domain.c's mtasts_mx_match against a
 * slow, plainly written reference (input split at the first '\n' into pattern and host).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mtasts/domain.h"
#include "mtasts/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reference §4.1 matcher: clarity over speed ---- */

static bool ref_label_ok(const char *s, size_t n)
{
	if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          c == '-';
		if (!ok)
			return false;
	}
	return true;
}

static bool ref_domain_ok(const char *s, size_t n)
{
	size_t start = 0;
	bool last_numeric = true;

	if (n < 1 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!ref_label_ok(s + start, i - start))
				return false;
			last_numeric = strspn(s + start, "0123456789") >= i - start;
			start = i + 1;
		}
	}
	return !last_numeric;
}

static bool ref_equal_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

static bool ref_match(const char *pattern, const char *host)
{
	size_t pl = strlen(pattern), hl = strlen(host);

	if (pl && pattern[pl - 1] == '.')
		pl--;
	if (hl && host[hl - 1] == '.')
		hl--;
	if (!ref_domain_ok(host, hl))
		return false;
	if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = memchr(host, '.', hl);
		if (!ref_domain_ok(pattern + 2, pl - 2) || !dot)
			return false;
		return (size_t)(host + hl - (dot + 1)) == pl - 2 &&
		       ref_equal_nocase(dot + 1, pattern + 2, pl - 2);
	}
	return ref_domain_ok(pattern, pl) && pl == hl && ref_equal_nocase(pattern, host, pl);
}

static void fuzz_match(const char *s, size_t n)
{
	char pattern[300], host[300];
	const char *nl = memchr(s, '\n', n);
	size_t pl, hl;

	if (!nl)
		return;
	pl = (size_t)(nl - s);
	hl = n - pl - 1;
	if (pl >= sizeof(pattern) || hl >= sizeof(host))
		return;
	memcpy(pattern, s, pl);
	pattern[pl] = '\0';
	memcpy(host, nl + 1, hl);
	host[hl] = '\0';
	if (mtasts_mx_match(pattern, host) != ref_match(pattern, host))
		abort();
}

/* ---- the policy parser ---- */

static void check_policy(const mtasts_policy *p)
{
	mtasts_policy *copy = NULL;

	if (p->mode != MTASTS_MODE_NONE && p->mode != MTASTS_MODE_TESTING &&
	    p->mode != MTASTS_MODE_ENFORCE)
		abort();
	if (p->max_age > MTASTS_MAX_AGE_LIMIT)
		abort();
	if (p->mx_count == 0 && p->mode != MTASTS_MODE_NONE)
		abort();
	for (size_t i = 0; i < p->mx_count; i++) {
		char host[MTASTS_DOMAIN_MAX + 8];
		const char *m = p->mx[i];

		if (!mtasts_mx_pattern_is_valid(m))
			abort();
		for (const char *c = m; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				abort();
		/* a host built from the pattern must be allowed, in upper case with a root dot */
		if (m[0] == '*') {
			if (strlen(m) > 251)
				continue;
			snprintf(host, sizeof(host), "X%s.", m + 1);
		} else {
			snprintf(host, sizeof(host), "%s.", m);
		}
		for (char *c = host; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 32);
		if (!mtasts_policy_allows_mx(p, host))
			abort();
	}
	if (mtasts_policy_clone(p, &copy) != MTASTS_OK)
		abort();
	if (copy->mode != p->mode || copy->max_age != p->max_age || copy->mx_count != p->mx_count)
		abort();
	for (size_t i = 0; i < p->mx_count; i++)
		if (strcmp(copy->mx[i], p->mx[i]) != 0)
			abort();
	mtasts_policy_destroy(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	mtasts_policy *policy = NULL;
	char why[160];
	mtasts_status st = mtasts_policy_parse(s, size, &policy, why, sizeof(why));

	if (st == MTASTS_OK) {
		if (!policy || why[0] || size > MTASTS_POLICY_BODY_MAX || memchr(s, '\0', size))
			abort();
		check_policy(policy);
		mtasts_policy_destroy(&policy);
		if (policy)
			abort();
	} else {
		if (policy || !why[0])
			abort();
		if (st != MTASTS_ERR_SYNTAX && st != MTASTS_ERR_TOO_LARGE)
			abort();
	}
	fuzz_match(s, size);
	return 0;
}
