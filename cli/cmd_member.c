/*
 * cmd_member.c - `ingotctl member list|add|promote|demote|remove|
 * transfer-leadership`: the cluster's Raft membership (docs/api.md,
 * "Membership").
 *
 *   list      two reads: `status` (linearizable unless --stale) for the
 *             members, with when the leader last heard from each
 *             (`last_contact_ms`, known to the leader only) and how far each
 *             is behind the leader, and then `node.list`, always stale (the
 *             drain flag need not be up to the last commit), joined by id
 *             for whether the node is draining as a worker.
 *   add, promote, demote, remove, transfer-leadership
 *             one call each (member.add, .promote, .demote, .remove,
 *             .transfer), served by the leader and forwarded by followers.
 *             They are not log commands and carry no request id: the
 *             server makes each safe to repeat instead, so the client
 *             library's retries after a lost connection or a leader change
 *             are harmless (a repeat finds the change done, or refuses with
 *             `conflict` while it still runs).
 *
 * A change waits for the cluster (a new member's catch-up alone may take the
 * server's member_catchup_timeout_ms, 30 s by default), so its default
 * --timeout is CLI_MEMBER_TIMEOUT_MS (args.c) and, in table mode, one line
 * on stderr says what is being done and for how long ingotctl will wait
 * before the call is made.  The reply is then printed as the server's steps
 * and a summary (cli_print_member_change, cli_print_transfer); -o json
 * prints the reply as it came.  When ingotctl stops waiting (exit 3,
 * timeout) the change may still complete on the cluster: `member list`
 * tells, and repeating the command is safe.
 */
#include <inttypes.h>

#include "cli/cli.h"

static void pack_stale(struct mp_out *args, bool stale)
{
	msgpack_pack_map(&args->pk, stale ? 1 : 0);
	if (stale) {
		mp_pack_cstr(&args->pk, "stale");
		msgpack_pack_true(&args->pk);
	}
}

static int member_list(struct cli_ctx *ctx)
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

static void pack_id(struct mp_out *args, uint64_t id)
{
	mp_pack_cstr(&args->pk, "id");
	msgpack_pack_uint64(&args->pk, id);
}

static int member_change(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct mp_out args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object result;
	char doing[256];
	const char *op, *role;
	void (*table)(FILE *, const msgpack_object *) = cli_print_member_change;
	mp_out_init(&args);
	msgpack_zone_init(&z, 4096);
	switch (cmd->verb) {
	case CLI_MEMBER_ADD:
		role = cmd->role != NULL ? cmd->role : "voter";
		msgpack_pack_map(&args.pk, 4);
		pack_id(&args, cmd->id);
		mp_pack_cstr(&args.pk, "raft_address");
		mp_pack_cstr(&args.pk, cmd->raft_address);
		mp_pack_cstr(&args.pk, "api_address");
		mp_pack_cstr(&args.pk, cmd->api_address);
		mp_pack_cstr(&args.pk, "role");
		mp_pack_cstr(&args.pk, role);
		snprintf(doing, sizeof(doing), "adding member %" PRIu64 " (raft %s, api %s) as %s",
		         cmd->id, cmd->raft_address, cmd->api_address, role);
		op = "member.add";
		break;
	case CLI_MEMBER_PROMOTE:
		msgpack_pack_map(&args.pk, 1);
		pack_id(&args, cmd->id);
		snprintf(doing, sizeof(doing), "promoting member %" PRIu64 " to voter", cmd->id);
		op = "member.promote";
		break;
	case CLI_MEMBER_DEMOTE:
		role = cmd->role != NULL ? cmd->role : "standby";
		msgpack_pack_map(&args.pk, 2);
		pack_id(&args, cmd->id);
		mp_pack_cstr(&args.pk, "role");
		mp_pack_cstr(&args.pk, role);
		snprintf(doing, sizeof(doing), "demoting member %" PRIu64 " to %s", cmd->id, role);
		op = "member.demote";
		break;
	case CLI_MEMBER_REMOVE:
		msgpack_pack_map(&args.pk, 1);
		pack_id(&args, cmd->id);
		snprintf(doing, sizeof(doing), "removing member %" PRIu64, cmd->id);
		op = "member.remove";
		break;
	default: /* CLI_MEMBER_TRANSFER; id 0: none given */
		msgpack_pack_map(&args.pk, cmd->id != 0 ? 1 : 0);
		if (cmd->id != 0) {
			pack_id(&args, cmd->id);
			snprintf(doing, sizeof(doing), "transferring leadership to node %" PRIu64,
			         cmd->id);
		} else {
			snprintf(doing, sizeof(doing),
			         "transferring leadership to the most caught-up voter");
		}
		op = "member.transfer";
		table = cli_print_transfer;
		break;
	}
	if (cmd->output == CLI_OUTPUT_TABLE) {
		char wait[32];
		cli_format_duration(cmd->timeout_ms, wait, sizeof(wait));
		fprintf(ctx->err, "%s; waiting up to %s\n", doing, wait);
		fflush(ctx->err);
	}
	int rv = cli_ctx_call(ctx, op, &args, 0, NULL, &z, &result, &e);
	int code = rv != 0 ? cli_fail(ctx, &e) : cli_show(ctx, &result, table);
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}

int cli_cmd_member(struct cli_ctx *ctx)
{
	if (ctx->cmd->verb == CLI_MEMBER_LIST)
		return member_list(ctx);
	return member_change(ctx);
}
