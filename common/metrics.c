/*
 * metrics.c - the metrics registry and its Prometheus text rendering (see
 * metrics.h).
 *
 * Layout: a registry keeps its families in a list (registration order); a
 * family keeps its series in a list (creation order, the render order) and
 * in an open-addressing hash table keyed by an FNV-1a hash of the label
 * values, for ing_metric_series.  A series holds its label values (copied,
 * cleaned to UTF-8), one double (counter, gauge; a histogram's sum) and,
 * for histograms, a count and non-cumulative bucket counts (nbounds + 1,
 * the last for +Inf), made cumulative at render.
 *
 * Rendering follows the text exposition format 0.0.4: "# HELP" and "# TYPE"
 * lines for every family (also one with no series yet), then one line per
 * sample; label values escape '\\', '"' and newlines; HELP escapes '\\'
 * and newlines; numbers print exactly when integral, else in the shortest
 * form that reads back to the same double, and as +Inf, -Inf, NaN.
 *
 * Failure: only allocation fails (registration and first use of a series);
 * updates never fail.
 */
#include "common/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

#define MAX_LABEL_VALUE_BYTES 256

enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct ing_series {
	struct ing_metric *family;
	struct ing_series *next;
	char *values[ING_METRICS_MAX_LABELS];
	uint64_t hash;
	double value; /* counter, gauge; histogram: sum */
	uint64_t count;
	uint64_t *buckets;
};

struct ing_metric {
	struct ing_metric *next;
	enum kind kind;
	char *name;
	char *help;
	char *labels[ING_METRICS_MAX_LABELS];
	unsigned nlabels;
	double *bounds;
	size_t nbounds;
	char (*le)[40]; /* the bounds as text, formatted once */
	struct ing_series *series;
	struct ing_series **series_tail;
	struct ing_series **table;
	size_t table_cap; /* a power of two, or 0 */
	size_t nseries;
};

struct collect {
	void (*cb)(void *data);
	void *data;
};

struct ing_metrics {
	struct ing_metric *families;
	struct ing_metric **tail;
	struct collect *collects;
	size_t ncollects, collects_cap;
};

static struct ing_metrics *default_registry;

/* ---- names ------------------------------------------------------------- */

static bool name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (c == ':' && colon)
		return true;
	return !first && c >= '0' && c <= '9';
}

static bool name_ok(const char *s, bool colon)
{
	if (s == NULL || s[0] == '\0')
		return false;
	for (size_t i = 0; s[i] != '\0'; i++)
		if (!name_char(s[i], i == 0, colon))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- registry ---------------------------------------------------------- */

int ing_metrics_new(struct ing_metrics **out)
{
	struct ing_metrics *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return ING_ENOMEM;
	m->tail = &m->families;
	*out = m;
	return 0;
}

static void series_free(struct ing_series *s)
{
	for (unsigned i = 0; i < ING_METRICS_MAX_LABELS; i++)
		free(s->values[i]);
	free(s->buckets);
	free(s);
}

static void family_free(struct ing_metric *f)
{
	struct ing_series *s = f->series;
	while (s != NULL) {
		struct ing_series *next = s->next;
		series_free(s);
		s = next;
	}
	for (unsigned i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->table);
	free(f->bounds);
	free(f->le);
	free(f->name);
	free(f->help);
	free(f);
}

void ing_metrics_free(struct ing_metrics *m)
{
	if (m == NULL)
		return;
	struct ing_metric *f = m->families;
	while (f != NULL) {
		struct ing_metric *next = f->next;
		family_free(f);
		f = next;
	}
	free(m->collects);
	free(m);
}

static void fmt_number(double v, char *out, size_t cap);

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

static int family_add(struct ing_metrics *m, enum kind kind, const char *name, const char *help,
                      const char *const *labels, const double *bounds, size_t nbounds,
                      struct ing_metric **out, struct ing_error *e)
{
	if (!name_ok(name, true))
		return ing_error_set(e, ING_EINVAL,
		                     "metric name '%s': expected [a-zA-Z_:][a-zA-Z0-9_:]*",
		                     name != NULL ? name : "(null)");
	if (kind == KIND_COUNTER && !ends_with(name, "_total"))
		return ing_error_set(e, ING_EINVAL, "metric %s: a counter's name ends in _total",
		                     name);
	if (kind != KIND_COUNTER && ends_with(name, "_total"))
		return ing_error_set(e, ING_EINVAL, "metric %s: only counters end in _total", name);
	if (help == NULL || help[0] == '\0')
		return ing_error_set(e, ING_EINVAL, "metric %s: no help text", name);
	unsigned nlabels = 0;
	for (; labels != NULL && labels[nlabels] != NULL; nlabels++) {
		const char *l = labels[nlabels];
		if (nlabels == ING_METRICS_MAX_LABELS)
			return ing_error_set(e, ING_EINVAL, "metric %s: over %d labels", name,
			                     ING_METRICS_MAX_LABELS);
		if (!name_ok(l, false) || strncmp(l, "__", 2) == 0 ||
		    (kind == KIND_HISTOGRAM && strcmp(l, "le") == 0))
			return ing_error_set(e, ING_EINVAL, "metric %s: bad label name '%s'", name,
			                     l);
		for (unsigned j = 0; j < nlabels; j++)
			if (strcmp(labels[j], l) == 0)
				return ing_error_set(e, ING_EINVAL, "metric %s: label '%s' twice",
				                     name, l);
	}
	if (kind == KIND_HISTOGRAM) {
		if (nbounds == 0 || bounds == NULL)
			return ing_error_set(e, ING_EINVAL, "metric %s: a histogram needs bounds",
			                     name);
		for (size_t i = 0; i < nbounds; i++) {
			bool finite =
			    bounds[i] == bounds[i] && bounds[i] < 1e300 && bounds[i] > -1e300;
			if (!finite || (i > 0 && !(bounds[i] > bounds[i - 1])))
				return ing_error_set(
				    e, ING_EINVAL,
				    "metric %s: bounds must be finite and increasing", name);
		}
	}
	for (struct ing_metric *f = m->families; f != NULL; f = f->next) {
		if (strcmp(f->name, name) != 0)
			continue;
		/* The same family again (a module started twice): the same handle. */
		bool same = f->kind == kind && f->nlabels == nlabels && f->nbounds == nbounds;
		for (unsigned i = 0; same && i < nlabels; i++)
			same = strcmp(f->labels[i], labels[i]) == 0;
		for (size_t i = 0; same && i < nbounds; i++)
			same = f->bounds[i] == bounds[i];
		if (!same)
			return ing_error_set(
			    e, ING_EEXIST,
			    "metric %s: registered before with another kind, labels "
			    "or bounds",
			    name);
		*out = f;
		return 0;
	}
	struct ing_metric *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	f->kind = kind;
	f->series_tail = &f->series;
	f->name = dup_str(name);
	f->help = dup_str(help);
	bool oom = f->name == NULL || f->help == NULL;
	for (unsigned i = 0; i < nlabels && !oom; i++) {
		f->labels[i] = dup_str(labels[i]);
		oom = f->labels[i] == NULL;
		f->nlabels = i + 1;
	}
	if (!oom && kind == KIND_HISTOGRAM) {
		f->bounds = malloc(nbounds * sizeof(*bounds));
		f->le = malloc(nbounds * sizeof(*f->le));
		oom = f->bounds == NULL || f->le == NULL;
		if (!oom) {
			memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
			f->nbounds = nbounds;
			for (size_t i = 0; i < nbounds; i++)
				fmt_number(bounds[i], f->le[i], sizeof(f->le[i]));
		}
	}
	if (oom) {
		family_free(f);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	if (nlabels == 0 && ing_metric_series(f, NULL) == NULL) {
		family_free(f);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	*m->tail = f;
	m->tail = &f->next;
	*out = f;
	return 0;
}

int ing_metrics_counter(struct ing_metrics *m, const char *name, const char *help,
                        const char *const *labels, struct ing_metric **out, struct ing_error *e)
{
	return family_add(m, KIND_COUNTER, name, help, labels, NULL, 0, out, e);
}

int ing_metrics_gauge(struct ing_metrics *m, const char *name, const char *help,
                      const char *const *labels, struct ing_metric **out, struct ing_error *e)
{
	return family_add(m, KIND_GAUGE, name, help, labels, NULL, 0, out, e);
}

int ing_metrics_histogram(struct ing_metrics *m, const char *name, const char *help,
                          const char *const *labels, const double *bounds, size_t nbounds,
                          struct ing_metric **out, struct ing_error *e)
{
	return family_add(m, KIND_HISTOGRAM, name, help, labels, bounds, nbounds, out, e);
}

/* ---- series ------------------------------------------------------------ */

static uint64_t values_hash(const char *const *values, unsigned n)
{
	uint64_t h = 14695981039346656037ull;
	for (unsigned i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i]; *p != '\0'; p++)
			h = (h ^ *p) * 1099511628211ull;
		h = (h ^ 0xffu) * 1099511628211ull;
	}
	return h;
}

static bool series_matches(const struct ing_series *s, const char *const *values, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(s->values[i], values[i]) != 0)
			return false;
	return true;
}

static int table_grow(struct ing_metric *f)
{
	size_t cap = f->table_cap == 0 ? 8 : f->table_cap * 2;
	struct ing_series **t = calloc(cap, sizeof(*t));
	if (t == NULL)
		return ING_ENOMEM;
	for (struct ing_series *s = f->series; s != NULL; s = s->next) {
		size_t i = s->hash & (cap - 1);
		while (t[i] != NULL)
			i = (i + 1) & (cap - 1);
		t[i] = s;
	}
	free(f->table);
	f->table = t;
	f->table_cap = cap;
	return 0;
}

struct ing_series *ing_metric_series(struct ing_metric *f, const char *const *values)
{
	if (f == NULL || (values == NULL && f->nlabels > 0))
		return NULL;
	/* Values are stored cleaned, so look up by the cleaned text too. */
	char clean[ING_METRICS_MAX_LABELS][MAX_LABEL_VALUE_BYTES];
	const char *cv[ING_METRICS_MAX_LABELS];
	for (unsigned i = 0; i < f->nlabels; i++) {
		ing_utf8_clean(values[i] != NULL ? values[i] : "", clean[i], sizeof(clean[i]));
		cv[i] = clean[i];
	}
	uint64_t h = values_hash(cv, f->nlabels);
	if (f->table_cap > 0) {
		for (size_t i = h & (f->table_cap - 1); f->table[i] != NULL;
		     i = (i + 1) & (f->table_cap - 1)) {
			struct ing_series *s = f->table[i];
			if (s->hash == h && series_matches(s, cv, f->nlabels))
				return s;
		}
	}
	if (2 * (f->nseries + 1) > f->table_cap && table_grow(f) != 0)
		return NULL;
	struct ing_series *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->family = f;
	s->hash = h;
	bool oom = false;
	for (unsigned i = 0; i < f->nlabels && !oom; i++)
		oom = (s->values[i] = dup_str(cv[i])) == NULL;
	if (!oom && f->kind == KIND_HISTOGRAM)
		oom = (s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets))) == NULL;
	if (oom) {
		series_free(s);
		return NULL;
	}
	size_t i = h & (f->table_cap - 1);
	while (f->table[i] != NULL)
		i = (i + 1) & (f->table_cap - 1);
	f->table[i] = s;
	f->nseries++;
	*f->series_tail = s;
	f->series_tail = &s->next;
	return s;
}

void ing_counter_add(struct ing_series *s, double v)
{
	if (s != NULL && v >= 0)
		s->value += v;
}

void ing_counter_inc(struct ing_series *s)
{
	if (s != NULL)
		s->value += 1;
}

void ing_gauge_set(struct ing_series *s, double v)
{
	if (s != NULL)
		s->value = v;
}

void ing_gauge_add(struct ing_series *s, double v)
{
	if (s != NULL)
		s->value += v;
}

void ing_histogram_observe(struct ing_series *s, double v)
{
	if (s == NULL || s->buckets == NULL)
		return;
	const double *b = s->family->bounds;
	size_t lo = 0, hi = s->family->nbounds; /* first bound >= v; nbounds: +Inf */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v <= b[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	s->buckets[lo]++;
	s->count++;
	s->value += v;
}

double ing_series_value(const struct ing_series *s)
{
	return s != NULL ? s->value : 0;
}

uint64_t ing_series_count(const struct ing_series *s)
{
	return s != NULL ? s->count : 0;
}

/* ---- collect callbacks ------------------------------------------------- */

int ing_metrics_on_collect(struct ing_metrics *m, void (*cb)(void *data), void *data)
{
	if (m->ncollects == m->collects_cap) {
		size_t cap = m->collects_cap == 0 ? 8 : m->collects_cap * 2;
		struct collect *c = realloc(m->collects, cap * sizeof(*c));
		if (c == NULL)
			return ING_ENOMEM;
		m->collects = c;
		m->collects_cap = cap;
	}
	m->collects[m->ncollects++] = (struct collect){cb, data};
	return 0;
}

void ing_metrics_remove_collect(struct ing_metrics *m, void (*cb)(void *data), void *data)
{
	for (size_t i = 0; i < m->ncollects; i++) {
		if (m->collects[i].cb == cb && m->collects[i].data == data) {
			memmove(&m->collects[i], &m->collects[i + 1],
			        (m->ncollects - i - 1) * sizeof(*m->collects));
			m->ncollects--;
			return;
		}
	}
}

/* ---- rendering --------------------------------------------------------- */

static void fmt_number(double v, char *out, size_t cap)
{
	if (v != v) {
		snprintf(out, cap, "NaN");
		return;
	}
	if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
		snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v > -9e15 && v < 9e15 && v == (double)(int64_t)v) {
		snprintf(out, cap, "%lld", (long long)(int64_t)v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* text with '\\' and '\n' escaped, and '"' too when quote */
static void put_escaped(struct ing_buf *b, const char *s, bool quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			ing_buf_append(b, "\\\\", 2);
		else if (*s == '\n')
			ing_buf_append(b, "\\n", 2);
		else if (*s == '"' && quote)
			ing_buf_append(b, "\\\"", 2);
		else
			ing_buf_append(b, s, 1);
	}
}

/* name{labels[,le="x"]} value */
static void put_sample(struct ing_buf *b, const struct ing_metric *f, const struct ing_series *s,
                       const char *suffix, const char *le, double v)
{
	char num[40];
	ing_buf_puts(b, f->name);
	ing_buf_puts(b, suffix);
	if (f->nlabels > 0 || le != NULL) {
		ing_buf_append(b, "{", 1);
		for (unsigned i = 0; i < f->nlabels; i++) {
			ing_buf_printf(b, "%s%s=\"", i > 0 ? "," : "", f->labels[i]);
			put_escaped(b, s->values[i], true);
			ing_buf_append(b, "\"", 1);
		}
		if (le != NULL)
			ing_buf_printf(b, "%sle=\"%s\"", f->nlabels > 0 ? "," : "", le);
		ing_buf_append(b, "}", 1);
	}
	fmt_number(v, num, sizeof(num));
	ing_buf_printf(b, " %s\n", num);
}

static void render_family(struct ing_buf *b, const struct ing_metric *f)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	ing_buf_printf(b, "# HELP %s ", f->name);
	put_escaped(b, f->help, false);
	ing_buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->kind]);
	for (const struct ing_series *s = f->series; s != NULL; s = s->next) {
		if (f->kind != KIND_HISTOGRAM) {
			put_sample(b, f, s, "", NULL, s->value);
			continue;
		}
		uint64_t cumulative = 0;
		for (size_t i = 0; i < f->nbounds; i++) {
			cumulative += s->buckets[i];
			put_sample(b, f, s, "_bucket", f->le[i], (double)cumulative);
		}
		put_sample(b, f, s, "_bucket", "+Inf", (double)s->count);
		put_sample(b, f, s, "_sum", NULL, s->value);
		put_sample(b, f, s, "_count", NULL, (double)s->count);
	}
}

int ing_metrics_render(struct ing_metrics *m, struct ing_buf *b)
{
	for (size_t i = 0; i < m->ncollects; i++)
		m->collects[i].cb(m->collects[i].data);
	for (const struct ing_metric *f = m->families; f != NULL; f = f->next)
		render_family(b, f);
	return ing_buf_failed(b);
}

/* ---- the process's registry -------------------------------------------- */

struct ing_metrics *ing_metrics_default(void)
{
	if (default_registry == NULL && ing_metrics_new(&default_registry) != 0)
		default_registry = NULL;
	return default_registry;
}

void ing_metrics_default_free(void)
{
	ing_metrics_free(default_registry);
	default_registry = NULL;
}
