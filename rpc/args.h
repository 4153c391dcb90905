/*
 * args.h - strict reading of a request's argument map (str keys).
 *
 * Every helper fails with ING_EINVAL and a message naming the argument
 * ("argument 'priority': expected an integer").  An argument that is absent
 * or nil counts as not given: a required one is an error ("argument
 * 'target' is required"); an optional one returns 0 and leaves *out
 * untouched, so callers preset defaults.  Views point into the args object
 * (the call's frame) and live as long as it.
 *
 * `args` must be a MAP (rpc_call_args always is; anything else is
 * ING_EINVAL "arguments: expected a map").
 */
#ifndef INGOT_RPC_ARGS_H
#define INGOT_RPC_ARGS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/str.h"

/*
 * Rejects keys not in `names` (NULL-terminated): "unknown argument
 * 'priorty'", non-string keys, and keys given twice ("argument 'x' given
 * twice").
 */
int rpc_args_check_known(const msgpack_object *args, const char *const names[],
                         struct ing_error *e);

/* The value of `name`, or NULL when absent (nil values are returned). */
const msgpack_object *rpc_arg_find(const msgpack_object *args, const char *name);

/* A STR of at most max_len bytes. */
int rpc_arg_str(const msgpack_object *args, const char *name, uint32_t max_len, bool required,
                struct ing_str *out, struct ing_error *e);
/* A non-negative integer <= max. */
int rpc_arg_u64(const msgpack_object *args, const char *name, uint64_t max, bool required,
                uint64_t *out, struct ing_error *e);
/* A signed integer in [min, max]. */
int rpc_arg_i64(const msgpack_object *args, const char *name, int64_t min, int64_t max,
                bool required, int64_t *out, struct ing_error *e);
int rpc_arg_bool(const msgpack_object *args, const char *name, bool required, bool *out,
                 struct ing_error *e);
/* A BIN of at most max_len bytes. */
int rpc_arg_bin(const msgpack_object *args, const char *name, uint32_t max_len, bool required,
                struct ing_str *out, struct ing_error *e);
/* An ARRAY of at most max_n items; *out points at the array object. */
int rpc_arg_array(const msgpack_object *args, const char *name, uint32_t max_n, bool required,
                  const msgpack_object **out, struct ing_error *e);
/* A MAP of at most max_n entries; *out points at the map object. */
int rpc_arg_map(const msgpack_object *args, const char *name, uint32_t max_n, bool required,
                const msgpack_object **out, struct ing_error *e);

#endif
