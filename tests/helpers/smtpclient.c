/*
 * smtpclient.c - a small opportunistic SMTP client ("test MTA") for the end-to-end tests and the
 * benchmark. It behaves like a typical OpenSSL-linked MTA so that the shim's OpenSSL path can be
 * proven on something other than Exim:
 *   - MX lookup with res_search(domain, C_IN, T_MX), implicit MX when there is none, then
 *     res_search(host, C_IN, T_AAAA) and res_search(host, C_IN, T_A) for every MX host;
 *   - a plain non-blocking connect() to port 25 (or --port);
 *   - EHLO, STARTTLS when offered, SSL_connect with NO certificate verification and no SNI;
 *   - when the handshake fails, a retry in clear on a new connection (like Exim's
 *     tls_tempfail_tryclear), which is exactly what an enforcing shim has to stop;
 *   - MAIL FROM / RCPT TO / DATA / QUIT.
 * Usage: smtpclient [--port N] [--count N] [--from ADDR] [--timeout SEC] RCPT_ADDRESS
 * Exit status: 0 every message delivered, 75 temporary failure (connect/write/TLS error or 4xx on
 * every MX), 69 permanent 5xx reply, 64 usage. One line per attempt on stdout says what happened.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_MX 16
#define MAX_ADDRS 16
#define LINE_MAX_LEN 1024
#define EX_DELIVERED 0
#define EX_USAGE_ERR 64
#define EX_PERM 69
#define EX_TEMP 75

struct mx {
	int pref;
	char host[NS_MAXDNAME];
};

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[INET6_ADDRSTRLEN];
};

/* One SMTP connection: the socket, the TLS session once started, a bounded read buffer. */
struct conn {
	int fd;
	SSL *ssl;
	char buf[4096];
	size_t have;
};

struct options {
	int port;
	int count;
	int timeout;
	const char *from;
	const char *rcpt;
	const char *domain;
};

/* Outcome of one session attempt. */
enum result { R_DELIVERED, R_TEMP, R_PERM, R_TLS_FAILED };

static SSL_CTX *tls_ctx;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("smtpclient: ", stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

static int cmp_mx(const void *a, const void *b)
{
	return ((const struct mx *)a)->pref - ((const struct mx *)b)->pref;
}

/* MX records of domain, sorted; the implicit MX (the domain itself) when there are none. */
static int lookup_mx(const char *domain, struct mx *mx, int max)
{
	unsigned char answer[NS_PACKETSZ * 4];
	ns_msg msg;
	ns_rr rr;
	int len, n = 0, i;

	len = res_search(domain, C_IN, T_MX, answer, sizeof(answer));
	if (len < 0) {
		if (h_errno == NO_DATA) {
			snprintf(mx[0].host, sizeof(mx[0].host), "%s", domain);
			mx[0].pref = 0;
			say("no MX for %s: implicit MX %s", domain, domain);
			return 1;
		}
		say("MX lookup for %s failed: %s", domain, hstrerror(h_errno));
		return h_errno == HOST_NOT_FOUND ? -2 : -1;
	}
	if (len > (int)sizeof(answer))
		len = sizeof(answer);
	if (ns_initparse(answer, len, &msg) < 0)
		return -1;
	for (i = 0; i < ns_msg_count(msg, ns_s_an) && n < max; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_rdlen(rr) < 3)
			continue;
		mx[n].pref = ns_get16(ns_rr_rdata(rr));
		if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr) + 2, mx[n].host,
			      sizeof(mx[n].host)) < 0)
			continue;
		n++;
	}
	qsort(mx, n, sizeof(mx[0]), cmp_mx);
	return n;
}

/* AAAA then A records of host, appended to addrs. */
static int lookup_addrs(const char *host, int port, struct addr *addrs, int max)
{
	static const int types[2] = { T_AAAA, T_A };
	unsigned char answer[NS_PACKETSZ * 4];
	ns_msg msg;
	ns_rr rr;
	int n = 0, t, i, len;

	for (t = 0; t < 2; t++) {
		len = res_search(host, C_IN, types[t], answer, sizeof(answer));
		if (len < 0)
			continue;
		if (len > (int)sizeof(answer))
			len = sizeof(answer);
		if (ns_initparse(answer, len, &msg) < 0)
			continue;
		for (i = 0; i < ns_msg_count(msg, ns_s_an) && n < max; i++) {
			struct addr *a = &addrs[n];
			if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
				break;
			memset(a, 0, sizeof(*a));
			if (ns_rr_type(rr) == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons(port);
				memcpy(&s6->sin6_addr, ns_rr_rdata(rr), 16);
				a->len = sizeof(*s6);
				inet_ntop(AF_INET6, &s6->sin6_addr, a->text, sizeof(a->text));
			} else if (ns_rr_type(rr) == ns_t_a && ns_rr_rdlen(rr) == 4) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
				s4->sin_family = AF_INET;
				s4->sin_port = htons(port);
				memcpy(&s4->sin_addr, ns_rr_rdata(rr), 4);
				a->len = sizeof(*s4);
				inet_ntop(AF_INET, &s4->sin_addr, a->text, sizeof(a->text));
			} else {
				continue;
			}
			n++;
		}
	}
	return n;
}

/* Non-blocking connect with a deadline, then back to blocking I/O with timeouts. */
static int open_conn(const struct addr *a, int timeout)
{
	struct timeval tv = { .tv_sec = timeout, .tv_usec = 0 };
	struct pollfd pfd;
	int fd, err = 0, flags;
	socklen_t elen = sizeof(err);

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, timeout * 1000) != 1) {
			err = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err)
			goto fail;
	}
	flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
fail:
	close(fd);
	errno = err;
	return -1;
}

static void close_conn(struct conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->have = 0;
}

static int conn_write(struct conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w;
		if (c->ssl) {
			int r = SSL_write(c->ssl, data, (int)len);
			if (r <= 0)
				return -1;
			w = r;
		} else {
			w = send(c->fd, data, len, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
		}
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/* One line (without CRLF) into line; -1 on EOF/error or an over-long line. */
static int conn_getline(struct conn *c, char *line, size_t max)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->have);
		ssize_t r;
		if (nl) {
			size_t len = (size_t)(nl - c->buf);
			if (len >= max)
				return -1;
			memcpy(line, c->buf, len);
			if (len > 0 && line[len - 1] == '\r')
				len--;
			line[len] = '\0';
			c->have -= (size_t)(nl - c->buf) + 1;
			memmove(c->buf, nl + 1, c->have);
			return 0;
		}
		if (c->have == sizeof(c->buf))
			return -1;
		if (c->ssl) {
			int n = SSL_read(c->ssl, c->buf + c->have, (int)(sizeof(c->buf) - c->have));
			r = n > 0 ? n : -1;
		} else {
			r = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
		}
		if (r <= 0)
			return -1;
		c->have += (size_t)r;
	}
}

/* Read a (multi-line) reply; returns the code or -1. starttls set when a line offers it. */
static int read_reply(struct conn *c, bool *starttls)
{
	char line[LINE_MAX_LEN];
	for (;;) {
		if (conn_getline(c, line, sizeof(line)) < 0 || strlen(line) < 3)
			return -1;
		if (starttls && strncasecmp(line + 4, "STARTTLS", 8) == 0)
			*starttls = true;
		if (line[3] != '-')
			return atoi(line);
	}
}

static int command(struct conn *c, const char *cmd, bool *starttls)
{
	char out[LINE_MAX_LEN];
	int n = snprintf(out, sizeof(out), "%s\r\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(out) || conn_write(c, out, (size_t)n) < 0)
		return -1;
	return read_reply(c, starttls);
}

static enum result code_result(int code)
{
	return code >= 500 ? R_PERM : R_TEMP;
}

/* One session to one address. use_tls: try STARTTLS when offered. */
static enum result session(const struct options *o, const char *mxhost, const struct addr *a,
			   bool use_tls, int seq)
{
	struct conn c = { .fd = -1 };
	bool offered = false, tls = false;
	enum result res = R_TEMP;
	char cmd[LINE_MAX_LEN], body[2048];
	int code;
	unsigned long e;

	c.fd = open_conn(a, o->timeout);
	if (c.fd < 0) {
		say("mx=%s ip=%s connect failed: %s", mxhost, a->text, strerror(errno));
		return R_TEMP;
	}
	code = read_reply(&c, NULL);
	if (code != 220) {
		say("mx=%s ip=%s bad banner (%d)", mxhost, a->text, code);
		res = code < 0 ? R_TEMP : code_result(code);
		goto out;
	}
	code = command(&c, "EHLO client.test", &offered);
	if (code != 250) {
		say("mx=%s ip=%s EHLO failed (%d)", mxhost, a->text, code);
		goto out;
	}
	if (use_tls && offered) {
		code = command(&c, "STARTTLS", NULL);
		if (code != 220) {
			say("mx=%s ip=%s STARTTLS refused (%d)", mxhost, a->text, code);
			res = R_TLS_FAILED;
			goto out;
		}
		c.ssl = SSL_new(tls_ctx);
		if (!c.ssl || SSL_set_fd(c.ssl, c.fd) != 1 || SSL_connect(c.ssl) != 1) {
			e = ERR_get_error();
			say("mx=%s ip=%s TLS handshake failed: %s", mxhost, a->text,
			    e ? ERR_error_string(e, NULL) : strerror(errno));
			ERR_clear_error();
			res = R_TLS_FAILED;
			goto out;
		}
		tls = true;
		code = command(&c, "EHLO client.test", NULL);
		if (code != 250) {
			say("mx=%s ip=%s EHLO after STARTTLS failed (%d)", mxhost, a->text, code);
			goto out;
		}
	}
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>", o->from);
	code = command(&c, cmd, NULL);
	if (code != 250) {
		say("mx=%s ip=%s tls=%s MAIL FROM failed (%d)", mxhost, a->text, tls ? "yes" : "no", code);
		res = code < 0 ? R_TEMP : code_result(code);
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>", o->rcpt);
	code = command(&c, cmd, NULL);
	if (code != 250 && code != 251) {
		say("mx=%s ip=%s RCPT TO failed (%d)", mxhost, a->text, code);
		res = code < 0 ? R_TEMP : code_result(code);
		goto out;
	}
	code = command(&c, "DATA", NULL);
	if (code != 354) {
		say("mx=%s ip=%s DATA failed (%d)", mxhost, a->text, code);
		res = code < 0 ? R_TEMP : code_result(code);
		goto out;
	}
	snprintf(body, sizeof(body),
		 "From: <%s>\r\nTo: <%s>\r\nSubject: smtpclient test %d\r\nMessage-ID: <%ld.%d.%d@client.test>\r\n"
		 "\r\nhello from smtpclient, message %d\r\n.\r\n",
		 o->from, o->rcpt, seq, (long)time(NULL), (int)getpid(), seq, seq);
	if (conn_write(&c, body, strlen(body)) < 0 || (code = read_reply(&c, NULL)) != 250) {
		say("mx=%s ip=%s end of data failed (%d)", mxhost, a->text, code);
		res = code < 0 ? R_TEMP : code_result(code);
		goto out;
	}
	say("mx=%s ip=%s tls=%s delivered", mxhost, a->text, tls ? "yes" : "no");
	res = R_DELIVERED;
	command(&c, "QUIT", NULL);
out:
	if (c.ssl && res == R_DELIVERED)
		SSL_shutdown(c.ssl);
	close_conn(&c);
	return res;
}

/* Deliver one message: every MX in order, every address; TLS failure -> retry in clear. */
static int deliver(const struct options *o, int seq)
{
	struct mx mx[MAX_MX];
	struct addr addrs[MAX_ADDRS];
	int nmx, i, j, naddr;
	bool perm = false;

	nmx = lookup_mx(o->domain, mx, MAX_MX);
	if (nmx == -2)
		return EX_PERM;
	if (nmx <= 0)
		return EX_TEMP;
	for (i = 0; i < nmx; i++) {
		naddr = lookup_addrs(mx[i].host, o->port, addrs, MAX_ADDRS);
		if (naddr == 0)
			say("mx=%s has no address", mx[i].host);
		for (j = 0; j < naddr; j++) {
			enum result r = session(o, mx[i].host, &addrs[j], true, seq);
			if (r == R_TLS_FAILED) {
				say("mx=%s ip=%s retrying in clear", mx[i].host, addrs[j].text);
				r = session(o, mx[i].host, &addrs[j], false, seq);
			}
			if (r == R_DELIVERED)
				return EX_DELIVERED;
			if (r == R_PERM) {
				perm = true;
				break;
			}
		}
		if (perm)
			break;
	}
	return perm ? EX_PERM : EX_TEMP;
}

static void usage(void)
{
	fprintf(stderr, "usage: smtpclient [--port N] [--count N] [--from ADDR] [--timeout SEC] RCPT_ADDRESS\n");
}

int main(int argc, char **argv)
{
	struct options o = { .port = 25, .count = 1, .timeout = 10, .from = "sender@client.test" };
	struct timespec t0, t1;
	int i, rc = EX_DELIVERED, delivered = 0;
	const char *at;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			o.port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			o.count = atoi(argv[++i]);
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			o.from = argv[++i];
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			o.timeout = atoi(argv[++i]);
		else if (argv[i][0] == '-') {
			usage();
			return EX_USAGE_ERR;
		} else if (!o.rcpt)
			o.rcpt = argv[i];
		else {
			usage();
			return EX_USAGE_ERR;
		}
	}
	if (!o.rcpt || o.port <= 0 || o.port > 65535 || o.count <= 0 || o.timeout <= 0 ||
	    !(at = strrchr(o.rcpt, '@')) || !at[1] || strlen(o.rcpt) > 512 || strlen(o.from) > 512) {
		usage();
		return EX_USAGE_ERR;
	}
	o.domain = at + 1;

	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (!tls_ctx) {
		fprintf(stderr, "smtpclient: SSL_CTX_new failed\n");
		return EX_TEMP;
	}
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 1; i <= o.count; i++) {
		int r = deliver(&o, i);
		if (r == EX_DELIVERED)
			delivered++;
		else if (rc == EX_DELIVERED || r == EX_TEMP)
			rc = r;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (o.count > 1)
		say("delivered %d of %d in %.3f s", delivered, o.count,
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	SSL_CTX_free(tls_ctx);
	return rc;
}
