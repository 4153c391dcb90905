/*
 * tokens.c - token.create, token.list and token.revoke (docs/api.md
 * "Tokens"; admin only, ops.c).
 *
 * token.create makes the secret here, on the leader (node/auth/token.h:
 * 32 random bytes), proposes only its SHA-256 (token_create), and once
 * the entry is applied replies with the token string `ingot_<id>_<secret>`:
 * the only time the secret exists outside the client.  The secret is
 * wiped from memory after the reply.  A create is never deduplicated (its
 * request id is not used): the retry of a create whose reply was lost
 * makes a second token, because the first one's secret is gone for good;
 * `token list` shows both and the unused one can be revoked.
 *
 * token.list never shows secrets (the cluster has none); token.revoke
 * marks a token revoked, which every node honours from the moment it
 * applies the entry, on open connections too (every request is checked).
 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/auth/token.h"
#include "node/propose.h"
#include "rpc/args.h"

#define TTL_MAX_MS (10ull * 366 * 86400000) /* ten years */

static const char *const role_names[REC_TOKEN_ROLE_COUNT] = {"admin", "operator", "submitter",
                                                             "viewer"};

struct creation {
	struct rpc_call *call;
	char secret[AUTH_TOKEN_SECRET_HEX + 1];
	char name[ING_NAME_MAX + 1];
	char tenant[ING_NAME_MAX + 1];
	uint8_t role;
	uint64_t expires_at_ms;
};

static void creation_free(struct creation *cr)
{
	OPENSSL_cleanse(cr->secret, sizeof(cr->secret));
	free(cr);
}

static void on_created(void *data, int status, const struct node_result *r)
{
	struct creation *cr = data;
	char token[AUTH_TOKEN_MAX];
	msgpack_zone z;
	msgpack_object v;
	size_t off = 0;
	struct mp_out o;

	if (status != 0) {
		rpc_reply_error(cr->call, ING_EUNAVAILABLE,
		                "leadership changed before the token was confirmed; if `token "
		                "list` shows it, revoke it and create another");
		creation_free(cr);
		return;
	}
	if (r->code != 0) {
		rpc_reply_error(cr->call, r->code, "%s", r->message);
		creation_free(cr);
		return;
	}
	msgpack_zone_init(&z, 64);
	if (msgpack_unpack(r->value, r->len, &off, &z, &v) != MSGPACK_UNPACK_SUCCESS ||
	    v.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		rpc_reply_error(cr->call, ING_EINTERNAL,
		                "unexpected result from the state machine");
	} else {
		auth_token_format(v.via.u64, cr->secret, token);
		mp_out_init(&o);
		msgpack_pack_map(&o.pk, 6);
		view_key(&o.pk, "id");
		msgpack_pack_uint64(&o.pk, v.via.u64);
		view_key(&o.pk, "token");
		mp_pack_cstr(&o.pk, token);
		view_key(&o.pk, "name");
		mp_pack_cstr(&o.pk, cr->name);
		view_key(&o.pk, "role");
		mp_pack_cstr(&o.pk, role_names[cr->role]);
		view_key(&o.pk, "tenant");
		if (cr->tenant[0] != '\0')
			mp_pack_cstr(&o.pk, cr->tenant);
		else
			msgpack_pack_nil(&o.pk);
		view_key(&o.pk, "expires_at");
		if (cr->expires_at_ms != 0)
			msgpack_pack_uint64(&o.pk, cr->expires_at_ms);
		else
			msgpack_pack_nil(&o.pk);
		api_reply_out(cr->call, &o);
		OPENSSL_cleanse(token, sizeof(token));
	}
	msgpack_zone_destroy(&z);
	creation_free(cr);
}

void api_op_token_create(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"role", "tenant", "name", "ttl_ms", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str role_s, tenant = {"", 0}, name = {"", 0};
	struct ing_error e;
	enum auth_role role = AUTH_ROLE_NONE;
	uint8_t hash[AUTH_TOKEN_HASH_BYTES];
	uint64_t ttl = 0;
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	rv = rpc_arg_str(args, "role", 16, true, &role_s, &e);
	if (rv == 0 && auth_role_parse(role_s, &role, NULL) != 0)
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'role': '%.*s' is not viewer, submitter, operator or "
		                   "admin",
		                   (int)role_s.len, role_s.ptr);
	if (rv == 0)
		rv = rpc_arg_str(args, "tenant", ING_NAME_MAX, false, &tenant, &e);
	if (rv == 0 && tenant.len > 0 && !cmd_name_valid(tenant))
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'tenant': not a valid name (1-%d bytes of "
		                   "[A-Za-z0-9._-], not starting with '.' or '-')",
		                   ING_NAME_MAX);
	if (rv == 0 && tenant.len > 0 && role >= AUTH_ROLE_OPERATOR)
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'tenant': a %s token is not scoped to a tenant (only "
		                   "viewer and submitter tokens are)",
		                   auth_role_name(role));
	if (rv == 0)
		rv = rpc_arg_str(args, "name", ING_NAME_MAX, false, &name, &e);
	if (rv == 0 && name.len > 0 && !cmd_name_valid(name))
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'name': not a valid name (1-%d bytes of "
		                   "[A-Za-z0-9._-], not starting with '.' or '-')",
		                   ING_NAME_MAX);
	if (rv == 0)
		rv = rpc_arg_u64(args, "ttl_ms", TTL_MAX_MS, false, &ttl, &e);
	if (rv != 0) {
		api_reply_err(call, &e);
		return;
	}
	struct creation *cr = calloc(1, sizeof(*cr));
	if (cr == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	if (auth_token_new_secret(cr->secret, hash) != 0) {
		creation_free(cr);
		rpc_reply_error(call, ING_EINTERNAL, "the random source failed");
		return;
	}
	cr->call = call;
	cr->role = api_token_role(role);
	snprintf(cr->name, sizeof(cr->name), "%.*s",
	         name.len > 0 ? (int)name.len : (int)strlen(auth_role_name(role)),
	         name.len > 0 ? name.ptr : auth_role_name(role));
	snprintf(cr->tenant, sizeof(cr->tenant), "%.*s", ING_STR_FMT(tenant));
	cr->expires_at_ms = ttl > 0 ? node_now_ms() + ttl : 0;

	struct cmd c = api_new_cmd(CMD_TOKEN_CREATE);
	c.principal = api_call_principal(call);
	c.u.token_create.hash = (struct ing_str){(const char *)hash, sizeof(hash)};
	c.u.token_create.name = ing_str_c(cr->name);
	c.u.token_create.tenant = ing_str_c(cr->tenant);
	c.u.token_create.role = cr->role;
	c.u.token_create.expires_at_ms = cr->expires_at_ms;
	rv = node_propose(n, &c, on_created, cr, &e);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (rv == 0)
		return;
	creation_free(cr);
	if (rv == ING_ENOTLEADER)
		api_park(node_api(n), call);
	else
		api_reply_err(call, &e);
}

void api_op_token_revoke(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct cmd c = api_new_cmd(CMD_TOKEN_REVOKE);
	uint64_t id;

	if (api_read_id(call, known, &id) != 0)
		return;
	if (id == 0) {
		rpc_reply_error(call, ING_EINVAL, "argument 'id': token ids start at 1");
		return;
	}
	c.u.token_revoke.id = id;
	api_propose(n, call, &c, SHAPE_ID, 0, ing_str_c(""));
}

struct listed {
	uint64_t id;
	size_t off, len; /* the record's view in the body buffer */
};

static int by_id(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void view_token(msgpack_packer *pk, const struct rec_token *t)
{
	msgpack_pack_map(pk, 8);
	view_key(pk, "id");
	msgpack_pack_uint64(pk, t->id);
	view_key(pk, "name");
	mp_pack_str(pk, t->name);
	view_key(pk, "role");
	mp_pack_cstr(pk, role_names[t->role]);
	view_key(pk, "tenant");
	if (t->tenant.len > 0)
		mp_pack_str(pk, t->tenant);
	else
		msgpack_pack_nil(pk);
	view_key(pk, "created_at");
	msgpack_pack_uint64(pk, t->created_at_ms);
	view_key(pk, "expires_at");
	if (t->expires_at_ms != 0)
		msgpack_pack_uint64(pk, t->expires_at_ms);
	else
		msgpack_pack_nil(pk);
	view_key(pk, "revoked");
	mp_pack_bool(pk, t->revoked);
	view_key(pk, "created_by");
	if (t->created_by.len > 0)
		mp_pack_str(pk, t->created_by);
	else
		msgpack_pack_nil(pk);
}

void api_op_token_list(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"stale", NULL};
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	struct mp_out body, o;
	struct listed *rows = NULL;
	size_t nrows = 0, cap = 0;
	msgpack_zone z;
	int rv;

	if (api_check_known(call, known) != 0 || api_read_begin(n, call, &t) != 0)
		return;
	mp_out_init(&body);
	msgpack_zone_init(&z, 1024);
	rv = store_iter_open(t, STORE_TOKENS, (struct ing_str){"", 0}, &it);
	bool opened = rv == 0;
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_token tok;
		if (rec_token_decode(v, &z, &tok, NULL) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		if (nrows == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			struct listed *p = realloc(rows, ncap * sizeof(*p));
			if (p == NULL) {
				rv = ING_ENOMEM;
				break;
			}
			rows = p;
			cap = ncap;
		}
		rows[nrows].id = tok.id;
		rows[nrows].off = body.len;
		view_token(&body.pk, &tok);
		rows[nrows].len = body.len - rows[nrows].off;
		nrows++;
		msgpack_zone_clear(&z);
	}
	if (opened)
		store_iter_close(it);
	store_abort(t);
	msgpack_zone_destroy(&z);
	if (rv == ING_ENOTFOUND && mp_out_failed(&body) != 0)
		rv = ING_ENOMEM;
	if (rv != ING_ENOTFOUND) {
		free(rows);
		mp_out_free(&body);
		if (rv == ING_ECORRUPT)
			api_corrupt_reply(n, call, "token record");
		else
			rpc_reply_error(call, rv, "cannot list tokens: %s", ing_err_msg(rv));
		return;
	}
	qsort(rows, nrows, sizeof(*rows), by_id);
	mp_out_init(&o);
	msgpack_pack_array(&o.pk, (uint32_t)nrows);
	for (size_t i = 0; i < nrows; i++)
		mp_out_raw(&o, body.data + rows[i].off, rows[i].len);
	free(rows);
	mp_out_free(&body);
	api_reply_out(call, &o);
}
