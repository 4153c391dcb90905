/*
 * fuzz_apply.c - libFuzzer driver for the state machine.
 *
 * The input is split into entries at each 8-byte boundary whose 4-byte
 * length prefix says so: [u32 length][bytes, padded]...  Each entry is
 * applied to one store in a temporary directory, after a fixed prologue
 * that registers a target and a node, so fuzzed commands reach deep states.
 * Apply must never crash and never fail except for an unknown command
 * type or version (the node stops; nothing may be written); every other
 * entry advances the applied index by exactly one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "node/sm/cmd.h"
#include "node/sm/sm.h"
#include "storage/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *store;
static struct sm *sm;
static char dir[64];

static void cleanup(void)
{
	char path[128];
	sm_free(sm);
	store_close(store);
	snprintf(path, sizeof(path), "%s/state.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state.mdb-lock", dir);
	unlink(path);
	rmdir(dir);
}

static void init_once(void)
{
	struct store_options opts = {.sync = STORE_SYNC_NONE, .map_size_bytes = 1ull << 30};
	struct ing_error e;
	if (store != NULL)
		return;
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	snprintf(dir, sizeof(dir), "/tmp/ingot-fuzz-XXXXXX");
	if (mkdtemp(dir) == NULL || store_open(dir, &opts, &store, &e) != 0 || sm_new(&sm) != 0)
		abort();
	atexit(cleanup);
}

static uint64_t next_index;

static void apply(const void *buf, size_t len, struct sm_result *res)
{
	struct store_txn *t;
	uint64_t before, after;
	if (store_batch_txn(store, &t) != 0 || store_applied_index(t, &before) != 0)
		abort();
	int rv = sm_apply(sm, t, ++next_index, buf, len, res);
	if (rv == ING_EVERSION) {
		/* Unknown command type/version: the node would stop here.  Nothing
		 * may have been written. */
		if (store_applied_index(t, &after) != 0 || after != before)
			abort();
		next_index--;
		return;
	}
	if (rv != 0)
		abort(); /* a store failure: never expected on a healthy disk */
	if (store_applied_index(t, &after) != 0 || after != next_index || before >= after)
		abort();
	if (store_batch_flush(store) != 0)
		abort();
}

static void prologue(struct sm_result *res)
{
	struct mp_out o;
	struct ing_error e;
	struct ing_str argv[2] = {{"cc", 2}, {"{source}", 8}};
	struct rec_stage_def st = {
	    .name = {"compile", 7}, .nargv = 2, .argv = argv, .timeout_ms = 1000};
	struct cmd c;

	mp_out_init(&o);
	memset(&c, 0, sizeof(c));
	c.type = CMD_TARGET_PUT;
	c.version = 1;
	c.request_id = ing_str_c("");
	c.u.target_put.spec.name = ing_str_c("cc");
	c.u.target_put.spec.nstages = 1;
	c.u.target_put.spec.stages = &st;
	if (cmd_encode(&c, &o, &e) != 0)
		abort();
	apply(o.data, o.len, res);

	memset(&c, 0, sizeof(c));
	c.type = CMD_NODE_REGISTER;
	c.version = 1;
	c.request_id = ing_str_c("");
	c.u.node_register.spec.id = 1;
	c.u.node_register.spec.slots = 4;
	mp_out_reset(&o);
	if (cmd_encode(&c, &o, &e) != 0)
		abort();
	apply(o.data, o.len, res);
	mp_out_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sm_result res;
	static int prologue_done;

	init_once();
	sm_result_init(&res);
	if (!prologue_done) {
		prologue(&res);
		prologue_done = 1;
	}
	while (size >= 4) {
		uint32_t len = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
		               (uint32_t)data[2] << 8 | data[3];
		data += 4;
		size -= 4;
		if (len > size)
			len = (uint32_t)size;
		/* raft entries are 8-byte aligned; copy so ASan sees exact bounds */
		uint8_t *entry = malloc(len > 0 ? len : 1);
		if (entry == NULL)
			abort();
		memcpy(entry, data, len);
		apply(entry, len, &res);
		free(entry);
		data += len;
		size -= len;
	}
	sm_result_free(&res);
	return 0;
}
