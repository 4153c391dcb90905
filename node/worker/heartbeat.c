/*
 * heartbeat.c - this node tells the leader it is alive and what it can run.
 *
 * Every node, every heartbeat_interval_ms: registers itself (once, and
 * again until it succeeds: capabilities, labels, slots through the log) and
 * sends `node.heartbeat` to the leader through its own API (a follower
 * forwards it).  A node that knows no leader sends them to the other
 * members' APIs instead, and the first that answers forwards them to its
 * leader: a spare (libraft sends spares nothing, so they never learn who
 * leads) stays known as live that way.  Heartbeats do not go through the
 * log: the leader keeps the time it last heard from each node in memory
 * (node/leader/liveness.c).  A restart whose registration is already in
 * the replicated state as configured adds nothing to the log.
 */
#include "node/worker/heartbeat.h"

#include <stdbool.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/mp.h"
#include "node/member/member.h"
#include "node/request.h"
#include "storage/records.h"
#include "storage/store.h"

#define HEARTBEAT_TIMEOUT_MS 30000 /* one registration or heartbeat, retries included */

struct heartbeat {
	struct node *n;
	bool registered;
};

struct hb_req {
	struct node_request q;
	struct heartbeat *hb;
	bool is_register;
};

int heartbeat_new(struct node *n, struct heartbeat **out)
{
	struct heartbeat *hb = calloc(1, sizeof(*hb));
	if (hb == NULL)
		return ING_ENOMEM;
	hb->n = n;
	*out = hb;
	return 0;
}

void heartbeat_free(struct heartbeat *hb)
{
	free(hb);
}

static void on_hb(struct node_request *q, int status, const struct ing_error *err,
                  const msgpack_object *result)
{
	struct hb_req *h = q->data;
	const struct node_config *c = node_cfg(h->hb->n);
	(void)result;
	if (h->is_register) {
		if (status == 0) {
			h->hb->registered = true;
			ING_LOG_INFO("node registered slots=%u caps=%u gpus=%u", c->slots, c->ncaps,
			             c->ngpus);
		} else {
			ING_LOG_DEBUG("registration pending error=%s msg=\"%s\"",
			              ing_err_name(status), err != NULL ? err->msg : "");
		}
	}
	free(h);
}

/* With no leader known: h to the first of the other members' APIs that
 * answers.  ING_ENOTFOUND when none is known (then: to this node's own). */
static int send_peers(struct heartbeat *hb, struct hb_req *h, struct mp_out *o, const char *op,
                      unsigned flags)
{
	struct node *n = hb->n;
	char buf[NODE_MAX_PEERS][NODE_ADDRESS_MAX];
	const char *addrs[NODE_MAX_PEERS];
	unsigned na = member_other_api_addresses(n, buf, addrs);

	if (na == 0)
		return ING_ENOTFOUND;
	return node_request_addresses(node_requests(n), &h->q, addrs, na, op, o->data, o->len,
	                              flags, 2 * node_cfg(n)->heartbeat_interval_ms + 1000);
}

/* Sends args (op) to this node's own API, or with no leader known to the
 * other members' (send_peers). */
static void send_hb(struct heartbeat *hb, struct mp_out *o, const char *op, bool is_register,
                    unsigned flags)
{
	struct hb_req *h = calloc(1, sizeof(*h));
	int rv;
	if (h == NULL)
		return;
	h->hb = hb;
	h->is_register = is_register;
	h->q.data = h;
	h->q.cb = on_hb;
	rv = mp_out_failed(o);
	if (rv == 0 && node_leader_id(hb->n) == 0)
		rv = send_peers(hb, h, o, op, flags);
	else if (rv == 0)
		rv = ING_ENOTFOUND;
	if (rv == ING_ENOTFOUND)
		rv = node_request_self(node_requests(hb->n), &h->q, op, o->data, o->len, flags,
		                       HEARTBEAT_TIMEOUT_MS);
	if (rv != 0)
		free(h);
}

static void send_register(struct heartbeat *hb)
{
	const struct node_config *c = node_cfg(hb->n);
	struct mp_out o;

	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 5);
	mp_pack_cstr(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, c->id);
	mp_pack_cstr(&o.pk, "capabilities");
	msgpack_pack_array(&o.pk, c->ncaps);
	for (unsigned i = 0; i < c->ncaps; i++)
		mp_pack_cstr(&o.pk, c->caps[i]);
	mp_pack_cstr(&o.pk, "labels");
	msgpack_pack_map(&o.pk, c->nlabels);
	for (unsigned i = 0; i < c->nlabels; i++) {
		mp_pack_cstr(&o.pk, c->label_keys[i]);
		mp_pack_cstr(&o.pk, c->label_values[i]);
	}
	mp_pack_cstr(&o.pk, "slots");
	msgpack_pack_uint32(&o.pk, c->slots);
	mp_pack_cstr(&o.pk, "gpus");
	msgpack_pack_array(&o.pk, c->ngpus);
	for (unsigned i = 0; i < c->ngpus; i++) {
		msgpack_pack_map(&o.pk, 3);
		mp_pack_cstr(&o.pk, "index");
		msgpack_pack_uint32(&o.pk, c->gpus[i].index);
		mp_pack_cstr(&o.pk, "uuid");
		mp_pack_cstr(&o.pk, c->gpus[i].uuid);
		mp_pack_cstr(&o.pk, "memory_bytes");
		msgpack_pack_uint64(&o.pk, c->gpus[i].memory_bytes);
	}
	send_hb(hb, &o, "node.register", true, RPC_WRITE);
	mp_out_free(&o);
}

static void send_heartbeat(struct heartbeat *hb)
{
	struct mp_out o;

	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	mp_pack_cstr(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, node_id(hb->n));
	send_hb(hb, &o, "node.heartbeat", false, RPC_NO_RETRY);
	mp_out_free(&o);
}

/* True when the replicated state already holds this node's registration
 * as configured: a restart then adds nothing to the log. */
static bool registration_current(struct heartbeat *hb)
{
	struct node *n = hb->n;
	const struct node_config *c = node_cfg(n);
	struct store_txn *t;
	struct ing_str val;
	struct rec_node nd;
	msgpack_zone z;
	uint8_t k[8];
	bool same = false;

	if (store_batch_pending(node_store(n)) > 0 && node_flush(n) != 0)
		return false;
	if (store_read_begin(node_store(n), &t) != 0)
		return false;
	msgpack_zone_init(&z, 2048);
	store_be64(k, c->id);
	if (store_get(t, STORE_NODES, (struct ing_str){(const char *)k, 8}, &val) == 0 &&
	    rec_node_decode(val, &z, &nd, NULL) == 0 && nd.slots == c->slots &&
	    nd.ncaps == c->ncaps && nd.nlabels == c->nlabels && nd.ngpus == c->ngpus) {
		same = true;
		for (unsigned i = 0; same && i < c->ngpus; i++)
			same = nd.gpus[i].index == c->gpus[i].index &&
			       ing_str_eq_c(nd.gpus[i].uuid, c->gpus[i].uuid) &&
			       nd.gpus[i].memory_bytes == c->gpus[i].memory_bytes;
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

void heartbeat_tick(struct heartbeat *hb)
{
	if (!hb->registered && registration_current(hb))
		hb->registered = true;
	if (!hb->registered)
		send_register(hb);
	else
		send_heartbeat(hb);
}
