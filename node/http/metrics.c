/*
 * metrics.c - the node's own metric families (see metrics.h).
 *
 *   ingot_api_requests_total{op,code}       every reply of every operation
 *                                           (msgpack and HTTP alike); op is
 *                                           one of the op table's or "other"
 *   ingot_api_request_duration_seconds{op}  from arrival to reply
 *   ingot_jobs{state}                       jobs in the store by state
 *   ingot_jobs_submitted_total{target,tenant}
 *   ingot_jobs_finished_total{target,tenant,outcome}
 *   ingot_job_queue_duration_seconds        queued -> assigned (or running), at apply
 *   ingot_job_stage_duration_seconds        each finished stage
 *   ingot_worker_attempts_lost_total        attempts requeued (lost)
 *   ingot_worker_slots, ingot_worker_slots_busy   this node's worker
 *   ingot_worker_attempts_waiting           assigned here, waiting for a slot
 *   ingot_scheduler_assignments_total       proposed by this node as leader
 *   ingot_scheduler_placement_duration_seconds   queued -> assignment proposed
 *   ingot_scheduler_unplaceable_jobs{reason}     queued jobs the leader could
 *                                           not place, by reason (0 elsewhere)
 *   ingot_http_connections                  open HTTP connections
 *   ingot_api_auth_refusals_total{reason}   requests refused by authentication
 *                                           or permission on this node:
 *                                           unauthenticated, permission_denied,
 *                                           rate_limited (node/api/auth.c keeps
 *                                           them per principal and address too,
 *                                           in its log and api_refusals())
 *   ingot_tls_not_after_seconds{cert}       when the node's certificate
 *                                           (cert="node") and the first of
 *                                           its CA file (cert="ca") end,
 *                                           Unix seconds (0 without tls)
 *
 * The job families follow the applied commands (sm_result's job changes),
 * so every node of the cluster reports the same counts; they start from the
 * counts the store keeps (meta jobs_<state>, sm_job_counts: six reads, not
 * a scan of the jobs) at start and again after a snapshot replaced the
 * store (or when one apply changed more jobs than sm_result can list).
 * Labels from the cluster (target, tenant) are names the state machine
 * validated, and operations outside the op table count as "other", so the
 * series stay bounded.
 */
#include "node/http/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "node/api/api.h"
#include "node/http/http.h"
#include "node/leader/placement.h"
#include "node/leader/scheduler.h"
#include "node/sm/sm.h"
#include "node/worker/worker.h"
#include "rpc/server.h"
#include "storage/records.h"
#include "storage/store.h"

static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double wait_bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
static const double stage_bounds[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400};

#define MAX_OPS 64

struct metrics {
	struct node *n;
	struct ing_metrics *registry;
	struct ing_metric *requests, *submitted, *finished;
	struct ing_series *requests_ok[MAX_OPS + 1]; /* last: "other" */
	struct ing_series *duration[MAX_OPS + 1];
	struct ing_series *jobs[REC_JOB_STATE_COUNT];
	struct ing_series *queue_seconds, *stage_seconds, *lost;
	struct ing_series *slots, *slots_busy, *waiting, *assignments, *placement_seconds;
	struct ing_series *unplaceable[PLACE_WAIT_COUNT];
	struct ing_series *http_connections;
	struct ing_series *refusals[API_REFUSAL_KINDS];
	uint64_t refusals_seen[API_REFUSAL_KINDS]; /* published so far */
	struct ing_series *tls_not_after[2];       /* node, ca */
	uint64_t counts[REC_JOB_STATE_COUNT];
	/* The submitted series of the last submit's target and tenant: a
	 * stream of submits mostly repeats them (no lookup then). */
	char submit_target[ING_NAME_MAX + 1], submit_tenant[ING_NAME_MAX + 1];
	struct ing_series *submit_series;
};

/* The one node whose calls are counted (one node per process). */
static struct metrics *current;

static struct ing_series *series1(struct ing_metric *f, const char *v)
{
	const char *values[] = {v};
	return ing_metric_series(f, values);
}

static int family_gauge(struct metrics *m, const char *name, const char *help,
                        struct ing_series **out)
{
	struct ing_metric *f;
	int rv = ing_metrics_gauge(m->registry, name, help, NULL, &f, NULL);
	if (rv == 0)
		*out = ing_metric_series(f, NULL);
	return rv;
}

static int family_counter(struct metrics *m, const char *name, const char *help,
                          struct ing_series **out)
{
	struct ing_metric *f;
	int rv = ing_metrics_counter(m->registry, name, help, NULL, &f, NULL);
	if (rv == 0)
		*out = ing_metric_series(f, NULL);
	return rv;
}

static int family_histogram(struct metrics *m, const char *name, const char *help,
                            const double *bounds, size_t n, struct ing_series **out)
{
	struct ing_metric *f;
	int rv = ing_metrics_histogram(m->registry, name, help, NULL, bounds, n, &f, NULL);
	if (rv == 0)
		*out = ing_metric_series(f, NULL);
	return rv;
}

static int register_all(struct metrics *m)
{
	static const char *const op_code[] = {"op", "code", NULL};
	static const char *const op[] = {"op", NULL};
	static const char *const state[] = {"state", NULL};
	static const char *const target_tenant[] = {"target", "tenant", NULL};
	static const char *const finished[] = {"target", "tenant", "outcome", NULL};
	static const char *const reason[] = {"reason", NULL};
	struct ing_metric *f;
	int rv = ing_metrics_counter(m->registry, "ingot_api_requests_total",
	                             "API requests answered, by operation and error code.", op_code,
	                             &m->requests, NULL);
	if (rv != 0)
		return rv;
	rv = ing_metrics_histogram(m->registry, "ingot_api_request_duration_seconds",
	                           "Time from a request's arrival to its reply, by operation.", op,
	                           latency_bounds, sizeof(latency_bounds) / sizeof(double), &f,
	                           NULL);
	if (rv != 0)
		return rv;
	for (unsigned i = 0; i <= MAX_OPS; i++) {
		const char *name = i < MAX_OPS ? api_op_name(i) : NULL;
		unsigned slot = name != NULL ? i : MAX_OPS;
		if (name == NULL && i < MAX_OPS)
			continue;
		const char *v[] = {name != NULL ? name : "other", "ok"};
		m->requests_ok[slot] = ing_metric_series(m->requests, v);
		m->duration[slot] = series1(f, v[0]);
	}
	rv = ing_metrics_gauge(m->registry, "ingot_jobs", "Jobs in the store, by state.", state, &f,
	                       NULL);
	if (rv != 0)
		return rv;
	for (uint8_t s = 0; s < REC_JOB_STATE_COUNT; s++)
		m->jobs[s] = series1(f, rec_job_state_name(s));
	rv = ing_metrics_counter(m->registry, "ingot_jobs_submitted_total",
	                         "Jobs submitted, by target and tenant.", target_tenant,
	                         &m->submitted, NULL);
	if (rv == 0)
		rv = ing_metrics_counter(m->registry, "ingot_jobs_finished_total",
		                         "Jobs that reached a final state, by target, tenant and "
		                         "outcome.",
		                         finished, &m->finished, NULL);
	if (rv == 0)
		rv = family_histogram(m, "ingot_job_queue_duration_seconds",
		                      "Time jobs waited queued before an assignment.", wait_bounds,
		                      sizeof(wait_bounds) / sizeof(double), &m->queue_seconds);
	if (rv == 0)
		rv = family_histogram(m, "ingot_job_stage_duration_seconds",
		                      "Duration of finished stages.", stage_bounds,
		                      sizeof(stage_bounds) / sizeof(double), &m->stage_seconds);
	if (rv == 0)
		rv = family_counter(m, "ingot_worker_attempts_lost_total",
		                    "Attempts lost and requeued (node down, restart, lease).",
		                    &m->lost);
	if (rv == 0)
		rv = family_gauge(m, "ingot_worker_slots", "Attempts this node's worker may run.",
		                  &m->slots);
	if (rv == 0)
		rv = family_gauge(m, "ingot_worker_slots_busy",
		                  "Attempts this node's worker is running.", &m->slots_busy);
	if (rv == 0)
		rv = family_gauge(m, "ingot_worker_attempts_waiting",
		                  "Attempts assigned to this node that wait for a free slot.",
		                  &m->waiting);
	if (rv == 0)
		rv = family_counter(m, "ingot_scheduler_assignments_total",
		                    "Assignments this node proposed as leader.", &m->assignments);
	if (rv == 0)
		rv = family_histogram(m, "ingot_scheduler_placement_duration_seconds",
		                      "Time from a job being queued to its assignment being "
		                      "proposed.",
		                      wait_bounds, sizeof(wait_bounds) / sizeof(double),
		                      &m->placement_seconds);
	if (rv == 0)
		rv = ing_metrics_gauge(m->registry, "ingot_scheduler_unplaceable_jobs",
		                       "Queued jobs the leader could not place, by reason (0 on "
		                       "followers).",
		                       reason, &f, NULL);
	for (int i = 0; rv == 0 && i < PLACE_WAIT_COUNT; i++)
		m->unplaceable[i] = series1(f, place_wait_name(i));
	if (rv == 0)
		rv = family_gauge(m, "ingot_http_connections", "Open HTTP connections.",
		                  &m->http_connections);
	static const char *const why[] = {"reason", NULL};
	static const char *const why_names[API_REFUSAL_KINDS] = {
	    "unauthenticated", "permission_denied", "rate_limited"};
	if (rv == 0)
		rv = ing_metrics_counter(m->registry, "ingot_api_auth_refusals_total",
		                         "Requests this node refused: no or a bad credential, "
		                         "a missing role, over the rate limit.",
		                         why, &f, NULL);
	for (int i = 0; rv == 0 && i < API_REFUSAL_KINDS; i++)
		m->refusals[i] = series1(f, why_names[i]);
	if (rv == 0) {
		static const char *const cert[] = {"cert", NULL};
		rv = ing_metrics_gauge(
		    m->registry, "ingot_tls_not_after_seconds",
		    "When the node's TLS certificate (cert=node) and the first "
		    "certificate of its CA file (cert=ca) end, in Unix seconds; 0 "
		    "without tls.",
		    cert, &f, NULL);
	}
	if (rv == 0) {
		m->tls_not_after[0] = series1(f, "node");
		m->tls_not_after[1] = series1(f, "ca");
	}
	return rv;
}

/* ---- job counts --------------------------------------------------------- */

static void publish_counts(struct metrics *m)
{
	for (int s = 0; s < REC_JOB_STATE_COUNT; s++)
		ing_gauge_set(m->jobs[s], (double)m->counts[s]);
}

void metrics_recount(struct metrics *m)
{
	struct store_txn *t;
	if (m == NULL || store_read_begin(node_store(m->n), &t) != 0)
		return;
	uint64_t counts[REC_JOB_STATE_COUNT];
	if (sm_job_counts(t, counts) == 0)
		memcpy(m->counts, counts, sizeof(m->counts));
	store_abort(t);
	publish_counts(m);
}

void metrics_applied(struct metrics *m, const struct sm_result *res)
{
	if (m == NULL || res == NULL)
		return;
	if (res->changes_lost) {
		metrics_recount(m);
	} else {
		for (unsigned i = 0; i < res->nchanges; i++) {
			const struct sm_job_change *ch = &res->changes[i];
			if (ch->from != SM_JOB_NEW && ch->from < REC_JOB_STATE_COUNT &&
			    m->counts[ch->from] > 0)
				m->counts[ch->from]--;
			if (ch->to < REC_JOB_STATE_COUNT)
				m->counts[ch->to]++;
		}
		for (int s = 0; s < REC_JOB_STATE_COUNT; s++)
			m->counts[s] -=
			    res->removed[s] < m->counts[s] ? res->removed[s] : m->counts[s];
		publish_counts(m);
	}
	for (unsigned i = 0; i < res->nchanges; i++) {
		const struct sm_job_change *ch = &res->changes[i];
		if (ch->from == SM_JOB_NEW) {
			if (m->submit_series == NULL || strcmp(m->submit_target, ch->target) != 0 ||
			    strcmp(m->submit_tenant, ch->tenant) != 0) {
				const char *v[] = {ch->target, ch->tenant};
				m->submit_series = ing_metric_series(m->submitted, v);
				snprintf(m->submit_target, sizeof(m->submit_target), "%s",
				         ch->target);
				snprintf(m->submit_tenant, sizeof(m->submit_tenant), "%s",
				         ch->tenant);
			}
			ing_counter_inc(m->submit_series);
		}
		if (rec_job_state_final(ch->to)) {
			const char *v[] = {ch->target, ch->tenant, rec_job_state_name(ch->to)};
			ing_counter_inc(ing_metric_series(m->finished, v));
		}
		/* An assignment: to running when it also started stage 0. */
		if (ch->from == REC_JOB_QUEUED &&
		    (ch->to == REC_JOB_ASSIGNED || ch->to == REC_JOB_RUNNING) &&
		    res->time_ms >= ch->since_ms)
			ing_histogram_observe(m->queue_seconds,
			                      (double)(res->time_ms - ch->since_ms) / 1e3);
		if ((ch->from == REC_JOB_ASSIGNED || ch->from == REC_JOB_RUNNING) &&
		    ch->to == REC_JOB_QUEUED)
			ing_counter_inc(m->lost);
	}
	if (res->stage_finished)
		ing_histogram_observe(m->stage_seconds, (double)res->stage_duration_ms / 1e3);
}

/* ---- calls, the scheduler, scrape time ---------------------------------- */

static void on_call_replied(void *data, struct ing_str op, int code, uint64_t elapsed_ns)
{
	struct metrics *m = current;
	(void)data;
	if (m == NULL)
		return;
	int i = api_op_index(op);
	unsigned slot = i >= 0 && i < MAX_OPS ? (unsigned)i : MAX_OPS;
	ing_histogram_observe(m->duration[slot], (double)elapsed_ns / 1e9);
	if (code == 0) {
		ing_counter_inc(m->requests_ok[slot]);
		return;
	}
	const char *v[] = {slot < MAX_OPS ? api_op_name(slot) : "other", ing_err_name(code)};
	ing_counter_inc(ing_metric_series(m->requests, v));
}

void metrics_observe_call(struct metrics *m, struct rpc_call *call)
{
	if (m != NULL && current == m)
		rpc_call_observe(call, on_call_replied, NULL);
}

void metrics_assigned(struct metrics *m, uint64_t queued_ms, uint64_t now_ms)
{
	if (m == NULL)
		return;
	ing_counter_inc(m->assignments);
	if (now_ms >= queued_ms)
		ing_histogram_observe(m->placement_seconds, (double)(now_ms - queued_ms) / 1e3);
}

/* The ready leader's unplaceable jobs by reason; all 0 on other nodes. */
static void unplaceable(struct node *n, unsigned counts[PLACE_WAIT_COUNT])
{
	struct store_txn *t;
	memset(counts, 0, PLACE_WAIT_COUNT * sizeof(*counts));
	if (!node_is_ready_leader(n) || store_read_begin(node_store(n), &t) != 0)
		return;
	sched_unplaceable(node_sched(n), t, counts);
	store_abort(t);
}

static void collect(void *data)
{
	struct metrics *m = data;
	struct node *n = m->n;
	unsigned counts[PLACE_WAIT_COUNT];
	ing_gauge_set(m->slots, node_cfg(n)->slots);
	ing_gauge_set(m->slots_busy, worker_busy(node_worker(n)));
	ing_gauge_set(m->waiting, worker_waiting(node_worker(n)));
	unplaceable(n, counts);
	for (int i = 0; i < PLACE_WAIT_COUNT; i++)
		ing_gauge_set(m->unplaceable[i], counts[i]);
	ing_gauge_set(m->http_connections, http_connections(node_http(n)));
	uint64_t refused[API_REFUSAL_KINDS];
	api_refusal_totals(node_api(n), refused);
	for (int i = 0; i < API_REFUSAL_KINDS; i++) {
		ing_counter_add(m->refusals[i], (double)(refused[i] - m->refusals_seen[i]));
		m->refusals_seen[i] = refused[i];
	}
	if (node_tls(n) != NULL) {
		int64_t cert, ca;
		ing_tls_not_after(node_tls(n), &cert, &ca);
		ing_gauge_set(m->tls_not_after[0], (double)cert);
		ing_gauge_set(m->tls_not_after[1], (double)ca);
	}
}

int metrics_new(struct node *n, struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return ING_ENOMEM;
	m->n = n;
	m->registry = ing_metrics_default();
	int rv = m->registry != NULL ? register_all(m) : ING_ENOMEM;
	if (rv == 0)
		rv = ing_metrics_on_collect(m->registry, collect, m);
	if (rv != 0) {
		ING_LOG_ERROR("metrics could not be registered error=%s", ing_err_name(rv));
		free(m);
		return rv;
	}
	current = m;
	store_metrics_attach(node_store(n));
	metrics_recount(m);
	*out = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (m->registry == ing_metrics_default())
		ing_metrics_remove_collect(m->registry, collect, m);
	if (current == m)
		current = NULL;
	free(m);
}
