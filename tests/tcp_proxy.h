/*
 * tcp_proxy.h - a TCP relay on a loopback port that a test can cut, to
 * partition one process from another without network namespaces (which
 * need privileges a CI container may not have).  Cut, it forwards nothing
 * and accepts nothing: peers see silence (their timeouts fire), as behind
 * a link that went down.  Healed, it drops the connections of the cut (they
 * lost bytes) and relays new ones.
 */
#ifndef TCP_PROXY_H
#define TCP_PROXY_H

#include <stdbool.h>

struct tproxy;

/* tproxy_start relays 127.0.0.1:*port (a free port, written there) to
 * 127.0.0.1:to on a thread of its own.  0 or -1. */
int tproxy_start(int to, int *port, struct tproxy **out);
/* tproxy_cut cuts (true) or heals (false) the link. */
void tproxy_cut(struct tproxy *p, bool cut);
/* tproxy_stop stops the thread, closes everything and frees p (NULL: no-op). */
void tproxy_stop(struct tproxy *p);

#endif /* TCP_PROXY_H */
