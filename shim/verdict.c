/*
 * verdict.c - the memo of successful certificate checks (verdict.h), so that a warm SMTP session
 * costs a SHA-256 of the presented chain instead of decoding and verifying it (bench/README.md:
 * the check was 4 M of the 4.5 M instructions the shim added per session, and a fresh process's
 * first check also built the trust store, 9 M).
 *
 * What is remembered: "mtasts_verify_chain_der succeeded for MX host H, this exact DER chain and
 * this trust store". The key is SHA-256 over an unambiguous encoding of H, every certificate's
 * length and bytes in order, and the trust store's identity (path, device, inode, size, mtime of
 * ca_file; for the system store OpenSSL's default file and directory). A collision-resistant
 * hash is what makes the memo safe: presenting any other chain, for any host, under any other
 * trust store, gives another key, so it is verified in full. A verdict holds until
 * min(found + VERDICT_TTL, the earliest notAfter of the verified chain, leaf to trust anchor);
 * a lookup also refuses a stored end more than VERDICT_TTL ahead of now (a clock that went back,
 * a forged file).
 *
 * Only successes are remembered. A failure is rare (a misconfigured or attacked MX), may come
 * from a transient condition (memory, an unreadable trust store) that must not outlive itself,
 * and is the verdict that blocks mail, so it is always re-evaluated: the next session to that MX
 * after the administrator fixed the certificate verifies and delivers at once.
 *
 * Where: (a) a small fixed table in the process (static memory, under shim_lock(), inherited by
 * fork: Exim's transport child inherits what its delivery process learnt); (b) one file per key,
 * <cache_dir>/verified/<64 hex digits of the key>, so Exim's short-lived transport processes share
 * verdicts. File: the lines "mtasts-verdict 1", "key <hex>", "host <H>", "result success",
 * "until <unix time>", nothing else (at most VERDICT_FILE_MAX bytes). A file that is not exactly
 * that, names another key or host than its own name and the lookup, or whose end passed, is
 * ignored and the chain verified in full (then the file is replaced).
 *
 * Trust: whoever can write cache_dir can forge a verdict and make the shim accept any chain for
 * any host, exactly as they can already replace a domain's policy with mode none or delete it.
 * The verified/ directory has the policy cache's trust: cache_dir must be writable only by the
 * MTA's user and root (docs/shim.md). Files are read with O_NOFOLLOW|O_NONBLOCK, bounded, and
 * must be regular; they are written in the verified/ directory opened with
 * O_DIRECTORY|O_NOFOLLOW, to a temporary "@tmp." name created O_EXCL|O_NOFOLLOW, mode 0644 whatever
 * the umask, then renamed over the key's name (a reader sees the old or the new file, never a
 * torn one). No fsync: a memo lost in a crash costs one verification. Expired files are removed
 * now and then by a writer (one write in 256 sweeps the directory, bounded).
 *
 * SHA-256: GnuTLS's gnutls_hash_* when GnuTLS is already in the process (Debian's Exim with
 * ca_file set: a memo hit then needs no libcrypto, whose dlopen in crypto_lazy.c costs 2.6 M
 * instructions and some 40 mmap/openat; for the system store verdict_trust_now still asks
 * libcrypto for its default paths), else libcrypto's low-level SHA256_Init/Update/Final. The digest is the
 * same bytes whichever library computes it, so memo files are shared by GnuTLS and OpenSSL
 * processes. GnuTLS is found like tls_gnutls.c finds it (no header, looked up at run time, also
 * when loaded RTLD_LOCAL), never loaded by us. In OpenSSL 3.0 the one-shot SHA256()
 * and EVP_Digest fetch the default provider's digest on first use: 5.4 M instructions in a fresh
 * process (measured with callgrind), more than the verification this memo saves; the low-level
 * functions cost about 60 instructions per byte and nothing the first time. They are deprecated
 * in 3.0 (kept for the life of 3.x); a libcrypto built without them gets EVP_Digest*.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "shim.h"
#include "verdict.h"

#define VERDICT_SLOTS 32
#define VERDICT_FILE_MAX 512
#define VERDICT_DIR "verified"
#define VERDICT_TMP "@tmp."
#define VERDICT_SWEEP_MAX 10000          /* directory entries looked at per sweep */
#define VERDICT_MAGIC "mtasts-verdict 1\n"

typedef struct memo_slot {
	unsigned char key[VERDICT_KEY_LEN];
	time_t until;                       /* 0: free */
} memo_slot;

static memo_slot memo[VERDICT_SLOTS];
static atomic_uint tmp_counter;   /* temporary file names; written outside the lock */

/* ---- the trust store's identity ------------------------------------------------------------ */

static void stat_of(const char *path, verdict_stat *out)
{
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (!path || stat(path, &st) != 0)
		return;
	out->present = true;
	out->dev = (uint64_t)st.st_dev;
	out->ino = (uint64_t)st.st_ino;
	out->size = (uint64_t)st.st_size;
	out->mtime_s = (uint64_t)st.st_mtim.tv_sec;
	out->mtime_ns = (uint64_t)st.st_mtim.tv_nsec;
}

/* OpenSSL's default location, or its environment override as X509_STORE_set_default_paths reads
 * it (ignored in a set-user-ID process, like secure_getenv). */
static const char *default_location(const char *env_name, const char *fallback)
{
	const char *v = env_name ? secure_getenv(env_name) : NULL;

	return v && *v ? v : fallback;
}

bool verdict_trust_now(const char *ca_file, verdict_trust *out)
{
	memset(out, 0, sizeof(*out));
	if (ca_file) {
		out->file = ca_file;
		stat_of(ca_file, &out->file_st);
		return out->file_st.present;
	}
	out->file = default_location(X509_get_default_cert_file_env(), X509_get_default_cert_file());
	out->dir = default_location(X509_get_default_cert_dir_env(), X509_get_default_cert_dir());
	stat_of(out->file, &out->file_st);
	stat_of(out->dir, &out->dir_st);
	return out->file_st.present || out->dir_st.present;
}

static bool same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool verdict_trust_equal(const verdict_trust *a, const verdict_trust *b)
{
	return same_text(a->file, b->file) && same_text(a->dir, b->dir) &&
	       memcmp(&a->file_st, &b->file_st, sizeof(a->file_st)) == 0 &&
	       memcmp(&a->dir_st, &b->dir_st, sizeof(a->dir_st)) == 0;
}

/* ---- the key -------------------------------------------------------------------------------- */

#ifndef OPENSSL_NO_DEPRECATED_3_0
typedef SHA256_CTX crypto_ctx;
static void crypto_init(crypto_ctx *h)
{
	SHA256_Init(h);
}
static void crypto_update(crypto_ctx *h, const void *p, size_t n)
{
	SHA256_Update(h, p, n);
}
static void crypto_final(crypto_ctx *h, unsigned char out[VERDICT_KEY_LEN])
{
	SHA256_Final(out, h);
}
#else
typedef struct crypto_ctx {
	EVP_MD_CTX *md;
	bool failed;
} crypto_ctx;
static void crypto_init(crypto_ctx *h)
{
	h->md = EVP_MD_CTX_new();
	h->failed = !h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1;
}
static void crypto_update(crypto_ctx *h, const void *p, size_t n)
{
	if (!h->failed && EVP_DigestUpdate(h->md, p, n) != 1)
		h->failed = true;
}
static void crypto_final(crypto_ctx *h, unsigned char out[VERDICT_KEY_LEN])
{
	/* a failed digest gives a key of zeros, which verdict_store/verdict_lookup never use */
	if (h->failed || EVP_DigestFinal_ex(h->md, out, NULL) != 1)
		memset(out, 0, VERDICT_KEY_LEN);
	EVP_MD_CTX_free(h->md);
}
#endif

/* GnuTLS's hash API (gnutls/crypto.h), declared here: the shim includes no GnuTLS header. */
#define GTLS_DIG_SHA256 6        /* GNUTLS_DIG_SHA256 = GNUTLS_MAC_SHA256 */
typedef struct gt_hash_st *gt_hash_t;

static struct {
	int (*init)(gt_hash_t *dig, int algorithm);
	int (*hash)(gt_hash_t dig, const void *text, size_t len);
	void (*deinit)(gt_hash_t dig, void *digest);
} gth;
static pthread_once_t gth_once = PTHREAD_ONCE_INIT;

/* The three functions when GnuTLS is loaded in the process (all or none). */
static void gth_bind(void)
{
	static const char *const sonames[] = { "libgnutls.so.30", NULL };

	*(void **)&gth.init = shim_real_lookup_lib("gnutls_hash_init", sonames);
	*(void **)&gth.hash = shim_real_lookup_lib("gnutls_hash", sonames);
	*(void **)&gth.deinit = shim_real_lookup_lib("gnutls_hash_deinit", sonames);
	if (!gth.init || !gth.hash || !gth.deinit)
		memset(&gth, 0, sizeof(gth));
}

/* One key's digest: GnuTLS when present and it starts, else libcrypto. */
typedef struct hash_ctx {
	gt_hash_t gt;                /* non-NULL: GnuTLS computes */
	bool gt_failed;
	crypto_ctx c;
} hash_ctx;

static void hash_init(hash_ctx *h)
{
	memset(h, 0, sizeof(*h));
	pthread_once(&gth_once, gth_bind);
	if (gth.init && gth.init(&h->gt, GTLS_DIG_SHA256) == 0 && h->gt)
		return;
	h->gt = NULL;
	crypto_init(&h->c);
}

static void hash_update(hash_ctx *h, const void *p, size_t n)
{
	if (!h->gt)
		crypto_update(&h->c, p, n);
	else if (!h->gt_failed && gth.hash(h->gt, p, n) != 0)
		h->gt_failed = true;
}

static void hash_final(hash_ctx *h, unsigned char out[VERDICT_KEY_LEN])
{
	if (!h->gt) {
		crypto_final(&h->c, out);
		return;
	}
	gth.deinit(h->gt, out);
	/* a failed digest gives a key of zeros, which verdict_store/verdict_lookup never use */
	if (h->gt_failed)
		memset(out, 0, VERDICT_KEY_LEN);
}

static void hash_u64(hash_ctx *h, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (56 - 8 * i));
	hash_update(h, b, sizeof(b));
}

/* A string with its terminating NUL (a path or host name never contains one); "" for NULL. */
static void hash_text(hash_ctx *h, const char *s)
{
	hash_update(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

static void hash_stat(hash_ctx *h, const verdict_stat *st)
{
	hash_u64(h, st->present);
	hash_u64(h, st->dev);
	hash_u64(h, st->ino);
	hash_u64(h, st->size);
	hash_u64(h, st->mtime_s);
	hash_u64(h, st->mtime_ns);
}

void verdict_key_make(const char *host, const unsigned char *const *chain, const size_t *lens,
                      size_t n, const verdict_trust *trust, verdict_key *out)
{
	hash_ctx h;

	hash_init(&h);
	hash_text(&h, "mtasts-verdict-key 1");
	hash_text(&h, host);
	hash_u64(&h, n);
	for (size_t i = 0; i < n; i++) {
		hash_u64(&h, lens[i]);
		hash_update(&h, chain[i], lens[i]);
	}
	hash_text(&h, trust->file);
	hash_stat(&h, &trust->file_st);
	hash_text(&h, trust->dir);
	hash_stat(&h, &trust->dir_st);
	hash_final(&h, out->sha);
}

static bool key_unusable(const verdict_key *key)
{
	static const unsigned char zero[VERDICT_KEY_LEN];

	return memcmp(key->sha, zero, VERDICT_KEY_LEN) == 0;
}

static void key_hex(const verdict_key *key, char hex[2 * VERDICT_KEY_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < VERDICT_KEY_LEN; i++) {
		hex[2 * i] = digits[key->sha[i] >> 4];
		hex[2 * i + 1] = digits[key->sha[i] & 15];
	}
	hex[2 * VERDICT_KEY_LEN] = '\0';
}

static bool still_valid(time_t until, time_t now)
{
	return until > now && until - now <= VERDICT_TTL;
}

/* ---- the process's table (shim_lock) -------------------------------------------------------- */

static bool table_lookup(const verdict_key *key, time_t now)
{
	bool hit = false;

	shim_lock();
	for (size_t i = 0; i < VERDICT_SLOTS && !hit; i++)
		hit = memo[i].until && memcmp(memo[i].key, key->sha, VERDICT_KEY_LEN) == 0 &&
		      still_valid(memo[i].until, now);
	shim_unlock();
	return hit;
}

/* Keep (key, until): in its own slot, else the first free or ended one, else the one ending first. */
static void table_store(const verdict_key *key, time_t until, time_t now)
{
	size_t pick = VERDICT_SLOTS;

	shim_lock();
	for (size_t i = 0; i < VERDICT_SLOTS && pick == VERDICT_SLOTS; i++) {
		if (memo[i].until && memcmp(memo[i].key, key->sha, VERDICT_KEY_LEN) == 0)
			pick = i;
	}
	for (size_t i = 0; i < VERDICT_SLOTS && pick == VERDICT_SLOTS; i++) {
		if (!still_valid(memo[i].until, now))
			pick = i;
	}
	if (pick == VERDICT_SLOTS) {
		pick = 0;
		for (size_t i = 1; i < VERDICT_SLOTS; i++) {
			if (memo[i].until < memo[pick].until)
				pick = i;
		}
	}
	memcpy(memo[pick].key, key->sha, VERDICT_KEY_LEN);
	memo[pick].until = until;
	shim_unlock();
}

/* ---- the files ------------------------------------------------------------------------------ */

/* The exact content of a verdict file. false when it would not fit. */
static bool format_file(char *buf, size_t cap, size_t *len, const char *hex, const char *host,
                        time_t until)
{
	int n = snprintf(buf, cap, VERDICT_MAGIC "key %s\nhost %s\nresult success\nuntil %lld\n", hex,
	                 host, (long long)until);

	if (n < 0 || (size_t)n >= cap)
		return false;
	*len = (size_t)n;
	return true;
}

/* Parse a file's bytes: the fixed lines for this key and host, then "until <digits>\n" and the
 * end. 0 when it is anything else. */
static time_t parse_file(const char *buf, size_t len, const char *hex, const char *host)
{
	char head[VERDICT_FILE_MAX];
	size_t hlen, i;
	long long until = 0;

	if (!format_file(head, sizeof(head), &hlen, hex, host, 0))
		return 0;
	hlen -= 2;   /* "0\n": the head ends with "until " */
	if (len <= hlen || memcmp(buf, head, hlen) != 0)
		return 0;
	for (i = hlen; i < len && buf[i] >= '0' && buf[i] <= '9' && i - hlen < 18; i++)
		until = until * 10 + (buf[i] - '0');
	if (i == hlen || buf[hlen] == '0' || i + 1 != len || buf[i] != '\n')
		return 0;
	return (time_t)until;
}

/* <cache_dir>/verified[/name] into path; false when too long. */
static bool make_path(char path[PATH_MAX], const char *cache_dir, const char *name)
{
	int n = snprintf(path, PATH_MAX, "%s/" VERDICT_DIR "%s%s", cache_dir, name ? "/" : "",
	                 name ? name : "");

	return n > 0 && n < PATH_MAX;
}

static time_t file_lookup(const char *cache_dir, const char *hex, const char *host)
{
	char path[PATH_MAX], buf[VERDICT_FILE_MAX + 1];
	size_t used = 0;
	struct stat st;
	time_t until = 0;
	int fd;

	if (!make_path(path, cache_dir, hex))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > VERDICT_FILE_MAX)
		goto out;
	while (used < sizeof(buf)) {
		ssize_t got = read(fd, buf + used, sizeof(buf) - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto out;
		if (got == 0)
			break;
		used += (size_t)got;
	}
	if (used <= VERDICT_FILE_MAX)
		until = parse_file(buf, used, hex, host);
out:
	close(fd);
	return until;
}

/* The verified/ directory as an fd (O_NOFOLLOW), made when missing: mode 0755 whatever the umask,
 * and when root makes it, owned like cache_dir (the MTA's user must be able to write it). */
static int open_dir(const char *cache_dir)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	char path[PATH_MAX];
	struct stat parent;
	int fd;

	if (!make_path(path, cache_dir, NULL))
		return -1;
	fd = open(path, flags);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return -1;
	fd = open(path, flags);
	if (fd < 0)
		return -1;
	if (fchmod(fd, 0755) != 0 ||
	    (geteuid() == 0 && stat(cache_dir, &parent) == 0 &&
	     fchown(fd, parent.st_uid, parent.st_gid) != 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool is_hex_name(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++) {
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	}
	return i == 2 * VERDICT_KEY_LEN;
}

/* Remove verdict files (and temporary files) older than any verdict can be: best effort. */
static void sweep(int dfd, time_t now)
{
	int fd = dup(dfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	for (int seen = 0; seen < VERDICT_SWEEP_MAX && (de = readdir(dir)) != NULL; seen++) {
		struct stat st;
		if (!is_hex_name(de->d_name) && strncmp(de->d_name, VERDICT_TMP, strlen(VERDICT_TMP)) != 0)
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    st.st_mtim.tv_sec < now - 2 * VERDICT_TTL)
			unlinkat(dfd, de->d_name, 0);
	}
	closedir(dir);
}

static void file_store(const verdict_key *key, const char *cache_dir, const char *hex,
                       const char *host, time_t until, time_t now)
{
	char tmp[64], buf[VERDICT_FILE_MAX];
	size_t len, off = 0;
	int dfd, fd = -1;
	bool ok = false;

	if (!format_file(buf, sizeof(buf), &len, hex, host, until))
		return;
	dfd = open_dir(cache_dir);
	if (dfd < 0)
		return;
	for (int attempt = 0; attempt < 4 && fd < 0; attempt++) {
		snprintf(tmp, sizeof(tmp), VERDICT_TMP "%ld.%u.%.8s", (long)getpid(),
		         atomic_fetch_add(&tmp_counter, 1), hex);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		goto out;
	if (fchmod(fd, 0644) != 0)
		goto done;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto done;
		off += (size_t)w;
	}
	ok = true;
done:
	if (close(fd) != 0)
		ok = false;
	if (!ok || renameat(dfd, tmp, dfd, hex) != 0)
		unlinkat(dfd, tmp, 0);
	if (ok && (key->sha[1] ^ (unsigned char)now) == 0)
		sweep(dfd, now);
out:
	close(dfd);
}

/* ---- the interface -------------------------------------------------------------------------- */

bool verdict_lookup(const verdict_key *key, const char *host, time_t now, const char *cache_dir)
{
	char hex[2 * VERDICT_KEY_LEN + 1];
	time_t until;

	if (key_unusable(key))
		return false;
	if (table_lookup(key, now))
		return true;
	if (!cache_dir)
		return false;
	key_hex(key, hex);
	until = file_lookup(cache_dir, hex, host);
	if (!still_valid(until, now))
		return false;
	table_store(key, until, now);
	return true;
}

void verdict_store(const verdict_key *key, const char *host, time_t now, time_t not_after,
                   const char *cache_dir)
{
	char hex[2 * VERDICT_KEY_LEN + 1];
	time_t until = now + VERDICT_TTL;

	if (not_after < until)
		until = not_after;
	if (key_unusable(key) || until <= now)
		return;
	table_store(key, until, now);
	if (!cache_dir)
		return;
	key_hex(key, hex);
	file_store(key, cache_dir, hex, host, until, now);
}
