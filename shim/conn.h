/*
 * conn.h - per-fd connection state (DESIGN.md §2): which fds are SMTP connections, the
 * candidate (policy domain, MX host) pairs of each, their policy verdicts and the TLS state.
 *
 * The table is indexed by fd: chunks of slots mapped on demand with mmap and published with an
 * atomic pointer, never freed, so a lookup takes no lock and allocates nothing (write() from a
 * signal handler stays safe). The fields the write path reads are atomics; the details are
 * written under shim_lock() before `kind` is published with release order. An all-zero slot
 * is a cleared one (KIND_UNKNOWN, nothing known), which is what mmap hands out.
 */
#ifndef MTASTS_SHIM_CONN_H
#define MTASTS_SHIM_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include "dnsobs.h"
#include "mtasts/policy.h"
#include "mtasts/status.h"
#include "mtasts/txt.h"
#include "smtpscan.h"

#define CONN_MAX_CAND 8
#define CONN_CHUNK 64
#define CONN_CHUNKS 1024               /* fds 0 .. 65535 */
#define CONN_FD_MAX (CONN_CHUNK * CONN_CHUNKS)
#define CONN_REASON_MAX 128

enum { KIND_UNKNOWN = 0, KIND_OTHER, KIND_SMTP };
enum { TLS_NONE = 0, TLS_UP, TLS_FAILED };

typedef struct conn_cand {
	char domain[MTASTS_DOMAIN_MAX];
	char host[MTASTS_DOMAIN_MAX];   /* MX host; "" for a domain only seen in RCPT TO */
	bool present;                   /* a valid policy is cached */
	bool unreadable;                /* the cached entry could not be read (out of memory):
	                                 * enforce with no MX allowed */
	mtasts_mode mode;
	char id[MTASTS_ID_MAX];
	bool mx_ok;                     /* host matches the policy's mx patterns */
	int tls_result;                 /* -1 not checked, else an mtasts_result for host */
	char tls_reason[96];
	char why_absent[96];
	bool rcpt_seen;
	bool violation_logged;
} conn_cand;

typedef struct conn {
	atomic_int kind;
	atomic_int guard;        /* writes must be inspected for transaction commands */
	atomic_int tls;          /* TLS_NONE / TLS_UP / TLS_FAILED */
	atomic_int blocked;      /* something was refused on this connection */
	/* where the SMTP stream is: touched only by the thread writing to the fd (guard path) */
	smtpscan scan;
	/* details, under shim_lock() */
	bool lazy;               /* not seen opened: candidates come from RCPT TO */
	bool alias;              /* a dup of another slot: does not log */
	bool logged;
	bool tls_attempted;
	int result;              /* mtasts_result of the first violation, or SUCCESS */
	char reason[CONN_REASON_MAX];
	dnsobs_addr addr;
	unsigned short port;
	char ip[48];
	int ncand;
	conn_cand cand[CONN_MAX_CAND];
} conn;

/* The slot of fd; with create, maps its chunk when needed. NULL when out of range/no memory. */
conn *conn_slot(int fd, bool create);

/* Clear a slot (caller holds shim_lock or owns the slot). */
void conn_clear(conn *c);

/* Copy the state of from into to (dup); the copy is an alias and does not log. */
void conn_copy(conn *to, const conn *from);

/* Call fn for every slot in [first, last] that is not KIND_UNKNOWN. */
void conn_foreach_range(unsigned first, unsigned last, void (*fn)(int fd, conn *c));

#endif
