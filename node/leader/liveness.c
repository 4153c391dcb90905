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
 * the moment it became ready: a full grace period before any decision to
 * declare a node down.  Placing work is another matter: the scheduler uses
 * only nodes this leader has itself heard from (liveness_last_ms), so a
 * node that died with the old leader gets no new work meanwhile.
 */
#include "node/leader/liveness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/propose.h"
#include "storage/records.h"

struct liveness {
	uint64_t leader_since_ms;
	struct {
		uint64_t id;
		uint64_t last_ms;
		bool proposing;
	} seen[LIVENESS_MAX_NODES];
	unsigned nseen;
};

int liveness_new(struct liveness **out)
{
	struct liveness *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return ING_ENOMEM;
	*out = l;
	return 0;
}

void liveness_free(struct liveness *l)
{
	free(l);
}

static unsigned seen_slot(struct liveness *l, uint64_t id)
{
	for (unsigned i = 0; i < l->nseen; i++)
		if (l->seen[i].id == id)
			return i;
	if (l->nseen == LIVENESS_MAX_NODES)
		return l->nseen; /* full: not tracked */
	l->seen[l->nseen].id = id;
	l->seen[l->nseen].last_ms = l->leader_since_ms;
	l->seen[l->nseen].proposing = false;
	return l->nseen++;
}

uint64_t liveness_seen(struct liveness *l, uint64_t id, uint64_t now_ms)
{
	uint64_t before = liveness_last_ms(l, id);
	unsigned i = seen_slot(l, id);
	if (i < l->nseen)
		l->seen[i].last_ms = now_ms;
	return before;
}

uint64_t liveness_last_ms(const struct liveness *l, uint64_t id)
{
	/* A slot holding only the grace period's start was never heard. */
	for (unsigned i = 0; i < l->nseen; i++)
		if (l->seen[i].id == id && l->seen[i].last_ms > l->leader_since_ms)
			return l->seen[i].last_ms;
	return 0;
}

void liveness_leader(struct liveness *l, uint64_t now_ms)
{
	l->leader_since_ms = now_ms;
	for (unsigned i = 0; i < l->nseen; i++) {
		l->seen[i].last_ms = l->leader_since_ms;
		l->seen[i].proposing = false;
	}
}

static void decide(struct liveness *l, const struct liveness_env *env, unsigned slot, uint32_t type,
                   const char *why)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = type;
	c.request_id = ing_str_c("");
	if (type == CMD_NODE_DOWN) {
		c.u.node_down.node = l->seen[slot].id;
		c.u.node_down.reason = ing_str_c(why);
	} else {
		c.u.node_up.node = l->seen[slot].id;
	}
	l->seen[slot].proposing = true;
	if (env->propose(env->data, &c, &l->seen[slot].proposing) == 0)
		ING_LOG_WARN("node %s node=%" PRIu64 " reason=\"%s\"",
		             type == CMD_NODE_DOWN ? "declared down" : "declared up",
		             l->seen[slot].id, why);
	else
		l->seen[slot].proposing = false;
}

/* A draining node whose deadline passed: what still runs there is
 * requeued (its worker sees the attempts fenced and stops them). */
static void requeue_drained(const struct liveness_env *env, struct store_txn *t, uint64_t node_id)
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
		if (env->propose(env->data, &c, NULL) == 0)
			ING_LOG_INFO("drain deadline passed: attempt requeued node=%" PRIu64
			             " job=%" PRIu64,
			             node_id, c.u.job_requeue.job);
	}
	store_iter_close(it);
}

void liveness_check(struct liveness *l, struct store_txn *t, const struct liveness_env *env)
{
	struct store_iter *it;
	struct ing_str k, v;
	msgpack_zone z;
	uint64_t now = env->now_ms;
	char why[96];

	msgpack_zone_init(&z, 2048);
	if (store_iter_open(t, STORE_NODES, (struct ing_str){"", 0}, &it) == 0) {
		while (store_iter_next(it, &k, &v) == 0) {
			struct rec_node nd;
			if (rec_node_decode(v, &z, &nd, NULL) != 0)
				break;
			unsigned s = seen_slot(l, nd.id);
			msgpack_zone_clear(&z);
			if (s >= l->nseen || l->seen[s].proposing)
				continue;
			if (nd.draining && nd.drain_deadline_ms != 0 &&
			    now >= nd.drain_deadline_ms && nd.used_slots > 0)
				requeue_drained(env, t, nd.id);
			uint64_t silent = now - l->seen[s].last_ms;
			if (!nd.down && silent > env->down_after_ms) {
				snprintf(why, sizeof(why), "no heartbeat for %" PRIu64 " ms",
				         silent);
				decide(l, env, s, CMD_NODE_DOWN, why);
			} else if (nd.down && silent < env->heartbeat_interval_ms * 2ull) {
				decide(l, env, s, CMD_NODE_UP, "heartbeats again");
			}
		}
		store_iter_close(it);
	}
	msgpack_zone_destroy(&z);
}

static void on_proposal_done(void *data, int status, const struct node_result *r)
{
	bool *pending = data;
	(void)status;
	(void)r;
	if (pending != NULL)
		*pending = false;
}

static int propose_decision(void *data, const struct cmd *c, bool *pending)
{
	struct ing_error e;
	int rv = node_propose(data, c, on_proposal_done, pending, &e);
	if (rv != 0)
		ING_LOG_WARN("liveness decision not proposed type=%s error=%s msg=\"%s\"",
		             cmd_type_name(c->type), ing_err_name(rv), e.msg);
	return rv;
}

void liveness_tick(struct liveness *l, struct node *n)
{
	struct store_txn *t;
	const struct node_config *cfg = node_cfg(n);

	if (!node_is_ready_leader(n) || store_read_begin(node_store(n), &t) != 0)
		return;
	struct liveness_env env = {
	    .now_ms = node_now_ms(),
	    .down_after_ms = cfg->node_down_after_ms,
	    .heartbeat_interval_ms = cfg->heartbeat_interval_ms,
	    .propose = propose_decision,
	    .data = n,
	};
	liveness_check(l, t, &env);
	store_abort(t);
}
