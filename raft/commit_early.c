/*
 * commit_early.c - a follower applies what the leader committed when the
 * message saying so arrives, not one disk write later.
 *
 * libraft 0.15 learns the leader's commit index from AppendEntries.  One
 * without entries (a heartbeat) raises the follower's commit index at once;
 * one with entries only once those entries are on the follower's own disk
 * (replicationAppend defers it to appendFollowerCb).  Under a steady stream
 * of writes nearly every AppendEntries carries entries, so a follower
 * applied each committed entry about 2 ms after the leader
 * (docs/performance.md, "Trivial jobs: where a slot's cycle goes").
 *
 * The receive callback libraft hands to io.start is wrapped: before such a
 * message, libraft first receives the same message without its entries and
 * with the commit index lowered to min(leader_commit, prev_log_index,
 * last_stored): a heartbeat the leader itself could have sent.  Raft's
 * rules make that safe: the follower checks prev_log_index and
 * prev_log_term against its log as for any AppendEntries, and commits no
 * further than that entry, up to which its log and the leader's are the
 * same (log matching), nor further than what it has stored.  It answers the
 * heartbeat as any other; the leader takes a success that reports nothing
 * new as a no-op.  Only a follower in the message's term whose commit index
 * the heartbeat raises gets one, so other messages cost no second answer.
 */
#include "raft/cons_internal.h"

uint64_t cons_commit_early_upto(const struct raft *r, const struct raft_append_entries *a)
{
	raft_index upto =
	    a->leader_commit < a->prev_log_index ? a->leader_commit : a->prev_log_index;

	if (upto > r->last_stored)
		upto = r->last_stored;
	if (a->n_entries == 0 || r->state != RAFT_FOLLOWER || a->term != r->current_term)
		return 0;
	return upto > r->commit_index ? upto : 0;
}

static void recv_early(struct raft_io *io, struct raft_message *m)
{
	struct cons *c = cons_of_io(io);

	if (m->type == RAFT_IO_APPEND_ENTRIES) {
		uint64_t upto = cons_commit_early_upto(&c->raft, &m->append_entries);
		if (upto > 0) {
			struct raft_message hb = *m;
			hb.append_entries.entries = NULL;
			hb.append_entries.n_entries = 0;
			hb.append_entries.leader_commit = upto;
			c->orig_recv(io, &hb);
		}
	}
	c->orig_recv(io, m);
}

static int start_early(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
	struct cons *c = cons_of_io(io);
	c->orig_recv = recv;
	return c->orig_start(io, msecs, tick, recv_early);
}

void cons_commit_early_wrap(struct cons *c)
{
	c->orig_start = c->io.start;
	c->io.start = start_early;
}
