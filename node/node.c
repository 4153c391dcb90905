/*
 * node.c - the daemon's wiring: the store, the state machine, the
 * replicated log, the API server and the modules (node/core.h) on one loop.
 * This file owns the shared resources and raises every event of
 * node/bus.h; the modules own everything else.
 *
 * Apply path: libraft calls node_apply for each committed entry, in order;
 * it runs sm_apply inside the store's open batch transaction and hands the
 * result to the local proposer, if any.  A uv_prepare handle commits the
 * batch when it is due (batch_due: store_commit_interval_ms old, or every
 * loop iteration with 0), so many applies share one LMDB transaction and
 * its fsyncs.  Reads see the open batch (store_read_begin), so they always
 * see every applied entry without a commit.  An entry is acknowledged to its client as soon
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
 * with the Raft configuration and records the leader change (node/bus.h:
 * role changed).
 *
 * Lifetime: the node frees itself once node_stop has run and the last hold
 * (node_hold: a closing client, timer or attempt) is released and raft and
 * the API server are closed; then `stopped` runs.  The modules are freed
 * with it, so a callback that runs while the node closes still finds them.
 */
#include "node/node.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/api/api.h"
#include "node/backup/backup.h"
#include "node/bus.h"
#include "node/core.h"
#include "node/http/http.h"
#include "node/http/metrics.h"
#include "node/leader/deadline.h"
#include "node/leader/liveness.h"
#include "node/leader/retention.h"
#include "node/leader/scheduler.h"
#include "node/member/member.h"
#include "node/propose.h"
#include "node/request.h"
#include "node/sm/sm.h"
#include "node/worker/heartbeat.h"
#include "node/worker/probe.h"
#include "node/worker/sandbox.h"
#include "node/worker/sandbox_node.h"
#include "node/worker/worker.h"
#include "rpc/server.h"
#include "storage/store.h"

#define HEARTBEAT_FIRST_MS 50
#define MEMBER_TICK_MS     100
/* Certificates: a warning from this long before their end, checked at
 * start, on SIGHUP and this often. */
#define TLS_EXPIRY_WARN_S   (30 * 24 * 3600)
#define TLS_EXPIRY_CHECK_MS (3600u * 1000u)

struct node {
	/* shared resources */
	uv_loop_t *loop;
	uint64_t released_at_ms;   /* last release_memory (uv_now) */
	uint64_t released_applied; /* the raft index applied at that release */
	struct node_config cfg;
	struct store *store;
	struct sm *sm;
	struct sm_result apply_res; /* node_apply's, reused entry after entry */
	struct mp_out propose_buf;  /* node_propose's encoding, reused */
	struct cons *cons;
	struct rpc_server *server;
	struct node_requests *requests;
	struct ing_tls *tls;     /* NULL: plaintext (loopback only); API, raft and every client */
	uv_prepare_t flush;      /* commits the apply batch when due (batch_due) */
	uv_timer_t commit_timer; /* commits a batch older than store_commit_interval_ms */
	uint64_t batch_since_ms; /* uv_now() when the open batch was first seen, 0: none */
	uv_timer_t heartbeat_timer; /* node/bus.h: heartbeat tick */
	uv_timer_t member_timer;    /* node/bus.h: member tick */
	/* what raft reported last */
	enum cons_role role;
	uint64_t leader_id;
	uint64_t term;
	/* the modules */
	struct api *api;
	struct sched *sched;
	struct liveness *liveness;
	struct retention *retention;
	struct deadlines *deadlines;
	struct worker *worker;
	struct heartbeat *heartbeat;
	struct member *member;
	struct metrics *metrics; /* NULL when they could not be registered */
	struct backup *backup;
	struct http *http;
	uint64_t tls_checked_ms; /* uv_now() of the last expiry check */
	/* lifecycle */
	bool stopping;
	int failed;
	unsigned open_handles;
	void (*stopped)(void *data, int status);
	void *stopped_data;
};

uint64_t node_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- what the modules read (core.h) ---------------------------------------- */

uv_loop_t *node_loop(const struct node *n)
{
	return n->loop;
}

const struct node_config *node_cfg(const struct node *n)
{
	return &n->cfg;
}

uint64_t node_id(const struct node *n)
{
	return n->cfg.id;
}

struct store *node_store(const struct node *n)
{
	return n->store;
}

struct cons *node_cons(const struct node *n)
{
	return n->cons;
}

struct mp_out *node_propose_buf(struct node *n)
{
	return &n->propose_buf;
}

struct ing_tls *node_tls(const struct node *n)
{
	return n->tls;
}

struct node_requests *node_requests(const struct node *n)
{
	return n->requests;
}

enum cons_role node_role(const struct node *n)
{
	return n->role;
}

bool node_is_ready_leader(const struct node *n)
{
	return n->role == CONS_LEADER_READY;
}

uint64_t node_leader_id(const struct node *n)
{
	return n->leader_id;
}

uint64_t node_term(const struct node *n)
{
	return n->term;
}

void node_note_leader(struct node *n, uint64_t leader_id)
{
	n->leader_id = leader_id;
}

bool node_stopping(const struct node *n)
{
	return n->stopping;
}

int node_failed(const struct node *n)
{
	return n->failed;
}

struct api *node_api(const struct node *n)
{
	return n->api;
}

struct sched *node_sched(const struct node *n)
{
	return n->sched;
}

struct liveness *node_liveness(const struct node *n)
{
	return n->liveness;
}

struct retention *node_retention(const struct node *n)
{
	return n->retention;
}

struct deadlines *node_deadlines(const struct node *n)
{
	return n->deadlines;
}

struct worker *node_worker(const struct node *n)
{
	return n->worker;
}

struct heartbeat *node_heartbeat(const struct node *n)
{
	return n->heartbeat;
}

struct member *node_member(const struct node *n)
{
	return n->member;
}

struct metrics *node_metrics(const struct node *n)
{
	return n->metrics;
}

struct backup *node_backup(const struct node *n)
{
	return n->backup;
}

struct http *node_http(const struct node *n)
{
	return n->http;
}

/* ---- apply path --------------------------------------------------------- */

/* The id a successful job_submit returns (its result value): res->job when
 * it was applied now, decoded from the stored result for a retry. */
static uint64_t submitted_job(const struct sm_result *res)
{
	uint64_t job = 0;
	if (res->cmd_type != CMD_JOB_SUBMIT || res->err.code != 0)
		return 0;
	if (!res->deduped)
		return res->job;
	if (res->value.len > 0) {
		msgpack_zone z;
		msgpack_object o;
		size_t off = 0;
		msgpack_zone_init(&z, 64);
		if (msgpack_unpack(res->value.data, res->value.len, &off, &z, &o) ==
		        MSGPACK_UNPACK_SUCCESS &&
		    o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			job = o.via.u64;
		msgpack_zone_destroy(&z);
	}
	return job;
}

/* *result: a malloc'd copy of res for the proposer (node/propose.c). */
static int result_copy(const struct sm_result *res, void **result)
{
	struct node_result *r = malloc(sizeof(*r) + res->value.len);
	if (r == NULL)
		return ING_ENOMEM;
	r->code = res->err.code;
	size_t m = strnlen(res->err.msg, sizeof(r->message) - 1);
	memcpy(r->message, res->err.msg, m);
	r->message[m] = '\0';
	r->len = res->value.len;
	if (res->value.len > 0)
		memcpy(r->value, res->value.data, res->value.len);
	*result = r;
	return 0;
}

static int node_apply(void *data, uint64_t index, const void *buf, size_t len, void **result)
{
	struct node *n = data;
	struct store_txn *t;
	struct sm_result *res = &n->apply_res; /* sm_apply resets it */
	int rv;

	rv = store_batch_txn(n->store, &t);
	if (rv == 0)
		rv = sm_apply(n->sm, t, index, buf, len, res);
	if (rv == 0)
		rv = store_batch_note(n->store);
	if (rv == 0 && !res->skipped) {
		struct bus_applied a = {
		    .cmd_type = res->cmd_type,
		    .code = res->err.code,
		    .submitted_job = submitted_job(res),
		    .job = res->job,
		    .deadline_at_ms = res->job_deadline_at_ms,
		    .result = res,
		    .released = res->released,
		};
		bus_applied(n, &a);
		/* Only a proposal of this node reads the result: none is made
		 * for the others (a follower's entries, another leadership's). */
		if (n->cons == NULL || cons_awaits(n->cons, index))
			rv = result_copy(res, result);
	}
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

/* At most this often: release_memory. */
#define RELEASE_INTERVAL_MS 5000

/* Gives back what a burst of work left resident: the store file's pages
 * mapped by LMDB (RssFile, which grows with every page a read or commit
 * touched: hundreds of MB at a million jobs) and the free heap at the top
 * of every malloc arena (those of the libuv pool threads included).  Runs
 * after a snapshot and from the member tick once the node applied entries
 * since the last release (release_if_due): a node that goes quiet takes
 * no more snapshots, and would keep what its last burst touched. */
static void release_memory(struct node *n)
{
	uint64_t now = uv_now(n->loop);
	if (n->released_at_ms != 0 && now - n->released_at_ms < RELEASE_INTERVAL_MS)
		return;
	n->released_at_ms = now;
	if (n->cons != NULL) {
		struct cons_status st;
		cons_status(n->cons, &st);
		n->released_applied = st.last_applied;
	}
	int rv = store_release_pages(n->store);
	if (rv != 0)
		ING_LOG_WARN("store pages not released error=%s", ing_err_name(rv));
	malloc_trim(0);
	ING_LOG_DEBUG("memory released applied=%" PRIu64, n->released_applied);
}

/* Member tick: releases once RELEASE_INTERVAL_MS passed and entries were
 * applied since the last release. */
static void release_if_due(struct node *n)
{
	struct cons_status st;
	if (n->cons == NULL || uv_now(n->loop) - n->released_at_ms < RELEASE_INTERVAL_MS)
		return;
	cons_status(n->cons, &st);
	if (st.last_applied != n->released_applied)
		release_memory(n);
}

/* On the loop: snapshots are references to the store's durable state. */
static int node_snapshot_sync(void *data, uint64_t *index)
{
	struct node *n = data;
	int rv = node_snapshot_prepare(data);
	if (rv == 0 && (rv = store_sync(n->store, index)) != 0 && store_failed(n->store))
		node_fatal(n, rv, "sync of the store for a snapshot failed");
	if (rv == 0)
		release_memory(n);
	return rv;
}

static int node_state_index(void *data, uint64_t *index)
{
	struct node *n = data;
	struct store_txn *t;
	int rv = store_read_begin(n->store, &t);
	if (rv != 0)
		return rv;
	rv = store_applied_index(t, index);
	store_abort(t);
	return rv;
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
	if (rv == 0 && replaced)
		bus_restored(n);
	return rv;
}

int node_flush(struct node *n)
{
	int rv = store_batch_flush(n->store);
	n->batch_since_ms = 0;
	if (rv != 0)
		node_fatal(n, rv, "commit of applied entries failed");
	return rv;
}

/*
 * Whether the open batch should commit now.  Acknowledgements never wait
 * for the commit (the entry is committed in the Raft log, which replays it
 * after a crash) and reads see the open batch (store_read_begin), so the
 * commit only bounds how much the log replays: it comes once the batch is
 * store_commit_interval_ms old (0: every loop iteration), or full
 * (batch_max, store_batch_note), or before a snapshot.  Fewer commits mean
 * fewer fsyncs on the loop and the pages shared by many applies (tree
 * roots, the meta page, the tail pages of append-only tables) written once.
 */
static void on_commit_timer(uv_timer_t *h);

static bool batch_due(struct node *n)
{
	uint64_t now = uv_now(n->loop), every = n->cfg.store_commit_interval_ms;

	if (every == 0)
		return true;
	if (n->batch_since_ms == 0) {
		n->batch_since_ms = now;
		uv_timer_start(&n->commit_timer, on_commit_timer, every, 0);
		return false;
	}
	return now - n->batch_since_ms >= every;
}

static void on_commit_timer(uv_timer_t *h)
{
	struct node *n = h->data;
	if (!n->stopping && store_batch_pending(n->store) > 0 && node_flush(n) == 0)
		bus_committed(n);
	n->batch_since_ms = 0;
}

static void on_flush(uv_prepare_t *h)
{
	struct node *n = h->data;
	if (n->stopping)
		return;
	if (store_batch_pending(n->store) > 0 && batch_due(n) && node_flush(n) != 0)
		return;
	bus_flushed(n);
	/* The replies the raft pump delivered in this iteration (it runs
	 * before this handle, started later) and those bus_flushed made go
	 * out before the poll, one write per connection. */
	if (n->server != NULL)
		rpc_server_flush(n->server);
}

static void on_heartbeat_tick(uv_timer_t *h)
{
	struct node *n = h->data;
	if (!n->stopping)
		bus_heartbeat_tick(n);
}

/* Logs a warning for the node's certificate and the CA ending within
 * TLS_EXPIRY_WARN_S (docs/operations.md, "Renewing and rotating"); an
 * ended one cannot be loaded at all (ing_tls_new checks the dates). */
static void tls_check_expiry(struct node *n)
{
	int64_t cert, ca;
	if (n->tls == NULL)
		return;
	n->tls_checked_ms = uv_now(n->loop);
	ing_tls_not_after(n->tls, &cert, &ca);
	int64_t now = (int64_t)time(NULL);
	if (cert != 0 && cert - now < TLS_EXPIRY_WARN_S)
		ING_LOG_WARN("tls certificate ends soon file=%s days_left=%" PRId64
		             " (issue it again: ingotctl pki issue node --id %" PRIu64
		             " ... --force, copy it here, then SIGHUP)",
		             n->cfg.tls.cert, (cert - now) / 86400, n->cfg.id);
	if (ca != 0 && ca - now < TLS_EXPIRY_WARN_S)
		ING_LOG_WARN("tls CA certificate ends soon file=%s days_left=%" PRId64
		             " (every certificate of the cluster ends with it: rotate to a new "
		             "CA, docs/operations.md)",
		             n->cfg.tls.ca, (ca - now) / 86400);
}

static void on_member_tick(uv_timer_t *h)
{
	struct node *n = h->data;
	if (!n->stopping && n->cons != NULL) {
		bus_member_tick(n);
		release_if_due(n);
	}
	if (n->tls != NULL && uv_now(n->loop) - n->tls_checked_ms >= TLS_EXPIRY_CHECK_MS)
		tls_check_expiry(n);
}

static void node_role_changed(void *data, enum cons_role role, uint64_t leader_id, uint64_t term)
{
	struct node *n = data;
	bool was_ready = n->role == CONS_LEADER_READY;
	uint64_t previous = n->leader_id;

	const char *ready = cons_role_ready(role);
	ING_LOG_INFO("role changed role=%s%s%s leader=%" PRIu64 " term=%" PRIu64,
	             cons_role_name(role), ready != NULL ? " ready=" : "",
	             ready != NULL ? ready : "", leader_id, term);
	n->role = role;
	n->leader_id = leader_id;
	n->term = term;
	ing_log_set_term(term);
	if (!n->stopping)
		bus_role_changed(n, previous, role == CONS_LEADER_READY && !was_ready);
}

static void node_cons_fatal(void *data, int code, const char *message)
{
	node_fatal(data, code, message);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void free_modules(struct node *n)
{
	if (n->http != NULL)
		http_free(n->http);
	if (n->backup != NULL)
		backup_free(n->backup);
	if (n->metrics != NULL)
		metrics_free(n->metrics);
	if (n->member != NULL)
		member_free(n->member);
	if (n->api != NULL)
		api_free(n->api);
	if (n->heartbeat != NULL)
		heartbeat_free(n->heartbeat);
	if (n->worker != NULL)
		worker_free(n->worker);
	if (n->deadlines != NULL)
		deadlines_free(n->deadlines);
	if (n->liveness != NULL)
		liveness_free(n->liveness);
	if (n->retention != NULL)
		retention_free(n->retention);
	if (n->sched != NULL)
		sched_free(n->sched);
	if (n->requests != NULL)
		node_requests_free(n->requests);
}

static void maybe_done(struct node *n)
{
	if (n->cons != NULL || n->server != NULL || n->open_handles > 0)
		return;
	free_modules(n);
	store_close(n->store);
	n->store = NULL;
	sm_free(n->sm);
	n->sm = NULL;
	sm_result_free(&n->apply_res);
	mp_out_free(&n->propose_buf);
	ing_tls_free(n->tls);
	n->tls = NULL;
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

static void on_server_closed(void *data)
{
	struct node *n = data;
	n->server = NULL;
	maybe_done(n);
}

void node_stop(struct node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	ING_LOG_INFO("node stopping");
	bus_stopping(n);
	node_requests_close(n->requests);
	if (n->server != NULL)
		rpc_server_close(n->server, on_server_closed, n);
	if (n->cons != NULL)
		cons_close(n->cons, on_cons_closed, n);
	uv_close((uv_handle_t *)&n->flush, on_handle_closed);
	uv_close((uv_handle_t *)&n->commit_timer, on_handle_closed);
	uv_close((uv_handle_t *)&n->heartbeat_timer, on_handle_closed);
	uv_close((uv_handle_t *)&n->member_timer, on_handle_closed);
}

void node_shutdown(struct node *n)
{
	if (n->stopping || !member_leave(n->member))
		node_stop(n);
}

int node_reload_tls(struct node *n, struct ing_error *e)
{
	if (n->tls == NULL) {
		ING_LOG_DEBUG("tls reload: nothing to do (no tls configured)");
		return 0;
	}
	int rv = ing_tls_reload(n->tls, e);
	if (rv != 0) {
		ING_LOG_WARN("tls reload failed, keeping the current certificates msg=\"%s\"",
		             e->msg);
		return rv;
	}
	char desc[256];
	ing_tls_describe(n->tls, desc, sizeof(desc));
	ING_LOG_INFO("tls reloaded: new connections use %s", desc);
	tls_check_expiry(n);
	/* The same files passed OpenSSL's checks just now; GnuTLS reads them
	 * again for HTTPS. */
	if (n->http != NULL && (rv = http_reload_tls(n->http, e)) != 0) {
		ING_LOG_WARN("http tls reload failed, HTTPS keeps the current certificate "
		             "msg=\"%s\"",
		             e->msg);
		return rv;
	}
	return 0;
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
 * Every entry the store has applied must still be accounted for by this
 * node's Raft log or by the snapshot libraft restored at start: a
 * reference snapshot names the index the store held durably when it was
 * taken (cons_status.start_reference), and a full copy installed from a
 * leader (restored again at start until the next snapshot) may hold
 * entries past its Raft index (store_snapshot_seen_index).  So a follower
 * restarting right after an install passes, and a log that ends before the
 * store lost entries (a damaged or truncated segment, an emptied raft/
 * directory): this node may have acknowledged or voted for them, and
 * Raft's guarantees assume it still has them, so it must not take part.
 * ING_ECORRUPT.
 */
static int check_log_covers_store(struct node *n, struct ing_error *e)
{
	struct cons_status st;
	uint64_t applied = 0, covered;
	int rv = node_state_index(n, &applied);

	if (rv != 0)
		return ing_error_set(e, rv, "cannot read the applied index of %s/state.mdb: %s",
		                     n->cfg.data_dir, ing_err_msg(rv));
	cons_status(n->cons, &st);
	covered = st.last_index;
	if (st.start_reference > covered)
		covered = st.start_reference;
	if (store_snapshot_seen_index(n->store) > covered)
		covered = store_snapshot_seen_index(n->store);
	if (applied <= covered) {
		ING_LOG_INFO("raft log covers the store last_index=%" PRIu64
		             " snapshot_reference=%" PRIu64 " snapshot_copy=%" PRIu64
		             " store_applied=%" PRIu64,
		             st.last_index, st.start_reference, store_snapshot_seen_index(n->store),
		             applied);
		return 0;
	}
	ING_LOG_ERROR("raft log shorter than the store raft_dir=%s/raft last_index=%" PRIu64
	              " snapshot_covers=%" PRIu64 " store_applied=%" PRIu64
	              ": entries this node held were lost (damaged or truncated segment, emptied "
	              "raft directory)",
	              n->cfg.data_dir, st.last_index, covered, applied);
	damaged(n, n->cfg.data_dir);
	return ing_error_set(e, ING_CORRUPT("raft log shorter than the store"),
	                     "the raft log in %s/raft ends at index %" PRIu64
	                     ", before the store's applied index %" PRIu64
	                     ": entries were lost; rejoin this node from a peer (see the log)",
	                     n->cfg.data_dir, covered, applied);
}

/* The modules that own no handle; on failure every one made is freed. */
static int new_modules(struct node *n)
{
	int rv = node_requests_new(n, &n->requests);
	if (rv == 0)
		rv = sched_new(&n->sched);
	if (rv == 0)
		rv = liveness_new(&n->liveness);
	if (rv == 0)
		rv = deadlines_new(&n->deadlines);
	if (rv == 0)
		rv = retention_new(&n->retention);
	if (rv == 0)
		rv = worker_new(n, &n->worker);
	if (rv == 0)
		rv = heartbeat_new(n, &n->heartbeat);
	if (rv == 0)
		rv = backup_new(n, &n->backup);
	if (rv == 0 && metrics_new(n, &n->metrics) != 0)
		n->metrics = NULL; /* logged; the node serves without metrics */
	if (rv != 0) {
		free_modules(n);
		n->requests = NULL;
		n->sched = NULL;
		n->liveness = NULL;
		n->deadlines = NULL;
		n->retention = NULL;
		n->worker = NULL;
		n->heartbeat = NULL;
		n->backup = NULL;
		n->metrics = NULL;
	}
	return rv;
}

int node_start(uv_loop_t *loop, const struct node_config *cfg,
               void (*stopped)(void *data, int status), void *data, struct node **out,
               struct ing_error *e)
{
	struct node *n = calloc(1, sizeof(*n));
	char raft_dir[600];
	struct store_options so = {.sync = cfg->store_sync,
	                           .map_size_bytes = cfg->store_map_bytes,
	                           .map_max_bytes = cfg->store_map_max_bytes,
	                           .reserve_bytes = cfg->store_reserve_bytes};
	struct cons_peer peers[NODE_MAX_PEERS];
	struct cons_config cc;
	struct cons_callbacks cb = {
	    .apply = node_apply,
	    .free_result = node_free_result,
	    .snapshot = node_snapshot,
	    .snapshot_prepare = node_snapshot_prepare,
	    .snapshot_sync = node_snapshot_sync,
	    .state_index = node_state_index,
	    .restore = node_restore,
	    .role_changed = node_role_changed,
	    .fatal = node_cons_fatal,
	};
	struct rpc_server_options ro;
	int rv;

	if (n == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	sm_result_init(&n->apply_res);
	mp_out_init(&n->propose_buf);
	n->loop = loop;
	n->cfg = *cfg;
	ing_log_set_node(cfg->id);
	probe_config(&n->cfg);
	n->stopped = stopped;
	n->stopped_data = data;
	n->role = CONS_FOLLOWER;
	cb.data = n;

	rv = member_check_marker(cfg->data_dir, cfg->id, e);
	if (rv == 0 && cfg->tls.enabled) {
		/* Every file read and checked (key, chain, node id) before
		 * anything is written. */
		struct ing_tls_config tc = {cfg->tls.ca, cfg->tls.cert, cfg->tls.key,
		                            cfg->tls.client_certs};
		struct ing_tls_identity own;
		rv = ing_tls_new(&tc, &n->tls, e);
		if (rv == 0) {
			ing_tls_own_identity(n->tls, &own);
			if (own.kind != ING_TLS_PEER_NODE || own.node_id != cfg->id) {
				char who[ING_TLS_NAME_MAX + 16];
				ing_tls_identity_format(&own, who, sizeof(who));
				rv =
				    ing_error_set(e, ING_EINVAL,
				                  "TLS certificate '%s' is that of %s, not of node "
				                  "%" PRIu64 " (make one with 'ingotctl pki issue "
				                  "node --id %" PRIu64 "')",
				                  cfg->tls.cert, who, cfg->id, cfg->id);
			}
		}
	}
	if (rv == 0)
		rv = ing_mkdirs(cfg->data_dir, 0700, e);
	if (rv != 0) {
		ing_tls_free(n->tls);
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
	struct sandbox_host *sandbox = NULL;
	if (rv == 0) {
		/* Before the old attempt directories go: some may be mounts. */
		sandbox = sandbox_node_prepare(loop, &n->cfg);
		worker_reap(n->cfg.data_dir);
	}
	if (rv == 0)
		rv = sm_new(&n->sm);
	if (rv == 0 && (rv = new_modules(n)) != 0)
		ing_error_set(e, rv, "out of memory");
	if (rv == 0 && sandbox != NULL)
		worker_set_sandbox(n->worker, sandbox);
	else if (sandbox != NULL)
		sandbox_host_free(sandbox);
	if (rv != 0) {
		sm_free(n->sm);
		sm_result_free(&n->apply_res);
		mp_out_free(&n->propose_buf);
		store_close(n->store);
		ing_tls_free(n->tls);
		free(n);
		return rv;
	}
	uv_prepare_init(loop, &n->flush);
	n->flush.data = n;
	uv_prepare_start(&n->flush, on_flush);
	uv_timer_init(loop, &n->commit_timer);
	n->commit_timer.data = n;
	uv_timer_init(loop, &n->heartbeat_timer);
	n->heartbeat_timer.data = n;
	uv_timer_init(loop, &n->member_timer);
	n->member_timer.data = n;
	n->open_handles = 4;
	/* These two hold a handle each (and the node until it is closed). */
	rv = api_new(n, &n->api, e);
	if (rv == 0 && (rv = member_new(n, &n->member)) != 0)
		ing_error_set(e, rv, "out of memory");
	if (rv != 0)
		goto fail;

	memset(&ro, 0, sizeof(ro));
	ro.address = cfg->api_address;
	ro.max_frame_bytes = cfg->max_frame_bytes;
	ro.max_connections = cfg->max_connections;
	ro.max_connections_per_address = cfg->max_connections_per_address;
	ro.max_output_bytes = cfg->max_output_bytes;
	ro.max_calls = cfg->max_calls;
	ro.idle_timeout_ms = cfg->idle_timeout_ms;
	ro.frame_timeout_ms = cfg->frame_timeout_ms;
	ro.tls = n->tls;
	rv = rpc_server_start(loop, &ro, api_handle, n, &n->server, e);
	if (rv != 0)
		goto fail;
	rv = http_start(n, &n->http, e);
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
	cc.snapshot_interval_ms = cfg->snapshot_interval_ms;
	cc.tls = n->tls;
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
	uv_timer_start(&n->heartbeat_timer, on_heartbeat_tick, HEARTBEAT_FIRST_MS,
	               cfg->heartbeat_interval_ms);
	uv_timer_start(&n->member_timer, on_member_tick, MEMBER_TICK_MS, MEMBER_TICK_MS);
	tls_check_expiry(n);
	rv = member_start(n->member);
	if (rv != 0) {
		ing_error_set(e, rv, "cannot start membership: %s", ing_err_msg(rv));
		goto fail;
	}
	ING_LOG_INFO("node started id=%" PRIu64 " api=%s raft=%s http=%s data_dir=%s tls=%s",
	             cfg->id, cfg->api_address, cfg->raft_address,
	             cfg->http_address[0] != '\0' ? cfg->http_address : "off", n->cfg.data_dir,
	             n->tls != NULL ? "on" : "off (loopback only)");
	*out = n;
	return 0;
fail:
	/* The loop must run once more to release the handles; the caller
	 * exits after running it. */
	n->stopped = NULL;
	node_stop(n);
	return rv;
}
