/*
 * sm.h - the deterministic state machine: applies a command at a raft index
 * to the store.
 *
 * Determinism: sm_apply reads nothing but the command bytes, the index and
 * the store.  No clock (the command carries the leader's time), no random
 * numbers (ids come from counters in meta), no environment.  Any two nodes
 * that apply the same entries hold byte-identical tables.
 *
 * Outcome of one apply, in order:
 *   1. index <= the stored applied index: skipped, nothing changes
 *      (res->skipped).  This makes a restart replay nothing LMDB has.
 *   2. Otherwise the applied index is set to `index` in the same
 *      transaction, whatever follows.
 *   3. Bytes that do not decode: res->err holds the decode error, nothing
 *      else changes.
 *   4. A request id seen before: res gets the stored first result
 *      (res->deduped), nothing else changes.
 *   5. A command invalid for the current state (illegal transition, stale
 *      attempt, unknown target...): res->err holds the error, state
 *      unchanged.  Otherwise it is applied and res->value holds its result.
 * A rejected command is never a failure of apply: libraft stalls forever on
 * a failing apply.  sm_apply returns non-zero only when the node must stop:
 * the store itself failed (sticky), or the entry is a command type or
 * version this binary does not know (ING_EVERSION: written by a newer
 * ingot; skipping it would let this node diverge).  After a non-zero
 * return the batch transaction must be aborted, not committed.
 */
#ifndef INGOT_NODE_SM_SM_H
#define INGOT_NODE_SM_SM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/mp.h"
#include "storage/limits.h"
#include "storage/store.h"

/* Meta keys the state machine keeps beyond the store's own. */
#define SM_META_CLUSTER_ID     "cluster_id"     /* bytes: 32 hex digits, set once */
#define SM_META_CLUSTER_EVENTS "cluster_events" /* u64: next cluster event seq */

#define SM_JOB_NEW     0xff /* sm_job_change.from of a job the command created */
#define SM_MAX_CHANGES 16

/* One job state change made by an applied command (for metrics). */
struct sm_job_change {
	uint64_t job;
	uint8_t from;      /* enum rec_job_state, or SM_JOB_NEW */
	uint8_t to;        /* enum rec_job_state */
	uint64_t since_ms; /* when the job entered `from` (its updated_at then); 0 when new */
	char target[ING_NAME_MAX + 1];
	char tenant[ING_NAME_MAX + 1];
};

struct sm_result {
	struct ing_error err; /* code 0 on success */
	struct mp_out value;  /* msgpack result value, empty if none */
	uint32_t cmd_type;    /* type of the decoded command, 0 if it did not decode */
	bool skipped;         /* index already applied */
	bool deduped;         /* first result of this request id returned */
	/* An applied job_submit or job_retry: the job it queued and that job's
	 * deadline (0: none); both 0 otherwise.  For the leader's deadline
	 * tracking (node/leader/deadline.c), not part of the replicated result. */
	uint64_t job;
	uint64_t job_deadline_at_ms;
	/* What the command did to jobs, for metrics (node/http/metrics.c); not
	 * part of the replicated result either.  changes_lost: more than
	 * SM_MAX_CHANGES changes (the counts must be read again). */
	uint64_t time_ms; /* the command's time */
	struct sm_job_change changes[SM_MAX_CHANGES];
	unsigned nchanges;
	bool changes_lost;
	bool stage_finished; /* a stage_finish was applied, taking stage_duration_ms */
	uint64_t stage_duration_ms;
};

void sm_result_init(struct sm_result *r);
void sm_result_free(struct sm_result *r);

struct sm;

int sm_new(struct sm **out);
void sm_free(struct sm *sm);

/*
 * Applies the entry at `index` with payload buf[0..len) inside the write
 * transaction t.  res must have been initialised; it is reset first.
 * Returns 0 (the command's own outcome is in res) or the store's sticky
 * error (ING_EIO, ING_ENOSPACE, ING_ECORRUPT, ING_ENOMEM).
 */
int sm_apply(struct sm *sm, struct store_txn *t, uint64_t index, const void *buf, size_t len,
             struct sm_result *res);

/*
 * Results (res->value) by command, all msgpack:
 *   target_put: revision (uint)          target_delete: nil
 *   job_submit: job id (uint)            job_assign..job_expire: job state name (str)
 *   node_*: nil                          member_*: nil
 */

#endif
