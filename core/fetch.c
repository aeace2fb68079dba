/*
 * fetch.c - the HTTPS GET of the MTA-STS policy (RFC 8461 §3.2, §3.3, §7.1) with libcurl.
 *
 * One easy handle per call, nothing shared between calls (no connection reuse, no cookies, no
 * HTTP cache, no conditional request). The transfer is locked down: https only, no redirects
 * (a 3xx is a failure), status 200 only, text/plain media type, a body cap of
 * MTASTS_POLICY_BODY_MAX bytes enforced while receiving (chunked bodies too, and an announced
 * Content-Length over the cap aborts before the body), TLS >= 1.2 with peer and host name
 * verification, a total timeout, no proxy taken from the environment, sockets opened O_CLOEXEC.
 * Every failure is classified by its RFC 8460 result type; the body is not parsed here.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mtasts/fetch.h"
#include "mtasts/policy.h"

#define FETCH_DEFAULT_TIMEOUT 60L
#define FETCH_USER_AGENT "mtasts-shim/" MTASTS_VERSION

/* ---- global init ------------------------------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init_once(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

mtasts_status mtasts_fetch_global_init(void)
{
	pthread_once(&global_once, global_init_once);
	return global_rc == CURLE_OK ? MTASTS_OK : MTASTS_ERR_INTERNAL;
}

/* ---- media type (RFC 9110 §8.3.1: type "/" subtype *( OWS ";" OWS parameter )) ----------- */

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Match a case-insensitive token exactly (followed by a non-tchar); advance *p past it. */
static bool eat_token(const char **p, const char *token)
{
	size_t n = strlen(token);
	if (strncasecmp(*p, token, n) != 0 || is_tchar((unsigned char)(*p)[n]))
		return false;
	*p += n;
	return true;
}

int mtasts_media_type_is_text_plain(const char *content_type)
{
	const char *p = content_type;
	if (!p)
		return 0;
	while (is_ows(*p))
		p++;
	if (!eat_token(&p, "text") || *p != '/')
		return 0;
	p++;
	if (!eat_token(&p, "plain"))
		return 0;
	while (is_ows(*p))
		p++;
	/* Parameters (charset included) are ignored: the body is read as UTF-8 whatever they say. */
	return *p == '\0' || *p == ';';
}

/* ---- transfer state and callbacks -------------------------------------------------------- */

typedef struct fetch_state {
	CURL *curl;
	char *buf;
	size_t len;
	size_t cap;            /* allocated */
	bool too_large;        /* body (or announced length) over MTASTS_POLICY_BODY_MAX */
	bool bad_status;       /* body of a non-200 response: transfer aborted */
	long status_seen;
} fetch_state;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	fetch_state *st = userdata;
	size_t n = size * nmemb;
	long code = 0;

	if (curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code != 200) {
		/* Nothing of a non-200 response is used: stop reading it. */
		st->bad_status = true;
		st->status_seen = code;
		return 0;
	}
	if (n > MTASTS_POLICY_BODY_MAX - st->len) {
		st->too_large = true;
		return 0;
	}
	if (st->len + n + 1 > st->cap) {
		size_t want = st->cap ? st->cap : 4096;
		while (want < st->len + n + 1)
			want *= 2;
		if (want > MTASTS_POLICY_BODY_MAX + 1)
			want = MTASTS_POLICY_BODY_MAX + 1;
		char *nb = realloc(st->buf, want);
		if (!nb)
			return 0;   /* reported as a write error with buf intact */
		st->buf = nb;
		st->cap = want;
	}
	memcpy(st->buf + st->len, data, n);
	st->len += n;
	st->buf[st->len] = '\0';
	return n;
}

/* Headers: reject an announced Content-Length over the cap before any body byte arrives. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	fetch_state *st = userdata;
	size_t n = size * nmemb;
	static const char name[] = "content-length:";
	size_t nl = sizeof(name) - 1;

	if (n > nl && strncasecmp(data, name, nl) == 0) {
		size_t i = nl;
		unsigned long long v = 0;
		bool digits = false;
		while (i < n && is_ows(data[i]))
			i++;
		while (i < n && data[i] >= '0' && data[i] <= '9') {
			digits = true;
			if (v > MTASTS_POLICY_BODY_MAX)
				break;   /* already too large; stop before overflow */
			v = v * 10 + (unsigned)(data[i] - '0');
			i++;
		}
		if (digits && v > MTASTS_POLICY_BODY_MAX) {
			long code = 0;
			curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &code);
			if (code == 200) {
				st->too_large = true;
				return 0;
			}
		}
	}
	return n;
}

/* Every socket libcurl opens is close-on-exec from the start (no window before fcntl). */
static curl_socket_t open_socket_cloexec(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *address)
{
	(void)clientp;
	(void)purpose;
	int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/*
 * OpenSSL's own host check in addition to libcurl's: libcurl falls back to the subject CN when a
 * certificate has no DNS SAN, RFC 8461 §3.3 wants DNS-ID only and no partial-label wildcards.
 */
static CURLcode ssl_ctx_setup(CURL *curl, void *sslctx, void *userdata)
{
	(void)curl;
	const char *host = userdata;
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param((SSL_CTX *)sslctx);
	if (!param || !X509_VERIFY_PARAM_set1_host(param, host, 0))
		return CURLE_SSL_CERTPROBLEM;
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
	                                       X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return CURLE_OK;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* A normalised A-label domain: LDH labels separated by single dots, 1..253 octets. */
static bool domain_ok(const char *d, size_t *len_out)
{
	size_t n = strlen(d);
	if (n && d[n - 1] == '.')
		n--;   /* a trailing root dot is tolerated and dropped */
	if (n == 0 || n > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	if (label == 0)
		return false;
	*len_out = n;
	return true;
}

static void set_reason(mtasts_fetch_result *out, mtasts_result result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_reason(mtasts_fetch_result *out, mtasts_result result, const char *fmt, ...)
{
	va_list ap;
	out->result = result;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

/* TLS and certificate failures: the policy host could not be authenticated (sts-webpki-invalid). */
static bool is_webpki_error(CURLcode rc, const char *errbuf)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:   /* == CURLE_SSL_CACERT since 7.62 */
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
		return true;
	case CURLE_SSL_CONNECT_ERROR:
		/* A handshake failure caused by the certificate (e.g. the server's chain rejected). */
		return strcasestr(errbuf, "certificate") != NULL || strcasestr(errbuf, "verify") != NULL;
	default:
		return false;
	}
}

void mtasts_fetch_result_clear(mtasts_fetch_result *result)
{
	if (!result)
		return;
	free(result->body);
	memset(result, 0, sizeof(*result));
}

/* ---- the fetch --------------------------------------------------------------------------- */

#define SETOPT(opt, val)                                                    \
	do {                                                                    \
		CURLcode setopt_rc_ = curl_easy_setopt(st.curl, (opt), (val));      \
		if (setopt_rc_ != CURLE_OK) {                                       \
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR,           \
			           "curl option %s: %s", #opt,                          \
			           curl_easy_strerror(setopt_rc_));                     \
			status = MTASTS_ERR_INTERNAL;                                   \
			goto out;                                                       \
		}                                                                   \
	} while (0)

mtasts_status mtasts_fetch_policy(const char *domain, const mtasts_fetch_options *options,
                                  mtasts_fetch_result *out)
{
	mtasts_status status = MTASTS_ERR_FETCH;
	fetch_state st = { 0 };
	struct curl_slist *resolve = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char host[300], url[400], pin[400];
	size_t dlen = 0;
	long timeout;
	const char *ct = NULL;

	if (!out)
		return MTASTS_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	out->result = MTASTS_RESULT_STS_POLICY_FETCH_ERROR;
	if (!domain || !domain_ok(domain, &dlen)) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "invalid policy domain");
		return MTASTS_ERR_INVALID_ARG;
	}
	status = mtasts_fetch_global_init();
	if (status) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "curl_global_init failed");
		return status;
	}
	status = MTASTS_ERR_FETCH;

	timeout = options && options->timeout_sec > 0 ? options->timeout_sec : FETCH_DEFAULT_TIMEOUT;
	snprintf(host, sizeof(host), "mta-sts.%.*s", (int)dlen, domain);
	snprintf(url, sizeof(url), "https://%s/.well-known/mta-sts.txt", host);

	st.curl = curl_easy_init();
	if (!st.curl) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "curl_easy_init failed");
		status = MTASTS_ERR_NOMEM;
		goto out;
	}
	SETOPT(CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_HTTPGET, 1L);
	SETOPT(CURLOPT_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_MAXREDIRS, 0L);
	SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (options && options->ca_file && *options->ca_file) {
		/* The given file is the whole trust store: drop the built-in CA directory too. */
		SETOPT(CURLOPT_CAINFO, options->ca_file);
		SETOPT(CURLOPT_CAPATH, (char *)NULL);
	}
	SETOPT(CURLOPT_TIMEOUT, timeout);
	SETOPT(CURLOPT_CONNECTTIMEOUT, timeout);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	/* "" disables proxies, including those named by the environment (http_proxy, ...). */
	SETOPT(CURLOPT_PROXY, options && options->proxy ? options->proxy : "");
	SETOPT(CURLOPT_NOPROXY, "");
	SETOPT(CURLOPT_USERAGENT, FETCH_USER_AGENT);
	SETOPT(CURLOPT_FORBID_REUSE, 1L);
	SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MTASTS_POLICY_BODY_MAX);
	SETOPT(CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(CURLOPT_WRITEDATA, &st);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(CURLOPT_HEADERDATA, &st);
	SETOPT(CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_setup);
	SETOPT(CURLOPT_SSL_CTX_DATA, (void *)host);
	SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket_cloexec);
	SETOPT(CURLOPT_OPENSOCKETDATA, (void *)NULL);
	if (options && options->resolve_addr && *options->resolve_addr) {
		const char *a = options->resolve_addr;
		if (strlen(a) > 64 || strpbrk(a, ", \t\r\n[]")) {
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "invalid resolve address");
			status = MTASTS_ERR_INVALID_ARG;
			goto out;
		}
		if (strchr(a, ':'))
			snprintf(pin, sizeof(pin), "%s:443:[%s]", host, a);
		else
			snprintf(pin, sizeof(pin), "%s:443:%s", host, a);
		resolve = curl_slist_append(NULL, pin);
		if (!resolve) {
			status = MTASTS_ERR_NOMEM;
			goto out;
		}
		SETOPT(CURLOPT_RESOLVE, resolve);
	}

	CURLcode rc = curl_easy_perform(st.curl);
	long code = 0;
	curl_easy_getinfo(st.curl, CURLINFO_RESPONSE_CODE, &code);
	out->http_status = code;
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);

	if (st.bad_status || (code != 0 && code != 200)) {
		if (code >= 300 && code < 400)
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR,
			           "HTTP %ld redirect not followed", code);
		else
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "HTTP status %ld", code);
		goto out;
	}
	if (st.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR,
		           "policy body larger than %u bytes", MTASTS_POLICY_BODY_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		if (is_webpki_error(rc, errbuf))
			set_reason(out, MTASTS_RESULT_STS_WEBPKI_INVALID, "TLS: %s", why);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "timeout after %ld s: %s",
			           timeout, why);
		else if (rc == CURLE_WRITE_ERROR)
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "out of memory");
		else
			set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "%s", why);
		goto out;
	}
	if (curl_easy_getinfo(st.curl, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK || !ct) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_INVALID, "no Content-Type (want text/plain)");
		goto out;
	}
	if (!mtasts_media_type_is_text_plain(ct)) {
		set_reason(out, MTASTS_RESULT_STS_POLICY_INVALID,
		           "Content-Type \"%.80s\" is not text/plain", ct);
		goto out;
	}
	if (!st.buf) {
		st.buf = malloc(1);
		if (!st.buf) {
			status = MTASTS_ERR_NOMEM;
			goto out;
		}
		st.buf[0] = '\0';
	}
	out->body = st.buf;
	out->len = st.len;
	st.buf = NULL;
	out->result = MTASTS_RESULT_SUCCESS;
	out->reason[0] = '\0';
	status = MTASTS_OK;
out:
	if (status != MTASTS_OK && out->reason[0] == '\0')
		set_reason(out, MTASTS_RESULT_STS_POLICY_FETCH_ERROR, "%s", mtasts_strerror(status));
	if (st.curl)
		curl_easy_cleanup(st.curl);
	curl_slist_free_all(resolve);
	free(st.buf);
	return status;
}
