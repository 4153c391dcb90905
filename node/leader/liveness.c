/*
 * liveness.c - heartbeats and the leader's down/up decisions.
 *
 * Every node, every heartbeat_interval_ms: registers itself (once, and
 * again until it succeeds: capabilities, labels, slots through the log) and
 * sends `node.heartbeat` to the leader through its own API (a follower
 * forwards it).  A node that knows no leader sends it (and its
 * registration) to the other members' APIs instead, and the first that answers forwards it to its
 * leader: a spare (libraft sends spares nothing, so they never learn who
 * leads) stays known as live that way.  Heartbeats do not go through the
 * log: the leader keeps the time it last heard from each node in memory.
 *
 * The ready leader, on the same tick: a registered node not marked down
 * that it has not heard from for node_down_after_ms is declared down by a
 * node_down command (its attempts are requeued by the state machine); a
 * node marked down that heartbeats again is declared up; the attempts
 * still running on a draining node whose drain deadline passed are
 * requeued (requeue commands; the state machine rejects duplicates of a
 * decision already applied, so repeating one on the next tick is
 * harmless); jobs whose deadline passed are expired (node/leader/deadline.c).
 * A new leader
 * knows nobody's last heartbeat, so it counts every node as heard from at
 * the moment it became ready: a full grace period before any decision to
 * declare a node down.  Placing work is another matter: the scheduler uses
 * only nodes this leader has itself heard from (node_liveness_last_ms),
 * so a node that died with the old leader gets no new work meanwhile.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/node_internal.h"
#include "rpc/args.h"

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

static void peers_client_closed(void *data)
{
	node_release(data);
}

static void drop_peers_client(struct node *n)
{
	if (n->hb_peers == NULL)
		return;
	node_hold(n);
	rpc_client_close(n->hb_peers, peers_client_closed, n);
	n->hb_peers = NULL;
}

/* Where this node's heartbeat goes: its own API (which forwards to the
 * leader), or, when no leader is known, the other members' APIs. */
static struct rpc_client *heartbeat_client(struct node *n)
{
	const char *eps[NODE_MAX_PEERS];
	char buf[NODE_MAX_PEERS][NODE_ADDRESS_MAX];
	struct cons_member *ms = NULL;
	unsigned nm = 0, ne = 0;
	struct ing_error e;

	if (n->leader_id != 0 || n->cons == NULL) {
		drop_peers_client(n);
		return n->self_client;
	}
	if (n->hb_peers != NULL)
		return n->hb_peers;
	if (cons_members(n->cons, &ms, &nm) != 0)
		return n->self_client;
	for (unsigned i = 0; i < nm && ne < NODE_MAX_PEERS; i++) {
		if (ms[i].id == n->cfg.id)
			continue;
		node_member_api_address(n, ms[i].id, buf[ne]);
		if (buf[ne][0] != '\0') {
			eps[ne] = buf[ne];
			ne++;
		}
	}
	free(ms);
	struct rpc_client_options o = {
	    .endpoints = eps,
	    .nendpoints = ne,
	    .timeout_ms = 2 * n->cfg.heartbeat_interval_ms + 1000,
	    .connect_timeout_ms = 500,
	};
	if (ne == 0 || rpc_client_new(n->loop, &o, &n->hb_peers, &e) != 0) {
		n->hb_peers = NULL;
		return n->self_client;
	}
	return n->hb_peers;
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
	if (mp_out_failed(&o) != 0 || rpc_client_call(heartbeat_client(n), &h->r, "node.register",
	                                              o.data, o.len, RPC_WRITE) != 0)
		free(h);
	mp_out_free(&o);
}

static void send_heartbeat(struct node *n)
{
	struct hb_req *h = calloc(1, sizeof(*h));
	struct rpc_client *via = heartbeat_client(n);
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
	if (mp_out_failed(&o) != 0 ||
	    rpc_client_call(via, &h->r, "node.heartbeat", o.data, o.len, RPC_NO_RETRY) != 0)
		free(h);
	mp_out_free(&o);
}

static unsigned seen_slot(struct node *n, uint64_t id)
{
	for (unsigned i = 0; i < n->nseen; i++)
		if (n->seen[i].id == id)
			return i;
	if (n->nseen == sizeof(n->seen) / sizeof(n->seen[0]))
		return n->nseen; /* full: not tracked */
	n->seen[n->nseen].id = id;
	n->seen[n->nseen].last_ms = n->leader_since_ms;
	n->seen[n->nseen].proposing = false;
	return n->nseen++;
}

void node_liveness_seen(struct node *n, uint64_t id)
{
	unsigned i = seen_slot(n, id);
	uint64_t now = node_now_ms();
	if (i >= n->nseen)
		return;
	/* First heard by this leader, or heard again after a silence: the
	 * scheduler may place work there now (scheduler.c). */
	if (n->seen[i].last_ms <= n->leader_since_ms ||
	    now - n->seen[i].last_ms > n->cfg.node_down_after_ms)
		n->sched_full = true;
	n->seen[i].last_ms = now;
}

uint64_t node_liveness_last_ms(struct node *n, uint64_t id)
{
	/* A slot holding only the grace period's start was never heard. */
	for (unsigned i = 0; i < n->nseen; i++)
		if (n->seen[i].id == id && n->seen[i].last_ms > n->leader_since_ms)
			return n->seen[i].last_ms;
	return 0;
}

void node_liveness_leader(struct node *n)
{
	n->leader_since_ms = node_now_ms();
	for (unsigned i = 0; i < n->nseen; i++) {
		n->seen[i].last_ms = n->leader_since_ms;
		n->seen[i].proposing = false;
	}
	node_deadline_leader(n);
}

static void on_decided(struct node *n, int status, const struct node_result *r, void *data)
{
	unsigned slot = (unsigned)(uintptr_t)data;
	(void)status;
	(void)r;
	if (slot < n->nseen)
		n->seen[slot].proposing = false;
}

static void decide(struct node *n, unsigned slot, uint32_t type, const char *why)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = type;
	c.request_id = ing_str_c("");
	if (type == CMD_NODE_DOWN) {
		c.u.node_down.node = n->seen[slot].id;
		c.u.node_down.reason = ing_str_c(why);
	} else {
		c.u.node_up.node = n->seen[slot].id;
	}
	if (node_propose_internal(n, &c, on_decided, (void *)(uintptr_t)slot) == 0) {
		n->seen[slot].proposing = true;
		ING_LOG_WARN("node %s node=%" PRIu64 " reason=\"%s\"",
		             type == CMD_NODE_DOWN ? "declared down" : "declared up",
		             n->seen[slot].id, why);
	}
}

/* A draining node whose deadline passed: what still runs there is
 * requeued (its worker sees the attempts fenced and stops them). */
static void requeue_drained(struct node *n, struct store_txn *t, uint64_t node_id)
{
	struct store_iter *it;
	struct ing_str k, v;
	uint8_t prefix[8];

	store_be64(prefix, node_id);
	if (store_iter_open(t, STORE_ASSIGNMENTS, (struct ing_str){(const char *)prefix, 8}, &it) !=
	    0)
		return;
	while (store_iter_next(it, &k, &v) == 0) {
		if (k.len != 16 || store_get_be64(k.ptr) != node_id || v.len != 4)
			break;
		struct cmd c;
		memset(&c, 0, sizeof(c));
		c.type = CMD_JOB_REQUEUE;
		c.request_id = ing_str_c("");
		c.u.job_requeue.job = store_get_be64(k.ptr + 8);
		c.u.job_requeue.attempt = store_get_be32(v.ptr);
		c.u.job_requeue.reason = ing_str_c("the node's drain deadline passed");
		if (node_propose_internal(n, &c, NULL, NULL) == 0)
			ING_LOG_INFO("drain deadline passed: attempt requeued node=%" PRIu64
			             " job=%" PRIu64,
			             node_id, c.u.job_requeue.job);
	}
	store_iter_close(it);
}

static void leader_check(struct node *n)
{
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	msgpack_zone z;
	uint64_t now = node_now_ms();
	char why[96];

	if (store_read_begin(n->store, &t) != 0)
		return;
	msgpack_zone_init(&z, 2048);
	if (store_iter_open(t, STORE_NODES, (struct ing_str){"", 0}, &it) == 0) {
		while (store_iter_next(it, &k, &v) == 0) {
			struct rec_node nd;
			if (rec_node_decode(v, &z, &nd, NULL) != 0)
				break;
			unsigned s = seen_slot(n, nd.id);
			msgpack_zone_clear(&z);
			if (s >= n->nseen || n->seen[s].proposing)
				continue;
			if (nd.draining && nd.drain_deadline_ms != 0 &&
			    now >= nd.drain_deadline_ms && nd.used_slots > 0)
				requeue_drained(n, t, nd.id);
			uint64_t silent = now - n->seen[s].last_ms;
			if (!nd.down && silent > n->cfg.node_down_after_ms) {
				snprintf(why, sizeof(why), "no heartbeat for %" PRIu64 " ms",
				         silent);
				decide(n, s, CMD_NODE_DOWN, why);
			} else if (nd.down && silent < n->cfg.heartbeat_interval_ms * 2) {
				decide(n, s, CMD_NODE_UP, "heartbeats again");
			}
		}
		store_iter_close(it);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
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
		leader_check(n);
		node_deadline_tick(n);
	}
}

int node_liveness_start(struct node *n)
{
	const char *eps[] = {n->cfg.api_address};
	/* The worker's reports go through this client: its frame limit is the
	 * server's, so an oversized report is refused here (ING_ETOOBIG), not
	 * by a server that would drop the connection. */
	struct rpc_client_options o = {
	    .endpoints = eps,
	    .nendpoints = 1,
	    .max_frame_bytes = n->cfg.max_frame_bytes,
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
	drop_peers_client(n);
	if (n->self_client != NULL) {
		node_hold(n);
		rpc_client_close(n->self_client, self_client_closed, n);
		n->self_client = NULL;
		uv_close((uv_handle_t *)&n->liveness_timer, timer_closed);
	}
}
