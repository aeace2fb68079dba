/*
 * probe.c - a small driver of core/fetch.c and core/dns.c for the integration tests
 * (tests/integration/test-fetch.sh): one operation per run, results on stdout in a form a shell
 * test can grep.
 *
 *   probe fetch DOMAIN [--ca-file F] [--timeout SEC] [--resolve ADDR] [--proxy URL] [--body FILE]
 *       -> "result=<rfc8460 name> status=<http status> len=<body length> reason=<text>"
 *          (the body goes to FILE when given); exit 0 on success, 1 on a fetch failure
 *   probe txt NAME [--servers S] [--timeout-ms MS]
 *   probe addrs NAME [--servers S] [--timeout-ms MS]
 *       -> one record per line, or "status=NOT_FOUND" / "status=DNS_TEMP" / "status=<other>";
 *          exit 0 when records were found, 1 otherwise
 *   probe media CONTENT-TYPE  -> "text/plain" or "other"
 * Exit 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtasts/dns.h"
#include "mtasts/fetch.h"

static int usage(void)
{
	fprintf(stderr, "usage: probe fetch DOMAIN [--ca-file F] [--timeout SEC] [--resolve ADDR] "
	                "[--proxy URL] [--body FILE]\n"
	                "       probe txt|addrs NAME [--servers S] [--timeout-ms MS]\n"
	                "       probe media CONTENT-TYPE\n");
	return 2;
}

static const char *status_word(mtasts_status st)
{
	switch (st) {
	case MTASTS_ERR_NOT_FOUND: return "NOT_FOUND";
	case MTASTS_ERR_DNS_TEMP: return "DNS_TEMP";
	case MTASTS_ERR_INVALID_ARG: return "INVALID_ARG";
	case MTASTS_ERR_NOMEM: return "NOMEM";
	default: return mtasts_strerror(st);
	}
}

static int do_fetch(int argc, char **argv)
{
	mtasts_fetch_options opt = { 0 };
	mtasts_fetch_result res = { 0 };
	const char *body_file = NULL;

	for (int i = 3; i < argc; i++) {
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--ca-file"))
			opt.ca_file = argv[++i];
		else if (!strcmp(argv[i], "--timeout"))
			opt.timeout_sec = atol(argv[++i]);
		else if (!strcmp(argv[i], "--resolve"))
			opt.resolve_addr = argv[++i];
		else if (!strcmp(argv[i], "--proxy"))
			opt.proxy = argv[++i];
		else if (!strcmp(argv[i], "--body"))
			body_file = argv[++i];
		else
			return usage();
	}
	mtasts_status st = mtasts_fetch_policy(argv[2], &opt, &res);
	printf("result=%s status=%ld len=%zu reason=%s\n", mtasts_result_name(res.result),
	       res.http_status, res.len, res.reason);
	if (st == MTASTS_OK && body_file) {
		FILE *f = fopen(body_file, "we");
		if (!f || fwrite(res.body, 1, res.len, f) != res.len || fclose(f) != 0) {
			perror(body_file);
			mtasts_fetch_result_clear(&res);
			return 1;
		}
	}
	if (st != MTASTS_OK && st != MTASTS_ERR_FETCH)
		fprintf(stderr, "probe: %s\n", mtasts_strerror(st));
	mtasts_fetch_result_clear(&res);
	return st == MTASTS_OK ? 0 : 1;
}

static int do_dns(int argc, char **argv, int txt)
{
	const char *servers = NULL;
	long timeout_ms = 0;
	mtasts_dns *dns = NULL;
	mtasts_strv recs = { 0 };

	for (int i = 3; i < argc; i++) {
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--servers"))
			servers = argv[++i];
		else if (!strcmp(argv[i], "--timeout-ms"))
			timeout_ms = atol(argv[++i]);
		else
			return usage();
	}
	mtasts_status st = mtasts_dns_new(servers, timeout_ms, &dns);
	if (st) {
		printf("status=%s\n", status_word(st));
		return 1;
	}
	st = txt ? mtasts_dns_txt(dns, argv[2], &recs) : mtasts_dns_addrs(dns, argv[2], &recs);
	if (st)
		printf("status=%s\n", status_word(st));
	for (size_t i = 0; i < recs.n; i++) {
		fwrite(recs.v[i], 1, recs.len[i], stdout);
		putchar('\n');
	}
	mtasts_strv_clear(&recs);
	mtasts_dns_destroy(&dns);
	if (dns)
		fprintf(stderr, "probe: destroy did not clear the handle\n");
	return st == MTASTS_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	if (!strcmp(argv[1], "fetch"))
		return do_fetch(argc, argv);
	if (!strcmp(argv[1], "txt"))
		return do_dns(argc, argv, 1);
	if (!strcmp(argv[1], "addrs"))
		return do_dns(argc, argv, 0);
	if (!strcmp(argv[1], "media") && argc == 3) {
		puts(mtasts_media_type_is_text_plain(argv[2]) ? "text/plain" : "other");
		return 0;
	}
	return usage();
}
