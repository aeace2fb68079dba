/*
 * dnshooks.c - the resolver hooks (DESIGN.md §3): res_search, __res_search, res_query,
 * __res_query, res_nsearch, res_nquery, res_querydomain, res_nquerydomain, getaddrinfo and
 * gethostbyname2 call the real function inside the shim (so its sockets pass our network hooks
 * untouched), then feed the answer to dnsobs. An MX answer starts a policy prefetch.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <resolv.h>
#include <string.h>

#include "acquire.h"
#include "dnsobs.h"
#include "shim.h"

/* The shim's exported hooks (exports.map); prototypes keep -Wmissing-prototypes quiet where the
 * system headers name them differently (__res_search, __res_query). */
int __res_search(const char *dname, int klass, int type, unsigned char *answer, int anslen);
int __res_query(const char *dname, int klass, int type, unsigned char *answer, int anslen);

static void after_answer(const unsigned char *answer, int n, int anslen)
{
	char qname[MTASTS_DOMAIN_MAX];

	if (n <= 0 || !answer)
		return;
	dnsobs_observe(answer, n < anslen ? n : anslen, qname);
	if (qname[0])
		shim_policy_prefetch(qname);
}

static int missing(void)
{
	h_errno = NO_RECOVERY;
	errno = ENOSYS;
	return -1;
}

#define RES_HOOK(realf, call)                                                     \
	do {                                                                          \
		if (!REAL(realf))                                                         \
			return missing();                                                     \
		if (!shim_engaged())                                                      \
			return REAL(realf) call;                                              \
		int saved = shim_enter();                                                 \
		int n = REAL(realf) call;                                                 \
		int herr = h_errno;                                                       \
		saved = errno;                                                            \
		after_answer(answer, n, anslen);                                          \
		h_errno = herr;                                                           \
		shim_leave(saved);                                                        \
		return n;                                                                 \
	} while (0)

int res_search(const char *dname, int klass, int type, unsigned char *answer, int anslen)
{
	RES_HOOK(res_search, (dname, klass, type, answer, anslen));
}

int __res_search(const char *dname, int klass, int type, unsigned char *answer, int anslen)
{
	RES_HOOK(res_search_compat, (dname, klass, type, answer, anslen));
}

int res_query(const char *dname, int klass, int type, unsigned char *answer, int anslen)
{
	RES_HOOK(res_query, (dname, klass, type, answer, anslen));
}

int __res_query(const char *dname, int klass, int type, unsigned char *answer, int anslen)
{
	RES_HOOK(res_query_compat, (dname, klass, type, answer, anslen));
}

int res_nsearch(res_state statp, const char *dname, int klass, int type, unsigned char *answer,
                int anslen)
{
	RES_HOOK(res_nsearch, (statp, dname, klass, type, answer, anslen));
}

int res_nquery(res_state statp, const char *dname, int klass, int type, unsigned char *answer,
               int anslen)
{
	RES_HOOK(res_nquery, (statp, dname, klass, type, answer, anslen));
}

int res_querydomain(const char *name, const char *domain, int klass, int type,
                    unsigned char *answer, int anslen)
{
	RES_HOOK(res_querydomain, (name, domain, klass, type, answer, anslen));
}

int res_nquerydomain(res_state statp, const char *name, const char *domain, int klass, int type,
                     unsigned char *answer, int anslen)
{
	RES_HOOK(res_nquerydomain, (statp, name, domain, klass, type, answer, anslen));
}

static bool is_numeric(const char *node)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, node, buf) == 1 || inet_pton(AF_INET6, node, buf) == 1;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	if (!REAL(getaddrinfo))
		return EAI_SYSTEM;
	if (!shim_engaged())
		return REAL(getaddrinfo)(node, service, hints, res);
	int saved = shim_enter();
	int rc = REAL(getaddrinfo)(node, service, hints, res);
	saved = errno;
	if (rc == 0 && node && res && *res && !is_numeric(node)) {
		for (const struct addrinfo *ai = *res; ai; ai = ai->ai_next) {
			dnsobs_addr addr;
			if (dnsobs_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &addr, NULL))
				dnsobs_add_addr(node, &addr);
		}
	}
	shim_leave(saved);
	return rc;
}

struct hostent *gethostbyname2(const char *name, int af)
{
	if (!REAL(gethostbyname2)) {
		h_errno = NO_RECOVERY;
		return NULL;
	}
	if (!shim_engaged())
		return REAL(gethostbyname2)(name, af);
	int saved = shim_enter();
	struct hostent *h = REAL(gethostbyname2)(name, af);
	int herr = h_errno;
	saved = errno;
	if (h && name && !is_numeric(name) && (h->h_addrtype == AF_INET || h->h_addrtype == AF_INET6)) {
		int len = h->h_addrtype == AF_INET ? 4 : 16;
		for (int i = 0; h->h_addr_list && h->h_addr_list[i] && i < 64; i++) {
			dnsobs_addr addr;
			if (h->h_length != len)
				break;
			memset(&addr, 0, sizeof(addr));
			addr.family = h->h_addrtype;
			memcpy(addr.bytes, h->h_addr_list[i], (size_t)len);
			dnsobs_add_addr(name, &addr);
		}
	}
	h_errno = herr;
	shim_leave(saved);
	return h;
}
