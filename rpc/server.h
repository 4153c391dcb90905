/*
 * server.h - the server side of ingot's wire protocol (docs/protocol.md).
 *
 * The server accepts TCP connections, splits them into frames, decodes each
 * request and hands it to one handler as a `struct rpc_call`.  The handler
 * owns the call until it replies, which it may do at once or later (after a
 * Raft commit, a forwarded call, a timer...).  Several calls of one
 * connection may be outstanding; replies go out in the order they are made.
 *
 * Bad input (not msgpack, not a request, wrong header types, a frame length
 * of 0 or over max_frame_bytes, EOF inside a frame) gets one error reply
 * ("malformed" or "too_large") and closes that connection only.
 *
 * Backpressure: a connection whose queued output exceeds max_output_bytes,
 * or that has max_calls outstanding calls, is not read until that drains.
 * A watch that keeps pushing to a client that does not read is cut off when
 * the output reaches 4 * max_output_bytes.  So a connection holds at most
 * about max_output_bytes + 2 * max_frame_bytes (one reply over the bound,
 * one request being read), and the server max_connections times that.
 *
 * Limits: connections over max_connections, or over
 * max_connections_per_address from one IPv4 address, get an "unavailable"
 * reply and are closed.  A connection with no call outstanding, nothing
 * queued and no partial frame for idle_timeout_ms is closed (silently: the
 * client library reconnects).  A frame begun and not completed within
 * frame_timeout_ms (counted only while the server is reading it), or a TLS
 * handshake not completed within it, gets a "timeout" reply where possible
 * and the connection is closed.
 *
 * Not an ingot client: an HTTP request gets a plain "HTTP/1.1 400" answer
 * saying what the port is; a TLS ClientHello on a plaintext server, or a
 * plaintext client on a TLS server (which gets one plaintext error frame,
 * "permission_denied: this endpoint requires TLS ..."), is refused and
 * logged.  Each closes that connection only.
 *
 * TLS (options.tls set): TLS 1.3 through common/tls.h on the loop, with
 * memory BIOs.  Clients must trust the server's certificate; client
 * certificates are optional or required per the ing_tls's configuration,
 * and a certificate that does not verify fails the handshake either way.
 * The verified identity is in rpc_call_peer(call).  ing_tls_reload() on
 * the options' ing_tls changes the certificate for new connections only.
 *
 * Metrics (process registry, common/metrics.h): open connections, bytes in
 * and out, refusals by reason (too_many_connections, malformed, too_large,
 * slow_consumer).  Per-operation counts are the handler's (rpc_call_observe).
 *
 * Everything here runs on the loop thread; nothing is thread-safe.
 */
#ifndef INGOT_RPC_SERVER_H
#define INGOT_RPC_SERVER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/str.h"
#include "common/tls.h"

struct rpc_server;
struct rpc_call;

/* The largest command (16 MiB) with 1 MiB for the request around it; the
 * client library's default is the same (rpc/client.h).  With it a
 * connection holds at most about 35 MiB (above). */
#define RPC_DEFAULT_MAX_FRAME_BYTES             (17u * 1024u * 1024u)
#define RPC_DEFAULT_MAX_CONNECTIONS             1024u
#define RPC_DEFAULT_MAX_CONNECTIONS_PER_ADDRESS 256u
#define RPC_DEFAULT_MAX_OUTPUT_BYTES            (1u * 1024u * 1024u)
#define RPC_DEFAULT_MAX_CALLS                   4096u
#define RPC_DEFAULT_IDLE_TIMEOUT_MS             120000u
#define RPC_DEFAULT_FRAME_TIMEOUT_MS            30000u

struct rpc_server_options {
	const char *address;      /* "a.b.c.d:port" or "localhost:port"; port 0: any free */
	size_t max_frame_bytes;   /* 0: 17 MiB; applies to requests and replies */
	unsigned max_connections; /* 0: 1024 */
	size_t max_output_bytes;  /* per connection; 0: 1 MiB */
	unsigned max_calls;       /* outstanding calls per connection; 0: 4096 */
	unsigned max_connections_per_address; /* 0: 256 */
	unsigned idle_timeout_ms;             /* 0: 120000 */
	unsigned frame_timeout_ms;            /* 0: 30000; also the TLS handshake */
	struct ing_tls *tls; /* NULL: plaintext; borrowed, must outlive the server */
};

/* Who is at the other end of a call's connection. */
struct rpc_peer {
	char address[32]; /* "a.b.c.d:port" ("?" when it could not be read; for a
	                   * local call what rpc_call_set_peer_address gave, else
	                   * "local") */
	bool tls;         /* the connection is TLS */
	bool local;       /* a local call (the HTTP API), not a protocol connection */
	struct ing_tls_identity identity; /* kind ING_TLS_PEER_NONE: no verified certificate */
};

/* Called once per request, on the loop.  Must eventually reply to `call`. */
typedef void (*rpc_handler)(void *data, struct rpc_call *call);

/*
 * Binds and listens now.  Errors: ING_EINVAL (bad address), ING_EUNAVAILABLE
 * (address in use, not a local address...), ING_EDENIED, ING_ENOMEM; e's
 * message names the address ("cannot listen on 127.0.0.1:7401: address
 * already in use").
 */
int rpc_server_start(uv_loop_t *loop, const struct rpc_server_options *o, rpc_handler h, void *data,
                     struct rpc_server **out, struct ing_error *e);

/* The port actually bound (useful with port 0). */
uint16_t rpc_server_port(const struct rpc_server *s);

/*
 * Replies and events are coalesced: what a connection sends during one
 * loop iteration goes out in one write, at the latest right after the
 * loop's next poll (which then does not block).  rpc_server_flush writes
 * everything pending now; a caller that produced a burst of replies just
 * before the loop polls (e.g. from a uv_prepare callback) calls it so that
 * they leave before the poll instead of after it.
 */
void rpc_server_flush(struct rpc_server *s);

/*
 * Closes the listener and every connection, then frees the server and calls
 * cb(data) (cb may be NULL).  Outstanding calls become dead: their abandon
 * callbacks run, and the handler must still reply to them (the reply is
 * dropped) to free them.  The handler is not called again.
 */
void rpc_server_close(struct rpc_server *s, void (*cb)(void *data), void *data);

/* ---- calls: valid from the handler until replied to ------------------- */

uint64_t rpc_call_id(const struct rpc_call *c);
/* Views into the call's own copy of its frame, valid until the reply. */
struct ing_str rpc_call_op(const struct rpc_call *c);
const msgpack_object *rpc_call_args(const struct rpc_call *c); /* a MAP, str keys */
struct ing_str rpc_call_token(const struct rpc_call *c);       /* len 0 when nil */
/* The request's on_behalf field (len 0: none): a node forwarding a request
 * names the client it forwards for; only a proven node may do that (the
 * handler checks; rpc/ only checks its form). */
struct ing_str rpc_call_on_behalf(const struct rpc_call *c);
struct ing_str rpc_call_request_id(const struct rpc_call *c); /* len 0 when nil */
/* The peer the call came from (the call's own copy, valid until the
 * reply, also once the connection is gone): what an authorisation check
 * reads. */
const struct rpc_peer *rpc_call_peer(const struct rpc_call *c);
/* The handler's own object attached to the call (NULL until set).  A
 * second set releases the first.  `release` (may be NULL) runs on it when
 * the call is freed, i.e. right after its reply. */
void rpc_call_set_data(struct rpc_call *c, void *data, void (*release)(void *data));
void *rpc_call_data(const struct rpc_call *c);
/* The handler's own object attached to the call's connection (NULL until
 * set, and for local calls and calls whose connection is gone): what the
 * handler keeps from one request of a connection to the next.  Setting
 * another releases the first; `release` (may be NULL) runs on it when the
 * connection is freed.  Set returns false (nothing kept, nothing
 * released) when the call has no connection. */
void *rpc_call_conn_data(const struct rpc_call *c);
bool rpc_call_set_conn_data(struct rpc_call *c, void *data, void (*release)(void *data));
/* False once the connection is gone (replies and pushes are dropped). */
bool rpc_call_alive(const struct rpc_call *c);

/*
 * Replies and frees the call; call exactly once per call.  `result` is one
 * encoded msgpack value, copied (NULL/0: nil).  A result that is not exactly
 * one msgpack value becomes an "internal" error reply; one that would make a
 * frame over max_frame_bytes becomes a "too_large" error reply.  When the
 * connection is gone the reply is dropped silently.
 */
void rpc_reply(struct rpc_call *c, const void *result, size_t len);
/* Same, with error [ing_err_name(code), message]. */
void rpc_reply_error(struct rpc_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Pushes an event (one encoded msgpack value, copied) for a watch: frame
 * [2, id, event].  Errors: ING_EUNAVAILABLE (connection gone, or just cut
 * off because the client does not read), ING_EINVAL (not one msgpack
 * value), ING_ETOOBIG (frame over max_frame_bytes), ING_ENOMEM.
 */
int rpc_push(struct rpc_call *c, const void *event, size_t len);

/*
 * Registers cb to run once if the connection closes before the call is
 * replied to (so a watch can stop); it runs on the loop after the
 * connection's own callbacks returned, never from inside rpc_reply/rpc_push.
 * cb may reply to the call.  Returns ING_EUNAVAILABLE (and registers
 * nothing) when the connection is already gone; else 0.  A second call
 * replaces the first registration.
 */
int rpc_call_on_abandon(struct rpc_call *c, void (*cb)(struct rpc_call *c, void *data), void *data);

/*
 * Registers cb to run once when the call is replied to (rpc_reply: code 0,
 * rpc_reply_error: its code), dead or not, with the time since the call was
 * made (request metrics).  cb must not touch the call.  A second call
 * replaces the first.
 */
void rpc_call_observe(struct rpc_call *c,
                      void (*cb)(void *data, struct ing_str op, int code, uint64_t elapsed_ns),
                      void *data);

/* ---- local calls: requests made inside the process ------------------- */

/*
 * A local call is a request that did not come over a connection (the HTTP
 * API turns its requests into them), handed to the same handler as any
 * other: it replies, pushes and is abandoned through the same functions.
 * Its reply and events go to these callbacks instead of a socket:
 *   reply(data, 0, NULL, result, len) with one msgpack value (len 0: nil),
 *   or reply(data, code, message, NULL, 0); called once, from inside
 *   rpc_reply / rpc_reply_error; the call is freed when it returns.
 *   push(data, event, len): one msgpack value; 0, or non-zero when the
 *   receiver cannot take it (rpc_push then fails with ING_EUNAVAILABLE).
 *   push may be NULL: every rpc_push fails.
 */
struct rpc_local_ops {
	void (*reply)(void *data, int code, const char *msg, const void *result, size_t len);
	int (*push)(void *data, const void *event, size_t len);
};

/*
 * Makes a call of `op` with `args` (one encoded msgpack map, copied; NULL/0:
 * {}), `token` and `request_id` (NULL or ""  when none), checked as the
 * server checks a request: op 1..64 bytes, token at most 4096 bytes,
 * request id 1..64 printable ASCII bytes, args one map with string keys.
 * The caller then hands it to the handler.  Errors: ING_EINVAL (naming
 * what is wrong), ING_EMALFORMED (args not msgpack), ING_ENOMEM.  `ops` is
 * borrowed and must outlive the call.
 */
int rpc_call_new_local(const char *op, const void *args, size_t args_len, const char *token,
                       const char *request_id, const struct rpc_local_ops *ops, void *data,
                       struct rpc_call **out, struct ing_error *e);

/* For a local call: the address of the client it is made for ("a.b.c.d:port",
 * copied, cut to fit), which rpc_call_peer then reports. */
void rpc_call_set_peer_address(struct rpc_call *c, const char *address);

/*
 * The receiver of a local call went away: the call becomes dead (replies
 * and pushes are dropped, rpc_call_alive says false), no callback of `ops`
 * runs any more, and its abandon callback, if any, runs now (it may reply,
 * which frees the call).  Call at most once, and never from inside a
 * callback of `ops`.  The caller must not use `c` afterwards.
 */
void rpc_call_local_abandon(struct rpc_call *c);

#endif
