/*
 * status.c - `status`: the cluster as this node sees it.
 *
 * Leader and term come from this node's Raft view; the members from the
 * Raft configuration, with API addresses from the members table (or the
 * configured peers).  Whether each member answers, and its applied index,
 * come from asking it (`node.info`, 500 ms bound) over one kept-open
 * client per member.  The reply goes out when every member has answered or
 * timed out, so status works with no leader and with members down.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_internal.h"
#include "rpc/args.h"

#define STATUS_PROBE_MS 500

struct probe {
	struct rpc_request r;
	struct status_req *sr;
	bool alive;
	uint64_t applied;
};

struct status_req {
	struct node *n;
	struct rpc_call *call;
	struct cons_member *members;
	unsigned nmembers;
	unsigned pending;
	struct probe probes[];
};

static void client_closed(void *data)
{
	node_release(data);
}

void node_status_close(struct node *n)
{
	for (unsigned i = 0; i < n->npeer_clients; i++) {
		node_hold(n);
		rpc_client_close(n->peer_clients[i].client, client_closed, n);
	}
	n->npeer_clients = 0;
}

static struct rpc_client *peer_client(struct node *n, uint64_t id)
{
	char addr[NODE_ADDRESS_MAX];
	struct rpc_client *c;
	struct ing_error e;

	for (unsigned i = 0; i < n->npeer_clients; i++)
		if (n->peer_clients[i].id == id)
			return n->peer_clients[i].client;
	if (n->npeer_clients == sizeof(n->peer_clients) / sizeof(n->peer_clients[0]))
		return NULL;
	node_member_api_address(n, id, addr);
	if (addr[0] == '\0')
		return NULL;
	const char *eps[] = {addr};
	struct rpc_client_options o = {
	    .endpoints = eps,
	    .nendpoints = 1,
	    .timeout_ms = STATUS_PROBE_MS,
	    .connect_timeout_ms = STATUS_PROBE_MS,
	};
	if (rpc_client_new(n->loop, &o, &c, &e) != 0)
		return NULL;
	n->peer_clients[n->npeer_clients].id = id;
	n->peer_clients[n->npeer_clients].client = c;
	n->npeer_clients++;
	return c;
}

static const char *role_name(enum cons_member_role r)
{
	switch (r) {
	case CONS_VOTER: return "voter";
	case CONS_STANDBY: return "standby";
	case CONS_SPARE: return "spare";
	}
	return "unknown";
}

static void finish(struct status_req *sr)
{
	struct node *n = sr->n;
	struct cons_status st;
	struct mp_out o;

	cons_status(n->cons, &st);
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	view_key(&o.pk, "leader");
	if (st.leader_id == 0)
		msgpack_pack_nil(&o.pk);
	else
		msgpack_pack_uint64(&o.pk, st.leader_id);
	view_key(&o.pk, "term");
	msgpack_pack_uint64(&o.pk, st.term);
	view_key(&o.pk, "node");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	view_key(&o.pk, "members");
	msgpack_pack_array(&o.pk, sr->nmembers);
	for (unsigned i = 0; i < sr->nmembers; i++) {
		const struct cons_member *m = &sr->members[i];
		char api[NODE_ADDRESS_MAX];
		node_member_api_address(n, m->id, api);
		msgpack_pack_map(&o.pk, 8);
		view_key(&o.pk, "id");
		msgpack_pack_uint64(&o.pk, m->id);
		view_key(&o.pk, "role");
		mp_pack_cstr(&o.pk, role_name(m->role));
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
		/* The leader's Raft view (cons_members fills it on a leader). */
		view_key(&o.pk, "last_contact_ms");
		if (st.leader_id == n->cfg.id && m->contact_ago_ms != UINT64_MAX)
			msgpack_pack_uint64(&o.pk, m->contact_ago_ms);
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

static void on_probe(struct rpc_request *r, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	struct probe *p = r->data;
	struct status_req *sr = p->sr;
	uint64_t applied;
	(void)err;
	if (status == 0 &&
	    rpc_arg_u64(result, "applied_index", UINT64_MAX, true, &applied, NULL) == 0) {
		p->alive = true;
		p->applied = applied;
	}
	if (--sr->pending == 0)
		finish(sr);
}

void node_status_start(struct node *n, struct rpc_call *call)
{
	struct cons_member *members;
	unsigned nm;
	struct status_req *sr;
	struct cons_status st;
	int rv = cons_members(n->cons, &members, &nm);

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
	cons_status(n->cons, &st);
	for (unsigned i = 0; i < nm; i++) {
		struct probe *p = &sr->probes[i];
		p->sr = sr;
		if (members[i].id == n->cfg.id) {
			p->alive = true;
			p->applied = st.last_applied;
			continue;
		}
		struct rpc_client *c = peer_client(n, members[i].id);
		if (c == NULL)
			continue;
		p->r.data = p;
		p->r.cb = on_probe;
		sr->pending++;
		if (rpc_client_call(c, &p->r, "node.info", NULL, 0, RPC_NO_RETRY) != 0)
			sr->pending--;
	}
	if (--sr->pending == 0)
		finish(sr);
}
