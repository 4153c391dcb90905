/*
 * raftcluster.h - three raft/consensus.h nodes in one process, for the
 * raft/ tests: real libraft 0.15 with its libuv backend over TCP on
 * 127.0.0.1 (free ports found by binding port 0), each node with its own
 * temporary directory and the in-memory state machine of consapp.h.
 *
 * Every loop run is bounded (RC_RUN_MS unless told); rc_free closes the
 * open nodes, checks that nothing keeps the loop alive and removes the
 * directories.  INGOT_TEST_LOG=debug|info|... shows the logs (default
 * warn).  Failures go through cmocka (fail_msg, assert_*).
 */
#ifndef INGOT_TESTS_LIB_RAFTCLUSTER_H
#define INGOT_TESTS_LIB_RAFTCLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/tls.h"
#include "raft/consensus.h"
#include "tests/lib/consapp.h"

#define RC_NODES     3
#define RC_RUN_MS    10000
#define RC_MAX_PROPS 256

struct rc_node {
	struct cons *c;
	struct cons_config cfg;
	struct cons_peer peers[RC_NODES]; /* the configuration it starts with */
	char dir[256];
	struct capp app;
	bool open;
	bool closed;  /* its close callback ran */
	bool durable; /* reference snapshots: capp_callbacks_durable */
	bool keep;    /* the next start keeps the app's state (its "store") */
};

struct rc_cluster;

/* A proposal made through rc_propose: its callback's outcome. */
struct rc_prop {
	struct cons_proposal p;
	struct rc_cluster *cl;
	int calls;
	int status;
	bool had_result;
	uint64_t result; /* consapp's: the entry's index */
};

struct rc_cluster {
	uv_loop_t loop;
	uv_timer_t tick;
	struct rc_node nodes[RC_NODES];
	char addrs[RC_NODES][32];
	struct rc_prop props[RC_MAX_PROPS];
	unsigned nprops;
	bool in_close;            /* a cons_close call is on the stack */
	unsigned cb_inside_close; /* proposal callbacks that ran inside it */
};

typedef bool (*rc_pred)(struct rc_cluster *cl, void *arg);

/* Peer traffic of the clusters rc_new makes from now on: over the TLS
 * transport with tls[i] for node i (borrowed; NULL: libraft's TCP). */
void rc_use_tls(struct ing_tls *const *tls);
/* Sets the log level from INGOT_TEST_LOG (default warn). */
void rc_set_log_level(void);
/* A cluster of RC_NODES configured nodes, none started: ids 1..N, each
 * bootstrapping with all N as voters; snapshot threshold and trailing as
 * given (0: libraft's defaults). */
struct rc_cluster *rc_new(unsigned threshold, unsigned trailing);
void rc_free(struct rc_cluster *cl);
/* Runs the loop until pred holds; false after ms. */
bool rc_run_until(struct rc_cluster *cl, rc_pred pred, void *arg, unsigned ms);
/* Runs the loop for ms, whatever happens. */
void rc_run_for(struct rc_cluster *cl, unsigned ms);
/* Starts node i (index 0..N-1) with a fresh consapp state. */
void rc_start(struct rc_cluster *cl, unsigned i);
/* Closes node i and waits for its close callback. */
void rc_close(struct rc_cluster *cl, unsigned i);
/* The open node whose last reported role is LEADER_READY in a term above
 * min_term, or -1. */
int rc_ready_leader(struct rc_cluster *cl, uint64_t min_term);
/* Waits for rc_ready_leader (fails the test after RC_RUN_MS). */
int rc_wait_leader(struct rc_cluster *cl, uint64_t min_term);
/* Proposes consapp's payload `seed` of len bytes (at most 512) on node i;
 * returns cons_propose's code and the slot in *out (may be NULL). */
int rc_propose(struct rc_cluster *cl, unsigned i, uint32_t seed, size_t len, struct rc_prop **out);
/* A predicate: every proposal made so far has had its callback. */
bool rc_pred_props_done(struct rc_cluster *cl, void *arg);
/* Waits until node `node` applied at least n entries (fails after
 * RC_RUN_MS, naming the counts). */
void rc_wait_applied(struct rc_cluster *cl, unsigned node, size_t n);

#endif
