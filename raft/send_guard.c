/*
 * send_guard.c - no message is handed to the transport without an address.
 *
 * libraft 0.15 answers an AppendEntries once the follower has written its
 * entries (appendFollowerCb), to the leader it knows when the write
 * completes.  When a new term started meanwhile and the node knows no
 * leader yet, that leader's address is NULL, and the uv backend's send
 * takes its length: the node dies of a NULL dereference (seen once in the
 * cluster suite, a follower whose append completed just after an election
 * began).  libraft dropped such answers upstream after 0.15.
 *
 * io.send is wrapped here: a message with no server id or no address is
 * refused with RAFT_NOCONNECTION, which every sender in libraft 0.15 takes
 * as a connection that failed (it frees the request and goes on), so the
 * answer is lost as over a broken link and the leader of the new term
 * sends again.  Every other message goes to libraft's own send unchanged.
 */
#include <inttypes.h>

#include "common/log.h"
#include "raft/cons_internal.h"

int cons_send_guarded(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                      raft_io_send_cb cb)
{
	struct cons *c = cons_of_io(io);
	if (m->server_id == 0 || m->server_address == NULL) {
		ING_LOG_DEBUG("raft message to no known peer dropped type=%d server_id=%" PRIu64,
		              (int)m->type, (uint64_t)m->server_id);
		return RAFT_NOCONNECTION;
	}
	return c->orig_send(io, req, m, cb);
}

void cons_send_guard_wrap(struct cons *c)
{
	c->orig_send = c->io.send;
	c->io.send = cons_send_guarded;
}
