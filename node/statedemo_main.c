/*
 * statedemo_main.c - `ingot-statedemo DIR`: the replicated state machine on
 * its own, before there is a network.
 *
 * Applies a scripted sequence of commands -- register a node and a target,
 * submit jobs, assign them, run their stages, finish, cancel, lose a node,
 * retry -- to a real LMDB store in DIR, through the same encode -> apply path
 * the Raft log will use, and prints the resulting jobs and one job's history.
 * Rejections are part of the script (a stale report, an illegal transition)
 * and are printed with their error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/sm/cmd.h"
#include "node/sm/sm.h"
#include "storage/records.h"
#include "storage/store.h"

struct demo {
	struct store *store;
	struct sm *sm;
	struct sm_result res;
	struct mp_out enc;
	uint64_t index;
	uint64_t time_ms;
};

static struct cmd new_cmd(struct demo *d, uint32_t type)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = type;
	c.version = cmd_type_version(type);
	c.time_ms = d->time_ms;
	d->time_ms += 1500;
	c.request_id = ing_str_c("");
	return c;
}

/* Encodes and applies one command; prints it and its outcome. */
static int apply(struct demo *d, const struct cmd *c, const char *what)
{
	struct store_txn *t;
	struct ing_error e;
	int rv;

	mp_out_reset(&d->enc);
	rv = cmd_encode(c, &d->enc, &e);
	if (rv != 0) {
		fprintf(stderr, "statedemo: cannot encode %s: %s\n", what, e.msg);
		exit(1);
	}
	rv = store_batch_txn(d->store, &t);
	if (rv == 0)
		rv = sm_apply(d->sm, t, ++d->index, d->enc.data, d->enc.len, &d->res);
	if (rv == 0)
		rv = store_batch_note(d->store);
	if (rv != 0) {
		fprintf(stderr, "statedemo: store failed: %s\n", ing_err_name(rv));
		exit(1);
	}
	if (d->res.err.code == 0)
		printf("  [%3" PRIu64 "] %-16s %-44s ok\n", d->index, cmd_type_name(c->type), what);
	else
		printf("  [%3" PRIu64 "] %-16s %-44s REJECTED %s: %s\n", d->index,
		       cmd_type_name(c->type), what, ing_err_name(d->res.err.code), d->res.err.msg);
	return d->res.err.code;
}

static uint64_t submit(struct demo *d, const char *file, const char *code, uint32_t priority,
                       const char *tenant)
{
	struct cmd c = new_cmd(d, CMD_JOB_SUBMIT);
	struct cmd_file src = {ing_str_c(file), ing_str_c(code)};
	char what[64];
	msgpack_object o;
	size_t off = 0;
	msgpack_zone z;

	c.u.job_submit.tenant = ing_str_c(tenant);
	c.u.job_submit.target = ing_str_c("x86_64-cc");
	c.u.job_submit.priority = priority;
	c.u.job_submit.max_attempts = 2;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = &src;
	snprintf(what, sizeof(what), "%s priority %" PRIu32 " tenant %s", file, priority, tenant);
	if (apply(d, &c, what) != 0)
		exit(1);
	msgpack_zone_init(&z, 1024);
	msgpack_unpack(d->res.value.data, d->res.value.len, &off, &z, &o);
	uint64_t id = o.via.u64;
	msgpack_zone_destroy(&z);
	return id;
}

static void assign(struct demo *d, uint64_t job, uint64_t node, uint32_t attempt)
{
	struct cmd c = new_cmd(d, CMD_JOB_ASSIGN);
	char what[64];
	c.u.job_assign.job = job;
	c.u.job_assign.node = node;
	c.u.job_assign.attempt = attempt;
	c.u.job_assign.lease_until_ms = c.time_ms + 30000;
	snprintf(what, sizeof(what), "job %" PRIu64 " -> node %" PRIu64 " attempt %" PRIu32, job,
	         node, attempt);
	apply(d, &c, what);
}

static void stage(struct demo *d, uint64_t job, uint32_t attempt, uint32_t s, int exit_code)
{
	struct cmd c = new_cmd(d, CMD_JOB_STAGE_START);
	char what[64];
	c.u.job_stage_start.job = job;
	c.u.job_stage_start.attempt = attempt;
	c.u.job_stage_start.stage = s;
	snprintf(what, sizeof(what), "job %" PRIu64 " attempt %" PRIu32 " stage %" PRIu32, job,
	         attempt, s);
	if (apply(d, &c, what) != 0)
		return;
	c = new_cmd(d, CMD_JOB_STAGE_FINISH);
	c.u.job_stage_finish.job = job;
	c.u.job_stage_finish.attempt = attempt;
	c.u.job_stage_finish.stage = s;
	c.u.job_stage_finish.exit_code = exit_code;
	c.u.job_stage_finish.duration_ms = 840 + 100 * s;
	c.u.job_stage_finish.has_log = true;
	c.u.job_stage_finish.log =
	    ing_str_c(exit_code == 0 ? "ok\n" : "error: undefined fir_tap\n");
	snprintf(what, sizeof(what), "job %" PRIu64 " stage %" PRIu32 " exit %d", job, s,
	         exit_code);
	apply(d, &c, what);
}

static void finish(struct demo *d, uint64_t job, uint32_t attempt, uint8_t outcome)
{
	struct cmd c = new_cmd(d, CMD_JOB_FINISH);
	char what[64];
	c.u.job_finish.job = job;
	c.u.job_finish.attempt = attempt;
	c.u.job_finish.outcome = outcome;
	c.u.job_finish.message =
	    ing_str_c(outcome == REC_JOB_FAILED ? "stage compile exited with status 1" : "");
	snprintf(what, sizeof(what), "job %" PRIu64 " attempt %" PRIu32 " %s", job, attempt,
	         rec_job_state_name(outcome));
	apply(d, &c, what);
}

static void print_jobs(struct demo *d)
{
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);

	printf("\n  %-4s %-10s %-10s %-11s %-8s %-5s %-9s %s\n", "ID", "TARGET", "TENANT", "STATE",
	       "ATTEMPT", "NODE", "PRIORITY", "ERROR");
	if (z == NULL || store_read_begin(d->store, &t) != 0)
		exit(1);
	if (store_iter_open(t, STORE_JOBS, (struct ing_str){"", 0}, &it) != 0)
		exit(1);
	while (store_iter_next(it, &k, &v) == 0) {
		struct rec_job j;
		if (rec_job_decode(v, z, &j, NULL) != 0)
			exit(1);
		char node[24] = "-";
		if (j.node_id != 0)
			snprintf(node, sizeof(node), "%" PRIu64, j.node_id);
		printf(
		    "  %-4" PRIu64 " %-10.*s %-10.*s %-11s %-8" PRIu32 " %-5s %-9" PRIu32 " %.*s\n",
		    j.id, ING_STR_FMT(j.target), ING_STR_FMT(j.tenant), rec_job_state_name(j.state),
		    j.attempt, node, j.priority, ING_STR_FMT(j.error));
	}
	store_iter_close(it);
	store_abort(t);
	msgpack_zone_free(z);
}

static void print_events(struct demo *d, uint64_t job)
{
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	uint8_t start[8];
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);

	printf("\n  history of job %" PRIu64 ":\n", job);
	store_be64(start, job);
	if (z == NULL || store_read_begin(d->store, &t) != 0 ||
	    store_iter_open(t, STORE_EVENTS, (struct ing_str){(const char *)start, 8}, &it) != 0)
		exit(1);
	while (store_iter_next(it, &k, &v) == 0 && store_get_be64(k.ptr) == job) {
		struct rec_event ev;
		if (rec_event_decode(v, z, &ev, NULL) != 0)
			exit(1);
		printf("    t=+%-6" PRIu64 " %-16s state=%-9s attempt=%" PRIu32,
		       ev.time_ms % 1000000, rec_event_kind_name(ev.kind),
		       rec_job_state_name(ev.state), ev.attempt);
		if (ev.stage >= 0)
			printf(" stage=%d", ev.stage);
		if (ev.kind == REC_EV_STAGE_FINISHED)
			printf(" exit=%" PRId64, ev.exit_code);
		if (ev.message.len > 0)
			printf(" \"%.*s\"", ING_STR_FMT(ev.message));
		printf("\n");
	}
	store_iter_close(it);
	store_abort(t);
	msgpack_zone_free(z);
}

int main(int argc, char **argv)
{
	struct demo d;
	struct ing_error e;
	struct store_options opts = {.sync = STORE_SYNC_FULL};
	struct ing_str caps[] = {ing_str_c("cc")};
	struct ing_str compile[] = {ing_str_c("cc"),       ing_str_c("-O2"), ing_str_c("-c"),
	                            ing_str_c("{source}"), ing_str_c("-o"),  ing_str_c("kernel.o")};
	struct ing_str verify[] = {ing_str_c("./verify"), ing_str_c("kernel.o")};
	struct ing_str outs[] = {ing_str_c("kernel.o")};
	struct rec_stage_def stages[2] = {
	    {.name = ing_str_c("compile"),
	     .nargv = 6,
	     .argv = compile,
	     .timeout_ms = 60000,
	     .noutputs = 1,
	     .outputs = outs},
	    {.name = ing_str_c("verify"), .nargv = 2, .argv = verify, .timeout_ms = 30000},
	};
	struct cmd c;

	if (argc != 2) {
		fprintf(stderr, "usage: ingot-statedemo DIR\n");
		return 2;
	}
	ing_log_set_level(ING_LOG_LEVEL_ERROR);
	memset(&d, 0, sizeof(d));
	d.time_ms = 1795000000000ull;
	/* DIR may be a node's data directory: never while a node has it. */
	int lock_fd = -1;
	if (ing_mkdirs(argv[1], 0700, &e) != 0 || ing_dir_lock(argv[1], &lock_fd, &e) != 0) {
		fprintf(stderr, "statedemo: %s\n", e.msg);
		return e.code == ING_ECONFLICT ? 2 : 1;
	}
	if (store_open(argv[1], &opts, &d.store, &e) != 0) {
		fprintf(stderr, "statedemo: %s\n", e.msg);
		return 1;
	}
	if (sm_new(&d.sm) != 0)
		return 1;
	sm_result_init(&d.res);
	mp_out_init(&d.enc);

	printf("ingot state machine demo: store %s\n\n", store_path(d.store));
	for (uint64_t n = 1; n <= 2; n++) {
		c = new_cmd(&d, CMD_NODE_REGISTER);
		c.u.node_register.spec.id = n;
		c.u.node_register.spec.ncaps = 1;
		c.u.node_register.spec.caps = caps;
		c.u.node_register.spec.slots = 2;
		apply(&d, &c, n == 1 ? "node 1, cc, 2 slots" : "node 2, cc, 2 slots");
	}
	c = new_cmd(&d, CMD_TARGET_PUT);
	c.u.target_put.spec.name = ing_str_c("x86_64-cc");
	c.u.target_put.spec.ncaps = 1;
	c.u.target_put.spec.caps = caps;
	c.u.target_put.spec.nstages = 2;
	c.u.target_put.spec.stages = stages;
	apply(&d, &c, "x86_64-cc: compile, verify");

	uint64_t fir = submit(&d, "fir.c", "void fir(float *x) { }\n", 80, "radar-lab");
	uint64_t fft = submit(&d, "fft.c", "void fft(float *x) { }\n", 50, "radar-lab");
	uint64_t bad = submit(&d, "cfar.c", "void cfar(void) { fir_tap(); }\n", 50, "comms");
	uint64_t later = submit(&d, "agc.c", "void agc(void) { }\n", 10, "comms");

	/* fir runs to success on node 1 */
	assign(&d, fir, 1, 1);
	stage(&d, fir, 1, 0, 0);
	stage(&d, fir, 1, 1, 0);
	finish(&d, fir, 1, REC_JOB_SUCCEEDED);
	finish(&d, fir, 1, REC_JOB_SUCCEEDED); /* rejected: already ended */

	/* fft starts on node 2, node 2 is lost, fft runs again on node 1 */
	assign(&d, fft, 2, 1);
	stage(&d, fft, 1, 0, 0);
	c = new_cmd(&d, CMD_NODE_DOWN);
	c.u.node_down.node = 2;
	c.u.node_down.reason = ing_str_c("no heartbeat for 10s");
	apply(&d, &c, "node 2 silent");
	stage(&d, fft, 1, 1, 0); /* rejected: attempt 1 was fenced */
	assign(&d, fft, 1, 2);
	stage(&d, fft, 2, 0, 0);
	stage(&d, fft, 2, 1, 0);
	finish(&d, fft, 2, REC_JOB_SUCCEEDED);

	/* cfar fails to compile; the operator fixes nothing and retries */
	assign(&d, bad, 1, 1);
	stage(&d, bad, 1, 0, 1);
	finish(&d, bad, 1, REC_JOB_FAILED);
	c = new_cmd(&d, CMD_JOB_RETRY);
	c.u.job_retry.job = bad;
	apply(&d, &c, "operator retries the failed job");

	/* agc is cancelled while queued */
	c = new_cmd(&d, CMD_JOB_CANCEL);
	c.u.job_cancel.job = later;
	c.u.job_cancel.reason = ing_str_c("submitted by mistake");
	apply(&d, &c, "cancel a queued job");

	if (store_batch_flush(d.store) != 0)
		return 1;
	print_jobs(&d);
	print_events(&d, fft);

	mp_out_free(&d.enc);
	sm_result_free(&d.res);
	sm_free(d.sm);
	store_close(d.store);
	return 0;
}
