/*
 * test_txt.c - unit tests of txt.c: the RFC 8461 §3.1 record grammar and the RRset rule
 * (checklist Part D TXT vectors, Part C items 2-5, hostile input).
 */
#include <stdlib.h>
#include <string.h>
#include "mtasts/txt.h"
#include "unit.h"

static mtasts_status parse(const char *record, char id[MTASTS_ID_MAX], const char **why)
{
	return mtasts_txt_parse(record, strlen(record), id, why);
}

static void expect_valid(const char *record, const char *want_id)
{
	char id[MTASTS_ID_MAX] = "junk";
	const char *why = "unset";

	ck_assert_msg(parse(record, id, &why) == MTASTS_OK, "'%s' rejected: %s", record,
	              why ? why : "(null)");
	ck_assert_str_eq(id, want_id);
	ck_assert_ptr_null(why);
}

static void expect_invalid(const char *record, const char *why_part)
{
	char id[MTASTS_ID_MAX] = "junk";
	const char *why = NULL;

	ck_assert_msg(parse(record, id, &why) == MTASTS_ERR_SYNTAX, "'%s' accepted", record);
	ck_assert_str_eq(id, "");
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, why_part) != NULL, "'%s': reason '%s' lacks '%s'", record, why,
	              why_part);
}

START_TEST(part_d_valid)
{
	expect_valid("v=STSv1; id=20160831085700Z;", "20160831085700Z");
	expect_valid("v=STSv1;id=abc", "abc");
	expect_valid("v=STSv1; id=A1; foo.bar=baz", "A1");
}
END_TEST

/* Part D: two character-strings are joined with nothing before parsing (Part C item 1) */
START_TEST(part_d_joined_strings)
{
	const char *parts[] = { "v=STSv1; id=", "abc" };
	char joined[64] = "";
	char id[MTASTS_ID_MAX];

	for (size_t i = 0; i < 2; i++)
		strcat(joined, parts[i]);
	ck_assert_int_eq(parse(joined, id, NULL), MTASTS_OK);
	ck_assert_str_eq(id, "abc");
}
END_TEST

START_TEST(part_d_invalid)
{
	expect_invalid("v=STSv1", "no field");
	expect_invalid("v=STSv1; id=2016-08-31", "only letters and digits");
	expect_invalid("v=STSv1; id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "longer than 32");
	expect_invalid("V=STSv1; id=1", "does not begin with v=STSv1");
	expect_invalid("id=1; v=STSv1", "does not begin with v=STSv1");
	expect_invalid("v=STSv1; id=1; x=a=b", "'=' inside an extension value");
}
END_TEST

/* Part C item 2: case and spaces of the version token */
START_TEST(c2_version_token)
{
	expect_invalid("v=stsv1; id=1", "does not begin");
	expect_invalid("v = STSv1; id=1", "does not begin");
	expect_invalid("v =STSv1; id=1", "does not begin");
	expect_invalid("v= STSv1; id=1", "does not begin");
	expect_invalid(" v=STSv1; id=1", "does not begin");
	expect_invalid("v=STSv10; id=1", "not exactly v=STSv1");
	expect_invalid("v=STSv1x; id=1", "not exactly v=STSv1");
	expect_invalid("v=STSv1, id=1", "not exactly v=STSv1");
}
END_TEST

/* Part C item 3: ISO timestamps and long ids */
START_TEST(c3_id_grammar)
{
	expect_invalid("v=STSv1; id=2016-08-31T08:57:00Z", "only letters and digits");
	expect_invalid("v=STSv1; id=20160831.1", "only letters and digits");
	expect_invalid("v=STSv1; id=abc_def", "only letters and digits");
	expect_invalid("v=STSv1; id=", "empty id");
	expect_invalid("v=STSv1; id= abc", "whitespace around '='");
	expect_invalid("v=STSv1; id =abc", "whitespace around '='");
	expect_invalid("v=STSv1; id=ab c", "separated by ';'");
	expect_valid("v=STSv1; id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	expect_valid("v=STSv1; id=1", "1");
	/* "ID" is an extension, not the id: the record then has no id */
	expect_invalid("v=STSv1; ID=abc", "no id field");
	expect_invalid("v=STSv1; foo=bar", "no id field");
	/* non-ASCII in the id */
	expect_invalid("v=STSv1; id=ab\xc3\xa9", "only letters and digits");
}
END_TEST

/* Part C item 5 / erratum 6285: whitespace before ';' is allowed by the ABNF */
START_TEST(c5_space_before_semicolon)
{
	expect_valid("v=STSv1 ; id=1", "1");
	expect_valid("v=STSv1\t;\tid=1\t;\t", "1");
	expect_valid("v=STSv1;id=1 ;", "1");
	expect_valid("v=STSv1; id=1 ", "1");
	expect_valid("v=STSv1;  id=1;  ", "1");
}
END_TEST

START_TEST(delimiters_and_extensions)
{
	expect_valid("v=STSv1; id=1; rua=mailto:x@example.com", "1");
	expect_valid("v=STSv1; a.b-c_d=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~; id=9", "9");
	expect_valid("v=STSv1; Z=1; id=9; 0=x", "9");
	expect_valid("v=STSv1; aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=x; id=9", "9");
	expect_invalid("v=STSv1; aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=x; id=9", "longer than 32");
	expect_invalid("v=STSv1;", "no field");
	expect_invalid("v=STSv1 ", "no field");
	expect_invalid("v=STSv1;;id=1", "empty field");
	expect_invalid("v=STSv1; id=1;;", "empty field");
	expect_invalid("v=STSv1 id=1", "separated by ';'");
	expect_invalid("v=STSv1; _x=1; id=1", "must start with a letter or digit");
	expect_invalid("v=STSv1; x; id=1", "other than '='");
	expect_invalid("v=STSv1; x=; id=1", "empty extension value");
	expect_invalid("v=STSv1; id=1; x=", "empty extension value");
	expect_invalid("v=STSv1; x==b; id=1", "'=' inside an extension value");
	expect_invalid("v=STSv1; x= b; id=1", "whitespace around '='");
	expect_invalid("v=STSv1; x=\x7f; id=1", "control or non-ASCII");
	expect_invalid("v=STSv1; x=a\x01; id=1", "control or non-ASCII");
	expect_invalid("v=STSv1; x=caf\xc3\xa9; id=1", "control or non-ASCII");
	expect_invalid("v=STSv1; id=1\r\n", "only letters and digits");
	expect_invalid("", "empty record");
}
END_TEST

START_TEST(duplicate_id_first_wins)
{
	expect_valid("v=STSv1; id=first; id=second", "first");
	expect_invalid("v=STSv1; id=first; id=bad-one", "only letters and digits");
}
END_TEST

START_TEST(nul_bytes)
{
	static const char rec[] = "v=STSv1; id=ab\0cd";
	char id[MTASTS_ID_MAX];
	const char *why = NULL;

	ck_assert_int_eq(mtasts_txt_parse(rec, sizeof(rec) - 1, id, &why), MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(why, "NUL byte in record");
	ck_assert_int_eq(mtasts_txt_parse(rec, 14, id, &why), MTASTS_OK);
	ck_assert_str_eq(id, "ab");
}
END_TEST

START_TEST(huge_record)
{
	size_t len = 1024 * 1024;
	char *rec = malloc(len + 1);
	char id[MTASTS_ID_MAX];
	const char *why = NULL;

	ck_assert_ptr_nonnull(rec);
	memcpy(rec, "v=STSv1; id=", 12);
	memset(rec + 12, 'a', len - 12);
	rec[len] = '\0';
	ck_assert_int_eq(mtasts_txt_parse(rec, len, id, &why), MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(why, "id longer than 32 characters");
	/* a megabyte of extension fields is still linear and valid */
	size_t n = 7;
	while (n + 9 < len) {
		memcpy(rec + n, ";x=y", 4);
		n += 4;
	}
	memcpy(rec + n, ";id=Z", 5);
	n += 5;
	ck_assert_uint_gt(n, len - 10);
	ck_assert_int_eq(mtasts_txt_parse(rec, n, id, &why), MTASTS_OK);
	ck_assert_str_eq(id, "Z");
	free(rec);
}
END_TEST

static mtasts_status select_set(const char *const *recs, size_t n, char id[MTASTS_ID_MAX],
                                const char **why)
{
	size_t lens[8];

	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(recs[i]);
	return mtasts_txt_select(recs, lens, n, id, why);
}

/* Part D multiple records and Part C item 4 */
START_TEST(rrset_rule)
{
	char id[MTASTS_ID_MAX];
	const char *why = NULL;
	const char *one_spf[] = { "v=STSv1; id=1", "v=spf1 -all" };
	const char *spf_one[] = { "v=spf1 -all", "v=STSv1; id=1" };
	const char *two[] = { "v=STSv1; id=1", "v=STSv1; id=2" };
	const char *two_one_bad[] = { "v=STSv1; id=1", "v=STSv1" };
	const char *none[] = { "v=spf1 -all", "google-site-verification=x" };
	const char *case_dropped[] = { "V=STSv1; id=1", "v=stsv1; id=2", "v=STSv10; id=3" };
	const char *ws_kept[] = { "v=STSv1 ; id=7", "v=STSv2; id=8" };
	const char *ws_two[] = { "v=STSv1 ; id=7", "v=STSv1;id=8" };
	const char *bad_one[] = { "v=STSv1; id=2016-08-31", "v=spf1" };

	ck_assert_int_eq(select_set(one_spf, 2, id, &why), MTASTS_OK);
	ck_assert_str_eq(id, "1");
	ck_assert_int_eq(select_set(spf_one, 2, id, &why), MTASTS_OK);
	ck_assert_str_eq(id, "1");
	ck_assert_int_eq(select_set(two, 2, id, &why), MTASTS_ERR_MULTIPLE);
	ck_assert_str_eq(id, "");
	ck_assert_ptr_nonnull(strstr(why, "more than one"));
	ck_assert_int_eq(select_set(two_one_bad, 2, id, &why), MTASTS_ERR_MULTIPLE);
	ck_assert_int_eq(select_set(none, 2, id, &why), MTASTS_ERR_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(why, "no TXT record"));
	ck_assert_int_eq(select_set(none, 0, id, &why), MTASTS_ERR_NOT_FOUND);
	ck_assert_int_eq(select_set(case_dropped, 3, id, &why), MTASTS_ERR_NOT_FOUND);
	ck_assert_int_eq(select_set(ws_kept, 2, id, &why), MTASTS_OK);
	ck_assert_str_eq(id, "7");
	ck_assert_int_eq(select_set(ws_two, 2, id, &why), MTASTS_ERR_MULTIPLE);
	ck_assert_int_eq(select_set(bad_one, 2, id, &why), MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(id, "");
	ck_assert_ptr_nonnull(strstr(why, "only letters and digits"));
	/* lens NULL: NUL-terminated records */
	ck_assert_int_eq(mtasts_txt_select(one_spf, NULL, 2, id, &why), MTASTS_OK);
	ck_assert_str_eq(id, "1");
}
END_TEST

START_TEST(rrset_nul_in_record)
{
	static const char rec[] = "v=STSv1; id=1\0; id=2";
	const char *recs[] = { rec };
	size_t lens[] = { sizeof(rec) - 1 };
	char id[MTASTS_ID_MAX];
	const char *why = NULL;

	ck_assert_int_eq(mtasts_txt_select(recs, lens, 1, id, &why), MTASTS_ERR_SYNTAX);
	ck_assert_str_eq(why, "NUL byte in record");
}
END_TEST

START_TEST(bad_arguments)
{
	char id[MTASTS_ID_MAX];
	const char *recs[] = { NULL };

	ck_assert_int_eq(mtasts_txt_parse(NULL, 3, id, NULL), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_txt_parse("v=STSv1; id=1", 13, NULL, NULL), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_txt_select(NULL, NULL, 1, id, NULL), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_txt_select(recs, NULL, 1, id, NULL), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_txt_parse(NULL, 0, id, NULL), MTASTS_ERR_SYNTAX);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("txt");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, part_d_valid);
	tcase_add_test(tc, part_d_joined_strings);
	tcase_add_test(tc, part_d_invalid);
	tcase_add_test(tc, c2_version_token);
	tcase_add_test(tc, c3_id_grammar);
	tcase_add_test(tc, c5_space_before_semicolon);
	tcase_add_test(tc, delimiters_and_extensions);
	tcase_add_test(tc, duplicate_id_first_wins);
	tcase_add_test(tc, nul_bytes);
	tcase_add_test(tc, huge_record);
	tcase_add_test(tc, rrset_rule);
	tcase_add_test(tc, rrset_nul_in_record);
	tcase_add_test(tc, bad_arguments);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(make_suite)
