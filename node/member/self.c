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
 * would; their requests go through node/request.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mp.h"
#include "node/member/member_internal.h"
#include "node/node.h"
#include "node/request.h"
#include "rpc/args.h"
#include "storage/records.h"

#define REMOVED_CHECK_AFTER 5    /* election timeouts without a leader */
#define REMOVED_CHECK_EVERY 1000 /* ms between two checks */
#define REMOVED_CHECK_MS    2000 /* one member.check, failover included */
#define JOIN_RETRY_MS       1000
#define JOIN_EXTRA_MS       10000 /* a join waits for the catch-up, and this */
#define CLUSTER_CHECK_MS    5000
#define LEAVE_TIMEOUT_MS    15000
#define LEAVE_RETRY_MS      200
#define REMOVED_MARKER      "removed"

/* ---- the module's life -------------------------------------------------------- */

int member_new(struct node *n, struct member **out)
{
	struct member *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return ING_ENOMEM;
	m->n = n;
	uv_timer_init(node_loop(n), &m->retry);
	m->retry.data = m;
	m->retry_open = true;
	node_hold(n);
	*out = m;
	return 0;
}

void member_free(struct member *m)
{
	free(m);
}

static void retry_closed(uv_handle_t *h)
{
	struct member *m = h->data;
	node_release(m->n);
}

void member_stop(struct member *m)
{
	mc_stop(m);
	/* Raft's close completes a transfer's callback, which replies (a
	 * settling one is answered now); the requests of this module end when
	 * node/request.h closes its clients. */
	member_transfer_stop(m);
	if (m->retry_open) {
		m->retry_open = false;
		uv_close((uv_handle_t *)&m->retry, retry_closed);
	}
}

static void retry_after(struct member *m, uv_timer_cb cb, uint64_t ms)
{
	if (m->retry_open)
		uv_timer_start(&m->retry, cb, ms, 0);
}

/* ---- the removed marker ------------------------------------------------------- */

int member_check_marker(const char *data_dir, uint64_t id, struct ing_error *e)
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
static void removed(struct member *m, const char *how)
{
	struct node *n = m->n;
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", node_cfg(n)->data_dir, REMOVED_MARKER);
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		char cluster[CMD_CLUSTER_ID_LEN + 1];
		member_cluster_id(n, cluster);
		fprintf(f, "removed at %" PRIu64 " ms (%s), cluster %s\n", node_now_ms(), how,
		        cluster[0] ? cluster : "unknown");
		if (fclose(f) != 0)
			ING_LOG_WARN("cannot write %s: a later start will not know this node was "
			             "removed",
			             path);
	} else {
		ING_LOG_WARN("cannot create %s: a later start will not know this node was removed",
		             path);
	}
	ING_LOG_WARN("removed from the cluster (%s): stopping", how);
	node_stop(n);
}

/* ---- requests of this node about its membership --------------------------------- */

struct self_req {
	struct node_request q;
	struct member *m;
	void (*answered)(struct member *m, int status, const struct ing_error *err,
	                 const msgpack_object *result);
};

static void on_answer(struct node_request *q, int status, const struct ing_error *err,
                      const msgpack_object *result)
{
	struct self_req *r = q->data;
	r->answered(r->m, status, err, result);
	free(r);
}

static struct self_req *self_req_new(struct member *m, void (*answered)(struct member *, int,
                                                                        const struct ing_error *,
                                                                        const msgpack_object *))
{
	struct self_req *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->m = m;
	r->answered = answered;
	r->q.data = r;
	r->q.cb = on_answer;
	return r;
}

/* {id: this node} */
static void pack_self_id(struct member *m, struct mp_out *o)
{
	msgpack_pack_map(&o->pk, 1);
	mp_pack_cstr(&o->pk, "id");
	msgpack_pack_uint64(&o->pk, node_id(m->n));
}

/* ---- the removal check ----------------------------------------------------------- */

static void checked(struct member *m, int status, const struct ing_error *err,
                    const msgpack_object *result)
{
	(void)err;
	m->removal_checking = false;
	if (status == 0 && !node_stopping(m->n) && node_cons(m->n) != NULL) {
		const msgpack_object *v = rpc_arg_find(result, "member");
		if (v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && !v->via.boolean)
			removed(m, "the leader's configuration does not include this node");
	}
}

void member_removal_check(struct member *m)
{
	struct node *n = m->n;
	const char *addrs[NODE_MAX_PEERS];
	char buf[NODE_MAX_PEERS][NODE_ADDRESS_MAX];
	uint64_t now = node_now_ms();
	struct cons_status st;
	uint64_t after = (uint64_t)REMOVED_CHECK_AFTER * node_cfg(n)->election_timeout_ms;

	/* Campaigning (a removed voter does, forever) or knowing no leader
	 * since some time; or a follower the leader stopped reaching. */
	cons_status(node_cons(n), &st);
	if (st.role == CONS_CANDIDATE || st.leader_id == 0) {
		if (m->leaderless_since_ms == 0)
			m->leaderless_since_ms = now;
	} else {
		m->leaderless_since_ms = 0;
	}
	bool suspect = (m->leaderless_since_ms != 0 && now - m->leaderless_since_ms >= after) ||
	               (st.role == CONS_FOLLOWER && st.leader_contact_ago_ms >= after);
	if (!suspect || m->joining || m->removal_checking ||
	    now - m->removal_checked_ms < REMOVED_CHECK_EVERY)
		return;
	m->removal_checked_ms = now;
	unsigned na = member_other_api_addresses(n, buf, addrs);
	struct self_req *r;
	struct mp_out o;
	if (na == 0 || (r = self_req_new(m, checked)) == NULL)
		return;
	mp_out_init(&o);
	pack_self_id(m, &o);
	if (mp_out_failed(&o) == 0 &&
	    node_request_addresses(node_requests(n), &r->q, addrs, na, "member.check", o.data,
	                           o.len, RPC_NO_RETRY, REMOVED_CHECK_MS) == 0)
		m->removal_checking = true;
	else
		free(r);
	mp_out_free(&o);
}

/* ---- joining ------------------------------------------------------------------------ */

static void join_send(struct member *m);

static void on_join_retry(uv_timer_t *h)
{
	struct member *m = h->data;
	if (!node_stopping(m->n) && m->joining)
		join_send(m);
}

static void joined(struct member *m, int status, const struct ing_error *err,
                   const msgpack_object *result)
{
	struct node *n = m->n;
	(void)result;
	if (node_stopping(n))
		return;
	if (status == 0) {
		m->joining = false;
		ING_LOG_INFO("joined the cluster as %s", rec_role_name(node_cfg(n)->join_role));
		return;
	}
	bool transient = status == ING_ECONFLICT || status == ING_EUNAVAILABLE ||
	                 status == ING_ETIMEOUT || status == ING_ENOTLEADER;
	if (transient && node_now_ms() < m->join_deadline_ms) {
		ING_LOG_WARN("join not done yet, retrying error=%s msg=\"%s\"",
		             ing_err_name(status), err != NULL ? err->msg : "");
		retry_after(m, on_join_retry, JOIN_RETRY_MS);
		return;
	}
	ING_LOG_ERROR("cannot join the cluster error=%s msg=\"%s\"", ing_err_name(status),
	              err != NULL ? err->msg : "");
	node_fatal(n, transient ? ING_EUNAVAILABLE : ING_EINVAL,
	           "the cluster refused to add this node");
}

static void join_send(struct member *m)
{
	struct node *n = m->n;
	const struct node_config *cfg = node_cfg(n);
	const char *addrs[NODE_MAX_PEERS];
	struct self_req *r = self_req_new(m, joined);
	struct mp_out o;
	int rv;

	if (r == NULL) {
		node_fatal(n, ING_ENOMEM, "cannot ask to join");
		return;
	}
	for (unsigned i = 0; i < cfg->njoin; i++)
		addrs[i] = cfg->join[i];
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	mp_pack_cstr(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, cfg->id);
	mp_pack_cstr(&o.pk, "raft_address");
	mp_pack_cstr(&o.pk, cfg->raft_address);
	mp_pack_cstr(&o.pk, "api_address");
	mp_pack_cstr(&o.pk, cfg->api_address);
	mp_pack_cstr(&o.pk, "role");
	mp_pack_cstr(&o.pk, rec_role_name(cfg->join_role));
	rv = mp_out_failed(&o);
	if (rv == 0)
		rv = node_request_addresses(node_requests(n), &r->q, addrs, cfg->njoin,
		                            "member.add", o.data, o.len, 0,
		                            cfg->member_catchup_timeout_ms + JOIN_EXTRA_MS);
	mp_out_free(&o);
	if (rv != 0) {
		free(r);
		ING_LOG_ERROR("cannot ask to join error=%s", ing_err_name(rv));
		if (rv == ING_EINVAL)
			node_fatal(n, ING_EINVAL, "bad join addresses");
	}
}

static void cluster_checked(struct member *m, int status, const struct ing_error *err,
                            const msgpack_object *result)
{
	struct node *n = m->n;
	char mine[CMD_CLUSTER_ID_LEN + 1];
	struct ing_str theirs = {"", 0};
	struct ing_error e;

	if (node_stopping(n))
		return;
	if (status != 0) {
		ING_LOG_WARN(
		    "cannot compare cluster ids with the join addresses error=%s msg=\"%s\"",
		    ing_err_name(status), err != NULL ? err->msg : "");
		return;
	}
	rpc_arg_str(result, "cluster_id", CMD_CLUSTER_ID_LEN, false, &theirs, &e);
	member_cluster_id(n, mine);
	if (mine[0] == '\0' || theirs.len == 0 || ing_str_eq_c(theirs, mine)) {
		ING_LOG_INFO("already a member of cluster %s: --join ignored",
		             mine[0] ? mine : "(not named yet)");
		return;
	}
	ING_LOG_ERROR("this data directory belongs to cluster %s, but the members at %s are "
	              "cluster %.*s: refusing to run (use an empty data directory to join)",
	              mine, node_cfg(n)->join[0], ING_STR_FMT(theirs));
	node_fatal(n, ING_EINVAL, "data directory belongs to another cluster");
}

/* A node with data asked to join: it must be the same cluster. */
static void join_check_cluster(struct member *m)
{
	const struct node_config *cfg = node_cfg(m->n);
	const char *addrs[NODE_MAX_PEERS];
	struct self_req *r = self_req_new(m, cluster_checked);
	if (r == NULL)
		return;
	for (unsigned i = 0; i < cfg->njoin; i++)
		addrs[i] = cfg->join[i];
	if (node_request_addresses(node_requests(m->n), &r->q, addrs, cfg->njoin, "node.info", NULL,
	                           0, 0, CLUSTER_CHECK_MS) != 0)
		free(r);
}

int member_start(struct member *m)
{
	struct node *n = m->n;
	const struct node_config *cfg = node_cfg(n);
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	int rv;

	if (cfg->njoin == 0)
		return 0;
	rv = cons_members(node_cons(n), &ms, &nm);
	free(ms);
	if (rv != 0)
		return rv;
	if (nm > 0) {
		ING_LOG_INFO("--join given but this node already holds a configuration of %u "
		             "members: checking the cluster id, not joining",
		             nm);
		join_check_cluster(m);
		return 0;
	}
	m->joining = true;
	m->join_deadline_ms = node_now_ms() + 2ull * cfg->member_catchup_timeout_ms + 60000;
	ING_LOG_INFO("joining the cluster via %s%s as %s", cfg->join[0],
	             cfg->njoin > 1 ? " (and others)" : "", rec_role_name(cfg->join_role));
	join_send(m);
	return 0;
}

/* ---- leaving ---------------------------------------------------------------------- */

static void leave_send(struct member *m);

static void on_leave_retry(uv_timer_t *h)
{
	leave_send(h->data);
}

static void left(struct member *m, int status, const struct ing_error *err,
                 const msgpack_object *result)
{
	struct node *n = m->n;
	(void)result;
	if (node_stopping(n))
		return;
	if (status == 0) {
		removed(m, "left on shutdown");
		return;
	}
	if (status == ING_ECONFLICT && node_now_ms() < m->leave_deadline_ms) {
		/* another change first (another node leaving too): wait a turn */
		retry_after(m, on_leave_retry, LEAVE_RETRY_MS);
		return;
	}
	ING_LOG_WARN("could not leave the cluster on shutdown error=%s msg=\"%s\": stopping as "
	             "a member",
	             ing_err_name(status), err != NULL ? err->msg : "");
	node_stop(n);
}

static void leave_send(struct member *m)
{
	struct node *n = m->n;
	uint64_t now = node_now_ms();
	uint64_t remaining = m->leave_deadline_ms > now ? m->leave_deadline_ms - now : 1;
	struct self_req *r = self_req_new(m, left);
	struct mp_out o;
	int rv = ING_ENOMEM;

	if (r != NULL) {
		mp_out_init(&o);
		pack_self_id(m, &o);
		rv = mp_out_failed(&o);
		if (rv == 0)
			rv = node_request_self(node_requests(n), &r->q, "member.remove", o.data,
			                       o.len, 0, (unsigned)remaining);
		mp_out_free(&o);
	}
	if (rv != 0) {
		free(r);
		node_stop(n);
	}
}

bool member_joining(const struct member *m)
{
	return m != NULL && m->joining;
}

bool member_leaving(const struct member *m)
{
	return m != NULL && m->leaving;
}

bool member_leave(struct member *m)
{
	struct node *n = m->n;
	struct cons_member *ms = NULL;
	unsigned nm = 0, voters = 0;
	bool member = false;

	if (m->leaving || !node_cfg(n)->leave_on_shutdown || node_cons(n) == NULL ||
	    cons_members(node_cons(n), &ms, &nm) != 0) {
		free(ms);
		return false;
	}
	for (unsigned i = 0; i < nm; i++) {
		voters += ms[i].role == CONS_VOTER;
		member |= ms[i].id == node_id(n);
	}
	free(ms);
	if (!member || (voters <= 1 && nm <= 1)) {
		ING_LOG_INFO("leave_on_shutdown: %s: stopping",
		             member ? "the only member stays" : "not a member");
		return false;
	}
	m->leaving = true;
	m->leave_deadline_ms = node_now_ms() + LEAVE_TIMEOUT_MS;
	ING_LOG_INFO("leave_on_shutdown: asking the cluster to remove this node");
	leave_send(m);
	return true;
}
