/*
 * targets.c - target.put, target.get, target.list, target.delete
 * (docs/api.md "Targets").
 *
 * `network: true` lets a target's stages out of their sandbox's network
 * namespace onto the host's network (the node's own ports on 127.0.0.1
 * included), so setting it is a privilege: network_permitted is the one
 * place that decides.  It is checked where target.put is served (the
 * leader) before anything is proposed, so a refusal changes nothing; a put
 * without `network: true` needs no privilege, even when it replaces a
 * target that had it.
 */
#include <inttypes.h>
#include <stdio.h>

#include "common/log.h"
#include "node/api/api_internal.h"
#include "rpc/args.h"

/*
 * Whether the caller of `call` may set `network: true` on a target: 0, or
 * ING_EDENIED with e saying why and how to get it.
 *
 * Until the API knows roles this is the serving node's config key
 * `allow_network_targets` (docs/operations.md); with roles it becomes
 * "admin only" (the caller's role, not the config) and this function is
 * the only thing to change.
 */
static int network_permitted(struct node *n, struct rpc_call *call, struct ing_error *e)
{
	(void)call;
	if (node_cfg(n)->allow_network_targets)
		return 0;
	return ing_error_set(e, ING_EDENIED,
	                     "argument 'network': only an admin may give a target the host's "
	                     "network, and node %" PRIu64
	                     " does not allow it (config allow_network_targets: false)",
	                     node_id(n));
}

/* A stage's `limits` map: {cpu_seconds, memory_bytes, open_files,
 * output_bytes, processes}, each optional (0 = none); the ranges are
 * cmd_validate's. */
static int stage_limits_arg(const msgpack_object *m, struct rec_stage_limits *l,
                            struct ing_error *e)
{
	static const char *const known[] = {"cpu_seconds",  "memory_bytes", "open_files",
	                                    "output_bytes", "processes",    NULL};
	int rv = rpc_args_check_known(m, known, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "cpu_seconds", UINT64_MAX, false, &l->cpu_seconds, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "memory_bytes", UINT64_MAX, false, &l->memory_bytes, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "open_files", UINT64_MAX, false, &l->open_files, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "output_bytes", UINT64_MAX, false, &l->output_bytes, e);
	if (rv == 0)
		rv = rpc_arg_u64(m, "processes", UINT64_MAX, false, &l->processes, e);
	if (rv != 0) {
		char inner[ING_ERROR_MSG_MAX];
		snprintf(inner, sizeof(inner), "%s", e->msg);
		ing_error_set(e, rv, "argument 'limits': %s", inner);
	}
	return rv;
}

static const struct ing_str *str_at(const void *list, uint32_t i)
{
	return &((const struct ing_str *)list)[i];
}

void api_op_target_put(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"name",         "description", "stages",
	                                    "capabilities", "labels",      "gpus",
	                                    "network",      "disk_bytes",  NULL};
	static const char *const stage_known[] = {
	    "name", "argv", "timeout_ms", "env", "outputs", "limits", "stdout", "gpus", NULL};
	const msgpack_object *args = rpc_call_args(call);
	const msgpack_object *stages;
	struct cmd c = api_new_cmd(CMD_TARGET_PUT);
	struct rec_target *t = &c.u.target_put.spec;
	struct ing_error e;
	msgpack_zone z;
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	msgpack_zone_init(&z, 2048);
	t->description = ing_str_c("");
	rv = rpc_arg_str(args, "name", ING_NAME_MAX, true, &t->name, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "description", ING_MESSAGE_MAX, false, &t->description, &e);
	if (rv == 0)
		rv = rpc_arg_array(args, "stages", ING_MAX_STAGES, true, &stages, &e);
	if (rv == 0)
		rv =
		    api_caps_and_labels(args, &z, &t->ncaps, &t->caps, &t->nlabels, &t->labels, &e);
	if (rv == 0)
		rv = api_u32_arg(args, "gpus", ING_MAX_GPUS, &t->gpus, &e);
	t->network = false;
	if (rv == 0)
		rv = rpc_arg_bool(args, "network", false, &t->network, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "disk_bytes", UINT64_MAX, false, &t->disk_bytes, &e);
	if (rv == 0 && t->network)
		rv = network_permitted(n, call, &e);
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
			rv = api_str_array(argv, "argv", ING_ARG_MAX, &z, &d->nargv, &d->argv, &e);
		if (rv == 0)
			rv = api_kv_map(env, "env", &z, &d->nenv, &d->env, &e);
		if (rv == 0)
			rv = api_str_array(outs, "outputs", ING_PATH_MAX, &z, &d->noutputs,
			                   &d->outputs, &e);
		if (rv == 0)
			rv = rpc_arg_str(s, "stdout", ING_PATH_MAX, false, &d->stdout_path, &e);
		if (rv == 0)
			rv = rpc_arg_map(s, "limits", 4, false, &limits, &e);
		if (rv == 0 && limits != NULL)
			rv = stage_limits_arg(limits, &d->limits, &e);
		if (rv == 0)
			rv = api_u32_arg(s, "gpus", ING_MAX_GPUS, &d->gpus, &e);
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
	if (rv == ING_EDENIED)
		ING_LOG_WARN("target.put refused target=%.*s why=\"%s\"", ING_STR_FMT(t->name),
		             e.msg);
	if (rv != 0)
		api_reply_err(call, &e);
	else
		api_propose(n, call, &c, SHAPE_TARGET, 0, t->name);
	msgpack_zone_destroy(&z);
}

void api_op_target_delete(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"name", NULL};
	struct cmd c = api_new_cmd(CMD_TARGET_DELETE);
	struct ing_error e;

	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "name", ING_NAME_MAX, true, &c.u.target_delete.name,
	                &e) != 0) {
		api_reply_err(call, &e);
		return;
	}
	api_propose(n, call, &c, SHAPE_TARGET, 0, c.u.target_delete.name);
}

void api_op_target_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"name", "stale", NULL};
	struct ing_str name, val;
	struct ing_error e;
	struct store_txn *t;
	struct rec_target tg;
	struct mp_out o;
	msgpack_zone z;

	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "name", ING_NAME_MAX, true, &name, &e) != 0) {
		api_reply_err(call, &e);
		return;
	}
	if (api_read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 2048);
	int rv = store_get(t, STORE_TARGETS, name, &val);
	if (rv == ING_ENOTFOUND) {
		rpc_reply_error(call, rv, "target '%.*s' does not exist", ING_STR_FMT(name));
	} else if (rv != 0) {
		rpc_reply_error(call, rv, "cannot read target: %s", ing_err_msg(rv));
	} else if (rec_target_decode(val, &z, &tg, NULL) != 0) {
		api_corrupt_reply(n, call, "target record");
	} else {
		mp_out_init(&o);
		view_target(&o.pk, &tg);
		api_reply_out(call, &o);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}

static int view_target_record(msgpack_packer *pk, struct ing_str val, msgpack_zone *z)
{
	struct rec_target t;
	int rv = rec_target_decode(val, z, &t, NULL);
	if (rv == 0)
		view_target(pk, &t);
	return rv;
}

void api_op_target_list(struct node *n, struct rpc_call *call)
{
	api_list_table_paged(n, call, STORE_TARGETS, view_target_record, "target record");
}
