/*
 * tls_openssl.c - OpenSSL adapter (RHEL/Fedora Exim, Postfix, OpenSSL test MTAs):
 * SSL_connect, SSL_do_handshake, SSL_write, SSL_write_ex hooks.
 *
 * libssl is not linked: its functions are looked up at run time (dlsym RTLD_NEXT) so the shim
 * loads into programs without it; X509 DER encoding and the error queue use libcrypto, which
 * the shim links. The verdict is taken only when the handshake completes (a non-blocking
 * caller's WANT_READ/WANT_WRITE retries pass through). A failed enforce verdict returns -1 with
 * SSL_R_CERTIFICATE_VERIFY_FAILED on the error queue, so SSL_get_error reports SSL_ERROR_SSL.
 */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "shim.h"

typedef struct ssl_st SSL;

#define OSSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define OSSL_NAMETYPE_HOST 0
#define OSSL_R_CERTIFICATE_VERIFY_FAILED 134
#define OSSL_TLS1_2_VERSION 0x0303
#define OSSL_DTLS_MIN 0xfe00
#define OSSL_CHAIN_MAX 16

int SSL_connect(SSL *ssl);
int SSL_do_handshake(SSL *ssl);
int SSL_write(SSL *ssl, const void *buf, int num);
int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written);

static struct {
	int (*connect)(SSL *);
	int (*do_handshake)(SSL *);
	int (*write)(SSL *, const void *, int);
	int (*write_ex)(SSL *, const void *, size_t, size_t *);
	int (*get_fd)(const SSL *);
	int (*is_server)(const SSL *);
	long (*ctrl)(SSL *, int, long, void *);
	const char *(*servername)(const SSL *, const int);
	int (*version)(const SSL *);
	STACK_OF(X509) *(*chain)(const SSL *);
} os;
static pthread_once_t os_once = PTHREAD_ONCE_INIT;

/* The real function: RTLD_NEXT, or in the library itself when it was loaded RTLD_LOCAL. */
static void *os_sym(const char *name)
{
	/* only the OpenSSL the shim's libcrypto belongs to: X509 objects are shared with it */
	static const char *const sonames[] = { "libssl.so.3", NULL };

	return shim_real_lookup_lib(name, sonames);
}

static void os_bind(void)
{
	*(void **)&os.connect = os_sym("SSL_connect");
	*(void **)&os.do_handshake = os_sym("SSL_do_handshake");
	*(void **)&os.write = os_sym("SSL_write");
	*(void **)&os.write_ex = os_sym("SSL_write_ex");
	*(void **)&os.get_fd = os_sym("SSL_get_wfd");
	*(void **)&os.is_server = os_sym("SSL_is_server");
	*(void **)&os.ctrl = os_sym("SSL_ctrl");
	*(void **)&os.servername = os_sym("SSL_get_servername");
	*(void **)&os.version = os_sym("SSL_version");
	*(void **)&os.chain = os_sym("SSL_get_peer_cert_chain");
}

static bool os_complete(void)
{
	return os.get_fd && os.is_server && os.ctrl && os.servername && os.version && os.chain;
}

static void refuse_on_queue(void)
{
	ERR_raise_data(ERR_LIB_SSL, OSSL_R_CERTIFICATE_VERIFY_FAILED,
	               "MTA-STS: the MX certificate does not satisfy the enforce policy");
}

static int judge(SSL *ssl, int fd)
{
	const unsigned char *chain[OSSL_CHAIN_MAX];
	unsigned char *der[OSSL_CHAIN_MAX];
	size_t lens[OSSL_CHAIN_MAX];
	size_t n = 0;
	const char *chain_error = NULL;
	int version = os.version(ssl), rc;
	STACK_OF(X509) *sk = os.chain(ssl);
	int count = sk ? sk_X509_num(sk) : 0;

	if (count <= 0)
		chain_error = "peer presented no certificate";
	for (int i = 0; i < count && n < OSSL_CHAIN_MAX; i++) {
		unsigned char *buf = NULL;
		int len = i2d_X509(sk_X509_value(sk, i), &buf);
		if (len <= 0) {
			chain_error = "cannot encode the peer chain";
			break;
		}
		der[n] = buf;
		chain[n] = buf;
		lens[n] = (size_t)len;
		n++;
	}
	rc = session_tls_done(fd, version >= OSSL_TLS1_2_VERSION && version < OSSL_DTLS_MIN,
	                      chain, lens, chain_error ? 0 : n, chain_error);
	for (size_t i = 0; i < n; i++)
		OPENSSL_free(der[i]);
	return rc;
}

static int handshake(SSL *ssl, int (*real)(SSL *))
{
	char host[MTASTS_DOMAIN_MAX];
	int fd, rc, saved;

	if (!shim_engaged() || !os_complete())
		return real(ssl);
	saved = shim_enter();
	if (os.is_server(ssl) || (fd = os.get_fd(ssl)) < 0 || !session_tls_start(fd, host)) {
		shim_leave(saved);
		return real(ssl);
	}
	if (host[0] && !os.servername(ssl, OSSL_NAMETYPE_HOST))
		os.ctrl(ssl, OSSL_CTRL_SET_TLSEXT_HOSTNAME, OSSL_NAMETYPE_HOST, host);
	rc = real(ssl);
	saved = errno;
	if (rc == 1) {
		if (!session_tls_wanted(fd)) {
			session_tls_unjudged(fd);
		} else if (judge(ssl, fd) != 0) {
			refuse_on_queue();
			rc = -1;
		}
	} else if (rc == 0) {
		session_tls_error(fd);   /* shut down by the peer: fatal */
	}
	/* rc < 0: WANT_READ/WANT_WRITE retry or a fatal error; a retry completes later */
	shim_leave(saved);
	return rc;
}

int SSL_connect(SSL *ssl)
{
	pthread_once(&os_once, os_bind);
	if (!os.connect)
		return -1;
	return handshake(ssl, os.connect);
}

int SSL_do_handshake(SSL *ssl)
{
	pthread_once(&os_once, os_bind);
	if (!os.do_handshake)
		return -1;
	return handshake(ssl, os.do_handshake);
}

/* Plaintext into a session on a guarded connection: judged before, remembered after. */
typedef struct tls_write {
	int fd;
	int verdict;           /* of session_guard; 0: nothing to remember */
	struct iovec iov;
	smtpscan next;
} tls_write;

static bool write_refused(SSL *ssl, const void *buf, size_t num, tls_write *w)
{
	int saved;

	w->verdict = 0;
	if (!shim_engaged() || !os_complete())
		return false;
	w->fd = os.get_fd(ssl);
	if (w->fd < 0 || session_write_is_free(w->fd, true))
		return false;
	w->iov.iov_base = (void *)buf;
	w->iov.iov_len = num;
	saved = shim_enter();
	w->verdict = session_guard(w->fd, &w->iov, 1, true, &w->next);
	if (w->verdict < 0)
		refuse_on_queue();
	shim_leave(saved);
	return w->verdict < 0;
}

static void write_done(const tls_write *w, size_t sent)
{
	if (w->verdict > 0 && sent > 0) {
		int saved = shim_enter();
		session_written(w->fd, &w->iov, 1, &w->next, (long long)sent);
		shim_leave(saved);
	}
}

int SSL_write(SSL *ssl, const void *buf, int num)
{
	tls_write w;
	int rc;

	pthread_once(&os_once, os_bind);
	if (!os.write)
		return -1;
	if (num > 0 && write_refused(ssl, buf, (size_t)num, &w))
		return -1;
	rc = os.write(ssl, buf, num);
	if (num > 0 && rc > 0)
		write_done(&w, (size_t)rc);
	return rc;
}

int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)
{
	tls_write w;
	int rc;

	pthread_once(&os_once, os_bind);
	if (!os.write_ex)
		return 0;
	if (num > 0 && write_refused(ssl, buf, num, &w))
		return 0;
	rc = os.write_ex(ssl, buf, num, written);
	if (num > 0 && rc == 1 && written)
		write_done(&w, *written);
	return rc;
}
