/*
 * server.c - accepting connections, cutting frames into calls, replies,
 * events and backpressure (see server.h, docs/protocol.md).
 *
 * Objects and ownership:
 *   server -- owns the listener and the list of connections.  It frees
 *             itself once rpc_server_close was called, the listener's close
 *             callback ran and the last connection is gone.
 *   conn   -- owns a uv_tcp_t, its input buffer and the list of its
 *             outstanding calls.  Freed in the tcp handle's close callback,
 *             never earlier, so a read callback (and a handler called from
 *             it) can always go on using the conn after asking for its end.
 *   call   -- owns a copy of its frame and the msgpack zone the request was
 *             decoded into; the handler owns the call until it replies.  A
 *             call outlives its connection ("dead": conn == NULL) when the
 *             connection goes first; the reply then only frees it.
 *   wreq   -- one queued write and its bytes; freed in its write callback.
 *
 * Connection states: open (reading unless paused) -> closing.  Closing
 * starts either at once (EOF, read/write error, slow consumer, server
 * close: uv_close) or after a last error reply (bad input: the reply is
 * queued, then uv_shutdown flushes it, then uv_close).  Once closing, no
 * frame is dispatched and replies are dropped.  The close callback detaches
 * every outstanding call and runs its abandon callback -- on the loop, after
 * every callback of the connection has returned.
 *
 * Backpressure: a connection is paused (uv_read_stop) while its queued
 * output is at least max_output_bytes or it has max_calls outstanding calls,
 * and resumed when the last write or reply brings it under both.  Frames
 * already buffered are dispatched on resume.  Dispatching is guarded
 * against re-entry (a handler replying synchronously resumes the
 * connection from inside the dispatch loop).
 */
#include "rpc/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/mp.h"
#include "common/text.h"
#include "rpc/frame.h"

#define DEFAULT_MAX_CONNECTIONS  1024u
#define DEFAULT_MAX_OUTPUT_BYTES (8u * 1024u * 1024u)
#define DEFAULT_MAX_CALLS        4096u
#define DEFAULT_MAX_FRAME_BYTES  (17u * 1024u * 1024u) /* = RPC_DEFAULT_MAX_FRAME_BYTES */
#define SLOW_CONSUMER_FACTOR     4
#define CALL_ZONE_CHUNK_BYTES    1024
#define LISTEN_BACKLOG           128

struct conn;

struct rpc_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	rpc_handler handler;
	void *data;
	size_t max_frame_bytes;
	size_t max_output_bytes;
	unsigned max_connections;
	unsigned max_calls;
	char address[32];
	uint16_t port;
	struct conn *conns; /* every conn not yet freed, closing ones too */
	unsigned nconns;
	unsigned nactive; /* conns counted against max_connections */
	bool closing;
	bool listener_closed;
	void (*close_cb)(void *data);
	void *close_data;
};

struct conn {
	uv_tcp_t tcp;
	uv_shutdown_t shutdown;
	struct rpc_server *server;
	struct conn *prev, *next;
	struct rpc_reader in;
	struct rpc_call *calls;
	unsigned ncalls;
	size_t out_bytes; /* queued in uv_write, not yet written */
	bool reading;
	bool processing;
	bool closing;
	bool counted;
	char peer[32];
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
	void (*abandon_cb)(struct rpc_call *c, void *data);
	void *abandon_data;
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
	if (!s->closing || !s->listener_closed || s->nconns > 0)
		return;
	void (*cb)(void *) = s->close_cb;
	void *data = s->close_data;
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

static void call_free(struct rpc_call *c)
{
	struct conn *conn = c->conn;
	call_unlink(c);
	msgpack_zone_destroy(&c->zone);
	free(c);
	if (conn != NULL)
		conn_update_reading(conn);
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

struct ing_str rpc_call_request_id(const struct rpc_call *c)
{
	return c->msg.request_id;
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
			ING_LOG_DEBUG("rpc write failed peer=%s error=%s", conn->peer,
			              uv_strerror(status));
		conn_close(conn);
		return;
	}
	conn_update_reading(conn);
}

/* Queues the frame in `o` (taking its memory; `o` is left empty). */
static int conn_send(struct conn *conn, struct mp_out *o)
{
	struct wreq *w = malloc(sizeof(*w));
	if (w == NULL) {
		mp_out_free(o);
		conn_close(conn);
		return ING_ENOMEM;
	}
	w->conn = conn;
	w->len = o->len;
	w->data = o->data;
	w->req.data = w;
	mp_out_init(o);
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
	int rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_write);
	if (rv != 0) {
		free(w->data);
		free(w);
		conn_close(conn);
		return ing_err_from_uv(rv);
	}
	conn->out_bytes += w->len;
	ing_counter_add(metrics.bytes_out, (double)w->len);
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
	rpc_reader_free(&conn->in);
	ING_LOG_DEBUG("rpc connection closed peer=%s", conn->peer);
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

/* Bad input: one last error reply, flushed, then the end. */
static void conn_fail(struct conn *conn, uint64_t id, int code, const char *msg)
{
	if (conn->closing)
		return;
	ing_counter_inc(
	    metrics.refused[code == ING_ETOOBIG ? REFUSED_TOO_LARGE : REFUSED_MALFORMED]);
	ING_LOG_WARN("rpc closing connection peer=%s error=%s msg=\"%s\"", conn->peer,
	             ing_err_name(code), msg);
	conn_send_error(conn, id, code, msg);
	if (conn->closing)
		return;
	conn->closing = true;
	if (conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
	conn->shutdown.data = conn;
	if (uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, on_shutdown) != 0)
		conn_close(conn);
}

/* ---- reading ----------------------------------------------------------- */

/* Decodes one frame into a call and hands it to the handler. */
static void conn_dispatch(struct conn *conn, const char *body, size_t len)
{
	struct rpc_server *s = conn->server;
	struct ing_error err;
	bool id_known;

	struct rpc_call *c = malloc(sizeof(*c) + len);
	if (c == NULL) {
		conn_fail(conn, 0, ING_ENOMEM, "out of memory for a request");
		return;
	}
	memset(c, 0, sizeof(*c));
	if (!msgpack_zone_init(&c->zone, CALL_ZONE_CHUNK_BYTES)) {
		free(c);
		conn_fail(conn, 0, ING_ENOMEM, "out of memory for a request");
		return;
	}
	memcpy(c->frame, body, len);
	c->len = len;
	c->started_ns = uv_hrtime();
	int rv = rpc_msg_decode(c->frame, len, &c->zone, &c->msg, &id_known, &err);
	if (rv == 0 && c->msg.kind != RPC_MSG_REQUEST)
		rv = ing_error_set(&err, ING_EMALFORMED, "expected a request (type 0), got a %s",
		                   c->msg.kind == RPC_MSG_REPLY ? "reply" : "event");
	if (rv == 0 && c->msg.id == 0)
		rv = ing_error_set(&err, ING_EMALFORMED, "request id 0 is reserved");
	if (rv != 0) {
		uint64_t id = id_known ? c->msg.id : 0;
		msgpack_zone_destroy(&c->zone);
		free(c);
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
	s->handler(s->data, c);
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
		int rv = rpc_reader_next(&conn->in, &body, &len, &err);
		if (rv == 0)
			break;
		if (rv < 0) {
			conn_fail(conn, 0, rv, err.msg);
			break;
		}
		conn_dispatch(conn, body, len);
	}
	conn->processing = false;
	conn_update_reading(conn);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *conn = h->data;
	(void)suggested;
	rpc_reader_alloc(&conn->in, buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *conn = stream->data;
	(void)buf;
	if (nread > 0) {
		conn->in.len += (size_t)nread;
		ing_counter_add(metrics.bytes_in, (double)nread);
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
		ING_LOG_DEBUG("rpc read failed peer=%s error=%s", conn->peer,
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
		/* Frames that arrived before the pause. */
		conn_process(conn);
	} else if (!want && conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
}

/* ---- accepting --------------------------------------------------------- */

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
	rpc_reader_init(&conn->in, s->max_frame_bytes);
	conn->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = conn;
	s->conns = conn;
	s->nconns++;
	strcpy(conn->peer, "?");
	if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
		conn_close(conn);
		return;
	}
	struct sockaddr_storage peer;
	int peer_len = sizeof(peer);
	if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&peer, &peer_len) == 0 &&
	    peer.ss_family == AF_INET)
		rpc_format_address((const struct sockaddr_in *)&peer, conn->peer,
		                   sizeof(conn->peer));
	if (s->nactive >= s->max_connections) {
		char msg[96];
		snprintf(msg, sizeof(msg), "too many connections (limit %u)", s->max_connections);
		ing_counter_inc(metrics.refused[REFUSED_CONNECTIONS]);
		conn_fail(conn, 0, ING_EUNAVAILABLE, msg);
		return;
	}
	conn->counted = true;
	s->nactive++;
	ing_gauge_add(metrics.connections, 1);
	uv_tcp_nodelay(&conn->tcp, 1);
	ING_LOG_DEBUG("rpc connection accepted peer=%s", conn->peer);
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
	s->max_frame_bytes = o->max_frame_bytes != 0 ? o->max_frame_bytes : DEFAULT_MAX_FRAME_BYTES;
	s->max_output_bytes =
	    o->max_output_bytes != 0 ? o->max_output_bytes : DEFAULT_MAX_OUTPUT_BYTES;
	s->max_connections = o->max_connections != 0 ? o->max_connections : DEFAULT_MAX_CONNECTIONS;
	s->max_calls = o->max_calls != 0 ? o->max_calls : DEFAULT_MAX_CALLS;
	snprintf(s->address, sizeof(s->address), "%s", o->address);

	rv = uv_tcp_init(loop, &s->listener);
	if (rv != 0) {
		free(s);
		return ing_error_set(e, ing_err_from_uv(rv), "cannot listen on %s: %s", o->address,
		                     uv_strerror(rv));
	}
	s->listener.data = s;
	rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
	struct sockaddr_storage bound;
	int bound_len = sizeof(bound);
	if (rv == 0)
		rv = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &bound_len);
	if (rv != 0) {
		/* The handle is released on the loop's next run. */
		s->closing = true;
		uv_close((uv_handle_t *)&s->listener, on_listener_close);
		return ing_error_set(e, ing_err_from_uv(rv), "cannot listen on %s: %s", o->address,
		                     uv_strerror(rv));
	}
	s->port = ntohs(((const struct sockaddr_in *)&bound)->sin_port);
	ING_LOG_INFO("rpc listening address=%s port=%u", o->address, (unsigned)s->port);
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
			char msg[128];
			snprintf(msg, sizeof(msg), "reply of %zu bytes exceeds the limit of %zu",
			         len, max);
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
		ING_LOG_WARN("rpc closing slow consumer peer=%s queued_bytes=%zu", conn->peer,
		             conn->out_bytes);
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
