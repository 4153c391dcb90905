/*
 * bus.c - the node's notifications, in the order bus.h documents.  Plain
 * calls, one function per event, so the order is read here and nowhere
 * else.
 */
#include "node/bus.h"

#include "node/api/api.h"
#include "node/backup/backup.h"
#include "node/http/http.h"
#include "node/http/metrics.h"
#include "node/leader/deadline.h"
#include "node/leader/heal.h"
#include "node/leader/liveness.h"
#include "node/leader/retention.h"
#include "node/leader/scheduler.h"
#include "node/member/member.h"
#include "node/sm/cmd.h"
#include "node/worker/heartbeat.h"
#include "node/worker/worker.h"
#include "storage/store.h"

void bus_applied(struct node *n, const struct bus_applied *a)
{
	if (a->code == 0)
		sched_note(node_sched(n), a->cmd_type, a->submitted_job, a->released);
	if (a->job != 0 && a->deadline_at_ms != 0 && node_is_ready_leader(n))
		deadlines_note(node_deadlines(n), a->job, a->deadline_at_ms);
	worker_note_applied(node_worker(n));
	metrics_applied(node_metrics(n), a->result);
}

void bus_restored(struct node *n)
{
	metrics_recount(node_metrics(n));
}

void bus_committed(struct node *n)
{
	worker_note_committed(node_worker(n));
}

void bus_flushed(struct node *n)
{
	api_flushed(node_api(n));
	worker_flushed(node_worker(n));
	sched_run(node_sched(n), n);
}

void bus_role_changed(struct node *n, uint64_t previous_leader, bool became_ready)
{
	member_role_changed(node_member(n), previous_leader, node_leader_id(n));
	if (became_ready) {
		liveness_leader(node_liveness(n), node_now_ms());
		deadlines_leader(node_deadlines(n));
		sched_leader(node_sched(n));
		node_flush(n);
		member_leader_ready(node_member(n));
	}
	api_role_changed(node_api(n));
}

void bus_heartbeat_tick(struct node *n)
{
	heartbeat_tick(node_heartbeat(n));
	if (node_is_ready_leader(n)) {
		liveness_tick(node_liveness(n), n);
		deadlines_tick(node_deadlines(n), n);
		retention_tick(node_retention(n), n);
	}
}

void bus_heard(struct node *n, uint64_t id)
{
	uint64_t now = node_now_ms();
	uint64_t before = liveness_seen(node_liveness(n), id, now);
	if (before == 0 || now - before > node_cfg(n)->node_down_after_ms)
		sched_node_heard(node_sched(n));
}

void bus_member_tick(struct node *n)
{
	if (member_transfer_tick(node_member(n)))
		return;
	if (node_is_ready_leader(n)) {
		if (!member_change_tick(node_member(n)))
			heal_tick(n);
	} else {
		member_removal_check(node_member(n));
	}
}

void bus_stopping(struct node *n)
{
	struct store *st = node_store(n);

	/* A node whose start failed may lack the modules made last. */
	if (node_api(n) != NULL)
		api_stop(node_api(n));
	if (st != NULL && store_failed(st) == 0)
		store_batch_flush(st);
	worker_stop_all(node_worker(n));
	if (node_member(n) != NULL)
		member_stop(node_member(n));
	if (node_api(n) != NULL)
		api_close(node_api(n));
	if (node_backup(n) != NULL)
		backup_stop(node_backup(n));
	if (node_http(n) != NULL)
		http_stop(node_http(n));
}
