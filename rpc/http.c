/*
 * http.c - the HTTP server of http.h: libmicrohttpd (MHD) driven from the
 * node's libuv loop.
 *
 * Why MHD and not H2O (both in Debian; measured in docs/performance.md,
 * "HTTP library"): for a trivial handler on loopback the two serve the
 * same requests/s within the noise of this machine and pause the loop
 * alike, so the choice rests on the rest.  Debian's libh2o (2.2.5) is a
 * tagged release that H2O's authors have declared deprecated (they stopped
 * tagging releases in 2023), its library API is the server's internals,
 * and it cannot be stopped cleanly: it has no call that drops the
 * connections it accepted, so an idle keep-alive client holds the loop open
 * until its timeout (seen here: a stop waited 10 s for one idle curl).
 * MHD is a maintained GNU library with a stable C API, runs thread-less in
 * "external" mode, and MHD_stop_daemon closes every connection at once.
 * Its TLS is GnuTLS, fed the same PEM files and the same TLS 1.3 policy as
 * the client API.
 *
 * Driving MHD: MHD keeps its sockets in its own epoll set; a uv_poll
 * watches that epoll fd and a uv_timer fires at MHD_get_timeout.  Both call
 * drive(), which runs MHD_run once, then the abandon callbacks of requests
 * that died during it, then re-arms the timer.  Anything that needs MHD to
 * run again (a resumed connection) "kicks": the timer fires at 0 ms.  MHD is
 * never re-entered: kicks from inside MHD_run only set a flag.
 *
 * A request (struct rpc_http_req) is created at MHD's first call for it
 * (headers read).  Its body is gathered up to max_body_bytes.  At the last
 * call the route's handler runs and owns it.  An answer made inside the
 * handler is queued when the handler returns; otherwise the connection is
 * suspended, and a later answer queues the response and resumes it.  A
 * stream is a response whose content callback copies from the request's
 * output buffer and suspends the connection when the buffer is empty;
 * writes resume it.
 *
 * A request is freed when all of these hold: MHD is done with it
 * (completed: answer sent, connection closed or server stopped), the
 * handler released it (answered or ended its stream), the stream response
 * was destroyed, and its abandon callback (if due) ran.  A completed
 * request is "dead": it points at no connection, no server, and answers to
 * it only free it, so it may outlive the server.
 *
 * Closing: suspended connections are resumed (MHD forbids stopping with
 * suspended ones), the poll handle is closed before MHD_stop_daemon closes
 * the epoll fd, MHD_stop_daemon completes every request, and the last
 * handle's close callback runs the abandon callbacks, frees the server and
 * calls the close callback.  A close asked for from inside MHD_run (from a
 * handler) happens when MHD_run returns.
 *
 * TLS reload (rpc_http_reload_tls): MHD reads its certificate once, at
 * start, so a reload starts a second daemon with the new PEM text on a
 * duplicate of the listening socket, then quiesces the current one (it
 * stops accepting; MHD_ALLOW_SUSPEND_RESUME gives it the channel that
 * needs).  The replaced daemon ("old") is run with the new one from the
 * same drive() and stopped there once it has no connection left; a second
 * reload stops it at once.  Requests belong to the server, not to a
 * daemon, so the rest of this file does not care which daemon a
 * connection came from.  Starting the new daemon first means a refused
 * certificate leaves the current one serving, untouched.
 *
 * Failure modes: allocation failures close the one connection (MHD_NO);
 * bad requests get the JSON errors listed in http.h; a client that does not
 * read a stream is cut off at max_stream_buffer_bytes unsent.
 */
#include "rpc/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/text.h"
#include "common/uverr.h"
#include "rpc/frame.h"

#define DEFAULT_MAX_BODY_BYTES   (4u * 1024u * 1024u)
#define DEFAULT_MAX_CONNECTIONS  256u
#define DEFAULT_IDLE_TIMEOUT_S   60u
#define DEFAULT_MAX_STREAM_BYTES (8u * 1024u * 1024u)
#define DISCARD_FACTOR           4 /* chunked body over the bound: read this much more, then close */
#define MAX_SEGMENTS             16
#define MAX_PARAMS               8
#define LISTEN_BACKLOG           128
#define HEARTBEAT_TICK_MS        250
#define STREAM_BLOCK_BYTES       (16u * 1024u)
#define TLS_PRIORITIES           "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define MAX_PEM_BYTES            (1u << 20)

struct route {
	struct route *next;
	char method[8];
	char *pattern; /* owned; segs point into segbuf */
	char *segbuf;  /* owned copy split at '/' */
	const char *segs[MAX_SEGMENTS];
	unsigned nsegs;
	rpc_http_handler h;
	void *data;
};

struct hdr {
	struct hdr *next;
	char *name;
	char *value;
};

/* One MHD daemon with the PEM text it was started with (MHD keeps
 * pointers into it) and the poll handle on its epoll fd.  Freed in the
 * poll handle's close callback, after MHD_stop_daemon. */
struct daemon {
	struct rpc_http_server *s;
	struct MHD_Daemon *mhd;
	uv_poll_t poll;
	bool polling;
	char *pem[3]; /* cert, key, ca */
};

struct rpc_http_server {
	uv_loop_t *loop;
	struct daemon *cur; /* accepts new connections; NULL once stopped */
	struct daemon *old; /* after a TLS reload: serves what it accepted */
	int listen_fd;      /* cur's listening socket (MHD closes it) */
	uv_timer_t timer;   /* MHD's timeouts and kicks */
	uv_timer_t ticker;  /* stream heartbeats; runs while nheartbeats > 0 */
	unsigned open_handles;
	struct route *routes;
	struct route **routes_tail;
	struct rpc_http_req *reqs;    /* every request MHD is not done with */
	struct rpc_http_req *dead;    /* completed while owned: abandon callbacks due */
	struct rpc_http_req *drained; /* streams whose drain callback is due */
	unsigned nheartbeats;
	size_t max_body_bytes;
	size_t max_stream_bytes;
	bool verify_clients;
	bool starting; /* inside MHD_start_daemon */
	bool in_run;
	bool kick;
	bool close_requested;
	bool closing;
	uint16_t port;
	char address[64];
	unsigned max_conns;
	unsigned idle_s;
	void (*close_cb)(void *data);
	void *close_data;
};

struct rpc_http_req {
	struct rpc_http_server *s;   /* NULL once completed */
	struct MHD_Connection *conn; /* NULL once completed */
	struct rpc_http_req *prev, *next;
	struct rpc_http_req *dead_next;
	const struct route *route;
	char method[8];
	char *path;
	char peer[32];
	const char *param_names[MAX_PARAMS];
	char *param_values[MAX_PARAMS];
	unsigned nparams;
	struct ing_buf body;
	size_t discarded;
	struct hdr *hdrs;
	struct MHD_Response *pending; /* answer made inside the handler */
	unsigned pending_status;
	bool too_large;
	bool dispatched;
	bool owned;
	bool in_handler;
	bool suspended;
	bool completed;
	bool answered;
	bool failed; /* no answer could be made */
	/* stream */
	bool streaming;
	bool stream_ended;
	bool stream_broken;
	bool resp_alive;
	struct ing_buf out; /* stream bytes; out_off of them already sent */
	size_t out_off;
	char *heartbeat;
	size_t heartbeat_len;
	uint64_t heartbeat_ms;
	uint64_t last_write_ms;
	void (*drain_cb)(struct rpc_http_req *r, void *data);
	void *drain_data;
	struct rpc_http_req *drain_next;
	bool drain_queued;
	/* abandon */
	void (*abandon_cb)(struct rpc_http_req *r, void *data);
	void *abandon_data;
	bool abandon_queued;
};

static void on_timer(uv_timer_t *t);
static void server_stop(struct rpc_http_server *s);
static unsigned daemon_connections(const struct daemon *d);
static void daemon_retire(struct rpc_http_server *s);

/* ---- small helpers ----------------------------------------------------- */

static char *dup_str(const char *p)
{
	size_t n = strlen(p) + 1;
	char *d = malloc(n);
	if (d != NULL)
		memcpy(d, p, n);
	return d;
}

unsigned rpc_http_status_of(int code)
{
	switch (code) {
	case 0: return 200;
	case ING_EINVAL:
	case ING_EMALFORMED:
	case ING_EVERSION: return 400;
	case ING_EDENIED: return 403;
	case ING_ENOTFOUND: return 404;
	case ING_EEXIST:
	case ING_ECONFLICT:
	case ING_ESTALE: return 409;
	case ING_ETOOBIG: return 413;
	case ING_ENOSPACE: return 507;
	case ING_EUNAVAILABLE:
	case ING_ENOTLEADER:
	case ING_ENOMEM: return 503;
	case ING_ETIMEOUT: return 504;
	default: return 500;
	}
}

/* ---- driving MHD from the loop ----------------------------------------- */

static void kick(struct rpc_http_server *s)
{
	if (s->closing)
		return;
	s->kick = true;
	if (!s->in_run)
		uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void arm(struct rpc_http_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms = 0, old_ms = 0;
	bool timed = MHD_get_timeout(s->cur->mhd, &ms) == MHD_YES;
	if (s->old != NULL && MHD_get_timeout(s->old->mhd, &old_ms) == MHD_YES &&
	    (!timed || old_ms < ms)) {
		ms = old_ms;
		timed = true;
	}
	if (s->kick)
		uv_timer_start(&s->timer, on_timer, 0, 0);
	else if (timed)
		uv_timer_start(&s->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&s->timer);
}

static void req_maybe_free(struct rpc_http_req *r);

static void run_dead(struct rpc_http_server *s)
{
	while (s->dead != NULL) {
		struct rpc_http_req *r = s->dead;
		s->dead = r->dead_next;
		r->dead_next = NULL;
		r->abandon_queued = false;
		void (*cb)(struct rpc_http_req *, void *) = r->abandon_cb;
		r->abandon_cb = NULL;
		if (cb != NULL)
			cb(r, r->abandon_data);
		else
			req_maybe_free(r);
	}
}

static void drain_queue(struct rpc_http_req *r)
{
	if (r->drain_queued || r->drain_cb == NULL)
		return;
	r->drain_queued = true;
	r->drain_next = r->s->drained;
	r->s->drained = r;
}

static void run_drained(struct rpc_http_server *s)
{
	while (s->drained != NULL) {
		struct rpc_http_req *r = s->drained;
		s->drained = r->drain_next;
		r->drain_next = NULL;
		r->drain_queued = false;
		void (*cb)(struct rpc_http_req *, void *) = r->drain_cb;
		r->drain_cb = NULL;
		if (cb != NULL && !r->completed)
			cb(r, r->drain_data);
	}
}

/* One run of MHD and what follows it (see the design note). */
static void drive(struct rpc_http_server *s)
{
	if (s->closing)
		return;
	s->in_run = true;
	s->kick = false;
	MHD_run(s->cur->mhd);
	if (s->old != NULL) {
		MHD_run(s->old->mhd);
		if (daemon_connections(s->old) == 0)
			daemon_retire(s);
	}
	s->in_run = false;
	run_dead(s);
	run_drained(s);
	if (s->close_requested) {
		server_stop(s);
		return;
	}
	if (!s->closing)
		arm(s);
}

static void on_timer(uv_timer_t *t)
{
	drive(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct daemon *d = p->data;
	(void)status;
	(void)events;
	drive(d->s);
}

/* ---- requests ---------------------------------------------------------- */

static void hdrs_free(struct hdr *h)
{
	while (h != NULL) {
		struct hdr *next = h->next;
		free(h->name);
		free(h->value);
		free(h);
		h = next;
	}
}

static void req_maybe_free(struct rpc_http_req *r)
{
	if (!r->completed || r->owned || r->resp_alive || r->abandon_queued)
		return;
	if (r->pending != NULL)
		MHD_destroy_response(r->pending);
	for (unsigned i = 0; i < r->nparams; i++)
		free(r->param_values[i]);
	hdrs_free(r->hdrs);
	free(r->path);
	ing_buf_free(&r->body);
	ing_buf_free(&r->out);
	free(r->heartbeat);
	free(r);
}

static void req_unlink(struct rpc_http_req *r)
{
	struct rpc_http_server *s = r->s;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		s->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void resume(struct rpc_http_req *r)
{
	if (!r->suspended)
		return;
	r->suspended = false;
	MHD_resume_connection(r->conn);
	kick(r->s);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct rpc_http_server *s = cls;
	struct rpc_http_req *r = *con_cls;
	(void)conn;
	if (r == NULL)
		return;
	*con_cls = NULL;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		ING_LOG_DEBUG("http request ended early peer=%s path=%s reason=%d", r->peer,
		              r->path, (int)toe);
	if (r->streaming && r->heartbeat != NULL && --s->nheartbeats == 0)
		uv_timer_stop(&s->ticker);
	req_unlink(r);
	if (r->drain_queued) {
		for (struct rpc_http_req **pp = &s->drained; *pp != NULL; pp = &(*pp)->drain_next) {
			if (*pp == r) {
				*pp = r->drain_next;
				break;
			}
		}
		r->drain_queued = false;
	}
	r->drain_cb = NULL;
	r->completed = true;
	r->suspended = false;
	r->conn = NULL;
	r->s = NULL;
	if (r->owned && r->abandon_cb != NULL) {
		r->abandon_queued = true;
		r->dead_next = s->dead;
		s->dead = r;
		return;
	}
	req_maybe_free(r);
}

static struct MHD_Response *make_response(struct rpc_http_req *r, const char *content_type,
                                          const void *body, size_t len)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return NULL;
	if (content_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	for (struct hdr *h = r->hdrs; h != NULL; h = h->next)
		MHD_add_response_header(resp, h->name, h->value);
	return resp;
}

/*
 * Hands a response to MHD: queued when the handler returns (inside it), or
 * now on the suspended connection, which is resumed.  Takes `resp`.
 */
static void submit(struct rpc_http_req *r, unsigned status, struct MHD_Response *resp)
{
	if (r->in_handler) {
		r->pending = resp;
		r->pending_status = status;
		return;
	}
	if (MHD_queue_response(r->conn, status, resp) != MHD_YES)
		ING_LOG_WARN("http could not queue an answer peer=%s path=%s", r->peer, r->path);
	MHD_destroy_response(resp);
	resume(r);
}

/* The JSON error body, one line; always fits: the message is cut. */
static void error_json(int code, const char *msg, char *buf, size_t cap)
{
	char clean[ING_ERROR_MSG_MAX];
	ing_utf8_clean(msg, clean, sizeof(clean));
	json_t *j =
	    json_pack("{s:{s:s,s:s}}", "error", "code", ing_err_name(code), "message", clean);
	size_t n = j != NULL ? json_dumpb(j, buf, cap - 2, JSON_COMPACT) : 0;
	json_decref(j);
	if (n == 0 || n > cap - 2)
		n = (size_t)snprintf(buf, cap - 2, "{\"error\":{\"code\":\"%s\",\"message\":\"\"}}",
		                     ing_err_name(code));
	buf[n] = '\n';
	buf[n + 1] = '\0';
}

/* An error answer from the server itself (no handler involved): queued
 * directly from MHD's access callback. */
static enum MHD_Result queue_error(struct rpc_http_req *r, unsigned status, int code,
                                   const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result queue_error(struct rpc_http_req *r, unsigned status, int code,
                                   const char *allow, const char *fmt, ...)
{
	char msg[ING_ERROR_MSG_MAX];
	char body[2 * ING_ERROR_MSG_MAX + 128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	error_json(code, msg, body, sizeof(body));
	struct MHD_Response *resp = make_response(r, "application/json", body, strlen(body));
	if (resp == NULL)
		return MHD_NO;
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	r->answered = true;
	enum MHD_Result rv = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return rv;
}

/* ---- routing ----------------------------------------------------------- */

static unsigned split_path(char *p, const char **segs, unsigned max)
{
	unsigned n = 0;
	while (*p == '/')
		p++;
	while (*p != '\0') {
		if (n == max)
			return max + 1;
		segs[n++] = p;
		char *slash = strchr(p, '/');
		if (slash == NULL)
			break;
		*slash = '\0';
		p = slash + 1;
	}
	return n;
}

static bool route_matches_path(const struct route *rt, const char *const *segs, unsigned n)
{
	if (rt->nsegs != n)
		return false;
	for (unsigned i = 0; i < n; i++) {
		if (rt->segs[i][0] == '{')
			continue;
		if (strcmp(rt->segs[i], segs[i]) != 0)
			return false;
	}
	return true;
}

/*
 * Finds the route for r's method and path and fills r's params.  0, or
 * ING_ENOTFOUND (no path matches), or ING_EINVAL with the methods that
 * would match in allow (cap >= 64).
 */
static int route_find(struct rpc_http_server *s, struct rpc_http_req *r, char *allow, size_t cap)
{
	char *copy = dup_str(r->path);
	if (copy == NULL)
		return ING_ENOMEM;
	const char *segs[MAX_SEGMENTS];
	unsigned n = split_path(copy, segs, MAX_SEGMENTS);
	int rv = ING_ENOTFOUND;
	allow[0] = '\0';
	for (const struct route *rt = s->routes; rt != NULL && n <= MAX_SEGMENTS; rt = rt->next) {
		if (!route_matches_path(rt, segs, n))
			continue;
		if (strcmp(rt->method, r->method) != 0) {
			if (strstr(allow, rt->method) == NULL) {
				size_t len = strlen(allow);
				snprintf(allow + len, cap - len, "%s%s%s", len > 0 ? ", " : "",
				         rt->method,
				         strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
			}
			rv = ING_EINVAL;
			continue;
		}
		for (unsigned i = 0; i < n; i++) {
			if (rt->segs[i][0] != '{')
				continue;
			char *v = dup_str(segs[i]);
			if (v == NULL) {
				free(copy);
				return ING_ENOMEM;
			}
			r->param_names[r->nparams] = rt->segs[i];
			r->param_values[r->nparams++] = v;
		}
		r->route = rt;
		rv = 0;
		break;
	}
	free(copy);
	return rv;
}

static bool method_known(const char *m)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(m, methods[i]) == 0)
			return true;
	return false;
}

int rpc_http_route(struct rpc_http_server *s, const char *method, const char *pattern,
                   rpc_http_handler h, void *data)
{
	if (method == NULL || !method_known(method) || h == NULL || pattern == NULL ||
	    pattern[0] != '/')
		return ING_EINVAL;
	struct route *rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		return ING_ENOMEM;
	rt->pattern = dup_str(pattern);
	rt->segbuf = dup_str(pattern);
	if (rt->pattern == NULL || rt->segbuf == NULL) {
		free(rt->pattern);
		free(rt->segbuf);
		free(rt);
		return ING_ENOMEM;
	}
	rt->nsegs = split_path(rt->segbuf, rt->segs, MAX_SEGMENTS);
	unsigned nparams = 0;
	bool ok = rt->nsegs <= MAX_SEGMENTS && strstr(pattern, "//") == NULL;
	for (unsigned i = 0; ok && i < rt->nsegs; i++) {
		size_t len = strlen(rt->segs[i]);
		bool param = rt->segs[i][0] == '{';
		if (param && (len < 3 || rt->segs[i][len - 1] != '}' || ++nparams > MAX_PARAMS))
			ok = false;
		if (!param &&
		    (strchr(rt->segs[i], '{') != NULL || strchr(rt->segs[i], '}') != NULL))
			ok = false;
	}
	if (!ok) {
		free(rt->pattern);
		free(rt->segbuf);
		free(rt);
		return ING_EINVAL;
	}
	/* Parameter names without braces: "{id}" -> "id". */
	for (unsigned i = 0; i < rt->nsegs; i++) {
		if (rt->segs[i][0] == '{') {
			char *seg = (char *)rt->segs[i];
			seg[strlen(seg) - 1] = '\0';
			rt->segs[i] = seg; /* keeps the '{' as the marker; name at +1 */
		}
	}
	snprintf(rt->method, sizeof(rt->method), "%s", method);
	rt->h = h;
	rt->data = data;
	*s->routes_tail = rt;
	s->routes_tail = &rt->next;
	return 0;
}

static void routes_free(struct route *rt)
{
	while (rt != NULL) {
		struct route *next = rt->next;
		free(rt->pattern);
		free(rt->segbuf);
		free(rt);
		rt = next;
	}
}

/* ---- MHD's access callback --------------------------------------------- */

static struct rpc_http_req *req_new(struct rpc_http_server *s, struct MHD_Connection *conn,
                                    const char *url, const char *method)
{
	struct rpc_http_req *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->path = dup_str(url);
	if (r->path == NULL) {
		free(r);
		return NULL;
	}
	r->s = s;
	r->conn = conn;
	snprintf(r->method, sizeof(r->method), "%s", strcmp(method, "HEAD") == 0 ? "GET" : method);
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL && ci->client_addr->sa_family == AF_INET)
		rpc_format_address((const struct sockaddr_in *)ci->client_addr, r->peer,
		                   sizeof(r->peer));
	else
		snprintf(r->peer, sizeof(r->peer), "?");
	r->next = s->reqs;
	if (s->reqs != NULL)
		s->reqs->prev = r;
	s->reqs = r;
	return r;
}

static bool client_cert_ok(struct rpc_http_req *r)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return false;
	unsigned status = 0;
	int rc = gnutls_certificate_verify_peers2((gnutls_session_t)ci->tls_session, &status);
	return rc == GNUTLS_E_SUCCESS && status == 0;
}

/* First call for a request: headers are in. */
static enum MHD_Result on_headers(struct rpc_http_req *r)
{
	struct rpc_http_server *s = r->s;
	if (s->verify_clients && !client_cert_ok(r))
		return queue_error(r, 403, ING_EDENIED, NULL,
		                   "a client certificate signed by the cluster CA is required");
	const char *cl =
	    MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL) {
		char *end = NULL;
		errno = 0;
		unsigned long long n = strtoull(cl, &end, 10);
		if (errno == 0 && end != cl && *end == '\0' && n > s->max_body_bytes)
			return queue_error(r, 413, ING_ETOOBIG, NULL,
			                   "request body of %llu bytes exceeds the limit of %zu", n,
			                   s->max_body_bytes);
	}
	return MHD_YES;
}

static enum MHD_Result on_body(struct rpc_http_req *r, const char *data, size_t *size)
{
	struct rpc_http_server *s = r->s;
	size_t n = *size;
	*size = 0;
	if (r->too_large) {
		r->discarded += n;
		if (r->discarded > DISCARD_FACTOR * s->max_body_bytes) {
			ING_LOG_WARN("http closing connection: body far over the limit peer=%s",
			             r->peer);
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (r->body.len + n > s->max_body_bytes) {
		r->too_large = true;
		r->discarded = r->body.len + n;
		ing_buf_free(&r->body);
		return MHD_YES;
	}
	return ing_buf_append(&r->body, data, n) == 0 ? MHD_YES : MHD_NO;
}

/* Last call: the whole request is in; route it and run its handler. */
static enum MHD_Result on_request(struct rpc_http_req *r)
{
	struct rpc_http_server *s = r->s;
	if (r->too_large)
		return queue_error(r, 413, ING_ETOOBIG, NULL,
		                   "request body exceeds the limit of %zu bytes",
		                   s->max_body_bytes);
	char allow[64];
	int rv = route_find(s, r, allow, sizeof(allow));
	if (rv == ING_ENOMEM)
		return MHD_NO;
	if (rv == ING_ENOTFOUND)
		return queue_error(r, 404, ING_ENOTFOUND, NULL, "no such path: %s", r->path);
	if (rv != 0)
		return queue_error(r, 405, ING_EINVAL, allow,
		                   "method %s not allowed on %s (allowed: %s)", r->method, r->path,
		                   allow);
	r->dispatched = r->owned = r->in_handler = true;
	r->route->h(r->route->data, r);
	r->in_handler = false;
	if (r->pending != NULL) {
		struct MHD_Response *resp = r->pending;
		r->pending = NULL;
		enum MHD_Result q = MHD_queue_response(r->conn, r->pending_status, resp);
		MHD_destroy_response(resp);
		return q;
	}
	if (r->failed)
		return MHD_NO;
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
	struct rpc_http_server *s = cls;
	struct rpc_http_req *r = *con_cls;
	(void)version;
	if (r == NULL) {
		r = req_new(s, conn, url, method);
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		return on_headers(r);
	}
	if (r->failed)
		return MHD_NO; /* no answer could be made: close the connection */
	if (r->answered || r->dispatched)
		return MHD_YES; /* MHD is sending the answer */
	if (*upload_size > 0)
		return on_body(r, upload_data, upload_size);
	return on_request(r);
}

/* MHD's messages: at start they explain a refused configuration (error);
 * later they are about one client's connection (debug). */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct rpc_http_server *s = cls;
	enum ing_log_level level = s->starting ? ING_LOG_LEVEL_ERROR : ING_LOG_LEVEL_DEBUG;
	char msg[512];
	if (level < ing_log_threshold)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	ING_LOG(level, "http library msg=\"%s\"", msg);
}

/* ---- answers ----------------------------------------------------------- */

const char *rpc_http_req_method(const struct rpc_http_req *r)
{
	return r->method;
}

const char *rpc_http_req_path(const struct rpc_http_req *r)
{
	return r->path;
}

const char *rpc_http_req_param(const struct rpc_http_req *r, const char *name)
{
	for (unsigned i = 0; i < r->nparams; i++)
		if (strcmp(r->param_names[i] + 1, name) == 0)
			return r->param_values[i];
	return NULL;
}

const char *rpc_http_req_query(const struct rpc_http_req *r, const char *name)
{
	const char *v = NULL;
	if (r->conn == NULL)
		return NULL;
	if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v,
	                                  NULL) != MHD_YES)
		return NULL;
	return v != NULL ? v : "";
}

const char *rpc_http_req_header(const struct rpc_http_req *r, const char *name)
{
	if (r->conn == NULL)
		return NULL;
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const void *rpc_http_req_body(const struct rpc_http_req *r, size_t *len)
{
	*len = r->body.len;
	return r->body.data;
}

const char *rpc_http_req_peer(const struct rpc_http_req *r)
{
	return r->peer;
}

bool rpc_http_req_alive(const struct rpc_http_req *r)
{
	return !r->completed;
}

int rpc_http_req_json(const struct rpc_http_req *r, json_t **out, struct ing_error *e)
{
	if (r->body.len == 0) {
		json_t *o = json_object();
		if (o == NULL)
			return ing_error_set(e, ING_ENOMEM, "out of memory");
		*out = o;
		return 0;
	}
	json_error_t je;
	json_t *v = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
	if (v == NULL)
		return ing_error_set(e, ING_EMALFORMED,
		                     "request body: invalid JSON at line %d column %d: %s", je.line,
		                     je.column, je.text);
	if (!json_is_object(v)) {
		json_decref(v);
		return ing_error_set(e, ING_EINVAL, "request body: expected a JSON object");
	}
	*out = v;
	return 0;
}

static bool header_text_ok(const char *p, bool name)
{
	if (*p == '\0' && name)
		return false;
	for (; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			return false;
		if (name && (*p == ':' || *p == ' ' || *p == '\t'))
			return false;
	}
	return true;
}

int rpc_http_add_header(struct rpc_http_req *r, const char *name, const char *value)
{
	if (!header_text_ok(name, true) || !header_text_ok(value, false))
		return ING_EINVAL;
	struct hdr *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return ING_ENOMEM;
	h->name = dup_str(name);
	h->value = dup_str(value);
	if (h->name == NULL || h->value == NULL) {
		hdrs_free(h);
		return ING_ENOMEM;
	}
	h->next = r->hdrs;
	r->hdrs = h;
	return 0;
}

/* The handler lets go of r after answering it. */
static void release(struct rpc_http_req *r)
{
	r->owned = false;
	req_maybe_free(r);
}

void rpc_http_reply(struct rpc_http_req *r, unsigned status, const char *content_type,
                    const void *body, size_t len)
{
	if (!r->owned || r->streaming) {
		ING_LOG_ERROR("http answer to a request already answered path=%s", r->path);
		return;
	}
	if (!r->completed) {
		struct MHD_Response *resp = make_response(r, content_type, body, len);
		if (resp != NULL) {
			r->answered = true;
			submit(r, status, resp);
		} else {
			char buf[256];
			error_json(ING_ENOMEM, "out of memory", buf, sizeof(buf));
			resp = MHD_create_response_from_buffer(strlen(buf), buf,
			                                       MHD_RESPMEM_MUST_COPY);
			if (resp != NULL) {
				r->answered = true;
				submit(r, 503, resp);
			} else {
				r->failed = true; /* MHD is told MHD_NO: the connection closes */
				resume(r);
			}
		}
	}
	release(r);
}

void rpc_http_reply_json(struct rpc_http_req *r, unsigned status, const json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	if (text == NULL) {
		rpc_http_reply_error(r, ING_ENOMEM, "could not encode the answer");
		return;
	}
	size_t n = strlen(text);
	char *line = realloc(text, n + 2);
	if (line == NULL) {
		free(text);
		rpc_http_reply_error(r, ING_ENOMEM, "could not encode the answer");
		return;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	rpc_http_reply(r, status, "application/json", line, n + 1);
	free(line);
}

void rpc_http_reply_error(struct rpc_http_req *r, int code, const char *fmt, ...)
{
	char msg[ING_ERROR_MSG_MAX];
	char body[2 * ING_ERROR_MSG_MAX + 128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	error_json(code, msg, body, sizeof(body));
	rpc_http_reply(r, rpc_http_status_of(code), "application/json", body, strlen(body));
}

/* ---- streams ----------------------------------------------------------- */

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct rpc_http_req *r = cls;
	(void)pos;
	if (r->stream_broken)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t avail = r->out.len - r->out_off;
	if (avail > 0) {
		size_t n = avail < max ? avail : max;
		memcpy(buf, r->out.data + r->out_off, n);
		r->out_off += n;
		if (r->out_off == r->out.len) {
			ing_buf_reset(&r->out);
			r->out_off = 0;
			drain_queue(r); /* run by drive() once MHD_run returns */
		}
		return (ssize_t)n;
	}
	if (r->stream_ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	return 0;
}

static void stream_resp_free(void *cls)
{
	struct rpc_http_req *r = cls;
	r->resp_alive = false;
	req_maybe_free(r);
}

static void on_ticker(uv_timer_t *t)
{
	struct rpc_http_server *s = t->data;
	uint64_t now = now_ms();
	for (struct rpc_http_req *r = s->reqs; r != NULL; r = r->next) {
		if (!r->streaming || r->heartbeat == NULL || r->stream_ended)
			continue;
		if (now - r->last_write_ms >= r->heartbeat_ms)
			rpc_http_stream_write(r, r->heartbeat, r->heartbeat_len);
	}
}

int rpc_http_stream_start(struct rpc_http_req *r, unsigned status, const char *content_type,
                          const char *heartbeat, unsigned heartbeat_ms)
{
	if (!r->owned || r->streaming || r->answered)
		return ING_ECONFLICT;
	if (r->completed)
		return ING_EUNAVAILABLE;
	struct rpc_http_server *s = r->s;
	if (heartbeat != NULL) {
		r->heartbeat = dup_str(heartbeat);
		if (r->heartbeat == NULL)
			return ING_ENOMEM;
		r->heartbeat_len = strlen(heartbeat);
		r->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 1;
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, STREAM_BLOCK_BYTES, stream_read, r, stream_resp_free);
	if (resp == NULL) {
		free(r->heartbeat);
		r->heartbeat = NULL;
		return ING_ENOMEM;
	}
	if (content_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	for (struct hdr *h = r->hdrs; h != NULL; h = h->next)
		MHD_add_response_header(resp, h->name, h->value);
	r->streaming = true;
	r->answered = true;
	r->resp_alive = true;
	r->last_write_ms = now_ms();
	if (r->heartbeat != NULL && s->nheartbeats++ == 0)
		uv_timer_start(&s->ticker, on_ticker, HEARTBEAT_TICK_MS, HEARTBEAT_TICK_MS);
	submit(r, status, resp);
	return 0;
}

int rpc_http_stream_write(struct rpc_http_req *r, const void *data, size_t len)
{
	if (!r->streaming)
		return ING_ECONFLICT;
	if (r->completed || r->stream_broken)
		return ING_EUNAVAILABLE;
	struct rpc_http_server *s = r->s;
	size_t unsent = r->out.len - r->out_off;
	if (unsent + len > s->max_stream_bytes) {
		ING_LOG_WARN("http cutting off a stream the client does not read peer=%s path=%s "
		             "unsent_bytes=%zu",
		             r->peer, r->path, unsent);
		r->stream_broken = true;
		ing_buf_free(&r->out);
		r->out_off = 0;
		resume(r);
		return ING_EUNAVAILABLE;
	}
	if (r->out_off > 0 && r->out.len + len >= r->out.cap) {
		ing_buf_consume(&r->out, r->out_off);
		r->out_off = 0;
	}
	if (ing_buf_append(&r->out, data, len) != 0) {
		r->out.oom = false; /* the bytes queued before stay queued */
		return ING_ENOMEM;
	}
	r->last_write_ms = now_ms();
	resume(r);
	return 0;
}

int rpc_http_stream_on_drain(struct rpc_http_req *r, void (*cb)(struct rpc_http_req *r, void *data),
                             void *data)
{
	if (r->completed)
		return ING_EUNAVAILABLE;
	if (!r->streaming)
		return ING_ECONFLICT;
	r->drain_cb = cb;
	r->drain_data = data;
	if (r->out.len == r->out_off) {
		drain_queue(r);
		kick(r->s);
	}
	return 0;
}

void rpc_http_stream_end(struct rpc_http_req *r)
{
	if (!r->streaming || !r->owned) {
		ING_LOG_ERROR("http stream ended twice or never started path=%s", r->path);
		return;
	}
	if (!r->completed) {
		r->stream_ended = true;
		resume(r);
	}
	release(r);
}

int rpc_http_req_on_abandon(struct rpc_http_req *r, void (*cb)(struct rpc_http_req *r, void *data),
                            void *data)
{
	if (r->completed)
		return ING_EUNAVAILABLE;
	r->abandon_cb = cb;
	r->abandon_data = data;
	return 0;
}

/* ---- server lifetime --------------------------------------------------- */

static int read_pem(const char *path, char **out, struct ing_error *e)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return ing_error_set(e, ING_EIO, "http tls: cannot read %s: %s", path,
		                     strerror(errno));
	char *buf = malloc(MAX_PEM_BYTES + 1);
	if (buf == NULL) {
		fclose(f);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	size_t n = fread(buf, 1, MAX_PEM_BYTES + 1, f);
	bool err = ferror(f) != 0;
	fclose(f);
	if (err || n > MAX_PEM_BYTES || strstr(buf, "-----BEGIN ") == NULL) {
		free(buf);
		return ing_error_set(e, ING_EIO, "http tls: %s: %s", path,
		                     err ? "read error"
		                         : (n > MAX_PEM_BYTES ? "over 1 MiB" : "not a PEM file"));
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static int listen_socket(const char *address, uint16_t *port, int *out, struct ing_error *e)
{
	struct sockaddr_in addr;
	int rv = rpc_parse_address(address, &addr, e);
	if (rv != 0)
		return rv;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int uv = uv_translate_sys_error(errno);
		return ing_error_set(e, ing_err_from_uv(uv), "cannot listen on %s: %s", address,
		                     uv_strerror(uv));
	}
	int one = 1;
	socklen_t len = sizeof(addr);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
		int uv = uv_translate_sys_error(errno);
		close(fd);
		return ing_error_set(e, ing_err_from_uv(uv), "cannot listen on %s: %s", address,
		                     uv_strerror(uv));
	}
	*port = ntohs(addr.sin_port);
	*out = fd;
	return 0;
}

static void pems_free(char *pem[3])
{
	for (int i = 0; i < 3; i++) {
		free(pem[i]);
		pem[i] = NULL;
	}
}

/* Reads tls's files into pem (all NULL without a certificate).  Errors as
 * read_pem; on an error pem is left all NULL. */
static int pems_read(const struct rpc_http_tls *tls, char *pem[3], struct ing_error *e)
{
	int rv = 0;
	pem[0] = pem[1] = pem[2] = NULL;
	if (tls->cert_file == NULL)
		return 0;
	rv = read_pem(tls->cert_file, &pem[0], e);
	if (rv == 0)
		rv = read_pem(tls->key_file, &pem[1], e);
	if (rv == 0 && tls->ca_file != NULL)
		rv = read_pem(tls->ca_file, &pem[2], e);
	if (rv != 0)
		pems_free(pem);
	return rv;
}

static void handle_gone(struct rpc_http_server *s);
static void on_handle_closed(uv_handle_t *h);

static void on_daemon_poll_closed(uv_handle_t *h)
{
	struct daemon *d = h->data;
	struct rpc_http_server *s = d->s;
	pems_free(d->pem);
	free(d);
	handle_gone(s);
}

/* Stops d: the poll handle goes before MHD closes the epoll fd it watches;
 * MHD completes every request of d's connections (suspended ones must have
 * been resumed).  d is freed by the poll handle's close callback. */
static void daemon_stop(struct daemon *d)
{
	if (d->polling) {
		uv_close((uv_handle_t *)&d->poll, on_daemon_poll_closed);
		MHD_stop_daemon(d->mhd);
		return;
	}
	MHD_stop_daemon(d->mhd);
	pems_free(d->pem);
	free(d);
}

/*
 * A daemon on listening socket fd (taken: MHD closes it, also when this
 * fails) with the PEM text in pem (taken), polled on s's loop.  0 and *out,
 * or ING_EIO (MHD refused to start: see the log), ING_ENOMEM or a libuv
 * error.
 */
static int daemon_start(struct rpc_http_server *s, int fd, char *pem[3], struct daemon **out,
                        struct ing_error *e)
{
	struct daemon *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		close(fd);
		pems_free(pem);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	d->s = s;
	for (int i = 0; i < 3; i++) {
		d->pem[i] = pem[i];
		pem[i] = NULL;
	}
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls_opts[5];
	size_t nt = 0;
	if (d->pem[0] != NULL) {
		flags |= MHD_USE_TLS;
		tls_opts[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, d->pem[0]};
		tls_opts[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, d->pem[1]};
		tls_opts[nt++] =
		    (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
		if (d->pem[2] != NULL)
			tls_opts[nt++] =
			    (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, d->pem[2]};
	}
	tls_opts[nt] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	s->starting = true;
	/* The logger first: MHD logs what it meets after it (a refused key). */
	d->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_CONNECTION_LIMIT, s->max_conns, MHD_OPTION_CONNECTION_TIMEOUT, s->idle_s,
	    MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
	s->starting = false;
	if (d->mhd == NULL) {
		if (fcntl(fd, F_GETFD) != -1)
			close(fd);
		bool tls = d->pem[0] != NULL;
		pems_free(d->pem);
		free(d);
		return ing_error_set(e, ING_EIO,
		                     "cannot start the HTTP server on %s%s (see the log above)",
		                     s->address, tls ? " (TLS certificate or key rejected?)" : "");
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	int rv = di != NULL ? uv_poll_init(s->loop, &d->poll, di->epoll_fd) : UV_EINVAL;
	if (rv == 0) {
		d->polling = true;
		s->open_handles++;
		d->poll.data = d;
		rv = uv_poll_start(&d->poll, UV_READABLE, on_poll);
	}
	if (rv != 0) {
		daemon_stop(d);
		return ing_error_set(e, ing_err_from_uv(rv), "cannot poll the HTTP server: %s",
		                     uv_strerror(rv));
	}
	*out = d;
	return 0;
}

static unsigned daemon_connections(const struct daemon *d)
{
	const union MHD_DaemonInfo *di =
	    MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di != NULL ? di->num_connections : 0;
}

/* Resumes the suspended connections of mhd (NULL: of every daemon), which
 * MHD requires before it stops; a stream among them ends broken. */
static void resume_for_stop(struct rpc_http_server *s, const struct MHD_Daemon *mhd)
{
	for (struct rpc_http_req *r = s->reqs; r != NULL; r = r->next) {
		if (!r->suspended)
			continue;
		if (mhd != NULL) {
			const union MHD_ConnectionInfo *ci =
			    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_DAEMON);
			if (ci == NULL || ci->daemon != mhd)
				continue;
		}
		r->suspended = false;
		r->stream_broken = r->streaming;
		MHD_resume_connection(r->conn);
	}
}

/* The daemon a TLS reload replaced stops: it has no connection left, or a
 * newer reload replaces the current one (its connections are cut). */
static void daemon_retire(struct rpc_http_server *s)
{
	struct daemon *d = s->old;
	s->old = NULL;
	resume_for_stop(s, d->mhd);
	daemon_stop(d);
	ING_LOG_DEBUG("http previous TLS daemon stopped address=%s", s->address);
}

int rpc_http_start(uv_loop_t *loop, const struct rpc_http_options *o, struct rpc_http_server **out,
                   struct ing_error *e)
{
	const struct rpc_http_tls *tls = &o->tls;
	if ((tls->cert_file == NULL) != (tls->key_file == NULL))
		return ing_error_set(e, ING_EINVAL,
		                     "http tls: a certificate needs its key and the "
		                     "key its certificate");
	if (tls->ca_file != NULL && tls->cert_file == NULL)
		return ing_error_set(e, ING_EINVAL,
		                     "http tls: a client CA needs a server certificate and key");
	struct rpc_http_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	s->loop = loop;
	s->routes_tail = &s->routes;
	s->max_body_bytes = o->max_body_bytes != 0 ? o->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
	s->max_stream_bytes =
	    o->max_stream_buffer_bytes != 0 ? o->max_stream_buffer_bytes : DEFAULT_MAX_STREAM_BYTES;
	s->max_conns = o->max_connections != 0 ? o->max_connections : DEFAULT_MAX_CONNECTIONS;
	s->idle_s = o->idle_timeout_s != 0 ? o->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
	snprintf(s->address, sizeof(s->address), "%s", o->address != NULL ? o->address : "");
	char *pem[3];
	int rv = pems_read(tls, pem, e);
	if (rv != 0) {
		free(s);
		return rv;
	}
	s->verify_clients = tls->ca_file != NULL;
	int fd = -1;
	rv = listen_socket(o->address, &s->port, &fd, e);
	if (rv != 0) {
		pems_free(pem);
		free(s);
		return rv;
	}
	uv_timer_init(loop, &s->timer);
	uv_timer_init(loop, &s->ticker);
	s->timer.data = s->ticker.data = s;
	s->open_handles = 2;
	s->listen_fd = fd;
	rv = daemon_start(s, fd, pem, &s->cur, e);
	if (rv != 0) {
		s->closing = true;
		uv_close((uv_handle_t *)&s->timer, on_handle_closed);
		uv_close((uv_handle_t *)&s->ticker, on_handle_closed);
		return rv;
	}
	uv_timer_start(&s->timer, on_timer, 0, 0);
	ING_LOG_INFO("http listening address=%s port=%u tls=%s", s->address, (unsigned)s->port,
	             tls->cert_file == NULL ? "off" : (s->verify_clients ? "mutual" : "on"));
	*out = s;
	return 0;
}

int rpc_http_reload_tls(struct rpc_http_server *s, const struct rpc_http_tls *tls,
                        struct ing_error *e)
{
	if (s->closing || s->close_requested || s->cur == NULL)
		return ing_error_set(e, ING_EUNAVAILABLE, "http: the server is closing");
	if (s->in_run) /* MHD is not re-entered (see the design note) */
		return ing_error_set(e, ING_EUNAVAILABLE,
		                     "http tls reload: not from inside a request handler");
	if (s->cur->pem[0] == NULL || tls->cert_file == NULL || tls->key_file == NULL)
		return ing_error_set(e, ING_EINVAL, "http tls reload: the server on %s %s",
		                     s->address,
		                     s->cur->pem[0] == NULL ? "was started without TLS"
		                                            : "needs a certificate and key");
	if ((tls->ca_file != NULL) != s->verify_clients)
		return ing_error_set(e, ING_EINVAL,
		                     "http tls reload: client certificates cannot be turned %s "
		                     "by a reload",
		                     tls->ca_file != NULL ? "on" : "off");
	char *pem[3];
	int rv = pems_read(tls, pem, e);
	if (rv != 0)
		return rv;
	/* The new daemon listens on a duplicate of the socket, so that the
	 * current one goes on untouched when the new one cannot start. */
	int fd = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		pems_free(pem);
		return ing_error_set(e, ING_EIO, "http tls reload: cannot share the socket: %s",
		                     strerror(errno));
	}
	struct daemon *d;
	rv = daemon_start(s, fd, pem, &d, e);
	if (rv != 0)
		return rv;
	if (s->old != NULL)
		daemon_retire(s);
	/* The current daemon stops accepting and serves what it has. */
	int quiesced = MHD_quiesce_daemon(s->cur->mhd);
	if (quiesced >= 0)
		close(quiesced);
	s->old = s->cur;
	s->cur = d;
	s->listen_fd = fd;
	ING_LOG_INFO("http tls reloaded address=%s: new connections use the new certificate, "
	             "%u open connection(s) keep the old one",
	             s->address, daemon_connections(s->old));
	kick(s);
	return 0;
}

uint16_t rpc_http_port(const struct rpc_http_server *s)
{
	return s->port;
}

const char *rpc_http_library_version(char *built, size_t cap)
{
	/* MHD_VERSION is 0xMMmmpp00, each part written in hex digits (0.9.75 is
	 * 0x00097500). */
	snprintf(built, cap, "%x.%x.%x", (unsigned)(MHD_VERSION >> 24) & 0xff,
	         (unsigned)(MHD_VERSION >> 16) & 0xff, (unsigned)(MHD_VERSION >> 8) & 0xff);
	return MHD_get_version();
}

unsigned rpc_http_connections(const struct rpc_http_server *s)
{
	if (s->cur == NULL)
		return 0;
	return daemon_connections(s->cur) + (s->old != NULL ? daemon_connections(s->old) : 0);
}

static void handle_gone(struct rpc_http_server *s)
{
	if (--s->open_handles > 0)
		return;
	run_dead(s);
	routes_free(s->routes);
	void (*cb)(void *) = s->close_cb;
	void *data = s->close_data;
	free(s);
	if (cb != NULL)
		cb(data);
}

static void on_handle_closed(uv_handle_t *h)
{
	handle_gone(h->data);
}

static void server_stop(struct rpc_http_server *s)
{
	s->closing = true;
	/* MHD must not be stopped with suspended connections. */
	resume_for_stop(s, NULL);
	if (s->old != NULL)
		daemon_stop(s->old);
	if (s->cur != NULL)
		daemon_stop(s->cur);
	s->old = s->cur = NULL;
	uv_close((uv_handle_t *)&s->timer, on_handle_closed);
	uv_close((uv_handle_t *)&s->ticker, on_handle_closed);
	ING_LOG_INFO("http closed address=%s", s->address);
}

void rpc_http_close(struct rpc_http_server *s, void (*cb)(void *data), void *data)
{
	if (s->closing || s->close_requested)
		return;
	s->close_cb = cb;
	s->close_data = data;
	if (s->in_run) {
		s->close_requested = true;
		return;
	}
	server_stop(s);
}
