/*
 * placement.h - where one queued job can run: the leader's choice of a node
 * and of the GPUs on it, from the nodes' records and what the scheduling
 * round has already given out, or the reason it cannot run yet.  Pure: no
 * store, no loop, no clock, so the unit tests drive it directly
 * (tests/unit/node/leader/test_placement.c); node/leader/scheduler.c
 * proposes the choice as a job_assign.
 */
#ifndef INGOT_NODE_LEADER_PLACEMENT_H
#define INGOT_NODE_LEADER_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/records.h"

/* A node as one round sees it. */
struct place_node {
	const struct rec_node *rec; /* borrowed: lives as long as the round */
	uint32_t used;              /* attempts it holds, as this round counts them */
	uint32_t ahead;             /* attempts it may hold beyond its slots */
	uint32_t free_slots;        /* slots not in use nor given out this round */
	uint32_t free_ahead;        /* places beyond the slots, likewise */
	uint64_t free_gpus;         /* bit i: GPU i offered, not held, not given out */
	uint64_t offered_gpus;      /* bit i: GPU i offered */
	/* Not heard from by this leader lately (place_node_silence): not live,
	 * whatever its record says. */
	bool silent;
};

/* Why a queued job waits, in categories: the `reason` label of the
 * metric ingot_scheduler_unplaceable_jobs (docs/operations.md "Metrics"). */
enum place_wait {
	PLACE_WAIT_BACKOFF,      /* its last attempt was lost: retry backoff (the scheduler's) */
	PLACE_WAIT_NO_LIVE_NODE, /* no live, non-draining node at all */
	PLACE_WAIT_NO_MATCH,     /* no node with the target's capabilities, labels or GPU count */
	PLACE_WAIT_GPUS_BUSY,    /* nodes that could run it, too few free GPUs */
	PLACE_WAIT_BUSY,         /* nodes that could run it, no free slot */
	PLACE_WAIT_COUNT
};

/* "retry_backoff", "no_live_node", "no_matching_node", "gpus_busy", "busy";
 * "unknown" for anything else. */
const char *place_wait_name(int wait);

/* What place_pick chose, or why it could not. */
struct place_choice {
	unsigned node; /* index into the nodes array */
	bool ahead;    /* a place beyond the node's slots: the job waits there for one */
	uint32_t ngpus;
	uint32_t gpus[ING_MAX_GPUS]; /* ascending */
	enum place_wait wait;        /* set when place_pick returns ING_ENOTFOUND, only */
};

/*
 * Sets pn from rec (borrowed): free slots and places ahead (none when the
 * node is down or draining, or has no slot), offered and free GPUs; not
 * silent.  `ahead`: how many attempts the node may hold beyond its slots
 * (the leader's assign_ahead; 0: none).
 */
void place_node_init(struct place_node *pn, const struct rec_node *rec, uint32_t ahead);

/* The node holds `delta` attempts more (an assignment in flight: 1) or
 * fewer (an end being proposed: -1) than its record says; its free slots
 * and places ahead follow. */
void place_node_adjust(struct place_node *pn, int delta);

/*
 * The leader has not heard pn's heartbeat lately (or not since it became
 * leader): the node counts as not live, though its record is not marked
 * down yet (a node that died with the previous leader stays "up" in the
 * state for node_down_after_ms), so it gets no work and no free slot.
 */
void place_node_silence(struct place_node *pn);

/*
 * Chooses where a job of target t runs: among the live (not down, not
 * silent), non-draining nodes with t's capabilities and labels, those with
 * a free slot and at least
 * rec_target_gpus(t) free GPUs.  A job that needs GPUs goes to the one with
 * the fewest free GPUs (best fit, so large blocks stay whole for jobs that
 * need many), then the most free slots; one that needs none to the most
 * free slots, then the fewest free GPUs (GPU nodes stay free for GPU jobs).
 * Ties go to the first node.  On it the job takes the lowest-numbered free
 * GPUs.  When no node has a free slot and `ahead` is set (the caller's
 * judgement: a job that needs no GPU, of a target whose attempts are short)
 * the job may wait on a node for one: the fitting node with the most
 * places ahead free (out->ahead), the first on a tie.
 *
 * Returns 0 with *out filled, or ING_ENOTFOUND with the category in
 * out->wait and why in reason (cap bytes, NUL-terminated), one of:
 *   "no live, non-draining node has capability 'nvcc' (target 't')" (and the
 *   other messages of a capability, label or liveness that no node has),
 *   "needs 2 GPUs: none of the nodes that can run target 't' (nodes 1, 3)
 *   has a GPU", "needs 4 GPUs: the nodes that can run target 't' offer at
 *   most 2 (nodes 1, 3)", "needs 1 GPU, none free on nodes 2, 3", "needs 2
 *   GPUs, fewer than 2 free on node 2", "all 2 nodes that can run target
 *   't' are busy".
 */
int place_pick(const struct rec_target *t, const struct place_node *nodes, unsigned n, bool ahead,
               struct place_choice *out, char *reason, size_t cap);

/*
 * How many jobs of target t could be placed now, at most: over the nodes
 * that fit t, their free slots (and, when t needs G GPUs, at most their free
 * GPUs / G each), plus their places ahead when `ahead` is set and t needs
 * no GPU.  0 exactly when place_pick would find nothing.
 */
unsigned place_room(const struct rec_target *t, const struct place_node *nodes, unsigned n,
                    bool ahead);

/* Takes the chosen slot (or place ahead) and GPUs out of nodes[c->node],
 * once proposed. */
void place_take(struct place_node *nodes, const struct place_choice *c);

#endif
