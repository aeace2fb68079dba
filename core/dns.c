/*
 * dns.c - the DNS lookups of discovery with c-ares (1.18 API): the `_mta-sts` TXT RRset
 * (RFC 8461 §3.1: CNAME chains followed, the character-strings of one record joined with
 * nothing) and the A/AAAA addresses of the policy host.
 *
 * The answer is walked here, not by c-ares's parsers, so that only RRs owned by the final name
 * of the CNAME chain count; the walk is bounded (RR count, CNAME hops, rdata lengths) because the
 * answer is hostile input. Outcomes: an RRset (MTASTS_OK), no such name or no such data
 * (MTASTS_ERR_NOT_FOUND), or a temporary failure (SERVFAIL, REFUSED, timeout, unreachable
 * server: MTASTS_ERR_DNS_TEMP). Sockets are opened close-on-exec through c-ares's socket
 * function table, and the query loop is poll(2) driven with an overall deadline.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <ares.h>

#include "mtasts/dns.h"

#define DNS_DEFAULT_TIMEOUT_MS 5000L
#define DNS_TRIES 2
#define DNS_MAX_ANSWERS 256       /* RRs looked at in one answer section */
#define DNS_MAX_CNAME_HOPS 8

struct mtasts_dns {
	ares_channel channel;
	long timeout_ms;
};

/* ---- sockets: close-on-exec from creation ------------------------------------------------ */

static ares_socket_t sock_open(int domain, int type, int protocol, void *user)
{
	(void)user;
	/* With its socket functions replaced, c-ares 1.18 does not configure the socket itself
	 * (measured: no fcntl at all): it must be non-blocking here or a read loop blocks. */
	int fd = socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
	if (fd < 0)
		return ARES_SOCKET_BAD;
	if (type == SOCK_STREAM) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

static int sock_close(ares_socket_t fd, void *user)
{
	(void)user;
	return close(fd);
}

static int sock_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len, void *user)
{
	(void)user;
	return connect(fd, sa, len);
}

static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
                                  struct sockaddr *from, ares_socklen_t *fromlen, void *user)
{
	(void)user;
	return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov, int iovcnt, void *user)
{
	(void)user;
	return writev(fd, iov, iovcnt);
}

static const struct ares_socket_functions cloexec_socket_functions = {
	.asocket = sock_open,
	.aclose = sock_close,
	.aconnect = sock_connect,
	.arecvfrom = sock_recvfrom,
	.asendv = sock_sendv,
};

/* ---- channel ----------------------------------------------------------------------------- */

mtasts_status mtasts_dns_new(const char *servers, long timeout_ms, mtasts_dns **out)
{
	mtasts_status status = MTASTS_OK;
	mtasts_dns *dns = NULL;
	struct ares_options opts;
	int rc;

	if (!out)
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		return MTASTS_ERR_INTERNAL;
	dns = calloc(1, sizeof(*dns));
	if (!dns) {
		status = MTASTS_ERR_NOMEM;
		goto out;
	}
	dns->timeout_ms = timeout_ms > 0 ? timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	memset(&opts, 0, sizeof(opts));
	opts.timeout = (int)(dns->timeout_ms > 600000 ? 600000 : dns->timeout_ms);
	opts.tries = DNS_TRIES;
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	rc = ares_init_options(&dns->channel, &opts,
	                       ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		dns->channel = NULL;
		status = rc == ARES_ENOMEM ? MTASTS_ERR_NOMEM : MTASTS_ERR_INTERNAL;
		goto out;
	}
	ares_set_socket_functions(dns->channel, &cloexec_socket_functions, NULL);
	if (servers && *servers) {
		rc = ares_set_servers_ports_csv(dns->channel, servers);
		if (rc != ARES_SUCCESS) {
			status = rc == ARES_ENOMEM ? MTASTS_ERR_NOMEM : MTASTS_ERR_INVALID_ARG;
			goto out;
		}
	}
	*out = dns;
	dns = NULL;
out:
	if (dns) {
		if (dns->channel)
			ares_destroy(dns->channel);
		free(dns);
		ares_library_cleanup();
	} else if (status) {
		ares_library_cleanup();
	}
	return status;
}

void mtasts_dns_destroy(mtasts_dns **dns)
{
	if (!dns || !*dns)
		return;
	ares_destroy((*dns)->channel);
	free(*dns);
	*dns = NULL;
	ares_library_cleanup();
}

void mtasts_strv_clear(mtasts_strv *strv)
{
	if (!strv)
		return;
	for (size_t i = 0; i < strv->n; i++)
		free(strv->v[i]);
	free(strv->v);
	free(strv->len);
	strv->v = NULL;
	strv->len = NULL;
	strv->n = 0;
}

static mtasts_status strv_push(mtasts_strv *strv, const char *data, size_t len)
{
	char **nv = realloc(strv->v, (strv->n + 1) * sizeof(*nv));
	if (!nv)
		return MTASTS_ERR_NOMEM;
	strv->v = nv;
	size_t *nl = realloc(strv->len, (strv->n + 1) * sizeof(*nl));
	if (!nl)
		return MTASTS_ERR_NOMEM;
	strv->len = nl;
	char *s = malloc(len + 1);
	if (!s)
		return MTASTS_ERR_NOMEM;
	if (len)
		memcpy(s, data, len);
	s[len] = '\0';
	strv->v[strv->n] = s;
	strv->len[strv->n] = len;
	strv->n++;
	return MTASTS_OK;
}

/* ---- the query loop ---------------------------------------------------------------------- */

typedef struct query {
	bool done;
	int ares_status;
	unsigned char *answer;   /* copy of the raw answer */
	int answer_len;
} query;

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	query *q = arg;
	(void)timeouts;
	q->done = true;
	q->ares_status = status;
	if (status == ARES_SUCCESS && abuf && alen > 0) {
		q->answer = malloc((size_t)alen);
		if (q->answer) {
			memcpy(q->answer, abuf, (size_t)alen);
			q->answer_len = alen;
		} else {
			q->ares_status = ARES_ENOMEM;
		}
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the channel until every query in qs is done, or the overall deadline cancels them. */
static mtasts_status run_queries(mtasts_dns *dns, query *qs, size_t nq)
{
	/* c-ares doubles the per-try timeout after each round: bound the whole thing anyway. */
	int64_t deadline = now_ms() + dns->timeout_ms * (1 << DNS_TRIES) + 500;

	for (;;) {
		bool all = true;
		for (size_t i = 0; i < nq; i++)
			all = all && qs[i].done;
		if (all)
			return MTASTS_OK;

		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		int bits = ares_getsock(dns->channel, socks, ARES_GETSOCK_MAXNUM);
		nfds_t npfd = 0;
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;
			if (ARES_GETSOCK_READABLE(bits, i))
				ev |= POLLIN;
			if (ARES_GETSOCK_WRITABLE(bits, i))
				ev |= POLLOUT;
			if (!ev)
				continue;
			pfd[npfd].fd = socks[i];
			pfd[npfd].events = ev;
			pfd[npfd].revents = 0;
			npfd++;
		}

		int64_t left = deadline - now_ms();
		if (left <= 0) {
			ares_cancel(dns->channel);   /* callbacks run with ARES_ECANCELLED */
			continue;
		}
		struct timeval maxtv = { .tv_sec = (time_t)(left / 1000),
		                         .tv_usec = (suseconds_t)(left % 1000) * 1000 };
		struct timeval tv;
		struct timeval *tvp = ares_timeout(dns->channel, &maxtv, &tv);
		int wait_ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);

		int n = poll(pfd, npfd, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ares_cancel(dns->channel);
			return MTASTS_ERR_INTERNAL;
		}
		if (n == 0) {
			ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* timeouts */
			continue;
		}
		for (nfds_t i = 0; i < npfd; i++) {
			short re = pfd[i].revents;
			if (!re)
				continue;
			ares_socket_t r = (re & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
			ares_socket_t w = (re & (POLLOUT | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
			ares_process_fd(dns->channel, r, w);
		}
	}
}

static mtasts_status map_ares_status(int st)
{
	switch (st) {
	case ARES_SUCCESS:
		return MTASTS_OK;
	case ARES_ENODATA:      /* NOERROR, no answer */
	case ARES_ENOTFOUND:    /* NXDOMAIN */
		return MTASTS_ERR_NOT_FOUND;
	case ARES_ENOMEM:
		return MTASTS_ERR_NOMEM;
	case ARES_EBADNAME:
		return MTASTS_ERR_INVALID_ARG;
	default:                /* ESERVFAIL, EREFUSED, ETIMEOUT, ECONNREFUSED, EFORMERR, ... */
		return MTASTS_ERR_DNS_TEMP;
	}
}

/* ---- answer walking ---------------------------------------------------------------------- */

typedef struct rr {
	char *owner;                 /* from ares_expand_name */
	int type;
	const unsigned char *rdata;  /* inside the answer buffer */
	size_t rdlen;
} rr;

static void rrs_free(rr *rrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ares_free_string(rrs[i].owner);
}

/* Read the answer section's IN-class RRs into rrs (at most DNS_MAX_ANSWERS). */
static mtasts_status walk_answer(const unsigned char *abuf, int alen, rr *rrs, size_t *nrr)
{
	*nrr = 0;
	if (alen < NS_HFIXEDSZ)
		return MTASTS_ERR_DNS_TEMP;
	unsigned qd = (unsigned)(abuf[4] << 8 | abuf[5]);
	unsigned an = (unsigned)(abuf[6] << 8 | abuf[7]);
	const unsigned char *p = abuf + NS_HFIXEDSZ, *end = abuf + alen;

	for (unsigned i = 0; i < qd; i++) {
		char *name = NULL;
		long enc = 0;
		if (ares_expand_name(p, abuf, alen, &name, &enc) != ARES_SUCCESS)
			return MTASTS_ERR_DNS_TEMP;
		ares_free_string(name);
		if (enc <= 0 || end - p < enc + NS_QFIXEDSZ)
			return MTASTS_ERR_DNS_TEMP;
		p += enc + NS_QFIXEDSZ;
	}
	if (an > DNS_MAX_ANSWERS)
		return MTASTS_ERR_DNS_TEMP;   /* never examine part of an RRset: it could hide a record */
	for (unsigned i = 0; i < an; i++) {
		char *name = NULL;
		long enc = 0;
		if (ares_expand_name(p, abuf, alen, &name, &enc) != ARES_SUCCESS)
			return MTASTS_ERR_DNS_TEMP;
		if (enc <= 0 || end - p < enc + NS_RRFIXEDSZ) {
			ares_free_string(name);
			return MTASTS_ERR_DNS_TEMP;
		}
		p += enc;
		int type = p[0] << 8 | p[1];
		int klass = p[2] << 8 | p[3];
		size_t rdlen = (size_t)(p[8] << 8 | p[9]);
		p += NS_RRFIXEDSZ;
		if ((size_t)(end - p) < rdlen) {
			ares_free_string(name);
			return MTASTS_ERR_DNS_TEMP;
		}
		if (klass != ns_c_in) {
			ares_free_string(name);
		} else {
			rrs[*nrr].owner = name;
			rrs[*nrr].type = type;
			rrs[*nrr].rdata = p;
			rrs[*nrr].rdlen = rdlen;
			(*nrr)++;
		}
		p += rdlen;
	}
	return MTASTS_OK;
}

/* Names as ares_expand_name prints them: compare case-insensitively, ignoring a final dot. */
static bool same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/*
 * Follow the CNAME chain from qname inside the answer; *final points at the owner name whose
 * RRs count (qname itself, or a CNAME target owned by abuf's parsed names).
 */
static mtasts_status follow_cnames(const unsigned char *abuf, int alen, const rr *rrs, size_t nrr,
                                   const char *qname, char **final)
{
	char *cur = strdup(qname);
	if (!cur)
		return MTASTS_ERR_NOMEM;
	for (int hop = 0;; hop++) {
		const rr *cname = NULL;
		for (size_t i = 0; i < nrr && !cname; i++)
			if (rrs[i].type == ns_t_cname && same_name(rrs[i].owner, cur))
				cname = &rrs[i];
		if (!cname)
			break;
		if (hop >= DNS_MAX_CNAME_HOPS) {
			free(cur);
			return MTASTS_ERR_DNS_TEMP;   /* a loop or an absurd chain: not a usable answer */
		}
		char *target = NULL;
		long enc = 0;
		if (ares_expand_name(cname->rdata, abuf, alen, &target, &enc) != ARES_SUCCESS ||
		    (size_t)enc > cname->rdlen) {
			ares_free_string(target);
			free(cur);
			return MTASTS_ERR_DNS_TEMP;
		}
		free(cur);
		cur = strdup(target);
		ares_free_string(target);
		if (!cur)
			return MTASTS_ERR_NOMEM;
	}
	*final = cur;
	return MTASTS_OK;
}

/* Join the character-strings of one TXT RR with nothing; every length byte is bounds checked. */
static mtasts_status txt_join(const rr *r, mtasts_strv *out)
{
	mtasts_status status;
	char *buf = malloc(r->rdlen + 1);
	size_t len = 0, i = 0;
	if (!buf)
		return MTASTS_ERR_NOMEM;
	while (i < r->rdlen) {
		size_t n = r->rdata[i++];
		if (n > r->rdlen - i) {
			free(buf);
			return MTASTS_ERR_DNS_TEMP;   /* a string that runs past its RR: malformed */
		}
		memcpy(buf + len, r->rdata + i, n);
		len += n;
		i += n;
	}
	status = strv_push(out, buf, len);
	free(buf);
	return status;
}

static mtasts_status addr_text(const rr *r, mtasts_strv *out)
{
	char text[INET6_ADDRSTRLEN];
	int af = r->type == ns_t_a ? AF_INET : AF_INET6;
	size_t want = r->type == ns_t_a ? 4 : 16;
	if (r->rdlen != want)
		return MTASTS_ERR_DNS_TEMP;
	if (!inet_ntop(af, r->rdata, text, sizeof(text)))
		return MTASTS_ERR_INTERNAL;
	return strv_push(out, text, strlen(text));
}

/* Collect the RRs of type from the answer that the final name of qname's CNAME chain owns. */
static mtasts_status collect(const query *q, const char *qname, int type, mtasts_strv *out)
{
	mtasts_status status = MTASTS_OK;
	rr *rrs = calloc(DNS_MAX_ANSWERS, sizeof(*rrs));
	size_t nrr = 0, found = 0;
	char *final = NULL;

	if (!rrs)
		return MTASTS_ERR_NOMEM;
	status = walk_answer(q->answer, q->answer_len, rrs, &nrr);
	if (status)
		goto out;
	status = follow_cnames(q->answer, q->answer_len, rrs, nrr, qname, &final);
	if (status)
		goto out;
	for (size_t i = 0; i < nrr; i++) {
		if (rrs[i].type != type || !same_name(rrs[i].owner, final))
			continue;
		status = type == ns_t_txt ? txt_join(&rrs[i], out) : addr_text(&rrs[i], out);
		if (status)
			goto out;
		found++;
	}
	if (!found)
		status = MTASTS_ERR_NOT_FOUND;   /* NOERROR with only a CNAME chain, or other data */
out:
	free(final);
	rrs_free(rrs, nrr);
	free(rrs);
	return status;
}

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	return n > 0 && n <= 254;
}

/* Strip one trailing dot so the comparison name matches ares_expand_name's form. */
static mtasts_status plain_name(const char *name, char **out)
{
	size_t n = strlen(name);
	if (n > 1 && name[n - 1] == '.')
		n--;
	*out = strndup(name, n);
	return *out ? MTASTS_OK : MTASTS_ERR_NOMEM;
}

mtasts_status mtasts_dns_txt(mtasts_dns *dns, const char *name, mtasts_strv *out)
{
	mtasts_status status;
	query q = { 0 };
	char *qname = NULL;

	if (!dns || !out || !name_ok(name))
		return MTASTS_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	status = plain_name(name, &qname);
	if (status)
		goto out;
	ares_query(dns->channel, qname, ns_c_in, ns_t_txt, on_answer, &q);
	status = run_queries(dns, &q, 1);
	if (status)
		goto out;
	status = map_ares_status(q.ares_status);
	if (status)
		goto out;
	status = collect(&q, qname, ns_t_txt, out);
out:
	if (status)
		mtasts_strv_clear(out);
	free(q.answer);
	free(qname);
	return status;
}

mtasts_status mtasts_dns_addrs(mtasts_dns *dns, const char *name, mtasts_strv *out)
{
	mtasts_status status, s4, s6;
	query q[2] = { { 0 }, { 0 } };
	char *qname = NULL;

	if (!dns || !out || !name_ok(name))
		return MTASTS_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	status = plain_name(name, &qname);
	if (status)
		goto out;
	ares_query(dns->channel, qname, ns_c_in, ns_t_a, on_answer, &q[0]);
	ares_query(dns->channel, qname, ns_c_in, ns_t_aaaa, on_answer, &q[1]);
	status = run_queries(dns, q, 2);
	if (status)
		goto out;
	s4 = map_ares_status(q[0].ares_status);
	if (!s4)
		s4 = collect(&q[0], qname, ns_t_a, out);
	s6 = map_ares_status(q[1].ares_status);
	if (!s6)
		s6 = collect(&q[1], qname, ns_t_aaaa, out);
	if (out->n > 0)
		status = MTASTS_OK;   /* one family answering is enough */
	else if (s4 == MTASTS_ERR_NOMEM || s6 == MTASTS_ERR_NOMEM)
		status = MTASTS_ERR_NOMEM;
	else if (s4 == MTASTS_ERR_NOT_FOUND && s6 == MTASTS_ERR_NOT_FOUND)
		status = MTASTS_ERR_NOT_FOUND;
	else
		status = s4 != MTASTS_ERR_NOT_FOUND ? s4 : s6;
out:
	if (status)
		mtasts_strv_clear(out);
	free(q[0].answer);
	free(q[1].answer);
	free(qname);
	return status;
}
