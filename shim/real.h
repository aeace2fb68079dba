/*
 * real.h - the table of the real libc functions the shim's hooks forward to.
 *
 * Bound once (pthread_once) with dlsym(RTLD_NEXT, ...) / dlvsym where a symbol version matters.
 * A symbol the next objects do not define stays NULL and its hook fails with ENOSYS instead of
 * crashing. TLS library functions are not here: tls_gnutls.c and tls_openssl.c resolve them
 * lazily, since the shim must load into programs that have GnuTLS, OpenSSL or neither.
 */
#ifndef MTASTS_SHIM_REAL_H
#define MTASTS_SHIM_REAL_H

#include <netdb.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct hostent;
struct __res_state;

typedef struct shim_real {
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*socket)(int, int, int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);

	int (*res_search)(const char *, int, int, unsigned char *, int);
	int (*res_search_compat)(const char *, int, int, unsigned char *, int);   /* __res_search */
	int (*res_query)(const char *, int, int, unsigned char *, int);
	int (*res_query_compat)(const char *, int, int, unsigned char *, int);    /* __res_query */
	int (*res_nsearch)(struct __res_state *, const char *, int, int, unsigned char *, int);
	int (*res_nquery)(struct __res_state *, const char *, int, int, unsigned char *, int);
	int (*res_querydomain)(const char *, const char *, int, int, unsigned char *, int);
	int (*res_nquerydomain)(struct __res_state *, const char *, const char *, int, int,
	                        unsigned char *, int);
	int (*getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
	struct hostent *(*gethostbyname2)(const char *, int);

	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
	                   const posix_spawnattr_t *, char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
	                    const posix_spawnattr_t *, char *const[], char *const[]);
} shim_real;

/* The bound table (binds on first use; never NULL). */
const shim_real *shim_real_get(void);

/* dlsym(RTLD_NEXT, name), aborting loudly when that resolves to the shim itself. */
void *shim_real_lookup(const char *name);

/* The same for a TLS library function, also found in an already loaded library named by one of
 * sonames (NULL-terminated) that is outside the global scope: a library loaded RTLD_LOCAL (by
 * Python's _ssl module, say) still calls our exported hook, and RTLD_NEXT cannot see it. */
void *shim_real_lookup_lib(const char *name, const char *const *sonames);

/* Write a fixed message to fd 2 with the raw system call and abort. */
void shim_die(const char *message) __attribute__((noreturn));

#endif
