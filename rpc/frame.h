/*
 * frame.h - private to rpc/: what the server and the client share.
 *
 *  - rpc_parse_address: "a.b.c.d:port" / "localhost:port" -> sockaddr_in.
 *  - rpc_reader: a connection's input buffer that cuts frames (4-byte
 *    big-endian length, then that many bytes) and enforces the size limit
 *    before any body byte is buffered.
 *  - the message codec: encoding of requests, replies and events into
 *    complete frames, and strict decoding of any message (rpc_msg_decode),
 *    so that both sides agree on one definition of the wire format.
 */
#ifndef INGOT_RPC_FRAME_H
#define INGOT_RPC_FRAME_H

#include <msgpack.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/mp.h"
#include "common/str.h"
#include "common/uverr.h" /* ing_err_from_uv: libuv errors become ours */

#define RPC_FRAME_HEADER_BYTES 4
#define RPC_OP_MAX             64
#define RPC_TOKEN_MAX          4096
/* Same value as in client.h: request ids are 1..64 printable ASCII bytes. */
#define RPC_REQUEST_ID_MAX 64

enum rpc_msg_kind {
	RPC_MSG_REQUEST = 0,
	RPC_MSG_REPLY = 1,
	RPC_MSG_EVENT = 2,
};

/* Parses an endpoint address.  ING_EINVAL with a message naming it. */
int rpc_parse_address(const char *s, struct sockaddr_in *out, struct ing_error *e);
/* Formats "a.b.c.d:port" into buf (>= 22 bytes). */
void rpc_format_address(const struct sockaddr_in *a, char *buf, size_t cap);

/* ---- what the first bytes of a stream are ------------------------------ */

enum rpc_sniff {
	RPC_SNIFF_MORE,  /* too few bytes to tell */
	RPC_SNIFF_INGOT, /* could be an ingot frame (length < 2^28) */
	RPC_SNIFF_TLS,   /* a TLS record (handshake or alert) */
	RPC_SNIFF_HTTP,  /* an HTTP request or response line */
	RPC_SNIFF_OTHER,
};

/* Classifies the first n bytes a peer sent. */
enum rpc_sniff rpc_sniff(const char *p, size_t n);
/* "HTTP/1.1 400 Bad Request" style: the first line of p[0..n) made
 * printable (at most 60 characters) into buf. */
void rpc_sniff_line(const char *p, size_t n, char *buf, size_t cap);

/* ---- frame reader ------------------------------------------------------ */

struct rpc_reader {
	char *buf;
	size_t len; /* bytes buffered */
	size_t pos; /* start of the first unconsumed frame */
	size_t cap;
	size_t max_frame_bytes;
};

void rpc_reader_init(struct rpc_reader *r, size_t max_frame_bytes);
void rpc_reader_free(struct rpc_reader *r);
/* Space for libuv's alloc callback (base NULL, len 0 on allocation failure). */
void rpc_reader_alloc(struct rpc_reader *r, uv_buf_t *out);
/*
 * Next complete frame: 1 with *body and *len set (valid until the next
 * rpc_reader_* call); 0 when more bytes are needed; ING_EMALFORMED (length
 * 0) or ING_ETOOBIG (length over the limit), with a message, on a bad header.
 */
int rpc_reader_next(struct rpc_reader *r, const char **body, size_t *len, struct ing_error *e);
/* Bytes buffered that do not yet form a frame (after rpc_reader_next says 0). */
size_t rpc_reader_partial(const struct rpc_reader *r);

/* ---- message codec ----------------------------------------------------- */

struct rpc_msg {
	enum rpc_msg_kind kind;
	uint64_t id;
	/* request */
	struct ing_str op;
	const msgpack_object *args; /* a map with str keys */
	struct ing_str token;       /* len 0 when nil */
	struct ing_str request_id;  /* len 0 when nil */
	/* reply: error_code is 0 on success */
	int error_code;
	struct ing_str error_name;
	struct ing_str error_msg;
	const msgpack_object *result; /* reply result or event value */
};

/*
 * Decodes one message body (the frame without its length prefix) into
 * zone.  Strict: exactly one msgpack value, an array of the right size for
 * its kind, header fields of the right types.  Errors: ING_EMALFORMED,
 * ING_ETOOBIG (nesting), ING_ENOMEM.  *id_known tells whether out->id could
 * be read (then an error reply can carry it); it is set on error too.
 */
int rpc_msg_decode(const void *body, size_t len, msgpack_zone *zone, struct rpc_msg *out,
                   bool *id_known, struct ing_error *e);

/*
 * Encoders produce a whole frame (length prefix included) in `o`, which
 * they reset first.  `value` is one encoded msgpack value (NULL/0: nil;
 * NULL args: {}), checked to be exactly one value (ING_EINVAL).  Errors
 * also ING_ETOOBIG (frame over max_frame_bytes), ING_ENOMEM.
 */
int rpc_encode_request(struct mp_out *o, size_t max_frame_bytes, uint64_t id, const char *op,
                       const void *args, size_t args_len, const char *token,
                       const char *request_id);
int rpc_encode_reply(struct mp_out *o, size_t max_frame_bytes, uint64_t id, const void *value,
                     size_t len);
int rpc_encode_error(struct mp_out *o, uint64_t id, int code, const char *msg);
int rpc_encode_event(struct mp_out *o, size_t max_frame_bytes, uint64_t id, const void *value,
                     size_t len);

/* 0 when value[0..len) is exactly one msgpack value (or empty: nil), else
 * ING_EINVAL. */
int rpc_check_value(const void *value, size_t len);

/* True when s is a valid request id: 1..RPC_REQUEST_ID_MAX printable ASCII. */
bool rpc_request_id_valid(struct ing_str s);

#endif
