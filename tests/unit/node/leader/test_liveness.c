/*
 * test_liveness.c - the leader's down/up decisions (node/leader/liveness.h)
 * alone: nodes registered in a real store by the real state machine, a
 * clock value per check, the commands collected by the callback.
 *
 * Covered: a node silent past node_down_after_ms is declared down (with
 * the silence in the reason), one heard from in time is not; no second
 * decision while one is in flight, and one again once it ended without
 * effect; a down node that heartbeats again is declared up; a new leader
 * gives every node a fresh grace period (and knows nobody's last
 * heartbeat); a draining node past its drain deadline gets its attempts
 * requeued.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/leader/liveness.h"
#include "tests/lib/smtest.h"

#define DOWN_AFTER_MS 3000
#define HEARTBEAT_MS  500
#define MAX_CMDS      16

struct fx {
	struct smt t;
	struct liveness *l;
	struct cmd cmds[MAX_CMDS];
	char reasons[MAX_CMDS][96];
	bool *pending[MAX_CMDS];
	unsigned ncmds;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	smt_open(&f->t);
	assert_int_equal(liveness_new(&f->l), 0);
	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 2, NULL, NULL);
	smt_node_with(&f->t, 2, 2, NULL, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	liveness_free(f->l);
	smt_close(&f->t);
	free(f);
	return 0;
}

static int collect(void *data, const struct cmd *c, bool *pending)
{
	struct fx *f = data;
	assert_true(f->ncmds < MAX_CMDS);
	f->cmds[f->ncmds] = *c;
	if (c->type == CMD_NODE_DOWN)
		snprintf(f->reasons[f->ncmds], sizeof(f->reasons[0]), "%.*s",
		         ING_STR_FMT(c->u.node_down.reason));
	f->pending[f->ncmds] = pending;
	f->ncmds++;
	return 0;
}

/* One check at now_ms; returns how many commands it proposed. */
static unsigned check_at(struct fx *f, uint64_t now_ms)
{
	struct store_txn *t;
	struct liveness_env env = {now_ms, DOWN_AFTER_MS, HEARTBEAT_MS, collect, f};
	f->ncmds = 0;
	assert_int_equal(store_read_begin(f->t.store, &t), 0);
	liveness_check(f->l, t, &env);
	store_abort(t);
	return f->ncmds;
}

/* The proposals ended (applied or not), as node/propose.h would report. */
static void end_proposals(struct fx *f)
{
	for (unsigned i = 0; i < f->ncmds; i++)
		if (f->pending[i] != NULL)
			*f->pending[i] = false;
}

static void apply(struct fx *f, uint32_t type, uint64_t node)
{
	struct cmd c = smt_cmd(&f->t, type);
	if (type == CMD_NODE_DOWN) {
		c.u.node_down.node = node;
		c.u.node_down.reason = ing_str_c("test");
	} else {
		c.u.node_up.node = node;
	}
	assert_int_equal(smt_apply(&f->t, &c), 0);
}

static void test_down_after_silence(void **state)
{
	struct fx *f = *state;
	const uint64_t t0 = 5000000;

	liveness_leader(f->l, t0);
	assert_int_equal(check_at(f, t0 + 100), 0);
	liveness_seen(f->l, 1, t0 + 1000);
	/* Exactly down_after is not yet past it. */
	assert_int_equal(check_at(f, t0 + DOWN_AFTER_MS), 0);
	assert_int_equal(check_at(f, t0 + DOWN_AFTER_MS + 1), 1);
	assert_int_equal(f->cmds[0].type, CMD_NODE_DOWN);
	assert_int_equal(f->cmds[0].u.node_down.node, 2);
	assert_string_equal(f->reasons[0], "no heartbeat for 3001 ms");
	bool *pending = f->pending[0];
	assert_non_null(pending);
	assert_true(*pending);
	/* In flight: no second decision about node 2. */
	assert_int_equal(check_at(f, t0 + DOWN_AFTER_MS + 500), 0);
	/* It ended and the store still says up (refused, or leadership lost
	 * in between): decided again. */
	*pending = false;
	assert_int_equal(check_at(f, t0 + DOWN_AFTER_MS + 600), 1);
	assert_int_equal(f->cmds[0].u.node_down.node, 2);
	end_proposals(f);
	/* Applied: node 2 is down, nothing more about it while silent. */
	apply(f, CMD_NODE_DOWN, 2);
	assert_int_equal(check_at(f, t0 + DOWN_AFTER_MS + 700), 0);
	/* Node 1, last heard at t0 + 1000, goes down later. */
	assert_int_equal(check_at(f, t0 + 1000 + DOWN_AFTER_MS + 1), 1);
	assert_int_equal(f->cmds[0].u.node_down.node, 1);
}

static void test_up_when_heard_again(void **state)
{
	struct fx *f = *state;
	const uint64_t t0 = 5000000;

	liveness_leader(f->l, t0);
	apply(f, CMD_NODE_DOWN, 1);
	liveness_seen(f->l, 2, t0 + 5000);
	/* Node 1 down and silent: nothing; node 2 heard: fine. */
	assert_int_equal(check_at(f, t0 + 5000), 0);
	/* Node 1 heartbeats: up within two heartbeat intervals of it. */
	liveness_seen(f->l, 1, t0 + 6000);
	liveness_seen(f->l, 2, t0 + 6000);
	assert_int_equal(check_at(f, t0 + 6000 + 2 * HEARTBEAT_MS - 1), 1);
	assert_int_equal(f->cmds[0].type, CMD_NODE_UP);
	assert_int_equal(f->cmds[0].u.node_up.node, 1);
	end_proposals(f);
	/* Too long ago to count as heartbeating again. */
	assert_int_equal(check_at(f, t0 + 6000 + 2 * HEARTBEAT_MS), 0);
}

static void test_grace_under_new_leader(void **state)
{
	struct fx *f = *state;
	const uint64_t t0 = 5000000, t1 = t0 + 60000;

	liveness_leader(f->l, t0);
	/* liveness_seen says when this leader heard the node before: never. */
	assert_int_equal(liveness_seen(f->l, 1, t0 + 10), 0);
	assert_int_equal(liveness_last_ms(f->l, 1), t0 + 10);
	assert_int_equal(liveness_last_ms(f->l, 2), 0);
	assert_int_equal(liveness_seen(f->l, 1, t0 + 20), t0 + 10);
	assert_int_equal(liveness_last_ms(f->l, 1), t0 + 20);
	/* Silent for a minute, but a new leader counts from when it became
	 * ready, and knows nobody's last heartbeat. */
	liveness_leader(f->l, t1);
	assert_int_equal(liveness_last_ms(f->l, 1), 0);
	assert_int_equal(liveness_seen(f->l, 1, t1 + 1), 0);
	liveness_leader(f->l, t1);
	assert_int_equal(check_at(f, t1 + DOWN_AFTER_MS), 0);
	assert_int_equal(check_at(f, t1 + DOWN_AFTER_MS + 1), 2);
	assert_int_equal(f->cmds[0].type, CMD_NODE_DOWN);
	assert_int_equal(f->cmds[1].type, CMD_NODE_DOWN);
	/* Becoming leader again clears decisions in flight. */
	liveness_leader(f->l, t1 + 10000);
	assert_int_equal(check_at(f, t1 + 10000 + DOWN_AFTER_MS + 1), 2);
}

static void test_drain_deadline_requeues(void **state)
{
	struct fx *f = *state;
	const uint64_t t0 = 5000000;

	uint64_t j = smt_submit_as(&f->t, "t", "default", 50, 0);
	struct cmd a = smt_cmd(&f->t, CMD_JOB_ASSIGN);
	a.u.job_assign.job = j;
	a.u.job_assign.node = 1;
	a.u.job_assign.attempt = 1;
	a.u.job_assign.lease_until_ms = a.time_ms + 600000;
	assert_int_equal(smt_apply(&f->t, &a), 0);
	struct cmd d = smt_cmd(&f->t, CMD_NODE_DRAIN);
	d.u.node_drain.node = 1;
	d.u.node_drain.draining = true;
	d.u.node_drain.deadline_ms = t0 + 2000;
	assert_int_equal(smt_apply(&f->t, &d), 0);
	liveness_leader(f->l, t0);
	liveness_seen(f->l, 1, t0 + 1500);
	liveness_seen(f->l, 2, t0 + 1500);
	assert_int_equal(check_at(f, t0 + 1999), 0);
	assert_int_equal(check_at(f, t0 + 2000), 1);
	assert_int_equal(f->cmds[0].type, CMD_JOB_REQUEUE);
	assert_int_equal(f->cmds[0].u.job_requeue.job, j);
	assert_int_equal(f->cmds[0].u.job_requeue.attempt, 1);
	assert_null(f->pending[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_down_after_silence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_up_when_heard_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_grace_under_new_leader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain_deadline_requeues, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
