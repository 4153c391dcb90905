/*
 * test_heal.c - self-healing's decision (node/leader/heal.h) on
 * configurations given by the test: a dead voter is replaced by the most
 * caught-up live standby, else spare; not before voter_replace_after_ms;
 * never the leader itself; missing voters and standbys are made up; off
 * when `voters` is 0; nothing to do when the cluster is as wanted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "node/leader/heal.h"

#define SELF 1

/* Alive: not in the 0-terminated list `data` of dead ids. */
static bool alive_unless(void *data, const struct cons_member *m)
{
	for (const uint64_t *id = data; *id != 0; id++)
		if (*id == m->id)
			return false;
	return true;
}

static void test_dead_voter_replaced_by_best_standby(void **state)
{
	struct cons_member ms[] = {
	    {.id = 1, .role = CONS_VOTER},
	    {.id = 2, .role = CONS_VOTER, .contact_ago_ms = 5000},
	    {.id = 3, .role = CONS_VOTER},
	    {.id = 4, .role = CONS_STANDBY, .match_index = 90},
	    {.id = 5, .role = CONS_STANDBY, .match_index = 120},
	    {.id = 6, .role = CONS_SPARE, .match_index = 500},
	};
	uint64_t dead[] = {2, 0};
	struct heal_goal goal = {3, 1, 2000};
	struct mc_request r;
	(void)state;

	assert_true(heal_decide(ms, 6, SELF, alive_unless, dead, &goal, &r));
	assert_null(r.call);
	assert_int_equal(r.id, 5); /* the most caught-up standby, not the spare */
	assert_int_equal(r.dead_silent_ms, 5000);
	assert_string_equal(r.what, "replacing unreachable voter 2 by 5");
	/* A failure after the standby's role changed puts it back. */
	assert_true(r.restore_role);
	assert_int_equal(r.old_role, CONS_STANDBY);
	struct mc_plan want;
	memset(&want, 0, sizeof(want));
	mc_plan_replace_voter(&want, 5, CONS_STANDBY, 2);
	assert_int_equal(r.plan.n, want.n);
	assert_memory_equal(r.plan.steps, want.steps, want.n * sizeof(want.steps[0]));

	/* Silent, but not for voter_replace_after_ms yet: nothing. */
	ms[1].contact_ago_ms = 1999;
	assert_false(heal_decide(ms, 6, SELF, alive_unless, dead, &goal, &r));
}

static void test_spare_when_no_standby(void **state)
{
	struct cons_member ms[] = {
	    {.id = 1, .role = CONS_VOTER},
	    {.id = 2, .role = CONS_VOTER},
	    {.id = 3, .role = CONS_VOTER, .contact_ago_ms = 9000},
	    {.id = 4, .role = CONS_STANDBY, .match_index = 900},
	    {.id = 6, .role = CONS_SPARE, .match_index = 10},
	    {.id = 7, .role = CONS_SPARE, .match_index = 20},
	};
	uint64_t dead[] = {3, 4, 0}; /* the only standby is dead too */
	struct heal_goal goal = {3, 0, 2000};
	struct mc_request r;
	(void)state;

	assert_true(heal_decide(ms, 6, SELF, alive_unless, dead, &goal, &r));
	assert_int_equal(r.id, 7);
	struct mc_plan want;
	memset(&want, 0, sizeof(want));
	mc_plan_replace_voter(&want, 7, CONS_SPARE, 3);
	assert_memory_equal(r.plan.steps, want.steps, want.n * sizeof(want.steps[0]));
	/* Nobody live to promote: nothing. */
	uint64_t all_dead[] = {3, 4, 6, 7, 0};
	assert_false(heal_decide(ms, 6, SELF, alive_unless, all_dead, &goal, &r));
}

static void test_never_the_leader_itself(void **state)
{
	struct cons_member ms[] = {
	    {.id = SELF, .role = CONS_VOTER, .contact_ago_ms = 99999},
	    {.id = 2, .role = CONS_VOTER},
	    {.id = 3, .role = CONS_VOTER},
	    {.id = 4, .role = CONS_STANDBY},
	};
	uint64_t dead[] = {SELF, 0};
	struct heal_goal goal = {3, 1, 2000};
	struct mc_request r;
	(void)state;
	assert_false(heal_decide(ms, 4, SELF, alive_unless, dead, &goal, &r));
}

static void test_make_up_voters_and_standbys(void **state)
{
	struct cons_member ms[] = {
	    {.id = 1, .role = CONS_VOTER},
	    {.id = 2, .role = CONS_STANDBY, .match_index = 50},
	    {.id = 3, .role = CONS_SPARE, .match_index = 70},
	    {.id = 4, .role = CONS_SPARE, .match_index = 80},
	};
	uint64_t none[] = {0};
	struct heal_goal goal = {2, 1, 2000};
	struct mc_request r;
	(void)state;

	/* One voter of two: the standby is promoted. */
	assert_true(heal_decide(ms, 4, SELF, alive_unless, none, &goal, &r));
	assert_int_equal(r.id, 2);
	assert_string_equal(r.what, "promoting 2 to keep 2 voters");
	assert_true(r.restore_role);
	assert_int_equal(r.old_role, CONS_STANDBY);
	/* Voters as wanted, no standby left: the best spare becomes one. */
	ms[1].role = CONS_VOTER;
	assert_true(heal_decide(ms, 4, SELF, alive_unless, none, &goal, &r));
	assert_int_equal(r.id, 4);
	assert_string_equal(r.what, "making spare 4 a standby");
	/* A dead spare left a standby was item 3 of issue 11: put back. */
	assert_true(r.restore_role);
	assert_int_equal(r.old_role, CONS_SPARE);
	struct mc_plan want;
	memset(&want, 0, sizeof(want));
	mc_plan_promotion(&want, 4, CONS_SPARE, CONS_STANDBY);
	assert_memory_equal(r.plan.steps, want.steps, want.n * sizeof(want.steps[0]));
	/* As wanted: nothing. */
	ms[3].role = CONS_STANDBY;
	assert_false(heal_decide(ms, 4, SELF, alive_unless, none, &goal, &r));
	/* Off. */
	struct heal_goal off = {0, 5, 2000};
	ms[1].role = CONS_SPARE;
	assert_false(heal_decide(ms, 4, SELF, alive_unless, none, &off, &r));
}

int main(void)
{
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dead_voter_replaced_by_best_standby),
	    cmocka_unit_test(test_spare_when_no_standby),
	    cmocka_unit_test(test_never_the_leader_itself),
	    cmocka_unit_test(test_make_up_voters_and_standbys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
