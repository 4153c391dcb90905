/*
 * http.h - an HTTP/1.1 server on the caller's libuv loop (metrics, health,
 * the JSON API; docs/api.md "HTTP").
 *
 * libmicrohttpd parses HTTP (no parser of ours); it runs without threads in
 * its "external" mode, driven from a uv_poll on its epoll fd and a uv_timer
 * for its timeouts, so every callback below runs on the loop thread and
 * nothing here is thread-safe.  Why libmicrohttpd and not H2O: see the
 * design note in http.c and docs/performance.md.
 *
 * The server routes "METHOD /path/{param}/..." patterns to handlers.  A
 * handler owns its request until it answers it, at once or later (after a
 * Raft commit, a forwarded call...), with exactly one of:
 *   rpc_http_reply / rpc_http_reply_json / rpc_http_reply_error, or
 *   rpc_http_stream_start ... rpc_http_stream_end (a chunked reply written
 *   piece by piece: JSON lines, server-sent events).
 *
 * What the server answers by itself, with a JSON error body
 * {"error": {"code": NAME, "message": TEXT}} (NAME from common/err.h):
 *   404 not_found   no route matches the path
 *   405 invalid     a route matches the path but not the method (with Allow)
 *   413 too_large   a request body over max_body_bytes (Content-Length
 *                   checked before any byte is read; a chunked body is cut
 *                   off when it crosses the bound; the connection closes)
 *   503 unavailable the server is closing
 * libmicrohttpd itself answers requests that are not HTTP (400), header
 * blocks over its memory limit (431) and so on, and closes those
 * connections only.
 *
 * TLS: when tls.cert_file and tls.key_file are set, the server speaks TLS
 * 1.3 only, with that certificate; with tls.ca_file too, a client must
 * present a certificate signed by that CA or is refused (403).  Same files
 * and same protocol version as the client API.  rpc_http_reload_tls reads
 * the files again for new connections.
 */
#ifndef INGOT_RPC_HTTP_H
#define INGOT_RPC_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct rpc_http_server;
struct rpc_http_req;

/* PEM file paths; cert_file and key_file both NULL: plaintext. */
struct rpc_http_tls {
	const char *cert_file;
	const char *key_file;
	const char *ca_file; /* NULL: no client certificate asked for */
};

struct rpc_http_options {
	const char *address;            /* "a.b.c.d:port" or "localhost:port"; port 0: any free */
	size_t max_body_bytes;          /* request bodies; 0: 4 MiB */
	unsigned max_connections;       /* 0: 256 */
	unsigned idle_timeout_s;        /* idle keep-alive connections close; 0: 60 */
	size_t max_stream_buffer_bytes; /* per streamed reply, unsent; 0: 8 MiB */
	struct rpc_http_tls tls;
};

/* Called once per routed request, on the loop; must answer `req` some day. */
typedef void (*rpc_http_handler)(void *data, struct rpc_http_req *req);

/*
 * Binds, listens and starts serving on `loop` now (routes may be added
 * until the loop next runs, and later).  Errors: ING_EINVAL (bad address,
 * bad option), ING_EUNAVAILABLE (address in use...), ING_EDENIED, ING_EIO
 * (a TLS file unreadable or not PEM), ING_ENOMEM; e's message names the
 * address or the file.
 */
int rpc_http_start(uv_loop_t *loop, const struct rpc_http_options *o, struct rpc_http_server **out,
                   struct ing_error *e);

/*
 * Adds a route.  `method` is "GET", "POST", "PUT", "DELETE" or "PATCH"
 * (GET routes answer HEAD too).  `pattern` is an absolute path whose
 * segments are literal or "{name}" (one whole segment, captured, at least
 * one byte), e.g. "/v1/jobs/{id}/artifacts/{hash}".  Routes are tried in
 * the order added; the first match wins.  Errors: ING_EINVAL (bad method or
 * pattern), ING_ENOMEM.  `pattern` is copied.
 */
int rpc_http_route(struct rpc_http_server *s, const char *method, const char *pattern,
                   rpc_http_handler h, void *data);

/*
 * Reads the TLS files of `tls` again (SIGHUP) and serves new connections
 * with them: a new libmicrohttpd daemon takes over the listening socket,
 * and the one it replaces stops accepting but serves the connections it
 * has (keep-alive requests, streams) until they end; it stops when its
 * last connection closes, or at the next reload (which cuts what it still
 * serves).  On an error nothing changes.  Call it from the loop (a signal
 * or timer callback), not from a handler of s.  Errors: ING_EINVAL (the
 * server runs without TLS, or client certificates would be turned on or
 * off: that takes a restart), ING_EIO (a file unreadable or not PEM, or the
 * library refused the certificate or key; see the log), ING_EUNAVAILABLE
 * (closing, or called from a handler), ING_ENOMEM; e names the file or the
 * address.
 */
int rpc_http_reload_tls(struct rpc_http_server *s, const struct rpc_http_tls *tls,
                        struct ing_error *e);

/* The port actually bound (useful with port 0). */
uint16_t rpc_http_port(const struct rpc_http_server *s);
/* Connections open now (for metrics). */
unsigned rpc_http_connections(const struct rpc_http_server *s);

/* libmicrohttpd's version at run time; `built` (ING_VERSION_MAX bytes) gets
 * the one this build was compiled against ("0.9.75"), for --version. */
const char *rpc_http_library_version(char *built, size_t cap);

/*
 * Closes the listener and every connection, then frees the server and calls
 * cb(data) on the loop (cb may be NULL).  Requests still owned by handlers
 * become dead: their abandon callbacks run, and the handler must still
 * answer them (the answer is dropped) to free them.  No handler is called
 * again.
 */
void rpc_http_close(struct rpc_http_server *s, void (*cb)(void *data), void *data);

/* ---- requests: valid from the handler until answered ------------------ */

/* "GET", "POST"... ("GET" for HEAD). */
const char *rpc_http_req_method(const struct rpc_http_req *r);
/* The path, percent-decoded, without the query string. */
const char *rpc_http_req_path(const struct rpc_http_req *r);
/* A "{name}" segment of the route's pattern; NULL when the pattern has none. */
const char *rpc_http_req_param(const struct rpc_http_req *r, const char *name);
/* A query argument, percent-decoded; NULL when absent ("" for "?a"). */
const char *rpc_http_req_query(const struct rpc_http_req *r, const char *name);
/* A request header (case-insensitive name); NULL when absent. */
const char *rpc_http_req_header(const struct rpc_http_req *r, const char *name);
/* The request body (not NUL-terminated; *len 0 when none). */
const void *rpc_http_req_body(const struct rpc_http_req *r, size_t *len);
/* The client's address "a.b.c.d:port". */
const char *rpc_http_req_peer(const struct rpc_http_req *r);
/* False once the connection is gone (answers are dropped). */
bool rpc_http_req_alive(const struct rpc_http_req *r);

/*
 * Parses the body as one JSON object into *out (caller owns; json_decref).
 * An empty body is an empty object.  ING_EMALFORMED with a message naming
 * the line and column ("request body: invalid JSON at line 1 column 7:
 * ..."), or ING_EINVAL when the value is not an object.
 */
int rpc_http_req_json(const struct rpc_http_req *r, json_t **out, struct ing_error *e);

/*
 * Adds a header to the answer (copied).  Errors: ING_EINVAL (a name or
 * value with CR, LF or NUL, or a name with ':' or space), ING_ENOMEM.
 */
int rpc_http_add_header(struct rpc_http_req *r, const char *name, const char *value);

/*
 * Answers and frees the request: status, Content-Type (NULL: none) and a
 * body (copied; NULL/0: empty).  Call exactly once per request (or start a
 * stream instead).  Dropped silently when the connection is gone.
 */
void rpc_http_reply(struct rpc_http_req *r, unsigned status, const char *content_type,
                    const void *body, size_t len);
/* Same with a JSON body (borrowed; encoded compact, one line, with '\n'). */
void rpc_http_reply_json(struct rpc_http_req *r, unsigned status, const json_t *body);
/*
 * Same with {"error": {"code": ing_err_name(code), "message": MESSAGE}} and
 * the status rpc_http_status_of(code).
 */
void rpc_http_reply_error(struct rpc_http_req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The HTTP status for an ING_E* code, the one mapping of the HTTP API:
 * invalid, malformed, unsupported_version 400; permission_denied 403;
 * not_found 404; already_exists, conflict, stale_attempt 409; too_large
 * 413; no_space 507; unavailable, not_leader, no_memory 503; timeout 504;
 * anything else 500.  0 gives 200.
 */
unsigned rpc_http_status_of(int code);

/*
 * Starts a chunked streamed answer with `status` and `content_type`; the
 * request stays owned by the handler, which writes with
 * rpc_http_stream_write and must finish with rpc_http_stream_end.  When
 * heartbeat is not NULL, those bytes are written whenever nothing else was
 * written for heartbeat_ms (so a client that went away is noticed: a quiet
 * stream would never find out).  Errors: ING_EUNAVAILABLE (connection
 * gone), ING_ECONFLICT (already answered or streaming), ING_ENOMEM.
 */
int rpc_http_stream_start(struct rpc_http_req *r, unsigned status, const char *content_type,
                          const char *heartbeat, unsigned heartbeat_ms);
/*
 * Queues bytes (copied) on a started stream.  ING_EUNAVAILABLE when the
 * connection is gone, or was just cut off because the client does not read
 * (more than max_stream_buffer_bytes unsent); ING_ENOMEM.
 */
int rpc_http_stream_write(struct rpc_http_req *r, const void *data, size_t len);
/*
 * Registers cb to run once when everything written so far has been handed
 * to the connection (at once, on the loop, if nothing is pending): a writer
 * of large data writes its next piece then, so it never holds more than a
 * piece in memory.  Runs after libmicrohttpd's callbacks returned; not
 * when the connection goes (the abandon callback does).  A second call
 * replaces the first.  ING_EUNAVAILABLE when the connection is gone,
 * ING_ECONFLICT when no stream was started.
 */
int rpc_http_stream_on_drain(struct rpc_http_req *r, void (*cb)(struct rpc_http_req *r, void *data),
                             void *data);
/* Ends the stream after what was queued is sent, and frees the request. */
void rpc_http_stream_end(struct rpc_http_req *r);

/*
 * Registers cb to run once if the connection goes before the request is
 * answered or its stream ended (a watch stops there).  It runs on the loop
 * after libmicrohttpd's callbacks returned, never from inside an answer or
 * a write; cb may answer the request (the answer is dropped).  Returns
 * ING_EUNAVAILABLE (and registers nothing) when the connection is already
 * gone.  A second call replaces the first registration.
 */
int rpc_http_req_on_abandon(struct rpc_http_req *r, void (*cb)(struct rpc_http_req *r, void *data),
                            void *data);

#endif
