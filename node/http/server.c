/*
 * server.c - the node's HTTP server: start and stop, and the routes that
 * are not operations (/metrics, /v1/openapi.json); health.c serves
 * /healthz and /readyz, bridge.c the REST API.
 *
 * The server lives as long as the node serves: http_stop (node/bus.h,
 * stopping) closes it and the node waits for its close callback
 * (node_hold/node_release), so requests abandoned at close can still reach
 * the node's calls; the module itself is freed with the node (http_free).
 *
 * /metrics renders the process's registry (common/metrics.h) into a buffer
 * kept between scrapes, so a scrape allocates only when the text grew; the
 * collect callbacks read their numbers through small getters (metrics.c).
 * /v1/openapi.json is docs/openapi.json, embedded at build time.
 */
#include "node/http/http.h"

#include <stdlib.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "rpc/http.h"

/* docs/openapi.json (generated source, see CMakeLists.txt). */
extern const char node_openapi_json[];
extern const size_t node_openapi_json_len;

struct http {
	struct node *n;
	struct rpc_http_server *server; /* NULL when off or closed */
	struct ing_buf scrape;          /* the last /metrics text, its memory reused */
	void *owned;                    /* bridge.c's route table */
};

void http_own(struct http *h, void *p)
{
	h->owned = p;
}

struct node *http_node(const struct http *h)
{
	return h->n;
}

unsigned http_connections(const struct http *h)
{
	return h != NULL && h->server != NULL ? rpc_http_connections(h->server) : 0;
}

static void h_metrics(void *data, struct rpc_http_req *r)
{
	struct http *h = data;
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

static void on_closed(void *data)
{
	struct http *h = data;
	node_release(h->n);
}

/* A start that failed after the server opened: nobody else has h. */
static void on_failed_closed(void *data)
{
	struct http *h = data;
	struct node *n = h->n;
	http_free(h);
	node_release(n);
}

void http_stop(struct http *h)
{
	struct rpc_http_server *s = h->server;
	if (s == NULL)
		return;
	h->server = NULL;
	rpc_http_close(s, on_closed, h);
}

void http_free(struct http *h)
{
	ing_buf_free(&h->scrape);
	free(h->owned);
	free(h);
}

/* The HTTP server's TLS files: the node's, client certificates asked for
 * (ca_file) only with `required`. */
static struct rpc_http_tls http_tls_files(const struct node_config *cfg)
{
	struct rpc_http_tls t = {NULL, NULL, NULL};
	if (cfg->tls.enabled) {
		t.cert_file = cfg->tls.cert;
		t.key_file = cfg->tls.key;
		if (cfg->tls.client_certs == ING_TLS_CLIENT_CERTS_REQUIRED)
			t.ca_file = cfg->tls.ca;
	}
	return t;
}

int http_reload_tls(struct http *h, struct ing_error *e)
{
	const struct node_config *cfg = node_cfg(h->n);
	if (h->server == NULL || !cfg->tls.enabled)
		return 0;
	struct rpc_http_tls t = http_tls_files(cfg);
	return rpc_http_reload_tls(h->server, &t, e);
}

int http_start(struct node *n, struct http **out, struct ing_error *e)
{
	const struct node_config *cfg = node_cfg(n);
	struct http *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	h->n = n;
	if (cfg->http_address[0] == '\0') {
		*out = h;
		return 0;
	}
	/* A body is the JSON form of a request: its bytes travel as base64,
	 * 4/3 of their size, so the largest request that fits a frame of
	 * max_frame_bytes (16 MiB of sources in the default 17 MiB) fits a
	 * body too. */
	struct rpc_http_options o = {
	    .address = cfg->http_address,
	    .max_body_bytes = (size_t)cfg->max_frame_bytes + cfg->max_frame_bytes / 3 + 4096,
	};
	o.tls = http_tls_files(cfg); /* HTTPS, TLS 1.3, with the node's files */
	int rv = rpc_http_start(node_loop(n), &o, &h->server, e);
	if (rv != 0) {
		free(h);
		return rv;
	}
	node_hold(n); /* released by on_closed */
	rv = rpc_http_route(h->server, "GET", "/metrics", h_metrics, h);
	if (rv == 0)
		rv = rpc_http_route(h->server, "GET", "/v1/openapi.json", h_openapi, h);
	if (rv == 0)
		rv = http_health_routes(h, h->server);
	if (rv == 0)
		rv = http_api_routes(h, h->server);
	if (rv != 0) {
		ing_error_set(e, rv, "http: cannot add routes: %s", ing_err_msg(rv));
		struct rpc_http_server *s = h->server;
		h->server = NULL;
		rpc_http_close(s, on_failed_closed, h);
		return rv;
	}
	*out = h;
	return 0;
}
