/*
 * metrics.c - the store's metrics (docs/operations.md "Metrics"), in the
 * process registry (common/metrics.h): commits of write transactions and
 * their duration (LMDB's commit, fsync included), counted by every store;
 * the map's size and the bytes in use (pages up to the last one written),
 * read at scrape time for the store a node attached (store_metrics_attach).
 */
#include <string.h>

#include "common/metrics.h"
#include "storage/store_internal.h"

static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    2.5};

static struct {
	struct ing_metrics *registry;
	struct ing_series *commits, *commit_seconds, *map_size, *map_used;
} m;

static void init(void)
{
	struct ing_metrics *r = ing_metrics_default();
	struct ing_metric *f;
	if (r == NULL || r == m.registry)
		return;
	memset(&m, 0, sizeof(m));
	m.registry = r;
	if (ing_metrics_counter(r, "ingot_storage_commits_total",
	                        "Write transactions committed to the store.", NULL, &f, NULL) == 0)
		m.commits = ing_metric_series(f, NULL);
	if (ing_metrics_histogram(r, "ingot_storage_commit_duration_seconds",
	                          "Time to commit a write transaction (fsync included).", NULL,
	                          commit_bounds, sizeof(commit_bounds) / sizeof(double), &f,
	                          NULL) == 0)
		m.commit_seconds = ing_metric_series(f, NULL);
	if (ing_metrics_gauge(r, "ingot_storage_map_size_bytes",
	                      "Size of the store's memory map (its ceiling).", NULL, &f, NULL) == 0)
		m.map_size = ing_metric_series(f, NULL);
	if (ing_metrics_gauge(r, "ingot_storage_map_used_bytes", "Bytes of the store's map in use.",
	                      NULL, &f, NULL) == 0)
		m.map_used = ing_metric_series(f, NULL);
}

void store_metrics_commit(uint64_t elapsed_ns)
{
	if (m.registry == NULL)
		init();
	ing_counter_inc(m.commits);
	ing_histogram_observe(m.commit_seconds, (double)elapsed_ns / 1e9);
}

static void collect(void *data)
{
	struct store *s = data;
	MDB_envinfo info;
	MDB_stat st;
	if (s->env == NULL || mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
		return;
	ing_gauge_set(m.map_size, (double)info.me_mapsize);
	ing_gauge_set(m.map_used, (double)(info.me_last_pgno + 1) * st.ms_psize);
}

void store_metrics_attach(struct store *s)
{
	init();
	if (m.registry != NULL && !s->metrics_attached &&
	    ing_metrics_on_collect(m.registry, collect, s) == 0)
		s->metrics_attached = true;
}

void store_metrics_detach(struct store *s)
{
	if (s->metrics_attached && m.registry == ing_metrics_default())
		ing_metrics_remove_collect(m.registry, collect, s);
	s->metrics_attached = false;
}
