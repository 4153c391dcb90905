/*
 * propose.c - proposals and barriers: the requests a caller hands to the
 * leader's log, and the routing of their outcome back to it.
 *
 * A request (struct cons_req, malloc'd here, one per cons_propose,
 * cons_barrier or membership call) goes through these states:
 *
 *   staged:    (proposals only) accepted by cons_propose with its payload
 *              copied, in c->staged; every proposal staged during one loop
 *              iteration goes to libraft in ONE raft_apply of several
 *              entries (cons_flush, from the pump before the loop polls, or
 *              at once when the batch is full).  One raft_apply means one
 *              append request to the disk and one AppendEntries per
 *              follower for the whole batch instead of one per proposal:
 *              at 256 writes in flight that divided the leader's peer
 *              messages, and the followers' reads, writes and appends, by
 *              the batch size (docs/performance.md, 2026-12-06);
 *   submitted: raft_apply/raft_barrier accepted it; it sits in c->pending in
 *              index order, and libraft holds it (barriers, changes) or the
 *              batch it belongs to (proposals, struct cons_batch);
 *   done:      completed: a proposal when the fsm applies its index (the
 *              fsm hands its result to cons_claim, not to libraft: 0.15
 *              calls a multi-entry raft_apply back once, after its first
 *              entry, and drops the results of the others); anything
 *              failed (libraft's RAFT_LEADERSHIPLOST when the leader stepped
 *              down or closed, a refused flush, a lost leadership noticed by
 *              the pump); it moves to c->done with its status and result;
 *   delivered: the pump (consensus.c, before the loop polls) or the close
 *              path frees it and calls the user's callback.
 *
 * Invariants:
 *  - a proposal's result is claimed only while this node is leader in the
 *    term the proposal was appended in: in that term the leader's log at
 *    the proposal's index is the proposal itself;
 *  - a proposal still pending once libraft has released its batch and the
 *    node is no longer leader of that term is failed by the pump
 *    (cons_propose_pump): it may still commit, as with LEADERSHIPLOST;
 *  - barriers and membership changes flush the staged proposals first, so
 *    the log keeps the order of the calls;
 *  - a user callback runs exactly once, never inside cons_propose,
 *    cons_barrier or a libraft callback (libraft fails requests while it is
 *    half-way out of the leader state: a retry from there would corrupt it);
 *  - payload memory passes to libraft only when raft_apply succeeds (0.15's
 *    error paths leave it with us: logDiscard does not destroy entries),
 *    except after RAFT_NOMEM, where 0.15 may keep the first entries of a
 *    batch in its log: those buffers are left to it (the proposers get
 *    ING_EUNAVAILABLE: the entries may still commit).
 *
 * Failure modes: not leader (checked here first, so no callback), closing
 * or failed node (ING_EUNAVAILABLE), allocation (ING_ENOMEM), libraft's own
 * refusal at a flush (the callbacks get ING_EUNAVAILABLE).  Leadership lost
 * after submission: the callback gets ING_EUNAVAILABLE; the entry may still
 * commit.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "raft/cons_internal.h"

enum cons_req_type { REQ_APPLY = 1, REQ_BARRIER = 2, REQ_CHANGE = 3, REQ_TRANSFER = 4 };

/* A flush bigger than this goes out at once (one AppendEntries carries the
 * whole batch, so its size is bounded too). */
#define BATCH_MAX_ENTRIES 512
#define BATCH_MAX_BYTES   (4u * 1024u * 1024u)

/* One raft_apply of several proposals; libraft holds `apply` until it calls
 * batch_cb.  Freed once libraft released it and every entry was delivered. */
struct cons_batch {
	struct raft_apply apply;
	struct cons *c;
	bool held;     /* libraft still holds apply */
	unsigned live; /* entries not yet delivered */
};

struct cons_req {
	struct cons_link link; /* in c->staged, c->pending, then in c->done */
	struct cons *c;
	enum cons_req_type type;
	uint64_t index;
	uint64_t term; /* proposals: the term they were appended in */
	union {
		struct raft_barrier barrier;
		struct raft_change change;
		struct raft_transfer transfer;
	} u;
	struct raft_buffer payload; /* staged proposals: the copied command */
	struct cons_batch *batch;   /* submitted proposals */
	struct cons_proposal *p;
	struct cons_barrier *b;
	struct cons_change *ch;
	struct cons_transfer *t;
	int status;
	void *result;
};

#define REQ_OF(l) ((struct cons_req *)((char *)(l)-offsetof(struct cons_req, link)))

static int req_status(int raft_status)
{
	/* 0.15 fails requests with RAFT_LEADERSHIPLOST both on step-down and
	 * on raft_close; SHUTDOWN is mapped too in case a later release uses
	 * it. */
	return raft_status == 0 ? 0 : cons_err_from_raft(raft_status);
}

static void req_finish(struct cons_req *q, int status, void *result)
{
	struct cons *c = q->c;
	cons_link_remove(&q->link);
	q->status = status;
	q->result = result;
	cons_link_push(&c->done, &q->link);
}

static void req_done(struct cons_req *q, int raft_status, void *result)
{
	req_finish(q, req_status(raft_status), raft_status == 0 ? result : NULL);
}

static void batch_maybe_free(struct cons_batch *bt)
{
	if (!bt->held && bt->live == 0)
		free(bt);
}

/* libraft is done with a batch: after applying its first entry (status 0;
 * each entry completes through cons_claim), or failing it (leadership lost,
 * closing, a failed disk write): then every entry of it still pending fails
 * with it. */
static void batch_cb(struct raft_apply *req, int status, void *result)
{
	struct cons_batch *bt = req->data;
	struct cons *c = bt->c;
	struct cons_link *l, *next;

	(void)result; /* always NULL: results go through cons_claim */
	bt->held = false;
	for (l = c->pending.next; status != 0 && l != &c->pending; l = next) {
		struct cons_req *q = REQ_OF(l);
		next = l->next;
		if (q->batch == bt)
			req_done(q, status, NULL);
	}
	batch_maybe_free(bt);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	req_done(req->data, status, NULL);
}

static void change_cb(struct raft_change *req, int status)
{
	req_done(req->data, status, NULL);
}

static void transfer_cb(struct raft_transfer *req)
{
	req_done(req->data, 0, NULL);
}

/* Whether the node leads in term: a proposal appended in it sits at its
 * index in this leader's log. */
static bool leads_in(struct cons *c, uint64_t term)
{
	return raft_state(&c->raft) == RAFT_LEADER && c->raft.current_term == term;
}

/* The pending proposal that takes the result of the entry at index, or
 * NULL. */
static struct cons_req *waiting_at(struct cons *c, uint64_t index)
{
	struct cons_link *l;
	for (l = c->pending.next; l != &c->pending; l = l->next) {
		struct cons_req *q = REQ_OF(l);
		if (q->index > index) {
			break;
		}
		if (q->index == index) {
			if (q->type != REQ_APPLY || !leads_in(c, q->term))
				return NULL;
			return q;
		}
	}
	return NULL;
}

bool cons_claim(void *owner, uint64_t index, void *result)
{
	struct cons_req *q = waiting_at(owner, index);
	if (q == NULL)
		return false;
	req_finish(q, 0, result);
	return true;
}

bool cons_awaits(struct cons *c, uint64_t index)
{
	return waiting_at(c, index) != NULL;
}

static int check_leader(struct cons *c)
{
	if (c->closing || c->failed) {
		return ING_EUNAVAILABLE;
	}
	if (raft_state(&c->raft) != RAFT_LEADER || c->raft.transfer != NULL) {
		return ING_ENOTLEADER;
	}
	return 0;
}

int cons_propose(struct cons *c, struct cons_proposal *p, const void *buf, size_t len)
{
	struct cons_req *q;
	int rv;

	if (c == NULL || p == NULL || p->cb == NULL || buf == NULL || len == 0 || len % 8 != 0) {
		return ING_EINVAL;
	}
	rv = check_leader(c);
	if (rv != 0) {
		return rv;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		return ING_ENOMEM;
	}
	q->payload.base = raft_malloc(len);
	if (q->payload.base == NULL) {
		free(q);
		return ING_ENOMEM;
	}
	memcpy(q->payload.base, buf, len);
	q->payload.len = len;
	q->c = c;
	q->type = REQ_APPLY;
	q->p = p;
	p->index = 0;
	p->internal = q;
	cons_link_push(&c->staged, &q->link);
	c->nstaged++;
	c->staged_bytes += len;
	if (c->nstaged >= BATCH_MAX_ENTRIES || c->staged_bytes >= BATCH_MAX_BYTES)
		cons_flush(c);
	else
		cons_flush_soon(c);
	return 0;
}

/* Fails every staged proposal (never handed to libraft) with status;
 * free_payload false leaves the buffers to libraft (see RAFT_NOMEM). */
static void fail_staged(struct cons *c, int status, bool free_payload)
{
	while (!cons_link_empty(&c->staged)) {
		struct cons_req *q = REQ_OF(c->staged.next);
		if (free_payload)
			raft_free(q->payload.base);
		q->payload.base = NULL;
		req_finish(q, status, NULL);
	}
	c->nstaged = 0;
	c->staged_bytes = 0;
}

static void fail_stale(struct cons *c);

void cons_flush(struct cons *c)
{
	struct raft_buffer *bufs;
	struct cons_batch *bt;
	struct cons_link *l;
	unsigned n = c->nstaged, i = 0;
	uint64_t index, term;
	int rv;

	if (n == 0)
		return;
	if (check_leader(c) != 0) {
		fail_staged(c, ING_EUNAVAILABLE, true);
		return;
	}
	bufs = malloc(n * sizeof(*bufs));
	bt = calloc(1, sizeof(*bt));
	if (bufs == NULL || bt == NULL) {
		free(bufs);
		free(bt);
		fail_staged(c, ING_EUNAVAILABLE, true);
		return;
	}
	for (l = c->staged.next; l != &c->staged; l = l->next)
		bufs[i++] = REQ_OF(l)->payload;
	bt->apply.data = bt;
	bt->c = c;
	rv = raft_apply(&c->raft, &bt->apply, bufs, n, batch_cb);
	free(bufs);
	if (rv != 0) {
		cons_raft_failed(c, "raft_apply", rv, raft_errmsg(&c->raft));
		free(bt);
		fail_staged(c, ING_EUNAVAILABLE, rv != RAFT_NOMEM);
		return;
	}
	bt->held = true;
	bt->live = n;
	c->n_proposals += n;
	c->n_batches++;
	cons_metrics_batch(n);
	index = bt->apply.index;
	term = c->raft.current_term;
	if (term != c->pending_term) {
		/* A new term's first batch: older ones cannot be claimed (the
		 * pump normally failed them while the node did not lead). */
		fail_stale(c);
		c->pending_term = term;
	}
	while (!cons_link_empty(&c->staged)) {
		struct cons_req *q = REQ_OF(c->staged.next);
		cons_link_remove(&q->link);
		q->payload.base = NULL; /* libraft's now */
		q->batch = bt;
		q->term = term;
		q->index = index++;
		q->p->index = q->index;
		cons_link_push(&c->pending, &q->link);
	}
	c->nstaged = 0;
	c->staged_bytes = 0;
}

/* Fails the pending proposals this node can no longer claim: libraft is
 * done with their batch and the node no longer leads in their term. */
static void fail_stale(struct cons *c)
{
	struct cons_link *l, *next;
	for (l = c->pending.next; l != &c->pending; l = next) {
		struct cons_req *q = REQ_OF(l);
		next = l->next;
		if (q->type == REQ_APPLY && !q->batch->held && !leads_in(c, q->term))
			req_finish(q, ING_EUNAVAILABLE, NULL);
	}
}

void cons_propose_pump(struct cons *c)
{
	cons_flush(c);
	if (!cons_link_empty(&c->pending) && !leads_in(c, c->pending_term))
		fail_stale(c);
}

int cons_barrier(struct cons *c, struct cons_barrier *b)
{
	struct cons_req *q;
	int rv;

	if (c == NULL || b == NULL || b->cb == NULL) {
		return ING_EINVAL;
	}
	rv = check_leader(c);
	if (rv != 0) {
		return rv;
	}
	cons_flush(c); /* after the proposals made before it */
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		return ING_ENOMEM;
	}
	q->c = c;
	q->type = REQ_BARRIER;
	q->b = b;
	q->u.barrier.data = q;
	cons_link_push(&c->pending, &q->link);
	rv = raft_barrier(&c->raft, &q->u.barrier, barrier_cb);
	if (rv != 0) {
		cons_link_remove(&q->link);
		free(q);
		return cons_raft_failed(c, "raft_barrier", rv, raft_errmsg(&c->raft));
	}
	q->index = q->u.barrier.index;
	b->internal = q;
	return 0;
}

/* Membership changes and transfers: no index of their own (index 0 never
 * stops cons_claim's scan), completed by libraft like the others. */
static struct cons_req *member_req(struct cons *c, enum cons_req_type type)
{
	struct cons_req *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->c = c;
	q->type = type;
	cons_link_push(&c->pending, &q->link);
	return q;
}

static int member_req_failed(struct cons *c, struct cons_req *q, const char *what, int rv)
{
	cons_link_remove(&q->link);
	free(q);
	return cons_raft_failed(c, what, rv, raft_errmsg(&c->raft));
}

static int raft_role(enum cons_member_role role)
{
	switch (role) {
	case CONS_VOTER: return RAFT_VOTER;
	case CONS_STANDBY: return RAFT_STANDBY;
	case CONS_SPARE: return RAFT_SPARE;
	}
	return -1;
}

enum change_kind { CHANGE_ADD, CHANGE_ASSIGN, CHANGE_REMOVE };

/* One configuration change handed to libraft; address for add, role for
 * assign. */
static int change(struct cons *c, struct cons_change *ch, enum change_kind kind, uint64_t id,
                  const char *address, enum cons_member_role role)
{
	static const char *const what[] = {"raft_add", "raft_assign", "raft_remove"};
	struct cons_req *q;
	int rv;

	if (c == NULL || ch == NULL || ch->cb == NULL || id == 0 ||
	    (kind == CHANGE_ADD && (address == NULL || !cons_address_valid(address))) ||
	    (kind == CHANGE_ASSIGN && raft_role(role) < 0))
		return ING_EINVAL;
	rv = check_leader(c);
	if (rv != 0)
		return rv;
	cons_flush(c);
	if ((q = member_req(c, REQ_CHANGE)) == NULL)
		return ING_ENOMEM;
	q->ch = ch;
	q->u.change.data = q;
	switch (kind) {
	case CHANGE_ADD: rv = raft_add(&c->raft, &q->u.change, id, address, change_cb); break;
	case CHANGE_ASSIGN:
		rv = raft_assign(&c->raft, &q->u.change, id, raft_role(role), change_cb);
		break;
	case CHANGE_REMOVE: rv = raft_remove(&c->raft, &q->u.change, id, change_cb); break;
	}
	if (rv != 0)
		return member_req_failed(c, q, what[kind], rv);
	ch->internal = q;
	return 0;
}

int cons_add(struct cons *c, struct cons_change *ch, uint64_t id, const char *address)
{
	return change(c, ch, CHANGE_ADD, id, address, CONS_SPARE);
}

int cons_assign(struct cons *c, struct cons_change *ch, uint64_t id, enum cons_member_role role)
{
	return change(c, ch, CHANGE_ASSIGN, id, NULL, role);
}

int cons_remove(struct cons *c, struct cons_change *ch, uint64_t id)
{
	return change(c, ch, CHANGE_REMOVE, id, NULL, CONS_SPARE);
}

int cons_transfer(struct cons *c, struct cons_transfer *t, uint64_t id)
{
	struct cons_req *q;
	int rv;

	if (c == NULL || t == NULL || t->cb == NULL)
		return ING_EINVAL;
	if (c->closing || c->failed)
		return ING_EUNAVAILABLE;
	if (raft_state(&c->raft) != RAFT_LEADER)
		return ING_ENOTLEADER;
	if (c->raft.transfer != NULL)
		return ING_ECONFLICT;
	cons_flush(c);
	if ((q = member_req(c, REQ_TRANSFER)) == NULL)
		return ING_ENOMEM;
	q->t = t;
	q->u.transfer.data = q;
	rv = raft_transfer(&c->raft, &q->u.transfer, id, transfer_cb);
	if (rv != 0)
		return member_req_failed(c, q, "raft_transfer", rv);
	t->internal = q;
	return 0;
}

static void deliver_one(struct cons *c, struct cons_req *q)
{
	struct cons_proposal *p = q->p;
	struct cons_barrier *b = q->b;
	int status = q->status;
	void *result = q->result;

	struct cons_change *ch = q->ch;
	struct cons_transfer *t = q->t;

	cons_link_remove(&q->link);
	if (q->batch != NULL) {
		q->batch->live--;
		batch_maybe_free(q->batch);
	}
	free(q);
	if (p != NULL) {
		p->internal = NULL;
		p->cb(p, status, result);
	} else if (b != NULL) {
		b->internal = NULL;
		b->cb(b, status);
	} else if (ch != NULL) {
		ch->internal = NULL;
		ch->cb(ch, status);
	} else {
		t->internal = NULL;
		t->cb(t);
	}
	(void)c;
}

void cons_deliver(struct cons *c, bool all)
{
	while (!cons_link_empty(&c->done) && (all || !c->closing)) {
		deliver_one(c, REQ_OF(c->done.next));
	}
}

void cons_fail_pending(struct cons *c, int status)
{
	fail_staged(c, status, true);
	while (!cons_link_empty(&c->pending)) {
		struct cons_req *q = REQ_OF(c->pending.next);
		cons_link_remove(&q->link);
		q->status = status;
		q->result = NULL;
		cons_link_push(&c->done, &q->link);
	}
}
