/*
 * test_migrate.c - schema versions: a fresh store is stamped, a schema-1
 * store built by hand with raw LMDB calls is migrated to the current schema
 * (job records gain the tenant, then target records the description, stage
 * limits and stdout, then job records the params, then node, target and
 * job records their GPUs, then target records the network flag, the disk
 * space and the stages' process limit, then the queue is keyed by target
 * and final jobs indexed by finish time), schema-2 to -6 stores are migrated
 * likewise (a schema-6 queue entry without its queued job, or a queued job
 * without its entry, is corrupt), a newer store is refused and left
 * untouched, and stores without a usable version or with a record not of
 * the older layout are refused as corrupt.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lmdb.h>
#include <msgpack.h>

#include "common/log.h"
#include "storage/records.h"
#include "storage/store.h"
#include "tests/lib/testutil.h"

struct fx {
	char dir[256];
	char path[300];
};

static const struct store_options fast = {.sync = STORE_SYNC_NONE};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	tu_tmpdir(f->dir, sizeof(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/state.mdb", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* ---- building stores by hand ------------------------------------------ */

static const char *const tables[] = {"meta",      "members", "nodes",       "targets",
                                     "jobs",      "queue",   "assignments", "events",
                                     "artifacts", "chunks",  "dedupe",      "tokens"};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

struct raw {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi[NTABLES];
};

static void raw_open(struct raw *r, const char *path)
{
	assert_int_equal(mdb_env_create(&r->env), 0);
	assert_int_equal(mdb_env_set_maxdbs(r->env, NTABLES), 0);
	assert_int_equal(mdb_env_open(r->env, path, MDB_NOSUBDIR, 0644), 0);
	assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
	for (size_t i = 0; i < NTABLES; i++)
		assert_int_equal(mdb_dbi_open(r->txn, tables[i], MDB_CREATE, &r->dbi[i]), 0);
}

static void raw_put(struct raw *r, size_t table, const void *k, size_t klen, const void *v,
                    size_t vlen)
{
	MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
	assert_int_equal(mdb_put(r->txn, r->dbi[table], &key, &val, 0), 0);
}

static void raw_put_u64(struct raw *r, const char *name, uint64_t v)
{
	uint8_t b[8];
	store_be64(b, v);
	raw_put(r, 0, name, strlen(name), b, 8);
}

/* The schema-1..6 queue entry of a queued job of priority 50. */
static void raw_queue_old(struct raw *r, uint64_t id, const char *tenant)
{
	uint8_t key[1 + 63 + 1 + 8];
	size_t n = 0;
	key[n++] = 100 - 50;
	memcpy(key + n, tenant, strlen(tenant));
	n += strlen(tenant);
	key[n++] = 0;
	store_be64(key + n, id);
	raw_put(r, 5, key, n + 8, "", 0);
}

/* The schema-7 queue entry of that job is there, with attempt 0, nothing
 * lost and the job's updated_at_ms (2000 + id) as its queued time. */
static void check_queue_v7(struct store_txn *t, uint64_t id, const char *target, const char *tenant)
{
	uint8_t key[63 + 1 + 1 + 63 + 1 + 8];
	size_t n = 0;
	struct ing_str val;
	memcpy(key, target, strlen(target));
	n += strlen(target);
	key[n++] = 0;
	key[n++] = 100 - 50;
	memcpy(key + n, tenant, strlen(tenant));
	n += strlen(tenant);
	key[n++] = 0;
	store_be64(key + n, id);
	assert_int_equal(
	    store_get(t, STORE_QUEUE, (struct ing_str){(char *)key, (uint32_t)n + 8}, &val), 0);
	assert_int_equal(val.len, 16);
	assert_int_equal(store_get_be32(val.ptr), 0);
	assert_int_equal(store_get_be32(val.ptr + 4), 0);
	assert_int_equal(store_get_be64(val.ptr + 8), 2000 + id);
}

static void raw_close(struct raw *r)
{
	assert_int_equal(mdb_txn_commit(r->txn), 0);
	mdb_env_close(r->env);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

/* A schema-1 job record (version 1): [1, id, target, target_revision,
 * request_id, state, priority, attempt, attempt_base, max_attempts,
 * node_id, created_at_ms, updated_at_ms, deadline_at_ms, lease_until_ms,
 * finished_at_ms, cancel_requested, sources[[path, sha256, size]],
 * stage_count, stages, nevents, error].  With `tenant` non-NULL, the
 * schema-2/3 version-2 record instead (the tenant after the id); with
 * `params` too, the schema-4 version-3 record (params [] after sources). */
static void pack_job_v(msgpack_sbuffer *sb, uint64_t id, const char *tenant, bool params,
                       const char *target, const char *req)
{
	msgpack_packer pk;
	uint8_t sha[32];
	memset(sha, (int)id, sizeof(sha));
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, tenant != NULL ? (params ? 24 : 23) : 22);
	msgpack_pack_uint64(&pk, tenant != NULL ? (params ? 3 : 2) : 1);
	msgpack_pack_uint64(&pk, id);
	if (tenant != NULL)
		pack_str(&pk, tenant);
	pack_str(&pk, target);
	msgpack_pack_uint64(&pk, 3); /* target_revision */
	pack_str(&pk, req);
	msgpack_pack_uint64(&pk, 0);  /* state: queued */
	msgpack_pack_uint64(&pk, 50); /* priority */
	msgpack_pack_uint64(&pk, 0);  /* attempt */
	msgpack_pack_uint64(&pk, 0);  /* attempt_base */
	msgpack_pack_uint64(&pk, 3);  /* max_attempts */
	msgpack_pack_uint64(&pk, 0);  /* node_id */
	msgpack_pack_uint64(&pk, 1000 + id);
	msgpack_pack_uint64(&pk, 2000 + id);
	msgpack_pack_uint64(&pk, 0); /* deadline_at_ms */
	msgpack_pack_uint64(&pk, 0); /* lease_until_ms */
	msgpack_pack_uint64(&pk, 0); /* finished_at_ms */
	msgpack_pack_true(&pk);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 3);
	pack_str(&pk, "src/main.c");
	msgpack_pack_bin(&pk, sizeof(sha));
	msgpack_pack_bin_body(&pk, sha, sizeof(sha));
	msgpack_pack_uint64(&pk, 1234);
	if (params)
		msgpack_pack_array(&pk, 0);
	msgpack_pack_uint64(&pk, 0); /* stage_count */
	msgpack_pack_array(&pk, 0);  /* stages */
	msgpack_pack_uint64(&pk, 1); /* nevents */
	pack_str(&pk, "");
}

static void pack_job(msgpack_sbuffer *sb, uint64_t id, const char *tenant, const char *target,
                     const char *req)
{
	pack_job_v(sb, id, tenant, false, target, req);
}

static void pack_v1_job(msgpack_sbuffer *sb, uint64_t id, const char *target, const char *req)
{
	pack_job(sb, id, NULL, target, req);
}

/* The job `id` of the open store decodes as a current record with the
 * fields of pack_job, the tenant `tenant` and no params. */
static void check_migrated_job(struct store_txn *t, uint64_t id, const char *tenant,
                               const char *target, const char *req)
{
	struct ing_str val;
	struct rec_job r;
	struct ing_error e;
	uint8_t key[8];
	store_be64(key, id);
	assert_int_equal(store_get(t, STORE_JOBS, (struct ing_str){(char *)key, 8}, &val), 0);
	msgpack_zone *z = msgpack_zone_new(1024);
	if (rec_job_decode(val, z, &r, &e) != 0)
		fail_msg("decode: %s", e.msg);
	assert_int_equal(r.id, id);
	assert_true(ing_str_eq_c(r.tenant, tenant));
	assert_true(ing_str_eq_c(r.target, target));
	assert_true(ing_str_eq_c(r.request_id, req));
	assert_int_equal(r.target_revision, 3);
	assert_int_equal(r.priority, 50);
	assert_int_equal(r.max_attempts, 3);
	assert_int_equal(r.created_at_ms, 1000 + id);
	assert_int_equal(r.updated_at_ms, 2000 + id);
	assert_true(r.cancel_requested);
	assert_int_equal(r.nsources, 1);
	assert_true(ing_str_eq_c(r.sources[0].path, "src/main.c"));
	assert_int_equal(r.sources[0].size, 1234);
	assert_false(r.sources[0].stored_inline);
	assert_int_equal(r.nparams, 0);
	assert_int_equal(r.nstages, 0);
	assert_int_equal(r.nevents, 1);
	assert_int_equal(r.error.len, 0);
	assert_int_equal(r.ngpus, 0);
	msgpack_zone_free(z);
}

/* A version-1 target record (schemas 1 and 2): [1, name, caps, labels,
 * stages[[name, argv, timeout_ms, env, outputs]...], revision,
 * active_jobs, created_at_ms, updated_at_ms].  With `v2`, the version-2
 * record of schemas 3 and 4 instead: a description "" after the name and
 * 7-item stages (limits [0, 0, 0, 0], stdout ""). */
static void pack_target_v(msgpack_sbuffer *sb, const char *name, bool v2)
{
	msgpack_packer pk;
	const uint32_t stage_items = v2 ? 7 : 5;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, v2 ? 10 : 9);
	msgpack_pack_uint64(&pk, v2 ? 2 : 1);
	pack_str(&pk, name);
	if (v2)
		pack_str(&pk, "");
	msgpack_pack_array(&pk, 1);
	pack_str(&pk, "gcc");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2);
	pack_str(&pk, "zone");
	pack_str(&pk, "eu-1");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_array(&pk, stage_items);
	pack_str(&pk, "compile");
	msgpack_pack_array(&pk, 2);
	pack_str(&pk, "cc");
	pack_str(&pk, "{source}");
	msgpack_pack_uint64(&pk, 60000);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2);
	pack_str(&pk, "LC_ALL");
	pack_str(&pk, "C");
	msgpack_pack_array(&pk, 1);
	pack_str(&pk, "a.o");
	if (v2) {
		msgpack_pack_array(&pk, 4);
		for (int i = 0; i < 4; i++)
			msgpack_pack_uint64(&pk, 0);
		pack_str(&pk, "");
	}
	msgpack_pack_array(&pk, stage_items);
	pack_str(&pk, "report");
	msgpack_pack_array(&pk, 1);
	pack_str(&pk, "nm");
	msgpack_pack_uint64(&pk, 1000);
	msgpack_pack_array(&pk, 0);
	msgpack_pack_array(&pk, 0);
	if (v2) {
		msgpack_pack_array(&pk, 4);
		for (int i = 0; i < 4; i++)
			msgpack_pack_uint64(&pk, 0);
		pack_str(&pk, "");
	}
	msgpack_pack_uint64(&pk, 3);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 100);
	msgpack_pack_uint64(&pk, 200);
}

static void pack_v1_target(msgpack_sbuffer *sb, const char *name)
{
	pack_target_v(sb, name, false);
}

/* A version-1 node record (schemas 1 to 4): [1, id, caps, labels, slots,
 * used_slots, draining, drain_deadline_ms, down, registered_at_ms,
 * updated_at_ms]. */
static void pack_v1_node(msgpack_sbuffer *sb, uint64_t id)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 11);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, id);
	msgpack_pack_array(&pk, 1);
	pack_str(&pk, "nvcc");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2);
	pack_str(&pk, "arch");
	pack_str(&pk, "x86_64");
	msgpack_pack_uint64(&pk, 4); /* slots */
	msgpack_pack_uint64(&pk, 1); /* used_slots */
	msgpack_pack_true(&pk);      /* draining */
	msgpack_pack_uint64(&pk, 77);
	msgpack_pack_false(&pk);
	msgpack_pack_uint64(&pk, 10 + id);
	msgpack_pack_uint64(&pk, 20 + id);
}

/* The target `name` of the open store decodes as a current record with
 * the v1 fields kept and the new ones at their defaults. */
static void check_migrated_target(struct store_txn *t, const char *name)
{
	struct ing_str val;
	struct rec_target r;
	struct ing_error e;
	assert_int_equal(store_get(t, STORE_TARGETS, ing_str_c(name), &val), 0);
	msgpack_zone *z = msgpack_zone_new(1024);
	if (rec_target_decode(val, z, &r, &e) != 0)
		fail_msg("decode: %s", e.msg);
	assert_true(ing_str_eq_c(r.name, name));
	assert_int_equal(r.description.len, 0);
	assert_int_equal(r.ncaps, 1);
	assert_true(ing_str_eq_c(r.labels[0].value, "eu-1"));
	assert_int_equal(r.nstages, 2);
	assert_true(ing_str_eq_c(r.stages[0].argv[1], "{source}"));
	assert_int_equal(r.stages[0].timeout_ms, 60000);
	assert_true(ing_str_eq_c(r.stages[0].env[0].key, "LC_ALL"));
	assert_true(ing_str_eq_c(r.stages[0].outputs[0], "a.o"));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r.stages[i].limits.cpu_seconds, 0);
		assert_int_equal(r.stages[i].limits.memory_bytes, 0);
		assert_int_equal(r.stages[i].limits.open_files, 0);
		assert_int_equal(r.stages[i].limits.output_bytes, 0);
		assert_int_equal(r.stages[i].limits.processes, 0);
		assert_int_equal(r.stages[i].stdout_path.len, 0);
	}
	assert_false(r.network);
	assert_int_equal(r.disk_bytes, 0);
	assert_true(ing_str_eq_c(r.stages[1].name, "report"));
	assert_int_equal(r.gpus, 0);
	assert_int_equal(r.stages[0].gpus + r.stages[1].gpus, 0);
	assert_int_equal(r.revision, 3);
	assert_int_equal(r.active_jobs, 1);
	assert_int_equal(r.created_at_ms, 100);
	assert_int_equal(r.updated_at_ms, 200);
	msgpack_zone_free(z);
}

static void unpack(const void *buf, size_t len, msgpack_unpacked *out)
{
	size_t off = 0;
	msgpack_unpacked_init(out);
	assert_int_equal(msgpack_unpack_next(out, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, len);
}

/* Opening the (current) store again writes nothing. */
static void reopen_changes_nothing(struct fx *f)
{
	struct store *s;
	struct ing_error e;
	char *before = tu_mdb_dump(f->path);
	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	store_close(s);
	char *after = tu_mdb_dump(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* ---- tests ------------------------------------------------------------ */

static void test_fresh_store_is_stamped(void **state)
{
	struct fx *f = *state;
	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	uint64_t v;

	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	store_abort(t);
	store_close(s);
	/* Reopening a current store writes nothing. */
	reopen_changes_nothing(f);
}

static void test_migrate_from_1(void **state)
{
	struct fx *f = *state;
	struct raw r;
	const uint64_t ids[] = {7, 8, 300};
	const char *targets[] = {"cc-x86", "nvcc-sm80", "cc-arm"};
	const char *reqs[] = {"", "req-8", ""};
	msgpack_sbuffer v1[3];
	uint8_t key[8];

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 1);
	raw_put_u64(&r, "applied_index", 42);
	raw_put_u64(&r, "next_job_id", 300);
	for (int i = 0; i < 3; i++) {
		msgpack_sbuffer_init(&v1[i]);
		pack_v1_job(&v1[i], ids[i], targets[i], reqs[i]);
		store_be64(key, ids[i]);
		raw_put(&r, 4, key, 8, v1[i].data, v1[i].size);
	}
	msgpack_sbuffer tg;
	msgpack_sbuffer_init(&tg);
	pack_v1_target(&tg, "cc-x86");
	raw_put(&r, 3, "cc-x86", 6, tg.data, tg.size);
	msgpack_sbuffer_destroy(&tg);
	/* The queue entries of the queued jobs (schema-1 layout up to 6). */
	for (int i = 0; i < 3; i++)
		raw_queue_old(&r, ids[i], "default");
	raw_close(&r);

	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	uint64_t v;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	check_migrated_target(t, "cc-x86");
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(store_count(t, STORE_JOBS, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(store_count(t, STORE_QUEUE, &v), 0);
	assert_int_equal(v, 3);
	for (int i = 0; i < 3; i++)
		check_queue_v7(t, ids[i], targets[i], "default");

	for (int i = 0; i < 3; i++) {
		struct ing_str val;
		msgpack_unpacked old, neu;
		store_be64(key, ids[i]);
		assert_int_equal(store_get(t, STORE_JOBS, (struct ing_str){(char *)key, 8}, &val),
		                 0);
		unpack(v1[i].data, v1[i].size, &old);
		unpack(val.ptr, val.len, &neu);
		const msgpack_object_array *a = &old.data.via.array, *b = &neu.data.via.array;
		/* v1 [1, id, target, ..., sources(17), rest...] -> v5 [5, id,
		 * "default", target, ..., sources(18) (each + false), params []
		 * (19), rest..., gpus []] */
		assert_int_equal(neu.data.type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(b->size, a->size + 3);
		assert_int_equal(b->ptr[0].via.u64, 5);
		assert_true(msgpack_object_equal(b->ptr[1], a->ptr[1]));
		assert_int_equal(b->ptr[2].type, MSGPACK_OBJECT_STR);
		assert_memory_equal(b->ptr[2].via.str.ptr, "default", 7);
		for (uint32_t j = 2; j < 17; j++)
			assert_true(msgpack_object_equal(b->ptr[j + 1], a->ptr[j]));
		const msgpack_object *src = &b->ptr[18].via.array.ptr[0];
		assert_int_equal(src->via.array.size, 4);
		for (uint32_t j = 0; j < 3; j++)
			assert_true(msgpack_object_equal(
			    src->via.array.ptr[j], a->ptr[17].via.array.ptr[0].via.array.ptr[j]));
		assert_int_equal(src->via.array.ptr[3].type, MSGPACK_OBJECT_BOOLEAN);
		assert_false(src->via.array.ptr[3].via.boolean);
		assert_int_equal(b->ptr[19].type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(b->ptr[19].via.array.size, 0);
		for (uint32_t j = 18; j < a->size; j++)
			assert_true(msgpack_object_equal(b->ptr[j + 2], a->ptr[j]));
		assert_int_equal(b->ptr[b->size - 1].type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(b->ptr[b->size - 1].via.array.size, 0);
		msgpack_unpacked_destroy(&old);
		msgpack_unpacked_destroy(&neu);
		msgpack_sbuffer_destroy(&v1[i]);
		check_migrated_job(t, ids[i], "default", targets[i], reqs[i]);
	}
	store_abort(t);
	store_close(s);

	/* Migrated once: reopening changes nothing. */
	reopen_changes_nothing(f);
}

static void test_migrate_from_2(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;
	const char *names[] = {"cc-arm", "cc-x86", "nvcc-sm80"};

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 2);
	raw_put_u64(&r, "applied_index", 77);
	for (int i = 0; i < 3; i++) {
		msgpack_sbuffer_init(&sb);
		pack_v1_target(&sb, names[i]);
		raw_put(&r, 3, names[i], strlen(names[i]), sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	raw_close(&r);

	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	uint64_t v;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 77);
	assert_int_equal(store_count(t, STORE_TARGETS, &v), 0);
	assert_int_equal(v, 3);
	for (int i = 0; i < 3; i++)
		check_migrated_target(t, names[i]);
	store_abort(t);
	store_close(s);

	/* Migrated once: reopening changes nothing. */
	reopen_changes_nothing(f);
}

static void test_migrate_from_3(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;
	uint8_t key[8];
	const uint64_t ids[] = {1, 2, 900};
	const char *tenants[] = {"default", "team-a", "team-b"};
	const char *reqs[] = {"", "req-2", "r"};

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 3);
	raw_put_u64(&r, "applied_index", 55);
	for (int i = 0; i < 3; i++) {
		msgpack_sbuffer_init(&sb);
		pack_job(&sb, ids[i], tenants[i], "cc-x86", reqs[i]);
		store_be64(key, ids[i]);
		raw_put(&r, 4, key, 8, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		raw_queue_old(&r, ids[i], tenants[i]);
	}
	raw_close(&r);

	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	uint64_t v;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 55);
	assert_int_equal(store_count(t, STORE_JOBS, &v), 0);
	assert_int_equal(v, 3);
	for (int i = 0; i < 3; i++) {
		check_migrated_job(t, ids[i], tenants[i], "cc-x86", reqs[i]);
		check_queue_v7(t, ids[i], "cc-x86", tenants[i]);
	}
	store_abort(t);
	store_close(s);

	/* Migrated once: reopening changes nothing. */
	reopen_changes_nothing(f);
}

/* A schema-4 store: a v1 node, a v2 target, v3 jobs.  Each gains its GPUs
 * (none), everything else unchanged. */
static void test_migrate_from_4(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;
	uint8_t key[8];
	const uint64_t ids[] = {3, 4};

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 4);
	raw_put_u64(&r, "applied_index", 91);
	for (int i = 0; i < 2; i++) {
		msgpack_sbuffer_init(&sb);
		pack_v1_node(&sb, ids[i]);
		store_be64(key, ids[i]);
		raw_put(&r, 2, key, 8, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		msgpack_sbuffer_init(&sb);
		pack_job_v(&sb, ids[i], "team-a", true, "cc-x86", "req");
		raw_put(&r, 4, key, 8, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		raw_queue_old(&r, ids[i], "team-a");
	}
	msgpack_sbuffer_init(&sb);
	pack_target_v(&sb, "cc-x86", true);
	raw_put(&r, 3, "cc-x86", 6, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	raw_close(&r);

	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	uint64_t v;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 91);
	check_migrated_target(t, "cc-x86");
	for (int i = 0; i < 2; i++) {
		struct ing_str val;
		struct rec_node n;
		msgpack_zone *z = msgpack_zone_new(1024);
		check_migrated_job(t, ids[i], "team-a", "cc-x86", "req");
		check_queue_v7(t, ids[i], "cc-x86", "team-a");
		store_be64(key, ids[i]);
		assert_int_equal(store_get(t, STORE_NODES, (struct ing_str){(char *)key, 8}, &val),
		                 0);
		if (rec_node_decode(val, z, &n, &e) != 0)
			fail_msg("decode: %s", e.msg);
		assert_int_equal(n.id, ids[i]);
		assert_true(ing_str_eq_c(n.caps[0], "nvcc"));
		assert_true(ing_str_eq_c(n.labels[0].value, "x86_64"));
		assert_int_equal(n.slots, 4);
		assert_int_equal(n.used_slots, 1);
		assert_true(n.draining);
		assert_int_equal(n.drain_deadline_ms, 77);
		assert_false(n.down);
		assert_int_equal(n.registered_at_ms, 10 + ids[i]);
		assert_int_equal(n.updated_at_ms, 20 + ids[i]);
		assert_int_equal(n.ngpus, 0);
		assert_int_equal(n.nheld, 0);
		msgpack_zone_free(z);
	}
	store_abort(t);
	store_close(s);

	/* Migrated once: reopening changes nothing. */
	reopen_changes_nothing(f);
}

/* An empty store directory again (for tests that build several stores). */
static void fresh_dir(struct fx *f)
{
	tu_rmrf(f->dir);
	tu_tmpdir(f->dir, sizeof(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/state.mdb", f->dir);
}

/* Opening the store at f fails as corrupt with a message saying `needle`,
 * and leaves it byte for byte as it was. */
static void expect_corrupt_untouched(struct fx *f, const char *needle)
{
	char *before = tu_mdb_dump(f->path);
	struct store *s = NULL;
	struct ing_error e;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), ING_ECORRUPT);
	assert_null(s);
	if (strstr(e.msg, needle) == NULL)
		fail_msg("'%s' does not say '%s'", e.msg, needle);
	char *after = tu_mdb_dump(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* A version-3 target record (schema 5): [3, name, description, caps,
 * labels, gpus, stages[[name, argv, timeout_ms, env, outputs, limits,
 * stdout, gpus]...], revision, active_jobs, created_at_ms, updated_at_ms]
 * with limits [cpu_seconds, memory_bytes, open_files, output_bytes].
 * `limit_items` other than 4 makes a record that is not of that layout. */
static void pack_v3_target(msgpack_sbuffer *sb, const char *name, unsigned limit_items)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 11);
	msgpack_pack_uint64(&pk, 3);
	pack_str(&pk, name);
	pack_str(&pk, "kernels for the edge");
	msgpack_pack_array(&pk, 1);
	pack_str(&pk, "nvcc");
	msgpack_pack_array(&pk, 0);
	msgpack_pack_uint64(&pk, 2); /* gpus */
	msgpack_pack_array(&pk, 2);
	for (int i = 0; i < 2; i++) {
		msgpack_pack_array(&pk, 8);
		pack_str(&pk, i == 0 ? "compile" : "run");
		msgpack_pack_array(&pk, 1);
		pack_str(&pk, i == 0 ? "nvcc" : "./a.out");
		msgpack_pack_uint64(&pk, 60000 + (uint64_t)i);
		msgpack_pack_array(&pk, 0);
		msgpack_pack_array(&pk, 1);
		pack_str(&pk, "a.o");
		msgpack_pack_array(&pk, limit_items);
		for (unsigned k = 0; k < limit_items; k++)
			msgpack_pack_uint64(&pk, i == 0 ? 0 : 10u + k); /* run: 10, 11, 12, 13 */
		pack_str(&pk, i == 0 ? "" : "out.txt");
		msgpack_pack_uint64(&pk, (uint64_t)i * 3); /* stage gpus 0, 3 */
	}
	msgpack_pack_uint64(&pk, 7); /* revision */
	msgpack_pack_uint64(&pk, 2); /* active_jobs */
	msgpack_pack_uint64(&pk, 300);
	msgpack_pack_uint64(&pk, 400);
}

/* A schema-5 store: a v3 target becomes v4 with network false, disk_bytes
 * 0 and each stage's limits + processes 0, every other item unchanged; the
 * migrated record is exactly what the current encoder writes for it. */
static void test_migrate_from_5(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 5);
	raw_put_u64(&r, "applied_index", 123);
	msgpack_sbuffer_init(&sb);
	pack_v3_target(&sb, "edge-arm", 4);
	raw_put(&r, 3, "edge-arm", 8, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	raw_close(&r);

	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	struct ing_str val;
	struct rec_target tg;
	uint64_t v;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 123);
	assert_int_equal(store_get(t, STORE_TARGETS, ing_str_c("edge-arm"), &val), 0);
	msgpack_zone *z = msgpack_zone_new(1024);
	if (rec_target_decode(val, z, &tg, &e) != 0)
		fail_msg("decode: %s", e.msg);
	assert_true(ing_str_eq_c(tg.name, "edge-arm"));
	assert_true(ing_str_eq_c(tg.description, "kernels for the edge"));
	assert_true(ing_str_eq_c(tg.caps[0], "nvcc"));
	assert_int_equal(tg.gpus, 2);
	assert_false(tg.network);
	assert_int_equal(tg.disk_bytes, 0);
	assert_int_equal(tg.nstages, 2);
	assert_true(ing_str_eq_c(tg.stages[1].name, "run"));
	assert_int_equal(tg.stages[1].timeout_ms, 60001);
	assert_int_equal(tg.stages[1].limits.cpu_seconds, 10);
	assert_int_equal(tg.stages[1].limits.memory_bytes, 11);
	assert_int_equal(tg.stages[1].limits.open_files, 12);
	assert_int_equal(tg.stages[1].limits.output_bytes, 13);
	assert_int_equal(tg.stages[0].limits.processes + tg.stages[1].limits.processes, 0);
	assert_true(ing_str_eq_c(tg.stages[1].stdout_path, "out.txt"));
	assert_int_equal(tg.stages[1].gpus, 3);
	assert_int_equal(tg.revision, 7);
	assert_int_equal(tg.active_jobs, 2);
	assert_int_equal(tg.created_at_ms, 300);
	assert_int_equal(tg.updated_at_ms, 400);
	struct mp_out o;
	mp_out_init(&o);
	assert_int_equal(rec_target_encode(&tg, &o), 0);
	assert_int_equal(o.len, val.len);
	assert_memory_equal(o.data, val.ptr, val.len);
	mp_out_free(&o);
	msgpack_zone_free(z);
	store_abort(t);
	store_close(s);

	reopen_changes_nothing(f);
}

/* A schema-5 store whose target is not a v3 record (limits of 5 items, or
 * a v2 record left behind) is refused as corrupt, naming it, untouched. */
static void test_bad_schema_5_target_is_corrupt(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;

	for (int c = 0; c < 2; c++) {
		fresh_dir(f);
		raw_open(&r, f->path);
		raw_put_u64(&r, "schema_version", 5);
		msgpack_sbuffer_init(&sb);
		pack_v3_target(&sb, "good", 4);
		raw_put(&r, 3, "good", 4, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		msgpack_sbuffer_init(&sb);
		if (c == 0)
			pack_v3_target(&sb, "zz", 5);
		else
			pack_target_v(&sb, "zz", true);
		raw_put(&r, 3, "zz", 2, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		raw_close(&r);
		expect_corrupt_untouched(f, "target 'zz' is not a schema-5 target");
	}
}

/* A version-4 job record (schemas 5 and 6): 25 items, with `state`, `attempt`,
 * `base` and `finished_at_ms` as given, one source, no stages. */
static void pack_v4_job(msgpack_sbuffer *sb, uint64_t id, const char *tenant, uint64_t state,
                        uint64_t attempt, uint64_t base, uint64_t finished_at_ms)
{
	msgpack_packer pk;
	uint8_t sha[32];
	memset(sha, (int)id, sizeof(sha));
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 25);
	msgpack_pack_uint64(&pk, 4);
	msgpack_pack_uint64(&pk, id);
	pack_str(&pk, tenant);
	pack_str(&pk, "cc-x86");
	msgpack_pack_uint64(&pk, 3); /* target_revision */
	pack_str(&pk, "");
	msgpack_pack_uint64(&pk, state);
	msgpack_pack_uint64(&pk, 50); /* priority */
	msgpack_pack_uint64(&pk, attempt);
	msgpack_pack_uint64(&pk, base);
	msgpack_pack_uint64(&pk, 3);
	msgpack_pack_uint64(&pk, state == 0 ? 0 : 2); /* node_id */
	msgpack_pack_uint64(&pk, 1000 + id);
	msgpack_pack_uint64(&pk, 2000 + id);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_uint64(&pk, finished_at_ms);
	msgpack_pack_false(&pk);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 3);
	pack_str(&pk, "src/main.c");
	msgpack_pack_bin(&pk, sizeof(sha));
	msgpack_pack_bin_body(&pk, sha, sizeof(sha));
	msgpack_pack_uint64(&pk, 1234);
	msgpack_pack_array(&pk, 0);  /* params */
	msgpack_pack_uint64(&pk, 0); /* stage_count */
	msgpack_pack_array(&pk, 0);  /* stages */
	msgpack_pack_uint64(&pk, 1); /* nevents */
	pack_str(&pk, "");
	msgpack_pack_array(&pk, 0); /* gpus */
}

/* A schema-6 store: a queued job (its old queue entry), a requeued one
 * (attempt 2 lost, base 1), a running one (no entry), two final ones.  The
 * queue is keyed by target, the final jobs are in finished. */
static void test_migrate_from_6(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;
	uint8_t key[16];
	static const struct {
		uint64_t id, state, attempt, base, finished;
	} jobs[] = {{1, 0, 0, 0, 0},
	            {2, 0, 2, 1, 0},
	            {3, 2, 1, 0, 0},
	            {4, 3, 1, 0, 5000},
	            {5, 5, 0, 0, 4000}};

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 6);
	raw_put_u64(&r, "applied_index", 12);
	for (size_t i = 0; i < 5; i++) {
		msgpack_sbuffer_init(&sb);
		pack_v4_job(&sb, jobs[i].id, "team-a", jobs[i].state, jobs[i].attempt, jobs[i].base,
		            jobs[i].finished);
		store_be64(key, jobs[i].id);
		raw_put(&r, 4, key, 8, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		if (jobs[i].state == 0)
			raw_queue_old(&r, jobs[i].id, "team-a");
	}
	raw_close(&r);

	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	struct ing_str val;
	uint64_t v;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_count(t, STORE_QUEUE, &v), 0);
	assert_int_equal(v, 2);
	check_queue_v7(t, 1, "cc-x86", "team-a");
	uint8_t qk[] = "cc-x86\0\x32team-a\0\0\0\0\0\0\0\0\x02";
	assert_int_equal(
	    store_get(t, STORE_QUEUE, (struct ing_str){(char *)qk, sizeof(qk) - 1}, &val), 0);
	assert_int_equal(store_get_be32(val.ptr), 2);     /* attempt */
	assert_int_equal(store_get_be32(val.ptr + 4), 1); /* lost since the retry */
	assert_int_equal(store_get_be64(val.ptr + 8), 2002);
	assert_int_equal(store_count(t, STORE_FINISHED, &v), 0);
	assert_int_equal(v, 2);
	struct store_iter *it;
	struct ing_str k;
	assert_int_equal(store_iter_open(t, STORE_FINISHED, (struct ing_str){"", 0}, &it), 0);
	assert_int_equal(store_iter_next(it, &k, &val), 0);
	assert_int_equal(store_get_be64(k.ptr), 4000); /* oldest first */
	assert_int_equal(store_get_be64(k.ptr + 8), 5);
	assert_int_equal(store_iter_next(it, &k, &val), 0);
	assert_int_equal(store_get_be64(k.ptr), 5000);
	assert_int_equal(store_get_be64(k.ptr + 8), 4);
	store_iter_close(it);
	for (uint64_t id = 1; id <= 5; id++) {
		struct rec_job j;
		msgpack_zone *z = msgpack_zone_new(1024);
		store_be64(key, id);
		assert_int_equal(store_get(t, STORE_JOBS, (struct ing_str){(char *)key, 8}, &val),
		                 0);
		if (rec_job_decode(val, z, &j, &e) != 0)
			fail_msg("decode: %s", e.msg);
		assert_false(j.sources[0].stored_inline);
		msgpack_zone_free(z);
	}
	assert_int_equal(store_count(t, STORE_SOURCES, &v), 0);
	assert_int_equal(v, 0);
	/* The job counts by state: 2 queued, 1 running, 1 succeeded, 1
	 * cancelled. */
	static const struct {
		const char *name;
		uint64_t n;
	} counts[] = {{"jobs_queued", 2},    {"jobs_assigned", 0}, {"jobs_running", 1},
	              {"jobs_succeeded", 1}, {"jobs_failed", 0},   {"jobs_cancelled", 1}};
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(store_meta_get_u64(t, counts[i].name, &v), 0);
		if (v != counts[i].n)
			fail_msg("%s: %" PRIu64 ", want %" PRIu64, counts[i].name, v, counts[i].n);
	}
	store_abort(t);
	store_close(s);
	reopen_changes_nothing(f);
}

/* A schema-6 store whose queue does not match its queued jobs is corrupt,
 * and left untouched: a queued job without its entry, an entry of no
 * queued job. */
static void test_bad_schema_6_queue_is_corrupt(void **state)
{
	struct fx *f = *state;
	for (int c = 0; c < 2; c++) {
		struct raw r;
		msgpack_sbuffer sb;
		uint8_t key[8];
		fresh_dir(f);
		raw_open(&r, f->path);
		raw_put_u64(&r, "schema_version", 6);
		msgpack_sbuffer_init(&sb);
		pack_v4_job(&sb, 1, "team-a", c == 0 ? 0 : 3, 0, 0, c == 0 ? 0 : 10);
		store_be64(key, 1);
		raw_put(&r, 4, key, 8, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		if (c == 1)
			raw_queue_old(&r, 1, "team-a");
		raw_close(&r);
		expect_corrupt_untouched(f, c == 0 ? "job 1 is not a schema-6 job" : "queue");
	}
}

/* A schema-4 store whose node, target or job is not of the schema-4 layout
 * is refused as corrupt, naming it, and left untouched. */
static void test_bad_schema_4_records_are_corrupt(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;
	uint8_t key[8];
	static const struct {
		size_t table;
		const char *needle;
	} cases[] = {{2, "node 2 is not a schema-4 node"},
	             {3, "target 'zz' is not a schema-4 target"},
	             {4, "job 2 is not a schema-4 job"}};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		fresh_dir(f);
		raw_open(&r, f->path);
		raw_put_u64(&r, "schema_version", 4);
		msgpack_sbuffer_init(&sb);
		pack_v1_node(&sb, 1);
		store_be64(key, 1);
		raw_put(&r, 2, key, 8, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		/* The bad one: a record of the layout before (or after). */
		msgpack_sbuffer_init(&sb);
		store_be64(key, 2);
		if (cases[c].table == 2) {
			raw_put(&r, 2, key, 8, "\x93\x02\x01\x02", 4);
		} else if (cases[c].table == 3) {
			pack_v1_target(&sb, "zz");
			raw_put(&r, 3, "zz", 2, sb.data, sb.size);
		} else {
			pack_job(&sb, 2, "default", "cc-x86", "");
			raw_put(&r, 4, key, 8, sb.data, sb.size);
		}
		msgpack_sbuffer_destroy(&sb);
		raw_close(&r);
		expect_corrupt_untouched(f, cases[c].needle);
	}
}

/* A schema-3 store whose job is not a 23-item v2 record is refused as
 * corrupt and left untouched. */
static void test_bad_v2_job_is_corrupt(void **state)
{
	struct fx *f = *state;
	struct raw r;
	uint8_t key[8];
	msgpack_sbuffer sb;

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 3);
	msgpack_sbuffer_init(&sb);
	pack_job(&sb, 1, "default", "cc-x86", "");
	store_be64(key, 1);
	raw_put(&r, 4, key, 8, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	/* A v1 job left in a schema-3 store: not a v2 record. */
	msgpack_sbuffer_init(&sb);
	pack_v1_job(&sb, 12, "cc-x86", "");
	store_be64(key, 12);
	raw_put(&r, 4, key, 8, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	raw_close(&r);

	char *before = tu_mdb_dump(f->path);
	struct store *s = NULL;
	struct ing_error e;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), ING_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(e.msg, "job 12"));
	assert_non_null(strstr(e.msg, "schema-3 job"));
	char *after = tu_mdb_dump(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_bad_v1_target_is_corrupt(void **state)
{
	struct fx *f = *state;
	struct raw r;
	msgpack_sbuffer sb;

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 2);
	msgpack_sbuffer_init(&sb);
	pack_v1_target(&sb, "good");
	raw_put(&r, 3, "good", 4, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	/* [1, "bad", [], [], [[1]]]: a stage that is not 5 items. */
	raw_put(&r, 3, "zz-bad", 6,
	        "\x95\x01\xa3"
	        "bad"
	        "\x90\x90\x91\x91\x01",
	        11);
	raw_close(&r);

	char *before = tu_mdb_dump(f->path);
	struct store *s = NULL;
	struct ing_error e;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), ING_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(e.msg, "target 'zz-bad'"));
	char *after = tu_mdb_dump(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_bad_v1_job_is_corrupt(void **state)
{
	struct fx *f = *state;
	struct raw r;
	uint8_t key[8];
	msgpack_sbuffer sb;

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 1);
	msgpack_sbuffer_init(&sb);
	pack_v1_job(&sb, 1, "cc-x86", "");
	store_be64(key, 1);
	raw_put(&r, 4, key, 8, sb.data, sb.size);
	store_be64(key, 9);
	raw_put(&r, 4, key, 8, "\x93\x05\x01\x02", 4); /* [5, 1, 2]: not a v1 job */
	raw_close(&r);
	msgpack_sbuffer_destroy(&sb);

	char *before = tu_mdb_dump(f->path);
	struct store *s = NULL;
	struct ing_error e;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), ING_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(e.msg, "job 9"));
	char *after = tu_mdb_dump(f->path);
	assert_string_equal(before, after); /* the migration txn was not committed */
	free(before);
	free(after);
}

static void test_newer_store_is_refused(void **state)
{
	struct fx *f = *state;
	struct raw r;
	char want[512];

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", STORE_SCHEMA_VERSION + 1);
	raw_put_u64(&r, "applied_index", 9);
	raw_put(&r, 4, "\0\0\0\0\0\0\0\1", 8, "\x93\x03\x01\x02", 4);
	raw_close(&r);

	char *before = tu_mdb_dump(f->path);
	struct store *s = NULL;
	struct ing_error e;
	assert_int_equal(store_open(f->dir, &fast, &s, &e), ING_ENEWER);
	assert_null(s);
	assert_int_equal(e.code, ING_ENEWER);
	snprintf(want, sizeof(want),
	         "store %s has schema %d, this ingot supports up to %d; upgrade ingot", f->path,
	         STORE_SCHEMA_VERSION + 1, STORE_SCHEMA_VERSION);
	assert_string_equal(e.msg, want);
	char *after = tu_mdb_dump(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_missing_version_with_data_is_corrupt(void **state)
{
	struct fx *f = *state;
	struct raw r;
	struct store *s = NULL;
	struct ing_error e;

	raw_open(&r, f->path);
	raw_put(&r, 3, "t", 1, "x", 1); /* a target but no schema version */
	raw_close(&r);
	assert_int_equal(store_open(f->dir, &fast, &s, &e), ING_ECORRUPT);
	assert_null(s);

	raw_open(&r, f->path);
	raw_put_u64(&r, "schema_version", 0);
	raw_close(&r);
	assert_int_equal(store_open(f->dir, &fast, &s, &e), ING_ECORRUPT);
	assert_null(s);
}

/* A schema-1 snapshot is migrated when it is installed. */
static void test_import_v1_snapshot(void **state)
{
	struct fx *f = *state;
	char src[256], snap[300];
	struct raw r;
	msgpack_sbuffer sb;
	uint8_t key[8];
	struct store *s;
	struct store_txn *t;
	struct ing_error e;
	struct ing_str val;
	bool replaced = false;
	uint64_t v;

	tu_tmpdir(src, sizeof(src));
	snprintf(snap, sizeof(snap), "%s/state.mdb", src);
	raw_open(&r, snap);
	raw_put_u64(&r, "schema_version", 1);
	raw_put_u64(&r, "applied_index", 42);
	msgpack_sbuffer_init(&sb);
	pack_v1_job(&sb, 7, "cc-x86", "");
	store_be64(key, 7);
	raw_put(&r, 4, key, 8, sb.data, sb.size);
	raw_queue_old(&r, 7, "default");
	raw_close(&r);
	msgpack_sbuffer_destroy(&sb);

	assert_int_equal(store_open(f->dir, &fast, &s, &e), 0);
	assert_int_equal(store_snapshot_import(s, snap, &replaced, &e), 0);
	assert_true(replaced);
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(store_get(t, STORE_JOBS, (struct ing_str){(char *)key, 8}, &val), 0);
	msgpack_unpacked u;
	unpack(val.ptr, val.len, &u);
	assert_int_equal(u.data.via.array.size, 25);
	assert_int_equal(u.data.via.array.ptr[0].via.u64, 5);
	assert_memory_equal(u.data.via.array.ptr[2].via.str.ptr, "default", 7);
	msgpack_unpacked_destroy(&u);
	check_migrated_job(t, 7, "default", "cc-x86", "");
	store_abort(t);
	store_close(s);
	tu_rmrf(src);
}

int main(void)
{
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fresh_store_is_stamped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_4, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_5, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_schema_5_target_is_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_6, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_schema_6_queue_is_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_schema_4_records_are_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_v2_job_is_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_v1_target_is_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_v1_job_is_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_store_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_version_with_data_is_corrupt, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_import_v1_snapshot, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
