/*
 * test_metrics.c - the metrics registry (common/metrics): registration
 * checks, updates of every kind, series lookup by label values, collect
 * callbacks, the exact exposition text of a small registry, and a rendered
 * registry of every kind checked by Prometheus' own `promtool check
 * metrics` (Debian package prometheus; skipped with a message when promtool
 * is not installed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/metrics.h"
#include "tests/lib/testutil.h"

static const char *const no_labels[] = {NULL};

static void test_registration_checks(void **state)
{
	(void)state;
	struct ing_metrics *m;
	struct ing_metric *f;
	struct ing_error e;
	assert_int_equal(ing_metrics_new(&m), 0);
	const char *const one[] = {"op", NULL};
	const char *const dup[] = {"op", "op", NULL};
	const char *const reserved[] = {"__x", NULL};
	const char *const le[] = {"le", NULL};
	const char *const bad[] = {"a-b", NULL};
	const char *const five[] = {"a", "b", "c", "d", "e", NULL};
	double bounds[] = {0.1, 1};
	double unsorted[] = {1, 0.1};

	assert_int_equal(ing_metrics_counter(m, "9lives_total", "h", NULL, &f, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "9lives_total"));
	assert_int_equal(ing_metrics_counter(m, "requests", "h", NULL, &f, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "_total"));
	assert_int_equal(ing_metrics_gauge(m, "things_total", "h", NULL, &f, &e), ING_EINVAL);
	assert_int_equal(ing_metrics_gauge(m, "things", "", NULL, &f, &e), ING_EINVAL);
	assert_int_equal(ing_metrics_gauge(m, "things", "h", dup, &f, &e), ING_EINVAL);
	assert_int_equal(ing_metrics_gauge(m, "things", "h", reserved, &f, &e), ING_EINVAL);
	assert_int_equal(ing_metrics_gauge(m, "things", "h", bad, &f, &e), ING_EINVAL);
	assert_int_equal(ing_metrics_gauge(m, "things", "h", five, &f, &e), ING_EINVAL);
	assert_int_equal(ing_metrics_histogram(m, "lat_seconds", "h", le, bounds, 2, &f, &e),
	                 ING_EINVAL);
	assert_int_equal(ing_metrics_histogram(m, "lat_seconds", "h", NULL, unsorted, 2, &f, &e),
	                 ING_EINVAL);
	assert_int_equal(ing_metrics_histogram(m, "lat_seconds", "h", NULL, bounds, 0, &f, &e),
	                 ING_EINVAL);
	assert_int_equal(ing_metrics_gauge(m, "ns:things", "h", one, &f, &e), 0);
	struct ing_metric *again;
	assert_int_equal(ing_metrics_gauge(m, "ns:things", "h", one, &again, &e), 0);
	assert_ptr_equal(again, f); /* the same family: the same handle */
	assert_int_equal(ing_metrics_gauge(m, "ns:things", "h", NULL, &f, &e), ING_EEXIST);
	assert_int_equal(ing_metrics_counter(m, "ns:things", "h", one, &f, &e), ING_EINVAL);
	assert_int_equal(ing_metrics_histogram(m, "lat_seconds", "h", NULL, bounds, 2, &f, &e), 0);
	assert_int_equal(ing_metrics_histogram(m, "lat_seconds", "h", NULL, bounds, 1, &f, &e),
	                 ING_EEXIST);
	ing_metrics_free(m);
}

static void test_updates_and_series(void **state)
{
	(void)state;
	struct ing_metrics *m;
	struct ing_metric *c, *g, *h;
	assert_int_equal(ing_metrics_new(&m), 0);
	const char *const labels[] = {"op", "code", NULL};
	double bounds[] = {0.001, 0.01, 0.1};
	assert_int_equal(ing_metrics_counter(m, "req_total", "r", labels, &c, NULL), 0);
	assert_int_equal(ing_metrics_gauge(m, "depth", "d", no_labels, &g, NULL), 0);
	assert_int_equal(ing_metrics_histogram(m, "lat_seconds", "l", NULL, bounds, 3, &h, NULL),
	                 0);

	const char *const v1[] = {"job.submit", "ok"};
	const char *const v2[] = {"job.submit", "not_found"};
	struct ing_series *s1 = ing_metric_series(c, v1);
	struct ing_series *s2 = ing_metric_series(c, v2);
	assert_non_null(s1);
	assert_ptr_not_equal(s1, s2);
	assert_ptr_equal(ing_metric_series(c, v1), s1);
	assert_null(ing_metric_series(c, NULL)); /* labelled: values needed */
	assert_null(ing_metric_series(NULL, v1));
	ing_counter_inc(s1);
	ing_counter_add(s1, 2.5);
	ing_counter_add(s1, -7); /* ignored */
	assert_true(ing_series_value(s1) == 3.5);
	assert_true(ing_series_value(s2) == 0);

	struct ing_series *gs = ing_metric_series(g, NULL);
	ing_gauge_set(gs, 10);
	ing_gauge_add(gs, -3);
	assert_true(ing_series_value(gs) == 7);

	struct ing_series *hs = ing_metric_series(h, NULL);
	ing_histogram_observe(hs, 0.001); /* on a bound: that bucket */
	ing_histogram_observe(hs, 0.05);
	ing_histogram_observe(hs, 5);
	assert_int_equal(ing_series_count(hs), 3);

	/* NULL handles are "no metrics": nothing happens. */
	ing_counter_inc(NULL);
	ing_gauge_set(NULL, 1);
	ing_histogram_observe(NULL, 1);
	assert_true(ing_series_value(NULL) == 0);

	/* Many series: the table grows and every lookup finds its own. */
	struct ing_series *many[1000];
	for (int i = 0; i < 1000; i++) {
		char op[16];
		snprintf(op, sizeof(op), "op%d", i);
		const char *const v[] = {op, "ok"};
		many[i] = ing_metric_series(c, v);
		assert_non_null(many[i]);
		ing_counter_add(many[i], i);
	}
	for (int i = 0; i < 1000; i++) {
		char op[16];
		snprintf(op, sizeof(op), "op%d", i);
		const char *const v[] = {op, "ok"};
		assert_ptr_equal(ing_metric_series(c, v), many[i]);
		assert_true(ing_series_value(many[i]) == i);
	}
	ing_metrics_free(m);
}

static int collects;

static void on_collect(void *data)
{
	collects++;
	ing_gauge_set(data, 42);
}

static void test_exposition_text(void **state)
{
	(void)state;
	struct ing_metrics *m;
	struct ing_metric *c, *g, *h, *empty;
	assert_int_equal(ing_metrics_new(&m), 0);
	const char *const labels[] = {"op", NULL};
	double bounds[] = {0.005, 0.25, 1};
	assert_int_equal(ing_metrics_counter(m, "ingot_api_requests_total",
	                                     "API requests \\ by op\nsecond line", labels, &c,
	                                     NULL),
	                 0);
	assert_int_equal(ing_metrics_gauge(m, "ingot_raft_term", "The term.", NULL, &g, NULL), 0);
	assert_int_equal(ing_metrics_histogram(m, "ingot_latency_seconds", "Latency.", labels,
	                                       bounds, 3, &h, NULL),
	                 0);
	assert_int_equal(
	    ing_metrics_gauge(m, "ingot_empty", "No series yet.", labels, &empty, NULL), 0);
	const char *const weird[] = {"a\"b\\c\nd\xff"};
	const char *const get[] = {"get"};
	ing_counter_add(ing_metric_series(c, weird), 3);
	ing_counter_add(ing_metric_series(c, get), 1234567);
	struct ing_series *term = ing_metric_series(g, NULL);
	assert_int_equal(ing_metrics_on_collect(m, on_collect, term), 0);
	struct ing_series *lat = ing_metric_series(h, get);
	ing_histogram_observe(lat, 0.001);
	ing_histogram_observe(lat, 0.3);
	ing_histogram_observe(lat, 0.3);
	ing_histogram_observe(lat, 7);

	struct ing_buf b = ING_BUF_INIT;
	collects = 0;
	assert_int_equal(ing_metrics_render(m, &b), 0);
	assert_int_equal(collects, 1);
	const char *want = "# HELP ingot_api_requests_total API requests \\\\ by op\\nsecond line\n"
	                   "# TYPE ingot_api_requests_total counter\n"
	                   "ingot_api_requests_total{op=\"a\\\"b\\\\c\\nd?\"} 3\n"
	                   "ingot_api_requests_total{op=\"get\"} 1234567\n"
	                   "# HELP ingot_raft_term The term.\n"
	                   "# TYPE ingot_raft_term gauge\n"
	                   "ingot_raft_term 42\n"
	                   "# HELP ingot_latency_seconds Latency.\n"
	                   "# TYPE ingot_latency_seconds histogram\n"
	                   "ingot_latency_seconds_bucket{op=\"get\",le=\"0.005\"} 1\n"
	                   "ingot_latency_seconds_bucket{op=\"get\",le=\"0.25\"} 1\n"
	                   "ingot_latency_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
	                   "ingot_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
	                   "ingot_latency_seconds_sum{op=\"get\"} 7.601\n"
	                   "ingot_latency_seconds_count{op=\"get\"} 4\n"
	                   "# HELP ingot_empty No series yet.\n"
	                   "# TYPE ingot_empty gauge\n";
	assert_string_equal(b.data, want);

	ing_metrics_remove_collect(m, on_collect, term);
	ing_buf_reset(&b);
	assert_int_equal(ing_metrics_render(m, &b), 0);
	assert_int_equal(collects, 1);
	ing_buf_free(&b);
	ing_metrics_free(m);
}

static bool promtool_found(void)
{
	return system("command -v promtool >/dev/null 2>&1") == 0;
}

static void test_promtool_accepts_the_text(void **state)
{
	(void)state;
	if (!promtool_found()) {
		fprintf(stderr, "test_metrics: promtool not installed (Debian package prometheus): "
		                "skipping the promtool check\n");
		skip();
	}
	struct ing_metrics *m;
	struct ing_metric *c, *g, *h, *h0;
	assert_int_equal(ing_metrics_new(&m), 0);
	const char *const labels[] = {"op", "code", NULL};
	double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
	assert_int_equal(
	    ing_metrics_counter(m, "ingot_api_requests_total", "API requests.", labels, &c, NULL),
	    0);
	assert_int_equal(
	    ing_metrics_gauge(m, "ingot_raft_commit_index", "Commit index.", NULL, &g, NULL), 0);
	assert_int_equal(ing_metrics_histogram(m, "ingot_api_request_duration_seconds",
	                                       "Request latency.", labels, bounds, 12, &h, NULL),
	                 0);
	assert_int_equal(ing_metrics_histogram(m, "ingot_raft_fsync_duration_seconds",
	                                       "Fsync latency.", NULL, bounds, 12, &h0, NULL),
	                 0);
	const char *const v[] = {"job.submit", "ok"};
	const char *const w[] = {"job \"get\"\\\n", "not_found"};
	ing_counter_inc(ing_metric_series(c, v));
	ing_counter_inc(ing_metric_series(c, w));
	ing_gauge_set(ing_metric_series(g, NULL), 1e20);
	ing_histogram_observe(ing_metric_series(h, v), 0.0031);
	ing_histogram_observe(ing_metric_series(h, w), 1e9);

	struct ing_buf b = ING_BUF_INIT;
	assert_int_equal(ing_metrics_render(m, &b), 0);
	char dir[256], path[300], cmd[700];
	tu_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/metrics.txt", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fwrite(b.data, 1, b.len, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s/out.txt 2>&1", path, dir);
	int rc = system(cmd);
	if (rc != 0) {
		snprintf(cmd, sizeof(cmd), "cat %s/out.txt >&2", dir);
		(void)system(cmd);
	}
	assert_int_equal(rc, 0);

	/* promtool fails on text it finds wrong: the check can fail. */
	f = fopen(path, "w");
	fputs("# TYPE bad_total counter\nbad_total{x=\"1\"} notanumber\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > /dev/null 2>&1", path);
	assert_int_not_equal(system(cmd), 0);
	tu_rmrf(dir);
	ing_buf_free(&b);
	ing_metrics_free(m);
}

static void test_default_registry(void **state)
{
	(void)state;
	struct ing_metrics *d = ing_metrics_default();
	assert_non_null(d);
	assert_ptr_equal(ing_metrics_default(), d);
	struct ing_metric *f;
	assert_int_equal(ing_metrics_gauge(d, "x", "x", NULL, &f, NULL), 0);
	ing_metrics_default_free();
	d = ing_metrics_default();
	assert_int_equal(ing_metrics_gauge(d, "x", "x", NULL, &f, NULL), 0); /* a new one */
	ing_metrics_default_free();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_registration_checks),
	    cmocka_unit_test(test_updates_and_series),
	    cmocka_unit_test(test_exposition_text),
	    cmocka_unit_test(test_promtool_accepts_the_text),
	    cmocka_unit_test(test_default_registry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
