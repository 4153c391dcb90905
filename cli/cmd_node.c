/*
 * cmd_node.c - `ingotctl node list|drain|undrain|forget`.
 *
 *   list           node.list, a read (stale with --stale): one row per
 *                  node that ever registered, down ones included.
 *   drain ID       node.drain, a write: the scheduler places no new job on
 *                  the node; --deadline DURATION (how long its running jobs
 *                  have) is sent relative, as deadline_ms, and shows in
 *                  node list as the absolute drain_deadline.
 *   undrain ID     node.undrain, a write.
 *   forget ID      node.forget, a write: drops a node that is down and
 *                  runs nothing from the nodes table.
 * The writes return {}; table mode prints one confirmation line.
 */
#include "cli/cli.h"
#include "rpc/client.h"

int cli_cmd_node(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct mp_out args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object result;
	const char *op;
	unsigned flags = 0;
	int code;
	mp_out_init(&args);
	msgpack_zone_init(&z, 4096);
	switch (cmd->verb) {
	case CLI_NODE_LIST:
		msgpack_pack_map(&args.pk, cmd->stale ? 1 : 0);
		if (cmd->stale) {
			mp_pack_cstr(&args.pk, "stale");
			msgpack_pack_true(&args.pk);
		}
		op = "node.list";
		break;
	case CLI_NODE_DRAIN:
		msgpack_pack_map(&args.pk, cmd->has_deadline ? 2 : 1);
		mp_pack_cstr(&args.pk, "id");
		msgpack_pack_uint64(&args.pk, cmd->id);
		if (cmd->has_deadline) {
			mp_pack_cstr(&args.pk, "deadline_ms");
			msgpack_pack_uint64(&args.pk, cmd->deadline_ms);
		}
		op = "node.drain";
		flags = RPC_WRITE;
		break;
	default: /* CLI_NODE_UNDRAIN, CLI_NODE_FORGET */
		msgpack_pack_map(&args.pk, 1);
		mp_pack_cstr(&args.pk, "id");
		msgpack_pack_uint64(&args.pk, cmd->id);
		op = cmd->verb == CLI_NODE_FORGET ? "node.forget" : "node.undrain";
		flags = RPC_WRITE;
		break;
	}
	int rv = cli_ctx_call(ctx, op, &args, flags, NULL, &z, &result, &e);
	if (rv != 0) {
		code = cli_fail(ctx, &e);
	} else if (cmd->verb == CLI_NODE_LIST || cmd->output == CLI_OUTPUT_JSON) {
		code = cli_show(ctx, &result, cli_print_node_list);
	} else if (cmd->verb == CLI_NODE_DRAIN) {
		char d[32] = "";
		if (cmd->has_deadline)
			cli_format_duration(cmd->deadline_ms, d, sizeof(d));
		fprintf(ctx->out, "node %llu draining%s%s%s\n", (unsigned long long)cmd->id,
		        cmd->has_deadline ? " (deadline in " : "", d, cmd->has_deadline ? ")" : "");
		code = CLI_EXIT_OK;
	} else {
		fprintf(ctx->out, "node %llu %s\n", (unsigned long long)cmd->id,
		        cmd->verb == CLI_NODE_FORGET ? "forgotten" : "undrained");
		code = CLI_EXIT_OK;
	}
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}
