/*
 * placement.c - choosing a node and GPUs for one job (placement.h).
 *
 * A node is eligible when it is live (not marked down, and heard from by
 * this leader lately: not silent) and not draining and carries every
 * capability and label of the target.  Among the eligible nodes, a job
 * that needs G GPUs (rec_target_gpus: the most any stage sees) can go only
 * where at least G GPUs are free, and always needs a free slot: GPUs and
 * slots are held together for the whole attempt.  GPUs are numbered by the
 * node (NVML's index, <= ING_GPU_INDEX_MAX), so a node's GPUs fit one
 * 64-bit mask; "free" is offered and neither held (node record) nor given
 * out earlier in the same round.
 *
 * When nothing fits, the reason names the first thing missing, in this
 * order: a live node at all (silent ones counted apart), each capability, each label, one node with
 * all of them, a node with enough GPUs at all, enough free GPUs, a free
 * slot.  So an operator reads what to change: add a node with the
 * capability, free or add GPUs, or wait for slots.
 */
#include "node/leader/placement.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

/* Free slots and places ahead from pn->used: none on a node that gets no
 * work (down, draining, silent) or has no slot at all. */
static void count_free(struct place_node *pn)
{
	const struct rec_node *rec = pn->rec;
	const uint32_t slots = rec->slots, cap = slots + pn->ahead;

	pn->free_slots = 0;
	pn->free_ahead = 0;
	if (rec->down || rec->draining || pn->silent || slots == 0)
		return;
	if (pn->used < slots)
		pn->free_slots = slots - pn->used;
	if (pn->used < cap)
		pn->free_ahead = cap - (pn->used > slots ? pn->used : slots);
}

void place_node_init(struct place_node *pn, const struct rec_node *rec, uint32_t ahead)
{
	const bool live = !rec->down && !rec->draining;

	pn->rec = rec;
	pn->silent = false;
	pn->used = rec->used_slots;
	pn->ahead = ahead;
	count_free(pn);
	pn->offered_gpus = 0;
	for (uint32_t i = 0; i < rec->ngpus; i++)
		if (rec->gpus[i].index <= ING_GPU_INDEX_MAX)
			pn->offered_gpus |= 1ull << rec->gpus[i].index;
	pn->free_gpus = live ? pn->offered_gpus : 0;
	for (uint32_t i = 0; i < rec->nheld; i++)
		if (rec->held[i].index <= ING_GPU_INDEX_MAX)
			pn->free_gpus &= ~(1ull << rec->held[i].index);
}

void place_node_silence(struct place_node *pn)
{
	pn->silent = true;
	count_free(pn);
	pn->free_gpus = 0;
}

void place_node_adjust(struct place_node *pn, int delta)
{
	if (delta < 0 && pn->used < (uint32_t)-delta)
		pn->used = 0;
	else
		pn->used = (uint32_t)((int64_t)pn->used + delta);
	count_free(pn);
}

static unsigned popcount(uint64_t v)
{
	return (unsigned)__builtin_popcountll(v);
}

static bool has_cap(const struct rec_node *nd, struct ing_str cap)
{
	for (uint32_t i = 0; i < nd->ncaps; i++)
		if (ing_str_eq(nd->caps[i], cap))
			return true;
	return false;
}

static bool has_label(const struct rec_node *nd, const struct rec_kv *kv)
{
	for (uint32_t i = 0; i < nd->nlabels; i++)
		if (ing_str_eq(nd->labels[i].key, kv->key) &&
		    ing_str_eq(nd->labels[i].value, kv->value))
			return true;
	return false;
}

static bool live(const struct place_node *pn)
{
	return !pn->rec->down && !pn->rec->draining && !pn->silent;
}

static bool fits(const struct place_node *pn, const struct rec_target *t)
{
	const struct rec_node *nd = pn->rec;

	if (!live(pn))
		return false;
	for (uint32_t i = 0; i < t->ncaps; i++)
		if (!has_cap(nd, t->caps[i]))
			return false;
	for (uint32_t i = 0; i < t->nlabels; i++)
		if (!has_label(nd, &t->labels[i]))
			return false;
	return true;
}

/* Why no node fits target t: the first capability or label no live,
 * non-draining node offers, or that no single node offers them all. */
static enum place_wait explain_fit(const struct place_node *nodes, unsigned n,
                                   const struct rec_target *t, char *out, size_t cap)
{
	unsigned down = 0, draining = 0, silent = 0;
	for (unsigned i = 0; i < n; i++) {
		down += nodes[i].rec->down;
		draining += !nodes[i].rec->down && nodes[i].rec->draining;
		silent += !nodes[i].rec->down && !nodes[i].rec->draining && nodes[i].silent;
	}
	if (down + draining + silent == n) {
		char also[64] = "";
		if (silent > 0)
			snprintf(also, sizeof(also), ", %u not heard from by this leader lately",
			         silent);
		snprintf(out, cap,
		         "no live, non-draining node (%u registered: %u down, %u draining%s)", n,
		         down, draining, also);
		return PLACE_WAIT_NO_LIVE_NODE;
	}
	for (uint32_t c = 0; c < t->ncaps; c++) {
		bool anywhere = false;
		for (unsigned i = 0; i < n && !anywhere; i++)
			anywhere = live(&nodes[i]) && has_cap(nodes[i].rec, t->caps[c]);
		if (!anywhere) {
			snprintf(out, cap,
			         "no live, non-draining node has capability '%.*s' (target '%.*s')",
			         ING_STR_FMT(t->caps[c]), ING_STR_FMT(t->name));
			return PLACE_WAIT_NO_MATCH;
		}
	}
	for (uint32_t l = 0; l < t->nlabels; l++) {
		bool anywhere = false;
		for (unsigned i = 0; i < n && !anywhere; i++)
			anywhere = live(&nodes[i]) && has_label(nodes[i].rec, &t->labels[l]);
		if (!anywhere) {
			snprintf(out, cap,
			         "no live, non-draining node has label %.*s=%.*s (target '%.*s')",
			         ING_STR_FMT(t->labels[l].key), ING_STR_FMT(t->labels[l].value),
			         ING_STR_FMT(t->name));
			return PLACE_WAIT_NO_MATCH;
		}
	}
	snprintf(out, cap,
	         "no single live, non-draining node has all the capabilities and labels of "
	         "target '%.*s'",
	         ING_STR_FMT(t->name));
	return PLACE_WAIT_NO_MATCH;
}

/* Node i is eligible for t: live, not draining, t's capabilities and
 * labels; with `need` > 0 also offering at least that many GPUs. */
static bool eligible(const struct place_node *pn, const struct rec_target *t, uint32_t need)
{
	return fits(pn, t) && popcount(pn->offered_gpus) >= need;
}

/* "node 2" or "nodes 2, 3, 5" (at most 8 ids, then ", ..."): the nodes
 * eligible for t with `need` GPUs offered. */
static void node_list(const struct place_node *nodes, unsigned n, const struct rec_target *t,
                      uint32_t need, char *out, size_t cap)
{
	unsigned count = 0, shown = 0;
	size_t len;

	for (unsigned i = 0; i < n; i++)
		count += eligible(&nodes[i], t, need);
	len = (size_t)snprintf(out, cap, "%s", count == 1 ? "node " : "nodes ");
	for (unsigned i = 0; i < n && len < cap; i++) {
		if (!eligible(&nodes[i], t, need))
			continue;
		if (shown == 8) {
			snprintf(out + len, cap - len, ", ...");
			return;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s%" PRIu64, shown ? ", " : "",
		                        nodes[i].rec->id);
		shown++;
	}
}

/* Whether a is a better home than b for a job needing `need` GPUs. */
static bool better(const struct place_node *a, const struct place_node *b, uint32_t need)
{
	unsigned ag = popcount(a->free_gpus), bg = popcount(b->free_gpus);

	if (need > 0)
		return ag < bg || (ag == bg && a->free_slots > b->free_slots);
	return a->free_slots > b->free_slots || (a->free_slots == b->free_slots && ag < bg);
}

const char *place_wait_name(int wait)
{
	static const char *const names[PLACE_WAIT_COUNT] = {
	    "retry_backoff", "no_live_node", "no_matching_node", "gpus_busy", "busy"};
	return wait >= 0 && wait < PLACE_WAIT_COUNT ? names[wait] : "unknown";
}

int place_pick(const struct rec_target *t, const struct place_node *nodes, unsigned n, bool ahead,
               struct place_choice *out, char *reason, size_t cap)
{
	const uint32_t need = rec_target_gpus(t);
	const char *s = need == 1 ? "" : "s";
	unsigned nfit = 0, nenough = 0, nfree_gpus = 0, most = 0;
	int best = -1;
	char list[128];

	for (unsigned i = 0; i < n; i++) {
		const struct place_node *pn = &nodes[i];
		if (!fits(pn, t))
			continue;
		nfit++;
		if (popcount(pn->offered_gpus) > most)
			most = popcount(pn->offered_gpus);
		if (popcount(pn->offered_gpus) < need)
			continue;
		nenough++;
		if (popcount(pn->free_gpus) < need)
			continue;
		nfree_gpus++;
		if (pn->free_slots > 0 && (best < 0 || better(pn, &nodes[best], need)))
			best = (int)i;
	}
	out->ahead = false;
	if (best < 0 && ahead && need == 0) {
		for (unsigned i = 0; i < n; i++) {
			const struct place_node *pn = &nodes[i];
			if (fits(pn, t) && pn->free_ahead > 0 &&
			    (best < 0 || pn->free_ahead > nodes[best].free_ahead))
				best = (int)i;
		}
		out->ahead = best >= 0;
	}
	if (best >= 0) {
		uint64_t free = nodes[best].free_gpus;
		out->node = (unsigned)best;
		out->ngpus = 0;
		for (uint32_t g = 0; out->ngpus < need && g <= ING_GPU_INDEX_MAX; g++)
			if (free & (1ull << g))
				out->gpus[out->ngpus++] = g;
		return 0;
	}

	if (nfit == 0) {
		out->wait = explain_fit(nodes, n, t, reason, cap);
	} else if (nenough == 0) {
		out->wait = PLACE_WAIT_NO_MATCH;
		node_list(nodes, n, t, 0, list, sizeof(list));
		if (most == 0)
			snprintf(reason, cap,
			         "needs %" PRIu32 " GPU%s: none of the nodes that can run target "
			         "'%.*s' (%s) has a GPU",
			         need, s, ING_STR_FMT(t->name), list);
		else
			snprintf(reason, cap,
			         "needs %" PRIu32 " GPU%s: the nodes that can run target '%.*s' "
			         "offer at most %u (%s)",
			         need, s, ING_STR_FMT(t->name), most, list);
	} else if (nfree_gpus == 0) {
		out->wait = PLACE_WAIT_GPUS_BUSY;
		node_list(nodes, n, t, need, list, sizeof(list));
		if (need == 1)
			snprintf(reason, cap, "needs 1 GPU, none free on %s", list);
		else
			snprintf(reason, cap,
			         "needs %" PRIu32 " GPUs, fewer than %" PRIu32 " free on %s", need,
			         need, list);
	} else {
		out->wait = PLACE_WAIT_BUSY;
		snprintf(reason, cap, "all %u nodes that can run target '%.*s' are busy", nenough,
		         ING_STR_FMT(t->name));
	}
	return ING_ENOTFOUND;
}

unsigned place_room(const struct rec_target *t, const struct place_node *nodes, unsigned n,
                    bool ahead)
{
	const uint32_t need = rec_target_gpus(t);
	unsigned room = 0;

	for (unsigned i = 0; i < n; i++) {
		const struct place_node *pn = &nodes[i];
		if (!fits(pn, t))
			continue;
		if (need == 0 && ahead)
			room += pn->free_ahead;
		if (pn->free_slots == 0)
			continue;
		if (need == 0)
			room += pn->free_slots;
		else if (popcount(pn->free_gpus) / need < pn->free_slots)
			room += popcount(pn->free_gpus) / need;
		else
			room += pn->free_slots;
	}
	return room;
}

void place_take(struct place_node *nodes, const struct place_choice *c)
{
	struct place_node *pn = &nodes[c->node];

	place_node_adjust(pn, 1);
	for (uint32_t i = 0; i < c->ngpus; i++)
		pn->free_gpus &= ~(1ull << c->gpus[i]);
}
