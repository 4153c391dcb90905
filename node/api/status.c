/*
 * status.c - `status`: the cluster as this node sees it.
 *
 * Leader and term come from this node's Raft view; the members from the
 * Raft configuration, with API addresses from the members table (or the
 * configured peers).  Whether each member answers, and its applied index,
 * come from asking it (`node.info`, 500 ms bound) over one kept-open
 * client per member.  The reply goes out when every member has answered or
 * timed out, so status works with no leader and with members down.
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

#include "node/node_internal.h"
#include "rpc/args.h"

#define STATUS_PROBE_MS 500

struct probe {
	struct rpc_request r;
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
	char cluster[CMD_CLUSTER_ID_LEN + 1];
	node_cluster_id(n, cluster);
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 5);
	view_key(&o.pk, "cluster_id");
	if (cluster[0] == '\0')
		msgpack_pack_nil(&o.pk);
	else
		mp_pack_cstr(&o.pk, cluster);
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
		/* The leader's Raft view: ours when we lead, else its node.info. */
		view_key(&o.pk, "last_contact_ms");
		bool known = false;
		uint64_t ago = 0;
		if (st.leader_id == n->cfg.id) {
			known = m->id == n->cfg.id || m->contact_ago_ms != UINT64_MAX;
			ago = m->id == n->cfg.id ? 0 : m->contact_ago_ms;
		}
		for (unsigned k = 0; st.leader_id != n->cfg.id && k < sr->ncontacts; k++) {
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
