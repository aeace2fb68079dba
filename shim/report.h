/*
 * report.h - the one log line and the one JSON line per SMTP session (DESIGN.md §1, issue 3):
 *   mtasts: domain=D mx=H ip=A policy=enforce|testing|none|absent result=... action=allow|block
 */
#ifndef MTASTS_SHIM_REPORT_H
#define MTASTS_SHIM_REPORT_H

#include <stddef.h>
#include "mtasts/status.h"

typedef struct shim_session_facts {
	const char *domain;     /* "-" when none */
	const char *mx;         /* "-" when none */
	const char *ip;
	const char *policy;     /* enforce|testing|none|absent */
	const char *policy_id;  /* "" when none */
	mtasts_result result;
	const char *reason;     /* "" when none */
	int blocked;
} shim_session_facts;

/* Log the line and append the JSON line (inside the shim). */
void shim_report_session(const shim_session_facts *facts);

/* JSON string escaping into out (always NUL-terminated, truncated to fit); exposed for tests. */
size_t shim_json_escape(const char *in, char *out, size_t out_len);

#endif
