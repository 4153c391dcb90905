/*
 * test_recover.c - raft/recover.h on real libraft 0.15 directories: three
 * nodes (raft/consensus.h, libuv backend, TCP on 127.0.0.1 with ports
 * found by binding port 0) commit entries and stop; then, offline:
 *
 *  - cons_inspect reads the term and last index;
 *  - cons_recover on one directory with that node alone: restarted alone it
 *    elects itself, re-applies every committed entry and commits new ones,
 *    its configuration is itself alone and stays so across a restart;
 *    also with a snapshot in the directory (small snapshot threshold);
 *  - two survivors: recover one, copy its directory to the other (the
 *    documented procedure), both restart, elect a leader and commit;
 *  - bad inputs (no voters, this node not among them or with another
 *    address, zero or duplicate ids, bad addresses, a directory that does
 *    not exist or holds no raft state): a clear error, and the directory
 *    byte-for-byte unchanged.
 *
 * Every loop run is bounded; each test ends with the loop closing cleanly
 * and its directories removed.  INGOT_TEST_LOG=debug|info shows the logs.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <inttypes.h>
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
#include "raft/recover.h"
#include "tests/lib/consapp.h"
#include "tests/lib/testutil.h"

#define N          3
#define RUN_MS     10000
#define MAX_PROPS  128
#define PAYLOAD_SZ 48

struct tnode {
	struct cons *c;
	struct cons_config cfg;
	struct cons_peer peers[N]; /* the configuration it starts with */
	char dir[256];
	struct capp app;
	bool open, closed;
};

struct tprop {
	struct cons_proposal p;
	int calls, status;
};

struct cluster {
	uv_loop_t loop;
	uv_timer_t tick;
	struct tnode nodes[N];
	char addrs[N][32];
	struct tprop props[MAX_PROPS];
	unsigned nprops;
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

/* Ports the kernel hands out for 127.0.0.1, held together so they differ. */
static void free_ports(unsigned short *ports, unsigned n)
{
	int fds[N];
	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t len = sizeof(a);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(bind(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(getsockname(fds[i], (struct sockaddr *)&a, &len), 0);
		ports[i] = ntohs(a.sin_port);
	}
	for (unsigned i = 0; i < n; i++) {
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

	assert_non_null(cl);
	set_log_level();
	assert_int_equal(uv_loop_init(&cl->loop), 0);
	assert_int_equal(uv_timer_init(&cl->loop, &cl->tick), 0);
	free_ports(ports, N);
	for (unsigned i = 0; i < N; i++) {
		snprintf(cl->addrs[i], sizeof(cl->addrs[i]), "127.0.0.1:%u", ports[i]);
	}
	for (unsigned i = 0; i < N; i++) {
		struct tnode *n = &cl->nodes[i];
		tu_tmpdir(n->dir, sizeof(n->dir));
		for (unsigned j = 0; j < N; j++) {
			n->peers[j].id = j + 1;
			n->peers[j].address = cl->addrs[j];
		}
		n->cfg.id = i + 1;
		n->cfg.address = cl->addrs[i];
		n->cfg.dir = n->dir;
		/* As the daemon does on every start: the configured peers, which
		 * libraft ignores once the directory holds state. */
		n->cfg.initial = n->peers;
		n->cfg.ninitial = N;
		n->cfg.snapshot_threshold = threshold;
		n->cfg.snapshot_trailing = trailing;
		capp_init(&n->app);
	}
	return cl;
}

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
	((struct tnode *)data)->closed = true;
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
	cons_close(n->c, on_closed, n);
	n->open = false;
	n->c = NULL;
	assert_true(run_until(cl, pred_closed, n, RUN_MS));
}

static void cluster_free(struct cluster *cl)
{
	for (unsigned i = 0; i < N; i++) {
		if (cl->nodes[i].open) {
			close_node(cl, i);
		}
	}
	uv_close((uv_handle_t *)&cl->tick, NULL);
	assert_int_equal(uv_run(&cl->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&cl->loop), 0);
	for (unsigned i = 0; i < N; i++) {
		capp_free(&cl->nodes[i].app);
		tu_rmrf(cl->nodes[i].dir);
	}
	free(cl);
}

/* The open node whose last reported role is LEADER_READY, or -1. */
static int ready_leader(struct cluster *cl)
{
	for (unsigned i = 0; i < N; i++) {
		if (cl->nodes[i].open && capp_role(&cl->nodes[i].app) == CONS_LEADER_READY) {
			return (int)i;
		}
	}
	return -1;
}

static bool pred_ready(struct cluster *cl, void *arg)
{
	(void)arg;
	return ready_leader(cl) >= 0;
}

static int wait_leader(struct cluster *cl)
{
	assert_true(run_until(cl, pred_ready, NULL, RUN_MS));
	return ready_leader(cl);
}

static void prop_cb(struct cons_proposal *p, int status, void *result)
{
	struct tprop *t = (struct tprop *)p;
	t->calls++;
	t->status = status;
	free(result);
}

static bool pred_props_done(struct cluster *cl, void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < cl->nprops; i++) {
		if (cl->props[i].calls == 0) {
			return false;
		}
	}
	return true;
}

/* Proposes `count` payloads (seeds = proposal numbers) on node i and waits
 * until every one committed. */
static void propose_many(struct cluster *cl, unsigned i, unsigned count)
{
	for (unsigned k = 0; k < count; k++) {
		struct tprop *t = &cl->props[cl->nprops];
		uint8_t buf[PAYLOAD_SZ];

		assert_true(cl->nprops < MAX_PROPS);
		memset(t, 0, sizeof(*t));
		t->p.cb = prop_cb;
		capp_payload(buf, sizeof(buf), cl->nprops);
		assert_int_equal(cons_propose(cl->nodes[i].c, &t->p, buf, sizeof(buf)), 0);
		cl->nprops++;
	}
	assert_true(run_until(cl, pred_props_done, NULL, RUN_MS));
	for (unsigned k = 0; k < cl->nprops; k++) {
		assert_int_equal(cl->props[k].status, 0);
	}
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

/* Node i holds every proposal so far, at its index, with its payload. */
static void check_all_applied(struct cluster *cl, unsigned i)
{
	const struct capp *a = &cl->nodes[i].app;
	size_t j = 0;

	for (unsigned k = 0; k < cl->nprops; k++) {
		uint8_t buf[PAYLOAD_SZ];
		while (j < a->n && a->e[j].index < cl->props[k].p.index) {
			j++;
		}
		if (j == a->n || a->e[j].index != cl->props[k].p.index) {
			fail_msg("node %u lacks proposal %u (index %" PRIu64 ")", i + 1, k,
			         cl->props[k].p.index);
		}
		capp_payload(buf, sizeof(buf), k);
		assert_int_equal(a->e[j].len, sizeof(buf));
		assert_memory_equal(a->e[j].buf, buf, sizeof(buf));
	}
	assert_int_equal(a->index_violations, 0);
}

/* Starts 3 nodes, commits `count` entries, waits until every node applied
 * them, stops all. */
static struct cluster *committed_then_stopped(unsigned threshold, unsigned trailing, unsigned count)
{
	struct cluster *cl = cluster_new(threshold, trailing);
	int lead;

	for (unsigned i = 0; i < N; i++) {
		start_node(cl, i);
	}
	lead = wait_leader(cl);
	propose_many(cl, (unsigned)lead, count);
	for (unsigned i = 0; i < N; i++) {
		wait_applied(cl, i, count);
	}
	for (unsigned i = 0; i < N; i++) {
		close_node(cl, i);
	}
	return cl;
}

/* A cheap fingerprint of a directory: every file's name, size and bytes. */
static uint64_t dir_fingerprint(const char *dir)
{
	uint64_t h = 1469598103934665603ull;
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	if (n < 0) {
		return 0;
	}
	for (int i = 0; i < n; i++) {
		char path[512];
		void *buf = NULL;
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		for (const char *p = names[i]->d_name; *p != '\0'; p++) {
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		}
		if (tu_read_file(path, &buf, &len) == 0) {
			for (size_t k = 0; k < len; k++) {
				h = (h ^ ((uint8_t *)buf)[k]) * 1099511628211ull;
			}
			h = (h ^ len) * 1099511628211ull;
			free(buf);
		}
		free(names[i]);
	}
	free(names);
	return h;
}

static bool dir_is_empty(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, NULL);
	for (int i = 0; i < n; i++) {
		free(names[i]);
	}
	free(names);
	return n == 2; /* "." and ".." */
}

/* ---- tests ---- */

static void recover_single_survivor(unsigned threshold, unsigned trailing, unsigned count)
{
	struct cluster *cl = committed_then_stopped(threshold, trailing, count);
	struct tnode *n = &cl->nodes[1]; /* any survivor */
	struct cons_peer self = {2, cl->addrs[1]};
	struct cons_disk_state before, after;
	struct cons_member *m = NULL;
	struct ing_error e = {0};
	unsigned nm = 0;
	uint64_t index = 0, t0;
	int lead;

	assert_int_equal(cons_inspect(n->dir, 2, cl->addrs[1], &before, &e), 0);
	print_message("before: term %" PRIu64 " last %" PRIu64 " (term %" PRIu64
	              ") snapshot %" PRIu64 " entries %" PRIu64 " configs %" PRIu64 "\n",
	              before.term, before.last_index, before.last_term, before.snapshot_index,
	              before.n_entries, before.n_config);
	assert_true(before.term >= 1);
	assert_true(before.last_index >= cl->props[cl->nprops - 1].p.index);
	if (threshold > 0) {
		assert_true(before.snapshot_index > 0);
	}

	t0 = uv_hrtime();
	assert_int_equal(cons_recover(n->dir, 2, cl->addrs[1], &self, 1, &index, &e), 0);
	print_message("cons_recover: %.1f ms, entry at %" PRIu64 "\n",
	              (double)(uv_hrtime() - t0) / 1e6, index);
	assert_int_equal(index, before.last_index + 1);
	assert_int_equal(cons_inspect(n->dir, 2, cl->addrs[1], &after, &e), 0);
	assert_int_equal(after.last_index, index);
	assert_int_equal(after.last_config_index, index);
	assert_int_equal(after.term, before.term + 1);

	/* Alone, with the daemon's usual configuration (3 initial peers). */
	t0 = uv_hrtime();
	start_node(cl, 1);
	lead = wait_leader(cl);
	assert_int_equal(lead, 1);
	/* Leader in the raised term, one no leader of the old cluster used. */
	assert_int_equal(n->app.roles[n->app.nroles - 1].term, before.term + 1);
	print_message("recovered node leader ready after %.0f ms\n",
	              (double)(uv_hrtime() - t0) / 1e6);
	wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 1);
	assert_int_equal(cons_members(n->c, &m, &nm), 0);
	assert_int_equal(nm, 1);
	assert_int_equal(m[0].id, 2);
	assert_int_equal(m[0].role, CONS_VOTER);
	assert_string_equal(m[0].address, cl->addrs[1]);
	free(m);

	/* New entries commit with a quorum of one. */
	propose_many(cl, 1, 5);
	wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 1);

	/* And the configuration holds across a restart. */
	close_node(cl, 1);
	start_node(cl, 1);
	assert_int_equal(wait_leader(cl), 1);
	wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 1);
	cluster_free(cl);
}

static void test_single_survivor(void **state)
{
	(void)state;
	recover_single_survivor(0, 0, 40);
}

static void test_single_survivor_with_snapshot(void **state)
{
	(void)state;
	/* Snapshots every 16 entries, 4 kept: the directory's log starts after
	 * a snapshot, and the restart restores it before re-applying. */
	recover_single_survivor(16, 4, 60);
}

static int copy_dir(const char *from, const char *to)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
	return system(cmd);
}

static void test_two_survivors_copy(void **state)
{
	struct cluster *cl = committed_then_stopped(0, 0, 20);
	struct cons_peer voters[2] = {{1, cl->addrs[0]}, {2, cl->addrs[1]}};
	struct ing_error e = {0};
	struct cons_member *m = NULL;
	unsigned nm = 0;
	uint64_t index = 0;
	int lead;
	(void)state;

	assert_int_equal(cons_recover(cl->nodes[0].dir, 1, cl->addrs[0], voters, 2, &index, &e), 0);
	/* libraft's procedure: the other survivor gets a copy. */
	assert_int_equal(copy_dir(cl->nodes[0].dir, cl->nodes[1].dir), 0);
	start_node(cl, 0);
	start_node(cl, 1);
	lead = wait_leader(cl);
	assert_true(lead == 0 || lead == 1);
	assert_int_equal(cons_members(cl->nodes[lead].c, &m, &nm), 0);
	assert_int_equal(nm, 2);
	free(m);
	propose_many(cl, (unsigned)lead, 5);
	wait_applied(cl, 0, cl->nprops);
	wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 0);
	check_all_applied(cl, 1);
	assert_true(capp_equal(&cl->nodes[0].app, &cl->nodes[1].app));
	cluster_free(cl);
}

static void expect_refused(const char *dir, uint64_t id, const char *address,
                           const struct cons_peer *voters, unsigned n, int code, const char *needle)
{
	struct ing_error e = {0};
	uint64_t index = 12345;
	int rv = cons_recover(dir, id, address, voters, n, &index, &e);

	if (rv != code || strstr(e.msg, needle) == NULL) {
		fail_msg("cons_recover: got %s \"%s\", expected %s with \"%s\"", ing_err_name(rv),
		         e.msg, ing_err_name(code), needle);
	}
	assert_int_equal(index, 12345); /* untouched on failure */
}

static void test_bad_inputs(void **state)
{
	struct cluster *cl = committed_then_stopped(0, 0, 5);
	const char *dir = cl->nodes[0].dir;
	const char *a1 = cl->addrs[0], *a2 = cl->addrs[1];
	struct cons_peer others[2] = {{2, a2}, {3, cl->addrs[2]}};
	struct cons_peer dup_id[2] = {{1, a1}, {1, a2}};
	struct cons_peer dup_addr[2] = {{1, a1}, {2, a1}};
	struct cons_peer zero[2] = {{1, a1}, {0, a2}};
	struct cons_peer bad_addr[2] = {{1, a1}, {2, "localhost:7501"}};
	struct cons_peer moved[1] = {{1, a2}};
	struct cons_peer self[1] = {{1, a1}};
	struct cons_disk_state ds;
	struct ing_error e = {0};
	char empty[256], missing[300];
	uint64_t fp;
	int lead;
	(void)state;

	/* A directory libraft already loaded once (its open segment closed),
	 * so that any later write would show. */
	assert_int_equal(cons_inspect(dir, 1, a1, &ds, &e), 0);
	fp = dir_fingerprint(dir);

	expect_refused(dir, 1, a1, others, 2, ING_EINVAL, "must be among the voters");
	expect_refused(dir, 1, a1, self, 0, ING_EINVAL, "empty");
	expect_refused(dir, 1, a1, NULL, 1, ING_EINVAL, "empty");
	expect_refused(dir, 1, a1, dup_id, 2, ING_EINVAL, "share an id or an address");
	expect_refused(dir, 1, a1, dup_addr, 2, ING_EINVAL, "share an id or an address");
	expect_refused(dir, 1, a1, zero, 2, ING_EINVAL, "is invalid");
	expect_refused(dir, 1, a1, bad_addr, 2, ING_EINVAL, "is invalid");
	expect_refused(dir, 1, a1, moved, 1, ING_EINVAL, "in the new configuration but");
	expect_refused(dir, 1, "127.0.0.1", self, 1, ING_EINVAL, "a.b.c.d:port");
	expect_refused(NULL, 1, a1, self, 1, ING_EINVAL, "required");
	assert_int_equal(dir_fingerprint(dir), fp);

	/* No raft state: an empty directory stays empty; a missing one is not
	 * created. */
	tu_tmpdir(empty, sizeof(empty));
	expect_refused(empty, 1, a1, self, 1, ING_ENOTFOUND, "holds no raft state");
	assert_true(dir_is_empty(empty));
	assert_int_equal(cons_inspect(empty, 1, a1, &ds, &e), ING_ENOTFOUND);
	assert_true(dir_is_empty(empty));
	snprintf(missing, sizeof(missing), "%s/nope", empty);
	expect_refused(missing, 1, a1, self, 1, ING_ENOTFOUND, "No such file");
	assert_int_equal(cons_inspect(missing, 1, a1, &ds, &e), ING_ENOTFOUND);
	assert_true(dir_is_empty(empty));
	tu_rmrf(empty);

	/* Nothing changed: the three nodes restart as a 3-voter cluster. */
	for (unsigned i = 0; i < N; i++) {
		start_node(cl, i);
	}
	lead = wait_leader(cl);
	propose_many(cl, (unsigned)lead, 3);
	for (unsigned i = 0; i < N; i++) {
		wait_applied(cl, i, cl->nprops);
		check_all_applied(cl, i);
	}
	cluster_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_survivor),
	    cmocka_unit_test(test_single_survivor_with_snapshot),
	    cmocka_unit_test(test_two_survivors_copy),
	    cmocka_unit_test(test_bad_inputs),
	};
	signal(SIGPIPE, SIG_IGN); /* peers close connections libuv may still write to */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
