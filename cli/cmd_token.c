/*
 * cmd_token.c - `ingotctl token create|list|revoke` and `ingotctl audit`
 * (docs/api.md "Tokens", "Audit"; both need the admin role).
 *
 *   token create   token.create, a write without a request id (a create is
 *                  never deduplicated: the server says why).  The token
 *                  goes to stdout alone, so `T=$(ingotctl token create
 *                  ...)` keeps it; table mode says what was created on
 *                  stderr.  --ttl is sent as ttl_ms.  -o json prints the
 *                  reply, token included.
 *   token list     token.list, a read: never a secret.
 *   token revoke   token.revoke, a write: "token 7 revoked".
 *   audit          audit.list, every page (following `next`) over one
 *                  connection, until --limit events or the end; --since
 *                  DURATION is turned into an absolute since_ms with this
 *                  machine's clock.  -o json: {events: [...], next: nil}.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli/cli.h"
#include "rpc/client.h"
#include "rpc/json.h"

static uint64_t now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

int cli_cmd_token(struct cli_ctx *ctx)
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
	case CLI_TOKEN_CREATE:
		msgpack_pack_map(&args.pk, 1 + (cmd->tenant != NULL) + (cmd->token_name != NULL) +
		                               cmd->has_ttl);
		mp_pack_cstr(&args.pk, "role");
		mp_pack_cstr(&args.pk, cmd->role);
		if (cmd->tenant != NULL) {
			mp_pack_cstr(&args.pk, "tenant");
			mp_pack_cstr(&args.pk, cmd->tenant);
		}
		if (cmd->token_name != NULL) {
			mp_pack_cstr(&args.pk, "name");
			mp_pack_cstr(&args.pk, cmd->token_name);
		}
		if (cmd->has_ttl) {
			mp_pack_cstr(&args.pk, "ttl_ms");
			msgpack_pack_uint64(&args.pk, cmd->ttl_ms);
		}
		op = "token.create";
		break;
	case CLI_TOKEN_LIST:
		msgpack_pack_map(&args.pk, cmd->stale ? 1 : 0);
		if (cmd->stale) {
			mp_pack_cstr(&args.pk, "stale");
			msgpack_pack_true(&args.pk);
		}
		op = "token.list";
		break;
	default: /* CLI_TOKEN_REVOKE */
		msgpack_pack_map(&args.pk, 1);
		mp_pack_cstr(&args.pk, "id");
		msgpack_pack_uint64(&args.pk, cmd->id);
		op = "token.revoke";
		flags = RPC_WRITE;
		break;
	}
	int rv = cli_ctx_call(ctx, op, &args, flags, NULL, &z, &result, &e);
	if (rv != 0) {
		code = cli_fail(ctx, &e);
	} else if (cmd->verb == CLI_TOKEN_LIST || cmd->output == CLI_OUTPUT_JSON) {
		code = cli_show(ctx, &result, cli_print_token_list);
	} else if (cmd->verb == CLI_TOKEN_CREATE) {
		const msgpack_object *tok = cli_mp_get(&result, "token");
		if (tok == NULL || tok->type != MSGPACK_OBJECT_STR) {
			ing_error_set(&e, ING_EINTERNAL, "token.create: no token in the reply");
			code = cli_fail(ctx, &e);
		} else {
			fprintf(ctx->out, "%.*s\n", (int)tok->via.str.size, tok->via.str.ptr);
			cli_print_token_created(ctx->err, &result);
			code = CLI_EXIT_OK;
		}
	} else {
		fprintf(ctx->out, "token %" PRIu64 " revoked\n", cmd->id);
		code = CLI_EXIT_OK;
	}
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}

int cli_cmd_audit(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	msgpack_zone z;
	struct ing_error e;
	const msgpack_object **evs = NULL;
	size_t nevs = 0, cap = 0;
	const char *after = NULL;
	char after_buf[96];
	uint64_t want = cmd->has_limit ? cmd->limit : UINT64_MAX;
	uint64_t since = cmd->has_since ? cmd->since_ms : 0;
	int code = CLI_EXIT_OK;

	if (cmd->has_since && cmd->since_ago) {
		uint64_t now = now_ms();
		since = now > cmd->since_ms ? now - cmd->since_ms : 0;
	}
	msgpack_zone_init(&z, 64 * 1024);
	while (nevs < want) {
		struct mp_out args;
		msgpack_object page;
		uint64_t limit = want - nevs < 1000 ? want - nevs : 1000;
		mp_out_init(&args);
		msgpack_pack_map(&args.pk, 1 + cmd->has_since + (cmd->principal != NULL) +
		                               (after != NULL) + cmd->stale);
		mp_pack_cstr(&args.pk, "limit");
		msgpack_pack_uint64(&args.pk, limit);
		if (cmd->has_since) {
			mp_pack_cstr(&args.pk, "since_ms");
			msgpack_pack_uint64(&args.pk, since);
		}
		if (cmd->principal != NULL) {
			mp_pack_cstr(&args.pk, "principal");
			mp_pack_cstr(&args.pk, cmd->principal);
		}
		if (after != NULL) {
			mp_pack_cstr(&args.pk, "after");
			mp_pack_cstr(&args.pk, after);
		}
		if (cmd->stale) {
			mp_pack_cstr(&args.pk, "stale");
			msgpack_pack_true(&args.pk);
		}
		int rv = cli_ctx_call(ctx, "audit.list", &args, 0, NULL, &z, &page, &e);
		mp_out_free(&args);
		if (rv != 0) {
			code = cli_fail(ctx, &e);
			goto out;
		}
		const msgpack_object *arr = cli_mp_get(&page, "events");
		const msgpack_object *next = cli_mp_get(&page, "next");
		if (cli_collect_items(arr, &evs, &nevs, &cap, &e) != 0) {
			code = cli_fail(ctx, &e);
			goto out;
		}
		if (next == NULL || next->type != MSGPACK_OBJECT_STR || next->via.str.size == 0 ||
		    next->via.str.size >= sizeof(after_buf))
			break;
		snprintf(after_buf, sizeof(after_buf), "%.*s", (int)next->via.str.size,
		         next->via.str.ptr);
		after = after_buf;
	}
	if (cmd->output == CLI_OUTPUT_JSON) {
		if (cli_print_json_page(ctx->out, "events", evs, nevs) != 0) {
			ing_error_set(&e, ING_EIO, "cannot write the result");
			code = cli_fail(ctx, &e);
		}
		goto out;
	}
	cli_print_audit(ctx->out, evs, nevs);
out:
	free(evs);
	msgpack_zone_destroy(&z);
	return code;
}
