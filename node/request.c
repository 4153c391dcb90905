/*
 * request.c - the one helper for this node's calls to ingot APIs
 * (request.h).
 *
 * Clients: `self` (this node's API, opened at the first request), `members`
 * (one per member id, with the API address it was opened for: a member
 * whose address in the members table changed gets a new one), and the
 * one-shot clients of address-list requests, linked from their request
 * until its reply.  Connect timeouts: 1 s to itself, 500 ms to others
 * (loopback or LAN: a member that does not accept within that is down for
 * this call; the client's failover and the caller's retries do the rest).
 *
 * Closing a client: node_hold before rpc_client_close, node_release in its
 * close callback, so the node outlives every callback of its requests.  A
 * one-shot client is closed after its request's callback returned (the
 * request may be freed by then: nothing of it is touched afterwards).  At
 * node_requests_close a one-shot still pending is unlinked first, so its
 * callback (ING_EUNAVAILABLE) does not close it a second time.
 */
#include "node/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/member/member.h"

#define REQUEST_MAX_MEMBERS 64
#define SELF_CONNECT_MS     1000
#define PEER_CONNECT_MS     500

struct node_requests {
	struct node *n;
	bool closed;
	struct rpc_client *self;
	struct {
		uint64_t id;
		char address[NODE_ADDRESS_MAX];
		struct rpc_client *client;
	} members[REQUEST_MAX_MEMBERS];
	unsigned nmembers;
	struct node_request *oneshots; /* pending address-list requests */
};

int node_requests_new(struct node *n, struct node_requests **out)
{
	struct node_requests *rq = calloc(1, sizeof(*rq));
	if (rq == NULL)
		return ING_ENOMEM;
	rq->n = n;
	*out = rq;
	return 0;
}

void node_requests_free(struct node_requests *rq)
{
	free(rq);
}

static void client_closed(void *data)
{
	node_release(data);
}

static void close_client(struct node_requests *rq, struct rpc_client *c)
{
	node_hold(rq->n);
	rpc_client_close(c, client_closed, rq->n);
}

static int open_client(struct node_requests *rq, const char *const *addrs, unsigned naddrs,
                       unsigned connect_ms, struct rpc_client **out)
{
	struct ing_error e;
	struct rpc_client_options o = {
	    .endpoints = addrs,
	    .nendpoints = naddrs,
	    .max_frame_bytes = node_cfg(rq->n)->max_frame_bytes,
	    .connect_timeout_ms = connect_ms,
	    .tls = node_tls(rq->n),
	};
	if (naddrs == 0)
		return ING_EINVAL;
	return rpc_client_new(node_loop(rq->n), &o, out, &e);
}

static void unlink_oneshot(struct node_requests *rq, struct node_request *q)
{
	for (struct node_request **pp = &rq->oneshots; *pp != NULL; pp = &(*pp)->next_) {
		if (*pp == q) {
			*pp = q->next_;
			return;
		}
	}
}

void node_requests_close(struct node_requests *rq)
{
	if (rq->closed)
		return;
	rq->closed = true;
	if (rq->self != NULL)
		close_client(rq, rq->self);
	rq->self = NULL;
	for (unsigned i = 0; i < rq->nmembers; i++)
		close_client(rq, rq->members[i].client);
	rq->nmembers = 0;
	while (rq->oneshots != NULL) {
		struct node_request *q = rq->oneshots;
		struct rpc_client *c = q->oneshot_;
		rq->oneshots = q->next_;
		q->oneshot_ = NULL; /* its callback must not close it again */
		close_client(rq, c);
	}
}

static void on_reply(struct rpc_request *r, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	struct node_request *q = r->data;
	struct node_requests *rq = q->owner_;
	struct rpc_client *oneshot = q->oneshot_;

	if (oneshot != NULL) {
		unlink_oneshot(rq, q);
		q->oneshot_ = NULL;
	}
	q->cb(q, status, err, result); /* may free q */
	if (oneshot != NULL)
		close_client(rq, oneshot);
}

static int send_on(struct node_requests *rq, struct rpc_client *c, struct node_request *q,
                   const char *op, const void *args, size_t len, unsigned flags,
                   unsigned timeout_ms)
{
	memset(&q->r_, 0, sizeof(q->r_));
	q->r_.data = q;
	q->r_.cb = on_reply;
	q->r_.request_id = q->request_id;
	q->owner_ = rq;
	return rpc_client_call_within(c, &q->r_, op, args, len, flags, timeout_ms);
}

int node_request_self(struct node_requests *rq, struct node_request *q, const char *op,
                      const void *args, size_t len, unsigned flags, unsigned timeout_ms)
{
	const char *self[] = {node_cfg(rq->n)->api_address};
	int rv;

	if (rq->closed)
		return ING_EUNAVAILABLE;
	if (rq->self == NULL && (rv = open_client(rq, self, 1, SELF_CONNECT_MS, &rq->self)) != 0)
		return rv;
	q->oneshot_ = NULL;
	return send_on(rq, rq->self, q, op, args, len, flags, timeout_ms);
}

/* The kept client of member `id` at its current API address. */
static int member_client(struct node_requests *rq, uint64_t id, struct rpc_client **out)
{
	char addr[NODE_ADDRESS_MAX];
	const char *eps[1] = {addr};
	unsigned i;
	int rv;

	member_api_address(rq->n, id, addr);
	if (addr[0] == '\0')
		return ING_ENOTFOUND;
	for (i = 0; i < rq->nmembers && rq->members[i].id != id; i++)
		;
	if (i < rq->nmembers && strcmp(rq->members[i].address, addr) == 0) {
		*out = rq->members[i].client;
		return 0;
	}
	if (i < rq->nmembers) { /* the member moved: forget the old address */
		close_client(rq, rq->members[i].client);
		rq->members[i] = rq->members[--rq->nmembers];
	}
	if (rq->nmembers == REQUEST_MAX_MEMBERS)
		return ING_EUNAVAILABLE;
	rv = open_client(rq, eps, 1, PEER_CONNECT_MS, out);
	if (rv != 0)
		return rv;
	rq->members[rq->nmembers].id = id;
	snprintf(rq->members[rq->nmembers].address, NODE_ADDRESS_MAX, "%s", addr);
	rq->members[rq->nmembers].client = *out;
	rq->nmembers++;
	return 0;
}

int node_request_member(struct node_requests *rq, struct node_request *q, uint64_t id,
                        const char *op, const void *args, size_t len, unsigned flags,
                        unsigned timeout_ms)
{
	struct rpc_client *c;
	int rv;

	if (rq->closed)
		return ING_EUNAVAILABLE;
	rv = member_client(rq, id, &c);
	if (rv != 0)
		return rv;
	q->oneshot_ = NULL;
	return send_on(rq, c, q, op, args, len, flags, timeout_ms);
}

int node_request_addresses(struct node_requests *rq, struct node_request *q,
                           const char *const *addrs, unsigned naddrs, const char *op,
                           const void *args, size_t len, unsigned flags, unsigned timeout_ms)
{
	struct rpc_client *c;
	int rv;

	if (rq->closed)
		return ING_EUNAVAILABLE;
	rv = open_client(rq, addrs, naddrs, PEER_CONNECT_MS, &c);
	if (rv != 0)
		return rv;
	q->oneshot_ = c;
	rv = send_on(rq, c, q, op, args, len, flags, timeout_ms);
	if (rv != 0) {
		q->oneshot_ = NULL;
		close_client(rq, c);
		return rv;
	}
	q->next_ = rq->oneshots;
	rq->oneshots = q;
	return 0;
}
