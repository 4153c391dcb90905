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

static void put_target(struct store *s, struct sm *sm, struct sm_result *res)
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
	c.u.target_put.spec.name = ing_str_c("x86_64-cc");
	c.u.target_put.spec.nstages = 1;
	c.u.target_put.spec.stages = &st;
	mp_out_init(&o);
	if (cmd_encode(&c, &o, &e) != 0)
		die("encode target", e.code);
	if ((rv = store_batch_txn(s, &t)) != 0 ||
	    (rv = sm_apply(sm, t, 1, o.data, o.len, res)) != 0 || (rv = store_batch_flush(s)) != 0)
		die("target", rv);
	mp_out_free(&o);
}

static double run(const char *parent, const char *name, const struct mp_out *log, unsigned n,
                  enum store_sync sync, unsigned batch_max)
{
	char dir[4096];
	struct store_options opts = {.sync = sync, .batch_max = batch_max};
	struct store *s;
	struct sm *sm;
	struct sm_result res;
	struct ing_error e;
	double t0, dt;
	int rv;

	snprintf(dir, sizeof(dir), "%s/%s", parent, name);
	if (mkdir(dir, 0700) != 0) {
		perror(dir);
		exit(1);
	}
	if ((rv = store_open(dir, &opts, &s, &e)) != 0) {
		fprintf(stderr, "apply_bench: %s\n", e.msg);
		exit(1);
	}
	if (sm_new(&sm) != 0)
		exit(1);
	sm_result_init(&res);
	put_target(s, sm, &res);

	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		struct store_txn *t;
		if ((rv = store_batch_txn(s, &t)) != 0)
			die("batch", rv);
		if ((rv = sm_apply(sm, t, i + 2, log[i].data, log[i].len, &res)) != 0)
			die("apply", rv);
		if (res.err.code != 0) {
			fprintf(stderr, "apply_bench: submit rejected: %s\n", res.err.msg);
			exit(1);
		}
		if ((rv = store_batch_note(s)) != 0)
			die("commit", rv);
	}
	if ((rv = store_batch_flush(s)) != 0)
		die("flush", rv);
	dt = now_s() - t0;

	sm_result_free(&res);
	sm_free(sm);
	store_close(s);
	char path[4200];
	snprintf(path, sizeof(path), "%s/state.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state.mdb-lock", dir);
	unlink(path);
	rmdir(dir);
	return n / dt;
}

int main(int argc, char **argv)
{
	unsigned n = 200000, source_bytes = 256;
	const char *parent = NULL;
	char made[64] = "";
	int opt;

	while ((opt = getopt(argc, argv, "n:d:s:")) != -1) {
		switch (opt) {
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': parent = optarg; break;
		case 's': source_bytes = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr,
			        "usage: apply_bench [-n COMMANDS] [-d DIR] [-s SOURCE_BYTES]\n");
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
