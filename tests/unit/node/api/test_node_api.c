/*
 * test_node_api.c - the API operations of a real single-node ingotd
 * (node_start: real LMDB, real libraft on loopback, real rpc server) driven
 * through the real client library on the same loop: the result shapes of
 * docs/api.md, and a clear error naming the argument for every kind of bad
 * input (unknown operation, unknown or missing argument, wrong type, out of
 * range, unknown ids), with the node serving normally afterwards.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/text.h"
#include "common/mp.h"
#include "node/node.h"
#include "rpc/args.h"
#include "rpc/client.h"
#include "tests/lib/testutil.h"

struct env {
	uv_loop_t loop;
	char dir[256];
	char api[64], raft[64]; /* the node's addresses */
	struct node *node;
	struct rpc_client *client;
	bool stopped;
	msgpack_zone *zone;
	/* last call */
	bool done;
	int status;
	struct ing_error err;
	msgpack_object result;
	unsigned nevents;
	char events[16][32];
};

static uint16_t free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void on_stopped(void *data, int status)
{
	struct env *env = data;
	assert_int_equal(status, 0);
	env->stopped = true;
}

static void on_reply(struct rpc_request *r, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	struct env *env = r->data;
	env->done = true;
	env->status = status;
	if (err != NULL)
		env->err = *err;
	if (status == 0) {
		/* deep copy into the test's zone */
		msgpack_sbuffer sb;
		msgpack_packer pk;
		size_t off = 0;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, *result);
		char *copy = msgpack_zone_malloc(env->zone, sb.size);
		memcpy(copy, sb.data, sb.size);
		assert_int_equal(msgpack_unpack(copy, sb.size, &off, env->zone, &env->result),
		                 MSGPACK_UNPACK_SUCCESS);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void on_event(struct rpc_request *r, const msgpack_object *ev)
{
	struct env *env = r->data;
	struct ing_str kind;
	assert_int_equal(rpc_arg_str(ev, "kind", 31, true, &kind, NULL), 0);
	assert_true(env->nevents < 16);
	snprintf(env->events[env->nevents++], 32, "%.*s", ING_STR_FMT(kind));
}

/* Calls op with args given as a msgpack map built by the caller (NULL: {}). */
static int call_id(struct env *env, const char *op, struct mp_out *args, unsigned flags,
                   const char *request_id)
{
	struct rpc_request r = {.data = env, .cb = on_reply, .event_cb = on_event};
	r.request_id = request_id;
	env->done = false;
	env->nevents = 0;
	ing_error_clear(&env->err);
	assert_int_equal(rpc_client_call(env->client, &r, op, args != NULL ? args->data : NULL,
	                                 args != NULL ? args->len : 0, flags),
	                 0);
	while (!env->done)
		uv_run(&env->loop, UV_RUN_ONCE);
	if (args != NULL)
		mp_out_free(args);
	return env->status;
}

static int call(struct env *env, const char *op, struct mp_out *args)
{
	return call_id(env, op, args, 0, NULL);
}

/* Builds a map from (key, type, value) triples: 's' str, 'u' uint, 'b' bool,
 * 'n' nil, 'r' raw msgpack (struct mp_out *). */
static struct mp_out *map(unsigned n, ...)
{
	static struct mp_out o;
	va_list ap;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, n);
	va_start(ap, n);
	for (unsigned i = 0; i < n; i++) {
		mp_pack_cstr(&o.pk, va_arg(ap, const char *));
		switch (va_arg(ap, int)) {
		case 's': mp_pack_cstr(&o.pk, va_arg(ap, const char *)); break;
		case 'u': msgpack_pack_uint64(&o.pk, va_arg(ap, uint64_t)); break;
		case 'b':
			va_arg(ap, int) ? msgpack_pack_true(&o.pk) : msgpack_pack_false(&o.pk);
			break;
		case 'n': msgpack_pack_nil(&o.pk); break;
		case 'r': {
			struct mp_out *raw = va_arg(ap, struct mp_out *);
			mp_out_raw(&o, raw->data, raw->len);
			mp_out_free(raw);
			free(raw);
			break;
		}
		default: fail();
		}
	}
	va_end(ap);
	return &o;
}

/* A map {k: v} of strings, as a raw value for map(...'r'...). */
static struct mp_out *map_raw(unsigned n, const char *k, const char *v)
{
	struct mp_out *o = malloc(sizeof(*o));
	mp_out_init(o);
	msgpack_pack_map(&o->pk, n);
	mp_pack_cstr(&o->pk, k);
	mp_pack_cstr(&o->pk, v);
	return o;
}

/* [{path, data}] with one source. */
static struct mp_out *sources(const char *path, const char *data)
{
	struct mp_out *o = malloc(sizeof(*o));
	mp_out_init(o);
	msgpack_pack_array(&o->pk, 1);
	msgpack_pack_map(&o->pk, 2);
	mp_pack_cstr(&o->pk, "path");
	mp_pack_cstr(&o->pk, path);
	mp_pack_cstr(&o->pk, "data");
	mp_pack_bin(&o->pk, data, strlen(data));
	return o;
}

static struct mp_out *stages(void)
{
	struct mp_out *o = malloc(sizeof(*o));
	mp_out_init(o);
	msgpack_pack_array(&o->pk, 1);
	msgpack_pack_map(&o->pk, 3);
	mp_pack_cstr(&o->pk, "name");
	mp_pack_cstr(&o->pk, "compile");
	mp_pack_cstr(&o->pk, "argv");
	msgpack_pack_array(&o->pk, 2);
	mp_pack_cstr(&o->pk, "cc");
	mp_pack_cstr(&o->pk, "{source}");
	mp_pack_cstr(&o->pk, "outputs");
	msgpack_pack_array(&o->pk, 1);
	mp_pack_cstr(&o->pk, "a.out");
	return o;
}

static void expect_error(struct env *env, int rv, int code, const char *needle)
{
	if (rv != code)
		fail_msg("expected %s, got %s: %s", ing_err_name(code), ing_err_name(rv),
		         env->err.msg);
	if (strstr(env->err.msg, needle) == NULL)
		fail_msg("message '%s' does not mention '%s'", env->err.msg, needle);
}

static uint64_t get_u64(struct env *env, const char *key)
{
	uint64_t v;
	assert_int_equal(rpc_arg_u64(&env->result, key, UINT64_MAX, true, &v, NULL), 0);
	return v;
}

static bool str_is(struct env *env, const char *key, const char *want)
{
	struct ing_str s;
	return rpc_arg_str(&env->result, key, 1024, true, &s, NULL) == 0 && ing_str_eq_c(s, want);
}

static int setup_node(void **state, bool allow_network_targets)
{
	struct env *env = calloc(1, sizeof(*env));
	struct node_config cfg;
	struct ing_error e;
	char api[64];

	if (getenv("INGOT_TEST_LOG") == NULL)
		ing_log_set_level(ING_LOG_LEVEL_WARN);
	uv_loop_init(&env->loop);
	tu_tmpdir(env->dir, sizeof(env->dir));
	node_config_defaults(&cfg);
	cfg.id = 1;
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/data", env->dir);
	snprintf(cfg.raft_address, sizeof(cfg.raft_address), "127.0.0.1:%u", free_port());
	snprintf(api, sizeof(api), "127.0.0.1:%u", free_port());
	snprintf(cfg.api_address, sizeof(cfg.api_address), "%s", api);
	snprintf(env->api, sizeof(env->api), "%s", api);
	snprintf(env->raft, sizeof(env->raft), "%s", cfg.raft_address);
	cfg.npeers = 1;
	cfg.peers[0].id = 1;
	snprintf(cfg.peers[0].raft_address, NODE_ADDRESS_MAX, "%s", cfg.raft_address);
	snprintf(cfg.peers[0].api_address, NODE_ADDRESS_MAX, "%s", api);
	cfg.store_sync = STORE_SYNC_NOMETA;
	/* The API alone: this node runs no work, so jobs stay where the
	 * requests put them. */
	cfg.slots = 0;
	cfg.probe = false;
	cfg.allow_network_targets = allow_network_targets;
	assert_int_equal(node_config_check(&cfg, "test", &e), 0);
	if (node_start(&env->loop, &cfg, on_stopped, env, &env->node, &e) != 0)
		fail_msg("node_start: %s", e.msg);
	const char *eps[] = {api};
	struct rpc_client_options o = {.endpoints = eps, .nendpoints = 1, .timeout_ms = 10000};
	assert_int_equal(rpc_client_new(&env->loop, &o, &env->client, &e), 0);
	env->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	/* a target for the tests; also waits for the node to lead */
	assert_int_equal(
	    call(env, "target.put", map(2, "name", 's', "cc", "stages", 'r', stages())), 0);
	*state = env;
	return 0;
}

static int setup(void **state)
{
	return setup_node(state, false);
}

static int setup_allowing_network(void **state)
{
	return setup_node(state, true);
}

static void client_closed(void *data)
{
	*(bool *)data = true;
}

static int teardown(void **state)
{
	struct env *env = *state;
	bool closed = false;
	rpc_client_close(env->client, client_closed, &closed);
	node_stop(env->node);
	uv_run(&env->loop, UV_RUN_DEFAULT);
	assert_true(closed);
	assert_true(env->stopped);
	assert_int_equal(uv_loop_close(&env->loop), 0);
	msgpack_zone_free(env->zone);
	tu_rmrf(env->dir);
	free(env);
	return 0;
}

static void test_bad_requests(void **state)
{
	struct env *env = *state;

	expect_error(env, call(env, "job.explode", NULL), ING_EINVAL,
	             "unknown operation 'job.explode'");
	expect_error(env, call(env, "job.get", NULL), ING_EINVAL, "'id' is required");
	expect_error(env, call(env, "job.get", map(1, "id", 's', "seven")), ING_EINVAL, "'id'");
	expect_error(env,
	             call(env, "job.get", map(2, "id", 'u', (uint64_t)1, "colour", 's', "red")),
	             ING_EINVAL, "unknown argument 'colour'");
	expect_error(env, call(env, "job.get", map(1, "id", 'u', (uint64_t)999)), ING_ENOTFOUND,
	             "job 999");
	expect_error(env, call(env, "job.cancel", map(1, "id", 'u', (uint64_t)999)), ING_ENOTFOUND,
	             "job 999");
	expect_error(env, call(env, "job.list", map(1, "state", 's', "sleeping")), ING_EINVAL,
	             "'sleeping'");
	expect_error(env, call(env, "job.submit", map(1, "target", 's', "cc")), ING_EINVAL,
	             "'sources' is required");
	expect_error(env,
	             call(env, "job.submit",
	                  map(3, "target", 's', "cc", "sources", 'r', sources("a.c", "x"),
	                      "priority", 'u', (uint64_t)101)),
	             ING_EINVAL, "'priority'");
	expect_error(env,
	             call(env, "job.submit",
	                  map(2, "target", 's', "nope", "sources", 'r', sources("a.c", "x"))),
	             ING_ENOTFOUND, "target 'nope'");
	expect_error(
	    env,
	    call(env, "job.submit",
	         map(2, "target", 's', "cc", "sources", 'r', sources("../etc/passwd", "x"))),
	    ING_EINVAL, "path");
	expect_error(env, call(env, "target.put", map(1, "name", 's', "bad name!")), ING_EINVAL,
	             "'stages' is required");
	expect_error(
	    env, call(env, "target.put", map(2, "name", 's', "bad name!", "stages", 'r', stages())),
	    ING_EINVAL, "name");
	expect_error(env, call(env, "target.get", map(1, "name", 's', "nope")), ING_ENOTFOUND,
	             "'nope'");
	expect_error(env, call(env, "target.delete", map(1, "name", 'u', (uint64_t)3)), ING_EINVAL,
	             "'name'");

	/* still serving */
	assert_int_equal(call(env, "target.get", map(1, "name", 's', "cc")), 0);
	assert_true(str_is(env, "name", "cc"));
	assert_int_equal(get_u64(env, "revision"), 1);
}

static bool bool_is(struct env *env, const char *key, bool want)
{
	bool b;
	return rpc_arg_bool(&env->result, key, true, &b, NULL) == 0 && b == want;
}

/* network: true is refused where the node does not allow it, before
 * anything is proposed (the target keeps its revision); disk_bytes and
 * limits.processes are checked; without network the put goes through. */
static void test_target_sandbox_settings(void **state)
{
	struct env *env = *state;

	expect_error(env,
	             call(env, "target.put",
	                  map(3, "name", 's', "cc", "stages", 'r', stages(), "network", 'b', 1)),
	             ING_EDENIED,
	             "argument 'network': only an admin may give a target the host's network, and "
	             "node 1 does not allow it (config allow_network_targets: false)");
	expect_error(env,
	             call(env, "target.put",
	                  map(3, "name", 's', "net", "stages", 'r', stages(), "network", 'b', 1)),
	             ING_EDENIED, "allow_network_targets");
	expect_error(env, call(env, "target.get", map(1, "name", 's', "net")), ING_ENOTFOUND,
	             "'net'");
	assert_int_equal(call(env, "target.get", map(1, "name", 's', "cc")), 0);
	assert_int_equal(get_u64(env, "revision"), 1);
	assert_true(bool_is(env, "network", false));

	expect_error(
	    env,
	    call(env, "target.put",
	         map(3, "name", 's', "cc", "stages", 'r', stages(), "network", 's', "yes")),
	    ING_EINVAL, "'network'");
	expect_error(env,
	             call(env, "target.put",
	                  map(3, "name", 's', "cc", "stages", 'r', stages(), "disk_bytes", 'u',
	                      (uint64_t)4096)),
	             ING_EINVAL, "disk_bytes 4096 not 0 (none) or at least 16777216");

	/* network false needs no permission; disk_bytes is kept. */
	assert_int_equal(call(env, "target.put",
	                      map(4, "name", 's', "cc", "stages", 'r', stages(), "network", 'b', 0,
	                          "disk_bytes", 'u', (uint64_t)(64u << 20))),
	                 0);
	assert_int_equal(call(env, "target.get", map(1, "name", 's', "cc")), 0);
	assert_int_equal(get_u64(env, "revision"), 2);
	assert_int_equal(get_u64(env, "disk_bytes"), 64u << 20);
	assert_true(bool_is(env, "network", false));
}

/* With allow_network_targets the same put is accepted and shown. */
static void test_target_network_allowed(void **state)
{
	struct env *env = *state;
	assert_int_equal(
	    call(env, "target.put",
	         map(3, "name", 's', "net", "stages", 'r', stages(), "network", 'b', 1)),
	    0);
	assert_int_equal(call(env, "target.get", map(1, "name", 's', "net")), 0);
	assert_true(bool_is(env, "network", true));
	assert_int_equal(get_u64(env, "disk_bytes"), 0);
}

static void test_job_lifecycle_shapes(void **state)
{
	struct env *env = *state;
	const char *keys[] = {
	    "id",           "target",      "tenant",           "state",      "attempt",
	    "max_attempts", "node",        "priority",         "created_at", "updated_at",
	    "deadline_at",  "finished_at", "cancel_requested", "error",      "sources",
	    "stages"};

	assert_int_equal(
	    call(env, "job.submit",
	         map(4, "target", 's', "cc", "sources", 'r', sources("fir.c", "int x;"), "priority",
	             'u', (uint64_t)80, "tenant", 's', "radar")),
	    0);
	uint64_t id = get_u64(env, "id");
	assert_int_equal(call(env, "job.get", map(1, "id", 'u', id)), 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (rpc_arg_find(&env->result, keys[i]) == NULL)
			fail_msg("job object lacks '%s'", keys[i]);
	assert_true(str_is(env, "state", "queued"));
	assert_true(str_is(env, "tenant", "radar"));
	assert_int_equal(get_u64(env, "priority"), 80);
	assert_int_equal(rpc_arg_find(&env->result, "node")->type, MSGPACK_OBJECT_NIL);

	/* stale read from the local node gives the same job */
	assert_int_equal(call(env, "job.get", map(2, "id", 'u', id, "stale", 'b', 1)), 0);
	assert_true(str_is(env, "state", "queued"));

	assert_int_equal(call(env, "job.cancel", map(1, "id", 'u', id)), 0);
	assert_true(str_is(env, "state", "cancelled"));
	assert_int_equal(call(env, "job.retry", map(1, "id", 'u', id)), 0);
	assert_true(str_is(env, "state", "queued"));
	assert_int_equal(call(env, "job.events", map(1, "id", 'u', id)), 0);
	assert_int_equal(env->result.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(env->result.via.array.size, 3);
	struct ing_str kind;
	assert_int_equal(rpc_arg_str(&env->result.via.array.ptr[1], "kind", 32, true, &kind, NULL),
	                 0);
	assert_true(ing_str_eq_c(kind, "cancelled"));
}

static void test_list_paging_and_filters(void **state)
{
	struct env *env = *state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    call(env, "job.submit",
		         map(2, "target", 's', "cc", "sources", 'r', sources("a.c", "x"))),
		    0);
	assert_int_equal(call(env, "job.cancel", map(1, "id", 'u', (uint64_t)2)), 0);

	assert_int_equal(call(env, "job.list", map(1, "limit", 'u', (uint64_t)2)), 0);
	const msgpack_object *jobs = rpc_arg_find(&env->result, "jobs");
	assert_int_equal(jobs->via.array.size, 2);
	assert_int_equal(get_u64(env, "next"), 2);
	assert_int_equal(
	    call(env, "job.list", map(2, "after", 'u', (uint64_t)2, "limit", 'u', (uint64_t)10)),
	    0);
	assert_int_equal(rpc_arg_find(&env->result, "jobs")->via.array.size, 3);
	assert_int_equal(rpc_arg_find(&env->result, "next")->type, MSGPACK_OBJECT_NIL);
	assert_int_equal(call(env, "job.list", map(1, "state", 's', "cancelled")), 0);
	assert_int_equal(rpc_arg_find(&env->result, "jobs")->via.array.size, 1);
	assert_int_equal(call(env, "job.list", map(1, "target", 's', "other")), 0);
	assert_int_equal(rpc_arg_find(&env->result, "jobs")->via.array.size, 0);
}

static unsigned pending_submits;

static void on_submitted(struct rpc_request *r, int status, const struct ing_error *err,
                         const msgpack_object *result)
{
	(void)r, (void)err, (void)result;
	assert_int_equal(status, 0);
	pending_submits--;
}

/* A filtered job.list examines at most 10,000 jobs per page: past 10,005
 * jobs of target cc, the one job of target cc2 comes on the second page,
 * after an empty first page whose `next` is a cursor past the skipped ones. */
static void test_list_scan_bound(void **state)
{
	struct env *env = *state;
	static struct rpc_request reqs[500];
	struct mp_out *args = map(2, "target", 's', "cc", "sources", 'r', sources("a.c", "x"));
	struct mp_out keep = *args; /* map() reuses its buffer: detach it */

	mp_out_init(args);
	for (unsigned done = 0; done < 10005;) {
		unsigned n = 10005 - done < 500 ? 10005 - done : 500;
		pending_submits = n;
		for (unsigned i = 0; i < n; i++) {
			reqs[i] = (struct rpc_request){.data = env, .cb = on_submitted};
			assert_int_equal(rpc_client_call(env->client, &reqs[i], "job.submit",
			                                 keep.data, keep.len, 0),
			                 0);
		}
		while (pending_submits > 0)
			uv_run(&env->loop, UV_RUN_ONCE);
		done += n;
	}
	mp_out_free(&keep);
	assert_int_equal(
	    call(env, "target.put", map(2, "name", 's', "cc2", "stages", 'r', stages())), 0);
	assert_int_equal(call(env, "job.submit",
	                      map(2, "target", 's', "cc2", "sources", 'r', sources("b.c", "y"))),
	                 0);
	uint64_t id = get_u64(env, "id");
	assert_int_equal(id, 10006);

	assert_int_equal(
	    call(env, "job.list", map(2, "target", 's', "cc2", "limit", 'u', (uint64_t)10)), 0);
	assert_int_equal(rpc_arg_find(&env->result, "jobs")->via.array.size, 0);
	uint64_t next = get_u64(env, "next");
	assert_int_equal(next, 10000);
	assert_int_equal(
	    call(env, "job.list",
	         map(3, "target", 's', "cc2", "after", 'u', next, "limit", 'u', (uint64_t)10)),
	    0);
	const msgpack_object *jobs = rpc_arg_find(&env->result, "jobs");
	assert_int_equal(jobs->via.array.size, 1);
	assert_int_equal(rpc_arg_find(&env->result, "next")->type, MSGPACK_OBJECT_NIL);
	/* Unfiltered pages are unchanged: 1000 jobs and the last one's id. */
	assert_int_equal(call(env, "job.list", map(1, "limit", 'u', (uint64_t)1000)), 0);
	assert_int_equal(rpc_arg_find(&env->result, "jobs")->via.array.size, 1000);
	assert_int_equal(get_u64(env, "next"), 1000);
}

static void test_request_id_dedupe(void **state)
{
	struct env *env = *state;
	assert_int_equal(call_id(env, "job.submit",
	                         map(2, "target", 's', "cc", "sources", 'r', sources("a.c", "x")),
	                         RPC_WRITE, "retry-me-1"),
	                 0);
	uint64_t first = get_u64(env, "id");
	assert_int_equal(call_id(env, "job.submit",
	                         map(2, "target", 's', "cc", "sources", 'r', sources("a.c", "x")),
	                         RPC_WRITE, "retry-me-1"),
	                 0);
	assert_int_equal(get_u64(env, "id"), first);
	assert_int_equal(call(env, "job.list", NULL), 0);
	assert_int_equal(rpc_arg_find(&env->result, "jobs")->via.array.size, 1);
}

static void test_status_and_info(void **state)
{
	struct env *env = *state;
	assert_int_equal(call(env, "node.info", NULL), 0);
	assert_int_equal(get_u64(env, "id"), 1);
	assert_true(str_is(env, "role", "leader"));
	/* The leader's node.info says how long ago it heard from each member
	 * (0 for itself): status through a follower shows it from there. */
	const msgpack_object *contacts = rpc_arg_find(&env->result, "contacts");
	assert_non_null(contacts);
	uint64_t self_ago = 1;
	assert_int_equal(rpc_arg_u64(contacts, "1", UINT64_MAX, true, &self_ago, NULL), 0);
	assert_int_equal(self_ago, 0);
	assert_int_equal(call(env, "status", NULL), 0);
	assert_int_equal(get_u64(env, "leader"), 1);
	/* The cluster id (operations.md: `ingotctl -o json status`). */
	struct ing_str cid;
	assert_int_equal(rpc_arg_str(&env->result, "cluster_id", 64, true, &cid, NULL), 0);
	assert_int_equal(cid.len, 32);
	const msgpack_object *members = rpc_arg_find(&env->result, "members");
	assert_int_equal(members->via.array.size, 1);
	bool alive = false;
	assert_int_equal(rpc_arg_bool(&members->via.array.ptr[0], "alive", true, &alive, NULL), 0);
	assert_true(alive);
	/* The leader itself: last contact 0 (api.md), not a few ms. */
	uint64_t ago = 1;
	assert_int_equal(rpc_arg_u64(&members->via.array.ptr[0], "last_contact_ms", UINT64_MAX,
	                             true, &ago, NULL),
	                 0);
	assert_int_equal(ago, 0);
}

struct watch_ctx {
	struct env *env;
	struct rpc_request cancel;
	bool cancelled;
};

static void on_cancelled(struct rpc_request *r, int status, const struct ing_error *err,
                         const msgpack_object *result)
{
	struct watch_ctx *w = r->data;
	(void)err;
	(void)result;
	assert_int_equal(status, 0);
	w->cancelled = true;
}

static void test_watch(void **state)
{
	struct env *env = *state;
	struct rpc_request r = {.data = env, .cb = on_reply, .event_cb = on_event};
	struct watch_ctx w = {.env = env};
	struct mp_out *args;

	assert_int_equal(call(env, "job.submit",
	                      map(2, "target", 's', "cc", "sources", 'r', sources("a.c", "x"))),
	                 0);
	uint64_t id = get_u64(env, "id");

	env->done = false;
	env->nevents = 0;
	args = map(1, "id", 'u', id);
	assert_int_equal(
	    rpc_client_call(env->client, &r, "job.watch", args->data, args->len, RPC_NO_RETRY), 0);
	mp_out_free(args);
	while (env->nevents < 1)
		uv_run(&env->loop, UV_RUN_ONCE);
	assert_string_equal(env->events[0], "submitted");
	args = map(1, "id", 'u', id);
	w.cancel.data = &w;
	w.cancel.cb = on_cancelled;
	assert_int_equal(
	    rpc_client_call(env->client, &w.cancel, "job.cancel", args->data, args->len, RPC_WRITE),
	    0);
	mp_out_free(args);
	while (!env->done || !w.cancelled)
		uv_run(&env->loop, UV_RUN_ONCE);
	assert_int_equal(env->status, 0);
	assert_int_equal(env->nevents, 2);
	assert_string_equal(env->events[1], "cancelled");
	assert_true(str_is(env, "state", "cancelled"));

	expect_error(env, call(env, "job.watch", map(1, "id", 'u', (uint64_t)4242)), ING_ENOTFOUND,
	             "job 4242");
}

/* Optional arguments left out (or nil) take their default; a mistyped one
 * is refused naming it (issue 11 items 10 and 17: role_arg read an
 * uninitialised view when `role` was absent, and a non-boolean `stale` was
 * taken for false). */
static void test_optional_arguments(void **state)
{
	struct env *env = *state;
	int rv;

	/* member.add of this very node as it is, no role: the default (voter)
	 * matches, so there is nothing to do. */
	rv = call(env, "member.add",
	          map(3, "id", 'u', (uint64_t)1, "raft_address", 's', env->raft, "api_address", 's',
	              env->api));
	if (rv != 0)
		fail_msg("member.add without role: %s: %s", ing_err_name(rv), env->err.msg);
	assert_true(str_is(env, "role", "voter"));
	rv = call(env, "member.add",
	          map(4, "id", 'u', (uint64_t)1, "raft_address", 's', env->raft, "api_address", 's',
	              env->api, "role", 'n'));
	if (rv != 0)
		fail_msg("member.add with role nil: %s: %s", ing_err_name(rv), env->err.msg);
	/* member.demote without role: default standby, refused because this
	 * node leads (not because of the role). */
	expect_error(env, call(env, "member.demote", map(1, "id", 'u', (uint64_t)1)), ING_ECONFLICT,
	             "leader");
	expect_error(env, call(env, "member.demote", map(2, "id", 'u', (uint64_t)1, "role", 'n')),
	             ING_ECONFLICT, "leader");
	expect_error(
	    env, call(env, "member.demote", map(2, "id", 'u', (uint64_t)1, "role", 's', "boss")),
	    ING_EINVAL, "'role'");

	/* stale: true or false (nil: absent); anything else is refused. */
	expect_error(env, call(env, "job.list", map(1, "stale", 's', "yes")), ING_EINVAL,
	             "'stale'");
	expect_error(env, call(env, "job.list", map(1, "stale", 'u', (uint64_t)1)), ING_EINVAL,
	             "'stale'");
	expect_error(env, call(env, "status", map(1, "stale", 's', "true")), ING_EINVAL, "'stale'");
	assert_int_equal(call(env, "job.list", map(1, "stale", 'b', 1)), 0);
	assert_int_equal(call(env, "job.list", map(1, "stale", 'b', 0)), 0);
	assert_int_equal(call(env, "job.list", map(1, "stale", 'n')), 0);

	/* An error that echoes a string that is not UTF-8 sends '?' for the
	 * bad bytes: a msgpack string must be UTF-8 (issue 11 item 14). */
	expect_error(env, call(env, "job.list", map(1, "state", 's', "\xff\xfeok\n")), ING_EINVAL,
	             "'??ok?'");
	assert_true(ing_utf8_valid(env->err.msg, strlen(env->err.msg)));
}

/* Sources as a list of (path, data) built from NULL-terminated paths. */
static struct mp_out *sources_n(const char *const *paths, const size_t *lens)
{
	struct mp_out *o = malloc(sizeof(*o));
	unsigned n = 0;
	while (paths[n] != NULL)
		n++;
	mp_out_init(o);
	msgpack_pack_array(&o->pk, n);
	for (unsigned i = 0; i < n; i++) {
		msgpack_pack_map(&o->pk, 2);
		mp_pack_cstr(&o->pk, "path");
		size_t len = lens != NULL ? lens[i] : strlen(paths[i]);
		msgpack_pack_str(&o->pk, len);
		msgpack_pack_str_body(&o->pk, paths[i], len);
		mp_pack_cstr(&o->pk, "data");
		mp_pack_bin(&o->pk, "x", 1);
	}
	return o;
}

/* A stage (argv [sh, -c, script]) with outputs and a stdout file. */
static struct mp_out *stage_with(const char *script, const char *out1, const char *out2,
                                 const char *stdout_path)
{
	struct mp_out *o = malloc(sizeof(*o));
	unsigned nout = (out1 != NULL) + (out2 != NULL);
	mp_out_init(o);
	msgpack_pack_array(&o->pk, 1);
	msgpack_pack_map(&o->pk, 2 + (nout > 0) + (stdout_path != NULL));
	mp_pack_cstr(&o->pk, "name");
	mp_pack_cstr(&o->pk, "s");
	mp_pack_cstr(&o->pk, "argv");
	msgpack_pack_array(&o->pk, 3);
	mp_pack_cstr(&o->pk, "sh");
	mp_pack_cstr(&o->pk, "-c");
	mp_pack_cstr(&o->pk, script);
	if (nout > 0) {
		mp_pack_cstr(&o->pk, "outputs");
		msgpack_pack_array(&o->pk, nout);
		if (out1 != NULL)
			mp_pack_cstr(&o->pk, out1);
		if (out2 != NULL)
			mp_pack_cstr(&o->pk, out2);
	}
	if (stdout_path != NULL) {
		mp_pack_cstr(&o->pk, "stdout");
		mp_pack_cstr(&o->pk, stdout_path);
	}
	return o;
}

/* What a worker could not run is refused at submit (or target.put),
 * naming the problem, with nothing stored (issue 11 items 8 and 14). */
static void test_refused_at_submit(void **state)
{
	struct env *env = *state;
	static const char *const dot[] = {".", NULL};
	static const char *const sub_dot[] = {"a/.", NULL};
	static const char *const both[] = {"d", "d/f", NULL};
	static const char *const nul[] = {"a\0b", NULL};
	static const size_t nul_len[] = {3};
	expect_error(env,
	             call(env, "job.submit",
	                  map(2, "target", 's', "cc", "sources", 'r', sources_n(dot, NULL))),
	             ING_EINVAL, "'.'");
	expect_error(env,
	             call(env, "job.submit",
	                  map(2, "target", 's', "cc", "sources", 'r', sources_n(sub_dot, NULL))),
	             ING_EINVAL, "'a/.' has a '.' component");
	expect_error(env,
	             call(env, "job.submit",
	                  map(2, "target", 's', "cc", "sources", 'r', sources_n(both, NULL))),
	             ING_EINVAL, "'d' cannot be both a file and the directory of 'd/f'");
	expect_error(env,
	             call(env, "job.submit",
	                  map(2, "target", 's', "cc", "sources", 'r', sources_n(nul, nul_len))),
	             ING_EINVAL, "'a\\0b'");
	/* A {param:NAME} the job lacks. */
	assert_int_equal(call(env, "target.put",
	                      map(2, "name", 's', "p", "stages", 'r',
	                          stage_with("echo {param:WHO}", NULL, NULL, NULL))),
	                 0);
	expect_error(env,
	             call(env, "job.submit",
	                  map(2, "target", 's', "p", "sources", 'r', sources("a.c", "x"))),
	             ING_EINVAL, "argv uses {param:WHO} but the job has no parameter WHO");
	expect_error(env,
	             call(env, "job.submit",
	                  map(3, "target", 's', "p", "sources", 'r', sources("a.c", "x"), "params",
	                      'r', map_raw(1, "OTHER", "1"))),
	             ING_EINVAL, "WHO");
	/* Nothing was stored. */
	assert_int_equal(call(env, "job.list", NULL), 0);
	assert_int_equal(rpc_arg_find(&env->result, "jobs")->via.array.size, 0);
	assert_int_equal(call(env, "job.submit",
	                      map(3, "target", 's', "p", "sources", 'r', sources("a.c", "x"),
	                          "params", 'r', map_raw(1, "WHO", "me"))),
	                 0);
	/* Stage outputs that cannot sit in one directory. */
	expect_error(
	    env,
	    call(env, "target.put",
	         map(2, "name", 's', "o", "stages", 'r', stage_with("true", NULL, NULL, "."))),
	    ING_EINVAL, "'.'");
	expect_error(
	    env,
	    call(env, "target.put",
	         map(2, "name", 's', "o", "stages", 'r', stage_with("true", "d", "d/f", NULL))),
	    ING_EINVAL, "cannot be both a file and the directory");
	expect_error(env, call(env, "target.get", map(1, "name", 's', "o")), ING_ENOTFOUND, "o");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_optional_arguments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_at_submit, setup, teardown),

	    cmocka_unit_test_setup_teardown(test_target_sandbox_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_target_network_allowed, setup_allowing_network,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_job_lifecycle_shapes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_paging_and_filters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_scan_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_id_dedupe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_and_info, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
