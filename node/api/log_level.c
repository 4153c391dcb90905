/*
 * log_level.c - node.log_level: this node's log level, read or set at run
 * time (docs/api.md "Node"; GET and PUT /v1/log-level).  Local: each node
 * has its own; the change lasts until the process exits (log_level in the
 * configuration applies again at the next start).
 */
#include <stdio.h>

#include "common/log.h"
#include "node/api/api_internal.h"
#include "rpc/args.h"

void api_op_node_log_level(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"level", NULL};
	struct ing_str level = {"", 0};
	struct ing_error e;
	enum ing_log_level l;
	char name[16];

	(void)n;
	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_str(rpc_call_args(call), "level", 8, false, &level, &e) != 0) {
		api_reply_err(call, &e);
		return;
	}
	if (level.len > 0) {
		snprintf(name, sizeof(name), "%.*s", ING_STR_FMT(level));
		if (ing_log_parse_level(name, &l) != 0) {
			rpc_reply_error(
			    call, ING_EINVAL,
			    "argument 'level': expected debug, info, warn, error or off");
			return;
		}
		ING_LOG_WARN("log level changed from=%s to=%s",
		             ing_log_level_name(ing_log_threshold), name);
		ing_log_set_level(l);
	}
	struct mp_out o;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	view_key(&o.pk, "level");
	mp_pack_cstr(&o.pk, ing_log_level_name(ing_log_threshold));
	api_reply_out(call, &o);
}
