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
 *     deadline (node_deadline_note, from the apply path);
 *   - an entry leaves when its expire is proposed.  A job that ended
 *     otherwise stays until due; its expire is then rejected (harmless).
 * Bounds: at most DL_CAP entries (the earliest deadlines are kept; when one
 * is dropped, the earliest dropped deadline is remembered) and at most
 * DL_BATCH expires proposed per tick.  When a dropped deadline falls due,
 * the list is rebuilt by a full scan, at most once every DL_RESCAN_MS: with
 * more than DL_CAP jobs with deadlines, some expire up to that much late.
 * A proposal that fails (leadership lost, log refused it) puts the job back,
 * due at once; a new leader rebuilds anyway.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/node_internal.h"

_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "job ids travel in a pointer");

#define DL_CAP       NODE_DEADLINE_CAP
#define DL_BATCH     256
#define DL_RESCAN_MS 10000

/* Inserts (at, job) keeping n->dl sorted by deadline, latest first. */
static void dl_insert(struct node *n, uint64_t at, uint64_t job)
{
	unsigned lo = 0, hi = n->ndl;
	if (n->ndl == DL_CAP) {
		if (at >= n->dl[0].at_ms) {
			if (at < n->dl_dropped_min)
				n->dl_dropped_min = at;
			return;
		}
		if (n->dl[0].at_ms < n->dl_dropped_min)
			n->dl_dropped_min = n->dl[0].at_ms;
		memmove(&n->dl[0], &n->dl[1], (n->ndl - 1) * sizeof(n->dl[0]));
		n->ndl--;
		hi = n->ndl;
	}
	while (lo < hi) { /* first index whose deadline is earlier than `at` */
		unsigned mid = lo + (hi - lo) / 2;
		if (n->dl[mid].at_ms >= at)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&n->dl[lo + 1], &n->dl[lo], (n->ndl - lo) * sizeof(n->dl[0]));
	n->dl[lo].at_ms = at;
	n->dl[lo].job = job;
	n->ndl++;
}

void node_deadline_leader(struct node *n)
{
	n->ndl = 0;
	n->dl_dropped_min = UINT64_MAX;
	n->dl_rebuild = true;
}

void node_deadline_note(struct node *n, uint64_t job, uint64_t deadline_at_ms)
{
	/* A rebuild still due will see the job in the store. */
	if (n->role != CONS_LEADER_READY || n->dl_rebuild || job == 0 || deadline_at_ms == 0)
		return;
	dl_insert(n, deadline_at_ms, job);
}

static void note_stored(struct node *n, struct store_txn *t, msgpack_zone *z, uint64_t job)
{
	uint8_t k[8];
	struct ing_str val;
	struct rec_job j;
	store_be64(k, job);
	if (store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val) == 0 &&
	    rec_job_decode(val, z, &j, NULL) == 0 && j.deadline_at_ms != 0 &&
	    !rec_job_state_final(j.state))
		dl_insert(n, j.deadline_at_ms, j.id);
	msgpack_zone_clear(z);
}

/* Rebuilds the list from the queue and assignments tables. */
static void rescan(struct node *n, uint64_t now)
{
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	msgpack_zone z;
	unsigned seen = 0;

	if (store_batch_pending(n->store) > 0 && node_flush(n) != 0)
		return;
	if (store_read_begin(n->store, &t) != 0)
		return;
	n->ndl = 0;
	n->dl_dropped_min = UINT64_MAX;
	n->dl_rebuild = false;
	n->dl_scan_ms = now;
	msgpack_zone_init(&z, 4096);
	if (store_iter_open(t, STORE_QUEUE, (struct ing_str){"", 0}, &it) == 0) {
		while (store_iter_next(it, &k, &v) == 0) {
			if (k.len >= 8)
				note_stored(n, t, &z, store_get_be64(k.ptr + k.len - 8));
			seen++;
		}
		store_iter_close(it);
	}
	if (store_iter_open(t, STORE_ASSIGNMENTS, (struct ing_str){"", 0}, &it) == 0) {
		while (store_iter_next(it, &k, &v) == 0) {
			if (k.len == 16)
				note_stored(n, t, &z, store_get_be64(k.ptr + 8));
			seen++;
		}
		store_iter_close(it);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
	ING_LOG_DEBUG("deadlines rescanned active=%u tracked=%u", seen, n->ndl);
}

static void on_expired(struct node *n, int status, const struct node_result *r, void *data)
{
	uint64_t job = (uint64_t)(uintptr_t)data;
	if (status != 0) {
		/* Not applied: try again on a later tick while still leader. */
		if (n->role == CONS_LEADER_READY)
			node_deadline_note(n, job, 1);
		return;
	}
	if (r != NULL && r->code != 0)
		ING_LOG_DEBUG("job expire refused job=%" PRIu64 " error=%s msg=\"%s\"", job,
		              ing_err_name(r->code), r->message);
}

void node_deadline_tick(struct node *n)
{
	uint64_t now = node_now_ms();
	if (n->role != CONS_LEADER_READY || n->stopping)
		return;
	if (n->dl_rebuild || (n->dl_dropped_min <= now && now - n->dl_scan_ms >= DL_RESCAN_MS))
		rescan(n, now);
	for (unsigned sent = 0; sent < DL_BATCH && n->ndl > 0; sent++) {
		uint64_t at = n->dl[n->ndl - 1].at_ms, job = n->dl[n->ndl - 1].job;
		if (at > now)
			break;
		struct cmd c;
		memset(&c, 0, sizeof(c));
		c.type = CMD_JOB_EXPIRE;
		c.request_id = ing_str_c("");
		c.u.job_expire.job = job;
		n->ndl--;
		if (node_propose_internal(n, &c, on_expired, (void *)(uintptr_t)job) != 0) {
			dl_insert(n, at, job); /* next tick */
			break;
		}
		ING_LOG_INFO("deadline passed: job expire proposed job=%" PRIu64
		             " deadline=%" PRIu64,
		             job, at);
	}
}
