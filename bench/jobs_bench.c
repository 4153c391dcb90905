/*
 * jobs_bench.c - trivial jobs completed per second on a running ingot
 * cluster, their CPU cost, and the raw posix_spawn anchor in the same run.
 *
 *   jobs_bench --endpoints A,B,C [--jobs N] [--inflight M] [--pids P1,P2,P3]
 *              [--backlog K] [--settle-s S] [--spawn-concurrency C]
 *              [--timeout-s T]
 *
 * Phases, one after the other:
 *   1. target.put of `jobs-true` (one stage, argv ["true"]) and, with
 *      --backlog, of `jobs-never` (needs the capability no-such-tool, so
 *      no node can run it);
 *   2. --backlog K: K submits to jobs-never (M in flight), which stay
 *      queued: the scheduler's unplaceable queue; with --settle-s S (and
 *      --pids), then a wait, of at most S seconds, until the --pids
 *      processes use under 5 % of one core over half a second: what the
 *      submits left the nodes to do (snapshots, the removal of the log
 *      segments they filled, memory given back) is then over before the
 *      runnable jobs are measured, which see only the queued jobs;
 *   3. anchor: N posix_spawn of /bin/true, C at a time (C defaults to the
 *      cluster's free slots, from node.list), waited for with waitpid;
 *      wall time and CPU (this process and its children, getrusage);
 *   4. ingot: N submits to jobs-true (M in flight), then target.get of
 *      jobs-true (stale, on the first endpoint) every 10 ms until its
 *      active_jobs is 0; wall time from the first submit to that answer,
 *      CPU of the --pids processes (utime + stime + cutime + cstime from
 *      /proc/PID/stat: the stages' processes are their children) over the
 *      same span;
 *   5. the anchor again.
 * Prints one line per phase and a summary line:
 *   jobs_bench result jobs=N ingot_rate=... anchor_rate=... ratio=...
 *       ingot_cpu_ms_per_job=... anchor_cpu_ms_per_spawn=... backlog=K
 * The anchor's rate is the mean of phases 3 and 5.  Endpoints other than
 * 127.0.0.1 / localhost are refused.  The credential (an operator's or an
 * admin's token) is INGOT_TOKEN, else the first line of the file
 * INGOT_TOKEN_FILE names (bench/token.sh exports both).
 */
#include <inttypes.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mp.h"
#include "rpc/client.h"

#include "bench/lib/args.h"
#include "bench/lib/token.h"

extern char **environ;

#define MAX_ENDPOINTS 16
#define MAX_PIDS      16

static struct {
	const char *endpoints[MAX_ENDPOINTS];
	unsigned nendpoints;
	uint64_t jobs, backlog;
	unsigned inflight, spawn_conc;
	unsigned timeout_s, settle_s;
	int pids[MAX_PIDS];
	unsigned npids;

	uv_loop_t *loop;
	struct rpc_client *c;
	const char *token; /* NULL: none */
	char token_buf[4097];
	struct mp_out args;
	const char *target;
	uint64_t to_issue, issued, done, ok, errors;
	uint64_t counter, nonce;
	bool submitting;
} B;

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "jobs_bench: %s\n", what);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: jobs_bench --endpoints A,B,C [--jobs N] [--inflight M] [--pids "
	                "P1,P2,...]\n"
	                "                  [--backlog K] [--settle-s S] [--spawn-concurrency C]\n"
	                "                  [--timeout-s T]\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	B.jobs = 2000;
	B.inflight = 64;
	B.timeout_s = 600;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL && strcmp(a, "-h") != 0 && strcmp(a, "--help") != 0)
			usage();
		if (strcmp(a, "--endpoints") == 0) {
			char *list = argv[++i];
			for (char *t = strtok(list, ","); t != NULL; t = strtok(NULL, ",")) {
				if (B.nendpoints == MAX_ENDPOINTS ||
				    (strncmp(t, "127.0.0.1:", 10) != 0 &&
				     strncmp(t, "localhost:", 10) != 0))
					die("endpoints: at most 16, on 127.0.0.1 only");
				B.endpoints[B.nendpoints++] = t;
			}
		} else if (strcmp(a, "--jobs") == 0) {
			B.jobs = bench_num("jobs_bench", a, argv[++i], 1, 10000000);
		} else if (strcmp(a, "--inflight") == 0) {
			B.inflight = (unsigned)bench_num("jobs_bench", a, argv[++i], 1, 4096);
		} else if (strcmp(a, "--backlog") == 0) {
			B.backlog = bench_num("jobs_bench", a, argv[++i], 0, 10000000);
		} else if (strcmp(a, "--spawn-concurrency") == 0) {
			B.spawn_conc = (unsigned)bench_num("jobs_bench", a, argv[++i], 1, 4096);
		} else if (strcmp(a, "--settle-s") == 0) {
			B.settle_s = (unsigned)bench_num("jobs_bench", a, argv[++i], 0, 3600);
		} else if (strcmp(a, "--timeout-s") == 0) {
			B.timeout_s = (unsigned)bench_num("jobs_bench", a, argv[++i], 1, 86400);
		} else if (strcmp(a, "--pids") == 0) {
			char *list = argv[++i];
			for (char *t = strtok(list, ","); t != NULL; t = strtok(NULL, ",")) {
				if (B.npids == MAX_PIDS)
					die("--pids: at most 16");
				B.pids[B.npids++] =
				    (int)bench_num("jobs_bench", "--pids", t, 1, 4194304);
			}
		} else {
			usage();
		}
	}
	if (B.nendpoints == 0)
		usage();
	B.token = bench_token("jobs_bench", NULL, B.token_buf, sizeof(B.token_buf));
}

/* ---- calls --------------------------------------------------------------- */

static double pids_cpu_ms(void);

static int call_sync(const char *op, struct mp_out *a, msgpack_zone *z, msgpack_object *res,
                     unsigned flags)
{
	struct rpc_client_options o = {.endpoints = B.endpoints,
	                               .nendpoints = B.nendpoints,
	                               .timeout_ms = 10000,
	                               .token = B.token};
	struct ing_error e;
	ing_error_clear(&e);
	int rv = rpc_call_sync(&o, op, a != NULL ? a->data : NULL, a != NULL ? a->len : 0, flags, z,
	                       res, &e);
	if (rv != 0)
		fprintf(stderr, "jobs_bench: %s: %s: %s\n", op, ing_err_name(rv), e.msg);
	return rv;
}

static void put_target(const char *name, const char *capability)
{
	struct mp_out a;
	msgpack_zone z;
	msgpack_object res;
	mp_out_init(&a);
	msgpack_pack_map(&a.pk, capability != NULL ? 3 : 2);
	if (capability != NULL) {
		mp_pack_cstr(&a.pk, "capabilities");
		msgpack_pack_array(&a.pk, 1);
		mp_pack_cstr(&a.pk, capability);
	}
	mp_pack_cstr(&a.pk, "name");
	mp_pack_cstr(&a.pk, name);
	mp_pack_cstr(&a.pk, "stages");
	msgpack_pack_array(&a.pk, 1);
	msgpack_pack_map(&a.pk, 2);
	mp_pack_cstr(&a.pk, "name");
	mp_pack_cstr(&a.pk, "run");
	mp_pack_cstr(&a.pk, "argv");
	msgpack_pack_array(&a.pk, 1);
	mp_pack_cstr(&a.pk, "true");
	msgpack_zone_init(&z, 4096);
	if (call_sync("target.put", &a, &z, &res, RPC_WRITE) != 0)
		exit(1);
	msgpack_zone_destroy(&z);
	mp_out_free(&a);
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
		    memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

/* active_jobs of target `name` (stale read of the first endpoint). */
static int64_t active_jobs(const char *name)
{
	struct mp_out a;
	msgpack_zone z;
	msgpack_object res;
	int64_t n = -1;
	mp_out_init(&a);
	msgpack_pack_map(&a.pk, 2);
	mp_pack_cstr(&a.pk, "name");
	mp_pack_cstr(&a.pk, name);
	mp_pack_cstr(&a.pk, "stale");
	msgpack_pack_true(&a.pk);
	msgpack_zone_init(&z, 4096);
	if (call_sync("target.get", &a, &z, &res, 0) == 0) {
		const msgpack_object *v = map_get(&res, "active_jobs");
		if (v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			n = (int64_t)v->via.u64;
	}
	msgpack_zone_destroy(&z);
	mp_out_free(&a);
	return n;
}

/* Free slots over the live, non-draining nodes (node.list). */
static unsigned free_slots(void)
{
	msgpack_zone z;
	msgpack_object res;
	unsigned n = 0;
	msgpack_zone_init(&z, 4096);
	if (call_sync("node.list", NULL, &z, &res, 0) == 0 && res.type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < res.via.array.size; i++) {
			const msgpack_object *s = map_get(&res.via.array.ptr[i], "slots");
			const msgpack_object *down = map_get(&res.via.array.ptr[i], "down");
			if (s != NULL && s->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    !(down != NULL && down->type == MSGPACK_OBJECT_BOOLEAN &&
			      down->via.boolean))
				n += (unsigned)s->via.u64;
		}
	}
	msgpack_zone_destroy(&z);
	return n;
}

/* ---- bulk submits ---------------------------------------------------------- */

struct slot {
	struct rpc_request req;
};

static void issue(struct slot *s);

static void build_submit(void)
{
	char src[64];
	int k =
	    snprintf(src, sizeof(src), "/* %016" PRIx64 " %" PRIu64 " */", B.nonce, B.counter++);
	mp_out_reset(&B.args);
	msgpack_pack_map(&B.args.pk, 2);
	mp_pack_cstr(&B.args.pk, "target");
	mp_pack_cstr(&B.args.pk, B.target);
	mp_pack_cstr(&B.args.pk, "sources");
	msgpack_pack_array(&B.args.pk, 1);
	msgpack_pack_map(&B.args.pk, 2);
	mp_pack_cstr(&B.args.pk, "path");
	mp_pack_cstr(&B.args.pk, "in.c");
	mp_pack_cstr(&B.args.pk, "data");
	mp_pack_bin(&B.args.pk, src, (size_t)k);
}

static void on_submitted(struct rpc_request *r, int status, const struct ing_error *err,
                         const msgpack_object *result)
{
	(void)result;
	B.done++;
	if (status == 0) {
		B.ok++;
	} else if (B.errors++ < 3) {
		fprintf(stderr, "jobs_bench: job.submit: %s: %s\n", ing_err_name(status),
		        err != NULL ? err->msg : "");
	}
	if (B.issued < B.to_issue)
		issue((struct slot *)r);
	else if (B.done == B.issued)
		uv_stop(B.loop);
}

static void issue(struct slot *s)
{
	build_submit();
	s->req.data = s;
	s->req.cb = on_submitted;
	s->req.request_id = NULL;
	if (rpc_client_call(B.c, &s->req, "job.submit", B.args.data, B.args.len, RPC_WRITE) != 0)
		die("rpc_client_call failed");
	B.issued++;
}

/* Submits n jobs of target, B.inflight at a time; returns the ones accepted. */
static uint64_t submit_many(const char *target, uint64_t n)
{
	struct slot *slots = calloc(B.inflight, sizeof(*slots));
	if (slots == NULL)
		die("out of memory");
	B.target = target;
	B.to_issue = n;
	B.issued = B.done = B.ok = B.errors = 0;
	for (unsigned i = 0; i < B.inflight && B.issued < n; i++)
		issue(&slots[i]);
	if (n > 0)
		uv_run(B.loop, UV_RUN_DEFAULT);
	free(slots);
	return B.ok;
}

/* ---- CPU ------------------------------------------------------------------ */

/* utime + stime + cutime + cstime of the --pids processes, in ms. */
static double pids_cpu_ms(void)
{
	double ticks = 0;
	long hz = sysconf(_SC_CLK_TCK);
	for (unsigned i = 0; i < B.npids; i++) {
		char path[64], buf[1024];
		snprintf(path, sizeof(path), "/proc/%d/stat", B.pids[i]);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t got = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[got] = '\0';
		char *p = strrchr(buf, ')');
		unsigned long long ut, st;
		long long cut, cst;
		if (p != NULL && sscanf(p + 2,
		                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
		                        "%lld %lld",
		                        &ut, &st, &cut, &cst) == 4)
			ticks += (double)(ut + st) + (double)(cut + cst);
	}
	return ticks * 1000.0 / (double)hz;
}

/* --settle-s: waits until the --pids processes are quiet (under 5 % of one
 * core over 500 ms), at most B.settle_s seconds; prints how long it took. */
static void settle(void)
{
	if (B.settle_s == 0 || B.npids == 0)
		return;
	double t0 = mono_s(), busy = 100;
	while (mono_s() - t0 < B.settle_s) {
		double c0 = pids_cpu_ms();
		usleep(500000);
		busy = (pids_cpu_ms() - c0) / 500.0 * 100.0;
		if (busy < 5.0)
			break;
	}
	printf("jobs_bench settled seconds=%.2f cpu_pct=%.0f\n", mono_s() - t0, busy);
}

static double self_cpu_ms(void)
{
	struct rusage a, b;
	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
	                b.ru_stime.tv_sec) *
	           1e3 +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
	                b.ru_stime.tv_usec) /
	           1e3;
}

/* ---- anchor ---------------------------------------------------------------- */

/* n spawns of /bin/true, conc at a time; sets *rate and *cpu_ms_each. */
static void anchor(uint64_t n, unsigned conc, double *rate, double *cpu_each)
{
	char *const argv[] = {(char *)"true", NULL};
	uint64_t started = 0, reaped = 0;
	unsigned running = 0;
	double c0 = self_cpu_ms(), t0 = mono_s();
	while (reaped < n) {
		while (running < conc && started < n) {
			pid_t pid;
			if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0)
				die("posix_spawn /bin/true failed");
			started++;
			running++;
		}
		int st;
		if (waitpid(-1, &st, 0) > 0) {
			running--;
			reaped++;
		}
	}
	double secs = mono_s() - t0;
	*rate = (double)n / secs;
	*cpu_each = (self_cpu_ms() - c0) / (double)n;
	printf("jobs_bench anchor spawns=%" PRIu64 " concurrency=%u seconds=%.2f rate=%.1f "
	       "cpu_ms_per_spawn=%.3f\n",
	       n, conc, secs, *rate, *cpu_each);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	ing_log_set_level(ING_LOG_LEVEL_WARN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	B.nonce = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	mp_out_init(&B.args);
	B.loop = uv_default_loop();
	struct rpc_client_options o = {.endpoints = B.endpoints,
	                               .nendpoints = B.nendpoints,
	                               .timeout_ms = 30000,
	                               .token = B.token};
	struct ing_error e;
	if (rpc_client_new(B.loop, &o, &B.c, &e) != 0)
		die(e.msg);

	put_target("jobs-true", NULL);
	if (B.backlog > 0) {
		put_target("jobs-never", "no-such-tool");
		double t0 = mono_s();
		uint64_t ok = submit_many("jobs-never", B.backlog);
		printf("jobs_bench backlog jobs=%" PRIu64 " accepted=%" PRIu64 " seconds=%.2f\n",
		       B.backlog, ok, mono_s() - t0);
	}
	settle();
	unsigned conc = B.spawn_conc;
	if (conc == 0)
		conc = free_slots();
	if (conc == 0)
		conc = 1;

	double a1, c1, a2, c2;
	anchor(B.jobs, conc, &a1, &c1);

	double cpu0 = pids_cpu_ms(), t0 = mono_s();
	uint64_t ok = submit_many("jobs-true", B.jobs);
	double t_sub = mono_s() - t0;
	int64_t left = -1;
	while ((left = active_jobs("jobs-true")) != 0) {
		if (mono_s() - t0 > B.timeout_s) {
			fprintf(stderr, "jobs_bench: %" PRId64 " jobs not finished after %u s\n",
			        left, B.timeout_s);
			return 1;
		}
		usleep(10000);
	}
	double secs = mono_s() - t0, cpu = pids_cpu_ms() - cpu0;
	double rate = (double)ok / secs;
	printf("jobs_bench ingot jobs=%" PRIu64 " submitted_in=%.2f seconds=%.2f rate=%.1f "
	       "cpu_ms_per_job=%.3f (pids=%u)\n",
	       ok, t_sub, secs, rate, B.npids > 0 ? cpu / (double)ok : 0.0, B.npids);

	anchor(B.jobs, conc, &a2, &c2);
	double arate = (a1 + a2) / 2;
	printf("jobs_bench result jobs=%" PRIu64 " ingot_rate=%.1f anchor_rate=%.1f ratio=%.3f "
	       "ingot_cpu_ms_per_job=%.3f anchor_cpu_ms_per_spawn=%.3f backlog=%" PRIu64
	       " concurrency=%u\n",
	       ok, rate, arate, rate / arate, B.npids > 0 ? cpu / (double)ok : 0.0, (c1 + c2) / 2,
	       B.backlog, conc);
	rpc_client_close(B.c, NULL, NULL);
	uv_run(B.loop, UV_RUN_DEFAULT);
	uv_loop_close(B.loop);
	mp_out_free(&B.args);
	return ok == B.jobs ? 0 : 1;
}
