/*
 * commands.c - the one table of ingotctl's commands and options.
 *
 * Everything that names a command or an option is made from these two
 * tables: the parser (args.c: which options a command takes, which are
 * required, which values an option accepts, the lists in its errors), the
 * help (help.c: `ingotctl help [COMMAND]`, `COMMAND --help`), the bash
 * completion (`ingotctl completion bash`) and, through a test, the command
 * table of docs/cli.md.  Adding an option is one row in cli_opts and one
 * row in each command that takes it (with that command's words for it);
 * nothing else lists it.
 *
 * Texts are single lines: help.c wraps them.  A command's `text` says what
 * it does in a few sentences; docs/cli.md has the full story.
 */
#include <string.h>

#include "cli/cli.h"

const struct cli_opt cli_opts[CLI_OPT_COUNT] = {
    [CLI_OPT_ENDPOINTS] = {"endpoints", 0, "H:P,...", true,
                           "nodes to talk to, tried in order (env INGOT_ENDPOINTS; "
                           "default " CLI_DEFAULT_ENDPOINTS ")",
                           NULL},
    [CLI_OPT_OUTPUT] = {"output", 'o', "FORMAT", true, "table (default) or json", "table json"},
    [CLI_OPT_TIMEOUT] = {"timeout", 0, "DURATION", true,
                         "bound on each request, e.g. 500ms, 5s, 2m (default 10s; 60s for "
                         "member add, promote, demote, remove and transfer-leadership)",
                         NULL},
    [CLI_OPT_TOKEN] = {"token", 0, "TOKEN", true, "API token (env INGOT_TOKEN)", NULL},
    [CLI_OPT_STALE] = {"stale", 0, NULL, true,
                       "reads only: the node reached answers from its own state, without "
                       "asking the leader",
                       NULL},
    [CLI_OPT_HELP] = {"help", 'h', NULL, true,
                      "usage of ingotctl, or of the command on the line (anywhere on it)", NULL},
    [CLI_OPT_VERSION] = {"version", 0, NULL, true,
                         "version and commit of ingotctl and the libraries it runs on", NULL},
    [CLI_OPT_TARGET] = {"target", 0, "NAME", false, NULL, NULL},
    [CLI_OPT_PRIORITY] = {"priority", 0, "N", false, NULL, NULL},
    [CLI_OPT_MAX_ATTEMPTS] = {"max-attempts", 0, "N", false, NULL, NULL},
    [CLI_OPT_DEADLINE] = {"deadline", 0, "DURATION", false, NULL, NULL},
    [CLI_OPT_TENANT] = {"tenant", 0, "TENANT", false, NULL, NULL},
    [CLI_OPT_REQUEST_ID] = {"request-id", 0, "ID", false, NULL, NULL},
    [CLI_OPT_STATE] = {"state", 0, "STATE", false, NULL,
                       "queued assigned running succeeded failed cancelled"},
    [CLI_OPT_LIMIT] = {"limit", 0, "N", false, NULL, NULL},
    [CLI_OPT_AFTER] = {"after", 0, "ID", false, NULL, NULL},
    [CLI_OPT_ALL] = {"all", 0, NULL, false, NULL, NULL},
    [CLI_OPT_REASON] = {"reason", 0, "TEXT", false, NULL, NULL},
    [CLI_OPT_STAGE] = {"stage", 0, "N|NAME", false, NULL, NULL},
    [CLI_OPT_FOLLOW] = {"follow", 'f', NULL, false, NULL, NULL},
    [CLI_OPT_PARAM] = {"param", 0, "NAME=VALUE", false, NULL, NULL},
    [CLI_OPT_RAFT_ADDRESS] = {"raft-address", 0, "A.B.C.D:PORT", false, NULL, NULL},
    [CLI_OPT_API_ADDRESS] = {"api-address", 0, "A.B.C.D:PORT", false, NULL, NULL},
    [CLI_OPT_ROLE] = {"role", 0, "ROLE", false, NULL, NULL},
    [CLI_OPT_CACERT] = {"cacert", 0, "FILE", true,
                        "the cluster CA: talk TLS and check the server's certificate (env "
                        "INGOT_CACERT)",
                        NULL},
    [CLI_OPT_CERT] = {"cert", 0, "FILE", true,
                      "this client's certificate, with --key (env INGOT_CERT)", NULL},
    [CLI_OPT_KEY] = {"key", 0, "FILE", true, "the private key of --cert (env INGOT_KEY)", NULL},
    [CLI_OPT_DIR] = {"dir", 0, "DIR", false, NULL, NULL},
    [CLI_OPT_ID] = {"id", 0, "N", false, NULL, NULL},
    [CLI_OPT_ADDRESS] = {"address", 0, "HOST_OR_IP", false, NULL, NULL},
    [CLI_OPT_NAME] = {"name", 0, "NAME", false, NULL, NULL},
    [CLI_OPT_FORCE] = {"force", 0, NULL, false, NULL, NULL},
    [CLI_OPT_DAYS] = {"days", 0, "N", false, NULL, NULL},
};

/* A command's option list: OPTS({...}, {...}) ends with the NULL row. */
#define OPTS(...) ((const struct cli_command_opt[]){__VA_ARGS__, {0, 0, NULL, NULL, NULL}})
#define NO_OPTS   ((const struct cli_command_opt[]){{0, 0, NULL, NULL, NULL}})

const struct cli_command cli_commands[] = {
    {"status", NULL, CLI_STATUS, NULL, CLI_CMD_READ, "the leader, the term and every member",
     "Shows the leader, the term, the node that answered, and every member with its role, "
     "whether it answered the leader's probe and its applied index. A plain status needs a "
     "leader; with --stale the node reached answers from its own state, leader or not.",
     NO_OPTS},
    {"target", "apply", CLI_TARGET_APPLY, "FILE", 0, "create or replace a target from a YAML file",
     "Reads FILE (its format: docs/cli.md, \"Target files\") and checks it completely before "
     "anything is sent: a problem is exit 2, naming the file, line, column and key. A target "
     "of the same name is replaced and its revision goes up.",
     NO_OPTS},
    {"target", "list", CLI_TARGET_LIST, NULL, CLI_CMD_READ, "list the targets", NULL, NO_OPTS},
    {"target", "get", CLI_TARGET_GET, "NAME", CLI_CMD_READ, "show one target", NULL, NO_OPTS},
    {"target", "delete", CLI_TARGET_DELETE, "NAME", 0, "delete a target", NULL, NO_OPTS},
    {"job", "submit", CLI_JOB_SUBMIT, "FILE...", 0, "submit a job; prints its id",
     "Sends the FILEs (1 to 64) as the job's sources, each under its path when that is "
     "relative and has no '..', else under its base name, and prints the new job's id alone "
     "on stdout. Every file is read before anything is sent: an unreadable file, a directory "
     "or two files under one path is exit 2.",
     OPTS({CLI_OPT_TARGET, CLI_OPT_REQUIRED, "the target to run", NULL},
          {CLI_OPT_PRIORITY, 0, "0 to 100, higher runs first (default 50)", NULL},
          {CLI_OPT_MAX_ATTEMPTS, 0, "attempts before the job fails, 1 or more (default 3)", NULL},
          {CLI_OPT_DEADLINE, 0,
           "the job fails if it has not ended this long from now, queued or running", NULL},
          {CLI_OPT_TENANT, 0, "the tenant the job belongs to (default: default)", NULL},
          {CLI_OPT_REQUEST_ID, 0,
           "1 to 64 printable ASCII characters; a submit repeated with the same id returns "
           "the first job's id and creates nothing",
           NULL},
          {CLI_OPT_PARAM, CLI_OPT_REPEATABLE,
           "a value for {param:NAME} in the target's argv; repeat for more (up to 32)", NULL})},
    {"job", "get", CLI_JOB_GET, "ID", CLI_CMD_READ,
     "show one job: state, stages, exit codes, outputs", NULL, NO_OPTS},
    {"job", "list", CLI_JOB_LIST, NULL, CLI_CMD_READ, "list jobs, a page at a time",
     "Lists the jobs with ids above --after, at most --limit of them; when there are more, "
     "says on stderr how to get the next page.",
     OPTS({CLI_OPT_STATE, 0, "only the jobs in this state", NULL},
          {CLI_OPT_TARGET, 0, "only the jobs of this target", NULL},
          {CLI_OPT_LIMIT, 0, "jobs in the page, 1 to 1000 (default 100)", NULL},
          {CLI_OPT_AFTER, 0, "start after job ID (the last of the previous page)", NULL},
          {CLI_OPT_ALL, 0, "follow the pages to the end", NULL})},
    {"job", "cancel", CLI_JOB_CANCEL, "ID", 0, "cancel a job",
     "A running job shows `cancel requested` until its worker has stopped the stage's "
     "processes; then it is cancelled.",
     OPTS({CLI_OPT_REASON, 0, "recorded in the job's error", NULL})},
    {"job", "retry", CLI_JOB_RETRY, "ID", 0, "run a failed or cancelled job again", NULL, NO_OPTS},
    {"job", "events", CLI_JOB_EVENTS, "ID", CLI_CMD_READ, "a job's history", NULL, NO_OPTS},
    {"job", "watch", CLI_JOB_WATCH, "ID", CLI_CMD_READ,
     "follow a job until it ends: exit 0 when it succeeds, 1 when it fails",
     "Prints each event of the job as the node reached applies it, from the first, and exits "
     "when the job ends: 0 when it succeeded, 1 when it failed or was cancelled. A lost "
     "connection is retried on the next endpoint; it gives up (exit 3) when --timeout passes "
     "without a new event.",
     NO_OPTS},
    {"job", "logs", CLI_JOB_LOGS, "ID", CLI_CMD_READ, "the logs of a job's stages",
     "Prints the log of every stage of the job's current attempt, each after a line `== "
     "stage N (exit E, DURATION)`; every log is checked against its SHA-256.",
     OPTS({CLI_OPT_STAGE, 0, "only stage N (from 0), or the stage of that name in the job's target",
           NULL},
          {CLI_OPT_FOLLOW, 0,
           "print each stage's log as it finishes until the job ends; exit as job watch", NULL})},
    {"job", "fetch", CLI_JOB_FETCH, "ID DIR", CLI_CMD_READ,
     "write the outputs of a job's finished stages to DIR",
     "Writes every output of every finished stage of the current attempt to "
     "DIR/<stage>-<path>, creating DIR, each checked against its size and SHA-256 before it "
     "is written.",
     NO_OPTS},
    {"node", "list", CLI_NODE_LIST, NULL, CLI_CMD_READ,
     "the worker nodes: slots, state, capabilities, labels", NULL, NO_OPTS},
    {"node", "drain", CLI_NODE_DRAIN, "ID", 0, "place no new work on a node",
     "The scheduler places no new job on node ID; what runs there goes on.",
     OPTS({CLI_OPT_DEADLINE, 0,
           "after this long, what still runs on the node is stopped and requeued elsewhere",
           NULL})},
    {"node", "undrain", CLI_NODE_UNDRAIN, "ID", 0, "let a node take work again", NULL, NO_OPTS},
    {"node", "forget", CLI_NODE_FORGET, "ID", 0, "drop a node that is down for good from node list",
     "Drops node ID from the nodes table (node list). Only a node that is down and runs nothing "
     "can be forgotten, such as a member removed from the cluster and stopped; any other is "
     "refused (conflict). A forgotten node that starts again registers anew.",
     NO_OPTS},
    {"member", "list", CLI_MEMBER_LIST, NULL, CLI_CMD_READ,
     "the members: role, health, last contact, lag, drain", NULL, NO_OPTS},
    {"member", "add", CLI_MEMBER_ADD, "ID", CLI_CMD_MEMBER_CHANGE, "add a node to the cluster",
     "Adds node ID, whose ingotd runs with these addresses and an empty data directory. It "
     "enters as a spare, receives the log as a standby, and gets its role once it has caught "
     "up with the leader; one that does not catch up in time is removed again.",
     OPTS({CLI_OPT_RAFT_ADDRESS, CLI_OPT_REQUIRED, "where the other members reach its Raft port",
           NULL},
          {CLI_OPT_API_ADDRESS, CLI_OPT_REQUIRED,
           "where clients and the other members reach its API", NULL},
          {CLI_OPT_ROLE, 0, "the role it gets once caught up (default voter)",
           "voter standby spare"})},
    {"member", "promote", CLI_MEMBER_PROMOTE, "ID", CLI_CMD_MEMBER_CHANGE,
     "make a standby or spare a voter",
     "Makes member ID a voter once it has caught up with the leader.", NO_OPTS},
    {"member", "demote", CLI_MEMBER_DEMOTE, "ID", CLI_CMD_MEMBER_CHANGE,
     "make a voter a standby or a spare",
     "A spare receives no log. The leader cannot be demoted: transfer its leadership first.",
     OPTS({CLI_OPT_ROLE, 0, "the role it gets (default standby)", "standby spare"})},
    {"member", "remove", CLI_MEMBER_REMOVE, "ID", CLI_CMD_MEMBER_CHANGE,
     "take a node out of the cluster",
     "The node stops by itself. Removing the leader moves the leadership first; a removal "
     "that would lose the quorum is refused.",
     NO_OPTS},
    {"member", "transfer-leadership", CLI_MEMBER_TRANSFER, "[ID]", CLI_CMD_MEMBER_CHANGE,
     "make voter ID the leader (default: the most caught-up voter)", NULL, NO_OPTS},
    {"events", NULL, CLI_EVENTS, NULL, CLI_CMD_READ,
     "the cluster's history: membership changes, leadership",
     "Lists the cluster's own events, a page at a time: its creation, members added, removed "
     "or given another role, leadership transferred, voters replaced by the leader.",
     OPTS({CLI_OPT_AFTER, 0, "events with a sequence number above SEQ", NULL, "SEQ"},
          {CLI_OPT_LIMIT, 0, "events in the page, 1 to 1000 (default 100)", NULL})},
    {"settings", "get", CLI_SETTINGS_GET, NULL, CLI_CMD_READ,
     "the cluster settings: how long finished jobs and request ids are kept",
     "Shows job-retention (finished jobs, their events, logs and outputs are removed this "
     "long after they finished) and dedupe-window (a write retried with the same request id "
     "within it returns its first result; after it, it is a new request); forever when "
     "nothing expires.",
     NO_OPTS},
    {"settings", "set", CLI_SETTINGS_SET, "NAME DURATION", 0,
     "change a cluster setting (job-retention, dedupe-window)",
     "Sets NAME (job-retention or dedupe-window) to DURATION (at least 1s, e.g. 7d, 36h, "
     "90m) or forever, for the whole cluster: it is replicated like any write and applies "
     "from the leader's next check (every heartbeat interval).",
     NO_OPTS},
    {"snapshot", "save", CLI_SNAPSHOT_SAVE, "FILE", 0,
     "save a consistent copy of the cluster's state to FILE",
     "Asks the leader for a copy of the replicated state holding every write acknowledged "
     "before it, downloads it in pieces (progress on stderr when it is large), checks its "
     "SHA-256 and renames it into place as FILE. `ingotd restore --from FILE` seeds a new "
     "cluster with it (docs/operations.md, \"Backups and disaster recovery\").",
     NO_OPTS},
    {"pki", "init", CLI_PKI_INIT, NULL, CLI_CMD_LOCAL,
     "make the cluster's CA, offline: DIR/ca.crt, DIR/ca.key",
     "Makes the cluster's certificate authority on this machine with OpenSSL (ECDSA P-256); "
     "nothing is sent anywhere. Keep DIR/ca.key offline: it signs every certificate. An "
     "existing file is refused without --force.",
     OPTS({CLI_OPT_DIR, CLI_OPT_REQUIRED, "where the CA is written (created 0700)", NULL},
          {CLI_OPT_DAYS, 0, "validity in days, 1 to 36500 (default 3650)", NULL},
          {CLI_OPT_FORCE, 0, "replace existing files", NULL})},
    {"pki", "issue", CLI_PKI_ISSUE, "KIND", CLI_CMD_LOCAL,
     "issue a node or client certificate with DIR's CA, offline",
     "KIND is node (--id and at least one --address: DIR/node-N.crt and .key, naming "
     "ingot:node:N and every address) or client (--name: DIR/client-NAME.crt and .key, naming "
     "ingot:client:NAME). Private keys are written 0600; an existing file is refused without "
     "--force; a certificate may not outlive the CA.",
     OPTS({CLI_OPT_DIR, CLI_OPT_REQUIRED, "where the CA is, and the files are written", NULL},
          {CLI_OPT_ID, 0, "node: its raft id (1 or more)", NULL},
          {CLI_OPT_ADDRESS, CLI_OPT_REPEATABLE,
           "node: an IPv4 or IPv6 address or DNS name clients and peers reach it at; repeat "
           "for each (up to 16)",
           NULL},
          {CLI_OPT_NAME, 0, "client: 1 to 64 of letters, digits, '.', '_', '-'", NULL},
          {CLI_OPT_DAYS, 0, "validity in days, 1 to 36500 (default 365)", NULL},
          {CLI_OPT_FORCE, 0, "replace existing files", NULL})},
    {"help", NULL, CLI_HELP, "[COMMAND]", CLI_CMD_LOCAL,
     "this text, or the usage of COMMAND (\"job submit\", \"member\")", NULL, NO_OPTS},
    {"completion", "bash", CLI_COMPLETION, NULL, CLI_CMD_LOCAL,
     "print ingotctl's bash completion script",
     "Prints a script for bash's programmable completion of ingotctl's commands, options and "
     "their values. The Debian package installs it; without the package: source <(ingotctl "
     "completion bash).",
     NO_OPTS},
};

const size_t cli_ncommands = sizeof(cli_commands) / sizeof(cli_commands[0]);

const struct cli_command *cli_command_find(const char *noun, const char *verb)
{
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *c = &cli_commands[i];
		if (strcmp(c->noun, noun) != 0)
			continue;
		if (c->verb == NULL || (verb != NULL && strcmp(c->verb, verb) == 0))
			return c;
	}
	return NULL;
}

bool cli_noun_known(const char *noun)
{
	for (size_t i = 0; i < cli_ncommands; i++) {
		if (strcmp(cli_commands[i].noun, noun) == 0)
			return true;
	}
	return false;
}

const struct cli_command_opt *cli_command_opt(const struct cli_command *c, enum cli_opt_id id)
{
	for (const struct cli_command_opt *o = c->opts; o->help != NULL; o++) {
		if (o->id == id)
			return o;
	}
	return NULL;
}

const char *cli_command_opt_values(const struct cli_command *c, enum cli_opt_id id)
{
	const struct cli_command_opt *o = c != NULL ? cli_command_opt(c, id) : NULL;
	if (o != NULL && o->values != NULL)
		return o->values;
	return cli_opts[id].values;
}

void cli_command_name(const struct cli_command *c, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s%s", c->noun, c->verb != NULL ? " " : "",
	         c->verb != NULL ? c->verb : "");
}

const char *cli_command_opt_arg(const struct cli_command *c, enum cli_opt_id id, char *buf,
                                size_t cap)
{
	const struct cli_command_opt *o = cli_command_opt(c, id);
	if (cli_opts[id].arg == NULL)
		return NULL;
	if (o != NULL && o->arg != NULL)
		return o->arg;
	if (o == NULL || o->values == NULL || cap == 0)
		return cli_opts[id].arg;
	snprintf(buf, cap, "%s", o->values);
	for (char *p = buf; *p != '\0'; p++) {
		if (*p == ' ')
			*p = '|';
	}
	return buf;
}

/* Appends s1 and s2 (NULL: nothing) at buf + *n, never past cap. */
static void append(char *buf, size_t cap, size_t *n, const char *s1, const char *s2)
{
	if (*n >= cap)
		return;
	int w = snprintf(buf + *n, cap - *n, "%s%s", s1, s2 != NULL ? s2 : "");
	if (w > 0)
		*n = *n + (size_t)w < cap ? *n + (size_t)w : cap - 1;
}

void cli_command_synopsis(const struct cli_command *c, bool full_options, char *buf, size_t cap)
{
	size_t n = 0;
	char arg[128];
	if (cap == 0)
		return;
	buf[0] = '\0';
	cli_command_name(c, buf, cap);
	n = strlen(buf);
	if (c->operands != NULL)
		append(buf, cap, &n, " ", c->operands);
	bool others = false;
	for (const struct cli_command_opt *o = c->opts; o->help != NULL; o++) {
		if (!(o->flags & CLI_OPT_REQUIRED)) {
			others = true;
			continue;
		}
		append(buf, cap, &n, " --", cli_opts[o->id].name);
		append(buf, cap, &n, " ", cli_command_opt_arg(c, o->id, arg, sizeof(arg)));
	}
	if (others && !full_options)
		append(buf, cap, &n, " [options]", NULL);
	for (const struct cli_command_opt *o = c->opts; others && full_options && o->help != NULL;
	     o++) {
		if (o->flags & CLI_OPT_REQUIRED)
			continue;
		const char *a = cli_command_opt_arg(c, o->id, arg, sizeof(arg));
		append(buf, cap, &n, " [", NULL);
		if (cli_opts[o->id].short_name != 0) {
			char s[4] = {'-', cli_opts[o->id].short_name, '|', '\0'};
			append(buf, cap, &n, s, NULL);
		}
		append(buf, cap, &n, "--", cli_opts[o->id].name);
		if (a != NULL)
			append(buf, cap, &n, " ", a);
		append(buf, cap, &n, "]", (o->flags & CLI_OPT_REPEATABLE) ? "..." : NULL);
	}
}

bool cli_value_allowed(const char *v, const char *values)
{
	size_t len = strlen(v);
	for (const char *p = values; len > 0 && *p != '\0';) {
		size_t w = strcspn(p, " ");
		if (w == len && strncmp(p, v, len) == 0)
			return true;
		p += w;
		p += *p == ' ';
	}
	return false;
}

void cli_values_list(const char *values, char *buf, size_t cap)
{
	size_t n = 0;
	if (cap == 0)
		return;
	for (const char *p = values; *p != '\0' && n + 3 < cap; p++) {
		if (*p == ' ') {
			buf[n++] = ',';
			buf[n++] = ' ';
		} else {
			buf[n++] = *p;
		}
	}
	buf[n] = '\0';
}
