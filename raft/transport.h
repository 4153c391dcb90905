/*
 * transport.h - the seam where libraft's peer transport is chosen (private
 * to raft/).
 *
 * libraft's uv backend takes any `struct raft_uv_transport` (init, listen,
 * connect, close over libuv streams allocated with raft_malloc).  Without
 * TLS the seam hands it libraft's own plaintext TCP transport (dev mode,
 * loopback).  With TLS it hands it transport_tls.c's: mutual TLS 1.3, the
 * peer's certificate must name the raft id it claims, and what a peer
 * sends is checked (msgcheck.h) before libraft reads it.  Nothing outside
 * raft/ names either transport.
 */
#ifndef INGOT_RAFT_TRANSPORT_H
#define INGOT_RAFT_TRANSPORT_H

#include <stdbool.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

struct ing_tls;

/* Initialises t for use by raft_uv_init: TLS when tls is not NULL (tls
 * borrowed; it must have a node certificate and outlive t).  Returns
 * libraft's code (t->errmsg says why). */
int cons_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, struct ing_tls *tls);
/* Lets the TLS transport bound terms against the local one (no-op for
 * TCP).  r must outlive t's use. */
void cons_transport_set_raft(struct raft_uv_transport *t, const struct raft *r);
/* Releases what cons_transport_init set up (after raft_uv_close). */
void cons_transport_close(struct raft_uv_transport *t);

/* transport_tls.c */
int cons_transport_tls_init(struct raft_uv_transport *t, uv_loop_t *loop, struct ing_tls *tls);
void cons_transport_tls_set_raft(struct raft_uv_transport *t, const struct raft *r);
void cons_transport_tls_close(struct raft_uv_transport *t);
bool cons_transport_is_tls(const struct raft_uv_transport *t);

#endif
