/*
 * args.c - ingotctl's command line: argv + environment -> struct cli_cmd.
 *
 * Grammar (docs/cli.md): `ingotctl [global options] NOUN [VERB] [ARGS]`.
 * One pass over argv: every word that starts with '-' is an option (global
 * or of a command), every other word is positional; "--" makes the rest
 * positional.  Options take their value as "--opt value" or "--opt=value"
 * ("-o json" or "-ojson" for the short one).  Options are collected first
 * and applied once the command is known, so global options can come
 * anywhere and a command option given to the wrong command is named in the
 * error.  Which options a command takes, which it needs, the values an
 * option accepts and the lists of commands in errors all come from the
 * table in commands.c.  Nothing here performs I/O: every usage error is
 * found before a file is read or a byte is sent, and the caller maps
 * ING_EINVAL to exit 2.
 *
 * Numbers are decimal digits only (no sign, no spaces) and checked against
 * their bounds; durations go through cli_parse_duration; endpoints must be
 * what the client library can dial ("a.b.c.d:port" or "localhost:port").
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/tls.h"

/* Prefixes e's message with `prefix: ` (the message is copied first: it
 * cannot be both source and destination of ing_error_set). */
static int prefixed(struct ing_error *e, const char *prefix)
{
	char msg[ING_ERROR_MSG_MAX];
	snprintf(msg, sizeof(msg), "%s", e->msg);
	return ing_error_set(e, e->code, "%s: %s", prefix, msg);
}

/* Strict unsigned decimal in [min, max]. */
static int parse_uint(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                      struct ing_error *e)
{
	uint64_t v = 0;
	if (*s == '\0')
		return ing_error_set(e, ING_EINVAL, "%s: expected a number, got ''", what);
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return ing_error_set(e, ING_EINVAL, "%s: expected a number, got '%s'", what,
			                     s);
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return ing_error_set(e, ING_EINVAL, "%s: '%s' is too large", what, s);
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return ing_error_set(e, ING_EINVAL, "%s: %s is out of range (%llu to %llu)", what,
		                     s, (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

static uint64_t unit_ms(const char *p, size_t *unit_len)
{
	if (strncmp(p, "ms", 2) == 0) {
		*unit_len = 2;
		return 1;
	}
	*unit_len = 1;
	switch (*p) {
	case 's': return 1000;
	case 'm': return 60 * 1000;
	case 'h': return 3600 * 1000;
	case 'd': return 24 * 3600 * 1000;
	default: *unit_len = 0; return 0;
	}
}

int cli_parse_duration(const char *s, uint64_t *out_ms, struct ing_error *e)
{
	const char *p = s;
	uint64_t total_ms = 0;
	if (*p == '\0')
		return ing_error_set(e, ING_EINVAL, "empty duration (expected e.g. 500ms, 5s, 2m)");
	while (*p != '\0') {
		uint64_t whole = 0, frac = 0, frac_div = 1;
		const char *start = p;
		while (*p >= '0' && *p <= '9') {
			whole = whole * 10 + (uint64_t)(*p - '0');
			if (whole > CLI_DURATION_MAX_MS)
				goto too_long;
			p++;
		}
		bool have_digits = p != start;
		if (*p == '.') {
			p++;
			const char *fstart = p;
			while (*p >= '0' && *p <= '9') {
				if (frac_div < 1000000000) {
					frac = frac * 10 + (uint64_t)(*p - '0');
					frac_div *= 10;
				}
				p++;
			}
			have_digits = have_digits || p != fstart;
		}
		if (!have_digits)
			return ing_error_set(
			    e, ING_EINVAL, "bad duration '%s' (expected e.g. 500ms, 5s, 1m30s)", s);
		size_t ulen;
		uint64_t unit = unit_ms(p, &ulen);
		if (unit == 0)
			return ing_error_set(
			    e, ING_EINVAL,
			    "bad duration '%s': every number needs a unit: ms, s, m, h or d", s);
		p += ulen;
		if (whole > CLI_DURATION_MAX_MS / unit)
			goto too_long;
		total_ms += whole * unit + frac * unit / frac_div;
		if (total_ms > CLI_DURATION_MAX_MS)
			goto too_long;
	}
	*out_ms = total_ms;
	return 0;
too_long:
	return ing_error_set(e, ING_EINVAL, "duration '%s' is too long (at most 365 days)", s);
}

int cli_parse_size(const char *s, uint64_t *out_bytes, struct ing_error *e)
{
	static const struct {
		const char *name;
		unsigned shift;
	} units[] = {{"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
	const char *p = s;
	uint64_t v = 0;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			goto too_large;
		v = v * 10 + d;
		p++;
	}
	if (p == s)
		return ing_error_set(e, ING_EINVAL,
		                     "bad size '%s' (expected e.g. 4096, 64KiB, 512MiB, 1GiB)", s);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].name) != 0)
			continue;
		if (units[i].shift > 0 && v > (UINT64_MAX >> units[i].shift))
			goto too_large;
		*out_bytes = v << units[i].shift;
		return 0;
	}
	return ing_error_set(e, ING_EINVAL,
	                     "bad size '%s': the unit must be B, KiB, MiB, GiB or TiB", s);
too_large:
	return ing_error_set(e, ING_EINVAL, "size '%s' is too large", s);
}

/* "a.b.c.d:port" or "localhost:port", port 1-65535: what rpc_client dials. */
static int check_endpoint(const char *ep, size_t len, struct ing_error *e)
{
	char buf[CLI_ENDPOINT_MAX];
	if (len == 0)
		return ing_error_set(e, ING_EINVAL, "--endpoints: empty endpoint in the list");
	if (len >= sizeof(buf))
		return ing_error_set(e, ING_EINVAL, "endpoint '%.*s': too long", (int)len, ep);
	memcpy(buf, ep, len);
	buf[len] = '\0';
	char *colon = strrchr(buf, ':');
	uint64_t port;
	struct ing_error ignored;
	if (colon == NULL || parse_uint("port", colon + 1, 1, 65535, &port, &ignored) != 0)
		return ing_error_set(
		    e, ING_EINVAL, "endpoint '%s': expected HOST:PORT with a port from 1 to 65535",
		    buf);
	*colon = '\0';
	struct in_addr a;
	if (strcmp(buf, "localhost") != 0 && inet_pton(AF_INET, buf, &a) != 1)
		return ing_error_set(
		    e, ING_EINVAL,
		    "endpoint '%s:%s': the host must be an IPv4 address a.b.c.d or "
		    "localhost (names are not resolved)",
		    buf, colon + 1);
	return 0;
}

/* A member's raft or API address (--raft-address, --api-address): an
 * endpoint as above but IPv4 only, "a.b.c.d:port", because that is all
 * libraft dials (DESIGN.md): no names, not even localhost. */
static int check_member_address(const char *opt, const char *v, struct ing_error *e)
{
	struct ing_error ignored;
	if (check_endpoint(v, strlen(v), &ignored) != 0 || strncmp(v, "localhost:", 10) == 0)
		return ing_error_set(
		    e, ING_EINVAL,
		    "%s: expected an IPv4 address and port a.b.c.d:port (port 1 to "
		    "65535; no host names), got '%s'",
		    opt, v);
	return 0;
}

/* --role of member add or member demote: the values their rows accept. */
static int parse_role(struct cli_cmd *c, const struct cli_command *cmd, const char *v,
                      struct ing_error *e)
{
	const char *values = cli_command_opt_values(cmd, CLI_OPT_ROLE);
	char list[128];
	if (cli_value_allowed(v, values)) {
		c->role = v;
		return 0;
	}
	if (c->verb == CLI_MEMBER_DEMOTE && strcmp(v, "voter") == 0)
		return ing_error_set(e, ING_EINVAL,
		                     "--role: a demoted member becomes a standby or a spare, not a "
		                     "voter (to make a voter, use 'member promote')");
	cli_values_list(values, list, sizeof(list));
	return ing_error_set(e, ING_EINVAL, "--role: '%s' is not a role (%s)", v, list);
}

/* A member id: a positive integer (raft ids start at 1). */
static int parse_member_id(struct cli_cmd *c, const char *w, struct ing_error *e)
{
	struct ing_error ignored;
	if (parse_uint("member ID", w, 1, UINT64_MAX, &c->id, &ignored) != 0)
		return ing_error_set(
		    e, ING_EINVAL, "member ID: expected a positive integer, got '%s'%s", w,
		    c->verb == CLI_MEMBER_TRANSFER ? " (leave ID out to let the cluster choose)"
		                                   : "");
	return 0;
}

static int parse_endpoints(const char *list, enum cli_endpoints_source src, struct cli_cmd *c,
                           struct ing_error *e)
{
	unsigned n = 0;
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		int rv = check_endpoint(p, len, e);
		if (rv != 0)
			return rv;
		if (n == CLI_MAX_ENDPOINTS)
			return ing_error_set(e, ING_EINVAL, "more than %d endpoints given",
			                     CLI_MAX_ENDPOINTS);
		memcpy(c->endpoints[n], p, len);
		c->endpoints[n][len] = '\0';
		n++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	c->nendpoints = n;
	c->endpoints_source = src;
	return 0;
}

static bool printable_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s < 0x21 || *s > 0x7e)
			return false;
	}
	return true;
}

/* "status, target, ...": every noun; or with `noun`, its verbs. */
static void name_list(const char *noun, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *c = &cli_commands[i];
		const char *word = noun == NULL ? c->noun : c->verb;
		if (noun != NULL && strcmp(c->noun, noun) != 0)
			continue;
		if (noun == NULL && i > 0 && strcmp(cli_commands[i - 1].noun, c->noun) == 0)
			continue;
		int w = snprintf(buf + n, cap - n, "%s%s", n > 0 ? ", " : "", word);
		if (w < 0 || (size_t)w >= cap - n)
			break;
		n += (size_t)w;
	}
}

/* The command for `noun verb` (verb may be NULL), or NULL with the reason
 * in e. */
static const struct cli_command *find_command(const char *noun, const char *verb,
                                              struct ing_error *e)
{
	char list[256];
	const struct cli_command *c = cli_command_find(noun, verb);
	if (c != NULL)
		return c;
	if (!cli_noun_known(noun)) {
		name_list(NULL, list, sizeof(list));
		ing_error_set(e, ING_EINVAL, "unknown command '%s' (commands: %s)", noun, list);
		return NULL;
	}
	name_list(noun, list, sizeof(list));
	if (verb == NULL)
		ing_error_set(e, ING_EINVAL, "'%s' needs a subcommand (%s)", noun, list);
	else
		ing_error_set(e, ING_EINVAL, "unknown subcommand '%s %s' (%s)", noun, verb, list);
	return NULL;
}

/* Finds the option for argv word `arg` ("--name[=v]", "-x[v]").  Sets
 * *inline_value when the value is attached.  With e NULL, only looks. */
static int find_opt(const char *arg, const char **inline_value, struct ing_error *e)
{
	*inline_value = NULL;
	if (arg[1] == '-') {
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		for (int i = 0; i < CLI_OPT_COUNT; i++) {
			if (strlen(cli_opts[i].name) == len &&
			    strncmp(cli_opts[i].name, name, len) == 0) {
				if (eq != NULL && cli_opts[i].arg == NULL)
					return ing_error_set(e, ING_EINVAL,
					                     "option --%s takes no value",
					                     cli_opts[i].name);
				*inline_value = eq != NULL ? eq + 1 : NULL;
				return i;
			}
		}
		return ing_error_set(e, ING_EINVAL, "unknown option '%.*s'", (int)(len + 2), arg);
	}
	for (int i = 0; i < CLI_OPT_COUNT; i++) {
		if (cli_opts[i].short_name != 0 && cli_opts[i].short_name == arg[1]) {
			if (arg[2] != '\0' && cli_opts[i].arg == NULL)
				return ing_error_set(e, ING_EINVAL, "unknown option '%s'", arg);
			*inline_value = arg[2] != '\0' ? arg + 2 : NULL;
			return i;
		}
	}
	return ing_error_set(e, ING_EINVAL, "unknown option '%s'", arg);
}

const struct cli_command *cli_guess_command(int argc, char **argv, const char **noun)
{
	const char *words[3] = {NULL, NULL, NULL};
	int nwords = 0;
	bool only_words = false;
	for (int i = 1; i < argc && nwords < 3; i++) {
		const char *arg = argv[i], *value;
		if (only_words || arg[0] != '-' || arg[1] == '\0') {
			words[nwords++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_words = true;
			continue;
		}
		int id = find_opt(arg, &value, NULL);
		if (id >= 0 && cli_opts[id].arg != NULL && value == NULL)
			i++; /* its value */
	}
	/* `help job submit` names job submit */
	const char **w = words;
	if (nwords > 1 && strcmp(words[0], "help") == 0)
		w++;
	*noun = NULL;
	if (w[0] == NULL || !cli_noun_known(w[0]))
		return NULL;
	*noun = w[0];
	return cli_command_find(w[0], w[1]);
}

/* Applies one global option's value (command options are kept for later,
 * when the verb is known). */
static int apply_global(struct cli_cmd *c, int id, const char *v, struct ing_error *e)
{
	int rv;
	switch (id) {
	case CLI_OPT_ENDPOINTS: return parse_endpoints(v, CLI_EP_FLAG, c, e);
	case CLI_OPT_OUTPUT:
		if (strcmp(v, "table") == 0)
			c->output = CLI_OUTPUT_TABLE;
		else if (strcmp(v, "json") == 0)
			c->output = CLI_OUTPUT_JSON;
		else
			return ing_error_set(e, ING_EINVAL, "-o: expected table or json, got '%s'",
			                     v);
		return 0;
	case CLI_OPT_TIMEOUT:
		rv = cli_parse_duration(v, &c->timeout_ms, e);
		if (rv != 0)
			return prefixed(e, "--timeout");
		if (c->timeout_ms == 0 || c->timeout_ms > UINT32_MAX)
			return ing_error_set(e, ING_EINVAL,
			                     "--timeout: must be from 1ms to 49 days, got '%s'", v);
		c->timeout_given = true;
		return 0;
	case CLI_OPT_TOKEN:
		if (*v == '\0' || strlen(v) > CLI_TOKEN_MAX)
			return ing_error_set(e, ING_EINVAL, "--token: must be 1 to %d bytes",
			                     CLI_TOKEN_MAX);
		c->token = v;
		return 0;
	case CLI_OPT_STALE: c->stale = true; return 0;
	case CLI_OPT_CACERT:
	case CLI_OPT_CERT:
	case CLI_OPT_KEY:
		if (*v == '\0')
			return ing_error_set(e, ING_EINVAL, "--%s: empty file name",
			                     cli_opts[id].name);
		*(id == CLI_OPT_CACERT ? &c->cacert : id == CLI_OPT_CERT ? &c->cert : &c->key) = v;
		return 0;
	default: return 0;
	}
}

static int apply_command_opt(struct cli_cmd *c, const struct cli_command *cmd, int id,
                             const char *v, struct ing_error *e)
{
	char list[128];
	int rv;
	switch (id) {
	case CLI_OPT_TARGET:
		if (*v == '\0')
			return ing_error_set(e, ING_EINVAL, "--target: empty name");
		c->target = v;
		return 0;
	case CLI_OPT_PRIORITY:
		c->has_priority = true;
		return parse_uint("--priority", v, 0, CLI_PRIORITY_MAX, &c->priority, e);
	case CLI_OPT_MAX_ATTEMPTS:
		c->has_max_attempts = true;
		return parse_uint("--max-attempts", v, 1, UINT32_MAX, &c->max_attempts, e);
	case CLI_OPT_DEADLINE:
		c->has_deadline = true;
		rv = cli_parse_duration(v, &c->deadline_ms, e);
		if (rv != 0)
			return prefixed(e, "--deadline");
		if (c->deadline_ms == 0)
			return ing_error_set(e, ING_EINVAL, "--deadline: must be more than 0");
		return 0;
	case CLI_OPT_TENANT:
		if (*v == '\0')
			return ing_error_set(e, ING_EINVAL, "--tenant: empty name");
		c->tenant = v;
		return 0;
	case CLI_OPT_REQUEST_ID:
		if (*v == '\0' || strlen(v) > CLI_REQUEST_ID_MAX || !printable_ascii(v))
			return ing_error_set(
			    e, ING_EINVAL,
			    "--request-id: must be 1 to %d printable ASCII characters "
			    "without spaces",
			    CLI_REQUEST_ID_MAX);
		c->request_id = v;
		return 0;
	case CLI_OPT_STATE:
		if (cli_value_allowed(v, cli_opts[CLI_OPT_STATE].values)) {
			c->state = v;
			return 0;
		}
		cli_values_list(cli_opts[CLI_OPT_STATE].values, list, sizeof(list));
		return ing_error_set(e, ING_EINVAL, "--state: '%s' is not a job state (%s)", v,
		                     list);
	case CLI_OPT_LIMIT:
		c->has_limit = true;
		return parse_uint("--limit", v, 1, CLI_LIST_LIMIT_MAX, &c->limit, e);
	case CLI_OPT_AFTER:
		c->has_after = true;
		return parse_uint("--after", v, 0, UINT64_MAX, &c->after, e);
	case CLI_OPT_ALL: c->all = true; return 0;
	case CLI_OPT_REASON: c->reason = v; return 0;
	case CLI_OPT_STAGE:
		if (*v == '\0')
			return ing_error_set(e, ING_EINVAL,
			                     "--stage: expected a stage index or name");
		c->has_stage = true;
		if (*v >= '0' && *v <= '9')
			return parse_uint("--stage", v, 0, UINT32_MAX, &c->stage_index, e);
		c->stage_name = v;
		return 0;
	case CLI_OPT_FOLLOW: c->follow = true; return 0;
	case CLI_OPT_RAFT_ADDRESS:
		c->raft_address = v;
		return check_member_address("--raft-address", v, e);
	case CLI_OPT_API_ADDRESS:
		c->api_address = v;
		return check_member_address("--api-address", v, e);
	case CLI_OPT_ROLE: return parse_role(c, cmd, v, e);
	case CLI_OPT_DIR:
		if (*v == '\0')
			return ing_error_set(e, ING_EINVAL, "--dir: empty directory name");
		c->dir = v;
		return 0;
	case CLI_OPT_ID: return parse_uint("--id", v, 1, UINT64_MAX, &c->id, e);
	case CLI_OPT_NAME:
		if (!ing_tls_client_name_valid(v, strlen(v)))
			return ing_error_set(
			    e, ING_EINVAL,
			    "--name '%.80s': expected 1 to %d characters of letters, "
			    "digits, '.', '_' and '-', not starting with '.' or '-'",
			    v, ING_TLS_CLIENT_NAME_MAX);
		c->pki_name = v;
		return 0;
	case CLI_OPT_FORCE: c->force = true; return 0;
	case CLI_OPT_DAYS: return parse_uint("--days", v, 1, CLI_PKI_DAYS_MAX, &c->days, e);
	default: return 0;
	}
}

/* One --param NAME=VALUE into c->params: NAME of [A-Za-z_][A-Za-z0-9_]*,
 * 1..CLI_PARAM_NAME_MAX bytes, not given before; VALUE up to
 * CLI_PARAM_VALUE_MAX bytes (may be empty). */
static int add_param(struct cli_cmd *c, const char *v, struct ing_error *e)
{
	const char *eq = strchr(v, '=');
	if (eq == NULL)
		return ing_error_set(e, ING_EINVAL, "--param: expected NAME=VALUE, got '%s'", v);
	size_t len = (size_t)(eq - v);
	bool ok = len >= 1 && len <= CLI_PARAM_NAME_MAX && !(v[0] >= '0' && v[0] <= '9');
	for (size_t i = 0; ok && i < len; i++)
		ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
		     (v[i] >= '0' && v[i] <= '9') || v[i] == '_';
	if (!ok)
		return ing_error_set(e, ING_EINVAL,
		                     "--param: '%.*s' is not a parameter name (1-%d characters "
		                     "of [A-Za-z_][A-Za-z0-9_]*)",
		                     (int)(len > 80 ? 80 : len), v, CLI_PARAM_NAME_MAX);
	if (strlen(eq + 1) > CLI_PARAM_VALUE_MAX)
		return ing_error_set(e, ING_EINVAL, "--param %.*s: value over %d bytes", (int)len,
		                     v, CLI_PARAM_VALUE_MAX);
	for (unsigned i = 0; i < c->nparams; i++) {
		if (c->params[i].name_len == len && memcmp(c->params[i].name, v, len) == 0)
			return ing_error_set(e, ING_EINVAL, "--param %.*s: given twice", (int)len,
			                     v);
	}
	if (c->nparams >= CLI_MAX_PARAMS)
		return ing_error_set(e, ING_EINVAL, "--param: at most %d parameters",
		                     CLI_MAX_PARAMS);
	c->params[c->nparams].name = v;
	c->params[c->nparams].name_len = len;
	c->params[c->nparams].value = eq + 1;
	c->nparams++;
	return 0;
}

/* `help [NOUN [VERB]]`: the command or noun whose usage to print. */
static int help_operands(struct cli_cmd *c, char **words, int nwords, struct ing_error *e)
{
	const struct cli_command *cmd = find_command(words[0], nwords > 1 ? words[1] : NULL, e);
	if (cmd == NULL && nwords == 1 && cli_noun_known(words[0])) {
		c->help_noun = words[0]; /* a noun with verbs: its list */
		return 0;
	}
	if (cmd == NULL)
		return ING_EINVAL;
	int used = cmd->verb != NULL ? 2 : 1;
	if (nwords > used)
		return ing_error_set(e, ING_EINVAL, "'help' takes one command, got also '%s'",
		                     words[used]);
	c->help_cmd = cmd;
	c->help_noun = cmd->noun;
	return 0;
}

/* settings set NAME DURATION: NAME job-retention or dedupe-window, DURATION
 * a duration of at least 1s, or "forever" (0). */
static int parse_setting(struct cli_cmd *c, const char *name, const char *value,
                         struct ing_error *e)
{
	if (strcmp(name, "job-retention") == 0)
		c->name = "job_retention_ms";
	else if (strcmp(name, "dedupe-window") == 0)
		c->name = "dedupe_window_ms";
	else
		return ing_error_set(e, ING_EINVAL,
		                     "'settings set': unknown setting '%s' (job-retention or "
		                     "dedupe-window)",
		                     name);
	if (strcmp(value, "forever") == 0) {
		c->setting_ms = 0;
		return 0;
	}
	int rv = cli_parse_duration(value, &c->setting_ms, e);
	if (rv == 0 && c->setting_ms < 1000)
		rv = ing_error_set(e, ING_EINVAL,
		                   "'settings set': %s must be at least 1s, or forever", name);
	return rv;
}

/* The positional operand(s) of the verb, after noun and verb words. */
static int apply_operands(struct cli_cmd *c, const struct cli_command *vd, char **words, int nwords,
                          struct ing_error *e)
{
	char full[64];
	snprintf(full, sizeof(full), "%s%s%s", vd->noun, vd->verb != NULL ? " " : "",
	         vd->verb != NULL ? vd->verb : "");
	if (vd->operands == NULL) {
		if (nwords > 0)
			return ing_error_set(e, ING_EINVAL, "'%s' takes no arguments, got '%s'",
			                     full, words[0]);
		return 0;
	}
	bool optional = vd->operands[0] == '[';
	if (nwords == 0)
		return optional ? 0
		                : ing_error_set(e, ING_EINVAL, "'%s' needs %s", full, vd->operands);
	if (c->verb == CLI_HELP)
		return help_operands(c, words, nwords, e);
	if (c->verb == CLI_JOB_SUBMIT) {
		if (nwords > CLI_MAX_FILES)
			return ing_error_set(e, ING_EINVAL,
			                     "'job submit': at most %d files, got %d",
			                     CLI_MAX_FILES, nwords);
		for (int i = 0; i < nwords; i++)
			c->files[i] = words[i];
		c->nfiles = (unsigned)nwords;
		return 0;
	}
	if (c->verb == CLI_JOB_FETCH) {
		if (nwords != 2)
			return ing_error_set(e, ING_EINVAL, "'%s' needs ID DIR, %s", full,
			                     nwords < 2 ? "got no DIR" : "got more");
		if (*words[1] == '\0')
			return ing_error_set(e, ING_EINVAL, "'%s': empty DIR", full);
		c->dir = words[1];
		return parse_uint("job ID", words[0], 0, UINT64_MAX, &c->id, e);
	}
	if (c->verb == CLI_SETTINGS_SET) {
		if (nwords != 2)
			return ing_error_set(e, ING_EINVAL, "'%s' needs NAME DURATION, %s", full,
			                     nwords < 2 ? "got no DURATION" : "got more");
		return parse_setting(c, words[0], words[1], e);
	}
	if (nwords > 1 && optional)
		return ing_error_set(e, ING_EINVAL, "'%s' takes at most one %.*s, got also '%s'",
		                     full, (int)strlen(vd->operands) - 2, vd->operands + 1,
		                     words[1]);
	if (nwords > 1)
		return ing_error_set(e, ING_EINVAL, "'%s' takes one %s, got also '%s'", full,
		                     vd->operands, words[1]);
	switch (c->verb) {
	case CLI_TARGET_APPLY: c->file = words[0]; return 0;
	case CLI_SNAPSHOT_SAVE:
		if (*words[0] == '\0')
			return ing_error_set(e, ING_EINVAL, "'%s': empty FILE", full);
		c->file = words[0];
		return 0;
	case CLI_TARGET_GET:
	case CLI_TARGET_DELETE:
		if (*words[0] == '\0')
			return ing_error_set(e, ING_EINVAL, "'%s': empty target name", full);
		c->name = words[0];
		return 0;
	case CLI_NODE_DRAIN:
	case CLI_NODE_UNDRAIN:
	case CLI_NODE_FORGET: return parse_uint("node ID", words[0], 0, UINT64_MAX, &c->id, e);
	case CLI_SETTINGS_SET: return 0; /* NAME DURATION: taken before */
	case CLI_MEMBER_ADD:
	case CLI_MEMBER_PROMOTE:
	case CLI_MEMBER_DEMOTE:
	case CLI_MEMBER_REMOVE:
	case CLI_MEMBER_TRANSFER: return parse_member_id(c, words[0], e);
	case CLI_PKI_ISSUE:
		if (strcmp(words[0], "node") != 0 && strcmp(words[0], "client") != 0)
			return ing_error_set(e, ING_EINVAL,
			                     "'pki issue': KIND must be node or client, got '%s'",
			                     words[0]);
		c->pki_node = strcmp(words[0], "node") == 0;
		return 0;
	default: return parse_uint("job ID", words[0], 0, UINT64_MAX, &c->id, e);
	}
}

/* --address values of pki issue node: each an IP or DNS name, no repeats. */
static int add_addresses(struct cli_cmd *c, const char *const *v, unsigned n, struct ing_error *e)
{
	for (unsigned i = 0; i < n; i++) {
		const char *kind;
		if (cli_pki_address_kind(v[i], &kind) != 0)
			return ing_error_set(
			    e, ING_EINVAL,
			    "--address '%.80s': expected an IPv4 or IPv6 address or a "
			    "DNS name",
			    v[i]);
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(v[i], v[j]) == 0)
				return ing_error_set(e, ING_EINVAL, "--address '%.80s' given twice",
				                     v[i]);
		}
		c->addresses[i] = v[i];
	}
	c->naddresses = n;
	return 0;
}

/* What pki issue needs for its KIND, and the options of the other KIND
 * (the table cannot say "required for node"). */
static int check_pki_issue(const struct cli_cmd *c, const bool *seen, struct ing_error *e)
{
	if (c->pki_node && c->id == 0)
		return ing_error_set(e, ING_EINVAL, "'pki issue node' needs --id N (the raft id)");
	if (c->pki_node && c->naddresses == 0)
		return ing_error_set(e, ING_EINVAL,
		                     "'pki issue node' needs --address HOST_OR_IP (each address "
		                     "clients and peers use to reach the node; repeat it)");
	if (!c->pki_node && c->pki_name == NULL)
		return ing_error_set(e, ING_EINVAL, "'pki issue client' needs --name NAME");
	if (!c->pki_node && (seen[CLI_OPT_ID] || seen[CLI_OPT_ADDRESS]))
		return ing_error_set(e, ING_EINVAL, "'pki issue client' has no option --%s",
		                     seen[CLI_OPT_ID] ? "id" : "address");
	if (c->pki_node && seen[CLI_OPT_NAME])
		return ing_error_set(e, ING_EINVAL, "'pki issue node' has no option --name");
	return 0;
}

/* --cert and --key go together, and need --cacert to check the server. */
static int check_tls(const struct cli_cmd *c, struct ing_error *e)
{
	if ((c->cert == NULL) != (c->key == NULL))
		return ing_error_set(e, ING_EINVAL,
		                     "%s needs %s too (a client certificate and its key go "
		                     "together; or INGOT_CERT and INGOT_KEY)",
		                     c->cert != NULL ? "--cert" : "--key",
		                     c->cert != NULL ? "--key" : "--cert");
	if (c->cert != NULL && c->cacert == NULL)
		return ing_error_set(e, ING_EINVAL,
		                     "--cert needs --cacert (the cluster CA, to check the server's "
		                     "certificate; or INGOT_CACERT)");
	return 0;
}

static int env_file(const char *name, const char *v, const char **out, struct ing_error *e)
{
	if (v == NULL || *v == '\0')
		return 0;
	if (strlen(v) > 4096)
		return ing_error_set(e, ING_EINVAL, "%s: path too long", name);
	*out = v;
	return 0;
}

int cli_parse_args(int argc, char **argv, const struct cli_env *env, struct cli_cmd *out,
                   struct ing_error *e)
{
	struct ing_error scratch;
	static const struct cli_env no_env;
	if (e == NULL)
		e = &scratch;
	if (env == NULL)
		env = &no_env;
	struct cli_cmd c;
	memset(&c, 0, sizeof(c));
	c.output = CLI_OUTPUT_TABLE;
	c.timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	int rv;
	if (env->endpoints != NULL && *env->endpoints != '\0') {
		rv = parse_endpoints(env->endpoints, CLI_EP_ENV, &c, e);
		if (rv != 0)
			return prefixed(e, "INGOT_ENDPOINTS");
	} else {
		parse_endpoints(CLI_DEFAULT_ENDPOINTS, CLI_EP_DEFAULT, &c, e);
	}
	if (env->token != NULL && *env->token != '\0') {
		if (strlen(env->token) > CLI_TOKEN_MAX)
			return ing_error_set(e, ING_EINVAL, "INGOT_TOKEN: over %d bytes",
			                     CLI_TOKEN_MAX);
		c.token = env->token;
	}
	rv = env_file("INGOT_CACERT", env->cacert, &c.cacert, e);
	if (rv == 0)
		rv = env_file("INGOT_CERT", env->cert, &c.cert, e);
	if (rv == 0)
		rv = env_file("INGOT_KEY", env->key, &c.key, e);
	if (rv != 0)
		return rv;

	/* Help wins over every other problem on the line, then --version. */
	int wins = -1;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			wins = CLI_HELP;
		else if (strcmp(argv[i], "--version") == 0 && wins < 0)
			wins = CLI_VERSION;
	}
	if (wins >= 0) {
		memset(out, 0, sizeof(*out));
		out->verb = (enum cli_verb)wins;
		if (wins == CLI_HELP)
			out->help_cmd = cli_guess_command(argc, argv, &out->help_noun);
		return 0;
	}
	char **words = argc > 1 ? calloc((size_t)argc, sizeof(*words)) : NULL;
	const char *cmd_values[CLI_OPT_COUNT] = {NULL};
	const char *param_values[CLI_MAX_PARAMS + 1];
	int nparam_values = 0;
	const char *address_values[CLI_PKI_MAX_ADDRESSES + 1];
	unsigned naddress_values = 0;
	bool seen[CLI_OPT_COUNT] = {false};
	int nwords = 0;
	bool only_words = false;
	if (argc > 1 && words == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	rv = 0;
	for (int i = 1; i < argc && rv == 0; i++) {
		const char *arg = argv[i];
		if (only_words || arg[0] != '-' || arg[1] == '\0') {
			words[nwords++] = argv[i];
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_words = true;
			continue;
		}
		const char *value;
		int id = find_opt(arg, &value, e);
		if (id < 0) {
			rv = id;
			break;
		}
		if (cli_opts[id].arg != NULL && value == NULL) {
			if (i + 1 >= argc) {
				rv = ing_error_set(e, ING_EINVAL, "option --%s needs a value",
				                   cli_opts[id].name);
				break;
			}
			value = argv[++i];
		}
		if (id == CLI_OPT_HELP || id == CLI_OPT_VERSION) /* "-hx", "--help=x" */
			rv = ing_error_set(e, ING_EINVAL, "unknown option '%s'", arg);
		if (rv != 0)
			break;
		if (id == CLI_OPT_PARAM) {
			if (nparam_values > CLI_MAX_PARAMS) {
				rv = ing_error_set(e, ING_EINVAL, "--param: at most %d parameters",
				                   CLI_MAX_PARAMS);
				break;
			}
			param_values[nparam_values++] = value;
		}
		if (id == CLI_OPT_ADDRESS) {
			if (naddress_values >= CLI_PKI_MAX_ADDRESSES) {
				rv = ing_error_set(e, ING_EINVAL, "--address: at most %d addresses",
				                   CLI_PKI_MAX_ADDRESSES);
				break;
			}
			address_values[naddress_values++] = value;
		}
		/* A flag repeated means the same; a value given twice is an error,
		 * except for the repeatable ones (checked with the command). */
		if (seen[id] && cli_opts[id].arg != NULL && id != CLI_OPT_PARAM &&
		    id != CLI_OPT_ADDRESS) {
			rv = ing_error_set(e, ING_EINVAL, "option --%s given twice",
			                   cli_opts[id].name);
			break;
		}
		seen[id] = true;
		if (cli_opts[id].global)
			rv = apply_global(&c, id, value, e);
		else
			cmd_values[id] = value != NULL ? value : "";
	}
	const struct cli_command *vd = NULL;
	if (rv == 0 && nwords == 0)
		rv = ing_error_set(e, ING_EINVAL, "no command given");
	if (rv == 0) {
		vd = find_command(words[0], nwords > 1 ? words[1] : NULL, e);
		if (vd == NULL)
			rv = ING_EINVAL;
	}
	if (rv == 0) {
		c.verb = vd->id;
		int skip = vd->verb != NULL ? 2 : 1;
		rv = apply_operands(&c, vd, words + skip, nwords - skip, e);
	}
	char name[64];
	if (vd != NULL)
		cli_command_name(vd, name, sizeof(name));
	for (int id = 0; rv == 0 && id < CLI_OPT_COUNT; id++) {
		const struct cli_command_opt *row = cli_command_opt(vd, (enum cli_opt_id)id);
		if (cli_opts[id].global || !seen[id])
			continue;
		if (row == NULL) {
			rv = ing_error_set(e, ING_EINVAL, "'%s' has no option --%s", name,
			                   cli_opts[id].name);
		} else if (id == CLI_OPT_PARAM) {
			for (int k = 0; rv == 0 && k < nparam_values; k++)
				rv = add_param(&c, param_values[k], e);
		} else if (id == CLI_OPT_ADDRESS) {
			rv = add_addresses(&c, address_values, naddress_values, e);
		} else {
			rv = apply_command_opt(&c, vd, id, cmd_values[id], e);
		}
	}
	if (rv == 0 && c.stale && !(vd->flags & CLI_CMD_READ))
		rv = ing_error_set(e, ING_EINVAL, "--stale applies to reads only, not to '%s'",
		                   name);
	for (const struct cli_command_opt *row = vd != NULL ? vd->opts : NULL;
	     rv == 0 && row->help != NULL; row++) {
		if ((row->flags & CLI_OPT_REQUIRED) && !seen[row->id]) {
			char arg[128];
			rv = ing_error_set(
			    e, ING_EINVAL, "'%s' needs --%s %s (%s)", name, cli_opts[row->id].name,
			    cli_command_opt_arg(vd, row->id, arg, sizeof(arg)), row->help);
		}
	}
	if (rv == 0 && !c.timeout_given && (vd->flags & CLI_CMD_MEMBER_CHANGE))
		c.timeout_ms = CLI_MEMBER_TIMEOUT_MS;
	if (rv == 0 && c.verb == CLI_PKI_ISSUE)
		rv = check_pki_issue(&c, seen, e);
	if (rv == 0)
		rv = check_tls(&c, e);
	free(words);
	if (rv != 0)
		return rv;
	*out = c;
	return 0;
}
