/*
 * records.c - msgpack codec of the typed records of the replicated state
 * (layouts in records.h and docs/formats.md).
 *
 * Every record is one msgpack array whose first item is its layout version.
 * Encoders append to an mp_out and fail only with ING_ENOMEM (sticky in the
 * mp_out).  Decoders:
 *
 *  1. copy the input into the zone, so that every view handed out lives
 *     exactly as long as the zone (store values are LMDB memory that moves
 *     on the next write);
 *  2. parse it with mp_parse_exact (one object, no trailing bytes, every
 *     declared length bounded by the input);
 *  3. read it field by field with an mp_cursor: the version first (a
 *     mismatch is ING_EVERSION, whatever the rest looks like), then each
 *     field with its type and its bound from storage/limits.h.
 *
 * Failure modes: wrong type, missing or extra items, enum values out of
 * range -> ING_EMALFORMED; any limit exceeded -> ING_ETOOBIG; wrong version
 * -> ING_EVERSION; zone exhausted -> ING_ENOMEM.  The message in `e` names
 * the record and the field.  `*out` is written only on success; on failure
 * the zone may hold partial allocations, released with the zone.
 *
 * Decoders check encodings and bounds, not meaning (whether a job's state
 * fits its attempt, say): the state machine wrote the record and owns its
 * invariants.
 */
#include "storage/records.h"

#include <string.h>

#include "storage/artifact.h"

/* An artifact is at most ING_SOURCE_MAX_BYTES, so its manifest lists at
 * most this many chunk hashes. */
#define MAX_CHUNKS ((ING_SOURCE_MAX_BYTES + STORE_CHUNK_BYTES - 1) / STORE_CHUNK_BYTES)

/* ---- names ------------------------------------------------------------ */

static const char *const role_names[REC_ROLE_COUNT] = {"voter", "standby", "spare"};

static const char *const job_state_names[REC_JOB_STATE_COUNT] = {
    "queued", "assigned", "running", "succeeded", "failed", "cancelled"};

static const char *const event_kind_names[REC_EV_COUNT] = {"submitted",
                                                           "assigned",
                                                           "stage_started",
                                                           "stage_finished",
                                                           "succeeded",
                                                           "failed",
                                                           "cancel_requested",
                                                           "cancelled",
                                                           "requeued",
                                                           "retried",
                                                           "cluster_created",
                                                           "member_added",
                                                           "member_role_changed",
                                                           "member_removed",
                                                           "leader_changed",
                                                           "voter_replaced",
                                                           "target_put",
                                                           "target_deleted",
                                                           "token_created",
                                                           "token_revoked",
                                                           "node_drained",
                                                           "node_undrained",
                                                           "node_forgotten",
                                                           "setting_changed"};

const char *rec_role_name(uint8_t role)
{
	return role < REC_ROLE_COUNT ? role_names[role] : "unknown";
}

const char *rec_job_state_name(uint8_t state)
{
	return state < REC_JOB_STATE_COUNT ? job_state_names[state] : "unknown";
}

int rec_job_state_parse(struct ing_str name, uint8_t *out)
{
	for (uint8_t i = 0; i < REC_JOB_STATE_COUNT; i++) {
		if (ing_str_eq_c(name, job_state_names[i])) {
			*out = i;
			return 0;
		}
	}
	return ING_EINVAL;
}

const char *rec_event_kind_name(uint8_t kind)
{
	return kind < REC_EV_COUNT ? event_kind_names[kind] : "unknown";
}

/* ---- encoding helpers ------------------------------------------------- */

void rec_pack_kv_list(msgpack_packer *pk, uint32_t n, const struct rec_kv *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(pk, 2);
		mp_pack_str(pk, v[i].key);
		mp_pack_str(pk, v[i].value);
	}
}

/* [[path, sha256, size]...], or with `sources` [[path, sha256, size,
 * stored_inline]...]. */
static void pack_files(msgpack_packer *pk, uint32_t n, const struct rec_file *v, bool sources)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(pk, sources ? 4 : 3);
		mp_pack_str(pk, v[i].path);
		mp_pack_bin(pk, v[i].sha256, 32);
		msgpack_pack_uint64(pk, v[i].size);
		if (sources)
			mp_pack_bool(pk, v[i].stored_inline);
	}
}

/* ---- decoding helpers ------------------------------------------------- */

/* Copies buf into the zone and parses exactly one object from the copy. */
static int parse_copy(struct ing_str buf, msgpack_zone *z, const char *what, msgpack_object *obj,
                      struct ing_error *e)
{
	const char *p = buf.ptr;
	if (buf.len > 0) {
		char *copy = msgpack_zone_malloc(z, buf.len);
		if (copy == NULL)
			return ing_error_set(e, ING_ENOMEM, "%s: out of memory", what);
		memcpy(copy, buf.ptr, buf.len);
		p = copy;
	}
	return mp_parse_exact(p, buf.len, false, z, obj, what, e);
}

/* Opens the record's array and checks its version before anything else. */
static int open_record(struct mp_cursor *c, const msgpack_object *o, const char *what,
                       uint64_t version, struct ing_error *e)
{
	uint64_t v;
	int rv = mp_cursor_open(c, o, 1, UINT32_MAX, what, e);
	if (rv == 0)
		rv = mp_next_u64(c, "version", UINT64_MAX, &v);
	if (rv == 0 && v != version)
		rv = ing_error_set(e, ING_EVERSION,
		                   "%s: version %llu is not supported (expected %llu)", what,
		                   (unsigned long long)v, (unsigned long long)version);
	return rv;
}

/* Same for a record with several layouts: versions min..max, *version set. */
static int open_record_versions(struct mp_cursor *c, const msgpack_object *o, const char *what,
                                uint64_t min, uint64_t max, uint64_t *version, struct ing_error *e)
{
	int rv = mp_cursor_open(c, o, 1, UINT32_MAX, what, e);
	if (rv == 0)
		rv = mp_next_u64(c, "version", UINT64_MAX, version);
	if (rv == 0 && (*version < min || *version > max))
		rv = ing_error_set(e, ING_EVERSION,
		                   "%s: version %llu is not supported (expected %llu..%llu)", what,
		                   (unsigned long long)*version, (unsigned long long)min,
		                   (unsigned long long)max);
	return rv;
}

/* An enum stored as an unsigned integer below `count`. */
static int next_enum(struct mp_cursor *c, const char *field, unsigned count, uint8_t *out)
{
	uint64_t v;
	int rv = mp_next_u64(c, field, UINT64_MAX, &v);
	if (rv != 0)
		return rv;
	if (v >= count)
		return ing_error_set(c->err, ING_EMALFORMED, "%s: field '%s': unknown value %llu",
		                     c->what, field, (unsigned long long)v);
	*out = (uint8_t)v;
	return 0;
}

static int next_i64_range(struct mp_cursor *c, const char *field, int64_t min, int64_t max,
                          int64_t *out)
{
	int64_t v;
	int rv = mp_next_i64(c, field, &v);
	if (rv != 0)
		return rv;
	if (v < min || v > max)
		return ing_error_set(c->err, ING_EMALFORMED, "%s: field '%s': %lld is out of range",
		                     c->what, field, (long long)v);
	*out = v;
	return 0;
}

int rec_next_kv_list(struct mp_cursor *c, const char *field, uint32_t max_n, uint32_t key_max,
                     uint32_t value_max, msgpack_zone *z, uint32_t *n, struct rec_kv **out)
{
	struct mp_cursor sub, kv;
	void *arr = NULL;
	int rv = mp_next_array(c, field, max_n, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct rec_kv), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++) {
		struct rec_kv *p = &((struct rec_kv *)arr)[i];
		rv = mp_next_tuple(&sub, field, 2, &kv);
		if (rv == 0)
			rv = mp_next_str(&kv, field, key_max, &p->key);
		if (rv == 0)
			rv = mp_next_str(&kv, field, value_max, &p->value);
	}
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

/* [[path, sha256, size]...], or with `sources` [[path, sha256, size,
 * stored_inline]...], where a source kept inline is at most
 * ING_INLINE_SOURCE_MAX bytes. */
static int next_files(struct mp_cursor *c, const char *field, uint32_t max_n, bool sources,
                      msgpack_zone *z, uint32_t *n, struct rec_file **out)
{
	struct mp_cursor sub, f;
	struct ing_str sha;
	void *arr = NULL;
	int rv = mp_next_array(c, field, max_n, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct rec_file), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++) {
		struct rec_file *p = &((struct rec_file *)arr)[i];
		rv = mp_next_tuple(&sub, field, sources ? 4 : 3, &f);
		if (rv == 0)
			rv = mp_next_str(&f, "path", ING_PATH_MAX, &p->path);
		if (rv == 0)
			rv = mp_next_bin_exact(&f, "sha256", ING_SHA256_BYTES, &sha);
		if (rv == 0) {
			memcpy(p->sha256, sha.ptr, ING_SHA256_BYTES);
			rv = mp_next_u64(&f, "size", UINT64_MAX, &p->size);
		}
		p->stored_inline = false;
		if (rv == 0 && sources)
			rv = mp_next_bool(&f, "stored_inline", &p->stored_inline);
		if (rv == 0 && p->stored_inline && p->size > ING_INLINE_SOURCE_MAX)
			rv = ing_error_set(c->err, ING_EMALFORMED,
			                   "%s: field '%s': a source of %llu bytes kept inline (at "
			                   "most %u)",
			                   c->what, field, (unsigned long long)p->size,
			                   ING_INLINE_SOURCE_MAX);
	}
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

/* ---- member ----------------------------------------------------------- */

int rec_member_encode(const struct rec_member *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 6);
	msgpack_pack_uint64(pk, REC_VERSION);
	msgpack_pack_uint64(pk, r->id);
	mp_pack_str(pk, r->raft_address);
	mp_pack_str(pk, r->api_address);
	msgpack_pack_uint64(pk, r->role);
	msgpack_pack_uint64(pk, r->added_at_ms);
	return mp_out_failed(o);
}

int rec_member_decode(struct ing_str buf, msgpack_zone *z, struct rec_member *out,
                      struct ing_error *e)
{
	static const char what[] = "member record";
	struct rec_member r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_VERSION, e);
	if (rv == 0)
		rv = mp_next_u64(&c, "id", UINT64_MAX, &r.id);
	if (rv == 0)
		rv = mp_next_str(&c, "raft_address", ING_ADDRESS_MAX, &r.raft_address);
	if (rv == 0)
		rv = mp_next_str(&c, "api_address", ING_ADDRESS_MAX, &r.api_address);
	if (rv == 0)
		rv = next_enum(&c, "role", REC_ROLE_COUNT, &r.role);
	if (rv == 0)
		rv = mp_next_u64(&c, "added_at_ms", UINT64_MAX, &r.added_at_ms);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0)
		*out = r;
	return rv;
}

/* ---- node ------------------------------------------------------------- */

void rec_pack_gpus(msgpack_packer *pk, uint32_t n, const struct rec_gpu *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(pk, 3);
		msgpack_pack_uint64(pk, v[i].index);
		mp_pack_str(pk, v[i].uuid);
		msgpack_pack_uint64(pk, v[i].memory_bytes);
	}
}

int rec_next_gpus(struct mp_cursor *c, msgpack_zone *z, uint32_t *n, struct rec_gpu **out)
{
	struct mp_cursor sub, g;
	void *arr = NULL;
	int rv = mp_next_array(c, "gpus", ING_MAX_GPUS, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct rec_gpu), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++) {
		struct rec_gpu *p = &((struct rec_gpu *)arr)[i];
		rv = mp_next_tuple(&sub, "gpus", 3, &g);
		if (rv == 0)
			rv = mp_next_u32(&g, "gpu index", ING_GPU_INDEX_MAX, &p->index);
		if (rv == 0)
			rv = mp_next_str(&g, "gpu uuid", ING_GPU_UUID_MAX, &p->uuid);
		if (rv == 0)
			rv = mp_next_u64(&g, "gpu memory_bytes", UINT64_MAX, &p->memory_bytes);
	}
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

void rec_pack_gpu_indexes(msgpack_packer *pk, uint32_t n, const uint32_t *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_uint64(pk, v[i]);
}

int rec_next_gpu_indexes(struct mp_cursor *c, msgpack_zone *z, uint32_t *n, uint32_t **out)
{
	struct mp_cursor sub;
	void *arr = NULL;
	int rv = mp_next_array(c, "gpus", ING_MAX_GPUS, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(uint32_t), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++)
		rv = mp_next_u32(&sub, "gpu index", ING_GPU_INDEX_MAX, &((uint32_t *)arr)[i]);
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

/* [[index, job]...] */
static void pack_gpu_holds(msgpack_packer *pk, uint32_t n, const struct rec_gpu_hold *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(pk, 2);
		msgpack_pack_uint64(pk, v[i].index);
		msgpack_pack_uint64(pk, v[i].job);
	}
}

static int next_gpu_holds(struct mp_cursor *c, msgpack_zone *z, uint32_t *n,
                          struct rec_gpu_hold **out)
{
	struct mp_cursor sub, h;
	void *arr = NULL;
	int rv = mp_next_array(c, "gpu_holds", ING_MAX_GPUS, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct rec_gpu_hold), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++) {
		struct rec_gpu_hold *p = &((struct rec_gpu_hold *)arr)[i];
		rv = mp_next_tuple(&sub, "gpu_holds", 2, &h);
		if (rv == 0)
			rv = mp_next_u32(&h, "gpu index", ING_GPU_INDEX_MAX, &p->index);
		if (rv == 0)
			rv = mp_next_u64(&h, "holding job", UINT64_MAX, &p->job);
	}
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

int rec_node_encode(const struct rec_node *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 13);
	msgpack_pack_uint64(pk, REC_NODE_VERSION);
	msgpack_pack_uint64(pk, r->id);
	mp_pack_str_list(pk, r->ncaps, r->caps);
	rec_pack_kv_list(pk, r->nlabels, r->labels);
	msgpack_pack_uint64(pk, r->slots);
	msgpack_pack_uint64(pk, r->used_slots);
	mp_pack_bool(pk, r->draining);
	msgpack_pack_uint64(pk, r->drain_deadline_ms);
	mp_pack_bool(pk, r->down);
	msgpack_pack_uint64(pk, r->registered_at_ms);
	msgpack_pack_uint64(pk, r->updated_at_ms);
	rec_pack_gpus(pk, r->ngpus, r->gpus);
	pack_gpu_holds(pk, r->nheld, r->held);
	return mp_out_failed(o);
}

int rec_node_decode(struct ing_str buf, msgpack_zone *z, struct rec_node *out, struct ing_error *e)
{
	static const char what[] = "node record";
	struct rec_node r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_NODE_VERSION, e);
	if (rv == 0)
		rv = mp_next_u64(&c, "id", UINT64_MAX, &r.id);
	if (rv == 0)
		rv = mp_next_str_list(&c, "caps", ING_MAX_CAPS, ING_NAME_MAX, z, &r.ncaps, &r.caps);
	if (rv == 0)
		rv = rec_next_kv_list(&c, "labels", ING_MAX_LABELS, ING_NAME_MAX,
		                      ING_LABEL_VALUE_MAX, z, &r.nlabels, &r.labels);
	if (rv == 0)
		rv = mp_next_u32(&c, "slots", ING_MAX_SLOTS, &r.slots);
	if (rv == 0)
		rv = mp_next_u32(&c, "used_slots", UINT32_MAX, &r.used_slots);
	if (rv == 0)
		rv = mp_next_bool(&c, "draining", &r.draining);
	if (rv == 0)
		rv = mp_next_u64(&c, "drain_deadline_ms", UINT64_MAX, &r.drain_deadline_ms);
	if (rv == 0)
		rv = mp_next_bool(&c, "down", &r.down);
	if (rv == 0)
		rv = mp_next_u64(&c, "registered_at_ms", UINT64_MAX, &r.registered_at_ms);
	if (rv == 0)
		rv = mp_next_u64(&c, "updated_at_ms", UINT64_MAX, &r.updated_at_ms);
	if (rv == 0)
		rv = rec_next_gpus(&c, z, &r.ngpus, &r.gpus);
	if (rv == 0)
		rv = next_gpu_holds(&c, z, &r.nheld, &r.held);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0)
		*out = r;
	return rv;
}

/* ---- target ----------------------------------------------------------- */

void rec_pack_stage_defs(msgpack_packer *pk, uint32_t n, const struct rec_stage_def *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct rec_stage_def *s = &v[i];
		msgpack_pack_array(pk, 8);
		mp_pack_str(pk, s->name);
		mp_pack_str_list(pk, s->nargv, s->argv);
		msgpack_pack_uint64(pk, s->timeout_ms);
		rec_pack_kv_list(pk, s->nenv, s->env);
		mp_pack_str_list(pk, s->noutputs, s->outputs);
		msgpack_pack_array(pk, 5);
		msgpack_pack_uint64(pk, s->limits.cpu_seconds);
		msgpack_pack_uint64(pk, s->limits.memory_bytes);
		msgpack_pack_uint64(pk, s->limits.open_files);
		msgpack_pack_uint64(pk, s->limits.output_bytes);
		msgpack_pack_uint64(pk, s->limits.processes);
		mp_pack_str(pk, s->stdout_path);
		msgpack_pack_uint64(pk, s->gpus);
	}
}

uint32_t rec_stage_gpus(const struct rec_target *t, uint32_t i)
{
	return i < t->nstages && t->stages[i].gpus > t->gpus ? t->stages[i].gpus : t->gpus;
}

uint32_t rec_target_gpus(const struct rec_target *t)
{
	uint32_t n = t->gpus;
	for (uint32_t i = 0; i < t->nstages; i++)
		if (rec_stage_gpus(t, i) > n)
			n = rec_stage_gpus(t, i);
	return n;
}

int rec_target_encode(const struct rec_target *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 13);
	msgpack_pack_uint64(pk, REC_TARGET_VERSION);
	mp_pack_str(pk, r->name);
	mp_pack_str(pk, r->description);
	mp_pack_str_list(pk, r->ncaps, r->caps);
	rec_pack_kv_list(pk, r->nlabels, r->labels);
	msgpack_pack_uint64(pk, r->gpus);
	mp_pack_bool(pk, r->network);
	msgpack_pack_uint64(pk, r->disk_bytes);
	rec_pack_stage_defs(pk, r->nstages, r->stages);
	msgpack_pack_uint64(pk, r->revision);
	msgpack_pack_uint64(pk, r->active_jobs);
	msgpack_pack_uint64(pk, r->created_at_ms);
	msgpack_pack_uint64(pk, r->updated_at_ms);
	return mp_out_failed(o);
}

/* limits: 4 items before REC_STAGES_V4 (no processes: 0), 5 since. */
static int next_limits(struct mp_cursor *c, enum rec_stage_layout layout,
                       struct rec_stage_limits *l)
{
	struct mp_cursor lc;
	int rv = mp_next_tuple(c, "limits", layout >= REC_STAGES_V4 ? 5 : 4, &lc);
	if (rv == 0)
		rv = mp_next_u64(&lc, "cpu_seconds", UINT64_MAX, &l->cpu_seconds);
	if (rv == 0)
		rv = mp_next_u64(&lc, "memory_bytes", UINT64_MAX, &l->memory_bytes);
	if (rv == 0)
		rv = mp_next_u64(&lc, "open_files", UINT64_MAX, &l->open_files);
	if (rv == 0)
		rv = mp_next_u64(&lc, "output_bytes", UINT64_MAX, &l->output_bytes);
	if (rv == 0 && layout >= REC_STAGES_V4)
		rv = mp_next_u64(&lc, "processes", UINT64_MAX, &l->processes);
	return rv;
}

int rec_next_stage_defs(struct mp_cursor *c, enum rec_stage_layout layout, msgpack_zone *z,
                        uint32_t *n, struct rec_stage_def **out)
{
	bool legacy = layout == REC_STAGES_V1;
	unsigned items = legacy ? 5 : layout == REC_STAGES_V2 ? 7 : 8;
	struct mp_cursor sub, sc;
	void *arr = NULL;
	int rv = mp_next_array(c, "stages", ING_MAX_STAGES, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct rec_stage_def), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++) {
		struct rec_stage_def *s = &((struct rec_stage_def *)arr)[i];
		memset(s, 0, sizeof(*s));
		s->stdout_path = ing_str_c("");
		rv = mp_next_tuple(&sub, "stages", items, &sc);
		if (rv == 0)
			rv = mp_next_str(&sc, "stage name", ING_NAME_MAX, &s->name);
		if (rv == 0)
			rv = mp_next_str_list(&sc, "argv", ING_MAX_ARGV, ING_ARG_MAX, z, &s->nargv,
			                      &s->argv);
		if (rv == 0)
			rv = mp_next_u64(&sc, "timeout_ms", UINT64_MAX, &s->timeout_ms);
		if (rv == 0)
			rv = rec_next_kv_list(&sc, "env", ING_MAX_ENV, ING_NAME_MAX, ING_ARG_MAX, z,
			                      &s->nenv, &s->env);
		if (rv == 0)
			rv = mp_next_str_list(&sc, "outputs", ING_MAX_OUTPUTS, ING_PATH_MAX, z,
			                      &s->noutputs, &s->outputs);
		if (rv == 0 && !legacy)
			rv = next_limits(&sc, layout, &s->limits);
		if (rv == 0 && !legacy)
			rv = mp_next_str(&sc, "stdout", ING_PATH_MAX, &s->stdout_path);
		if (rv == 0 && layout >= REC_STAGES_V3)
			rv = mp_next_u32(&sc, "stage gpus", ING_MAX_GPUS, &s->gpus);
	}
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

int rec_target_decode(struct ing_str buf, msgpack_zone *z, struct rec_target *out,
                      struct ing_error *e)
{
	static const char what[] = "target record";
	struct rec_target r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_TARGET_VERSION, e);
	if (rv == 0)
		rv = mp_next_str(&c, "name", ING_NAME_MAX, &r.name);
	if (rv == 0)
		rv = mp_next_str(&c, "description", ING_MESSAGE_MAX, &r.description);
	if (rv == 0)
		rv = mp_next_str_list(&c, "caps", ING_MAX_CAPS, ING_NAME_MAX, z, &r.ncaps, &r.caps);
	if (rv == 0)
		rv = rec_next_kv_list(&c, "labels", ING_MAX_LABELS, ING_NAME_MAX,
		                      ING_LABEL_VALUE_MAX, z, &r.nlabels, &r.labels);
	if (rv == 0)
		rv = mp_next_u32(&c, "gpus", ING_MAX_GPUS, &r.gpus);
	if (rv == 0)
		rv = mp_next_bool(&c, "network", &r.network);
	if (rv == 0)
		rv = mp_next_u64(&c, "disk_bytes", UINT64_MAX, &r.disk_bytes);
	if (rv == 0)
		rv = rec_next_stage_defs(&c, REC_STAGES_V4, z, &r.nstages, &r.stages);
	if (rv == 0)
		rv = mp_next_u64(&c, "revision", UINT64_MAX, &r.revision);
	if (rv == 0)
		rv = mp_next_u32(&c, "active_jobs", UINT32_MAX, &r.active_jobs);
	if (rv == 0)
		rv = mp_next_u64(&c, "created_at_ms", UINT64_MAX, &r.created_at_ms);
	if (rv == 0)
		rv = mp_next_u64(&c, "updated_at_ms", UINT64_MAX, &r.updated_at_ms);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0)
		*out = r;
	return rv;
}

/* ---- job -------------------------------------------------------------- */

int rec_job_encode(const struct rec_job *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 25);
	msgpack_pack_uint64(pk, REC_JOB_VERSION);
	msgpack_pack_uint64(pk, r->id);
	mp_pack_str(pk, r->tenant);
	mp_pack_str(pk, r->target);
	msgpack_pack_uint64(pk, r->target_revision);
	mp_pack_str(pk, r->request_id);
	msgpack_pack_uint64(pk, r->state);
	msgpack_pack_uint64(pk, r->priority);
	msgpack_pack_uint64(pk, r->attempt);
	msgpack_pack_uint64(pk, r->attempt_base);
	msgpack_pack_uint64(pk, r->max_attempts);
	msgpack_pack_uint64(pk, r->node_id);
	msgpack_pack_uint64(pk, r->created_at_ms);
	msgpack_pack_uint64(pk, r->updated_at_ms);
	msgpack_pack_uint64(pk, r->deadline_at_ms);
	msgpack_pack_uint64(pk, r->lease_until_ms);
	msgpack_pack_uint64(pk, r->finished_at_ms);
	mp_pack_bool(pk, r->cancel_requested);
	pack_files(pk, r->nsources, r->sources, true);
	rec_pack_kv_list(pk, r->nparams, r->params);
	msgpack_pack_uint64(pk, r->stage_count);
	msgpack_pack_array(pk, r->nstages);
	for (uint32_t i = 0; i < r->nstages; i++) {
		const struct rec_stage_result *s = &r->stages[i];
		msgpack_pack_array(pk, 6);
		msgpack_pack_uint64(pk, s->state);
		msgpack_pack_int64(pk, s->exit_code);
		msgpack_pack_uint64(pk, s->started_at_ms);
		msgpack_pack_uint64(pk, s->duration_ms);
		if (s->has_log)
			mp_pack_bin(pk, s->log_sha256, 32);
		else
			msgpack_pack_nil(pk);
		pack_files(pk, s->noutputs, s->outputs, false);
	}
	msgpack_pack_uint64(pk, r->nevents);
	mp_pack_str(pk, r->error);
	rec_pack_gpu_indexes(pk, r->ngpus, r->gpus);
	return mp_out_failed(o);
}

/* A stage's log hash: nil when the stage has no log. */
static int next_log(struct mp_cursor *c, bool *has_log, uint8_t sha[32])
{
	struct ing_str v;
	if (c->i < c->n && c->items[c->i].type == MSGPACK_OBJECT_NIL) {
		c->i++;
		*has_log = false;
		memset(sha, 0, 32);
		return 0;
	}
	int rv = mp_next_bin_exact(c, "log_sha256", ING_SHA256_BYTES, &v);
	if (rv != 0)
		return rv;
	*has_log = true;
	memcpy(sha, v.ptr, ING_SHA256_BYTES);
	return 0;
}

static int next_stage_results(struct mp_cursor *c, msgpack_zone *z, uint32_t *n,
                              struct rec_stage_result **out)
{
	struct mp_cursor sub, sc;
	void *arr = NULL;
	int rv = mp_next_array(c, "stages", ING_MAX_STAGES, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct rec_stage_result), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++) {
		struct rec_stage_result *s = &((struct rec_stage_result *)arr)[i];
		rv = mp_next_tuple(&sub, "stages", 6, &sc);
		if (rv == 0)
			rv = next_enum(&sc, "stage state", REC_STAGE_DONE + 1, &s->state);
		if (rv == 0)
			rv = mp_next_i64(&sc, "exit_code", &s->exit_code);
		if (rv == 0)
			rv = mp_next_u64(&sc, "started_at_ms", UINT64_MAX, &s->started_at_ms);
		if (rv == 0)
			rv = mp_next_u64(&sc, "duration_ms", UINT64_MAX, &s->duration_ms);
		if (rv == 0)
			rv = next_log(&sc, &s->has_log, s->log_sha256);
		if (rv == 0)
			rv = next_files(&sc, "outputs", ING_MAX_OUTPUTS, false, z, &s->noutputs,
			                &s->outputs);
	}
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

/* A reader of the msgpack forms rec_job_encode writes for the head's
 * items: unsigned integers and strings.  Each takes the next item from *p
 * (ending at end) or returns false. */
static bool head_be(const uint8_t **p, const uint8_t *end, unsigned n, uint64_t *v)
{
	if ((size_t)(end - *p) < n)
		return false;
	*v = 0;
	for (unsigned i = 0; i < n; i++)
		*v = (*v << 8) | (*p)[i];
	*p += n;
	return true;
}

static bool head_uint(const uint8_t **p, const uint8_t *end, uint64_t max, uint64_t *v)
{
	if (*p >= end)
		return false;
	uint8_t b = *(*p)++;
	bool ok;
	if (b <= 0x7f) {
		*v = b;
		ok = true;
	} else {
		ok = b >= 0xcc && b <= 0xcf && head_be(p, end, 1u << (b - 0xcc), v);
	}
	return ok && *v <= max;
}

static bool head_str(const uint8_t **p, const uint8_t *end, uint32_t max, struct ing_str *s)
{
	uint64_t n = 0;
	if (*p >= end)
		return false;
	uint8_t b = *(*p)++;
	bool ok;
	if ((b & 0xe0) == 0xa0) {
		n = b & 0x1f;
		ok = true;
	} else {
		ok = b >= 0xd9 && b <= 0xdb && head_be(p, end, 1u << (b - 0xd9), &n);
	}
	if (!ok || n > max || (uint64_t)(end - *p) < n)
		return false;
	*s = (struct ing_str){(const char *)*p, (uint32_t)n};
	*p += n;
	return true;
}

int rec_job_head_decode(struct ing_str buf, struct rec_job_head *out)
{
	const uint8_t *p = (const uint8_t *)buf.ptr, *end = p + buf.len;
	struct rec_job_head h;
	struct ing_str request_id;
	uint64_t version, v[10];
	/* [version, id, tenant, target, target_revision, request_id, state,
	 *  priority, attempt, attempt_base, max_attempts, node_id,
	 *  created_at_ms, updated_at_ms, ...]: 25 items, an array 16 */
	if (buf.len < 3 || p[0] != 0xdc || p[1] != 0 || p[2] != 25) /* array 16 */
		return ING_ECORRUPT;
	p += 3;
	bool ok =
	    head_uint(&p, end, UINT64_MAX, &version) && version == REC_JOB_VERSION &&
	    head_uint(&p, end, UINT64_MAX, &v[0]) && head_str(&p, end, ING_NAME_MAX, &h.tenant) &&
	    head_str(&p, end, ING_NAME_MAX, &h.target) && head_uint(&p, end, UINT64_MAX, &v[1]) &&
	    head_str(&p, end, ING_REQUEST_ID_MAX, &request_id) &&
	    head_uint(&p, end, REC_JOB_STATE_COUNT - 1, &v[2]) &&
	    head_uint(&p, end, ING_MAX_PRIORITY, &v[3]) && head_uint(&p, end, UINT32_MAX, &v[4]) &&
	    head_uint(&p, end, UINT32_MAX, &v[5]) && head_uint(&p, end, UINT32_MAX, &v[6]) &&
	    head_uint(&p, end, UINT64_MAX, &v[7]) && head_uint(&p, end, UINT64_MAX, &v[8]) &&
	    head_uint(&p, end, UINT64_MAX, &v[9]);
	if (!ok)
		return ING_ECORRUPT;
	h.id = v[0];
	h.state = (uint8_t)v[2];
	h.priority = (uint32_t)v[3];
	h.attempt = (uint32_t)v[4];
	h.attempt_base = (uint32_t)v[5];
	h.updated_at_ms = v[9];
	*out = h;
	return 0;
}

int rec_job_decode(struct ing_str buf, msgpack_zone *z, struct rec_job *out, struct ing_error *e)
{
	static const char what[] = "job record";
	struct rec_job r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_JOB_VERSION, e);
	if (rv == 0)
		rv = mp_next_u64(&c, "id", UINT64_MAX, &r.id);
	if (rv == 0)
		rv = mp_next_str(&c, "tenant", ING_NAME_MAX, &r.tenant);
	if (rv == 0)
		rv = mp_next_str(&c, "target", ING_NAME_MAX, &r.target);
	if (rv == 0)
		rv = mp_next_u64(&c, "target_revision", UINT64_MAX, &r.target_revision);
	if (rv == 0)
		rv = mp_next_str(&c, "request_id", ING_REQUEST_ID_MAX, &r.request_id);
	if (rv == 0)
		rv = next_enum(&c, "state", REC_JOB_STATE_COUNT, &r.state);
	if (rv == 0)
		rv = mp_next_u32(&c, "priority", ING_MAX_PRIORITY, &r.priority);
	if (rv == 0)
		rv = mp_next_u32(&c, "attempt", UINT32_MAX, &r.attempt);
	if (rv == 0)
		rv = mp_next_u32(&c, "attempt_base", UINT32_MAX, &r.attempt_base);
	if (rv == 0)
		rv = mp_next_u32(&c, "max_attempts", UINT32_MAX, &r.max_attempts);
	if (rv == 0)
		rv = mp_next_u64(&c, "node_id", UINT64_MAX, &r.node_id);
	if (rv == 0)
		rv = mp_next_u64(&c, "created_at_ms", UINT64_MAX, &r.created_at_ms);
	if (rv == 0)
		rv = mp_next_u64(&c, "updated_at_ms", UINT64_MAX, &r.updated_at_ms);
	if (rv == 0)
		rv = mp_next_u64(&c, "deadline_at_ms", UINT64_MAX, &r.deadline_at_ms);
	if (rv == 0)
		rv = mp_next_u64(&c, "lease_until_ms", UINT64_MAX, &r.lease_until_ms);
	if (rv == 0)
		rv = mp_next_u64(&c, "finished_at_ms", UINT64_MAX, &r.finished_at_ms);
	if (rv == 0)
		rv = mp_next_bool(&c, "cancel_requested", &r.cancel_requested);
	if (rv == 0)
		rv = next_files(&c, "sources", ING_MAX_SOURCES, true, z, &r.nsources, &r.sources);
	if (rv == 0)
		rv = rec_next_kv_list(&c, "params", ING_MAX_ENV, ING_NAME_MAX, ING_ARG_MAX, z,
		                      &r.nparams, &r.params);
	if (rv == 0)
		rv = mp_next_u32(&c, "stage_count", ING_MAX_STAGES, &r.stage_count);
	if (rv == 0)
		rv = next_stage_results(&c, z, &r.nstages, &r.stages);
	if (rv == 0)
		rv = mp_next_u32(&c, "nevents", UINT32_MAX, &r.nevents);
	if (rv == 0)
		rv = mp_next_str(&c, "error", ING_MESSAGE_MAX, &r.error);
	if (rv == 0)
		rv = rec_next_gpu_indexes(&c, z, &r.ngpus, &r.gpus);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0)
		*out = r;
	return rv;
}

/* ---- event ------------------------------------------------------------ */

int rec_event_encode(const struct rec_event *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	bool v2 = r->principal.len > 0;
	msgpack_pack_array(pk, v2 ? 10 : 9);
	msgpack_pack_uint64(pk, v2 ? REC_EVENT_VERSION : REC_VERSION);
	msgpack_pack_uint64(pk, r->time_ms);
	msgpack_pack_uint64(pk, r->kind);
	msgpack_pack_uint64(pk, r->state);
	msgpack_pack_uint64(pk, r->attempt);
	msgpack_pack_uint64(pk, r->node_id);
	msgpack_pack_int64(pk, r->stage);
	msgpack_pack_int64(pk, r->exit_code);
	mp_pack_str(pk, r->message);
	if (v2)
		mp_pack_str(pk, r->principal);
	return mp_out_failed(o);
}

int rec_event_decode(struct ing_str buf, msgpack_zone *z, struct rec_event *out,
                     struct ing_error *e)
{
	static const char what[] = "event record";
	struct rec_event r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	int64_t stage = 0;
	uint64_t version = 0;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record_versions(&c, &obj, what, REC_VERSION, REC_EVENT_VERSION, &version,
		                          e);
	if (rv == 0)
		rv = mp_next_u64(&c, "time_ms", UINT64_MAX, &r.time_ms);
	if (rv == 0)
		rv = next_enum(&c, "kind", REC_EV_COUNT, &r.kind);
	if (rv == 0)
		rv = next_enum(&c, "state", REC_JOB_STATE_COUNT, &r.state);
	if (rv == 0)
		rv = mp_next_u32(&c, "attempt", UINT32_MAX, &r.attempt);
	if (rv == 0)
		rv = mp_next_u64(&c, "node_id", UINT64_MAX, &r.node_id);
	if (rv == 0)
		rv = next_i64_range(&c, "stage", -1, INT32_MAX, &stage);
	if (rv == 0)
		rv = mp_next_i64(&c, "exit_code", &r.exit_code);
	if (rv == 0)
		rv = mp_next_str(&c, "message", ING_MESSAGE_MAX, &r.message);
	r.principal = (struct ing_str){"", 0};
	if (rv == 0 && version >= 2) {
		rv = mp_next_str(&c, "principal", ING_PRINCIPAL_MAX, &r.principal);
		if (rv == 0 && r.principal.len == 0)
			rv = ing_error_set(e, ING_EMALFORMED,
			                   "%s: field 'principal': empty in a version 2 record",
			                   what);
	}
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0) {
		r.stage = (int32_t)stage;
		*out = r;
	}
	return rv;
}

/* ---- artifact --------------------------------------------------------- */

int rec_artifact_encode(const struct rec_artifact *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint64(pk, REC_VERSION);
	msgpack_pack_uint64(pk, r->size);
	msgpack_pack_uint64(pk, r->refs);
	mp_pack_bin(pk, r->chunk_hashes, (size_t)r->nchunks * ING_SHA256_BYTES);
	return mp_out_failed(o);
}

int rec_artifact_decode(struct ing_str buf, msgpack_zone *z, struct rec_artifact *out,
                        struct ing_error *e)
{
	static const char what[] = "artifact record";
	struct rec_artifact r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	struct ing_str hashes;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_VERSION, e);
	if (rv == 0)
		rv = mp_next_u64(&c, "size", ING_SOURCE_MAX_BYTES, &r.size);
	if (rv == 0)
		rv = mp_next_u64(&c, "refs", UINT64_MAX, &r.refs);
	if (rv == 0)
		rv = mp_next_bin(&c, "chunk_hashes", MAX_CHUNKS * ING_SHA256_BYTES, &hashes);
	if (rv == 0 && hashes.len % ING_SHA256_BYTES != 0)
		rv = ing_error_set(e, ING_EMALFORMED,
		                   "%s: field 'chunk_hashes': %u bytes is not a multiple of %d",
		                   what, hashes.len, ING_SHA256_BYTES);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0) {
		r.nchunks = hashes.len / ING_SHA256_BYTES;
		r.chunk_hashes = r.nchunks > 0 ? (const uint8_t *)hashes.ptr : NULL;
		*out = r;
	}
	return rv;
}

/* ---- chunk ------------------------------------------------------------ */

int rec_chunk_encode(const struct rec_chunk *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint64(pk, REC_VERSION);
	msgpack_pack_uint64(pk, r->refs);
	mp_pack_bin(pk, r->data.ptr, r->data.len);
	return mp_out_failed(o);
}

int rec_chunk_decode(struct ing_str buf, msgpack_zone *z, struct rec_chunk *out,
                     struct ing_error *e)
{
	static const char what[] = "chunk record";
	struct rec_chunk r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_VERSION, e);
	if (rv == 0)
		rv = mp_next_u64(&c, "refs", UINT64_MAX, &r.refs);
	if (rv == 0)
		rv = mp_next_bin(&c, "data", STORE_CHUNK_BYTES, &r.data);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0)
		*out = r;
	return rv;
}

/* ---- sources ---------------------------------------------------------- */

int rec_sources_encode(const struct rec_sources *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, REC_VERSION);
	msgpack_pack_array(pk, r->n);
	for (uint32_t i = 0; i < r->n; i++)
		mp_pack_bin(pk, r->data[i].ptr, r->data[i].len);
	return mp_out_failed(o);
}

int rec_sources_decode(struct ing_str buf, msgpack_zone *z, struct rec_sources *out,
                       struct ing_error *e)
{
	static const char what[] = "sources record";
	struct rec_sources r = {0};
	msgpack_object obj;
	struct mp_cursor c, sub;
	void *arr = NULL;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_VERSION, e);
	if (rv == 0)
		rv = mp_next_array(&c, "data", ING_MAX_SOURCES, &sub);
	if (rv == 0)
		rv = mp_zarray(&c, sub.n, sizeof(struct ing_str), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++)
		rv = mp_next_bin(&sub, "data", ING_INLINE_SOURCE_MAX, &((struct ing_str *)arr)[i]);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0) {
		r.n = sub.n;
		r.data = arr;
		*out = r;
	}
	return rv;
}

/* ---- dedupe ----------------------------------------------------------- */

int rec_dedupe_encode(const struct rec_dedupe *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 7);
	msgpack_pack_uint64(pk, REC_VERSION);
	msgpack_pack_uint64(pk, r->index);
	msgpack_pack_uint64(pk, r->cmd_type);
	msgpack_pack_int64(pk, r->code);
	mp_pack_str(pk, r->message);
	mp_pack_bin(pk, r->value.ptr, r->value.len);
	msgpack_pack_uint64(pk, r->time_ms);
	return mp_out_failed(o);
}

int rec_dedupe_decode(struct ing_str buf, msgpack_zone *z, struct rec_dedupe *out,
                      struct ing_error *e)
{
	static const char what[] = "dedupe record";
	struct rec_dedupe r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	int64_t code = 0;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record(&c, &obj, what, REC_VERSION, e);
	if (rv == 0)
		rv = mp_next_u64(&c, "index", UINT64_MAX, &r.index);
	if (rv == 0)
		rv = mp_next_u32(&c, "cmd_type", UINT32_MAX, &r.cmd_type);
	if (rv == 0)
		rv = next_i64_range(&c, "code", INT32_MIN, INT32_MAX, &code);
	if (rv == 0)
		rv = mp_next_str(&c, "message", ING_MESSAGE_MAX, &r.message);
	if (rv == 0)
		rv = mp_next_bin(&c, "value", ING_COMMAND_MAX_BYTES, &r.value);
	if (rv == 0)
		rv = mp_next_u64(&c, "time_ms", UINT64_MAX, &r.time_ms);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0) {
		r.code = (int32_t)code;
		*out = r;
	}
	return rv;
}

/* ---- token ------------------------------------------------------------ */

int rec_token_encode(const struct rec_token *r, struct mp_out *o)
{
	msgpack_packer *pk = &o->pk;
	msgpack_pack_array(pk, 9);
	msgpack_pack_uint64(pk, REC_TOKEN_VERSION);
	msgpack_pack_uint64(pk, r->id);
	mp_pack_str(pk, r->name);
	mp_pack_str(pk, r->tenant);
	msgpack_pack_uint64(pk, r->role);
	msgpack_pack_uint64(pk, r->created_at_ms);
	mp_pack_bool(pk, r->revoked);
	msgpack_pack_uint64(pk, r->expires_at_ms);
	mp_pack_str(pk, r->created_by);
	return mp_out_failed(o);
}

/* v1: [1, name, tenant, role, created_at_ms, revoked]; v2: [2, id, name,
 * tenant, role, created_at_ms, revoked, expires_at_ms, created_by]. */
int rec_token_decode(struct ing_str buf, msgpack_zone *z, struct rec_token *out,
                     struct ing_error *e)
{
	static const char what[] = "token record";
	struct rec_token r = {0};
	msgpack_object obj;
	struct mp_cursor c;
	uint64_t version = 0;
	int rv = parse_copy(buf, z, what, &obj, e);
	if (rv == 0)
		rv = open_record_versions(&c, &obj, what, REC_VERSION, REC_TOKEN_VERSION, &version,
		                          e);
	if (rv == 0 && version >= 2)
		rv = mp_next_u64(&c, "id", UINT64_MAX, &r.id);
	if (rv == 0)
		rv = mp_next_str(&c, "name", ING_NAME_MAX, &r.name);
	if (rv == 0)
		rv = mp_next_str(&c, "tenant", ING_NAME_MAX, &r.tenant);
	if (rv == 0)
		rv = next_enum(&c, "role", REC_TOKEN_ROLE_COUNT, &r.role);
	if (rv == 0)
		rv = mp_next_u64(&c, "created_at_ms", UINT64_MAX, &r.created_at_ms);
	if (rv == 0)
		rv = mp_next_bool(&c, "revoked", &r.revoked);
	r.created_by = (struct ing_str){"", 0};
	if (rv == 0 && version >= 2)
		rv = mp_next_u64(&c, "expires_at_ms", UINT64_MAX, &r.expires_at_ms);
	if (rv == 0 && version >= 2)
		rv = mp_next_str(&c, "created_by", ING_PRINCIPAL_MAX, &r.created_by);
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv == 0)
		*out = r;
	return rv;
}
