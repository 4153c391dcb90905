/*
 * artifact.c - content-addressed, chunked, reference-counted blobs (see
 * artifact.h).
 *
 * Tables: artifacts maps sha256(data) -> manifest [1, size, refs,
 * chunk_hashes] and chunks maps sha256(chunk) -> [1, refs, data] (codec in
 * storage/records.c).  An artifact of `size` bytes has
 * ceil(size / STORE_CHUNK_BYTES) chunks, each STORE_CHUNK_BYTES long except
 * the last; the empty artifact has none.
 *
 * An artifact of at most one chunk (every source and log under 64 KiB) has
 * no manifest: it IS its chunk, since the chunk's bytes and hash are the
 * artifact's.  This halves the random-key writes of the common case (keys
 * are hashes, so each write dirties its own B-tree page; see
 * docs/performance.md).  A chunk's refs then count its uses both as a
 * single-chunk artifact and inside manifests.
 *
 * Invariants (within every committed txn):
 *  - a manifest's refs >= 1 and a chunk's refs >= 1;
 *  - a chunk's refs equals the number of times its hash appears in the
 *    chunk lists of all manifests (a chunk repeated inside one artifact
 *    counts once per occurrence) plus the references to it as a
 *    single-chunk artifact;
 *  - a manifest exists only for artifacts of two chunks or more;
 *  - every hash a manifest lists has a chunk.
 * Putting an existing artifact only bumps the manifest's refs.
 *
 * Failure modes: a manifest or chunk that does not decode, a missing chunk,
 * a chunk length or hash that does not match, or a reference count at 0 is
 * corruption: ING_ECORRUPT, sticky for the store (STORE_CORRUPT).  Decoded
 * records live in a msgpack zone (the decoders copy the bytes), so they stay
 * valid across the puts that invalidate LMDB views.
 */
#include "storage/artifact.h"

#include <stdlib.h>
#include <string.h>

#include "common/encode.h"
#include "common/log.h"
#include "common/mp.h"
#include "storage/limits.h"
#include "storage/records.h"
#include "storage/store_internal.h"

void store_sha256(const void *data, size_t len, uint8_t out[32])
{
	ing_sha256(data, len, out);
}

static struct ing_str hash_key(const uint8_t sha[32])
{
	struct ing_str k = {(const char *)sha, 32};
	return k;
}

/* Decoder failures of stored records are corruption, except lack of memory. */
static int decode_failed(struct store_txn *t, int rv, const char *what)
{
	if (rv == ING_ENOMEM)
		return rv;
	return STORE_CORRUPT(store_txn_store(t), what);
}

/* Reads and decodes the manifest of sha into zone z. */
static int manifest_get(struct store_txn *t, const uint8_t sha[32], msgpack_zone *z,
                        struct rec_artifact *m)
{
	struct ing_str v;
	int rv = store_get(t, STORE_ARTIFACTS, hash_key(sha), &v);
	if (rv != 0)
		return rv;
	rv = rec_artifact_decode(v, z, m, NULL);
	if (rv != 0)
		return decode_failed(t, rv, "artifact manifest does not decode");
	if (m->refs == 0)
		return STORE_CORRUPT(store_txn_store(t), "artifact manifest with zero refs");
	return 0;
}

static int chunk_decode(struct store_txn *t, struct ing_str v, msgpack_zone *z, struct rec_chunk *c)
{
	int rv = rec_chunk_decode(v, z, c, NULL);
	if (rv != 0)
		return decode_failed(t, rv, "artifact chunk does not decode");
	if (c->refs == 0)
		return STORE_CORRUPT(store_txn_store(t), "artifact chunk with zero refs");
	return 0;
}

/* Reads and decodes the chunk `hash` into zone z; a missing chunk is corrupt. */
static int chunk_get(struct store_txn *t, const uint8_t hash[32], msgpack_zone *z,
                     struct rec_chunk *c)
{
	struct ing_str v;
	int rv = store_get(t, STORE_CHUNKS, hash_key(hash), &v);
	if (rv == ING_ENOTFOUND)
		return STORE_CORRUPT(store_txn_store(t), "artifact chunk missing");
	if (rv != 0)
		return rv;
	return chunk_decode(t, v, z, c);
}

/* Reads the chunk `hash` as a single-chunk artifact: ING_ENOTFOUND if absent. */
static int single_get(struct store_txn *t, const uint8_t hash[32], msgpack_zone *z,
                      struct rec_chunk *c)
{
	struct ing_str v;
	int rv = store_get(t, STORE_CHUNKS, hash_key(hash), &v);
	if (rv != 0)
		return rv;
	return chunk_decode(t, v, z, c);
}

static int manifest_put(struct store_txn *t, const uint8_t sha[32], const struct rec_artifact *m)
{
	/* mp_out_write memcpy's from the pointer even for 0 bytes: never NULL. */
	static const uint8_t no_hashes[1];
	struct rec_artifact r = *m;
	struct mp_out o;
	int rv;

	if (r.chunk_hashes == NULL)
		r.chunk_hashes = no_hashes;
	mp_out_init(&o);
	rv = rec_artifact_encode(&r, &o);
	if (rv == 0)
		rv = mp_out_failed(&o);
	if (rv == 0)
		rv = store_put(t, STORE_ARTIFACTS, hash_key(sha),
		               (struct ing_str){o.data, (uint32_t)o.len});
	mp_out_free(&o);
	return rv;
}

static int chunk_put(struct store_txn *t, const uint8_t hash[32], const struct rec_chunk *c)
{
	struct mp_out o;
	int rv;

	mp_out_init(&o);
	rv = rec_chunk_encode(c, &o);
	if (rv == 0)
		rv = mp_out_failed(&o);
	if (rv == 0)
		rv = store_put(t, STORE_CHUNKS, hash_key(hash),
		               (struct ing_str){o.data, (uint32_t)o.len});
	mp_out_free(&o);
	return rv;
}

/* Adds one reference to the chunk `hash` holding data, creating it at 1. */
static int chunk_ref(struct store_txn *t, const uint8_t hash[32], const void *data, size_t len,
                     msgpack_zone *z)
{
	struct rec_chunk c;
	struct ing_str v;
	int rv = store_get(t, STORE_CHUNKS, hash_key(hash), &v);
	if (rv == ING_ENOTFOUND) {
		c.refs = 1;
		c.data.ptr = data;
		c.data.len = (uint32_t)len;
		return chunk_put(t, hash, &c);
	}
	if (rv == 0)
		rv = chunk_decode(t, v, z, &c);
	if (rv != 0)
		return rv;
	c.refs++;
	return chunk_put(t, hash, &c);
}

/* Drops one reference to chunk `hash`, deleting it at zero. */
static int chunk_unref(struct store_txn *t, const uint8_t hash[32], msgpack_zone *z)
{
	struct rec_chunk c;
	int rv = chunk_get(t, hash, z, &c);
	if (rv != 0)
		return rv;
	if (c.refs == 1)
		return store_del(t, STORE_CHUNKS, hash_key(hash));
	c.refs--;
	return chunk_put(t, hash, &c);
}

static uint32_t chunk_count(uint64_t size)
{
	return (uint32_t)((size + STORE_CHUNK_BYTES - 1) / STORE_CHUNK_BYTES);
}

static size_t chunk_len(uint64_t size, uint32_t i)
{
	uint64_t off = (uint64_t)i * STORE_CHUNK_BYTES;
	uint64_t left = size - off;
	return (size_t)(left < STORE_CHUNK_BYTES ? left : STORE_CHUNK_BYTES);
}

int store_artifact_put(struct store_txn *t, const void *data, size_t len, uint8_t sha[32])
{
	uint8_t h[32];
	uint8_t *hashes = NULL;
	struct rec_artifact m;
	msgpack_zone *z = NULL;
	uint32_t n;
	int rv;

	if (len > ING_SOURCE_MAX_BYTES)
		return ING_ETOOBIG;
	store_sha256(data, len, h);
	z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (z == NULL)
		return ING_ENOMEM;
	if (len <= STORE_CHUNK_BYTES) {
		rv = chunk_ref(t, h, data, len, z);
		goto out;
	}
	rv = manifest_get(t, h, z, &m);
	if (rv == 0) {
		m.refs++;
		rv = manifest_put(t, h, &m);
		goto out;
	}
	if (rv != ING_ENOTFOUND)
		goto out;

	n = chunk_count(len);
	hashes = malloc(n > 0 ? (size_t)n * 32 : 1);
	if (hashes == NULL) {
		rv = ING_ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *p = (const char *)data + (size_t)i * STORE_CHUNK_BYTES;
		size_t clen = chunk_len(len, i);
		store_sha256(p, clen, hashes + (size_t)i * 32);
		rv = chunk_ref(t, hashes + (size_t)i * 32, p, clen, z);
		if (rv != 0)
			goto out;
		msgpack_zone_clear(z);
	}
	m.size = len;
	m.refs = 1;
	m.nchunks = n;
	m.chunk_hashes = hashes;
	rv = manifest_put(t, h, &m);
out:
	if (rv == 0)
		memcpy(sha, h, 32);
	free(hashes);
	msgpack_zone_free(z);
	return rv;
}

int store_artifact_ref(struct store_txn *t, const uint8_t sha[32])
{
	struct rec_artifact m;
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	int rv;

	if (z == NULL)
		return ING_ENOMEM;
	rv = manifest_get(t, sha, z, &m);
	if (rv == 0) {
		m.refs++;
		rv = manifest_put(t, sha, &m);
	} else if (rv == ING_ENOTFOUND) {
		struct rec_chunk c;
		rv = single_get(t, sha, z, &c);
		if (rv == 0) {
			c.refs++;
			rv = chunk_put(t, sha, &c);
		}
	}
	msgpack_zone_free(z);
	return rv;
}

int store_artifact_unref(struct store_txn *t, const uint8_t sha[32])
{
	struct rec_artifact m;
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	msgpack_zone *cz = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	int rv;

	if (z == NULL || cz == NULL) {
		rv = ING_ENOMEM;
		goto out;
	}
	rv = manifest_get(t, sha, z, &m);
	if (rv == ING_ENOTFOUND) {
		struct rec_chunk c;
		rv = single_get(t, sha, z, &c);
		if (rv == 0)
			rv = chunk_unref(t, sha, cz);
		goto out;
	}
	if (rv != 0)
		goto out;
	if (m.refs > 1) {
		m.refs--;
		rv = manifest_put(t, sha, &m);
		goto out;
	}
	/* m.chunk_hashes lives in z, unaffected by the writes below. */
	rv = store_del(t, STORE_ARTIFACTS, hash_key(sha));
	for (uint32_t i = 0; rv == 0 && i < m.nchunks; i++) {
		rv = chunk_unref(t, m.chunk_hashes + (size_t)i * 32, cz);
		msgpack_zone_clear(cz);
	}
out:
	if (cz != NULL)
		msgpack_zone_free(cz);
	if (z != NULL)
		msgpack_zone_free(z);
	return rv;
}

int store_artifact_stat(struct store_txn *t, const uint8_t sha[32], uint64_t *size, uint64_t *refs)
{
	struct rec_artifact m;
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	int rv;

	if (z == NULL)
		return ING_ENOMEM;
	rv = manifest_get(t, sha, z, &m);
	if (rv == 0) {
		*size = m.size;
		*refs = m.refs;
	} else if (rv == ING_ENOTFOUND) {
		struct rec_chunk c;
		rv = single_get(t, sha, z, &c);
		if (rv == 0) {
			*size = c.data.len;
			*refs = c.refs;
		}
	}
	msgpack_zone_free(z);
	return rv;
}

int store_artifact_read(struct store_txn *t, const uint8_t sha[32], void **buf, size_t *len)
{
	struct store *s = store_txn_store(t);
	struct rec_artifact m;
	struct rec_chunk c;
	uint8_t h[32];
	char *out = NULL;
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	msgpack_zone *cz = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	int rv;

	if (z == NULL || cz == NULL) {
		rv = ING_ENOMEM;
		goto out;
	}
	rv = manifest_get(t, sha, z, &m);
	if (rv == ING_ENOTFOUND) {
		/* A single-chunk artifact: the chunk is the whole artifact. */
		rv = single_get(t, sha, z, &c);
		if (rv != 0)
			goto out;
		m.size = c.data.len;
		m.nchunks = chunk_count(m.size); /* 0 for the empty artifact */
		m.chunk_hashes = sha;
	} else if (rv != 0) {
		goto out;
	}
	if (m.size > ING_SOURCE_MAX_BYTES || m.nchunks != chunk_count(m.size)) {
		rv = STORE_CORRUPT(s, "artifact manifest size and chunk count disagree");
		goto out;
	}
	out = malloc(m.size > 0 ? (size_t)m.size : 1);
	if (out == NULL) {
		rv = ING_ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < m.nchunks; i++) {
		const uint8_t *want = m.chunk_hashes + (size_t)i * 32;
		size_t clen = chunk_len(m.size, i);
		rv = chunk_get(t, want, cz, &c);
		if (rv != 0)
			goto out;
		if (c.data.len != clen) {
			rv = STORE_CORRUPT(s, "artifact chunk has the wrong length");
			goto out;
		}
		store_sha256(c.data.ptr, clen, h);
		if (memcmp(h, want, 32) != 0) {
			rv = STORE_CORRUPT(s, "artifact chunk hash mismatch");
			goto out;
		}
		memcpy(out + (size_t)i * STORE_CHUNK_BYTES, c.data.ptr, clen);
		msgpack_zone_clear(cz);
	}
	store_sha256(out, (size_t)m.size, h);
	if (memcmp(h, sha, 32) != 0) {
		rv = STORE_CORRUPT(s, "artifact hash mismatch");
		goto out;
	}
	*buf = out;
	*len = (size_t)m.size;
	out = NULL;
out:
	free(out);
	if (cz != NULL)
		msgpack_zone_free(cz);
	if (z != NULL)
		msgpack_zone_free(z);
	return rv;
}
