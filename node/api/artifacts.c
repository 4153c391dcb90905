/*
 * artifacts.c - artifact.get: an artifact's bytes by SHA-256
 * (docs/api.md "Artifacts").
 */
#include <stdlib.h>

#include "common/encode.h"
#include "common/mp.h"
#include "node/api/api_internal.h"
#include "rpc/args.h"
#include "storage/artifact.h"

void api_op_artifact_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"sha256", "stale", NULL};
	struct ing_str hex;
	struct ing_error e;
	struct store_txn *t;
	uint8_t sha[32];
	void *data;
	size_t len;
	struct mp_out o;

	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "sha256", 64, true, &hex, &e) != 0) {
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
	store_abort(t);
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
