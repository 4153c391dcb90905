/*
 * test_commit_early.c - raft/commit_early.c: which commit index the
 * heartbeat made of an AppendEntries hands a follower before the message
 * itself.  Never past the entry the message's log check covers
 * (prev_log_index), past what the follower stored, or for a message of
 * another term, without entries, or to a node that is not a follower.
 * The cluster tests and test_nemesis run every node with the wrapper.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>

#include "raft/cons_internal.h"

static struct raft follower(raft_term term, raft_index commit, raft_index stored)
{
	struct raft r;
	memset(&r, 0, sizeof(r));
	r.state = RAFT_FOLLOWER;
	r.current_term = term;
	r.commit_index = commit;
	r.last_stored = stored;
	return r;
}

static struct raft_append_entries append(raft_term term, raft_index prev, raft_index commit,
                                         unsigned n)
{
	struct raft_append_entries a;
	memset(&a, 0, sizeof(a));
	a.term = term;
	a.prev_log_index = prev;
	a.prev_log_term = term;
	a.leader_commit = commit;
	a.n_entries = n;
	return a;
}

static void test_bounds(void **state)
{
	(void)state;
	struct raft r = follower(3, 10, 20);
	struct raft_append_entries a = append(3, 18, 15, 2);

	/* The leader's commit, below both the log check and what is stored. */
	assert_int_equal(cons_commit_early_upto(&r, &a), 15);
	/* No further than prev_log_index: entries past it may still be
	 * replaced by this very message. */
	a = append(3, 12, 15, 2);
	assert_int_equal(cons_commit_early_upto(&r, &a), 12);
	/* No further than what this node has stored. */
	r = follower(3, 10, 11);
	a = append(3, 18, 15, 2);
	assert_int_equal(cons_commit_early_upto(&r, &a), 11);
}

static void test_none(void **state)
{
	(void)state;
	struct raft r = follower(3, 10, 20);
	struct raft_append_entries a = append(3, 18, 15, 0);

	/* A heartbeat already commits at once. */
	assert_int_equal(cons_commit_early_upto(&r, &a), 0);
	/* Nothing to raise. */
	r = follower(3, 15, 20);
	a = append(3, 18, 15, 2);
	assert_int_equal(cons_commit_early_upto(&r, &a), 0);
	r = follower(3, 10, 10);
	assert_int_equal(cons_commit_early_upto(&r, &a), 0);
	/* Another term: libraft must judge the message itself first. */
	r = follower(3, 10, 20);
	a = append(4, 18, 15, 2);
	assert_int_equal(cons_commit_early_upto(&r, &a), 0);
	a = append(2, 18, 15, 2);
	assert_int_equal(cons_commit_early_upto(&r, &a), 0);
	/* Not a follower. */
	a = append(3, 18, 15, 2);
	r.state = RAFT_CANDIDATE;
	assert_int_equal(cons_commit_early_upto(&r, &a), 0);
	r.state = RAFT_LEADER;
	assert_int_equal(cons_commit_early_upto(&r, &a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
