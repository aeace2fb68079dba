/*
 * domain.h - domain names as RFC 8461 uses them: normalisation, RFC 5321 validation and the
 * §4.1 MX pattern rule.
 *
 * Matching is pure ASCII work with no allocation, so the shim's hot path can use it.
 * IDNA conversion (U-labels to A-labels) lives in idna.h, which needs libidn2.
 */
#ifndef MTASTS_DOMAIN_H
#define MTASTS_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include "mtasts/status.h"

/* 253 characters of name plus NUL; one trailing dot is accepted on input and removed. */
#define MTASTS_DOMAIN_MAX 254

/*
 * Copy an ASCII domain name into out (MTASTS_DOMAIN_MAX bytes) in lower case with one trailing
 * dot removed, and check it with mtasts_domain_is_valid. MTASTS_ERR_SYNTAX when it is not a
 * valid RFC 5321 Domain (after that normalisation), MTASTS_ERR_TOO_LARGE when too long.
 */
mtasts_status mtasts_domain_normalize(const char *in, char out[MTASTS_DOMAIN_MAX]);

/* RFC 5321 Domain: LDH labels of 1-63 characters, no leading/trailing hyphen, no empty label,
 * no underscore, at most 253 characters, not all-numeric in the last label (no IP address),
 * no trailing dot. Case is not checked. */
bool mtasts_domain_is_valid(const char *name);

/* An mx pattern of a policy: a valid Domain, optionally prefixed by "*." */
bool mtasts_mx_pattern_is_valid(const char *pattern);

/*
 * RFC 8461 §4.1: does host match pattern? ASCII case-insensitive, one trailing dot on either side
 * ignored; "*.rest" matches exactly one whole non-empty left-most label followed by ".rest".
 */
bool mtasts_mx_match(const char *pattern, const char *host);

#endif
