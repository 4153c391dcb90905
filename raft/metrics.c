/*
 * metrics.c - the replicated log's metrics (docs/operations.md "Metrics"),
 * in the process registry (common/metrics.h).
 *
 * Read at scrape time from libraft's state (a collect callback per cons):
 * term, commit/applied/last index, is-leader, and the members of the
 * configuration by role and, on the leader, how many were heard from within
 * two election timeouts ("alive"; 0 on other nodes, which cannot know).
 *
 * Counted as they happen: leader changes (consensus.c's report_role),
 * snapshots taken and how long each took (fsm.c, on the loop: a
 * reference's commit and sync in fsm_snapshot, a copy's time from
 * fsm_snapshot to fsm_snapshot_finalize), and the duration of
 * every append to the log on disk.  The append is timed by wrapping the
 * io's append method (struct raft_io is libraft's public I/O interface):
 * from the call to its callback, i.e. the write and the fsync of one batch
 * of entries, which libraft's uv backend does as one step (so there is no
 * separate fsync figure).  In-flight appends are remembered in a small
 * table; when it is full an append goes untimed.
 */
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "raft/cons_internal.h"

static const double append_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    2.5};
static const double snapshot_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static struct {
	struct ing_metrics *registry;
	struct ing_series *term, *commit, *applied, *last, *leader;
	struct ing_series *leader_changes, *snapshots, *snapshot_seconds, *append_seconds;
	struct ing_series *members[3], *alive;
	struct ing_series *proposals, *proposal_batches;
} m;

static void init(void)
{
	static const char *const role_label[] = {"role", NULL};
	static const char *const roles[3] = {"voter", "standby", "spare"};
	struct ing_metrics *r = ing_metrics_default();
	struct ing_metric *f;
	if (r == NULL || r == m.registry)
		return;
	memset(&m, 0, sizeof(m));
	m.registry = r;
#define GAUGE(field, name, help)                                   \
	if (ing_metrics_gauge(r, name, help, NULL, &f, NULL) == 0) \
		m.field = ing_metric_series(f, NULL);
#define COUNTER(field, name, help)                                   \
	if (ing_metrics_counter(r, name, help, NULL, &f, NULL) == 0) \
		m.field = ing_metric_series(f, NULL);
	GAUGE(term, "ingot_raft_term", "Current Raft term.")
	GAUGE(commit, "ingot_raft_commit_index", "Highest log index known committed.")
	GAUGE(applied, "ingot_raft_applied_index", "Highest log index applied to the store.")
	GAUGE(last, "ingot_raft_last_index", "Highest log index in this node's log.")
	GAUGE(leader, "ingot_raft_is_leader", "1 on the leader, 0 elsewhere.")
	GAUGE(alive, "ingot_members_alive",
	      "Members the leader heard from within two election timeouts (0 on followers).")
	COUNTER(leader_changes, "ingot_raft_leader_changes_total",
	        "Times this node saw the leader change (including to none).")
	COUNTER(snapshots, "ingot_raft_snapshots_total", "Raft snapshots taken by this node.")
	COUNTER(proposals, "ingot_raft_proposals_total",
	        "Commands this node handed to libraft as leader.")
	COUNTER(proposal_batches, "ingot_raft_proposal_batches_total",
	        "raft_apply calls carrying them (one per loop iteration with proposals).")
#undef GAUGE
#undef COUNTER
	if (ing_metrics_histogram(r, "ingot_raft_snapshot_duration_seconds",
	                          "Time to take a Raft snapshot (commit, copy, write).", NULL,
	                          snapshot_bounds, sizeof(snapshot_bounds) / sizeof(double), &f,
	                          NULL) == 0)
		m.snapshot_seconds = ing_metric_series(f, NULL);
	if (ing_metrics_histogram(r, "ingot_raft_append_duration_seconds",
	                          "Time to append a batch of entries to the log on disk (write "
	                          "and fsync).",
	                          NULL, append_bounds, sizeof(append_bounds) / sizeof(double), &f,
	                          NULL) == 0)
		m.append_seconds = ing_metric_series(f, NULL);
	if (ing_metrics_gauge(r, "ingot_members", "Members of the Raft configuration, by role.",
	                      role_label, &f, NULL) == 0) {
		for (int i = 0; i < 3; i++) {
			const char *v[] = {roles[i]};
			m.members[i] = ing_metric_series(f, v);
		}
	}
}

static void collect(void *data)
{
	struct cons *c = data;
	struct cons_status st;
	struct cons_member *members = NULL;
	unsigned n = 0, count[3] = {0, 0, 0}, alive = 0;
	cons_status(c, &st);
	ing_gauge_set(m.term, (double)st.term);
	ing_gauge_set(m.commit, (double)st.commit_index);
	ing_gauge_set(m.applied, (double)st.last_applied);
	ing_gauge_set(m.last, (double)st.last_index);
	bool leader = st.role == CONS_LEADER || st.role == CONS_LEADER_READY;
	ing_gauge_set(m.leader, leader ? 1 : 0);
	if (cons_members(c, &members, &n) == 0) {
		uint64_t window = 2u * (uint64_t)c->raft.election_timeout;
		for (unsigned i = 0; i < n; i++) {
			if (members[i].role <= CONS_SPARE)
				count[members[i].role]++;
			if (leader && members[i].contact_ago_ms <= window)
				alive++;
		}
		free(members);
	}
	for (int i = 0; i < 3; i++)
		ing_gauge_set(m.members[i], count[i]);
	ing_gauge_set(m.alive, alive);
}

/* ---- timed appends ------------------------------------------------------ */

#define MAX_TIMED 128

/* In-flight appends of every cons of the process (all on one loop). */
static struct {
	struct raft_io_append *req;
	raft_io_append_cb cb;
	uint64_t t0_ns;
} timed[MAX_TIMED];
static unsigned ntimed;

static void timed_append_done(struct raft_io_append *req, int status)
{
	raft_io_append_cb cb = NULL;
	for (unsigned i = 0; i < ntimed; i++) {
		if (timed[i].req == req) {
			cb = timed[i].cb;
			ing_histogram_observe(m.append_seconds,
			                      (double)(uv_hrtime() - timed[i].t0_ns) / 1e9);
			timed[i] = timed[--ntimed];
			break;
		}
	}
	if (cb != NULL)
		cb(req, status);
}

static int timed_append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
	struct cons *c = cons_of_io(io);
	if (ntimed == MAX_TIMED)
		return c->orig_append(io, req, entries, n, cb);
	unsigned i = ntimed++;
	timed[i].req = req;
	timed[i].cb = cb;
	timed[i].t0_ns = uv_hrtime();
	int rv = c->orig_append(io, req, entries, n, timed_append_done);
	if (rv != 0) {
		/* Not started: the callback will not run. */
		for (unsigned k = 0; k < ntimed; k++) {
			if (timed[k].req == req) {
				timed[k] = timed[--ntimed];
				break;
			}
		}
	}
	return rv;
}

/* ---- the interface of cons_internal.h ---------------------------------- */

void cons_metrics_start(struct cons *c)
{
	init();
	if (m.registry != NULL && ing_metrics_on_collect(m.registry, collect, c) == 0)
		c->metrics_registry = m.registry;
	c->orig_append = c->io.append;
	c->io.append = timed_append;
}

void cons_metrics_stop(struct cons *c)
{
	if (c->metrics_registry != NULL && c->metrics_registry == ing_metrics_default())
		ing_metrics_remove_collect(c->metrics_registry, collect, c);
	c->metrics_registry = NULL;
}

void cons_metrics_leader_changed(void)
{
	ing_counter_inc(m.leader_changes);
}

void cons_metrics_batch(unsigned n)
{
	ing_counter_add(m.proposals, (double)n);
	ing_counter_inc(m.proposal_batches);
}

void cons_metrics_snapshot(double seconds)
{
	ing_counter_inc(m.snapshots);
	ing_histogram_observe(m.snapshot_seconds, seconds);
}
