/*
 * node.c - the daemon's core: wiring the store, the state machine, the
 * replicated log and the API server on one loop.
 *
 * Apply path: libraft calls node_apply for each committed entry, in order;
 * it runs sm_apply inside the store's open batch transaction and hands the
 * result to the local proposer, if any.  A uv_prepare handle commits the
 * batch once per loop iteration (before the loop blocks), so many applies
 * share one LMDB transaction and fsync.  Reads flush first, so they always
 * see every applied entry.  An entry is acknowledged to its client as soon
 * as it is applied: it is then committed in the Raft log on a majority,
 * and a crash before the batch commit replays it from the log.
 *
 * Failure: a store failure or an entry this binary does not understand is
 * fatal (node_fatal): the node stops serving, closes, and ingotd exits
 * non-zero.  It never serves from state it cannot trust.
 *
 * Leadership: requests that need the leader wait (parked, bounded) while
 * there is none or while a new leader's barrier has not committed
 * (CONS_LEADER); CONS_LEADER_READY serves them.  On becoming ready, the
 * leader names the cluster if nobody did, brings the members table in line
 * with the Raft configuration and records the leader change (member.c).
 */
#include "node/node.h"

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/node_internal.h"

uint64_t node_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- apply path --------------------------------------------------------- */

static int node_apply(void *data, uint64_t index, const void *buf, size_t len, void **result)
{
	struct node *n = data;
	struct store_txn *t;
	struct sm_result res;
	int rv;

	sm_result_init(&res);
	rv = store_batch_txn(n->store, &t);
	if (rv == 0)
		rv = sm_apply(n->sm, t, index, buf, len, &res);
	if (rv == 0)
		rv = store_batch_note(n->store);
	if (rv == 0 && !res.skipped) {
		uint64_t job = 0;
		if (res.cmd_type == CMD_JOB_SUBMIT && res.err.code == 0 && res.value.len > 0) {
			msgpack_zone z;
			msgpack_object o;
			size_t off = 0;
			msgpack_zone_init(&z, 64);
			if (msgpack_unpack(res.value.data, res.value.len, &off, &z, &o) ==
			        MSGPACK_UNPACK_SUCCESS &&
			    o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				job = o.via.u64;
			msgpack_zone_destroy(&z);
		}
		if (res.err.code == 0)
			node_sched_note(n, res.cmd_type, job);
		if (res.job != 0 && res.job_deadline_at_ms != 0)
			node_deadline_note(n, res.job, res.job_deadline_at_ms);
		n->worker_dirty = true;
		struct node_result *r = malloc(sizeof(*r) + res.value.len);
		if (r == NULL) {
			rv = ING_ENOMEM;
		} else {
			r->code = res.err.code;
			snprintf(r->message, sizeof(r->message), "%s", res.err.msg);
			r->len = res.value.len;
			if (res.value.len > 0)
				memcpy(r->value, res.value.data, res.value.len);
			*result = r;
		}
	}
	sm_result_free(&res);
	if (rv != 0)
		ING_LOG_ERROR("apply failed index=%" PRIu64 " error=%s", index, ing_err_name(rv));
	return rv;
}

static void node_free_result(void *data, void *result)
{
	(void)data;
	free(result);
}

/* On the loop: the copy that follows must hold every applied entry. */
static int node_snapshot_prepare(void *data)
{
	struct node *n = data;
	return store_batch_pending(n->store) > 0 ? node_flush(n) : 0;
}

/* On a libuv pool thread (raft/consensus.h): touches only the LMDB env. */
static int node_snapshot(void *data, void **buf, size_t *len)
{
	struct node *n = data;
	return store_snapshot_copy_buf(n->store, buf, len);
}

static int node_restore(void *data, const void *buf, size_t len)
{
	struct node *n = data;
	struct ing_error e;
	bool replaced = false;
	int rv = store_snapshot_import_buf(n->store, buf, len, &replaced, &e);
	if (rv != 0)
		ING_LOG_ERROR("snapshot restore failed error=%s msg=\"%s\"", ing_err_name(rv),
		              e.msg);
	else
		ING_LOG_INFO("snapshot restored bytes=%zu replaced=%s", len,
		             replaced ? "yes" : "no (store is newer)");
	return rv;
}

int node_flush(struct node *n)
{
	int rv = store_batch_flush(n->store);
	if (rv != 0)
		node_fatal(n, rv, "commit of applied entries failed");
	return rv;
}

static void on_flush(uv_prepare_t *h)
{
	struct node *n = h->data;
	if (n->stopping)
		return;
	if (store_batch_pending(n->store) > 0 && node_flush(n) != 0)
		return;
	node_watch_poll(n);
	if (n->worker_dirty) {
		n->worker_dirty = false;
		node_worker_poll(n);
	}
	node_sched_maybe_run(n);
}

/* ---- members ------------------------------------------------------------ */

void node_member_api_address(struct node *n, uint64_t id, char out[NODE_ADDRESS_MAX])
{
	struct store_txn *t;
	struct ing_str val;
	uint8_t k[8];

	out[0] = '\0';
	store_be64(k, id);
	if (store_read_begin(n->store, &t) == 0) {
		if (store_get(t, STORE_MEMBERS, (struct ing_str){(const char *)k, 8}, &val) == 0) {
			msgpack_zone z;
			struct rec_member m;
			msgpack_zone_init(&z, 512);
			if (rec_member_decode(val, &z, &m, NULL) == 0)
				snprintf(out, NODE_ADDRESS_MAX, "%.*s", ING_STR_FMT(m.api_address));
			msgpack_zone_destroy(&z);
		}
		store_abort(t);
	}
	for (unsigned i = 0; out[0] == '\0' && i < n->cfg.npeers; i++)
		if (n->cfg.peers[i].id == id)
			snprintf(out, NODE_ADDRESS_MAX, "%s", n->cfg.peers[i].api_address);
}

static const char *role_name(enum cons_role r)
{
	switch (r) {
	case CONS_FOLLOWER: return "follower";
	case CONS_CANDIDATE: return "candidate";
	case CONS_LEADER: return "leader-pending";
	case CONS_LEADER_READY: return "leader";
	case CONS_UNAVAILABLE: return "unavailable";
	}
	return "?";
}

static void node_role_changed(void *data, enum cons_role role, uint64_t leader_id, uint64_t term)
{
	struct node *n = data;
	bool was_ready = n->role == CONS_LEADER_READY;

	ING_LOG_INFO("role changed role=%s leader=%" PRIu64 " term=%" PRIu64, role_name(role),
	             leader_id, term);
	n->role = role;
	if (n->leader_id != 0 && n->leader_id != n->cfg.id && n->leader_id != leader_id)
		n->previous_leader = n->leader_id;
	if (leader_id != 0 && leader_id != n->cfg.id)
		n->previous_leader = leader_id;
	n->leader_id = leader_id;
	n->term = term;
	ing_log_set_term(term);
	if (role == CONS_LEADER_READY && !was_ready) {
		node_liveness_leader(n);
		n->sched_full = true;
		node_flush(n);
		node_member_leader(n, n->previous_leader);
	}
	node_unpark(n);
}

static void node_cons_fatal(void *data, int code, const char *message)
{
	node_fatal(data, code, message);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void maybe_done(struct node *n)
{
	if (n->cons != NULL || n->api != NULL || n->open_handles > 0)
		return;
	store_close(n->store);
	n->store = NULL;
	sm_free(n->sm);
	n->sm = NULL;
	void (*stopped)(void *, int) = n->stopped;
	void *data = n->stopped_data;
	int status = n->failed;
	free(n);
	if (stopped != NULL)
		stopped(data, status);
}

void node_hold(struct node *n)
{
	n->open_handles++;
}

void node_release(void *node)
{
	struct node *n = node;
	n->open_handles--;
	maybe_done(n);
}

static void on_handle_closed(uv_handle_t *h)
{
	node_release(h->data);
}

static void on_cons_closed(void *data)
{
	struct node *n = data;
	n->cons = NULL;
	maybe_done(n);
}

static void on_api_closed(void *data)
{
	struct node *n = data;
	n->api = NULL;
	maybe_done(n);
}

void node_stop(struct node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	ING_LOG_INFO("node stopping");
	node_watch_close_all(n);
	/* Parked calls are answered now: the client retries elsewhere. */
	while (n->parked != NULL) {
		struct node_parked *p = n->parked;
		n->parked = p->next;
		rpc_reply_error(p->call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                n->cfg.id);
		free(p);
	}
	if (n->store != NULL && store_failed(n->store) == 0)
		store_batch_flush(n->store);
	node_worker_stop_all(n);
	node_liveness_stop(n);
	node_member_stop(n);
	node_forward_close(n);
	node_status_close(n);
	if (n->api != NULL)
		rpc_server_close(n->api, on_api_closed, n);
	if (n->cons != NULL)
		cons_close(n->cons, on_cons_closed, n);
	uv_close((uv_handle_t *)&n->flush, on_handle_closed);
	uv_close((uv_handle_t *)&n->park_timer, on_handle_closed);
}

void node_fatal(struct node *n, int code, const char *what)
{
	if (n->failed != 0)
		return;
	n->failed = code != 0 ? code : ING_EINTERNAL;
	ING_LOG_ERROR("fatal error=%s what=\"%s\": stopping this node; the cluster goes on",
	              ing_err_name(code), what);
	node_stop(n);
}

/* The way back for a node whose data directory is damaged, on one line. */
static void damaged(const struct node *n, const char *what)
{
	ING_LOG_ERROR("data directory damaged at=%s: this node cannot start from it and must "
	              "not take part in the cluster; to bring it back: `ingotctl member remove "
	              "%" PRIu64 "` through a live member, empty %s, and start this node with "
	              "--join (no peers); see docs/operations.md \"A damaged data directory\"",
	              what, n->cfg.id, n->cfg.data_dir);
}

/*
 * Every entry the store has applied must still be in this node's Raft log,
 * or in a snapshot libraft restored at start (whose content may run ahead
 * of its Raft index).  A log that ends before the store lost entries (a
 * damaged or truncated segment, an emptied raft/ directory): this node may
 * have acknowledged or voted for them, and Raft's guarantees assume it
 * still has them, so it must not take part.  ING_ECORRUPT.
 */
static int check_log_covers_store(struct node *n, struct ing_error *e)
{
	struct cons_status st;
	struct store_txn *t;
	uint64_t applied = 0, covered;
	int rv = store_read_begin(n->store, &t);

	if (rv == 0) {
		rv = store_applied_index(t, &applied);
		store_abort(t);
	}
	if (rv != 0)
		return ing_error_set(e, rv, "cannot read the applied index of %s/state.mdb: %s",
		                     n->cfg.data_dir, ing_err_msg(rv));
	cons_status(n->cons, &st);
	covered = st.last_index;
	if (store_snapshot_seen_index(n->store) > covered)
		covered = store_snapshot_seen_index(n->store);
	if (applied <= covered)
		return 0;
	ING_LOG_ERROR("raft log shorter than the store raft_dir=%s/raft last_index=%" PRIu64
	              " store_applied=%" PRIu64
	              ": entries this node held were lost (damaged or truncated segment, emptied "
	              "raft directory)",
	              n->cfg.data_dir, st.last_index, applied);
	damaged(n, n->cfg.data_dir);
	return ing_error_set(e, ING_CORRUPT("raft log shorter than the store"),
	                     "the raft log in %s/raft ends at index %" PRIu64
	                     ", before the store's applied index %" PRIu64
	                     ": entries were lost; rejoin this node from a peer (see the log)",
	                     n->cfg.data_dir, st.last_index, applied);
}

int node_start(uv_loop_t *loop, const struct node_config *cfg,
               void (*stopped)(void *data, int status), void *data, struct node **out,
               struct ing_error *e)
{
	struct node *n = calloc(1, sizeof(*n));
	char raft_dir[600];
	struct store_options so = {.sync = cfg->store_sync};
	struct cons_peer peers[NODE_MAX_PEERS];
	struct cons_config cc;
	struct cons_callbacks cb = {
	    .apply = node_apply,
	    .free_result = node_free_result,
	    .snapshot = node_snapshot,
	    .snapshot_prepare = node_snapshot_prepare,
	    .restore = node_restore,
	    .role_changed = node_role_changed,
	    .fatal = node_cons_fatal,
	};
	struct rpc_server_options ro;
	int rv;

	if (n == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	n->loop = loop;
	n->cfg = *cfg;
	node_probe(&n->cfg);
	n->stopped = stopped;
	n->stopped_data = data;
	n->role = CONS_FOLLOWER;
	cb.data = n;
	ing_log_set_node(cfg->id);

	rv = node_member_check_marker(cfg->data_dir, cfg->id, e);
	if (rv == 0)
		rv = ing_mkdirs(cfg->data_dir, 0700, e);
	if (rv != 0) {
		free(n);
		return rv;
	}
	/* Absolute from here on: stages run in their own working directories. */
	char absolute[PATH_MAX];
	if (realpath(cfg->data_dir, absolute) != NULL && strlen(absolute) < sizeof(n->cfg.data_dir))
		snprintf(n->cfg.data_dir, sizeof(n->cfg.data_dir), "%s", absolute);
	rv = store_open(n->cfg.data_dir, &so, &n->store, e);
	if (rv == ING_ECORRUPT) {
		char state[sizeof(n->cfg.data_dir) + 16];
		snprintf(state, sizeof(state), "%s/state.mdb", n->cfg.data_dir);
		damaged(n, state);
	}
	if (rv == 0)
		node_worker_reap(n);
	n->worker_dirty = true; /* look at this node's assignments once at start */
	if (rv == 0)
		rv = sm_new(&n->sm);
	if (rv != 0) {
		store_close(n->store);
		free(n);
		return rv;
	}
	uv_prepare_init(loop, &n->flush);
	n->flush.data = n;
	uv_prepare_start(&n->flush, on_flush);
	uv_timer_init(loop, &n->park_timer);
	n->park_timer.data = n;
	n->open_handles = 2;

	memset(&ro, 0, sizeof(ro));
	ro.address = cfg->api_address;
	ro.max_frame_bytes = cfg->max_frame_bytes;
	rv = rpc_server_start(loop, &ro, node_api_handle, n, &n->api, e);
	if (rv != 0)
		goto fail;

	for (unsigned i = 0; i < cfg->npeers; i++) {
		peers[i].id = cfg->peers[i].id;
		peers[i].address = cfg->peers[i].raft_address;
	}
	snprintf(raft_dir, sizeof(raft_dir), "%s/raft", n->cfg.data_dir);
	memset(&cc, 0, sizeof(cc));
	cc.id = cfg->id;
	cc.address = cfg->raft_address;
	cc.dir = raft_dir;
	cc.initial = peers;
	cc.ninitial = cfg->npeers;
	cc.election_timeout_ms = cfg->election_timeout_ms;
	cc.heartbeat_timeout_ms = cfg->heartbeat_timeout_ms;
	cc.connect_retry_ms = cfg->connect_retry_ms;
	cc.snapshot_threshold = cfg->snapshot_threshold;
	cc.snapshot_trailing = cfg->snapshot_trailing;
	rv = cons_start(loop, &cc, &cb, &n->cons, e);
	if (rv != 0) {
		n->cons = NULL;
		if (rv == ING_ECORRUPT)
			damaged(n, raft_dir);
		goto fail;
	}
	rv = check_log_covers_store(n, e);
	if (rv != 0)
		goto fail;
	rv = node_liveness_start(n);
	if (rv != 0) {
		ing_error_set(e, rv, "cannot start heartbeats: %s", ing_err_msg(rv));
		goto fail;
	}
	rv = node_member_start(n);
	if (rv != 0) {
		ing_error_set(e, rv, "cannot start membership: %s", ing_err_msg(rv));
		goto fail;
	}
	ING_LOG_INFO("node started id=%" PRIu64 " api=%s raft=%s data_dir=%s", cfg->id,
	             cfg->api_address, cfg->raft_address, n->cfg.data_dir);
	*out = n;
	return 0;
fail:
	/* The loop must run once more to release the handles; the caller
	 * exits after running it. */
	n->stopped = NULL;
	node_stop(n);
	return rv;
}
