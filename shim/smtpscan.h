/*
 * smtpscan.h - follows the SMTP client stream an MTA writes on a guarded connection and reports
 * every transaction command (MAIL, RCPT, DATA, BDAT, any case, pipelined or not) as soon as it is
 * recognisable, whatever the write boundaries: a command split across writes or iovecs ("MA"
 * then "IL FROM") is reported in the call that brings the byte which makes it a command. Message
 * data is followed (DATA up to its "." line, BDAT chunks by their size), so the commands of a
 * later transaction on the same connection are seen too, and a line of the message is never
 * taken for a command.
 *
 * Pure and allocation-free (safe in any hook, easy to test and fuzz); the state is bounded: the
 * first SMTPSCAN_LINE_MAX bytes of the current line. An all-zero state is a fresh stream.
 */
#ifndef MTASTS_SHIM_SMTPSCAN_H
#define MTASTS_SHIM_SMTPSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mtasts/domain.h"

#define SMTPSCAN_LINE_MAX 1024

enum { SMTP_CMD_MAIL = 1, SMTP_CMD_RCPT = 2, SMTP_CMD_DATA = 4, SMTP_CMD_BDAT = 8 };

/* What a RCPT TO path says about its domain. */
enum {
	SMTPSCAN_RCPT_DOMAIN = 0,   /* domain holds the normalised domain */
	SMTPSCAN_RCPT_NONE,         /* no domain to apply a policy to: <postmaster>, an address literal */
	SMTPSCAN_RCPT_BAD,          /* unreadable (malformed, too long, not an ASCII domain name) */
};

typedef enum { SMTPSCAN_COMMANDS = 0, SMTPSCAN_DATA, SMTPSCAN_BDAT } smtpscan_mode;

typedef struct smtpscan {
	smtpscan_mode mode;
	size_t len;                    /* bytes of the current line so far (COMMANDS) */
	char head[SMTPSCAN_LINE_MAX];  /* the first of them */
	unsigned reported;             /* the current line's command was reported (SMTP_CMD_* bit) */
	int body;                      /* DATA: 0 line start, 1 mid-line, 2 ".", 3 ".\r" */
	bool body_started;             /* DATA: a byte of the message was written */
	uint64_t bdat_left;            /* BDAT: chunk bytes still to come */
} smtpscan;

typedef struct smtpscan_event {
	int cmd;                           /* one SMTP_CMD_* */
	int rcpt;                          /* RCPT: SMTPSCAN_RCPT_* */
	char domain[MTASTS_DOMAIN_MAX];    /* RCPT, SMTPSCAN_RCPT_DOMAIN: the domain */
} smtpscan_event;

/* Called for each command (once per command line); a non-zero return stops the scan. */
typedef int (*smtpscan_fn)(void *ctx, const smtpscan_event *event);

/* Scan len more bytes of the stream; fn may be NULL (only advance the state). Returns 0, or
 * what fn returned when it stopped the scan (the state is then undefined). */
int smtpscan_feed(smtpscan *s, const char *buf, size_t len, smtpscan_fn fn, void *ctx);

#endif
