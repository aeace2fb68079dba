/*
 * exec.c - keeps the shim loaded across the MTA's re-execs (FACTS.md Exim 6, DESIGN.md §5).
 *
 * Exim wipes its environment and re-execs itself (set-user-ID root) for every delivery. The
 * exec hooks put LD_PRELOAD back when the new environment lost the shim: as the bare file name
 * when the library sits in a trusted system directory with its set-user-ID bit (the only form
 * the loader accepts in secure-execution mode), else as its absolute path. When a config file
 * other than the default was used (outside secure mode), MTASTS_CONFIG goes back too.
 * glibc's execv/execl* call an internal __execve, so each exported exec function is hooked.
 * The rewrite allocates nothing (stack only, bounded): exec may run in a vfork child.
 */
#include <dlfcn.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtasts/config.h"
#include "shim.h"

extern char **environ;

int execv(const char *path, char *const argv[]);
int execvp(const char *file, char *const argv[]);
int execl(const char *path, const char *arg, ...);
int execlp(const char *file, const char *arg, ...);
int execle(const char *path, const char *arg, ...);

#define ENV_REWRITE_MAX 1024      /* environments with more entries are passed as they are */
#define ARGS_MAX 1024
#define PRELOAD_VALUE_MAX 4096

static char preload_name[PATH_MAX];   /* what LD_PRELOAD must name */
static char preload_base[256];        /* its base name, to recognise other spellings */
static char config_entry[PATH_MAX + 16];

static bool trusted_dir(const char *path)
{
	static const char *const roots[] = { "/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/" };
	const char *slash = strrchr(path, '/');

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		size_t n = strlen(roots[i]);
		if (strncmp(path, roots[i], n) != 0)
			continue;
		const char *rest = path + n;   /* "<file>" or "<multiarch>/<file>" */
		const char *inner = strchr(rest, '/');
		return !inner || inner == slash;
	}
	return false;
}

void shim_exec_init(void)
{
	Dl_info info;
	char real[PATH_MAX];
	struct stat st;
	const char *base;

	preload_name[0] = '\0';
	if (!dladdr((void *)shim_exec_init, &info) || !info.dli_fname)
		return;
	if (!realpath(info.dli_fname, real))
		snprintf(real, sizeof(real), "%s", info.dli_fname);
	base = strrchr(info.dli_fname, '/');
	base = base ? base + 1 : info.dli_fname;
	snprintf(preload_base, sizeof(preload_base), "%s", base);
	/* the loaded name (not the realpath) is what the loader found in a trusted directory */
	if (info.dli_fname[0] == '/' && trusted_dir(info.dli_fname) && stat(info.dli_fname, &st) == 0 &&
	    (st.st_mode & S_ISUID) && st.st_uid == 0)
		snprintf(preload_name, sizeof(preload_name), "%s", base);
	else
		snprintf(preload_name, sizeof(preload_name), "%s", real);
	if (shim_cfg.config_explicit && shim_cfg.config_path && !mtasts_secure_mode())
		snprintf(config_entry, sizeof(config_entry), "MTASTS_CONFIG=%s", shim_cfg.config_path);
}

/* Does the LD_PRELOAD value list the shim (any spelling with our base name)? */
static bool lists_shim(const char *value)
{
	size_t nb = strlen(preload_base);

	for (const char *p = value; *p;) {
		while (*p == ':' || *p == ' ')
			p++;
		const char *start = p;
		while (*p && *p != ':' && *p != ' ')
			p++;
		const char *slash = start;
		for (const char *q = start; q < p; q++) {
			if (*q == '/')
				slash = q + 1;
		}
		if ((size_t)(p - slash) == nb && nb && memcmp(slash, preload_base, nb) == 0)
			return true;
	}
	return false;
}

typedef struct env_rewrite {
	char *vec[ENV_REWRITE_MAX + 3];
	char preload[PRELOAD_VALUE_MAX + PATH_MAX + 16];
} env_rewrite;

/* The environment to exec with: envp itself, or out->vec with LD_PRELOAD (and MTASTS_CONFIG)
 * put back. */
static char *const *rewrite(char *const envp[], env_rewrite *out)
{
	const char *old = NULL;
	bool has_config = false;
	size_t n = 0, o = 0;

	if (!preload_name[0])
		return envp;
	for (; envp && envp[n]; n++) {
		if (strncmp(envp[n], "LD_PRELOAD=", 11) == 0)
			old = envp[n] + 11;
		else if (strncmp(envp[n], "MTASTS_CONFIG=", 14) == 0)
			has_config = true;
	}
	bool need_preload = !old || !lists_shim(old);
	bool need_config = config_entry[0] && !has_config;
	if ((!need_preload && !need_config) || n > ENV_REWRITE_MAX)
		return envp;
	if (need_preload && old && strlen(old) >= PRELOAD_VALUE_MAX)
		return envp;   /* never drop the program's own preloads to make room for ours */
	if (need_preload) {
		if (old && *old)
			snprintf(out->preload, sizeof(out->preload), "LD_PRELOAD=%s:%s", old, preload_name);
		else
			snprintf(out->preload, sizeof(out->preload), "LD_PRELOAD=%s", preload_name);
	}
	for (size_t i = 0; i < n; i++) {
		if (need_preload && strncmp(envp[i], "LD_PRELOAD=", 11) == 0)
			continue;
		out->vec[o++] = envp[i];
	}
	if (need_preload)
		out->vec[o++] = out->preload;
	if (need_config)
		out->vec[o++] = config_entry;
	out->vec[o] = NULL;
	return out->vec;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
	if (!shim_engaged())
		return REAL(execve)(path, argv, envp);
	env_rewrite buf;
	return REAL(execve)(path, argv, rewrite(envp, &buf));
}

int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	if (!REAL(execvpe)) {
		errno = ENOSYS;
		return -1;
	}
	if (!shim_engaged())
		return REAL(execvpe)(file, argv, envp);
	env_rewrite buf;
	return REAL(execvpe)(file, argv, rewrite(envp, &buf));
}

int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
	if (!REAL(fexecve)) {
		errno = ENOSYS;
		return -1;
	}
	if (!shim_engaged())
		return REAL(fexecve)(fd, argv, envp);
	env_rewrite buf;
	return REAL(fexecve)(fd, argv, rewrite(envp, &buf));
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (!REAL(posix_spawn))
		return ENOSYS;
	if (!shim_engaged())
		return REAL(posix_spawn)(pid, path, actions, attr, argv, envp);
	env_rewrite buf;
	return REAL(posix_spawn)(pid, path, actions, attr, argv, rewrite(envp, &buf));
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (!REAL(posix_spawnp))
		return ENOSYS;
	if (!shim_engaged())
		return REAL(posix_spawnp)(pid, file, actions, attr, argv, envp);
	env_rewrite buf;
	return REAL(posix_spawnp)(pid, file, actions, attr, argv, rewrite(envp, &buf));
}

/* execl, execlp, execle: collect the list (bounded, on the stack) and go through the hooks. */
#define COLLECT_ARGS(first, ap, vec, count)                                \
	do {                                                                   \
		(vec)[0] = (char *)(first);                                        \
		(count) = 1;                                                       \
		while ((vec)[(count) - 1] != NULL) {                               \
			if ((count) >= ARGS_MAX) {                                     \
				va_end(ap);                                                \
				errno = E2BIG;                                             \
				return -1;                                                 \
			}                                                              \
			(vec)[(count)++] = va_arg((ap), char *);                       \
		}                                                                  \
	} while (0)

int execl(const char *path, const char *arg, ...)
{
	char *argv[ARGS_MAX];
	size_t n;
	va_list ap;

	va_start(ap, arg);
	COLLECT_ARGS(arg, ap, argv, n);
	va_end(ap);
	return execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...)
{
	char *argv[ARGS_MAX];
	size_t n;
	va_list ap;

	va_start(ap, arg);
	COLLECT_ARGS(arg, ap, argv, n);
	va_end(ap);
	return execvpe(file, argv, environ);
}

int execle(const char *path, const char *arg, ...)
{
	char *argv[ARGS_MAX];
	char *const *envp;
	size_t n;
	va_list ap;

	va_start(ap, arg);
	COLLECT_ARGS(arg, ap, argv, n);
	envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}
