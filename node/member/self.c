/*
 * self.c - this node's own membership.
 *
 * libraft tells a removed node nothing: it stops hearing from the leader,
 * and a removed voter campaigns.  So a node that no leader reached for
 * REMOVED_CHECK_AFTER election timeouts, or that has been campaigning that
 * long, asks the members whether it still belongs (member.check), and a
 * node that was removed stops, leaving a `removed` marker that refuses
 * later starts.  Joining (--join) and leaving (leave_on_shutdown) go
 * through the same member.add / member.remove operations as an operator
 * would.  The membership tick (every MEMBER_TICK_MS) drives the leader's
 * change plans and self-healing, and every other node's removal check.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "node/member/member_internal.h"
#include "rpc/args.h"

#define MEMBER_TICK_MS      100
#define REMOVED_CHECK_AFTER 5    /* election timeouts without a leader */
#define REMOVED_CHECK_EVERY 1000 /* ms between two checks */
#define JOIN_RETRY_MS       1000
#define LEAVE_TIMEOUT_MS    15000
#define REMOVED_MARKER      "removed"

static void marker_path(struct node *n, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", n->cfg.data_dir, REMOVED_MARKER);
}

int node_member_check_marker(const char *data_dir, uint64_t id, struct ing_error *e)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", data_dir, REMOVED_MARKER);
	if (access(path, F_OK) != 0)
		return 0;
	return ing_error_set(e, ING_EINVAL,
	                     "node %" PRIu64 " was removed from its cluster (see %s); to become "
	                     "a member again, empty its data directory and start it with --join",
	                     id, path);
}

/* This node is not a member any more: leave a marker and stop (status 0). */
static void removed(struct node *n, const char *how)
{
	char path[600];
	marker_path(n, path, sizeof(path));
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		char cluster[CMD_CLUSTER_ID_LEN + 1];
		node_cluster_id(n, cluster);
		fprintf(f, "removed at %" PRIu64 " ms (%s), cluster %s\n", node_now_ms(), how,
		        cluster[0] ? cluster : "unknown");
		fclose(f);
	}
	ING_LOG_WARN("removed from the cluster (%s): stopping", how);
	node_stop(n);
}

/* An outgoing request of this node (check, join, leave, cluster id check)
 * over its own client.  Each holds the node (node_hold) until freed, and
 * node_member_stop closes their clients, so none outlives the node. */
struct mreq {
	struct rpc_request r;
	struct node *n;
	struct rpc_client *client;
};

static void client_closed(void *data)
{
	node_release(data);
}

static struct mreq *mreq_new(struct node *n)
{
	struct mreq *q;
	unsigned i;

	for (i = 0; i < NODE_MAX_MREQS && n->mreqs[i] != NULL; i++)
		;
	if (i == NODE_MAX_MREQS || (q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->n = n;
	q->r.data = q;
	n->mreqs[i] = q;
	node_hold(n);
	return q;
}

/* Last thing a callback does: may release the node's last hold. */
static void mreq_free(struct mreq *q)
{
	struct node *n = q->n;
	for (unsigned i = 0; i < NODE_MAX_MREQS; i++)
		if (n->mreqs[i] == q)
			n->mreqs[i] = NULL;
	if (q->client != NULL) {
		node_hold(n);
		rpc_client_close(q->client, client_closed, n);
	}
	free(q);
	node_release(n);
}

/* A client to `addrs`; NULL on failure (logged). */
static struct rpc_client *client_to(struct node *n, const char *const *addrs, unsigned naddrs,
                                    unsigned timeout_ms)
{
	struct rpc_client *c;
	struct ing_error e;
	struct rpc_client_options o = {
	    .endpoints = addrs,
	    .nendpoints = naddrs,
	    .timeout_ms = timeout_ms,
	    .connect_timeout_ms = 500,
	};
	if (naddrs == 0 || rpc_client_new(n->loop, &o, &c, &e) != 0)
		return NULL;
	return c;
}

static void on_check(struct rpc_request *r, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	struct mreq *q = r->data;
	struct node *n = q->n;
	(void)err;
	n->removal_checking = false;
	if (status == 0 && !n->stopping && n->cons != NULL) {
		const msgpack_object *m = rpc_arg_find(result, "member");
		if (m != NULL && m->type == MSGPACK_OBJECT_BOOLEAN && !m->via.boolean)
			removed(n, "the leader's configuration does not include this node");
	}
	mreq_free(q); /* last: may release the node */
}

/* A node that hears from no leader asks whether it still belongs. */
static void removal_check(struct node *n)
{
	const char *addrs[NODE_MAX_PEERS];
	char buf[NODE_MAX_PEERS][NODE_ADDRESS_MAX];
	unsigned na = 0;
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	uint64_t now = node_now_ms();

	struct cons_status st;

	uint64_t after = (uint64_t)REMOVED_CHECK_AFTER * n->cfg.election_timeout_ms;

	/* Campaigning (a removed voter does, forever) or knowing no leader
	 * since some time; or a follower the leader stopped reaching. */
	cons_status(n->cons, &st);
	if (st.role == CONS_CANDIDATE || st.leader_id == 0) {
		if (n->leaderless_since_ms == 0)
			n->leaderless_since_ms = now;
	} else {
		n->leaderless_since_ms = 0;
	}
	bool suspect = (n->leaderless_since_ms != 0 && now - n->leaderless_since_ms >= after) ||
	               (st.role == CONS_FOLLOWER && st.leader_contact_ago_ms >= after);
	if (!suspect || n->joining || n->removal_checking ||
	    now - n->removal_checked_ms < REMOVED_CHECK_EVERY)
		return;
	n->removal_checked_ms = now;
	if (cons_members(n->cons, &ms, &nm) != 0 || nm == 0) {
		free(ms);
		return;
	}
	for (unsigned i = 0; i < nm && na < NODE_MAX_PEERS; i++) {
		if (ms[i].id == n->cfg.id)
			continue;
		node_member_api_address(n, ms[i].id, buf[na]);
		if (buf[na][0] != '\0') {
			addrs[na] = buf[na];
			na++;
		}
	}
	free(ms);
	struct mreq *q = mreq_new(n);
	struct mp_out o;
	if (q == NULL)
		return;
	q->client = client_to(n, addrs, na, 2000);
	if (q->client == NULL) {
		mreq_free(q);
		return;
	}
	q->r.cb = on_check;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	if (mp_out_failed(&o) == 0 &&
	    rpc_client_call(q->client, &q->r, "member.check", o.data, o.len, RPC_NO_RETRY) == 0)
		n->removal_checking = true;
	else
		mreq_free(q);
	mp_out_free(&o);
}

static void join_send(struct node *n);

static void on_join_retry(uv_timer_t *h)
{
	struct node *n = h->data;
	if (!n->stopping && n->joining)
		join_send(n);
}

static void join_answered(struct node *n, int status, const struct ing_error *err,
                          const msgpack_object *result)
{
	(void)result;
	if (n->stopping)
		return;
	if (status == 0) {
		n->joining = false;
		ING_LOG_INFO("joined the cluster as %s", rec_role_name(n->cfg.join_role));
		return;
	}
	bool transient = status == ING_ECONFLICT || status == ING_EUNAVAILABLE ||
	                 status == ING_ETIMEOUT || status == ING_ENOTLEADER;
	if (transient && node_now_ms() < n->join_deadline_ms) {
		ING_LOG_WARN("join not done yet, retrying error=%s msg=\"%s\"",
		             ing_err_name(status), err != NULL ? err->msg : "");
		uv_timer_start(&n->member_retry, on_join_retry, JOIN_RETRY_MS, 0);
		return;
	}
	ING_LOG_ERROR("cannot join the cluster error=%s msg=\"%s\"", ing_err_name(status),
	              err != NULL ? err->msg : "");
	node_fatal(n, transient ? ING_EUNAVAILABLE : ING_EINVAL,
	           "the cluster refused to add this node");
}

static void on_joined(struct rpc_request *r, int status, const struct ing_error *err,
                      const msgpack_object *result)
{
	struct mreq *q = r->data;
	join_answered(q->n, status, err, result);
	mreq_free(q); /* last: may release the node */
}

static void join_send(struct node *n)
{
	const char *addrs[NODE_MAX_PEERS];
	struct mreq *q = mreq_new(n);
	struct mp_out o;

	if (q == NULL) {
		node_fatal(n, ING_ENOMEM, "cannot ask to join");
		return;
	}
	for (unsigned i = 0; i < n->cfg.njoin; i++)
		addrs[i] = n->cfg.join[i];
	q->client = client_to(n, addrs, n->cfg.njoin, n->cfg.member_catchup_timeout_ms + 10000);
	if (q->client == NULL) {
		mreq_free(q);
		node_fatal(n, ING_EINVAL, "bad join addresses");
		return;
	}
	q->r.data = q;
	q->r.cb = on_joined;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	view_key(&o.pk, "raft_address");
	mp_pack_cstr(&o.pk, n->cfg.raft_address);
	view_key(&o.pk, "api_address");
	mp_pack_cstr(&o.pk, n->cfg.api_address);
	view_key(&o.pk, "role");
	mp_pack_cstr(&o.pk, rec_role_name(n->cfg.join_role));
	if (mp_out_failed(&o) != 0 ||
	    rpc_client_call(q->client, &q->r, "member.add", o.data, o.len, 0) != 0)
		mreq_free(q);
	mp_out_free(&o);
}

static void cluster_checked(struct node *n, int status, const struct ing_error *err,
                            const msgpack_object *result)
{
	char mine[CMD_CLUSTER_ID_LEN + 1];
	struct ing_str theirs = {"", 0};
	struct ing_error e;

	if (n->stopping)
		return;
	if (status != 0) {
		ING_LOG_WARN(
		    "cannot compare cluster ids with the join addresses error=%s msg=\"%s\"",
		    ing_err_name(status), err != NULL ? err->msg : "");
		return;
	}
	rpc_arg_str(result, "cluster_id", CMD_CLUSTER_ID_LEN, false, &theirs, &e);
	node_cluster_id(n, mine);
	if (mine[0] == '\0' || theirs.len == 0 || ing_str_eq_c(theirs, mine)) {
		ING_LOG_INFO("already a member of cluster %s: --join ignored",
		             mine[0] ? mine : "(not named yet)");
		return;
	}
	ING_LOG_ERROR("this data directory belongs to cluster %s, but the members at %s are "
	              "cluster %.*s: refusing to run (use an empty data directory to join)",
	              mine, n->cfg.join[0], ING_STR_FMT(theirs));
	node_fatal(n, ING_EINVAL, "data directory belongs to another cluster");
}

static void on_cluster_checked(struct rpc_request *r, int status, const struct ing_error *err,
                               const msgpack_object *result)
{
	struct mreq *q = r->data;
	cluster_checked(q->n, status, err, result);
	mreq_free(q); /* last: may release the node */
}

/* A node with data asked to join: it must be the same cluster. */
static void join_check_cluster(struct node *n)
{
	const char *addrs[NODE_MAX_PEERS];
	struct mreq *q = mreq_new(n);
	if (q == NULL)
		return;
	for (unsigned i = 0; i < n->cfg.njoin; i++)
		addrs[i] = n->cfg.join[i];
	q->client = client_to(n, addrs, n->cfg.njoin, 5000);
	if (q->client == NULL) {
		mreq_free(q);
		return;
	}
	q->r.cb = on_cluster_checked;
	if (rpc_client_call(q->client, &q->r, "node.info", NULL, 0, 0) != 0)
		mreq_free(q);
}

static void on_member_tick(uv_timer_t *h)
{
	struct node *n = h->data;
	if (n->stopping || n->cons == NULL)
		return;
	if (n->role == CONS_LEADER_READY) {
		if (n->mchange != NULL && !n->mchange->busy)
			mc_run(n->mchange);
		else if (n->mchange == NULL)
			heal_tick(n);
	} else {
		removal_check(n);
	}
}

int node_member_start(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	int rv;

	uv_timer_init(n->loop, &n->member_timer);
	n->member_timer.data = n;
	uv_timer_init(n->loop, &n->member_retry);
	n->member_retry.data = n;
	n->open_handles += 2;
	rv = uv_timer_start(&n->member_timer, on_member_tick, MEMBER_TICK_MS, MEMBER_TICK_MS);
	if (rv != 0)
		return ING_EINTERNAL;
	if (n->cfg.njoin == 0)
		return 0;
	rv = cons_members(n->cons, &ms, &nm);
	free(ms);
	if (rv != 0)
		return rv;
	if (nm > 0) {
		ING_LOG_INFO("--join given but this node already holds a configuration of %u "
		             "members: checking the cluster id, not joining",
		             nm);
		join_check_cluster(n);
		return 0;
	}
	n->joining = true;
	n->join_deadline_ms = node_now_ms() + 2ull * n->cfg.member_catchup_timeout_ms + 60000;
	ING_LOG_INFO("joining the cluster via %s%s as %s", n->cfg.join[0],
	             n->cfg.njoin > 1 ? " (and others)" : "", rec_role_name(n->cfg.join_role));
	join_send(n);
	return 0;
}

static void timer_closed(uv_handle_t *h)
{
	node_release(h->data);
}

void node_member_stop(struct node *n)
{
	if (n->mchange != NULL) {
		struct node_mchange *m = n->mchange;
		if (m->call != NULL) {
			rpc_reply_error(m->call, ING_EUNAVAILABLE,
			                "node %" PRIu64 " is shutting down during the change",
			                n->cfg.id);
			m->call = NULL;
		}
		if (!m->busy) {
			n->mchange = NULL;
			free(m);
		}
		/* else: freed by mc_finish when its callback comes (the node
		 * stays until cons is closed, which delivers it). */
	}
	/* cons_close completes a transfer's callback, which replies. */
	for (unsigned i = 0; i < NODE_MAX_MREQS; i++) {
		struct mreq *q = n->mreqs[i];
		if (q != NULL && q->client != NULL) {
			/* its callback runs with ING_EUNAVAILABLE and frees it */
			node_hold(n);
			rpc_client_close(q->client, client_closed, n);
			q->client = NULL;
		}
	}
	uv_close((uv_handle_t *)&n->member_timer, timer_closed);
	uv_close((uv_handle_t *)&n->member_retry, timer_closed);
}

static void leave_send(struct node *n);

static void on_leave_retry(uv_timer_t *h)
{
	leave_send(h->data);
}

static void left_answered(struct node *n, int status, const struct ing_error *err,
                          const msgpack_object *result)
{
	(void)result;
	if (n->stopping)
		return;
	if (status == 0) {
		removed(n, "left on shutdown");
		return;
	}
	if (status == ING_ECONFLICT && node_now_ms() < n->leave_deadline_ms) {
		/* another change first (another node leaving too): wait a turn */
		uv_timer_start(&n->member_retry, on_leave_retry, 200, 0);
		return;
	}
	ING_LOG_WARN("could not leave the cluster on shutdown error=%s msg=\"%s\": stopping as "
	             "a member",
	             ing_err_name(status), err != NULL ? err->msg : "");
	node_stop(n);
}

static void on_left(struct rpc_request *r, int status, const struct ing_error *err,
                    const msgpack_object *result)
{
	struct mreq *q = r->data;
	left_answered(q->n, status, err, result);
	mreq_free(q); /* last: may release the node */
}

static void leave_send(struct node *n)
{
	const char *self[] = {n->cfg.api_address};
	uint64_t left =
	    n->leave_deadline_ms > node_now_ms() ? n->leave_deadline_ms - node_now_ms() : 1;
	struct mreq *q = mreq_new(n);
	struct mp_out o;

	if (q == NULL || (q->client = client_to(n, self, 1, (unsigned)left)) == NULL) {
		if (q != NULL)
			mreq_free(q);
		node_stop(n);
		return;
	}
	q->r.cb = on_left;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	if (mp_out_failed(&o) != 0 ||
	    rpc_client_call(q->client, &q->r, "member.remove", o.data, o.len, 0) != 0) {
		mreq_free(q);
		node_stop(n);
	}
	mp_out_free(&o);
}

void node_shutdown(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0, voters = 0;
	bool member = false;

	if (n->stopping || n->leaving || !n->cfg.leave_on_shutdown || n->cons == NULL ||
	    cons_members(n->cons, &ms, &nm) != 0) {
		free(ms);
		node_stop(n);
		return;
	}
	for (unsigned i = 0; i < nm; i++) {
		voters += ms[i].role == CONS_VOTER;
		member |= ms[i].id == n->cfg.id;
	}
	free(ms);
	if (!member || (voters <= 1 && nm <= 1)) {
		ING_LOG_INFO("leave_on_shutdown: %s: stopping",
		             member ? "the only member stays" : "not a member");
		node_stop(n);
		return;
	}
	n->leaving = true;
	n->leave_deadline_ms = node_now_ms() + LEAVE_TIMEOUT_MS;
	ING_LOG_INFO("leave_on_shutdown: asking the cluster to remove this node");
	leave_send(n);
}
