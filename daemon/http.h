/*
 * http.h - the HTTP/JSON gateway (http.c, http_call.c, http_openai.c): a
 * second transport beside server.c, served by NNG's HTTP server, whose
 * calls go through the rpc layer like the socket's.  Called from main.c.
 */
#ifndef INFINI_HTTP_H
#define INFINI_HTTP_H

#include <stddef.h>

struct infinid;

/* http_prepare reads http_tokens_file (before the model loads, so a bad
 * file stops the daemon at once); http_start starts listening.  Both
 * return 0 (nothing to do when http_listen is empty) or an INFINI_E* code
 * with err set; http_stop answers what is still open and frees everything
 * (after sched_stop and sio_stop, which may still answer its calls; also
 * after a failed start). */
int http_prepare(struct infinid *d, char *err, size_t errlen);
int http_start(struct infinid *d, char *err, size_t errlen);
void http_stop(struct infinid *d);

#endif /* INFINI_HTTP_H */
