/*
 * cmd_member.c - `ingotctl member list`: the cluster's members (the
 * `status` operation) with when the leader last heard from each
 * (`last_contact_ms`, known to the leader only) and how far each is behind
 * the leader, joined by id
 * with node.list for whether the node is draining as a worker.  Two reads:
 * `status` (linearizable unless --stale) and then `node.list`, always
 * stale (the drain flag need not be up to the last commit).
 */
#include "cli/cli.h"

static void pack_stale(struct mp_out *args, bool stale)
{
	msgpack_pack_map(&args->pk, stale ? 1 : 0);
	if (stale) {
		mp_pack_cstr(&args->pk, "stale");
		msgpack_pack_true(&args->pk);
	}
}

int cli_cmd_member(struct cli_ctx *ctx)
{
	struct mp_out status_args, node_args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object status, nodes;
	int code;
	mp_out_init(&status_args);
	mp_out_init(&node_args);
	msgpack_zone_init(&z, 4096);
	pack_stale(&status_args, ctx->cmd->stale);
	pack_stale(&node_args, true);
	int rv = cli_ctx_call(ctx, "status", &status_args, 0, NULL, &z, &status, &e);
	if (rv == 0)
		rv = cli_ctx_call(ctx, "node.list", &node_args, 0, NULL, &z, &nodes, &e);
	if (rv != 0) {
		code = cli_fail(ctx, &e);
	} else if (ctx->cmd->output == CLI_OUTPUT_JSON) {
		json_t *j = cli_member_list_json(&status, &nodes);
		rv = j == NULL ? ING_ENOMEM : 0;
		if (rv == 0 &&
		    (json_dumpf(j, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
		     fputc('\n', ctx->out) == EOF))
			rv = ING_EIO;
		json_decref(j);
		if (rv != 0) {
			ing_error_set(&e, rv, "cannot write the result: %s", ing_err_msg(rv));
			code = cli_fail(ctx, &e);
		} else {
			code = CLI_EXIT_OK;
		}
	} else {
		cli_print_member_list(ctx->out, &status, &nodes);
		code = CLI_EXIT_OK;
	}
	msgpack_zone_destroy(&z);
	mp_out_free(&node_args);
	mp_out_free(&status_args);
	return code;
}
