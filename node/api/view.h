/*
 * view.h - records as the API shows them (docs/api.md): msgpack maps with
 * named keys, hashes as hex strings, 0 times and ids as nil.  One function
 * per object, so every operation returning a job returns the same shape.
 * Each packs exactly one value into pk.
 */
#ifndef INGOT_NODE_API_VIEW_H
#define INGOT_NODE_API_VIEW_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/records.h"

/* full: with stages, events count and outputs; `waiting`: why a queued job
 * is not placed yet (NULL: none known). */
void view_job(msgpack_packer *pk, const struct rec_job *j, bool full, const char *waiting);
void view_node(msgpack_packer *pk, const struct rec_node *nd);
void view_target(msgpack_packer *pk, const struct rec_target *t);
void view_event(msgpack_packer *pk, uint32_t seq, const struct rec_event *ev);
/* A map key. */
void view_key(msgpack_packer *pk, const char *key);
/* An id or time where 0 means none: nil for 0, else the number. */
void view_opt_u64(msgpack_packer *pk, uint64_t v);

#endif
