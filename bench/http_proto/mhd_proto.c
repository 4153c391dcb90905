/*
 * mhd_proto.c - the libmicrohttpd candidate (Debian's libmicrohttpd-dev
 * 0.9.75) in external mode on a libuv loop: a uv_poll on MHD's epoll fd and
 * a uv_timer at MHD_get_timeout, both running MHD_run.  GET anything ->
 * {"ok":true} on 127.0.0.1:PORT, with the pause probe.  A throwaway
 * prototype kept as the record of the library choice; not built by CMake.
 */
#include <microhttpd.h>

#include "probe.h"

static struct MHD_Daemon *daemon_;
static uv_poll_t poll_handle;
static uv_timer_t timer;
static struct MHD_Response *resp;

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
	(void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size;
	if (*con_cls == NULL) { /* first call: headers only (answering now closes keep-alive) */
		*con_cls = (void *)1;
		return MHD_YES;
	}
	return MHD_queue_response(c, 200, resp);
}

static void on_timer(uv_timer_t *t);

static void drive(void)
{
	MHD_UNSIGNED_LONG_LONG ms;
	MHD_run(daemon_);
	if (MHD_get_timeout(daemon_, &ms) == MHD_YES)
		uv_timer_start(&timer, on_timer, ms, 0);
	else
		uv_timer_stop(&timer);
}

static void on_timer(uv_timer_t *t)
{
	(void)t;
	drive();
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)p, (void)status, (void)events;
	drive();
}

int main(int argc, char **argv)
{
	static uv_loop_t loop;
	struct sockaddr_in a;
	uv_loop_init(&loop);
	resp = MHD_create_response_from_buffer(12, "{\"ok\":true}\n", MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 18081, &a);
	daemon_ = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_req,
	                           NULL, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_CONNECTION_LIMIT,
	                           1024, MHD_OPTION_END);
	if (daemon_ == NULL) {
		fprintf(stderr, "mhd_proto: cannot start\n");
		return 1;
	}
	int fd = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
	uv_poll_init(&loop, &poll_handle, fd);
	uv_poll_start(&poll_handle, UV_READABLE, on_poll);
	uv_timer_init(&loop, &timer);
	uv_timer_start(&timer, on_timer, 0, 0);
	probe_start(&loop);
	return uv_run(&loop, UV_RUN_DEFAULT);
}
