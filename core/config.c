/*
 * config.c - mtasts.conf reader: `key = value` lines, `#` comments, every key overridable by
 * MTASTS_<KEY> in the environment outside secure-execution mode.
 *
 * The shim calls this inside setuid MTA processes, so: the environment is read only with
 * secure_getenv; in secure mode only the default file counts and it must be owned by root and
 * not writable by group or others; every line and value is bounded; unknown keys and bad values
 * are errors that name the file and the line.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtasts/config.h"

#define CONFIG_FILE_MAX (64 * 1024)
#define CONFIG_VALUE_MAX 4096

typedef enum { KEY_STRING, KEY_SECONDS } key_kind;

/* A value check: NULL when the value is fine, else why not. */
typedef const char *(*value_check)(const char *value);

typedef struct key_spec {
	const char *name;
	key_kind kind;
	size_t offset;      /* of the char * or long field in mtasts_config */
	long min, max;      /* for KEY_SECONDS */
	bool required;      /* KEY_STRING: an empty value is an error (the key has a default) */
	value_check check;  /* KEY_STRING: NULL or a check of a non-empty value */
} key_spec;

static const char *check_absolute(const char *value);
static const char *check_log(const char *value);
static const char *check_ports(const char *value);
static const char *check_servers(const char *value);

#define STR_KEY(f, req, chk) { #f, KEY_STRING, offsetof(mtasts_config, f), 0, 0, req, chk }
#define NUM_KEY(f, lo, hi) { #f, KEY_SECONDS, offsetof(mtasts_config, f), lo, hi, false, NULL }

static const key_spec keys[] = {
	STR_KEY(cache_dir, true, check_absolute),
	STR_KEY(ca_file, false, check_absolute),
	STR_KEY(dns_servers, false, check_servers),
	NUM_KEY(fetch_timeout, 1, 600),
	NUM_KEY(txt_recheck, 0, 31557600),
	NUM_KEY(refresh_interval, 60, 31557600),
	STR_KEY(proxy, false, NULL),
	STR_KEY(programs, true, NULL),
	STR_KEY(fetcher, true, check_absolute),
	NUM_KEY(fetch_wait, 0, 300),
	STR_KEY(smtp_ports, true, check_ports),
	STR_KEY(log, true, check_log),
	STR_KEY(report_dir, false, check_absolute),
};

static const char *check_absolute(const char *value)
{
	return value[0] == '/' ? NULL : "must be an absolute path";
}

static const char *check_log(const char *value)
{
	if (strcmp(value, "syslog") == 0 || strcmp(value, "stderr") == 0 ||
	    strcmp(value, "none") == 0 || value[0] == '/')
		return NULL;
	return "must be syslog, stderr, none or an absolute file path";
}

/* Decimal 1..65535, exactly n characters. */
static bool port_ok(const char *p, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5 || p[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return v <= 65535;
}

/* Ports separated by commas, spaces or tabs (as the shim reads them); at least one. */
static const char *check_ports(const char *value)
{
	size_t count = 0;

	for (const char *p = value; *p;) {
		size_t n = strcspn(p, ", \t");
		if (n) {
			if (!port_ok(p, n))
				return "expected port numbers 1-65535 separated by commas";
			count++;
		}
		p += n;
		p += strspn(p, ", \t");
	}
	return count ? NULL : "expected port numbers 1-65535 separated by commas";
}

/* c-ares server list: comma-separated IPv4, IPv4:port, IPv6 or [IPv6]:port. */
static const char *check_servers(const char *value)
{
	static const char *const bad = "expected IP or IP:port ([IPv6]:port) separated by commas";

	for (const char *p = value;;) {
		size_t n = strcspn(p, ",");
		char item[INET6_ADDRSTRLEN + 16], host[INET6_ADDRSTRLEN + 1];
		unsigned char bin[sizeof(struct in6_addr)];
		const char *port = NULL;

		if (n == 0 || n >= sizeof(item))
			return bad;
		memcpy(item, p, n);
		item[n] = '\0';
		if (item[0] == '[') {
			char *close = strchr(item, ']');
			if (!close || (size_t)(close - item - 1) >= sizeof(host))
				return bad;
			memcpy(host, item + 1, (size_t)(close - item - 1));
			host[close - item - 1] = '\0';
			if (close[1] == ':')
				port = close + 2;
			else if (close[1] != '\0')
				return bad;
			if (inet_pton(AF_INET6, host, bin) != 1)
				return bad;
		} else if (inet_pton(AF_INET6, item, bin) != 1) {
			char *colon = strchr(item, ':');
			if (colon) {
				*colon = '\0';
				port = colon + 1;
			}
			if (inet_pton(AF_INET, item, bin) != 1)
				return bad;
		}
		if (port && !port_ok(port, strlen(port)))
			return bad;
		p += n;
		if (*p == '\0')
			return NULL;
		p++;
	}
}

bool mtasts_secure_mode(void)
{
	return getauxval(AT_SECURE) != 0;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !err_len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static const key_spec *find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
			return &keys[i];
	}
	return NULL;
}

/* Store value (NUL-terminated) into the field of key; why gets a reason on failure. */
static mtasts_status set_value(mtasts_config *config, const key_spec *key, const char *value,
                               const char **why)
{
	char *field = (char *)config + key->offset;

	if (key->kind == KEY_SECONDS) {
		char *end;
		long number;

		errno = 0;
		if (!isdigit((unsigned char)value[0])) {
			*why = "expected a number of seconds";
			return MTASTS_ERR_CONFIG;
		}
		number = strtol(value, &end, 10);
		if (*end) {
			*why = "expected a number of seconds (digits only, no unit)";
			return MTASTS_ERR_CONFIG;
		}
		if (errno || number < key->min || number > key->max) {
			*why = "number of seconds out of range";
			return MTASTS_ERR_CONFIG;
		}
		memcpy(field, &number, sizeof(number));
		return MTASTS_OK;
	}

	for (const char *p = value; *p; p++) {
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			*why = "control character in the value";
			return MTASTS_ERR_CONFIG;
		}
		if (*p == '#' && p > value && (p[-1] == ' ' || p[-1] == '\t')) {
			*why = "'#' after the value: a comment must be on a line of its own";
			return MTASTS_ERR_CONFIG;
		}
	}
	if (!*value && key->required) {
		*why = "needs a value (leave the line out for the default)";
		return MTASTS_ERR_CONFIG;
	}
	if (*value && key->check && (*why = key->check(value)) != NULL)
		return MTASTS_ERR_CONFIG;

	char *copy = NULL;
	if (*value) {
		copy = strdup(value);
		if (!copy) {
			*why = "out of memory";
			return MTASTS_ERR_NOMEM;
		}
	}
	char *old;
	memcpy(&old, field, sizeof(old));
	free(old);
	memcpy(field, &copy, sizeof(copy));
	return MTASTS_OK;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Parse the text of a whole file. */
static mtasts_status parse_text(mtasts_config *config, const char *path, char *text,
                                char *err, size_t err_len)
{
	unsigned line_no = 0;
	unsigned seen[sizeof(keys) / sizeof(keys[0])] = { 0 };   /* line of each key, 0: not yet */
	char *line = text;

	while (line && *line) {
		char *next = strchr(line, '\n');
		const char *why = NULL;

		line_no++;
		if (next)
			*next++ = '\0';
		size_t len = strlen(line);
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		while (is_blank(*line))
			line++;
		if (*line == '\0' || *line == '#') {
			line = next;
			continue;
		}
		char *eq = strchr(line, '=');
		if (!eq) {
			set_err(err, err_len, "%s:%u: expected 'key = value'", path, line_no);
			return MTASTS_ERR_CONFIG;
		}
		char *key_end = eq;
		while (key_end > line && is_blank(key_end[-1]))
			key_end--;
		const key_spec *key = find_key(line, (size_t)(key_end - line));
		if (!key) {
			set_err(err, err_len, "%s:%u: unknown key '%.*s'", path, line_no,
			        (int)(key_end - line > 64 ? 64 : key_end - line), line);
			return MTASTS_ERR_CONFIG;
		}
		size_t index = (size_t)(key - keys);
		if (seen[index]) {
			set_err(err, err_len, "%s:%u: %s is already set on line %u", path, line_no,
			        key->name, seen[index]);
			return MTASTS_ERR_CONFIG;
		}
		seen[index] = line_no;
		char *value = eq + 1;
		while (is_blank(*value))
			value++;
		char *value_end = value + strlen(value);
		while (value_end > value && is_blank(value_end[-1]))
			value_end--;
		*value_end = '\0';
		if (strlen(value) >= CONFIG_VALUE_MAX) {
			set_err(err, err_len, "%s:%u: value of %s is too long", path, line_no, key->name);
			return MTASTS_ERR_CONFIG;
		}
		mtasts_status status = set_value(config, key, value, &why);
		if (status) {
			set_err(err, err_len, "%s:%u: %s: %s", path, line_no, key->name, why);
			return status;
		}
		line = next;
	}
	return MTASTS_OK;
}

static mtasts_status read_file(mtasts_config *config, const char *path, bool must_exist,
                               bool secure, char *err, size_t err_len)
{
	mtasts_status status = MTASTS_OK;
	char *text = NULL;
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT && !must_exist)
			return MTASTS_OK;
		set_err(err, err_len, "%s: %s", path, strerror(errno));
		return MTASTS_ERR_CONFIG;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		set_err(err, err_len, "%s: not a regular file", path);
		status = MTASTS_ERR_CONFIG;
		goto out;
	}
	if (secure && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
		set_err(err, err_len, "%s: must be owned by root and not writable by group or others "
		        "in a setuid process", path);
		status = MTASTS_ERR_CONFIG;
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		set_err(err, err_len, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
		status = MTASTS_ERR_CONFIG;
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		status = MTASTS_ERR_NOMEM;
		goto out;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	text[got] = '\0';
	if (memchr(text, '\0', got)) {
		set_err(err, err_len, "%s: contains a NUL byte", path);
		status = MTASTS_ERR_CONFIG;
		goto out;
	}
	config->path = strdup(path);
	if (!config->path) {
		status = MTASTS_ERR_NOMEM;
		goto out;
	}
	status = parse_text(config, path, text, err, err_len);
out:
	free(text);
	close(fd);
	return status;
}

static mtasts_status apply_environment(mtasts_config *config, char *err, size_t err_len)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char name[64] = "MTASTS_";
		size_t at = strlen(name);
		const char *why = NULL;

		for (const char *k = keys[i].name; *k && at + 1 < sizeof(name); k++)
			name[at++] = (char)toupper((unsigned char)*k);
		name[at] = '\0';
		const char *value = secure_getenv(name);
		if (!value)
			continue;
		if (strlen(value) >= CONFIG_VALUE_MAX) {
			set_err(err, err_len, "environment %s: value too long", name);
			return MTASTS_ERR_CONFIG;
		}
		mtasts_status status = set_value(config, &keys[i], value, &why);
		if (status) {
			set_err(err, err_len, "environment %s: %s", name, why);
			return status;
		}
	}
	return MTASTS_OK;
}

static mtasts_status set_defaults(mtasts_config *config)
{
	config->cache_dir = strdup(MTASTS_DEFAULT_CACHE_DIR);
	config->programs = strdup("exim exim4");
	config->fetcher = strdup(MTASTS_PREFIX "/bin/mtasts");
	config->smtp_ports = strdup("25");
	config->log = strdup("syslog");
	config->fetch_timeout = 60;
	config->txt_recheck = 3600;
	config->refresh_interval = 86400;
	config->fetch_wait = 5;
	if (!config->cache_dir || !config->programs || !config->fetcher || !config->smtp_ports ||
	    !config->log)
		return MTASTS_ERR_NOMEM;
	return MTASTS_OK;
}

mtasts_status mtasts_config_load(const char *path, mtasts_config **out, char *err, size_t err_len)
{
	mtasts_config *config = NULL;
	mtasts_status status;
	bool secure = mtasts_secure_mode();
	bool must_exist = path != NULL;

	if (!out)
		return MTASTS_ERR_INVALID_ARG;
	*out = NULL;
	set_err(err, err_len, "%s", "");
	config = calloc(1, sizeof(*config));
	if (!config)
		return MTASTS_ERR_NOMEM;
	status = set_defaults(config);
	if (status)
		goto out;
	if (secure) {
		/* Secure mode: the caller's path and the environment are attacker-controlled. */
		path = MTASTS_DEFAULT_CONFIG;
		must_exist = false;
	} else if (!path) {
		path = secure_getenv("MTASTS_CONFIG");
		must_exist = path && *path;
		if (!must_exist)
			path = MTASTS_DEFAULT_CONFIG;
	}
	status = read_file(config, path, must_exist, secure, err, err_len);
	if (status)
		goto out;
	if (!secure) {
		status = apply_environment(config, err, err_len);
		if (status)
			goto out;
	}
	if (!config->cache_dir || config->cache_dir[0] != '/') {
		set_err(err, err_len, "%s: cache_dir must be an absolute path", path);
		status = MTASTS_ERR_CONFIG;
		goto out;
	}
	*out = config;
	config = NULL;
out:
	mtasts_config_destroy(&config);
	return status;
}

void mtasts_config_destroy(mtasts_config **config)
{
	if (!config || !*config)
		return;
	mtasts_config *c = *config;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (keys[i].kind != KEY_STRING)
			continue;
		char *value;
		memcpy(&value, (char *)c + keys[i].offset, sizeof(value));
		free(value);
	}
	free(c->path);
	free(c);
	*config = NULL;
}
