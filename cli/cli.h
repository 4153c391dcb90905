/*
 * cli.h - ingotctl's internals, public to its entry point and its tests.
 *
 * A run of ingotctl goes through four steps, each in its own file:
 *
 *   args.c        argv + environment -> struct cli_cmd (pure; no I/O)
 *   files.c,      local preparation (read the YAML or the source files)
 *   target_yaml.c
 *   cmd_*.c       each command: its request's args map, the call, the output;
 *                 the request's args map; every local failure is a usage
 *                 error (exit 2) found before any network traffic
 *   session.c     the calls, on a private libuv loop with one rpc_client
 *   output.c      the result: a table for people, or JSON converted
 *                 generically from msgpack (shapes exactly as docs/api.md)
 *
 * run.c ties them together in cli_run(), which main() calls and which the
 * tests call with in-memory streams.  Exit codes: enum cli_exit.
 *
 * commands.c holds the one table of commands and options that the parser,
 * the help (`ingotctl help [COMMAND]`, `COMMAND --help`) and the bash
 * completion (`ingotctl completion bash`) are all made from; help.c prints
 * the help, the completion script and --version.
 *
 * Functions return 0 or a negative ING_E* code, with a message naming what
 * was wrong in the `struct ing_error *` they take.  Nothing here is
 * thread-safe.
 */
#ifndef INGOT_CLI_CLI_H
#define INGOT_CLI_CLI_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/mp.h"
#include "rpc/json.h"

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILED = 1,      /* the cluster refused or failed the operation */
	CLI_EXIT_USAGE = 2,       /* bad flags, bad file, bad duration */
	CLI_EXIT_UNREACHABLE = 3, /* unavailable, timeout, not_leader */
};

enum cli_output { CLI_OUTPUT_TABLE, CLI_OUTPUT_JSON };

enum cli_verb {
	CLI_HELP,
	CLI_VERSION,
	CLI_COMPLETION,
	CLI_STATUS,
	CLI_TARGET_APPLY,
	CLI_TARGET_LIST,
	CLI_TARGET_GET,
	CLI_TARGET_DELETE,
	CLI_JOB_SUBMIT,
	CLI_JOB_GET,
	CLI_JOB_LIST,
	CLI_JOB_CANCEL,
	CLI_JOB_RETRY,
	CLI_JOB_EVENTS,
	CLI_JOB_WATCH,
	CLI_JOB_LOGS,
	CLI_JOB_FETCH,
	CLI_NODE_LIST,
	CLI_NODE_DRAIN,
	CLI_NODE_UNDRAIN,
	CLI_NODE_FORGET,
	CLI_MEMBER_LIST,
	CLI_MEMBER_ADD,
	CLI_MEMBER_PROMOTE,
	CLI_MEMBER_DEMOTE,
	CLI_MEMBER_REMOVE,
	CLI_MEMBER_TRANSFER,
	CLI_EVENTS,
	CLI_TOKEN_CREATE,
	CLI_TOKEN_LIST,
	CLI_TOKEN_REVOKE,
	CLI_AUDIT,
	CLI_SETTINGS_GET,
	CLI_SETTINGS_SET,
	CLI_PKI_INIT,
	CLI_PKI_ISSUE,
	CLI_SNAPSHOT_SAVE,
};

/* Where the endpoints came from, for error messages. */
enum cli_endpoints_source { CLI_EP_DEFAULT, CLI_EP_ENV, CLI_EP_FLAG };

#define CLI_DEFAULT_ENDPOINTS  "127.0.0.1:7401"
#define CLI_DEFAULT_TIMEOUT_MS 10000u
/* Default --timeout of the membership changes (member add, promote, demote,
 * remove, transfer-leadership): a new member's catch-up alone may take the
 * server's member_catchup_timeout_ms (30 s by default). */
#define CLI_MEMBER_TIMEOUT_MS 60000u
#define CLI_MAX_ENDPOINTS     16
#define CLI_ENDPOINT_MAX      32   /* "255.255.255.255:65535" plus room */
#define CLI_MAX_FILES         64   /* job.submit: 1-64 sources */
#define CLI_MAX_PARAMS        32   /* job.submit: --param NAME=VALUE, ING_MAX_ENV */
#define CLI_PARAM_NAME_MAX    63   /* ING_NAME_MAX */
#define CLI_GPUS_MAX          16   /* target files' gpus: ING_MAX_GPUS */
#define CLI_PARAM_VALUE_MAX   1024 /* ING_ARG_MAX */
#define CLI_PRIORITY_MAX      100
#define CLI_LIST_LIMIT_MAX    1000
#define CLI_TOKEN_MAX         4096
#define CLI_REQUEST_ID_MAX    64
#define CLI_FILE_MAX_BYTES    (64u * 1024u * 1024u) /* any file read by ingotctl */
/* Largest reply accepted: an artifact comes back whole in one reply, and a
 * node may be configured with frames of up to 256 MiB. */
#define CLI_REPLY_MAX_BYTES (256u * 1024u * 1024u)
/* pki (cli/pki.c): file names in --dir, lifetimes in days. */
#define CLI_PKI_CA_CERT       "ca.crt"
#define CLI_PKI_CA_KEY        "ca.key"
#define CLI_PKI_CA_DAYS       3650u
#define CLI_PKI_LEAF_DAYS     365u
#define CLI_PKI_DAYS_MAX      36500u
#define CLI_PKI_MAX_ADDRESSES 16
/* Longest duration accepted anywhere: 365 days. */
#define CLI_DURATION_MAX_MS (365ull * 24 * 3600 * 1000)

/*
 * A parsed command line.  Strings are borrowed from argv or the environment
 * (they live as long as the process); endpoints are copied.
 */
struct cli_cmd {
	/* global options */
	char endpoints[CLI_MAX_ENDPOINTS][CLI_ENDPOINT_MAX];
	unsigned nendpoints;
	enum cli_endpoints_source endpoints_source;
	enum cli_output output;
	uint64_t timeout_ms; /* 1 .. UINT32_MAX; CLI_MEMBER_TIMEOUT_MS for a
	                      * membership change without --timeout */
	bool timeout_given;
	/* The credential: --token, else the file of --token-file (read before
	 * the first call: cli_resolve_token), else INGOT_TOKEN, else the file
	 * of INGOT_TOKEN_FILE.  token NULL and token_file NULL: none. */
	const char *token;
	const char *token_file;
	const char *token_file_source; /* "--token-file" or "INGOT_TOKEN_FILE" */
	bool stale;
	/* TLS (--cacert/--cert/--key or INGOT_CACERT/INGOT_CERT/INGOT_KEY):
	 * cacert NULL means plaintext; cert and key go together and need
	 * cacert. */
	const char *cacert, *cert, *key;

	enum cli_verb verb;
	/* help: the command whose usage to print; NULL: the noun's commands
	 * when help_noun is set, else ingotctl's usage */
	const struct cli_command *help_cmd;
	const char *help_noun;
	const char *name; /* target get/delete */
	const char *file; /* target apply, snapshot save */
	uint64_t id;      /* job get/cancel/retry/events/watch/logs/fetch; node drain/undrain;
	                   * member add/promote/demote/remove (> 0) and transfer-leadership
	                   * (0: none given, let the cluster choose) */

	/* member add: both required, "a.b.c.d:port"; role: member add (NULL:
	 * voter) and member demote (NULL: standby), checked against the verb */
	const char *raft_address, *api_address, *role;

	/* job submit; `target` is also job list's --target filter */
	const char *target;
	uint64_t priority, max_attempts, deadline_ms;
	bool has_priority, has_max_attempts, has_deadline;
	/* `deadline_ms` is also node drain's --deadline */
	const char *tenant;     /* NULL: the server's default */
	const char *request_id; /* NULL: generated by the client library */
	const char *files[CLI_MAX_FILES];
	unsigned nfiles;
	/* --param NAME=VALUE (repeatable): name[0..name_len), value after '=' */
	struct cli_param {
		const char *name;
		size_t name_len;
		const char *value;
	} params[CLI_MAX_PARAMS];
	unsigned nparams;

	/* job list; limit and after also for events */
	const char *state; /* NULL: any */
	uint64_t limit, after;
	bool has_limit, has_after, all;

	/* job cancel */
	const char *reason;

	/* job logs: --stage N (stage_index) or --stage NAME (stage_name) */
	bool has_stage;
	uint64_t stage_index;
	const char *stage_name; /* NULL: by index, or no --stage */
	bool follow;

	/* job fetch; pki: --dir */
	const char *dir;

	/* token create: role (viewer..admin), tenant, name; --ttl */
	const char *token_name;
	uint64_t ttl_ms;
	bool has_ttl;

	/* audit: --since (a duration ago, or an absolute UTC time), --principal */
	bool has_since;
	bool since_ago;    /* since_ms is a duration before now */
	uint64_t since_ms; /* ms since the epoch, or the duration */
	const char *principal;

	/* settings set: `name` is the setting's API name, setting_ms its
	 * value (0: for ever) */
	uint64_t setting_ms;
	/* pki issue: KIND is node (id > 0, addresses) or client (pki_name) */
	bool pki_node;
	const char *addresses[CLI_PKI_MAX_ADDRESSES];
	unsigned naddresses;
	const char *pki_name;
	bool force;
	uint64_t days; /* 0: the default for what is made */
};

/* The environment ingotctl reads (NULL or "" when unset). */
struct cli_env {
	const char *endpoints;  /* INGOT_ENDPOINTS */
	const char *token;      /* INGOT_TOKEN */
	const char *token_file; /* INGOT_TOKEN_FILE */
	const char *cacert;     /* INGOT_CACERT */
	const char *cert;       /* INGOT_CERT */
	const char *key;        /* INGOT_KEY */
};

/* ---- run.c ------------------------------------------------------------- */

/*
 * Runs ingotctl: argv as main() got it, INGOT_ENDPOINTS, INGOT_TOKEN,
 * INGOT_CACERT, INGOT_CERT and INGOT_KEY from the environment.  Results go to `out`, diagnostics to
 * `err`
 * ("ingotctl: <code_name>: <message>").  Returns the exit code.
 */
int cli_run(int argc, char **argv, FILE *out, FILE *err);

/* Exit code for an error that came back from the cluster or the network. */
int cli_exit_code(int code);

/* ---- args.c ------------------------------------------------------------ */

/*
 * Parses argv[1..argc) into *out.  env holds the environment's values (env
 * may be NULL: none set); flags override them.  Global options may appear
 * anywhere; "--" ends options.  -h/--help anywhere gives verb CLI_HELP
 * (help_cmd/help_noun: the command on the line, if any), else --version
 * anywhere CLI_VERSION, whatever else is on the line.  Errors: ING_EINVAL
 * with a message for people (unknown flag, missing or extra argument, bad
 * number, duration, endpoint or state, --cert without --key or without
 * --cacert).
 */
int cli_parse_args(int argc, char **argv, const struct cli_env *env, struct cli_cmd *out,
                   struct ing_error *e);

/*
 * Reads the token file of cmd (when the credential is one) into buf and
 * points cmd->token at it: its first line, without surrounding blanks.
 * ING_EINVAL naming the file and its source (cannot be read, empty, over
 * CLI_TOKEN_MAX bytes).
 */
int cli_resolve_token(struct cli_cmd *cmd, char *buf, size_t cap, struct ing_error *e);

/*
 * Parses an absolute time "YYYY-MM-DDTHH:MM:SSZ" (UTC; "T" may be a space;
 * the seconds and the Z optional, a time without Z is still UTC) into ms
 * since the epoch.  ING_EINVAL otherwise.
 */
int cli_parse_time(const char *s, uint64_t *out_ms, struct ing_error *e);

/*
 * Parses a duration: one or more <number><unit> ("5s", "500ms", "1m30s",
 * "1.5s", "30d"), units ms, s, m, h, d.  Sub-millisecond parts are truncated.
 * Errors: ING_EINVAL (syntax, no unit, over CLI_DURATION_MAX_MS).
 */
int cli_parse_duration(const char *s, uint64_t *out_ms, struct ing_error *e);

/*
 * Parses a size: a whole number of bytes, optionally followed by a binary
 * unit B, KiB, MiB, GiB or TiB ("4096", "64KiB", "512MiB", "1GiB").
 * Errors: ING_EINVAL (syntax, unknown unit, over UINT64_MAX bytes).
 */
int cli_parse_size(const char *s, uint64_t *out_bytes, struct ing_error *e);

/*
 * The command a line names, found leniently for `--help` and for the hint
 * after a usage error: unknown options are skipped, the values of known
 * ones too.  Returns the command (noun and verb, or a noun that is a
 * command alone), else NULL; *noun is the known noun named, else NULL.
 */
const struct cli_command *cli_guess_command(int argc, char **argv, const char **noun);

/* ---- commands.c: the command table ------------------------------------ */

enum cli_opt_id {
	CLI_OPT_ENDPOINTS,
	CLI_OPT_OUTPUT,
	CLI_OPT_TIMEOUT,
	CLI_OPT_TOKEN,
	CLI_OPT_STALE,
	CLI_OPT_HELP,
	CLI_OPT_VERSION,
	CLI_OPT_TARGET,
	CLI_OPT_PRIORITY,
	CLI_OPT_MAX_ATTEMPTS,
	CLI_OPT_DEADLINE,
	CLI_OPT_TENANT,
	CLI_OPT_REQUEST_ID,
	CLI_OPT_STATE,
	CLI_OPT_LIMIT,
	CLI_OPT_AFTER,
	CLI_OPT_ALL,
	CLI_OPT_REASON,
	CLI_OPT_STAGE,
	CLI_OPT_FOLLOW,
	CLI_OPT_PARAM,
	CLI_OPT_RAFT_ADDRESS,
	CLI_OPT_API_ADDRESS,
	CLI_OPT_ROLE,
	CLI_OPT_TOKEN_FILE,
	CLI_OPT_TTL,
	CLI_OPT_SINCE,
	CLI_OPT_PRINCIPAL,
	CLI_OPT_CACERT,
	CLI_OPT_CERT,
	CLI_OPT_KEY,
	CLI_OPT_DIR,
	CLI_OPT_ID,
	CLI_OPT_ADDRESS,
	CLI_OPT_NAME,
	CLI_OPT_FORCE,
	CLI_OPT_DAYS,
	CLI_OPT_COUNT
};

/* An option.  A global one is accepted by every command and described
 * here; any other is accepted by the commands that list it, each with its
 * own words for it. */
struct cli_opt {
	const char *name;   /* long name, without "--" */
	char short_name;    /* 0: none */
	const char *arg;    /* its value's placeholder ("DURATION"); NULL: takes no value */
	bool global;        /* accepted by every command */
	const char *help;   /* global options: one line for the help; else NULL */
	const char *values; /* the values it accepts, space-separated; NULL: free */
};

extern const struct cli_opt cli_opts[CLI_OPT_COUNT];

/* cli_command_opt.flags */
#define CLI_OPT_REQUIRED   1u /* the command needs it */
#define CLI_OPT_REPEATABLE 2u /* may be given more than once */

/* One option of one command. */
struct cli_command_opt {
	enum cli_opt_id id;
	unsigned flags;
	const char *help;   /* this command's words for it; NULL ends a list */
	const char *values; /* the values this command accepts; NULL: the option's */
	const char *arg;    /* this command's placeholder ("SEQ"); NULL: from values,
	                     * else the option's */
};

/* cli_command.flags */
#define CLI_CMD_READ          1u /* a read: --stale applies */
#define CLI_CMD_MEMBER_CHANGE 2u /* --timeout defaults to CLI_MEMBER_TIMEOUT_MS */
#define CLI_CMD_LOCAL         4u /* talks to no node: no connection options */

struct cli_command {
	const char *noun;
	const char *verb; /* NULL: the noun alone is the command */
	enum cli_verb id;
	/* NULL: none; "FILE...": one or more; "ID DIR": two; "[ID]": optional */
	const char *operands;
	unsigned flags;
	const char *summary;                /* a line for the list of commands */
	const char *text;                   /* a paragraph for its own help (NULL: summary only) */
	const struct cli_command_opt *opts; /* ends at a row whose help is NULL */
};

extern const struct cli_command cli_commands[];
extern const size_t cli_ncommands;

/* The command `noun verb` (verb NULL for a noun that is a command alone),
 * or NULL. */
const struct cli_command *cli_command_find(const char *noun, const char *verb);
/* Whether some command starts with `noun`. */
bool cli_noun_known(const char *noun);
/* The row of option `id` in c's options, or NULL when c does not take it
 * (global options have no row). */
const struct cli_command_opt *cli_command_opt(const struct cli_command *c, enum cli_opt_id id);
/* The values option `id` accepts on command c (NULL: free). */
const char *cli_command_opt_values(const struct cli_command *c, enum cli_opt_id id);
/* Whether v is one of the space-separated `values` of a table row. */
bool cli_value_allowed(const char *v, const char *values);
/* "a, b, c" from the space-separated "a b c", cut at cap. */
void cli_values_list(const char *values, char *buf, size_t cap);
/* "job submit", "status". */
void cli_command_name(const struct cli_command *c, char *buf, size_t cap);
/*
 * The usage line of c without "ingotctl ": its name, operands, required
 * options with their values, then each other option ("[--limit N]",
 * "[-f|--follow]", "[--param NAME=VALUE]...") with full_options, else
 * "[options]" when it has any.  The list of commands and docs/cli.md show
 * the short form, the command's own help the full one.  Cut at cap.
 */
void cli_command_synopsis(const struct cli_command *c, bool full_options, char *buf, size_t cap);
/* The value placeholder of option `id` on c: the command's own, else the
 * command's values joined by '|' ("standby|spare"), else the option's arg
 * ("DURATION"); NULL for a flag. */
const char *cli_command_opt_arg(const struct cli_command *c, enum cli_opt_id id, char *buf,
                                size_t cap);

/* ---- help.c ------------------------------------------------------------ */

/*
 * `ingotctl help`: ingotctl's usage (every command, the global options,
 * the exit codes) when cmd and noun are NULL; the commands of `noun` when
 * only noun is given; else cmd's usage: synopsis, what it does, its options.
 */
void cli_help(FILE *out, const struct cli_command *cmd, const char *noun);
/* `ingotctl completion bash`: a bash completion script for ingotctl. */
void cli_completion_bash(FILE *out);
/* `ingotctl --version`: version, commit, the libraries' versions. */
void cli_version(FILE *out);

/* ---- target_yaml.c ----------------------------------------------------- */

/*
 * Converts a target file (docs/cli.md) into the args map of target.put,
 * appended to `args`.  `file` names the input in messages; `buf` holds its
 * bytes.  Errors: ING_EINVAL "FILE:LINE:COL: ..." naming the key (unknown
 * key, wrong type, missing required key, bad duration, YAML syntax),
 * ING_ENOMEM.  On error `args` may hold a partial map: discard it.
 */
int cli_target_yaml_parse(const char *file, const void *buf, size_t len, struct mp_out *args,
                          struct ing_error *e);

/* Reads `path` (at most CLI_FILE_MAX_BYTES) and parses it as above.  Also
 * ING_EINVAL when the file cannot be read. */
int cli_target_yaml_load(const char *path, struct mp_out *args, struct ing_error *e);

/*
 * Reads a whole regular file into *data (malloc'd, caller frees; NUL
 * appended, not counted).  ING_EINVAL naming the file when it cannot be
 * opened or read, is not a regular file, or exceeds max_bytes.
 */
int cli_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                  struct ing_error *e);

/* ---- output.c ---------------------------------------------------------- */

/* Prints `o` as one pretty JSON document (JSON_INDENT(2)) and a newline, or
 * with `compact` on one line.  ING_ENOMEM, ING_EIO. */
int cli_print_json(FILE *out, const msgpack_object *o, bool compact);
/* Pages gathered by --all printed as one page: {KEY: [items...], next: null}
 * (the shape of a single page's reply, docs/cli.md).  0 or ING_EIO. */
int cli_print_json_page(FILE *out, const char *key, const msgpack_object *const *items, size_t n);
/* Appends a pointer to every element of `arr` (a page's array; anything
 * else adds nothing) to *items, which holds *n of *cap and grows as needed.
 * 0, or ING_ENOMEM (e set) with *items as it was. */
int cli_collect_items(const msgpack_object *arr, const msgpack_object ***items, size_t *n,
                      size_t *cap, struct ing_error *e);

/* The value of `key` in map `m`, or NULL (absent, or m not a map). */
const msgpack_object *cli_mp_get(const msgpack_object *m, const char *key);

/* "2026-11-22 14:03:07" in local time for a time in ms since the epoch. */
void cli_format_time(uint64_t ms, char *buf, size_t cap);
/* "450ms", "1.2s", "2m05s", "1h02m". */
void cli_format_duration(uint64_t ms, char *buf, size_t cap);

/* Table printers for results of docs/api.md; missing fields print "-". */
void cli_print_status(FILE *out, const msgpack_object *status);
void cli_print_job(FILE *out, const msgpack_object *job);
/* jobs: the array of job.list's `jobs` (or several pages joined). */
void cli_print_job_list(FILE *out, const msgpack_object *const *jobs, size_t n);
void cli_print_target(FILE *out, const msgpack_object *target);
void cli_print_target_list(FILE *out, const msgpack_object *targets);
/* Events: a header line, then one line per event in fixed columns (the
 * same lines job watch prints as events arrive). */
void cli_print_event_header(FILE *out);
void cli_print_event_line(FILE *out, const msgpack_object *event);
/* node.list's array: ID, SLOTS (used/total), STATE (up, down, draining,
 * "draining until TIME"), CAPABILITIES, LABELS. */
void cli_print_node_list(FILE *out, const msgpack_object *nodes);
/*
 * member list: status's members joined by id with node.list's array (nodes
 * may be NULL or not an array: DRAIN is then "-").  Columns ID, ROLE,
 * LEADER (*), ALIVE, CONTACT (last_contact_ms as a duration, "12ms"; "-"
 * when nil: only a leader knows it), APPLIED, BEHIND (the leader's
 * applied_index minus the member's, 0 at least; "-" when either is
 * unknown), DRAIN (yes/no; "-" when the member is not a registered worker),
 * RAFT ADDRESS, API ADDRESS.
 */
void cli_print_member_list(FILE *out, const msgpack_object *status, const msgpack_object *nodes);
/* The same rows as a JSON array of {id, role, leader (bool), alive,
 * last_contact_ms, applied_index, behind, draining (bool), raft_address,
 * api_address}, unknown values null.  NULL when out of memory. */
json_t *cli_member_list_json(const msgpack_object *status, const msgpack_object *nodes);
/*
 * A membership change's reply (docs/api.md "change": {id, role, steps,
 * elapsed_ms}): each step on its own line ("  - recorded member 4 ..."),
 * then a summary, "member 4 is now a voter (1234 ms)", or "member 4
 * removed (1234 ms)" when role is nil.
 */
void cli_print_member_change(FILE *out, const msgpack_object *change);
/* member.transfer's reply ({leader, previous, attempts, elapsed_ms}):
 * "leadership moved from node 1 to node 3 (1 attempt, 212 ms)". */
void cli_print_transfer(FILE *out, const msgpack_object *transfer);
/* A cluster.events page ({events: [cluster event], next}): columns SEQ,
 * TIME (time_ms), KIND, MEMBER ("-" when nil), MESSAGE. */
void cli_print_cluster_events(FILE *out, const msgpack_object *page);
/* token.list's array: ID, NAME, ROLE, TENANT ("-": every tenant),
 * CREATED, EXPIRES ("never"), STATE (active, revoked, expired),
 * CREATED BY. */
void cli_print_token_list(FILE *out, const msgpack_object *tokens);
/* token.create's reply: "token 7 'ci' created: role submitter, tenant t,
 * expires TIME" (to err; the token itself goes to stdout alone). */
void cli_print_token_created(FILE *out, const msgpack_object *created);
/* Audit events (audit.list's `events`, pages joined): TIME, PRINCIPAL,
 * KIND, JOB ("-" for the cluster's), MESSAGE. */
void cli_print_audit(FILE *out, const msgpack_object *const *events, size_t n);
/* The header line `job logs` prints before a stage's log, newline
 * included: "== stage 0 (exit 0, 1.2s)\n"; "== stage 1 (running)\n" while
 * it runs; "; no log" added when a finished stage has none. */
void cli_format_stage_header(const msgpack_object *stage, char *buf, size_t cap);

/* ---- pki.c ------------------------------------------------------------- */

/* What pki made: paths written, the identity, the subjectAltNames, the end
 * of validity ("2027-05-01 12:00:00 UTC"). */
struct cli_pki_issued {
	char cert_path[4096];
	char key_path[4096];
	char identity[160];
	char names[4600];
	char not_after[64];
};

/*
 * Makes the cluster CA in dir (created 0700 when missing): ca.key (0600)
 * and ca.crt, valid for `days` (1..CLI_PKI_DAYS_MAX).  Errors: ING_EEXIST
 * (a file exists and !force; nothing written), ING_EINVAL (days, path),
 * ING_EIO (cannot write), ING_EINTERNAL (OpenSSL); e names the file.
 */
int cli_pki_init(const char *dir, unsigned days, bool force, struct cli_pki_issued *out,
                 struct ing_error *e);
/*
 * Issues node-<id>.crt/.key in dir, signed by dir's CA: identity
 * ingot:node:<id>, one IP or DNS subjectAltName per address (1 to
 * CLI_PKI_MAX_ADDRESSES, IPv4, IPv6 or DNS names).  Errors as
 * cli_pki_init, and ING_ENOTFOUND (no CA in dir), ING_EDENIED (ca.key
 * readable by others), ING_EINVAL (id 0, an address, --days past the CA's
 * end).
 */
int cli_pki_issue_node(const char *dir, uint64_t id, const char *const *addresses,
                       unsigned naddresses, unsigned days, bool force, struct cli_pki_issued *out,
                       struct ing_error *e);
/* Issues client-<name>.crt/.key (identity ingot:client:<name>, a valid
 * ing_tls_client_name_valid name).  Errors as cli_pki_issue_node. */
int cli_pki_issue_client(const char *dir, const char *name, unsigned days, bool force,
                         struct cli_pki_issued *out, struct ing_error *e);
/* "IP" or "DNS" for a --address value; ING_EINVAL when it is neither. */
int cli_pki_address_kind(const char *s, const char **kind);

/* ---- session.c --------------------------------------------------------- */

struct cli_session;
struct ing_tls;

/*
 * Opens a session on a private loop with one rpc client configured from
 * cmd (endpoints, token) and tls (borrowed, may be NULL: plaintext), with
 * `call_timeout_ms` per call (covering its retries).  No connection is
 * made yet.  Errors: rpc_client_new's.
 */
int cli_session_open(const struct cli_cmd *cmd, struct ing_tls *tls, uint64_t call_timeout_ms,
                     struct cli_session **out, struct ing_error *e);

/*
 * One call, blocking.  args: one encoded map (NULL: {}).  flags: RPC_*.
 * request_id: NULL for the library's own.  On 0, *result is deep-copied
 * into zone z (caller-owned).  Errors: as rpc_client_call and its callback.
 */
int cli_session_call(struct cli_session *s, const char *op, const struct mp_out *args,
                     unsigned flags, const char *request_id, msgpack_zone *z,
                     msgpack_object *result, struct ing_error *e);

/*
 * job.watch on `id`: on_event runs for every event pushed (events repeat
 * after a reconnection: the caller skips seqs it has seen, and returns
 * true only for a new event).  When the connection is lost or the cluster
 * answers unavailable/not_leader, the watch is sent again (the server
 * replays from the first event), until `retry_window_ms` passes without a
 * new event.  On 0, *final is the job (in zone z).
 *
 * on_event runs inside a loop callback and must not make calls.  `poll`
 * (may be NULL) runs after every turn of the loop while the watch is
 * pending, outside any callback: it may make blocking calls on `s` (the
 * watch keeps running meanwhile).  An error from poll ends the watch (the
 * session's client is then closed: close the session) and is returned.
 */
int cli_session_watch(struct cli_session *s, uint64_t id, uint64_t retry_window_ms,
                      bool (*on_event)(void *data, const msgpack_object *event),
                      int (*poll)(void *data, struct ing_error *e), void *data, msgpack_zone *z,
                      msgpack_object *final, struct ing_error *e);

/* Closes the client and the loop and frees the session.  NULL is fine. */
void cli_session_close(struct cli_session *s);

/* ---- cmd_*.c ----------------------------------------------------------- */

/* What a command needs: the parsed line, the streams, a lazily opened
 * session, the TLS context loaded from --cacert/--cert/--key. */
struct cli_ctx {
	const struct cli_cmd *cmd;
	FILE *out;
	FILE *err;
	struct cli_session *session; /* NULL until the first call */
	struct ing_tls *tls;         /* NULL: plaintext */
};

/*
 * Prints "ingotctl: <code_name>: <message>" (with advice for unreachable
 * clusters and timeouts) and returns the exit code for e->code.
 */
int cli_fail(struct cli_ctx *ctx, const struct ing_error *e);
/* As cli_fail, for local problems found before any traffic: exit 2. */
int cli_fail_usage(struct cli_ctx *ctx, const struct ing_error *e);

/*
 * Makes one call through ctx's session (opening it on first use, with
 * --timeout per call).  request_id: NULL for a generated one.  Returns 0
 * or the error (in *e, not yet printed).
 */
int cli_ctx_call(struct cli_ctx *ctx, const char *op, const struct mp_out *args, unsigned flags,
                 const char *request_id, msgpack_zone *z, msgpack_object *result,
                 struct ing_error *e);

/* Prints a result: JSON (generic) with -o json, else table(out, result).
 * Returns the exit code (1 when stdout fails). */
int cli_show(struct cli_ctx *ctx, const msgpack_object *result,
             void (*table)(FILE *out, const msgpack_object *result));

/* Each returns the exit code. */
int cli_cmd_status(struct cli_ctx *ctx);
int cli_cmd_target(struct cli_ctx *ctx);
int cli_cmd_job(struct cli_ctx *ctx);
int cli_cmd_node(struct cli_ctx *ctx);
int cli_cmd_member(struct cli_ctx *ctx);
int cli_cmd_events(struct cli_ctx *ctx);
/* cmd_token.c: token create, list, revoke; audit */
int cli_cmd_token(struct cli_ctx *ctx);
int cli_cmd_audit(struct cli_ctx *ctx);
/* settings get / settings set (cmd_settings.c) */
int cli_cmd_settings(struct cli_ctx *ctx);
int cli_cmd_pki(struct cli_ctx *ctx);
int cli_cmd_snapshot(struct cli_ctx *ctx);
/* A watched job's end: 0 when `job` succeeded; else 1, with "ingotctl: job
 * ID failed: <error>" (or cancelled) on ctx->err. */
int cli_job_end(struct cli_ctx *ctx, uint64_t id, const msgpack_object *job);
/* cmd_logs.c: job logs, job fetch */
int cli_cmd_job_logs(struct cli_ctx *ctx);
int cli_cmd_job_fetch(struct cli_ctx *ctx);

/*
 * Where `job fetch` writes output `path` of stage `index`:
 * "<dir>/<index>-<path>".  ING_EINVAL when path is empty, absolute, has an
 * empty, "." or ".." component, a control character, or the result does
 * not fit in cap.
 */
int cli_output_dest(const char *dir, uint64_t index, const char *path, size_t path_len, char *buf,
                    size_t cap, struct ing_error *e);

/*
 * The path a source file is sent under: `path` itself when relative and
 * free of ".." components (leading "./" removed), else its basename.
 * Writes into buf; ING_EINVAL when the result is empty or too long.
 */
int cli_source_path(const char *path, char *buf, size_t cap, struct ing_error *e);

#endif
