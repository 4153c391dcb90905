/*
 * core.h - the node as its modules see it (node/node.c implements it).
 *
 * struct node is the daemon's wiring and nothing else: the resources every
 * module shares (loop, configuration, store, state machine, raft, the
 * node's own API client), the role raft last reported, the lifecycle, and
 * one pointer per module.  A module reads these through the functions
 * below and reaches another module only through that module's header
 * (node/api/api.h, node/leader/scheduler.h, ...), never through its
 * fields.  Who is told what, and in which order, is node/bus.h.
 *
 * Lifetime: everything returned here is borrowed and valid until the node
 * frees itself (after node_stop, once the last hold is released).  Only
 * node_cons may return NULL (after raft closed), node_metrics (metrics
 * that could not be registered: the node serves without them), and
 * node_api, node_member and node_http while a failed start unwinds.
 */
#ifndef INGOT_NODE_CORE_H
#define INGOT_NODE_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "node/config.h"
#include "raft/consensus.h"

struct mp_out;

struct node;
struct store;
struct ing_tls;
struct node_requests;

struct api;
struct sched;
struct liveness;
struct retention;
struct deadlines;
struct worker;
struct heartbeat;
struct member;
struct metrics;
struct backup;
struct http;

/* Wall-clock milliseconds since the epoch (the leader's time in commands). */
uint64_t node_now_ms(void);

uv_loop_t *node_loop(const struct node *n);
const struct node_config *node_cfg(const struct node *n);
uint64_t node_id(const struct node *n);
struct store *node_store(const struct node *n);
struct cons *node_cons(const struct node *n);
/* The loop's buffer for encoding a command to propose (node/propose.c):
 * reset before each use, kept between proposals. */
struct mp_out *node_propose_buf(struct node *n);
/* The TLS context of the API, the raft transport and this node's calls
 * (NULL: plaintext, loopback only). */
struct ing_tls *node_tls(const struct node *n);
/* The clients of this node's calls to ingot APIs (node/request.h). */
struct node_requests *node_requests(const struct node *n);

/* The role, leader and term raft reported last (node/bus.h: role change). */
enum cons_role node_role(const struct node *n);
bool node_is_ready_leader(const struct node *n);
uint64_t node_leader_id(const struct node *n);
uint64_t node_term(const struct node *n);
/* A leader raft's status already names before its role callback arrives
 * (a leadership transfer that just completed): requests go there. */
void node_note_leader(struct node *n, uint64_t leader_id);
/* node_stop has begun: start nothing new. */
bool node_stopping(const struct node *n);
/* The code of the fatal error that stopped the node (node_fatal), 0 when
 * none. */
int node_failed(const struct node *n);

/* The modules (one each, created by node_start, freed with the node). */
struct api *node_api(const struct node *n);
struct sched *node_sched(const struct node *n);
struct liveness *node_liveness(const struct node *n);
struct retention *node_retention(const struct node *n);
struct deadlines *node_deadlines(const struct node *n);
struct worker *node_worker(const struct node *n);
struct heartbeat *node_heartbeat(const struct node *n);
struct member *node_member(const struct node *n);
struct metrics *node_metrics(const struct node *n);
struct backup *node_backup(const struct node *n);
struct http *node_http(const struct node *n);

/* Counts a resource that will be released asynchronously (a closing client
 * or handle) / its release; the node frees itself when the last one goes,
 * after node_stop. */
void node_hold(struct node *n);
void node_release(void *node);

/* Commits the apply batch (so a read sees every applied entry); a failure
 * is fatal for the node and returned. */
int node_flush(struct node *n);
/* Stops the node for good: it never serves from state it cannot trust.
 * ingotd then exits non-zero (code decides how, see ingotd_main.c). */
void node_fatal(struct node *n, int code, const char *what);

#endif
