/*
 * log.c - where libmtasts, the CLI and the shim say what happened.
 *
 * Targets: "syslog" (facility mail), "stderr", "none", or an absolute file path. A file is
 * opened, appended to with one write() per line and closed again for every message: inside an
 * MTA process a long-lived descriptor of ours could be closed and reused by the MTA, and we
 * would then write into its files. syslog is never openlog()ed unless an ident is given, so the
 * MTA's own ident and facility stay as the MTA set them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mtasts/log.h"

#define LOG_LINE_MAX 2048
#define LOG_PATH_MAX 1024

typedef enum { TARGET_SYSLOG, TARGET_STDERR, TARGET_NONE, TARGET_FILE } log_target;

static log_target target = TARGET_STDERR;
static char file_path[LOG_PATH_MAX];
static char ident_prefix[64] = "mtasts";

void mtasts_log_open(const char *where, const char *ident)
{
	if (ident && *ident) {
		snprintf(ident_prefix, sizeof(ident_prefix), "%s", ident);
	}
	if (!where || strcmp(where, "syslog") == 0) {
		target = TARGET_SYSLOG;
		if (ident && *ident)
			openlog(ident_prefix, LOG_PID, LOG_MAIL);
	} else if (strcmp(where, "stderr") == 0) {
		target = TARGET_STDERR;
	} else if (strcmp(where, "none") == 0) {
		target = TARGET_NONE;
	} else if (where[0] == '/' && strlen(where) < sizeof(file_path)) {
		target = TARGET_FILE;
		snprintf(file_path, sizeof(file_path), "%s", where);
	} else {
		target = TARGET_STDERR;
	}
}

void mtasts_log_close(void)
{
	if (target == TARGET_SYSLOG)
		closelog();
	target = TARGET_STDERR;
}

static int syslog_priority(mtasts_log_level level)
{
	switch (level) {
	case MTASTS_LOG_DEBUG: return LOG_MAIL | LOG_DEBUG;
	case MTASTS_LOG_INFO: return LOG_MAIL | LOG_INFO;
	case MTASTS_LOG_WARNING: return LOG_MAIL | LOG_WARNING;
	default: return LOG_MAIL | LOG_ERR;
	}
}

static const char *level_word(mtasts_log_level level)
{
	switch (level) {
	case MTASTS_LOG_DEBUG: return "debug: ";
	case MTASTS_LOG_INFO: return "";
	case MTASTS_LOG_WARNING: return "warning: ";
	default: return "error: ";
	}
}

/* Replace control characters so one message stays one line whatever it quotes. */
static void sanitize(char *text)
{
	for (; *text; text++) {
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			*text = '?';
	}
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void mtasts_vlog(mtasts_log_level level, const char *fmt, va_list ap)
{
	char message[LOG_LINE_MAX];
	char line[LOG_LINE_MAX + 128];
	int saved_errno = errno;
	int len;

	if (target == TARGET_NONE)
		goto out;
	vsnprintf(message, sizeof(message), fmt, ap);
	sanitize(message);
	switch (target) {
	case TARGET_SYSLOG:
		syslog(syslog_priority(level), "%s%s", level_word(level), message);
		break;
	case TARGET_STDERR:
		len = snprintf(line, sizeof(line), "%s: %s%s\n", ident_prefix, level_word(level), message);
		if (len > 0)
			write_all(STDERR_FILENO, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
		break;
	case TARGET_FILE: {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		int fd;

		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		len = snprintf(line, sizeof(line), "%s %s[%ld]: %s%s\n", stamp, ident_prefix,
		               (long)getpid(), level_word(level), message);
		fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0640);
		if (fd >= 0 && len > 0) {
			write_all(fd, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
		}
		if (fd >= 0)
			close(fd);
		break;
	}
	default:
		break;
	}
out:
	errno = saved_errno;
}

void mtasts_log(mtasts_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mtasts_vlog(level, fmt, ap);
	va_end(ap);
}
