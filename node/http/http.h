/*
 * http.h - the node's HTTP server (docs/api.md "HTTP API"): health and
 * readiness, Prometheus metrics, the REST/JSON API over the same operations
 * as the msgpack API, and its OpenAPI document.  Served on http_address
 * from the node's loop (rpc/http.h); off when http_address is "".
 *
 * Owns: the server (rpc/http.h) with its routes, the buffer the last
 * /metrics text was rendered into, and the REST routes' table (bridge.c).
 * While the server is open it holds the node (node_hold), until its close
 * callback after http_stop.
 */
#ifndef INGOT_NODE_HTTP_HTTP_H
#define INGOT_NODE_HTTP_HTTP_H

#include "common/err.h"
#include "node/core.h"

struct rpc_http_server;

/*
 * Makes the module and, when node_cfg(n)->http_address is set, starts
 * serving there.  0 and *out; ING_ENOMEM; or rpc_http_start's errors
 * (ING_EUNAVAILABLE: address in use...) with e naming the address; on an
 * error *out is not set and nothing is left open.
 */
int http_start(struct node *n, struct http **out, struct ing_error *e);
/* node/bus.h, stopping: closes the server; requests in flight are
 * abandoned (their calls too: no reply reaches them).  Idempotent. */
void http_stop(struct http *h);
/* After http_stop, once the node no longer runs callbacks. */
void http_free(struct http *h);

/* SIGHUP: the HTTP server reads the node's TLS files again (rpc/http.h,
 * rpc_http_reload_tls: open connections finish with the old certificate).
 * 0 also when the server is off or has no TLS; else that function's
 * errors, and nothing changes. */
int http_reload_tls(struct http *h, struct ing_error *e);

/* Open HTTP connections (0 when the server is off; h may be NULL). */
unsigned http_connections(const struct http *h);

/* ---- shared by the files of node/http/ -------------------------------- */

/* The REST routes (bridge.c), added to s.  ING_ENOMEM, or rpc_http_route's
 * errors. */
int http_api_routes(struct http *h, struct rpc_http_server *s);
/* /healthz and /readyz (health.c). */
int http_health_routes(struct http *h, struct rpc_http_server *s);
struct node *http_node(const struct http *h);
/* Memory the module frees (free()) with itself: bridge.c's route table. */
void http_own(struct http *h, void *p);

#endif
