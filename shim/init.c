/*
 * init.c - the shim's process start-up: settings, the activity test, the process-wide lock and
 * its fork handlers.
 *
 * Runs once (pthread_once) from the constructor, or from the first hook called before it
 * (another library's constructor can call write() first). The shim becomes active only when
 * the program is listed in `programs`, compared with program_invocation_short_name (not in
 * secure-execution mode, where argv[0] is the caller's) and with the base name of
 * /proc/self/exe; everywhere else every hook is one branch to the real function.
 * Settings come from mtasts_config_load, which in secure-execution mode reads only the root-owned
 * default file and never the environment.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mtasts/config.h"
#include "mtasts/log.h"
#include "shim.h"

shim_settings shim_cfg;
atomic_int shim_state;
__thread int shim_inside __attribute__((tls_model("initial-exec")));

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static bool fork_locked;

void shim_lock(void)
{
	pthread_mutex_lock(&big_lock);
}

void shim_unlock(void)
{
	pthread_mutex_unlock(&big_lock);
}

/* Hold the lock across fork so the child inherits consistent tables; give up after 200 ms
 * (a signal handler forking while this thread holds it) and reinitialise in the child anyway. */
static void atfork_prepare(void)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 200 * 1000 * 1000;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	fork_locked = pthread_mutex_timedlock(&big_lock, &until) == 0;
}

static void atfork_parent(void)
{
	if (fork_locked)
		pthread_mutex_unlock(&big_lock);
	fork_locked = false;
}

static void atfork_child(void)
{
	pthread_mutex_init(&big_lock, NULL);
	fork_locked = false;
	shim_inside = 0;
}

bool shim_port_is_smtp(unsigned short port)
{
	for (int i = 0; i < shim_cfg.nports; i++) {
		if (shim_cfg.ports[i] == port)
			return true;
	}
	return false;
}

void shim_log(int level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mtasts_log((mtasts_log_level)level, "mtasts: %s", msg);
}

static bool word_listed(const char *list, const char *word)
{
	size_t n = strlen(word);

	if (!list || !n)
		return false;
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *start = p;
		while (*p && *p != ' ' && *p != ',' && *p != '\t')
			p++;
		if ((size_t)(p - start) == n && memcmp(start, word, n) == 0)
			return true;
	}
	return false;
}

static void parse_ports(const char *list)
{
	shim_cfg.nports = 0;
	for (const char *p = list ? list : "25"; *p && shim_cfg.nports < SHIM_MAX_PORTS;) {
		char *end;
		long v;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v <= 0 || v > 65535) {
			while (*p && *p != ' ' && *p != ',' && *p != '\t')
				p++;
			continue;
		}
		shim_cfg.ports[shim_cfg.nports++] = (unsigned short)v;
		p = end;
	}
	if (shim_cfg.nports == 0)
		shim_cfg.ports[shim_cfg.nports++] = 25;
}

/* Which of the program's two names is listed, if any. In secure-execution mode argv[0] is the
 * unprivileged caller's choice (exec /usr/bin/passwd as "exim"): only the executable counts. */
static bool program_listed(const char *programs)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (!mtasts_secure_mode() && word_listed(programs, program_invocation_short_name)) {
		snprintf(shim_cfg.program, sizeof(shim_cfg.program), "%s", program_invocation_short_name);
		return true;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		const char *base = strrchr(exe, '/');
		base = base ? base + 1 : exe;
		if (word_listed(programs, base)) {
			snprintf(shim_cfg.program, sizeof(shim_cfg.program), "%s", base);
			return true;
		}
	}
	return false;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void init_once_fn(void)
{
	mtasts_config *config = NULL;
	char err[MTASTS_CONFIG_ERR_MAX] = "";
	mtasts_status status;
	int active = 0;

	int saved = shim_enter();   /* first: binding (dlsym) may set errno, hooks must pass */
	(void)shim_real_get();
	status = mtasts_config_load(NULL, &config, err, sizeof(err));
	if (!program_listed(status ? "exim exim4" : config->programs))
		goto out;
	if (status) {
		/* An MTA we must act in, with a broken config: built-in defaults, say why. */
		mtasts_log_open("syslog", NULL);
		shim_log(MTASTS_LOG_ERROR, "configuration: %s (%s); using built-in defaults",
		         err[0] ? err : "cannot load", mtasts_strerror(status));
		shim_cfg.cache_dir = strdup(MTASTS_DEFAULT_CACHE_DIR);
		shim_cfg.fetcher = strdup(MTASTS_PREFIX "/bin/mtasts");
		shim_cfg.fetch_wait = 5;
		shim_cfg.txt_recheck = 3600;
		parse_ports("25");
	} else {
		mtasts_log_open(config->log, NULL);
		shim_cfg.config_path = dup_or_null(config->path);
		shim_cfg.config_explicit = config->path && strcmp(config->path, MTASTS_DEFAULT_CONFIG) != 0;
		shim_cfg.cache_dir = dup_or_null(config->cache_dir);
		shim_cfg.ca_file = dup_or_null(config->ca_file);
		shim_cfg.fetcher = dup_or_null(config->fetcher);
		shim_cfg.report_dir = config->report_dir && config->report_dir[0] ?
		                      strdup(config->report_dir) : NULL;
		shim_cfg.fetch_wait = config->fetch_wait;
		shim_cfg.txt_recheck = config->txt_recheck;
		parse_ports(config->smtp_ports);
	}
	if (!shim_cfg.cache_dir) {
		shim_log(MTASTS_LOG_ERROR, "out of memory at start-up: staying inert");
		goto out;
	}
	if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
		shim_log(MTASTS_LOG_ERROR, "pthread_atfork failed: staying inert");
		goto out;
	}
	shim_exec_init();
	active = 1;
out:
	mtasts_config_destroy(&config);
	atomic_store_explicit(&shim_state, active ? 2 : 1, memory_order_release);
	shim_leave(saved);
}

void shim_init(void)
{
	pthread_once(&init_once, init_once_fn);
}

__attribute__((constructor)) static void shim_constructor(void)
{
	shim_init();
}
