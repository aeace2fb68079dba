/*
 * config.h - settings from /etc/mtasts/mtasts.conf (`key = value`, `#` comments), another file
 * named by --config or MTASTS_CONFIG, and MTASTS_<KEY> environment overrides. In
 * secure-execution mode (setuid, AT_SECURE) the environment is never read: only the default file.
 */
#ifndef MTASTS_CONFIG_H
#define MTASTS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "mtasts/status.h"

#define MTASTS_DEFAULT_CONFIG "/etc/mtasts/mtasts.conf"
#define MTASTS_DEFAULT_CACHE_DIR "/var/cache/mtasts"
#define MTASTS_CONFIG_ERR_MAX 512

typedef struct mtasts_config {
	char *path;            /* the file read, or NULL when none existed (defaults only) */
	/* core */
	char *cache_dir;
	char *ca_file;         /* NULL: system trust store */
	char *dns_servers;     /* NULL: /etc/resolv.conf */
	long fetch_timeout;    /* seconds, total per HTTPS fetch */
	long txt_recheck;      /* seconds between live TXT checks on the shim's hot path */
	long refresh_interval; /* `mtasts refresh` re-fetches a policy fetched longer ago than this */
	char *proxy;           /* NULL: never use a proxy */
	/* shim */
	char *programs;        /* space/comma separated program names the shim acts in */
	char *fetcher;         /* path of the mtasts binary */
	long fetch_wait;       /* seconds the shim waits for a fetch at connect time */
	char *smtp_ports;      /* comma separated ports */
	char *log;             /* "syslog", "stderr" or a file path */
	char *report_dir;      /* NULL: no session reports */
} mtasts_config;

/*
 * Load settings. path: explicit file (must exist), or NULL for MTASTS_CONFIG (outside secure
 * mode) or else the default file (which may be missing: defaults apply). Then apply MTASTS_<KEY>
 * overrides (outside secure mode). Errors name the file and line in err.
 */
mtasts_status mtasts_config_load(const char *path, mtasts_config **out, char *err, size_t err_len);
void mtasts_config_destroy(mtasts_config **config);

/* True when the process runs in secure-execution mode (getauxval(AT_SECURE)). */
bool mtasts_secure_mode(void);

#endif
