/*
 * artifacts.c - artifact.get: an artifact's bytes by SHA-256
 * (docs/api.md "Artifacts").  A job's small sources are kept with the job,
 * not as artifacts (storage/limits.h ING_INLINE_SOURCE_MAX): with `job`,
 * one of that job's inline sources with this hash is found too.
 */
#include <stdlib.h>
#include <string.h>

#include "common/encode.h"
#include "common/mp.h"
#include "node/api/api_internal.h"
#include "rpc/args.h"
#include "storage/artifact.h"

/* The bytes of job `job`'s inline source with hash sha, copied into a
 * malloc'd buffer.  ING_ENOTFOUND (no such job or source), ING_ECORRUPT,
 * ING_ENOMEM. */
static int inline_source(struct store_txn *t, uint64_t job, const uint8_t sha[32], void **buf,
                         size_t *len)
{
	msgpack_zone z;
	struct rec_job j;
	struct rec_sources src;
	struct ing_str val;
	uint8_t k[8];
	uint32_t at = 0;
	int rv;

	msgpack_zone_init(&z, 1024);
	store_be64(k, job);
	rv = store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val);
	if (rv == 0 && rec_job_decode(val, &z, &j, NULL) != 0)
		rv = ING_ECORRUPT;
	for (uint32_t i = 0; rv == 0 && i < j.nsources; i++) {
		if (!j.sources[i].stored_inline)
			continue;
		if (memcmp(j.sources[i].sha256, sha, 32) != 0) {
			at++;
			continue;
		}
		rv = store_get(t, STORE_SOURCES, (struct ing_str){(const char *)k, 8}, &val);
		if (rv == ING_ENOTFOUND ||
		    (rv == 0 && (rec_sources_decode(val, &z, &src, NULL) != 0 || at >= src.n)))
			rv = ING_ECORRUPT;
		if (rv == 0) {
			*len = src.data[at].len;
			*buf = malloc(*len + 1);
			if (*buf == NULL)
				rv = ING_ENOMEM;
			else
				memcpy(*buf, src.data[at].ptr, *len);
		}
		msgpack_zone_destroy(&z);
		return rv;
	}
	msgpack_zone_destroy(&z);
	return rv == 0 ? ING_ENOTFOUND : rv;
}

void api_op_artifact_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"sha256", "job", "stale", NULL};
	struct ing_str hex;
	struct ing_error e;
	struct store_txn *t;
	uint8_t sha[32];
	void *data;
	size_t len;
	struct mp_out o;
	uint64_t job = 0;

	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "sha256", 64, true, &hex, &e) != 0 ||
	    rpc_arg_u64(rpc_call_args(call), "job", UINT64_MAX, false, &job, &e) != 0) {
		api_reply_err(call, &e);
		return;
	}
	if (ing_hex_decode(hex.ptr, hex.len, sha, sizeof(sha)) != 0) {
		rpc_reply_error(call, ING_EINVAL,
		                "argument 'sha256': expected 64 lowercase hex digits");
		return;
	}
	if (api_read_begin(n, call, &t) != 0)
		return;
	int rv = store_artifact_read(t, sha, &data, &len);
	if (rv == ING_ENOTFOUND && job != 0)
		rv = inline_source(t, job, sha, &data, &len);
	store_abort(t);
	if (rv == ING_ECORRUPT) {
		api_corrupt_reply(n, call, "job sources");
		return;
	}
	if (rv == ING_ENOTFOUND) {
		rpc_reply_error(call, rv, "artifact %.*s does not exist", ING_STR_FMT(hex));
		return;
	}
	if (rv != 0) {
		rpc_reply_error(call, rv, "cannot read artifact: %s", ing_err_msg(rv));
		return;
	}
	mp_out_init(&o);
	mp_pack_bin(&o.pk, data, len);
	free(data);
	api_reply_out(call, &o);
}
