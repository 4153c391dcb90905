/*
 * test_sm_token.c - tokens (node/sm/sm_token.c) and the audit trail: the
 * principal a client write carries lands in the events it makes (job
 * events of submit, cancel and retry; cluster events of targets, drains,
 * tokens, settings and membership), and the versions before principals replay as
 * they did (no new events, version 1 event records).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/lib/smtest.h"

static int setup(void **state)
{
	struct smt *t = calloc(1, sizeof(*t));
	smt_open(t);
	smt_node(t, 1, 2);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	smt_close(*state);
	free(*state);
	return 0;
}

static uint64_t cluster_events(struct smt *t)
{
	struct store_txn *txn;
	uint64_t n;
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_meta_get_u64(txn, SM_META_CLUSTER_EVENTS, &n), 0);
	store_abort(txn);
	return n;
}

/* The event (job, seq) with its raw record bytes' version. */
static void event_at(struct smt *t, uint64_t job, uint32_t seq, struct rec_event *ev,
                     unsigned *version)
{
	struct store_txn *txn;
	struct ing_str val;
	uint8_t k[12];
	store_be64(k, job);
	store_be32(k + 8, seq);
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_get(txn, STORE_EVENTS, (struct ing_str){(const char *)k, 12}, &val),
	                 0);
	assert_int_equal(rec_event_decode(val, t->zone, ev, NULL), 0);
	*version = (uint8_t)val.ptr[1];
	store_abort(txn);
}

static void expect_event(struct smt *t, uint64_t job, uint32_t seq, uint8_t kind,
                         const char *principal, const char *needle)
{
	struct rec_event ev;
	unsigned version;
	event_at(t, job, seq, &ev, &version);
	if (ev.kind != kind)
		fail_msg("event %llu/%u: %s, expected %s", (unsigned long long)job, seq,
		         rec_event_kind_name(ev.kind), rec_event_kind_name(kind));
	if (!ing_str_eq_c(ev.principal, principal))
		fail_msg("event %llu/%u: principal '%.*s', expected '%s'", (unsigned long long)job,
		         seq, ING_STR_FMT(ev.principal), principal);
	assert_int_equal(version, principal[0] != '\0' ? 2 : 1);
	if (needle != NULL) {
		char msg[ING_MESSAGE_MAX + 1];
		snprintf(msg, sizeof(msg), "%.*s", ING_STR_FMT(ev.message));
		if (strstr(msg, needle) == NULL)
			fail_msg("event %llu/%u: message '%s' lacks '%s'", (unsigned long long)job,
			         seq, msg, needle);
	}
}

/* Applies c with its version byte set to `version` (same layout). */
static int apply_version(struct smt *t, const struct cmd *c, uint8_t version)
{
	struct ing_error e;
	struct mp_out o;
	mp_out_init(&o);
	assert_int_equal(cmd_encode(c, &o, &e), 0);
	assert_true((uint8_t)o.data[2] < 0x80);
	o.data[2] = (char)version;
	int rv = smt_apply_raw(t, o.data, o.len);
	mp_out_free(&o);
	return rv;
}

static struct cmd token_create(struct smt *t, char fill, const char *name, const char *tenant,
                               uint8_t role)
{
	static char hash[4][32];
	static unsigned next;
	char *h = hash[next++ % 4];
	memset(h, fill, 32);
	struct cmd c = smt_cmd(t, CMD_TOKEN_CREATE);
	c.principal = ing_str_c("token:1");
	c.u.token_create.hash = (struct ing_str){h, 32};
	c.u.token_create.name = ing_str_c(name);
	c.u.token_create.tenant = ing_str_c(tenant);
	c.u.token_create.role = role;
	c.u.token_create.expires_at_ms = 0;
	return c;
}

static struct rec_token token_rec(struct smt *t, char fill)
{
	struct store_txn *txn;
	struct ing_str val;
	struct rec_token r;
	char h[32];
	memset(h, fill, sizeof(h));
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(store_get(txn, STORE_TOKENS, (struct ing_str){h, 32}, &val), 0);
	assert_int_equal(rec_token_decode(val, t->zone, &r, NULL), 0);
	store_abort(txn);
	return r;
}

/* Ids from 1, the record under the hash, one event each; a repeated
 * secret is refused with nothing changed. */
static void test_token_create(void **state)
{
	struct smt *t = *state;
	struct cmd c = token_create(t, 'a', "ci-bot", "team-a", REC_TOKEN_SUBMITTER);
	c.u.token_create.expires_at_ms = 5000;
	assert_int_equal(smt_apply(t, &c), 0);
	assert_int_equal(smt_result_uint(t), 1);
	c = token_create(t, 'b', "ops", "", REC_TOKEN_OPERATOR);
	assert_int_equal(smt_apply(t, &c), 0);
	assert_int_equal(smt_result_uint(t), 2);

	struct rec_token r = token_rec(t, 'a');
	assert_int_equal(r.id, 1);
	assert_true(ing_str_eq_c(r.name, "ci-bot"));
	assert_true(ing_str_eq_c(r.tenant, "team-a"));
	assert_int_equal(r.role, REC_TOKEN_SUBMITTER);
	assert_int_equal(r.expires_at_ms, 5000);
	assert_false(r.revoked);
	assert_true(ing_str_eq_c(r.created_by, "token:1"));
	assert_int_equal(r.created_at_ms, c.time_ms - 1);
	r = token_rec(t, 'b');
	assert_int_equal(r.id, 2);
	assert_int_equal(r.tenant.len, 0);

	assert_int_equal(cluster_events(t), 2);
	expect_event(t, 0, 0, REC_EV_TOKEN_CREATED, "token:1",
	             "token 1 'ci-bot' created: role submitter, tenant team-a, expires "
	             "1970-01-01T00:00:05Z");
	expect_event(t, 0, 1, REC_EV_TOKEN_CREATED, "token:1", "tenant (all), never expires");

	char *before = smt_dump_state(t);
	c = token_create(t, 'a', "again", "", REC_TOKEN_ADMIN);
	assert_int_equal(smt_apply(t, &c), ING_ECONFLICT);
	char *after = smt_dump_state(t);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* The next one still gets the next id. */
	c = token_create(t, 'c', "third", "", REC_TOKEN_VIEWER);
	assert_int_equal(smt_apply(t, &c), 0);
	assert_int_equal(smt_result_uint(t), 3);
}

/* Revoke marks the row revoked (kept for the audit trail), records an
 * event, and is idempotent; an unknown id is not_found. */
static void test_token_revoke(void **state)
{
	struct smt *t = *state;
	struct cmd c = token_create(t, 'a', "ci-bot", "", REC_TOKEN_ADMIN);
	assert_int_equal(smt_apply(t, &c), 0);
	c = token_create(t, 'b', "other", "", REC_TOKEN_VIEWER);
	assert_int_equal(smt_apply(t, &c), 0);

	c = smt_cmd(t, CMD_TOKEN_REVOKE);
	c.principal = ing_str_c("jwt:alice");
	c.u.token_revoke.id = 1;
	assert_int_equal(smt_apply(t, &c), 0);
	assert_int_equal(smt_result_uint(t), 1);
	assert_true(token_rec(t, 'a').revoked);
	assert_false(token_rec(t, 'b').revoked);
	expect_event(t, 0, 2, REC_EV_TOKEN_REVOKED, "jwt:alice", "token 1 'ci-bot' revoked");

	char *before = smt_dump_state(t);
	c.time_ms = t->time_ms++;
	assert_int_equal(smt_apply(t, &c), 0); /* again: nothing changes */
	char *after = smt_dump_state(t);
	assert_string_equal(before, after);
	free(after);
	c.u.token_revoke.id = 9;
	assert_int_equal(smt_apply(t, &c), ING_ENOTFOUND);
	assert_non_null(strstr(t->res.err.msg, "token 9 does not exist"));
	after = smt_dump_state(t);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_int_equal(cluster_events(t), 3);
}

/* Job events made by a client's command carry its principal; the ones the
 * cluster makes (assign, stages, finish) carry none and keep version 1. */
static void test_job_events_principal(void **state)
{
	struct smt *t = *state;
	smt_target(t, "cc", 1);
	struct cmd c = smt_cmd(t, CMD_JOB_SUBMIT);
	struct cmd_file src = {{"a.c", 3}, {"x", 1}};
	c.principal = ing_str_c("token:7");
	c.u.job_submit.tenant = ing_str_c("acme");
	c.u.job_submit.target = ing_str_c("cc");
	c.u.job_submit.max_attempts = 1;
	c.u.job_submit.nsources = 1;
	c.u.job_submit.sources = &src;
	assert_int_equal(smt_apply(t, &c), 0);
	uint64_t id = smt_result_uint(t);
	expect_event(t, id, 0, REC_EV_SUBMITTED, "token:7", NULL);

	c = smt_cmd(t, CMD_JOB_ASSIGN);
	c.u.job_assign.job = id;
	c.u.job_assign.node = 1;
	c.u.job_assign.attempt = 1;
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, id, 1, REC_EV_ASSIGNED, "", NULL);

	c = smt_cmd(t, CMD_JOB_CANCEL);
	c.principal = ing_str_c("jwt:bob");
	c.u.job_cancel.job = id;
	c.u.job_cancel.reason = ing_str_c("wrong input");
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, id, 2, REC_EV_CANCEL_REQUESTED, "jwt:bob", "wrong input");

	c = smt_cmd(t, CMD_JOB_FINISH);
	c.u.job_finish.job = id;
	c.u.job_finish.attempt = 1;
	c.u.job_finish.outcome = REC_JOB_CANCELLED;
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, id, 3, REC_EV_CANCELLED, "", NULL);

	c = smt_cmd(t, CMD_JOB_RETRY);
	c.principal = ing_str_c("cert:ops");
	c.u.job_retry.job = id;
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, id, 4, REC_EV_RETRIED, "cert:ops", NULL);

	/* A cancel of a queued job ends it at once: its one event is the
	 * client's. */
	c = smt_cmd(t, CMD_JOB_CANCEL);
	c.principal = ing_str_c("token:8");
	c.u.job_cancel.job = id;
	c.u.job_cancel.reason = ing_str_c("again");
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, id, 5, REC_EV_CANCELLED, "token:8", "again");
}

/* target_put v4 and target_delete v2 record cluster events with the
 * principal; v3 and v1 (older logs) record none, as they did. */
static void test_target_events(void **state)
{
	struct smt *t = *state;
	smt_target(t, "cc", 1);
	expect_event(t, 0, 0, REC_EV_TARGET_PUT, "", "target 'cc' revision 1 put");

	struct cmd c = smt_cmd(t, CMD_TARGET_DELETE);
	c.principal = ing_str_c("token:3");
	c.u.target_delete.name = ing_str_c("cc");
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, 0, 1, REC_EV_TARGET_DELETED, "token:3", "target 'cc' (revision 1) deleted");
	assert_int_equal(cluster_events(t), 2);

	/* The same through the older versions (no principal): no events. */
	struct rec_stage_def st = {.name = ing_str_c("s"), .timeout_ms = 1000};
	struct ing_str argv = ing_str_c("cc");
	st.nargv = 1;
	st.argv = &argv;
	c = smt_cmd(t, CMD_TARGET_PUT);
	c.u.target_put.spec.name = ing_str_c("old");
	c.u.target_put.spec.nstages = 1;
	c.u.target_put.spec.stages = &st;
	assert_int_equal(apply_version(t, &c, 4), 0);
	c = smt_cmd(t, CMD_TARGET_DELETE);
	c.u.target_delete.name = ing_str_c("old");
	assert_int_equal(apply_version(t, &c, 1), 0);
	assert_int_equal(cluster_events(t), 2);
	/* A principal in those versions does not decode. */
	c.principal = ing_str_c("token:3");
	c.time_ms = t->time_ms++;
	assert_int_equal(apply_version(t, &c, 1), ING_EMALFORMED);
}

/* node_drain v2 records drained/undrained with the principal; v1 none. */
static void test_drain_events(void **state)
{
	struct smt *t = *state;
	struct cmd c = smt_cmd(t, CMD_NODE_DRAIN);
	c.principal = ing_str_c("token:2");
	c.u.node_drain.node = 1;
	c.u.node_drain.draining = true;
	c.u.node_drain.deadline_ms = 90000;
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, 0, 0, REC_EV_NODE_DRAINED, "token:2",
	             "node 1 drained (running work ends by 90000)");
	c = smt_cmd(t, CMD_NODE_DRAIN);
	c.principal = ing_str_c("token:2");
	c.u.node_drain.node = 1;
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, 0, 1, REC_EV_NODE_UNDRAINED, "token:2", "node 1 undrained");
	c = smt_cmd(t, CMD_NODE_DRAIN);
	c.u.node_drain.node = 1;
	c.u.node_drain.draining = true;
	assert_int_equal(apply_version(t, &c, 1), 0);
	assert_int_equal(cluster_events(t), 2);
	/* An unknown node: refused, no event. */
	c = smt_cmd(t, CMD_NODE_DRAIN);
	c.u.node_drain.node = 9;
	assert_int_equal(smt_apply(t, &c), ING_ENOTFOUND);
	assert_int_equal(cluster_events(t), 2);
	/* node_forget v2 of a down node: node_forgotten with the principal. */
	c = smt_cmd(t, CMD_NODE_DOWN);
	c.u.node_down.node = 1;
	c.u.node_down.reason = ing_str_c("missed heartbeats");
	assert_int_equal(smt_apply(t, &c), 0);
	assert_int_equal(cluster_events(t), 2);
	c = smt_cmd(t, CMD_NODE_FORGET);
	c.principal = ing_str_c("token:2");
	c.u.node_forget.node = 1;
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, 0, 2, REC_EV_NODE_FORGOTTEN, "token:2", "node 1 forgotten");
	assert_int_equal(cluster_events(t), 3);
}

/* Membership entries with an admin's principal: the member events carry it. */
static void test_member_events_principal(void **state)
{
	struct smt *t = *state;
	struct cmd c = smt_cmd(t, CMD_MEMBER_PUT);
	c.principal = ing_str_c("token:1");
	c.u.member_put.member.id = 4;
	c.u.member_put.member.raft_address = ing_str_c("127.0.0.1:7504");
	c.u.member_put.member.api_address = ing_str_c("127.0.0.1:7404");
	c.u.member_put.member.role = REC_ROLE_SPARE;
	assert_int_equal(smt_apply(t, &c), 0);
	expect_event(t, 0, 0, REC_EV_MEMBER_ADDED, "token:1", "member 4 added as spare");
	c = smt_cmd(t, CMD_MEMBER_REMOVE);
	c.u.member_remove.id = 4;
	assert_int_equal(smt_apply(t, &c), 0); /* the leader's own: no principal */
	expect_event(t, 0, 1, REC_EV_MEMBER_REMOVED, "", NULL);
}

static uint64_t setting_of(struct smt *t, const char *name)
{
	struct store_txn *txn;
	uint64_t v;
	assert_int_equal(store_read_begin(t->store, &txn), 0);
	assert_int_equal(sm_setting(txn, name, &v), 0);
	store_abort(txn);
	return v;
}

/* A setting_put at `version` applied to both stores (same bytes). */
static void setting_both(struct smt *t, struct smt *t2, const char *principal, const char *name,
                         uint64_t value, uint8_t version)
{
	struct cmd c = smt_cmd(t, CMD_SETTING_PUT);
	c.principal = ing_str_c(principal);
	c.u.setting_put.name = ing_str_c(name);
	c.u.setting_put.value = value;
	assert_int_equal(apply_version(t, &c, version), 0);
	assert_int_equal(apply_version(t2, &c, version), 0);
	assert_int_equal(setting_of(t, name), value);
}

/* setting_put v2 records setting_changed with the principal (member nil);
 * a v1 entry of an older log changes the setting and records nothing, as
 * it did; two stores applying the same entries end byte for byte equal. */
static void test_setting_events(void **state)
{
	struct smt *t = *state, t2;
	smt_open(&t2);
	smt_node(&t2, 1, 2);

	setting_both(t, &t2, "token:1", CMD_SETTING_JOB_RETENTION, 604800000, 2);
	assert_int_equal(cluster_events(t), 1);
	expect_event(t, 0, 0, REC_EV_SETTING_CHANGED, "token:1",
	             "setting job_retention_ms set to 604800000 ms");
	struct rec_event ev;
	unsigned version;
	event_at(t, 0, 0, &ev, &version);
	assert_int_equal(ev.node_id, 0);
	assert_string_equal(rec_event_kind_name(ev.kind), "setting_changed");

	setting_both(t, &t2, "jwt:alice", CMD_SETTING_DEDUPE_WINDOW, 0, 2);
	expect_event(t, 0, 1, REC_EV_SETTING_CHANGED, "jwt:alice",
	             "setting dedupe_window_ms set to 0 ms (for ever)");
	/* v2 without a principal (decodes; no client sends one): an event
	 * that names nobody, record version 1. */
	setting_both(t, &t2, "", CMD_SETTING_DEDUPE_WINDOW, 5000, 2);
	expect_event(t, 0, 2, REC_EV_SETTING_CHANGED, "", "set to 5000 ms");
	assert_int_equal(cluster_events(t), 3);

	/* Version 1: the value changes, no event. */
	setting_both(t, &t2, "", CMD_SETTING_JOB_RETENTION, 1000, 1);
	assert_int_equal(cluster_events(t), 3);
	assert_int_equal(cluster_events(&t2), 3);

	char *a = smt_dump_all(t), *b = smt_dump_all(&t2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	smt_close(&t2);
}

/* A retried write (same request id) returns the first result and records
 * nothing, whoever retries it. */
static void test_dedupe_keeps_first_principal(void **state)
{
	struct smt *t = *state;
	struct cmd c = token_create(t, 'd', "x", "", REC_TOKEN_VIEWER);
	c.request_id = ing_str_c("req-1");
	assert_int_equal(smt_apply(t, &c), 0);
	char *before = smt_dump_state(t);
	c.principal = ing_str_c("token:9");
	c.time_ms = t->time_ms++;
	assert_int_equal(smt_apply(t, &c), 0);
	assert_true(t->res.deduped);
	assert_int_equal(smt_result_uint(t), 1);
	char *after = smt_dump_state(t);
	assert_string_equal(before, after);
	free(before);
	free(after);
	expect_event(t, 0, 0, REC_EV_TOKEN_CREATED, "token:1", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_token_create, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_revoke, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_job_events_principal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_target_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_member_events_principal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_setting_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedupe_keeps_first_principal, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
