/*
 * status.h - error codes of libmtasts and the RFC 8460 result types.
 *
 * Every fallible function of the library returns an mtasts_status; 0 is success.
 * mtasts_result names the RFC 8460 §4.3 result type a failure is reported as.
 */
#ifndef MTASTS_STATUS_H
#define MTASTS_STATUS_H

typedef enum mtasts_status {
	MTASTS_OK = 0,
	MTASTS_ERR_NOMEM,        /* allocation failed */
	MTASTS_ERR_INVALID_ARG,  /* caller error: NULL, empty, out of range */
	MTASTS_ERR_SYNTAX,       /* input does not follow its grammar */
	MTASTS_ERR_TOO_LARGE,    /* input over its size bound */
	MTASTS_ERR_NOT_FOUND,    /* no such record, entry or name (NXDOMAIN, NODATA, no file) */
	MTASTS_ERR_MULTIPLE,     /* more than one record where exactly one is required */
	MTASTS_ERR_DNS_TEMP,     /* SERVFAIL, REFUSED, timeout: try again later */
	MTASTS_ERR_FETCH,        /* the HTTPS policy fetch failed (see its mtasts_result) */
	MTASTS_ERR_VERIFY,       /* a certificate chain failed verification */
	MTASTS_ERR_IO,           /* a file system call failed (errno kept by the caller) */
	MTASTS_ERR_CORRUPT,      /* a stored file is damaged or truncated */
	MTASTS_ERR_BUSY,         /* backing off, or another process holds the lock */
	MTASTS_ERR_CONFIG,       /* bad configuration file or value */
	MTASTS_ERR_INTERNAL,     /* a library call failed in a way that is not the input's fault */
	MTASTS_STATUS_COUNT_
} mtasts_status;

/* A static, human-readable description; never NULL. */
const char *mtasts_strerror(mtasts_status status);

/* RFC 8460 §4.3 result types (the subset a sending MTA enforcing MTA-STS produces). */
typedef enum mtasts_result {
	MTASTS_RESULT_SUCCESS = 0,
	MTASTS_RESULT_STARTTLS_NOT_SUPPORTED,
	MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH,
	MTASTS_RESULT_CERTIFICATE_EXPIRED,
	MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED,
	MTASTS_RESULT_VALIDATION_FAILURE,
	MTASTS_RESULT_STS_POLICY_FETCH_ERROR,
	MTASTS_RESULT_STS_POLICY_INVALID,
	MTASTS_RESULT_STS_WEBPKI_INVALID,
	MTASTS_RESULT_COUNT_
} mtasts_result;

/* The registry name ("certificate-expired", ...); "success" for MTASTS_RESULT_SUCCESS. */
const char *mtasts_result_name(mtasts_result result);

/* Inverse of mtasts_result_name; returns MTASTS_ERR_SYNTAX for an unknown name. */
mtasts_status mtasts_result_from_name(const char *name, mtasts_result *out);

#endif
