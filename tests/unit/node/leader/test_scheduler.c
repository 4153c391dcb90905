/*
 * test_scheduler.c - the leader's placement (node/leader/scheduler.h) alone:
 * a real store built by the real state machine (tests/lib/smtest.h), one
 * read transaction and a clock value per round, assignments collected by
 * the callback and then applied as the log would, so the next round sees
 * them.
 *
 * Covered: a full pass takes higher priority first and the oldest first
 * within a priority; the tenants of a priority take turns, and the turn
 * goes on after the tenant served last across rounds; capabilities and
 * labels decide which node fits, the node with the most free slots wins;
 * slots bound the placements; down and draining nodes get nothing; the
 * waiting reason of every kind; a job whose attempt was lost waits its
 * backoff and the round that follows its end places it; new jobs go in
 * submit order without a full pass; rounds while assignments are in
 * flight (a job being assigned takes no room from the next of its group);
 * the slot of an attempt whose end is being proposed counts as free (not
 * twice once the end applied, not for an attempt holding GPUs); the unplaceable counts by reason
 * (sched_unplaceable, for the metrics) of the jobs still queued, and the queued time handed to the
 * assign callback; a full pass skips a target nothing can run whole (its
 * queued jobs cost it nothing, they get their target's reason and are all
 * counted) and reads about as many entries as it can place; priorities
 * across targets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/leader/scheduler.h"
#include "tests/lib/smtest.h"

#define MAX_ASSIGNED 64

struct fx {
	struct smt t;
	struct sched *s;
	uint64_t now_ms;
	unsigned backoff_ms;
	/* the last round's assignments, in the order they were made */
	struct cmd assigned[MAX_ASSIGNED];
	uint64_t queued_ms[MAX_ASSIGNED]; /* what the callback was told */
	unsigned nassigned;
	bool refuse; /* the callback refuses every proposal */
	/* When the leader last heard each node (index: node id; 0: never);
	 * used only with `liveness` set. */
	bool liveness;
	uint64_t heard_ms[8];
	unsigned ahead, ahead_max_ms; /* sched_env's */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	smt_open(&f->t);
	assert_int_equal(sched_new(&f->s), 0);
	f->now_ms = f->t.time_ms + 1000000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sched_free(f->s);
	smt_close(&f->t);
	free(f);
	return 0;
}

static int collect(void *data, const struct cmd *c, uint64_t queued_ms)
{
	struct fx *f = data;
	if (f->refuse)
		return ING_ENOTLEADER;
	assert_true(f->nassigned < MAX_ASSIGNED);
	assert_int_equal(c->type, CMD_JOB_ASSIGN);
	f->queued_ms[f->nassigned] = queued_ms;
	f->assigned[f->nassigned++] = *c;
	return 0;
}

/* sched_unplaceable over the store as it is now, as "reason=count ..." of
 * the non-zero counts. */
static const char *unplaceable(struct fx *f)
{
	static char out[160];
	unsigned counts[PLACE_WAIT_COUNT];
	struct store_txn *t;
	size_t len = 0;
	assert_int_equal(store_read_begin(f->t.store, &t), 0);
	sched_unplaceable(f->s, t, counts);
	store_abort(t);
	out[0] = '\0';
	for (int i = 0; i < PLACE_WAIT_COUNT; i++)
		if (counts[i] > 0)
			len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s=%u",
			                        len ? " " : "", place_wait_name(i), counts[i]);
	return out;
}

static uint64_t heard(void *data, uint64_t id)
{
	struct fx *f = data;
	return id < 8 ? f->heard_ms[id] : 0;
}

/* One round over the store as it is now; returns how many it assigned. */
static unsigned round_now(struct fx *f)
{
	struct store_txn *t;
	struct sched_env env = {f->now_ms, f->backoff_ms, collect, f};
	env.ahead = f->ahead;
	env.ahead_max_ms = f->ahead_max_ms;
	if (f->liveness) {
		env.heard = heard;
		env.silent_after_ms = 5000;
	}
	f->nassigned = 0;
	assert_int_equal(store_read_begin(f->t.store, &t), 0);
	sched_round(f->s, t, &env);
	store_abort(t);
	return f->nassigned;
}

/* Applies the last round's assignments (as the log would) and tells the
 * scheduler they are done; every one must be accepted. */
static void apply_assigned(struct fx *f)
{
	for (unsigned i = 0; i < f->nassigned; i++) {
		struct cmd c = smt_cmd(&f->t, CMD_JOB_ASSIGN);
		c.u.job_assign = f->assigned[i].u.job_assign;
		c.u.job_assign.lease_until_ms = c.time_ms + 60000;
		assert_int_equal(smt_apply(&f->t, &c), 0);
		sched_note(f->s, CMD_JOB_ASSIGN, 0, false);
		sched_assign_done(f->s, c.u.job_assign.job, false);
	}
}

/* Submits a job and tells the scheduler, as the apply path does. */
static uint64_t submit(struct fx *f, const char *target, const char *tenant, uint32_t priority)
{
	uint64_t id = smt_submit_as(&f->t, target, tenant, priority, 0);
	sched_note(f->s, CMD_JOB_SUBMIT, id, false);
	return id;
}

static void test_priority_then_oldest_first(void **state)
{
	struct fx *f = *state;
	uint64_t j[6];

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 10, NULL, NULL);
	j[0] = smt_submit_as(&f->t, "t", "default", 10, 0);
	j[1] = smt_submit_as(&f->t, "t", "default", 10, 0);
	j[2] = smt_submit_as(&f->t, "t", "default", 90, 0);
	j[3] = smt_submit_as(&f->t, "t", "default", 90, 0);
	j[4] = smt_submit_as(&f->t, "t", "default", 50, 0);
	j[5] = smt_submit_as(&f->t, "t", "default", 100, 0);
	sched_leader(f->s); /* a new leader: a full pass over the queue */
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 6);
	const uint64_t want[] = {j[5], j[2], j[3], j[4], j[0], j[1]};
	for (unsigned i = 0; i < 6; i++) {
		assert_int_equal(f->assigned[i].u.job_assign.job, want[i]);
		assert_int_equal(f->assigned[i].u.job_assign.node, 1);
		assert_int_equal(f->assigned[i].u.job_assign.attempt, 1);
		assert_int_equal(f->assigned[i].u.job_assign.lease_until_ms, f->now_ms + 60000);
		assert_true(f->assigned[i].u.job_assign.start);
	}
	/* In flight: no round until they are done, and then none is due. */
	assert_false(sched_due(f->s, f->now_ms));
	apply_assigned(f);
	assert_false(sched_due(f->s, f->now_ms));
}

static void test_tenants_take_turns(void **state)
{
	struct fx *f = *state;
	uint64_t a[3], b[2];

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 5, NULL, NULL);
	for (int i = 0; i < 3; i++)
		a[i] = smt_submit_as(&f->t, "t", "alpha", 50, 0);
	for (int i = 0; i < 2; i++)
		b[i] = smt_submit_as(&f->t, "t", "beta", 50, 0);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 5);
	const uint64_t want[] = {a[0], b[0], a[1], b[1], a[2]};
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(f->assigned[i].u.job_assign.job, want[i]);
}

static void test_turn_goes_on_across_rounds(void **state)
{
	struct fx *f = *state;
	uint64_t a1, b1;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 1, NULL, NULL);
	a1 = smt_submit_as(&f->t, "t", "alpha", 50, 0);
	smt_submit_as(&f->t, "t", "alpha", 50, 0);
	b1 = smt_submit_as(&f->t, "t", "beta", 50, 0);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, a1);
	apply_assigned(f);
	/* Capacity grows by one slot: the turn is beta's, not alpha's again. */
	smt_node_with(&f->t, 2, 1, NULL, NULL);
	sched_note(f->s, CMD_NODE_REGISTER, 0, false);
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, b1);
	assert_int_equal(f->assigned[0].u.job_assign.node, 2);
}

static void test_capabilities_labels_and_most_free(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "cuda", "nvcc", "arch=x86_64");
	smt_target_with(&f->t, "any", NULL, NULL);
	smt_node_with(&f->t, 1, 8, "cc", "arch=x86_64");
	smt_node_with(&f->t, 2, 8, "cc,nvcc", "arch=aarch64");
	smt_node_with(&f->t, 3, 2, "cc,nvcc", "arch=x86_64,site=lab");
	uint64_t gpu = submit(f, "cuda", "default", 50);
	uint64_t plain = submit(f, "any", "default", 50);
	assert_int_equal(round_now(f), 2);
	/* Only node 3 has both the capability and the label. */
	assert_int_equal(f->assigned[0].u.job_assign.job, gpu);
	assert_int_equal(f->assigned[0].u.job_assign.node, 3);
	/* Anything fits anywhere: the node with the most free slots (node 1
	 * first among the two with 8). */
	assert_int_equal(f->assigned[1].u.job_assign.job, plain);
	assert_int_equal(f->assigned[1].u.job_assign.node, 1);
	apply_assigned(f);
	/* Node 3 now has 1 free slot, node 1 has 7, node 2 8: the next goes to 2. */
	submit(f, "any", "default", 50);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.node, 2);
}

static void test_slots_bound_and_busy_reason(void **state)
{
	struct fx *f = *state;
	uint64_t j[4];

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 2, NULL, NULL);
	for (int i = 0; i < 4; i++)
		j[i] = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 2);
	assert_int_equal(f->assigned[0].u.job_assign.job, j[0]);
	assert_int_equal(f->assigned[1].u.job_assign.job, j[1]);
	assert_null(sched_reason(f->s, j[0], ing_str_c("t")));
	assert_string_equal(sched_reason(f->s, j[2], ing_str_c("t")),
	                    "all 1 nodes that can run target 't' are busy");
	assert_string_equal(sched_reason(f->s, j[3], ing_str_c("t")),
	                    "all 1 nodes that can run target 't' are busy");
	/* The metric's view: two queued jobs wait for a slot; the callback
	 * heard when each placed job was queued (its submit). */
	assert_string_equal(unplaceable(f), "busy=2");
	for (unsigned i = 0; i < 2; i++)
		assert_true(f->queued_ms[i] > 0 && f->queued_ms[i] <= f->t.time_ms);
	apply_assigned(f);
	/* No free slot anywhere: a full pass places nothing and ends. */
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	assert_false(sched_due(f->s, f->now_ms));
}

static void test_down_and_draining_nodes_get_nothing(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 4, NULL, NULL);
	smt_node_with(&f->t, 2, 4, NULL, NULL);
	struct cmd down = smt_cmd(&f->t, CMD_NODE_DOWN);
	down.u.node_down.node = 1;
	down.u.node_down.reason = ing_str_c("test");
	assert_int_equal(smt_apply(&f->t, &down), 0);
	struct cmd drain = smt_cmd(&f->t, CMD_NODE_DRAIN);
	drain.u.node_drain.node = 2;
	drain.u.node_drain.draining = true;
	assert_int_equal(smt_apply(&f->t, &drain), 0);
	uint64_t j = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 0);
	assert_string_equal(sched_reason(f->s, j, ing_str_c("t")),
	                    "no live, non-draining node (2 registered: 1 down, 1 draining)");
	assert_string_equal(unplaceable(f), "no_live_node=1");
	/* Node 2 undrained: the capacity change makes a full pass due. */
	drain = smt_cmd(&f->t, CMD_NODE_DRAIN);
	drain.u.node_drain.node = 2;
	assert_int_equal(smt_apply(&f->t, &drain), 0);
	sched_note(f->s, CMD_NODE_DRAIN, 0, false);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.node, 2);
	assert_null(sched_reason(f->s, j, ing_str_c("t")));
	assert_string_equal(unplaceable(f), "");
}

/* Only nodes the leader heard within silent_after_ms get work (issue 11
 * item 4); a node heard for the first time makes a full pass due. */
static void test_unheard_nodes_get_nothing(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 4, NULL, NULL);
	smt_node_with(&f->t, 2, 1, NULL, NULL);
	f->liveness = true;
	f->heard_ms[2] = f->now_ms - 100;
	/* Node 1 has the most free slots but was never heard: node 2 gets the
	 * first job, nobody the second. */
	uint64_t a = submit(f, "t", "default", 50), b = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, a);
	assert_int_equal(f->assigned[0].u.job_assign.node, 2);
	apply_assigned(f);
	assert_string_equal(sched_reason(f->s, b, ing_str_c("t")),
	                    "all 1 nodes that can run target 't' are busy");
	/* Heard long ago counts as not heard. */
	f->heard_ms[1] = f->now_ms - 5001;
	sched_node_heard(f->s);
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 0);
	/* Heard now: the next pass places the job there. */
	f->heard_ms[1] = f->now_ms - 10;
	sched_node_heard(f->s);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, b);
	assert_int_equal(f->assigned[0].u.job_assign.node, 1);
	/* Nobody heard at all: the reason says so. */
	apply_assigned(f);
	f->heard_ms[1] = f->heard_ms[2] = 0;
	uint64_t c = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 0);
	assert_string_equal(sched_reason(f->s, c, ing_str_c("t")),
	                    "no live, non-draining node (2 registered: 0 down, 0 draining, 2 not "
	                    "heard from by this leader lately)");
}

static void test_waiting_reasons(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "gpu", "nvcc", NULL);
	smt_target_with(&f->t, "riscv", NULL, "arch=riscv64");
	smt_target_with(&f->t, "both", "nvcc", "arch=x86_64");
	smt_node_with(&f->t, 1, 4, "cc", "arch=x86_64");
	smt_node_with(&f->t, 2, 4, "nvcc", "arch=aarch64");
	smt_node_with(&f->t, 3, 4, "cc", "arch=aarch64");
	struct cmd down = smt_cmd(&f->t, CMD_NODE_DOWN);
	down.u.node_down.node = 2;
	down.u.node_down.reason = ing_str_c("test");
	assert_int_equal(smt_apply(&f->t, &down), 0);
	uint64_t gpu = submit(f, "gpu", "default", 50);
	uint64_t riscv = submit(f, "riscv", "default", 50);
	assert_int_equal(round_now(f), 0);
	/* Node 2 has nvcc, but it is down. */
	assert_string_equal(sched_reason(f->s, gpu, ing_str_c("gpu")),
	                    "no live, non-draining node has capability 'nvcc' (target 'gpu')");
	assert_string_equal(sched_reason(f->s, riscv, ing_str_c("riscv")),
	                    "no live, non-draining node has label arch=riscv64 (target 'riscv')");
	assert_string_equal(unplaceable(f), "no_matching_node=2");
	/* Node 2 back: nvcc on an aarch64 node, x86_64 without nvcc. */
	struct cmd up = smt_cmd(&f->t, CMD_NODE_UP);
	up.u.node_up.node = 2;
	assert_int_equal(smt_apply(&f->t, &up), 0);
	uint64_t both = submit(f, "both", "default", 50);
	assert_int_equal(round_now(f), 0);
	assert_string_equal(sched_reason(f->s, both, ing_str_c("both")),
	                    "no single live, non-draining node has all the capabilities and labels "
	                    "of target 'both'");
	assert_null(sched_reason(f->s, 12345, ing_str_c("t")));
}

/* New jobs of targets that cannot run, between ones that can, in one
 * round: each gets its own target's reason (a round reuses a target's
 * answer until it places a job), and the runnable ones are placed. */
static void test_reasons_of_new_jobs_in_one_round(void **state)
{
	struct fx *f = *state;
	static const char nvcc[] =
	    "no live, non-draining node has capability 'nvcc' (target 'gpu')";
	static const char riscv[] =
	    "no live, non-draining node has label arch=riscv64 (target 'riscv')";

	smt_target_with(&f->t, "gpu", "nvcc", NULL);
	smt_target_with(&f->t, "riscv", NULL, "arch=riscv64");
	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 1, "cc", "arch=x86_64");
	uint64_t g1 = submit(f, "gpu", "default", 50), r1 = submit(f, "riscv", "default", 50);
	uint64_t g2 = submit(f, "gpu", "default", 50), t1 = submit(f, "t", "default", 50);
	uint64_t g3 = submit(f, "gpu", "default", 50), t2 = submit(f, "t", "default", 50);
	uint64_t r2 = submit(f, "riscv", "default", 50), t3 = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, t1);
	assert_null(sched_reason(f->s, t1, ing_str_c("t")));
	assert_string_equal(sched_reason(f->s, g1, ing_str_c("gpu")), nvcc);
	assert_string_equal(sched_reason(f->s, g2, ing_str_c("gpu")), nvcc);
	assert_string_equal(sched_reason(f->s, g3, ing_str_c("gpu")), nvcc);
	assert_string_equal(sched_reason(f->s, r1, ing_str_c("riscv")), riscv);
	assert_string_equal(sched_reason(f->s, r2, ing_str_c("riscv")), riscv);
	assert_string_equal(sched_reason(f->s, t2, ing_str_c("t")),
	                    "all 1 nodes that can run target 't' are busy");
	assert_string_equal(sched_reason(f->s, t3, ing_str_c("t")),
	                    "all 1 nodes that can run target 't' are busy");
}

static void test_lost_attempt_waits_its_backoff(void **state)
{
	struct fx *f = *state;

	f->backoff_ms = 1000;
	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 1, NULL, NULL);
	uint64_t j = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 1);
	apply_assigned(f);
	/* The attempt is lost (its node went silent, say): requeued. */
	struct cmd rq = smt_cmd(&f->t, CMD_JOB_REQUEUE);
	rq.u.job_requeue.job = j;
	rq.u.job_requeue.attempt = 1;
	rq.u.job_requeue.reason = ing_str_c("lost");
	assert_int_equal(smt_apply(&f->t, &rq), 0);
	uint64_t requeued_at = rq.time_ms;
	sched_note(f->s, CMD_JOB_REQUEUE, 0, false);
	f->now_ms = requeued_at + 10;
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 0);
	assert_string_equal(sched_reason(f->s, j, ing_str_c("t")),
	                    "attempt 1 was lost; the next one waits 1000 ms (retry backoff)");
	assert_string_equal(unplaceable(f), "retry_backoff=1");
	/* Nothing is due until the backoff is over; then a pass places it. */
	assert_false(sched_due(f->s, requeued_at + 999));
	f->now_ms = requeued_at + 1000;
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, j);
	assert_int_equal(f->assigned[0].u.job_assign.attempt, 2);
}

static void test_new_jobs_in_submit_order_without_a_pass(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 8, NULL, NULL);
	/* Queued before this leader knew of them, and no pass due: untouched. */
	uint64_t old = smt_submit_as(&f->t, "t", "default", 100, 0);
	assert_false(sched_due(f->s, f->now_ms));
	uint64_t low = submit(f, "t", "default", 1);
	uint64_t high = submit(f, "t", "default", 99);
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 2);
	assert_int_equal(f->assigned[0].u.job_assign.job, low);
	assert_int_equal(f->assigned[1].u.job_assign.job, high);
	apply_assigned(f);
	assert_null(sched_reason(f->s, old, ing_str_c("t")));
	/* A capacity change brings the old one in. */
	sched_note(f->s, CMD_TARGET_PUT, 0, false);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, old);
}

/* Assignments in flight do not hold a round back: the round counts their
 * slots as taken and does not place their jobs again; once applied, the
 * store says the same. */
static void test_round_while_assignments_in_flight(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 2, NULL, NULL);
	uint64_t a = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 1);
	struct cmd first = f->assigned[0];
	assert_int_equal(first.u.job_assign.job, a);
	/* Not applied yet: two more jobs, one slot left for them. */
	uint64_t b = submit(f, "t", "default", 50);
	uint64_t c = submit(f, "t", "default", 50);
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, b);
	struct cmd second = f->assigned[0];
	/* A full pass with both in flight: nothing (a and b not placed twice). */
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	/* Applied: the store has both slots taken, still nothing for c. */
	f->assigned[0] = first;
	f->assigned[1] = second;
	f->nassigned = 2;
	apply_assigned(f);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	assert_non_null(sched_reason(f->s, c, ing_str_c("t")));
}

/* A job whose assignment is in flight is still in the queue: a full pass
 * that reads it there takes no room for it, so the next job of its
 * (priority, tenant) group gets the free slot, not a lower priority's. */
static void test_in_flight_job_takes_no_room(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 1, NULL, NULL);
	uint64_t high1 = smt_submit_as(&f->t, "t", "default", 90, 0);
	uint64_t high2 = smt_submit_as(&f->t, "t", "default", 90, 0);
	uint64_t low = smt_submit_as(&f->t, "t", "default", 10, 0);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, high1);
	/* high1 not applied yet; the node gets a second slot. */
	smt_node_with(&f->t, 1, 2, NULL, NULL);
	sched_note(f->s, CMD_NODE_REGISTER, 0, false);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, high2);
	assert_non_null(sched_reason(f->s, low, ing_str_c("t")));
}

/* Ends the live attempt of job `job` (failed), as a worker's last report. */
static void end_attempt(struct fx *f, uint64_t job, uint32_t attempt)
{
	struct cmd c = smt_cmd(&f->t, CMD_JOB_FINISH);
	c.u.job_finish.job = job;
	c.u.job_finish.attempt = attempt;
	c.u.job_finish.outcome = REC_JOB_FAILED;
	c.u.job_finish.message = ing_str_c("stage failed");
	assert_int_equal(smt_apply(&f->t, &c), 0);
	assert_int_equal(f->t.res.err.code, 0);
	sched_note(f->s, CMD_JOB_FINISH, 0, true);
}

/* The end of a live attempt being proposed (sched_releasing) frees its
 * slot for the rounds at once: the next job's assignment follows it in the
 * log.  Once the end applied, the store counts the slot and the entry is
 * dropped (no slot counted twice); a settled entry counts no more; an
 * attempt holding GPUs frees nothing before its end applies. */
static void test_releasing_slot_counts_as_free(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 1, NULL, NULL);
	uint64_t a = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 1);
	apply_assigned(f);
	uint64_t b = submit(f, "t", "default", 50);
	uint64_t c = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 0); /* the one slot is a's */

	sched_releasing(f->s, a, 1, UINT64_MAX);
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, b);
	assert_int_equal(f->assigned[0].u.job_assign.node, 1);
	struct cmd to_b = f->assigned[0];
	/* In the log: a's end, then b's assignment, accepted. */
	end_attempt(f, a, 1);
	f->assigned[0] = to_b;
	f->nassigned = 1;
	apply_assigned(f);
	/* a's entry is still there (not settled yet) but a is no longer
	 * live: the round drops it and counts nothing for it. */
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	assert_non_null(sched_reason(f->s, c, ing_str_c("t")));
	/* Settled: counts no more either. */
	sched_releasing(f->s, b, 1, UINT64_MAX);
	sched_release_settled(f->s, b, 1);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	/* An assignment the state machine refused makes a full pass due. */
	assert_false(sched_due(f->s, f->now_ms));
	sched_assign_done(f->s, c, true);
	assert_true(sched_due(f->s, f->now_ms));
}

/* Assignments ahead of a free slot: only for a target whose attempts this
 * leader saw end within ahead_max_ms (the run time of the last stage plus
 * the stages done before it), and only once no fitting node has a free
 * slot; the node then holds at most slots + ahead attempts.  A target
 * whose attempts run long, one not seen yet, or one replaced since, waits
 * for a slot. */
static void test_ahead_for_short_targets(void **state)
{
	struct fx *f = *state;

	f->ahead = 2;
	f->ahead_max_ms = 250;
	smt_target_with(&f->t, "t", NULL, NULL);
	smt_target_with(&f->t, "long", NULL, NULL);
	smt_node_with(&f->t, 1, 1, NULL, NULL);
	uint64_t a = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.ahead, 0);
	apply_assigned(f);
	uint64_t b = submit(f, "t", "default", 50);
	uint64_t c = submit(f, "t", "default", 50);
	uint64_t d = submit(f, "t", "default", 50);
	uint64_t l = submit(f, "long", "default", 50);
	assert_int_equal(round_now(f), 0); /* how long t runs is not known yet */

	/* a's end, its stage ran 5 ms: b takes the slot, c and d the places
	 * ahead; the long target's job waits */
	sched_releasing(f->s, a, 1, 5);
	assert_int_equal(round_now(f), 3);
	assert_int_equal(f->assigned[0].u.job_assign.job, b);
	assert_int_equal(f->assigned[0].u.job_assign.ahead, 0);
	assert_int_equal(f->assigned[1].u.job_assign.job, c);
	assert_int_equal(f->assigned[1].u.job_assign.ahead, 2);
	assert_int_equal(f->assigned[2].u.job_assign.job, d);
	assert_int_equal(f->assigned[2].u.job_assign.ahead, 2);
	struct cmd made[3] = {f->assigned[0], f->assigned[1], f->assigned[2]};
	end_attempt(f, a, 1);
	memcpy(f->assigned, made, sizeof(made));
	f->nassigned = 3;
	apply_assigned(f); /* the state machine takes all three */
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0); /* 1 slot + 2 ahead, all held */
	assert_non_null(sched_reason(f->s, l, ing_str_c("long")));

	/* t's jobs end; long's job takes the slot (nothing is known of long,
	 * so nothing of it goes ahead) */
	end_attempt(f, b, 1);
	end_attempt(f, c, 1);
	end_attempt(f, d, 1);
	uint64_t l2 = submit(f, "long", "default", 50);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, l);
	assert_int_equal(f->assigned[0].u.job_assign.ahead, 0);
	apply_assigned(f);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	/* its end (1 s): l2 takes the slot; long is now known to run long,
	 * so l3 waits for a slot though both places ahead are free */
	sched_releasing(f->s, l, 1, 1000);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, l2);
	assert_int_equal(f->assigned[0].u.job_assign.ahead, 0);
	struct cmd to_l2 = f->assigned[0];
	end_attempt(f, l, 1);
	f->assigned[0] = to_l2;
	f->nassigned = 1;
	apply_assigned(f);
	uint64_t l3 = submit(f, "long", "default", 50);
	assert_int_equal(round_now(f), 0);
	assert_non_null(sched_reason(f->s, l3, ing_str_c("long")));
	/* while t's jobs still go ahead */
	uint64_t e = submit(f, "t", "default", 50);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, e);
	assert_int_equal(f->assigned[0].u.job_assign.ahead, 2);
	sched_assign_done(f->s, e, true); /* refused, say: e stays queued */

	/* t replaced (a new revision may run for much longer): its jobs wait
	 * for a slot until an attempt of it ends again */
	smt_target_with(&f->t, "t", NULL, NULL);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	assert_non_null(sched_reason(f->s, e, ing_str_c("t")));

	/* with ahead 0 nothing goes beyond the slots */
	f->ahead = 0;
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	assert_non_null(sched_reason(f->s, e, ing_str_c("t")));
}

static void test_releasing_gpu_attempt_frees_nothing(void **state)
{
	struct fx *f = *state;

	static const uint32_t gpus[] = {0, 1};
	smt_gpu_target(&f->t, "g", 1, 1, 1);
	smt_gpu_node(&f->t, 1, 1, 2, gpus); /* the slot binds, not the GPUs */
	uint64_t a = submit(f, "g", "default", 50);
	assert_int_equal(round_now(f), 1);
	apply_assigned(f);
	submit(f, "g", "default", 50);
	sched_releasing(f->s, a, 1, UINT64_MAX);
	assert_int_equal(round_now(f), 0);
}

static void test_refused_proposal_leaves_job_queued(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 1, NULL, NULL);
	uint64_t j = submit(f, "t", "default", 50);
	f->refuse = true;
	assert_int_equal(round_now(f), 0);
	/* Not in flight: the next capacity change places it. */
	f->refuse = false;
	sched_leader(f->s);
	assert_true(sched_due(f->s, f->now_ms));
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, j);
}

static void test_unplaceable_target_is_skipped_whole(void **state)
{
	struct fx *f = *state;
	uint64_t never[2000], run[20];

	smt_target_with(&f->t, "never", "no-such-tool", NULL);
	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 3, NULL, NULL);
	/* Queued ahead of the runnable ones, same priority and tenant. */
	for (unsigned i = 0; i < 2000; i++)
		never[i] = smt_submit_as(&f->t, "never", "default", 50, 0);
	for (unsigned i = 0; i < 20; i++)
		run[i] = smt_submit_as(&f->t, "t", "default", 50, 0);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(f->assigned[i].u.job_assign.job, run[i]);
	/* It read the entries it placed: none of the 2,000 it cannot. */
	assert_int_equal(sched_last_scanned(f->s), 3);
	assert_string_equal(sched_reason(f->s, never[1234], ing_str_c("never")),
	                    "no live, non-draining node has capability 'no-such-tool' (target "
	                    "'never')");
	/* Every one of them counted, and the runnable jobs (the 3 placed are
	 * queued in the store until their assignments apply). */
	assert_string_equal(unplaceable(f), "no_matching_node=2000 busy=20");
	/* The runnable jobs left wait for a slot: their target says so. */
	assert_string_equal(sched_reason(f->s, run[10], ing_str_c("t")),
	                    "all 1 nodes that can run target 't' are busy");
	apply_assigned(f);
	/* A finish frees one slot: the pass reads one entry. */
	struct cmd fin = smt_cmd(&f->t, CMD_JOB_REQUEUE);
	fin.u.job_requeue.job = run[0];
	fin.u.job_requeue.attempt = 1;
	fin.u.job_requeue.reason = ing_str_c("test");
	assert_int_equal(smt_apply(&f->t, &fin), 0);
	sched_note(f->s, CMD_JOB_REQUEUE, 0, false);
	assert_int_equal(round_now(f), 1);
	assert_int_equal(f->assigned[0].u.job_assign.job, run[0]);
	assert_int_equal(f->assigned[0].u.job_assign.attempt, 2);
	assert_int_equal(sched_last_scanned(f->s), 1);
	/* No free slot: nothing read at all. */
	apply_assigned(f);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 0);
	assert_int_equal(sched_last_scanned(f->s), 0);
}

static void test_priority_across_targets(void **state)
{
	struct fx *f = *state;

	smt_target_with(&f->t, "a", NULL, NULL);
	smt_target_with(&f->t, "b", NULL, NULL);
	smt_node_with(&f->t, 1, 3, NULL, NULL);
	uint64_t a_low = smt_submit_as(&f->t, "a", "default", 10, 0);
	uint64_t b_high = smt_submit_as(&f->t, "b", "default", 90, 0);
	uint64_t a_mid = smt_submit_as(&f->t, "a", "default", 50, 0);
	uint64_t b_low = smt_submit_as(&f->t, "b", "default", 10, 0);
	sched_leader(f->s);
	assert_int_equal(round_now(f), 3);
	assert_int_equal(f->assigned[0].u.job_assign.job, b_high);
	assert_int_equal(f->assigned[1].u.job_assign.job, a_mid);
	assert_int_equal(f->assigned[2].u.job_assign.job, a_low);
	(void)b_low;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_priority_then_oldest_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tenants_take_turns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_turn_goes_on_across_rounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capabilities_labels_and_most_free, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_slots_bound_and_busy_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_down_and_draining_nodes_get_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_reasons_of_new_jobs_in_one_round, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_waiting_reasons, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unheard_nodes_get_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_attempt_waits_its_backoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_jobs_in_submit_order_without_a_pass, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_in_flight_job_takes_no_room, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_releasing_slot_counts_as_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ahead_for_short_targets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_releasing_gpu_attempt_frees_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_round_while_assignments_in_flight, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refused_proposal_leaves_job_queued, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_unplaceable_target_is_skipped_whole, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_priority_across_targets, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
