/*
 * bench_cache.c - benchmark of the persistent policy cache (core/cache.c): bulk insert rate,
 * the honest rate of fsync'd puts, warm lookup latency (hit and miss) with N cached domains, and
 * the share of that spent parsing. Results and the exact commands are in bench/README.md.
 *
 *   bench_cache [-n DOMAINS] [-l LOOKUPS] [-s SYNCED_PUTS] [-d DIR] [-F] [-k] [-R CACHE_DIR]
 *
 *   -n  domains to preload (default 100000; the README's reference run uses 1000000)
 *   -l  timed lookups of random cached domains (default 100000), as many misses
 *   -s  puts timed with fsync, as mtasts_cache_put always does in production (default 200)
 *   -d  parent directory of the temporary cache (default /tmp); removed afterwards unless -k
 *   -F  preload WITHOUT fsync: this program's fsync() is a no-op while preloading (see below)
 *   -k  keep the cache directory (its name is printed)
 *   -R  reuse CACHE_DIR kept by an earlier -k run with the same -n: no preload, lookups only
 *
 * How -F works: cache.c calls fsync(); this executable defines fsync() itself, and a static link
 * against libmtasts.a binds cache.o to this definition. During the preload with -F it returns 0
 * without syncing; everywhere else (and always without -F) it makes the real system call. This
 * affects this benchmark only; the library has no way to skip fsync.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "mtasts/cache.h"

static bool skip_fsync;

int fsync(int fd)
{
	if (skip_fsync)
		return 0;
	return (int)syscall(SYS_fsync, fd);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* xorshift64*: reproducible, no libc rand() state */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void domain_name(uint64_t i, char out[MTASTS_DOMAIN_MAX])
{
	snprintf(out, MTASTS_DOMAIN_MAX, "d%07" PRIu64 ".mail-domain.example", i);
}

static void report(const char *what, double *us, size_t n)
{
	double sum = 0;
	qsort(us, n, sizeof *us, cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += us[i];
	printf("%-28s n=%zu  median %.2f us  p99 %.2f us  mean %.2f us  max %.1f us\n", what, n,
	       us[n / 2], us[(size_t)((double)n * 0.99)], sum / (double)n, us[n - 1]);
}

static int counter(const char *d, void *arg)
{
	(void)d;
	(*(size_t *)arg)++;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_cache [-n DOMAINS] [-l LOOKUPS] [-s SYNCED_PUTS] [-d DIR] [-F] [-k]"
	                " [-R CACHE_DIR]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t n = 100000, lookups = 100000, synced = 200;
	const char *parent = "/tmp", *reuse = NULL;
	bool nosync_preload = false, keep = false;
	int opt;

	while ((opt = getopt(argc, argv, "n:l:s:d:FkR:")) != -1) {
		switch (opt) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'l': lookups = strtoul(optarg, NULL, 10); break;
		case 's': synced = strtoul(optarg, NULL, 10); break;
		case 'd': parent = optarg; break;
		case 'F': nosync_preload = true; break;
		case 'k': keep = true; break;
		case 'R': reuse = optarg; keep = true; break;
		default: usage();
		}
	}
	if (n == 0 || lookups == 0)
		usage();

	static const char raw[] = "version: STSv1\nmode: enforce\nmx: mx1.mail-domain.example\n"
	                          "mx: *.backup.example.net\nmax_age: 604800\n";
	char dir[PATH_MAX], why[128], name[MTASTS_DOMAIN_MAX];
	mtasts_cache *cache = NULL;
	mtasts_cache_entry *e = NULL, *got = NULL;
	mtasts_status st;
	double t0, dt;

	snprintf(dir, sizeof dir, "%s/bench_cache.XXXXXX", parent);
	if (reuse)
		snprintf(dir, sizeof dir, "%s", reuse);
	else if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if ((st = mtasts_cache_open(dir, true, &cache)) != MTASTS_OK) {
		fprintf(stderr, "open: %s\n", mtasts_strerror(st));
		return 1;
	}
	if ((st = mtasts_cache_entry_new("placeholder.example", &e)) != MTASTS_OK)
		return 1;
	e->raw = strdup(raw);
	e->raw_len = strlen(raw);
	if (mtasts_policy_parse(raw, e->raw_len, &e->policy, why, sizeof why) != MTASTS_OK) {
		fprintf(stderr, "policy: %s\n", why);
		return 1;
	}
	strcpy(e->id, "20240501T120000");
	e->fetched_at = 1714564800;
	e->expires_at = e->fetched_at + 604800;
	e->txt_checked_at = e->fetched_at;

	printf("cache dir %s, %zu domains, preload %s\n", dir, n,
	       reuse ? "skipped (-R)" : nosync_preload ? "WITHOUT fsync (-F)" : "with fsync");

	/* 1. preload */
	skip_fsync = nosync_preload;
	if (reuse)
		goto preloaded;
	t0 = now();
	for (size_t i = 0; i < n; i++) {
		domain_name(i, name);
		strcpy(e->domain, name);
		if ((st = mtasts_cache_put(cache, e)) != MTASTS_OK) {
			fprintf(stderr, "put %s: %s (%s)\n", name, mtasts_strerror(st), strerror(errno));
			return 1;
		}
		if (n >= 100000 && i % (n / 10) == 0 && i)
			fprintf(stderr, "  %zu%% (%.0f puts/s)\n", i * 100 / n, (double)i / (now() - t0));
	}
	dt = now() - t0;
	skip_fsync = false;
	printf("preload: %zu puts in %.1f s = %.0f puts/s%s\n", n, dt, (double)n / dt,
	       nosync_preload ? " (fsync skipped)" : "");
	/* steady state: let writeback of the preload finish so it does not disturb what follows */
	t0 = now();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || syncfs(dfd) != 0) {
		perror("syncfs");
		return 1;
	}
	close(dfd);
	printf("syncfs after preload: %.1f s\n", now() - t0);
preloaded:

	/* 2. the honest cost of a put: fsync every time (replacing existing entries) */
	if (synced) {
		double *us = malloc(synced * sizeof *us);
		for (size_t i = 0; i < synced; i++) {
			domain_name(rng() % n, name);
			strcpy(e->domain, name);
			double a = now();
			if (mtasts_cache_put(cache, e) != MTASTS_OK)
				return 1;
			us[i] = (now() - a) * 1e6;
		}
		report("put (fsync, replace)", us, synced);
		free(us);
	}

	/* 3. lookups of a random sample of L cached domains, then of L absent names: a first pass
	 * (first look since the preload: the negative dentry of an absent name does not exist yet),
	 * then the same names again in another random order (warm: what the shim sees for the
	 * domains it keeps talking to) */
	double *us = malloc(lookups * sizeof *us);
	uint64_t *sample = malloc(lookups * sizeof *sample);
	static const char *const labels[2][2] = {
		{ "get hit, first look", "get hit, warm" },
		{ "get miss, first look", "get miss, warm" },
	};
	for (int absent = 0; absent < 2; absent++) {
		for (size_t i = 0; i < lookups; i++)
			sample[i] = (absent ? n : 0) + rng() % n;
		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; pass && i + 1 < lookups; i++) {   /* reshuffle */
				size_t j = i + rng() % (lookups - i);
				uint64_t t = sample[i];
				sample[i] = sample[j];
				sample[j] = t;
			}
			for (size_t i = 0; i < lookups; i++) {
				domain_name(sample[i], name);
				double a = now();
				st = mtasts_cache_get(cache, name, &got);
				us[i] = (now() - a) * 1e6;
				if (absent ? st != MTASTS_ERR_NOT_FOUND
				           : st != MTASTS_OK || got->policy->mode != MTASTS_MODE_ENFORCE) {
					fprintf(stderr, "get %s: %s\n", name, mtasts_strerror(st));
					return 1;
				}
				mtasts_cache_entry_destroy(&got);
			}
			report(labels[absent][pass], us, lookups);
		}
	}
	free(sample);

	/* 4. breakdown: parse alone of one formatted entry */
	char *buf = NULL;
	size_t len = 0;
	domain_name(0, name);
	strcpy(e->domain, name);
	if (mtasts_cache_entry_format(e, &buf, &len) != MTASTS_OK)
		return 1;
	for (size_t i = 0; i < lookups; i++) {
		double a = now();
		st = mtasts_cache_entry_parse(buf, len, &got);
		us[i] = (now() - a) * 1e6;
		if (st != MTASTS_OK)
			return 1;
		mtasts_cache_entry_destroy(&got);
	}
	report("entry_parse only", us, lookups);
	printf("entry file size %zu bytes\n", len);
	free(buf);
	free(us);

	/* 5. a full scan, as `mtasts refresh` does */
	t0 = now();
	size_t count = 0;
	st = mtasts_cache_foreach(cache, counter, &count);
	printf("foreach: %zu domains in %.2f s\n", count, now() - t0);

	mtasts_cache_entry_destroy(&e);
	mtasts_cache_close(&cache);
	if (!keep) {
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		t0 = now();
		if (system(cmd) != 0)
			return 1;
		fprintf(stderr, "removed %s in %.1f s\n", dir, now() - t0);
	}
	return st == MTASTS_OK && count == n ? 0 : 1;
}
