/*
 * srv.h - the NNG transport (server.c), the top of the daemon's request
 * path: it hands each request's bytes to the rpc layer and sends what rpc.c
 * packs.  Called from main.c.
 */
#ifndef INFINI_SRV_H
#define INFINI_SRV_H

#include <stddef.h>

#include "rpc.h"

/* srv_claim checks, before anything else starts, that every ipc:// path of
 * the listen setting is free: it removes a socket left by a daemon that
 * died, and refuses one that still answers ("another infinid is serving
 * URL (pid N)").  Returns 0 or an INFINI_E* code with err set. */
int srv_claim(struct infinid *d, char *err, size_t errlen);
/* srv_start opens the socket, listens on every URL of the listen setting
 * and starts serving: 0 or an INFINI_E* code with err set (call srv_stop
 * after a failure too). */
int srv_start(struct infinid *d, char *err, size_t errlen);
/* srv_stop lets replies in flight go out (for at most 2 s), closes the
 * socket and frees the contexts. */
void srv_stop(struct infinid *d);

#endif /* INFINI_SRV_H */
