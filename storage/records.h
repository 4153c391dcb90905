/*
 * records.h - typed records of the replicated state and their msgpack codec.
 *
 * Every record is a msgpack array `[record_version, fields...]` (layouts in
 * docs/formats.md).  Decoders are strict: wrong version, wrong types, bounds
 * exceeded (storage/limits.h), missing or extra fields give ING_EMALFORMED /
 * ING_ETOOBIG / ING_EVERSION with a message; a caller that decodes a record
 * read from the store reports any such failure as ING_ECORRUPT.
 *
 * Memory: a decoder first copies the encoded bytes into the zone, then
 * points every view (struct ing_str) and array in the record into that zone.
 * A decoded record therefore lives exactly as long as the zone, whatever
 * happens to the buffer it was decoded from (LMDB memory may change on the
 * next write).  Encoders read the record and append to an mp_out.
 *
 * Hashes (sha256 fields) are 32-byte arrays copied into the record.
 */
#ifndef INGOT_STORAGE_RECORDS_H
#define INGOT_STORAGE_RECORDS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/mp.h"
#include "common/str.h"
#include "storage/limits.h"

struct rec_kv {
	struct ing_str key;
	struct ing_str value;
};

/* ---- members: raft membership as the cluster's address book --------- */

enum rec_role { REC_ROLE_VOTER = 0, REC_ROLE_STANDBY = 1, REC_ROLE_SPARE = 2 };
#define REC_ROLE_COUNT 3
const char *rec_role_name(uint8_t role);

struct rec_member {
	uint64_t id;
	struct ing_str raft_address; /* "a.b.c.d:port" */
	struct ing_str api_address;
	uint8_t role; /* enum rec_role */
	uint64_t added_at_ms;
};

/* ---- nodes: workers' capabilities and capacity ------------------------ */

/* A GPU a node offers to jobs. */
struct rec_gpu {
	uint32_t index;        /* the node's numbering (NVML's), <= ING_GPU_INDEX_MAX */
	struct ing_str uuid;   /* "GPU-..."; "" when not known (declared by config) */
	uint64_t memory_bytes; /* 0 when not known */
};

/* A GPU held by the live attempt of a job. */
struct rec_gpu_hold {
	uint32_t index;
	uint64_t job;
};

struct rec_node {
	uint64_t id;
	uint32_t ncaps;
	struct ing_str *caps;
	uint32_t nlabels;
	struct rec_kv *labels;
	uint32_t slots;      /* concurrent attempts this node accepts */
	uint32_t used_slots; /* attempts assigned to it and not ended */
	bool draining;
	uint64_t drain_deadline_ms; /* 0: none */
	bool down;
	uint64_t registered_at_ms;
	uint64_t updated_at_ms;
	uint32_t ngpus; /* GPUs offered, unique indexes (from node_register) */
	struct rec_gpu *gpus;
	uint32_t nheld; /* GPUs held by live attempts, one entry per GPU */
	struct rec_gpu_hold *held;
};

/* ---- targets: named pipelines of stages ------------------------------- */

/* Resource limits of one stage's processes; 0 in a field means no limit. */
struct rec_stage_limits {
	uint64_t cpu_seconds;  /* RLIMIT_CPU (cmd_validate: at most a day) */
	uint64_t memory_bytes; /* RLIMIT_AS */
	uint64_t open_files;   /* RLIMIT_NOFILE */
	uint64_t output_bytes; /* RLIMIT_FSIZE: largest file a process may write */
	uint64_t processes;    /* the stage's whole tree (sandbox: pids.max or RLIMIT_NPROC) */
};

struct rec_stage_def {
	struct ing_str name;
	uint32_t nargv;
	struct ing_str *argv; /* templates: {source}, {out}, ... expanded by the worker */
	uint64_t timeout_ms;
	uint32_t nenv;
	struct rec_kv *env;
	uint32_t noutputs;
	struct ing_str *outputs; /* relative paths the stage must produce */
	struct rec_stage_limits limits;
	/* Relative path in the stage's output directory that receives the
	 * child's stdout (and is then an output too); "" = stdout goes to the
	 * log.  (`stdout` itself is a macro of <stdio.h>.) */
	struct ing_str stdout_path;
	uint32_t gpus; /* GPUs this stage sees (at least the target's), <= ING_MAX_GPUS */
};

struct rec_target {
	struct ing_str name;
	struct ing_str description; /* free text, at most ING_MESSAGE_MAX bytes */
	uint32_t ncaps;
	struct ing_str *caps; /* capabilities a node needs to run it */
	uint32_t nlabels;
	struct rec_kv *labels; /* labels a node must carry */
	uint32_t gpus;         /* GPUs every stage sees, <= ING_MAX_GPUS */
	/* Stages share the host's network instead of a namespace with only
	 * their own loopback (set only with the permission: node/api). */
	bool network;
	/* Disk space of an attempt's work directory, shared by its stages (0:
	 * the node's ceiling alone applies). */
	uint64_t disk_bytes;
	uint32_t nstages;
	struct rec_stage_def *stages;
	uint64_t revision;    /* 1 on create, +1 per replace */
	uint32_t active_jobs; /* jobs of this target not yet finished */
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
};

/* ---- jobs ------------------------------------------------------------- */

enum rec_job_state {
	REC_JOB_QUEUED = 0,
	REC_JOB_ASSIGNED = 1,
	REC_JOB_RUNNING = 2,
	REC_JOB_SUCCEEDED = 3,
	REC_JOB_FAILED = 4,
	REC_JOB_CANCELLED = 5,
};
#define REC_JOB_STATE_COUNT 6
const char *rec_job_state_name(uint8_t state);
/* Parses a state name; ING_EINVAL if unknown. */
int rec_job_state_parse(struct ing_str name, uint8_t *out);
static inline bool rec_job_state_final(uint8_t s)
{
	return s >= REC_JOB_SUCCEEDED;
}

struct rec_file {
	struct ing_str path;
	uint8_t sha256[32];
	uint64_t size;
	/* A job's source only: its bytes are kept with the job (table sources)
	 * instead of as an artifact (sources of at most ING_INLINE_SOURCE_MAX
	 * bytes, since schema 7).  Always false for stage outputs. */
	bool stored_inline;
};

enum rec_stage_state { REC_STAGE_RUNNING = 0, REC_STAGE_DONE = 1 };

struct rec_stage_result {
	uint8_t state; /* enum rec_stage_state */
	int64_t exit_code;
	uint64_t started_at_ms;
	uint64_t duration_ms;
	bool has_log;
	uint8_t log_sha256[32];
	uint32_t noutputs;
	struct rec_file *outputs;
};

struct rec_job {
	uint64_t id;
	struct ing_str tenant;
	struct ing_str target;
	uint64_t target_revision;  /* target revision at submit */
	struct ing_str request_id; /* empty when none */
	uint8_t state;             /* enum rec_job_state */
	uint32_t priority;         /* 0..ING_MAX_PRIORITY, higher first */
	uint32_t attempt;          /* current attempt, 0 before the first assign */
	uint32_t attempt_base;     /* attempts before the last operator retry */
	uint32_t max_attempts;
	uint64_t node_id; /* node of the current attempt, 0 when none */
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
	uint64_t deadline_at_ms; /* absolute, 0 when none */
	uint64_t lease_until_ms; /* from the assign command, 0 when none */
	uint64_t finished_at_ms;
	bool cancel_requested;
	uint32_t nsources;
	struct rec_file *sources;
	uint32_t nparams;      /* job parameters, {param:NAME} in argv */
	struct rec_kv *params; /* names [A-Za-z_][A-Za-z0-9_]*, unique */
	uint32_t stage_count;  /* stages of the target at assign */
	uint32_t nstages;      /* stage results of the current attempt */
	struct rec_stage_result *stages;
	uint32_t nevents;     /* events recorded so far (next event seq) */
	struct ing_str error; /* why it failed, empty otherwise */
	/* GPU indexes on node_id given to the current attempt (held while it
	 * is live; kept on a final job as the GPUs it ran on; none when
	 * queued), <= ING_MAX_GPUS. */
	uint32_t ngpus;
	uint32_t *gpus;
};

/* ---- events: per-job history ------------------------------------------ */

enum rec_event_kind {
	REC_EV_SUBMITTED = 0,
	REC_EV_ASSIGNED,
	REC_EV_STAGE_STARTED,
	REC_EV_STAGE_FINISHED,
	REC_EV_SUCCEEDED,
	REC_EV_FAILED,
	REC_EV_CANCEL_REQUESTED,
	REC_EV_CANCELLED,
	REC_EV_REQUEUED,
	REC_EV_RETRIED,
	/* Cluster events (job id 0 in the events table): */
	REC_EV_CLUSTER_CREATED,
	REC_EV_MEMBER_ADDED,
	REC_EV_MEMBER_ROLE_CHANGED,
	REC_EV_MEMBER_REMOVED,
	REC_EV_LEADER_CHANGED,
	REC_EV_VOTER_REPLACED,
	/* Client writes that are not about a job (schema 8): */
	REC_EV_TARGET_PUT,
	REC_EV_TARGET_DELETED,
	REC_EV_TOKEN_CREATED,
	REC_EV_TOKEN_REVOKED,
	REC_EV_NODE_DRAINED,
	REC_EV_NODE_UNDRAINED,
	REC_EV_NODE_FORGOTTEN,
	REC_EV_SETTING_CHANGED, /* setting_put v2 (no store layout change) */
};
#define REC_EV_COUNT         24
#define REC_EV_FIRST_CLUSTER REC_EV_CLUSTER_CREATED
const char *rec_event_kind_name(uint8_t kind);

struct rec_event {
	uint64_t time_ms;
	uint8_t kind;  /* enum rec_event_kind */
	uint8_t state; /* job state after the event */
	uint32_t attempt;
	uint64_t node_id;
	int32_t stage;     /* -1 when not about a stage */
	int64_t exit_code; /* stage_finished only, else 0 */
	struct ing_str message;
	/* Who asked for the write that made the event ("token:7"); "" for the
	 * cluster's own doings.  Record version 2 holds it; an event without
	 * one is written as version 1, the bytes an older ingot wrote. */
	struct ing_str principal;
};

/* ---- artifacts -------------------------------------------------------- */

struct rec_artifact {
	uint64_t size;
	uint64_t refs;
	uint32_t nchunks;
	const uint8_t *chunk_hashes; /* nchunks * 32 bytes */
};

struct rec_chunk {
	uint64_t refs;
	struct ing_str data;
};

/* ---- sources: the bytes of a job's inline sources --------------------- */

struct rec_sources {
	uint32_t n;           /* the job's sources with stored_inline, in order */
	struct ing_str *data; /* each source's bytes */
};

/* ---- dedupe: client request id -> first result ------------------------ */

struct rec_dedupe {
	uint64_t index;    /* raft index of the first apply */
	uint32_t cmd_type; /* command the id was first used with */
	int32_t code;      /* 0 or an ING_E* code */
	struct ing_str message;
	struct ing_str value; /* msgpack-encoded result value (may be empty) */
	uint64_t time_ms;
};

/* ---- tokens ----------------------------------------------------------- */

enum rec_token_role {
	REC_TOKEN_ADMIN = 0,
	REC_TOKEN_OPERATOR = 1,
	REC_TOKEN_SUBMITTER = 2,
	REC_TOKEN_VIEWER = 3,
};
#define REC_TOKEN_ROLE_COUNT 4

/* Key: SHA-256 of the token's secret.  Version 2 (token_create) adds the
 * id, the expiry and the creator; a version 1 record decodes with id 0
 * (it cannot be presented: ids start at 1), no expiry and no creator. */
struct rec_token {
	uint64_t id;
	struct ing_str name;
	struct ing_str tenant; /* empty: all tenants */
	uint8_t role;          /* enum rec_token_role */
	uint64_t created_at_ms;
	bool revoked;
	uint64_t expires_at_ms;    /* 0: never */
	struct ing_str created_by; /* the principal that created it, "" */
};

/* ---- codec ------------------------------------------------------------ */

/* Current record layout versions.  Job records are at 2 since schema 2
 * added the tenant, at 3 since schema 4 added the params, at 4 since
 * schema 5 added the GPUs and at 5 since schema 7 marks the sources kept
 * inline; target records at 2 since schema 3 added the
 * description and the stages' limits and stdout, at 3 since schema 5 added
 * the GPUs of the target and of each stage, at 4 since schema 6 added the
 * network flag, the disk space and the stages' process limit; node records
 * at 2 since schema 5 added the GPUs offered and held (storage/migrate.c
 * rewrites the older records). */
#define REC_VERSION        1
#define REC_JOB_VERSION    5
#define REC_EVENT_VERSION  2 /* with a principal; 1 without (see rec_event) */
#define REC_TOKEN_VERSION  2
#define REC_TARGET_VERSION 4
#define REC_NODE_VERSION   2

#define REC_CODEC(type)                                                                      \
	int rec_##type##_encode(const struct rec_##type *r, struct mp_out *o);               \
	int rec_##type##_decode(struct ing_str buf, msgpack_zone *z, struct rec_##type *out, \
	                        struct ing_error *e);

REC_CODEC(member)
REC_CODEC(node)
REC_CODEC(target)
REC_CODEC(job)
REC_CODEC(event)
REC_CODEC(artifact)
REC_CODEC(chunk)
REC_CODEC(sources)
REC_CODEC(dedupe)
REC_CODEC(token)
#undef REC_CODEC

/* The first items of a job record, read straight from its bytes without
 * parsing the rest (the scheduler looks at every job just submitted).
 * tenant and target are views into buf.  0, or ING_ECORRUPT when buf does
 * not start as a job record of REC_JOB_VERSION with those items within
 * their limits (rec_job_decode then says what is wrong). */
struct rec_job_head {
	uint64_t id;
	struct ing_str tenant, target;
	uint8_t state;
	uint32_t priority, attempt, attempt_base;
	uint64_t updated_at_ms;
};
int rec_job_head_decode(struct ing_str buf, struct rec_job_head *out);

/* [[key, value]...] lists (labels, env, params), shared with the command codec. */
void rec_pack_kv_list(msgpack_packer *pk, uint32_t n, const struct rec_kv *v);
/* Reads such a list into zone z: at most max_n pairs, keys of at most
 * key_max bytes, values of at most value_max. */
int rec_next_kv_list(struct mp_cursor *c, const char *field, uint32_t max_n, uint32_t key_max,
                     uint32_t value_max, msgpack_zone *z, uint32_t *n, struct rec_kv **out);

/* Stage definitions, shared with the command codec:
 *   [[name, argv, timeout_ms, env, outputs, limits, stdout, gpus]...]
 * with limits = [cpu_seconds, memory_bytes, open_files, output_bytes,
 * processes]. */
void rec_pack_stage_defs(msgpack_packer *pk, uint32_t n, const struct rec_stage_def *v);

/* The layouts stage definitions had, oldest first; each is the one of the
 * target record and of the target_put command of the same version. */
enum rec_stage_layout {
	REC_STAGES_V1 = 1, /* [name, argv, timeout_ms, env, outputs] */
	REC_STAGES_V2,     /* + limits (4 items), stdout */
	REC_STAGES_V3,     /* + gpus */
	REC_STAGES_V4,     /* limits of 5 items (+ processes): the current one */
};

/* Reads such a list into zone z (at most ING_MAX_STAGES) in `layout`; what
 * an older layout lacks is 0 (limits, gpus) or "" (stdout).  Errors as the
 * record decoders. */
int rec_next_stage_defs(struct mp_cursor *c, enum rec_stage_layout layout, msgpack_zone *z,
                        uint32_t *n, struct rec_stage_def **out);

/* The GPUs an attempt of target t holds: the most any of its stages sees,
 * max(t->gpus, each stage's gpus). */
uint32_t rec_target_gpus(const struct rec_target *t);
/* The GPUs stage i of t sees: max(t->gpus, the stage's gpus). */
uint32_t rec_stage_gpus(const struct rec_target *t, uint32_t i);

/* GPUs offered, shared with node_register: [[index, uuid, memory_bytes]...]
 * (at most ING_MAX_GPUS, index <= ING_GPU_INDEX_MAX, uuid <=
 * ING_GPU_UUID_MAX bytes). */
void rec_pack_gpus(msgpack_packer *pk, uint32_t n, const struct rec_gpu *v);
int rec_next_gpus(struct mp_cursor *c, msgpack_zone *z, uint32_t *n, struct rec_gpu **out);
/* GPU indexes, shared with job_assign: [index...] (at most ING_MAX_GPUS,
 * each <= ING_GPU_INDEX_MAX). */
void rec_pack_gpu_indexes(msgpack_packer *pk, uint32_t n, const uint32_t *v);
int rec_next_gpu_indexes(struct mp_cursor *c, msgpack_zone *z, uint32_t *n, uint32_t **out);

#endif
