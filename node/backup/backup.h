/*
 * backup.h - the snapshot file (docs/formats.md "Snapshot file"): a copy of
 * the replicated state taken from a live cluster (cluster.snapshot,
 * `ingotctl snapshot save`) and the seed of a new one (`ingotd restore`).
 *
 * Layout, integers big-endian:
 *   0   8  magic "INGOTSNP"
 *   8   4  format version (1)
 *   12  4  header length (128)
 *   16  8  payload length
 *   24  32 SHA-256 of the payload
 *   56  8  applied index: the copy holds every entry up to it (at least)
 *   64  8  creation time, ms since the epoch
 *   72  8  id of the node that made it
 *   80  32 cluster id (32 hex digits; zeros when the cluster had none)
 *   112 16 zeros
 *   128 .. the payload: a compacted LMDB copy of the store (state.mdb)
 */
#ifndef INGOT_NODE_BACKUP_BACKUP_H
#define INGOT_NODE_BACKUP_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "node/core.h"
#include "rpc/server.h"

#define BACKUP_MAGIC       "INGOTSNP"
#define BACKUP_VERSION     1
#define BACKUP_HEADER_LEN  128
#define BACKUP_CLUSTER_LEN 32

struct backup_header {
	uint32_t version;
	uint64_t payload_len;
	uint8_t sha256[32];
	uint64_t applied_index;
	uint64_t created_at_ms;
	uint64_t node_id;
	char cluster_id[BACKUP_CLUSTER_LEN + 1]; /* "" when none */
};

/* Writes the 128-byte header of h into out. */
void backup_header_encode(const struct backup_header *h, uint8_t out[BACKUP_HEADER_LEN]);

/*
 * Checks a whole file in memory: magic, version, header length, payload
 * length, and the payload's SHA-256.  Fills *h.  ING_EMALFORMED ("not an
 * ingot snapshot file", "truncated: N of M payload bytes"), ING_EVERSION,
 * ING_ECORRUPT ("checksum mismatch"), with a message in e.
 */
int backup_check(const void *file, size_t len, struct backup_header *h, struct ing_error *e);

/* ---- the snapshots held for download (backup.c, docs/api.md "Backups") ----
 *
 * Owns: the snapshot files the leader made for cluster.snapshot, kept in
 * memory until read or idle (backup.c says how long), and the copies under
 * way on the libuv pool (each holds the node until its callback ran).
 */

/* ING_ENOMEM, or 0 and *out. */
int backup_new(struct node *n, struct backup **out);
/* node/bus.h, stopping: drops every file held; a copy under way is
 * answered `unavailable` when it completes. */
void backup_stop(struct backup *b);
/* After backup_stop, once the node no longer runs callbacks. */
void backup_free(struct backup *b);

/* cluster.snapshot and cluster.snapshot_read (api ops table). */
void backup_op_snapshot(struct node *n, struct rpc_call *call);
void backup_op_snapshot_read(struct node *n, struct rpc_call *call);

/* `ingotd restore --from FILE --config FILE [--data-dir DIR] [--log-level L]`
 * (node/backup/restore.c): exit status as documented in docs/operations.md. */
int node_restore_main(int argc, char **argv);

#endif
