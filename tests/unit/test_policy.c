/*
 * test_policy.c - unit tests of policy.c: the RFC 8461 §3.2 body grammar, the documented
 * tolerances (docs/parsing.md), clone/destroy, mode names and the §4.1 check against a policy
 * (checklist Part D policy vectors, Part C items 10-16 and 18, hostile input, linear time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mtasts/policy.h"
#include "unit.h"

#define LF_POLICY "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n"

static mtasts_policy *parse_ok(const char *body, size_t len)
{
	mtasts_policy *policy = NULL;
	char why[256] = "";
	mtasts_status status = mtasts_policy_parse(body, len, &policy, why, sizeof(why));

	ck_assert_msg(status == MTASTS_OK, "rejected (%d): %s", status, why);
	ck_assert_ptr_nonnull(policy);
	ck_assert_str_eq(why, "");
	return policy;
}

static mtasts_policy *ok(const char *body)
{
	return parse_ok(body, strlen(body));
}

/* parse must fail with status and a reason containing why_part */
static void bad_len(const char *body, size_t len, mtasts_status want, const char *why_part)
{
	mtasts_policy *policy = (mtasts_policy *)0x1;
	char why[256] = "";
	mtasts_status status = mtasts_policy_parse(body, len, &policy, why, sizeof(why));

	ck_assert_msg(status == want, "status %d, want %d, why '%s'", status, want, why);
	ck_assert_ptr_null(policy);
	ck_assert_msg(strstr(why, why_part) != NULL, "reason '%s' lacks '%s'", why, why_part);
}

static void bad(const char *body, const char *why_part)
{
	bad_len(body, strlen(body), MTASTS_ERR_SYNTAX, why_part);
}

static void check_part_d_valid(mtasts_policy *p)
{
	ck_assert_int_eq(p->mode, MTASTS_MODE_ENFORCE);
	ck_assert_uint_eq(p->max_age, 604800);
	ck_assert_uint_eq(p->mx_count, 2);
	ck_assert_str_eq(p->mx[0], "mail.example.com");
	ck_assert_str_eq(p->mx[1], "*.example.net");
}

/* Part D valid vectors and Part C item 10 */
START_TEST(part_d_valid)
{
	mtasts_policy *p;

	p = ok(LF_POLICY);
	check_part_d_valid(p);
	mtasts_policy_destroy(&p);
	ck_assert_ptr_null(p);

	p = ok("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n");
	check_part_d_valid(p);
	mtasts_policy_destroy(&p);

	p = ok("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800");
	check_part_d_valid(p);
	mtasts_policy_destroy(&p);

	p = ok("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800");
	check_part_d_valid(p);
	mtasts_policy_destroy(&p);

	/* mixed terminators */
	p = ok("version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\nmx: *.example.net\nmax_age: 604800\r\n");
	check_part_d_valid(p);
	mtasts_policy_destroy(&p);

	p = ok("mode: none\nversion: STSv1\nmax_age: 86400");
	ck_assert_int_eq(p->mode, MTASTS_MODE_NONE);
	ck_assert_uint_eq(p->max_age, 86400);
	ck_assert_uint_eq(p->mx_count, 0);
	mtasts_policy_destroy(&p);
}
END_TEST

/* Part D invalid vectors, with the reasons the operator will read */
START_TEST(part_d_invalid)
{
	bad("version: STSv1\nmode: enforce\nmax_age: 604800\n", "mx: missing");
	bad("version: STSv1\nmax_age: 1\nmode: Enforce\nmx: a.example\n",
	    "line 3: mode: unknown value 'Enforce'");
	bad("version : STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n",
	    "line 1: whitespace before ':'");
	bad("version: STSv1\nmode: enforce\nmx: mail.example.com, mx2.example.com\nmax_age: 1\n",
	    "line 3: mx: 'mail.example.com, mx2.example.com': one pattern per mx line");
	bad("version: STSv1\nmode: enforce\nmx: b\xc3\xbc" "cher.example\nmax_age: 1\n",
	    "line 3: mx: 'b??cher.example' is not ASCII; IDN patterns must use A-labels");
	bad("version: STSv1\nmode: enforce\nmx: mail.example.com\n", "max_age: missing");
	bad("mode: enforce\nmx: mail.example.com\nmax_age: 1\n", "version: missing");
	bad("version: STSv1\nmx: mail.example.com\nmax_age: 1\n", "mode: missing");
}
END_TEST

/* Part C item 11: only mode none may leave out mx; a typo'd key is an ignored extension */
START_TEST(c11_mx_required)
{
	mtasts_policy *p;

	bad("version: STSv1\nmode: enforce\nnmx: mail.example.com\nmax_age: 1\n", "mx: missing");
	bad("version: STSv1\nmode: testing\nmax_age: 1\n", "mx: missing");
	bad("version: STSv1\nmode: enforce\nMX: mail.example.com\nmax_age: 1\n", "mx: missing");
	p = ok("version: STSv1\nmode: none\nmax_age: 1\nmx: mail.example.com\n");
	ck_assert_uint_eq(p->mx_count, 1);
	mtasts_policy_destroy(&p);
}
END_TEST

/* Part C item 12 and the mx value grammar */
START_TEST(c12_mx_values)
{
	bad("version: STSv1\nmode: enforce\nmx: 192.0.2.25\nmax_age: 1\n",
	    "line 3: mx: '192.0.2.25' is an IP address");
	bad("version: STSv1\nmode: enforce\nmx: [192.0.2.25]\nmax_age: 1\n", "line 3: mx: '[192.0.2.25]' has a character");
	bad("version: STSv1\nmode: enforce\nmx: 2001:db8::1\nmax_age: 1\n", "has a character");
	bad("version: STSv1\nmode: enforce\nmx: mail_1.example.com\nmax_age: 1\n", "has a character");
	bad("version: STSv1\nmode: enforce\nmx: mail.example.com.\nmax_age: 1\n", "not a valid host name pattern");
	bad("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "not a valid host name pattern");
	bad("version: STSv1\nmode: enforce\nmx: m*.example.com\nmax_age: 1\n", "not a valid host name pattern");
	bad("version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 1\n", "not a valid host name pattern");
	bad("version: STSv1\nmode: enforce\nmx: a..example.com\nmax_age: 1\n", "not a valid host name pattern");
	bad("version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "line 3: mx: empty value");
	bad("version: STSv1\nmode: enforce\nmx: a.example b.example\nmax_age: 1\n", "one pattern per mx line");
	bad("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: bad..name\nmax_age: 1\n", "line 4: mx:");
}
END_TEST

START_TEST(mx_stored_lower_case_every_line_counts)
{
	mtasts_policy *p = ok("version: STSv1\nmode: testing\nmx: MAIL.Example.COM\nmx: *.EXAMPLE.net\n"
	                      "max_age: 1\nmx: mail.example.com\nmx:\tthird.example\n");

	ck_assert_int_eq(p->mode, MTASTS_MODE_TESTING);
	ck_assert_uint_eq(p->mx_count, 4);
	ck_assert_str_eq(p->mx[0], "mail.example.com");
	ck_assert_str_eq(p->mx[1], "*.example.net");
	ck_assert_str_eq(p->mx[2], "mail.example.com");
	ck_assert_str_eq(p->mx[3], "third.example");
	mtasts_policy_destroy(&p);
}
END_TEST

/* Part C item 13 and the max_age grammar */
START_TEST(c13_max_age)
{
	mtasts_policy *p;
	static const struct { const char *v; uint32_t want; } cases[] = {
		{ "0", 0 }, { "1", 1 }, { "604800", 604800 }, { "31557600", 31557600 },
		{ "31557601", 31557600 }, { "2147483648", 31557600 }, { "4294967296", 31557600 },
		{ "9999999999", 31557600 }, { "0000000001", 1 }, { "00031557599", 0 },
	};
	char body[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "version: STSv1\nmode: none\nmax_age: %s\n", cases[i].v);
		if (strlen(cases[i].v) > 10) {
			bad(body, "line 3: max_age: more than 10 digits");
			continue;
		}
		p = ok(body);
		ck_assert_msg(p->max_age == cases[i].want, "max_age %s gave %u", cases[i].v, p->max_age);
		mtasts_policy_destroy(&p);
	}
	bad("version: STSv1\nmode: none\nmax_age: -1\n", "line 3: max_age: '-1' is not a number");
	bad("version: STSv1\nmode: none\nmax_age: +5\n", "is not a number");
	bad("version: STSv1\nmode: none\nmax_age: 1e6\n", "is not a number");
	bad("version: STSv1\nmode: none\nmax_age: 86400s\n", "is not a number");
	bad("version: STSv1\nmode: none\nmax_age: 86 400\n", "is not a number");
	bad("version: STSv1\nmode: none\nmax_age: 99999999999999999999999\n", "more than 10 digits");
	bad("version: STSv1\nmode: none\nmax_age:\n", "max_age: empty value");
}
END_TEST

/* Part C item 14: first occurrence wins for non-mx keys, later ones are ignored */
START_TEST(c14_first_wins)
{
	mtasts_policy *p;

	p = ok("version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 5\nmax_age: 7\n");
	ck_assert_int_eq(p->mode, MTASTS_MODE_TESTING);
	ck_assert_uint_eq(p->max_age, 5);
	mtasts_policy_destroy(&p);
	p = ok("version: STSv1\nversion: STSv2\nmode: none\nmode: Bogus\nmax_age: 5\nmax_age: x\n");
	ck_assert_int_eq(p->mode, MTASTS_MODE_NONE);
	mtasts_policy_destroy(&p);
	/* the first one is checked */
	bad("version: STSv1\nmode: Testing\nmode: testing\nmx: a.example\nmax_age: 5\n",
	    "line 2: mode: unknown value 'Testing'");
	bad("version: STSv2\nversion: STSv1\nmode: none\nmax_age: 5\n", "line 1: version: unknown value 'STSv2'");
	bad("version: stsv1\nmode: none\nmax_age: 5\n", "version: unknown value 'stsv1'");
}
END_TEST

/* Part C items 15 and 16 through the policy */
START_TEST(c15_c16_allows_mx)
{
	mtasts_policy *p = ok(LF_POLICY);

	ck_assert(mtasts_policy_allows_mx(p, "mail.example.com"));
	ck_assert(mtasts_policy_allows_mx(p, "MAIL.Example.COM."));
	ck_assert(mtasts_policy_allows_mx(p, "mx1.example.net"));
	ck_assert(mtasts_policy_allows_mx(p, "MX1.EXAMPLE.NET."));
	ck_assert(!mtasts_policy_allows_mx(p, "example.net"));
	ck_assert(!mtasts_policy_allows_mx(p, "a.mx1.example.net"));
	ck_assert(!mtasts_policy_allows_mx(p, "mail.example.org"));
	ck_assert(!mtasts_policy_allows_mx(p, "evil.mail.example.com"));
	ck_assert(!mtasts_policy_allows_mx(p, ""));
	ck_assert(!mtasts_policy_allows_mx(p, NULL));
	ck_assert(!mtasts_policy_allows_mx(NULL, "mail.example.com"));
	mtasts_policy_destroy(&p);

	p = ok("version: STSv1\nmode: enforce\nmx: *.xn--bcher-kva.example\nmax_age: 1\n");
	ck_assert(mtasts_policy_allows_mx(p, "mx.xn--bcher-kva.example"));
	ck_assert(!mtasts_policy_allows_mx(p, "mx.b\xc3\xbc" "cher.example"));
	mtasts_policy_destroy(&p);
}
END_TEST

/* The tolerances of docs/parsing.md */
START_TEST(tolerances)
{
	mtasts_policy *p;

	/* trailing whitespace, tabs or none after ':' */
	p = ok("version: STSv1 \t\nmode:enforce\nmx:\t\tmail.example.com  \nmax_age:   604800\t\n");
	ck_assert_int_eq(p->mode, MTASTS_MODE_ENFORCE);
	ck_assert_str_eq(p->mx[0], "mail.example.com");
	mtasts_policy_destroy(&p);
	/* BOM at the start */
	p = ok("\xef\xbb\xbfversion: STSv1\nmode: none\nmax_age: 1\n");
	mtasts_policy_destroy(&p);
	/* blank and whitespace-only lines anywhere, several final terminators */
	p = ok("\n\r\nversion: STSv1\n\n  \t\nmode: none\r\n\r\nmax_age: 1\n\n\n");
	mtasts_policy_destroy(&p);
	/* lone CR at the very end */
	p = ok("version: STSv1\nmode: none\nmax_age: 1\r");
	mtasts_policy_destroy(&p);
	/* unknown keys of valid ext-name shape are ignored, whatever their value */
	p = ok("version: STSv1\nmode: none\nmax_age: 1\nfoo.bar-baz_1: anything at all ; = \xff\xfe\n"
	       "x:\nMode: enforce\n0123456789abcdef0123456789abcdef: 32-char key\n");
	ck_assert_int_eq(p->mode, MTASTS_MODE_NONE);
	mtasts_policy_destroy(&p);

	/* not tolerated */
	bad("version: STSv1\n mode: none\nmax_age: 1\n", "line 2: leading whitespace");
	bad("version: STSv1\n\tmode: none\nmax_age: 1\n", "line 2: leading whitespace");
	bad("version: STSv1\nmode: none\nmax_age: 1\n\xef\xbb\xbfx: y\n", "line 4: invalid character in key");
	bad("version: STSv1\nmode: none\nmax_age: 1\nthis line has no colon\n", "line 4: no ':'");
	bad("version: STSv1\nmode: none\nmax_age: 1\n: value\n", "line 4: empty key");
	bad("version: STSv1\nmode: none\nmax_age: 1\n_x: value\n", "line 4: key must start");
	bad("version: STSv1\nmode: none\nmax_age: 1\n0123456789abcdef0123456789abcdefX: v\n",
	    "line 4: key longer than 32");
	bad("version: STSv1\nmode: none\nmax_age: 1\nmy key: v\n", "line 4: whitespace before ':'");
	bad("version: STSv1\rmode: none\nmax_age: 1\n", "line 1: version: unknown value 'STSv1?mode: none'");
	bad("version: STSv1\nmode: enforce\r\r\nmx: a.example\nmax_age: 1\n", "line 2: mode: unknown value 'enforce?'");
	bad("version: STSv1\nmode: enforce\nmx: a.example\r\nmax_age: 1\n\r\r\n", "line 5:");
}
END_TEST

START_TEST(empty_and_blank_bodies)
{
	bad("", "empty policy");
	bad("\r\n\r\n\r\n\r\n", "empty policy");
	bad("\n", "empty policy");
	bad("\xef\xbb\xbf", "empty policy");
	bad_len(NULL, 0, MTASTS_ERR_SYNTAX, "empty policy");
}
END_TEST

START_TEST(nul_bytes)
{
	static const char body[] = "version: STSv1\nmode: none\nmax\0_age: 1\n";
	static const char body2[] = "version: STSv1\nmode: none\nmax_age: 1\n\0";

	bad_len(body, sizeof(body) - 1, MTASTS_ERR_SYNTAX, "line 3: NUL byte");
	bad_len(body2, sizeof(body2) - 1, MTASTS_ERR_SYNTAX, "line 4: NUL byte");
}
END_TEST

START_TEST(invalid_utf8)
{
	mtasts_policy *p;

	/* only extension values may hold non-ASCII; there it is not checked (ignored field) */
	p = ok("version: STSv1\nmode: none\nmax_age: 1\nnote: \xc3\x28\xa0\xa1\xf0\x28\x8c\xbc\n");
	mtasts_policy_destroy(&p);
	bad("version: STSv1\nmode: enforce\nmx: \xc3\x28.example\nmax_age: 1\n", "not ASCII");
	bad("version: STSv1\nmode: \xc3\x28\nmax_age: 1\n", "line 2: mode: unknown value '?('");
	bad("v\xc3\xa9rsion: STSv1\nmode: none\nmax_age: 1\n", "line 1: invalid character in key");
}
END_TEST

START_TEST(label_and_name_lengths)
{
	mtasts_policy *p;
	char body[1024], name[300];
	size_t n;

	memset(name, 'a', 63);
	strcpy(name + 63, ".example");
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", name);
	p = ok(body);
	ck_assert_str_eq(p->mx[0], name);
	mtasts_policy_destroy(&p);
	memset(name, 'a', 64);
	strcpy(name + 64, ".example");
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmx: *.%s\nmax_age: 1\n", name);
	bad(body, "line 3: mx: '*.aaaa");

	/* a 253-character name is fine, 254 is not: labels of 63 'b's and a last one of 61 */
	memset(name, 'b', 253);
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	ck_assert_uint_eq(strlen(name), 253);
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", name);
	p = ok(body);
	ck_assert_uint_eq(strlen(p->mx[0]), 253);
	ck_assert(mtasts_policy_allows_mx(p, name));
	mtasts_policy_destroy(&p);
	name[253] = 'c';
	name[254] = '\0';
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", name);
	bad(body, "line 3: mx:");
	/* a 2000-character mx value */
	{
		char *big = malloc(4096);
		ck_assert_ptr_nonnull(big);
		n = (size_t)sprintf(big, "version: STSv1\nmode: enforce\nmx: ");
		memset(big + n, 'q', 2000);
		strcpy(big + n + 2000, "\nmax_age: 1\n");
		bad(big, "line 3: mx: pattern longer than 255 characters");
		free(big);
	}
}
END_TEST

START_TEST(too_large)
{
	size_t len = 1024 * 1024;
	char *body = malloc(len);
	size_t n = 0;

	ck_assert_ptr_nonnull(body);
	/* a 1 MB line */
	memcpy(body, "mx: ", 4);
	memset(body + 4, 'a', len - 4);
	bad_len(body, len, MTASTS_ERR_TOO_LARGE, "over the 65536-byte limit");
	free(body);

	/* a million mx lines */
	len = 1000000 * 11 + 64;
	body = malloc(len);
	ck_assert_ptr_nonnull(body);
	n = (size_t)sprintf(body, "version: STSv1\nmode: enforce\nmax_age: 1\n");
	for (int i = 0; i < 1000000; i++) {
		memcpy(body + n, "mx: a.b.cc\n", 11);
		n += 11;
	}
	bad_len(body, n, MTASTS_ERR_TOO_LARGE, "limit");
	/* exactly at the limit is parsed, one byte more is not */
	body[MTASTS_POLICY_BODY_MAX - 1] = '\n';
	{
		mtasts_policy *p = NULL;
		char why[128];
		mtasts_status st = mtasts_policy_parse(body, MTASTS_POLICY_BODY_MAX, &p, why, sizeof(why));
		ck_assert_msg(st == MTASTS_ERR_SYNTAX || st == MTASTS_OK, "status %d: %s", st, why);
		mtasts_policy_destroy(&p);
	}
	bad_len(body, MTASTS_POLICY_BODY_MAX + 1, MTASTS_ERR_TOO_LARGE, "limit");
	free(body);
}
END_TEST

/* best-of-5 time of parsing body[0..n) in ms; checks the mx count */
static double time_parse(const char *body, size_t n, size_t lines)
{
	double best = 1e9;

	for (int round = 0; round < 5; round++) {
		struct timespec t0, t1;
		mtasts_policy *p;
		double ms;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		p = parse_ok(body, n);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (ms < best)
			best = ms;
		ck_assert_uint_eq(p->mx_count, lines);
		ck_assert_str_eq(p->mx[lines - 1], "a.b");
		mtasts_policy_destroy(&p);
	}
	return best;
}

/* A 64 KiB body: a line well inside the limit, and the same size of short mx lines */
START_TEST(large_within_limit_and_linear)
{
	size_t cap = MTASTS_POLICY_BODY_MAX;
	char *body = malloc(cap);
	size_t n, quarter_n = 0, lines = 0, quarter_lines = 0;
	mtasts_policy *p;
	double full, quarter;

	ck_assert_ptr_nonnull(body);
	n = (size_t)sprintf(body, "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.example\nx: ");
	memset(body + n, 'v', cap - n);
	p = parse_ok(body, cap);
	ck_assert_uint_eq(p->mx_count, 1);
	mtasts_policy_destroy(&p);

	n = (size_t)sprintf(body, "version: STSv1\nmode: enforce\nmax_age: 1\n");
	while (n + 8 <= cap) {
		memcpy(body + n, "mx: a.b\n", 8);
		n += 8;
		lines++;
		if (n <= cap / 4) {
			quarter_n = n;
			quarter_lines = lines;
		}
	}
	full = time_parse(body, n, lines);
	quarter = time_parse(body, quarter_n, quarter_lines);
	printf("policy parse: %zu bytes, %zu mx lines: %.3f ms; a quarter of it: %.3f ms (best of 5)\n",
	       n, lines, full, quarter);
	/* linear: four times the input costs about four times the time, quadratic about 16 */
	ck_assert_msg(full < 10.0 * quarter + 0.05, "not linear: %.3f ms vs %.3f ms", full, quarter);
	/* generous absolute bound (sanitizers, valgrind) */
	ck_assert_msg(full < 100.0, "64 KiB policy took %.3f ms", full);
	free(body);
}
END_TEST

START_TEST(clone_and_destroy)
{
	mtasts_policy *p = ok(LF_POLICY), *c = NULL;

	ck_assert_int_eq(mtasts_policy_clone(p, &c), MTASTS_OK);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_ne(c, p);
	ck_assert_ptr_ne(c->mx, p->mx);
	ck_assert_int_eq(c->mode, p->mode);
	ck_assert_uint_eq(c->max_age, p->max_age);
	ck_assert_uint_eq(c->mx_count, p->mx_count);
	for (size_t i = 0; i < p->mx_count; i++) {
		ck_assert_ptr_ne(c->mx[i], p->mx[i]);
		ck_assert_str_eq(c->mx[i], p->mx[i]);
	}
	mtasts_policy_destroy(&p);
	ck_assert(mtasts_policy_allows_mx(c, "mx9.example.net"));
	mtasts_policy_destroy(&c);
	ck_assert_ptr_null(c);
	mtasts_policy_destroy(&c);
	mtasts_policy_destroy(NULL);

	p = ok("version: STSv1\nmode: none\nmax_age: 3\n");
	ck_assert_int_eq(mtasts_policy_clone(p, &c), MTASTS_OK);
	ck_assert_uint_eq(c->mx_count, 0);
	ck_assert_int_eq(c->mode, MTASTS_MODE_NONE);
	ck_assert_uint_eq(c->max_age, 3);
	mtasts_policy_destroy(&c);
	mtasts_policy_destroy(&p);
	ck_assert_int_eq(mtasts_policy_clone(NULL, &c), MTASTS_ERR_INVALID_ARG);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(mode_names)
{
	mtasts_mode m = MTASTS_MODE_ENFORCE;

	ck_assert_str_eq(mtasts_mode_name(MTASTS_MODE_NONE), "none");
	ck_assert_str_eq(mtasts_mode_name(MTASTS_MODE_TESTING), "testing");
	ck_assert_str_eq(mtasts_mode_name(MTASTS_MODE_ENFORCE), "enforce");
	ck_assert_str_eq(mtasts_mode_name((mtasts_mode)42), "unknown");
	ck_assert_int_eq(mtasts_mode_from_name("none", &m), MTASTS_OK);
	ck_assert_int_eq(m, MTASTS_MODE_NONE);
	ck_assert_int_eq(mtasts_mode_from_name("testing", &m), MTASTS_OK);
	ck_assert_int_eq(m, MTASTS_MODE_TESTING);
	ck_assert_int_eq(mtasts_mode_from_name("enforce", &m), MTASTS_OK);
	ck_assert_int_eq(m, MTASTS_MODE_ENFORCE);
	ck_assert_int_eq(mtasts_mode_from_name("Enforce", &m), MTASTS_ERR_SYNTAX);
	ck_assert_int_eq(mtasts_mode_from_name("", &m), MTASTS_ERR_SYNTAX);
	ck_assert_int_eq(mtasts_mode_from_name(NULL, &m), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(m, MTASTS_MODE_ENFORCE);
}
END_TEST

START_TEST(why_buffer_handling)
{
	mtasts_policy *p = NULL;
	char small[12];
	const char *body = "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n";

	ck_assert_int_eq(mtasts_policy_parse(body, strlen(body), &p, NULL, 0), MTASTS_ERR_SYNTAX);
	ck_assert_ptr_null(p);
	memset(small, 'Z', sizeof(small));
	ck_assert_int_eq(mtasts_policy_parse(body, strlen(body), &p, small, sizeof(small)),
	                 MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(small, "line 2: mod");
	ck_assert_int_eq(mtasts_policy_parse(body, strlen(body), &p, small, 1), MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(small, "");
	ck_assert_int_eq(mtasts_policy_parse(body, strlen(body), NULL, small, sizeof(small)),
	                 MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_policy_parse(NULL, 5, &p, small, sizeof(small)), MTASTS_ERR_INVALID_ARG);
	/* a hostile value is quoted bounded and printable */
	{
		char why[256];
		char body2[400];
		snprintf(body2, sizeof(body2), "version: STSv1\nmode: %s\x1b[31m\nmax_age: 1\n",
		         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		ck_assert_int_eq(mtasts_policy_parse(body2, strlen(body2), &p, why, sizeof(why)),
		                 MTASTS_ERR_SYNTAX);
		ck_assert_ptr_null(strchr(why, '\x1b'));
		ck_assert_ptr_nonnull(strstr(why, "...'"));
		ck_assert_uint_lt(strlen(why), 100);
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, part_d_valid);
	tcase_add_test(tc, part_d_invalid);
	tcase_add_test(tc, c11_mx_required);
	tcase_add_test(tc, c12_mx_values);
	tcase_add_test(tc, mx_stored_lower_case_every_line_counts);
	tcase_add_test(tc, c13_max_age);
	tcase_add_test(tc, c14_first_wins);
	tcase_add_test(tc, c15_c16_allows_mx);
	tcase_add_test(tc, tolerances);
	tcase_add_test(tc, empty_and_blank_bodies);
	tcase_add_test(tc, nul_bytes);
	tcase_add_test(tc, invalid_utf8);
	tcase_add_test(tc, label_and_name_lengths);
	tcase_add_test(tc, too_large);
	tcase_add_test(tc, large_within_limit_and_linear);
	tcase_add_test(tc, clone_and_destroy);
	tcase_add_test(tc, mode_names);
	tcase_add_test(tc, why_buffer_handling);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(make_suite)
