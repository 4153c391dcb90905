/*
 * settings.c - settings.get and settings.set: the cluster settings
 * (docs/api.md "Settings"), replicated through setting_put and read from
 * the store (node/sm/sm_retention.c).
 */
#include "node/api/api_internal.h"
#include "node/sm/sm.h"
#include "rpc/args.h"

void api_op_settings_get(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"stale", NULL};
	static const char *const names[] = {CMD_SETTING_JOB_RETENTION, CMD_SETTING_DEDUPE_WINDOW};
	struct store_txn *t;
	struct mp_out o;
	uint64_t v[2];
	int rv = 0;

	if (api_check_known(call, known) != 0)
		return;
	if (api_read_begin(n, call, &t) != 0)
		return;
	for (int i = 0; rv == 0 && i < 2; i++)
		rv = sm_setting(t, names[i], &v[i]);
	store_abort(t);
	if (rv != 0) {
		if (rv == ING_ECORRUPT)
			api_corrupt_reply(n, call, "setting");
		else
			rpc_reply_error(call, rv, "cannot read the settings: %s", ing_err_msg(rv));
		return;
	}
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 2);
	for (int i = 0; i < 2; i++) {
		view_key(&o.pk, names[i]);
		msgpack_pack_uint64(&o.pk, v[i]);
	}
	api_reply_out(call, &o);
}

void api_op_settings_set(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"name", "value", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_error e;
	struct cmd c = api_new_cmd(CMD_SETTING_PUT);
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	rv = rpc_arg_str(args, "name", ING_NAME_MAX, true, &c.u.setting_put.name, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "value", UINT64_MAX, true, &c.u.setting_put.value, &e);
	if (rv == 0 && !cmd_setting_known(c.u.setting_put.name))
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'name': expected " CMD_SETTING_JOB_RETENTION
		                   " or " CMD_SETTING_DEDUPE_WINDOW);
	if (rv == 0 && c.u.setting_put.value != 0 &&
	    (c.u.setting_put.value < 1000 || c.u.setting_put.value > CMD_SETTING_MAX_MS))
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'value': expected 0 (for ever) or 1000..%llu ms",
		                   CMD_SETTING_MAX_MS);
	if (rv != 0) {
		api_reply_err(call, &e);
		return;
	}
	api_propose(n, call, &c, SHAPE_NONE, 0, ing_str_c(""));
}
