/*
 * member.h - membership (docs/api.md "Membership", docs/operations.md):
 * the member.* operations, the members table, and this node's own
 * membership (join, leave, removal).
 *
 * Owns: the change running on the leader (node/member/change.h) and the
 * leadership transfer running; the leader before the current one; when
 * this node became the ready leader; this
 * node's joining, leaving and removal-check state, with the timer that
 * retries a join or a leave.  The retry timer holds the node until
 * member_stop has closed it.
 *
 * Callbacks: none to its caller; its requests' answers arrive through
 * node/request.h.  What it decides goes through the log (node/propose.h)
 * or to raft (cons_add, cons_assign, cons_remove, cons_transfer).  A node
 * that learns it was removed writes data_dir/removed and stops (status 0);
 * a join the cluster refuses, or data of another cluster, is fatal
 * (ING_EINVAL: ingotd exits 2).
 */
#ifndef INGOT_NODE_MEMBER_MEMBER_H
#define INGOT_NODE_MEMBER_MEMBER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "node/config.h"
#include "node/core.h"
#include "node/sm/cmd.h"
#include "rpc/server.h"

struct member;

/* Opens the retry timer.  ING_ENOMEM, or 0 and *out. */
int member_new(struct node *n, struct member **out);
/* Once raft runs: with --join, asks to be added (an empty configuration),
 * or checks that the members at the join addresses are this cluster (a
 * configuration already here).  0, or the error reading the configuration. */
int member_start(struct member *m);
/* The node stops: a running change is answered `unavailable`, the retry
 * timer closed. */
void member_stop(struct member *m);
/* After member_stop, once the node no longer runs callbacks. */
void member_free(struct member *m);

/* node/bus.h: the leader changed from `previous` to `leader` (0: none). */
void member_role_changed(struct member *m, uint64_t previous, uint64_t leader);
/* node/bus.h: this node became the ready leader: names the cluster if
 * nobody did, reconciles the members table with the raft configuration and
 * records the leader change (cluster_event leader_changed). */
void member_leader_ready(struct member *m);
/* node/bus.h, member tick on the ready leader: polls the running change
 * (catch-up, next step).  True when a change is running. */
bool member_change_tick(struct member *m);
/* node/bus.h, member tick, first, on any node: a leadership transfer
 * whose callback came while the new leader was still unknown is looked at
 * again (answered once it is known, or after two election timeouts).
 * True when one is still settling (nothing else runs on this tick). */
bool member_transfer_tick(struct member *m);
/* node/bus.h, member tick on every other node: a node that no leader
 * reached for a while, or that has campaigned that long, asks the members
 * whether it still belongs (member.check), and stops when it does not. */
void member_removal_check(struct member *m);
/* When this node last became the ready leader (0: it is not).  Decisions
 * about who is live wait until it has led for an election timeout: a newer
 * leader has not heard from everyone yet. */
uint64_t member_leading_since_ms(const struct member *m);
/* A change or a leadership transfer is running (leader). */
bool member_busy(const struct member *m);
/* --join: this node has not been admitted yet (readiness, /readyz). */
bool member_joining(const struct member *m);
/* leave_on_shutdown: this node asked to be removed and waits for it. */
bool member_leaving(const struct member *m);

/* SIGTERM with leave_on_shutdown: asks the cluster to remove this node,
 * then stops it.  False when there is nothing to leave (the caller stops
 * the node itself). */
bool member_leave(struct member *m);

/* The member.* operations (api ops table; docs/api.md). */
void member_op_add(struct node *n, struct rpc_call *call);
void member_op_promote(struct node *n, struct rpc_call *call);
void member_op_demote(struct node *n, struct rpc_call *call);
void member_op_remove(struct node *n, struct rpc_call *call);
void member_op_transfer(struct node *n, struct rpc_call *call);
void member_op_check(struct node *n, struct rpc_call *call);

/* API address of member `id` ("" when unknown): the members table, else
 * the configured peers. */
void member_api_address(struct node *n, uint64_t id, char out[NODE_ADDRESS_MAX]);
/* The API addresses of the configuration's other members that are known
 * (member_api_address), at most NODE_MAX_PEERS: into buf, with addrs[i]
 * pointing at buf[i].  Returns how many. */
unsigned member_other_api_addresses(struct node *n, char buf[][NODE_ADDRESS_MAX],
                                    const char *addrs[]);
/* The cluster id from the store ("" when not named yet). */
void member_cluster_id(struct node *n, char out[CMD_CLUSTER_ID_LEN + 1]);
/* ING_EINVAL with a message when data_dir holds a removed node's marker. */
int member_check_marker(const char *data_dir, uint64_t id, struct ing_error *e);

#endif
