/*
 * node_internal.h - what the daemon's files share (node/node*.c, api*.c,
 * forward.c, watch.c, view.c).
 */
#ifndef INGOT_NODE_NODE_INTERNAL_H
#define INGOT_NODE_NODE_INTERNAL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/mp.h"
#include "node/sm/cmd.h"
#include "node/config.h"
#include "node/node.h"
#include "node/sm/sm.h"
#include "raft/consensus.h"
#include "rpc/client.h"
#include "rpc/server.h"
#include "storage/records.h"
#include "storage/store.h"

/* The result of one apply, handed from the apply callback to the proposer. */
struct node_result {
	int code;
	char message[ING_ERROR_MSG_MAX];
	size_t len;
	char value[]; /* msgpack value, len bytes */
};

/* A request waiting for a (ready) leader, or for a forward to be retried. */
struct node_parked {
	struct rpc_call *call;
	uint64_t deadline_ms;
	struct node_parked *next;
};

struct node_watch;
struct node_mchange;
struct node_mtransfer;
struct mreq;
#define NODE_MAX_MREQS 4

/* deadline.c: active jobs with a deadline the leader tracks (at most). */
#define NODE_DEADLINE_CAP 4096

struct node {
	uv_loop_t *loop;
	struct node_config cfg;
	struct store *store;
	struct sm *sm;
	struct cons *cons;
	struct rpc_server *api;
	uv_prepare_t flush;    /* commits the apply batch once per loop iteration */
	uv_timer_t park_timer; /* re-dispatches parked requests */
	enum cons_role role;
	uint64_t leader_id;
	uint64_t term;
	struct node_parked *parked;
	struct rpc_client *fwd; /* connection to the leader's API */
	uint64_t fwd_leader;    /* leader id fwd points at */
	unsigned fwd_inflight;  /* requests forwarded over fwd, not answered yet */
	/* The connection to the previous leader, kept until the requests
	 * forwarded over it are answered (forward.c). */
	struct rpc_client *fwd_old;
	unsigned fwd_old_inflight;
	struct node_watch *watches;
	uint64_t unpark_deadline_ms; /* while unparking: the call's first deadline */
	struct {
		uint64_t id;
		struct rpc_client *client;
	} peer_clients[32]; /* for status: node.info of each member */
	unsigned npeer_clients;
	/* scheduler.c (leader) */
	bool sched_full;          /* capacity changed: a full pass over the queue is due */
	uint8_t sched_cursor[80]; /* queue key the current full pass resumes at */
	uint32_t sched_cursor_len;
	uint64_t sched_new[512]; /* jobs submitted since the last round */
	unsigned nsched_new;
	uint64_t sched_wake_ms; /* a backed-off job becomes placeable then (0: none) */
	char sched_last_tenant[ING_NAME_MAX + 1]; /* served last: the turn goes on after it */
	uint32_t sched_last_tenant_len;
	unsigned sched_inflight; /* assignments proposed, not yet applied */
	struct {
		uint64_t job;
		char reason[160];
	} waiting[256]; /* why queued jobs could not be placed (ring) */
	unsigned nwaiting;
	/* deadline.c (leader): (deadline, job) of active jobs, latest first */
	struct {
		uint64_t at_ms;
		uint64_t job;
	} dl[NODE_DEADLINE_CAP];
	unsigned ndl;
	bool dl_rebuild;         /* a scan of the queue and assignments is due */
	uint64_t dl_dropped_min; /* earliest deadline not tracked (list was full) */
	uint64_t dl_scan_ms;     /* time of the last scan */
	/* liveness.c: heartbeats (not through the log) and down/up decisions */
	uv_timer_t liveness_timer;
	uint64_t leader_since_ms;
	struct {
		uint64_t id;
		uint64_t last_ms;
		bool proposing;
	} seen[64];
	unsigned nseen;
	struct rpc_client *self_client; /* this node's own API: its writes, forwarded */
	struct rpc_client
	    *hb_peers; /* the other members' APIs: heartbeats while no leader is known */
	bool registered;
	/* worker.c */
	struct node_attempt *attempts;
	bool worker_dirty; /* applied entries since the worker last looked */
	struct {
		uint64_t job;
		uint32_t attempt;
		bool marker; /* its started marker is still on disk */
	} ended[64];         /* attempts that ended here lately (ring) */
	unsigned nended;
	uint64_t worker_run; /* this run of the worker (in report request ids) */
	bool markers_swept;  /* leftover started markers removed (first poll) */
	/* member.c */
	uv_timer_t member_timer;          /* catch-up polls, self-healing, removal checks */
	uv_timer_t member_retry;          /* join retries */
	struct node_mchange *mchange;     /* leader: the membership change running */
	struct node_mtransfer *mtransfer; /* leader: the leadership transfer running */
	uint64_t previous_leader;         /* the last other leader this node knew */
	bool joining;                     /* --join: not admitted yet */
	uint64_t join_deadline_ms;
	bool removal_checking;
	uint64_t leaderless_since_ms; /* campaigning or no leader known since */
	uint64_t removal_checked_ms;
	struct mreq *mreqs[NODE_MAX_MREQS]; /* outgoing check/join/leave requests */
	bool leaving;
	uint64_t leave_deadline_ms;
	bool stopping;
	int failed;
	unsigned open_handles;
	void (*stopped)(void *data, int status);
	void *stopped_data;
};

/* probe.c: adds probed toolchains and CPU facts to the worker's caps/labels. */
void node_probe(struct node_config *c);

/* node.c */
uint64_t node_now_ms(void);
/* Flushes the apply batch; a failure is fatal for the node. */
int node_flush(struct node *n);
void node_fatal(struct node *n, int code, const char *what);
/* Counts a resource that will be released asynchronously (a closing
 * client) / its release; the node frees itself when the last one goes. */
void node_hold(struct node *n);
void node_release(void *node);
/* API address of member `id` ("" when unknown), from the members table or
 * the configured peers. */
void node_member_api_address(struct node *n, uint64_t id, char out[NODE_ADDRESS_MAX]);

/* api.c: the operations (docs/api.md). */
void node_api_handle(void *data, struct rpc_call *call);
/* Runs a call now if this node can serve it, else forwards or parks it. */
void node_api_dispatch(struct node *n, struct rpc_call *call);
/* Proposes a command; the reply goes to call (NULL: nobody). */
int node_propose(struct node *n, struct rpc_call *call, const struct cmd *c);
/* Proposes a command of the leader's own (scheduler, liveness); done (may
 * be NULL) runs once with the status and the apply result (borrowed).
 * Returns non-zero (and done never runs) when it could not be proposed. */
typedef void (*node_proposed_cb)(struct node *n, int status, const struct node_result *r,
                                 void *data);
int node_propose_internal(struct node *n, const struct cmd *c, node_proposed_cb done, void *data);

/* forward.c: forwarding to the leader and parking. */
void node_forward(struct node *n, struct rpc_call *call);
void node_park(struct node *n, struct rpc_call *call);
/* Re-dispatches parked calls (after a role change); expires old ones. */
void node_unpark(struct node *n);
void node_forward_close(struct node *n);

/* status.c */
void node_status_start(struct node *n, struct rpc_call *call);
void node_status_close(struct node *n);

/* scheduler.c */
/* Notes an applied command that may let queued jobs be placed: a submit
 * (job: its id) or a change of capacity or eligibility. */
void node_sched_note(struct node *n, uint32_t cmd_type, uint64_t job);
/* Runs a scheduling round if one is due (after a flush, leader only). */
void node_sched_maybe_run(struct node *n);
/* Why job `id` is still queued, or NULL. */
const char *node_sched_reason(struct node *n, uint64_t id);

/* liveness.c */
int node_liveness_start(struct node *n);
void node_liveness_stop(struct node *n);
/* Leader: a heartbeat from node `id`. */
void node_liveness_seen(struct node *n, uint64_t id);
/* Leader: became ready (fresh grace period for every node). */
void node_liveness_leader(struct node *n);

/* deadline.c */
/* Leader: became ready (the tracked deadlines are rebuilt on the next tick). */
void node_deadline_leader(struct node *n);
/* Apply path: a job_submit or job_retry queued `job` with this deadline. */
void node_deadline_note(struct node *n, uint64_t job, uint64_t deadline_at_ms);
/* Leader tick: proposes job_expire for the jobs whose deadline passed. */
void node_deadline_tick(struct node *n);

/* worker.c */
/* After a flush: start attempts assigned to this node, stop fenced or
 * cancelled ones. */
void node_worker_poll(struct node *n);
void node_worker_stop_all(struct node *n);
/* At start: kills process groups left by a previous run of this node and
 * removes their directories. */
void node_worker_reap(struct node *n);

/* liveness.c: when node `id` last heartbeated to this leader (0: never). */
uint64_t node_liveness_last_ms(struct node *n, uint64_t id);

/* member.c (docs/api.md "Membership") */
int node_member_start(struct node *n);
void node_member_stop(struct node *n);
/* Leader: became ready; previous: the leader before it (0: unknown). */
void node_member_leader(struct node *n, uint64_t previous);
/* Leader: brings the members table in line with the Raft configuration. */
void node_member_reconcile(struct node *n);
/* The cluster id from the store ("" when not named yet). */
void node_cluster_id(struct node *n, char out[CMD_CLUSTER_ID_LEN + 1]);
/* ING_EINVAL with a message when data_dir holds a removed node's marker. */
int node_member_check_marker(const char *data_dir, uint64_t id, struct ing_error *e);
void node_op_member_add(struct node *n, struct rpc_call *call);
void node_op_member_promote(struct node *n, struct rpc_call *call);
void node_op_member_demote(struct node *n, struct rpc_call *call);
void node_op_member_remove(struct node *n, struct rpc_call *call);
void node_op_member_transfer(struct node *n, struct rpc_call *call);
void node_op_member_check(struct node *n, struct rpc_call *call);
/* Milliseconds a forwarded call of `op` may take (membership ops wait for
 * catch-up). */
unsigned node_api_call_timeout_ms(struct node *n, struct ing_str op);

/* watch.c */
int node_watch_start(struct node *n, struct rpc_call *call, uint64_t job);
/* After each flush: push new events, end finished watches. */
void node_watch_poll(struct node *n);
void node_watch_close_all(struct node *n);

/* view.c: records as API objects (msgpack maps, docs/api.md). */
/* `waiting`: why a queued job is not placed yet (NULL: none known). */
void view_job(msgpack_packer *pk, const struct rec_job *j, bool full, const char *waiting);
void view_node(msgpack_packer *pk, const struct rec_node *nd);
void view_target(msgpack_packer *pk, const struct rec_target *t);
void view_event(msgpack_packer *pk, uint32_t seq, const struct rec_event *ev);
void view_key(msgpack_packer *pk, const char *key);

#endif
