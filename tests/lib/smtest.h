/*
 * smtest.h - a state machine on a real store in a temporary directory, for
 * the unit tests: build commands, apply them at increasing raft indexes,
 * read records back, and dump the tables.
 */
#ifndef INGOT_TESTS_SMTEST_H
#define INGOT_TESTS_SMTEST_H

#include <msgpack.h>
#include <stdint.h>

#include "node/sm/cmd.h"
#include "node/sm/sm.h"
#include "storage/records.h"
#include "storage/store.h"

struct smt {
	char dir[256];
	struct store *store;
	struct sm *sm;
	uint64_t index;       /* index of the last entry applied */
	uint64_t time_ms;     /* time put into the next command */
	struct sm_result res; /* result of the last apply */
	msgpack_zone *zone;   /* records read back live here until smt_close */
	struct mp_out enc;
};

/* Opens a fresh store (sync off) and state machine.  Fails the test on error. */
void smt_open(struct smt *t);
void smt_close(struct smt *t);

/* A command of `type` with the next time (time_ms advances by 1 per call). */
struct cmd smt_cmd(struct smt *t, uint32_t type);
/* Encodes c, applies it at the next index in a batch, and flushes.
 * Returns the command's result code (0 when applied). */
int smt_apply(struct smt *t, const struct cmd *c);
/* Applies raw bytes at the next index (flushes); returns the result code. */
int smt_apply_raw(struct smt *t, const void *buf, size_t len);
/* The uint/str result value of the last apply (fails the test otherwise). */
uint64_t smt_result_uint(struct smt *t);
const char *smt_result_str(struct smt *t);

/* Helpers that apply one command and assert it succeeded. */
void smt_target(struct smt *t, const char *name, uint32_t nstages);
void smt_node(struct smt *t, uint64_t id, uint32_t slots);
uint64_t smt_submit(struct smt *t, const char *target, uint32_t priority, uint32_t max_attempts);
/* A target of `nstages` stages asking `gpus` GPUs for every stage and
 * `stage0_gpus` for stage 0; a node offering the GPUs `indexes[0..n)`
 * (uuid "GPU-<index>", 1 GiB each). */
void smt_gpu_target(struct smt *t, const char *name, uint32_t nstages, uint32_t gpus,
                    uint32_t stage0_gpus);
void smt_gpu_node(struct smt *t, uint64_t id, uint32_t slots, uint32_t n, const uint32_t *indexes);

/* The same with what the scheduler looks at.  caps: "a,b" (NULL or "":
 * none); labels: "k=v,k2=v2".  The strings must outlive the call only. */
void smt_target_with(struct smt *t, const char *name, const char *caps, const char *labels);
void smt_node_with(struct smt *t, uint64_t id, uint32_t slots, const char *caps,
                   const char *labels);
/* A job of tenant `tenant` (max 3 attempts); deadline_at_ms 0: none. */
uint64_t smt_submit_as(struct smt *t, const char *target, const char *tenant, uint32_t priority,
                       uint64_t deadline_at_ms);

/* Reads a job; returns 0 or ING_ENOTFOUND.  Views live until smt_close. */
int smt_job(struct smt *t, uint64_t id, struct rec_job *out);
int smt_node_rec(struct smt *t, uint64_t id, struct rec_node *out);
int smt_target_rec(struct smt *t, const char *name, struct rec_target *out);
/* Entries in a table (after flush). */
uint64_t smt_count(struct smt *t, enum store_table tbl);

/* mdb_dump of every table but meta (which holds the applied index, changed
 * by every apply).  Malloc'd; caller frees. */
char *smt_dump_state(struct smt *t);
/* mdb_dump of every table.  Malloc'd; caller frees. */
char *smt_dump_all(struct smt *t);

#endif
