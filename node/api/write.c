/*
 * write.c - the write path of the API: a command built from a request is
 * stamped (version, leader time, the client's request id and principal),
 * proposed, and
 * its apply result shaped into the reply (docs/api.md: ids, target names
 * and revisions, job states), all through node/propose.h.  A node that is not the leader any more
 * parks the request (forward.c); a leadership change before the entry was confirmed gets
 * `unavailable`, which a retry with the same request id resolves at most once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/propose.h"

struct proposal {
	struct rpc_call *call;
	enum api_shape shape;
	uint64_t id;
	char name[ING_NAME_MAX + 1];
};

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
	api_reply_out(pr->call, &o);
	return;
bad:
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
	rpc_reply_error(pr->call, ING_EINTERNAL, "unexpected result from the state machine");
}

static void on_proposed(void *data, int status, const struct node_result *r)
{
	struct proposal *pr = data;

	if (status != 0)
		rpc_reply_error(pr->call, ING_EUNAVAILABLE,
		                "leadership changed before the write was confirmed; retry "
		                "with the same request id to apply it at most once");
	else if (r == NULL)
		rpc_reply_error(pr->call, ING_EINTERNAL, "write applied without a result");
	else
		reply_result(pr, r);
	free(pr);
}

int api_propose(struct node *n, struct rpc_call *call, struct cmd *c, enum api_shape shape,
                uint64_t id, struct ing_str name)
{
	struct ing_error e;
	struct proposal *pr = calloc(1, sizeof(*pr));
	int rv;

	if (pr == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return ING_ENOMEM;
	}
	if (c->request_id.len == 0)
		c->request_id = rpc_call_request_id(call);
	if (c->principal.len == 0 && cmd_type_principal_version(c->type) != 0)
		c->principal = api_call_principal(call); /* the audit trail */
	pr->call = call;
	pr->shape = shape;
	pr->id = id;
	size_t m = name.len < sizeof(pr->name) ? name.len : sizeof(pr->name) - 1;
	if (m > 0)
		memcpy(pr->name, name.ptr, m); /* pr is zeroed: the name ends there */
	rv = node_propose(n, c, on_proposed, pr, &e);
	if (rv == 0)
		return 0;
	free(pr);
	if (rv == ING_ENOTLEADER) {
		api_park(node_api(n), call);
		return 0;
	}
	api_reply_err(call, &e);
	return rv;
}

struct cmd api_new_cmd(uint32_t type)
{
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = type;
	c.request_id = ing_str_c("");
	return c;
}
