/*
 * sm_token.c - apply of token commands (docs/formats.md "tokens").
 *
 * The tokens table is keyed by the SHA-256 of a token's secret, so a node
 * checks a presented token with one lookup.  token_create gives the token
 * the next id of the meta counter "next_token_id" (the apply result: the
 * proposer needs it to tell the client its token) and records it as
 * version 2; a hash that is already there is refused (`conflict`: two
 * random 32-byte secrets do not collide, so it is a replayed proposal).
 * token_revoke finds the token by id (a scan: the table holds what
 * operators created, and revoking is rare) and marks it revoked; the row
 * stays, so the audit trail can still name the token and its creator.
 * Revoking a revoked token succeeds and changes nothing.  Each records a
 * cluster event with the principal that asked.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "node/sm/sm_internal.h"

#define META_NEXT_TOKEN_ID "next_token_id"

static const char *const role_names[REC_TOKEN_ROLE_COUNT] = {"admin", "operator", "submitter",
                                                             "viewer"};

int sm_token_create(struct sm_ctx *x)
{
	const __typeof__(x->c->u.token_create) *c = &x->c->u.token_create;
	struct ing_str val;
	uint64_t id;
	int rv = store_get(x->t, STORE_TOKENS, c->hash, &val);

	if (rv == 0)
		return sm_reject(x, ING_ECONFLICT, "a token with this secret already exists");
	if (rv != ING_ENOTFOUND)
		return rv;
	rv = store_next_id(x->t, META_NEXT_TOKEN_ID, &id);
	if (rv != 0)
		return rv;
	struct rec_token tok = {
	    .id = id,
	    .name = c->name,
	    .tenant = c->tenant,
	    .role = c->role,
	    .created_at_ms = x->c->time_ms,
	    .revoked = false,
	    .expires_at_ms = c->expires_at_ms,
	    .created_by = x->c->principal,
	};
	mp_out_reset(&x->sm->enc);
	rec_token_encode(&tok, &x->sm->enc);
	rv = sm_put_encoded(x, STORE_TOKENS, c->hash);
	/* gmtime_r reads no clock, time zone or locale: deterministic. */
	char expiry[64] = "never expires";
	time_t secs = (time_t)(c->expires_at_ms / 1000);
	struct tm tm;
	if (c->expires_at_ms > 0 && gmtime_r(&secs, &tm) != NULL)
		strftime(expiry, sizeof(expiry), "expires %Y-%m-%dT%H:%M:%SZ", &tm);
	if (rv == 0)
		rv = sm_cluster_event_add(x, REC_EV_TOKEN_CREATED, 0,
		                          "token %" PRIu64
		                          " '%.*s' created: role %s, tenant %.*s, %s",
		                          id, ING_STR_FMT(c->name), role_names[c->role],
		                          c->tenant.len > 0 ? (int)c->tenant.len : 5,
		                          c->tenant.len > 0 ? c->tenant.ptr : "(all)", expiry);
	if (rv == 0)
		sm_result_uint(x, id);
	return rv;
}

int sm_token_revoke(struct sm_ctx *x)
{
	uint64_t id = x->c->u.token_revoke.id;
	struct store_iter *it;
	struct ing_str k, v;
	struct ing_error e;
	struct rec_token tok;
	uint8_t key[ING_SHA256_BYTES];
	bool found = false;
	int rv = store_iter_open(x->t, STORE_TOKENS, (struct ing_str){"", 0}, &it);

	while (rv == 0 && !found && (rv = store_iter_next(it, &k, &v)) == 0) {
		rv = rec_token_decode(v, x->z, &tok, &e);
		if (rv != 0) {
			rv = rv == ING_ENOMEM ? rv : ING_CORRUPT("token record does not decode");
			break;
		}
		if (tok.id == id && k.len == ING_SHA256_BYTES) {
			memcpy(key, k.ptr, sizeof(key));
			found = true;
		}
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	if (rv != 0 && rv != ING_ENOTFOUND)
		return rv;
	if (!found)
		return sm_reject(x, ING_ENOTFOUND, "token %" PRIu64 " does not exist", id);
	sm_result_uint(x, id);
	if (tok.revoked)
		return 0;
	tok.revoked = true;
	mp_out_reset(&x->sm->enc);
	rec_token_encode(&tok, &x->sm->enc);
	rv = sm_put_encoded(x, STORE_TOKENS, (struct ing_str){(const char *)key, sizeof(key)});
	if (rv == 0)
		rv = sm_cluster_event_add(x, REC_EV_TOKEN_REVOKED, 0,
		                          "token %" PRIu64 " '%.*s' revoked", id,
		                          ING_STR_FMT(tok.name));
	return rv;
}
