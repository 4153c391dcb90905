/*
 * jobs.c - job.submit, job.get, job.list, job.cancel, job.retry, job.events
 * and job.watch (docs/api.md "Jobs").
 *
 * Tenants: a tenant's principal submits only into its tenant (which is
 * then the default), and another tenant's job does not exist for it: every
 * operation on one answers not_found with the same words as for a missing
 * job, and job.list leaves it out.
 */
#include <inttypes.h>
#include <stdio.h>

#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/leader/scheduler.h"
#include "node/sm/sm.h"
#include "rpc/args.h"
#include "storage/store.h"

/*
 * Near the store's ceiling (storage/store.h store_space_low) a new job is
 * refused with no_space before it is proposed, so reads, running work and
 * every other command go on and the map never fills.  A retry of a submit
 * already applied (its request id is in the dedupe table) still goes
 * through, to get its first result.  Only the receiving node looks: every
 * node's store holds the same tables, and apply never looks (it must not
 * depend on a node's disk).
 */
static bool refuse_for_space(struct node *n, struct rpc_call *call)
{
	struct store *st = node_store(n);
	struct ing_str rid = rpc_call_request_id(call), val;
	struct store_space sp = {0};
	struct store_txn *t;
	bool known = false;

	if (!store_space_low(st))
		return false;
	if (rid.len > 0 && store_read_begin(st, &t) == 0) {
		enum store_table cur = STORE_DEDUPE, prev = STORE_DEDUPE_ALT;
		known = sm_dedupe_tables(t, &cur, &prev) == 0 &&
		        (store_get(t, cur, rid, &val) == 0 || store_get(t, prev, rid, &val) == 0);
		store_abort(t);
	}
	if (known)
		return false;
	store_space(st, &sp);
	rpc_reply_error(call, ING_ENOSPACE,
	                "no room for new jobs: the store of node %" PRIu64 " uses %" PRIu64
	                " of its %" PRIu64 "-byte ceiling (store_map_max_bytes), within the "
	                "reserve kept for work already accepted (store_reserve_bytes); reads "
	                "and running jobs go on; let retention remove finished jobs (ingotctl "
	                "settings set job-retention) or raise store_map_max_bytes on every node",
	                node_id(n), sp.used_bytes, sp.max_bytes);
	return true;
}

static const struct ing_str *file_path_at(const void *list, uint32_t i)
{
	return &((const struct cmd_file *)list)[i].path;
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
	if (store_read_begin(node_store(n), &t) != 0)
		return 0; /* the state machine decides */
	struct api *a = node_api(n);
	if (store_get(t, STORE_TARGETS, c->u.job_submit.target, &val) == 0 &&
	    rec_target_memo_decode(a->targets, ++a->targets_epoch, val, z, &tg, NULL) == 0 &&
	    cmd_param_missing(&tg, c->u.job_submit.params, c->u.job_submit.nparams, why,
	                      sizeof(why)))
		rv = ing_error_set(e, ING_EINVAL,
		                   "%s: give it with --param NAME=VALUE (argument 'params')", why);
	store_abort(t);
	return rv;
}

void api_op_job_submit(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"target", "sources",     "priority", "max_attempts",
	                                    "params", "deadline_ms", "tenant",   NULL};
	static const char *const src_known[] = {"path", "data", NULL};
	const msgpack_object *args = rpc_call_args(call);
	const msgpack_object *sources, *params = NULL;
	struct cmd c = api_new_cmd(CMD_JOB_SUBMIT);
	uint64_t priority = 50, attempts = 3, deadline = 0;
	struct ing_error e;
	struct api *a = node_api(n);
	msgpack_zone local, *z = a->submit_zone;
	int rv;

	if (api_check_known(call, known) != 0 || refuse_for_space(n, call))
		return;
	/* The API's zone, cleared after each submit (no allocation per
	 * request); a local one if it is in use or could not be made. */
	if (z == NULL || a->submit_zone_busy) {
		msgpack_zone_init(&local, 1024);
		z = &local;
	} else {
		a->submit_zone_busy = true;
	}
	const struct auth_principal *who = api_caller(call);
	c.u.job_submit.tenant = ing_str_c(who->tenant[0] != '\0' ? who->tenant : "default");
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
		rv = api_kv_map(params, "params", z, &c.u.job_submit.nparams,
		                &c.u.job_submit.params, &e);
	if (rv == 0 && sources->via.array.size > 0) {
		c.u.job_submit.nsources = sources->via.array.size;
		c.u.job_submit.sources =
		    msgpack_zone_malloc(z, sources->via.array.size * sizeof(struct cmd_file));
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
	if (rv == 0 && !auth_sees_tenant(who, c.u.job_submit.tenant)) {
		ing_error_set(&e, ING_EDENIED, "%s may submit only into tenant %s, not %.*s",
		              who->name, who->tenant, ING_STR_FMT(c.u.job_submit.tenant));
		api_refuse(node_api(n), call, &e);
	} else if (rv != 0) {
		api_reply_err(call, &e);
	} else {
		if (deadline > 0)
			c.u.job_submit.deadline_at_ms = node_now_ms() + deadline;
		if (submit_runnable(n, &c, z, &e) != 0)
			api_reply_err(call, &e);
		else
			api_propose(n, call, &c, SHAPE_ID, 0, ing_str_c(""));
	}
	if (z == &local) {
		msgpack_zone_destroy(&local);
	} else {
		msgpack_zone_clear(z);
		a->submit_zone_busy = false;
	}
}

static void op_job_cancel_or_retry(struct node *n, struct rpc_call *call, uint32_t type)
{
	static const char *const cancel_known[] = {"id", "reason", NULL};
	static const char *const retry_known[] = {"id", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct cmd c = api_new_cmd(type);
	struct ing_error e;
	uint64_t id;
	int rv;

	if (api_check_known(call, type == CMD_JOB_CANCEL ? cancel_known : retry_known) != 0)
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
		api_reply_err(call, &e);
		return;
	}
	if (api_job_visible(n, call, id) != 0)
		return;
	api_propose(n, call, &c, SHAPE_JOB_STATE, id, ing_str_c(""));
}

void api_op_job_cancel(struct node *n, struct rpc_call *call)
{
	op_job_cancel_or_retry(n, call, CMD_JOB_CANCEL);
}

void api_op_job_retry(struct node *n, struct rpc_call *call)
{
	op_job_cancel_or_retry(n, call, CMD_JOB_RETRY);
}

int api_job_visible(struct node *n, struct rpc_call *call, uint64_t id)
{
	struct store_txn *t;
	struct rec_job j;
	msgpack_zone z;
	if (api_caller(call)->tenant[0] == '\0')
		return 0; /* sees every tenant: the state machine says whether it exists */
	if (api_read_begin(n, call, &t) != 0)
		return ING_EIO;
	msgpack_zone_init(&z, 1024);
	int rv = api_load_job(n, call, t, id, &z, &j);
	msgpack_zone_destroy(&z);
	store_abort(t);
	return rv;
}

void api_op_job_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "stale", NULL};
	struct store_txn *t;
	struct rec_job j;
	struct mp_out o;
	msgpack_zone z;
	uint64_t id;

	if (api_read_id(call, known, &id) != 0 || api_read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	if (api_load_job(n, call, t, id, &z, &j) == 0) {
		mp_out_init(&o);
		view_job(&o.pk, &j, true, sched_reason(node_sched(n), j.id, j.target));
		api_reply_out(call, &o);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}

void api_op_job_events(struct node *n, struct rpc_call *call)
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

	if (api_read_id(call, known, &id) != 0 || api_read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	if (api_load_job(n, call, t, id, &z, &j) != 0)
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
		api_corrupt_reply(n, call, "job event history");
		goto out;
	}
	api_reply_out(call, &o);
out:
	msgpack_zone_destroy(&z);
	store_abort(t);
}

/*
 * One page of jobs by id.  A page examines at most JOB_LIST_SCAN_MAX jobs,
 * so a filter that matches few of a million jobs costs bounded work per
 * request: such a page may hold fewer than `limit` jobs, even none, and its
 * `next` is then the last job examined, a cursor past the ones skipped.
 */
#define JOB_LIST_SCAN_MAX 10000

void api_op_job_list(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"state", "target", "after", "limit", "stale", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str state_name = {"", 0}, target = {"", 0}, k, v;
	uint64_t after = 0, limit = 100, last = 0, examined = 0;
	uint32_t scanned = 0;
	uint8_t state = 0, start[8];
	struct ing_error e;
	struct store_txn *t;
	struct store_iter *it;
	struct mp_out body, o;
	msgpack_zone z;
	uint32_t count = 0;
	bool more = false;
	int rv;

	if (api_check_known(call, known) != 0)
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
		api_reply_err(call, &e);
		return;
	}
	if (api_read_begin(n, call, &t) != 0)
		return;
	mp_out_init(&body);
	msgpack_zone_init(&z, 4096);
	store_be64(start, after + 1);
	rv = store_iter_open(t, STORE_JOBS, (struct ing_str){(const char *)start, 8}, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_job j;
		if (scanned == JOB_LIST_SCAN_MAX) {
			more = true; /* `next` resumes after the last job examined */
			last = examined;
			break;
		}
		if (rec_job_decode(v, &z, &j, NULL) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		scanned++;
		examined = j.id;
		if ((state_name.len == 0 || j.state == state) &&
		    (target.len == 0 || ing_str_eq(target, j.target)) &&
		    auth_sees_tenant(api_caller(call), j.tenant)) {
			if (count == limit) {
				more = true;
				break;
			}
			view_job(&body.pk, &j, false, sched_reason(node_sched(n), j.id, j.target));
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
		api_corrupt_reply(n, call, "job record");
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
	api_reply_out(call, &o);
}

void api_op_job_watch(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	uint64_t id;
	if (api_read_id(call, known, &id) != 0)
		return;
	api_watch_start(node_api(n), call, id);
}
