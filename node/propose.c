/*
 * propose.c - the leader's own commands (scheduler, liveness, deadlines,
 * membership): stamped with the version and the leader's time, encoded and
 * proposed; `done` hears the apply result.
 */
#include <stdlib.h>

#include "common/log.h"
#include "node/node_internal.h"

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
