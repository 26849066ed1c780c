/*
 * scheduler.h - the scheduler (scheduler.c): the one thread that drives
 * the engine.  The rpc layer queues items on streams (or on the control queue) and the
 * scheduler finishes them through their item_ops with an error code or a
 * typed result; it never sees a wire message.  All calls take d->mu held,
 * except sched_start and sched_stop.
 */
#ifndef INFINI_SCHEDULER_H
#define INFINI_SCHEDULER_H

#include "state.h"

/* sched_start registers the streams saved under state_dir (spill_init) and
 * starts the thread: 0 or INFINI_ENOMEM. */
int sched_start(struct infinid *d);
/* sched_stop stops the thread after it has saved every stream with unsaved
 * work and answered what was still queued (UNAVAILABLE, with how far a
 * push got). */
void sched_stop(struct infinid *d);
/* sched_enqueue queues it (owned from here) on stream s (NULL: the control
 * queue of opens and restores) and wakes the scheduler. */
void sched_enqueue(struct infinid *d, struct stream *s, struct item *it);
/* sched_drop_pipe: the connection pipe has closed.  Its queued requests are
 * dropped unanswered (nothing more of them reaches the device; one in the
 * device now stops after its slice) and the generations it started are
 * cancelled.  Returns how many requests were dropped. */
int sched_drop_pipe(struct infinid *d, uint32_t pipe);

#endif /* INFINI_SCHEDULER_H */
