/*
 * consensus.h - the node's replicated log: the only interface to libraft.
 *
 * raft/ is the one folder that calls libraft (0.15, with its libuv
 * backend).  It carries opaque, 8-byte-padded commands from a proposer to
 * the apply callback of every node, in log order, and knows nothing of jobs.
 * Nothing here exposes a libraft type, so a change of library touches this
 * folder only.
 *
 * Facts of libraft 0.15 this layer absorbs (DESIGN.md):
 *  - entry lengths must be multiples of 8: cons_propose refuses others;
 *  - a new leader appends no entry of its own: on becoming leader this layer
 *    proposes a barrier at once and reports CONS_LEADER_READY only after it
 *    commits; until then the node must not schedule, serve linearizable
 *    reads or change membership;
 *  - apply is not given its index: it is raft_last_applied + 1;
 *  - a non-zero return from apply stalls libraft forever: the apply
 *    callback returns non-zero only for a fatal store failure, and this
 *    layer then reports it through `fatal` and stops;
 *  - apply results are only wanted on the node that proposed: results of
 *    entries proposed elsewhere are released here at once;
 *  - followers answer proposals with not-leader: cons_propose fails with
 *    ING_ENOTLEADER and the node forwards;
 *  - pre-vote on, connect-retry delay well below the election timeout;
 *  - libraft's tracer and errors are routed into our log.
 *
 * Everything runs on the caller's libuv loop; no threads.  The process must
 * ignore SIGPIPE (peers close connections that libuv may still write to).
 */
#ifndef INGOT_RAFT_CONSENSUS_H
#define INGOT_RAFT_CONSENSUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct ing_tls;

/* "a.b.c.d:port" with a port in 1..65535: the only address form libraft's
 * TCP transport takes. */
bool cons_address_valid(const char *s);

struct cons_peer {
	uint64_t id;
	const char *address; /* "a.b.c.d:port", borrowed */
};

struct cons_config {
	uint64_t id;
	const char *address; /* this node's raft address, borrowed */
	const char *dir;     /* directory for libraft's log and snapshots; created if absent */
	const struct cons_peer *initial; /* voters to bootstrap a new cluster with */
	unsigned ninitial;               /* 0: join an existing cluster (no bootstrap) */
	unsigned election_timeout_ms;    /* 0: 120 */
	unsigned heartbeat_timeout_ms;   /* 0: 12 */
	unsigned connect_retry_ms;       /* 0: 50 */
	unsigned snapshot_threshold;     /* 0: 4096 entries */
	unsigned snapshot_trailing;      /* 0: 1024 entries */
	/* At most one snapshot per this many ms while fewer than 16 x the
	 * threshold entries are past the last one (fsm.h "Snapshot pacing");
	 * 0: none, a snapshot every threshold entries. */
	unsigned snapshot_interval_ms;
	/* Peer traffic over mutual TLS 1.3 with this context (borrowed; must
	 * hold this node's certificate, ingot:node:<id>, and outlive the
	 * node; ing_tls_reload changes it for new connections).  NULL:
	 * libraft's plaintext TCP (dev mode, loopback). */
	struct ing_tls *tls;
};

enum cons_role {
	CONS_FOLLOWER = 0,
	CONS_CANDIDATE = 1,
	CONS_LEADER = 2,       /* leader, barrier not yet committed */
	CONS_LEADER_READY = 3, /* leader whose barrier committed */
	CONS_UNAVAILABLE = 4,  /* stopped or failed */
};

/*
 * The one name of each role, as the API (node.info), the logs and ingotctl
 * spell it: "follower", "candidate", "leader", "unavailable".  CONS_LEADER
 * and CONS_LEADER_READY are both "leader"; where the difference matters
 * (logs), cons_role_ready says whether the leader's barrier committed.
 */
const char *cons_role_name(enum cons_role role);
/* "yes" for CONS_LEADER_READY, "no" for CONS_LEADER, NULL for the others:
 * the `ready=` field of a role's log line. */
const char *cons_role_ready(enum cons_role role);

/*
 * apply, snapshot and restore run inside libraft (on the loop) and must not
 * call any cons_* function; role_changed, fatal and the request callbacks
 * run from the loop outside libraft and may call any of them (cons_close
 * included).  apply, snapshot and restore are required, the others may be
 * NULL.
 */
struct cons_callbacks {
	void *data;
	/*
	 * Applies the committed command at `index` (payload borrowed for the
	 * call).  Indexes strictly increase, with gaps for barrier and
	 * configuration entries, and restart after a restore; a restarted node
	 * replays entries after its last snapshot, so apply must skip an index
	 * its state already holds.  May set *result to a malloc'd object handed
	 * to the proposer's callback (or freed with `free_result` when no local
	 * proposer waits).  Returns 0, or a fatal error: reported through
	 * `fatal`, and libraft never gets past that entry (0.15 stalls or turns
	 * the node unavailable); the node must be stopped.  Reject a bad command
	 * by returning 0 with the error recorded in *result.
	 */
	int (*apply)(void *data, uint64_t index, const void *buf, size_t len, void **result);
	/* Releases a result nobody waits for; NULL: free(). */
	void (*free_result)(void *data, void *result);
	/* Writes the whole state into a malloc'd buffer (owned by the callee's
	 * caller: raft/ frees it with free()).  A failure is logged and
	 * retried at a later apply, not fatal.  With the libuv backend it runs
	 * on a thread of libuv's pool (libraft's async snapshot), after
	 * snapshot_prepare ran on the loop, while the loop goes on applying:
	 * it must touch nothing but what is safe across threads, and the state
	 * it writes may be newer than the snapshot's index (restore then holds
	 * entries that apply skips by index).  Without async support (the
	 * test fixture) it runs on the loop right after snapshot_prepare. */
	int (*snapshot)(void *data, void **buf, size_t *len);
	/* On the loop, just before `snapshot`: make every applied entry part
	 * of what `snapshot` will copy (e.g. commit a pending batch).  May be
	 * NULL.  Non-zero skips this snapshot (retried later). */
	int (*snapshot_prepare)(void *data);
	/* Replaces the state with a snapshot's (buf borrowed).  Non-zero is
	 * fatal.  May run inside cons_start (the directory's last snapshot). */
	int (*restore)(void *data, const void *buf, size_t len);
	/*
	 * Optional, for a state that is durable on its own (a store committed
	 * with fsync): snapshots become references (raft/snapref.c).  On the
	 * loop, at each snapshot: make every applied entry durable and set
	 * *index to the index the durable state now holds (>= the last applied
	 * one); non-zero skips this snapshot (retried later).  libraft then
	 * keeps 16 bytes instead of a copy, snapshot_prepare is not called, and
	 * `snapshot` runs (on a pool thread) only when a follower needs a copy
	 * installed.  Requires state_index.
	 */
	int (*snapshot_sync)(void *data, uint64_t *index);
	/* With snapshot_sync: the index the durable state holds (on the loop,
	 * e.g. at start).  A reference to a later index is fatal at start: the
	 * state was lost or rolled back. */
	int (*state_index)(void *data, uint64_t *index);
	/* Role, leader or term changed.  leader_id 0 when unknown. */
	void (*role_changed)(void *data, enum cons_role role, uint64_t leader_id, uint64_t term);
	/* libraft or the store failed in a way the node cannot survive; called
	 * once, after which the role is CONS_UNAVAILABLE and the node should be
	 * closed. */
	void (*fatal)(void *data, int code, const char *message);
};

struct cons;

/*
 * Starts a node on loop: bootstraps the cluster when cfg->ninitial > 0 and
 * the directory holds no state, restarts from the directory otherwise.
 * cfg and cb are copied.  ING_EINVAL (bad address, id not among the initial
 * voters or with another address there, heartbeat >= election timeout, a
 * TLS certificate that does not name this node's id),
 * ING_EIO, ING_ENOMEM, or libraft's failure translated (e.g. ING_EIO when the
 * address is in use), with a message in e.  On a failure after libraft was
 * initialised, its handles are released asynchronously: the loop must still
 * be run to completion.  A single-voter cluster elects itself and may apply
 * its log inside cons_start.
 */
int cons_start(uv_loop_t *loop, const struct cons_config *cfg, const struct cons_callbacks *cb,
               struct cons **out, struct ing_error *e);

/* Stops the node: refuses new requests at once, lets the log finish being
 * written (bounded; libraft 0.15 crashes when closed with several leader
 * appends in flight), then closes libraft.  close_cb(data) (may be NULL)
 * runs once every handle is closed and c is freed.  Pending proposals and barriers complete with
 * ING_EUNAVAILABLE (or 0 if applied before the close), after cons_close has
 * returned and before close_cb.  Call once; never from apply, snapshot or
 * restore. */
void cons_close(struct cons *c, void (*close_cb)(void *data), void *data);

/* A proposal: caller-owned, untouched by the caller until cb; cb runs
 * exactly once, never inside cons_propose, and only if cons_propose returned
 * 0.  status 0 and the apply result (may be NULL; ownership passes to the
 * callee), or ING_EUNAVAILABLE (leadership lost or node closed: the entry
 * may still commit; only a request id makes a retry safe). */
struct cons_proposal {
	void *data;
	void (*cb)(struct cons_proposal *p, int status, void *result);
	uint64_t index; /* set once handed to libraft (before the loop next polls) */
	void *internal; /* raft/'s */
};

/* Copies buf (len > 0, a multiple of 8) into the log.  ING_EINVAL (len, no
 * cb), ING_ENOTLEADER (not leader, or a leadership transfer under way: the
 * node forwards), ING_EUNAVAILABLE (closing or failed), ING_ENOMEM.  Accepted
 * as soon as the node is leader (CONS_LEADER too: the entry follows the
 * leader barrier in the log). */
int cons_propose(struct cons *c, struct cons_proposal *p, const void *buf, size_t len);
/* Whether a proposal of this node waits for the result of the entry at
 * index: true exactly when a result `apply` makes for it now would go to
 * that proposal's cb (otherwise it is freed unseen).  On the loop, e.g.
 * from inside `apply`, to skip making a result nobody reads. */
bool cons_awaits(struct cons *c, uint64_t index);

/* A barrier (leader only): cb runs once all entries before it are applied
 * locally, with status 0, or ING_EUNAVAILABLE as for proposals.  Errors of
 * cons_barrier as for cons_propose. */
struct cons_barrier {
	void *data;
	void (*cb)(struct cons_barrier *b, int status);
	void *internal;
};
int cons_barrier(struct cons *c, struct cons_barrier *b);

/* Snapshot of the node's view (cheap; role as of now, which the pump
 * reports through role_changed before the loop next blocks). */
struct cons_status {
	enum cons_role role;
	uint64_t id;
	uint64_t leader_id; /* 0: unknown */
	char leader_address[64];
	uint64_t term;
	uint64_t commit_index;
	uint64_t last_applied;
	uint64_t last_index;
	/* Follower: ms since the leader last reached this node (appends or
	 * heartbeats; UINT64_MAX: never since start); 0 on a leader. */
	uint64_t leader_contact_ago_ms;
	/* The index named by the reference snapshot libraft restored at start
	 * (raft/snapref.c; 0: none, or a full copy was restored): the state
	 * machine's durable state held at least this index when the reference
	 * was taken, so entries up to it are accounted for even where the log
	 * no longer holds them.  It may lie past last_index: a store that ran
	 * ahead of the log after an installed copy. */
	uint64_t start_reference;
	/* Proposals this node handed to libraft as leader since it started,
	 * and the raft_apply calls that carried them: every proposal made
	 * during one loop iteration goes in one call (one disk append, one
	 * AppendEntries per follower). */
	uint64_t proposals;
	uint64_t proposal_batches;
};
void cons_status(struct cons *c, struct cons_status *out);

/* ---- membership ------------------------------------------------------
 *
 * The configuration is a list of members with libraft's roles: voters
 * count for elections and commits; standbys receive the log but do not
 * vote; spares receive nothing.  Changes are leader-only and one at a time
 * in the whole cluster: libraft refuses a second one (ING_ECONFLICT) until
 * the first is committed.  A change's cb runs once, never inside the call,
 * with 0 once the new configuration is committed, or an error:
 * ING_EUNAVAILABLE when leadership was lost or the node closed (the change
 * may still commit: read the configuration again).  A removed node is not
 * told by libraft: the caller must stop it. */
enum cons_member_role { CONS_VOTER = 0, CONS_STANDBY = 1, CONS_SPARE = 2 };
struct cons_member {
	uint64_t id;
	char address[64];
	enum cons_member_role role;
	/* Leader only (else 0): highest log index known to be on the member
	 * (the leader's last index for itself), and how long ago, in ms, the
	 * leader last heard from it over Raft (0 for itself, UINT64_MAX when
	 * never since this node became leader). */
	uint64_t match_index;
	uint64_t contact_ago_ms;
	/* Leader only (else 0): how long ago, at most, this leader certainly
	 * received a message from the member (0 for itself; UINT64_MAX when
	 * none yet in this leadership).  Unlike contact_ago_ms, which counts a
	 * member not heard from yet as heard at the start of the leadership
	 * and may trail a death by an election timeout, this never claims a
	 * contact that did not happen; it lags a live member's last message by
	 * at most about one election timeout.  Use it where a wrong "alive"
	 * costs availability (membership changes). */
	uint64_t confirmed_ago_ms;
};
/* Current configuration (as appended: it may not be committed yet, see
 * cons_config_pending); *out malloc'd array (caller frees). */
int cons_members(struct cons *c, struct cons_member **out, unsigned *n);
/* True while the last configuration appended is not committed yet. */
bool cons_config_pending(struct cons *c);

struct cons_change {
	void *data;
	void (*cb)(struct cons_change *ch, int status);
	void *internal; /* raft/'s */
};
/* Adds `id` at `address` ("a.b.c.d:port") as a spare.  ING_EINVAL (id 0,
 * address), ING_EEXIST (id or address in the configuration),
 * ING_ENOTLEADER, ING_ECONFLICT, ING_EUNAVAILABLE, ING_ENOMEM. */
int cons_add(struct cons *c, struct cons_change *ch, uint64_t id, const char *address);
/* Gives member `id` a new role.  A spare or standby promoted to voter is
 * first caught up by libraft (rounds of replication) before the
 * configuration entry is appended.  ING_ENOTFOUND (no such member),
 * ING_EINVAL (it has that role already), as for cons_add otherwise. */
int cons_assign(struct cons *c, struct cons_change *ch, uint64_t id, enum cons_member_role role);
/* Removes member `id` (may be this node: it then steps down once the change
 * commits).  Errors as for cons_assign. */
int cons_remove(struct cons *c, struct cons_change *ch, uint64_t id);

/* Leadership transfer to voter `id` (0: the most caught-up voter).  cb runs
 * once the target is leader or an election timeout has passed: libraft 0.15
 * can fail silently, so the caller checks cons_status afterwards.  While a
 * transfer is in flight the leader refuses proposals (ING_ENOTLEADER).
 * ING_ENOTFOUND (not a voter, or the leader itself, or no voter to choose),
 * ING_ENOTLEADER, ING_ECONFLICT (a transfer in flight), ING_EUNAVAILABLE. */
struct cons_transfer {
	void *data;
	void (*cb)(struct cons_transfer *t);
	void *internal;
};
int cons_transfer(struct cons *c, struct cons_transfer *t, uint64_t id);

#endif
