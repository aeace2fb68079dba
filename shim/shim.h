/*
 * shim.h - what the shim's modules share: process-wide settings, the activity test, the
 * thread-local "inside the shim" flag and the process-wide lock.
 *
 * Every hook starts with
 *
 *     if (!shim_engaged()) return REAL(f)(...);
 *
 * which is one well-predicted branch when the program is not a configured MTA, or when the
 * hook was reached from the shim's own work (libcrypto, file I/O, logging, the real resolver).
 */
#ifndef MTASTS_SHIM_H
#define MTASTS_SHIM_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "real.h"

#define REAL(f) (shim_real_get()->f)

#define SHIM_MAX_PORTS 16

typedef struct shim_settings {
	char *config_path;      /* the config file read, NULL for none (defaults only) */
	bool config_explicit;   /* a file other than the default was used */
	char *cache_dir;
	char *ca_file;          /* NULL: system store */
	char *fetcher;
	char *report_dir;       /* NULL: no JSON reports */
	long fetch_wait;
	long txt_recheck;
	unsigned short ports[SHIM_MAX_PORTS];
	int nports;
	char program[64];       /* the name that matched `programs` */
} shim_settings;

extern shim_settings shim_cfg;

/* 0 not initialised, 1 inert, 2 active. */
extern atomic_int shim_state;
extern __thread int shim_inside __attribute__((tls_model("initial-exec")));

void shim_init(void);

static inline bool shim_engaged(void)
{
	if (shim_inside)
		return false;
	int s = atomic_load_explicit(&shim_state, memory_order_acquire);
	if (__builtin_expect(s == 0, 0)) {
		shim_init();
		s = atomic_load_explicit(&shim_state, memory_order_acquire);
	}
	return s == 2;
}

/* Enter/leave the shim's own work: hooks pass through, errno is preserved. */
static inline int shim_enter(void)
{
	shim_inside++;
	return errno;
}

static inline void shim_leave(int saved_errno)
{
	shim_inside--;
	errno = saved_errno;
}

/* The process-wide lock for the DNS table and connection details (not for the write path). */
void shim_lock(void);
void shim_unlock(void);

bool shim_port_is_smtp(unsigned short port);

/* Log through log.h, prefixed "mtasts: " (must be inside the shim). */
void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* exec.c: prepared at init. */
void shim_exec_init(void);

#endif
