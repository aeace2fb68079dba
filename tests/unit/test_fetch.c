/*
 * test_fetch.c - unit tests of core/fetch.c that need no server: the text/plain media type check
 * (RFC 8461 §3.2, checklist STS-038, Part C 9) and argument handling. Everything that talks
 * HTTPS is in tests/integration/test-fetch.sh.
 */
#include <string.h>
#include "unit.h"
#include "mtasts/fetch.h"

START_TEST(media_type_accepts)
{
	static const char *const ok[] = {
		"text/plain",
		"TEXT/PLAIN",
		"Text/Plain",
		"text/plain; charset=utf-8",
		"text/plain;charset=UTF-8",
		"text/plain ; charset=us-ascii",
		"text/plain\t;\tcharset=utf-8",
		"  text/plain  ",
		"text/plain; format=flowed; charset=\"utf-8\"",
		"text/plain;",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(mtasts_media_type_is_text_plain(ok[i]) == 1, "rejected: \"%s\"", ok[i]);
}
END_TEST

START_TEST(media_type_rejects)
{
	static const char *const bad[] = {
		"",
		"text/html",
		"text/html; charset=utf-8",
		"text/plainx",
		"text/plain-extra",
		"textx/plain",
		"text/ plain",
		"text /plain",
		"text",
		"text/",
		"/plain",
		"plain/text",
		"application/octet-stream",
		"text/plain x",
		"text/plain,text/html",
		"xtext/plain",
		"text\\/plain",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mtasts_media_type_is_text_plain(bad[i]) == 0, "accepted: \"%s\"", bad[i]);
	ck_assert_int_eq(mtasts_media_type_is_text_plain(NULL), 0);
}
END_TEST

START_TEST(global_init_idempotent)
{
	ck_assert_int_eq(mtasts_fetch_global_init(), MTASTS_OK);
	ck_assert_int_eq(mtasts_fetch_global_init(), MTASTS_OK);
}
END_TEST

START_TEST(invalid_domains_rejected_before_any_network)
{
	static const char *const bad[] = {
		"", ".", "example..test", ".example.test", "exa mple.test", "example.test/x",
		"example.test:8443", "user@example.test", "example.test?q", "exa\nmple.test",
		"bücher.example", "a.-b\x01.test",
	};
	mtasts_fetch_options opt = { .timeout_sec = 1 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mtasts_fetch_result res;
		memset(&res, 0x5a, sizeof(res));
		ck_assert_msg(mtasts_fetch_policy(bad[i], &opt, &res) == MTASTS_ERR_INVALID_ARG,
		              "accepted \"%s\"", bad[i]);
		ck_assert_ptr_null(res.body);
		ck_assert_int_eq(res.len, 0);
		ck_assert_int_eq(res.http_status, 0);
		ck_assert_int_eq(res.result, MTASTS_RESULT_STS_POLICY_FETCH_ERROR);
		ck_assert_str_eq(res.reason, "invalid policy domain");
	}
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	mtasts_fetch_result res;
	ck_assert_int_eq(mtasts_fetch_policy(longname, &opt, &res), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_fetch_policy(NULL, &opt, &res), MTASTS_ERR_INVALID_ARG);
	ck_assert_int_eq(mtasts_fetch_policy("example.test", &opt, NULL), MTASTS_ERR_INVALID_ARG);
}
END_TEST

START_TEST(invalid_resolve_address_rejected)
{
	static const char *const bad[] = { "1.2.3.4, 5.6.7.8", "[::1]", "1.2.3.4\n", "a b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mtasts_fetch_options opt = { .timeout_sec = 1, .resolve_addr = bad[i] };
		mtasts_fetch_result res;
		ck_assert_msg(mtasts_fetch_policy("example.test", &opt, &res) == MTASTS_ERR_INVALID_ARG,
		              "accepted resolve address \"%s\"", bad[i]);
		ck_assert_ptr_null(res.body);
		ck_assert_str_eq(res.reason, "invalid resolve address");
	}
}
END_TEST

START_TEST(result_clear)
{
	mtasts_fetch_result res = { 0 };
	res.body = strdup("version: STSv1\n");
	res.len = 15;
	res.http_status = 200;
	strcpy(res.reason, "x");
	mtasts_fetch_result_clear(&res);
	ck_assert_ptr_null(res.body);
	ck_assert_int_eq(res.len, 0);
	ck_assert_int_eq(res.http_status, 0);
	ck_assert_str_eq(res.reason, "");
	mtasts_fetch_result_clear(&res);   /* twice is harmless */
	mtasts_fetch_result_clear(NULL);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, media_type_accepts);
	tcase_add_test(tc, media_type_rejects);
	tcase_add_test(tc, global_init_idempotent);
	tcase_add_test(tc, invalid_domains_rejected_before_any_network);
	tcase_add_test(tc, invalid_resolve_address_rejected);
	tcase_add_test(tc, result_clear);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(make_suite)
