/*
 * request.h - every call this node makes to an ingot API: to its own
 * (worker reports, registration, heartbeats, leaving), to a member's
 * (forwarding to the leader, status probes), or to a list of addresses
 * (joining, checking the cluster id, the removal check).
 *
 * Owns the clients (rpc/client.h): one kept open to this node's own API,
 * one kept open per member called (made again when the members table names
 * another API address for it), and one per
 * request to a list of addresses, closed once that request's callback has
 * run.  Each client holds the node (node_hold) until it is closed.
 *
 * A request is caller-owned and must stay valid until its callback has run;
 * the callback runs exactly once, never inside the call that sent it, and
 * may free the request.  Once node_requests_close has run, every pending
 * request completes with ING_EUNAVAILABLE and new ones are refused.
 */
#ifndef INGOT_NODE_REQUEST_H
#define INGOT_NODE_REQUEST_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "node/core.h"
#include "rpc/client.h"

struct node_requests;
struct node_request;

/* status 0: result is the reply's value (valid during the call only), err
 * NULL; otherwise err holds the code (the server's, or ING_ETIMEOUT,
 * ING_EUNAVAILABLE as in rpc/client.h) and a message, result is NULL. */
typedef void (*node_request_cb)(struct node_request *q, int status, const struct ing_error *err,
                                const msgpack_object *result);

struct node_request {
	void *data;
	node_request_cb cb;
	const char *request_id; /* optional idempotency key (copied when sent) */
	/* private */
	struct rpc_request r_;
	struct node_requests *owner_;
	struct rpc_client *oneshot_;
	struct node_request *next_;
};

/* ING_ENOMEM, or 0 and *out (no client is opened yet). */
int node_requests_new(struct node *n, struct node_requests **out);
/* Closes every client (see above).  Idempotent. */
void node_requests_close(struct node_requests *rq);
/* After node_requests_close, once the node no longer runs callbacks. */
void node_requests_free(struct node_requests *rq);

/*
 * Sends `op` with args (one encoded msgpack map, copied; NULL/0: {}) and
 * rpc_call_flags (RPC_WRITE, RPC_NO_RETRY); timeout_ms covers the call with
 * its retries.  0: q->cb runs later.  Errors (q->cb never runs):
 * ING_EUNAVAILABLE (closed), ING_ENOTFOUND (node_request_member: no API
 * address known for the member), ING_EINVAL (bad address, op or request
 * id), ING_ETOOBIG, ING_ENOMEM.
 */
int node_request_self(struct node_requests *rq, struct node_request *q, const char *op,
                      const void *args, size_t len, unsigned flags, unsigned timeout_ms);
int node_request_member(struct node_requests *rq, struct node_request *q, uint64_t id,
                        const char *op, const void *args, size_t len, unsigned flags,
                        unsigned timeout_ms);
/* To the first of `addrs` that answers (rpc/client.h's failover), over a
 * client of its own. */
int node_request_addresses(struct node_requests *rq, struct node_request *q,
                           const char *const *addrs, unsigned naddrs, const char *op,
                           const void *args, size_t len, unsigned flags, unsigned timeout_ms);

#endif
