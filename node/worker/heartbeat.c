/*
 * heartbeat.c - this node tells the leader it is alive and what it can run.
 *
 * Every node, every heartbeat_interval_ms: registers itself (once, and
 * again until it succeeds: capabilities, labels, slots through the log) and
 * sends `node.heartbeat` to the leader through its own API (a follower
 * forwards it).  Heartbeats do not go through the log: the leader keeps the
 * time it last heard from each node in memory (node/leader/liveness.c).  A
 * restart whose registration is already in the replicated state as
 * configured adds nothing to the log.  The same tick runs the ready
 * leader's liveness check and deadlines.
 */
#include <stdlib.h>

#include "common/log.h"
#include "node/node_internal.h"

struct hb_req {
	struct rpc_request r;
	struct node *n;
	bool is_register;
};

static void on_hb(struct rpc_request *r, int status, const struct ing_error *err,
                  const msgpack_object *result)
{
	struct hb_req *h = r->data;
	(void)result;
	if (h->is_register) {
		if (status == 0) {
			h->n->registered = true;
			ING_LOG_INFO("node registered slots=%u caps=%u", h->n->cfg.slots,
			             h->n->cfg.ncaps);
		} else {
			ING_LOG_DEBUG("registration pending error=%s msg=\"%s\"",
			              ing_err_name(status), err != NULL ? err->msg : "");
		}
	}
	free(h);
}

static void send_register(struct node *n)
{
	struct hb_req *h = calloc(1, sizeof(*h));
	struct mp_out o;
	const struct node_config *c = &n->cfg;
	if (h == NULL)
		return;
	h->n = n;
	h->is_register = true;
	h->r.data = h;
	h->r.cb = on_hb;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, c->id);
	view_key(&o.pk, "capabilities");
	msgpack_pack_array(&o.pk, c->ncaps);
	for (unsigned i = 0; i < c->ncaps; i++)
		mp_pack_cstr(&o.pk, c->caps[i]);
	view_key(&o.pk, "labels");
	msgpack_pack_map(&o.pk, c->nlabels);
	for (unsigned i = 0; i < c->nlabels; i++) {
		mp_pack_cstr(&o.pk, c->label_keys[i]);
		mp_pack_cstr(&o.pk, c->label_values[i]);
	}
	view_key(&o.pk, "slots");
	msgpack_pack_uint32(&o.pk, c->slots);
	if (mp_out_failed(&o) != 0 ||
	    rpc_client_call(n->self_client, &h->r, "node.register", o.data, o.len, RPC_WRITE) != 0)
		free(h);
	mp_out_free(&o);
}

static void send_heartbeat(struct node *n)
{
	struct hb_req *h = calloc(1, sizeof(*h));
	struct mp_out o;
	if (h == NULL)
		return;
	h->n = n;
	h->r.data = h;
	h->r.cb = on_hb;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	if (mp_out_failed(&o) != 0 || rpc_client_call(n->self_client, &h->r, "node.heartbeat",
	                                              o.data, o.len, RPC_NO_RETRY) != 0)
		free(h);
	mp_out_free(&o);
}

/* True when the replicated state already holds this node's registration
 * as configured: a restart then adds nothing to the log. */
static bool registration_current(struct node *n)
{
	const struct node_config *c = &n->cfg;
	struct store_txn *t;
	struct ing_str val;
	struct rec_node nd;
	msgpack_zone z;
	uint8_t k[8];
	bool same = false;

	if (store_batch_pending(n->store) > 0 && node_flush(n) != 0)
		return false;
	if (store_read_begin(n->store, &t) != 0)
		return false;
	msgpack_zone_init(&z, 2048);
	store_be64(k, c->id);
	if (store_get(t, STORE_NODES, (struct ing_str){(const char *)k, 8}, &val) == 0 &&
	    rec_node_decode(val, &z, &nd, NULL) == 0 && nd.slots == c->slots &&
	    nd.ncaps == c->ncaps && nd.nlabels == c->nlabels) {
		same = true;
		for (unsigned i = 0; same && i < c->ncaps; i++)
			same = ing_str_eq_c(nd.caps[i], c->caps[i]);
		for (unsigned i = 0; same && i < c->nlabels; i++)
			same = ing_str_eq_c(nd.labels[i].key, c->label_keys[i]) &&
			       ing_str_eq_c(nd.labels[i].value, c->label_values[i]);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
	return same;
}

static void on_tick(uv_timer_t *h)
{
	struct node *n = h->data;
	if (n->stopping)
		return;
	if (!n->registered && registration_current(n))
		n->registered = true;
	if (!n->registered)
		send_register(n);
	else
		send_heartbeat(n);
	if (n->role == CONS_LEADER_READY) {
		node_liveness_check(n);
		node_deadline_tick(n);
	}
}

int node_liveness_start(struct node *n)
{
	const char *eps[] = {n->cfg.api_address};
	struct rpc_client_options o = {
	    .endpoints = eps,
	    .nendpoints = 1,
	    .timeout_ms = 30000,
	    .connect_timeout_ms = 1000,
	};
	struct ing_error e;
	int rv = rpc_client_new(n->loop, &o, &n->self_client, &e);
	if (rv != 0)
		return rv;
	uv_timer_init(n->loop, &n->liveness_timer);
	n->liveness_timer.data = n;
	n->open_handles++;
	uv_timer_start(&n->liveness_timer, on_tick, 50, n->cfg.heartbeat_interval_ms);
	return 0;
}

static void self_client_closed(void *data)
{
	node_release(data);
}

static void timer_closed(uv_handle_t *h)
{
	node_release(h->data);
}

void node_liveness_stop(struct node *n)
{
	if (n->self_client != NULL) {
		node_hold(n);
		rpc_client_close(n->self_client, self_client_closed, n);
		n->self_client = NULL;
		uv_close((uv_handle_t *)&n->liveness_timer, timer_closed);
	}
}
