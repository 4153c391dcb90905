/*
 * recover.h - offline access to a node's libraft directory: read what the
 * log holds, and force a new configuration after a loss of quorum.
 *
 * Both functions run on a stopped node's directory, with a private libuv
 * loop of their own: libraft is initialised (raft_uv_init + raft_init) but
 * never started, so nothing listens and nothing is elected.  The caller
 * must make sure no process uses the directory (raft/ cannot tell: libraft
 * 0.15 takes no lock on it); two libraft instances on one directory corrupt
 * the log.
 *
 * Reading the log is what libraft does at every start: it removes leftover
 * temporary files and orphaned snapshot files, and closes the last open
 * segment.  The entries, the term and the configuration are left as they
 * are.
 *
 * Recovery raises the current term by one (recover.c says why) and calls
 * libraft's raft_recover: it appends one configuration entry to the log on
 * disk, after the last entry.  libraft 0.15 writes that entry
 * with term 1 whatever the log's terms; a restarted node takes the newest
 * configuration of its log as current (committed or not), so the forced
 * configuration governs from the next start.  libraft's rule for safety:
 * every server stopped, recover run exactly once, on the survivor with the
 * most up-to-date log (highest last term, then highest last index), and
 * that directory copied to every other survivor named in the configuration
 * before any of them starts (docs/operations.md, "Quorum loss").
 */
#ifndef INGOT_RAFT_RECOVER_H
#define INGOT_RAFT_RECOVER_H

#include <stdint.h>

#include "common/err.h"
#include "raft/consensus.h"

/* What a libraft directory holds, as libraft loads it at start. */
struct cons_disk_state {
	uint64_t term;           /* current term (libraft's metadata); 0: no raft state */
	uint64_t voted_for;      /* 0: none in this term */
	uint64_t snapshot_index; /* last snapshot, 0: none */
	uint64_t snapshot_term;
	uint64_t first_index; /* first entry on disk (0: no entries) */
	uint64_t last_index;  /* last entry, or the snapshot's index when no entries follow it */
	uint64_t last_term;   /* term of that entry (1 for a configuration written by recover) */
	uint64_t n_entries;   /* entries on disk after the snapshot */
	uint64_t n_config;    /* configuration entries among them */
	uint64_t last_config_index; /* newest configuration entry on disk, 0: none */
};

/*
 * Reads the libraft directory `dir` of node `id` (raft address `address`,
 * which libraft wants at init but never binds here) into *out.
 * ING_EINVAL (bad arguments), ING_ENOTFOUND (no such directory, or a
 * directory holding no raft state: out->term is then 0 and *out is still
 * filled), ING_ECORRUPT, ING_EIO, ING_ENOMEM with libraft's message in e.
 * *out is written on success and for ING_ENOTFOUND on an empty directory.
 */
int cons_inspect(const char *dir, uint64_t id, const char *address, struct cons_disk_state *out,
                 struct ing_error *e);

/*
 * Forces the configuration of the libraft directory `dir` to `voters` (n
 * of them, every one a voter; borrowed), with libraft's raft_recover.  Node
 * `id` owns the directory and must be among the voters with the address
 * `address`.  Refuses a directory with no raft state (recovering it would
 * forge a bootstrap).  Raises the current term by one, then appends the
 * configuration.  On success *index (may be NULL) is the index of the
 * configuration entry appended.
 * ING_EINVAL (no voters, a zero or duplicate id, an address that is not
 * a.b.c.d:port or appears twice, id missing from the voters or with
 * another address there), ING_ENOTFOUND (no directory or no raft state:
 * nothing written), ING_ECORRUPT, ING_EIO, ING_ENOSPACE, ING_ENOMEM with a
 * message in e.  On any error before libraft writes, the directory is left
 * as cons_inspect would leave it.
 */
int cons_recover(const char *dir, uint64_t id, const char *address, const struct cons_peer *voters,
                 unsigned n, uint64_t *index, struct ing_error *e);

#endif
