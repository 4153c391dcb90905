/*
 * deadline.h - the leader's enforcement of job deadlines.
 *
 * Owns: the (deadline, job) pairs of the active jobs that have a deadline,
 * sorted latest first (at most DEADLINES_CAP; the earliest are kept and
 * the earliest deadline dropped is remembered), whether a rebuild from the
 * store is due, and when the last one ran.  Nothing of it is replicated: a
 * new leader rebuilds.
 *
 * Pure parts (a store read transaction and a clock value in, commands out
 * through a callback) run alone in tests; deadlines_tick is the node's side
 * (the ready leader's heartbeat tick, node/bus.h).
 *
 * Errors: none are returned; a rebuild that cannot read the store is tried
 * again on the next tick.  Callbacks: `expire`, during deadlines_expire
 * only.
 */
#ifndef INGOT_NODE_LEADER_DEADLINE_H
#define INGOT_NODE_LEADER_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "node/core.h"
#include "storage/store.h"

#define DEADLINES_CAP       4096
#define DEADLINES_BATCH     256   /* expires proposed per tick at most */
#define DEADLINES_RESCAN_MS 10000 /* a dropped deadline forces a rebuild this often */

struct deadlines;

/* ING_ENOMEM, or 0 and *out. */
int deadlines_new(struct deadlines **out);
void deadlines_free(struct deadlines *d);

/* This node became the ready leader: the list is rebuilt on the next tick. */
void deadlines_leader(struct deadlines *d);
/* (Ready leader) an applied job_submit or job_retry queued `job` with this
 * deadline.  Ignored while a rebuild is due (it will see the job). */
void deadlines_note(struct deadlines *d, uint64_t job, uint64_t deadline_at_ms);
/* True when deadlines_rebuild should run before deadlines_expire at now_ms:
 * after becoming leader, or when a deadline that did not fit has passed
 * (at most once every DEADLINES_RESCAN_MS). */
bool deadlines_rebuild_due(const struct deadlines *d, uint64_t now_ms);
/* Rebuilds the list from the queue and assignments tables of t (jobs not
 * final with a deadline). */
void deadlines_rebuild(struct deadlines *d, struct store_txn *t, uint64_t now_ms);

/* Proposes job_expire for `job`; 0 when proposed. */
typedef int (*deadlines_expire_fn)(void *data, uint64_t job, uint64_t deadline_at_ms);
/* Pops the deadlines due at now_ms (at most DEADLINES_BATCH) and hands each
 * to `expire`; one that is refused goes back and ends this call. */
void deadlines_expire(struct deadlines *d, uint64_t now_ms, deadlines_expire_fn expire, void *data);

/* The node's side: a rebuild when due (on flushed state), then the expires,
 * proposed; a proposal that fails later puts the job back, due at once. */
void deadlines_tick(struct deadlines *d, struct node *n);

#endif
