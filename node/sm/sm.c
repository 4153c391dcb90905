/*
 * sm.c - the state machine's entry point: skip-by-index, decoding,
 * idempotency (dedupe), dispatch to the per-command handlers, and the
 * record load/save helpers those handlers share.
 *
 * Invariants kept here, for every entry at index i:
 *   - the applied index is written in the same transaction as the entry's
 *     effects, so after any crash LMDB holds a prefix of the log and its
 *     exact end (sm.h, "Outcome of one apply");
 *   - a command with a request id that already applied successfully is not
 *     applied again; its stored result is returned instead.  Only successful
 *     results are stored: a rejected command changed nothing, so evaluating
 *     a retry of it again is safe and lets a client fix the cause and retry.
 *     Results are kept in two generations (tables dedupe and dedupe_alt,
 *     meta dedupe_generation says which is current): new ones go to the
 *     current one, a lookup reads both, and retention_run (sm_retention.c)
 *     empties the previous one and makes it current once the window has
 *     passed, so a request id is remembered for at least dedupe_window_ms.
 *
 * The per-command logic lives in sm_job.c (the job state machine),
 * sm_target.c and sm_node.c (nodes and members).
 */
#include "node/sm/sm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/sm/sm_internal.h"

void sm_result_init(struct sm_result *r)
{
	ing_error_clear(&r->err);
	mp_out_init(&r->value);
	r->skipped = false;
	r->deduped = false;
	r->cmd_type = 0;
	r->job = 0;
	r->time_ms = 0;
	r->nchanges = 0;
	r->changes_lost = false;
	r->stage_finished = false;
	r->stage_duration_ms = 0;
	memset(r->removed, 0, sizeof(r->removed));
	r->job_deadline_at_ms = 0;
	r->released = false;
}

void sm_result_free(struct sm_result *r)
{
	mp_out_free(&r->value);
}

static void result_reset(struct sm_result *r)
{
	ing_error_clear(&r->err);
	mp_out_reset(&r->value);
	r->skipped = false;
	r->deduped = false;
	r->cmd_type = 0;
	r->job = 0;
	r->job_deadline_at_ms = 0;
	r->released = false;
	r->time_ms = 0;
	r->nchanges = 0;
	r->changes_lost = false;
	r->stage_finished = false;
	r->stage_duration_ms = 0;
	memset(r->removed, 0, sizeof(r->removed));
}

int sm_new(struct sm **out)
{
	struct sm *sm = calloc(1, sizeof(*sm));
	if (sm == NULL)
		return ING_ENOMEM;
	sm->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (sm->zone == NULL) {
		free(sm);
		return ING_ENOMEM;
	}
	if (rec_target_memo_new(&sm->targets) != 0) {
		msgpack_zone_free(sm->zone);
		free(sm);
		return ING_ENOMEM;
	}
	mp_out_init(&sm->enc);
	for (int st = 0; st < REC_JOB_STATE_COUNT; st++)
		snprintf(sm->count_names[st], sizeof(sm->count_names[st]),
		         STORE_META_JOBS_PREFIX "%s", rec_job_state_name((uint8_t)st));
	*out = sm;
	return 0;
}

void sm_free(struct sm *sm)
{
	if (sm == NULL)
		return;
	mp_out_free(&sm->enc);
	msgpack_zone_free(sm->zone);
	rec_target_memo_free(sm->targets);
	free(sm);
}

int sm_reject(struct sm_ctx *x, int code, const char *fmt, ...)
{
	va_list ap;
	x->res->err.code = code;
	va_start(ap, fmt);
	vsnprintf(x->res->err.msg, sizeof(x->res->err.msg), fmt, ap);
	va_end(ap);
	return 0;
}

void sm_result_uint(struct sm_ctx *x, uint64_t v)
{
	mp_out_reset(&x->res->value);
	msgpack_pack_uint64(&x->res->value.pk, v);
}

void sm_result_str(struct sm_ctx *x, const char *s)
{
	mp_out_reset(&x->res->value);
	mp_pack_cstr(&x->res->value.pk, s);
}

void sm_result_bytes(struct sm_ctx *x, struct ing_str s)
{
	mp_out_reset(&x->res->value);
	mp_pack_str(&x->res->value.pk, s);
}

/* ---- record load/save ------------------------------------------------- */

/* A stored record that does not decode means the store cannot be trusted. */
static int decoded(int rv, const struct ing_error *e)
{
	if (rv == 0 || rv == ING_ENOMEM)
		return rv;
	return ING_CORRUPT(e->msg);
}

int sm_put_encoded(struct sm_ctx *x, enum store_table tbl, struct ing_str key)
{
	int rv = mp_out_failed(&x->sm->enc);
	if (rv != 0)
		return rv;
	struct ing_str val = {x->sm->enc.data, (uint32_t)x->sm->enc.len};
	return store_put(x->t, tbl, key, val);
}

int sm_job_load(struct sm_ctx *x, uint64_t id, struct rec_job *out)
{
	struct ing_error e;
	uint8_t k[8];
	struct ing_str val;
	store_be64(k, id);
	int rv = store_get(x->t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val);
	if (rv != 0)
		return rv;
	rv = decoded(rec_job_decode(val, x->z, out, &e), &e);
	if (rv == 0) {
		unsigned i = 0;
		while (i < x->nloaded && x->loaded[i].job != id)
			i++;
		if (i == x->nloaded && x->nloaded < SM_MAX_CHANGES) {
			x->loaded[i].job = id;
			x->loaded[i].state = out->state;
			x->loaded[i].updated_at_ms = out->updated_at_ms;
			x->nloaded++;
		}
	}
	return rv;
}

void sm_job_note_new(struct sm_ctx *x, uint64_t id)
{
	if (x->nloaded < SM_MAX_CHANGES) {
		x->loaded[x->nloaded].job = id;
		x->loaded[x->nloaded].state = SM_JOB_NEW;
		x->loaded[x->nloaded].updated_at_ms = 0;
		x->nloaded++;
	}
}

/* Notes a state change of j in the result (metrics, sm.h). */
static void note_change(struct sm_ctx *x, const struct rec_job *j)
{
	struct sm_result *r = x->res;
	unsigned i = 0;
	while (i < x->nloaded && x->loaded[i].job != j->id)
		i++;
	uint8_t from = i < x->nloaded ? x->loaded[i].state : SM_JOB_NEW;
	if (from == j->state)
		return;
	if (r->nchanges == SM_MAX_CHANGES) {
		r->changes_lost = true;
		return;
	}
	struct sm_job_change *ch = &r->changes[r->nchanges++];
	ch->job = j->id;
	ch->from = from;
	ch->to = j->state;
	ch->since_ms = i < x->nloaded ? x->loaded[i].updated_at_ms : 0;
	ing_str_to_c(j->target, ch->target, sizeof(ch->target));
	ing_str_to_c(j->tenant, ch->tenant, sizeof(ch->tenant));
	if (i < x->nloaded) {
		x->loaded[i].state = j->state;
		x->loaded[i].updated_at_ms = j->updated_at_ms;
	} else if (x->nloaded < SM_MAX_CHANGES) {
		x->loaded[x->nloaded].job = j->id;
		x->loaded[x->nloaded].state = j->state;
		x->loaded[x->nloaded].updated_at_ms = j->updated_at_ms;
		x->nloaded++;
	}
}

/* Counts j's move from the state it had before this save (a job loaded by
 * this command, one stored before, or none: new) to j->state. */
static int count_save(struct sm_ctx *x, const struct rec_job *j)
{
	unsigned i = 0;
	while (i < x->nloaded && x->loaded[i].job != j->id)
		i++;
	if (i < x->nloaded) {
		if (x->loaded[i].state < REC_JOB_STATE_COUNT)
			x->counts[x->loaded[i].state]--;
	} else {
		/* Not among the loaded ones (new, or past SM_MAX_CHANGES). */
		uint8_t k[8];
		struct ing_str val;
		struct rec_job old;
		struct ing_error e;
		store_be64(k, j->id);
		int rv = store_get(x->t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val);
		if (rv == 0) {
			rv = decoded(rec_job_decode(val, x->z, &old, &e), &e);
			if (rv != 0)
				return rv;
			if (old.state < REC_JOB_STATE_COUNT)
				x->counts[old.state]--;
		} else if (rv != ING_ENOTFOUND) {
			return rv;
		}
	}
	if (j->state < REC_JOB_STATE_COUNT)
		x->counts[j->state]++;
	return 0;
}

/* Adds this command's count changes to meta jobs_<state>. */
static int counts_write(struct sm_ctx *x)
{
	for (int s = 0; s < REC_JOB_STATE_COUNT; s++) {
		if (x->counts[s] == 0)
			continue;
		const char *name = x->sm->count_names[s];
		uint64_t v;
		int rv = store_meta_get_u64(x->t, name, &v);
		if (rv != 0)
			return rv;
		/* Below zero only through a bug: every node clamps alike. */
		if (x->counts[s] < 0 && (uint64_t)-x->counts[s] > v)
			v = 0;
		else
			v += (uint64_t)x->counts[s];
		rv = store_meta_put_u64(x->t, name, v);
		if (rv != 0)
			return rv;
	}
	return 0;
}

int sm_job_counts(struct store_txn *t, uint64_t out[REC_JOB_STATE_COUNT])
{
	for (int s = 0; s < REC_JOB_STATE_COUNT; s++) {
		char name[32];
		snprintf(name, sizeof(name), STORE_META_JOBS_PREFIX "%s",
		         rec_job_state_name((uint8_t)s));
		int rv = store_meta_get_u64(t, name, &out[s]);
		if (rv != 0)
			return rv;
	}
	return 0;
}

int sm_job_save(struct sm_ctx *x, const struct rec_job *j)
{
	int rv = count_save(x, j);
	if (rv != 0)
		return rv;
	note_change(x, j);
	uint8_t k[8];
	store_be64(k, j->id);
	mp_out_reset(&x->sm->enc);
	rec_job_encode(j, &x->sm->enc);
	return sm_put_encoded(x, STORE_JOBS, (struct ing_str){(const char *)k, 8});
}

int sm_target_load(struct sm_ctx *x, struct ing_str name, struct rec_target *out)
{
	struct ing_error e;
	struct ing_str val;
	int rv = store_get(x->t, STORE_TARGETS, name, &val);
	if (rv != 0)
		return rv;
	return decoded(rec_target_memo_decode(x->sm->targets, x->index, val, x->z, out, &e), &e);
}

int sm_target_save(struct sm_ctx *x, const struct rec_target *t)
{
	mp_out_reset(&x->sm->enc);
	rec_target_encode(t, &x->sm->enc);
	return sm_put_encoded(x, STORE_TARGETS, t->name);
}

int sm_target_save_active(struct sm_ctx *x, const struct rec_target *t)
{
	mp_out_reset(&x->sm->enc);
	int rv = rec_target_memo_encode_active(x->sm->targets, x->index, t, &x->sm->enc);
	if (rv == ING_ENOTFOUND)
		return sm_target_save(x, t);
	if (rv != 0 && rv != ING_ENOMEM)
		return rv;
	return sm_put_encoded(x, STORE_TARGETS, t->name);
}

int sm_node_load(struct sm_ctx *x, uint64_t id, struct rec_node *out)
{
	struct ing_error e;
	uint8_t k[8];
	struct ing_str val;
	store_be64(k, id);
	int rv = store_get(x->t, STORE_NODES, (struct ing_str){(const char *)k, 8}, &val);
	if (rv != 0)
		return rv;
	return decoded(rec_node_decode(val, x->z, out, &e), &e);
}

int sm_node_save(struct sm_ctx *x, const struct rec_node *n)
{
	uint8_t k[8];
	store_be64(k, n->id);
	mp_out_reset(&x->sm->enc);
	rec_node_encode(n, &x->sm->enc);
	return sm_put_encoded(x, STORE_NODES, (struct ing_str){(const char *)k, 8});
}

/* ---- dedupe ----------------------------------------------------------- */

int sm_dedupe_tables(struct store_txn *t, enum store_table *current, enum store_table *previous)
{
	uint64_t gen;
	int rv = store_meta_get_u64(t, SM_META_DEDUPE_GENERATION, &gen);
	if (rv != 0)
		return rv;
	*current = gen % 2 == 0 ? STORE_DEDUPE : STORE_DEDUPE_ALT;
	*previous = gen % 2 == 0 ? STORE_DEDUPE_ALT : STORE_DEDUPE;
	return 0;
}

/* Sets x->dedupe_cur/prev unless this apply already read them. */
static int dedupe_tables(struct sm_ctx *x)
{
	if (x->dedupe_known)
		return 0;
	int rv = sm_dedupe_tables(x->t, &x->dedupe_cur, &x->dedupe_prev);
	x->dedupe_known = rv == 0;
	return rv;
}

/* 0 with *hit set when the request id has a stored result (copied into
 * res), or a fatal error. */
static int dedupe_lookup(struct sm_ctx *x, bool *hit)
{
	struct ing_error e;
	struct ing_str val;
	struct rec_dedupe d;
	int rv = dedupe_tables(x);

	*hit = false;
	if (rv == 0)
		rv = store_get(x->t, x->dedupe_cur, x->c->request_id, &val);
	if (rv == ING_ENOTFOUND)
		rv = store_get(x->t, x->dedupe_prev, x->c->request_id, &val);
	if (rv == ING_ENOTFOUND)
		return 0;
	if (rv != 0)
		return rv;
	rv = decoded(rec_dedupe_decode(val, x->z, &d, &e), &e);
	if (rv != 0)
		return rv;
	*hit = true;
	if (d.cmd_type != x->c->type) {
		return sm_reject(x, ING_ECONFLICT,
		                 "request id '%.*s' was already used for a %s command",
		                 ING_STR_FMT(x->c->request_id),
		                 cmd_type_name(d.cmd_type) ? cmd_type_name(d.cmd_type) : "?");
	}
	x->res->err.code = d.code;
	snprintf(x->res->err.msg, sizeof(x->res->err.msg), "%.*s", ING_STR_FMT(d.message));
	mp_out_raw(&x->res->value, d.value.ptr, d.value.len);
	x->res->deduped = true;
	return mp_out_failed(&x->res->value);
}

static int dedupe_store(struct sm_ctx *x)
{
	int rv = dedupe_tables(x);
	if (rv != 0)
		return rv;
	struct rec_dedupe d = {
	    .index = x->index,
	    .cmd_type = x->c->type,
	    .code = x->res->err.code,
	    .message = ing_str_c(x->res->err.msg),
	    .value = {x->res->value.data, (uint32_t)x->res->value.len},
	    .time_ms = x->c->time_ms,
	};
	mp_out_reset(&x->sm->enc);
	rec_dedupe_encode(&d, &x->sm->enc);
	return sm_put_encoded(x, x->dedupe_cur, x->c->request_id);
}

/* ---- dispatch --------------------------------------------------------- */

static int dispatch(struct sm_ctx *x)
{
	switch (x->c->type) {
	case CMD_TARGET_PUT: return sm_target_put(x);
	case CMD_TARGET_DELETE: return sm_target_delete(x);
	case CMD_JOB_SUBMIT: return sm_job_submit(x);
	case CMD_JOB_ASSIGN: return sm_job_assign(x);
	case CMD_JOB_STAGE_START: return sm_job_stage_start(x);
	case CMD_JOB_STAGE_FINISH: return sm_job_stage_finish(x);
	case CMD_JOB_FINISH: return sm_job_finish(x);
	case CMD_JOB_CANCEL: return sm_job_cancel(x);
	case CMD_JOB_REQUEUE: return sm_job_requeue(x);
	case CMD_JOB_RETRY: return sm_job_retry(x);
	case CMD_JOB_EXPIRE: return sm_job_expire(x);
	case CMD_NODE_REGISTER: return sm_node_register(x);
	case CMD_NODE_DRAIN: return sm_node_drain(x);
	case CMD_NODE_DOWN: return sm_node_down(x);
	case CMD_NODE_UP: return sm_node_up(x);
	case CMD_NODE_FORGET: return sm_node_forget(x);
	case CMD_MEMBER_PUT: return sm_member_put(x);
	case CMD_MEMBER_REMOVE: return sm_member_remove(x);
	case CMD_CLUSTER_INIT: return sm_cluster_init(x);
	case CMD_CLUSTER_EVENT: return sm_cluster_event(x);
	case CMD_TOKEN_CREATE: return sm_token_create(x);
	case CMD_TOKEN_REVOKE: return sm_token_revoke(x);
	case CMD_SETTING_PUT: return sm_setting_put(x);
	case CMD_RETENTION_RUN: return sm_retention_run(x);
	}
	/* cmd_decode refuses unknown types; reaching here is a bug in it. */
	return sm_reject(x, ING_EINTERNAL, "no handler for command type %u", x->c->type);
}

int sm_apply(struct sm *sm, struct store_txn *t, uint64_t index, const void *buf, size_t len,
             struct sm_result *res)
{
	struct cmd c;
	struct sm_ctx x = {.sm = sm, .t = t, .z = sm->zone, .c = &c, .index = index, .res = res};
	uint64_t applied;
	bool hit;
	int rv;

	result_reset(res);
	rv = store_applied_index(t, &applied);
	if (rv != 0)
		return rv;
	if (index <= applied) {
		res->skipped = true;
		return 0;
	}
	msgpack_zone_clear(sm->zone);
	rv = cmd_decode(buf, len, sm->zone, &c, &res->err);
	if (rv == ING_EVERSION || rv == ING_ENOMEM) {
		/* A command this binary does not know: applying anything else
		 * would make this node diverge from newer ones.  Stop. */
		ING_LOG_ERROR("unknown command format index=%" PRIu64 " msg=\"%s\"", index,
		              res->err.msg);
		return rv;
	}
	int decode_rv = rv;
	rv = store_set_applied_index(t, index);
	if (rv != 0)
		return rv;
	if (decode_rv != 0) {
		ING_LOG_WARN("command rejected index=%" PRIu64 " error=%s msg=\"%s\"", index,
		             ing_err_name(decode_rv), res->err.msg);
		res->err.code = decode_rv;
		return 0;
	}
	res->cmd_type = c.type;
	res->time_ms = c.time_ms;
	if (c.request_id.len > 0) {
		rv = dedupe_lookup(&x, &hit);
		if (rv != 0 || hit)
			return rv;
	}
	rv = dispatch(&x);
	if (rv == 0)
		rv = counts_write(&x);
	if (rv != 0)
		return rv;
	if (res->err.code == 0 && c.request_id.len > 0)
		rv = dedupe_store(&x);
	if (rv == 0)
		rv = mp_out_failed(&res->value);
	return rv;
}
