/*
 * retention.h - the leader's side of the data lifecycle: when a
 * retention_run is due, and proposing it.
 *
 * Owns: whether a retention_run is in flight, and whether the last one said
 * more jobs are due.  Nothing of it is replicated: the settings and what is
 * due are read from the store (node/sm/sm_retention.c applies the command,
 * at the time the leader puts in it, so every node removes the same rows).
 *
 * The decision (retention_due) reads one store read transaction and a clock
 * value, so it runs alone in tests; retention_tick is the node's side (the
 * ready leader's heartbeat tick, node/bus.h).
 *
 * Errors: none are returned; a tick that cannot read the store or propose
 * does nothing and the next one tries again.
 */
#ifndef INGOT_NODE_LEADER_RETENTION_H
#define INGOT_NODE_LEADER_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "node/core.h"
#include "storage/store.h"

/* Jobs one retention_run removes at most: a few milliseconds of apply. */
#define RETENTION_BATCH 1000

struct retention;

/* ING_ENOMEM, or 0 and *out. */
int retention_new(struct retention **out);
void retention_free(struct retention *r);

/*
 * Whether a retention_run at now_ms would do something: the dedupe
 * generation's window has passed since it last turned, or the oldest
 * finished job is older than the job retention (settings as stored, their
 * defaults when never set, 0: for ever).  0 and *due, or a store error.
 */
int retention_due(struct store_txn *t, uint64_t now_ms, bool *due);

/* The node's side: on the ready leader, when none is in flight and one is
 * due (on flushed state), proposes a retention_run of RETENTION_BATCH jobs;
 * when its result says more jobs are due, the next is proposed as soon as
 * it is applied, without waiting for a tick. */
void retention_tick(struct retention *r, struct node *n);

#endif
