/*
 * nodes.c - node.register, node.heartbeat, node.drain, node.undrain,
 * node.forget and node.list (docs/api.md "Nodes").
 */
#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/bus.h"
#include "rpc/args.h"

void api_op_node_register(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "capabilities", "labels", "slots", "gpus", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct cmd c = api_new_cmd(CMD_NODE_REGISTER);
	struct rec_node *nd = &c.u.node_register.spec;
	uint64_t slots = 0;
	struct ing_error e;
	msgpack_zone z;
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	msgpack_zone_init(&z, 1024);
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &nd->id, &e);
	if (rv == 0)
		rv = api_caps_and_labels(args, &z, &nd->ncaps, &nd->caps, &nd->nlabels, &nd->labels,
		                         &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "slots", ING_MAX_SLOTS, true, &slots, &e);
	if (rv == 0)
		rv = api_gpus_arg(args, &z, &nd->ngpus, &nd->gpus, &e);
	nd->slots = (uint32_t)slots;
	if (rv != 0)
		api_reply_err(call, &e);
	else
		api_propose(n, call, &c, SHAPE_NONE, 0, ing_str_c(""));
	msgpack_zone_destroy(&z);
}

void api_op_node_heartbeat(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	uint64_t id;
	struct ing_error e;
	struct mp_out o;
	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, true, &id, &e) != 0) {
		api_reply_err(call, &e);
		return;
	}
	bus_heard(n, id);
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 0);
	api_reply_out(call, &o);
}

static void op_node_drain_common(struct node *n, struct rpc_call *call, bool draining)
{
	static const char *const drain_known[] = {"id", "deadline_ms", NULL};
	static const char *const undrain_known[] = {"id", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct cmd c = api_new_cmd(CMD_NODE_DRAIN);
	uint64_t deadline = 0;
	struct ing_error e;
	int rv;

	if (api_check_known(call, draining ? drain_known : undrain_known) != 0)
		return;
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &c.u.node_drain.node, &e);
	if (rv == 0 && draining)
		rv = rpc_arg_u64(args, "deadline_ms", 365ull * 86400000, false, &deadline, &e);
	if (rv != 0) {
		api_reply_err(call, &e);
		return;
	}
	c.u.node_drain.draining = draining;
	c.u.node_drain.deadline_ms = deadline > 0 ? node_now_ms() + deadline : 0;
	api_propose(n, call, &c, SHAPE_NONE, 0, ing_str_c(""));
}

void api_op_node_drain(struct node *n, struct rpc_call *call)
{
	op_node_drain_common(n, call, true);
}

void api_op_node_undrain(struct node *n, struct rpc_call *call)
{
	op_node_drain_common(n, call, false);
}

static int view_node_record(msgpack_packer *pk, struct ing_str val, msgpack_zone *z)
{
	struct rec_node nd;
	int rv = rec_node_decode(val, z, &nd, NULL);
	if (rv == 0)
		view_node(pk, &nd);
	return rv;
}

void api_op_node_list(struct node *n, struct rpc_call *call)
{
	api_list_table(n, call, STORE_NODES, view_node_record, "node record");
}

/* node.forget: drops a node that is down and runs nothing (the state
 * machine refuses any other). */
void api_op_node_forget(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct cmd c = api_new_cmd(CMD_NODE_FORGET);
	struct ing_error e;

	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, true, &c.u.node_forget.node, &e) !=
	    0) {
		api_reply_err(call, &e);
		return;
	}
	api_propose(n, call, &c, SHAPE_NONE, 0, ing_str_c(""));
}
