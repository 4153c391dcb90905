/*
 * run.c - one run of ingotctl: parse, dispatch, report, exit code.
 *
 * Exit codes (docs/cli.md):
 *   0  success
 *   1  the cluster refused or failed the operation (not_found, invalid,
 *      conflict, stale_attempt, too_large, permission_denied, ...), or a
 *      watched job ended failed/cancelled
 *   2  usage error: bad flags, bad file, bad duration; always found before
 *      any network traffic
 *   3  the cluster was unreachable or had no leader in time (unavailable,
 *      timeout, not_leader)
 *
 * Every error is one line on stderr, "ingotctl: <code_name>: <message>",
 * with advice where a person can act on it (which endpoints were tried and
 * where they came from; --timeout; --token).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/tls.h"
#include "rpc/client.h"

int cli_exit_code(int code)
{
	switch (code) {
	case 0: return CLI_EXIT_OK;
	case ING_EUNAVAILABLE:
	case ING_ETIMEOUT:
	case ING_ENOTLEADER: return CLI_EXIT_UNREACHABLE;
	default: return CLI_EXIT_FAILED;
	}
}

static const char *source_name(enum cli_endpoints_source s)
{
	switch (s) {
	case CLI_EP_FLAG: return "from --endpoints";
	case CLI_EP_ENV: return "from INGOT_ENDPOINTS";
	default: return "the default";
	}
}

static void endpoint_list(const struct cli_cmd *cmd, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < cmd->nendpoints && n + 1 < cap; i++) {
		int w = snprintf(buf + n, cap - n, "%s%s", i > 0 ? "," : "", cmd->endpoints[i]);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

int cli_fail(struct cli_ctx *ctx, const struct ing_error *e)
{
	const struct cli_cmd *cmd = ctx->cmd;
	char eps[CLI_MAX_ENDPOINTS * CLI_ENDPOINT_MAX];
	endpoint_list(cmd, eps, sizeof(eps));
	int code = e->code != 0 ? e->code : ING_EINTERNAL;
	const char *msg = e->msg[0] != '\0' ? e->msg : ing_err_msg(code);
	fprintf(ctx->err, "ingotctl: %s: %s", ing_err_name(code), msg);
	switch (code) {
	case ING_EUNAVAILABLE:
		fprintf(ctx->err,
		        "; endpoints tried (%s): %s; check that ingotd is running there, or "
		        "name reachable nodes with --endpoints HOST:PORT,... or INGOT_ENDPOINTS",
		        source_name(cmd->endpoints_source), eps);
		break;
	case ING_ETIMEOUT:
	case ING_ENOTLEADER:
		fprintf(ctx->err,
		        "; endpoints %s; the cluster may have no leader (see `ingotctl status "
		        "--stale`), or allow more time with --timeout",
		        eps);
		break;
	case ING_EDENIED:
		fprintf(ctx->err,
		        "; give a token with the needed role with --token or INGOT_TOKEN");
		break;
	default: break;
	}
	fputc('\n', ctx->err);
	return cli_exit_code(code);
}

int cli_fail_usage(struct cli_ctx *ctx, const struct ing_error *e)
{
	int code = e->code != 0 ? e->code : ING_EINVAL;
	fprintf(ctx->err, "ingotctl: %s: %s\n", ing_err_name(code),
	        e->msg[0] != '\0' ? e->msg : ing_err_msg(code));
	return code == ING_ENOMEM ? CLI_EXIT_FAILED : CLI_EXIT_USAGE;
}

int cli_ctx_call(struct cli_ctx *ctx, const char *op, const struct mp_out *args, unsigned flags,
                 const char *request_id, msgpack_zone *z, msgpack_object *result,
                 struct ing_error *e)
{
	if (args != NULL && mp_out_failed(args) != 0)
		return ing_error_set(e, ING_ENOMEM, "out of memory encoding the request");
	if (ctx->session == NULL) {
		int rv =
		    cli_session_open(ctx->cmd, ctx->tls, ctx->cmd->timeout_ms, &ctx->session, e);
		if (rv != 0)
			return rv;
	}
	return cli_session_call(ctx->session, op, args, flags, request_id, z, result, e);
}

int cli_show(struct cli_ctx *ctx, const msgpack_object *result,
             void (*table)(FILE *out, const msgpack_object *result))
{
	if (ctx->cmd->output == CLI_OUTPUT_JSON) {
		int rv = cli_print_json(ctx->out, result, false);
		if (rv != 0) {
			struct ing_error e;
			ing_error_set(&e, rv, "cannot write the result: %s", ing_err_msg(rv));
			return cli_fail(ctx, &e);
		}
	} else {
		table(ctx->out, result);
	}
	return CLI_EXIT_OK;
}

/* The exit code once stdout is flushed: 1 when it could not be written. */
static int finish(FILE *out, FILE *err, int code)
{
	if (fflush(out) != 0 && code == CLI_EXIT_OK) {
		fprintf(err, "ingotctl: io_error: cannot write the output\n");
		code = CLI_EXIT_FAILED;
	}
	return code;
}

int cli_run(int argc, char **argv, FILE *out, FILE *err)
{
	struct cli_cmd cmd;
	struct ing_error e;
	ing_error_clear(&e);
	struct cli_env env = {getenv("INGOT_ENDPOINTS"), getenv("INGOT_TOKEN"),
	                      getenv("INGOT_CACERT"), getenv("INGOT_CERT"), getenv("INGOT_KEY")};
	int rv = cli_parse_args(argc, argv, &env, &cmd, &e);
	if (rv != 0) {
		const char *noun;
		const struct cli_command *c = cli_guess_command(argc, argv, &noun);
		char name[64];
		if (c != NULL)
			cli_command_name(c, name, sizeof(name));
		else
			snprintf(name, sizeof(name), "%s", noun != NULL ? noun : "");
		fprintf(err, "ingotctl: %s: %s\nRun 'ingotctl help%s%s' for usage.\n",
		        ing_err_name(rv), e.msg, name[0] != '\0' ? " " : "", name);
		return rv == ING_ENOMEM ? CLI_EXIT_FAILED : CLI_EXIT_USAGE;
	}
	switch (cmd.verb) {
	case CLI_HELP: cli_help(out, cmd.help_cmd, cmd.help_noun); return finish(out, err, 0);
	case CLI_VERSION: cli_version(out); return finish(out, err, 0);
	case CLI_COMPLETION: cli_completion_bash(out); return finish(out, err, 0);
	default: break;
	}
	struct cli_ctx ctx = {&cmd, out, err, NULL, NULL};
	bool pki = cmd.verb == CLI_PKI_INIT || cmd.verb == CLI_PKI_ISSUE;
	/* The TLS files are read before any traffic: a bad one is a usage
	 * error (exit 2), like a bad flag. */
	if (cmd.cacert != NULL && !pki) {
		struct ing_tls_config tc = {cmd.cacert, cmd.cert, cmd.key,
		                            ING_TLS_CLIENT_CERTS_OPTIONAL};
		rv = ing_tls_new(&tc, &ctx.tls, &e);
		if (rv != 0)
			return cli_fail_usage(&ctx, &e);
	}
	int code;
	switch (cmd.verb) {
	case CLI_STATUS: code = cli_cmd_status(&ctx); break;
	case CLI_TARGET_APPLY:
	case CLI_TARGET_LIST:
	case CLI_TARGET_GET:
	case CLI_TARGET_DELETE: code = cli_cmd_target(&ctx); break;
	case CLI_NODE_LIST:
	case CLI_NODE_DRAIN:
	case CLI_NODE_UNDRAIN:
	case CLI_NODE_FORGET: code = cli_cmd_node(&ctx); break;
	case CLI_MEMBER_LIST:
	case CLI_MEMBER_ADD:
	case CLI_MEMBER_PROMOTE:
	case CLI_MEMBER_DEMOTE:
	case CLI_MEMBER_REMOVE:
	case CLI_MEMBER_TRANSFER: code = cli_cmd_member(&ctx); break;
	case CLI_EVENTS: code = cli_cmd_events(&ctx); break;
	case CLI_SETTINGS_GET:
	case CLI_SETTINGS_SET: code = cli_cmd_settings(&ctx); break;
	case CLI_PKI_INIT:
	case CLI_PKI_ISSUE: code = cli_cmd_pki(&ctx); break;
	case CLI_SNAPSHOT_SAVE: code = cli_cmd_snapshot(&ctx); break;
	case CLI_JOB_LOGS: code = cli_cmd_job_logs(&ctx); break;
	case CLI_JOB_FETCH: code = cli_cmd_job_fetch(&ctx); break;
	default: code = cli_cmd_job(&ctx); break;
	}
	cli_session_close(ctx.session);
	ing_tls_free(ctx.tls);
	return finish(out, err, code);
}
