/*
 * migrate.c - schema versions of the store and the migrations between them.
 *
 * The schema version lives in meta "schema_version" (u64 BE).  At open,
 * with every table open:
 *   - no version and every table empty: a fresh store, stamped with
 *     STORE_SCHEMA_VERSION;
 *   - version == STORE_SCHEMA_VERSION: nothing to do (nothing is written);
 *   - 0 < version < STORE_SCHEMA_VERSION: migrations[version],
 *     migrations[version + 1], ... run in order inside ONE write txn that
 *     also stamps the new version, so a crash leaves either the old store
 *     or the fully migrated one;
 *   - version > STORE_SCHEMA_VERSION: refused with ING_ENEWER before
 *     anything is written (store_env_open checks this before opening the
 *     tables with MDB_CREATE, and again here);
 *   - version 0, or no version but data in some table: ING_ECORRUPT.
 * A version with no migration from it (an entry left NULL) is ING_EVERSION.
 *
 * Schema history:
 *   1 -> 2: job records gained the tenant.  v1 job = [1, id, target,
 *           target_revision, request_id, rest...]; v2 job = [2, id, tenant,
 *           target, target_revision, request_id, rest...] with tenant
 *           "default".  Every other item is re-packed unchanged by msgpack-c.
 *   2 -> 3: target records gained a description and, per stage, resource
 *           limits and a stdout file.  v1 target = [1, name, caps, labels,
 *           stages[[name, argv, timeout_ms, env, outputs]...], rest...];
 *           v2 target = [2, name, description, caps, labels,
 *           stages[[name, argv, timeout_ms, env, outputs, limits, stdout]...],
 *           rest...] with description "", limits [0, 0, 0, 0] (none) and
 *           stdout "" (not captured).
 *   3 -> 4: job records gained the params.  v2 job = [2, id, tenant, ...,
 *           cancel_requested, sources, stage_count, ...] (23 items);
 *           v3 job = [3, id, tenant, ..., cancel_requested, sources, params,
 *           stage_count, ...] (24 items) with params [] (none).
 *   4 -> 5: GPUs.  Node records v1 [1, id, ..., updated_at_ms] (11 items)
 *           -> v2 [2, id, ..., updated_at_ms, gpus, gpu_holds] with both
 *           [] (none offered, none held).  Target records v2 [2, name,
 *           description, caps, labels, stages, rest...] -> v3 [3, name,
 *           description, caps, labels, gpus, stages', rest...] with gpus 0
 *           and each 7-item stage + gpus 0.  Job records v3 (24 items) ->
 *           v4 [4, ..., error, gpus] with gpus [] (none).
 *   5 -> 6: the stage sandbox's per-target settings.  Target records v3
 *           [3, name, description, caps, labels, gpus, stages, rest...]
 *           (11 items) -> v4 [4, name, description, caps, labels, gpus,
 *           network, disk_bytes, stages', rest...] with network false, disk
 *           0 (the node's ceiling) and each stage's 4-item limits + processes
 *           0 (the node's ceiling).
 *   6 -> 7: the layout of scale (issue 16).  Job records v4 (25 items) ->
 *           v5: each source [path, sha256, size] -> [path, sha256, size,
 *           false] (kept as an artifact, as before).  The queue is keyed by
 *           target first: each old key (100 - priority, tenant, 0x00, job)
 *           of a queued job becomes (target, 0x00, 100 - priority, tenant,
 *           0x00, job) with the value (attempt u32 BE, attempt - base u32
 *           BE, updated_at_ms u64 BE).  Every final job gets its entry
 *           (finished_at_ms, job) in the new table finished.  The new
 *           tables sources and dedupe_alt start empty (created at open).
 *
 * Each step rewrites one table record by record (rewrite_table); a record
 * that is not of the expected older layout is ING_ECORRUPT, naming its key,
 * and the whole migration txn is aborted.
 */
#include "storage/store_internal.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mp.h"
#include "storage/records.h"

#define STORE_KEY_MAX_BYTES 511u

/* Rewrites the store's records from schema `index` to `index + 1`. */
typedef int (*migration_fn)(struct store_txn *t, struct ing_error *e);

static int migrate_1_to_2(struct store_txn *t, struct ing_error *e);
static int migrate_2_to_3(struct store_txn *t, struct ing_error *e);
static int migrate_3_to_4(struct store_txn *t, struct ing_error *e);
static int migrate_4_to_5(struct store_txn *t, struct ing_error *e);
static int migrate_5_to_6(struct store_txn *t, struct ing_error *e);
static int migrate_6_to_7(struct store_txn *t, struct ing_error *e);

static const migration_fn migrations[STORE_SCHEMA_VERSION] = {
    [0] = NULL, /* no store was ever written with schema 0 */
    [1] = migrate_1_to_2, [2] = migrate_2_to_3, [3] = migrate_3_to_4,
    [4] = migrate_4_to_5, [5] = migrate_5_to_6, [6] = migrate_6_to_7,
};

int store_schema_refuse_newer(const char *path, uint64_t schema, struct ing_error *e)
{
	if (schema <= STORE_SCHEMA_VERSION)
		return 0;
	return ing_error_set(e, ING_ENEWER,
	                     "store %s has schema %" PRIu64
	                     ", this ingot supports up to %d; upgrade ingot",
	                     path, schema, STORE_SCHEMA_VERSION);
}

/* Describes a jobs key for messages: "job 7" or "job key of 3 bytes". */
static void job_key_name(struct ing_str key, char *buf, size_t cap)
{
	if (key.len == 8)
		snprintf(buf, cap, "job %" PRIu64, store_get_be64(key.ptr));
	else
		snprintf(buf, cap, "job key of %u bytes", key.len);
}

/* Describes a nodes key for messages: "node 2" or "node key of 3 bytes". */
static void node_key_name(struct ing_str key, char *buf, size_t cap)
{
	if (key.len == 8)
		snprintf(buf, cap, "node %" PRIu64, store_get_be64(key.ptr));
	else
		snprintf(buf, cap, "node key of %u bytes", key.len);
}

/* Describes a targets key (the target's name) for messages. */
static void target_key_name(struct ing_str key, char *buf, size_t cap)
{
	snprintf(buf, cap, "target '%.*s'", (int)(key.len > 48 ? 48 : key.len), key.ptr);
}

/*
 * Re-packs one parsed record of the older layout into o.  Returns 0,
 * ING_ENOMEM, or ING_EMALFORMED when it does not have the older layout
 * (rewrite_table reports that as corruption, naming the key).
 */
typedef int (*rewrite_fn)(const msgpack_object *rec, struct mp_out *o);

/* The record's items when it is an array of at least min_n items whose first
 * is the version `version`; NULL otherwise. */
static const msgpack_object *versioned(const msgpack_object *rec, uint32_t min_n, uint64_t version)
{
	if (rec->type != MSGPACK_OBJECT_ARRAY || rec->via.array.size < min_n ||
	    rec->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    rec->via.array.ptr[0].via.u64 != version)
		return NULL;
	return rec->via.array.ptr;
}

/* v1 job [1, id, target, revision, request_id, ...] -> v2 (tenant "default"). */
static int job_v1_to_v2(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, 5, 1);
	if (items == NULL)
		return ING_EMALFORMED;
	uint32_t n = rec->via.array.size;
	msgpack_pack_array(&o->pk, n + 1);
	msgpack_pack_uint64(&o->pk, 2);
	msgpack_pack_object(&o->pk, items[1]);
	mp_pack_cstr(&o->pk, "default");
	for (uint32_t i = 2; i < n; i++)
		msgpack_pack_object(&o->pk, items[i]);
	return mp_out_failed(o);
}

/* v1 target [1, name, caps, labels, stages, ...] -> v2: description "",
 * each 5-item stage + limits [0, 0, 0, 0] + stdout "". */
static int target_v1_to_v2(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, 5, 1);
	if (items == NULL || items[4].type != MSGPACK_OBJECT_ARRAY)
		return ING_EMALFORMED;
	const msgpack_object_array *stages = &items[4].via.array;
	for (uint32_t i = 0; i < stages->size; i++) {
		if (stages->ptr[i].type != MSGPACK_OBJECT_ARRAY ||
		    stages->ptr[i].via.array.size != 5)
			return ING_EMALFORMED;
	}
	uint32_t n = rec->via.array.size;
	msgpack_pack_array(&o->pk, n + 1);
	msgpack_pack_uint64(&o->pk, 2);
	msgpack_pack_object(&o->pk, items[1]);
	mp_pack_cstr(&o->pk, "");
	msgpack_pack_object(&o->pk, items[2]);
	msgpack_pack_object(&o->pk, items[3]);
	msgpack_pack_array(&o->pk, stages->size);
	for (uint32_t i = 0; i < stages->size; i++) {
		const msgpack_object_array *st = &stages->ptr[i].via.array;
		msgpack_pack_array(&o->pk, 7);
		for (uint32_t j = 0; j < 5; j++)
			msgpack_pack_object(&o->pk, st->ptr[j]);
		msgpack_pack_array(&o->pk, 4);
		for (int j = 0; j < 4; j++)
			msgpack_pack_uint64(&o->pk, 0);
		mp_pack_cstr(&o->pk, "");
	}
	for (uint32_t i = 5; i < n; i++)
		msgpack_pack_object(&o->pk, items[i]);
	return mp_out_failed(o);
}

/* Index of `sources` in a v2 (and v3) job record; params follow it in v3. */
#define JOB_V2_SOURCES 18
#define JOB_V2_ITEMS   23

/* v2 job [2, id, tenant, ..., sources, stage_count, ...] (23 items) -> v3:
 * params [] inserted after sources. */
static int job_v2_to_v3(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, JOB_V2_ITEMS, 2);
	if (items == NULL || rec->via.array.size != JOB_V2_ITEMS ||
	    items[JOB_V2_SOURCES].type != MSGPACK_OBJECT_ARRAY)
		return ING_EMALFORMED;
	msgpack_pack_array(&o->pk, JOB_V2_ITEMS + 1);
	msgpack_pack_uint64(&o->pk, 3);
	for (uint32_t i = 1; i <= JOB_V2_SOURCES; i++)
		msgpack_pack_object(&o->pk, items[i]);
	msgpack_pack_array(&o->pk, 0);
	for (uint32_t i = JOB_V2_SOURCES + 1; i < JOB_V2_ITEMS; i++)
		msgpack_pack_object(&o->pk, items[i]);
	return mp_out_failed(o);
}

#define NODE_V1_ITEMS   11
#define JOB_V3_ITEMS    24
#define TARGET_V2_ITEMS 10

/* v1 node (11 items) -> v2: gpus [] and gpu_holds [] appended. */
static int node_v1_to_v2(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, NODE_V1_ITEMS, 1);
	if (items == NULL || rec->via.array.size != NODE_V1_ITEMS)
		return ING_EMALFORMED;
	msgpack_pack_array(&o->pk, NODE_V1_ITEMS + 2);
	msgpack_pack_uint64(&o->pk, 2);
	for (uint32_t i = 1; i < NODE_V1_ITEMS; i++)
		msgpack_pack_object(&o->pk, items[i]);
	msgpack_pack_array(&o->pk, 0);
	msgpack_pack_array(&o->pk, 0);
	return mp_out_failed(o);
}

/* v2 target [2, name, description, caps, labels, stages, ...] (10 items)
 * -> v3: gpus 0 inserted after labels, each 7-item stage + gpus 0. */
static int target_v2_to_v3(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, TARGET_V2_ITEMS, 2);
	if (items == NULL || rec->via.array.size != TARGET_V2_ITEMS ||
	    items[5].type != MSGPACK_OBJECT_ARRAY)
		return ING_EMALFORMED;
	const msgpack_object_array *stages = &items[5].via.array;
	for (uint32_t i = 0; i < stages->size; i++) {
		if (stages->ptr[i].type != MSGPACK_OBJECT_ARRAY ||
		    stages->ptr[i].via.array.size != 7)
			return ING_EMALFORMED;
	}
	msgpack_pack_array(&o->pk, TARGET_V2_ITEMS + 1);
	msgpack_pack_uint64(&o->pk, 3);
	for (uint32_t i = 1; i <= 4; i++)
		msgpack_pack_object(&o->pk, items[i]);
	msgpack_pack_uint64(&o->pk, 0);
	msgpack_pack_array(&o->pk, stages->size);
	for (uint32_t i = 0; i < stages->size; i++) {
		const msgpack_object_array *st = &stages->ptr[i].via.array;
		msgpack_pack_array(&o->pk, 8);
		for (uint32_t j = 0; j < 7; j++)
			msgpack_pack_object(&o->pk, st->ptr[j]);
		msgpack_pack_uint64(&o->pk, 0);
	}
	for (uint32_t i = 6; i < TARGET_V2_ITEMS; i++)
		msgpack_pack_object(&o->pk, items[i]);
	return mp_out_failed(o);
}

/* v3 job (24 items) -> v4: gpus [] appended. */
static int job_v3_to_v4(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, JOB_V3_ITEMS, 3);
	if (items == NULL || rec->via.array.size != JOB_V3_ITEMS)
		return ING_EMALFORMED;
	msgpack_pack_array(&o->pk, JOB_V3_ITEMS + 1);
	msgpack_pack_uint64(&o->pk, 4);
	for (uint32_t i = 1; i < JOB_V3_ITEMS; i++)
		msgpack_pack_object(&o->pk, items[i]);
	msgpack_pack_array(&o->pk, 0);
	return mp_out_failed(o);
}

#define TARGET_V3_ITEMS  11
#define TARGET_V3_STAGES 6 /* index of stages in a v3 target record */
#define STAGE_V3_ITEMS   8
#define STAGE_V3_LIMITS  5 /* index of limits in a v3 stage */

/* v3 target [3, name, description, caps, labels, gpus, stages, ...] (11
 * items) -> v4: network false and disk_bytes 0 inserted after gpus, each
 * stage's 4-item limits + processes 0. */
static int target_v3_to_v4(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, TARGET_V3_ITEMS, 3);
	if (items == NULL || rec->via.array.size != TARGET_V3_ITEMS ||
	    items[TARGET_V3_STAGES].type != MSGPACK_OBJECT_ARRAY)
		return ING_EMALFORMED;
	const msgpack_object_array *stages = &items[TARGET_V3_STAGES].via.array;
	for (uint32_t i = 0; i < stages->size; i++) {
		const msgpack_object *st = &stages->ptr[i];
		if (st->type != MSGPACK_OBJECT_ARRAY || st->via.array.size != STAGE_V3_ITEMS ||
		    st->via.array.ptr[STAGE_V3_LIMITS].type != MSGPACK_OBJECT_ARRAY ||
		    st->via.array.ptr[STAGE_V3_LIMITS].via.array.size != 4)
			return ING_EMALFORMED;
	}
	msgpack_pack_array(&o->pk, TARGET_V3_ITEMS + 2);
	msgpack_pack_uint64(&o->pk, 4);
	for (uint32_t i = 1; i < TARGET_V3_STAGES; i++)
		msgpack_pack_object(&o->pk, items[i]);
	mp_pack_bool(&o->pk, false);
	msgpack_pack_uint64(&o->pk, 0);
	msgpack_pack_array(&o->pk, stages->size);
	for (uint32_t i = 0; i < stages->size; i++) {
		const msgpack_object_array *st = &stages->ptr[i].via.array;
		msgpack_pack_array(&o->pk, STAGE_V3_ITEMS);
		for (uint32_t j = 0; j < STAGE_V3_ITEMS; j++) {
			if (j != STAGE_V3_LIMITS) {
				msgpack_pack_object(&o->pk, st->ptr[j]);
				continue;
			}
			const msgpack_object_array *lim = &st->ptr[j].via.array;
			msgpack_pack_array(&o->pk, 5);
			for (uint32_t k = 0; k < 4; k++)
				msgpack_pack_object(&o->pk, lim->ptr[k]);
			msgpack_pack_uint64(&o->pk, 0);
		}
	}
	for (uint32_t i = TARGET_V3_STAGES + 1; i < TARGET_V3_ITEMS; i++)
		msgpack_pack_object(&o->pk, items[i]);
	return mp_out_failed(o);
}

#define JOB_V4_ITEMS 25
/* Indexes of the items of a v4 (and v5) job record the 6 -> 7 step reads. */
enum {
	JOB_ID = 1,
	JOB_TENANT = 2,
	JOB_TARGET = 3,
	JOB_STATE = 6,
	JOB_PRIORITY = 7,
	JOB_ATTEMPT = 8,
	JOB_ATTEMPT_BASE = 9,
	JOB_UPDATED = 13,
	JOB_FINISHED = 16,
	JOB_SOURCES = 18,
};
#define JOB_QUEUED 0
#define JOB_FINAL  3 /* succeeded, failed and cancelled are 3, 4, 5 */

/* v4 job (25 items) -> v5: each source [path, sha256, size] + false. */
static int job_v4_to_v5(const msgpack_object *rec, struct mp_out *o)
{
	const msgpack_object *items = versioned(rec, JOB_V4_ITEMS, 4);
	if (items == NULL || rec->via.array.size != JOB_V4_ITEMS ||
	    items[JOB_SOURCES].type != MSGPACK_OBJECT_ARRAY)
		return ING_EMALFORMED;
	const msgpack_object_array *src = &items[JOB_SOURCES].via.array;
	for (uint32_t i = 0; i < src->size; i++)
		if (src->ptr[i].type != MSGPACK_OBJECT_ARRAY || src->ptr[i].via.array.size != 3)
			return ING_EMALFORMED;
	msgpack_pack_array(&o->pk, JOB_V4_ITEMS);
	msgpack_pack_uint64(&o->pk, 5);
	for (uint32_t i = 1; i < JOB_V4_ITEMS; i++) {
		if (i != JOB_SOURCES) {
			msgpack_pack_object(&o->pk, items[i]);
			continue;
		}
		msgpack_pack_array(&o->pk, src->size);
		for (uint32_t k = 0; k < src->size; k++) {
			msgpack_pack_array(&o->pk, 4);
			for (uint32_t j = 0; j < 3; j++)
				msgpack_pack_object(&o->pk, src->ptr[k].via.array.ptr[j]);
			msgpack_pack_false(&o->pk);
		}
	}
	return mp_out_failed(o);
}

/* Item i of a job record as an unsigned integer, or false. */
static bool job_uint(const msgpack_object *items, unsigned i, uint64_t max, uint64_t *out)
{
	if (items[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER || items[i].via.u64 > max)
		return false;
	*out = items[i].via.u64;
	return true;
}

/* Item i of a job record as a name of 1..63 bytes copied into buf, or 0. */
static uint32_t job_name(const msgpack_object *items, unsigned i, char *buf)
{
	if (items[i].type != MSGPACK_OBJECT_STR || items[i].via.str.size == 0 ||
	    items[i].via.str.size > 63)
		return 0;
	memcpy(buf, items[i].via.str.ptr, items[i].via.str.size);
	return items[i].via.str.size;
}

/* The queue and finished entries of one v4 job (see the 6 -> 7 step). */
static int job_v4_index(struct store_txn *t, const msgpack_object *rec)
{
	const msgpack_object *items = rec->via.array.ptr; /* checked by job_v4_to_v5 */
	char tenant[64], target[64];
	uint8_t old_key[1 + 63 + 1 + 8], new_key[63 + 1 + 1 + 63 + 1 + 8], val[16];
	uint64_t id, state, prio, attempt, base, updated, finished;
	uint32_t tlen, nlen;
	size_t n = 0;
	int rv;

	if (!job_uint(items, JOB_ID, UINT64_MAX, &id) || !job_uint(items, JOB_STATE, 5, &state) ||
	    !job_uint(items, JOB_PRIORITY, 100, &prio) ||
	    !job_uint(items, JOB_ATTEMPT, UINT32_MAX, &attempt) ||
	    !job_uint(items, JOB_ATTEMPT_BASE, attempt, &base) ||
	    !job_uint(items, JOB_UPDATED, UINT64_MAX, &updated) ||
	    !job_uint(items, JOB_FINISHED, UINT64_MAX, &finished) ||
	    (tlen = job_name(items, JOB_TENANT, tenant)) == 0 ||
	    (nlen = job_name(items, JOB_TARGET, target)) == 0)
		return ING_EMALFORMED;
	if (state >= JOB_FINAL) {
		store_be64(new_key, finished);
		store_be64(new_key + 8, id);
		return store_put(t, STORE_FINISHED, (struct ing_str){(const char *)new_key, 16},
		                 (struct ing_str){"", 0});
	}
	if (state != JOB_QUEUED)
		return 0;
	old_key[n++] = (uint8_t)(100 - prio);
	memcpy(old_key + n, tenant, tlen);
	n += tlen;
	old_key[n++] = 0;
	store_be64(old_key + n, id);
	n += 8;
	rv = store_del(t, STORE_QUEUE, (struct ing_str){(const char *)old_key, (uint32_t)n});
	if (rv == ING_ENOTFOUND)
		return ING_EMALFORMED; /* a queued job missing from the queue */
	if (rv != 0)
		return rv;
	n = 0;
	memcpy(new_key, target, nlen);
	n += nlen;
	new_key[n++] = 0;
	new_key[n++] = (uint8_t)(100 - prio);
	memcpy(new_key + n, tenant, tlen);
	n += tlen;
	new_key[n++] = 0;
	store_be64(new_key + n, id);
	n += 8;
	store_be32(val, (uint32_t)attempt);
	store_be32(val + 4, (uint32_t)(attempt - base));
	store_be64(val + 8, updated);
	return store_put(t, STORE_QUEUE, (struct ing_str){(const char *)new_key, (uint32_t)n},
	                 (struct ing_str){(const char *)val, 16});
}

/*
 * Writes what other tables derive from one record of the older layout, in
 * the same migration txn: called with the parsed record before it is
 * rewritten, so it must copy what it needs from rec before its first write.
 * 0, ING_EMALFORMED (reported as corruption naming the key), or a store
 * error.
 */
typedef int (*index_fn)(struct store_txn *t, const msgpack_object *rec);

/*
 * Rewrites every record of `table` with `fn` (and, when not NULL, calls
 * `index` for each).  Records are visited one at a time with a fresh
 * cursor positioned just past the previous key, so that no cursor or view
 * is held across a put.  `key_name` describes a key and `layout` the
 * expected older layout in messages.  *count is the number of records
 * rewritten.
 */
static int rewrite_table(struct store_txn *t, enum store_table table, rewrite_fn fn, index_fn index,
                         void (*key_name)(struct ing_str, char *, size_t), const char *layout,
                         uint64_t *count, struct ing_error *e)
{
	struct store *s = store_txn_store(t);
	const char *tname = store_table_name(table);
	char last[STORE_KEY_MAX_BYTES + 1], name[80];
	uint32_t last_len = 0;
	struct store_iter *it = NULL;
	struct ing_str key, val;
	struct mp_out o;
	msgpack_zone *zone;
	int rv;

	*count = 0;
	mp_out_init(&o);
	zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (zone == NULL) {
		rv = ing_error_set(e, ING_ENOMEM, "store %s: migration: out of memory", s->path);
		goto out;
	}
	for (;;) {
		msgpack_object obj;
		struct ing_error pe;
		size_t used;
		/* last + 0x00 is the smallest key after last. */
		struct ing_str start = {last, last_len == 0 ? 0 : last_len + 1};
		rv = store_iter_open(t, table, start, &it);
		if (rv == 0)
			rv = store_iter_next(it, &key, &val);
		if (rv == ING_ENOTFOUND) {
			rv = 0;
			break;
		}
		if (rv != 0) {
			ing_error_set(e, rv, "store %s: migration: reading %s: %s", s->path, tname,
			              ing_err_msg(rv));
			goto out;
		}
		key_name(key, name, sizeof(name));
		rv = mp_parse(val.ptr, val.len, zone, &obj, &used, &pe);
		if (rv == ING_ENOMEM) {
			ing_error_set(e, rv, "store %s: migrating %s: %s", s->path, name, pe.msg);
			goto out;
		}
		if (rv == 0 && used == val.len)
			rv = fn(&obj, &o);
		else
			rv = ING_EMALFORMED;
		if (rv == 0) {
			memcpy(last, key.ptr, key.len);
			last_len = key.len;
			last[last_len] = '\0';
			store_iter_close(it);
			it = NULL;
			key.ptr = last;
		}
		if (rv == 0 && index != NULL)
			rv = index(t, &obj);
		if (rv == ING_ENOMEM) {
			ing_error_set(e, rv, "store %s: migrating %s: out of memory", s->path,
			              name);
			goto out;
		}
		if (rv != 0 && rv != ING_EMALFORMED) {
			ing_error_set(e, rv, "store %s: migration: indexing %s: %s", s->path, name,
			              ing_err_msg(rv));
			goto out;
		}
		if (rv != 0) {
			ING_LOG_ERROR("migration found a bad record path=%s table=%s key=\"%s\"",
			              s->path, tname, name);
			rv =
			    ing_error_set(e, STORE_CORRUPT(s, "record is not of the older layout"),
			                  "store %s: %s is not a %s record", s->path, name, layout);
			goto out;
		}
		rv = store_put(t, table, key, (struct ing_str){o.data, (uint32_t)o.len});
		if (rv != 0) {
			ing_error_set(e, rv, "store %s: migration: writing %s: %s", s->path, name,
			              ing_err_msg(rv));
			goto out;
		}
		mp_out_reset(&o);
		msgpack_zone_clear(zone);
		(*count)++;
	}
out:
	store_iter_close(it);
	if (zone != NULL)
		msgpack_zone_free(zone);
	mp_out_free(&o);
	return rv;
}

static int migrate_1_to_2(struct store_txn *t, struct ing_error *e)
{
	uint64_t n;
	int rv =
	    rewrite_table(t, STORE_JOBS, job_v1_to_v2, NULL, job_key_name, "schema-1 job", &n, e);
	if (rv == 0)
		ING_LOG_INFO("store migration step from=1 to=2 jobs=%" PRIu64 " path=%s", n,
		             store_txn_store(t)->path);
	return rv;
}

static int migrate_2_to_3(struct store_txn *t, struct ing_error *e)
{
	uint64_t n;
	int rv = rewrite_table(t, STORE_TARGETS, target_v1_to_v2, NULL, target_key_name,
	                       "schema-2 target", &n, e);
	if (rv == 0)
		ING_LOG_INFO("store migration step from=2 to=3 targets=%" PRIu64 " path=%s", n,
		             store_txn_store(t)->path);
	return rv;
}

static int migrate_3_to_4(struct store_txn *t, struct ing_error *e)
{
	uint64_t n;
	int rv =
	    rewrite_table(t, STORE_JOBS, job_v2_to_v3, NULL, job_key_name, "schema-3 job", &n, e);
	if (rv == 0)
		ING_LOG_INFO("store migration step from=3 to=4 jobs=%" PRIu64 " path=%s", n,
		             store_txn_store(t)->path);
	return rv;
}

static int migrate_4_to_5(struct store_txn *t, struct ing_error *e)
{
	uint64_t nodes, targets, jobs;
	int rv = rewrite_table(t, STORE_NODES, node_v1_to_v2, NULL, node_key_name, "schema-4 node",
	                       &nodes, e);
	if (rv == 0)
		rv = rewrite_table(t, STORE_TARGETS, target_v2_to_v3, NULL, target_key_name,
		                   "schema-4 target", &targets, e);
	if (rv == 0)
		rv = rewrite_table(t, STORE_JOBS, job_v3_to_v4, NULL, job_key_name, "schema-4 job",
		                   &jobs, e);
	if (rv == 0)
		ING_LOG_INFO("store migration step from=4 to=5 nodes=%" PRIu64 " targets=%" PRIu64
		             " jobs=%" PRIu64 " path=%s",
		             nodes, targets, jobs, store_txn_store(t)->path);
	return rv;
}

static int migrate_5_to_6(struct store_txn *t, struct ing_error *e)
{
	uint64_t n;
	int rv = rewrite_table(t, STORE_TARGETS, target_v3_to_v4, NULL, target_key_name,
	                       "schema-5 target", &n, e);
	if (rv == 0)
		ING_LOG_INFO("store migration step from=5 to=6 targets=%" PRIu64 " path=%s", n,
		             store_txn_store(t)->path);
	return rv;
}

/* Sets meta STORE_META_JOBS_PREFIX + state to the number of jobs in each
 * state (the rewritten v5 records). */
static int count_jobs(struct store_txn *t, struct ing_error *e)
{
	struct store *s = store_txn_store(t);
	uint64_t counts[REC_JOB_STATE_COUNT] = {0};
	struct store_iter *it = NULL;
	struct ing_str k, v;
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	int rv = store_iter_open(t, STORE_JOBS, (struct ing_str){"", 0}, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_job j;
		if (rec_job_decode(v, &z, &j, NULL) != 0 || j.state >= REC_JOB_STATE_COUNT) {
			rv = STORE_CORRUPT(s, "migrated job does not decode");
			break;
		}
		counts[j.state]++;
		msgpack_zone_clear(&z);
	}
	store_iter_close(it);
	msgpack_zone_destroy(&z);
	if (rv == ING_ENOTFOUND)
		rv = 0;
	for (uint8_t st = 0; rv == 0 && st < REC_JOB_STATE_COUNT; st++) {
		char name[32];
		snprintf(name, sizeof(name), STORE_META_JOBS_PREFIX "%s", rec_job_state_name(st));
		rv = store_meta_put_u64(t, name, counts[st]);
	}
	if (rv != 0)
		return ing_error_set(e, rv, "store %s: migration: counting jobs: %s", s->path,
		                     ing_err_msg(rv));
	return 0;
}

static int migrate_6_to_7(struct store_txn *t, struct ing_error *e)
{
	struct store *s = store_txn_store(t);
	uint64_t jobs, queued;
	int rv = store_count(t, STORE_QUEUE, &queued);
	if (rv != 0)
		return ing_error_set(e, rv, "store %s: migration: counting queue: %s", s->path,
		                     ing_err_msg(rv));
	rv = rewrite_table(t, STORE_JOBS, job_v4_to_v5, job_v4_index, job_key_name, "schema-6 job",
	                   &jobs, e);
	if (rv != 0)
		return rv;
	/* Every old key was replaced by one new key: any left is a queue
	 * entry without its queued job. */
	uint64_t after;
	struct store_iter *it = NULL;
	struct ing_str k, v;
	rv = store_iter_open(t, STORE_QUEUE, (struct ing_str){"", 0}, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (v.len == 0) { /* old keys have empty values, new ones 16 bytes */
			store_iter_close(it);
			return ing_error_set(
			    e, STORE_CORRUPT(s, "queue entry without a queued job"),
			    "store %s: a queue entry names no queued job", s->path);
		}
	}
	store_iter_close(it);
	if (rv != ING_ENOTFOUND)
		return ing_error_set(e, rv, "store %s: migration: reading queue: %s", s->path,
		                     ing_err_msg(rv));
	rv = store_count(t, STORE_QUEUE, &after);
	if (rv == 0 && after != queued)
		rv =
		    ing_error_set(e, STORE_CORRUPT(s, "queue entries do not match queued jobs"),
		                  "store %s: %" PRIu64 " queue entries but %" PRIu64 " queued jobs",
		                  s->path, queued, after);
	if (rv == 0)
		rv = count_jobs(t, e);
	if (rv == 0)
		ING_LOG_INFO("store migration step from=6 to=7 jobs=%" PRIu64 " queued=%" PRIu64
		             " path=%s",
		             jobs, queued, s->path);
	return rv;
}

/* A store without a schema version is fresh only when every table is empty. */
static int check_fresh(struct store_txn *t, struct ing_error *e)
{
	struct store *s = store_txn_store(t);
	for (unsigned i = 0; i < STORE_TABLE_COUNT; i++) {
		uint64_t n;
		int rv = store_count(t, (enum store_table)i, &n);
		if (rv != 0)
			return ing_error_set(e, rv, "store %s: counting %s: %s", s->path,
			                     store_table_name((enum store_table)i),
			                     ing_err_msg(rv));
		if (n != 0)
			return ing_error_set(e, STORE_CORRUPT(s, "store has data but no schema"),
			                     "store %s has data in table %s but no schema version",
			                     s->path, store_table_name((enum store_table)i));
	}
	return 0;
}

int store_schema_open(struct store *s, struct ing_error *e)
{
	struct store_txn *t = NULL;
	struct ing_str v;
	uint64_t version;
	int rv;

	rv = store_write_begin(s, &t);
	if (rv != 0) {
		ing_error_set(e, rv, "store %s: %s", s->path, ing_err_msg(rv));
		goto out;
	}
	rv = store_get(t, STORE_META, ing_str_c(STORE_META_SCHEMA), &v);
	if (rv == ING_ENOTFOUND) {
		rv = check_fresh(t, e);
		if (rv != 0)
			goto out;
		rv = store_meta_put_u64(t, STORE_META_SCHEMA, STORE_SCHEMA_VERSION);
		if (rv == 0)
			rv = store_commit(t);
		t = NULL;
		if (rv != 0)
			ing_error_set(e, rv, "store %s: stamping schema: %s", s->path,
			              ing_err_msg(rv));
		goto out;
	}
	if (rv != 0) {
		ing_error_set(e, rv, "store %s: reading schema: %s", s->path, ing_err_msg(rv));
		goto out;
	}
	if (v.len != 8 || store_get_be64(v.ptr) == 0) {
		rv = ing_error_set(e, STORE_CORRUPT(s, "bad schema version"),
		                   "store %s: schema version is not a positive u64", s->path);
		goto out;
	}
	version = store_get_be64(v.ptr);
	rv = store_schema_refuse_newer(s->path, version, e);
	if (rv != 0 || version == STORE_SCHEMA_VERSION)
		goto out;
	rv = store_open_missing_tables(t);
	if (rv != 0) {
		ing_error_set(e, rv, "store %s: creating tables: %s", s->path, ing_err_msg(rv));
		goto out;
	}
	for (uint64_t from = version; from < STORE_SCHEMA_VERSION; from++) {
		if (migrations[from] == NULL) {
			rv = ing_error_set(e, ING_EVERSION,
			                   "store %s has schema %" PRIu64
			                   ", older than any this ingot can migrate",
			                   s->path, version);
			goto out;
		}
		rv = migrations[from](t, e);
		if (rv != 0)
			goto out;
	}
	rv = store_meta_put_u64(t, STORE_META_SCHEMA, STORE_SCHEMA_VERSION);
	if (rv == 0)
		rv = store_commit(t);
	t = NULL;
	if (rv != 0) {
		ing_error_set(e, rv, "store %s: committing migration: %s", s->path,
		              ing_err_msg(rv));
		goto out;
	}
	ING_LOG_INFO("store migrated from=%" PRIu64 " to=%d path=%s", version, STORE_SCHEMA_VERSION,
	             s->path);
out:
	store_abort(t);
	return rv;
}
