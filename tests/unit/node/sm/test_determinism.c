/*
 * test_determinism.c - same entries, same bytes.
 *
 * A seeded generator produces a long sequence of commands of every type,
 * valid and invalid (it looks at the state to make most transitions legal,
 * then perturbs attempts, stages, ids and names), plus some undecodable
 * entries; short retention and dedupe windows make retention_run remove
 * jobs and turn dedupe generations within the run.  The sequence is applied to three fresh stores:
 * one transaction per entry, batches of 61 with irregular flushes, and one transaction for
 * everything; and to a fourth store, in batches of 7, by a state machine
 * made anew at irregular points (its decoded-target memo cold, as on a
 * restarted node).  The full `mdb_dump -a` of the four must be identical,
 * meta table (applied index, counters) included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/lib/smtest.h"
#include "tests/lib/testutil.h"

#define N_ENTRIES 4000

static uint64_t rng_state, rng2_state;

static uint32_t next_of(uint64_t *st, uint32_t n)
{
	/* xorshift64*: reproducible everywhere */
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return (uint32_t)((*st * 2685821657736338717ull) >> 33) % n;
}

static uint32_t rnd(uint32_t n)
{
	return next_of(&rng_state, n);
}

/* A second stream for the choices added with retention and job_stage_finish
 * v2, so the first one draws the sequence it always drew. */
static uint32_t rnd2(uint32_t n)
{
	return next_of(&rng2_state, n);
}

/* Submits use the first four (one never exists), puts the last four, deletes
 * mostly "scratch", which no job uses, so some deletes succeed. */
static const char *const targets[] = {"missing", "cc", "clang-o2", "nvcc", "scratch"};
static const char *const tenants[] = {"acme", "radar-lab", "default"};
static const char *const request_ids[] = {"r1", "r2", "r3", "r4", "r5", "r6"};

struct gen {
	struct smt *a;
	uint64_t njobs;
	char names[16][16];
	struct ing_str argv[3];
	struct ing_str caps[3];
	struct cmd_file files[2];
	char blob[2][64];
	struct rec_gpu gpus[4]; /* offered by node_register (GPUs 0..3) */
	uint32_t gpu_idx[4][2]; /* job_assign's GPUs, from a few shapes */
};

static uint64_t pick_job(struct gen *g)
{
	if (g->njobs == 0 || rnd(20) == 0)
		return 1 + rnd(5) + g->njobs; /* unknown */
	return 1 + rnd((uint32_t)g->njobs);
}

/* pick_job, but half the time (second stream) a job assigned or running in
 * store A, so the stage and finish commands meet live attempts. */
static uint64_t pick_live_job(struct gen *g)
{
	uint64_t job = pick_job(g), live[64];
	unsigned n = 0;
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	if (rnd2(2) == 0)
		return job;
	assert_int_equal(store_read_begin(g->a->store, &t), 0);
	if (store_iter_open(t, STORE_ASSIGNMENTS, (struct ing_str){"", 0}, &it) == 0) {
		while (n < 64 && store_iter_next(it, &k, &v) == 0)
			live[n++] = store_get_be64(k.ptr + 8);
		store_iter_close(it);
	}
	store_abort(t);
	return n > 0 ? live[rnd2(n)] : job;
}

/* Current attempt and stage progress of a job, as store A sees it. */
static void peek(struct gen *g, uint64_t id, uint32_t *attempt, uint32_t *nstages)
{
	struct rec_job j;
	*attempt = 0;
	*nstages = 0;
	if (smt_job(g->a, id, &j) == 0) {
		*attempt = j.attempt;
		*nstages = j.nstages;
	}
	if (rnd(8) == 0)
		*attempt += rnd(3) - 1u; /* stale or future */
	if (rnd(8) == 0)
		*nstages += rnd(3);
}

/* The GPUs job id's target needs now (0 when unknown), at most 2. */
static uint32_t job_gpus(struct gen *g, uint64_t id)
{
	struct rec_job j;
	struct rec_target t;
	if (smt_job(g->a, id, &j) != 0)
		return 0;
	char name[ING_NAME_MAX + 1];
	snprintf(name, sizeof(name), "%.*s", ING_STR_FMT(j.target));
	if (smt_target_rec(g->a, name, &t) != 0)
		return 0;
	uint32_t n = rec_target_gpus(&t);
	return n > 2 ? 2 : n;
}

static struct cmd generate(struct gen *g)
{
	struct cmd c;
	uint32_t r = rnd(100);
	uint32_t attempt, nst;
	uint64_t job;

	if (r < 5) {
		static struct rec_stage_def st[3];
		c = smt_cmd(g->a, CMD_TARGET_PUT);
		c.u.target_put.spec.name = ing_str_c(targets[1 + rnd(4)]);
		c.u.target_put.spec.nstages = 1 + rnd(3);
		for (uint32_t i = 0; i < 3; i++) {
			memset(&st[i], 0, sizeof(st[i]));
			st[i].name = ing_str_c(g->names[i + rnd(2) * 3]);
			st[i].nargv = 1 + rnd(3);
			st[i].argv = g->argv;
			st[i].timeout_ms = 1 + rnd(100000);
			st[i].gpus = rnd(8) == 0 ? rnd(3) : 0;
		}
		c.u.target_put.spec.gpus = rnd(6) == 0 ? 1 : 0;
		c.u.target_put.spec.stages = st;
	} else if (r < 6) {
		c = smt_cmd(g->a, CMD_TARGET_DELETE);
		c.u.target_delete.name = ing_str_c(targets[rnd(3) == 0 ? rnd(4) : 4]);
	} else if (r < 31) {
		c = smt_cmd(g->a, CMD_JOB_SUBMIT);
		if (rnd(4) == 0)
			c.request_id = ing_str_c(request_ids[rnd(6)]);
		c.u.job_submit.tenant = ing_str_c(tenants[rnd(3)]);
		c.u.job_submit.target = ing_str_c(targets[rnd(4)]);
		c.u.job_submit.priority = rnd(101);
		c.u.job_submit.max_attempts = 1 + rnd(3);
		if (rnd(10) == 0)
			c.u.job_submit.deadline_at_ms = c.time_ms + rnd(3) - 1;
		else if (rnd(4) == 0) /* due some commands later: expires apply */
			c.u.job_submit.deadline_at_ms = c.time_ms + 1 + rnd(200);
		c.u.job_submit.nsources = 1 + rnd(2);
		for (int i = 0; i < 2; i++) {
			g->files[i].data.len = rnd(64);
			for (uint32_t b = 0; b < g->files[i].data.len; b++)
				g->blob[i][b] = (char)rnd(4); /* small alphabet: shared artifacts */
		}
		c.u.job_submit.sources = g->files;
	} else if (r < 46) {
		job = pick_job(g);
		peek(g, job, &attempt, &nst);
		c = smt_cmd(g->a, CMD_JOB_ASSIGN);
		c.u.job_assign.job = job;
		c.u.job_assign.node = 1 + rnd(5);
		c.u.job_assign.attempt = attempt + 1 > 0 ? attempt + 1 : 1;
		c.u.job_assign.lease_until_ms = c.time_ms + 1000;
		/* Mostly as many GPUs as the job's target needs, sometimes not. */
		c.u.job_assign.ngpus = rnd(8) == 0 ? rnd(3) : job_gpus(g, job);
		c.u.job_assign.gpus = g->gpu_idx[rnd(4)];
	} else if (r < 61) {
		job = pick_live_job(g);
		peek(g, job, &attempt, &nst);
		c = smt_cmd(g->a, CMD_JOB_STAGE_START);
		c.u.job_stage_start.job = job;
		c.u.job_stage_start.attempt = attempt > 0 ? attempt : 1;
		c.u.job_stage_start.stage = nst;
	} else if (r < 76) {
		job = pick_live_job(g);
		peek(g, job, &attempt, &nst);
		c = smt_cmd(g->a, CMD_JOB_STAGE_FINISH);
		c.u.job_stage_finish.job = job;
		c.u.job_stage_finish.attempt = attempt > 0 ? attempt : 1;
		c.u.job_stage_finish.stage = nst > 0 ? nst - 1 : 0;
		c.u.job_stage_finish.exit_code = rnd(6) == 0 ? 1 : 0;
		c.u.job_stage_finish.duration_ms = rnd(5000);
		c.u.job_stage_finish.has_log = rnd(2);
		if (c.u.job_stage_finish.has_log)
			c.u.job_stage_finish.log = g->files[0].data;
		c.u.job_stage_finish.noutputs = rnd(3);
		c.u.job_stage_finish.outputs = g->files;
		/* Version 2: its own start, the next stage's, the job's end. */
		if (rnd2(4) == 0) {
			c.u.job_stage_finish.started = true;
			c.u.job_stage_finish.stage = nst;
		}
		c.u.job_stage_finish.then = (uint8_t)rnd2(3);
		if (c.u.job_stage_finish.then == CMD_THEN_NEXT)
			c.u.job_stage_finish.exit_code = 0;
		if (c.u.job_stage_finish.then == CMD_THEN_FINISH) {
			c.u.job_stage_finish.outcome =
			    c.u.job_stage_finish.exit_code != 0 || rnd2(3) == 0
			        ? (uint8_t)(REC_JOB_FAILED + rnd2(2))
			        : REC_JOB_SUCCEEDED;
			c.u.job_stage_finish.message = ing_str_c(rnd2(2) ? "done" : "");
		}
	} else if (r < 84) {
		static const uint8_t outcomes[] = {REC_JOB_SUCCEEDED, REC_JOB_SUCCEEDED,
		                                   REC_JOB_FAILED, REC_JOB_CANCELLED};
		job = pick_live_job(g);
		peek(g, job, &attempt, &nst);
		c = smt_cmd(g->a, CMD_JOB_FINISH);
		c.u.job_finish.job = job;
		c.u.job_finish.attempt = attempt > 0 ? attempt : 1;
		c.u.job_finish.outcome = outcomes[rnd(4)];
		c.u.job_finish.message = ing_str_c(rnd(2) ? "exit status 1" : "");
	} else if (r < 88) {
		c = smt_cmd(g->a, CMD_JOB_CANCEL);
		c.u.job_cancel.job = pick_job(g);
		c.u.job_cancel.reason = ing_str_c("by test");
	} else if (r < 91) {
		job = pick_live_job(g);
		peek(g, job, &attempt, &nst);
		c = smt_cmd(g->a, CMD_JOB_REQUEUE);
		c.u.job_requeue.job = job;
		c.u.job_requeue.attempt = attempt > 0 ? attempt : 1;
		c.u.job_requeue.reason = ing_str_c("lease expired");
	} else if (r < 92) {
		c = smt_cmd(g->a, CMD_JOB_RETRY);
		c.u.job_retry.job = pick_job(g);
	} else if (r < 94) {
		/* Mostly a job with a deadline (due or not), sometimes any job. */
		struct rec_job j;
		job = pick_job(g);
		for (int tries = 0; tries < 20 && rnd(8) != 0; tries++) {
			if (smt_job(g->a, job, &j) == 0 && j.deadline_at_ms != 0)
				break;
			job = pick_job(g);
		}
		c = smt_cmd(g->a, CMD_JOB_EXPIRE);
		c.u.job_expire.job = job;
	} else if (r < 95) {
		c = smt_cmd(g->a, CMD_NODE_REGISTER);
		c.u.node_register.spec.id = 1 + rnd(4);
		c.u.node_register.spec.slots = rnd(4);
		c.u.node_register.spec.ncaps = rnd(3);
		c.u.node_register.spec.caps = g->caps;
		c.u.node_register.spec.ngpus = rnd(4) == 0 ? rnd(4) : 4;
		c.u.node_register.spec.gpus =
		    g->gpus + (c.u.node_register.spec.ngpus < 4 ? rnd(2) : 0);
	} else if (r < 96) {
		c = smt_cmd(g->a, CMD_NODE_DRAIN);
		c.u.node_drain.node = 1 + rnd(5);
		c.u.node_drain.draining = rnd(2);
		c.u.node_drain.deadline_ms = rnd(2) ? c.time_ms + 5000 : 0;
	} else if (r < 97) {
		c = smt_cmd(g->a, CMD_NODE_DOWN);
		c.u.node_down.node = 1 + rnd(5);
		c.u.node_down.reason = ing_str_c("missed heartbeats");
	} else if (r < 98) {
		/* Node 5 never registers: its draw forgets one of 1-4 instead
		 * (chosen by the time, so the random stream stays as it was). */
		uint64_t node = 1 + rnd(5);
		c = smt_cmd(g->a, node == 5 ? CMD_NODE_FORGET : CMD_NODE_UP);
		if (c.type == CMD_NODE_UP)
			c.u.node_up.node = node;
		else
			c.u.node_forget.node = 1 + c.time_ms % 4;
	} else if (rnd2(3) == 0) {
		/* Short retention and dedupe windows: jobs and dedupe generations
		 * do expire within the run (time_ms advances 1 ms per entry). */
		if (rnd2(2)) {
			static const uint64_t values[] = {1000, 2000, 0, 1500};
			c = smt_cmd(g->a, CMD_SETTING_PUT);
			c.u.setting_put.name = ing_str_c(rnd2(2) ? CMD_SETTING_JOB_RETENTION
			                                         : CMD_SETTING_DEDUPE_WINDOW);
			c.u.setting_put.value = values[rnd2(4)];
		} else {
			c = smt_cmd(g->a, CMD_RETENTION_RUN);
			c.u.retention_run.max_jobs = 1 + rnd2(20);
		}
	} else if (rnd(3) == 0) {
		/* Tokens: a few secrets (a repeated one is refused), revokes
		 * of known and unknown ids. */
		static const char *const hashes[] = {"0123456789abcdef0123456789abcdef",
		                                     "fedcba9876543210fedcba9876543210",
		                                     "00000000000000000000000000000000"};
		if (rnd(2)) {
			c = smt_cmd(g->a, CMD_TOKEN_CREATE);
			c.u.token_create.hash = ing_str_c(hashes[rnd(3)]);
			c.u.token_create.name = ing_str_c(g->names[rnd(4)]);
			c.u.token_create.tenant = ing_str_c(rnd(2) ? tenants[rnd(3)] : "");
			c.u.token_create.role = (uint8_t)rnd(REC_TOKEN_ROLE_COUNT);
			c.u.token_create.expires_at_ms = rnd(2) ? c.time_ms + 1000 : 0;
		} else {
			c = smt_cmd(g->a, CMD_TOKEN_REVOKE);
			c.u.token_revoke.id = 1 + rnd(4);
		}
	} else if (rnd(2)) {
		c = smt_cmd(g->a, rnd(2) ? CMD_MEMBER_PUT : CMD_MEMBER_REMOVE);
		if (c.type == CMD_MEMBER_PUT) {
			c.u.member_put.member.id = 1 + rnd(3);
			c.u.member_put.member.raft_address =
			    ing_str_c(rnd(4) ? "127.0.0.1:7501" : "127.0.0.1:7511");
			c.u.member_put.member.api_address = ing_str_c("127.0.0.1:7401");
			c.u.member_put.member.role = (uint8_t)rnd(3);
		} else {
			c.u.member_remove.id = 1 + rnd(3);
		}
	} else if (rnd(3) == 0) {
		/* The first names the cluster, the later ones change nothing. */
		static const char *const ids[] = {"0123456789abcdef0123456789abcdef",
		                                  "fedcba9876543210fedcba9876543210"};
		c = smt_cmd(g->a, CMD_CLUSTER_INIT);
		c.u.cluster_init.cluster_id = ing_str_c(ids[rnd(2)]);
	} else {
		c = smt_cmd(g->a, CMD_CLUSTER_EVENT);
		c.u.cluster_event.kind = rnd(2) ? REC_EV_LEADER_CHANGED : REC_EV_VOTER_REPLACED;
		c.u.cluster_event.member = rnd(4);
		c.u.cluster_event.message = ing_str_c(rnd(2) ? "node 2 is leader in term 3" : "");
	}
	/* Who asked, where the command carries it (the audit trail). */
	if (cmd_type_principal_version(c.type) != 0 && rnd(3) != 0)
		c.principal = ing_str_c(rnd(2) ? "token:1" : "jwt:alice");
	return c;
}

struct replica {
	char dir[256];
	struct store *store;
	struct sm *sm;
	struct sm_result res;
};

/* The counts the store keeps (sm_job_counts) are those of a scan of the
 * jobs table, and not all zero. */
static void check_job_counts(struct store *s)
{
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	uint64_t kept[REC_JOB_STATE_COUNT], scanned[REC_JOB_STATE_COUNT] = {0}, total = 0;
	msgpack_zone *z = msgpack_zone_new(4096);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(sm_job_counts(t, kept), 0);
	assert_int_equal(store_iter_open(t, STORE_JOBS, (struct ing_str){"", 0}, &it), 0);
	while (store_iter_next(it, &k, &v) == 0) {
		struct rec_job j;
		assert_int_equal(rec_job_decode(v, z, &j, NULL), 0);
		scanned[j.state]++;
		total++;
		msgpack_zone_clear(z);
	}
	store_iter_close(it);
	store_abort(t);
	msgpack_zone_free(z);
	for (int st = 0; st < REC_JOB_STATE_COUNT; st++)
		if (kept[st] != scanned[st])
			fail_msg("jobs %s: kept %" PRIu64 ", scanned %" PRIu64,
			         rec_job_state_name((uint8_t)st), kept[st], scanned[st]);
	assert_true(total > 0);
}

static void replica_open(struct replica *r, unsigned batch_max)
{
	struct store_options opts = {.sync = STORE_SYNC_NONE, .batch_max = batch_max};
	struct ing_error e;
	tu_tmpdir(r->dir, sizeof(r->dir));
	assert_int_equal(store_open(r->dir, &opts, &r->store, &e), 0);
	assert_int_equal(sm_new(&r->sm), 0);
	sm_result_init(&r->res);
}

static void replica_apply(struct replica *r, uint64_t index, const struct mp_out *entry)
{
	struct store_txn *txn;
	assert_int_equal(store_batch_txn(r->store, &txn), 0);
	assert_int_equal(sm_apply(r->sm, txn, index, entry->data, entry->len, &r->res), 0);
	assert_int_equal(store_batch_note(r->store), 0);
}

static void replica_close(struct replica *r)
{
	sm_result_free(&r->res);
	sm_free(r->sm);
	store_close(r->store);
	tu_rmrf(r->dir);
}

static void test_same_entries_same_bytes(void **state)
{
	(void)state;
	struct smt a;
	struct gen g;
	struct mp_out *log = calloc(N_ENTRIES, sizeof(*log));
	struct replica b, c, d;
	struct ing_error e;
	unsigned applied_ok = 0;
	unsigned per_type_ok[64] = {0};

	rng_state = 0x9e3779b97f4a7c15ull;
	rng2_state = 2;
	smt_open(&a);
	memset(&g, 0, sizeof(g));
	g.a = &a;
	for (int i = 0; i < 16; i++)
		snprintf(g.names[i], sizeof(g.names[i]), "s%d", i);
	g.argv[0] = ing_str_c("cc");
	g.argv[1] = ing_str_c("-O2");
	g.argv[2] = ing_str_c("{source}");
	g.caps[0] = ing_str_c("cc");
	g.caps[1] = ing_str_c("cuda-12");
	g.caps[2] = ing_str_c("vivado");
	for (uint32_t i = 0; i < 4; i++)
		g.gpus[i] = (struct rec_gpu){i, ing_str_c(i % 2 ? "" : "GPU-x"), (uint64_t)i << 30};
	static const uint32_t shapes[4][2] = {{0, 1}, {1, 0}, {2, 3}, {3, 9}};
	memcpy(g.gpu_idx, shapes, sizeof(shapes));
	for (int i = 0; i < 2; i++) {
		g.files[i].path = ing_str_c(i == 0 ? "main.c" : "include/fir.h");
		g.files[i].data.ptr = g.blob[i];
	}

	for (unsigned i = 0; i < N_ENTRIES; i++) {
		mp_out_init(&log[i]);
		if (rnd(100) == 0) {
			/* undecodable entry, 8-byte aligned like every raft entry */
			for (int b2 = 0; b2 < 8; b2++) {
				char byte = (char)rnd(256);
				mp_out_raw(&log[i], &byte, 1);
			}
		} else {
			struct cmd cmd = generate(&g);
			if (cmd_encode(&cmd, &log[i], &e) != 0)
				fail_msg("generated an invalid command: %s", e.msg);
		}
		int rv = smt_apply_raw(&a, log[i].data, log[i].len);
		if (rv == 0) {
			applied_ok++;
			uint64_t n;
			struct store_txn *txn;
			assert_int_equal(store_read_begin(a.store, &txn), 0);
			assert_int_equal(store_meta_get_u64(txn, "next_job_id", &n), 0);
			store_abort(txn);
			g.njobs = n;
		}
		if (rv == 0 && log[i].len > 1)
			per_type_ok[((unsigned char)log[i].data[1]) % 64]++;
	}
	/* The generator must exercise the machine, not just bounce off it. */
	assert_true(applied_ok > N_ENTRIES / 4);
	assert_true(g.njobs > 200);
	/* Retention removed jobs, and a dedupe generation turned. */
	assert_true(smt_count(&a, STORE_JOBS) < g.njobs);
	assert_true(smt_count(&a, STORE_DEDUPE_ALT) + smt_count(&a, STORE_DEDUPE) > 0);
	for (uint32_t type = 1; type < 64; type++) {
		if (cmd_type_name(type) != NULL && per_type_ok[type] == 0)
			fail_msg("no %s command was applied successfully", cmd_type_name(type));
	}

	replica_open(&b, 61);
	replica_open(&c, 1000000);
	replica_open(&d, 7);
	for (unsigned i = 0; i < N_ENTRIES; i++) {
		replica_apply(&b, i + 1, &log[i]);
		if (rnd(50) == 0)
			assert_int_equal(store_batch_flush(b.store), 0);
		replica_apply(&c, i + 1, &log[i]);
		if (rnd(40) == 0) {
			sm_free(d.sm);
			assert_int_equal(sm_new(&d.sm), 0);
		}
		replica_apply(&d, i + 1, &log[i]);
	}
	assert_int_equal(store_batch_flush(b.store), 0);
	assert_int_equal(store_batch_flush(c.store), 0);
	assert_int_equal(store_batch_flush(d.store), 0);

	char *da = smt_dump_all(&a);
	char *db = tu_mdb_dump(store_path(b.store));
	char *dc = tu_mdb_dump(store_path(c.store));
	char *dd = tu_mdb_dump(store_path(d.store));
	assert_true(strlen(da) > 10000);
	assert_string_equal(da, db);
	assert_string_equal(da, dc);
	assert_string_equal(da, dd);
	check_job_counts(b.store);
	free(da);
	free(db);
	free(dc);
	free(dd);

	replica_close(&b);
	replica_close(&c);
	replica_close(&d);
	for (unsigned i = 0; i < N_ENTRIES; i++)
		mp_out_free(&log[i]);
	free(log);
	smt_close(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_entries_same_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
