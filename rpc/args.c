/*
 * args.c - strict readers for a request's argument map (see args.h).
 *
 * Lookups are linear: argument maps are small (a handful of keys), and
 * rpc_args_check_known bounds them by the list of known names, so a
 * handler that calls it first does O(known^2) work at most.  Every error is
 * ING_EINVAL with a message that names the argument, since it goes back to
 * the client as is.
 */
#include "rpc/args.h"

#include <string.h>

static bool key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       memcmp(k->via.str.ptr, name, n) == 0;
}

static int not_a_map(struct ing_error *e)
{
	return ing_error_set(e, ING_EINVAL, "arguments: expected a map");
}

int rpc_args_check_known(const msgpack_object *args, const char *const names[], struct ing_error *e)
{
	if (args == NULL || args->type != MSGPACK_OBJECT_MAP)
		return not_a_map(e);
	const msgpack_object_map *m = &args->via.map;
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			return ing_error_set(e, ING_EINVAL, "arguments: names must be strings");
		bool known = false;
		for (const char *const *n = names; *n != NULL && !known; n++)
			known = key_is(k, *n);
		if (!known)
			return ing_error_set(e, ING_EINVAL, "unknown argument '%.*s'",
			                     (int)(k->via.str.size > 64 ? 64 : k->via.str.size),
			                     k->via.str.ptr);
		for (uint32_t j = 0; j < i; j++) {
			const msgpack_object *prev = &m->ptr[j].key;
			if (prev->via.str.size == k->via.str.size &&
			    memcmp(prev->via.str.ptr, k->via.str.ptr, k->via.str.size) == 0)
				return ing_error_set(e, ING_EINVAL, "argument '%.*s' given twice",
				                     (int)k->via.str.size, k->via.str.ptr);
		}
	}
	return 0;
}

const msgpack_object *rpc_arg_find(const msgpack_object *args, const char *name)
{
	if (args == NULL || args->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < args->via.map.size; i++) {
		if (key_is(&args->via.map.ptr[i].key, name))
			return &args->via.map.ptr[i].val;
	}
	return NULL;
}

/*
 * Finds `name` and checks its type.  1: *out is the value; 0: absent and
 * optional; < 0: error.
 */
static int lookup(const msgpack_object *args, const char *name, bool required,
                  msgpack_object_type type, const char *expected, const msgpack_object **out,
                  struct ing_error *e)
{
	if (args == NULL || args->type != MSGPACK_OBJECT_MAP)
		return not_a_map(e);
	const msgpack_object *v = rpc_arg_find(args, name);
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
		if (required)
			return ing_error_set(e, ING_EINVAL, "argument '%s' is required", name);
		return 0;
	}
	bool ok = v->type == type;
	if (type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		ok = ok || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
	if (!ok)
		return ing_error_set(e, ING_EINVAL, "argument '%s': expected %s", name, expected);
	*out = v;
	return 1;
}

int rpc_arg_str(const msgpack_object *args, const char *name, uint32_t max_len, bool required,
                struct ing_str *out, struct ing_error *e)
{
	const msgpack_object *v = NULL;
	int rv = lookup(args, name, required, MSGPACK_OBJECT_STR, "a string", &v, e);
	if (rv <= 0)
		return rv;
	if (v->via.str.size > max_len)
		return ing_error_set(e, ING_EINVAL,
		                     "argument '%s': %u bytes exceeds the limit of %u bytes", name,
		                     v->via.str.size, max_len);
	out->ptr = v->via.str.ptr;
	out->len = v->via.str.size;
	return 0;
}

int rpc_arg_u64(const msgpack_object *args, const char *name, uint64_t max, bool required,
                uint64_t *out, struct ing_error *e)
{
	const msgpack_object *v = NULL;
	int rv = lookup(args, name, required, MSGPACK_OBJECT_POSITIVE_INTEGER, "an integer", &v, e);
	if (rv <= 0)
		return rv;
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return ing_error_set(e, ING_EINVAL, "argument '%s': expected an integer >= 0",
		                     name);
	if (v->via.u64 > max)
		return ing_error_set(e, ING_EINVAL, "argument '%s': %llu exceeds the maximum %llu",
		                     name, (unsigned long long)v->via.u64, (unsigned long long)max);
	*out = v->via.u64;
	return 0;
}

int rpc_arg_i64(const msgpack_object *args, const char *name, int64_t min, int64_t max,
                bool required, int64_t *out, struct ing_error *e)
{
	const msgpack_object *v = NULL;
	int rv = lookup(args, name, required, MSGPACK_OBJECT_POSITIVE_INTEGER, "an integer", &v, e);
	if (rv <= 0)
		return rv;
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > INT64_MAX)
		return ing_error_set(e, ING_EINVAL, "argument '%s': exceeds the maximum %lld", name,
		                     (long long)max);
	int64_t x = v->via.i64;
	if (x < min || x > max)
		return ing_error_set(e, ING_EINVAL, "argument '%s': %lld is outside %lld..%lld",
		                     name, (long long)x, (long long)min, (long long)max);
	*out = x;
	return 0;
}

int rpc_arg_bool(const msgpack_object *args, const char *name, bool required, bool *out,
                 struct ing_error *e)
{
	const msgpack_object *v = NULL;
	int rv = lookup(args, name, required, MSGPACK_OBJECT_BOOLEAN, "a boolean", &v, e);
	if (rv <= 0)
		return rv;
	*out = v->via.boolean;
	return 0;
}

int rpc_arg_bin(const msgpack_object *args, const char *name, uint32_t max_len, bool required,
                struct ing_str *out, struct ing_error *e)
{
	const msgpack_object *v = NULL;
	int rv = lookup(args, name, required, MSGPACK_OBJECT_BIN, "binary data", &v, e);
	if (rv <= 0)
		return rv;
	if (v->via.bin.size > max_len)
		return ing_error_set(e, ING_EINVAL,
		                     "argument '%s': %u bytes exceeds the limit of %u bytes", name,
		                     v->via.bin.size, max_len);
	out->ptr = v->via.bin.ptr;
	out->len = v->via.bin.size;
	return 0;
}

int rpc_arg_array(const msgpack_object *args, const char *name, uint32_t max_n, bool required,
                  const msgpack_object **out, struct ing_error *e)
{
	const msgpack_object *v = NULL;
	int rv = lookup(args, name, required, MSGPACK_OBJECT_ARRAY, "an array", &v, e);
	if (rv <= 0)
		return rv;
	if (v->via.array.size > max_n)
		return ing_error_set(e, ING_EINVAL,
		                     "argument '%s': %u items exceeds the limit of %u", name,
		                     v->via.array.size, max_n);
	*out = v;
	return 0;
}

int rpc_arg_map(const msgpack_object *args, const char *name, uint32_t max_n, bool required,
                const msgpack_object **out, struct ing_error *e)
{
	const msgpack_object *v = NULL;
	int rv = lookup(args, name, required, MSGPACK_OBJECT_MAP, "a map", &v, e);
	if (rv <= 0)
		return rv;
	if (v->via.map.size > max_n)
		return ing_error_set(e, ING_EINVAL,
		                     "argument '%s': %u entries exceeds the limit of %u", name,
		                     v->via.map.size, max_n);
	*out = v;
	return 0;
}
