/*
 * scheduler.c - the leader's assignment of queued jobs to nodes.
 *
 * A round runs after a flush in which the applied commands could let queued
 * jobs be placed, and only on the ready leader, and only when the previous
 * round's assignments have all been applied (so capacities read from the
 * store are exact).  Never on a polling timer.  Two kinds:
 *   - a submit only makes the new job placeable: the round tries just the
 *     jobs submitted since the last one (cheap, whatever the queue's size);
 *   - a change of capacity or eligibility (finish, requeue, retry, expire, node
 *     register/drain/down/up, target put) starts a full pass over the
 *     queue, done in chunks of at most SCAN_MAX entries, one chunk per
 *     loop iteration, resuming where the last chunk stopped; the pass ends
 *     at the end of the queue or when no slot is free anywhere.  So a long
 *     queue of jobs that nothing can run costs one pass per capacity
 *     change, never a rescan per commit.
 *
 * Order: the queue table is keyed (100 - priority, tenant, job id), so a
 * scan meets higher priorities first.  Within one priority the candidates
 * are taken round-robin across tenants, oldest first within a tenant, so a
 * tenant with 10,000 queued jobs does not starve one with 10.  Each job
 * goes to the live, non-draining node that has the target's capabilities
 * and labels and the most free slots (spreading load).  Live means more
 * than "not marked down": this leader must itself have received a heartbeat
 * from the node since it became leader, and within node_down_after_ms.  A
 * new leader knows nothing of the nodes yet (the one that led before may
 * be dead, and is not marked down until its grace period runs out), so it
 * places work only once their heartbeats reach it (liveness.c asks for a
 * full pass when a node is first heard).  A job no node can take stays
 * queued and its reason is remembered for `job.get`.
 *
 * Bounds: a round scans at most SCAN_MAX queue entries and proposes at most
 * BATCH_MAX assignments.
 * Every assignment is a job_assign command: the state machine re-checks it
 * (queued, next attempt, node up with a free slot), so a stale decision is
 * rejected, never applied twice.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/node_internal.h"

#define SCAN_MAX             4096
#define BATCH_MAX            256
#define REASONS_WHEN_FULL    32
#define LEASE_MS             60000
#define RETRY_BACKOFF_MAX_MS 60000

struct cand {
	uint64_t job;
	struct ing_str tenant; /* view into the round's zone */
};

struct round {
	struct node *n;
	struct store_txn *t;
	msgpack_zone *z;
	struct rec_node *nodes;
	uint32_t *free;
	bool *silent; /* not heard from lately by this leader */
	unsigned nnodes;
	unsigned total_free;
	unsigned proposed;
	uint64_t proposed_ids[BATCH_MAX];
	struct {
		struct ing_str name;
		struct rec_target t;
		bool missing;
	} targets[32];
	unsigned ntargets;
};

void node_sched_note(struct node *n, uint32_t cmd_type, uint64_t job)
{
	unsigned cap = sizeof(n->sched_new) / sizeof(n->sched_new[0]);
	switch (cmd_type) {
	case CMD_JOB_SUBMIT:
		/* Only the new job may have become placeable. */
		if (n->nsched_new < cap && job != 0)
			n->sched_new[n->nsched_new++] = job;
		else
			n->sched_full = true;
		break;
	case CMD_JOB_FINISH:
	case CMD_JOB_REQUEUE:
	case CMD_JOB_RETRY:
	case CMD_JOB_EXPIRE:
	case CMD_NODE_REGISTER:
	case CMD_NODE_DRAIN:
	case CMD_NODE_DOWN:
	case CMD_NODE_UP:
	case CMD_TARGET_PUT:
		/* Capacity or eligibility changed: the whole queue is looked at. */
		n->sched_full = true;
		break;
	default: break;
	}
}

static void set_reason(struct node *n, uint64_t job, const char *reason)
{
	for (unsigned i = 0; i < n->nwaiting; i++) {
		if (n->waiting[i].job == job) {
			snprintf(n->waiting[i].reason, sizeof(n->waiting[i].reason), "%s", reason);
			return;
		}
	}
	unsigned cap = sizeof(n->waiting) / sizeof(n->waiting[0]);
	unsigned slot = n->nwaiting < cap ? n->nwaiting++ : (unsigned)(job % cap);
	n->waiting[slot].job = job;
	snprintf(n->waiting[slot].reason, sizeof(n->waiting[slot].reason), "%s", reason);
}

static void clear_reason(struct node *n, uint64_t job)
{
	for (unsigned i = 0; i < n->nwaiting; i++)
		if (n->waiting[i].job == job)
			n->waiting[i].job = 0;
}

const char *node_sched_reason(struct node *n, uint64_t id)
{
	for (unsigned i = 0; i < n->nwaiting; i++)
		if (n->waiting[i].job == id)
			return n->waiting[i].reason;
	return NULL;
}

static int load_nodes(struct round *r)
{
	struct store_iter *it;
	struct ing_str k, v;
	uint64_t count;
	int rv = store_count(r->t, STORE_NODES, &count);

	if (rv != 0)
		return rv;
	r->nodes = msgpack_zone_malloc(r->z, (count + 1) * sizeof(*r->nodes));
	r->free = msgpack_zone_malloc(r->z, (count + 1) * sizeof(*r->free));
	r->silent = msgpack_zone_malloc(r->z, (count + 1) * sizeof(*r->silent));
	if (r->nodes == NULL || r->free == NULL || r->silent == NULL)
		return ING_ENOMEM;
	rv = store_iter_open(r->t, STORE_NODES, (struct ing_str){"", 0}, &it);
	while (rv == 0 && r->nnodes < count && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_node *nd = &r->nodes[r->nnodes];
		if (rec_node_decode(v, r->z, nd, NULL) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		uint64_t heard = node_liveness_last_ms(r->n, nd->id);
		r->silent[r->nnodes] =
		    heard == 0 || node_now_ms() - heard > r->n->cfg.node_down_after_ms;
		r->free[r->nnodes] = (nd->down || nd->draining || r->silent[r->nnodes] ||
		                      nd->used_slots >= nd->slots)
		                         ? 0
		                         : nd->slots - nd->used_slots;
		r->total_free += r->free[r->nnodes];
		r->nnodes++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	return rv == ING_ENOTFOUND ? 0 : rv;
}

static const struct rec_target *target_of(struct round *r, struct ing_str name)
{
	for (unsigned i = 0; i < r->ntargets; i++)
		if (ing_str_eq(r->targets[i].name, name))
			return r->targets[i].missing ? NULL : &r->targets[i].t;
	if (r->ntargets == sizeof(r->targets) / sizeof(r->targets[0]))
		r->ntargets = 0; /* a small cache: start over */
	unsigned i = r->ntargets++;
	struct ing_str val;
	r->targets[i].name = name;
	r->targets[i].missing = store_get(r->t, STORE_TARGETS, name, &val) != 0 ||
	                        rec_target_decode(val, r->z, &r->targets[i].t, NULL) != 0;
	return r->targets[i].missing ? NULL : &r->targets[i].t;
}

static bool has_cap(const struct rec_node *nd, struct ing_str cap)
{
	for (uint32_t i = 0; i < nd->ncaps; i++)
		if (ing_str_eq(nd->caps[i], cap))
			return true;
	return false;
}

static bool has_label(const struct rec_node *nd, const struct rec_kv *kv)
{
	for (uint32_t i = 0; i < nd->nlabels; i++)
		if (ing_str_eq(nd->labels[i].key, kv->key) &&
		    ing_str_eq(nd->labels[i].value, kv->value))
			return true;
	return false;
}

static bool fits(const struct rec_node *nd, const struct rec_target *t)
{
	for (uint32_t i = 0; i < t->ncaps; i++)
		if (!has_cap(nd, t->caps[i]))
			return false;
	for (uint32_t i = 0; i < t->nlabels; i++)
		if (!has_label(nd, &t->labels[i]))
			return false;
	return true;
}

/* Why no node fits target t: the first capability or label no live,
 * non-draining node offers, or that no single node offers them all. */
/* A node work may go to: up, not draining, heard from lately. */
static bool usable(const struct round *r, unsigned i)
{
	return !r->nodes[i].down && !r->nodes[i].draining && !r->silent[i];
}

static void explain(struct round *r, const struct rec_target *t, char *out, size_t cap)
{
	unsigned down = 0, draining = 0, silent = 0;
	for (unsigned i = 0; i < r->nnodes; i++) {
		down += r->nodes[i].down;
		draining += !r->nodes[i].down && r->nodes[i].draining;
		silent += !r->nodes[i].down && !r->nodes[i].draining && r->silent[i];
	}
	if (down + draining + silent == r->nnodes) {
		snprintf(out, cap,
		         "no live, non-draining node (%u registered: %u down, %u draining, %u "
		         "not heard from by this leader lately)",
		         r->nnodes, down, draining, silent);
		return;
	}
	for (uint32_t c = 0; c < t->ncaps; c++) {
		bool anywhere = false;
		for (unsigned i = 0; i < r->nnodes && !anywhere; i++)
			anywhere = usable(r, i) && has_cap(&r->nodes[i], t->caps[c]);
		if (!anywhere) {
			snprintf(out, cap,
			         "no live, non-draining node has capability '%.*s' (target '%.*s')",
			         ING_STR_FMT(t->caps[c]), ING_STR_FMT(t->name));
			return;
		}
	}
	for (uint32_t l = 0; l < t->nlabels; l++) {
		bool anywhere = false;
		for (unsigned i = 0; i < r->nnodes && !anywhere; i++)
			anywhere = usable(r, i) && has_label(&r->nodes[i], &t->labels[l]);
		if (!anywhere) {
			snprintf(out, cap,
			         "no live, non-draining node has label %.*s=%.*s (target '%.*s')",
			         ING_STR_FMT(t->labels[l].key), ING_STR_FMT(t->labels[l].value),
			         ING_STR_FMT(t->name));
			return;
		}
	}
	snprintf(out, cap,
	         "no single live, non-draining node has all the capabilities and labels of "
	         "target '%.*s'",
	         ING_STR_FMT(t->name));
}

static void on_assigned(struct node *n, int status, const struct node_result *res, void *data)
{
	(void)data;
	if (status == 0 && res != NULL && res->code != 0)
		ING_LOG_DEBUG("assignment rejected error=%s msg=\"%s\"", ing_err_name(res->code),
		              res->message);
	if (n->sched_inflight > 0)
		n->sched_inflight--;
}

/* Places one job; returns true when it was proposed. */
static bool place(struct round *r, uint64_t id)
{
	struct node *n = r->n;
	struct rec_job j;
	struct ing_str val;
	uint8_t k[8];
	char reason[160];
	int best = -1;
	unsigned matching = 0;

	for (unsigned i = 0; i < r->proposed; i++)
		if (r->proposed_ids[i] == id)
			return false; /* already placed in this round */
	store_be64(k, id);
	if (store_get(r->t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val) != 0 ||
	    rec_job_decode(val, r->z, &j, NULL) != 0 || j.state != REC_JOB_QUEUED)
		return false;
	/* A job whose last attempt was lost waits before its next one:
	 * retry_backoff_ms, doubling per attempt lost since the last operator
	 * retry, at most RETRY_BACKOFF_MAX_MS, counted from the requeue. */
	uint32_t lost = j.attempt - j.attempt_base;
	if (lost > 0 && n->cfg.retry_backoff_ms > 0) {
		uint64_t backoff = (uint64_t)n->cfg.retry_backoff_ms << (lost > 16 ? 16 : lost - 1);
		if (backoff > RETRY_BACKOFF_MAX_MS)
			backoff = RETRY_BACKOFF_MAX_MS;
		uint64_t ready_at = j.updated_at_ms + backoff;
		if (node_now_ms() < ready_at) {
			snprintf(reason, sizeof(reason),
			         "attempt %" PRIu32 " was lost; the next one waits %" PRIu64
			         " ms (retry backoff)",
			         j.attempt, backoff);
			set_reason(n, id, reason);
			if (n->sched_wake_ms == 0 || ready_at < n->sched_wake_ms)
				n->sched_wake_ms = ready_at;
			return false;
		}
	}
	const struct rec_target *t = target_of(r, j.target);
	if (t == NULL)
		return false;
	for (unsigned i = 0; i < r->nnodes; i++) {
		const struct rec_node *nd = &r->nodes[i];
		if (!usable(r, i) || !fits(nd, t))
			continue;
		matching++;
		if (r->free[i] > 0 && (best < 0 || r->free[i] > r->free[best]))
			best = (int)i;
	}
	if (best < 0) {
		if (matching == 0)
			explain(r, t, reason, sizeof(reason));
		else
			snprintf(reason, sizeof(reason),
			         "all %u nodes that can run target '%.*s' are busy", matching,
			         ING_STR_FMT(j.target));
		set_reason(n, id, reason);
		return false;
	}

	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = CMD_JOB_ASSIGN;
	c.request_id = ing_str_c("");
	c.u.job_assign.job = id;
	c.u.job_assign.node = r->nodes[best].id;
	c.u.job_assign.attempt = j.attempt + 1;
	c.u.job_assign.lease_until_ms = node_now_ms() + LEASE_MS;
	if (node_propose_internal(n, &c, on_assigned, NULL) != 0)
		return false;
	n->sched_inflight++;
	r->free[best]--;
	r->total_free--;
	r->proposed_ids[r->proposed++] = id;
	clear_reason(n, id);
	ING_LOG_DEBUG("job assigned job=%" PRIu64 " node=%" PRIu64 " attempt=%" PRIu32, id,
	              r->nodes[best].id, j.attempt + 1);
	return true;
}

/* Round-robin across the tenants of one priority level. */
static void place_level(struct round *r, struct cand *cands, unsigned ncands)
{
	bool progress = true;
	/* cands is sorted by tenant then id; `next` walks each tenant's run */
	unsigned *next = msgpack_zone_malloc(r->z, (ncands + 1) * sizeof(*next));
	unsigned *end = msgpack_zone_malloc(r->z, (ncands + 1) * sizeof(*end));
	unsigned ntenants = 0;
	if (next == NULL || end == NULL)
		return;
	for (unsigned i = 0; i < ncands; i++) {
		if (i == 0 || !ing_str_eq(cands[i].tenant, cands[i - 1].tenant)) {
			next[ntenants] = i;
			end[ntenants] = i;
			ntenants++;
		}
		end[ntenants - 1] = i + 1;
	}
	/* The turn goes on from the tenant after the one served last, across
	 * rounds: a round often has a single free slot, and starting from the
	 * first tenant every time would give every slot to it. */
	struct node *n = r->n;
	struct ing_str last = {n->sched_last_tenant, n->sched_last_tenant_len};
	unsigned t0 = 0;
	while (t0 < ntenants && ing_str_cmp(cands[next[t0]].tenant, last) <= 0)
		t0++;
	if (t0 == ntenants)
		t0 = 0;
	while (progress && r->proposed < BATCH_MAX) {
		progress = false;
		for (unsigned k = 0; k < ntenants && r->proposed < BATCH_MAX; k++) {
			unsigned t = (t0 + k) % ntenants;
			if (next[t] == end[t])
				continue;
			const struct cand *c = &cands[next[t]++];
			if (place(r, c->job)) {
				memcpy(n->sched_last_tenant, c->tenant.ptr, c->tenant.len);
				n->sched_last_tenant_len = c->tenant.len;
			}
			progress = true;
		}
	}
}

/* Places the jobs submitted since the last round, in submit order. */
static void place_new(struct round *r)
{
	struct node *n = r->n;
	for (unsigned i = 0; i < n->nsched_new && r->proposed < BATCH_MAX; i++) {
		place(r, n->sched_new[i]);
	}
	n->nsched_new = 0;
}

/*
 * One chunk of a full pass over the queue: at most SCAN_MAX entries from
 * where the previous chunk stopped.  The pass ends at the end of the queue,
 * or as soon as no slot is free anywhere (nothing more can be placed).
 */
static void place_chunk(struct round *r)
{
	struct node *n = r->n;
	struct store_iter *it;
	struct ing_str k, v;
	struct cand *cands = malloc(SCAN_MAX * sizeof(*cands));
	unsigned ncands = 0, scanned = 0;
	bool at_end = true;
	int level = -1;
	int rv;

	if (cands == NULL)
		return;
	/* With no free slot anywhere the first queued jobs still get their
	 * reason (a few, not the whole queue), and the pass is over. */
	unsigned scan_max = r->total_free > 0 ? SCAN_MAX : REASONS_WHEN_FULL;
	struct ing_str start = {(const char *)n->sched_cursor, n->sched_cursor_len};
	rv = store_iter_open(r->t, STORE_QUEUE, start, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len < 10 || k.len > sizeof(n->sched_cursor))
			continue;
		if (scanned >= scan_max || r->proposed >= BATCH_MAX ||
		    (r->total_free == 0 && scanned > 0)) {
			/* resume from this key next time */
			memcpy(n->sched_cursor, k.ptr, k.len);
			n->sched_cursor_len = k.len;
			at_end = false;
			break;
		}
		int prio = (unsigned char)k.ptr[0];
		if (prio != level && ncands > 0) {
			place_level(r, cands, ncands);
			ncands = 0;
		}
		level = prio;
		char *tenant = msgpack_zone_malloc(r->z, k.len - 10);
		if (tenant == NULL)
			break;
		memcpy(tenant, k.ptr + 1, k.len - 10);
		cands[ncands].tenant = (struct ing_str){tenant, k.len - 10};
		cands[ncands].job = store_get_be64(k.ptr + k.len - 8);
		ncands++;
		scanned++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	if (ncands > 0 && r->proposed < BATCH_MAX)
		place_level(r, cands, ncands);
	if (at_end || r->total_free == 0) {
		n->sched_full = false;
		n->sched_cursor_len = 0;
	}
	if (r->proposed > 0)
		ING_LOG_DEBUG("scheduling pass proposed=%u scanned=%u", r->proposed, scanned);
	free(cands);
}

void node_sched_maybe_run(struct node *n)
{
	struct round r;

	if (n->sched_wake_ms != 0 && node_now_ms() >= n->sched_wake_ms) {
		/* a backed-off job may go now: look at the queue again */
		n->sched_wake_ms = 0;
		n->sched_full = true;
	}

	if ((!n->sched_full && n->nsched_new == 0) || n->sched_inflight > 0 ||
	    n->role != CONS_LEADER_READY || n->stopping)
		return;
	memset(&r, 0, sizeof(r));
	r.n = n;
	r.z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (r.z == NULL || store_read_begin(n->store, &r.t) != 0) {
		if (r.z != NULL)
			msgpack_zone_free(r.z);
		return;
	}
	if (load_nodes(&r) == 0) {
		/* New jobs too during a pass: the pass may already be past them. */
		if (n->sched_full)
			place_chunk(&r);
		place_new(&r);
	}
	store_abort(r.t);
	msgpack_zone_free(r.z);
}
