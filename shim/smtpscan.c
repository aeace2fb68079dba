/*
 * smtpscan.c - the SMTP client stream follower of smtpscan.h.
 *
 * COMMANDS: bytes are gathered per line (the first SMTPSCAN_LINE_MAX kept). A line is a command
 * when, after optional blanks, it starts with one of the four words (any case) followed by a
 * space, a tab, ':' (MAIL/RCPT syntax slips), CR or LF: reported as soon as that fifth byte is
 * there. A RCPT TO is reported once its path is complete ('>' or, unbracketed, a blank, or the
 * end of the line), with its domain: quoted local parts and source routes are understood, an
 * address literal or a path without '@' has no domain, anything unreadable is reported as such.
 * At the end of a DATA line the stream is message data up to a line holding only "." (CRLF or a
 * bare LF accepted); at the end of "BDAT <size>" the next <size> bytes are skipped. When the
 * first line after DATA is a command (the server refused DATA, so the MTA sent no message),
 * the stream goes back to commands: the MTA always starts a message with a header line.
 */
#include <string.h>
#include <strings.h>

#include "smtpscan.h"

#define LEN_LIMIT ((size_t)1 << 40)   /* line lengths saturate here instead of wrapping */
#define NEED_MORE (-1)

static void append(smtpscan *s, const char *p, size_t n)
{
	if (s->len < SMTPSCAN_LINE_MAX) {
		size_t room = SMTPSCAN_LINE_MAX - s->len;
		memcpy(s->head + s->len, p, n < room ? n : room);
	}
	s->len = n > LEN_LIMIT - s->len ? LEN_LIMIT : s->len + n;
}

static size_t kept(const smtpscan *s)
{
	return s->len < SMTPSCAN_LINE_MAX ? s->len : SMTPSCAN_LINE_MAX;
}

static void new_line(smtpscan *s)
{
	s->len = 0;
	s->reported = 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The command a line holding n bytes at p starts with (0: none, or not known yet). */
static int command_at(const char *p, size_t n)
{
	static const struct { const char *word; int bit; } words[] = {
		{ "MAIL", SMTP_CMD_MAIL }, { "RCPT", SMTP_CMD_RCPT },
		{ "DATA", SMTP_CMD_DATA }, { "BDAT", SMTP_CMD_BDAT },
	};
	size_t off = 0;

	while (off < n && is_blank(p[off]))
		off++;
	if (n - off < 5)
		return 0;
	p += off;
	if (!is_blank(p[4]) && p[4] != ':' && p[4] != '\r' && p[4] != '\n')
		return 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strncasecmp(p, words[i].word, 4) == 0)
			return words[i].bit;
	}
	return 0;
}

/*
 * The RCPT TO path in [p, end) (the line after its first four letters). more: bytes of this line
 * may still come. Returns NEED_MORE or an SMTPSCAN_RCPT_* value (domain filled for _DOMAIN).
 */
static int parse_rcpt(const char *p, const char *end, bool more, char domain[MTASTS_DOMAIN_MAX])
{
	char buf[MTASTS_DOMAIN_MAX + 1];
	const char *at = NULL, *q;
	bool bracket, quoted = false, escaped = false;
	size_t n;

	while (p < end && is_blank(*p))
		p++;
	if (end - p < 3)
		return more ? NEED_MORE : SMTPSCAN_RCPT_BAD;
	if (strncasecmp(p, "TO:", 3) != 0)
		return SMTPSCAN_RCPT_BAD;
	p += 3;
	while (p < end && is_blank(*p))
		p++;
	if (p == end)
		return more ? NEED_MORE : SMTPSCAN_RCPT_BAD;
	bracket = *p == '<';
	if (bracket)
		p++;
	for (q = p;; q++) {
		if (q == end)
			return more ? NEED_MORE : SMTPSCAN_RCPT_BAD;
		if (*q == '\r' || *q == '\n')
			break;
		if (escaped) {
			escaped = false;
		} else if (*q == '\\') {
			escaped = true;
		} else if (quoted) {
			quoted = *q != '"';
		} else if (*q == '"') {
			quoted = true;
		} else if (bracket ? *q == '>' : is_blank(*q)) {
			break;
		} else if (*q == '@') {
			at = q;
		} else if (*q == ':') {
			at = NULL;   /* end of a source route "@a,@b:": the mailbox follows */
		}
	}
	if (!at)
		return SMTPSCAN_RCPT_NONE;
	if (at[1] == '[')
		return SMTPSCAN_RCPT_NONE;   /* address literal: no policy domain */
	n = (size_t)(q - (at + 1));
	if (n == 0 || n >= sizeof(buf))
		return SMTPSCAN_RCPT_BAD;
	memcpy(buf, at + 1, n);
	buf[n] = '\0';
	if (mtasts_domain_normalize(buf, domain) != MTASTS_OK)
		return SMTPSCAN_RCPT_BAD;
	return SMTPSCAN_RCPT_DOMAIN;
}

/* Report the current line's command when it became recognisable. complete: it ended (LF). */
static int check_line(smtpscan *s, bool complete, smtpscan_fn fn, void *ctx)
{
	smtpscan_event ev;
	size_t n = kept(s);
	int cmd = command_at(s->head, n);

	if (!cmd || (s->reported & (unsigned)cmd))
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.cmd = cmd;
	if (cmd == SMTP_CMD_RCPT) {
		const char *word = s->head;
		while (is_blank(*word))
			word++;
		int r = parse_rcpt(word + 4, s->head + n, !complete && s->len < SMTPSCAN_LINE_MAX,
		                   ev.domain);
		if (r == NEED_MORE)
			return 0;
		ev.rcpt = r;
	}
	s->reported |= (unsigned)cmd;
	return fn ? fn(ctx, &ev) : 0;
}

/* A complete command line: DATA and BDAT switch to message data. */
static void end_line(smtpscan *s)
{
	size_t n = kept(s);
	int cmd = command_at(s->head, n);

	if (cmd == SMTP_CMD_DATA) {
		s->mode = SMTPSCAN_DATA;
		s->body = 0;
		s->body_started = false;
	} else if (cmd == SMTP_CMD_BDAT) {
		const char *p = s->head, *end = s->head + n;
		uint64_t size = 0;
		int digits = 0;

		while (p < end && is_blank(*p))
			p++;
		for (p += 4; p < end && is_blank(*p); p++)
			;
		for (; p < end && *p >= '0' && *p <= '9' && digits < 19; p++, digits++)
			size = size * 10 + (uint64_t)(*p - '0');
		/* an unreadable size: stay with commands (a chunk line taken for a command can only
		 * make the guard stricter) */
		if (digits > 0 && digits < 19 && size > 0) {
			s->mode = SMTPSCAN_BDAT;
			s->bdat_left = size;
		}
	}
	new_line(s);
}

/* Message data: consume up to the end-of-data line (then back to commands) or all n bytes. */
static size_t body_scan(smtpscan *s, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (s->body == 1) {
			const char *nl = memchr(p + i, '\n', n - i);
			if (!nl)
				return n;
			i = (size_t)(nl - p) + 1;
			s->body = 0;
			continue;
		}
		char c = p[i++];
		if (c == '\n' && s->body >= 2) {
			s->mode = SMTPSCAN_COMMANDS;
			s->body = 0;
			new_line(s);
			return i;
		}
		if (s->body == 0 && c == '.')
			s->body = 2;
		else if (s->body == 2 && c == '\r')
			s->body = 3;
		else
			s->body = c == '\n' ? 0 : 1;
	}
	return n;
}

/* Right after DATA: does the first line say the MTA sent no message? (5 bytes in head) */
static bool no_message_follows(const smtpscan *s)
{
	static const char *const words[] = { "RSET", "QUIT", "NOOP", "MAIL", "EHLO", "HELO" };
	char d = s->head[4];

	if (d != ' ' && d != '\r' && d != '\n')
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strncasecmp(s->head, words[i], 4) == 0)
			return true;
	}
	return false;
}

int smtpscan_feed(smtpscan *s, const char *buf, size_t len, smtpscan_fn fn, void *ctx)
{
	size_t i = 0;
	int rc;

	if (!buf)
		return 0;
	while (i < len) {
		if (s->mode == SMTPSCAN_BDAT) {
			size_t take = len - i;
			if ((uint64_t)take > s->bdat_left)
				take = (size_t)s->bdat_left;
			i += take;
			s->bdat_left -= take;
			if (s->bdat_left == 0) {
				s->mode = SMTPSCAN_COMMANDS;
				new_line(s);
			}
			continue;
		}
		if (s->mode == SMTPSCAN_DATA && s->body_started) {
			i += body_scan(s, buf + i, len - i);
			continue;
		}
		if (s->mode == SMTPSCAN_DATA) {
			/* gather the first line's first five bytes (or the whole line when shorter) */
			size_t take = len - i;
			const char *nl = memchr(buf + i, '\n', take);
			if (nl)
				take = (size_t)(nl - (buf + i)) + 1;
			if (take > 5 - s->len)
				take = 5 - s->len;
			append(s, buf + i, take);
			i += take;
			if (s->len < 5 && s->head[s->len - 1] != '\n')
				continue;   /* the buffer ended */
			if (s->len == 5 && no_message_follows(s)) {
				s->mode = SMTPSCAN_COMMANDS;   /* the line goes on as a command line */
				rc = check_line(s, s->head[4] == '\n', fn, ctx);
				if (rc)
					return rc;
				if (s->head[4] == '\n')
					end_line(s);
				continue;
			}
			size_t n = s->len;
			s->body_started = true;
			s->body = 0;
			new_line(s);
			body_scan(s, s->head, n);   /* can only end the data at its last byte (a LF) */
			continue;
		}
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - buf) + 1 : len;
		append(s, buf + i, end - i);
		i = end;
		rc = check_line(s, nl != NULL, fn, ctx);
		if (rc)
			return rc;
		if (nl)
			end_line(s);
	}
	return 0;
}
