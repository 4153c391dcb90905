/*
 * view.c - records as the API shows them (docs/api.md): msgpack maps with
 * named keys, hashes as hex strings, 0 times and ids as nil.  One function
 * per object so that every operation returning a job returns the same shape.
 */
#include "node/api/view.h"

#include <stdio.h>

#include "common/encode.h"
#include "common/mp.h"

void view_key(msgpack_packer *pk, const char *key)
{
	mp_pack_cstr(pk, key);
}

void view_opt_u64(msgpack_packer *pk, uint64_t v)
{
	if (v == 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, v);
}

static void pack_hex(msgpack_packer *pk, const uint8_t sha[32])
{
	char hex[65];
	ing_hex_encode(sha, 32, hex);
	msgpack_pack_str(pk, 64);
	msgpack_pack_str_body(pk, hex, 64);
}

static void view_file(msgpack_packer *pk, const struct rec_file *f)
{
	msgpack_pack_map(pk, 3);
	view_key(pk, "path");
	mp_pack_str(pk, f->path);
	view_key(pk, "sha256");
	pack_hex(pk, f->sha256);
	view_key(pk, "size");
	msgpack_pack_uint64(pk, f->size);
}

static void pack_bool(msgpack_packer *pk, bool v)
{
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

static void view_gpu(msgpack_packer *pk, uint32_t index, const struct rec_gpu *g, uint64_t job)
{
	msgpack_pack_map(pk, 5);
	view_key(pk, "index");
	msgpack_pack_uint32(pk, index);
	view_key(pk, "uuid");
	if (g != NULL && g->uuid.len > 0)
		mp_pack_str(pk, g->uuid);
	else
		msgpack_pack_nil(pk);
	view_key(pk, "memory_bytes");
	view_opt_u64(pk, g != NULL ? g->memory_bytes : 0);
	view_key(pk, "offered");
	pack_bool(pk, g != NULL);
	view_key(pk, "job");
	view_opt_u64(pk, job);
}

/* The node's GPUs: every GPU offered, with the job holding it (nil when
 * free), then the held GPUs it no longer offers (it re-registered). */
static void view_node_gpus(msgpack_packer *pk, const struct rec_node *nd)
{
	uint32_t n = nd->ngpus;
	for (uint32_t h = 0; h < nd->nheld; h++) {
		bool offered = false;
		for (uint32_t g = 0; g < nd->ngpus && !offered; g++)
			offered = nd->gpus[g].index == nd->held[h].index;
		n += !offered;
	}
	msgpack_pack_array(pk, n);
	for (uint32_t g = 0; g < nd->ngpus; g++) {
		uint64_t job = 0;
		for (uint32_t h = 0; h < nd->nheld; h++)
			if (nd->held[h].index == nd->gpus[g].index)
				job = nd->held[h].job;
		view_gpu(pk, nd->gpus[g].index, &nd->gpus[g], job);
	}
	for (uint32_t h = 0; h < nd->nheld; h++) {
		bool offered = false;
		for (uint32_t g = 0; g < nd->ngpus && !offered; g++)
			offered = nd->gpus[g].index == nd->held[h].index;
		if (!offered)
			view_gpu(pk, nd->held[h].index, NULL, nd->held[h].job);
	}
}

static void view_gpu_indexes(msgpack_packer *pk, uint32_t n, const uint32_t *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_uint32(pk, v[i]);
}

void view_node(msgpack_packer *pk, const struct rec_node *nd)
{
	msgpack_pack_map(pk, 12);
	view_key(pk, "id");
	msgpack_pack_uint64(pk, nd->id);
	view_key(pk, "capabilities");
	msgpack_pack_array(pk, nd->ncaps);
	for (uint32_t i = 0; i < nd->ncaps; i++)
		mp_pack_str(pk, nd->caps[i]);
	view_key(pk, "labels");
	msgpack_pack_map(pk, nd->nlabels);
	for (uint32_t i = 0; i < nd->nlabels; i++) {
		mp_pack_str(pk, nd->labels[i].key);
		mp_pack_str(pk, nd->labels[i].value);
	}
	view_key(pk, "slots");
	msgpack_pack_uint32(pk, nd->slots);
	view_key(pk, "used_slots");
	msgpack_pack_uint32(pk, nd->used_slots);
	view_key(pk, "draining");
	if (nd->draining)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	view_key(pk, "drain_deadline");
	view_opt_u64(pk, nd->drain_deadline_ms);
	view_key(pk, "down");
	if (nd->down)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	view_key(pk, "registered_at");
	msgpack_pack_uint64(pk, nd->registered_at_ms);
	view_key(pk, "updated_at");
	msgpack_pack_uint64(pk, nd->updated_at_ms);
	view_key(pk, "gpus");
	view_node_gpus(pk, nd);
	view_key(pk, "used_gpus");
	msgpack_pack_uint32(pk, nd->nheld);
}

static void view_files(msgpack_packer *pk, uint32_t n, const struct rec_file *f)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		view_file(pk, &f[i]);
}

/*
 * A stage as clients see it.  The record knows "running" and "done"; the
 * view names the outcome, and in a finished job every stage has a final
 * state: "done" (exit 0), "failed" (another exit status), "killed" (still
 * running when the job ended: cancelled, lost, past its deadline) and
 * "skipped" (never started: s is NULL).  Exit status and duration are nil
 * where there are none (running, killed, skipped).
 */
static void view_stage(msgpack_packer *pk, uint32_t index, const struct rec_stage_result *s,
                       bool job_final)
{
	bool finished = s != NULL && s->state == REC_STAGE_DONE;
	const char *state = s == NULL   ? "skipped"
	                    : finished  ? (s->exit_code == 0 ? "done" : "failed")
	                    : job_final ? "killed"
	                                : "running";
	msgpack_pack_map(pk, 7);
	view_key(pk, "index");
	msgpack_pack_uint32(pk, index);
	view_key(pk, "state");
	mp_pack_cstr(pk, state);
	view_key(pk, "exit_code");
	if (finished)
		msgpack_pack_int64(pk, s->exit_code);
	else
		msgpack_pack_nil(pk);
	view_key(pk, "started_at");
	if (s != NULL)
		msgpack_pack_uint64(pk, s->started_at_ms);
	else
		msgpack_pack_nil(pk);
	view_key(pk, "duration_ms");
	if (finished)
		msgpack_pack_uint64(pk, s->duration_ms);
	else
		msgpack_pack_nil(pk);
	view_key(pk, "log_sha256");
	if (s != NULL && s->has_log)
		pack_hex(pk, s->log_sha256);
	else
		msgpack_pack_nil(pk);
	view_key(pk, "outputs");
	view_files(pk, s != NULL ? s->noutputs : 0, s != NULL ? s->outputs : NULL);
}

static void view_kvs(msgpack_packer *pk, uint32_t n, const struct rec_kv *kv)
{
	msgpack_pack_map(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		mp_pack_str(pk, kv[i].key);
		mp_pack_str(pk, kv[i].value);
	}
}

void view_job(msgpack_packer *pk, const struct rec_job *j, bool full, const char *waiting)
{
	msgpack_pack_map(pk, full ? 19 : 16);
	view_key(pk, "id");
	msgpack_pack_uint64(pk, j->id);
	view_key(pk, "target");
	mp_pack_str(pk, j->target);
	view_key(pk, "tenant");
	mp_pack_str(pk, j->tenant);
	view_key(pk, "state");
	mp_pack_cstr(pk, rec_job_state_name(j->state));
	view_key(pk, "attempt");
	msgpack_pack_uint32(pk, j->attempt);
	view_key(pk, "max_attempts");
	msgpack_pack_uint32(pk, j->max_attempts);
	view_key(pk, "node");
	view_opt_u64(pk, j->node_id);
	view_key(pk, "gpus");
	view_gpu_indexes(pk, j->ngpus, j->gpus);
	view_key(pk, "priority");
	msgpack_pack_uint32(pk, j->priority);
	view_key(pk, "created_at");
	msgpack_pack_uint64(pk, j->created_at_ms);
	view_key(pk, "updated_at");
	msgpack_pack_uint64(pk, j->updated_at_ms);
	view_key(pk, "deadline_at");
	view_opt_u64(pk, j->deadline_at_ms);
	view_key(pk, "finished_at");
	view_opt_u64(pk, j->finished_at_ms);
	view_key(pk, "cancel_requested");
	if (j->cancel_requested)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	view_key(pk, "error");
	mp_pack_str(pk, j->error);
	view_key(pk, "waiting");
	if (waiting != NULL && j->state == REC_JOB_QUEUED)
		mp_pack_cstr(pk, waiting);
	else
		msgpack_pack_nil(pk);
	if (!full)
		return;
	view_key(pk, "sources");
	view_files(pk, j->nsources, j->sources);
	view_key(pk, "params");
	view_kvs(pk, j->nparams, j->params);
	/* A finished job lists every stage of its target, the ones that
	 * never ran as skipped; a live one, the stages started so far. */
	bool final = rec_job_state_final(j->state);
	uint32_t shown = final && j->stage_count > j->nstages ? j->stage_count : j->nstages;
	view_key(pk, "stages");
	msgpack_pack_array(pk, shown);
	for (uint32_t i = 0; i < shown; i++)
		view_stage(pk, i, i < j->nstages ? &j->stages[i] : NULL, final);
}

static void view_strs(msgpack_packer *pk, uint32_t n, const struct ing_str *s)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		mp_pack_str(pk, s[i]);
}

void view_target(msgpack_packer *pk, const struct rec_target *t)
{
	msgpack_pack_map(pk, 12);
	view_key(pk, "name");
	mp_pack_str(pk, t->name);
	view_key(pk, "description");
	mp_pack_str(pk, t->description);
	view_key(pk, "revision");
	msgpack_pack_uint64(pk, t->revision);
	view_key(pk, "capabilities");
	view_strs(pk, t->ncaps, t->caps);
	view_key(pk, "labels");
	view_kvs(pk, t->nlabels, t->labels);
	view_key(pk, "gpus");
	msgpack_pack_uint32(pk, t->gpus);
	view_key(pk, "network");
	mp_pack_bool(pk, t->network);
	view_key(pk, "disk_bytes");
	msgpack_pack_uint64(pk, t->disk_bytes);
	view_key(pk, "stages");
	msgpack_pack_array(pk, t->nstages);
	for (uint32_t i = 0; i < t->nstages; i++) {
		const struct rec_stage_def *s = &t->stages[i];
		msgpack_pack_map(pk, 8);
		view_key(pk, "name");
		mp_pack_str(pk, s->name);
		view_key(pk, "argv");
		view_strs(pk, s->nargv, s->argv);
		view_key(pk, "timeout_ms");
		msgpack_pack_uint64(pk, s->timeout_ms);
		view_key(pk, "env");
		view_kvs(pk, s->nenv, s->env);
		view_key(pk, "outputs");
		view_strs(pk, s->noutputs, s->outputs);
		view_key(pk, "limits");
		msgpack_pack_map(pk, 5);
		view_key(pk, "cpu_seconds");
		msgpack_pack_uint64(pk, s->limits.cpu_seconds);
		view_key(pk, "memory_bytes");
		msgpack_pack_uint64(pk, s->limits.memory_bytes);
		view_key(pk, "open_files");
		msgpack_pack_uint64(pk, s->limits.open_files);
		view_key(pk, "output_bytes");
		msgpack_pack_uint64(pk, s->limits.output_bytes);
		view_key(pk, "processes");
		msgpack_pack_uint64(pk, s->limits.processes);
		view_key(pk, "stdout");
		if (s->stdout_path.len > 0)
			mp_pack_str(pk, s->stdout_path);
		else
			msgpack_pack_nil(pk);
		view_key(pk, "gpus");
		msgpack_pack_uint32(pk, s->gpus);
	}
	view_key(pk, "active_jobs");
	msgpack_pack_uint32(pk, t->active_jobs);
	view_key(pk, "created_at");
	msgpack_pack_uint64(pk, t->created_at_ms);
	view_key(pk, "updated_at");
	msgpack_pack_uint64(pk, t->updated_at_ms);
}

void view_event(msgpack_packer *pk, uint32_t seq, const struct rec_event *ev)
{
	msgpack_pack_map(pk, 9);
	view_key(pk, "seq");
	msgpack_pack_uint32(pk, seq);
	view_key(pk, "time");
	msgpack_pack_uint64(pk, ev->time_ms);
	view_key(pk, "kind");
	mp_pack_cstr(pk, rec_event_kind_name(ev->kind));
	view_key(pk, "state");
	mp_pack_cstr(pk, rec_job_state_name(ev->state));
	view_key(pk, "attempt");
	msgpack_pack_uint32(pk, ev->attempt);
	view_key(pk, "node");
	view_opt_u64(pk, ev->node_id);
	view_key(pk, "stage");
	if (ev->stage < 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_int32(pk, ev->stage);
	view_key(pk, "exit_code");
	msgpack_pack_int64(pk, ev->exit_code);
	view_key(pk, "message");
	mp_pack_str(pk, ev->message);
}
