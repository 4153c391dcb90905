/*
 * liveness.c - the leader's down/up decisions.
 *
 * Heartbeats (node/worker/heartbeat.c) do not go through the log: the
 * ready leader keeps the time it last heard from each node in memory.  On
 * each heartbeat tick: a registered node not marked down that it has not
 * heard from for node_down_after_ms is declared down by a node_down command
 * (its attempts are requeued by the state machine); a node marked down that
 * heartbeats again is declared up; the attempts still running on a
 * draining node whose drain deadline passed are requeued (requeue
 * commands; the state machine rejects duplicates of a decision already
 * applied, so repeating one on the next tick is harmless).  A new leader
 * knows nobody's last heartbeat, so it counts every node as heard from at
 * the moment it became ready: a full grace period before any decision.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "node/node_internal.h"

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
	if (i < n->nseen)
		n->seen[i].last_ms = node_now_ms();
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

void node_liveness_check(struct node *n)
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
