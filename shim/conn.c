/*
 * conn.c - the per-fd slot table of conn.h.
 */
#include <string.h>
#include <sys/mman.h>

#include "conn.h"

static _Atomic(conn *) chunks[CONN_CHUNKS];

conn *conn_slot(int fd, bool create)
{
	conn *chunk, *expected = NULL;

	if (fd < 0 || fd >= CONN_FD_MAX)
		return NULL;
	chunk = atomic_load_explicit(&chunks[fd / CONN_CHUNK], memory_order_acquire);
	if (chunk || !create)
		return chunk ? &chunk[fd % CONN_CHUNK] : NULL;
	/* mmap: async-signal-safe, zero-filled, never freed; lose a race by unmapping ours */
	chunk = mmap(NULL, sizeof(conn) * CONN_CHUNK, PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (chunk == MAP_FAILED)
		return NULL;
	if (!atomic_compare_exchange_strong_explicit(&chunks[fd / CONN_CHUNK], &expected, chunk,
	                                             memory_order_acq_rel, memory_order_acquire)) {
		munmap(chunk, sizeof(conn) * CONN_CHUNK);
		chunk = expected;
	}
	return &chunk[fd % CONN_CHUNK];
}

void conn_clear(conn *c)
{
	atomic_store_explicit(&c->kind, KIND_UNKNOWN, memory_order_release);
	atomic_store(&c->guard, 0);
	atomic_store(&c->tls, TLS_NONE);
	atomic_store(&c->blocked, 0);
	memset(&c->scan, 0, sizeof(c->scan));
	c->lazy = c->alias = c->logged = c->tls_attempted = false;
	c->result = MTASTS_RESULT_SUCCESS;
	c->reason[0] = '\0';
	memset(&c->addr, 0, sizeof(c->addr));
	c->port = 0;
	c->ip[0] = '\0';
	c->ncand = 0;
}

void conn_copy(conn *to, const conn *from)
{
	int kind = atomic_load(&from->kind);

	atomic_store(&to->kind, KIND_UNKNOWN);
	atomic_store(&to->guard, atomic_load(&from->guard));
	atomic_store(&to->tls, atomic_load(&from->tls));
	atomic_store(&to->blocked, atomic_load(&from->blocked));
	to->scan = from->scan;
	to->lazy = from->lazy;
	to->alias = true;
	to->logged = from->logged;
	to->tls_attempted = from->tls_attempted;
	to->result = from->result;
	memcpy(to->reason, from->reason, sizeof(to->reason));
	to->addr = from->addr;
	to->port = from->port;
	memcpy(to->ip, from->ip, sizeof(to->ip));
	to->ncand = from->ncand;
	memcpy(to->cand, from->cand, sizeof(to->cand[0]) * (size_t)from->ncand);
	atomic_store_explicit(&to->kind, kind, memory_order_release);
}

void conn_foreach_range(unsigned first, unsigned last, void (*fn)(int fd, conn *c))
{
	if (last >= CONN_FD_MAX)
		last = CONN_FD_MAX - 1;
	for (unsigned fd = first; fd <= last; fd++) {
		conn *chunk = atomic_load_explicit(&chunks[fd / CONN_CHUNK], memory_order_acquire);
		if (!chunk) {
			fd |= CONN_CHUNK - 1;   /* skip the rest of this chunk */
			continue;
		}
		conn *c = &chunk[fd % CONN_CHUNK];
		if (atomic_load_explicit(&c->kind, memory_order_acquire) != KIND_UNKNOWN)
			fn((int)fd, c);
	}
}
