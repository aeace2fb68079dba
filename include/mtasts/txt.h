/*
 * txt.h - the `_mta-sts` TXT record (RFC 8461 §3.1): strict grammar of one record and the rules
 * for an RRset (records not starting with v=STSv1 dropped, exactly one must remain).
 */
#ifndef MTASTS_TXT_H
#define MTASTS_TXT_H

#include <stddef.h>
#include "mtasts/status.h"

/* 1*32(ALPHA / DIGIT) plus NUL */
#define MTASTS_ID_MAX 33

/*
 * Parse one record (its character-strings already joined with nothing). On success id_out holds
 * the id. On failure MTASTS_ERR_SYNTAX and *why (if why) points to a static reason.
 */
mtasts_status mtasts_txt_parse(const char *record, size_t len, char id_out[MTASTS_ID_MAX],
                               const char **why);

/*
 * Apply §3.1 to a whole RRset of n records: MTASTS_ERR_NOT_FOUND when none is an STS record,
 * MTASTS_ERR_MULTIPLE when more than one is, MTASTS_ERR_SYNTAX when the one is invalid.
 * lens may be NULL when every record is NUL-terminated.
 */
mtasts_status mtasts_txt_select(const char *const *records, const size_t *lens, size_t n,
                                char id_out[MTASTS_ID_MAX], const char **why);

#endif
