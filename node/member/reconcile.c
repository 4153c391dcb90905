/*
 * reconcile.c - the members table and the cluster's name.
 *
 * The members table (the address book: raft and API address, role) follows
 * the Raft configuration: the ready leader reconciles it after each change
 * and when it becomes ready, proposing member_put for a member whose record
 * is missing or differs and member_remove for a record whose member left.
 * The first ready leader names the cluster (cluster_init, a random id); a
 * new leader records the change of leader (cluster_event leader_changed).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/encode.h"
#include "common/log.h"
#include "node/member/member_internal.h"
#include "node/propose.h"
#include "node/sm/sm.h"
#include "storage/records.h"
#include "storage/store.h"

/* The leader's own bookkeeping entries (members table, cluster name,
 * leader changes): a refusal or a lost leadership is logged; the next
 * reconcile (after each change, and by the next ready leader) makes up for
 * a member record that did not make it. */
static void on_recorded(void *data, int status, const struct node_result *r)
{
	const char *what = data;
	if (status != 0)
		ING_LOG_WARN("%s not confirmed error=%s (leadership lost; the next leader "
		             "redoes it)",
		             what, ing_err_name(status));
	else if (r != NULL && r->code != 0)
		ING_LOG_WARN("%s refused error=%s msg=\"%s\"", what, ing_err_name(r->code),
		             r->message);
}

/* Proposes c; `what` (a string constant) names it in the logs.  0, or the
 * error (logged). */
static int record(struct node *n, const struct cmd *c, const char *what)
{
	struct ing_error e;
	int rv = node_propose(n, c, on_recorded, (void *)what, &e);
	if (rv != 0)
		ING_LOG_WARN("%s not proposed error=%s msg=\"%s\"", what, ing_err_name(rv), e.msg);
	return rv;
}

void member_reconcile(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	uint64_t stale[64];
	unsigned nstale = 0;
	int rv;

	const struct node_config *cfg = node_cfg(n);
	struct cons *cons = node_cons(n);

	if (!node_is_ready_leader(n) || node_member(n)->change != NULL || cons == NULL ||
	    cons_config_pending(cons) || cons_members(cons, &ms, &nm) != 0)
		return;
	if (store_read_begin(node_store(n), &t) != 0) {
		free(ms);
		return;
	}
	/* Records whose member left the configuration. */
	rv = store_iter_open(t, STORE_MEMBERS, (struct ing_str){"", 0}, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len == 8 && mc_find(ms, nm, store_get_be64(k.ptr)) == NULL && nstale < 64)
			stale[nstale++] = store_get_be64(k.ptr);
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	/* Members whose record is missing or differs. */
	for (unsigned i = 0; i < nm; i++) {
		uint8_t key[8];
		struct ing_str val;
		char api[NODE_ADDRESS_MAX] = "";
		bool same = false;
		msgpack_zone z;
		struct rec_member r;

		store_be64(key, ms[i].id);
		msgpack_zone_init(&z, 256);
		if (store_get(t, STORE_MEMBERS, (struct ing_str){(const char *)key, 8}, &val) ==
		        0 &&
		    rec_member_decode(val, &z, &r, NULL) == 0) {
			snprintf(api, sizeof(api), "%.*s", ING_STR_FMT(r.api_address));
			same = r.role == (uint8_t)ms[i].role &&
			       ing_str_eq_c(r.raft_address, ms[i].address);
		}
		msgpack_zone_destroy(&z);
		if (same)
			continue;
		if (api[0] == '\0')
			for (unsigned j = 0; j < cfg->npeers; j++)
				if (cfg->peers[j].id == ms[i].id)
					snprintf(api, sizeof(api), "%s", cfg->peers[j].api_address);
		if (api[0] == '\0') {
			ING_LOG_WARN("member %" PRIu64 " has no known API address: not recorded",
			             ms[i].id);
			continue;
		}
		struct cmd c;
		memset(&c, 0, sizeof(c));
		c.type = CMD_MEMBER_PUT;
		c.request_id = ing_str_c("");
		c.u.member_put.member.id = ms[i].id;
		c.u.member_put.member.raft_address = ing_str_c(ms[i].address);
		c.u.member_put.member.api_address = ing_str_c(api);
		c.u.member_put.member.role = (uint8_t)ms[i].role;
		if (record(n, &c, "members table: member record") != 0)
			break;
	}
	store_abort(t);
	for (unsigned i = 0; i < nstale; i++) {
		struct cmd c;
		memset(&c, 0, sizeof(c));
		c.type = CMD_MEMBER_REMOVE;
		c.request_id = ing_str_c("");
		c.u.member_remove.id = stale[i];
		ING_LOG_INFO("members table: %" PRIu64 " is no longer in the configuration",
		             stale[i]);
		if (record(n, &c, "members table: removal of a record") != 0)
			break;
	}
	free(ms);
}

void member_cluster_id(struct node *n, char out[CMD_CLUSTER_ID_LEN + 1])
{
	struct store_txn *t;
	struct ing_str v;
	out[0] = '\0';
	if (store_read_begin(node_store(n), &t) != 0)
		return;
	if (store_get(t, STORE_META, ing_str_c(SM_META_CLUSTER_ID), &v) == 0 &&
	    v.len == CMD_CLUSTER_ID_LEN)
		snprintf(out, CMD_CLUSTER_ID_LEN + 1, "%.*s", ING_STR_FMT(v));
	store_abort(t);
}

/* The first ready leader names the cluster. */
static void maybe_name_cluster(struct node *n)
{
	char id[CMD_CLUSTER_ID_LEN + 1];
	uint8_t raw[CMD_CLUSTER_ID_LEN / 2];
	struct cmd c;

	member_cluster_id(n, id);
	if (id[0] != '\0')
		return;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		ING_LOG_WARN("cannot name the cluster: getrandom failed: %s", strerror(errno));
		return;
	}
	ing_hex_encode(raw, sizeof(raw), id);
	memset(&c, 0, sizeof(c));
	c.type = CMD_CLUSTER_INIT;
	c.request_id = ing_str_c("");
	c.u.cluster_init.cluster_id = ing_str_c(id);
	record(n, &c, "cluster name (cluster_init)");
}

void member_leader_ready(struct member *m)
{
	struct node *n = m->n;
	uint64_t previous = m->previous_leader;
	struct cmd c;
	char text[160];

	m->leading_since_ms = node_now_ms();
	maybe_name_cluster(n);
	member_reconcile(n);
	if (previous == 0 || previous == node_id(n))
		return;
	snprintf(text, sizeof(text),
	         "node %" PRIu64 " became leader in term %" PRIu64
	         " (previous leader: node %" PRIu64 ")",
	         node_id(n), node_term(n), previous);
	memset(&c, 0, sizeof(c));
	c.type = CMD_CLUSTER_EVENT;
	c.request_id = ing_str_c("");
	c.u.cluster_event.kind = REC_EV_LEADER_CHANGED;
	c.u.cluster_event.member = node_id(n);
	c.u.cluster_event.message = ing_str_c(text);
	record(n, &c, "leader change (cluster_event leader_changed)");
}

unsigned member_other_api_addresses(struct node *n, char buf[][NODE_ADDRESS_MAX],
                                    const char *addrs[])
{
	struct cons_member *ms = NULL;
	unsigned nm = 0, na = 0;

	if (node_cons(n) == NULL || cons_members(node_cons(n), &ms, &nm) != 0)
		return 0;
	for (unsigned i = 0; i < nm && na < NODE_MAX_PEERS; i++) {
		if (ms[i].id == node_id(n))
			continue;
		member_api_address(n, ms[i].id, buf[na]);
		if (buf[na][0] != '\0') {
			addrs[na] = buf[na];
			na++;
		}
	}
	free(ms);
	return na;
}

uint64_t member_leading_since_ms(const struct member *m)
{
	return m->leading_since_ms;
}

/* API address of member `id`: the members table, else the configured peers. */
void member_api_address(struct node *n, uint64_t id, char out[NODE_ADDRESS_MAX])
{
	struct store_txn *t;
	struct ing_str val;
	uint8_t k[8];

	out[0] = '\0';
	store_be64(k, id);
	const struct node_config *cfg = node_cfg(n);
	if (store_read_begin(node_store(n), &t) == 0) {
		if (store_get(t, STORE_MEMBERS, (struct ing_str){(const char *)k, 8}, &val) == 0) {
			msgpack_zone z;
			struct rec_member m;
			msgpack_zone_init(&z, 512);
			if (rec_member_decode(val, &z, &m, NULL) == 0)
				snprintf(out, NODE_ADDRESS_MAX, "%.*s", ING_STR_FMT(m.api_address));
			msgpack_zone_destroy(&z);
		}
		store_abort(t);
	}
	for (unsigned i = 0; out[0] == '\0' && i < cfg->npeers; i++)
		if (cfg->peers[i].id == id)
			snprintf(out, NODE_ADDRESS_MAX, "%s", cfg->peers[i].api_address);
}

void member_role_changed(struct member *m, uint64_t previous, uint64_t leader)
{
	uint64_t self = node_id(m->n);
	if (!node_is_ready_leader(m->n))
		m->leading_since_ms = 0;
	if (previous != 0 && previous != self && previous != leader)
		m->previous_leader = previous;
	if (leader != 0 && leader != self)
		m->previous_leader = leader;
}
