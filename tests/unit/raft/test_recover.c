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
#include "tests/lib/raftcluster.h"
#include "tests/lib/testutil.h"

#define PAYLOAD_SZ 48

/* Proposes `count` payloads (seeds = proposal numbers) on node i and waits
 * until every one committed. */
static void propose_many(struct rc_cluster *cl, unsigned i, unsigned count)
{
	for (unsigned k = 0; k < count; k++)
		assert_int_equal(rc_propose(cl, i, cl->nprops, PAYLOAD_SZ, NULL), 0);
	assert_true(rc_run_until(cl, rc_pred_props_done, NULL, RC_RUN_MS));
	for (unsigned k = 0; k < cl->nprops; k++)
		assert_int_equal(cl->props[k].status, 0);
}

/* Node i holds every proposal so far, at its index, with its payload. */
static void check_all_applied(struct rc_cluster *cl, unsigned i)
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
static struct rc_cluster *committed_then_stopped(unsigned threshold, unsigned trailing,
                                                 unsigned count)
{
	struct rc_cluster *cl = rc_new(threshold, trailing);
	int lead;

	for (unsigned i = 0; i < RC_NODES; i++) {
		rc_start(cl, i);
	}
	lead = rc_wait_leader(cl, 0);
	propose_many(cl, (unsigned)lead, count);
	for (unsigned i = 0; i < RC_NODES; i++) {
		rc_wait_applied(cl, i, count);
	}
	for (unsigned i = 0; i < RC_NODES; i++) {
		rc_close(cl, i);
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
	struct rc_cluster *cl = committed_then_stopped(threshold, trailing, count);
	struct rc_node *n = &cl->nodes[1]; /* any survivor */
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
	rc_start(cl, 1);
	lead = rc_wait_leader(cl, 0);
	assert_int_equal(lead, 1);
	/* Leader in the raised term, one no leader of the old cluster used. */
	assert_int_equal(n->app.roles[n->app.nroles - 1].term, before.term + 1);
	print_message("recovered node leader ready after %.0f ms\n",
	              (double)(uv_hrtime() - t0) / 1e6);
	rc_wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 1);
	assert_int_equal(cons_members(n->c, &m, &nm), 0);
	assert_int_equal(nm, 1);
	assert_int_equal(m[0].id, 2);
	assert_int_equal(m[0].role, CONS_VOTER);
	assert_string_equal(m[0].address, cl->addrs[1]);
	free(m);

	/* New entries commit with a quorum of one. */
	propose_many(cl, 1, 5);
	rc_wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 1);

	/* And the configuration holds across a restart. */
	rc_close(cl, 1);
	rc_start(cl, 1);
	assert_int_equal(rc_wait_leader(cl, 0), 1);
	rc_wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 1);
	rc_free(cl);
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
	struct rc_cluster *cl = committed_then_stopped(0, 0, 20);
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
	rc_start(cl, 0);
	rc_start(cl, 1);
	lead = rc_wait_leader(cl, 0);
	assert_true(lead == 0 || lead == 1);
	assert_int_equal(cons_members(cl->nodes[lead].c, &m, &nm), 0);
	assert_int_equal(nm, 2);
	free(m);
	propose_many(cl, (unsigned)lead, 5);
	rc_wait_applied(cl, 0, cl->nprops);
	rc_wait_applied(cl, 1, cl->nprops);
	check_all_applied(cl, 0);
	check_all_applied(cl, 1);
	assert_true(capp_equal(&cl->nodes[0].app, &cl->nodes[1].app));
	rc_free(cl);
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
	struct rc_cluster *cl = committed_then_stopped(0, 0, 5);
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
	for (unsigned i = 0; i < RC_NODES; i++) {
		rc_start(cl, i);
	}
	lead = rc_wait_leader(cl, 0);
	propose_many(cl, (unsigned)lead, 3);
	for (unsigned i = 0; i < RC_NODES; i++) {
		rc_wait_applied(cl, i, cl->nprops);
		check_all_applied(cl, i);
	}
	rc_free(cl);
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
