/*
 * scheduler.c - the leader's assignment of queued jobs to nodes.
 *
 * A round runs after a flush in which the applied commands could let queued
 * jobs be placed, and only on the ready leader, also while assignments of
 * earlier rounds are in flight: it takes the capacities from the store and
 * subtracts what those assignments will take (their slots and GPUs: the
 * scheduler keeps them until each is applied or refused), and does not
 * place their jobs again, so a slot freed while others are being assigned
 * is filled in the same flush.  It also counts as free the slot of an
 * attempt whose end this leader has proposed (a worker's last report:
 * sched_releasing), so the next job's assignment follows that end in the
 * log rather than waiting for it to commit; the state machine applies the
 * two in that order and re-checks the slot.  Never on a polling timer.
 * Two kinds:
 *   - a submit only makes the new job placeable: the round tries just the
 *     jobs submitted since the last one (cheap, whatever the queue's size);
 *   - a change of capacity or eligibility (finish, requeue, retry, expire, node
 *     register/drain/down/up, target put) makes a full pass over the queue
 *     due.
 *
 * A full pass costs what can run, not what is queued.  The queue table is
 * keyed by target first (node/sm/sm.h), so the pass first walks the targets
 * that have queued jobs, one seek each, and asks placement whether any node
 * could take a job of that target now: a target that cannot place anything
 * this round (no node with its capabilities, every fitting node busy) is
 * skipped whole, however many jobs it has queued, and its reason is kept
 * per target.  From each target that can, it reads at most as many entries
 * of each (priority, tenant) group as that target has room (place_room:
 * free slots on the nodes that fit it), seeking past the rest of the
 * group, plus the entries it passes over because their retry backoff is
 * not over (the queue's value says so without reading the job).  So
 * 100,000 jobs that nothing can run cost one seek per round, and a pass
 * reads about as many entries as it can place, times the tenants.
 *
 * Order: within each target the queue is keyed (100 - priority, tenant, job
 * id); the pass merges the targets' runs on that same key, so it meets
 * higher priorities first across all targets.  Within one priority the
 * candidates are taken round-robin across tenants, oldest first within a
 * tenant, so a tenant with 10,000 queued jobs does not starve one with 10.
 * Where each job goes is node/leader/placement.c's choice: a live,
 * non-draining node with the target's capabilities and labels, a free slot
 * and as many free GPUs as the target needs (the assignment names them).
 * Live means more than "not marked down": this leader must itself have
 * received a heartbeat from the node since it became leader, and within
 * node_down_after_ms.  A new leader knows nothing of the nodes yet (the one
 * that led before may be dead, and is not marked down until its grace
 * period runs out), so it places work only once their heartbeats reach it
 * (a node heard for the first time makes a full pass due: node/bus.h).  A
 * job no node can take stays queued and its reason is remembered for
 * `job.get` (per job for the jobs the pass looked at, per target for the
 * targets it skipped).
 *
 * Ahead of a free slot: when no fitting node has a free slot, a job that
 * needs no GPU, of a target whose attempts this leader saw end within
 * env->ahead_max_ms on average (`recent`: a moving average per target of
 * the run times of the ends it proposed, the last stage's from the report
 * and the others' from the job record; a target not seen yet, or not since
 * it was replaced, does not qualify), may go to a node holding fewer than
 * its slots + env->ahead attempts; the assignment says so (job_assign's
 * `ahead`) and the node's worker starts it when one of its slots frees.  A
 * free slot anywhere comes first (placement.h).
 *
 * Bounds: a pass reads at most SCAN_MAX queue entries and proposes at most
 * BATCH_MAX assignments; a pass cut short by SCAN_MAX (entries still in
 * their backoff) ends there, and the next one comes with the next capacity
 * change or when the earliest backoff is over.  Every assignment is a
 * job_assign command: the state machine re-checks it (queued, next attempt,
 * node up with a free slot, the GPUs offered and free), so a stale decision
 * is rejected, never applied twice.
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
#include "node/sm/sm.h"
#include "storage/records.h"

#define SCAN_MAX             4096
#define BATCH_MAX            256
#define LEASE_MS             60000
#define RETRY_BACKOFF_MAX_MS 60000

#define PENDING_MAX        BATCH_MAX
#define RELEASING_MAX      256
#define FRESH_MAX          512
#define WAITING_MAX        256
#define TARGET_REASONS_MAX 64
#define MERGE_MAX          64 /* targets a pass merges at once */
#define RECENT_MAX         64 /* targets whose attempts' run time is known */

struct sched {
	bool full;                 /* capacity changed: a full pass over the queue is due */
	uint64_t fresh[FRESH_MAX]; /* jobs submitted since the last round */
	unsigned nfresh;
	uint64_t wake_ms;                   /* a backed-off job becomes placeable then (0: none) */
	char last_tenant[ING_NAME_MAX + 1]; /* served last: the turn goes on after it */
	uint32_t last_tenant_len;
	/* Assignments proposed, not yet applied: a round counts their slots
	 * and GPUs as taken and does not place their jobs again. */
	struct {
		uint64_t job, node, gpus; /* gpus: bit i, GPU i */
	} pending[PENDING_MAX];
	unsigned npending;
	/* Ends of live attempts proposed, not yet settled (sched_releasing):
	 * a round counts their slots as free. */
	struct {
		uint64_t job;
		uint32_t attempt;
		uint64_t run_ms; /* its last stage's run time (UINT64_MAX: not known) */
		bool noted;      /* its attempt's run time went into `recent` */
	} releasing[RELEASING_MAX];
	unsigned nreleasing;
	/* How long the attempts of a target ran lately (a moving average of
	 * the ends this leader proposed): a target whose attempts are short
	 * may have jobs assigned ahead of a free slot (env->ahead). */
	struct {
		char target[ING_NAME_MAX + 1];
		uint64_t revision; /* the target's revision the average is of */
		uint64_t run_ms;
	} recent[RECENT_MAX];
	unsigned nrecent; /* entries written; the oldest is replaced when full */
	struct {
		uint64_t job;
		uint8_t wait; /* enum place_wait */
		char reason[160];
	} waiting[WAITING_MAX]; /* why queued jobs could not be placed (ring) */
	unsigned nwaiting;
	struct {
		char target[ING_NAME_MAX + 1];
		uint8_t wait; /* enum place_wait */
		char reason[160];
	} target_waiting[TARGET_REASONS_MAX]; /* why a whole target could not run (ring) */
	unsigned ntarget_waiting;
	unsigned last_scanned; /* queue entries the last full pass read */
};

/* A queued job the round may place: a queue entry (sm_queue_parse), its
 * views copied into the round's zone. */
struct cand {
	struct sm_queue_entry q;
	const struct rec_target *t;
};

struct round {
	struct sched *s;
	const struct sched_env *env;
	struct store_txn *t;
	msgpack_zone *z;
	struct rec_node *nodes;
	struct place_node *place; /* the nodes as this round has left them */
	unsigned nnodes;
	unsigned proposed;
	uint64_t proposed_ids[BATCH_MAX];
	unsigned npending_ids; /* jobs of assignments still in flight */
	uint64_t pending_ids[PENDING_MAX];
	struct {
		struct ing_str name;
		struct rec_target t;
		bool missing;
	} targets[32];
	unsigned ntargets;
	/* The last place_pick that found nothing, while nothing has been placed
	 * since: place_pick looks at the target and the nodes only, so another
	 * job of that target (name and revision) gets the same answer without
	 * the search and its explanation. */
	char miss_target[ING_NAME_MAX + 1];
	uint64_t miss_revision;
	unsigned miss_proposed;
	bool miss;
	uint8_t miss_wait; /* enum place_wait */
	char miss_reason[160];
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

void sched_releasing(struct sched *s, uint64_t job, uint32_t attempt, uint64_t run_ms)
{
	if (s->nreleasing == RELEASING_MAX)
		return; /* not counted: its slot is free once the end applies */
	s->releasing[s->nreleasing].job = job;
	s->releasing[s->nreleasing].attempt = attempt;
	s->releasing[s->nreleasing].run_ms = run_ms;
	s->releasing[s->nreleasing++].noted = false;
	s->full = true;
}

static int recent_find(const struct sched *s, struct ing_str target)
{
	unsigned n = s->nrecent < RECENT_MAX ? s->nrecent : RECENT_MAX;
	for (unsigned i = 0; i < n; i++)
		if (ing_str_eq_c(target, s->recent[i].target))
			return (int)i;
	return -1;
}

/* An attempt of `target` (now at `revision`) ran run_ms: into its moving
 * average (a quarter of the new value); the first value of a revision
 * starts it over (a target replaced may run for much longer), and a target
 * not known yet replaces the oldest entry. */
static void recent_note(struct sched *s, struct ing_str target, uint64_t revision, uint64_t run_ms)
{
	int i = recent_find(s, target);
	if (i >= 0 && s->recent[i].revision == revision) {
		s->recent[i].run_ms = (3 * s->recent[i].run_ms + run_ms) / 4;
		return;
	}
	if (i < 0) {
		if (target.len >= sizeof(s->recent[0].target))
			return;
		i = (int)(s->nrecent++ % RECENT_MAX);
		ing_str_to_c(target, s->recent[i].target, sizeof(s->recent[i].target));
	}
	s->recent[i].revision = revision;
	s->recent[i].run_ms = run_ms;
}

/* Whether a job of t may be assigned ahead of a free slot: the leader
 * allows it (env->ahead), t needs no GPU, and its attempts lately ran at
 * most env->ahead_max_ms (a target not seen yet, or not since it was
 * replaced, does not qualify). */
static bool may_wait(const struct round *r, const struct rec_target *t)
{
	if (r->env->ahead == 0 || rec_target_gpus(t) > 0)
		return false;
	int i = recent_find(r->s, t->name);
	return i >= 0 && r->s->recent[i].revision == t->revision &&
	       r->s->recent[i].run_ms <= r->env->ahead_max_ms;
}

void sched_release_settled(struct sched *s, uint64_t job, uint32_t attempt)
{
	for (unsigned i = 0; i < s->nreleasing; i++) {
		if (s->releasing[i].job == job && s->releasing[i].attempt == attempt) {
			s->releasing[i] = s->releasing[--s->nreleasing];
			return;
		}
	}
}

void sched_node_heard(struct sched *s)
{
	s->full = true;
}

void sched_assign_done(struct sched *s, uint64_t job, bool refused)
{
	if (refused)
		s->full = true; /* the round saw a slot the log did not have */
	for (unsigned i = 0; i < s->npending; i++) {
		if (s->pending[i].job == job) {
			s->pending[i] = s->pending[--s->npending];
			return;
		}
	}
}

void sched_note(struct sched *s, uint32_t cmd_type, uint64_t job, bool released)
{
	if (released)
		s->full = true;
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
	size_t n = strnlen(reason, sizeof(s->waiting[slot].reason) - 1);
	memcpy(s->waiting[slot].reason, reason, n);
	s->waiting[slot].reason[n] = '\0';
}

static void clear_reason(struct sched *s, uint64_t job)
{
	for (unsigned i = 0; i < s->nwaiting; i++)
		if (s->waiting[i].job == job)
			s->waiting[i].job = 0;
}

/* Why no job of target `name` can run (reason NULL: it can again). */
static void set_target_reason(struct sched *s, struct ing_str name, enum place_wait wait,
                              const char *reason)
{
	unsigned free_slot = TARGET_REASONS_MAX;
	for (unsigned i = 0; i < s->ntarget_waiting; i++) {
		if (s->target_waiting[i].target[0] == '\0') {
			free_slot = i;
		} else if (ing_str_eq_c(name, s->target_waiting[i].target)) {
			if (reason == NULL)
				s->target_waiting[i].target[0] = '\0';
			else
				snprintf(s->target_waiting[i].reason,
				         sizeof(s->target_waiting[i].reason), "%s", reason);
			s->target_waiting[i].wait = (uint8_t)wait;
			return;
		}
	}
	if (reason == NULL)
		return;
	if (free_slot == TARGET_REASONS_MAX)
		free_slot =
		    s->ntarget_waiting < TARGET_REASONS_MAX
		        ? s->ntarget_waiting++
		        : (unsigned)(name.len + (unsigned char)name.ptr[0]) % TARGET_REASONS_MAX;
	snprintf(s->target_waiting[free_slot].target, sizeof(s->target_waiting[free_slot].target),
	         "%.*s", ING_STR_FMT(name));
	snprintf(s->target_waiting[free_slot].reason, sizeof(s->target_waiting[free_slot].reason),
	         "%s", reason);
	s->target_waiting[free_slot].wait = (uint8_t)wait;
}

/* The index of target `name` in the per-target reasons, or -1. */
static int target_reason_of(const struct sched *s, struct ing_str name)
{
	for (unsigned i = 0; i < s->ntarget_waiting; i++)
		if (s->target_waiting[i].target[0] != '\0' &&
		    ing_str_eq_c(name, s->target_waiting[i].target))
			return (int)i;
	return -1;
}

const char *sched_reason(const struct sched *s, uint64_t job, struct ing_str target)
{
	for (unsigned i = 0; i < s->nwaiting; i++)
		if (s->waiting[i].job == job && job != 0)
			return s->waiting[i].reason;
	int i = target_reason_of(s, target);
	return i >= 0 ? s->target_waiting[i].reason : NULL;
}

void sched_unplaceable(const struct sched *s, struct store_txn *t,
                       unsigned counts[PLACE_WAIT_COUNT])
{
	msgpack_zone z;

	memset(counts, 0, PLACE_WAIT_COUNT * sizeof(*counts));
	msgpack_zone_init(&z, 4096);
	/* Targets skipped whole: their unfinished jobs (the target record's
	 * count: reading the queue would touch every page of it, on every
	 * scrape, when a million jobs wait). */
	for (unsigned i = 0; i < s->ntarget_waiting; i++) {
		struct ing_str val, name = ing_str_c(s->target_waiting[i].target);
		struct rec_target rt;
		if (name.len == 0 || s->target_waiting[i].wait >= PLACE_WAIT_COUNT)
			continue;
		if (store_get(t, STORE_TARGETS, name, &val) == 0 &&
		    rec_target_decode(val, &z, &rt, NULL) == 0)
			counts[s->target_waiting[i].wait] += rt.active_jobs;
		msgpack_zone_clear(&z);
	}
	/* The other jobs with a reason of their own, still queued. */
	for (unsigned i = 0; i < s->nwaiting; i++) {
		struct ing_str val;
		struct rec_job j;
		uint8_t k[8];
		if (s->waiting[i].job == 0 || s->waiting[i].wait >= PLACE_WAIT_COUNT)
			continue;
		store_be64(k, s->waiting[i].job);
		if (store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val) == 0 &&
		    rec_job_decode(val, &z, &j, NULL) == 0 && j.state == REC_JOB_QUEUED &&
		    target_reason_of(s, j.target) < 0)
			counts[s->waiting[i].wait]++;
		msgpack_zone_clear(&z);
	}
	msgpack_zone_destroy(&z);
}

/*
 * Adds to the round's nodes the slots that the ends of attempts being
 * proposed free (sched_releasing): an attempt still live in the store, on
 * a node that may get work, holding no GPU.  An end already applied (the
 * attempt is no longer live) is settled here: the store counts its slot.
 * The first time it sees an end, notes how long the attempt ran (its
 * stages done, plus the last one's run_ms) for its target.
 */
static const struct rec_target *target_of(struct round *r, struct ing_str name);

static void count_releasing(struct round *r)
{
	struct sched *s = r->s;
	for (unsigned k = 0; k < s->nreleasing;) {
		struct rec_job j;
		struct ing_str val;
		uint8_t key[8];
		store_be64(key, s->releasing[k].job);
		bool live = store_get(r->t, STORE_JOBS, (struct ing_str){(const char *)key, 8},
		                      &val) == 0 &&
		            rec_job_decode(val, r->z, &j, NULL) == 0 &&
		            (j.state == REC_JOB_ASSIGNED || j.state == REC_JOB_RUNNING) &&
		            j.attempt == s->releasing[k].attempt;
		if (!live) {
			s->releasing[k] = s->releasing[--s->nreleasing];
			continue;
		}
		if (!s->releasing[k].noted && s->releasing[k].run_ms != UINT64_MAX) {
			uint64_t ran = s->releasing[k].run_ms;
			for (uint32_t i = 0; i < j.nstages; i++)
				if (j.stages[i].state == REC_STAGE_DONE)
					ran += j.stages[i].duration_ms;
			const struct rec_target *t = target_of(r, j.target);
			if (t != NULL)
				recent_note(s, j.target, t->revision, ran);
		}
		s->releasing[k].noted = true;
		k++;
		if (j.ngpus > 0)
			continue;
		for (unsigned i = 0; i < r->nnodes; i++) {
			/* Its slot is one of used_slots until the end applies
			 * (on a node over its slots, a place ahead comes free
			 * instead). */
			if (r->nodes[i].id == j.node_id)
				place_node_adjust(&r->place[i], -1);
		}
	}
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
		place_node_init(&r->place[r->nnodes], nd, r->env->ahead);
		if (r->env->heard != NULL) {
			uint64_t heard = r->env->heard(r->env->data, nd->id);
			if (heard == 0 || r->env->now_ms - heard > r->env->silent_after_ms)
				place_node_silence(&r->place[r->nnodes]);
		}
		r->nnodes++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	count_releasing(r);
	/* What the assignments in flight will take once applied. */
	for (unsigned p = 0; p < r->s->npending; p++) {
		r->pending_ids[r->npending_ids++] = r->s->pending[p].job;
		for (unsigned i = 0; i < r->nnodes; i++) {
			struct place_node *pn = &r->place[i];
			if (r->nodes[i].id != r->s->pending[p].node)
				continue;
			place_node_adjust(pn, 1);
			pn->free_gpus &= ~r->s->pending[p].gpus;
		}
	}
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
	char *copy = msgpack_zone_malloc(r->z, name.len + 1);
	if (copy == NULL) {
		r->ntargets--;
		return NULL;
	}
	memcpy(copy, name.ptr, name.len);
	r->targets[i].name = (struct ing_str){copy, name.len};
	r->targets[i].missing = store_get(r->t, STORE_TARGETS, name, &val) != 0 ||
	                        rec_target_decode(val, r->z, &r->targets[i].t, NULL) != 0;
	return r->targets[i].missing ? NULL : &r->targets[i].t;
}

/* Copies a queue entry's views into the round's zone; false when out of
 * memory. */
static bool keep_entry(struct round *r, struct sm_queue_entry *q)
{
	char *p = msgpack_zone_malloc(r->z, q->target.len + q->tenant.len + 1);
	if (p == NULL)
		return false;
	memcpy(p, q->target.ptr, q->target.len);
	memcpy(p + q->target.len, q->tenant.ptr, q->tenant.len);
	q->target.ptr = p;
	q->tenant.ptr = p + q->target.len;
	return true;
}

/*
 * A job whose last attempt was lost waits before its next one:
 * retry_backoff_ms, doubling per attempt lost since the last operator
 * retry, at most RETRY_BACKOFF_MAX_MS, counted from the requeue.  True (and
 * the job's reason and the scheduler's wake-up set) while it waits.
 */
static bool backed_off(struct round *r, const struct sm_queue_entry *q)
{
	struct sched *s = r->s;
	char reason[sizeof(s->waiting[0].reason)];
	if (q->lost == 0 || r->env->retry_backoff_ms == 0)
		return false;
	uint64_t backoff = (uint64_t)r->env->retry_backoff_ms << (q->lost > 16 ? 16 : q->lost - 1);
	if (backoff > RETRY_BACKOFF_MAX_MS)
		backoff = RETRY_BACKOFF_MAX_MS;
	uint64_t ready_at = q->queued_at_ms + backoff;
	if (r->env->now_ms >= ready_at)
		return false;
	snprintf(reason, sizeof(reason),
	         "attempt %" PRIu32 " was lost; the next one waits %" PRIu64 " ms (retry backoff)",
	         q->attempt, backoff);
	set_reason(s, q->job, PLACE_WAIT_BACKOFF, reason);
	if (s->wake_ms == 0 || ready_at < s->wake_ms)
		s->wake_ms = ready_at;
	return true;
}

/* Places one candidate (its backoff already checked); returns true when it
 * was proposed. */
/* Whether job `id` has an assignment in flight (still in the queue until
 * it applies). */
static bool in_flight(const struct round *r, uint64_t id)
{
	for (unsigned i = 0; i < r->npending_ids; i++)
		if (r->pending_ids[i] == id)
			return true;
	return false;
}

static bool place(struct round *r, const struct cand *c)
{
	struct sched *s = r->s;
	char reason[sizeof(s->waiting[0].reason)];
	struct place_choice pick;
	uint64_t id = c->q.job;

	for (unsigned i = 0; i < r->proposed; i++)
		if (r->proposed_ids[i] == id)
			return false; /* already placed in this round */
	if (in_flight(r, id))
		return false;
	if (s->npending == PENDING_MAX)
		return false;
	if (r->miss && r->miss_proposed == r->proposed && r->miss_revision == c->t->revision &&
	    ing_str_eq_c(c->t->name, r->miss_target)) {
		set_reason(s, id, (enum place_wait)r->miss_wait, r->miss_reason);
		return false;
	}
	if (place_pick(c->t, r->place, r->nnodes, may_wait(r, c->t), &pick, reason,
	               sizeof(reason)) != 0) {
		set_reason(s, id, pick.wait, reason);
		r->miss = c->t->name.len < sizeof(r->miss_target);
		ing_str_to_c(c->t->name, r->miss_target, sizeof(r->miss_target));
		r->miss_revision = c->t->revision;
		r->miss_proposed = r->proposed;
		r->miss_wait = (uint8_t)pick.wait;
		memcpy(r->miss_reason, reason, sizeof(r->miss_reason));
		return false;
	}

	struct cmd cmd;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = CMD_JOB_ASSIGN;
	cmd.request_id = ing_str_c("");
	cmd.u.job_assign.job = id;
	cmd.u.job_assign.node = r->nodes[pick.node].id;
	cmd.u.job_assign.attempt = c->q.attempt + 1;
	cmd.u.job_assign.lease_until_ms = r->env->now_ms + LEASE_MS;
	cmd.u.job_assign.ngpus = pick.ngpus;
	cmd.u.job_assign.gpus = pick.gpus;
	cmd.u.job_assign.start = true; /* the worker runs stage 0 at once */
	cmd.u.job_assign.ahead = pick.ahead ? r->env->ahead : 0;
	if (r->env->assign(r->env->data, &cmd, c->q.queued_at_ms) != 0)
		return false;
	uint64_t gpus = 0;
	for (uint32_t i = 0; i < pick.ngpus; i++)
		gpus |= 1ull << pick.gpus[i];
	s->pending[s->npending].job = id;
	s->pending[s->npending].node = r->nodes[pick.node].id;
	s->pending[s->npending++].gpus = gpus;
	place_take(r->place, &pick);
	r->proposed_ids[r->proposed++] = id;
	clear_reason(s, id);
	ING_LOG_DEBUG("job assigned job=%" PRIu64 " node=%" PRIu64 " attempt=%" PRIu32
	              " gpus=%" PRIu32 "%s",
	              id, r->nodes[pick.node].id, c->q.attempt + 1, pick.ngpus,
	              pick.ahead ? " ahead=yes" : "");
	return true;
}

/* Round-robin across the tenants of one priority level; cands is sorted by
 * (tenant, job). */
static void place_level(struct round *r, struct cand *cands, unsigned ncands)
{
	bool progress = true;
	/* `next` walks each tenant's run */
	unsigned *next = msgpack_zone_malloc(r->z, (ncands + 1) * sizeof(*next));
	unsigned *end = msgpack_zone_malloc(r->z, (ncands + 1) * sizeof(*end));
	unsigned ntenants = 0;
	if (next == NULL || end == NULL)
		return;
	for (unsigned i = 0; i < ncands; i++) {
		if (i == 0 || !ing_str_eq(cands[i].q.tenant, cands[i - 1].q.tenant)) {
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
	while (t0 < ntenants && ing_str_cmp(cands[next[t0]].q.tenant, last) <= 0)
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
			if (place(r, c)) {
				memcpy(s->last_tenant, c->q.tenant.ptr, c->q.tenant.len);
				s->last_tenant_len = c->q.tenant.len;
			}
			progress = true;
		}
	}
}

/* Places the jobs submitted since the last round, in submit order. */
static void place_new(struct round *r)
{
	struct sched *s = r->s;
	for (unsigned i = 0; i < s->nfresh && r->proposed < BATCH_MAX; i++) {
		struct rec_job_head j; /* the record's first items: no full decode */
		struct ing_str val;
		uint8_t k[8];
		struct cand c;
		store_be64(k, s->fresh[i]);
		if (store_get(r->t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val) != 0 ||
		    rec_job_head_decode(val, &j) != 0 || j.state != REC_JOB_QUEUED)
			continue;
		c.q = (struct sm_queue_entry){.target = j.target,
		                              .tenant = j.tenant,
		                              .priority = j.priority,
		                              .job = j.id,
		                              .attempt = j.attempt,
		                              .lost = j.attempt - j.attempt_base,
		                              .queued_at_ms = j.updated_at_ms};
		c.t = target_of(r, j.target);
		if (c.t != NULL && !backed_off(r, &c.q))
			place(r, &c);
	}
	s->nfresh = 0;
}

/* One target's run of the queue during a full pass.  Within it the entries
 * come in groups of one priority and one tenant; the pass takes at most
 * `room` candidates from each group (tenants take turns, so each needs its
 * first candidates read) and seeks past the rest of the group. */
struct run_of {
	const struct rec_target *t;
	struct store_iter *it;
	struct sm_queue_entry head; /* the next entry, when has_head */
	bool has_head;
	unsigned room;             /* jobs of the target that could be placed now */
	uint32_t grp_priority;     /* the group of the candidates taken last */
	struct ing_str grp_tenant; /* view into the round's zone */
	unsigned grp_taken;        /* candidates taken from that group */
	bool passed_over;          /* entries of it were skipped unread */
};

/* Reads the next entry of run u, if it is still of u's target. */
static void run_advance(struct round *r, struct run_of *u)
{
	struct ing_str k, v, target = u->t->name;
	u->has_head = false;
	if (u->it == NULL || store_iter_next(u->it, &k, &v) != 0)
		return;
	struct sm_queue_entry q;
	if (!sm_queue_parse(k, v, &q) || !ing_str_eq(q.target, target) || !keep_entry(r, &q))
		return;
	u->head = q;
	u->has_head = true;
}

/* Moves run u past every entry of the group of its head: the next key
 * after (target, 0x00, 100 - priority, tenant) is that prefix + 0x01. */
static void run_skip_group(struct round *r, struct run_of *u)
{
	uint8_t k[SM_QUEUE_KEY_MAX];
	struct ing_str key = sm_queue_key(k, u->head.target, u->head.priority, u->head.tenant, 0);
	key.len -= 9; /* drop the 0x00 and the job id */
	k[key.len++] = 1;
	store_iter_close(u->it);
	u->it = NULL;
	u->has_head = false;
	u->passed_over = true;
	if (store_iter_open(r->t, STORE_QUEUE, key, &u->it) != 0)
		u->it = NULL;
	run_advance(r, u);
}

/* Queue order within a target: priority, tenant, job. */
static int entry_cmp(const struct sm_queue_entry *a, const struct sm_queue_entry *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	int c = ing_str_cmp(a->tenant, b->tenant);
	if (c != 0)
		return c;
	return a->job < b->job ? -1 : a->job > b->job;
}

/*
 * The targets that have queued jobs, one seek each: those placement says
 * can take a job now go into runs (at most MERGE_MAX), the others get
 * their reason.  Returns the number of runs.
 */
static unsigned collect_runs(struct round *r, struct run_of *runs)
{
	struct sched *s = r->s;
	char reason[sizeof(s->target_waiting[0].reason)];
	char start[ING_NAME_MAX + 2];
	uint32_t start_len = 0;
	unsigned nruns = 0;

	for (;;) {
		struct store_iter *it;
		struct ing_str k, v;
		struct sm_queue_entry q;
		if (store_iter_open(r->t, STORE_QUEUE, (struct ing_str){start, start_len}, &it) !=
		    0)
			break;
		int rv = store_iter_next(it, &k, &v);
		if (rv != 0 || !sm_queue_parse(k, v, &q)) {
			store_iter_close(it);
			break;
		}
		/* the smallest key after every key of this target: target 0x01 */
		memcpy(start, q.target.ptr, q.target.len);
		start[q.target.len] = 1;
		start_len = q.target.len + 1;
		const struct rec_target *t = target_of(r, q.target);
		struct place_choice pick;
		if (t == NULL) {
			store_iter_close(it);
			continue;
		}
		bool wait = may_wait(r, t);
		unsigned room = place_room(t, r->place, r->nnodes, wait);
		if (room == 0 || nruns == MERGE_MAX) {
			if (room == 0 && place_pick(t, r->place, r->nnodes, wait, &pick, reason,
			                            sizeof(reason)) != 0)
				set_target_reason(s, t->name, pick.wait, reason);
			store_iter_close(it);
			continue;
		}
		set_target_reason(s, t->name, PLACE_WAIT_COUNT, NULL);
		struct run_of *u = &runs[nruns++];
		memset(u, 0, sizeof(*u));
		u->t = t;
		u->it = it;
		u->room = room;
		u->grp_priority = UINT32_MAX;
		u->has_head = keep_entry(r, &q);
		u->head = q;
	}
	return nruns;
}

/*
 * A full pass: the runs of the targets that can take a job now, merged in
 * queue order, each read only as far as its room, placed one priority
 * level at a time.
 */
static void place_pass(struct round *r)
{
	struct sched *s = r->s;
	struct run_of *runs = msgpack_zone_malloc(r->z, MERGE_MAX * sizeof(*runs));
	struct cand *cands = malloc(SCAN_MAX * sizeof(*cands));
	unsigned nruns, ncands = 0, scanned = 0;

	s->full = false;
	if (runs == NULL || cands == NULL) {
		free(cands);
		return;
	}
	nruns = collect_runs(r, runs);
	while (scanned < SCAN_MAX && r->proposed < BATCH_MAX) {
		struct run_of *best = NULL;
		for (unsigned i = 0; i < nruns; i++) {
			struct run_of *u = &runs[i];
			if (u->has_head && (best == NULL || entry_cmp(&u->head, &best->head) < 0))
				best = u;
		}
		if (best == NULL)
			break;
		bool same_group = best->head.priority == best->grp_priority &&
		                  ing_str_eq(best->head.tenant, best->grp_tenant);
		if (!same_group) {
			best->grp_priority = best->head.priority;
			best->grp_tenant = best->head.tenant;
			best->grp_taken = 0;
		} else if (best->grp_taken >= best->room) {
			run_skip_group(r, best);
			continue;
		}
		if (ncands > 0 && best->head.priority != cands[ncands - 1].q.priority) {
			place_level(r, cands, ncands);
			ncands = 0;
		}
		scanned++;
		/* A job being assigned is still queued until its assignment
		 * applies: it is no candidate and takes none of the group's
		 * room (the job after it gets that). */
		if (!in_flight(r, best->head.job) && !backed_off(r, &best->head)) {
			cands[ncands].q = best->head;
			cands[ncands].t = best->t;
			ncands++;
			best->grp_taken++;
		}
		run_advance(r, best);
	}
	if (ncands > 0 && r->proposed < BATCH_MAX)
		place_level(r, cands, ncands);
	for (unsigned i = 0; i < nruns; i++) {
		/* Jobs left unread wait for room: say so for their target. */
		char reason[sizeof(s->target_waiting[0].reason)];
		struct place_choice pick;
		if ((runs[i].has_head || runs[i].passed_over) &&
		    place_pick(runs[i].t, r->place, r->nnodes, may_wait(r, runs[i].t), &pick,
		               reason, sizeof(reason)) != 0)
			set_target_reason(s, runs[i].t->name, pick.wait, reason);
		store_iter_close(runs[i].it);
	}
	s->last_scanned = scanned;
	if (r->proposed > 0)
		ING_LOG_DEBUG("scheduling pass proposed=%u scanned=%u targets=%u", r->proposed,
		              scanned, nruns);
	free(cands);
}

unsigned sched_last_scanned(const struct sched *s)
{
	return s->last_scanned;
}

bool sched_due(struct sched *s, uint64_t now_ms)
{
	if (s->wake_ms != 0 && now_ms >= s->wake_ms) {
		/* a backed-off job may go now: look at the queue again */
		s->wake_ms = 0;
		s->full = true;
	}
	return (s->full || s->nfresh > 0) && s->npending < PENDING_MAX;
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
			place_pass(&r);
		place_new(&r);
	}
	msgpack_zone_free(r.z);
}

struct run {
	struct node *n;
	struct sched *s;
};

struct assigning {
	struct sched *s;
	uint64_t job;
};

static void on_assigned(void *data, int status, const struct node_result *res)
{
	struct assigning *a = data;
	if (status == 0 && res != NULL && res->code != 0)
		ING_LOG_DEBUG("assignment rejected error=%s msg=\"%s\"", ing_err_name(res->code),
		              res->message);
	sched_assign_done(a->s, a->job, status == 0 && res != NULL && res->code != 0);
	free(a);
}

static int propose_assign(void *data, const struct cmd *c, uint64_t queued_ms)
{
	struct run *run = data;
	struct ing_error e;
	struct assigning *a = malloc(sizeof(*a));
	if (a == NULL)
		return ING_ENOMEM;
	*a = (struct assigning){run->s, c->u.job_assign.job};
	int rv = node_propose(run->n, c, on_assigned, a, &e);
	if (rv != 0)
		free(a);
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
	    .ahead = node_cfg(n)->assign_ahead,
	    .ahead_max_ms = node_cfg(n)->assign_ahead_max_ms,
	};
	sched_round(s, t, &env);
	store_abort(t);
}
