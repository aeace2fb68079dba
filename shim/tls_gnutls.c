/*
 * tls_gnutls.c - GnuTLS adapter (Debian's Exim): gnutls_handshake and gnutls_record_send hooks.
 *
 * No GnuTLS header: the few types and constants are declared here, and every GnuTLS function
 * is looked up at run time (dlsym RTLD_NEXT), so the shim loads into programs without GnuTLS.
 * Before the handshake: SNI = the MX host when the MTA set none. After a successful handshake
 * (non-blocking retries pass through until it completes): TLS >= 1.2 and the peer chain (DER)
 * verified for the MX host; when the connection's enforce policy fails, the MTA gets
 * GNUTLS_E_CERTIFICATE_ERROR, a fatal handshake error.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

#include "session.h"
#include "shim.h"

typedef struct gnutls_session_int *gnutls_session_t;
typedef struct {
	unsigned char *data;
	unsigned int size;
} gnutls_datum_t;

#define GTLS_NAME_DNS 1
#define GTLS_CRT_X509 1
#define GTLS_TLS1_2 4
#define GTLS_DTLS_MIN 200
#define GTLS_E_CERTIFICATE_ERROR (-43)
#define GTLS_E_PUSH_ERROR (-53)
#define GTLS_E_INVALID_SESSION (-10)
#define GTLS_CHAIN_MAX 16

int gnutls_handshake(gnutls_session_t session);
ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t size);

static struct {
	int (*handshake)(gnutls_session_t);
	ssize_t (*record_send)(gnutls_session_t, const void *, size_t);
	void (*get_int2)(gnutls_session_t, int *, int *);
	int (*name_get)(gnutls_session_t, void *, size_t *, unsigned int *, unsigned int);
	int (*name_set)(gnutls_session_t, int, const void *, size_t);
	int (*protocol)(gnutls_session_t);
	int (*cert_type)(gnutls_session_t);
	const gnutls_datum_t *(*peers)(gnutls_session_t, unsigned int *);
	int (*is_fatal)(int);
} gt;
static pthread_once_t gt_once = PTHREAD_ONCE_INIT;

/* The real function: RTLD_NEXT, or in the library itself when it was loaded RTLD_LOCAL. */
static void *gt_sym(const char *name)
{
	static const char *const sonames[] = { "libgnutls.so.30", NULL };

	return shim_real_lookup_lib(name, sonames);
}

static void gt_bind(void)
{
	*(void **)&gt.handshake = gt_sym("gnutls_handshake");
	*(void **)&gt.record_send = gt_sym("gnutls_record_send");
	*(void **)&gt.get_int2 = gt_sym("gnutls_transport_get_int2");
	*(void **)&gt.name_get = gt_sym("gnutls_server_name_get");
	*(void **)&gt.name_set = gt_sym("gnutls_server_name_set");
	*(void **)&gt.protocol = gt_sym("gnutls_protocol_get_version");
	*(void **)&gt.cert_type = gt_sym("gnutls_certificate_type_get");
	*(void **)&gt.peers = gt_sym("gnutls_certificate_get_peers");
	*(void **)&gt.is_fatal = gt_sym("gnutls_error_is_fatal");
}

static bool gt_complete(void)
{
	return gt.get_int2 && gt.name_get && gt.name_set && gt.protocol && gt.cert_type && gt.peers &&
	       gt.is_fatal;
}

static int session_fd(gnutls_session_t session)
{
	int r = -1, w = -1;

	gt.get_int2(session, &r, &w);
	return w;
}

/* SNI = host unless the MTA named one. */
static void maybe_set_sni(gnutls_session_t session, const char *host)
{
	char name[256];
	size_t len = sizeof(name);
	unsigned int type = 0;

	if (!host[0])
		return;
	if (gt.name_get(session, name, &len, &type, 0) == 0 && len > 0)
		return;
	gt.name_set(session, GTLS_NAME_DNS, host, strlen(host));
}

static int judge(gnutls_session_t session, int fd)
{
	const unsigned char *chain[GTLS_CHAIN_MAX];
	size_t lens[GTLS_CHAIN_MAX];
	unsigned int n = 0;
	const char *chain_error = NULL;
	int version = gt.protocol(session);
	bool version_ok = version >= GTLS_TLS1_2 && version < GTLS_DTLS_MIN;
	const gnutls_datum_t *peers = NULL;

	if (gt.cert_type(session) != GTLS_CRT_X509)
		chain_error = "peer did not present an X.509 certificate";
	else if (!(peers = gt.peers(session, &n)) || n == 0)
		chain_error = "peer presented no certificate";
	if (n > GTLS_CHAIN_MAX)
		n = GTLS_CHAIN_MAX;
	for (unsigned int i = 0; i < n && peers; i++) {
		chain[i] = peers[i].data;
		lens[i] = peers[i].size;
	}
	return session_tls_done(fd, version_ok, chain, lens, chain_error ? 0 : n, chain_error);
}

int gnutls_handshake(gnutls_session_t session)
{
	char host[MTASTS_DOMAIN_MAX];
	int fd, rc, saved;

	pthread_once(&gt_once, gt_bind);
	if (!gt.handshake)
		return GTLS_E_INVALID_SESSION;
	if (!shim_engaged() || !gt_complete())
		return gt.handshake(session);
	saved = shim_enter();
	fd = session_fd(session);
	if (!session_tls_start(fd, host)) {
		shim_leave(saved);
		return gt.handshake(session);
	}
	maybe_set_sni(session, host);
	rc = gt.handshake(session);   /* inside the shim: its own writes pass straight through */
	saved = errno;
	if (rc == 0) {
		if (!session_tls_wanted(fd))
			session_tls_unjudged(fd);
		else if (judge(session, fd) != 0)
			rc = GTLS_E_CERTIFICATE_ERROR;
	} else if (gt.is_fatal(rc)) {
		session_tls_error(fd);
	}
	shim_leave(saved);
	return rc;
}

/* Plaintext into a session on a guarded connection (the slow path). */
static __attribute__((noinline)) ssize_t record_send_guarded(gnutls_session_t session, int fd,
                                                             const void *data, size_t size)
{
	struct iovec iov = { (void *)data, size };
	smtpscan next;
	int saved = shim_enter();
	int verdict = session_guard(fd, &iov, 1, true, &next);
	ssize_t rc;

	shim_leave(saved);
	if (verdict < 0)
		return GTLS_E_PUSH_ERROR;
	rc = gt.record_send(session, data, size);
	if (verdict > 0 && rc > 0) {
		saved = shim_enter();
		session_written(fd, &iov, 1, &next, (long long)rc);
		shim_leave(saved);
	}
	return rc;
}

ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t size)
{
	int fd;

	pthread_once(&gt_once, gt_bind);
	if (!gt.record_send)
		return GTLS_E_INVALID_SESSION;
	if (!shim_engaged() || !gt.get_int2)
		return gt.record_send(session, data, size);
	fd = session_fd(session);
	if (session_write_is_free(fd, true) || !data || !size)
		return gt.record_send(session, data, size);
	return record_send_guarded(session, fd, data, size);
}
