/*
 * cmd_target.c - `ingotctl target apply|list|get|delete`.
 *
 *   apply FILE   the YAML file (target_yaml.c) becomes target.put's args;
 *                any problem with the file is exit 2, nothing sent.  A
 *                write: the client library attaches a request id, so a
 *                retry across a leader change applies it once.
 *   list, get    reads (stale with --stale); list follows target.list's
 *                pages to the end and prints them as one list.
 *   delete NAME  target.delete, a write.
 */
#include <stdlib.h>
#include <string.h>

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

/* Whether the STR name sorts after `after` (byte order, as the table's). */
static bool name_after(const msgpack_object *name, const char *after)
{
	size_t la = strlen(after), ln = name->via.str.size;
	int cmp = memcmp(name->via.str.ptr, after, ln < la ? ln : la);
	return cmp > 0 || (cmp == 0 && ln > la);
}

/*
 * target.list one page at a time (docs/api.md): ask again with `after` =
 * the last name until a page comes back empty, keeping every page's objects
 * in z, and return them as one array.
 */
static int list_all(struct cli_ctx *ctx, bool stale, msgpack_zone *z, msgpack_object *out,
                    struct ing_error *e)
{
	msgpack_object *all = NULL, page;
	uint32_t n = 0, cap = 0;
	char after[256] = "";
	int rv = 0;

	for (;;) {
		struct mp_out args;
		mp_out_init(&args);
		msgpack_pack_map(&args.pk, (stale ? 1 : 0) + (after[0] != '\0' ? 1 : 0));
		if (stale) {
			mp_pack_cstr(&args.pk, "stale");
			msgpack_pack_true(&args.pk);
		}
		if (after[0] != '\0') {
			mp_pack_cstr(&args.pk, "after");
			mp_pack_cstr(&args.pk, after);
		}
		rv = cli_ctx_call(ctx, "target.list", &args, 0, NULL, z, &page, e);
		mp_out_free(&args);
		if (rv != 0)
			break;
		if (page.type != MSGPACK_OBJECT_ARRAY) {
			rv = ing_error_set(e, ING_EMALFORMED,
			                   "target.list: the reply is not an array");
			break;
		}
		if (page.via.array.size == 0)
			break;
		for (uint32_t i = 0; i < page.via.array.size; i++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				msgpack_object *p = realloc(all, cap * sizeof(*all));
				if (p == NULL) {
					rv = ing_error_set(e, ING_ENOMEM, "out of memory");
					goto out;
				}
				all = p;
			}
			all[n++] = page.via.array.ptr[i];
		}
		const msgpack_object *name =
		    cli_mp_get(&page.via.array.ptr[page.via.array.size - 1], "name");
		if (name == NULL || name->type != MSGPACK_OBJECT_STR ||
		    name->via.str.size >= sizeof(after) || !name_after(name, after)) {
			rv = ing_error_set(e, ING_EMALFORMED,
			                   "target.list: a page does not end past the last one");
			break;
		}
		memcpy(after, name->via.str.ptr, name->via.str.size);
		after[name->via.str.size] = '\0';
	}
	if (rv == 0) {
		msgpack_object *items = n ? msgpack_zone_malloc(z, n * sizeof(*items)) : NULL;
		if (n > 0 && items == NULL) {
			rv = ing_error_set(e, ING_ENOMEM, "out of memory");
		} else {
			if (n > 0)
				memcpy(items, all, n * sizeof(*items));
			out->type = MSGPACK_OBJECT_ARRAY;
			out->via.array.size = n;
			out->via.array.ptr = items;
		}
	}
out:
	free(all);
	return rv;
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
		rv = list_all(ctx, cmd->stale, &z, &result, &e);
		code = rv != 0 ? cli_fail(ctx, &e) : cli_show(ctx, &result, cli_print_target_list);
		goto out;
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
