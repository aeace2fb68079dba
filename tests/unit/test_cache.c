/*
 * test_cache.c - unit tests of the persistent policy cache (core/cache.c, checklist A6):
 * format/parse round trips, damaged files at every length, hostile domain names, the per-domain
 * lock across processes, readers racing a writer, fd leaks, file modes and O_CLOEXEC, the entry
 * path and file stamps a reader revalidates a kept entry with.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "mtasts/cache.h"
#include "unit.h"

#define POLICY_A "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.Backup.Example.NET\nmax_age: 86400\n"
#define POLICY_B "version: STSv1\r\nmode: testing\r\nmx: mx2.example.com\r\nmax_age: 604800\r\n"
#define POLICY_NONE "version: STSv1\nmode: none\nmax_age: 3600\n"

/* ---------------------------------------------------------------------------------------- */
/* helpers */

static char tmpdir[PATH_MAX];
static char cachedir[PATH_MAX];

static void make_dirs(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_cache.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(cachedir, sizeof cachedir, "%s/cache", tmpdir);
}

static void remove_tree(const char *path)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	ck_assert_int_eq(system(cmd), 0);
}

static mtasts_cache *open_cache(void)
{
	mtasts_cache *cache = NULL;
	make_dirs();
	ck_assert_int_eq(mtasts_cache_open(cachedir, true, &cache), MTASTS_OK);
	ck_assert_ptr_nonnull(cache);
	return cache;
}

static void close_cache(mtasts_cache **cache)
{
	mtasts_cache_close(cache);
	ck_assert_ptr_null(*cache);
	remove_tree(tmpdir);
}

/* An entry for domain holding policy body raw (NULL: no policy). */
static mtasts_cache_entry *make_entry(const char *domain, const char *raw, size_t raw_len)
{
	mtasts_cache_entry *e = NULL;
	char why[128];
	ck_assert_int_eq(mtasts_cache_entry_new(domain, &e), MTASTS_OK);
	if (raw) {
		e->raw = malloc(raw_len + 1);
		ck_assert_ptr_nonnull(e->raw);
		memcpy(e->raw, raw, raw_len);
		e->raw[raw_len] = '\0';
		e->raw_len = raw_len;
		ck_assert_int_eq(mtasts_policy_parse(raw, raw_len, &e->policy, why, sizeof why), MTASTS_OK);
	}
	return e;
}

static void fill_fields(mtasts_cache_entry *e)
{
	strcpy(e->id, "20240101T000000Z");
	e->fetched_at = 1700000000;
	e->expires_at = 1700086400;
	e->txt_checked_at = 1700000123;
	e->failed_at = 1700000456;
	strcpy(e->failed_id, "abcXYZ0123456789abcXYZ0123456789");   /* 32 characters */
	e->failed_result = MTASTS_RESULT_CERTIFICATE_EXPIRED;
	strcpy(e->failed_reason, "certificate of mta-sts.example.com expired: notAfter 2023");
	e->failure_count = 4294967295u;
}

static void assert_entries_equal(const mtasts_cache_entry *a, const mtasts_cache_entry *b)
{
	ck_assert_str_eq(a->domain, b->domain);
	ck_assert_str_eq(a->id, b->id);
	ck_assert_int_eq(a->fetched_at, b->fetched_at);
	ck_assert_int_eq(a->expires_at, b->expires_at);
	ck_assert_int_eq(a->txt_checked_at, b->txt_checked_at);
	ck_assert_int_eq(a->failed_at, b->failed_at);
	ck_assert_str_eq(a->failed_id, b->failed_id);
	ck_assert_int_eq(a->failed_result, b->failed_result);
	ck_assert_str_eq(a->failed_reason, b->failed_reason);
	ck_assert_uint_eq(a->failure_count, b->failure_count);
	ck_assert_uint_eq(a->raw_len, b->raw_len);
	if (a->raw_len)
		ck_assert_int_eq(memcmp(a->raw, b->raw, a->raw_len), 0);
	ck_assert_int_eq(a->policy == NULL, b->policy == NULL);
	if (a->policy) {
		ck_assert_int_eq(a->policy->mode, b->policy->mode);
		ck_assert_uint_eq(a->policy->max_age, b->policy->max_age);
		ck_assert_uint_eq(a->policy->mx_count, b->policy->mx_count);
		for (size_t i = 0; i < a->policy->mx_count; i++)
			ck_assert_str_eq(a->policy->mx[i], b->policy->mx[i]);
	}
}

/* The on-disk path of domain's entry (found by glob: the bucket is the cache's business). */
static void entry_file(const char *domain, char *out, size_t size)
{
	char pattern[PATH_MAX];
	glob_t g;
	snprintf(pattern, sizeof pattern, "%s/*/%s", cachedir, domain);
	ck_assert_int_eq(glob(pattern, 0, NULL, &g), 0);
	ck_assert_uint_eq(g.gl_pathc, 1);
	snprintf(out, size, "%s", g.gl_pathv[0]);
	globfree(&g);
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static long fd_flags(int fd)
{
	char path[64], line[128];
	long flags = -1;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "flags: %lo", &flags) == 1)
			break;
	fclose(f);
	return flags;
}

/* ---------------------------------------------------------------------------------------- */
/* round trips */

START_TEST(round_trip_every_field)
{
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e = make_entry("Example.COM.", POLICY_A, strlen(POLICY_A)), *got = NULL, *p = NULL;
	char *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;

	ck_assert_str_eq(e->domain, "example.com");   /* entry_new normalises */
	fill_fields(e);
	/* in memory */
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_OK);
	ck_assert_int_eq(strncmp(buf, "mtasts-cache 1\ndomain: example.com\n", 35), 0);
	ck_assert_ptr_nonnull(memmem(buf, len, "\nmx: *.backup.example.net\n", 26));
	ck_assert_ptr_nonnull(memmem(buf, len, "\nfailed_result: certificate-expired\n", 36));
	ck_assert_ptr_nonnull(memmem(buf, len, "\nfailure_count: 4294967295\n", 27));
	ck_assert_int_eq(memcmp(buf + len - 5, "\nend\n", 5), 0);
	ck_assert_int_eq(mtasts_cache_entry_parse(buf, len, &p), MTASTS_OK);
	assert_entries_equal(e, p);
	ck_assert_int_eq(p->policy->mode, MTASTS_MODE_ENFORCE);
	ck_assert_uint_eq(p->policy->max_age, 86400);
	ck_assert_uint_eq(p->policy->mx_count, 2);
	ck_assert_int_eq(mtasts_cache_entry_format(p, &buf2, &len2), MTASTS_OK);
	ck_assert_uint_eq(len, len2);
	ck_assert_int_eq(memcmp(buf, buf2, len), 0);
	/* on disk, with any spelling of the name */
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "EXAMPLE.com.", &got), MTASTS_OK);
	assert_entries_equal(e, got);
	/* replace */
	mtasts_cache_entry_destroy(&got);
	e->failure_count = 0;
	e->failed_at = 0;
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "example.com", &got), MTASTS_OK);
	assert_entries_equal(e, got);

	free(buf);
	free(buf2);
	mtasts_cache_entry_destroy(&p);
	mtasts_cache_entry_destroy(&got);
	mtasts_cache_entry_destroy(&e);
	ck_assert_ptr_null(e);
	close_cache(&cache);
}
END_TEST

START_TEST(policy_null_failure_only)
{
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e = make_entry("nopolicy.example", NULL, 0), *got = NULL;
	e->failed_at = 1700000000;
	strcpy(e->failed_id, "id1");
	e->failed_result = MTASTS_RESULT_STS_POLICY_FETCH_ERROR;
	strcpy(e->failed_reason, "HTTP 404");
	e->failure_count = 1;
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "nopolicy.example", &got), MTASTS_OK);
	ck_assert_ptr_null(got->policy);
	ck_assert_ptr_null(got->raw);
	ck_assert_uint_eq(got->raw_len, 0);
	ck_assert_str_eq(got->id, "");
	assert_entries_equal(e, got);
	mtasts_cache_entry_destroy(&got);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

START_TEST(mode_none)
{
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e = make_entry("optout.example", POLICY_NONE, strlen(POLICY_NONE)), *got = NULL;
	strcpy(e->id, "2");
	e->fetched_at = 10;
	e->expires_at = 3610;
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "optout.example", &got), MTASTS_OK);
	ck_assert_ptr_nonnull(got->policy);
	ck_assert_int_eq(got->policy->mode, MTASTS_MODE_NONE);
	ck_assert_uint_eq(got->policy->mx_count, 0);
	assert_entries_equal(e, got);
	mtasts_cache_entry_destroy(&got);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

START_TEST(big_raw_body)
{
	mtasts_cache *cache = open_cache();
	size_t cap = MTASTS_POLICY_BODY_MAX, len = 0;
	char *raw = malloc(cap + 2);
	mtasts_cache_entry *e, *got = NULL;

	ck_assert_ptr_nonnull(raw);
	len += (size_t)sprintf(raw, "version: STSv1\nmode: enforce\nmax_age: 86400\n");
	for (int i = 0; len + 40 < cap; i++)
		len += (size_t)sprintf(raw + len, "mx: mx%06d.big.example.com\n", i);
	/* pad to exactly the 64 KiB bound with an extension field */
	size_t pad = cap - len;
	ck_assert_uint_ge(pad, 5);
	memcpy(raw + len, "e: ", 3);
	memset(raw + len + 3, 'p', pad - 4);
	raw[cap - 1] = '\n';
	len = cap;
	e = make_entry("big.example", raw, len);
	ck_assert_uint_gt(e->policy->mx_count, 2000);
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "big.example", &got), MTASTS_OK);
	assert_entries_equal(e, got);
	mtasts_cache_entry_destroy(&got);
	/* one byte over the bound is refused */
	free(e->raw);
	e->raw = raw;
	raw[cap] = '\n';
	e->raw_len = cap + 1;
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_ERR_INVALID_ARG);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

START_TEST(format_refuses_inconsistent_entries)
{
	mtasts_cache_entry *e = make_entry("x.example", POLICY_A, strlen(POLICY_A)), *q = NULL;
	mtasts_policy *other = NULL;
	char why[128], *buf = NULL;
	size_t len;

	/* policy disagreeing with raw */
	ck_assert_int_eq(mtasts_policy_parse(POLICY_B, strlen(POLICY_B), &other, why, sizeof why), 0);
	mtasts_policy *mine = e->policy;
	e->policy = other;
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	ck_assert_ptr_null(buf);
	/* policy without raw, raw without policy */
	e->policy = NULL;
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	e->policy = mine;
	size_t raw_len = e->raw_len;
	e->raw_len = 0;
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	e->raw_len = raw_len;
	/* bad ids, negative times, unknown result, bad domain */
	strcpy(e->id, "has-dash");
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	memset(e->id, 'a', sizeof e->id);   /* no NUL: 33 characters */
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	strcpy(e->id, "ok");
	e->fetched_at = -1;
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	e->fetched_at = 0;
	e->failed_result = MTASTS_RESULT_COUNT_;
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	e->failed_result = MTASTS_RESULT_SUCCESS;
	strcpy(e->domain, "../etc");
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	strcpy(e->domain, "x.example");
	/* a failed_reason cannot inject lines: control bytes become '?' */
	snprintf(e->failed_reason, sizeof e->failed_reason, "bad\nmode: none\r\x01\xff end");
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_entry_parse(buf, len, &q), MTASTS_OK);
	ck_assert_str_eq(q->failed_reason, "bad?mode: none??? end");
	ck_assert_int_eq(q->policy->mode, MTASTS_MODE_ENFORCE);
	/* a reason filling the whole array without NUL is cut, not overrun */
	memset(e->failed_reason, 'r', sizeof e->failed_reason);
	free(buf);
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_OK);
	mtasts_cache_entry_destroy(&q);
	ck_assert_int_eq(mtasts_cache_entry_parse(buf, len, &q), MTASTS_OK);
	ck_assert_uint_eq(strlen(q->failed_reason), MTASTS_REASON_MAX - 1);

	free(buf);
	mtasts_policy_destroy(&other);
	mtasts_cache_entry_destroy(&q);
	mtasts_cache_entry_destroy(&e);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* damaged input */

START_TEST(truncated_at_every_length)
{
	mtasts_cache *cache = open_cache();
	const char *raws[] = { POLICY_A, POLICY_NONE, NULL };
	char path[PATH_MAX];

	for (size_t r = 0; r < 3; r++) {
		mtasts_cache_entry *e = make_entry("trunc.example", raws[r], raws[r] ? strlen(raws[r]) : 0);
		mtasts_cache_entry *p = NULL;
		char *buf = NULL;
		size_t len;
		fill_fields(e);
		ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_OK);
		for (size_t i = 0; i < len; i++) {
			char *copy = malloc(i ? i : 1);   /* exact size: ASan/valgrind catch overreads */
			memcpy(copy, buf, i);
			ck_assert_msg(mtasts_cache_entry_parse(copy, i, &p) == MTASTS_ERR_CORRUPT,
			              "prefix of %zu/%zu bytes accepted", i, len);
			ck_assert_ptr_null(p);
			free(copy);
		}
		/* and one byte too many */
		char *longer = malloc(len + 1);
		memcpy(longer, buf, len);
		longer[len] = '\n';
		ck_assert_int_eq(mtasts_cache_entry_parse(longer, len + 1, &p), MTASTS_ERR_CORRUPT);
		free(longer);
		/* on disk */
		ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
		entry_file("trunc.example", path, sizeof path);
		for (size_t i = 0; i < len; i += 7) {
			write_file(path, buf, i);
			ck_assert_int_eq(mtasts_cache_get(cache, "trunc.example", &p), MTASTS_ERR_CORRUPT);
			ck_assert_ptr_null(p);
		}
		/* trailing bytes on disk, including a second end marker */
		char *tail = malloc(len + 4);
		memcpy(tail, buf, len);
		memcpy(tail + len, "end\n", 4);
		write_file(path, tail, len + 1);
		ck_assert_int_eq(mtasts_cache_get(cache, "trunc.example", &p), MTASTS_ERR_CORRUPT);
		write_file(path, tail, len + 4);
		ck_assert_int_eq(mtasts_cache_get(cache, "trunc.example", &p), MTASTS_ERR_CORRUPT);
		free(tail);
		write_file(path, buf, len);
		ck_assert_int_eq(mtasts_cache_get(cache, "trunc.example", &p), MTASTS_OK);
		mtasts_cache_entry_destroy(&p);
		free(buf);
		mtasts_cache_entry_destroy(&e);
	}
	close_cache(&cache);
}
END_TEST

/* Replace the first occurrence of from by to in a formatted entry and expect CORRUPT. */
static void expect_corrupt_edit(const char *good, const char *from, const char *to)
{
	char buf[4096];
	mtasts_cache_entry *p = NULL;
	const char *at = strstr(good, from);
	ck_assert_msg(at != NULL, "'%s' not in the sample", from);
	size_t head = (size_t)(at - good);
	int n = snprintf(buf, sizeof buf, "%.*s%s%s", (int)head, good, to, at + strlen(from));
	ck_assert_int_lt(n, (int)sizeof buf);
	ck_assert_msg(mtasts_cache_entry_parse(buf, (size_t)n, &p) == MTASTS_ERR_CORRUPT,
	              "edit '%s' -> '%s' accepted", from, to);
	ck_assert_ptr_null(p);
}

START_TEST(garbage)
{
	mtasts_cache_entry *e = make_entry("g.example", POLICY_A, strlen(POLICY_A)), *p = NULL;
	char *good = NULL;
	size_t len;
	fill_fields(e);
	ck_assert_int_eq(mtasts_cache_entry_format(e, &good, &len), MTASTS_OK);
	good = realloc(good, len + 1);
	good[len] = '\0';

	/* sanity: the unedited sample parses */
	ck_assert_int_eq(mtasts_cache_entry_parse(good, len, &p), MTASTS_OK);
	mtasts_cache_entry_destroy(&p);

	ck_assert_int_eq(mtasts_cache_entry_parse("", 0, &p), MTASTS_ERR_CORRUPT);
	ck_assert_int_eq(mtasts_cache_entry_parse(NULL, 0, &p), MTASTS_ERR_CORRUPT);
	ck_assert_int_eq(mtasts_cache_entry_parse(NULL, 5, &p), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_cache_entry_parse(good, len, NULL), MTASTS_ERR_INVALID_ARG);

	expect_corrupt_edit(good, "mtasts-cache 1", "mtasts-cache 2");
	expect_corrupt_edit(good, "domain: g.example\n", "domain: G.example\n");
	expect_corrupt_edit(good, "domain: g.example\n", "domain: ../etc\n");
	expect_corrupt_edit(good, "domain: g.example\n", "domain: g.example\r\n");
	expect_corrupt_edit(good, "domain: g.example\n", "domain:g.example\n");
	expect_corrupt_edit(good, "domain: g.example\n", "domain: g.example\ndomain: g.example\n");
	expect_corrupt_edit(good, "id: 20240101T000000Z\n", "id: 2024-01-01\n");
	expect_corrupt_edit(good, "mode: enforce\n", "mode: testing\n");         /* disagrees with raw */
	expect_corrupt_edit(good, "mode: enforce\n", "mode: strict\n");
	expect_corrupt_edit(good, "max_age: 86400\n", "max_age: 86401\n");
	expect_corrupt_edit(good, "max_age: 86400\n", "max_age: 086400\n");
	expect_corrupt_edit(good, "mx: mail.example.com\n", "mx: evil.example.com\n");
	expect_corrupt_edit(good, "mx: mail.example.com\n", "");
	expect_corrupt_edit(good, "mx: mail.example.com\n", "mx: mail.example.com\nmx: more.example\n");
	expect_corrupt_edit(good, "mode: enforce\nmax_age: 86400\n", "");     /* policy lines gone */
	expect_corrupt_edit(good, "fetched_at: 1700000000\n", "fetched_at: -1700000000\n");
	expect_corrupt_edit(good, "fetched_at: 1700000000\n", "fetched_at: 99999999999999999999\n");
	expect_corrupt_edit(good, "fetched_at: 1700000000\n", "fetched_at: 9223372036854775808\n");
	expect_corrupt_edit(good, "fetched_at: 1700000000\n", "fetched_at: 17e8\n");
	expect_corrupt_edit(good, "fetched_at: 1700000000\n", "fetched_at:\n");
	expect_corrupt_edit(good, "fetched_at: 1700000000\nexpires_at", "expires_at");
	expect_corrupt_edit(good, "failed_result: certificate-expired\n", "failed_result: expired\n");
	expect_corrupt_edit(good, "failed_reason: certificate", "failed_reason: \x7f""certificate");
	expect_corrupt_edit(good, "failure_count: 4294967295\n", "failure_count: 4294967296\n");
	expect_corrupt_edit(good, "raw-length: ", "raw-length: 1");
	expect_corrupt_edit(good, "raw-length: ", "raw-length:  ");
	expect_corrupt_edit(good, "\n\nversion", "\nversion");
	expect_corrupt_edit(good, "\nend\n", "\nEND\n");
	expect_corrupt_edit(good, "\nend\n", "\nend");
	expect_corrupt_edit(good, "\nend\n", "\nend\n\n");
	expect_corrupt_edit(good, "version: STSv1", "version: STSv2");         /* raw no longer parses */
	/* an entry without a policy must not carry a raw body, and vice versa */
	{
		const char *np = "mtasts-cache 1\ndomain: a.example\nid:\nfetched_at: 0\nexpires_at: 0\n"
		                 "txt_checked_at: 0\nfailed_at: 0\nfailed_id:\nfailed_result: success\n"
		                 "failed_reason:\nfailure_count: 0\nraw-length: 0\n\n\nend\n";
		ck_assert_int_eq(mtasts_cache_entry_parse(np, strlen(np), &p), MTASTS_OK);
		ck_assert_ptr_null(p->policy);
		mtasts_cache_entry_destroy(&p);
		expect_corrupt_edit(np, "raw-length: 0\n\n", "raw-length: 3\n\nabc");
		expect_corrupt_edit(np, "id:\n", "id:\nmode: none\nmax_age: 5\n");
	}

	/* random bytes and random mutations of the sample: never OK, never a crash */
	srand(12345);
	for (int round = 0; round < 20000; round++) {
		char buf[600];
		size_t n = (size_t)rand() % sizeof buf;
		if (round % 2) {
			for (size_t i = 0; i < n; i++)
				buf[i] = (char)rand();
		} else {
			n = len < sizeof buf ? len : sizeof buf;
			memcpy(buf, good, n);
			buf[(size_t)rand() % n] ^= (char)(1 + rand() % 255);
		}
		mtasts_status st = mtasts_cache_entry_parse(buf, n, &p);
		ck_assert(st == MTASTS_ERR_CORRUPT || st == MTASTS_OK);
		if (st == MTASTS_OK) {   /* a flip inside failed_reason, say: must still format */
			char *again = NULL;
			size_t again_len;
			ck_assert_int_eq(mtasts_cache_entry_format(p, &again, &again_len), MTASTS_OK);
			free(again);
			mtasts_cache_entry_destroy(&p);
		}
	}
	free(good);
	mtasts_cache_entry_destroy(&e);
}
END_TEST

START_TEST(nul_bytes)
{
	static const char raw[] = "version: STSv1\nmode: enforce\0\nmx: a.example\nmax_age: 5\n";
	mtasts_cache_entry *e = make_entry("nul.example", NULL, 0), *p = NULL;
	char *buf = NULL, file[1024];
	size_t len;

	/* a raw body with NUL bytes is not a policy (policy.h): refused, never truncated */
	e->raw = malloc(sizeof raw);
	memcpy(e->raw, raw, sizeof raw);
	e->raw_len = sizeof raw - 1;
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_ERR_INVALID_ARG);
	ck_assert_ptr_null(buf);
	/* hand-made files with NUL bytes in the raw body or in the header */
	int hl = snprintf(file, sizeof file,
	                  "mtasts-cache 1\ndomain: nul.example\nid: 1\nmode: enforce\nmax_age: 5\n"
	                  "mx: a.example\nfetched_at: 0\nexpires_at: 0\ntxt_checked_at: 0\nfailed_at: 0\n"
	                  "failed_id:\nfailed_result: success\nfailed_reason:\nfailure_count: 0\n"
	                  "raw-length: %zu\n\n", sizeof raw - 1);
	memcpy(file + hl, raw, sizeof raw - 1);
	memcpy(file + hl + sizeof raw - 1, "\nend\n", 5);
	len = (size_t)hl + sizeof raw - 1 + 5;
	ck_assert_int_eq(mtasts_cache_entry_parse(file, len, &p), MTASTS_ERR_CORRUPT);
	/* without the NUL the same file is fine: the NUL was the only fault */
	char *nonul = memchr(file + hl, '\0', sizeof raw - 1);
	*nonul = ' ';
	ck_assert_int_eq(mtasts_cache_entry_parse(file, len, &p), MTASTS_OK);
	mtasts_cache_entry_destroy(&p);
	file[20] = '\0';   /* inside "domain: nul.example" */
	ck_assert_int_eq(mtasts_cache_entry_parse(file, len, &p), MTASTS_ERR_CORRUPT);
	ck_assert_ptr_null(p);
	mtasts_cache_entry_destroy(&e);
}
END_TEST

START_TEST(hostile_domains)
{
	mtasts_cache *cache = open_cache();
	char longname[301];
	memset(longname, 'a', 300);
	longname[300] = '\0';
	const char *bad[] = { "../etc", "a/b", "", ".", "..", "/etc/passwd", "a..b", "x.example/../../y",
	                      "a\nb.example", "a@L", "@tmp.1.2", "127.0.0.1", "-a.example", longname };
	mtasts_cache_entry *e = make_entry("ok.example", NULL, 0), *p = NULL;
	int fd = 123;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(mtasts_cache_get(cache, bad[i], &p) == MTASTS_ERR_INVALID_ARG, "%s", bad[i]);
		ck_assert_ptr_null(p);
		ck_assert_int_eq(mtasts_cache_delete(cache, bad[i]), MTASTS_ERR_INVALID_ARG);
		ck_assert_int_eq(mtasts_cache_lock(cache, bad[i], false, &fd), MTASTS_ERR_INVALID_ARG);
		ck_assert_int_eq(fd, -1);
		ck_assert_int_eq(mtasts_cache_entry_new(bad[i], &p), MTASTS_ERR_INVALID_ARG);
		if (strlen(bad[i]) < sizeof e->domain) {
			strcpy(e->domain, bad[i]);
			ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_ERR_INVALID_ARG);
		}
	}
	ck_assert_int_eq(mtasts_cache_get(cache, NULL, &p), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_cache_entry_new(NULL, &p), MTASTS_ERR_INVALID_ARG);
	/* nothing was created anywhere: the tmp dir holds only the (empty) cache dir */
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof cmd, "test \"$(find '%s' | wc -l)\" -eq 2", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	/* the longest valid name (253 characters) works, lock file included */
	char name[254];
	memset(name, 'a', 253);
	name[63] = name[127] = name[191] = '.';   /* labels of 63, 63, 63 and 61 characters */
	name[253] = '\0';
	ck_assert_uint_eq(strlen(name), 253);
	ck_assert(mtasts_domain_is_valid(name));
	strcpy(e->domain, name);
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, name, &p), MTASTS_OK);
	mtasts_cache_entry_destroy(&p);
	ck_assert_int_eq(mtasts_cache_lock(cache, name, false, &fd), MTASTS_OK);
	mtasts_cache_unlock(&fd);
	ck_assert_int_eq(fd, -1);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

START_TEST(symlinks_not_followed)
{
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e = make_entry("sym.example", POLICY_A, strlen(POLICY_A)), *p = NULL;
	char path[PATH_MAX], outside[PATH_MAX], *buf = NULL;
	size_t len;

	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	entry_file("sym.example", path, sizeof path);
	ck_assert_int_eq(mtasts_cache_entry_format(e, &buf, &len), MTASTS_OK);
	snprintf(outside, sizeof outside, "%s/outside", tmpdir);
	write_file(outside, buf, len);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink(outside, path), 0);
	/* a planted symlink is not read ... */
	ck_assert_int_ne(mtasts_cache_get(cache, "sym.example", &p), MTASTS_OK);
	ck_assert_ptr_null(p);
	/* ... and a put replaces the link, not its target */
	e->failure_count = 9;
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "sym.example", &p), MTASTS_OK);
	ck_assert_uint_eq(p->failure_count, 9);
	struct stat st;
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(stat(outside, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)len);
	mtasts_cache_entry_destroy(&p);
	/* put never creates through a symlinked bucket directory (openat2 RESOLVE_NO_SYMLINKS) */
	char bucket[PATH_MAX], moved[PATH_MAX], evil[PATH_MAX], cmd[3 * PATH_MAX];
	snprintf(bucket, sizeof bucket, "%.*s", (int)(strrchr(path, '/') - path), path);
	snprintf(moved, sizeof moved, "%s/moved", tmpdir);
	snprintf(evil, sizeof evil, "%s/evil", tmpdir);
	ck_assert_int_eq(mkdir(evil, 0755), 0);
	ck_assert_int_eq(rename(bucket, moved), 0);
	ck_assert_int_eq(symlink(evil, bucket), 0);
	ck_assert_int_ne(mtasts_cache_put(cache, e), MTASTS_OK);
	int lfd = -1;
	ck_assert_int_ne(mtasts_cache_lock(cache, "sym.example", false, &lfd), MTASTS_OK);
	ck_assert_int_eq(lfd, -1);
	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", evil);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(unlink(bucket), 0);
	ck_assert_int_eq(rename(moved, bucket), 0);
	/* a FIFO planted under an entry's name must not hang the reader */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	ck_assert_int_eq(mtasts_cache_get(cache, "sym.example", &p), MTASTS_ERR_CORRUPT);
	ck_assert_ptr_null(p);
	/* a file copied under another domain's name is damage, not that domain's policy */
	char other[PATH_MAX];
	mtasts_cache_entry *o = make_entry("other.example", NULL, 0);
	ck_assert_int_eq(mtasts_cache_put(cache, o), MTASTS_OK);
	entry_file("other.example", other, sizeof other);
	write_file(other, buf, len);
	ck_assert_int_eq(mtasts_cache_get(cache, "other.example", &p), MTASTS_ERR_CORRUPT);
	mtasts_cache_entry_destroy(&o);
	free(buf);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* directory operations */

START_TEST(failed_put_leaves_no_temp_file)
{
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e = make_entry("dir.example", POLICY_A, strlen(POLICY_A)), *p = NULL;
	char path[PATH_MAX], inner[PATH_MAX + 8], pattern[PATH_MAX + 8];
	glob_t g;

	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	entry_file("dir.example", path, sizeof path);
	/* a non-empty directory in the entry's place makes the final rename fail */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(inner, sizeof inner, "%s/x", path);
	write_file(inner, "x", 1);
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_ERR_IO);
	snprintf(pattern, sizeof pattern, "%.*s/@tmp.*", (int)(strrchr(path, '/') - path), path);
	ck_assert_int_eq(glob(pattern, 0, NULL, &g), GLOB_NOMATCH);
	ck_assert_int_ne(mtasts_cache_get(cache, "dir.example", &p), MTASTS_OK);
	ck_assert_ptr_null(p);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

START_TEST(open_and_delete)
{
	mtasts_cache *cache = NULL;
	mtasts_cache_entry *e, *p = NULL;
	make_dirs();
	ck_assert_int_eq(mtasts_cache_open(cachedir, false, &cache), MTASTS_ERR_NOT_FOUND);
	ck_assert_ptr_null(cache);
	ck_assert_int_eq(mtasts_cache_open(NULL, true, &cache), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_cache_open(cachedir, true, &cache), MTASTS_OK);
	mtasts_cache_close(&cache);
	ck_assert_int_eq(mtasts_cache_open(cachedir, false, &cache), MTASTS_OK);   /* exists now */
	mtasts_cache_close(&cache);
	mtasts_cache_close(&cache);   /* harmless twice */
	ck_assert_int_eq(mtasts_cache_open(cachedir, true, &cache), MTASTS_OK);

	e = make_entry("del.example", POLICY_B, strlen(POLICY_B));
	ck_assert_int_eq(mtasts_cache_get(cache, "del.example", &p), MTASTS_ERR_NOT_FOUND);
	ck_assert_int_eq(mtasts_cache_delete(cache, "del.example"), MTASTS_ERR_NOT_FOUND);
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "del.example", &p), MTASTS_OK);
	mtasts_cache_entry_destroy(&p);
	ck_assert_int_eq(mtasts_cache_delete(cache, "DEL.example."), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_get(cache, "del.example", &p), MTASTS_ERR_NOT_FOUND);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(mtasts_cache_delete(cache, "del.example"), MTASTS_ERR_NOT_FOUND);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

/* entry_path names the file put() writes; get_stamped stamps the file it read, stamp_path the
 * file at a path; a put() over an entry (a new inode) changes the stamp, even at the same size. */
START_TEST(entry_path_and_stamps)
{
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e, *p = NULL;
	mtasts_cache_stamp got, at, again;
	char path[PATH_MAX], found[PATH_MAX], tiny[8];

	e = make_entry("stamp.example", POLICY_A, strlen(POLICY_A));
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_entry_path(cachedir, "STAMP.example.", path, sizeof path), MTASTS_OK);
	entry_file("stamp.example", found, sizeof found);
	ck_assert_str_eq(path, found);
	ck_assert_int_eq(mtasts_cache_entry_path(cachedir, "stamp.example", tiny, sizeof tiny),
	                 MTASTS_ERR_TOO_LARGE);
	ck_assert_str_eq(tiny, "");
	ck_assert_int_eq(mtasts_cache_entry_path(cachedir, "bad..example", path + 0, sizeof path),
	                 MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_cache_entry_path(cachedir, "stamp.example", path, sizeof path), MTASTS_OK);

	ck_assert_int_eq(mtasts_cache_get_stamped(cache, "stamp.example", &p, &got), MTASTS_OK);
	ck_assert_ptr_nonnull(p);
	mtasts_cache_entry_destroy(&p);
	ck_assert_int_eq(mtasts_cache_stamp_path(path, &at), MTASTS_OK);
	ck_assert(mtasts_cache_stamp_equal(&got, &at));
	ck_assert_int_eq(got.size > 0, 1);

	/* the same content put again: a new file, so a new stamp */
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_stamp_path(path, &again), MTASTS_OK);
	ck_assert_int_eq(again.size, at.size);
	ck_assert(!mtasts_cache_stamp_equal(&again, &at));
	ck_assert_int_eq(mtasts_cache_get_stamped(cache, "stamp.example", &p, &got), MTASTS_OK);
	mtasts_cache_entry_destroy(&p);
	ck_assert(mtasts_cache_stamp_equal(&got, &again));

	ck_assert_int_eq(mtasts_cache_delete(cache, "stamp.example"), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_stamp_path(path, &at), MTASTS_ERR_NOT_FOUND);
	ck_assert_int_eq(mtasts_cache_get_stamped(cache, "stamp.example", &p, &got), MTASTS_ERR_NOT_FOUND);
	ck_assert_ptr_null(p);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

typedef struct visit_state {
	int count;
	int stop_after;
	char seen_bad;
} visit_state;

static int visit(const char *domain, void *arg)
{
	visit_state *s = arg;
	if (!mtasts_domain_is_valid(domain) || strchr(domain, '@'))
		s->seen_bad = 1;
	s->count++;
	return s->stop_after && s->count == s->stop_after ? 77 : 0;
}

START_TEST(foreach_counts)
{
	mtasts_cache *cache = open_cache();
	char name[64], path[PATH_MAX], dir[PATH_MAX];
	int fd = -1;

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "d%d.example", i);
		mtasts_cache_entry *e = make_entry(name, i % 2 ? POLICY_A : NULL, i % 2 ? strlen(POLICY_A) : 0);
		ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
		mtasts_cache_entry_destroy(&e);
		if (i % 3 == 0) {   /* lock files must not be counted */
			ck_assert_int_eq(mtasts_cache_lock(cache, name, false, &fd), MTASTS_OK);
			mtasts_cache_unlock(&fd);
		}
	}
	/* strays next to d0.example: stale and fresh temp files, junk, a directory */
	entry_file("d0.example", path, sizeof path);
	snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
	char stale[PATH_MAX], fresh[PATH_MAX], junk[PATH_MAX];
	snprintf(stale, sizeof stale, "%s/@tmp.1.2.3", dir);
	snprintf(fresh, sizeof fresh, "%s/@tmp.4.5.6", dir);
	snprintf(junk, sizeof junk, "%s/JUNK.example", dir);
	write_file(stale, "x", 1);
	write_file(fresh, "y", 1);
	write_file(junk, "z", 1);
	struct timespec old[2] = { { .tv_sec = time(NULL) - 7200 }, { .tv_sec = time(NULL) - 7200 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, stale, old, 0), 0);
	/* a directory where an entry would be, in the right bucket */
	mtasts_cache_entry *z = make_entry("zz.example", NULL, 0);
	ck_assert_int_eq(mtasts_cache_put(cache, z), MTASTS_OK);
	mtasts_cache_entry_destroy(&z);
	entry_file("zz.example", path, sizeof path);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/notabucket", cachedir);
	ck_assert_int_eq(mkdir(path, 0755), 0);

	visit_state s = { 0 };
	ck_assert_int_eq(mtasts_cache_foreach(cache, visit, &s), MTASTS_OK);
	ck_assert_int_eq(s.count, 300);
	ck_assert_int_eq(s.seen_bad, 0);
	ck_assert_int_eq(access(stale, F_OK), -1);   /* cleaned up */
	ck_assert_int_eq(access(fresh, F_OK), 0);    /* maybe in use: left alone */
	ck_assert_int_eq(access(junk, F_OK), 0);

	visit_state stop = { .stop_after = 5 };
	ck_assert_int_eq(mtasts_cache_foreach(cache, visit, &stop), 77);
	ck_assert_int_eq(stop.count, 5);

	ck_assert_int_eq(mtasts_cache_delete(cache, "d7.example"), MTASTS_OK);
	s.count = 0;
	ck_assert_int_eq(mtasts_cache_foreach(cache, visit, &s), MTASTS_OK);
	ck_assert_int_eq(s.count, 299);
	close_cache(&cache);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* concurrency */

START_TEST(lock_coalescing_across_processes)
{
	mtasts_cache *cache = open_cache();
	int to_child[2], to_parent[2], fd = -1, fd2 = -1;
	char c;

	ck_assert_int_eq(pipe2(to_child, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(to_parent, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int lfd = -1, code = 0;
		struct timespec t0, t1;
		if (read(to_child[0], &c, 1) != 1)
			_exit(10);
		if (mtasts_cache_lock(cache, "lock.example", false, &lfd) != MTASTS_ERR_BUSY || lfd != -1)
			code = 11;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (write(to_parent[1], "b", 1) != 1)
			_exit(12);
		if (mtasts_cache_lock(cache, "lock.example", true, &lfd) != MTASTS_OK || lfd < 0)
			_exit(13);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (waited < 0.15)   /* the parent holds it for 300 ms after our signal */
			code = code ? code : 14;
		mtasts_cache_unlock(&lfd);
		_exit(code);
	}
	ck_assert_int_eq(mtasts_cache_lock(cache, "Lock.Example", false, &fd), MTASTS_OK);
	ck_assert_int_ge(fd, 0);
	/* flock locks belong to the open file: a second open in this process conflicts too */
	ck_assert_int_eq(mtasts_cache_lock(cache, "lock.example", false, &fd2), MTASTS_ERR_BUSY);
	ck_assert_int_eq(fd2, -1);
	/* another domain is independent */
	ck_assert_int_eq(mtasts_cache_lock(cache, "other.example", false, &fd2), MTASTS_OK);
	mtasts_cache_unlock(&fd2);
	ck_assert_int_eq(write(to_child[1], "a", 1), 1);
	ck_assert_int_eq(read(to_parent[0], &c, 1), 1);
	struct timespec hold = { 0, 300 * 1000 * 1000 };
	nanosleep(&hold, NULL);
	mtasts_cache_unlock(&fd);
	ck_assert_int_eq(fd, -1);
	mtasts_cache_unlock(&fd);   /* harmless twice */
	int wst;
	ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
	ck_assert(WIFEXITED(wst));
	ck_assert_int_eq(WEXITSTATUS(wst), 0);
	/* free again */
	ck_assert_int_eq(mtasts_cache_lock(cache, "lock.example", false, &fd), MTASTS_OK);
	mtasts_cache_unlock(&fd);
	close(to_child[0]), close(to_child[1]), close(to_parent[0]), close(to_parent[1]);
	close_cache(&cache);
}
END_TEST

START_TEST(readers_never_see_torn_entries)
{
	mtasts_cache *cache = open_cache();
	/* version B is big (many mx) so a torn read would be likely if writes were not atomic */
	size_t cap = 20000, blen = 0;
	char *big = malloc(cap);
	blen += (size_t)sprintf(big, "version: STSv1\nmode: testing\nmax_age: 600\n");
	for (int i = 0; blen + 40 < cap; i++)
		blen += (size_t)sprintf(big + blen, "mx: m%d.race.example\n", i);
	mtasts_cache_entry *a = make_entry("race.example", POLICY_A, strlen(POLICY_A));
	mtasts_cache_entry *b = make_entry("race.example", big, blen);
	strcpy(a->id, "A");
	strcpy(b->id, "B");
	ck_assert_int_eq(mtasts_cache_put(cache, a), MTASTS_OK);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (int i = 0; i < 1000; i++) {
			mtasts_cache_entry *w = i % 2 ? a : b;
			w->failure_count = (uint32_t)i;
			if (mtasts_cache_put(cache, w) != MTASTS_OK)
				_exit(1);
		}
		_exit(0);
	}
	int reads = 0, seen_a = 0, seen_b = 0, wst = 0;
	bool writer_done = false;
	while (reads < 1000 || !writer_done) {
		mtasts_cache_entry *p = NULL;
		ck_assert_int_eq(mtasts_cache_get(cache, "race.example", &p), MTASTS_OK);
		const mtasts_cache_entry *want = strcmp(p->id, "A") == 0 ? a : b;
		ck_assert_str_eq(p->id, want->id);
		ck_assert_uint_eq(p->raw_len, want->raw_len);
		ck_assert_int_eq(memcmp(p->raw, want->raw, p->raw_len), 0);
		ck_assert_uint_eq(p->policy->mx_count, want->policy->mx_count);
		if (want == a)
			seen_a++;
		else
			seen_b++;
		mtasts_cache_entry_destroy(&p);
		reads++;
		if (!writer_done && waitpid(pid, &wst, WNOHANG) == pid)
			writer_done = true;
	}
	ck_assert(WIFEXITED(wst));
	ck_assert_int_eq(WEXITSTATUS(wst), 0);
	ck_assert_int_gt(seen_a, 0);
	ck_assert_int_gt(seen_b, 0);
	/* the last put wins, and no temp file is left behind */
	mtasts_cache_entry *p = NULL;
	ck_assert_int_eq(mtasts_cache_get(cache, "race.example", &p), MTASTS_OK);
	ck_assert_str_eq(p->id, "A");
	ck_assert_uint_eq(p->failure_count, 999);
	mtasts_cache_entry_destroy(&p);
	char pattern[PATH_MAX];
	glob_t g;
	snprintf(pattern, sizeof pattern, "%s/*/@tmp.*", cachedir);
	ck_assert_int_eq(glob(pattern, 0, NULL, &g), GLOB_NOMATCH);
	mtasts_cache_entry_destroy(&a);
	mtasts_cache_entry_destroy(&b);
	free(big);
	close_cache(&cache);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* resources and permissions */

static int count_visit(const char *domain, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

START_TEST(no_fd_leaks)
{
	int before = count_fds();
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e = make_entry("leak.example", POLICY_A, strlen(POLICY_A)), *p = NULL;
	char path[PATH_MAX];
	int fd = -1, fd2 = -1, n = 0;

	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
		ck_assert_int_eq(mtasts_cache_get(cache, "leak.example", &p), MTASTS_OK);
		mtasts_cache_entry_destroy(&p);
		ck_assert_int_eq(mtasts_cache_get(cache, "missing.example", &p), MTASTS_ERR_NOT_FOUND);
		ck_assert_int_eq(mtasts_cache_get(cache, "../bad", &p), MTASTS_ERR_INVALID_ARG);
		ck_assert_int_eq(mtasts_cache_lock(cache, "leak.example", false, &fd), MTASTS_OK);
		ck_assert_int_eq(mtasts_cache_lock(cache, "leak.example", false, &fd2), MTASTS_ERR_BUSY);
		mtasts_cache_unlock(&fd);
		ck_assert_int_eq(mtasts_cache_foreach(cache, count_visit, &n), MTASTS_OK);
	}
	ck_assert_int_eq(n, 200);
	/* error paths too: a damaged file, a failing put (bucket made read-only is not enough as
	 * root, so use an inconsistent entry), delete hit and miss */
	entry_file("leak.example", path, sizeof path);
	write_file(path, "mtasts-cache 1\n", 15);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(mtasts_cache_get(cache, "leak.example", &p), MTASTS_ERR_CORRUPT);
	ck_assert_int_eq(mtasts_cache_delete(cache, "leak.example"), MTASTS_OK);
	ck_assert_int_eq(mtasts_cache_delete(cache, "leak.example"), MTASTS_ERR_NOT_FOUND);
	close_cache(&cache);
	mtasts_cache_entry_destroy(&e);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(modes_and_cloexec)
{
	mode_t old = umask(077);   /* a restrictive umask must not hide the cache from the MTA user */
	mtasts_cache *cache = open_cache();
	mtasts_cache_entry *e = make_entry("perm.example", POLICY_A, strlen(POLICY_A));
	char path[PATH_MAX], dir[PATH_MAX];
	struct stat st;
	int fd = -1;

	ck_assert_int_eq(stat(cachedir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0755);
	ck_assert_int_eq(mtasts_cache_put(cache, e), MTASTS_OK);
	entry_file("perm.example", path, sizeof path);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0644);
	snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0755);

	ck_assert_int_eq(mtasts_cache_lock(cache, "perm.example", true, &fd), MTASTS_OK);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert(fd_flags(fd) & O_CLOEXEC);
	char lockpath[PATH_MAX + 4];
	snprintf(lockpath, sizeof lockpath, "%s@L", path);
	ck_assert_int_eq(stat(lockpath, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0644);
	mtasts_cache_unlock(&fd);

	/* the cache's own directory fd is close-on-exec as well */
	int found = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while ((de = readdir(d))) {
		char link[64], target[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, cachedir) == 0) {
			found++;
			ck_assert(fd_flags(atoi(de->d_name)) & O_CLOEXEC);
		}
	}
	closedir(d);
	ck_assert_int_eq(found, 1);
	umask(old);
	mtasts_cache_entry_destroy(&e);
	close_cache(&cache);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("format");
	tcase_add_test(tc, round_trip_every_field);
	tcase_add_test(tc, policy_null_failure_only);
	tcase_add_test(tc, mode_none);
	tcase_add_test(tc, big_raw_body);
	tcase_add_test(tc, format_refuses_inconsistent_entries);
	tcase_add_test(tc, truncated_at_every_length);
	tcase_add_test(tc, garbage);
	tcase_add_test(tc, nul_bytes);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("directory");
	tcase_add_test(tc, hostile_domains);
	tcase_add_test(tc, symlinks_not_followed);
	tcase_add_test(tc, open_and_delete);
	tcase_add_test(tc, entry_path_and_stamps);
	tcase_add_test(tc, failed_put_leaves_no_temp_file);
	tcase_add_test(tc, foreach_counts);
	tcase_add_test(tc, no_fd_leaks);
	tcase_add_test(tc, modes_and_cloexec);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_test(tc, lock_coalescing_across_processes);
	tcase_add_test(tc, readers_never_see_torn_entries);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(make_suite)
