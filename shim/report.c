/*
 * report.c - the session log line and the JSON session record of report.h.
 *
 * The JSON line goes to report_dir/YYYY-MM-DD.jsonl (UTC), opened O_APPEND|O_CLOEXEC|O_NOFOLLOW
 * for each record and written with a single write() so concurrent MTA processes never
 * interleave lines; a line is at most REPORT_LINE_MAX bytes (strings are cut to fit, the
 * line stays valid JSON). No JSON library: strings are escaped here.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mtasts/log.h"
#include "report.h"
#include "shim.h"

#define REPORT_LINE_MAX 4096
#define REPORT_FIELD_MAX 600

size_t shim_json_escape(const char *in, char *out, size_t out_len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (!out_len)
		return 0;
	for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p; p++) {
		char esc[7];
		size_t n = 0;

		if (*p == '"' || *p == '\\') {
			esc[n++] = '\\';
			esc[n++] = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f) {
			esc[n++] = '\\';
			esc[n++] = 'u';
			esc[n++] = '0';
			esc[n++] = '0';
			esc[n++] = hex[*p >> 4];
			esc[n++] = hex[*p & 15];
		} else if (*p >= 0x80) {
			esc[n++] = '?';   /* names are ASCII; never emit broken UTF-8 */
		} else {
			esc[n++] = (char)*p;
		}
		if (o + n + 1 > out_len)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}

static void write_json(const shim_session_facts *f)
{
	char path[4096], line[REPORT_LINE_MAX], stamp[32], day[16];
	char domain[REPORT_FIELD_MAX], mx[REPORT_FIELD_MAX], ip[128], id[80], reason[REPORT_FIELD_MAX],
	     program[160];
	time_t now = time(NULL);
	struct tm tm;
	int len, fd;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	if (snprintf(path, sizeof(path), "%s/%s.jsonl", shim_cfg.report_dir, day) >= (int)sizeof(path))
		return;
	shim_json_escape(f->domain, domain, sizeof(domain));
	shim_json_escape(f->mx, mx, sizeof(mx));
	shim_json_escape(f->ip, ip, sizeof(ip));
	shim_json_escape(f->policy_id, id, sizeof(id));
	shim_json_escape(f->reason, reason, sizeof(reason));
	shim_json_escape(shim_cfg.program, program, sizeof(program));
	len = snprintf(line, sizeof(line),
	               "{\"time\":\"%s\",\"domain\":\"%s\",\"mx\":\"%s\",\"ip\":\"%s\","
	               "\"policy\":\"%s\",\"policy_id\":\"%s\",\"result\":\"%s\",\"action\":\"%s\","
	               "\"reason\":\"%s\",\"program\":\"%s\",\"pid\":%ld}\n",
	               stamp, domain, mx, ip, f->policy, id, mtasts_result_name(f->result),
	               f->blocked ? "block" : "allow", reason, program, (long)getpid());
	if (len <= 0 || len >= (int)sizeof(line))
		return;   /* cannot happen with the field bounds above; never write half a line */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
	if (fd < 0) {
		shim_log(MTASTS_LOG_WARNING, "report %s: %s", path, strerror(errno));
		return;
	}
	if (write(fd, line, (size_t)len) != len)
		shim_log(MTASTS_LOG_WARNING, "report %s: short write", path);
	close(fd);
}

void shim_report_session(const shim_session_facts *f)
{
	/* reason is last: its value is the rest of the line (it may hold spaces) */
	shim_log(MTASTS_LOG_INFO, "domain=%s mx=%s ip=%s policy=%s result=%s action=%s%s%s",
	         f->domain, f->mx, f->ip, f->policy, mtasts_result_name(f->result),
	         f->blocked ? "block" : "allow", f->reason[0] ? " reason=" : "", f->reason);
	if (shim_cfg.report_dir)
		write_json(f);
}
