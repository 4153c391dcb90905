/*
 * test_close.c - closing a node is safe whatever the disk under its raft
 * directory, tmpfs included (regression: ingotd died in libraft on SIGTERM
 * 7 times in 10 with its data directory on /dev/shm).
 *
 * On tmpfs libraft 0.15 finalizes the open segment (pool thread) before the
 * loop runs the close callbacks of that segment's file writer, so without
 * raft/'s close gate (consensus.c) raft_close's callback ran while the
 * writer was still closing, and the writer's close ran it a second time on
 * the freed struct raft and struct uv.  libraft is not instrumented, so the
 * test dies of that (segfault or double free) in any build, at the first
 * or one of the first closes.
 *
 * One voter (as `ingotd --dev` or a one-node config) with its directory on
 * /dev/shm (tests/lib/raftcluster.h, node 1 alone) is started, becomes
 * leader, stores entries, gets more proposals in flight and is closed, then
 * restarts from the same directory: CYCLES times, or as many as fit in
 * BUDGET_MS.  Each cycle checks that every proposal was called back once
 * and the close completed; rc_free checks that nothing is left on the loop.
 * Skipped where /dev/shm is not a tmpfs.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>

#include <cmocka.h>
#include <linux/magic.h>
#include <uv.h>

#include "raft/consensus.h"
#include "tests/lib/raftcluster.h"

#define SHM       "/dev/shm"
#define CYCLES    40
#define BUDGET_MS 6000
#define INFLIGHT  8 /* proposals left in flight at each close */

static void test_close_on_tmpfs(void **state)
{
	struct statfs fs;
	struct rc_cluster *cl;
	const char *old = getenv("TMPDIR");
	char *saved = old != NULL ? strdup(old) : NULL;
	unsigned cycle, k, done = 0;
	uint64_t t0 = uv_hrtime();
	(void)state;

	errno = 0;
	if (statfs(SHM, &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
		print_message("%s is not a tmpfs (%s): skipped\n", SHM,
		              errno != 0 ? strerror(errno) : "other file system");
		free(saved);
		skip();
	}
	/* rc_new makes the nodes' directories under $TMPDIR. */
	assert_int_equal(setenv("TMPDIR", SHM, 1), 0);
	cl = rc_new(0, 0);
	if (saved != NULL) {
		setenv("TMPDIR", saved, 1);
	} else {
		unsetenv("TMPDIR");
	}
	free(saved);
	/* One voter, as `ingotd --dev`: with no peer connection to close,
	 * libraft's close waits on nothing else than its timer, its listener,
	 * the segment's finalization and the writer. */
	cl->nodes[0].cfg.ninitial = 1;
	cl->nodes[0].cfg.election_timeout_ms = 100;
	cl->nodes[0].cfg.heartbeat_timeout_ms = 10;

	for (cycle = 0; cycle < CYCLES; cycle++) {
		unsigned first = cl->nprops;

		if (cycle > 0 && (uv_hrtime() - t0) / 1000000 > BUDGET_MS) {
			break;
		}
		if (cl->nprops + 2 * INFLIGHT > RC_MAX_PROPS) {
			cl->nprops = 0;
			first = 0;
		}
		rc_start(cl, 0);
		assert_int_equal(rc_wait_leader(cl, 0), 0);
		/* Some entries stored, as ingotd has when it is stopped... */
		for (k = 0; k < INFLIGHT; k++) {
			assert_int_equal(rc_propose(cl, 0, cycle * 100 + k, 64, NULL), 0);
		}
		assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
		/* ...and more still being written when the close comes. */
		for (k = INFLIGHT; k < 2 * INFLIGHT; k++) {
			assert_int_equal(rc_propose(cl, 0, cycle * 100 + k, 64, NULL), 0);
		}
		rc_close(cl, 0);
		for (k = first; k < cl->nprops; k++) {
			assert_int_equal(cl->props[k].calls, 1);
			assert_true(cl->props[k].status == 0 ||
			            cl->props[k].status == ING_EUNAVAILABLE);
		}
		done++;
	}
	print_message("%u start/stop cycles on %s in %.0f ms\n", done, SHM,
	              (double)(uv_hrtime() - t0) / 1e6);
	assert_true(done >= 3);
	rc_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_close_on_tmpfs),
	};
	signal(SIGPIPE, SIG_IGN); /* peers close connections libuv may still write to */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
