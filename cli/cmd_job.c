/*
 * cmd_job.c - `ingotctl job submit|get|list|cancel|retry|events|watch`.
 *
 *   submit   reads every FILE first (any unreadable file, duplicate name or
 *            a total over the request frame limit is exit 2, nothing sent),
 *            then job.submit as a write; --request-id makes a retried
 *            submit return the first job instead of creating a second.
 *            Table mode prints the id alone, so `id=$(ingotctl job submit
 *            ...)` works.
 *   list     one page, or with --all every page (following `next`) over one
 *            connection; JSON then has the shape of one page whose `next`
 *            is null.
 *   watch    job.watch: one line per event as it arrives (flushed), events
 *            replayed after a reconnection are skipped by seq; exit 0 when
 *            the job ends succeeded, 1 when failed or cancelled.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "rpc/client.h"

/* Room for paths and msgpack headers inside the frame limit. */
#define SUBMIT_OVERHEAD_BYTES 4096u

static void pack_stale(const struct cli_cmd *cmd, struct mp_out *args)
{
	if (cmd->stale) {
		mp_pack_cstr(&args->pk, "stale");
		msgpack_pack_true(&args->pk);
	}
}

static void pack_id_args(const struct cli_cmd *cmd, struct mp_out *args, bool read)
{
	bool stale = read && cmd->stale;
	bool reason = cmd->verb == CLI_JOB_CANCEL && cmd->reason != NULL;
	msgpack_pack_map(&args->pk, 1 + stale + reason);
	mp_pack_cstr(&args->pk, "id");
	msgpack_pack_uint64(&args->pk, cmd->id);
	if (stale)
		pack_stale(cmd, args);
	if (reason) {
		mp_pack_cstr(&args->pk, "reason");
		mp_pack_cstr(&args->pk, cmd->reason);
	}
}

/* ---- submit ------------------------------------------------------------ */

struct source {
	char path[1024];
	char *data;
	size_t len;
};

/* Reads the files and writes job.submit's args.  Usage errors only. */
static int build_submit(const struct cli_cmd *cmd, struct mp_out *args, struct ing_error *e)
{
	struct source *src = calloc(cmd->nfiles, sizeof(*src));
	size_t total = 0;
	int rv = 0;
	if (src == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	for (unsigned i = 0; i < cmd->nfiles && rv == 0; i++) {
		rv = cli_source_path(cmd->files[i], src[i].path, sizeof(src[i].path), e);
		for (unsigned k = 0; rv == 0 && k < i; k++) {
			if (strcmp(src[k].path, src[i].path) == 0)
				rv = ing_error_set(e, ING_EINVAL,
				                   "'%s' and '%s' would both be sent as '%s'",
				                   cmd->files[k], cmd->files[i], src[i].path);
		}
		if (rv == 0)
			rv = cli_read_file(cmd->files[i], RPC_DEFAULT_MAX_FRAME_BYTES, &src[i].data,
			                   &src[i].len, e);
		if (rv == 0)
			total += src[i].len + strlen(src[i].path);
	}
	if (rv == 0 && total + SUBMIT_OVERHEAD_BYTES > RPC_DEFAULT_MAX_FRAME_BYTES)
		rv = ing_error_set(e, ING_ETOOBIG,
		                   "the sources total %zu bytes; one request carries at most about "
		                   "%u bytes",
		                   total, RPC_DEFAULT_MAX_FRAME_BYTES - SUBMIT_OVERHEAD_BYTES);
	if (rv == 0) {
		msgpack_packer *pk = &args->pk;
		msgpack_pack_map(pk, 2 + cmd->has_priority + cmd->has_max_attempts +
		                         cmd->has_deadline + (cmd->tenant != NULL) +
		                         (cmd->nparams > 0));
		mp_pack_cstr(pk, "target");
		mp_pack_cstr(pk, cmd->target);
		mp_pack_cstr(pk, "sources");
		msgpack_pack_array(pk, cmd->nfiles);
		for (unsigned i = 0; i < cmd->nfiles; i++) {
			msgpack_pack_map(pk, 2);
			mp_pack_cstr(pk, "path");
			mp_pack_cstr(pk, src[i].path);
			mp_pack_cstr(pk, "data");
			mp_pack_bin(pk, src[i].data, src[i].len);
		}
		if (cmd->has_priority) {
			mp_pack_cstr(pk, "priority");
			msgpack_pack_uint64(pk, cmd->priority);
		}
		if (cmd->has_max_attempts) {
			mp_pack_cstr(pk, "max_attempts");
			msgpack_pack_uint64(pk, cmd->max_attempts);
		}
		if (cmd->has_deadline) {
			mp_pack_cstr(pk, "deadline_ms");
			msgpack_pack_uint64(pk, cmd->deadline_ms);
		}
		if (cmd->tenant != NULL) {
			mp_pack_cstr(pk, "tenant");
			mp_pack_cstr(pk, cmd->tenant);
		}
		if (cmd->nparams > 0) {
			mp_pack_cstr(pk, "params");
			msgpack_pack_map(pk, cmd->nparams);
			for (unsigned i = 0; i < cmd->nparams; i++) {
				const struct cli_param *p = &cmd->params[i];
				msgpack_pack_str(pk, p->name_len);
				msgpack_pack_str_body(pk, p->name, p->name_len);
				mp_pack_cstr(pk, p->value);
			}
		}
		if (mp_out_failed(args) != 0)
			rv = ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < cmd->nfiles; i++)
		free(src[i].data);
	free(src);
	return rv;
}

static void print_id(FILE *out, const msgpack_object *r)
{
	const msgpack_object *id = cli_mp_get(r, "id");
	if (id != NULL && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		fprintf(out, "%llu\n", (unsigned long long)id->via.u64);
	else
		fprintf(out, "-\n");
}

static void print_id_state(FILE *out, const msgpack_object *r)
{
	const msgpack_object *id = cli_mp_get(r, "id");
	const msgpack_object *st = cli_mp_get(r, "state");
	if (id != NULL && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER && st != NULL &&
	    st->type == MSGPACK_OBJECT_STR)
		fprintf(out, "job %llu: %.*s\n", (unsigned long long)id->via.u64,
		        (int)st->via.str.size, st->via.str.ptr);
	else
		fprintf(out, "done\n");
}

static void print_events(FILE *out, const msgpack_object *r)
{
	cli_print_event_header(out);
	for (uint32_t i = 0; r->type == MSGPACK_OBJECT_ARRAY && i < r->via.array.size; i++)
		cli_print_event_line(out, &r->via.array.ptr[i]);
}

/* ---- list -------------------------------------------------------------- */

static int job_list(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	msgpack_zone z;
	struct ing_error e;
	const msgpack_object **jobs = NULL;
	size_t njobs = 0, cap = 0;
	bool has_after = cmd->has_after;
	uint64_t after = cmd->after;
	const msgpack_object *next = NULL;
	int code = CLI_EXIT_OK;
	msgpack_zone_init(&z, 64 * 1024);
	for (;;) {
		struct mp_out args;
		msgpack_object page;
		mp_out_init(&args);
		msgpack_pack_map(&args.pk, (cmd->state != NULL) + (cmd->target != NULL) +
		                               has_after + cmd->has_limit + cmd->stale);
		if (cmd->state != NULL) {
			mp_pack_cstr(&args.pk, "state");
			mp_pack_cstr(&args.pk, cmd->state);
		}
		if (cmd->target != NULL) {
			mp_pack_cstr(&args.pk, "target");
			mp_pack_cstr(&args.pk, cmd->target);
		}
		if (has_after) {
			mp_pack_cstr(&args.pk, "after");
			msgpack_pack_uint64(&args.pk, after);
		}
		if (cmd->has_limit) {
			mp_pack_cstr(&args.pk, "limit");
			msgpack_pack_uint64(&args.pk, cmd->limit);
		}
		pack_stale(cmd, &args);
		int rv = cli_ctx_call(ctx, "job.list", &args, 0, NULL, &z, &page, &e);
		mp_out_free(&args);
		if (rv != 0) {
			code = cli_fail(ctx, &e);
			goto out;
		}
		if (!cmd->all && cmd->output == CLI_OUTPUT_JSON) {
			code = cli_show(ctx, &page, NULL);
			goto out;
		}
		const msgpack_object *arr = cli_mp_get(&page, "jobs");
		next = cli_mp_get(&page, "next");
		if (cli_collect_items(arr, &jobs, &njobs, &cap, &e) != 0) {
			code = cli_fail(ctx, &e);
			goto out;
		}
		if (!cmd->all || next == NULL || next->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			break;
		if (has_after && next->via.u64 <= after) {
			ing_error_set(&e, ING_EINTERNAL,
			              "job.list: page cursor did not advance (%llu)",
			              (unsigned long long)next->via.u64);
			code = cli_fail(ctx, &e);
			goto out;
		}
		has_after = true;
		after = next->via.u64;
	}
	if (cmd->output == CLI_OUTPUT_JSON) {
		if (cli_print_json_page(ctx->out, "jobs", jobs, njobs) != 0) {
			ing_error_set(&e, ING_EIO, "cannot write the result");
			code = cli_fail(ctx, &e);
		}
		goto out;
	}
	cli_print_job_list(ctx->out, jobs, njobs);
	if (!cmd->all && next != NULL && next->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		fprintf(ctx->err, "(more jobs: add --after %llu for the next page, or --all)\n",
		        (unsigned long long)next->via.u64);
out:
	free(jobs);
	msgpack_zone_destroy(&z);
	return code;
}

/* ---- watch ------------------------------------------------------------- */

int cli_job_end(struct cli_ctx *ctx, uint64_t id, const msgpack_object *job)
{
	const msgpack_object *st = cli_mp_get(job, "state");
	if (st != NULL && st->type == MSGPACK_OBJECT_STR && st->via.str.size == 9 &&
	    memcmp(st->via.str.ptr, "succeeded", 9) == 0)
		return CLI_EXIT_OK;
	const msgpack_object *err = cli_mp_get(job, "error");
	fprintf(ctx->err, "ingotctl: job %llu %.*s%s%.*s\n", (unsigned long long)id,
	        st != NULL && st->type == MSGPACK_OBJECT_STR ? (int)st->via.str.size : 5,
	        st != NULL && st->type == MSGPACK_OBJECT_STR ? st->via.str.ptr : "ended",
	        err != NULL && err->type == MSGPACK_OBJECT_STR && err->via.str.size > 0 ? ": " : "",
	        err != NULL && err->type == MSGPACK_OBJECT_STR ? (int)err->via.str.size : 0,
	        err != NULL && err->type == MSGPACK_OBJECT_STR ? err->via.str.ptr : "");
	return CLI_EXIT_FAILED;
}

struct watch {
	struct cli_ctx *ctx;
	bool any;
	uint64_t last_seq;
	bool header; /* printed */
};

static bool on_event(void *data, const msgpack_object *ev)
{
	struct watch *w = data;
	const msgpack_object *seq = cli_mp_get(ev, "seq");
	if (seq != NULL && seq->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (w->any && seq->via.u64 <= w->last_seq)
			return false; /* replayed after a reconnection */
		w->any = true;
		w->last_seq = seq->via.u64;
	}
	if (w->ctx->cmd->output == CLI_OUTPUT_JSON) {
		cli_print_json(w->ctx->out, ev, true);
	} else {
		if (!w->header) /* not before the first event: no header for an error */
			cli_print_event_header(w->ctx->out);
		w->header = true;
		cli_print_event_line(w->ctx->out, ev);
	}
	fflush(w->ctx->out);
	return true;
}

static int job_watch(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object job;
	struct watch w = {ctx, false, 0, false};
	int code;
	/* The watch itself has no deadline; --timeout bounds reconnecting. */
	int rv = cli_session_open(cmd, ctx->tls, UINT32_MAX, &ctx->session, &e);
	if (rv != 0)
		return cli_fail(ctx, &e);
	msgpack_zone_init(&z, 4096);
	rv = cli_session_watch(ctx->session, cmd->id, cmd->timeout_ms, on_event, NULL, &w, &z, &job,
	                       &e);
	if (rv != 0) {
		code = cli_fail(ctx, &e);
		goto out;
	}
	code = cli_job_end(ctx, cmd->id, &job);
out:
	msgpack_zone_destroy(&z);
	return code;
}

/* ---- dispatch ---------------------------------------------------------- */

int cli_cmd_job(struct cli_ctx *ctx)
{
	const struct cli_cmd *cmd = ctx->cmd;
	struct mp_out args;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object result;
	const char *op;
	unsigned flags = 0;
	void (*table)(FILE *, const msgpack_object *);
	int code, rv;

	if (cmd->verb == CLI_JOB_LIST)
		return job_list(ctx);
	if (cmd->verb == CLI_JOB_WATCH)
		return job_watch(ctx);
	mp_out_init(&args);
	msgpack_zone_init(&z, 4096);
	switch (cmd->verb) {
	case CLI_JOB_SUBMIT:
		rv = build_submit(cmd, &args, &e);
		if (rv != 0) {
			code = cli_fail_usage(ctx, &e);
			goto out;
		}
		op = "job.submit";
		flags = RPC_WRITE;
		table = print_id;
		break;
	case CLI_JOB_GET:
		pack_id_args(cmd, &args, true);
		op = "job.get";
		table = cli_print_job;
		break;
	case CLI_JOB_CANCEL:
		pack_id_args(cmd, &args, false);
		op = "job.cancel";
		flags = RPC_WRITE;
		table = print_id_state;
		break;
	case CLI_JOB_RETRY:
		pack_id_args(cmd, &args, false);
		op = "job.retry";
		flags = RPC_WRITE;
		table = print_id_state;
		break;
	default: /* CLI_JOB_EVENTS */
		pack_id_args(cmd, &args, true);
		op = "job.events";
		table = print_events;
		break;
	}
	rv = cli_ctx_call(ctx, op, &args, flags,
	                  cmd->verb == CLI_JOB_SUBMIT ? cmd->request_id : NULL, &z, &result, &e);
	code = rv != 0 ? cli_fail(ctx, &e) : cli_show(ctx, &result, table);
out:
	msgpack_zone_destroy(&z);
	mp_out_free(&args);
	return code;
}
