/*
 * test_deadline.c - the leader's deadline tracking (node/leader/deadline.h)
 * alone: jobs with deadlines in a real store built by the real state
 * machine, a clock value per call, expires collected by the callback.
 *
 * Covered: a new leader rebuilds from the queue and the assignments (final
 * jobs and jobs without a deadline left out) and ignores notes until then;
 * due jobs are expired earliest first, none early; a refused expire goes
 * back and ends the call; at most DEADLINES_BATCH per call; with more than
 * DEADLINES_CAP deadlines the earliest are kept, and a dropped one falling
 * due makes a rebuild due, at most every DEADLINES_RESCAN_MS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/leader/deadline.h"
#include "tests/lib/smtest.h"

#define MAX_EXPIRED (DEADLINES_CAP + 64)

struct fx {
	struct smt t;
	struct deadlines *d;
	uint64_t expired[MAX_EXPIRED];
	unsigned nexpired;
	unsigned refuse_after; /* refuse every expire after this many (0: never) */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	smt_open(&f->t);
	assert_int_equal(deadlines_new(&f->d), 0);
	smt_target_with(&f->t, "t", NULL, NULL);
	smt_node_with(&f->t, 1, 4, NULL, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	deadlines_free(f->d);
	smt_close(&f->t);
	free(f);
	return 0;
}

static int collect(void *data, uint64_t job, uint64_t at)
{
	struct fx *f = data;
	(void)at;
	if (f->refuse_after != 0 && f->nexpired >= f->refuse_after)
		return ING_ENOTLEADER;
	assert_true(f->nexpired < MAX_EXPIRED);
	f->expired[f->nexpired++] = job;
	return 0;
}

static unsigned expire_at(struct fx *f, uint64_t now_ms)
{
	f->nexpired = 0;
	deadlines_expire(f->d, now_ms, collect, f);
	return f->nexpired;
}

static void rebuild(struct fx *f, uint64_t now_ms)
{
	struct store_txn *t;
	assert_int_equal(store_read_begin(f->t.store, &t), 0);
	deadlines_rebuild(f->d, t, now_ms);
	store_abort(t);
}

static void test_rebuild_and_expire_in_order(void **state)
{
	struct fx *f = *state;
	uint64_t base = f->t.time_ms + 100000;

	uint64_t late = smt_submit_as(&f->t, "t", "default", 50, base + 3000);
	uint64_t none = smt_submit_as(&f->t, "t", "default", 50, 0);
	uint64_t early = smt_submit_as(&f->t, "t", "default", 50, base + 1000);
	uint64_t running = smt_submit_as(&f->t, "t", "default", 50, base + 2000);
	uint64_t done = smt_submit_as(&f->t, "t", "default", 50, base + 500);
	(void)none;
	/* `running` is assigned (the assignments table), `done` cancelled
	 * while queued (final: no deadline to enforce). */
	struct cmd a = smt_cmd(&f->t, CMD_JOB_ASSIGN);
	a.u.job_assign.job = running;
	a.u.job_assign.node = 1;
	a.u.job_assign.attempt = 1;
	a.u.job_assign.lease_until_ms = a.time_ms + 600000;
	assert_int_equal(smt_apply(&f->t, &a), 0);
	struct cmd c = smt_cmd(&f->t, CMD_JOB_CANCEL);
	c.u.job_cancel.job = done;
	c.u.job_cancel.reason = ing_str_c("test");
	assert_int_equal(smt_apply(&f->t, &c), 0);

	deadlines_leader(f->d);
	assert_true(deadlines_rebuild_due(f->d, base));
	deadlines_note(f->d, 999, base); /* ignored: the rebuild will see the store */
	rebuild(f, base);
	assert_false(deadlines_rebuild_due(f->d, base));
	assert_int_equal(expire_at(f, base + 999), 0);
	assert_int_equal(expire_at(f, base + 2500), 2);
	assert_int_equal(f->expired[0], early);
	assert_int_equal(f->expired[1], running);
	assert_int_equal(expire_at(f, base + 2999), 0);
	assert_int_equal(expire_at(f, base + 10000), 1);
	assert_int_equal(f->expired[0], late);
	assert_int_equal(expire_at(f, base + 20000), 0);
	/* After the rebuild, notes count. */
	deadlines_note(f->d, 77, base + 30000);
	deadlines_note(f->d, 78, 0); /* no deadline: nothing */
	assert_int_equal(expire_at(f, base + 30000), 1);
	assert_int_equal(f->expired[0], 77);
}

static void test_refused_goes_back(void **state)
{
	struct fx *f = *state;

	deadlines_leader(f->d);
	rebuild(f, 1000);
	deadlines_note(f->d, 1, 100);
	deadlines_note(f->d, 2, 200);
	deadlines_note(f->d, 3, 300);
	f->refuse_after = 1;
	assert_int_equal(expire_at(f, 1000), 1);
	assert_int_equal(f->expired[0], 1);
	/* Job 2 was refused and put back; job 3 was not tried. */
	f->refuse_after = 0;
	assert_int_equal(expire_at(f, 1000), 2);
	assert_int_equal(f->expired[0], 2);
	assert_int_equal(f->expired[1], 3);
}

static void test_batch_bound(void **state)
{
	struct fx *f = *state;

	deadlines_leader(f->d);
	rebuild(f, 0);
	for (unsigned i = 0; i < DEADLINES_BATCH + 10; i++)
		deadlines_note(f->d, 1000 + i, 10 + i);
	assert_int_equal(expire_at(f, 100000), DEADLINES_BATCH);
	assert_int_equal(f->expired[0], 1000);
	assert_int_equal(expire_at(f, 100000), 10);
	assert_int_equal(f->expired[0], 1000 + DEADLINES_BATCH);
}

static void test_cap_keeps_earliest_and_rescans(void **state)
{
	struct fx *f = *state;
	const uint64_t scan = 895000;

	deadlines_leader(f->d);
	rebuild(f, scan);
	/* DEADLINES_CAP + 5 deadlines, the 5 latest arriving first. */
	for (unsigned i = 0; i < 5; i++)
		deadlines_note(f->d, 900000 + i, 900000 + i);
	for (unsigned i = 0; i < DEADLINES_CAP; i++)
		deadlines_note(f->d, 10000 + i, 10000 + i);
	/* Dropped deadlines: a rebuild is due once the earliest of them
	 * (900000) passed and DEADLINES_RESCAN_MS went by since the scan. */
	assert_false(deadlines_rebuild_due(f->d, 899999));
	assert_false(deadlines_rebuild_due(f->d, scan + DEADLINES_RESCAN_MS - 1));
	assert_true(deadlines_rebuild_due(f->d, scan + DEADLINES_RESCAN_MS));
	/* What is kept is the DEADLINES_CAP earliest, expired in order. */
	unsigned total = 0;
	uint64_t last = 0;
	while (expire_at(f, 2000000) > 0) {
		for (unsigned i = 0; i < f->nexpired; i++) {
			assert_true(f->expired[i] > last);
			assert_true(f->expired[i] < 900000);
			last = f->expired[i];
		}
		total += f->nexpired;
	}
	assert_int_equal(total, DEADLINES_CAP);
	/* A rebuild (nothing in this store) clears the dropped mark. */
	rebuild(f, 2000000);
	assert_false(deadlines_rebuild_due(f->d, 3000000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rebuild_and_expire_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_goes_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cap_keeps_earliest_and_rescans, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
