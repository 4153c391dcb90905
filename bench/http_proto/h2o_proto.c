/*
 * h2o_proto.c - the H2O candidate (Debian's libh2o-dev 2.2.5, built on
 * libuv): GET anything -> {"ok":true} on 127.0.0.1:PORT, on a libuv loop
 * with the pause probe.  A throwaway prototype kept as the record of the
 * library choice (rpc/http.c, docs/performance.md); not built by CMake.
 */
#include <h2o.h>

#include "probe.h"

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	static h2o_generator_t gen = {NULL, NULL};
	static h2o_iovec_t body = {"{\"ok\":true}\n", 12};
	(void)self;
	req->res.status = 200;
	req->res.reason = "OK";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
	               H2O_STRLIT("application/json"));
	h2o_start_response(req, &gen);
	h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
	return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
	if (status != 0)
		return;
	uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
	uv_tcp_init(listener->loop, conn);
	if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
		uv_close((uv_handle_t *)conn, (uv_close_cb)free);
		return;
	}
	h2o_accept(&accept_ctx, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

int main(int argc, char **argv)
{
	static uv_loop_t loop;
	static uv_tcp_t listener;
	struct sockaddr_in a;
	uv_loop_init(&loop);
	h2o_config_init(&config);
	h2o_hostconf_t *host =
	    h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h2o_handler_t *h = h2o_create_handler(h2o_config_register_path(host, "/", 0), sizeof(*h));
	h->on_req = on_req;
	h2o_context_init(&ctx, &loop, &config);
	accept_ctx.ctx = &ctx;
	accept_ctx.hosts = config.hosts;
	uv_tcp_init(&loop, &listener);
	uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 18080, &a);
	if (uv_tcp_bind(&listener, (struct sockaddr *)&a, 0) != 0 ||
	    uv_listen((uv_stream_t *)&listener, 128, on_accept) != 0) {
		fprintf(stderr, "h2o_proto: cannot listen\n");
		return 1;
	}
	probe_start(&loop);
	return uv_run(&loop, UV_RUN_DEFAULT);
}
