/*
 * sm_job.c - the job state machine.
 *
 *            submit               assign(attempt n+1)        stage_start
 *   (none) ────────▶ queued ─────────────────────▶ assigned ───────────▶ running
 *                      ▲  ▲                          │  │                 │ │
 *                      │  └── requeue / node down ───┘  │                 │ │
 *                      │      (attempts remain)         └─── finish ──────┼─┤
 *                      │                                                  │ ▼
 *                      └── retry ── failed | cancelled ◀── finish ── succeeded
 *
 *   An assignment with `ahead` (job_assign v4) may take the node past its
 *   slots, to at most slots + ahead attempts, none of which holds a GPU:
 *   its worker runs it as soon as one of its slots is free, with no
 *   command in between (the slot a report frees is taken at once).
 *   node.used_slots then counts the attempts waiting there too.
 *
 *   An assignment with `start` (job_assign v3, what the scheduler proposes)
 *   also starts stage 0: queued ──▶ running in one command, with both
 *   events (assigned, stage_started), and the worker runs the stage as soon
 *   as it applies the assignment.  The fencing is the assignment's: like a
 *   stage_start, it is a committed decision that this attempt runs on this
 *   node, checked against the job's state at its place in the log; every
 *   report after it still names the attempt and is refused once the
 *   attempt is no longer live.  `assigned` stays for v1/v2 entries.
 *
 *   expire (the job's deadline_at_ms <= the command's time): queued,
 *   assigned or running ──▶ failed "deadline passed" (cancelled instead
 *   when a cancel was pending).  A live attempt is released (assignment
 *   and slot: its worker sees it fenced and kills the stage); its stage
 *   results are kept, so the history shows what ran.  A retry keeps the
 *   deadline, so retrying a job whose deadline passed fails it again.
 *
 * States are enum rec_job_state.  Every transition is one command, checked
 * here before anything is written: an illegal transition is rejected with
 * ING_ECONFLICT, a report (stage start/finish, finish, requeue) whose attempt
 * is not the job's live attempt with ING_ESTALE.  That fencing is what makes
 * a job finish exactly once with the result of exactly one attempt, even
 * when a node that was declared down comes back and reports.
 *
 * Derived indexes kept in step with the job record:
 *   queue        holds the job       iff state == queued, keyed by target
 *                first (the scheduler skips a whole target that cannot run),
 *                with the job's attempt, attempts lost and queued time
 *   finished     holds (finished_at_ms, job) iff the job is final (retention)
 *   sources      holds the bytes of its sources of at most
 *                ING_INLINE_SOURCE_MAX bytes (the others are artifacts),
 *                from submit until the job is removed
 *   assignments  holds (node, job)   iff state is assigned or running
 *   node.used_slots  = number of its assignments
 *   node.held    holds (gpu, job)    for each of job.gpus iff the job is
 *                assigned or running (job.gpus stays on a final job as
 *                the GPUs it ran on, and is emptied when it is queued)
 *   target.active_jobs = number of its jobs not in a final state
 * Each transition updates all of them and appends one event (two when a
 * lost attempt also ends the job) to the job's history.
 *
 * Attempts: `attempt` counts every assignment ever made (it never goes
 * back, so fencing stays sound across operator retries); the attempts used
 * since the last retry are attempt - attempt_base, at most max_attempts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/sm/sm_internal.h"
#include "storage/artifact.h"

static struct ing_str queue_key(uint8_t k[SM_QUEUE_KEY_MAX], const struct rec_job *j)
{
	return sm_queue_key(k, j->target, j->priority, j->tenant, j->id);
}

static struct ing_str finished_key(uint8_t k[16], const struct rec_job *j)
{
	store_be64(k, j->finished_at_ms);
	store_be64(k + 8, j->id);
	return (struct ing_str){(const char *)k, 16};
}

static struct ing_str assignment_key(uint8_t k[16], uint64_t node, uint64_t job)
{
	store_be64(k, node);
	store_be64(k + 8, job);
	return (struct ing_str){(const char *)k, 16};
}

static int job_missing(struct sm_ctx *x, uint64_t id)
{
	return sm_reject(x, ING_ENOTFOUND, "job %" PRIu64 " does not exist", id);
}

/* Loads the job named by a command; rejects when it does not exist.
 * Returns 1 when rejected, 0 when loaded, or a fatal error. */
static int load_job(struct sm_ctx *x, uint64_t id, struct rec_job *j)
{
	int rv = sm_job_load(x, id, j);
	if (rv == ING_ENOTFOUND) {
		job_missing(x, id);
		return 1;
	}
	return rv;
}

static int event_add(struct sm_ctx *x, struct rec_job *j, uint8_t kind, int32_t stage,
                     int64_t exit_code, struct ing_str message)
{
	uint8_t k[12];
	struct rec_event ev = {
	    .time_ms = x->c->time_ms,
	    .kind = kind,
	    .state = j->state,
	    .attempt = j->attempt,
	    .node_id = j->node_id,
	    .stage = stage,
	    .exit_code = exit_code,
	    .message = message,
	    .principal = x->c->principal,
	};
	store_be64(k, j->id);
	store_be32(k + 8, j->nevents++);
	mp_out_reset(&x->sm->enc);
	rec_event_encode(&ev, &x->sm->enc);
	return sm_put_encoded(x, STORE_EVENTS, (struct ing_str){(const char *)k, 12});
}

static const struct ing_str no_message = {"", 0};

static int target_active_add(struct sm_ctx *x, struct ing_str name, int delta)
{
	struct rec_target t;
	int rv = sm_target_load(x, name, &t);
	if (rv == ING_ENOTFOUND)
		return ING_CORRUPT("unfinished job of a target that does not exist");
	if (rv != 0)
		return rv;
	if (delta < 0 && t.active_jobs == 0)
		return ING_CORRUPT("target active job count below zero");
	t.active_jobs = (uint32_t)((int64_t)t.active_jobs + delta);
	return sm_target_save_active(x, &t);
}

/* Drops the artifacts of the current attempt's stage results. */
static int discard_stages(struct sm_ctx *x, struct rec_job *j)
{
	for (uint32_t i = 0; i < j->nstages; i++) {
		struct rec_stage_result *s = &j->stages[i];
		int rv;
		if (s->has_log && (rv = store_artifact_unref(x->t, s->log_sha256)) != 0)
			return rv == ING_ENOTFOUND ? ING_CORRUPT("stage log artifact") : rv;
		for (uint32_t o = 0; o < s->noutputs; o++) {
			rv = store_artifact_unref(x->t, s->outputs[o].sha256);
			if (rv != 0)
				return rv == ING_ENOTFOUND ? ING_CORRUPT("stage output artifact")
				                           : rv;
		}
	}
	j->nstages = 0;
	j->stages = NULL;
	return 0;
}

/* Removes the job's holds from the node's GPUs. */
static int release_gpus(struct rec_node *n, const struct rec_job *j)
{
	uint32_t kept = 0, freed = 0;

	for (uint32_t i = 0; i < n->nheld; i++) {
		if (n->held[i].job == j->id)
			freed++;
		else
			n->held[kept++] = n->held[i];
	}
	n->nheld = kept;
	if (freed != j->ngpus)
		return ING_CORRUPT("GPU holds of a live attempt differ from its GPUs");
	return 0;
}

/* Removes the job's live attempt from its node (assignment, slot, GPUs). */
static int release_attempt(struct sm_ctx *x, struct rec_job *j)
{
	uint8_t k[16];
	struct rec_node n;
	int rv = store_del(x->t, STORE_ASSIGNMENTS, assignment_key(k, j->node_id, j->id));
	if (rv == ING_ENOTFOUND)
		return ING_CORRUPT("live attempt without an assignment");
	if (rv != 0)
		return rv;
	rv = sm_node_load(x, j->node_id, &n);
	if (rv == ING_ENOTFOUND)
		return ING_CORRUPT("assignment to a node that does not exist");
	if (rv != 0)
		return rv;
	if (n.used_slots == 0)
		return ING_CORRUPT("node used slots below zero");
	n.used_slots--;
	rv = release_gpus(&n, j);
	if (rv != 0)
		return rv;
	x->res->released = true;
	return sm_node_save(x, &n);
}

/* Puts the job in a final state, with its event, and saves it. */
static int end_job(struct sm_ctx *x, struct rec_job *j, uint8_t state, struct ing_str message)
{
	static const uint8_t kinds[] = {[REC_JOB_SUCCEEDED] = REC_EV_SUCCEEDED,
	                                [REC_JOB_FAILED] = REC_EV_FAILED,
	                                [REC_JOB_CANCELLED] = REC_EV_CANCELLED};
	int rv = target_active_add(x, j->target, -1);
	if (rv != 0)
		return rv;
	j->state = state;
	j->finished_at_ms = x->c->time_ms;
	j->updated_at_ms = x->c->time_ms;
	if (state == REC_JOB_SUCCEEDED)
		j->error = no_message;
	else if (!(state == REC_JOB_CANCELLED && j->cancel_requested && j->error.len > 0))
		j->error = message; /* a cancel keeps the reason given when it was requested */
	rv = event_add(x, j, kinds[state], -1, 0, message);
	if (rv == 0) {
		uint8_t k[16];
		rv = store_put(x->t, STORE_FINISHED, finished_key(k, j), no_message);
	}
	if (rv != 0)
		return rv;
	return sm_job_save(x, j);
}

/* Puts the job in the queue; its value says what the scheduler needs
 * without reading the job: attempt, attempts lost since the last retry
 * (the retry backoff) and when it was queued. */
static int enqueue(struct sm_ctx *x, struct rec_job *j)
{
	uint8_t k[SM_QUEUE_KEY_MAX], v[SM_QUEUE_VALUE_BYTES];
	store_be32(v, j->attempt);
	store_be32(v + 4, j->attempt - j->attempt_base);
	store_be64(v + 8, j->updated_at_ms);
	return store_put(x->t, STORE_QUEUE, queue_key(k, j),
	                 (struct ing_str){(const char *)v, sizeof(v)});
}

static bool attempts_left(const struct rec_job *j)
{
	return j->attempt - j->attempt_base < j->max_attempts;
}

int sm_job_lose_attempt(struct sm_ctx *x, struct rec_job *j, const char *why)
{
	char msg[ING_MESSAGE_MAX];
	int rv = release_attempt(x, j);
	if (rv == 0)
		rv = discard_stages(x, j);
	if (rv != 0)
		return rv;
	/* The node stays on the job's record (and so on the event) for a final
	 * outcome; a requeued job has none until it is assigned again. */
	j->lease_until_ms = 0;
	j->stage_count = 0;
	if (j->cancel_requested) {
		snprintf(msg, sizeof(msg), "cancelled; attempt %" PRIu32 " lost: %s", j->attempt,
		         why);
		return end_job(x, j, REC_JOB_CANCELLED, ing_str_c(msg));
	}
	if (!attempts_left(j)) {
		snprintf(msg, sizeof(msg), "attempt %" PRIu32 " lost (%s) and no attempts remain",
		         j->attempt, why);
		return end_job(x, j, REC_JOB_FAILED, ing_str_c(msg));
	}
	j->state = REC_JOB_QUEUED;
	j->updated_at_ms = x->c->time_ms;
	rv = enqueue(x, j);
	if (rv == 0)
		rv = event_add(x, j, REC_EV_REQUEUED, -1, 0, ing_str_c(why));
	j->node_id = 0;
	j->ngpus = 0;
	j->gpus = NULL;
	if (rv == 0)
		rv = sm_job_save(x, j);
	return rv;
}

/*
 * Checks that a worker's report is about the job's live attempt: the job is
 * assigned or running and `attempt` is its current attempt.  Rejects and
 * returns false otherwise.
 */
static bool report_ok(struct sm_ctx *x, const struct rec_job *j, uint32_t attempt)
{
	bool live = j->state == REC_JOB_ASSIGNED || j->state == REC_JOB_RUNNING;
	if (live && attempt == j->attempt)
		return true;
	if (attempt < j->attempt || (attempt == j->attempt && j->state == REC_JOB_QUEUED))
		sm_reject(x, ING_ESTALE,
		          "attempt %" PRIu32 " of job %" PRIu64
		          " is no longer live (job is %s at attempt %" PRIu32 ")",
		          attempt, j->id, rec_job_state_name(j->state), j->attempt);
	else if (attempt > j->attempt)
		sm_reject(x, ING_ESTALE,
		          "attempt %" PRIu32 " of job %" PRIu64
		          " was never assigned (current %" PRIu32 ")",
		          attempt, j->id, j->attempt);
	else
		sm_reject(x, ING_ECONFLICT, "job %" PRIu64 " has already ended (%s)", j->id,
		          rec_job_state_name(j->state));
	return false;
}

/*
 * Stores files as artifacts into *out.  With `job` (a submit's sources),
 * those of at most ING_INLINE_SOURCE_MAX bytes are kept with the job
 * instead, in one sources record under its id: they are written once, at
 * the end of a table that grows in job order, where an artifact's key (its
 * SHA-256) would land on a random page of a table that grows with the
 * state.
 */
static int store_files(struct sm_ctx *x, uint32_t n, const struct cmd_file *in, uint64_t job,
                       struct rec_file **out)
{
	struct rec_file *f = NULL;
	struct rec_sources src = {0};
	if (n > 0) {
		f = msgpack_zone_malloc(x->z, n * sizeof(*f));
		src.data = msgpack_zone_malloc(x->z, n * sizeof(*src.data));
		if (f == NULL || src.data == NULL)
			return ING_ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		int rv = 0;
		f[i].path = in[i].path;
		f[i].size = in[i].data.len;
		f[i].stored_inline = job != 0 && in[i].data.len <= ING_INLINE_SOURCE_MAX;
		if (f[i].stored_inline) {
			store_sha256(in[i].data.ptr, in[i].data.len, f[i].sha256);
			src.data[src.n++] = in[i].data;
		} else {
			rv = store_artifact_put(x->t, in[i].data.ptr, in[i].data.len, f[i].sha256);
		}
		if (rv != 0)
			return rv;
	}
	if (src.n > 0) {
		uint8_t k[8];
		store_be64(k, job);
		mp_out_reset(&x->sm->enc);
		rec_sources_encode(&src, &x->sm->enc);
		int rv = sm_put_encoded(x, STORE_SOURCES, (struct ing_str){(const char *)k, 8});
		if (rv != 0)
			return rv;
	}
	*out = f;
	return 0;
}

int sm_job_submit(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	struct rec_target t;
	struct rec_job j;
	uint64_t id;
	int rv = sm_target_load(x, c->u.job_submit.target, &t);

	if (rv == ING_ENOTFOUND)
		return sm_reject(x, ING_ENOTFOUND, "target '%.*s' does not exist",
		                 ING_STR_FMT(c->u.job_submit.target));
	if (rv != 0)
		return rv;
	if (c->u.job_submit.deadline_at_ms != 0 && c->u.job_submit.deadline_at_ms <= c->time_ms)
		return sm_reject(x, ING_EINVAL,
		                 "deadline %" PRIu64 " is not after submit time %" PRIu64,
		                 c->u.job_submit.deadline_at_ms, c->time_ms);

	rv = store_next_id(x->t, "next_job_id", &id);
	if (rv != 0)
		return rv;
	sm_job_note_new(x, id);
	memset(&j, 0, sizeof(j));
	j.id = id;
	j.tenant = c->u.job_submit.tenant;
	j.target = c->u.job_submit.target;
	j.target_revision = t.revision;
	j.request_id = c->request_id;
	j.state = REC_JOB_QUEUED;
	j.priority = c->u.job_submit.priority;
	j.max_attempts = c->u.job_submit.max_attempts;
	j.created_at_ms = c->time_ms;
	j.updated_at_ms = c->time_ms;
	j.deadline_at_ms = c->u.job_submit.deadline_at_ms;
	j.error = no_message;
	j.nparams = c->u.job_submit.nparams;
	j.params = c->u.job_submit.params;
	j.nsources = c->u.job_submit.nsources;
	rv = store_files(x, j.nsources, c->u.job_submit.sources, j.id, &j.sources);
	if (rv == 0) {
		t.active_jobs++; /* t was loaded above: no second read */
		rv = sm_target_save_active(x, &t);
	}
	if (rv == 0)
		rv = enqueue(x, &j);
	if (rv == 0)
		rv = event_add(x, &j, REC_EV_SUBMITTED, -1, 0, no_message);
	if (rv == 0)
		rv = sm_job_save(x, &j);
	if (rv == 0) {
		sm_result_uint(x, id);
		x->res->job = id;
		x->res->job_deadline_at_ms = j.deadline_at_ms;
	}
	return rv;
}

/*
 * Checks the GPUs a job_assign gives: exactly as many as the target needs,
 * each offered by the node and not held.  Rejects (ING_ECONFLICT) and
 * returns false otherwise.
 */
static bool gpus_free(struct sm_ctx *x, const struct rec_job *j, const struct rec_target *t,
                      const struct rec_node *n)
{
	const uint32_t ngpus = x->c->u.job_assign.ngpus, *gpus = x->c->u.job_assign.gpus;
	uint32_t need = rec_target_gpus(t);

	if (ngpus != need) {
		sm_reject(x, ING_ECONFLICT,
		          "job %" PRIu64 " needs %" PRIu32 " GPU%s (target '%.*s'), the assignment "
		          "gives %" PRIu32,
		          j->id, need, need == 1 ? "" : "s", ING_STR_FMT(t->name), ngpus);
		return false;
	}
	for (uint32_t i = 0; i < ngpus; i++) {
		bool offered = false;
		for (uint32_t g = 0; g < n->ngpus && !offered; g++)
			offered = n->gpus[g].index == gpus[i];
		if (!offered) {
			sm_reject(x, ING_ECONFLICT, "node %" PRIu64 " has no GPU %" PRIu32, n->id,
			          gpus[i]);
			return false;
		}
		for (uint32_t h = 0; h < n->nheld; h++) {
			if (n->held[h].index == gpus[i]) {
				sm_reject(x, ING_ECONFLICT,
				          "GPU %" PRIu32 " of node %" PRIu64
				          " is held by job %" PRIu64,
				          gpus[i], n->id, n->held[h].job);
				return false;
			}
		}
	}
	/* Holds of GPUs the node no longer offers (it re-registered) count
	 * too: a node record never holds more than ING_MAX_GPUS. */
	if (n->nheld + ngpus > ING_MAX_GPUS) {
		sm_reject(x, ING_ECONFLICT,
		          "node %" PRIu64 " already has %" PRIu32 " GPUs held (at most %d)", n->id,
		          n->nheld, ING_MAX_GPUS);
		return false;
	}
	return true;
}

/* Records the assignment's GPUs as held by job j on node n, and on j. */
static int hold_gpus(struct sm_ctx *x, struct rec_job *j, struct rec_node *n)
{
	const uint32_t ngpus = x->c->u.job_assign.ngpus;
	struct rec_gpu_hold *held;

	j->ngpus = ngpus;
	j->gpus = x->c->u.job_assign.gpus;
	if (ngpus == 0)
		return 0;
	held = msgpack_zone_malloc(x->z, (n->nheld + ngpus) * sizeof(*held));
	if (held == NULL)
		return ING_ENOMEM;
	if (n->nheld > 0)
		memcpy(held, n->held, n->nheld * sizeof(*held));
	for (uint32_t i = 0; i < ngpus; i++) {
		held[n->nheld + i].index = j->gpus[i];
		held[n->nheld + i].job = j->id;
	}
	n->held = held;
	n->nheld += ngpus;
	return 0;
}

static int stage_begin(struct sm_ctx *x, struct rec_job *j, uint32_t stage);

int sm_job_assign(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	uint64_t node_id = c->u.job_assign.node;
	uint32_t attempt = c->u.job_assign.attempt;
	struct rec_job j;
	struct rec_node n;
	struct rec_target t;
	uint8_t qk[SM_QUEUE_KEY_MAX], ak[16], v[4];
	int rv = load_job(x, c->u.job_assign.job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (j.state != REC_JOB_QUEUED)
		return sm_reject(x, ING_ECONFLICT, "job %" PRIu64 " is %s, not queued", j.id,
		                 rec_job_state_name(j.state));
	if (attempt != j.attempt + 1)
		return sm_reject(x, ING_ESTALE,
		                 "attempt %" PRIu32 " is not the next attempt of job %" PRIu64
		                 " (expected %" PRIu32 ")",
		                 attempt, j.id, j.attempt + 1);
	if (!attempts_left(&j))
		return sm_reject(x, ING_ECONFLICT, "job %" PRIu64 " has no attempts left", j.id);
	rv = sm_node_load(x, node_id, &n);
	if (rv == ING_ENOTFOUND)
		return sm_reject(x, ING_ENOTFOUND, "node %" PRIu64 " is not registered", node_id);
	if (rv != 0)
		return rv;
	if (n.down)
		return sm_reject(x, ING_ECONFLICT, "node %" PRIu64 " is down", node_id);
	if (n.draining)
		return sm_reject(x, ING_ECONFLICT, "node %" PRIu64 " is draining", node_id);
	if (n.used_slots >= n.slots && c->u.job_assign.ahead == 0)
		return sm_reject(x, ING_ECONFLICT,
		                 "node %" PRIu64 " has no free slot (%" PRIu32 " of %" PRIu32
		                 " used)",
		                 node_id, n.used_slots, n.slots);
	if (n.slots == 0 || n.used_slots >= n.slots + c->u.job_assign.ahead)
		return sm_reject(x, ING_ECONFLICT,
		                 "node %" PRIu64 " holds %" PRIu32 " attempts, %" PRIu32
		                 " slots and %" PRIu32 " ahead",
		                 node_id, n.used_slots, n.slots, c->u.job_assign.ahead);
	rv = sm_target_load(x, j.target, &t);
	if (rv == ING_ENOTFOUND)
		return ING_CORRUPT("queued job of a target that does not exist");
	if (rv != 0)
		return rv;
	if (!gpus_free(x, &j, &t, &n))
		return 0;
	if (c->u.job_assign.start && (j.nstages != 0 || t.nstages == 0))
		return ING_CORRUPT("queued job with stages, or target without any");

	rv = store_del(x->t, STORE_QUEUE, queue_key(qk, &j));
	if (rv == ING_ENOTFOUND)
		return ING_CORRUPT("queued job missing from the queue");
	if (rv != 0)
		return rv;
	store_be32(v, attempt);
	rv = store_put(x->t, STORE_ASSIGNMENTS, assignment_key(ak, node_id, j.id),
	               (struct ing_str){(const char *)v, 4});
	if (rv != 0)
		return rv;
	n.used_slots++;
	rv = hold_gpus(x, &j, &n);
	if (rv == 0)
		rv = sm_node_save(x, &n);
	if (rv != 0)
		return rv;
	j.state = REC_JOB_ASSIGNED;
	j.attempt = attempt;
	j.node_id = node_id;
	j.lease_until_ms = c->u.job_assign.lease_until_ms;
	j.stage_count = t.nstages;
	j.updated_at_ms = c->time_ms;
	rv = event_add(x, &j, REC_EV_ASSIGNED, -1, 0, no_message);
	if (rv == 0 && c->u.job_assign.start)
		rv = stage_begin(x, &j, 0);
	if (rv == 0)
		rv = sm_job_save(x, &j);
	if (rv == 0)
		sm_result_str(x, rec_job_state_name(j.state));
	return rv;
}

/*
 * Checks that stage `stage` of j may start now: the next one, one the
 * target has, after a stage that succeeded; with `refuse_cancelled`, not
 * while a cancel is pending (a stage_finish that carries its stage's start
 * records a stage that already ran, whatever was asked since).  Rejects and
 * returns false otherwise.
 */
static bool stage_may_start(struct sm_ctx *x, const struct rec_job *j, uint32_t stage,
                            bool refuse_cancelled)
{
	if (refuse_cancelled && j->cancel_requested) {
		sm_reject(x, ING_ECONFLICT, "job %" PRIu64 " is being cancelled", j->id);
		return false;
	}
	if (stage != j->nstages || stage >= j->stage_count) {
		sm_reject(x, ING_ECONFLICT,
		          "stage %" PRIu32 " cannot start: job %" PRIu64 " has %" PRIu32
		          " stages and %" PRIu32 " started",
		          stage, j->id, j->stage_count, j->nstages);
		return false;
	}
	if (stage > 0) {
		const struct rec_stage_result *prev = &j->stages[stage - 1];
		if (prev->state != REC_STAGE_DONE || prev->exit_code != 0) {
			sm_reject(x, ING_ECONFLICT,
			          "stage %" PRIu32 " cannot start: stage %" PRIu32
			          " has not succeeded",
			          stage, stage - 1);
			return false;
		}
	}
	return true;
}

/* Appends stage `stage` (checked by stage_may_start) as running since the
 * command's time, with its event.  The job is saved by the caller. */
static int stage_begin(struct sm_ctx *x, struct rec_job *j, uint32_t stage)
{
	struct rec_stage_result *stages =
	    msgpack_zone_malloc(x->z, (j->nstages + 1) * sizeof(*stages));
	if (stages == NULL)
		return ING_ENOMEM;
	if (j->nstages > 0)
		memcpy(stages, j->stages, j->nstages * sizeof(*stages));
	memset(&stages[stage], 0, sizeof(stages[stage]));
	stages[stage].state = REC_STAGE_RUNNING;
	stages[stage].started_at_ms = x->c->time_ms;
	j->stages = stages;
	j->nstages++;
	j->state = REC_JOB_RUNNING;
	j->updated_at_ms = x->c->time_ms;
	return event_add(x, j, REC_EV_STAGE_STARTED, (int32_t)stage, 0, no_message);
}

/*
 * Checks that j may end with `outcome` now: succeeded only when every
 * stage of the target ran and succeeded (`last_ok`: the stage being
 * finished by the same command, when there is one, succeeded and is the
 * last), cancelled only when a cancel was requested.  Rejects and returns
 * false otherwise.
 */
static bool outcome_ok(struct sm_ctx *x, const struct rec_job *j, uint8_t outcome)
{
	if (outcome == REC_JOB_SUCCEEDED) {
		if (j->nstages != j->stage_count) {
			sm_reject(x, ING_ECONFLICT,
			          "job %" PRIu64 " cannot succeed: %" PRIu32 " of %" PRIu32
			          " stages ran",
			          j->id, j->nstages, j->stage_count);
			return false;
		}
		for (uint32_t i = 0; i < j->nstages; i++) {
			if (j->stages[i].state != REC_STAGE_DONE || j->stages[i].exit_code != 0) {
				sm_reject(x, ING_ECONFLICT,
				          "job %" PRIu64 " cannot succeed: stage %" PRIu32
				          " did not succeed",
				          j->id, i);
				return false;
			}
		}
	}
	if (outcome == REC_JOB_CANCELLED && !j->cancel_requested) {
		sm_reject(x, ING_ECONFLICT,
		          "job %" PRIu64 " cannot end cancelled: no cancel was requested", j->id);
		return false;
	}
	return true;
}

int sm_job_stage_start(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	uint32_t stage = c->u.job_stage_start.stage;
	struct rec_job j;
	int rv = load_job(x, c->u.job_stage_start.job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (!report_ok(x, &j, c->u.job_stage_start.attempt) || !stage_may_start(x, &j, stage, true))
		return 0;
	rv = stage_begin(x, &j, stage);
	if (rv == 0)
		rv = sm_job_save(x, &j);
	if (rv == 0)
		sm_result_str(x, rec_job_state_name(j.state));
	return rv;
}

/*
 * The end of a stage, and with version 2 what comes with it in the same
 * command (the stage's start before it, the next stage's start or the
 * job's end after it), so a worker needs one commit per stage, and a job
 * of one stage none but its assignment and this.  Everything is checked on
 * the job as it would be before anything is written.
 */
int sm_job_stage_finish(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	const __typeof__(c->u.job_stage_finish) *f = &c->u.job_stage_finish;
	uint32_t stage = f->stage;
	struct rec_job j;
	struct rec_stage_result *s;
	int rv = load_job(x, f->job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (!report_ok(x, &j, f->attempt))
		return 0;
	if (f->started) {
		if (!stage_may_start(x, &j, stage, false))
			return 0;
	} else if (j.nstages == 0 || stage != j.nstages - 1 ||
	           j.stages[stage].state != REC_STAGE_RUNNING) {
		return sm_reject(x, ING_ECONFLICT,
		                 "stage %" PRIu32 " of job %" PRIu64 " is not running", stage,
		                 j.id);
	}
	if (f->then == CMD_THEN_NEXT && stage + 1 >= j.stage_count)
		return sm_reject(x, ING_ECONFLICT,
		                 "stage %" PRIu32 " is the last of job %" PRIu64 " (%" PRIu32
		                 " stages): no next stage to start",
		                 stage, j.id, j.stage_count);
	if (f->then == CMD_THEN_FINISH) {
		/* The outcome as the job will be once this stage is done. */
		struct rec_job after = j;
		struct rec_stage_result done[ING_MAX_STAGES];
		if (j.nstages > 0)
			memcpy(done, j.stages, j.nstages * sizeof(done[0]));
		done[stage].state = REC_STAGE_DONE;
		done[stage].exit_code = f->exit_code;
		after.stages = done;
		after.nstages = stage + 1;
		if (!outcome_ok(x, &after, f->outcome))
			return 0;
	}

	if (f->started && (rv = stage_begin(x, &j, stage)) != 0)
		return rv;
	s = &j.stages[stage];
	s->state = REC_STAGE_DONE;
	s->exit_code = f->exit_code;
	s->duration_ms = f->duration_ms;
	s->has_log = f->has_log;
	if (s->has_log) {
		rv = store_artifact_put(x->t, f->log.ptr, f->log.len, s->log_sha256);
		if (rv != 0)
			return rv;
	}
	s->noutputs = f->noutputs;
	rv = store_files(x, s->noutputs, f->outputs, 0, &s->outputs);
	if (rv != 0)
		return rv;
	j.updated_at_ms = c->time_ms;
	rv = event_add(x, &j, REC_EV_STAGE_FINISHED, (int32_t)stage, s->exit_code, no_message);
	if (rv != 0)
		return rv;
	if (f->then == CMD_THEN_NEXT && j.cancel_requested) {
		/* The worker would stop the next stage at once: the job ends
		 * here, as a cancel confirmed. */
		rv = release_attempt(x, &j);
		if (rv == 0)
			rv = end_job(x, &j, REC_JOB_CANCELLED,
			             ing_str_c("cancelled before its next stage"));
	} else if (f->then == CMD_THEN_NEXT) {
		rv = stage_begin(x, &j, stage + 1);
		if (rv == 0)
			rv = sm_job_save(x, &j);
	} else if (f->then == CMD_THEN_FINISH) {
		rv = release_attempt(x, &j);
		if (rv == 0)
			rv = end_job(x, &j, f->outcome, f->message);
	} else {
		rv = sm_job_save(x, &j);
	}
	if (rv == 0) {
		x->res->stage_finished = true;
		x->res->stage_duration_ms = f->duration_ms;
	}
	if (rv == 0)
		sm_result_str(x, rec_job_state_name(j.state));
	return rv;
}

int sm_job_finish(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	uint8_t outcome = c->u.job_finish.outcome;
	struct rec_job j;
	int rv = load_job(x, c->u.job_finish.job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (!report_ok(x, &j, c->u.job_finish.attempt) || !outcome_ok(x, &j, outcome))
		return 0;
	rv = release_attempt(x, &j);
	if (rv == 0)
		rv = end_job(x, &j, outcome, c->u.job_finish.message);
	if (rv == 0)
		sm_result_str(x, rec_job_state_name(j.state));
	return rv;
}

int sm_job_cancel(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	struct rec_job j;
	uint8_t k[SM_QUEUE_KEY_MAX];
	int rv = load_job(x, c->u.job_cancel.job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (rec_job_state_final(j.state))
		return sm_reject(x, ING_ECONFLICT, "job %" PRIu64 " has already ended (%s)", j.id,
		                 rec_job_state_name(j.state));
	if (j.state == REC_JOB_QUEUED) {
		rv = store_del(x->t, STORE_QUEUE, queue_key(k, &j));
		if (rv == ING_ENOTFOUND)
			return ING_CORRUPT("queued job missing from the queue");
		if (rv == 0)
			rv = end_job(x, &j, REC_JOB_CANCELLED, c->u.job_cancel.reason);
	} else if (!j.cancel_requested) {
		/* The worker stops the attempt and confirms with finish(cancelled);
		 * if its node is declared down first, losing the attempt ends it. */
		j.cancel_requested = true;
		j.error = c->u.job_cancel.reason; /* shown once the worker confirms */
		j.updated_at_ms = c->time_ms;
		rv = event_add(x, &j, REC_EV_CANCEL_REQUESTED, -1, 0, c->u.job_cancel.reason);
		if (rv == 0)
			rv = sm_job_save(x, &j);
	}
	if (rv == 0)
		sm_result_str(x, rec_job_state_name(j.state));
	return rv;
}

int sm_job_requeue(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	struct rec_job j;
	char why[ING_MESSAGE_MAX];
	int rv = load_job(x, c->u.job_requeue.job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (!report_ok(x, &j, c->u.job_requeue.attempt))
		return 0;
	snprintf(why, sizeof(why), "%.*s", ING_STR_FMT(c->u.job_requeue.reason));
	rv = sm_job_lose_attempt(x, &j, why);
	if (rv == 0)
		sm_result_str(x, rec_job_state_name(j.state));
	return rv;
}

int sm_job_retry(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	struct rec_job j;
	struct rec_target t;
	int rv = load_job(x, c->u.job_retry.job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (j.state != REC_JOB_FAILED && j.state != REC_JOB_CANCELLED)
		return sm_reject(x, ING_ECONFLICT,
		                 "job %" PRIu64
		                 " is %s; only failed or cancelled jobs can be retried",
		                 j.id, rec_job_state_name(j.state));
	rv = sm_target_load(x, j.target, &t);
	if (rv == ING_ENOTFOUND)
		return sm_reject(x, ING_ENOTFOUND,
		                 "target '%.*s' of job %" PRIu64 " no longer exists",
		                 ING_STR_FMT(j.target), j.id);
	if (rv != 0)
		return rv;

	uint8_t fk[16];
	rv = store_del(x->t, STORE_FINISHED, finished_key(fk, &j));
	if (rv == ING_ENOTFOUND)
		return ING_CORRUPT("final job missing from the finished index");
	if (rv == 0)
		rv = discard_stages(x, &j);
	if (rv == 0)
		rv = target_active_add(x, j.target, +1);
	if (rv != 0)
		return rv;
	j.state = REC_JOB_QUEUED;
	j.node_id = 0;
	j.ngpus = 0;
	j.gpus = NULL;
	j.lease_until_ms = 0;
	j.attempt_base = j.attempt;
	j.cancel_requested = false;
	j.stage_count = 0;
	j.finished_at_ms = 0;
	j.error = no_message;
	j.updated_at_ms = c->time_ms;
	rv = enqueue(x, &j);
	if (rv == 0)
		rv = event_add(x, &j, REC_EV_RETRIED, -1, 0, no_message);
	if (rv == 0)
		rv = sm_job_save(x, &j);
	if (rv == 0) {
		sm_result_str(x, rec_job_state_name(j.state));
		x->res->job = j.id;
		x->res->job_deadline_at_ms = j.deadline_at_ms;
	}
	return rv;
}

int sm_job_expire(struct sm_ctx *x)
{
	const struct cmd *c = x->c;
	struct rec_job j;
	uint8_t k[SM_QUEUE_KEY_MAX];
	static const struct ing_str why = {"deadline passed", 15};
	int rv = load_job(x, c->u.job_expire.job, &j);

	if (rv != 0)
		return rv > 0 ? 0 : rv;
	if (rec_job_state_final(j.state))
		return sm_reject(x, ING_ECONFLICT, "job %" PRIu64 " has already ended (%s)", j.id,
		                 rec_job_state_name(j.state));
	if (j.deadline_at_ms == 0)
		return sm_reject(x, ING_ECONFLICT, "job %" PRIu64 " has no deadline", j.id);
	if (j.deadline_at_ms > c->time_ms)
		return sm_reject(x, ING_ECONFLICT,
		                 "job %" PRIu64 " has not passed its deadline (due at %" PRIu64 ")",
		                 j.id, j.deadline_at_ms);

	if (j.state == REC_JOB_QUEUED) {
		rv = store_del(x->t, STORE_QUEUE, queue_key(k, &j));
		if (rv == ING_ENOTFOUND)
			return ING_CORRUPT("queued job missing from the queue");
	} else {
		/* The stage results stay (the history shows what ran); the
		 * node stays on the record, as for any final outcome. */
		rv = release_attempt(x, &j);
		j.lease_until_ms = 0;
	}
	if (rv == 0 && j.cancel_requested)
		rv = end_job(x, &j, REC_JOB_CANCELLED, ing_str_c("cancelled; deadline passed"));
	else if (rv == 0)
		rv = end_job(x, &j, REC_JOB_FAILED, why);
	if (rv == 0)
		sm_result_str(x, rec_job_state_name(j.state));
	return rv;
}

/* ---- the queue key, removal ------------------------------------------- */

struct ing_str sm_queue_key(uint8_t k[SM_QUEUE_KEY_MAX], struct ing_str target, uint32_t priority,
                            struct ing_str tenant, uint64_t job)
{
	size_t n = 0;
	memcpy(k, target.ptr, target.len);
	n += target.len;
	k[n++] = 0;
	k[n++] = (uint8_t)(ING_MAX_PRIORITY - priority);
	memcpy(k + n, tenant.ptr, tenant.len);
	n += tenant.len;
	k[n++] = 0;
	store_be64(k + n, job);
	n += 8;
	return (struct ing_str){(const char *)k, (uint32_t)n};
}

bool sm_queue_parse(struct ing_str key, struct ing_str val, struct sm_queue_entry *out)
{
	const char *p = key.ptr, *end = key.ptr + key.len;
	const char *z1 = key.len > 0 ? memchr(p, 0, key.len) : NULL;
	if (z1 == NULL || z1 == p || z1 - p > ING_NAME_MAX || end - z1 < 1 + 1 + 1 + 1 + 8 ||
	    val.len != SM_QUEUE_VALUE_BYTES)
		return false;
	const char *tenant = z1 + 2;
	const char *z2 = end - 9; /* the 0x00 before the job id */
	if (*z2 != 0 || z2 <= tenant || z2 - tenant > ING_NAME_MAX ||
	    memchr(tenant, 0, (size_t)(z2 - tenant)) != NULL || (uint8_t)z1[1] > ING_MAX_PRIORITY)
		return false;
	out->target = (struct ing_str){p, (uint32_t)(z1 - p)};
	out->priority = ING_MAX_PRIORITY - (uint8_t)z1[1];
	out->tenant = (struct ing_str){tenant, (uint32_t)(z2 - tenant)};
	out->job = store_get_be64(z2 + 1);
	out->attempt = store_get_be32(val.ptr);
	out->lost = store_get_be32(val.ptr + 4);
	out->queued_at_ms = store_get_be64(val.ptr + 8);
	return true;
}

int sm_job_remove(struct sm_ctx *x, const struct rec_job *j)
{
	struct rec_job copy = *j;
	uint8_t k[16];
	bool inline_sources = false;
	int rv = 0;

	for (uint32_t seq = 0; rv == 0 && seq < j->nevents; seq++) {
		store_be64(k, j->id);
		store_be32(k + 8, seq);
		rv = store_del(x->t, STORE_EVENTS, (struct ing_str){(const char *)k, 12});
		if (rv == ING_ENOTFOUND)
			return ING_CORRUPT("event of a job missing");
	}
	for (uint32_t i = 0; rv == 0 && i < j->nsources; i++) {
		if (j->sources[i].stored_inline) {
			inline_sources = true;
			continue;
		}
		rv = store_artifact_unref(x->t, j->sources[i].sha256);
		if (rv == ING_ENOTFOUND)
			return ING_CORRUPT("source artifact of a job missing");
	}
	if (rv == 0 && inline_sources) {
		store_be64(k, j->id);
		rv = store_del(x->t, STORE_SOURCES, (struct ing_str){(const char *)k, 8});
		if (rv == ING_ENOTFOUND)
			return ING_CORRUPT("inline sources of a job missing");
	}
	if (rv == 0)
		rv = discard_stages(x, &copy);
	if (rv == 0) {
		rv = store_del(x->t, STORE_FINISHED, finished_key(k, j));
		if (rv == ING_ENOTFOUND)
			return ING_CORRUPT("final job missing from the finished index");
	}
	if (rv == 0) {
		store_be64(k, j->id);
		rv = store_del(x->t, STORE_JOBS, (struct ing_str){(const char *)k, 8});
	}
	if (rv == 0 && j->state < REC_JOB_STATE_COUNT) {
		x->res->removed[j->state]++;
		x->counts[j->state]--;
	}
	return rv;
}
