/*
 * principal.h - who is asking: roles, principals and the permission rules.
 *
 * Roles are ordered: viewer < submitter < operator < admin; each has every
 * right of the ones below it.
 *   viewer     reads (of its own tenant when the principal has one)
 *   submitter  + submits, cancels and retries jobs (of its own tenant)
 *   operator   + targets, nodes, drains, every tenant's jobs
 *   admin      + membership, tokens, cluster settings
 * A principal with a tenant sees only that tenant's jobs, events, logs and
 * artifacts; to it the others do not exist (not_found, never a hint).
 * Operators and admins are never tenant-scoped.  Nodes are a kind of their
 * own (proved by a node certificate): they may make the node-internal calls
 * (worker reports, registration, heartbeats, membership checks) and relay a
 * client's principal when they forward its request; nothing else.
 */
#ifndef INGOT_NODE_AUTH_PRINCIPAL_H
#define INGOT_NODE_AUTH_PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/str.h"
#include "storage/limits.h"

enum auth_role {
	AUTH_ROLE_NONE = 0,
	AUTH_ROLE_VIEWER = 1,
	AUTH_ROLE_SUBMITTER = 2,
	AUTH_ROLE_OPERATOR = 3,
	AUTH_ROLE_ADMIN = 4,
};

enum auth_kind {
	AUTH_KIND_NONE = 0, /* nothing presented */
	AUTH_KIND_TOKEN,    /* one of the cluster's tokens */
	AUTH_KIND_JWT,      /* a JWT from the configured identity provider */
	AUTH_KIND_CERT,     /* a client certificate of the cluster CA */
	AUTH_KIND_NODE,     /* a member node (its certificate, or dev mode) */
};

#define AUTH_NAME_MAX 127

struct auth_principal {
	enum auth_kind kind;
	enum auth_role role;
	char name[AUTH_NAME_MAX + 1];  /* "token:7", "jwt:alice", "cert:ops", "node:3" */
	char tenant[ING_NAME_MAX + 1]; /* "": not tenant-scoped */
	uint64_t token_id;             /* AUTH_KIND_TOKEN: its id */
	uint64_t node_id;              /* AUTH_KIND_NODE: its raft id */
};

/* "viewer", ...; "none" for AUTH_ROLE_NONE. */
const char *auth_role_name(enum auth_role r);
/* Reads a role name; ING_EINVAL (e names the accepted ones) otherwise. */
int auth_role_parse(struct ing_str s, enum auth_role *out, struct ing_error *e);
const char *auth_kind_name(enum auth_kind k);

/* Whether p holds at least `need` (nodes hold no client role). */
bool auth_has_role(const struct auth_principal *p, enum auth_role need);
/* Whether p may see things of `tenant` (true when p is not tenant-scoped). */
bool auth_sees_tenant(const struct auth_principal *p, struct ing_str tenant);

#endif
