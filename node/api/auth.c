/*
 * auth.c - who is asking (authentication), how often (rate limits), and
 * what was refused (counts and log lines); docs/api.md "Authentication".
 *
 * Every request is authenticated where it arrives, before anything else,
 * from what it carries (node/auth/principal.h names the kinds):
 *   - a token field starting "ingot_": one of the cluster's tokens, looked
 *     up by the SHA-256 of its secret in this node's committed tokens
 *     table (so a revocation counts on a node once applied there, for
 *     every request, open connections included); unknown, revoked and
 *     expired tokens are refused;
 *   - a token field of three dot-separated parts: a JWT of the configured
 *     identity provider (auth.jwt), verified offline;
 *   - anything else in the token field: refused;
 *   - no token, over TLS: the connection's verified certificate; a node
 *     certificate (ingot:node:N) is member node N, a client certificate
 *     (ingot:client:NAME) is principal cert:NAME with the role and tenant
 *     auth.certificates gives NAME -- none when it does not name it (a
 *     certificate alone grants nothing); no certificate is nobody;
 *   - no token, on a plaintext protocol connection from a loopback
 *     address: a member node of unknown id (dev mode: node-internal calls
 *     cannot be proven there; docs/operations.md says why dev mode is for
 *     one machine only); otherwise, the HTTP API's local calls included,
 *     nobody (kind none), which no operation accepts;
 *   - an on_behalf field (protocol.md): a follower forwarding the request
 *     of a principal proven by its connection ("cert:NAME", "node:N");
 *     taken only from a connection with a node certificate and no token,
 *     and resolved here (this node's auth.certificates), not trusted from
 *     the follower beyond the name.
 * A well-formed token this node does not know may have been created a
 * moment ago and not be applied here yet: a follower forwards such a
 * request when it would anyway (writes, linearizable reads, leader
 * operations), unchecked, and the leader decides; anything it serves itself
 * is refused (ops.c).
 *
 * The principal is attached to the call (rpc_call_set_data) and read by
 * the handlers (tenant scoping, the principal a write records).  A parked
 * call is authenticated again when it is dispatched again (a token
 * revoked meanwhile no longer serves), but charged to its rate limit once.
 *
 * Rate limits (auth.rate_limits): one token bucket per principal of a
 * client role (node/auth/ratelimit.h; member nodes are not limited), and
 * one per source address for requests without a valid credential.
 * Refusals -- unauthenticated, permission_denied, rate_limited -- are
 * counted per principal and per address in a fixed table (the least
 * recently refused entry makes room; totals are kept apart) and logged, at
 * most LOG_PER_S lines a second with a count of the lines left out.
 * Nothing of this is replicated.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/api/api_internal.h"
#include "node/auth/jwt.h"
#include "node/auth/ratelimit.h"
#include "node/auth/token.h"
#include "rpc/frame.h"

#define REFUSAL_ROWS 256
#define LOG_PER_S    20

struct refusal_row {
	char key[AUTH_NAME_MAX + 1]; /* "token:7", "addr:127.0.0.1"; "" when free */
	uint64_t count[API_REFUSAL_KINDS];
	uint64_t last_ms;
};

struct api_auth {
	struct auth_jwt *jwt; /* NULL: JWTs are refused */
	struct auth_limiter *limiter;
	struct refusal_row rows[REFUSAL_ROWS];
	uint64_t totals[API_REFUSAL_KINDS];
	uint64_t log_second;
	unsigned log_lines;
	uint64_t log_dropped;
};

/* Attached to each call. */
struct api_caller {
	struct auth_principal p;
	bool charged; /* its rate limit was taken (first dispatch) */
	bool unknown; /* an ingot token this node does not know (yet) */
	char why[ING_ERROR_MSG_MAX];
};

static const struct auth_principal nobody = {.kind = AUTH_KIND_NONE, .name = "none"};

/* ---- the module's life ----------------------------------------------------- */

int api_auth_new(const struct node_config *cfg, struct api_auth **out, struct ing_error *e)
{
	const struct node_auth_config *ac = &cfg->auth;
	struct api_auth *au = calloc(1, sizeof(*au));
	int rv;

	if (au == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	rv = auth_limiter_new(ac->rate_limit_entries, &au->limiter);
	if (rv != 0) {
		free(au);
		return ing_error_set(e, rv, "auth.rate_limit_entries: %s", ing_err_msg(rv));
	}
	if (ac->jwt) {
		struct auth_jwt_options o = {
		    .issuer = ac->jwt_issuer,
		    .audience = ac->jwt_audience,
		    .keys_path = ac->jwt_keys,
		    .role_claim = ac->jwt_role_claim[0] ? ac->jwt_role_claim : NULL,
		    .tenant_claim = ac->jwt_tenant_claim[0] ? ac->jwt_tenant_claim : NULL,
		    .subject_claim = ac->jwt_subject_claim[0] ? ac->jwt_subject_claim : NULL,
		    .leeway_s = ac->jwt_leeway_s,
		    .role_map = ac->jwt_role_map,
		    .nrole_map = ac->jwt_nrole_map,
		};
		rv = auth_jwt_new(&o, &au->jwt, e);
		if (rv != 0) {
			auth_limiter_free(au->limiter);
			free(au);
			return rv;
		}
		ING_LOG_INFO("JWT verification on issuer=\"%s\" audience=\"%s\" keys=%u file=%s",
		             ac->jwt_issuer, ac->jwt_audience, auth_jwt_nkeys(au->jwt),
		             ac->jwt_keys);
	}
	*out = au;
	return 0;
}

void api_auth_free(struct api_auth *au)
{
	if (au == NULL)
		return;
	auth_jwt_free(au->jwt);
	auth_limiter_free(au->limiter);
	free(au);
}

/* ---- refusals ------------------------------------------------------------------ */

static const char *const refusal_names[API_REFUSAL_KINDS] = {"unauthenticated", "permission_denied",
                                                             "rate_limited"};

static void count_under(struct api_auth *au, const char *key, enum api_refusal kind, uint64_t now)
{
	struct refusal_row *victim = &au->rows[0];
	for (unsigned i = 0; i < REFUSAL_ROWS; i++) {
		struct refusal_row *r = &au->rows[i];
		if (strcmp(r->key, key) == 0) {
			r->count[kind]++;
			r->last_ms = now;
			return;
		}
		if (victim->key[0] != '\0' && (r->key[0] == '\0' || r->last_ms < victim->last_ms))
			victim = r;
	}
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	victim->count[kind] = 1;
	victim->last_ms = now;
}

/* The source address without its port: "127.0.0.1". */
static void peer_host(const struct rpc_call *call, char out[32])
{
	const char *addr = rpc_call_peer(call)->address;
	const char *colon = strrchr(addr, ':');
	snprintf(out, 32, "%.*s", colon != NULL ? (int)(colon - addr) : (int)strlen(addr), addr);
}

static void refused(struct api_auth *au, struct rpc_call *call, const struct auth_principal *p,
                    enum api_refusal kind, const char *msg)
{
	uint64_t now = node_now_ms();
	char host[32], key[AUTH_NAME_MAX + 1];

	peer_host(call, host);
	au->totals[kind]++;
	snprintf(key, sizeof(key), "addr:%s", host);
	count_under(au, key, kind, now);
	if (p != NULL && p->kind != AUTH_KIND_NONE)
		count_under(au, p->name, kind, now);
	if (now / 1000 != au->log_second) {
		if (au->log_dropped > 0)
			ING_LOG_WARN("request refusals not logged count=%" PRIu64 " (at most %d "
			             "lines a second)",
			             au->log_dropped, LOG_PER_S);
		au->log_second = now / 1000;
		au->log_lines = 0;
		au->log_dropped = 0;
	}
	if (au->log_lines++ >= LOG_PER_S) {
		au->log_dropped++;
		return;
	}
	struct ing_str op = rpc_call_op(call);
	ING_LOG_WARN("request refused error=%s op=%.*s principal=%s peer=%s msg=\"%s\"",
	             refusal_names[kind], (int)(op.len > 64 ? 64 : op.len), op.ptr,
	             p != NULL ? p->name : "none", rpc_call_peer(call)->address, msg);
}

void api_refusals(const struct api *a, api_refusal_fn fn, void *data)
{
	const struct api_auth *au = a->auth;
	for (unsigned i = 0; i < REFUSAL_ROWS; i++)
		if (au->rows[i].key[0] != '\0')
			fn(data, au->rows[i].key, au->rows[i].count);
}

void api_refusal_totals(const struct api *a, uint64_t out[API_REFUSAL_KINDS])
{
	memcpy(out, a->auth->totals, sizeof(a->auth->totals));
}

/* ---- authentication ---------------------------------------------------------- */

static bool loopback(const char *host)
{
	struct in_addr in;
	return inet_pton(AF_INET, host, &in) == 1 && (ntohl(in.s_addr) >> 24) == 127;
}

static enum auth_role role_of_token(uint8_t r)
{
	switch (r) {
	case REC_TOKEN_ADMIN: return AUTH_ROLE_ADMIN;
	case REC_TOKEN_OPERATOR: return AUTH_ROLE_OPERATOR;
	case REC_TOKEN_SUBMITTER: return AUTH_ROLE_SUBMITTER;
	case REC_TOKEN_VIEWER: return AUTH_ROLE_VIEWER;
	}
	return AUTH_ROLE_NONE;
}

uint8_t api_token_role(enum auth_role r)
{
	switch (r) {
	case AUTH_ROLE_ADMIN: return REC_TOKEN_ADMIN;
	case AUTH_ROLE_OPERATOR: return REC_TOKEN_OPERATOR;
	case AUTH_ROLE_SUBMITTER: return REC_TOKEN_SUBMITTER;
	default: return REC_TOKEN_VIEWER;
	}
}

/*
 * What a connection's last token was found to be (rpc_call_conn_data): a
 * client sends the same token with every request of a connection, so its
 * parse and hash are not done again, nor, while the token's stored record
 * is byte for byte the one it was checked against, the record's decode.
 * The record is still read and compared, and the expiry checked against the
 * clock, on every request: a token revoked (its record rewritten) or
 * expired is refused on open connections exactly as on new ones.  The
 * secret is wiped when the connection ends.
 */
#define TOKEN_MEMO_RECORD_MAX 1024

struct token_memo {
	char tok[AUTH_TOKEN_MAX];
	uint32_t tok_len; /* 0: nothing kept */
	uint64_t id;
	uint8_t hash[AUTH_TOKEN_HASH_BYTES];
	uint32_t rec_len; /* 0: no record checked yet */
	char rec[TOKEN_MEMO_RECORD_MAX];
	struct auth_principal p; /* what rec gave */
	uint64_t expires_at_ms;  /* rec's expiry (0: never) */
};

static void token_memo_free(void *data)
{
	if (data != NULL)
		OPENSSL_cleanse(data, sizeof(struct token_memo));
	free(data);
}

/* The connection's token memo, made on its first token (NULL for local
 * calls, or without memory: the token is then checked the long way). */
static struct token_memo *token_memo_of(struct rpc_call *call)
{
	struct token_memo *m = rpc_call_conn_data(call);
	if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL &&
	    !rpc_call_set_conn_data(call, m, token_memo_free)) {
		free(m);
		m = NULL;
	}
	return m;
}

/* One of the cluster's tokens, from this node's committed tokens table;
 * m (may be NULL) is the connection's memo. */
static int token_principal(struct node *n, struct token_memo *m, struct ing_str tok,
                           struct auth_principal *p, struct ing_error *e)
{
	uint8_t hash[AUTH_TOKEN_HASH_BYTES];
	struct store_txn *t;
	struct ing_str val;
	struct rec_token r;
	msgpack_zone z;
	uint64_t id;
	int rv = 0;
	bool same_tok = m != NULL && m->tok_len == tok.len && memcmp(m->tok, tok.ptr, tok.len) == 0;

	if (same_tok) {
		id = m->id;
		memcpy(hash, m->hash, sizeof(hash));
	} else if ((rv = auth_token_parse(tok.ptr, tok.len, &id, hash, e)) != 0) {
		char why[ING_ERROR_MSG_MAX];
		snprintf(why, sizeof(why), "%s", e->msg);
		return ing_error_set(e, ING_EUNAUTHENTICATED, "malformed token: %s", why);
	} else if (m != NULL) {
		bool fits = tok.len <= sizeof(m->tok);
		if (fits)
			memcpy(m->tok, tok.ptr, tok.len);
		m->tok_len = fits ? tok.len : 0;
		m->id = id;
		memcpy(m->hash, hash, sizeof(hash));
		m->rec_len = 0;
	}
	rv = store_read_begin(node_store(n), &t);
	if (rv != 0)
		return ing_error_set(e, rv, "cannot read the tokens: %s", ing_err_msg(rv));
	rv = store_get(t, STORE_TOKENS, (struct ing_str){(const char *)hash, sizeof(hash)}, &val);
	if (rv == 0 && same_tok && m->rec_len > 0 && val.len == m->rec_len &&
	    memcmp(val.ptr, m->rec, val.len) == 0) {
		/* The record it was checked against: only the clock can
		 * have changed. */
		store_abort(t);
		if (m->expires_at_ms != 0 && node_now_ms() >= m->expires_at_ms)
			return ing_error_set(e, ING_EUNAUTHENTICATED,
			                     "token %" PRIu64 " expired %" PRIu64 " s ago", id,
			                     (node_now_ms() - m->expires_at_ms) / 1000);
		*p = m->p;
		return 0;
	}
	if (m != NULL)
		m->rec_len = 0;
	msgpack_zone_init(&z, 512);
	if (rv == 0 && rec_token_decode(val, &z, &r, NULL) != 0)
		rv = ING_CORRUPT("token record");
	if (rv == ING_ENOTFOUND || (rv == 0 && r.id != id))
		rv = ing_error_set(e, ING_ENOTFOUND,
		                   "unknown token (no token of this cluster has this id and "
		                   "secret)");
	else if (rv == 0 && r.revoked)
		rv = ing_error_set(e, ING_EUNAUTHENTICATED, "token %" PRIu64 " was revoked", id);
	else if (rv == 0 && r.expires_at_ms != 0 && node_now_ms() >= r.expires_at_ms)
		rv = ing_error_set(e, ING_EUNAUTHENTICATED,
		                   "token %" PRIu64 " expired %" PRIu64 " s ago", id,
		                   (node_now_ms() - r.expires_at_ms) / 1000);
	else if (rv == 0) {
		memset(p, 0, sizeof(*p));
		p->kind = AUTH_KIND_TOKEN;
		p->role = role_of_token(r.role);
		p->token_id = id;
		snprintf(p->name, sizeof(p->name), "token:%" PRIu64, id);
		snprintf(p->tenant, sizeof(p->tenant), "%.*s", ING_STR_FMT(r.tenant));
		if (m != NULL && m->tok_len != 0 && val.len <= sizeof(m->rec)) {
			memcpy(m->rec, val.ptr, val.len);
			m->rec_len = val.len;
			m->p = *p;
			m->expires_at_ms = r.expires_at_ms;
		}
	} else if (rv != ING_EUNAUTHENTICATED && rv != ING_ENOTFOUND) {
		ing_error_set(e, rv, "cannot read the tokens: %s", ing_err_msg(rv));
		if (rv == ING_ECORRUPT)
			node_fatal(n, rv, "token record");
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
	return rv;
}

/* The principal of client certificate `name` (auth.certificates), or one
 * of kind cert without a role when the configuration does not name it. */
static void cert_principal(const struct node_auth_config *ac, const char *name,
                           struct auth_principal *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = AUTH_KIND_CERT;
	snprintf(p->name, sizeof(p->name), "cert:%s", name);
	for (unsigned i = 0; i < ac->ncerts; i++) {
		if (strcmp(ac->certs[i].name, name) == 0) {
			p->role = ac->certs[i].role;
			snprintf(p->tenant, sizeof(p->tenant), "%s", ac->certs[i].tenant);
			return;
		}
	}
}

static void node_principal(uint64_t id, struct auth_principal *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = AUTH_KIND_NODE;
	p->node_id = id;
	snprintf(p->name, sizeof(p->name), "node:%" PRIu64, id);
}

/* on_behalf of a forwarded request: "node:<id>" or "cert:<client name>",
 * taken only from a member node proven by its certificate. */
static int behalf_principal(struct api *a, const struct rpc_call *call, struct ing_str who,
                            struct auth_principal *p, struct ing_error *e)
{
	const struct rpc_peer *peer = rpc_call_peer(call);
	char name[RPC_ON_BEHALF_MAX + 1];
	uint64_t id = 0;

	if (!peer->tls || peer->identity.kind != ING_TLS_PEER_NODE)
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "on_behalf is taken only from a member node's certificate");
	if (rpc_call_token(call).len > 0)
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "a request carries a token or on_behalf, not both");
	snprintf(name, sizeof(name), "%.*s", ING_STR_FMT(who));
	if (strncmp(name, "cert:", 5) == 0 &&
	    ing_tls_client_name_valid(name + 5, strlen(name + 5))) {
		cert_principal(&node_cfg(a->n)->auth, name + 5, p);
		return 0;
	}
	if (strncmp(name, "node:", 5) == 0 && name[5] >= '1' && name[5] <= '9' &&
	    strspn(name + 5, "0123456789") == strlen(name + 5) && strlen(name + 5) <= 19) {
		id = strtoull(name + 5, NULL, 10);
		node_principal(id, p);
		return 0;
	}
	return ing_error_set(e, ING_EUNAUTHENTICATED,
	                     "on_behalf '%s' is neither node:<id> nor cert:<client name>", name);
}

int api_principal_of(struct api *a, const struct rpc_call *call, struct auth_principal *p,
                     struct ing_error *e)
{
	struct ing_str tok = rpc_call_token(call);
	struct ing_str behalf = rpc_call_on_behalf(call);
	const struct rpc_peer *peer = rpc_call_peer(call);
	char host[32];

	if (behalf.len > 0)
		return behalf_principal(a, call, behalf, p, e);
	if (tok.len == 0) {
		*p = nobody;
		if (peer->tls && peer->identity.kind == ING_TLS_PEER_NODE) {
			node_principal(peer->identity.node_id, p);
			return 0;
		}
		if (peer->tls && peer->identity.kind == ING_TLS_PEER_CLIENT) {
			cert_principal(&node_cfg(a->n)->auth, peer->identity.name, p);
			return 0;
		}
		peer_host(call, host);
		if (!peer->tls && !peer->local && loopback(host)) {
			p->kind = AUTH_KIND_NODE;
			snprintf(p->name, sizeof(p->name), "node:loopback");
		}
		return 0;
	}
	if (auth_token_looks_like(tok.ptr, tok.len))
		return token_principal(a->n, rpc_call_conn_data(call), tok, p, e);
	if (auth_jwt_looks_like(tok.ptr, tok.len)) {
		if (a->auth->jwt == NULL)
			return ing_error_set(e, ING_EUNAUTHENTICATED,
			                     "a JWT was given but this node verifies none (no "
			                     "auth.jwt in its configuration)");
		return auth_jwt_verify(a->auth->jwt, tok.ptr, tok.len, node_now_ms() / 1000, p, e);
	}
	return ing_error_set(e, ING_EUNAUTHENTICATED,
	                     "the credential is neither an ingot token (ingot_<id>_<secret>) nor "
	                     "a JWT (three dot-separated parts)");
}

bool api_call_on_behalf(const struct rpc_call *call, char *out, size_t cap)
{
	const struct auth_principal *p = api_caller(call);
	if (rpc_call_token(call).len > 0)
		return false;
	if ((p->kind == AUTH_KIND_CERT && p->role != AUTH_ROLE_NONE) ||
	    (p->kind == AUTH_KIND_NODE && p->node_id != 0)) {
		snprintf(out, cap, "%s", p->name);
		return true;
	}
	return false;
}

static void caller_free(void *data)
{
	free(data);
}

/* Takes one request from the bucket of `key` under limit rl; replies
 * rate_limited and returns false when it is empty.  The refusal names
 * `whose`: p's name and role, or the source address (p NULL). */
static bool within_limit(struct api_auth *au, struct rpc_call *call, const struct auth_principal *p,
                         const char *key, const struct node_rate_limit *rl)
{
	uint64_t retry_ms = 0;
	if (auth_limiter_take(au->limiter, key, strlen(key), rl->rate_per_s, rl->burst,
	                      node_now_ms(), &retry_ms) == 0)
		return true;
	char whose[AUTH_NAME_MAX + 48];
	if (p != NULL)
		snprintf(whose, sizeof(whose), "%s (role %s)", p->name, auth_role_name(p->role));
	else
		snprintf(whose, sizeof(whose), "unauthenticated requests from this address");
	char msg[ING_ERROR_MSG_MAX];
	snprintf(msg, sizeof(msg),
	         "rate limit of %s exceeded (%g requests/s, burst %u); retry_after_ms=%" PRIu64,
	         whose, rl->rate_per_s, rl->burst, retry_ms);
	refused(au, call, p, API_REFUSED_RATE_LIMITED, msg);
	rpc_reply_error(call, ING_ERATELIMITED, "%s", msg);
	return false;
}

const struct auth_principal *api_authenticate(struct api *a, struct rpc_call *call, bool *unknown)
{
	struct api_auth *au = a->auth;
	const struct node_auth_config *ac = &node_cfg(a->n)->auth;
	struct api_caller *c = rpc_call_data(call);
	struct ing_error e;
	char key[AUTH_NAME_MAX + 8], host[32];
	int rv;

	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			rpc_reply_error(call, ING_ENOMEM, "out of memory");
			return NULL;
		}
		rpc_call_set_data(call, c, caller_free);
	}
	ing_error_clear(&e);
	*unknown = false;
	if (rpc_call_token(call).len > 0)
		(void)token_memo_of(call); /* api_principal_of finds it on the call */
	rv = api_principal_of(a, call, &c->p, &e);
	c->unknown = rv == ING_ENOTFOUND;
	if (c->unknown) {
		/* Maybe created a moment ago and not applied here yet: the
		 * leader may know it (dispatch forwards what it can). */
		c->p = nobody;
		snprintf(c->why, sizeof(c->why), "%s", e.msg);
		rv = 0;
	}
	if (rv != 0 && rv != ING_EUNAUTHENTICATED) {
		rpc_reply_error(call, rv, "%s", e.msg);
		return NULL;
	}
	peer_host(call, host);
	if (rv != 0 || c->p.kind == AUTH_KIND_NONE ||
	    (c->p.kind == AUTH_KIND_CERT && c->p.role == AUTH_ROLE_NONE)) {
		/* Without a valid credential (a client certificate that grants
		 * no role is none): the source address's bucket. */
		if (!c->charged) {
			c->charged = true;
			snprintf(key, sizeof(key), "addr:%s", host);
			if (!within_limit(au, call, NULL, key, &ac->rate_limits[AUTH_ROLE_NONE]))
				return NULL;
		}
		*unknown = c->unknown;
		if (rv == 0)
			return &c->p; /* nobody: the operation's check refuses it */
		refused(au, call, NULL, API_REFUSED_UNAUTHENTICATED, e.msg);
		rpc_reply_error(call, ING_EUNAUTHENTICATED, "%s", e.msg);
		return NULL;
	}
	if (!c->charged && c->p.kind != AUTH_KIND_NODE) {
		c->charged = true;
		if (!within_limit(au, call, &c->p, c->p.name, &ac->rate_limits[c->p.role]))
			return NULL;
	}
	c->charged = true;
	return &c->p;
}

const struct auth_principal *api_caller(const struct rpc_call *call)
{
	const struct api_caller *c = rpc_call_data(call);
	return c != NULL ? &c->p : &nobody;
}

struct ing_str api_call_principal(const struct rpc_call *call)
{
	const struct auth_principal *p = api_caller(call);
	if (p->kind == AUTH_KIND_TOKEN || p->kind == AUTH_KIND_JWT || p->kind == AUTH_KIND_CERT)
		return ing_str_c(p->name);
	return (struct ing_str){"", 0};
}

void api_refuse_unknown(struct api *a, struct rpc_call *call)
{
	const struct api_caller *c = rpc_call_data(call);
	struct ing_error e;
	ing_error_set(&e, ING_EUNAUTHENTICATED, "%s", c != NULL ? c->why : "unknown token");
	api_refuse(a, call, &e);
}

void api_refuse(struct api *a, struct rpc_call *call, const struct ing_error *e)
{
	enum api_refusal kind =
	    e->code == ING_EUNAUTHENTICATED ? API_REFUSED_UNAUTHENTICATED : API_REFUSED_DENIED;
	refused(a->auth, call, api_caller(call), kind, e->msg);
	rpc_reply_error(call, e->code, "%s", e->msg);
}
