/*
 * http_bench.c - the HTTP server of rpc/http.h alone: a trivial handler
 * under an external load generator (wrk), and the loop pauses it causes.
 *
 *   http_bench [--port P] [--seconds S]
 *
 * Serves GET /hello ({"ok":true}) on 127.0.0.1:P (default 0: any free port;
 * the port is printed as "port N" on stdout at start) for S seconds
 * (default 10) or until SIGINT/SIGTERM, on one libuv loop, the way a node
 * serves it.  A 1 ms repeating timer on the same loop measures the loop's
 * pauses: every gap between two of its callbacks beyond 1 ms is time the
 * loop could not run anything else.  At the end it prints the requests
 * served, the longest gap and the 99th and 99.9th percentile gaps.
 *
 * bench/http.sh runs it under wrk; figures in docs/performance.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "rpc/http.h"

#define MAX_GAPS (1u << 22)

static uint64_t served;
static uint64_t *gaps_us;
static size_t ngaps;
static uint64_t last_tick_ns;

static void h_hello(void *data, struct rpc_http_req *r)
{
	(void)data;
	static const char body[] = "{\"ok\":true}\n";
	served++;
	rpc_http_reply(r, 200, "application/json", body, sizeof(body) - 1);
}

static void on_probe(uv_timer_t *t)
{
	(void)t;
	uint64_t now = uv_hrtime();
	if (last_tick_ns != 0 && ngaps < MAX_GAPS)
		gaps_us[ngaps++] = (now - last_tick_ns) / 1000;
	last_tick_ns = now;
}

static void on_stop(uv_handle_t *h)
{
	uv_stop(h->loop);
}

static void on_end(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	on_stop((uv_handle_t *)s);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : (x > y ? 1 : 0);
}

static void on_closed(void *data)
{
	*(bool *)data = true;
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(int argc, char **argv)
{
	unsigned port = 0, seconds = 10;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: http_bench [--port P] [--seconds S]\n");
			return 2;
		}
	}
	ing_log_set_level(ING_LOG_LEVEL_WARN);
	gaps_us = malloc(MAX_GAPS * sizeof(*gaps_us));
	if (gaps_us == NULL)
		return 1;
	uv_loop_t loop;
	uv_loop_init(&loop);
	char address[32];
	snprintf(address, sizeof(address), "127.0.0.1:%u", port);
	struct rpc_http_options o = {.address = address, .max_connections = 1024};
	struct rpc_http_server *s;
	struct ing_error e;
	if (rpc_http_start(&loop, &o, &s, &e) != 0) {
		fprintf(stderr, "http_bench: %s\n", e.msg);
		return 1;
	}
	rpc_http_route(s, "GET", "/hello", h_hello, NULL);
	printf("port %u\n", (unsigned)rpc_http_port(s));
	fflush(stdout);

	uv_timer_t probe, end;
	uv_signal_t sigint, sigterm;
	uv_timer_init(&loop, &probe);
	uv_timer_start(&probe, on_probe, 1, 1);
	uv_timer_init(&loop, &end);
	uv_timer_start(&end, on_end, (uint64_t)seconds * 1000, 0);
	uv_signal_init(&loop, &sigint);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_signal_init(&loop, &sigterm);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_run(&loop, UV_RUN_DEFAULT);

	qsort(gaps_us, ngaps, sizeof(*gaps_us), cmp_u64);
	uint64_t max = ngaps > 0 ? gaps_us[ngaps - 1] : 0;
	uint64_t p99 = ngaps > 0 ? gaps_us[ngaps * 99 / 100] : 0;
	uint64_t p999 = ngaps > 0 ? gaps_us[ngaps * 999 / 1000] : 0;
	printf("served %llu requests; 1 ms probe: %zu ticks, gap p99 %.2f ms, p99.9 %.2f ms, "
	       "max %.2f ms\n",
	       (unsigned long long)served, ngaps, (double)p99 / 1000, (double)p999 / 1000,
	       (double)max / 1000);

	bool closed = false;
	rpc_http_close(s, on_closed, &closed);
	uv_walk(&loop, close_walk, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	free(gaps_us);
	return closed ? 0 : 1;
}
