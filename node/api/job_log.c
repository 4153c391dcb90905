/*
 * job_log.c - job.log: the log of one stage of a job's current attempt, as
 * bytes (docs/api.md "Jobs"; GET /v1/jobs/{id}/stages/{stage}/log).
 */
#include <inttypes.h>
#include <stdlib.h>

#include "node/api/api_internal.h"
#include "rpc/args.h"
#include "storage/artifact.h"

void api_op_job_log(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "stage", "stale", NULL};
	struct store_txn *t;
	struct rec_job j;
	struct ing_error e;
	msgpack_zone z;
	uint64_t id, stage;
	void *data = NULL;
	size_t len = 0;

	if (api_read_id(call, known, &id) != 0)
		return;
	if (rpc_arg_u64(rpc_call_args(call), "stage", UINT32_MAX, true, &stage, &e) != 0) {
		api_reply_err(call, &e);
		return;
	}
	if (api_read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	int rv = api_load_job(n, call, t, id, &z, &j);
	if (rv == 0 && (stage >= j.nstages || !j.stages[stage].has_log)) {
		rv = ING_ENOTFOUND;
		rpc_reply_error(call, rv,
		                "job %" PRIu64 " has no log for stage %" PRIu64 " (it has %" PRIu32
		                " stage results in attempt %" PRIu32 ")",
		                id, stage, j.nstages, j.attempt);
	}
	if (rv == 0) {
		rv = store_artifact_read(t, j.stages[stage].log_sha256, &data, &len);
		if (rv != 0)
			rpc_reply_error(call, rv, "cannot read the log: %s", ing_err_msg(rv));
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
	if (rv != 0)
		return;
	struct mp_out o;
	mp_out_init(&o);
	mp_pack_bin(&o.pk, data, len);
	free(data);
	api_reply_out(call, &o);
}
