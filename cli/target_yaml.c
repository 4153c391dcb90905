/*
 * target_yaml.c - a target file (YAML) -> the args map of target.put.
 *
 * The file (docs/cli.md):
 *
 *   name: x86_64-cc                      required, non-empty string
 *   description: text                    optional string
 *   capabilities: [cc]                   optional, sequence of strings
 *   labels: {arch: x86_64}               optional, mapping string -> string
 *   gpus: 1                              optional number 0..16: GPUs every stage sees
 *   network: true                        optional, true or false: the stages get the
 *                                        host's network (needs the permission)
 *   disk: 4GiB                           optional size (> 0): disk space of the work
 *                                        directory, within the node's ceiling
 *   stages:                              required, 1 or more mappings
 *     - name: compile                    required, non-empty string
 *       argv: [cc, -c, "{source}"]       required, 1 or more strings
 *       timeout: 60s                     optional duration (> 0)
 *       env: {LC_ALL: C}                 optional, mapping string -> string
 *       outputs: [kernel.o]              optional, sequence of strings
 *       limits:                          optional mapping, every key optional:
 *         cpu: 30s                         CPU time, whole seconds (> 0)
 *         memory: 512MiB                   address space, a size (> 0)
 *         open_files: 256                  a number (> 0)
 *         output: 64MiB                    largest file written, a size (> 0)
 *         processes: 64                    processes of the whole tree (> 0)
 *       stdout: symbols.txt              optional string: file of the stage's
 *                                        output dir that receives stdout
 *       gpus: 1                          optional number 0..16: GPUs this stage
 *                                        sees (at least the target's)
 *
 * libyaml loads the whole document into a node tree (with marks); this file
 * walks it strictly: unknown keys, keys given twice, wrong node kinds,
 * missing required keys and bad durations are refused with
 * "FILE:LINE:COLUMN: key 'stages[0].argv': ..." naming the key by its path.
 * Every scalar is a string (YAML's untagged scalars, no type guessing:
 * `argv: [sleep, 10]` sends "10"); a plain empty scalar (`name:`) is a
 * missing value.
 *
 * Sizes are whole bytes with an optional binary unit (cli_parse_size); the
 * ranges of the limits are the server's (docs/api.md).
 *
 * The map is written in a fixed key order (name, description, capabilities,
 * labels, gpus, network, disk_bytes, stages; stage: name, argv, timeout_ms,
 * env, outputs, limits {cpu_seconds, memory_bytes, open_files, output_bytes,
 * processes}, stdout, gpus) with only
 * the keys the file has, so a file always gives the same bytes.  Aliases may share
 * nodes, so the number of nodes visited is bounded (an alias bomb is
 * refused rather than expanded).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli/cli.h"

#define YAML_MAX_VISITS 100000
#define PATH_MAX_LEN    128

struct walk {
	const char *file;
	yaml_document_t *doc;
	msgpack_packer *pk;
	struct ing_error *e;
	unsigned visits;
};

static int fail_at(struct walk *w, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct walk *w, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[ING_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n != NULL)
		return ing_error_set(w->e, ING_EINVAL, "%s:%zu:%zu: %s", w->file,
		                     n->start_mark.line + 1, n->start_mark.column + 1, msg);
	return ing_error_set(w->e, ING_EINVAL, "%s: %s", w->file, msg);
}

static const char *kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a string";
	case YAML_SEQUENCE_NODE: return "a sequence";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

static bool empty_plain(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0 &&
	       n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static yaml_node_t *node(struct walk *w, int id)
{
	w->visits++;
	return yaml_document_get_node(w->doc, id);
}

/* A string scalar; `nonempty` refuses "". */
static int want_str(struct walk *w, const yaml_node_t *n, const char *path, bool nonempty)
{
	if (n->type != YAML_SCALAR_NODE)
		return fail_at(w, n, "key '%s': expected a string, got %s", path, kind_name(n));
	if (empty_plain(n))
		return fail_at(w, n, "key '%s': has no value", path);
	if (nonempty && n->data.scalar.length == 0)
		return fail_at(w, n, "key '%s': must not be empty", path);
	return 0;
}

static void pack_scalar(struct walk *w, const yaml_node_t *n)
{
	msgpack_pack_str_with_body(w->pk, n->data.scalar.value, n->data.scalar.length);
}

static int pack_str(struct walk *w, const yaml_node_t *n, const char *path, bool nonempty)
{
	int rv = want_str(w, n, path, nonempty);
	if (rv == 0)
		pack_scalar(w, n);
	return rv;
}

/* A sequence of strings, at least min_n. */
static int pack_str_seq(struct walk *w, const yaml_node_t *n, const char *path, size_t min_n)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return fail_at(w, n, "key '%s': expected a sequence of strings, got %s", path,
		               kind_name(n));
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count < min_n)
		return fail_at(w, n, "key '%s': needs at least %zu item%s", path, min_n,
		               min_n == 1 ? "" : "s");
	msgpack_pack_array(w->pk, count);
	for (size_t i = 0; i < count; i++) {
		char sub[PATH_MAX_LEN];
		snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
		const yaml_node_t *item = node(w, n->data.sequence.items.start[i]);
		int rv = pack_str(w, item, sub, false);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* A mapping string -> string with non-empty, distinct keys. */
static int pack_str_map(struct walk *w, const yaml_node_t *n, const char *path)
{
	if (n->type != YAML_MAPPING_NODE)
		return fail_at(w, n, "key '%s': expected a mapping of strings, got %s", path,
		               kind_name(n));
	yaml_node_pair_t *pairs = n->data.mapping.pairs.start;
	size_t count = (size_t)(n->data.mapping.pairs.top - pairs);
	msgpack_pack_map(w->pk, count);
	for (size_t i = 0; i < count; i++) {
		const yaml_node_t *k = node(w, pairs[i].key);
		const yaml_node_t *v = node(w, pairs[i].value);
		char sub[PATH_MAX_LEN];
		if (k->type != YAML_SCALAR_NODE || k->data.scalar.length == 0)
			return fail_at(w, k, "key '%s': keys must be non-empty strings", path);
		for (size_t j = 0; j < i; j++) {
			const yaml_node_t *prev = node(w, pairs[j].key);
			if (prev->type == YAML_SCALAR_NODE &&
			    prev->data.scalar.length == k->data.scalar.length &&
			    memcmp(prev->data.scalar.value, k->data.scalar.value,
			           k->data.scalar.length) == 0)
				return fail_at(w, k, "key '%s.%s' given twice", path,
				               (const char *)k->data.scalar.value);
		}
		snprintf(sub, sizeof(sub), "%s.%s", path, (const char *)k->data.scalar.value);
		pack_scalar(w, k);
		int rv = pack_str(w, v, sub, false);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/*
 * Collects the values of mapping `n` by key into vals[] (indexed like
 * known[]), refusing unknown and repeated keys and missing required ones
 * (required[i]).
 */
static int read_fields(struct walk *w, const yaml_node_t *n, const char *path,
                       const char *const known[], const bool required[], size_t nknown,
                       const yaml_node_t *vals[])
{
	char list[128] = "";
	for (size_t i = 0; i < nknown; i++) {
		vals[i] = NULL;
		strncat(list, i == 0 ? "" : ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, known[i], sizeof(list) - strlen(list) - 1);
	}
	if (n->type != YAML_MAPPING_NODE)
		return fail_at(w, n, "%s%s%s: expected a mapping (keys: %s), got %s",
		               *path != '\0' ? "key '" : "the file", path, *path != '\0' ? "'" : "",
		               list, kind_name(n));
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = node(w, p->key);
		if (k->type != YAML_SCALAR_NODE)
			return fail_at(w, k, "%s%s: keys must be strings", *path ? "in " : "",
			               path);
		const char *key = (const char *)k->data.scalar.value;
		size_t i;
		for (i = 0; i < nknown; i++) {
			if (strcmp(key, known[i]) == 0)
				break;
		}
		if (i == nknown)
			return fail_at(w, k, "unknown key '%s%s%s' (known keys: %s)", path,
			               *path ? "." : "", key, list);
		if (vals[i] != NULL)
			return fail_at(w, k, "key '%s%s%s' given twice", path, *path ? "." : "",
			               key);
		vals[i] = node(w, p->value);
	}
	for (size_t i = 0; i < nknown; i++) {
		if (required[i] && (vals[i] == NULL || empty_plain(vals[i])))
			return fail_at(w, vals[i] != NULL ? vals[i] : n,
			               "missing required key '%s%s%s'", path, *path ? "." : "",
			               known[i]);
	}
	return 0;
}

enum { L_CPU, L_MEMORY, L_OPEN_FILES, L_OUTPUT, L_PROCESSES, L_COUNT, L_DISK = L_COUNT };

/* A limit value as a number > 0: cpu a duration in whole seconds, memory,
 * output and disk a size, open_files and processes a plain number. */
static int limit_value(struct walk *w, const yaml_node_t *n, const char *path, int which,
                       uint64_t *out)
{
	int rv = want_str(w, n, path, true);
	if (rv != 0)
		return rv;
	const char *text = (const char *)n->data.scalar.value;
	struct ing_error pe;
	uint64_t v = 0;
	switch (which) {
	case L_CPU:
		rv = cli_parse_duration(text, &v, &pe);
		if (rv == 0 && v % 1000 != 0)
			return fail_at(w, n, "key '%s': '%s' is not a whole number of seconds",
			               path, text);
		v /= 1000;
		break;
	case L_OPEN_FILES:
	case L_PROCESSES:
		for (const char *p = text; *p != '\0' && rv == 0; p++) {
			if (*p < '0' || *p > '9' || v > 100000000)
				rv = ing_error_set(&pe, ING_EINVAL, "expected a number, got '%s'",
				                   text);
			else
				v = v * 10 + (uint64_t)(*p - '0');
		}
		break;
	default: rv = cli_parse_size(text, &v, &pe); break;
	}
	if (rv != 0)
		return fail_at(w, n, "key '%s': %s", path, pe.msg);
	if (v == 0)
		return fail_at(w, n, "key '%s': must be more than 0 (leave it out for no limit)",
		               path);
	*out = v;
	return 0;
}

/* limits: {cpu, memory, open_files, output, processes} -> {cpu_seconds,
 * memory_bytes, open_files, output_bytes, processes}, only the keys given. */
static int pack_limits(struct walk *w, const yaml_node_t *n, const char *path)
{
	static const char *const known[L_COUNT] = {"cpu", "memory", "open_files", "output",
	                                           "processes"};
	static const char *const sent[L_COUNT] = {"cpu_seconds", "memory_bytes", "open_files",
	                                          "output_bytes", "processes"};
	static const bool required[L_COUNT] = {false, false, false, false, false};
	const yaml_node_t *v[L_COUNT];
	uint64_t vals[L_COUNT];
	size_t count = 0;
	int rv = read_fields(w, n, path, known, required, L_COUNT, v);
	for (int i = 0; rv == 0 && i < L_COUNT; i++) {
		if (v[i] == NULL)
			continue;
		char sub[PATH_MAX_LEN];
		snprintf(sub, sizeof(sub), "%s.%s", path, known[i]);
		rv = limit_value(w, v[i], sub, i, &vals[i]);
		count++;
	}
	if (rv != 0)
		return rv;
	msgpack_pack_map(w->pk, count);
	for (int i = 0; i < L_COUNT; i++) {
		if (v[i] == NULL)
			continue;
		mp_pack_cstr(w->pk, sent[i]);
		msgpack_pack_uint64(w->pk, vals[i]);
	}
	return 0;
}

/* `gpus`: a plain number 0..CLI_GPUS_MAX, packed as an integer. */
static int pack_gpus(struct walk *w, const yaml_node_t *n, const char *path)
{
	int rv = want_str(w, n, path, true);
	uint64_t v = 0;
	if (rv != 0)
		return rv;
	const char *text = (const char *)n->data.scalar.value;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || v > CLI_GPUS_MAX)
			return fail_at(w, n,
			               "key '%s': expected a number of GPUs (0 to %d), got '%s'",
			               path, CLI_GPUS_MAX, text);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > CLI_GPUS_MAX)
		return fail_at(w, n, "key '%s': %llu GPUs exceeds %d", path, (unsigned long long)v,
		               CLI_GPUS_MAX);
	mp_pack_cstr(w->pk, "gpus");
	msgpack_pack_uint64(w->pk, v);
	return 0;
}

/* `network`: true or false, packed as a boolean. */
static int pack_network(struct walk *w, const yaml_node_t *n)
{
	int rv = want_str(w, n, "network", true);
	if (rv != 0)
		return rv;
	const char *text = (const char *)n->data.scalar.value;
	bool on = strcmp(text, "true") == 0;
	if (!on && strcmp(text, "false") != 0)
		return fail_at(w, n, "key 'network': expected true or false, got '%s'", text);
	mp_pack_cstr(w->pk, "network");
	mp_pack_bool(w->pk, on);
	return 0;
}

/* `disk`: a size > 0, packed as disk_bytes. */
static int pack_disk(struct walk *w, const yaml_node_t *n)
{
	uint64_t v;
	int rv = limit_value(w, n, "disk", L_DISK, &v);
	if (rv != 0)
		return rv;
	mp_pack_cstr(w->pk, "disk_bytes");
	msgpack_pack_uint64(w->pk, v);
	return 0;
}

enum { S_NAME, S_ARGV, S_TIMEOUT, S_ENV, S_OUTPUTS, S_LIMITS, S_STDOUT, S_GPUS, S_COUNT };

static int pack_stage(struct walk *w, const yaml_node_t *n, const char *path)
{
	static const char *const known[S_COUNT] = {"name",    "argv",   "timeout", "env",
	                                           "outputs", "limits", "stdout",  "gpus"};
	static const bool required[S_COUNT] = {true,  true,  false, false,
	                                       false, false, false, false};
	const yaml_node_t *v[S_COUNT];
	char sub[PATH_MAX_LEN];
	uint64_t timeout_ms = 0;
	int rv = read_fields(w, n, path, known, required, S_COUNT, v);
	if (rv != 0)
		return rv;
	if (v[S_TIMEOUT] != NULL) {
		snprintf(sub, sizeof(sub), "%s.timeout", path);
		rv = want_str(w, v[S_TIMEOUT], sub, true);
		if (rv != 0)
			return rv;
		struct ing_error de;
		rv = cli_parse_duration((const char *)v[S_TIMEOUT]->data.scalar.value, &timeout_ms,
		                        &de);
		if (rv != 0)
			return fail_at(w, v[S_TIMEOUT], "key '%s': %s", sub, de.msg);
		if (timeout_ms == 0)
			return fail_at(w, v[S_TIMEOUT], "key '%s': must be more than 0", sub);
	}
	size_t count = 0;
	for (int i = 0; i < S_COUNT; i++)
		count += v[i] != NULL;
	msgpack_pack_map(w->pk, count);
	mp_pack_cstr(w->pk, "name");
	snprintf(sub, sizeof(sub), "%s.name", path);
	if ((rv = pack_str(w, v[S_NAME], sub, true)) != 0)
		return rv;
	mp_pack_cstr(w->pk, "argv");
	snprintf(sub, sizeof(sub), "%s.argv", path);
	if ((rv = pack_str_seq(w, v[S_ARGV], sub, 1)) != 0)
		return rv;
	if (v[S_TIMEOUT] != NULL) {
		mp_pack_cstr(w->pk, "timeout_ms");
		msgpack_pack_uint64(w->pk, timeout_ms);
	}
	if (v[S_ENV] != NULL) {
		mp_pack_cstr(w->pk, "env");
		snprintf(sub, sizeof(sub), "%s.env", path);
		if ((rv = pack_str_map(w, v[S_ENV], sub)) != 0)
			return rv;
	}
	if (v[S_OUTPUTS] != NULL) {
		mp_pack_cstr(w->pk, "outputs");
		snprintf(sub, sizeof(sub), "%s.outputs", path);
		if ((rv = pack_str_seq(w, v[S_OUTPUTS], sub, 0)) != 0)
			return rv;
	}
	if (v[S_LIMITS] != NULL) {
		mp_pack_cstr(w->pk, "limits");
		snprintf(sub, sizeof(sub), "%s.limits", path);
		if ((rv = pack_limits(w, v[S_LIMITS], sub)) != 0)
			return rv;
	}
	if (v[S_STDOUT] != NULL) {
		mp_pack_cstr(w->pk, "stdout");
		snprintf(sub, sizeof(sub), "%s.stdout", path);
		if ((rv = pack_str(w, v[S_STDOUT], sub, true)) != 0)
			return rv;
	}
	if (v[S_GPUS] != NULL) {
		snprintf(sub, sizeof(sub), "%s.gpus", path);
		if ((rv = pack_gpus(w, v[S_GPUS], sub)) != 0)
			return rv;
	}
	return 0;
}

enum {
	T_NAME,
	T_DESCRIPTION,
	T_CAPABILITIES,
	T_LABELS,
	T_GPUS,
	T_NETWORK,
	T_DISK,
	T_STAGES,
	T_COUNT
};

static int pack_target(struct walk *w, const yaml_node_t *root)
{
	static const char *const known[T_COUNT] = {"name", "description", "capabilities", "labels",
	                                           "gpus", "network",     "disk",         "stages"};
	static const bool required[T_COUNT] = {true,  false, false, false,
	                                       false, false, false, true};
	const yaml_node_t *v[T_COUNT];
	int rv = read_fields(w, root, "", known, required, T_COUNT, v);
	if (rv != 0)
		return rv;
	/* Check kinds before packing anything. */
	const yaml_node_t *stages = v[T_STAGES];
	if (stages->type != YAML_SEQUENCE_NODE)
		return fail_at(w, stages, "key 'stages': expected a sequence of stages, got %s",
		               kind_name(stages));
	size_t nstages =
	    (size_t)(stages->data.sequence.items.top - stages->data.sequence.items.start);
	if (nstages == 0)
		return fail_at(w, stages, "key 'stages': needs at least one stage");
	size_t count = 0;
	for (int i = 0; i < T_COUNT; i++)
		count += v[i] != NULL;
	msgpack_pack_map(w->pk, count);
	mp_pack_cstr(w->pk, "name");
	if ((rv = pack_str(w, v[T_NAME], "name", true)) != 0)
		return rv;
	if (v[T_DESCRIPTION] != NULL) {
		mp_pack_cstr(w->pk, "description");
		if ((rv = pack_str(w, v[T_DESCRIPTION], "description", false)) != 0)
			return rv;
	}
	if (v[T_CAPABILITIES] != NULL) {
		mp_pack_cstr(w->pk, "capabilities");
		if ((rv = pack_str_seq(w, v[T_CAPABILITIES], "capabilities", 0)) != 0)
			return rv;
	}
	if (v[T_LABELS] != NULL) {
		mp_pack_cstr(w->pk, "labels");
		if ((rv = pack_str_map(w, v[T_LABELS], "labels")) != 0)
			return rv;
	}
	if (v[T_GPUS] != NULL && (rv = pack_gpus(w, v[T_GPUS], "gpus")) != 0)
		return rv;
	if (v[T_NETWORK] != NULL && (rv = pack_network(w, v[T_NETWORK])) != 0)
		return rv;
	if (v[T_DISK] != NULL && (rv = pack_disk(w, v[T_DISK])) != 0)
		return rv;
	mp_pack_cstr(w->pk, "stages");
	msgpack_pack_array(w->pk, nstages);
	for (size_t i = 0; i < nstages; i++) {
		char path[PATH_MAX_LEN];
		snprintf(path, sizeof(path), "stages[%zu]", i);
		rv = pack_stage(w, node(w, stages->data.sequence.items.start[i]), path);
		if (rv != 0)
			return rv;
		if (w->visits > YAML_MAX_VISITS)
			return fail_at(w, NULL, "too many nodes (aliases expand beyond %d)",
			               YAML_MAX_VISITS);
	}
	return 0;
}

static int syntax_error(const char *file, const yaml_parser_t *p, struct ing_error *e)
{
	if (p->error == YAML_MEMORY_ERROR)
		return ing_error_set(e, ING_ENOMEM, "%s: out of memory parsing YAML", file);
	return ing_error_set(e, ING_EINVAL, "%s:%zu:%zu: YAML syntax error: %s%s%s", file,
	                     p->problem_mark.line + 1, p->problem_mark.column + 1,
	                     p->problem != NULL ? p->problem : "unknown problem",
	                     p->context != NULL ? " " : "", p->context != NULL ? p->context : "");
}

int cli_target_yaml_parse(const char *file, const void *buf, size_t len, struct mp_out *args,
                          struct ing_error *e)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	int rv;
	if (!yaml_parser_initialize(&parser))
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rv = syntax_error(file, &parser, e);
		yaml_parser_delete(&parser);
		return rv;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		rv = ing_error_set(e, ING_EINVAL,
		                   "%s: empty file (expected a target: name, stages)", file);
		goto out;
	}
	if (!yaml_parser_load(&parser, &extra)) {
		rv = syntax_error(file, &parser, e);
		goto out;
	}
	yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
	if (extra_root != NULL) {
		rv = ing_error_set(e, ING_EINVAL,
		                   "%s:%zu: a second YAML document: one target per file", file,
		                   extra_root->start_mark.line + 1);
		yaml_document_delete(&extra);
		goto out;
	}
	yaml_document_delete(&extra);
	struct walk w = {file, &doc, &args->pk, e, 0};
	rv = pack_target(&w, root);
	if (rv == 0 && mp_out_failed(args) != 0)
		rv = ing_error_set(e, ING_ENOMEM, "out of memory");
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rv;
}

int cli_target_yaml_load(const char *path, struct mp_out *args, struct ing_error *e)
{
	char *data;
	size_t len;
	int rv = cli_read_file(path, 1024 * 1024, &data, &len, e);
	if (rv != 0)
		return rv;
	rv = cli_target_yaml_parse(path, data, len, args, e);
	free(data);
	return rv;
}
