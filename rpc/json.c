/*
 * json.c - JSON <-> msgpack (see json.h).
 *
 * Both directions recurse over the document; JSON to msgpack tracks two
 * paths while it goes: the pattern ("sources[].data", compared with the
 * bin paths) and the concrete one ("sources[1].data", for messages).
 */
#include "rpc/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/encode.h"
#include "common/text.h"

#define MAX_DEPTH      32
#define PATH_MAX_BYTES 256

json_t *rpc_json_text(const char *p, size_t n)
{
	json_t *j = json_stringn(p, n);
	if (j != NULL || n == 0)
		return j;
	struct ing_buf fixed = ING_BUF_INIT;
	const unsigned char *u = (const unsigned char *)p;
	for (size_t i = 0; i < n;) {
		size_t k = ing_utf8_seq(u + i, n - i);
		if (k == 0) {
			ing_buf_append(&fixed, "\xef\xbf\xbd", 3);
			i++;
		} else {
			ing_buf_append(&fixed, p + i, k);
			i += k;
		}
	}
	j = ing_buf_failed(&fixed) == 0 ? json_stringn(fixed.data, fixed.len) : NULL;
	ing_buf_free(&fixed);
	return j;
}

static json_t *base64_json(const char *p, size_t n)
{
	char *b64 = malloc(ing_base64_len(n, false) + 1);
	if (b64 == NULL)
		return NULL;
	ing_base64_encode(p, n, false, b64);
	json_t *j = json_string(b64);
	free(b64);
	return j;
}

/* Object key for a msgpack map key that is not a string. */
static void key_text(const msgpack_object *k, char *buf, size_t cap)
{
	switch (k->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: snprintf(buf, cap, "%" PRIu64, k->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: snprintf(buf, cap, "%" PRId64, k->via.i64); break;
	case MSGPACK_OBJECT_BOOLEAN:
		snprintf(buf, cap, "%s", k->via.boolean ? "true" : "false");
		break;
	case MSGPACK_OBJECT_NIL: snprintf(buf, cap, "null"); break;
	default: msgpack_object_print_buffer(buf, cap, *k); break;
	}
}

json_t *rpc_mp_to_json(const msgpack_object *o)
{
	json_t *j = NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return json_null();
	case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR: return rpc_json_text(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN: return base64_json(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_EXT: return base64_json(o->via.ext.ptr, o->via.ext.size);
	case MSGPACK_OBJECT_ARRAY:
		j = json_array();
		for (uint32_t i = 0; j != NULL && i < o->via.array.size; i++) {
			json_t *item = rpc_mp_to_json(&o->via.array.ptr[i]);
			if (item == NULL || json_array_append_new(j, item) != 0) {
				json_decref(j);
				j = NULL;
			}
		}
		return j;
	case MSGPACK_OBJECT_MAP:
		j = json_object();
		for (uint32_t i = 0; j != NULL && i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			json_t *v = rpc_mp_to_json(&kv->val);
			json_t *k = NULL;
			if (kv->key.type == MSGPACK_OBJECT_STR) {
				k = rpc_json_text(kv->key.via.str.ptr, kv->key.via.str.size);
			} else {
				char buf[128];
				key_text(&kv->key, buf, sizeof(buf));
				k = rpc_json_text(buf, strlen(buf));
			}
			const char *ks = k != NULL ? json_string_value(k) : NULL;
			size_t klen = k != NULL ? json_string_length(k) : 0;
			if (v == NULL || ks == NULL || json_object_setn_new(j, ks, klen, v) != 0) {
				if (v != NULL && ks == NULL)
					json_decref(v);
				json_decref(j);
				j = NULL;
			}
			json_decref(k);
		}
		return j;
	}
	return NULL;
}

/* ---- JSON to msgpack --------------------------------------------------- */

struct walk {
	const char *const *bin_paths;
	msgpack_packer *pk;
	struct ing_error *e;
	char pattern[PATH_MAX_BYTES];
	char place[PATH_MAX_BYTES];
};

static bool is_bin_path(const struct walk *w)
{
	for (const char *const *p = w->bin_paths; p != NULL && *p != NULL; p++)
		if (strcmp(*p, w->pattern) == 0)
			return true;
	return false;
}

static int pack(struct walk *w, const json_t *j, unsigned depth);

/* Packs j with ".key" / "[i]" appended to the paths, then restores them. */
static int pack_child(struct walk *w, const json_t *j, const char *key, size_t index,
                      unsigned depth)
{
	size_t plen = strlen(w->pattern), qlen = strlen(w->place);
	if (key != NULL) {
		snprintf(w->pattern + plen, sizeof(w->pattern) - plen, "%s%s", plen > 0 ? "." : "",
		         key);
		snprintf(w->place + qlen, sizeof(w->place) - qlen, "%s%s", qlen > 0 ? "." : "",
		         key);
	} else {
		snprintf(w->pattern + plen, sizeof(w->pattern) - plen, "[]");
		snprintf(w->place + qlen, sizeof(w->place) - qlen, "[%zu]", index);
	}
	int rv = pack(w, j, depth + 1);
	w->pattern[plen] = '\0';
	w->place[qlen] = '\0';
	return rv;
}

static int pack(struct walk *w, const json_t *j, unsigned depth)
{
	msgpack_packer *pk = w->pk;
	if (depth > MAX_DEPTH)
		return ing_error_set(w->e, ING_ETOOBIG, "JSON nested deeper than %d", MAX_DEPTH);
	if (is_bin_path(w)) {
		if (!json_is_string(j))
			return ing_error_set(w->e, ING_EINVAL, "%s: expected a base64 string",
			                     w->place);
		size_t len = json_string_length(j), n = 0;
		char *bytes = malloc(len / 4 * 3 + 3);
		int rv = bytes != NULL
		             ? ing_base64_decode(json_string_value(j), len, false, bytes, &n)
		             : ING_ENOMEM;
		if (rv == 0)
			msgpack_pack_bin_with_body(pk, bytes, n);
		free(bytes);
		if (rv == ING_EINVAL)
			return ing_error_set(w->e, ING_EINVAL, "%s: not base64", w->place);
		return rv != 0 ? ing_error_set(w->e, rv, "out of memory") : 0;
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *v;
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, key, v)
		{
			msgpack_pack_str_with_body(pk, key, strlen(key));
			int rv = pack_child(w, v, key, 0, depth);
			if (rv != 0)
				return rv;
		}
		return 0;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v)
		{
			int rv = pack_child(w, v, NULL, i, depth);
			if (rv != 0)
				return rv;
		}
		return 0;
	}
	case JSON_STRING:
		msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j));
		return 0;
	case JSON_INTEGER: {
		json_int_t v = json_integer_value(j);
		if (v >= 0)
			msgpack_pack_uint64(pk, (uint64_t)v);
		else
			msgpack_pack_int64(pk, (int64_t)v);
		return 0;
	}
	case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); return 0;
	case JSON_TRUE: msgpack_pack_true(pk); return 0;
	case JSON_FALSE: msgpack_pack_false(pk); return 0;
	case JSON_NULL: msgpack_pack_nil(pk); return 0;
	}
	return ing_error_set(w->e, ING_EINVAL, "unknown JSON value");
}

int rpc_json_to_mp(const json_t *j, const char *const *bin_paths, msgpack_packer *pk,
                   struct ing_error *e)
{
	struct walk w = {.bin_paths = bin_paths, .pk = pk, .e = e};
	return pack(&w, j, 0);
}
