/*
 * cons_internal.h - private to raft/: struct cons and what consensus.c,
 * propose.c and trace.c share.  Never included outside raft/.
 */
#ifndef INGOT_RAFT_CONS_INTERNAL_H
#define INGOT_RAFT_CONS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>

#include "raft/consensus.h"
#include "raft/fsm.h"

/* Intrusive doubly linked list; a head points to itself when empty. */
struct cons_link {
	struct cons_link *prev, *next;
};

static inline void cons_link_init(struct cons_link *h)
{
	h->prev = h->next = h;
}

static inline bool cons_link_empty(const struct cons_link *h)
{
	return h->next == h;
}

static inline void cons_link_push(struct cons_link *h, struct cons_link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

static inline void cons_link_remove(struct cons_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

#define CONS_MAX_CONTACTS 64

struct cons_contact {
	uint64_t id;
	uint64_t at_ms;        /* uv_now() when a reply was last seen (upper bound) */
	uint64_t confirmed_ms; /* a reply is known to have arrived at or after this; 0: none */
	uint64_t clear_ms;     /* last pump that saw recent_recv false (0: none) */
};

struct cons {
	uv_loop_t *loop;
	uint64_t id;
	char *address; /* owned copies of the configuration's strings */
	char *dir;
	char snapshot[128]; /* the snapshot file raft_start loads, "" if none */

	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct raft_tracer tracer; /* trace.c; impl points to this struct */
	struct cons_fsm fsm;
	struct cons_callbacks cb;

	/* Runs before every poll of the loop: role tracking, the leader
	 * barrier, and delivery of completed requests (consensus.c). */
	uv_prepare_t pump;

	/* The barrier proposed on becoming leader (one in flight at most). */
	struct raft_barrier lead_barrier;
	bool lead_barrier_busy;
	uint64_t lead_barrier_term; /* term it was proposed in, 0: none */
	uint64_t ready_term;        /* term whose barrier committed, 0: none */

	/* Last (role, leader, term) reported through role_changed. */
	bool reported;
	enum cons_role role;
	uint64_t leader_id;
	uint64_t term;

	/* Requests (propose.c): handed to libraft and not yet called back, in
	 * index order; then completed, waiting for the pump to call the user. */
	struct cons_link pending;
	struct cons_link done;
	/* Proposals staged for the next raft_apply (propose.c), in call order;
	 * flushed by the pump, which flush_idle keeps from waiting on the
	 * poll while any is staged. */
	struct cons_link staged;
	unsigned nstaged;
	size_t staged_bytes;
	uint64_t pending_term;           /* term of the latest batch handed to libraft */
	uint64_t n_proposals, n_batches; /* handed to libraft, since start */
	uv_idle_t flush_idle;

	/* Leader: when each member of the configuration was last heard from
	 * (uv_now ms), refreshed by the pump from libraft's progress; members
	 * not heard from yet count from the start of the term's leadership. */
	struct cons_contact contact[CONS_MAX_CONTACTS];
	unsigned ncontact;
	uint64_t contact_term; /* term the table belongs to; 0: none */
	uint64_t leader_since_ms;

	/* Fatal failure of the fsm or of libraft, reported once by the pump. */
	bool failed;
	bool fatal_reported;
	int fatal_code;
	char fatal_msg[256];

	/* metrics.c: libraft's append, wrapped to be timed, and the registry
	 * our collect callback is in (NULL: none). */
	int (*orig_append)(struct raft_io *io, struct raft_io_append *req,
	                   const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
	struct ing_metrics *metrics_registry;

	/* commit_early.c: libraft's io.start and the receive callback it
	 * passed to it. */
	int (*orig_start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
	                  raft_io_recv_cb recv);
	raft_io_recv_cb orig_recv;

	/* send_guard.c: libraft's io.send. */
	int (*orig_send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
	                 raft_io_send_cb cb);

	/* Inside cons_start: libraft's traces are enabled whatever the log
	 * level, and those reporting damage in the log go out at warn. */
	bool starting;

	bool closing;                /* cons_close called: draining, no new requests */
	bool raft_closing;           /* raft_close called */
	uint64_t close_next_warn_ms; /* uv_now() of the next "still writing" line */

	/* Reference snapshots (snapref.c): the backend's own snapshot_get,
	 * and state copies for installs in flight (close waits for them). */
	int (*backend_snapshot_get)(struct raft_io *io, struct raft_io_snapshot_get *req,
	                            raft_io_snapshot_get_cb cb);
	unsigned snapref_copies;
	void (*close_cb)(void *data);
	void *close_data;

	/* The close gate (consensus.c): the transport's own close, and
	 * libraft's callback, held back until close_gate has run. */
	void (*transport_close)(struct raft_uv_transport *t, raft_uv_transport_close_cb cb);
	raft_uv_transport_close_cb transport_closed_cb;
	uv_idle_t close_gate;
};

/* The cons whose io is io (every wrapper of a struct raft_io method). */
static inline struct cons *cons_of_io(struct raft_io *io)
{
	return (struct cons *)(void *)((char *)io - offsetof(struct cons, io));
}

/* propose.c */
/* The fsm applied index with result (owned by the caller): true when a
 * local proposal waits for it here, which now owns result. */
bool cons_claim(void *owner, uint64_t index, void *result);
/* Hands every staged proposal to libraft in one raft_apply (or fails them
 * all with ING_EUNAVAILABLE, delivered by the pump). */
void cons_flush(struct cons *c);
/* consensus.c: makes sure the pump runs before the loop next blocks. */
void cons_flush_soon(struct cons *c);
/* From the pump: flushes, and fails the proposals this node can no longer
 * claim (leadership of their term lost, libraft done with their batch). */
void cons_propose_pump(struct cons *c);
/* Calls the user callback of every completed request; stops early when a
 * callback closes c unless `all`.  Never called inside a libraft callback. */
void cons_deliver(struct cons *c, bool all);
/* Completes every request libraft still holds, and every staged
 * proposal, with status (close path). */
void cons_fail_pending(struct cons *c, int status);

/* startcheck.c: checks the libraft directory dir before libraft opens it:
 * a log (segments, snapshots) with no valid metadata file, and the snapshot
 * raft_start will load (the newest one, libraft's choice), whose name goes
 * to name[cap] ("" when there is none).  0, ING_ECORRUPT (metadata lost, or
 * an LZ4 frame cut short or damaged: libraft 0.15 would spin for ever
 * decompressing it), ING_EIO, with the file named in e.  A missing
 * directory is fine (nothing to check). */
int cons_check_dir(const char *dir, char *name, size_t cap, struct ing_error *e);

/* metrics.c (docs/operations.md "Metrics") */
/* After raft_uv_init, before raft_init: registers the families, the
 * collect callback, and wraps io.append to time it. */
void cons_metrics_start(struct cons *c);
/* Before c is freed: removes the collect callback. */
void cons_metrics_stop(struct cons *c);
void cons_metrics_leader_changed(void);
void cons_metrics_snapshot(double seconds);
/* One raft_apply of n proposals. */
void cons_metrics_batch(unsigned n);

/* commit_early.c: after raft_uv_init, before raft_init: wraps io.start so
 * that a follower applies what the leader committed without waiting for
 * its next disk write. */
void cons_commit_early_wrap(struct cons *c);
/* The commit index of the heartbeat made of AppendEntries a, handed to r
 * before a itself; 0: none (a carries no entries, r is not a follower in
 * a's term, or the heartbeat would not raise r's commit index). */
uint64_t cons_commit_early_upto(const struct raft *r, const struct raft_append_entries *a);

/* send_guard.c: after raft_uv_init, before raft_init: wraps io.send so
 * that a message to no known peer (libraft 0.15 answers an AppendEntries
 * to the leader it knows when its write completes, none after a new term
 * began) is refused (RAFT_NOCONNECTION) instead of crashing the node. */
void cons_send_guard_wrap(struct cons *c);
/* The wrapper itself (c->io.send once wrapped). */
int cons_send_guarded(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                      raft_io_send_cb cb);

/* trace.c */
void cons_trace_init(struct cons *c);
/* Re-reads the log threshold so the tracer formats nothing unless debug. */
void cons_trace_refresh(struct cons *c);
int cons_err_from_raft(int rv);

/* ---- snapref.c: reference snapshots ---------------------------------- */

#define CONS_SNAPREF_BYTES 16
/* A reference to `index` in a malloc'd 16-byte buffer.  ING_ENOMEM. */
int cons_snapref_encode(uint64_t index, struct raft_buffer *out);
/* True, with the index, when buf is a reference; false for anything else. */
bool cons_snapref_decode(const void *buf, size_t len, uint64_t *index);
/* Routes c->io.snapshot_get through the reference-to-copy wrapper.  Call
 * after raft_uv_init, before raft_init. */
void cons_snapref_wrap(struct cons *c);
/* Logs a libraft failure at warn level with libraft's detail message (from
 * raft_errmsg, io.errmsg or transport.errmsg); returns the translated code. */
int cons_raft_failed(const struct cons *c, const char *what, int rv, const char *detail);

#endif
