/*
 * log.h - one place where the library and the shim say what happened: syslog (facility mail),
 * stderr or an append-only file, chosen by the `log` setting. Warnings and errors are kept apart.
 */
#ifndef MTASTS_LOG_H
#define MTASTS_LOG_H

#include <stdarg.h>

typedef enum mtasts_log_level { MTASTS_LOG_DEBUG, MTASTS_LOG_INFO, MTASTS_LOG_WARNING, MTASTS_LOG_ERROR } mtasts_log_level;

/* target: "syslog", "stderr", "none" or an absolute file path; ident: program name for syslog.
 * Safe to call again (reopens). */
void mtasts_log_open(const char *target, const char *ident);
void mtasts_log_close(void);
void mtasts_log(mtasts_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mtasts_vlog(mtasts_log_level level, const char *fmt, va_list ap);

#endif
