/*
 * raftwire.h - libraft 0.15's peer wire format, written by hand for tests
 * that play a peer (raft/msgcheck.c's checks, the transport's refusals):
 * the connect handshake and each message type, little-endian as 0.15's
 * uv_encoding.c writes them, header slack included.  Each function appends
 * to an mp_out (common/mp.h) used as a byte buffer.
 */
#ifndef INGOT_TESTS_LIB_RAFTWIRE_H
#define INGOT_TESTS_LIB_RAFTWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/mp.h"

struct rw_entry {
	uint64_t term;
	uint8_t type; /* RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE, or anything */
	uint32_t len; /* payload bytes (not padded: the caller's choice) */
	const void *data;
};

void rw_u64(struct mp_out *o, uint64_t v);
/* protocol 1, id, address (NUL-terminated, padded to 8). */
void rw_handshake(struct mp_out *o, uint64_t id, const char *address);
/* RequestVote (40-byte header, with flags). */
void rw_request_vote(struct mp_out *o, uint64_t term, uint64_t candidate, uint64_t last_index,
                     uint64_t last_term, uint64_t flags);
/* AppendEntries: header (48 + 16 n bytes) then the entries' payloads. */
void rw_append_entries(struct mp_out *o, uint64_t term, uint64_t prev_index, uint64_t prev_term,
                       uint64_t commit, const struct rw_entry *e, unsigned n);
void rw_append_entries_result(struct mp_out *o, uint64_t term, uint64_t rejected,
                              uint64_t last_index);
/* A configuration (format 1) of n servers "127.0.0.1:900<i>" ids[i], role
 * voter, padded to 8; appended raw. */
void rw_configuration(struct mp_out *o, const uint64_t *ids, unsigned n);
/* InstallSnapshot with configuration bytes conf and data_len data bytes
 * (filled with 0x5a). */
void rw_install_snapshot(struct mp_out *o, uint64_t term, uint64_t last_index, uint64_t last_term,
                         const void *conf, size_t conf_len, size_t data_len);
/* A message with an arbitrary type and header. */
void rw_raw(struct mp_out *o, uint64_t type, const void *header, size_t len);

#endif
