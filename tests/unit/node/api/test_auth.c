/*
 * test_auth.c - who may call what (node/api/ops.c's api_op_permit, the op
 * table's need and nodes columns) and the tenant rule (node/auth's
 * auth_sees_tenant): the whole matrix of operations against every kind of
 * caller, written out here independently of the table, so a changed row
 * in one of them fails the test.
 *
 * Callers (columns): nobody; a member node whose id is not proven (dev
 * mode, loopback without a credential); node 3 proven (its certificate);
 * viewer, submitter, operator, admin without a tenant; viewer and
 * submitter of tenant team-a; a client certificate that grants no role
 * (auth.certificates does not name it) and one named with role operator.
 * Cells: '.' allowed, 'U' unauthenticated,
 * 'D' permission_denied, 'I' invalid (unknown operation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/mp.h"
#include "node/api/api_internal.h"

enum {
	NOBODY,
	DEVNODE,
	NODE3,
	VIEWER,
	SUBMITTER,
	OPERATOR,
	ADMIN,
	T_VIEWER,
	T_SUBMITTER,
	CERT_NONE, /* a client certificate auth.certificates does not name */
	CERT_OPS,  /* one it names with role operator */
	NCALLERS
};

static struct auth_principal caller(int which)
{
	struct auth_principal p;
	memset(&p, 0, sizeof(p));
	switch (which) {
	case NOBODY: snprintf(p.name, sizeof(p.name), "none"); break;
	case DEVNODE:
		p.kind = AUTH_KIND_NODE;
		snprintf(p.name, sizeof(p.name), "node:loopback");
		break;
	case NODE3:
		p.kind = AUTH_KIND_NODE;
		p.node_id = 3;
		snprintf(p.name, sizeof(p.name), "node:3");
		break;
	case CERT_NONE:
		p.kind = AUTH_KIND_CERT;
		snprintf(p.name, sizeof(p.name), "cert:stranger");
		break;
	case CERT_OPS:
		p.kind = AUTH_KIND_CERT;
		p.role = AUTH_ROLE_OPERATOR;
		snprintf(p.name, sizeof(p.name), "cert:ops");
		break;
	default:
		p.kind = which >= T_VIEWER ? AUTH_KIND_JWT : AUTH_KIND_TOKEN;
		p.role = which == VIEWER || which == T_VIEWER         ? AUTH_ROLE_VIEWER
		         : which == SUBMITTER || which == T_SUBMITTER ? AUTH_ROLE_SUBMITTER
		         : which == OPERATOR                          ? AUTH_ROLE_OPERATOR
		                                                      : AUTH_ROLE_ADMIN;
		snprintf(p.name, sizeof(p.name), "token:%d", which);
		if (which >= T_VIEWER)
			snprintf(p.tenant, sizeof(p.tenant), "team-a");
		break;
	}
	return p;
}

struct row {
	const char *op;
	const char *cells; /* NCALLERS characters */
};

/* args {id: 3} (the proven node's own id). */
static const struct row matrix[] = {
    {"status", "UUD......U."},           {"node.info", "U........U."},
    {"target.put", "UUDDD..DDU."},       {"target.get", "UUD......U."},
    {"target.list", "UUD......U."},      {"target.delete", "UUDDD..DDU."},
    {"job.submit", "UUDD...D.U."},       {"job.get", "UUD......U."},
    {"job.list", "UUD......U."},         {"job.cancel", "UUDD...D.U."},
    {"job.retry", "UUDD...D.U."},        {"job.events", "UUD......U."},
    {"job.watch", "UUD......U."},        {"node.list", "UUD......U."},
    {"node.drain", "UUDDD..DDU."},       {"node.undrain", "UUDDD..DDU."},
    {"node.forget", "UUDDD..DDU."},      {"artifact.get", "UUD......U."},
    {"node.register", "U..DDDDDDUD"},    {"node.heartbeat", "U..DDDDDDUD"},
    {"worker.report", "U..DDDDDDUD"},    {"member.add", "U..DDD.DDUD"},
    {"member.promote", "UUDDDD.DDUD"},   {"member.demote", "UUDDDD.DDUD"},
    {"member.remove", "U..DDD.DDUD"},    {"member.transfer", "UUDDDD.DDUD"},
    {"member.check", "U..DDD.DDUD"},     {"cluster.events", "UUD....DDU."},
    {"token.create", "UUDDDD.DDUD"},     {"token.list", "UUDDDD.DDUD"},
    {"token.revoke", "UUDDDD.DDUD"},     {"audit.list", "UUDDDD.DDUD"},
    {"job.log", "UUD......U."},          {"settings.get", "UUD......U."},
    {"settings.set", "UUDDDD.DDUD"},     {"node.log_level", "UUDDDD.DDUD"},
    {"cluster.snapshot", "UUDDDD.DDUD"}, {"cluster.snapshot_read", "UUDDDD.DDUD"},
    {"no.such.op", "IIIIIIIIIII"},
};

static msgpack_object id_args(uint64_t id, msgpack_zone *z)
{
	struct mp_out o;
	msgpack_object obj;
	size_t off = 0;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	mp_pack_cstr(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, id);
	char *copy = msgpack_zone_malloc(z, o.len);
	memcpy(copy, o.data, o.len);
	assert_int_equal(msgpack_unpack(copy, o.len, &off, z, &obj), MSGPACK_UNPACK_SUCCESS);
	mp_out_free(&o);
	return obj;
}

static char outcome(int rv)
{
	switch (rv) {
	case 0: return '.';
	case ING_EUNAUTHENTICATED: return 'U';
	case ING_EDENIED: return 'D';
	case ING_EINVAL: return 'I';
	}
	return '?';
}

static void test_matrix(void **state)
{
	(void)state;
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	msgpack_object args = id_args(3, &z);
	unsigned checked = 0;
	for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
		assert_int_equal(strlen(matrix[i].cells), NCALLERS);
		for (int c = 0; c < NCALLERS; c++) {
			struct auth_principal p = caller(c);
			struct ing_error e;
			ing_error_clear(&e);
			int rv = api_op_permit(&p, ing_str_c(matrix[i].op), &args, &e);
			if (outcome(rv) != matrix[i].cells[c])
				fail_msg("%s by %s (%s): got %c (%s), expected %c", matrix[i].op,
				         p.name, auth_role_name(p.role), outcome(rv), e.msg,
				         matrix[i].cells[c]);
			/* Every refusal says what is missing. */
			if (rv != 0 && (strlen(e.msg) < 20 || strstr(e.msg, matrix[i].op) == NULL))
				fail_msg("%s by %s: message '%s' does not name the operation",
				         matrix[i].op, p.name, e.msg);
			checked++;
		}
	}
	assert_int_equal(checked, (sizeof(matrix) / sizeof(matrix[0])) * NCALLERS);
	msgpack_zone_destroy(&z);
}

/* Every operation of the op table (ops.c) has its row in the matrix, and
 * every row but the unknown one is an operation of the table. */
static void test_matrix_complete(void **state)
{
	(void)state;
	size_t n = 0;
	for (const char *op; (op = api_op_name(n)) != NULL; n++) {
		bool found = false;
		for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++)
			found = found || strcmp(matrix[i].op, op) == 0;
		if (!found)
			fail_msg("operation %s has no row in the matrix", op);
	}
	assert_int_equal(n, sizeof(matrix) / sizeof(matrix[0]) - 1);
}

/* A proven node calls the node-internal operations only about itself; an
 * unproven one (dev mode) about any id. */
static void test_node_self(void **state)
{
	(void)state;
	static const char *const self_ops[] = {"node.register", "node.heartbeat", "member.add",
	                                       "member.remove", "member.check"};
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	msgpack_object other = id_args(4, &z);
	struct auth_principal n3 = caller(NODE3), dev = caller(DEVNODE);
	for (size_t i = 0; i < sizeof(self_ops) / sizeof(self_ops[0]); i++) {
		struct ing_error e;
		assert_int_equal(api_op_permit(&n3, ing_str_c(self_ops[i]), &other, &e),
		                 ING_EDENIED);
		assert_int_equal(api_op_permit(&dev, ing_str_c(self_ops[i]), &other, &e), 0);
		assert_int_equal(api_op_permit(&n3, ing_str_c(self_ops[i]), NULL, &e), ING_EDENIED);
	}
	/* worker.report is checked per job by its handler, not here. */
	assert_int_equal(api_op_permit(&n3, ing_str_c("worker.report"), &other, NULL), 0);
	msgpack_zone_destroy(&z);
}

/* A tenant's principal sees its tenant only; the others see every one. */
static void test_tenant_filter(void **state)
{
	(void)state;
	struct auth_principal tv = caller(T_VIEWER), v = caller(VIEWER), op = caller(OPERATOR);
	assert_true(auth_sees_tenant(&tv, ing_str_c("team-a")));
	assert_false(auth_sees_tenant(&tv, ing_str_c("team-b")));
	assert_false(auth_sees_tenant(&tv, ing_str_c("team-a2")));
	assert_false(auth_sees_tenant(&tv, ing_str_c("team")));
	assert_false(auth_sees_tenant(&tv, ing_str_c("")));
	assert_true(auth_sees_tenant(&v, ing_str_c("team-b")));
	assert_true(auth_sees_tenant(&op, ing_str_c("default")));
	/* Roles are ordered; nodes and nobody hold no client role. */
	struct auth_principal s = caller(SUBMITTER), n = caller(NODE3), none = caller(NOBODY);
	assert_true(auth_has_role(&s, AUTH_ROLE_VIEWER));
	assert_true(auth_has_role(&s, AUTH_ROLE_SUBMITTER));
	assert_false(auth_has_role(&s, AUTH_ROLE_OPERATOR));
	assert_false(auth_has_role(&n, AUTH_ROLE_VIEWER));
	assert_false(auth_has_role(&none, AUTH_ROLE_VIEWER));
	/* The roles of the tokens table and of the principals map both ways. */
	assert_int_equal(api_token_role(AUTH_ROLE_ADMIN), REC_TOKEN_ADMIN);
	assert_int_equal(api_token_role(AUTH_ROLE_OPERATOR), REC_TOKEN_OPERATOR);
	assert_int_equal(api_token_role(AUTH_ROLE_SUBMITTER), REC_TOKEN_SUBMITTER);
	assert_int_equal(api_token_role(AUTH_ROLE_VIEWER), REC_TOKEN_VIEWER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_matrix),
	    cmocka_unit_test(test_matrix_complete),
	    cmocka_unit_test(test_node_self),
	    cmocka_unit_test(test_tenant_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
