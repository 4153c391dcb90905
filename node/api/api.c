/*
 * api.c - the operations every node serves (docs/api.md).
 *
 * Each operation has a kind:
 *   local  served by the receiving node at once (node.info, status, watch);
 *   read   linearizable by default: served by the ready leader after a
 *          barrier, forwarded by followers; with stale=true served locally;
 *   write  served by the ready leader, which turns the arguments into a
 *          command, proposes it and replies with the apply result;
 *          forwarded by followers;
 *   leader served by the ready leader from its memory (heartbeats),
 *          forwarded by followers.
 * Requests that need a leader while there is none (or while a new leader's
 * barrier is pending) are parked (forward.c) and retried, bounded by
 * request_timeout_ms.  Argument checking happens where the request is
 * served; a bad argument gets `invalid` naming it and changes nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/node_internal.h"
#include "rpc/args.h"
#include "storage/artifact.h"

enum op_kind { OP_LOCAL, OP_READ, OP_WRITE, OP_LEADER /* leader's memory, not the log */ };

/* Shapes of write results (docs/api.md). */
enum shape { SHAPE_NONE, SHAPE_ID, SHAPE_TARGET, SHAPE_JOB_STATE };

struct proposal {
	struct cons_proposal p;
	struct node *n;
	struct rpc_call *call; /* NULL: nobody waits */
	enum shape shape;
	uint64_t id;
	char name[ING_NAME_MAX + 1];
};

/* ---- replies ------------------------------------------------------------ */

static void reply_out(struct rpc_call *call, struct mp_out *o)
{
	if (mp_out_failed(o) != 0)
		rpc_reply_error(call, ING_ENOMEM, "out of memory encoding the reply");
	else
		rpc_reply(call, o->data, o->len);
	mp_out_free(o);
}

static void reply_err(struct rpc_call *call, const struct ing_error *e)
{
	rpc_reply_error(call, e->code, "%s", e->msg);
}

/* Decodes one msgpack value (a result from the state machine). */
static int result_object(const struct node_result *r, msgpack_zone *z, msgpack_object *o)
{
	size_t off = 0;
	if (r->len == 0)
		return ING_EINTERNAL;
	return msgpack_unpack(r->value, r->len, &off, z, o) == MSGPACK_UNPACK_SUCCESS
	           ? 0
	           : ING_EINTERNAL;
}

static void reply_result(struct proposal *pr, const struct node_result *r)
{
	struct mp_out o;
	msgpack_zone z;
	msgpack_object v;

	if (r->code != 0) {
		rpc_reply_error(pr->call, r->code, "%s", r->message);
		return;
	}
	mp_out_init(&o);
	msgpack_zone_init(&z, 256);
	switch (pr->shape) {
	case SHAPE_NONE: msgpack_pack_map(&o.pk, 0); break;
	case SHAPE_ID:
		if (result_object(r, &z, &v) != 0 || v.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			goto bad;
		msgpack_pack_map(&o.pk, 1);
		view_key(&o.pk, "id");
		msgpack_pack_uint64(&o.pk, v.via.u64);
		break;
	case SHAPE_TARGET:
		msgpack_pack_map(&o.pk, r->len > 0 ? 2 : 1);
		view_key(&o.pk, "name");
		mp_pack_cstr(&o.pk, pr->name);
		if (r->len > 0) {
			view_key(&o.pk, "revision");
			mp_out_raw(&o, r->value, r->len);
		}
		break;
	case SHAPE_JOB_STATE:
		msgpack_pack_map(&o.pk, 2);
		view_key(&o.pk, "id");
		msgpack_pack_uint64(&o.pk, pr->id);
		view_key(&o.pk, "state");
		mp_out_raw(&o, r->value, r->len);
		break;
	}
	msgpack_zone_destroy(&z);
	reply_out(pr->call, &o);
	return;
bad:
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
	rpc_reply_error(pr->call, ING_EINTERNAL, "unexpected result from the state machine");
}

static void on_proposed(struct cons_proposal *p, int status, void *result)
{
	struct proposal *pr = p->data;
	struct node_result *r = result;

	if (pr->call != NULL) {
		if (status != 0)
			rpc_reply_error(pr->call, ING_EUNAVAILABLE,
			                "leadership changed before the write was confirmed; retry "
			                "with the same request id to apply it at most once");
		else if (r == NULL)
			rpc_reply_error(pr->call, ING_EINTERNAL, "write applied without a result");
		else
			reply_result(pr, r);
	}
	free(r);
	free(pr);
}

static int propose_shaped(struct node *n, struct rpc_call *call, struct cmd *c, enum shape shape,
                          uint64_t id, struct ing_str name)
{
	struct ing_error e;
	struct mp_out o;
	struct proposal *pr = calloc(1, sizeof(*pr));
	int rv;

	if (pr == NULL) {
		if (call != NULL)
			rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return ING_ENOMEM;
	}
	c->version = cmd_type_version(c->type);
	c->time_ms = node_now_ms();
	if (call != NULL && c->request_id.len == 0)
		c->request_id = rpc_call_request_id(call);
	mp_out_init(&o);
	rv = cmd_encode(c, &o, &e);
	if (rv != 0) {
		if (call != NULL)
			reply_err(call, &e);
		goto fail;
	}
	pr->n = n;
	pr->call = call;
	pr->shape = shape;
	pr->id = id;
	snprintf(pr->name, sizeof(pr->name), "%.*s", ING_STR_FMT(name));
	pr->p.data = pr;
	pr->p.cb = on_proposed;
	rv = cons_propose(n->cons, &pr->p, o.data, o.len);
	mp_out_free(&o);
	if (rv == ING_ENOTLEADER && call != NULL) {
		free(pr);
		node_park(n, call);
		return 0;
	}
	if (rv != 0) {
		if (call != NULL)
			rpc_reply_error(call, rv, "cannot propose: %s", ing_err_msg(rv));
		free(pr);
		return rv;
	}
	return 0;
fail:
	mp_out_free(&o);
	free(pr);
	return rv;
}

struct internal_proposal {
	struct cons_proposal p;
	struct node *n;
	node_proposed_cb done;
	void *data;
};

static void on_internal_proposed(struct cons_proposal *p, int status, void *result)
{
	struct internal_proposal *ip = p->data;
	if (ip->done != NULL)
		ip->done(ip->n, status, result, ip->data);
	free(result);
	free(ip);
}

int node_propose_internal(struct node *n, const struct cmd *c, node_proposed_cb done, void *data)
{
	struct cmd copy = *c;
	struct ing_error e;
	struct mp_out o;
	struct internal_proposal *ip = calloc(1, sizeof(*ip));
	int rv;

	if (ip == NULL)
		return ING_ENOMEM;
	copy.version = cmd_type_version(copy.type);
	copy.time_ms = node_now_ms();
	mp_out_init(&o);
	rv = cmd_encode(&copy, &o, &e);
	if (rv != 0) {
		ING_LOG_ERROR("internal command refused type=%s msg=\"%s\"",
		              cmd_type_name(copy.type), e.msg);
	} else {
		ip->n = n;
		ip->done = done;
		ip->data = data;
		ip->p.data = ip;
		ip->p.cb = on_internal_proposed;
		rv = cons_propose(n->cons, &ip->p, o.data, o.len);
	}
	mp_out_free(&o);
	if (rv != 0)
		free(ip);
	return rv;
}

int node_propose(struct node *n, struct rpc_call *call, const struct cmd *c)
{
	struct cmd copy = *c;
	return propose_shaped(n, call, &copy, SHAPE_NONE, 0, ing_str_c(""));
}

/* ---- argument helpers --------------------------------------------------- */

static int check_known(struct rpc_call *call, const char *const names[])
{
	struct ing_error e;
	if (rpc_args_check_known(rpc_call_args(call), names, &e) != 0) {
		reply_err(call, &e);
		return -1;
	}
	return 0;
}

/* Reads an array of strings into zone-allocated views. */
static int str_array(const msgpack_object *arr, const char *what, uint32_t max_len, msgpack_zone *z,
                     uint32_t *n, struct ing_str **out, struct ing_error *e)
{
	*n = 0;
	*out = NULL;
	if (arr == NULL)
		return 0;
	if (arr->via.array.size > 0) {
		*out = msgpack_zone_malloc(z, arr->via.array.size * sizeof(**out));
		if (*out == NULL)
			return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *s = &arr->via.array.ptr[i];
		if (s->type != MSGPACK_OBJECT_STR || s->via.str.size > max_len)
			return ing_error_set(e, ING_EINVAL,
			                     "argument '%s': item %u must be a string of at most "
			                     "%u bytes",
			                     what, i, max_len);
		(*out)[i] = (struct ing_str){s->via.str.ptr, s->via.str.size};
	}
	*n = arr->via.array.size;
	return 0;
}

static int kv_map(const msgpack_object *map, const char *what, msgpack_zone *z, uint32_t *n,
                  struct rec_kv **out, struct ing_error *e)
{
	*n = 0;
	*out = NULL;
	if (map == NULL)
		return 0;
	if (map->via.map.size > 0) {
		*out = msgpack_zone_malloc(z, map->via.map.size * sizeof(**out));
		if (*out == NULL)
			return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		const msgpack_object *v = &map->via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
			return ing_error_set(
			    e, ING_EINVAL, "argument '%s': keys and values must be strings", what);
		(*out)[i].key = (struct ing_str){k->via.str.ptr, k->via.str.size};
		(*out)[i].value = (struct ing_str){v->via.str.ptr, v->via.str.size};
	}
	*n = map->via.map.size;
	return 0;
}

/* The optional `capabilities` (list of names) and `labels` (map) arguments
 * of target.put and node.register. */
static int caps_and_labels(const msgpack_object *args, msgpack_zone *z, uint32_t *ncaps,
                           struct ing_str **caps, uint32_t *nlabels, struct rec_kv **labels,
                           struct ing_error *e)
{
	const msgpack_object *c = NULL, *l = NULL;
	int rv = rpc_arg_array(args, "capabilities", ING_MAX_CAPS, false, &c, e);
	if (rv == 0)
		rv = rpc_arg_map(args, "labels", ING_MAX_LABELS, false, &l, e);
	if (rv == 0)
		rv = str_array(c, "capabilities", ING_NAME_MAX, z, ncaps, caps, e);
	if (rv == 0)
		rv = kv_map(l, "labels", z, nlabels, labels, e);
	return rv;
}

/* ---- writes ------------------------------------------------------------- */

static struct cmd new_cmd(uint32_t type)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = type;
	c.request_id = ing_str_c("");
	return c;
}

/* A stage's `limits` map: {cpu_seconds, memory_bytes, open_files,
 * output_bytes}, each optional (0 = none); the ranges are cmd_validate's. */
static int stage_limits_arg(const msgpack_object *m, struct rec_stage_limits *l,
                            struct ing_error *e)
{
	static const char *const known[] = {"cpu_seconds", "memory_bytes", "open_files",
	                                    "output_bytes", NULL};
	int rv = rpc_args_check_known(m, known, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "cpu_seconds", UINT64_MAX, false, &l->cpu_seconds, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "memory_bytes", UINT64_MAX, false, &l->memory_bytes, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "open_files", UINT64_MAX, false, &l->open_files, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "output_bytes", UINT64_MAX, false, &l->output_bytes, e);
	if (rv != 0) {
		char inner[ING_ERROR_MSG_MAX];
		snprintf(inner, sizeof(inner), "%s", e->msg);
		ing_error_set(e, rv, "argument 'limits': %s", inner);
	}
	return rv;
}

static const struct ing_str *file_path_at(const void *list, uint32_t i)
{
	return &((const struct cmd_file *)list)[i].path;
}

static const struct ing_str *str_at(const void *list, uint32_t i)
{
	return &((const struct ing_str *)list)[i];
}

static void op_target_put(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"name",         "description", "stages",
	                                    "capabilities", "labels",      NULL};
	static const char *const stage_known[] = {"name",    "argv",   "timeout_ms", "env",
	                                          "outputs", "limits", "stdout",     NULL};
	const msgpack_object *args = rpc_call_args(call);
	const msgpack_object *stages;
	struct cmd c = new_cmd(CMD_TARGET_PUT);
	struct rec_target *t = &c.u.target_put.spec;
	struct ing_error e;
	msgpack_zone z;
	int rv;

	if (check_known(call, known) != 0)
		return;
	msgpack_zone_init(&z, 2048);
	t->description = ing_str_c("");
	rv = rpc_arg_str(args, "name", ING_NAME_MAX, true, &t->name, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "description", ING_MESSAGE_MAX, false, &t->description, &e);
	if (rv == 0)
		rv = rpc_arg_array(args, "stages", ING_MAX_STAGES, true, &stages, &e);
	if (rv == 0)
		rv = caps_and_labels(args, &z, &t->ncaps, &t->caps, &t->nlabels, &t->labels, &e);
	if (rv == 0 && stages->via.array.size > 0) {
		t->nstages = stages->via.array.size;
		t->stages = msgpack_zone_malloc(&z, t->nstages * sizeof(*t->stages));
		if (t->stages == NULL)
			rv = ing_error_set(&e, ING_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; rv == 0 && i < t->nstages; i++) {
		const msgpack_object *s = &stages->via.array.ptr[i];
		const msgpack_object *argv, *env = NULL, *outs = NULL, *limits = NULL;
		struct rec_stage_def *d = &t->stages[i];
		memset(d, 0, sizeof(*d));
		d->timeout_ms = 600000;
		d->stdout_path = ing_str_c("");
		if (s->type != MSGPACK_OBJECT_MAP) {
			rv = ing_error_set(&e, ING_EINVAL,
			                   "argument 'stages': item %u must be a map", i);
			break;
		}
		rv = rpc_args_check_known(s, stage_known, &e);
		if (rv == 0)
			rv = rpc_arg_str(s, "name", ING_NAME_MAX, true, &d->name, &e);
		if (rv == 0)
			rv = rpc_arg_array(s, "argv", ING_MAX_ARGV, true, &argv, &e);
		if (rv == 0)
			rv = rpc_arg_u64(s, "timeout_ms", 86400000, false, &d->timeout_ms, &e);
		if (rv == 0)
			rv = rpc_arg_map(s, "env", ING_MAX_ENV, false, &env, &e);
		if (rv == 0)
			rv = rpc_arg_array(s, "outputs", ING_MAX_OUTPUTS, false, &outs, &e);
		if (rv == 0)
			rv = str_array(argv, "argv", ING_ARG_MAX, &z, &d->nargv, &d->argv, &e);
		if (rv == 0)
			rv = kv_map(env, "env", &z, &d->nenv, &d->env, &e);
		if (rv == 0)
			rv = str_array(outs, "outputs", ING_PATH_MAX, &z, &d->noutputs, &d->outputs,
			               &e);
		if (rv == 0)
			rv = rpc_arg_str(s, "stdout", ING_PATH_MAX, false, &d->stdout_path, &e);
		if (rv == 0)
			rv = rpc_arg_map(s, "limits", 4, false, &limits, &e);
		if (rv == 0 && limits != NULL)
			rv = stage_limits_arg(limits, &d->limits, &e);
		/* The outputs and the stdout file share the stage's directory. */
		struct ing_str files[ING_MAX_OUTPUTS + 1];
		uint32_t nfiles = 0;
		for (uint32_t k = 0; rv == 0 && k < d->noutputs && k < ING_MAX_OUTPUTS; k++)
			files[nfiles++] = d->outputs[k];
		if (d->stdout_path.len > 0)
			files[nfiles++] = d->stdout_path;
		if (rv == 0)
			rv = cmd_paths_layout("target.put", "stage outputs and stdout", nfiles,
			                      str_at, files, &e);
	}
	if (rv != 0)
		reply_err(call, &e);
	else
		propose_shaped(n, call, &c, SHAPE_TARGET, 0, t->name);
	msgpack_zone_destroy(&z);
}

static void op_target_delete(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"name", NULL};
	struct cmd c = new_cmd(CMD_TARGET_DELETE);
	struct ing_error e;

	if (check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "name", ING_NAME_MAX, true, &c.u.target_delete.name,
	                &e) != 0) {
		reply_err(call, &e);
		return;
	}
	propose_shaped(n, call, &c, SHAPE_TARGET, 0, c.u.target_delete.name);
}

/* What a worker could not run, refused before anything is stored: source
 * paths that cannot sit side by side, a {param:NAME} the job lacks (the
 * target as this leader holds it; a target changed meanwhile is checked
 * again by the worker). */
static int submit_runnable(struct node *n, const struct cmd *c, msgpack_zone *z,
                           struct ing_error *e)
{
	struct store_txn *t;
	struct ing_str val;
	struct rec_target tg;
	char why[ING_ERROR_MSG_MAX];

	int rv = cmd_paths_layout("job.submit", "sources", c->u.job_submit.nsources, file_path_at,
	                          c->u.job_submit.sources, e);
	if (rv != 0)
		return rv;
	if (store_read_begin(n->store, &t) != 0)
		return 0; /* the state machine decides */
	if (store_get(t, STORE_TARGETS, c->u.job_submit.target, &val) == 0 &&
	    rec_target_decode(val, z, &tg, NULL) == 0 &&
	    cmd_param_missing(&tg, c->u.job_submit.params, c->u.job_submit.nparams, why,
	                      sizeof(why)))
		rv = ing_error_set(e, ING_EINVAL,
		                   "%s: give it with --param NAME=VALUE (argument 'params')", why);
	store_abort(t);
	return rv;
}

static void op_job_submit(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"target", "sources",     "priority", "max_attempts",
	                                    "params", "deadline_ms", "tenant",   NULL};
	static const char *const src_known[] = {"path", "data", NULL};
	const msgpack_object *args = rpc_call_args(call);
	const msgpack_object *sources, *params = NULL;
	struct cmd c = new_cmd(CMD_JOB_SUBMIT);
	uint64_t priority = 50, attempts = 3, deadline = 0;
	struct ing_error e;
	msgpack_zone z;
	int rv;

	if (check_known(call, known) != 0)
		return;
	msgpack_zone_init(&z, 1024);
	c.u.job_submit.tenant = ing_str_c("default");
	rv = rpc_arg_str(args, "target", ING_NAME_MAX, true, &c.u.job_submit.target, &e);
	if (rv == 0)
		rv = rpc_arg_array(args, "sources", ING_MAX_SOURCES, true, &sources, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "priority", ING_MAX_PRIORITY, false, &priority, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "max_attempts", ING_MAX_ATTEMPTS, false, &attempts, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "deadline_ms", 365ull * 86400000, false, &deadline, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "tenant", ING_NAME_MAX, false, &c.u.job_submit.tenant, &e);
	if (rv == 0)
		rv = rpc_arg_map(args, "params", ING_MAX_ENV, false, &params, &e);
	if (rv == 0)
		rv = kv_map(params, "params", &z, &c.u.job_submit.nparams, &c.u.job_submit.params,
		            &e);
	if (rv == 0 && sources->via.array.size > 0) {
		c.u.job_submit.nsources = sources->via.array.size;
		c.u.job_submit.sources =
		    msgpack_zone_malloc(&z, sources->via.array.size * sizeof(struct cmd_file));
		if (c.u.job_submit.sources == NULL)
			rv = ing_error_set(&e, ING_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; rv == 0 && i < c.u.job_submit.nsources; i++) {
		const msgpack_object *s = &sources->via.array.ptr[i];
		struct cmd_file *f = &c.u.job_submit.sources[i];
		if (s->type != MSGPACK_OBJECT_MAP) {
			rv = ing_error_set(&e, ING_EINVAL,
			                   "argument 'sources': item %u must be a map with path "
			                   "and data",
			                   i);
			break;
		}
		rv = rpc_args_check_known(s, src_known, &e);
		if (rv == 0)
			rv = rpc_arg_str(s, "path", ING_PATH_MAX, true, &f->path, &e);
		if (rv == 0)
			rv = rpc_arg_bin(s, "data", ING_SOURCE_MAX_BYTES, true, &f->data, &e);
	}
	c.u.job_submit.priority = (uint32_t)priority;
	c.u.job_submit.max_attempts = (uint32_t)attempts;
	if (rv != 0) {
		reply_err(call, &e);
	} else {
		if (deadline > 0)
			c.u.job_submit.deadline_at_ms = node_now_ms() + deadline;
		if (submit_runnable(n, &c, &z, &e) != 0)
			reply_err(call, &e);
		else
			propose_shaped(n, call, &c, SHAPE_ID, 0, ing_str_c(""));
	}
	msgpack_zone_destroy(&z);
}

static void op_job_cancel_or_retry(struct node *n, struct rpc_call *call, uint32_t type)
{
	static const char *const cancel_known[] = {"id", "reason", NULL};
	static const char *const retry_known[] = {"id", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct cmd c = new_cmd(type);
	struct ing_error e;
	uint64_t id;
	int rv;

	if (check_known(call, type == CMD_JOB_CANCEL ? cancel_known : retry_known) != 0)
		return;
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &id, &e);
	if (rv == 0 && id == 0)
		rv = ing_error_set(&e, ING_EINVAL, "argument 'id': job ids start at 1");
	if (rv == 0 && type == CMD_JOB_CANCEL) {
		c.u.job_cancel.job = id;
		c.u.job_cancel.reason = ing_str_c("cancelled by request");
		rv =
		    rpc_arg_str(args, "reason", ING_MESSAGE_MAX, false, &c.u.job_cancel.reason, &e);
	} else {
		c.u.job_retry.job = id;
	}
	if (rv != 0) {
		reply_err(call, &e);
		return;
	}
	propose_shaped(n, call, &c, SHAPE_JOB_STATE, id, ing_str_c(""));
}

static void op_job_cancel(struct node *n, struct rpc_call *call)
{
	op_job_cancel_or_retry(n, call, CMD_JOB_CANCEL);
}

static void op_job_retry(struct node *n, struct rpc_call *call)
{
	op_job_cancel_or_retry(n, call, CMD_JOB_RETRY);
}

/* ---- reads -------------------------------------------------------------- */

/* Opens a read transaction on fully flushed state, or replies an error. */
static int read_begin(struct node *n, struct rpc_call *call, struct store_txn **t)
{
	int rv = store_batch_flush(n->store);
	if (rv == 0)
		rv = store_read_begin(n->store, t);
	if (rv != 0)
		rpc_reply_error(call, rv, "cannot read the state: %s", ing_err_msg(rv));
	return rv;
}

static int corrupt_reply(struct node *n, struct rpc_call *call, const char *what)
{
	rpc_reply_error(call, ING_ECORRUPT, "%s does not decode", what);
	node_fatal(n, ING_CORRUPT(what), what);
	return ING_ECORRUPT;
}

static void op_target_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"name", "stale", NULL};
	struct ing_str name, val;
	struct ing_error e;
	struct store_txn *t;
	struct rec_target tg;
	struct mp_out o;
	msgpack_zone z;

	if (check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "name", ING_NAME_MAX, true, &name, &e) != 0) {
		reply_err(call, &e);
		return;
	}
	if (read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 2048);
	int rv = store_get(t, STORE_TARGETS, name, &val);
	if (rv == ING_ENOTFOUND) {
		rpc_reply_error(call, rv, "target '%.*s' does not exist", ING_STR_FMT(name));
	} else if (rv != 0) {
		rpc_reply_error(call, rv, "cannot read target: %s", ing_err_msg(rv));
	} else if (rec_target_decode(val, &z, &tg, NULL) != 0) {
		corrupt_reply(n, call, "target record");
	} else {
		mp_out_init(&o);
		view_target(&o.pk, &tg);
		reply_out(call, &o);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}

/* Views one record of a table into pk; non-zero when it does not decode. */
typedef int (*view_record_fn)(msgpack_packer *pk, struct ing_str val, msgpack_zone *z);

static int view_target_record(msgpack_packer *pk, struct ing_str val, msgpack_zone *z)
{
	struct rec_target t;
	int rv = rec_target_decode(val, z, &t, NULL);
	if (rv == 0)
		view_target(pk, &t);
	return rv;
}

static int view_node_record(msgpack_packer *pk, struct ing_str val, msgpack_zone *z)
{
	struct rec_node nd;
	int rv = rec_node_decode(val, z, &nd, NULL);
	if (rv == 0)
		view_node(pk, &nd);
	return rv;
}

/* Replies with every record of `tbl` as an array, in key order. */
static void list_table(struct node *n, struct rpc_call *call, enum store_table tbl,
                       view_record_fn view, const char *what)
{
	static const char *const known[] = {"stale", NULL};
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	struct mp_out body, o;
	msgpack_zone z;
	uint32_t count = 0;
	int rv;

	if (check_known(call, known) != 0 || read_begin(n, call, &t) != 0)
		return;
	mp_out_init(&body);
	msgpack_zone_init(&z, 4096);
	rv = store_iter_open(t, tbl, (struct ing_str){"", 0}, &it);
	bool opened = rv == 0;
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (view(&body.pk, v, &z) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		count++;
		msgpack_zone_clear(&z);
	}
	if (opened)
		store_iter_close(it);
	store_abort(t);
	msgpack_zone_destroy(&z);
	if (rv != ING_ENOTFOUND) {
		mp_out_free(&body);
		if (rv == ING_ECORRUPT)
			corrupt_reply(n, call, what);
		else
			rpc_reply_error(call, rv, "cannot list: %s", ing_err_msg(rv));
		return;
	}
	mp_out_init(&o);
	msgpack_pack_array(&o.pk, count);
	mp_out_raw(&o, body.data, body.len);
	mp_out_free(&body);
	reply_out(call, &o);
}

static void op_target_list(struct node *n, struct rpc_call *call)
{
	list_table(n, call, STORE_TARGETS, view_target_record, "target record");
}

static int read_job_arg(struct rpc_call *call, const char *const known[], uint64_t *id)
{
	struct ing_error e;
	if (check_known(call, known) != 0)
		return -1;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, true, id, &e) != 0) {
		reply_err(call, &e);
		return -1;
	}
	return 0;
}

/* Loads job `id` in t; replies not_found or an error itself (returns != 0). */
static int load_job(struct node *n, struct rpc_call *call, struct store_txn *t, uint64_t id,
                    msgpack_zone *z, struct rec_job *j)
{
	uint8_t k[8];
	struct ing_str val;
	store_be64(k, id);
	int rv = store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val);
	if (rv == ING_ENOTFOUND) {
		rpc_reply_error(call, rv, "job %" PRIu64 " does not exist", id);
		return rv;
	}
	if (rv != 0) {
		rpc_reply_error(call, rv, "cannot read job: %s", ing_err_msg(rv));
		return rv;
	}
	if (rec_job_decode(val, z, j, NULL) != 0)
		return corrupt_reply(n, call, "job record");
	return 0;
}

static void op_job_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "stale", NULL};
	struct store_txn *t;
	struct rec_job j;
	struct mp_out o;
	msgpack_zone z;
	uint64_t id;

	if (read_job_arg(call, known, &id) != 0 || read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	if (load_job(n, call, t, id, &z, &j) == 0) {
		mp_out_init(&o);
		view_job(&o.pk, &j, true, node_sched_reason(n, j.id));
		reply_out(call, &o);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}

static void op_job_events(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "stale", NULL};
	struct store_txn *t;
	struct store_iter *it;
	struct rec_job j;
	struct mp_out o;
	msgpack_zone z;
	struct ing_str k, v;
	uint8_t start[8];
	uint64_t id;
	int rv;

	if (read_job_arg(call, known, &id) != 0 || read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	if (load_job(n, call, t, id, &z, &j) != 0)
		goto out;
	mp_out_init(&o);
	msgpack_pack_array(&o.pk, j.nevents);
	store_be64(start, id);
	rv = store_iter_open(t, STORE_EVENTS, (struct ing_str){(const char *)start, 8}, &it);
	uint32_t seen = 0;
	while (rv == 0 && seen < j.nevents && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_event ev;
		if (k.len != 12 || store_get_be64(k.ptr) != id ||
		    rec_event_decode(v, &z, &ev, NULL) != 0)
			break;
		view_event(&o.pk, store_get_be32(k.ptr + 8), &ev);
		seen++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	if (seen != j.nevents) {
		mp_out_free(&o);
		corrupt_reply(n, call, "job event history");
		goto out;
	}
	reply_out(call, &o);
out:
	msgpack_zone_destroy(&z);
	store_abort(t);
}

/* Cluster events: job id 0 in the events table (node/sm/sm_node.c). */
static void op_cluster_events(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"after", "limit", "stale", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct store_txn *t;
	struct store_iter *it;
	struct ing_error e;
	struct mp_out o;
	msgpack_zone z;
	struct ing_str k, v;
	uint64_t after = 0, limit = 100;
	uint8_t start[12];
	uint32_t count = 0, last = 0;
	bool more = false;
	int rv;

	if (check_known(call, known) != 0)
		return;
	rv = rpc_arg_u64(args, "after", UINT32_MAX, false, &after, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "limit", 1000, false, &limit, &e);
	if (rv == 0 && limit == 0)
		rv = ing_error_set(&e, ING_EINVAL, "argument 'limit': must be 1..1000");
	if (rv == 0 && rpc_arg_find(args, "limit") == NULL)
		limit = 100;
	if (rv != 0) {
		reply_err(call, &e);
		return;
	}
	if (read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	mp_out_init(&o);
	/* Counted first so the array header is right: at most limit + 1. */
	store_be64(start, 0);
	store_be32(start + 8, rpc_arg_find(args, "after") != NULL ? (uint32_t)after + 1 : 0);
	struct ing_str from = {(const char *)start, 12};
	rv = store_iter_open(t, STORE_EVENTS, from, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len != 12 || store_get_be64(k.ptr) != 0)
			break;
		if (count == limit) {
			more = true;
			break;
		}
		count++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	msgpack_pack_map(&o.pk, 2);
	view_key(&o.pk, "events");
	msgpack_pack_array(&o.pk, count);
	uint32_t packed = 0;
	rv = store_iter_open(t, STORE_EVENTS, from, &it);
	while (rv == 0 && packed < count && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_event ev;
		if (k.len != 12 || store_get_be64(k.ptr) != 0 ||
		    rec_event_decode(v, &z, &ev, NULL) != 0)
			break;
		last = store_get_be32(k.ptr + 8);
		msgpack_pack_map(&o.pk, 5);
		view_key(&o.pk, "seq");
		msgpack_pack_uint32(&o.pk, last);
		view_key(&o.pk, "time_ms");
		msgpack_pack_uint64(&o.pk, ev.time_ms);
		view_key(&o.pk, "kind");
		mp_pack_cstr(&o.pk, rec_event_kind_name(ev.kind));
		view_key(&o.pk, "member");
		if (ev.node_id == 0)
			msgpack_pack_nil(&o.pk);
		else
			msgpack_pack_uint64(&o.pk, ev.node_id);
		view_key(&o.pk, "message");
		mp_pack_str(&o.pk, ev.message);
		packed++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	if (packed != count) {
		mp_out_free(&o);
		corrupt_reply(n, call, "cluster event history");
	} else {
		view_key(&o.pk, "next");
		if (more)
			msgpack_pack_uint32(&o.pk, last);
		else
			msgpack_pack_nil(&o.pk);
		reply_out(call, &o);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}

static void op_job_list(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"state", "target", "after", "limit", "stale", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str state_name = {"", 0}, target = {"", 0}, k, v;
	uint64_t after = 0, limit = 100, last = 0;
	uint8_t state = 0, start[8];
	struct ing_error e;
	struct store_txn *t;
	struct store_iter *it;
	struct mp_out body, o;
	msgpack_zone z;
	uint32_t count = 0;
	bool more = false;
	int rv;

	if (check_known(call, known) != 0)
		return;
	rv = rpc_arg_str(args, "state", 16, false, &state_name, &e);
	if (rv == 0 && state_name.len > 0 && rec_job_state_parse(state_name, &state) != 0)
		rv = ing_error_set(
		    &e, ING_EINVAL,
		    "argument 'state': '%.*s' is not one of queued, assigned, running, "
		    "succeeded, failed, cancelled",
		    ING_STR_FMT(state_name));
	if (rv == 0)
		rv = rpc_arg_str(args, "target", ING_NAME_MAX, false, &target, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "after", UINT64_MAX - 1, false, &after, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "limit", 1000, false, &limit, &e);
	if (rv == 0 && limit == 0)
		rv = ing_error_set(&e, ING_EINVAL, "argument 'limit': must be at least 1");
	if (rv != 0) {
		reply_err(call, &e);
		return;
	}
	if (read_begin(n, call, &t) != 0)
		return;
	mp_out_init(&body);
	msgpack_zone_init(&z, 4096);
	store_be64(start, after + 1);
	rv = store_iter_open(t, STORE_JOBS, (struct ing_str){(const char *)start, 8}, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_job j;
		if (rec_job_decode(v, &z, &j, NULL) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		if ((state_name.len == 0 || j.state == state) &&
		    (target.len == 0 || ing_str_eq(target, j.target))) {
			if (count == limit) {
				more = true;
				break;
			}
			view_job(&body.pk, &j, false, node_sched_reason(n, j.id));
			count++;
			last = j.id;
		}
		msgpack_zone_clear(&z);
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	store_abort(t);
	msgpack_zone_destroy(&z);
	if (rv == ING_ECORRUPT) {
		mp_out_free(&body);
		corrupt_reply(n, call, "job record");
		return;
	}
	if (rv != 0 && rv != ING_ENOTFOUND) {
		mp_out_free(&body);
		rpc_reply_error(call, rv, "cannot list jobs: %s", ing_err_msg(rv));
		return;
	}
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 2);
	view_key(&o.pk, "jobs");
	msgpack_pack_array(&o.pk, count);
	mp_out_raw(&o, body.data, body.len);
	view_key(&o.pk, "next");
	if (more)
		msgpack_pack_uint64(&o.pk, last);
	else
		msgpack_pack_nil(&o.pk);
	mp_out_free(&body);
	reply_out(call, &o);
}

/* ---- nodes and workers ------------------------------------------------ */

static void op_node_register(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "capabilities", "labels", "slots", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct cmd c = new_cmd(CMD_NODE_REGISTER);
	struct rec_node *nd = &c.u.node_register.spec;
	uint64_t slots = 0;
	struct ing_error e;
	msgpack_zone z;
	int rv;

	if (check_known(call, known) != 0)
		return;
	msgpack_zone_init(&z, 1024);
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &nd->id, &e);
	if (rv == 0)
		rv =
		    caps_and_labels(args, &z, &nd->ncaps, &nd->caps, &nd->nlabels, &nd->labels, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "slots", ING_MAX_SLOTS, true, &slots, &e);
	nd->slots = (uint32_t)slots;
	if (rv != 0)
		reply_err(call, &e);
	else
		propose_shaped(n, call, &c, SHAPE_NONE, 0, ing_str_c(""));
	msgpack_zone_destroy(&z);
}

static void op_node_heartbeat(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	uint64_t id;
	struct ing_error e;
	struct mp_out o;
	if (check_known(call, known) != 0)
		return;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, true, &id, &e) != 0) {
		reply_err(call, &e);
		return;
	}
	node_liveness_seen(n, id);
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 0);
	reply_out(call, &o);
}

static void op_node_drain_common(struct node *n, struct rpc_call *call, bool draining)
{
	static const char *const drain_known[] = {"id", "deadline_ms", NULL};
	static const char *const undrain_known[] = {"id", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct cmd c = new_cmd(CMD_NODE_DRAIN);
	uint64_t deadline = 0;
	struct ing_error e;
	int rv;

	if (check_known(call, draining ? drain_known : undrain_known) != 0)
		return;
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &c.u.node_drain.node, &e);
	if (rv == 0 && draining)
		rv = rpc_arg_u64(args, "deadline_ms", 365ull * 86400000, false, &deadline, &e);
	if (rv != 0) {
		reply_err(call, &e);
		return;
	}
	c.u.node_drain.draining = draining;
	c.u.node_drain.deadline_ms = deadline > 0 ? node_now_ms() + deadline : 0;
	propose_shaped(n, call, &c, SHAPE_NONE, 0, ing_str_c(""));
}

static void op_node_drain(struct node *n, struct rpc_call *call)
{
	op_node_drain_common(n, call, true);
}

static void op_node_undrain(struct node *n, struct rpc_call *call)
{
	op_node_drain_common(n, call, false);
}

/* node.forget: drops a node that is down and runs nothing (the state
 * machine refuses any other). */
static void op_node_forget(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct cmd c = new_cmd(CMD_NODE_FORGET);
	struct ing_error e;

	if (check_known(call, known) != 0)
		return;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, true, &c.u.node_forget.node, &e) !=
	    0) {
		reply_err(call, &e);
		return;
	}
	propose_shaped(n, call, &c, SHAPE_NONE, 0, ing_str_c(""));
}

/* Reads [{path, data}] into zone-allocated cmd_files. */
static int files_arg(const msgpack_object *args, const char *name, uint32_t max_n, msgpack_zone *z,
                     uint32_t *n, struct cmd_file **out, struct ing_error *e)
{
	static const char *const file_known[] = {"path", "data", NULL};
	const msgpack_object *arr = NULL;
	int rv = rpc_arg_array(args, name, max_n, false, &arr, e);
	*n = 0;
	*out = NULL;
	if (rv != 0 || arr == NULL || arr->via.array.size == 0)
		return rv;
	*out = msgpack_zone_malloc(z, arr->via.array.size * sizeof(**out));
	if (*out == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *f = &arr->via.array.ptr[i];
		if (f->type != MSGPACK_OBJECT_MAP)
			return ing_error_set(
			    e, ING_EINVAL,
			    "argument '%s': item %u must be a map with path and data", name, i);
		rv = rpc_args_check_known(f, file_known, e);
		if (rv == 0)
			rv = rpc_arg_str(f, "path", ING_PATH_MAX, true, &(*out)[i].path, e);
		if (rv == 0)
			rv = rpc_arg_bin(f, "data", ING_SOURCE_MAX_BYTES, true, &(*out)[i].data, e);
		if (rv != 0)
			return rv;
	}
	*n = arr->via.array.size;
	return 0;
}

/* worker.report: a worker's report about its attempt (stage_start,
 * stage_finish, finish), turned into the matching command. */
static void op_worker_report(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"kind",      "job",         "attempt", "stage",
	                                    "exit_code", "duration_ms", "log",     "outputs",
	                                    "outcome",   "message",     NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str kind, outcome = {"", 0}, message = {"", 0};
	uint64_t job = 0, attempt = 0, stage = 0, duration = 0;
	int64_t exit_code = 0;
	struct ing_error e;
	msgpack_zone z;
	struct cmd c;
	int rv;

	if (check_known(call, known) != 0)
		return;
	msgpack_zone_init(&z, 1024);
	rv = rpc_arg_str(args, "kind", 16, true, &kind, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "job", UINT64_MAX, true, &job, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "attempt", UINT32_MAX, true, &attempt, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "stage", ING_MAX_STAGES, false, &stage, &e);
	if (rv == 0)
		rv = rpc_arg_i64(args, "exit_code", INT64_MIN, INT64_MAX, false, &exit_code, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "duration_ms", UINT64_MAX, false, &duration, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "outcome", 16, false, &outcome, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "message", ING_MESSAGE_MAX, false, &message, &e);
	if (rv != 0)
		goto bad;
	if (ing_str_eq_c(kind, "stage_start")) {
		c = new_cmd(CMD_JOB_STAGE_START);
		c.u.job_stage_start.job = job;
		c.u.job_stage_start.attempt = (uint32_t)attempt;
		c.u.job_stage_start.stage = (uint32_t)stage;
	} else if (ing_str_eq_c(kind, "stage_finish")) {
		const msgpack_object *log = rpc_arg_find(args, "log");
		c = new_cmd(CMD_JOB_STAGE_FINISH);
		c.u.job_stage_finish.job = job;
		c.u.job_stage_finish.attempt = (uint32_t)attempt;
		c.u.job_stage_finish.stage = (uint32_t)stage;
		c.u.job_stage_finish.exit_code = exit_code;
		c.u.job_stage_finish.duration_ms = duration;
		c.u.job_stage_finish.has_log = log != NULL && log->type != MSGPACK_OBJECT_NIL;
		rv = rpc_arg_bin(args, "log", ING_SOURCE_MAX_BYTES, false,
		                 &c.u.job_stage_finish.log, &e);
		if (rv == 0)
			rv = files_arg(args, "outputs", ING_MAX_OUTPUTS, &z,
			               &c.u.job_stage_finish.noutputs,
			               &c.u.job_stage_finish.outputs, &e);
		if (rv != 0)
			goto bad;
	} else if (ing_str_eq_c(kind, "finish")) {
		uint8_t state;
		c = new_cmd(CMD_JOB_FINISH);
		c.u.job_finish.job = job;
		c.u.job_finish.attempt = (uint32_t)attempt;
		c.u.job_finish.message = message;
		if (rec_job_state_parse(outcome, &state) != 0 || !rec_job_state_final(state)) {
			rv = ing_error_set(&e, ING_EINVAL,
			                   "argument 'outcome': expected succeeded, failed or "
			                   "cancelled");
			goto bad;
		}
		c.u.job_finish.outcome = state;
	} else if (ing_str_eq_c(kind, "lost")) {
		c = new_cmd(CMD_JOB_REQUEUE);
		c.u.job_requeue.job = job;
		c.u.job_requeue.attempt = (uint32_t)attempt;
		c.u.job_requeue.reason = message;
	} else {
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'kind': expected stage_start, stage_finish, finish or "
		                   "lost");
		goto bad;
	}
	propose_shaped(n, call, &c, SHAPE_JOB_STATE, job, ing_str_c(""));
	msgpack_zone_destroy(&z);
	return;
bad:
	reply_err(call, &e);
	msgpack_zone_destroy(&z);
}

static void op_node_list(struct node *n, struct rpc_call *call)
{
	list_table(n, call, STORE_NODES, view_node_record, "node record");
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void op_artifact_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"sha256", "stale", NULL};
	struct ing_str hex;
	struct ing_error e;
	struct store_txn *t;
	uint8_t sha[32];
	void *data;
	size_t len;
	struct mp_out o;

	if (check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "sha256", 64, true, &hex, &e) != 0) {
		reply_err(call, &e);
		return;
	}
	for (uint32_t i = 0; i < 32; i++) {
		int hi = hex.len == 64 ? hex_digit(hex.ptr[2 * i]) : -1;
		int lo = hex.len == 64 ? hex_digit(hex.ptr[2 * i + 1]) : -1;
		if (hi < 0 || lo < 0) {
			rpc_reply_error(call, ING_EINVAL,
			                "argument 'sha256': expected 64 lowercase hex digits");
			return;
		}
		sha[i] = (uint8_t)(hi << 4 | lo);
	}
	if (read_begin(n, call, &t) != 0)
		return;
	int rv = store_artifact_read(t, sha, &data, &len);
	store_abort(t);
	if (rv == ING_ENOTFOUND) {
		rpc_reply_error(call, rv, "artifact %.*s does not exist", ING_STR_FMT(hex));
		return;
	}
	if (rv != 0) {
		rpc_reply_error(call, rv, "cannot read artifact: %s", ing_err_msg(rv));
		return;
	}
	mp_out_init(&o);
	mp_pack_bin(&o.pk, data, len);
	free(data);
	reply_out(call, &o);
}

/* ---- local -------------------------------------------------------------- */

static const char *info_role(enum cons_role r)
{
	switch (r) {
	case CONS_LEADER_READY:
	case CONS_LEADER: return "leader";
	case CONS_CANDIDATE: return "candidate";
	case CONS_FOLLOWER: return "follower";
	case CONS_UNAVAILABLE: return "unavailable";
	}
	return "unknown";
}

static void op_node_info(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {NULL};
	struct cons_status st;
	struct mp_out o;

	if (check_known(call, known) != 0)
		return;
	char cluster[CMD_CLUSTER_ID_LEN + 1];
	node_cluster_id(n, cluster);
	cons_status(n->cons, &st);
	/* A leader adds how long ago it heard from each member (status on a
	 * follower shows them from here). */
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	bool leads = st.role == CONS_LEADER_READY && cons_members(n->cons, &ms, &nm) == 0;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 9);
	view_key(&o.pk, "contacts");
	if (leads) {
		msgpack_pack_map(&o.pk, nm);
		for (unsigned i = 0; i < nm; i++) {
			char key[24];
			snprintf(key, sizeof(key), "%" PRIu64, ms[i].id);
			mp_pack_cstr(&o.pk, key);
			if (ms[i].id == n->cfg.id)
				msgpack_pack_uint64(&o.pk, 0);
			else if (ms[i].contact_ago_ms == UINT64_MAX)
				msgpack_pack_nil(&o.pk);
			else
				msgpack_pack_uint64(&o.pk, ms[i].contact_ago_ms);
		}
	} else {
		msgpack_pack_nil(&o.pk);
	}
	free(ms);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	view_key(&o.pk, "cluster_id");
	if (cluster[0] == '\0')
		msgpack_pack_nil(&o.pk);
	else
		mp_pack_cstr(&o.pk, cluster);
	view_key(&o.pk, "role");
	mp_pack_cstr(&o.pk, info_role(st.role));
	view_key(&o.pk, "leader");
	if (st.leader_id == 0)
		msgpack_pack_nil(&o.pk);
	else
		msgpack_pack_uint64(&o.pk, st.leader_id);
	view_key(&o.pk, "term");
	msgpack_pack_uint64(&o.pk, st.term);
	view_key(&o.pk, "applied_index");
	msgpack_pack_uint64(&o.pk, st.last_applied);
	view_key(&o.pk, "commit_index");
	msgpack_pack_uint64(&o.pk, st.commit_index);
	view_key(&o.pk, "last_index");
	msgpack_pack_uint64(&o.pk, st.last_index);
	reply_out(call, &o);
}

static void op_job_watch(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	uint64_t id;
	if (read_job_arg(call, known, &id) != 0)
		return;
	node_watch_start(n, call, id);
}

static void op_status(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"stale", NULL};
	if (check_known(call, known) != 0)
		return;
	node_status_start(n, call);
}

/* ---- dispatch ----------------------------------------------------------- */

struct op {
	const char *name;
	enum op_kind kind;
	void (*fn)(struct node *n, struct rpc_call *call);
	bool slow; /* waits for a membership change: member_catchup_timeout_ms */
};

static const struct op ops[] = {
    {"status", OP_LOCAL, op_status},
    {"node.info", OP_LOCAL, op_node_info},
    {"target.put", OP_WRITE, op_target_put},
    {"target.get", OP_READ, op_target_get},
    {"target.list", OP_READ, op_target_list},
    {"target.delete", OP_WRITE, op_target_delete},
    {"job.submit", OP_WRITE, op_job_submit},
    {"job.get", OP_READ, op_job_get},
    {"job.list", OP_READ, op_job_list},
    {"job.cancel", OP_WRITE, op_job_cancel},
    {"job.retry", OP_WRITE, op_job_retry},
    {"job.events", OP_READ, op_job_events},
    {"job.watch", OP_LOCAL, op_job_watch},
    {"node.list", OP_READ, op_node_list},
    {"node.drain", OP_WRITE, op_node_drain},
    {"node.undrain", OP_WRITE, op_node_undrain},
    {"node.forget", OP_WRITE, op_node_forget},
    {"artifact.get", OP_READ, op_artifact_get},
    {"node.register", OP_WRITE, op_node_register},
    {"node.heartbeat", OP_LEADER, op_node_heartbeat},
    {"worker.report", OP_WRITE, op_worker_report},
    {"member.add", OP_LEADER, node_op_member_add, true},
    {"member.promote", OP_LEADER, node_op_member_promote, true},
    {"member.demote", OP_LEADER, node_op_member_demote, true},
    {"member.remove", OP_LEADER, node_op_member_remove, true},
    {"member.transfer", OP_LEADER, node_op_member_transfer, true},
    {"member.check", OP_LEADER, node_op_member_check},
    {"cluster.events", OP_READ, op_cluster_events},
};

static const struct op *find_op(struct ing_str name)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ing_str_eq_c(name, ops[i].name))
			return &ops[i];
	return NULL;
}

unsigned node_api_call_timeout_ms(struct node *n, struct ing_str op)
{
	const struct op *o = find_op(op);
	if (o != NULL && o->slow)
		return n->cfg.request_timeout_ms + n->cfg.member_catchup_timeout_ms + 5000;
	return n->cfg.request_timeout_ms;
}

struct read_barrier {
	struct cons_barrier b;
	struct node *n;
	struct rpc_call *call;
	const struct op *op;
};

static void on_read_barrier(struct cons_barrier *b, int status)
{
	struct read_barrier *rb = b->data;
	if (status == 0)
		rb->op->fn(rb->n, rb->call);
	else
		node_park(rb->n, rb->call);
	free(rb);
}

/* The optional `stale` argument of a read: true, false, nil or absent;
 * anything else is refused like every other mistyped argument. */
static int wants_stale(struct rpc_call *call, bool *stale, struct ing_error *e)
{
	*stale = false;
	return rpc_arg_bool(rpc_call_args(call), "stale", false, stale, e);
}

void node_api_dispatch(struct node *n, struct rpc_call *call)
{
	const struct op *op = find_op(rpc_call_op(call));

	if (op == NULL) {
		rpc_reply_error(call, ING_EINVAL,
		                "unknown operation '%.*s' (see docs/api.md for the list)",
		                ING_STR_FMT(rpc_call_op(call)));
		return;
	}
	if (n->stopping) {
		rpc_reply_error(call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                n->cfg.id);
		return;
	}
	bool stale = false;
	struct ing_error e;
	if ((op->kind == OP_READ || op->kind == OP_LOCAL) && wants_stale(call, &stale, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	if (op->kind == OP_LOCAL || stale) {
		op->fn(n, call);
		return;
	}
	if (n->role != CONS_LEADER_READY) {
		if (n->role == CONS_FOLLOWER && n->leader_id != 0 && n->leader_id != n->cfg.id)
			node_forward(n, call);
		else
			node_park(n, call);
		return;
	}
	if (op->kind == OP_WRITE || op->kind == OP_LEADER) {
		op->fn(n, call);
		return;
	}
	struct read_barrier *rb = calloc(1, sizeof(*rb));
	if (rb == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	rb->n = n;
	rb->call = call;
	rb->op = op;
	rb->b.data = rb;
	rb->b.cb = on_read_barrier;
	if (cons_barrier(n->cons, &rb->b) != 0) {
		free(rb);
		node_park(n, call);
	}
}

void node_api_handle(void *data, struct rpc_call *call)
{
	node_api_dispatch(data, call);
}
