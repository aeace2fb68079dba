/*
 * smtpscan.c - the command scanner of smtpscan.h.
 *
 * A command is recognised when a line (the buffer start when line_start, or the byte after a
 * LF) starts with the four letters, case-insensitive, followed by a space, ':' (MAIL/RCPT
 * syntax slips), CR, LF or the end of the buffer. Only what a line holds within this buffer is
 * read; a RCPT TO domain cut by the buffer end is reported as unparsed.
 */
#include <string.h>
#include <strings.h>

#include "smtpscan.h"

static int command_at(const char *p, size_t left)
{
	static const struct { const char *word; int bit; } words[] = {
		{ "MAIL", SMTP_CMD_MAIL }, { "RCPT", SMTP_CMD_RCPT },
		{ "DATA", SMTP_CMD_DATA }, { "BDAT", SMTP_CMD_BDAT },
	};

	if (left < 4)
		return 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strncasecmp(p, words[i].word, 4) != 0)
			continue;
		if (left == 4 || p[4] == ' ' || p[4] == ':' || p[4] == '\r' || p[4] == '\n' ||
		    p[4] == '\t')
			return words[i].bit;
	}
	return 0;
}

/* line points at "RCPT", end at the end of the line (excluding CR LF) */
static void take_rcpt(smtpscan *s, const char *line, const char *end)
{
	const char *p = line + 4, *at = NULL, *stop;
	char domain[MTASTS_DOMAIN_MAX];
	char buf[MTASTS_DOMAIN_MAX + 1];
	size_t n;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p < 3 || strncasecmp(p, "TO:", 3) != 0)
		goto bad;
	p += 3;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && *p == '<')
		p++;
	/* the path ends at '>' or, unbracketed, at white space */
	for (stop = p; stop < end && *stop != '>' && *stop != ' ' && *stop != '\t'; stop++)
		;
	for (const char *q = p; q < stop; q++) {
		if (*q == '@')
			at = q;
		if (*q == ':' && at)   /* source route "@a,@b:user@domain": restart after ':' */
			at = NULL;
	}
	if (!at)
		goto bad;
	n = (size_t)(stop - (at + 1));
	if (n == 0 || n >= sizeof(buf))
		goto bad;
	memcpy(buf, at + 1, n);
	buf[n] = '\0';
	if (mtasts_domain_normalize(buf, domain) != MTASTS_OK)
		goto bad;
	for (int i = 0; i < s->nrcpt; i++) {
		if (strcmp(s->rcpt[i], domain) == 0)
			return;
	}
	if (s->nrcpt >= SMTPSCAN_RCPT_MAX)
		goto bad;
	memcpy(s->rcpt[s->nrcpt++], domain, MTASTS_DOMAIN_MAX);
	return;
bad:
	s->rcpt_unparsed = true;
}

void smtpscan_feed(smtpscan *s, const char *buf, size_t len)
{
	size_t i = 0;

	if (!buf || !len)
		return;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t line_end = nl ? (size_t)(nl - buf) : len;
		if (s->line_start) {
			int cmd = command_at(buf + i, len - i);
			s->commands |= (unsigned)cmd;
			if (cmd == SMTP_CMD_RCPT) {
				const char *end = buf + line_end;
				if (end > buf + i && end[-1] == '\r')
					end--;
				if (nl)
					take_rcpt(s, buf + i, end);
				else
					s->rcpt_unparsed = true;   /* cut by the buffer end */
			}
		}
		if (!nl) {
			s->line_start = false;
			return;
		}
		i = line_end + 1;
		s->line_start = true;
	}
}
