/*
 * liveness.h - the leader's view of which nodes are alive, and its down/up
 * decisions.
 *
 * Owns: the time this leader last heard each node's heartbeat (at most
 * LIVENESS_MAX_NODES nodes; others are not tracked and never declared
 * down), the moment it became the ready leader (the grace period's start),
 * and which nodes have a decision in flight.  Nothing of it is replicated:
 * heartbeats do not go through the log.  A new leader knows nobody's last
 * heartbeat, so it counts every node as heard from when it became ready: a
 * full grace period before any decision to declare a node down.  Placing
 * work is another matter: the scheduler uses only nodes this leader has
 * itself heard from (liveness_last_ms), so a node that died with the old
 * leader gets no new work meanwhile.
 *
 * The decision (liveness_check) reads one store read transaction and a
 * clock value and hands each command to a callback, so it runs alone in
 * tests; liveness_tick is the node's side (the ready leader's heartbeat
 * tick, node/bus.h), proposing through node/propose.h.
 *
 * Errors: none are returned; a check that cannot read the store does
 * nothing until the next tick.  Callbacks: `propose`, during
 * liveness_check only.
 */
#ifndef INGOT_NODE_LEADER_LIVENESS_H
#define INGOT_NODE_LEADER_LIVENESS_H

#include <stdbool.h>
#include <stdint.h>

#include "node/core.h"
#include "node/sm/cmd.h"
#include "storage/store.h"

#define LIVENESS_MAX_NODES 64

struct liveness;

/* ING_ENOMEM, or 0 and *out. */
int liveness_new(struct liveness **out);
void liveness_free(struct liveness *l);

/* This node became the ready leader at now_ms: every node's grace period
 * starts now, and no decision is in flight. */
void liveness_leader(struct liveness *l, uint64_t now_ms);
/* A heartbeat from node `id` at now_ms.  Returns when this leader heard
 * it before (liveness_last_ms before this call), so the caller can tell a
 * node that just became usable for work (node/bus.h, heard). */
uint64_t liveness_seen(struct liveness *l, uint64_t id, uint64_t now_ms);
/* When node `id` last heartbeated to this leader (0: not since it became
 * the ready leader). */
uint64_t liveness_last_ms(const struct liveness *l, uint64_t id);

/* Proposes c; 0 when proposed.  `pending` (may be NULL) is a flag that is
 * true while the proposal is in flight: the callee clears it when the
 * proposal ends, applied or not (until then that node gets no new
 * decision). */
typedef int (*liveness_propose_fn)(void *data, const struct cmd *c, bool *pending);

struct liveness_env {
	uint64_t now_ms;
	unsigned down_after_ms;         /* node_config's node_down_after_ms */
	unsigned heartbeat_interval_ms; /* a down node heard within twice this is up */
	liveness_propose_fn propose;
	void *data;
};

/*
 * One check over the nodes table in t: a node not marked down and silent
 * for more than down_after_ms gets node_down ("no heartbeat for N ms"); a
 * node marked down and heard within two heartbeat intervals gets node_up;
 * a draining node past its drain deadline with slots in use gets a
 * job_requeue for each attempt still assigned to it.  A node with a
 * decision in flight is skipped.
 */
void liveness_check(struct liveness *l, struct store_txn *t, const struct liveness_env *env);

/* The node's side: liveness_check on a fresh read transaction, its
 * commands proposed (ready leader only). */
void liveness_tick(struct liveness *l, struct node *n);

#endif
