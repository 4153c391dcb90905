/*
 * status.c - `status`: the cluster as this node sees it; and `node.info`,
 * this node's own view, answered at once (what `status` asks each member).
 *
 * Leader and term come from this node's Raft view; the members from the
 * Raft configuration, with API addresses from the members table (or the
 * configured peers).  Whether each member answers, and its applied index,
 * come from asking it (`node.info`, 500 ms bound) over the kept-open
 * connection to that member (node/request.h).  The reply goes out when
 * every member has answered or timed out, so status works with no leader
 * and with members down.
 *
 * last_contact_ms is the leader's knowledge (how long ago it heard from each
 * member over Raft): this node's own when it leads (0 for itself), else the
 * `contacts` map of the leader's node.info answer (nil when the leader did
 * not answer, or there is none).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/member/change.h"
#include "node/member/member.h"
#include "node/request.h"
#include "rpc/args.h"

#define STATUS_PROBE_MS 500

struct probe {
	struct node_request q;
	struct status_req *sr;
	bool alive;
	uint64_t applied;
};

#define STATUS_MAX_CONTACTS 64

struct status_req {
	struct node *n;
	struct rpc_call *call;
	struct cons_member *members;
	unsigned nmembers;
	unsigned pending;
	/* The leader's contacts, when it is another node that answered. */
	unsigned ncontacts;
	struct {
		uint64_t id;
		bool known;
		uint64_t ago_ms;
	} contacts[STATUS_MAX_CONTACTS];
	struct probe probes[];
};

static void finish(struct status_req *sr)
{
	struct node *n = sr->n;
	struct cons_status st;
	struct mp_out o;

	if (node_cons(n) == NULL) { /* the node closed while members were asked */
		rpc_reply_error(sr->call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                node_id(n));
		free(sr->members);
		free(sr);
		return;
	}
	cons_status(node_cons(n), &st);
	char cluster[CMD_CLUSTER_ID_LEN + 1];
	member_cluster_id(n, cluster);
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 5);
	view_key(&o.pk, "cluster_id");
	if (cluster[0] == '\0')
		msgpack_pack_nil(&o.pk);
	else
		mp_pack_cstr(&o.pk, cluster);
	view_key(&o.pk, "leader");
	view_opt_u64(&o.pk, st.leader_id);
	view_key(&o.pk, "term");
	msgpack_pack_uint64(&o.pk, st.term);
	view_key(&o.pk, "node");
	msgpack_pack_uint64(&o.pk, node_id(n));
	view_key(&o.pk, "members");
	msgpack_pack_array(&o.pk, sr->nmembers);
	for (unsigned i = 0; i < sr->nmembers; i++) {
		const struct cons_member *m = &sr->members[i];
		char api[NODE_ADDRESS_MAX];
		member_api_address(n, m->id, api);
		msgpack_pack_map(&o.pk, 8);
		view_key(&o.pk, "id");
		msgpack_pack_uint64(&o.pk, m->id);
		view_key(&o.pk, "role");
		mp_pack_cstr(&o.pk, mc_role_name(m->role));
		view_key(&o.pk, "raft_address");
		mp_pack_cstr(&o.pk, m->address);
		view_key(&o.pk, "api_address");
		mp_pack_cstr(&o.pk, api);
		view_key(&o.pk, "alive");
		if (sr->probes[i].alive)
			msgpack_pack_true(&o.pk);
		else
			msgpack_pack_false(&o.pk);
		view_key(&o.pk, "applied_index");
		if (sr->probes[i].alive)
			msgpack_pack_uint64(&o.pk, sr->probes[i].applied);
		else
			msgpack_pack_nil(&o.pk);
		view_key(&o.pk, "leader");
		if (m->id == st.leader_id)
			msgpack_pack_true(&o.pk);
		else
			msgpack_pack_false(&o.pk);
		/* The leader's Raft view: ours when we lead, else its node.info. */
		view_key(&o.pk, "last_contact_ms");
		bool known = false;
		uint64_t ago = 0;
		if (st.leader_id == node_id(n)) {
			known = m->id == node_id(n) || m->contact_ago_ms != UINT64_MAX;
			ago = m->id == node_id(n) ? 0 : m->contact_ago_ms;
		}
		for (unsigned k = 0; st.leader_id != node_id(n) && k < sr->ncontacts; k++) {
			if (sr->contacts[k].id == m->id) {
				known = sr->contacts[k].known;
				ago = sr->contacts[k].ago_ms;
			}
		}
		if (known)
			msgpack_pack_uint64(&o.pk, ago);
		else
			msgpack_pack_nil(&o.pk);
	}
	if (mp_out_failed(&o) != 0)
		rpc_reply_error(sr->call, ING_ENOMEM, "out of memory");
	else
		rpc_reply(sr->call, o.data, o.len);
	mp_out_free(&o);
	free(sr->members);
	free(sr);
}

static void on_probe(struct node_request *q, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	struct probe *p = q->data;
	struct status_req *sr = p->sr;
	uint64_t applied;
	(void)err;
	if (status == 0 &&
	    rpc_arg_u64(result, "applied_index", UINT64_MAX, true, &applied, NULL) == 0) {
		p->alive = true;
		p->applied = applied;
		const msgpack_object *c = rpc_arg_find(result, "contacts");
		for (uint32_t i = 0; c != NULL && c->type == MSGPACK_OBJECT_MAP &&
		                     i < c->via.map.size && sr->ncontacts < STATUS_MAX_CONTACTS;
		     i++) {
			const msgpack_object *k = &c->via.map.ptr[i].key,
			                     *v = &c->via.map.ptr[i].val;
			char id[24];
			if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof(id))
				continue;
			memcpy(id, k->via.str.ptr, k->via.str.size);
			id[k->via.str.size] = '\0';
			sr->contacts[sr->ncontacts].id = strtoull(id, NULL, 10);
			sr->contacts[sr->ncontacts].known =
			    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
			sr->contacts[sr->ncontacts].ago_ms =
			    sr->contacts[sr->ncontacts].known ? v->via.u64 : 0;
			sr->ncontacts++;
		}
	}
	if (--sr->pending == 0)
		finish(sr);
}

void api_status_start(struct node *n, struct rpc_call *call)
{
	struct cons_member *members;
	unsigned nm;
	struct status_req *sr;
	struct cons_status st;
	int rv = cons_members(node_cons(n), &members, &nm);

	if (rv != 0) {
		rpc_reply_error(call, rv, "cannot read the cluster configuration: %s",
		                ing_err_msg(rv));
		return;
	}
	sr = calloc(1, sizeof(*sr) + nm * sizeof(struct probe));
	if (sr == NULL) {
		free(members);
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	sr->n = n;
	sr->call = call;
	sr->members = members;
	sr->nmembers = nm;
	sr->pending = 1; /* held until every probe is sent */
	cons_status(node_cons(n), &st);
	for (unsigned i = 0; i < nm; i++) {
		struct probe *p = &sr->probes[i];
		p->sr = sr;
		if (members[i].id == node_id(n)) {
			p->alive = true;
			p->applied = st.last_applied;
			continue;
		}
		p->q.data = p;
		p->q.cb = on_probe;
		sr->pending++;
		if (node_request_member(node_requests(n), &p->q, members[i].id, "node.info", NULL,
		                        0, RPC_NO_RETRY, STATUS_PROBE_MS) != 0)
			sr->pending--;
	}
	if (--sr->pending == 0)
		finish(sr);
}

void api_op_node_info(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {NULL};
	struct cons_status st;
	struct mp_out o;

	if (api_check_known(call, known) != 0)
		return;
	char cluster[CMD_CLUSTER_ID_LEN + 1];
	member_cluster_id(n, cluster);
	cons_status(node_cons(n), &st);
	/* A leader adds how long ago it heard from each member (status on a
	 * follower shows them from here). */
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	bool leads = st.role == CONS_LEADER_READY && cons_members(node_cons(n), &ms, &nm) == 0;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 9);
	view_key(&o.pk, "contacts");
	if (leads) {
		msgpack_pack_map(&o.pk, nm);
		for (unsigned i = 0; i < nm; i++) {
			char key[24];
			snprintf(key, sizeof(key), "%" PRIu64, ms[i].id);
			mp_pack_cstr(&o.pk, key);
			if (ms[i].id == node_id(n))
				msgpack_pack_uint64(&o.pk, 0);
			else if (ms[i].contact_ago_ms == UINT64_MAX)
				msgpack_pack_nil(&o.pk);
			else
				msgpack_pack_uint64(&o.pk, ms[i].contact_ago_ms);
		}
	} else {
		msgpack_pack_nil(&o.pk);
	}
	free(ms);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, node_id(n));
	view_key(&o.pk, "cluster_id");
	if (cluster[0] == '\0')
		msgpack_pack_nil(&o.pk);
	else
		mp_pack_cstr(&o.pk, cluster);
	view_key(&o.pk, "role");
	mp_pack_cstr(&o.pk, cons_role_name(st.role));
	view_key(&o.pk, "leader");
	view_opt_u64(&o.pk, st.leader_id);
	view_key(&o.pk, "term");
	msgpack_pack_uint64(&o.pk, st.term);
	view_key(&o.pk, "applied_index");
	msgpack_pack_uint64(&o.pk, st.last_applied);
	view_key(&o.pk, "commit_index");
	msgpack_pack_uint64(&o.pk, st.commit_index);
	view_key(&o.pk, "last_index");
	msgpack_pack_uint64(&o.pk, st.last_index);
	api_reply_out(call, &o);
}

void api_op_status(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"stale", NULL};
	if (api_check_known(call, known) != 0)
		return;
	api_status_start(n, call);
}
