/*
 * config.h - ingotd's configuration: a YAML file, flags that override it,
 * and the embedded defaults of --dev.
 *
 * The file is a flat YAML mapping (docs/operations.md lists every key):
 *
 *   id: 1
 *   data_dir: /var/lib/ingot
 *   raft_address: 127.0.0.1:7501
 *   api_address: 127.0.0.1:7401
 *   peers:                      # the cluster's initial voters, this node included
 *     - {id: 1, raft_address: 127.0.0.1:7501, api_address: 127.0.0.1:7401}
 *   election_timeout_ms: 300
 *   tls:                        # TLS 1.3 everywhere; paths relative to this file
 *     ca: tls/ca.crt
 *     cert: tls/node-1.crt
 *     key: tls/node-1.key
 *     client_certs: required    # or optional
 *   ...
 *
 * Without `tls` a node only binds loopback addresses (node_config_check_tls).
 *
 * Loading is strict: an unknown key, a value of the wrong type or out of
 * range, a duplicate peer id or address, a node id missing from its peers:
 * each is an error naming the file, the line and the key.  Nothing is
 * written anywhere while loading.
 */
#ifndef INGOT_NODE_CONFIG_H
#define INGOT_NODE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "node/auth/jwt.h"
#include "node/auth/principal.h"
#include "storage/limits.h"
#include "storage/store.h"

#define NODE_MAX_PEERS         16
#define NODE_ADDRESS_MAX       64
#define NODE_SANDBOX_PATHS_MAX 16
#define NODE_PATH_MAX          1024

/* The `tls` key: absent (enabled false) means plaintext, loopback only. */
struct node_tls_config {
	bool enabled;
	char ca[NODE_PATH_MAX];   /* absolute, or relative to the process's cwd */
	char cert[NODE_PATH_MAX]; /* (relative paths in the file are resolved */
	char key[NODE_PATH_MAX];  /* against the file's directory when loaded) */
	enum ing_tls_client_certs client_certs;
};

/* Which GPUs a node offers to jobs (config key `gpus`). */
enum node_gpus_mode {
	NODE_GPUS_DISCOVERED = 0, /* no `gpus` key: every GPU discovery finds */
	NODE_GPUS_COUNT,          /* `gpus: N`: indexes 0..N-1 (0: none) */
	NODE_GPUS_LIST,           /* `gpus: [0, 2]`: exactly these indexes */
};

/* A GPU the node offers (filled at start: node/worker/probe.c). */
struct node_gpu {
	unsigned index;
	char uuid[ING_GPU_UUID_MAX + 1]; /* "" when discovery did not find it */
	uint64_t memory_bytes;           /* 0 when not known */
	/* Its device file, /dev/nvidia<minor>; -1 when not known (declared,
	 * not discovered, or NVML did not say).  Node-local: not registered. */
	int minor;
};

/* A token bucket: rate_per_s refills, burst holds; rate 0 is no limit. */
struct node_rate_limit {
	double rate_per_s;
	unsigned burst;
};

#define NODE_AUTH_CERTS_MAX 64

/* auth.certificates.<client name>: {role, tenant}. */
struct node_cert_role {
	char name[ING_TLS_CLIENT_NAME_MAX + 1];
	enum auth_role role;
	char tenant[ING_NAME_MAX + 1]; /* "": every tenant (viewer, submitter) */
};

/* `auth:` (docs/operations.md "Authentication"). */
struct node_auth_config {
	/* auth.jwt: JWTs of the customer's identity provider, verified
	 * offline (node/auth/jwt.h); jwt false: JWTs are refused. */
	bool jwt;
	char jwt_issuer[512];
	char jwt_audience[512];
	char jwt_keys[512]; /* PEM or JWKS file of the provider's public keys */
	char jwt_role_claim[128];
	char jwt_tenant_claim[128];
	char jwt_subject_claim[128];
	unsigned jwt_leeway_s;
	struct auth_jwt_role_map jwt_role_map[AUTH_JWT_MAX_ROLE_MAP];
	unsigned jwt_nrole_map;
	/* auth.rate_limits: per principal, by role (index enum auth_role,
	 * AUTH_ROLE_VIEWER..AUTH_ROLE_ADMIN); [AUTH_ROLE_NONE] is
	 * `unauthenticated`: per source address, for requests without a
	 * valid credential.  Member nodes are never limited. */
	struct node_rate_limit rate_limits[AUTH_ROLE_ADMIN + 1];
	unsigned rate_limit_entries; /* buckets kept (auth.rate_limit_entries) */
	/* auth.certificates: the role (and tenant) of each client certificate
	 * name (ingot:client:NAME, TLS); a certificate not named grants
	 * nothing. */
	struct node_cert_role certs[NODE_AUTH_CERTS_MAX];
	unsigned ncerts;
};

struct node_peer {
	uint64_t id;
	char raft_address[NODE_ADDRESS_MAX];
	char api_address[NODE_ADDRESS_MAX];
};

struct node_config {
	uint64_t id;
	char data_dir[512];
	char raft_address[NODE_ADDRESS_MAX];
	char api_address[NODE_ADDRESS_MAX];
	struct node_peer peers[NODE_MAX_PEERS];
	unsigned npeers;
	unsigned election_timeout_ms;
	unsigned heartbeat_timeout_ms;
	unsigned connect_retry_ms;
	unsigned snapshot_threshold;
	unsigned snapshot_trailing;
	unsigned snapshot_interval_ms; /* at most one snapshot per interval (raft/fsm.h) */
	unsigned max_frame_bytes;
	unsigned request_timeout_ms; /* how long a request waits for a leader */
	/* The API server's limits (rpc/server.h); the defaults are rpc/'s. */
	unsigned max_connections;
	unsigned max_connections_per_address;
	unsigned max_output_bytes;
	unsigned max_calls;
	unsigned idle_timeout_ms;
	unsigned frame_timeout_ms;
	struct node_tls_config tls;
	enum store_sync store_sync;
	unsigned store_commit_interval_ms; /* age at which the apply batch commits */
	uint64_t store_map_bytes;          /* initial LMDB map; 0: storage's default */
	uint64_t store_map_max_bytes;      /* the map's ceiling; 0: storage's default */
	uint64_t store_reserve_bytes;      /* low-space margin; 0: storage's default */
	enum ing_log_level log_level;
	enum ing_log_format log_format;      /* text (default) or json */
	char log_file[512];                  /* "" : stderr; reopened on SIGHUP */
	char http_address[NODE_ADDRESS_MAX]; /* "" : no HTTP server */
	/* The worker: what this node can run. */
	char caps[ING_MAX_CAPS][ING_NAME_MAX + 1];
	unsigned ncaps;
	char label_keys[ING_MAX_LABELS][ING_NAME_MAX + 1];
	char label_values[ING_MAX_LABELS][ING_LABEL_VALUE_MAX + 1];
	unsigned nlabels;
	unsigned slots; /* concurrent attempts (0: runs nothing) */
	bool probe;     /* add probed toolchains, CPU facts and GPUs to caps/labels */
	enum node_gpus_mode gpus_mode;
	unsigned gpus_count;             /* NODE_GPUS_COUNT */
	unsigned gpu_list[ING_MAX_GPUS]; /* NODE_GPUS_LIST */
	unsigned ngpu_list;
	struct node_gpu gpus[ING_MAX_GPUS]; /* offered: set at start from the above */
	unsigned ngpus;
	bool keep_failed_workdirs; /* keep an attempt's directory when it fails */
	unsigned heartbeat_interval_ms;
	unsigned node_down_after_ms; /* leader: silent this long -> declared down */
	unsigned retry_backoff_ms;   /* wait before re-running a lost attempt (doubles) */
	/* leader: attempts a node may be given beyond its slots, waiting there
	 * for one (0: none), of targets whose attempts ran at most this long */
	unsigned assign_ahead;
	unsigned assign_ahead_max_ms;
	/* Membership (node/member/). */
	char join[NODE_MAX_PEERS][NODE_ADDRESS_MAX]; /* API addresses to ask for admission */
	unsigned njoin;
	uint8_t join_role;                  /* enum rec_role asked for when joining */
	unsigned voters;                    /* self-healing target (0: off) */
	unsigned standbys;                  /* standbys kept when spares allow */
	unsigned voter_replace_after_ms;    /* a voter silent this long is replaced */
	unsigned member_catchup_timeout_ms; /* a new member must catch up within it */
	bool leave_on_shutdown;             /* SIGTERM: leave the cluster first */
	struct node_auth_config auth;
	/* The stage sandbox (node/worker/sandbox.h). */
	bool sandbox;                  /* sandbox: on|off */
	bool sandbox_allow_daemon_uid; /* without root: stages under the daemon's uid */
	uint32_t sandbox_uid_base;     /* 0: SANDBOX_DEFAULT_UID_BASE + (id-1) % 1024 * count */
	uint32_t sandbox_uid_count;    /* 0: SANDBOX_DEFAULT_UID_COUNT */
	char sandbox_paths[NODE_SANDBOX_PATHS_MAX][NODE_PATH_MAX]; /* extra read-only paths */
	unsigned nsandbox_paths;
	char sandbox_devices[NODE_SANDBOX_PATHS_MAX][NODE_PATH_MAX]; /* e.g. /dev/nvidia0 */
	unsigned nsandbox_devices;
	/* The node's ceilings for every stage (0: none); a target's own limit
	 * applies when lower. */
	uint64_t stage_memory_bytes;
	uint64_t stage_cpu_seconds;
	uint64_t stage_processes;
	uint64_t stage_output_bytes;
	uint64_t stage_open_files;
	uint64_t work_quota_bytes; /* disk of an attempt's directory (0: no quota) */
	uint64_t stage_tmp_bytes;  /* the private /tmp (memory-backed) */
};

/* Parses "A:P[,A:P...]" into c->join (the --join flag).  ING_EINVAL naming
 * the bad entry. */
int node_config_set_join(struct node_config *c, const char *list, struct ing_error *e);

/* Whether an attempt holding GPU g can be given that GPU alone: discovery
 * found it (its uuid) and its device file (minor >= 0). */
bool node_gpu_pinned(const struct node_gpu *g);

/* Defaults for every optional key (no id, addresses or peers). */
void node_config_defaults(struct node_config *c);
/* The single-node development cluster: id 1, API 127.0.0.1:7401, raft
 * 127.0.0.1:7501, data in ./ingot-dev. */
void node_config_dev(struct node_config *c);
/* Reads `path` over the values already in c.  ING_EINVAL / ING_EIO with a
 * message "FILE:LINE: key 'x': ...". */
int node_config_load(struct node_config *c, const char *path, struct ing_error *e);
/* Final checks once flags are applied: required keys present, id among the
 * peers with the same addresses, no duplicates.  `source` names the file
 * (or "--dev") in messages. */
int node_config_check(struct node_config *c, const char *source, struct ing_error *e);
/*
 * The daemon's rule for plaintext: without `tls`, every address the node
 * binds (api_address, raft_address) must be a loopback address (127/8).
 * ING_EINVAL with a message saying how to make certificates.  Offline
 * tools (ingotd recover) do not apply it.
 */
int node_config_check_tls(const struct node_config *c, const char *source, struct ing_error *e);

#endif
