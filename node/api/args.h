/*
 * args.h - the argument readers every API handler shares (node/api/ and the
 * member.* operations of node/member/), on top of rpc/args.h.
 *
 * Readers that take an rpc_call reply the error themselves (`invalid`
 * naming the argument) and return non-zero; the others fill `e` and return
 * a negative code.  Views point into the call's arguments, arrays are
 * allocated from the zone: both live as long as the call and the zone.
 */
#ifndef INGOT_NODE_API_ARGS_H
#define INGOT_NODE_API_ARGS_H

#include <msgpack.h>
#include <stdint.h>

#include "common/err.h"
#include "common/str.h"
#include "node/sm/cmd.h"
#include "rpc/server.h"
#include "storage/records.h"

/* Refuses an argument not in `names` (NULL-terminated): replies and returns
 * non-zero. */
int api_check_known(struct rpc_call *call, const char *const names[]);

/* Checks the names, then reads the required `id`; replies and returns
 * non-zero on failure. */
int api_read_id(struct rpc_call *call, const char *const known[], uint64_t *id);

/* An array of strings of at most max_len bytes (arr may be NULL: none).
 * ING_EINVAL naming `what` and the item, ING_ENOMEM. */
int api_str_array(const msgpack_object *arr, const char *what, uint32_t max_len, msgpack_zone *z,
                  uint32_t *n, struct ing_str **out, struct ing_error *e);

/* A map of strings to strings (map may be NULL: none).  ING_EINVAL naming
 * `what`, ING_ENOMEM. */
int api_kv_map(const msgpack_object *map, const char *what, msgpack_zone *z, uint32_t *n,
               struct rec_kv **out, struct ing_error *e);

/* The optional `capabilities` (list of names) and `labels` (map) arguments
 * of target.put and node.register. */
int api_caps_and_labels(const msgpack_object *args, msgpack_zone *z, uint32_t *ncaps,
                        struct ing_str **caps, uint32_t *nlabels, struct rec_kv **labels,
                        struct ing_error *e);

/* An optional non-negative integer <= max into a uint32_t (0 when absent). */
int api_u32_arg(const msgpack_object *args, const char *name, uint32_t max, uint32_t *out,
                struct ing_error *e);

/* node.register's optional `gpus`: [{index, uuid, memory_bytes}...], each
 * key but index optional; the bounds and uniqueness are cmd_validate's. */
int api_gpus_arg(const msgpack_object *args, msgpack_zone *z, uint32_t *n, struct rec_gpu **out,
                 struct ing_error *e);

/* The optional argument `name`: [{path, data}], at most max_n files. */
int api_files_arg(const msgpack_object *args, const char *name, uint32_t max_n, msgpack_zone *z,
                  uint32_t *n, struct cmd_file **out, struct ing_error *e);

#endif
