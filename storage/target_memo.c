/*
 * target_memo.c - decoded target records kept between reads (target_memo.h).
 *
 * Each slot owns a copy of the bytes it decoded and a zone holding the
 * decoded record (rec_target_decode copies every string into the zone, so
 * the record never points into the caller's buffer).  A lookup compares
 * the bytes in full: a target record is at most REC_TARGET_MEMO_MAX_BYTES
 * here, and comparing a few hundred bytes costs far less than parsing them.
 *
 * Slot reuse: a slot returned in the current epoch is never refilled
 * (its record may still be in the caller's hands); among the others the
 * least recently used one is refilled.
 *
 * encode_active keeps the invariant slot.t == decode(slot.bytes): the new
 * bytes are rec_target_encode of slot.t with only active_jobs changed, and
 * decode(encode(r)) == r for every record the codec produced
 * (test_records checks the round trip).  Once a slot's bytes are its own
 * encoding (`encoded`), the next change rewrites only the record's tail:
 * active_jobs, created_at_ms and updated_at_ms are its last three items,
 * so the bytes before them are the same, and the tail is checked against
 * the kept bytes before it is cut off.
 */
#include "storage/target_memo.h"

#include <stdlib.h>
#include <string.h>

struct memo_slot {
	bool valid;
	bool encoded; /* bytes == rec_target_encode(&t): the tail can be rewritten */
	char *bytes;
	uint32_t len, cap;
	msgpack_zone *zone;
	struct rec_target t;
	uint64_t epoch;    /* last epoch it was returned in */
	uint64_t last_use; /* for least-recently-used reuse */
};

struct rec_target_memo {
	struct memo_slot slots[REC_TARGET_MEMO_SLOTS];
	bool any_epoch; /* false until the first call: epoch 0 is a real epoch */
	uint64_t clock;
	uint64_t hits, decodes;
};

int rec_target_memo_new(struct rec_target_memo **out)
{
	struct rec_target_memo *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return ING_ENOMEM;
	*out = m;
	return 0;
}

void rec_target_memo_free(struct rec_target_memo *m)
{
	if (m == NULL)
		return;
	for (unsigned i = 0; i < REC_TARGET_MEMO_SLOTS; i++) {
		free(m->slots[i].bytes);
		if (m->slots[i].zone != NULL)
			msgpack_zone_free(m->slots[i].zone);
	}
	free(m);
}

static bool busy(const struct rec_target_memo *m, const struct memo_slot *s, uint64_t epoch)
{
	return m->any_epoch && s->valid && s->epoch == epoch;
}

/* The slot to refill, or NULL when every one is busy. */
static struct memo_slot *slot_for(struct rec_target_memo *m, uint64_t epoch)
{
	struct memo_slot *best = NULL;
	for (unsigned i = 0; i < REC_TARGET_MEMO_SLOTS; i++) {
		struct memo_slot *s = &m->slots[i];
		if (busy(m, s, epoch))
			continue;
		if (best == NULL || (best->valid && (!s->valid || s->last_use < best->last_use)))
			best = s;
	}
	return best;
}

/* Refills s with buf decoded.  0, or the decoder's error (s left empty). */
static int fill(struct memo_slot *s, struct ing_str buf, struct ing_error *e)
{
	s->valid = false;
	if (s->cap < buf.len) {
		char *b = realloc(s->bytes, buf.len);
		if (b == NULL)
			return ing_error_set(e, ING_ENOMEM, "target record: out of memory");
		s->bytes = b;
		s->cap = buf.len;
	}
	if (s->zone == NULL && (s->zone = msgpack_zone_new(1024)) == NULL)
		return ing_error_set(e, ING_ENOMEM, "target record: out of memory");
	msgpack_zone_clear(s->zone);
	int rv = rec_target_decode(buf, s->zone, &s->t, e);
	if (rv != 0)
		return rv;
	if (buf.len > 0)
		memcpy(s->bytes, buf.ptr, buf.len);
	s->len = buf.len;
	s->valid = true;
	s->encoded = false;
	return 0;
}

/* v as msgpack_pack_uint64 writes it (the shortest form) into p; its length. */
static size_t put_uint(uint8_t *p, uint64_t v)
{
	if (v < 128) {
		p[0] = (uint8_t)v;
		return 1;
	}
	size_t n = v < 256 ? 1 : v < 65536 ? 2 : v <= UINT32_MAX ? 4 : 8;
	p[0] = n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf;
	for (size_t i = 0; i < n; i++)
		p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return 1 + n;
}

static size_t put_tail(uint8_t p[27], uint32_t active, const struct rec_target *t)
{
	size_t n = put_uint(p, active);
	n += put_uint(p + n, t->created_at_ms);
	return n + put_uint(p + n, t->updated_at_ms);
}

/* Encodes t into o from s's bytes, rewriting only the tail; false when s's
 * bytes are not known to be its encoding (nothing written). */
static bool encode_tail(const struct memo_slot *s, const struct rec_target *t, struct mp_out *o)
{
	uint8_t old[27], tail[27];
	size_t nold = put_tail(old, s->t.active_jobs, &s->t);
	if (!s->encoded || nold > s->len || memcmp(s->bytes + s->len - nold, old, nold) != 0)
		return false;
	size_t n = put_tail(tail, t->active_jobs, t);
	mp_out_raw(o, s->bytes, s->len - nold);
	mp_out_raw(o, tail, n);
	return true;
}

int rec_target_memo_decode(struct rec_target_memo *m, uint64_t epoch, struct ing_str buf,
                           msgpack_zone *z, struct rec_target *out, struct ing_error *e)
{
	struct memo_slot *s = NULL;
	for (unsigned i = 0; i < REC_TARGET_MEMO_SLOTS && s == NULL; i++) {
		struct memo_slot *c = &m->slots[i];
		if (c->valid && c->len == buf.len && memcmp(c->bytes, buf.ptr, buf.len) == 0)
			s = c;
	}
	if (s != NULL) {
		m->hits++;
	} else {
		m->decodes++;
		if (buf.len <= REC_TARGET_MEMO_MAX_BYTES)
			s = slot_for(m, epoch);
		if (s == NULL)
			return rec_target_decode(buf, z, out, e);
		int rv = fill(s, buf, e);
		if (rv != 0)
			return rv;
	}
	s->epoch = epoch;
	s->last_use = ++m->clock;
	m->any_epoch = true;
	*out = s->t;
	return 0;
}

int rec_target_memo_encode_active(struct rec_target_memo *m, uint64_t epoch,
                                  const struct rec_target *t, struct mp_out *o)
{
	struct memo_slot *s = NULL;
	/* The slot whose record t is a copy of: its strings live in that
	 * slot's zone, and a slot returned in this epoch is not refilled. */
	for (unsigned i = 0; i < REC_TARGET_MEMO_SLOTS && s == NULL; i++) {
		struct memo_slot *c = &m->slots[i];
		if (busy(m, c, epoch) && c->t.name.ptr == t->name.ptr && c->t.stages == t->stages &&
		    c->t.revision == t->revision && c->t.updated_at_ms == t->updated_at_ms)
			s = c;
	}
	if (s == NULL)
		return ING_ENOTFOUND;
	size_t start = o->len;
	int rv = encode_tail(s, t, o) ? mp_out_failed(o) : rec_target_encode(t, o);
	size_t n = o->len - start;
	if (rv == 0 && n > s->cap) {
		char *b = realloc(s->bytes, n);
		rv = b == NULL ? ING_ENOMEM : 0;
		if (b != NULL) {
			s->bytes = b;
			s->cap = (uint32_t)n;
		}
	}
	if (rv != 0) {
		s->valid = false;
		return rv;
	}
	memcpy(s->bytes, o->data + start, n);
	s->len = (uint32_t)n;
	s->t.active_jobs = t->active_jobs;
	s->encoded = true;
	return 0;
}

void rec_target_memo_stats(const struct rec_target_memo *m, uint64_t *hits, uint64_t *decodes)
{
	*hits = m->hits;
	*decodes = m->decodes;
}
