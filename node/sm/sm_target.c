/*
 * sm_target.c - apply of target commands.
 *
 * A target is a named pipeline of stages.  Put creates it (revision 1) or
 * replaces its spec (revision + 1), keeping its creation time and its count
 * of unfinished jobs.  Delete is refused while any job of the target is
 * unfinished, so a queued or running job always finds its target.
 * From target_put v5 and target_delete v2 on, each records a cluster event
 * with the principal that asked (the older versions recorded none, and a
 * replay of them gives what they gave).
 */
#include <inttypes.h>

#include "node/sm/sm_internal.h"

int sm_target_put(struct sm_ctx *x)
{
	struct rec_target t = x->c->u.target_put.spec;
	struct rec_target old;
	int rv = sm_target_load(x, t.name, &old);

	if (rv != 0 && rv != ING_ENOTFOUND)
		return rv;
	if (rv == 0) {
		t.revision = old.revision + 1;
		t.active_jobs = old.active_jobs;
		t.created_at_ms = old.created_at_ms;
	} else {
		t.revision = 1;
		t.active_jobs = 0;
		t.created_at_ms = x->c->time_ms;
	}
	t.updated_at_ms = x->c->time_ms;
	rv = sm_target_save(x, &t);
	if (rv == 0 && x->c->version >= 5)
		rv = sm_cluster_event_add(x, REC_EV_TARGET_PUT, 0,
		                          "target '%.*s' revision %" PRIu64 " put",
		                          ING_STR_FMT(t.name), t.revision);
	if (rv == 0)
		sm_result_uint(x, t.revision);
	return rv;
}

int sm_target_delete(struct sm_ctx *x)
{
	struct ing_str name = x->c->u.target_delete.name;
	struct rec_target t;
	int rv = sm_target_load(x, name, &t);

	if (rv == ING_ENOTFOUND)
		return sm_reject(x, ING_ENOTFOUND, "target '%.*s' does not exist",
		                 ING_STR_FMT(name));
	if (rv != 0)
		return rv;
	if (t.active_jobs > 0)
		return sm_reject(x, ING_ECONFLICT,
		                 "target '%.*s' has %" PRIu32
		                 " unfinished jobs; cancel them or wait for them to finish",
		                 ING_STR_FMT(name), t.active_jobs);
	rv = store_del(x->t, STORE_TARGETS, name);
	if (rv == 0 && x->c->version >= 2)
		rv = sm_cluster_event_add(x, REC_EV_TARGET_DELETED, 0,
		                          "target '%.*s' (revision %" PRIu64 ") deleted",
		                          ING_STR_FMT(name), t.revision);
	return rv;
}
