/*
 * transport.c - the peer transport behind the seam of transport.h: for now
 * libraft's TCP transport, unchanged.
 */
#include "raft/transport.h"

int cons_transport_init(struct raft_uv_transport *t, uv_loop_t *loop)
{
	return raft_uv_tcp_init(t, loop);
}

void cons_transport_close(struct raft_uv_transport *t)
{
	raft_uv_tcp_close(t);
}
