/*
 * cmd_events.c - `ingotctl events [--after SEQ] [--limit N]`: the cluster's
 * own history (cluster.events, docs/api.md "Membership"), independent of
 * jobs: the cluster's creation, members added, removed or given another
 * role, leadership transferred, dead voters replaced by the leader.  A read
 * (linearizable unless --stale) of one page: events with a sequence number
 * greater than --after (default: from the first), at most --limit (server
 * default 100, at most 1000).  Table mode notes on stderr when there are
 * more, as `job list` does; -o json prints the page as it came,
 * {events, next}.
 */
#include <inttypes.h>

#include "cli/cli.h"

int cli_cmd_events(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct mp_out args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object page;
	int code;
	mp_out_init(&args);
	msgpack_zone_init(&z, 4096);
	msgpack_pack_map(&args.pk, cmd->has_after + cmd->has_limit + cmd->stale);
	if (cmd->has_after) {
		mp_pack_cstr(&args.pk, "after");
		msgpack_pack_uint64(&args.pk, cmd->after);
	}
	if (cmd->has_limit) {
		mp_pack_cstr(&args.pk, "limit");
		msgpack_pack_uint64(&args.pk, cmd->limit);
	}
	if (cmd->stale) {
		mp_pack_cstr(&args.pk, "stale");
		msgpack_pack_true(&args.pk);
	}
	int rv = cli_ctx_call(ctx, "cluster.events", &args, 0, NULL, &z, &page, &e);
	if (rv != 0) {
		code = cli_fail(ctx, &e);
		goto out;
	}
	code = cli_show(ctx, &page, cli_print_cluster_events);
	const msgpack_object *next = cli_mp_get(&page, "next");
	if (code == CLI_EXIT_OK && cmd->output == CLI_OUTPUT_TABLE && next != NULL &&
	    next->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		fprintf(ctx->err, "(more events: add --after %" PRIu64 " for the next page)\n",
		        next->via.u64);
out:
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}
