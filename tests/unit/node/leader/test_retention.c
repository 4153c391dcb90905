/*
 * test_retention.c - the leader's decision of when a retention_run is due
 * (node/leader/retention.h retention_due) over a real store built by the
 * real state machine (tests/lib/smtest.h), with clock values around each
 * edge: the dedupe window since the generation last turned, and the job
 * retention since the oldest finished job ended; both 0 mean never.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/leader/retention.h"
#include "node/sm/sm.h"
#include "tests/lib/smtest.h"

static int setup(void **state)
{
	struct smt *t = calloc(1, sizeof(*t));
	smt_open(t);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct smt *t = *state;
	smt_close(t);
	free(t);
	return 0;
}

static bool due_at(struct smt *t, uint64_t now)
{
	struct store_txn *x;
	bool due = true;
	assert_int_equal(store_read_begin(t->store, &x), 0);
	assert_int_equal(retention_due(x, now, &due), 0);
	store_abort(x);
	return due;
}

static void apply_ok(struct smt *t, const struct cmd *c)
{
	if (smt_apply(t, c) != 0)
		fail_msg("%s: %s", cmd_type_name(c->type), t->res.err.msg);
}

static void set(struct smt *t, const char *name, uint64_t v)
{
	struct cmd c = smt_cmd(t, CMD_SETTING_PUT);
	c.u.setting_put.name = ing_str_c(name);
	c.u.setting_put.value = v;
	apply_ok(t, &c);
}

/* Runs retention at `now` (the command's time). */
static void run_at(struct smt *t, uint64_t now)
{
	t->time_ms = now;
	struct cmd c = smt_cmd(t, CMD_RETENTION_RUN);
	c.u.retention_run.max_jobs = 100;
	apply_ok(t, &c);
}

static void test_dedupe_window(void **state)
{
	struct smt *t = *state;
	uint64_t now = t->time_ms;
	/* Never turned: due at once (the first run starts the first window). */
	assert_true(due_at(t, now));
	run_at(t, now);
	set(t, CMD_SETTING_JOB_RETENTION, 0);
	set(t, CMD_SETTING_DEDUPE_WINDOW, 5000);
	assert_false(due_at(t, now + 4999));
	assert_true(due_at(t, now + 5000));
	run_at(t, now + 5000);
	assert_false(due_at(t, now + 9999));
	set(t, CMD_SETTING_DEDUPE_WINDOW, 0);
	assert_false(due_at(t, now + 1000000000));
}

static void test_job_retention(void **state)
{
	struct smt *t = *state;
	smt_target(t, "cc", 1);
	smt_node(t, 1, 2);
	set(t, CMD_SETTING_DEDUPE_WINDOW, 0);
	set(t, CMD_SETTING_JOB_RETENTION, 60000);
	uint64_t id = smt_submit(t, "cc", 10, 1);
	/* Queued: never due, however old. */
	assert_false(due_at(t, t->time_ms + 10000000));
	struct cmd c = smt_cmd(t, CMD_JOB_CANCEL);
	c.u.job_cancel.job = id;
	c.u.job_cancel.reason = ing_str_c("test");
	apply_ok(t, &c);
	uint64_t ended = c.time_ms;
	assert_false(due_at(t, ended + 59999));
	assert_true(due_at(t, ended + 60000));
	run_at(t, ended + 60000);
	assert_int_equal(smt_count(t, STORE_JOBS), 0);
	assert_false(due_at(t, ended + 10000000));
	/* Retention 0: finished jobs are never due. */
	id = smt_submit(t, "cc", 10, 1);
	c = smt_cmd(t, CMD_JOB_CANCEL);
	c.u.job_cancel.job = id;
	c.u.job_cancel.reason = ing_str_c("test");
	apply_ok(t, &c);
	set(t, CMD_SETTING_JOB_RETENTION, 0);
	assert_false(due_at(t, t->time_ms + 100000000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dedupe_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_job_retention, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
