/*
 * service.h - the main thread's life once the daemon serves: signals,
 * watchdog pings, status lines and configuration reloads (service.c).
 */
#ifndef INFINI_SERVICE_H
#define INFINI_SERVICE_H

#include <stddef.h>

#include "config.h"
#include "notify.h"

struct infinid;

/*
 * svc_load_fn builds a whole configuration the way startup did: defaults,
 * then the settings file, then the command-line flags.  Returns 0, or an
 * error code with err naming the problem.
 */
typedef int (*svc_load_fn)(void *arg, struct cfg *c, char *err,
    size_t errlen);

/*
 * svc_block_signals blocks SIGTERM, SIGINT and SIGHUP in the calling thread.
 * Call it before creating any thread (the Vulkan driver and NNG make their
 * own), so every thread inherits the mask and the signals wait, pending,
 * for svc_run.  Returns 0 or INFINI_EINTERNAL.
 */
int svc_block_signals(void);

/*
 * svc_run serves the signals synchronously until SIGTERM or SIGINT, whose
 * number it returns.  Meanwhile it
 *  - sends WATCHDOG=1 every WATCHDOG_USEC/2, but only while the scheduler's
 *    heartbeat (d->sched_beat_ms) is recent, so a device stuck inside
 *    eng_run stops the pings and the manager restarts the daemon;
 *  - sends STATUS= ("3 streams, 12 requests/s, 850 tokens/s") every few
 *    seconds;
 *  - on SIGHUP sends RELOADING=1, rebuilds the settings with load, applies
 *    those that can change live under d->mu, logs each change (and each
 *    one that needs a restart, which it leaves as it was), then READY=1.
 * Call it after READY=1 has been sent.
 */
int svc_run(struct infinid *d, struct notify *n, svc_load_fn load,
    void *arg);

#endif
