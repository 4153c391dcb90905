/*
 * cmd_settings.c - `ingotctl settings get` and `ingotctl settings set NAME
 * DURATION`: the cluster settings (settings.get / settings.set, docs/api.md
 * "Settings").  NAME is job-retention or dedupe-window (the API's
 * job_retention_ms and dedupe_window_ms); a duration of 0 ("forever")
 * keeps for ever.  `get` prints one line per setting (SETTING, VALUE as a
 * duration); -o json prints the reply as it came, in milliseconds.  `set`
 * prints nothing and exits 0 once the setting is applied.
 */
#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"
#include "rpc/client.h"

static void print_settings(FILE *out, const msgpack_object *r)
{
	static const struct {
		const char *key, *name;
	} rows[] = {{"job_retention_ms", "job-retention"}, {"dedupe_window_ms", "dedupe-window"}};
	fprintf(out, "%-15s %s\n", "SETTING", "VALUE");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const msgpack_object *v = cli_mp_get(r, rows[i].key);
		char buf[32] = "?";
		if (v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			if (v->via.u64 == 0)
				snprintf(buf, sizeof(buf), "forever");
			else
				cli_format_duration(v->via.u64, buf, sizeof(buf));
		}
		fprintf(out, "%-15s %s\n", rows[i].name, buf);
	}
}

int cli_cmd_settings(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct mp_out args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object r;
	int code = CLI_EXIT_OK, rv;

	mp_out_init(&args);
	msgpack_zone_init(&z, 1024);
	if (cmd->verb == CLI_SETTINGS_SET) {
		msgpack_pack_map(&args.pk, 2);
		mp_pack_cstr(&args.pk, "name");
		mp_pack_cstr(&args.pk, cmd->name);
		mp_pack_cstr(&args.pk, "value");
		msgpack_pack_uint64(&args.pk, cmd->setting_ms);
		rv = cli_ctx_call(ctx, "settings.set", &args, RPC_WRITE, cmd->request_id, &z, &r,
		                  &e);
		if (rv != 0)
			code = cli_fail(ctx, &e);
	} else {
		msgpack_pack_map(&args.pk, cmd->stale ? 1 : 0);
		if (cmd->stale) {
			mp_pack_cstr(&args.pk, "stale");
			msgpack_pack_true(&args.pk);
		}
		rv = cli_ctx_call(ctx, "settings.get", &args, 0, NULL, &z, &r, &e);
		code = rv != 0 ? cli_fail(ctx, &e) : cli_show(ctx, &r, print_settings);
	}
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}
