/*
 * test_cli.c - ingotctl without a cluster: argument parsing of every
 * command and its usage errors (exit 2, nothing sent), durations, target
 * YAML files (exact msgpack; every kind of error names file, line and key),
 * msgpack -> JSON, table formatting of results built by hand, the exit code
 * and message for a closed port (real TCP), and whole runs of cli_run
 * against a fake server (rpc/server.h on its own thread and loop) that
 * answers with canned results, to check the requests ingotctl sends and
 * what it prints.  Also what ingotctl says about itself: the help of every
 * command (its options are exactly those the parser takes; docs/cli.md and
 * ingotctl(1) name every command), --version, the completion script.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <uv.h>

#include "cli/cli.h"
#include "common/build_info.h"
#include "rpc/server.h"
#include "tests/lib/pkitest.h"
#include "tests/lib/testutil.h"

/* ---- helpers ----------------------------------------------------------- */

struct run {
	int code;
	char *out;
	char *err;
};

/* Runs cli_run on a NULL-terminated word list (argv[0] added). */
static struct run run_words(const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)"ingotctl";
	va_start(ap, first);
	for (const char *w = first; w != NULL; w = va_arg(ap, const char *))
		argv[argc++] = (char *)w;
	va_end(ap);
	argv[argc] = NULL;
	struct run r;
	size_t olen, elen;
	FILE *out = open_memstream(&r.out, &olen);
	FILE *err = open_memstream(&r.err, &elen);
	r.code = cli_run(argc, argv, out, err);
	fclose(out);
	fclose(err);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static int parse(struct cli_cmd *c, struct ing_error *e, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)"ingotctl";
	va_start(ap, e);
	for (const char *w = va_arg(ap, const char *); w != NULL; w = va_arg(ap, const char *))
		argv[argc++] = (char *)w;
	va_end(ap);
	argv[argc] = NULL;
	ing_error_clear(e);
	return cli_parse_args(argc, argv, NULL, c, e);
}

#define assert_contains(hay, needle)                                        \
	do {                                                                \
		if (strstr((hay), (needle)) == NULL)                        \
			fail_msg("expected '%s' in:\n%s", (needle), (hay)); \
	} while (0)

/* ---- argument parsing -------------------------------------------------- */

static void test_args_defaults_and_globals(void **state)
{
	(void)state;
	struct cli_cmd c;
	struct ing_error e;
	assert_int_equal(parse(&c, &e, "status", NULL), 0);
	assert_int_equal(c.verb, CLI_STATUS);
	assert_int_equal(c.nendpoints, 1);
	assert_string_equal(c.endpoints[0], "127.0.0.1:7401");
	assert_int_equal(c.endpoints_source, CLI_EP_DEFAULT);
	assert_int_equal(c.output, CLI_OUTPUT_TABLE);
	assert_int_equal(c.timeout_ms, 10000);
	assert_null(c.token);
	assert_false(c.stale);

	/* Global options before the noun, after it, in both value forms. */
	assert_int_equal(parse(&c, &e, "--endpoints", "10.0.0.1:7401,localhost:7402", "-o", "json",
	                       "--timeout=500ms", "--token", "tok", "--stale", "status", NULL),
	                 0);
	assert_int_equal(c.nendpoints, 2);
	assert_string_equal(c.endpoints[1], "localhost:7402");
	assert_int_equal(c.endpoints_source, CLI_EP_FLAG);
	assert_int_equal(c.output, CLI_OUTPUT_JSON);
	assert_int_equal(c.timeout_ms, 500);
	assert_string_equal(c.token, "tok");
	assert_true(c.stale);
	assert_int_equal(parse(&c, &e, "status", "-ojson", "--output=table", NULL), ING_EINVAL);
	assert_contains(e.msg, "given twice");
	assert_int_equal(parse(&c, &e, "status", "-ojson", NULL), 0);
	assert_int_equal(c.output, CLI_OUTPUT_JSON);

	/* Environment, and the flag over it. */
	char *argv[] = {(char *)"ingotctl", (char *)"status", NULL};
	struct cli_env env = {"127.0.0.2:1", "envtok", NULL, NULL, NULL};
	assert_int_equal(cli_parse_args(2, argv, &env, &c, &e), 0);
	assert_string_equal(c.endpoints[0], "127.0.0.2:1");
	assert_int_equal(c.endpoints_source, CLI_EP_ENV);
	assert_string_equal(c.token, "envtok");
	char *argv2[] = {(char *)"ingotctl", (char *)"--endpoints", (char *)"127.0.0.3:9",
	                 (char *)"status", NULL};
	env.token = NULL;
	assert_int_equal(cli_parse_args(4, argv2, &env, &c, &e), 0);
	assert_string_equal(c.endpoints[0], "127.0.0.3:9");
	env.endpoints = "nohost:1";
	assert_int_equal(cli_parse_args(2, argv, &env, &c, &e), ING_EINVAL);
	assert_contains(e.msg, "INGOT_ENDPOINTS");

	/* Help anywhere, even on an otherwise bad line. */
	assert_int_equal(parse(&c, &e, "job", "--bogus", "-h", NULL), 0);
	assert_int_equal(c.verb, CLI_HELP);
	assert_int_equal(parse(&c, &e, "--help", NULL), 0);
	assert_int_equal(c.verb, CLI_HELP);
}

static void test_args_every_command(void **state)
{
	(void)state;
	struct cli_cmd c;
	struct ing_error e;
	assert_int_equal(parse(&c, &e, "target", "apply", "t.yaml", NULL), 0);
	assert_int_equal(c.verb, CLI_TARGET_APPLY);
	assert_string_equal(c.file, "t.yaml");
	assert_int_equal(parse(&c, &e, "target", "list", NULL), 0);
	assert_int_equal(c.verb, CLI_TARGET_LIST);
	assert_int_equal(parse(&c, &e, "snapshot", "save", "/tmp/x.snap", NULL), 0);
	assert_int_equal(c.verb, CLI_SNAPSHOT_SAVE);
	assert_string_equal(c.file, "/tmp/x.snap");
	assert_int_equal(parse(&c, &e, "target", "get", "cc", NULL), 0);
	assert_int_equal(c.verb, CLI_TARGET_GET);
	assert_string_equal(c.name, "cc");
	assert_int_equal(parse(&c, &e, "target", "delete", "cc", NULL), 0);
	assert_int_equal(c.verb, CLI_TARGET_DELETE);
	assert_string_equal(c.name, "cc");

	assert_int_equal(parse(&c, &e, "job", "submit", "--target", "cc", "--priority", "90",
	                       "--max-attempts=5", "--deadline", "1m30s", "--tenant", "t1",
	                       "--request-id", "r-1", "a.c", "--", "-b.c", NULL),
	                 0);
	assert_int_equal(c.verb, CLI_JOB_SUBMIT);
	assert_string_equal(c.target, "cc");
	assert_true(c.has_priority);
	assert_int_equal(c.priority, 90);
	assert_int_equal(c.max_attempts, 5);
	assert_int_equal(c.deadline_ms, 90000);
	assert_string_equal(c.tenant, "t1");
	assert_string_equal(c.request_id, "r-1");
	assert_int_equal(c.nfiles, 2);
	assert_string_equal(c.files[0], "a.c");
	assert_string_equal(c.files[1], "-b.c");
	assert_int_equal(c.nparams, 0);

	/* --param NAME=VALUE, repeatable, in order; the value may hold '='
	 * or be empty. */
	assert_int_equal(parse(&c, &e, "job", "submit", "--target", "cc", "--param", "GAIN=42",
	                       "--param=_M2=a=b", "--param", "EMPTY=", "a.c", NULL),
	                 0);
	assert_int_equal(c.nparams, 3);
	assert_int_equal(c.params[0].name_len, 4);
	assert_memory_equal(c.params[0].name, "GAIN", 4);
	assert_string_equal(c.params[0].value, "42");
	assert_int_equal(c.params[1].name_len, 3);
	assert_memory_equal(c.params[1].name, "_M2", 3);
	assert_string_equal(c.params[1].value, "a=b");
	assert_int_equal(c.params[2].name_len, 5);
	assert_string_equal(c.params[2].value, "");
	{
		/* 32 parameters are fine, 33 a usage error. */
		static char pv[CLI_MAX_PARAMS + 1][16];
		char *argv[2 * (CLI_MAX_PARAMS + 1) + 8];
		int argc = 0;
		argv[argc++] = (char *)"ingotctl";
		argv[argc++] = (char *)"job";
		argv[argc++] = (char *)"submit";
		argv[argc++] = (char *)"--target";
		argv[argc++] = (char *)"cc";
		argv[argc++] = (char *)"a.c";
		for (int i = 0; i < CLI_MAX_PARAMS; i++) {
			snprintf(pv[i], sizeof(pv[i]), "P%d=%d", i, i);
			argv[argc++] = (char *)"--param";
			argv[argc++] = pv[i];
		}
		argv[argc] = NULL;
		assert_int_equal(cli_parse_args(argc, argv, NULL, &c, &e), 0);
		assert_int_equal(c.nparams, CLI_MAX_PARAMS);
		snprintf(pv[CLI_MAX_PARAMS], sizeof(pv[0]), "PX=1");
		argv[argc++] = (char *)"--param";
		argv[argc++] = pv[CLI_MAX_PARAMS];
		argv[argc] = NULL;
		assert_int_equal(cli_parse_args(argc, argv, NULL, &c, &e), ING_EINVAL);
		assert_contains(e.msg, "--param: at most 32 parameters");
	}

	assert_int_equal(parse(&c, &e, "job", "get", "17", NULL), 0);
	assert_int_equal(c.verb, CLI_JOB_GET);
	assert_int_equal(c.id, 17);
	assert_int_equal(parse(&c, &e, "job", "list", "--state", "running", "--target", "cc",
	                       "--limit", "5", "--after", "9", "--all", NULL),
	                 0);
	assert_int_equal(c.verb, CLI_JOB_LIST);
	assert_string_equal(c.state, "running");
	assert_string_equal(c.target, "cc");
	assert_int_equal(c.limit, 5);
	assert_int_equal(c.after, 9);
	assert_true(c.all);
	assert_int_equal(parse(&c, &e, "job", "cancel", "3", "--reason", "no longer needed", NULL),
	                 0);
	assert_int_equal(c.verb, CLI_JOB_CANCEL);
	assert_string_equal(c.reason, "no longer needed");
	assert_int_equal(parse(&c, &e, "job", "retry", "3", NULL), 0);
	assert_int_equal(c.verb, CLI_JOB_RETRY);
	assert_int_equal(parse(&c, &e, "job", "events", "3", NULL), 0);
	assert_int_equal(c.verb, CLI_JOB_EVENTS);
	assert_int_equal(parse(&c, &e, "job", "watch", "18446744073709551615", NULL), 0);
	assert_int_equal(c.verb, CLI_JOB_WATCH);
	assert_int_equal(c.id, UINT64_MAX);

	/* job logs: --stage by index or by name, -f/--follow (repeatable). */
	assert_int_equal(parse(&c, &e, "job", "logs", "4", NULL), 0);
	assert_int_equal(c.verb, CLI_JOB_LOGS);
	assert_int_equal(c.id, 4);
	assert_false(c.has_stage);
	assert_false(c.follow);
	assert_int_equal(parse(&c, &e, "job", "logs", "--stage", "2", "4", "--follow", NULL), 0);
	assert_true(c.has_stage);
	assert_int_equal(c.stage_index, 2);
	assert_null(c.stage_name);
	assert_true(c.follow);
	assert_int_equal(
	    parse(&c, &e, "--stale", "job", "logs", "4", "--stage=compile", "-f", "--follow", NULL),
	    0);
	assert_true(c.has_stage);
	assert_string_equal(c.stage_name, "compile");
	assert_true(c.follow);
	assert_true(c.stale);

	/* job fetch ID DIR */
	assert_int_equal(parse(&c, &e, "job", "fetch", "4", "out/dir", NULL), 0);
	assert_int_equal(c.verb, CLI_JOB_FETCH);
	assert_int_equal(c.id, 4);
	assert_string_equal(c.dir, "out/dir");
	assert_int_equal(parse(&c, &e, "job", "fetch", "--", "4", "-dir", NULL), 0);
	assert_string_equal(c.dir, "-dir");

	/* node list | drain ID [--deadline D] | undrain ID */
	assert_int_equal(parse(&c, &e, "node", "list", "--stale", NULL), 0);
	assert_int_equal(c.verb, CLI_NODE_LIST);
	assert_true(c.stale);
	assert_int_equal(parse(&c, &e, "node", "drain", "3", NULL), 0);
	assert_int_equal(c.verb, CLI_NODE_DRAIN);
	assert_int_equal(c.id, 3);
	assert_false(c.has_deadline);
	assert_int_equal(parse(&c, &e, "node", "drain", "--deadline", "1m30s", "3", NULL), 0);
	assert_true(c.has_deadline);
	assert_int_equal(c.deadline_ms, 90000);
	assert_int_equal(parse(&c, &e, "node", "undrain", "3", NULL), 0);
	assert_int_equal(c.verb, CLI_NODE_UNDRAIN);
	assert_int_equal(c.id, 3);
	assert_int_equal(parse(&c, &e, "node", "forget", "4", NULL), 0);
	assert_int_equal(c.verb, CLI_NODE_FORGET);
	assert_int_equal(c.id, 4);
	assert_int_equal(parse(&c, &e, "node", "forget", NULL), ING_EINVAL);

	/* member list */
	assert_int_equal(parse(&c, &e, "member", "list", NULL), 0);
	assert_int_equal(c.verb, CLI_MEMBER_LIST);
	assert_false(c.stale);
	assert_int_equal(parse(&c, &e, "--stale", "member", "list", "-o", "json", NULL), 0);
	assert_int_equal(c.verb, CLI_MEMBER_LIST);
	assert_true(c.stale);
	assert_int_equal(c.output, CLI_OUTPUT_JSON);
	assert_int_equal(c.timeout_ms, CLI_DEFAULT_TIMEOUT_MS);

	/* member add ID --raft-address A --api-address B [--role R]: role NULL
	 * means the server's default (voter); a change waits 60 s unless
	 * --timeout says otherwise. */
	assert_int_equal(parse(&c, &e, "member", "add", "4", "--raft-address", "127.0.0.1:7504",
	                       "--api-address=10.1.2.3:7404", NULL),
	                 0);
	assert_int_equal(c.verb, CLI_MEMBER_ADD);
	assert_int_equal(c.id, 4);
	assert_string_equal(c.raft_address, "127.0.0.1:7504");
	assert_string_equal(c.api_address, "10.1.2.3:7404");
	assert_null(c.role);
	assert_int_equal(c.timeout_ms, CLI_MEMBER_TIMEOUT_MS);
	assert_false(c.timeout_given);
	assert_int_equal(parse(&c, &e, "--timeout", "2m", "member", "add", "--role", "standby",
	                       "--api-address", "127.0.0.1:7404", "--raft-address",
	                       "127.0.0.1:7504", "18446744073709551615", NULL),
	                 0);
	assert_int_equal(c.id, UINT64_MAX);
	assert_string_equal(c.role, "standby");
	assert_int_equal(c.timeout_ms, 120000);
	assert_int_equal(parse(&c, &e, "member", "add", "4", "--raft-address", "127.0.0.1:7504",
	                       "--api-address", "127.0.0.1:7404", "--role=spare", "-o", "json",
	                       NULL),
	                 0);
	assert_string_equal(c.role, "spare");
	assert_int_equal(c.output, CLI_OUTPUT_JSON);

	assert_int_equal(parse(&c, &e, "member", "promote", "4", NULL), 0);
	assert_int_equal(c.verb, CLI_MEMBER_PROMOTE);
	assert_int_equal(c.id, 4);
	assert_int_equal(c.timeout_ms, CLI_MEMBER_TIMEOUT_MS);
	assert_int_equal(parse(&c, &e, "member", "demote", "4", NULL), 0);
	assert_int_equal(c.verb, CLI_MEMBER_DEMOTE);
	assert_null(c.role);
	assert_int_equal(c.timeout_ms, CLI_MEMBER_TIMEOUT_MS);
	assert_int_equal(parse(&c, &e, "member", "demote", "--role", "spare", "4", NULL), 0);
	assert_string_equal(c.role, "spare");
	assert_int_equal(parse(&c, &e, "member", "demote", "4", "--role", "standby", NULL), 0);
	assert_string_equal(c.role, "standby");
	assert_int_equal(parse(&c, &e, "member", "remove", "2", "--timeout", "500ms", NULL), 0);
	assert_int_equal(c.verb, CLI_MEMBER_REMOVE);
	assert_int_equal(c.id, 2);
	assert_int_equal(c.timeout_ms, 500);
	assert_int_equal(parse(&c, &e, "member", "transfer-leadership", NULL), 0);
	assert_int_equal(c.verb, CLI_MEMBER_TRANSFER);
	assert_int_equal(c.id, 0);
	assert_int_equal(c.timeout_ms, CLI_MEMBER_TIMEOUT_MS);
	assert_int_equal(parse(&c, &e, "member", "transfer-leadership", "3", NULL), 0);
	assert_int_equal(c.id, 3);

	/* events [--after SEQ] [--limit N]: a read */
	assert_int_equal(parse(&c, &e, "events", NULL), 0);
	assert_int_equal(c.verb, CLI_EVENTS);
	assert_false(c.has_after);
	assert_false(c.has_limit);
	assert_int_equal(c.timeout_ms, CLI_DEFAULT_TIMEOUT_MS);
	assert_int_equal(
	    parse(&c, &e, "events", "--after", "0", "--limit=1000", "--stale", "-o", "json", NULL),
	    0);
	assert_true(c.has_after);
	assert_int_equal(c.after, 0);
	assert_int_equal(c.limit, 1000);
	assert_true(c.stale);
	assert_int_equal(c.output, CLI_OUTPUT_JSON);

	/* settings get / settings set NAME DURATION */
	assert_int_equal(parse(&c, &e, "settings", "get", NULL), 0);
	assert_int_equal(c.verb, CLI_SETTINGS_GET);
	assert_int_equal(parse(&c, &e, "settings", "set", "job-retention", "7d", NULL), 0);
	assert_int_equal(c.verb, CLI_SETTINGS_SET);
	assert_string_equal(c.name, "job_retention_ms");
	assert_int_equal(c.setting_ms, 604800000);
	assert_int_equal(parse(&c, &e, "settings", "set", "dedupe-window", "forever", NULL), 0);
	assert_string_equal(c.name, "dedupe_window_ms");
	assert_int_equal(c.setting_ms, 0);
}

struct bad_line {
	const char *words[10];
	const char *msg; /* expected in the message */
};

static void test_args_usage_errors(void **state)
{
	(void)state;
	static const struct bad_line bad[] = {
	    {{NULL}, "no command given"},
	    {{"frob"},
	     "unknown command 'frob' (commands: status, target, job, node, member, events, "
	     "settings, snapshot, pki, help, completion)"},
	    {{"settings", "set", "job-retention"},
	     "'settings set' needs NAME DURATION, got no DURATION"},
	    {{"settings", "set", "retention", "7d"}, "unknown setting 'retention'"},
	    {{"settings", "set", "dedupe-window", "500ms"}, "must be at least 1s, or forever"},
	    {{"settings", "set", "dedupe-window", "7"}, "every number needs a unit"},
	    {{"job"}, "'job' needs a subcommand"},
	    {{"job", "frob"}, "unknown subcommand 'job frob'"},
	    {{"status", "extra"}, "takes no arguments"},
	    {{"status", "--bogus"}, "unknown option '--bogus'"},
	    {{"status", "-x"}, "unknown option '-x'"},
	    {{"status", "--stale=yes"}, "takes no value"},
	    {{"status", "--timeout"}, "--timeout needs a value"},
	    {{"status", "--timeout", "10"}, "needs a unit"},
	    {{"status", "--timeout", "0s"}, "--timeout"},
	    {{"status", "-o", "yaml"}, "table or json"},
	    {{"status", "--endpoints", "example.com:7401"}, "IPv4"},
	    {{"status", "--endpoints", "127.0.0.1"}, "HOST:PORT"},
	    {{"status", "--endpoints", "127.0.0.1:0"}, "HOST:PORT"},
	    {{"status", "--endpoints", "127.0.0.1:1,"}, "empty endpoint"},
	    {{"snapshot"}, "'snapshot' needs a subcommand"},
	    {{"snapshot", "save"}, "'snapshot save' needs FILE"},
	    {{"snapshot", "save", ""}, "'snapshot save': empty FILE"},
	    {{"snapshot", "save", "a", "b"}, "takes one FILE"},
	    {{"snapshot", "save", "a", "--stale"}, "--stale applies to reads only"},
	    {{"target", "get"}, "needs NAME"},
	    {{"target", "get", "a", "b"}, "takes one NAME"},
	    {{"target", "apply", "--stale", "x.yaml"}, "--stale applies to reads only"},
	    {{"job", "submit", "a.c"}, "needs --target"},
	    {{"job", "submit", "--target", "cc"}, "needs FILE..."},
	    {{"job", "submit", "--target", "cc", "--priority", "101", "a.c"}, "out of range"},
	    {{"job", "submit", "--target", "cc", "--priority", "-1", "a.c"}, "expected a number"},
	    {{"job", "submit", "--target", "cc", "--max-attempts", "0", "a.c"}, "out of range"},
	    {{"job", "submit", "--target", "cc", "--deadline", "soon", "a.c"}, "--deadline"},
	    {{"job", "submit", "--target", "cc", "--request-id", "a b", "a.c"}, "--request-id"},
	    {{"job", "submit", "--target", "cc", "--target", "dd", "a.c"}, "given twice"},
	    {{"job", "submit", "--target", "cc", "--param", "GAIN", "a.c"},
	     "--param: expected NAME=VALUE, got 'GAIN'"},
	    {{"job", "submit", "--target", "cc", "--param", "1X=2", "a.c"},
	     "--param: '1X' is not a parameter name"},
	    {{"job", "submit", "--target", "cc", "--param", "A-B=2", "a.c"},
	     "--param: 'A-B' is not a parameter name"},
	    {{"job", "submit", "--target", "cc", "--param", "=2", "a.c"},
	     "--param: '' is not a parameter name"},
	    {{"job", "submit", "--param", "G=1", "--param", "G=2", "a.c"},
	     "--param G: given twice"},
	    {{"job", "get", "1", "--param", "A=1"}, "'job get' has no option --param"},
	    {{"job", "get", "12x"}, "job ID: expected a number"},
	    {{"job", "get", "99999999999999999999"}, "too large"},
	    {{"job", "list", "--state", "done"}, "not a job state"},
	    {{"job", "list", "--limit", "1001"}, "out of range"},
	    {{"job", "get", "1", "--all"}, "'job get' has no option --all"},
	    {{"job", "cancel", "1", "--stale"}, "--stale applies to reads only"},
	    {{"job", "logs"}, "'job logs' needs ID"},
	    {{"job", "logs", "1", "--stage"}, "--stage needs a value"},
	    {{"job", "logs", "1", "--stage", ""}, "--stage: expected a stage index or name"},
	    {{"job", "logs", "1", "--stage", "1x"}, "--stage: expected a number"},
	    {{"job", "logs", "1", "--stage", "1", "--stage", "2"}, "given twice"},
	    {{"job", "logs", "1", "--follow=yes"}, "takes no value"},
	    {{"job", "watch", "1", "--follow"}, "'job watch' has no option --follow"},
	    {{"job", "get", "1", "--stage", "0"}, "'job get' has no option --stage"},
	    {{"job", "fetch", "1"}, "needs ID DIR, got no DIR"},
	    {{"job", "fetch", "1", "d", "e"}, "needs ID DIR, got more"},
	    {{"job", "fetch", "x", "d"}, "job ID: expected a number"},
	    {{"job", "fetch", "1", ""}, "empty DIR"},
	    {{"node"}, "'node' needs a subcommand (list, drain, undrain, forget)"},
	    {{"node", "frob"}, "unknown subcommand 'node frob' (list, drain, undrain, forget)"},
	    {{"node", "list", "3"}, "takes no arguments"},
	    {{"node", "drain"}, "'node drain' needs ID"},
	    {{"node", "drain", "two"}, "node ID: expected a number"},
	    {{"node", "drain", "1", "--deadline", "0s"}, "--deadline: must be more than 0"},
	    {{"node", "drain", "1", "--deadline", "5"}, "needs a unit"},
	    {{"node", "drain", "1", "--stale"}, "--stale applies to reads only"},
	    {{"node", "undrain", "1", "--deadline", "5m"},
	     "'node undrain' has no option --deadline"},
	    {{"node", "list", "--deadline", "5m"}, "'node list' has no option --deadline"},
	    {{"member"},
	     "'member' needs a subcommand (list, add, promote, demote, remove, "
	     "transfer-leadership)"},
	    {{"member", "frob"}, "unknown subcommand 'member frob' (list, add, promote, "},
	    {{"member", "transfer"}, "unknown subcommand 'member transfer' ("},
	    {{"member", "list", "1"}, "takes no arguments"},
	    {{"member", "list", "--all"}, "'member list' has no option --all"},
	    {{"member", "list", "--role", "voter"}, "'member list' has no option --role"},
	    /* member add */
	    {{"member", "add"}, "'member add' needs ID"},
	    {{"member", "add", "4"}, "'member add' needs --raft-address A.B.C.D:PORT"},
	    {{"member", "add", "4", "--api-address", "127.0.0.1:7404"},
	     "'member add' needs --raft-address"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504"},
	     "'member add' needs --api-address A.B.C.D:PORT"},
	    {{"member", "add", "0", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "127.0.0.1:7404"},
	     "member ID: expected a positive integer, got '0'"},
	    {{"member", "add", "four", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "127.0.0.1:7404"},
	     "member ID: expected a positive integer, got 'four'"},
	    {{"member", "add", "4", "5", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "127.0.0.1:7404"},
	     "'member add' takes one ID, got also '5'"},
	    {{"member", "add", "4", "--raft-address", "localhost:7504", "--api-address",
	      "127.0.0.1:7404"},
	     "--raft-address: expected an IPv4 address and port a.b.c.d:port"},
	    {{"member", "add", "4", "--raft-address", "node4:7504", "--api-address",
	      "127.0.0.1:7404"},
	     "--raft-address: expected an IPv4 address and port a.b.c.d:port (port 1 to 65535; "
	     "no host names), got 'node4:7504'"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1", "--api-address",
	      "127.0.0.1:7404"},
	     "--raft-address: expected an IPv4 address and port"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:0", "--api-address",
	      "127.0.0.1:7404"},
	     "--raft-address: expected an IPv4 address and port"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "127.0.0.1:65536"},
	     "--api-address: expected an IPv4 address and port"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "1.2.3:7404"},
	     "--api-address: expected an IPv4 address and port"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504", "--api-address", ""},
	     "--api-address: expected an IPv4 address and port"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "127.0.0.1:7404", "--role", "leader"},
	     "--role: 'leader' is not a role (voter, standby, spare)"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504", "--raft-address",
	      "127.0.0.1:7505"},
	     "option --raft-address given twice"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "127.0.0.1:7404", "--stale"},
	     "--stale applies to reads only"},
	    {{"member", "add", "4", "--raft-address"}, "option --raft-address needs a value"},
	    /* promote, demote, remove */
	    {{"member", "promote"}, "'member promote' needs ID"},
	    {{"member", "promote", "0"}, "member ID: expected a positive integer, got '0'"},
	    {{"member", "promote", "4", "--role", "voter"},
	     "'member promote' has no option --role"},
	    {{"member", "demote"}, "'member demote' needs ID"},
	    {{"member", "demote", "4", "--role", "voter"},
	     "--role: a demoted member becomes a standby or a spare, not a voter"},
	    {{"member", "demote", "4", "--role", "learner"},
	     "--role: 'learner' is not a role (standby, spare)"},
	    {{"member", "demote", "4", "--raft-address", "127.0.0.1:7504"},
	     "'member demote' has no option --raft-address"},
	    {{"member", "remove"}, "'member remove' needs ID"},
	    {{"member", "remove", "-4"}, "unknown option '-4'"},
	    {{"member", "remove", "4", "--stale"}, "--stale applies to reads only"},
	    {{"member", "remove", "4", "--role", "spare"}, "'member remove' has no option --role"},
	    {{"member", "remove", "4", "--timeout", "60"}, "needs a unit"},
	    /* transfer-leadership [ID] */
	    {{"member", "transfer-leadership", "1", "2"},
	     "'member transfer-leadership' takes at most one ID, got also '2'"},
	    {{"member", "transfer-leadership", "0"},
	     "member ID: expected a positive integer, got '0' (leave ID out to let the cluster "
	     "choose)"},
	    {{"member", "transfer-leadership", "x"}, "member ID: expected a positive integer"},
	    /* events */
	    {{"events", "list"}, "'events' takes no arguments, got 'list'"},
	    {{"events", "--limit", "0"}, "--limit: 0 is out of range (1 to 1000)"},
	    {{"events", "--limit", "1001"}, "--limit: 1001 is out of range"},
	    {{"events", "--after", "x"}, "--after: expected a number"},
	    {{"events", "--after", "1", "--after", "2"}, "option --after given twice"},
	    {{"events", "--all"}, "'events' has no option --all"},
	    /* help, completion, --version */
	    {{"help", "frob"}, "unknown command 'frob'"},
	    {{"help", "job", "frob"}, "unknown subcommand 'job frob'"},
	    {{"help", "status", "extra"}, "'help' takes one command, got also 'extra'"},
	    {{"help", "job", "submit", "x"}, "'help' takes one command, got also 'x'"},
	    {{"help", "--stale"}, "--stale applies to reads only, not to 'help'"},
	    {{"completion"}, "'completion' needs a subcommand (bash)"},
	    {{"completion", "zsh"}, "unknown subcommand 'completion zsh' (bash)"},
	    {{"completion", "bash", "x"}, "'completion bash' takes no arguments"},
	    {{"status", "--version=1"}, "option --version takes no value"},
	    {{"job", "submit", "--target", "cc"}, "'job submit' needs FILE..."},
	    {{"events", "--state", "queued"}, "'events' has no option --state"},
	    {{"member", "add", "4", "--raft-address", "127.0.0.1:7504", "--api-address",
	      "127.0.0.1:7404", "--after", "3"},
	     "'member add' has no option --after"},
	    /* pki */
	    {{"pki"}, "'pki' needs a subcommand (init, issue)"},
	    {{"pki", "init"}, "'pki init' needs --dir DIR"},
	    {{"pki", "init", "--dir", ""}, "--dir: empty directory name"},
	    {{"pki", "init", "--dir", "d", "--id", "3"}, "'pki init' has no option --id"},
	    {{"pki", "init", "--dir", "d", "--days", "0"},
	     "--days: 0 is out of range (1 to 36500)"},
	    {{"pki", "issue", "--dir", "d"}, "'pki issue' needs KIND"},
	    {{"pki", "issue", "server", "--dir", "d"}, "KIND must be node or client, got 'server'"},
	    {{"pki", "issue", "node", "--dir", "d", "--address", "127.0.0.1"},
	     "'pki issue node' needs --id N"},
	    {{"pki", "issue", "node", "--dir", "d", "--id", "0", "--address", "127.0.0.1"},
	     "--id: 0 is out of range"},
	    {{"pki", "issue", "node", "--dir", "d", "--id", "3"},
	     "'pki issue node' needs --address HOST_OR_IP"},
	    {{"pki", "issue", "node", "--dir", "d", "--id", "3", "--address", "a,b"},
	     "--address 'a,b': expected an IPv4 or IPv6 address or a DNS name"},
	    {{"pki", "issue", "node", "--dir", "d", "--id", "3", "--address", "-x.example"},
	     "--address '-x.example'"},
	    {{"pki", "issue", "node", "--id=3", "--address", "h", "--address=h", "--dir=d"},
	     "--address 'h' given twice"},
	    {{"pki", "issue", "node", "--dir=d", "--id=3", "--address=h", "--name", "x"},
	     "'pki issue node' has no option --name"},
	    {{"pki", "issue", "client", "--dir", "d"}, "'pki issue client' needs --name NAME"},
	    {{"pki", "issue", "client", "--dir", "d", "--name", "../x"}, "--name '../x': expected"},
	    {{"pki", "issue", "client", "--dir", "d", "--name", "x", "--id", "2"},
	     "'pki issue client' has no option --id"},
	    {{"pki", "init", "--dir", "d", "--stale"}, "--stale applies to reads only"},
	    /* TLS flags */
	    {{"--cert", "c.pem", "status"}, "--cert needs --key too"},
	    {{"--key", "k.pem", "--cacert", "ca.pem", "status"}, "--key needs --cert too"},
	    {{"--cert", "c.pem", "--key", "k.pem", "status"}, "--cert needs --cacert"},
	    {{"--cacert", "", "status"}, "--cacert: empty file name"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[12];
		int argc = 0;
		argv[argc++] = (char *)"ingotctl";
		for (int k = 0; bad[i].words[k] != NULL; k++)
			argv[argc++] = (char *)bad[i].words[k];
		argv[argc] = NULL;
		struct cli_cmd c;
		struct ing_error e;
		ing_error_clear(&e);
		int rv = cli_parse_args(argc, argv, NULL, &c, &e);
		if (rv != ING_EINVAL || strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("line %zu: rv %d, message '%s', expected '%s'", i, rv, e.msg,
			         bad[i].msg);
		/* The whole program: exit 2, message on stderr, nothing on stdout. */
		size_t olen, elen;
		char *o, *er;
		FILE *out = open_memstream(&o, &olen);
		FILE *err = open_memstream(&er, &elen);
		int code = cli_run(argc, argv, out, err);
		fclose(out);
		fclose(err);
		assert_int_equal(code, CLI_EXIT_USAGE);
		assert_string_equal(o, "");
		assert_contains(er, "ingotctl: invalid: ");
		assert_contains(er, bad[i].msg);
		free(o);
		free(er);
	}
}

static void test_help_exit_0(void **state)
{
	(void)state;
	struct run r = run_words("--help", NULL);
	assert_int_equal(r.code, 0);
	assert_contains(r.out, "usage: ingotctl [global options] COMMAND [options] [ARGS]\n");
	/* Every command, with its short synopsis, in the table's order. */
	const char *at = r.out;
	for (size_t i = 0; i < cli_ncommands; i++) {
		char syn[256], line[300];
		cli_command_synopsis(&cli_commands[i], false, syn, sizeof(syn));
		snprintf(line, sizeof(line), "\n  %s", syn);
		/* a long synopsis is wrapped: compare its first words */
		line[strlen(line) > 60 ? 60 : strlen(line)] = '\0';
		const char *hit = strstr(at, line);
		if (hit == NULL)
			fail_msg("'%s' missing (or out of order) in:\n%s", line + 1, r.out);
		at = hit + 1;
	}
	assert_contains(r.out, "  job submit FILE... --target NAME [options]\n"
	                       "                              submit a job; prints its id\n");
	assert_contains(r.out, "  member add ID --raft-address A.B.C.D:PORT --api-address "
	                       "A.B.C.D:PORT\n      [options]");
	for (int id = 0; id < CLI_OPT_COUNT; id++) {
		if (cli_opts[id].global)
			assert_contains(r.out, cli_opts[id].name);
	}
	assert_contains(r.out, "  -o, --output FORMAT     table (default) or json\n");
	assert_contains(r.out, "60s for");
	assert_contains(r.out, "Exit codes: 0 success");
	assert_string_equal(r.err, "");
	run_free(&r);

	/* The same from `help`, `-h`, and with junk around it. */
	const char *const *lines[] = {
	    (const char *const[]){"help", NULL},
	    (const char *const[]){"-h", NULL},
	    (const char *const[]){"--bogus", "--help", "x", NULL},
	    (const char *const[]){"frob", "-h", NULL},
	};
	struct run want = run_words("help", NULL);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char *argv[8] = {(char *)"ingotctl"};
		int argc = 1;
		for (int k = 0; lines[i][k] != NULL; k++)
			argv[argc++] = (char *)lines[i][k];
		char *o, *er;
		size_t ol, el;
		FILE *out = open_memstream(&o, &ol), *err = open_memstream(&er, &el);
		assert_int_equal(cli_run(argc, argv, out, err), 0);
		fclose(out);
		fclose(err);
		assert_string_equal(o, want.out);
		assert_string_equal(er, "");
		free(o);
		free(er);
	}
	run_free(&want);
}

/* The option names listed under "Options:" of a command's help. */
static void help_options(const char *help, bool listed[CLI_OPT_COUNT])
{
	memset(listed, 0, CLI_OPT_COUNT * sizeof(bool));
	const char *p = strstr(help, "\nOptions:\n");
	if (p == NULL)
		return;
	for (p += strlen("\nOptions:\n"); *p == ' ' && p[1] == ' '; p = strchr(p, '\n') + 1) {
		const char *name = strstr(p, "--");
		const char *eol = strchr(p, '\n');
		if (p[2] != '-' || name == NULL || name > eol)
			continue; /* a wrapped line of text */
		for (int id = 0; id < CLI_OPT_COUNT; id++) {
			size_t len = strlen(cli_opts[id].name);
			if (strncmp(name + 2, cli_opts[id].name, len) == 0 &&
			    (name[2 + len] == ' ' || name[2 + len] == '\n'))
				listed[id] = true;
		}
	}
}

static void test_help_per_command(void **state)
{
	(void)state;
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *c = &cli_commands[i];
		char name[64], head[96];
		cli_command_name(c, name, sizeof(name));
		/* `help NOUN VERB` and `NOUN VERB --help` print the same usage. */
		struct run a = c->verb != NULL ? run_words("help", c->noun, c->verb, NULL)
		                               : run_words("help", c->noun, NULL);
		struct run b = c->verb != NULL ? run_words(c->noun, c->verb, "--help", NULL)
		                               : run_words(c->noun, "--help", NULL);
		if (a.code != 0 || b.code != 0 || strcmp(a.out, b.out) != 0 || a.err[0] != '\0')
			fail_msg("%s: help %d/%d, '%s' vs '%s' (%s)", name, a.code, b.code, a.out,
			         b.out, a.err);
		snprintf(head, sizeof(head), "usage: ingotctl %s", name);
		if (strncmp(a.out, head, strlen(head)) != 0)
			fail_msg("%s: help starts '%.60s'", name, a.out);
		assert_contains(a.out, c->text != NULL ? "." : c->summary);
		/* The options listed are exactly those the parser accepts. */
		bool listed[CLI_OPT_COUNT];
		help_options(a.out, listed);
		for (int id = 0; id < CLI_OPT_COUNT; id++) {
			if (cli_opts[id].global)
				continue;
			char opt[64];
			snprintf(opt, sizeof(opt), "--%s", cli_opts[id].name);
			char *argv[8] = {(char *)"ingotctl", (char *)c->noun};
			int argc = 2;
			if (c->verb != NULL)
				argv[argc++] = (char *)c->verb;
			/* operands first, so that only the option can be wrong */
			const char *ops = c->operands != NULL ? c->operands : "[";
			if (strcmp(ops, "NAME DURATION") == 0) {
				argv[argc++] = (char *)"job-retention";
				argv[argc++] = (char *)"7d";
			} else if (ops[0] != '[')
				argv[argc++] =
				    (char *)(strcmp(ops, "FILE") == 0 || strcmp(ops, "FILE...") == 0
				                 ? "f"
				             : strcmp(ops, "NAME") == 0 ? "n"
				             : strcmp(ops, "KIND") == 0 ? "node"
				                                        : "1");
			if (strcmp(ops, "ID DIR") == 0)
				argv[argc++] = (char *)"d";
			argv[argc++] = opt;
			if (cli_opts[id].arg != NULL)
				argv[argc++] = (char *)"1";
			struct cli_cmd cmd;
			struct ing_error e;
			ing_error_clear(&e);
			cli_parse_args(argc, argv, NULL, &cmd, &e);
			bool refused = strstr(e.msg, "has no option") != NULL;
			if (refused == listed[id])
				fail_msg("%s: --%s %s in its help but %s by the parser", name,
				         cli_opts[id].name, listed[id] ? "listed" : "not listed",
				         refused ? "refused" : "accepted");
		}
		run_free(&a);
		run_free(&b);
	}

	/* One command's usage in full. */
	struct run r = run_words("help", "job", "list", NULL);
	assert_string_equal(
	    r.out,
	    "usage: ingotctl job list [--state STATE] [--target NAME] [--limit N]\n"
	    "      [--after ID] [--all]\n"
	    "\n"
	    "Lists the jobs with ids above --after, at most --limit of them; when there are\n"
	    "more, says on stderr how to get the next page.\n"
	    "\n"
	    "Options:\n"
	    "  --state STATE           only the jobs in this state: queued, assigned,\n"
	    "                          running, succeeded, failed, cancelled\n"
	    "  --target NAME           only the jobs of this target\n"
	    "  --limit N               jobs in the page, 1 to 1000 (default 100)\n"
	    "  --after ID              start after job ID (the last of the previous page)\n"
	    "  --all                   follow the pages to the end\n"
	    "\n"
	    "Global options: --endpoints H:P,..., -o json, --timeout DURATION (default 10s),\n"
	    "--token TOKEN, --stale; 'ingotctl help' describes them.\n");
	run_free(&r);
	r = run_words("member", "demote", "-h", NULL);
	assert_contains(r.out, "usage: ingotctl member demote ID [--role standby|spare]\n");
	assert_contains(r.out, "(default 60s)");
	assert_false(strstr(r.out, "--stale") != NULL);
	run_free(&r);
	r = run_words("job", "submit", "--bogus", "--target", "-h", NULL);
	assert_int_equal(r.code, 0);
	assert_contains(r.out, "usage: ingotctl job submit FILE... --target NAME [--priority N]");
	assert_contains(r.out, "  --target NAME           the target to run (required)\n");
	assert_null(strstr(r.out, "  -f, --follow"));
	run_free(&r);
	r = run_words("--endpoints", "127.0.0.1:1", "job", "logs", "--help", NULL);
	assert_contains(r.out, "usage: ingotctl job logs ID [--stage N|NAME] [-f|--follow]\n");
	assert_contains(r.out, "  -f, --follow ");
	run_free(&r);

	/* A noun alone: its commands. */
	struct run n1 = run_words("help", "member", NULL);
	struct run n2 = run_words("member", "--help", NULL);
	assert_int_equal(n1.code, 0);
	assert_string_equal(n1.out, n2.out);
	assert_contains(n1.out, "usage: ingotctl [global options] member COMMAND");
	assert_contains(n1.out, "  member transfer-leadership [ID]\n");
	assert_contains(n1.out, "'ingotctl help member COMMAND'");
	assert_false(strstr(n1.out, "job submit") != NULL);
	run_free(&n1);
	run_free(&n2);
	/* An unknown subcommand with --help: the noun's commands. */
	n1 = run_words("node", "frob", "--help", NULL);
	assert_int_equal(n1.code, 0);
	assert_contains(n1.out, "  node undrain ID");
	run_free(&n1);

	/* A usage error names the command's help. */
	r = run_words("job", "submit", "a.c", NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_string_equal(r.err, "ingotctl: invalid: 'job submit' needs --target NAME (the "
	                           "target to run)\nRun 'ingotctl help job submit' for usage.\n");
	run_free(&r);
	r = run_words("--timeout", "5", "node", "frob", NULL);
	assert_contains(r.err, "Run 'ingotctl help node' for usage.\n");
	run_free(&r);
	r = run_words("frob", NULL);
	assert_contains(r.err, "Run 'ingotctl help' for usage.\n");
	run_free(&r);
}

/* The text of a man page's macro lines (.B, .BI, .BR, .IR, ...), one per
 * line, as roff sets them: the words of .B and .I joined by spaces, those
 * of the alternating macros joined as they are; font escapes, \- and \&
 * made plain.  Enough to find a command's synopsis in the source. */
static char *man_text(const char *src)
{
	size_t cap = strlen(src) + 1, n = 0;
	char *out = malloc(cap);
	assert_non_null(out);
	for (const char *line = src; *line != '\0';) {
		const char *eol = strchr(line, '\n');
		size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
		static const char *const macros[] = {".B ",  ".I ",  ".BI ", ".BR ",
		                                     ".IB ", ".IR ", ".RB ", ".RI "};
		for (size_t m = 0; m < sizeof(macros) / sizeof(macros[0]); m++) {
			size_t ml = strlen(macros[m]);
			if (len < ml || strncmp(line, macros[m], ml) != 0)
				continue;
			bool join_space = ml == 3;
			bool quoted = false, first = true;
			for (size_t k = ml; k < len; k++) {
				char ch = line[k];
				if (ch == '"') {
					quoted = !quoted;
					continue;
				}
				if (ch == ' ' && !quoted) {
					if (join_space && !first)
						out[n++] = ' ';
					while (k + 1 < len && line[k + 1] == ' ')
						k++;
					continue;
				}
				if (ch == '\\' && k + 1 < len) {
					char nx = line[k + 1];
					if (nx == 'f' && k + 2 < len) {
						k += 2;
						continue;
					}
					if (nx == '-' || nx == '&') {
						k++;
						if (nx == '-')
							out[n++] = '-';
						first = false;
						continue;
					}
				}
				out[n++] = ch;
				first = false;
			}
			out[n++] = '\n';
			break;
		}
		line += len + (eol != NULL);
	}
	out[n] = '\0';
	return out;
}

/* docs/cli.md's command table and ingotctl(1) name every command with the
 * synopsis `ingotctl help` lists. */
static void test_help_matches_docs(void **state)
{
	(void)state;
	const char *src = getenv("INGOT_SOURCE_DIR");
	if (src == NULL)
		skip();
	char path[512];
	void *md, *man;
	size_t mdlen, manlen;
	snprintf(path, sizeof(path), "%s/docs/cli.md", src);
	assert_int_equal(tu_read_file(path, &md, &mdlen), 0);
	snprintf(path, sizeof(path), "%s/docs/man/ingotctl.1.in", src);
	assert_int_equal(tu_read_file(path, &man, &manlen), 0);
	char *mantext = man_text(man);
	for (size_t i = 0; i < cli_ncommands; i++) {
		char syn[256], want[300];
		cli_command_synopsis(&cli_commands[i], false, syn, sizeof(syn));
		snprintf(want, sizeof(want), "| `%s` |", syn);
		if (strstr(md, want) == NULL)
			fail_msg("docs/cli.md's command table lacks the row %s", want);
		snprintf(want, sizeof(want), "\n%s\n", syn);
		if (strstr(mantext, want) == NULL)
			fail_msg("ingotctl.1 lacks the command '%s' in:\n%s", syn, mantext);
	}
	for (int id = 0; id < CLI_OPT_COUNT; id++) {
		char want[64];
		snprintf(want, sizeof(want), "--%s", cli_opts[id].name);
		if (strstr(md, want) == NULL || strstr(mantext, want) == NULL)
			fail_msg("option %s is missing from docs/cli.md or ingotctl.1", want);
	}
	free(mantext);
	free(md);
	free(man);
}

static void test_version(void **state)
{
	(void)state;
	char first[128];
	snprintf(first, sizeof(first), "ingotctl %s (commit %s)\n", INGOT_VERSION, INGOT_COMMIT);
	struct run r = run_words("--version", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	if (strncmp(r.out, first, strlen(first)) != 0)
		fail_msg("first line of:\n%s\nexpected %s", r.out, first);
	/* The libraries at run time, each as it reports itself. */
	char line[160];
	snprintf(line, sizeof(line), "\nlibuv      %s (built with %d.%d.%d)\n", uv_version_string(),
	         UV_VERSION_MAJOR, UV_VERSION_MINOR, UV_VERSION_PATCH);
	assert_contains(r.out, line);
	snprintf(line, sizeof(line), "\nOpenSSL    %s (built with %s)\n",
	         OpenSSL_version(OPENSSL_VERSION_STRING), OPENSSL_VERSION_STR);
	assert_contains(r.out, line);
	assert_contains(r.out, "\nmsgpack-c  ");
	assert_contains(r.out, "\njansson    ");
	assert_contains(r.out, "\nlibyaml    ");
	/* The version in CMake's project() call. */
	const char *src = getenv("INGOT_SOURCE_DIR");
	if (src != NULL) {
		char path[512], want[64];
		void *cm;
		size_t len;
		snprintf(path, sizeof(path), "%s/CMakeLists.txt", src);
		assert_int_equal(tu_read_file(path, &cm, &len), 0);
		snprintf(want, sizeof(want), "project(ingot VERSION %s ", INGOT_VERSION);
		assert_contains(cm, want);
		free(cm);
	}
	/* --version anywhere, after help in precedence. */
	struct run v = run_words("job", "submit", "--bogus", "--version", NULL);
	assert_int_equal(v.code, 0);
	assert_string_equal(v.out, r.out);
	run_free(&v);
	v = run_words("--version", "status", "--help", NULL);
	assert_contains(v.out, "usage: ingotctl status");
	run_free(&v);
	run_free(&r);
}

static void test_completion_script(void **state)
{
	(void)state;
	struct run r = run_words("completion", "bash", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	assert_contains(r.out, "# bash completion for ingotctl " INGOT_VERSION);
	assert_contains(r.out, "\ncomplete -F _ingotctl ingotctl\n");
	/* Every verb of every noun, every option of every command. */
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *c = &cli_commands[i];
		char name[64], want[128];
		cli_command_name(c, name, sizeof(name));
		snprintf(want, sizeof(want), "\t\"%s\")\n\t\topts=\"", name);
		const char *row = strstr(r.out, want);
		if (row == NULL)
			fail_msg("no case for '%s'", name);
		const char *eol = strchr(row + strlen(want), '"');
		for (const struct cli_command_opt *o = c->opts; o->help != NULL; o++) {
			snprintf(want, sizeof(want), "--%s", cli_opts[o->id].name);
			const char *hit = strstr(row + strlen(name), want);
			if (hit == NULL || hit > eol)
				fail_msg("'%s' lacks %s in its completion", name, want);
		}
	}
	run_free(&r);
}

static void test_durations(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t ms;
	} good[] = {{"5s", 5000},           {"500ms", 500}, {"2m", 120000},    {"1h", 3600000},
	            {"1m30s", 90000},       {"1.5s", 1500}, {"0.25s", 250},    {".5s", 500},
	            {"1h2m3s4ms", 3723004}, {"0s", 0},      {"1.0009s", 1000}, {"7d", 604800000},
	            {"1d12h", 129600000}};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t ms = 12345;
		struct ing_error e;
		if (cli_parse_duration(good[i].s, &ms, &e) != 0 || ms != good[i].ms)
			fail_msg("'%s': got %llu (%s)", good[i].s, (unsigned long long)ms, e.msg);
	}
	static const char *const bad[] = {
	    "", "5", "s", "5x", "5 s", "-5s", "5s5", "1.s.s", "9999999999999h", "366d", "8761h"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t ms = 12345;
		struct ing_error e;
		if (cli_parse_duration(bad[i], &ms, &e) != ING_EINVAL || ms != 12345)
			fail_msg("'%s' accepted", bad[i]);
	}
	char buf[32];
	static const struct {
		uint64_t ms;
		const char *s;
	} fmt[] = {{0, "0ms"},    {450, "450ms"},    {1200, "1.2s"},  {59949, "59.9s"},
	           {60000, "1m"}, {125000, "2m05s"}, {3600000, "1h"}, {3720000, "1h02m"}};
	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		cli_format_duration(fmt[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, fmt[i].s);
	}
}

static void test_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t bytes;
	} good[] = {{"0", 0},
	            {"4096", 4096},
	            {"100B", 100},
	            {"64KiB", 65536},
	            {"512MiB", 512ull << 20},
	            {"1GiB", 1ull << 30},
	            {"2TiB", 2ull << 40},
	            {"18446744073709551615", UINT64_MAX}};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 12345;
		struct ing_error e;
		if (cli_parse_size(good[i].s, &v, &e) != 0 || v != good[i].bytes)
			fail_msg("'%s': got %llu (%s)", good[i].s, (unsigned long long)v, e.msg);
	}
	static const char *const bad[] = {"",           "KiB",   "1KB",
	                                  "1 MiB",      "1mib",  "-1",
	                                  "1.5GiB",     "1GiBx", "18446744073709551616",
	                                  "16777216TiB"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 12345;
		struct ing_error e;
		if (cli_parse_size(bad[i], &v, &e) != ING_EINVAL || v != 12345)
			fail_msg("'%s' accepted", bad[i]);
	}
}

/* ---- source paths ------------------------------------------------------ */

static void test_source_paths(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {{"a.c", "a.c"},          {"src/a.c", "src/a.c"}, {"./src//a.c", "src/a.c"},
	             {"/abs/dir/a.c", "a.c"}, {"../up/a.c", "a.c"},   {"src/../a.c", "a.c"},
	             {"..a.c", "..a.c"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256];
		struct ing_error e;
		assert_int_equal(cli_source_path(cases[i].in, buf, sizeof(buf), &e), 0);
		assert_string_equal(buf, cases[i].out);
	}
	char buf[256];
	struct ing_error e;
	assert_int_equal(cli_source_path("/", buf, sizeof(buf), &e), ING_EINVAL);
	assert_int_equal(cli_source_path("./", buf, sizeof(buf), &e), ING_EINVAL);
	assert_int_equal(cli_source_path("..", buf, sizeof(buf), &e), ING_EINVAL);
}

/* ---- target YAML ------------------------------------------------------- */

static const char valid_yaml[] = "name: x86_64-cc\n"
                                 "description: x86-64 builds with the system cc\n"
                                 "capabilities: [cc]\n"
                                 "labels: {arch: x86_64}\n"
                                 "gpus: 1\n"
                                 "disk: 4GiB\n"
                                 "network: true\n"
                                 "stages:\n"
                                 "  - name: compile\n"
                                 "    argv: [cc, -O2, -c, \"{source}\", -o, kernel.o]\n"
                                 "    timeout: 60s\n"
                                 "    env: {LC_ALL: C}\n"
                                 "    outputs: [kernel.o]\n"
                                 "    stdout: cc.txt\n"
                                 "    limits: {output: 64MiB, cpu: 1m, memory: 512MiB, "
                                 "open_files: 256, processes: 64}\n"
                                 "  - outputs: []\n"
                                 "    gpus: 16\n"
                                 "    argv:\n"
                                 "      - sleep\n"
                                 "      - 10\n"
                                 "    name: wait\n";

static void test_yaml_valid_exact_msgpack(void **state)
{
	(void)state;
	struct mp_out want, got;
	mp_out_init(&want);
	mp_out_init(&got);
	msgpack_packer *pk = &want.pk;
	msgpack_pack_map(pk, 8);
	mp_pack_cstr(pk, "name");
	mp_pack_cstr(pk, "x86_64-cc");
	mp_pack_cstr(pk, "description");
	mp_pack_cstr(pk, "x86-64 builds with the system cc");
	mp_pack_cstr(pk, "capabilities");
	msgpack_pack_array(pk, 1);
	mp_pack_cstr(pk, "cc");
	mp_pack_cstr(pk, "labels");
	msgpack_pack_map(pk, 1);
	mp_pack_cstr(pk, "arch");
	mp_pack_cstr(pk, "x86_64");
	mp_pack_cstr(pk, "gpus");
	msgpack_pack_uint64(pk, 1);
	mp_pack_cstr(pk, "network"); /* fixed key order whatever the file's */
	mp_pack_bool(pk, true);
	mp_pack_cstr(pk, "disk_bytes");
	msgpack_pack_uint64(pk, 4ull << 30);
	mp_pack_cstr(pk, "stages");
	msgpack_pack_array(pk, 2);
	msgpack_pack_map(pk, 7);
	mp_pack_cstr(pk, "name");
	mp_pack_cstr(pk, "compile");
	mp_pack_cstr(pk, "argv");
	msgpack_pack_array(pk, 6);
	const char *argv[] = {"cc", "-O2", "-c", "{source}", "-o", "kernel.o"};
	for (int i = 0; i < 6; i++)
		mp_pack_cstr(pk, argv[i]);
	mp_pack_cstr(pk, "timeout_ms");
	msgpack_pack_uint64(pk, 60000);
	mp_pack_cstr(pk, "env");
	msgpack_pack_map(pk, 1);
	mp_pack_cstr(pk, "LC_ALL");
	mp_pack_cstr(pk, "C");
	mp_pack_cstr(pk, "outputs");
	msgpack_pack_array(pk, 1);
	mp_pack_cstr(pk, "kernel.o");
	mp_pack_cstr(pk, "limits");
	msgpack_pack_map(pk, 5); /* fixed key order whatever the file's */
	mp_pack_cstr(pk, "cpu_seconds");
	msgpack_pack_uint64(pk, 60);
	mp_pack_cstr(pk, "memory_bytes");
	msgpack_pack_uint64(pk, 512ull << 20);
	mp_pack_cstr(pk, "open_files");
	msgpack_pack_uint64(pk, 256);
	mp_pack_cstr(pk, "output_bytes");
	msgpack_pack_uint64(pk, 64ull << 20);
	mp_pack_cstr(pk, "processes");
	msgpack_pack_uint64(pk, 64);
	mp_pack_cstr(pk, "stdout");
	mp_pack_cstr(pk, "cc.txt");
	msgpack_pack_map(pk, 4); /* fixed key order whatever the file's */
	mp_pack_cstr(pk, "name");
	mp_pack_cstr(pk, "wait");
	mp_pack_cstr(pk, "argv");
	msgpack_pack_array(pk, 2);
	mp_pack_cstr(pk, "sleep");
	mp_pack_cstr(pk, "10");
	mp_pack_cstr(pk, "outputs");
	msgpack_pack_array(pk, 0);
	mp_pack_cstr(pk, "gpus");
	msgpack_pack_uint64(pk, 16);

	struct ing_error e;
	ing_error_clear(&e);
	int rv = cli_target_yaml_parse("t.yaml", valid_yaml, strlen(valid_yaml), &got, &e);
	if (rv != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	mp_out_free(&want);
	mp_out_free(&got);
}

struct bad_yaml {
	const char *text;
	const char *msg; /* expected in the message, including file:line[:col] */
};

static void test_yaml_errors(void **state)
{
	(void)state;
	static const struct bad_yaml bad[] = {
	    {"", "t.yaml: empty file"},
	    {"name: a\nstages: [{name: s, argv: [x]}]\ncolour: red\n",
	     "t.yaml:3:1: unknown key 'colour'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    timout: 5s\n",
	     "t.yaml:5:5: unknown key 'stages[0].timout'"},
	    {"stages: [{name: s, argv: [x]}]\n", "t.yaml:1:1: missing required key 'name'"},
	    {"name:\nstages: [{name: s, argv: [x]}]\n", "missing required key 'name'"},
	    {"name: a\n", "t.yaml:1:1: missing required key 'stages'"},
	    {"name: a\nstages:\n  - name: s\n",
	     "t.yaml:3:5: missing required key 'stages[0].argv'"},
	    {"name: a\nstages: {name: s}\n", "t.yaml:2:9: key 'stages': expected a sequence"},
	    {"name: a\nstages: []\n", "key 'stages': needs at least one stage"},
	    {"name: [a]\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:1:7: key 'name': expected a string, got a sequence"},
	    {"name: a\ncapabilities: cc\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:2:15: key 'capabilities': expected a sequence of strings, got a string"},
	    {"name: a\nlabels: [x]\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:2:9: key 'labels': expected a mapping"},
	    {"name: a\nlabels: {a: [1]}\nstages: [{name: s, argv: [x]}]\n",
	     "key 'labels.a': expected a string, got a sequence"},
	    {"name: a\nstages:\n  - name: s\n    argv: []\n",
	     "t.yaml:4:11: key 'stages[0].argv': needs at least 1 item"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x, {y: z}]\n",
	     "t.yaml:4:15: key 'stages[0].argv[1]': expected a string, got a mapping"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    timeout: 60\n",
	     "t.yaml:5:14: key 'stages[0].timeout': bad duration '60'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    timeout: 0s\n",
	     "key 'stages[0].timeout': must be more than 0"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    env: {A: 1, A: 2}\n",
	     "t.yaml:5:17: key 'stages[0].env.A' given twice"},
	    {"name: a\nname: b\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:2:1: key 'name' given twice"},
	    {"- a\n- b\n", "t.yaml:1:1: the file: expected a mapping"},
	    {"name: a\nstages: [{name: s, argv: [x]\n", "t.yaml:3:1: YAML syntax error"},
	    {"name: a\nstages: [{name: s, argv: [x]}]\n---\nname: b\n",
	     "t.yaml:4: a second YAML document"},
	    {"name: ''\nstages: [{name: s, argv: [x]}]\n", "key 'name': must not be empty"},
	    {"name: a\ndescription: [x]\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:2:14: key 'description': expected a string, got a sequence"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: 5s\n",
	     "t.yaml:5:13: key 'stages[0].limits': expected a mapping (keys: cpu, memory, "
	     "open_files, output, processes)"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {cpus: 5s}\n",
	     "t.yaml:5:14: unknown key 'stages[0].limits.cpus'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {cpu: 5}\n",
	     "t.yaml:5:19: key 'stages[0].limits.cpu': bad duration '5'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {cpu: 1500ms}\n",
	     "key 'stages[0].limits.cpu': '1500ms' is not a whole number of seconds"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {memory: 1GB}\n",
	     "t.yaml:5:22: key 'stages[0].limits.memory': bad size '1GB'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {output: 0}\n",
	     "key 'stages[0].limits.output': must be more than 0"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {open_files: 1k}\n",
	     "key 'stages[0].limits.open_files': expected a number, got '1k'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {processes: -1}\n",
	     "key 'stages[0].limits.processes': expected a number, got '-1'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {processes: 0}\n",
	     "key 'stages[0].limits.processes': must be more than 0"},
	    {"name: a\nnetwork: yes\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:2:10: key 'network': expected true or false, got 'yes'"},
	    {"name: a\nnetwork: [true]\nstages: [{name: s, argv: [x]}]\n",
	     "key 'network': expected a string, got a sequence"},
	    {"name: a\ndisk: 2GB\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:2:7: key 'disk': bad size '2GB'"},
	    {"name: a\ndisk: 0\nstages: [{name: s, argv: [x]}]\n",
	     "key 'disk': must be more than 0"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    limits: {cpu: 1s, cpu: 2s}\n",
	     "key 'stages[0].limits.cpu' given twice"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    stdout: [a]\n",
	     "t.yaml:5:13: key 'stages[0].stdout': expected a string, got a sequence"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    stdout: ''\n",
	     "key 'stages[0].stdout': must not be empty"},
	    {"name: a\ngpus: 17\nstages: [{name: s, argv: [x]}]\n",
	     "t.yaml:2:7: key 'gpus': 17 GPUs exceeds 16"},
	    {"name: a\ngpus: -1\nstages: [{name: s, argv: [x]}]\n",
	     "key 'gpus': expected a number of GPUs (0 to 16), got '-1'"},
	    {"name: a\ngpus: [1]\nstages: [{name: s, argv: [x]}]\n",
	     "key 'gpus': expected a string, got a sequence"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    gpus: one\n",
	     "t.yaml:5:11: key 'stages[0].gpus': expected a number of GPUs (0 to 16), got 'one'"},
	    {"name: a\nstages:\n  - name: s\n    argv: [x]\n    gpus: 99999999999999999999\n",
	     "key 'stages[0].gpus': expected a number of GPUs (0 to 16)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mp_out o;
		struct ing_error e;
		mp_out_init(&o);
		ing_error_clear(&e);
		int rv = cli_target_yaml_parse("t.yaml", bad[i].text, strlen(bad[i].text), &o, &e);
		if (rv != ING_EINVAL || strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("case %zu: rv %d, message '%s', expected '%s'", i, rv, e.msg,
			         bad[i].msg);
		mp_out_free(&o);
	}
}

static void test_yaml_file_through_cli_run(void **state)
{
	(void)state;
	char dir[256], path[300];
	tu_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/bad.yaml", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("name: a\nstages:\n  - name: s\n    argv: [x]\n    colour: red\n", f);
	fclose(f);
	/* A closed port: were anything sent, the exit would be 3. */
	struct run r = run_words("--endpoints", "127.0.0.1:1", "target", "apply", path, NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "bad.yaml:5:5: unknown key 'stages[0].colour'");
	run_free(&r);
	r = run_words("--endpoints", "127.0.0.1:1", "target", "apply", "/nonexistent.yaml", NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "cannot open '/nonexistent.yaml'");
	run_free(&r);
	r = run_words("--endpoints", "127.0.0.1:1", "target", "apply", dir, NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "is not a regular file");
	run_free(&r);
	r = run_words("--endpoints", "127.0.0.1:1", "job", "submit", "--target", "cc", path,
	              "/nonexistent.c", NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "cannot open '/nonexistent.c'");
	run_free(&r);
	r = run_words("--endpoints", "127.0.0.1:1", "job", "submit", "--target", "cc", path,
	              "./bad.yaml", NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "would both be sent as 'bad.yaml'");
	run_free(&r);
	tu_rmrf(dir);
}

/* ---- msgpack -> JSON --------------------------------------------------- */

static msgpack_object unpack(struct mp_out *o, msgpack_zone *z)
{
	msgpack_object obj;
	size_t used;
	struct ing_error e;
	assert_int_equal(mp_out_failed(o), 0);
	assert_int_equal(mp_parse(o->data, o->len, z, &obj, &used, &e), 0);
	return obj;
}

static void test_mp_to_json(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	msgpack_packer *pk = &o.pk;
	msgpack_pack_map(pk, 10);
	mp_pack_cstr(pk, "u");
	msgpack_pack_uint64(pk, 18446744073709551ull);
	mp_pack_cstr(pk, "i");
	msgpack_pack_int64(pk, -2);
	mp_pack_cstr(pk, "t");
	msgpack_pack_true(pk);
	mp_pack_cstr(pk, "n");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "s");
	msgpack_pack_str_with_body(pk, "h\xffi\"", 4); /* invalid UTF-8, a quote */
	mp_pack_cstr(pk, "b");
	mp_pack_bin(pk, "\x00\x01\x02\xff", 4);
	mp_pack_cstr(pk, "a");
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, 1);
	mp_pack_cstr(pk, "x");
	mp_pack_cstr(pk, "m");
	msgpack_pack_map(pk, 1);
	mp_pack_cstr(pk, "f");
	msgpack_pack_double(pk, 1.5);
	msgpack_pack_uint64(pk, 7);
	mp_pack_cstr(pk, "int key");
	mp_pack_cstr(pk, "e");
	msgpack_pack_array(pk, 0);
	msgpack_object obj = unpack(&o, &z);
	json_t *j = rpc_mp_to_json(&obj);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(s, "{\"u\":18446744073709551,\"i\":-2,\"t\":true,\"n\":null,"
	                       "\"s\":\"h\xef\xbf\xbdi\\\"\",\"b\":\"AAEC/w==\",\"a\":[1,\"x\"],"
	                       "\"m\":{\"f\":1.5},\"7\":\"int key\",\"e\":[]}");
	free(s);
	json_decref(j);

	/* Pretty printing of one document. */
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	mp_out_reset(&o);
	msgpack_pack_map(pk, 2);
	mp_pack_cstr(pk, "id");
	msgpack_pack_uint64(pk, 42);
	mp_pack_cstr(pk, "node");
	msgpack_pack_nil(pk);
	obj = unpack(&o, &z);
	assert_int_equal(cli_print_json(f, &obj, false), 0);
	fclose(f);
	assert_string_equal(buf, "{\n  \"id\": 42,\n  \"node\": null\n}\n");
	free(buf);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
}

/* ---- tables ------------------------------------------------------------ */

/* 2026-11-22 14:03:07 UTC */
#define T0 1795356187000ull

static void pack_job(msgpack_packer *pk, uint64_t id, const char *state, bool full)
{
	msgpack_pack_map(pk, full ? 19 : 16);
	mp_pack_cstr(pk, "id");
	msgpack_pack_uint64(pk, id);
	mp_pack_cstr(pk, "gpus");
	if (strcmp(state, "queued") == 0) {
		msgpack_pack_array(pk, 0);
	} else {
		msgpack_pack_array(pk, 2);
		msgpack_pack_uint64(pk, 1);
		msgpack_pack_uint64(pk, 3);
	}
	mp_pack_cstr(pk, "target");
	mp_pack_cstr(pk, "x86_64-cc");
	mp_pack_cstr(pk, "tenant");
	mp_pack_cstr(pk, "default");
	mp_pack_cstr(pk, "state");
	mp_pack_cstr(pk, state);
	mp_pack_cstr(pk, "attempt");
	msgpack_pack_uint64(pk, 1);
	mp_pack_cstr(pk, "max_attempts");
	msgpack_pack_uint64(pk, 3);
	mp_pack_cstr(pk, "node");
	if (strcmp(state, "queued") == 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, 2);
	mp_pack_cstr(pk, "priority");
	msgpack_pack_uint64(pk, 50);
	mp_pack_cstr(pk, "created_at");
	msgpack_pack_uint64(pk, T0);
	mp_pack_cstr(pk, "updated_at");
	msgpack_pack_uint64(pk, T0 + 1500);
	mp_pack_cstr(pk, "deadline_at");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "finished_at");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "cancel_requested");
	msgpack_pack_false(pk);
	mp_pack_cstr(pk, "error");
	mp_pack_cstr(pk, strcmp(state, "failed") == 0 ? "stage compile exited 1" : "");
	mp_pack_cstr(pk, "extra");
	mp_pack_cstr(pk, "tab\there\x1b[31m"); /* control characters from the wire */
	if (!full)
		return;
	mp_pack_cstr(pk, "params");
	msgpack_pack_map(pk, 2);
	mp_pack_cstr(pk, "GAIN");
	mp_pack_cstr(pk, "42");
	mp_pack_cstr(pk, "MODE");
	mp_pack_cstr(pk, "fast");
	mp_pack_cstr(pk, "sources");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 3);
	mp_pack_cstr(pk, "path");
	mp_pack_cstr(pk, "kernel.c");
	mp_pack_cstr(pk, "sha256");
	mp_pack_cstr(pk, "ab12");
	mp_pack_cstr(pk, "size");
	msgpack_pack_uint64(pk, 812);
	mp_pack_cstr(pk, "stages");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 7);
	mp_pack_cstr(pk, "index");
	msgpack_pack_uint64(pk, 0);
	mp_pack_cstr(pk, "state");
	mp_pack_cstr(pk, "done");
	mp_pack_cstr(pk, "exit_code");
	msgpack_pack_int64(pk, 0);
	mp_pack_cstr(pk, "started_at");
	msgpack_pack_uint64(pk, T0 + 100);
	mp_pack_cstr(pk, "duration_ms");
	msgpack_pack_uint64(pk, 1234);
	mp_pack_cstr(pk, "log_sha256");
	mp_pack_cstr(pk, "0123456789abcdef0123");
	mp_pack_cstr(pk, "outputs");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 3);
	mp_pack_cstr(pk, "path");
	mp_pack_cstr(pk, "kernel.o");
	mp_pack_cstr(pk, "sha256");
	mp_pack_cstr(pk, "cd34");
	mp_pack_cstr(pk, "size");
	msgpack_pack_uint64(pk, 1400);
}

static char *print_to_string(void (*fn)(FILE *, const msgpack_object *), const msgpack_object *o)
{
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fn(f, o);
	fclose(f);
	return buf;
}

static void test_table_job(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	pack_job(&o.pk, 12, "succeeded", true);
	msgpack_object job = unpack(&o, &z);
	char *s = print_to_string(cli_print_job, &job);
	assert_string_equal(s, "id:        12\n"
	                       "target:    x86_64-cc\n"
	                       "tenant:    default\n"
	                       "state:     succeeded\n"
	                       "attempt:   1/3\n"
	                       "node:      2\n"
	                       "gpus:      1,3\n"
	                       "priority:  50\n"
	                       "created:   2026-11-22 14:03:07\n"
	                       "updated:   2026-11-22 14:03:08\n"
	                       "deadline:  -\n"
	                       "finished:  -\n"
	                       "params:    GAIN=42,MODE=fast\n"
	                       "\n"
	                       "SOURCE    SIZE  SHA256\n"
	                       "kernel.c  812   ab12\n"
	                       "\n"
	                       "STAGE  STATE  EXIT  STARTED              DURATION  LOG           "
	                       "OUTPUTS\n"
	                       "0      done   0     2026-11-22 14:03:07  1.2s      0123456789ab  "
	                       "kernel.o\n");
	free(s);

	/* A list: aligned columns, nil node as "-". */
	struct mp_out o1, o2; /* parsed objects point into their buffers */
	mp_out_init(&o1);
	mp_out_init(&o2);
	pack_job(&o1.pk, 7, "queued", false);
	msgpack_object j1 = unpack(&o1, &z);
	pack_job(&o2.pk, 1234, "failed", false);
	msgpack_object j2 = unpack(&o2, &z);
	const msgpack_object *jobs[] = {&j1, &j2};
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_print_job_list(f, jobs, 2);
	fclose(f);
	assert_string_equal(buf,
	                    "ID    STATE   TARGET     TENANT   ATTEMPT  NODE  PRIORITY  CREATED\n"
	                    "7     queued  x86_64-cc  default  1/3      -     50        "
	                    "2026-11-22 14:03:07\n"
	                    "1234  failed  x86_64-cc  default  1/3      2     50        "
	                    "2026-11-22 14:03:07\n");
	free(buf);

	/* A failed job shows its error; a queued one no GPUs; a running one
	 * the GPUs it holds. */
	s = print_to_string(cli_print_job, &j2);
	assert_contains(s, "error:     stage compile exited 1\n");
	free(s);
	s = print_to_string(cli_print_job, &j1);
	assert_null(strstr(s, "gpus:"));
	free(s);
	struct mp_out o3;
	mp_out_init(&o3);
	pack_job(&o3.pk, 8, "running", false);
	msgpack_object j3 = unpack(&o3, &z);
	s = print_to_string(cli_print_job, &j3);
	assert_contains(s, "node:      2\ngpus:      1,3 (held)\n");
	free(s);
	mp_out_free(&o3);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
	mp_out_free(&o1);
	mp_out_free(&o2);
}

/* last_contact_ms: known only when has_leader (as if the leader answered):
 * 0 for the leader itself, 12 ms for member 1, 4.5 s for member 3. */
static void pack_member(msgpack_packer *pk, uint64_t id, bool leader, bool alive, bool has_leader)
{
	msgpack_pack_map(pk, 8);
	mp_pack_cstr(pk, "id");
	msgpack_pack_uint64(pk, id);
	mp_pack_cstr(pk, "role");
	mp_pack_cstr(pk, id == 3 ? "standby" : "voter");
	mp_pack_cstr(pk, "raft_address");
	char a[32];
	snprintf(a, sizeof(a), "127.0.0.1:750%u", (unsigned)id);
	mp_pack_cstr(pk, a);
	mp_pack_cstr(pk, "api_address");
	snprintf(a, sizeof(a), "127.0.0.1:740%u", (unsigned)id);
	mp_pack_cstr(pk, a);
	mp_pack_cstr(pk, "alive");
	if (alive)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	mp_pack_cstr(pk, "applied_index");
	if (alive)
		msgpack_pack_uint64(pk, 1200 + id);
	else
		msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "leader");
	if (leader)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	mp_pack_cstr(pk, "last_contact_ms");
	if (!has_leader)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, leader ? 0 : id == 1 ? 12 : 4500);
}

static void pack_status(msgpack_packer *pk, bool has_leader)
{
	msgpack_pack_map(pk, 4);
	mp_pack_cstr(pk, "leader");
	if (has_leader)
		msgpack_pack_uint64(pk, 2);
	else
		msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "term");
	msgpack_pack_uint64(pk, 7);
	mp_pack_cstr(pk, "node");
	msgpack_pack_uint64(pk, 1);
	mp_pack_cstr(pk, "members");
	msgpack_pack_array(pk, 3);
	pack_member(pk, 1, false, true, has_leader);
	pack_member(pk, 2, has_leader, true, has_leader);
	pack_member(pk, 3, false, false, has_leader);
}

static void test_table_status(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	pack_status(&o.pk, true);
	msgpack_object st = unpack(&o, &z);
	char *s = print_to_string(cli_print_status, &st);
	assert_string_equal(
	    s, "leader: 2  term: 7  answered by: 1\n\n"
	       "ID  ROLE     LEADER  ALIVE  APPLIED  RAFT ADDRESS    API ADDRESS\n"
	       "1   voter            yes    1201     127.0.0.1:7501  127.0.0.1:7401\n"
	       "2   voter    *       yes    1202     127.0.0.1:7502  127.0.0.1:7402\n"
	       "3   standby          no     -        127.0.0.1:7503  127.0.0.1:7403\n");
	free(s);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
}

static void test_table_events(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	msgpack_packer *pk = &o.pk;
	msgpack_pack_array(pk, 2);
	msgpack_pack_map(pk, 8);
	mp_pack_cstr(pk, "seq");
	msgpack_pack_uint64(pk, 1);
	mp_pack_cstr(pk, "time");
	msgpack_pack_uint64(pk, T0);
	mp_pack_cstr(pk, "kind");
	mp_pack_cstr(pk, "submitted");
	mp_pack_cstr(pk, "state");
	mp_pack_cstr(pk, "queued");
	mp_pack_cstr(pk, "attempt");
	msgpack_pack_uint64(pk, 0);
	mp_pack_cstr(pk, "node");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "stage");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "message");
	mp_pack_cstr(pk, "");
	msgpack_pack_map(pk, 9);
	mp_pack_cstr(pk, "seq");
	msgpack_pack_uint64(pk, 4);
	mp_pack_cstr(pk, "time");
	msgpack_pack_uint64(pk, T0 + 2000);
	mp_pack_cstr(pk, "kind");
	mp_pack_cstr(pk, "stage_finished");
	mp_pack_cstr(pk, "state");
	mp_pack_cstr(pk, "running");
	mp_pack_cstr(pk, "attempt");
	msgpack_pack_uint64(pk, 1);
	mp_pack_cstr(pk, "node");
	msgpack_pack_uint64(pk, 2);
	mp_pack_cstr(pk, "stage");
	msgpack_pack_int64(pk, 0);
	mp_pack_cstr(pk, "exit_code");
	msgpack_pack_int64(pk, -9);
	mp_pack_cstr(pk, "message");
	mp_pack_cstr(pk, "killed\n(timeout)");
	msgpack_object evs = unpack(&o, &z);
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_print_event_header(f);
	for (uint32_t i = 0; i < evs.via.array.size; i++)
		cli_print_event_line(f, &evs.via.array.ptr[i]);
	fclose(f);
	assert_string_equal(buf, "TIME                 KIND              STATE      ATTEMPT  NODE  "
	                         "STAGE  EXIT  MESSAGE\n"
	                         "2026-11-22 14:03:07  submitted         queued           0     - "
	                         "     -     -  \n"
	                         "2026-11-22 14:03:09  stage_finished    running          1     2 "
	                         "     0    -9  killed?(timeout)\n");
	free(buf);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
}

/* Node 1 offers GPUs 0 (held by job 7) and 1 (free), and still holds GPU 4
 * it no longer offers (job 9); node 2 offers GPU 0, free; the others none. */
static void pack_gpu(msgpack_packer *pk, uint64_t index, bool offered, uint64_t job)
{
	msgpack_pack_map(pk, 5);
	mp_pack_cstr(pk, "index");
	msgpack_pack_uint64(pk, index);
	mp_pack_cstr(pk, "uuid");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "memory_bytes");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "offered");
	if (offered)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	mp_pack_cstr(pk, "job");
	if (job != 0)
		msgpack_pack_uint64(pk, job);
	else
		msgpack_pack_nil(pk);
}

static void pack_node(msgpack_packer *pk, uint64_t id, bool draining, uint64_t deadline, bool down)
{
	msgpack_pack_map(pk, 11);
	mp_pack_cstr(pk, "gpus");
	msgpack_pack_array(pk, id == 1 ? 3 : id == 2 ? 1 : 0);
	if (id == 1) {
		pack_gpu(pk, 0, true, 7);
		pack_gpu(pk, 1, true, 0);
		pack_gpu(pk, 4, false, 9);
	} else if (id == 2) {
		pack_gpu(pk, 0, true, 0);
	}
	mp_pack_cstr(pk, "id");
	msgpack_pack_uint64(pk, id);
	mp_pack_cstr(pk, "capabilities");
	msgpack_pack_array(pk, id == 1 ? 2 : 0);
	if (id == 1) {
		mp_pack_cstr(pk, "cc");
		mp_pack_cstr(pk, "avx2");
	}
	mp_pack_cstr(pk, "labels");
	msgpack_pack_map(pk, id == 1 ? 2 : 0);
	if (id == 1) {
		mp_pack_cstr(pk, "arch");
		mp_pack_cstr(pk, "x86_64");
		mp_pack_cstr(pk, "rack");
		mp_pack_cstr(pk, "r\x1b"
		                 "1");
	}
	mp_pack_cstr(pk, "slots");
	msgpack_pack_uint64(pk, 4);
	mp_pack_cstr(pk, "used_slots");
	msgpack_pack_uint64(pk, id == 1 ? 3 : 0);
	mp_pack_cstr(pk, "draining");
	if (draining)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	mp_pack_cstr(pk, "drain_deadline");
	if (deadline != 0)
		msgpack_pack_uint64(pk, deadline);
	else
		msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "down");
	if (down)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	mp_pack_cstr(pk, "registered_at");
	msgpack_pack_uint64(pk, T0);
	mp_pack_cstr(pk, "updated_at");
	msgpack_pack_uint64(pk, T0);
}

static void pack_nodes(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 5);
	pack_node(pk, 1, false, 0, false);
	pack_node(pk, 2, true, 0, false);
	pack_node(pk, 3, true, T0 + 300000, false);
	pack_node(pk, 4, false, 0, true);
	pack_node(pk, 15, true, 0, true);
}

static void test_table_nodes(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	pack_nodes(&o.pk);
	msgpack_object nodes = unpack(&o, &z);
	char *s = print_to_string(cli_print_node_list, &nodes);
	assert_string_equal(
	    s,
	    "ID  SLOTS  GPUS                    STATE                               CAPABILITIES  "
	    "LABELS\n"
	    "1   3/4    2/2 (0:job 7, 4:job 9)  up                                  cc,avx2       "
	    "arch=x86_64,rack=r?1\n"
	    "2   0/4    0/1                     draining                            -             "
	    "-\n"
	    "3   0/4    -                       draining until 2026-11-22 14:08:07  -             "
	    "-\n"
	    "4   0/4    -                       down                                -             "
	    "-\n"
	    "15  0/4    -                       down,draining                       -             "
	    "-\n");
	free(s);
	/* Not an array, or fields missing: a header and "-". */
	msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
	s = print_to_string(cli_print_node_list, &nil);
	assert_string_equal(s, "ID  SLOTS  GPUS  STATE  CAPABILITIES  LABELS\n");
	free(s);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
}

static char *print_members(const msgpack_object *status, const msgpack_object *nodes)
{
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_print_member_list(f, status, nodes);
	fclose(f);
	return buf;
}

static char *members_json(const msgpack_object *status, const msgpack_object *nodes)
{
	json_t *j = cli_member_list_json(status, nodes);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s;
}

static void test_table_members(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	/* Members 1, 2 (leader, applied 1202), 3 (applied unknown); nodes 1 and
	 * 2 (draining) registered as workers, 3 not. */
	struct mp_out n;
	mp_out_init(&n);
	pack_status(&o.pk, true);
	msgpack_pack_array(&n.pk, 2);
	pack_node(&n.pk, 1, false, 0, false);
	pack_node(&n.pk, 2, true, 0, true);
	msgpack_object st = unpack(&o, &z), nodes = unpack(&n, &z);
	char *s = print_members(&st, &nodes);
	assert_string_equal(s, "ID  ROLE     LEADER  ALIVE  CONTACT  APPLIED  BEHIND  DRAIN  "
	                       "RAFT ADDRESS    API ADDRESS\n"
	                       "1   voter            yes    12ms     1201     1       no     "
	                       "127.0.0.1:7501  127.0.0.1:7401\n"
	                       "2   voter    *       yes    0ms      1202     0       yes    "
	                       "127.0.0.1:7502  127.0.0.1:7402\n"
	                       "3   standby          no     4.5s     -        -       -      "
	                       "127.0.0.1:7503  127.0.0.1:7403\n");
	free(s);
	s = members_json(&st, &nodes);
	assert_string_equal(
	    s, "[{\"id\":1,\"role\":\"voter\",\"leader\":false,\"alive\":true,"
	       "\"last_contact_ms\":12,\"applied_index\":1201,\"behind\":1,\"draining\":false,"
	       "\"raft_address\":\"127.0.0.1:7501\",\"api_address\":\"127.0.0.1:7401\"},"
	       "{\"id\":2,\"role\":\"voter\",\"leader\":true,\"alive\":true,"
	       "\"last_contact_ms\":0,\"applied_index\":1202,\"behind\":0,\"draining\":true,"
	       "\"raft_address\":\"127.0.0.1:7502\",\"api_address\":\"127.0.0.1:7402\"},"
	       "{\"id\":3,\"role\":\"standby\",\"leader\":false,\"alive\":false,"
	       "\"last_contact_ms\":4500,\"applied_index\":null,\"behind\":null,"
	       "\"draining\":null,"
	       "\"raft_address\":\"127.0.0.1:7503\",\"api_address\":\"127.0.0.1:7403\"}]");
	free(s);
	mp_out_free(&n);
	mp_out_free(&o);

	/* No leader: BEHIND unknown everywhere; node.list not an array: DRAIN
	 * unknown. */
	mp_out_init(&o);
	pack_status(&o.pk, false);
	st = unpack(&o, &z);
	msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
	s = print_members(&st, &nil);
	assert_string_equal(s, "ID  ROLE     LEADER  ALIVE  CONTACT  APPLIED  BEHIND  DRAIN  "
	                       "RAFT ADDRESS    API ADDRESS\n"
	                       "1   voter            yes    -        1201     -       -      "
	                       "127.0.0.1:7501  127.0.0.1:7401\n"
	                       "2   voter            yes    -        1202     -       -      "
	                       "127.0.0.1:7502  127.0.0.1:7402\n"
	                       "3   standby          no     -        -        -       -      "
	                       "127.0.0.1:7503  127.0.0.1:7403\n");
	free(s);
	s = members_json(&st, &nil);
	assert_contains(s, "\"alive\":true,\"last_contact_ms\":null,\"applied_index\":1201,");
	free(s);
	/* Not a status at all: a header, an empty array. */
	s = print_members(&nil, &nil);
	assert_string_equal(s, "ID  ROLE  LEADER  ALIVE  CONTACT  APPLIED  BEHIND  DRAIN  "
	                       "RAFT ADDRESS  API ADDRESS\n");
	free(s);
	s = members_json(&nil, NULL);
	assert_string_equal(s, "[]");
	free(s);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
}

/* A membership change's reply: {id, role (nil: removed), steps, elapsed_ms}. */
static void pack_change(msgpack_packer *pk, uint64_t id, const char *role, const char *const *steps,
                        unsigned nsteps, uint64_t elapsed_ms)
{
	msgpack_pack_map(pk, 4);
	mp_pack_cstr(pk, "id");
	msgpack_pack_uint64(pk, id);
	mp_pack_cstr(pk, "role");
	if (role != NULL)
		mp_pack_cstr(pk, role);
	else
		msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "steps");
	msgpack_pack_array(pk, nsteps);
	for (unsigned i = 0; i < nsteps; i++)
		mp_pack_cstr(pk, steps[i]);
	mp_pack_cstr(pk, "elapsed_ms");
	msgpack_pack_uint64(pk, elapsed_ms);
}

static void pack_transfer(msgpack_packer *pk, uint64_t leader, uint64_t previous, uint64_t attempts,
                          uint64_t elapsed_ms)
{
	msgpack_pack_map(pk, 4);
	mp_pack_cstr(pk, "leader");
	msgpack_pack_uint64(pk, leader);
	mp_pack_cstr(pk, "previous");
	msgpack_pack_uint64(pk, previous);
	mp_pack_cstr(pk, "attempts");
	msgpack_pack_uint64(pk, attempts);
	mp_pack_cstr(pk, "elapsed_ms");
	msgpack_pack_uint64(pk, elapsed_ms);
}

static const char *const ADD_STEPS[] = {
    "recorded member 4 (raft 127.0.0.1:7504, api 127.0.0.1:7404)", "added 4 as spare",
    "assigned 4 the standby role", "4 caught up: 812 entries in 240 ms",
    "assigned 4 the voter role"};

static void test_table_member_change(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);

	/* add: every step on its own line, then the summary. */
	mp_out_init(&o);
	pack_change(&o.pk, 4, "voter", ADD_STEPS, 5, 1234);
	msgpack_object r = unpack(&o, &z);
	char *s = print_to_string(cli_print_member_change, &r);
	assert_string_equal(s, "  - recorded member 4 (raft 127.0.0.1:7504, api 127.0.0.1:7404)\n"
	                       "  - added 4 as spare\n"
	                       "  - assigned 4 the standby role\n"
	                       "  - 4 caught up: 812 entries in 240 ms\n"
	                       "  - assigned 4 the voter role\n"
	                       "member 4 is now a voter (1234 ms)\n");
	free(s);
	mp_out_free(&o);

	/* demote to spare; a control character in a step is not passed on. */
	static const char *const demote_steps[] = {"assigned 3 the spare\x1b[2J role"};
	mp_out_init(&o);
	pack_change(&o.pk, 3, "spare", demote_steps, 1, 15);
	r = unpack(&o, &z);
	s = print_to_string(cli_print_member_change, &r);
	assert_string_equal(s, "  - assigned 3 the spare?[2J role\n"
	                       "member 3 is now a spare (15 ms)\n");
	free(s);
	mp_out_free(&o);

	/* remove: role nil. */
	static const char *const remove_steps[] = {"removed 2 from the configuration"};
	mp_out_init(&o);
	pack_change(&o.pk, 2, NULL, remove_steps, 1, 40);
	r = unpack(&o, &z);
	s = print_to_string(cli_print_member_change, &r);
	assert_string_equal(s, "  - removed 2 from the configuration\n"
	                       "member 2 removed (40 ms)\n");
	free(s);
	mp_out_free(&o);

	/* No steps (a repeat that found the change done), no elapsed_ms; or
	 * not a change at all: the summary with "-". */
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 2);
	mp_pack_cstr(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, 4);
	mp_pack_cstr(&o.pk, "role");
	mp_pack_cstr(&o.pk, "standby");
	r = unpack(&o, &z);
	s = print_to_string(cli_print_member_change, &r);
	assert_string_equal(s, "member 4 is now a standby\n");
	free(s);
	mp_out_free(&o);
	msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
	s = print_to_string(cli_print_member_change, &nil);
	assert_string_equal(s, "member - removed\n");
	free(s);

	/* transfer-leadership */
	mp_out_init(&o);
	pack_transfer(&o.pk, 3, 1, 2, 830);
	r = unpack(&o, &z);
	s = print_to_string(cli_print_transfer, &r);
	assert_string_equal(s, "leadership moved from node 1 to node 3 (2 attempts, 830 ms)\n");
	free(s);
	mp_out_free(&o);
	mp_out_init(&o);
	pack_transfer(&o.pk, 2, 1, 1, 212);
	r = unpack(&o, &z);
	s = print_to_string(cli_print_transfer, &r);
	assert_string_equal(s, "leadership moved from node 1 to node 2 (1 attempt, 212 ms)\n");
	free(s);
	mp_out_free(&o);
	mp_out_init(&o);
	pack_transfer(&o.pk, 2, 2, 0, 0);
	r = unpack(&o, &z);
	s = print_to_string(cli_print_transfer, &r);
	assert_string_equal(s, "node 2 was already the leader (0 attempts, 0 ms)\n");
	free(s);
	mp_out_free(&o);
	s = print_to_string(cli_print_transfer, &nil);
	assert_string_equal(s, "leadership moved from node - to node - (- attempts, - ms)\n");
	free(s);
	msgpack_zone_destroy(&z);
}

static void pack_cluster_event(msgpack_packer *pk, uint64_t seq, const char *kind, uint64_t member,
                               const char *message)
{
	msgpack_pack_map(pk, 5);
	mp_pack_cstr(pk, "seq");
	msgpack_pack_uint64(pk, seq);
	mp_pack_cstr(pk, "time_ms");
	msgpack_pack_uint64(pk, T0 + seq * 1000);
	mp_pack_cstr(pk, "kind");
	mp_pack_cstr(pk, kind);
	mp_pack_cstr(pk, "member");
	if (member != 0)
		msgpack_pack_uint64(pk, member);
	else
		msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "message");
	mp_pack_cstr(pk, message);
}

/* A cluster.events page of seqs first..first+n-1; next as given (0: nil). */
static void pack_cluster_events(msgpack_packer *pk, uint64_t first, unsigned n, uint64_t next)
{
	static const struct {
		const char *kind;
		uint64_t member;
		const char *message;
	} evs[] = {
	    {"cluster_created", 0, "cluster 5f0c created by node 1"},
	    {"member_added", 4, "added 4 (raft 127.0.0.1:7504, api 127.0.0.1:7404) as voter"},
	    {"leadership_transferred", 3, "leadership moved from 1 to 3\x07"},
	    {"voter_replaced", 2, "voter 2 down for 30 s: standby 5 promoted"},
	};
	msgpack_pack_map(pk, 2);
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, n);
	for (unsigned i = 0; i < n; i++) {
		unsigned k = (unsigned)((first - 1 + i) % 4);
		pack_cluster_event(pk, first + i, evs[k].kind, evs[k].member, evs[k].message);
	}
	mp_pack_cstr(pk, "next");
	if (next != 0)
		msgpack_pack_uint64(pk, next);
	else
		msgpack_pack_nil(pk);
}

static void test_table_cluster_events(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	pack_cluster_events(&o.pk, 1, 4, 0);
	msgpack_object page = unpack(&o, &z);
	char *s = print_to_string(cli_print_cluster_events, &page);
	assert_string_equal(s, "SEQ  TIME                 KIND                    MEMBER  MESSAGE\n"
	                       "1    2026-11-22 14:03:08  cluster_created         -       cluster "
	                       "5f0c created by node 1\n"
	                       "2    2026-11-22 14:03:09  member_added            4       added 4 "
	                       "(raft 127.0.0.1:7504, api 127.0.0.1:7404) as voter\n"
	                       "3    2026-11-22 14:03:10  leadership_transferred  3       "
	                       "leadership moved from 1 to 3?\n"
	                       "4    2026-11-22 14:03:11  voter_replaced          2       voter 2 "
	                       "down for 30 s: standby 5 promoted\n");
	free(s);
	/* No events, or not a page: the header alone. */
	mp_out_reset(&o);
	pack_cluster_events(&o.pk, 1, 0, 0);
	page = unpack(&o, &z);
	s = print_to_string(cli_print_cluster_events, &page);
	assert_string_equal(s, "SEQ  TIME  KIND  MEMBER  MESSAGE\n");
	free(s);
	msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
	s = print_to_string(cli_print_cluster_events, &nil);
	assert_string_equal(s, "SEQ  TIME  KIND  MEMBER  MESSAGE\n");
	free(s);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
}

static void pack_stage(msgpack_packer *pk, uint64_t index, const char *state, int64_t exit_code,
                       uint64_t duration_ms, const char *log_sha, const char *out_path,
                       const char *out_sha, uint64_t out_size)
{
	msgpack_pack_map(pk, 7);
	mp_pack_cstr(pk, "index");
	msgpack_pack_uint64(pk, index);
	mp_pack_cstr(pk, "state");
	mp_pack_cstr(pk, state);
	mp_pack_cstr(pk, "exit_code");
	msgpack_pack_int64(pk, exit_code);
	mp_pack_cstr(pk, "started_at");
	msgpack_pack_uint64(pk, T0 + 100);
	mp_pack_cstr(pk, "duration_ms");
	msgpack_pack_uint64(pk, duration_ms);
	mp_pack_cstr(pk, "log_sha256");
	if (log_sha != NULL)
		mp_pack_cstr(pk, log_sha);
	else
		msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "outputs");
	msgpack_pack_array(pk, out_path != NULL ? 1 : 0);
	if (out_path != NULL) {
		msgpack_pack_map(pk, 3);
		mp_pack_cstr(pk, "path");
		mp_pack_cstr(pk, out_path);
		mp_pack_cstr(pk, "sha256");
		mp_pack_cstr(pk, out_sha);
		mp_pack_cstr(pk, "size");
		msgpack_pack_uint64(pk, out_size);
	}
}

static void test_stage_header_and_job_waiting(void **state)
{
	(void)state;
	struct mp_out o;
	msgpack_zone z;
	char buf[128];
	mp_out_init(&o);
	msgpack_zone_init(&z, 1024);
	msgpack_pack_array(&o.pk, 4);
	pack_stage(&o.pk, 0, "done", 0, 1234, "ab", NULL, NULL, 0);
	pack_stage(&o.pk, 1, "done", -9, 125000, NULL, NULL, NULL, 0);
	pack_stage(&o.pk, 2, "running", 0, 0, NULL, NULL, NULL, 0);
	pack_stage(&o.pk, 3, "done", 2, 450, "cd", NULL, NULL, 0);
	msgpack_object st = unpack(&o, &z);
	cli_format_stage_header(&st.via.array.ptr[0], buf, sizeof(buf));
	assert_string_equal(buf, "== stage 0 (exit 0, 1.2s)\n");
	cli_format_stage_header(&st.via.array.ptr[1], buf, sizeof(buf));
	assert_string_equal(buf, "== stage 1 (exit -9, 2m05s; no log)\n");
	cli_format_stage_header(&st.via.array.ptr[2], buf, sizeof(buf));
	assert_string_equal(buf, "== stage 2 (running)\n");
	cli_format_stage_header(&st.via.array.ptr[3], buf, sizeof(buf));
	assert_string_equal(buf, "== stage 3 (exit 2, 450ms)\n");
	msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
	cli_format_stage_header(&nil, buf, sizeof(buf));
	assert_string_equal(buf, "== stage - (exit -, -; no log)\n");

	/* job get: the waiting reason under the state; a running stage has no
	 * exit status or duration yet. */
	mp_out_reset(&o);
	msgpack_pack_map(&o.pk, 4);
	mp_pack_cstr(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, 8);
	mp_pack_cstr(&o.pk, "state");
	mp_pack_cstr(&o.pk, "queued");
	mp_pack_cstr(&o.pk, "waiting");
	mp_pack_cstr(&o.pk, "all 2 nodes that can run target 'cc' are busy");
	mp_pack_cstr(&o.pk, "stages");
	msgpack_pack_array(&o.pk, 2);
	pack_stage(&o.pk, 0, "done", 0, 80, NULL, "k.o", "ee", 3);
	pack_stage(&o.pk, 1, "running", 0, 0, NULL, NULL, NULL, 0);
	msgpack_object job = unpack(&o, &z);
	char *s = print_to_string(cli_print_job, &job);
	assert_string_equal(s, "id:        8\n"
	                       "target:    -\n"
	                       "tenant:    -\n"
	                       "state:     queued\n"
	                       "waiting:   all 2 nodes that can run target 'cc' are busy\n"
	                       "attempt:   -\n"
	                       "node:      -\n"
	                       "priority:  -\n"
	                       "created:   -\n"
	                       "updated:   -\n"
	                       "deadline:  -\n"
	                       "finished:  -\n"
	                       "\n"
	                       "STAGE  STATE    EXIT  STARTED              DURATION  LOG  OUTPUTS\n"
	                       "0      done     0     2026-11-22 14:03:07  80ms      -    k.o\n"
	                       "1      running  -     2026-11-22 14:03:07  -         -    -\n");
	free(s);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
}

static void test_output_dest(void **state)
{
	(void)state;
	char buf[64];
	struct ing_error e;
	assert_int_equal(cli_output_dest("out", 0, "kernel.o", 8, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, "out/0-kernel.o");
	assert_int_equal(cli_output_dest("out//", 12, "a/b.txt", 7, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, "out/12-a/b.txt");
	assert_int_equal(cli_output_dest("/", 1, "x", 1, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, "//1-x");
	/* Only path_len bytes count. */
	assert_int_equal(cli_output_dest("d", 1, "abc", 2, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, "d/1-ab");
	static const char *const bad[] = {"",     "/etc/passwd", "..",   "../x", "a/../b",
	                                  "a/..", "./a",         "a//b", "a/",   "a\nb"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ing_error_clear(&e);
		int rv = cli_output_dest("out", 0, bad[i], strlen(bad[i]), buf, sizeof(buf), &e);
		if (rv != ING_EMALFORMED)
			fail_msg("'%s': rv %d", bad[i], rv);
		assert_contains(e.msg, "stage 0");
	}
	char longp[80];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(cli_output_dest("out", 0, longp, strlen(longp), buf, sizeof(buf), &e),
	                 ING_EINVAL);
	assert_contains(e.msg, "too long");
}

/* ---- the network: a closed port ---------------------------------------- */

static void test_closed_port_exit_3(void **state)
{
	(void)state;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	struct run r = run_words("status", "--endpoints", "127.0.0.1:1", "--timeout", "1s", NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(r.code, CLI_EXIT_UNREACHABLE);
	assert_string_equal(r.out, "");
	assert_contains(r.err, "ingotctl: unavailable: ");
	assert_contains(r.err, "127.0.0.1:1");
	assert_contains(r.err, "--endpoints");
	assert_contains(r.err, "INGOT_ENDPOINTS");
	assert_true(b.tv_sec - a.tv_sec < 5);
	run_free(&r);
}

/* ---- whole runs against a fake server ---------------------------------- */

struct fake {
	uv_loop_t loop;
	uv_async_t stop;
	struct rpc_server *srv;
	pthread_t thread;
	char port[16];
	/* the last request */
	char op[64];
	char request_id[80];
	struct mp_out args;
	int calls;
	const char *watch_final; /* state the watched job ends in */
	int watch_unavailable;   /* answer this many watches "unavailable" */
	bool hang;               /* never answer "status" (until abandoned) */
	bool corrupt;            /* artifact.get answers other bytes */
	struct ing_tls *tls;     /* fake_setup_tls: the server's TLS */
	char pki[256];           /* fake_setup_tls: its PKI directory */
};

/* Job 77 (logs, fetch): attempt 2; stage 0 done with a log and a binary
 * output in a subdirectory, stage 1 done (exit 3) with a log without a final
 * newline and an output, stage 2 running.  Job 79: only a running stage.
 * Job 78: an output path with "..". */
#define LOG0 "compiling\n"
#define LOG1 "no newline"
#define OUT0            \
	"OBJ\0\x01\xff" \
	"bytes"
#define OUT1 "report\n"

static void sha_hex(const char *p, size_t n, char hex[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)p, n, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void pack_logs_job(msgpack_packer *pk, uint64_t id, const char *state)
{
	char l0[65], l1[65], o0[65], o1[65];
	sha_hex(LOG0, sizeof(LOG0) - 1, l0);
	sha_hex(LOG1, sizeof(LOG1) - 1, l1);
	sha_hex(OUT0, sizeof(OUT0) - 1, o0);
	sha_hex(OUT1, sizeof(OUT1) - 1, o1);
	msgpack_pack_map(pk, 6);
	mp_pack_cstr(pk, "id");
	msgpack_pack_uint64(pk, id);
	mp_pack_cstr(pk, "target");
	mp_pack_cstr(pk, "cc");
	mp_pack_cstr(pk, "state");
	mp_pack_cstr(pk, state);
	mp_pack_cstr(pk, "attempt");
	msgpack_pack_uint64(pk, 2);
	mp_pack_cstr(pk, "waiting");
	msgpack_pack_nil(pk);
	mp_pack_cstr(pk, "stages");
	if (id == 79) {
		msgpack_pack_array(pk, 1);
		pack_stage(pk, 0, "running", 0, 0, NULL, NULL, NULL, 0);
		return;
	}
	if (id == 78) {
		msgpack_pack_array(pk, 2);
		pack_stage(pk, 0, "done", 0, 1, NULL, "k.o", o0, sizeof(OUT0) - 1);
		pack_stage(pk, 1, "done", 0, 1, NULL, "../evil", o1, sizeof(OUT1) - 1);
		return;
	}
	msgpack_pack_array(pk, 3);
	pack_stage(pk, 0, "done", 0, 1234, l0, "obj/k.o", o0, sizeof(OUT0) - 1);
	pack_stage(pk, 1, "done", 3, 80, l1, "r.txt", o1, sizeof(OUT1) - 1);
	pack_stage(pk, 2, "running", 0, 0, NULL, NULL, NULL, 0);
}

static void pack_stage_event(msgpack_packer *pk, uint64_t seq, uint64_t attempt, uint64_t stage)
{
	msgpack_pack_map(pk, 5);
	mp_pack_cstr(pk, "seq");
	msgpack_pack_uint64(pk, seq);
	mp_pack_cstr(pk, "kind");
	mp_pack_cstr(pk, "stage_finished");
	mp_pack_cstr(pk, "attempt");
	msgpack_pack_uint64(pk, attempt);
	mp_pack_cstr(pk, "stage");
	msgpack_pack_uint64(pk, stage);
	mp_pack_cstr(pk, "exit_code");
	msgpack_pack_int64(pk, 0);
}

static void reply_when_abandoned(struct rpc_call *c, void *data)
{
	(void)data;
	rpc_reply(c, NULL, 0);
}

static void reply_obj(struct rpc_call *c, struct mp_out *o)
{
	assert_int_equal(mp_out_failed(o), 0);
	rpc_reply(c, o->data, o->len);
	mp_out_free(o);
}

static void pack_event(msgpack_packer *pk, uint64_t seq, const char *kind, const char *state)
{
	msgpack_pack_map(pk, 5);
	mp_pack_cstr(pk, "seq");
	msgpack_pack_uint64(pk, seq);
	mp_pack_cstr(pk, "time");
	msgpack_pack_uint64(pk, T0 + seq * 1000);
	mp_pack_cstr(pk, "kind");
	mp_pack_cstr(pk, kind);
	mp_pack_cstr(pk, "state");
	mp_pack_cstr(pk, state);
	mp_pack_cstr(pk, "message");
	mp_pack_cstr(pk, "");
}

static void fake_handler(void *data, struct rpc_call *c)
{
	struct fake *f = data;
	struct ing_str op = rpc_call_op(c);
	struct ing_str rid = rpc_call_request_id(c);
	snprintf(f->op, sizeof(f->op), "%.*s", ING_STR_FMT(op));
	snprintf(f->request_id, sizeof(f->request_id), "%.*s", ING_STR_FMT(rid));
	mp_out_reset(&f->args);
	msgpack_pack_object(&f->args.pk, *rpc_call_args(c));
	f->calls++;
	const msgpack_object *args = rpc_call_args(c);
	const msgpack_object *id = cli_mp_get(args, "id");
	struct mp_out o;
	mp_out_init(&o);
	if (strcmp(f->op, "status") == 0 && f->hang) {
		mp_out_free(&o);
		assert_int_equal(rpc_call_on_abandon(c, reply_when_abandoned, NULL), 0);
		return;
	} else if (strcmp(f->op, "status") == 0) {
		pack_status(&o.pk, false);
	} else if (strcmp(f->op, "job.submit") == 0) {
		msgpack_pack_map(&o.pk, 1);
		mp_pack_cstr(&o.pk, "id");
		msgpack_pack_uint64(&o.pk, 42);
	} else if (strcmp(f->op, "job.get") == 0 && id != NULL &&
	           (id->via.u64 >= 77 && id->via.u64 <= 79)) {
		pack_logs_job(&o.pk, id->via.u64, "running");
	} else if (strcmp(f->op, "artifact.get") == 0) {
		static const char *const blobs[] = {LOG0, LOG1, OUT0, OUT1};
		static const size_t lens[] = {sizeof(LOG0) - 1, sizeof(LOG1) - 1, sizeof(OUT0) - 1,
		                              sizeof(OUT1) - 1};
		const msgpack_object *sha = cli_mp_get(args, "sha256");
		size_t i;
		for (i = 0; i < 4; i++) {
			char hex[65];
			sha_hex(blobs[i], lens[i], hex);
			if (sha != NULL && sha->type == MSGPACK_OBJECT_STR &&
			    sha->via.str.size == 64 && memcmp(sha->via.str.ptr, hex, 64) == 0)
				break;
		}
		if (i == 4) {
			mp_out_free(&o);
			rpc_reply_error(c, ING_ENOTFOUND, "artifact does not exist");
			return;
		}
		if (f->corrupt)
			mp_pack_bin(&o.pk, "tampered", lens[i] < 8 ? lens[i] : 8);
		else
			mp_pack_bin(&o.pk, blobs[i], lens[i]);
	} else if (strcmp(f->op, "target.get") == 0) {
		msgpack_pack_map(&o.pk, 2);
		mp_pack_cstr(&o.pk, "name");
		mp_pack_cstr(&o.pk, "cc");
		mp_pack_cstr(&o.pk, "stages");
		msgpack_pack_array(&o.pk, 3);
		static const char *const names[] = {"compile", "report", "listing"};
		for (int i = 0; i < 3; i++) {
			msgpack_pack_map(&o.pk, 1);
			mp_pack_cstr(&o.pk, "name");
			mp_pack_cstr(&o.pk, names[i]);
		}
	} else if (strcmp(f->op, "node.list") == 0) {
		pack_nodes(&o.pk);
	} else if (strcmp(f->op, "node.drain") == 0 || strcmp(f->op, "node.undrain") == 0) {
		if (id != NULL && id->via.u64 == 99) {
			mp_out_free(&o);
			rpc_reply_error(c, ING_ENOTFOUND, "node 99 is not registered");
			return;
		}
		msgpack_pack_map(&o.pk, 0);
	} else if (strcmp(f->op, "job.watch") == 0 && id != NULL && id->via.u64 == 77) {
		/* an earlier attempt's stage, then the current attempt's two */
		struct mp_out ev;
		mp_out_init(&ev);
		pack_event(&ev.pk, 1, "submitted", "queued");
		assert_int_equal(rpc_push(c, ev.data, ev.len), 0);
		for (uint64_t i = 0; i < 3; i++) {
			mp_out_reset(&ev);
			pack_stage_event(&ev.pk, 2 + i, i == 0 ? 1 : 2, i == 0 ? 0 : i - 1);
			assert_int_equal(rpc_push(c, ev.data, ev.len), 0);
		}
		mp_out_reset(&ev);
		pack_event(&ev.pk, 5, f->watch_final, f->watch_final);
		assert_int_equal(rpc_push(c, ev.data, ev.len), 0);
		mp_out_free(&ev);
		pack_logs_job(&o.pk, 77, f->watch_final);
	} else if (strcmp(f->op, "job.get") == 0) {
		if (id != NULL && id->via.u64 == 404) {
			mp_out_free(&o);
			rpc_reply_error(c, ING_ENOTFOUND, "job 404 not found");
			return;
		}
		pack_job(&o.pk, id->via.u64, "running", true);
	} else if (strcmp(f->op, "job.list") == 0) {
		const msgpack_object *after = cli_mp_get(args, "after");
		bool first = after == NULL;
		msgpack_pack_map(&o.pk, 2);
		mp_pack_cstr(&o.pk, "jobs");
		msgpack_pack_array(&o.pk, first ? 2 : 1);
		pack_job(&o.pk, first ? 1 : 3, "queued", false);
		if (first)
			pack_job(&o.pk, 2, "running", false);
		mp_pack_cstr(&o.pk, "next");
		if (first)
			msgpack_pack_uint64(&o.pk, 2);
		else
			msgpack_pack_nil(&o.pk);
	} else if (strcmp(f->op, "job.watch") == 0) {
		struct mp_out ev;
		mp_out_init(&ev);
		pack_event(&ev.pk, 1, "submitted", "queued");
		assert_int_equal(rpc_push(c, ev.data, ev.len), 0);
		mp_out_reset(&ev);
		if (f->watch_unavailable > 0) {
			/* as a node that lost its leader mid-watch */
			f->watch_unavailable--;
			mp_out_free(&ev);
			mp_out_free(&o);
			rpc_reply_error(c, ING_EUNAVAILABLE, "no leader");
			return;
		}
		pack_event(&ev.pk, 2, f->watch_final, f->watch_final);
		assert_int_equal(rpc_push(c, ev.data, ev.len), 0);
		mp_out_free(&ev);
		pack_job(&o.pk, id->via.u64, f->watch_final, false);
	} else if (strncmp(f->op, "member.", 7) == 0 && id != NULL && id->via.u64 == 99) {
		mp_out_free(&o);
		rpc_reply_error(c, ING_ECONFLICT,
		                "member 5 is being added: one membership change at a time");
		return;
	} else if (strncmp(f->op, "member.", 7) == 0 && id != NULL && id->via.u64 == 98) {
		mp_out_free(&o);
		rpc_reply_error(c, ING_ETIMEOUT,
		                "member 98 did not catch up within 30000 ms (12 of 812 entries); "
		                "removed it again");
		return;
	} else if (strcmp(f->op, "cluster.events") == 0) {
		/* 4 events; pages of --limit (default 100) after --after */
		const msgpack_object *after = cli_mp_get(args, "after");
		const msgpack_object *limit = cli_mp_get(args, "limit");
		uint64_t a = after != NULL ? after->via.u64 : 0;
		uint64_t l = limit != NULL ? limit->via.u64 : 100;
		uint64_t n = a >= 4 ? 0 : 4 - a < l ? 4 - a : l;
		pack_cluster_events(&o.pk, a + 1, (unsigned)n, a + n < 4 ? a + n : 0);
	} else if (strcmp(f->op, "settings.get") == 0) {
		msgpack_pack_map(&o.pk, 2);
		mp_pack_cstr(&o.pk, "job_retention_ms");
		msgpack_pack_uint64(&o.pk, 604800000);
		mp_pack_cstr(&o.pk, "dedupe_window_ms");
		msgpack_pack_uint64(&o.pk, 0);
	} else if (strcmp(f->op, "settings.set") == 0) {
		msgpack_pack_map(&o.pk, 0);
	} else if (strcmp(f->op, "member.transfer") == 0) {
		pack_transfer(&o.pk, id != NULL ? id->via.u64 : 3, 1, 1, 212);
	} else if (strncmp(f->op, "member.", 7) == 0 && id != NULL) {
		/* the role asked for, voter for promote, nil for remove */
		const msgpack_object *role = cli_mp_get(args, "role");
		char r[16] = "voter";
		if (role != NULL && role->type == MSGPACK_OBJECT_STR)
			snprintf(r, sizeof(r), "%.*s", (int)role->via.str.size, role->via.str.ptr);
		bool removed = strcmp(f->op, "member.remove") == 0;
		pack_change(&o.pk, id->via.u64, removed ? NULL : r, ADD_STEPS, removed ? 0 : 2,
		            1234);
	} else {
		mp_out_free(&o);
		rpc_reply_error(c, ING_EINVAL, "fake server: no op '%s'", f->op);
		return;
	}
	reply_obj(c, &o);
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	uv_run(&f->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void fake_stop_cb(uv_async_t *a)
{
	struct fake *f = a->data;
	rpc_server_close(f->srv, NULL, NULL);
	uv_close((uv_handle_t *)&f->stop, NULL);
}

static int fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct ing_error e;
	struct rpc_server_options o = {"127.0.0.1:0", 0, 0, 0, 0};
	mp_out_init(&f->args);
	f->watch_final = "succeeded";
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(uv_async_init(&f->loop, &f->stop, fake_stop_cb), 0);
	f->stop.data = f;
	assert_int_equal(rpc_server_start(&f->loop, &o, fake_handler, f, &f->srv, &e), 0);
	snprintf(f->port, sizeof(f->port), "127.0.0.1:%u", (unsigned)rpc_server_port(f->srv));
	assert_int_equal(pthread_create(&f->thread, NULL, fake_thread, f), 0);
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;
	uv_async_send(&f->stop);
	pthread_join(f->thread, NULL);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	mp_out_free(&f->args);
	free(f);
	return 0;
}

/* The last request's args, parsed into z. */
static msgpack_object fake_args(struct fake *f, msgpack_zone *z)
{
	return unpack(&f->args, z);
}

static void test_fake_submit(void **state)
{
	struct fake *f = *state;
	char dir[256], path[300], old[512];
	tu_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/kernel.c", dir);
	FILE *fp = fopen(path, "w");
	fputs("int main(void) { return 0; }\n", fp);
	fclose(fp);
	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(dir), 0);
	mkdir("sub", 0755);
	fp = fopen("sub/x.h", "w");
	fputs("#define X 1\n", fp);
	fclose(fp);
	struct run r =
	    run_words("--endpoints", f->port, "job", "submit", "--target", "cc", "--priority", "70",
	              "--deadline", "2m", "--request-id", "req-7", "--param", "GAIN=42", "--param",
	              "MODE=fast", path, "./sub/x.h", NULL);
	assert_int_equal(chdir(old), 0);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	assert_string_equal(r.out, "42\n");
	assert_string_equal(f->op, "job.submit");
	assert_string_equal(f->request_id, "req-7");
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	msgpack_object a = fake_args(f, &z);
	json_t *j = rpc_mp_to_json(&a);
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(text, "{\"target\":\"cc\",\"sources\":["
	                          "{\"path\":\"kernel.c\",\"data\":"
	                          "\"aW50IG1haW4odm9pZCkgeyByZXR1cm4gMDsgfQo=\"},"
	                          "{\"path\":\"sub/x.h\",\"data\":\"I2RlZmluZSBYIDEK\"}],"
	                          "\"priority\":70,\"deadline_ms\":120000,"
	                          "\"params\":{\"GAIN\":\"42\",\"MODE\":\"fast\"}}");
	free(text);
	json_decref(j);
	msgpack_zone_destroy(&z);
	run_free(&r);

	/* JSON mode: {"id": 42}; a generated request id ("c-" + hex). */
	snprintf(path, sizeof(path), "%s/kernel.c", dir);
	r = run_words("--endpoints", f->port, "-o", "json", "job", "submit", "--target", "cc", path,
	              NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "{\n  \"id\": 42\n}\n");
	assert_int_equal(strncmp(f->request_id, "c-", 2), 0);
	run_free(&r);
	tu_rmrf(dir);
}

static void test_fake_get_list_errors(void **state)
{
	struct fake *f = *state;
	struct run r = run_words("--endpoints", f->port, "--stale", "job", "get", "5", NULL);
	assert_int_equal(r.code, 0);
	assert_contains(r.out, "state:     running\n");
	assert_string_equal(f->op, "job.get");
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	msgpack_object a = fake_args(f, &z);
	const msgpack_object *stale = cli_mp_get(&a, "stale");
	assert_non_null(stale);
	assert_true(stale->type == MSGPACK_OBJECT_BOOLEAN && stale->via.boolean);
	run_free(&r);

	/* JSON: the job as the server sent it. */
	r = run_words("--endpoints", f->port, "-o", "json", "job", "get", "5", NULL);
	assert_int_equal(r.code, 0);
	assert_contains(r.out, "\"id\": 5,\n");
	assert_contains(r.out, "\"node\": 2,\n");
	assert_contains(r.out, "\"created_at\": 1795356187000,\n");
	a = fake_args(f, &z);
	assert_null(cli_mp_get(&a, "stale"));
	run_free(&r);

	/* The cluster refuses: exit 1, the server's code name and message. */
	r = run_words("--endpoints", f->port, "job", "get", "404", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "ingotctl: not_found: job 404 not found\n");
	run_free(&r);

	/* One page; then every page with --all. */
	r = run_words("--endpoints", f->port, "job", "list", "--state", "queued", NULL);
	assert_int_equal(r.code, 0);
	assert_contains(r.out, "ID  STATE");
	assert_null(strstr(r.out, "\n3 "));
	assert_contains(r.err, "--after 2");
	run_free(&r);
	f->calls = 0;
	r = run_words("--endpoints", f->port, "job", "list", "--all", "--limit", "2", NULL);
	assert_int_equal(r.code, 0);
	assert_int_equal(f->calls, 2);
	assert_contains(r.out, "\n1 ");
	assert_contains(r.out, "\n2 ");
	assert_contains(r.out, "\n3 ");
	a = fake_args(f, &z);
	assert_int_equal(cli_mp_get(&a, "after")->via.u64, 2);
	assert_int_equal(cli_mp_get(&a, "limit")->via.u64, 2);
	run_free(&r);
	r = run_words("--endpoints", f->port, "-o", "json", "job", "list", "--all", NULL);
	assert_int_equal(r.code, 0);
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	assert_non_null(doc);
	assert_int_equal(json_array_size(json_object_get(doc, "jobs")), 3);
	assert_true(json_is_null(json_object_get(doc, "next")));
	json_decref(doc);
	run_free(&r);

	/* status -o json: leader null, members. */
	r = run_words("--endpoints", f->port, "-o", "json", "status", NULL);
	assert_int_equal(r.code, 0);
	doc = json_loads(r.out, 0, &je);
	assert_non_null(doc);
	assert_true(json_is_null(json_object_get(doc, "leader")));
	assert_int_equal(json_array_size(json_object_get(doc, "members")), 3);
	json_decref(doc);
	run_free(&r);
	r = run_words("--endpoints", f->port, "status", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(
	    r.out, "leader: none  term: 7  answered by: 1\n\n"
	           "ID  ROLE     LEADER  ALIVE  APPLIED  RAFT ADDRESS    API ADDRESS\n"
	           "1   voter            yes    1201     127.0.0.1:7501  127.0.0.1:7401\n"
	           "2   voter            yes    1202     127.0.0.1:7502  127.0.0.1:7402\n"
	           "3   standby          no     -        127.0.0.1:7503  127.0.0.1:7403\n");
	run_free(&r);
	msgpack_zone_destroy(&z);
}

static void test_fake_watch(void **state)
{
	struct fake *f = *state;
	struct run r = run_words("--endpoints", f->port, "job", "watch", "9", NULL);
	assert_int_equal(r.code, 0);
	assert_contains(r.out, "2026-11-22 14:03:08  submitted");
	assert_contains(r.out, "2026-11-22 14:03:09  succeeded");
	assert_string_equal(f->op, "job.watch");
	run_free(&r);

	f->watch_final = "failed";
	r = run_words("--endpoints", f->port, "-o", "json", "job", "watch", "9", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.out, "{\"seq\":1,\"time\":1795356188000,\"kind\":\"submitted\","
	                           "\"state\":\"queued\",\"message\":\"\"}\n"
	                           "{\"seq\":2,\"time\":1795356189000,\"kind\":\"failed\","
	                           "\"state\":\"failed\",\"message\":\"\"}\n");
	assert_contains(r.err, "job 9 failed: stage compile exited 1");
	run_free(&r);
	f->watch_final = "cancelled";
	r = run_words("--endpoints", f->port, "job", "watch", "9", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	run_free(&r);

	/* Cut off twice after the first event: sent again, the replayed event
	 * shown once. */
	f->watch_final = "succeeded";
	f->watch_unavailable = 2;
	f->calls = 0;
	r = run_words("--endpoints", f->port, "-o", "json", "job", "watch", "9", NULL);
	assert_int_equal(r.code, 0);
	assert_int_equal(f->calls, 3);
	assert_string_equal(r.out, "{\"seq\":1,\"time\":1795356188000,\"kind\":\"submitted\","
	                           "\"state\":\"queued\",\"message\":\"\"}\n"
	                           "{\"seq\":2,\"time\":1795356189000,\"kind\":\"succeeded\","
	                           "\"state\":\"succeeded\",\"message\":\"\"}\n");
	run_free(&r);

	/* Unavailable with no progress for --timeout: exit 3. */
	f->watch_unavailable = 1000000;
	r = run_words("--endpoints", f->port, "--timeout", "400ms", "job", "watch", "9", NULL);
	assert_int_equal(r.code, CLI_EXIT_UNREACHABLE);
	assert_contains(r.err, "ingotctl: unavailable: no leader");
	run_free(&r);
}

static void test_fake_nodes(void **state)
{
	struct fake *f = *state;
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	struct run r = run_words("--endpoints", f->port, "node", "list", "--stale", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(f->op, "node.list");
	assert_contains(r.out, "ID  SLOTS  GPUS                    STATE");
	assert_contains(r.out, "\n3   0/4    -                       draining until 2026-11-22 "
	                       "14:08:07  ");
	msgpack_object a = fake_args(f, &z);
	assert_non_null(cli_mp_get(&a, "stale"));
	run_free(&r);
	r = run_words("--endpoints", f->port, "-o", "json", "node", "list", NULL);
	assert_int_equal(r.code, 0);
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	assert_true(json_is_array(doc));
	assert_int_equal(json_array_size(doc), 5);
	assert_true(json_is_null(json_object_get(json_array_get(doc, 0), "drain_deadline")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(doc, 2), "drain_deadline")),
	    T0 + 300000);
	json_decref(doc);
	run_free(&r);

	/* drain: a write with the relative deadline; undrain. */
	r = run_words("--endpoints", f->port, "node", "drain", "3", "--deadline", "5m", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "node 3 draining (deadline in 5m)\n");
	assert_string_equal(f->op, "node.drain");
	assert_int_equal(strncmp(f->request_id, "c-", 2), 0);
	a = fake_args(f, &z);
	assert_int_equal(a.via.map.size, 2);
	assert_int_equal(cli_mp_get(&a, "id")->via.u64, 3);
	assert_int_equal(cli_mp_get(&a, "deadline_ms")->via.u64, 300000);
	run_free(&r);
	r = run_words("--endpoints", f->port, "node", "drain", "3", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "node 3 draining\n");
	a = fake_args(f, &z);
	assert_int_equal(a.via.map.size, 1);
	run_free(&r);
	r = run_words("--endpoints", f->port, "-o", "json", "node", "undrain", "3", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "{}\n");
	assert_string_equal(f->op, "node.undrain");
	run_free(&r);
	r = run_words("--endpoints", f->port, "node", "undrain", "99", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.err, "ingotctl: not_found: node 99 is not registered\n");
	run_free(&r);
	msgpack_zone_destroy(&z);
}

static void test_fake_members(void **state)
{
	struct fake *f = *state;
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	/* status (no leader), then node.list (always stale): nodes 1-3
	 * registered, 2 and 3 draining. */
	struct run r = run_words("--endpoints", f->port, "member", "list", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(f->op, "node.list");
	msgpack_object a = fake_args(f, &z);
	assert_non_null(cli_mp_get(&a, "stale"));
	assert_contains(r.out, "ID  ROLE     LEADER  ALIVE  CONTACT  APPLIED  BEHIND  DRAIN  ");
	assert_contains(r.out, "\n1   voter            yes    -        1201     -       no     ");
	assert_contains(r.out, "\n3   standby          no     -        -        -       yes    ");
	run_free(&r);
	r = run_words("--endpoints", f->port, "-o", "json", "member", "list", NULL);
	assert_int_equal(r.code, 0);
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	assert_true(json_is_array(doc));
	assert_int_equal(json_array_size(doc), 3);
	assert_true(json_is_null(json_object_get(json_array_get(doc, 0), "behind")));
	assert_true(json_is_null(json_object_get(json_array_get(doc, 0), "last_contact_ms")));
	assert_true(json_is_false(json_object_get(json_array_get(doc, 0), "draining")));
	assert_true(json_is_true(json_object_get(json_array_get(doc, 1), "draining")));
	assert_true(json_is_false(json_object_get(json_array_get(doc, 1), "leader")));
	run_free(&r);
	/* --stale goes to status too. */
	r = run_words("--endpoints", f->port, "--stale", "member", "list", NULL);
	assert_int_equal(r.code, 0);
	json_decref(doc);
	run_free(&r);
	msgpack_zone_destroy(&z);
}

/* The last request's args as compact JSON (caller frees). */
static char *fake_args_json(struct fake *f)
{
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	msgpack_object a = fake_args(f, &z);
	json_t *j = rpc_mp_to_json(&a);
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	msgpack_zone_destroy(&z);
	return text;
}

#define assert_fake_args(f, expected)                \
	do {                                         \
		char *a_ = fake_args_json(f);        \
		assert_string_equal(a_, (expected)); \
		free(a_);                            \
	} while (0)

static void test_fake_member_changes(void **state)
{
	struct fake *f = *state;
	/* add: the line on stderr before the call, the steps and the summary
	 * on stdout; no request id (membership calls take none). */
	struct run r = run_words("--endpoints", f->port, "member", "add", "4", "--raft-address",
	                         "127.0.0.1:7504", "--api-address", "127.0.0.1:7404", NULL);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	assert_string_equal(r.err, "adding member 4 (raft 127.0.0.1:7504, api 127.0.0.1:7404) as "
	                           "voter; waiting up to 1m\n");
	assert_string_equal(r.out, "  - recorded member 4 (raft 127.0.0.1:7504, api "
	                           "127.0.0.1:7404)\n"
	                           "  - added 4 as spare\n"
	                           "member 4 is now a voter (1234 ms)\n");
	assert_string_equal(f->op, "member.add");
	assert_string_equal(f->request_id, "");
	assert_fake_args(f, "{\"id\":4,\"raft_address\":\"127.0.0.1:7504\","
	                    "\"api_address\":\"127.0.0.1:7404\",\"role\":\"voter\"}");
	run_free(&r);

	/* JSON: the reply as it came, nothing on stderr. */
	r = run_words("--endpoints", f->port, "-o", "json", "member", "add", "4", "--role",
	              "standby", "--raft-address", "127.0.0.1:7504", "--api-address",
	              "127.0.0.1:7404", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "id")), 4);
	assert_string_equal(json_string_value(json_object_get(doc, "role")), "standby");
	assert_int_equal(json_array_size(json_object_get(doc, "steps")), 2);
	assert_int_equal(json_integer_value(json_object_get(doc, "elapsed_ms")), 1234);
	json_decref(doc);
	assert_fake_args(f, "{\"id\":4,\"raft_address\":\"127.0.0.1:7504\","
	                    "\"api_address\":\"127.0.0.1:7404\",\"role\":\"standby\"}");
	run_free(&r);

	r = run_words("--endpoints", f->port, "member", "promote", "4", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "promoting member 4 to voter; waiting up to 1m\n");
	assert_contains(r.out, "\nmember 4 is now a voter (1234 ms)\n");
	assert_string_equal(f->op, "member.promote");
	assert_fake_args(f, "{\"id\":4}");
	run_free(&r);

	/* demote: standby unless --role says spare. */
	r = run_words("--endpoints", f->port, "member", "demote", "4", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "demoting member 4 to standby; waiting up to 1m\n");
	assert_contains(r.out, "member 4 is now a standby (1234 ms)\n");
	assert_string_equal(f->op, "member.demote");
	assert_fake_args(f, "{\"id\":4,\"role\":\"standby\"}");
	run_free(&r);
	r = run_words("--endpoints", f->port, "member", "demote", "4", "--role", "spare", NULL);
	assert_int_equal(r.code, 0);
	assert_fake_args(f, "{\"id\":4,\"role\":\"spare\"}");
	assert_contains(r.out, "member 4 is now a spare (1234 ms)\n");
	run_free(&r);

	/* remove; --timeout replaces the 60 s default. */
	r = run_words("--endpoints", f->port, "--timeout", "90s", "member", "remove", "2", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "removing member 2; waiting up to 1m30s\n");
	assert_string_equal(r.out, "member 2 removed (1234 ms)\n");
	assert_string_equal(f->op, "member.remove");
	assert_fake_args(f, "{\"id\":2}");
	run_free(&r);

	/* transfer-leadership: without an id the cluster chooses. */
	r = run_words("--endpoints", f->port, "member", "transfer-leadership", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "transferring leadership to the most caught-up voter; waiting "
	                           "up to 1m\n");
	assert_string_equal(r.out, "leadership moved from node 1 to node 3 (1 attempt, 212 ms)\n");
	assert_string_equal(f->op, "member.transfer");
	assert_fake_args(f, "{}");
	run_free(&r);
	r = run_words("--endpoints", f->port, "member", "transfer-leadership", "2", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "transferring leadership to node 2; waiting up to 1m\n");
	assert_string_equal(r.out, "leadership moved from node 1 to node 2 (1 attempt, 212 ms)\n");
	assert_fake_args(f, "{\"id\":2}");
	run_free(&r);
	r = run_words("--endpoints", f->port, "-o", "json", "member", "transfer-leadership", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	assert_string_equal(r.out, "{\n  \"leader\": 3,\n  \"previous\": 1,\n  \"attempts\": 1,\n"
	                           "  \"elapsed_ms\": 212\n}\n");
	run_free(&r);

	/* Refused: exit 1, the server's message.  The server's timeout (a
	 * member that did not catch up) is exit 3, like every timeout. */
	r = run_words("--endpoints", f->port, "member", "remove", "99", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.out, "");
	assert_contains(r.err, "removing member 99; waiting up to 1m\n");
	assert_contains(r.err, "ingotctl: conflict: member 5 is being added: one membership "
	                       "change at a time\n");
	run_free(&r);
	r = run_words("--endpoints", f->port, "member", "promote", "98", NULL);
	assert_int_equal(r.code, CLI_EXIT_UNREACHABLE);
	assert_string_equal(r.out, "");
	assert_contains(r.err, "ingotctl: timeout: member 98 did not catch up within 30000 ms");
	run_free(&r);
}

static void test_fake_cluster_events(void **state)
{
	struct fake *f = *state;
	struct run r = run_words("--endpoints", f->port, "events", NULL);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	assert_string_equal(f->op, "cluster.events");
	assert_fake_args(f, "{}");
	assert_contains(r.out, "SEQ  TIME                 KIND                    MEMBER  MESSAGE\n"
	                       "1    2026-11-22 14:03:08  cluster_created         -       ");
	assert_contains(r.out, "\n4    2026-11-22 14:03:11  voter_replaced          2       ");
	assert_string_equal(r.err, "");
	run_free(&r);

	/* One page of 2: the next one is named on stderr. */
	r = run_words("--endpoints", f->port, "events", "--after", "1", "--limit", "2", "--stale",
	              NULL);
	assert_int_equal(r.code, 0);
	assert_fake_args(f, "{\"after\":1,\"limit\":2,\"stale\":true}");
	assert_contains(r.out, "\n2    ");
	assert_contains(r.out, "\n3    ");
	assert_null(strstr(r.out, "\n4    "));
	assert_string_equal(r.err, "(more events: add --after 3 for the next page)\n");
	run_free(&r);

	/* JSON: the page as it came. */
	r = run_words("--endpoints", f->port, "-o", "json", "events", "--after", "3", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	assert_non_null(doc);
	json_t *evs = json_object_get(doc, "events");
	assert_int_equal(json_array_size(evs), 1);
	json_t *ev = json_array_get(evs, 0);
	assert_int_equal(json_integer_value(json_object_get(ev, "seq")), 4);
	assert_int_equal(json_integer_value(json_object_get(ev, "time_ms")), T0 + 4000);
	assert_string_equal(json_string_value(json_object_get(ev, "kind")), "voter_replaced");
	assert_int_equal(json_integer_value(json_object_get(ev, "member")), 2);
	assert_true(json_is_null(json_object_get(doc, "next")));
	json_decref(doc);
	run_free(&r);
}

static void test_fake_settings(void **state)
{
	struct fake *f = *state;
	struct run r = run_words("--endpoints", f->port, "settings", "get", NULL);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	assert_string_equal(f->op, "settings.get");
	assert_fake_args(f, "{}");
	assert_string_equal(r.out, "SETTING         VALUE\n"
	                           "job-retention   168h\n"
	                           "dedupe-window   forever\n");
	run_free(&r);
	r = run_words("--endpoints", f->port, "settings", "set", "job-retention", "2d", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(f->op, "settings.set");
	assert_fake_args(f, "{\"name\":\"job_retention_ms\",\"value\":172800000}");
	assert_string_equal(r.out, "");
	run_free(&r);
	r = run_words("--endpoints", f->port, "settings", "set", "dedupe-window", "forever", NULL);
	assert_int_equal(r.code, 0);
	assert_fake_args(f, "{\"name\":\"dedupe_window_ms\",\"value\":0}");
	run_free(&r);
}

static void test_fake_logs(void **state)
{
	struct fake *f = *state;
	struct run r = run_words("--endpoints", f->port, "job", "logs", "77", NULL);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	assert_string_equal(r.out, "== stage 0 (exit 0, 1.2s)\n" LOG0
	                           "== stage 1 (exit 3, 80ms)\n" LOG1 "\n== stage 2 (running)\n");
	assert_string_equal(r.err, "");
	run_free(&r);

	/* One stage, by index or by name (target.get of the job's target). */
	r = run_words("--endpoints", f->port, "--stale", "job", "logs", "77", "--stage", "1", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "== stage 1 (exit 3, 80ms)\n" LOG1 "\n");
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	msgpack_object a = fake_args(f, &z); /* artifact.get, stale too */
	assert_string_equal(f->op, "artifact.get");
	assert_non_null(cli_mp_get(&a, "stale"));
	run_free(&r);
	r = run_words("--endpoints", f->port, "job", "logs", "77", "--stage", "compile", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "== stage 0 (exit 0, 1.2s)\n" LOG0);
	run_free(&r);
	r = run_words("--endpoints", f->port, "job", "logs", "77", "--stage", "link", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.err, "ingotctl: not_found: target 'cc' has no stage 'link' (stages: "
	                           "compile, report, listing)\n");
	run_free(&r);
	r = run_words("--endpoints", f->port, "job", "logs", "77", "--stage", "5", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_contains(r.err, "ingotctl: not_found: job 77 has no result for stage 5 (running)");
	run_free(&r);

	/* JSON: one line per stage, the log as text. */
	r = run_words("--endpoints", f->port, "-o", "json", "job", "logs", "77", "--stage", "1",
	              NULL);
	assert_int_equal(r.code, 0);
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "log")), LOG1);
	assert_int_equal(json_integer_value(json_object_get(doc, "exit_code")), 3);
	json_decref(doc);
	run_free(&r);

	/* A log whose bytes do not match its hash: corrupt, exit 1, no log. */
	f->corrupt = true;
	r = run_words("--endpoints", f->port, "job", "logs", "77", "--stage", "0", NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.out, "");
	assert_contains(r.err, "ingotctl: corrupt: artifact ");
	run_free(&r);
	f->corrupt = false;

	/* --follow: each log as its stage_finished arrives; the earlier
	 * attempt's stage gets a note; exit as job watch. */
	r = run_words("--endpoints", f->port, "job", "logs", "77", "-f", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "== stage 0 (exit 0, 1.2s)\n" LOG0
	                           "== stage 1 (exit 3, 80ms)\n" LOG1 "\n");
	assert_string_equal(r.err, "ingotctl: stage 0 of attempt 1 finished; its log is not shown: "
	                           "the job is on attempt 2\n");
	run_free(&r);
	f->watch_final = "failed";
	r = run_words("--endpoints", f->port, "job", "logs", "77", "--follow", "--stage", "report",
	              NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.out, "== stage 1 (exit 3, 80ms)\n" LOG1 "\n");
	assert_string_equal(r.err, "ingotctl: job 77 failed\n");
	run_free(&r);
	msgpack_zone_destroy(&z);
}

static void test_fake_fetch(void **state)
{
	struct fake *f = *state;
	char dir[256], out[300], path[400];
	tu_tmpdir(dir, sizeof(dir));
	snprintf(out, sizeof(out), "%s/new/out", dir);
	struct run r = run_words("--endpoints", f->port, "job", "fetch", "77", out, NULL);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	char expect[1024];
	snprintf(expect, sizeof(expect), "%s/0-obj/k.o  %zu bytes\n%s/1-r.txt  %zu bytes\n", out,
	         sizeof(OUT0) - 1, out, sizeof(OUT1) - 1);
	assert_string_equal(r.out, expect);
	run_free(&r);
	char *data;
	size_t len;
	struct ing_error e;
	snprintf(path, sizeof(path), "%s/0-obj/k.o", out);
	assert_int_equal(cli_read_file(path, 1024, &data, &len, &e), 0);
	assert_int_equal(len, sizeof(OUT0) - 1);
	assert_memory_equal(data, OUT0, len);
	free(data);
	snprintf(path, sizeof(path), "%s/1-r.txt", out);
	assert_int_equal(cli_read_file(path, 1024, &data, &len, &e), 0);
	assert_string_equal(data, OUT1);
	free(data);

	/* Again, JSON: files replaced; one document listing them. */
	r = run_words("--endpoints", f->port, "-o", "json", "job", "fetch", "77", out, NULL);
	assert_int_equal(r.code, 0);
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	assert_int_equal(json_array_size(doc), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "path")),
	                    "obj/k.o");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(doc, 1), "stage")), 1);
	json_decref(doc);
	run_free(&r);

	/* Tampered bytes: corrupt, exit 1, nothing written under that name. */
	snprintf(out, sizeof(out), "%s/bad", dir);
	f->corrupt = true;
	r = run_words("--endpoints", f->port, "job", "fetch", "77", out, NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_contains(r.err, "ingotctl: corrupt: ");
	snprintf(path, sizeof(path), "%s/0-obj/k.o", out);
	assert_int_equal(access(path, F_OK), -1);
	run_free(&r);
	f->corrupt = false;

	/* No outputs: not_found, exit 1. */
	r = run_words("--endpoints", f->port, "job", "fetch", "79", out, NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "ingotctl: not_found: job 79 has no outputs (running; 0 "
	                           "finished stages)\n");
	run_free(&r);
	/* An output path with "..": refused before anything is fetched. */
	snprintf(out, sizeof(out), "%s/evil", dir);
	f->calls = 0;
	r = run_words("--endpoints", f->port, "job", "fetch", "78", out, NULL);
	assert_int_equal(r.code, CLI_EXIT_FAILED);
	assert_string_equal(r.err, "ingotctl: malformed: stage 1: output path '../evil' has an "
	                           "empty, '.' or '..' component; refused\n");
	assert_int_equal(f->calls, 1);
	assert_int_equal(access(out, F_OK), -1);
	run_free(&r);
	tu_rmrf(dir);
}

static void test_fake_timeout_exit_3(void **state)
{
	struct fake *f = *state;
	f->hang = true;
	struct run r = run_words("--endpoints", f->port, "--timeout", "300ms", "status", NULL);
	assert_int_equal(r.code, CLI_EXIT_UNREACHABLE);
	assert_contains(r.err, "ingotctl: timeout: ");
	assert_contains(r.err, "--timeout");
	assert_string_equal(r.out, "");
	run_free(&r);
}

/* ---- pki and TLS -------------------------------------------------------- */

static mode_t file_mode(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		fail_msg("cannot stat %s", path);
	return st.st_mode & 0777;
}

static char *slurp(const char *path)
{
	void *buf;
	size_t len;
	if (tu_read_file(path, &buf, &len) != 0)
		fail_msg("cannot read %s", path);
	return buf;
}

static void test_pki_commands(void **state)
{
	(void)state;
	char root[256], dir[300], path[512], path2[512];
	tu_tmpdir(root, sizeof(root));
	snprintf(dir, sizeof(dir), "%s/pki", root);

	struct run r = run_words("pki", "init", "--dir", dir, NULL);
	if (r.code != 0)
		fail_msg("pki init: %s", r.err);
	assert_contains(r.out, "ca.key (private key, mode 0600");
	assert_contains(r.out, "CN=ingot cluster CA ");
	run_free(&r);
	assert_int_equal(file_mode(dir), 0700);
	tp_path(path, sizeof(path), dir, "ca.key");
	assert_int_equal(file_mode(path), 0600);
	tp_path(path, sizeof(path), dir, "ca.crt");
	assert_int_equal(file_mode(path), 0644);

	r = run_words("pki", "issue", "node", "--id", "3", "--address", "127.0.0.1", "--address",
	              "node3.example", "--address", "::1", "--dir", dir, NULL);
	if (r.code != 0)
		fail_msg("pki issue node: %s", r.err);
	assert_contains(r.out, "node-3.crt (ingot:node:3; URI:ingot:node:3,IP:127.0.0.1,"
	                       "DNS:node3.example,IP:::1; valid until ");
	run_free(&r);
	r = run_words("-o", "json", "pki", "issue", "client", "--name", "ci-bot", "--days", "30",
	              "--dir", dir, NULL);
	if (r.code != 0)
		fail_msg("pki issue client: %s", r.err);
	assert_contains(r.out, "\"identity\": \"ingot:client:ci-bot\"");
	assert_contains(r.out, "client-ci-bot.key\"");
	run_free(&r);
	tp_path(path, sizeof(path), dir, "node-3.key");
	assert_int_equal(file_mode(path), 0600);
	tp_path(path, sizeof(path), dir, "client-ci-bot.key");
	assert_int_equal(file_mode(path), 0600);

	/* What was written loads as TLS contexts: each key matches its
	 * certificate, and each certificate chains to the CA. */
	char ca[512], crt[512], key[512];
	struct ing_tls *t;
	struct ing_error e;
	tp_path(ca, sizeof(ca), dir, "ca.crt");
	tp_path(crt, sizeof(crt), dir, "node-3.crt");
	tp_path(key, sizeof(key), dir, "node-3.key");
	struct ing_tls_config cfg = {ca, crt, key, ING_TLS_CLIENT_CERTS_OPTIONAL};
	assert_int_equal(ing_tls_new(&cfg, &t, &e), 0);
	ing_tls_free(t);
	tp_path(key, sizeof(key), dir, "client-ci-bot.key");
	assert_int_equal(ing_tls_new(&cfg, &t, &e), ING_EINVAL); /* another key */
	assert_contains(e.msg, "node-3.crt");

	/* Nothing is overwritten without --force, and a refusal changes
	 * nothing. */
	tp_path(path, sizeof(path), dir, "ca.key");
	char *before = slurp(path);
	r = run_words("pki", "init", "--dir", dir, NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "ca.key exists: refusing to overwrite it (use --force");
	run_free(&r);
	char *after = slurp(path);
	assert_string_equal(before, after);
	free(after);
	r = run_words("pki", "issue", "node", "--id", "3", "--address", "127.0.0.1", "--dir", dir,
	              NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "node-3.key exists");
	run_free(&r);
	r = run_words("pki", "issue", "node", "--id", "3", "--address", "127.0.0.1", "--dir", dir,
	              "--force", NULL);
	assert_int_equal(r.code, 0);
	run_free(&r);
	tp_path(path2, sizeof(path2), dir, "node-3.key");
	after = slurp(path2);
	assert_int_equal(file_mode(path2), 0600);
	free(after);
	free(before);

	/* Leaves cannot outlive the CA. */
	r = run_words("pki", "issue", "client", "--name", "x", "--days", "36500", "--dir", dir,
	              NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "--days 36500: the certificate would outlive the CA");
	run_free(&r);
	tp_path(path, sizeof(path), dir, "client-x.key");
	assert_int_equal(access(path, F_OK), -1);

	/* A CA key others can read is refused. */
	tp_path(path, sizeof(path), dir, "ca.key");
	chmod(path, 0644);
	r = run_words("pki", "issue", "client", "--name", "y", "--dir", dir, NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "ca.key is readable by others (mode 644): run 'chmod 600");
	run_free(&r);
	chmod(path, 0600);

	/* No CA at all. */
	snprintf(path, sizeof(path), "%s/empty", root);
	r = run_words("pki", "issue", "client", "--name", "y", "--dir", path, NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "not_found: no CA in ");
	assert_contains(r.err, "run 'ingotctl pki init --dir ");
	run_free(&r);
	tu_rmrf(root);
}

/* The fake server with TLS: node-1's certificate of a fresh PKI, client
 * certificates required. */
static int fake_setup_tls(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct ing_error e;
	struct tp_pki *p = calloc(1, sizeof(*p));
	tp_make(p);
	snprintf(f->pki, sizeof(f->pki), "%s", p->dir);
	f->tls = tp_tls(p->main_, p->main_, "node-1", ING_TLS_CLIENT_CERTS_REQUIRED);
	free(p);
	struct rpc_server_options o = {"127.0.0.1:0"};
	o.tls = f->tls;
	mp_out_init(&f->args);
	f->watch_final = "succeeded";
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(uv_async_init(&f->loop, &f->stop, fake_stop_cb), 0);
	f->stop.data = f;
	assert_int_equal(rpc_server_start(&f->loop, &o, fake_handler, f, &f->srv, &e), 0);
	snprintf(f->port, sizeof(f->port), "127.0.0.1:%u", (unsigned)rpc_server_port(f->srv));
	assert_int_equal(pthread_create(&f->thread, NULL, fake_thread, f), 0);
	*state = f;
	return 0;
}

static void test_fake_tls(void **state)
{
	struct fake *f = *state;
	char ca[512], crt[512], key[512], fca[512], fcrt[512], fkey[512], dir[300], fdir[300];
	snprintf(dir, sizeof(dir), "%s/main", f->pki);
	snprintf(fdir, sizeof(fdir), "%s/foreign", f->pki);
	tp_path(ca, sizeof(ca), dir, "ca.crt");
	tp_path(crt, sizeof(crt), dir, "client-alice.crt");
	tp_path(key, sizeof(key), dir, "client-alice.key");
	tp_path(fca, sizeof(fca), fdir, "ca.crt");
	tp_path(fcrt, sizeof(fcrt), fdir, "client-alice.crt");
	tp_path(fkey, sizeof(fkey), fdir, "client-alice.key");

	/* Flags. */
	struct run r = run_words("--endpoints", f->port, "--cacert", ca, "--cert", crt, "--key",
	                         key, "node", "list", NULL);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	assert_string_equal(f->op, "node.list");
	run_free(&r);

	/* The environment, like etcdctl's. */
	setenv("INGOT_CACERT", ca, 1);
	setenv("INGOT_CERT", crt, 1);
	setenv("INGOT_KEY", key, 1);
	r = run_words("--endpoints", f->port, "node", "list", NULL);
	if (r.code != 0)
		fail_msg("exit %d: %s", r.code, r.err);
	run_free(&r);
	/* A flag overrides its variable: a client certificate of another CA
	 * is refused by the server. */
	r = run_words("--endpoints", f->port, "--cacert", f->pki, "node", "list", NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE); /* a directory is no CA file */
	run_free(&r);
	unsetenv("INGOT_CACERT");
	unsetenv("INGOT_CERT");
	unsetenv("INGOT_KEY");

	/* No client certificate where the server requires one. */
	r = run_words("--endpoints", f->port, "--cacert", ca, "node", "list", NULL);
	assert_int_equal(r.code, CLI_EXIT_UNREACHABLE);
	assert_contains(r.err, "requires a client certificate");
	run_free(&r);
	/* A server certificate of a CA we do not trust. */
	r = run_words("--endpoints", f->port, "--cacert", fca, "--cert", fcrt, "--key", fkey,
	              "node", "list", NULL);
	assert_int_equal(r.code, CLI_EXIT_UNREACHABLE);
	assert_contains(r.err, "the server's certificate is not trusted");
	run_free(&r);
	/* Plaintext against the TLS port. */
	r = run_words("--endpoints", f->port, "node", "list", NULL);
	assert_int_equal(r.code, CLI_EXIT_UNREACHABLE);
	assert_contains(r.err, "this endpoint requires TLS");
	run_free(&r);
	/* Unreadable and mismatched files are usage errors, before any traffic. */
	int calls = f->calls;
	r = run_words("--endpoints", f->port, "--cacert", "/nonexistent/ca.crt", "node", "list",
	              NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "TLS CA file '/nonexistent/ca.crt': No such file or directory");
	run_free(&r);
	r = run_words("--endpoints", f->port, "--cacert", ca, "--cert", crt, "--key", fkey, "node",
	              "list", NULL);
	assert_int_equal(r.code, CLI_EXIT_USAGE);
	assert_contains(r.err, "client-alice.key");
	run_free(&r);
	assert_int_equal(f->calls, calls);
}

static int fake_teardown_tls(void **state)
{
	struct fake *f = *state;
	struct ing_tls *tls = f->tls;
	char dir[256];
	snprintf(dir, sizeof(dir), "%s", f->pki);
	int rv = fake_teardown(state);
	ing_tls_free(tls);
	tu_rmrf(dir);
	return rv;
}

int main(void)
{
	/* Table times are local: pin the zone. */
	setenv("TZ", "UTC", 1);
	tzset();
	unsetenv("INGOT_ENDPOINTS");
	unsetenv("INGOT_TOKEN");
	unsetenv("INGOT_CACERT");
	unsetenv("INGOT_CERT");
	unsetenv("INGOT_KEY");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args_defaults_and_globals),
	    cmocka_unit_test(test_args_every_command),
	    cmocka_unit_test(test_args_usage_errors),
	    cmocka_unit_test(test_help_exit_0),
	    cmocka_unit_test(test_help_per_command),
	    cmocka_unit_test(test_help_matches_docs),
	    cmocka_unit_test(test_version),
	    cmocka_unit_test(test_completion_script),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_source_paths),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_yaml_valid_exact_msgpack),
	    cmocka_unit_test(test_yaml_errors),
	    cmocka_unit_test(test_yaml_file_through_cli_run),
	    cmocka_unit_test(test_mp_to_json),
	    cmocka_unit_test(test_table_job),
	    cmocka_unit_test(test_table_status),
	    cmocka_unit_test(test_table_events),
	    cmocka_unit_test(test_table_nodes),
	    cmocka_unit_test(test_table_members),
	    cmocka_unit_test(test_table_member_change),
	    cmocka_unit_test(test_table_cluster_events),
	    cmocka_unit_test(test_stage_header_and_job_waiting),
	    cmocka_unit_test(test_output_dest),
	    cmocka_unit_test(test_closed_port_exit_3),
	    cmocka_unit_test_setup_teardown(test_fake_submit, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_get_list_errors, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_watch, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_nodes, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_members, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_member_changes, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_cluster_events, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_settings, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_logs, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_fetch, fake_setup, fake_teardown),
	    cmocka_unit_test_setup_teardown(test_fake_timeout_exit_3, fake_setup, fake_teardown),
	    cmocka_unit_test(test_pki_commands),
	    cmocka_unit_test_setup_teardown(test_fake_tls, fake_setup_tls, fake_teardown_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
