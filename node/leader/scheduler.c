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
 * tenant with 10,000 queued jobs does not starve one with 10.  Where each
 * job goes is node/leader/placement.c's choice: a live, non-draining node
 * with the target's capabilities and labels, a free slot and as many free
 * GPUs as the target needs (the assignment names them).  Live means more
 * than "not marked down": this leader must itself have received a
 * heartbeat from the node since it became leader, and within
 * node_down_after_ms.  A new leader knows nothing of the nodes yet (the one
 * that led before may be dead, and is not marked down until its grace
 * period runs out), so it places work only once their heartbeats reach it
 * (a node heard for the first time makes a full pass due: node/bus.h).  A
 * job no node can take stays queued and its reason is remembered for
 * `job.get`.
 *
 * Bounds: a round scans at most SCAN_MAX queue entries and proposes at most
 * BATCH_MAX assignments.
 * Every assignment is a job_assign command: the state machine re-checks it
 * (queued, next attempt, node up with a free slot, the GPUs offered and
 * free), so a stale decision is rejected, never applied twice.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/leader/scheduler.h"

#include "common/log.h"
#include "node/http/metrics.h"
#include "node/leader/liveness.h"
#include "node/leader/placement.h"
#include "node/propose.h"
#include "storage/records.h"

#define SCAN_MAX             4096
#define BATCH_MAX            256
#define REASONS_WHEN_FULL    32
#define LEASE_MS             60000
#define RETRY_BACKOFF_MAX_MS 60000

#define FRESH_MAX   512
#define WAITING_MAX 256
#define CURSOR_MAX  80

struct sched {
	bool full;                  /* capacity changed: a full pass over the queue is due */
	uint8_t cursor[CURSOR_MAX]; /* queue key the current full pass resumes at */
	uint32_t cursor_len;
	uint64_t fresh[FRESH_MAX]; /* jobs submitted since the last round */
	unsigned nfresh;
	uint64_t wake_ms;                   /* a backed-off job becomes placeable then (0: none) */
	char last_tenant[ING_NAME_MAX + 1]; /* served last: the turn goes on after it */
	uint32_t last_tenant_len;
	unsigned inflight; /* assignments proposed, not yet applied */
	struct {
		uint64_t job;
		uint8_t wait; /* enum place_wait */
		char reason[160];
	} waiting[WAITING_MAX]; /* why queued jobs could not be placed (ring) */
	unsigned nwaiting;
};

struct cand {
	uint64_t job;
	struct ing_str tenant; /* view into the round's zone */
};

struct round {
	struct sched *s;
	const struct sched_env *env;
	struct store_txn *t;
	msgpack_zone *z;
	struct rec_node *nodes;
	struct place_node *place; /* the nodes as this round has left them */
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

int sched_new(struct sched **out)
{
	struct sched *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ING_ENOMEM;
	*out = s;
	return 0;
}

void sched_free(struct sched *s)
{
	free(s);
}

void sched_leader(struct sched *s)
{
	s->full = true;
}

void sched_node_heard(struct sched *s)
{
	s->full = true;
}

void sched_assign_done(struct sched *s)
{
	if (s->inflight > 0)
		s->inflight--;
}

void sched_note(struct sched *s, uint32_t cmd_type, uint64_t job)
{
	switch (cmd_type) {
	case CMD_JOB_SUBMIT:
		/* Only the new job may have become placeable. */
		if (s->nfresh < FRESH_MAX && job != 0)
			s->fresh[s->nfresh++] = job;
		else
			s->full = true;
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
		s->full = true;
		break;
	default: break;
	}
}

static void set_reason(struct sched *s, uint64_t job, enum place_wait wait, const char *reason)
{
	unsigned slot = 0;
	while (slot < s->nwaiting && s->waiting[slot].job != job)
		slot++;
	if (slot == s->nwaiting)
		slot = s->nwaiting < WAITING_MAX ? s->nwaiting++ : (unsigned)(job % WAITING_MAX);
	s->waiting[slot].job = job;
	s->waiting[slot].wait = (uint8_t)wait;
	snprintf(s->waiting[slot].reason, sizeof(s->waiting[slot].reason), "%s", reason);
}

static void clear_reason(struct sched *s, uint64_t job)
{
	for (unsigned i = 0; i < s->nwaiting; i++)
		if (s->waiting[i].job == job)
			s->waiting[i].job = 0;
}

const char *sched_reason(const struct sched *s, uint64_t job)
{
	for (unsigned i = 0; i < s->nwaiting; i++)
		if (s->waiting[i].job == job && job != 0)
			return s->waiting[i].reason;
	return NULL;
}

void sched_unplaceable(const struct sched *s, struct store_txn *t,
                       unsigned counts[PLACE_WAIT_COUNT])
{
	msgpack_zone z;

	memset(counts, 0, PLACE_WAIT_COUNT * sizeof(*counts));
	msgpack_zone_init(&z, 4096);
	for (unsigned i = 0; i < s->nwaiting; i++) {
		struct ing_str val;
		struct rec_job j;
		uint8_t k[8];
		if (s->waiting[i].job == 0 || s->waiting[i].wait >= PLACE_WAIT_COUNT)
			continue;
		store_be64(k, s->waiting[i].job);
		if (store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val) == 0 &&
		    rec_job_decode(val, &z, &j, NULL) == 0 && j.state == REC_JOB_QUEUED)
			counts[s->waiting[i].wait]++;
		msgpack_zone_clear(&z);
	}
	msgpack_zone_destroy(&z);
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
	r->place = msgpack_zone_malloc(r->z, (count + 1) * sizeof(*r->place));
	if (r->nodes == NULL || r->place == NULL)
		return ING_ENOMEM;
	rv = store_iter_open(r->t, STORE_NODES, (struct ing_str){"", 0}, &it);
	while (rv == 0 && r->nnodes < count && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_node *nd = &r->nodes[r->nnodes];
		if (rec_node_decode(v, r->z, nd, NULL) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		place_node_init(&r->place[r->nnodes], nd);
		if (r->env->heard != NULL) {
			uint64_t heard = r->env->heard(r->env->data, nd->id);
			if (heard == 0 || r->env->now_ms - heard > r->env->silent_after_ms)
				place_node_silence(&r->place[r->nnodes]);
		}
		r->total_free += r->place[r->nnodes].free_slots;
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

/* Places one job; returns true when it was proposed. */
static bool place(struct round *r, uint64_t id)
{
	struct sched *s = r->s;
	struct rec_job j;
	struct ing_str val;
	uint8_t k[8];
	char reason[sizeof(s->waiting[0].reason)];
	struct place_choice pick;

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
	if (lost > 0 && r->env->retry_backoff_ms > 0) {
		uint64_t backoff = (uint64_t)r->env->retry_backoff_ms
		                   << (lost > 16 ? 16 : lost - 1);
		if (backoff > RETRY_BACKOFF_MAX_MS)
			backoff = RETRY_BACKOFF_MAX_MS;
		uint64_t ready_at = j.updated_at_ms + backoff;
		if (r->env->now_ms < ready_at) {
			snprintf(reason, sizeof(reason),
			         "attempt %" PRIu32 " was lost; the next one waits %" PRIu64
			         " ms (retry backoff)",
			         j.attempt, backoff);
			set_reason(s, id, PLACE_WAIT_BACKOFF, reason);
			if (s->wake_ms == 0 || ready_at < s->wake_ms)
				s->wake_ms = ready_at;
			return false;
		}
	}
	const struct rec_target *t = target_of(r, j.target);
	if (t == NULL)
		return false;
	if (place_pick(t, r->place, r->nnodes, &pick, reason, sizeof(reason)) != 0) {
		set_reason(s, id, pick.wait, reason);
		return false;
	}

	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = CMD_JOB_ASSIGN;
	c.request_id = ing_str_c("");
	c.u.job_assign.job = id;
	c.u.job_assign.node = r->nodes[pick.node].id;
	c.u.job_assign.attempt = j.attempt + 1;
	c.u.job_assign.lease_until_ms = r->env->now_ms + LEASE_MS;
	c.u.job_assign.ngpus = pick.ngpus;
	c.u.job_assign.gpus = pick.gpus;
	if (r->env->assign(r->env->data, &c, j.updated_at_ms) != 0)
		return false;
	s->inflight++;
	place_take(r->place, &pick);
	r->total_free--;
	r->proposed_ids[r->proposed++] = id;
	clear_reason(s, id);
	ING_LOG_DEBUG("job assigned job=%" PRIu64 " node=%" PRIu64 " attempt=%" PRIu32
	              " gpus=%" PRIu32,
	              id, r->nodes[pick.node].id, j.attempt + 1, pick.ngpus);
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
	struct sched *s = r->s;
	struct ing_str last = {s->last_tenant, s->last_tenant_len};
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
				memcpy(s->last_tenant, c->tenant.ptr, c->tenant.len);
				s->last_tenant_len = c->tenant.len;
			}
			progress = true;
		}
	}
}

/* Places the jobs submitted since the last round, in submit order. */
static void place_new(struct round *r)
{
	struct sched *s = r->s;
	for (unsigned i = 0; i < s->nfresh && r->proposed < BATCH_MAX; i++)
		place(r, s->fresh[i]);
	s->nfresh = 0;
}

/*
 * One chunk of a full pass over the queue: at most SCAN_MAX entries from
 * where the previous chunk stopped.  The pass ends at the end of the queue,
 * or as soon as no slot is free anywhere (nothing more can be placed).
 */
static void place_chunk(struct round *r)
{
	struct sched *s = r->s;
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
	struct ing_str start = {(const char *)s->cursor, s->cursor_len};
	rv = store_iter_open(r->t, STORE_QUEUE, start, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len < 10 || k.len > CURSOR_MAX)
			continue;
		if (scanned >= scan_max || r->proposed >= BATCH_MAX ||
		    (r->total_free == 0 && scanned > 0)) {
			/* resume from this key next time */
			memcpy(s->cursor, k.ptr, k.len);
			s->cursor_len = k.len;
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
		s->full = false;
		s->cursor_len = 0;
	}
	if (r->proposed > 0)
		ING_LOG_DEBUG("scheduling pass proposed=%u scanned=%u", r->proposed, scanned);
	free(cands);
}

bool sched_due(struct sched *s, uint64_t now_ms)
{
	if (s->wake_ms != 0 && now_ms >= s->wake_ms) {
		/* a backed-off job may go now: look at the queue again */
		s->wake_ms = 0;
		s->full = true;
	}
	return (s->full || s->nfresh > 0) && s->inflight == 0;
}

void sched_round(struct sched *s, struct store_txn *t, const struct sched_env *env)
{
	struct round r;

	memset(&r, 0, sizeof(r));
	r.s = s;
	r.env = env;
	r.t = t;
	r.z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (r.z == NULL)
		return;
	if (load_nodes(&r) == 0) {
		/* New jobs too during a pass: the pass may already be past them. */
		if (s->full)
			place_chunk(&r);
		place_new(&r);
	}
	msgpack_zone_free(r.z);
}

struct run {
	struct node *n;
	struct sched *s;
};

static void on_assigned(void *data, int status, const struct node_result *res)
{
	struct sched *s = data;
	if (status == 0 && res != NULL && res->code != 0)
		ING_LOG_DEBUG("assignment rejected error=%s msg=\"%s\"", ing_err_name(res->code),
		              res->message);
	sched_assign_done(s);
}

static int propose_assign(void *data, const struct cmd *c, uint64_t queued_ms)
{
	struct run *run = data;
	struct ing_error e;
	int rv = node_propose(run->n, c, on_assigned, run->s, &e);
	if (rv != 0)
		ING_LOG_DEBUG("assignment not proposed job=%" PRIu64 " error=%s msg=\"%s\"",
		              c->u.job_assign.job, ing_err_name(rv), e.msg);
	else
		metrics_assigned(node_metrics(run->n), queued_ms, node_now_ms());
	return rv;
}

static uint64_t heard_ms(void *data, uint64_t id)
{
	struct run *run = data;
	return liveness_last_ms(node_liveness(run->n), id);
}

void sched_run(struct sched *s, struct node *n)
{
	struct store_txn *t;
	uint64_t now = node_now_ms();

	if (!sched_due(s, now) || !node_is_ready_leader(n) || node_stopping(n))
		return;
	if (store_read_begin(node_store(n), &t) != 0)
		return;
	struct run run = {n, s};
	struct sched_env env = {
	    .now_ms = now,
	    .retry_backoff_ms = node_cfg(n)->retry_backoff_ms,
	    .assign = propose_assign,
	    .data = &run,
	    .heard = heard_ms,
	    .silent_after_ms = node_cfg(n)->node_down_after_ms,
	};
	sched_round(s, t, &env);
	store_abort(t);
}
