/*
 * raw_bench.c - the upper anchor for bench/vs-etcd: plain libraft 0.15 on
 * its own libuv TCP transport, with an fsm that writes every entry into
 * LMDB inside one write transaction per loop iteration (fsync on commit),
 * and nothing else: no RPC, no codec, no state machine, no TLS.
 *
 * One process per node (`--id N`); every node bootstraps the same
 * configuration of `--nodes` voters at 127.0.0.1:PORT_BASE+id.  The node that
 * becomes leader proposes a barrier, then keeps `--inflight` entries of
 * `--entry-bytes` in flight for `--duration` seconds, timing each from
 * raft_apply to its callback (the entry is then committed on a majority and
 * applied), prints one result line and exits 0; followers exit on their own
 * after `--duration` plus 20 s (the driver script normally kills them
 * first).  Election timing as ingot's shipped defaults (pre-vote on), so the
 * only differences with ingot are the layers ingot adds.
 *
 * This is a bench program: it calls libraft directly, which ingot's own
 * code does only inside raft/ (DESIGN.md).  Loopback only.
 */
#include <inttypes.h>
#include <lmdb.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#define MAX_NODES 7

static struct {
	unsigned id, nodes, port_base, inflight, entry_bytes, duration_s, election_ms;
	const char *dir;
	uv_loop_t loop;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *batch;
	uint64_t applied;
	uv_prepare_t flush;
	uv_timer_t tick;
	bool loading, stopping;
	double t0, t_end;
	uint64_t outstanding, ok, errors, seq;
	double *lat;
	size_t nlat, caplat;
} B;

struct req {
	struct raft_apply apply;
	double start;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, int rv)
{
	fprintf(stderr, "raw_bench[%u]: %s: %d\n", B.id, what, rv);
	exit(2);
}

/* ---- fsm: every entry into the open LMDB batch ------------------------ */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	uint8_t key[8];
	uint64_t idx = ++B.applied;
	MDB_val k = {8, key}, v = {buf->len, buf->base};
	int rv;
	(void)fsm;
	for (int i = 7; i >= 0; i--, idx >>= 8)
		key[i] = (uint8_t)idx;
	if (B.batch == NULL && (rv = mdb_txn_begin(B.env, NULL, 0, &B.batch)) != 0)
		die("mdb_txn_begin", rv);
	if ((rv = mdb_put(B.batch, B.dbi, &k, &v, MDB_APPEND)) != 0)
		die("mdb_put", rv);
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
	(void)fsm, (void)bufs, (void)n;
	return RAFT_BUSY; /* the threshold is set so high that this never runs */
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	(void)fsm, (void)buf;
	return RAFT_IOERR;
}

static void on_flush(uv_prepare_t *h)
{
	int rv;
	(void)h;
	if (B.batch != NULL) {
		rv = mdb_txn_commit(B.batch);
		B.batch = NULL;
		if (rv != 0)
			die("mdb_txn_commit", rv);
	}
}

/* ---- load (leader only) ----------------------------------------------- */

static void propose(void);

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void finish(void)
{
	double secs = (B.t_end - B.t0) / 1e3;
	qsort(B.lat, B.nlat, sizeof(double), cmp);
	double p50 = B.nlat ? B.lat[B.nlat / 2] : 0, p99 = B.nlat ? B.lat[B.nlat * 99 / 100] : 0;
	printf("raw_bench result inflight=%u ok=%" PRIu64 " errors=%" PRIu64
	       " seconds=%.2f rate=%.0f p50_ms=%.3f p99_ms=%.3f\n",
	       B.inflight, B.ok, B.errors, secs, B.ok / secs, p50, p99);
	fflush(stdout);
	exit(B.ok > 0 ? 0 : 1);
}

static void apply_cb(struct raft_apply *a, int status, void *result)
{
	struct req *r = a->data;
	double t = now_ms();
	(void)result;
	B.outstanding--;
	if (status == 0) {
		B.ok++;
		if (B.nlat < B.caplat)
			B.lat[B.nlat++] = t - r->start;
	} else {
		B.errors++;
	}
	free(r);
	if (t >= B.t0 + B.duration_s * 1e3) {
		B.stopping = true;
		if (B.outstanding == 0) {
			B.t_end = t;
			finish();
		}
		return;
	}
	propose();
}

static void propose(void)
{
	struct raft_buffer buf;
	struct req *r = malloc(sizeof(*r));
	int rv;
	buf.len = (B.entry_bytes + 7) & ~(size_t)7; /* libraft 0.15: multiple of 8 */
	buf.base = raft_malloc(buf.len);
	if (r == NULL || buf.base == NULL)
		die("out of memory", 0);
	memset(buf.base, 'x', buf.len);
	snprintf(buf.base, buf.len, "%u:%" PRIu64, B.id, ++B.seq);
	r->apply.data = r;
	r->start = now_ms();
	rv = raft_apply(&B.raft, &r->apply, &buf, 1, apply_cb);
	if (rv != 0) {
		raft_free(buf.base);
		free(r);
		die("raft_apply (leadership lost?)", rv);
	}
	B.outstanding++;
}

static void barrier_cb(struct raft_barrier *b, int status)
{
	free(b);
	if (status != 0)
		die("barrier", status);
	B.t0 = now_ms();
	for (unsigned i = 0; i < B.inflight; i++)
		propose();
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
	if (!B.loading && raft_state(&B.raft) == RAFT_LEADER) {
		struct raft_barrier *b = calloc(1, sizeof(*b));
		B.loading = true;
		if (b == NULL || raft_barrier(&B.raft, b, barrier_cb) != 0)
			die("raft_barrier", 0);
	}
	if (!B.loading && now_ms() > B.t0 + (B.duration_s + 20) * 1e3)
		exit(0); /* follower: the leader is done */
}

/* ---- main ------------------------------------------------------------- */

static unsigned arg_u(const char *name, const char *v, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long x = strtoul(v, &end, 10);
	if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
		fprintf(stderr, "raw_bench: %s: expected %u..%u, got '%s'\n", name, lo, hi, v);
		exit(2);
	}
	return (unsigned)x;
}

int main(int argc, char **argv)
{
	struct raft_configuration conf;
	char addr[MAX_NODES + 1][32], path[1024];
	int rv;

	B.nodes = 3, B.port_base = 23500, B.inflight = 64, B.entry_bytes = 360, B.duration_s = 10;
	B.election_ms = 120; /* ingot's shipped default */
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];
		if (!strcmp(a, "--id"))
			B.id = arg_u(a, v, 1, MAX_NODES);
		else if (!strcmp(a, "--nodes"))
			B.nodes = arg_u(a, v, 1, MAX_NODES);
		else if (!strcmp(a, "--port-base"))
			B.port_base = arg_u(a, v, 1024, 65000);
		else if (!strcmp(a, "--inflight"))
			B.inflight = arg_u(a, v, 1, 65536);
		else if (!strcmp(a, "--entry-bytes"))
			B.entry_bytes = arg_u(a, v, 16, 1 << 20);
		else if (!strcmp(a, "--duration"))
			B.duration_s = arg_u(a, v, 1, 3600);
		else if (!strcmp(a, "--election-ms"))
			B.election_ms = arg_u(a, v, 50, 60000);
		else if (!strcmp(a, "--dir"))
			B.dir = v;
		else {
			fprintf(stderr, "raw_bench: unknown argument '%s'\n", a);
			return 2;
		}
	}
	if (B.id == 0 || B.id > B.nodes || B.dir == NULL || argc % 2 == 0) {
		fprintf(stderr, "usage: raw_bench --id N --dir D [--nodes 3] [--port-base P]"
		                " [--inflight M] [--entry-bytes B] [--duration S]"
		                " [--election-ms E]\n");
		return 2;
	}
	B.caplat = 8u << 20;
	B.lat = malloc(B.caplat * sizeof(double));
	if (B.lat == NULL)
		die("out of memory", 0);

	mkdir(B.dir, 0755);
	snprintf(path, sizeof(path), "%s/state.mdb", B.dir);
	if ((rv = mdb_env_create(&B.env)) != 0 || (rv = mdb_env_set_mapsize(B.env, 4ull << 30)) ||
	    (rv = mdb_env_open(B.env, path, MDB_NOSUBDIR | MDB_NOTLS, 0644)) != 0)
		die("mdb_env_open", rv);
	MDB_txn *txn;
	if ((rv = mdb_txn_begin(B.env, NULL, 0, &txn)) != 0 ||
	    (rv = mdb_dbi_open(txn, NULL, 0, &B.dbi)) != 0 || (rv = mdb_txn_commit(txn)) != 0)
		die("mdb_dbi_open", rv);

	snprintf(path, sizeof(path), "%s/raft", B.dir);
	mkdir(path, 0755);
	uv_loop_init(&B.loop);
	for (unsigned i = 1; i <= B.nodes; i++)
		snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%u", B.port_base + i);
	if ((rv = raft_uv_tcp_init(&B.transport, &B.loop)) != 0)
		die("raft_uv_tcp_init", rv);
	if ((rv = raft_uv_init(&B.io, &B.loop, path, &B.transport)) != 0)
		die("raft_uv_init", rv);
	raft_uv_set_connect_retry_delay(&B.io, 50);
	B.fsm.version = 1;
	B.fsm.apply = fsm_apply;
	B.fsm.snapshot = fsm_snapshot;
	B.fsm.restore = fsm_restore;
	if ((rv = raft_init(&B.raft, &B.io, &B.fsm, B.id, addr[B.id])) != 0)
		die("raft_init", rv);
	raft_set_election_timeout(&B.raft, B.election_ms);
	raft_set_heartbeat_timeout(&B.raft, B.election_ms / 10);
	raft_set_pre_vote(&B.raft, true);
	raft_set_snapshot_threshold(&B.raft, 1u << 30);
	raft_configuration_init(&conf);
	for (unsigned i = 1; i <= B.nodes; i++)
		if ((rv = raft_configuration_add(&conf, i, addr[i], RAFT_VOTER)) != 0)
			die("raft_configuration_add", rv);
	rv = raft_bootstrap(&B.raft, &conf);
	if (rv != 0 && rv != RAFT_CANTBOOTSTRAP)
		die("raft_bootstrap", rv);
	raft_configuration_close(&conf);
	if ((rv = raft_start(&B.raft)) != 0)
		die("raft_start", rv);

	uv_prepare_init(&B.loop, &B.flush);
	uv_prepare_start(&B.flush, on_flush);
	uv_timer_init(&B.loop, &B.tick);
	B.t0 = now_ms();
	uv_timer_start(&B.tick, on_tick, 10, 10);
	return uv_run(&B.loop, UV_RUN_DEFAULT);
}
