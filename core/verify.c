/*
 * verify.c - RFC 8461 §4.2 verification of a receiving MX's certificate chain.
 *
 * The chain comes in as DER (whatever TLS library the MTA used) or as a PEM file, and is checked
 * with libcrypto alone (no libssl, so the shim can link it into any MTA) against one trust store
 * built per verifier:
 *   - PKIX path to a trusted root, purpose TLS server, validity period at `now`;
 *   - the MX host name against SAN dNSName entries only: no CN fallback
 *     (X509_CHECK_FLAG_NEVER_CHECK_SUBJECT), a wildcard only as the whole left-most label, which
 *     then matches exactly one label (X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, no MULTI_LABEL);
 *   - the host must be an A-label DNS name: an IP address literal is refused (checklist C12).
 *
 * Result mapping (RFC 8460 §4.3.2):
 *   X509_V_ERR_CERT_HAS_EXPIRED   -> certificate-expired (leaf or any chain certificate)
 *   X509_V_ERR_HOSTNAME_MISMATCH  -> certificate-host-mismatch
 *   chain, trust, signature, purpose, constraint, key-strength errors, and also
 *   X509_V_ERR_CERT_NOT_YET_VALID -> certificate-not-trusted (a certificate that is not valid yet
 *                                    has not "expired"; 8460 makes not-trusted the catch-all for
 *                                    certificate errors, and the reason code keeps the detail)
 *   bad input (garbage DER, too long a chain, invalid host) and anything else
 *                                 -> validation-failure
 * The reason written for the caller is a single token safe for a key=value log line: the
 * X509_V_ERR_* name, "X509_V_ERR_<number>" for a code not in our table, or an MTASTS_* token for
 * failures found before OpenSSL runs.
 *
 * Threads: the X509_STORE is built once and only read afterwards (OpenSSL locks its internal
 * lookups); every call builds its own X509_STORE_CTX and verify parameters. The calling thread's
 * OpenSSL error queue is left exactly as it was (ERR_set_mark / ERR_pop_to_mark), so a shim can
 * call this between an MTA's TLS calls without disturbing its SSL_get_error().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "mtasts/verify.h"

#define VERIFY_MAX_CHAIN     16           /* certificates accepted from the peer (leaf included) */
#define VERIFY_MAX_CERT_DER  (64 * 1024)  /* bytes per DER certificate */
#define VERIFY_MAX_PEM_FILE  (1024 * 1024) /* bytes of a PEM chain file */
#define VERIFY_MAX_HOST      253          /* DNS name without the trailing dot */
#define VERIFY_MAX_LABEL     63

struct mtasts_verifier {
	X509_STORE *store;
};

/* One row per X509_V_ERR_* code we name; #code keeps the macro's own name. */
struct verify_code {
	int code;
	const char *name;
	mtasts_result result;
};

#define NT MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED
#define VF MTASTS_RESULT_VALIDATION_FAILURE
#define CODE(c, r) { c, #c, r }
static const struct verify_code verify_codes[] = {
	CODE(X509_V_OK, MTASTS_RESULT_SUCCESS),
	CODE(X509_V_ERR_CERT_HAS_EXPIRED, MTASTS_RESULT_CERTIFICATE_EXPIRED),
	CODE(X509_V_ERR_HOSTNAME_MISMATCH, MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH),
	CODE(X509_V_ERR_CERT_NOT_YET_VALID, NT),
	CODE(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, NT),
	CODE(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, NT),
	CODE(X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, NT),
	CODE(X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE, NT),
	CODE(X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY, NT),
	CODE(X509_V_ERR_CERT_SIGNATURE_FAILURE, NT),
	CODE(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, NT),
	CODE(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, NT),
	CODE(X509_V_ERR_CERT_CHAIN_TOO_LONG, NT),
	CODE(X509_V_ERR_CERT_REVOKED, NT),
	CODE(X509_V_ERR_NO_ISSUER_PUBLIC_KEY, NT),
	CODE(X509_V_ERR_PATH_LENGTH_EXCEEDED, NT),
	CODE(X509_V_ERR_INVALID_PURPOSE, NT),
	CODE(X509_V_ERR_CERT_UNTRUSTED, NT),
	CODE(X509_V_ERR_CERT_REJECTED, NT),
	CODE(X509_V_ERR_SUBJECT_ISSUER_MISMATCH, NT),
	CODE(X509_V_ERR_AKID_SKID_MISMATCH, NT),
	CODE(X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH, NT),
	CODE(X509_V_ERR_KEYUSAGE_NO_CERTSIGN, NT),
	CODE(X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION, NT),
	CODE(X509_V_ERR_INVALID_NON_CA, NT),
	CODE(X509_V_ERR_INVALID_CA, NT),
	CODE(X509_V_ERR_INVALID_EXTENSION, NT),
	CODE(X509_V_ERR_INVALID_POLICY_EXTENSION, NT),
	CODE(X509_V_ERR_NO_EXPLICIT_POLICY, NT),
	CODE(X509_V_ERR_PERMITTED_VIOLATION, NT),
	CODE(X509_V_ERR_EXCLUDED_VIOLATION, NT),
	CODE(X509_V_ERR_SUBTREE_MINMAX, NT),
	CODE(X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE, NT),
	CODE(X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX, NT),
	CODE(X509_V_ERR_UNSUPPORTED_NAME_SYNTAX, NT),
	CODE(X509_V_ERR_PATH_LOOP, NT),
	CODE(X509_V_ERR_EE_KEY_TOO_SMALL, NT),
	CODE(X509_V_ERR_CA_KEY_TOO_SMALL, NT),
	CODE(X509_V_ERR_CA_MD_TOO_WEAK, NT),
	CODE(X509_V_ERR_UNSUPPORTED_SIGNATURE_ALGORITHM, NT),
	CODE(X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH, NT),
	CODE(X509_V_ERR_EC_KEY_EXPLICIT_PARAMS, NT),
	CODE(X509_V_ERR_UNSPECIFIED, VF),
	CODE(X509_V_ERR_OUT_OF_MEM, VF),
	CODE(X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD, VF),
	CODE(X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD, VF),
	CODE(X509_V_ERR_IP_ADDRESS_MISMATCH, VF),
	CODE(X509_V_ERR_EMAIL_MISMATCH, VF),
	CODE(X509_V_ERR_INVALID_CALL, VF),
	CODE(X509_V_ERR_STORE_LOOKUP, VF),
};
#undef CODE
#undef NT
#undef VF

static void set_reason(char *reason, size_t reason_len, const char *text)
{
	if (reason && reason_len > 0)
		snprintf(reason, reason_len, "%s", text);
}

/* Result and reason token of an X509_V_ERR_* code. */
static mtasts_result map_code(int code, char *reason, size_t reason_len)
{
	for (size_t i = 0; i < sizeof verify_codes / sizeof verify_codes[0]; i++) {
		if (verify_codes[i].code == code) {
			set_reason(reason, reason_len, verify_codes[i].name);
			return verify_codes[i].result;
		}
	}
	if (reason && reason_len > 0)
		snprintf(reason, reason_len, "X509_V_ERR_%d", code);
	return MTASTS_RESULT_VALIDATION_FAILURE;
}

/*
 * Copy host to out without one trailing root dot, after checking that it is an ASCII DNS name
 * (letters, digits, '-', '_'; labels of 1..63 octets; at most 253 octets) and not an IP address.
 * A last label of digits only cannot be a top-level domain and is how a dotted-quad looks.
 */
static mtasts_status normalise_host(const char *host, char out[VERIFY_MAX_HOST + 1])
{
	size_t len = strnlen(host, VERIFY_MAX_HOST + 2);
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > VERIFY_MAX_HOST)
		return MTASTS_ERR_INVALID_ARG;
	memcpy(out, host, len);
	out[len] = '\0';

	unsigned char probe[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, out, probe) == 1 || inet_pton(AF_INET6, out, probe) == 1)
		return MTASTS_ERR_INVALID_ARG;

	size_t label = 0;
	int all_digits = 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c == '.') {
			if (label == 0)
				return MTASTS_ERR_INVALID_ARG;
			label = 0;
			all_digits = 1;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return MTASTS_ERR_INVALID_ARG;
		if (!(c >= '0' && c <= '9'))
			all_digits = 0;
		if (++label > VERIFY_MAX_LABEL)
			return MTASTS_ERR_INVALID_ARG;
	}
	if (all_digits)
		return MTASTS_ERR_INVALID_ARG;
	return MTASTS_OK;
}

mtasts_status mtasts_verifier_new(const char *ca_file, mtasts_verifier **out)
{
	mtasts_status status = MTASTS_OK;
	mtasts_verifier *verifier = NULL;

	if (!out)
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	if (ca_file && !*ca_file)
		return MTASTS_ERR_INVALID_ARG;

	ERR_set_mark();
	verifier = calloc(1, sizeof *verifier);
	if (!verifier) {
		status = MTASTS_ERR_NOMEM;
		goto out;
	}
	verifier->store = X509_STORE_new();
	if (!verifier->store) {
		status = MTASTS_ERR_NOMEM;
		goto out;
	}
	if (ca_file) {
		/* Tell a missing or unreadable file apart from one without certificates, and never
		 * block on a FIFO. */
		struct stat st;
		int fd = open(ca_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0) {
			status = MTASTS_ERR_IO;
			goto out;
		}
		int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
		close(fd);
		if (!regular || X509_STORE_load_file(verifier->store, ca_file) != 1) {
			status = MTASTS_ERR_CONFIG;
			goto out;
		}
	} else if (X509_STORE_set_default_paths(verifier->store) != 1) {
		status = MTASTS_ERR_CONFIG;
		goto out;
	}
	*out = verifier;
	verifier = NULL;
out:
	mtasts_verifier_destroy(&verifier);
	ERR_pop_to_mark();
	return status;
}

void mtasts_verifier_destroy(mtasts_verifier **verifier)
{
	if (!verifier || !*verifier)
		return;
	X509_STORE_free((*verifier)->store);
	free(*verifier);
	*verifier = NULL;
}

/* The earliest notAfter of the verified chain (leaf to trust anchor); 0 when one cannot be read. */
static time_t chain_not_after(X509_STORE_CTX *ctx)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	time_t earliest = 0;
	int n = chain ? sk_X509_num(chain) : 0;

	for (int i = 0; i < n; i++) {
		const ASN1_TIME *na = X509_get0_notAfter(sk_X509_value(chain, i));
		struct tm tm;
		time_t t;

		memset(&tm, 0, sizeof(tm));
		if (!na || ASN1_TIME_to_tm(na, &tm) != 1 || (t = timegm(&tm)) == (time_t)-1)
			return 0;
		if (earliest == 0 || t < earliest)
			earliest = t;
	}
	return earliest;
}

/* The PKIX + host check proper; host is already normalised. */
static mtasts_result verify_x509(mtasts_verifier *verifier, X509 *leaf, STACK_OF(X509) *untrusted,
                                 const char *host, time_t now, char *reason, size_t reason_len,
                                 time_t *valid_until)
{
	mtasts_result result = MTASTS_RESULT_VALIDATION_FAILURE;
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!ctx) {
		set_reason(reason, reason_len, "MTASTS_NOMEM");
		goto out;
	}
	if (X509_STORE_CTX_init(ctx, verifier->store, leaf, untrusted) != 1) {
		set_reason(reason, reason_len, "MTASTS_VERIFY_INIT");
		goto out;
	}
	/* "ssl_server": TLS server purpose and trust, as libssl would use for a client. */
	if (X509_STORE_CTX_set_default(ctx, "ssl_server") != 1) {
		set_reason(reason, reason_len, "MTASTS_VERIFY_INIT");
		goto out;
	}
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
	                                       X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (X509_VERIFY_PARAM_set1_host(param, host, 0) != 1) {
		set_reason(reason, reason_len, "MTASTS_VERIFY_INIT");
		goto out;
	}
	/* Security level 1, the libssl default: no keys under 80 bits of strength, no MD5/SHA-1. */
	X509_VERIFY_PARAM_set_auth_level(param, 1);
	if (now != 0)
		X509_VERIFY_PARAM_set_time(param, now);

	if (X509_verify_cert(ctx) == 1) {
		set_reason(reason, reason_len, "X509_V_OK");
		if (valid_until)
			*valid_until = chain_not_after(ctx);
		result = MTASTS_RESULT_SUCCESS;
		goto out;
	}
	int code = X509_STORE_CTX_get_error(ctx);
	if (code == X509_V_OK)  /* failed without saying why: never report success */
		code = X509_V_ERR_UNSPECIFIED;
	result = map_code(code, reason, reason_len);
out:
	X509_STORE_CTX_free(ctx);
	return result;
}

mtasts_result mtasts_verify_chain_der(mtasts_verifier *verifier,
                                      const unsigned char *const *chain, const size_t *lens,
                                      size_t n, const char *host, time_t now,
                                      char *reason, size_t reason_len)
{
	return mtasts_verify_chain_der_until(verifier, chain, lens, n, host, now, reason, reason_len,
	                                     NULL);
}

mtasts_result mtasts_verify_chain_der_until(mtasts_verifier *verifier,
                                            const unsigned char *const *chain, const size_t *lens,
                                            size_t n, const char *host, time_t now,
                                            char *reason, size_t reason_len, time_t *valid_until)
{
	mtasts_result result = MTASTS_RESULT_VALIDATION_FAILURE;
	char name[VERIFY_MAX_HOST + 1];
	X509 *leaf = NULL;
	STACK_OF(X509) *untrusted = NULL;

	if (!verifier || !chain || !lens || !host) {
		set_reason(reason, reason_len, "MTASTS_INVALID_ARG");
		return result;
	}
	if (n == 0) {
		set_reason(reason, reason_len, "MTASTS_EMPTY_CHAIN");
		return result;
	}
	if (n > VERIFY_MAX_CHAIN) {
		set_reason(reason, reason_len, "MTASTS_CHAIN_TOO_LONG");
		return result;
	}
	if (normalise_host(host, name)) {
		set_reason(reason, reason_len, "MTASTS_INVALID_HOST");
		return result;
	}

	ERR_set_mark();
	untrusted = sk_X509_new_null();
	if (!untrusted) {
		set_reason(reason, reason_len, "MTASTS_NOMEM");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!chain[i] || lens[i] == 0 || lens[i] > VERIFY_MAX_CERT_DER) {
			set_reason(reason, reason_len, "MTASTS_BAD_DER");
			goto out;
		}
		const unsigned char *p = chain[i];
		X509 *cert = d2i_X509(NULL, &p, (long)lens[i]);
		/* One whole certificate per element: trailing bytes are as bad as missing ones. */
		if (!cert || p != chain[i] + lens[i]) {
			X509_free(cert);
			set_reason(reason, reason_len, "MTASTS_BAD_DER");
			goto out;
		}
		if (i == 0) {
			leaf = cert;
		} else if (!sk_X509_push(untrusted, cert)) {
			X509_free(cert);
			set_reason(reason, reason_len, "MTASTS_NOMEM");
			goto out;
		}
	}
	result = verify_x509(verifier, leaf, untrusted, name, now, reason, reason_len, valid_until);
out:
	X509_free(leaf);
	sk_X509_pop_free(untrusted, X509_free);
	ERR_pop_to_mark();
	return result;
}

/* Never prompt for a pass phrase, whatever a hostile PEM header says. */
static int no_password(char *buf, int size, int rwflag, void *userdata)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return -1;
}

/* Read the whole file (bounded) into a fresh buffer. */
static const char *read_pem_file(const char *path, char **data, size_t *len)
{
	const char *why = NULL;
	char *buf = NULL;
	size_t used = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);  /* no FIFO wait */
	if (fd < 0)
		return "MTASTS_PEM_UNREADABLE";
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		why = "MTASTS_PEM_UNREADABLE";
		goto out;
	}
	if (st.st_size > VERIFY_MAX_PEM_FILE) {
		why = "MTASTS_PEM_TOO_LARGE";
		goto out;
	}
	buf = malloc(VERIFY_MAX_PEM_FILE + 1);
	if (!buf) {
		why = "MTASTS_NOMEM";
		goto out;
	}
	for (;;) {
		ssize_t got = read(fd, buf + used, VERIFY_MAX_PEM_FILE + 1 - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			why = "MTASTS_PEM_UNREADABLE";
			goto out;
		}
		if (got == 0)
			break;
		used += (size_t)got;
		if (used > VERIFY_MAX_PEM_FILE) {  /* grew while we read it */
			why = "MTASTS_PEM_TOO_LARGE";
			goto out;
		}
	}
	if (used == 0) {
		why = "MTASTS_PEM_EMPTY";
		goto out;
	}
	*data = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return why;
}

mtasts_result mtasts_verify_chain_pem_file(mtasts_verifier *verifier, const char *path,
                                           const char *host, time_t now,
                                           char *reason, size_t reason_len)
{
	mtasts_result result = MTASTS_RESULT_VALIDATION_FAILURE;
	char name[VERIFY_MAX_HOST + 1];
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *untrusted = NULL;

	if (!verifier || !path || !host) {
		set_reason(reason, reason_len, "MTASTS_INVALID_ARG");
		return result;
	}
	if (normalise_host(host, name)) {
		set_reason(reason, reason_len, "MTASTS_INVALID_HOST");
		return result;
	}

	ERR_set_mark();
	const char *why = read_pem_file(path, &data, &len);
	if (why) {
		set_reason(reason, reason_len, why);
		goto out;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	untrusted = sk_X509_new_null();
	if (!bio || !untrusted) {
		set_reason(reason, reason_len, "MTASTS_NOMEM");
		goto out;
	}
	for (size_t count = 0;; count++) {
		/* No ERR_clear_error(): it would wipe the caller's entries under our mark too. A failed
		 * PEM read always pushes an error, so the newest entry is this read's. */
		X509 *cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);
		if (!cert) {
			unsigned long err = ERR_peek_last_error();
			/* Running out of BEGIN lines is the normal end; anything else is damage. */
			if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)
				break;
			set_reason(reason, reason_len, "MTASTS_PEM_BAD");
			goto out;
		}
		if (count >= VERIFY_MAX_CHAIN) {
			X509_free(cert);
			set_reason(reason, reason_len, "MTASTS_CHAIN_TOO_LONG");
			goto out;
		}
		if (!leaf) {
			leaf = cert;
		} else if (!sk_X509_push(untrusted, cert)) {
			X509_free(cert);
			set_reason(reason, reason_len, "MTASTS_NOMEM");
			goto out;
		}
	}
	if (!leaf) {
		set_reason(reason, reason_len, "MTASTS_PEM_NO_CERT");
		goto out;
	}
	result = verify_x509(verifier, leaf, untrusted, name, now, reason, reason_len, NULL);
out:
	BIO_free(bio);
	free(data);
	X509_free(leaf);
	sk_X509_pop_free(untrusted, X509_free);
	ERR_pop_to_mark();
	return result;
}
