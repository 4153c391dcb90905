/*
 * deadline.c - the leader's enforcement of job deadlines.
 *
 * A job with deadline_at_ms that is still queued, assigned or running when
 * the deadline passes is ended by a job_expire command (node/sm/sm_job.c: it
 * fails "deadline passed"; a running attempt is released and its worker,
 * seeing the assignment gone, kills the stage).  The state machine checks
 * the deadline against the command's time, so a stale or repeated
 * decision is rejected, never applied twice.
 *
 * Only the ready leader decides, on its liveness tick (every
 * heartbeat_interval_ms), and never by decoding the queue each tick: it
 * keeps in memory the (deadline, job) pairs of the active jobs that have a
 * deadline, sorted latest first so the due ones are popped from the end:
 *   - rebuilt by one scan of the queue and assignments tables on the first
 *     tick after the node became ready leader;
 *   - extended by every applied job_submit and job_retry whose job has a
 *     deadline (deadlines_note, from the apply path);
 *   - an entry leaves when its expire is proposed.  A job that ended
 *     otherwise stays until due; its expire is then rejected (harmless).
 * Bounds: at most DEADLINES_CAP entries (the earliest deadlines are kept; when one
 * is dropped, the earliest dropped deadline is remembered) and at most
 * DEADLINES_BATCH expires proposed per tick.  When a dropped deadline falls due,
 * the list is rebuilt by a full scan, at most once every DEADLINES_RESCAN_MS: with
 * more than DEADLINES_CAP jobs with deadlines, some expire up to that much late.
 * A proposal that fails (leadership lost, log refused it) puts the job back,
 * due at once; a new leader rebuilds anyway.
 */
#include "node/leader/deadline.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/propose.h"
#include "storage/records.h"

struct deadlines {
	struct {
		uint64_t at_ms;
		uint64_t job;
	} dl[DEADLINES_CAP]; /* (deadline, job) of active jobs, latest first */
	unsigned ndl;
	bool rebuild;         /* a scan of the queue and assignments is due */
	uint64_t dropped_min; /* earliest deadline not tracked (list was full) */
	uint64_t scan_ms;     /* time of the last scan */
};

int deadlines_new(struct deadlines **out)
{
	struct deadlines *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return ING_ENOMEM;
	d->dropped_min = UINT64_MAX;
	*out = d;
	return 0;
}

void deadlines_free(struct deadlines *d)
{
	free(d);
}

/* Inserts (at, job) keeping d->dl sorted by deadline, latest first. */
static void dl_insert(struct deadlines *d, uint64_t at, uint64_t job)
{
	unsigned lo = 0, hi = d->ndl;
	if (d->ndl == DEADLINES_CAP) {
		if (at >= d->dl[0].at_ms) {
			if (at < d->dropped_min)
				d->dropped_min = at;
			return;
		}
		if (d->dl[0].at_ms < d->dropped_min)
			d->dropped_min = d->dl[0].at_ms;
		memmove(&d->dl[0], &d->dl[1], (d->ndl - 1) * sizeof(d->dl[0]));
		d->ndl--;
		hi = d->ndl;
	}
	while (lo < hi) { /* first index whose deadline is earlier than `at` */
		unsigned mid = lo + (hi - lo) / 2;
		if (d->dl[mid].at_ms >= at)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&d->dl[lo + 1], &d->dl[lo], (d->ndl - lo) * sizeof(d->dl[0]));
	d->dl[lo].at_ms = at;
	d->dl[lo].job = job;
	d->ndl++;
}

void deadlines_leader(struct deadlines *d)
{
	d->ndl = 0;
	d->dropped_min = UINT64_MAX;
	d->rebuild = true;
}

void deadlines_note(struct deadlines *d, uint64_t job, uint64_t deadline_at_ms)
{
	/* A rebuild still due will see the job in the store. */
	if (d->rebuild || job == 0 || deadline_at_ms == 0)
		return;
	dl_insert(d, deadline_at_ms, job);
}

static void note_stored(struct deadlines *d, struct store_txn *t, msgpack_zone *z, uint64_t job)
{
	uint8_t k[8];
	struct ing_str val;
	struct rec_job j;
	store_be64(k, job);
	if (store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val) == 0 &&
	    rec_job_decode(val, z, &j, NULL) == 0 && j.deadline_at_ms != 0 &&
	    !rec_job_state_final(j.state))
		dl_insert(d, j.deadline_at_ms, j.id);
	msgpack_zone_clear(z);
}

bool deadlines_rebuild_due(const struct deadlines *d, uint64_t now_ms)
{
	return d->rebuild ||
	       (d->dropped_min <= now_ms && now_ms - d->scan_ms >= DEADLINES_RESCAN_MS);
}

void deadlines_rebuild(struct deadlines *d, struct store_txn *t, uint64_t now_ms)
{
	struct store_iter *it;
	struct ing_str k, v;
	msgpack_zone z;
	unsigned seen = 0;

	d->ndl = 0;
	d->dropped_min = UINT64_MAX;
	d->rebuild = false;
	d->scan_ms = now_ms;
	msgpack_zone_init(&z, 4096);
	if (store_iter_open(t, STORE_QUEUE, (struct ing_str){"", 0}, &it) == 0) {
		while (store_iter_next(it, &k, &v) == 0) {
			if (k.len >= 8)
				note_stored(d, t, &z, store_get_be64(k.ptr + k.len - 8));
			seen++;
		}
		store_iter_close(it);
	}
	if (store_iter_open(t, STORE_ASSIGNMENTS, (struct ing_str){"", 0}, &it) == 0) {
		while (store_iter_next(it, &k, &v) == 0) {
			if (k.len == 16)
				note_stored(d, t, &z, store_get_be64(k.ptr + 8));
			seen++;
		}
		store_iter_close(it);
	}
	msgpack_zone_destroy(&z);
	ING_LOG_DEBUG("deadlines rescanned active=%u tracked=%u", seen, d->ndl);
}

void deadlines_expire(struct deadlines *d, uint64_t now_ms, deadlines_expire_fn expire, void *data)
{
	for (unsigned sent = 0; sent < DEADLINES_BATCH && d->ndl > 0; sent++) {
		uint64_t at = d->dl[d->ndl - 1].at_ms, job = d->dl[d->ndl - 1].job;
		if (at > now_ms)
			break;
		d->ndl--;
		if (expire(data, job, at) != 0) {
			dl_insert(d, at, job); /* next tick */
			break;
		}
	}
}

/* ---- the node's side ------------------------------------------------------ */

struct expiry {
	struct node *n;
	struct deadlines *d;
	uint64_t job;
};

static void on_expired(void *data, int status, const struct node_result *r)
{
	struct expiry *x = data;
	if (status != 0) {
		/* Not applied: try again on a later tick while still leader. */
		if (node_is_ready_leader(x->n))
			deadlines_note(x->d, x->job, 1);
	} else if (r != NULL && r->code != 0) {
		ING_LOG_DEBUG("job expire refused job=%" PRIu64 " error=%s msg=\"%s\"", x->job,
		              ing_err_name(r->code), r->message);
	}
	free(x);
}

static int propose_expire(void *data, uint64_t job, uint64_t deadline_at_ms)
{
	struct expiry *proto = data;
	struct expiry *x = malloc(sizeof(*x));
	struct ing_error e;
	struct cmd c;
	int rv;

	if (x == NULL)
		return ING_ENOMEM;
	*x = *proto;
	x->job = job;
	memset(&c, 0, sizeof(c));
	c.type = CMD_JOB_EXPIRE;
	c.request_id = ing_str_c("");
	c.u.job_expire.job = job;
	rv = node_propose(x->n, &c, on_expired, x, &e);
	if (rv != 0) {
		ING_LOG_DEBUG("job expire not proposed job=%" PRIu64 " error=%s msg=\"%s\"", job,
		              ing_err_name(rv), e.msg);
		free(x);
		return rv;
	}
	ING_LOG_INFO("deadline passed: job expire proposed job=%" PRIu64 " deadline=%" PRIu64, job,
	             deadline_at_ms);
	return 0;
}

void deadlines_tick(struct deadlines *d, struct node *n)
{
	uint64_t now = node_now_ms();
	struct store_txn *t;

	if (!node_is_ready_leader(n) || node_stopping(n))
		return;
	if (deadlines_rebuild_due(d, now)) {
		if (store_batch_pending(node_store(n)) > 0 && node_flush(n) != 0)
			return;
		if (store_read_begin(node_store(n), &t) != 0)
			return;
		deadlines_rebuild(d, t, now);
		store_abort(t);
	}
	struct expiry proto = {n, d, 0};
	deadlines_expire(d, now, propose_expire, &proto);
}
