/*
 * transport.h - the seam where libraft's peer transport is chosen (private
 * to raft/).
 *
 * libraft's uv backend takes any `struct raft_uv_transport` (init, listen,
 * connect, close over libuv streams allocated with raft_malloc).  Today the
 * seam hands it libraft's own plaintext TCP transport.  Mutual TLS for peer
 * traffic plugs in here: a transport whose connect/accept give libraft one
 * end of a socketpair and pump the other end through OpenSSL memory BIOs on
 * the loop, authenticating the peer's certificate against the raft id it
 * claims (DESIGN.md).  Nothing outside this file names the TCP transport.
 */
#ifndef INGOT_RAFT_TRANSPORT_H
#define INGOT_RAFT_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

/* Initialises t for use by raft_uv_init.  Returns libraft's code. */
int cons_transport_init(struct raft_uv_transport *t, uv_loop_t *loop);
/* Releases what cons_transport_init set up (after raft_uv_close). */
void cons_transport_close(struct raft_uv_transport *t);

#endif
