/*
 * verdict.h - the memo of successful certificate checks (verdict.c): "this exact chain verified
 * for this MX host against this trust store", remembered in the process and, across processes,
 * as one file per verdict under <cache_dir>/verified/, for at most VERDICT_TTL seconds and never
 * past the earliest notAfter of the verified chain.
 */
#ifndef MTASTS_SHIM_VERDICT_H
#define MTASTS_SHIM_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define VERDICT_TTL 3600         /* seconds a success is remembered at most */
#define VERDICT_KEY_LEN 32       /* SHA-256 */

/* Identity of the trust store: the file (ca_file, or OpenSSL's default file) and, for the system
 * store, the default certificate directory: path, device, inode, size, modification time. */
typedef struct verdict_stat {
	uint64_t dev, ino, size, mtime_s, mtime_ns;
	bool present;
} verdict_stat;

typedef struct verdict_trust {
	const char *file;            /* the PEM bundle the verifier loads */
	const char *dir;             /* the hashed directory (system store only), else NULL */
	verdict_stat file_st, dir_st;
} verdict_trust;

typedef struct verdict_key {
	unsigned char sha[VERDICT_KEY_LEN];
} verdict_key;

/* The trust store as it is now (ca_file: NULL for the system store). false when it cannot be
 * identified (missing file): nothing is memoised or looked up then. */
bool verdict_trust_now(const char *ca_file, verdict_trust *out);
bool verdict_trust_equal(const verdict_trust *a, const verdict_trust *b);

/* SHA-256 over host, the DER chain (every certificate, in order, length-prefixed) and the trust
 * store's identity: an unambiguous encoding, so another chain cannot have the same key. */
void verdict_key_make(const char *host, const unsigned char *const *chain, const size_t *lens,
                      size_t n, const verdict_trust *trust, verdict_key *out);

/* Is a success remembered for key (host repeated for a check of the file) and valid at now?
 * Looks in the process's table, then (cache_dir not NULL) in the file; a file's verdict is then
 * kept in the table. Must be called inside the shim, lock not held. */
bool verdict_lookup(const verdict_key *key, const char *host, time_t now, const char *cache_dir);

/* Remember a success found at now, valid until min(now + VERDICT_TTL, not_after); nothing when
 * that is not after now. cache_dir NULL: the process's table only. Inside the shim, lock not
 * held. Best effort: a file that cannot be written is only a verification more next time. */
void verdict_store(const verdict_key *key, const char *host, time_t now, time_t not_after,
                   const char *cache_dir);

#endif
