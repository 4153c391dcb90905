/*
 * artifact.h - content-addressed, chunked, reference-counted blobs.
 *
 * An artifact is named by the SHA-256 of its bytes.  Its manifest (table
 * artifacts) lists the SHA-256 of each chunk of at most STORE_CHUNK_BYTES;
 * chunks (table chunks) are shared between artifacts that contain the same
 * chunk.  Both carry reference counts: putting an existing artifact adds a
 * reference, unref drops one, and an artifact or chunk whose count reaches
 * zero is deleted, so nothing unreferenced stays on disk.
 *
 * All calls run inside a caller's write (or, for reads, any) transaction.
 */
#ifndef INGOT_STORAGE_ARTIFACT_H
#define INGOT_STORAGE_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

#define STORE_CHUNK_BYTES 65536

/* SHA-256 of data (OpenSSL). */
void store_sha256(const void *data, size_t len, uint8_t out[32]);

/*
 * Stores data as an artifact (or adds a reference to the existing one) and
 * returns its hash in sha.  ING_ETOOBIG over ING_SOURCE_MAX_BYTES.
 */
int store_artifact_put(struct store_txn *t, const void *data, size_t len, uint8_t sha[32]);
/* Adds a reference.  ING_ENOTFOUND if absent. */
int store_artifact_ref(struct store_txn *t, const uint8_t sha[32]);
/* Drops a reference, deleting the artifact and unreferenced chunks at zero.
 * ING_ENOTFOUND if absent. */
int store_artifact_unref(struct store_txn *t, const uint8_t sha[32]);
/* Size and reference count.  ING_ENOTFOUND if absent. */
int store_artifact_stat(struct store_txn *t, const uint8_t sha[32], uint64_t *size, uint64_t *refs);
/* Reassembles the bytes into a malloc'd buffer owned by the caller, checking
 * every chunk's hash (ING_ECORRUPT on mismatch). */
int store_artifact_read(struct store_txn *t, const uint8_t sha[32], void **buf, size_t *len);

#endif
