/*
 * json.h - JSON <-> msgpack, the one translation between the HTTP API (and
 * ingotctl -o json) and the msgpack API.
 *
 * msgpack to JSON: map -> object (non-string keys become their text),
 * array -> array, str -> string (invalid UTF-8 replaced by U+FFFD), int ->
 * integer (unsigned above INT64_MAX, jansson's limit, -> real; no field of
 * the API holds one), float -> real, bool, nil -> null, bin and ext ->
 * base64 string.
 *
 * JSON to msgpack: object -> map, array -> array, string -> str, integer ->
 * int (uint when >= 0), real -> float64, true/false -> bool, null -> nil;
 * strings at the given "bin paths" are base64 and become bin.  A bin path
 * names a place in the document: keys joined by '.', "[]" for every item
 * of an array: "log", "sources[].data", "outputs[].data".
 */
#ifndef INGOT_RPC_JSON_H
#define INGOT_RPC_JSON_H

#include <jansson.h>
#include <msgpack.h>

#include "common/err.h"

/* A new reference, or NULL when out of memory. */
json_t *rpc_mp_to_json(const msgpack_object *o);
/* A JSON string from arbitrary bytes (invalid UTF-8 replaced by U+FFFD);
 * NULL when out of memory. */
json_t *rpc_json_text(const char *p, size_t n);

/*
 * Packs `j` into pk.  bin_paths: NULL-terminated (NULL: none).  Errors:
 * ING_EINVAL when a bin path holds something other than a base64 string
 * (the message names the place, e.g. "sources[1].data: not base64"),
 * ING_ENOMEM.  Nesting deeper than 32 is ING_ETOOBIG.
 */
int rpc_json_to_mp(const json_t *j, const char *const *bin_paths, msgpack_packer *pk,
                   struct ing_error *e);

#endif
