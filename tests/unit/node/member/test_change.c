/*
 * test_change.c - the membership change plans (node/member/change.h), which
 * are pure: the steps of an add in each role, a promotion from each role, a
 * demotion, a removal and the replacement of a dead voter; the rollback of
 * an add that failed after (and only after) the node entered the
 * configuration; and the quorum check for every kind of change, with who
 * is alive given by the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/member/change.h"

/* A plan as text, e.g. "record 4 spare, add 4, assign 4 standby". */
static const char *plan_text(const struct mc_plan *p)
{
	static char buf[512];
	size_t n = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < p->n; i++) {
		const struct mc_step *s = &p->steps[i];
		const char *role = mc_role_name(s->role);
		switch (s->kind) {
		case MC_CONFIRM:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sconfirm %llu %s",
			                      i ? ", " : "", (unsigned long long)s->id, role);
			break;
		case MC_RECORD:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%srecord %llu %s",
			                      i ? ", " : "", (unsigned long long)s->id, role);
			break;
		case MC_ADD:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sadd %llu", i ? ", " : "",
			                      (unsigned long long)s->id);
			break;
		case MC_ASSIGN:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sassign %llu %s",
			                      i ? ", " : "", (unsigned long long)s->id, role);
			break;
		case MC_CATCHUP:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%scatchup %llu",
			                      i ? ", " : "", (unsigned long long)s->id);
			break;
		case MC_REMOVE:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sremove %llu",
			                      i ? ", " : "", (unsigned long long)s->id);
			break;
		case MC_UNRECORD:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sunrecord %llu",
			                      i ? ", " : "", (unsigned long long)s->id);
			break;
		case MC_EVENT:
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sevent %llu",
			                      i ? ", " : "", (unsigned long long)s->id);
			break;
		}
	}
	return buf;
}

static void test_add_plans(void **state)
{
	struct mc_plan p;
	(void)state;

	memset(&p, 0, sizeof(p));
	mc_plan_add(&p, 4, CONS_VOTER);
	/* The voter role only after the catch-up: an add never leaves the
	 * cluster waiting for a node that is not there. */
	assert_string_equal(plan_text(&p), "record 4 spare, add 4, assign 4 standby, catchup 4, "
	                                   "assign 4 voter, record 4 voter");
	memset(&p, 0, sizeof(p));
	mc_plan_add(&p, 5, CONS_STANDBY);
	assert_string_equal(plan_text(&p),
	                    "record 5 spare, add 5, assign 5 standby, catchup 5, record 5 standby");
	memset(&p, 0, sizeof(p));
	mc_plan_add(&p, 6, CONS_SPARE);
	assert_string_equal(plan_text(&p), "record 6 spare, add 6, record 6 spare");
}

static void test_role_plans(void **state)
{
	struct mc_plan p;
	(void)state;

	memset(&p, 0, sizeof(p));
	mc_plan_promotion(&p, 3, CONS_STANDBY, CONS_VOTER);
	assert_string_equal(plan_text(&p), "catchup 3, assign 3 voter, record 3 voter");
	memset(&p, 0, sizeof(p));
	mc_plan_promotion(&p, 3, CONS_SPARE, CONS_VOTER);
	assert_string_equal(plan_text(&p),
	                    "assign 3 standby, catchup 3, assign 3 voter, record 3 voter");
	memset(&p, 0, sizeof(p));
	mc_plan_promotion(&p, 3, CONS_SPARE, CONS_STANDBY);
	assert_string_equal(plan_text(&p), "assign 3 standby, catchup 3, record 3 standby");
	memset(&p, 0, sizeof(p));
	mc_plan_demotion(&p, 2, CONS_SPARE);
	assert_string_equal(plan_text(&p), "assign 2 spare, record 2 spare");
	memset(&p, 0, sizeof(p));
	mc_plan_removal(&p, 2);
	assert_string_equal(plan_text(&p), "remove 2, unrecord 2");
	memset(&p, 0, sizeof(p));
	mc_plan_replace_voter(&p, 5, CONS_STANDBY, 2);
	assert_string_equal(plan_text(&p), "catchup 5, assign 5 voter, record 5 voter, "
	                                   "assign 2 spare, record 2 spare, event 2");
	memset(&p, 0, sizeof(p));
	mc_plan_replace_voter(&p, 5, CONS_SPARE, 2);
	assert_int_equal(p.n, 7);
	/* A full plan takes no more steps. */
	for (int i = 0; i < 20; i++)
		mc_plan_step(&p, MC_RECORD, 9, CONS_SPARE);
	assert_int_equal(p.n, MC_MAX_STEPS);
}

static void test_rollback(void **state)
{
	struct mc_plan p, undo;
	(void)state;

	memset(&p, 0, sizeof(p));
	mc_plan_add(&p, 4, CONS_VOTER);
	/* Failed at the record or at the add itself: not in the configuration,
	 * nothing to undo. */
	assert_false(mc_plan_rollback(&p, 0, 4, &undo));
	assert_false(mc_plan_rollback(&p, 1, 4, &undo));
	/* Failed anywhere after the add (the catch-up timed out, say): out
	 * again, remove then unrecord. */
	for (unsigned done = 2; done <= p.n; done++) {
		memset(&undo, 0xff, sizeof(undo));
		assert_true(mc_plan_rollback(&p, done, 4, &undo));
		assert_string_equal(plan_text(&undo), "remove 4, unrecord 4");
	}
	/* Plans that add nobody are never rolled back. */
	memset(&p, 0, sizeof(p));
	mc_plan_promotion(&p, 3, CONS_SPARE, CONS_VOTER);
	assert_false(mc_plan_rollback(&p, p.n, 3, &undo));
	memset(&p, 0, sizeof(p));
	mc_plan_removal(&p, 3);
	assert_false(mc_plan_rollback(&p, 1, 3, &undo));
	memset(&p, 0, sizeof(p));
	mc_plan_replace_voter(&p, 5, CONS_STANDBY, 2);
	assert_false(mc_plan_rollback(&p, 4, 5, &undo));
}

static void test_restore_role(void **state)
{
	struct mc_plan p, undo;
	(void)state;

	/* A spare promoted to voter: nothing changed before the first assign;
	 * once it is a standby (the catch-up timed out, say) it goes back to
	 * spare. */
	memset(&p, 0, sizeof(p));
	mc_plan_step(&p, MC_CONFIRM, 3, CONS_VOTER);
	mc_plan_promotion(&p, 3, CONS_SPARE, CONS_VOTER);
	assert_string_equal(plan_text(&p), "confirm 3 voter, assign 3 standby, catchup 3, "
	                                   "assign 3 voter, record 3 voter");
	assert_false(mc_plan_restore_role(&p, 0, 3, CONS_SPARE, &undo));
	assert_false(mc_plan_restore_role(&p, 1, 3, CONS_SPARE, &undo));
	for (unsigned done = 2; done <= p.n; done++) {
		memset(&undo, 0xff, sizeof(undo));
		assert_true(mc_plan_restore_role(&p, done, 3, CONS_SPARE, &undo));
		assert_string_equal(plan_text(&undo), "assign 3 spare, record 3 spare");
	}
	/* A standby promoted: the catch-up comes first, the role changes at the
	 * assign. */
	memset(&p, 0, sizeof(p));
	mc_plan_promotion(&p, 4, CONS_STANDBY, CONS_VOTER);
	assert_false(mc_plan_restore_role(&p, 1, 4, CONS_STANDBY, &undo));
	assert_true(mc_plan_restore_role(&p, 2, 4, CONS_STANDBY, &undo));
	assert_string_equal(plan_text(&undo), "assign 4 standby, record 4 standby");
	/* Another member's assign is not this one's change. */
	memset(&p, 0, sizeof(p));
	mc_plan_demotion(&p, 2, CONS_SPARE);
	assert_false(mc_plan_restore_role(&p, p.n, 3, CONS_VOTER, &undo));
}

/* Who is alive: the ids listed in `data` (0-terminated). */
static bool alive_in(void *data, const struct cons_member *m)
{
	for (const uint64_t *id = data; *id != 0; id++)
		if (*id == m->id)
			return true;
	return false;
}

static void test_quorum(void **state)
{
	struct cons_member ms[5] = {
	    {.id = 1, .role = CONS_VOTER}, {.id = 2, .role = CONS_VOTER},
	    {.id = 3, .role = CONS_VOTER}, {.id = 4, .role = CONS_STANDBY},
	    {.id = 5, .role = CONS_SPARE},
	};
	uint64_t all[] = {1, 2, 3, 4, 5, 0}, two_voters[] = {1, 2, 4, 5, 0}, one[] = {1, 0};
	struct ing_error e;
	(void)state;

	/* All alive: removing a voter, adding one, promoting are fine. */
	assert_int_equal(mc_check_quorum(ms, 5, alive_in, all, 3, true, CONS_SPARE, false, &e), 0);
	assert_int_equal(mc_check_quorum(ms, 5, alive_in, all, 6, false, CONS_VOTER, true, &e), 0);
	assert_int_equal(mc_check_quorum(ms, 5, alive_in, all, 4, false, CONS_VOTER, true, &e), 0);
	/* Voter 3 dead: removing a live voter leaves 2 voters, 1 live. */
	assert_int_equal(
	    mc_check_quorum(ms, 5, alive_in, two_voters, 2, true, CONS_SPARE, false, &e),
	    ING_ECONFLICT);
	assert_string_equal(e.msg, "refused: the new configuration would have 2 voters of which "
	                           "1 is live, and a quorum of 2 voters needs 2; bring the down "
	                           "voters back (or replace them) first");
	/* ... demoting one likewise; removing the dead one is fine. */
	assert_int_equal(
	    mc_check_quorum(ms, 5, alive_in, two_voters, 2, false, CONS_STANDBY, false, &e),
	    ING_ECONFLICT);
	assert_int_equal(
	    mc_check_quorum(ms, 5, alive_in, two_voters, 3, true, CONS_SPARE, false, &e), 0);
	/* Adding a fourth voter with one of three dead: 4 voters need 3 live;
	 * the new one counts as alive once caught up. */
	assert_int_equal(
	    mc_check_quorum(ms, 5, alive_in, two_voters, 6, false, CONS_VOTER, true, &e), 0);
	/* Only node 1 alive: promoting the standby leaves 4 voters, 2 live. */
	assert_int_equal(mc_check_quorum(ms, 5, alive_in, one, 4, false, CONS_VOTER, true, &e),
	                 ING_ECONFLICT);
	/* The last voter. */
	struct cons_member lone[1] = {{.id = 1, .role = CONS_VOTER}};
	assert_int_equal(mc_check_quorum(lone, 1, alive_in, all, 1, true, CONS_SPARE, false, &e),
	                 ING_ECONFLICT);
	assert_string_equal(e.msg, "member 1 is the last voter: a cluster needs one");
	assert_int_equal(mc_check_quorum(lone, 1, alive_in, all, 1, false, CONS_STANDBY, false, &e),
	                 ING_ECONFLICT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_plans), cmocka_unit_test(test_role_plans),
	    cmocka_unit_test(test_rollback),  cmocka_unit_test(test_restore_role),
	    cmocka_unit_test(test_quorum),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
