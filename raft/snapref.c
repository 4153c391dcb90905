/*
 * snapref.c - reference snapshots: libraft keeps a few bytes naming an
 * index, not a copy of the state, when the state machine's own storage is
 * durable (cons_callbacks.snapshot_sync set).
 *
 * Why: a libraft snapshot is a full copy of the state, taken every
 * snapshot_threshold entries, compressed and written by libraft, and read
 * back and decompressed in full at every start.  Its cost grows with the
 * state (docs/performance.md measured 0.8 s pauses and elections at 150 MB),
 * while the store already holds every applied entry durably, with its index.
 * So the snapshot libraft stores is a reference (format below, documented in
 * docs/formats.md): taking one costs a commit and a sync of the store;
 * starting reads 16 bytes and checks that the store holds at least that
 * index.  A copy of the state is made only when a follower needs a
 * snapshot installed: the wrapper around the backend's snapshot_get (the
 * only caller is libraft's leader replication) loads the reference as
 * before, then copies the state on a libuv pool thread (cb.snapshot) and
 * hands libraft that copy in place of the reference, so the follower
 * installs real state through the ordinary restore.  The copy may hold
 * entries past the snapshot's index; apply skips them by index.
 *
 * Format: 16 bytes, "INGREF", 0x00, format version 0x01, then the index the
 * durable state held when the reference was taken, u64 big-endian.  A full
 * state copy (an LMDB file, whose first 8 bytes are page number 0) never
 * starts with these bytes.
 *
 * Failure modes: the copy failing (logged) fails that snapshot_get, so
 * libraft aborts that install and tries again later; a reference restored
 * on a node whose state holds an older index (its store was removed or
 * rolled back) is fatal at start (fsm.c), with a message saying what to do.
 * Close waits for a copy in flight (consensus.c drain), because its
 * completion calls back into libraft.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "raft/cons_internal.h"

static const uint8_t snapref_magic[8] = {'I', 'N', 'G', 'R', 'E', 'F', 0x00, 0x01};

int cons_snapref_encode(uint64_t index, struct raft_buffer *out)
{
	uint8_t *p = malloc(CONS_SNAPREF_BYTES);
	if (p == NULL)
		return ING_ENOMEM;
	memcpy(p, snapref_magic, sizeof(snapref_magic));
	for (int i = 15; i >= 8; i--, index >>= 8)
		p[i] = (uint8_t)index;
	out->base = p;
	out->len = CONS_SNAPREF_BYTES;
	return 0;
}

bool cons_snapref_decode(const void *buf, size_t len, uint64_t *index)
{
	const uint8_t *p = buf;
	uint64_t v = 0;
	if (len != CONS_SNAPREF_BYTES || memcmp(p, snapref_magic, sizeof(snapref_magic)) != 0)
		return false;
	for (int i = 8; i < 16; i++)
		v = (v << 8) | p[i];
	*index = v;
	return true;
}

struct snapref_get {
	struct raft_io_snapshot_get get;  /* ours, handed to the backend */
	struct raft_io_snapshot_get *req; /* libraft's */
	struct cons *c;
	struct raft_snapshot *snapshot;
	uv_work_t work;
	void *data; /* the copy, malloc'd by cb.snapshot */
	size_t len;
	int rv;
	uint64_t start_ns;
};

/* What snapshotClose does inside libraft, for a snapshot we drop. */
static void snapshot_drop(struct raft_snapshot *s)
{
	unsigned i;
	raft_configuration_close(&s->configuration);
	for (i = 0; i < s->n_bufs; i++)
		raft_free(s->bufs[i].base);
	raft_free(s->bufs);
	raft_free(s);
}

static void copy_work(uv_work_t *w)
{
	struct snapref_get *g = w->data;
	g->rv = g->c->cb.snapshot(g->c->cb.data, &g->data, &g->len);
}

static void copy_done(uv_work_t *w, int status)
{
	struct snapref_get *g = w->data;
	struct cons *c = g->c;
	struct raft_io_snapshot_get *req = g->req;
	struct raft_snapshot *s = g->snapshot;

	c->snapref_copies--;
	if (status != 0 || g->rv != 0) {
		ING_LOG_WARN("raft snapshot copy for install failed raft_node=%" PRIu64 " code=%s",
		             c->id, g->rv != 0 ? ing_err_name(g->rv) : uv_strerror(status));
		free(g->data);
		snapshot_drop(s);
		free(g);
		req->cb(req, NULL, RAFT_IOERR);
		return;
	}
	raft_free(s->bufs[0].base);
	s->bufs[0].base = g->data;
	s->bufs[0].len = g->len;
	ING_LOG_INFO("raft snapshot copied for install raft_node=%" PRIu64 " index=%llu bytes=%zu "
	             "copy_ms=%.1f",
	             c->id, s->index, g->len, (double)(uv_hrtime() - g->start_ns) / 1e6);
	free(g);
	req->cb(req, s, 0);
}

/* The backend loaded the last snapshot: a reference becomes a copy. */
static void get_loaded(struct raft_io_snapshot_get *get, struct raft_snapshot *s, int status)
{
	struct snapref_get *g = get->data;
	struct raft_io_snapshot_get *req = g->req;
	struct cons *c = g->c;
	uint64_t index;
	int rv;

	if (status != 0 || s == NULL || s->n_bufs != 1 ||
	    !cons_snapref_decode(s->bufs[0].base, s->bufs[0].len, &index)) {
		free(g); /* a full copy already (e.g. installed here earlier) */
		req->cb(req, s, status);
		return;
	}
	g->snapshot = s;
	g->work.data = g;
	g->start_ns = uv_hrtime();
	rv = uv_queue_work(c->loop, &g->work, copy_work, copy_done);
	if (rv != 0) {
		ING_LOG_WARN("raft snapshot copy not queued raft_node=%" PRIu64 " error=%s", c->id,
		             uv_strerror(rv));
		snapshot_drop(s);
		free(g);
		req->cb(req, NULL, RAFT_IOERR);
		return;
	}
	c->snapref_copies++;
}

static int snapref_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb)
{
	struct cons *c = cons_of_io(io);
	struct snapref_get *g = calloc(1, sizeof(*g));
	int rv;

	if (g == NULL)
		return RAFT_NOMEM;
	req->cb = cb;
	g->req = req;
	g->c = c;
	g->get.data = g;
	rv = c->backend_snapshot_get(io, &g->get, get_loaded);
	if (rv != 0)
		free(g);
	return rv;
}

void cons_snapref_wrap(struct cons *c)
{
	c->backend_snapshot_get = c->io.snapshot_get;
	c->io.snapshot_get = snapref_get;
}
