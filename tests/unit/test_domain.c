/*
 * test_domain.c - unit tests of domain.c (RFC 5321 Domain validation, normalisation, §4.1 MX
 * pattern matching) and idna.c (U-labels to A-labels).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mtasts/domain.h"
#include "mtasts/idna.h"
#include "unit.h"

/* "a.a.a...": a name of exactly len characters made of labels of label_len 'a's */
static void make_name(char *buf, size_t len, size_t label_len)
{
	size_t i = 0, in_label = 0;

	while (i < len) {
		if (in_label == label_len && i + 1 < len) {
			buf[i++] = '.';
			in_label = 0;
		} else {
			buf[i++] = 'a';
			in_label++;
		}
	}
	buf[len] = '\0';
}

START_TEST(valid_names)
{
	const char *good[] = {
		"example.com", "mail.example.com", "MX1.Example.COM", "a", "localhost", "a-b.c",
		"xn--bcher-kva.example", "1.example", "123abc.com", "a.b.c.d.e.f.g", "x1", "0a",
		"mail.example.123a",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(mtasts_domain_is_valid(good[i]), "should be valid: %s", good[i]);
}
END_TEST

START_TEST(invalid_names)
{
	const char *bad[] = {
		"", ".", "example.com.", ".example.com", "a..b", "-a.com", "a-.com", "a.-b.com",
		"a_b.example.com", "_mta-sts.example.com", "192.0.2.1", "example.123", "1", "[192.0.2.1]",
		"2001:db8::1", "a b.com", "a,b.com", "*.example.com", ("b\xc3\xbc" "cher.example"),
		"exa\tmple.com", "example.com\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!mtasts_domain_is_valid(bad[i]), "should be invalid: %s", bad[i]);
	ck_assert(!mtasts_domain_is_valid(NULL));
}
END_TEST

START_TEST(label_and_name_lengths)
{
	char name[400];
	char label63[64], label64[65];

	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';
	snprintf(name, sizeof(name), "%s.com", label63);
	ck_assert(mtasts_domain_is_valid(name));
	snprintf(name, sizeof(name), "%s.com", label64);
	ck_assert(!mtasts_domain_is_valid(name));
	snprintf(name, sizeof(name), "x.%s", label63);
	ck_assert(mtasts_domain_is_valid(name));
	snprintf(name, sizeof(name), "x.%s", label64);
	ck_assert(!mtasts_domain_is_valid(name));

	make_name(name, 253, 63);
	ck_assert_uint_eq(strlen(name), 253);
	ck_assert(mtasts_domain_is_valid(name));
	make_name(name, 254, 63);
	ck_assert(!mtasts_domain_is_valid(name));
	make_name(name, 300, 10);
	ck_assert(!mtasts_domain_is_valid(name));
}
END_TEST

START_TEST(normalize)
{
	char out[MTASTS_DOMAIN_MAX];
	char name[400];

	ck_assert_int_eq(mtasts_domain_normalize("MAIL.Example.COM.", out), MTASTS_OK);
	ck_assert_str_eq(out, "mail.example.com");
	ck_assert_int_eq(mtasts_domain_normalize("example.com", out), MTASTS_OK);
	ck_assert_str_eq(out, "example.com");
	ck_assert_int_eq(mtasts_domain_normalize("example.com..", out), MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(mtasts_domain_normalize(".", out), MTASTS_ERR_SYNTAX);
	ck_assert_int_eq(mtasts_domain_normalize("", out), MTASTS_ERR_SYNTAX);
	ck_assert_int_eq(mtasts_domain_normalize("a_b.com", out), MTASTS_ERR_SYNTAX);
	ck_assert_int_eq(mtasts_domain_normalize("10.0.0.1", out), MTASTS_ERR_SYNTAX);
	ck_assert_int_eq(mtasts_domain_normalize(NULL, out), MTASTS_ERR_INVALID_ARG);

	make_name(name, 253, 63);
	name[0] = 'A';
	ck_assert_int_eq(mtasts_domain_normalize(name, out), MTASTS_OK);
	ck_assert_uint_eq(strlen(out), 253);
	ck_assert_int_eq(out[0], 'a');
	strcat(name, ".");   /* 253 + root dot is fine */
	ck_assert_int_eq(mtasts_domain_normalize(name, out), MTASTS_OK);
	ck_assert_uint_eq(strlen(out), 253);
	make_name(name, 254, 63);
	ck_assert_int_eq(mtasts_domain_normalize(name, out), MTASTS_ERR_TOO_LARGE);
	ck_assert_str_eq(out, "");
	make_name(name, 390, 20);
	ck_assert_int_eq(mtasts_domain_normalize(name, out), MTASTS_ERR_TOO_LARGE);
}
END_TEST

START_TEST(pattern_validity)
{
	ck_assert(mtasts_mx_pattern_is_valid("mail.example.com"));
	ck_assert(mtasts_mx_pattern_is_valid("*.example.com"));
	ck_assert(mtasts_mx_pattern_is_valid("*.xn--bcher-kva.example"));
	ck_assert(!mtasts_mx_pattern_is_valid("*"));
	ck_assert(!mtasts_mx_pattern_is_valid("*."));
	ck_assert(!mtasts_mx_pattern_is_valid("*example.com"));
	ck_assert(!mtasts_mx_pattern_is_valid("m*.example.com"));
	ck_assert(!mtasts_mx_pattern_is_valid("*.*.example.com"));
	ck_assert(!mtasts_mx_pattern_is_valid("mail.*.example.com"));
	ck_assert(!mtasts_mx_pattern_is_valid("*.192.0.2.1"));
	ck_assert(!mtasts_mx_pattern_is_valid("192.0.2.1"));
	ck_assert(!mtasts_mx_pattern_is_valid("mail.example.com, mx2.example.com"));
	ck_assert(!mtasts_mx_pattern_is_valid("b\xc3\xbc" "cher.example"));
	ck_assert(!mtasts_mx_pattern_is_valid(NULL));
}
END_TEST

/* Part D vectors and Part C items 15, 16 */
START_TEST(mx_match_vectors)
{
	ck_assert(mtasts_mx_match("mail.example.com", "MAIL.example.com."));
	ck_assert(mtasts_mx_match("mail.example.com", "mail.example.com"));
	ck_assert(mtasts_mx_match("MAIL.EXAMPLE.COM.", "mail.example.com"));
	ck_assert(mtasts_mx_match("mail.example.com.", "mail.example.com."));
	ck_assert(mtasts_mx_match("*.example.com", "mx1.example.com"));
	ck_assert(mtasts_mx_match("*.example.com", "MX1.EXAMPLE.COM."));
	ck_assert(mtasts_mx_match("*.example.com.", "mx1.example.com"));
	ck_assert(!mtasts_mx_match("*.example.com", "example.com"));
	ck_assert(!mtasts_mx_match("*.example.com", ".example.com"));
	ck_assert(!mtasts_mx_match("*.example.com", "a.mx1.example.com"));
	ck_assert(!mtasts_mx_match("*.example.com", "mx1.example.co"));
	ck_assert(!mtasts_mx_match("*.example.com", "mx1.example.com.evil"));
	ck_assert(!mtasts_mx_match("*.example.com", "mx1xexample.com"));
	ck_assert(mtasts_mx_match("*.xn--bcher-kva.example", "mx.xn--bcher-kva.example"));
	ck_assert(!mtasts_mx_match("mail.example.com", "mail.example.com.."));
	ck_assert(!mtasts_mx_match("mail.example.com", "mail.example.co"));
	ck_assert(!mtasts_mx_match("mail.example.com", "xmail.example.com"));
	ck_assert(!mtasts_mx_match("mail.example.com", "mail.example.com "));
	ck_assert(!mtasts_mx_match("example.com", "mail.example.com"));
	ck_assert(!mtasts_mx_match("mail.example.com", ""));
	ck_assert(!mtasts_mx_match("", ""));
	ck_assert(!mtasts_mx_match("", "."));
	ck_assert(!mtasts_mx_match(NULL, "a.com"));
	ck_assert(!mtasts_mx_match("a.com", NULL));
	/* the wildcard label must itself be a valid, non-empty label */
	ck_assert(!mtasts_mx_match("*.example.com", "a_b.example.com"));
	ck_assert(!mtasts_mx_match("*.example.com", "-a.example.com"));
	ck_assert(!mtasts_mx_match("*.example.com", "*.example.com"));
	/* a bare "*" is not a pattern */
	ck_assert(!mtasts_mx_match("*", "com"));
}
END_TEST

START_TEST(mx_match_invalid_patterns_never_match)
{
	/* identical strings, but the pattern is not a valid Domain */
	const char *same[] = {
		"a_b.example.com", "192.0.2.1", "a..b.com", "-a.com", "a b.com", "mail.*.example.com",
		"*.*.example.com", "m*.example.com", "x.example.123",
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		ck_assert_msg(!mtasts_mx_match(same[i], same[i]), "matched: %s", same[i]);
	ck_assert(!mtasts_mx_match("*.a_b.com", "x.a_b.com"));
	ck_assert(!mtasts_mx_match("*.192.0.2", "1.192.0.2"));
}
END_TEST

START_TEST(mx_match_lengths)
{
	char host[400], pattern[400];

	make_name(host, 253, 63);
	ck_assert(mtasts_mx_match(host, host));
	strcpy(pattern, host);
	strcat(pattern, ".");
	ck_assert(mtasts_mx_match(pattern, host));
	ck_assert(mtasts_mx_match(host, pattern));
	/* 254 characters: never a valid name */
	make_name(host, 254, 63);
	ck_assert(!mtasts_mx_match(host, host));
	/* wildcard: "x." + 251 characters = 253, fine; one more is too long */
	make_name(pattern + 2, 251, 63);
	pattern[0] = '*';
	pattern[1] = '.';
	strcpy(host, "x.");
	strcat(host, pattern + 2);
	ck_assert(mtasts_mx_match(pattern, host));
	strcpy(host, "xy.");
	strcat(host, pattern + 2);
	ck_assert(!mtasts_mx_match(pattern, host));
	/* a 63-character wildcard label matches, 64 does not */
	memset(host, 'b', 63);
	strcpy(host + 63, ".example.com");
	ck_assert(mtasts_mx_match("*.example.com", host));
	memset(host, 'b', 64);
	strcpy(host + 64, ".example.com");
	ck_assert(!mtasts_mx_match("*.example.com", host));
}
END_TEST

START_TEST(mx_match_speed)
{
	struct timespec t0, t1;
	const int rounds = 1000000;
	int hits = 0;
	double ns;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < rounds; i++) {
		hits += mtasts_mx_match("*.mail.protection.example.com", "Example-COM.mail.protection.example.com.");
		hits += mtasts_mx_match("mx1.example.net", (i & 1) ? "mx2.example.net" : "MX1.example.net");
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_eq(hits, rounds + rounds / 2);
	ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (2.0 * rounds);
	printf("mtasts_mx_match: %.1f ns per call\n", ns);
	/* generous: catches an accidental quadratic or allocating path, not a slow machine */
	ck_assert_msg(ns < 2000.0, "mx_match too slow: %.1f ns", ns);
}
END_TEST

/* a megabyte-long string is rejected after reading a bounded prefix of it */
START_TEST(huge_input)
{
	size_t len = 1024 * 1024;
	char *big = malloc(len + 1);
	char out[MTASTS_DOMAIN_MAX];

	ck_assert_ptr_nonnull(big);
	memset(big, 'a', len);
	big[len] = '\0';
	ck_assert(!mtasts_domain_is_valid(big));
	ck_assert(!mtasts_mx_pattern_is_valid(big));
	ck_assert(!mtasts_mx_match(big, big));
	ck_assert(!mtasts_mx_match("*.a", big));
	ck_assert_int_eq(mtasts_domain_normalize(big, out), MTASTS_ERR_TOO_LARGE);
	ck_assert_int_eq(mtasts_domain_to_ascii(big, out), MTASTS_ERR_TOO_LARGE);
	free(big);
}
END_TEST

/* Part C item 18: U-labels are converted before any comparison */
START_TEST(idna_conversion)
{
	char out[MTASTS_DOMAIN_MAX];

	ck_assert_int_eq(mtasts_domain_to_ascii("b\xc3\xbc" "cher.example", out), MTASTS_OK);
	ck_assert_str_eq(out, "xn--bcher-kva.example");
	ck_assert_int_eq(mtasts_domain_to_ascii("B\xc3\x9c" "CHER.Example.", out), MTASTS_OK);
	ck_assert_str_eq(out, "xn--bcher-kva.example");
	ck_assert(mtasts_mx_match("*.xn--bcher-kva.example", "mx.xn--bcher-kva.example"));
	/* non-transitional: sharp s is kept (xn--fa-hia), not mapped to "ss" */
	ck_assert_int_eq(mtasts_domain_to_ascii("fa\xc3\x9f.de", out), MTASTS_OK);
	ck_assert_str_eq(out, "xn--fa-hia.de");
	/* pure ASCII skips libidn2 and is only normalised */
	ck_assert_int_eq(mtasts_domain_to_ascii("MX.Example.ORG.", out), MTASTS_OK);
	ck_assert_str_eq(out, "mx.example.org");
	ck_assert_int_eq(mtasts_domain_to_ascii("a_b.example", out), MTASTS_ERR_SYNTAX);
	/* invalid UTF-8 */
	ck_assert_int_eq(mtasts_domain_to_ascii("b\xfc" "cher.example", out), MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(mtasts_domain_to_ascii(NULL, out), MTASTS_ERR_INVALID_ARG);
}
END_TEST

START_TEST(idna_too_long)
{
	char out[MTASTS_DOMAIN_MAX];
	char name[2048];
	size_t n = 0;

	/* 200 U-labels "ü." grow past 253 octets once converted */
	while (n + 4 < 1000) {
		memcpy(name + n, "\xc3\xbc.", 3);
		n += 3;
	}
	memcpy(name + n, "de", 3);
	ck_assert_int_ne(mtasts_domain_to_ascii(name, out), MTASTS_OK);
	ck_assert_str_eq(out, "");
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(mtasts_domain_to_ascii(name, out), MTASTS_ERR_TOO_LARGE);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("domain");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, valid_names);
	tcase_add_test(tc, invalid_names);
	tcase_add_test(tc, label_and_name_lengths);
	tcase_add_test(tc, normalize);
	tcase_add_test(tc, pattern_validity);
	tcase_add_test(tc, mx_match_vectors);
	tcase_add_test(tc, mx_match_invalid_patterns_never_match);
	tcase_add_test(tc, mx_match_lengths);
	tcase_add_test(tc, mx_match_speed);
	tcase_add_test(tc, huge_input);
	tcase_add_test(tc, idna_conversion);
	tcase_add_test(tc, idna_too_long);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(make_suite)
