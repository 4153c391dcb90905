/*
 * server.c - accepting connections, cutting frames into calls, replies,
 * events, backpressure, limits and timeouts, TLS (see server.h,
 * docs/protocol.md).
 *
 * Objects and ownership:
 *   server -- owns the listener, the sweep timer and the list of
 *             connections.  It frees itself once rpc_server_close was
 *             called, the listener's and the timer's close callbacks ran
 *             and the last connection is gone.
 *   conn   -- owns a uv_tcp_t, its input buffer, its TLS session (when the
 *             server has TLS) and the list of its outstanding calls.  Freed
 *             in the tcp handle's close callback, never earlier, so a read
 *             callback (and a handler called from it) can always go on
 *             using the conn after asking for its end.
 *   call   -- owns a copy of its frame, of its peer, the msgpack zone the
 *             request was decoded into and the handler's attached object
 *             (rpc_call_set_data, released with the call); the handler owns
 *             the call until it replies.  A call outlives its connection ("dead": conn ==
 *             NULL) when the connection goes first; the reply then only
 *             frees it.
 *   wreq   -- one queued write and its bytes; freed in its write callback.
 *
 * Connection states: [handshaking (TLS)] -> open (reading unless paused)
 * -> closing.  Closing starts either at once (EOF, read/write error, slow
 * consumer, idle, server close: uv_close) or after a last message (bad
 * input, a refused handshake, a non-ingot peer: the message is queued,
 * then uv_shutdown flushes it, then uv_close).  Once closing, no frame is
 * dispatched and replies are dropped.  The close callback detaches every
 * outstanding call and runs its abandon callback -- on the loop, after
 * every callback of the connection has returned.
 *
 * Bytes in: plaintext goes straight into the frame reader.  With TLS the
 * kernel's bytes go into one buffer shared by the whole server (libuv pairs
 * each alloc with its read, one at a time), the first byte is checked to be
 * a TLS record, and everything is handed to the session and decrypted into
 * the frame reader at once, so the session never holds more than one read.
 * Bytes out: a reply or event is appended to its connection's `pend`
 * buffer, and a uv_check handle (after the loop's I/O callbacks) writes
 * each connection's buffer once per loop iteration: as it is, or encrypted
 * in one SSL_write (records of up to 16 KiB) and its ciphertext written.
 * So the replies to a batch of requests committed together leave in one
 * write(2) and, with TLS, in as few records as their size allows, instead
 * of one of each per reply.  While anything waits, a uv_idle handle keeps
 * the loop's poll from blocking, so a reply made outside the I/O phase
 * (a timer) still leaves in the same iteration.  A connection that ends
 * after a last message (conn_end_after_flush) writes its buffer first.
 * out_bytes counts the buffer and what is queued in uv_write.
 *
 * Backpressure: a connection is paused (uv_read_stop) while its queued
 * output is at least max_output_bytes or it has max_calls outstanding calls,
 * and resumed when the last write or reply brings it under both.  Frames
 * already buffered are dispatched on resume.  Dispatching is guarded
 * against re-entry (a handler replying synchronously resumes the
 * connection from inside the dispatch loop).
 *
 * Timeouts: one timer per server sweeps every connection a few times per
 * the shorter timeout.  A connection is idle when it has no call, no queued
 * output and no partial frame; a partial frame is timed only while the
 * connection is being read (a paused one waits for us, not the client).
 */
#include "rpc/server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/mp.h"
#include "common/text.h"
#include "rpc/frame.h"

#define SLOW_CONSUMER_FACTOR  4
#define CALL_ZONE_CHUNK_BYTES 1024
/* Calls of frames up to CALL_POOL_FRAME_BYTES are kept for reuse, at most
 * CALL_POOL_MAX per server: at hundreds of requests in flight, a malloc and
 * free of the call and of its zone's chunk per request kept glibc's
 * allocator busy merging chunks (a tenth of the leader's time). */
#define CALL_POOL_FRAME_BYTES 2048
#define CALL_POOL_MAX         512
#define LISTEN_BACKLOG        128
#define CIPHER_CHUNK_BYTES    (64u * 1024u)
#define SWEEPS_PER_TIMEOUT    4
#define SWEEP_MIN_MS          10u
#define SWEEP_MAX_MS          1000u

static const char http_refusal[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain\r\n"
    "Connection: close\r\n"
    "Content-Length: 99\r\n"
    "\r\n"
    "this is an ingot API port: it speaks ingot's msgpack protocol (see docs/protocol.md), not "
    "HTTP.\n";

struct conn;

struct rpc_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t sweep;
	rpc_handler handler;
	void *data;
	size_t max_frame_bytes;
	size_t max_output_bytes;
	unsigned max_connections;
	unsigned max_per_address;
	unsigned max_calls;
	unsigned idle_timeout_ms;
	unsigned frame_timeout_ms;
	struct ing_tls *tls;
	char *cipher_in; /* TLS: the one read buffer, CIPHER_CHUNK_BYTES */
	char address[32];
	uint16_t port;
	struct conn *conns; /* every conn not yet freed, closing ones too */
	unsigned nconns;
	unsigned nactive; /* conns counted against the limits */
	bool closing;
	bool listener_closed;
	bool sweep_closed;
	/* Output coalescing: conns with frames waiting in `pend`, written by
	 * the check handle once per loop iteration (idle keeps the poll from
	 * blocking while any wait). */
	uv_check_t flusher;
	uv_idle_t unblock;
	unsigned flush_handles; /* of flusher and unblock, not yet closed */
	struct conn *flush_head;
	void (*close_cb)(void *data);
	void *close_data;
	struct rpc_call *pool; /* calls kept for reuse (linked by next), zones cleared */
	unsigned npool;
};

struct conn {
	uv_tcp_t tcp;
	uv_shutdown_t shutdown;
	struct rpc_server *server;
	struct conn *prev, *next;
	struct rpc_reader in;
	struct rpc_call *calls;
	unsigned ncalls;
	size_t out_bytes;    /* in pend or queued in uv_write, not yet written */
	struct ing_buf pend; /* frames not yet written (plaintext) */
	struct conn *flush_next;
	bool flush_queued; /* on the server's flush list */
	struct ing_tls_session *tls;
	struct rpc_peer peer;
	uint32_t peer_ip; /* network order; 0: unknown */
	uint64_t accepted_ms;
	uint64_t active_ms;        /* last byte received or reply sent */
	uint64_t partial_since_ms; /* 0: no partial frame being timed */
	bool reading;
	bool processing;
	bool closing;
	bool counted;
	bool sniffed;   /* the first bytes were looked at */
	bool got_frame; /* a whole frame arrived */
	void *data;     /* the handler's per-connection object (rpc_call_set_conn_data) */
	void (*release)(void *data);
};

struct rpc_call {
	struct conn *conn;   /* NULL once dead, and for local calls */
	uint64_t started_ns; /* uv_hrtime() at creation */
	void (*observe)(void *data, struct ing_str op, int code, uint64_t elapsed_ns);
	void *observe_data;
	const struct rpc_local_ops *local; /* local calls only */
	void *local_data;
	bool local_gone; /* a local call's receiver went away */
	struct rpc_call *prev, *next;
	struct rpc_msg msg;
	msgpack_zone zone;
	struct rpc_peer peer;
	void *data;
	void (*release)(void *data);
	void (*abandon_cb)(struct rpc_call *c, void *data);
	void *abandon_data;
	bool pooled; /* frame has CALL_POOL_FRAME_BYTES: may go back to the pool */
	size_t len;
	char frame[];
};

struct wreq {
	uv_write_t req;
	struct conn *conn;
	size_t len;
	char *data;
};

static void conn_close(struct conn *conn);
static void conn_update_reading(struct conn *conn);

static uint64_t server_now(const struct rpc_server *s)
{
	return uv_now(s->loop);
}

/* ---- metrics (docs/operations.md "Metrics"): process-wide -------------- */

enum refusal { REFUSED_CONNECTIONS, REFUSED_MALFORMED, REFUSED_TOO_LARGE, REFUSED_SLOW, NREFUSALS };

static struct {
	struct ing_metrics *registry; /* the registry the handles below belong to */
	struct ing_series *connections, *bytes_in, *bytes_out;
	struct ing_series *refused[NREFUSALS];
} metrics;

/* (Re)registers the server's families when the process registry changed. */
static void metrics_init(void)
{
	static const char *const reasons[NREFUSALS] = {"too_many_connections", "malformed",
	                                               "too_large", "slow_consumer"};
	static const char *const reason_label[] = {"reason", NULL};
	struct ing_metrics *m = ing_metrics_default();
	struct ing_metric *f;
	if (m == NULL || m == metrics.registry)
		return;
	memset(&metrics, 0, sizeof(metrics));
	metrics.registry = m;
	if (ing_metrics_gauge(m, "ingot_api_connections", "Open msgpack API connections.", NULL, &f,
	                      NULL) == 0)
		metrics.connections = ing_metric_series(f, NULL);
	if (ing_metrics_counter(m, "ingot_api_received_bytes_total",
	                        "Bytes read from msgpack API connections.", NULL, &f, NULL) == 0)
		metrics.bytes_in = ing_metric_series(f, NULL);
	if (ing_metrics_counter(m, "ingot_api_sent_bytes_total",
	                        "Bytes written to msgpack API connections.", NULL, &f, NULL) == 0)
		metrics.bytes_out = ing_metric_series(f, NULL);
	if (ing_metrics_counter(m, "ingot_api_refused_total",
	                        "Connections or requests the API refused, by reason.", reason_label,
	                        &f, NULL) == 0) {
		for (int i = 0; i < NREFUSALS; i++) {
			const char *v[] = {reasons[i]};
			metrics.refused[i] = ing_metric_series(f, v);
		}
	}
}

static void observe(struct rpc_call *c, int code)
{
	if (c->observe == NULL)
		return;
	void (*cb)(void *, struct ing_str, int, uint64_t) = c->observe;
	c->observe = NULL;
	cb(c->observe_data, c->msg.op, code, uv_hrtime() - c->started_ns);
}

/* ---- server lifetime --------------------------------------------------- */

static void server_maybe_free(struct rpc_server *s)
{
	if (!s->closing || !s->listener_closed || !s->sweep_closed || s->flush_handles > 0 ||
	    s->nconns > 0)
		return;
	void (*cb)(void *) = s->close_cb;
	void *data = s->close_data;
	while (s->pool != NULL) {
		struct rpc_call *c = s->pool;
		s->pool = c->next;
		msgpack_zone_destroy(&c->zone);
		free(c);
	}
	free(s->cipher_in);
	free(s);
	if (cb != NULL)
		cb(data);
}

static void on_listener_close(uv_handle_t *h)
{
	struct rpc_server *s = h->data;
	s->listener_closed = true;
	server_maybe_free(s);
}

static void on_flush_handle_close(uv_handle_t *h)
{
	struct rpc_server *s = h->data;
	s->flush_handles--;
	server_maybe_free(s);
}

static void on_sweep_close(uv_handle_t *h)
{
	struct rpc_server *s = h->data;
	s->sweep_closed = true;
	server_maybe_free(s);
}

/* ---- calls ------------------------------------------------------------- */

static void call_unlink(struct rpc_call *c)
{
	struct conn *conn = c->conn;
	if (conn == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conn->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->conn = NULL;
	conn->ncalls--;
}

/* A call for a frame of len bytes, zeroed but for its zone (initialised,
 * empty): from the server's pool when it fits, else new.  NULL without
 * memory. */
static struct rpc_call *call_new(struct rpc_server *s, size_t len)
{
	struct rpc_call *c;
	if (len <= CALL_POOL_FRAME_BYTES && s->pool != NULL) {
		c = s->pool;
		s->pool = c->next;
		s->npool--;
		msgpack_zone z = c->zone;
		memset(c, 0, sizeof(*c));
		c->zone = z;
		c->pooled = true;
		return c;
	}
	bool pooled = len <= CALL_POOL_FRAME_BYTES;
	c = malloc(sizeof(*c) + (pooled ? CALL_POOL_FRAME_BYTES : len));
	if (c == NULL)
		return NULL;
	memset(c, 0, sizeof(*c));
	if (!msgpack_zone_init(&c->zone, CALL_ZONE_CHUNK_BYTES)) {
		free(c);
		return NULL;
	}
	c->pooled = pooled;
	return c;
}

/* Frees c, or keeps it in s's pool (s NULL: the connection is gone). */
static void call_drop(struct rpc_server *s, struct rpc_call *c)
{
	if (s != NULL && c->pooled && !s->closing && s->npool < CALL_POOL_MAX) {
		msgpack_zone_clear(&c->zone); /* keeps its first chunk */
		c->next = s->pool;
		s->pool = c;
		s->npool++;
		return;
	}
	msgpack_zone_destroy(&c->zone);
	free(c);
}

static void call_free(struct rpc_call *c)
{
	struct conn *conn = c->conn;
	call_unlink(c);
	if (c->release != NULL)
		c->release(c->data);
	call_drop(conn != NULL ? conn->server : NULL, c);
	if (conn != NULL) {
		conn->active_ms = server_now(conn->server);
		conn_update_reading(conn);
	}
}

uint64_t rpc_call_id(const struct rpc_call *c)
{
	return c->msg.id;
}

struct ing_str rpc_call_op(const struct rpc_call *c)
{
	return c->msg.op;
}

const msgpack_object *rpc_call_args(const struct rpc_call *c)
{
	return c->msg.args;
}

struct ing_str rpc_call_token(const struct rpc_call *c)
{
	return c->msg.token;
}

struct ing_str rpc_call_on_behalf(const struct rpc_call *c)
{
	return c->msg.on_behalf;
}

struct ing_str rpc_call_request_id(const struct rpc_call *c)
{
	return c->msg.request_id;
}

const struct rpc_peer *rpc_call_peer(const struct rpc_call *c)
{
	return &c->peer;
}

void *rpc_call_conn_data(const struct rpc_call *c)
{
	return c->conn != NULL ? c->conn->data : NULL;
}

bool rpc_call_set_conn_data(struct rpc_call *c, void *data, void (*release)(void *data))
{
	if (c->conn == NULL)
		return false;
	if (c->conn->release != NULL && c->conn->data != data)
		c->conn->release(c->conn->data);
	c->conn->data = data;
	c->conn->release = release;
	return true;
}

void rpc_call_set_data(struct rpc_call *c, void *data, void (*release)(void *data))
{
	if (c->release != NULL && c->data != data)
		c->release(c->data);
	c->data = data;
	c->release = release;
}

void rpc_call_set_peer_address(struct rpc_call *c, const char *address)
{
	snprintf(c->peer.address, sizeof(c->peer.address), "%s", address != NULL ? address : "");
}

void *rpc_call_data(const struct rpc_call *c)
{
	return c->data;
}

bool rpc_call_alive(const struct rpc_call *c)
{
	if (c->local != NULL)
		return !c->local_gone;
	return c->conn != NULL && !c->conn->closing;
}

int rpc_call_on_abandon(struct rpc_call *c, void (*cb)(struct rpc_call *c, void *data), void *data)
{
	/* A closing conn still runs the abandon callbacks in its close
	 * callback, so registering is still meaningful until it is freed. */
	if (c->local != NULL ? c->local_gone : c->conn == NULL)
		return ING_EUNAVAILABLE;
	c->abandon_cb = cb;
	c->abandon_data = data;
	return 0;
}

/* ---- writing ----------------------------------------------------------- */

static bool conn_paused(const struct conn *conn)
{
	return conn->out_bytes >= conn->server->max_output_bytes ||
	       conn->ncalls >= conn->server->max_calls;
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = req->data;
	struct conn *conn = w->conn;
	conn->out_bytes -= w->len;
	free(w->data);
	free(w);
	if (status < 0) {
		if (!conn->closing)
			ING_LOG_DEBUG("rpc write failed peer=%s error=%s", conn->peer.address,
			              uv_strerror(status));
		conn_close(conn);
		return;
	}
	conn_update_reading(conn);
}

/* Queues len bytes at data (malloc'd; ownership passes here, freed on
 * every path) as they are. */
static int conn_write_raw(struct conn *conn, char *data, size_t len)
{
	struct wreq *w = malloc(sizeof(*w));
	if (w == NULL) {
		free(data);
		conn_close(conn);
		return ING_ENOMEM;
	}
	w->conn = conn;
	w->len = len;
	w->data = data;
	w->req.data = w;
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
	int rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_write);
	if (rv != 0) {
		free(w->data);
		free(w);
		conn_close(conn);
		return ing_err_from_uv(rv);
	}
	conn->out_bytes += len;
	ing_counter_add(metrics.bytes_out, (double)len);
	return 0;
}

/* TLS: sends whatever ciphertext the session has ready. */
static int conn_tls_flush(struct conn *conn)
{
	char *data;
	size_t len;
	if (ing_tls_session_take(conn->tls, &data, &len) != 0) {
		conn_close(conn);
		return ING_ENOMEM;
	}
	return len == 0 ? 0 : conn_write_raw(conn, data, len);
}

/* Writes the frames waiting in pend: as they are, or encrypted as one
 * run of records.  0, or an error (the connection is closing). */
static int conn_flush(struct conn *conn)
{
	if (conn->pend.len == 0)
		return 0;
	char *data = conn->pend.data;
	size_t len = conn->pend.len;
	memset(&conn->pend, 0, sizeof(conn->pend)); /* data is conn_write_raw's */
	conn->out_bytes -= len;                     /* counted again as written below */
	if (conn->tls == NULL)
		return conn_write_raw(conn, data, len);
	struct ing_error err;
	int rv = ing_tls_session_write(conn->tls, data, len, &err);
	free(data);
	if (rv != 0) {
		ING_LOG_DEBUG("rpc tls write failed peer=%s msg=\"%s\"", conn->peer.address,
		              err.msg);
		conn_close(conn);
		return rv;
	}
	return conn_tls_flush(conn);
}

void rpc_server_flush(struct rpc_server *s)
{
	while (s->flush_head != NULL) {
		struct conn *conn = s->flush_head;
		s->flush_head = conn->flush_next;
		conn->flush_next = NULL;
		conn->flush_queued = false;
		if (!conn->closing)
			conn_flush(conn);
	}
	uv_idle_stop(&s->unblock);
}

/* Once per loop iteration, after the I/O callbacks: every connection's
 * waiting frames go out in one write (rpc_server_flush may have sent them
 * before the poll already). */
static void on_flush(uv_check_t *h)
{
	rpc_server_flush(h->data);
}

static void on_unblock(uv_idle_t *h)
{
	(void)h; /* only there so that the poll does not block */
}

static void flush_unlink(struct conn *conn)
{
	if (!conn->flush_queued)
		return;
	for (struct conn **pp = &conn->server->flush_head; *pp != NULL; pp = &(*pp)->flush_next) {
		if (*pp == conn) {
			*pp = conn->flush_next;
			break;
		}
	}
	conn->flush_next = NULL;
	conn->flush_queued = false;
}

/* Queues the frame in `o` (taking its memory; `o` is left empty) for the
 * end of this loop iteration (on_flush).  0, or ING_ENOMEM (closing). */
static int conn_send(struct conn *conn, struct mp_out *o)
{
	struct rpc_server *s = conn->server;
	int rv = 0;
	if (conn->closing) {
		mp_out_free(o);
		return ING_EUNAVAILABLE;
	}
	size_t len = o->len;
	if (conn->pend.data == NULL) { /* the usual case: the frame's memory is taken */
		conn->pend.data = o->data;
		conn->pend.len = o->len;
		conn->pend.cap = o->cap;
		mp_out_init(o);
	} else {
		rv = ing_buf_append(&conn->pend, o->data, o->len);
		mp_out_free(o);
		if (rv != 0) {
			conn_close(conn);
			return rv;
		}
	}
	conn->out_bytes += len;
	if (!conn->flush_queued) {
		conn->flush_queued = true;
		conn->flush_next = s->flush_head;
		s->flush_head = conn;
		if (!uv_is_active((uv_handle_t *)&s->unblock))
			uv_idle_start(&s->unblock, on_unblock);
	}
	return 0;
}

static void conn_send_error(struct conn *conn, uint64_t id, int code, const char *msg)
{
	struct mp_out o;
	mp_out_init(&o);
	if (rpc_encode_error(&o, id, code, msg) == 0)
		conn_send(conn, &o);
	else
		conn_close(conn);
	mp_out_free(&o);
}

/* ---- closing ----------------------------------------------------------- */

static void on_conn_close(uv_handle_t *h)
{
	struct conn *conn = h->data;
	struct rpc_server *s = conn->server;

	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		s->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	/* Detach first, then tell: an abandon callback may reply to any call
	 * of this conn, or close the server. */
	while (conn->calls != NULL) {
		struct rpc_call *c = conn->calls;
		call_unlink(c);
		if (c->abandon_cb != NULL)
			c->abandon_cb(c, c->abandon_data);
	}
	if (conn->counted) {
		s->nactive--;
		ing_gauge_add(metrics.connections, -1);
	}
	flush_unlink(conn);
	if (conn->release != NULL)
		conn->release(conn->data);
	ing_buf_free(&conn->pend);
	rpc_reader_free(&conn->in);
	ing_tls_session_free(conn->tls);
	ING_LOG_DEBUG("rpc connection closed peer=%s", conn->peer.address);
	free(conn);
	s->nconns--;
	server_maybe_free(s);
}

/* Starts the end of a connection now; freed in on_conn_close. */
static void conn_close(struct conn *conn)
{
	conn->closing = true;
	if (conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
	if (!uv_is_closing((uv_handle_t *)&conn->tcp))
		uv_close((uv_handle_t *)&conn->tcp, on_conn_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status;
	conn_close(req->data);
}

/* Ends the connection once what is queued has been written. */
static void conn_end_after_flush(struct conn *conn)
{
	if (conn->closing)
		return;
	flush_unlink(conn);
	if (conn_flush(conn) != 0)
		return; /* closing already */
	conn->closing = true;
	if (conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
	conn->shutdown.data = conn;
	if (uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, on_shutdown) != 0)
		conn_close(conn);
}

/* Bad input: one last error reply, flushed, then the end. */
static void conn_fail(struct conn *conn, uint64_t id, int code, const char *msg)
{
	if (conn->closing)
		return;
	if (code != ING_EUNAVAILABLE) /* the connection limits count themselves */
		ing_counter_inc(
		    metrics.refused[code == ING_ETOOBIG ? REFUSED_TOO_LARGE : REFUSED_MALFORMED]);
	ING_LOG_WARN("rpc closing connection peer=%s error=%s msg=\"%s\"", conn->peer.address,
	             ing_err_name(code), msg);
	conn_send_error(conn, id, code, msg);
	conn_end_after_flush(conn);
}

/* Sends bytes that are not ingot frames (an HTTP answer, a plaintext frame
 * on a TLS port) and ends the connection. */
static void conn_refuse_with(struct conn *conn, const void *bytes, size_t len)
{
	char *copy = malloc(len);
	if (copy == NULL) {
		conn_close(conn);
		return;
	}
	memcpy(copy, bytes, len);
	if (conn_write_raw(conn, copy, len) == 0)
		conn_end_after_flush(conn);
}

/*
 * The first bytes show a peer that is not an ingot client of this server:
 * an HTTP request gets an HTTP answer, a plaintext ingot client of a TLS
 * server one plaintext error frame; anything else is just closed.  Returns
 * true when the connection was refused.
 */
static bool conn_refuse_stranger(struct conn *conn, const char *p, size_t n)
{
	enum rpc_sniff kind = rpc_sniff(p, n);
	char line[64];
	bool tls = conn->server->tls != NULL;
	if (kind == RPC_SNIFF_MORE || (tls && kind == RPC_SNIFF_TLS))
		return false;
	if (!tls && kind != RPC_SNIFF_HTTP && kind != RPC_SNIFF_TLS)
		return false;
	conn->sniffed = true;
	switch (kind) {
	case RPC_SNIFF_HTTP:
		rpc_sniff_line(p, n, line, sizeof(line));
		ING_LOG_WARN("rpc refusing a non-ingot client peer=%s kind=http first_line=\"%s\"",
		             conn->peer.address, line);
		conn_refuse_with(conn, http_refusal, sizeof(http_refusal) - 1);
		break;
	case RPC_SNIFF_TLS:
		ING_LOG_WARN("rpc refusing a TLS client on a plaintext port peer=%s "
		             "(configure the server with tls, or the client without)",
		             conn->peer.address);
		conn_close(conn);
		break;
	case RPC_SNIFF_INGOT: {
		ING_LOG_WARN("rpc refusing a plaintext client on a TLS port peer=%s",
		             conn->peer.address);
		struct mp_out o;
		mp_out_init(&o);
		if (rpc_encode_error(
		        &o, 0, ING_EDENIED,
		        "this endpoint requires TLS: give the cluster CA with --cacert "
		        "(INGOT_CACERT), and a client certificate with --cert/--key if "
		        "the cluster asks for one") == 0)
			conn_refuse_with(conn, o.data, o.len);
		else
			conn_close(conn);
		mp_out_free(&o);
		break;
	}
	default:
		ING_LOG_WARN("rpc refusing a non-TLS client on a TLS port peer=%s",
		             conn->peer.address);
		conn_close(conn);
		break;
	}
	return true;
}

/* ---- reading ----------------------------------------------------------- */

/* Decodes one frame into a call and hands it to the handler. */
static void conn_dispatch(struct conn *conn, const char *body, size_t len)
{
	struct rpc_server *s = conn->server;
	struct ing_error err;
	bool id_known;

	struct rpc_call *c = call_new(s, len);
	if (c == NULL) {
		conn_fail(conn, 0, ING_ENOMEM, "out of memory for a request");
		return;
	}
	memcpy(c->frame, body, len);
	c->len = len;
	c->peer = conn->peer;
	c->started_ns = uv_hrtime();
	int rv = rpc_msg_decode(c->frame, len, &c->zone, &c->msg, &id_known, &err);
	if (rv == 0 && c->msg.kind != RPC_MSG_REQUEST)
		rv = ing_error_set(&err, ING_EMALFORMED, "expected a request (type 0), got a %s",
		                   c->msg.kind == RPC_MSG_REPLY ? "reply" : "event");
	if (rv == 0 && c->msg.id == 0)
		rv = ing_error_set(&err, ING_EMALFORMED, "request id 0 is reserved");
	if (rv != 0) {
		uint64_t id = id_known ? c->msg.id : 0;
		call_drop(s, c);
		conn_fail(conn, id, rv, err.msg);
		return;
	}

	c->conn = conn;
	c->next = conn->calls;
	if (conn->calls != NULL)
		conn->calls->prev = c;
	conn->calls = c;
	conn->ncalls++;

	if (c->msg.op.len == 0 || c->msg.op.len > RPC_OP_MAX) {
		rpc_reply_error(c, ING_EINVAL, "op must be 1..%d bytes", RPC_OP_MAX);
		return;
	}
	if (c->msg.token.len > RPC_TOKEN_MAX) {
		rpc_reply_error(c, ING_EINVAL, "token over %d bytes", RPC_TOKEN_MAX);
		return;
	}
	if (c->msg.request_id.ptr != NULL && !rpc_request_id_valid(c->msg.request_id)) {
		rpc_reply_error(c, ING_EINVAL, "request_id must be 1..%d printable ASCII bytes",
		                RPC_REQUEST_ID_MAX);
		return;
	}
	if (c->msg.on_behalf.ptr != NULL && !rpc_on_behalf_valid(c->msg.on_behalf)) {
		rpc_reply_error(c, ING_EINVAL, "on_behalf must be 1..%d printable ASCII bytes",
		                RPC_ON_BEHALF_MAX);
		return;
	}
	s->handler(s->data, c);
}

static void conn_note_partial(struct conn *conn)
{
	if (rpc_reader_partial(&conn->in) == 0)
		conn->partial_since_ms = 0;
	else if (conn->partial_since_ms == 0)
		conn->partial_since_ms = server_now(conn->server);
}

static void conn_process(struct conn *conn)
{
	if (conn->processing)
		return;
	conn->processing = true;
	while (!conn->closing && !conn_paused(conn)) {
		const char *body;
		size_t len;
		struct ing_error err;
		if (!conn->sniffed && conn->tls == NULL) {
			const char *p = conn->in.buf + conn->in.pos;
			if (conn_refuse_stranger(conn, p, rpc_reader_partial(&conn->in)))
				break;
		}
		int rv = rpc_reader_next(&conn->in, &body, &len, &err);
		if (rv == 0)
			break;
		if (rv < 0) {
			conn_fail(conn, 0, rv, err.msg);
			break;
		}
		conn->sniffed = true;
		conn->got_frame = true;
		conn_dispatch(conn, body, len);
	}
	if (!conn->closing)
		conn_note_partial(conn);
	conn->processing = false;
	conn_update_reading(conn);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *conn = h->data;
	(void)suggested;
	if (conn->tls != NULL)
		*buf = uv_buf_init(conn->server->cipher_in, CIPHER_CHUNK_BYTES);
	else
		rpc_reader_alloc(&conn->in, buf);
}

/* TLS: decrypts everything the session holds into the frame reader. */
static void conn_tls_decrypt(struct conn *conn)
{
	bool was_established = ing_tls_session_established(conn->tls);
	for (;;) {
		uv_buf_t b;
		size_t got;
		struct ing_error err;
		rpc_reader_alloc(&conn->in, &b);
		if (b.base == NULL) {
			conn_fail(conn, 0, ING_ENOMEM, "out of memory for input");
			return;
		}
		int rv = ing_tls_session_read(conn->tls, b.base, b.len, &got, &err);
		if (rv == ING_EUNAVAILABLE) { /* close_notify: like EOF */
			conn_close(conn);
			return;
		}
		if (rv != 0) {
			ING_LOG_WARN(
			    "rpc tls handshake or record refused peer=%s error=%s msg=\"%s\"",
			    conn->peer.address, ing_err_name(rv), err.msg);
			/* The alert OpenSSL queued, then the end. */
			if (conn_tls_flush(conn) == 0)
				conn_end_after_flush(conn);
			return;
		}
		if (!was_established && ing_tls_session_established(conn->tls)) {
			was_established = true;
			conn->peer.identity = *ing_tls_session_peer(conn->tls);
			char who[ING_TLS_NAME_MAX + 16];
			ing_tls_identity_format(&conn->peer.identity, who, sizeof(who));
			ING_LOG_DEBUG("rpc tls established peer=%s identity=\"%s\"",
			              conn->peer.address, who);
		}
		if (got == 0)
			break;
		conn->in.len += got;
	}
	conn_tls_flush(conn);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *conn = stream->data;
	if (nread > 0) {
		conn->active_ms = server_now(conn->server);
		ing_counter_add(metrics.bytes_in, (double)nread);
		if (conn->tls == NULL) {
			conn->in.len += (size_t)nread;
			conn_process(conn);
			return;
		}
		if (!conn->sniffed && conn_refuse_stranger(conn, buf->base, (size_t)nread))
			return;
		conn->sniffed = true;
		if (ing_tls_session_input(conn->tls, buf->base, (size_t)nread) != 0) {
			conn_close(conn);
			return;
		}
		conn_tls_decrypt(conn);
		if (!conn->closing)
			conn_process(conn);
		return;
	}
	if (nread == 0)
		return;
	if (nread == UV_EOF && rpc_reader_partial(&conn->in) > 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "connection ended inside a frame (%zu bytes buffered)",
		         rpc_reader_partial(&conn->in));
		conn_fail(conn, 0, ING_EMALFORMED, msg);
		return;
	}
	if (nread != UV_EOF)
		ING_LOG_DEBUG("rpc read failed peer=%s error=%s", conn->peer.address,
		              uv_strerror((int)nread));
	conn_close(conn);
}

static void conn_update_reading(struct conn *conn)
{
	bool want = !conn->closing && !conn_paused(conn);
	if (want && !conn->reading) {
		int rv = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
		if (rv != 0) {
			conn_close(conn);
			return;
		}
		conn->reading = true;
		/* A partial frame is the client's again from now on. */
		conn->partial_since_ms = 0;
		conn_note_partial(conn);
		/* Frames that arrived before the pause. */
		conn_process(conn);
	} else if (!want && conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
}

/* ---- timeouts ---------------------------------------------------------- */

static void on_sweep(uv_timer_t *t)
{
	struct rpc_server *s = t->data;
	uint64_t now = server_now(s);
	for (struct conn *conn = s->conns; conn != NULL; conn = conn->next) {
		if (conn->closing)
			continue;
		if (conn->tls != NULL && !ing_tls_session_established(conn->tls)) {
			if (now - conn->accepted_ms >= s->frame_timeout_ms) {
				ING_LOG_WARN("rpc closing connection peer=%s: TLS handshake not "
				             "completed within %u ms",
				             conn->peer.address, s->frame_timeout_ms);
				conn_close(conn);
			}
			continue;
		}
		size_t partial = rpc_reader_partial(&conn->in);
		if (conn->reading && partial > 0 && conn->partial_since_ms != 0 &&
		    now - conn->partial_since_ms >= s->frame_timeout_ms) {
			char msg[128];
			snprintf(msg, sizeof(msg),
			         "frame not completed within %u ms (%zu bytes received)",
			         s->frame_timeout_ms, partial);
			conn_fail(conn, 0, ING_ETIMEOUT, msg);
			continue;
		}
		if (conn->ncalls == 0 && conn->out_bytes == 0 && partial == 0 &&
		    now - conn->active_ms >= s->idle_timeout_ms) {
			ING_LOG_DEBUG("rpc closing idle connection peer=%s idle_ms=%" PRIu64,
			              conn->peer.address, now - conn->active_ms);
			conn_close(conn);
		}
	}
}

/* ---- accepting --------------------------------------------------------- */

static unsigned connections_from(const struct rpc_server *s, uint32_t ip)
{
	unsigned n = 0;
	for (const struct conn *c = s->conns; c != NULL; c = c->next)
		n += c->counted && c->peer_ip == ip;
	return n;
}

/* Over a connection limit: a plaintext client gets the reason in an error
 * frame; a TLS one (which could not read it before its handshake) is
 * closed, and the reason logged. */
static void conn_refuse_limit(struct conn *conn, const char *msg)
{
	if (conn->server->tls == NULL) {
		conn_fail(conn, 0, ING_EUNAVAILABLE, msg);
		return;
	}
	ING_LOG_WARN("rpc closing connection peer=%s error=unavailable msg=\"%s\"",
	             conn->peer.address, msg);
	conn_close(conn);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct rpc_server *s = listener->data;
	if (status < 0) {
		ING_LOG_WARN("rpc accept failed address=%s error=%s", s->address,
		             uv_strerror(status));
		return;
	}
	if (s->closing)
		return;
	struct conn *conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return;
	if (uv_tcp_init(s->loop, &conn->tcp) != 0) {
		free(conn);
		return;
	}
	conn->tcp.data = conn;
	conn->server = s;
	conn->accepted_ms = conn->active_ms = server_now(s);
	rpc_reader_init(&conn->in, s->max_frame_bytes);
	conn->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = conn;
	s->conns = conn;
	s->nconns++;
	strcpy(conn->peer.address, "?");
	if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
		conn_close(conn);
		return;
	}
	struct sockaddr_storage peer;
	int peer_len = sizeof(peer);
	if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&peer, &peer_len) == 0 &&
	    peer.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&peer;
		rpc_format_address(in, conn->peer.address, sizeof(conn->peer.address));
		conn->peer_ip = in->sin_addr.s_addr;
	}
	char msg[96];
	if (s->nactive >= s->max_connections) {
		snprintf(msg, sizeof(msg), "too many connections (limit %u)", s->max_connections);
		ing_counter_inc(metrics.refused[REFUSED_CONNECTIONS]);
		conn_refuse_limit(conn, msg);
		return;
	}
	if (connections_from(s, conn->peer_ip) >= s->max_per_address) {
		char ip[32];
		snprintf(ip, sizeof(ip), "%s", conn->peer.address);
		char *colon = strrchr(ip, ':');
		if (colon != NULL)
			*colon = '\0';
		snprintf(msg, sizeof(msg), "too many connections from %s (limit %u)", ip,
		         s->max_per_address);
		ing_counter_inc(metrics.refused[REFUSED_CONNECTIONS]);
		conn_refuse_limit(conn, msg);
		return;
	}
	conn->counted = true;
	s->nactive++;
	ing_gauge_add(metrics.connections, 1);
	if (s->tls != NULL) {
		struct ing_tls_session_options so = {ING_TLS_ACCEPT, NULL, false};
		struct ing_error err;
		if (ing_tls_session_new(s->tls, &so, &conn->tls, &err) != 0) {
			ING_LOG_WARN("rpc cannot start TLS peer=%s msg=\"%s\"", conn->peer.address,
			             err.msg);
			conn_close(conn);
			return;
		}
		conn->peer.tls = true;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	ING_LOG_DEBUG("rpc connection accepted peer=%s", conn->peer.address);
	conn_update_reading(conn);
}

int rpc_server_start(uv_loop_t *loop, const struct rpc_server_options *o, rpc_handler h, void *data,
                     struct rpc_server **out, struct ing_error *e)
{
	struct sockaddr_in addr;
	int rv = rpc_parse_address(o->address, &addr, e);
	if (rv != 0)
		return rv;
	if (h == NULL)
		return ing_error_set(e, ING_EINVAL, "rpc server: no handler");
	struct rpc_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	metrics_init();
	s->loop = loop;
	s->handler = h;
	s->data = data;
	s->max_frame_bytes =
	    o->max_frame_bytes != 0 ? o->max_frame_bytes : RPC_DEFAULT_MAX_FRAME_BYTES;
	s->max_output_bytes =
	    o->max_output_bytes != 0 ? o->max_output_bytes : RPC_DEFAULT_MAX_OUTPUT_BYTES;
	s->max_connections =
	    o->max_connections != 0 ? o->max_connections : RPC_DEFAULT_MAX_CONNECTIONS;
	s->max_per_address = o->max_connections_per_address != 0
	                         ? o->max_connections_per_address
	                         : RPC_DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
	s->max_calls = o->max_calls != 0 ? o->max_calls : RPC_DEFAULT_MAX_CALLS;
	s->idle_timeout_ms =
	    o->idle_timeout_ms != 0 ? o->idle_timeout_ms : RPC_DEFAULT_IDLE_TIMEOUT_MS;
	s->frame_timeout_ms =
	    o->frame_timeout_ms != 0 ? o->frame_timeout_ms : RPC_DEFAULT_FRAME_TIMEOUT_MS;
	s->tls = o->tls;
	snprintf(s->address, sizeof(s->address), "%s", o->address);
	if (s->tls != NULL && (s->cipher_in = malloc(CIPHER_CHUNK_BYTES)) == NULL) {
		free(s);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	if (s->tls != NULL && !ing_tls_has_cert(s->tls)) {
		free(s->cipher_in);
		free(s);
		return ing_error_set(e, ING_EINVAL,
		                     "rpc server %s: TLS needs a certificate and key", o->address);
	}

	rv = uv_tcp_init(loop, &s->listener);
	if (rv != 0) {
		free(s->cipher_in);
		free(s);
		return ing_error_set(e, ing_err_from_uv(rv), "cannot listen on %s: %s", o->address,
		                     uv_strerror(rv));
	}
	s->listener.data = s;
	uv_timer_init(loop, &s->sweep);
	s->sweep.data = s;
	uv_check_init(loop, &s->flusher);
	uv_idle_init(loop, &s->unblock);
	s->flusher.data = s->unblock.data = s;
	s->flush_handles = 2;
	uv_check_start(&s->flusher, on_flush);
	uv_unref((uv_handle_t *)&s->flusher);
	uv_unref((uv_handle_t *)&s->unblock);
	rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
	struct sockaddr_storage bound;
	int bound_len = sizeof(bound);
	if (rv == 0)
		rv = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &bound_len);
	if (rv != 0) {
		/* The handles are released on the loop's next run. */
		s->closing = true;
		uv_close((uv_handle_t *)&s->listener, on_listener_close);
		uv_close((uv_handle_t *)&s->sweep, on_sweep_close);
		uv_close((uv_handle_t *)&s->flusher, on_flush_handle_close);
		uv_close((uv_handle_t *)&s->unblock, on_flush_handle_close);
		return ing_error_set(e, ing_err_from_uv(rv), "cannot listen on %s: %s", o->address,
		                     uv_strerror(rv));
	}
	s->port = ntohs(((const struct sockaddr_in *)&bound)->sin_port);
	unsigned shortest =
	    s->idle_timeout_ms < s->frame_timeout_ms ? s->idle_timeout_ms : s->frame_timeout_ms;
	unsigned period = shortest / SWEEPS_PER_TIMEOUT;
	period = period < SWEEP_MIN_MS   ? SWEEP_MIN_MS
	         : period > SWEEP_MAX_MS ? SWEEP_MAX_MS
	                                 : period;
	uv_timer_start(&s->sweep, on_sweep, period, period);
	uv_unref((uv_handle_t *)&s->sweep); /* the listener keeps the loop alive */
	if (s->tls != NULL) {
		char desc[256];
		ing_tls_describe(s->tls, desc, sizeof(desc));
		ING_LOG_INFO("rpc listening address=%s port=%u tls=on %s", o->address,
		             (unsigned)s->port, desc);
	} else {
		ING_LOG_INFO("rpc listening address=%s port=%u tls=off", o->address,
		             (unsigned)s->port);
	}
	*out = s;
	return 0;
}

uint16_t rpc_server_port(const struct rpc_server *s)
{
	return s->port;
}

void rpc_server_close(struct rpc_server *s, void (*cb)(void *data), void *data)
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_cb = cb;
	s->close_data = data;
	uv_close((uv_handle_t *)&s->listener, on_listener_close);
	uv_close((uv_handle_t *)&s->sweep, on_sweep_close);
	uv_close((uv_handle_t *)&s->flusher, on_flush_handle_close);
	uv_close((uv_handle_t *)&s->unblock, on_flush_handle_close);
	for (struct conn *conn = s->conns; conn != NULL; conn = conn->next)
		conn_close(conn);
}

/* ---- replies and events ------------------------------------------------ */

static bool call_can_send(const struct rpc_call *c)
{
	return c->conn != NULL && !c->conn->closing;
}

/* A local call's reply: to its callback, unless its receiver is gone. */
static void local_reply(struct rpc_call *c, int code, const char *msg, const void *result,
                        size_t len)
{
	if (c->local_gone)
		return;
	if (code == 0 && rpc_check_value(result, len) != 0) {
		ING_LOG_ERROR("rpc handler replied with an invalid value op=%.*s",
		              ING_STR_FMT(c->msg.op));
		c->local->reply(c->local_data, ING_EINTERNAL,
		                "the server produced an invalid result", NULL, 0);
		return;
	}
	c->local->reply(c->local_data, code, msg, code == 0 ? result : NULL, code == 0 ? len : 0);
}

void rpc_reply(struct rpc_call *c, const void *result, size_t len)
{
	observe(c, 0);
	if (c->local != NULL)
		local_reply(c, 0, NULL, result, len);
	if (call_can_send(c)) {
		struct conn *conn = c->conn;
		size_t max = conn->server->max_frame_bytes;
		struct mp_out o;
		mp_out_init(&o);
		int rv = rpc_encode_reply(&o, max, c->msg.id, result, len);
		if (rv == ING_EINVAL) {
			ING_LOG_ERROR("rpc handler replied with an invalid value op=%.*s",
			              ING_STR_FMT(c->msg.op));
			rv = rpc_encode_error(&o, c->msg.id, ING_EINTERNAL,
			                      "the server produced an invalid result");
		} else if (rv == ING_ETOOBIG) {
			char msg[160];
			snprintf(msg, sizeof(msg),
			         "the reply (%zu bytes) exceeds the frame limit of %zu bytes "
			         "(max_frame_bytes)",
			         len, max);
			ING_LOG_WARN("rpc reply over the frame limit op=%.*s bytes=%zu limit=%zu",
			             ING_STR_FMT(c->msg.op), len, max);
			rv = rpc_encode_error(&o, c->msg.id, ING_ETOOBIG, msg);
		}
		if (rv == 0)
			conn_send(conn, &o);
		else
			conn_close(conn);
		mp_out_free(&o);
	}
	call_free(c);
}

void rpc_reply_error(struct rpc_call *c, int code, const char *fmt, ...)
{
	observe(c, code != 0 ? code : ING_EINTERNAL);
	if (call_can_send(c) || (c->local != NULL && !c->local_gone)) {
		char msg[ING_ERROR_MSG_MAX];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		/* Messages echo what clients sent, and may be cut mid-character:
		 * a msgpack string must be UTF-8. */
		ing_utf8_sanitize(msg);
		if (c->local != NULL)
			local_reply(c, code != 0 ? code : ING_EINTERNAL, msg, NULL, 0);
		else
			conn_send_error(c->conn, c->msg.id, code, msg);
	}
	call_free(c);
}

int rpc_push(struct rpc_call *c, const void *event, size_t len)
{
	if (c->local != NULL) {
		if (c->local_gone || c->local->push == NULL)
			return ING_EUNAVAILABLE;
		if (len == 0 || rpc_check_value(event, len) != 0)
			return ING_EINVAL;
		return c->local->push(c->local_data, event, len) == 0 ? 0 : ING_EUNAVAILABLE;
	}
	if (!call_can_send(c))
		return ING_EUNAVAILABLE;
	struct conn *conn = c->conn;
	struct rpc_server *s = conn->server;
	struct mp_out o;
	mp_out_init(&o);
	int rv = rpc_encode_event(&o, s->max_frame_bytes, c->msg.id, event, len);
	if (rv != 0) {
		mp_out_free(&o);
		return rv;
	}
	if (conn->out_bytes + o.len > SLOW_CONSUMER_FACTOR * s->max_output_bytes) {
		ing_counter_inc(metrics.refused[REFUSED_SLOW]);
		ING_LOG_WARN("rpc closing slow consumer peer=%s queued_bytes=%zu",
		             conn->peer.address, conn->out_bytes);
		mp_out_free(&o);
		conn_close(conn);
		return ING_EUNAVAILABLE;
	}
	rv = conn_send(conn, &o);
	mp_out_free(&o);
	return rv == 0 ? 0 : ING_EUNAVAILABLE;
}

/* ---- local calls ------------------------------------------------------- */

int rpc_call_new_local(const char *op, const void *args, size_t args_len, const char *token,
                       const char *request_id, const struct rpc_local_ops *ops, void *data,
                       struct rpc_call **out, struct ing_error *e)
{
	static const char empty_map = (char)0x80;
	size_t op_len = op != NULL ? strlen(op) : 0;
	size_t token_len = token != NULL ? strlen(token) : 0;
	size_t rid_len = request_id != NULL ? strlen(request_id) : 0;
	if (op_len == 0 || op_len > RPC_OP_MAX)
		return ing_error_set(e, ING_EINVAL, "op must be 1..%d bytes", RPC_OP_MAX);
	if (token_len > RPC_TOKEN_MAX)
		return ing_error_set(e, ING_EINVAL, "token over %d bytes", RPC_TOKEN_MAX);
	if (rid_len > 0 && !rpc_request_id_valid((struct ing_str){request_id, (uint32_t)rid_len}))
		return ing_error_set(e, ING_EINVAL,
		                     "request id must be 1..%d printable ASCII bytes",
		                     RPC_REQUEST_ID_MAX);
	if (args == NULL || args_len == 0) {
		args = &empty_map;
		args_len = 1;
	}
	size_t len = args_len + op_len + token_len + rid_len;
	struct rpc_call *c = malloc(sizeof(*c) + len);
	if (c == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	memset(c, 0, sizeof(*c));
	if (!msgpack_zone_init(&c->zone, CALL_ZONE_CHUNK_BYTES)) {
		free(c);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	char *p = c->frame;
	memcpy(p, args, args_len);
	msgpack_object *obj = msgpack_zone_malloc(&c->zone, sizeof(*obj));
	size_t used = 0;
	int rv = obj != NULL ? mp_parse(p, args_len, &c->zone, obj, &used, e)
	                     : ing_error_set(e, ING_ENOMEM, "out of memory");
	if (rv == 0 && used != args_len)
		rv = ing_error_set(e, ING_EMALFORMED, "args: bytes after the map");
	if (rv == 0 && obj->type != MSGPACK_OBJECT_MAP)
		rv = ing_error_set(e, ING_EINVAL, "args must be a map");
	for (uint32_t i = 0; rv == 0 && i < obj->via.map.size; i++)
		if (obj->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
			rv = ing_error_set(e, ING_EINVAL, "args keys must be strings");
	if (rv != 0) {
		msgpack_zone_destroy(&c->zone);
		free(c);
		return rv;
	}
	p += args_len;
	c->msg.kind = RPC_MSG_REQUEST;
	c->msg.args = obj;
	memcpy(p, op, op_len);
	c->msg.op = (struct ing_str){p, (uint32_t)op_len};
	p += op_len;
	if (token_len > 0)
		memcpy(p, token, token_len);
	c->msg.token = (struct ing_str){token_len > 0 ? p : NULL, (uint32_t)token_len};
	p += token_len;
	if (rid_len > 0)
		memcpy(p, request_id, rid_len);
	c->msg.request_id = (struct ing_str){rid_len > 0 ? p : NULL, (uint32_t)rid_len};
	c->len = len;
	c->local = ops;
	c->local_data = data;
	c->started_ns = uv_hrtime();
	c->peer.local = true; /* no TLS, no identity */
	snprintf(c->peer.address, sizeof(c->peer.address), "local");
	*out = c;
	return 0;
}

void rpc_call_local_abandon(struct rpc_call *c)
{
	if (c->local == NULL || c->local_gone)
		return;
	c->local_gone = true;
	void (*cb)(struct rpc_call *, void *) = c->abandon_cb;
	c->abandon_cb = NULL;
	if (cb != NULL)
		cb(c, c->abandon_data);
}

void rpc_call_observe(struct rpc_call *c,
                      void (*cb)(void *data, struct ing_str op, int code, uint64_t elapsed_ns),
                      void *data)
{
	c->observe = cb;
	c->observe_data = data;
}
