/*
 * api_internal.h - what the files of node/api/ share: the handlers of each
 * noun (listed in the op table of ops.c), replies and reads, the write path.
 *
 * A handler runs where the request is served (ops.c decides: locally, on
 * the ready leader after a barrier, or after forwarding); it checks every
 * argument before it changes anything, and replies exactly once, now or
 * later (a write replies when its entry is applied).
 */
#ifndef INGOT_NODE_API_API_INTERNAL_H
#define INGOT_NODE_API_API_INTERNAL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "node/api/api.h"
#include "node/api/args.h"
#include "node/api/view.h"
#include "node/auth/principal.h"
#include "node/core.h"
#include "node/sm/cmd.h"
#include "rpc/server.h"
#include "storage/store.h"
#include "storage/target_memo.h"

/* A request waiting for a (ready) leader, or for a forward to be retried. */
struct api_parked {
	struct rpc_call *call;
	uint64_t deadline_ms;
	struct api_parked *next;
};

struct api_watch;
struct api_auth;

/* The module's state (api.h), shared by its files. */
struct api {
	struct node *n;
	struct api_auth *auth; /* auth.c */
	/* forward.c */
	struct api_parked *parked;
	uv_timer_t park_timer; /* re-dispatches parked requests */
	bool park_timer_open;
	uint64_t unpark_deadline_ms; /* while unparking: the call's first deadline */
	/* watch.c */
	struct api_watch *watches;
	/* jobs.c: target records decoded by earlier submits' checks */
	struct rec_target_memo *targets;
	uint64_t targets_epoch;    /* one per check */
	msgpack_zone *submit_zone; /* a submit's arguments, cleared after it (NULL: none) */
	bool submit_zone_busy;
};

/* ---- who asks, and may they (auth.c, ops.c) ------------------------------ */

/* Loads auth.jwt's keys, makes the rate limiter.  Errors as api_new. */
int api_auth_new(const struct node_config *cfg, struct api_auth **out, struct ing_error *e);
void api_auth_free(struct api_auth *au);
/* Who sent call (auth.c's rules), without side effects: 0 and *p, or
 * ING_EUNAUTHENTICATED with e saying what is wrong with the credential,
 * or another error (the store could not be read). */
int api_principal_of(struct api *a, const struct rpc_call *call, struct auth_principal *p,
                     struct ing_error *e);
/* Authenticates call, attaches the principal to it and charges its rate
 * limit (once per call).  NULL when refused (replied: unauthenticated,
 * rate_limited, or an error reading the tokens).  *unknown: the call
 * carries a well-formed ingot token this node does not know (kind none
 * returned): only the leader can refuse it (api_refuse_unknown replies
 * unauthenticated). */
const struct auth_principal *api_authenticate(struct api *a, struct rpc_call *call, bool *unknown);
void api_refuse_unknown(struct api *a, struct rpc_call *call);
/* The principal of an authenticated call (kind none before). */
const struct auth_principal *api_caller(const struct rpc_call *call);
/* For a forward of call: true and out = the principal's name when the
 * leader must be told whom it is for (on_behalf: a client certificate with
 * a role, a proven node, and no token), else false. */
bool api_call_on_behalf(const struct rpc_call *call, char *out, size_t cap);
/* Whether p may call operation `name` with args (the op table's need and
 * nodes columns): 0, or ING_EUNAUTHENTICATED (no credential),
 * ING_EDENIED (known, without the right), ING_EINVAL (unknown
 * operation), with e saying what is missing. */
int api_op_permit(const struct auth_principal *p, struct ing_str name, const msgpack_object *args,
                  struct ing_error *e);
/* Counts and logs a refusal (e->code unauthenticated or permission
 * denied) and replies it. */
void api_refuse(struct api *a, struct rpc_call *call, const struct ing_error *e);
/* For a write about job `id` by a tenant's principal: 0 when the job is
 * its tenant's, else replied (not_found) and non-zero.  0 at once for a
 * principal that sees every tenant. */
int api_job_visible(struct node *n, struct rpc_call *call, uint64_t id);
/* enum rec_token_role of a client role. */
uint8_t api_token_role(enum auth_role r);

/* ---- forwarding and parking (forward.c) -------------------------------- */

/* Relays call to the leader this node knows and relays its reply. */
void api_forward(struct api *a, struct rpc_call *call);
/* Whether a request for `op` may wait parked for a leader.  A heartbeat
 * may not: taken late by a new leader, it would count as heard from a node
 * that may have died since it was sent (issue 11 item 4). */
bool api_op_parkable(struct ing_str op);
/* Parks call until the next role change (or the park tick); its deadline
 * is request_timeout_ms from when it first waited.  A call whose op is not
 * parkable is answered `unavailable` instead. */
void api_park(struct api *a, struct rpc_call *call);
/* Dispatches every parked call again; expired ones are answered. */
void api_unpark(struct api *a);

/* ---- watches (watch.c) --------------------------------------------------- */

/* Starts a watch of job `job` for call (which it answers, now or later). */
void api_watch_start(struct api *a, struct rpc_call *call, uint64_t job);
/* Pushes new events, ends finished watches. */
void api_watch_poll(struct api *a);
/* Answers every watch `unavailable`. */
void api_watch_close_all(struct api *a);

/* ---- status (status.c) --------------------------------------------------- */

/* `status`: asks every member for node.info, then replies. */
void api_status_start(struct node *n, struct rpc_call *call);

/* ---- replies and reads (reply.c) ---------------------------------------- */

/* Replies with the encoded o (or no_memory when encoding failed); frees o. */
void api_reply_out(struct rpc_call *call, struct mp_out *o);
void api_reply_err(struct rpc_call *call, const struct ing_error *e);
/* Opens a read transaction on fully flushed state, or replies an error
 * (returned). */
int api_read_begin(struct node *n, struct rpc_call *call, struct store_txn **t);
/* A record of `what` does not decode: replies `corrupt` and stops the node
 * (node_fatal).  Returns ING_ECORRUPT. */
int api_corrupt_reply(struct node *n, struct rpc_call *call, const char *what);
/* Loads job `id` in t (zone z holds its views) if the caller may see it
 * (its tenant's, auth_sees_tenant); replies not_found ("job N does not
 * exist", the same for another tenant's job as for a missing one), the
 * read error or corrupt itself and returns non-zero. */
int api_load_job(struct node *n, struct rpc_call *call, struct store_txn *t, uint64_t id,
                 msgpack_zone *z, struct rec_job *j);
/* Views one record of a table into pk; non-zero when it does not decode. */
typedef int (*api_view_record_fn)(msgpack_packer *pk, struct ing_str val, msgpack_zone *z);
/* Replies with every record of `tbl` as an array, in key order (arguments:
 * `stale` only). */
void api_list_table(struct node *n, struct rpc_call *call, enum store_table tbl,
                    api_view_record_fn view, const char *what);
/* The same, one page at a time, for a table keyed by names: arguments
 * `stale`, `after` (names greater than it) and `limit` (at most this many,
 * 1..1000); a page also ends before its reply would pass half of
 * max_frame_bytes (but holds at least one record).  An empty page is the
 * end; the next page is asked for with `after` = the last name. */
void api_list_table_paged(struct node *n, struct rpc_call *call, enum store_table tbl,
                          api_view_record_fn view, const char *what);

/* ---- writes (write.c) ---------------------------------------------------- */

/* Shapes of write results (docs/api.md). */
enum api_shape { SHAPE_NONE, SHAPE_ID, SHAPE_TARGET, SHAPE_JOB_STATE };

/* A command of `type` with every field zero and no request id. */
struct cmd api_new_cmd(uint32_t type);
/* Proposes c for call (node/propose.h) and replies with its result in
 * `shape` (SHAPE_TARGET names `name`, SHAPE_JOB_STATE job `id`).  c gets the
 * call's request id when it has none.  A node that is not the leader any
 * more parks the call.  Replies itself on every failure; returns 0 or the
 * error it replied. */
int api_propose(struct node *n, struct rpc_call *call, struct cmd *c, enum api_shape shape,
                uint64_t id, struct ing_str name);

/* ---- handlers, one file per noun ----------------------------------------- */

typedef void (*api_op_fn)(struct node *n, struct rpc_call *call);

/* targets.c */
void api_op_target_put(struct node *n, struct rpc_call *call);
void api_op_target_get(struct node *n, struct rpc_call *call);
void api_op_target_list(struct node *n, struct rpc_call *call);
void api_op_target_delete(struct node *n, struct rpc_call *call);
/* jobs.c */
void api_op_job_submit(struct node *n, struct rpc_call *call);
void api_op_job_get(struct node *n, struct rpc_call *call);
void api_op_job_list(struct node *n, struct rpc_call *call);
void api_op_job_cancel(struct node *n, struct rpc_call *call);
void api_op_job_retry(struct node *n, struct rpc_call *call);
void api_op_job_events(struct node *n, struct rpc_call *call);
void api_op_job_watch(struct node *n, struct rpc_call *call);
/* settings.c */
void api_op_settings_get(struct node *n, struct rpc_call *call);
void api_op_settings_set(struct node *n, struct rpc_call *call);
/* job_log.c */
void api_op_job_log(struct node *n, struct rpc_call *call);
/* log_level.c */
void api_op_node_log_level(struct node *n, struct rpc_call *call);
/* nodes.c */
void api_op_node_register(struct node *n, struct rpc_call *call);
void api_op_node_heartbeat(struct node *n, struct rpc_call *call);
void api_op_node_drain(struct node *n, struct rpc_call *call);
void api_op_node_undrain(struct node *n, struct rpc_call *call);
void api_op_node_forget(struct node *n, struct rpc_call *call);
void api_op_node_list(struct node *n, struct rpc_call *call);
/* reports.c */
void api_op_worker_report(struct node *n, struct rpc_call *call);
/* artifacts.c */
void api_op_artifact_get(struct node *n, struct rpc_call *call);
/* events.c */
void api_op_cluster_events(struct node *n, struct rpc_call *call);
/* status.c */
void api_op_node_info(struct node *n, struct rpc_call *call);
void api_op_status(struct node *n, struct rpc_call *call);
/* tokens.c */
void api_op_token_create(struct node *n, struct rpc_call *call);
void api_op_token_list(struct node *n, struct rpc_call *call);
void api_op_token_revoke(struct node *n, struct rpc_call *call);
/* audit.c */
void api_op_audit_list(struct node *n, struct rpc_call *call);

#endif
