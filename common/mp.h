/*
 * mp.h - the strict msgpack layer every format of ingot is built on.
 *
 * msgpack-c does the encoding and the parsing.  This file adds what ingot's
 * formats need on top of it and nothing else:
 *
 *  - mp_out: a growable output buffer with a packer on it whose allocation
 *    failure is sticky (checked once, at mp_out_take / mp_out_failed), and
 *    the 8-byte padding libraft 0.15 needs (DESIGN.md).
 *  - mp_parse: parse exactly one object from untrusted bytes.  Before
 *    msgpack-c sees the bytes, mp_check_bounds walks the headers and refuses
 *    any container whose declared element count cannot fit in the bytes
 *    left, and nesting deeper than MP_MAX_DEPTH.  msgpack-c allocates
 *    count * sizeof(msgpack_object) up front, so without this a 5-byte input
 *    claiming 4 billion elements asks for 96 GiB.
 *  - mp_cursor: field-by-field strict reading of a msgpack array, with
 *    errors that name the structure and field ("command submit_job: field
 *    'priority': expected an integer <= 100").
 *
 * Ownership: objects produced by mp_parse live in the caller's zone, and
 * their STR/BIN payloads point into the caller's input buffer; both must
 * outlive every view taken from them.
 */
#ifndef INGOT_COMMON_MP_H
#define INGOT_COMMON_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/str.h"

#define MP_MAX_DEPTH 16

/* ---- writing ---------------------------------------------------------- */

struct mp_out {
	msgpack_packer pk; /* pack into this with msgpack_pack_* */
	char *data;
	size_t len;
	size_t cap;
	bool oom; /* sticky: an append failed */
};

void mp_out_init(struct mp_out *o);
/* Empties the buffer but keeps its memory (for hot paths). */
void mp_out_reset(struct mp_out *o);
void mp_out_free(struct mp_out *o);
/* Appends raw bytes (not msgpack-framed). */
void mp_out_raw(struct mp_out *o, const void *p, size_t n);
/* Appends 0-7 msgpack nil bytes (0xc0) so len is a multiple of 8. */
void mp_out_pad8(struct mp_out *o);
/* ING_ENOMEM if any append failed since init/reset, else 0. */
int mp_out_failed(const struct mp_out *o);

void mp_pack_str(msgpack_packer *pk, struct ing_str s);
void mp_pack_cstr(msgpack_packer *pk, const char *s);
void mp_pack_bin(msgpack_packer *pk, const void *p, size_t n);
void mp_pack_bool(msgpack_packer *pk, bool b);
/* An array of strings. */
void mp_pack_str_list(msgpack_packer *pk, uint32_t n, const struct ing_str *v);

/* ---- parsing ---------------------------------------------------------- */

/*
 * Checks that buf[0..len) starts with one msgpack object whose every
 * declared length fits in the buffer and whose nesting is at most
 * max_depth.  Sets *consumed to the object's size.  ING_EMALFORMED
 * (truncated, reserved byte 0xc1, ext types) or ING_ETOOBIG (too deep).
 */
int mp_check_bounds(const void *buf, size_t len, unsigned max_depth, size_t *consumed);

/*
 * Parses one object from buf into zone.  *consumed gets the number of bytes
 * used; the caller decides what trailing bytes are allowed.  Errors:
 * ING_EMALFORMED, ING_ETOOBIG, ING_ENOMEM, with a message in e.
 */
int mp_parse(const void *buf, size_t len, msgpack_zone *zone, msgpack_object *out, size_t *consumed,
             struct ing_error *e);

/*
 * Parses a buffer that must hold exactly one object followed by nothing
 * except, when pad8 is true, 0-7 nil bytes that make the length a multiple
 * of 8.  `what` names the thing in error messages ("command", "job record").
 */
/* Deep-copies o into zone z (re-encoded, copied into the zone and parsed
 * there), so *out lives as long as z.  ING_ENOMEM, or the parser's error. */
int mp_copy_to_zone(const msgpack_object *o, msgpack_zone *z, msgpack_object *out,
                    struct ing_error *e);

int mp_parse_exact(const void *buf, size_t len, bool pad8, msgpack_zone *zone, msgpack_object *out,
                   const char *what, struct ing_error *e);

/* ---- strict field reading --------------------------------------------- */

struct mp_cursor {
	const msgpack_object *items;
	uint32_t n;
	uint32_t i;
	const char *what;      /* structure name for messages, borrowed */
	struct ing_error *err; /* may be NULL */
};

/*
 * Starts reading `o`, which must be an array of min_n..max_n items.
 * ING_EMALFORMED when it is not an array or has a wrong count.
 */
int mp_cursor_open(struct mp_cursor *c, const msgpack_object *o, uint32_t min_n, uint32_t max_n,
                   const char *what, struct ing_error *e);
/* Items not yet read. */
static inline uint32_t mp_cursor_left(const struct mp_cursor *c)
{
	return c->n - c->i;
}
/* ING_EMALFORMED if items are left unread. */
int mp_cursor_close(struct mp_cursor *c);

/* Each reads the next item; all fail with ING_EMALFORMED naming `field`
 * when the item is missing or of the wrong type, ING_ETOOBIG when it
 * exceeds the bound. */
int mp_next_u64(struct mp_cursor *c, const char *field, uint64_t max, uint64_t *out);
int mp_next_u32(struct mp_cursor *c, const char *field, uint32_t max, uint32_t *out);
int mp_next_i64(struct mp_cursor *c, const char *field, int64_t *out);
int mp_next_bool(struct mp_cursor *c, const char *field, bool *out);
/* A UTF-8-agnostic string of at most max_len bytes (STR type). */
int mp_next_str(struct mp_cursor *c, const char *field, uint32_t max_len, struct ing_str *out);
/* Raw bytes (BIN type) of at most max_len bytes. */
int mp_next_bin(struct mp_cursor *c, const char *field, uint32_t max_len, struct ing_str *out);
/* A BIN of exactly `len` bytes (hashes). */
int mp_next_bin_exact(struct mp_cursor *c, const char *field, uint32_t len, struct ing_str *out);
/* A nested array of at most max_n items: opens `sub` on it. */
int mp_next_array(struct mp_cursor *c, const char *field, uint32_t max_n, struct mp_cursor *sub);
/* Any object (for opaque values such as stored results). */
int mp_next_object(struct mp_cursor *c, const char *field, const msgpack_object **out);
/* A nested array of exactly n items (a record inside a record). */
int mp_next_tuple(struct mp_cursor *c, const char *field, uint32_t n, struct mp_cursor *sub);
/* An array of at most max_n strings of at most max_len bytes, as views in
 * an array allocated from z. */
int mp_next_str_list(struct mp_cursor *c, const char *field, uint32_t max_n, uint32_t max_len,
                     msgpack_zone *z, uint32_t *n, struct ing_str **out);
/* n items of `size` bytes from z (NULL for n == 0); ING_ENOMEM naming c. */
int mp_zarray(struct mp_cursor *c, uint32_t n, size_t size, msgpack_zone *z, void **out);

#endif
