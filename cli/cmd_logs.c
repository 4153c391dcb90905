/*
 * cmd_logs.c - `ingotctl job logs` and `ingotctl job fetch`: a job's stage
 * logs and output files, which the cluster keeps as artifacts named by
 * their SHA-256 (docs/api.md: job.get's stages, artifact.get).
 *
 *   logs ID     job.get, then artifact.get of each stage's log_sha256, in
 *               stage order.  Table mode: a header line per stage ("== stage
 *               0 (exit 0, 1.2s)", cli_format_stage_header) then the log's
 *               bytes as they are (a newline added when the log does not end
 *               with one).  JSON: one compact object per stage per line,
 *               the stage as job.get gives it plus "log" (text; null when
 *               there is none).  --stage N|NAME keeps one stage; a NAME is
 *               looked up in the job's target (target.get): digits are an
 *               index.
 *   logs -f     job.watch on its own session (no deadline; --timeout bounds
 *               reconnecting, as `job watch`); each stage_finished event is
 *               queued by the event callback and handled by the watch's poll
 *               hook, outside the loop's callbacks, over the main session
 *               (job.get for the log's hash, then artifact.get), so each log
 *               is printed as its stage finishes.  A stage_finished of an
 *               earlier attempt (replayed from the job's history) whose
 *               results job.get no longer shows gets a note on stderr.  Exit
 *               as `job watch`: 0 succeeded, 1 failed or cancelled.
 *   fetch ID DIR  every output of every finished stage of the current
 *               attempt, to DIR/<stage index>-<output path> (directories
 *               created; a file there is replaced: written beside it, then
 *               renamed).  Every destination is checked before anything is
 *               written; an output path that is absolute or has a ".." is
 *               refused (malformed, exit 1).  Each artifact's size and
 *               SHA-256 are checked against job.get's before it is written
 *               (corrupt, exit 1).  A job without outputs: not_found, exit 1.
 *
 * Every artifact fetched, logs included, is checked against its hash.
 */
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/encode.h"
#include "common/fs.h"

/* ---- shared ------------------------------------------------------------ */

static bool str_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);
	return o != NULL && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       memcmp(o->via.str.ptr, s, n) == 0;
}

static bool get_uint(const msgpack_object *m, const char *key, uint64_t *out)
{
	const msgpack_object *v = cli_mp_get(m, key);
	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*out = v->via.u64;
	return true;
}

static const msgpack_object *get_array(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = cli_mp_get(m, key);
	return v != NULL && v->type == MSGPACK_OBJECT_ARRAY ? v : NULL;
}

static void pack_stale(const struct cli_cmd *cmd, struct mp_out *args)
{
	if (cmd->stale) {
		mp_pack_cstr(&args->pk, "stale");
		msgpack_pack_true(&args->pk);
	}
}

/* job.get of cmd->id into z. */
static int get_job(struct cli_ctx *ctx, msgpack_zone *z, msgpack_object *job, struct ing_error *e)
{
	struct mp_out args;
	mp_out_init(&args);
	msgpack_pack_map(&args.pk, 1 + ctx->cmd->stale);
	mp_pack_cstr(&args.pk, "id");
	msgpack_pack_uint64(&args.pk, ctx->cmd->id);
	pack_stale(ctx->cmd, &args);
	int rv = cli_ctx_call(ctx, "job.get", &args, 0, NULL, z, job, e);
	mp_out_free(&args);
	return rv;
}

/* The bytes of artifact `sha` (64 hex digits, as job.get shows it), checked
 * against it (and against `size` unless it is UINT64_MAX).  *data points
 * into z. */
static int get_artifact(struct cli_ctx *ctx, const msgpack_object *sha, uint64_t size,
                        msgpack_zone *z, const char **data, size_t *len, struct ing_error *e)
{
	if (sha == NULL || sha->type != MSGPACK_OBJECT_STR || sha->via.str.size != 64)
		return ing_error_set(e, ING_EMALFORMED,
		                     "job.get: an artifact hash is not 64 hex "
		                     "digits");
	struct mp_out args;
	msgpack_object r;
	mp_out_init(&args);
	msgpack_pack_map(&args.pk, 1 + ctx->cmd->stale);
	mp_pack_cstr(&args.pk, "sha256");
	mp_pack_str(&args.pk, (struct ing_str){sha->via.str.ptr, 64});
	pack_stale(ctx->cmd, &args);
	int rv = cli_ctx_call(ctx, "artifact.get", &args, 0, NULL, z, &r, e);
	mp_out_free(&args);
	if (rv != 0)
		return rv;
	if (r.type != MSGPACK_OBJECT_BIN && r.type != MSGPACK_OBJECT_STR)
		return ing_error_set(e, ING_EMALFORMED, "artifact.get: the reply is not bytes");
	*data = r.type == MSGPACK_OBJECT_BIN ? r.via.bin.ptr : r.via.str.ptr;
	*len = r.type == MSGPACK_OBJECT_BIN ? r.via.bin.size : r.via.str.size;
	if (size != UINT64_MAX && *len != size)
		return ing_error_set(e, ING_ECORRUPT,
		                     "artifact %.12s...: %zu bytes received, %llu expected",
		                     sha->via.str.ptr, *len, (unsigned long long)size);
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	SHA256((const unsigned char *)*data, *len, md);
	ing_hex_encode(md, sizeof(md), hex);
	if (memcmp(hex, sha->via.str.ptr, 64) != 0)
		return ing_error_set(e, ING_ECORRUPT,
		                     "artifact %.64s: the bytes received hash to %s",
		                     sha->via.str.ptr, hex);
	return 0;
}

/* ---- logs -------------------------------------------------------------- */

struct finished {
	uint64_t stage, attempt;
};

struct logs {
	struct cli_ctx *ctx;
	bool filter; /* --stage: only stage `want` */
	uint64_t want;
	unsigned shown; /* stages printed */
	/* follow */
	bool any;
	uint64_t last_seq;
	struct finished *queue;
	size_t nqueue, cap;
	bool oom;
};

/* Prints one stage: header and log (table), or one JSON line. */
static int print_stage(struct logs *l, const msgpack_object *stage, struct ing_error *e)
{
	struct cli_ctx *ctx = l->ctx;
	const char *data = NULL;
	size_t len = 0;
	msgpack_zone z;
	int rv = 0;
	const msgpack_object *sha = cli_mp_get(stage, "log_sha256");
	/* Finished stages have a log: "done" (exit 0) and "failed". */
	bool done = str_is(cli_mp_get(stage, "state"), "done") ||
	            str_is(cli_mp_get(stage, "state"), "failed");
	msgpack_zone_init(&z, 4096);
	bool have_log = done && sha != NULL && sha->type == MSGPACK_OBJECT_STR;
	if (have_log)
		rv = get_artifact(ctx, sha, UINT64_MAX, &z, &data, &len, e);
	if (rv == 0 && ctx->cmd->output == CLI_OUTPUT_JSON) {
		json_t *j = rpc_mp_to_json(stage);
		json_t *text = have_log ? rpc_json_text(len > 0 ? data : "", len) : json_null();
		if (j == NULL || text == NULL || !json_is_object(j) ||
		    json_object_set_new(j, "log", text) != 0)
			rv = ing_error_set(e, ING_ENOMEM, "out of memory");
		else if (json_dumpf(j, ctx->out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
		         fputc('\n', ctx->out) == EOF)
			rv = ing_error_set(e, ING_EIO, "cannot write the output");
		if (rv != 0 && (j == NULL || !json_is_object(j)))
			json_decref(text);
		json_decref(j);
	} else if (rv == 0) {
		char header[128];
		cli_format_stage_header(stage, header, sizeof(header));
		fputs(header, ctx->out);
		if (len > 0 && (fwrite(data, 1, len, ctx->out) != len ||
		                (data[len - 1] != '\n' && fputc('\n', ctx->out) == EOF)))
			rv = ing_error_set(e, ING_EIO, "cannot write the output");
	}
	fflush(ctx->out);
	msgpack_zone_destroy(&z);
	if (rv == 0)
		l->shown++;
	return rv;
}

/* With --stage NAME: its index in the job's target. */
static int resolve_stage(struct logs *l, const msgpack_object *job, struct ing_error *e)
{
	const struct cli_cmd *cmd = l->ctx->cmd;
	l->filter = cmd->has_stage;
	l->want = cmd->stage_index;
	if (cmd->stage_name == NULL)
		return 0;
	const msgpack_object *target = cli_mp_get(job, "target");
	if (target == NULL || target->type != MSGPACK_OBJECT_STR)
		return ing_error_set(e, ING_EMALFORMED, "job.get: the job has no target name");
	struct mp_out args;
	msgpack_zone z;
	msgpack_object tg;
	mp_out_init(&args);
	msgpack_zone_init(&z, 4096);
	msgpack_pack_map(&args.pk, 1 + cmd->stale);
	mp_pack_cstr(&args.pk, "name");
	mp_pack_str(&args.pk, (struct ing_str){target->via.str.ptr, target->via.str.size});
	pack_stale(cmd, &args);
	int rv = cli_ctx_call(l->ctx, "target.get", &args, 0, NULL, &z, &tg, e);
	mp_out_free(&args);
	if (rv == 0) {
		const msgpack_object *stages = get_array(&tg, "stages");
		char names[200] = "";
		rv = ING_ENOTFOUND;
		for (uint32_t i = 0; stages != NULL && i < stages->via.array.size; i++) {
			const msgpack_object *n = cli_mp_get(&stages->via.array.ptr[i], "name");
			if (str_is(n, cmd->stage_name)) {
				l->want = i;
				rv = 0;
				break;
			}
			if (n != NULL && n->type == MSGPACK_OBJECT_STR)
				snprintf(names + strlen(names), sizeof(names) - strlen(names),
				         "%s%.*s", i > 0 ? ", " : "", (int)n->via.str.size,
				         n->via.str.ptr);
		}
		if (rv != 0)
			ing_error_set(e, rv, "target '%.*s' has no stage '%s' (stages: %s)",
			              (int)target->via.str.size, target->via.str.ptr,
			              cmd->stage_name, names);
	}
	msgpack_zone_destroy(&z);
	return rv;
}

/* The result of stage `index` in job.get's stages, or NULL. */
static const msgpack_object *find_stage(const msgpack_object *job, uint64_t index)
{
	const msgpack_object *stages = get_array(job, "stages");
	for (uint32_t i = 0; stages != NULL && i < stages->via.array.size; i++) {
		uint64_t idx;
		if (get_uint(&stages->via.array.ptr[i], "index", &idx) && idx == index)
			return &stages->via.array.ptr[i];
	}
	return NULL;
}

static void state_text(const msgpack_object *job, char *buf, size_t cap)
{
	const msgpack_object *st = cli_mp_get(job, "state");
	const msgpack_object *w = cli_mp_get(job, "waiting");
	snprintf(buf, cap, "%.*s%s%.*s",
	         st != NULL && st->type == MSGPACK_OBJECT_STR ? (int)st->via.str.size : 1,
	         st != NULL && st->type == MSGPACK_OBJECT_STR ? st->via.str.ptr : "-",
	         w != NULL && w->type == MSGPACK_OBJECT_STR ? ", waiting: " : "",
	         w != NULL && w->type == MSGPACK_OBJECT_STR ? (int)w->via.str.size : 0,
	         w != NULL && w->type == MSGPACK_OBJECT_STR ? w->via.str.ptr : "");
	for (char *p = buf; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
}

static int logs_once(struct logs *l)
{
	struct cli_ctx *ctx = l->ctx;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object job;
	int code = CLI_EXIT_OK;
	msgpack_zone_init(&z, 4096);
	int rv = get_job(ctx, &z, &job, &e);
	if (rv == 0)
		rv = resolve_stage(l, &job, &e);
	const msgpack_object *stages = rv == 0 ? get_array(&job, "stages") : NULL;
	for (uint32_t i = 0; rv == 0 && stages != NULL && i < stages->via.array.size; i++) {
		const msgpack_object *s = &stages->via.array.ptr[i];
		uint64_t idx;
		if (l->filter && (!get_uint(s, "index", &idx) || idx != l->want))
			continue;
		rv = print_stage(l, s, &e);
	}
	if (rv != 0) {
		code = cli_fail(ctx, &e);
	} else if (l->shown == 0) {
		char st[300];
		state_text(&job, st, sizeof(st));
		if (l->filter) {
			ing_error_set(
			    &e, ING_ENOTFOUND, "job %llu has no result for stage %llu (%s)",
			    (unsigned long long)ctx->cmd->id, (unsigned long long)l->want, st);
			code = cli_fail(ctx, &e);
		} else {
			fprintf(ctx->err, "ingotctl: job %llu has no stage results yet (%s)\n",
			        (unsigned long long)ctx->cmd->id, st);
		}
	}
	msgpack_zone_destroy(&z);
	return code;
}

static bool follow_event(void *data, const msgpack_object *ev)
{
	struct logs *l = data;
	uint64_t seq, stage, attempt = 0;
	if (get_uint(ev, "seq", &seq)) {
		if (l->any && seq <= l->last_seq)
			return false; /* replayed after a reconnection */
		l->any = true;
		l->last_seq = seq;
	}
	const msgpack_object *kind = cli_mp_get(ev, "kind");
	(void)get_uint(ev, "attempt", &attempt);
	if (str_is(kind, "requeued") || str_is(kind, "retried")) {
		fprintf(l->ctx->err, "ingotctl: job %llu %.*s (attempt %llu)\n",
		        (unsigned long long)l->ctx->cmd->id, (int)kind->via.str.size,
		        kind->via.str.ptr, (unsigned long long)attempt);
		return true;
	}
	if (!str_is(kind, "stage_finished") || !get_uint(ev, "stage", &stage))
		return true;
	if (l->filter && stage != l->want)
		return true;
	if (l->nqueue == l->cap) {
		size_t ncap = l->cap == 0 ? 16 : l->cap * 2;
		struct finished *q = realloc(l->queue, ncap * sizeof(*q));
		if (q == NULL) {
			l->oom = true;
			return true;
		}
		l->queue = q;
		l->cap = ncap;
	}
	l->queue[l->nqueue++] = (struct finished){stage, attempt};
	return true;
}

/* The watch's poll hook: prints the logs of the stages queued so far. */
static int follow_poll(void *data, struct ing_error *e)
{
	struct logs *l = data;
	if (l->oom)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	if (l->nqueue == 0)
		return 0;
	msgpack_zone z;
	msgpack_object job;
	int rv = 0;
	msgpack_zone_init(&z, 4096);
	/* One job.get serves every stage queued so far; the queue is taken
	 * first, since the calls below let more events arrive. */
	size_t n = l->nqueue;
	struct finished *q = l->queue;
	l->queue = NULL;
	l->nqueue = l->cap = 0;
	rv = get_job(l->ctx, &z, &job, e);
	uint64_t current = 0;
	(void)get_uint(&job, "attempt", &current);
	for (size_t i = 0; rv == 0 && i < n; i++) {
		const msgpack_object *s = find_stage(&job, q[i].stage);
		if (q[i].attempt != current || s == NULL)
			fprintf(
			    l->ctx->err,
			    "ingotctl: stage %llu of attempt %llu finished; its log is not shown: "
			    "the job is on attempt %llu\n",
			    (unsigned long long)q[i].stage, (unsigned long long)q[i].attempt,
			    (unsigned long long)current);
		else
			rv = print_stage(l, s, e);
	}
	free(q);
	msgpack_zone_destroy(&z);
	return rv;
}

static int logs_follow(struct logs *l)
{
	struct cli_ctx *ctx = l->ctx;
	const struct cli_cmd *cmd = ctx->cmd;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object job;
	struct cli_session *watch = NULL;
	int code, rv = 0;
	msgpack_zone_init(&z, 4096);
	l->filter = cmd->has_stage;
	l->want = cmd->stage_index;
	if (cmd->stage_name != NULL) {
		rv = get_job(ctx, &z, &job, &e);
		if (rv == 0)
			rv = resolve_stage(l, &job, &e);
	}
	/* The watch has its own session without a deadline; job.get and
	 * artifact.get go through ctx's, bounded by --timeout. */
	if (rv == 0)
		rv = cli_session_open(cmd, ctx->tls, UINT32_MAX, &watch, &e);
	if (rv == 0)
		rv = cli_session_watch(watch, cmd->id, cmd->timeout_ms, follow_event, follow_poll,
		                       l, &z, &job, &e);
	if (rv == 0)
		rv = follow_poll(l, &e); /* what arrived with the last turn */
	code = rv != 0 ? cli_fail(ctx, &e) : cli_job_end(ctx, cmd->id, &job);
	cli_session_close(watch);
	free(l->queue);
	msgpack_zone_destroy(&z);
	return code;
}

int cli_cmd_job_logs(struct cli_ctx *ctx)
{
	struct logs l;
	memset(&l, 0, sizeof(l));
	l.ctx = ctx;
	return ctx->cmd->follow ? logs_follow(&l) : logs_once(&l);
}

/* ---- fetch ------------------------------------------------------------- */

int cli_output_dest(const char *dir, uint64_t index, const char *path, size_t path_len, char *buf,
                    size_t cap, struct ing_error *e)
{
	if (path_len == 0)
		return ing_error_set(e, ING_EMALFORMED, "stage %llu: an output has an empty path",
		                     (unsigned long long)index);
	if (path[0] == '/')
		return ing_error_set(e, ING_EMALFORMED,
		                     "stage %llu: output path '%.*s' is absolute; refused",
		                     (unsigned long long)index, (int)path_len, path);
	for (size_t i = 0; i < path_len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c < 0x20 || c == 0x7f)
			return ing_error_set(e, ING_EMALFORMED,
			                     "stage %llu: an output path has a control character; "
			                     "refused",
			                     (unsigned long long)index);
	}
	for (size_t start = 0; start <= path_len;) {
		const char *slash = memchr(path + start, '/', path_len - start);
		size_t end = slash != NULL ? (size_t)(slash - path) : path_len;
		size_t n = end - start;
		if (n == 0 || (n == 1 && path[start] == '.') ||
		    (n == 2 && path[start] == '.' && path[start + 1] == '.'))
			return ing_error_set(
			    e, ING_EMALFORMED,
			    "stage %llu: output path '%.*s' has an empty, '.' or '..' "
			    "component; refused",
			    (unsigned long long)index, (int)path_len, path);
		start = end + 1;
	}
	size_t dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	int w = snprintf(buf, cap, "%.*s/%llu-%.*s", (int)dlen, dir, (unsigned long long)index,
	                 (int)path_len, path);
	if (w < 0 || (size_t)w >= cap)
		return ing_error_set(e, ING_EINVAL, "output path '%.*s' is too long", (int)path_len,
		                     path);
	return 0;
}

int cli_cmd_job_fetch(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object job;
	json_t *written = cmd->output == CLI_OUTPUT_JSON ? json_array() : NULL;
	char dest[4096];
	unsigned nout = 0, nfinished = 0;
	int rv, code = CLI_EXIT_OK;
	msgpack_zone_init(&z, 4096);
	rv = get_job(ctx, &z, &job, &e);
	if (rv == 0 && cmd->output == CLI_OUTPUT_JSON && written == NULL)
		rv = ing_error_set(&e, ING_ENOMEM, "out of memory");
	const msgpack_object *stages = rv == 0 ? get_array(&job, "stages") : NULL;
	/* Pass 0 checks every destination and counts; pass 1 fetches and writes. */
	for (int pass = 0; pass < 2 && rv == 0; pass++) {
		for (uint32_t i = 0; rv == 0 && stages != NULL && i < stages->via.array.size; i++) {
			const msgpack_object *s = &stages->via.array.ptr[i];
			uint64_t idx;
			if (!str_is(cli_mp_get(s, "state"), "done") || !get_uint(s, "index", &idx))
				continue;
			nfinished += pass == 0;
			const msgpack_object *outs = get_array(s, "outputs");
			for (uint32_t k = 0; rv == 0 && outs != NULL && k < outs->via.array.size;
			     k++) {
				const msgpack_object *f = &outs->via.array.ptr[k];
				const msgpack_object *p = cli_mp_get(f, "path");
				const msgpack_object *sha = cli_mp_get(f, "sha256");
				uint64_t size;
				if (p == NULL || p->type != MSGPACK_OBJECT_STR ||
				    !get_uint(f, "size", &size)) {
					rv = ing_error_set(
					    &e, ING_EMALFORMED,
					    "job.get: stage %llu has an output without "
					    "path or size",
					    (unsigned long long)idx);
					break;
				}
				rv = cli_output_dest(cmd->dir, idx, p->via.str.ptr, p->via.str.size,
				                     dest, sizeof(dest), &e);
				if (rv != 0)
					break;
				if (pass == 0) {
					nout++;
					continue;
				}
				const char *data;
				size_t len;
				msgpack_zone az;
				msgpack_zone_init(&az, 4096);
				rv = get_artifact(ctx, sha, size, &az, &data, &len, &e);
				if (rv == 0)
					rv = ing_mkdirs_parent(dest, 0777, &e);
				if (rv == 0)
					rv = ing_write_file(dest, data, len, 0666, ING_WRITE_ATOMIC,
					                    &e);
				msgpack_zone_destroy(&az);
				if (rv != 0)
					break;
				if (written != NULL) {
					json_t *o = json_object();
					if (o == NULL ||
					    json_object_set_new(o, "stage",
					                        json_integer((json_int_t)idx)) ||
					    json_object_set_new(
					        o, "path",
					        rpc_json_text(p->via.str.ptr, p->via.str.size)) ||
					    json_object_set_new(
					        o, "file", rpc_json_text(dest, strlen(dest))) ||
					    json_object_set_new(o, "size",
					                        json_integer((json_int_t)len)) ||
					    json_object_set_new(
					        o, "sha256", rpc_json_text(sha->via.str.ptr, 64)) ||
					    json_array_append_new(written, o)) {
						rv = ing_error_set(&e, ING_ENOMEM, "out of memory");
					}
				} else {
					for (char *c = dest; *c != '\0'; c++) {
						if ((unsigned char)*c < 0x20 || *c == 0x7f)
							*c = '?';
					}
					fprintf(ctx->out, "%s  %zu bytes\n", dest, len);
				}
			}
		}
		if (rv == 0 && pass == 0 && nout == 0) {
			char st[300];
			state_text(&job, st, sizeof(st));
			rv = ing_error_set(
			    &e, ING_ENOTFOUND, "job %llu has no outputs (%s; %u finished stage%s)",
			    (unsigned long long)cmd->id, st, nfinished, nfinished == 1 ? "" : "s");
		}
	}
	if (rv != 0) {
		code = cli_fail(ctx, &e);
	} else if (written != NULL &&
	           (json_dumpf(written, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
	            fputc('\n', ctx->out) == EOF)) {
		ing_error_set(&e, ING_EIO, "cannot write the output");
		code = cli_fail(ctx, &e);
	}
	json_decref(written);
	msgpack_zone_destroy(&z);
	return code;
}
