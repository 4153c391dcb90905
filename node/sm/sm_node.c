/*
 * sm_node.c - apply of node and member commands.
 *
 * Nodes are the workers as the scheduler sees them: capabilities, labels,
 * slots, GPUs, and the drain and down flags.  used_slots counts the
 * attempts assigned to the node and not yet ended, and the GPU holds say
 * which of its GPUs those attempts hold; sm_job.c keeps both.  A
 * re-registration replaces the GPUs offered but keeps the holds: a GPU no
 * longer offered stays held until its attempt ends, and is then simply not
 * offered.  Declaring a
 * node down ends every attempt it holds (sm_job_lose_attempt), so its jobs
 * run again elsewhere, or fail when they have no attempts left.
 *
 * Members are the cluster's address book (raft and API addresses, role);
 * libraft holds the authoritative configuration, this table lets every node
 * answer clients with addresses.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "node/sm/sm_internal.h"

static int node_missing(struct sm_ctx *x, uint64_t id)
{
	return sm_reject(x, ING_ENOTFOUND, "node %" PRIu64 " is not registered", id);
}

int sm_node_register(struct sm_ctx *x)
{
	struct rec_node n = x->c->u.node_register.spec;
	struct rec_node old;
	int rv = sm_node_load(x, n.id, &old);

	if (rv != 0 && rv != ING_ENOTFOUND)
		return rv;
	if (rv == 0) {
		n.used_slots = old.used_slots;
		n.draining = old.draining;
		n.drain_deadline_ms = old.drain_deadline_ms;
		n.down = old.down;
		n.registered_at_ms = old.registered_at_ms;
		n.nheld = old.nheld;
		n.held = old.held;
	} else {
		n.used_slots = 0;
		n.draining = false;
		n.drain_deadline_ms = 0;
		n.down = false;
		n.registered_at_ms = x->c->time_ms;
		n.nheld = 0;
		n.held = NULL;
	}
	n.updated_at_ms = x->c->time_ms;
	return sm_node_save(x, &n);
}

int sm_node_drain(struct sm_ctx *x)
{
	struct rec_node n;
	int rv = sm_node_load(x, x->c->u.node_drain.node, &n);

	if (rv == ING_ENOTFOUND)
		return node_missing(x, x->c->u.node_drain.node);
	if (rv != 0)
		return rv;
	n.draining = x->c->u.node_drain.draining;
	n.drain_deadline_ms = n.draining ? x->c->u.node_drain.deadline_ms : 0;
	n.updated_at_ms = x->c->time_ms;
	return sm_node_save(x, &n);
}

int sm_node_down(struct sm_ctx *x)
{
	uint64_t id = x->c->u.node_down.node;
	struct rec_node n;
	struct store_iter *it;
	struct ing_str key, val;
	uint8_t prefix[8];
	uint64_t *jobs = NULL;
	uint32_t njobs = 0, cap = 0;
	char why[ING_MESSAGE_MAX];
	int rv = sm_node_load(x, id, &n);

	if (rv == ING_ENOTFOUND)
		return node_missing(x, id);
	if (rv != 0)
		return rv;
	n.down = true;
	n.updated_at_ms = x->c->time_ms;
	rv = sm_node_save(x, &n);
	if (rv != 0)
		return rv;

	/* Collect first: ending an attempt deletes from the table iterated. */
	store_be64(prefix, id);
	rv = store_iter_open(x->t, STORE_ASSIGNMENTS, (struct ing_str){(const char *)prefix, 8},
	                     &it);
	if (rv != 0)
		return rv;
	while ((rv = store_iter_next(it, &key, &val)) == 0) {
		if (key.len != 16 || store_get_be64(key.ptr) != id)
			break;
		if (njobs == cap) {
			uint32_t ncap = cap == 0 ? 16 : cap * 2;
			uint64_t *p = msgpack_zone_malloc(x->z, ncap * sizeof(*p));
			if (p == NULL) {
				store_iter_close(it);
				return ING_ENOMEM;
			}
			if (njobs > 0)
				memcpy(p, jobs, njobs * sizeof(*p));
			jobs = p;
			cap = ncap;
		}
		jobs[njobs++] = store_get_be64(key.ptr + 8);
	}
	store_iter_close(it);
	if (rv != 0 && rv != ING_ENOTFOUND)
		return rv;

	snprintf(why, sizeof(why), "node %" PRIu64 " down: %.*s", id,
	         ING_STR_FMT(x->c->u.node_down.reason));
	for (uint32_t i = 0; i < njobs; i++) {
		struct rec_job j;
		rv = sm_job_load(x, jobs[i], &j);
		if (rv == ING_ENOTFOUND)
			return ING_CORRUPT("assignment of a job that does not exist");
		if (rv != 0)
			return rv;
		rv = sm_job_lose_attempt(x, &j, why);
		if (rv != 0)
			return rv;
	}
	return 0;
}

int sm_node_up(struct sm_ctx *x)
{
	struct rec_node n;
	int rv = sm_node_load(x, x->c->u.node_up.node, &n);

	if (rv == ING_ENOTFOUND)
		return node_missing(x, x->c->u.node_up.node);
	if (rv != 0)
		return rv;
	n.down = false;
	n.updated_at_ms = x->c->time_ms;
	return sm_node_save(x, &n);
}

/* A node that is down and has no attempt left is dropped from the nodes
 * table; anything else is refused, the record unchanged. */
int sm_node_forget(struct sm_ctx *x)
{
	uint64_t id = x->c->u.node_forget.node;
	struct rec_node n;
	uint8_t k[8];
	int rv = sm_node_load(x, id, &n);

	if (rv == ING_ENOTFOUND)
		return node_missing(x, id);
	if (rv != 0)
		return rv;
	if (!n.down)
		return sm_reject(x, ING_ECONFLICT,
		                 "node %" PRIu64 " is not down: only a node that is down (stopped, "
		                 "removed) can be forgotten",
		                 id);
	if (n.used_slots > 0)
		return sm_reject(x, ING_ECONFLICT,
		                 "node %" PRIu64 " still has %" PRIu32 " attempt(s) assigned", id,
		                 n.used_slots);
	store_be64(k, id);
	return store_del(x->t, STORE_NODES, (struct ing_str){(const char *)k, 8});
}

static struct ing_str member_key(uint8_t k[8], uint64_t id)
{
	store_be64(k, id);
	return (struct ing_str){(const char *)k, 8};
}

/* Appends a cluster event: job id 0 in the events table, numbered by the
 * meta counter "cluster_events". */
static int cluster_event_add(struct sm_ctx *x, uint8_t kind, uint64_t member, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cluster_event_add(struct sm_ctx *x, uint8_t kind, uint64_t member, const char *fmt, ...)
{
	char text[ING_MESSAGE_MAX + 1];
	uint64_t seq;
	uint8_t k[12];
	va_list ap;
	int rv = store_meta_get_u64(x->t, SM_META_CLUSTER_EVENTS, &seq);

	if (rv != 0)
		return rv;
	if (seq >= UINT32_MAX)
		return 0; /* numbering exhausted: events stop, the change stands */
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	struct rec_event ev = {
	    .time_ms = x->c->time_ms,
	    .kind = kind,
	    .node_id = member,
	    .stage = -1,
	    .message = ing_str_c(text),
	};
	store_be64(k, 0);
	store_be32(k + 8, (uint32_t)seq);
	mp_out_reset(&x->sm->enc);
	rec_event_encode(&ev, &x->sm->enc);
	rv = sm_put_encoded(x, STORE_EVENTS, (struct ing_str){(const char *)k, 12});
	if (rv == 0)
		rv = store_meta_put_u64(x->t, SM_META_CLUSTER_EVENTS, seq + 1);
	return rv;
}

int sm_member_put(struct sm_ctx *x)
{
	struct rec_member m = x->c->u.member_put.member;
	struct rec_member old;
	struct ing_str val;
	uint8_t k[8];
	struct ing_str key = member_key(k, m.id);
	int rv = store_get(x->t, STORE_MEMBERS, key, &val);
	bool found = rv == 0;

	m.added_at_ms = x->c->time_ms;
	if (rv == 0) {
		rv = rec_member_decode(val, x->z, &old, NULL);
		if (rv != 0)
			return rv == ING_ENOMEM ? rv : ING_CORRUPT("member record does not decode");
		m.added_at_ms = old.added_at_ms;
		if (old.role == m.role && ing_str_eq(old.raft_address, m.raft_address) &&
		    ing_str_eq(old.api_address, m.api_address))
			return 0; /* nothing changes, nothing to record */
	} else if (rv != ING_ENOTFOUND) {
		return rv;
	}
	mp_out_reset(&x->sm->enc);
	rec_member_encode(&m, &x->sm->enc);
	rv = sm_put_encoded(x, STORE_MEMBERS, key);
	/* Version 1 entries (older logs) recorded no events: replaying them
	 * must give the state they gave then. */
	if (rv != 0 || x->c->version < 2)
		return rv;
	if (!found)
		return cluster_event_add(x, REC_EV_MEMBER_ADDED, m.id,
		                         "member %" PRIu64 " added as %s (raft %.*s, api %.*s)",
		                         m.id, rec_role_name(m.role), ING_STR_FMT(m.raft_address),
		                         ING_STR_FMT(m.api_address));
	if (old.role != m.role)
		return cluster_event_add(x, REC_EV_MEMBER_ROLE_CHANGED, m.id,
		                         "member %" PRIu64 " is now %s (was %s)", m.id,
		                         rec_role_name(m.role), rec_role_name(old.role));
	return cluster_event_add(x, REC_EV_MEMBER_ROLE_CHANGED, m.id,
	                         "member %" PRIu64 " addresses now raft %.*s, api %.*s", m.id,
	                         ING_STR_FMT(m.raft_address), ING_STR_FMT(m.api_address));
}

int sm_member_remove(struct sm_ctx *x)
{
	uint8_t k[8];
	uint64_t id = x->c->u.member_remove.id;
	int rv = store_del(x->t, STORE_MEMBERS, member_key(k, id));

	if (rv == ING_ENOTFOUND)
		return sm_reject(x, ING_ENOTFOUND, "member %" PRIu64 " does not exist", id);
	if (rv != 0 || x->c->version < 2)
		return rv; /* version 1: no event, as when it was first applied */
	return cluster_event_add(x, REC_EV_MEMBER_REMOVED, id, "member %" PRIu64 " removed", id);
}

int sm_cluster_init(struct sm_ctx *x)
{
	struct ing_str id = x->c->u.cluster_init.cluster_id;
	struct ing_str key = ing_str_c(SM_META_CLUSTER_ID), old;
	int rv = store_get(x->t, STORE_META, key, &old);

	if (rv == 0) {
		sm_result_bytes(x, old);
		return 0; /* named already: the first one stands */
	}
	if (rv != ING_ENOTFOUND)
		return rv;
	rv = store_put(x->t, STORE_META, key, id);
	if (rv == 0)
		rv = cluster_event_add(x, REC_EV_CLUSTER_CREATED, 0, "cluster %.*s created",
		                       ING_STR_FMT(id));
	if (rv == 0)
		sm_result_bytes(x, id);
	return rv;
}

int sm_cluster_event(struct sm_ctx *x)
{
	const struct ing_str m = x->c->u.cluster_event.message;
	return cluster_event_add(x, x->c->u.cluster_event.kind, x->c->u.cluster_event.member,
	                         "%.*s", ING_STR_FMT(m));
}
