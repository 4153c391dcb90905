/*
 * health.c - GET /healthz and GET /readyz (docs/api.md "Health").
 *
 * /healthz answers whether the process and its store are sound: 200 while
 * the node serves from a store it trusts, 503 once it hit a fatal error or
 * is stopping (a supervisor restarts it).  /readyz answers whether this
 * node should get client traffic: 200 when a leader is known and reaching
 * it (or it is the ready leader), its applied index is within
 * READY_MAX_LAG entries of the commit index it knows, it is a member (not
 * joining, not leaving) and its worker is not draining; 503 otherwise.
 * Both bodies are JSON naming each check, so an operator sees why.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/http/http.h"
#include "node/member/member.h"
#include "rpc/http.h"
#include "storage/records.h"
#include "storage/store.h"

#define READY_MAX_LAG 100

static void reply_checks(struct rpc_http_req *r, bool ok, json_t *body)
{
	rpc_http_reply_json(r, ok ? 200 : 503, body);
	json_decref(body);
}

static void h_healthz(void *data, struct rpc_http_req *r)
{
	struct node *n = http_node(data);
	const char *reason = NULL;
	int code = 0;
	if (node_failed(n) != 0) {
		reason = "stopped on a fatal error";
		code = node_failed(n);
	} else if ((code = store_failed(node_store(n))) != 0) {
		reason = "the store failed";
	} else if (node_stopping(n)) {
		reason = "stopping";
	}
	json_t *body = json_pack("{s:s,s:I}", "status", reason == NULL ? "ok" : "failing", "node",
	                         (json_int_t)node_id(n));
	if (reason != NULL) {
		json_object_set_new(body, "reason", json_string(reason));
		if (code != 0)
			json_object_set_new(body, "error", json_string(ing_err_name(code)));
	}
	reply_checks(r, reason == NULL, body);
}

/* This node's worker record says draining. */
static bool worker_draining(struct node *n)
{
	struct store_txn *t;
	struct ing_str val;
	uint8_t k[8];
	bool draining = false;
	store_be64(k, node_id(n));
	if (store_read_begin(node_store(n), &t) != 0)
		return false;
	if (store_get(t, STORE_NODES, (struct ing_str){(const char *)k, 8}, &val) == 0) {
		msgpack_zone z;
		struct rec_node nd;
		msgpack_zone_init(&z, 512);
		if (rec_node_decode(val, &z, &nd, NULL) == 0)
			draining = nd.draining;
		msgpack_zone_destroy(&z);
	}
	store_abort(t);
	return draining;
}

static json_t *check(bool ok, const char *detail)
{
	return json_pack("{s:b,s:s}", "ok", ok, "detail", detail);
}

static void h_readyz(void *data, struct rpc_http_req *r)
{
	struct node *n = http_node(data);
	struct cons_status st;
	char detail[160];
	json_t *checks = json_object();
	bool joining = member_joining(node_member(n)), leaving = member_leaving(node_member(n));

	bool serving = !node_stopping(n) && node_failed(n) == 0 && !joining && !leaving;
	snprintf(detail, sizeof(detail), "%s",
	         serving ? "member, serving"
	                 : (joining ? "not admitted to the cluster yet"
	                            : (leaving ? "leaving the cluster" : "stopping")));
	json_object_set_new(checks, "serving", check(serving, detail));

	memset(&st, 0, sizeof(st));
	if (node_cons(n) != NULL)
		cons_status(node_cons(n), &st);
	bool leader = st.leader_id != 0 &&
	              (st.role == CONS_LEADER_READY ||
	               (st.role == CONS_FOLLOWER &&
	                st.leader_contact_ago_ms < 2u * node_cfg(n)->election_timeout_ms));
	if (st.role == CONS_LEADER_READY)
		snprintf(detail, sizeof(detail), "this node is the leader (term %" PRIu64 ")",
		         st.term);
	else if (leader)
		snprintf(detail, sizeof(detail),
		         "leader %" PRIu64 ", heard from %" PRIu64 " ms ago (term %" PRIu64 ")",
		         st.leader_id, st.leader_contact_ago_ms, st.term);
	else
		snprintf(detail, sizeof(detail), "no leader reachable (term %" PRIu64 ")", st.term);
	json_object_set_new(checks, "leader", check(leader, detail));

	bool caught_up = st.last_applied + READY_MAX_LAG >= st.commit_index;
	snprintf(detail, sizeof(detail), "applied %" PRIu64 " of %" PRIu64 " committed",
	         st.last_applied, st.commit_index);
	json_object_set_new(checks, "caught_up", check(caught_up, detail));

	bool draining = worker_draining(n);
	json_object_set_new(checks, "not_draining",
	                    check(!draining, draining ? "the worker is draining" : "not draining"));

	bool ready = serving && leader && caught_up && !draining;
	json_t *body = json_pack("{s:b,s:I,s:o}", "ready", ready, "node", (json_int_t)node_id(n),
	                         "checks", checks);
	reply_checks(r, ready, body);
}

int http_health_routes(struct http *h, struct rpc_http_server *s)
{
	int rv = rpc_http_route(s, "GET", "/healthz", h_healthz, h);
	if (rv == 0)
		rv = rpc_http_route(s, "GET", "/readyz", h_readyz, h);
	return rv;
}
