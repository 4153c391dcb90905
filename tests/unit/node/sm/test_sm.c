/*
 * test_sm.c - the state machine: every legal job transition, every illegal
 * one (rejected with the right code, state byte-for-byte unchanged),
 * attempt fencing, dedupe, skip-by-index, and the derived indexes (queue,
 * assignments, slots, active jobs, artifacts); members and the cluster's
 * own events (job id 0 in the events table, numbered by meta
 * "cluster_events"), the cluster id set once.  GPUs: an assignment holds
 * exactly the GPUs the target needs (the most any stage sees), each offered
 * by the node and free, and every way an attempt ends frees them; a
 * re-registration keeps the holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/artifact.h"
#include "tests/lib/smtest.h"

/* Applies c, expects rejection with `code`, and checks that no table but
 * meta changed. */
static void expect_reject(struct smt *t, const struct cmd *c, int code, const char *needle)
{
	char *before = smt_dump_state(t);
	int rv = smt_apply(t, c);
	char *after = smt_dump_state(t);
	if (rv != code)
		fail_msg("expected %s, got %s: %s", ing_err_name(code), ing_err_name(rv),
		         t->res.err.msg);
	if (needle != NULL && strstr(t->res.err.msg, needle) == NULL)
		fail_msg("message '%s' does not mention '%s'", t->res.err.msg, needle);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static uint8_t job_state(struct smt *t, uint64_t id)
{
	struct rec_job j;
	assert_int_equal(smt_job(t, id, &j), 0);
	return j.state;
}

static struct cmd assign(struct smt *t, uint64_t job, uint64_t node, uint32_t attempt)
{
	struct cmd c = smt_cmd(t, CMD_JOB_ASSIGN);
	c.u.job_assign.job = job;
	c.u.job_assign.node = node;
	c.u.job_assign.attempt = attempt;
	c.u.job_assign.lease_until_ms = t->time_ms + 30000;
	return c;
}

static struct cmd stage_start(struct smt *t, uint64_t job, uint32_t attempt, uint32_t stage)
{
	struct cmd c = smt_cmd(t, CMD_JOB_STAGE_START);
	c.u.job_stage_start.job = job;
	c.u.job_stage_start.attempt = attempt;
	c.u.job_stage_start.stage = stage;
	return c;
}

static struct cmd stage_finish(struct smt *t, uint64_t job, uint32_t attempt, uint32_t stage,
                               int64_t exit_code)
{
	static struct cmd_file out = {{"out.o", 5}, {"object code", 11}};
	struct cmd c = smt_cmd(t, CMD_JOB_STAGE_FINISH);
	c.u.job_stage_finish.job = job;
	c.u.job_stage_finish.attempt = attempt;
	c.u.job_stage_finish.stage = stage;
	c.u.job_stage_finish.exit_code = exit_code;
	c.u.job_stage_finish.duration_ms = 12;
	c.u.job_stage_finish.has_log = true;
	c.u.job_stage_finish.log = ing_str_c("compiler says hello\n");
	c.u.job_stage_finish.noutputs = 1;
	c.u.job_stage_finish.outputs = &out;
	return c;
}

static struct cmd finish(struct smt *t, uint64_t job, uint32_t attempt, uint8_t outcome)
{
	struct cmd c = smt_cmd(t, CMD_JOB_FINISH);
	c.u.job_finish.job = job;
	c.u.job_finish.attempt = attempt;
	c.u.job_finish.outcome = outcome;
	c.u.job_finish.message = ing_str_c(outcome == REC_JOB_FAILED ? "stage failed" : "");
	return c;
}

static struct cmd job_cmd(struct smt *t, uint32_t type, uint64_t job)
{
	struct cmd c = smt_cmd(t, type);
	switch (type) {
	case CMD_JOB_CANCEL:
		c.u.job_cancel.job = job;
		c.u.job_cancel.reason = ing_str_c("operator asked");
		break;
	case CMD_JOB_RETRY: c.u.job_retry.job = job; break;
	case CMD_JOB_EXPIRE: c.u.job_expire.job = job; break;
	default: fail();
	}
	return c;
}

static struct cmd requeue(struct smt *t, uint64_t job, uint32_t attempt)
{
	struct cmd c = smt_cmd(t, CMD_JOB_REQUEUE);
	c.u.job_requeue.job = job;
	c.u.job_requeue.attempt = attempt;
	c.u.job_requeue.reason = ing_str_c("lease expired");
	return c;
}

static struct cmd node_down(struct smt *t, uint64_t node)
{
	struct cmd c = smt_cmd(t, CMD_NODE_DOWN);
	c.u.node_down.node = node;
	c.u.node_down.reason = ing_str_c("silent for 10s");
	return c;
}

static void apply_ok(struct smt *t, struct cmd c)
{
	int rv = smt_apply(t, &c);
	if (rv != 0)
		fail_msg("%s rejected: %s: %s", cmd_type_name(c.type), ing_err_name(rv),
		         t->res.err.msg);
}

/* A cluster with target "cc" (2 stages), nodes 1 and 2 (2 slots each). */
static int setup(void **state)
{
	struct smt *t = calloc(1, sizeof(*t));
	smt_open(t);
	smt_target(t, "cc", 2);
	smt_node(t, 1, 2);
	smt_node(t, 2, 2);
	*state = t;
	return 0;
}

/* Nodes 1 and 2 only: no target_put, so the cluster events the tests
 * count start at sequence 0. */
static int setup_bare(void **state)
{
	struct smt *t = calloc(1, sizeof(*t));
	smt_open(t);
	smt_node(t, 1, 2);
	smt_node(t, 2, 2);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	smt_close(*state);
	free(*state);
	return 0;
}

/* Runs a job to success on node 1, checking each state on the way. */
static void run_to_success(struct smt *t, uint64_t id, uint32_t attempt)
{
	apply_ok(t, assign(t, id, 1, attempt));
	assert_int_equal(job_state(t, id), REC_JOB_ASSIGNED);
	for (uint32_t s = 0; s < 2; s++) {
		apply_ok(t, stage_start(t, id, attempt, s));
		assert_int_equal(job_state(t, id), REC_JOB_RUNNING);
		apply_ok(t, stage_finish(t, id, attempt, s, 0));
	}
	apply_ok(t, finish(t, id, attempt, REC_JOB_SUCCEEDED));
	assert_int_equal(job_state(t, id), REC_JOB_SUCCEEDED);
}

/* ---- GPUs ---------------------------------------------------------------- */

static struct cmd assign_gpus(struct smt *t, uint64_t job, uint64_t node, uint32_t attempt,
                              uint32_t n, const uint32_t *gpus)
{
	struct cmd c = assign(t, job, node, attempt);
	uint32_t *g = msgpack_zone_malloc(t->zone, (n + 1) * sizeof(*g));
	memcpy(g, gpus, n * sizeof(*g));
	c.u.job_assign.ngpus = n;
	c.u.job_assign.gpus = g;
	return c;
}

/* Node 3 offers GPUs 0, 1, 2 (4 slots); target "g1" needs 1 GPU (every
 * stage), target "g2" needs 2 (its first stage; the target itself 1). */
static int setup_gpus(void **state)
{
	static const uint32_t idx[] = {0, 1, 2};
	int rv = setup(state);
	struct smt *t = *state;
	smt_gpu_node(t, 3, 4, 3, idx);
	smt_gpu_target(t, "g1", 2, 1, 0);
	smt_gpu_target(t, "g2", 2, 1, 2);
	return rv;
}

/* The GPUs node 3 holds, as "index:job,..." ("" when none). */
static const char *holds(struct smt *t)
{
	static char buf[256];
	struct rec_node n;
	size_t len = 0;
	assert_int_equal(smt_node_rec(t, 3, &n), 0);
	buf[0] = '\0';
	for (uint32_t i = 0; i < n.nheld; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%u:%llu", i ? "," : "",
		                        n.held[i].index, (unsigned long long)n.held[i].job);
	return buf;
}

static void test_gpu_assign_holds(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	struct rec_target tg;
	static const uint32_t one[] = {1}, two[] = {2, 0};
	uint64_t a = smt_submit(t, "g1", 10, 1), b = smt_submit(t, "g2", 10, 1);

	assert_int_equal(smt_target_rec(t, "g2", &tg), 0);
	assert_int_equal(rec_target_gpus(&tg), 2);
	assert_int_equal(rec_stage_gpus(&tg, 0), 2);
	assert_int_equal(rec_stage_gpus(&tg, 1), 1);

	apply_ok(t, assign_gpus(t, a, 3, 1, 1, one));
	apply_ok(t, assign_gpus(t, b, 3, 1, 2, two));
	assert_string_equal(holds(t), "1:1,2:2,0:2");
	assert_int_equal(smt_job(t, b, &j), 0);
	assert_int_equal(j.ngpus, 2);
	assert_int_equal(j.gpus[0], 2);
	assert_int_equal(j.gpus[1], 0);

	/* Success frees the GPUs; the job keeps them as the ones it ran on. */
	for (uint32_t s = 0; s < 2; s++) {
		apply_ok(t, stage_start(t, a, 1, s));
		apply_ok(t, stage_finish(t, a, 1, s, 0));
	}
	apply_ok(t, finish(t, a, 1, REC_JOB_SUCCEEDED));
	assert_string_equal(holds(t), "2:2,0:2");
	assert_int_equal(smt_job(t, a, &j), 0);
	assert_int_equal(j.ngpus, 1);
	assert_int_equal(j.gpus[0], 1);
	/* Failure too. */
	apply_ok(t, stage_start(t, b, 1, 0));
	apply_ok(t, stage_finish(t, b, 1, 0, 2));
	apply_ok(t, finish(t, b, 1, REC_JOB_FAILED));
	assert_string_equal(holds(t), "");

	/* A job of a target without GPUs takes none on a GPU node. */
	uint64_t c = smt_submit(t, "cc", 10, 1);
	apply_ok(t, assign(t, c, 3, 1));
	assert_string_equal(holds(t), "");
}

static void test_gpu_assign_rejections(void **state)
{
	struct smt *t = *state;
	static const uint32_t g0[] = {0}, g1[] = {1}, g7[] = {7}, g01[] = {0, 1};
	uint64_t a = smt_submit(t, "g1", 10, 1), b = smt_submit(t, "g1", 10, 1);
	uint64_t c = smt_submit(t, "g2", 10, 1), d = smt_submit(t, "cc", 10, 1);

	/* As many as the target needs: none given (a job_assign v1), two. */
	struct cmd x = assign(t, a, 3, 1);
	expect_reject(t, &x, ING_ECONFLICT,
	              "job 1 needs 1 GPU (target 'g1'), the assignment gives 0");
	x = assign_gpus(t, a, 3, 1, 2, g01);
	expect_reject(t, &x, ING_ECONFLICT, "gives 2");
	x = assign_gpus(t, c, 3, 1, 1, g0);
	expect_reject(t, &x, ING_ECONFLICT, "job 3 needs 2 GPUs (target 'g2')");
	x = assign_gpus(t, d, 3, 1, 1, g0);
	expect_reject(t, &x, ING_ECONFLICT,
	              "job 4 needs 0 GPUs (target 'cc'), the assignment gives 1");
	/* Offered by the node: GPU 7 is not; node 1 has none. */
	x = assign_gpus(t, a, 3, 1, 1, g7);
	expect_reject(t, &x, ING_ECONFLICT, "node 3 has no GPU 7");
	x = assign_gpus(t, a, 1, 1, 1, g0);
	expect_reject(t, &x, ING_ECONFLICT, "node 1 has no GPU 0");
	/* Free: GPU 1 held by job a. */
	apply_ok(t, assign_gpus(t, a, 3, 1, 1, g1));
	x = assign_gpus(t, b, 3, 1, 1, g1);
	expect_reject(t, &x, ING_ECONFLICT, "GPU 1 of node 3 is held by job 1");
	x = assign_gpus(t, c, 3, 1, 2, g01);
	expect_reject(t, &x, ING_ECONFLICT, "GPU 1 of node 3 is held by job 1");
	assert_string_equal(holds(t), "1:1");
}

/* Every way an attempt ends releases its GPUs: cancel, expire, requeue (the
 * job then holds none), node down; a retry starts with none. */
static void test_gpu_release_every_end(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	struct rec_node n;
	static const uint32_t g0[] = {0}, g1[] = {1}, g2[] = {2};

	/* cancel of a running attempt, confirmed by the worker */
	uint64_t a = smt_submit(t, "g1", 10, 2);
	apply_ok(t, assign_gpus(t, a, 3, 1, 1, g0));
	apply_ok(t, stage_start(t, a, 1, 0));
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, a));
	assert_string_equal(holds(t), "0:1");
	apply_ok(t, finish(t, a, 1, REC_JOB_CANCELLED));
	assert_string_equal(holds(t), "");

	/* requeue: back to the queue without GPUs, then retried elsewhere */
	uint64_t b = smt_submit(t, "g1", 10, 3);
	apply_ok(t, assign_gpus(t, b, 3, 1, 1, g1));
	apply_ok(t, requeue(t, b, 1));
	assert_string_equal(holds(t), "");
	assert_int_equal(smt_job(t, b, &j), 0);
	assert_int_equal(j.state, REC_JOB_QUEUED);
	assert_int_equal(j.ngpus, 0);
	apply_ok(t, assign_gpus(t, b, 3, 2, 1, g1));
	assert_string_equal(holds(t), "1:2");

	/* expire of a live attempt */
	struct cmd sub = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file src = {{"k.c", 3}, {"x", 1}};
	sub.u.job_submit.tenant = ing_str_c("default");
	sub.u.job_submit.target = ing_str_c("g1");
	sub.u.job_submit.max_attempts = 1;
	sub.u.job_submit.deadline_at_ms = sub.time_ms + 5;
	sub.u.job_submit.nsources = 1;
	sub.u.job_submit.sources = &src;
	assert_int_equal(smt_apply(t, &sub), 0);
	uint64_t c = smt_result_uint(t);
	apply_ok(t, assign_gpus(t, c, 3, 1, 1, g2));
	assert_string_equal(holds(t), "1:2,2:3");
	t->time_ms += 10;
	apply_ok(t, job_cmd(t, CMD_JOB_EXPIRE, c));
	assert_string_equal(holds(t), "1:2");
	assert_int_equal(job_state(t, c), REC_JOB_FAILED);

	/* node down: the attempt is lost and its GPUs with it */
	apply_ok(t, node_down(t, 3));
	assert_string_equal(holds(t), "");
	assert_int_equal(smt_node_rec(t, 3, &n), 0);
	assert_int_equal(n.used_slots, 0);
	assert_int_equal(smt_job(t, b, &j), 0);
	assert_int_equal(j.state, REC_JOB_QUEUED);
	assert_int_equal(j.ngpus, 0);

	/* retry of the failed job: queued with no GPUs */
	apply_ok(t, job_cmd(t, CMD_JOB_RETRY, c));
	assert_int_equal(smt_job(t, c, &j), 0);
	assert_int_equal(j.state, REC_JOB_QUEUED);
	assert_int_equal(j.ngpus, 0);
}

/* A node that re-registers with other GPUs keeps its holds until they end;
 * a GPU it no longer offers is not given out again. */
static void test_gpu_reregister_keeps_holds(void **state)
{
	struct smt *t = *state;
	struct rec_node n;
	static const uint32_t g1[] = {1}, only0[] = {0};
	uint64_t a = smt_submit(t, "g1", 10, 1), b = smt_submit(t, "g1", 10, 1);

	apply_ok(t, assign_gpus(t, a, 3, 1, 1, g1));
	smt_gpu_node(t, 3, 4, 1, only0);
	assert_int_equal(smt_node_rec(t, 3, &n), 0);
	assert_int_equal(n.ngpus, 1);
	assert_int_equal(n.gpus[0].index, 0);
	assert_string_equal(holds(t), "1:1");
	apply_ok(t, finish(t, a, 1, REC_JOB_FAILED));
	assert_string_equal(holds(t), "");
	struct cmd x = assign_gpus(t, b, 3, 1, 1, g1);
	expect_reject(t, &x, ING_ECONFLICT, "node 3 has no GPU 1");

	/* Holds never exceed ING_MAX_GPUS: 16 held, then 16 others offered. */
	uint32_t lo[ING_MAX_GPUS], hi[ING_MAX_GPUS];
	uint64_t jobs[ING_MAX_GPUS];
	for (uint32_t i = 0; i < ING_MAX_GPUS; i++) {
		lo[i] = i;
		hi[i] = ING_MAX_GPUS + i;
	}
	smt_gpu_node(t, 3, ING_MAX_GPUS + 2, ING_MAX_GPUS, lo);
	for (uint32_t i = 0; i < ING_MAX_GPUS; i++) {
		jobs[i] = smt_submit(t, "g1", 10, 1);
		apply_ok(t, assign_gpus(t, jobs[i], 3, 1, 1, &lo[i]));
	}
	smt_gpu_node(t, 3, ING_MAX_GPUS + 2, ING_MAX_GPUS, hi);
	uint64_t late = smt_submit(t, "g1", 10, 1);
	x = assign_gpus(t, late, 3, 1, 1, &hi[0]);
	expect_reject(t, &x, ING_ECONFLICT, "node 3 already has 16 GPUs held (at most 16)");
	apply_ok(t, finish(t, jobs[0], 1, REC_JOB_FAILED));
	apply_ok(t, assign_gpus(t, late, 3, 1, 1, &hi[0]));
}

static void test_submit_queues(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	struct rec_target tg;
	uint64_t id = smt_submit(t, "cc", 50, 3);

	assert_int_equal(id, 1);
	assert_int_equal(smt_submit(t, "cc", 50, 3), 2);
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_QUEUED);
	assert_int_equal(j.priority, 50);
	assert_int_equal(j.attempt, 0);
	assert_int_equal(j.nsources, 1);
	assert_int_equal(j.sources[0].size, 29);
	assert_int_equal(j.nevents, 1);
	assert_true(ing_str_eq_c(j.tenant, "default"));
	assert_int_equal(smt_count(t, STORE_QUEUE), 2);
	assert_int_equal(smt_target_rec(t, "cc", &tg), 0);
	assert_int_equal(tg.active_jobs, 2);
	/* A small source is kept with its job, not as an artifact. */
	assert_true(j.sources[0].stored_inline);
	assert_int_equal(smt_count(t, STORE_CHUNKS), 0);
	assert_int_equal(smt_count(t, STORE_SOURCES), 2);
}

/* Sources over ING_INLINE_SOURCE_MAX bytes are artifacts (stored once,
 * referenced by every job); the others are kept with their job. */
static void test_large_sources_are_artifacts(void **state)
{
	struct smt *t = *state;
	static char big[ING_INLINE_SOURCE_MAX + 1];
	struct cmd_file src[2] = {{{"big.c", 5}, {big, sizeof(big)}}, {{"a.h", 3}, {"x", 1}}};
	struct rec_job j;
	uint64_t size, refs;
	memset(big, 'b', sizeof(big));
	for (int i = 0; i < 2; i++) {
		struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
		c.u.job_submit.tenant = ing_str_c("default");
		c.u.job_submit.target = ing_str_c("cc");
		c.u.job_submit.priority = 1;
		c.u.job_submit.max_attempts = 1;
		c.u.job_submit.nsources = 2;
		c.u.job_submit.sources = src;
		assert_int_equal(smt_apply(t, &c), 0);
		assert_int_equal(t->res.err.code, 0);
	}
	assert_int_equal(smt_job(t, 2, &j), 0);
	assert_false(j.sources[0].stored_inline);
	assert_true(j.sources[1].stored_inline);
	assert_int_equal(j.sources[0].size, sizeof(big));
	struct store_txn *x;
	assert_int_equal(store_read_begin(t->store, &x), 0);
	assert_int_equal(store_artifact_stat(x, j.sources[0].sha256, &size, &refs), 0);
	assert_int_equal(refs, 2);
	store_abort(x);
	assert_int_equal(smt_count(t, STORE_SOURCES), 2);
}

static void test_submit_rejections(void **state)
{
	struct smt *t = *state;
	struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file src = {{"a.c", 3}, {"x", 1}};
	c.u.job_submit.tenant = ing_str_c("default");
	c.u.job_submit.target = ing_str_c("nope");
	c.u.job_submit.priority = 1;
	c.u.job_submit.max_attempts = 1;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = &src;
	expect_reject(t, &c, ING_ENOTFOUND, "nope");

	c.u.job_submit.target = ing_str_c("cc");
	c.u.job_submit.deadline_at_ms = c.time_ms - 1;
	expect_reject(t, &c, ING_EINVAL, "deadline");
}

static void test_success_path(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	struct rec_node n;
	struct rec_target tg;
	uint64_t id = smt_submit(t, "cc", 10, 1);

	apply_ok(t, assign(t, id, 1, 1));
	assert_string_equal(smt_result_str(t), "assigned");
	assert_int_equal(smt_count(t, STORE_QUEUE), 0);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 1);
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 1);

	for (uint32_t s = 0; s < 2; s++) {
		apply_ok(t, stage_start(t, id, 1, s));
		apply_ok(t, stage_finish(t, id, 1, s, 0));
	}
	apply_ok(t, finish(t, id, 1, REC_JOB_SUCCEEDED));
	assert_string_equal(smt_result_str(t), "succeeded");

	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_SUCCEEDED);
	assert_int_equal(j.nstages, 2);
	assert_int_equal(j.stages[1].state, REC_STAGE_DONE);
	assert_int_equal(j.stages[1].duration_ms, 12);
	assert_true(j.stages[1].has_log);
	assert_int_equal(j.stages[1].noutputs, 1);
	assert_int_not_equal(j.finished_at_ms, 0);
	/* submitted, assigned, 2 x (started, finished), succeeded; and the
	 * cluster's target_put of the setup */
	assert_int_equal(j.nevents, 7);
	assert_int_equal(smt_count(t, STORE_EVENTS), 8);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 0);
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 0);
	assert_int_equal(smt_target_rec(t, "cc", &tg), 0);
	assert_int_equal(tg.active_jobs, 0);
}

static void test_illegal_transitions(void **state)
{
	struct smt *t = *state;
	uint64_t id = smt_submit(t, "cc", 10, 2);
	struct cmd c;

	/* queued: no reports, no finish, no retry */
	c = stage_start(t, id, 1, 0);
	expect_reject(t, &c, ING_ESTALE, NULL);
	c = finish(t, id, 1, REC_JOB_SUCCEEDED);
	expect_reject(t, &c, ING_ESTALE, NULL);
	c = job_cmd(t, CMD_JOB_RETRY, id);
	expect_reject(t, &c, ING_ECONFLICT, "queued");
	c = assign(t, id, 1, 2);
	expect_reject(t, &c, ING_ESTALE, "expected 1");
	c = assign(t, 99, 1, 1);
	expect_reject(t, &c, ING_ENOTFOUND, "job 99");
	c = assign(t, id, 7, 1);
	expect_reject(t, &c, ING_ENOTFOUND, "node 7");

	/* assigned */
	apply_ok(t, assign(t, id, 1, 1));
	c = assign(t, id, 2, 2);
	expect_reject(t, &c, ING_ECONFLICT, "not queued");
	c = stage_start(t, id, 1, 1);
	expect_reject(t, &c, ING_ECONFLICT, "cannot start");
	c = stage_finish(t, id, 1, 0, 0);
	expect_reject(t, &c, ING_ECONFLICT, "not running");
	c = finish(t, id, 1, REC_JOB_SUCCEEDED);
	expect_reject(t, &c, ING_ECONFLICT, "cannot succeed");
	c = finish(t, id, 1, REC_JOB_CANCELLED);
	expect_reject(t, &c, ING_ECONFLICT, "no cancel");
	c = stage_start(t, id, 2, 0);
	expect_reject(t, &c, ING_ESTALE, "never assigned");

	/* running, first stage failed: the next stage may not start, the job
	 * may not succeed, it may fail */
	apply_ok(t, stage_start(t, id, 1, 0));
	apply_ok(t, stage_finish(t, id, 1, 0, 2));
	c = stage_start(t, id, 1, 1);
	expect_reject(t, &c, ING_ECONFLICT, "has not succeeded");
	c = stage_finish(t, id, 1, 0, 0);
	expect_reject(t, &c, ING_ECONFLICT, "not running");
	apply_ok(t, finish(t, id, 1, REC_JOB_FAILED));
	assert_int_equal(job_state(t, id), REC_JOB_FAILED);

	/* failed: final */
	c = finish(t, id, 1, REC_JOB_FAILED);
	expect_reject(t, &c, ING_ECONFLICT, "failed");
	c = job_cmd(t, CMD_JOB_CANCEL, id);
	expect_reject(t, &c, ING_ECONFLICT, "already ended");
	c = requeue(t, id, 1);
	expect_reject(t, &c, ING_ECONFLICT, "failed");
	c = assign(t, id, 1, 2);
	expect_reject(t, &c, ING_ECONFLICT, "not queued");
}

static void test_node_checks_on_assign(void **state)
{
	struct smt *t = *state;
	uint64_t a = smt_submit(t, "cc", 1, 1);
	uint64_t b = smt_submit(t, "cc", 1, 1);
	uint64_t d = smt_submit(t, "cc", 1, 1);
	struct cmd c;

	apply_ok(t, assign(t, a, 1, 1));
	apply_ok(t, assign(t, b, 1, 1));
	c = assign(t, d, 1, 1);
	expect_reject(t, &c, ING_ECONFLICT, "no free slot");

	c = smt_cmd(t, CMD_NODE_DRAIN);
	c.u.node_drain.node = 2;
	c.u.node_drain.draining = true;
	apply_ok(t, c);
	c = assign(t, d, 2, 1);
	expect_reject(t, &c, ING_ECONFLICT, "draining");
	c = smt_cmd(t, CMD_NODE_DRAIN);
	c.u.node_drain.node = 2;
	c.u.node_drain.draining = false;
	apply_ok(t, c);

	apply_ok(t, node_down(t, 2));
	c = assign(t, d, 2, 1);
	expect_reject(t, &c, ING_ECONFLICT, "down");
	c = smt_cmd(t, CMD_NODE_UP);
	c.u.node_up.node = 2;
	apply_ok(t, c);
	apply_ok(t, assign(t, d, 2, 1));
}

/* An assignment with `ahead` takes a node past its slots, to at most
 * slots + ahead attempts; one without takes only a free slot; a node
 * with no slot takes none either way.  The attempt waiting there is
 * live like any other: its end frees a place. */
static void test_assign_ahead(void **state)
{
	struct smt *t = *state;
	uint64_t id[5];
	struct rec_node n;
	struct cmd c;

	for (int i = 0; i < 5; i++)
		id[i] = smt_submit(t, "cc", 1, 1);
	apply_ok(t, assign(t, id[0], 1, 1));
	apply_ok(t, assign(t, id[1], 1, 1)); /* node 1's 2 slots are in use */
	c = assign(t, id[2], 1, 1);
	expect_reject(t, &c, ING_ECONFLICT, "no free slot");
	c.u.job_assign.ahead = 1;
	apply_ok(t, c);
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 3);
	c = assign(t, id[3], 1, 1);
	c.u.job_assign.ahead = 1;
	expect_reject(t, &c, ING_ECONFLICT, "holds 3 attempts, 2 slots and 1 ahead");
	c.u.job_assign.ahead = 2;
	apply_ok(t, c);
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 4);

	/* the waiting attempt ends like any other and frees its place */
	apply_ok(t, finish(t, id[2], 1, REC_JOB_FAILED));
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 3);

	/* a node that registered no slot takes nothing ahead */
	smt_node(t, 9, 0);
	c = assign(t, id[4], 9, 1);
	c.u.job_assign.ahead = 4;
	expect_reject(t, &c, ING_ECONFLICT, "0 slots");
	assert_int_equal(job_state(t, id[4]), REC_JOB_QUEUED);
}

/* A report from attempt 1 after attempt 2 was assigned is rejected, and
 * the job ends exactly once with attempt 2's result. */
static void test_attempt_fencing(void **state)
{
	struct smt *t = *state;
	uint64_t id = smt_submit(t, "cc", 10, 3);
	struct rec_job j;
	struct cmd c;

	apply_ok(t, assign(t, id, 1, 1));
	apply_ok(t, stage_start(t, id, 1, 0));
	apply_ok(t, node_down(t, 1));
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_QUEUED);
	assert_int_equal(j.node_id, 0);
	assert_int_equal(j.nstages, 0);
	/* the requeued event names the node the attempt was lost on */
	struct store_txn *txn;
	struct ing_str val;
	struct rec_event ev;
	uint8_t ek[12];
	store_be64(ek, id);
	store_be32(ek + 8, j.nevents - 1);
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_get(txn, STORE_EVENTS, (struct ing_str){(const char *)ek, 12}, &val),
	                 0);
	assert_int_equal(rec_event_decode(val, t->zone, &ev, NULL), 0);
	store_abort(txn);
	assert_int_equal(ev.kind, REC_EV_REQUEUED);
	assert_int_equal(ev.node_id, 1);

	/* node 1 thought dead reports for attempt 1 while queued */
	c = stage_finish(t, id, 1, 0, 0);
	expect_reject(t, &c, ING_ESTALE, "no longer live");

	apply_ok(t, assign(t, id, 2, 2));
	c = stage_start(t, id, 1, 0);
	expect_reject(t, &c, ING_ESTALE, "attempt 1");
	c = finish(t, id, 1, REC_JOB_FAILED);
	expect_reject(t, &c, ING_ESTALE, "attempt 1");
	c = requeue(t, id, 1);
	expect_reject(t, &c, ING_ESTALE, NULL);

	apply_ok(t, stage_start(t, id, 2, 0));
	apply_ok(t, stage_finish(t, id, 2, 0, 0));
	apply_ok(t, stage_start(t, id, 2, 1));
	apply_ok(t, stage_finish(t, id, 2, 1, 0));
	apply_ok(t, finish(t, id, 2, REC_JOB_SUCCEEDED));
	c = finish(t, id, 2, REC_JOB_SUCCEEDED);
	expect_reject(t, &c, ING_ECONFLICT, "succeeded");
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.attempt, 2);
	assert_int_equal(j.node_id, 2);
}

static void test_requeue_until_exhausted(void **state)
{
	struct smt *t = *state;
	uint64_t id = smt_submit(t, "cc", 10, 2);
	struct rec_job j;
	struct rec_node n;

	apply_ok(t, assign(t, id, 1, 1));
	apply_ok(t, requeue(t, id, 1));
	assert_string_equal(smt_result_str(t), "queued");
	apply_ok(t, assign(t, id, 2, 2));
	apply_ok(t, requeue(t, id, 2));
	assert_string_equal(smt_result_str(t), "failed");
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_non_null(strstr(j.error.ptr, "no attempts remain"));
	assert_int_equal(smt_count(t, STORE_QUEUE), 0);
	assert_int_equal(smt_node_rec(t, 2, &n), 0);
	assert_int_equal(n.used_slots, 0);

	/* operator retry gives a fresh budget; attempt numbers keep growing */
	apply_ok(t, job_cmd(t, CMD_JOB_RETRY, id));
	assert_int_equal(job_state(t, id), REC_JOB_QUEUED);
	struct cmd c = assign(t, id, 1, 1);
	expect_reject(t, &c, ING_ESTALE, "expected 3");
	run_to_success(t, id, 3);
}

static void test_cancel(void **state)
{
	struct smt *t = *state;
	uint64_t q = smt_submit(t, "cc", 10, 1);
	uint64_t r = smt_submit(t, "cc", 10, 1);
	uint64_t d = smt_submit(t, "cc", 10, 1);
	struct rec_target tg;
	struct cmd c;

	/* queued: ends at once */
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, q));
	assert_string_equal(smt_result_str(t), "cancelled");
	assert_int_equal(smt_count(t, STORE_QUEUE), 2);

	/* running: requested, the worker confirms */
	apply_ok(t, assign(t, r, 1, 1));
	apply_ok(t, stage_start(t, r, 1, 0));
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, r));
	assert_string_equal(smt_result_str(t), "running");
	c = stage_start(t, r, 1, 1);
	expect_reject(t, &c, ING_ECONFLICT, "being cancelled");
	apply_ok(t, finish(t, r, 1, REC_JOB_CANCELLED));
	assert_int_equal(job_state(t, r), REC_JOB_CANCELLED);

	/* assigned, then its node is declared down: cancelled, not requeued */
	apply_ok(t, assign(t, d, 2, 1));
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, d));
	apply_ok(t, node_down(t, 2));
	assert_int_equal(job_state(t, d), REC_JOB_CANCELLED);

	assert_int_equal(smt_target_rec(t, "cc", &tg), 0);
	assert_int_equal(tg.active_jobs, 0);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 0);
	assert_int_equal(smt_count(t, STORE_QUEUE), 0);

	/* a cancelled job can be retried */
	apply_ok(t, job_cmd(t, CMD_JOB_RETRY, q));
	assert_int_equal(job_state(t, q), REC_JOB_QUEUED);
}

/* Submits a job to "cc" with a deadline `in_ms` after the submit time. */
static uint64_t submit_due(struct smt *t, uint64_t in_ms)
{
	struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file src = {{"a.c", 3}, {"int x;", 6}};
	c.u.job_submit.tenant = ing_str_c("default");
	c.u.job_submit.target = ing_str_c("cc");
	c.u.job_submit.priority = 10;
	c.u.job_submit.max_attempts = 2;
	c.u.job_submit.deadline_at_ms = c.time_ms + in_ms;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = &src;
	apply_ok(t, c);
	assert_int_equal(t->res.job, smt_result_uint(t));
	assert_int_equal(t->res.job_deadline_at_ms, c.u.job_submit.deadline_at_ms);
	return smt_result_uint(t);
}

/* An expire command at the time the job's deadline is reached. */
static struct cmd expire_at_deadline(struct smt *t, uint64_t job)
{
	struct rec_job j;
	assert_int_equal(smt_job(t, job, &j), 0);
	if (t->time_ms < j.deadline_at_ms)
		t->time_ms = j.deadline_at_ms;
	return job_cmd(t, CMD_JOB_EXPIRE, job);
}

static void expect_expired(struct smt *t, uint64_t id, uint32_t nevents)
{
	struct rec_job j;
	assert_string_equal(smt_result_str(t), "failed");
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_FAILED);
	assert_true(ing_str_eq_c(j.error, "deadline passed"));
	assert_int_equal(j.finished_at_ms, t->time_ms - 1);
	assert_int_equal(j.lease_until_ms, 0);
	assert_int_equal(j.nevents, nevents);
}

static void test_expire(void **state)
{
	struct smt *t = *state;
	uint64_t q = submit_due(t, 1000);
	uint64_t a = submit_due(t, 1000);
	uint64_t r = submit_due(t, 5000);
	uint64_t keep = smt_submit(t, "cc", 10, 1); /* no deadline: untouched */
	struct rec_job j;
	struct rec_node n;
	struct rec_target tg;

	apply_ok(t, assign(t, a, 1, 1));
	apply_ok(t, assign(t, r, 2, 1));
	apply_ok(t, stage_start(t, r, 1, 0));
	apply_ok(t, stage_finish(t, r, 1, 0, 0));
	apply_ok(t, stage_start(t, r, 1, 1));
	assert_int_equal(smt_target_rec(t, "cc", &tg), 0);
	assert_int_equal(tg.active_jobs, 4);

	/* queued: leaves the queue */
	apply_ok(t, expire_at_deadline(t, q));
	expect_expired(t, q, 2); /* submitted, failed */
	assert_int_equal(t->res.job, 0);
	assert_int_equal(smt_count(t, STORE_QUEUE), 1); /* keep */

	/* assigned: assignment and slot released */
	apply_ok(t, expire_at_deadline(t, a));
	expect_expired(t, a, 3); /* submitted, assigned, failed */
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 0);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 1);

	/* running: the same, the stage results stay */
	apply_ok(t, expire_at_deadline(t, r));
	expect_expired(t, r, 6); /* + started, finished, started */
	assert_int_equal(smt_job(t, r, &j), 0);
	assert_int_equal(j.nstages, 2);
	assert_int_equal(j.stages[0].state, REC_STAGE_DONE);
	assert_int_equal(j.stages[1].state, REC_STAGE_RUNNING);
	assert_int_equal(j.node_id, 2);
	assert_int_equal(smt_node_rec(t, 2, &n), 0);
	assert_int_equal(n.used_slots, 0);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 0);
	assert_int_equal(smt_target_rec(t, "cc", &tg), 0);
	assert_int_equal(tg.active_jobs, 1);

	/* The fenced attempt's reports are refused. */
	struct cmd c = stage_finish(t, r, 1, 1, 0);
	expect_reject(t, &c, ING_ECONFLICT, "already ended");
	assert_int_equal(job_state(t, keep), REC_JOB_QUEUED);

	/* A retry keeps the deadline: the job is due again at once. */
	apply_ok(t, job_cmd(t, CMD_JOB_RETRY, q));
	assert_int_equal(t->res.job, q);
	assert_int_equal(smt_job(t, q, &j), 0);
	assert_int_equal(t->res.job_deadline_at_ms, j.deadline_at_ms);
	apply_ok(t, expire_at_deadline(t, q));
	expect_expired(t, q, 4); /* submitted, failed, retried, failed */
	assert_int_equal(smt_count(t, STORE_QUEUE), 1);
}

static void test_expire_rejections(void **state)
{
	struct smt *t = *state;
	uint64_t none = smt_submit(t, "cc", 10, 1);
	uint64_t due = submit_due(t, 1000);
	uint64_t done = submit_due(t, 1000);
	struct cmd c;

	c = job_cmd(t, CMD_JOB_EXPIRE, none);
	expect_reject(t, &c, ING_ECONFLICT, "has no deadline");
	/* Not yet due: the check is against the command's time, to the ms. */
	struct rec_job j;
	assert_int_equal(smt_job(t, due, &j), 0);
	c = job_cmd(t, CMD_JOB_EXPIRE, due);
	expect_reject(t, &c, ING_ECONFLICT, "has not passed its deadline (due at");
	apply_ok(t, assign(t, due, 1, 1));
	t->time_ms = j.deadline_at_ms - 1;
	c = job_cmd(t, CMD_JOB_EXPIRE, due);
	expect_reject(t, &c, ING_ECONFLICT, "has not passed");
	/* Already final (even with its deadline passed). */
	run_to_success(t, done, 1);
	c = expire_at_deadline(t, done);
	expect_reject(t, &c, ING_ECONFLICT, "has already ended (succeeded)");
	t->time_ms = j.deadline_at_ms; /* due exactly at the deadline */
	apply_ok(t, job_cmd(t, CMD_JOB_EXPIRE, due));
	assert_int_equal(job_state(t, due), REC_JOB_FAILED);
	c = job_cmd(t, CMD_JOB_EXPIRE, due); /* a repeated decision */
	expect_reject(t, &c, ING_ECONFLICT, "has already ended (failed)");
	c = job_cmd(t, CMD_JOB_EXPIRE, 99);
	expect_reject(t, &c, ING_ENOTFOUND, "job 99");
}

/* A cancel pending when the deadline passes: the job ends cancelled. */
static void test_expire_with_cancel_pending(void **state)
{
	struct smt *t = *state;
	uint64_t id = submit_due(t, 1000);
	struct rec_job j;
	struct rec_node n;

	apply_ok(t, assign(t, id, 1, 1));
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, id));
	apply_ok(t, expire_at_deadline(t, id));
	assert_string_equal(smt_result_str(t), "cancelled");
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_CANCELLED);
	assert_true(ing_str_eq_c(j.error, "operator asked"));
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 0);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 0);
}

static void test_node_down_requeues_all(void **state)
{
	struct smt *t = *state;
	uint64_t a = smt_submit(t, "cc", 10, 2);
	uint64_t b = smt_submit(t, "cc", 10, 1);
	uint64_t c2 = smt_submit(t, "cc", 10, 2);
	struct rec_node n;

	apply_ok(t, assign(t, a, 1, 1));
	apply_ok(t, assign(t, b, 1, 1));
	apply_ok(t, assign(t, c2, 2, 1));
	apply_ok(t, node_down(t, 1));
	assert_int_equal(job_state(t, a), REC_JOB_QUEUED);
	assert_int_equal(job_state(t, b), REC_JOB_FAILED); /* no attempts left */
	assert_int_equal(job_state(t, c2), REC_JOB_ASSIGNED);
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_true(n.down);
	assert_int_equal(n.used_slots, 0);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 1);
	assert_int_equal(smt_count(t, STORE_QUEUE), 1);
}

/* node_forget: only a node that is down, and it is gone from the nodes
 * table (issue 11 item 22: a removed node stayed in node list for ever). */
static void test_node_forget(void **state)
{
	struct smt *t = *state;
	uint64_t a = smt_submit(t, "cc", 10, 2);
	struct rec_node n;
	struct cmd c;

	apply_ok(t, assign(t, a, 2, 1));
	c = smt_cmd(t, CMD_NODE_FORGET);
	c.u.node_forget.node = 2;
	expect_reject(t, &c, ING_ECONFLICT, "not down");
	apply_ok(t, node_down(t, 2)); /* its attempt is requeued */
	uint64_t before = smt_count(t, STORE_NODES);
	apply_ok(t, c);
	assert_int_equal(smt_count(t, STORE_NODES), before - 1);
	assert_int_equal(smt_node_rec(t, 2, &n), ING_ENOTFOUND);
	assert_int_equal(job_state(t, a), REC_JOB_QUEUED);
	expect_reject(t, &c, ING_ENOTFOUND, "node 2");
	/* It may register again (a machine that comes back). */
	smt_node(t, 2, 2);
	assert_int_equal(smt_node_rec(t, 2, &n), 0);
	assert_false(n.down);
}

static void test_artifacts_freed_with_attempt(void **state)
{
	struct smt *t = *state;
	uint64_t id = smt_submit(t, "cc", 10, 2);
	uint64_t before = smt_count(t, STORE_CHUNKS);

	apply_ok(t, assign(t, id, 1, 1));
	apply_ok(t, stage_start(t, id, 1, 0));
	apply_ok(t, stage_finish(t, id, 1, 0, 0));
	/* log + one output */
	assert_int_equal(smt_count(t, STORE_CHUNKS), before + 2);
	apply_ok(t, requeue(t, id, 1));
	assert_int_equal(smt_count(t, STORE_CHUNKS), before);
}

static void test_target_put_and_delete(void **state)
{
	struct smt *t = *state;
	struct rec_target tg;
	struct cmd c;
	uint64_t id = smt_submit(t, "cc", 10, 1);

	smt_target(t, "cc", 2);
	assert_int_equal(smt_result_uint(t), 2);
	assert_int_equal(smt_target_rec(t, "cc", &tg), 0);
	assert_int_equal(tg.revision, 2);
	assert_int_equal(tg.active_jobs, 1);

	c = smt_cmd(t, CMD_TARGET_DELETE);
	c.u.target_delete.name = ing_str_c("cc");
	expect_reject(t, &c, ING_ECONFLICT, "1 unfinished");
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, id));
	c = smt_cmd(t, CMD_TARGET_DELETE);
	c.u.target_delete.name = ing_str_c("cc");
	apply_ok(t, c);
	assert_int_equal(smt_target_rec(t, "cc", &tg), ING_ENOTFOUND);
	c = smt_cmd(t, CMD_TARGET_DELETE);
	c.u.target_delete.name = ing_str_c("cc");
	expect_reject(t, &c, ING_ENOTFOUND, "'cc'");
	/* the target is gone: its cancelled job cannot be retried */
	c = job_cmd(t, CMD_JOB_RETRY, id);
	expect_reject(t, &c, ING_ENOTFOUND, "no longer exists");
}

/* The state machine keeps decoded target records between applies
 * (storage/target_memo.h): every submit must still see the target as
 * stored now, whether a target_put replaced it, jobs ended, or the store
 * changed under the state machine (a restored snapshot, a rolled back
 * batch). */
static void test_target_changes_seen_by_submit(void **state)
{
	struct smt *t = *state;
	struct rec_target tg;
	struct rec_job j;
	uint64_t ids[3];

	smt_target(t, "memo", 1);
	for (int i = 0; i < 3; i++)
		ids[i] = smt_submit(t, "memo", 10, 1);
	assert_int_equal(smt_target_rec(t, "memo", &tg), 0);
	assert_int_equal(tg.active_jobs, 3);
	assert_int_equal(smt_job(t, ids[2], &j), 0);
	assert_int_equal(j.target_revision, 1);

	/* Replaced after submits: the next submit records revision 2 and
	 * the count goes on from 3. */
	smt_target(t, "memo", 2);
	uint64_t after = smt_submit(t, "memo", 10, 1);
	assert_int_equal(smt_job(t, after, &j), 0);
	assert_int_equal(j.target_revision, 2);
	assert_int_equal(smt_target_rec(t, "memo", &tg), 0);
	assert_int_equal(tg.revision, 2);
	assert_int_equal(tg.nstages, 2);
	assert_int_equal(tg.active_jobs, 4);

	/* A job ended: the next submit counts from 3. */
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, ids[0]));
	smt_submit(t, "memo", 10, 1);
	assert_int_equal(smt_target_rec(t, "memo", &tg), 0);
	assert_int_equal(tg.active_jobs, 4);

	/* The record changed beneath the state machine (as a restored
	 * snapshot would): revision 9, 20 active. */
	struct store_txn *txn;
	struct mp_out o;
	mp_out_init(&o);
	tg.revision = 9;
	tg.active_jobs = 20;
	assert_int_equal(rec_target_encode(&tg, &o), 0);
	assert_int_equal(store_write_begin(t->store, &txn), 0);
	assert_int_equal(store_put(txn, STORE_TARGETS, ing_str_c("memo"),
	                           (struct ing_str){o.data, (uint32_t)o.len}),
	                 0);
	assert_int_equal(store_commit(txn), 0);
	mp_out_free(&o);
	uint64_t last = smt_submit(t, "memo", 10, 1);
	assert_int_equal(smt_job(t, last, &j), 0);
	assert_int_equal(j.target_revision, 9);
	assert_int_equal(smt_target_rec(t, "memo", &tg), 0);
	assert_int_equal(tg.active_jobs, 21);
	assert_int_equal(tg.revision, 9);
}

static void test_dedupe(void **state)
{
	struct smt *t = *state;
	struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file src = {{"a.c", 3}, {"x", 1}};
	char *before;
	char *after;

	c.request_id = ing_str_c("req-7f3a");
	c.u.job_submit.tenant = ing_str_c("acme");
	c.u.job_submit.target = ing_str_c("cc");
	c.u.job_submit.max_attempts = 1;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = &src;
	apply_ok(t, c);
	uint64_t first = smt_result_uint(t);

	before = smt_dump_state(t);
	apply_ok(t, c);
	after = smt_dump_state(t);
	assert_true(t->res.deduped);
	assert_int_equal(smt_result_uint(t), first);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_int_equal(smt_count(t, STORE_JOBS), 1);

	struct cmd other = job_cmd(t, CMD_JOB_CANCEL, first);
	other.request_id = ing_str_c("req-7f3a");
	expect_reject(t, &other, ING_ECONFLICT, "already used");

	/* a rejected command stores nothing: the same id may succeed later */
	c.request_id = ing_str_c("req-2");
	c.u.job_submit.target = ing_str_c("later");
	expect_reject(t, &c, ING_ENOTFOUND, NULL);
	smt_target(t, "later", 1);
	apply_ok(t, c);
	assert_false(t->res.deduped);
}

static void test_malformed_entry_is_recorded_not_applied(void **state)
{
	struct smt *t = *state;
	static const uint8_t junk[16] = {0x93, 0x0a, 0x01, 0xc1, 0, 0, 0, 0,
	                                 0,    0,    0,    0,    0, 0, 0, 0};
	char *before = smt_dump_state(t);
	int rv = smt_apply_raw(t, junk, sizeof(junk));
	char *after = smt_dump_state(t);
	assert_int_equal(rv, ING_EMALFORMED);
	assert_string_equal(before, after);
	free(before);
	free(after);

	struct store_txn *txn;
	uint64_t applied;
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_applied_index(txn, &applied), 0);
	store_abort(txn);
	assert_int_equal(applied, t->index);
}

/* A command type or version this binary does not know stops the node
 * (non-zero from sm_apply) instead of being skipped. */
static void test_unknown_command_stops(void **state)
{
	struct smt *t = *state;
	/* [99, 1, 0, ""] padded: type 99 does not exist */
	static const uint8_t unknown_type[8] = {0x94, 99, 1, 0, 0xa0, 0xc0, 0xc0, 0xc0};
	/* [10, 9, 0, ""]: job_submit version 9 */
	static const uint8_t unknown_version[8] = {0x94, 10, 9, 0, 0xa0, 0xc0, 0xc0, 0xc0};
	const uint8_t *entries[] = {unknown_type, unknown_version};
	for (int i = 0; i < 2; i++) {
		struct store_txn *txn;
		uint64_t applied;
		assert_int_equal(store_write_begin(t->store, &txn), 0);
		assert_int_equal(sm_apply(t->sm, txn, t->index + 1, entries[i], 8, &t->res),
		                 ING_EVERSION);
		assert_int_equal(store_applied_index(txn, &applied), 0);
		assert_int_equal(applied, t->index); /* nothing written */
		store_abort(txn);
	}
}

/* Entries at or below the applied index are skipped: replaying the whole
 * log onto the store changes nothing. */
static void test_skip_by_index(void **state)
{
	struct smt *t = *state;
	struct mp_out log[8];
	struct ing_error e;
	uint64_t first = t->index + 1;
	char *before;
	char *after;

	for (int i = 0; i < 8; i++) {
		struct cmd c = i % 2 == 0 ? smt_cmd(t, CMD_JOB_SUBMIT) : smt_cmd(t, CMD_JOB_CANCEL);
		struct cmd_file src = {{"k.c", 3}, {"abc", 3}};
		if (i % 2 == 0) {
			c.u.job_submit.tenant = ing_str_c("t");
			c.u.job_submit.target = ing_str_c("cc");
			c.u.job_submit.max_attempts = 1;
			c.u.job_submit.nsources = 1;
			c.u.job_submit.sources = &src;
		} else {
			c.u.job_cancel.job = (uint64_t)(i / 2 + 1);
			c.u.job_cancel.reason = ing_str_c("");
		}
		mp_out_init(&log[i]);
		assert_int_equal(cmd_encode(&c, &log[i], &e), 0);
		assert_int_equal(smt_apply_raw(t, log[i].data, log[i].len), 0);
	}
	before = smt_dump_all(t);
	for (int i = 0; i < 8; i++) {
		struct store_txn *txn;
		assert_int_equal(store_batch_txn(t->store, &txn), 0);
		assert_int_equal(
		    sm_apply(t->sm, txn, first + (uint64_t)i, log[i].data, log[i].len, &t->res), 0);
		assert_true(t->res.skipped);
		assert_int_equal(store_batch_note(t->store), 0);
	}
	after = smt_dump_all(t);
	assert_string_equal(before, after);
	free(before);
	free(after);
	for (int i = 0; i < 8; i++)
		mp_out_free(&log[i]);
}

/* ---- membership and cluster events ------------------------------------ */

static const char cluster_a[] = "0123456789abcdef0123456789abcdef";
static const char cluster_b[] = "fedcba9876543210fedcba9876543210";

/* mdb_dump of every table, meta included, with the applied index blanked:
 * what a command that changes nothing leaves exactly as it was (the
 * cluster id and the cluster event counter live in meta). */
static char *dump_but_index(struct smt *t)
{
	char key[64] = " ";
	const char *name = "applied_index";
	for (size_t i = 0; name[i] != '\0'; i++)
		snprintf(key + strlen(key), sizeof(key) - strlen(key), "%02x",
		         (unsigned char)name[i]);
	strcat(key, "\n");
	char *d = smt_dump_all(t);
	char *p = strstr(d, key);
	assert_non_null(p);
	for (p += strlen(key); *p != '\n' && *p != '\0'; p++)
		*p = 'x';
	return d;
}

/* The meta counter of cluster events (the next sequence number). */
static uint64_t cluster_events(struct smt *t)
{
	struct store_txn *txn;
	uint64_t n;
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_meta_get_u64(txn, SM_META_CLUSTER_EVENTS, &n), 0);
	store_abort(txn);
	return n;
}

/* The cluster id in meta as a C string in the zone, NULL when absent. */
static const char *cluster_id(struct smt *t)
{
	struct store_txn *txn;
	struct ing_str v;
	char *out = NULL;
	assert_int_equal(store_batch_flush(t->store), 0);
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	int rv = store_get(txn, STORE_META, ing_str_c(SM_META_CLUSTER_ID), &v);
	if (rv == 0) {
		out = msgpack_zone_malloc(t->zone, v.len + 1);
		memcpy(out, v.ptr, v.len);
		out[v.len] = '\0';
	} else {
		assert_int_equal(rv, ING_ENOTFOUND);
	}
	store_abort(txn);
	return out;
}

/* Reads the event (job, seq); 0 or ING_ENOTFOUND.  Views live in the zone. */
static int event_at(struct smt *t, uint64_t job, uint32_t seq, struct rec_event *ev)
{
	struct store_txn *txn;
	struct ing_str val;
	uint8_t k[12];
	store_be64(k, job);
	store_be32(k + 8, seq);
	assert_int_equal(store_batch_flush(t->store), 0);
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	int rv = store_get(txn, STORE_EVENTS, (struct ing_str){(const char *)k, 12}, &val);
	if (rv == 0)
		assert_int_equal(rec_event_decode(val, t->zone, ev, NULL), 0);
	store_abort(txn);
	return rv;
}

/* Cluster event `seq` exists, of `kind`, about `member`, at `time_ms`,
 * its message containing `needle`. */
static void expect_cluster_event(struct smt *t, uint32_t seq, uint8_t kind, uint64_t member,
                                 uint64_t time_ms, const char *needle)
{
	struct rec_event ev;
	assert_int_equal(event_at(t, 0, seq, &ev), 0);
	if (ev.kind != kind)
		fail_msg("cluster event %u: kind %s, expected %s", seq,
		         rec_event_kind_name(ev.kind), rec_event_kind_name(kind));
	assert_int_equal(ev.node_id, member);
	assert_int_equal(ev.time_ms, time_ms);
	assert_int_equal(ev.state, 0);
	assert_int_equal(ev.attempt, 0);
	assert_int_equal(ev.stage, -1);
	assert_int_equal(ev.exit_code, 0);
	char *msg = msgpack_zone_malloc(t->zone, ev.message.len + 1);
	memcpy(msg, ev.message.ptr, ev.message.len);
	msg[ev.message.len] = '\0';
	if (strstr(msg, needle) == NULL)
		fail_msg("cluster event %u: message '%s' does not mention '%s'", seq, msg, needle);
}

/* Starts a raw entry [type, 1, time_ms, "", fields...] for the caller to
 * pack its `nfields` into and pad: entries cmd_encode refuses to write. */
static void raw_begin(struct smt *t, struct mp_out *o, uint32_t type, uint32_t nfields)
{
	mp_out_init(o);
	msgpack_pack_array(&o->pk, 4 + nfields);
	msgpack_pack_uint64(&o->pk, type);
	msgpack_pack_uint64(&o->pk, 1);
	msgpack_pack_uint64(&o->pk, t->time_ms++);
	mp_pack_cstr(&o->pk, "");
}

/* Applies a raw entry that must not decode: `code` naming `needle`, and
 * nothing but the applied index changes.  Frees o. */
static void expect_raw_reject(struct smt *t, struct mp_out *o, int code, const char *needle)
{
	mp_out_pad8(o);
	char *before = dump_but_index(t);
	int rv = smt_apply_raw(t, o->data, o->len);
	char *after = dump_but_index(t);
	if (rv != code)
		fail_msg("expected %s, got %s: %s", ing_err_name(code), ing_err_name(rv),
		         t->res.err.msg);
	if (strstr(t->res.err.msg, needle) == NULL)
		fail_msg("message '%s' does not mention '%s'", t->res.err.msg, needle);
	assert_string_equal(before, after);
	free(before);
	free(after);
	mp_out_free(o);
}

/* Applies c, which must be accepted and change nothing but the applied
 * index (meta included). */
static void expect_no_change(struct smt *t, struct cmd c)
{
	char *before = dump_but_index(t);
	apply_ok(t, c);
	char *after = dump_but_index(t);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static struct cmd cluster_init(struct smt *t, const char *id)
{
	struct cmd c = smt_cmd(t, CMD_CLUSTER_INIT);
	c.u.cluster_init.cluster_id = ing_str_c(id);
	return c;
}

static struct cmd cluster_event(struct smt *t, uint8_t kind, uint64_t member, const char *msg)
{
	struct cmd c = smt_cmd(t, CMD_CLUSTER_EVENT);
	c.u.cluster_event.kind = kind;
	c.u.cluster_event.member = member;
	c.u.cluster_event.message = ing_str_c(msg);
	return c;
}

static struct cmd member_put(struct smt *t, uint64_t id, uint16_t port, uint8_t role)
{
	static char addr[2][32];
	struct cmd c = smt_cmd(t, CMD_MEMBER_PUT);
	snprintf(addr[0], sizeof(addr[0]), "127.0.0.1:%u", 7500u + port);
	snprintf(addr[1], sizeof(addr[1]), "127.0.0.1:%u", 7400u + port);
	c.u.member_put.member.id = id;
	c.u.member_put.member.raft_address = ing_str_c(addr[0]);
	c.u.member_put.member.api_address = ing_str_c(addr[1]);
	c.u.member_put.member.role = role;
	return c;
}

static struct cmd member_remove(struct smt *t, uint64_t id)
{
	struct cmd c = smt_cmd(t, CMD_MEMBER_REMOVE);
	c.u.member_remove.id = id;
	return c;
}

/* The first cluster_init names the cluster and records cluster_created; a
 * later one, with another id or the same, changes nothing and answers with
 * the first id. */
static void test_cluster_init(void **state)
{
	struct smt *t = *state;
	struct rec_event ev;
	struct cmd c = cluster_init(t, cluster_a);

	assert_null(cluster_id(t));
	assert_int_equal(cluster_events(t), 0);
	apply_ok(t, c);
	assert_string_equal(smt_result_str(t), cluster_a);
	assert_string_equal(cluster_id(t), cluster_a);
	assert_int_equal(cluster_events(t), 1);
	expect_cluster_event(t, 0, REC_EV_CLUSTER_CREATED, 0, c.time_ms, cluster_a);
	assert_int_equal(event_at(t, 0, 1, &ev), ING_ENOTFOUND);
	assert_int_equal(smt_count(t, STORE_EVENTS), 1);

	expect_no_change(t, cluster_init(t, cluster_b));
	assert_string_equal(smt_result_str(t), cluster_a);
	expect_no_change(t, cluster_init(t, cluster_a));
	assert_string_equal(smt_result_str(t), cluster_a);
	assert_string_equal(cluster_id(t), cluster_a);
	assert_int_equal(cluster_events(t), 1);
}

/* An id that is not 32 lowercase hex digits is refused by the encoder
 * (nothing proposed) and by the decoder (nothing applied). */
static void test_cluster_init_invalid(void **state)
{
	struct smt *t = *state;
	static const char *const bad[] = {
	    "",
	    "0123456789abcdef",                  /* 16 */
	    "0123456789abcdef0123456789abcde",   /* 31 */
	    "0123456789ABCDEF0123456789abcdef",  /* upper case */
	    "0123456789abcdef0123456789abcdeg",  /* not hex */
	    "0123456789abcdef0123456789abcde ",  /* space */
	    "0123456789abcdef0123456789abcdef0", /* 33 */
	};
	struct ing_error e;
	struct mp_out o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cmd c = cluster_init(t, bad[i]);
		mp_out_init(&o);
		assert_int_equal(cmd_encode(&c, &o, &e), ING_EINVAL);
		assert_non_null(strstr(e.msg, "command cluster_init: cluster_id"));
		assert_int_equal(o.len, 0);
		mp_out_free(&o);

		raw_begin(t, &o, CMD_CLUSTER_INIT, 1);
		mp_pack_cstr(&o.pk, bad[i]);
		/* Over 32 bytes is a size error, the rest a value error. */
		expect_raw_reject(t, &o, strlen(bad[i]) > 32 ? ING_ETOOBIG : ING_EINVAL,
		                  "cluster_id");
	}
	raw_begin(t, &o, CMD_CLUSTER_INIT, 1);
	msgpack_pack_uint64(&o.pk, 7);
	expect_raw_reject(t, &o, ING_EMALFORMED, "cluster_id");
	raw_begin(t, &o, CMD_CLUSTER_INIT, 2);
	mp_pack_cstr(&o.pk, cluster_a);
	mp_pack_cstr(&o.pk, cluster_b);
	expect_raw_reject(t, &o, ING_EMALFORMED, "cluster_init");
	assert_null(cluster_id(t));
	assert_int_equal(cluster_events(t), 0);

	/* After all that, the first valid one still names the cluster. */
	apply_ok(t, cluster_init(t, cluster_b));
	assert_string_equal(cluster_id(t), cluster_b);
}

/* cluster_event appends under job 0 with the next sequence number, shared
 * with the events that membership commands record; job events keep their
 * own numbering. */
static void test_cluster_event(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	struct cmd c;

	apply_ok(t, cluster_init(t, cluster_a)); /* seq 0 */
	smt_target(t, "cc", 2);                  /* seq 1: target_put */
	expect_cluster_event(t, 1, REC_EV_TARGET_PUT, 0, t->time_ms - 1, "target 'cc' revision 1");
	uint64_t id = smt_submit(t, "cc", 10, 1);
	c = cluster_event(t, REC_EV_LEADER_CHANGED, 2, "node 2 is leader in term 7");
	apply_ok(t, c);
	assert_int_equal(t->res.value.len, 0); /* nil: no result */
	expect_cluster_event(t, 2, REC_EV_LEADER_CHANGED, 2, c.time_ms,
	                     "node 2 is leader in term 7");
	c = member_put(t, 4, 4, REC_ROLE_STANDBY);
	apply_ok(t, c);
	expect_cluster_event(t, 3, REC_EV_MEMBER_ADDED, 4, c.time_ms, "member 4 added as standby");
	c = cluster_event(t, REC_EV_VOTER_REPLACED, 3,
	                  "voter 3 silent for 10000 ms: replaced by 4");
	apply_ok(t, c);
	expect_cluster_event(t, 4, REC_EV_VOTER_REPLACED, 3, c.time_ms, "replaced by 4");
	/* An empty message, member 0: both allowed. */
	c = cluster_event(t, REC_EV_LEADER_CHANGED, 0, "");
	apply_ok(t, c);
	expect_cluster_event(t, 5, REC_EV_LEADER_CHANGED, 0, c.time_ms, "");
	assert_int_equal(cluster_events(t), 6);

	/* The job's events are under its own id, numbered from 0. */
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.nevents, 1);
	struct rec_event ev;
	assert_int_equal(event_at(t, id, 0, &ev), 0);
	assert_int_equal(ev.kind, REC_EV_SUBMITTED);
	assert_int_equal(smt_count(t, STORE_EVENTS), 7);
	/* A job submitted now still gets the next job id, not touched by the
	 * cluster event counter. */
	assert_int_equal(smt_submit(t, "cc", 10, 1), id + 1);
}

/* Only leader_changed and voter_replaced go through cluster_event (the
 * others are recorded by the commands that make the change): any other
 * kind is refused by the encoder and the decoder, the state unchanged. */
static void test_cluster_event_rejections(void **state)
{
	struct smt *t = *state;
	struct ing_error e;
	struct mp_out o;

	apply_ok(t, cluster_init(t, cluster_a));
	for (unsigned kind = 0; kind <= REC_EV_COUNT + 1; kind++) {
		uint8_t k = kind == REC_EV_COUNT + 1 ? 255 : (uint8_t)kind;
		if (k == REC_EV_LEADER_CHANGED || k == REC_EV_VOTER_REPLACED)
			continue;
		struct cmd c = cluster_event(t, k, 1, "forged");
		mp_out_init(&o);
		assert_int_equal(cmd_encode(&c, &o, &e), ING_EINVAL);
		assert_non_null(strstr(e.msg, "command cluster_event: kind"));
		mp_out_free(&o);

		raw_begin(t, &o, CMD_CLUSTER_EVENT, 3);
		msgpack_pack_uint64(&o.pk, k);
		msgpack_pack_uint64(&o.pk, 1);
		mp_pack_cstr(&o.pk, "forged");
		expect_raw_reject(t, &o, ING_EINVAL, "kind");
	}
	/* A kind that does not fit the field, a message over the limit, a
	 * missing field. */
	raw_begin(t, &o, CMD_CLUSTER_EVENT, 3);
	msgpack_pack_uint64(&o.pk, 256 + REC_EV_LEADER_CHANGED);
	msgpack_pack_uint64(&o.pk, 1);
	mp_pack_cstr(&o.pk, "");
	expect_raw_reject(t, &o, ING_EINVAL, "kind");
	char *long_msg = calloc(1, ING_MESSAGE_MAX + 2);
	memset(long_msg, 'm', ING_MESSAGE_MAX + 1);
	raw_begin(t, &o, CMD_CLUSTER_EVENT, 3);
	msgpack_pack_uint64(&o.pk, REC_EV_LEADER_CHANGED);
	msgpack_pack_uint64(&o.pk, 1);
	mp_pack_cstr(&o.pk, long_msg);
	expect_raw_reject(t, &o, ING_ETOOBIG, "message");
	free(long_msg);
	raw_begin(t, &o, CMD_CLUSTER_EVENT, 2);
	msgpack_pack_uint64(&o.pk, REC_EV_LEADER_CHANGED);
	msgpack_pack_uint64(&o.pk, 1);
	expect_raw_reject(t, &o, ING_EMALFORMED, "cluster_event");
	assert_int_equal(cluster_events(t), 1);
}

/* member_put records member_added for a new member and
 * member_role_changed for a new role or new addresses; a put that changes
 * nothing records nothing.  member_remove records member_removed; an
 * unknown member is not_found and changes nothing. */
/* member_put / member_remove of version 1 (logs written before cluster
 * events existed) change the members table and record no event, as when
 * they were first applied: replaying an old log gives the same store. */
static void test_members_v1(void **state)
{
	struct smt *t = *state;
	struct mp_out o;
	uint64_t before = cluster_events(t);

	raw_begin(t, &o, CMD_MEMBER_PUT, 4);
	msgpack_pack_uint64(&o.pk, 7);
	mp_pack_cstr(&o.pk, "127.0.0.1:7507");
	mp_pack_cstr(&o.pk, "127.0.0.1:7407");
	msgpack_pack_uint64(&o.pk, REC_ROLE_VOTER);
	mp_out_pad8(&o);
	assert_int_equal(smt_apply_raw(t, o.data, o.len), 0);
	assert_int_equal(t->res.err.code, 0);
	mp_out_free(&o);
	assert_int_equal(cluster_events(t), before);

	raw_begin(t, &o, CMD_MEMBER_REMOVE, 1);
	msgpack_pack_uint64(&o.pk, 7);
	mp_out_pad8(&o);
	assert_int_equal(smt_apply_raw(t, o.data, o.len), 0);
	assert_int_equal(t->res.err.code, 0);
	mp_out_free(&o);
	assert_int_equal(cluster_events(t), before);
}

static void test_members(void **state)
{
	struct smt *t = *state;
	struct rec_event ev;
	struct cmd c;

	c = member_put(t, 3, 3, REC_ROLE_SPARE);
	uint64_t added_at = c.time_ms;
	apply_ok(t, c);
	assert_int_equal(smt_count(t, STORE_MEMBERS), 1);
	expect_cluster_event(t, 0, REC_EV_MEMBER_ADDED, 3, c.time_ms,
	                     "member 3 added as spare (raft 127.0.0.1:7503, api 127.0.0.1:7403)");
	assert_int_equal(cluster_events(t), 1);

	c = member_put(t, 3, 3, REC_ROLE_VOTER);
	apply_ok(t, c);
	expect_cluster_event(t, 1, REC_EV_MEMBER_ROLE_CHANGED, 3, c.time_ms,
	                     "member 3 is now voter (was spare)");
	c = member_put(t, 3, 3, REC_ROLE_STANDBY);
	apply_ok(t, c);
	expect_cluster_event(t, 2, REC_EV_MEMBER_ROLE_CHANGED, 3, c.time_ms,
	                     "member 3 is now standby (was voter)");
	assert_int_equal(cluster_events(t), 3);

	/* The same member again: no event, no change (added_at_ms included). */
	expect_no_change(t, member_put(t, 3, 3, REC_ROLE_STANDBY));
	assert_int_equal(event_at(t, 0, 3, &ev), ING_ENOTFOUND);

	/* New addresses, same role: recorded, added_at_ms kept. */
	c = member_put(t, 3, 13, REC_ROLE_STANDBY);
	apply_ok(t, c);
	expect_cluster_event(t, 3, REC_EV_MEMBER_ROLE_CHANGED, 3, c.time_ms,
	                     "addresses now raft 127.0.0.1:7513, api 127.0.0.1:7413");
	struct store_txn *txn;
	struct ing_str val;
	struct rec_member m;
	uint8_t k[8];
	store_be64(k, 3);
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_get(txn, STORE_MEMBERS, (struct ing_str){(const char *)k, 8}, &val),
	                 0);
	assert_int_equal(rec_member_decode(val, t->zone, &m, NULL), 0);
	store_abort(txn);
	assert_int_equal(m.added_at_ms, added_at);
	assert_int_equal(m.role, REC_ROLE_STANDBY);
	assert_true(ing_str_eq_c(m.api_address, "127.0.0.1:7413"));

	/* A second member has its own added event in the same numbering. */
	c = member_put(t, 4, 4, REC_ROLE_VOTER);
	apply_ok(t, c);
	expect_cluster_event(t, 4, REC_EV_MEMBER_ADDED, 4, c.time_ms, "member 4 added as voter");

	c = member_remove(t, 3);
	apply_ok(t, c);
	assert_int_equal(t->res.value.len, 0);
	expect_cluster_event(t, 5, REC_EV_MEMBER_REMOVED, 3, c.time_ms, "member 3 removed");
	assert_int_equal(smt_count(t, STORE_MEMBERS), 1);
	assert_int_equal(cluster_events(t), 6);

	/* Unknown (removed, never added): not_found, nothing changes, the
	 * event counter included. */
	char *before = dump_but_index(t);
	c = member_remove(t, 3);
	expect_reject(t, &c, ING_ENOTFOUND, "member 3 does not exist");
	c = member_remove(t, 99);
	expect_reject(t, &c, ING_ENOTFOUND, "member 99");
	char *after = dump_but_index(t);
	assert_string_equal(before, after);
	free(before);
	free(after);

	/* Back after removal: added again, with a new added_at_ms. */
	c = member_put(t, 3, 3, REC_ROLE_SPARE);
	apply_ok(t, c);
	expect_cluster_event(t, 6, REC_EV_MEMBER_ADDED, 3, c.time_ms, "member 3 added as spare");
}

/* ---- job_stage_finish version 2 --------------------------------------- */

static struct cmd stage_done(struct smt *t, uint64_t job, uint32_t attempt, uint32_t stage,
                             bool started, uint8_t then, uint8_t outcome)
{
	struct cmd c = stage_finish(t, job, attempt, stage, 0);
	c.u.job_stage_finish.started = started;
	c.u.job_stage_finish.then = then;
	c.u.job_stage_finish.outcome = outcome;
	c.u.job_stage_finish.message = ing_str_c(then == CMD_THEN_FINISH ? "done" : "");
	return c;
}

/* A 2-stage job in 3 commands after its assignment: stage 0's start and end
 * with stage 1's start, stage 1's end with the job's. */
static void test_stage_finish_then(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	struct rec_node n;
	uint64_t id = smt_submit(t, "cc", 10, 1);

	apply_ok(t, assign(t, id, 1, 1));
	/* A stage that never started, without `started`: refused. */
	struct cmd c = stage_done(t, id, 1, 0, false, CMD_THEN_NEXT, 0);
	expect_reject(t, &c, ING_ECONFLICT, "is not running");
	/* The last stage cannot be followed by a next one. */
	c = stage_done(t, id, 1, 0, true, CMD_THEN_NEXT, 0);
	apply_ok(t, c);
	assert_string_equal(smt_result_str(t), "running");
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.nstages, 2);
	assert_int_equal(j.stages[0].state, REC_STAGE_DONE);
	assert_int_equal(j.stages[1].state, REC_STAGE_RUNNING);
	assert_int_equal(j.stages[1].started_at_ms, t->time_ms - 1); /* the command's time */
	/* submitted, assigned, stage_started, stage_finished, stage_started */
	assert_int_equal(j.nevents, 5);
	c = stage_done(t, id, 1, 1, false, CMD_THEN_NEXT, 0);
	expect_reject(t, &c, ING_ECONFLICT, "is the last of job");
	/* Ending stage 1 and the job in one: succeeded, slot free. */
	apply_ok(t, stage_done(t, id, 1, 1, false, CMD_THEN_FINISH, REC_JOB_SUCCEEDED));
	assert_string_equal(smt_result_str(t), "succeeded");
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_SUCCEEDED);
	assert_int_equal(j.nevents, 7);
	assert_true(ing_str_eq_c(j.error, ""));
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 0);
	assert_true(t->res.released);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 0);
	assert_int_equal(smt_count(t, STORE_FINISHED), 1);
}

/* job_assign v3 with `start`: the assignment also starts stage 0 (running,
 * both events), so the worker's first report is that stage's end; a
 * stage_start of stage 0 after it is refused, and so is a report of the
 * attempt once it was lost. */
static void test_assign_starts_stage_0(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	struct rec_node n;
	uint64_t id = smt_submit(t, "cc", 10, 2);

	struct cmd c = assign(t, id, 1, 1);
	c.u.job_assign.start = true;
	apply_ok(t, c);
	assert_string_equal(smt_result_str(t), "running");
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_RUNNING);
	assert_int_equal(j.nstages, 1);
	assert_int_equal(j.stages[0].state, REC_STAGE_RUNNING);
	assert_int_equal(j.stages[0].started_at_ms, c.time_ms);
	assert_int_equal(j.node_id, 1);
	/* submitted, assigned, stage_started */
	assert_int_equal(j.nevents, 3);
	assert_int_equal(smt_count(t, STORE_QUEUE), 0);
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 1);
	assert_int_equal(smt_node_rec(t, 1, &n), 0);
	assert_int_equal(n.used_slots, 1);

	c = stage_start(t, id, 1, 0);
	expect_reject(t, &c, ING_ECONFLICT, "stage 0 cannot start");
	c = stage_done(t, id, 1, 0, true, CMD_THEN_NEXT, 0);
	expect_reject(t, &c, ING_ECONFLICT, "stage 0 cannot start");
	apply_ok(t, stage_done(t, id, 1, 0, false, CMD_THEN_NEXT, 0));
	assert_string_equal(smt_result_str(t), "running");

	/* The node goes down: the attempt is lost, its reports refused, and
	 * the next assignment starts stage 0 afresh. */
	apply_ok(t, node_down(t, 1));
	assert_int_equal(job_state(t, id), REC_JOB_QUEUED);
	c = stage_done(t, id, 1, 1, false, CMD_THEN_FINISH, REC_JOB_SUCCEEDED);
	expect_reject(t, &c, ING_ESTALE, "is no longer live");
	c = assign(t, id, 2, 2);
	c.u.job_assign.start = true;
	apply_ok(t, c);
	assert_int_equal(smt_job(t, id, &j), 0);
	assert_int_equal(j.state, REC_JOB_RUNNING);
	assert_int_equal(j.nstages, 1);
	assert_int_equal(j.stages[0].state, REC_STAGE_RUNNING);
	apply_ok(t, stage_done(t, id, 2, 0, false, CMD_THEN_NEXT, 0));
	apply_ok(t, stage_done(t, id, 2, 1, false, CMD_THEN_FINISH, REC_JOB_SUCCEEDED));
	assert_string_equal(smt_result_str(t), "succeeded");
	assert_int_equal(smt_node_rec(t, 2, &n), 0);
	assert_int_equal(n.used_slots, 0);
}

/* A failed stage ends the job failed; success is refused unless every
 * stage ran; a pending cancel turns `then: next` into the job's end. */
static void test_stage_finish_then_outcomes(void **state)
{
	struct smt *t = *state;
	struct rec_job j;
	uint64_t a = smt_submit(t, "cc", 10, 1), b = smt_submit(t, "cc", 10, 1);

	apply_ok(t, assign(t, a, 1, 1));
	struct cmd c = stage_done(t, a, 1, 0, true, CMD_THEN_FINISH, REC_JOB_SUCCEEDED);
	expect_reject(t, &c, ING_ECONFLICT, "cannot succeed: 1 of 2 stages ran");
	c = stage_done(t, a, 1, 0, true, CMD_THEN_FINISH, REC_JOB_CANCELLED);
	expect_reject(t, &c, ING_ECONFLICT, "no cancel was requested");
	c = stage_done(t, a, 1, 0, true, CMD_THEN_FINISH, REC_JOB_FAILED);
	c.u.job_stage_finish.exit_code = 2;
	c.u.job_stage_finish.message = ing_str_c("stage 'compile' exited with status 2");
	apply_ok(t, c);
	assert_int_equal(smt_job(t, a, &j), 0);
	assert_int_equal(j.state, REC_JOB_FAILED);
	assert_true(ing_str_eq_c(j.error, "stage 'compile' exited with status 2"));
	assert_int_equal(j.stages[0].exit_code, 2);
	/* The attempt is over: nothing more of it is accepted. */
	c = stage_done(t, a, 1, 1, false, CMD_THEN_NONE, 0);
	expect_reject(t, &c, ING_ECONFLICT, "has already ended");

	apply_ok(t, assign(t, b, 2, 1));
	apply_ok(t, stage_start(t, b, 1, 0));
	apply_ok(t, job_cmd(t, CMD_JOB_CANCEL, b));
	/* The stage that ran is recorded; the next one does not start. */
	apply_ok(t, stage_done(t, b, 1, 0, false, CMD_THEN_NEXT, 0));
	assert_string_equal(smt_result_str(t), "cancelled");
	assert_int_equal(smt_job(t, b, &j), 0);
	assert_int_equal(j.state, REC_JOB_CANCELLED);
	assert_int_equal(j.nstages, 1);
	assert_int_equal(j.stages[0].state, REC_STAGE_DONE);
	assert_true(ing_str_eq_c(j.error, "operator asked"));
	assert_int_equal(smt_count(t, STORE_ASSIGNMENTS), 0);
}

/* ---- settings and retention -------------------------------------------- */

static struct cmd setting(struct smt *t, const char *name, uint64_t value)
{
	struct cmd c = smt_cmd(t, CMD_SETTING_PUT);
	c.u.setting_put.name = ing_str_c(name);
	c.u.setting_put.value = value;
	return c;
}

static struct cmd retention(struct smt *t, uint32_t max)
{
	struct cmd c = smt_cmd(t, CMD_RETENTION_RUN);
	c.u.retention_run.max_jobs = max;
	return c;
}

static uint64_t setting_of(struct smt *t, const char *name)
{
	struct store_txn *x;
	uint64_t v;
	assert_int_equal(store_read_begin(t->store, &x), 0);
	assert_int_equal(sm_setting(x, name, &v), 0);
	store_abort(x);
	return v;
}

/* The retention result [removed, more, turned]. */
static void expect_retention(struct smt *t, uint64_t removed, bool more, bool turned)
{
	msgpack_zone *z = msgpack_zone_new(256);
	msgpack_object o;
	size_t off = 0;
	assert_int_equal(t->res.err.code, 0);
	assert_int_equal(msgpack_unpack(t->res.value.data, t->res.value.len, &off, z, &o),
	                 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o.via.array.size, 3);
	assert_int_equal(o.via.array.ptr[0].via.u64, removed);
	assert_int_equal(o.via.array.ptr[1].via.boolean, more);
	assert_int_equal(o.via.array.ptr[2].via.boolean, turned);
	msgpack_zone_free(z);
}

static void run_job(struct smt *t, uint64_t id, uint64_t node, uint8_t outcome)
{
	apply_ok(t, assign(t, id, node, 1));
	apply_ok(t, stage_done(t, id, 1, 0, true, CMD_THEN_NEXT, 0));
	apply_ok(t, stage_done(t, id, 1, 1, false, CMD_THEN_FINISH, outcome));
}

static void test_settings(void **state)
{
	struct smt *t = *state;
	assert_int_equal(setting_of(t, CMD_SETTING_JOB_RETENTION), 7ull * 24 * 3600 * 1000);
	assert_int_equal(setting_of(t, CMD_SETTING_DEDUPE_WINDOW), 24ull * 3600 * 1000);
	apply_ok(t, setting(t, CMD_SETTING_JOB_RETENTION, 0));
	assert_int_equal(setting_of(t, CMD_SETTING_JOB_RETENTION), 0);
	apply_ok(t, setting(t, CMD_SETTING_DEDUPE_WINDOW, 5000));
	assert_int_equal(setting_of(t, CMD_SETTING_DEDUPE_WINDOW), 5000);
	/* Nothing else changes. */
	assert_int_equal(smt_count(t, STORE_JOBS), 0);
}

/* Finished jobs older than the retention go, oldest first, at most
 * max_jobs per run, with their events, sources, artifacts and index
 * entries; queued, running and recent ones stay. */
static void test_retention_removes_finished_jobs(void **state)
{
	struct smt *t = *state;
	static char big[ING_INLINE_SOURCE_MAX + 100];
	struct cmd_file src[2] = {{{"big.c", 5}, {big, sizeof(big)}}, {{"a.h", 3}, {"hi", 2}}};
	uint64_t ids[4];

	memset(big, 'b', sizeof(big));
	for (int i = 0; i < 4; i++) {
		struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
		c.u.job_submit.tenant = ing_str_c("default");
		c.u.job_submit.target = ing_str_c("cc");
		c.u.job_submit.priority = 1;
		c.u.job_submit.max_attempts = 1;
		c.u.job_submit.nsources = 2;
		c.u.job_submit.sources = src;
		apply_ok(t, c);
		ids[i] = smt_result_uint(t);
	}
	run_job(t, ids[0], 1, REC_JOB_SUCCEEDED);
	run_job(t, ids[1], 1, REC_JOB_SUCCEEDED);
	run_job(t, ids[2], 2, REC_JOB_SUCCEEDED);
	apply_ok(t, assign(t, ids[3], 2, 1)); /* still running */
	assert_int_equal(smt_count(t, STORE_FINISHED), 3);
	uint64_t finished_at = t->time_ms;

	/* Default retention (7 days): nothing is due yet. */
	apply_ok(t, retention(t, 10));
	expect_retention(t, 0, false, true); /* the first run turns the dedupe generation */
	assert_int_equal(smt_count(t, STORE_JOBS), 4);

	apply_ok(t, setting(t, CMD_SETTING_JOB_RETENTION, 1000));
	t->time_ms = finished_at + 1000;
	apply_ok(t, retention(t, 2));
	expect_retention(t, 2, true, false);
	assert_int_equal(smt_job(t, ids[0], &(struct rec_job){0}), ING_ENOTFOUND);
	assert_int_equal(smt_job(t, ids[1], &(struct rec_job){0}), ING_ENOTFOUND);
	apply_ok(t, retention(t, 2));
	expect_retention(t, 1, false, false);
	assert_int_equal(smt_count(t, STORE_JOBS), 1);
	assert_int_equal(smt_count(t, STORE_FINISHED), 0);
	assert_int_equal(smt_count(t, STORE_SOURCES), 1);
	/* Only the running job's events and its source's chunk are left: the
	 * chunks of the removed jobs' logs and outputs are freed. */
	struct rec_job j;
	assert_int_equal(smt_job(t, ids[3], &j), 0);
	struct store_txn *x;
	uint64_t size, refs, cluster_events = 0;
	assert_int_equal(store_read_begin(t->store, &x), 0);
	(void)store_meta_get_u64(x, "cluster_events", &cluster_events); /* target_put's */
	assert_int_equal(smt_count(t, STORE_EVENTS), j.nevents + cluster_events);
	assert_int_equal(smt_count(t, STORE_CHUNKS), 1);
	assert_int_equal(store_artifact_stat(x, j.sources[0].sha256, &size, &refs), 0);
	assert_int_equal(refs, 1);
	store_abort(x);

	/* The last job ends; retention 0 keeps it for ever. */
	apply_ok(t, stage_done(t, ids[3], 1, 0, true, CMD_THEN_FINISH, REC_JOB_FAILED));
	apply_ok(t, setting(t, CMD_SETTING_JOB_RETENTION, 0));
	t->time_ms += 100000;
	apply_ok(t, retention(t, 10));
	expect_retention(t, 0, false, false);
	assert_int_equal(smt_count(t, STORE_JOBS), 1);
	/* A retried job leaves the finished index, and comes back at its end. */
	apply_ok(t, job_cmd(t, CMD_JOB_RETRY, ids[3]));
	assert_int_equal(smt_count(t, STORE_FINISHED), 0);
	apply_ok(t, setting(t, CMD_SETTING_JOB_RETENTION, 1000));
	t->time_ms += 100000;
	apply_ok(t, retention(t, 10));
	expect_retention(t, 0, false, false);
	assert_int_equal(smt_count(t, STORE_JOBS), 1);
}

/* A request id is remembered for at least the window: one turn keeps it
 * (previous generation), the second drops it, and the same id is then a
 * new request. */
static void test_dedupe_generations(void **state)
{
	struct smt *t = *state;
	struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file src = {{"a.c", 3}, {"x", 1}};

	apply_ok(t, setting(t, CMD_SETTING_DEDUPE_WINDOW, 1000));
	apply_ok(t, retention(t, 1));
	expect_retention(t, 0, false, true);
	c.request_id = ing_str_c("req-7");
	c.u.job_submit.tenant = ing_str_c("default");
	c.u.job_submit.target = ing_str_c("cc");
	c.u.job_submit.priority = 1;
	c.u.job_submit.max_attempts = 1;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = &src;
	apply_ok(t, c);
	uint64_t first = smt_result_uint(t);
	/* Within the window: no turn, the first result. */
	apply_ok(t, retention(t, 1));
	expect_retention(t, 0, false, false);
	c.time_ms = t->time_ms++;
	apply_ok(t, c);
	assert_true(t->res.deduped);
	assert_int_equal(smt_result_uint(t), first);
	/* One turn: still remembered (previous generation). */
	t->time_ms += 1000;
	apply_ok(t, retention(t, 1));
	expect_retention(t, 0, false, true);
	assert_int_equal(smt_count(t, STORE_DEDUPE) + smt_count(t, STORE_DEDUPE_ALT), 1);
	c.time_ms = t->time_ms++;
	apply_ok(t, c);
	assert_true(t->res.deduped);
	/* A second turn empties that generation: a new request. */
	t->time_ms += 1000;
	apply_ok(t, retention(t, 1));
	expect_retention(t, 0, false, true);
	assert_int_equal(smt_count(t, STORE_DEDUPE) + smt_count(t, STORE_DEDUPE_ALT), 0);
	c.time_ms = t->time_ms++;
	apply_ok(t, c);
	assert_false(t->res.deduped);
	assert_true(smt_result_uint(t) != first);
}

/* A command that turns the generation stores its own result in the new
 * current one (the apply reads the generation once, and again after a
 * turn): a retry of it is still answered after the next turn. */
static void test_dedupe_turn_by_a_deduped_command(void **state)
{
	struct smt *t = *state;

	apply_ok(t, setting(t, CMD_SETTING_DEDUPE_WINDOW, 1000));
	struct cmd rr = retention(t, 1);
	rr.request_id = ing_str_c("rr-1");
	apply_ok(t, rr);
	expect_retention(t, 0, false, true);
	t->time_ms += 1000;
	apply_ok(t, retention(t, 1));
	expect_retention(t, 0, false, true);
	rr.time_ms = t->time_ms++;
	apply_ok(t, rr);
	assert_true(t->res.deduped);
	expect_retention(t, 0, false, true); /* the first run's answer */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_large_sources_are_artifacts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_submit_queues, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_submit_rejections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_success_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_assign_starts_stage_0, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stage_finish_then, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stage_finish_then_outcomes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention_removes_finished_jobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedupe_generations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedupe_turn_by_a_deduped_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_illegal_transitions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_checks_on_assign, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_assign_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attempt_fencing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_requeue_until_exhausted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_rejections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_with_cancel_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_down_requeues_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_forget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_artifacts_freed_with_attempt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_target_put_and_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_target_changes_seen_by_submit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedupe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_entry_is_recorded_not_applied, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_skip_by_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_command_stops, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_members, setup_bare, teardown),
	    cmocka_unit_test_setup_teardown(test_members_v1, setup_bare, teardown),
	    cmocka_unit_test_setup_teardown(test_cluster_init, setup_bare, teardown),
	    cmocka_unit_test_setup_teardown(test_cluster_init_invalid, setup_bare, teardown),
	    cmocka_unit_test_setup_teardown(test_cluster_event, setup_bare, teardown),
	    cmocka_unit_test_setup_teardown(test_cluster_event_rejections, setup_bare, teardown),
	    cmocka_unit_test_setup_teardown(test_gpu_assign_holds, setup_gpus, teardown),
	    cmocka_unit_test_setup_teardown(test_gpu_assign_rejections, setup_gpus, teardown),
	    cmocka_unit_test_setup_teardown(test_gpu_release_every_end, setup_gpus, teardown),
	    cmocka_unit_test_setup_teardown(test_gpu_reregister_keeps_holds, setup_gpus, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
