/*
 * policy.c - the MTA-STS policy body of RFC 8461 §3.2: a strict, linear, non-recursive parser
 * into mtasts_policy, deep copy, destruction and the §4.1 check of an MX host against it.
 *
 *   sts-policy-record = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP)
 *                       [sts-policy-term]
 *   sts-policy-term   = LF / CRLF
 *   field             = key ":" *WSP value      (no whitespace before ':' or at line start)
 *   version: %s"STSv1"   mode: %s"testing" / %s"enforce" / %s"none"
 *   max_age: 1*10DIGIT   mx: ["*."] Domain (RFC 5321, A-labels)
 *   sts-policy-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *
 * Tolerances beyond the ABNF (all documented in docs/parsing.md): a UTF-8 BOM at the very start is
 * skipped; blank lines (empty or only WSP) anywhere are skipped; a lone CR at the very end counts
 * as a terminator. Extension values are ignored without a grammar check (any bytes but NUL).
 * First occurrence wins for version/mode/max_age (later ones are ignored unchecked); every mx line
 * counts.
 *
 * Memory layout: the struct, the mx array and each mx string are separate malloc blocks, so a
 * policy assembled by hand with malloc'd parts can be released by mtasts_policy_destroy.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mtasts/domain.h"
#include "mtasts/policy.h"

#define KEY_MAX 32
#define QUOTE_MAX 40   /* bytes of a hostile value quoted in an error message */

enum seen_bits { SEEN_VERSION = 1, SEEN_MODE = 2, SEEN_MAX_AGE = 4 };

typedef struct parser {
	char *why;
	size_t why_len;
	size_t line_no;
	mtasts_policy *policy;
	size_t mx_alloc;
	unsigned seen;
	size_t fields;
} parser;

static inline bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_key_char(unsigned char c)
{
	return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

/* A printable, bounded copy of untrusted bytes for an error message. */
static void quote(char *dst, size_t dst_len, const char *s, size_t n)
{
	size_t o = 0, i;

	for (i = 0; i < n && o + 4 < dst_len && i < QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (i < n && o + 4 < dst_len) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

__attribute__((format(printf, 2, 3)))
static mtasts_status fail(parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!ps->why || ps->why_len == 0)
		return MTASTS_ERR_SYNTAX;
	if (ps->line_no)
		n = snprintf(ps->why, ps->why_len, "line %zu: ", ps->line_no);
	if (n < 0 || (size_t)n >= ps->why_len)
		return MTASTS_ERR_SYNTAX;
	va_start(ap, fmt);
	vsnprintf(ps->why + n, ps->why_len - (size_t)n, fmt, ap);
	va_end(ap);
	return MTASTS_ERR_SYNTAX;
}

static mtasts_status add_mx(parser *ps, const char *value, size_t n)
{
	mtasts_policy *policy = ps->policy;
	char *copy;

	if (policy->mx_count == ps->mx_alloc) {
		size_t alloc = ps->mx_alloc ? ps->mx_alloc * 2 : 8;
		char **grown = realloc(policy->mx, alloc * sizeof(*grown));
		if (!grown)
			return MTASTS_ERR_NOMEM;
		policy->mx = grown;
		ps->mx_alloc = alloc;
	}
	copy = malloc(n + 1);
	if (!copy)
		return MTASTS_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		copy[i] = (char)((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
	}
	copy[n] = '\0';
	policy->mx[policy->mx_count++] = copy;
	return MTASTS_OK;
}

static mtasts_status parse_mx(parser *ps, const char *value, size_t n)
{
	char buf[MTASTS_DOMAIN_MAX + 2];
	char q[QUOTE_MAX + 8];
	bool non_ascii = false, list = false, bad_char = false;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c >= 0x80)
			non_ascii = true;
		else if (c == ',' || is_wsp(c))
			list = true;
		else if (c != '.' && c != '-' && c != '*' && !is_alnum(c))
			bad_char = true;
	}
	quote(q, sizeof(q), value, n);
	if (non_ascii)
		return fail(ps, "mx: '%s' is not ASCII; IDN patterns must use A-labels (xn--)", q);
	if (list)
		return fail(ps, "mx: '%s': one pattern per mx line, no lists or spaces", q);
	if (n == 0)
		return fail(ps, "mx: empty value");
	if (n >= sizeof(buf))
		return fail(ps, "mx: pattern longer than 255 characters");
	memcpy(buf, value, n);
	buf[n] = '\0';
	if (!mtasts_mx_pattern_is_valid(buf)) {
		if (strspn(buf, "0123456789.") == n)
			return fail(ps, "mx: '%s' is an IP address, not a host name", q);
		if (bad_char)
			return fail(ps, "mx: '%s' has a character a host name cannot hold", q);
		return fail(ps, "mx: '%s' is not a valid host name pattern ([*.]domain, no IP address)", q);
	}
	return add_mx(ps, value, n);
}

static mtasts_status parse_known(parser *ps, const char *key, size_t key_len, const char *value,
                                 size_t n)
{
	char q[QUOTE_MAX + 8];

	if (key_len == 2 && memcmp(key, "mx", 2) == 0) {
		ps->fields++;
		return parse_mx(ps, value, n);
	}
	if (key_len == 7 && memcmp(key, "version", 7) == 0) {
		if (ps->seen & SEEN_VERSION)
			return MTASTS_OK;   /* first occurrence wins */
		ps->seen |= SEEN_VERSION;
		ps->fields++;
		quote(q, sizeof(q), value, n);
		if (n == 0)
			return fail(ps, "version: empty value");
		if (n != 5 || memcmp(value, "STSv1", 5) != 0)
			return fail(ps, "version: unknown value '%s'", q);
		return MTASTS_OK;
	}
	if (key_len == 4 && memcmp(key, "mode", 4) == 0) {
		mtasts_mode mode;
		if (ps->seen & SEEN_MODE)
			return MTASTS_OK;
		ps->seen |= SEEN_MODE;
		ps->fields++;
		quote(q, sizeof(q), value, n);
		if (n == 0)
			return fail(ps, "mode: empty value");
		if (n == 7 && memcmp(value, "enforce", 7) == 0)
			mode = MTASTS_MODE_ENFORCE;
		else if (n == 7 && memcmp(value, "testing", 7) == 0)
			mode = MTASTS_MODE_TESTING;
		else if (n == 4 && memcmp(value, "none", 4) == 0)
			mode = MTASTS_MODE_NONE;
		else
			return fail(ps, "mode: unknown value '%s'", q);
		ps->policy->mode = mode;
		return MTASTS_OK;
	}
	if (key_len == 7 && memcmp(key, "max_age", 7) == 0) {
		uint64_t v = 0;
		if (ps->seen & SEEN_MAX_AGE)
			return MTASTS_OK;
		ps->seen |= SEEN_MAX_AGE;
		ps->fields++;
		quote(q, sizeof(q), value, n);
		if (n == 0)
			return fail(ps, "max_age: empty value");
		for (size_t i = 0; i < n; i++) {
			if (value[i] < '0' || value[i] > '9')
				return fail(ps, "max_age: '%s' is not a number of seconds", q);
		}
		if (n > 10)
			return fail(ps, "max_age: more than 10 digits");
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (uint64_t)(value[i] - '0');
		ps->policy->max_age = v > MTASTS_MAX_AGE_LIMIT ? MTASTS_MAX_AGE_LIMIT : (uint32_t)v;
		return MTASTS_OK;
	}
	/* an extension: ignored, value unchecked */
	ps->fields++;
	return MTASTS_OK;
}

/* One line without its terminator. */
static mtasts_status parse_line(parser *ps, const char *s, size_t n)
{
	size_t p = 0, key_len, v;
	char q[QUOTE_MAX + 8];

	/* trailing *WSP belongs to the record grammar; a line of only WSP is a blank line */
	while (n > 0 && is_wsp((unsigned char)s[n - 1]))
		n--;
	if (n == 0)
		return MTASTS_OK;
	if (is_wsp((unsigned char)s[0]))
		return fail(ps, "leading whitespace");
	while (p < n && is_key_char((unsigned char)s[p]))
		p++;
	key_len = p;
	if (p == n || s[p] != ':') {
		if (memchr(s, ':', n) == NULL)
			return fail(ps, "no ':' after the key");
		if (p > 0 && is_wsp((unsigned char)s[p]))
			return fail(ps, "whitespace before ':'");
		quote(q, sizeof(q), s, n);
		return fail(ps, "invalid character in key of '%s'", q);
	}
	if (key_len == 0)
		return fail(ps, "empty key");
	if (!is_alnum((unsigned char)s[0]))
		return fail(ps, "key must start with a letter or digit");
	if (key_len > KEY_MAX)
		return fail(ps, "key longer than 32 characters");
	v = p + 1;
	while (v < n && is_wsp((unsigned char)s[v]))
		v++;
	return parse_known(ps, s, key_len, s + v, n - v);
}

void mtasts_policy_destroy(mtasts_policy **policy)
{
	if (!policy || !*policy)
		return;
	for (size_t i = 0; i < (*policy)->mx_count; i++)
		free((*policy)->mx[i]);
	free((*policy)->mx);
	free(*policy);
	*policy = NULL;
}

mtasts_status mtasts_policy_parse(const char *body, size_t len, mtasts_policy **out, char *why,
                                  size_t why_len)
{
	mtasts_status status;
	parser ps = { .why = why, .why_len = why_len };
	const char *p, *end, *nul;

	if (why && why_len)
		why[0] = '\0';
	if (!out || (!body && len))
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	if (len > MTASTS_POLICY_BODY_MAX) {
		if (why && why_len)
			snprintf(why, why_len, "policy body of %zu bytes is over the %u-byte limit", len,
			         MTASTS_POLICY_BODY_MAX);
		return MTASTS_ERR_TOO_LARGE;
	}
	ps.policy = calloc(1, sizeof(*ps.policy));
	if (!ps.policy)
		return MTASTS_ERR_NOMEM;
	ps.policy->mode = MTASTS_MODE_NONE;

	p = body;
	end = body ? body + len : body;
	nul = len ? memchr(body, '\0', len) : NULL;
	if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0)
		p += 3;   /* tolerated UTF-8 BOM */
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = lf ? lf : end;
		size_t n = (size_t)(line_end - p);

		ps.line_no++;
		if (nul && nul < line_end) {
			status = fail(&ps, "NUL byte");
			goto out;
		}
		if (n > 0 && p[n - 1] == '\r')
			n--;   /* CRLF, or a lone CR at the very end of the body */
		status = parse_line(&ps, p, n);
		if (status)
			goto out;
		p = lf ? lf + 1 : end;
	}
	ps.line_no = 0;

	status = MTASTS_ERR_SYNTAX;
	if (ps.fields == 0) {
		fail(&ps, "empty policy: no fields");
		goto out;
	}
	if (!(ps.seen & SEEN_VERSION)) {
		fail(&ps, "version: missing");
		goto out;
	}
	if (!(ps.seen & SEEN_MODE)) {
		fail(&ps, "mode: missing");
		goto out;
	}
	if (!(ps.seen & SEEN_MAX_AGE)) {
		fail(&ps, "max_age: missing");
		goto out;
	}
	if (ps.policy->mx_count == 0 && ps.policy->mode != MTASTS_MODE_NONE) {
		fail(&ps, "mx: missing (at least one mx line is required unless mode is none)");
		goto out;
	}
	status = MTASTS_OK;
	*out = ps.policy;
	ps.policy = NULL;
out:
	if (status == MTASTS_ERR_NOMEM && why && why_len)
		snprintf(why, why_len, "out of memory");
	mtasts_policy_destroy(&ps.policy);
	return status;
}

mtasts_status mtasts_policy_clone(const mtasts_policy *in, mtasts_policy **out)
{
	mtasts_status status = MTASTS_ERR_NOMEM;
	mtasts_policy *copy;

	if (!out)
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	if (!in || (in->mx_count && !in->mx))
		return MTASTS_ERR_INVALID_ARG;
	copy = calloc(1, sizeof(*copy));
	if (!copy)
		return MTASTS_ERR_NOMEM;
	copy->mode = in->mode;
	copy->max_age = in->max_age;
	if (in->mx_count) {
		copy->mx = calloc(in->mx_count, sizeof(*copy->mx));
		if (!copy->mx)
			goto out;
		for (size_t i = 0; i < in->mx_count; i++) {
			copy->mx[i] = strdup(in->mx[i] ? in->mx[i] : "");
			if (!copy->mx[i])
				goto out;
			copy->mx_count = i + 1;
		}
	}
	status = MTASTS_OK;
	*out = copy;
	copy = NULL;
out:
	mtasts_policy_destroy(&copy);
	return status;
}

bool mtasts_policy_allows_mx(const mtasts_policy *policy, const char *host)
{
	if (!policy || !host || (policy->mx_count && !policy->mx))
		return false;
	for (size_t i = 0; i < policy->mx_count; i++) {
		if (mtasts_mx_match(policy->mx[i], host))
			return true;
	}
	return false;
}

const char *mtasts_mode_name(mtasts_mode mode)
{
	switch (mode) {
	case MTASTS_MODE_NONE:
		return "none";
	case MTASTS_MODE_TESTING:
		return "testing";
	case MTASTS_MODE_ENFORCE:
		return "enforce";
	}
	return "unknown";
}

mtasts_status mtasts_mode_from_name(const char *name, mtasts_mode *out)
{
	if (!name || !out)
		return MTASTS_ERR_INVALID_ARG;
	if (strcmp(name, "none") == 0)
		*out = MTASTS_MODE_NONE;
	else if (strcmp(name, "testing") == 0)
		*out = MTASTS_MODE_TESTING;
	else if (strcmp(name, "enforce") == 0)
		*out = MTASTS_MODE_ENFORCE;
	else
		return MTASTS_ERR_SYNTAX;
	return MTASTS_OK;
}
