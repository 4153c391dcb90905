/*
 * test_cmd.c - the command codec (node/sm/cmd.c): every command type
 * round-trips byte for byte with its request id and time; every encoding is
 * padded to 8 bytes (all eight padding amounts occur); decoding is strict
 * (every truncation, unknown type and version, wrong field types, missing
 * and extra fields, bad padding, trailing bytes, oversize fields, huge
 * declared lengths); and every validation rule fails with a message naming
 * the command and the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/sm/cmd.h"

static const uint32_t all_types[] = {
#define CMD_NUM(sym, num, ver, min_ver, pr_ver, name) (num),
    CMD_TYPES(CMD_NUM)
#undef CMD_NUM
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static struct ing_str S(const char *c) {
	return ing_str_c(c);
}

static void *allocs[256];
static size_t nallocs;

static struct ing_str fill(size_t n, char ch)
{
	char *p = malloc(n + 1);
	assert_non_null(p);
	assert_true(nallocs < sizeof(allocs) / sizeof(allocs[0]));
	allocs[nallocs++] = p;
	memset(p, ch, n);
	struct ing_str s = {p, (uint32_t)n};
	return s;
}

static int free_allocs(void **state)
{
	(void)state;
	for (size_t i = 0; i < nallocs; i++)
		free(allocs[i]);
	nallocs = 0;
	return 0;
}

/* ---- sample commands -------------------------------------------------- */

static struct ing_str caps2[2];
static struct rec_kv labels2[2];
static struct ing_str argv3[3];
static struct rec_kv env1[1];
static struct ing_str outs1[1];
static struct rec_stage_def stages2[2];
static struct cmd_file sources2[2];
static struct cmd_file outputs1[1];
static struct rec_kv params2[2];
static struct rec_gpu gpus2[2];
static uint32_t gpu_idx2[2];

/* Resets the shared arrays (tests mutate them) and returns a valid command
 * of `type` with a request id and a time. */
static struct cmd sample(uint32_t type)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	caps2[0] = S("gcc");
	caps2[1] = S("cuda-12");
	labels2[0] = (struct rec_kv){S("zone"), S("eu-1")};
	labels2[1] = (struct rec_kv){S("rack"), S("")};
	argv3[0] = S("cc");
	argv3[1] = S("-c");
	argv3[2] = S("{source}");
	env1[0] = (struct rec_kv){S("PATH"), S("/usr/bin")};
	outs1[0] = S("out/a.o");
	stages2[0] = (struct rec_stage_def){
	    S("build"),     3, argv3, 60000, 1, env1, 1, outs1, {60, 1u << 30, 1024, 1u << 20, 128},
	    S("build.log"), 2};
	stages2[1] = (struct rec_stage_def){S("link"), 1,    argv3,           1,     0, NULL,
	                                    0,         NULL, {0, 0, 0, 0, 0}, S(""), 0};
	gpus2[0] = (struct rec_gpu){0, S("GPU-0a1b"), 85520809984ull};
	gpus2[1] = (struct rec_gpu){3, S(""), 0};
	gpu_idx2[0] = 3;
	gpu_idx2[1] = 0;
	sources2[0] = (struct cmd_file){S("main.c"), S("int main(void) { return 0; }\n")};
	sources2[1] = (struct cmd_file){S("inc/a.h"), S("")};
	params2[0] = (struct rec_kv){S("GAIN"), S("42")};
	params2[1] = (struct rec_kv){S("_mode2"), S("")};
	outputs1[0] = (struct cmd_file){S("out/a.o"),
	                                {"\x7f"
	                                 "ELF\x00\x01",
	                                 6}};

	c.type = type;
	c.version = cmd_type_version(type);
	c.time_ms = 1700000000123ull;
	c.request_id = S("req-42_x");
	switch (type) {
	case CMD_TARGET_PUT: {
		struct rec_target *t = &c.u.target_put.spec;
		t->name = S("cpu-x86");
		t->description = S("x86 builds, gcc 13");
		t->ncaps = 2;
		t->caps = caps2;
		t->nlabels = 2;
		t->labels = labels2;
		t->gpus = 1;
		t->network = true;
		t->disk_bytes = 1ull << 30;
		t->nstages = 2;
		t->stages = stages2;
		break;
	}
	case CMD_TARGET_DELETE: c.u.target_delete.name = S("cpu-x86"); break;
	case CMD_JOB_SUBMIT:
		c.u.job_submit.tenant = S("team-a");
		c.u.job_submit.target = S("cpu-x86");
		c.u.job_submit.priority = 50;
		c.u.job_submit.max_attempts = 3;
		c.u.job_submit.deadline_at_ms = 1700000060000ull;
		c.u.job_submit.nsources = 2;
		c.u.job_submit.sources = sources2;
		c.u.job_submit.nparams = 2;
		c.u.job_submit.params = params2;
		break;
	case CMD_JOB_ASSIGN:
		c.u.job_assign.job = 1;
		c.u.job_assign.node = 2;
		c.u.job_assign.attempt = 1;
		c.u.job_assign.lease_until_ms = 5000;
		c.u.job_assign.ngpus = 2;
		c.u.job_assign.gpus = gpu_idx2;
		c.u.job_assign.start = true;
		break;
	case CMD_JOB_STAGE_START:
		c.u.job_stage_start.job = 1;
		c.u.job_stage_start.attempt = 1;
		c.u.job_stage_start.stage = 0;
		break;
	case CMD_JOB_STAGE_FINISH:
		c.u.job_stage_finish.job = 1;
		c.u.job_stage_finish.attempt = 1;
		c.u.job_stage_finish.stage = 1;
		c.u.job_stage_finish.exit_code = -1;
		c.u.job_stage_finish.duration_ms = 10;
		c.u.job_stage_finish.has_log = true;
		c.u.job_stage_finish.log = S("compiling main.c\n");
		c.u.job_stage_finish.noutputs = 1;
		c.u.job_stage_finish.outputs = outputs1;
		break;
	case CMD_JOB_FINISH:
		c.u.job_finish.job = 1;
		c.u.job_finish.attempt = 1;
		c.u.job_finish.outcome = REC_JOB_SUCCEEDED;
		c.u.job_finish.message = S("ok");
		break;
	case CMD_JOB_CANCEL:
		c.u.job_cancel.job = 1;
		c.u.job_cancel.reason = S("asked by user");
		break;
	case CMD_JOB_REQUEUE:
		c.u.job_requeue.job = 1;
		c.u.job_requeue.attempt = 2;
		c.u.job_requeue.reason = S("node 2 down");
		break;
	case CMD_JOB_RETRY: c.u.job_retry.job = 9; break;
	case CMD_JOB_EXPIRE: c.u.job_expire.job = 7; break;
	case CMD_NODE_REGISTER:
		c.u.node_register.spec.id = 2;
		c.u.node_register.spec.ncaps = 2;
		c.u.node_register.spec.caps = caps2;
		c.u.node_register.spec.nlabels = 2;
		c.u.node_register.spec.labels = labels2;
		c.u.node_register.spec.slots = 4;
		c.u.node_register.spec.ngpus = 2;
		c.u.node_register.spec.gpus = gpus2;
		break;
	case CMD_NODE_DRAIN:
		c.u.node_drain.node = 2;
		c.u.node_drain.draining = true;
		c.u.node_drain.deadline_ms = 12345;
		break;
	case CMD_NODE_DOWN:
		c.u.node_down.node = 2;
		c.u.node_down.reason = S("silent for 10s");
		break;
	case CMD_NODE_UP: c.u.node_up.node = 2; break;
	case CMD_NODE_FORGET: c.u.node_forget.node = 2; break;
	case CMD_MEMBER_PUT:
		c.u.member_put.member.id = 3;
		c.u.member_put.member.raft_address = S("127.0.0.1:7001");
		c.u.member_put.member.api_address = S("10.1.2.255:65535");
		c.u.member_put.member.role = REC_ROLE_STANDBY;
		break;
	case CMD_MEMBER_REMOVE: c.u.member_remove.id = 3; break;
	case CMD_CLUSTER_INIT:
		c.u.cluster_init.cluster_id = ing_str_c("0123456789abcdef0123456789abcdef");
		break;
	case CMD_CLUSTER_EVENT:
		c.u.cluster_event.kind = REC_EV_VOTER_REPLACED;
		c.u.cluster_event.member = 2;
		c.u.cluster_event.message = ing_str_c("voter 2 replaced by 4");
		break;
	case CMD_TOKEN_CREATE:
		c.u.token_create.hash = S("0123456789abcdef0123456789abcdef");
		c.u.token_create.name = S("ci-bot");
		c.u.token_create.tenant = S("team-a");
		c.u.token_create.role = REC_TOKEN_SUBMITTER;
		c.u.token_create.expires_at_ms = 1700000099000ull;
		break;
	case CMD_TOKEN_REVOKE: c.u.token_revoke.id = 7; break;
	case CMD_SETTING_PUT:
		c.u.setting_put.name = S("job_retention_ms");
		c.u.setting_put.value = 604800000;
		break;
	case CMD_RETENTION_RUN: c.u.retention_run.max_jobs = 1000; break;
	default: fail_msg("no sample for type %u", type);
	}
	return c;
}

/* ---- helpers ---------------------------------------------------------- */

static void encode_ok(const struct cmd *c, struct mp_out *o)
{
	struct ing_error e;
	mp_out_init(o);
	int rv = cmd_encode(c, o, &e);
	if (rv != 0)
		fail_msg("encode %s: %s", cmd_type_name(c->type), e.msg);
	assert_int_equal(o->len % 8, 0);
}

static void expect_decode(const void *buf, size_t len, int code, const char *needle)
{
	msgpack_zone *z = msgpack_zone_new(1024);
	struct ing_error e = {0};
	struct cmd out;
	int rv = cmd_decode(buf, len, z, &out, &e);
	if (rv != code)
		fail_msg("expected %s, got %s (%s)", ing_err_name(code), ing_err_name(rv),
		         rv != 0 ? e.msg : "");
	if (needle != NULL && strstr(e.msg, needle) == NULL)
		fail_msg("message '%s' does not mention '%s'", e.msg, needle);
	msgpack_zone_free(z);
}

/* cmd_validate and cmd_encode both refuse c with `code`, naming `needle`. */
static void expect_invalid(const struct cmd *c, int code, const char *needle)
{
	struct ing_error e = {0};
	struct mp_out o;
	int rv = cmd_validate(c, &e);
	if (rv != code)
		fail_msg("%s: expected %s, got %s (%s)", cmd_type_name(c->type), ing_err_name(code),
		         ing_err_name(rv), rv != 0 ? e.msg : "");
	if (strstr(e.msg, needle) == NULL)
		fail_msg("message '%s' does not mention '%s'", e.msg, needle);
	if (cmd_type_name(c->type) != NULL) {
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "command %s: ", cmd_type_name(c->type));
		if (strncmp(e.msg, prefix, strlen(prefix)) != 0)
			fail_msg("message '%s' does not start with '%s'", e.msg, prefix);
	}
	mp_out_init(&o);
	assert_int_equal(cmd_encode(c, &o, &e), code);
	assert_int_equal(o.len, 0);
	mp_out_free(&o);
}

static void expect_valid(const struct cmd *c)
{
	struct ing_error e;
	if (cmd_validate(c, &e) != 0)
		fail_msg("%s: unexpected error: %s", cmd_type_name(c->type), e.msg);
}

/*
 * Re-packs the top-level array of a valid encoding with item `idx` replaced
 * by `with` (NULL: removed; idx == n: appended), then pads to 8 bytes.
 */
static void rebuild(const struct mp_out *in, uint32_t idx, const msgpack_object *with,
                    struct mp_out *o)
{
	msgpack_zone *z = msgpack_zone_new(1024);
	msgpack_object obj;
	size_t off = 0;
	msgpack_unpack_return r = msgpack_unpack(in->data, in->len, &off, z, &obj);
	assert_true(r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES);
	uint32_t n = obj.via.array.size;
	mp_out_init(o);
	msgpack_pack_array(&o->pk, with == NULL ? n - 1 : (idx == n ? n + 1 : n));
	for (uint32_t i = 0; i <= n; i++) {
		if (i == idx) {
			if (with != NULL)
				msgpack_pack_object(&o->pk, *with);
		} else if (i < n) {
			msgpack_pack_object(&o->pk, obj.via.array.ptr[i]);
		}
	}
	mp_out_pad8(o);
	assert_int_equal(mp_out_failed(o), 0);
	msgpack_zone_free(z);
}

static msgpack_object obj_u64(uint64_t v)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
	o.via.u64 = v;
	return o;
}

static msgpack_object obj_str(struct ing_str s)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_STR};
	o.via.str.ptr = s.ptr;
	o.via.str.size = s.len;
	return o;
}

static msgpack_object obj_bin(struct ing_str s)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
	o.via.bin.ptr = s.ptr;
	o.via.bin.size = s.len;
	return o;
}

static msgpack_object obj_array(msgpack_object *items, uint32_t n)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_ARRAY};
	o.via.array.ptr = items;
	o.via.array.size = n;
	return o;
}

/* Decodes the sample of `type` with field `idx` replaced by `with`. */
static void expect_field(uint32_t type, uint32_t idx, msgpack_object with, int code,
                         const char *needle)
{
	struct cmd c = sample(type);
	struct mp_out o, m;
	encode_ok(&c, &o);
	rebuild(&o, idx, &with, &m);
	expect_decode(m.data, m.len, code, needle);
	mp_out_free(&m);
	mp_out_free(&o);
}

/* ---- round trips ------------------------------------------------------ */

static void check_fields(const struct cmd *a, const struct cmd *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(b->version, cmd_type_version(a->type));
	assert_int_equal(a->time_ms, b->time_ms);
	assert_true(ing_str_eq(a->request_id, b->request_id));
	assert_true(ing_str_eq(a->principal, b->principal));
	switch (a->type) {
	case CMD_TARGET_PUT: {
		const struct rec_target *x = &a->u.target_put.spec, *y = &b->u.target_put.spec;
		assert_true(ing_str_eq(x->name, y->name));
		assert_int_equal(y->ncaps, 2);
		assert_true(ing_str_eq(y->caps[1], S("cuda-12")));
		assert_true(ing_str_eq(y->labels[0].value, S("eu-1")));
		assert_int_equal(y->nstages, 2);
		assert_true(ing_str_eq(y->stages[0].argv[2], S("{source}")));
		assert_int_equal(y->stages[0].timeout_ms, 60000);
		assert_true(ing_str_eq(y->stages[0].env[0].key, S("PATH")));
		assert_true(ing_str_eq(y->stages[0].outputs[0], S("out/a.o")));
		assert_int_equal(y->stages[1].nenv, 0);
		assert_true(ing_str_eq(y->description, S("x86 builds, gcc 13")));
		assert_int_equal(y->stages[0].limits.cpu_seconds, 60);
		assert_int_equal(y->stages[0].limits.memory_bytes, 1u << 30);
		assert_int_equal(y->stages[0].limits.open_files, 1024);
		assert_int_equal(y->stages[0].limits.output_bytes, 1u << 20);
		assert_int_equal(y->stages[0].limits.processes, 128);
		assert_true(ing_str_eq(y->stages[0].stdout_path, S("build.log")));
		assert_int_equal(
		    y->stages[1].limits.cpu_seconds + y->stages[1].limits.memory_bytes +
		        y->stages[1].limits.open_files + y->stages[1].limits.output_bytes +
		        y->stages[1].limits.processes,
		    0);
		assert_true(y->network);
		assert_int_equal(y->disk_bytes, 1ull << 30);
		assert_int_equal(y->stages[1].stdout_path.len, 0);
		assert_int_equal(y->gpus, 1);
		assert_int_equal(y->stages[0].gpus, 2);
		assert_int_equal(y->stages[1].gpus, 0);
		assert_int_equal(y->revision, 0);
		break;
	}
	case CMD_JOB_SUBMIT:
		assert_true(ing_str_eq(b->u.job_submit.tenant, S("team-a")));
		assert_true(ing_str_eq(b->u.job_submit.target, S("cpu-x86")));
		assert_int_equal(b->u.job_submit.priority, 50);
		assert_int_equal(b->u.job_submit.max_attempts, 3);
		assert_int_equal(b->u.job_submit.deadline_at_ms, 1700000060000ull);
		assert_int_equal(b->u.job_submit.nsources, 2);
		assert_true(ing_str_eq(b->u.job_submit.sources[0].data, sources2[0].data));
		assert_true(ing_str_eq(b->u.job_submit.sources[1].path, S("inc/a.h")));
		assert_int_equal(b->u.job_submit.sources[1].data.len, 0);
		assert_int_equal(b->u.job_submit.nparams, 2);
		assert_true(ing_str_eq(b->u.job_submit.params[0].key, S("GAIN")));
		assert_true(ing_str_eq(b->u.job_submit.params[0].value, S("42")));
		assert_true(ing_str_eq(b->u.job_submit.params[1].key, S("_mode2")));
		assert_int_equal(b->u.job_submit.params[1].value.len, 0);
		break;
	case CMD_JOB_ASSIGN:
		assert_int_equal(b->u.job_assign.job, a->u.job_assign.job);
		assert_int_equal(b->u.job_assign.node, a->u.job_assign.node);
		assert_int_equal(b->u.job_assign.attempt, a->u.job_assign.attempt);
		assert_int_equal(b->u.job_assign.lease_until_ms, a->u.job_assign.lease_until_ms);
		assert_int_equal(b->u.job_assign.ngpus, 2);
		assert_int_equal(b->u.job_assign.gpus[0], 3);
		assert_int_equal(b->u.job_assign.gpus[1], 0);
		assert_true(b->u.job_assign.start);
		break;
	case CMD_JOB_STAGE_START:
		assert_memory_equal(&a->u.job_stage_start, &b->u.job_stage_start,
		                    sizeof(a->u.job_stage_start));
		break;
	case CMD_JOB_STAGE_FINISH:
		assert_int_equal(b->u.job_stage_finish.stage, 1);
		assert_true(b->u.job_stage_finish.exit_code == a->u.job_stage_finish.exit_code);
		assert_int_equal(b->u.job_stage_finish.duration_ms, 10);
		assert_int_equal(b->u.job_stage_finish.has_log, a->u.job_stage_finish.has_log);
		assert_true(ing_str_eq(b->u.job_stage_finish.log, a->u.job_stage_finish.log));
		assert_int_equal(b->u.job_stage_finish.noutputs, a->u.job_stage_finish.noutputs);
		assert_int_equal(b->u.job_stage_finish.started, a->u.job_stage_finish.started);
		assert_int_equal(b->u.job_stage_finish.then, a->u.job_stage_finish.then);
		assert_int_equal(b->u.job_stage_finish.outcome, a->u.job_stage_finish.outcome);
		assert_true(
		    ing_str_eq(b->u.job_stage_finish.message, a->u.job_stage_finish.message));
		break;
	case CMD_JOB_FINISH:
		assert_int_equal(b->u.job_finish.outcome, a->u.job_finish.outcome);
		assert_true(ing_str_eq(b->u.job_finish.message, S("ok")));
		break;
	case CMD_JOB_REQUEUE:
		assert_int_equal(b->u.job_requeue.attempt, 2);
		assert_true(ing_str_eq(b->u.job_requeue.reason, S("node 2 down")));
		break;
	case CMD_NODE_REGISTER:
		assert_int_equal(b->u.node_register.spec.id, 2);
		assert_int_equal(b->u.node_register.spec.slots, a->u.node_register.spec.slots);
		assert_int_equal(b->u.node_register.spec.nlabels, a->u.node_register.spec.nlabels);
		assert_int_equal(b->u.node_register.spec.ncaps, a->u.node_register.spec.ncaps);
		assert_false(b->u.node_register.spec.draining);
		assert_int_equal(b->u.node_register.spec.ngpus, 2);
		assert_int_equal(b->u.node_register.spec.gpus[0].index, 0);
		assert_true(ing_str_eq(b->u.node_register.spec.gpus[0].uuid, S("GPU-0a1b")));
		assert_int_equal(b->u.node_register.spec.gpus[0].memory_bytes, 85520809984ull);
		assert_int_equal(b->u.node_register.spec.gpus[1].index, 3);
		assert_int_equal(b->u.node_register.spec.gpus[1].uuid.len, 0);
		assert_int_equal(b->u.node_register.spec.nheld, 0);
		break;
	case CMD_NODE_DRAIN:
		assert_int_equal(b->u.node_drain.draining, a->u.node_drain.draining);
		assert_int_equal(b->u.node_drain.deadline_ms, 12345);
		break;
	case CMD_MEMBER_PUT:
		assert_int_equal(b->u.member_put.member.id, 3);
		assert_true(ing_str_eq(b->u.member_put.member.api_address, S("10.1.2.255:65535")));
		assert_int_equal(b->u.member_put.member.role, a->u.member_put.member.role);
		assert_int_equal(b->u.member_put.member.added_at_ms, 0);
		break;
	case CMD_JOB_EXPIRE: assert_int_equal(b->u.job_expire.job, 7); break;
	case CMD_MEMBER_REMOVE: assert_int_equal(b->u.member_remove.id, 3); break;
	case CMD_CLUSTER_INIT:
		assert_true(ing_str_eq(b->u.cluster_init.cluster_id, a->u.cluster_init.cluster_id));
		break;
	case CMD_CLUSTER_EVENT:
		assert_int_equal(b->u.cluster_event.kind, REC_EV_VOTER_REPLACED);
		assert_int_equal(b->u.cluster_event.member, 2);
		assert_true(ing_str_eq(b->u.cluster_event.message, a->u.cluster_event.message));
		break;
	case CMD_TOKEN_CREATE:
		assert_true(ing_str_eq(b->u.token_create.hash, a->u.token_create.hash));
		assert_true(ing_str_eq(b->u.token_create.name, S("ci-bot")));
		assert_true(ing_str_eq(b->u.token_create.tenant, S("team-a")));
		assert_int_equal(b->u.token_create.role, REC_TOKEN_SUBMITTER);
		assert_int_equal(b->u.token_create.expires_at_ms, 1700000099000ull);
		break;
	case CMD_TOKEN_REVOKE: assert_int_equal(b->u.token_revoke.id, 7); break;
	case CMD_SETTING_PUT:
		assert_true(ing_str_eq(b->u.setting_put.name, a->u.setting_put.name));
		assert_int_equal(b->u.setting_put.value, a->u.setting_put.value);
		break;
	case CMD_RETENTION_RUN:
		assert_int_equal(b->u.retention_run.max_jobs, a->u.retention_run.max_jobs);
		break;
	default: break;
	}
}

static void roundtrip(const struct cmd *c)
{
	msgpack_zone *z = msgpack_zone_new(1024);
	struct ing_error e;
	struct cmd d;
	struct mp_out o1, o2;
	encode_ok(c, &o1);
	if (cmd_decode(o1.data, o1.len, z, &d, &e) != 0)
		fail_msg("decode %s: %s", cmd_type_name(c->type), e.msg);
	check_fields(c, &d);
	encode_ok(&d, &o2);
	assert_int_equal(o1.len, o2.len);
	assert_memory_equal(o1.data, o2.data, o1.len);
	mp_out_free(&o1);
	mp_out_free(&o2);
	msgpack_zone_free(z);
}

static void test_roundtrip_all(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTYPES; i++) {
		struct cmd c = sample(all_types[i]);
		roundtrip(&c);
		/* Without a request id, at time 0 and at the largest time. */
		c.request_id = S("");
		c.time_ms = 0;
		roundtrip(&c);
		c.request_id = fill(ING_REQUEST_ID_MAX, '~');
		c.time_ms = UINT64_MAX;
		roundtrip(&c);
	}
	/* Variants: no log, no outputs, a not-draining drain, other roles. */
	struct cmd c = sample(CMD_JOB_STAGE_FINISH);
	c.u.job_stage_finish.has_log = false;
	c.u.job_stage_finish.log = S("");
	c.u.job_stage_finish.noutputs = 0;
	c.u.job_stage_finish.exit_code = INT64_MIN;
	roundtrip(&c);
	c.u.job_stage_finish.has_log = true; /* an empty log is still a log */
	roundtrip(&c);
	/* Version 2: the stage's own start, then the next stage or the end. */
	c = sample(CMD_JOB_STAGE_FINISH);
	c.u.job_stage_finish.exit_code = 0;
	c.u.job_stage_finish.started = true;
	c.u.job_stage_finish.then = CMD_THEN_NEXT;
	roundtrip(&c);
	c.u.job_stage_finish.then = CMD_THEN_FINISH;
	for (uint8_t oc = REC_JOB_SUCCEEDED; oc <= REC_JOB_CANCELLED; oc++) {
		c.u.job_stage_finish.outcome = oc;
		c.u.job_stage_finish.message = S("done");
		roundtrip(&c);
	}
	c = sample(CMD_NODE_DRAIN);
	c.u.node_drain.draining = false;
	roundtrip(&c);
	c = sample(CMD_NODE_REGISTER);
	c.u.node_register.spec.ncaps = c.u.node_register.spec.nlabels = 0;
	c.u.node_register.spec.slots = 0;
	roundtrip(&c);
	for (uint8_t r = 0; r < REC_ROLE_COUNT; r++) {
		c = sample(CMD_MEMBER_PUT);
		c.u.member_put.member.role = r;
		roundtrip(&c);
	}
	for (uint8_t oc = REC_JOB_SUCCEEDED; oc <= REC_JOB_CANCELLED; oc++) {
		c = sample(CMD_JOB_FINISH);
		c.u.job_finish.outcome = oc;
		roundtrip(&c);
	}
}

/* Fields the state machine owns are not carried: encoding ignores them. */
static void test_spec_only(void **state)
{
	(void)state;
	struct cmd a = sample(CMD_TARGET_PUT), b = a;
	b.u.target_put.spec.revision = 7;
	b.u.target_put.spec.active_jobs = 3;
	b.u.target_put.spec.created_at_ms = 9;
	struct mp_out o1, o2;
	encode_ok(&a, &o1);
	encode_ok(&b, &o2);
	assert_int_equal(o1.len, o2.len);
	assert_memory_equal(o1.data, o2.data, o1.len);
	mp_out_free(&o1);
	mp_out_free(&o2);
	a = sample(CMD_NODE_REGISTER);
	b = a;
	b.u.node_register.spec.down = true;
	b.u.node_register.spec.used_slots = 2;
	encode_ok(&a, &o1);
	encode_ok(&b, &o2);
	assert_memory_equal(o1.data, o2.data, o1.len);
	mp_out_free(&o1);
	mp_out_free(&o2);
}

static void test_padding_sweep(void **state)
{
	(void)state;
	bool seen[8] = {false};
	char data[64];
	memset(data, 'd', sizeof(data));
	for (size_t n = 0; n <= sizeof(data); n++) {
		struct cmd c = sample(CMD_JOB_SUBMIT);
		struct ing_str d = {data, (uint32_t)n};
		sources2[1].data = d;
		struct mp_out o;
		encode_ok(&c, &o);
		size_t pad = 0;
		while (pad < o.len && (unsigned char)o.data[o.len - 1 - pad] == 0xc0)
			pad++;
		assert_true(pad < 8);
		seen[pad] = true;
		expect_decode(o.data, o.len, 0, NULL);
		mp_out_free(&o);
	}
	for (int i = 0; i < 8; i++) {
		if (!seen[i])
			fail_msg("padding of %d bytes never occurred", i);
	}
}

/* ---- strict decoding -------------------------------------------------- */

static void test_truncation(void **state)
{
	(void)state;
	for (size_t t = 0; t < NTYPES; t++) {
		struct cmd c = sample(all_types[t]);
		struct mp_out o;
		encode_ok(&c, &o);
		for (size_t n = 0; n < o.len; n++)
			expect_decode(o.data, n, ING_EMALFORMED, "command");
		mp_out_free(&o);
	}
}

static void test_unknown_type_and_version(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_JOB_SUBMIT);
	struct mp_out o, m;
	encode_ok(&c, &o);

	uint64_t bad_types[] = {0, 3, 99, 1u << 31, UINT64_MAX};
	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), "unknown command type %llu",
		         (unsigned long long)bad_types[i]);
		msgpack_object t = obj_u64(bad_types[i]);
		rebuild(&o, 0, &t, &m);
		expect_decode(m.data, m.len, ING_EVERSION, want);
		mp_out_free(&m);
	}

	msgpack_object v = obj_u64(7);
	rebuild(&o, 1, &v, &m);
	{
		msgpack_zone *z = msgpack_zone_new(1024);
		struct ing_error e;
		struct cmd out;
		assert_int_equal(cmd_decode(m.data, m.len, z, &out, &e), ING_EVERSION);
		assert_string_equal(
		    e.msg, "command job_submit version 7 is not supported (this node knows 1..3)");
		msgpack_zone_free(z);
	}
	mp_out_free(&m);
	v = obj_u64(0);
	rebuild(&o, 1, &v, &m);
	expect_decode(m.data, m.len, ING_EVERSION, "version 0");
	mp_out_free(&m);
	/* A newer version with a different shape: still ING_EVERSION. */
	mp_out_init(&m);
	msgpack_pack_array(&m.pk, 3);
	msgpack_pack_uint64(&m.pk, CMD_JOB_RETRY);
	msgpack_pack_uint64(&m.pk, 3);
	msgpack_pack_nil(&m.pk);
	mp_out_pad8(&m);
	expect_decode(m.data, m.len, ING_EVERSION, "command job_retry version 3");
	mp_out_reset(&m);
	/* Empty array, not an array. */
	msgpack_pack_array(&m.pk, 0);
	mp_out_pad8(&m);
	expect_decode(m.data, m.len, ING_EMALFORMED, "type");
	mp_out_reset(&m);
	mp_pack_cstr(&m.pk, "job_submit");
	mp_out_pad8(&m);
	expect_decode(m.data, m.len, ING_EMALFORMED, "expected an array");
	mp_out_free(&m);
	mp_out_free(&o);
}

static void test_wrong_field_types(void **state)
{
	(void)state;
	for (size_t t = 0; t < NTYPES; t++) {
		struct cmd c = sample(all_types[t]);
		struct mp_out o, m;
		char want[64];
		encode_ok(&c, &o);
		msgpack_zone *z = msgpack_zone_new(1024);
		msgpack_object obj;
		size_t off = 0;
		msgpack_unpack(o.data, o.len, &off, z, &obj);
		uint32_t n = obj.via.array.size;
		for (uint32_t i = 0; i < n; i++) {
			msgpack_object_type ty = obj.via.array.ptr[i].type;
			msgpack_object bad;
			if (ty == MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    ty == MSGPACK_OBJECT_NEGATIVE_INTEGER || ty == MSGPACK_OBJECT_BOOLEAN) {
				bad = obj_str(S("1"));
			} else {
				bad.type = MSGPACK_OBJECT_BOOLEAN;
				bad.via.boolean = false;
			}
			snprintf(want, sizeof(want),
			         i == 0 ? "command: field '" : "command %s: field '",
			         cmd_type_name(c.type));
			rebuild(&o, i, &bad, &m);
			expect_decode(m.data, m.len, ING_EMALFORMED, want);
			mp_out_free(&m);
			if (ty == MSGPACK_OBJECT_STR || ty == MSGPACK_OBJECT_BIN ||
			    ty == MSGPACK_OBJECT_ARRAY) {
				bad = obj_u64(0);
				rebuild(&o, i, &bad, &m);
				expect_decode(m.data, m.len, ING_EMALFORMED, want);
				mp_out_free(&m);
			}
			if (ty == MSGPACK_OBJECT_STR) {
				bad = obj_bin(S("x"));
				rebuild(&o, i, &bad, &m);
				expect_decode(m.data, m.len, ING_EMALFORMED, want);
				mp_out_free(&m);
			}
		}
		/* One field too many, one too few. */
		msgpack_object extra = {.type = MSGPACK_OBJECT_NIL};
		snprintf(want, sizeof(want), "command %s: 1 unexpected trailing items",
		         cmd_type_name(c.type));
		rebuild(&o, n, &extra, &m);
		expect_decode(m.data, m.len, ING_EMALFORMED, want);
		mp_out_free(&m);
		snprintf(want, sizeof(want), "command %s: field '", cmd_type_name(c.type));
		rebuild(&o, n - 1, NULL, &m);
		expect_decode(m.data, m.len, ING_EMALFORMED, "is missing");
		expect_decode(m.data, m.len, ING_EMALFORMED, want);
		mp_out_free(&m);
		msgpack_zone_free(z);
		mp_out_free(&o);
	}

	/* Nested: a capability that is a number, a label of three items, a
	 * source whose data is a string, a stage that is not an array. */
	msgpack_object items[3] = {obj_u64(5), obj_str(S("v")), obj_str(S("w"))};
	expect_field(CMD_NODE_REGISTER, 5, obj_array(items, 1), ING_EMALFORMED,
	             "command node_register: field 'caps'");
	items[0] = obj_str(S("k"));
	msgpack_object label = obj_array(items, 3);
	expect_field(CMD_NODE_REGISTER, 6, obj_array(&label, 1), ING_EMALFORMED, "labels");
	msgpack_object file[2] = {obj_str(S("a.c")), obj_str(S("int x;"))};
	msgpack_object src = obj_array(file, 2);
	expect_field(CMD_JOB_SUBMIT, 9, obj_array(&src, 1), ING_EMALFORMED,
	             "command job_submit: field 'data'");
	msgpack_object stage = obj_str(S("build"));
	expect_field(CMD_TARGET_PUT, 11, obj_array(&stage, 1), ING_EMALFORMED, "stages");
	/* An outcome or role too large for its field. */
	expect_field(CMD_JOB_FINISH, 6, obj_u64(259), ING_EINVAL, "outcome");
	expect_field(CMD_MEMBER_PUT, 7, obj_u64(256 + REC_ROLE_VOTER), ING_EINVAL, "role");
	/* A negative id. */
	msgpack_object neg = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER};
	neg.via.i64 = -1;
	expect_field(CMD_JOB_RETRY, 4, neg, ING_EMALFORMED, "command job_retry: field 'job'");
	expect_field(CMD_JOB_ASSIGN, 6, obj_u64((uint64_t)UINT32_MAX + 1), ING_ETOOBIG, "attempt");
}

static void test_framing(void **state)
{
	(void)state;
	/* Find a command whose encoding has padding. */
	struct cmd c = sample(CMD_JOB_RETRY);
	struct mp_out o;
	encode_ok(&c, &o);
	assert_true((unsigned char)o.data[o.len - 1] == 0xc0);
	char *buf = malloc(o.len + 16);
	memcpy(buf, o.data, o.len);

	/* Padding replaced by zero bytes, or by a valid msgpack value. */
	buf[o.len - 1] = 0x00;
	expect_decode(buf, o.len, ING_EMALFORMED, "unexpected bytes");
	buf[o.len - 1] = (char)0x90;
	expect_decode(buf, o.len, ING_EMALFORMED, "unexpected bytes");
	buf[o.len - 1] = (char)0xc0;
	/* Garbage after the padding. */
	memset(buf + o.len, 0, 8);
	expect_decode(buf, o.len + 8, ING_EMALFORMED, "unexpected bytes");
	/* Eight or more nil bytes of padding. */
	memset(buf + o.len, 0xc0, 16);
	expect_decode(buf, o.len + 8, ING_EMALFORMED, "unexpected bytes");
	expect_decode(buf, o.len + 16, ING_EMALFORMED, "unexpected bytes");
	/* Length not a multiple of 8: padding short or long by one. */
	expect_decode(buf, o.len - 1, ING_EMALFORMED, "multiple of 8");
	expect_decode(buf, o.len + 1, ING_EMALFORMED, "multiple of 8");
	/* A second command after the first. */
	memcpy(buf + o.len, o.data, 8);
	expect_decode(buf, o.len + 8, ING_EMALFORMED, "unexpected bytes");
	free(buf);
	mp_out_free(&o);

	/* The encoder insists on starting at an 8-byte boundary. */
	struct ing_error e;
	mp_out_init(&o);
	mp_out_raw(&o, "x", 1);
	assert_int_equal(cmd_encode(&c, &o, &e), ING_EINVAL);
	assert_int_equal(o.len, 1);
	mp_out_raw(&o, "1234567", 7);
	assert_int_equal(cmd_encode(&c, &o, &e), 0);
	assert_int_equal(o.len % 8, 0);
	expect_decode(o.data + 8, o.len - 8, 0, NULL);
	mp_out_free(&o);
}

static void test_oversize(void **state)
{
	(void)state;
	/* The whole command, before anything is parsed. */
	size_t big = ING_COMMAND_MAX_BYTES + 8;
	char *buf = calloc(1, big);
	assert_non_null(buf);
	expect_decode(buf, big, ING_ETOOBIG, "command");
	free(buf);

	expect_field(CMD_TARGET_DELETE, 4, obj_str(fill(ING_NAME_MAX + 1, 'n')), ING_ETOOBIG,
	             "command target_delete: field 'name'");
	expect_field(CMD_JOB_CANCEL, 5, obj_str(fill(ING_MESSAGE_MAX + 1, 'r')), ING_ETOOBIG,
	             "command job_cancel: field 'reason'");
	expect_field(CMD_JOB_RETRY, 3, obj_str(fill(ING_REQUEST_ID_MAX + 1, 'r')), ING_ETOOBIG,
	             "command job_retry: field 'request_id'");
	expect_field(CMD_MEMBER_PUT, 5, obj_str(fill(ING_ADDRESS_MAX + 1, '1')), ING_ETOOBIG,
	             "raft_address");

	/* Too many sources; one source too large. */
	msgpack_object files[ING_MAX_SOURCES + 1], pair[2];
	pair[0] = obj_str(S("a.c"));
	pair[1] = obj_bin(S(""));
	for (int i = 0; i <= ING_MAX_SOURCES; i++)
		files[i] = obj_array(pair, 2);
	expect_field(CMD_JOB_SUBMIT, 9, obj_array(files, ING_MAX_SOURCES + 1), ING_ETOOBIG,
	             "command job_submit: field 'sources'");
	pair[1] = obj_bin(fill(ING_SOURCE_MAX_BYTES + 1, 's'));
	expect_field(CMD_JOB_SUBMIT, 9, obj_array(files, 1), ING_ETOOBIG, "field 'data'");
	pair[1] = obj_bin(fill(ING_SOURCE_MAX_BYTES, 's'));
	expect_field(CMD_JOB_SUBMIT, 9, obj_array(files, 1), 0, NULL);
	pair[0] = obj_str(fill(ING_PATH_MAX + 1, 'p'));
	pair[1] = obj_bin(S(""));
	expect_field(CMD_JOB_SUBMIT, 9, obj_array(files, 1), ING_ETOOBIG, "field 'path'");
	/* A log too large. */
	expect_field(CMD_JOB_STAGE_FINISH, 9, obj_bin(fill(ING_SOURCE_MAX_BYTES + 1, 'l')),
	             ING_ETOOBIG, "field 'log'");
	/* Too many stages in a target, argv elements in a stage. */
	msgpack_object stages[ING_MAX_STAGES + 1];
	for (int i = 0; i <= ING_MAX_STAGES; i++)
		stages[i] = obj_u64(0);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, ING_MAX_STAGES + 1), ING_ETOOBIG,
	             "field 'stages'");
	msgpack_object argv[ING_MAX_ARGV + 1], env0, outs0, st[8], lim[5];
	for (int i = 0; i <= ING_MAX_ARGV; i++)
		argv[i] = obj_str(S("a"));
	env0 = obj_array(NULL, 0);
	outs0 = obj_array(NULL, 0);
	st[0] = obj_str(S("build"));
	st[1] = obj_array(argv, ING_MAX_ARGV + 1);
	st[2] = obj_u64(1);
	st[3] = env0;
	st[4] = outs0;
	for (int i = 0; i < 5; i++)
		lim[i] = obj_u64(0);
	st[5] = obj_array(lim, 5);
	st[6] = obj_str(S(""));
	st[7] = obj_u64(0);
	stages[0] = obj_array(st, 8);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), ING_ETOOBIG, "field 'argv'");
	st[1] = obj_array(argv, ING_MAX_ARGV);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), 0, NULL);
	/* A v4 stage of 5 or 7 items (older layouts), limits of 3 or 4 items
	 * (4: the layout before processes). */
	stages[0] = obj_array(st, 5);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), ING_EMALFORMED, "stages");
	stages[0] = obj_array(st, 7);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), ING_EMALFORMED, "stages");
	st[5] = obj_array(lim, 3);
	stages[0] = obj_array(st, 8);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), ING_EMALFORMED, "limits");
	st[5] = obj_array(lim, 4);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), ING_EMALFORMED, "limits");
	st[5] = obj_array(lim, 5);
	/* network must be a boolean, disk_bytes 0 or at least 16 MiB. */
	expect_field(CMD_TARGET_PUT, 9, obj_u64(1), ING_EMALFORMED, "field 'network'");
	expect_field(CMD_TARGET_PUT, 10, obj_str(S("1GiB")), ING_EMALFORMED, "field 'disk_bytes'");
	expect_field(CMD_TARGET_PUT, 10, obj_u64((16u << 20) - 1), ING_EINVAL, "disk_bytes");
	expect_field(CMD_TARGET_PUT, 10, obj_u64(16u << 20), 0, NULL);
	/* A limit on processes over the node's own bound. */
	lim[4] = obj_u64(4194305);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), ING_EINVAL, "processes 4194305");
	lim[4] = obj_u64(4194304);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), 0, NULL);
	lim[4] = obj_u64(0);
	/* GPUs over the bound: a target's, a stage's, an assignment's, a node's. */
	expect_field(CMD_TARGET_PUT, 8, obj_u64(ING_MAX_GPUS + 1), ING_ETOOBIG, "field 'gpus'");
	expect_field(CMD_TARGET_PUT, 8, obj_u64(ING_MAX_GPUS), 0, NULL);
	st[7] = obj_u64(ING_MAX_GPUS + 1);
	expect_field(CMD_TARGET_PUT, 11, obj_array(stages, 1), ING_ETOOBIG, "stage gpus");
	msgpack_object idx[ING_MAX_GPUS + 1], gpu[3], gpus[ING_MAX_GPUS + 1];
	for (int i = 0; i <= ING_MAX_GPUS; i++)
		idx[i] = obj_u64((uint64_t)i);
	expect_field(CMD_JOB_ASSIGN, 8, obj_array(idx, ING_MAX_GPUS + 1), ING_ETOOBIG,
	             "field 'gpus'");
	expect_field(CMD_JOB_ASSIGN, 8, obj_array(idx, ING_MAX_GPUS), 0, NULL);
	idx[0] = obj_u64(ING_GPU_INDEX_MAX + 1);
	expect_field(CMD_JOB_ASSIGN, 8, obj_array(idx, 1), ING_ETOOBIG, "gpu index");
	gpu[0] = obj_u64(1);
	gpu[1] = obj_str(fill(ING_GPU_UUID_MAX + 1, 'u'));
	gpu[2] = obj_u64(0);
	gpus[0] = obj_array(gpu, 3);
	expect_field(CMD_NODE_REGISTER, 8, obj_array(gpus, 1), ING_ETOOBIG, "gpu uuid");
	gpu[1] = obj_str(S("GPU-1"));
	for (int i = 0; i <= ING_MAX_GPUS; i++)
		gpus[i] = obj_array(gpu, 3);
	expect_field(CMD_NODE_REGISTER, 8, obj_array(gpus, ING_MAX_GPUS + 1), ING_ETOOBIG,
	             "field 'gpus'");
	expect_field(CMD_NODE_REGISTER, 8, obj_array(gpus, 1), 0, NULL);
	gpus[0] = obj_array(gpu, 2);
	expect_field(CMD_NODE_REGISTER, 8, obj_array(gpus, 1), ING_EMALFORMED, "gpus");
}

static void test_huge_lengths(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		size_t len;
	} cases[] = {
	    {"\xdd\xff\xff\xff\xff\xc0\xc0\xc0", 8},
	    {"\x94\x11\x01\x00\xdb\xff\xff\xff", 8},
	    {"\x95\x11\x01\x00\xa0\xdd\xff\xff\xff\xff\xc0\xc0\xc0\xc0\xc0\xc0", 16},
	    {"\x99\x0a\x01\x00\xa0\xc6\xff\xff\xff\xff\xc0\xc0\xc0\xc0\xc0\xc0", 16},
	    {"\xdf\xff\xff\xff\xff\xc0\xc0\xc0", 8},
	    {"\xc1\xc0\xc0\xc0\xc0\xc0\xc0\xc0", 8},
	    {"\x94\x11\x01\x00\xd4\x00\x00\xc0", 8},
	    {"\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0", 8},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_decode(cases[i].bytes, cases[i].len, ING_EMALFORMED, "command");
	char deep[40];
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0x01;
	expect_decode(deep, sizeof(deep), ING_ETOOBIG, "nested");
}

/* Views point into the input: no copy of megabytes of sources. */
static void test_views_into_input(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_JOB_SUBMIT), d;
	struct mp_out o;
	struct ing_error e;
	encode_ok(&c, &o);
	msgpack_zone *z = msgpack_zone_new(1024);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	const char *p = d.u.job_submit.sources[0].data.ptr;
	assert_true(p >= o.data && p < o.data + o.len);
	/* A failed decode leaves *out untouched. */
	memset(&d, 0x5a, sizeof(d));
	assert_int_equal(cmd_decode(o.data, o.len - 8, z, &d, &e), ING_EMALFORMED);
	for (size_t i = 0; i < sizeof(d); i++)
		assert_int_equal(((unsigned char *)&d)[i], 0x5a);
	msgpack_zone_free(z);
	mp_out_free(&o);
}

/* ---- validation ------------------------------------------------------- */

static void test_validate_header(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_JOB_RETRY);
	c.request_id = S("has space");
	expect_invalid(&c, ING_EINVAL, "request_id");
	c.request_id = (struct ing_str){"a\x00b", 3};
	expect_invalid(&c, ING_EINVAL, "request_id");
	c.request_id = S("tab\there");
	expect_invalid(&c, ING_EINVAL, "request_id");
	c.request_id = S("\x7f");
	expect_invalid(&c, ING_EINVAL, "request_id");
	c.request_id = fill(ING_REQUEST_ID_MAX + 1, 'r');
	expect_invalid(&c, ING_ETOOBIG, "request_id");
	c.request_id = S("!~");
	expect_valid(&c);

	struct ing_error e;
	struct mp_out o;
	c.type = 99;
	assert_int_equal(cmd_validate(&c, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "unknown command type 99"));
	mp_out_init(&o);
	assert_int_equal(cmd_encode(&c, &o, &e), ING_EINVAL);
	mp_out_free(&o);

	/* An invalid value in the log is refused by decode, too. */
	expect_field(CMD_JOB_SUBMIT, 6, obj_u64(ING_MAX_PRIORITY + 1), ING_EINVAL,
	             "command job_submit: priority");
	expect_field(CMD_JOB_RETRY, 3, obj_str(S("a b")), ING_EINVAL, "request_id");
}

static void test_validate_ids(void **state)
{
	(void)state;
	struct cmd c;
#define ZERO(type, member, field) \
	c = sample(type);         \
	c.u.member = 0;           \
	expect_invalid(&c, ING_EINVAL, field ": must");
	ZERO(CMD_JOB_ASSIGN, job_assign.job, "job");
	ZERO(CMD_JOB_ASSIGN, job_assign.node, "node");
	ZERO(CMD_JOB_ASSIGN, job_assign.attempt, "attempt");
	ZERO(CMD_JOB_STAGE_START, job_stage_start.job, "job");
	ZERO(CMD_JOB_STAGE_START, job_stage_start.attempt, "attempt");
	ZERO(CMD_JOB_STAGE_FINISH, job_stage_finish.job, "job");
	ZERO(CMD_JOB_STAGE_FINISH, job_stage_finish.attempt, "attempt");
	ZERO(CMD_JOB_FINISH, job_finish.job, "job");
	ZERO(CMD_JOB_FINISH, job_finish.attempt, "attempt");
	ZERO(CMD_JOB_CANCEL, job_cancel.job, "job");
	ZERO(CMD_JOB_REQUEUE, job_requeue.job, "job");
	ZERO(CMD_JOB_REQUEUE, job_requeue.attempt, "attempt");
	ZERO(CMD_JOB_RETRY, job_retry.job, "job");
	ZERO(CMD_JOB_EXPIRE, job_expire.job, "job");
	ZERO(CMD_NODE_REGISTER, node_register.spec.id, "id");
	ZERO(CMD_NODE_DRAIN, node_drain.node, "node");
	ZERO(CMD_NODE_DOWN, node_down.node, "node");
	ZERO(CMD_NODE_UP, node_up.node, "node");
	ZERO(CMD_NODE_FORGET, node_forget.node, "node");
	ZERO(CMD_MEMBER_PUT, member_put.member.id, "id");
	ZERO(CMD_MEMBER_REMOVE, member_remove.id, "id");
#undef ZERO
	c = sample(CMD_CLUSTER_INIT);
	c.u.cluster_init.cluster_id = ing_str_c("0123456789ABCDEF0123456789abcdef");
	expect_invalid(&c, ING_EINVAL, "cluster_id");
	c.u.cluster_init.cluster_id = ing_str_c("0123");
	expect_invalid(&c, ING_EINVAL, "cluster_id");
	c = sample(CMD_CLUSTER_EVENT);
	c.u.cluster_event.kind = REC_EV_SUBMITTED;
	expect_invalid(&c, ING_EINVAL, "kind");
	c = sample(CMD_JOB_STAGE_START);
	c.u.job_stage_start.stage = ING_MAX_STAGES;
	expect_invalid(&c, ING_EINVAL, "stage");
	c = sample(CMD_JOB_STAGE_FINISH);
	c.u.job_stage_finish.stage = ING_MAX_STAGES;
	expect_invalid(&c, ING_EINVAL, "stage");
	/* The decoder applies the same checks. */
	expect_field(CMD_JOB_RETRY, 4, obj_u64(0), ING_EINVAL, "command job_retry: job");
	expect_field(CMD_JOB_EXPIRE, 4, obj_u64(0), ING_EINVAL, "command job_expire: job");
}

static void test_validate_names(void **state)
{
	(void)state;
	const char *bad[] = {"", ".hidden", "-flag", "a b", "a/b", "é", "a:b", "a\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cmd c = sample(CMD_TARGET_DELETE);
		c.u.target_delete.name = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "name: invalid name");
		c = sample(CMD_TARGET_PUT);
		c.u.target_put.spec.name = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "command target_put: name");
		c = sample(CMD_JOB_SUBMIT);
		c.u.job_submit.tenant = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "tenant");
		c = sample(CMD_JOB_SUBMIT);
		c.u.job_submit.target = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "target");
		c = sample(CMD_NODE_REGISTER);
		caps2[1] = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "caps");
		c = sample(CMD_TARGET_PUT);
		caps2[0] = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "caps");
		c = sample(CMD_NODE_REGISTER);
		labels2[1].key = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "label key");
		c = sample(CMD_TARGET_PUT);
		stages2[1].name = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "stage name");
	}
	struct cmd c = sample(CMD_TARGET_DELETE);
	c.u.target_delete.name = fill(ING_NAME_MAX + 1, 'n');
	expect_invalid(&c, ING_ETOOBIG, "name");
	c.u.target_delete.name = fill(ING_NAME_MAX, 'n');
	expect_valid(&c);
	c.u.target_delete.name = S("A.b_c-9");
	expect_valid(&c);
	c = sample(CMD_JOB_SUBMIT);
	c.u.job_submit.tenant = fill(ING_NAME_MAX + 1, 't');
	expect_invalid(&c, ING_ETOOBIG, "tenant");
}

static void test_validate_caps_labels(void **state)
{
	(void)state;
	uint32_t types[] = {CMD_TARGET_PUT, CMD_NODE_REGISTER};
	for (size_t i = 0; i < 2; i++) {
		struct cmd c = sample(types[i]);
		caps2[1] = caps2[0];
		expect_invalid(&c, ING_EINVAL, "caps: 'gcc' is repeated");
		c = sample(types[i]);
		labels2[1].key = labels2[0].key;
		expect_invalid(&c, ING_EINVAL, "labels: key 'zone' is repeated");
		c = sample(types[i]);
		labels2[0].value = fill(ING_LABEL_VALUE_MAX + 1, 'v');
		expect_invalid(&c, ING_ETOOBIG, "label value");
		c = sample(types[i]);
		labels2[0].value = fill(ING_LABEL_VALUE_MAX, 'v');
		expect_valid(&c);
		labels2[0].value = (struct ing_str){"a\0b", 3};
		expect_invalid(&c, ING_EINVAL, "label value");
	}
	struct cmd c = sample(CMD_NODE_REGISTER);
	struct ing_str caps[ING_MAX_CAPS + 1];
	struct rec_kv labels[ING_MAX_LABELS + 1];
	char names[ING_MAX_LABELS + 1][4];
	for (int i = 0; i <= ING_MAX_CAPS; i++) {
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		caps[i] = S(names[i]);
		labels[i] = (struct rec_kv){S(names[i]), S("v")};
	}
	c.u.node_register.spec.caps = caps;
	c.u.node_register.spec.ncaps = ING_MAX_CAPS;
	expect_valid(&c);
	c.u.node_register.spec.ncaps = ING_MAX_CAPS + 1;
	expect_invalid(&c, ING_ETOOBIG, "caps");
	c.u.node_register.spec.ncaps = 0;
	c.u.node_register.spec.labels = labels;
	c.u.node_register.spec.nlabels = ING_MAX_LABELS;
	expect_valid(&c);
	c.u.node_register.spec.nlabels = ING_MAX_LABELS + 1;
	expect_invalid(&c, ING_ETOOBIG, "labels");
	c = sample(CMD_NODE_REGISTER);
	c.u.node_register.spec.slots = ING_MAX_SLOTS;
	expect_valid(&c);
	c.u.node_register.spec.slots = ING_MAX_SLOTS + 1;
	expect_invalid(&c, ING_EINVAL, "command node_register: slots");
}

static void test_validate_target(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_TARGET_PUT);
	c.u.target_put.spec.nstages = 0;
	expect_invalid(&c, ING_EINVAL, "command target_put: stages");

	c = sample(CMD_TARGET_PUT);
	struct rec_stage_def many[ING_MAX_STAGES + 1];
	char names[ING_MAX_STAGES + 1][8];
	for (int i = 0; i <= ING_MAX_STAGES; i++) {
		snprintf(names[i], sizeof(names[i]), "s%d", i);
		many[i] = stages2[1];
		many[i].name = S(names[i]);
	}
	c.u.target_put.spec.stages = many;
	c.u.target_put.spec.nstages = ING_MAX_STAGES;
	expect_valid(&c);
	c.u.target_put.spec.nstages = ING_MAX_STAGES + 1;
	expect_invalid(&c, ING_ETOOBIG, "stages");

	c = sample(CMD_TARGET_PUT);
	stages2[1].name = S("build");
	expect_invalid(&c, ING_EINVAL, "stage name: 'build' is repeated");

	c = sample(CMD_TARGET_PUT);
	stages2[0].nargv = 0;
	struct ing_error e;
	assert_int_equal(cmd_validate(&c, &e), ING_EINVAL);
	assert_string_equal(e.msg, "command target_put: stage 'build': argv is empty");

	c = sample(CMD_TARGET_PUT);
	struct ing_str argv[ING_MAX_ARGV + 1];
	for (int i = 0; i <= ING_MAX_ARGV; i++)
		argv[i] = S("x");
	stages2[0].argv = argv;
	stages2[0].nargv = ING_MAX_ARGV;
	expect_valid(&c);
	stages2[0].nargv = ING_MAX_ARGV + 1;
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': argv");
	stages2[0].nargv = 2;
	argv[1] = S("");
	expect_invalid(&c, ING_EINVAL, "stage 'build': argv: element 1 is empty");
	argv[1] = fill(ING_ARG_MAX + 1, 'a');
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': argv");
	argv[1] = fill(ING_ARG_MAX, 'a');
	expect_valid(&c);
	argv[1] = (struct ing_str){"a\0", 2};
	expect_invalid(&c, ING_EINVAL, "stage 'build': argv: contains a NUL");

	c = sample(CMD_TARGET_PUT);
	stages2[0].timeout_ms = 0;
	expect_invalid(&c, ING_EINVAL, "stage 'build': timeout_ms");
	stages2[0].timeout_ms = 86400001;
	expect_invalid(&c, ING_EINVAL, "stage 'build': timeout_ms");
	stages2[0].timeout_ms = 86400000;
	expect_valid(&c);

	const char *bad_keys[] = {"", "1PATH", "A-B", "A.B", "A B", "é"};
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		c = sample(CMD_TARGET_PUT);
		env1[0].key = S(bad_keys[i]);
		expect_invalid(&c, ING_EINVAL, "stage 'build': env: invalid key");
	}
	c = sample(CMD_TARGET_PUT);
	env1[0].key = fill(ING_NAME_MAX + 1, 'K');
	expect_invalid(&c, ING_EINVAL, "stage 'build': env");
	env1[0].key = S("_x9");
	expect_valid(&c);
	struct rec_kv env[ING_MAX_ENV + 1];
	char keys[ING_MAX_ENV + 1][8];
	for (int i = 0; i <= ING_MAX_ENV; i++) {
		snprintf(keys[i], sizeof(keys[i]), "K%d", i);
		env[i] = (struct rec_kv){S(keys[i]), S("")};
	}
	stages2[0].env = env;
	stages2[0].nenv = ING_MAX_ENV;
	expect_valid(&c);
	stages2[0].nenv = ING_MAX_ENV + 1;
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': env");
	stages2[0].nenv = 2;
	env[1].key = env[0].key;
	expect_invalid(&c, ING_EINVAL, "stage 'build': env: key 'K0' is repeated");
	env[1].key = S("OTHER");
	env[1].value = fill(ING_ARG_MAX + 1, 'v');
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': env");
	env[1].value = (struct ing_str){"\0", 1};
	expect_invalid(&c, ING_EINVAL, "stage 'build': env: contains a NUL");

	const char *bad_paths[] = {"", "/abs", "a/../b", "..", "../x", "a//b", "a/", "a\0b"};
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		c = sample(CMD_TARGET_PUT);
		outs1[0] =
		    (struct ing_str){bad_paths[i], i == 7 ? 3 : (uint32_t)strlen(bad_paths[i])};
		expect_invalid(&c, ING_EINVAL, "stage 'build': outputs: invalid path");
	}
	c = sample(CMD_TARGET_PUT);
	struct ing_str outs[ING_MAX_OUTPUTS + 1];
	char onames[ING_MAX_OUTPUTS + 1][8];
	for (int i = 0; i <= ING_MAX_OUTPUTS; i++) {
		snprintf(onames[i], sizeof(onames[i]), "o/%d", i);
		outs[i] = S(onames[i]);
	}
	stages2[0].outputs = outs;
	stages2[0].stdout_path = S("");
	stages2[0].noutputs = ING_MAX_OUTPUTS;
	expect_valid(&c);
	stages2[0].noutputs = ING_MAX_OUTPUTS + 1;
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': outputs");
	/* The stdout file counts as one more output. */
	stages2[0].stdout_path = S("out.txt");
	stages2[0].noutputs = ING_MAX_OUTPUTS;
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': outputs: 16 exceeds 15");
	stages2[0].noutputs = ING_MAX_OUTPUTS - 1;
	expect_valid(&c);
	stages2[0].noutputs = 2;
	outs[1] = outs[0];
	expect_invalid(&c, ING_EINVAL, "stage 'build': outputs: path 'o/0' is repeated");
	outs[1] = fill(ING_PATH_MAX + 1, 'p');
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': outputs");
}

static void test_validate_target_v2_fields(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_TARGET_PUT);
	c.u.target_put.spec.description = fill(ING_MESSAGE_MAX, 'd');
	expect_valid(&c);
	c.u.target_put.spec.description = fill(ING_MESSAGE_MAX + 1, 'd');
	expect_invalid(&c, ING_ETOOBIG, "command target_put: description");
	c.u.target_put.spec.description = (struct ing_str){"a\0", 2};
	expect_invalid(&c, ING_EINVAL, "description: contains a NUL");

	/* stdout: a valid relative path, not one of the declared outputs. */
	const char *bad_paths[] = {"/abs", "a/../b", "..", "a//b", "a/"};
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		c = sample(CMD_TARGET_PUT);
		stages2[0].stdout_path = S(bad_paths[i]);
		expect_invalid(&c, ING_EINVAL, "stage 'build': stdout: invalid path");
	}
	c = sample(CMD_TARGET_PUT);
	stages2[0].stdout_path = fill(ING_PATH_MAX + 1, 'p');
	expect_invalid(&c, ING_ETOOBIG, "stage 'build': stdout");
	stages2[0].stdout_path = S("out/a.o");
	expect_invalid(&c, ING_EINVAL,
	               "stage 'build': stdout: 'out/a.o' is also a declared output");
	stages2[0].stdout_path = S("logs/symbols.txt");
	expect_valid(&c);
	stages2[0].stdout_path = S("");
	expect_valid(&c);

	/* limits: 0 is none; otherwise within bounds. */
	struct {
		struct rec_stage_limits l;
		const char *needle; /* NULL: valid */
	} cases[] = {
	    {{0, 0, 0, 0, 0}, NULL},
	    {{86400, 1u << 20, 16, 4096, 1}, NULL},
	    {{1, 0, 1048576, 0, 4194304}, NULL},
	    {{86401, 0, 0, 0, 0}, "limits: cpu_seconds 86401 not 0 (none) or 1..86400"},
	    {{0, (1u << 20) - 1, 0, 0, 0}, "limits: memory_bytes 1048575"},
	    {{0, 0, 15, 0, 0}, "limits: open_files 15"},
	    {{0, 0, 1048577, 0, 0}, "limits: open_files 1048577"},
	    {{0, 0, 0, 4095, 0}, "limits: output_bytes 4095"},
	    {{0, 0, 0, 0, 4194305}, "limits: processes 4194305 not 0 (none) or 1..4194304"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = sample(CMD_TARGET_PUT);
		stages2[1].limits = cases[i].l;
		if (cases[i].needle == NULL)
			expect_valid(&c);
		else
			expect_invalid(&c, ING_EINVAL, cases[i].needle);
	}
	c = sample(CMD_TARGET_PUT);
	stages2[1].limits.open_files = 3;
	expect_invalid(&c, ING_EINVAL, "command target_put: stage 'link': limits: open_files 3");

	/* disk_bytes: 0 (the node's ceiling alone) or at least 16 MiB. */
	c = sample(CMD_TARGET_PUT);
	c.u.target_put.spec.disk_bytes = 0;
	expect_valid(&c);
	c.u.target_put.spec.disk_bytes = 16u << 20;
	expect_valid(&c);
	c.u.target_put.spec.disk_bytes = UINT64_MAX;
	expect_valid(&c);
	c.u.target_put.spec.disk_bytes = (16u << 20) - 1;
	expect_invalid(&c, ING_EINVAL,
	               "command target_put: disk_bytes 16777215 not 0 (none) or at least "
	               "16777216 (16 MiB)");
}

/* A target_put of version 1, as an older ingot wrote it in the log:
 * [1, 1, time, req, name, caps, labels, stages[[name, argv, timeout_ms,
 * env, outputs]]], built by hand. */
static void pack_v1_target_put(struct mp_out *o, uint32_t stage_items)
{
	msgpack_packer *pk = &o->pk;
	mp_out_init(o);
	msgpack_pack_array(pk, 8);
	msgpack_pack_uint64(pk, CMD_TARGET_PUT);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_uint64(pk, 1700000000123ull);
	mp_pack_cstr(pk, "req-1");
	mp_pack_cstr(pk, "cpu-x86");
	msgpack_pack_array(pk, 1);
	mp_pack_cstr(pk, "gcc");
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 2);
	mp_pack_cstr(pk, "zone");
	mp_pack_cstr(pk, "eu-1");
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, stage_items);
	mp_pack_cstr(pk, "build");
	msgpack_pack_array(pk, 2);
	mp_pack_cstr(pk, "cc");
	mp_pack_cstr(pk, "{source}");
	msgpack_pack_uint64(pk, 60000);
	msgpack_pack_array(pk, 0);
	msgpack_pack_array(pk, 1);
	mp_pack_cstr(pk, "a.o");
	if (stage_items == 7) {
		msgpack_pack_array(pk, 4);
		for (int i = 0; i < 4; i++)
			msgpack_pack_uint64(pk, 0);
		mp_pack_cstr(pk, "");
	}
	mp_out_pad8(o);
}

static void test_decode_target_put_v1(void **state)
{
	(void)state;
	struct mp_out o, again;
	struct ing_error e;
	struct cmd c;
	msgpack_zone *z = msgpack_zone_new(1024);

	pack_v1_target_put(&o, 5);
	assert_int_equal(cmd_decode(o.data, o.len, z, &c, &e), 0);
	assert_int_equal(c.type, CMD_TARGET_PUT);
	assert_int_equal(c.version, 1);
	assert_int_equal(c.time_ms, 1700000000123ull);
	const struct rec_target *t = &c.u.target_put.spec;
	assert_true(ing_str_eq(t->name, S("cpu-x86")));
	assert_int_equal(t->description.len, 0);
	assert_int_equal(t->ncaps, 1);
	assert_true(ing_str_eq(t->labels[0].value, S("eu-1")));
	assert_int_equal(t->nstages, 1);
	assert_true(ing_str_eq(t->stages[0].argv[1], S("{source}")));
	assert_int_equal(t->stages[0].timeout_ms, 60000);
	assert_true(ing_str_eq(t->stages[0].outputs[0], S("a.o")));
	assert_int_equal(t->stages[0].limits.cpu_seconds, 0);
	assert_int_equal(t->stages[0].limits.memory_bytes, 0);
	assert_int_equal(t->stages[0].limits.open_files, 0);
	assert_int_equal(t->stages[0].limits.output_bytes, 0);
	assert_int_equal(t->stages[0].stdout_path.len, 0);

	assert_int_equal(t->gpus, 0);
	assert_int_equal(t->stages[0].gpus, 0);
	assert_false(t->network);
	assert_int_equal(t->disk_bytes, 0);
	assert_int_equal(t->stages[0].limits.processes, 0);

	/* Re-encoding writes version 5, which decodes to the same spec. */
	mp_out_init(&again);
	assert_int_equal(cmd_encode(&c, &again, &e), 0);
	assert_int_equal((uint8_t)again.data[2], 5); /* [fixarray, type 1, version 5, ...] */
	struct cmd d;
	assert_int_equal(cmd_decode(again.data, again.len, z, &d, &e), 0);
	assert_int_equal(d.version, 5);
	assert_true(ing_str_eq(d.u.target_put.spec.stages[0].name, S("build")));
	assert_int_equal(d.u.target_put.spec.stages[0].stdout_path.len, 0);
	mp_out_free(&again);
	mp_out_free(&o);

	/* v1 with the 7-item stages of v2 is malformed; v6 is unknown. */
	pack_v1_target_put(&o, 7);
	expect_decode(o.data, o.len, ING_EMALFORMED, "command target_put: field 'stages'");
	mp_out_free(&o);
	pack_v1_target_put(&o, 5);
	o.data[2] = 6;
	expect_decode(o.data, o.len, ING_EVERSION,
	              "command target_put version 6 is not supported (this node knows 1..5)");
	o.data[2] = 0;
	expect_decode(o.data, o.len, ING_EVERSION, "version 0");
	mp_out_free(&o);
	msgpack_zone_free(z);
}

/*
 * A target_put of `version` 2 or 3 as an older ingot wrote it, packed by
 * hand from c's spec: v3 [name, description, caps, labels, gpus, stages]
 * with 8-item stages and 4-item limits (no network, disk_bytes or
 * processes), v2 the same without the gpus of the target and of each stage.
 * With `extra`, the field the next version added is left in (v2: gpus, v3:
 * network), which makes it malformed.
 */
static void pack_old_target_put(const struct cmd *c, uint32_t version, bool extra, struct mp_out *o)
{
	const struct rec_target *t = &c->u.target_put.spec;
	msgpack_packer *pk = &o->pk;
	bool gpus = version >= 3 || extra;
	mp_out_init(o);
	msgpack_pack_array(pk, 9 + (gpus ? 1 : 0) + (version >= 3 && extra ? 1 : 0));
	msgpack_pack_uint64(pk, CMD_TARGET_PUT);
	msgpack_pack_uint64(pk, version);
	msgpack_pack_uint64(pk, c->time_ms);
	mp_pack_str(pk, c->request_id);
	mp_pack_str(pk, t->name);
	mp_pack_str(pk, t->description);
	mp_pack_str_list(pk, t->ncaps, t->caps);
	rec_pack_kv_list(pk, t->nlabels, t->labels);
	if (gpus)
		msgpack_pack_uint64(pk, t->gpus);
	if (version >= 3 && extra)
		mp_pack_bool(pk, t->network);
	msgpack_pack_array(pk, t->nstages);
	for (uint32_t i = 0; i < t->nstages; i++) {
		const struct rec_stage_def *st = &t->stages[i];
		msgpack_pack_array(pk, version >= 3 ? 8 : 7);
		mp_pack_str(pk, st->name);
		mp_pack_str_list(pk, st->nargv, st->argv);
		msgpack_pack_uint64(pk, st->timeout_ms);
		rec_pack_kv_list(pk, st->nenv, st->env);
		mp_pack_str_list(pk, st->noutputs, st->outputs);
		msgpack_pack_array(pk, 4);
		msgpack_pack_uint64(pk, st->limits.cpu_seconds);
		msgpack_pack_uint64(pk, st->limits.memory_bytes);
		msgpack_pack_uint64(pk, st->limits.open_files);
		msgpack_pack_uint64(pk, st->limits.output_bytes);
		mp_pack_str(pk, st->stdout_path);
		if (version >= 3)
			msgpack_pack_uint64(pk, st->gpus);
	}
	mp_out_pad8(o);
}

/*
 * A command as an older ingot wrote it, built from today's encoding: its
 * version number replaced and its last `drop` fields left out.
 */
static void pack_older(const struct cmd *c, uint32_t version, uint32_t drop, struct mp_out *o)
{
	struct mp_out full;
	msgpack_zone *z = msgpack_zone_new(1024);
	msgpack_object obj;
	size_t off = 0;

	encode_ok(c, &full);
	msgpack_unpack(full.data, full.len, &off, z, &obj);
	const msgpack_object_array *a = &obj.via.array;
	mp_out_init(o);
	msgpack_pack_array(&o->pk, a->size - drop);
	for (uint32_t i = 0; i < a->size - drop; i++) {
		if (i == 1)
			msgpack_pack_uint64(&o->pk, version);
		else
			msgpack_pack_object(&o->pk, a->ptr[i]);
	}
	mp_out_pad8(o);
	mp_out_free(&full);
	msgpack_zone_free(z);
}

/*
 * The commands as an ingot before GPUs wrote them: a job_assign v1 (no
 * gpus, no start), a node_register v1 (no gpus): each decodes with no GPUs,
 * and with its GPU field left in is malformed.  A job_assign v2 (no start)
 * decodes with start false, a v3 (no ahead) with ahead 0.
 */
static void test_decode_before_gpus(void **state)
{
	(void)state;
	struct mp_out o;
	struct ing_error e;
	struct cmd c, d;
	msgpack_zone *z = msgpack_zone_new(1024);

	c = sample(CMD_TARGET_PUT);
	pack_old_target_put(&c, 2, false, &o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_int_equal(d.version, 2);
	assert_int_equal(d.u.target_put.spec.gpus, 0);
	assert_int_equal(d.u.target_put.spec.nstages, 2);
	assert_int_equal(d.u.target_put.spec.stages[0].gpus, 0);
	assert_true(ing_str_eq(d.u.target_put.spec.stages[0].stdout_path, S("build.log")));
	mp_out_free(&o);
	pack_old_target_put(&c, 2, true, &o); /* v2 with the gpus field: malformed */
	expect_decode(o.data, o.len, ING_EMALFORMED, "command target_put: field 'stages'");
	mp_out_free(&o);

	c = sample(CMD_JOB_ASSIGN);
	c.u.job_assign.start = true;
	pack_older(&c, 1, 3, &o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_int_equal(d.version, 1);
	assert_int_equal(d.u.job_assign.attempt, 1);
	assert_int_equal(d.u.job_assign.ngpus, 0);
	assert_false(d.u.job_assign.start);
	assert_int_equal(d.u.job_assign.ahead, 0);
	mp_out_free(&o);
	pack_older(&c, 1, 2, &o);
	expect_decode(o.data, o.len, ING_EMALFORMED, "command job_assign: 1 unexpected trailing");
	mp_out_free(&o);
	pack_older(&c, 2, 2, &o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_int_equal(d.version, 2);
	assert_int_equal(d.u.job_assign.ngpus, c.u.job_assign.ngpus);
	assert_false(d.u.job_assign.start);
	mp_out_free(&o);
	pack_older(&c, 2, 1, &o);
	expect_decode(o.data, o.len, ING_EMALFORMED, "command job_assign: 1 unexpected trailing");
	mp_out_free(&o);
	pack_older(&c, 3, 1, &o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_true(d.u.job_assign.start);
	assert_int_equal(d.u.job_assign.ahead, 0);
	mp_out_free(&o);
	pack_older(&c, 3, 0, &o);
	expect_decode(o.data, o.len, ING_EMALFORMED, "command job_assign: 1 unexpected trailing");
	mp_out_free(&o);

	c = sample(CMD_NODE_REGISTER);
	pack_older(&c, 1, 1, &o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_int_equal(d.version, 1);
	assert_int_equal(d.u.node_register.spec.slots, 4);
	assert_int_equal(d.u.node_register.spec.ngpus, 0);
	mp_out_free(&o);
	pack_older(&c, 3, 1, &o);
	expect_decode(o.data, o.len, ING_EVERSION,
	              "command node_register version 3 is not supported (this node knows 1..2)");
	mp_out_free(&o);
	msgpack_zone_free(z);
}

/*
 * job_assign v4's `ahead`: kept through encode and decode; refused with
 * GPUs (a waiting attempt holds none) and above ING_MAX_SLOTS.
 */
static void test_job_assign_ahead(void **state)
{
	(void)state;
	struct mp_out o;
	struct ing_error e;
	struct cmd c = sample(CMD_JOB_ASSIGN), d;
	msgpack_zone *z = msgpack_zone_new(1024);

	c.u.job_assign.ngpus = 0;
	c.u.job_assign.gpus = NULL;
	c.u.job_assign.ahead = 3;
	encode_ok(&c, &o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_int_equal(d.version, 4);
	assert_int_equal(d.u.job_assign.ahead, 3);
	assert_true(d.u.job_assign.start);
	mp_out_free(&o);
	c.u.job_assign.ahead = ING_MAX_SLOTS + 1;
	expect_invalid(&c, ING_EINVAL, "ahead");
	c = sample(CMD_JOB_ASSIGN); /* 2 GPUs */
	c.u.job_assign.ahead = 1;
	expect_invalid(&c, ING_EINVAL, "holds no GPU");
	msgpack_zone_free(z);
}

/*
 * A target_put v3, as an ingot before the sandbox's target settings wrote
 * it (no network, no disk_bytes, 4-item limits): it decodes with network
 * false, disk_bytes 0 and processes 0, everything else kept, and
 * re-encodes as v4; with the network field left in it is malformed.
 */
static void test_decode_target_put_v3(void **state)
{
	(void)state;
	struct mp_out o, again;
	struct ing_error e;
	struct cmd c, d;
	msgpack_zone *z = msgpack_zone_new(1024);

	c = sample(CMD_TARGET_PUT);
	pack_old_target_put(&c, 3, false, &o);
	if (cmd_decode(o.data, o.len, z, &d, &e) != 0)
		fail_msg("decode: %s", e.msg);
	const struct rec_target *t = &d.u.target_put.spec;
	assert_int_equal(d.version, 3);
	assert_false(t->network);
	assert_int_equal(t->disk_bytes, 0);
	assert_int_equal(t->gpus, 1);
	assert_int_equal(t->nstages, 2);
	assert_int_equal(t->stages[0].gpus, 2);
	assert_int_equal(t->stages[0].limits.cpu_seconds, 60);
	assert_int_equal(t->stages[0].limits.output_bytes, 1u << 20);
	assert_int_equal(t->stages[0].limits.processes, 0);
	assert_true(ing_str_eq(t->stages[0].stdout_path, S("build.log")));
	mp_out_init(&again);
	assert_int_equal(cmd_encode(&d, &again, &e), 0);
	assert_int_equal((uint8_t)again.data[2], 5);
	mp_out_free(&again);
	mp_out_free(&o);

	pack_old_target_put(&c, 3, true, &o);
	expect_decode(o.data, o.len, ING_EMALFORMED, "command target_put: field 'stages'");
	mp_out_free(&o);
	/* The v4 layout labelled v3 (network and disk_bytes where v3 has its
	 * stages) is malformed too. */
	encode_ok(&c, &o);
	o.data[2] = 3;
	expect_decode(o.data, o.len, ING_EMALFORMED, "command target_put: field 'stages'");
	mp_out_free(&o);
	msgpack_zone_free(z);
}

static void test_validate_gpus(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_TARGET_PUT);
	c.u.target_put.spec.gpus = ING_MAX_GPUS + 1;
	expect_invalid(&c, ING_ETOOBIG, "command target_put: gpus: 17 exceeds 16");
	c = sample(CMD_TARGET_PUT);
	stages2[1].gpus = ING_MAX_GPUS + 1;
	expect_invalid(&c, ING_ETOOBIG, "command target_put: stage 'link': gpus: 17 exceeds 16");
	stages2[1].gpus = ING_MAX_GPUS;
	expect_valid(&c);

	c = sample(CMD_JOB_ASSIGN);
	gpu_idx2[1] = 3;
	expect_invalid(&c, ING_EINVAL, "command job_assign: gpus: index 3 is repeated");
	gpu_idx2[1] = ING_GPU_INDEX_MAX + 1;
	expect_invalid(&c, ING_EINVAL, "command job_assign: gpus: index 64 exceeds 63");
	c.u.job_assign.ngpus = ING_MAX_GPUS + 1;
	expect_invalid(&c, ING_ETOOBIG, "command job_assign: gpus: 17 exceeds 16");
	c = sample(CMD_JOB_ASSIGN);
	c.u.job_assign.ngpus = 0;
	expect_valid(&c);

	c = sample(CMD_NODE_REGISTER);
	gpus2[1].index = 0;
	expect_invalid(&c, ING_EINVAL, "command node_register: gpus: index 0 is repeated");
	gpus2[1].index = ING_GPU_INDEX_MAX + 1;
	expect_invalid(&c, ING_EINVAL, "command node_register: gpus: index 64 exceeds 63");
	gpus2[1].index = 5;
	gpus2[1].uuid = (struct ing_str){"GPU\0x", 5};
	expect_invalid(&c, ING_EINVAL, "command node_register: gpus: uuid: contains a NUL byte");
	gpus2[1].uuid = fill(ING_GPU_UUID_MAX + 1, 'u');
	expect_invalid(&c, ING_ETOOBIG, "command node_register: gpus: uuid");
	gpus2[1].uuid = fill(ING_GPU_UUID_MAX, 'u');
	expect_valid(&c);
	c.u.node_register.spec.ngpus = ING_MAX_GPUS + 1;
	expect_invalid(&c, ING_ETOOBIG, "command node_register: gpus: 17 exceeds 16");
}

/* A job_submit of version 1, as an older ingot wrote it in the log:
 * [10, 1, time, req, tenant, target, priority, max_attempts, deadline_at_ms,
 * sources[[path, data]]], built by hand; `extra` appends a params list
 * (malformed at version 1). */
static void pack_v1_job_submit(struct mp_out *o, bool extra)
{
	msgpack_packer *pk = &o->pk;
	mp_out_init(o);
	msgpack_pack_array(pk, extra ? 11 : 10);
	msgpack_pack_uint64(pk, CMD_JOB_SUBMIT);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_uint64(pk, 1700000000123ull);
	mp_pack_cstr(pk, "req-1");
	mp_pack_cstr(pk, "default");
	mp_pack_cstr(pk, "cpu-x86");
	msgpack_pack_uint64(pk, 50);
	msgpack_pack_uint64(pk, 3);
	msgpack_pack_uint64(pk, 0);
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 2);
	mp_pack_cstr(pk, "main.c");
	mp_pack_bin(pk, "int x;\n", 7);
	if (extra)
		msgpack_pack_array(pk, 0);
	mp_out_pad8(o);
}

static void test_decode_job_submit_v1(void **state)
{
	(void)state;
	struct mp_out o, again;
	struct ing_error e;
	struct cmd c, d;
	msgpack_zone *z = msgpack_zone_new(1024);

	pack_v1_job_submit(&o, false);
	if (cmd_decode(o.data, o.len, z, &c, &e) != 0)
		fail_msg("decode: %s", e.msg);
	assert_int_equal(c.type, CMD_JOB_SUBMIT);
	assert_int_equal(c.version, 1);
	assert_true(ing_str_eq(c.u.job_submit.tenant, S("default")));
	assert_true(ing_str_eq(c.u.job_submit.target, S("cpu-x86")));
	assert_int_equal(c.u.job_submit.priority, 50);
	assert_int_equal(c.u.job_submit.max_attempts, 3);
	assert_int_equal(c.u.job_submit.nsources, 1);
	assert_true(ing_str_eq(c.u.job_submit.sources[0].path, S("main.c")));
	assert_int_equal(c.u.job_submit.nparams, 0);

	/* Re-encoding writes version 3 with an empty params list. */
	mp_out_init(&again);
	assert_int_equal(cmd_encode(&c, &again, &e), 0);
	assert_int_equal((uint8_t)again.data[2], 3); /* [fixarray, type 10, version 3, ...] */
	assert_int_equal(cmd_decode(again.data, again.len, z, &d, &e), 0);
	assert_int_equal(d.version, 3);
	assert_int_equal(d.u.job_submit.nparams, 0);
	assert_true(ing_str_eq(d.u.job_submit.sources[0].path, S("main.c")));
	mp_out_free(&again);
	mp_out_free(&o);

	/* v1 with params is malformed (an extra field); v2 without is too. */
	pack_v1_job_submit(&o, true);
	expect_decode(o.data, o.len, ING_EMALFORMED, "command job_submit");
	mp_out_free(&o);
	pack_v1_job_submit(&o, false);
	o.data[2] = 2;
	expect_decode(o.data, o.len, ING_EMALFORMED, "command job_submit");
	o.data[2] = 4;
	expect_decode(o.data, o.len, ING_EVERSION,
	              "command job_submit version 4 is not supported (this node knows 1..3)");
	mp_out_free(&o);
	msgpack_zone_free(z);
}

static void test_validate_params(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_JOB_SUBMIT);
	expect_valid(&c);
	const char *bad[] = {"", "1abc", "a-b", "a.b", "a b", "é"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = sample(CMD_JOB_SUBMIT);
		params2[0].key = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "command job_submit: params: invalid name");
	}
	c = sample(CMD_JOB_SUBMIT);
	params2[0].key = fill(ING_NAME_MAX + 1, 'P');
	expect_invalid(&c, ING_EINVAL, "params: invalid name");
	params2[0].key = fill(ING_NAME_MAX, 'P');
	expect_valid(&c);
	c = sample(CMD_JOB_SUBMIT);
	params2[1].key = S("GAIN");
	expect_invalid(&c, ING_EINVAL, "params: name 'GAIN' is repeated");
	c = sample(CMD_JOB_SUBMIT);
	params2[0].value = fill(ING_ARG_MAX + 1, 'v');
	expect_invalid(&c, ING_ETOOBIG, "params: value");
	params2[0].value = fill(ING_ARG_MAX, 'v');
	expect_valid(&c);
	params2[0].value = (struct ing_str){"a\0b", 3};
	expect_invalid(&c, ING_EINVAL, "params: value: contains a NUL byte");

	struct rec_kv many[ING_MAX_ENV + 1];
	char names[ING_MAX_ENV + 1][8];
	for (int i = 0; i <= ING_MAX_ENV; i++) {
		snprintf(names[i], sizeof(names[i]), "P%d", i);
		many[i] = (struct rec_kv){S(names[i]), S("x")};
	}
	c = sample(CMD_JOB_SUBMIT);
	c.u.job_submit.params = many;
	c.u.job_submit.nparams = ING_MAX_ENV;
	expect_valid(&c);
	c.u.job_submit.nparams = ING_MAX_ENV + 1;
	expect_invalid(&c, ING_ETOOBIG, "command job_submit: params: 33 exceeds 32");
	c.u.job_submit.nparams = 0;
	expect_valid(&c);
}

static void test_validate_submit(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_JOB_SUBMIT);
	c.u.job_submit.priority = ING_MAX_PRIORITY;
	expect_valid(&c);
	c.u.job_submit.priority = ING_MAX_PRIORITY + 1;
	expect_invalid(&c, ING_EINVAL, "command job_submit: priority");
	c = sample(CMD_JOB_SUBMIT);
	c.u.job_submit.max_attempts = 0;
	expect_invalid(&c, ING_EINVAL, "max_attempts");
	c.u.job_submit.max_attempts = ING_MAX_ATTEMPTS + 1;
	expect_invalid(&c, ING_EINVAL, "max_attempts");
	c.u.job_submit.max_attempts = ING_MAX_ATTEMPTS;
	expect_valid(&c);
	c = sample(CMD_JOB_SUBMIT);
	c.u.job_submit.nsources = 0;
	expect_invalid(&c, ING_EINVAL, "command job_submit: sources");

	struct cmd_file files[ING_MAX_SOURCES + 1];
	char names[ING_MAX_SOURCES + 1][8];
	for (int i = 0; i <= ING_MAX_SOURCES; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d.c", i);
		files[i] = (struct cmd_file){S(names[i]), S("")};
	}
	c.u.job_submit.sources = files;
	c.u.job_submit.nsources = ING_MAX_SOURCES;
	expect_valid(&c);
	c.u.job_submit.nsources = ING_MAX_SOURCES + 1;
	expect_invalid(&c, ING_ETOOBIG, "sources");
	c.u.job_submit.nsources = 2;
	files[1].path = files[0].path;
	expect_invalid(&c, ING_EINVAL, "sources: path 'f0.c' is repeated");
	files[1].path = S("/etc/passwd");
	expect_invalid(&c, ING_EINVAL, "sources: invalid path");
	files[1].path = S("../up.c");
	expect_invalid(&c, ING_EINVAL, "sources: invalid path");
	files[1].path = S("ok/deep/name.c");
	files[1].data = fill(ING_SOURCE_MAX_BYTES + 1, 'x');
	expect_invalid(&c, ING_ETOOBIG, "sources");
	files[1].data = fill(ING_SOURCE_MAX_BYTES, 'x');
	expect_valid(&c);
}

static void test_validate_stage_finish(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_JOB_STAGE_FINISH);
	c.u.job_stage_finish.log = fill(ING_SOURCE_MAX_BYTES + 1, 'l');
	expect_invalid(&c, ING_ETOOBIG, "command job_stage_finish: log");
	c.u.job_stage_finish.has_log = false;
	c.u.job_stage_finish.log = S("x");
	expect_invalid(&c, ING_EINVAL, "log");

	c = sample(CMD_JOB_STAGE_FINISH);
	struct cmd_file files[ING_MAX_OUTPUTS + 1];
	char names[ING_MAX_OUTPUTS + 1][8];
	for (int i = 0; i <= ING_MAX_OUTPUTS; i++) {
		snprintf(names[i], sizeof(names[i]), "o%d", i);
		files[i] = (struct cmd_file){S(names[i]), S("")};
	}
	c.u.job_stage_finish.outputs = files;
	c.u.job_stage_finish.noutputs = ING_MAX_OUTPUTS;
	expect_valid(&c);
	c.u.job_stage_finish.noutputs = ING_MAX_OUTPUTS + 1;
	expect_invalid(&c, ING_ETOOBIG, "outputs");
	c.u.job_stage_finish.noutputs = 2;
	files[1].path = files[0].path;
	expect_invalid(&c, ING_EINVAL, "outputs: path 'o0' is repeated");
	files[1].path = S("a//b");
	expect_invalid(&c, ING_EINVAL, "outputs: invalid path");
	files[1].path = S("b");
	files[1].data = fill(ING_SOURCE_MAX_BYTES + 1, 'x');
	expect_invalid(&c, ING_ETOOBIG, "outputs");

	/* Version 2's `then`, outcome and message. */
	c = sample(CMD_JOB_STAGE_FINISH);
	c.u.job_stage_finish.then = 3;
	expect_invalid(&c, ING_EINVAL, "then: 3 is not 0 (none), 1 (next stage) or 2 (finish)");
	c.u.job_stage_finish.then = CMD_THEN_NEXT;
	expect_invalid(&c, ING_EINVAL, "no next stage after a stage that failed");
	c.u.job_stage_finish.exit_code = 0;
	expect_valid(&c);
	c.u.job_stage_finish.stage = ING_MAX_STAGES - 1;
	expect_invalid(&c, ING_EINVAL, "is the last one");
	c.u.job_stage_finish.stage = 0;
	c.u.job_stage_finish.outcome = REC_JOB_FAILED;
	expect_invalid(&c, ING_EINVAL, "outcome and message are only for then 2");
	c.u.job_stage_finish.outcome = 0;
	c.u.job_stage_finish.message = S("x");
	expect_invalid(&c, ING_EINVAL, "outcome and message are only for then 2");
	c.u.job_stage_finish.then = CMD_THEN_FINISH;
	c.u.job_stage_finish.outcome = 0;
	expect_invalid(&c, ING_EINVAL, "outcome: 0 is not 3 (succeeded)");
	c.u.job_stage_finish.outcome = REC_JOB_SUCCEEDED;
	expect_valid(&c);
	c.u.job_stage_finish.exit_code = 2;
	expect_invalid(&c, ING_EINVAL, "cannot succeed");
	c.u.job_stage_finish.outcome = REC_JOB_FAILED;
	expect_valid(&c);
	c.u.job_stage_finish.message = fill(ING_MESSAGE_MAX + 1, 'm');
	expect_invalid(&c, ING_ETOOBIG, "message");
}

static void test_validate_settings_and_retention(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_SETTING_PUT);
	expect_valid(&c);
	c.u.setting_put.name = S("dedupe_window_ms");
	expect_valid(&c);
	c.u.setting_put.value = 0; /* for ever */
	expect_valid(&c);
	c.u.setting_put.value = 999;
	expect_invalid(&c, ING_EINVAL, "value: 999 ms is not 0 (for ever) or 1000..");
	c.u.setting_put.value = CMD_SETTING_MAX_MS + 1;
	expect_invalid(&c, ING_EINVAL, "value:");
	c.u.setting_put.value = 1000;
	c.u.setting_put.name = S("retention");
	expect_invalid(&c, ING_EINVAL, "name: 'retention' is not a setting");
	c = sample(CMD_RETENTION_RUN);
	c.u.retention_run.max_jobs = 0;
	expect_invalid(&c, ING_EINVAL, "max_jobs: 0 not in 1..10000");
	c.u.retention_run.max_jobs = CMD_RETENTION_MAX_JOBS + 1;
	expect_invalid(&c, ING_EINVAL, "max_jobs");
	c.u.retention_run.max_jobs = CMD_RETENTION_MAX_JOBS;
	expect_valid(&c);
}

/* A version-1 job_stage_finish (written before version 2) decodes as the
 * stage's end alone. */
static void test_decode_stage_finish_v1(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone *z = msgpack_zone_new(1024);
	struct cmd d;
	struct ing_error e;
	mp_out_init(&o);
	msgpack_pack_array(&o.pk, 11);
	msgpack_pack_uint64(&o.pk, CMD_JOB_STAGE_FINISH);
	msgpack_pack_uint64(&o.pk, 1);
	msgpack_pack_uint64(&o.pk, 1700000000000ull);
	mp_pack_cstr(&o.pk, "");
	msgpack_pack_uint64(&o.pk, 4);  /* job */
	msgpack_pack_uint64(&o.pk, 1);  /* attempt */
	msgpack_pack_uint64(&o.pk, 0);  /* stage */
	msgpack_pack_int64(&o.pk, 0);   /* exit_code */
	msgpack_pack_uint64(&o.pk, 12); /* duration_ms */
	msgpack_pack_nil(&o.pk);        /* log */
	msgpack_pack_array(&o.pk, 0);   /* outputs */
	mp_out_pad8(&o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_int_equal(d.version, 1);
	assert_int_equal(d.u.job_stage_finish.job, 4);
	assert_false(d.u.job_stage_finish.started);
	assert_int_equal(d.u.job_stage_finish.then, CMD_THEN_NONE);
	assert_int_equal(d.u.job_stage_finish.outcome, 0);
	assert_int_equal(d.u.job_stage_finish.message.len, 0);
	/* ... and the v2 fields are not allowed in it. */
	mp_out_reset(&o);
	msgpack_pack_array(&o.pk, 12);
	msgpack_pack_uint64(&o.pk, CMD_JOB_STAGE_FINISH);
	msgpack_pack_uint64(&o.pk, 1);
	msgpack_pack_uint64(&o.pk, 1700000000000ull);
	mp_pack_cstr(&o.pk, "");
	msgpack_pack_uint64(&o.pk, 4);
	msgpack_pack_uint64(&o.pk, 1);
	msgpack_pack_uint64(&o.pk, 0);
	msgpack_pack_int64(&o.pk, 0);
	msgpack_pack_uint64(&o.pk, 12);
	msgpack_pack_nil(&o.pk);
	msgpack_pack_array(&o.pk, 0);
	msgpack_pack_true(&o.pk);
	mp_out_pad8(&o);
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), ING_EMALFORMED);
	mp_out_free(&o);
	msgpack_zone_free(z);
}

static void test_validate_texts(void **state)
{
	(void)state;
	struct cmd c = sample(CMD_JOB_FINISH);
	uint8_t bad_outcomes[] = {REC_JOB_QUEUED, REC_JOB_ASSIGNED, REC_JOB_RUNNING, 6, 255};
	for (size_t i = 0; i < sizeof(bad_outcomes); i++) {
		c.u.job_finish.outcome = bad_outcomes[i];
		expect_invalid(&c, ING_EINVAL, "command job_finish: outcome");
	}
	c = sample(CMD_JOB_FINISH);
	c.u.job_finish.message = fill(ING_MESSAGE_MAX, 'm');
	expect_valid(&c);
	c.u.job_finish.message = fill(ING_MESSAGE_MAX + 1, 'm');
	expect_invalid(&c, ING_ETOOBIG, "command job_finish: message");
	c = sample(CMD_JOB_CANCEL);
	c.u.job_cancel.reason = fill(ING_MESSAGE_MAX + 1, 'm');
	expect_invalid(&c, ING_ETOOBIG, "command job_cancel: reason");
	c = sample(CMD_JOB_REQUEUE);
	c.u.job_requeue.reason = fill(ING_MESSAGE_MAX + 1, 'm');
	expect_invalid(&c, ING_ETOOBIG, "command job_requeue: reason");
	c = sample(CMD_NODE_DOWN);
	c.u.node_down.reason = fill(ING_MESSAGE_MAX + 1, 'm');
	expect_invalid(&c, ING_ETOOBIG, "command node_down: reason");
	c.u.node_down.reason = (struct ing_str){"x\0", 2};
	expect_invalid(&c, ING_EINVAL, "command node_down: reason");
}

static void test_validate_member(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",          "1.2.3:80",      "1.2.3.4",     "256.1.1.1:80", "01.2.3.4:80",
	    "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:80x", "a.b.c.d:1",    "1.2.3.4:",
	    ":80",       "1.2.3.4.5:80",  "1.2.3.4:080", "-1.2.3.4:80",  "1.2.3.4 :80",
	    "[::1]:80",  "localhost:80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(cmd_address_valid(S(bad[i])));
		struct cmd c = sample(CMD_MEMBER_PUT);
		c.u.member_put.member.raft_address = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "command member_put: raft_address");
		c = sample(CMD_MEMBER_PUT);
		c.u.member_put.member.api_address = S(bad[i]);
		expect_invalid(&c, ING_EINVAL, "command member_put: api_address");
	}
	struct ing_str none = {NULL, 0};
	assert_false(cmd_address_valid(none));
	assert_false(cmd_name_valid(none));
	assert_false(cmd_path_valid(none));
	const char *good[] = {"0.0.0.0:1", "255.255.255.255:65535", "127.0.0.1:7001",
	                      "10.0.10.100:8080"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(cmd_address_valid(S(good[i])));
	struct cmd c = sample(CMD_MEMBER_PUT);
	c.u.member_put.member.role = REC_ROLE_COUNT;
	expect_invalid(&c, ING_EINVAL, "command member_put: role");
}

static const struct ing_str *str_at(const void *list, uint32_t i)
{
	return &((const struct ing_str *)list)[i];
}

static void test_name_and_path_rules(void **state)
{
	(void)state;
	assert_true(cmd_name_valid(S("a")));
	assert_true(cmd_name_valid(S("_x")));
	assert_true(cmd_name_valid(S("0.9-rc_1")));
	assert_false(cmd_name_valid(S("")));
	assert_false(cmd_name_valid(S(".a")));
	assert_false(cmd_name_valid(S("-a")));
	assert_false(cmd_name_valid(S("a+b")));
	assert_true(cmd_name_valid(fill(ING_NAME_MAX, 'a')));
	assert_false(cmd_name_valid(fill(ING_NAME_MAX + 1, 'a')));

	assert_true(cmd_path_valid(S("a")));
	assert_true(cmd_path_valid(S("a/b/c.txt")));
	assert_true(cmd_path_valid(S("..a/b..")));
	assert_true(cmd_path_valid(S("a/...")));
	assert_false(cmd_path_valid(S("")));
	assert_false(cmd_path_valid(S("/a")));
	assert_false(cmd_path_valid(S("a/..")));
	assert_false(cmd_path_valid(S("../a")));
	assert_false(cmd_path_valid(S("a/../b")));
	assert_false(cmd_path_valid(S("a//b")));
	assert_false(cmd_path_valid(S("a/")));
	assert_false(cmd_path_valid((struct ing_str){"a\0", 2}));
	/* Accepted by cmd_validate (older logs replay as they did), refused
	 * where requests enter: a '.' component, a file that is another's
	 * directory. */
	assert_true(cmd_path_valid(S("a/.")));
	struct ing_str ok[] = {S("a/b"), S("a/c"), S("ab")}, dot[] = {S("x"), S("a/./b")},
	               nested[] = {S("d/f"), S("d")};
	struct ing_error e;
	assert_int_equal(cmd_paths_layout("t", "f", 3, str_at, ok, &e), 0);
	assert_int_equal(cmd_paths_layout("t", "f", 2, str_at, dot, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "'a/./b' has a '.' component"));
	assert_int_equal(cmd_paths_layout("t", "f", 2, str_at, nested, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "'d' cannot be both a file and the directory of 'd/f'"));
	assert_true(cmd_path_valid(fill(ING_PATH_MAX, 'p')));
	assert_false(cmd_path_valid(fill(ING_PATH_MAX + 1, 'p')));
}

/*
 * The principal in the header: [request_id, principal] in the versions
 * that carry one, round-tripping byte for byte; refused (naming it) when
 * empty, in an older version, in a type that never carries one, with a
 * control byte, over the bound, or in a malformed pair.
 */
static void test_principal_header(void **state)
{
	(void)state;
	struct mp_out o, m;
	unsigned carrying = 0;
	for (size_t i = 0; i < NTYPES; i++) {
		struct cmd c = sample(all_types[i]);
		c.principal = S("jwt:alice@example.org");
		if (cmd_type_principal_version(c.type) == 0) {
			expect_invalid(&c, ING_EINVAL, "principal: version");
			continue;
		}
		carrying++;
		roundtrip(&c);
		c.request_id = S("");
		roundtrip(&c);
		c.principal = fill(ING_PRINCIPAL_MAX, 'p');
		roundtrip(&c);
		c.principal = fill(ING_PRINCIPAL_MAX + 1, 'p');
		expect_invalid(&c, ING_ETOOBIG, "principal: 128 bytes exceeds 127");
		c.principal = (struct ing_str){"tok\x01en", 6};
		expect_invalid(&c, ING_EINVAL, "principal: byte 3 is a control character");
	}
	assert_int_equal(carrying, 12);

	/* The pair's layout. */
	struct cmd c = sample(CMD_JOB_SUBMIT);
	c.principal = S("token:7");
	encode_ok(&c, &o);
	msgpack_zone *z = msgpack_zone_new(1024);
	msgpack_object obj;
	size_t off = 0;
	msgpack_unpack(o.data, o.len, &off, z, &obj);
	const msgpack_object *h = &obj.via.array.ptr[3];
	assert_int_equal(h->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(h->via.array.size, 2);
	assert_memory_equal(h->via.array.ptr[1].via.str.ptr, "token:7", 7);

	msgpack_object pair[3] = {obj_str(S("req-42_x")), obj_str(S("")), obj_str(S("x"))};
	msgpack_object with = obj_array(pair, 2);
	rebuild(&o, 3, &with, &m);
	expect_decode(m.data, m.len, ING_EMALFORMED, "principal': empty");
	mp_out_free(&m);
	with = obj_array(pair, 1);
	rebuild(&o, 3, &with, &m);
	expect_decode(m.data, m.len, ING_EMALFORMED, "command job_submit");
	mp_out_free(&m);
	pair[1] = obj_str(S("token:7"));
	with = obj_array(pair, 3);
	rebuild(&o, 3, &with, &m);
	expect_decode(m.data, m.len, ING_EMALFORMED, "command job_submit");
	mp_out_free(&m);
	pair[1] = obj_u64(7);
	with = obj_array(pair, 2);
	rebuild(&o, 3, &with, &m);
	expect_decode(m.data, m.len, ING_EMALFORMED, "principal");
	mp_out_free(&m);
	pair[1] = obj_str((struct ing_str){"a\x7f", 2});
	rebuild(&o, 3, &with, &m);
	expect_decode(m.data, m.len, ING_EINVAL, "control character");
	mp_out_free(&m);
	/* The same pair in job_submit v2 (before principals): malformed. */
	msgpack_object v2 = obj_u64(2);
	rebuild(&o, 1, &v2, &m);
	expect_decode(m.data, m.len, ING_EMALFORMED, "version 2 carries no principal");
	mp_out_free(&m);
	mp_out_free(&o);
	msgpack_zone_free(z);
}

/* setting_put v1 by hand: [50, 1, time_ms, request_id, name, value]
 * (before principals); `principal` puts [request_id, principal] in the
 * header (malformed at version 1). */
static void pack_v1_setting_put(struct mp_out *o, const char *principal)
{
	msgpack_packer *pk = &o->pk;
	mp_out_init(o);
	msgpack_pack_array(pk, 6);
	msgpack_pack_uint64(pk, CMD_SETTING_PUT);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_uint64(pk, 1700000000123ull);
	if (principal != NULL) {
		msgpack_pack_array(pk, 2);
		mp_pack_cstr(pk, "req-1");
		mp_pack_cstr(pk, principal);
	} else {
		mp_pack_cstr(pk, "req-1");
	}
	mp_pack_cstr(pk, CMD_SETTING_JOB_RETENTION);
	msgpack_pack_uint64(pk, 604800000);
	mp_out_pad8(o);
}

/*
 * setting_put v2 (the audit trail, issue 12 item 10) has v1's fields: a v1
 * entry of an older log still decodes, as version 1 with no principal; v2
 * decodes with or without a principal; a principal at version 1 is refused
 * by decode and by validate.
 */
static void test_setting_put_versions(void **state)
{
	(void)state;
	struct mp_out o, again;
	struct ing_error e;
	struct cmd c, d;
	msgpack_zone *z = msgpack_zone_new(1024);

	assert_int_equal(cmd_type_version(CMD_SETTING_PUT), 2);
	assert_int_equal(cmd_type_min_version(CMD_SETTING_PUT), 1);
	assert_int_equal(cmd_type_principal_version(CMD_SETTING_PUT), 2);

	pack_v1_setting_put(&o, NULL);
	if (cmd_decode(o.data, o.len, z, &c, &e) != 0)
		fail_msg("decode: %s", e.msg);
	assert_int_equal(c.version, 1);
	assert_int_equal(c.principal.len, 0);
	assert_true(ing_str_eq(c.request_id, S("req-1")));
	assert_true(ing_str_eq(c.u.setting_put.name, S(CMD_SETTING_JOB_RETENTION)));
	assert_int_equal(c.u.setting_put.value, 604800000);
	/* The same bytes at version 2: v1's fields, no principal. */
	o.data[2] = 2;
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_int_equal(d.version, 2);
	assert_int_equal(d.principal.len, 0);
	assert_int_equal(d.u.setting_put.value, 604800000);
	o.data[2] = 3;
	expect_decode(o.data, o.len, ING_EVERSION,
	              "command setting_put version 3 is not supported (this node knows 1..2)");
	/* c's views point into o: onto constants before it goes. */
	c.request_id = S("req-1");
	c.u.setting_put.name = S(CMD_SETTING_JOB_RETENTION);
	mp_out_free(&o);

	/* Re-encoding a v1 writes version 2, the same bytes but that one. */
	encode_ok(&c, &again);
	assert_int_equal((uint8_t)again.data[2], 2);
	pack_v1_setting_put(&o, NULL);
	assert_int_equal(again.len, o.len);
	assert_memory_equal(again.data + 3, o.data + 3, o.len - 3);
	mp_out_free(&again);
	mp_out_free(&o);
	/* A new one (version 0: the current) with a principal round-trips in
	 * the [request_id, principal] header. */
	c.version = 0;
	c.principal = S("token:7");
	encode_ok(&c, &again);
	assert_int_equal((uint8_t)again.data[2], 2);
	assert_int_equal(cmd_decode(again.data, again.len, z, &d, &e), 0);
	assert_int_equal(d.version, 2);
	assert_true(ing_str_eq(d.principal, S("token:7")));
	assert_true(ing_str_eq(d.request_id, S("req-1")));
	assert_true(ing_str_eq(d.u.setting_put.name, S(CMD_SETTING_JOB_RETENTION)));
	mp_out_free(&again);
	roundtrip(&c);

	/* A principal at version 1: malformed in the log, invalid to write. */
	pack_v1_setting_put(&o, "token:7");
	expect_decode(o.data, o.len, ING_EMALFORMED, "version 1 carries no principal");
	o.data[2] = 2;
	assert_int_equal(cmd_decode(o.data, o.len, z, &d, &e), 0);
	assert_true(ing_str_eq(d.principal, S("token:7")));
	mp_out_free(&o);
	c.version = 1;
	expect_invalid(&c, ING_EINVAL, "principal: version 1 carries none");
	msgpack_zone_free(z);
}

static void test_type_table(void **state)
{
	(void)state;
	assert_string_equal(cmd_type_name(CMD_TARGET_PUT), "target_put");
	assert_string_equal(cmd_type_name(CMD_JOB_SUBMIT), "job_submit");
	assert_string_equal(cmd_type_name(CMD_MEMBER_REMOVE), "member_remove");
	assert_string_equal(cmd_type_name(CMD_JOB_EXPIRE), "job_expire");
	assert_int_equal(CMD_JOB_EXPIRE, 18);
	assert_null(cmd_type_name(0));
	assert_null(cmd_type_name(99));
	assert_int_equal(cmd_type_version(CMD_JOB_STAGE_FINISH), 2);
	assert_int_equal(cmd_type_min_version(CMD_JOB_STAGE_FINISH), 1);
	assert_int_equal(cmd_type_version(CMD_TARGET_PUT), 5);
	assert_int_equal(cmd_type_version(CMD_JOB_ASSIGN), 4);
	assert_int_equal(cmd_type_min_version(CMD_JOB_ASSIGN), 1);
	assert_int_equal(cmd_type_version(CMD_NODE_REGISTER), 2);
	assert_int_equal(cmd_type_min_version(CMD_NODE_REGISTER), 1);
	assert_int_equal(cmd_type_min_version(CMD_TARGET_PUT), 1);
	assert_int_equal(cmd_type_version(CMD_JOB_SUBMIT), 3);
	assert_int_equal(cmd_type_min_version(CMD_JOB_SUBMIT), 1);
	assert_int_equal(cmd_type_version(99), 0);
	assert_int_equal(cmd_type_min_version(99), 0);
	assert_int_equal(NTYPES, 24);
	assert_int_equal(CMD_TOKEN_CREATE, 40);
	assert_int_equal(CMD_TOKEN_REVOKE, 41);
	assert_string_equal(cmd_type_name(CMD_TOKEN_REVOKE), "token_revoke");
	assert_int_equal(cmd_type_principal_version(CMD_JOB_SUBMIT), 3);
	assert_int_equal(cmd_type_principal_version(CMD_TARGET_PUT), 5);
	assert_int_equal(cmd_type_principal_version(CMD_MEMBER_PUT), 3);
	assert_int_equal(cmd_type_principal_version(CMD_JOB_ASSIGN), 0);
	assert_int_equal(cmd_type_principal_version(99), 0);
	assert_int_equal(cmd_type_principal_version(CMD_NODE_FORGET), 2);
	assert_int_equal(CMD_SETTING_PUT, 50);
	assert_int_equal(cmd_type_version(CMD_SETTING_PUT), 2);
	assert_int_equal(CMD_RETENTION_RUN, 51);
	assert_string_equal(cmd_type_name(CMD_RETENTION_RUN), "retention_run");
	assert_string_equal(cmd_type_name(CMD_NODE_FORGET), "node_forget");
	assert_int_equal(CMD_NODE_FORGET, 24);
	assert_string_equal(cmd_type_name(CMD_CLUSTER_INIT), "cluster_init");
	assert_int_equal(CMD_CLUSTER_EVENT, 33);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_roundtrip_all, free_allocs),
	    cmocka_unit_test_teardown(test_validate_settings_and_retention, free_allocs),
	    cmocka_unit_test_teardown(test_decode_stage_finish_v1, free_allocs),
	    cmocka_unit_test_teardown(test_spec_only, free_allocs),
	    cmocka_unit_test_teardown(test_padding_sweep, free_allocs),
	    cmocka_unit_test_teardown(test_truncation, free_allocs),
	    cmocka_unit_test_teardown(test_unknown_type_and_version, free_allocs),
	    cmocka_unit_test_teardown(test_wrong_field_types, free_allocs),
	    cmocka_unit_test_teardown(test_framing, free_allocs),
	    cmocka_unit_test_teardown(test_oversize, free_allocs),
	    cmocka_unit_test_teardown(test_huge_lengths, free_allocs),
	    cmocka_unit_test_teardown(test_views_into_input, free_allocs),
	    cmocka_unit_test_teardown(test_validate_header, free_allocs),
	    cmocka_unit_test_teardown(test_validate_ids, free_allocs),
	    cmocka_unit_test_teardown(test_validate_names, free_allocs),
	    cmocka_unit_test_teardown(test_validate_caps_labels, free_allocs),
	    cmocka_unit_test_teardown(test_validate_target, free_allocs),
	    cmocka_unit_test_teardown(test_validate_target_v2_fields, free_allocs),
	    cmocka_unit_test_teardown(test_decode_target_put_v1, free_allocs),
	    cmocka_unit_test_teardown(test_validate_submit, free_allocs),
	    cmocka_unit_test_teardown(test_decode_job_submit_v1, free_allocs),
	    cmocka_unit_test_teardown(test_validate_params, free_allocs),
	    cmocka_unit_test_teardown(test_validate_stage_finish, free_allocs),
	    cmocka_unit_test_teardown(test_validate_texts, free_allocs),
	    cmocka_unit_test_teardown(test_validate_member, free_allocs),
	    cmocka_unit_test_teardown(test_name_and_path_rules, free_allocs),
	    cmocka_unit_test_teardown(test_type_table, free_allocs),
	    cmocka_unit_test_teardown(test_principal_header, free_allocs),
	    cmocka_unit_test_teardown(test_setting_put_versions, free_allocs),
	    cmocka_unit_test_teardown(test_decode_before_gpus, free_allocs),
	    cmocka_unit_test_teardown(test_job_assign_ahead, free_allocs),
	    cmocka_unit_test_teardown(test_decode_target_put_v3, free_allocs),
	    cmocka_unit_test_teardown(test_validate_gpus, free_allocs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
