/*
 * bootstrap.c - the bootstrap admin token: how the first admin of a new
 * cluster gets in (docs/operations.md "The bootstrap admin token").
 *
 * When a node becomes the ready leader of a cluster in which no token was
 * ever created (meta next_token_id is 0 after the new leader's barrier, so
 * no such entry can still commit), it makes an admin token named
 * "bootstrap-admin":
 *   1. a fresh secret (node/auth/token.h);
 *   2. the token string, with id 1 (the id the first token_create gets),
 *      written to <data_dir>/admin.token: mode 0600, fsync'd, then renamed
 *      into place and the directory fsync'd, so it exists on disk before
 *      the entry can be applied anywhere;
 *   3. token_create proposed with the secret's hash;
 *   4. applied: the token is there (if it got another id, because a
 *      previous leader's bootstrap went first, the file is rewritten with
 *      that id); refused: the file is removed; leadership lost before the
 *      entry was confirmed: the file stays (the entry may still apply) and
 *      the next leader, seeing no token, makes its own.
 * The node logs where the file is.  The secret exists nowhere else: the
 * operator copies the file away (or uses it to create other tokens) and
 * deletes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/auth/token.h"
#include "node/member/member_internal.h"
#include "node/propose.h"
#include "storage/store.h"

#define ADMIN_TOKEN_FILE "admin.token"
#define BOOTSTRAP_NAME   "bootstrap-admin"

struct bootstrap {
	struct member *m;
	char secret[AUTH_TOKEN_SECRET_HEX + 1];
	char path[sizeof(((struct node_config *)0)->data_dir) + sizeof(ADMIN_TOKEN_FILE) + 1];
};

static int write_token(const struct bootstrap *b, uint64_t id, struct ing_error *e)
{
	char token[AUTH_TOKEN_MAX + 1];
	auth_token_format(id, b->secret, token);
	size_t len = strlen(token);
	token[len++] = '\n';
	int rv = ing_write_file(b->path, token, len, 0600, ING_WRITE_ATOMIC | ING_WRITE_SYNC, e);
	OPENSSL_cleanse(token, sizeof(token));
	return rv;
}

static void bootstrap_free(struct bootstrap *b)
{
	b->m->bootstrapping = false;
	OPENSSL_cleanse(b->secret, sizeof(b->secret));
	free(b);
}

static void on_bootstrapped(void *data, int status, const struct node_result *r)
{
	struct bootstrap *b = data;
	struct ing_error e;
	msgpack_zone z;
	msgpack_object v;
	size_t off = 0;

	if (status != 0) {
		ING_LOG_WARN("bootstrap admin token not confirmed (leadership lost); %s may "
		             "hold a token that never took effect: the next leader makes its own "
		             "if so",
		             b->path);
	} else if (r->code != 0) {
		ING_LOG_ERROR("bootstrap admin token refused error=%s msg=\"%s\"; removing %s",
		              ing_err_name(r->code), r->message, b->path);
		unlink(b->path);
	} else {
		msgpack_zone_init(&z, 64);
		if (msgpack_unpack(r->value, r->len, &off, &z, &v) == MSGPACK_UNPACK_SUCCESS &&
		    v.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			if (v.via.u64 != 1 && write_token(b, v.via.u64, &e) != 0)
				ING_LOG_ERROR("bootstrap admin token %" PRIu64 " created but %s "
				              "cannot be rewritten with its id: %s",
				              v.via.u64, b->path, e.msg);
			ING_LOG_INFO("bootstrap admin token created id=%" PRIu64
			             " path=%s (an admin "
			             "token: keep it safe, create the tokens you need with it, "
			             "then delete the file)",
			             v.via.u64, b->path);
		}
		msgpack_zone_destroy(&z);
	}
	bootstrap_free(b);
}

void member_bootstrap_admin(struct member *m)
{
	struct node *n = m->n;
	uint8_t hash[AUTH_TOKEN_HASH_BYTES];
	struct store_txn *t;
	struct ing_error e;
	uint64_t next = 0;
	struct bootstrap *b;
	int rv;

	if (m->bootstrapping || store_read_begin(node_store(n), &t) != 0)
		return;
	rv = store_meta_get_u64(t, "next_token_id", &next);
	store_abort(t);
	if (rv != 0 || next != 0)
		return;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return;
	b->m = m;
	m->bootstrapping = true;
	snprintf(b->path, sizeof(b->path), "%s/" ADMIN_TOKEN_FILE, node_cfg(n)->data_dir);
	if (auth_token_new_secret(b->secret, hash) != 0) {
		ING_LOG_ERROR("bootstrap admin token: the random source failed");
		bootstrap_free(b);
		return;
	}
	if (write_token(b, 1, &e) != 0) {
		ING_LOG_ERROR("bootstrap admin token not created: %s", e.msg);
		bootstrap_free(b);
		return;
	}
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = CMD_TOKEN_CREATE;
	c.request_id = ing_str_c("");
	c.principal = ing_str_c("");
	c.u.token_create.hash = (struct ing_str){(const char *)hash, sizeof(hash)};
	c.u.token_create.name = ing_str_c(BOOTSTRAP_NAME);
	c.u.token_create.tenant = ing_str_c("");
	c.u.token_create.role = REC_TOKEN_ADMIN;
	rv = node_propose(n, &c, on_bootstrapped, b, &e);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (rv != 0) {
		ING_LOG_WARN("bootstrap admin token not proposed error=%s msg=\"%s\"; removing %s",
		             ing_err_name(rv), e.msg, b->path);
		unlink(b->path);
		bootstrap_free(b);
	}
}
