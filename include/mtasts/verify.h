/*
 * verify.h - RFC 8461 §4.2 verification of a receiving MX's certificate chain, given as DER
 * (whatever TLS library the MTA used), against a trust store and the MX host name: chains to a
 * trusted root, within its validity period, SAN dNSName only (no CN fallback), a wildcard only as
 * a whole left-most label. Each failure maps to its RFC 8460 result type.
 */
#ifndef MTASTS_VERIFY_H
#define MTASTS_VERIFY_H

#include <stddef.h>
#include <time.h>
#include "mtasts/status.h"

typedef struct mtasts_verifier mtasts_verifier;

/* ca_file: PEM bundle; NULL uses the system default trust store (OpenSSL default paths). */
mtasts_status mtasts_verifier_new(const char *ca_file, mtasts_verifier **out);
void mtasts_verifier_destroy(mtasts_verifier **verifier);

/*
 * Verify chain[0] (leaf) with chain[1..n-1] as untrusted intermediates for host at time now
 * (0 = current time). Returns MTASTS_RESULT_SUCCESS or the failure's result type, and writes a
 * short reason (e.g. the OpenSSL X509_V_ERR name) into reason.
 */
mtasts_result mtasts_verify_chain_der(mtasts_verifier *verifier,
                                      const unsigned char *const *chain, const size_t *lens,
                                      size_t n, const char *host, time_t now,
                                      char *reason, size_t reason_len);

/*
 * The same, and on success the earliest notAfter of the verified chain (leaf, intermediates and
 * the trust anchor it reached) through *valid_until when valid_until is not NULL: the verdict
 * cannot hold past it. 0 when a notAfter could not be read. Left untouched on failure.
 */
mtasts_result mtasts_verify_chain_der_until(mtasts_verifier *verifier,
                                            const unsigned char *const *chain, const size_t *lens,
                                            size_t n, const char *host, time_t now,
                                            char *reason, size_t reason_len, time_t *valid_until);

/* The same for a PEM file holding the leaf first (for `mtasts verify-cert`). */
mtasts_result mtasts_verify_chain_pem_file(mtasts_verifier *verifier, const char *path,
                                           const char *host, time_t now,
                                           char *reason, size_t reason_len);

#endif
