/*
 * test_consensus_fixture.c - the fsm glue of raft/ (raft/fsm.h) under
 * libraft's deterministic in-memory cluster (raft/fixture.h): simulated
 * time, network and disk, so elections, partitions and snapshot installs
 * happen exactly when the test says.
 *
 * Covered: the index given to apply (raft_last_applied + 1) matches the
 * proposer's; results reach the proposer (through claim, never through
 * libraft's raft_apply callback) only where a local proposer claims them, and are freed everywhere
 * else; a disconnected follower catches up through snapshot install and keeps applying at the right
 * indexes; an apply failure is fatal exactly once and stalls only the failing node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "common/log.h"
#include "raft/fsm.h"
#include "tests/lib/consapp.h"

#define N       3
#define MAX_REQ 64
#define STEP_MS 10000

struct freq {
	struct raft_apply req;
	unsigned server;
	bool done;
	int status;
	void *result;
};

struct fx {
	struct raft_fixture f;
	struct cons_fsm fsm[N];
	struct capp app[N];
	struct freq reqs[MAX_REQ];
	unsigned nreqs;
};

/* The owner of server i's glue: which server it is, inside its fixture. */
struct owner {
	struct fx *x;
	unsigned server;
};
static struct owner owners[N];

static bool claim(void *owner, uint64_t index, void *result)
{
	struct owner *o = owner;
	unsigned k;
	for (k = 0; k < o->x->nreqs; k++) {
		struct freq *q = &o->x->reqs[k];
		if (q->server == o->server && !q->done && q->req.index == index) {
			q->result = result;
			return true;
		}
	}
	return false;
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct raft_configuration conf;
	unsigned i;

	const char *lvl = getenv("INGOT_TEST_LOG");
	enum ing_log_level level = ING_LOG_LEVEL_WARN;
	if (lvl != NULL) {
		ing_log_parse_level(lvl, &level);
	}
	ing_log_set_level(level);

	assert_non_null(x);
	assert_int_equal(raft_fixture_initialize(&x->f), 0);
	for (i = 0; i < N; i++) {
		struct cons_callbacks cb;
		capp_init(&x->app[i]);
		cb = capp_callbacks(&x->app[i]);
		cons_fsm_init(&x->fsm[i], i + 1, &cb, false);
		owners[i] = (struct owner){x, i};
		x->fsm[i].claim = claim;
		x->fsm[i].owner = &owners[i];
		assert_int_equal(raft_fixture_grow(&x->f, &x->fsm[i].fsm), 0);
		x->fsm[i].raft = raft_fixture_get(&x->f, i);
		raft_set_pre_vote(raft_fixture_get(&x->f, i), true);
	}
	assert_int_equal(raft_fixture_configuration(&x->f, N, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&x->f, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&x->f), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	unsigned i;
	raft_fixture_close(&x->f);
	for (i = 0; i < x->nreqs; i++) {
		free(x->reqs[i].result);
	}
	for (i = 0; i < N; i++) {
		capp_free(&x->app[i]);
	}
	free(x);
	return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct freq *q = req->data;
	q->done = true;
	q->status = status;
	assert_null(result); /* the glue hands results to claim only */
}

/* raft_apply of a 64-byte payload on server i; returns the request. */
static struct freq *propose(struct fx *x, unsigned i, uint32_t seed, int marker)
{
	struct freq *q;
	struct raft_buffer buf;

	assert_true(x->nreqs < MAX_REQ);
	q = &x->reqs[x->nreqs++];
	q->server = i;
	q->req.data = q;
	buf.len = 64;
	buf.base = raft_malloc(buf.len);
	assert_non_null(buf.base);
	capp_payload(buf.base, buf.len, seed);
	if (marker >= 0) {
		((uint8_t *)buf.base)[0] = (uint8_t)marker;
	}
	assert_int_equal(raft_apply(raft_fixture_get(&x->f, i), &q->req, &buf, 1, apply_cb), 0);
	return q;
}

static void test_apply_index_and_results(void **state)
{
	struct fx *x = *state;
	struct freq *last = NULL;
	unsigned i, k;

	raft_fixture_elect(&x->f, 0);
	assert_int_equal(raft_fixture_leader_index(&x->f), 0);
	for (k = 0; k < 10; k++) {
		last = propose(x, 0, k, -1);
	}
	assert_true(raft_fixture_step_until_applied(&x->f, N, last->req.index, STEP_MS));

	for (k = 0; k < 10; k++) {
		struct freq *q = &x->reqs[k];
		assert_true(q->done);
		assert_int_equal(q->status, 0);
		assert_non_null(q->result);
		/* The glue's index is the one raft_apply assigned. */
		assert_int_equal(*(uint64_t *)q->result, q->req.index);
	}
	for (i = 0; i < N; i++) {
		const struct capp *a = &x->app[i];
		assert_int_equal(a->n, 10);
		for (k = 0; k < 10; k++) {
			/* Entry 1 is the bootstrap configuration. */
			assert_int_equal(a->e[k].index, k + 2);
			assert_int_equal(a->e[k].index, x->reqs[k].req.index);
		}
		assert_int_equal(x->fsm[i].last_index, last->req.index);
		assert_int_equal(x->fsm[i].n_applied, 10);
		assert_true(capp_equal(a, &x->app[0]));
	}
	/* Results of entries proposed on server 0 are freed on the others. */
	assert_int_equal(x->app[0].free_results, 0);
	assert_int_equal(x->app[1].free_results, 10);
	assert_int_equal(x->app[2].free_results, 10);

	/* A new leader: entries it proposes are freed on the old one. */
	raft_fixture_depose(&x->f);
	assert_true(raft_fixture_step_until_has_no_leader(&x->f, STEP_MS));
	raft_fixture_elect(&x->f, 1);
	last = propose(x, 1, 100, -1);
	assert_true(raft_fixture_step_until_applied(&x->f, N, last->req.index, STEP_MS));
	assert_int_equal(*(uint64_t *)last->result, last->req.index);
	assert_int_equal(x->app[0].free_results, 1);
	assert_int_equal(x->app[1].free_results, 10);
	assert_int_equal(x->app[2].free_results, 11);
	for (i = 0; i < N; i++) {
		assert_int_equal(x->app[i].index_violations, 0);
	}
}

static void test_snapshot_install(void **state)
{
	struct fx *x = *state;
	struct freq *last = NULL;
	unsigned i, k;

	for (i = 0; i < N; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&x->f, i), 4);
		raft_set_snapshot_trailing(raft_fixture_get(&x->f, i), 8);
	}
	raft_fixture_elect(&x->f, 0);
	raft_fixture_disconnect(&x->f, 0, 2);
	raft_fixture_disconnect(&x->f, 2, 0);
	raft_fixture_disconnect(&x->f, 1, 2);
	raft_fixture_disconnect(&x->f, 2, 1);
	for (k = 0; k < 20; k++) {
		last = propose(x, 0, k, -1);
	}
	assert_true(raft_fixture_step_until_applied(&x->f, 0, last->req.index, STEP_MS));
	assert_true(raft_fixture_step_until_applied(&x->f, 1, last->req.index, STEP_MS));
	assert_int_equal(x->app[2].n, 0);
	assert_true(x->fsm[0].n_snapshots > 0);

	raft_fixture_reconnect(&x->f, 0, 2);
	raft_fixture_reconnect(&x->f, 2, 0);
	raft_fixture_reconnect(&x->f, 1, 2);
	raft_fixture_reconnect(&x->f, 2, 1);
	assert_true(raft_fixture_step_until_applied(&x->f, 2, last->req.index, STEP_MS));
	assert_int_equal(x->app[2].restores, 1);
	assert_int_equal(x->fsm[2].n_restored, 1);
	/* Fewer applies than entries: the prefix came in the snapshot. */
	assert_true(x->app[2].applies < 20);
	assert_true(capp_equal(&x->app[2], &x->app[0]));

	/* After the restore, apply continues at the right indexes. */
	for (k = 20; k < 25; k++) {
		last = propose(x, 0, k, -1);
	}
	assert_true(raft_fixture_step_until_applied(&x->f, N, last->req.index, STEP_MS));
	for (i = 0; i < N; i++) {
		assert_true(capp_equal(&x->app[i], &x->app[0]));
		assert_int_equal(x->app[i].index_violations, 0);
		assert_int_equal(x->fsm[i].last_index, last->req.index);
	}
	assert_int_equal(x->app[2].e[x->app[2].n - 1].index, last->req.index);
	assert_int_equal(x->app[2].fatals, 0);
}

static void test_apply_failure_is_fatal_once(void **state)
{
	struct fx *x = *state;
	struct freq *bad, *last;
	struct raft *r1 = raft_fixture_get(&x->f, 1);
	unsigned applies;

	x->app[1].fail_marker = 0xff;
	raft_fixture_elect(&x->f, 0);
	propose(x, 0, 1, -1);
	bad = propose(x, 0, 2, 0xff);
	last = propose(x, 0, 3, -1);
	/* The others apply all three: node 1's failure is its own. */
	assert_true(raft_fixture_step_until_applied(&x->f, 0, last->req.index, STEP_MS));
	assert_true(raft_fixture_step_until_applied(&x->f, 2, last->req.index, STEP_MS));
	assert_int_equal(x->app[0].n, 3);
	assert_int_equal(x->app[2].n, 3);

	raft_fixture_step_until_elapsed(&x->f, 2000);
	assert_int_equal(x->app[1].fatals, 1);
	assert_int_equal(x->app[1].fatal_code, ING_EIO);
	assert_true(x->fsm[1].failed);
	assert_int_equal(x->app[1].n, 1);
	assert_int_equal(raft_last_applied(r1), bad->req.index - 1);
	applies = x->app[1].applies;
	print_message("after a failed apply, libraft state of node 2: %d (0 unavailable, 1 "
	              "follower)\n",
	              raft_state(r1));

	/* No further call into the state machine, no second report. */
	last = propose(x, 0, 4, -1);
	assert_true(raft_fixture_step_until_applied(&x->f, 0, last->req.index, STEP_MS));
	raft_fixture_step_until_elapsed(&x->f, 1000);
	assert_int_equal(x->app[1].applies, applies);
	assert_int_equal(x->app[1].fatals, 1);
	assert_int_equal(raft_last_applied(r1), bad->req.index - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_apply_index_and_results, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_install, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_failure_is_fatal_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
