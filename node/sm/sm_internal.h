/*
 * sm_internal.h - what the state machine's files share (the .c files of node/sm/ only).
 *
 * Handler contract: a handler checks everything it needs BEFORE it writes
 * anything, so a rejected command leaves the state unchanged.  It returns 0
 * both when it applied the command and when it rejected it (sm_reject()
 * records the rejection in the result); a negative return is a failure of
 * the store, which is fatal for the node.
 */
#ifndef INGOT_NODE_SM_SM_INTERNAL_H
#define INGOT_NODE_SM_SM_INTERNAL_H

#include <msgpack.h>

#include "node/sm/cmd.h"
#include "node/sm/sm.h"
#include "storage/records.h"
#include "storage/store.h"
#include "storage/target_memo.h"

struct sm {
	msgpack_zone *zone; /* per-apply allocations, cleared before each apply */
	struct mp_out enc;  /* scratch for encoding records */
	/* Target records decoded by earlier applies (epoch: the index). */
	struct rec_target_memo *targets;
	char count_names[REC_JOB_STATE_COUNT][32]; /* meta jobs_<state> */
};

struct sm_ctx {
	struct sm *sm;
	struct store_txn *t;
	msgpack_zone *z;
	const struct cmd *c;
	uint64_t index;
	struct sm_result *res;
	/* Jobs loaded by this command and their state then (sm_job_change). */
	struct {
		uint64_t job;
		uint8_t state;
		uint64_t updated_at_ms;
	} loaded[SM_MAX_CHANGES];
	unsigned nloaded;
	/* Change of the stored job counts (meta jobs_<state>) by this command,
	 * written once when it is applied. */
	int64_t counts[REC_JOB_STATE_COUNT];
	/* The dedupe tables, read from meta dedupe_generation once per apply
	 * (lookup and store); a command that turns the generation clears
	 * dedupe_known so that the store reads it again. */
	bool dedupe_known;
	enum store_table dedupe_cur, dedupe_prev;
};

/* Records a rejection (code + message) in the result; returns 0. */
int sm_reject(struct sm_ctx *x, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Stores a result value: an unsigned integer, a string, or nil. */
void sm_result_uint(struct sm_ctx *x, uint64_t v);
void sm_result_str(struct sm_ctx *x, const char *s);
void sm_result_bytes(struct sm_ctx *x, struct ing_str s); /* as a str */

/* Loads return 0, ING_ENOTFOUND (not fatal), or a fatal error (a record
 * that does not decode is ING_ECORRUPT).  Saves return 0 or fatal. */
/* Puts the record encoded in sm->enc under key.  0 or fatal. */
int sm_put_encoded(struct sm_ctx *x, enum store_table tbl, struct ing_str key);
int sm_job_load(struct sm_ctx *x, uint64_t id, struct rec_job *out);
int sm_job_save(struct sm_ctx *x, const struct rec_job *j);
/* Notes that job id is created by this command (none stored before), so
 * that its first save need not look for an older record to count. */
void sm_job_note_new(struct sm_ctx *x, uint64_t id);
int sm_target_load(struct sm_ctx *x, struct ing_str name, struct rec_target *out);
int sm_target_save(struct sm_ctx *x, const struct rec_target *t);
/* Saves t, loaded by this command with sm_target_load and changed in
 * active_jobs alone (cheaper: the decoded record is kept).  0 or fatal. */
int sm_target_save_active(struct sm_ctx *x, const struct rec_target *t);
int sm_node_load(struct sm_ctx *x, uint64_t id, struct rec_node *out);
int sm_node_save(struct sm_ctx *x, const struct rec_node *n);

/* Ends the current attempt of an assigned/running job because it was lost
 * (node down, lease expired, requeue): requeued when attempts remain,
 * otherwise failed (cancelled if a cancel was pending).  Saves the job. */
int sm_job_lose_attempt(struct sm_ctx *x, struct rec_job *j, const char *why);

/* Appends a cluster event (job id 0 in the events table, numbered by the
 * meta counter "cluster_events") with the command's principal.  Once the
 * numbering is exhausted events stop and the change still stands. */
int sm_cluster_event_add(struct sm_ctx *x, uint8_t kind, uint64_t member, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Removes a final job and everything of it: its events, its inline
 * sources, its artifacts (sources, logs, outputs: a chunk no longer
 * referenced is freed), its finished entry.  0 or fatal. */
int sm_job_remove(struct sm_ctx *x, const struct rec_job *j);

/* Handlers, one per command type. */
int sm_target_put(struct sm_ctx *x);
int sm_target_delete(struct sm_ctx *x);
int sm_job_submit(struct sm_ctx *x);
int sm_job_assign(struct sm_ctx *x);
int sm_job_stage_start(struct sm_ctx *x);
int sm_job_stage_finish(struct sm_ctx *x);
int sm_job_finish(struct sm_ctx *x);
int sm_job_cancel(struct sm_ctx *x);
int sm_job_requeue(struct sm_ctx *x);
int sm_job_retry(struct sm_ctx *x);
int sm_job_expire(struct sm_ctx *x);
int sm_node_register(struct sm_ctx *x);
int sm_node_drain(struct sm_ctx *x);
int sm_node_down(struct sm_ctx *x);
int sm_node_up(struct sm_ctx *x);
int sm_node_forget(struct sm_ctx *x);
int sm_member_put(struct sm_ctx *x);
int sm_member_remove(struct sm_ctx *x);
int sm_cluster_init(struct sm_ctx *x);
int sm_cluster_event(struct sm_ctx *x);
int sm_token_create(struct sm_ctx *x);
int sm_token_revoke(struct sm_ctx *x);
int sm_setting_put(struct sm_ctx *x);
int sm_retention_run(struct sm_ctx *x);

#endif
