/*
 * fuzz_smtpscan.c - libFuzzer target of the shim's SMTP stream follower (shim/smtpscan.c). The
 * input is the byte stream an MTA writes on a guarded connection. smtpscan.h promises that
 * every command is reported in the call that brings the byte which makes it recognisable,
 * whatever the write boundaries; so, with the stream fed one byte at a time as the reference:
 *   - fed whole, and fed in pieces whose sizes come from a generator seeded by the input, the
 *     same events (command, RCPT verdict, domain) are reported, each one in the piece holding
 *     the byte at which the reference reported it, and the final states are the same;
 *   - fed in pieces without a callback (session.c after a short write), the final state is
 *     the same;
 *   - a callback that stops the scan at the k-th event makes smtpscan_feed return its value at
 *     that event's piece, after exactly the k-1 events before it;
 *   - every event is well formed (one SMTP_CMD_* bit; a RCPT domain normalised and present
 *     after an '@' shortly before the byte that completed it; no RCPT fields on other commands);
 *   - a second, line-by-line reading of the stream (check_model) finds exactly the commands
 *     the reference reported, each at the byte where it must have been recognised.
 * Seeds: tests/fuzz/corpus/smtpscan (client streams: pipelined transactions, DATA with dot
 * lines, BDAT chunks, refused DATA, quoted and source-routed RCPT paths).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct event_rec {
	size_t at;        /* reference: offset of the byte that made the event; else the piece end */
	size_t piece;     /* start of the piece it came in */
	int cmd, rcpt;
	uint64_t domain;  /* hash of the domain */
} event_rec;

typedef struct run {
	const char *stream;
	size_t size;
	event_rec *ev;
	size_t n, cap;
	size_t piece_start, piece_end;
	size_t stop_at;   /* 1-based event number at which the callback stops the scan; 0 never */
	bool reference;   /* fed one byte at a time */
} run;

#define STOP_VALUE 7

static uint64_t hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Is "@" + domain (case-insensitive) in the window of n bytes at p? */
static bool has_at_domain(const char *p, size_t n, const char *domain)
{
	size_t d = strlen(domain);

	for (size_t i = 0; i + 1 + d <= n; i++) {
		if (p[i] == '@' && strncasecmp(p + i + 1, domain, d) == 0)
			return true;
	}
	return false;
}

static void check_event(const run *r, const smtpscan_event *e)
{
	char again[MTASTS_DOMAIN_MAX];

	if (e->cmd != SMTP_CMD_MAIL && e->cmd != SMTP_CMD_RCPT && e->cmd != SMTP_CMD_DATA &&
	    e->cmd != SMTP_CMD_BDAT)
		abort();
	if (!memchr(e->domain, '\0', sizeof(e->domain)))
		abort();
	if (e->cmd != SMTP_CMD_RCPT) {
		if (e->rcpt != 0 || e->domain[0])
			abort();
		return;
	}
	if (e->rcpt == SMTPSCAN_RCPT_DOMAIN && r->reference) {
		size_t from = r->piece_end > SMTPSCAN_LINE_MAX + 8 ? r->piece_end - SMTPSCAN_LINE_MAX - 8 : 0;
		if (mtasts_domain_normalize(e->domain, again) != MTASTS_OK ||
		    strcmp(again, e->domain) != 0 ||
		    !has_at_domain(r->stream + from, r->piece_end - from, e->domain))
			abort();
	} else if (e->rcpt == SMTPSCAN_RCPT_DOMAIN) {
		if (mtasts_domain_normalize(e->domain, again) != MTASTS_OK || strcmp(again, e->domain) != 0)
			abort();
	} else if ((e->rcpt != SMTPSCAN_RCPT_NONE && e->rcpt != SMTPSCAN_RCPT_BAD) || e->domain[0]) {
		abort();
	}
}

static int record(void *ctx, const smtpscan_event *e)
{
	run *r = ctx;
	event_rec *rec;

	check_event(r, e);
	if (r->n == r->cap)
		abort();   /* more events than lines: one command line reported twice */
	rec = &r->ev[r->n++];
	rec->at = r->piece_end - 1;
	rec->piece = r->piece_start;
	rec->cmd = e->cmd;
	rec->rcpt = e->rcpt;
	rec->domain = hash(e->domain, strlen(e->domain));
	return r->stop_at && r->n == r->stop_at ? STOP_VALUE : 0;
}

static void same_state(const smtpscan *a, const smtpscan *b)
{
	size_t kept = a->len < SMTPSCAN_LINE_MAX ? a->len : SMTPSCAN_LINE_MAX;

	if (a->mode != b->mode || a->len != b->len || a->reported != b->reported ||
	    a->body != b->body || a->body_started != b->body_started ||
	    a->bdat_left != b->bdat_left || memcmp(a->head, b->head, kept) != 0)
		abort();
}

/* Feed the stream to a fresh state one byte at a time, in pieces of sizes drawn from *seed, or
 * whole (seed NULL). Returns what smtpscan_feed returned last. */
static int feed(run *r, smtpscan *s, uint64_t *seed, bool one_byte, bool callback)
{
	size_t off = 0;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	r->n = 0;
	while (off < r->size && rc == 0) {
		size_t n = r->size - off;
		if (one_byte) {
			n = 1;
		} else if (seed) {
			uint64_t x = next_rand(seed);
			size_t max = (x & 3) == 0 ? 2 : (x & 3) == 1 ? 9 : (x & 3) == 2 ? 300 : 5000;
			n = 1 + (size_t)((x >> 8) % max);
			if (n > r->size - off)
				n = r->size - off;
		}
		r->piece_start = off;
		r->piece_end = off + n;
		rc = smtpscan_feed(s, r->stream + off, n, callback ? record : NULL, r);
		off += n;
	}
	return rc;
}

/* The events of r must be those of ref, each in the piece that holds the reference's byte. */
static void same_events(const run *ref, const run *r, size_t count)
{
	if (r->n != count)
		abort();
	for (size_t i = 0; i < count; i++) {
		const event_rec *a = &ref->ev[i], *b = &r->ev[i];
		if (a->cmd != b->cmd || a->rcpt != b->rcpt || a->domain != b->domain ||
		    a->at < b->piece || a->at > b->at)
			abort();
	}
}

/* The command a line (its first SMTPSCAN_LINE_MAX bytes) is: after blanks, one of the four
 * words (any case) and a blank, ':', CR or LF. *word: offset of the word. */
static int line_command(const char *p, size_t len, size_t *word)
{
	size_t kept = len < SMTPSCAN_LINE_MAX ? len : SMTPSCAN_LINE_MAX, off = 0;
	char d;

	while (off < kept && (p[off] == ' ' || p[off] == '\t'))
		off++;
	*word = off;
	if (kept - off < 5)
		return 0;
	p += off;
	d = p[4];
	if (d != ' ' && d != '\t' && d != ':' && d != '\r' && d != '\n')
		return 0;
	if (strncasecmp(p, "MAIL", 4) == 0)
		return SMTP_CMD_MAIL;
	if (strncasecmp(p, "RCPT", 4) == 0)
		return SMTP_CMD_RCPT;
	if (strncasecmp(p, "DATA", 4) == 0)
		return SMTP_CMD_DATA;
	if (strncasecmp(p, "BDAT", 4) == 0)
		return SMTP_CMD_BDAT;
	return 0;
}

/* The chunk size of a BDAT line; 0 when unreadable (then it is no chunk). */
static uint64_t bdat_size(const char *p, size_t len)
{
	size_t kept = len < SMTPSCAN_LINE_MAX ? len : SMTPSCAN_LINE_MAX, i = 0;
	uint64_t size = 0;
	int digits = 0;

	while (i < kept && (p[i] == ' ' || p[i] == '\t'))
		i++;
	for (i += 4; i < kept && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	for (; i < kept && p[i] >= '0' && p[i] <= '9' && digits < 19; i++, digits++)
		size = size * 10 + (uint64_t)(p[i] - '0');
	return digits > 0 && digits < 19 ? size : 0;
}

/* The first line after DATA says no message follows (the server refused DATA). */
static bool no_message(const char *p, size_t len)
{
	static const char *const words[] = { "RSET", "QUIT", "NOOP", "MAIL", "EHLO", "HELO" };

	if (len < 5 || (p[4] != ' ' && p[4] != '\r' && p[4] != '\n'))
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strncasecmp(p, words[i], 4) == 0)
			return true;
	}
	return false;
}

/*
 * A second, line-by-line reading of the whole stream (the reference events must be exactly
 * the commands it finds): command lines; after a DATA line the message up to a line "." (CRLF
 * or LF), unless its first line is a command that says no message follows; after a BDAT line
 * with a size, that many bytes. MAIL, DATA and BDAT are reported at the word's fifth byte;
 * RCPT anywhere from there to the end of its line, surely once the line ended or exceeded
 * what the scanner keeps.
 */
static void check_model(const run *ref)
{
	enum { COMMANDS, FIRST, MESSAGE } mode = COMMANDS;
	const char *s = ref->stream;
	size_t pos = 0, k = 0;

	while (pos < ref->size) {
		const char *nl = memchr(s + pos, '\n', ref->size - pos);
		size_t end = nl ? (size_t)(nl - s) + 1 : ref->size, len = end - pos, word;
		int cmd;

		if (mode == FIRST)
			mode = no_message(s + pos, len) ? COMMANDS : MESSAGE;
		if (mode == MESSAGE) {
			if ((len == 2 && memcmp(s + pos, ".\n", 2) == 0) ||
			    (len == 3 && memcmp(s + pos, ".\r\n", 3) == 0))
				mode = COMMANDS;
			if (k < ref->n && ref->ev[k].at < end)
				abort();   /* an event inside the message */
			pos = end;
			continue;
		}
		cmd = line_command(s + pos, len, &word);
		size_t first = pos + word + 4;
		size_t last = cmd != SMTP_CMD_RCPT ? first :
		              len >= SMTPSCAN_LINE_MAX ? pos + SMTPSCAN_LINE_MAX - 1 : end - 1;
		bool due = cmd && (cmd != SMTP_CMD_RCPT || nl || len >= SMTPSCAN_LINE_MAX);
		bool here = k < ref->n && ref->ev[k].at < end;
		if (here && (ref->ev[k].cmd != cmd || ref->ev[k].at < first || ref->ev[k].at > last))
			abort();
		if (due && !here)
			abort();
		if (here)
			k++;
		if (k < ref->n && ref->ev[k].at < end)
			abort();   /* two events in one line */
		if (nl && cmd == SMTP_CMD_DATA) {
			mode = FIRST;
		} else if (nl && cmd == SMTP_CMD_BDAT) {
			uint64_t chunk = bdat_size(s + pos, len);
			end += chunk < ref->size - end ? (size_t)chunk : ref->size - end;
			if (k < ref->n && ref->ev[k].at < end)
				abort();   /* an event inside a chunk */
		}
		pos = end;
	}
	if (k != ref->n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t lines = 1;
	run ref = { .stream = (const char *)data, .size = size, .reference = true }, r;
	smtpscan ref_state, s;
	uint64_t seed = hash(data, size) | 1;
	int rc;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	ref.cap = lines;
	ref.ev = malloc(2 * lines * sizeof(event_rec));
	if (!ref.ev)
		return 0;
	r = ref;
	r.ev = ref.ev + lines;
	r.reference = false;

	if (feed(&ref, &ref_state, NULL, true, true) != 0)
		abort();
	check_model(&ref);

	if (feed(&r, &s, NULL, false, true) != 0)   /* whole */
		abort();
	same_events(&ref, &r, ref.n);
	same_state(&ref_state, &s);

	if (feed(&r, &s, &seed, false, true) != 0)   /* random pieces */
		abort();
	same_events(&ref, &r, ref.n);
	same_state(&ref_state, &s);

	if (feed(&r, &s, &seed, false, false) != 0 || r.n != 0)   /* no callback */
		abort();
	same_state(&ref_state, &s);

	if (ref.n) {   /* stop at the k-th event */
		r.stop_at = 1 + (size_t)(next_rand(&seed) % ref.n);
		rc = feed(&r, &s, &seed, false, true);
		if (rc != STOP_VALUE)
			abort();
		same_events(&ref, &r, r.stop_at);
	}
	free(ref.ev);
	return 0;
}
