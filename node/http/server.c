/*
 * server.c - the node's HTTP server: start and stop, and the routes that
 * are not operations (/metrics, /v1/openapi.json); health.c serves
 * /healthz and /readyz, bridge.c the REST API.
 *
 * The server lives as long as the node serves: node_http_stop closes it
 * and the node waits for its close callback (node_hold/node_release), so
 * requests abandoned at close can still reach the node's calls.
 *
 * /metrics renders the process's registry (common/metrics.h) into a buffer
 * kept between scrapes, so a scrape allocates only when the text grew; the
 * collect callbacks read their numbers through small getters (metrics.c).
 * /v1/openapi.json is docs/openapi.json, embedded at build time.
 */
#include "node/http/http.h"

#include <stdlib.h>

#include "common/log.h"
#include "common/metrics.h"
#include "node/node_internal.h"
#include "rpc/http.h"

/* docs/openapi.json (generated source, see CMakeLists.txt). */
extern const char node_openapi_json[];
extern const size_t node_openapi_json_len;

struct node_http {
	struct node *n;
	struct rpc_http_server *server;
	struct ing_buf scrape; /* the last /metrics text, its memory reused */
	void *owned;           /* bridge.c's route table */
};

void node_http_own(struct node_http *h, void *p)
{
	h->owned = p;
}

struct node *node_http_node(struct node_http *h)
{
	return h->n;
}

unsigned node_http_connections(struct node *n)
{
	return n->http != NULL ? rpc_http_connections(n->http->server) : 0;
}

static void h_metrics(void *data, struct rpc_http_req *r)
{
	struct node_http *h = data;
	struct ing_metrics *m = ing_metrics_default();
	ing_buf_reset(&h->scrape);
	if (m == NULL || ing_metrics_render(m, &h->scrape) != 0) {
		rpc_http_reply_error(r, ING_ENOMEM, "out of memory rendering the metrics");
		return;
	}
	rpc_http_reply(r, 200, ING_METRICS_CONTENT_TYPE, h->scrape.data, h->scrape.len);
}

static void h_openapi(void *data, struct rpc_http_req *r)
{
	(void)data;
	rpc_http_reply(r, 200, "application/json", node_openapi_json, node_openapi_json_len);
}

int node_http_start(struct node *n, struct ing_error *e)
{
	if (n->cfg.http_address[0] == '\0')
		return 0;
	struct node_http *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	h->n = n;
	struct rpc_http_options o = {
	    .address = n->cfg.http_address,
	    .max_body_bytes = n->cfg.max_frame_bytes,
	};
	int rv = rpc_http_start(n->loop, &o, &h->server, e);
	if (rv != 0) {
		free(h);
		return rv;
	}
	n->http = h;
	rv = rpc_http_route(h->server, "GET", "/metrics", h_metrics, h);
	if (rv == 0)
		rv = rpc_http_route(h->server, "GET", "/v1/openapi.json", h_openapi, h);
	if (rv == 0)
		rv = node_http_health_routes(h, h->server);
	if (rv == 0)
		rv = node_http_api_routes(h, h->server);
	if (rv != 0) {
		node_http_stop(n);
		return ing_error_set(e, rv, "http: cannot add routes: %s", ing_err_msg(rv));
	}
	return 0;
}

static void on_closed(void *data)
{
	struct node_http *h = data;
	struct node *n = h->n;
	ing_buf_free(&h->scrape);
	free(h->owned);
	free(h);
	node_release(n);
}

void node_http_stop(struct node *n)
{
	struct node_http *h = n->http;
	if (h == NULL)
		return;
	n->http = NULL;
	node_hold(n);
	rpc_http_close(h->server, on_closed, h);
}
