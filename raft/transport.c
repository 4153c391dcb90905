/*
 * transport.c - the seam of transport.h: libraft's TCP transport, or ours
 * with mutual TLS (transport_tls.c).
 *
 * libraft 0.15's TCP transport leaves Nagle's algorithm on.  With the
 * proposals of a loop iteration sent as one AppendEntries (propose.c),
 * messages span several segments, and the last one then waited for the
 * peer's delayed ACK: about 40 ms on a tenth of the writes at 64 in
 * flight (docs/performance.md, 2026-12-06).  So every stream it connects
 * or accepts gets TCP_NODELAY here, as the TLS transport's already do.
 * The wrapped callbacks are libraft's own (one function each, whatever
 * the instance), kept in statics.
 */
#include "raft/transport.h"

#include <stdio.h>

#include "common/tls.h"

static int (*tcp_listen)(struct raft_uv_transport *t, raft_uv_accept_cb cb);
static int (*tcp_connect)(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                          const char *address, raft_uv_connect_cb cb);
static raft_uv_accept_cb tcp_accepted;
static raft_uv_connect_cb tcp_connected;

static void nodelay(struct uv_stream_s *stream)
{
	if (stream != NULL && stream->type == UV_TCP)
		uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static void accepted(struct raft_uv_transport *t, raft_id id, const char *address,
                     struct uv_stream_s *stream)
{
	nodelay(stream);
	tcp_accepted(t, id, address, stream);
}

static int listen_nodelay(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	tcp_accepted = cb;
	return tcp_listen(t, accepted);
}

static void connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
	if (status == 0)
		nodelay(stream);
	tcp_connected(req, stream, status);
}

static int connect_nodelay(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                           const char *address, raft_uv_connect_cb cb)
{
	tcp_connected = cb;
	return tcp_connect(t, req, id, address, connected);
}

int cons_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, struct ing_tls *tls)
{
	if (tls == NULL) {
		int rv = raft_uv_tcp_init(t, loop);
		if (rv != 0)
			return rv;
		tcp_listen = t->listen;
		tcp_connect = t->connect;
		t->listen = listen_nodelay;
		t->connect = connect_nodelay;
		return 0;
	}
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
