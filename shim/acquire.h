/*
 * acquire.h - getting a policy domain's effective policy from the cache, starting the detached
 * fetcher when the cache has nothing fresh, and waiting for it at connect time.
 * No network I/O of our own: the fetcher (`mtasts fetch DOMAIN`) does it in its own process.
 */
#ifndef MTASTS_SHIM_ACQUIRE_H
#define MTASTS_SHIM_ACQUIRE_H

#include <stdbool.h>
#include "mtasts/cache.h"

typedef enum shim_presence {
	SHIM_POLICY_ABSENT = 0,   /* no valid policy (none fetched, expired, or cache unusable) */
	SHIM_POLICY_PRESENT,
	SHIM_POLICY_UNREADABLE,   /* an entry exists but memory ran out reading it: it may hold an
	                           * enforce policy, so the connection is treated as enforce with no
	                           * MX allowed (a temporary failure, never a send in clear) */
} shim_presence;

typedef struct shim_policy_view {
	shim_presence presence;
	mtasts_policy *policy;    /* owned clone, NULL when absent */
	char id[MTASTS_ID_MAX];
	char why[128];            /* why it is absent, for the log */
} shim_policy_view;

/* Look D up; wait up to fetch_wait seconds for a missing policy when wait is true.
 * Must be called inside the shim. Never fails: trouble makes the view absent with a reason. */
void shim_policy_acquire(const char *domain, bool wait, shim_policy_view *view);
void shim_policy_view_clear(shim_policy_view *view);

/* On an MX lookup: start the fetcher when the cache has no fresh entry (inside the shim). */
void shim_policy_prefetch(const char *domain);

#endif
