/*
 * idna.h - conversion of a domain name that may hold U-labels into its normalised A-label form
 * (libidn2, IDNA2008 with TR46 non-transitional mapping).
 */
#ifndef MTASTS_IDNA_H
#define MTASTS_IDNA_H

#include "mtasts/domain.h"

/* out gets the lower-case A-label form, validated as by mtasts_domain_normalize. */
mtasts_status mtasts_domain_to_ascii(const char *in, char out[MTASTS_DOMAIN_MAX]);

#endif
