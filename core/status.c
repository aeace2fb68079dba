/*
 * status.c - names and descriptions of libmtasts status codes and RFC 8460 result types.
 */
#include <string.h>
#include "mtasts/status.h"

static const char *const status_text[MTASTS_STATUS_COUNT_] = {
	[MTASTS_OK] = "success",
	[MTASTS_ERR_NOMEM] = "out of memory",
	[MTASTS_ERR_INVALID_ARG] = "invalid argument",
	[MTASTS_ERR_SYNTAX] = "syntax error",
	[MTASTS_ERR_TOO_LARGE] = "input too large",
	[MTASTS_ERR_NOT_FOUND] = "not found",
	[MTASTS_ERR_MULTIPLE] = "more than one record",
	[MTASTS_ERR_DNS_TEMP] = "temporary DNS failure",
	[MTASTS_ERR_FETCH] = "policy fetch failed",
	[MTASTS_ERR_VERIFY] = "certificate verification failed",
	[MTASTS_ERR_IO] = "I/O error",
	[MTASTS_ERR_CORRUPT] = "damaged file",
	[MTASTS_ERR_BUSY] = "busy or backing off",
	[MTASTS_ERR_CONFIG] = "configuration error",
	[MTASTS_ERR_INTERNAL] = "internal error",
};

static const char *const result_names[MTASTS_RESULT_COUNT_] = {
	[MTASTS_RESULT_SUCCESS] = "success",
	[MTASTS_RESULT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	[MTASTS_RESULT_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
	[MTASTS_RESULT_CERTIFICATE_EXPIRED] = "certificate-expired",
	[MTASTS_RESULT_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
	[MTASTS_RESULT_VALIDATION_FAILURE] = "validation-failure",
	[MTASTS_RESULT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
	[MTASTS_RESULT_STS_POLICY_INVALID] = "sts-policy-invalid",
	[MTASTS_RESULT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

const char *mtasts_strerror(mtasts_status status)
{
	if ((unsigned)status >= MTASTS_STATUS_COUNT_)
		return "unknown status";
	return status_text[status];
}

const char *mtasts_result_name(mtasts_result result)
{
	if ((unsigned)result >= MTASTS_RESULT_COUNT_)
		return "validation-failure";
	return result_names[result];
}

mtasts_status mtasts_result_from_name(const char *name, mtasts_result *out)
{
	if (!name || !out)
		return MTASTS_ERR_INVALID_ARG;
	for (unsigned i = 0; i < MTASTS_RESULT_COUNT_; i++) {
		if (strcmp(name, result_names[i]) == 0) {
			*out = (mtasts_result)i;
			return MTASTS_OK;
		}
	}
	return MTASTS_ERR_SYNTAX;
}
