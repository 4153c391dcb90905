/*
 * cmd.h - the commands of the replicated log: the one list of every command
 * type, its fields, and their strict codec.
 *
 * Encoding (docs/formats.md): a msgpack array
 *     [type, version, time_ms, request_id, fields...]
 * or, for a command a client asked for (the audit trail),
 *     [type, version, time_ms, [request_id, principal], fields...]
 * followed by 0-7 msgpack nil bytes (0xc0) so the total length is a multiple
 * of 8 (libraft 0.15 silently drops other lengths at restart).  time_ms is
 * the proposer's clock, put in by the leader, so apply never reads a clock;
 * request_id is the client's idempotency key ("" when none); principal
 * names who asked ("token:7", "jwt:alice", "cert:ops"): 1..CMD_PRINCIPAL_MAX
 * bytes of printable ASCII, only in the versions of
 * cmd_type_principal_version() on.  An empty principal is written as the
 * plain request_id string, so decode then encode gives the same bytes.
 *
 * Decoding is strict: unknown type, a version outside the type's
 * min_version..version (older accepted versions decode into the current
 * struct with defaults for what they lack), a field of the wrong type,
 * missing or extra fields, bytes after the padding, anything over the
 * bounds of storage/limits.h, and semantically invalid values (bad names,
 * empty argv, priority over 100...) are errors with a message naming the
 * field.  A decoded command has passed cmd_validate().
 *
 * Memory: cmd_decode() points views into the input buffer (no copy: source
 * files may be megabytes) and allocates arrays from the zone; the command
 * lives as long as both.
 */
#ifndef INGOT_NODE_SM_CMD_H
#define INGOT_NODE_SM_CMD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/mp.h"
#include "common/str.h"
#include "storage/records.h"

/* X(SYMBOL, type number, current version, oldest version still decoded,
 * first version that may carry a principal (0: never), name) -- numbers
 * are forever.  cmd_encode writes the current version; cmd_decode also
 * accepts the older ones down to the oldest, because the log of an
 * upgraded node may still hold entries written before the upgrade.  Older
 * layouts: target_put v1 had no description and 5-item stages, v2 no gpus
 * and 7-item stages, v3 no network, no disk_bytes and 4-item limits (no
 * processes); job_submit v1 had no params; job_assign v1 gave no GPUs, v2
 * no `start`, v3 no `ahead`;
 * node_register v1 offered none; job_stage_finish v1 carried the stage's
 * end alone.  The versions that first carry a
 * principal (target_put v5, target_delete v2, job_submit v3, job_cancel v2,
 * job_retry v2, node_drain v2, node_forget v2, member_put v3, member_remove
 * v3, setting_put v2) have the fields of the version before; they exist so that an older
 * ingot stops at them (unsupported_version) instead of taking the
 * principal's header for a malformed entry and skipping it
 * (docs/formats.md). */
#define CMD_TYPES(X)                                         \
	X(TARGET_PUT, 1, 5, 1, 5, "target_put")              \
	X(TARGET_DELETE, 2, 2, 1, 2, "target_delete")        \
	X(JOB_SUBMIT, 10, 3, 1, 3, "job_submit")             \
	X(JOB_ASSIGN, 11, 4, 1, 0, "job_assign")             \
	X(JOB_STAGE_START, 12, 1, 1, 0, "job_stage_start")   \
	X(JOB_STAGE_FINISH, 13, 2, 1, 0, "job_stage_finish") \
	X(JOB_FINISH, 14, 1, 1, 0, "job_finish")             \
	X(JOB_CANCEL, 15, 2, 1, 2, "job_cancel")             \
	X(JOB_REQUEUE, 16, 1, 1, 0, "job_requeue")           \
	X(JOB_RETRY, 17, 2, 1, 2, "job_retry")               \
	X(JOB_EXPIRE, 18, 1, 1, 0, "job_expire")             \
	X(NODE_REGISTER, 20, 2, 1, 0, "node_register")       \
	X(NODE_DRAIN, 21, 2, 1, 2, "node_drain")             \
	X(NODE_DOWN, 22, 1, 1, 0, "node_down")               \
	X(NODE_UP, 23, 1, 1, 0, "node_up")                   \
	X(NODE_FORGET, 24, 2, 1, 2, "node_forget")           \
	X(MEMBER_PUT, 30, 3, 1, 3, "member_put")             \
	X(MEMBER_REMOVE, 31, 3, 1, 3, "member_remove")       \
	X(CLUSTER_INIT, 32, 1, 1, 0, "cluster_init")         \
	X(CLUSTER_EVENT, 33, 1, 1, 0, "cluster_event")       \
	X(TOKEN_CREATE, 40, 1, 1, 1, "token_create")         \
	X(TOKEN_REVOKE, 41, 1, 1, 1, "token_revoke")         \
	X(SETTING_PUT, 50, 2, 1, 2, "setting_put")           \
	X(RETENTION_RUN, 51, 1, 1, 0, "retention_run")

enum cmd_type {
#define CMD_ENUM(sym, num, ver, min_ver, pr_ver, name) CMD_##sym = (num),
	CMD_TYPES(CMD_ENUM)
#undef CMD_ENUM
};

/* "job_submit", or NULL for an unknown type. */
const char *cmd_type_name(uint32_t type);
/* Current version of a type, 0 if unknown. */
uint32_t cmd_type_version(uint32_t type);
/* Oldest version of a type cmd_decode still accepts, 0 if unknown. */
uint32_t cmd_type_min_version(uint32_t type);
/* First version of a type whose entries may carry a principal; 0 when the
 * type never does (or is unknown). */
uint32_t cmd_type_principal_version(uint32_t type);

/* A file carried in a command: a source of a submit, an output of a stage. */
struct cmd_file {
	struct ing_str path; /* relative, no "..", no leading '/' */
	struct ing_str data;
};

#define CMD_CLUSTER_ID_LEN 32
/* A principal's name: "token:7", "jwt:<subject>", "cert:<name>". */
#define CMD_PRINCIPAL_MAX ING_PRINCIPAL_MAX

/* What a job_stage_finish (v2) does after recording the stage's end. */
enum cmd_then {
	CMD_THEN_NONE = 0,   /* nothing: the worker reports again */
	CMD_THEN_NEXT = 1,   /* start the next stage (or, when a cancel is pending,
	                      * end the job cancelled) */
	CMD_THEN_FINISH = 2, /* end the job with `outcome`, as job_finish */
};

/* Cluster settings (setting_put), kept in meta under these names. */
#define CMD_SETTING_JOB_RETENTION "job_retention_ms"
#define CMD_SETTING_DEDUPE_WINDOW "dedupe_window_ms"
/* Largest value of a duration setting: 10 years in ms. */
#define CMD_SETTING_MAX_MS 315360000000ull
/* Jobs one retention_run may remove. */
#define CMD_RETENTION_MAX_JOBS 10000

struct cmd {
	uint32_t type;
	uint32_t version; /* as decoded; cmd_encode always writes the current one */
	uint64_t time_ms;
	struct ing_str request_id;
	struct ing_str principal; /* "" when none (internal commands) */
	union {
		/* Create or replace.  Only the spec fields of the record are
		 * carried: name, description, caps, labels, gpus, network,
		 * disk_bytes, stages (with their limits, stdout and gpus).
		 * revision, active_jobs and the times are the state
		 * machine's.  A v1 entry decodes with description "", limits
		 * 0 and stdout "", a v1 or v2 one with gpus 0 everywhere, a
		 * v1 to v3 one with network false, disk_bytes 0 and
		 * limits.processes 0.  Who may set network is the API's
		 * business (node/api/targets.c), not the log's. */
		struct {
			struct rec_target spec;
		} target_put;
		struct {
			struct ing_str name;
		} target_delete;
		struct {
			struct ing_str tenant;
			struct ing_str target;
			uint32_t priority;
			uint32_t max_attempts;   /* >= 1 */
			uint64_t deadline_at_ms; /* absolute, 0: none */
			uint32_t nsources;
			struct cmd_file *sources;
			/* Job parameters ({param:NAME} in argv): at most
			 * ING_MAX_ENV, names [A-Za-z_][A-Za-z0-9_]* unique,
			 * values <= ING_ARG_MAX without NUL.  A v1 entry
			 * decodes with none. */
			uint32_t nparams;
			struct rec_kv *params;
		} job_submit;
		struct {
			uint64_t job;
			uint64_t node;
			uint32_t attempt; /* must be the job's attempt + 1 */
			uint64_t lease_until_ms;
			/* The node's GPUs the attempt holds: as many as the
			 * target needs, free on the node.  None in v1. */
			uint32_t ngpus;
			uint32_t *gpus;
			/* v3: the assignment also starts stage 0 (the job is
			 * running from here on), so the worker runs it without
			 * a job_stage_start of its own.  false in v1 and v2. */
			bool start;
			/* v4: how many attempts beyond its slots the node may
			 * hold with this one (0: it takes a free slot); such an
			 * attempt waits on the node until one of its slots is
			 * free, and holds no GPU.  0 before v4. */
			uint32_t ahead;
		} job_assign;
		struct {
			uint64_t job;
			uint32_t attempt;
			uint32_t stage;
		} job_stage_start;
		/* The end of a stage.  v2 adds: `started` (the stage ran
		 * without a job_stage_start of its own: this records its start
		 * too) and `then` (enum cmd_then) with the job's `outcome` and
		 * `message` for CMD_THEN_FINISH (0 and "" otherwise); a v1
		 * entry decodes with started false and then CMD_THEN_NONE. */
		struct {
			uint64_t job;
			uint32_t attempt;
			uint32_t stage;
			int64_t exit_code;
			uint64_t duration_ms;
			bool has_log;
			struct ing_str log;
			uint32_t noutputs;
			struct cmd_file *outputs;
			bool started;
			uint8_t then;
			uint8_t outcome;
			struct ing_str message;
		} job_stage_finish;
		struct {
			uint64_t job;
			uint32_t attempt;
			uint8_t outcome; /* REC_JOB_SUCCEEDED, _FAILED or _CANCELLED */
			struct ing_str message;
		} job_finish;
		struct {
			uint64_t job;
			struct ing_str reason;
		} job_cancel;
		struct {
			uint64_t job;
			uint32_t attempt;
			struct ing_str reason;
		} job_requeue;
		struct {
			uint64_t job;
		} job_retry;
		/* The job's deadline passed (leader's decision, checked against
		 * time_ms): it ends failed wherever it is. */
		struct {
			uint64_t job;
		} job_expire;
		/* Registers or re-registers: id, caps, labels, slots, the
		 * GPUs offered (none in v1).  Drain, down, used_slots and the
		 * GPU holds are the state machine's. */
		struct {
			struct rec_node spec;
		} node_register;
		struct {
			uint64_t node;
			bool draining;
			uint64_t deadline_ms; /* absolute, 0: none */
		} node_drain;
		struct {
			uint64_t node;
			struct ing_str reason;
		} node_down;
		struct {
			uint64_t node;
		} node_up;
		/* Drops the record of a node that is down and runs nothing (a
		 * removed member, a retired machine). */
		struct {
			uint64_t node;
		} node_forget;
		struct {
			struct rec_member member;
		} member_put;
		struct {
			uint64_t id;
		} member_remove;
		/* Names the cluster once (the first leader proposes it): a
		 * later one changes nothing. */
		struct {
			struct ing_str cluster_id; /* CMD_CLUSTER_ID_LEN hex digits */
		} cluster_init;
		/* A cluster event that no other command records (a new leader,
		 * the leader's own membership decisions). */
		struct {
			uint8_t kind; /* REC_EV_LEADER_CHANGED or _VOTER_REPLACED */
			uint64_t member;
			struct ing_str message;
		} cluster_event;
		/* A new API token (docs/formats.md "tokens"): only the SHA-256
		 * of its secret travels; the id comes from the state's counter
		 * and is the apply result. */
		struct {
			struct ing_str hash;    /* 32 bytes */
			struct ing_str name;    /* a valid name */
			struct ing_str tenant;  /* "" (every tenant) or a valid name */
			uint8_t role;           /* enum rec_token_role */
			uint64_t expires_at_ms; /* 0: never */
		} token_create;
		struct {
			uint64_t id;
		} token_revoke;
		/* Sets a cluster setting (CMD_SETTING_*): a duration in ms, 0
		 * for "for ever" or 1000..CMD_SETTING_MAX_MS. */
		struct {
			struct ing_str name;
			uint64_t value;
		} setting_put;
		/* The leader's retention pass at time_ms: the dedupe generation
		 * turns when its window passed, and at most max_jobs finished
		 * jobs older than the retention are removed. */
		struct {
			uint32_t max_jobs; /* 1..CMD_RETENTION_MAX_JOBS */
		} retention_run;
	} u;
};

/*
 * Encodes c (current version of its type) into o, padded to 8 bytes.
 * Validates first: ING_EINVAL/ING_ETOOBIG with a message in e when c is not
 * a valid command; ING_ENOMEM.
 */
int cmd_encode(const struct cmd *c, struct mp_out *o, struct ing_error *e);

/*
 * Decodes and validates buf[0..len).  Views point into buf, arrays into z.
 * ING_EMALFORMED, ING_EVERSION (unknown type, or known type of an unknown
 * version: written by a newer ingot, a node must stop rather than skip it),
 * ING_EINVAL (invalid value), ING_ETOOBIG, ING_ENOMEM; e names what was
 * wrong.
 */
int cmd_decode(const void *buf, size_t len, msgpack_zone *z, struct cmd *out, struct ing_error *e);

/* State-independent checks (names, bounds, ranges).  ING_EINVAL/ETOOBIG. */
int cmd_validate(const struct cmd *c, struct ing_error *e);

/* A name of targets, tenants, capabilities, label keys, stages:
 * 1..ING_NAME_MAX bytes of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool cmd_name_valid(struct ing_str s);
/* A relative path: 1..ING_PATH_MAX bytes, no NUL, no leading '/', no ".."
 * component, no empty component. */
bool cmd_path_valid(struct ing_str s);
/* An IPv4 "a.b.c.d:port" address. */
bool cmd_address_valid(struct ing_str s);
/* A setting name setting_put accepts (CMD_SETTING_*). */
bool cmd_setting_known(struct ing_str name);

/* ---- checks made where requests enter (the API), never at apply ------------
 *
 * Stricter than cmd_validate, which apply runs on every entry of the log:
 * tightening that would make an old log replay differently.  These refuse
 * at submit what a worker could never run. */

/* When rest[0..left) starts with a well-formed "{param:NAME}" (NAME:
 * [A-Za-z_][A-Za-z0-9_]*, at most ING_NAME_MAX bytes), sets *name to it and
 * returns the placeholder's length; 0 otherwise (the text stays literal). */
size_t cmd_param_placeholder(const char *rest, size_t left, struct ing_str *name);

/* The first {param:NAME} in target t's argv that params (n of them) lacks:
 * true and a message naming the stage and the parameter in why[cap]. */
bool cmd_param_missing(const struct rec_target *t, const struct rec_kv *params, uint32_t n,
                       char *why, size_t cap);

/* Paths a worker can create side by side in one directory: no "."
 * component, and none that is a directory of another ("d" and "d/f").
 * `at(list, i)` gives path i; `what` and `field` name them in the error.
 * ING_EINVAL; 0. */
int cmd_paths_layout(const char *what, const char *field, uint32_t n,
                     const struct ing_str *(*at)(const void *, uint32_t), const void *list,
                     struct ing_error *e);

#endif
