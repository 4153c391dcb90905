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

#include "common/str.h"
#include "node/core.h"
#include "rpc/server.h"

struct api;

/* Opens the park timer (it holds the node until api_close has closed it).
 * ING_ENOMEM, or 0 and *out. */
int api_new(struct node *n, struct api **out);
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
