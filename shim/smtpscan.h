/*
 * smtpscan.h - finds SMTP transaction commands (MAIL, RCPT, DATA, BDAT, any case) at line starts
 * in bytes an MTA is about to write, pipelined commands included, and the domains of RCPT TO.
 * Pure and allocation-free: safe in any hook, easy to test and fuzz.
 */
#ifndef MTASTS_SHIM_SMTPSCAN_H
#define MTASTS_SHIM_SMTPSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include "mtasts/domain.h"

#define SMTPSCAN_RCPT_MAX 8

enum { SMTP_CMD_MAIL = 1, SMTP_CMD_RCPT = 2, SMTP_CMD_DATA = 4, SMTP_CMD_BDAT = 8 };

typedef struct smtpscan {
	unsigned commands;                 /* SMTP_CMD_* bits seen */
	int nrcpt;                         /* RCPT TO domains kept (normalised) */
	char rcpt[SMTPSCAN_RCPT_MAX][MTASTS_DOMAIN_MAX];
	bool rcpt_unparsed;                /* a RCPT TO whose domain could not be read or kept */
	bool line_start;                   /* in: buffer starts a line; out: next byte would */
} smtpscan;

/* Scan len bytes; s->line_start must be set by the caller; other fields accumulate. */
void smtpscan_feed(smtpscan *s, const char *buf, size_t len);

#endif
