/*
 * propose.c - proposals and barriers: the requests a caller hands to the
 * leader's log, and the routing of their outcome back to it.
 *
 * A request (struct cons_req, malloc'd here, one per cons_propose or
 * cons_barrier) goes through three states:
 *
 *   submitted: raft_apply/raft_barrier accepted it; it sits in c->pending in
 *              index order, and libraft holds it in its own request queue;
 *   done:      libraft called it back (applied, or failed with
 *              RAFT_LEADERSHIPLOST when the leader stepped down or closed);
 *              it moves to c->done with its status and result;
 *   delivered: the pump (consensus.c, before the loop polls) or the close
 *              path frees it and calls the user's callback.
 *
 * Invariants:
 *  - c->pending holds exactly the requests libraft still holds: libraft
 *    removes a request from its queue when it calls it back, and fails
 *    them all before leaving the leader state, so cons_claim(index) is true
 *    iff libraft will pass the fsm's result at index to apply_cb;
 *  - a user callback runs exactly once, never inside cons_propose,
 *    cons_barrier or a libraft callback (libraft fails requests while it is
 *    half-way out of the leader state: a retry from there would corrupt it);
 *  - payload memory passes to libraft only when raft_apply succeeds (0.15's
 *    error paths leave it with us: logDiscard does not destroy entries).
 *
 * Failure modes: not leader (checked here first, so no callback), closing
 * or failed node (ING_EUNAVAILABLE), allocation (ING_ENOMEM), libraft's own
 * refusal (translated).  Leadership lost after submission: the callback gets
 * ING_EUNAVAILABLE; the entry may still commit.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "raft/cons_internal.h"

enum cons_req_type { REQ_APPLY = 1, REQ_BARRIER = 2, REQ_CHANGE = 3, REQ_TRANSFER = 4 };

struct cons_req {
	struct cons_link link; /* in c->pending, then in c->done */
	struct cons *c;
	enum cons_req_type type;
	uint64_t index;
	union {
		struct raft_apply apply;
		struct raft_barrier barrier;
		struct raft_change change;
		struct raft_transfer transfer;
	} u;
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

static void req_done(struct cons_req *q, int raft_status, void *result)
{
	struct cons *c = q->c;
	cons_link_remove(&q->link);
	q->status = req_status(raft_status);
	q->result = raft_status == 0 ? result : NULL;
	cons_link_push(&c->done, &q->link);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	req_done(req->data, status, result);
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

bool cons_claim(void *owner, uint64_t index)
{
	struct cons *c = owner;
	struct cons_link *l;
	for (l = c->pending.next; l != &c->pending; l = l->next) {
		struct cons_req *q = REQ_OF(l);
		if (q->index > index) {
			break;
		}
		if (q->index == index) {
			return q->type == REQ_APPLY;
		}
	}
	return false;
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
	struct raft_buffer rb;
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
	rb.base = raft_malloc(len);
	if (rb.base == NULL) {
		free(q);
		return ING_ENOMEM;
	}
	memcpy(rb.base, buf, len);
	rb.len = len;
	q->c = c;
	q->type = REQ_APPLY;
	q->p = p;
	q->u.apply.data = q;
	/* Linked before the call: the index is known only after it, but
	 * nothing is applied synchronously inside raft_apply. */
	cons_link_push(&c->pending, &q->link);
	rv = raft_apply(&c->raft, &q->u.apply, &rb, 1, apply_cb);
	if (rv != 0) {
		cons_link_remove(&q->link);
		raft_free(rb.base);
		free(q);
		return cons_raft_failed(c, "raft_apply", rv, raft_errmsg(&c->raft));
	}
	q->index = q->u.apply.index;
	p->index = q->index;
	p->internal = q;
	return 0;
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
	while (!cons_link_empty(&c->pending)) {
		struct cons_req *q = REQ_OF(c->pending.next);
		cons_link_remove(&q->link);
		q->status = status;
		q->result = NULL;
		cons_link_push(&c->done, &q->link);
	}
}
