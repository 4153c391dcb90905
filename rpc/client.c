/*
 * client.c - requests over one pipelined connection, with failover between
 * endpoints, retries and deadlines (see client.h, docs/protocol.md).
 *
 * Objects and ownership:
 *   client  -- owns one timer, the current connection (at most one) and
 *              every pending request.  Freed once rpc_client_close was
 *              called, its timer is closed and no connection object is left;
 *              the pending requests fail just before.
 *   cconn   -- one TCP connection to one endpoint; owns its uv_tcp_t, its
 *              input buffer and, with TLS, its session (common/tls.h);
 *              freed in the handle's close callback.  While a
 *              connection is closing it stays the client's current one, so
 *              no second connection is opened before the first's pending
 *              requests have been taken back.
 *   pending -- the private state of one rpc_request: its encoded frame
 *              (request id and wire id fixed at rpc_client_call, so every
 *              retry sends the same bytes), deadline and retry state.
 *
 * A pending request is in one of three states:
 *   QUEUED  -- waiting for a connected connection; sent by client_pump;
 *   SENT    -- written on a connection, indexed by wire id in a hash table;
 *   BACKOFF -- the server said unavailable/not_leader; QUEUED again at
 *              retry_at (50 ms doubling to 500 ms).
 * It leaves every state when its deadline passes (ING_ETIMEOUT).  A reply
 * that arrives for a request that already timed out is ignored.
 *
 * Failover: when a connection ends, its SENT requests go back to QUEUED
 * (or fail, with RPC_NO_RETRY) and the next connection goes to the next
 * endpoint.  An endpoint that fails (see client.h) is added to the "tried"
 * message; when as many endpoints failed in a row as there are, every
 * queued request fails with ING_EUNAVAILABLE and that message.  A frame
 * received resets the count; the endpoint that delivered it is where the
 * next sweep starts.
 *
 * Time: one timer for the whole client, armed for the earliest of the
 * deadlines, retry times and the connect deadline; when it fires the whole
 * list is scanned.  Completing a request never re-arms it (a spurious
 * wake-up is cheap), so the cost per request stays O(1) on the reply path.
 *
 * TLS: after the TCP connect the session's handshake runs over the
 * connection (the server's certificate must name the endpoint's IP); the
 * connection counts as connected, and requests are written, only once it
 * is done, so connect_timeout_ms covers both.  Ciphertext is read into one
 * buffer per client and decrypted at once into the frame reader; frames are
 * encrypted as they are written.  The first bytes of a connection are
 * looked at before anything else (rpc_sniff): a peer that is not an ingot
 * server of the expected kind fails the endpoint with a reason saying what
 * it is.
 *
 * Writing: rpc_client_call only queues; a uv_check handle (right after the
 * loop's I/O callbacks) writes every queued frame in one write, and with
 * TLS one SSL_write, once per loop iteration, so the calls a caller makes
 * from a batch of replies leave together (a uv_idle handle keeps the poll
 * from blocking meanwhile).
 *
 * Callbacks never run inside rpc_client_call.  A callback may call
 * rpc_client_call or rpc_client_close; every loop that runs callbacks first
 * moves the affected requests to a private list, so that re-entry cannot
 * disturb it.
 */
#include "rpc/client.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/log.h"
#include "common/mp.h"
#include "rpc/frame.h"

#define HASH_BUCKETS     1024u
#define CIPHER_CHUNK     (64u * 1024u)
#define BACKOFF_FIRST_MS 50u
#define BACKOFF_MAX_MS   500u
#define ENDPOINT_NAME    32

enum pending_state { P_QUEUED, P_SENT, P_BACKOFF };

struct cconn;

struct rpc_pending {
	struct rpc_request *r;
	struct rpc_client *client;
	struct rpc_pending *prev, *next;   /* client's list, in call order */
	struct rpc_pending *hprev, *hnext; /* hash chain while SENT */
	enum pending_state state;
	struct cconn *conn; /* while SENT */
	unsigned flags;
	uint64_t id;         /* wire id */
	unsigned timeout_ms; /* this call's, from rpc_client_call_within */
	uint64_t deadline_ms;
	uint64_t retry_at_ms;
	unsigned backoff_ms;
	int last_code;
	char last_error[ING_ERROR_MSG_MAX];
	char request_id[RPC_REQUEST_ID_MAX + 1];
	size_t frame_len;
	char *frame;
};

struct cconn {
	uv_tcp_t tcp;
	uv_connect_t connect;
	struct rpc_client *client;
	unsigned ep;
	struct rpc_reader in;
	msgpack_zone zone;
	uint64_t connect_deadline_ms;
	struct ing_tls_session *tls; /* NULL: plaintext */
	bool tcp_connected;
	bool connected; /* TCP connected and, with TLS, the handshake done */
	bool closing;
	bool framed;      /* any frame arrived (the peer speaks ingot) */
	bool sniffed;     /* TLS: the first bytes were looked at */
	bool got_frame;   /* a real reply or event arrived */
	bool had_pending; /* requests were outstanding when it ended */
	char reason[200]; /* why it ended */
};

struct rpc_client {
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_check_t pumper;    /* sends what calls queued, once per loop iteration */
	uv_idle_t unblock;    /* active while pump_due: the poll must not block */
	unsigned aux_handles; /* pumper and unblock, not yet closed */
	bool pump_due;
	uint64_t timer_due_ms; /* 0: not armed */
	struct sockaddr_in *eps;
	char (*ep_names)[ENDPOINT_NAME];
	unsigned neps;
	unsigned ep;      /* where the next connection goes */
	unsigned good_ep; /* the last endpoint that delivered a frame */
	unsigned fails;   /* endpoints failed in a row */
	char tried[ING_ERROR_MSG_MAX];
	size_t max_frame_bytes;
	unsigned timeout_ms;
	unsigned connect_timeout_ms;
	char *token;
	struct ing_tls *tls;
	char *cipher_in; /* TLS: the one read buffer, CIPHER_CHUNK bytes */
	struct cconn *conn;
	unsigned nconns; /* connection objects not yet freed */
	struct rpc_pending *head, *tail;
	struct rpc_pending *buckets[HASH_BUCKETS];
	uint64_t next_id;
	bool closing;
	bool timer_closed;
	void (*close_cb)(void *data);
	void *close_data;
};

static void client_pump(struct rpc_client *c);
static void client_maybe_free(struct rpc_client *c);
static void conn_fail(struct cconn *conn, const char *reason);

/* ---- pending requests -------------------------------------------------- */

static void hash_remove(struct rpc_client *c, struct rpc_pending *p)
{
	if (p->state != P_SENT)
		return;
	if (p->hprev != NULL)
		p->hprev->hnext = p->hnext;
	else
		c->buckets[p->id % HASH_BUCKETS] = p->hnext;
	if (p->hnext != NULL)
		p->hnext->hprev = p->hprev;
	p->hprev = p->hnext = NULL;
	p->conn = NULL;
}

static void hash_insert(struct rpc_client *c, struct rpc_pending *p)
{
	struct rpc_pending **b = &c->buckets[p->id % HASH_BUCKETS];
	p->hprev = NULL;
	p->hnext = *b;
	if (*b != NULL)
		(*b)->hprev = p;
	*b = p;
}

static struct rpc_pending *hash_find(struct rpc_client *c, uint64_t id)
{
	for (struct rpc_pending *p = c->buckets[id % HASH_BUCKETS]; p != NULL; p = p->hnext) {
		if (p->id == id)
			return p;
	}
	return NULL;
}

/* Takes p out of every index of the client. */
static void pending_unlink(struct rpc_pending *p)
{
	struct rpc_client *c = p->client;
	hash_remove(c, p);
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		c->head = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		c->tail = p->prev;
	p->prev = p->next = NULL;
}

/* Runs the callback of an unlinked request, then frees its state. */
static void pending_finish(struct rpc_pending *p, int status, const struct ing_error *err,
                           const msgpack_object *result)
{
	struct rpc_request *r = p->r;
	r->cb(r, status, err, result);
	/* r may be gone or reused: only p is ours. */
	free(p->frame);
	free(p);
}

/* A private list of unlinked requests that all end the same way. */
struct doomed {
	struct rpc_pending *head, *tail;
};

static void doom(struct doomed *d, struct rpc_pending *p)
{
	pending_unlink(p);
	if (d->tail != NULL)
		d->tail->next = p;
	else
		d->head = p;
	d->tail = p;
}

static void doomed_finish(struct doomed *d, int code, const char *msg)
{
	struct ing_error err;
	ing_error_set(&err, code, "%s", msg);
	while (d->head != NULL) {
		struct rpc_pending *p = d->head;
		d->head = p->next;
		p->next = NULL;
		pending_finish(p, code, &err, NULL);
	}
	d->tail = NULL;
}

/* ---- timer ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void timer_arm(struct rpc_client *c, uint64_t when_ms)
{
	if (c->closing)
		return;
	if (c->timer_due_ms != 0 && c->timer_due_ms <= when_ms)
		return;
	uint64_t now = uv_now(c->loop);
	c->timer_due_ms = when_ms;
	uv_timer_start(&c->timer, on_timer, when_ms > now ? when_ms - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct rpc_client *c = t->data;
	uint64_t now = uv_now(c->loop);
	uint64_t next = 0;
	struct rpc_pending *expired = NULL, **tail = &expired;

	c->timer_due_ms = 0;
	if (c->conn != NULL && !c->conn->connected && !c->conn->closing) {
		if (now >= c->conn->connect_deadline_ms) {
			char reason[64];
			snprintf(reason, sizeof(reason), "no connection within %u ms",
			         c->connect_timeout_ms);
			conn_fail(c->conn, reason);
		} else {
			next = c->conn->connect_deadline_ms;
		}
	}
	for (struct rpc_pending *p = c->head, *n; p != NULL; p = n) {
		n = p->next;
		if (now >= p->deadline_ms) {
			pending_unlink(p);
			*tail = p;
			tail = &p->next;
			continue;
		}
		if (p->state == P_BACKOFF && now >= p->retry_at_ms)
			p->state = P_QUEUED;
		uint64_t due = p->state == P_BACKOFF && p->retry_at_ms < p->deadline_ms
		                   ? p->retry_at_ms
		                   : p->deadline_ms;
		if (next == 0 || due < next)
			next = due;
	}
	if (next != 0)
		timer_arm(c, next);
	while (expired != NULL) {
		struct rpc_pending *p = expired;
		expired = p->next;
		p->next = NULL;
		struct ing_error err;
		if (p->last_code != 0)
			ing_error_set(&err, ING_ETIMEOUT, "no reply within %u ms (last error: %s)",
			              p->timeout_ms, p->last_error);
		else
			ing_error_set(&err, ING_ETIMEOUT, "no reply within %u ms", p->timeout_ms);
		pending_finish(p, ING_ETIMEOUT, &err, NULL);
	}
	client_pump(c);
}

/* ---- connections ------------------------------------------------------- */

static void tried_add(struct rpc_client *c, const char *name, const char *reason)
{
	size_t n = strlen(c->tried);
	snprintf(c->tried + n, sizeof(c->tried) - n, "%s%s (%s)",
	         n == 0 ? "could not connect to " : ", ", name, reason);
}

static void on_conn_close(uv_handle_t *h)
{
	struct cconn *conn = h->data;
	struct rpc_client *c = conn->client;
	struct doomed lost = {NULL, NULL}, unreachable = {NULL, NULL};
	char lost_msg[ING_ERROR_MSG_MAX];

	if (c->conn == conn)
		c->conn = NULL;
	snprintf(lost_msg, sizeof(lost_msg), "connection to %s lost (%s)", c->ep_names[conn->ep],
	         conn->reason);
	for (struct rpc_pending *p = c->head, *n; p != NULL; p = n) {
		n = p->next;
		if (p->state != P_SENT || p->conn != conn)
			continue;
		conn->had_pending = true;
		if ((p->flags & RPC_NO_RETRY) && !c->closing) {
			doom(&lost, p);
		} else {
			hash_remove(c, p);
			p->state = P_QUEUED;
			p->last_code = ING_EUNAVAILABLE;
			snprintf(p->last_error, sizeof(p->last_error), "%s", lost_msg);
		}
	}
	if (!c->closing && (!conn->connected || conn->had_pending)) {
		c->ep = (conn->ep + 1) % c->neps;
		if (!conn->got_frame) {
			c->fails++;
			tried_add(c, c->ep_names[conn->ep], conn->reason);
			ING_LOG_DEBUG("rpc endpoint failed endpoint=%s reason=\"%s\"",
			              c->ep_names[conn->ep], conn->reason);
		}
		if (c->fails >= c->neps) {
			for (struct rpc_pending *p = c->head, *n; p != NULL; p = n) {
				n = p->next;
				if (p->state == P_QUEUED)
					doom(&unreachable, p);
			}
			c->fails = 0;
			c->ep = c->good_ep;
		}
	}
	char tried[ING_ERROR_MSG_MAX];
	snprintf(tried, sizeof(tried), "%s", c->tried);
	if (c->fails == 0)
		c->tried[0] = '\0';
	rpc_reader_free(&conn->in);
	msgpack_zone_destroy(&conn->zone);
	ing_tls_session_free(conn->tls);
	free(conn);
	c->nconns--;

	doomed_finish(&lost, ING_EUNAVAILABLE, lost_msg);
	doomed_finish(&unreachable, ING_EUNAVAILABLE, tried);
	client_pump(c);
	client_maybe_free(c);
}

/* Ends a connection: the requests on it are taken back in on_conn_close. */
static void conn_fail(struct cconn *conn, const char *reason)
{
	if (conn->closing)
		return;
	conn->closing = true;
	if (conn->reason[0] == '\0')
		snprintf(conn->reason, sizeof(conn->reason), "%s", reason);
	uv_close((uv_handle_t *)&conn->tcp, on_conn_close);
}

struct wreq {
	uv_write_t req;
	struct cconn *conn;
	char data[];
};

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = req->data;
	struct cconn *conn = w->conn;
	free(w);
	if (status < 0)
		conn_fail(conn, uv_strerror(status));
}

static int conn_write_raw(struct cconn *conn, const char *data, size_t len)
{
	struct wreq *w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return ING_ENOMEM;
	memcpy(w->data, data, len);
	w->conn = conn;
	w->req.data = w;
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
	int rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_write);
	if (rv != 0) {
		free(w);
		conn_fail(conn, uv_strerror(rv));
		return ing_err_from_uv(rv);
	}
	return 0;
}

/* TLS: sends the ciphertext the session has ready. */
static int conn_tls_flush(struct cconn *conn)
{
	char *data;
	size_t len;
	if (ing_tls_session_take(conn->tls, &data, &len) != 0) {
		conn_fail(conn, "out of memory");
		return ING_ENOMEM;
	}
	int rv = len == 0 ? 0 : conn_write_raw(conn, data, len);
	free(data);
	return rv;
}

static int conn_write(struct cconn *conn, const char *data, size_t len)
{
	if (conn->tls == NULL)
		return conn_write_raw(conn, data, len);
	struct ing_error err;
	int rv = ing_tls_session_write(conn->tls, data, len, &err);
	if (rv != 0) {
		char reason[200];
		snprintf(reason, sizeof(reason), "TLS: %.180s", err.msg);
		conn_fail(conn, reason);
		return rv;
	}
	return conn_tls_flush(conn);
}

/* The reason for a peer whose first bytes are no ingot frame. */
static void stranger_reason(const char *p, size_t n, char *buf, size_t cap)
{
	char line[64];
	switch (rpc_sniff(p, n)) {
	case RPC_SNIFF_HTTP:
		rpc_sniff_line(p, n, line, sizeof(line));
		snprintf(buf, cap, "not an ingot server: it answered like an HTTP server (\"%s\")",
		         line);
		break;
	case RPC_SNIFF_TLS:
		snprintf(buf, cap,
		         "the server speaks TLS: give the cluster CA with --cacert (INGOT_CACERT)");
		break;
	default: {
		const unsigned char *u = (const unsigned char *)p;
		snprintf(buf, cap,
		         "not an ingot server (its first bytes, %02x %02x %02x %02x, are "
		         "no ingot frame)",
		         n > 0 ? u[0] : 0, n > 1 ? u[1] : 0, n > 2 ? u[2] : 0, n > 3 ? u[3] : 0);
		break;
	}
	}
}

static void conn_handle_frame(struct cconn *conn, const char *body, size_t len)
{
	struct rpc_client *c = conn->client;
	struct rpc_msg m;
	struct ing_error err;
	bool id_known;

	msgpack_zone_clear(&conn->zone);
	int rv = rpc_msg_decode(body, len, &conn->zone, &m, &id_known, &err);
	if (rv == 0 && m.kind == RPC_MSG_REQUEST)
		rv = ing_error_set(&err, ING_EMALFORMED, "the server sent a request");
	if (rv != 0) {
		char reason[160];
		snprintf(reason, sizeof(reason), "bad frame from server: %.120s", err.msg);
		conn_fail(conn, reason);
		return;
	}
	if (m.id == 0) {
		/* A connection-level error; the server closes next. */
		if (m.kind == RPC_MSG_REPLY && m.error_code != 0)
			snprintf(conn->reason, sizeof(conn->reason), "%.*s: %.*s",
			         ING_STR_FMT(m.error_name), ING_STR_FMT(m.error_msg));
		return;
	}
	conn->got_frame = true;
	c->fails = 0;
	c->tried[0] = '\0';
	c->good_ep = conn->ep;
	struct rpc_pending *p = hash_find(c, m.id);
	if (p == NULL)
		return; /* timed out already */
	if (m.kind == RPC_MSG_EVENT) {
		if (p->r->event_cb != NULL)
			p->r->event_cb(p->r, m.result);
		return;
	}
	if (m.error_code == 0) {
		pending_unlink(p);
		pending_finish(p, 0, NULL, m.result);
		return;
	}
	ing_error_set(&err, m.error_code, "%.*s", ING_STR_FMT(m.error_msg));
	if ((m.error_code == ING_EUNAVAILABLE || m.error_code == ING_ENOTLEADER) &&
	    !(p->flags & RPC_NO_RETRY)) {
		hash_remove(c, p);
		p->state = P_BACKOFF;
		p->last_code = m.error_code;
		snprintf(p->last_error, sizeof(p->last_error), "%s: %.200s",
		         ing_err_name(m.error_code), err.msg);
		p->retry_at_ms = uv_now(c->loop) + p->backoff_ms;
		p->backoff_ms =
		    p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
		timer_arm(c, p->retry_at_ms < p->deadline_ms ? p->retry_at_ms : p->deadline_ms);
		return;
	}
	pending_unlink(p);
	pending_finish(p, m.error_code, &err, NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct cconn *conn = h->data;
	(void)suggested;
	if (conn->tls != NULL)
		*buf = uv_buf_init(conn->client->cipher_in, CIPHER_CHUNK);
	else
		rpc_reader_alloc(&conn->in, buf);
}

/* Cuts and handles the frames buffered in the reader. */
static void conn_process(struct cconn *conn)
{
	while (!conn->closing && !conn->client->closing) {
		const char *body;
		size_t len;
		struct ing_error err;
		int rv = rpc_reader_next(&conn->in, &body, &len, &err);
		if (rv == 0)
			break;
		if (rv < 0) {
			char reason[200];
			if (!conn->framed)
				stranger_reason(conn->in.buf + conn->in.pos,
				                rpc_reader_partial(&conn->in), reason,
				                sizeof(reason));
			else
				snprintf(reason, sizeof(reason), "bad frame from server: %.120s",
				         err.msg);
			conn_fail(conn, reason);
			break;
		}
		conn->framed = true;
		conn_handle_frame(conn, body, len);
	}
}

/* TLS: the handshake finished; requests may go now. */
static void conn_tls_established(struct cconn *conn)
{
	conn->connected = true;
	ING_LOG_DEBUG("rpc connected endpoint=%s tls=on", conn->client->ep_names[conn->ep]);
	client_pump(conn->client);
}

/* TLS: ciphertext arrived; decrypt all of it into the reader. */
static void conn_tls_read(struct cconn *conn, const char *p, size_t n)
{
	char reason[200];
	if (!conn->sniffed) {
		conn->sniffed = true;
		if (rpc_sniff(p, n) != RPC_SNIFF_TLS) {
			if (rpc_sniff(p, n) == RPC_SNIFF_INGOT)
				snprintf(reason, sizeof(reason),
				         "the server answered without TLS (an ingot server without "
				         "tls? then leave out --cacert)");
			else
				stranger_reason(p, n, reason, sizeof(reason));
			conn_fail(conn, reason);
			return;
		}
	}
	if (ing_tls_session_input(conn->tls, p, n) != 0) {
		conn_fail(conn, "out of memory");
		return;
	}
	for (;;) {
		uv_buf_t b;
		size_t got;
		struct ing_error err;
		rpc_reader_alloc(&conn->in, &b);
		if (b.base == NULL) {
			conn_fail(conn, "out of memory");
			return;
		}
		int rv = ing_tls_session_read(conn->tls, b.base, b.len, &got, &err);
		if (rv != 0) {
			conn_tls_flush(conn);
			snprintf(reason, sizeof(reason), "TLS: %.180s", err.msg);
			conn_fail(conn, reason);
			return;
		}
		if (got == 0)
			break;
		conn->in.len += got;
	}
	if (conn_tls_flush(conn) != 0)
		return;
	if (!conn->connected && ing_tls_session_established(conn->tls))
		conn_tls_established(conn);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct cconn *conn = stream->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			conn_fail(conn, uv_strerror((int)nread));
		else if (conn->tls != NULL && !conn->connected)
			conn_fail(conn,
			          "connection closed during the TLS handshake (does the server "
			          "speak TLS?)");
		else
			conn_fail(conn, "connection closed by the server");
		return;
	}
	if (conn->tls != NULL)
		conn_tls_read(conn, buf->base, (size_t)nread);
	else
		conn->in.len += (size_t)nread;
	conn_process(conn);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct cconn *conn = req->data;
	if (conn->closing)
		return;
	if (status < 0) {
		conn_fail(conn, uv_strerror(status));
		return;
	}
	struct rpc_client *c = conn->client;
	conn->tcp_connected = true;
	if (c->tls != NULL) {
		char ip[INET_ADDRSTRLEN];
		struct ing_error err;
		inet_ntop(AF_INET, &c->eps[conn->ep].sin_addr, ip, sizeof(ip));
		struct ing_tls_session_options so = {ING_TLS_CONNECT, ip, false};
		size_t got;
		if (ing_tls_session_new(c->tls, &so, &conn->tls, &err) != 0 ||
		    ing_tls_session_read(conn->tls, NULL, 0, &got, &err) != 0) {
			char reason[200];
			snprintf(reason, sizeof(reason), "TLS: %.180s", err.msg);
			conn_fail(conn, reason);
			return;
		}
		if (conn_tls_flush(conn) != 0)
			return;
	}
	int rv = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
	if (rv != 0) {
		conn_fail(conn, uv_strerror(rv));
		return;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	if (c->tls != NULL)
		return; /* connected once the handshake is done */
	conn->connected = true;
	ING_LOG_DEBUG("rpc connected endpoint=%s", c->ep_names[conn->ep]);
	client_pump(c);
}

/* Starts a connection to the current endpoint; failures end up in
 * on_conn_close like any other, never in a callback run from here. */
static void conn_start(struct rpc_client *c)
{
	struct cconn *conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return; /* retried at the next pump; deadlines still run */
	if (!msgpack_zone_init(&conn->zone, 4096)) {
		free(conn);
		return;
	}
	if (uv_tcp_init(c->loop, &conn->tcp) != 0) {
		msgpack_zone_destroy(&conn->zone);
		free(conn);
		return;
	}
	conn->tcp.data = conn;
	conn->connect.data = conn;
	conn->client = c;
	conn->ep = c->ep;
	rpc_reader_init(&conn->in, c->max_frame_bytes);
	c->conn = conn;
	c->nconns++;
	conn->connect_deadline_ms = uv_now(c->loop) + c->connect_timeout_ms;
	int rv = uv_tcp_connect(&conn->connect, &conn->tcp,
	                        (const struct sockaddr *)&c->eps[conn->ep], on_connect);
	if (rv != 0) {
		conn_fail(conn, uv_strerror(rv));
		return;
	}
	timer_arm(c, conn->connect_deadline_ms);
}

/* Sends what is queued, or starts the connection it needs. */
static void client_pump(struct rpc_client *c)
{
	if (c->closing)
		return;
	bool queued = false;
	for (struct rpc_pending *p = c->head; p != NULL && !queued; p = p->next)
		queued = p->state == P_QUEUED;
	if (!queued)
		return;
	if (c->conn == NULL) {
		conn_start(c);
		return;
	}
	struct cconn *conn = c->conn;
	if (!conn->connected || conn->closing)
		return;
	/* Every queued frame in one write (and with TLS one SSL_write): a
	 * failed write ends the connection, which takes them back. */
	struct ing_buf out = {0};
	struct rpc_pending *only = NULL;
	unsigned n = 0;
	for (struct rpc_pending *p = c->head; p != NULL; p = p->next) {
		if (p->state != P_QUEUED)
			continue;
		if (n++ == 0)
			only = p;
		else if (n == 2)
			ing_buf_append(&out, only->frame, only->frame_len);
		if (n >= 2)
			ing_buf_append(&out, p->frame, p->frame_len);
		p->state = P_SENT;
		p->conn = conn;
		hash_insert(c, p);
	}
	if (ing_buf_failed(&out) != 0)
		conn_fail(conn, "out of memory");
	else if (n == 1)
		conn_write(conn, only->frame, only->frame_len);
	else if (n > 1)
		conn_write(conn, out.data, out.len);
	ing_buf_free(&out);
}

/* Once per loop iteration, after the I/O callbacks: the frames of the
 * calls made since are written together. */
static void on_pump(uv_check_t *h)
{
	struct rpc_client *c = h->data;
	uv_idle_stop(&c->unblock);
	if (!c->pump_due)
		return;
	c->pump_due = false;
	client_pump(c);
}

static void on_unblock(uv_idle_t *h)
{
	(void)h; /* only there so that the poll does not block */
}

static void on_aux_close(uv_handle_t *h)
{
	struct rpc_client *c = h->data;
	c->aux_handles--;
	client_maybe_free(c);
}

/* ---- public API -------------------------------------------------------- */

static void client_free(struct rpc_client *c)
{
	free(c->cipher_in);
	free(c->eps);
	free(c->ep_names);
	free(c->token);
	free(c);
}

int rpc_client_new(uv_loop_t *loop, const struct rpc_client_options *o, struct rpc_client **out,
                   struct ing_error *e)
{
	if (o->nendpoints == 0 || o->endpoints == NULL)
		return ing_error_set(e, ING_EINVAL, "no endpoints given");
	if (o->token != NULL && strlen(o->token) > RPC_TOKEN_MAX)
		return ing_error_set(e, ING_EINVAL, "token over %d bytes", RPC_TOKEN_MAX);
	struct rpc_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	c->eps = calloc(o->nendpoints, sizeof(*c->eps));
	c->ep_names = calloc(o->nendpoints, sizeof(*c->ep_names));
	c->token = o->token != NULL ? strdup(o->token) : NULL;
	c->tls = o->tls;
	c->cipher_in = o->tls != NULL ? malloc(CIPHER_CHUNK) : NULL;
	if (c->eps == NULL || c->ep_names == NULL || (o->token != NULL && c->token == NULL) ||
	    (o->tls != NULL && c->cipher_in == NULL)) {
		client_free(c);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < o->nendpoints; i++) {
		int rv = rpc_parse_address(o->endpoints[i], &c->eps[i], e);
		if (rv != 0) {
			client_free(c);
			return rv;
		}
		rpc_format_address(&c->eps[i], c->ep_names[i], ENDPOINT_NAME);
	}
	c->neps = o->nendpoints;
	c->loop = loop;
	c->max_frame_bytes =
	    o->max_frame_bytes != 0 ? o->max_frame_bytes : RPC_DEFAULT_MAX_FRAME_BYTES;
	c->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : RPC_DEFAULT_TIMEOUT_MS;
	c->connect_timeout_ms =
	    o->connect_timeout_ms != 0 ? o->connect_timeout_ms : RPC_DEFAULT_CONNECT_TIMEOUT_MS;
	c->next_id = 1;
	int rv = uv_timer_init(loop, &c->timer);
	if (rv != 0) {
		client_free(c);
		return ing_error_set(e, ing_err_from_uv(rv), "cannot create a timer: %s",
		                     uv_strerror(rv));
	}
	c->timer.data = c;
	uv_check_init(loop, &c->pumper);
	uv_idle_init(loop, &c->unblock);
	c->pumper.data = c->unblock.data = c;
	c->aux_handles = 2;
	uv_check_start(&c->pumper, on_pump);
	uv_unref((uv_handle_t *)&c->pumper);
	uv_unref((uv_handle_t *)&c->unblock);
	*out = c;
	return 0;
}

static void client_maybe_free(struct rpc_client *c)
{
	if (!c->closing || !c->timer_closed || c->aux_handles > 0 || c->nconns > 0)
		return;
	struct doomed d = {NULL, NULL};
	while (c->head != NULL)
		doom(&d, c->head);
	doomed_finish(&d, ING_EUNAVAILABLE, "client closed");
	void (*cb)(void *) = c->close_cb;
	void *data = c->close_data;
	client_free(c);
	if (cb != NULL)
		cb(data);
}

static void on_timer_close(uv_handle_t *h)
{
	struct rpc_client *c = h->data;
	c->timer_closed = true;
	client_maybe_free(c);
}

void rpc_client_close(struct rpc_client *c, void (*cb)(void *data), void *data)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_cb = cb;
	c->close_data = data;
	uv_close((uv_handle_t *)&c->timer, on_timer_close);
	uv_close((uv_handle_t *)&c->pumper, on_aux_close);
	uv_close((uv_handle_t *)&c->unblock, on_aux_close);
	if (c->conn != NULL)
		conn_fail(c->conn, "client closed");
}

/*
 * "c-", 12 hex digits of the wall clock in ms, then 20 random hex digits:
 * 34 characters.  The time first makes ids from every client sort in time
 * order, so the nodes' dedupe table (keyed by request id) grows at its end
 * instead of on a random B-tree page per write (docs/performance.md); the
 * 80 random bits keep ids unique.
 */
static void random_request_id(char *out)
{
	unsigned char raw[16];
	uv_timeval64_t tv;
	uint64_t ms = 0;

	if (uv_gettimeofday(&tv) == 0)
		ms = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
	for (int i = 5; i >= 0; i--, ms >>= 8)
		raw[i] = (unsigned char)ms;
	if (RAND_bytes(raw + 6, sizeof(raw) - 6) != 1) {
		/* Never expected after OpenSSL seeded itself; fall back to
		 * something unique to this process rather than fail a write. */
		static uint64_t counter;
		uint64_t a = (uint64_t)uv_hrtime(), b = ++counter ^ (uint64_t)uv_os_getpid();
		memcpy(raw + 6, &a, 4);
		memcpy(raw + 10, &b, 6);
	}
	out[0] = 'c';
	out[1] = '-';
	ing_hex_encode(raw, sizeof(raw), out + 2);
}

int rpc_client_call(struct rpc_client *c, struct rpc_request *r, const char *op, const void *args,
                    size_t args_len, unsigned flags)
{
	return rpc_client_call_within(c, r, op, args, args_len, flags, 0);
}

int rpc_client_call_within(struct rpc_client *c, struct rpc_request *r, const char *op,
                           const void *args, size_t args_len, unsigned flags, unsigned timeout_ms)
{
	if (c->closing)
		return ING_EUNAVAILABLE;
	if (r == NULL || r->cb == NULL || op == NULL || op[0] == '\0' || strlen(op) > RPC_OP_MAX)
		return ING_EINVAL;
	if (args != NULL && args_len > 0 && (((const unsigned char *)args)[0] & 0xf0) != 0x80 &&
	    ((const unsigned char *)args)[0] != 0xde && ((const unsigned char *)args)[0] != 0xdf)
		return ING_EINVAL; /* not a map: fixmap, map16 or map32 */
	if (r->request_id != NULL && !rpc_request_id_valid(ing_str_c(r->request_id)))
		return ING_EINVAL;

	struct rpc_pending *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return ING_ENOMEM;
	if (r->request_id != NULL)
		snprintf(p->request_id, sizeof(p->request_id), "%s", r->request_id);
	else if (flags & RPC_WRITE)
		random_request_id(p->request_id);
	p->id = c->next_id++;
	struct mp_out o;
	mp_out_init(&o);
	int rv = rpc_encode_request(&o, c->max_frame_bytes, p->id, op, args, args_len, c->token,
	                            p->request_id);
	if (rv != 0) {
		mp_out_free(&o);
		free(p);
		return rv;
	}
	p->frame = o.data;
	p->frame_len = o.len;
	p->r = r;
	p->client = c;
	p->flags = flags;
	p->state = P_QUEUED;
	p->backoff_ms = BACKOFF_FIRST_MS;
	p->timeout_ms = timeout_ms != 0 ? timeout_ms : c->timeout_ms;
	p->deadline_ms = uv_now(c->loop) + p->timeout_ms;
	p->prev = c->tail;
	if (c->tail != NULL)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	r->pending_ = p;
	timer_arm(c, p->deadline_ms);
	/* Sent from the check handle with every call made until then. */
	if (!c->pump_due) {
		c->pump_due = true;
		uv_idle_start(&c->unblock, on_unblock);
	}
	return 0;
}

const char *rpc_request_get_id(const struct rpc_request *r)
{
	return r->pending_ != NULL ? r->pending_->request_id : "";
}

/* ---- blocking helper --------------------------------------------------- */

struct sync_call {
	struct rpc_client *client;
	msgpack_zone *zone;
	msgpack_object *result;
	struct ing_error *err;
	int status;
};

static void sync_cb(struct rpc_request *r, int status, const struct ing_error *err,
                    const msgpack_object *result)
{
	struct sync_call *s = r->data;
	s->status = status;
	if (status == 0)
		s->status = mp_copy_to_zone(result, s->zone, s->result, s->err);
	else if (s->err != NULL)
		*s->err = *err;
	rpc_client_close(s->client, NULL, NULL);
}

int rpc_call_sync(const struct rpc_client_options *o, const char *op, const void *args,
                  size_t args_len, unsigned flags, msgpack_zone *z, msgpack_object *result,
                  struct ing_error *err)
{
	uv_loop_t loop;
	struct sync_call s = {NULL, z, result, err, 0};
	struct rpc_request r;
	int rv = uv_loop_init(&loop);
	if (rv != 0)
		return ing_error_set(err, ing_err_from_uv(rv), "cannot create a loop: %s",
		                     uv_strerror(rv));
	rv = rpc_client_new(&loop, o, &s.client, err);
	if (rv == 0) {
		memset(&r, 0, sizeof(r));
		r.data = &s;
		r.cb = sync_cb;
		rv = rpc_client_call(s.client, &r, op, args, args_len, flags);
		if (rv != 0) {
			ing_error_set(err, rv, "cannot send '%s': %s", op, ing_err_msg(rv));
			rpc_client_close(s.client, NULL, NULL);
		}
		uv_run(&loop, UV_RUN_DEFAULT);
		if (rv == 0)
			rv = s.status;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		ING_LOG_ERROR("rpc_call_sync: loop did not close cleanly");
	return rv;
}
