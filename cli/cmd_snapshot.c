/*
 * cmd_snapshot.c - `ingotctl snapshot save FILE`: a consistent copy of the
 * cluster's replicated state (docs/api.md "Backups", docs/operations.md
 * "Disaster recovery").
 *
 * cluster.snapshot asks the leader for a copy (every write acknowledged
 * before it is in it); the file comes back in pieces of 1 MiB
 * (cluster.snapshot_read), written to FILE.partial, checked against the
 * SHA-256 of the whole file the leader announced, and only then renamed to
 * FILE (an existing FILE is replaced).  Progress goes to stderr for files
 * over PROGRESS_MIN_BYTES, every 10 %.  A failure removes FILE.partial and
 * leaves FILE as it was.  Output: a summary line, or with -o json the
 * leader's description {id, size, sha256, applied_index, created_at} plus
 * {file}.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/encode.h"

#define PIECE_BYTES        (1u << 20)
#define PROGRESS_MIN_BYTES (8u << 20)

/* Downloads the announced file into f; checks its size and SHA-256. */
static int download(struct cli_ctx *ctx, const char *id, uint64_t size, const char *sha256, FILE *f,
                    struct ing_error *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return ing_error_set(e, ING_ENOMEM, "cannot compute SHA-256");
	}
	uint64_t off = 0;
	unsigned shown = 0;
	int rv = 0;
	while (rv == 0 && off < size) {
		struct mp_out args;
		msgpack_zone z;
		msgpack_object piece;
		mp_out_init(&args);
		msgpack_zone_init(&z, 1024);
		msgpack_pack_map(&args.pk, 3);
		mp_pack_cstr(&args.pk, "id");
		mp_pack_cstr(&args.pk, id);
		mp_pack_cstr(&args.pk, "offset");
		msgpack_pack_uint64(&args.pk, off);
		mp_pack_cstr(&args.pk, "length");
		msgpack_pack_uint64(&args.pk, PIECE_BYTES);
		rv = cli_ctx_call(ctx, "cluster.snapshot_read", &args, 0, NULL, &z, &piece, e);
		if (rv == 0 && (piece.type != MSGPACK_OBJECT_BIN || piece.via.bin.size == 0 ||
		                piece.via.bin.size > size - off))
			rv = ing_error_set(e, ING_EINTERNAL,
			                   "the leader sent a bad piece at offset %" PRIu64, off);
		if (rv == 0 &&
		    fwrite(piece.via.bin.ptr, 1, piece.via.bin.size, f) != piece.via.bin.size)
			rv = ing_error_set(e, ING_EIO, "cannot write: %s", strerror(errno));
		if (rv == 0) {
			EVP_DigestUpdate(md, piece.via.bin.ptr, piece.via.bin.size);
			off += piece.via.bin.size;
		}
		msgpack_zone_destroy(&z);
		mp_out_free(&args);
		unsigned pct = (unsigned)(off * 100 / size);
		if (rv == 0 && size >= PROGRESS_MIN_BYTES && pct / 10 > shown) {
			shown = pct / 10;
			fprintf(ctx->err, "snapshot: %.1f of %.1f MiB (%u%%)\n",
			        (double)off / (1 << 20), (double)size / (1 << 20), pct);
			fflush(ctx->err);
		}
	}
	unsigned char sum[32];
	char got[65];
	unsigned n = 0;
	if (rv == 0 && EVP_DigestFinal_ex(md, sum, &n) == 1) {
		ing_hex_encode(sum, 32, got);
		if (strcmp(got, sha256) != 0)
			rv = ing_error_set(
			    e, ING_ECORRUPT,
			    "the downloaded file's SHA-256 %s is not the one the leader "
			    "announced (%s)",
			    got, sha256);
	}
	EVP_MD_CTX_free(md);
	return rv;
}

int cli_cmd_snapshot(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct ing_error e;
	struct mp_out args;
	msgpack_zone z;
	msgpack_object desc;
	char partial[4200];
	int code;

	if (snprintf(partial, sizeof(partial), "%s.partial", cmd->file) >= (int)sizeof(partial)) {
		ing_error_set(&e, ING_EINVAL, "file name too long");
		return cli_fail_usage(ctx, &e);
	}
	FILE *f = fopen(partial, "wb");
	if (f == NULL) {
		ing_error_set(&e, ING_EINVAL, "cannot write %s: %s", partial, strerror(errno));
		return cli_fail_usage(ctx, &e);
	}
	mp_out_init(&args);
	msgpack_zone_init(&z, 1024);
	msgpack_pack_map(&args.pk, 0);
	int rv = cli_ctx_call(ctx, "cluster.snapshot", &args, 0, NULL, &z, &desc, &e);
	const msgpack_object *id = rv == 0 ? cli_mp_get(&desc, "id") : NULL;
	const msgpack_object *size = rv == 0 ? cli_mp_get(&desc, "size") : NULL;
	const msgpack_object *sha = rv == 0 ? cli_mp_get(&desc, "sha256") : NULL;
	if (rv == 0 && (id == NULL || id->type != MSGPACK_OBJECT_STR || id->via.str.size > 64 ||
	                size == NULL || size->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	                sha == NULL || sha->type != MSGPACK_OBJECT_STR || sha->via.str.size != 64))
		rv = ing_error_set(&e, ING_EINTERNAL, "unexpected reply to cluster.snapshot");
	if (rv == 0) {
		char idtext[65], shatext[65];
		snprintf(idtext, sizeof(idtext), "%.*s", (int)id->via.str.size, id->via.str.ptr);
		snprintf(shatext, sizeof(shatext), "%.*s", 64, sha->via.str.ptr);
		rv = download(ctx, idtext, size->via.u64, shatext, f, &e);
	}
	if (fclose(f) != 0 && rv == 0)
		rv = ing_error_set(&e, ING_EIO, "cannot write %s: %s", partial, strerror(errno));
	if (rv == 0 && rename(partial, cmd->file) != 0)
		rv = ing_error_set(&e, ING_EIO, "cannot rename %s to %s: %s", partial, cmd->file,
		                   strerror(errno));
	if (rv != 0) {
		unlink(partial);
		code = cli_fail(ctx, &e);
		goto out;
	}
	if (cmd->output == CLI_OUTPUT_JSON) {
		json_t *j = rpc_mp_to_json(&desc);
		if (j != NULL)
			json_object_set_new(j, "file", rpc_json_text(cmd->file, strlen(cmd->file)));
		char *text = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
		if (text != NULL)
			fprintf(ctx->out, "%s\n", text);
		free(text);
		json_decref(j);
	} else {
		const msgpack_object *index = cli_mp_get(&desc, "applied_index");
		fprintf(ctx->out,
		        "saved %s: %" PRIu64 " bytes, sha256 %.*s, applied index %" PRIu64 "\n",
		        cmd->file, size->via.u64, 64, sha->via.str.ptr,
		        index != NULL && index->type == MSGPACK_OBJECT_POSITIVE_INTEGER
		            ? index->via.u64
		            : 0);
	}
	code = CLI_EXIT_OK;
out:
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}
