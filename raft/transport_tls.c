/*
 * transport_tls.c - libraft's peer transport over mutual TLS 1.3
 * (transport.h, DESIGN.md).
 *
 * libraft 0.15's uv backend takes a `struct raft_uv_transport` and, for
 * every connection, wants a libuv stream (allocated with raft_malloc; it
 * uv_close()s and frees it) and the peer's raft id and address.  This file
 * gives it one end of a socketpair ("theirs") and keeps the other ("ours"),
 * pumping bytes between ours and the peer's TCP connection through an
 * OpenSSL session over memory BIOs (common/tls.h), all on the loop.
 *
 * Outgoing (libraft's connect to node N at ADDRESS):
 *   TCP connect -> TLS handshake; the server's certificate must be the node
 *   certificate of N (ingot:node:N) -> send 0.15's handshake (protocol 1,
 *   our id, our address) inside TLS -> socketpair; connect callback with
 *   theirs -> pump: what libraft writes to theirs is encrypted to the peer.
 *   The accepting side never sends application data: any is a violation.
 * Incoming:
 *   accept -> TLS handshake requiring a client certificate -> read 0.15's
 *   handshake inside TLS; the certificate must name the raft id claimed ->
 *   socketpair; accept callback with (id, address, theirs) -> pump: what
 *   the peer sends is decrypted, checked by msgcheck.c and only then
 *   written to ours, for libraft to read from theirs.
 * So nothing reaches libraft from a peer that has not proved its raft id,
 * and what a proved peer sends is checked where 0.15 would crash.
 *
 * Objects: the transport (struct tt, raft_uv_transport.impl) owns the
 * listener, a sweep timer and the list of connections; a connection (struct
 * tconn) owns its TCP handle, its TLS session, ours, and theirs until it is
 * handed over.  A connection is freed when all its handles are closed; an
 * outgoing one calls libraft's connect callback exactly once, from there
 * when it never got that far (RAFT_NOCONNECTION, or RAFT_CANCELED when the
 * transport closes).  close() closes everything and calls libraft's close
 * callback once the last handle is gone; cons_transport_close frees the
 * struct afterwards.
 *
 * Latency: what libraft writes on an outgoing connection is also read
 * from ours by a uv_check handle, which runs right after the loop's I/O
 * callbacks, instead of only when the next poll reports it.  Otherwise a
 * message written by libraft in an I/O callback (a follower's
 * AppendEntries result, written when its append completes) would wait
 * for the next loop iteration's prepare handles, where the node commits
 * its store (an fsync), before it left: measured with strace, that put an
 * LMDB fsync on every replication round trip.
 *
 * Bounds: a handshake (TCP, TLS and 0.15's) must finish within
 * HANDSHAKE_TIMEOUT_MS; at most MAX_HANDSHAKING incoming ones at a time;
 * at most PUMP_LIMIT_BYTES queued towards either side of a connection
 * before reading from the other side stops.
 *
 * Failure modes: every refusal (TLS, identity, handshake, message check)
 * closes that connection only, logs one warn line naming the peer, its
 * certificate and the reason, and libraft sees a connection end (an
 * outgoing one is retried by libraft after its connect-retry delay).
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mp.h"
#include "common/tls.h"
#include "raft/consensus.h"
#include "raft/msgcheck.h"
#include "raft/transport.h"

#define HANDSHAKE_PROTOCOL   1u
#define HANDSHAKE_FIXED      24u
#define ADDRESS_MAX          256u
#define HANDSHAKE_TIMEOUT_MS 3000u
#define SWEEP_MS             250u
#define MAX_HANDSHAKING      64u
#define PUMP_LIMIT_BYTES     (8u * 1024u * 1024u)
#define CHUNK_BYTES          (64u * 1024u)

enum tc_state { TC_CONNECTING, TC_HANDSHAKING, TC_PUMPING, TC_CLOSING };

struct tconn;

struct tt {
	struct raft_uv_transport *transport;
	uv_loop_t *loop;
	struct ing_tls *tls;
	const struct raft *raft; /* for the local term; NULL until set */
	raft_id id;
	char address[64];
	uv_tcp_t listener;
	bool listener_open;
	uv_timer_t sweep;
	bool sweep_open;
	uv_check_t drain; /* reads outgoing connections' ours after I/O callbacks */
	bool drain_open;
	raft_uv_accept_cb accept_cb;
	struct tconn *conns;
	unsigned nconns;
	bool closing;
	raft_uv_transport_close_cb close_cb;
	char *cipher;     /* CHUNK_BYTES: the one TCP read buffer */
	char *plain;      /* CHUNK_BYTES: decrypted bytes */
	char *pipe_chunk; /* CHUNK_BYTES: the one read buffer of ours */
};

struct tconn {
	struct tt *t;
	struct tconn *prev, *next;
	bool outgoing;
	enum tc_state state;
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_pipe_t ours;
	uv_pipe_t *theirs; /* raft_malloc'd; NULL once libraft has it */
	bool ours_open;
	unsigned handles; /* open handles of ours: tcp, ours, theirs */
	struct ing_tls_session *tls;
	/* outgoing */
	struct raft_uv_connect *req;
	raft_uv_connect_cb cb;
	int status; /* for cb, when it never got to PUMPING */
	/* the peer: who we dial, or who the handshake says */
	raft_id peer_id;
	char peer_address[ADDRESS_MAX];
	char from[32]; /* TCP peer "a.b.c.d:port" */
	/* incoming: 0.15's handshake, then the message checker */
	uint8_t hs[HANDSHAKE_FIXED + ADDRESS_MAX];
	size_t hs_have;
	bool check_init;
	struct cons_msgcheck check;
	size_t to_pipe_bytes, to_tcp_bytes;
	bool tcp_reading, ours_reading;
	uint64_t started_ms;
};

struct twrite {
	uv_write_t req;
	struct tconn *c;
	bool to_tcp;
	size_t len;
	char *data;
};

static void tconn_close(struct tconn *c, int status);
static void tt_maybe_closed(struct tt *t);

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t local_term(void *data)
{
	const struct tt *t = data;
	return t->raft != NULL ? t->raft->current_term : 0;
}

static int parse_ip4(const char *address, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(address, ':');
	if (colon == NULL || (size_t)(colon - address) >= sizeof(host))
		return -1;
	memcpy(host, address, (size_t)(colon - address));
	host[colon - address] = '\0';
	return uv_ip4_addr(host, atoi(colon + 1), out) == 0 ? 0 : -1;
}

/* "node 3 (127.0.0.1:40122)" style, for logs. */
static void who(const struct tconn *c, char *buf, size_t cap)
{
	char id[ING_TLS_NAME_MAX + 16] = "none yet";
	if (c->tls != NULL)
		ing_tls_identity_format(ing_tls_session_peer(c->tls), id, sizeof(id));
	snprintf(buf, cap, "peer=%s cert=\"%s\"", c->from, id);
}

static void refuse(struct tconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs why a connection is refused and closes it. */
static void refuse(struct tconn *c, const char *fmt, ...)
{
	char msg[256], w[ING_TLS_NAME_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	who(c, w, sizeof(w));
	ING_LOG_WARN("raft transport refused %s connection %s reason=\"%s\"",
	             c->outgoing ? "outgoing" : "incoming", w, msg);
	tconn_close(c, RAFT_NOCONNECTION);
}

/* ---- closing ----------------------------------------------------------- */

static void tconn_free(struct tconn *c)
{
	struct tt *t = c->t;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	t->nconns--;
	if (c->outgoing && c->cb != NULL) {
		raft_uv_connect_cb cb = c->cb;
		c->cb = NULL;
		cb(c->req, NULL, t->closing ? RAFT_CANCELED : c->status);
	}
	if (c->check_init)
		cons_msgcheck_free(&c->check);
	ing_tls_session_free(c->tls);
	free(c);
	tt_maybe_closed(t);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct tconn *c = h->data;
	if (h != (uv_handle_t *)&c->tcp && h != (uv_handle_t *)&c->ours)
		raft_free(h); /* theirs, never handed over */
	if (--c->handles == 0)
		tconn_free(c);
}

static void tconn_close(struct tconn *c, int status)
{
	if (c->state == TC_CLOSING)
		return;
	c->state = TC_CLOSING;
	if (c->status == 0)
		c->status = status;
	if (c->tls != NULL && ing_tls_session_established(c->tls)) {
		/* A courtesy close_notify, written if the socket takes it now. */
		char *data;
		size_t len;
		ing_tls_session_shutdown(c->tls);
		if (ing_tls_session_take(c->tls, &data, &len) == 0 && len > 0) {
			uv_buf_t b = uv_buf_init(data, (unsigned)len);
			uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
			free(data);
		}
	}
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	if (c->ours_open)
		uv_close((uv_handle_t *)&c->ours, on_handle_closed);
	if (c->theirs != NULL) {
		c->theirs->data = c;
		uv_close((uv_handle_t *)c->theirs, on_handle_closed);
		c->theirs = NULL;
	}
}

/* ---- writing ----------------------------------------------------------- */

static void start_reading(struct tconn *c);

static void on_write(uv_write_t *req, int status)
{
	struct twrite *w = req->data;
	struct tconn *c = w->c;
	if (w->to_tcp)
		c->to_tcp_bytes -= w->len;
	else
		c->to_pipe_bytes -= w->len;
	free(w->data);
	free(w);
	if (status != 0) {
		if (c->state != TC_CLOSING)
			ING_LOG_DEBUG("raft transport write failed peer=%s error=%s", c->from,
			              uv_strerror(status));
		tconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	start_reading(c);
}

/* Sends data (malloc'd, taken) to the TCP side or to ours: at once when
 * nothing is queued there and the socket takes it all (the usual case,
 * which spares libuv's write request, its completion callback and the
 * epoll_ctl that follows it), else the rest through a queued write.
 * 0, or -1 (the caller closes the connection). */
static int queue_write(struct tconn *c, bool to_tcp, char *data, size_t len)
{
	uv_stream_t *s = to_tcp ? (uv_stream_t *)&c->tcp : (uv_stream_t *)&c->ours;
	if ((to_tcp ? c->to_tcp_bytes : c->to_pipe_bytes) == 0) {
		uv_buf_t now = uv_buf_init(data, (unsigned)len);
		int n = uv_try_write(s, &now, 1);
		if (n == (int)len) {
			free(data);
			return 0;
		}
		if (n < 0 && n != UV_EAGAIN) {
			ING_LOG_DEBUG("raft transport write failed peer=%s error=%s", c->from,
			              uv_strerror(n));
			free(data);
			return -1;
		}
		if (n > 0) {
			memmove(data, data + n, len - (size_t)n);
			len -= (size_t)n;
		}
	}
	struct twrite *w = malloc(sizeof(*w));
	if (w == NULL) {
		free(data);
		return -1;
	}
	w->c = c;
	w->to_tcp = to_tcp;
	w->len = len;
	w->data = data;
	w->req.data = w;
	uv_buf_t b = uv_buf_init(data, (unsigned)len);
	if (uv_write(&w->req, s, &b, 1, on_write) != 0) {
		free(data);
		free(w);
		return -1;
	}
	if (to_tcp)
		c->to_tcp_bytes += len;
	else
		c->to_pipe_bytes += len;
	return 0;
}

/* Sends the ciphertext the session has ready.  0, or -1 (closed). */
static int flush_tls(struct tconn *c)
{
	char *data;
	size_t len;
	if (ing_tls_session_take(c->tls, &data, &len) != 0 ||
	    (len > 0 && queue_write(c, true, data, len) != 0)) {
		tconn_close(c, RAFT_NOCONNECTION);
		return -1;
	}
	return 0;
}

/* ---- the pump ---------------------------------------------------------- */

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_ours_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void alloc_cipher(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tconn *c = h->data;
	(void)suggested;
	*buf = uv_buf_init(c->t->cipher, CHUNK_BYTES);
}

static void alloc_pipe(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tconn *c = h->data;
	(void)suggested;
	*buf = uv_buf_init(c->t->pipe_chunk, CHUNK_BYTES);
}

/* Reads from each side while the other side's queue is under the bound. */
static void start_reading(struct tconn *c)
{
	if (c->state == TC_CLOSING)
		return;
	bool want_tcp = c->to_pipe_bytes < PUMP_LIMIT_BYTES;
	if (want_tcp && !c->tcp_reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cipher, on_tcp_read) != 0) {
			tconn_close(c, RAFT_NOCONNECTION);
			return;
		}
		c->tcp_reading = true;
	} else if (!want_tcp && c->tcp_reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->tcp_reading = false;
	}
	if (!c->ours_open)
		return;
	bool want_ours = c->to_tcp_bytes < PUMP_LIMIT_BYTES;
	if (want_ours && !c->ours_reading) {
		if (uv_read_start((uv_stream_t *)&c->ours, alloc_pipe, on_ours_read) != 0) {
			tconn_close(c, RAFT_NOCONNECTION);
			return;
		}
		c->ours_reading = true;
	} else if (!want_ours && c->ours_reading) {
		uv_read_stop((uv_stream_t *)&c->ours);
		c->ours_reading = false;
	}
}

/* libraft's side: what it writes goes to the peer (outgoing); on incoming
 * connections it writes nothing, and its end closing ends ours. */
static void on_ours_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct tconn *c = s->data;
	struct ing_error err;
	if (c->state == TC_CLOSING || n == 0)
		return;
	if (n < 0) {
		ING_LOG_DEBUG("raft transport libraft closed its stream peer=%s", c->from);
		tconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	if (!c->outgoing) {
		refuse(c, "libraft wrote on an incoming connection");
		return;
	}
	if (ing_tls_session_write(c->tls, buf->base, (size_t)n, &err) != 0) {
		refuse(c, "TLS: %s", err.msg);
		return;
	}
	if (flush_tls(c) == 0)
		start_reading(c);
}

/* After the I/O callbacks: what libraft wrote on outgoing connections
 * during them goes out now (see the note at the top).  One poll(2) with a
 * zero timeout over every outgoing connection's ours says which have
 * bytes; those are read directly (libuv, which also watches the
 * descriptor, then finds nothing and gets EAGAIN).  Stops at the same
 * bound as on_ours_read. */
#define DRAIN_MAX 64
static void on_drain(uv_check_t *h)
{
	struct tt *t = h->data;
	struct pollfd pfd[DRAIN_MAX];
	struct tconn *conn[DRAIN_MAX];
	nfds_t n = 0;
	for (struct tconn *c = t->conns; c != NULL && n < DRAIN_MAX; c = c->next) {
		uv_os_fd_t fd;
		if (!c->outgoing || c->state != TC_PUMPING || !c->ours_reading ||
		    uv_fileno((uv_handle_t *)&c->ours, &fd) != 0)
			continue;
		pfd[n].fd = fd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		conn[n++] = c;
	}
	if (n == 0 || poll(pfd, n, 0) <= 0)
		return;
	for (nfds_t i = 0; i < n; i++) {
		struct tconn *c = conn[i];
		if (pfd[i].revents == 0)
			continue;
		/* A connection closed by an earlier one's processing stays
		 * listed (freed only in a close callback, later). */
		while (c->state == TC_PUMPING && c->ours_reading) {
			ssize_t r = read(pfd[i].fd, t->pipe_chunk, CHUNK_BYTES);
			if (r < 0)
				break; /* EAGAIN (or an error libuv will report) */
			uv_buf_t b = uv_buf_init(t->pipe_chunk, (unsigned)r);
			on_ours_read((uv_stream_t *)&c->ours, r == 0 ? UV_EOF : r, &b);
			if (r == 0 || (size_t)r < CHUNK_BYTES)
				break;
		}
	}
}

/* Gives libraft its end: a socketpair, ours kept, theirs handed over by
 * the caller.  0, or -1 (closed). */
static int make_pair(struct tconn *c)
{
	uv_os_sock_t fds[2];
	int rv = uv_socketpair(SOCK_STREAM, 0, fds, UV_NONBLOCK_PIPE, UV_NONBLOCK_PIPE);
	if (rv != 0) {
		refuse(c, "socketpair: %s", uv_strerror(rv));
		return -1;
	}
	c->theirs = raft_malloc(sizeof(*c->theirs));
	if (c->theirs == NULL) {
		close(fds[0]);
		close(fds[1]);
		refuse(c, "out of memory");
		return -1;
	}
	uv_pipe_init(c->t->loop, &c->ours, 0);
	uv_pipe_init(c->t->loop, c->theirs, 0);
	c->ours.data = c;
	c->theirs->data = c;
	c->ours_open = true;
	c->handles += 2;
	if (uv_pipe_open(&c->ours, fds[0]) != 0 || uv_pipe_open(c->theirs, fds[1]) != 0) {
		refuse(c, "cannot open a socketpair");
		return -1;
	}
	return 0;
}

/* Outgoing, TLS established: the server must be node peer_id; then 0.15's
 * handshake, and libraft gets its stream. */
static void outgoing_established(struct tconn *c)
{
	struct tt *t = c->t;
	const struct ing_tls_identity *id = ing_tls_session_peer(c->tls);
	struct ing_error err;
	if (id->kind != ING_TLS_PEER_NODE || id->node_id != c->peer_id) {
		char got[ING_TLS_NAME_MAX + 16];
		ing_tls_identity_format(id, got, sizeof(got));
		refuse(c, "dialled node %" PRIu64 " at %s, its certificate is %s",
		       (uint64_t)c->peer_id, c->peer_address, got);
		return;
	}
	size_t alen = strlen(t->address) + 1;
	size_t padded = (alen + 7) / 8 * 8;
	uint8_t hs[HANDSHAKE_FIXED + ADDRESS_MAX];
	memset(hs, 0, sizeof(hs));
	put_le64(hs, HANDSHAKE_PROTOCOL);
	put_le64(hs + 8, t->id);
	put_le64(hs + 16, padded);
	memcpy(hs + HANDSHAKE_FIXED, t->address, alen);
	if (ing_tls_session_write(c->tls, hs, HANDSHAKE_FIXED + padded, &err) != 0) {
		refuse(c, "TLS: %s", err.msg);
		return;
	}
	if (flush_tls(c) != 0 || make_pair(c) != 0)
		return;
	c->state = TC_PUMPING;
	uv_stream_t *theirs = (uv_stream_t *)c->theirs;
	c->theirs = NULL;
	c->handles--; /* libraft's now */
	raft_uv_connect_cb cb = c->cb;
	c->cb = NULL;
	ING_LOG_DEBUG("raft transport connected raft_node=%" PRIu64 " peer=%s",
	              (uint64_t)c->peer_id, c->from);
	start_reading(c);
	cb(c->req, theirs, 0);
}

/* Incoming: 0.15's handshake is whole; it must name the certificate's node. */
static int incoming_handshake(struct tconn *c)
{
	struct tt *t = c->t;
	uint64_t protocol = le64(c->hs), id = le64(c->hs + 8), alen = le64(c->hs + 16);
	const struct ing_tls_identity *cert = ing_tls_session_peer(c->tls);
	const char *addr = (const char *)c->hs + HANDSHAKE_FIXED;
	if (protocol != HANDSHAKE_PROTOCOL || id == 0 || memchr(addr, 0, (size_t)alen) == NULL) {
		refuse(c, "bad raft handshake (protocol %" PRIu64 ", id %" PRIu64 ")", protocol,
		       id);
		return -1;
	}
	snprintf(c->peer_address, sizeof(c->peer_address), "%s", addr);
	if (!cons_address_valid(c->peer_address)) {
		refuse(c, "raft handshake: address is not a.b.c.d:port");
		return -1;
	}
	if (cert->kind != ING_TLS_PEER_NODE || cert->node_id != id) {
		char got[ING_TLS_NAME_MAX + 16];
		ing_tls_identity_format(cert, got, sizeof(got));
		refuse(c, "claims raft id %" PRIu64 " with the certificate of %s", id, got);
		return -1;
	}
	c->peer_id = id;
	if (make_pair(c) != 0)
		return -1;
	cons_msgcheck_init(&c->check, id, local_term, t);
	c->check_init = true;
	c->state = TC_PUMPING;
	uv_stream_t *theirs = (uv_stream_t *)c->theirs;
	c->theirs = NULL;
	c->handles--; /* libraft's now */
	ING_LOG_DEBUG("raft transport accepted raft_node=%" PRIu64 " peer=%s", (uint64_t)id,
	              c->from);
	start_reading(c);
	if (!t->closing)
		t->accept_cb(t->transport, id, c->peer_address, theirs);
	return 0;
}

/* Incoming plaintext: the handshake first, then checked messages. */
static int incoming_plain(struct tconn *c, const uint8_t *p, size_t n)
{
	while (n > 0 && c->state == TC_HANDSHAKING) {
		size_t need = c->hs_have < HANDSHAKE_FIXED
		                  ? HANDSHAKE_FIXED
		                  : HANDSHAKE_FIXED + (size_t)le64(c->hs + 16);
		size_t take = need - c->hs_have < n ? need - c->hs_have : n;
		memcpy(c->hs + c->hs_have, p, take);
		c->hs_have += take;
		p += take;
		n -= take;
		if (c->hs_have < HANDSHAKE_FIXED)
			return 0;
		uint64_t alen = le64(c->hs + 16);
		if (alen < 8 || alen > ADDRESS_MAX || alen % 8 != 0) {
			refuse(c, "raft handshake: address of %" PRIu64 " bytes", alen);
			return -1;
		}
		if (c->hs_have == HANDSHAKE_FIXED + alen && incoming_handshake(c) != 0)
			return -1;
	}
	if (n == 0)
		return 0;
	struct mp_out out;
	mp_out_init(&out);
	int rv = cons_msgcheck_feed(&c->check, p, n, &out);
	if (rv != 0) {
		mp_out_free(&out);
		if (rv == ING_EMALFORMED)
			refuse(c, "message refused: %s", c->check.error);
		else
			tconn_close(c, RAFT_NOCONNECTION);
		return -1;
	}
	if (out.len > 0) {
		char *data = out.data;
		size_t len = out.len;
		mp_out_init(&out);
		if (queue_write(c, false, data, len) != 0) {
			tconn_close(c, RAFT_NOCONNECTION);
			return -1;
		}
	}
	mp_out_free(&out);
	return 0;
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct tconn *c = s->data;
	struct tt *t = c->t;
	struct ing_error err;
	if (c->state == TC_CLOSING || n == 0)
		return;
	if (n < 0) {
		/* A peer going away, not a refusal: libraft retries. */
		ING_LOG_DEBUG("raft transport connection ended peer=%s state=%s error=%s", c->from,
		              c->state == TC_PUMPING ? "pumping" : "handshake",
		              uv_strerror((int)n));
		tconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	if (ing_tls_session_input(c->tls, buf->base, (size_t)n) != 0) {
		tconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	for (;;) {
		bool was = ing_tls_session_established(c->tls);
		size_t got;
		int rv = ing_tls_session_read(c->tls, t->plain, CHUNK_BYTES, &got, &err);
		if (rv != 0) {
			flush_tls(c);
			if (rv == ING_EUNAVAILABLE && c->state == TC_PUMPING)
				tconn_close(c, RAFT_NOCONNECTION);
			else if (c->state != TC_CLOSING)
				refuse(c, "TLS: %s", err.msg);
			return;
		}
		if (!was && ing_tls_session_established(c->tls) && c->outgoing) {
			if (flush_tls(c) != 0)
				return;
			outgoing_established(c);
			if (c->state == TC_CLOSING)
				return;
		}
		if (got == 0)
			break;
		if (c->outgoing) {
			refuse(c, "the accepting peer sent data");
			return;
		}
		if (incoming_plain(c, (const uint8_t *)t->plain, got) != 0)
			return;
	}
	if (flush_tls(c) == 0)
		start_reading(c);
}

/* ---- connections ------------------------------------------------------- */

static struct tconn *tconn_new(struct tt *t, bool outgoing)
{
	struct tconn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->t = t;
	c->outgoing = outgoing;
	c->state = outgoing ? TC_CONNECTING : TC_HANDSHAKING;
	c->started_ms = uv_now(t->loop);
	snprintf(c->from, sizeof(c->from), "?");
	uv_tcp_init(t->loop, &c->tcp);
	c->tcp.data = c;
	c->handles = 1;
	c->next = t->conns;
	if (t->conns != NULL)
		t->conns->prev = c;
	t->conns = c;
	t->nconns++;
	return c;
}

static int tconn_start_tls(struct tconn *c)
{
	struct ing_tls_session_options o = {c->outgoing ? ING_TLS_CONNECT : ING_TLS_ACCEPT, NULL,
	                                    true};
	struct ing_error err;
	if (ing_tls_session_new(c->t->tls, &o, &c->tls, &err) != 0) {
		refuse(c, "TLS: %s", err.msg);
		return -1;
	}
	return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct tconn *c = req->data;
	struct ing_error err;
	size_t got;
	if (c->state == TC_CLOSING)
		return;
	if (status != 0) {
		ING_LOG_DEBUG("raft transport connect failed raft_node=%" PRIu64 " address=%s "
		              "error=%s",
		              (uint64_t)c->peer_id, c->peer_address, uv_strerror(status));
		tconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->state = TC_HANDSHAKING;
	if (tconn_start_tls(c) != 0)
		return;
	if (ing_tls_session_read(c->tls, NULL, 0, &got, &err) != 0) {
		refuse(c, "TLS: %s", err.msg);
		return;
	}
	if (flush_tls(c) == 0)
		start_reading(c);
}

static int tt_connect(struct raft_uv_transport *transport, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb);

bool cons_transport_is_tls(const struct raft_uv_transport *t)
{
	return t->connect == tt_connect;
}

static int tt_connect(struct raft_uv_transport *transport, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
	struct tt *t = transport->impl;
	struct sockaddr_in addr;
	if (t->closing)
		return RAFT_CANCELED;
	if (parse_ip4(address, &addr) != 0) {
		snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE, "bad address %s", address);
		return RAFT_NOCONNECTION;
	}
	struct tconn *c = tconn_new(t, true);
	if (c == NULL)
		return RAFT_NOMEM;
	c->req = req;
	c->cb = cb;
	c->peer_id = id;
	snprintf(c->peer_address, sizeof(c->peer_address), "%s", address);
	snprintf(c->from, sizeof(c->from), "%s", address);
	c->connect.data = c;
	int rv = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&addr, on_connect);
	if (rv != 0) {
		/* The callback comes from the close, never from here. */
		c->status = RAFT_NOCONNECTION;
		tconn_close(c, RAFT_NOCONNECTION);
	}
	return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct tt *t = listener->data;
	if (status != 0 || t->closing)
		return;
	unsigned handshaking = 0;
	for (struct tconn *c = t->conns; c != NULL; c = c->next)
		handshaking += !c->outgoing && c->state == TC_HANDSHAKING;
	struct tconn *c = tconn_new(t, false);
	if (c == NULL)
		return;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
		tconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	struct sockaddr_storage peer;
	int len = sizeof(peer);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0 &&
	    peer.ss_family == AF_INET) {
		char ip[INET_ADDRSTRLEN];
		const struct sockaddr_in *in = (const struct sockaddr_in *)&peer;
		uv_ip4_name(in, ip, sizeof(ip));
		snprintf(c->from, sizeof(c->from), "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	}
	if (handshaking >= MAX_HANDSHAKING) {
		refuse(c, "%u handshakes already in progress", handshaking);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (tconn_start_tls(c) == 0)
		start_reading(c);
}

static void on_sweep(uv_timer_t *timer)
{
	struct tt *t = timer->data;
	uint64_t now = uv_now(t->loop);
	for (struct tconn *c = t->conns; c != NULL; c = c->next) {
		if ((c->state == TC_CONNECTING || c->state == TC_HANDSHAKING) &&
		    now - c->started_ms >= HANDSHAKE_TIMEOUT_MS)
			refuse(c, "no handshake within %u ms", HANDSHAKE_TIMEOUT_MS);
	}
}

/* ---- the transport ----------------------------------------------------- */

static int tt_init(struct raft_uv_transport *transport, raft_id id, const char *address)
{
	struct tt *t = transport->impl;
	t->id = id;
	snprintf(t->address, sizeof(t->address), "%s", address);
	return 0;
}

static int tt_listen(struct raft_uv_transport *transport, raft_uv_accept_cb cb)
{
	struct tt *t = transport->impl;
	struct sockaddr_in addr;
	if (parse_ip4(t->address, &addr) != 0) {
		snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE, "bad address %s", t->address);
		return RAFT_INVALID;
	}
	t->accept_cb = cb;
	uv_tcp_init(t->loop, &t->listener);
	t->listener.data = t;
	t->listener_open = true;
	int rv = uv_tcp_bind(&t->listener, (struct sockaddr *)&addr, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&t->listener, 128, on_connection);
	if (rv != 0) {
		snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE, "listen on %s: %s", t->address,
		         uv_strerror(rv));
		return RAFT_IOERR;
	}
	uv_timer_init(t->loop, &t->sweep);
	t->sweep.data = t;
	t->sweep_open = true;
	uv_timer_start(&t->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
	uv_unref((uv_handle_t *)&t->sweep);
	uv_check_init(t->loop, &t->drain);
	t->drain.data = t;
	t->drain_open = true;
	uv_check_start(&t->drain, on_drain);
	uv_unref((uv_handle_t *)&t->drain);
	char desc[256];
	ing_tls_describe(t->tls, desc, sizeof(desc));
	ING_LOG_INFO("raft transport listening address=%s tls=on %s", t->address, desc);
	return 0;
}

static void tt_maybe_closed(struct tt *t)
{
	if (!t->closing || t->listener_open || t->sweep_open || t->nconns > 0 ||
	    t->close_cb == NULL)
		return;
	raft_uv_transport_close_cb cb = t->close_cb;
	t->close_cb = NULL;
	cb(t->transport);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct tt *t = h->data;
	t->listener_open = false;
	tt_maybe_closed(t);
}

static void on_sweep_closed(uv_handle_t *h)
{
	struct tt *t = h->data;
	t->sweep_open = false;
	tt_maybe_closed(t);
}

static void on_drain_closed(uv_handle_t *h)
{
	struct tt *t = h->data;
	t->drain_open = false;
	tt_maybe_closed(t);
}

static void tt_close(struct raft_uv_transport *transport, raft_uv_transport_close_cb cb)
{
	struct tt *t = transport->impl;
	t->closing = true;
	t->close_cb = cb;
	if (t->listener_open)
		uv_close((uv_handle_t *)&t->listener, on_listener_closed);
	if (t->sweep_open)
		uv_close((uv_handle_t *)&t->sweep, on_sweep_closed);
	if (t->drain_open)
		uv_close((uv_handle_t *)&t->drain, on_drain_closed);
	for (struct tconn *c = t->conns; c != NULL; c = c->next)
		tconn_close(c, RAFT_CANCELED);
	tt_maybe_closed(t);
}

int cons_transport_tls_init(struct raft_uv_transport *transport, uv_loop_t *loop,
                            struct ing_tls *tls)
{
	void *data = transport->data;
	memset(transport, 0, sizeof(*transport));
	transport->data = data;
	struct tt *t = calloc(1, sizeof(*t));
	if (t != NULL) {
		t->cipher = malloc(CHUNK_BYTES);
		t->plain = malloc(CHUNK_BYTES);
		t->pipe_chunk = malloc(CHUNK_BYTES);
	}
	if (t == NULL || t->cipher == NULL || t->plain == NULL || t->pipe_chunk == NULL) {
		if (t != NULL) {
			free(t->cipher);
			free(t->plain);
			free(t->pipe_chunk);
		}
		free(t);
		snprintf(transport->errmsg, RAFT_ERRMSG_BUF_SIZE, "out of memory");
		return RAFT_NOMEM;
	}
	t->transport = transport;
	t->loop = loop;
	t->tls = tls;
	transport->impl = t;
	transport->init = tt_init;
	transport->listen = tt_listen;
	transport->connect = tt_connect;
	transport->close = tt_close;
	return 0;
}

void cons_transport_tls_set_raft(struct raft_uv_transport *transport, const struct raft *r)
{
	struct tt *t = transport->impl;
	t->raft = r;
}

void cons_transport_tls_close(struct raft_uv_transport *transport)
{
	struct tt *t = transport->impl;
	free(t->cipher);
	free(t->plain);
	free(t->pipe_chunk);
	free(t);
	transport->impl = NULL;
}
