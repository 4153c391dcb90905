/*
 * node_internal.h - what the daemon's files share (node/node*.c, api*.c,
 * forward.c, watch.c, view.c).
 */
#ifndef INGOT_NODE_NODE_INTERNAL_H
#define INGOT_NODE_NODE_INTERNAL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/mp.h"
#include "node/cmd.h"
#include "node/config.h"
#include "node/node.h"
#include "node/sm.h"
#include "raft/consensus.h"
#include "rpc/client.h"
#include "rpc/server.h"
#include "storage/records.h"
#include "storage/store.h"

/* The result of one apply, handed from the apply callback to the proposer. */
struct node_result {
	int code;
	char message[ING_ERROR_MSG_MAX];
	size_t len;
	char value[]; /* msgpack value, len bytes */
};

/* A request waiting for a (ready) leader, or for a forward to be retried. */
struct node_parked {
	struct rpc_call *call;
	uint64_t deadline_ms;
	struct node_parked *next;
};

struct node_watch;

struct node {
	uv_loop_t *loop;
	struct node_config cfg;
	struct store *store;
	struct sm *sm;
	struct cons *cons;
	struct rpc_server *api;
	uv_prepare_t flush;    /* commits the apply batch once per loop iteration */
	uv_timer_t park_timer; /* re-dispatches parked requests */
	enum cons_role role;
	uint64_t leader_id;
	uint64_t term;
	struct node_parked *parked;
	struct rpc_client *fwd; /* connection to the leader's API */
	uint64_t fwd_leader;    /* leader id fwd points at */
	struct node_watch *watches;
	uint64_t unpark_deadline_ms; /* while unparking: the call's first deadline */
	struct {
		uint64_t id;
		struct rpc_client *client;
	} peer_clients[32]; /* for status: node.info of each member */
	unsigned npeer_clients;
	bool members_synced; /* leader: member records proposed this term */
	bool stopping;
	int failed;
	unsigned open_handles;
	void (*stopped)(void *data, int status);
	void *stopped_data;
};

/* node.c */
uint64_t node_now_ms(void);
/* Flushes the apply batch; a failure is fatal for the node. */
int node_flush(struct node *n);
void node_fatal(struct node *n, int code, const char *what);
/* Counts a resource that will be released asynchronously (a closing
 * client) / its release; the node frees itself when the last one goes. */
void node_hold(struct node *n);
void node_release(void *node);
/* API address of member `id` ("" when unknown), from the members table or
 * the configured peers. */
void node_member_api_address(struct node *n, uint64_t id, char out[NODE_ADDRESS_MAX]);

/* api.c: the operations (docs/api.md). */
void node_api_handle(void *data, struct rpc_call *call);
/* Runs a call now if this node can serve it, else forwards or parks it. */
void node_api_dispatch(struct node *n, struct rpc_call *call);
/* Proposes an encoded command; the reply goes to call (NULL: nobody). */
int node_propose(struct node *n, struct rpc_call *call, const struct cmd *c);

/* forward.c: forwarding to the leader and parking. */
void node_forward(struct node *n, struct rpc_call *call);
void node_park(struct node *n, struct rpc_call *call);
/* Re-dispatches parked calls (after a role change); expires old ones. */
void node_unpark(struct node *n);
void node_forward_close(struct node *n);

/* status.c */
void node_status_start(struct node *n, struct rpc_call *call);
void node_status_close(struct node *n);

/* watch.c */
int node_watch_start(struct node *n, struct rpc_call *call, uint64_t job);
/* After each flush: push new events, end finished watches. */
void node_watch_poll(struct node *n);
void node_watch_close_all(struct node *n);

/* view.c: records as API objects (msgpack maps, docs/api.md). */
void view_job(msgpack_packer *pk, const struct rec_job *j, bool full);
void view_target(msgpack_packer *pk, const struct rec_target *t);
void view_event(msgpack_packer *pk, uint32_t seq, const struct rec_event *ev);
void view_key(msgpack_packer *pk, const char *key);

#endif
