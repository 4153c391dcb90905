/*
 * test_consensus.c - raft/consensus.h on real libraft 0.15 with its libuv
 * backend: three nodes in one process on one loop, over TCP on 127.0.0.1
 * (free ports found by binding port 0), each with its own temporary
 * directory and an in-memory state machine (tests/lib/consapp.h).
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
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "common/log.h"
#include "raft/consensus.h"
#include "tests/lib/consapp.h"
#include "tests/lib/testutil.h"

#define N         3
#define RUN_MS    10000
#define MAX_PROPS 256

struct tnode {
	struct cons *c;
	struct cons_config cfg;
	char dir[256];
	struct capp app;
	bool open;
	bool closed; /* close_cb ran */
};

struct tprop {
	struct cons_proposal p;
	int calls;
	int status;
	uint64_t result;
	bool had_result;
};

struct cluster {
	uv_loop_t loop;
	uv_timer_t tick;
	struct tnode nodes[N];
	struct cons_peer peers[N];
	char addrs[N][32];
	struct tprop props[MAX_PROPS];
	unsigned nprops;
	bool in_close;   /* a cons_close call is on the stack */
	bool close_seen; /* on_closed_count ran */
	unsigned cb_inside_close;
};

static void set_log_level(void)
{
	const char *s = getenv("INGOT_TEST_LOG");
	enum ing_log_level level = ING_LOG_LEVEL_WARN;
	if (s != NULL) {
		ing_log_parse_level(s, &level);
	}
	ing_log_set_level(level);
}

/* Ports the kernel just handed out for 127.0.0.1: held open together so
 * they differ, released right before libraft binds them. */
static void free_ports(unsigned short *ports, unsigned n)
{
	int fds[N];
	unsigned i;
	for (i = 0; i < n; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t len = sizeof(a);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(bind(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(getsockname(fds[i], (struct sockaddr *)&a, &len), 0);
		ports[i] = ntohs(a.sin_port);
	}
	for (i = 0; i < n; i++) {
		close(fds[i]);
	}
}

static void noop_tick(uv_timer_t *t)
{
	(void)t;
}

static struct cluster *cluster_new(unsigned threshold, unsigned trailing)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	unsigned short ports[N];
	unsigned i;

	assert_non_null(cl);
	set_log_level();
	assert_int_equal(uv_loop_init(&cl->loop), 0);
	assert_int_equal(uv_timer_init(&cl->loop, &cl->tick), 0);
	free_ports(ports, N);
	for (i = 0; i < N; i++) {
		snprintf(cl->addrs[i], sizeof(cl->addrs[i]), "127.0.0.1:%u", ports[i]);
		cl->peers[i].id = i + 1;
		cl->peers[i].address = cl->addrs[i];
	}
	for (i = 0; i < N; i++) {
		struct tnode *n = &cl->nodes[i];
		tu_tmpdir(n->dir, sizeof(n->dir));
		n->cfg.id = i + 1;
		n->cfg.address = cl->addrs[i];
		n->cfg.dir = n->dir;
		n->cfg.initial = cl->peers;
		n->cfg.ninitial = N;
		n->cfg.snapshot_threshold = threshold;
		n->cfg.snapshot_trailing = trailing;
		capp_init(&n->app);
	}
	return cl;
}

/* Runs the loop until pred holds; false after ms. */
static bool run_until(struct cluster *cl, bool (*pred)(struct cluster *, void *), void *arg,
                      unsigned ms)
{
	uint64_t deadline;
	bool ok = true;

	uv_update_time(&cl->loop);
	deadline = uv_now(&cl->loop) + ms;
	uv_timer_start(&cl->tick, noop_tick, 5, 5);
	while (!pred(cl, arg)) {
		if (uv_now(&cl->loop) > deadline) {
			ok = false;
			break;
		}
		uv_run(&cl->loop, UV_RUN_ONCE);
	}
	uv_timer_stop(&cl->tick);
	return ok;
}

static bool pred_never(struct cluster *cl, void *arg)
{
	(void)cl;
	(void)arg;
	return false;
}

/* Runs the loop for ms, whatever happens. */
static void run_for(struct cluster *cl, unsigned ms)
{
	run_until(cl, pred_never, NULL, ms);
}

static void start_node(struct cluster *cl, unsigned i)
{
	struct tnode *n = &cl->nodes[i];
	struct cons_callbacks cb;
	struct ing_error e = {0};

	capp_free(&n->app);
	capp_init(&n->app);
	cb = capp_callbacks(&n->app);
	if (cons_start(&cl->loop, &n->cfg, &cb, &n->c, &e) != 0) {
		fail_msg("cons_start node %u: %s", i + 1, e.msg);
	}
	n->open = true;
	n->closed = false;
}

static void on_closed(void *data)
{
	struct tnode *n = data;
	n->closed = true;
}

static bool pred_closed(struct cluster *cl, void *arg)
{
	(void)cl;
	return ((struct tnode *)arg)->closed;
}

static void close_node(struct cluster *cl, unsigned i)
{
	struct tnode *n = &cl->nodes[i];
	assert_true(n->open);
	cl->in_close = true;
	cons_close(n->c, on_closed, n);
	cl->in_close = false;
	n->open = false;
	n->c = NULL;
	assert_true(run_until(cl, pred_closed, n, RUN_MS));
}

static void cluster_free(struct cluster *cl)
{
	unsigned i;
	for (i = 0; i < N; i++) {
		if (cl->nodes[i].open) {
			close_node(cl, i);
		}
	}
	uv_close((uv_handle_t *)&cl->tick, NULL);
	/* Nothing of ours or libraft's may keep the loop alive. */
	assert_int_equal(uv_run(&cl->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&cl->loop), 0);
	for (i = 0; i < N; i++) {
		capp_free(&cl->nodes[i].app);
		tu_rmrf(cl->nodes[i].dir);
	}
	free(cl);
}

/* Index of the open node whose last reported role is LEADER_READY in a term
 * above min_term, or -1. */
static int ready_leader(struct cluster *cl, uint64_t min_term)
{
	unsigned i;
	for (i = 0; i < N; i++) {
		struct tnode *n = &cl->nodes[i];
		if (n->open && capp_role(&n->app) == CONS_LEADER_READY &&
		    n->app.roles[n->app.nroles - 1].term > min_term) {
			return (int)i;
		}
	}
	return -1;
}

static bool pred_ready(struct cluster *cl, void *arg)
{
	return ready_leader(cl, *(uint64_t *)arg) >= 0;
}

static int wait_leader(struct cluster *cl, uint64_t min_term)
{
	assert_true(run_until(cl, pred_ready, &min_term, RUN_MS));
	return ready_leader(cl, min_term);
}

static void prop_cb(struct cons_proposal *p, int status, void *result)
{
	struct tprop *t = (struct tprop *)p;
	struct cluster *cl = p->data;
	t->calls++;
	t->status = status;
	if (cl->in_close) {
		cl->cb_inside_close++;
	}
	if (result != NULL) {
		t->had_result = true;
		t->result = *(uint64_t *)result;
		free(result);
	}
}

/* Proposes payload `seed` of len bytes on node i; returns cons_propose's
 * code and the proposal slot in *out. */
static int propose(struct cluster *cl, unsigned i, uint32_t seed, size_t len, struct tprop **out)
{
	struct tprop *t;
	uint8_t buf[512];
	int rv;

	assert_true(cl->nprops < MAX_PROPS && len <= sizeof(buf));
	t = &cl->props[cl->nprops];
	memset(t, 0, sizeof(*t));
	t->p.data = cl;
	t->p.cb = prop_cb;
	capp_payload(buf, len, seed);
	rv = cons_propose(cl->nodes[i].c, &t->p, buf, len);
	if (rv == 0) {
		cl->nprops++;
	}
	if (out != NULL) {
		*out = t;
	}
	return rv;
}

static bool pred_props_done(struct cluster *cl, void *arg)
{
	unsigned i;
	(void)arg;
	for (i = 0; i < cl->nprops; i++) {
		if (cl->props[i].calls == 0) {
			return false;
		}
	}
	return true;
}

struct applied_goal {
	unsigned node;
	size_t n;
};

static bool pred_applied(struct cluster *cl, void *arg)
{
	struct applied_goal *g = arg;
	return cl->nodes[g->node].app.n >= g->n;
}

static void wait_applied(struct cluster *cl, unsigned node, size_t n)
{
	struct applied_goal g = {node, n};
	if (!run_until(cl, pred_applied, &g, RUN_MS)) {
		fail_msg("node %u applied %zu of %zu entries", node + 1, cl->nodes[node].app.n, n);
	}
}

/* Every proposal's index holds its payload on node i, in proposal order. */
static void check_indexes(struct cluster *cl, unsigned i, unsigned first, unsigned count,
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

	set_log_level();
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
	struct cluster *cl = cluster_new(0, 0);
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
	cluster_free(cl);
}

static void test_elect_replicate_failover_restart(void **state)
{
	struct cluster *cl = cluster_new(0, 0);
	struct tprop *t;
	uint64_t t0, term;
	unsigned i, k, j, f0, f1, nf = 0, followers[N];
	int lead, lead2;
	const struct capp *la;
	(void)state;

	t0 = uv_hrtime();
	for (i = 0; i < N; i++) {
		start_node(cl, i);
	}
	lead = wait_leader(cl, 0);
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
		assert_int_equal(nm, N);
		for (k = 0; k < nm; k++) {
			assert_int_equal(m[k].role, CONS_VOTER);
			assert_string_equal(m[k].address, cl->addrs[m[k].id - 1]);
		}
		free(m);
	}

	for (i = 0; i < N; i++) {
		if ((int)i != lead) {
			followers[nf++] = i;
		}
	}
	f0 = followers[0];
	f1 = followers[1];

	/* Followers refuse, without a callback; bad lengths are refused. */
	assert_int_equal(propose(cl, f0, 1, 16, &t), ING_ENOTLEADER);
	assert_int_equal(propose(cl, f1, 1, 16, &t), ING_ENOTLEADER);
	assert_int_equal(propose(cl, (unsigned)lead, 1, 12, &t), ING_EINVAL);
	assert_int_equal(propose(cl, (unsigned)lead, 1, 0, &t), ING_EINVAL);
	assert_int_equal(cl->nprops, 0);
	run_for(cl, 50);
	assert_int_equal(t->calls, 0);

	/* Varied sizes, applied in the same order everywhere; results reach
	 * the proposer, other nodes free theirs. */
	t0 = uv_hrtime();
	for (k = 0; k < 40; k++) {
		assert_int_equal(propose(cl, (unsigned)lead, 1000 + k, varied_size(k), NULL), 0);
		assert_int_equal(cl->props[k].calls, 0); /* never inside cons_propose */
	}
	assert_true(run_until(cl, pred_props_done, NULL, RUN_MS));
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
	for (i = 0; i < N; i++) {
		wait_applied(cl, i, 40);
		check_indexes(cl, i, 0, 40, 1000, varied_size);
	}
	assert_true(capp_equal(&cl->nodes[f0].app, &cl->nodes[lead].app));
	assert_true(capp_equal(&cl->nodes[f1].app, &cl->nodes[lead].app));
	assert_int_equal(cl->nodes[lead].app.free_results, 0);
	assert_int_equal(cl->nodes[f0].app.free_results, 40);
	assert_int_equal(cl->nodes[f1].app.free_results, 40);

	/* Close the leader: one of the two others takes over. */
	t0 = uv_hrtime();
	close_node(cl, (unsigned)lead);
	lead2 = wait_leader(cl, term);
	print_message("re-elected after closing the leader: %.0f ms (node %d)\n", ms_since(t0),
	              lead2 + 1);
	assert_true(lead2 != lead);
	for (k = 40; k < 60; k++) {
		assert_int_equal(propose(cl, (unsigned)lead2, 1000 + k, varied_size(k), NULL), 0);
	}
	assert_true(run_until(cl, pred_props_done, NULL, RUN_MS));
	for (k = 40; k < 60; k++) {
		assert_int_equal(cl->props[k].status, 0);
		assert_int_equal(cl->props[k].result, cl->props[k].p.index);
	}

	/* Restart the old leader from its directory, with an empty state
	 * machine: it replays and catches up at the same indexes. */
	t0 = uv_hrtime();
	start_node(cl, (unsigned)lead);
	j = (unsigned)lead2;
	wait_applied(cl, j, 60);
	wait_applied(cl, (unsigned)lead, 60);
	print_message("restarted node caught up in %.0f ms\n", ms_since(t0));
	for (i = 0; i < N; i++) {
		assert_true(capp_equal(&cl->nodes[i].app, &cl->nodes[j].app));
	}
	check_indexes(cl, (unsigned)lead, 0, 60, 1000, varied_size);
	assert_int_equal(cl->nodes[lead].app.restores, 0);
	assert_int_equal(cl->nodes[lead].app.fatals, 0);
	cluster_free(cl);
}

static void on_closed_count(void *data)
{
	struct cluster *cl = data;
	unsigned k, done = 0;
	for (k = 0; k < cl->nprops; k++) {
		done += cl->props[k].calls;
	}
	/* Every proposal callback ran before close_cb. */
	assert_int_equal(done, cl->nprops);
	cl->close_seen = true;
}

static bool pred_close_seen(struct cluster *cl, void *arg)
{
	(void)arg;
	return cl->close_seen;
}

static void test_close_completes_pending(void **state)
{
	struct cluster *cl = cluster_new(0, 0);
	unsigned i, k, failed = 0;
	int lead;
	(void)state;

	for (i = 0; i < N; i++) {
		start_node(cl, i);
	}
	lead = wait_leader(cl, 0);
	for (k = 0; k < 30; k++) {
		assert_int_equal(propose(cl, (unsigned)lead, k, 64, NULL), 0);
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
	assert_true(run_until(cl, pred_close_seen, NULL, RUN_MS));
	for (k = 0; k < 30; k++) {
		assert_int_equal(cl->props[k].calls, 1);
		assert_true(cl->props[k].status == 0 || cl->props[k].status == ING_EUNAVAILABLE);
		failed += cl->props[k].status != 0;
	}
	print_message("close with 30 pending: %u completed with unavailable\n", failed);
	cluster_free(cl);
}

static size_t fixed_size(unsigned k)
{
	(void)k;
	return 64;
}

static void test_snapshot_catch_up(void **state)
{
	struct cluster *cl = cluster_new(16, 8);
	unsigned i, k, f, restores_at_start, other = 0;
	int lead;
	uint64_t t0;
	(void)state;

	for (i = 0; i < N; i++) {
		start_node(cl, i);
	}
	lead = wait_leader(cl, 0);
	f = ((unsigned)lead + 1) % N;
	for (i = 0; i < N; i++) {
		if ((int)i != lead && i != f) {
			other = i;
		}
	}
	for (k = 0; k < 20; k++) {
		assert_int_equal(propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(run_until(cl, pred_props_done, NULL, RUN_MS));
	wait_applied(cl, f, 20);
	close_node(cl, f);

	/* In batches: each one ends with a snapshot whose put completes (and
	 * compacts the leader's in-memory log to the trailing 8) well before
	 * the follower comes back, so it can only catch up by install. */
	for (k = 20; k < 120; k++) {
		assert_int_equal(propose(cl, (unsigned)lead, k, 64, NULL), 0);
		if (k % 20 == 19) {
			assert_true(run_until(cl, pred_props_done, NULL, RUN_MS));
			run_for(cl, 20);
		}
	}
	wait_applied(cl, (unsigned)lead, 120);
	wait_applied(cl, other, 120);
	assert_true(cl->nodes[lead].app.snapshots > 0);

	t0 = uv_hrtime();
	start_node(cl, f);
	restores_at_start = cl->nodes[f].app.restores; /* its own last snapshot */
	wait_applied(cl, f, 120);
	print_message("follower caught up through snapshot in %.0f ms (restores: %u at start, "
	              "%u total; leader took %u snapshots)\n",
	              ms_since(t0), restores_at_start, cl->nodes[f].app.restores,
	              cl->nodes[lead].app.snapshots);
	assert_true(cl->nodes[f].app.restores > restores_at_start);
	for (i = 0; i < N; i++) {
		assert_true(capp_equal(&cl->nodes[i].app, &cl->nodes[lead].app));
	}
	check_indexes(cl, f, 0, 120, 0, fixed_size);

	/* And it keeps applying at the right indexes after the restore. */
	for (k = 120; k < 130; k++) {
		assert_int_equal(propose(cl, (unsigned)lead, k, 64, NULL), 0);
	}
	assert_true(run_until(cl, pred_props_done, NULL, RUN_MS));
	wait_applied(cl, f, 130);
	check_indexes(cl, f, 0, 130, 0, fixed_size);
	cluster_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_validation),
	    cmocka_unit_test(test_start_fails_on_busy_port),
	    cmocka_unit_test(test_elect_replicate_failover_restart),
	    cmocka_unit_test(test_close_completes_pending),
	    cmocka_unit_test(test_snapshot_catch_up),
	};
	/* Peers write to sockets closed under them: as in the daemon. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
