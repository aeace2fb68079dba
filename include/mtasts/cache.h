/*
 * cache.h - the persistent policy cache: one entry per policy domain, shared by every MTA
 * process and the fetcher, safe against concurrent readers and writers and against crashes.
 *
 * Storage: one small human-readable file per domain under the cache directory (fanned out into
 * subdirectories), replaced atomically (write a temporary file, fsync, rename); readers never see
 * a torn entry. Concurrent fetches of one domain are coalesced with a per-domain lock file.
 * Everything opened is O_CLOEXEC.
 */
#ifndef MTASTS_CACHE_H
#define MTASTS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mtasts/status.h"
#include "mtasts/domain.h"
#include "mtasts/txt.h"
#include "mtasts/policy.h"

#define MTASTS_REASON_MAX 256

typedef struct mtasts_cache_entry {
	char domain[MTASTS_DOMAIN_MAX];     /* normalised policy domain */
	char id[MTASTS_ID_MAX];             /* TXT id the cached policy was fetched under; "" if none */
	mtasts_policy *policy;              /* the cached policy; NULL when none was ever fetched */
	char *raw;                          /* raw policy body as fetched (for TLS-RPT policy-string) */
	size_t raw_len;
	int64_t fetched_at;                 /* unix seconds of the last successful HTTPS fetch; 0 none */
	int64_t expires_at;                 /* fetched_at + max_age; 0 when no policy */
	int64_t txt_checked_at;             /* last time the live TXT record was looked at; 0 never */
	int64_t failed_at;                  /* last failed fetch; 0 none */
	char failed_id[MTASTS_ID_MAX];      /* TXT id of that failed fetch (back-off is per domain+id) */
	mtasts_result failed_result;        /* RFC 8460 result type of that failure */
	char failed_reason[MTASTS_REASON_MAX];
	uint32_t failure_count;             /* consecutive failures, reset by a success */
} mtasts_cache_entry;

typedef struct mtasts_cache mtasts_cache;

/* Open (and with create, make with mode 0755) the cache directory. */
mtasts_status mtasts_cache_open(const char *dir, bool create, mtasts_cache **out);
void mtasts_cache_close(mtasts_cache **cache);

/* MTASTS_ERR_NOT_FOUND when the domain has no entry, MTASTS_ERR_CORRUPT when the file is damaged. */
mtasts_status mtasts_cache_get(mtasts_cache *cache, const char *domain, mtasts_cache_entry **out);

/*
 * The identity of an entry file. put() always replaces an entry with a new inode (rename), so
 * an unchanged stamp means the file read before is still the entry; a reader may keep what it
 * parsed and revalidate it with one stat of the entry's path instead of reading it again.
 */
typedef struct mtasts_cache_stamp {
	uint64_t dev, ino;
	int64_t size;
	int64_t mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
} mtasts_cache_stamp;

/* get(), and the stamp of the very file it read (fstat of its descriptor, no race). */
mtasts_status mtasts_cache_get_stamped(mtasts_cache *cache, const char *domain,
                                       mtasts_cache_entry **out, mtasts_cache_stamp *stamp);

/* The path of domain's entry file in the cache directory dir: "DIR/hh/DOMAIN" (normalised).
 * MTASTS_ERR_INVALID_ARG for an invalid domain, MTASTS_ERR_TOO_LARGE when it does not fit len. */
mtasts_status mtasts_cache_entry_path(const char *dir, const char *domain, char *buf, size_t len);

/* The stamp of the file at path (lstat: a symlink is stamped as itself, and get() refuses one).
 * MTASTS_ERR_NOT_FOUND when there is no such file, MTASTS_ERR_IO for other failures. */
mtasts_status mtasts_cache_stamp_path(const char *path, mtasts_cache_stamp *stamp);
static inline bool mtasts_cache_stamp_equal(const mtasts_cache_stamp *a, const mtasts_cache_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

/* Atomically create or replace the entry for entry->domain. Files are mode 0644. */
mtasts_status mtasts_cache_put(mtasts_cache *cache, const mtasts_cache_entry *entry);

/* MTASTS_ERR_NOT_FOUND when there was nothing to delete. */
mtasts_status mtasts_cache_delete(mtasts_cache *cache, const char *domain);

/* Calls fn for each cached domain name (in no particular order); stops when fn returns non-zero
 * and returns that value as the status. */
typedef int (*mtasts_cache_visit_fn)(const char *domain, void *arg);
mtasts_status mtasts_cache_foreach(mtasts_cache *cache, mtasts_cache_visit_fn fn, void *arg);

/*
 * Per-domain exclusive lock used to coalesce fetches. With wait false, MTASTS_ERR_BUSY when
 * another process holds it. *lock_fd receives the lock's fd (O_CLOEXEC); release with unlock.
 */
mtasts_status mtasts_cache_lock(mtasts_cache *cache, const char *domain, bool wait, int *lock_fd);
void mtasts_cache_unlock(int *lock_fd);

/* A fresh zeroed entry for domain (copied). */
mtasts_status mtasts_cache_entry_new(const char *domain, mtasts_cache_entry **out);
void mtasts_cache_entry_destroy(mtasts_cache_entry **entry);

/* The on-disk format, exposed for `mtasts cache show`, tests and the fuzzer. parse never trusts
 * its input: any damage is MTASTS_ERR_CORRUPT. format returns a malloc'd buffer. */
mtasts_status mtasts_cache_entry_parse(const char *buf, size_t len, mtasts_cache_entry **out);
mtasts_status mtasts_cache_entry_format(const mtasts_cache_entry *entry, char **buf, size_t *len);

#endif
