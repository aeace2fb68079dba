/*
 * session.h - the enforcement decisions (DESIGN.md §1-§2) on top of the per-fd table: opening
 * an SMTP connection, guarding its writes, judging its TLS handshake, finishing it.
 * Every function here runs inside the shim (shim_enter done by the hook).
 */
#ifndef MTASTS_SHIM_SESSION_H
#define MTASTS_SHIM_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "conn.h"

/* A connect / TFO to sa on fd: true when it must be refused with ECONNREFUSED. */
bool session_open(int fd, const struct sockaddr *sa, socklen_t len);

/*
 * Quick test without entering the shim: may a write of plaintext (tls_plaintext: given to the
 * TLS library, not the socket) on fd pass without looking at it? Lock-free, allocation-free.
 */
static inline bool session_write_is_free(int fd, bool tls_plaintext)
{
	conn *c = conn_slot(fd, false);
	int kind;

	if (!c)
		return fd >= CONN_FD_MAX || tls_plaintext;   /* unseen fds get classified */
	kind = atomic_load_explicit(&c->kind, memory_order_acquire);
	if (kind == KIND_OTHER)
		return true;
	if (kind == KIND_UNKNOWN)
		return tls_plaintext;
	if (!atomic_load_explicit(&c->guard, memory_order_relaxed))
		return true;
	return !tls_plaintext && atomic_load_explicit(&c->tls, memory_order_relaxed) == TLS_UP;
}

/*
 * The slow path, before the real write: -1 (errno ECONNRESET, the connection shut down) when
 * the bytes carry a transaction command that must not leave, or the connection was blocked
 * already; 0 when they may be written and nothing is to be remembered; 1 when they may be
 * written and session_written must be told how many were (next holds the stream state after
 * all of them).
 */
int session_guard(int fd, const struct iovec *iov, int iovcnt, bool tls_plaintext,
                  smtpscan *next);
/* After the real write of a guarded buffer (session_guard returned 1): written bytes left. */
void session_written(int fd, const struct iovec *iov, int iovcnt, const smtpscan *next,
                     long long written);

/* fd is being closed / was replaced: log the session if it was one, clear the slot. */
void session_finish(int fd);
void session_dup(int oldfd, int newfd);

/* TLS: the host to send as SNI (false: not an SMTP connection we judge). Classifies an fd not
 * seen opened, and restarts the SMTP stream (the session starts over inside TLS). */
bool session_tls_start(int fd, char host[MTASTS_DOMAIN_MAX]);
/* Does the finished handshake on fd need a verdict (so the chain is worth extracting)? */
bool session_tls_wanted(int fd);
/* The handshake completed: 0 keep it, -1 fail it (enforce). version_ok: TLS >= 1.2. */
int session_tls_done(int fd, bool version_ok, const unsigned char *const *chain,
                     const size_t *lens, size_t n, const char *chain_error);
/* The handshake completed and was not judged (no policy asked for it): TLS is up. */
void session_tls_unjudged(int fd);
/* The real handshake failed with a fatal error. */
void session_tls_error(int fd);

#endif
