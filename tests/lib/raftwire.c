/*
 * raftwire.c - see raftwire.h.
 */
#include "tests/lib/raftwire.h"

#include <stdio.h>
#include <string.h>

void rw_u64(struct mp_out *o, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	mp_out_raw(o, b, 8);
}

static void zeros(struct mp_out *o, size_t n)
{
	static const uint8_t z[64];
	while (n > 0) {
		size_t k = n < sizeof(z) ? n : sizeof(z);
		mp_out_raw(o, z, k);
		n -= k;
	}
}

void rw_handshake(struct mp_out *o, uint64_t id, const char *address)
{
	size_t len = strlen(address) + 1, padded = (len + 7) / 8 * 8;
	rw_u64(o, 1);
	rw_u64(o, id);
	rw_u64(o, padded);
	mp_out_raw(o, address, len);
	zeros(o, padded - len);
}

void rw_request_vote(struct mp_out *o, uint64_t term, uint64_t candidate, uint64_t last_index,
                     uint64_t last_term, uint64_t flags)
{
	rw_u64(o, 3);
	rw_u64(o, 40);
	rw_u64(o, term);
	rw_u64(o, candidate);
	rw_u64(o, last_index);
	rw_u64(o, last_term);
	rw_u64(o, flags);
}

void rw_append_entries(struct mp_out *o, uint64_t term, uint64_t prev_index, uint64_t prev_term,
                       uint64_t commit, const struct rw_entry *e, unsigned n)
{
	rw_u64(o, 1);
	rw_u64(o, 48 + 16 * (uint64_t)n);
	rw_u64(o, term);
	rw_u64(o, prev_index);
	rw_u64(o, prev_term);
	rw_u64(o, commit);
	rw_u64(o, n);
	for (unsigned i = 0; i < n; i++) {
		uint8_t h[8] = {e[i].type,
		                0,
		                0,
		                0,
		                (uint8_t)e[i].len,
		                (uint8_t)(e[i].len >> 8),
		                (uint8_t)(e[i].len >> 16),
		                (uint8_t)(e[i].len >> 24)};
		rw_u64(o, e[i].term);
		mp_out_raw(o, h, 8);
	}
	zeros(o, 8); /* slack */
	for (unsigned i = 0; i < n; i++) {
		if (e[i].data != NULL)
			mp_out_raw(o, e[i].data, e[i].len);
		else
			zeros(o, e[i].len);
	}
}

void rw_append_entries_result(struct mp_out *o, uint64_t term, uint64_t rejected,
                              uint64_t last_index)
{
	rw_u64(o, 2);
	rw_u64(o, 24);
	rw_u64(o, term);
	rw_u64(o, rejected);
	rw_u64(o, last_index);
}

void rw_configuration(struct mp_out *o, const uint64_t *ids, unsigned n)
{
	size_t start = o->len;
	uint8_t b[9] = {1};
	for (int i = 0; i < 8; i++)
		b[1 + i] = (uint8_t)((uint64_t)n >> (8 * i));
	mp_out_raw(o, b, 9);
	for (unsigned i = 0; i < n; i++) {
		char addr[32];
		uint8_t role = 1; /* RAFT_VOTER */
		rw_u64(o, ids[i]);
		snprintf(addr, sizeof(addr), "127.0.0.1:900%u", i);
		mp_out_raw(o, addr, strlen(addr) + 1);
		mp_out_raw(o, &role, 1);
	}
	size_t len = o->len - start;
	zeros(o, (8 - len % 8) % 8);
}

void rw_install_snapshot(struct mp_out *o, uint64_t term, uint64_t last_index, uint64_t last_term,
                         const void *conf, size_t conf_len, size_t data_len)
{
	rw_u64(o, 5);
	rw_u64(o, 56 + conf_len);
	rw_u64(o, term);
	rw_u64(o, last_index);
	rw_u64(o, last_term);
	rw_u64(o, last_index); /* configuration index */
	rw_u64(o, conf_len);
	mp_out_raw(o, conf, conf_len);
	rw_u64(o, data_len);
	zeros(o, 8); /* slack */
	for (size_t i = 0; i < data_len; i++) {
		uint8_t x = 0x5a;
		mp_out_raw(o, &x, 1);
	}
}

void rw_raw(struct mp_out *o, uint64_t type, const void *header, size_t len)
{
	rw_u64(o, type);
	rw_u64(o, len);
	mp_out_raw(o, header, len);
}
