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
#include "common/str.h"
#include "storage/limits.h"
#include "storage/records.h"
#include "storage/store.h"

/* Meta keys the state machine keeps beyond the store's own. */
#define SM_META_CLUSTER_ID     "cluster_id"     /* bytes: 32 hex digits, set once */
#define SM_META_CLUSTER_EVENTS "cluster_events" /* u64: next cluster event seq */
/* u64: the dedupe generation; even: table dedupe holds the current one and
 * dedupe_alt the previous one, odd: the other way round */
#define SM_META_DEDUPE_GENERATION "dedupe_generation"
/* u64: time_ms of the retention_run that last turned the generation */
#define SM_META_DEDUPE_ROTATED "dedupe_rotated_ms"
/* The settings (CMD_SETTING_*, meta u64) when never set: 7 days, 1 day. */
#define SM_DEFAULT_JOB_RETENTION_MS (7ull * 24 * 3600 * 1000)
#define SM_DEFAULT_DEDUPE_WINDOW_MS (24ull * 3600 * 1000)

/* ---- the queue table, as the scheduler reads it ------------------------ */

/* Key: target, 0x00, 100 - priority (1 byte), tenant, 0x00, job id (u64
 * BE); value: attempt (u32 BE), attempts lost since the last retry (u32
 * BE), the time the job was queued (u64 BE). */
#define SM_QUEUE_KEY_MAX     (ING_NAME_MAX + 1 + 1 + ING_NAME_MAX + 1 + 8)
#define SM_QUEUE_VALUE_BYTES 16

struct sm_queue_entry {
	struct ing_str target; /* views into the key */
	struct ing_str tenant;
	uint32_t priority;
	uint64_t job;
	uint32_t attempt;      /* of the job's last attempt, 0 before the first */
	uint32_t lost;         /* attempts lost since the last retry */
	uint64_t queued_at_ms; /* submit, requeue or retry */
};

/* Writes the key of a queued job into k. */
struct ing_str sm_queue_key(uint8_t k[SM_QUEUE_KEY_MAX], struct ing_str target, uint32_t priority,
                            struct ing_str tenant, uint64_t job);
/* Reads one entry of the queue table; false when it is not of this layout. */
bool sm_queue_parse(struct ing_str key, struct ing_str val, struct sm_queue_entry *out);

/* The dedupe tables of the current and the previous generation (meta
 * dedupe_generation): a request id's first result is in one of them.  0 or
 * a store error. */
int sm_dedupe_tables(struct store_txn *t, enum store_table *current, enum store_table *previous);

/* A setting's value (CMD_SETTING_*, its default when never set), read in
 * any transaction.  0 or a store error. */
int sm_setting(struct store_txn *t, const char *name, uint64_t *out);

/* The jobs in the store by state (meta STORE_META_JOBS_PREFIX + state name,
 * kept by apply and by the 6 -> 7 migration): a read of six meta values, whatever the number of
 * jobs.  0 or a store error. */
int sm_job_counts(struct store_txn *t, uint64_t out[REC_JOB_STATE_COUNT]);

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
	/* A live attempt ended (its slot and GPUs are free again): for the
	 * scheduler, not part of the replicated result. */
	bool released;
	/* What the command did to jobs, for metrics (node/http/metrics.c); not
	 * part of the replicated result either.  changes_lost: more than
	 * SM_MAX_CHANGES changes (the counts must be read again). */
	uint64_t time_ms; /* the command's time */
	struct sm_job_change changes[SM_MAX_CHANGES];
	unsigned nchanges;
	bool changes_lost;
	bool stage_finished; /* a stage_finish was applied, taking stage_duration_ms */
	uint64_t stage_duration_ms;
	/* Jobs a retention_run removed, by their (final) state. */
	uint32_t removed[REC_JOB_STATE_COUNT];
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
 *   setting_put: nil                     retention_run: [jobs removed (uint),
 *                                          more due (bool), dedupe turned (bool)]
 */

#endif
