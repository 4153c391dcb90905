/*
 * session.c - blocking calls for ingotctl on a private libuv loop.
 *
 * A session owns one loop, one rpc_client on it and one timer (for the
 * watch's back-off).  Each call submits one request and runs the loop one
 * iteration at a time until that request's callback has run; the client
 * keeps its connection between calls, so `job list --all` pages over one
 * connection.  rpc_call_sync is not used because it can carry neither a
 * request id (job submit --request-id) nor pushed events (job watch).
 *
 * Results are deep-copied out of the callback (re-encoded, then parsed into
 * the caller's zone), because the client's reply buffer is reused after it
 * returns.
 *
 * Watch: job.watch is sent with RPC_NO_RETRY (a watch must never silently
 * start over on the library's side).  When it ends with unavailable or
 * not_leader (connection lost, node restarting, no leader), the session
 * sends it again after a back-off (100 ms doubling to 1 s); the server
 * replays the job's events from the first, and the caller drops the seqs it
 * has already shown.  It gives up when `retry_window_ms` passed since the
 * first failure without any new event (by the caller's judgement) arriving
 * in between: a node that replays the old events and fails again is not
 * progress.
 *
 * The watch's `poll` hook runs between turns of the loop, outside every
 * callback, so it may make blocking calls (job logs --follow fetches each
 * finished stage's log there, over another session).  Ending a watch early
 * is only possible by closing the client, which is what happens when poll
 * fails.
 *
 * Replies up to CLI_REPLY_MAX_BYTES are accepted: artifact.get returns an
 * artifact whole, and a node's frame limit is configurable.
 *
 * Close: the client is closed (pending requests fail), the timer closed,
 * the loop run until empty and then closed; a loop that does not close is
 * a bug in the handles' accounting and is reported on stderr.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "rpc/client.h"

#define WATCH_BACKOFF_FIRST_MS 100u
#define WATCH_BACKOFF_MAX_MS   1000u

struct cli_session {
	uv_loop_t loop;
	uv_timer_t timer;
	struct rpc_client *client;
};

/* One call in flight: where its callback puts the outcome. */
struct call {
	struct rpc_request req;
	bool done;
	int status;
	struct ing_error *err;
	msgpack_zone *zone;
	msgpack_object *result;
	/* watch only */
	bool (*on_event)(void *data, const msgpack_object *event);
	void *event_data;
	bool got_new_event;
};

int cli_session_open(const struct cli_cmd *cmd, struct ing_tls *tls, uint64_t call_timeout_ms,
                     struct cli_session **out, struct ing_error *e)
{
	const char *eps[CLI_MAX_ENDPOINTS];
	for (unsigned i = 0; i < cmd->nendpoints; i++)
		eps[i] = cmd->endpoints[i];
	struct cli_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	int rv = uv_loop_init(&s->loop);
	if (rv != 0) {
		free(s);
		return ing_error_set(e, ING_EINTERNAL, "cannot create an event loop: %s",
		                     uv_strerror(rv));
	}
	uv_timer_init(&s->loop, &s->timer);
	struct rpc_client_options o;
	memset(&o, 0, sizeof(o));
	o.endpoints = eps;
	o.nendpoints = cmd->nendpoints;
	o.max_frame_bytes = CLI_REPLY_MAX_BYTES;
	o.timeout_ms = call_timeout_ms > UINT32_MAX ? UINT32_MAX : (unsigned)call_timeout_ms;
	/* A connect may not take longer than the whole call. */
	o.connect_timeout_ms = cmd->timeout_ms < RPC_DEFAULT_CONNECT_TIMEOUT_MS
	                           ? (unsigned)cmd->timeout_ms
	                           : RPC_DEFAULT_CONNECT_TIMEOUT_MS;
	o.token = cmd->token;
	o.tls = tls;
	rv = rpc_client_new(&s->loop, &o, &s->client, e);
	if (rv != 0) {
		s->client = NULL;
		cli_session_close(s);
		return rv;
	}
	*out = s;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	(void)h;
}

void cli_session_close(struct cli_session *s)
{
	if (s == NULL)
		return;
	if (s->client != NULL)
		rpc_client_close(s->client, NULL, NULL);
	uv_close((uv_handle_t *)&s->timer, on_closed);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s->loop) != 0)
		fprintf(stderr, "ingotctl: internal: event loop did not close cleanly\n");
	free(s);
}

static void call_cb(struct rpc_request *r, int status, const struct ing_error *err,
                    const msgpack_object *result)
{
	struct call *c = r->data;
	c->done = true;
	c->status = status;
	if (status == 0)
		c->status = mp_copy_to_zone(result, c->zone, c->result, c->err);
	else if (c->err != NULL)
		*c->err = *err;
}

static void call_event_cb(struct rpc_request *r, const msgpack_object *event)
{
	struct call *c = r->data;
	if (c->on_event != NULL && c->on_event(c->event_data, event))
		c->got_new_event = true;
}

/* Runs the loop until *done.  The client's timer is armed while a request
 * is pending, so the loop cannot run dry before its callback. */
static int run_until(struct cli_session *s, const bool *done, struct ing_error *e)
{
	while (!*done) {
		if (uv_run(&s->loop, UV_RUN_ONCE) == 0 && !*done)
			return ing_error_set(e, ING_EINTERNAL, "event loop ran dry during a call");
	}
	return 0;
}

static int submit(struct cli_session *s, struct call *c, const char *op, const struct mp_out *args,
                  unsigned flags, const char *request_id)
{
	c->req.data = c;
	c->req.cb = call_cb;
	c->req.event_cb = c->on_event != NULL ? call_event_cb : NULL;
	c->req.request_id = request_id;
	int rv = rpc_client_call(s->client, &c->req, op, args != NULL ? args->data : NULL,
	                         args != NULL ? args->len : 0, flags);
	if (rv == ING_ETOOBIG)
		return ing_error_set(c->err, rv,
		                     "the request is over the %u MiB frame limit: send fewer or "
		                     "smaller files",
		                     RPC_DEFAULT_MAX_FRAME_BYTES / (1024u * 1024u));
	if (rv != 0)
		return ing_error_set(c->err, rv, "cannot send '%s': %s", op, ing_err_msg(rv));
	return 0;
}

int cli_session_call(struct cli_session *s, const char *op, const struct mp_out *args,
                     unsigned flags, const char *request_id, msgpack_zone *z,
                     msgpack_object *result, struct ing_error *e)
{
	struct call c;
	memset(&c, 0, sizeof(c));
	c.err = e;
	c.zone = z;
	c.result = result;
	int rv = submit(s, &c, op, args, flags, request_id);
	if (rv == 0)
		rv = run_until(s, &c.done, e);
	return rv != 0 ? rv : c.status;
}

static void on_backoff(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until the watch's callback has run, with `poll` after
 * every turn.  When poll fails, the client is closed (the only way to end
 * a pending request), which completes the watch. */
static int run_watch(struct cli_session *s, struct call *c,
                     int (*poll)(void *data, struct ing_error *e), void *data, struct ing_error *e)
{
	while (!c->done) {
		if (uv_run(&s->loop, UV_RUN_ONCE) == 0 && !c->done)
			return ing_error_set(e, ING_EINTERNAL, "event loop ran dry during a watch");
		if (poll == NULL)
			continue;
		int rv = poll(data, e);
		if (rv == 0)
			continue;
		if (!c->done) {
			struct ing_error ignored;
			c->err = &ignored;
			rpc_client_close(s->client, NULL, NULL);
			s->client = NULL;
			(void)run_until(s, &c->done, &ignored);
			c->err = NULL;
		}
		return rv;
	}
	return 0;
}

int cli_session_watch(struct cli_session *s, uint64_t id, uint64_t retry_window_ms,
                      bool (*on_event)(void *data, const msgpack_object *event),
                      int (*poll)(void *data, struct ing_error *e), void *data, msgpack_zone *z,
                      msgpack_object *final, struct ing_error *e)
{
	if (s->client == NULL)
		return ing_error_set(e, ING_EUNAVAILABLE, "the session is closed");
	struct mp_out args;
	mp_out_init(&args);
	msgpack_pack_map(&args.pk, 1);
	mp_pack_cstr(&args.pk, "id");
	msgpack_pack_uint64(&args.pk, id);
	if (mp_out_failed(&args) != 0) {
		mp_out_free(&args);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	uint64_t failing_since = 0;
	unsigned backoff_ms = WATCH_BACKOFF_FIRST_MS;
	int rv;
	for (;;) {
		struct call c;
		memset(&c, 0, sizeof(c));
		c.err = e;
		c.zone = z;
		c.result = final;
		c.on_event = on_event;
		c.event_data = data;
		rv = submit(s, &c, "job.watch", &args, RPC_NO_RETRY, NULL);
		if (rv == 0) {
			rv = run_watch(s, &c, poll, data, e);
			if (rv != 0)
				break;
			rv = c.status;
		}
		if (rv != ING_EUNAVAILABLE && rv != ING_ENOTLEADER)
			break;
		uv_update_time(&s->loop);
		uint64_t now = uv_now(&s->loop);
		if (c.got_new_event || failing_since == 0) {
			failing_since = now;
			backoff_ms = WATCH_BACKOFF_FIRST_MS;
		}
		if (now - failing_since >= retry_window_ms)
			break;
		bool fired = false;
		s->timer.data = &fired;
		uv_timer_start(&s->timer, on_backoff, backoff_ms, 0);
		rv = run_until(s, &fired, e);
		if (rv != 0)
			break;
		backoff_ms =
		    backoff_ms * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : backoff_ms * 2;
	}
	mp_out_free(&args);
	return rv;
}
