/*
 * scheduler.h - the leader's placement of queued jobs onto nodes.
 *
 * Owns: which jobs are new since the last round, whether a full pass over
 * the queue is due, the tenant served last, how many
 * assignments are proposed and not yet applied, the earliest time a
 * backed-off job may go, and why recent queued jobs, or whole targets,
 * could not be placed (bounded rings, for job.get).  Nothing of it is replicated: a new leader
 * starts with a full pass.
 *
 * The decision (sched_round) is separate from the node: it reads one store
 * read transaction and a clock value, and hands each assignment to a
 * callback, so it runs alone in tests.  sched_run is the node's side: on
 * the ready leader, when a round is due, one round whose assignments are
 * proposed (node/propose.h).  Assignments still in flight (proposed, not
 * yet applied) do not hold a round back: it counts their slots and GPUs as
 * taken and does not place their jobs again, so a slot freed while others
 * are being assigned is filled in the same flush.
 *
 * Errors: none are returned; a round that cannot read the store does
 * nothing and the next one tries again.  Callbacks: `assign`, during
 * sched_round only.
 */
#ifndef INGOT_NODE_LEADER_SCHEDULER_H
#define INGOT_NODE_LEADER_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "node/core.h"
#include "node/leader/placement.h"
#include "node/sm/cmd.h"
#include "storage/store.h"

struct sched;

/* ING_ENOMEM, or 0 and *out. */
int sched_new(struct sched **out);
void sched_free(struct sched *s);

/* An entry applied without error (node/bus.h): a submit (job: its id) makes
 * that job a candidate of the next round; a change of capacity or
 * eligibility (finish, requeue, retry, expire, node register/drain/down/up,
 * target put, and any command that ended a live attempt: `released`) makes
 * a full pass over the queue due. */
void sched_note(struct sched *s, uint32_t cmd_type, uint64_t job, bool released);
/* This node became the ready leader: a full pass is due. */
void sched_leader(struct sched *s);
/* A node became usable without a command (node/bus.h, heard: its first
 * heartbeat to this leader, or one after a silence): a full pass is due. */
void sched_node_heard(struct sched *s);
/* Why queued job `job` of target `target` was not placed in the last
 * rounds (its own reason, else its target's), or NULL.  Valid until the
 * next call that changes s. */
const char *sched_reason(const struct sched *s, uint64_t job, struct ing_str target);
/* How many queued jobs wait for each reason (enum place_wait): every
 * unfinished job of a target the last passes skipped whole (its record's
 * active_jobs: no walk of the queue), and the other queued jobs whose own
 * reason is remembered, counting only those still queued in t.  For the
 * metrics, which ask on the ready leader only (a former leader's reasons
 * are stale). */
void sched_unplaceable(const struct sched *s, struct store_txn *t,
                       unsigned counts[PLACE_WAIT_COUNT]);

/* Proposes one job_assign of a job queued since queued_ms (its updated_at);
 * 0 when it was proposed (an assignment is then in flight until
 * sched_assign_done), non-zero to leave the job queued. */
typedef int (*sched_assign_fn)(void *data, const struct cmd *c, uint64_t queued_ms);

/* When this leader last heard node `id`'s heartbeat (0: not since it
 * became the ready leader). */
typedef uint64_t (*sched_heard_fn)(void *data, uint64_t id);

struct sched_env {
	uint64_t now_ms;           /* the leader's clock */
	unsigned retry_backoff_ms; /* node_config's */
	sched_assign_fn assign;
	void *data;
	/* Work goes only to nodes this leader heard within silent_after_ms
	 * (node_down_after_ms): a node that died with the previous leader is
	 * not marked down for that long.  NULL: every node counts as heard. */
	sched_heard_fn heard;
	unsigned silent_after_ms;
	/* Assignments ahead of a free slot (node_config's assign_ahead and
	 * assign_ahead_max_ms): when no fitting node has a free slot, a job
	 * that needs no GPU, of a target whose attempts lately ran at most
	 * ahead_max_ms, may go to a node that holds fewer than its slots +
	 * ahead attempts, and waits there for a slot.  0: never. */
	unsigned ahead;
	unsigned ahead_max_ms;
};

/* True when a round would place something: jobs submitted since the last
 * one, or a full pass due (a backed-off job whose wait is over at now_ms
 * makes one due), and room for more assignments in flight. */
bool sched_due(struct sched *s, uint64_t now_ms);
/* One round over t (which holds every applied entry): the new jobs, and the
 * full pass when one is due.  Each placement goes to
 * env->assign; the waiting reasons of the jobs it looked at are updated. */
void sched_round(struct sched *s, struct store_txn *t, const struct sched_env *env);
/* Queue entries the last full pass read (the targets it skipped cost one
 * seek each and count none): for tests and the logs. */
unsigned sched_last_scanned(const struct sched *s);

/* The assignment of `job` handed to `assign` was applied or refused (or
 * its proposal failed): no longer in flight.  `refused` (by the state
 * machine: the round counted a slot or GPU the log did not have, e.g. an
 * end being proposed that was refused) makes a full pass due. */
void sched_assign_done(struct sched *s, uint64_t job, bool refused);

/* This leader proposed the end of live attempt `attempt` of job `job` (a
 * worker's last report: node/propose.c), whose last stage ran run_ms
 * (UINT64_MAX: not known; the rest of the attempt's run time is in the
 * job's record).  Until it is settled (applied,
 * refused or failed: sched_release_settled; or a round finds the attempt no
 * longer live), rounds count the attempt's slot as free on its node, so the
 * next job's assignment follows the end in the log instead of waiting for
 * it to commit: the state machine applies them in that order and re-checks
 * the slot.  An attempt that holds GPUs is not counted (they are free only
 * once the end applies).  A full pass becomes due. */
void sched_releasing(struct sched *s, uint64_t job, uint32_t attempt, uint64_t run_ms);
void sched_release_settled(struct sched *s, uint64_t job, uint32_t attempt);

/* The node's side (node/bus.h, flushed): runs a round when this node is the
 * ready leader and one is due. */
void sched_run(struct sched *s, struct node *n);

#endif
