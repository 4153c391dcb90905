/*
 * recover.c - a stopped node's libraft directory, opened offline: inspect
 * its log, force a configuration (recover.h).
 *
 * Both operations build the same short-lived instance on a private loop:
 * cons_transport_init, raft_uv_init, raft_init (which runs the uv backend's
 * init: directory check, file-system probe, removal of leftover temporary
 * files, metadata load).  raft_start is never called, so no socket is
 * bound, no timer runs and no election can write to the log.  The log is
 * read with the backend's own loader (struct raft_io's load, the function
 * raft_start uses), which closes a leftover open segment as every start
 * does.  The instance is then closed (raft_close, raft_uv_close,
 * cons_transport_close) and the private loop run until it holds no handle.
 *
 * Recover: load first and refuse a directory with no raft state (libraft's
 * raft_recover would write a first configuration and so forge a
 * bootstrap); raise the current term by one (struct raft_io's set_term, as
 * an election would); then raft_recover, which appends one closed segment
 * holding a single configuration entry at last index + 1 and syncs the
 * directory; then load again and check the entry, that it is the newest
 * configuration, and the term.
 *
 * Why the new term: libraft 0.15 makes a single voter leader at start
 * without an election and without a new term.  Without the raise, the
 * recovered node would lead in the very term of the old cluster's last
 * leader, and its new entries could carry the same (term, index) as
 * entries that leader appended and never replicated to this node: two
 * different entries that Raft's log matching would take for one.  The
 * raise gives every entry written after the recovery a term the old
 * leader never used, unless the dead nodes had already moved to a later
 * term without this node, which the survivor cannot know (another reason
 * why dead members must never rejoin with their old data).
 *
 * Failure modes: a missing directory or one with no raft state
 * (ING_ENOTFOUND, nothing written); libraft's load failing on a damaged log
 * (its code translated, with its message); raft_recover failing to write
 * (ING_EIO / ING_ENOSPACE: libraft writes the segment through a temporary
 * file and a rename, so a failed write leaves no partial entry).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "raft/cons_internal.h"
#include "raft/recover.h"
#include "raft/transport.h"

struct offline {
	uv_loop_t loop;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft raft;
	struct raft_fsm fsm;
	bool loop_open, transport_open, io_open, raft_open;
	bool raft_closed;
};

/* The fsm is never called (raft_start never runs); raft_init wants one. */
static int offline_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	(void)fsm;
	(void)buf;
	(void)result;
	return RAFT_INVALID;
}

static int offline_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	(void)fsm;
	(void)bufs;
	(void)n_bufs;
	return RAFT_INVALID;
}

static int offline_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	(void)fsm;
	(void)buf;
	return RAFT_INVALID;
}

/* libraft's message for its last failure. */
static const char *offline_detail(struct offline *o, int rv)
{
	if (o->raft_open && raft_errmsg(&o->raft)[0] != '\0') {
		return raft_errmsg(&o->raft);
	}
	if (o->io_open && o->io.errmsg[0] != '\0') {
		return o->io.errmsg;
	}
	return raft_strerror(rv);
}

static void offline_raft_closed(struct raft *r)
{
	struct offline *o = r->data;
	o->raft_closed = true;
}

/* Releases whatever offline_open set up, in reverse order, and runs the
 * private loop until every handle is closed. */
static void offline_close(struct offline *o)
{
	if (o->raft_open) {
		o->raft.data = o;
		raft_close(&o->raft, offline_raft_closed);
		while (!o->raft_closed && uv_run(&o->loop, UV_RUN_ONCE) != 0) {
		}
		if (!o->raft_closed) {
			ING_LOG_WARN("raft offline close did not complete");
		}
	}
	if (o->io_open) {
		raft_uv_close(&o->io);
	}
	if (o->transport_open) {
		cons_transport_close(&o->transport);
	}
	if (o->loop_open) {
		uv_run(&o->loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&o->loop) != 0) {
			ING_LOG_WARN("raft offline loop closed with handles still open");
		}
	}
}

static int offline_open(struct offline *o, const char *dir, uint64_t id, const char *address,
                        struct ing_error *e)
{
	struct stat st;
	int rv;

	memset(o, 0, sizeof(*o));
	if (dir == NULL || dir[0] == '\0' || id == 0 || address == NULL || address[0] == '\0') {
		return ing_error_set(e, ING_EINVAL,
		                     "raft recover: directory, node id and address are required");
	}
	if (stat(dir, &st) != 0) {
		return ing_error_set(e, errno == ENOENT ? ING_ENOTFOUND : ING_EIO,
		                     "raft directory %s: %s", dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		return ing_error_set(e, ING_ENOTFOUND, "raft directory %s: not a directory", dir);
	}
	if (uv_loop_init(&o->loop) != 0) {
		return ing_error_set(e, ING_EIO, "raft directory %s: cannot create a loop", dir);
	}
	o->loop_open = true;
	rv = cons_transport_init(&o->transport, &o->loop, NULL);
	if (rv != 0) {
		rv = ing_error_set(e, cons_err_from_raft(rv), "raft directory %s: transport: %s",
		                   dir, raft_strerror(rv));
		goto fail;
	}
	o->transport_open = true;
	rv = raft_uv_init(&o->io, &o->loop, dir, &o->transport);
	if (rv != 0) {
		rv = ing_error_set(e, cons_err_from_raft(rv), "raft directory %s: %s", dir,
		                   o->io.errmsg[0] != '\0' ? o->io.errmsg : raft_strerror(rv));
		goto fail;
	}
	o->io_open = true;
	o->fsm.version = 1;
	o->fsm.apply = offline_apply;
	o->fsm.snapshot = offline_snapshot;
	o->fsm.restore = offline_restore;
	rv = raft_init(&o->raft, &o->io, &o->fsm, id, address);
	if (rv != 0) {
		rv = ing_error_set(e, cons_err_from_raft(rv), "raft directory %s: %s", dir,
		                   offline_detail(o, rv));
		goto fail;
	}
	o->raft_open = true;
	return 0;
fail:
	offline_close(o);
	return rv;
}

static void free_loaded(struct raft_snapshot *snapshot, struct raft_entry *entries, size_t n)
{
	void *batch = NULL;
	size_t i;

	if (snapshot != NULL) {
		raft_configuration_close(&snapshot->configuration);
		for (i = 0; i < snapshot->n_bufs; i++) {
			raft_free(snapshot->bufs[i].base);
		}
		raft_free(snapshot->bufs);
		raft_free(snapshot);
	}
	if (entries == NULL) {
		return;
	}
	/* Entries loaded together share one batch allocation (libraft's
	 * entryBatchesDestroy). */
	for (i = 0; i < n; i++) {
		if (entries[i].batch != batch) {
			batch = entries[i].batch;
			raft_free(batch);
		}
	}
	raft_free(entries);
}

static int offline_load(struct offline *o, const char *dir, struct cons_disk_state *out,
                        struct ing_error *e)
{
	struct raft_snapshot *snapshot = NULL;
	struct raft_entry *entries = NULL;
	raft_index start = 0;
	raft_term term = 0;
	raft_id voted = 0;
	size_t n = 0, i;
	int rv;

	rv = o->io.load(&o->io, &term, &voted, &snapshot, &start, &entries, &n);
	if (rv != 0) {
		return ing_error_set(e, cons_err_from_raft(rv),
		                     "raft directory %s: cannot load: %s", dir,
		                     offline_detail(o, rv));
	}
	memset(out, 0, sizeof(*out));
	out->term = term;
	out->voted_for = voted;
	if (snapshot != NULL) {
		out->snapshot_index = snapshot->index;
		out->snapshot_term = snapshot->term;
		out->last_index = snapshot->index;
		out->last_term = snapshot->term;
	}
	out->n_entries = n;
	if (n > 0) {
		out->first_index = start;
		out->last_index = start + n - 1;
		out->last_term = entries[n - 1].term;
	}
	for (i = 0; i < n; i++) {
		if (entries[i].type == RAFT_CHANGE) {
			out->n_config++;
			out->last_config_index = start + i;
		}
	}
	free_loaded(snapshot, entries, n);
	if (out->term == 0 || out->last_index == 0) {
		return ing_error_set(e, ING_ENOTFOUND,
		                     "raft directory %s holds no raft state (never started, or "
		                     "wiped)",
		                     dir);
	}
	return 0;
}

int cons_inspect(const char *dir, uint64_t id, const char *address, struct cons_disk_state *out,
                 struct ing_error *e)
{
	struct offline o;
	int rv;

	if (out == NULL) {
		return ing_error_set(e, ING_EINVAL, "raft inspect: out is required");
	}
	rv = offline_open(&o, dir, id, address, e);
	if (rv != 0) {
		return rv;
	}
	rv = offline_load(&o, dir, out, e);
	offline_close(&o);
	return rv;
}

static int check_voters(uint64_t id, const char *address, const struct cons_peer *voters,
                        unsigned n, struct ing_error *e)
{
	bool self = false;
	unsigned i, j;

	if (voters == NULL || n == 0) {
		return ing_error_set(e, ING_EINVAL, "raft recover: the new configuration is empty");
	}
	for (i = 0; i < n; i++) {
		const struct cons_peer *p = &voters[i];
		if (p->id == 0 || !cons_address_valid(p->address)) {
			return ing_error_set(e, ING_EINVAL,
			                     "raft recover: voter %u (id %" PRIu64
			                     ", address \"%s\") is invalid: ids are 1 or more, "
			                     "addresses a.b.c.d:port",
			                     i, p->id, p->address != NULL ? p->address : "");
		}
		for (j = 0; j < i; j++) {
			if (voters[j].id == p->id || strcmp(voters[j].address, p->address) == 0) {
				return ing_error_set(e, ING_EINVAL,
				                     "raft recover: voters %" PRIu64 " and %" PRIu64
				                     " share an id or an address",
				                     voters[j].id, p->id);
			}
		}
		if (p->id == id) {
			if (strcmp(p->address, address) != 0) {
				return ing_error_set(e, ING_EINVAL,
				                     "raft recover: node %" PRIu64
				                     " is %s in the new configuration but %s here",
				                     id, p->address, address);
			}
			self = true;
		}
	}
	if (!self) {
		return ing_error_set(e, ING_EINVAL,
		                     "raft recover: node %" PRIu64
		                     " must be among the voters of the new configuration",
		                     id);
	}
	return 0;
}

int cons_recover(const char *dir, uint64_t id, const char *address, const struct cons_peer *voters,
                 unsigned n, uint64_t *index, struct ing_error *e)
{
	struct raft_configuration conf;
	struct cons_disk_state before, after;
	struct offline o;
	unsigned i;
	int rv;

	if (!cons_address_valid(address)) {
		return ing_error_set(e, ING_EINVAL,
		                     "raft recover: address \"%s\" is not a.b.c.d:port",
		                     address != NULL ? address : "");
	}
	rv = check_voters(id, address, voters, n, e);
	if (rv != 0) {
		return rv;
	}
	rv = offline_open(&o, dir, id, address, e);
	if (rv != 0) {
		return rv;
	}
	rv = offline_load(&o, dir, &before, e);
	if (rv != 0) {
		goto out;
	}
	/* A fresh term first (see the note at the top); alone it is harmless. */
	rv = o.io.set_term(&o.io, before.term + 1);
	if (rv != 0) {
		rv = ing_error_set(e, cons_err_from_raft(rv),
		                   "raft directory %s: cannot raise the term: %s", dir,
		                   offline_detail(&o, rv));
		goto out;
	}
	raft_configuration_init(&conf);
	for (i = 0; i < n && rv == 0; i++) {
		rv = raft_configuration_add(&conf, voters[i].id, voters[i].address, RAFT_VOTER);
	}
	if (rv == 0) {
		rv = raft_recover(&o.raft, &conf);
	}
	raft_configuration_close(&conf);
	if (rv != 0) {
		ING_LOG_WARN("raft call failed raft_node=%" PRIu64 " call=raft_recover rc=%d "
		             "err=\"%s\" detail=\"%s\"",
		             id, rv, raft_strerror(rv), offline_detail(&o, rv));
		rv = ing_error_set(e, cons_err_from_raft(rv),
		                   "raft directory %s: recover failed: %s", dir,
		                   offline_detail(&o, rv));
		goto out;
	}
	/* libraft wrote the entry straight to disk: read it back as the next
	 * start will. */
	rv = offline_load(&o, dir, &after, e);
	if (rv != 0) {
		goto out;
	}
	if (after.last_index != before.last_index + 1 ||
	    after.last_config_index != after.last_index || after.term != before.term + 1) {
		rv = ing_error_set(e, ING_EINTERNAL,
		                   "raft directory %s: after recover the last entry is %" PRIu64
		                   ", the newest configuration %" PRIu64 " and the term %" PRIu64
		                   ", expected %" PRIu64 ", %" PRIu64 " and %" PRIu64,
		                   dir, after.last_index, after.last_config_index, after.term,
		                   before.last_index + 1, before.last_index + 1, before.term + 1);
		goto out;
	}
	ING_LOG_INFO("raft configuration recovered raft_node=%" PRIu64 " voters=%u index=%" PRIu64
	             " term=%" PRIu64 " dir=%s",
	             id, n, after.last_index, after.term, dir);
	if (index != NULL) {
		*index = after.last_index;
	}
out:
	offline_close(&o);
	return rv;
}
