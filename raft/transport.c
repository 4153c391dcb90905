/*
 * transport.c - the seam of transport.h: libraft's TCP transport, or ours
 * with mutual TLS (transport_tls.c).
 */
#include "raft/transport.h"

#include <stdio.h>

#include "common/tls.h"

int cons_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, struct ing_tls *tls)
{
	if (tls == NULL)
		return raft_uv_tcp_init(t, loop);
	if (!ing_tls_has_cert(tls)) {
		snprintf(t->errmsg, RAFT_ERRMSG_BUF_SIZE,
		         "the peer transport needs a node certificate and key");
		return RAFT_INVALID;
	}
	return cons_transport_tls_init(t, loop, tls);
}

void cons_transport_set_raft(struct raft_uv_transport *t, const struct raft *r)
{
	if (cons_transport_is_tls(t))
		cons_transport_tls_set_raft(t, r);
}

void cons_transport_close(struct raft_uv_transport *t)
{
	if (cons_transport_is_tls(t))
		cons_transport_tls_close(t);
	else
		raft_uv_tcp_close(t);
}
