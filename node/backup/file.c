/*
 * file.c - the snapshot file's header and its checks (see backup.h).
 */
#include "node/backup/backup.h"

#include <openssl/evp.h>
#include <string.h>

#include "storage/store.h"

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void backup_header_encode(const struct backup_header *h, uint8_t out[BACKUP_HEADER_LEN])
{
	memset(out, 0, BACKUP_HEADER_LEN);
	memcpy(out, BACKUP_MAGIC, 8);
	store_be32(out + 8, BACKUP_VERSION);
	store_be32(out + 12, BACKUP_HEADER_LEN);
	store_be64(out + 16, h->payload_len);
	memcpy(out + 24, h->sha256, 32);
	store_be64(out + 56, h->applied_index);
	store_be64(out + 64, h->created_at_ms);
	store_be64(out + 72, h->node_id);
	memcpy(out + 80, h->cluster_id, strnlen(h->cluster_id, BACKUP_CLUSTER_LEN));
}

int backup_check(const void *file, size_t len, struct backup_header *h, struct ing_error *e)
{
	const uint8_t *p = file;
	if (len < BACKUP_HEADER_LEN || memcmp(p, BACKUP_MAGIC, 8) != 0)
		return ing_error_set(e, ING_EMALFORMED,
		                     "not an ingot snapshot file (no INGOTSNP header)");
	memset(h, 0, sizeof(*h));
	h->version = get32(p + 8);
	if (h->version != BACKUP_VERSION || get32(p + 12) != BACKUP_HEADER_LEN)
		return ing_error_set(e, ING_EVERSION,
		                     "snapshot file format %u is not supported (this ingotd reads "
		                     "format %d)",
		                     h->version, BACKUP_VERSION);
	h->payload_len = get64(p + 16);
	memcpy(h->sha256, p + 24, 32);
	h->applied_index = get64(p + 56);
	h->created_at_ms = get64(p + 64);
	h->node_id = get64(p + 72);
	memcpy(h->cluster_id, p + 80, BACKUP_CLUSTER_LEN);
	h->cluster_id[BACKUP_CLUSTER_LEN] = '\0';
	if (len - BACKUP_HEADER_LEN != h->payload_len)
		return ing_error_set(e, ING_EMALFORMED,
		                     "truncated or padded: %zu payload bytes, the header says %llu",
		                     len - BACKUP_HEADER_LEN, (unsigned long long)h->payload_len);
	uint8_t sum[32];
	unsigned n = 0;
	if (EVP_Digest(p + BACKUP_HEADER_LEN, h->payload_len, sum, &n, EVP_sha256(), NULL) != 1)
		return ing_error_set(e, ING_ENOMEM, "cannot compute SHA-256");
	if (memcmp(sum, h->sha256, 32) != 0)
		return ing_error_set(
		    e, ING_ECORRUPT,
		    "checksum mismatch: the payload's SHA-256 is not the one in the "
		    "header (the file is damaged)");
	return 0;
}
