/*
 * mp.c - strict msgpack helpers on top of msgpack-c (see mp.h).
 *
 * mp_check_bounds is the only place that looks at msgpack bytes directly.
 * It does not build values: it reads container and string headers to prove
 * that every declared length is possible given the bytes that remain, so
 * that msgpack-c, which trusts declared lengths when it allocates, only ever
 * sees input whose allocations are bounded by the input's own size.
 */
#include "common/mp.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

/* ---- writing ---------------------------------------------------------- */

static int mp_out_write(void *data, const char *buf, size_t len)
{
	struct mp_out *o = data;
	if (o->oom)
		return -1;
	if (len == 0)
		return 0;
	if (ing_grow(&o->data, &o->cap, o->len + len, 256) != 0) {
		o->oom = true;
		return -1;
	}
	memcpy(o->data + o->len, buf, len);
	o->len += len;
	return 0;
}

void mp_out_init(struct mp_out *o)
{
	memset(o, 0, sizeof(*o));
	msgpack_packer_init(&o->pk, o, mp_out_write);
}

void mp_out_reset(struct mp_out *o)
{
	o->len = 0;
	o->oom = false;
}

void mp_out_free(struct mp_out *o)
{
	free(o->data);
	o->data = NULL;
	o->len = o->cap = 0;
}

void mp_out_raw(struct mp_out *o, const void *p, size_t n)
{
	mp_out_write(o, p, n);
}

void mp_out_pad8(struct mp_out *o)
{
	static const char nils[8] = {(char)0xc0, (char)0xc0, (char)0xc0, (char)0xc0,
	                             (char)0xc0, (char)0xc0, (char)0xc0, (char)0xc0};
	size_t rem = o->len % 8;
	if (rem != 0)
		mp_out_write(o, nils, 8 - rem);
}

int mp_out_failed(const struct mp_out *o)
{
	return o->oom ? ING_ENOMEM : 0;
}

void mp_pack_str(msgpack_packer *pk, struct ing_str s)
{
	msgpack_pack_str(pk, s.len);
	msgpack_pack_str_body(pk, s.ptr, s.len);
}

void mp_pack_cstr(msgpack_packer *pk, const char *s)
{
	mp_pack_str(pk, ing_str_c(s));
}

void mp_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

void mp_pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void mp_pack_str_list(msgpack_packer *pk, uint32_t n, const struct ing_str *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		mp_pack_str(pk, v[i]);
}

/* ---- bounds ----------------------------------------------------------- */

static uint64_t be_read(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Describes the object whose first byte is at p (with `avail` bytes from
 * p on): header size, payload size, and number of child objects.
 */
static int header(const unsigned char *p, size_t avail, size_t *hdr, uint64_t *payload,
                  uint64_t *children)
{
	unsigned char b = p[0];
	unsigned lenbytes = 0;

	*hdr = 1;
	*payload = 0;
	*children = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return 0;
	if (b >= 0x80 && b <= 0x8f) {
		*children = 2u * (b & 0x0f);
		return 0;
	}
	if (b >= 0x90 && b <= 0x9f) {
		*children = b & 0x0f;
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*payload = b & 0x1f;
		return 0;
	}
	switch (b) {
	case 0xca: *payload = 4; return 0;
	case 0xcb: *payload = 8; return 0;
	case 0xcc:
	case 0xd0: *payload = 1; return 0;
	case 0xcd:
	case 0xd1: *payload = 2; return 0;
	case 0xce:
	case 0xd2: *payload = 4; return 0;
	case 0xcf:
	case 0xd3: *payload = 8; return 0;
	case 0xc4:
	case 0xd9: lenbytes = 1; break;
	case 0xc5:
	case 0xda:
	case 0xdc:
	case 0xde: lenbytes = 2; break;
	case 0xc6:
	case 0xdb:
	case 0xdd:
	case 0xdf: lenbytes = 4; break;
	default:
		/* 0xc1 is reserved; ext types (0xc7-0xc9, 0xd4-0xd8) are not
		 * part of any ingot format. */
		return ING_EMALFORMED;
	}
	if (avail < 1 + (size_t)lenbytes)
		return ING_EMALFORMED;
	uint64_t n = be_read(p + 1, lenbytes);
	*hdr = 1 + lenbytes;
	if (b == 0xdc || b == 0xdd)
		*children = n;
	else if (b == 0xde || b == 0xdf)
		*children = 2 * n;
	else
		*payload = n;
	return 0;
}

int mp_check_bounds(const void *buf, size_t len, unsigned max_depth, size_t *consumed)
{
	const unsigned char *p = buf;
	uint64_t remaining[MP_MAX_DEPTH + 2];
	unsigned depth = 0;
	size_t pos = 0;

	if (max_depth > MP_MAX_DEPTH)
		max_depth = MP_MAX_DEPTH;
	remaining[0] = 1;
	for (;;) {
		if (remaining[depth] == 0) {
			if (depth == 0)
				break;
			depth--;
			continue;
		}
		remaining[depth]--;
		if (pos >= len)
			return ING_EMALFORMED;
		size_t hdr;
		uint64_t payload, children;
		int rv = header(p + pos, len - pos, &hdr, &payload, &children);
		if (rv != 0)
			return rv;
		if (hdr > len - pos || payload > len - pos - hdr)
			return ING_EMALFORMED;
		pos += hdr + (size_t)payload;
		if (children > 0) {
			/* Every child takes at least one byte. */
			if (children > len - pos)
				return ING_EMALFORMED;
			if (depth + 1 > max_depth)
				return ING_ETOOBIG;
			remaining[++depth] = children;
		}
	}
	*consumed = pos;
	return 0;
}

/* ---- parsing ---------------------------------------------------------- */

int mp_parse(const void *buf, size_t len, msgpack_zone *zone, msgpack_object *out, size_t *consumed,
             struct ing_error *e)
{
	size_t n, off = 0;
	int rv = mp_check_bounds(buf, len, MP_MAX_DEPTH, &n);
	if (rv == ING_ETOOBIG)
		return ing_error_set(e, rv, "nested deeper than %d levels", MP_MAX_DEPTH);
	if (rv != 0)
		return ing_error_set(e, rv,
		                     "not valid msgpack (truncated, bad length or reserved type)");
	msgpack_unpack_return ur = msgpack_unpack(buf, n, &off, zone, out);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
		return ing_error_set(e, ING_ENOMEM, "out of memory parsing msgpack");
	if (ur != MSGPACK_UNPACK_SUCCESS || off != n)
		return ing_error_set(e, ING_EMALFORMED, "not valid msgpack");
	*consumed = n;
	return 0;
}

int mp_parse_exact(const void *buf, size_t len, bool pad8, msgpack_zone *zone, msgpack_object *out,
                   const char *what, struct ing_error *e)
{
	size_t n;
	struct ing_error inner;
	msgpack_object obj;
	int rv = mp_parse(buf, len, zone, &obj, &n, &inner);
	if (rv != 0)
		return ing_error_set(e, rv, "%s: %s", what, inner.msg);
	if (pad8 && len % 8 != 0)
		return ing_error_set(e, ING_EMALFORMED, "%s: length %zu is not a multiple of 8",
		                     what, len);
	for (size_t i = n; i < len; i++) {
		if (!pad8 || len - n >= 8 || ((const unsigned char *)buf)[i] != 0xc0)
			return ing_error_set(e, ING_EMALFORMED,
			                     "%s: %zu unexpected bytes after the value", what,
			                     len - n);
	}
	*out = obj;
	return 0;
}

/* ---- strict field reading --------------------------------------------- */

int mp_cursor_open(struct mp_cursor *c, const msgpack_object *o, uint32_t min_n, uint32_t max_n,
                   const char *what, struct ing_error *e)
{
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return ing_error_set(e, ING_EMALFORMED, "%s: expected an array", what);
	if (o->via.array.size < min_n || o->via.array.size > max_n)
		return ing_error_set(e, ING_EMALFORMED, "%s: expected %u to %u items, got %u", what,
		                     min_n, max_n, o->via.array.size);
	c->items = o->via.array.ptr;
	c->n = o->via.array.size;
	c->i = 0;
	c->what = what;
	c->err = e;
	return 0;
}

int mp_cursor_close(struct mp_cursor *c)
{
	if (c->i != c->n)
		return ing_error_set(c->err, ING_EMALFORMED, "%s: %u unexpected trailing items",
		                     c->what, c->n - c->i);
	return 0;
}

static const msgpack_object *next(struct mp_cursor *c, const char *field)
{
	if (c->i >= c->n) {
		ing_error_set(c->err, ING_EMALFORMED, "%s: field '%s' is missing", c->what, field);
		return NULL;
	}
	return &c->items[c->i++];
}

static int wrong_type(struct mp_cursor *c, const char *field, const char *expected)
{
	return ing_error_set(c->err, ING_EMALFORMED, "%s: field '%s': expected %s", c->what, field,
	                     expected);
}

int mp_next_u64(struct mp_cursor *c, const char *field, uint64_t max, uint64_t *out)
{
	const msgpack_object *o = next(c, field);
	if (o == NULL)
		return ING_EMALFORMED;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return wrong_type(c, field, "a non-negative integer");
	if (o->via.u64 > max)
		return ing_error_set(c->err, ING_ETOOBIG, "%s: field '%s': %llu exceeds %llu",
		                     c->what, field, (unsigned long long)o->via.u64,
		                     (unsigned long long)max);
	*out = o->via.u64;
	return 0;
}

int mp_next_u32(struct mp_cursor *c, const char *field, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	int rv = mp_next_u64(c, field, max, &v);
	if (rv == 0)
		*out = (uint32_t)v;
	return rv;
}

int mp_next_i64(struct mp_cursor *c, const char *field, int64_t *out)
{
	const msgpack_object *o = next(c, field);
	if (o == NULL)
		return ING_EMALFORMED;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = o->via.i64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
		*out = (int64_t)o->via.u64;
		return 0;
	}
	return wrong_type(c, field, "a 64-bit signed integer");
}

int mp_next_bool(struct mp_cursor *c, const char *field, bool *out)
{
	const msgpack_object *o = next(c, field);
	if (o == NULL)
		return ING_EMALFORMED;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return wrong_type(c, field, "a boolean");
	*out = o->via.boolean;
	return 0;
}

static int next_bytes(struct mp_cursor *c, const char *field, msgpack_object_type type,
                      uint32_t max_len, struct ing_str *out)
{
	const msgpack_object *o = next(c, field);
	if (o == NULL)
		return ING_EMALFORMED;
	if (o->type != type)
		return wrong_type(c, field, type == MSGPACK_OBJECT_STR ? "a string" : "binary");
	uint32_t n = type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
	if (n > max_len)
		return ing_error_set(c->err, ING_ETOOBIG, "%s: field '%s': %u bytes exceeds %u",
		                     c->what, field, n, max_len);
	out->ptr = type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
	out->len = n;
	return 0;
}

int mp_next_str(struct mp_cursor *c, const char *field, uint32_t max_len, struct ing_str *out)
{
	return next_bytes(c, field, MSGPACK_OBJECT_STR, max_len, out);
}

int mp_next_bin(struct mp_cursor *c, const char *field, uint32_t max_len, struct ing_str *out)
{
	return next_bytes(c, field, MSGPACK_OBJECT_BIN, max_len, out);
}

int mp_next_bin_exact(struct mp_cursor *c, const char *field, uint32_t len, struct ing_str *out)
{
	int rv = next_bytes(c, field, MSGPACK_OBJECT_BIN, len, out);
	if (rv == 0 && out->len != len)
		return ing_error_set(c->err, ING_EMALFORMED,
		                     "%s: field '%s': expected %u bytes, got %u", c->what, field,
		                     len, out->len);
	return rv;
}

int mp_next_array(struct mp_cursor *c, const char *field, uint32_t max_n, struct mp_cursor *sub)
{
	const msgpack_object *o = next(c, field);
	if (o == NULL)
		return ING_EMALFORMED;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return wrong_type(c, field, "an array");
	if (o->via.array.size > max_n)
		return ing_error_set(c->err, ING_ETOOBIG, "%s: field '%s': %u items exceeds %u",
		                     c->what, field, o->via.array.size, max_n);
	sub->items = o->via.array.ptr;
	sub->n = o->via.array.size;
	sub->i = 0;
	sub->what = c->what;
	sub->err = c->err;
	return 0;
}

int mp_next_object(struct mp_cursor *c, const char *field, const msgpack_object **out)
{
	const msgpack_object *o = next(c, field);
	if (o == NULL)
		return ING_EMALFORMED;
	*out = o;
	return 0;
}

int mp_zarray(struct mp_cursor *c, uint32_t n, size_t size, msgpack_zone *z, void **out)
{
	*out = NULL;
	if (n == 0)
		return 0;
	*out = msgpack_zone_malloc(z, (size_t)n * size);
	if (*out == NULL)
		return ing_error_set(c->err, ING_ENOMEM, "%s: out of memory", c->what);
	return 0;
}

int mp_next_tuple(struct mp_cursor *c, const char *field, uint32_t n, struct mp_cursor *sub)
{
	const msgpack_object *o;
	int rv = mp_next_object(c, field, &o);
	if (rv != 0)
		return rv;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n)
		return ing_error_set(c->err, ING_EMALFORMED,
		                     "%s: field '%s': expected an array of %u items", c->what,
		                     field, n);
	return mp_cursor_open(sub, o, n, n, c->what, c->err);
}

int mp_next_str_list(struct mp_cursor *c, const char *field, uint32_t max_n, uint32_t max_len,
                     msgpack_zone *z, uint32_t *n, struct ing_str **out)
{
	struct mp_cursor sub;
	void *arr = NULL;
	int rv = mp_next_array(c, field, max_n, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct ing_str), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++)
		rv = mp_next_str(&sub, field, max_len, &((struct ing_str *)arr)[i]);
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

int mp_copy_to_zone(const msgpack_object *o, msgpack_zone *z, msgpack_object *out,
                    struct ing_error *e)
{
	struct mp_out buf;
	size_t used;
	mp_out_init(&buf);
	msgpack_pack_object(&buf.pk, *o);
	char *copy = mp_out_failed(&buf) == 0 ? msgpack_zone_malloc(z, buf.len) : NULL;
	if (copy == NULL) {
		mp_out_free(&buf);
		return ing_error_set(e, ING_ENOMEM, "out of memory copying a reply");
	}
	memcpy(copy, buf.data, buf.len);
	int rv = mp_parse(copy, buf.len, z, out, &used, e);
	mp_out_free(&buf);
	return rv;
}
