/*
 * cmd.c - codec and state-independent validation of the replicated log's
 * commands (the list of types is CMD_TYPES in cmd.h; the layouts are in
 * docs/formats.md).
 *
 * An entry is one msgpack array [type, version, time_ms, request_id,
 * fields...] followed by 0-7 nil bytes (0xc0) that make its length a
 * multiple of 8: libraft 0.15 accepts other lengths and then drops them at
 * the next restart.
 *
 * Decoding order, and what each step refuses:
 *   1. size: over ING_COMMAND_MAX_BYTES -> ING_ETOOBIG;
 *   2. framing: mp_parse_exact with pad8 (one object, length a multiple of 8,
 *      only nil padding after it, every declared length bounded by the input)
 *      -> ING_EMALFORMED;
 *   3. type, then version: an unknown type is ING_EVERSION, a known type at
 *      a version outside its min_version..version ING_EVERSION.  A node
 *      never skips an entry it does not understand: the caller stops
 *      instead.  An older version still accepted is decoded into the
 *      current struct with the fields it lacks at their defaults;
 *   4. fields, with an mp_cursor whose `what` is "command <name>", so every
 *      message names the command and the field: wrong type, missing or
 *      extra items -> ING_EMALFORMED, strings or lists over the bounds of
 *      storage/limits.h -> ING_ETOOBIG;
 *   5. cmd_validate: names, paths, addresses, ranges, uniqueness ->
 *      ING_EINVAL (ING_ETOOBIG for sizes and counts).
 * `*out` is written only when every step passed.  Views point into the
 * caller's buffer (sources may be megabytes: no copy), arrays into the zone.
 *
 * cmd_encode runs cmd_validate first, so a node never proposes an entry
 * that every node would then refuse to decode.
 */
#include "node/sm/cmd.h"

#include <stdio.h>
#include <string.h>

#define TIMEOUT_MAX_MS 86400000u /* a stage runs at most a day */

/* Bounds of a stage's resource limits when set (0 = no limit). */
#define LIMIT_CPU_MAX_SECONDS  86400u
#define LIMIT_MEMORY_MIN_BYTES (1024u * 1024u)
#define LIMIT_FILES_MIN        16u
#define LIMIT_FILES_MAX        1048576u
#define LIMIT_OUTPUT_MIN_BYTES 4096u
#define LIMIT_PROCESSES_MAX    4194304u /* as the node's stage_processes */
/* A target's disk space when set: the sandbox's smallest work file system. */
#define LIMIT_DISK_MIN_BYTES (16ull << 20)

struct cmd_info {
	uint32_t type;
	uint32_t version;
	uint32_t min_version;
	uint32_t principal_version;
	const char *name;
	const char *what; /* "command <name>", the prefix of every message */
};

static const struct cmd_info cmd_infos[] = {
#define CMD_INFO(sym, num, ver, min_ver, pr_ver, name) \
	{(num), (ver), (min_ver), (pr_ver), name, "command " name},
    CMD_TYPES(CMD_INFO)
#undef CMD_INFO
};

static const struct cmd_info *cmd_info(uint64_t type)
{
	for (size_t i = 0; i < sizeof(cmd_infos) / sizeof(cmd_infos[0]); i++) {
		if (cmd_infos[i].type == type)
			return &cmd_infos[i];
	}
	return NULL;
}

const char *cmd_type_name(uint32_t type)
{
	const struct cmd_info *t = cmd_info(type);
	return t != NULL ? t->name : NULL;
}

uint32_t cmd_type_version(uint32_t type)
{
	const struct cmd_info *t = cmd_info(type);
	return t != NULL ? t->version : 0;
}

uint32_t cmd_type_min_version(uint32_t type)
{
	const struct cmd_info *t = cmd_info(type);
	return t != NULL ? t->min_version : 0;
}

uint32_t cmd_type_principal_version(uint32_t type)
{
	const struct cmd_info *t = cmd_info(type);
	return t != NULL ? t->principal_version : 0;
}

/* ---- value checks ----------------------------------------------------- */

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

bool cmd_name_valid(struct ing_str s)
{
	if (s.len == 0 || s.len > ING_NAME_MAX || s.ptr[0] == '.' || s.ptr[0] == '-')
		return false;
	for (uint32_t i = 0; i < s.len; i++) {
		if (!name_char(s.ptr[i]))
			return false;
	}
	return true;
}

bool cmd_path_valid(struct ing_str s)
{
	uint32_t start = 0;
	if (s.len == 0 || s.len > ING_PATH_MAX || s.ptr[0] == '/')
		return false;
	for (uint32_t i = 0; i <= s.len; i++) {
		if (i < s.len && s.ptr[i] == '\0')
			return false;
		if (i < s.len && s.ptr[i] != '/')
			continue;
		uint32_t n = i - start;
		if (n == 0 || (n == 2 && s.ptr[start] == '.' && s.ptr[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

static bool param_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_';
}

size_t cmd_param_placeholder(const char *rest, size_t left, struct ing_str *name)
{
	static const char prefix[] = "{param:";
	const size_t pl = sizeof(prefix) - 1;
	if (left <= pl || memcmp(rest, prefix, pl) != 0)
		return 0;
	size_t k = pl;
	while (k < left && k - pl < ING_NAME_MAX && param_char(rest[k]))
		k++;
	if (k == pl || k >= left || rest[k] != '}' || (rest[pl] >= '0' && rest[pl] <= '9'))
		return 0;
	*name = (struct ing_str){rest + pl, (uint32_t)(k - pl)};
	return k + 1;
}

bool cmd_param_missing(const struct rec_target *t, const struct rec_kv *params, uint32_t n,
                       char *why, size_t cap)
{
	for (uint32_t s = 0; s < t->nstages; s++) {
		const struct rec_stage_def *d = &t->stages[s];
		for (uint32_t a = 0; a < d->nargv; a++) {
			struct ing_str w = d->argv[a], name;
			for (uint32_t i = 0; i < w.len; i++) {
				size_t k = cmd_param_placeholder(w.ptr + i, w.len - i, &name);
				if (k == 0)
					continue;
				uint32_t p = 0;
				while (p < n && !ing_str_eq(params[p].key, name))
					p++;
				if (p == n) {
					snprintf(why, cap,
					         "stage '%.*s': argv uses {param:%.*s} but the job "
					         "has no "
					         "parameter %.*s",
					         ING_STR_FMT(d->name), ING_STR_FMT(name),
					         ING_STR_FMT(name));
					return true;
				}
				i += (uint32_t)k - 1;
			}
		}
	}
	return false;
}

int cmd_paths_layout(const char *what, const char *field, uint32_t n,
                     const struct ing_str *(*at)(const void *, uint32_t), const void *list,
                     struct ing_error *e)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct ing_str *p = at(list, i);
		uint32_t start = 0;
		for (uint32_t k = 0; k <= p->len; k++) {
			if (k < p->len && p->ptr[k] != '/')
				continue;
			if (k - start == 1 && p->ptr[start] == '.')
				return ing_error_set(e, ING_EINVAL,
				                     "%s: %s: path '%.*s' has a '.' component",
				                     what, field, ING_STR_FMT(*p));
			start = k + 1;
		}
		for (uint32_t j = 0; j < n; j++) {
			const struct ing_str *q = at(list, j);
			if (j != i && q->len > p->len && q->ptr[p->len] == '/' &&
			    memcmp(q->ptr, p->ptr, p->len) == 0)
				return ing_error_set(e, ING_EINVAL,
				                     "%s: %s: '%.*s' cannot be both a file and the "
				                     "directory of '%.*s'",
				                     what, field, ING_STR_FMT(*p), ING_STR_FMT(*q));
		}
	}
	return 0;
}

/* A decimal number <= max without leading zeros, advancing *pp. */
static bool parse_decimal(const char **pp, const char *end, unsigned max, unsigned *out)
{
	const char *p = *pp;
	unsigned v = 0;
	if (p >= end || *p < '0' || *p > '9')
		return false;
	if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')
		return false;
	while (p < end && *p >= '0' && *p <= '9') {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			return false;
		p++;
	}
	*pp = p;
	*out = v;
	return true;
}

bool cmd_address_valid(struct ing_str s)
{
	unsigned v;
	if (s.len == 0 || s.len > ING_ADDRESS_MAX)
		return false;
	const char *p = s.ptr, *end = s.ptr + s.len;
	for (int i = 0; i < 4; i++) {
		if (i > 0 && (p >= end || *p++ != '.'))
			return false;
		if (!parse_decimal(&p, end, 255, &v))
			return false;
	}
	if (p >= end || *p++ != ':')
		return false;
	if (!parse_decimal(&p, end, 65535, &v) || v == 0)
		return false;
	return p == end;
}

static bool env_key_valid(struct ing_str s)
{
	if (s.len == 0 || s.len > ING_NAME_MAX || (s.ptr[0] >= '0' && s.ptr[0] <= '9'))
		return false;
	for (uint32_t i = 0; i < s.len; i++) {
		char ch = s.ptr[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

static bool has_nul(struct ing_str s)
{
	return s.len > 0 && memchr(s.ptr, '\0', s.len) != NULL;
}

/* ---- validation ------------------------------------------------------- */

/*
 * Each check_* returns 0 or sets e to a message "<what>: <field>: <why>".
 * `field` may itself carry context ("stage 'build': argv").
 */

static int check_name(const char *what, const char *field, struct ing_str s, struct ing_error *e)
{
	if (s.len > ING_NAME_MAX)
		return ing_error_set(e, ING_ETOOBIG, "%s: %s: %u bytes exceeds %d", what, field,
		                     s.len, ING_NAME_MAX);
	if (!cmd_name_valid(s))
		return ing_error_set(e, ING_EINVAL,
		                     "%s: %s: invalid name (1-%d bytes of [A-Za-z0-9._-], not "
		                     "starting with '.' or '-')",
		                     what, field, ING_NAME_MAX);
	return 0;
}

static int check_text(const char *what, const char *field, struct ing_str s, uint32_t max,
                      struct ing_error *e)
{
	if (s.len > max)
		return ing_error_set(e, ING_ETOOBIG, "%s: %s: %u bytes exceeds %u", what, field,
		                     s.len, max);
	if (has_nul(s))
		return ing_error_set(e, ING_EINVAL, "%s: %s: contains a NUL byte", what, field);
	return 0;
}

static int check_id(const char *what, const char *field, uint64_t v, struct ing_error *e)
{
	if (v == 0)
		return ing_error_set(e, ING_EINVAL, "%s: %s: must be at least 1", what, field);
	return 0;
}

static int check_request_id(const char *what, struct ing_str s, struct ing_error *e)
{
	if (s.len > ING_REQUEST_ID_MAX)
		return ing_error_set(e, ING_ETOOBIG, "%s: request_id: %u bytes exceeds %d", what,
		                     s.len, ING_REQUEST_ID_MAX);
	for (uint32_t i = 0; i < s.len; i++) {
		unsigned char ch = (unsigned char)s.ptr[i];
		if (ch < 0x21 || ch > 0x7e)
			return ing_error_set(e, ING_EINVAL,
			                     "%s: request_id: byte %u is not printable ASCII", what,
			                     i);
	}
	return 0;
}

/* A principal only where the type's version carries one; printable, no
 * control bytes (a JWT subject may be UTF-8). */
static int check_principal(const struct cmd_info *t, const struct cmd *c, struct ing_error *e)
{
	struct ing_str p = c->principal;
	uint32_t version = c->version != 0 ? c->version : t->version;
	if (p.len == 0)
		return 0;
	if (t->principal_version == 0 || version < t->principal_version)
		return ing_error_set(e, ING_EINVAL, "%s: principal: version %u carries none",
		                     t->what, version);
	if (p.len > CMD_PRINCIPAL_MAX)
		return ing_error_set(e, ING_ETOOBIG, "%s: principal: %u bytes exceeds %d", t->what,
		                     p.len, CMD_PRINCIPAL_MAX);
	for (uint32_t i = 0; i < p.len; i++) {
		unsigned char ch = (unsigned char)p.ptr[i];
		if (ch < 0x20 || ch == 0x7f)
			return ing_error_set(e, ING_EINVAL,
			                     "%s: principal: byte %u is a control character",
			                     t->what, i);
	}
	return 0;
}

static int check_caps(const char *what, uint32_t n, const struct ing_str *caps, struct ing_error *e)
{
	if (n > ING_MAX_CAPS)
		return ing_error_set(e, ING_ETOOBIG, "%s: caps: %u exceeds %d", what, n,
		                     ING_MAX_CAPS);
	for (uint32_t i = 0; i < n; i++) {
		int rv = check_name(what, "caps", caps[i], e);
		if (rv != 0)
			return rv;
		for (uint32_t j = 0; j < i; j++) {
			if (ing_str_eq(caps[i], caps[j]))
				return ing_error_set(e, ING_EINVAL, "%s: caps: '%.*s' is repeated",
				                     what, ING_STR_FMT(caps[i]));
		}
	}
	return 0;
}

static int check_labels(const char *what, uint32_t n, const struct rec_kv *labels,
                        struct ing_error *e)
{
	if (n > ING_MAX_LABELS)
		return ing_error_set(e, ING_ETOOBIG, "%s: labels: %u exceeds %d", what, n,
		                     ING_MAX_LABELS);
	for (uint32_t i = 0; i < n; i++) {
		int rv = check_name(what, "label key", labels[i].key, e);
		if (rv == 0)
			rv = check_text(what, "label value", labels[i].value, ING_LABEL_VALUE_MAX,
			                e);
		if (rv != 0)
			return rv;
		for (uint32_t j = 0; j < i; j++) {
			if (ing_str_eq(labels[i].key, labels[j].key))
				return ing_error_set(e, ING_EINVAL,
				                     "%s: labels: key '%.*s' is repeated", what,
				                     ING_STR_FMT(labels[i].key));
		}
	}
	return 0;
}

/* n paths, each valid and all distinct.  `field` names the list. */
static int check_paths(const char *what, const char *field, uint32_t n,
                       const struct ing_str *(*path_at)(const void *, uint32_t), const void *list,
                       struct ing_error *e)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct ing_str *p = path_at(list, i);
		if (p->len > ING_PATH_MAX)
			return ing_error_set(e, ING_ETOOBIG, "%s: %s: path of %u bytes exceeds %d",
			                     what, field, p->len, ING_PATH_MAX);
		if (!cmd_path_valid(*p)) {
			/* Shown with a NUL as \0: printf would stop at it. */
			char shown[2 * ING_PATH_MAX + 1];
			size_t k = 0;
			for (uint32_t c = 0; c < p->len && k + 2 < sizeof(shown); c++) {
				if (p->ptr[c] == '\0') {
					shown[k++] = '\\';
					shown[k++] = '0';
				} else {
					shown[k++] = p->ptr[c];
				}
			}
			shown[k] = '\0';
			return ing_error_set(e, ING_EINVAL,
			                     "%s: %s: invalid path '%s' (relative, no '..' or "
			                     "empty component, no NUL)",
			                     what, field, shown);
		}
		for (uint32_t j = 0; j < i; j++) {
			if (ing_str_eq(*p, *path_at(list, j)))
				return ing_error_set(e, ING_EINVAL,
				                     "%s: %s: path '%.*s' is repeated", what, field,
				                     ING_STR_FMT(*p));
		}
	}
	return 0;
}

static const struct ing_str *str_at(const void *list, uint32_t i)
{
	return &((const struct ing_str *)list)[i];
}

static const struct ing_str *file_path_at(const void *list, uint32_t i)
{
	return &((const struct cmd_file *)list)[i].path;
}

/* Files carried in a command: 0..max_n of them (at least min_n), valid
 * distinct paths, each at most ING_SOURCE_MAX_BYTES. */
static int check_files(const char *what, const char *field, uint32_t min_n, uint32_t max_n,
                       uint32_t n, const struct cmd_file *files, struct ing_error *e)
{
	if (n < min_n)
		return ing_error_set(e, ING_EINVAL, "%s: %s: at least %u required", what, field,
		                     min_n);
	if (n > max_n)
		return ing_error_set(e, ING_ETOOBIG, "%s: %s: %u exceeds %u", what, field, n,
		                     max_n);
	int rv = check_paths(what, field, n, file_path_at, files, e);
	if (rv != 0)
		return rv;
	for (uint32_t i = 0; i < n; i++) {
		if (files[i].data.len > ING_SOURCE_MAX_BYTES)
			return ing_error_set(e, ING_ETOOBIG, "%s: %s: '%.*s' has %u bytes, over %u",
			                     what, field, ING_STR_FMT(files[i].path),
			                     files[i].data.len, ING_SOURCE_MAX_BYTES);
	}
	return 0;
}

/* stdout: "" (not captured), or a valid path that is not a declared output. */
static int check_stdout(const char *what, const struct rec_stage_def *s, struct ing_error *e)
{
	char field[ING_NAME_MAX + 32];
	if (s->stdout_path.len == 0)
		return 0;
	snprintf(field, sizeof(field), "stage '%.*s': stdout", ING_STR_FMT(s->name));
	int rv = check_paths(what, field, 1, str_at, &s->stdout_path, e);
	if (rv != 0)
		return rv;
	for (uint32_t i = 0; i < s->noutputs; i++) {
		if (ing_str_eq(s->stdout_path, s->outputs[i]))
			return ing_error_set(e, ING_EINVAL,
			                     "%s: %s: '%.*s' is also a declared output (the stdout "
			                     "file is an output by itself)",
			                     what, field, ING_STR_FMT(s->stdout_path));
	}
	return 0;
}

/* Each limit is 0 (none) or within its bounds. */
static int check_limits(const char *what, const struct rec_stage_def *s, struct ing_error *e)
{
	const struct rec_stage_limits *l = &s->limits;
	const char *bad = NULL;
	char range[64];
	uint64_t v = 0;
	if (l->cpu_seconds > LIMIT_CPU_MAX_SECONDS) {
		bad = "cpu_seconds";
		v = l->cpu_seconds;
		snprintf(range, sizeof(range), "0 (none) or 1..%u", LIMIT_CPU_MAX_SECONDS);
	} else if (l->memory_bytes != 0 && l->memory_bytes < LIMIT_MEMORY_MIN_BYTES) {
		bad = "memory_bytes";
		v = l->memory_bytes;
		snprintf(range, sizeof(range), "0 (none) or at least %u", LIMIT_MEMORY_MIN_BYTES);
	} else if (l->open_files != 0 &&
	           (l->open_files < LIMIT_FILES_MIN || l->open_files > LIMIT_FILES_MAX)) {
		bad = "open_files";
		v = l->open_files;
		snprintf(range, sizeof(range), "0 (none) or %u..%u", LIMIT_FILES_MIN,
		         LIMIT_FILES_MAX);
	} else if (l->output_bytes != 0 && l->output_bytes < LIMIT_OUTPUT_MIN_BYTES) {
		bad = "output_bytes";
		v = l->output_bytes;
		snprintf(range, sizeof(range), "0 (none) or at least %u", LIMIT_OUTPUT_MIN_BYTES);
	} else if (l->processes > LIMIT_PROCESSES_MAX) {
		bad = "processes";
		v = l->processes;
		snprintf(range, sizeof(range), "0 (none) or 1..%u", LIMIT_PROCESSES_MAX);
	}
	if (bad == NULL)
		return 0;
	return ing_error_set(e, ING_EINVAL, "%s: stage '%.*s': limits: %s %llu not %s", what,
	                     ING_STR_FMT(s->name), bad, (unsigned long long)v, range);
}

static int check_stage(const char *what, const struct rec_stage_def *s, struct ing_error *e)
{
	char field[ING_NAME_MAX + 32];
	int rv;

	snprintf(field, sizeof(field), "stage '%.*s': argv", ING_STR_FMT(s->name));
	if (s->nargv == 0)
		return ing_error_set(e, ING_EINVAL, "%s: %s is empty", what, field);
	if (s->nargv > ING_MAX_ARGV)
		return ing_error_set(e, ING_ETOOBIG, "%s: %s: %u elements exceeds %d", what, field,
		                     s->nargv, ING_MAX_ARGV);
	for (uint32_t i = 0; i < s->nargv; i++) {
		if (s->argv[i].len == 0)
			return ing_error_set(e, ING_EINVAL, "%s: %s: element %u is empty", what,
			                     field, i);
		rv = check_text(what, field, s->argv[i], ING_ARG_MAX, e);
		if (rv != 0)
			return rv;
	}

	if (s->timeout_ms < 1 || s->timeout_ms > TIMEOUT_MAX_MS)
		return ing_error_set(
		    e, ING_EINVAL, "%s: stage '%.*s': timeout_ms %llu not in 1..%u", what,
		    ING_STR_FMT(s->name), (unsigned long long)s->timeout_ms, TIMEOUT_MAX_MS);

	snprintf(field, sizeof(field), "stage '%.*s': env", ING_STR_FMT(s->name));
	if (s->nenv > ING_MAX_ENV)
		return ing_error_set(e, ING_ETOOBIG, "%s: %s: %u exceeds %d", what, field, s->nenv,
		                     ING_MAX_ENV);
	for (uint32_t i = 0; i < s->nenv; i++) {
		if (!env_key_valid(s->env[i].key))
			return ing_error_set(e, ING_EINVAL,
			                     "%s: %s: invalid key (1-%d bytes of "
			                     "[A-Za-z_][A-Za-z0-9_]*)",
			                     what, field, ING_NAME_MAX);
		for (uint32_t j = 0; j < i; j++) {
			if (ing_str_eq(s->env[i].key, s->env[j].key))
				return ing_error_set(e, ING_EINVAL,
				                     "%s: %s: key '%.*s' is repeated", what, field,
				                     ING_STR_FMT(s->env[i].key));
		}
		rv = check_text(what, field, s->env[i].value, ING_ARG_MAX, e);
		if (rv != 0)
			return rv;
	}

	snprintf(field, sizeof(field), "stage '%.*s': outputs", ING_STR_FMT(s->name));
	/* The stdout file is reported as one more output. */
	uint32_t max_outputs = ING_MAX_OUTPUTS - (s->stdout_path.len > 0 ? 1 : 0);
	if (s->noutputs > max_outputs)
		return ing_error_set(e, ING_ETOOBIG, "%s: %s: %u exceeds %u%s", what, field,
		                     s->noutputs, max_outputs,
		                     s->stdout_path.len > 0 ? " (stdout is one more)" : "");
	rv = check_paths(what, field, s->noutputs, str_at, s->outputs, e);
	if (rv == 0)
		rv = check_stdout(what, s, e);
	if (rv == 0)
		rv = check_limits(what, s, e);
	if (rv == 0 && s->gpus > ING_MAX_GPUS)
		rv = ing_error_set(e, ING_ETOOBIG, "%s: stage '%.*s': gpus: %u exceeds %d", what,
		                   ING_STR_FMT(s->name), s->gpus, ING_MAX_GPUS);
	return rv;
}

/* GPU indexes (job_assign): at most ING_MAX_GPUS, each <= ING_GPU_INDEX_MAX,
 * unique. */
static int check_gpu_indexes(const char *what, uint32_t n, const uint32_t *v, struct ing_error *e)
{
	if (n > ING_MAX_GPUS)
		return ing_error_set(e, ING_ETOOBIG, "%s: gpus: %u exceeds %d", what, n,
		                     ING_MAX_GPUS);
	for (uint32_t i = 0; i < n; i++) {
		if (v[i] > ING_GPU_INDEX_MAX)
			return ing_error_set(e, ING_EINVAL, "%s: gpus: index %u exceeds %d", what,
			                     v[i], ING_GPU_INDEX_MAX);
		for (uint32_t j = 0; j < i; j++)
			if (v[i] == v[j])
				return ing_error_set(e, ING_EINVAL,
				                     "%s: gpus: index %u is repeated", what, v[i]);
	}
	return 0;
}

/* GPUs offered (node_register): as indexes, plus each uuid's text. */
static int check_gpus(const char *what, uint32_t n, const struct rec_gpu *g, struct ing_error *e)
{
	if (n > ING_MAX_GPUS)
		return ing_error_set(e, ING_ETOOBIG, "%s: gpus: %u exceeds %d", what, n,
		                     ING_MAX_GPUS);
	for (uint32_t i = 0; i < n; i++) {
		int rv;
		if (g[i].index > ING_GPU_INDEX_MAX)
			return ing_error_set(e, ING_EINVAL, "%s: gpus: index %u exceeds %d", what,
			                     g[i].index, ING_GPU_INDEX_MAX);
		for (uint32_t j = 0; j < i; j++)
			if (g[i].index == g[j].index)
				return ing_error_set(e, ING_EINVAL,
				                     "%s: gpus: index %u is repeated", what,
				                     g[i].index);
		rv = check_text(what, "gpus: uuid", g[i].uuid, ING_GPU_UUID_MAX, e);
		if (rv != 0)
			return rv;
	}
	return 0;
}

static int check_params(const char *what, uint32_t n, const struct rec_kv *p, struct ing_error *e)
{
	if (n > ING_MAX_ENV)
		return ing_error_set(e, ING_ETOOBIG, "%s: params: %u exceeds %d", what, n,
		                     ING_MAX_ENV);
	for (uint32_t i = 0; i < n; i++) {
		if (!env_key_valid(p[i].key))
			return ing_error_set(e, ING_EINVAL,
			                     "%s: params: invalid name (1-%d bytes of "
			                     "[A-Za-z_][A-Za-z0-9_]*)",
			                     what, ING_NAME_MAX);
		for (uint32_t j = 0; j < i; j++) {
			if (ing_str_eq(p[i].key, p[j].key))
				return ing_error_set(e, ING_EINVAL,
				                     "%s: params: name '%.*s' is repeated", what,
				                     ING_STR_FMT(p[i].key));
		}
		int rv = check_text(what, "params: value", p[i].value, ING_ARG_MAX, e);
		if (rv != 0)
			return rv;
	}
	return 0;
}

static int check_target(const char *what, const struct rec_target *t, struct ing_error *e)
{
	int rv = check_name(what, "name", t->name, e);
	if (rv == 0)
		rv = check_text(what, "description", t->description, ING_MESSAGE_MAX, e);
	if (rv == 0)
		rv = check_caps(what, t->ncaps, t->caps, e);
	if (rv == 0)
		rv = check_labels(what, t->nlabels, t->labels, e);
	if (rv == 0 && t->gpus > ING_MAX_GPUS)
		rv = ing_error_set(e, ING_ETOOBIG, "%s: gpus: %u exceeds %d", what, t->gpus,
		                   ING_MAX_GPUS);
	if (rv == 0 && t->disk_bytes != 0 && t->disk_bytes < LIMIT_DISK_MIN_BYTES)
		rv = ing_error_set(e, ING_EINVAL,
		                   "%s: disk_bytes %llu not 0 (none) or at least %llu (16 MiB)",
		                   what, (unsigned long long)t->disk_bytes,
		                   (unsigned long long)LIMIT_DISK_MIN_BYTES);
	if (rv != 0)
		return rv;
	if (t->nstages == 0)
		return ing_error_set(e, ING_EINVAL, "%s: stages: a target needs at least one stage",
		                     what);
	if (t->nstages > ING_MAX_STAGES)
		return ing_error_set(e, ING_ETOOBIG, "%s: stages: %u exceeds %d", what, t->nstages,
		                     ING_MAX_STAGES);
	for (uint32_t i = 0; i < t->nstages; i++) {
		rv = check_name(what, "stage name", t->stages[i].name, e);
		if (rv != 0)
			return rv;
		for (uint32_t j = 0; j < i; j++) {
			if (ing_str_eq(t->stages[i].name, t->stages[j].name))
				return ing_error_set(e, ING_EINVAL,
				                     "%s: stage name: '%.*s' is repeated", what,
				                     ING_STR_FMT(t->stages[i].name));
		}
		rv = check_stage(what, &t->stages[i], e);
		if (rv != 0)
			return rv;
	}
	return 0;
}

static int check_stage_index(const char *what, uint32_t stage, struct ing_error *e)
{
	if (stage >= ING_MAX_STAGES)
		return ing_error_set(e, ING_EINVAL, "%s: stage: %u is not below %d", what, stage,
		                     ING_MAX_STAGES);
	return 0;
}

static int check_address(const char *what, const char *field, struct ing_str s, struct ing_error *e)
{
	if (!cmd_address_valid(s))
		return ing_error_set(
		    e, ING_EINVAL, "%s: %s: '%.*s' is not an IPv4 address a.b.c.d:port", what,
		    field, (int)(s.len > ING_ADDRESS_MAX ? ING_ADDRESS_MAX : s.len), s.ptr);
	return 0;
}

bool cmd_setting_known(struct ing_str name)
{
	return ing_str_eq_c(name, CMD_SETTING_JOB_RETENTION) ||
	       ing_str_eq_c(name, CMD_SETTING_DEDUPE_WINDOW);
}

static int check_stage_finish(const char *w, const struct cmd *c, struct ing_error *e)
{
	const __typeof__(c->u.job_stage_finish) *s = &c->u.job_stage_finish;
	int rv = check_id(w, "job", s->job, e);
	if (rv == 0)
		rv = check_id(w, "attempt", s->attempt, e);
	if (rv == 0)
		rv = check_stage_index(w, s->stage, e);
	if (rv != 0)
		return rv;
	if (!s->has_log && s->log.len != 0)
		return ing_error_set(e, ING_EINVAL, "%s: log: bytes given but has_log is false", w);
	if (s->log.len > ING_SOURCE_MAX_BYTES)
		return ing_error_set(e, ING_ETOOBIG, "%s: log: %u bytes exceeds %u", w, s->log.len,
		                     ING_SOURCE_MAX_BYTES);
	rv = check_files(w, "outputs", 0, ING_MAX_OUTPUTS, s->noutputs, s->outputs, e);
	if (rv != 0)
		return rv;
	switch (s->then) {
	case CMD_THEN_NONE:
	case CMD_THEN_NEXT:
		if (s->outcome != 0 || s->message.len != 0)
			return ing_error_set(e, ING_EINVAL,
			                     "%s: outcome and message are only for then 2 (finish)",
			                     w);
		if (s->then == CMD_THEN_NEXT && s->exit_code != 0)
			return ing_error_set(e, ING_EINVAL,
			                     "%s: then: no next stage after a stage that failed "
			                     "(exit code %lld)",
			                     w, (long long)s->exit_code);
		if (s->then == CMD_THEN_NEXT && s->stage + 1 >= ING_MAX_STAGES)
			return ing_error_set(e, ING_EINVAL, "%s: then: stage %u is the last one", w,
			                     s->stage);
		return 0;
	case CMD_THEN_FINISH:
		if (s->outcome != REC_JOB_SUCCEEDED && s->outcome != REC_JOB_FAILED &&
		    s->outcome != REC_JOB_CANCELLED)
			return ing_error_set(
			    e, ING_EINVAL,
			    "%s: outcome: %u is not 3 (succeeded), 4 (failed) or 5 (cancelled)", w,
			    s->outcome);
		if (s->outcome == REC_JOB_SUCCEEDED && s->exit_code != 0)
			return ing_error_set(e, ING_EINVAL,
			                     "%s: outcome: a job whose stage failed (exit code "
			                     "%lld) cannot succeed",
			                     w, (long long)s->exit_code);
		return check_text(w, "message", s->message, ING_MESSAGE_MAX, e);
	default:
		return ing_error_set(e, ING_EINVAL,
		                     "%s: then: %u is not 0 (none), 1 (next stage) or 2 (finish)",
		                     w, s->then);
	}
}

int cmd_validate(const struct cmd *c, struct ing_error *e)
{
	const struct cmd_info *t = cmd_info(c->type);
	if (t == NULL)
		return ing_error_set(e, ING_EINVAL, "unknown command type %u", c->type);
	const char *w = t->what;
	int rv = check_request_id(w, c->request_id, e);
	if (rv == 0)
		rv = check_principal(t, c, e);
	if (rv != 0)
		return rv;

	switch (c->type) {
	case CMD_TARGET_PUT: return check_target(w, &c->u.target_put.spec, e);
	case CMD_TARGET_DELETE: return check_name(w, "name", c->u.target_delete.name, e);
	case CMD_JOB_SUBMIT: {
		const __typeof__(c->u.job_submit) *s = &c->u.job_submit;
		rv = check_name(w, "tenant", s->tenant, e);
		if (rv == 0)
			rv = check_name(w, "target", s->target, e);
		if (rv != 0)
			return rv;
		if (s->priority > ING_MAX_PRIORITY)
			return ing_error_set(e, ING_EINVAL, "%s: priority: %u exceeds %d", w,
			                     s->priority, ING_MAX_PRIORITY);
		if (s->max_attempts < 1 || s->max_attempts > ING_MAX_ATTEMPTS)
			return ing_error_set(e, ING_EINVAL, "%s: max_attempts: %u not in 1..%d", w,
			                     s->max_attempts, ING_MAX_ATTEMPTS);
		rv = check_files(w, "sources", 1, ING_MAX_SOURCES, s->nsources, s->sources, e);
		if (rv == 0)
			rv = check_params(w, s->nparams, s->params, e);
		return rv;
	}
	case CMD_JOB_ASSIGN: {
		rv = check_id(w, "job", c->u.job_assign.job, e);
		if (rv == 0)
			rv = check_id(w, "node", c->u.job_assign.node, e);
		if (rv == 0)
			rv = check_id(w, "attempt", c->u.job_assign.attempt, e);
		if (rv == 0)
			rv = check_gpu_indexes(w, c->u.job_assign.ngpus, c->u.job_assign.gpus, e);
		if (rv == 0 && c->u.job_assign.ahead > ING_MAX_SLOTS)
			rv = ing_error_set(e, ING_EINVAL, "%s: ahead: %u exceeds %d", w,
			                   c->u.job_assign.ahead, ING_MAX_SLOTS);
		if (rv == 0 && c->u.job_assign.ahead > 0 && c->u.job_assign.ngpus > 0)
			rv =
			    ing_error_set(e, ING_EINVAL,
			                  "%s: an assignment ahead of a free slot holds no GPU", w);
		return rv;
	}
	case CMD_JOB_STAGE_START: {
		rv = check_id(w, "job", c->u.job_stage_start.job, e);
		if (rv == 0)
			rv = check_id(w, "attempt", c->u.job_stage_start.attempt, e);
		if (rv == 0)
			rv = check_stage_index(w, c->u.job_stage_start.stage, e);
		return rv;
	}
	case CMD_JOB_STAGE_FINISH: return check_stage_finish(w, c, e);
	case CMD_JOB_FINISH: {
		const __typeof__(c->u.job_finish) *s = &c->u.job_finish;
		rv = check_id(w, "job", s->job, e);
		if (rv == 0)
			rv = check_id(w, "attempt", s->attempt, e);
		if (rv != 0)
			return rv;
		if (s->outcome != REC_JOB_SUCCEEDED && s->outcome != REC_JOB_FAILED &&
		    s->outcome != REC_JOB_CANCELLED)
			return ing_error_set(
			    e, ING_EINVAL,
			    "%s: outcome: %u is not 3 (succeeded), 4 (failed) or 5 "
			    "(cancelled)",
			    w, s->outcome);
		return check_text(w, "message", s->message, ING_MESSAGE_MAX, e);
	}
	case CMD_JOB_CANCEL:
		rv = check_id(w, "job", c->u.job_cancel.job, e);
		if (rv == 0)
			rv = check_text(w, "reason", c->u.job_cancel.reason, ING_MESSAGE_MAX, e);
		return rv;
	case CMD_JOB_REQUEUE:
		rv = check_id(w, "job", c->u.job_requeue.job, e);
		if (rv == 0)
			rv = check_id(w, "attempt", c->u.job_requeue.attempt, e);
		if (rv == 0)
			rv = check_text(w, "reason", c->u.job_requeue.reason, ING_MESSAGE_MAX, e);
		return rv;
	case CMD_JOB_RETRY: return check_id(w, "job", c->u.job_retry.job, e);
	case CMD_JOB_EXPIRE: return check_id(w, "job", c->u.job_expire.job, e);
	case CMD_NODE_REGISTER: {
		const struct rec_node *s = &c->u.node_register.spec;
		rv = check_id(w, "id", s->id, e);
		if (rv == 0)
			rv = check_caps(w, s->ncaps, s->caps, e);
		if (rv == 0)
			rv = check_labels(w, s->nlabels, s->labels, e);
		if (rv == 0 && s->slots > ING_MAX_SLOTS)
			rv = ing_error_set(e, ING_EINVAL, "%s: slots: %u exceeds %d", w, s->slots,
			                   ING_MAX_SLOTS);
		if (rv == 0)
			rv = check_gpus(w, s->ngpus, s->gpus, e);
		return rv;
	}
	case CMD_NODE_DRAIN: return check_id(w, "node", c->u.node_drain.node, e);
	case CMD_NODE_DOWN:
		rv = check_id(w, "node", c->u.node_down.node, e);
		if (rv == 0)
			rv = check_text(w, "reason", c->u.node_down.reason, ING_MESSAGE_MAX, e);
		return rv;
	case CMD_NODE_UP: return check_id(w, "node", c->u.node_up.node, e);
	case CMD_NODE_FORGET: return check_id(w, "node", c->u.node_forget.node, e);
	case CMD_MEMBER_PUT: {
		const struct rec_member *m = &c->u.member_put.member;
		rv = check_id(w, "id", m->id, e);
		if (rv == 0)
			rv = check_address(w, "raft_address", m->raft_address, e);
		if (rv == 0)
			rv = check_address(w, "api_address", m->api_address, e);
		if (rv == 0 && m->role >= REC_ROLE_COUNT)
			rv = ing_error_set(
			    e, ING_EINVAL,
			    "%s: role: %u is not 0 (voter), 1 (standby) or 2 (spare)", w, m->role);
		return rv;
	}
	case CMD_MEMBER_REMOVE: return check_id(w, "id", c->u.member_remove.id, e);
	case CMD_CLUSTER_INIT: {
		struct ing_str id = c->u.cluster_init.cluster_id;
		bool hex = id.len == CMD_CLUSTER_ID_LEN;
		for (size_t i = 0; hex && i < id.len; i++)
			hex = (id.ptr[i] >= '0' && id.ptr[i] <= '9') ||
			      (id.ptr[i] >= 'a' && id.ptr[i] <= 'f');
		if (!hex)
			return ing_error_set(e, ING_EINVAL,
			                     "%s: cluster_id: not %d lowercase hex digits", w,
			                     CMD_CLUSTER_ID_LEN);
		return 0;
	}
	case CMD_CLUSTER_EVENT: {
		uint8_t k = c->u.cluster_event.kind;
		if (k != REC_EV_LEADER_CHANGED && k != REC_EV_VOTER_REPLACED)
			return ing_error_set(
			    e, ING_EINVAL,
			    "%s: kind: %u is not a cluster event this command records", w, k);
		return check_text(w, "message", c->u.cluster_event.message, ING_MESSAGE_MAX, e);
	}
	case CMD_TOKEN_CREATE: {
		const __typeof__(c->u.token_create) *s = &c->u.token_create;
		if (s->hash.len != ING_SHA256_BYTES)
			return ing_error_set(e, ING_EINVAL, "%s: hash: %u bytes, not %d", w,
			                     s->hash.len, ING_SHA256_BYTES);
		rv = check_name(w, "name", s->name, e);
		if (rv == 0 && s->tenant.len > 0)
			rv = check_name(w, "tenant", s->tenant, e);
		if (rv == 0 && s->role >= REC_TOKEN_ROLE_COUNT)
			rv = ing_error_set(e, ING_EINVAL,
			                   "%s: role: %u is not 0 (admin), 1 (operator), 2 "
			                   "(submitter) or 3 (viewer)",
			                   w, s->role);
		return rv;
	}
	case CMD_TOKEN_REVOKE: return check_id(w, "id", c->u.token_revoke.id, e);
	case CMD_SETTING_PUT: {
		struct ing_str name = c->u.setting_put.name;
		uint64_t v = c->u.setting_put.value;
		if (!cmd_setting_known(name))
			return ing_error_set(
			    e, ING_EINVAL,
			    "%s: name: '%.*s' is not a setting (" CMD_SETTING_JOB_RETENTION
			    " or " CMD_SETTING_DEDUPE_WINDOW ")",
			    w, (int)(name.len > ING_NAME_MAX ? ING_NAME_MAX : name.len), name.ptr);
		if (v != 0 && (v < 1000 || v > CMD_SETTING_MAX_MS))
			return ing_error_set(e, ING_EINVAL,
			                     "%s: value: %llu ms is not 0 (for ever) or 1000..%llu",
			                     w, (unsigned long long)v, CMD_SETTING_MAX_MS);
		return 0;
	}
	case CMD_RETENTION_RUN: {
		uint32_t n = c->u.retention_run.max_jobs;
		if (n < 1 || n > CMD_RETENTION_MAX_JOBS)
			return ing_error_set(e, ING_EINVAL, "%s: max_jobs: %u not in 1..%d", w, n,
			                     CMD_RETENTION_MAX_JOBS);
		return 0;
	}
	}
	return ing_error_set(e, ING_EINTERNAL, "%s: no validation", w);
}

/* ---- encoding --------------------------------------------------------- */

static void pack_header(msgpack_packer *pk, const struct cmd *c, uint32_t nfields)
{
	msgpack_pack_array(pk, 4 + nfields);
	msgpack_pack_uint64(pk, c->type);
	msgpack_pack_uint64(pk, cmd_type_version(c->type));
	msgpack_pack_uint64(pk, c->time_ms);
	if (c->principal.len == 0) {
		mp_pack_str(pk, c->request_id);
		return;
	}
	msgpack_pack_array(pk, 2);
	mp_pack_str(pk, c->request_id);
	mp_pack_str(pk, c->principal);
}

static void pack_files(msgpack_packer *pk, uint32_t n, const struct cmd_file *v)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(pk, 2);
		mp_pack_str(pk, v[i].path);
		mp_pack_bin(pk, v[i].data.ptr, v[i].data.len);
	}
}

static void pack_target(msgpack_packer *pk, const struct cmd *c)
{
	const struct rec_target *t = &c->u.target_put.spec;
	pack_header(pk, c, 8);
	mp_pack_str(pk, t->name);
	mp_pack_str(pk, t->description);
	mp_pack_str_list(pk, t->ncaps, t->caps);
	rec_pack_kv_list(pk, t->nlabels, t->labels);
	msgpack_pack_uint64(pk, t->gpus);
	mp_pack_bool(pk, t->network);
	msgpack_pack_uint64(pk, t->disk_bytes);
	rec_pack_stage_defs(pk, t->nstages, t->stages);
}

static void pack_fields(msgpack_packer *pk, const struct cmd *c)
{
	switch (c->type) {
	case CMD_TARGET_PUT: pack_target(pk, c); break;
	case CMD_TARGET_DELETE:
		pack_header(pk, c, 1);
		mp_pack_str(pk, c->u.target_delete.name);
		break;
	case CMD_JOB_SUBMIT: {
		const __typeof__(c->u.job_submit) *s = &c->u.job_submit;
		pack_header(pk, c, 7);
		mp_pack_str(pk, s->tenant);
		mp_pack_str(pk, s->target);
		msgpack_pack_uint64(pk, s->priority);
		msgpack_pack_uint64(pk, s->max_attempts);
		msgpack_pack_uint64(pk, s->deadline_at_ms);
		pack_files(pk, s->nsources, s->sources);
		rec_pack_kv_list(pk, s->nparams, s->params);
		break;
	}
	case CMD_JOB_ASSIGN:
		pack_header(pk, c, 7);
		msgpack_pack_uint64(pk, c->u.job_assign.job);
		msgpack_pack_uint64(pk, c->u.job_assign.node);
		msgpack_pack_uint64(pk, c->u.job_assign.attempt);
		msgpack_pack_uint64(pk, c->u.job_assign.lease_until_ms);
		rec_pack_gpu_indexes(pk, c->u.job_assign.ngpus, c->u.job_assign.gpus);
		mp_pack_bool(pk, c->u.job_assign.start);
		msgpack_pack_uint32(pk, c->u.job_assign.ahead);
		break;
	case CMD_JOB_STAGE_START:
		pack_header(pk, c, 3);
		msgpack_pack_uint64(pk, c->u.job_stage_start.job);
		msgpack_pack_uint64(pk, c->u.job_stage_start.attempt);
		msgpack_pack_uint64(pk, c->u.job_stage_start.stage);
		break;
	case CMD_JOB_STAGE_FINISH: {
		const __typeof__(c->u.job_stage_finish) *s = &c->u.job_stage_finish;
		pack_header(pk, c, 11);
		msgpack_pack_uint64(pk, s->job);
		msgpack_pack_uint64(pk, s->attempt);
		msgpack_pack_uint64(pk, s->stage);
		msgpack_pack_int64(pk, s->exit_code);
		msgpack_pack_uint64(pk, s->duration_ms);
		if (s->has_log)
			mp_pack_bin(pk, s->log.ptr, s->log.len);
		else
			msgpack_pack_nil(pk);
		pack_files(pk, s->noutputs, s->outputs);
		mp_pack_bool(pk, s->started);
		msgpack_pack_uint64(pk, s->then);
		msgpack_pack_uint64(pk, s->outcome);
		mp_pack_str(pk, s->message);
		break;
	}
	case CMD_JOB_FINISH:
		pack_header(pk, c, 4);
		msgpack_pack_uint64(pk, c->u.job_finish.job);
		msgpack_pack_uint64(pk, c->u.job_finish.attempt);
		msgpack_pack_uint64(pk, c->u.job_finish.outcome);
		mp_pack_str(pk, c->u.job_finish.message);
		break;
	case CMD_JOB_CANCEL:
		pack_header(pk, c, 2);
		msgpack_pack_uint64(pk, c->u.job_cancel.job);
		mp_pack_str(pk, c->u.job_cancel.reason);
		break;
	case CMD_JOB_REQUEUE:
		pack_header(pk, c, 3);
		msgpack_pack_uint64(pk, c->u.job_requeue.job);
		msgpack_pack_uint64(pk, c->u.job_requeue.attempt);
		mp_pack_str(pk, c->u.job_requeue.reason);
		break;
	case CMD_JOB_RETRY:
		pack_header(pk, c, 1);
		msgpack_pack_uint64(pk, c->u.job_retry.job);
		break;
	case CMD_JOB_EXPIRE:
		pack_header(pk, c, 1);
		msgpack_pack_uint64(pk, c->u.job_expire.job);
		break;
	case CMD_NODE_REGISTER: {
		const struct rec_node *s = &c->u.node_register.spec;
		pack_header(pk, c, 5);
		msgpack_pack_uint64(pk, s->id);
		mp_pack_str_list(pk, s->ncaps, s->caps);
		rec_pack_kv_list(pk, s->nlabels, s->labels);
		msgpack_pack_uint64(pk, s->slots);
		rec_pack_gpus(pk, s->ngpus, s->gpus);
		break;
	}
	case CMD_NODE_DRAIN:
		pack_header(pk, c, 3);
		msgpack_pack_uint64(pk, c->u.node_drain.node);
		mp_pack_bool(pk, c->u.node_drain.draining);
		msgpack_pack_uint64(pk, c->u.node_drain.deadline_ms);
		break;
	case CMD_NODE_DOWN:
		pack_header(pk, c, 2);
		msgpack_pack_uint64(pk, c->u.node_down.node);
		mp_pack_str(pk, c->u.node_down.reason);
		break;
	case CMD_NODE_UP:
		pack_header(pk, c, 1);
		msgpack_pack_uint64(pk, c->u.node_up.node);
		break;
	case CMD_NODE_FORGET:
		pack_header(pk, c, 1);
		msgpack_pack_uint64(pk, c->u.node_forget.node);
		break;
	case CMD_MEMBER_PUT: {
		const struct rec_member *m = &c->u.member_put.member;
		pack_header(pk, c, 4);
		msgpack_pack_uint64(pk, m->id);
		mp_pack_str(pk, m->raft_address);
		mp_pack_str(pk, m->api_address);
		msgpack_pack_uint64(pk, m->role);
		break;
	}
	case CMD_MEMBER_REMOVE:
		pack_header(pk, c, 1);
		msgpack_pack_uint64(pk, c->u.member_remove.id);
		break;
	case CMD_CLUSTER_INIT:
		pack_header(pk, c, 1);
		mp_pack_str(pk, c->u.cluster_init.cluster_id);
		break;
	case CMD_CLUSTER_EVENT:
		pack_header(pk, c, 3);
		msgpack_pack_uint64(pk, c->u.cluster_event.kind);
		msgpack_pack_uint64(pk, c->u.cluster_event.member);
		mp_pack_str(pk, c->u.cluster_event.message);
		break;
	case CMD_TOKEN_CREATE: {
		const __typeof__(c->u.token_create) *s = &c->u.token_create;
		pack_header(pk, c, 5);
		mp_pack_bin(pk, s->hash.ptr, s->hash.len);
		mp_pack_str(pk, s->name);
		mp_pack_str(pk, s->tenant);
		msgpack_pack_uint64(pk, s->role);
		msgpack_pack_uint64(pk, s->expires_at_ms);
		break;
	}
	case CMD_TOKEN_REVOKE:
		pack_header(pk, c, 1);
		msgpack_pack_uint64(pk, c->u.token_revoke.id);
		break;
	case CMD_SETTING_PUT:
		pack_header(pk, c, 2);
		mp_pack_str(pk, c->u.setting_put.name);
		msgpack_pack_uint64(pk, c->u.setting_put.value);
		break;
	case CMD_RETENTION_RUN:
		pack_header(pk, c, 1);
		msgpack_pack_uint64(pk, c->u.retention_run.max_jobs);
		break;
	}
}

/*
 * The padding is computed on o's whole length, so the command must start at
 * a multiple of 8 (an empty mp_out, normally).
 */
int cmd_encode(const struct cmd *c, struct mp_out *o, struct ing_error *e)
{
	int rv = cmd_validate(c, e);
	if (rv != 0)
		return rv;
	if (o->len % 8 != 0)
		return ing_error_set(e, ING_EINVAL,
		                     "cmd_encode: output holds %zu bytes, not a multiple of 8",
		                     o->len);
	pack_fields(&o->pk, c);
	mp_out_pad8(o);
	if (mp_out_failed(o) != 0)
		return ing_error_set(e, ING_ENOMEM, "%s: out of memory encoding",
		                     cmd_info(c->type)->what);
	return 0;
}

/* ---- decoding --------------------------------------------------------- */

/* An unsigned integer stored in a uint8_t field; the exact range is
 * cmd_validate's. */
static int next_u8(struct mp_cursor *c, const char *field, uint8_t *out)
{
	uint64_t v;
	int rv = mp_next_u64(c, field, UINT64_MAX, &v);
	if (rv != 0)
		return rv;
	if (v > UINT8_MAX)
		return ing_error_set(c->err, ING_EINVAL, "%s: field '%s': %llu is out of range",
		                     c->what, field, (unsigned long long)v);
	*out = (uint8_t)v;
	return 0;
}

/* [[path(str), data(bin)]...] */
static int next_files(struct mp_cursor *c, const char *field, uint32_t max_n, msgpack_zone *z,
                      uint32_t *n, struct cmd_file **out)
{
	struct mp_cursor sub, f;
	void *arr = NULL;
	int rv = mp_next_array(c, field, max_n, &sub);
	if (rv == 0)
		rv = mp_zarray(c, sub.n, sizeof(struct cmd_file), z, &arr);
	for (uint32_t i = 0; rv == 0 && i < sub.n; i++) {
		struct cmd_file *p = &((struct cmd_file *)arr)[i];
		rv = mp_next_tuple(&sub, field, 2, &f);
		if (rv == 0)
			rv = mp_next_str(&f, "path", ING_PATH_MAX, &p->path);
		if (rv == 0)
			rv = mp_next_bin(&f, "data", ING_SOURCE_MAX_BYTES, &p->data);
	}
	if (rv != 0)
		return rv;
	*n = sub.n;
	*out = arr;
	return 0;
}

/* v5: v4's fields (a v5 entry may carry a principal in its header);
 * v4: [name, description, caps, labels, gpus, network, disk_bytes, stages]
 * with 8-item stages and 5-item limits; v3: [name, description, caps,
 * labels, gpus, stages] with 4-item limits (network false, disk_bytes 0,
 * processes 0); v2: [name, description, caps, labels, stages] with 7-item
 * stages (gpus 0); v1: [name, caps, labels, stages] with 5-item stages
 * (description "", limits 0, stdout "", gpus 0).  The stage layout of each
 * version is rec_stage_layout's of the same number. */
static int decode_target(struct mp_cursor *c, uint32_t version, msgpack_zone *z,
                         struct rec_target *t)
{
	bool legacy = version < 2;
	int rv = mp_next_str(c, "name", ING_NAME_MAX, &t->name);
	t->description = ing_str_c("");
	if (rv == 0 && !legacy)
		rv = mp_next_str(c, "description", ING_MESSAGE_MAX, &t->description);
	if (rv == 0)
		rv =
		    mp_next_str_list(c, "caps", ING_MAX_CAPS, ING_NAME_MAX, z, &t->ncaps, &t->caps);
	if (rv == 0)
		rv = rec_next_kv_list(c, "labels", ING_MAX_LABELS, ING_NAME_MAX,
		                      ING_LABEL_VALUE_MAX, z, &t->nlabels, &t->labels);
	t->gpus = 0;
	if (rv == 0 && version >= 3)
		rv = mp_next_u32(c, "gpus", ING_MAX_GPUS, &t->gpus);
	t->network = false;
	t->disk_bytes = 0;
	if (rv == 0 && version >= 4)
		rv = mp_next_bool(c, "network", &t->network);
	if (rv == 0 && version >= 4)
		rv = mp_next_u64(c, "disk_bytes", UINT64_MAX, &t->disk_bytes);
	if (rv == 0)
		rv = rec_next_stage_defs(
		    c, (enum rec_stage_layout)(version >= REC_STAGES_V4 ? REC_STAGES_V4 : version),
		    z, &t->nstages, &t->stages);
	return rv;
}

/* Reads the fields after the header into out->u. */
static int decode_fields(struct mp_cursor *c, msgpack_zone *z, struct cmd *out)
{
	int rv = 0;
	switch (out->type) {
	case CMD_TARGET_PUT: return decode_target(c, out->version, z, &out->u.target_put.spec);
	case CMD_TARGET_DELETE:
		return mp_next_str(c, "name", ING_NAME_MAX, &out->u.target_delete.name);
	case CMD_JOB_SUBMIT: {
		__typeof__(out->u.job_submit) *s = &out->u.job_submit;
		rv = mp_next_str(c, "tenant", ING_NAME_MAX, &s->tenant);
		if (rv == 0)
			rv = mp_next_str(c, "target", ING_NAME_MAX, &s->target);
		if (rv == 0)
			rv = mp_next_u32(c, "priority", UINT32_MAX, &s->priority);
		if (rv == 0)
			rv = mp_next_u32(c, "max_attempts", UINT32_MAX, &s->max_attempts);
		if (rv == 0)
			rv = mp_next_u64(c, "deadline_at_ms", UINT64_MAX, &s->deadline_at_ms);
		if (rv == 0)
			rv =
			    next_files(c, "sources", ING_MAX_SOURCES, z, &s->nsources, &s->sources);
		/* v1 had no params. */
		s->nparams = 0;
		s->params = NULL;
		if (rv == 0 && out->version >= 2)
			rv = rec_next_kv_list(c, "params", ING_MAX_ENV, ING_NAME_MAX, ING_ARG_MAX,
			                      z, &s->nparams, &s->params);
		return rv;
	}
	case CMD_JOB_ASSIGN: {
		__typeof__(out->u.job_assign) *s = &out->u.job_assign;
		rv = mp_next_u64(c, "job", UINT64_MAX, &s->job);
		if (rv == 0)
			rv = mp_next_u64(c, "node", UINT64_MAX, &s->node);
		if (rv == 0)
			rv = mp_next_u32(c, "attempt", UINT32_MAX, &s->attempt);
		if (rv == 0)
			rv = mp_next_u64(c, "lease_until_ms", UINT64_MAX, &s->lease_until_ms);
		/* v1 gave no GPUs. */
		s->ngpus = 0;
		s->gpus = NULL;
		if (rv == 0 && out->version >= 2)
			rv = rec_next_gpu_indexes(c, z, &s->ngpus, &s->gpus);
		/* v1 and v2 never started a stage. */
		s->start = false;
		if (rv == 0 && out->version >= 3)
			rv = mp_next_bool(c, "start", &s->start);
		/* v1 to v3 took a free slot. */
		s->ahead = 0;
		if (rv == 0 && out->version >= 4)
			rv = mp_next_u32(c, "ahead", UINT32_MAX, &s->ahead);
		return rv;
	}
	case CMD_JOB_STAGE_START: {
		__typeof__(out->u.job_stage_start) *s = &out->u.job_stage_start;
		rv = mp_next_u64(c, "job", UINT64_MAX, &s->job);
		if (rv == 0)
			rv = mp_next_u32(c, "attempt", UINT32_MAX, &s->attempt);
		if (rv == 0)
			rv = mp_next_u32(c, "stage", UINT32_MAX, &s->stage);
		return rv;
	}
	case CMD_JOB_STAGE_FINISH: {
		__typeof__(out->u.job_stage_finish) *s = &out->u.job_stage_finish;
		rv = mp_next_u64(c, "job", UINT64_MAX, &s->job);
		if (rv == 0)
			rv = mp_next_u32(c, "attempt", UINT32_MAX, &s->attempt);
		if (rv == 0)
			rv = mp_next_u32(c, "stage", UINT32_MAX, &s->stage);
		if (rv == 0)
			rv = mp_next_i64(c, "exit_code", &s->exit_code);
		if (rv == 0)
			rv = mp_next_u64(c, "duration_ms", UINT64_MAX, &s->duration_ms);
		if (rv != 0)
			return rv;
		/* log: BIN, or nil when the stage left no log. */
		if (c->i < c->n && c->items[c->i].type == MSGPACK_OBJECT_NIL) {
			c->i++;
			s->has_log = false;
		} else {
			rv = mp_next_bin(c, "log", ING_SOURCE_MAX_BYTES, &s->log);
			s->has_log = rv == 0;
		}
		if (rv == 0)
			rv =
			    next_files(c, "outputs", ING_MAX_OUTPUTS, z, &s->noutputs, &s->outputs);
		/* v1: the stage's end alone. */
		s->started = false;
		s->then = CMD_THEN_NONE;
		s->outcome = 0;
		s->message = ing_str_c("");
		if (rv == 0 && out->version >= 2)
			rv = mp_next_bool(c, "started", &s->started);
		if (rv == 0 && out->version >= 2)
			rv = next_u8(c, "then", &s->then);
		if (rv == 0 && out->version >= 2)
			rv = next_u8(c, "outcome", &s->outcome);
		if (rv == 0 && out->version >= 2)
			rv = mp_next_str(c, "message", ING_MESSAGE_MAX, &s->message);
		return rv;
	}
	case CMD_JOB_FINISH: {
		__typeof__(out->u.job_finish) *s = &out->u.job_finish;
		rv = mp_next_u64(c, "job", UINT64_MAX, &s->job);
		if (rv == 0)
			rv = mp_next_u32(c, "attempt", UINT32_MAX, &s->attempt);
		if (rv == 0)
			rv = next_u8(c, "outcome", &s->outcome);
		if (rv == 0)
			rv = mp_next_str(c, "message", ING_MESSAGE_MAX, &s->message);
		return rv;
	}
	case CMD_JOB_CANCEL:
		rv = mp_next_u64(c, "job", UINT64_MAX, &out->u.job_cancel.job);
		if (rv == 0)
			rv = mp_next_str(c, "reason", ING_MESSAGE_MAX, &out->u.job_cancel.reason);
		return rv;
	case CMD_JOB_REQUEUE:
		rv = mp_next_u64(c, "job", UINT64_MAX, &out->u.job_requeue.job);
		if (rv == 0)
			rv = mp_next_u32(c, "attempt", UINT32_MAX, &out->u.job_requeue.attempt);
		if (rv == 0)
			rv = mp_next_str(c, "reason", ING_MESSAGE_MAX, &out->u.job_requeue.reason);
		return rv;
	case CMD_JOB_RETRY: return mp_next_u64(c, "job", UINT64_MAX, &out->u.job_retry.job);
	case CMD_JOB_EXPIRE: return mp_next_u64(c, "job", UINT64_MAX, &out->u.job_expire.job);
	case CMD_NODE_REGISTER: {
		struct rec_node *s = &out->u.node_register.spec;
		rv = mp_next_u64(c, "id", UINT64_MAX, &s->id);
		if (rv == 0)
			rv = mp_next_str_list(c, "caps", ING_MAX_CAPS, ING_NAME_MAX, z, &s->ncaps,
			                      &s->caps);
		if (rv == 0)
			rv = rec_next_kv_list(c, "labels", ING_MAX_LABELS, ING_NAME_MAX,
			                      ING_LABEL_VALUE_MAX, z, &s->nlabels, &s->labels);
		if (rv == 0)
			rv = mp_next_u32(c, "slots", UINT32_MAX, &s->slots);
		/* v1 offered no GPUs. */
		s->ngpus = 0;
		s->gpus = NULL;
		if (rv == 0 && out->version >= 2)
			rv = rec_next_gpus(c, z, &s->ngpus, &s->gpus);
		return rv;
	}
	case CMD_NODE_DRAIN:
		rv = mp_next_u64(c, "node", UINT64_MAX, &out->u.node_drain.node);
		if (rv == 0)
			rv = mp_next_bool(c, "draining", &out->u.node_drain.draining);
		if (rv == 0)
			rv = mp_next_u64(c, "deadline_ms", UINT64_MAX,
			                 &out->u.node_drain.deadline_ms);
		return rv;
	case CMD_NODE_DOWN:
		rv = mp_next_u64(c, "node", UINT64_MAX, &out->u.node_down.node);
		if (rv == 0)
			rv = mp_next_str(c, "reason", ING_MESSAGE_MAX, &out->u.node_down.reason);
		return rv;
	case CMD_NODE_UP: return mp_next_u64(c, "node", UINT64_MAX, &out->u.node_up.node);
	case CMD_NODE_FORGET: return mp_next_u64(c, "node", UINT64_MAX, &out->u.node_forget.node);
	case CMD_MEMBER_PUT: {
		struct rec_member *m = &out->u.member_put.member;
		rv = mp_next_u64(c, "id", UINT64_MAX, &m->id);
		if (rv == 0)
			rv = mp_next_str(c, "raft_address", ING_ADDRESS_MAX, &m->raft_address);
		if (rv == 0)
			rv = mp_next_str(c, "api_address", ING_ADDRESS_MAX, &m->api_address);
		if (rv == 0)
			rv = next_u8(c, "role", &m->role);
		return rv;
	}
	case CMD_MEMBER_REMOVE: return mp_next_u64(c, "id", UINT64_MAX, &out->u.member_remove.id);
	case CMD_CLUSTER_INIT:
		return mp_next_str(c, "cluster_id", CMD_CLUSTER_ID_LEN,
		                   &out->u.cluster_init.cluster_id);
	case CMD_CLUSTER_EVENT:
		rv = next_u8(c, "kind", &out->u.cluster_event.kind);
		if (rv == 0)
			rv = mp_next_u64(c, "member", UINT64_MAX, &out->u.cluster_event.member);
		if (rv == 0)
			rv = mp_next_str(c, "message", ING_MESSAGE_MAX,
			                 &out->u.cluster_event.message);
		return rv;
	case CMD_TOKEN_CREATE: {
		__typeof__(out->u.token_create) *s = &out->u.token_create;
		rv = mp_next_bin_exact(c, "hash", ING_SHA256_BYTES, &s->hash);
		if (rv == 0)
			rv = mp_next_str(c, "name", ING_NAME_MAX, &s->name);
		if (rv == 0)
			rv = mp_next_str(c, "tenant", ING_NAME_MAX, &s->tenant);
		if (rv == 0)
			rv = next_u8(c, "role", &s->role);
		if (rv == 0)
			rv = mp_next_u64(c, "expires_at_ms", UINT64_MAX, &s->expires_at_ms);
		return rv;
	}
	case CMD_TOKEN_REVOKE: return mp_next_u64(c, "id", UINT64_MAX, &out->u.token_revoke.id);
	case CMD_SETTING_PUT:
		rv = mp_next_str(c, "name", ING_NAME_MAX, &out->u.setting_put.name);
		if (rv == 0)
			rv = mp_next_u64(c, "value", UINT64_MAX, &out->u.setting_put.value);
		return rv;
	case CMD_RETENTION_RUN:
		return mp_next_u32(c, "max_jobs", UINT32_MAX, &out->u.retention_run.max_jobs);
	}
	return ing_error_set(c->err, ING_EINTERNAL, "%s: no decoder", c->what);
}

/* Item 3 of the header: request_id, or [request_id, principal] with a
 * non-empty principal in the versions that carry one (an empty one would
 * encode back as the plain string: refused, so decode.encode is a fixed
 * point). */
static int next_request(struct mp_cursor *cur, const struct cmd_info *t, struct cmd *c)
{
	struct mp_cursor pair;
	int rv;
	c->principal = ing_str_c("");
	if (cur->i >= cur->n || cur->items[cur->i].type != MSGPACK_OBJECT_ARRAY)
		return mp_next_str(cur, "request_id", ING_REQUEST_ID_MAX, &c->request_id);
	if (t->principal_version == 0 || c->version < t->principal_version)
		return ing_error_set(cur->err, ING_EMALFORMED,
		                     "%s: field 'request_id': version %u carries no principal",
		                     t->what, c->version);
	rv = mp_next_tuple(cur, "request_id", 2, &pair);
	if (rv == 0)
		rv = mp_next_str(&pair, "request_id", ING_REQUEST_ID_MAX, &c->request_id);
	if (rv == 0)
		rv = mp_next_str(&pair, "principal", CMD_PRINCIPAL_MAX, &c->principal);
	if (rv == 0 && c->principal.len == 0)
		rv = ing_error_set(cur->err, ING_EMALFORMED,
		                   "%s: field 'principal': empty (write the request id alone)",
		                   t->what);
	return rv;
}

int cmd_decode(const void *buf, size_t len, msgpack_zone *z, struct cmd *out, struct ing_error *e)
{
	struct cmd c;
	msgpack_object obj;
	struct mp_cursor cur;
	uint64_t type, version;

	memset(&c, 0, sizeof(c));
	if (len > ING_COMMAND_MAX_BYTES)
		return ing_error_set(e, ING_ETOOBIG, "command: %zu bytes exceeds %u", len,
		                     ING_COMMAND_MAX_BYTES);
	int rv = mp_parse_exact(buf, len, true, z, &obj, "command", e);
	if (rv == 0)
		rv = mp_cursor_open(&cur, &obj, 0, UINT32_MAX, "command", e);
	if (rv == 0)
		rv = mp_next_u64(&cur, "type", UINT64_MAX, &type);
	if (rv != 0)
		return rv;
	const struct cmd_info *t = cmd_info(type);
	if (t == NULL)
		return ing_error_set(e, ING_EVERSION,
		                     "unknown command type %llu (written by a newer ingot?)",
		                     (unsigned long long)type);
	cur.what = t->what;
	rv = mp_next_u64(&cur, "version", UINT64_MAX, &version);
	if (rv != 0)
		return rv;
	if (version < t->min_version || version > t->version) {
		if (t->min_version == t->version)
			return ing_error_set(
			    e, ING_EVERSION,
			    "command %s version %llu is not supported (this node knows %u)",
			    t->name, (unsigned long long)version, t->version);
		return ing_error_set(
		    e, ING_EVERSION,
		    "command %s version %llu is not supported (this node knows %u..%u)", t->name,
		    (unsigned long long)version, t->min_version, t->version);
	}
	c.type = t->type;
	c.version = (uint32_t)version;
	rv = mp_next_u64(&cur, "time_ms", UINT64_MAX, &c.time_ms);
	if (rv == 0)
		rv = next_request(&cur, t, &c);
	if (rv == 0)
		rv = decode_fields(&cur, z, &c);
	if (rv == 0)
		rv = mp_cursor_close(&cur);
	if (rv == 0)
		rv = cmd_validate(&c, e);
	if (rv == 0)
		*out = c;
	return rv;
}
