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
 * proposals completed by close, never inside cons_close; the proposals of
 * one loop iteration going to libraft as one batch, each with its own
 * result, and a batch failed as a whole when its leader steps down; catch-up through
 * snapshot install.  The election, failover, restart, close and snapshot
 * tests run twice: over libraft's TCP transport and over ours with mutual
 * TLS (raft/transport_tls.c, certificates from tests/lib/pkitest.h).  With
 * TLS, peers played by hand (tests/lib/raftwire.h) attack a follower's and
 * the leader's raft ports: plaintext, a client certificate, another CA's
 * certificate, a node certificate claiming another id (all refused at the
 * handshake), and from a proved peer an entry of type 0, a RequestVote at
 * term 2^64-1, a vote for another candidate and a short header (refused by
 * raft/msgcheck.c); the cluster keeps its leader and term and commits.
 * Every loop run is bounded; each test ends with the loop
 * closing cleanly (no handle left) and its directories removed.
 *
 * Set INGOT_TEST_LOG=debug|info|... to see the logs (default warn).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "raft/consensus.h"
#include "tests/lib/consapp.h"
#include "tests/lib/pkitest.h"
#include "tests/lib/raftcluster.h"
#include "tests/lib/raftwire.h"
#include "tests/lib/testutil.h"

/* TLS: certificates for nodes 1-3, for the TLS_TEST runs. */
static struct tp_pki pki;
static struct ing_tls *node_tls[RC_NODES];

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
	cfg.heartbeat_timeout_ms = 0;
	/* Node 3 with node 1's certificate, and with a client's. */
	cfg.tls = node_tls[0];
	assert_int_equal(cons_start(&loop, &cfg, &cb, &c, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "the TLS certificate is that of node 1, not of node 3"));
	struct ing_tls *client = tp_tls(pki.main_, pki.main_, "client-alice", 0);
	cfg.tls = client;
	assert_int_equal(cons_start(&loop, &cfg, &cb, &c, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "client alice"));
	ing_tls_free(client);
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
			/* One batch: consecutive indexes. */
			assert_int_equal(cl->props[k].p.index, cl->props[k - 1].p.index + 1);
		}
	}
	{
		/* Proposed in one loop iteration: one raft_apply of 40 entries,
		 * each with its own result (above). */
		struct cons_status st;
		cons_status(cl->nodes[lead].c, &st);
		assert_int_equal(st.proposals, 40);
		assert_int_equal(st.proposal_batches, 1);
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
	/* cons_awaits: true for exactly the entries whose result is claimed. */
	assert_int_equal(cl->nodes[lead].app.awaited, 40);
	assert_int_equal(cl->nodes[f0].app.awaited, 0);
	assert_int_equal(cl->nodes[f1].app.awaited, 0);

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

/* A batch that cannot commit: the leader lost both followers.  When it
 * steps down, libraft fails the batch and every proposal of it completes
 * once with unavailable; none was applied on the old leader. */
static void test_batch_fails_on_step_down(void **state)
{
	struct rc_cluster *cl = rc_new(0, 0);
	unsigned i, k;
	int lead;
	size_t applied;
	(void)state;

	for (i = 0; i < RC_NODES; i++) {
		rc_start(cl, i);
	}
	lead = rc_wait_leader(cl, 0);
	for (i = 0; i < RC_NODES; i++) {
		if (i != (unsigned)lead) {
			rc_close(cl, i);
		}
	}
	applied = cl->nodes[lead].app.n;
	for (k = 0; k < 25; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	for (k = 0; k < 25; k++) {
		assert_int_equal(cl->props[k].calls, 1);
		assert_int_equal(cl->props[k].status, ING_EUNAVAILABLE);
		assert_false(cl->props[k].had_result);
	}
	assert_int_equal(cl->nodes[lead].app.n, applied);
	/* The node goes on: as a follower it refuses, without a callback. */
	assert_int_equal(rc_propose(cl, (unsigned)lead, 99, 64, NULL), ING_ENOTLEADER);
	rc_run_for(cl, 20);
	assert_int_equal(cl->props[25].calls, 0);
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

/* Proposes entries [from, to) on lead in batches of 20, each committed. */
static void propose_range(struct rc_cluster *cl, int lead, unsigned from, unsigned to)
{
	for (unsigned k = from; k < to; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
		if (k % 20 == 19 || k + 1 == to)
			assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	}
	rc_wait_applied(cl, (unsigned)lead, to);
}

/* Snapshot pacing (raft/fsm.h): after a snapshot, the next one waits for
 * snapshot_interval_ms unless 16 x the threshold entries pile up first;
 * once the interval is over, the threshold applies again. */
/* The process registry's ingot_raft_snapshots_total (every node of the
 * test counts into it). */
static double snapshots_counted(void)
{
	struct ing_buf b = ING_BUF_INIT;
	double v = -1;
	assert_int_equal(ing_metrics_render(ing_metrics_default(), &b), 0);
	assert_int_equal(ing_buf_append(&b, "", 1), 0);
	const char *p = strstr(b.data, "\ningot_raft_snapshots_total ");
	if (p != NULL)
		v = strtod(p + strlen("\ningot_raft_snapshots_total "), NULL);
	ing_buf_free(&b);
	return v;
}

static unsigned syncs_of_all(struct rc_cluster *cl)
{
	unsigned n = 0;
	for (unsigned i = 0; i < RC_NODES; i++)
		n += cl->nodes[i].app.syncs;
	return n;
}

/* Three durable nodes (reference snapshots) with threshold 8, trailing 4
 * and snapshot_interval_ms interval, started. */
static struct rc_cluster *paced_cluster(unsigned interval_ms)
{
	struct rc_cluster *cl = rc_new(8, 4);
	for (unsigned i = 0; i < RC_NODES; i++) {
		cl->nodes[i].durable = true;
		cl->nodes[i].cfg.snapshot_interval_ms = interval_ms;
		rc_start(cl, i);
	}
	return cl;
}

static void test_snapshot_pacing(void **state)
{
	double counted = snapshots_counted();
	struct rc_cluster *cl = paced_cluster(600000);
	unsigned before;
	int lead;
	(void)state;

	lead = rc_wait_leader(cl, 0);
	/* 50 entries: one snapshot (by index 21), not six. */
	propose_range(cl, lead, 0, 50);
	assert_int_equal(cl->nodes[lead].app.syncs, 1);
	/* The cap: 128 entries past the first snapshot take the next one. */
	propose_range(cl, lead, 50, 160);
	assert_int_equal(cl->nodes[lead].app.syncs, 2);
	/* Every reference snapshot of every node is counted in the metrics. */
	assert_true(counted >= 0);
	assert_true(snapshots_counted() - counted == (double)syncs_of_all(cl));
	rc_free(cl);

	cl = paced_cluster(200);
	lead = rc_wait_leader(cl, 0);
	propose_range(cl, lead, 0, 20);
	before = cl->nodes[lead].app.syncs;
	assert_true(before >= 1);
	/* Past the interval, 8 entries are enough again (20 are far below the
	 * cap). */
	rc_run_for(cl, 300);
	propose_range(cl, lead, 20, 40);
	assert_true(cl->nodes[lead].app.syncs > before);
	rc_free(cl);
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

	/* A restart with the state kept checks the reference, loads nothing,
	 * and skips the entries applied after the last reference (fewer than
	 * the snapshot threshold: no reference was taken at them), which
	 * libraft replays from the log. */
	for (k = 120; k < 125; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	rc_wait_applied(cl, other, 125);
	rc_close(cl, other);
	o->keep = true;
	rc_start(cl, other);
	assert_int_equal(o->app.restores, 0);
	assert_int_equal(o->app.fatals, 0);
	for (k = 125; k < 130; k++) {
		assert_int_equal(rc_propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	rc_wait_applied(cl, other, 130);
	assert_true(o->app.skipped > 0); /* the replay came before 125-129 */
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

/* ---- attacks on the TLS peer transport ------------------------------- */

/* A peer played by hand: a non-blocking socket, optionally a TLS session
 * over it, pumped while the cluster's loop runs. */
struct rogue {
	int fd;
	struct ing_tls_session *tls;
	bool closed; /* the node closed the connection */
};

/* Sends everything (TLS: what the session has ready). */
static void rogue_send_raw(struct rc_cluster *cl, struct rogue *r, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0 && !r->closed) {
		ssize_t w = send(r->fd, c, n, MSG_NOSIGNAL);
		if (w > 0) {
			c += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			uv_run(&cl->loop, UV_RUN_NOWAIT);
		} else {
			r->closed = true;
		}
	}
}

static void rogue_flush(struct rc_cluster *cl, struct rogue *r)
{
	char *data;
	size_t len;
	assert_int_equal(ing_tls_session_take(r->tls, &data, &len), 0);
	rogue_send_raw(cl, r, data, len);
	free(data);
}

/* Reads what the node sent; notes EOF/reset.  TLS: hands it to the session
 * and returns 0 or the session's error. */
static int rogue_poll(struct rc_cluster *cl, struct rogue *r)
{
	char buf[4096];
	uv_run(&cl->loop, UV_RUN_NOWAIT);
	ssize_t n = recv(r->fd, buf, sizeof(buf), 0);
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		r->closed = true;
		return 0;
	}
	if (n < 0 || r->tls == NULL)
		return 0;
	size_t got;
	struct ing_error e;
	assert_int_equal(ing_tls_session_input(r->tls, buf, (size_t)n), 0);
	int rv = ing_tls_session_read(r->tls, buf, sizeof(buf), &got, &e);
	rogue_flush(cl, r);
	return rv;
}

/* Connects to node i's raft port; with tls, completes the handshake (from
 * this side: a refusal of our certificate shows later).  False when the
 * node refused the handshake. */
static bool rogue_connect(struct rc_cluster *cl, unsigned i, struct ing_tls *tls, struct rogue *r)
{
	struct sockaddr_in a;
	char host[32];
	memset(r, 0, sizeof(*r));
	snprintf(host, sizeof(host), "%s", cl->addrs[i]);
	*strrchr(host, ':') = '\0';
	assert_int_equal(uv_ip4_addr(host, atoi(strrchr(cl->addrs[i], ':') + 1), &a), 0);
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
	if (tls == NULL)
		return true;
	struct ing_tls_session_options o = {ING_TLS_CONNECT, NULL, false};
	struct ing_error e;
	size_t got;
	assert_int_equal(ing_tls_session_new(tls, &o, &r->tls, &e), 0);
	assert_int_equal(ing_tls_session_read(r->tls, NULL, 0, &got, &e), 0);
	rogue_flush(cl, r);
	uv_update_time(&cl->loop);
	uint64_t end = uv_now(&cl->loop) + 3000;
	while (!ing_tls_session_established(r->tls) && !r->closed && uv_now(&cl->loop) < end) {
		if (rogue_poll(cl, r) != 0)
			return false;
		usleep(500);
	}
	return ing_tls_session_established(r->tls);
}

static void rogue_send(struct rc_cluster *cl, struct rogue *r, const struct mp_out *o)
{
	struct ing_error e;
	if (r->tls == NULL) {
		rogue_send_raw(cl, r, o->data, o->len);
		return;
	}
	if (ing_tls_session_write(r->tls, o->data, o->len, &e) != 0) {
		r->closed = true;
		return;
	}
	rogue_flush(cl, r);
}

/* True when the node closed the connection (or the TLS session failed)
 * within ms. */
static bool rogue_dropped(struct rc_cluster *cl, struct rogue *r, unsigned ms)
{
	uv_update_time(&cl->loop);
	uint64_t end = uv_now(&cl->loop) + ms;
	while (!r->closed && uv_now(&cl->loop) < end) {
		if (rogue_poll(cl, r) != 0)
			return true;
		usleep(500);
	}
	return r->closed;
}

static void rogue_free(struct rogue *r)
{
	ing_tls_session_free(r->tls);
	close(r->fd);
}

struct snapshot_of_cluster {
	int leader;
	uint64_t term;
};

static struct snapshot_of_cluster observe(struct rc_cluster *cl)
{
	struct snapshot_of_cluster s = {-1, 0};
	for (unsigned i = 0; i < RC_NODES; i++) {
		struct cons_status st;
		cons_status(cl->nodes[i].c, &st);
		if (st.role == CONS_LEADER_READY)
			s.leader = (int)i;
		if (st.term > s.term)
			s.term = st.term;
	}
	return s;
}

/* A connection, a handshake and one message: the node must drop it. */
static void attack(struct rc_cluster *cl, unsigned target, struct ing_tls *tls, uint64_t claim_id,
                   void (*message)(struct mp_out *o, uint64_t term), uint64_t term,
                   const char *what)
{
	struct rogue r;
	struct mp_out o;
	mp_out_init(&o);
	bool up = rogue_connect(cl, target, tls, &r);
	if (up) {
		rw_handshake(&o, claim_id, "127.0.0.1:9999");
		if (message != NULL)
			message(&o, term);
		rogue_send(cl, &r, &o);
		if (!rogue_dropped(cl, &r, 3000))
			fail_msg("%s: the node kept the connection", what);
	}
	print_message("%s: refused%s\n", what, up ? "" : " in the TLS handshake");
	rogue_free(&r);
	mp_out_free(&o);
}

static void msg_entry_type0(struct mp_out *o, uint64_t term)
{
	struct rw_entry e[] = {{term, 0, 8, NULL}};
	rw_append_entries(o, term, 0, 0, 0, e, 1);
}

static void msg_vote_max_term(struct mp_out *o, uint64_t term)
{
	(void)term;
	rw_request_vote(o, UINT64_MAX, 9, 1000, 1, 0);
}

static void msg_vote_for_other(struct mp_out *o, uint64_t term)
{
	rw_request_vote(o, term + 1, 3, 1000, term, 0);
}

static void msg_short_header(struct mp_out *o, uint64_t term)
{
	uint64_t t = term;
	rw_raw(o, 3, &t, 8);
}

static void msg_result(struct mp_out *o, uint64_t term)
{
	rw_append_entries_result(o, term, 1, 0);
}

static void test_tls_peer_attacks(void **state)
{
	struct rc_cluster *cl = rc_new(0, 0);
	(void)state;
	for (unsigned i = 0; i < RC_NODES; i++)
		rc_start(cl, i);
	int lead = rc_wait_leader(cl, 0);
	unsigned f = ((unsigned)lead + 1) % RC_NODES;
	rc_run_for(cl, 300);
	struct snapshot_of_cluster before = observe(cl);
	assert_int_equal(before.leader, lead);

	struct ing_tls *alice = tp_tls(pki.main_, pki.main_, "client-alice", 0);
	/* Trusts both CAs (so only the node can refuse), shows the foreign
	 * CA's node 2. */
	struct ing_tls *foreign2 = tp_tls(pki.dir, pki.foreign, "node-2", 0);
	struct ing_tls *node2 = tp_tls(pki.main_, pki.main_, "node-2", 0);
	struct ing_tls *node9 = tp_tls(pki.main_, pki.main_, "node-9", 0);

	for (unsigned k = 0; k < 2; k++) {
		unsigned target = k == 0 ? f : (unsigned)lead;
		/* Not proved: plaintext, no node certificate, another CA, a
		 * node certificate used for another id.  Each carries the
		 * message that crashes libraft 0.15. */
		attack(cl, target, NULL, 3, msg_entry_type0, before.term, "plaintext");
		attack(cl, target, alice, 3, msg_entry_type0, before.term, "client certificate");
		attack(cl, target, foreign2, 2, msg_entry_type0, before.term, "foreign CA");
		attack(cl, target, node2, 3, msg_entry_type0, before.term, "node 2 claiming 3");
		/* Proved (node 9's own certificate), and still checked. */
		attack(cl, target, node9, 9, msg_entry_type0, before.term, "entry type 0");
		attack(cl, target, node9, 9, msg_vote_max_term, before.term, "term 2^64-1");
		attack(cl, target, node9, 9, msg_vote_for_other, before.term, "vote for node 3");
		attack(cl, target, node9, 9, msg_short_header, before.term, "8-byte header");
	}
	/* A well-formed message from a proved peer is let through. */
	struct rogue r;
	struct mp_out o;
	mp_out_init(&o);
	assert_true(rogue_connect(cl, f, node9, &r));
	rw_handshake(&o, 9, "127.0.0.1:9999");
	msg_result(&o, before.term);
	rogue_send(cl, &r, &o);
	assert_false(rogue_dropped(cl, &r, 300));
	rogue_free(&r);
	mp_out_free(&o);

	/* Nothing disturbed: every node up, same leader, same term, and a
	 * write commits everywhere. */
	rc_run_for(cl, 200);
	struct snapshot_of_cluster after = observe(cl);
	assert_int_equal(after.leader, before.leader);
	assert_int_equal(after.term, before.term);
	for (unsigned i = 0; i < RC_NODES; i++)
		assert_int_equal(cl->nodes[i].app.fatals, 0);
	size_t applied = cl->nodes[lead].app.n;
	assert_int_equal(rc_propose(cl, (unsigned)lead, 77, 64, NULL), 0);
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	for (unsigned i = 0; i < RC_NODES; i++)
		rc_wait_applied(cl, i, applied + 1);

	ing_tls_free(node9);
	ing_tls_free(node2);
	ing_tls_free(foreign2);
	ing_tls_free(alice);
	rc_free(cl);
}

static int tls_on(void **state)
{
	(void)state;
	rc_use_tls(node_tls);
	return 0;
}

static int tls_off(void **state)
{
	(void)state;
	rc_use_tls(NULL);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	tp_make(&pki);
	for (unsigned i = 0; i < RC_NODES; i++) {
		char who[16];
		snprintf(who, sizeof(who), "node-%u", i + 1);
		node_tls[i] = tp_tls(pki.main_, pki.main_, who, ING_TLS_CLIENT_CERTS_REQUIRED);
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < RC_NODES; i++)
		ing_tls_free(node_tls[i]);
	tp_remove(&pki);
	return 0;
}

#define TLS_TEST(f) cmocka_unit_test_prestate_setup_teardown(f, tls_on, tls_off, NULL)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_validation),
	    cmocka_unit_test(test_start_fails_on_busy_port),
	    cmocka_unit_test(test_elect_replicate_failover_restart),
	    cmocka_unit_test(test_close_completes_pending),
	    cmocka_unit_test(test_batch_fails_on_step_down),
	    cmocka_unit_test(test_snapshot_catch_up),
	    cmocka_unit_test(test_snapshot_reference),
	    cmocka_unit_test(test_snapshot_pacing),
	    TLS_TEST(test_elect_replicate_failover_restart),
	    TLS_TEST(test_close_completes_pending),
	    TLS_TEST(test_snapshot_catch_up),
	    TLS_TEST(test_snapshot_reference),
	    TLS_TEST(test_tls_peer_attacks),
	};
	/* Peers write to sockets closed under them: as in the daemon. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
