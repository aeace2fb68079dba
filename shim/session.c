/*
 * session.c - enforcement decisions for one SMTP connection (DESIGN.md §1-§2).
 *
 * A connection carries candidate (policy domain D, MX host H) pairs: every pair the DNS table
 * links to its peer address. A candidate "blocks" when D's effective policy is enforce and not
 * everything holds on this connection: H matches the policy's mx patterns, TLS is up and the
 * chain verified for H. Then:
 *   - connect/TFO is refused when every candidate blocks on its mx pattern alone;
 *   - a completed handshake is failed when every candidate blocks after verification;
 *   - MAIL/DATA/BDAT are refused when every candidate blocks; RCPT TO:<x@D> is refused when
 *     D's candidates all block. A RCPT domain that is not a candidate is judged against the
 *     connection's MX hosts with its own policy (several domains share MX hosts).
 * `testing` candidates never block; their violations are recorded for the session log.
 * Locking: details of a slot change under shim_lock(); functions that take the lock themselves
 * (dnsobs, acquire, verifier creation) are never called with it held.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "acquire.h"
#include "mtasts/log.h"
#include "mtasts/verify.h"
#include "report.h"
#include "session.h"
#include "shim.h"
#include "smtpscan.h"
#include "verdict.h"

static mtasts_verifier *verifier;
static bool verifier_failed;
/* The trust store as it was just before the verifier loaded it: a verdict is memoised only while
 * the store is still that one (a process never reloads its verifier). */
static verdict_trust verifier_trust;
static bool verifier_trust_known;

/* Recent TLS verdicts that failed a connection, so that the MTA's cleartext retry to the same
 * host is reported with the real cause (FACTS.md Exim 5). Under shim_lock(). */
#define TLS_FAILURES 16
#define TLS_FAILURE_MEMORY 600
typedef struct tls_failure {
	time_t at;
	dnsobs_addr addr;
	char host[MTASTS_DOMAIN_MAX];
	int result;
	char reason[96];
} tls_failure;
static tls_failure tls_failures[TLS_FAILURES];

static void remember_tls_failure(const conn *c, const conn_cand *cand)
{
	size_t victim = 0;

	for (size_t i = 0; i < TLS_FAILURES; i++) {
		if (tls_failures[i].at < tls_failures[victim].at)
			victim = i;
	}
	tls_failures[victim].at = time(NULL);
	tls_failures[victim].addr = c->addr;
	memcpy(tls_failures[victim].host, cand->host, MTASTS_DOMAIN_MAX);
	tls_failures[victim].result = cand->tls_result;
	memcpy(tls_failures[victim].reason, cand->tls_reason, sizeof(tls_failures[victim].reason));
}

static const tls_failure *recent_tls_failure(const conn *c, const conn_cand *cand)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < TLS_FAILURES; i++) {
		const tls_failure *f = &tls_failures[i];
		if (f->at && now - f->at < TLS_FAILURE_MEMORY && now >= f->at &&
		    memcmp(&f->addr, &c->addr, sizeof(f->addr)) == 0 && strcmp(f->host, cand->host) == 0)
			return f;
	}
	return NULL;
}

/* ---- candidates ----------------------------------------------------------------------------- */

/* snprintf(to, size, "%s", from) without the formatting machinery (connect-time path). */
static void copy_text(char *to, size_t size, const char *from)
{
	size_t n = strnlen(from, size - 1);

	memcpy(to, from, n);
	to[n] = '\0';
}

static void fill_cand(conn_cand *cand, const char *domain, const char *host,
                      const shim_policy_view *view)
{
	memset(cand, 0, sizeof(*cand));
	copy_text(cand->domain, sizeof(cand->domain), domain);
	copy_text(cand->host, sizeof(cand->host), host);
	cand->tls_result = -1;
	copy_text(cand->id, sizeof(cand->id), view->id);
	copy_text(cand->why_absent, sizeof(cand->why_absent), view->why);
	if (view->presence == SHIM_POLICY_UNREADABLE) {
		cand->present = cand->unreadable = true;
		cand->mode = MTASTS_MODE_ENFORCE;
		cand->mx_ok = false;
		return;
	}
	cand->present = view->presence == SHIM_POLICY_PRESENT && view->policy;
	cand->mode = cand->present ? view->policy->mode : MTASTS_MODE_NONE;
	/* an RCPT-only candidate has no MX host to check: the pattern test cannot fail it */
	cand->mx_ok = !cand->present || !host[0] || mtasts_policy_allows_mx(view->policy, host);
}

static bool in_scope(const conn_cand *cand)
{
	return cand->present && cand->mode != MTASTS_MODE_NONE;
}

/* Does this candidate's policy fail on this connection (as things stand)? */
static bool cand_fails(const conn *c, const conn_cand *cand)
{
	if (!in_scope(cand))
		return false;
	return !(cand->mx_ok && atomic_load(&c->tls) == TLS_UP && cand->host[0] &&
	         cand->tls_result == MTASTS_RESULT_SUCCESS);
}

static bool cand_blocks(const conn *c, const conn_cand *cand)
{
	return cand->mode == MTASTS_MODE_ENFORCE && cand_fails(c, cand);
}

static bool all_block(const conn *c)
{
	if (c->ncand == 0)
		return false;
	for (int i = 0; i < c->ncand; i++) {
		if (!cand_blocks(c, &c->cand[i]))
			return false;
	}
	return true;
}

static bool any_guarded(const conn *c)
{
	if (c->lazy)
		return true;
	for (int i = 0; i < c->ncand; i++) {
		if (in_scope(&c->cand[i]))
			return true;
	}
	/* MX hosts shared with domains not seen yet: RCPT TO may name one of those */
	return c->ncand > 0;
}

/* The RFC 8460 result and a reason for a failing candidate. */
static void cand_failure(const conn *c, const conn_cand *cand, int *result, char *reason,
                         size_t reason_len)
{
	if (cand->unreadable) {
		*result = MTASTS_RESULT_VALIDATION_FAILURE;
		snprintf(reason, reason_len, "%s", cand->why_absent);
	} else if (!cand->mx_ok) {
		*result = MTASTS_RESULT_VALIDATION_FAILURE;
		snprintf(reason, reason_len, "mx-mismatch: %s is not in the policy of %s", cand->host,
		         cand->domain);
	} else if (cand->tls_result > 0) {
		*result = cand->tls_result;
		snprintf(reason, reason_len, "%s", cand->tls_reason);
	} else if (atomic_load(&c->tls) == TLS_NONE && !c->tls_attempted) {
		const tls_failure *f = cand->host[0] ? recent_tls_failure(c, cand) : NULL;
		if (f) {
			*result = f->result;
			snprintf(reason, reason_len, "cleartext retry after failed TLS: %s", f->reason);
		} else {
			*result = MTASTS_RESULT_STARTTLS_NOT_SUPPORTED;
			snprintf(reason, reason_len, "transaction command without TLS");
		}
	} else if (atomic_load(&c->tls) == TLS_NONE) {
		*result = MTASTS_RESULT_VALIDATION_FAILURE;
		snprintf(reason, reason_len, "TLS handshake failed");
	} else {
		*result = MTASTS_RESULT_VALIDATION_FAILURE;
		snprintf(reason, reason_len, "no MX host known for %s: certificate not verifiable",
		         cand->domain);
	}
}

/* Remember the first violation of the session (enforce first, then testing). */
static void note_violations(conn *c)
{
	if (c->result != MTASTS_RESULT_SUCCESS)
		return;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < c->ncand; i++) {
			const conn_cand *cand = &c->cand[i];
			if (!cand_fails(c, cand) ||
			    cand->mode != (pass == 0 ? MTASTS_MODE_ENFORCE : MTASTS_MODE_TESTING))
				continue;
			cand_failure(c, cand, &c->result, c->reason, sizeof(c->reason));
			return;
		}
	}
}

/* ---- the session log ------------------------------------------------------------------------ */

/* The peer address as text, made when first needed (the log), not at connect. */
static void set_ip(conn *c)
{
	if (c->ip[0] || !c->addr.family)
		return;
	if (!inet_ntop(c->addr.family, c->addr.bytes, c->ip, sizeof(c->ip)))
		snprintf(c->ip, sizeof(c->ip), "?");
}

static const conn_cand *decisive(const conn *c)
{
	static const mtasts_mode order[] = { MTASTS_MODE_ENFORCE, MTASTS_MODE_TESTING };

	for (size_t k = 0; k < 2; k++) {
		for (int i = 0; i < c->ncand; i++) {
			if (in_scope(&c->cand[i]) && c->cand[i].mode == order[k] && cand_fails(c, &c->cand[i]))
				return &c->cand[i];
		}
	}
	for (size_t k = 0; k < 2; k++) {
		for (int i = 0; i < c->ncand; i++) {
			if (in_scope(&c->cand[i]) && c->cand[i].mode == order[k])
				return &c->cand[i];
		}
	}
	for (int i = 0; i < c->ncand; i++) {
		if (c->cand[i].present)
			return &c->cand[i];
	}
	return c->ncand ? &c->cand[0] : NULL;
}

/* Caller holds the lock. */
static void log_session(conn *c)
{
	const conn_cand *d;
	shim_session_facts f;
	char reason[CONN_REASON_MAX + 100];

	if (c->logged || c->alias)
		return;
	c->logged = true;
	note_violations(c);
	d = decisive(c);
	f.domain = d ? d->domain : "-";
	f.mx = d && d->host[0] ? d->host : "-";
	set_ip(c);
	f.ip = c->ip[0] ? c->ip : "-";
	f.policy = d && d->present ? mtasts_mode_name(d->mode) : "absent";
	f.policy_id = d ? d->id : "";
	f.blocked = atomic_load(&c->blocked);
	f.result = f.blocked || c->result != MTASTS_RESULT_SUCCESS ? (mtasts_result)c->result :
	           MTASTS_RESULT_SUCCESS;
	if (c->reason[0])
		snprintf(reason, sizeof(reason), "%s", c->reason);
	else if (!d)
		snprintf(reason, sizeof(reason), "no MX lookup seen for this address");
	else if (!d->present && d->why_absent[0])
		snprintf(reason, sizeof(reason), "%s", d->why_absent);
	else
		reason[0] = '\0';
	f.reason = reason;
	shim_report_session(&f);
}

/* ---- opening ------------------------------------------------------------------------------- */

/* Build a slot's candidates from the DNS table and the cache (lock not held). */
static int gather(const dnsobs_addr *addr, conn_cand *out, bool wait)
{
	dnsobs_pair pairs[CONN_MAX_CAND];
	size_t n = dnsobs_candidates(addr, pairs, CONN_MAX_CAND);

	for (size_t i = 0; i < n; i++) {
		shim_policy_view view;
		shim_policy_acquire(pairs[i].domain, wait, &view);
		fill_cand(&out[i], pairs[i].domain, pairs[i].host, &view);
		shim_policy_view_clear(&view);
	}
	return (int)n;
}

bool session_open(int fd, const struct sockaddr *sa, socklen_t len)
{
	conn_cand cands[CONN_MAX_CAND];   /* about 5 KiB */
	dnsobs_addr addr;
	unsigned short port;
	conn *c;
	bool refuse = false;
	int n;

	if (!dnsobs_from_sockaddr(sa, len, &addr, &port))
		return false;
	c = conn_slot(fd, true);
	if (c && atomic_load(&c->kind) == KIND_SMTP && c->port == port &&
	    memcmp(&c->addr, &addr, sizeof(addr)) == 0)
		return atomic_load(&c->blocked) != 0;   /* a repeated connect(): same verdict */
	if (c && atomic_load(&c->kind) != KIND_UNKNOWN)
		session_finish(fd);
	if (!shim_port_is_smtp(port)) {
		if (c)
			atomic_store_explicit(&c->kind, KIND_OTHER, memory_order_release);
		return false;
	}
	n = gather(&addr, cands, true);
	if (!c) {
		/* beyond the table: fail closed when an enforce domain may be involved */
		for (int i = 0; i < n; i++)
			refuse |= cands[i].present && cands[i].mode == MTASTS_MODE_ENFORCE;
		if (refuse)
			shim_log(MTASTS_LOG_WARNING, "fd %d is beyond the shim's table: connection refused", fd);
		return refuse;
	}
	shim_lock();
	conn_clear(c);
	c->addr = addr;
	c->port = port;
	c->ncand = n;
	memcpy(c->cand, cands, sizeof(cands[0]) * (size_t)n);
	refuse = n > 0;
	for (int i = 0; i < n; i++)
		refuse &= c->cand[i].present && c->cand[i].mode == MTASTS_MODE_ENFORCE && !c->cand[i].mx_ok;
	atomic_store(&c->guard, any_guarded(c));
	atomic_store_explicit(&c->kind, KIND_SMTP, memory_order_release);
	if (refuse) {
		atomic_store(&c->blocked, 1);
		log_session(c);
	}
	shim_unlock();
	return refuse;
}

/* A write on an fd never seen opened: classify it once (lock not held). */
static int classify(int fd, conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	dnsobs_addr addr;
	unsigned short port;
	int type = 0;
	socklen_t tlen = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM ||
	    getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    !dnsobs_from_sockaddr(&ss, len, &addr, &port) || !shim_port_is_smtp(port)) {
		atomic_store_explicit(&c->kind, KIND_OTHER, memory_order_release);
		return KIND_OTHER;
	}
	(void)session_open(fd, (struct sockaddr *)&ss, len);
	shim_lock();
	if (atomic_load(&c->kind) == KIND_SMTP && c->ncand == 0) {
		c->lazy = true;
		atomic_store(&c->guard, 1);
	}
	shim_unlock();
	return KIND_SMTP;
}

/* ---- the write guard ------------------------------------------------------------------------ */

static void block_now(int fd, conn *c, const char *what)
{
	atomic_store(&c->blocked, 1);
	note_violations(c);
	if (c->result == MTASTS_RESULT_SUCCESS) {
		c->result = MTASTS_RESULT_VALIDATION_FAILURE;
		snprintf(c->reason, sizeof(c->reason), "%s", what);
	}
	log_session(c);
	shutdown(fd, SHUT_RDWR);
}

/* Do all of domain's candidates block? -1: domain is not a candidate. Lock held. */
static int domain_all_block(const conn *c, const char *domain)
{
	int seen = 0;

	for (int i = 0; i < c->ncand; i++) {
		if (strcmp(c->cand[i].domain, domain) != 0)
			continue;
		seen = 1;
		if (!cand_blocks(c, &c->cand[i]))
			return 0;
	}
	return seen ? 1 : -1;
}

static bool any_blocks(const conn *c)
{
	for (int i = 0; i < c->ncand; i++) {
		if (cand_blocks(c, &c->cand[i]))
			return true;
	}
	return false;
}

/*
 * Is RCPT TO a domain refused? A candidate domain: when all its candidates block. Another one:
 * its own policy judged with each of the connection's MX hosts (several domains share MX
 * hosts) or, on a lazily classified connection, without a host; refused when it blocks with
 * every one of them. The new candidates are kept while there is room; the verdict does not
 * depend on the room. Lock not held: the policy lookup may wait for a fetch.
 */
static bool rcpt_refused(conn *c, const char *domain)
{
	char hosts[CONN_MAX_CAND][MTASTS_DOMAIN_MAX];
	int nhosts = 0, verdict;
	bool lazy, refuse = true;
	shim_policy_view view;

	shim_lock();
	verdict = domain_all_block(c, domain);
	for (int i = 0; i < c->ncand; i++) {
		if (strcmp(c->cand[i].domain, domain) == 0)
			c->cand[i].rcpt_seen = true;
	}
	lazy = c->lazy;
	for (int i = 0; i < c->ncand && verdict < 0; i++) {
		bool dup = false;
		for (int j = 0; j < nhosts; j++)
			dup |= strcmp(hosts[j], c->cand[i].host) == 0;
		if (!dup && c->cand[i].host[0])
			memcpy(hosts[nhosts++], c->cand[i].host, MTASTS_DOMAIN_MAX);
	}
	shim_unlock();
	if (verdict >= 0)
		return verdict == 1;
	if (!lazy && nhosts == 0)
		return false;   /* not guarded: nothing links this address to any MX lookup */
	shim_policy_acquire(domain, true, &view);
	shim_lock();
	for (int h = 0; h < (nhosts ? nhosts : 1); h++) {
		conn_cand cand;
		fill_cand(&cand, domain, nhosts ? hosts[h] : "", &view);
		cand.rcpt_seen = true;
		/* the certificate was judged for the host already, whoever asked */
		for (int i = 0; i < c->ncand && nhosts; i++) {
			if (strcmp(c->cand[i].host, hosts[h]) == 0 && c->cand[i].tls_result >= 0) {
				cand.tls_result = c->cand[i].tls_result;
				memcpy(cand.tls_reason, c->cand[i].tls_reason, sizeof(cand.tls_reason));
				break;
			}
		}
		if (cand.tls_result < 0 && atomic_load(&c->tls) == TLS_UP && in_scope(&cand)) {
			cand.tls_result = MTASTS_RESULT_VALIDATION_FAILURE;
			snprintf(cand.tls_reason, sizeof(cand.tls_reason), "certificate not checked for %s",
			         nhosts ? hosts[h] : domain);
		}
		refuse &= cand_blocks(c, &cand);
		if (c->ncand < CONN_MAX_CAND)
			c->cand[c->ncand++] = cand;
	}
	shim_unlock();
	shim_policy_view_clear(&view);
	return refuse;
}

typedef struct guard_ctx {
	conn *c;
	const char *what;
	int commands;
} guard_ctx;

/* One command of the stream (smtpscan_fn): non-zero refuses the whole write. */
static int judge_command(void *arg, const smtpscan_event *ev)
{
	guard_ctx *g = arg;
	conn *c = g->c;
	bool refuse = false;

	g->commands++;
	if (ev->cmd == SMTP_CMD_RCPT && ev->rcpt == SMTPSCAN_RCPT_DOMAIN) {
		if (rcpt_refused(c, ev->domain))
			g->what = "RCPT TO an enforce domain refused";
		return g->what != NULL;
	}
	shim_lock();
	switch (ev->cmd) {
	case SMTP_CMD_RCPT:
		/* no domain (<postmaster>, a literal) carries no policy; an unreadable one might */
		if (ev->rcpt == SMTPSCAN_RCPT_BAD && (c->lazy || any_blocks(c))) {
			refuse = true;
			g->what = "RCPT TO an unreadable domain refused";
		}
		break;
	case SMTP_CMD_MAIL:
		if (all_block(c)) {
			refuse = true;
			g->what = "transaction command refused";
		}
		break;
	default:   /* DATA, BDAT: also after a recipient whose domain blocks (pipelined) */
		refuse = all_block(c);
		for (int i = 0; i < c->ncand && !refuse; i++)
			refuse = c->cand[i].rcpt_seen && domain_all_block(c, c->cand[i].domain) == 1;
		if (refuse)
			g->what = "message data refused";
		break;
	}
	shim_unlock();
	return refuse;
}

int session_guard(int fd, const struct iovec *iov, int iovcnt, bool tls_plaintext,
                  smtpscan *next)
{
	conn *c = conn_slot(fd, true);
	guard_ctx g = { c, NULL, 0 };
	int kind, stop = 0;

	if (!c)
		return 0;
	kind = atomic_load_explicit(&c->kind, memory_order_acquire);
	if (kind == KIND_UNKNOWN && !tls_plaintext)
		kind = classify(fd, c);
	if (kind != KIND_SMTP || !atomic_load(&c->guard))
		return 0;
	if (!tls_plaintext && atomic_load(&c->tls) == TLS_UP)
		return 0;   /* TLS records */
	if (atomic_load(&c->blocked)) {
		errno = ECONNRESET;   /* never reaches the peer; no SIGPIPE from the shut socket */
		return -1;
	}
	*next = c->scan;
	for (int i = 0; i < iovcnt && !stop; i++)
		stop = smtpscan_feed(next, iov[i].iov_base, iov[i].iov_len, judge_command, &g);
	if (!g.commands)
		return 1;   /* message data, EHLO, STARTTLS...: no lock */
	shim_lock();
	if (stop)
		block_now(fd, c, g.what ? g.what : "transaction command refused");
	else
		note_violations(c);
	shim_unlock();
	if (stop) {
		errno = ECONNRESET;
		return -1;
	}
	return 1;
}

void session_written(int fd, const struct iovec *iov, int iovcnt, const smtpscan *next,
                     long long written)
{
	conn *c = conn_slot(fd, false);
	long long total = 0;

	if (!c || written <= 0)
		return;
	for (int i = 0; i < iovcnt; i++)
		total += (long long)iov[i].iov_len;
	if (written >= total) {
		c->scan = *next;
		return;
	}
	/* a short write: the stream advanced by what left, the rest comes again */
	for (int i = 0; i < iovcnt && written > 0; i++) {
		size_t n = (long long)iov[i].iov_len < written ? iov[i].iov_len : (size_t)written;
		smtpscan_feed(&c->scan, iov[i].iov_base, n, NULL, NULL);
		written -= (long long)n;
	}
}

/* ---- closing, dup --------------------------------------------------------------------------- */

void session_finish(int fd)
{
	conn *c = conn_slot(fd, false);
	int other = KIND_OTHER;

	if (!c || atomic_load(&c->kind) == KIND_UNKNOWN)
		return;
	/* not a connection: nothing to log, nothing but the kind to clear, no lock (close() may be
	 * called from a signal handler) */
	if (atomic_compare_exchange_strong(&c->kind, &other, KIND_UNKNOWN))
		return;
	shim_lock();
	if (atomic_load(&c->kind) == KIND_SMTP)
		log_session(c);
	conn_clear(c);
	shim_unlock();
}

void session_dup(int oldfd, int newfd)
{
	conn *from = conn_slot(oldfd, false), *to;

	if (oldfd == newfd)
		return;
	session_finish(newfd);
	if (!from || atomic_load(&from->kind) == KIND_UNKNOWN)
		return;
	to = conn_slot(newfd, true);
	if (!to)
		return;
	shim_lock();
	conn_copy(to, from);
	shim_unlock();
}

/* ---- TLS ------------------------------------------------------------------------------------ */

static conn *smtp_conn(int fd)
{
	conn *c = conn_slot(fd, false);
	return c && atomic_load(&c->kind) == KIND_SMTP ? c : NULL;
}

bool session_tls_start(int fd, char host[MTASTS_DOMAIN_MAX])
{
	conn *c = conn_slot(fd, true);
	const conn_cand *pick = NULL;

	host[0] = '\0';
	if (c && atomic_load_explicit(&c->kind, memory_order_acquire) == KIND_UNKNOWN)
		classify(fd, c);
	c = smtp_conn(fd);
	if (!c)
		return false;
	memset(&c->scan, 0, sizeof(c->scan));   /* the SMTP session starts over inside TLS */
	shim_lock();
	c->tls_attempted = true;
	for (int k = 0; k < 3 && !pick; k++) {
		for (int i = 0; i < c->ncand && !pick; i++) {
			const conn_cand *cand = &c->cand[i];
			if (!cand->host[0])
				continue;
			if ((k == 0 && in_scope(cand) && cand->mode == MTASTS_MODE_ENFORCE) ||
			    (k == 1 && in_scope(cand)) || k == 2)
				pick = cand;
		}
	}
	if (pick)
		memcpy(host, pick->host, MTASTS_DOMAIN_MAX);
	shim_unlock();
	return true;
}

bool session_tls_wanted(int fd)
{
	conn *c = smtp_conn(fd);
	bool wanted = false;

	if (!c)
		return false;
	shim_lock();
	for (int i = 0; i < c->ncand; i++)
		wanted |= in_scope(&c->cand[i]) && c->cand[i].host[0];
	shim_unlock();
	return wanted;
}

static mtasts_verifier *get_verifier(verdict_trust *trust, bool *trust_known)
{
	mtasts_verifier *v;

	shim_lock();
	if (!verifier && !verifier_failed) {
		verifier_trust_known = verdict_trust_now(shim_cfg.ca_file, &verifier_trust);
		mtasts_status status = mtasts_verifier_new(shim_cfg.ca_file, &verifier);
		if (status) {
			verifier_failed = true;
			shim_log(MTASTS_LOG_ERROR, "trust store %s: %s",
			         shim_cfg.ca_file ? shim_cfg.ca_file : "(system default)",
			         mtasts_strerror(status));
		}
	}
	v = verifier;
	*trust = verifier_trust;
	*trust_known = verifier_trust_known;
	shim_unlock();
	return v;
}

/* The verifier for one handshake's checks, fetched on the first full check only. */
typedef struct verify_ctx {
	mtasts_verifier *v;
	bool tried;
	verdict_trust built_from;   /* the trust store the verifier loaded */
	bool built_known;
} verify_ctx;

/*
 * Verify the chain for host: a success remembered for exactly this host, chain and trust store
 * (verdict.c) stands in for the check until its end; otherwise the full check, and a success is
 * remembered when the store is still the one the verifier loaded. Failures are never remembered.
 */
static int verify_host(const char *host, const unsigned char *const *chain, const size_t *lens,
                       size_t n, const verdict_trust *trust, bool trust_known, time_t now,
                       verify_ctx *vc, char *reason, size_t reason_len)
{
	verdict_key key;
	time_t not_after = 0;
	int result;

	if (trust_known) {
		verdict_key_make(host, chain, lens, n, trust, &key);
		if (verdict_lookup(&key, host, now, shim_cfg.cache_dir)) {
			snprintf(reason, reason_len, "X509_V_OK");
			return MTASTS_RESULT_SUCCESS;
		}
	}
	if (!vc->tried) {
		vc->v = get_verifier(&vc->built_from, &vc->built_known);
		vc->tried = true;
	}
	if (!vc->v) {
		snprintf(reason, reason_len, "trust store unusable");
		return MTASTS_RESULT_VALIDATION_FAILURE;
	}
	result = mtasts_verify_chain_der_until(vc->v, chain, lens, n, host, 0, reason, reason_len,
	                                       &not_after);
	if (result == MTASTS_RESULT_SUCCESS && trust_known && vc->built_known &&
	    verdict_trust_equal(&vc->built_from, trust))
		verdict_store(&key, host, now, not_after, shim_cfg.cache_dir);
	return result;
}

int session_tls_done(int fd, bool version_ok, const unsigned char *const *chain,
                     const size_t *lens, size_t n, const char *chain_error)
{
	char hosts[CONN_MAX_CAND][MTASTS_DOMAIN_MAX];
	int results[CONN_MAX_CAND];
	char reasons[CONN_MAX_CAND][96];
	int nhosts = 0, rc = 0;
	conn *c = smtp_conn(fd);
	verify_ctx vc = { 0 };
	bool trust_known = false;
	verdict_trust trust;
	time_t now = time(NULL);

	if (!c)
		return 0;
	shim_lock();
	for (int i = 0; i < c->ncand; i++) {
		bool dup = false;
		if (!in_scope(&c->cand[i]) || !c->cand[i].host[0])
			continue;
		for (int j = 0; j < nhosts; j++)
			dup |= strcmp(hosts[j], c->cand[i].host) == 0;
		if (!dup)
			memcpy(hosts[nhosts++], c->cand[i].host, MTASTS_DOMAIN_MAX);
	}
	shim_unlock();
	if (nhosts && version_ok && !chain_error)
		trust_known = verdict_trust_now(shim_cfg.ca_file, &trust);
	for (int h = 0; h < nhosts; h++) {
		reasons[h][0] = '\0';
		if (!version_ok) {
			results[h] = MTASTS_RESULT_VALIDATION_FAILURE;
			snprintf(reasons[h], sizeof(reasons[h]), "TLS version below 1.2");
		} else if (chain_error) {
			results[h] = MTASTS_RESULT_VALIDATION_FAILURE;
			snprintf(reasons[h], sizeof(reasons[h]), "%s", chain_error);
		} else {
			results[h] = verify_host(hosts[h], chain, lens, n, &trust, trust_known, now, &vc,
			                         reasons[h], sizeof(reasons[h]));
		}
	}
	shim_lock();
	atomic_store(&c->tls, TLS_UP);
	for (int i = 0; i < c->ncand; i++) {
		for (int h = 0; h < nhosts; h++) {
			if (strcmp(c->cand[i].host, hosts[h]) == 0) {
				c->cand[i].tls_result = results[h];
				snprintf(c->cand[i].tls_reason, sizeof(c->cand[i].tls_reason), "%s", reasons[h]);
			}
		}
	}
	if (all_block(c)) {
		atomic_store(&c->tls, TLS_FAILED);
		atomic_store(&c->blocked, 1);
		for (int i = 0; i < c->ncand; i++) {
			if (c->cand[i].tls_result > 0)
				remember_tls_failure(c, &c->cand[i]);
		}
		log_session(c);
		rc = -1;
	}
	shim_unlock();
	return rc;
}

void session_tls_unjudged(int fd)
{
	conn *c = smtp_conn(fd);
	int none = TLS_NONE;

	/* its records must not be read as commands; no candidate counts it as verified */
	if (c)
		atomic_compare_exchange_strong(&c->tls, &none, TLS_UP);
}

void session_tls_error(int fd)
{
	conn *c = smtp_conn(fd);

	if (!c)
		return;
	shim_lock();
	c->tls_attempted = true;
	shim_unlock();
}
