/*
 * smtest.c - see smtest.h.
 */
#include "tests/lib/smtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "tests/lib/testutil.h"

void smt_open(struct smt *t)
{
	struct store_options opts = {.sync = STORE_SYNC_NONE};
	struct ing_error e;

	memset(t, 0, sizeof(*t));
	if (getenv("INGOT_TEST_LOG") == NULL)
		ing_log_set_level(ING_LOG_LEVEL_ERROR);
	tu_tmpdir(t->dir, sizeof(t->dir));
	assert_int_equal(store_open(t->dir, &opts, &t->store, &e), 0);
	assert_int_equal(sm_new(&t->sm), 0);
	sm_result_init(&t->res);
	t->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	assert_non_null(t->zone);
	mp_out_init(&t->enc);
	t->time_ms = 1700000000000ull;
}

void smt_close(struct smt *t)
{
	mp_out_free(&t->enc);
	msgpack_zone_free(t->zone);
	sm_result_free(&t->res);
	sm_free(t->sm);
	store_close(t->store);
	tu_rmrf(t->dir);
}

struct cmd smt_cmd(struct smt *t, uint32_t type)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = type;
	c.version = cmd_type_version(type);
	c.time_ms = t->time_ms++;
	c.request_id = ing_str_c("");
	return c;
}

int smt_apply_raw(struct smt *t, const void *buf, size_t len)
{
	struct store_txn *txn;
	assert_int_equal(store_batch_txn(t->store, &txn), 0);
	assert_int_equal(sm_apply(t->sm, txn, ++t->index, buf, len, &t->res), 0);
	assert_int_equal(store_batch_note(t->store), 0);
	assert_int_equal(store_batch_flush(t->store), 0);
	return t->res.err.code;
}

int smt_apply(struct smt *t, const struct cmd *c)
{
	struct ing_error e;
	mp_out_reset(&t->enc);
	if (cmd_encode(c, &t->enc, &e) != 0)
		fail_msg("cmd_encode: %s", e.msg);
	return smt_apply_raw(t, t->enc.data, t->enc.len);
}

static msgpack_object result_object(struct smt *t)
{
	msgpack_object o;
	size_t off = 0;
	assert_int_equal(t->res.err.code, 0);
	assert_true(t->res.value.len > 0);
	assert_int_equal(msgpack_unpack(t->res.value.data, t->res.value.len, &off, t->zone, &o),
	                 MSGPACK_UNPACK_SUCCESS);
	return o;
}

uint64_t smt_result_uint(struct smt *t)
{
	msgpack_object o = result_object(t);
	assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	return o.via.u64;
}

const char *smt_result_str(struct smt *t)
{
	msgpack_object o = result_object(t);
	assert_int_equal(o.type, MSGPACK_OBJECT_STR);
	char *s = msgpack_zone_malloc(t->zone, o.via.str.size + 1);
	memcpy(s, o.via.str.ptr, o.via.str.size);
	s[o.via.str.size] = '\0';
	return s;
}

void smt_target(struct smt *t, const char *name, uint32_t nstages)
{
	smt_gpu_target(t, name, nstages, 0, 0);
}

void smt_gpu_target(struct smt *t, const char *name, uint32_t nstages, uint32_t gpus,
                    uint32_t stage0_gpus)
{
	struct cmd c = smt_cmd(t, CMD_TARGET_PUT);
	struct rec_stage_def *st = msgpack_zone_malloc(t->zone, nstages * sizeof(*st));
	struct ing_str *argv = msgpack_zone_malloc(t->zone, 2 * sizeof(*argv));
	argv[0] = ing_str_c("cc");
	argv[1] = ing_str_c("{source}");
	for (uint32_t i = 0; i < nstages; i++) {
		char *n = msgpack_zone_malloc(t->zone, 16);
		snprintf(n, 16, "stage%u", i);
		memset(&st[i], 0, sizeof(st[i]));
		st[i].name = ing_str_c(n);
		st[i].nargv = 2;
		st[i].argv = argv;
		st[i].timeout_ms = 60000;
	}
	if (nstages > 0)
		st[0].gpus = stage0_gpus;
	c.u.target_put.spec.name = ing_str_c(name);
	c.u.target_put.spec.gpus = gpus;
	c.u.target_put.spec.nstages = nstages;
	c.u.target_put.spec.stages = st;
	assert_int_equal(smt_apply(t, &c), 0);
}

void smt_gpu_node(struct smt *t, uint64_t id, uint32_t slots, uint32_t n, const uint32_t *indexes)
{
	struct cmd c = smt_cmd(t, CMD_NODE_REGISTER);
	struct rec_gpu *g = msgpack_zone_malloc(t->zone, (n + 1) * sizeof(*g));
	for (uint32_t i = 0; i < n; i++) {
		char *uuid = msgpack_zone_malloc(t->zone, 16);
		snprintf(uuid, 16, "GPU-%u", indexes[i]);
		g[i] = (struct rec_gpu){indexes[i], ing_str_c(uuid), 1ull << 30};
	}
	c.u.node_register.spec.id = id;
	c.u.node_register.spec.slots = slots;
	c.u.node_register.spec.ngpus = n;
	c.u.node_register.spec.gpus = g;
	assert_int_equal(smt_apply(t, &c), 0);
}

void smt_node(struct smt *t, uint64_t id, uint32_t slots)
{
	struct cmd c = smt_cmd(t, CMD_NODE_REGISTER);
	c.u.node_register.spec.id = id;
	c.u.node_register.spec.slots = slots;
	assert_int_equal(smt_apply(t, &c), 0);
}

uint64_t smt_submit(struct smt *t, const char *target, uint32_t priority, uint32_t max_attempts)
{
	struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file *src = msgpack_zone_malloc(t->zone, sizeof(*src));
	src->path = ing_str_c("kernel.c");
	src->data = ing_str_c("int main(void) { return 0; }\n");
	c.u.job_submit.tenant = ing_str_c("default");
	c.u.job_submit.target = ing_str_c(target);
	c.u.job_submit.priority = priority;
	c.u.job_submit.max_attempts = max_attempts;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = src;
	assert_int_equal(smt_apply(t, &c), 0);
	return smt_result_uint(t);
}

/* "a,b" as names in t's zone. */
static uint32_t split_list(struct smt *t, const char *csv, struct ing_str **out)
{
	uint32_t n = 0;
	*out = NULL;
	if (csv == NULL || csv[0] == '\0')
		return 0;
	char *copy = msgpack_zone_malloc(t->zone, strlen(csv) + 1);
	strcpy(copy, csv);
	*out = msgpack_zone_malloc(t->zone, (strlen(csv) / 2 + 1) * sizeof(**out));
	for (char *save = NULL, *w = strtok_r(copy, ",", &save); w != NULL;
	     w = strtok_r(NULL, ",", &save))
		(*out)[n++] = ing_str_c(w);
	return n;
}

/* "k=v,k2=v2" as key/value pairs in t's zone. */
static uint32_t split_labels(struct smt *t, const char *csv, struct rec_kv **out)
{
	struct ing_str *items;
	uint32_t n = split_list(t, csv, &items);
	*out = n > 0 ? msgpack_zone_malloc(t->zone, n * sizeof(**out)) : NULL;
	for (uint32_t i = 0; i < n; i++) {
		const char *eq = memchr(items[i].ptr, '=', items[i].len);
		assert_non_null(eq);
		(*out)[i].key = (struct ing_str){items[i].ptr, (uint32_t)(eq - items[i].ptr)};
		(*out)[i].value = ing_str_c(eq + 1);
	}
	return n;
}

void smt_target_with(struct smt *t, const char *name, const char *caps, const char *labels)
{
	struct cmd c = smt_cmd(t, CMD_TARGET_PUT);
	struct rec_stage_def *st = msgpack_zone_malloc(t->zone, sizeof(*st));
	struct ing_str *argv = msgpack_zone_malloc(t->zone, sizeof(*argv));
	argv[0] = ing_str_c("true");
	memset(st, 0, sizeof(*st));
	st->name = ing_str_c("build");
	st->nargv = 1;
	st->argv = argv;
	st->timeout_ms = 60000;
	c.u.target_put.spec.name = ing_str_c(name);
	c.u.target_put.spec.nstages = 1;
	c.u.target_put.spec.stages = st;
	c.u.target_put.spec.ncaps = split_list(t, caps, &c.u.target_put.spec.caps);
	c.u.target_put.spec.nlabels = split_labels(t, labels, &c.u.target_put.spec.labels);
	assert_int_equal(smt_apply(t, &c), 0);
}

void smt_node_with(struct smt *t, uint64_t id, uint32_t slots, const char *caps, const char *labels)
{
	struct cmd c = smt_cmd(t, CMD_NODE_REGISTER);
	c.u.node_register.spec.id = id;
	c.u.node_register.spec.slots = slots;
	c.u.node_register.spec.ncaps = split_list(t, caps, &c.u.node_register.spec.caps);
	c.u.node_register.spec.nlabels = split_labels(t, labels, &c.u.node_register.spec.labels);
	assert_int_equal(smt_apply(t, &c), 0);
}

uint64_t smt_submit_as(struct smt *t, const char *target, const char *tenant, uint32_t priority,
                       uint64_t deadline_at_ms)
{
	struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file *src = msgpack_zone_malloc(t->zone, sizeof(*src));
	src->path = ing_str_c("kernel.c");
	src->data = ing_str_c("int main(void) { return 0; }\n");
	c.u.job_submit.tenant = ing_str_c(tenant);
	c.u.job_submit.target = ing_str_c(target);
	c.u.job_submit.priority = priority;
	c.u.job_submit.max_attempts = 3;
	c.u.job_submit.deadline_at_ms = deadline_at_ms;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = src;
	assert_int_equal(smt_apply(t, &c), 0);
	return smt_result_uint(t);
}

static int read_record(struct smt *t, enum store_table tbl, struct ing_str key,
                       struct ing_str *copy)
{
	struct store_txn *txn;
	struct ing_str val;
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	int rv = store_get(txn, tbl, key, &val);
	if (rv == 0) {
		char *p = msgpack_zone_malloc(t->zone, val.len);
		memcpy(p, val.ptr, val.len);
		copy->ptr = p;
		copy->len = val.len;
	}
	store_abort(txn);
	return rv;
}

int smt_job(struct smt *t, uint64_t id, struct rec_job *out)
{
	uint8_t k[8];
	struct ing_str val;
	store_be64(k, id);
	int rv = read_record(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val);
	if (rv == 0)
		assert_int_equal(rec_job_decode(val, t->zone, out, NULL), 0);
	return rv;
}

int smt_node_rec(struct smt *t, uint64_t id, struct rec_node *out)
{
	uint8_t k[8];
	struct ing_str val;
	store_be64(k, id);
	int rv = read_record(t, STORE_NODES, (struct ing_str){(const char *)k, 8}, &val);
	if (rv == 0)
		assert_int_equal(rec_node_decode(val, t->zone, out, NULL), 0);
	return rv;
}

int smt_target_rec(struct smt *t, const char *name, struct rec_target *out)
{
	struct ing_str val;
	int rv = read_record(t, STORE_TARGETS, ing_str_c(name), &val);
	if (rv == 0)
		assert_int_equal(rec_target_decode(val, t->zone, out, NULL), 0);
	return rv;
}

uint64_t smt_count(struct smt *t, enum store_table tbl)
{
	struct store_txn *txn;
	uint64_t n;
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_count(txn, tbl, &n), 0);
	store_abort(txn);
	return n;
}

char *smt_dump_all(struct smt *t)
{
	assert_int_equal(store_batch_flush(t->store), 0);
	return tu_mdb_dump(store_path(t->store));
}

char *smt_dump_state(struct smt *t)
{
	char *all = smt_dump_all(t);
	/* mdb_dump -a prints one section per database, each starting with
	 * "VERSION=" and naming itself in a "database=" line; drop meta's. */
	char *out = calloc(1, strlen(all) + 1);
	char *w = out;
	char *sec = strstr(all, "VERSION=");
	while (sec != NULL) {
		char *next = strstr(sec + 1, "VERSION=");
		size_t len = next != NULL ? (size_t)(next - sec) : strlen(sec);
		char *db = strstr(sec, "database=");
		bool is_meta = db != NULL && (size_t)(db - sec) < len &&
		               strncmp(db, "database=meta\n", 14) == 0;
		if (!is_meta) {
			memcpy(w, sec, len);
			w += len;
		}
		sec = next;
	}
	free(all);
	return out;
}
