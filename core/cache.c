/*
 * cache.c - the persistent policy cache (checklist A6, STS-060..068): one small human-readable
 * file per policy domain, replaced atomically, shared by every MTA process and the fetcher.
 *
 * Layout under the cache directory (all names relative to one O_DIRECTORY fd):
 *
 *   <hh>/<domain>        the entry; <hh> = 2 hex digits of a FNV-1a hash of the domain, so a
 *                        million domains spread over 256 directories of ~4000 files each
 *   <hh>/<domain>@L      the per-domain lock file (flock); kept after use, never unlinked, so two
 *                        processes can never lock two different inodes for one domain
 *   <hh>/@tmp.<...>      a temporary file of a put() in progress; renamed over the entry
 *
 * '@' is not a character of an RFC 5321 Domain, so a lock or temporary file can never collide
 * with an entry, and "<253-character domain>@L" still fits NAME_MAX (255). A domain only becomes
 * a path after mtasts_domain_normalize accepted it (LDH labels and dots, no empty label), so it
 * can never contain '/' or be "." or "..". Every open is O_CLOEXEC, and O_NOFOLLOW below the cache
 * directory (which itself may be a symlink the administrator set up). Whatever creates,
 * renames or unlinks (put, lock, delete, foreach's clean-up) first opens the bucket itself with
 * O_DIRECTORY|O_NOFOLLOW and works relative to that fd, so a root fetcher never follows a symlink
 * planted in place of a bucket. Only get() opens "hh/<domain>" in one call (hot path, see there).
 *
 * Atomicity: put() writes a uniquely named temporary file in the entry's own directory, fsyncs it
 * and renameat()s it over the entry. A reader opens either the old or the new inode, never a torn
 * one; a crash leaves the old or the new entry. The directory is NOT fsynced after the rename: a
 * crash right after put() may bring back the previous (complete, valid) entry, which only costs a
 * re-fetch. Stale temporary files (a writer killed between create and rename) are never read and
 * are removed by foreach() once older than an hour. Because every put() is a new inode, a
 * reader can keep a parsed entry with the stamp (dev, inode, size, mtime, ctime) of the file it
 * read (get_stamped, fstat of that very descriptor) and later revalidate it with one lstat of
 * the entry's path (entry_path, stamp_path): same stamp, same file.
 *
 * Locks are flock(2) locks on "<domain>@L", held by an open file description: a second lock()
 * of the same domain in the same process is BUSY too, and a child forked while the lock is held
 * shares it until the child closes its copy of the fd (exec closes it: O_CLOEXEC). delete()
 * leaves the lock file in place on purpose.
 *
 * Permissions: entries and lock files 0644, directories 0755, whatever the umask, so the MTA's
 * unprivileged user can read what a root fetcher wrote. Writing (put, delete, first lock of a
 * domain) needs write access to the directories: run the fetcher as the MTA user, or as root with
 * every process that locks also root (an unprivileged process can lock a lock file root created,
 * but cannot create one in a root-owned directory).
 *
 * File format (see mtasts_cache_entry_format): "mtasts-cache 1", key: value lines in a fixed
 * order, "raw-length: N", a blank line, exactly N bytes of raw policy body, then "\nend\n" as the
 * last bytes of the file. The raw body is the source of truth: parse re-parses it with
 * mtasts_policy_parse and requires the mode/max_age/mx lines to agree, format derives them from
 * it. Anything else is MTASTS_ERR_CORRUPT.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "mtasts/cache.h"

#define CACHE_MAGIC "mtasts-cache 1"
#define CACHE_END "\nend\n"
#define CACHE_LOCK_SUFFIX "@L"
#define CACHE_TMP_PREFIX "@tmp."
#define CACHE_TMP_STALE_SECONDS 3600
/* header lines (< 2 KiB), mx lines (at most as long as the raw body), raw body */
#define CACHE_FILE_MAX (3 * MTASTS_POLICY_BODY_MAX + 4096)
#define CACHE_READ_STACK 4096
/* "hh/" + name + NUL, name at most NAME_MAX */
#define CACHE_PATH_MAX (3 + 255 + 1)

struct mtasts_cache {
	int dirfd;
	uint64_t tmp_counter;
};

/* ---------------------------------------------------------------------------------------- */
/* names and paths */

static unsigned bucket_of(const char *domain)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)domain; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	h ^= h >> 16;
	h ^= h >> 8;
	return h & 0xffu;
}

/* Normalise a caller-supplied domain; anything that is not a valid domain is a caller error. */
static mtasts_status domain_key(const char *domain, char out[MTASTS_DOMAIN_MAX])
{
	if (!domain)
		return MTASTS_ERR_INVALID_ARG;
	if (mtasts_domain_normalize(domain, out) != MTASTS_OK)
		return MTASTS_ERR_INVALID_ARG;
	return MTASTS_OK;
}

static void bucket_name(const char *domain, char out[3])
{
	static const char hex[] = "0123456789abcdef";
	unsigned b = bucket_of(domain);
	out[0] = hex[b >> 4];
	out[1] = hex[b & 0xf];
	out[2] = '\0';
}

/* "hh/<domain>" */
static void entry_path(const char *domain, char out[CACHE_PATH_MAX])
{
	char bucket[3];
	bucket_name(domain, bucket);
	snprintf(out, CACHE_PATH_MAX, "%s/%s", bucket, domain);
}

static bool id_is_valid(const char *id, size_t n)
{
	if (n >= MTASTS_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------------------------------- */
/* file system helpers */

/*
 * Open bucket directory hh as an fd (O_DIRECTORY|O_NOFOLLOW: a symlink is refused). With create,
 * a missing bucket is made with mode 0755 whatever the umask. -1 with errno set on failure.
 */
static int open_bucket(const mtasts_cache *cache, const char *bucket, bool create)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(cache->dirfd, bucket, flags);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd;
	bool made = mkdirat(cache->dirfd, bucket, 0755) == 0;
	if (!made && errno != EEXIST)
		return -1;
	fd = openat(cache->dirfd, bucket, flags);
	if (fd >= 0 && made && fchmod(fd, 0755) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Create name in bucket fd bfd with O_EXCL, mode 0644 whatever the umask; -1 with errno set. */
static int create_in_bucket(int bfd, const char *name, int flags)
{
	int fd = openat(bfd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (fchmod(fd, 0644) != 0) {
		int saved = errno;
		close(fd);
		unlinkat(bfd, name, 0);
		errno = saved;
		return -1;
	}
	return fd;
}

static mtasts_status write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return MTASTS_ERR_IO;
		}
		buf += n;
		len -= (size_t)n;
	}
	return MTASTS_OK;
}

/*
 * Read a whole entry file. Small files land in stack (CACHE_READ_STACK bytes); larger ones in a
 * malloc'd buffer returned in *heap (caller frees). Larger than CACHE_FILE_MAX is CORRUPT.
 */
static mtasts_status read_file(int fd, char *stack, char **heap, const char **data, size_t *len)
{
	char *buf = stack;
	size_t cap = CACHE_READ_STACK, used = 0;
	*heap = NULL;
	for (;;) {
		if (used == cap) {
			if (cap > CACHE_FILE_MAX)
				return MTASTS_ERR_CORRUPT;
			size_t ncap = cap * 4;
			char *nbuf = realloc(*heap, ncap);
			if (!nbuf)
				return MTASTS_ERR_NOMEM;
			if (!*heap)
				memcpy(nbuf, stack, used);
			*heap = buf = nbuf;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return MTASTS_ERR_IO;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		/* A short read of a regular file is its end; an entry is self-delimiting (raw-length
		 * and the end marker), so when the data also ends with the marker, the read() that
		 * would return 0 is skipped (one system call less on the shim's hot path). Trailing
		 * bytes after a marker would not end with one and are still read and refused. */
		if (used < cap && used >= strlen(CACHE_END) &&
		    memcmp(buf + used - strlen(CACHE_END), CACHE_END, strlen(CACHE_END)) == 0)
			break;
	}
	if (used > CACHE_FILE_MAX)
		return MTASTS_ERR_CORRUPT;
	*data = buf;
	*len = used;
	return MTASTS_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* open / close */

mtasts_status mtasts_cache_open(const char *dir, bool create, mtasts_cache **out)
{
	mtasts_status status = MTASTS_OK;
	mtasts_cache *cache = NULL;

	if (!dir || !*dir || !out)
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	if (create && mkdir(dir, 0755) == 0) {
		if (chmod(dir, 0755) != 0)
			return MTASTS_ERR_IO;
	} else if (create && errno != EEXIST) {
		return errno == ENOENT ? MTASTS_ERR_NOT_FOUND : MTASTS_ERR_IO;
	}
	cache = calloc(1, sizeof *cache);
	if (!cache)
		return MTASTS_ERR_NOMEM;
	cache->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cache->dirfd < 0) {
		status = errno == ENOENT ? MTASTS_ERR_NOT_FOUND : MTASTS_ERR_IO;
		goto out;
	}
	cache->tmp_counter = (uint64_t)getpid() << 32;
	*out = cache;
	cache = NULL;
out:
	if (cache) {
		if (cache->dirfd >= 0)
			close(cache->dirfd);
		free(cache);
	}
	return status;
}

void mtasts_cache_close(mtasts_cache **cache)
{
	if (!cache || !*cache)
		return;
	close((*cache)->dirfd);
	free(*cache);
	*cache = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* entries */

mtasts_status mtasts_cache_entry_new(const char *domain, mtasts_cache_entry **out)
{
	char key[MTASTS_DOMAIN_MAX];
	mtasts_status status;

	if (!out)
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	status = domain_key(domain, key);
	if (status)
		return status;
	mtasts_cache_entry *entry = calloc(1, sizeof *entry);
	if (!entry)
		return MTASTS_ERR_NOMEM;
	memcpy(entry->domain, key, sizeof key);
	entry->failed_result = MTASTS_RESULT_SUCCESS;
	*out = entry;
	return MTASTS_OK;
}

void mtasts_cache_entry_destroy(mtasts_cache_entry **entry)
{
	if (!entry || !*entry)
		return;
	mtasts_policy_destroy(&(*entry)->policy);
	free((*entry)->raw);
	free(*entry);
	*entry = NULL;
}

static bool policy_equal(const mtasts_policy *a, const mtasts_policy *b)
{
	if (a->mode != b->mode || a->max_age != b->max_age || a->mx_count != b->mx_count)
		return false;
	for (size_t i = 0; i < a->mx_count; i++)
		if (strcmp(a->mx[i], b->mx[i]) != 0)
			return false;
	return true;
}

/* ---------------------------------------------------------------------------------------- */
/* format */

typedef struct outbuf {
	char *buf;
	size_t len, cap;
	bool overflow;
} outbuf;

static void out_mem(outbuf *o, const char *s, size_t n)
{
	if (o->overflow || n > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void out_str(outbuf *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

/* "key: value\n", or "key:\n" for an empty value */
static void out_field(outbuf *o, const char *key, const char *value)
{
	out_str(o, key);
	out_str(o, *value ? ": " : ":");
	out_str(o, value);
	out_str(o, "\n");
}

static void out_int(outbuf *o, const char *key, int64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRId64, v);
	out_field(o, key, num);
}

mtasts_status mtasts_cache_entry_format(const mtasts_cache_entry *entry, char **buf, size_t *len)
{
	mtasts_status status = MTASTS_OK;
	mtasts_policy *parsed = NULL;
	char domain[MTASTS_DOMAIN_MAX];
	char reason[MTASTS_REASON_MAX];
	char why[128];
	outbuf o = { 0 };

	if (!entry || !buf || !len)
		return MTASTS_ERR_INVALID_ARG;
	*buf = NULL;
	*len = 0;
	if (strnlen(entry->domain, sizeof entry->domain) == sizeof entry->domain)
		return MTASTS_ERR_INVALID_ARG;
	status = domain_key(entry->domain, domain);
	if (status)
		return status;
	size_t id_len = strnlen(entry->id, sizeof entry->id);
	size_t fid_len = strnlen(entry->failed_id, sizeof entry->failed_id);
	if (!id_is_valid(entry->id, id_len) || !id_is_valid(entry->failed_id, fid_len))
		return MTASTS_ERR_INVALID_ARG;
	if (entry->fetched_at < 0 || entry->expires_at < 0 || entry->txt_checked_at < 0 ||
	    entry->failed_at < 0 || (unsigned)entry->failed_result >= MTASTS_RESULT_COUNT_)
		return MTASTS_ERR_INVALID_ARG;

	/* The raw body is the source of truth: the header's policy lines are derived from it, and
	 * the caller's parsed policy must agree with it. */
	if (entry->raw_len > 0) {
		if (!entry->raw || entry->raw_len > MTASTS_POLICY_BODY_MAX || !entry->policy)
			return MTASTS_ERR_INVALID_ARG;
		if (mtasts_policy_parse(entry->raw, entry->raw_len, &parsed, why, sizeof why) != MTASTS_OK)
			return MTASTS_ERR_INVALID_ARG;
		if (!policy_equal(parsed, entry->policy)) {
			status = MTASTS_ERR_INVALID_ARG;
			goto out;
		}
	} else if (entry->policy) {
		return MTASTS_ERR_INVALID_ARG;
	}

	/* failed_reason comes from the network: printable ASCII only, so it cannot break a line */
	size_t rlen = strnlen(entry->failed_reason, sizeof entry->failed_reason - 1);
	for (size_t i = 0; i < rlen; i++) {
		unsigned char c = (unsigned char)entry->failed_reason[i];
		reason[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	reason[rlen] = '\0';

	o.cap = 1024 + sizeof domain + 2 * MTASTS_ID_MAX + sizeof reason + entry->raw_len +
	        sizeof CACHE_END;
	if (parsed)
		for (size_t i = 0; i < parsed->mx_count; i++)
			o.cap += strlen(parsed->mx[i]) + 6;
	o.buf = malloc(o.cap);
	if (!o.buf) {
		status = MTASTS_ERR_NOMEM;
		goto out;
	}
	char id[MTASTS_ID_MAX], failed_id[MTASTS_ID_MAX];
	memcpy(id, entry->id, id_len);
	id[id_len] = '\0';
	memcpy(failed_id, entry->failed_id, fid_len);
	failed_id[fid_len] = '\0';

	out_str(&o, CACHE_MAGIC "\n");
	out_field(&o, "domain", domain);
	out_field(&o, "id", id);
	if (parsed) {
		out_field(&o, "mode", mtasts_mode_name(parsed->mode));
		out_int(&o, "max_age", parsed->max_age);
		for (size_t i = 0; i < parsed->mx_count; i++)
			out_field(&o, "mx", parsed->mx[i]);
	}
	out_int(&o, "fetched_at", entry->fetched_at);
	out_int(&o, "expires_at", entry->expires_at);
	out_int(&o, "txt_checked_at", entry->txt_checked_at);
	out_int(&o, "failed_at", entry->failed_at);
	out_field(&o, "failed_id", failed_id);
	out_field(&o, "failed_result", mtasts_result_name(entry->failed_result));
	out_field(&o, "failed_reason", reason);
	out_int(&o, "failure_count", entry->failure_count);
	out_int(&o, "raw-length", (int64_t)entry->raw_len);
	out_str(&o, "\n");
	if (entry->raw_len)
		out_mem(&o, entry->raw, entry->raw_len);
	out_str(&o, CACHE_END);
	if (o.overflow) {
		status = MTASTS_ERR_INTERNAL;
		goto out;
	}
	*buf = o.buf;
	*len = o.len;
	o.buf = NULL;
out:
	free(o.buf);
	mtasts_policy_destroy(&parsed);
	return status;
}

/* ---------------------------------------------------------------------------------------- */
/* parse */

typedef struct cursor {
	const char *p, *end;
} cursor;

typedef struct field {
	const char *v;
	size_t n;
} field;

static bool next_line(cursor *c, const char **line, size_t *n)
{
	if (c->p >= c->end)
		return false;
	const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
	if (!nl)
		return false;
	*line = c->p;
	*n = (size_t)(nl - c->p);
	c->p = nl + 1;
	return true;
}

/* Read the next line as "key:" or "key: value" (printable ASCII value). */
static bool take_field(cursor *c, const char *key, field *f)
{
	const char *line;
	size_t n, k = strlen(key);
	cursor saved = *c;

	if (!next_line(c, &line, &n) || n < k + 1 || memcmp(line, key, k) != 0 || line[k] != ':')
		goto no;
	if (n == k + 1) {
		f->v = line + n;
		f->n = 0;
		return true;
	}
	if (line[k + 1] != ' ')
		goto no;
	f->v = line + k + 2;
	f->n = n - k - 2;
	for (size_t i = 0; i < f->n; i++)
		if ((unsigned char)f->v[i] < 0x20 || (unsigned char)f->v[i] >= 0x7f)
			goto no;
	return true;
no:
	*c = saved;
	return false;
}

/* Canonical decimal (no sign, no leading zero) not above max. */
static bool parse_uint(const field *f, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (f->n == 0 || f->n > 20 || (f->n > 1 && f->v[0] == '0'))
		return false;
	for (size_t i = 0; i < f->n; i++) {
		unsigned d = (unsigned char)f->v[i] - '0';
		if (d > 9 || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool take_int64(cursor *c, const char *key, int64_t *out)
{
	field f;
	uint64_t v;
	if (!take_field(c, key, &f) || !parse_uint(&f, INT64_MAX, &v))
		return false;
	*out = (int64_t)v;
	return true;
}

static bool take_id(cursor *c, const char *key, char out[MTASTS_ID_MAX])
{
	field f;
	if (!take_field(c, key, &f) || !id_is_valid(f.v, f.n))
		return false;
	memcpy(out, f.v, f.n);
	out[f.n] = '\0';
	return true;
}

/* A NUL-terminated copy of a short field value; false when it does not fit. */
static bool field_copy(const field *f, char *out, size_t size)
{
	if (f->n >= size)
		return false;
	memcpy(out, f->v, f->n);
	out[f->n] = '\0';
	return true;
}

mtasts_status mtasts_cache_entry_parse(const char *buf, size_t len, mtasts_cache_entry **out)
{
	mtasts_status status = MTASTS_ERR_CORRUPT;
	mtasts_cache_entry *entry = NULL;
	cursor c = { buf, buf + len };
	const char *line;
	size_t n;
	field f;
	char name[32];
	bool has_policy = false;
	mtasts_mode mode = MTASTS_MODE_NONE;
	uint64_t max_age = 0, u;
	cursor mx_start = { buf, buf };
	size_t mx_count = 0;

	if (!out || (!buf && len))
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	if (len > CACHE_FILE_MAX)
		return MTASTS_ERR_CORRUPT;
	entry = calloc(1, sizeof *entry);
	if (!entry)
		return MTASTS_ERR_NOMEM;

	if (!next_line(&c, &line, &n) || n != strlen(CACHE_MAGIC) || memcmp(line, CACHE_MAGIC, n))
		goto out;
	if (!take_field(&c, "domain", &f) || !field_copy(&f, entry->domain, sizeof entry->domain))
		goto out;
	/* stored names are normalised: valid and already lower case */
	if (!mtasts_domain_is_valid(entry->domain))
		goto out;
	for (size_t i = 0; i < f.n; i++)
		if (entry->domain[i] >= 'A' && entry->domain[i] <= 'Z')
			goto out;
	if (!take_id(&c, "id", entry->id))
		goto out;
	if (take_field(&c, "mode", &f)) {
		has_policy = true;
		if (!field_copy(&f, name, sizeof name) || mtasts_mode_from_name(name, &mode) != MTASTS_OK)
			goto out;
		if (!take_field(&c, "max_age", &f) || !parse_uint(&f, MTASTS_MAX_AGE_LIMIT, &max_age))
			goto out;
		mx_start = c;
		while (take_field(&c, "mx", &f))
			mx_count++;
	}
	if (!take_int64(&c, "fetched_at", &entry->fetched_at) ||
	    !take_int64(&c, "expires_at", &entry->expires_at) ||
	    !take_int64(&c, "txt_checked_at", &entry->txt_checked_at) ||
	    !take_int64(&c, "failed_at", &entry->failed_at) ||
	    !take_id(&c, "failed_id", entry->failed_id))
		goto out;
	if (!take_field(&c, "failed_result", &f) || !field_copy(&f, name, sizeof name) ||
	    mtasts_result_from_name(name, &entry->failed_result) != MTASTS_OK)
		goto out;
	if (!take_field(&c, "failed_reason", &f) ||
	    !field_copy(&f, entry->failed_reason, sizeof entry->failed_reason))
		goto out;
	if (!take_field(&c, "failure_count", &f) || !parse_uint(&f, UINT32_MAX, &u))
		goto out;
	entry->failure_count = (uint32_t)u;
	if (!take_field(&c, "raw-length", &f) || !parse_uint(&f, MTASTS_POLICY_BODY_MAX, &u))
		goto out;
	if (!next_line(&c, &line, &n) || n != 0)
		goto out;
	/* exactly u raw bytes, then the end marker as the last bytes of the file */
	if ((size_t)(c.end - c.p) != u + strlen(CACHE_END) ||
	    memcmp(c.p + u, CACHE_END, strlen(CACHE_END)) != 0)
		goto out;
	if (has_policy != (u > 0))
		goto out;
	if (u > 0) {
		char why[128];
		entry->raw = malloc(u + 1);
		if (!entry->raw) {
			status = MTASTS_ERR_NOMEM;
			goto out;
		}
		memcpy(entry->raw, c.p, u);
		entry->raw[u] = '\0';
		entry->raw_len = u;
		mtasts_status ps = mtasts_policy_parse(entry->raw, u, &entry->policy, why, sizeof why);
		if (ps == MTASTS_ERR_NOMEM)
			status = ps;
		if (ps)
			goto out;
		/* the header must describe exactly the policy the raw body parses to */
		const mtasts_policy *p = entry->policy;
		if (p->mode != mode || p->max_age != max_age || p->mx_count != mx_count)
			goto out;
		for (size_t i = 0; i < mx_count; i++) {
			if (!take_field(&mx_start, "mx", &f) || f.n != strlen(p->mx[i]) ||
			    memcmp(f.v, p->mx[i], f.n) != 0)
				goto out;
		}
	}
	*out = entry;
	entry = NULL;
	status = MTASTS_OK;
out:
	mtasts_cache_entry_destroy(&entry);
	return status;
}

/* ---------------------------------------------------------------------------------------- */
/* get / put / delete */

static void stamp_of(const struct stat *st, mtasts_cache_stamp *stamp)
{
	memset(stamp, 0, sizeof(*stamp));
	stamp->dev = (uint64_t)st->st_dev;
	stamp->ino = (uint64_t)st->st_ino;
	stamp->size = (int64_t)st->st_size;
	stamp->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	stamp->mtime_nsec = (int64_t)st->st_mtim.tv_nsec;
	stamp->ctime_sec = (int64_t)st->st_ctim.tv_sec;
	stamp->ctime_nsec = (int64_t)st->st_ctim.tv_nsec;
}

mtasts_status mtasts_cache_entry_path(const char *dir, const char *domain, char *buf, size_t len)
{
	char key[MTASTS_DOMAIN_MAX], rel[CACHE_PATH_MAX];
	mtasts_status status;
	int n;

	if (!dir || !*dir || !buf || !len)
		return MTASTS_ERR_INVALID_ARG;
	buf[0] = '\0';
	status = domain_key(domain, key);
	if (status)
		return status;
	entry_path(key, rel);
	n = snprintf(buf, len, "%s/%s", dir, rel);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return MTASTS_ERR_TOO_LARGE;
	}
	return MTASTS_OK;
}

mtasts_status mtasts_cache_stamp_path(const char *path, mtasts_cache_stamp *stamp)
{
	struct stat st;

	if (!path || !stamp)
		return MTASTS_ERR_INVALID_ARG;
	if (lstat(path, &st) != 0)
		return errno == ENOENT || errno == ENOTDIR ? MTASTS_ERR_NOT_FOUND : MTASTS_ERR_IO;
	stamp_of(&st, stamp);
	return MTASTS_OK;
}

mtasts_status mtasts_cache_get(mtasts_cache *cache, const char *domain, mtasts_cache_entry **out)
{
	return mtasts_cache_get_stamped(cache, domain, out, NULL);
}

mtasts_status mtasts_cache_get_stamped(mtasts_cache *cache, const char *domain,
                                       mtasts_cache_entry **out, mtasts_cache_stamp *stamp)
{
	mtasts_status status;
	char key[MTASTS_DOMAIN_MAX], path[CACHE_PATH_MAX], stack[CACHE_READ_STACK];
	char *heap = NULL;
	const char *data;
	size_t len;
	int fd = -1;

	if (!cache || !out)
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	status = domain_key(domain, key);
	if (status)
		return status;
	entry_path(key, path);
	/* Hot path: one openat of "hh/<domain>" (opening the bucket first, or openat2 with
	 * RESOLVE_BENEATH, costs 0.4 us or more). Reading through a symlinked bucket could only
	 * yield a file that parses as the entry of this very domain, which whoever can plant the
	 * link could write directly. O_NONBLOCK: a FIFO planted under an entry's name must not
	 * hang the MTA. */
	fd = openat(cache->dirfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		status = errno == ENOENT ? MTASTS_ERR_NOT_FOUND : MTASTS_ERR_IO;
		goto out;
	}
	if (stamp) {
		struct stat st;
		if (fstat(fd, &st) != 0) {
			status = MTASTS_ERR_IO;
			goto out;
		}
		stamp_of(&st, stamp);
	}
	status = read_file(fd, stack, &heap, &data, &len);
	if (status)
		goto out;
	status = mtasts_cache_entry_parse(data, len, out);
	if (status)
		goto out;
	if (strcmp((*out)->domain, key) != 0) {   /* a file copied into the wrong name */
		mtasts_cache_entry_destroy(out);
		status = MTASTS_ERR_CORRUPT;
	}
out:
	if (fd >= 0)
		close(fd);
	free(heap);
	return status;
}

mtasts_status mtasts_cache_put(mtasts_cache *cache, const mtasts_cache_entry *entry)
{
	mtasts_status status;
	char key[MTASTS_DOMAIN_MAX], tmp[64], bucket[3];
	char *buf = NULL;
	size_t len;
	int bfd = -1, fd = -1;
	bool tmp_exists = false;

	if (!cache || !entry)
		return MTASTS_ERR_INVALID_ARG;
	status = mtasts_cache_entry_format(entry, &buf, &len);
	if (status)
		return status;
	status = domain_key(entry->domain, key);   /* cannot fail after format succeeded */
	if (status)
		goto out;
	bucket_name(key, bucket);
	bfd = open_bucket(cache, bucket, true);
	if (bfd < 0) {
		status = MTASTS_ERR_IO;
		goto out;
	}
	for (int attempt = 0; fd < 0; attempt++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t n = __atomic_add_fetch(&cache->tmp_counter, 1, __ATOMIC_RELAXED);
		snprintf(tmp, sizeof tmp, CACHE_TMP_PREFIX "%ld.%" PRIx64 ".%lx", (long)getpid(), n,
		         (unsigned long)ts.tv_nsec);
		fd = create_in_bucket(bfd, tmp, O_WRONLY);
		if (fd < 0 && (errno != EEXIST || attempt >= 16)) {
			status = MTASTS_ERR_IO;
			goto out;
		}
	}
	tmp_exists = true;
	status = write_all(fd, buf, len);
	if (status)
		goto out;
	if (fsync(fd) != 0) {
		status = MTASTS_ERR_IO;
		goto out;
	}
	int rc = close(fd);
	fd = -1;
	if (rc != 0) {
		status = MTASTS_ERR_IO;
		goto out;
	}
	if (renameat(bfd, tmp, bfd, key) != 0) {
		status = MTASTS_ERR_IO;
		goto out;
	}
	tmp_exists = false;
out:
	if (fd >= 0)
		close(fd);
	if (tmp_exists)
		unlinkat(bfd, tmp, 0);
	if (bfd >= 0)
		close(bfd);
	free(buf);
	return status;
}

mtasts_status mtasts_cache_delete(mtasts_cache *cache, const char *domain)
{
	char key[MTASTS_DOMAIN_MAX], bucket[3];
	mtasts_status status;

	if (!cache)
		return MTASTS_ERR_INVALID_ARG;
	status = domain_key(domain, key);
	if (status)
		return status;
	bucket_name(key, bucket);
	int bfd = open_bucket(cache, bucket, false);
	if (bfd < 0)
		return errno == ENOENT ? MTASTS_ERR_NOT_FOUND : MTASTS_ERR_IO;
	/* The lock file stays: unlinking it could let two processes hold "the" lock at once. */
	status = MTASTS_OK;
	if (unlinkat(bfd, key, 0) != 0)
		status = errno == ENOENT ? MTASTS_ERR_NOT_FOUND : MTASTS_ERR_IO;
	close(bfd);
	return status;
}

/* ---------------------------------------------------------------------------------------- */
/* foreach */

static bool is_stale_tmp(int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return false;
	return time(NULL) - st.st_mtime > CACHE_TMP_STALE_SECONDS;
}

static bool is_regular(int dfd, const struct dirent *de)
{
	struct stat st;
	if (de->d_type == DT_REG)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;
	return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

mtasts_status mtasts_cache_foreach(mtasts_cache *cache, mtasts_cache_visit_fn fn, void *arg)
{
	if (!cache || !fn)
		return MTASTS_ERR_INVALID_ARG;
	for (unsigned b = 0; b < 256; b++) {
		char bucket[3];
		snprintf(bucket, sizeof bucket, "%02x", b);
		int dfd = open_bucket(cache, bucket, false);
		if (dfd < 0) {
			if (errno == ENOENT)
				continue;
			return MTASTS_ERR_IO;
		}
		DIR *dir = fdopendir(dfd);
		if (!dir) {
			close(dfd);
			return MTASTS_ERR_IO;
		}
		struct dirent *de;
		while ((de = readdir(dir)) != NULL) {
			const char *name = de->d_name;
			if (strncmp(name, CACHE_TMP_PREFIX, strlen(CACHE_TMP_PREFIX)) == 0) {
				/* a writer that died between create and rename: clean up, best effort */
				if (is_stale_tmp(dfd, name))
					unlinkat(dfd, name, 0);
				continue;
			}
			/* lock files, ".", "..", strays: only normalised domains of this bucket count */
			if (strchr(name, '@') || !mtasts_domain_is_valid(name) || bucket_of(name) != b)
				continue;
			bool lower = true;
			for (const char *p = name; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					lower = false;
			if (!lower || !is_regular(dfd, de))
				continue;
			int rc = fn(name, arg);
			if (rc) {
				closedir(dir);
				return (mtasts_status)rc;
			}
		}
		closedir(dir);
	}
	return MTASTS_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* per-domain lock */

mtasts_status mtasts_cache_lock(mtasts_cache *cache, const char *domain, bool wait, int *lock_fd)
{
	char key[MTASTS_DOMAIN_MAX], name[MTASTS_DOMAIN_MAX + sizeof CACHE_LOCK_SUFFIX], bucket[3];
	mtasts_status status;

	if (!lock_fd)
		return MTASTS_ERR_INVALID_ARG;
	*lock_fd = -1;
	if (!cache)
		return MTASTS_ERR_INVALID_ARG;
	status = domain_key(domain, key);
	if (status)
		return status;
	snprintf(name, sizeof name, "%s" CACHE_LOCK_SUFFIX, key);
	bucket_name(key, bucket);
	int bfd = open_bucket(cache, bucket, true);
	if (bfd < 0)
		return MTASTS_ERR_IO;
	/* flock needs no write access: a lock file root created (0644) is usable by the MTA user */
	int fd = create_in_bucket(bfd, name, O_RDONLY);
	if (fd < 0 && errno == EEXIST)
		fd = openat(bfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	close(bfd);
	if (fd < 0)
		return MTASTS_ERR_IO;
	for (;;) {
		if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0)
			break;
		if (errno == EINTR)
			continue;
		status = errno == EWOULDBLOCK ? MTASTS_ERR_BUSY : MTASTS_ERR_IO;
		close(fd);
		return status;
	}
	*lock_fd = fd;
	return MTASTS_OK;
}

void mtasts_cache_unlock(int *lock_fd)
{
	if (!lock_fd || *lock_fd < 0)
		return;
	close(*lock_fd);   /* releases the flock (the last fd of this open file description) */
	*lock_fd = -1;
}
