/*
 * msgcheck.h - private to raft/: the checks libraft 0.15 does not make on
 * what a peer sends (DESIGN.md, "The uv transport trusts its peers
 * completely").
 *
 * The TLS transport (transport_tls.c) passes everything an authenticated
 * peer sends through this checker before libraft reads it.  The checker
 * follows 0.15's uv wire format (uv_recv.c / uv_encoding.c): each message
 * is a preamble (type and header length, u64 little-endian each), a header
 * whose layout depends on the type, and for AppendEntries and
 * InstallSnapshot a payload.  It forwards a message's preamble and header
 * only once the whole header is checked, and payload bytes as they come,
 * except a configuration entry, which is held until it is whole and
 * checked.  So libraft never completes a message that failed a check: on a
 * failure the caller closes the connection and libraft sees the stream end
 * mid-message, which it handles cleanly.
 *
 * What is refused (each crashes, stalls or poisons 0.15, or is impossible
 * from a correct peer):
 *   - an unknown message type; a header length other than 0.15's encoder
 *     writes for the type (0.15 reads fixed offsets past short headers);
 *   - any term >= CONS_TERM_MAX, or more than CONS_TERM_JUMP_MAX above the
 *     local term (a RequestVote at 2^64-1 leaves every node a candidate
 *     for ever); a request with term 0;
 *   - a log term above the message's term (prev_log_term, last_log_term,
 *     an entry's term), or an entry term of 0;
 *   - a RequestVote whose candidate is not the authenticated peer;
 *   - AppendEntries with more than CONS_MSG_MAX_ENTRIES entries, an entry
 *     type other than command, barrier or configuration (type 0 makes
 *     0.15's decoder dereference NULL), an entry length of 0, not a
 *     multiple of 8 (0.15 reads padding that was never sent) or over
 *     CONS_MSG_MAX_ENTRY_BYTES, a payload over CONS_MSG_MAX_PAYLOAD_BYTES;
 *   - a configuration (in an entry or an InstallSnapshot) that 0.15's
 *     decoder would read out of bounds, or that names server id 0, a
 *     duplicate id, an unknown role or an address that is not printable;
 *   - an InstallSnapshot over CONS_MSG_MAX_SNAPSHOT_BYTES.
 * It knows nothing of what commands mean: that is the state machine's.
 */
#ifndef INGOT_RAFT_MSGCHECK_H
#define INGOT_RAFT_MSGCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mp.h"

#define CONS_TERM_MAX               (1ull << 62)
#define CONS_TERM_JUMP_MAX          (1ull << 24)
#define CONS_MSG_MAX_ENTRIES        (1u << 20)
#define CONS_MSG_MAX_ENTRY_BYTES    (1ull << 30)
#define CONS_MSG_MAX_PAYLOAD_BYTES  (4ull << 30)
#define CONS_MSG_MAX_SNAPSHOT_BYTES (1ull << 40)
#define CONS_MSG_MAX_CONF_BYTES     (1u << 20)
#define CONS_MSG_MAX_SERVERS        1024

struct cons_msgcheck {
	uint64_t peer_id;
	/* The local node's current term (NULL: only the absolute bound). */
	uint64_t (*local_term)(void *data);
	void *data;
	uint64_t messages; /* checked and forwarded whole */
	char error[192];   /* why the stream was refused */

	/* private */
	int state;
	uint8_t pre[16];
	size_t pre_have;
	uint64_t type;
	uint8_t *header;
	size_t header_len, header_have;
	uint64_t payload_left;
	uint32_t entry, nentries;
	uint64_t entry_left;
	uint8_t *held; /* a configuration entry being collected */
	size_t held_len, held_cap;
	bool failed;
};

void cons_msgcheck_init(struct cons_msgcheck *m, uint64_t peer_id,
                        uint64_t (*local_term)(void *data), void *data);
void cons_msgcheck_free(struct cons_msgcheck *m);

/*
 * Consumes n bytes of the peer's stream and appends to `out` the bytes
 * libraft may have now.  0, or (the stream must then be closed; every later
 * call fails the same way) ING_EMALFORMED with m->error saying what was
 * wrong, ING_ENOMEM.
 */
int cons_msgcheck_feed(struct cons_msgcheck *m, const uint8_t *p, size_t n, struct mp_out *out);

/*
 * Checks one encoded libraft configuration (0.15 format 1): 0, or
 * ING_EMALFORMED with the reason in why.
 */
int cons_msgcheck_conf(const uint8_t *p, size_t len, char *why, size_t cap);

#endif
