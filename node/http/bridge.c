/*
 * bridge.c - the REST/JSON API (docs/api.md "HTTP API", docs/openapi.json):
 * every route is one operation of the msgpack API, served by the same code.
 *
 * A request becomes a local call (rpc/server.h) of its operation: the
 * arguments are the JSON body (an object) with the path and query
 * parameters added, typed by the route ("id:u" an unsigned integer, "stale:b"
 * a boolean, "name:s" a string), translated to msgpack by rpc/json.h (base64
 * strings at the operation's bin paths become bin).  The call goes to
 * api_handle, exactly like a call off a msgpack connection: forwarding
 * to the leader, parking while there is none, request-id dedupe, argument
 * checks and their error messages are the operation's own.  Its reply comes
 * back as JSON (200; 201 with Location for a submit), raw bytes (artifacts,
 * logs), or an error body {"error":{"code","message"}} with the status of
 * rpc_http_status_of.
 *
 * Headers: Idempotency-Key (or X-Request-Id) is the request id;
 * "Authorization: Bearer T" the token.
 *
 * Streams: a watch (GET /v1/jobs/{id}/watch) pushes the job's events; the
 * HTTP stream starts with the first event (so a watch that fails at once
 * still gets a plain error status) and carries JSON lines ({"event":...},
 * then {"job":...} or {"error":...}) or, with ?format=sse or
 * "Accept: text/event-stream", server-sent events.  A snapshot download
 * (GET /v1/snapshot) pulls the file in pieces (cluster.snapshot, then
 * cluster.snapshot_read), one piece in flight, the next asked for when the
 * previous one drained to the client.
 *
 * Lifetime of a bridged request (struct hcall): it holds the HTTP request
 * until answered and the call until it replied.  When the client goes
 * (rpc/http's abandon callback), the call is abandoned
 * (rpc_call_local_abandon: no callback of ours runs afterwards) and the
 * hcall freed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mp.h"
#include "node/api/api.h"
#include "node/http/http.h"
#include "rpc/http.h"
#include "rpc/json.h"

#define WATCH_HEARTBEAT_MS 10000
#define SNAPSHOT_PIECE     (1u << 20)

enum result {
	RES_JSON,     /* the result as JSON, 200 */
	RES_CREATED,  /* 201, Location: /v1/jobs/{id} */
	RES_MEMBERS,  /* the "members" of a status */
	RES_RAW,      /* bin result as application/octet-stream */
	RES_TEXT,     /* bin result as text/plain */
	RES_WATCH,    /* job.watch: a stream */
	RES_SNAPSHOT, /* cluster.snapshot then its pieces: a stream */
};

struct api_route {
	const char *method;
	const char *pattern;
	const char *op; /* NULL: the {op} path parameter */
	const char *params;
	bool body;
	enum result result;
};

static const char *const submit_bins[] = {"sources[].data", NULL};
static const char *const report_bins[] = {"log", "outputs[].data", NULL};

/* clang-format off */
static const struct api_route routes[] = {
    {"GET", "/v1/status", "status", "stale:b", false, RES_JSON},
    {"GET", "/v1/node", "node.info", "", false, RES_JSON},
    {"GET", "/v1/log-level", "node.log_level", "", false, RES_JSON},
    {"PUT", "/v1/log-level", "node.log_level", "", true, RES_JSON},
    {"GET", "/v1/targets", "target.list", "after:s limit:u stale:b", false, RES_JSON},
    {"GET", "/v1/targets/{name}", "target.get", "name:s stale:b", false, RES_JSON},
    {"PUT", "/v1/targets/{name}", "target.put", "name:s", true, RES_JSON},
    {"DELETE", "/v1/targets/{name}", "target.delete", "name:s", false, RES_JSON},
    {"POST", "/v1/jobs", "job.submit", "", true, RES_CREATED},
    {"GET", "/v1/jobs", "job.list", "state:s target:s after:u limit:u stale:b", false, RES_JSON},
    {"GET", "/v1/jobs/{id}", "job.get", "id:u stale:b", false, RES_JSON},
    {"POST", "/v1/jobs/{id}/cancel", "job.cancel", "id:u", true, RES_JSON},
    {"POST", "/v1/jobs/{id}/retry", "job.retry", "id:u", true, RES_JSON},
    {"GET", "/v1/jobs/{id}/events", "job.events", "id:u stale:b", false, RES_JSON},
    {"GET", "/v1/jobs/{id}/watch", "job.watch", "id:u", false, RES_WATCH},
    {"GET", "/v1/jobs/{id}/stages/{stage}/log", "job.log", "id:u stage:u stale:b", false, RES_TEXT},
    {"GET", "/v1/artifacts/{sha256}", "artifact.get", "sha256:s job:u stale:b", false, RES_RAW},
    {"GET", "/v1/nodes", "node.list", "stale:b", false, RES_JSON},
    {"POST", "/v1/nodes/{id}/drain", "node.drain", "id:u", true, RES_JSON},
    {"POST", "/v1/nodes/{id}/undrain", "node.undrain", "id:u", true, RES_JSON},
    {"POST", "/v1/nodes/{id}/forget", "node.forget", "id:u", true, RES_JSON},
    {"GET", "/v1/members", "status", "stale:b", false, RES_MEMBERS},
    {"GET", "/v1/cluster/events", "cluster.events", "after:u limit:u stale:b", false, RES_JSON},
    {"GET", "/v1/snapshot", "cluster.snapshot", "stale:b", false, RES_SNAPSHOT},
    {"POST", "/v1/ops/{op}", NULL, "", true, RES_JSON},
};
/* clang-format on */

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

struct bridge;

struct route_ctx {
	struct bridge *b;
	const struct api_route *rt;
};

struct bridge {
	struct http *h;
	struct route_ctx ctx[NROUTES];
};

struct hcall {
	struct bridge *b;
	const struct api_route *rt;
	struct rpc_http_req *req; /* NULL once answered */
	struct rpc_call *call;    /* NULL when no call is in flight */
	bool sse;
	bool streaming;
	/* snapshot download */
	char snap_id[40];
	uint64_t snap_size;
	uint64_t snap_off;
};

static const struct rpc_local_ops local_ops;

static const char *const *bins_of(const char *op)
{
	if (strcmp(op, "job.submit") == 0)
		return submit_bins;
	if (strcmp(op, "worker.report") == 0)
		return report_bins;
	return NULL;
}

/* ---- answering ---------------------------------------------------------- */

static void hcall_free_if_done(struct hcall *hc)
{
	if (hc->req == NULL && hc->call == NULL)
		free(hc);
}

static void answer_error(struct hcall *hc, int code, const char *msg)
{
	struct rpc_http_req *r = hc->req;
	hc->req = NULL;
	if (hc->streaming) {
		json_t *j = json_pack("{s:s,s:s?}", "code", ing_err_name(code), "message", msg);
		if (j != NULL && !hc->sse)
			j = json_pack("{s:o}", "error", j);
		char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
		if (text != NULL) {
			if (hc->sse)
				rpc_http_stream_write(r, "event: error\ndata: ", 19);
			rpc_http_stream_write(r, text, strlen(text));
			rpc_http_stream_write(r, hc->sse ? "\n\n" : "\n", hc->sse ? 2 : 1);
		}
		free(text);
		json_decref(j);
		rpc_http_stream_end(r);
		return;
	}
	if (code == ING_EUNAVAILABLE || code == ING_ENOTLEADER)
		rpc_http_add_header(r, "Retry-After", "1");
	rpc_http_reply_error(r, code, "%s", msg != NULL ? msg : ing_err_msg(code));
}

static int parse_result(const void *result, size_t len, msgpack_zone *z, msgpack_object *o)
{
	size_t used = 0;
	if (len == 0) {
		o->type = MSGPACK_OBJECT_NIL;
		return 0;
	}
	return mp_parse(result, len, z, o, &used, NULL);
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    ing_str_eq_c((struct ing_str){kv->key.via.str.ptr, kv->key.via.str.size}, key))
			return &kv->val;
	}
	return NULL;
}

static void answer_json(struct hcall *hc, unsigned status, const msgpack_object *o)
{
	struct rpc_http_req *r = hc->req;
	hc->req = NULL;
	json_t *j = rpc_mp_to_json(o);
	if (j == NULL) {
		rpc_http_reply_error(r, ING_ENOMEM, "out of memory encoding the answer");
		return;
	}
	rpc_http_reply_json(r, status, j);
	json_decref(j);
}

static void answer_result(struct hcall *hc, const void *result, size_t len)
{
	msgpack_zone z;
	msgpack_object o;
	msgpack_zone_init(&z, 4096);
	if (parse_result(result, len, &z, &o) != 0) {
		msgpack_zone_destroy(&z);
		answer_error(hc, ING_EINTERNAL, "unexpected result");
		return;
	}
	const msgpack_object *v = &o;
	switch (hc->rt->result) {
	case RES_CREATED: {
		const msgpack_object *id = map_get(&o, "id");
		if (id != NULL && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			char loc[64];
			snprintf(loc, sizeof(loc), "/v1/jobs/%" PRIu64, id->via.u64);
			rpc_http_add_header(hc->req, "Location", loc);
		}
		answer_json(hc, 201, &o);
		break;
	}
	case RES_MEMBERS:
		v = map_get(&o, "members");
		if (v == NULL) {
			answer_error(hc, ING_EINTERNAL, "status without members");
			break;
		}
		answer_json(hc, 200, v);
		break;
	case RES_RAW:
	case RES_TEXT: {
		struct rpc_http_req *r = hc->req;
		hc->req = NULL;
		if (o.type != MSGPACK_OBJECT_BIN) {
			rpc_http_reply_error(r, ING_EINTERNAL, "expected bytes from the operation");
			break;
		}
		rpc_http_reply(r, 200,
		               hc->rt->result == RES_TEXT ? "text/plain; charset=utf-8"
		                                          : "application/octet-stream",
		               o.via.bin.ptr, o.via.bin.size);
		break;
	}
	default: answer_json(hc, 200, &o); break;
	}
	msgpack_zone_destroy(&z);
}

/* ---- streams ------------------------------------------------------------ */

/* Writes one line (JSON lines) or one event (SSE) of kind `what`. */
static int stream_item(struct hcall *hc, const char *what, const void *value, size_t len)
{
	msgpack_zone z;
	msgpack_object o;
	msgpack_zone_init(&z, 4096);
	int rv = parse_result(value, len, &z, &o);
	json_t *inner = rv == 0 ? rpc_mp_to_json(&o) : NULL;
	/* JSON lines wrap the value in {what: value}; SSE names it in "event:". */
	json_t *line = inner != NULL && !hc->sse ? json_pack("{s:o}", what, inner) : inner;
	char *text = line != NULL ? json_dumps(line, JSON_COMPACT) : NULL;
	msgpack_zone_destroy(&z);
	json_decref(line);
	if (text == NULL)
		return ING_ENOMEM;
	struct rpc_http_req *r = hc->req;
	char head[64];
	if (hc->sse) {
		int n = snprintf(head, sizeof(head), "event: %s\ndata: ", what);
		rv = rpc_http_stream_write(r, head, (size_t)n);
	}
	if (rv == 0)
		rv = rpc_http_stream_write(r, text, strlen(text));
	if (rv == 0)
		rv = rpc_http_stream_write(r, hc->sse ? "\n\n" : "\n", hc->sse ? 2 : 1);
	free(text);
	return rv;
}

static int start_watch_stream(struct hcall *hc)
{
	if (hc->streaming)
		return 0;
	int rv = rpc_http_stream_start(hc->req, 200,
	                               hc->sse ? "text/event-stream" : "application/x-ndjson",
	                               hc->sse ? ": keepalive\n\n" : "\n", WATCH_HEARTBEAT_MS);
	if (rv == 0)
		hc->streaming = true;
	return rv;
}

static int on_push(void *data, const void *event, size_t len)
{
	struct hcall *hc = data;
	if (hc->req == NULL || start_watch_stream(hc) != 0)
		return ING_EUNAVAILABLE;
	return stream_item(hc, "event", event, len);
}

static void watch_done(struct hcall *hc, const void *result, size_t len)
{
	if (start_watch_stream(hc) == 0) {
		stream_item(hc, "job", result, len);
		rpc_http_stream_end(hc->req);
	} else {
		rpc_http_reply_error(hc->req, ING_ENOMEM, "cannot start the stream");
	}
	hc->req = NULL;
}

/* ---- snapshot download ------------------------------------------------- */

static int dispatch(struct hcall *hc, const char *op, const struct mp_out *args,
                    struct ing_error *e);

static void snapshot_next(struct rpc_http_req *r, void *data)
{
	struct hcall *hc = data;
	(void)r;
	if (hc->snap_off >= hc->snap_size) {
		rpc_http_stream_end(hc->req);
		hc->req = NULL;
		hcall_free_if_done(hc);
		return;
	}
	struct mp_out o;
	struct ing_error e;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 3);
	mp_pack_cstr(&o.pk, "id");
	mp_pack_cstr(&o.pk, hc->snap_id);
	mp_pack_cstr(&o.pk, "offset");
	msgpack_pack_uint64(&o.pk, hc->snap_off);
	mp_pack_cstr(&o.pk, "length");
	msgpack_pack_uint64(&o.pk, SNAPSHOT_PIECE);
	int rv = mp_out_failed(&o) == 0 ? dispatch(hc, "cluster.snapshot_read", &o, &e)
	                                : ing_error_set(&e, ING_ENOMEM, "out of memory");
	mp_out_free(&o);
	if (rv != 0)
		answer_error(hc, rv, e.msg);
}

/* A reply of cluster.snapshot or cluster.snapshot_read. */
static void snapshot_reply(struct hcall *hc, const void *result, size_t len)
{
	msgpack_zone z;
	msgpack_object o;
	msgpack_zone_init(&z, 1024);
	int rv = parse_result(result, len, &z, &o);
	if (rv == 0 && !hc->streaming) {
		const msgpack_object *id = map_get(&o, "id"), *size = map_get(&o, "size"),
		                     *sha = map_get(&o, "sha256");
		if (id == NULL || id->type != MSGPACK_OBJECT_STR ||
		    id->via.str.size >= sizeof(hc->snap_id) || size == NULL ||
		    size->type != MSGPACK_OBJECT_POSITIVE_INTEGER || sha == NULL ||
		    sha->type != MSGPACK_OBJECT_STR || sha->via.str.size != 64) {
			rv = ING_EINTERNAL;
		} else {
			char len_text[32], digest[65];
			memcpy(hc->snap_id, id->via.str.ptr, id->via.str.size);
			hc->snap_size = size->via.u64;
			memcpy(digest, sha->via.str.ptr, 64);
			digest[64] = '\0';
			snprintf(len_text, sizeof(len_text), "%" PRIu64, hc->snap_size);
			rpc_http_add_header(hc->req, "X-Ingot-Snapshot-Size", len_text);
			rpc_http_add_header(hc->req, "X-Ingot-Snapshot-Sha256", digest);
			rpc_http_add_header(hc->req, "Content-Disposition",
			                    "attachment; filename=\"ingot.snapshot\"");
			rv = rpc_http_stream_start(hc->req, 200, "application/octet-stream", NULL,
			                           0);
			hc->streaming = rv == 0;
		}
	} else if (rv == 0) {
		if (o.type != MSGPACK_OBJECT_BIN || o.via.bin.size == 0)
			rv = ING_EINTERNAL;
		else
			rv = rpc_http_stream_write(hc->req, o.via.bin.ptr, o.via.bin.size);
		if (rv == 0)
			hc->snap_off += o.via.bin.size;
	}
	msgpack_zone_destroy(&z);
	if (rv == 0)
		rv = rpc_http_stream_on_drain(hc->req, snapshot_next, hc);
	if (rv != 0)
		answer_error(hc, rv, "snapshot download failed");
}

/* ---- the local call ---------------------------------------------------- */

static void on_reply(void *data, int code, const char *msg, const void *result, size_t len)
{
	struct hcall *hc = data;
	hc->call = NULL; /* freed by rpc/server when this returns */
	if (code != 0)
		answer_error(hc, code, msg);
	else if (hc->rt->result == RES_WATCH)
		watch_done(hc, result, len);
	else if (hc->rt->result == RES_SNAPSHOT)
		snapshot_reply(hc, result, len);
	else
		answer_result(hc, result, len);
	hcall_free_if_done(hc);
}

static const struct rpc_local_ops local_ops = {on_reply, on_push};

/* The client went away: drop its answer, abandon the call. */
static void on_http_gone(struct rpc_http_req *r, void *data)
{
	struct hcall *hc = data;
	if (hc->streaming)
		rpc_http_stream_end(r);
	else
		rpc_http_reply(r, 500, NULL, NULL, 0); /* dropped: frees r */
	hc->req = NULL;
	struct rpc_call *c = hc->call;
	hc->call = NULL;
	if (c != NULL)
		rpc_call_local_abandon(c);
	free(hc);
}

/* Hands a call of `op` to the node.  0, or an error (nothing sent). */
static int dispatch(struct hcall *hc, const char *op, const struct mp_out *args,
                    struct ing_error *e)
{
	struct rpc_http_req *r = hc->req;
	const char *rid = rpc_http_req_header(r, "Idempotency-Key");
	const char *xrid = rpc_http_req_header(r, "X-Request-Id");
	if (rid != NULL && xrid != NULL && strcmp(rid, xrid) != 0)
		return ing_error_set(e, ING_EINVAL,
		                     "headers Idempotency-Key and X-Request-Id differ; send one");
	if (rid == NULL)
		rid = xrid;
	const char *auth = rpc_http_req_header(r, "Authorization");
	const char *token = NULL;
	if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0)
		token = auth + 7;
	struct rpc_call *call;
	int rv =
	    rpc_call_new_local(op, args->data, args->len, token, rid, &local_ops, hc, &call, e);
	if (rv != 0)
		return rv;
	hc->call = call;
	api_handle(http_node(hc->b->h), call); /* may reply at once */
	return 0;
}

/* ---- arguments ---------------------------------------------------------- */

/* The JSON value of parameter `text` of type `type` ('u', 'b', 's'). */
static json_t *param_value(const char *name, char type, const char *text, struct ing_error *e)
{
	if (type == 's')
		return rpc_json_text(text, strlen(text));
	if (type == 'b') {
		if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0 || text[0] == '\0')
			return json_true();
		if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
			return json_false();
		ing_error_set(e, ING_EINVAL, "parameter '%s': expected true or false", name);
		return NULL;
	}
	char *end = NULL;
	unsigned long long v = strtoull(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || v > (unsigned long long)INT64_MAX) {
		ing_error_set(e, ING_EINVAL, "parameter '%s': '%.40s' is not an unsigned integer",
		              name, text);
		return NULL;
	}
	return json_integer((json_int_t)v);
}

/* Builds the call's args: the body, then the path and query parameters. */
static int build_args(struct rpc_http_req *r, const struct api_route *rt, const char *op,
                      struct mp_out *out, struct ing_error *e)
{
	json_t *args = NULL;
	size_t body_len = 0;
	rpc_http_req_body(r, &body_len);
	int rv;
	if (rt->body || body_len > 0) {
		rv = rpc_http_req_json(r, &args, e);
		if (rv != 0)
			return rv;
	} else {
		args = json_object();
		if (args == NULL)
			return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	rv = 0;
	for (const char *p = rt->params; rv == 0 && *p != '\0';) {
		char name[32];
		size_t n = strcspn(p, ":");
		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		char type = p[n + 1];
		p += n + 2;
		while (*p == ' ')
			p++;
		const char *text = rpc_http_req_param(r, name);
		if (text == NULL)
			text = rpc_http_req_query(r, name);
		if (text == NULL)
			continue;
		json_t *v = param_value(name, type, text, e);
		if (v == NULL) {
			rv = e->code != 0 ? e->code : ING_ENOMEM;
			break;
		}
		json_t *had = json_object_get(args, name);
		if (had != NULL && !json_equal(had, v)) {
			json_decref(v);
			rv =
			    ing_error_set(e, ING_EINVAL,
			                  "'%s' in the body differs from the one in the URL", name);
			break;
		}
		json_object_set_new(args, name, v);
	}
	if (rv == 0)
		rv = rpc_json_to_mp(args, bins_of(op), &out->pk, e);
	if (rv == 0 && mp_out_failed(out) != 0)
		rv = ing_error_set(e, ING_ENOMEM, "out of memory");
	json_decref(args);
	return rv;
}

static bool wants_sse(struct rpc_http_req *r)
{
	const char *f = rpc_http_req_query(r, "format");
	if (f != NULL)
		return strcmp(f, "sse") == 0;
	const char *accept = rpc_http_req_header(r, "Accept");
	return accept != NULL && strstr(accept, "text/event-stream") != NULL;
}

static void h_api(void *data, struct rpc_http_req *r)
{
	const struct route_ctx *ctx = data;
	struct bridge *b = ctx->b;
	const struct api_route *rt = ctx->rt;
	const char *op = rt->op != NULL ? rt->op : rpc_http_req_param(r, "op");
	struct ing_error e;
	struct mp_out args;

	if (rt->op == NULL &&
	    (strcmp(op, "job.watch") == 0 || strcmp(op, "cluster.snapshot") == 0)) {
		rpc_http_reply_error(r, ING_EINVAL,
		                     "operation '%s' streams: use GET /v1/jobs/{id}/watch or GET "
		                     "/v1/snapshot",
		                     op);
		return;
	}
	struct hcall *hc = calloc(1, sizeof(*hc));
	if (hc == NULL) {
		rpc_http_reply_error(r, ING_ENOMEM, "out of memory");
		return;
	}
	hc->b = b;
	hc->rt = rt;
	hc->req = r;
	hc->sse = rt->result == RES_WATCH && wants_sse(r);
	ing_error_clear(&e);
	mp_out_init(&args);
	int rv = build_args(r, rt, op, &args, &e);
	if (rv == 0 && rpc_http_req_on_abandon(r, on_http_gone, hc) != 0)
		rv = ing_error_set(&e, ING_EUNAVAILABLE, "client went away");
	if (rv == 0)
		rv = dispatch(hc, op, &args, &e);
	mp_out_free(&args);
	if (rv != 0) {
		rpc_http_reply_error(r, rv, "%s", e.msg);
		free(hc);
	}
	/* else hc may be gone already: the operation may have replied. */
}

int http_api_routes(struct http *h, struct rpc_http_server *s)
{
	struct bridge *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return ING_ENOMEM;
	b->h = h;
	http_own(h, b);
	int rv = 0;
	for (size_t i = 0; rv == 0 && i < NROUTES; i++) {
		b->ctx[i].b = b;
		b->ctx[i].rt = &routes[i];
		rv = rpc_http_route(s, routes[i].method, routes[i].pattern, h_api, &b->ctx[i]);
	}
	return rv;
}
