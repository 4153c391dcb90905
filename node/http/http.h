/*
 * http.h - the node's HTTP server (docs/api.md "HTTP API"): health and
 * readiness, Prometheus metrics, the REST/JSON API over the same operations
 * as the msgpack API, and its OpenAPI document.  Served on http_address
 * from the node's loop (rpc/http.h); off when http_address is "".
 */
#ifndef INGOT_NODE_HTTP_HTTP_H
#define INGOT_NODE_HTTP_HTTP_H

#include "common/err.h"

struct node;
struct node_http;
struct rpc_http_server;

/*
 * Starts serving when n->cfg.http_address is set (else does nothing).
 * Errors as rpc_http_start (ING_EUNAVAILABLE: address in use...), naming
 * the address.
 */
int node_http_start(struct node *n, struct ing_error *e);
/* Closes the server; requests in flight are abandoned.  The node is held
 * until the server has closed (node_hold / node_release). */
void node_http_stop(struct node *n);

/* Open HTTP connections (0 when the server is off). */
unsigned node_http_connections(struct node *n);

/* ---- shared by the files of node/http/ -------------------------------- */

/* The REST routes (bridge.c), added to s. */
int node_http_api_routes(struct node_http *h, struct rpc_http_server *s);
/* /healthz and /readyz (health.c). */
int node_http_health_routes(struct node_http *h, struct rpc_http_server *s);
struct node *node_http_node(struct node_http *h);
/* Memory the server frees (free()) once it has closed. */
void node_http_own(struct node_http *h, void *p);

#endif
