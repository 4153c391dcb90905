/*
 * sm_retention.c - cluster settings and the data lifecycle: setting_put and
 * retention_run.
 *
 * Settings are meta u64 values under their names (CMD_SETTING_*); one that
 * was never set reads as its default (SM_DEFAULT_*), 0 means "for ever".
 * A setting_put of version 2 (a client's, with its principal) also records
 * a setting_changed cluster event for the audit trail; version 1 entries,
 * from before, record none, as they did.
 *
 * retention_run is the leader's pass, at the time it puts in the command
 * (apply reads no clock, so every node removes the same rows):
 *   1. the dedupe generation turns when dedupe_window_ms has passed since
 *      it last turned: the previous generation's table is emptied and
 *      becomes the current one.  A request id recorded at t is thus kept
 *      until at least t + window (the next turn after t comes a window
 *      after the last one, which was at or before t, and it is only
 *      emptied at the turn after that), and at most about twice the window
 *      plus the leader's tick;
 *   2. finished jobs whose finished_at_ms + job_retention_ms <= time_ms are
 *      removed, oldest first (table finished), at most max_jobs of them,
 *      with everything of theirs (sm_job_remove): their events, inline
 *      sources, artifacts (a chunk no longer referenced is freed).
 * Its result says how many jobs it removed and whether more are due, so
 * the leader proposes the next one at once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "node/sm/sm_internal.h"

int sm_setting(struct store_txn *t, const char *name, uint64_t *out)
{
	struct ing_str v;
	int rv = store_get(t, STORE_META, ing_str_c(name), &v);
	if (rv == ING_ENOTFOUND) {
		*out = strcmp(name, CMD_SETTING_DEDUPE_WINDOW) == 0 ? SM_DEFAULT_DEDUPE_WINDOW_MS
		                                                    : SM_DEFAULT_JOB_RETENTION_MS;
		return 0;
	}
	if (rv != 0)
		return rv;
	if (v.len != 8)
		return ING_CORRUPT("setting is not a u64");
	*out = store_get_be64(v.ptr);
	return 0;
}

int sm_setting_put(struct sm_ctx *x)
{
	char name[ING_NAME_MAX + 1];
	struct ing_str n = x->c->u.setting_put.name;
	uint64_t value = x->c->u.setting_put.value;
	snprintf(name, sizeof(name), "%.*s", ING_STR_FMT(n));
	int rv = store_meta_put_u64(x->t, name, value);
	/* Version 1 entries recorded no event: a replay gives what they gave. */
	if (rv != 0 || x->c->version < 2)
		return rv;
	return sm_cluster_event_add(x, REC_EV_SETTING_CHANGED, 0,
	                            "setting %s set to %" PRIu64 " ms%s", name, value,
	                            value == 0 ? " (for ever)" : "");
}

/* Step 1: turns the dedupe generation when its window has passed. */
static int dedupe_turn(struct sm_ctx *x, bool *turned)
{
	uint64_t window, rotated, gen, now = x->c->time_ms;
	enum store_table cur, prev;
	int rv = sm_setting(x->t, CMD_SETTING_DEDUPE_WINDOW, &window);
	if (rv == 0)
		rv = store_meta_get_u64(x->t, SM_META_DEDUPE_ROTATED, &rotated);
	if (rv == 0)
		rv = store_meta_get_u64(x->t, SM_META_DEDUPE_GENERATION, &gen);
	*turned = false;
	if (rv != 0 || window == 0 || now < rotated || now - rotated < window)
		return rv;
	rv = sm_dedupe_tables(x->t, &cur, &prev);
	if (rv == 0)
		rv = store_clear(x->t, prev);
	if (rv == 0)
		rv = store_meta_put_u64(x->t, SM_META_DEDUPE_GENERATION, gen + 1);
	x->dedupe_known = false; /* this command's own result goes to the new one */
	if (rv == 0)
		rv = store_meta_put_u64(x->t, SM_META_DEDUPE_ROTATED, now);
	*turned = rv == 0;
	return rv;
}

/* Step 2: the ids of at most max jobs due for removal, oldest first. */
static int due_jobs(struct sm_ctx *x, uint32_t max, uint64_t *ids, uint32_t *n, bool *more)
{
	uint64_t retention, now = x->c->time_ms;
	struct store_iter *it;
	struct ing_str k, v;
	int rv = sm_setting(x->t, CMD_SETTING_JOB_RETENTION, &retention);

	*n = 0;
	*more = false;
	if (rv != 0 || retention == 0 || now < retention)
		return rv;
	uint64_t cutoff = now - retention;
	rv = store_iter_open(x->t, STORE_FINISHED, (struct ing_str){"", 0}, &it);
	if (rv != 0)
		return rv;
	while ((rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len != 16) {
			rv = ING_CORRUPT("finished index key is not 16 bytes");
			break;
		}
		if (store_get_be64(k.ptr) > cutoff)
			break;
		if (*n == max) {
			*more = true;
			break;
		}
		ids[(*n)++] = store_get_be64(k.ptr + 8);
	}
	store_iter_close(it);
	return rv == ING_ENOTFOUND ? 0 : rv;
}

int sm_retention_run(struct sm_ctx *x)
{
	uint32_t max = x->c->u.retention_run.max_jobs, n;
	uint64_t *ids = msgpack_zone_malloc(x->z, max * sizeof(*ids));
	bool turned, more;
	int rv;

	if (ids == NULL)
		return ING_ENOMEM;
	rv = dedupe_turn(x, &turned);
	if (rv == 0)
		rv = due_jobs(x, max, ids, &n, &more);
	for (uint32_t i = 0; rv == 0 && i < n; i++) {
		struct rec_job j;
		rv = sm_job_load(x, ids[i], &j);
		if (rv == ING_ENOTFOUND)
			rv = ING_CORRUPT("finished index names a job that does not exist");
		else if (rv == 0 && !rec_job_state_final(j.state))
			rv = ING_CORRUPT("finished index names a job that is not final");
		if (rv == 0)
			rv = sm_job_remove(x, &j);
	}
	if (rv != 0)
		return rv;
	if (n > 0 || turned)
		ING_LOG_INFO("retention removed=%" PRIu32 " more=%s dedupe_turned=%s", n,
		             more ? "yes" : "no", turned ? "yes" : "no");
	mp_out_reset(&x->res->value);
	msgpack_pack_array(&x->res->value.pk, 3);
	msgpack_pack_uint64(&x->res->value.pk, n);
	mp_pack_bool(&x->res->value.pk, more);
	mp_pack_bool(&x->res->value.pk, turned);
	return 0;
}
