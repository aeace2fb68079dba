/*
 * acquire.c - effective policies for the shim (DESIGN.md §4): read the shared cache, start the
 * fetcher fully detached when it has nothing fresh, wait a bounded time for it at connect time.
 *
 * The fetcher is started with two raw clone() system calls, not fork(): the intermediate child
 * is created with no exit signal, so the MTA's SIGCHLD handler never runs for it and its
 * waitpid(-1) cannot reap it (only __WALL waits see such a child); we reap it by its pid. It
 * calls setsid() and clones the real child (exit signal SIGCHLD, reparented to init when the
 * intermediate exits at once). No atfork handler and no hook of ours runs in either child: they
 * only make system calls (default signal dispositions, empty mask, fds 0-2 on /dev/null, all
 * others closed, cwd /) and then execve the fetcher with a clean, prepared environment:
 * PATH, MTASTS_CONFIG when a config file was used, and outside secure mode the MTASTS_*
 * overrides the shim itself honoured, so both sides agree on the cache. Never LD_PRELOAD.
 */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acquire.h"
#include "mtasts/config.h"
#include "mtasts/log.h"
#include "shim.h"

#define KICK_SLOTS 64
#define KICK_COALESCE 10        /* seconds: one fetcher per domain per window */
#define WAIT_STEP_NS (50 * 1000 * 1000)
#define ENV_MAX 40

extern char **environ;

typedef struct kick {
	time_t at;
	char domain[MTASTS_DOMAIN_MAX];
} kick;
static kick kicks[KICK_SLOTS];

/* The cache is opened for each read of an entry (a memo miss, see below) and closed again: a
 * long-lived descriptor of ours could be closed and reused by the MTA behind our back (Exim
 * closes descriptors it does not know). */
static mtasts_status open_cache(mtasts_cache **c, char *why, size_t why_len)
{
	mtasts_status status = mtasts_cache_open(shim_cfg.cache_dir, false, c);

	if (status)
		snprintf(why, why_len, "cache %s: %s", shim_cfg.cache_dir, mtasts_strerror(status));
	return status;
}

/* ---- the detached fetcher ------------------------------------------------------------------- */

struct kernel_sigaction {   /* the kernel's layout, for rt_sigaction from a raw child */
	void *handler;
	unsigned long flags;
	void *restorer;
	unsigned long mask;
};

static long raw_clone(unsigned long flags)
{
	return syscall(SYS_clone, flags, 0L, 0L, 0L, 0L);
}

static void __attribute__((noreturn)) grandchild(char *const argv[], char *const envp[])
{
	struct kernel_sigaction dfl = { 0 };   /* SIG_DFL == 0 */
	unsigned long empty = 0;
	long nul;

	for (int sig = 1; sig < 65; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(unsigned long));
	}
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, sizeof(empty));
	syscall(SYS_chdir, "/");
	nul = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		syscall(SYS_exit_group, 126);
	for (long fd = 0; fd < 3; fd++) {
		if (fd == nul)
			syscall(SYS_fcntl, fd, F_SETFD, 0);
		else
			syscall(SYS_dup3, nul, fd, 0);
	}
	if (syscall(SYS_close_range, 3U, ~0U, 0) != 0) {
		for (long fd = 3; fd < 65536; fd++)
			syscall(SYS_close, fd);
	}
	syscall(SYS_execve, argv[0], argv, envp);
	syscall(SYS_exit_group, 127);
	__builtin_unreachable();
}

/* Start `fetcher [--config FILE] fetch DOMAIN` detached. false when it could not be started. */
static bool spawn_fetcher(const char *domain)
{
	char *argv[6];
	char *envp[ENV_MAX + 1];
	char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	char *config_env = NULL;
	size_t ne = 0, na = 0;
	bool ok = false;
	long pid;

	if (!shim_cfg.fetcher || access(shim_cfg.fetcher, X_OK) != 0) {
		shim_log(MTASTS_LOG_WARNING, "fetcher %s is not executable: cannot fetch the policy of %s",
		         shim_cfg.fetcher ? shim_cfg.fetcher : "(unset)", domain);
		return false;
	}
	argv[na++] = shim_cfg.fetcher;
	if (shim_cfg.config_path) {
		argv[na++] = (char *)"--config";
		argv[na++] = shim_cfg.config_path;
	}
	argv[na++] = (char *)"fetch";
	argv[na++] = (char *)domain;
	argv[na] = NULL;
	envp[ne++] = path_env;
	if (shim_cfg.config_path) {
		size_t len = strlen("MTASTS_CONFIG=") + strlen(shim_cfg.config_path) + 1;
		config_env = malloc(len);
		if (!config_env)
			return false;
		snprintf(config_env, len, "MTASTS_CONFIG=%s", shim_cfg.config_path);
		envp[ne++] = config_env;
	}
	if (!mtasts_secure_mode()) {
		for (char **e = environ; e && *e && ne < ENV_MAX; e++) {
			if (strncmp(*e, "MTASTS_", 7) == 0 && strncmp(*e, "MTASTS_CONFIG=", 14) != 0)
				envp[ne++] = *e;
		}
	}
	envp[ne] = NULL;

	pid = raw_clone(0);   /* no exit signal: invisible to the MTA's SIGCHLD handling */
	if (pid == 0) {
		syscall(SYS_setsid);
		long g = raw_clone(SIGCHLD);
		if (g == 0)
			grandchild(argv, envp);
		syscall(SYS_exit_group, g < 0 ? 1 : 0);
	}
	if (pid < 0) {
		shim_log(MTASTS_LOG_WARNING, "cannot start the fetcher for %s: %s", domain, strerror(errno));
		goto out;
	}
	int st;
	while (waitpid((pid_t)pid, &st, __WALL) < 0 && errno == EINTR)
		;
	ok = true;
out:
	free(config_env);
	return ok;
}

/* Start a fetch of domain unless one started recently; returns when it started (0: none). */
static time_t kick_fetch(const char *domain)
{
	time_t now = time(NULL), at = 0;
	size_t victim = 0;
	bool start = false;

	shim_lock();
	for (size_t i = 0; i < KICK_SLOTS; i++) {
		if (kicks[i].at && strcmp(kicks[i].domain, domain) == 0) {
			victim = i;
			if (now - kicks[i].at < KICK_COALESCE && now >= kicks[i].at)
				at = kicks[i].at;
			break;
		}
		if (kicks[i].at < kicks[victim].at)
			victim = i;
	}
	if (!at) {
		snprintf(kicks[victim].domain, sizeof(kicks[victim].domain), "%s", domain);
		kicks[victim].at = now;
		start = true;
	}
	shim_unlock();
	if (start) {
		if (!spawn_fetcher(domain)) {
			shim_lock();
			kicks[victim].at = 0;
			shim_unlock();
			return 0;
		}
		at = now;
	}
	return at;
}

/* ---- cache evaluation ----------------------------------------------------------------------- */

typedef enum {
	ENTRY_VALID,
	ENTRY_NEGATIVE_FRESH,
	ENTRY_NEEDS_FETCH,
	ENTRY_ERROR,          /* cache or entry unusable: transparent, the fetcher rewrites it */
	ENTRY_NOMEM,          /* the entry exists but could not be read into memory */
} entry_state;

/* Evaluate an entry at time now (expiry and TXT staleness always against the current time).
 * VALID fills view; NEEDS_FETCH also tells whether the fetch is only a background refresh. */
static entry_state evaluate(const mtasts_cache_entry *entry, const char *domain, time_t now,
                            time_t since, shim_policy_view *view, bool *refresh)
{
	bool stale = now - entry->txt_checked_at >= shim_cfg.txt_recheck;
	bool answered = since && (entry->txt_checked_at >= since || entry->fetched_at >= since ||
	                          entry->failed_at >= since);

	if (entry->policy && entry->expires_at > now) {
		mtasts_policy *copy = NULL;
		if (mtasts_policy_clone(entry->policy, &copy) != MTASTS_OK) {
			snprintf(view->why, sizeof(view->why), "cache entry of %s: out of memory", domain);
			return ENTRY_NOMEM;
		}
		size_t n = strnlen(entry->id, sizeof(view->id) - 1);   /* hot path: no snprintf */
		view->presence = SHIM_POLICY_PRESENT;
		view->policy = copy;
		memcpy(view->id, entry->id, n);
		view->id[n] = '\0';
		*refresh = stale;
		return ENTRY_VALID;
	}
	if (answered || !stale) {
		snprintf(view->why, sizeof(view->why), "%s",
		         entry->failed_at && entry->failed_reason[0] ? entry->failed_reason :
		         entry->policy ? "cached policy expired" : "no policy published");
		return ENTRY_NEGATIVE_FRESH;
	}
	snprintf(view->why, sizeof(view->why), "%s", entry->policy ? "cached policy expired" :
	         "no fresh policy information");
	return ENTRY_NEEDS_FETCH;
}

/* ---- the memo of entries read ----------------------------------------------------------------
 * The last MEMO_SLOTS entries read (parsed, without their raw body), each with the stamp of the
 * file read (core/cache.c: put() always renames a new inode over an entry). A later look does
 * one lstat of the entry's path: the same stamp reuses the parsed entry (no open, read, parse),
 * anything else (replaced, removed, unreadable) takes the normal path, which refills the slot.
 * The entry is evaluated against the current time on every use, exactly as a fresh read, so the
 * memo never extends a policy; a slot older than MEMO_MAX_AGE is read again all the same.
 * Touched under shim_lock() only; inherited over fork (the prefetch at MX lookup time, in the
 * MTA's parent process, fills it for the transport child). No fd is kept; memory is bounded by
 * MEMO_SLOTS parsed policies. */
#define MEMO_SLOTS 8
#define MEMO_MAX_AGE 60

typedef struct memo {
	mtasts_cache_entry *entry;   /* NULL: slot unused */
	char domain[MTASTS_DOMAIN_MAX];
	char path[PATH_MAX];
	size_t path_len;
	mtasts_cache_stamp stamp;
	time_t read_at;
	unsigned long used;          /* LRU tick */
	unsigned long gen;           /* changes whenever the slot is refilled */
} memo;
static memo memos[MEMO_SLOTS];
static unsigned long memo_tick;

/* Under the lock: the slot of domain, or -1. */
static int memo_find(const char *domain)
{
	for (int i = 0; i < MEMO_SLOTS; i++) {
		if (memos[i].entry && strcmp(memos[i].domain, domain) == 0)
			return i;
	}
	return -1;
}

/* The memoised entry of domain when its file is unchanged: evaluated into view (true), or false
 * when the entry must be read. */
static bool memo_look(const char *domain, time_t now, time_t since, shim_policy_view *view,
                      bool *refresh, entry_state *state)
{
	char path[PATH_MAX];
	mtasts_cache_stamp was, is;
	unsigned long gen;
	bool hit = false;
	int i;

	shim_lock();
	i = memo_find(domain);
	if (i >= 0 && now >= memos[i].read_at && now - memos[i].read_at < MEMO_MAX_AGE) {
		memcpy(path, memos[i].path, memos[i].path_len + 1);
		was = memos[i].stamp;
		gen = memos[i].gen;
	} else {
		i = -1;
	}
	shim_unlock();
	if (i < 0 || mtasts_cache_stamp_path(path, &is) != MTASTS_OK ||
	    !mtasts_cache_stamp_equal(&was, &is))
		return false;
	shim_lock();
	if (memos[i].entry && memos[i].gen == gen) {   /* not refilled meanwhile */
		memos[i].used = ++memo_tick;
		*state = evaluate(memos[i].entry, domain, now, since, view, refresh);
		hit = true;
	}
	shim_unlock();
	return hit;
}

/* Keep entry (ownership taken: stored or destroyed) as domain's memo. */
static void memo_store(const char *domain, mtasts_cache_entry *entry,
                       const mtasts_cache_stamp *stamp, time_t now)
{
	char path[PATH_MAX];
	mtasts_cache_entry *old = NULL;
	int i;

	if (strlen(domain) >= sizeof(memos[0].domain) ||
	    mtasts_cache_entry_path(shim_cfg.cache_dir, domain, path, sizeof(path)) != MTASTS_OK) {
		mtasts_cache_entry_destroy(&entry);
		return;
	}
	free(entry->raw);   /* not needed for a decision: the memo keeps only the parsed policy */
	entry->raw = NULL;
	entry->raw_len = 0;
	shim_lock();
	i = memo_find(domain);
	if (i < 0) {
		i = 0;
		for (int k = 1; k < MEMO_SLOTS && memos[i].entry; k++) {
			if (!memos[k].entry || memos[k].used < memos[i].used)
				i = k;
		}
	}
	old = memos[i].entry;
	memos[i].entry = entry;
	snprintf(memos[i].domain, sizeof(memos[i].domain), "%s", domain);
	memos[i].path_len = strlen(path);
	memcpy(memos[i].path, path, memos[i].path_len + 1);
	memos[i].stamp = *stamp;
	memos[i].read_at = now;
	memos[i].used = ++memo_tick;
	memos[i].gen++;
	shim_unlock();
	mtasts_cache_entry_destroy(&old);
}

/* Forget domain's memo (its entry could not be read). */
static void memo_drop(const char *domain)
{
	mtasts_cache_entry *old = NULL;
	int i;

	shim_lock();
	i = memo_find(domain);
	if (i >= 0) {
		old = memos[i].entry;
		memos[i].entry = NULL;
		memos[i].gen++;
	}
	shim_unlock();
	mtasts_cache_entry_destroy(&old);
}

/* Look at the cache once: the memo when the entry's file is unchanged, else the file. */
static entry_state look(const char *domain, time_t since, shim_policy_view *view, bool *refresh)
{
	mtasts_cache_entry *entry = NULL;
	mtasts_cache_stamp stamp;
	mtasts_cache *c = NULL;
	mtasts_status status;
	time_t now = time(NULL);
	entry_state state;

	*refresh = false;
	if (memo_look(domain, now, since, view, refresh, &state))
		return state;
	status = open_cache(&c, view->why, sizeof(view->why));
	if (status)
		return status == MTASTS_ERR_NOMEM ? ENTRY_NOMEM : ENTRY_ERROR;
	status = mtasts_cache_get_stamped(c, domain, &entry, &stamp);
	mtasts_cache_close(&c);
	if (status) {
		memo_drop(domain);
		if (status == MTASTS_ERR_NOT_FOUND) {
			snprintf(view->why, sizeof(view->why), "no cached policy");
			return ENTRY_NEEDS_FETCH;
		}
		snprintf(view->why, sizeof(view->why), "cache entry of %s: %s", domain,
		         mtasts_strerror(status));
		return status == MTASTS_ERR_NOMEM ? ENTRY_NOMEM : ENTRY_ERROR;
	}
	state = evaluate(entry, domain, now, since, view, refresh);
	memo_store(domain, entry, &stamp, now);
	return state;
}

void shim_policy_view_clear(shim_policy_view *view)
{
	mtasts_policy_destroy(&view->policy);
	memset(view, 0, sizeof(*view));
}

void shim_policy_acquire(const char *domain, bool wait, shim_policy_view *view)
{
	bool refresh;
	entry_state state;
	time_t since;

	memset(view, 0, sizeof(*view));
	state = look(domain, 0, view, &refresh);
	if (state == ENTRY_NOMEM) {
		/* A cached enforce policy must still hold: without memory we cannot tell, so defer. */
		view->presence = SHIM_POLICY_UNREADABLE;
		shim_log(MTASTS_LOG_ERROR, "%s: deferring the connection", view->why);
		return;
	}
	if (state == ENTRY_VALID) {
		if (refresh)
			kick_fetch(domain);
		return;
	}
	if (state == ENTRY_NEGATIVE_FRESH)
		return;
	/* Nothing valid. A broken entry or cache: the fetcher rewrites it; do not wait. */
	since = kick_fetch(domain);
	if (state == ENTRY_ERROR)
		shim_log(MTASTS_LOG_WARNING, "%s (domain %s)", view->why, domain);
	if (!wait || !since || shim_cfg.fetch_wait <= 0)
		return;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct timespec step = { 0, WAIT_STEP_NS };
		nanosleep(&step, NULL);
		state = look(domain, since, view, &refresh);
		if (state == ENTRY_NOMEM)
			view->presence = SHIM_POLICY_UNREADABLE;
		if (state == ENTRY_VALID || state == ENTRY_NEGATIVE_FRESH || state == ENTRY_NOMEM)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= shim_cfg.fetch_wait) {
			snprintf(view->why, sizeof(view->why), "policy fetch not done after %lds",
			         shim_cfg.fetch_wait);
			return;
		}
	}
}

void shim_policy_prefetch(const char *domain)
{
	shim_policy_view view;
	bool refresh;
	entry_state state;

	memset(&view, 0, sizeof(view));
	state = look(domain, 0, &view, &refresh);

	if (state == ENTRY_NEEDS_FETCH || (state == ENTRY_VALID && refresh) || state == ENTRY_ERROR)
		kick_fetch(domain);
	shim_policy_view_clear(&view);
}
