/*
 * real.c - binds the real-symbol table (real.h) once per process.
 *
 * dlsym(RTLD_NEXT) finds the definition after the shim in the global search order: libc's.
 * res_search/res_query are versioned in glibc 2.34+ (res_search@@GLIBC_2.34 in libc.so.6, the
 * old __res_search@GLIBC_2.2.5 kept as a compat symbol that an unversioned dlsym cannot see), so
 * those go through dlvsym with the known versions first. If a lookup ever returned one of our
 * own hooks, every call would recurse forever: abort at once, loudly, instead.
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "real.h"

static shim_real table;
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;
static atomic_bool bound;

void shim_die(const char *message)
{
	static const char prefix[] = "libmtasts-shim: fatal: ";
	syscall(SYS_write, 2, prefix, sizeof(prefix) - 1);
	syscall(SYS_write, 2, message, strlen(message));
	syscall(SYS_write, 2, "\n", 1);
	abort();
}

/*
 * The address ranges of the shim's own loaded segments, found once with dl_iterate_phdr. Asking
 * dladdr() for every symbol instead cost 2.7 million instructions per process start (it looks
 * for the nearest symbol), paid twice per message by Exim's re-execs.
 */
#define SELF_SEGMENTS_MAX 8
static struct { uintptr_t start, end; } self_segments[SELF_SEGMENTS_MAX];
static int self_segment_count;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static int collect_self(struct dl_phdr_info *info, size_t size, void *marker)
{
	uintptr_t at = (uintptr_t)marker;
	bool mine = false;

	for (int pass = 0; pass < 2; pass++) {
		for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
			const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
			uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
			if (ph->p_type != PT_LOAD)
				continue;
			if (pass == 0) {
				mine |= at >= start && at < end;
			} else if (self_segment_count < SELF_SEGMENTS_MAX) {
				self_segments[self_segment_count].start = start;
				self_segments[self_segment_count].end = end;
				self_segment_count++;
			}
		}
		if (!mine)
			return 0;
	}
	return 1;
}

static void find_self(void)
{
	dl_iterate_phdr(collect_self, (void *)shim_real_lookup);
}

/* True when addr is inside the shim's own object. */
static bool is_ours(void *addr)
{
	uintptr_t at = (uintptr_t)addr;

	if (!addr)
		return false;
	pthread_once(&self_once, find_self);
	if (self_segment_count == 0) {   /* not found (cannot happen): the slow, sure way */
		Dl_info here, there;
		return dladdr((void *)shim_real_lookup, &here) && dladdr(addr, &there) &&
		       here.dli_fbase == there.dli_fbase;
	}
	for (int i = 0; i < self_segment_count; i++) {
		if (at >= self_segments[i].start && at < self_segments[i].end)
			return true;
	}
	return false;
}

static void *checked(void *addr, const char *name)
{
	if (is_ours(addr)) {
		char msg[160] = "dlsym(RTLD_NEXT) returned the shim's own hook for ";
		strncat(msg, name, sizeof(msg) - strlen(msg) - 1);
		shim_die(msg);
	}
	return addr;
}

/*
 * Normally RTLD_NEXT. When an object defining the symbol comes before the shim in the search
 * order (LD_PRELOAD="libc.so.6 libmtasts-shim.so"), nothing follows us: then the default
 * search order (unless it is us), then libc itself.
 */
void *shim_real_lookup(const char *name)
{
	void *addr = dlsym(RTLD_NEXT, name);

	if (!addr) {
		addr = dlsym(RTLD_DEFAULT, name);
		if (is_ours(addr))
			addr = NULL;
	}
	if (!addr) {
		void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
		if (libc) {
			addr = dlsym(libc, name);
			dlclose(libc);
		}
	}
	return checked(addr, name);
}

void *shim_real_lookup_lib(const char *name, const char *const *sonames)
{
	void *addr = shim_real_lookup(name);

	for (const char *const *s = sonames; !addr && *s; s++) {
		void *lib = dlopen(*s, RTLD_LAZY | RTLD_NOLOAD);   /* only if already loaded */
		if (lib) {
			addr = dlsym(lib, name);
			dlclose(lib);
			if (is_ours(addr))
				addr = NULL;
		}
	}
	return addr;
}

/* Versioned lookup: each version in turn, then the unversioned default. */
static void *lookup_versioned(const char *name, const char *const *versions)
{
	for (const char *const *v = versions; *v; v++) {
		void *addr = dlvsym(RTLD_NEXT, name, *v);
		if (addr)
			return checked(addr, name);
	}
	for (const char *const *v = versions; *v; v++) {
		void *addr = dlvsym(RTLD_DEFAULT, name, *v);
		if (addr && !is_ours(addr))
			return addr;
	}
	return shim_real_lookup(name);
}

static void bind_all(void)
{
	static const char *const v_res_new[] = { "GLIBC_2.34", "GLIBC_2.2.5", NULL };
	static const char *const v_res_old[] = { "GLIBC_2.2.5", "GLIBC_2.34", NULL };

#define BIND(field, name) *(void **)&table.field = shim_real_lookup(name)
	BIND(connect, "connect");
	BIND(socket, "socket");
	BIND(write, "write");
	BIND(writev, "writev");
	BIND(send, "send");
	BIND(sendto, "sendto");
	BIND(sendmsg, "sendmsg");
	BIND(close, "close");
	BIND(close_range, "close_range");
	BIND(closefrom, "closefrom");
	BIND(dup, "dup");
	BIND(dup2, "dup2");
	BIND(dup3, "dup3");
	*(void **)&table.res_search = lookup_versioned("res_search", v_res_new);
	*(void **)&table.res_search_compat = lookup_versioned("__res_search", v_res_old);
	*(void **)&table.res_query = lookup_versioned("res_query", v_res_new);
	*(void **)&table.res_query_compat = lookup_versioned("__res_query", v_res_old);
	*(void **)&table.res_nsearch = lookup_versioned("res_nsearch", v_res_new);
	*(void **)&table.res_nquery = lookup_versioned("res_nquery", v_res_new);
	*(void **)&table.res_querydomain = lookup_versioned("res_querydomain", v_res_new);
	*(void **)&table.res_nquerydomain = lookup_versioned("res_nquerydomain", v_res_new);
	BIND(getaddrinfo, "getaddrinfo");
	BIND(gethostbyname2, "gethostbyname2");
	BIND(execve, "execve");
	BIND(execvpe, "execvpe");
	BIND(fexecve, "fexecve");
	BIND(posix_spawn, "posix_spawn");
	BIND(posix_spawnp, "posix_spawnp");
#undef BIND
	/* Without these nothing works at all; better a clear message than a NULL call. */
	if (!table.write || !table.close || !table.connect || !table.execve)
		shim_die("libc functions not found with dlsym(RTLD_NEXT)");
	atomic_store_explicit(&bound, true, memory_order_release);
}

const shim_real *shim_real_get(void)
{
	if (!atomic_load_explicit(&bound, memory_order_acquire))
		pthread_once(&bind_once, bind_all);
	return &table;
}
