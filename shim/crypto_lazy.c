/*
 * crypto_lazy.c - libcrypto for the shim, loaded only when a certificate is first checked.
 *
 * The shim is loaded into every process of the MTA (Exim re-executes itself twice per message
 * and, built on GnuTLS, never loads OpenSSL), yet only the transport process that verifies a
 * chain needs libcrypto. Linking it would map and relocate it at every exec (2.6 million
 * instructions, about half of what the shim then costs a process start). Instead, the libcrypto
 * functions the shim's objects call (core/verify.c, shim/verdict.c, shim/tls_openssl.c) are
 * defined here, hidden inside the shim (exports.map keeps them local, so they never interpose
 * the MTA's own libcrypto): the first call dlopen()s libcrypto.so.3 and each function looks up
 * its real counterpart once. In an OpenSSL MTA the dlopen returns the library already loaded,
 * so X509 objects and the error queue are shared with the MTA's libssl as before.
 *
 * If libcrypto cannot be loaded, each function fails the way OpenSSL reports failure (NULL, 0,
 * or nothing): the verifier cannot be built, and an enforce policy then blocks (fails closed).
 */
#define OPENSSL_SUPPRESS_DEPRECATED   /* SHA256_Init & co: defined here, not called */

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/stack.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#define LIBCRYPTO_SONAME "libcrypto.so.3"

static void *libcrypto;
static pthread_once_t libcrypto_once = PTHREAD_ONCE_INIT;

static void libcrypto_open(void)
{
	/* RTLD_LOCAL: nothing of it enters the MTA's global symbol scope. */
	libcrypto = dlopen(LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
}

/* The real function name from libcrypto, looked up once per slot; NULL when unavailable. */
static void *real_symbol(void **slot, const char *name)
{
	void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (fn)
		return fn;
	pthread_once(&libcrypto_once, libcrypto_open);
	if (!libcrypto)
		return NULL;
	fn = dlsym(libcrypto, name);
	__atomic_store_n(slot, fn, __ATOMIC_RELEASE);
	return fn;
}

/* A function returning a value (fail when libcrypto is missing) and one returning nothing. */
#define LAZY(ret, name, params, args, fail)                                            \
	ret name params                                                                    \
	{                                                                                  \
		static void *slot;                                                             \
		ret (*real) params = (ret (*) params)real_symbol(&slot, #name);                \
		return real ? real args : (fail);                                              \
	}
#define LAZY_VOID(name, params, args)                                                  \
	void name params                                                                   \
	{                                                                                  \
		static void *slot;                                                             \
		void (*real) params = (void (*) params)real_symbol(&slot, #name);              \
		if (real)                                                                      \
			real args;                                                                 \
	}

/* certificates and stores */
LAZY(X509 *, d2i_X509, (X509 **a, const unsigned char **in, long len), (a, in, len), NULL)
LAZY(int, i2d_X509, (const X509 *a, unsigned char **out), (a, out), -1)
LAZY_VOID(X509_free, (X509 *a), (a))
LAZY(const ASN1_TIME *, X509_get0_notAfter, (const X509 *x), (x), NULL)
LAZY(int, ASN1_TIME_to_tm, (const ASN1_TIME *s, struct tm *tm), (s, tm), 0)
LAZY(X509 *, PEM_read_bio_X509, (BIO *bio, X509 **x, pem_password_cb *cb, void *u),
     (bio, x, cb, u), NULL)
LAZY(BIO *, BIO_new_mem_buf, (const void *buf, int len), (buf, len), NULL)
LAZY(int, BIO_free, (BIO *a), (a), 0)
LAZY_VOID(CRYPTO_free, (void *ptr, const char *file, int line), (ptr, file, line))
LAZY(X509_STORE *, X509_STORE_new, (void), (), NULL)
LAZY_VOID(X509_STORE_free, (X509_STORE *store), (store))
LAZY(int, X509_STORE_load_file, (X509_STORE *store, const char *file), (store, file), 0)
LAZY(int, X509_STORE_set_default_paths, (X509_STORE *store), (store), 0)
LAZY(const char *, X509_get_default_cert_dir, (void), (), "")
LAZY(const char *, X509_get_default_cert_dir_env, (void), (), "")
LAZY(const char *, X509_get_default_cert_file, (void), (), "")
LAZY(const char *, X509_get_default_cert_file_env, (void), (), "")

/* verification */
LAZY(X509_STORE_CTX *, X509_STORE_CTX_new, (void), (), NULL)
LAZY_VOID(X509_STORE_CTX_free, (X509_STORE_CTX *ctx), (ctx))
LAZY(int, X509_STORE_CTX_init, (X509_STORE_CTX *ctx, X509_STORE *store, X509 *target,
                                STACK_OF(X509) *untrusted), (ctx, store, target, untrusted), 0)
LAZY(int, X509_STORE_CTX_set_default, (X509_STORE_CTX *ctx, const char *name), (ctx, name), 0)
LAZY(X509_VERIFY_PARAM *, X509_STORE_CTX_get0_param, (const X509_STORE_CTX *ctx), (ctx), NULL)
LAZY(STACK_OF(X509) *, X509_STORE_CTX_get0_chain, (const X509_STORE_CTX *ctx), (ctx), NULL)
LAZY(int, X509_STORE_CTX_get_error, (const X509_STORE_CTX *ctx), (ctx), X509_V_ERR_UNSPECIFIED)
LAZY(int, X509_verify_cert, (X509_STORE_CTX *ctx), (ctx), -1)
LAZY(int, X509_VERIFY_PARAM_set1_host, (X509_VERIFY_PARAM *param, const char *name, size_t len),
     (param, name, len), 0)
LAZY_VOID(X509_VERIFY_PARAM_set_hostflags, (X509_VERIFY_PARAM *param, unsigned int flags),
          (param, flags))
LAZY_VOID(X509_VERIFY_PARAM_set_auth_level, (X509_VERIFY_PARAM *param, int level), (param, level))
LAZY_VOID(X509_VERIFY_PARAM_set_time, (X509_VERIFY_PARAM *param, time_t t), (param, t))

/* stacks */
LAZY(OPENSSL_STACK *, OPENSSL_sk_new_null, (void), (), NULL)
LAZY(int, OPENSSL_sk_num, (const OPENSSL_STACK *st), (st), -1)
LAZY(void *, OPENSSL_sk_value, (const OPENSSL_STACK *st, int i), (st, i), NULL)
LAZY(int, OPENSSL_sk_push, (OPENSSL_STACK *st, const void *data), (st, data), 0)
LAZY_VOID(OPENSSL_sk_pop_free, (OPENSSL_STACK *st, void (*fn)(void *)), (st, fn))

/* the error queue */
LAZY(int, ERR_set_mark, (void), (), 0)
LAZY(int, ERR_pop_to_mark, (void), (), 0)
LAZY(unsigned long, ERR_peek_last_error, (void), (), 0)
LAZY_VOID(ERR_new, (void), ())
LAZY_VOID(ERR_set_debug, (const char *file, int line, const char *func), (file, line, func))
LAZY_VOID(ERR_vset_error, (int lib, int reason, const char *fmt, va_list args),
          (lib, reason, fmt, args))

void ERR_set_error(int lib, int reason, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	ERR_vset_error(lib, reason, fmt, args);
	va_end(args);
}

/* the digest of the verdict memo's key */
LAZY(int, SHA256_Init, (SHA256_CTX *c), (c), 0)
LAZY(int, SHA256_Update, (SHA256_CTX *c, const void *data, size_t len), (c, data, len), 0)
LAZY(int, SHA256_Final, (unsigned char *md, SHA256_CTX *c), (md, c), 0)
