/*
 * metrics.h - counters, gauges and histograms with labels, rendered in
 * Prometheus' text exposition format (version 0.0.4) for GET /metrics.
 *
 * A registry holds families (a name, a help text, a kind and label names);
 * a family holds series, one per combination of label values.  Hot paths
 * keep a `struct ing_series *` and update it: an addition for counters and
 * gauges, a binary search over the bounds and two additions for histograms;
 * no allocation, no lookup, no lock (everything runs on the node's loop; a
 * registry is not thread-safe).  Every update function takes NULL as "no
 * metrics here" and does nothing, so code runs the same without a registry.
 *
 * Present from the first scrape: a family without labels has its one series
 * from registration on; for labelled families the owner creates the series
 * it knows of up front (ing_metric_series), at zero.
 *
 * Names are checked at registration against what `promtool check metrics`
 * accepts: [a-zA-Z_:][a-zA-Z0-9_:]* names, counters ending in "_total",
 * [a-zA-Z_][a-zA-Z0-9_]* label names not starting with "__", no "le" label
 * on histograms, no name used by two different families.
 *
 * Numbers the owner already keeps (a term, a queue length, the store's map
 * size) are best read at scrape time: a collect callback runs before each
 * render and sets gauges through the owner's small getter functions.
 */
#ifndef INGOT_COMMON_METRICS_H
#define INGOT_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define ING_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define ING_METRICS_MAX_LABELS   4

struct ing_metrics;
struct ing_metric;
struct ing_series;

/* A fresh, empty registry.  ING_ENOMEM. */
int ing_metrics_new(struct ing_metrics **out);
/* Frees the registry, its families and series (every handle dies). */
void ing_metrics_free(struct ing_metrics *m);

/*
 * Registers a family.  `labels` is a NULL-terminated array of label names
 * (NULL: none; at most ING_METRICS_MAX_LABELS); help is one line of text.
 * Histogram `bounds` are the buckets' upper bounds, finite and strictly
 * increasing (the +Inf bucket is implied), nbounds >= 1.  Errors:
 * ING_EINVAL (a name or label name promtool would refuse, bad bounds),
 * ING_EEXIST (the name is taken by a family of another kind, labels or
 * bounds), ING_ENOMEM; e names the metric.  Registering the same family
 * again (same name, kind, labels, bounds) gives the same handle, so a
 * module that starts twice in one process just registers again.
 */
int ing_metrics_counter(struct ing_metrics *m, const char *name, const char *help,
                        const char *const *labels, struct ing_metric **out, struct ing_error *e);
int ing_metrics_gauge(struct ing_metrics *m, const char *name, const char *help,
                      const char *const *labels, struct ing_metric **out, struct ing_error *e);
int ing_metrics_histogram(struct ing_metrics *m, const char *name, const char *help,
                          const char *const *labels, const double *bounds, size_t nbounds,
                          struct ing_metric **out, struct ing_error *e);

/*
 * The series of `f` for label values `values` (as many as the family has
 * labels, in their order; NULL when it has none), created at zero the first
 * time.  The handle lives as long as the registry.  NULL when f is NULL, on
 * ING_ENOMEM, or when values is NULL for a labelled family.  Values are any
 * text (escaped at render; invalid UTF-8 bytes become '?').  This looks the
 * series up (a hash of the values): keep the handle on hot paths.
 */
struct ing_series *ing_metric_series(struct ing_metric *f, const char *const *values);

/* Updates; s may be NULL (nothing happens). */
void ing_counter_add(struct ing_series *s, double v); /* v >= 0; a negative v is ignored */
void ing_counter_inc(struct ing_series *s);
void ing_gauge_set(struct ing_series *s, double v);
void ing_gauge_add(struct ing_series *s, double v);
void ing_histogram_observe(struct ing_series *s, double v);
/* Current value of a counter or gauge (0 for NULL); for tests and getters. */
double ing_series_value(const struct ing_series *s);
/* Observations so far of a histogram series (0 for NULL). */
uint64_t ing_series_count(const struct ing_series *s);

/*
 * Registers cb(data) to run at the start of every render (to set gauges
 * from their owners).  ING_ENOMEM.  ing_metrics_remove_collect removes the
 * first registration with the same cb and data (an owner that goes away
 * must remove its callback).
 */
int ing_metrics_on_collect(struct ing_metrics *m, void (*cb)(void *data), void *data);
void ing_metrics_remove_collect(struct ing_metrics *m, void (*cb)(void *data), void *data);

/*
 * Runs the collect callbacks, then appends every family in registration
 * order, series in creation order, as exposition text to b.  0 or
 * ING_ENOMEM (b then holds a partial text).
 */
int ing_metrics_render(struct ing_metrics *m, struct ing_buf *b);

/*
 * The process's registry, created on first use (NULL if that allocation
 * fails): one node per process, so modules that own numbers register their
 * families here.  ing_metrics_default_free releases it (at exit, for leak
 * checkers); a later ing_metrics_default makes a new one.
 */
struct ing_metrics *ing_metrics_default(void);
void ing_metrics_default_free(void);

#endif
