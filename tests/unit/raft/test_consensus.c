/*
 * test_consensus.c - raft/consensus.h on real libraft 0.15 with its libuv
 * backend: three nodes in one process on one loop, over TCP on 127.0.0.1
 * (free ports found by binding port 0), each with its own temporary
 * directory and an in-memory state machine (tests/lib/raftcluster.h,
 * tests/lib/consapp.h).
 *
 * Covered: configuration validation; election with the leader barrier
 * (LEADER, then LEADER_READY); not-leader refusals without callbacks;
 * padding refusal; ordered replication of varied sizes with results to the
 * proposer and results freed elsewhere; failover after closing the leader;
 * restart from the directory with catch-up at the right indexes; pending
 * proposals completed by close, never inside cons_close; catch-up through
 * snapshot install.  Every loop run is bounded; each test ends with the loop
 * closing cleanly (no handle left) and its directories removed.
 *
 * Set INGOT_TEST_LOG=debug|info|... to see the logs (default warn).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "common/log.h"
#include "raft/consensus.h"
#include "tests/lib/consapp.h"
#include "tests/lib/raftcluster.h"
#include "tests/lib/testutil.h"

/* Every proposal's index holds its payload on node i, in proposal order. */
static void check_indexes(struct rc_cluster *cl, unsigned i, unsigned first, unsigned count,
                          uint32_t seed0, size_t (*size_of)(unsigned))
{
	const struct capp *a = &cl->nodes[i].app;
	unsigned k;
	size_t j = 0;
	for (k = first; k < first + count; k++) {
		uint8_t buf[512];
		size_t len = size_of(k);
		while (j < a->n && a->e[j].index < cl->props[k].p.index) {
			j++;
		}
		assert_true(j < a->n);
		assert_int_equal(a->e[j].index, cl->props[k].p.index);
		capp_payload(buf, len, seed0 + k);
		assert_int_equal(a->e[j].len, len);
		assert_memory_equal(a->e[j].buf, buf, len);
	}
	assert_int_equal(a->index_violations, 0);
}

static size_t varied_size(unsigned k)
{
	return 8 * (1 + (k * 7) % 40); /* 8..320 bytes */
}

static double ms_since(uint64_t t0_ns)
{
	return (double)(uv_hrtime() - t0_ns) / 1e6;
}

/* ---- tests ---- */

static void test_config_validation(void **state)
{
	uv_loop_t loop;
	struct cons *c = NULL;
	struct cons_peer peers[2] = {{1, "127.0.0.1:1"}, {2, "127.0.0.1:2"}};
	struct cons_config cfg = {.id = 3, .address = "127.0.0.1:3", .dir = "/nonexistent/x"};
	struct capp app;
	struct cons_callbacks cb;
	struct ing_error e = {0};
	(void)state;

	rc_set_log_level();
	capp_init(&app);
	cb = capp_callbacks(&app);
	assert_int_equal(uv_loop_init(&loop), 0);

	cfg.initial = peers;
	cfg.ninitial = 2;
	assert_int_equal(cons_start(&loop, &cfg, &cb, &c, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "not among"));

	cfg.ninitial = 0;
	cfg.address = "localhost:3";
	assert_int_equal(cons_start(&loop, &cfg, &cb, &c, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "a.b.c.d:port"));
	cfg.address = "127.0.0.1";
	assert_int_equal(cons_start(&loop, &cfg, &cb, &c, &e), ING_EINVAL);
	cfg.address = "127.0.0.1:70000";
	assert_int_equal(cons_start(&loop, &cfg, &cb, &c, &e), ING_EINVAL);
	cfg.address = "127.0.0.1:3";
	cfg.heartbeat_timeout_ms = 500;
	assert_int_equal(cons_start(&loop, &cfg, &cb, &c, &e), ING_EINVAL);
	assert_null(c);

	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	capp_free(&app);
}

/* The port is taken: raft_start fails, and what libraft opened is closed
 * asynchronously without leaks or a stuck loop. */
static void test_start_fails_on_busy_port(void **state)
{
	struct rc_cluster *cl = rc_new(0, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct cons_callbacks cb;
	struct cons *c = NULL;
	struct ing_error e = {0};
	unsigned short port;
	int fd, rv;
	(void)state;

	sscanf(strchr(cl->addrs[0], ':') + 1, "%hu", &port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);

	cb = capp_callbacks(&cl->nodes[0].app);
	rv = cons_start(&cl->loop, &cl->nodes[0].cfg, &cb, &c, &e);
	assert_int_not_equal(rv, 0);
	assert_null(c);
	assert_true(e.msg[0] != '\0');
	print_message("busy port: %s (%s)\n", ing_err_name(rv), e.msg);
	close(fd);
	rc_free(cl);
}

static void test_elect_replicate_failover_restart(void **state)
{
	struct rc_cluster *cl = rc_new(0, 0);
	struct rc_prop *t;
	uint64_t t0, term;
	unsigned i, k, j, f0, f1, nf = 0, followers[RC_NODES];
	int lead, lead2;
	const struct capp *la;
	(void)state;

	t0 = uv_hrtime();
	for (i = 0; i < RC_NODES; i++) {
		rc_start(cl, i);
	}
	lead = rc_wait_leader(cl, 0);
	print_message("first leader ready after %.0f ms (node %d)\n", ms_since(t0), lead + 1);

	/* LEADER, then LEADER_READY, in the same term, and never READY first. */
	la = &cl->nodes[lead].app;
	assert_true(la->nroles >= 2);
	assert_int_equal(la->roles[la->nroles - 1].role, CONS_LEADER_READY);
	assert_int_equal(la->roles[la->nroles - 2].role, CONS_LEADER);
	assert_int_equal(la->roles[la->nroles - 2].term, la->roles[la->nroles - 1].term);
	assert_int_equal(la->roles[la->nroles - 1].leader, (uint64_t)lead + 1);
	term = la->roles[la->nroles - 1].term;
	print_message("leader barrier committed %.2f ms after becoming leader\n",
	              (double)(la->roles[la->nroles - 1].at_ns - la->roles[la->nroles - 2].at_ns) /
	                  1e6);
	{
		struct cons_status st;
		struct cons_member *m;
		unsigned nm;
		cons_status(cl->nodes[lead].c, &st);
		assert_int_equal(st.role, CONS_LEADER_READY);
		assert_int_equal(st.leader_id, (uint64_t)lead + 1);
		assert_string_equal(st.leader_address, cl->addrs[lead]);
		assert_int_equal(st.term, term);
		assert_true(st.last_applied >= 2); /* config + barrier */
		assert_int_equal(cons_members(cl->nodes[lead].c, &m, &nm), 0);
		assert_int_equal(nm, RC_NODES);
		for (k = 0; k < nm; k++) {
			assert_int_equal(m[k].role, CONS_VOTER);
			assert_string_equal(m[k].address, cl->addrs[m[k].id - 1]);
		}
		free(m);
	}

	for (i = 0; i < RC_NODES; i++) {
		if ((int)i != lead) {
			followers[nf++] = i;
		}
	}
	f0 = followers[0];
	f1 = followers[1];

	/* Followers refuse, without a callback; bad lengths are refused. */
	assert_int_equal(rc_propose(cl, f0, 1, 16, &t), ING_ENOTLEADER);
	assert_int_equal(rc_propose(cl, f1, 1, 16, &t), ING_ENOTLEADER);
	assert_int_equal(rc_propose(cl, (unsigned)lead, 1, 12, &t), ING_EINVAL);
	assert_int_equal(rc_propose(cl, (unsigned)lead, 1, 0, &t), ING_EINVAL);
	assert_int_equal(cl->nprops, 0);
	rc_run_for(cl, 50);
	assert_int_equal(t->calls, 0);

	/* Varied sizes, applied in the same order everywhere; results reach
	 * the proposer, other nodes free theirs. */
	t0 = uv_hrtime();
	for (k = 0; k < 40; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, 1000 + k, varied_size(k), NULL), 0);
		assert_int_equal(cl->props[k].calls, 0); /* never inside cons_propose */
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	print_message("40 proposals committed in %.1f ms\n", ms_since(t0));
	for (k = 0; k < 40; k++) {
		assert_int_equal(cl->props[k].calls, 1);
		assert_int_equal(cl->props[k].status, 0);
		assert_true(cl->props[k].had_result);
		assert_int_equal(cl->props[k].result, cl->props[k].p.index);
		if (k > 0) {
			assert_true(cl->props[k].p.index > cl->props[k - 1].p.index);
		}
	}
	for (i = 0; i < RC_NODES; i++) {
		rc_wait_applied(cl, i, 40);
		check_indexes(cl, i, 0, 40, 1000, varied_size);
	}
	assert_true(capp_equal(&cl->nodes[f0].app, &cl->nodes[lead].app));
	assert_true(capp_equal(&cl->nodes[f1].app, &cl->nodes[lead].app));
	assert_int_equal(cl->nodes[lead].app.free_results, 0);
	assert_int_equal(cl->nodes[f0].app.free_results, 40);
	assert_int_equal(cl->nodes[f1].app.free_results, 40);

	/* Close the leader: one of the two others takes over. */
	t0 = uv_hrtime();
	rc_close(cl, (unsigned)lead);
	lead2 = rc_wait_leader(cl, term);
	print_message("re-elected after closing the leader: %.0f ms (node %d)\n", ms_since(t0),
	              lead2 + 1);
	assert_true(lead2 != lead);
	for (k = 40; k < 60; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead2, 1000 + k, varied_size(k), NULL),
		                 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	for (k = 40; k < 60; k++) {
		assert_int_equal(cl->props[k].status, 0);
		assert_int_equal(cl->props[k].result, cl->props[k].p.index);
	}

	/* Restart the old leader from its directory, with an empty state
	 * machine: it replays and catches up at the same indexes. */
	t0 = uv_hrtime();
	rc_start(cl, (unsigned)lead);
	j = (unsigned)lead2;
	rc_wait_applied(cl, j, 60);
	rc_wait_applied(cl, (unsigned)lead, 60);
	print_message("restarted node caught up in %.0f ms\n", ms_since(t0));
	for (i = 0; i < RC_NODES; i++) {
		rc_wait_applied(cl, i, 60); /* the third node too: it may lag on a loaded machine */
		assert_true(capp_equal(&cl->nodes[i].app, &cl->nodes[j].app));
	}
	check_indexes(cl, (unsigned)lead, 0, 60, 1000, varied_size);
	assert_int_equal(cl->nodes[lead].app.restores, 0);
	assert_int_equal(cl->nodes[lead].app.fatals, 0);
	rc_free(cl);
}

static bool close_seen; /* on_closed_count ran */

static void on_closed_count(void *data)
{
	struct rc_cluster *cl = data;
	unsigned k, done = 0;
	for (k = 0; k < cl->nprops; k++) {
		done += cl->props[k].calls;
	}
	/* Every proposal callback ran before close_cb. */
	assert_int_equal(done, cl->nprops);
	close_seen = true;
}

static bool pred_close_seen(struct rc_cluster *cl, void *arg)
{
	(void)cl;
	(void)arg;
	return close_seen;
}

static void test_close_completes_pending(void **state)
{
	struct rc_cluster *cl = rc_new(0, 0);
	unsigned i, k, failed = 0;
	int lead;
	(void)state;

	close_seen = false;
	for (i = 0; i < RC_NODES; i++) {
		rc_start(cl, i);
	}
	lead = rc_wait_leader(cl, 0);
	for (k = 0; k < 30; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	cl->in_close = true;
	cons_close(cl->nodes[lead].c, on_closed_count, cl);
	cl->in_close = false;
	cl->nodes[lead].open = false;
	cl->nodes[lead].c = NULL;
	assert_int_equal(cl->cb_inside_close, 0);
	for (k = 0; k < 30; k++) {
		assert_int_equal(cl->props[k].calls, 0);
	}
	assert_true(rc_run_until(cl, pred_close_seen, NULL, RC_RUN_MS));
	for (k = 0; k < 30; k++) {
		assert_int_equal(cl->props[k].calls, 1);
		assert_true(cl->props[k].status == 0 || cl->props[k].status == ING_EUNAVAILABLE);
		failed += cl->props[k].status != 0;
	}
	print_message("close with 30 pending: %u completed with unavailable\n", failed);
	rc_free(cl);
}

static size_t fixed_size(unsigned k)
{
	(void)k;
	return 64;
}

static void test_snapshot_catch_up(void **state)
{
	struct rc_cluster *cl = rc_new(16, 8);
	unsigned i, k, f, restores_at_start, other = 0;
	int lead;
	uint64_t t0;
	(void)state;

	for (i = 0; i < RC_NODES; i++) {
		rc_start(cl, i);
	}
	lead = rc_wait_leader(cl, 0);
	f = ((unsigned)lead + 1) % RC_NODES;
	for (i = 0; i < RC_NODES; i++) {
		if ((int)i != lead && i != f) {
			other = i;
		}
	}
	for (k = 0; k < 20; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	rc_wait_applied(cl, f, 20);
	rc_close(cl, f);

	/* In batches: each one ends with a snapshot whose put completes (and
	 * compacts the leader's in-memory log to the trailing 8) well before
	 * the follower comes back, so it can only catch up by install. */
	for (k = 20; k < 120; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
		if (k % 20 == 19) {
			assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
			rc_run_for(cl, 20);
		}
	}
	rc_wait_applied(cl, (unsigned)lead, 120);
	rc_wait_applied(cl, other, 120);
	assert_true(cl->nodes[lead].app.snapshots > 0);

	t0 = uv_hrtime();
	rc_start(cl, f);
	restores_at_start = cl->nodes[f].app.restores; /* its own last snapshot */
	rc_wait_applied(cl, f, 120);
	print_message("follower caught up through snapshot in %.0f ms (restores: %u at start, "
	              "%u total; leader took %u snapshots)\n",
	              ms_since(t0), restores_at_start, cl->nodes[f].app.restores,
	              cl->nodes[lead].app.snapshots);
	assert_true(cl->nodes[f].app.restores > restores_at_start);
	for (i = 0; i < RC_NODES; i++) {
		assert_true(capp_equal(&cl->nodes[i].app, &cl->nodes[lead].app));
	}
	check_indexes(cl, f, 0, 120, 0, fixed_size);

	/* And it keeps applying at the right indexes after the restore. */
	for (k = 120; k < 130; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	rc_wait_applied(cl, f, 130);
	check_indexes(cl, f, 0, 130, 0, fixed_size);
	rc_free(cl);
}

/* Size of the largest snapshot data file libraft keeps in dir (0: none). */
static long largest_snapshot(const char *dir)
{
	uv_fs_t req;
	uv_dirent_t ent;
	long max = 0;
	char path[512];
	assert_true(uv_fs_scandir(NULL, &req, dir, 0, NULL) >= 0);
	while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
		struct stat st;
		size_t len = strlen(ent.name);
		if (strncmp(ent.name, "snapshot-", 9) != 0 ||
		    (len > 5 && strcmp(ent.name + len - 5, ".meta") == 0)) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, ent.name);
		assert_int_equal(stat(path, &st), 0);
		max = st.st_size > max ? st.st_size : max;
	}
	uv_fs_req_cleanup(&req);
	return max;
}

/* Reference snapshots (raft/snapref.c): libraft keeps a few bytes, not a
 * copy; a follower behind the leader's log gets a real copy installed,
 * made only then; a restart reads no state; a node whose state is older
 * than its reference refuses to start. */
static void test_snapshot_reference(void **state)
{
	struct rc_cluster *cl = rc_new(16, 8);
	struct cons_callbacks cb;
	struct ing_error e = {0};
	struct rc_node *o;
	unsigned i, k, f, other = 0;
	int lead;
	(void)state;

	for (i = 0; i < RC_NODES; i++) {
		cl->nodes[i].durable = true;
		rc_start(cl, i);
	}
	lead = rc_wait_leader(cl, 0);
	f = ((unsigned)lead + 1) % RC_NODES;
	for (i = 0; i < RC_NODES; i++) {
		if ((int)i != lead && i != f) {
			other = i;
		}
	}
	o = &cl->nodes[other];
	for (k = 0; k < 20; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	rc_wait_applied(cl, f, 20);
	rc_close(cl, f);
	for (k = 20; k < 120; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
		if (k % 20 == 19) {
			assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
			rc_run_for(cl, 20);
		}
	}
	rc_wait_applied(cl, (unsigned)lead, 120);
	rc_wait_applied(cl, other, 120);
	assert_true(cl->nodes[lead].app.syncs > 0);
	/* Copies are made only for installs: none on the node that never led
	 * (the leader may have tried one for the stopped follower). */
	assert_int_equal(cl->nodes[other].app.copies, 0);
	/* 16 bytes, compressed by libraft: far below one entry's 64. */
	assert_true(largest_snapshot(cl->nodes[lead].dir) > 0);
	assert_true(largest_snapshot(cl->nodes[lead].dir) < 64);

	/* The follower restarts with its state (20 entries, its own reference
	 * at 16) and can only catch up by an install of a real copy. */
	cl->nodes[f].keep = true;
	rc_start(cl, f);
	rc_wait_applied(cl, f, 120);
	assert_true(cl->nodes[lead].app.copies > 0);
	assert_true(cl->nodes[f].app.restores > 0);
	for (i = 0; i < RC_NODES; i++) {
		assert_true(capp_equal(&cl->nodes[i].app, &cl->nodes[lead].app));
	}
	check_indexes(cl, f, 0, 120, 0, fixed_size);

	/* A restart with the state kept checks the reference, loads nothing. */
	rc_close(cl, other);
	o->keep = true;
	rc_start(cl, other);
	assert_int_equal(o->app.restores, 0);
	assert_int_equal(o->app.fatals, 0);
	for (k = 120; k < 130; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	rc_wait_applied(cl, other, 130);
	check_indexes(cl, other, 0, 130, 0, fixed_size);

	/* The same node with its state lost: refused at start. */
	rc_close(cl, other);
	capp_free(&o->app);
	capp_init(&o->app);
	cb = capp_callbacks_durable(&o->app);
	assert_int_equal(cons_start(&cl->loop, &o->cfg, &cb, &o->c, &e), ING_ECORRUPT);
	print_message("start with a lost state refused: %s\n", e.msg);
	o->c = NULL;
	rc_run_for(cl, 50); /* libraft's handles of the failed start close */
	rc_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_validation),
	    cmocka_unit_test(test_start_fails_on_busy_port),
	    cmocka_unit_test(test_elect_replicate_failover_restart),
	    cmocka_unit_test(test_close_completes_pending),
	    cmocka_unit_test(test_snapshot_catch_up),
	    cmocka_unit_test(test_snapshot_reference),
	};
	/* Peers write to sockets closed under them: as in the daemon. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
