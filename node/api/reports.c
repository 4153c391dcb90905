/*
 * reports.c - worker.report: a worker's report about its attempt
 * (stage_start, stage_finish, finish, lost), turned into the matching
 * command (docs/api.md "Workers").  A stage_finish may carry the stage's
 * own start (`started`) and what follows it (`then`: the next stage's
 * start, or the job's end with `outcome` and `message`), all one command
 * (job_stage_finish version 2).  The state machine fences a report for
 * any attempt but the current one.
 */
#include "node/api/api_internal.h"
#include "rpc/args.h"

/* worker.report: a worker's report about its attempt (stage_start,
 * stage_finish, finish), turned into the matching command. */
void api_op_worker_report(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {
	    "kind",    "job",     "attempt", "stage",   "exit_code", "duration_ms", "log",
	    "outputs", "outcome", "message", "started", "then",      NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str kind, outcome = {"", 0}, message = {"", 0}, then = {"", 0};
	bool started = false;
	uint64_t job = 0, attempt = 0, stage = 0, duration = 0;
	int64_t exit_code = 0;
	struct ing_error e;
	msgpack_zone z;
	struct cmd c;
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	msgpack_zone_init(&z, 1024);
	rv = rpc_arg_str(args, "kind", 16, true, &kind, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "job", UINT64_MAX, true, &job, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "attempt", UINT32_MAX, true, &attempt, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "stage", ING_MAX_STAGES, false, &stage, &e);
	if (rv == 0)
		rv = rpc_arg_i64(args, "exit_code", INT64_MIN, INT64_MAX, false, &exit_code, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "duration_ms", UINT64_MAX, false, &duration, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "outcome", 16, false, &outcome, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "message", ING_MESSAGE_MAX, false, &message, &e);
	if (rv == 0)
		rv = rpc_arg_bool(args, "started", false, &started, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "then", 16, false, &then, &e);
	if (rv != 0)
		goto bad;
	if (ing_str_eq_c(kind, "stage_start")) {
		c = api_new_cmd(CMD_JOB_STAGE_START);
		c.u.job_stage_start.job = job;
		c.u.job_stage_start.attempt = (uint32_t)attempt;
		c.u.job_stage_start.stage = (uint32_t)stage;
	} else if (ing_str_eq_c(kind, "stage_finish")) {
		const msgpack_object *log = rpc_arg_find(args, "log");
		c = api_new_cmd(CMD_JOB_STAGE_FINISH);
		c.u.job_stage_finish.job = job;
		c.u.job_stage_finish.attempt = (uint32_t)attempt;
		c.u.job_stage_finish.stage = (uint32_t)stage;
		c.u.job_stage_finish.exit_code = exit_code;
		c.u.job_stage_finish.duration_ms = duration;
		c.u.job_stage_finish.has_log = log != NULL && log->type != MSGPACK_OBJECT_NIL;
		rv = rpc_arg_bin(args, "log", ING_SOURCE_MAX_BYTES, false,
		                 &c.u.job_stage_finish.log, &e);
		if (rv == 0)
			rv = api_files_arg(args, "outputs", ING_MAX_OUTPUTS, &z,
			                   &c.u.job_stage_finish.noutputs,
			                   &c.u.job_stage_finish.outputs, &e);
		if (rv != 0)
			goto bad;
		c.u.job_stage_finish.started = started;
		if (ing_str_eq_c(then, "next")) {
			c.u.job_stage_finish.then = CMD_THEN_NEXT;
		} else if (ing_str_eq_c(then, "finish")) {
			uint8_t state;
			if (rec_job_state_parse(outcome, &state) != 0 ||
			    !rec_job_state_final(state)) {
				rv = ing_error_set(
				    &e, ING_EINVAL,
				    "argument 'outcome': expected succeeded, failed or "
				    "cancelled");
				goto bad;
			}
			c.u.job_stage_finish.then = CMD_THEN_FINISH;
			c.u.job_stage_finish.outcome = state;
			c.u.job_stage_finish.message = message;
		} else if (then.len > 0) {
			rv = ing_error_set(&e, ING_EINVAL,
			                   "argument 'then': expected next or finish");
			goto bad;
		}
	} else if (ing_str_eq_c(kind, "finish")) {
		uint8_t state;
		c = api_new_cmd(CMD_JOB_FINISH);
		c.u.job_finish.job = job;
		c.u.job_finish.attempt = (uint32_t)attempt;
		c.u.job_finish.message = message;
		if (rec_job_state_parse(outcome, &state) != 0 || !rec_job_state_final(state)) {
			rv = ing_error_set(&e, ING_EINVAL,
			                   "argument 'outcome': expected succeeded, failed or "
			                   "cancelled");
			goto bad;
		}
		c.u.job_finish.outcome = state;
	} else if (ing_str_eq_c(kind, "lost")) {
		c = api_new_cmd(CMD_JOB_REQUEUE);
		c.u.job_requeue.job = job;
		c.u.job_requeue.attempt = (uint32_t)attempt;
		c.u.job_requeue.reason = message;
	} else {
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'kind': expected stage_start, stage_finish, finish or "
		                   "lost");
		goto bad;
	}
	api_propose(n, call, &c, SHAPE_JOB_STATE, job, ing_str_c(""));
	msgpack_zone_destroy(&z);
	return;
bad:
	api_reply_err(call, &e);
	msgpack_zone_destroy(&z);
}
