/*
 * sandbox_bench.c - what the stage sandbox costs (node/worker/sandbox.c).
 *
 *   sandbox_bench [-n ROUNDS] [-d DIR] [-q QUOTA_MIB]
 *
 * Start cost of one stage, `/bin/true` from uv_spawn to its exit callback,
 * in alternating rounds so that the machine's noise hits every variant
 * alike:
 *
 *   raw          uv_spawn of /bin/true (the anchor)
 *   sandbox      sandbox_spawn as the node would run it: own uid, every
 *                namespace, cgroup limits (memory, processes) through the
 *                gate, rlimits (cpu, file size, open files) through prlimit
 *   sandbox, rlimits only   the same on a host without cgroups
 *
 * then the per-attempt cost: sandbox_open + sandbox_close of a sandbox
 * with a QUOTA_MIB (default 2048) loop-mounted work directory, and of one
 * without quota.  Prints mean and median per variant and the ratios to the
 * anchor.  Needs root (the numbers go in docs/performance.md).  DIR
 * (default: a new directory under the current one) must let other users
 * pass (it is made 0711).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "node/worker/sandbox.h"

#define MAX_ROUNDS 2000

static const char *const ENV[] = {"PATH=/usr/bin:/bin", NULL};
static const char *const TRUE_ARGV[] = {"/bin/true", NULL};

struct waiter {
	bool done;
	int64_t status;
};

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct waiter *w = p->data;
	(void)sig;
	w->status = status;
	w->done = true;
	uv_close((uv_handle_t *)p, NULL);
}

static void spin(uv_loop_t *loop, bool *flag)
{
	while (!*flag)
		uv_run(loop, UV_RUN_ONCE);
}

static double raw_once(uv_loop_t *loop)
{
	uv_process_t p;
	struct waiter w = {0};
	uv_process_options_t o;
	memset(&o, 0, sizeof(o));
	o.file = TRUE_ARGV[0];
	o.args = (char **)TRUE_ARGV;
	o.env = (char **)ENV;
	o.exit_cb = on_exit_cb;
	uint64_t t0 = uv_hrtime();
	if (uv_spawn(loop, &p, &o) != 0) {
		fprintf(stderr, "sandbox_bench: uv_spawn failed\n");
		exit(1);
	}
	p.data = &w;
	spin(loop, &w.done);
	return (double)(uv_hrtime() - t0) / 1e6;
}

static double sandbox_once(uv_loop_t *loop, struct sandbox *sb)
{
	uv_process_t p;
	struct waiter w = {0};
	struct sandbox_command cmd = {
	    .argv = TRUE_ARGV,
	    .env = ENV,
	    .limits = {.memory_bytes = 1ull << 30,
	               .processes = 256,
	               .cpu_seconds = 600,
	               .file_size_bytes = 1ull << 30,
	               .open_files = 1024},
	    .exit_cb = on_exit_cb,
	};
	struct ing_error e;
	uint64_t t0 = uv_hrtime();
	if (sandbox_spawn(sb, &p, &cmd, &e) != 0) {
		fprintf(stderr, "sandbox_bench: %s\n", e.msg);
		exit(1);
	}
	p.data = &w;
	spin(loop, &w.done);
	if (w.status != 0) {
		fprintf(stderr, "sandbox_bench: true exited %" PRId64 " in the sandbox\n",
		        w.status);
		exit(1);
	}
	return (double)(uv_hrtime() - t0) / 1e6;
}

struct opened {
	bool done;
	int status;
	struct sandbox *sb;
	char msg[256];
};

static void on_open(struct sandbox *sb, int status, const struct ing_error *e, void *data)
{
	struct opened *o = data;
	o->done = true;
	o->status = status;
	o->sb = sb;
	if (e != NULL)
		snprintf(o->msg, sizeof(o->msg), "%s", e->msg);
}

static void on_closed(void *data, int status, const struct ing_error *e)
{
	(void)status;
	(void)e;
	*(bool *)data = true;
}

static struct sandbox *open_sb(uv_loop_t *loop, struct sandbox_host *h, const char *dir,
                               const char *name, uint64_t quota)
{
	char work[600];
	snprintf(work, sizeof(work), "%s/work/%s", dir, name);
	struct sandbox_request req = {.name = name, .work_dir = work, .disk_bytes = quota};
	struct opened o = {0};
	struct ing_error e;
	if (sandbox_open(h, &req, on_open, &o, &e) != 0) {
		fprintf(stderr, "sandbox_bench: %s\n", e.msg);
		exit(1);
	}
	spin(loop, &o.done);
	if (o.status != 0) {
		fprintf(stderr, "sandbox_bench: %s\n", o.msg);
		exit(1);
	}
	return o.sb;
}

static void close_sb(uv_loop_t *loop, struct sandbox *sb)
{
	bool done = false;
	sandbox_close(sb, on_closed, &done);
	spin(loop, &done);
}

static struct sandbox_host *make_host(uv_loop_t *loop, const char *dir, const char *tag,
                                      bool no_cgroups)
{
	static char state[2][600], parent[2][64];
	int i = no_cgroups ? 1 : 0;
	snprintf(state[i], sizeof(state[i]), "%s/state-%s", dir, tag);
	snprintf(parent[i], sizeof(parent[i]), "ingot-bench-%d-%s", (int)getpid(), tag);
	struct sandbox_config cfg = {
	    .state_dir = state[i],
	    .cgroup_parent = parent[i],
	    .uid_base = 700000u + (uint32_t)(getpid() % 10000) * 8u + (uint32_t)i * 4u,
	    .uid_count = 4,
	    .no_cgroups = no_cgroups,
	};
	struct sandbox_host *h;
	struct ing_error e;
	if (sandbox_host_new(loop, &cfg, &h, &e) != 0) {
		fprintf(stderr, "sandbox_bench: %s\n", e.msg);
		exit(1);
	}
	return h;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct series {
	const char *name;
	double v[MAX_ROUNDS];
	unsigned n;
};

static void report(struct series *s, const struct series *anchor)
{
	double sum = 0;
	for (unsigned i = 0; i < s->n; i++)
		sum += s->v[i];
	qsort(s->v, s->n, sizeof(double), cmp_double);
	double mean = sum / s->n, median = s->v[s->n / 2];
	printf("%-28s n=%-5u mean %7.2f ms  median %7.2f ms  p90 %7.2f ms", s->name, s->n, mean,
	       median, s->v[s->n * 9 / 10]);
	if (anchor != NULL && anchor != s)
		printf("  (median %+.2f ms, x%.1f of raw)", median - anchor->v[anchor->n / 2],
		       median / anchor->v[anchor->n / 2]);
	printf("\n");
}

static void remove_cgroup_parent(const char *parent)
{
	char path[300];
	const char *ctl[] = {"memory", "pids", ""};
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s%s%s", SANDBOX_CGROUP_ROOT, ctl[i],
		         ctl[i][0] ? "/" : "", parent);
		rmdir(path);
	}
}

int main(int argc, char **argv)
{
	unsigned rounds = 200;
	uint64_t quota_mib = 2048;
	char dir[512] = "";
	int opt;
	while ((opt = getopt(argc, argv, "n:d:q:")) != -1) {
		if (opt == 'n')
			rounds = (unsigned)atoi(optarg);
		else if (opt == 'd')
			snprintf(dir, sizeof(dir), "%s", optarg);
		else if (opt == 'q')
			quota_mib = strtoull(optarg, NULL, 10);
		else {
			fprintf(stderr,
			        "usage: sandbox_bench [-n ROUNDS] [-d DIR] [-q QUOTA_MIB]\n");
			return 2;
		}
	}
	if (rounds == 0 || rounds > MAX_ROUNDS)
		rounds = 200;
	if (dir[0] == '\0') {
		char cwd[400];
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return 1;
		snprintf(dir, sizeof(dir), "%s/sandbox-bench-%d", cwd, (int)getpid());
	}
	mkdir(dir, 0711);
	chmod(dir, 0711);
	char work[600];
	snprintf(work, sizeof(work), "%s/work", dir);
	mkdir(work, 0711);
	ing_log_set_level(ING_LOG_LEVEL_WARN);

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sandbox_host *full = make_host(&loop, dir, "cg", false);
	struct sandbox_host *plain = make_host(&loop, dir, "rl", true);
	printf("mechanisms: %s\n", sandbox_host_mechanisms(full));
	struct sandbox *a = open_sb(&loop, full, dir, "bench-cg", 0);
	struct sandbox *b = open_sb(&loop, plain, dir, "bench-rl", 0);

	static struct series raw = {.name = "raw uv_spawn"};
	static struct series sbx = {.name = "sandbox (cgroups)"};
	static struct series rl = {.name = "sandbox (rlimits only)"};
	for (unsigned i = 0; i < 10; i++) { /* warm up the caches */
		raw_once(&loop);
		sandbox_once(&loop, a);
		sandbox_once(&loop, b);
	}
	for (unsigned i = 0; i < rounds; i++) {
		raw.v[raw.n++] = raw_once(&loop);
		sbx.v[sbx.n++] = sandbox_once(&loop, a);
		rl.v[rl.n++] = sandbox_once(&loop, b);
	}
	close_sb(&loop, a);
	close_sb(&loop, b);
	printf("start of /bin/true, %u alternating rounds:\n", rounds);
	report(&raw, NULL);
	report(&sbx, &raw);
	report(&rl, &raw);

	unsigned attempts = rounds / 10 > 5 ? rounds / 10 : 5;
	static struct series q = {.name = "open+close, quota"};
	static struct series nq = {.name = "open+close, no quota"};
	for (unsigned i = 0; i < attempts; i++) {
		char name[32];
		snprintf(name, sizeof(name), "attempt-q%u", i);
		uint64_t t0 = uv_hrtime();
		close_sb(&loop, open_sb(&loop, full, dir, name, quota_mib << 20));
		q.v[q.n++] = (double)(uv_hrtime() - t0) / 1e6;
		snprintf(name, sizeof(name), "attempt-n%u", i);
		t0 = uv_hrtime();
		close_sb(&loop, open_sb(&loop, full, dir, name, 0));
		nq.v[nq.n++] = (double)(uv_hrtime() - t0) / 1e6;
	}
	printf("per attempt (quota %" PRIu64 " MiB), %u alternating rounds:\n", quota_mib,
	       attempts);
	report(&q, NULL);
	report(&nq, NULL);

	sandbox_host_free(full);
	sandbox_host_free(plain);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	char parent[64];
	snprintf(parent, sizeof(parent), "ingot-bench-%d-cg", (int)getpid());
	remove_cgroup_parent(parent);
	snprintf(parent, sizeof(parent), "ingot-bench-%d-rl", (int)getpid());
	remove_cgroup_parent(parent);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "sandbox_bench: could not remove %s\n", dir);
	return 0;
}
