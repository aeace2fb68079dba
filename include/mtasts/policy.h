/*
 * policy.h - the MTA-STS policy body (RFC 8461 §3.2): strict parser, the parsed form and the
 * §4.1 check of an MX host against it.
 */
#ifndef MTASTS_POLICY_H
#define MTASTS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mtasts/status.h"

#define MTASTS_MAX_AGE_LIMIT 31557600u   /* §3.2: 365.25 days; larger values are clamped */
#define MTASTS_POLICY_BODY_MAX 65536u    /* §3.3 suggested cap, also the parser's input bound */

typedef enum mtasts_mode {
	MTASTS_MODE_NONE = 0,
	MTASTS_MODE_TESTING,
	MTASTS_MODE_ENFORCE,
} mtasts_mode;

typedef struct mtasts_policy {
	mtasts_mode mode;
	uint32_t max_age;   /* seconds, already clamped to MTASTS_MAX_AGE_LIMIT */
	size_t mx_count;
	char **mx;          /* mx_count patterns, lower case, as validated by mtasts_mx_pattern_is_valid */
} mtasts_policy;

/*
 * Parse a policy body of len bytes (NUL bytes inside are a syntax error). On failure returns
 * MTASTS_ERR_SYNTAX or MTASTS_ERR_TOO_LARGE and writes a reason naming the line into why.
 */
mtasts_status mtasts_policy_parse(const char *body, size_t len, mtasts_policy **out,
                                  char *why, size_t why_len);

/* Frees each mx[i], mx and the struct (separate malloc blocks), then NULLs *policy; NULL-safe. */
void mtasts_policy_destroy(mtasts_policy **policy);

/* Deep copy; MTASTS_ERR_NOMEM on failure. */
mtasts_status mtasts_policy_clone(const mtasts_policy *in, mtasts_policy **out);

/* True when host matches one of the policy's mx patterns (§4.1). */
bool mtasts_policy_allows_mx(const mtasts_policy *policy, const char *host);

/* "none", "testing", "enforce" */
const char *mtasts_mode_name(mtasts_mode mode);
mtasts_status mtasts_mode_from_name(const char *name, mtasts_mode *out);

#endif
