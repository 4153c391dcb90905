/*
 * msgcheck.c - the stream checker of msgcheck.h.
 *
 * States: PREAMBLE (collect 16 bytes) -> HEADER (collect header_len bytes;
 * nothing forwarded yet) -> check the header; forward preamble + header ->
 * PAYLOAD (forward bytes as they come; an AppendEntries payload is walked
 * entry by entry so a configuration entry can be held and checked) ->
 * PREAMBLE.  A failure is sticky.
 *
 * Layouts (libraft 0.15, uv_encoding.c; u64 little-endian, offsets in the
 * header; each "slack" is 8 bytes 0.15 allocates and never writes):
 *   1 AppendEntries        term, prev_index, prev_term, commit, n,
 *                          n x {term u64, type u8, 3 unused, len u32},
 *                          slack: 48 + 16 n bytes; payload = the entries
 *   2 AppendEntriesResult  term, rejected, last_index: 24
 *   3 RequestVote          term, candidate, last_index, last_term
 *                          [, flags]: 32 or 40
 *   4 RequestVoteResult    term, granted [, flags]: 16 or 24
 *   5 InstallSnapshot      term, last_index, last_term, conf_index,
 *                          conf_len, conf, data_len, slack: 56 + conf_len;
 *                          payload = data_len bytes
 *   6 TimeoutNow           term, last_index, last_term: 24
 * Configuration (configuration.c, format 1): u8 1, u64 n (unaligned), n x
 * {u64 id, NUL-terminated address, u8 role}, padding to a multiple of 8.
 */
#include "raft/msgcheck.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "common/err.h"

enum { MC_PREAMBLE, MC_HEADER, MC_PAYLOAD };

enum {
	T_APPEND_ENTRIES = 1,
	T_APPEND_ENTRIES_RESULT = 2,
	T_REQUEST_VOTE = 3,
	T_REQUEST_VOTE_RESULT = 4,
	T_INSTALL_SNAPSHOT = 5,
	T_TIMEOUT_NOW = 6,
};

#define AE_FIXED_BYTES 48u
#define IS_FIXED_BYTES 56u
#define ENTRY_BYTES    16u

static const char *type_name(uint64_t type)
{
	switch (type) {
	case T_APPEND_ENTRIES: return "AppendEntries";
	case T_APPEND_ENTRIES_RESULT: return "AppendEntriesResult";
	case T_REQUEST_VOTE: return "RequestVote";
	case T_REQUEST_VOTE_RESULT: return "RequestVoteResult";
	case T_INSTALL_SNAPSHOT: return "InstallSnapshot";
	case T_TIMEOUT_NOW: return "TimeoutNow";
	default: return "unknown";
	}
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fail(struct cons_msgcheck *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct cons_msgcheck *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->error, sizeof(m->error), fmt, ap);
	va_end(ap);
	m->failed = true;
	return ING_EMALFORMED;
}

void cons_msgcheck_init(struct cons_msgcheck *m, uint64_t peer_id,
                        uint64_t (*local_term)(void *data), void *data)
{
	memset(m, 0, sizeof(*m));
	m->peer_id = peer_id;
	m->local_term = local_term;
	m->data = data;
	m->state = MC_PREAMBLE;
}

void cons_msgcheck_free(struct cons_msgcheck *m)
{
	free(m->header);
	free(m->held);
	m->header = m->held = NULL;
}

int cons_msgcheck_conf(const uint8_t *p, size_t len, char *why, size_t cap)
{
	if (len < 9 || p[0] != 1) {
		snprintf(why, cap, "configuration: %s",
		         len < 9 ? "shorter than its header" : "unknown format");
		return ING_EMALFORMED;
	}
	uint64_t n = le64(p + 1);
	if (n == 0 || n > CONS_MSG_MAX_SERVERS || n > (len - 9) / 11) {
		snprintf(why, cap, "configuration: %llu servers in %zu bytes",
		         (unsigned long long)n, len);
		return ING_EMALFORMED;
	}
	size_t pos = 9;
	for (uint64_t i = 0; i < n; i++) {
		if (len - pos < 8 + 2 + 1) {
			snprintf(why, cap, "configuration: server %llu truncated",
			         (unsigned long long)i);
			return ING_EMALFORMED;
		}
		uint64_t id = le64(p + pos);
		pos += 8;
		const uint8_t *nul = memchr(p + pos, 0, len - pos);
		size_t alen = nul != NULL ? (size_t)(nul - (p + pos)) : 0;
		if (id == 0 || nul == NULL || alen == 0 || alen > 255 || len - pos - alen < 2) {
			snprintf(why, cap, "configuration: server %llu: %s", (unsigned long long)i,
			         id == 0 ? "id 0" : "bad address");
			return ING_EMALFORMED;
		}
		for (size_t k = 0; k < alen; k++) {
			if (p[pos + k] < 0x21 || p[pos + k] > 0x7e) {
				snprintf(why, cap,
				         "configuration: server %llu: unprintable address",
				         (unsigned long long)i);
				return ING_EMALFORMED;
			}
		}
		pos += alen + 1;
		uint8_t role = p[pos++];
		if (role != RAFT_STANDBY && role != RAFT_VOTER && role != RAFT_SPARE) {
			snprintf(why, cap, "configuration: server %llu: role %u",
			         (unsigned long long)id, (unsigned)role);
			return ING_EMALFORMED;
		}
		/* Duplicate ids: O(n^2) over at most CONS_MSG_MAX_SERVERS, and
		 * only for configuration messages. */
		size_t q = 9;
		for (uint64_t j = 0; j < i; j++) {
			if (le64(p + q) == id) {
				snprintf(why, cap, "configuration: server id %llu twice",
				         (unsigned long long)id);
				return ING_EMALFORMED;
			}
			q += 8;
			q += strlen((const char *)p + q) + 1 + 1;
		}
	}
	if (len - pos >= 8) {
		snprintf(why, cap, "configuration: %zu bytes after the last server", len - pos);
		return ING_EMALFORMED;
	}
	return 0;
}

/* A term in a message: below the bounds. */
static int check_term(struct cons_msgcheck *m, const char *what, uint64_t term)
{
	if (term >= CONS_TERM_MAX)
		return fail(m, "%s: %s %llu is absurd (>= 2^62)", type_name(m->type), what,
		            (unsigned long long)term);
	if (m->local_term != NULL) {
		uint64_t local = m->local_term(m->data);
		if (term > local && term - local > CONS_TERM_JUMP_MAX)
			return fail(m, "%s: %s %llu is more than %llu above the local term %llu",
			            type_name(m->type), what, (unsigned long long)term,
			            (unsigned long long)CONS_TERM_JUMP_MAX,
			            (unsigned long long)local);
	}
	return 0;
}

/* The preamble is whole: the type and header length it announces. */
static int check_preamble(struct cons_msgcheck *m)
{
	uint64_t len = le64(m->pre + 8);
	m->type = le64(m->pre);
	switch (m->type) {
	case T_APPEND_ENTRIES:
		if (len < AE_FIXED_BYTES || (len - AE_FIXED_BYTES) % ENTRY_BYTES != 0 ||
		    (len - AE_FIXED_BYTES) / ENTRY_BYTES > CONS_MSG_MAX_ENTRIES)
			goto bad;
		break;
	case T_APPEND_ENTRIES_RESULT:
	case T_TIMEOUT_NOW:
		if (len != 24)
			goto bad;
		break;
	case T_REQUEST_VOTE:
		if (len != 32 && len != 40)
			goto bad;
		break;
	case T_REQUEST_VOTE_RESULT:
		if (len != 16 && len != 24)
			goto bad;
		break;
	case T_INSTALL_SNAPSHOT:
		if (len < IS_FIXED_BYTES + 16 || len > IS_FIXED_BYTES + CONS_MSG_MAX_CONF_BYTES)
			goto bad;
		break;
	default: return fail(m, "message type %llu is unknown", (unsigned long long)m->type);
	}
	m->header_len = (size_t)len;
	return 0;
bad:
	return fail(m, "%s: header of %llu bytes", type_name(m->type), (unsigned long long)len);
}

static int check_append_entries(struct cons_msgcheck *m)
{
	const uint8_t *h = m->header;
	uint64_t term = le64(h), prev_term = le64(h + 16), n = le64(h + 32);
	if (term == 0)
		return fail(m, "AppendEntries: term 0");
	if (n != (m->header_len - AE_FIXED_BYTES) / ENTRY_BYTES)
		return fail(m, "AppendEntries: %llu entries in a header for %zu",
		            (unsigned long long)n, (m->header_len - AE_FIXED_BYTES) / ENTRY_BYTES);
	if (prev_term > term)
		return fail(m, "AppendEntries: previous term %llu above the term %llu",
		            (unsigned long long)prev_term, (unsigned long long)term);
	uint64_t payload = 0;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *e = h + 40 + ENTRY_BYTES * i;
		uint64_t eterm = le64(e);
		uint8_t type = e[8];
		uint32_t len = le32(e + 12);
		if (type != RAFT_COMMAND && type != RAFT_BARRIER && type != RAFT_CHANGE)
			return fail(m, "AppendEntries: entry %llu has type %u",
			            (unsigned long long)i, (unsigned)type);
		if (eterm == 0 || eterm > term)
			return fail(m,
			            "AppendEntries: entry %llu has term %llu (message term %llu)",
			            (unsigned long long)i, (unsigned long long)eterm,
			            (unsigned long long)term);
		if (len == 0 || len % 8 != 0 || len > CONS_MSG_MAX_ENTRY_BYTES ||
		    (type == RAFT_CHANGE && len > CONS_MSG_MAX_CONF_BYTES))
			return fail(m, "AppendEntries: entry %llu has %u bytes",
			            (unsigned long long)i, (unsigned)len);
		payload += len;
	}
	if (payload > CONS_MSG_MAX_PAYLOAD_BYTES)
		return fail(m, "AppendEntries: payload of %llu bytes", (unsigned long long)payload);
	int rv = check_term(m, "term", term);
	if (rv != 0)
		return rv;
	m->nentries = (uint32_t)n;
	m->entry = 0;
	m->entry_left = n > 0 ? le32(h + 40 + 12) : 0;
	m->payload_left = payload;
	return 0;
}

static int check_install_snapshot(struct cons_msgcheck *m)
{
	const uint8_t *h = m->header;
	uint64_t term = le64(h), last_term = le64(h + 16), conf_len = le64(h + 32);
	if (term == 0)
		return fail(m, "InstallSnapshot: term 0");
	if (conf_len != m->header_len - IS_FIXED_BYTES)
		return fail(m, "InstallSnapshot: configuration of %llu bytes in a header for %zu",
		            (unsigned long long)conf_len, m->header_len - IS_FIXED_BYTES);
	if (last_term == 0 || last_term > term)
		return fail(m, "InstallSnapshot: last term %llu (message term %llu)",
		            (unsigned long long)last_term, (unsigned long long)term);
	char why[128];
	if (cons_msgcheck_conf(h + 40, (size_t)conf_len, why, sizeof(why)) != 0)
		return fail(m, "InstallSnapshot: %s", why);
	uint64_t data_len = le64(h + 40 + conf_len);
	if (data_len == 0 || data_len > CONS_MSG_MAX_SNAPSHOT_BYTES)
		return fail(m, "InstallSnapshot: snapshot of %llu bytes",
		            (unsigned long long)data_len);
	int rv = check_term(m, "term", term);
	if (rv != 0)
		return rv;
	m->payload_left = data_len;
	return 0;
}

/* The header is whole: its fields, and what payload follows. */
static int check_header(struct cons_msgcheck *m)
{
	const uint8_t *h = m->header;
	uint64_t term = le64(h);
	m->payload_left = 0;
	switch (m->type) {
	case T_APPEND_ENTRIES: return check_append_entries(m);
	case T_INSTALL_SNAPSHOT: return check_install_snapshot(m);
	case T_REQUEST_VOTE: {
		uint64_t candidate = le64(h + 8), last_term = le64(h + 24);
		if (term == 0)
			return fail(m, "RequestVote: term 0");
		if (candidate != m->peer_id)
			return fail(m, "RequestVote: candidate %llu sent by node %llu",
			            (unsigned long long)candidate, (unsigned long long)m->peer_id);
		if (last_term > term)
			return fail(m, "RequestVote: last log term %llu above the term %llu",
			            (unsigned long long)last_term, (unsigned long long)term);
		return check_term(m, "term", term);
	}
	case T_TIMEOUT_NOW: {
		uint64_t last_term = le64(h + 16);
		if (term == 0 || last_term > term)
			return fail(m, "TimeoutNow: term %llu, last log term %llu",
			            (unsigned long long)term, (unsigned long long)last_term);
		return check_term(m, "term", term);
	}
	default: /* the two results */ return check_term(m, "term", term);
	}
}

static int forward(struct mp_out *out, const void *p, size_t n)
{
	mp_out_raw(out, p, n);
	return mp_out_failed(out);
}

/* AppendEntries payload bytes: commands and barriers pass at once, a
 * configuration entry is held until it is whole and checked.  Consumes
 * what it can of p[0..n), returns how much in *used. */
static int feed_entries(struct cons_msgcheck *m, const uint8_t *p, size_t n, size_t *used,
                        struct mp_out *out)
{
	*used = 0;
	while (n > 0 && m->entry < m->nentries) {
		const uint8_t *e = m->header + 40 + ENTRY_BYTES * m->entry;
		size_t take = n < m->entry_left ? n : (size_t)m->entry_left;
		if (e[8] == RAFT_CHANGE) {
			if (m->held_cap < le32(e + 12)) {
				uint8_t *q = realloc(m->held, le32(e + 12));
				if (q == NULL)
					return ING_ENOMEM;
				m->held = q;
				m->held_cap = le32(e + 12);
			}
			memcpy(m->held + m->held_len, p, take);
			m->held_len += take;
		} else if (forward(out, p, take) != 0) {
			return ING_ENOMEM;
		}
		p += take;
		n -= take;
		*used += take;
		m->entry_left -= take;
		m->payload_left -= take;
		if (m->entry_left > 0)
			break;
		if (e[8] == RAFT_CHANGE) {
			char why[128];
			if (cons_msgcheck_conf(m->held, m->held_len, why, sizeof(why)) != 0)
				return fail(m, "AppendEntries: entry %u: %s", m->entry, why);
			if (forward(out, m->held, m->held_len) != 0)
				return ING_ENOMEM;
			m->held_len = 0;
		}
		m->entry++;
		if (m->entry < m->nentries)
			m->entry_left = le32(m->header + 40 + ENTRY_BYTES * m->entry + 12);
	}
	return 0;
}

int cons_msgcheck_feed(struct cons_msgcheck *m, const uint8_t *p, size_t n, struct mp_out *out)
{
	if (m->failed)
		return ING_EMALFORMED;
	while (n > 0) {
		if (m->state == MC_PREAMBLE) {
			size_t take = 16 - m->pre_have < n ? 16 - m->pre_have : n;
			memcpy(m->pre + m->pre_have, p, take);
			m->pre_have += take;
			p += take;
			n -= take;
			if (m->pre_have < 16)
				break;
			int rv = check_preamble(m);
			if (rv != 0)
				return rv;
			free(m->header);
			m->header = malloc(m->header_len);
			if (m->header == NULL)
				return ING_ENOMEM;
			m->header_have = 0;
			m->state = MC_HEADER;
		} else if (m->state == MC_HEADER) {
			size_t want = m->header_len - m->header_have;
			size_t take = want < n ? want : n;
			memcpy(m->header + m->header_have, p, take);
			m->header_have += take;
			p += take;
			n -= take;
			if (m->header_have < m->header_len)
				break;
			int rv = check_header(m);
			if (rv != 0)
				return rv;
			if (forward(out, m->pre, 16) != 0 ||
			    forward(out, m->header, m->header_len) != 0)
				return ING_ENOMEM;
			m->pre_have = 0;
			m->state = m->payload_left > 0 ? MC_PAYLOAD : MC_PREAMBLE;
			if (m->state == MC_PREAMBLE)
				m->messages++;
		} else {
			size_t used;
			if (m->type == T_APPEND_ENTRIES) {
				int rv = feed_entries(m, p, n, &used, out);
				if (rv != 0)
					return rv == ING_ENOMEM ? ING_ENOMEM : rv;
			} else {
				used = n < m->payload_left ? n : (size_t)m->payload_left;
				if (forward(out, p, used) != 0)
					return ING_ENOMEM;
				m->payload_left -= used;
			}
			p += used;
			n -= used;
			if (m->payload_left == 0) {
				m->state = MC_PREAMBLE;
				m->messages++;
			}
		}
	}
	return 0;
}
