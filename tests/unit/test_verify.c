/*
 * test_verify.c - unit tests of core/verify.c (RFC 8461 §4.2 MX certificate checks).
 *
 * The test PKI is generated at run time with the OpenSSL C API (EC P-256 keys): a trusted test
 * CA written to a temporary ca_file, an intermediate CA under it, an untrusted CA, an impostor
 * CA with the trusted CA's name, and leaves for every case of checklist Part C 15/19 and the
 * Part D "Certificate SAN" vectors, plus validity-period, chain, host-string, hostile-input,
 * error-queue and thread cases. Also prints the cost of one verification.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "mtasts/verify.h"
#include "unit.h"

#define DAY (24L * 60 * 60)

struct der {
	unsigned char *p;
	size_t len;
};

/* The test PKI; built once in the parent before Check forks the tests. */
static char tmpdir[64];
static char ca_path[128];
static mtasts_verifier *verifier;

static EVP_PKEY *ca_key, *int_key, *other_key, *impostor_key, *leaf_key;
static X509 *ca, *inter, *inter_expired, *other_ca, *impostor_ca;
static X509 *x_ok, *x_via_int;
static struct der d_ca, d_int, d_int_expired, d_other_ca;
static struct der d_ok, d_wild, d_partial, d_cn_only, d_expired, d_future, d_other, d_impostor,
                  d_self, d_via_int, d_via_expired_int, d_ip, d_tld_wild, d_idn_wild, d_client,
                  d_multi, d_deep_wild;
static struct der d_rsa_small, d_sha1;
static long serial;
static const EVP_MD *sign_md;  /* digest of the signatures make_cert makes */

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	if (!key)
		abort();
	return key;
}

static void add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	if (!ext || !X509_add_ext(cert, ext, -1))
		abort();
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for key named cn, signed by issuer/issuer_key (self-signed when issuer is NULL),
 * valid from now+from_days to now+to_days. san and eku may be NULL (no extension).
 */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int is_ca,
                       const char *san, const char *eku, long from_days, long to_days)
{
	X509 *cert = X509_new();
	if (!cert || !X509_set_version(cert, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial) ||
	    !X509_time_adj_ex(X509_getm_notBefore(cert), (int)from_days, 0, NULL) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), (int)to_days, 0, NULL))
		abort();
	X509_NAME *name = X509_get_subject_name(cert);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"mtasts tests",
	                                -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0))
		abort();
	if (!X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) ||
	    !X509_set_pubkey(cert, key))
		abort();

	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	add_ext(cert, &ctx, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(cert, &ctx, NID_key_usage,
	        is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
	if (issuer)
		add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always");
	if (san)
		add_ext(cert, &ctx, NID_subject_alt_name, san);
	if (eku)
		add_ext(cert, &ctx, NID_ext_key_usage, eku);
	if (!X509_sign(cert, issuer_key ? issuer_key : key, sign_md))
		abort();
	return cert;
}

static struct der to_der(X509 *cert)
{
	struct der d = { NULL, 0 };
	int len = i2d_X509(cert, &d.p);
	if (len <= 0)
		abort();
	d.len = (size_t)len;
	return d;
}

/* A leaf signed by issuer, DER-encoded, the X509 freed. */
static struct der leaf(const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *san,
                       const char *eku, long from_days, long to_days)
{
	X509 *cert = make_cert(cn, leaf_key, issuer, issuer_key, 0, san, eku, from_days, to_days);
	struct der d = to_der(cert);
	X509_free(cert);
	return d;
}

static void write_pem(const char *path, X509 *const *certs, size_t n)
{
	FILE *f = fopen(path, "we");
	if (!f)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!PEM_write_X509(f, certs[i]))
			abort();
	if (fclose(f) != 0)
		abort();
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

static void tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void pki_setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mtasts-test-verify-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
	ca_key = new_key();
	int_key = new_key();
	other_key = new_key();
	impostor_key = new_key();
	leaf_key = new_key();
	sign_md = EVP_sha256();

	const char *srv = "serverAuth";
	ca = make_cert("mtasts Test CA", ca_key, NULL, NULL, 1, NULL, NULL, -10, 3650);
	inter = make_cert("mtasts Test Intermediate", int_key, ca, ca_key, 1, NULL, NULL, -10, 3650);
	inter_expired = make_cert("mtasts Old Intermediate", int_key, ca, ca_key, 1, NULL, NULL,
	                          -100, -5);
	other_ca = make_cert("mtasts Other CA", other_key, NULL, NULL, 1, NULL, NULL, -10, 3650);
	impostor_ca = make_cert("mtasts Test CA", impostor_key, NULL, NULL, 1, NULL, NULL, -10, 3650);
	d_ca = to_der(ca);
	d_int = to_der(inter);
	d_int_expired = to_der(inter_expired);
	d_other_ca = to_der(other_ca);

	x_ok = make_cert("mx1.example.test", leaf_key, ca, ca_key, 0, "DNS:mx1.example.test", srv,
	                 -1, 30);
	d_ok = to_der(x_ok);
	d_wild = leaf("wild", ca, ca_key, "DNS:*.example.test", srv, -1, 30);
	d_partial = leaf("partial", ca, ca_key, "DNS:m*.example.test", srv, -1, 30);
	d_cn_only = leaf("mx1.example.test", ca, ca_key, NULL, srv, -1, 30);
	d_expired = leaf("expired", ca, ca_key, "DNS:mx1.example.test", srv, -60, -1);
	d_future = leaf("future", ca, ca_key, "DNS:mx1.example.test", srv, 1, 30);
	d_other = leaf("other", other_ca, other_key, "DNS:mx1.example.test", srv, -1, 30);
	d_impostor = leaf("impostor", impostor_ca, impostor_key, "DNS:mx1.example.test", srv, -1, 30);
	d_self = leaf("mx1.example.test", NULL, NULL, "DNS:mx1.example.test", srv, -1, 30);
	x_via_int = make_cert("via-int", leaf_key, inter, int_key, 0, "DNS:mx1.example.test", srv,
	                      -1, 30);
	d_via_int = to_der(x_via_int);
	d_via_expired_int = leaf("via-old-int", inter_expired, int_key, "DNS:mx1.example.test", srv,
	                         -1, 30);
	d_ip = leaf("ip", ca, ca_key, "IP:192.0.2.1", srv, -1, 30);
	d_tld_wild = leaf("tld-wild", ca, ca_key, "DNS:*.test", srv, -1, 30);
	d_idn_wild = leaf("idn-wild", ca, ca_key, "DNS:*.xn--bcher-kva.example", srv, -1, 30);
	d_client = leaf("client", ca, ca_key, "DNS:mx1.example.test", "clientAuth", -1, 30);
	d_multi = leaf("multi", ca, ca_key, "DNS:other.example.test,DNS:mx1.example.test", srv, -1, 30);
	d_deep_wild = leaf("deep-wild", ca, ca_key, "DNS:*.*.example.test", srv, -1, 30);

	/* under security level 1: a 768-bit RSA leaf key, a SHA-1 signature on the leaf */
	EVP_PKEY *rsa = EVP_RSA_gen(768);
	if (!rsa)
		abort();
	X509 *weak = make_cert("rsa768", rsa, ca, ca_key, 0, "DNS:mx1.example.test", srv, -1, 30);
	d_rsa_small = to_der(weak);
	X509_free(weak);
	EVP_PKEY_free(rsa);
	sign_md = EVP_sha1();
	d_sha1 = leaf("sha1", ca, ca_key, "DNS:mx1.example.test", srv, -1, 30);
	sign_md = EVP_sha256();

	tmp_path(ca_path, sizeof ca_path, "ca.pem");
	write_pem(ca_path, &ca, 1);
	if (mtasts_verifier_new(ca_path, &verifier) != MTASTS_OK || !verifier)
		abort();
}

static void pki_teardown(void)
{
	mtasts_verifier_destroy(&verifier);
	struct der *ders[] = { &d_ca, &d_int, &d_int_expired, &d_other_ca, &d_ok, &d_wild, &d_partial,
	                       &d_cn_only, &d_expired, &d_future, &d_other, &d_impostor, &d_self,
	                       &d_via_int, &d_via_expired_int, &d_ip, &d_tld_wild, &d_idn_wild,
	                       &d_client, &d_multi, &d_deep_wild, &d_rsa_small, &d_sha1 };
	for (size_t i = 0; i < sizeof ders / sizeof ders[0]; i++)
		OPENSSL_free(ders[i]->p);
	X509 *certs[] = { ca, inter, inter_expired, other_ca, impostor_ca, x_ok, x_via_int };
	for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++)
		X509_free(certs[i]);
	EVP_PKEY *keys[] = { ca_key, int_key, other_key, impostor_key, leaf_key };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		EVP_PKEY_free(keys[i]);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (tmpdir[0] && system(cmd) != 0)
		fprintf(stderr, "test_verify: could not remove %s\n", tmpdir);
}

/* Verify a chain of up to 3 DER certificates; unused trailing ones are NULL. */
static mtasts_result check_chain(const char *host, time_t now, char *reason, size_t reason_len,
                                 const struct der *c0, const struct der *c1, const struct der *c2)
{
	const unsigned char *chain[3];
	size_t lens[3];
	size_t n = 0;
	const struct der *in[3] = { c0, c1, c2 };
	for (size_t i = 0; i < 3 && in[i]; i++, n++) {
		chain[i] = in[i]->p;
		lens[i] = in[i]->len;
	}
	return mtasts_verify_chain_der(verifier, chain, lens, n, host, now, reason, reason_len);
}

#define EXPECT(result_, reason_, host_, ...)                                               \
	do {                                                                                   \
		char why_[96] = "unset";                                                           \
		mtasts_result got_ = check_chain(host_, 0, why_, sizeof why_, __VA_ARGS__);        \
		ck_assert_msg(got_ == (result_), "host %s: got %s (%s), want %s", host_,           \
		              mtasts_result_name(got_), why_, mtasts_result_name(result_));         \
		ck_assert_str_eq(why_, reason_);                                                   \
	} while (0)

/* ---- SAN matching ---- */

START_TEST(test_exact_san)
{
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "mx1.example.test", &d_ok, NULL, NULL);
	/* the CA sent along too, as many servers do */
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "mx1.example.test", &d_ok, &d_ca, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "mx2.example.test", &d_ok, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "example.test", &d_ok, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "a.mx1.example.test", &d_ok, NULL, NULL);
	/* any of several SANs */
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "mx1.example.test", &d_multi, NULL, NULL);
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "other.example.test", &d_multi, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "third.example.test", &d_multi, NULL, NULL);
}
END_TEST

START_TEST(test_case_and_trailing_dot)
{
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "MX1.Example.Test.", &d_ok, NULL, NULL);
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "MX1.EXAMPLE.TEST", &d_ok, NULL, NULL);
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "Mx1.Example.Test.", &d_wild, NULL, NULL);
	/* only one root dot is stripped */
	EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", "mx1.example.test..", &d_ok,
	       NULL, NULL);
}
END_TEST

START_TEST(test_wildcard)
{
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "mx1.example.test", &d_wild, NULL, NULL);
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "x.example.test", &d_wild, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "example.test", &d_wild, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "a.b.example.test", &d_wild, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "mx1.example.org", &d_wild, NULL, NULL);
	/* a wildcard host string is not a host */
	EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", "*.example.test", &d_wild,
	       NULL, NULL);
	/* two wildcard labels never match */
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "a.b.example.test", &d_deep_wild, NULL, NULL);
	/* a wildcard directly over a TLD is not honoured */
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "example.test", &d_tld_wild, NULL, NULL);
	/* a wildcard over an IDN A-label parent is fine */
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "mx.xn--bcher-kva.example", &d_idn_wild, NULL,
	       NULL);
}
END_TEST

START_TEST(test_partial_wildcard_rejected)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "mx1.example.test", &d_partial, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "m.example.test", &d_partial, NULL, NULL);
}
END_TEST

START_TEST(test_cn_only_rejected)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "mx1.example.test", &d_cn_only, NULL, NULL);
}
END_TEST

START_TEST(test_ip)
{
	/* an IP literal is never a valid MX host (checklist C12) */
	EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", "192.0.2.1", &d_ip, NULL,
	       NULL);
	EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", "192.0.2.1.", &d_ip, NULL,
	       NULL);
	EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", "2001:db8::1", &d_ok, NULL,
	       NULL);
	EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", "[192.0.2.1]", &d_ip, NULL,
	       NULL);
	EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", "10.1", &d_ip, NULL, NULL);
	/* an IP SAN does not make a DNS name match */
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "mx1.example.test", &d_ip, NULL, NULL);
}
END_TEST

START_TEST(test_bad_host_strings)
{
	char longhost[400];
	memset(longhost, 'a', sizeof longhost - 1);
	longhost[sizeof longhost - 1] = '\0';
	for (size_t i = 60; i < sizeof longhost - 1; i += 61)
		longhost[i] = '.';
	char longlabel[80];
	memset(longlabel, 'a', 64);
	strcpy(longlabel + 64, ".example.test");
	const char *bad[] = { "", ".", "..", "mx1..example.test", ".mx1.example.test",
	                      "mx1.example.test ", "mx 1.example.test", "mx1.exämple.test",
	                      "mx1.example.test\n", longhost, longlabel };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		EXPECT(MTASTS_RESULT_VALIDATION_FAILURE, "MTASTS_INVALID_HOST", bad[i], &d_ok, NULL, NULL);
	/* a 63-octet label is fine (and then does not match) */
	longlabel[63] = '.';
	memmove(longlabel + 63, longlabel + 64, strlen(longlabel + 64) + 1);
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH", longlabel,
	       &d_ok, NULL, NULL);
}
END_TEST

/* ---- validity period ---- */

START_TEST(test_expired)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_EXPIRED, "X509_V_ERR_CERT_HAS_EXPIRED", "mx1.example.test",
	       &d_expired, NULL, NULL);
	/* an expired intermediate expires the chain */
	EXPECT(MTASTS_RESULT_CERTIFICATE_EXPIRED, "X509_V_ERR_CERT_HAS_EXPIRED", "mx1.example.test",
	       &d_via_expired_int, &d_int_expired, NULL);
}
END_TEST

START_TEST(test_not_yet_valid)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_CERT_NOT_YET_VALID",
	       "mx1.example.test", &d_future, NULL, NULL);
}
END_TEST

START_TEST(test_explicit_time)
{
	char why[64];
	time_t t = time(NULL);
	ck_assert_int_eq(check_chain("mx1.example.test", t, why, sizeof why, &d_ok, NULL, NULL),
	                 MTASTS_RESULT_SUCCESS);
	ck_assert_int_eq(check_chain("mx1.example.test", t + 365 * DAY, why, sizeof why, &d_ok, NULL,
	                             NULL), MTASTS_RESULT_CERTIFICATE_EXPIRED);
	ck_assert_str_eq(why, "X509_V_ERR_CERT_HAS_EXPIRED");
	ck_assert_int_eq(check_chain("mx1.example.test", t - 5 * DAY, why, sizeof why, &d_ok, NULL,
	                             NULL), MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED);
	ck_assert_str_eq(why, "X509_V_ERR_CERT_NOT_YET_VALID");
	/* the expired leaf was fine five days ago, the future one will be in a week */
	ck_assert_int_eq(check_chain("mx1.example.test", t - 5 * DAY, why, sizeof why, &d_expired,
	                             NULL, NULL), MTASTS_RESULT_SUCCESS);
	ck_assert_int_eq(check_chain("mx1.example.test", t + 7 * DAY, why, sizeof why, &d_future,
	                             NULL, NULL), MTASTS_RESULT_SUCCESS);
}
END_TEST

/* ---- trust ---- */

START_TEST(test_untrusted_ca)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
	       "mx1.example.test", &d_other, NULL, NULL);
	/* sending the untrusted root along does not help */
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN",
	       "mx1.example.test", &d_other, &d_other_ca, NULL);
	/* an issuer with the trusted CA's name but another key */
	char why[96];
	ck_assert_int_eq(check_chain("mx1.example.test", 0, why, sizeof why, &d_impostor, NULL, NULL),
	                 MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED);
	ck_assert_msg(strncmp(why, "X509_V_ERR_", 11) == 0, "reason %s", why);
}
END_TEST

START_TEST(test_self_signed)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT",
	       "mx1.example.test", &d_self, NULL, NULL);
}
END_TEST

START_TEST(test_intermediate)
{
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "mx1.example.test", &d_via_int, &d_int, NULL);
	EXPECT(MTASTS_RESULT_SUCCESS, "X509_V_OK", "mx1.example.test", &d_via_int, &d_int, &d_ca);
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
	       "mx1.example.test", &d_via_int, NULL, NULL);
	/* an unrelated intermediate does not complete the chain */
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
	       "mx1.example.test", &d_via_int, &d_other_ca, NULL);
	/* host checked on a chained leaf too */
	EXPECT(MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH",
	       "mx2.example.test", &d_via_int, &d_int, NULL);
}
END_TEST

START_TEST(test_purpose)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_INVALID_PURPOSE",
	       "mx1.example.test", &d_client, NULL, NULL);
}
END_TEST

START_TEST(test_weak_crypto)
{
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_EE_KEY_TOO_SMALL",
	       "mx1.example.test", &d_rsa_small, NULL, NULL);
	EXPECT(MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_CA_MD_TOO_WEAK",
	       "mx1.example.test", &d_sha1, NULL, NULL);
}
END_TEST

START_TEST(test_system_store)
{
	/* The system store does not know the test CA. */
	mtasts_verifier *sys = NULL;
	ck_assert_int_eq(mtasts_verifier_new(NULL, &sys), MTASTS_OK);
	ck_assert_ptr_nonnull(sys);
	const unsigned char *chain[1] = { d_ok.p };
	size_t lens[1] = { d_ok.len };
	char why[96];
	ck_assert_int_eq(mtasts_verify_chain_der(sys, chain, lens, 1, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED);
	ck_assert_str_eq(why, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY");
	mtasts_verifier_destroy(&sys);
	ck_assert_ptr_null(sys);
}
END_TEST

START_TEST(test_verifier_new_errors)
{
	mtasts_verifier *v = (mtasts_verifier *)&v;
	char path[160];

	ck_assert_int_eq(mtasts_verifier_new(ca_path, NULL), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_verifier_new("", &v), MTASTS_ERR_INVALID_ARG);
	ck_assert_ptr_null(v);
	tmp_path(path, sizeof path, "does-not-exist.pem");
	ck_assert_int_eq(mtasts_verifier_new(path, &v), MTASTS_ERR_IO);
	ck_assert_ptr_null(v);
	tmp_path(path, sizeof path, "garbage-ca.pem");
	write_text(path, "this is not a certificate\n");
	ck_assert_int_eq(mtasts_verifier_new(path, &v), MTASTS_ERR_CONFIG);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(mtasts_verifier_new(tmpdir, &v), MTASTS_ERR_CONFIG);
	ck_assert_ptr_null(v);
	/* a FIFO must not hang us */
	tmp_path(path, sizeof path, "fifo-ca");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(mtasts_verifier_new(path, &v), MTASTS_ERR_CONFIG);
	ck_assert_ptr_null(v);

	/* a bundle of several CAs */
	X509 *both[2] = { other_ca, ca };
	tmp_path(path, sizeof path, "bundle.pem");
	write_pem(path, both, 2);
	ck_assert_int_eq(mtasts_verifier_new(path, &v), MTASTS_OK);
	const unsigned char *chain[1] = { d_other.p };
	size_t lens[1] = { d_other.len };
	ck_assert_int_eq(mtasts_verify_chain_der(v, chain, lens, 1, "mx1.example.test", 0, NULL, 0),
	                 MTASTS_RESULT_SUCCESS);
	chain[0] = d_ok.p;
	lens[0] = d_ok.len;
	ck_assert_int_eq(mtasts_verify_chain_der(v, chain, lens, 1, "mx1.example.test", 0, NULL, 0),
	                 MTASTS_RESULT_SUCCESS);
	mtasts_verifier_destroy(&v);
	ck_assert_ptr_null(v);
	mtasts_verifier_destroy(&v);
	mtasts_verifier_destroy(NULL);
}
END_TEST

/* ---- hostile DER input ---- */

START_TEST(test_bad_der)
{
	char why[96];
	const unsigned char *chain[2];
	size_t lens[2];
	static const unsigned char garbage[] = "this is no certificate at all";
	static const unsigned char huge_len[] = { 0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x00 };

	struct { const unsigned char *p; size_t len; } cases[] = {
		{ garbage, sizeof garbage },
		{ huge_len, sizeof huge_len },
		{ d_ok.p, 1 },
		{ d_ok.p, d_ok.len / 2 },
		{ d_ok.p, d_ok.len - 1 },
		{ d_ok.p, 0 },
		{ NULL, 10 },
		{ d_ok.p, 65 * 1024 },  /* over the per-certificate bound: never read */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		chain[0] = cases[i].p;
		lens[0] = cases[i].len;
		strcpy(why, "unset");
		ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx1.example.test", 0,
		                                         why, sizeof why),
		                 MTASTS_RESULT_VALIDATION_FAILURE);
		ck_assert_str_eq(why, "MTASTS_BAD_DER");
		/* the same as an intermediate behind a good leaf */
		chain[0] = d_ok.p;
		lens[0] = d_ok.len;
		chain[1] = cases[i].p;
		lens[1] = cases[i].len;
		ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 2, "mx1.example.test", 0,
		                                         why, sizeof why),
		                 MTASTS_RESULT_VALIDATION_FAILURE);
		ck_assert_str_eq(why, "MTASTS_BAD_DER");
	}

	/* trailing bytes after a whole certificate */
	unsigned char *padded = malloc(d_ok.len + 1);
	ck_assert_ptr_nonnull(padded);
	memcpy(padded, d_ok.p, d_ok.len);
	padded[d_ok.len] = 0;
	chain[0] = padded;
	lens[0] = d_ok.len + 1;
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_BAD_DER");

	/* one flipped bit in the signature */
	memcpy(padded, d_ok.p, d_ok.len);
	padded[d_ok.len - 3] ^= 0x01;
	lens[0] = d_ok.len;
	mtasts_result r = mtasts_verify_chain_der(verifier, chain, lens, 1, "mx1.example.test", 0, why,
	                                          sizeof why);
	ck_assert_msg(r == MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED ||
	              r == MTASTS_RESULT_VALIDATION_FAILURE, "flipped bit: %s (%s)",
	              mtasts_result_name(r), why);
	ck_assert_int_ne(r, MTASTS_RESULT_SUCCESS);
	free(padded);

	/* every truncation of a real chain fails cleanly */
	for (size_t cut = 1; cut < d_int.len; cut += 7) {
		chain[0] = d_via_int.p;
		lens[0] = d_via_int.len;
		chain[1] = d_int.p;
		lens[1] = cut;
		ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 2, "mx1.example.test", 0,
		                                         NULL, 0), MTASTS_RESULT_VALIDATION_FAILURE);
	}
}
END_TEST

START_TEST(test_chain_length)
{
	enum { N = 100 };
	const unsigned char *chain[N];
	size_t lens[N];
	char why[96];
	chain[0] = d_ok.p;
	lens[0] = d_ok.len;
	for (size_t i = 1; i < N; i++) {
		chain[i] = d_ca.p;
		lens[i] = d_ca.len;
	}
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, N, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_CHAIN_TOO_LONG");
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 17, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_CHAIN_TOO_LONG");
	/* 16 is still accepted */
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 16, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_SUCCESS);
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 0, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_EMPTY_CHAIN");
}
END_TEST

START_TEST(test_null_args)
{
	const unsigned char *chain[1] = { d_ok.p };
	size_t lens[1] = { d_ok.len };
	char why[96];

	ck_assert_int_eq(mtasts_verify_chain_der(NULL, chain, lens, 1, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_INVALID_ARG");
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, NULL, lens, 1, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_INVALID_ARG");
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, NULL, 1, "mx1.example.test", 0, why,
	                                         sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_INVALID_ARG");
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, NULL, 0, why, sizeof why),
	                 MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_INVALID_ARG");
	ck_assert_int_eq(mtasts_verify_chain_pem_file(NULL, ca_path, "mx1.example.test", 0, why,
	                                              sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_INVALID_ARG");
	ck_assert_int_eq(mtasts_verify_chain_pem_file(verifier, NULL, "mx1.example.test", 0, why,
	                                              sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_int_eq(mtasts_verify_chain_pem_file(verifier, ca_path, NULL, 0, why, sizeof why),
	                 MTASTS_RESULT_VALIDATION_FAILURE);

	/* no reason buffer, or a tiny one */
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx1.example.test", 0,
	                                         NULL, 0), MTASTS_RESULT_SUCCESS);
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx2.example.test", 0,
	                                         NULL, 64), MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH);
	memset(why, 'x', sizeof why);
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx2.example.test", 0, why,
	                                         1), MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH);
	ck_assert_int_eq(why[0], '\0');
	ck_assert_int_eq(why[1], 'x');
	memset(why, 'x', sizeof why);
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx2.example.test", 0, why,
	                                         5), MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH);
	ck_assert_str_eq(why, "X509");
	ck_assert_int_eq(why[5], 'x');
}
END_TEST

/* The caller's OpenSSL error queue is neither cleared nor added to. */
START_TEST(test_error_queue_untouched)
{
	static const unsigned char garbage[] = { 0x30, 0x03, 0x02, 0x01 };
	const unsigned char *chain[1] = { garbage };
	size_t lens[1] = { sizeof garbage };
	char path[160];

	ERR_clear_error();
	ERR_raise(ERR_LIB_USER, 42);
	unsigned long mine = ERR_peek_last_error();
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx1.example.test", 0,
	                                         NULL, 0), MTASTS_RESULT_VALIDATION_FAILURE);
	chain[0] = d_other.p;
	lens[0] = d_other.len;
	ck_assert_int_eq(mtasts_verify_chain_der(verifier, chain, lens, 1, "mx1.example.test", 0,
	                                         NULL, 0), MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED);
	tmp_path(path, sizeof path, "queue-garbage.pem");
	write_text(path, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
	ck_assert_int_eq(mtasts_verify_chain_pem_file(verifier, path, "mx1.example.test", 0, NULL, 0),
	                 MTASTS_RESULT_VALIDATION_FAILURE);
	mtasts_verifier *v = NULL;
	tmp_path(path, sizeof path, "queue-not-a-ca.pem");
	write_text(path, "nothing\n");
	ck_assert_int_eq(mtasts_verifier_new(path, &v), MTASTS_ERR_CONFIG);

	ck_assert_uint_eq(ERR_get_error(), mine);
	ck_assert_uint_eq(ERR_get_error(), 0);
}
END_TEST

/* ---- PEM files ---- */

static mtasts_result pem_case(const char *name, char *why, size_t why_len)
{
	char path[160];
	tmp_path(path, sizeof path, name);
	strcpy(why, "unset");
	return mtasts_verify_chain_pem_file(verifier, path, "mx1.example.test", 0, why, why_len);
}

START_TEST(test_pem_file)
{
	char path[160], why[96];
	X509 *chain2[2] = { x_via_int, inter };

	tmp_path(path, sizeof path, "chain.pem");
	write_pem(path, chain2, 2);
	ck_assert_int_eq(pem_case("chain.pem", why, sizeof why), MTASTS_RESULT_SUCCESS);
	ck_assert_str_eq(why, "X509_V_OK");
	ck_assert_int_eq(mtasts_verify_chain_pem_file(verifier, path, "mx2.example.test", 0, why,
	                                              sizeof why),
	                 MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH);
	ck_assert_int_eq(mtasts_verify_chain_pem_file(verifier, path, "192.0.2.1", 0, why, sizeof why),
	                 MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_INVALID_HOST");
	ck_assert_int_eq(mtasts_verify_chain_pem_file(verifier, path, "mx1.example.test",
	                                              time(NULL) + 365 * DAY, why, sizeof why),
	                 MTASTS_RESULT_CERTIFICATE_EXPIRED);

	tmp_path(path, sizeof path, "leaf-only.pem");
	write_pem(path, &x_via_int, 1);
	ck_assert_int_eq(pem_case("leaf-only.pem", why, sizeof why),
	                 MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED);
	ck_assert_str_eq(why, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY");

	/* a private key block in the file is skipped */
	tmp_path(path, sizeof path, "with-key.pem");
	FILE *f = fopen(path, "we");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PrivateKey(f, leaf_key, NULL, NULL, 0, NULL, NULL), 1);
	ck_assert_int_eq(PEM_write_X509(f, x_ok), 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(pem_case("with-key.pem", why, sizeof why), MTASTS_RESULT_SUCCESS);
}
END_TEST

START_TEST(test_pem_file_bad)
{
	char path[160], why[96];

	ck_assert_int_eq(pem_case("missing.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_UNREADABLE");
	ck_assert_int_eq(mtasts_verify_chain_pem_file(verifier, tmpdir, "mx1.example.test", 0, why,
	                                              sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_UNREADABLE");

	tmp_path(path, sizeof path, "fifo.pem");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(pem_case("fifo.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_UNREADABLE");

	tmp_path(path, sizeof path, "empty.pem");
	write_text(path, "");
	ck_assert_int_eq(pem_case("empty.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_EMPTY");

	tmp_path(path, sizeof path, "text.pem");
	write_text(path, "hello\nworld\n");
	ck_assert_int_eq(pem_case("text.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_NO_CERT");

	tmp_path(path, sizeof path, "base64.pem");
	write_text(path, "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n");
	ck_assert_int_eq(pem_case("base64.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_BAD");

	tmp_path(path, sizeof path, "noend.pem");
	write_text(path, "-----BEGIN CERTIFICATE-----\nMIIB\n");
	ck_assert_int_eq(pem_case("noend.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_BAD");

	tmp_path(path, sizeof path, "notder.pem");
	write_text(path, "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n");
	ck_assert_int_eq(pem_case("notder.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_BAD");

	/* an "encrypted" block must not prompt for a pass phrase */
	tmp_path(path, sizeof path, "encrypted.pem");
	write_text(path, "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n"
	                 "DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n"
	                 "aGVsbG8gd29ybGQhIGhlbGxvIHdvcmxkIQ==\n-----END CERTIFICATE-----\n");
	ck_assert_int_eq(pem_case("encrypted.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_BAD");

	/* a good leaf, then damage */
	tmp_path(path, sizeof path, "then-bad.pem");
	write_pem(path, &x_ok, 1);
	FILE *f = fopen(path, "ae");
	ck_assert_ptr_nonnull(f);
	fputs("-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(pem_case("then-bad.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_BAD");

	/* 100 certificates: bounded */
	X509 *many[100];
	many[0] = x_ok;
	for (size_t i = 1; i < 100; i++)
		many[i] = ca;
	tmp_path(path, sizeof path, "many.pem");
	write_pem(path, many, 100);
	ck_assert_int_eq(pem_case("many.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_CHAIN_TOO_LONG");
	write_pem(path, many, 16);
	ck_assert_int_eq(pem_case("many.pem", why, sizeof why), MTASTS_RESULT_SUCCESS);

	/* over the file size bound */
	tmp_path(path, sizeof path, "big.pem");
	f = fopen(path, "we");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, x_ok), 1);
	for (int i = 0; i < 20000; i++)
		fputs("# padding padding padding padding padding padding padding padding\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(pem_case("big.pem", why, sizeof why), MTASTS_RESULT_VALIDATION_FAILURE);
	ck_assert_str_eq(why, "MTASTS_PEM_TOO_LARGE");
}
END_TEST

/* ---- threads and cost ---- */

struct thread_arg {
	int wrong;
};

static void *thread_main(void *p)
{
	struct thread_arg *arg = p;
	for (int i = 0; i < 300; i++) {
		char why[96];
		mtasts_result want, got;
		switch (i % 4) {
		case 0:
			got = check_chain("mx1.example.test", 0, why, sizeof why, &d_ok, &d_ca, NULL);
			want = MTASTS_RESULT_SUCCESS;
			break;
		case 1:
			got = check_chain("mx1.example.test", 0, why, sizeof why, &d_other, NULL, NULL);
			want = MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED;
			break;
		case 2:
			got = check_chain("a.b.example.test", 0, why, sizeof why, &d_wild, NULL, NULL);
			want = MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH;
			break;
		default:
			got = check_chain("mx1.example.test", 0, why, sizeof why, &d_via_int, &d_int, NULL);
			want = MTASTS_RESULT_SUCCESS;
			break;
		}
		if (got != want)
			arg->wrong++;
	}
	return NULL;
}

START_TEST(test_threads)
{
	enum { T = 8 };
	pthread_t tid[T];
	struct thread_arg args[T];
	memset(args, 0, sizeof args);
	for (int i = 0; i < T; i++)
		ck_assert_int_eq(pthread_create(&tid[i], NULL, thread_main, &args[i]), 0);
	int wrong = 0;
	for (int i = 0; i < T; i++) {
		ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
		wrong += args[i].wrong;
	}
	ck_assert_int_eq(wrong, 0);
}
END_TEST

static double per_call_us(const struct der *c0, const struct der *c1, int rounds)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < rounds; i++)
		ck_assert_int_eq(check_chain("mx1.example.test", 0, NULL, 0, c0, c1, NULL),
		                 MTASTS_RESULT_SUCCESS);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3) / rounds;
}

START_TEST(test_cost)
{
	int rounds = 500;
	double two = per_call_us(&d_ok, &d_ca, rounds);
	double inter_us = per_call_us(&d_via_int, &d_int, rounds);
	fprintf(stderr, "test_verify: one verification: leaf+CA %.1f us, leaf+intermediate (3-cert "
	        "path) %.1f us (P-256, %d rounds)\n", two, inter_us, rounds);
	/* generous: a sanity bound, not a benchmark (valgrind runs stay well below it) */
	ck_assert_msg(two < 50000.0, "one verification took %.0f us", two);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("verify");
	TCase *tc = tcase_create("verify");
	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_exact_san);
	tcase_add_test(tc, test_case_and_trailing_dot);
	tcase_add_test(tc, test_wildcard);
	tcase_add_test(tc, test_partial_wildcard_rejected);
	tcase_add_test(tc, test_cn_only_rejected);
	tcase_add_test(tc, test_ip);
	tcase_add_test(tc, test_bad_host_strings);
	tcase_add_test(tc, test_expired);
	tcase_add_test(tc, test_not_yet_valid);
	tcase_add_test(tc, test_explicit_time);
	tcase_add_test(tc, test_untrusted_ca);
	tcase_add_test(tc, test_self_signed);
	tcase_add_test(tc, test_intermediate);
	tcase_add_test(tc, test_purpose);
	tcase_add_test(tc, test_weak_crypto);
	tcase_add_test(tc, test_system_store);
	tcase_add_test(tc, test_verifier_new_errors);
	tcase_add_test(tc, test_bad_der);
	tcase_add_test(tc, test_chain_length);
	tcase_add_test(tc, test_null_args);
	tcase_add_test(tc, test_error_queue_untouched);
	tcase_add_test(tc, test_pem_file);
	tcase_add_test(tc, test_pem_file_bad);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_cost);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(make_suite)
