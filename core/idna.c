/*
 * idna.c - a domain name that may hold U-labels, converted to its lower-case A-label form
 * (libidn2: IDNA2008 with UTS #46 non-transitional mapping, NFC input), then validated as an
 * RFC 5321 Domain by mtasts_domain_normalize.
 *
 * Pure-ASCII input never reaches libidn2; it is only normalised. Only this file needs libidn2,
 * so the shim, which links domain.c but not idna.c, stays free of it.
 */
#include <idn2.h>
#include <string.h>
#include "mtasts/idna.h"

/* far more than any name that can still fit 253 octets once converted */
#define IDNA_INPUT_MAX 1024

static mtasts_status status_of_idn2(int rc)
{
	switch (rc) {
	case IDN2_OK:
		return MTASTS_OK;
	case IDN2_MALLOC:
		return MTASTS_ERR_NOMEM;
	case IDN2_TOO_BIG_DOMAIN:
		return MTASTS_ERR_TOO_LARGE;
	default:
		return MTASTS_ERR_SYNTAX;
	}
}

mtasts_status mtasts_domain_to_ascii(const char *in, char out[MTASTS_DOMAIN_MAX])
{
	mtasts_status status;
	char *ascii = NULL;
	size_t n;
	bool non_ascii = false;

	if (!in || !out)
		return MTASTS_ERR_INVALID_ARG;
	out[0] = '\0';
	n = strnlen(in, IDNA_INPUT_MAX);
	if (n >= IDNA_INPUT_MAX)
		return MTASTS_ERR_TOO_LARGE;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)in[i] >= 0x80) {
			non_ascii = true;
			break;
		}
	}
	if (!non_ascii)
		return mtasts_domain_normalize(in, out);

	status = status_of_idn2(idn2_to_ascii_8z(in, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT));
	if (status)
		goto out;
	status = mtasts_domain_normalize(ascii, out);
out:
	idn2_free(ascii);
	return status;
}
