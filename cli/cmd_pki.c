/*
 * cmd_pki.c - `ingotctl pki init|issue node|issue client`: the offline PKI
 * (cli/pki.c does the work; docs/cli.md, docs/operations.md).  No network:
 * every failure is local.  A refusal (files exist, no CA, a bad address)
 * writes nothing.  Output: one line per file written, or with -o json one
 * object {certificate, key, identity, names, not_after}.
 */
#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"

static int show(struct cli_ctx *ctx, const struct cli_pki_issued *r, const char *key_note)
{
	if (ctx->cmd->output == CLI_OUTPUT_JSON) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "certificate", r->cert_path,
		                      "key", r->key_path, "identity", r->identity, "names",
		                      r->names, "not_after", r->not_after);
		if (o == NULL)
			return CLI_EXIT_FAILED;
		int rv = json_dumpf(o, ctx->out, JSON_INDENT(2));
		json_decref(o);
		fputc('\n', ctx->out);
		return rv == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
	}
	fprintf(ctx->out, "wrote %s (private key, mode 0600: %s)\n", r->key_path, key_note);
	fprintf(ctx->out, "wrote %s (%s%s%s; valid until %s)\n", r->cert_path, r->identity,
	        r->names[0] != '\0' ? "; " : "", r->names, r->not_after);
	return CLI_EXIT_OK;
}

int cli_cmd_pki(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct cli_pki_issued r;
	struct ing_error e;
	char note[96];
	int rv;
	memset(&r, 0, sizeof(r));
	if (cmd->verb == CLI_PKI_INIT) {
		rv = cli_pki_init(cmd->dir, cmd->days != 0 ? (unsigned)cmd->days : CLI_PKI_CA_DAYS,
		                  cmd->force, &r, &e);
		snprintf(note, sizeof(note), "keep it offline; it signs every certificate");
	} else if (cmd->pki_node) {
		rv = cli_pki_issue_node(cmd->dir, cmd->id, cmd->addresses, cmd->naddresses,
		                        cmd->days != 0 ? (unsigned)cmd->days : CLI_PKI_LEAF_DAYS,
		                        cmd->force, &r, &e);
		snprintf(note, sizeof(note), "copy it to node %" PRIu64 " only", cmd->id);
	} else {
		rv = cli_pki_issue_client(cmd->dir, cmd->pki_name,
		                          cmd->days != 0 ? (unsigned)cmd->days : CLI_PKI_LEAF_DAYS,
		                          cmd->force, &r, &e);
		snprintf(note, sizeof(note), "give it to %s only", cmd->pki_name);
	}
	/* The operator's input or files (exists, no CA, bad days): exit 2;
	 * the machine failing (cannot write, OpenSSL): exit 1. */
	if (rv == ING_EIO || rv == ING_EINTERNAL || rv == ING_ENOMEM)
		return cli_fail(ctx, &e);
	if (rv != 0)
		return cli_fail_usage(ctx, &e);
	return show(ctx, &r, note);
}
