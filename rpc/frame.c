/*
 * frame.c - framing, addresses, libuv errors and the message codec shared
 * by the server and the client (see frame.h and docs/protocol.md).
 *
 * The wire format in one place:
 *   frame   = u32 big-endian length N (1..max_frame_bytes), N bytes body
 *   body    = exactly one msgpack value, one of
 *   request = [0, id:uint, op:str, args:map(str keys), token:str|nil,
 *              request_id:str|nil]
 *   reply   = [1, id:uint, error:nil|[code:str, message:str], result:any]
 *   event   = [2, id:uint, event:any]
 *
 * Decoding never looks at msgpack bytes itself: mp_parse_exact bounds-checks
 * the input before msgpack-c allocates, and mp_cursor reads the header
 * fields strictly.  A request's request_id of the wrong *type* is malformed
 * (the connection is closed); one of the right type but bad content is left
 * to the server, which answers "invalid" and keeps the connection.
 *
 * The reader buffers at most one frame plus what the kernel handed over
 * with it: the length header is checked before the buffer grows for the
 * body, so a peer announcing 1 GiB gets "too_large" after 4 bytes.
 */
#include "rpc/frame.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#define READ_CHUNK_BYTES (64u * 1024u)

int rpc_parse_address(const char *s, struct sockaddr_in *out, struct ing_error *e)
{
	char host[64];
	const char *colon = s == NULL ? NULL : strrchr(s, ':');
	if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(host))
		return ing_error_set(e, ING_EINVAL, "address '%s': expected a.b.c.d:port",
		                     s == NULL ? "(null)" : s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	const char *p = colon + 1;
	unsigned long port = 0;
	if (*p == '\0' || strlen(p) > 5)
		return ing_error_set(e, ING_EINVAL, "address '%s': bad port", s);
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return ing_error_set(e, ING_EINVAL, "address '%s': bad port", s);
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535)
		return ing_error_set(e, ING_EINVAL, "address '%s': port over 65535", s);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return ing_error_set(e, ING_EINVAL,
		                     "address '%s': expected an IPv4 address a.b.c.d or localhost",
		                     s);
	*out = a;
	return 0;
}

void rpc_format_address(const struct sockaddr_in *a, char *buf, size_t cap)
{
	char ip[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
}

/* ---- sniffing ---------------------------------------------------------- */

enum rpc_sniff rpc_sniff(const char *p, size_t n)
{
	static const char *const http[] = {"GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI",
	                                   "PATC", "CONN", "TRAC", "PRI ", "HTTP"};
	if (n == 0)
		return RPC_SNIFF_MORE;
	unsigned char b = (unsigned char)p[0];
	if (b == 0x16 || b == 0x15) /* TLS handshake or alert record */
		return RPC_SNIFF_TLS;
	if (b <= 0x0f)
		return RPC_SNIFF_INGOT;
	if (b < 'A' || b > 'Z')
		return RPC_SNIFF_OTHER;
	if (n < 4)
		return RPC_SNIFF_MORE;
	for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
		if (memcmp(p, http[i], 4) == 0)
			return RPC_SNIFF_HTTP;
	}
	return RPC_SNIFF_OTHER;
}

void rpc_sniff_line(const char *p, size_t n, char *buf, size_t cap)
{
	size_t j = 0;
	for (size_t i = 0; i < n && i < 60 && j + 1 < cap; i++) {
		char c = p[i];
		if (c == '\r' || c == '\n')
			break;
		buf[j++] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	buf[j] = '\0';
}

/* ---- frame reader ------------------------------------------------------ */

void rpc_reader_init(struct rpc_reader *r, size_t max_frame_bytes)
{
	memset(r, 0, sizeof(*r));
	r->max_frame_bytes = max_frame_bytes;
}

void rpc_reader_free(struct rpc_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->pos = r->cap = 0;
}

static uint32_t be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

/* Moves the unconsumed bytes to the front and makes room for `want` more. */
static int reserve(struct rpc_reader *r, size_t want)
{
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (r->cap - r->len >= want)
		return 0;
	return ing_grow(&r->buf, &r->cap, r->len + want, READ_CHUNK_BYTES);
}

void rpc_reader_alloc(struct rpc_reader *r, uv_buf_t *out)
{
	/* Give back the memory of a big frame once it has been consumed. */
	if (r->len == r->pos && r->cap > 4 * READ_CHUNK_BYTES)
		rpc_reader_free(r);
	size_t have = r->len - r->pos;
	size_t want = READ_CHUNK_BYTES;
	/* Room for the whole of a frame whose header is buffered, so a big
	 * frame is read in few calls; never more than the limit allows. */
	if (have >= RPC_FRAME_HEADER_BYTES) {
		size_t n = be32(r->buf + r->pos);
		if (n <= r->max_frame_bytes && RPC_FRAME_HEADER_BYTES + n > have &&
		    RPC_FRAME_HEADER_BYTES + n - have > want)
			want = RPC_FRAME_HEADER_BYTES + n - have;
	}
	if (r->cap - r->len < want) {
		if (reserve(r, want) != 0) {
			*out = uv_buf_init(NULL, 0);
			return;
		}
	}
	*out = uv_buf_init(r->buf + r->len, (unsigned)(r->cap - r->len));
}

int rpc_reader_next(struct rpc_reader *r, const char **body, size_t *len, struct ing_error *e)
{
	size_t have = r->len - r->pos;
	if (have < RPC_FRAME_HEADER_BYTES)
		return 0;
	uint32_t n = be32(r->buf + r->pos);
	if (n == 0)
		return ing_error_set(e, ING_EMALFORMED,
		                     "frame of 0 bytes (a frame holds one value)");
	if (n > r->max_frame_bytes)
		return ing_error_set(e, ING_ETOOBIG, "frame of %u bytes exceeds the limit of %zu",
		                     n, r->max_frame_bytes);
	if (have - RPC_FRAME_HEADER_BYTES < n)
		return 0;
	*body = r->buf + r->pos + RPC_FRAME_HEADER_BYTES;
	*len = n;
	r->pos += RPC_FRAME_HEADER_BYTES + n;
	if (r->pos == r->len)
		r->pos = r->len = 0;
	return 1;
}

size_t rpc_reader_partial(const struct rpc_reader *r)
{
	return r->len - r->pos;
}

/* ---- message codec ----------------------------------------------------- */

bool rpc_request_id_valid(struct ing_str s)
{
	if (s.len == 0 || s.len > RPC_REQUEST_ID_MAX)
		return false;
	for (uint32_t i = 0; i < s.len; i++) {
		if (s.ptr[i] < 0x21 || s.ptr[i] > 0x7e)
			return false;
	}
	return true;
}

/* A STR or nil header field; nil gives len 0. */
static int next_str_or_nil(struct mp_cursor *c, const char *field, uint32_t max_len,
                           struct ing_str *out)
{
	if (c->i < c->n && c->items[c->i].type == MSGPACK_OBJECT_NIL) {
		c->i++;
		out->ptr = NULL;
		out->len = 0;
		return 0;
	}
	int rv = mp_next_str(c, field, max_len, out);
	if (rv != 0 && c->i > 0 && c->items[c->i - 1].type != MSGPACK_OBJECT_STR)
		return ing_error_set(c->err, ING_EMALFORMED,
		                     "%s: field '%s': expected a string or nil", c->what, field);
	return rv;
}

static int decode_request(struct mp_cursor *c, struct rpc_msg *m)
{
	int rv = mp_next_str(c, "op", UINT32_MAX, &m->op);
	if (rv != 0)
		return rv;
	const msgpack_object *args;
	if ((rv = mp_next_object(c, "args", &args)) != 0)
		return rv;
	if (args->type != MSGPACK_OBJECT_MAP)
		return ing_error_set(c->err, ING_EMALFORMED,
		                     "request: field 'args': expected a map");
	for (uint32_t i = 0; i < args->via.map.size; i++) {
		if (args->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
			return ing_error_set(c->err, ING_EMALFORMED,
			                     "request: field 'args': keys must be strings");
	}
	m->args = args;
	if ((rv = next_str_or_nil(c, "token", UINT32_MAX, &m->token)) != 0)
		return rv;
	return next_str_or_nil(c, "request_id", UINT32_MAX, &m->request_id);
}

static int decode_reply(struct mp_cursor *c, struct rpc_msg *m)
{
	const msgpack_object *err;
	int rv = mp_next_object(c, "error", &err);
	if (rv != 0)
		return rv;
	m->error_code = 0;
	if (err->type != MSGPACK_OBJECT_NIL) {
		struct mp_cursor ec;
		if ((rv = mp_cursor_open(&ec, err, 2, 2, "reply error", c->err)) != 0)
			return rv;
		if ((rv = mp_next_str(&ec, "code", 64, &m->error_name)) != 0 ||
		    (rv = mp_next_str(&ec, "message", UINT32_MAX, &m->error_msg)) != 0)
			return rv;
		char name[65];
		memcpy(name, m->error_name.ptr, m->error_name.len);
		name[m->error_name.len] = '\0';
		m->error_code = ing_err_from_name(name);
		if (m->error_code == 0)
			m->error_code = ING_EINTERNAL;
	}
	return mp_next_object(c, "result", &m->result);
}

int rpc_msg_decode(const void *body, size_t len, msgpack_zone *zone, struct rpc_msg *out,
                   bool *id_known, struct ing_error *e)
{
	msgpack_object root;
	struct mp_cursor c;
	struct rpc_msg m;
	uint64_t kind;
	int rv;

	memset(&m, 0, sizeof(m));
	*id_known = false;
	if ((rv = mp_parse_exact(body, len, false, zone, &root, "message", e)) != 0)
		return rv;
	if ((rv = mp_cursor_open(&c, &root, 3, 6, "message", e)) != 0)
		return rv;
	if ((rv = mp_next_u64(&c, "type", 2, &kind)) != 0)
		return ing_error_set(e, ING_EMALFORMED,
		                     "message: field 'type': expected 0 (request), 1 (reply) or 2 "
		                     "(event)");
	static const uint32_t sizes[] = {6, 4, 3};
	static const char *const names[] = {"request", "reply", "event"};
	m.kind = (enum rpc_msg_kind)kind;
	c.what = names[kind];
	if ((rv = mp_next_u64(&c, "id", UINT64_MAX, &m.id)) != 0)
		return rv;
	*id_known = true;
	out->id = m.id;
	if (c.n != sizes[kind])
		return ing_error_set(e, ING_EMALFORMED, "%s: expected %u items, got %u",
		                     names[kind], sizes[kind], c.n);
	switch (m.kind) {
	case RPC_MSG_REQUEST: rv = decode_request(&c, &m); break;
	case RPC_MSG_REPLY: rv = decode_reply(&c, &m); break;
	case RPC_MSG_EVENT: rv = mp_next_object(&c, "event", &m.result); break;
	}
	if (rv == 0)
		rv = mp_cursor_close(&c);
	if (rv != 0)
		return rv;
	*out = m;
	return 0;
}

int rpc_check_value(const void *value, size_t len)
{
	size_t n;
	if (value == NULL || len == 0)
		return 0;
	if (mp_check_bounds(value, len, MP_MAX_DEPTH, &n) != 0 || n != len)
		return ING_EINVAL;
	return 0;
}

static void begin(struct mp_out *o)
{
	static const char zero[RPC_FRAME_HEADER_BYTES] = {0};
	mp_out_reset(o);
	mp_out_raw(o, zero, sizeof(zero));
}

static int finish(struct mp_out *o, size_t max_frame_bytes)
{
	int rv = mp_out_failed(o);
	if (rv != 0)
		return rv;
	size_t n = o->len - RPC_FRAME_HEADER_BYTES;
	if (n > max_frame_bytes || n > UINT32_MAX)
		return ING_ETOOBIG;
	unsigned char *p = (unsigned char *)o->data;
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
	return 0;
}

static void pack_value(struct mp_out *o, const void *value, size_t len)
{
	if (value == NULL || len == 0)
		msgpack_pack_nil(&o->pk);
	else
		mp_out_raw(o, value, len);
}

int rpc_encode_request(struct mp_out *o, size_t max_frame_bytes, uint64_t id, const char *op,
                       const void *args, size_t args_len, const char *token, const char *request_id)
{
	if (rpc_check_value(args, args_len) != 0)
		return ING_EINVAL;
	begin(o);
	msgpack_pack_array(&o->pk, 6);
	msgpack_pack_uint8(&o->pk, RPC_MSG_REQUEST);
	msgpack_pack_uint64(&o->pk, id);
	mp_pack_cstr(&o->pk, op);
	if (args == NULL || args_len == 0)
		msgpack_pack_map(&o->pk, 0);
	else
		mp_out_raw(o, args, args_len);
	if (token != NULL)
		mp_pack_cstr(&o->pk, token);
	else
		msgpack_pack_nil(&o->pk);
	if (request_id != NULL && request_id[0] != '\0')
		mp_pack_cstr(&o->pk, request_id);
	else
		msgpack_pack_nil(&o->pk);
	return finish(o, max_frame_bytes);
}

int rpc_encode_reply(struct mp_out *o, size_t max_frame_bytes, uint64_t id, const void *value,
                     size_t len)
{
	if (rpc_check_value(value, len) != 0)
		return ING_EINVAL;
	begin(o);
	msgpack_pack_array(&o->pk, 4);
	msgpack_pack_uint8(&o->pk, RPC_MSG_REPLY);
	msgpack_pack_uint64(&o->pk, id);
	msgpack_pack_nil(&o->pk);
	pack_value(o, value, len);
	return finish(o, max_frame_bytes);
}

int rpc_encode_error(struct mp_out *o, uint64_t id, int code, const char *msg)
{
	begin(o);
	msgpack_pack_array(&o->pk, 4);
	msgpack_pack_uint8(&o->pk, RPC_MSG_REPLY);
	msgpack_pack_uint64(&o->pk, id);
	msgpack_pack_array(&o->pk, 2);
	mp_pack_cstr(&o->pk, ing_err_name(code));
	mp_pack_cstr(&o->pk, msg);
	msgpack_pack_nil(&o->pk);
	/* Messages are short (ING_ERROR_MSG_MAX): no limit to enforce. */
	return finish(o, SIZE_MAX);
}

int rpc_encode_event(struct mp_out *o, size_t max_frame_bytes, uint64_t id, const void *value,
                     size_t len)
{
	if (rpc_check_value(value, len) != 0)
		return ING_EINVAL;
	begin(o);
	msgpack_pack_array(&o->pk, 3);
	msgpack_pack_uint8(&o->pk, RPC_MSG_EVENT);
	msgpack_pack_uint64(&o->pk, id);
	pack_value(o, value, len);
	return finish(o, max_frame_bytes);
}
