/*
 * config.c - loading and checking ingotd's configuration (see config.h).
 *
 * libyaml parses the file into a document; this file walks its nodes with
 * one table of known keys, so every key has exactly one parser and one
 * place where its bounds are stated.  Errors carry libyaml's line marks.
 */
#include "node/config.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "node/sm/cmd.h"
#include "rpc/server.h"

bool node_gpu_pinned(const struct node_gpu *g)
{
	return g->uuid[0] != '\0' && g->minor >= 0;
}

void node_config_defaults(struct node_config *c)
{
	memset(c, 0, sizeof(*c));
	c->election_timeout_ms = 120;
	c->heartbeat_timeout_ms = 12;
	c->connect_retry_ms = 50;
	c->snapshot_threshold = 4096;
	c->snapshot_trailing = 1024;
	c->snapshot_interval_ms = 500;
	c->max_frame_bytes = RPC_DEFAULT_MAX_FRAME_BYTES;
	c->request_timeout_ms = 5000;
	c->max_connections = RPC_DEFAULT_MAX_CONNECTIONS;
	c->max_connections_per_address = RPC_DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
	c->max_output_bytes = RPC_DEFAULT_MAX_OUTPUT_BYTES;
	c->max_calls = RPC_DEFAULT_MAX_CALLS;
	c->idle_timeout_ms = RPC_DEFAULT_IDLE_TIMEOUT_MS;
	c->frame_timeout_ms = RPC_DEFAULT_FRAME_TIMEOUT_MS;
	c->tls.client_certs = ING_TLS_CLIENT_CERTS_REQUIRED;
	c->store_sync = STORE_SYNC_FULL;
	c->store_commit_interval_ms = 50;
	c->log_level = ING_LOG_LEVEL_INFO;
	c->slots = 2;
	c->probe = true;
	c->heartbeat_interval_ms = 500;
	c->node_down_after_ms = 5000;
	c->retry_backoff_ms = 1000;
	c->assign_ahead = 8;
	c->assign_ahead_max_ms = 250;
	c->join_role = REC_ROLE_VOTER;
	c->voter_replace_after_ms = 10000;
	c->member_catchup_timeout_ms = 30000;
	c->auth.jwt_leeway_s = 60;
	c->auth.rate_limits[AUTH_ROLE_NONE] = (struct node_rate_limit){20, 40};
	c->auth.rate_limit_entries = 4096;
	c->sandbox = true;
	c->stage_processes = 4096;
	c->work_quota_bytes = 2ull << 30;
	c->stage_tmp_bytes = 256ull << 20;
}

void node_config_dev(struct node_config *c)
{
	node_config_defaults(c);
	c->id = 1;
	snprintf(c->data_dir, sizeof(c->data_dir), "ingot-dev");
	snprintf(c->raft_address, sizeof(c->raft_address), "127.0.0.1:7501");
	snprintf(c->api_address, sizeof(c->api_address), "127.0.0.1:7401");
	snprintf(c->http_address, sizeof(c->http_address), "127.0.0.1:7601");
	c->npeers = 1;
	c->peers[0].id = 1;
	snprintf(c->peers[0].raft_address, NODE_ADDRESS_MAX, "127.0.0.1:7501");
	snprintf(c->peers[0].api_address, NODE_ADDRESS_MAX, "127.0.0.1:7401");
}

struct loader {
	yaml_document_t doc;
	const char *path;
	char dir[NODE_PATH_MAX]; /* the file's directory, for relative paths */
	struct ing_error *e;
};

static int fail(struct loader *l, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct loader *l, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ing_error_set(l->e, ING_EINVAL, "%s:%zu: key '%s': %s", l->path,
	                     n != NULL ? n->start_mark.line + 1 : 0, key, msg);
}

static const char *scalar(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int get_uint(struct loader *l, const yaml_node_t *n, const char *key, uint64_t min,
                    uint64_t max, uint64_t *out)
{
	const char *s = scalar(n);
	char *end;
	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		return fail(l, n, key, "expected an integer from %" PRIu64 " to %" PRIu64, min,
		            max);
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return fail(l, n, key, "'%s' is not an integer from %" PRIu64 " to %" PRIu64, s,
		            min, max);
	*out = v;
	return 0;
}

static int get_unsigned(struct loader *l, const yaml_node_t *n, const char *key, unsigned min,
                        unsigned max, unsigned *out)
{
	uint64_t v;
	int rv = get_uint(l, n, key, min, max, &v);
	if (rv == 0)
		*out = (unsigned)v;
	return rv;
}

static int get_str(struct loader *l, const yaml_node_t *n, const char *key, char *out, size_t cap)
{
	const char *s = scalar(n);
	if (s == NULL || *s == '\0')
		return fail(l, n, key, "expected a non-empty string");
	if (strlen(s) >= cap)
		return fail(l, n, key, "longer than %zu bytes", cap - 1);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int get_address(struct loader *l, const yaml_node_t *n, const char *key, char *out)
{
	int rv = get_str(l, n, key, out, NODE_ADDRESS_MAX);
	if (rv == 0 && !cmd_address_valid(ing_str_c(out)))
		return fail(l, n, key, "'%s' is not an IPv4 address:port", out);
	return rv;
}

static int get_peer(struct loader *l, const yaml_node_t *n, struct node_peer *p)
{
	bool have_id = false;
	int rv = 0;
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "peers",
		            "each peer must be a mapping with id, raft_address, "
		            "api_address");
	memset(p, 0, sizeof(*p));
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     rv == 0 && pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(&l->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(&l->doc, pr->value);
		const char *name = scalar(k);
		if (name == NULL)
			rv = fail(l, k, "peers", "keys must be strings");
		else if (strcmp(name, "id") == 0)
			rv = get_uint(l, v, "peers.id", 1, UINT64_MAX, &p->id), have_id = true;
		else if (strcmp(name, "raft_address") == 0)
			rv = get_address(l, v, "peers.raft_address", p->raft_address);
		else if (strcmp(name, "api_address") == 0)
			rv = get_address(l, v, "peers.api_address", p->api_address);
		else
			rv = fail(l, k, name,
			          "unknown key in a peer (known: id, raft_address, "
			          "api_address)");
	}
	if (rv == 0 && (!have_id || p->raft_address[0] == '\0' || p->api_address[0] == '\0'))
		rv = fail(l, n, "peers", "each peer needs id, raft_address and api_address");
	return rv;
}

static int get_peers(struct loader *l, const yaml_node_t *n, struct node_config *c)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(l, n, "peers", "expected a list of peers");
	c->npeers = 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		if (c->npeers == NODE_MAX_PEERS)
			return fail(l, n, "peers", "more than %d peers", NODE_MAX_PEERS);
		int rv = get_peer(l, yaml_document_get_node(&l->doc, *it), &c->peers[c->npeers]);
		if (rv != 0)
			return rv;
		c->npeers++;
	}
	return 0;
}

static int get_sync(struct loader *l, const yaml_node_t *n, enum store_sync *out)
{
	const char *s = scalar(n);
	if (s != NULL && strcmp(s, "full") == 0)
		*out = STORE_SYNC_FULL;
	else if (s != NULL && strcmp(s, "nometa") == 0)
		*out = STORE_SYNC_NOMETA;
	else
		return fail(l, n, "store_sync", "expected 'full' or 'nometa'");
	return 0;
}

static int get_level(struct loader *l, const yaml_node_t *n, enum ing_log_level *out)
{
	const char *s = scalar(n);
	if (s == NULL || ing_log_parse_level(s, out) != 0)
		return fail(l, n, "log_level", "expected debug, info, warn, error or off");
	return 0;
}

static int get_format(struct loader *l, const yaml_node_t *n, enum ing_log_format *out)
{
	const char *s = scalar(n);
	if (s == NULL || ing_log_parse_format(s, out) != 0)
		return fail(l, n, "log_format", "expected text or json");
	return 0;
}

static int get_bool(struct loader *l, const yaml_node_t *n, const char *key, bool *out)
{
	const char *s = scalar(n);
	if (s != NULL && strcmp(s, "true") == 0)
		*out = true;
	else if (s != NULL && strcmp(s, "false") == 0)
		*out = false;
	else
		return fail(l, n, key, "expected true or false");
	return 0;
}

static int get_caps(struct loader *l, const yaml_node_t *n, struct node_config *c)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(l, n, "capabilities", "expected a list of names");
	c->ncaps = 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *v = yaml_document_get_node(&l->doc, *it);
		if (c->ncaps == ING_MAX_CAPS)
			return fail(l, v, "capabilities", "more than %d", ING_MAX_CAPS);
		int rv = get_str(l, v, "capabilities", c->caps[c->ncaps], ING_NAME_MAX + 1);
		if (rv == 0 && !cmd_name_valid(ing_str_c(c->caps[c->ncaps])))
			rv = fail(l, v, "capabilities", "'%s' is not a valid name",
			          c->caps[c->ncaps]);
		if (rv != 0)
			return rv;
		c->ncaps++;
	}
	return 0;
}

static int get_labels(struct loader *l, const yaml_node_t *n, struct node_config *c)
{
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "labels", "expected a mapping of names to strings");
	c->nlabels = 0;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(&l->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(&l->doc, pr->value);
		if (c->nlabels == ING_MAX_LABELS)
			return fail(l, k, "labels", "more than %d", ING_MAX_LABELS);
		int rv = get_str(l, k, "labels", c->label_keys[c->nlabels], ING_NAME_MAX + 1);
		if (rv == 0 && !cmd_name_valid(ing_str_c(c->label_keys[c->nlabels])))
			rv = fail(l, k, "labels", "'%s' is not a valid name",
			          c->label_keys[c->nlabels]);
		if (rv == 0)
			rv = get_str(l, v, "labels", c->label_values[c->nlabels],
			             ING_LABEL_VALUE_MAX + 1);
		if (rv != 0)
			return rv;
		c->nlabels++;
	}
	return 0;
}

/* `gpus: N` (0..ING_MAX_GPUS) or `gpus: [index, ...]` (unique, each
 * 0..ING_GPU_INDEX_MAX, at most ING_MAX_GPUS). */
static int get_gpus(struct loader *l, const yaml_node_t *n, struct node_config *c)
{
	if (n->type == YAML_SCALAR_NODE) {
		c->gpus_mode = NODE_GPUS_COUNT;
		return get_unsigned(l, n, "gpus", 0, ING_MAX_GPUS, &c->gpus_count);
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(l, n, "gpus", "expected a count or a list of GPU indexes");
	c->gpus_mode = NODE_GPUS_LIST;
	c->ngpu_list = 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *v = yaml_document_get_node(&l->doc, *it);
		unsigned idx;
		if (c->ngpu_list == ING_MAX_GPUS)
			return fail(l, v, "gpus", "more than %d GPUs", ING_MAX_GPUS);
		int rv = get_unsigned(l, v, "gpus", 0, ING_GPU_INDEX_MAX, &idx);
		if (rv != 0)
			return rv;
		for (unsigned i = 0; i < c->ngpu_list; i++)
			if (c->gpu_list[i] == idx)
				return fail(l, v, "gpus", "GPU %u listed twice", idx);
		c->gpu_list[c->ngpu_list++] = idx;
	}
	return 0;
}

static int get_join(struct loader *l, const yaml_node_t *n, struct node_config *c)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(l, n, "join", "expected a list of API addresses (a.b.c.d:port)");
	c->njoin = 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *v = yaml_document_get_node(&l->doc, *it);
		if (c->njoin == NODE_MAX_PEERS)
			return fail(l, v, "join", "more than %d addresses", NODE_MAX_PEERS);
		int rv = get_address(l, v, "join", c->join[c->njoin]);
		if (rv != 0)
			return rv;
		c->njoin++;
	}
	return 0;
}

/* A file path: relative ones are taken from the configuration file's
 * directory. */
static int get_path(struct loader *l, const yaml_node_t *n, const char *key, char *out)
{
	char raw[NODE_PATH_MAX];
	int rv = get_str(l, n, key, raw, sizeof(raw));
	if (rv != 0)
		return rv;
	int w = raw[0] == '/' ? snprintf(out, NODE_PATH_MAX, "%s", raw)
	                      : snprintf(out, NODE_PATH_MAX, "%s/%s", l->dir, raw);
	if (w < 0 || w >= NODE_PATH_MAX)
		return fail(l, n, key, "path too long");
	return 0;
}

static int get_tls(struct loader *l, const yaml_node_t *n, struct node_config *c)
{
	struct node_tls_config t;
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "tls",
		            "expected a mapping with ca, cert, key and optionally client_certs");
	memset(&t, 0, sizeof(t));
	t.client_certs = ING_TLS_CLIENT_CERTS_REQUIRED;
	int rv = 0;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     rv == 0 && pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(&l->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(&l->doc, pr->value);
		const char *name = scalar(k);
		const char *val = scalar(v);
		if (name == NULL)
			rv = fail(l, k, "tls", "keys must be strings");
		else if (strcmp(name, "ca") == 0)
			rv = get_path(l, v, "tls.ca", t.ca);
		else if (strcmp(name, "cert") == 0)
			rv = get_path(l, v, "tls.cert", t.cert);
		else if (strcmp(name, "key") == 0)
			rv = get_path(l, v, "tls.key", t.key);
		else if (strcmp(name, "client_certs") == 0 && val != NULL &&
		         strcmp(val, "required") == 0)
			t.client_certs = ING_TLS_CLIENT_CERTS_REQUIRED;
		else if (strcmp(name, "client_certs") == 0 && val != NULL &&
		         strcmp(val, "optional") == 0)
			t.client_certs = ING_TLS_CLIENT_CERTS_OPTIONAL;
		else if (strcmp(name, "client_certs") == 0)
			rv = fail(l, v, "tls.client_certs", "expected required or optional");
		else
			rv = fail(l, k, name,
			          "unknown key in tls (known: ca, cert, key, client_certs)");
	}
	if (rv == 0 && (t.ca[0] == '\0' || t.cert[0] == '\0' || t.key[0] == '\0'))
		rv = fail(l, n, "tls",
		          "needs ca, cert and key (make them with 'ingotctl pki', "
		          "docs/operations.md)");
	if (rv == 0) {
		t.enabled = true;
		c->tls = t;
	}
	return rv;
}

static int get_role(struct loader *l, const yaml_node_t *n, const char *key, uint8_t *out)
{
	const char *s = scalar(n);
	for (uint8_t r = 0; s != NULL && r < REC_ROLE_COUNT; r++) {
		if (strcmp(s, rec_role_name(r)) == 0) {
			*out = r;
			return 0;
		}
	}
	return fail(l, n, key, "expected voter, standby or spare");
}

int node_config_set_join(struct node_config *c, const char *list, struct ing_error *e)
{
	const char *p = list;
	c->njoin = 0;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		if (c->njoin == NODE_MAX_PEERS)
			return ing_error_set(e, ING_EINVAL, "--join: more than %d addresses",
			                     NODE_MAX_PEERS);
		if (len == 0 || len >= NODE_ADDRESS_MAX)
			return ing_error_set(e, ING_EINVAL,
			                     "--join: empty or too long address in '%s'", list);
		memcpy(c->join[c->njoin], p, len);
		c->join[c->njoin][len] = '\0';
		if (!cmd_address_valid(ing_str_c(c->join[c->njoin])))
			return ing_error_set(e, ING_EINVAL,
			                     "--join: '%s' is not an IPv4 address:port",
			                     c->join[c->njoin]);
		c->njoin++;
		p += len;
		if (*p == ',')
			p++;
	}
	if (c->njoin == 0)
		return ing_error_set(e, ING_EINVAL, "--join: no address given");
	return 0;
}

static int get_on_off(struct loader *l, const yaml_node_t *n, const char *key, bool *out)
{
	const char *s = scalar(n);
	if (s != NULL && (strcmp(s, "on") == 0 || strcmp(s, "true") == 0))
		*out = true;
	else if (s != NULL && (strcmp(s, "off") == 0 || strcmp(s, "false") == 0))
		*out = false;
	else
		return fail(l, n, key, "expected on or off");
	return 0;
}

/* A list of absolute paths (sandbox_paths, sandbox_devices). */
static int get_paths(struct loader *l, const yaml_node_t *n, const char *key,
                     char out[][NODE_PATH_MAX], unsigned *count)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(l, n, key, "expected a list of absolute paths");
	*count = 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *v = yaml_document_get_node(&l->doc, *it);
		if (*count == NODE_SANDBOX_PATHS_MAX)
			return fail(l, v, key, "more than %d", NODE_SANDBOX_PATHS_MAX);
		int rv = get_str(l, v, key, out[*count], NODE_PATH_MAX);
		if (rv == 0 && (out[*count][0] != '/' || strstr(out[*count], "..") != NULL))
			rv = fail(l, v, key, "'%s' is not an absolute path without '..'",
			          out[*count]);
		if (rv != 0)
			return rv;
		(*count)++;
	}
	return 0;
}

static int load_sandbox_key(struct loader *l, const char *key, const yaml_node_t *v,
                            struct node_config *c)
{
	uint64_t u;
	int rv;
	if (strcmp(key, "sandbox") == 0)
		return get_on_off(l, v, key, &c->sandbox);
	if (strcmp(key, "sandbox_allow_daemon_uid") == 0)
		return get_bool(l, v, key, &c->sandbox_allow_daemon_uid);
	if (strcmp(key, "allow_network_targets") == 0)
		return fail(l, v, key,
		            "no longer a setting: `network: true` on a target needs the admin "
		            "role (docs/api.md \"Permissions\"); remove the key");
	if (strcmp(key, "sandbox_uid_base") == 0) {
		rv = get_uint(l, v, key, 1000, 4000000000u, &u);
		c->sandbox_uid_base = (uint32_t)u;
		return rv;
	}
	if (strcmp(key, "sandbox_uid_count") == 0) {
		rv = get_uint(l, v, key, 1, 65536, &u);
		c->sandbox_uid_count = (uint32_t)u;
		return rv;
	}
	if (strcmp(key, "sandbox_paths") == 0)
		return get_paths(l, v, key, c->sandbox_paths, &c->nsandbox_paths);
	if (strcmp(key, "sandbox_devices") == 0) {
		rv = get_paths(l, v, key, c->sandbox_devices, &c->nsandbox_devices);
		for (unsigned i = 0; rv == 0 && i < c->nsandbox_devices; i++)
			if (strstr(c->sandbox_devices[i], "/nvidia") != NULL)
				rv = fail(l, v, key,
				          "'%s': the NVIDIA device files go only to the attempts "
				          "that hold GPUs, by the worker (docs/operations.md, "
				          "\"GPUs\"); remove it",
				          c->sandbox_devices[i]);
		return rv;
	}
	if (strcmp(key, "stage_memory_bytes") == 0)
		return get_uint(l, v, key, 0, UINT64_MAX, &c->stage_memory_bytes);
	if (strcmp(key, "stage_cpu_seconds") == 0)
		return get_uint(l, v, key, 0, UINT64_MAX, &c->stage_cpu_seconds);
	if (strcmp(key, "stage_processes") == 0)
		return get_uint(l, v, key, 0, 4194304, &c->stage_processes);
	if (strcmp(key, "stage_output_bytes") == 0)
		return get_uint(l, v, key, 0, UINT64_MAX, &c->stage_output_bytes);
	if (strcmp(key, "stage_open_files") == 0)
		return get_uint(l, v, key, 0, 1048576, &c->stage_open_files);
	if (strcmp(key, "work_quota_bytes") == 0) {
		rv = get_uint(l, v, key, 0, UINT64_MAX, &c->work_quota_bytes);
		if (rv == 0 && c->work_quota_bytes != 0 && c->work_quota_bytes < (16ull << 20))
			rv = fail(l, v, key, "0 (no quota) or at least 16777216 (16 MiB)");
		return rv;
	}
	if (strcmp(key, "stage_tmp_bytes") == 0)
		return get_uint(l, v, key, 1u << 20, UINT64_MAX, &c->stage_tmp_bytes);
	return 1; /* not a sandbox key */
}

/* Pair i of a mapping: its key (and the key's text, NULL when not a
 * scalar) and value. */
static void pair_at(struct loader *l, const yaml_node_t *n, yaml_node_pair_t *pr,
                    const yaml_node_t **k, const yaml_node_t **v, const char **name)
{
	(void)n;
	*k = yaml_document_get_node(&l->doc, pr->key);
	*v = yaml_document_get_node(&l->doc, pr->value);
	*name = scalar(*k);
}

#define FOR_PAIRS(n, pr)                                           \
	for (yaml_node_pair_t *pr = (n)->data.mapping.pairs.start; \
	     pr < (n)->data.mapping.pairs.top; pr++)

static int get_double(struct loader *l, const yaml_node_t *n, const char *key, double max,
                      double *out)
{
	const char *s = scalar(n);
	char *end;
	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		return fail(l, n, key, "expected a number from 0 to %g", max);
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= 0 && v <= max))
		return fail(l, n, key, "'%s' is not a number from 0 to %g", s, max);
	*out = v;
	return 0;
}

/* auth.rate_limits.<role|unauthenticated>: {rate_per_s, burst}. */
static int get_rate_limits(struct loader *l, const yaml_node_t *n, struct node_auth_config *a)
{
	const yaml_node_t *k, *v;
	const char *name;
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "auth.rate_limits",
		            "expected a mapping of roles (or unauthenticated) to {rate_per_s, "
		            "burst}");
	FOR_PAIRS(n, pr)
	{
		pair_at(l, n, pr, &k, &v, &name);
		enum auth_role r;
		const yaml_node_t *k2, *v2;
		const char *field;
		if (name != NULL && strcmp(name, "unauthenticated") == 0)
			r = AUTH_ROLE_NONE;
		else if (name == NULL || auth_role_parse(ing_str_c(name), &r, NULL) != 0)
			return fail(l, k, "auth.rate_limits",
			            "'%s' is not viewer, submitter, operator, admin or "
			            "unauthenticated",
			            name != NULL ? name : "?");
		if (v->type != YAML_MAPPING_NODE)
			return fail(l, v, "auth.rate_limits", "%s: expected {rate_per_s, burst}",
			            name);
		struct node_rate_limit rl = {0, 0};
		bool have_rate = false;
		FOR_PAIRS(v, pr2)
		{
			int rv;
			pair_at(l, v, pr2, &k2, &v2, &field);
			if (field != NULL && strcmp(field, "rate_per_s") == 0)
				rv = get_double(l, v2, "auth.rate_limits.rate_per_s", 1e6,
				                &rl.rate_per_s),
				have_rate = true;
			else if (field != NULL && strcmp(field, "burst") == 0)
				rv = get_unsigned(l, v2, "auth.rate_limits.burst", 1, 1000000,
				                  &rl.burst);
			else
				rv = fail(l, k2, "auth.rate_limits",
				          "unknown key '%s' (known: rate_per_s, burst)",
				          field != NULL ? field : "?");
			if (rv != 0)
				return rv;
		}
		if (!have_rate)
			return fail(l, v, "auth.rate_limits", "%s: rate_per_s is required", name);
		if (rl.burst == 0) /* one second's worth, at least 1 */
			rl.burst = rl.rate_per_s >= 1 ? (unsigned)rl.rate_per_s : 1;
		a->rate_limits[r] = rl;
	}
	return 0;
}

/* auth.jwt.role_map: {claim value: role}. */
static int get_role_map(struct loader *l, const yaml_node_t *n, struct node_auth_config *a)
{
	const yaml_node_t *k, *v;
	const char *name;
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "auth.jwt.role_map",
		            "expected a mapping of claim values to roles");
	a->jwt_nrole_map = 0;
	FOR_PAIRS(n, pr)
	{
		pair_at(l, n, pr, &k, &v, &name);
		struct auth_jwt_role_map *m = &a->jwt_role_map[a->jwt_nrole_map];
		if (a->jwt_nrole_map == AUTH_JWT_MAX_ROLE_MAP)
			return fail(l, k, "auth.jwt.role_map", "more than %d entries",
			            AUTH_JWT_MAX_ROLE_MAP);
		int rv = get_str(l, k, "auth.jwt.role_map", m->claim_value, sizeof(m->claim_value));
		const char *role = scalar(v);
		if (rv == 0 &&
		    (role == NULL || auth_role_parse(ing_str_c(role), &m->role, NULL) != 0))
			rv = fail(l, v, "auth.jwt.role_map",
			          "'%s' maps to '%s', not viewer, submitter, operator or admin",
			          m->claim_value, role != NULL ? role : "?");
		if (rv != 0)
			return rv;
		a->jwt_nrole_map++;
	}
	return 0;
}

static int get_jwt(struct loader *l, const yaml_node_t *n, struct node_auth_config *a)
{
	const yaml_node_t *k, *v;
	const char *name;
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "auth.jwt",
		            "expected a mapping with issuer, audience, keys (and optional "
		            "role_claim, tenant_claim, subject_claim, leeway_s, role_map)");
	FOR_PAIRS(n, pr)
	{
		int rv;
		pair_at(l, n, pr, &k, &v, &name);
		if (name == NULL)
			rv = fail(l, k, "auth.jwt", "keys must be strings");
		else if (strcmp(name, "issuer") == 0)
			rv = get_str(l, v, "auth.jwt.issuer", a->jwt_issuer, sizeof(a->jwt_issuer));
		else if (strcmp(name, "audience") == 0)
			rv = get_str(l, v, "auth.jwt.audience", a->jwt_audience,
			             sizeof(a->jwt_audience));
		else if (strcmp(name, "keys") == 0)
			rv = get_str(l, v, "auth.jwt.keys", a->jwt_keys, sizeof(a->jwt_keys));
		else if (strcmp(name, "role_claim") == 0)
			rv = get_str(l, v, "auth.jwt.role_claim", a->jwt_role_claim,
			             sizeof(a->jwt_role_claim));
		else if (strcmp(name, "tenant_claim") == 0)
			rv = get_str(l, v, "auth.jwt.tenant_claim", a->jwt_tenant_claim,
			             sizeof(a->jwt_tenant_claim));
		else if (strcmp(name, "subject_claim") == 0)
			rv = get_str(l, v, "auth.jwt.subject_claim", a->jwt_subject_claim,
			             sizeof(a->jwt_subject_claim));
		else if (strcmp(name, "leeway_s") == 0)
			rv = get_unsigned(l, v, "auth.jwt.leeway_s", 0, 3600, &a->jwt_leeway_s);
		else if (strcmp(name, "role_map") == 0)
			rv = get_role_map(l, v, a);
		else
			rv = fail(l, k, "auth.jwt",
			          "unknown key '%s' (known: issuer, audience, keys, role_claim, "
			          "tenant_claim, subject_claim, leeway_s, role_map)",
			          name);
		if (rv != 0)
			return rv;
	}
	if (a->jwt_issuer[0] == '\0' || a->jwt_audience[0] == '\0' || a->jwt_keys[0] == '\0')
		return fail(l, n, "auth.jwt", "issuer, audience and keys are required");
	a->jwt = true;
	return 0;
}

/* auth.certificates: {client name: {role, tenant}}. */
static int get_certificates(struct loader *l, const yaml_node_t *n, struct node_auth_config *a)
{
	const yaml_node_t *k, *v;
	const char *name;
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "auth.certificates",
		            "expected a mapping of client certificate names to {role, tenant}");
	a->ncerts = 0;
	FOR_PAIRS(n, pr)
	{
		pair_at(l, n, pr, &k, &v, &name);
		struct node_cert_role *cr = &a->certs[a->ncerts];
		const yaml_node_t *k2, *v2;
		const char *field;
		if (a->ncerts == NODE_AUTH_CERTS_MAX)
			return fail(l, k, "auth.certificates", "more than %d entries",
			            NODE_AUTH_CERTS_MAX);
		if (name == NULL || !ing_tls_client_name_valid(name, strlen(name)))
			return fail(l, k, "auth.certificates",
			            "'%s' is not a client name (1 to %d of A-Z a-z 0-9 . _ -, not "
			            "starting with . or -; the NAME of ingot:client:NAME)",
			            name != NULL ? name : "?", ING_TLS_CLIENT_NAME_MAX);
		for (unsigned i = 0; i < a->ncerts; i++)
			if (strcmp(a->certs[i].name, name) == 0)
				return fail(l, k, "auth.certificates", "'%s' given twice", name);
		memset(cr, 0, sizeof(*cr));
		snprintf(cr->name, sizeof(cr->name), "%s", name);
		if (v->type != YAML_MAPPING_NODE)
			return fail(l, v, "auth.certificates", "%s: expected {role, tenant}", name);
		FOR_PAIRS(v, pr2)
		{
			int rv = 0;
			pair_at(l, v, pr2, &k2, &v2, &field);
			const char *val = scalar(v2);
			if (field != NULL && strcmp(field, "role") == 0) {
				if (val == NULL ||
				    auth_role_parse(ing_str_c(val), &cr->role, NULL) != 0)
					rv = fail(
					    l, v2, "auth.certificates",
					    "%s: role '%s' is not viewer, submitter, operator or "
					    "admin",
					    name, val != NULL ? val : "?");
			} else if (field != NULL && strcmp(field, "tenant") == 0) {
				rv = get_str(l, v2, "auth.certificates.tenant", cr->tenant,
				             sizeof(cr->tenant));
				if (rv == 0 && !cmd_name_valid(ing_str_c(cr->tenant)))
					rv = fail(l, v2, "auth.certificates",
					          "%s: tenant '%s' is not a name (1-63 of "
					          "[A-Za-z0-9._-], not starting with . or -)",
					          name, cr->tenant);
			} else {
				rv = fail(l, k2, "auth.certificates",
				          "unknown key '%s' (known: role, tenant)",
				          field != NULL ? field : "?");
			}
			if (rv != 0)
				return rv;
		}
		if (cr->role == AUTH_ROLE_NONE)
			return fail(l, v, "auth.certificates", "%s: role is required", name);
		if (cr->tenant[0] != '\0' && cr->role > AUTH_ROLE_SUBMITTER)
			return fail(l, v, "auth.certificates",
			            "%s: a tenant goes with viewer or submitter only (operators "
			            "and admins see every tenant)",
			            name);
		a->ncerts++;
	}
	return 0;
}

static int get_auth(struct loader *l, const yaml_node_t *n, struct node_config *c)
{
	const yaml_node_t *k, *v;
	const char *name;
	if (n->type != YAML_MAPPING_NODE)
		return fail(l, n, "auth",
		            "expected a mapping (jwt, rate_limits, rate_limit_entries, "
		            "certificates)");
	FOR_PAIRS(n, pr)
	{
		int rv;
		pair_at(l, n, pr, &k, &v, &name);
		if (name != NULL && strcmp(name, "jwt") == 0)
			rv = get_jwt(l, v, &c->auth);
		else if (name != NULL && strcmp(name, "rate_limits") == 0)
			rv = get_rate_limits(l, v, &c->auth);
		else if (name != NULL && strcmp(name, "rate_limit_entries") == 0)
			rv = get_unsigned(l, v, "auth.rate_limit_entries", 64, 1u << 20,
			                  &c->auth.rate_limit_entries);
		else if (name != NULL && strcmp(name, "certificates") == 0)
			rv = get_certificates(l, v, &c->auth);
		else
			rv = fail(l, k, "auth",
			          "unknown key '%s' (known: jwt, rate_limits, rate_limit_entries, "
			          "certificates)",
			          name != NULL ? name : "?");
		if (rv != 0)
			return rv;
	}
	return 0;
}

static int load_key(struct loader *l, const char *key, const yaml_node_t *v, struct node_config *c)
{
	if (strcmp(key, "auth") == 0)
		return get_auth(l, v, c);
	int srv = load_sandbox_key(l, key, v, c);
	if (srv != 1)
		return srv;
	if (strcmp(key, "join") == 0)
		return get_join(l, v, c);
	if (strcmp(key, "join_role") == 0)
		return get_role(l, v, key, &c->join_role);
	if (strcmp(key, "voters") == 0)
		return get_unsigned(l, v, key, 0, NODE_MAX_PEERS, &c->voters);
	if (strcmp(key, "standbys") == 0)
		return get_unsigned(l, v, key, 0, NODE_MAX_PEERS, &c->standbys);
	if (strcmp(key, "voter_replace_after_ms") == 0)
		return get_unsigned(l, v, key, 500, 86400000, &c->voter_replace_after_ms);
	if (strcmp(key, "member_catchup_timeout_ms") == 0)
		return get_unsigned(l, v, key, 500, 3600000, &c->member_catchup_timeout_ms);
	if (strcmp(key, "leave_on_shutdown") == 0)
		return get_bool(l, v, key, &c->leave_on_shutdown);
	if (strcmp(key, "capabilities") == 0)
		return get_caps(l, v, c);
	if (strcmp(key, "labels") == 0)
		return get_labels(l, v, c);
	if (strcmp(key, "slots") == 0)
		return get_unsigned(l, v, key, 0, ING_MAX_SLOTS, &c->slots);
	if (strcmp(key, "probe") == 0)
		return get_bool(l, v, key, &c->probe);
	if (strcmp(key, "gpus") == 0)
		return get_gpus(l, v, c);
	if (strcmp(key, "keep_failed_workdirs") == 0)
		return get_bool(l, v, key, &c->keep_failed_workdirs);
	if (strcmp(key, "heartbeat_interval_ms") == 0)
		return get_unsigned(l, v, key, 50, 60000, &c->heartbeat_interval_ms);
	if (strcmp(key, "retry_backoff_ms") == 0)
		return get_unsigned(l, v, key, 0, 60000, &c->retry_backoff_ms);
	if (strcmp(key, "assign_ahead") == 0)
		return get_unsigned(l, v, key, 0, ING_MAX_SLOTS, &c->assign_ahead);
	if (strcmp(key, "assign_ahead_max_ms") == 0)
		return get_unsigned(l, v, key, 0, 3600000, &c->assign_ahead_max_ms);
	if (strcmp(key, "node_down_after_ms") == 0)
		return get_unsigned(l, v, key, 200, 3600000, &c->node_down_after_ms);
	if (strcmp(key, "id") == 0)
		return get_uint(l, v, key, 1, UINT64_MAX, &c->id);
	if (strcmp(key, "data_dir") == 0)
		return get_str(l, v, key, c->data_dir, sizeof(c->data_dir));
	if (strcmp(key, "raft_address") == 0)
		return get_address(l, v, key, c->raft_address);
	if (strcmp(key, "api_address") == 0)
		return get_address(l, v, key, c->api_address);
	if (strcmp(key, "peers") == 0)
		return get_peers(l, v, c);
	if (strcmp(key, "election_timeout_ms") == 0)
		return get_unsigned(l, v, key, 50, 60000, &c->election_timeout_ms);
	if (strcmp(key, "heartbeat_timeout_ms") == 0)
		return get_unsigned(l, v, key, 5, 10000, &c->heartbeat_timeout_ms);
	if (strcmp(key, "connect_retry_ms") == 0)
		return get_unsigned(l, v, key, 5, 10000, &c->connect_retry_ms);
	if (strcmp(key, "snapshot_threshold") == 0)
		return get_unsigned(l, v, key, 16, 100000000, &c->snapshot_threshold);
	if (strcmp(key, "snapshot_trailing") == 0)
		return get_unsigned(l, v, key, 0, 100000000, &c->snapshot_trailing);
	if (strcmp(key, "snapshot_interval_ms") == 0)
		return get_unsigned(l, v, key, 0, 600000, &c->snapshot_interval_ms);
	if (strcmp(key, "max_frame_bytes") == 0)
		return get_unsigned(l, v, key, 4096, 256u << 20, &c->max_frame_bytes);
	if (strcmp(key, "request_timeout_ms") == 0)
		return get_unsigned(l, v, key, 100, 600000, &c->request_timeout_ms);
	if (strcmp(key, "max_connections") == 0)
		return get_unsigned(l, v, key, 1, 1000000, &c->max_connections);
	if (strcmp(key, "max_connections_per_address") == 0)
		return get_unsigned(l, v, key, 1, 1000000, &c->max_connections_per_address);
	if (strcmp(key, "max_output_bytes") == 0)
		return get_unsigned(l, v, key, 4096, 1u << 30, &c->max_output_bytes);
	if (strcmp(key, "max_calls") == 0)
		return get_unsigned(l, v, key, 1, 1000000, &c->max_calls);
	if (strcmp(key, "idle_timeout_ms") == 0)
		return get_unsigned(l, v, key, 100, 86400000, &c->idle_timeout_ms);
	if (strcmp(key, "frame_timeout_ms") == 0)
		return get_unsigned(l, v, key, 100, 3600000, &c->frame_timeout_ms);
	if (strcmp(key, "tls") == 0)
		return get_tls(l, v, c);
	if (strcmp(key, "store_sync") == 0)
		return get_sync(l, v, &c->store_sync);
	if (strcmp(key, "store_commit_interval_ms") == 0)
		return get_unsigned(l, v, key, 0, 10000, &c->store_commit_interval_ms);
	if (strcmp(key, "store_map_bytes") == 0)
		return get_uint(l, v, key, 1u << 20, 1ull << 44, &c->store_map_bytes);
	if (strcmp(key, "store_map_max_bytes") == 0)
		return get_uint(l, v, key, 1u << 20, 1ull << 44, &c->store_map_max_bytes);
	if (strcmp(key, "store_reserve_bytes") == 0)
		return get_uint(l, v, key, 1u << 16, 1ull << 44, &c->store_reserve_bytes);
	if (strcmp(key, "log_level") == 0)
		return get_level(l, v, &c->log_level);
	if (strcmp(key, "log_format") == 0)
		return get_format(l, v, &c->log_format);
	if (strcmp(key, "log_file") == 0)
		return get_str(l, v, key, c->log_file, sizeof(c->log_file));
	if (strcmp(key, "http_address") == 0)
		return get_address(l, v, key, c->http_address);
	return fail(l, v, key, "unknown key");
}

int node_config_load(struct node_config *c, const char *path, struct ing_error *e)
{
	struct loader l = {.path = path, .e = e};
	yaml_parser_t parser;
	FILE *f = fopen(path, "rb");
	int rv = 0;

	/* The file's directory, absolute when it can be (the daemon's working
	 * directory does not matter then). */
	char copy[NODE_PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	char *slash = strrchr(copy, '/');
	if (slash == NULL)
		snprintf(copy, sizeof(copy), ".");
	else if (slash == copy)
		copy[1] = '\0';
	else
		*slash = '\0';
	char *absolute = realpath(copy, NULL); /* not into l.dir: realpath needs PATH_MAX */
	snprintf(l.dir, sizeof(l.dir), "%s",
	         absolute != NULL && strlen(absolute) < sizeof(l.dir) ? absolute : copy);
	free(absolute);

	if (f == NULL)
		return ing_error_set(e, ING_EIO, "%s: cannot open: %s", path, strerror(errno));
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &l.doc)) {
		rv = ing_error_set(e, ING_EINVAL, "%s:%zu: not valid YAML: %s", path,
		                   parser.problem_mark.line + 1,
		                   parser.problem != NULL ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		fclose(f);
		return rv;
	}
	yaml_node_t *root = yaml_document_get_root_node(&l.doc);
	if (root == NULL || root->type != YAML_MAPPING_NODE) {
		rv = ing_error_set(e, ING_EINVAL, "%s: expected a mapping of keys", path);
		goto out;
	}
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
	     rv == 0 && pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(&l.doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(&l.doc, pr->value);
		const char *key = scalar(k);
		if (key == NULL) {
			rv = fail(&l, k, "?", "keys must be strings");
			break;
		}
		for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < pr; q++) {
			const char *prev = scalar(yaml_document_get_node(&l.doc, q->key));
			if (prev != NULL && strcmp(prev, key) == 0)
				rv = fail(&l, k, key, "given twice");
		}
		if (rv == 0)
			rv = load_key(&l, key, v, c);
	}
out:
	yaml_document_delete(&l.doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return rv;
}

static bool loopback(const char *address)
{
	return strncmp(address, "127.", 4) == 0;
}

int node_config_check_tls(const struct node_config *c, const char *source, struct ing_error *e)
{
	const char *key = NULL, *value = NULL;
	if (c->tls.enabled)
		return 0;
	if (!loopback(c->api_address))
		key = "api_address", value = c->api_address;
	else if (!loopback(c->raft_address))
		key = "raft_address", value = c->raft_address;
	else if (c->http_address[0] != '\0' && !loopback(c->http_address))
		key = "http_address", value = c->http_address;
	if (key == NULL)
		return 0;
	return ing_error_set(e, ING_EINVAL,
	                     "%s: key '%s' (%s) is not a loopback address and there is no 'tls' "
	                     "key: plaintext is for 127.0.0.0/8 only. Make certificates with "
	                     "'ingotctl pki init --dir DIR' and 'ingotctl pki issue node --id "
	                     "%" PRIu64 " --address HOST --dir DIR', then name them under "
	                     "'tls:' (ca, cert, key; docs/operations.md)",
	                     source, key, value, c->id);
}

int node_config_check(struct node_config *c, const char *source, struct ing_error *e)
{
	const struct node_peer *self = NULL;

	if (c->id == 0)
		return ing_error_set(e, ING_EINVAL, "%s: key 'id' is required", source);
	if (c->data_dir[0] == '\0')
		return ing_error_set(e, ING_EINVAL, "%s: key 'data_dir' is required", source);
	if (c->raft_address[0] == '\0' || c->api_address[0] == '\0')
		return ing_error_set(e, ING_EINVAL,
		                     "%s: keys 'raft_address' and 'api_address' are required",
		                     source);
	if (strcmp(c->raft_address, c->api_address) == 0)
		return ing_error_set(e, ING_EINVAL,
		                     "%s: 'raft_address' and 'api_address' must differ", source);
	if (c->http_address[0] != '\0' && (strcmp(c->http_address, c->api_address) == 0 ||
	                                   strcmp(c->http_address, c->raft_address) == 0))
		return ing_error_set(e, ING_EINVAL,
		                     "%s: 'http_address' must differ from 'api_address' and "
		                     "'raft_address'",
		                     source);
	if (c->node_down_after_ms < 2 * c->heartbeat_interval_ms)
		return ing_error_set(e, ING_EINVAL,
		                     "%s: key 'node_down_after_ms' (%u) must be at least twice "
		                     "'heartbeat_interval_ms' (%u)",
		                     source, c->node_down_after_ms, c->heartbeat_interval_ms);
	if (c->heartbeat_timeout_ms * 2 > c->election_timeout_ms)
		return ing_error_set(e, ING_EINVAL,
		                     "%s: key 'heartbeat_timeout_ms' (%u) must be at most half of "
		                     "'election_timeout_ms' (%u)",
		                     source, c->heartbeat_timeout_ms, c->election_timeout_ms);
	for (unsigned i = 0; i < c->npeers; i++) {
		const struct node_peer *p = &c->peers[i];
		for (unsigned j = 0; j < i; j++) {
			const struct node_peer *q = &c->peers[j];
			if (p->id == q->id)
				return ing_error_set(
				    e, ING_EINVAL, "%s: key 'peers': id %" PRIu64 " appears twice",
				    source, p->id);
			if (strcmp(p->raft_address, q->raft_address) == 0 ||
			    strcmp(p->api_address, q->api_address) == 0)
				return ing_error_set(e, ING_EINVAL,
				                     "%s: key 'peers': peers %" PRIu64
				                     " and %" PRIu64 " share an address",
				                     source, q->id, p->id);
		}
		if (p->id == c->id)
			self = p;
	}
	if (c->npeers > 0 && c->njoin > 0)
		return ing_error_set(e, ING_EINVAL,
		                     "%s: keys 'peers' and 'join' exclude each other: 'peers' "
		                     "bootstraps a new cluster, 'join' enters an existing one",
		                     source);
	if (c->npeers > 0 && self == NULL)
		return ing_error_set(
		    e, ING_EINVAL, "%s: key 'peers': this node's id %" PRIu64 " is not among them",
		    source, c->id);
	if (self != NULL && (strcmp(self->raft_address, c->raft_address) != 0 ||
	                     strcmp(self->api_address, c->api_address) != 0))
		return ing_error_set(e, ING_EINVAL,
		                     "%s: key 'peers': peer %" PRIu64
		                     " has other addresses than raft_address/api_address",
		                     source, c->id);
	return 0;
}
