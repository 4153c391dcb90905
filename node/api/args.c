/*
 * args.c - the argument readers every handler shares (node/api/ and the
 * member.* operations of node/member/): known names, string arrays, string
 * maps, capabilities and labels, files, an id.  Each reader names the
 * argument it refuses (docs/api.md "Errors").
 */
#include "node/api/args.h"

#include <stdio.h>
#include <string.h>

#include "node/api/api_internal.h"
#include "rpc/args.h"

int api_check_known(struct rpc_call *call, const char *const names[])
{
	struct ing_error e;
	if (rpc_args_check_known(rpc_call_args(call), names, &e) != 0) {
		api_reply_err(call, &e);
		return -1;
	}
	return 0;
}

/* Reads an array of strings into zone-allocated views. */
int api_str_array(const msgpack_object *arr, const char *what, uint32_t max_len, msgpack_zone *z,
                  uint32_t *n, struct ing_str **out, struct ing_error *e)
{
	*n = 0;
	*out = NULL;
	if (arr == NULL)
		return 0;
	if (arr->via.array.size > 0) {
		*out = msgpack_zone_malloc(z, arr->via.array.size * sizeof(**out));
		if (*out == NULL)
			return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *s = &arr->via.array.ptr[i];
		if (s->type != MSGPACK_OBJECT_STR || s->via.str.size > max_len)
			return ing_error_set(e, ING_EINVAL,
			                     "argument '%s': item %u must be a string of at most "
			                     "%u bytes",
			                     what, i, max_len);
		(*out)[i] = (struct ing_str){s->via.str.ptr, s->via.str.size};
	}
	*n = arr->via.array.size;
	return 0;
}

int api_kv_map(const msgpack_object *map, const char *what, msgpack_zone *z, uint32_t *n,
               struct rec_kv **out, struct ing_error *e)
{
	*n = 0;
	*out = NULL;
	if (map == NULL)
		return 0;
	if (map->via.map.size > 0) {
		*out = msgpack_zone_malloc(z, map->via.map.size * sizeof(**out));
		if (*out == NULL)
			return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		const msgpack_object *v = &map->via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
			return ing_error_set(
			    e, ING_EINVAL, "argument '%s': keys and values must be strings", what);
		(*out)[i].key = (struct ing_str){k->via.str.ptr, k->via.str.size};
		(*out)[i].value = (struct ing_str){v->via.str.ptr, v->via.str.size};
	}
	*n = map->via.map.size;
	return 0;
}

/* The optional `capabilities` (list of names) and `labels` (map) arguments
 * of target.put and node.register. */
int api_caps_and_labels(const msgpack_object *args, msgpack_zone *z, uint32_t *ncaps,
                        struct ing_str **caps, uint32_t *nlabels, struct rec_kv **labels,
                        struct ing_error *e)
{
	const msgpack_object *c = NULL, *l = NULL;
	int rv = rpc_arg_array(args, "capabilities", ING_MAX_CAPS, false, &c, e);
	if (rv == 0)
		rv = rpc_arg_map(args, "labels", ING_MAX_LABELS, false, &l, e);
	if (rv == 0)
		rv = api_str_array(c, "capabilities", ING_NAME_MAX, z, ncaps, caps, e);
	if (rv == 0)
		rv = api_kv_map(l, "labels", z, nlabels, labels, e);
	return rv;
}

/* Reads [{path, data}] into zone-allocated cmd_files. */
int api_files_arg(const msgpack_object *args, const char *name, uint32_t max_n, msgpack_zone *z,
                  uint32_t *n, struct cmd_file **out, struct ing_error *e)
{
	static const char *const file_known[] = {"path", "data", NULL};
	const msgpack_object *arr = NULL;
	int rv = rpc_arg_array(args, name, max_n, false, &arr, e);
	*n = 0;
	*out = NULL;
	if (rv != 0 || arr == NULL || arr->via.array.size == 0)
		return rv;
	*out = msgpack_zone_malloc(z, arr->via.array.size * sizeof(**out));
	if (*out == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *f = &arr->via.array.ptr[i];
		if (f->type != MSGPACK_OBJECT_MAP)
			return ing_error_set(
			    e, ING_EINVAL,
			    "argument '%s': item %u must be a map with path and data", name, i);
		rv = rpc_args_check_known(f, file_known, e);
		if (rv == 0)
			rv = rpc_arg_str(f, "path", ING_PATH_MAX, true, &(*out)[i].path, e);
		if (rv == 0)
			rv = rpc_arg_bin(f, "data", ING_SOURCE_MAX_BYTES, true, &(*out)[i].data, e);
		if (rv != 0)
			return rv;
	}
	*n = arr->via.array.size;
	return 0;
}

int api_read_id(struct rpc_call *call, const char *const known[], uint64_t *id)
{
	struct ing_error e;
	if (api_check_known(call, known) != 0)
		return -1;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, true, id, &e) != 0) {
		api_reply_err(call, &e);
		return -1;
	}
	return 0;
}

int api_u32_arg(const msgpack_object *args, const char *name, uint32_t max, uint32_t *out,
                struct ing_error *e)
{
	uint64_t v = 0;
	int rv = rpc_arg_u64(args, name, max, false, &v, e);
	if (rv == 0)
		*out = (uint32_t)v;
	return rv;
}

int api_gpus_arg(const msgpack_object *args, msgpack_zone *z, uint32_t *n, struct rec_gpu **out,
                 struct ing_error *e)
{
	static const char *const known[] = {"index", "uuid", "memory_bytes", NULL};
	const msgpack_object *a = NULL;
	int rv = rpc_arg_array(args, "gpus", ING_MAX_GPUS, false, &a, e);

	*n = 0;
	*out = NULL;
	if (rv != 0 || a == NULL || a->via.array.size == 0)
		return rv;
	*out = msgpack_zone_malloc(z, a->via.array.size * sizeof(**out));
	if (*out == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	for (uint32_t i = 0; rv == 0 && i < a->via.array.size; i++) {
		const msgpack_object *g = &a->via.array.ptr[i];
		struct rec_gpu *d = &(*out)[i];
		uint64_t index = 0;
		memset(d, 0, sizeof(*d));
		d->uuid = ing_str_c("");
		if (g->type != MSGPACK_OBJECT_MAP)
			return ing_error_set(e, ING_EINVAL,
			                     "argument 'gpus': item %u must be a map", i);
		rv = rpc_args_check_known(g, known, e);
		if (rv == 0)
			rv = rpc_arg_u64(g, "index", ING_GPU_INDEX_MAX, true, &index, e);
		if (rv == 0)
			rv = rpc_arg_str(g, "uuid", ING_GPU_UUID_MAX, false, &d->uuid, e);
		if (rv == 0)
			rv = rpc_arg_u64(g, "memory_bytes", UINT64_MAX, false, &d->memory_bytes, e);
		d->index = (uint32_t)index;
		if (rv != 0) {
			char inner[ING_ERROR_MSG_MAX];
			snprintf(inner, sizeof(inner), "%s", e->msg);
			ing_error_set(e, rv, "argument 'gpus': item %u: %s", i, inner);
		}
	}
	if (rv == 0)
		*n = a->via.array.size;
	return rv;
}
