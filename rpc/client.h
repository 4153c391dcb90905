/*
 * client.h - the client side of ingot's wire protocol (docs/protocol.md).
 *
 * Used by ingotctl, the tests, the benchmarks and by ingotd itself to
 * forward writes to the leader, so it runs on a loop the caller supplies and
 * never blocks (rpc_call_sync is the one blocking helper, for CLIs).
 *
 * A client holds at most one connection.  It connects lazily to the
 * endpoints in their given order, starting from the last one that worked,
 * and pipelines every request on that connection.  When the connection
 * fails (refused, reset, EOF before the reply, connect timeout) the pending
 * requests are sent again on the next endpoint, unless they carry
 * RPC_NO_RETRY.  A server error "unavailable" or "not_leader" is retried
 * after a backoff of 50 ms doubling to 500 ms.  Every request has one
 * deadline, timeout_ms after rpc_client_call, that covers all its retries.
 *
 * Errors a request can end with (status in its callback):
 *   - the server's error: code from its stable name (ing_err_from_name;
 *     ING_EINTERNAL for a name this build does not know), message as sent;
 *   - ING_ETIMEOUT: the deadline passed (message names the last failure);
 *   - ING_EUNAVAILABLE: every endpoint failed in a row ("could not connect
 *     to 127.0.0.1:7401 (connection refused), ..."), the connection was lost
 *     and the request had RPC_NO_RETRY, or the client was closed.
 * An endpoint "fails" when it cannot be connected to within
 * connect_timeout_ms, or when its connection ends while requests are
 * outstanding on it before it delivered any reply.  A reply frame over
 * max_frame_bytes, or anything else malformed from the server, drops the
 * connection like a network failure.  A peer whose first bytes are no
 * ingot frame fails the endpoint with "not an ingot server (...)" (an HTTP
 * server's status line is quoted), or with "the server speaks TLS" when a
 * plaintext client meets a TLS port.
 *
 * TLS (options.tls set): every connection is TLS 1.3 (common/tls.h); the
 * server's certificate must chain to the CA and name the endpoint's IP
 * address in a subjectAltName; the client presents its own certificate
 * when the ing_tls has one.  The handshake counts as part of connecting
 * (connect_timeout_ms).  A refused handshake fails the endpoint with the
 * reason ("TLS: the server's certificate is not trusted: ...").
 *
 * Everything here runs on the caller's loop thread; nothing is thread-safe.
 */
#ifndef INGOT_RPC_CLIENT_H
#define INGOT_RPC_CLIENT_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/tls.h"

/* 17 MiB: the largest command ingot stores (16 MiB, ING_COMMAND_MAX_BYTES)
 * with 1 MiB for the request around it, so that every request the limits
 * of docs/formats.md allow fits in one frame.  The server's default is the
 * same (rpc/server.h). */
#define RPC_DEFAULT_MAX_FRAME_BYTES    (17u * 1024u * 1024u)
#define RPC_DEFAULT_TIMEOUT_MS         10000u
#define RPC_DEFAULT_CONNECT_TIMEOUT_MS 1000u
/* Request ids (idempotency keys): 1..64 printable ASCII bytes. */
#define RPC_REQUEST_ID_MAX 64

struct rpc_client;

struct rpc_client_options {
	/* "a.b.c.d:port" or "localhost:port"; borrowed during rpc_client_new
	 * only (parsed and copied). */
	const char *const *endpoints;
	unsigned nendpoints;
	size_t max_frame_bytes;      /* largest reply accepted; 0: 17 MiB */
	unsigned timeout_ms;         /* per call, including retries; 0: 10000 */
	unsigned connect_timeout_ms; /* 0: 1000 */
	const char *token;           /* sent with every request; may be NULL; copied */
	struct ing_tls *tls;         /* NULL: plaintext; borrowed, must outlive the client */
};

/*
 * Creates a client on `loop`.  No connection is made until the first call.
 * Errors: ING_EINVAL (no endpoints, an endpoint that is not "a.b.c.d:port"
 * or "localhost:port", a token over 4096 bytes), ING_ENOMEM; e names it.
 */
int rpc_client_new(uv_loop_t *loop, const struct rpc_client_options *o, struct rpc_client **out,
                   struct ing_error *e);

/*
 * Closes the connection and frees the client asynchronously.  Every pending
 * request then completes with ING_EUNAVAILABLE ("client closed"); all those
 * callbacks run before cb(data).  cb may be NULL.  Safe to call from inside
 * a request callback.  After this call, rpc_client_call returns
 * ING_EUNAVAILABLE.
 */
void rpc_client_close(struct rpc_client *c, void (*cb)(void *data), void *data);

enum rpc_call_flags {
	/* A write: gets a generated request id ("c-" + 12 hex digits of the
	 * wall clock in ms + 20 random hex digits, so ids sort in time) when
	 * r->request_id is NULL; every retry carries the SAME id, so the
	 * server applies it at most once. */
	RPC_WRITE = 1,
	/* Fail with ING_EUNAVAILABLE instead of retrying when the connection
	 * is lost or the server answers "unavailable"/"not_leader".  Use it
	 * for watches, which must not silently start over. */
	RPC_NO_RETRY = 2,
};

struct rpc_pending; /* private */

/* A caller-owned request; must stay valid until its cb has run. */
struct rpc_request {
	void *data;
	/*
	 * Runs exactly once, never from inside rpc_client_call.  status 0:
	 * `result` is the reply's value (msgpack nil when none), valid only
	 * during the callback (err is NULL).  status < 0: err holds the code
	 * and a message (from the server, or local), result is NULL.  The
	 * request may be freed or reused from inside the callback.
	 */
	void (*cb)(struct rpc_request *r, int status, const struct ing_error *err,
	           const msgpack_object *result);
	/* Optional: each event pushed for this request (a watch), before cb.
	 * `event` is valid only during the callback.  Must not free r. */
	void (*event_cb)(struct rpc_request *r, const msgpack_object *event);
	/* Optional explicit idempotency key, copied by rpc_client_call. */
	const char *request_id;
	/* private */
	struct rpc_pending *pending_;
};

/*
 * Sends `op` with `args` (one encoded msgpack map, copied; NULL/0 means {}):
 * queued now, written with the other calls of this loop iteration once the
 * loop's I/O callbacks have run (a client closed before then never sends
 * it).  0: r->cb will run exactly once later.  Errors (r->cb will NOT run):
 * ING_EINVAL (empty op or over 64 bytes, args not a single msgpack map,
 * request_id not 1..64 printable ASCII bytes, cb NULL), ING_ETOOBIG (the
 * request frame exceeds max_frame_bytes), ING_EUNAVAILABLE (client
 * closing), ING_ENOMEM.
 */
int rpc_client_call(struct rpc_client *c, struct rpc_request *r, const char *op, const void *args,
                    size_t args_len, unsigned flags);
/* Same, with this call's own timeout instead of the client's (0: the
 * client's), for the few operations that legitimately take long. */
int rpc_client_call_within(struct rpc_client *c, struct rpc_request *r, const char *op,
                           const void *args, size_t args_len, unsigned flags, unsigned timeout_ms);

/*
 * The request id sent with r ("" when none), valid from a successful
 * rpc_client_call until r's cb returns.  For logs and tests.
 */
const char *rpc_request_get_id(const struct rpc_request *r);

/*
 * Blocking helper for CLIs: creates a client on a private loop, makes one
 * call, waits for it and closes everything.  On 0, *result is the reply's
 * value, deep-copied into zone z (caller-owned, must outlive *result).  On
 * error, returns the code and fills err (may be NULL) like a callback's err,
 * or rpc_client_new's error.
 */
int rpc_call_sync(const struct rpc_client_options *o, const char *op, const void *args,
                  size_t args_len, unsigned flags, msgpack_zone *z, msgpack_object *result,
                  struct ing_error *err);

#endif
