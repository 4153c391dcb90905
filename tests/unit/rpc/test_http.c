/*
 * test_http.c - the HTTP server (rpc/http): a real server on 127.0.0.1
 * (port chosen by the kernel) on the test's loop, and real clients over
 * TCP (and TLS 1.3 through OpenSSL) in a second thread with blocking
 * sockets, so the loop thread only serves.  Every test is bounded in time
 * and ends with the server closed and the loop closing cleanly.
 *
 * The client side speaks raw HTTP/1.1 from a small reader below (test
 * code: status line, headers, Content-Length or chunked bodies).  Results
 * are recorded by the client thread and checked by the main thread.
 *
 * Routes of the service:
 *   GET  /hello            200 {"hello":"world"}
 *   GET  /items/{id}       200 {"id":ID,"q":QUERY q or null,"h":header X-Test}
 *   POST /echo             200 the JSON body back; errors from rpc_http_req_json
 *   GET  /later            answered 50 ms later from a timer
 *   GET  /error/{code}     rpc_http_reply_error(code) with a non-UTF-8 message
 *   GET  /stream           3 JSON lines 20 ms apart, then the end
 *   GET  /quiet            a stream with a 50 ms heartbeat and no data; its
 *                          abandon callback ends it
 *   GET  /flood            a stream written on every 5 ms tick until cut off
 *   GET  /hold             never answered until the server closed (abandon)
 *   GET  /big              4 MiB streamed in 64 KiB pieces, each written when
 *                          the previous one drained (rpc_http_stream_on_drain)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "rpc/http.h"
#include "tests/lib/testutil.h"

/* ---- the service (loop thread) ------------------------------------------ */

struct env {
	uv_loop_t loop;
	uv_timer_t ticker; /* keeps UV_RUN_ONCE from sleeping for ever */
	struct rpc_http_server *server;
	bool closed;
	int fds_before;
	/* /later */
	uv_timer_t later_timer;
	struct rpc_http_req *later;
	/* /stream */
	uv_timer_t stream_timer;
	struct rpc_http_req *stream;
	int stream_sent;
	/* /quiet */
	struct rpc_http_req *quiet;
	int quiet_abandoned;
	/* /flood */
	struct rpc_http_req *flood;
	int flood_writes;
	atomic_int flood_result;
	/* /hold */
	struct rpc_http_req *hold;
	atomic_bool held; /* /hold and /quiet both reached their handlers */
	atomic_bool quieted;
	/* /big */
	size_t big_sent;
	int big_pieces;
	int hold_abandoned;
};

static struct env *g_env;

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static void h_hello(void *data, struct rpc_http_req *r)
{
	(void)data;
	json_t *j = json_pack("{s:s}", "hello", "world");
	rpc_http_reply_json(r, 200, j);
	json_decref(j);
}

static void h_item(void *data, struct rpc_http_req *r)
{
	(void)data;
	const char *q = rpc_http_req_query(r, "q");
	const char *h = rpc_http_req_header(r, "x-test");
	json_t *j = json_pack("{s:s,s:s?,s:s?,s:s}", "id", rpc_http_req_param(r, "id"), "q", q, "h",
	                      h, "method", rpc_http_req_method(r));
	assert_int_equal(rpc_http_add_header(r, "X-Item", "yes"), 0);
	assert_int_equal(rpc_http_add_header(r, "Bad\r\nName", "v"), ING_EINVAL);
	assert_int_equal(rpc_http_add_header(r, "X-Bad", "a\r\nInjected: 1"), ING_EINVAL);
	assert_null(rpc_http_req_param(r, "nope"));
	rpc_http_reply_json(r, 200, j);
	json_decref(j);
}

static void h_echo(void *data, struct rpc_http_req *r)
{
	(void)data;
	json_t *body = NULL;
	struct ing_error e;
	int rv = rpc_http_req_json(r, &body, &e);
	if (rv != 0) {
		rpc_http_reply_error(r, rv, "%s", e.msg);
		return;
	}
	rpc_http_reply_json(r, 200, body);
	json_decref(body);
}

static void on_later(uv_timer_t *t)
{
	struct env *env = t->data;
	rpc_http_reply(env->later, 202, "text/plain", "later\n", 6);
	env->later = NULL;
}

static void h_later(void *data, struct rpc_http_req *r)
{
	struct env *env = data;
	env->later = r;
	uv_timer_start(&env->later_timer, on_later, 50, 0);
}

static void h_error(void *data, struct rpc_http_req *r)
{
	(void)data;
	int code = ing_err_from_name(rpc_http_req_param(r, "code"));
	rpc_http_reply_error(r, code, "bad \xff byte and \"quotes\"");
}

static void on_stream_timer(uv_timer_t *t)
{
	struct env *env = t->data;
	char line[64];
	int n = snprintf(line, sizeof(line), "{\"n\":%d}\n", env->stream_sent++);
	assert_int_equal(rpc_http_stream_write(env->stream, line, (size_t)n), 0);
	if (env->stream_sent == 3) {
		uv_timer_stop(t);
		rpc_http_stream_end(env->stream);
		env->stream = NULL;
	}
}

static void h_stream(void *data, struct rpc_http_req *r)
{
	struct env *env = data;
	assert_int_equal(rpc_http_stream_start(r, 200, "application/x-ndjson", NULL, 0), 0);
	assert_int_equal(rpc_http_stream_start(r, 200, "text/plain", NULL, 0), ING_ECONFLICT);
	env->stream = r;
	env->stream_sent = 0;
	uv_timer_start(&env->stream_timer, on_stream_timer, 20, 20);
}

static void on_quiet_abandon(struct rpc_http_req *r, void *data)
{
	struct env *env = data;
	assert_ptr_equal(r, env->quiet);
	assert_false(rpc_http_req_alive(r));
	assert_int_equal(rpc_http_stream_write(r, "x", 1), ING_EUNAVAILABLE);
	env->quiet_abandoned++;
	rpc_http_stream_end(r);
	env->quiet = NULL;
}

static void h_quiet(void *data, struct rpc_http_req *r)
{
	struct env *env = data;
	assert_int_equal(rpc_http_stream_start(r, 200, "text/event-stream", ": ping\n\n", 50), 0);
	assert_int_equal(rpc_http_req_on_abandon(r, on_quiet_abandon, env), 0);
	env->quiet = r;
	atomic_store(&env->quieted, true);
}

static void on_flood_abandon(struct rpc_http_req *r, void *data)
{
	struct env *env = data;
	rpc_http_stream_end(r);
	env->flood = NULL;
}

static void on_flood_tick(struct env *env)
{
	static char chunk[64 * 1024];
	if (env->flood == NULL || env->flood_result != 0)
		return;
	memset(chunk, 'f', sizeof(chunk));
	chunk[sizeof(chunk) - 1] = '\n';
	int rv = rpc_http_stream_write(env->flood, chunk, sizeof(chunk));
	env->flood_writes++;
	if (rv != 0)
		env->flood_result = rv;
}

static void h_flood(void *data, struct rpc_http_req *r)
{
	struct env *env = data;
	assert_int_equal(rpc_http_stream_start(r, 200, "text/plain", NULL, 0), 0);
	assert_int_equal(rpc_http_req_on_abandon(r, on_flood_abandon, env), 0);
	env->flood = r;
	env->flood_writes = 0;
	env->flood_result = 0;
}

static void on_hold_abandon(struct rpc_http_req *r, void *data)
{
	struct env *env = data;
	assert_ptr_equal(r, env->hold);
	env->hold_abandoned++;
	/* Not answered here: answered after the server is gone. */
}

static void h_hold(void *data, struct rpc_http_req *r)
{
	struct env *env = data;
	env->hold = r;
	atomic_store(&env->held, true);
	assert_int_equal(rpc_http_req_on_abandon(r, on_hold_abandon, env), 0);
}

#define BIG_PIECE (64 * 1024)
#define BIG_TOTAL (4 * 1024 * 1024)

static void on_big_drained(struct rpc_http_req *r, void *data)
{
	struct env *env = data;
	static char piece[BIG_PIECE];
	if (env->big_sent == BIG_TOTAL) {
		rpc_http_stream_end(r);
		return;
	}
	for (size_t i = 0; i < sizeof(piece); i++)
		piece[i] = (char)('a' + (env->big_sent + i) % 26);
	assert_int_equal(rpc_http_stream_write(r, piece, sizeof(piece)), 0);
	env->big_sent += BIG_PIECE;
	env->big_pieces++;
	assert_int_equal(rpc_http_stream_on_drain(r, on_big_drained, env), 0);
}

static void h_big(void *data, struct rpc_http_req *r)
{
	struct env *env = data;
	assert_int_equal(rpc_http_stream_on_drain(r, on_big_drained, env), ING_ECONFLICT);
	assert_int_equal(rpc_http_stream_start(r, 200, "application/octet-stream", NULL, 0), 0);
	env->big_sent = 0;
	assert_int_equal(rpc_http_stream_on_drain(r, on_big_drained, env), 0);
}

static void on_server_closed(void *data)
{
	struct env *env = data;
	env->closed = true;
}

static uint64_t now_ms(struct env *env)
{
	uv_update_time(&env->loop);
	return uv_now(&env->loop);
}

static void run_until_flag(struct env *env, atomic_bool *flag, unsigned limit_ms)
{
	uint64_t end = now_ms(env) + limit_ms;
	while (!atomic_load(flag)) {
		uv_run(&env->loop, UV_RUN_ONCE);
		if (env->flood != NULL)
			on_flood_tick(env);
		if (now_ms(env) > end)
			fail_msg("client not done within %u ms", limit_ms);
	}
}

static void env_start(struct env *env, const struct rpc_http_options *opts)
{
	memset(env, 0, sizeof(*env));
	env->fds_before = tu_count_fds();
	g_env = env;
	assert_int_equal(uv_loop_init(&env->loop), 0);
	uv_timer_init(&env->loop, &env->ticker);
	uv_timer_start(&env->ticker, on_tick, 5, 5);
	uv_timer_init(&env->loop, &env->later_timer);
	uv_timer_init(&env->loop, &env->stream_timer);
	env->later_timer.data = env->stream_timer.data = env;
	struct rpc_http_options o = *opts;
	if (o.address == NULL)
		o.address = "127.0.0.1:0";
	struct ing_error e;
	int rv = rpc_http_start(&env->loop, &o, &env->server, &e);
	if (rv != 0)
		fail_msg("rpc_http_start: %s", e.msg);
	struct rpc_http_server *s = env->server;
	assert_int_equal(rpc_http_route(s, "GET", "/hello", h_hello, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/items/{id}", h_item, env), 0);
	assert_int_equal(rpc_http_route(s, "POST", "/echo", h_echo, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/later", h_later, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/error/{code}", h_error, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/stream", h_stream, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/quiet", h_quiet, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/flood", h_flood, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/hold", h_hold, env), 0);
	assert_int_equal(rpc_http_route(s, "GET", "/big", h_big, env), 0);
	assert_int_equal(rpc_http_route(s, "DELETE", "/items/{id}", h_item, env), 0);
}

static void close_cb(uv_handle_t *h)
{
	(void)h;
}

static void env_stop(struct env *env)
{
	if (!env->closed) {
		rpc_http_close(env->server, on_server_closed, env);
		uint64_t end = now_ms(env) + 5000;
		while (!env->closed) {
			uv_run(&env->loop, UV_RUN_ONCE);
			if (now_ms(env) > end)
				fail_msg("server did not close");
		}
	}
	uv_close((uv_handle_t *)&env->ticker, close_cb);
	uv_close((uv_handle_t *)&env->later_timer, close_cb);
	uv_close((uv_handle_t *)&env->stream_timer, close_cb);
	uv_run(&env->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&env->loop), 0);
	assert_int_equal(tu_count_fds(), env->fds_before); /* listener, epoll, sockets closed */
}

/* ---- the client side (client thread) ------------------------------------ */

struct conn {
	int fd;
	SSL *ssl;
	char buf[1 << 16];
	size_t len;
};

struct resp {
	int status;
	char head[4096];
	char body[1 << 16];
	size_t body_len;
	bool chunked;
};

static int conn_open(struct conn *c, uint16_t port, int rcvbuf)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -1;
	if (rcvbuf > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct timeval tv = {5, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(c->fd);
		return -1;
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int conn_send(struct conn *c, const char *data, size_t n)
{
	while (n > 0) {
		ssize_t w =
		    c->ssl != NULL ? SSL_write(c->ssl, data, (int)n) : send(c->fd, data, n, 0);
		if (w <= 0)
			return -1;
		data += w;
		n -= (size_t)w;
	}
	return 0;
}

static int conn_fill(struct conn *c)
{
	if (c->len == sizeof(c->buf))
		return -1;
	ssize_t r = c->ssl != NULL
	                ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len))
	                : recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (r <= 0)
		return -1;
	c->len += (size_t)r;
	return 0;
}

static void conn_consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* A line ending in CRLF (copied without it into line); -1 on EOF/error. */
static int conn_line(struct conn *c, char *line, size_t cap)
{
	for (;;) {
		char *end = memmem(c->buf, c->len, "\r\n", 2);
		if (end != NULL) {
			size_t n = (size_t)(end - c->buf);
			if (n >= cap)
				return -1;
			memcpy(line, c->buf, n);
			line[n] = '\0';
			conn_consume(c, n + 2);
			return 0;
		}
		if (conn_fill(c) != 0)
			return -1;
	}
}

static int conn_bytes(struct conn *c, char *out, size_t n)
{
	while (c->len < n)
		if (conn_fill(c) != 0)
			return -1;
	if (out != NULL)
		memcpy(out, c->buf, n);
	conn_consume(c, n);
	return 0;
}

static const char *head_value(const struct resp *r, const char *name)
{
	static char v[256];
	size_t n = strlen(name);
	for (const char *p = r->head; p != NULL && *p != '\0';) {
		const char *eol = strchr(p, '\n');
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *s = p + n + 1;
			while (*s == ' ')
				s++;
			size_t len = eol != NULL ? (size_t)(eol - s) : strlen(s);
			if (len >= sizeof(v))
				len = sizeof(v) - 1;
			memcpy(v, s, len);
			v[len] = '\0';
			return v;
		}
		p = eol != NULL ? eol + 1 : NULL;
	}
	return NULL;
}

/* Reads the status line and headers. */
static int read_head(struct conn *c, struct resp *r)
{
	char line[2048];
	memset(r, 0, sizeof(*r));
	if (conn_line(c, line, sizeof(line)) != 0 || sscanf(line, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	size_t used = 0;
	for (;;) {
		if (conn_line(c, line, sizeof(line)) != 0)
			return -1;
		if (line[0] == '\0')
			break;
		used += (size_t)snprintf(r->head + used, sizeof(r->head) - used, "%s\n", line);
		if (used >= sizeof(r->head))
			return -1;
	}
	const char *te = head_value(r, "Transfer-Encoding");
	r->chunked = te != NULL && strcasecmp(te, "chunked") == 0;
	return 0;
}

/* Next chunk of a chunked body into out; its size (0 at the end), -1 on error. */
static long read_chunk(struct conn *c, char *out, size_t cap)
{
	char line[64];
	if (conn_line(c, line, sizeof(line)) != 0)
		return -1;
	long n = strtol(line, NULL, 16);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	if (conn_bytes(c, out, (size_t)n) != 0 || conn_line(c, line, sizeof(line)) != 0)
		return -1;
	out[n] = '\0';
	return n;
}

static int read_body(struct conn *c, struct resp *r, bool head_only)
{
	if (head_only)
		return 0;
	if (r->chunked) {
		for (;;) {
			long n =
			    read_chunk(c, r->body + r->body_len, sizeof(r->body) - r->body_len);
			if (n < 0)
				return -1;
			if (n == 0)
				return 0;
			r->body_len += (size_t)n;
		}
	}
	const char *cl = head_value(r, "Content-Length");
	size_t n = cl != NULL ? (size_t)strtoul(cl, NULL, 10) : 0;
	if (n >= sizeof(r->body) || conn_bytes(c, r->body, n) != 0)
		return -1;
	r->body[n] = '\0';
	r->body_len = n;
	return 0;
}

static int request(struct conn *c, const char *raw, struct resp *r)
{
	if (conn_send(c, raw, strlen(raw)) != 0 || read_head(c, r) != 0)
		return -1;
	return read_body(c, r, strncmp(raw, "HEAD ", 5) == 0);
}

/* ---- client scenarios ---------------------------------------------------- */

struct client {
	void (*fn)(struct client *cl);
	uint16_t port;
	atomic_bool done;
	char fail[512];
	/* TLS */
	SSL_CTX *ssl_ctx;
	/* results for the main thread */
	struct resp r[8];
	int nr;
	int tls_rc;
};

#define CHECK(cond)                                                                           \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			snprintf(cl->fail, sizeof(cl->fail), "%s:%d: %s", __FILE__, __LINE__, \
			         #cond);                                                      \
			return;                                                               \
		}                                                                             \
	} while (0)

static void *client_main(void *arg)
{
	struct client *cl = arg;
	cl->fn(cl);
	atomic_store(&cl->done, true);
	return NULL;
}

static void run_client(struct env *env, struct client *cl, unsigned limit_ms)
{
	pthread_t t;
	cl->port = rpc_http_port(env->server);
	atomic_store(&cl->done, false);
	assert_int_equal(pthread_create(&t, NULL, client_main, cl), 0);
	run_until_flag(env, &cl->done, limit_ms);
	pthread_join(t, NULL);
	if (cl->fail[0] != '\0')
		fail_msg("client: %s", cl->fail);
}

static void c_basic(struct client *cl)
{
	struct conn c;
	CHECK(conn_open(&c, cl->port, 0) == 0);
	/* Two requests on one keep-alive connection. */
	CHECK(request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[0]) == 0);
	CHECK(request(&c,
	              "GET /items/a%20b?q=x%26y&other HTTP/1.1\r\nHost: x\r\nX-Test: tv\r\n\r\n",
	              &cl->r[1]) == 0);
	CHECK(request(&c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[2]) == 0);
	CHECK(request(&c, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[3]) == 0);
	CHECK(request(&c, "POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
	              &cl->r[4]) == 0);
	CHECK(request(&c, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[5]) == 0);
	CHECK(request(&c, "DELETE /items/7 HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[6]) == 0);
	conn_close(&c);
	cl->nr = 7;
}

static void test_routes_and_keepalive(void **state)
{
	(void)state;
	struct env env;
	struct rpc_http_options o = {0};
	env_start(&env, &o);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fn = c_basic;
	run_client(&env, cl, 5000);

	assert_int_equal(cl->r[0].status, 200);
	assert_string_equal(head_value(&cl->r[0], "Content-Type"), "application/json");
	assert_string_equal(cl->r[0].body, "{\"hello\":\"world\"}\n");

	assert_int_equal(cl->r[1].status, 200);
	assert_string_equal(head_value(&cl->r[1], "X-Item"), "yes");
	assert_string_equal(cl->r[1].body,
	                    "{\"id\":\"a b\",\"q\":\"x&y\",\"h\":\"tv\",\"method\":\"GET\"}\n");

	assert_int_equal(cl->r[2].status, 200); /* HEAD: no body read */
	assert_int_equal(cl->r[2].body_len, 0);

	assert_int_equal(cl->r[3].status, 404);
	assert_string_equal(cl->r[3].body,
	                    "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path: "
	                    "/nowhere\"}}\n");

	assert_int_equal(cl->r[4].status, 405);
	assert_string_equal(head_value(&cl->r[4], "Allow"), "GET, HEAD, DELETE");
	assert_non_null(strstr(cl->r[4].body, "\"code\":\"invalid\""));

	assert_int_equal(cl->r[5].status, 202);
	assert_string_equal(cl->r[5].body, "later\n");

	assert_int_equal(cl->r[6].status, 200);
	assert_non_null(strstr(cl->r[6].body, "\"method\":\"DELETE\""));
	free(cl);
	env_stop(&env);
}

static void c_bodies(struct client *cl)
{
	struct conn c;
	CHECK(conn_open(&c, cl->port, 0) == 0);
	const char *ok = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	                 "Content-Length: 16\r\n\r\n{\"a\":[1,2,\"\xc3\xa9\"]}";
	CHECK(request(&c, ok, &cl->r[0]) == 0);
	CHECK(request(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":}x",
	              &cl->r[1]) == 0);
	CHECK(request(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n[1]",
	              &cl->r[2]) == 0);
	/* Chunked, within the bound. */
	CHECK(request(&c,
	              "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	              "4\r\n{\"b\"\r\n3\r\n:2}\r\n0\r\n\r\n",
	              &cl->r[3]) == 0);
	conn_close(&c);

	/* Declared too large: refused before the body is read. */
	CHECK(conn_open(&c, cl->port, 0) == 0);
	CHECK(request(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
	              &cl->r[4]) == 0);
	conn_close(&c);

	/* Chunked and too large: refused at the end of the body. */
	CHECK(conn_open(&c, cl->port, 0) == 0);
	char big[2048];
	memset(big, ' ', sizeof(big));
	const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
	CHECK(conn_send(&c, head, strlen(head)) == 0);
	for (int i = 0; i < 3; i++) {
		CHECK(conn_send(&c, "800\r\n", 5) == 0);
		CHECK(conn_send(&c, big, sizeof(big)) == 0);
		CHECK(conn_send(&c, "\r\n", 2) == 0);
	}
	CHECK(conn_send(&c, "0\r\n\r\n", 5) == 0);
	CHECK(read_head(&c, &cl->r[5]) == 0 && read_body(&c, &cl->r[5], false) == 0);
	conn_close(&c);

	/* Garbage: the library answers 400 and the server goes on. */
	CHECK(conn_open(&c, cl->port, 0) == 0);
	CHECK(request(&c, "NOT HTTP AT ALL\r\n\r\n", &cl->r[6]) == 0);
	conn_close(&c);
	CHECK(conn_open(&c, cl->port, 0) == 0);
	CHECK(request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[7]) == 0);
	conn_close(&c);
}

static void test_bodies_and_limits(void **state)
{
	(void)state;
	struct env env;
	struct rpc_http_options o = {.max_body_bytes = 4096};
	env_start(&env, &o);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fn = c_bodies;
	run_client(&env, cl, 5000);

	assert_int_equal(cl->r[0].status, 200);
	assert_string_equal(cl->r[0].body, "{\"a\":[1,2,\"\xc3\xa9\"]}\n");
	assert_int_equal(cl->r[1].status, 400);
	assert_non_null(strstr(cl->r[1].body, "\"code\":\"malformed\""));
	assert_non_null(strstr(cl->r[1].body, "invalid JSON at line 1 column"));
	assert_int_equal(cl->r[2].status, 400);
	assert_non_null(strstr(cl->r[2].body, "expected a JSON object"));
	assert_int_equal(cl->r[3].status, 200);
	assert_string_equal(cl->r[3].body, "{\"b\":2}\n");
	assert_int_equal(cl->r[4].status, 413);
	assert_non_null(strstr(cl->r[4].body, "\"code\":\"too_large\""));
	assert_non_null(strstr(cl->r[4].body, "100000 bytes exceeds the limit of 4096"));
	assert_int_equal(cl->r[5].status, 413);
	assert_non_null(strstr(cl->r[5].body, "exceeds the limit of 4096 bytes"));
	assert_int_equal(cl->r[6].status, 400);
	assert_int_equal(cl->r[7].status, 200);
	free(cl);
	env_stop(&env);
}

static void c_errors(struct client *cl)
{
	static const char *const names[] = {
	    "invalid",           "malformed",     "unsupported_version",
	    "permission_denied", "not_found",     "already_exists",
	    "conflict",          "stale_attempt", "too_large",
	    "no_space",          "unavailable",   "not_leader",
	    "timeout",           "internal",      "corrupt"};
	struct conn c;
	CHECK(conn_open(&c, cl->port, 0) == 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char req[128];
		snprintf(req, sizeof(req), "GET /error/%s HTTP/1.1\r\nHost: x\r\n\r\n", names[i]);
		struct resp r;
		CHECK(request(&c, req, &r) == 0);
		char want[256];
		snprintf(want, sizeof(want),
		         "{\"error\":{\"code\":\"%s\",\"message\":\"bad ? byte and "
		         "\\\"quotes\\\"\"}}\n",
		         names[i]);
		CHECK(strcmp(r.body, want) == 0);
		CHECK(r.status == (int)rpc_http_status_of(ing_err_from_name(names[i])));
	}
	conn_close(&c);
}

static void test_errors(void **state)
{
	(void)state;
	assert_int_equal(rpc_http_status_of(0), 200);
	assert_int_equal(rpc_http_status_of(ING_EINVAL), 400);
	assert_int_equal(rpc_http_status_of(ING_EDENIED), 403);
	assert_int_equal(rpc_http_status_of(ING_ENOTFOUND), 404);
	assert_int_equal(rpc_http_status_of(ING_ECONFLICT), 409);
	assert_int_equal(rpc_http_status_of(ING_ETOOBIG), 413);
	assert_int_equal(rpc_http_status_of(ING_ENOSPACE), 507);
	assert_int_equal(rpc_http_status_of(ING_ENOTLEADER), 503);
	assert_int_equal(rpc_http_status_of(ING_ETIMEOUT), 504);
	assert_int_equal(rpc_http_status_of(ING_ECORRUPT), 500);
	struct env env;
	struct rpc_http_options o = {0};
	env_start(&env, &o);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fn = c_errors;
	run_client(&env, cl, 5000);
	free(cl);
	env_stop(&env);
}

static void c_streams(struct client *cl)
{
	struct conn c;
	char chunk[4096];
	/* Three JSON lines, then the end; the connection stays usable. */
	CHECK(conn_open(&c, cl->port, 0) == 0);
	CHECK(request(&c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[0]) == 0);
	CHECK(request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[1]) == 0);
	conn_close(&c);

	/* A quiet stream sends heartbeats; the client leaves after two. */
	CHECK(conn_open(&c, cl->port, 0) == 0);
	const char *q = "GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(conn_send(&c, q, strlen(q)) == 0);
	CHECK(read_head(&c, &cl->r[2]) == 0);
	CHECK(read_chunk(&c, chunk, sizeof(chunk)) > 0);
	CHECK(strcmp(chunk, ": ping\n\n") == 0);
	CHECK(read_chunk(&c, chunk, sizeof(chunk)) > 0);
	conn_close(&c);
}

static void test_streams(void **state)
{
	(void)state;
	struct env env;
	struct rpc_http_options o = {0};
	env_start(&env, &o);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fn = c_streams;
	run_client(&env, cl, 5000);
	assert_int_equal(cl->r[0].status, 200);
	assert_true(cl->r[0].chunked);
	assert_string_equal(head_value(&cl->r[0], "Content-Type"), "application/x-ndjson");
	assert_string_equal(cl->r[0].body, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
	assert_int_equal(cl->r[1].status, 200);
	assert_int_equal(cl->r[2].status, 200);
	assert_string_equal(head_value(&cl->r[2], "Content-Type"), "text/event-stream");
	/* The next heartbeat finds the client gone: abandon, then end. */
	uint64_t end = now_ms(&env) + 3000;
	while (env.quiet_abandoned == 0 && now_ms(&env) < end)
		uv_run(&env.loop, UV_RUN_ONCE);
	assert_int_equal(env.quiet_abandoned, 1);
	assert_null(env.quiet);
	free(cl);
	env_stop(&env);
}

static void c_flood(struct client *cl)
{
	struct conn c;
	CHECK(conn_open(&c, cl->port, 4096) == 0);
	const char *q = "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(conn_send(&c, q, strlen(q)) == 0);
	CHECK(read_head(&c, &cl->r[0]) == 0);
	/* Reads nothing more until the server gave up on it. */
	for (int i = 0; i < 500 && atomic_load(&g_env->flood_result) == 0; i++)
		usleep(10000);
	conn_close(&c);
}

static void c_big(struct client *cl)
{
	struct conn c;
	struct resp *r = &cl->r[0];
	char chunk[70000];
	CHECK(conn_open(&c, cl->port, 0) == 0);
	const char *q = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(conn_send(&c, q, strlen(q)) == 0);
	CHECK(read_head(&c, r) == 0 && r->chunked);
	size_t total = 0;
	long n;
	while ((n = read_chunk(&c, chunk, sizeof(chunk))) > 0) {
		for (long i = 0; i < n; i++)
			CHECK(chunk[i] == (char)('a' + (total + (size_t)i) % 26));
		total += (size_t)n;
	}
	CHECK(n == 0);
	r->body_len = total;
	conn_close(&c);
}

static void test_stream_paced_by_drain(void **state)
{
	(void)state;
	struct env env;
	struct rpc_http_options o = {.max_stream_buffer_bytes = 256 * 1024};
	env_start(&env, &o);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fn = c_big;
	run_client(&env, cl, 10000);
	assert_int_equal(cl->r[0].status, 200);
	assert_int_equal(cl->r[0].body_len, BIG_TOTAL); /* never over the 256 KiB bound */
	assert_int_equal(env.big_pieces, BIG_TOTAL / BIG_PIECE);
	free(cl);
	env_stop(&env);
}

static void test_slow_stream_reader_is_cut_off(void **state)
{
	(void)state;
	struct env env;
	struct rpc_http_options o = {.max_stream_buffer_bytes = 256 * 1024};
	env_start(&env, &o);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fn = c_flood;
	run_client(&env, cl, 10000);
	assert_int_equal(env.flood_result, ING_EUNAVAILABLE);
	uint64_t end = now_ms(&env) + 3000;
	while (env.flood != NULL && now_ms(&env) < end)
		uv_run(&env.loop, UV_RUN_ONCE);
	assert_null(env.flood); /* abandoned and ended */
	free(cl);
	env_stop(&env);
}

static void c_hold(struct client *cl)
{
	struct conn idle, held, quiet;
	/* An idle keep-alive connection, a request the handler holds, a stream. */
	CHECK(conn_open(&idle, cl->port, 0) == 0);
	CHECK(request(&idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[0]) == 0);
	CHECK(conn_open(&held, cl->port, 0) == 0);
	const char *h = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(conn_send(&held, h, strlen(h)) == 0);
	CHECK(conn_open(&quiet, cl->port, 0) == 0);
	const char *q = "GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(conn_send(&quiet, q, strlen(q)) == 0);
	CHECK(read_head(&quiet, &cl->r[1]) == 0);
	for (int i = 0; i < 300 && !(atomic_load(&g_env->held) && atomic_load(&g_env->quieted));
	     i++)
		usleep(10000);
	CHECK(atomic_load(&g_env->held) && atomic_load(&g_env->quieted));
	/* The main thread closes the server now; every connection must end. */
	atomic_store(&cl->done, true);
	char b[64];
	CHECK(recv(idle.fd, b, sizeof(b), 0) == 0);
	ssize_t n = recv(held.fd, b, sizeof(b), 0);
	CHECK(n == 0);
	conn_close(&idle);
	conn_close(&held);
	conn_close(&quiet);
}

static void test_close_with_open_requests(void **state)
{
	(void)state;
	struct env env;
	struct rpc_http_options o = {0};
	env_start(&env, &o);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fn = c_hold;
	cl->port = rpc_http_port(env.server);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, client_main, cl), 0);
	run_until_flag(&env, &cl->done, 5000);
	uint64_t t0 = now_ms(&env);
	rpc_http_close(env.server, on_server_closed, &env);
	while (!env.closed) {
		uv_run(&env.loop, UV_RUN_ONCE);
		if (now_ms(&env) - t0 > 2000)
			fail_msg("close took over 2 s");
	}
	pthread_join(t, NULL);
	if (cl->fail[0] != '\0')
		fail_msg("client: %s", cl->fail);
	assert_int_equal(env.hold_abandoned, 1);
	assert_int_equal(env.quiet_abandoned, 1);
	/* The held request outlived its server; answering it only frees it. */
	assert_false(rpc_http_req_alive(env.hold));
	rpc_http_reply(env.hold, 200, NULL, NULL, 0);
	free(cl);
	env_stop(&env);
}

/* ---- TLS ---------------------------------------------------------------- */

static EVP_PKEY *key_new(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(k);
	return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
}

static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                      long serial)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
	if (issuer == NULL) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1");
	}
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static void write_pem(const char *dir, const char *name, X509 *cert, EVP_PKEY *key)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	if (cert != NULL)
		PEM_write_X509(f, cert);
	if (key != NULL)
		PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
}

struct pki {
	char dir[256];
	char ca[300], cert[300], key[300], client_cert[300], client_key[300], other_cert[300],
	    other_key[300], renewed_cert[300], renewed_key[300];
};

static void pki_make(struct pki *p)
{
	tu_tmpdir(p->dir, sizeof(p->dir));
	EVP_PKEY *ca_key = key_new(), *srv_key = key_new(), *cli_key = key_new(),
	         *other_ca_key = key_new(), *other_key = key_new(), *renewed_key = key_new();
	X509 *ca = cert_new(ca_key, "test ca", NULL, NULL, 1);
	X509 *srv = cert_new(srv_key, "node", ca, ca_key, 2);
	X509 *cli = cert_new(cli_key, "client", ca, ca_key, 3);
	X509 *other_ca = cert_new(other_ca_key, "other ca", NULL, NULL, 4);
	X509 *other = cert_new(other_key, "stranger", other_ca, other_ca_key, 5);
	X509 *renewed = cert_new(renewed_key, "node renewed", ca, ca_key, 6);
	write_pem(p->dir, "ca.pem", ca, NULL);
	write_pem(p->dir, "node.pem", srv, NULL);
	write_pem(p->dir, "node.key", NULL, srv_key);
	write_pem(p->dir, "client.pem", cli, NULL);
	write_pem(p->dir, "client.key", NULL, cli_key);
	write_pem(p->dir, "other.pem", other, NULL);
	write_pem(p->dir, "other.key", NULL, other_key);
	write_pem(p->dir, "renewed.pem", renewed, NULL);
	write_pem(p->dir, "renewed.key", NULL, renewed_key);
	snprintf(p->ca, sizeof(p->ca), "%s/ca.pem", p->dir);
	snprintf(p->cert, sizeof(p->cert), "%s/node.pem", p->dir);
	snprintf(p->key, sizeof(p->key), "%s/node.key", p->dir);
	snprintf(p->client_cert, sizeof(p->client_cert), "%s/client.pem", p->dir);
	snprintf(p->client_key, sizeof(p->client_key), "%s/client.key", p->dir);
	snprintf(p->other_cert, sizeof(p->other_cert), "%s/other.pem", p->dir);
	snprintf(p->other_key, sizeof(p->other_key), "%s/other.key", p->dir);
	snprintf(p->renewed_cert, sizeof(p->renewed_cert), "%s/renewed.pem", p->dir);
	snprintf(p->renewed_key, sizeof(p->renewed_key), "%s/renewed.key", p->dir);
	X509_free(ca);
	X509_free(srv);
	X509_free(cli);
	X509_free(other_ca);
	X509_free(other);
	X509_free(renewed);
	EVP_PKEY_free(renewed_key);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	EVP_PKEY_free(cli_key);
	EVP_PKEY_free(other_ca_key);
	EVP_PKEY_free(other_key);
}

struct tls_client {
	struct client base;
	const struct pki *pki;
	const char *cert, *key;
	int max_version;
};

/* One TLS connection and a GET /hello; r[0] gets the answer, tls_rc the
 * handshake's result (1 ok). */
static void c_tls(struct client *cl)
{
	struct tls_client *tc = (struct tls_client *)cl;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	CHECK(ctx != NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	CHECK(SSL_CTX_load_verify_locations(ctx, tc->pki->ca, NULL) == 1);
	if (tc->max_version != 0)
		SSL_CTX_set_max_proto_version(ctx, tc->max_version);
	if (tc->cert != NULL) {
		CHECK(SSL_CTX_use_certificate_file(ctx, tc->cert, SSL_FILETYPE_PEM) == 1);
		CHECK(SSL_CTX_use_PrivateKey_file(ctx, tc->key, SSL_FILETYPE_PEM) == 1);
	}
	struct conn c;
	if (conn_open(&c, cl->port, 0) != 0) {
		SSL_CTX_free(ctx);
		CHECK(false);
	}
	c.ssl = SSL_new(ctx);
	SSL_set_fd(c.ssl, c.fd);
	cl->tls_rc = SSL_connect(c.ssl);
	if (cl->tls_rc == 1) {
		CHECK(SSL_version(c.ssl) == TLS1_3_VERSION);
		if (request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[0]) != 0)
			cl->r[0].status = -1;
	}
	conn_close(&c);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

static void tls_try(struct env *env, const struct pki *pki, const char *cert, const char *key,
                    int max_version, struct tls_client *out)
{
	memset(out, 0, sizeof(*out));
	out->base.fn = c_tls;
	out->pki = pki;
	out->cert = cert;
	out->key = key;
	out->max_version = max_version;
	run_client(env, &out->base, 5000);
}

static void test_tls(void **state)
{
	(void)state;
	struct pki pki;
	pki_make(&pki);
	struct tls_client *tc = calloc(1, sizeof(*tc));

	/* Server certificate only. */
	struct env env;
	struct rpc_http_options o = {.tls = {.cert_file = pki.cert, .key_file = pki.key}};
	env_start(&env, &o);
	tls_try(&env, &pki, NULL, NULL, 0, tc);
	assert_int_equal(tc->base.tls_rc, 1);
	assert_int_equal(tc->base.r[0].status, 200);
	assert_string_equal(tc->base.r[0].body, "{\"hello\":\"world\"}\n");
	/* TLS 1.2 is refused. */
	tls_try(&env, &pki, NULL, NULL, TLS1_2_VERSION, tc);
	assert_int_not_equal(tc->base.tls_rc, 1);
	env_stop(&env);

	/* Mutual: a client certificate from the CA is required. */
	o.tls.ca_file = pki.ca;
	env_start(&env, &o);
	tls_try(&env, &pki, pki.client_cert, pki.client_key, 0, tc);
	assert_int_equal(tc->base.tls_rc, 1);
	assert_int_equal(tc->base.r[0].status, 200);
	/* GnuTLS asks for a certificate; the server checks it before routing. */
	tls_try(&env, &pki, NULL, NULL, 0, tc);
	assert_int_equal(tc->base.tls_rc, 1);
	assert_int_equal(tc->base.r[0].status, 403);
	assert_non_null(strstr(tc->base.r[0].body, "\"code\":\"permission_denied\""));
	tls_try(&env, &pki, pki.other_cert, pki.other_key, 0, tc);
	assert_int_equal(tc->base.tls_rc, 1);
	assert_int_equal(tc->base.r[0].status, 403);
	env_stop(&env);
	free(tc);
	tu_rmrf(pki.dir);
}

/* ---- TLS reload ---------------------------------------------------------- */

struct reload_client {
	struct client base;
	const struct pki *pki;
	struct conn *keep; /* NULL: open a new connection, else use (and keep) this */
	char cn[64];       /* the server certificate's CN */
};

static void c_reload(struct client *cl)
{
	struct reload_client *rc = (struct reload_client *)cl;
	struct conn *c = rc->keep;
	if (c->ssl == NULL) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		CHECK(ctx != NULL);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		CHECK(SSL_CTX_load_verify_locations(ctx, rc->pki->ca, NULL) == 1);
		CHECK(conn_open(c, cl->port, 0) == 0);
		c->ssl = SSL_new(ctx);
		SSL_CTX_free(ctx); /* the SSL holds its own reference */
		SSL_set_fd(c->ssl, c->fd);
		cl->tls_rc = SSL_connect(c->ssl);
		CHECK(cl->tls_rc == 1);
	}
	X509 *peer = SSL_get1_peer_certificate(c->ssl);
	CHECK(peer != NULL);
	X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, rc->cn,
	                          sizeof(rc->cn));
	X509_free(peer);
	if (request(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &cl->r[0]) != 0)
		cl->r[0].status = -1;
	ERR_clear_error();
}

static void reload_try(struct env *env, const struct pki *pki, struct conn *keep,
                       struct reload_client *out)
{
	memset(out, 0, sizeof(*out));
	out->base.fn = c_reload;
	out->pki = pki;
	out->keep = keep;
	run_client(env, &out->base, 5000);
}

static void copy_file(const char *from, const char *to)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", to);
	FILE *in = fopen(from, "rb"), *out = fopen(tmp, "wb");
	assert_non_null(in);
	assert_non_null(out);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
	assert_int_equal(rename(tmp, to), 0); /* replaced whole, as an operator would */
}

static void test_tls_reload(void **state)
{
	(void)state;
	struct pki pki;
	pki_make(&pki);
	struct reload_client *rc = calloc(1, sizeof(*rc));
	struct conn *old_conn = calloc(1, sizeof(*old_conn)),
	            *new_conn = calloc(1, sizeof(*new_conn));
	struct ing_error e;

	struct env env;
	struct rpc_http_options o = {.tls = {.cert_file = pki.cert, .key_file = pki.key}};
	/* A connection cut by the server is written to: EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	env_start(&env, &o);
	/* A keep-alive connection with the first certificate. */
	old_conn->ssl = NULL;
	reload_try(&env, &pki, old_conn, rc);
	assert_int_equal(rc->base.r[0].status, 200);
	assert_string_equal(rc->cn, "node");

	/* The files are replaced by a renewed certificate and key; reload. */
	copy_file(pki.renewed_cert, pki.cert);
	copy_file(pki.renewed_key, pki.key);
	assert_int_equal(rpc_http_reload_tls(env.server, &o.tls, &e), 0);
	/* A new connection sees the new certificate... */
	new_conn->ssl = NULL;
	reload_try(&env, &pki, new_conn, rc);
	assert_int_equal(rc->base.r[0].status, 200);
	assert_string_equal(rc->cn, "node renewed");
	/* ...and the open one goes on with the old one. */
	reload_try(&env, &pki, old_conn, rc);
	assert_int_equal(rc->base.r[0].status, 200);
	assert_string_equal(rc->cn, "node");
	assert_int_equal(rpc_http_connections(env.server), 2);
	conn_close(old_conn);

	/* A bad file changes nothing. */
	char notpem[300];
	snprintf(notpem, sizeof(notpem), "%s/notpem", pki.dir);
	FILE *f = fopen(notpem, "w");
	fputs("hello\n", f);
	fclose(f);
	struct rpc_http_tls bad = o.tls;
	bad.key_file = notpem;
	assert_int_equal(rpc_http_reload_tls(env.server, &bad, &e), ING_EIO);
	assert_non_null(strstr(e.msg, "notpem"));
	bad = o.tls;
	bad.key_file = pki.client_key; /* not the certificate's key */
	assert_int_not_equal(rpc_http_reload_tls(env.server, &bad, &e), 0);
	bad = o.tls;
	bad.ca_file = pki.ca; /* client certificates cannot be turned on */
	assert_int_equal(rpc_http_reload_tls(env.server, &bad, &e), ING_EINVAL);
	struct conn *third = calloc(1, sizeof(*third));
	reload_try(&env, &pki, third, rc);
	assert_int_equal(rc->base.r[0].status, 200);
	assert_string_equal(rc->cn, "node renewed");
	conn_close(third);

	/* Two reloads in a row: the second stops the daemon the first
	 * replaced, and so cuts new_conn, still open on it; new ones work. */
	assert_int_equal(rpc_http_reload_tls(env.server, &o.tls, &e), 0);
	assert_int_equal(rpc_http_reload_tls(env.server, &o.tls, &e), 0);
	reload_try(&env, &pki, new_conn, rc);
	assert_int_equal(rc->base.r[0].status, -1);
	conn_close(new_conn);
	memset(third, 0, sizeof(*third));
	reload_try(&env, &pki, third, rc);
	assert_int_equal(rc->base.r[0].status, 200);
	conn_close(third);
	env_stop(&env);

	/* A plaintext server has nothing to reload. */
	struct rpc_http_options plain = {0};
	env_start(&env, &plain);
	assert_int_equal(rpc_http_reload_tls(env.server, &o.tls, &e), ING_EINVAL);
	env_stop(&env);
	free(third);
	free(new_conn);
	free(old_conn);
	free(rc);
	tu_rmrf(pki.dir);
}

/* ---- start-up errors ---------------------------------------------------- */

static void test_start_errors(void **state)
{
	(void)state;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct rpc_http_server *s = NULL;
	struct ing_error e;
	struct rpc_http_options o = {.address = "nonsense"};
	assert_int_equal(rpc_http_start(&loop, &o, &s, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "nonsense"));

	o.address = "127.0.0.1:0";
	assert_int_equal(rpc_http_start(&loop, &o, &s, &e), 0);
	char taken[32];
	snprintf(taken, sizeof(taken), "127.0.0.1:%u", (unsigned)rpc_http_port(s));
	struct rpc_http_server *s2 = NULL;
	o.address = taken;
	assert_int_equal(rpc_http_start(&loop, &o, &s2, &e), ING_EUNAVAILABLE);
	assert_non_null(strstr(e.msg, "address already in use"));
	assert_non_null(strstr(e.msg, taken));

	assert_int_equal(rpc_http_route(s, "BREW", "/pot", h_hello, NULL), ING_EINVAL);
	assert_int_equal(rpc_http_route(s, "GET", "relative", h_hello, NULL), ING_EINVAL);
	assert_int_equal(rpc_http_route(s, "GET", "/a/{}/b", h_hello, NULL), ING_EINVAL);
	assert_int_equal(rpc_http_route(s, "GET", "/a/{x", h_hello, NULL), ING_EINVAL);
	assert_int_equal(rpc_http_route(s, "GET", "/a//b", h_hello, NULL), ING_EINVAL);
	assert_int_equal(rpc_http_route(s, "GET", "/a/b{x}", h_hello, NULL), ING_EINVAL);
	assert_int_equal(rpc_http_route(s, "GET", "/a/{x}", NULL, NULL), ING_EINVAL);
	assert_int_equal(rpc_http_route(s, "GET", "/", h_hello, NULL), 0);
	rpc_http_close(s, NULL, NULL);

	char dir[256];
	tu_tmpdir(dir, sizeof(dir));
	char notpem[300];
	snprintf(notpem, sizeof(notpem), "%s/notpem", dir);
	FILE *f = fopen(notpem, "w");
	fputs("hello\n", f);
	fclose(f);
	o.address = "127.0.0.1:0";
	o.tls.cert_file = notpem;
	assert_int_equal(rpc_http_start(&loop, &o, &s2, &e), ING_EINVAL); /* no key */
	o.tls.key_file = notpem;
	assert_int_equal(rpc_http_start(&loop, &o, &s2, &e), ING_EIO);
	assert_non_null(strstr(e.msg, "not a PEM file"));
	o.tls.cert_file = "/nonexistent/cert.pem";
	assert_int_equal(rpc_http_start(&loop, &o, &s2, &e), ING_EIO);
	assert_non_null(strstr(e.msg, "/nonexistent/cert.pem"));
	o.tls.cert_file = o.tls.key_file = NULL;
	o.tls.ca_file = notpem;
	assert_int_equal(rpc_http_start(&loop, &o, &s2, &e), ING_EINVAL);
	tu_rmrf(dir);

	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	ing_log_set_level(ING_LOG_LEVEL_WARN);
	/* libuv opens its process-wide signal pipe with the first loop; open it
	 * now so the per-test descriptor counts compare like with like. */
	uv_loop_t warm;
	uv_loop_init(&warm);
	uv_loop_close(&warm);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes_and_keepalive),
	    cmocka_unit_test(test_bodies_and_limits),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_streams),
	    cmocka_unit_test(test_slow_stream_reader_is_cut_off),
	    cmocka_unit_test(test_stream_paced_by_drain),
	    cmocka_unit_test(test_close_with_open_requests),
	    cmocka_unit_test(test_tls),
	    cmocka_unit_test(test_tls_reload),
	    cmocka_unit_test(test_start_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
