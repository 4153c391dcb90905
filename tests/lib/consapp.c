/*
 * consapp.c - in-memory state machine for the raft/ tests (see consapp.h).
 * Allocation failures abort the test binary: these are test fixtures.
 */
#include "tests/lib/consapp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (q == NULL) {
		fprintf(stderr, "consapp: out of memory\n");
		abort();
	}
	return q;
}

void capp_init(struct capp *a)
{
	memset(a, 0, sizeof(*a));
	a->fail_marker = -1;
	uv_mutex_init(&a->lock);
}

static void clear_entries(struct capp *a)
{
	size_t i;
	for (i = 0; i < a->n; i++) {
		free(a->e[i].buf);
	}
	a->n = 0;
}

void capp_free(struct capp *a)
{
	clear_entries(a);
	free(a->e);
	free(a->prepared);
	free(a->synced);
	a->prepared = NULL;
	a->synced = NULL;
	a->e = NULL;
	a->cap = 0;
	uv_mutex_destroy(&a->lock);
}

void capp_restart(struct capp *a)
{
	a->applies = a->restores = a->snapshots = a->free_results = a->fatals = 0;
	a->syncs = a->copies = a->skipped = 0;
	a->index_violations = 0;
	a->fatal_code = 0;
	a->nroles = 0;
}

static void push(struct capp *a, uint64_t index, const void *buf, size_t len)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->e = xrealloc(a->e, a->cap * sizeof(*a->e));
	}
	a->e[a->n].index = index;
	a->e[a->n].len = len;
	a->e[a->n].buf = xrealloc(NULL, len ? len : 1);
	memcpy(a->e[a->n].buf, buf, len);
	a->n++;
}

static int app_apply(void *data, uint64_t index, const void *buf, size_t len, void **result)
{
	struct capp *a = data;
	uint64_t *r;

	a->applies++;
	if (a->fail_marker >= 0 && len > 0 && ((const uint8_t *)buf)[0] == a->fail_marker) {
		return ING_EIO;
	}
	if (a->durable && a->n > 0 && index <= a->e[a->n - 1].index) {
		/* What the node's store does (its applied index is written with
		 * each entry): a restart with the state kept replays the log
		 * after the last reference, entries the state already holds. */
		a->skipped++;
		*result = NULL;
		return 0;
	}
	if (a->n > 0 && index <= a->e[a->n - 1].index) {
		a->index_violations++;
	}
	push(a, index, buf, len);
	r = xrealloc(NULL, sizeof(*r));
	*r = index;
	*result = r;
	return 0;
}

static void app_free_result(void *data, void *result)
{
	struct capp *a = data;
	a->free_results++;
	free(result);
}

static uint8_t *serialise(const struct capp *a, size_t *len)
{
	size_t i, size = 8;
	uint8_t *p, *out;

	for (i = 0; i < a->n; i++) {
		size += 16 + a->e[i].len;
	}
	out = p = xrealloc(NULL, size);
	memcpy(p, &(uint64_t){a->n}, 8);
	p += 8;
	for (i = 0; i < a->n; i++) {
		memcpy(p, &a->e[i].index, 8);
		memcpy(p + 8, &(uint64_t){a->e[i].len}, 8);
		memcpy(p + 16, a->e[i].buf, a->e[i].len);
		p += 16 + a->e[i].len;
	}
	*len = size;
	return out;
}

/* On the loop: serialise the state now; app_snapshot (maybe on a pool
 * thread) only hands the buffer over, so it never reads what the loop is
 * changing. */
static int app_snapshot_prepare(void *data)
{
	struct capp *a = data;
	a->snapshots++;
	free(a->prepared);
	a->prepared = serialise(a, &a->prepared_len);
	return 0;
}

static uint64_t last_index(const struct capp *a)
{
	return a->n > 0 ? a->e[a->n - 1].index : 0;
}

static int app_snapshot_sync(void *data, uint64_t *index)
{
	struct capp *a = data;
	size_t len;
	uint8_t *out = serialise(a, &len);
	uv_mutex_lock(&a->lock);
	free(a->synced);
	a->synced = out;
	a->synced_len = len;
	uv_mutex_unlock(&a->lock);
	a->syncs++;
	a->snapshots++;
	*index = last_index(a);
	return 0;
}

static int app_state_index(void *data, uint64_t *index)
{
	*index = last_index(data);
	return 0;
}

static int app_snapshot(void *data, void **buf, size_t *len)
{
	struct capp *a = data;
	if (a->durable) {
		int rv = 0;
		uv_mutex_lock(&a->lock);
		if (a->synced == NULL) {
			rv = ING_EINVAL;
		} else {
			*buf = xrealloc(NULL, a->synced_len);
			memcpy(*buf, a->synced, a->synced_len);
			*len = a->synced_len;
			a->copies++;
		}
		uv_mutex_unlock(&a->lock);
		return rv;
	}
	if (a->prepared == NULL)
		return ING_EINVAL;
	*buf = a->prepared;
	*len = a->prepared_len;
	a->prepared = NULL;
	return 0;
}

static int app_restore(void *data, const void *buf, size_t len)
{
	struct capp *a = data;
	const uint8_t *p = buf, *end = p + len;
	uint64_t n, i, index, elen;

	if (len < 8) {
		return ING_ECORRUPT;
	}
	clear_entries(a);
	memcpy(&n, p, 8);
	p += 8;
	for (i = 0; i < n; i++) {
		if (end - p < 16) {
			return ING_ECORRUPT;
		}
		memcpy(&index, p, 8);
		memcpy(&elen, p + 8, 8);
		p += 16;
		if ((uint64_t)(end - p) < elen) {
			return ING_ECORRUPT;
		}
		push(a, index, p, elen);
		p += elen;
	}
	a->restores++;
	return 0;
}

static void app_role_changed(void *data, enum cons_role role, uint64_t leader, uint64_t term)
{
	struct capp *a = data;
	if (a->nroles < CAPP_MAX_ROLES) {
		a->roles[a->nroles++] = (struct capp_role){role, leader, term, uv_hrtime()};
	}
}

static void app_fatal(void *data, int code, const char *message)
{
	struct capp *a = data;
	(void)message;
	a->fatals++;
	a->fatal_code = code;
}

struct cons_callbacks capp_callbacks(struct capp *a)
{
	struct cons_callbacks cb = {
	    .data = a,
	    .apply = app_apply,
	    .free_result = app_free_result,
	    .snapshot = app_snapshot,
	    .snapshot_prepare = app_snapshot_prepare,
	    .restore = app_restore,
	    .role_changed = app_role_changed,
	    .fatal = app_fatal,
	};
	return cb;
}

struct cons_callbacks capp_callbacks_durable(struct capp *a)
{
	struct cons_callbacks cb = capp_callbacks(a);
	a->durable = true;
	cb.snapshot_prepare = NULL;
	cb.snapshot_sync = app_snapshot_sync;
	cb.state_index = app_state_index;
	return cb;
}

bool capp_equal(const struct capp *a, const struct capp *b)
{
	size_t i;
	if (a->n != b->n) {
		return false;
	}
	for (i = 0; i < a->n; i++) {
		if (a->e[i].index != b->e[i].index || a->e[i].len != b->e[i].len ||
		    memcmp(a->e[i].buf, b->e[i].buf, a->e[i].len) != 0) {
			return false;
		}
	}
	return true;
}

void capp_payload(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;
	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	if (len > 0 && buf[0] == 0xff) {
		buf[0] = 0xfe;
	}
}

enum cons_role capp_role(const struct capp *a)
{
	return a->nroles ? a->roles[a->nroles - 1].role : CONS_UNAVAILABLE;
}
