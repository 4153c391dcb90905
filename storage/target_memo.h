/*
 * target_memo.h - decoded target records kept between reads.
 *
 * A submit reads its target's record three times on the leader (the API's
 * parameter check, the state machine's checks and its active-job count)
 * and twice on every follower, and the record changes only when the target
 * is replaced or its active-job count moves.  The memo keeps the last few
 * decoded records together with the exact bytes each was decoded from; a
 * decode of equal bytes returns the kept record instead of parsing again.
 * A hit needs the stored bytes to be equal, so the memo returns exactly
 * what rec_target_decode would: there is nothing to invalidate (a target
 * replaced, deleted, restored from a snapshot or rolled back simply stops
 * matching) and nothing that could differ between nodes.
 *
 * Not thread-safe: one memo per thread (the state machine's, the API's).
 */
#ifndef INGOT_STORAGE_TARGET_MEMO_H
#define INGOT_STORAGE_TARGET_MEMO_H

#include <msgpack.h>
#include <stdint.h>

#include "common/err.h"
#include "common/mp.h"
#include "common/str.h"
#include "storage/records.h"

/* Records kept, and the largest record kept (larger ones are decoded each
 * time: their parse dwarfs the lookup, and the memo stays small). */
#define REC_TARGET_MEMO_SLOTS     4
#define REC_TARGET_MEMO_MAX_BYTES (64 * 1024)

struct rec_target_memo;

/* 0 or ING_ENOMEM. */
int rec_target_memo_new(struct rec_target_memo **out);
void rec_target_memo_free(struct rec_target_memo *m);

/*
 * As rec_target_decode(buf, z, out, e), through the memo.  `epoch` names
 * the caller's unit of work (the state machine: the index being applied);
 * a record returned keeps its strings and arrays valid until the memo is
 * called with another epoch or freed, and the caller must not change what
 * they point to.  A record not kept (larger than REC_TARGET_MEMO_MAX_BYTES,
 * or every slot already returned in this epoch) is decoded into z.
 */
int rec_target_memo_decode(struct rec_target_memo *m, uint64_t epoch, struct ing_str buf,
                           msgpack_zone *z, struct rec_target *out, struct ing_error *e);

/*
 * For a change of a target's active-job count alone: t is a copy of a
 * record this memo returned in this epoch, changed in active_jobs only.
 * Encodes t into o (after what o holds) and keeps those bytes as the kept
 * record's, so that reading back what the caller stores hits.  0, or
 * ING_ENOTFOUND when t is not a kept record (the caller encodes it
 * itself), or the encoder's error (the record is then dropped).
 */
int rec_target_memo_encode_active(struct rec_target_memo *m, uint64_t epoch,
                                  const struct rec_target *t, struct mp_out *o);

/* Decodes that found their bytes kept, and decodes done (tests). */
void rec_target_memo_stats(const struct rec_target_memo *m, uint64_t *hits, uint64_t *decodes);

#endif
