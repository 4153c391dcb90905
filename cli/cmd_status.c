/*
 * cmd_status.c - `ingotctl status`: the `status` operation (docs/api.md):
 * leader, term, the answering node and every member with its health.
 * A read: linearizable unless --stale, which lets the answering node reply
 * from its own state (the way to look at a cluster that has no leader).
 */
#include "cli/cli.h"

int cli_cmd_status(struct cli_ctx *ctx)
{
	struct mp_out args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object result;
	int code;
	mp_out_init(&args);
	msgpack_zone_init(&z, 4096);
	msgpack_pack_map(&args.pk, ctx->cmd->stale ? 1 : 0);
	if (ctx->cmd->stale) {
		mp_pack_cstr(&args.pk, "stale");
		msgpack_pack_true(&args.pk);
	}
	int rv = cli_ctx_call(ctx, "status", &args, 0, NULL, &z, &result, &e);
	if (rv != 0)
		code = cli_fail(ctx, &e);
	else
		code = cli_show(ctx, &result, cli_print_status);
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}
