/*
 * test_config.c - unit tests of the settings reader: defaults, file syntax, errors that name the
 * file and line, environment overrides, and the status/result name tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtasts/config.h"
#include "mtasts/status.h"
#include "unit.h"

static char path[64];

static void write_config(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/mtasts-test-config-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void clear_env(void)
{
	unsetenv("MTASTS_CONFIG");
	unsetenv("MTASTS_CACHE_DIR");
	unsetenv("MTASTS_FETCH_TIMEOUT");
	unsetenv("MTASTS_LOG");
}

START_TEST(defaults_without_file)
{
	mtasts_config *config = NULL;
	char err[MTASTS_CONFIG_ERR_MAX];

	clear_env();
	setenv("MTASTS_CONFIG", "", 1);   /* empty: fall back to the default file, which may be absent */
	ck_assert_int_eq(mtasts_config_load(NULL, &config, err, sizeof(err)), MTASTS_OK);
	if (access(MTASTS_DEFAULT_CONFIG, F_OK) == 0) {
		/* an installed file is read instead; its values are its own */
		ck_assert_str_eq(config->path, MTASTS_DEFAULT_CONFIG);
		mtasts_config_destroy(&config);
		return;
	}
	ck_assert_ptr_null(config->path);
	ck_assert_str_eq(config->cache_dir, MTASTS_DEFAULT_CACHE_DIR);
	ck_assert_str_eq(config->programs, "exim exim4");
	ck_assert_str_eq(config->smtp_ports, "25");
	ck_assert_int_eq(config->fetch_timeout, 60);
	ck_assert_ptr_null(config->ca_file);
	ck_assert_ptr_null(config->report_dir);
	mtasts_config_destroy(&config);
	ck_assert_ptr_null(config);
}
END_TEST

START_TEST(file_values_comments_and_spacing)
{
	mtasts_config *config = NULL;
	char err[MTASTS_CONFIG_ERR_MAX];

	clear_env();
	write_config("# a comment\n\n  cache_dir = /tmp/c  \r\nca_file=/etc/ca.pem\n"
	             "fetch_timeout =\t7\nprograms = exim4 smtpclient\nreport_dir =\n");
	ck_assert_int_eq(mtasts_config_load(path, &config, err, sizeof(err)), MTASTS_OK);
	ck_assert_str_eq(config->path, path);
	ck_assert_str_eq(config->cache_dir, "/tmp/c");
	ck_assert_str_eq(config->ca_file, "/etc/ca.pem");
	ck_assert_int_eq(config->fetch_timeout, 7);
	ck_assert_str_eq(config->programs, "exim4 smtpclient");
	ck_assert_ptr_null(config->report_dir);
	mtasts_config_destroy(&config);
	unlink(path);
}
END_TEST

START_TEST(errors_name_file_and_line)
{
	static const struct { const char *text; const char *needle; } cases[] = {
		{ "cache_dir = /x\nbogus = 1\n", ":2: unknown key 'bogus'" },
		{ "fetch_timeout = ten\n", ":1: fetch_timeout: expected a number" },
		{ "\n\nfetch_timeout = 0\n", ":3: fetch_timeout: number of seconds out of range" },
		{ "fetch_timeout = 99999999999999999999\n", "out of range" },
		{ "just words\n", ":1: expected 'key = value'" },
		{ "cache_dir = relative\n", ":1: cache_dir: must be an absolute path" },
		/* a comment after a value would otherwise become part of it */
		{ "cache_dir = /var/cache/mtasts # the cache\n", ":1: cache_dir: '#' after the value" },
		{ "fetch_timeout = 30 # seconds\n", "fetch_timeout: expected a number of seconds (digits" },
		{ "fetch_timeout = 30s\n", "fetch_timeout: expected a number of seconds (digits" },
		{ "log = a\033[31mb\n", ":1: log: control character" },
		{ "log = sylog\n", ":1: log: must be syslog, stderr, none or an absolute file path" },
		{ "log = relative/file\n", "log: must be syslog" },
		{ "log =\n", ":1: log: needs a value" },
		{ "cache_dir =\n", ":1: cache_dir: needs a value" },
		{ "fetcher = mtasts\n", ":1: fetcher: must be an absolute path" },
		{ "programs = \n", "programs: needs a value" },
		{ "ca_file = ca.pem\n", "ca_file: must be an absolute path" },
		{ "report_dir = reports\n", "report_dir: must be an absolute path" },
		{ "smtp_ports = 25,2x5\n", ":1: smtp_ports: expected port numbers" },
		{ "smtp_ports = 0\n", "smtp_ports: expected port numbers" },
		{ "smtp_ports = 65536\n", "smtp_ports: expected port numbers" },
		{ "smtp_ports = ,\n", "smtp_ports: expected port numbers" },
		{ "dns_servers = 127.0.0.1;127.0.0.2\n", ":1: dns_servers: expected IP" },
		{ "dns_servers = localhost\n", "dns_servers: expected IP" },
		{ "dns_servers = 127.0.0.1:99999\n", "dns_servers: expected IP" },
		{ "dns_servers = 127.0.0.1,\n", "dns_servers: expected IP" },
		{ "dns_servers = [::1\n", "dns_servers: expected IP" },
		{ "\ncache_dir = /a\n# again\ncache_dir = /b\n", ":4: cache_dir is already set on line 2" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mtasts_config *config = NULL;
		char err[MTASTS_CONFIG_ERR_MAX] = "";

		clear_env();
		write_config(cases[i].text);
		ck_assert_int_eq(mtasts_config_load(path, &config, err, sizeof(err)), MTASTS_ERR_CONFIG);
		ck_assert_ptr_null(config);
		ck_assert_msg(strstr(err, cases[i].needle) != NULL, "case %zu: '%s'", i, err);
		ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "error names the file: %s", err);
		unlink(path);
	}
}
END_TEST

START_TEST(valid_values_accepted)
{
	mtasts_config *config = NULL;
	char err[MTASTS_CONFIG_ERR_MAX];

	clear_env();
	write_config("dns_servers = 127.0.0.1,127.0.0.2:5353,::1,[fd00::1]:53\n"
	             "smtp_ports = 25, 587\t2525\nlog = /var/log/mtasts.log\n"
	             "proxy = http://proxy.example:3128/#x\nprograms = exim4\tsendmail\n");
	ck_assert_msg(mtasts_config_load(path, &config, err, sizeof(err)) == MTASTS_OK, "%s", err);
	ck_assert_str_eq(config->dns_servers, "127.0.0.1,127.0.0.2:5353,::1,[fd00::1]:53");
	ck_assert_str_eq(config->smtp_ports, "25, 587\t2525");
	ck_assert_str_eq(config->log, "/var/log/mtasts.log");
	ck_assert_str_eq(config->proxy, "http://proxy.example:3128/#x");
	mtasts_config_destroy(&config);
	unlink(path);

	/* the environment gets the same checks as the file */
	write_config("log = stderr\n");
	setenv("MTASTS_CONFIG", path, 1);
	setenv("MTASTS_LOG", "sylog", 1);
	ck_assert_int_eq(mtasts_config_load(NULL, &config, err, sizeof(err)), MTASTS_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(err, "MTASTS_LOG: must be syslog"));
	clear_env();
	unlink(path);
}
END_TEST

START_TEST(missing_explicit_file_is_an_error)
{
	mtasts_config *config = NULL;
	char err[MTASTS_CONFIG_ERR_MAX];

	clear_env();
	ck_assert_int_eq(mtasts_config_load("/nonexistent/mtasts.conf", &config, err, sizeof(err)),
	                 MTASTS_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/mtasts.conf"));
}
END_TEST

START_TEST(environment_overrides_file)
{
	mtasts_config *config = NULL;
	char err[MTASTS_CONFIG_ERR_MAX];

	clear_env();
	write_config("cache_dir = /from/file\nlog = syslog\n");
	setenv("MTASTS_CONFIG", path, 1);
	setenv("MTASTS_CACHE_DIR", "/from/env", 1);
	setenv("MTASTS_LOG", "stderr", 1);
	ck_assert_int_eq(mtasts_config_load(NULL, &config, err, sizeof(err)), MTASTS_OK);
	ck_assert_str_eq(config->path, path);
	ck_assert_str_eq(config->cache_dir, "/from/env");
	ck_assert_str_eq(config->log, "stderr");
	mtasts_config_destroy(&config);

	setenv("MTASTS_FETCH_TIMEOUT", "-3", 1);
	ck_assert_int_eq(mtasts_config_load(NULL, &config, err, sizeof(err)), MTASTS_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(err, "MTASTS_FETCH_TIMEOUT"));
	clear_env();
	unlink(path);
}
END_TEST

START_TEST(nul_byte_in_file)
{
	mtasts_config *config = NULL;
	char err[MTASTS_CONFIG_ERR_MAX];

	clear_env();
	snprintf(path, sizeof(path), "/tmp/mtasts-test-config-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_eq(write(fd, "log = a\0b\n", 10), 10);
	close(fd);
	ck_assert_int_eq(mtasts_config_load(path, &config, err, sizeof(err)), MTASTS_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	unlink(path);
}
END_TEST

START_TEST(status_and_result_names)
{
	mtasts_result result;

	for (int i = 0; i < MTASTS_STATUS_COUNT_; i++)
		ck_assert_ptr_nonnull(mtasts_strerror((mtasts_status)i));
	ck_assert_str_eq(mtasts_strerror((mtasts_status)999), "unknown status");
	for (int i = 0; i < MTASTS_RESULT_COUNT_; i++) {
		ck_assert_int_eq(mtasts_result_from_name(mtasts_result_name((mtasts_result)i), &result), MTASTS_OK);
		ck_assert_int_eq(result, i);
	}
	ck_assert_str_eq(mtasts_result_name(MTASTS_RESULT_STS_WEBPKI_INVALID), "sts-webpki-invalid");
	ck_assert_int_eq(mtasts_result_from_name("Certificate-Expired", &result), MTASTS_ERR_SYNTAX);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, defaults_without_file);
	tcase_add_test(tc, file_values_comments_and_spacing);
	tcase_add_test(tc, errors_name_file_and_line);
	tcase_add_test(tc, valid_values_accepted);
	tcase_add_test(tc, missing_explicit_file_is_an_error);
	tcase_add_test(tc, environment_overrides_file);
	tcase_add_test(tc, nul_byte_in_file);
	tcase_add_test(tc, status_and_result_names);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN(config_suite)
