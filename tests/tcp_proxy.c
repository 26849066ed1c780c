/*
 * tcp_proxy.c - a cuttable TCP relay for partition tests (tcp_proxy.h):
 * one thread, poll(2) over the listener and every pair of sockets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_proxy.h"

#define TP_PAIRS 64

struct tproxy {
	pthread_t th;
	int lfd, to;
	atomic_bool cut, stop;
	bool was_cut;
	int a[TP_PAIRS], b[TP_PAIRS];   /* client side, upstream side; -1 */
};

static void
close_pair(struct tproxy *p, int i)
{
	close(p->a[i]);
	close(p->b[i]);
	p->a[i] = p->b[i] = -1;
}

static void
accept_one(struct tproxy *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)p->to),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = accept(p->lfd, NULL, NULL), u, i;

	if (c < 0)
		return;
	for (i = 0; i < TP_PAIRS && p->a[i] >= 0; i++)
		;
	if (i == TP_PAIRS || (u = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		close(c);
		return;
	}
	if (connect(u, (void *)&sa, sizeof(sa)) != 0) {
		close(u);
		close(c);
		return;
	}
	p->a[i] = c;
	p->b[i] = u;
}

/* relay moves what from has to to; false when either side is done. */
static bool
relay(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n <= 0)
		return (false);
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w <= 0)
			return (false);
		off += w;
	}
	return (true);
}

static void *
run(void *arg)
{
	struct tproxy *p = arg;
	struct pollfd pf[1 + 2 * TP_PAIRS];

	while (!atomic_load(&p->stop)) {
		bool cut = atomic_load(&p->cut);
		int n = 0;
		if (p->was_cut && !cut)
			for (int i = 0; i < TP_PAIRS; i++)
				if (p->a[i] >= 0)
					close_pair(p, i);
		p->was_cut = cut;
		if (cut) {
			usleep(20 * 1000);   /* silence: nothing moves */
			continue;
		}
		pf[n++] = (struct pollfd){ .fd = p->lfd, .events = POLLIN };
		for (int i = 0; i < TP_PAIRS; i++)
			if (p->a[i] >= 0) {
				pf[n++] = (struct pollfd){ .fd = p->a[i],
				    .events = POLLIN };
				pf[n++] = (struct pollfd){ .fd = p->b[i],
				    .events = POLLIN };
			}
		if (poll(pf, (nfds_t)n, 20) <= 0)
			continue;
		/* Cut while waiting: what arrived stays unread. */
		if (atomic_load(&p->cut))
			continue;
		if (pf[0].revents & POLLIN)
			accept_one(p);
		for (int k = 1; k < n; k += 2) {
			int i;
			for (i = 0; i < TP_PAIRS && p->a[i] != pf[k].fd; i++)
				;
			if (i == TP_PAIRS)
				continue;    /* accepted during this round */
			if (((pf[k].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !relay(p->a[i], p->b[i])) ||
			    ((pf[k + 1].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !relay(p->b[i], p->a[i])))
				close_pair(p, i);
		}
	}
	return (NULL);
}

int
tproxy_start(int to, int *port, struct tproxy **out)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct tproxy *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return (-1);
	p->to = to;
	for (int i = 0; i < TP_PAIRS; i++)
		p->a[i] = p->b[i] = -1;
	if ((p->lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    bind(p->lfd, (void *)&sa, sizeof(sa)) != 0 ||
	    listen(p->lfd, 16) != 0 ||
	    getsockname(p->lfd, (void *)&sa, &sl) != 0 ||
	    pthread_create(&p->th, NULL, run, p) != 0) {
		if (p->lfd >= 0)
			close(p->lfd);
		free(p);
		return (-1);
	}
	*port = ntohs(sa.sin_port);
	*out = p;
	return (0);
}

void
tproxy_cut(struct tproxy *p, bool cut)
{
	atomic_store(&p->cut, cut);
}

void
tproxy_stop(struct tproxy *p)
{
	if (p == NULL)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->th, NULL);
	for (int i = 0; i < TP_PAIRS; i++)
		if (p->a[i] >= 0)
			close_pair(p, i);
	close(p->lfd);
	free(p);
}
