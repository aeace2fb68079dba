/*
 * mtasts.c - the `mtasts` command: RFC 8461 discovery, the policy cache and the checks of
 * libmtasts for operators, for scripts, and for the shim (which runs `mtasts fetch DOMAIN`).
 *
 * The interface (subcommands, output, exit codes) is fixed: outside tests depend on it.
 * Exit codes: 0 success, 1 a check failed, 3 no policy, 4 a policy record exists but no policy
 * could be had, 64 usage, 70 internal error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "mtasts/cache.h"
#include "mtasts/config.h"
#include "mtasts/discover.h"
#include "mtasts/domain.h"
#include "mtasts/fetch.h"
#include "mtasts/idna.h"
#include "mtasts/log.h"
#include "mtasts/policy.h"
#include "mtasts/txt.h"
#include "mtasts/verify.h"

enum {
	EXIT_OK = 0,
	EXIT_CHECK_FAILED = 1,
	EXIT_NO_POLICY = 3,
	EXIT_NO_POLICY_FETCHED = 4,
	EXIT_USAGE = 64,
	EXIT_INTERNAL = 70,
};

typedef struct cli {
	const char *config_path;   /* --config, or NULL */
	mtasts_config *config;     /* loaded on demand */
} cli;

typedef struct command {
	const char *name;
	int (*run)(cli *c, int argc, char **argv);
	const char *usage;
	const char *help;
} command;

static const command commands[];

static int usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- helpers ---------------------------------------------------------------------------- */

static const command *find_command(const char *name);

static int usage_error(const char *name, const char *fmt, ...)
{
	const command *cmd = find_command(name);
	va_list ap;

	fprintf(stderr, "mtasts: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: mtasts %s\n", cmd ? cmd->usage : "[--config FILE] COMMAND ...");
	return EXIT_USAGE;
}

/* true when argv asks for help; prints it */
static bool wants_help(const char *name, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			const command *cmd = find_command(name);
			printf("usage: mtasts %s\n\n%s\n", cmd->usage, cmd->help);
			return true;
		}
	}
	return false;
}

static int load_config(cli *c)
{
	char err[MTASTS_CONFIG_ERR_MAX];

	if (c->config)
		return EXIT_OK;
	mtasts_status status = mtasts_config_load(c->config_path, &c->config, err, sizeof(err));
	if (status) {
		fprintf(stderr, "mtasts: %s\n", err[0] ? err : mtasts_strerror(status));
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/*
 * Run as root on a cache directory that belongs to another user (README: the MTA's user, so that
 * the shim's fetcher can write): become that user first. Otherwise root would create buckets,
 * entries and temporary files the fetcher can never replace, and every later fetch of a domain
 * in such a bucket would fail to be kept.
 */
static int become_cache_owner(const char *dir)
{
	struct stat st;

	if (geteuid() != 0 || stat(dir, &st) != 0 || st.st_uid == 0)
		return EXIT_OK;
	if (setgroups(0, NULL) != 0 || setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) {
		fprintf(stderr, "mtasts: cannot switch to the owner (uid %ld) of the cache %s: %s\n",
		        (long)st.st_uid, dir, strerror(errno));
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

static int open_cache(cli *c, bool create, mtasts_cache **cache)
{
	int rc = load_config(c);
	if (rc)
		return rc;
	rc = become_cache_owner(c->config->cache_dir);
	if (rc)
		return rc;
	mtasts_status status = mtasts_cache_open(c->config->cache_dir, create, cache);
	if (status) {
		fprintf(stderr, "mtasts: cache %s: %s (%s)\n", c->config->cache_dir,
		        mtasts_strerror(status), strerror(errno));
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

/* Normalise a domain argument to its A-label form; address literals have no policy (§3.4). */
static int domain_argument(const char *arg, char out[MTASTS_DOMAIN_MAX])
{
	if (arg[0] == '[') {
		fprintf(stderr, "mtasts: %s: an address literal has no MTA-STS policy\n", arg);
		return EXIT_NO_POLICY;
	}
	mtasts_status status = mtasts_domain_to_ascii(arg, out);
	if (status) {
		fprintf(stderr, "mtasts: %s: not a valid domain name (%s)\n", arg, mtasts_strerror(status));
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/*
 * Reasons quote the network (a Content-Type, a TLS error, a TXT record): print them with every
 * control character replaced, so that one message stays one line on the operator's terminal.
 */
static const char *printable(const char *text, char *buf, size_t len)
{
	size_t i = 0;

	for (; text && text[i] && i + 1 < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	buf[i] = '\0';
	return buf;
}

static void format_time(int64_t when, char *buf, size_t len)
{
	time_t t = (time_t)when;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%lld", (long long)when);
}

static json_t *policy_json(const mtasts_policy *policy)
{
	json_t *mx = json_array();
	for (size_t i = 0; mx && i < policy->mx_count; i++)
		json_array_append_new(mx, json_string(policy->mx[i]));
	return json_pack("{s:s, s:s, s:I, s:o}", "version", "STSv1", "mode",
	                 mtasts_mode_name(policy->mode), "max_age", (json_int_t)policy->max_age,
	                 "mx", mx ? mx : json_array());
}

static int print_json(json_t *value)
{
	if (!value)
		return EXIT_INTERNAL;
	int rc = json_dumpf(value, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) == 0 ? EXIT_OK : EXIT_INTERNAL;
	fputc('\n', stdout);
	json_decref(value);
	return rc;
}

/* ---- check-txt, check-policy, match, verify-cert ----------------------------------------- */

static int cmd_check_txt(cli *c, int argc, char **argv)
{
	char id[MTASTS_ID_MAX];
	const char *why = NULL;
	size_t n = (size_t)argc - 1;

	if (argc < 2)
		return usage_error("check-txt", "at least one record is needed");
	size_t *lens = calloc(n, sizeof(*lens));
	if (!lens)
		return EXIT_INTERNAL;
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(argv[i + 1]);
	mtasts_status status = mtasts_txt_select((const char *const *)argv + 1, lens, n, id, &why);
	free(lens);
	if (status) {
		fprintf(stderr, "mtasts: no policy: %s\n", why ? why : mtasts_strerror(status));
		return EXIT_CHECK_FAILED;
	}
	printf("id=%s\n", id);
	return EXIT_OK;
}

/* Read at most limit + 1 bytes so that an over-long input is seen as such. */
static int read_input(const char *path, char **buf, size_t *len, size_t limit)
{
	FILE *in = stdin;
	size_t got = 0;
	char *data = malloc(limit + 2);

	if (!data)
		return EXIT_INTERNAL;
	if (path && strcmp(path, "-") != 0) {
		in = fopen(path, "rbe");
		if (!in) {
			fprintf(stderr, "mtasts: cannot read %s: %s\n", path, strerror(errno));
			free(data);
			return EXIT_USAGE;
		}
	}
	while (got <= limit) {
		size_t n = fread(data + got, 1, limit + 1 - got, in);
		if (n == 0)
			break;
		got += n;
	}
	bool failed = ferror(in) != 0;
	int saved = errno;
	if (in != stdin)
		fclose(in);
	if (failed) {
		fprintf(stderr, "mtasts: cannot read %s: %s\n", in == stdin ? "standard input" : path,
		        strerror(saved));
		free(data);
		return EXIT_USAGE;
	}
	data[got] = '\0';
	*buf = data;
	*len = got;
	return EXIT_OK;
}

static int cmd_check_policy(cli *c, int argc, char **argv)
{
	mtasts_policy *policy = NULL;
	char why[MTASTS_REASON_MAX];
	char *body = NULL;
	size_t len = 0;

	if (argc > 2)
		return usage_error("check-policy", "at most one file");
	int rc = read_input(argc == 2 ? argv[1] : NULL, &body, &len, MTASTS_POLICY_BODY_MAX);
	if (rc)
		return rc;
	mtasts_status status = mtasts_policy_parse(body, len, &policy, why, sizeof(why));
	free(body);
	if (status) {
		fprintf(stderr, "mtasts: invalid policy: %s\n", why[0] ? why : mtasts_strerror(status));
		return EXIT_CHECK_FAILED;
	}
	rc = print_json(policy_json(policy));
	mtasts_policy_destroy(&policy);
	return rc;
}

static int cmd_match(cli *c, int argc, char **argv)
{
	if (argc != 3)
		return usage_error("match", "PATTERN and HOST are needed");
	return mtasts_mx_match(argv[1], argv[2]) ? EXIT_OK : EXIT_CHECK_FAILED;
}

static int cmd_verify_cert(cli *c, int argc, char **argv)
{
	static const struct option options[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL, *ca_file = NULL;
	mtasts_verifier *verifier = NULL;
	char reason[MTASTS_REASON_MAX] = "";
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
		if (opt == 'H')
			host = optarg;
		else if (opt == 'C')
			ca_file = optarg;
		else
			return usage_error("verify-cert", "unknown option");
	}
	if (!host || optind != argc - 1)
		return usage_error("verify-cert", "--host HOST and one CHAIN.pem are needed");
	if (!ca_file) {
		int rc = load_config(c);
		if (rc)
			return rc;
		ca_file = c->config->ca_file;
	}
	if (access(argv[optind], R_OK) != 0) {
		fprintf(stderr, "mtasts: cannot read %s: %s\n", argv[optind], strerror(errno));
		return EXIT_USAGE;
	}
	if (ca_file && access(ca_file, R_OK) != 0) {
		fprintf(stderr, "mtasts: cannot read the trust store %s: %s\n", ca_file, strerror(errno));
		return EXIT_USAGE;
	}
	mtasts_status status = mtasts_verifier_new(ca_file, &verifier);
	if (status) {
		fprintf(stderr, "mtasts: trust store %s: %s\n", ca_file ? ca_file : "(system)",
		        mtasts_strerror(status));
		return EXIT_INTERNAL;
	}
	mtasts_result result = mtasts_verify_chain_pem_file(verifier, argv[optind], host, 0,
	                                                    reason, sizeof(reason));
	mtasts_verifier_destroy(&verifier);
	if (result != MTASTS_RESULT_SUCCESS) {
		char safe[MTASTS_REASON_MAX];
		fprintf(stderr, "%s%s%s\n", mtasts_result_name(result), reason[0] ? ": " : "",
		        printable(reason, safe, sizeof(safe)));
		return EXIT_CHECK_FAILED;
	}
	printf("ok\n");
	return EXIT_OK;
}

/* ---- query, fetch, refresh --------------------------------------------------------------- */

static json_t *entry_json(const mtasts_cache_entry *entry, const char *source)
{
	char fetched[32], expires[32];
	json_t *out;

	format_time(entry->fetched_at, fetched, sizeof(fetched));
	format_time(entry->expires_at, expires, sizeof(expires));
	out = policy_json(entry->policy);
	if (!out)
		return NULL;
	json_object_set_new(out, "domain", json_string(entry->domain));
	json_object_set_new(out, "id", json_string(entry->id));
	json_object_set_new(out, "fetched_at", json_string(fetched));
	json_object_set_new(out, "expires_at", json_string(expires));
	json_object_set_new(out, "source", json_string(source));
	json_object_del(out, "version");
	return out;
}

static void print_entry_text(const mtasts_cache_entry *entry, const char *source)
{
	char fetched[32], expires[32];

	format_time(entry->fetched_at, fetched, sizeof(fetched));
	format_time(entry->expires_at, expires, sizeof(expires));
	printf("domain: %s\nid: %s\nmode: %s\nmax_age: %u\n", entry->domain, entry->id,
	       mtasts_mode_name(entry->policy->mode), entry->policy->max_age);
	for (size_t i = 0; i < entry->policy->mx_count; i++)
		printf("mx: %s\n", entry->policy->mx[i]);
	printf("fetched_at: %s\nexpires_at: %s\nsource: %s\n", fetched, expires, source);
}

/* Shared by query and fetch: discover, report, map the outcome to an exit code. */
static int discover_domain(cli *c, const char *arg, bool quiet, bool json, bool need_cache)
{
	char domain[MTASTS_DOMAIN_MAX], why[MTASTS_REASON_MAX];
	mtasts_discovery found = { 0 };
	mtasts_cache *cache = NULL;
	int rc = domain_argument(arg, domain);

	if (rc)
		return rc;
	rc = open_cache(c, true, &cache);
	if (rc)
		return rc;
	mtasts_status status = mtasts_discover(c->config, cache, domain, 0, (int64_t)time(NULL), &found);
	printable(found.reason, why, sizeof(why));
	switch (status) {
	case MTASTS_OK: {
		const char *source = found.source == MTASTS_SOURCE_NETWORK ? "network" : "cache";
		if (found.result != MTASTS_RESULT_SUCCESS && !quiet)
			fprintf(stderr, "mtasts: %s: using the cached policy: %s: %s\n", domain,
			        mtasts_result_name(found.result), why);
		if (!quiet && json)
			rc = print_json(entry_json(found.entry, source));
		else if (!quiet)
			print_entry_text(found.entry, source);
		break;
	}
	case MTASTS_ERR_NOT_FOUND:
	case MTASTS_ERR_DNS_TEMP:
		if (!quiet)
			fprintf(stderr, "mtasts: %s: no policy: %s%s\n", domain, why,
			        status == MTASTS_ERR_DNS_TEMP ? " (treated as no policy, RFC 8461 §3.1)" : "");
		rc = EXIT_NO_POLICY;
		break;
	case MTASTS_ERR_FETCH:
		if (!quiet)
			fprintf(stderr, "mtasts: %s: %s: %s\n", domain, mtasts_result_name(found.result),
			        why);
		rc = EXIT_NO_POLICY_FETCHED;
		break;
	default:
		fprintf(stderr, "mtasts: %s: discovery failed: %s (cache %s)\n", domain,
		        mtasts_strerror(status), c->config->cache_dir);
		rc = EXIT_INTERNAL;
		break;
	}
	/* fetch exists to fill the cache for the shim: not being able to is an error */
	if (need_cache && found.cache_status != MTASTS_OK && rc != EXIT_INTERNAL) {
		mtasts_log(MTASTS_LOG_ERROR, "%s: the cache %s could not be updated: %s", domain,
		           c->config->cache_dir, mtasts_strerror(found.cache_status));
		rc = EXIT_INTERNAL;
	}
	mtasts_discovery_clear(&found);
	mtasts_cache_close(&cache);
	return rc;
}

static int cmd_query(cli *c, int argc, char **argv)
{
	bool json = false;
	int i = 1;

	if (i < argc && strcmp(argv[i], "--json") == 0) {
		json = true;
		i++;
	}
	if (argc - i != 1)
		return usage_error("query", "one DOMAIN is needed");
	return discover_domain(c, argv[i], false, json, false);
}

static int cmd_fetch(cli *c, int argc, char **argv)
{
	if (argc != 2)
		return usage_error("fetch", "one DOMAIN is needed");
	int rc = load_config(c);
	if (rc)
		return rc;
	/* Run by the shim with stderr on /dev/null: say what happened where the operator looks. */
	if (!isatty(STDERR_FILENO))
		mtasts_log_open(c->config->log, "mtasts");
	return discover_domain(c, argv[1], true, false, true);
}

typedef struct refresh_state {
	const mtasts_config *config;
	mtasts_cache *cache;
	int64_t now;
	bool all;
	unsigned due, refreshed, failed;
} refresh_state;

static int refresh_one(const char *domain, void *arg)
{
	refresh_state *state = arg;
	mtasts_cache_entry *entry = NULL;
	mtasts_discovery found = { 0 };

	if (mtasts_cache_get(state->cache, domain, &entry))
		return 0;
	/* §3.3/§10.2: refresh before expiry. An expired policy is not refreshed: it is gone, and
	 * the next discovery fetches again if the domain still publishes a record. */
	bool due = entry->policy && entry->expires_at > state->now && (state->all ||
	           state->now - entry->fetched_at >= state->config->refresh_interval);
	mtasts_cache_entry_destroy(&entry);
	if (!due)
		return 0;
	state->due++;
	mtasts_status status = mtasts_discover(state->config, state->cache, domain,
	                                       MTASTS_DISCOVER_FORCE_FETCH, state->now, &found);
	if (status == MTASTS_OK && found.source == MTASTS_SOURCE_NETWORK) {
		state->refreshed++;
	} else {
		state->failed++;
		mtasts_log(MTASTS_LOG_WARNING, "refresh of %s failed, the cached policy stays in force "
		           "until it expires: %s: %s", domain, mtasts_result_name(found.result),
		           found.reason[0] ? found.reason : mtasts_strerror(status));
	}
	mtasts_discovery_clear(&found);
	return 0;
}

static int cmd_refresh(cli *c, int argc, char **argv)
{
	refresh_state state = { 0 };
	mtasts_cache *cache = NULL;

	if (argc == 2 && strcmp(argv[1], "--all") == 0)
		state.all = true;
	else if (argc != 1)
		return usage_error("refresh", "unexpected argument");
	int rc = open_cache(c, true, &cache);
	if (rc)
		return rc;
	mtasts_log_open("stderr", NULL);
	state.config = c->config;
	state.cache = cache;
	state.now = (int64_t)time(NULL);
	mtasts_status status = mtasts_cache_foreach(cache, refresh_one, &state);
	mtasts_cache_close(&cache);
	if (status) {
		fprintf(stderr, "mtasts: refresh: %s\n", mtasts_strerror(status));
		return EXIT_INTERNAL;
	}
	printf("refresh: %u due, %u refreshed, %u failed\n", state.due, state.refreshed, state.failed);
	return state.failed ? EXIT_CHECK_FAILED : EXIT_OK;
}

/* ---- cache list | show | flush ---------------------------------------------------------- */

static int list_one(const char *domain, void *arg)
{
	mtasts_cache *cache = arg;
	mtasts_cache_entry *entry = NULL;
	char expires[32] = "-";

	if (mtasts_cache_get(cache, domain, &entry)) {
		printf("%-40s damaged\n", domain);
		return 0;
	}
	if (entry->policy) {
		format_time(entry->expires_at, expires, sizeof(expires));
		printf("%-40s %-8s id=%-32s expires=%s%s\n", entry->domain,
		       mtasts_mode_name(entry->policy->mode), entry->id, expires,
		       entry->failed_at ? " (last fetch failed)" : "");
	} else {
		printf("%-40s %-8s %s\n", entry->domain, "-", entry->failed_at ?
		       "no policy (fetch failed)" : "no policy");
	}
	mtasts_cache_entry_destroy(&entry);
	return 0;
}

typedef struct flush_state {
	mtasts_cache *cache;
	unsigned long deleted, failed;
} flush_state;

static int delete_one(const char *domain, void *arg)
{
	flush_state *state = arg;
	mtasts_status status = mtasts_cache_delete(state->cache, domain);

	if (status == MTASTS_OK) {
		state->deleted++;
	} else if (status != MTASTS_ERR_NOT_FOUND) {
		state->failed++;
		fprintf(stderr, "mtasts: cannot remove %s: %s (%s)\n", domain, mtasts_strerror(status),
		        strerror(errno));
	}
	return 0;
}

static int foreach_failed(const mtasts_config *config, mtasts_status status)
{
	fprintf(stderr, "mtasts: cannot read the cache %s: %s (%s)\n", config->cache_dir,
	        mtasts_strerror(status), strerror(errno));
	return EXIT_INTERNAL;
}

static int cmd_cache(cli *c, int argc, char **argv)
{
	mtasts_cache *cache = NULL;
	char domain[MTASTS_DOMAIN_MAX];
	int rc;

	if (argc < 2)
		return usage_error("cache", "list, show DOMAIN or flush [DOMAIN]");
	const char *action = argv[1];
	if (strcmp(action, "list") == 0 && argc == 2) {
		rc = open_cache(c, false, &cache);
		if (rc)
			return rc;
		mtasts_status status = mtasts_cache_foreach(cache, list_one, cache);
		if (status)
			rc = foreach_failed(c->config, status);
	} else if (strcmp(action, "show") == 0 && argc == 3) {
		mtasts_cache_entry *entry = NULL;
		char *text = NULL;
		size_t len = 0;

		rc = domain_argument(argv[2], domain);
		if (rc)
			return rc;
		rc = open_cache(c, false, &cache);
		if (rc)
			return rc;
		mtasts_status status = mtasts_cache_get(cache, domain, &entry);
		if (status == MTASTS_OK)
			status = mtasts_cache_entry_format(entry, &text, &len);
		if (status) {
			fprintf(stderr, "mtasts: %s: %s\n", domain, mtasts_strerror(status));
			rc = status == MTASTS_ERR_NOT_FOUND ? EXIT_NO_POLICY : EXIT_INTERNAL;
		} else {
			/* the raw policy body is the policy host's text: no terminal control sequences */
			for (size_t i = 0; i < len; i++) {
				unsigned char ch = (unsigned char)text[i];
				if ((ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t') || ch == 0x7f)
					text[i] = '?';
			}
			fwrite(text, 1, len, stdout);
		}
		free(text);
		mtasts_cache_entry_destroy(&entry);
	} else if (strcmp(action, "flush") == 0 && (argc == 2 || argc == 3)) {
		rc = open_cache(c, false, &cache);
		if (rc)
			return rc;
		if (argc == 3) {
			rc = domain_argument(argv[2], domain);
			if (!rc && mtasts_cache_delete(cache, domain) == MTASTS_ERR_NOT_FOUND) {
				fprintf(stderr, "mtasts: %s: not cached\n", domain);
				rc = EXIT_NO_POLICY;
			}
		} else {
			flush_state state = { cache, 0, 0 };
			mtasts_status status = mtasts_cache_foreach(cache, delete_one, &state);
			printf("flushed %lu entries\n", state.deleted);
			if (status)
				rc = foreach_failed(c->config, status);
			else if (state.failed)
				rc = EXIT_INTERNAL;
		}
	} else {
		rc = usage_error("cache", "list, show DOMAIN or flush [DOMAIN]");
	}
	mtasts_cache_close(&cache);
	return rc;
}

/* ---- dispatch --------------------------------------------------------------------------- */

static const command commands[] = {
	{ "check-txt", cmd_check_txt, "check-txt RECORD...",
	  "Evaluate the records of an _mta-sts TXT RRset (character-strings already joined) by\n"
	  "RFC 8461 §3.1. Prints id=<id> and exits 0, or exits 1 with the reason." },
	{ "check-policy", cmd_check_policy, "check-policy [FILE|-]",
	  "Parse a policy body (RFC 8461 §3.2) from FILE or standard input. Prints the policy as one\n"
	  "JSON object and exits 0, or exits 1 with the reason." },
	{ "match", cmd_match, "match PATTERN HOST",
	  "Exit 0 when HOST matches the mx PATTERN by RFC 8461 §4.1, 1 when not." },
	{ "query", cmd_query, "query [--json] DOMAIN",
	  "Discover the effective policy of DOMAIN with the cache: checks the live TXT record and\n"
	  "fetches when its id differs or nothing valid is cached. Exit 0 with the policy, 3 when the\n"
	  "domain has no policy, 4 when a policy record exists but no policy could be fetched." },
	{ "fetch", cmd_fetch, "fetch DOMAIN",
	  "The same as query, without output (the shim runs it). Same exit codes." },
	{ "refresh", cmd_refresh, "refresh [--all]",
	  "Re-fetch over HTTPS every cached policy fetched more than refresh_interval ago (all with\n"
	  "--all), whatever the TXT id says (RFC 8461 §3.3, §10.2). Prints one summary line; exit 1\n"
	  "when some failed. Run it daily from cron or a systemd timer." },
	{ "cache", cmd_cache, "cache list | show DOMAIN | flush [DOMAIN]",
	  "List the cached domains, show one entry as stored, or remove one or all entries." },
	{ "verify-cert", cmd_verify_cert, "verify-cert --host HOST [--ca-file F] CHAIN.pem",
	  "Verify a PEM chain (leaf first) for HOST by RFC 8461 §4.2. Exit 0 when it passes, else 1\n"
	  "with the RFC 8460 result type on stderr." },
	{ NULL, NULL, NULL, NULL },
};

static const command *find_command(const char *name)
{
	for (const command *cmd = commands; cmd->name; cmd++) {
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	}
	return NULL;
}

static void print_usage(FILE *out)
{
	fprintf(out, "usage: mtasts [--config FILE] COMMAND [ARGS...]\n\n"
	        "MTA-STS (RFC 8461) discovery, policy cache and checks.\n\ncommands:\n");
	for (const command *cmd = commands; cmd->name; cmd++)
		fprintf(out, "  mtasts %s\n", cmd->usage);
	fprintf(out, "\noptions:\n  --config FILE  settings file (default %s, or $MTASTS_CONFIG)\n"
	        "  --help         this text; COMMAND --help for one command\n"
	        "  --version      print the version\n\n"
	        "exit codes: 0 ok, 1 check failed, 3 no policy, 4 policy record but no policy,\n"
	        "            64 usage error, 70 internal error\n", MTASTS_DEFAULT_CONFIG);
}

int main(int argc, char **argv)
{
	cli c = { 0 };
	int i = 1;
	int rc;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			print_usage(stdout);
			return EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("mtasts %s\n", MTASTS_VERSION);
			return EXIT_OK;
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			c.config_path = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--config") == 0) {
			fprintf(stderr, "mtasts: --config needs a FILE\n");
			return EXIT_USAGE;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			c.config_path = argv[i] + 9;
			i++;
		} else {
			fprintf(stderr, "mtasts: unknown option %s\n", argv[i]);
			print_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	const command *cmd = find_command(argv[i]);
	if (!cmd) {
		fprintf(stderr, "mtasts: unknown command '%s'\n", argv[i]);
		print_usage(stderr);
		return EXIT_USAGE;
	}
	if (wants_help(cmd->name, argc - i, argv + i))
		return EXIT_OK;
	mtasts_log_open("stderr", NULL);
	rc = cmd->run(&c, argc - i, argv + i);
	mtasts_config_destroy(&c.config);
	return rc;
}
