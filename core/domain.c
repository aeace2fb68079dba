/*
 * domain.c - ASCII domain names for RFC 8461: normalisation to lower case without the root dot,
 * RFC 5321 Domain validation, mx pattern validation and the §4.1 MX host match.
 *
 * No allocation, no locale, no libidn2: the shim calls mtasts_mx_match once per connection and
 * links this file without the IDNA code (see idna.c for U-labels).
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include "mtasts/domain.h"

#define LABEL_MAX 63
#define NAME_MAX_LEN (MTASTS_DOMAIN_MAX - 1)   /* 253 */

static inline unsigned char ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alnum(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* One LDH label of n bytes: 1-63 letters, digits, hyphens, no hyphen at either end. */
static bool label_is_valid(const char *s, size_t n)
{
	if (n == 0 || n > LABEL_MAX)
		return false;
	if (s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!is_alnum(c) && c != '-')
			return false;
	}
	return true;
}

/* RFC 5321 Domain of exactly n bytes (no trailing dot); one pass. */
static bool domain_is_valid_n(const char *s, size_t n)
{
	size_t label_len = 0;
	bool all_digits = true;
	unsigned char prev = '.';

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label_len == 0 || prev == '-')
				return false;
			label_len = 0;
			all_digits = true;
		} else if (is_alnum(c)) {
			if (++label_len > LABEL_MAX)
				return false;
			if (!is_digit(c))
				all_digits = false;
		} else if (c == '-') {
			if (label_len == 0 || ++label_len > LABEL_MAX)
				return false;
			all_digits = false;
		} else {
			return false;
		}
		prev = c;
	}
	/* empty last label (trailing dot), hyphen at its end, or an all-numeric top label (an IP
	 * address or something that looks like one) */
	return label_len != 0 && prev != '-' && !all_digits;
}

/* n bytes equal, ASCII case-insensitively */
static bool ascii_case_equal(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return false;
	}
	return true;
}

bool mtasts_domain_is_valid(const char *name)
{
	if (!name)
		return false;
	return domain_is_valid_n(name, strnlen(name, NAME_MAX_LEN + 1));
}

mtasts_status mtasts_domain_normalize(const char *in, char out[MTASTS_DOMAIN_MAX])
{
	size_t n;

	if (!in || !out)
		return MTASTS_ERR_INVALID_ARG;
	out[0] = '\0';
	/* 253 characters plus one optional root dot; read no further than one past that */
	n = strnlen(in, MTASTS_DOMAIN_MAX + 1);
	if (n > MTASTS_DOMAIN_MAX)
		return MTASTS_ERR_TOO_LARGE;
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n > NAME_MAX_LEN)
		return MTASTS_ERR_TOO_LARGE;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)ascii_lower((unsigned char)in[i]);
	out[n] = '\0';
	if (!domain_is_valid_n(out, n)) {
		out[0] = '\0';
		return MTASTS_ERR_SYNTAX;
	}
	return MTASTS_OK;
}

bool mtasts_mx_pattern_is_valid(const char *pattern)
{
	if (!pattern)
		return false;
	if (pattern[0] == '*' && pattern[1] == '.')
		pattern += 2;
	return mtasts_domain_is_valid(pattern);
}

bool mtasts_mx_match(const char *pattern, const char *host)
{
	size_t plen, hlen;

	if (!pattern || !host)
		return false;
	/* bounded lengths: anything longer than a name plus "*." plus a root dot cannot match */
	plen = strnlen(pattern, NAME_MAX_LEN + 4);
	hlen = strnlen(host, NAME_MAX_LEN + 2);
	if (plen > 0 && pattern[plen - 1] == '.')
		plen--;
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (hlen == 0 || hlen > NAME_MAX_LEN)
		return false;

	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *rest = pattern + 2;
		size_t rest_len = plen - 2;
		const char *dot = memchr(host, '.', hlen);
		size_t label_len;

		if (!dot)
			return false;
		label_len = (size_t)(dot - host);
		/* the wildcard stands for exactly one whole label: what follows it must be rest */
		if (hlen - label_len - 1 != rest_len)
			return false;
		if (!ascii_case_equal(rest, dot + 1, rest_len))
			return false;
		return label_is_valid(host, label_len) && domain_is_valid_n(rest, rest_len);
	}

	/* compare first: a mismatch is the common case and needs no validation */
	if (plen != hlen || !ascii_case_equal(pattern, host, plen))
		return false;
	return domain_is_valid_n(pattern, plen);
}
