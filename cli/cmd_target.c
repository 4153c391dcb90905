/*
 * cmd_target.c - `ingotctl target apply|list|get|delete`.
 *
 *   apply FILE   the YAML file (target_yaml.c) becomes target.put's args;
 *                any problem with the file is exit 2, nothing sent.  A
 *                write: the client library attaches a request id, so a
 *                retry across a leader change applies it once.
 *   list, get    reads (stale with --stale).
 *   delete NAME  target.delete, a write.
 */
#include "cli/cli.h"
#include "rpc/client.h"

static void print_put(FILE *out, const msgpack_object *r)
{
	const msgpack_object *name = cli_mp_get(r, "name");
	const msgpack_object *rev = cli_mp_get(r, "revision");
	if (name != NULL && name->type == MSGPACK_OBJECT_STR && rev != NULL &&
	    rev->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		fprintf(out, "target %.*s: revision %llu\n", (int)name->via.str.size,
		        name->via.str.ptr, (unsigned long long)rev->via.u64);
	else
		fprintf(out, "target applied\n");
}

static void print_deleted(FILE *out, const msgpack_object *r)
{
	const msgpack_object *name = cli_mp_get(r, "name");
	if (name != NULL && name->type == MSGPACK_OBJECT_STR)
		fprintf(out, "target %.*s deleted\n", (int)name->via.str.size, name->via.str.ptr);
	else
		fprintf(out, "target deleted\n");
}

int cli_cmd_target(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct mp_out args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object result;
	const char *op = NULL;
	unsigned flags = 0;
	void (*table)(FILE *, const msgpack_object *) = NULL;
	int code, rv;
	mp_out_init(&args);
	msgpack_zone_init(&z, 4096);
	switch (cmd->verb) {
	case CLI_TARGET_APPLY:
		rv = cli_target_yaml_load(cmd->file, &args, &e);
		if (rv != 0) {
			code = cli_fail_usage(ctx, &e);
			goto out;
		}
		op = "target.put";
		flags = RPC_WRITE;
		table = print_put;
		break;
	case CLI_TARGET_LIST:
		msgpack_pack_map(&args.pk, cmd->stale ? 1 : 0);
		op = "target.list";
		table = cli_print_target_list;
		break;
	case CLI_TARGET_GET:
		msgpack_pack_map(&args.pk, cmd->stale ? 2 : 1);
		mp_pack_cstr(&args.pk, "name");
		mp_pack_cstr(&args.pk, cmd->name);
		op = "target.get";
		table = cli_print_target;
		break;
	default: /* CLI_TARGET_DELETE */
		msgpack_pack_map(&args.pk, 1);
		mp_pack_cstr(&args.pk, "name");
		mp_pack_cstr(&args.pk, cmd->name);
		op = "target.delete";
		flags = RPC_WRITE;
		table = print_deleted;
		break;
	}
	if (cmd->stale && !(flags & RPC_WRITE)) {
		mp_pack_cstr(&args.pk, "stale");
		msgpack_pack_true(&args.pk);
	}
	rv = cli_ctx_call(ctx, op, &args, flags, NULL, &z, &result, &e);
	code = rv != 0 ? cli_fail(ctx, &e) : cli_show(ctx, &result, table);
out:
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}
