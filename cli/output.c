/*
 * output.c - what ingotctl prints: JSON for programs, tables for people.
 *
 * JSON (-o json) is the result converted generically from msgpack with
 * jansson, so its shapes are exactly those of docs/api.md and new fields
 * appear without a change here (conversion rules: rpc/json.h, shared
 * with the HTTP API).
 *
 * Tables are for people and may change: aligned columns (two spaces
 * apart, widths counted in UTF-8 code points), times in local time as
 * "2026-11-22 14:03:07", durations as "1.2s", "-" for what is absent or
 * nil.  Strings from the cluster are printed with control characters
 * replaced by '?', so a hostile job message cannot drive the terminal.
 * Printers never fail on a result of an unexpected shape: a missing or
 * mistyped field prints as "-".
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/encode.h"

/* ---- JSON -------------------------------------------------------------- */

int cli_print_json(FILE *out, const msgpack_object *o, bool compact)
{
	json_t *j = rpc_mp_to_json(o);
	if (j == NULL)
		return ING_ENOMEM;
	size_t flags =
	    JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | (compact ? JSON_COMPACT : JSON_INDENT(2));
	int rv = json_dumpf(j, out, flags);
	json_decref(j);
	if (rv != 0 || fputc('\n', out) == EOF)
		return ING_EIO;
	return 0;
}

int cli_collect_items(const msgpack_object *arr, const msgpack_object ***items, size_t *n,
                      size_t *cap, struct ing_error *e)
{
	for (uint32_t i = 0;
	     arr != NULL && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size; i++) {
		if (*n == *cap) {
			size_t ncap = *cap == 0 ? 256 : *cap * 2;
			const msgpack_object **p = realloc(*items, ncap * sizeof(*p));
			if (p == NULL)
				return ing_error_set(e, ING_ENOMEM, "out of memory");
			*items = p;
			*cap = ncap;
		}
		(*items)[(*n)++] = &arr->via.array.ptr[i];
	}
	return 0;
}

int cli_print_json_page(FILE *out, const char *key, const msgpack_object *const *items, size_t n)
{
	json_t *doc = json_object(), *arr = json_array();
	int bad = doc == NULL || arr == NULL;
	for (size_t i = 0; !bad && i < n; i++)
		bad = json_array_append_new(arr, rpc_mp_to_json(items[i])) != 0;
	if (!bad)
		bad = json_object_set(doc, key, arr) != 0 ||
		      json_object_set_new(doc, "next", json_null()) != 0;
	if (!bad)
		bad = json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
		      fputc('\n', out) == EOF;
	json_decref(arr);
	json_decref(doc);
	return bad ? ING_EIO : 0;
}

/* ---- reading results --------------------------------------------------- */

const msgpack_object *cli_mp_get(const msgpack_object *m, const char *key)
{
	if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t klen = strlen(key);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

static bool get_u64(const msgpack_object *m, const char *key, uint64_t *out)
{
	const msgpack_object *v = cli_mp_get(m, key);
	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*out = v->via.u64;
	return true;
}

void cli_format_time(uint64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (localtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, cap, "%" PRIu64, ms);
}

void cli_format_duration(uint64_t ms, char *buf, size_t cap)
{
	if (ms < 1000) {
		snprintf(buf, cap, "%" PRIu64 "ms", ms);
		return;
	}
	uint64_t tenths = (ms + 50) / 100;
	if (tenths < 600) {
		snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "s", tenths / 10, tenths % 10);
		return;
	}
	uint64_t s = (ms + 500) / 1000;
	if (s < 3600) {
		if (s % 60 == 0)
			snprintf(buf, cap, "%" PRIu64 "m", s / 60);
		else
			snprintf(buf, cap, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
		return;
	}
	uint64_t m = (s + 30) / 60;
	if (m % 60 == 0)
		snprintf(buf, cap, "%" PRIu64 "h", m / 60);
	else
		snprintf(buf, cap, "%" PRIu64 "h%02" PRIu64 "m", m / 60, m % 60);
}

/* Replaces control characters so that server text cannot drive the
 * terminal. */
static void sanitize(char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

/* Writes any scalar as cell text: str as is, ints, bool yes/no, nil "-",
 * arrays of scalars joined with ','. */
static void value_text(const msgpack_object *v, char *buf, size_t cap)
{
	if (cap == 0)
		return;
	buf[0] = '\0';
	if (v == NULL) {
		snprintf(buf, cap, "-");
		return;
	}
	switch (v->type) {
	case MSGPACK_OBJECT_NIL: snprintf(buf, cap, "-"); break;
	case MSGPACK_OBJECT_BOOLEAN: snprintf(buf, cap, "%s", v->via.boolean ? "yes" : "no"); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: snprintf(buf, cap, "%" PRIu64, v->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: snprintf(buf, cap, "%" PRId64, v->via.i64); break;
	case MSGPACK_OBJECT_STR:
		snprintf(buf, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
		/* an embedded NUL ends the text; so be it */
		break;
	case MSGPACK_OBJECT_ARRAY: {
		size_t n = 0;
		for (uint32_t i = 0; i < v->via.array.size && n + 1 < cap; i++) {
			if (i > 0)
				buf[n++] = ',';
			buf[n] = '\0';
			value_text(&v->via.array.ptr[i], buf + n, cap - n);
			n += strlen(buf + n);
		}
		if (v->via.array.size == 0)
			snprintf(buf, cap, "-");
		break;
	}
	case MSGPACK_OBJECT_MAP: {
		size_t n = 0;
		for (uint32_t i = 0; i < v->via.map.size && n + 1 < cap; i++) {
			if (i > 0)
				buf[n++] = ',';
			buf[n] = '\0';
			value_text(&v->via.map.ptr[i].key, buf + n, cap - n);
			n += strlen(buf + n);
			if (n + 1 < cap)
				buf[n++] = '=';
			buf[n] = '\0';
			value_text(&v->via.map.ptr[i].val, buf + n, cap - n);
			n += strlen(buf + n);
		}
		if (v->via.map.size == 0)
			snprintf(buf, cap, "-");
		break;
	}
	default: snprintf(buf, cap, "?"); break;
	}
	sanitize(buf);
}

static void field_text(const msgpack_object *m, const char *key, char *buf, size_t cap)
{
	value_text(cli_mp_get(m, key), buf, cap);
}

static void field_time(const msgpack_object *m, const char *key, char *buf, size_t cap)
{
	uint64_t t;
	if (get_u64(m, key, &t))
		cli_format_time(t, buf, cap);
	else
		snprintf(buf, cap, "-");
}

static void field_duration(const msgpack_object *m, const char *key, char *buf, size_t cap)
{
	uint64_t d;
	if (get_u64(m, key, &d))
		cli_format_duration(d, buf, cap);
	else
		snprintf(buf, cap, "-");
}

/* ---- tables ------------------------------------------------------------ */

#define CELL_MAX 512

struct table {
	unsigned ncols;
	size_t nrows, cap; /* rows, header included */
	char **cells;      /* nrows * ncols, malloc'd each */
	bool oom;
};

static void table_init(struct table *t, unsigned ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

/* Adds a row of ncols cell strings (copied). */
static void table_row(struct table *t, ...)
{
	va_list ap;
	if (t->oom)
		return;
	if (t->nrows == t->cap) {
		size_t ncap = t->cap == 0 ? 16 : t->cap * 2;
		char **c = realloc(t->cells, ncap * t->ncols * sizeof(*c));
		if (c == NULL) {
			t->oom = true;
			return;
		}
		t->cells = c;
		t->cap = ncap;
	}
	va_start(ap, t);
	for (unsigned i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		char *copy = strdup(s != NULL ? s : "-");
		if (copy != NULL)
			sanitize(copy);
		t->cells[t->nrows * t->ncols + i] = copy;
		if (copy == NULL)
			t->oom = true;
	}
	va_end(ap);
	t->nrows++;
}

static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s != '\0'; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Prints and frees the table. */
static void table_print(struct table *t, FILE *out)
{
	size_t widths[16] = {0};
	for (size_t r = 0; r < t->nrows; r++) {
		for (unsigned c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t w = s != NULL ? text_width(s) : 1;
			if (w > widths[c])
				widths[c] = w;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (unsigned c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (s == NULL)
				s = "?";
			if (c + 1 == t->ncols) {
				fputs(s, out);
			} else {
				fputs(s, out);
				for (size_t w = text_width(s); w < widths[c] + 2; w++)
					fputc(' ', out);
			}
		}
		fputc('\n', out);
	}
	if (t->oom)
		fputs("(out of memory: output incomplete)\n", out);
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ---- status ------------------------------------------------------------ */

void cli_print_status(FILE *out, const msgpack_object *st)
{
	char leader[32], term[32], node[32];
	field_text(st, "leader", leader, sizeof(leader));
	field_text(st, "term", term, sizeof(term));
	field_text(st, "node", node, sizeof(node));
	fprintf(out, "leader: %s  term: %s  answered by: %s\n\n",
	        strcmp(leader, "-") == 0 ? "none" : leader, term, node);
	struct table t;
	table_init(&t, 7);
	table_row(&t, "ID", "ROLE", "LEADER", "ALIVE", "APPLIED", "RAFT ADDRESS", "API ADDRESS");
	const msgpack_object *members = cli_mp_get(st, "members");
	for (uint32_t i = 0; members != NULL && members->type == MSGPACK_OBJECT_ARRAY &&
	                     i < members->via.array.size;
	     i++) {
		const msgpack_object *m = &members->via.array.ptr[i];
		char id[32], role[32], lead[8], alive[8], applied[32], raft[64], api[64];
		field_text(m, "id", id, sizeof(id));
		field_text(m, "role", role, sizeof(role));
		const msgpack_object *l = cli_mp_get(m, "leader");
		snprintf(lead, sizeof(lead), "%s",
		         l != NULL && l->type == MSGPACK_OBJECT_BOOLEAN && l->via.boolean ? "*"
		                                                                          : "");
		field_text(m, "alive", alive, sizeof(alive));
		field_text(m, "applied_index", applied, sizeof(applied));
		field_text(m, "raft_address", raft, sizeof(raft));
		field_text(m, "api_address", api, sizeof(api));
		table_row(&t, id, role, lead, alive, applied, raft, api);
	}
	table_print(&t, out);
}

/* ---- jobs -------------------------------------------------------------- */

/* "1/3": attempt of max_attempts. */
static void attempt_text(const msgpack_object *job, char *buf, size_t cap)
{
	uint64_t a, m;
	if (!get_u64(job, "attempt", &a))
		snprintf(buf, cap, "-");
	else if (get_u64(job, "max_attempts", &m))
		snprintf(buf, cap, "%" PRIu64 "/%" PRIu64, a, m);
	else
		snprintf(buf, cap, "%" PRIu64, a);
}

static void files_table(FILE *out, const msgpack_object *files, const char *title)
{
	struct table t;
	table_init(&t, 3);
	table_row(&t, title, "SIZE", "SHA256");
	for (uint32_t i = 0; i < files->via.array.size; i++) {
		const msgpack_object *f = &files->via.array.ptr[i];
		char path[CELL_MAX], size[32], sha[80];
		field_text(f, "path", path, sizeof(path));
		field_text(f, "size", size, sizeof(size));
		field_text(f, "sha256", sha, sizeof(sha));
		table_row(&t, path, size, sha);
	}
	table_print(&t, out);
}

void cli_print_job(FILE *out, const msgpack_object *job)
{
	char id[32], target[CELL_MAX], tenant[CELL_MAX], state[32], attempt[48], node[32], prio[16],
	    created[32], updated[32], deadline[32], finished[32], err[CELL_MAX], waiting[CELL_MAX];
	field_text(job, "id", id, sizeof(id));
	field_text(job, "target", target, sizeof(target));
	field_text(job, "tenant", tenant, sizeof(tenant));
	field_text(job, "state", state, sizeof(state));
	attempt_text(job, attempt, sizeof(attempt));
	field_text(job, "node", node, sizeof(node));
	field_text(job, "priority", prio, sizeof(prio));
	field_time(job, "created_at", created, sizeof(created));
	field_time(job, "updated_at", updated, sizeof(updated));
	field_time(job, "deadline_at", deadline, sizeof(deadline));
	field_time(job, "finished_at", finished, sizeof(finished));
	field_text(job, "error", err, sizeof(err));
	field_text(job, "waiting", waiting, sizeof(waiting));
	const msgpack_object *cr = cli_mp_get(job, "cancel_requested");
	if (cr != NULL && cr->type == MSGPACK_OBJECT_BOOLEAN && cr->via.boolean)
		strncat(state, " (cancel requested)", sizeof(state) - strlen(state) - 1);

	struct table t;
	table_init(&t, 2);
	table_row(&t, "id:", id);
	table_row(&t, "target:", target);
	table_row(&t, "tenant:", tenant);
	table_row(&t, "state:", state);
	if (waiting[0] != '\0' && strcmp(waiting, "-") != 0)
		table_row(&t, "waiting:", waiting);
	table_row(&t, "attempt:", attempt);
	table_row(&t, "node:", node);
	const msgpack_object *gpus = cli_mp_get(job, "gpus");
	if (gpus != NULL && gpus->type == MSGPACK_OBJECT_ARRAY && gpus->via.array.size > 0) {
		char gtext[CELL_MAX];
		value_text(gpus, gtext, sizeof(gtext));
		if (strncmp(state, "assigned", 8) == 0 || strncmp(state, "running", 7) == 0)
			strncat(gtext, " (held)", sizeof(gtext) - strlen(gtext) - 1);
		table_row(&t, "gpus:", gtext);
	}
	table_row(&t, "priority:", prio);
	table_row(&t, "created:", created);
	table_row(&t, "updated:", updated);
	table_row(&t, "deadline:", deadline);
	table_row(&t, "finished:", finished);
	if (err[0] != '\0' && strcmp(err, "-") != 0)
		table_row(&t, "error:", err);
	const msgpack_object *params = cli_mp_get(job, "params");
	char ptext[CELL_MAX];
	if (params != NULL && params->type == MSGPACK_OBJECT_MAP) {
		value_text(params, ptext, sizeof(ptext));
		table_row(&t, "params:", ptext);
	}
	table_print(&t, out);

	const msgpack_object *sources = cli_mp_get(job, "sources");
	if (sources != NULL && sources->type == MSGPACK_OBJECT_ARRAY && sources->via.array.size) {
		fputc('\n', out);
		files_table(out, sources, "SOURCE");
	}
	const msgpack_object *stages = cli_mp_get(job, "stages");
	if (stages == NULL || stages->type != MSGPACK_OBJECT_ARRAY || stages->via.array.size == 0)
		return;
	fputc('\n', out);
	table_init(&t, 7);
	table_row(&t, "STAGE", "STATE", "EXIT", "STARTED", "DURATION", "LOG", "OUTPUTS");
	for (uint32_t i = 0; i < stages->via.array.size; i++) {
		const msgpack_object *s = &stages->via.array.ptr[i];
		char idx[16], st[16], exit_code[16], started[32], dur[32], log[80],
		    outputs[CELL_MAX] = "";
		field_text(s, "index", idx, sizeof(idx));
		field_text(s, "state", st, sizeof(st));
		field_time(s, "started_at", started, sizeof(started));
		if (strcmp(st, "running") == 0 || strcmp(st, "killed") == 0 ||
		    strcmp(st, "skipped") == 0) {
			/* no exit status, and the duration is not known */
			snprintf(exit_code, sizeof(exit_code), "-");
			snprintf(dur, sizeof(dur), "-");
		} else {
			field_text(s, "exit_code", exit_code, sizeof(exit_code));
			field_duration(s, "duration_ms", dur, sizeof(dur));
		}
		field_text(s, "log_sha256", log, sizeof(log));
		if (strlen(log) > 12)
			log[12] = '\0'; /* a prefix identifies it for people */
		const msgpack_object *outs = cli_mp_get(s, "outputs");
		for (uint32_t k = 0;
		     outs != NULL && outs->type == MSGPACK_OBJECT_ARRAY && k < outs->via.array.size;
		     k++) {
			char p[CELL_MAX];
			field_text(&outs->via.array.ptr[k], "path", p, sizeof(p));
			if (k > 0)
				strncat(outputs, ",", sizeof(outputs) - strlen(outputs) - 1);
			strncat(outputs, p, sizeof(outputs) - strlen(outputs) - 1);
		}
		table_row(&t, idx, st, exit_code, started, dur, log, outputs[0] ? outputs : "-");
	}
	table_print(&t, out);
}

void cli_print_job_list(FILE *out, const msgpack_object *const *jobs, size_t n)
{
	struct table t;
	table_init(&t, 8);
	table_row(&t, "ID", "STATE", "TARGET", "TENANT", "ATTEMPT", "NODE", "PRIORITY", "CREATED");
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *j = jobs[i];
		char id[32], state[48], target[CELL_MAX], tenant[CELL_MAX], attempt[48], node[32],
		    prio[16], created[32];
		field_text(j, "id", id, sizeof(id));
		field_text(j, "state", state, sizeof(state));
		field_text(j, "target", target, sizeof(target));
		field_text(j, "tenant", tenant, sizeof(tenant));
		attempt_text(j, attempt, sizeof(attempt));
		field_text(j, "node", node, sizeof(node));
		field_text(j, "priority", prio, sizeof(prio));
		field_time(j, "created_at", created, sizeof(created));
		table_row(&t, id, state, target, tenant, attempt, node, prio, created);
	}
	table_print(&t, out);
}

/* ---- targets ----------------------------------------------------------- */

void cli_print_target_list(FILE *out, const msgpack_object *targets)
{
	struct table t;
	table_init(&t, 6);
	table_row(&t, "NAME", "REVISION", "STAGES", "CAPABILITIES", "ACTIVE JOBS", "UPDATED");
	for (uint32_t i = 0; targets != NULL && targets->type == MSGPACK_OBJECT_ARRAY &&
	                     i < targets->via.array.size;
	     i++) {
		const msgpack_object *tg = &targets->via.array.ptr[i];
		char name[CELL_MAX], rev[32], nstages[16] = "-", caps[CELL_MAX], active[32],
		                              updated[32];
		field_text(tg, "name", name, sizeof(name));
		field_text(tg, "revision", rev, sizeof(rev));
		const msgpack_object *st = cli_mp_get(tg, "stages");
		if (st != NULL && st->type == MSGPACK_OBJECT_ARRAY)
			snprintf(nstages, sizeof(nstages), "%u", (unsigned)st->via.array.size);
		field_text(tg, "capabilities", caps, sizeof(caps));
		field_text(tg, "active_jobs", active, sizeof(active));
		field_time(tg, "updated_at", updated, sizeof(updated));
		table_row(&t, name, rev, nstages, caps, active, updated);
	}
	table_print(&t, out);
}

void cli_print_target(FILE *out, const msgpack_object *tg)
{
	char name[CELL_MAX], rev[32], caps[CELL_MAX], labels[CELL_MAX], active[32], created[32],
	    updated[32], gpus[16], network[16], disk[48];
	uint64_t disk_bytes = 0;
	field_text(tg, "name", name, sizeof(name));
	field_text(tg, "gpus", gpus, sizeof(gpus));
	field_text(tg, "network", network, sizeof(network));
	if (get_u64(tg, "disk_bytes", &disk_bytes) && disk_bytes > 0)
		snprintf(disk, sizeof(disk), "%" PRIu64 " bytes", disk_bytes);
	else
		snprintf(disk, sizeof(disk), "the node's ceiling");
	field_text(tg, "revision", rev, sizeof(rev));
	field_text(tg, "capabilities", caps, sizeof(caps));
	field_text(tg, "labels", labels, sizeof(labels));
	field_text(tg, "active_jobs", active, sizeof(active));
	field_time(tg, "created_at", created, sizeof(created));
	field_time(tg, "updated_at", updated, sizeof(updated));
	struct table t;
	table_init(&t, 2);
	table_row(&t, "name:", name);
	table_row(&t, "revision:", rev);
	table_row(&t, "capabilities:", caps);
	table_row(&t, "labels:", labels);
	table_row(&t, "gpus:", gpus);
	table_row(&t, "host network:", network);
	table_row(&t, "disk:", disk);
	table_row(&t, "active jobs:", active);
	table_row(&t, "created:", created);
	table_row(&t, "updated:", updated);
	table_print(&t, out);

	const msgpack_object *stages = cli_mp_get(tg, "stages");
	if (stages == NULL || stages->type != MSGPACK_OBJECT_ARRAY)
		return;
	fputc('\n', out);
	table_init(&t, 6);
	table_row(&t, "STAGE", "TIMEOUT", "GPUS", "OUTPUTS", "ENV", "ARGV");
	for (uint32_t i = 0; i < stages->via.array.size; i++) {
		const msgpack_object *s = &stages->via.array.ptr[i];
		char sname[CELL_MAX], timeout[32], outputs[CELL_MAX], env[CELL_MAX],
		    argv[CELL_MAX] = "", sgpus[16];
		field_text(s, "name", sname, sizeof(sname));
		/* What the stage sees: the most of its own and the target's. */
		uint64_t tg_gpus = 0, st_gpus = 0;
		get_u64(tg, "gpus", &tg_gpus);
		get_u64(s, "gpus", &st_gpus);
		snprintf(sgpus, sizeof(sgpus), "%" PRIu64, st_gpus > tg_gpus ? st_gpus : tg_gpus);
		field_duration(s, "timeout_ms", timeout, sizeof(timeout));
		field_text(s, "outputs", outputs, sizeof(outputs));
		field_text(s, "env", env, sizeof(env));
		const msgpack_object *a = cli_mp_get(s, "argv");
		for (uint32_t k = 0;
		     a != NULL && a->type == MSGPACK_OBJECT_ARRAY && k < a->via.array.size; k++) {
			char word[CELL_MAX];
			value_text(&a->via.array.ptr[k], word, sizeof(word));
			if (k > 0)
				strncat(argv, " ", sizeof(argv) - strlen(argv) - 1);
			strncat(argv, word, sizeof(argv) - strlen(argv) - 1);
		}
		table_row(&t, sname, timeout, sgpus, outputs, env, argv);
	}
	table_print(&t, out);
}

/* ---- events ------------------------------------------------------------ */

#define EVENT_FMT "%-19s  %-16s  %-9s  %7s  %4s  %5s  %4s  %s\n"

void cli_print_event_header(FILE *out)
{
	fprintf(out, EVENT_FMT, "TIME", "KIND", "STATE", "ATTEMPT", "NODE", "STAGE", "EXIT",
	        "MESSAGE");
}

void cli_print_event_line(FILE *out, const msgpack_object *ev)
{
	char time_s[32], kind[64], state[32], attempt[32], node[32], stage[32], exit_code[32],
	    msg[CELL_MAX];
	field_time(ev, "time", time_s, sizeof(time_s));
	field_text(ev, "kind", kind, sizeof(kind));
	field_text(ev, "state", state, sizeof(state));
	field_text(ev, "attempt", attempt, sizeof(attempt));
	field_text(ev, "node", node, sizeof(node));
	field_text(ev, "stage", stage, sizeof(stage));
	/* Events carry an exit code, meaningful for stage_finished only. */
	if (strcmp(kind, "stage_finished") == 0)
		field_text(ev, "exit_code", exit_code, sizeof(exit_code));
	else
		snprintf(exit_code, sizeof(exit_code), "-");
	field_text(ev, "message", msg, sizeof(msg));
	fprintf(out, EVENT_FMT, time_s, kind, state, attempt, node, stage, exit_code, msg);
}

/* ---- nodes ------------------------------------------------------------- */

static bool get_bool(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = cli_mp_get(m, key);
	return v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

/* A node's GPUS cell: "-" without GPUs, else held/offered and which job
 * holds which: "1/2 (0:job 7)". */
static void node_gpus_text(const msgpack_object *nd, char *buf, size_t cap)
{
	const msgpack_object *g = cli_mp_get(nd, "gpus");
	unsigned offered = 0, held = 0;
	size_t n;

	snprintf(buf, cap, "-");
	if (g == NULL || g->type != MSGPACK_OBJECT_ARRAY || g->via.array.size == 0)
		return;
	for (uint32_t i = 0; i < g->via.array.size; i++) {
		uint64_t job;
		offered += get_bool(&g->via.array.ptr[i], "offered");
		held += get_u64(&g->via.array.ptr[i], "job", &job);
	}
	n = (size_t)snprintf(buf, cap, "%u/%u", held, offered);
	for (uint32_t i = 0, shown = 0; i < g->via.array.size && n < cap; i++) {
		uint64_t job, index;
		if (!get_u64(&g->via.array.ptr[i], "job", &job) ||
		    !get_u64(&g->via.array.ptr[i], "index", &index))
			continue;
		n += (size_t)snprintf(buf + n, cap - n, "%s%" PRIu64 ":job %" PRIu64,
		                      shown++ ? ", " : " (", index, job);
		if (shown == held && n < cap)
			n += (size_t)snprintf(buf + n, cap - n, ")");
	}
}

void cli_print_node_list(FILE *out, const msgpack_object *nodes)
{
	struct table t;
	table_init(&t, 6);
	table_row(&t, "ID", "SLOTS", "GPUS", "STATE", "CAPABILITIES", "LABELS");
	for (uint32_t i = 0;
	     nodes != NULL && nodes->type == MSGPACK_OBJECT_ARRAY && i < nodes->via.array.size;
	     i++) {
		const msgpack_object *nd = &nodes->via.array.ptr[i];
		char id[32], used[16], total[16], slots[40], state[80], caps[CELL_MAX],
		    labels[CELL_MAX], gpus[CELL_MAX];
		field_text(nd, "id", id, sizeof(id));
		field_text(nd, "used_slots", used, sizeof(used));
		field_text(nd, "slots", total, sizeof(total));
		snprintf(slots, sizeof(slots), "%s/%s", used, total);
		bool down = get_bool(nd, "down"), draining = get_bool(nd, "draining");
		uint64_t deadline;
		if (draining && get_u64(nd, "drain_deadline", &deadline)) {
			char when[32];
			cli_format_time(deadline, when, sizeof(when));
			snprintf(state, sizeof(state), "%sdraining until %s", down ? "down," : "",
			         when);
		} else {
			snprintf(state, sizeof(state), "%s",
			         down ? (draining ? "down,draining" : "down")
			              : (draining ? "draining" : "up"));
		}
		field_text(nd, "capabilities", caps, sizeof(caps));
		field_text(nd, "labels", labels, sizeof(labels));
		node_gpus_text(nd, gpus, sizeof(gpus));
		table_row(&t, id, slots, gpus, state, caps, labels);
	}
	table_print(&t, out);
}

/* ---- members ----------------------------------------------------------- */

/* status's members array, or NULL. */
static const msgpack_object *members_of(const msgpack_object *status)
{
	const msgpack_object *m = cli_mp_get(status, "members");
	return m != NULL && m->type == MSGPACK_OBJECT_ARRAY ? m : NULL;
}

/* The leader's applied_index: the member flagged leader, else the one whose
 * id is status's `leader`.  False when there is none or it is unknown. */
static bool leader_applied(const msgpack_object *status, uint64_t *out)
{
	const msgpack_object *members = members_of(status);
	uint64_t leader_id = 0;
	bool has_id = get_u64(status, "leader", &leader_id);
	for (uint32_t i = 0; members != NULL && i < members->via.array.size; i++) {
		const msgpack_object *m = &members->via.array.ptr[i];
		if (get_bool(m, "leader"))
			return get_u64(m, "applied_index", out);
	}
	for (uint32_t i = 0; has_id && members != NULL && i < members->via.array.size; i++) {
		const msgpack_object *m = &members->via.array.ptr[i];
		uint64_t id;
		if (get_u64(m, "id", &id) && id == leader_id)
			return get_u64(m, "applied_index", out);
	}
	return false;
}

/* How far member m is behind the leader (0 at least). */
static bool member_behind(const msgpack_object *m, bool has_leader, uint64_t lead, uint64_t *out)
{
	uint64_t applied;
	if (!has_leader || !get_u64(m, "applied_index", &applied))
		return false;
	*out = lead > applied ? lead - applied : 0;
	return true;
}

/* The `draining` flag of member m's node in node.list; false when m is not
 * a registered worker (or the flag is missing). */
static bool member_draining(const msgpack_object *m, const msgpack_object *nodes, bool *out)
{
	uint64_t id, nid;
	if (!get_u64(m, "id", &id) || nodes == NULL || nodes->type != MSGPACK_OBJECT_ARRAY)
		return false;
	for (uint32_t i = 0; i < nodes->via.array.size; i++) {
		const msgpack_object *nd = &nodes->via.array.ptr[i];
		if (!get_u64(nd, "id", &nid) || nid != id)
			continue;
		const msgpack_object *d = cli_mp_get(nd, "draining");
		if (d == NULL || d->type != MSGPACK_OBJECT_BOOLEAN)
			return false;
		*out = d->via.boolean;
		return true;
	}
	return false;
}

void cli_print_member_list(FILE *out, const msgpack_object *status, const msgpack_object *nodes)
{
	struct table t;
	table_init(&t, 10);
	table_row(&t, "ID", "ROLE", "LEADER", "ALIVE", "CONTACT", "APPLIED", "BEHIND", "DRAIN",
	          "RAFT ADDRESS", "API ADDRESS");
	const msgpack_object *members = members_of(status);
	uint64_t lead = 0;
	bool has_leader = leader_applied(status, &lead);
	for (uint32_t i = 0; members != NULL && i < members->via.array.size; i++) {
		const msgpack_object *m = &members->via.array.ptr[i];
		char id[32], role[32], alive[8], contact[32], applied[32], behind[32], raft[64],
		    api[64];
		uint64_t b;
		bool draining;
		field_text(m, "id", id, sizeof(id));
		field_text(m, "role", role, sizeof(role));
		field_text(m, "alive", alive, sizeof(alive));
		field_duration(m, "last_contact_ms", contact, sizeof(contact));
		field_text(m, "applied_index", applied, sizeof(applied));
		if (member_behind(m, has_leader, lead, &b))
			snprintf(behind, sizeof(behind), "%" PRIu64, b);
		else
			snprintf(behind, sizeof(behind), "-");
		const char *drain = "-";
		if (member_draining(m, nodes, &draining))
			drain = draining ? "yes" : "no";
		field_text(m, "raft_address", raft, sizeof(raft));
		field_text(m, "api_address", api, sizeof(api));
		table_row(&t, id, role, get_bool(m, "leader") ? "*" : "", alive, contact, applied,
		          behind, drain, raft, api);
	}
	table_print(&t, out);
}

/* The JSON of field `key` of m, null when absent; false when out of memory. */
static bool json_field(json_t *obj, const char *key, const msgpack_object *m)
{
	const msgpack_object *v = cli_mp_get(m, key);
	json_t *j = v != NULL ? rpc_mp_to_json(v) : json_null();
	return j != NULL && json_object_set_new(obj, key, j) == 0;
}

json_t *cli_member_list_json(const msgpack_object *status, const msgpack_object *nodes)
{
	json_t *arr = json_array();
	if (arr == NULL)
		return NULL;
	const msgpack_object *members = members_of(status);
	uint64_t lead = 0;
	bool has_leader = leader_applied(status, &lead);
	for (uint32_t i = 0; members != NULL && i < members->via.array.size; i++) {
		const msgpack_object *m = &members->via.array.ptr[i];
		json_t *o = json_object();
		uint64_t b;
		bool draining;
		bool ok = o != NULL && json_array_append_new(arr, o) == 0;
		ok = ok && json_field(o, "id", m) && json_field(o, "role", m);
		ok = ok &&
		     json_object_set_new(o, "leader", json_boolean(get_bool(m, "leader"))) == 0;
		ok = ok && json_field(o, "alive", m) && json_field(o, "last_contact_ms", m);
		ok = ok && json_field(o, "applied_index", m);
		ok = ok && json_object_set_new(o, "behind",
		                               member_behind(m, has_leader, lead, &b)
		                                   ? json_integer((json_int_t)b)
		                                   : json_null()) == 0;
		ok = ok && json_object_set_new(o, "draining",
		                               member_draining(m, nodes, &draining)
		                                   ? json_boolean(draining)
		                                   : json_null()) == 0;
		ok = ok && json_field(o, "raft_address", m) && json_field(o, "api_address", m);
		if (!ok) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* ---- membership changes ------------------------------------------------ */

/* " (1234 ms)" from field `key` of m, "" when absent. */
static void elapsed_text(const msgpack_object *m, const char *key, char *buf, size_t cap)
{
	uint64_t ms;
	if (get_u64(m, key, &ms))
		snprintf(buf, cap, " (%" PRIu64 " ms)", ms);
	else
		buf[0] = '\0';
}

void cli_print_member_change(FILE *out, const msgpack_object *change)
{
	const msgpack_object *steps = cli_mp_get(change, "steps");
	for (uint32_t i = 0;
	     steps != NULL && steps->type == MSGPACK_OBJECT_ARRAY && i < steps->via.array.size;
	     i++) {
		char step[CELL_MAX];
		value_text(&steps->via.array.ptr[i], step, sizeof(step));
		fprintf(out, "  - %s\n", step);
	}
	char id[32], role[32], elapsed[48];
	field_text(change, "id", id, sizeof(id));
	field_text(change, "role", role, sizeof(role));
	elapsed_text(change, "elapsed_ms", elapsed, sizeof(elapsed));
	if (strcmp(role, "-") == 0)
		fprintf(out, "member %s removed%s\n", id, elapsed);
	else
		fprintf(out, "member %s is now a %s%s\n", id, role, elapsed);
}

void cli_print_transfer(FILE *out, const msgpack_object *tr)
{
	char leader[32], previous[32], attempts[32], elapsed[32];
	uint64_t n;
	field_text(tr, "leader", leader, sizeof(leader));
	field_text(tr, "previous", previous, sizeof(previous));
	field_text(tr, "attempts", attempts, sizeof(attempts));
	field_text(tr, "elapsed_ms", elapsed, sizeof(elapsed));
	const char *plural = get_u64(tr, "attempts", &n) && n == 1 ? "" : "s";
	/* Asked to move it to the node that already leads. */
	if (strcmp(leader, previous) == 0 && strcmp(leader, "-") != 0)
		fprintf(out, "node %s was already the leader (%s attempt%s, %s ms)\n", leader,
		        attempts, plural, elapsed);
	else
		fprintf(out, "leadership moved from node %s to node %s (%s attempt%s, %s ms)\n",
		        previous, leader, attempts, plural, elapsed);
}

/* ---- cluster events ---------------------------------------------------- */

void cli_print_cluster_events(FILE *out, const msgpack_object *page)
{
	struct table t;
	table_init(&t, 5);
	table_row(&t, "SEQ", "TIME", "KIND", "MEMBER", "MESSAGE");
	const msgpack_object *evs = cli_mp_get(page, "events");
	for (uint32_t i = 0;
	     evs != NULL && evs->type == MSGPACK_OBJECT_ARRAY && i < evs->via.array.size; i++) {
		const msgpack_object *ev = &evs->via.array.ptr[i];
		char seq[32], time_s[32], kind[64], member[32], msg[CELL_MAX];
		field_text(ev, "seq", seq, sizeof(seq));
		field_time(ev, "time_ms", time_s, sizeof(time_s));
		field_text(ev, "kind", kind, sizeof(kind));
		field_text(ev, "member", member, sizeof(member));
		field_text(ev, "message", msg, sizeof(msg));
		table_row(&t, seq, time_s, kind, member, msg);
	}
	table_print(&t, out);
}

/* ---- tokens and the audit trail ---------------------------------------- */

void cli_print_token_list(FILE *out, const msgpack_object *tokens)
{
	struct table t;
	uint64_t now = (uint64_t)time(NULL) * 1000;
	table_init(&t, 8);
	table_row(&t, "ID", "NAME", "ROLE", "TENANT", "CREATED", "EXPIRES", "STATE", "CREATED BY");
	for (uint32_t i = 0;
	     tokens != NULL && tokens->type == MSGPACK_OBJECT_ARRAY && i < tokens->via.array.size;
	     i++) {
		const msgpack_object *tk = &tokens->via.array.ptr[i];
		char id[32], name[CELL_MAX], role[32], tenant[CELL_MAX], created[32], expires[32],
		    by[CELL_MAX];
		const char *state = "active";
		uint64_t exp;
		const msgpack_object *rev = cli_mp_get(tk, "revoked");
		field_text(tk, "id", id, sizeof(id));
		field_text(tk, "name", name, sizeof(name));
		field_text(tk, "role", role, sizeof(role));
		field_text(tk, "tenant", tenant, sizeof(tenant));
		field_time(tk, "created_at", created, sizeof(created));
		if (get_u64(tk, "expires_at", &exp)) {
			cli_format_time(exp, expires, sizeof(expires));
			if (exp <= now)
				state = "expired";
		} else {
			snprintf(expires, sizeof(expires), "never");
		}
		if (rev != NULL && rev->type == MSGPACK_OBJECT_BOOLEAN && rev->via.boolean)
			state = "revoked";
		field_text(tk, "created_by", by, sizeof(by));
		table_row(&t, id, name, role, tenant, created, expires, state, by);
	}
	table_print(&t, out);
}

void cli_print_token_created(FILE *out, const msgpack_object *created)
{
	char id[32], name[CELL_MAX], role[32], tenant[CELL_MAX], expires[32];
	uint64_t exp;
	field_text(created, "id", id, sizeof(id));
	field_text(created, "name", name, sizeof(name));
	field_text(created, "role", role, sizeof(role));
	field_text(created, "tenant", tenant, sizeof(tenant));
	if (get_u64(created, "expires_at", &exp))
		cli_format_time(exp, expires, sizeof(expires));
	else
		snprintf(expires, sizeof(expires), "never");
	fprintf(out,
	        "token %s '%s' created: role %s, tenant %s, expires %s (shown once: keep it now)\n",
	        id, name, role, strcmp(tenant, "-") == 0 ? "(all)" : tenant, expires);
}

void cli_print_audit(FILE *out, const msgpack_object *const *events, size_t n)
{
	struct table t;
	table_init(&t, 5);
	table_row(&t, "TIME", "PRINCIPAL", "KIND", "JOB", "MESSAGE");
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *ev = events[i];
		char time_s[32], who[CELL_MAX], kind[64], job[32], msg[CELL_MAX];
		field_time(ev, "time_ms", time_s, sizeof(time_s));
		field_text(ev, "principal", who, sizeof(who));
		field_text(ev, "kind", kind, sizeof(kind));
		field_text(ev, "job", job, sizeof(job));
		field_text(ev, "message", msg, sizeof(msg));
		table_row(&t, time_s, who, kind, job, msg);
	}
	table_print(&t, out);
}

/* ---- stage logs -------------------------------------------------------- */

void cli_format_stage_header(const msgpack_object *stage, char *buf, size_t cap)
{
	char idx[32], st[32], exit_code[32], dur[32];
	field_text(stage, "index", idx, sizeof(idx));
	field_text(stage, "state", st, sizeof(st));
	if (strcmp(st, "running") == 0 || strcmp(st, "killed") == 0 || strcmp(st, "skipped") == 0) {
		snprintf(buf, cap, "== stage %s (%s)\n", idx, st);
		return;
	}
	field_text(stage, "exit_code", exit_code, sizeof(exit_code));
	field_duration(stage, "duration_ms", dur, sizeof(dur));
	const msgpack_object *log = cli_mp_get(stage, "log_sha256");
	bool has_log = log != NULL && log->type == MSGPACK_OBJECT_STR;
	snprintf(buf, cap, "== stage %s (exit %s, %s%s)\n", idx, exit_code, dur,
	         has_log ? "" : "; no log");
}
