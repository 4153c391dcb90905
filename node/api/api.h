/*
 * api.h - the operations every node serves (docs/api.md): dispatch,
 * forwarding to the leader, parking, watches.
 *
 * Owns: the requests parked until a (ready) leader can serve them, with
 * the park timer that retries them; the leader the last forward went to;
 * the open job.watch requests.  The handlers of each operation live in
 * node/api/ (one file per noun) and in node/member/ (member.*).
 *
 * A request is answered exactly once: by its handler, by the relayed reply
 * of the leader, or with `unavailable` when no leader served it within
 * request_timeout_ms or the node stops.  Bad arguments get `invalid` naming
 * the argument, and change nothing.
 */
#ifndef INGOT_NODE_API_API_H
#define INGOT_NODE_API_API_H

#include <stdint.h>

#include "common/str.h"
#include "node/core.h"
#include "rpc/server.h"

struct api;

/* Opens the park timer (it holds the node until api_close has closed it)
 * and loads the authentication settings (auth.jwt's keys).  ING_ENOMEM,
 * ING_EINVAL/ING_EIO (a JWT key file; e says which and why), or 0 and
 * *out. */
int api_new(struct node *n, struct api **out, struct ing_error *e);
/* After api_close, once the node no longer runs callbacks. */
void api_free(struct api *a);

/* The rpc server's handler (rpc_handler); data is the node.  The HTTP API
 * hands its local calls (rpc_call_new_local) here too.  Every call is
 * counted by the metrics (node/http/metrics.h) when it is replied to. */
void api_handle(void *data, struct rpc_call *call);
/* The op table's names: index i (NULL past the end), and the index of a
 * name (-1 when it is not an operation). */
const char *api_op_name(unsigned i);
int api_op_index(struct ing_str op);
/* Serves call now if this node can, else forwards it to the leader or
 * parks it until there is one. */
void api_dispatch(struct api *a, struct rpc_call *call);
/* Milliseconds a forwarded call of `op` may take (membership operations
 * wait for a new member's catch-up). */
unsigned api_call_timeout_ms(const struct api *a, struct ing_str op);

/* Requests refused by authentication or permission, counted in memory
 * (never replicated) since the node started (node/api/auth.c). */
enum api_refusal {
	API_REFUSED_UNAUTHENTICATED = 0, /* no, or a bad, credential */
	API_REFUSED_DENIED,              /* permission_denied */
	API_REFUSED_RATE_LIMITED,        /* rate_limited */
	API_REFUSAL_KINDS
};
typedef void (*api_refusal_fn)(void *data, const char *key,
                               const uint64_t count[API_REFUSAL_KINDS]);
/* Calls fn for each principal ("token:7", "jwt:alice") and source address
 * ("addr:10.0.0.9") with refusals among the most recent 256 keys. */
void api_refusals(const struct api *a, api_refusal_fn fn, void *data);
/* Refusals of each kind in all. */
void api_refusal_totals(const struct api *a, uint64_t out[API_REFUSAL_KINDS]);

/* The principal a write of this call records in the log ("token:7",
 * "jwt:alice"; "" for a member node's own calls).  Valid until the reply. */
struct ing_str api_call_principal(const struct rpc_call *call);

/* node/bus.h: after each flush, watches push new events and end the
 * finished ones. */
void api_flushed(struct api *a);
/* node/bus.h: the role changed: parked requests are dispatched again
 * (expired ones answered `unavailable`). */
void api_role_changed(struct api *a);
/* node/bus.h, stopping: watches and parked requests are answered
 * `unavailable`; nothing is served any more. */
void api_stop(struct api *a);
/* node/bus.h, stopping: closes the park timer. */
void api_close(struct api *a);

#endif
