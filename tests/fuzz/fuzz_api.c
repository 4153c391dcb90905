/*
 * fuzz_api.c - libFuzzer driver for the API's argument readers.
 *
 * One real single-node ingotd runs in this process for the whole run
 * (node_start: LMDB, libraft on loopback, the rpc server; slots 0, member
 * catch-up cut to 500 ms), reached through the client library over TCP
 * like any client.  An input is one selector byte and one msgpack map: the
 * byte picks an operation of the API (docs/api.md; left out: job.watch,
 * which waits for a job to end, node.log_level, which would turn this
 * process's logging on, and the snapshot operations, which copy the whole
 * store), the map is its arguments.  An input whose
 * rest is not exactly one map is skipped: the client library refuses such
 * arguments before anything is sent.  Each call runs the loop until its
 * reply.
 *
 * What must hold, for any arguments:
 *  - the node never crashes and answers every call within 20 s (the
 *    sanitizers report a bad read or write; a missing reply aborts);
 *  - an error message is valid UTF-8 without control characters (it is a
 *    msgpack string and often echoes the request);
 *  - an error that names an argument the map does not hold says that the
 *    argument is required: an optional argument left out takes its
 *    default, it is never read as garbage (issue 11 item 10: member.add
 *    and member.demote without `role` read an uninitialised view).
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "common/text.h"
#include "node/config.h"
#include "node/node.h"
#include "rpc/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ops[] = {
    "status",         "node.info",     "target.put",     "target.get",      "target.list",
    "target.delete",  "job.submit",    "job.get",        "job.list",        "job.cancel",
    "job.retry",      "job.events",    "node.list",      "node.drain",      "node.undrain",
    "artifact.get",   "node.register", "node.heartbeat", "worker.report",   "member.add",
    "member.promote", "member.demote", "member.remove",  "member.transfer", "member.check",
    "cluster.events", "node.forget",   "job.log",
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static uv_loop_t loop;
static struct node *node;
static struct rpc_client *client;
static char dir[64];
static bool stopped;

struct reply {
	bool done;
	int status;
	struct ing_error err;
};

static uint16_t free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		abort();
	close(fd);
	return ntohs(sa.sin_port);
}

static void on_stopped(void *data, int status)
{
	(void)data;
	(void)status;
	stopped = true;
}

static void on_reply(struct rpc_request *r, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	struct reply *rep = r->data;
	(void)result;
	rep->done = true;
	rep->status = status;
	if (err != NULL)
		rep->err = *err;
}

/* Sends op(args) and runs the loop until the reply; false when the client
 * refused the arguments (nothing was sent). */
static bool call(const char *op, const void *args, size_t len, struct reply *rep)
{
	struct rpc_request r = {.data = rep, .cb = on_reply};
	memset(rep, 0, sizeof(*rep));
	if (rpc_client_call(client, &r, op, args, len, RPC_NO_RETRY) != 0)
		return false;
	while (!rep->done)
		uv_run(&loop, UV_RUN_ONCE);
	return true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void client_closed(void *data)
{
	*(bool *)data = true;
}

static void cleanup(void)
{
	bool closed = false;
	rpc_client_close(client, client_closed, &closed);
	node_stop(node);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void init_once(void)
{
	struct node_config cfg;
	struct ing_error e;
	struct reply rep;
	char api[64];

	if (node != NULL)
		return;
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	snprintf(dir, sizeof(dir), "/tmp/ingot-fuzz-api-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	uv_loop_init(&loop);
	node_config_defaults(&cfg);
	cfg.id = 1;
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/data", dir);
	snprintf(cfg.raft_address, sizeof(cfg.raft_address), "127.0.0.1:%u", free_port());
	snprintf(api, sizeof(api), "127.0.0.1:%u", free_port());
	snprintf(cfg.api_address, sizeof(cfg.api_address), "%s", api);
	cfg.npeers = 1;
	cfg.peers[0].id = 1;
	snprintf(cfg.peers[0].raft_address, NODE_ADDRESS_MAX, "%s", cfg.raft_address);
	snprintf(cfg.peers[0].api_address, NODE_ADDRESS_MAX, "%s", api);
	cfg.store_sync = STORE_SYNC_NONE;
	cfg.slots = 0;
	cfg.probe = false;
	cfg.member_catchup_timeout_ms = 500;
	if (node_config_check(&cfg, "fuzz", &e) != 0 ||
	    node_start(&loop, &cfg, on_stopped, NULL, &node, &e) != 0) {
		fprintf(stderr, "fuzz_api: cannot start the node: %s\n", e.msg);
		abort();
	}
	const char *eps[] = {api};
	struct rpc_client_options o = {.endpoints = eps, .nendpoints = 1, .timeout_ms = 20000};
	if (rpc_client_new(&loop, &o, &client, &e) != 0)
		abort();
	/* Wait for the node to lead: a linearizable read succeeds. */
	for (int i = 0; i < 200; i++) {
		if (call("job.list", NULL, 0, &rep) && rep.status == 0)
			break;
		uv_sleep(50);
	}
	atexit(cleanup);
}

/* Whether map m has the key `name` (len bytes). */
static bool has_key(const msgpack_object *m, const char *name, size_t len)
{
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
		    memcmp(k->via.str.ptr, name, len) == 0)
			return true;
	}
	return false;
}

static void check_error(const char *op, const msgpack_object *args, const struct reply *rep)
{
	const char *m = rep->err.msg;
	size_t len = strlen(m);

	if (!ing_utf8_valid(m, len)) {
		fprintf(stderr, "fuzz_api: %s: error message is not UTF-8: %s\n", op, m);
		abort();
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)m[i] < 0x20 && m[i] != '\t') {
			fprintf(stderr, "fuzz_api: %s: control character in the error: %s\n", op,
			        m);
			abort();
		}
	}
	const char *p = strstr(m, "argument '");
	if (p == NULL)
		return;
	p += strlen("argument '");
	const char *q = strchr(p, '\'');
	if (q == NULL)
		return;
	if (!has_key(args, p, (size_t)(q - p)) && strstr(m, "required") == NULL) {
		fprintf(stderr, "fuzz_api: %s: error about an argument that was not sent: %s\n", op,
		        m);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_zone z;
	msgpack_object args;
	struct reply rep;
	size_t off = 0;

	if (size < 2)
		return 0;
	init_once();
	const char *op = ops[data[0] % NOPS];
	msgpack_zone_init(&z, 1024);
	if (msgpack_unpack((const char *)data + 1, size - 1, &off, &z, &args) ==
	        MSGPACK_UNPACK_SUCCESS &&
	    off == size - 1 && args.type == MSGPACK_OBJECT_MAP &&
	    call(op, data + 1, size - 1, &rep) && rep.status != 0) {
		if (rep.status == ING_ETIMEOUT &&
		    strncmp(rep.err.msg, "no reply within", 15) == 0) {
			fprintf(stderr, "fuzz_api: %s: no reply within 20 s\n", op);
			abort();
		}
		check_error(op, &args, &rep);
	}
	msgpack_zone_destroy(&z);
	if (stopped) {
		fprintf(stderr, "fuzz_api: the node stopped\n");
		abort();
	}
	return 0;
}
