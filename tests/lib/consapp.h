/*
 * consapp.h - a tiny in-memory state machine behind cons_callbacks, for the
 * raft/ tests (real libraft over TCP, and raft_fixture): it records every
 * applied (index, payload), counts restores, snapshots, freed results and
 * role changes, and can be told to fail apply on a marked payload.
 *
 * State = the list of applied entries; snapshot = that list serialised
 * ([n] then [index][len][bytes] per entry, u64 host order); the result of
 * an apply is a malloc'd uint64_t holding the entry's index.
 */
#ifndef INGOT_TESTS_LIB_CONSAPP_H
#define INGOT_TESTS_LIB_CONSAPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raft/consensus.h"

struct capp_entry {
	uint64_t index;
	size_t len;
	uint8_t *buf;
};

#define CAPP_MAX_ROLES 256

struct capp_role {
	enum cons_role role;
	uint64_t leader;
	uint64_t term;
	uint64_t at_ns; /* uv_hrtime() */
};

struct capp {
	struct capp_entry *e;
	size_t n, cap;
	unsigned applies, restores, snapshots, free_results, fatals;
	unsigned index_violations; /* apply given an index <= the previous one */
	int fatal_code;
	int fail_marker; /* >= 0: apply fails (ING_EIO) on payloads starting with it */
	struct capp_role roles[CAPP_MAX_ROLES];
	unsigned nroles;
	void *prepared; /* serialised by snapshot_prepare, handed over by snapshot */
	size_t prepared_len;
	/* Durable mode (capp_callbacks_durable): snapshot_sync serialises the
	 * state into `synced` (under `lock`); snapshot, on a pool thread,
	 * hands over a copy of it.  The entries stand for a durable store: a
	 * restart that keeps them (capp_restart) models a node whose store
	 * survived, and, like the store, apply skips an entry at or below the
	 * last index it holds (counted in `skipped`): the log replayed after
	 * the last reference. */
	bool durable;
	void *synced;
	size_t synced_len;
	unsigned syncs, copies, skipped;
	uv_mutex_t lock;
};

/* Empty state, counters zero, no failure marker. */
void capp_init(struct capp *a);
/* Releases the entries (the struct may be reused after capp_init). */
void capp_free(struct capp *a);
struct cons_callbacks capp_callbacks(struct capp *a);
/* Callbacks of the durable mode: reference snapshots (raft/snapref.c). */
struct cons_callbacks capp_callbacks_durable(struct capp *a);
/* Keeps the entries (the "durable store"), zeroes counters and roles: a
 * node restarted with its store. */
void capp_restart(struct capp *a);
/* Same applied (index, payload) sequence. */
bool capp_equal(const struct capp *a, const struct capp *b);
/* Fills buf with bytes derived from seed (first byte never 0xff). */
void capp_payload(uint8_t *buf, size_t len, uint32_t seed);
/* The latest role reported, CONS_UNAVAILABLE when none yet. */
enum cons_role capp_role(const struct capp *a);

#endif
