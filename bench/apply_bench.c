/*
 * apply_bench.c - throughput of the state machine's apply on the real disk.
 *
 *   apply_bench [-n COMMANDS] [-d DIR] [-s SOURCE_BYTES]
 *
 * Pre-encodes COMMANDS job_submit commands (each with one source file of
 * SOURCE_BYTES, distinct contents so every submit stores a new artifact),
 * then applies them to a fresh store in DIR (default: a new directory under
 * the current one, so the benchmark measures the disk the project lives on,
 * not a tmpfs) in several modes:
 *
 *   batched      one write transaction per batch of 1,024 applies (the way
 *                the node applies: store_batch_*), fsync on commit
 *   per-command  one write transaction and fsync per apply
 *   batched, nometasync / per-command, nometasync   the same with
 *                MDB_NOMETASYNC (one fsync per commit instead of two)
 *   batched, no sync   no fsync at all: the CPU cost of apply alone
 *
 * and prints commands/s for each.  Per-command modes run on a tenth of the
 * commands (they are 2-3 orders of magnitude slower).  Figures go in
 * docs/performance.md.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "node/sm/cmd.h"
#include "node/sm/sm.h"
#include "storage/store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rv)
{
	fprintf(stderr, "apply_bench: %s: %s\n", what, ing_err_name(rv));
	exit(1);
}

static void encode_all(struct mp_out *log, unsigned n, unsigned source_bytes)
{
	char *data = malloc(source_bytes + 16);
	struct ing_error e;
	for (unsigned i = 0; i < n; i++) {
		struct cmd c;
		struct cmd_file src;
		memset(&c, 0, sizeof(c));
		c.type = CMD_JOB_SUBMIT;
		c.version = cmd_type_version(CMD_JOB_SUBMIT);
		c.time_ms = 1795000000000ull + i;
		c.request_id = ing_str_c("");
		memset(data, 'a' + (int)(i % 26), source_bytes);
		int k = snprintf(data, source_bytes + 16, "/* job %u */", i);
		src.path = ing_str_c("kernel.c");
		src.data =
		    (struct ing_str){data, source_bytes > (unsigned)k ? source_bytes : (unsigned)k};
		c.u.job_submit.tenant = ing_str_c(i % 3 == 0 ? "radar" : "comms");
		c.u.job_submit.target = ing_str_c("x86_64-cc");
		c.u.job_submit.priority = i % 101;
		c.u.job_submit.max_attempts = 3;
		c.u.job_submit.nsources = 1;
		c.u.job_submit.sources = &src;
		mp_out_init(&log[i]);
		if (cmd_encode(&c, &log[i], &e) != 0) {
			fprintf(stderr, "apply_bench: encode: %s\n", e.msg);
			exit(1);
		}
	}
	free(data);
}

static void put_target_named(struct store *s, struct sm *sm, struct sm_result *res,
                             const char *name, uint64_t index)
{
	struct ing_str argv[] = {{"cc", 2}, {"{source}", 8}};
	struct rec_stage_def st = {
	    .name = {"compile", 7}, .nargv = 2, .argv = argv, .timeout_ms = 60000};
	struct cmd c;
	struct mp_out o;
	struct ing_error e;
	struct store_txn *t;
	int rv;

	memset(&c, 0, sizeof(c));
	c.type = CMD_TARGET_PUT;
	c.version = cmd_type_version(CMD_TARGET_PUT);
	c.request_id = ing_str_c("");
	c.u.target_put.spec.name = ing_str_c(name);
	c.u.target_put.spec.nstages = 1;
	c.u.target_put.spec.stages = &st;
	mp_out_init(&o);
	if (cmd_encode(&c, &o, &e) != 0)
		die("encode target", e.code);
	if ((rv = store_batch_txn(s, &t)) != 0 ||
	    (rv = sm_apply(sm, t, index, o.data, o.len, res)) != 0 ||
	    (rv = store_batch_flush(s)) != 0)
		die("target", rv);
	mp_out_free(&o);
}

/* Removes a store's files and its directory. */
static void remove_store(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/state.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state.mdb-lock", dir);
	unlink(path);
	rmdir(dir);
}

/* A fresh store and state machine in parent/name, for one run. */
struct bench_store {
	char dir[4096];
	struct store *s;
	struct sm *sm;
	struct sm_result res;
};

static void bench_store_open(struct bench_store *b, const char *parent, const char *name,
                             enum store_sync sync, unsigned batch_max)
{
	struct store_options opts = {.sync = sync, .batch_max = batch_max};
	struct ing_error e;
	snprintf(b->dir, sizeof(b->dir), "%s/%s", parent, name);
	if (mkdir(b->dir, 0700) != 0) {
		perror(b->dir);
		exit(1);
	}
	if (store_open(b->dir, &opts, &b->s, &e) != 0) {
		fprintf(stderr, "apply_bench: %s\n", e.msg);
		exit(1);
	}
	if (sm_new(&b->sm) != 0)
		exit(1);
	sm_result_init(&b->res);
}

/* Closes and removes the store (its batch flushed by the caller). */
static void bench_store_close(struct bench_store *b)
{
	sm_result_free(&b->res);
	sm_free(b->sm);
	store_close(b->s);
	remove_store(b->dir);
}

static void apply_one(struct store *s, struct sm *sm, uint64_t index, const struct mp_out *o,
                      struct sm_result *res)
{
	struct store_txn *t;
	int rv;
	if ((rv = store_batch_txn(s, &t)) != 0)
		die("batch", rv);
	if ((rv = sm_apply(sm, t, index, o->data, o->len, res)) != 0)
		die("apply", rv);
	if (res->err.code != 0) {
		fprintf(stderr, "apply_bench: entry %" PRIu64 " rejected: %s\n", index,
		        res->err.msg);
		exit(1);
	}
	if ((rv = store_batch_note(s)) != 0)
		die("commit", rv);
}

static double run(const char *parent, const char *name, const struct mp_out *log, unsigned n,
                  enum store_sync sync, unsigned batch_max)
{
	struct bench_store b;
	bench_store_open(&b, parent, name, sync, batch_max);
	put_target_named(b.s, b.sm, &b.res, "x86_64-cc", 1);

	double t0 = now_s();
	for (unsigned i = 0; i < n; i++)
		apply_one(b.s, b.sm, i + 2, &log[i], &b.res);
	int rv = store_batch_flush(b.s);
	if (rv != 0)
		die("flush", rv);
	double dt = now_s() - t0;
	bench_store_close(&b);
	return n / dt;
}

/* ---- lifecycle mode (-l): a trivial job's commands over a backlog ---- */

static void encode_one(const struct cmd *c, struct mp_out *o)
{
	struct ing_error e;
	mp_out_init(o);
	if (cmd_encode(c, o, &e) != 0) {
		fprintf(stderr, "apply_bench: encode %s: %s\n", cmd_type_name(c->type), e.msg);
		exit(1);
	}
}

static struct cmd new_cmd(uint32_t type, uint64_t time_ms)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = type;
	c.version = cmd_type_version(type);
	c.time_ms = time_ms;
	c.request_id = ing_str_c("");
	return c;
}

/* A job_submit of target `target` with one ~30-byte source, as jobs_bench's. */
static void encode_submit(struct mp_out *o, const char *target, unsigned i)
{
	char data[64];
	struct cmd_file src;
	struct cmd c = new_cmd(CMD_JOB_SUBMIT, 1795000000000ull + i);
	int k = snprintf(data, sizeof(data), "/* %016x %u */", 0x5eedu, i);
	src.path = ing_str_c("in.c");
	src.data = (struct ing_str){data, (size_t)k};
	c.u.job_submit.tenant = ing_str_c("bench");
	c.u.job_submit.target = ing_str_c(target);
	c.u.job_submit.max_attempts = 3;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = &src;
	encode_one(&c, o);
}

static void apply_cmd(struct store *s, struct sm *sm, uint64_t index, const struct cmd *c,
                      struct sm_result *res)
{
	struct mp_out o;
	encode_one(c, &o);
	apply_one(s, sm, index, &o, res);
	mp_out_free(&o);
}

/* Bytes this process caused to be written to disk so far (/proc/self/io
 * write_bytes; 0 where the kernel does not count them). */
static uint64_t written_bytes(void)
{
	char line[128];
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/io", "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "write_bytes: %" SCNu64, &v) == 1)
			break;
	fclose(f);
	return v;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One lifecycle run on a fresh store in parent/name: `backlog` submits of a
 * target nothing runs (not measured), then `jobs` trivial jobs the way a
 * cluster applies them: submits AHEAD_SUBMITS ahead of the assignments,
 * each assignment (v4, starting stage 0) followed RUNNING later by its
 * stage_finish that ends the job; `batch` applies per transaction, as the
 * node's batches.  Prints and returns the CPU ms per job.
 */
enum { AHEAD_SUBMITS = 64, RUNNING = 8 };

static double lifecycle(const char *parent, const char *name, unsigned backlog, unsigned jobs,
                        unsigned batch, enum store_sync sync)
{
	struct bench_store b;
	struct mp_out o;
	uint64_t index = 1, first_job = 0;
	int rv;

	bench_store_open(&b, parent, name, sync, batch);
	struct store *s = b.s;
	struct sm *sm = b.sm;
	struct sm_result *res = &b.res;
	put_target_named(s, sm, res, "jobs-never", index++);
	put_target_named(s, sm, res, "jobs-true", index++);
	struct cmd reg = new_cmd(CMD_NODE_REGISTER, 1795000000000ull);
	reg.u.node_register.spec.id = 1;
	reg.u.node_register.spec.slots = 2;
	apply_cmd(s, sm, index++, &reg, res);
	for (unsigned i = 0; i < backlog; i++) {
		encode_submit(&o, "jobs-never", i);
		apply_one(s, sm, index++, &o, res);
		mp_out_free(&o);
	}
	if ((rv = store_batch_flush(s)) != 0)
		die("flush", rv);
	first_job = backlog + 1;

	/* Encoded ahead, so the measure is the apply. */
	struct mp_out *sub = calloc(jobs, sizeof(*sub)), *asg = calloc(jobs, sizeof(*asg)),
	              *fin = calloc(jobs, sizeof(*fin));
	for (unsigned i = 0; i < jobs; i++) {
		encode_submit(&sub[i], "jobs-true", backlog + i);
		struct cmd a = new_cmd(CMD_JOB_ASSIGN, 1795000001000ull + i);
		a.u.job_assign.job = first_job + i;
		a.u.job_assign.node = 1;
		a.u.job_assign.attempt = 1;
		a.u.job_assign.lease_until_ms = 1795000100000ull;
		a.u.job_assign.start = true;
		a.u.job_assign.ahead = RUNNING;
		encode_one(&a, &asg[i]);
		struct cmd f = new_cmd(CMD_JOB_STAGE_FINISH, 1795000001001ull + i);
		f.u.job_stage_finish.job = first_job + i;
		f.u.job_stage_finish.attempt = 1;
		f.u.job_stage_finish.duration_ms = 1;
		f.u.job_stage_finish.has_log = true;
		f.u.job_stage_finish.log = ing_str_c("");
		f.u.job_stage_finish.then = CMD_THEN_FINISH;
		f.u.job_stage_finish.outcome = REC_JOB_SUCCEEDED;
		f.u.job_stage_finish.message = ing_str_c("");
		encode_one(&f, &fin[i]);
	}

	double c0 = cpu_s(), t0 = now_s();
	uint64_t w0 = written_bytes();
	unsigned submitted = 0, assigned = 0, finished = 0;
	while (finished < jobs) {
		if (submitted < jobs && submitted < assigned + AHEAD_SUBMITS) {
			apply_one(s, sm, index++, &sub[submitted++], res);
		} else if (assigned < submitted && assigned < finished + RUNNING) {
			apply_one(s, sm, index++, &asg[assigned++], res);
		} else {
			apply_one(s, sm, index++, &fin[finished++], res);
		}
	}
	if ((rv = store_batch_flush(s)) != 0)
		die("flush", rv);
	double cpu_ms = (cpu_s() - c0) * 1e3 / jobs, wall = now_s() - t0;
	double kb = (double)(written_bytes() - w0) / 1024.0 / jobs;
	printf(
	    "  %-10s backlog %7u jobs %6u batch %4u: %7.0f jobs/s  cpu %.4f ms/job  %.1f KiB/job\n",
	    name, backlog, jobs, batch, jobs / wall, cpu_ms, kb);
	fflush(stdout);

	for (unsigned i = 0; i < jobs; i++) {
		mp_out_free(&sub[i]);
		mp_out_free(&asg[i]);
		mp_out_free(&fin[i]);
	}
	free(sub);
	free(asg);
	free(fin);
	bench_store_close(&b);
	return cpu_ms;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ROUNDS alternating lifecycle runs without and with the backlog; prints
 * the medians of the CPU per job and their ratio. */
static int lifecycle_rounds(const char *parent, unsigned jobs, unsigned backlog, unsigned rounds,
                            unsigned batch, enum store_sync sync)
{
	double *none = calloc(rounds, sizeof(double)), *with = calloc(rounds, sizeof(double));
	if (rounds == 0 || batch == 0 || none == NULL || with == NULL) {
		fprintf(stderr, "apply_bench: -r and -B must be >= 1\n");
		return 2;
	}
	printf("apply_bench: lifecycle of %u trivial jobs (submit, assign, stage_finish), "
	       "%u applies per transaction, %s, backlog 0 and %u alternating\n",
	       jobs, batch, sync == STORE_SYNC_NONE ? "no fsync" : "fsync", backlog);
	for (unsigned r = 0; r < rounds; r++) {
		none[r] = lifecycle(parent, "lc-0", 0, jobs, batch, sync);
		with[r] = lifecycle(parent, "lc-backlog", backlog, jobs, batch, sync);
	}
	qsort(none, rounds, sizeof(double), cmp_double);
	qsort(with, rounds, sizeof(double), cmp_double);
	printf("  median cpu per job: %.4f ms without, %.4f ms with the backlog (%.2fx)\n",
	       none[rounds / 2], with[rounds / 2], with[rounds / 2] / none[rounds / 2]);
	free(none);
	free(with);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned n = 200000, source_bytes = 256, lc_jobs = 0, backlog = 100000, rounds = 3,
	         batch = 16;
	bool lc_fsync = false;
	const char *parent = NULL;
	char made[64] = "";
	int opt;

	while ((opt = getopt(argc, argv, "n:d:s:l:b:r:B:S")) != -1) {
		switch (opt) {
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': parent = optarg; break;
		case 's': source_bytes = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': lc_jobs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'b': backlog = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'B': batch = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': lc_fsync = true; break;
		default:
			fprintf(stderr,
			        "usage: apply_bench [-n COMMANDS] [-d DIR] [-s SOURCE_BYTES]\n"
			        "       apply_bench -l JOBS [-b BACKLOG] [-r ROUNDS] "
			        "[-B BATCH] [-S] [-d DIR]\n");
			return 2;
		}
	}
	if (n < 10 || source_bytes < 16) {
		fprintf(stderr, "apply_bench: -n must be >= 10 and -s >= 16\n");
		return 2;
	}
	if (parent == NULL) {
		snprintf(made, sizeof(made), "apply-bench-XXXXXX");
		if (mkdtemp(made) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		parent = made;
	}
	ing_log_set_level(ING_LOG_LEVEL_ERROR);
	if (lc_jobs > 0) {
		int rv = lifecycle_rounds(parent, lc_jobs, backlog, rounds, batch,
		                          lc_fsync ? STORE_SYNC_FULL : STORE_SYNC_NONE);
		if (made[0] != '\0')
			rmdir(made);
		return rv;
	}

	struct mp_out *log = calloc(n, sizeof(*log));
	encode_all(log, n, source_bytes);
	printf("apply_bench: %u job_submit commands, %u-byte sources, store in %s\n", n,
	       source_bytes, parent);
	double b_full = run(parent, "batched", log, n, STORE_SYNC_FULL, 1024);
	printf("  %-36s %10.0f commands/s\n", "batched (1024/txn), fsync", b_full);
	double b_meta = run(parent, "batched-nometa", log, n, STORE_SYNC_NOMETA, 1024);
	printf("  %-36s %10.0f commands/s\n", "batched (1024/txn), nometasync", b_meta);
	double b_none = run(parent, "batched-nosync", log, n, STORE_SYNC_NONE, 1024);
	printf("  %-36s %10.0f commands/s\n", "batched (1024/txn), no sync (CPU bound)", b_none);
	double p_full = run(parent, "per-command", log, n / 10, STORE_SYNC_FULL, 1);
	printf("  %-36s %10.0f commands/s\n", "one txn per command, fsync", p_full);
	double p_meta = run(parent, "per-command-nometa", log, n / 10, STORE_SYNC_NOMETA, 1);
	printf("  %-36s %10.0f commands/s\n", "one txn per command, nometasync", p_meta);
	printf("  batching speed-up (fsync): %.1fx\n", b_full / p_full);

	for (unsigned i = 0; i < n; i++)
		mp_out_free(&log[i]);
	free(log);
	if (made[0] != '\0')
		rmdir(made);
	return 0;
}
