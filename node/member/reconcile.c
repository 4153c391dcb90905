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

#include "common/log.h"
#include "node/member/member_internal.h"

void node_member_reconcile(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	uint64_t stale[64];
	unsigned nstale = 0;
	int rv;

	if (n->role != CONS_LEADER_READY || n->mchange != NULL || cons_config_pending(n->cons) ||
	    cons_members(n->cons, &ms, &nm) != 0)
		return;
	if (store_read_begin(n->store, &t) != 0) {
		free(ms);
		return;
	}
	/* Records whose member left the configuration. */
	rv = store_iter_open(t, STORE_MEMBERS, (struct ing_str){"", 0}, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len == 8 && member_find(ms, nm, store_get_be64(k.ptr)) == NULL && nstale < 64)
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
			for (unsigned j = 0; j < n->cfg.npeers; j++)
				if (n->cfg.peers[j].id == ms[i].id)
					snprintf(api, sizeof(api), "%s",
					         n->cfg.peers[j].api_address);
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
		node_propose_internal(n, &c, NULL, NULL);
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
		node_propose_internal(n, &c, NULL, NULL);
	}
	free(ms);
}

void node_cluster_id(struct node *n, char out[CMD_CLUSTER_ID_LEN + 1])
{
	struct store_txn *t;
	struct ing_str v;
	out[0] = '\0';
	if (store_read_begin(n->store, &t) != 0)
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

	node_cluster_id(n, id);
	if (id[0] != '\0')
		return;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		ING_LOG_WARN("cannot name the cluster: getrandom failed: %s", strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	memset(&c, 0, sizeof(c));
	c.type = CMD_CLUSTER_INIT;
	c.request_id = ing_str_c("");
	c.u.cluster_init.cluster_id = ing_str_c(id);
	node_propose_internal(n, &c, NULL, NULL);
}

void node_member_leader(struct node *n, uint64_t previous)
{
	struct cmd c;
	char text[160];

	maybe_name_cluster(n);
	node_member_reconcile(n);
	if (previous == 0 || previous == n->cfg.id)
		return;
	snprintf(text, sizeof(text),
	         "node %" PRIu64 " became leader in term %" PRIu64
	         " (previous leader: node %" PRIu64 ")",
	         n->cfg.id, n->term, previous);
	memset(&c, 0, sizeof(c));
	c.type = CMD_CLUSTER_EVENT;
	c.request_id = ing_str_c("");
	c.u.cluster_event.kind = REC_EV_LEADER_CHANGED;
	c.u.cluster_event.member = n->cfg.id;
	c.u.cluster_event.message = ing_str_c(text);
	node_propose_internal(n, &c, NULL, NULL);
}

/* API address of member `id`: the members table, else the configured peers. */
void node_member_api_address(struct node *n, uint64_t id, char out[NODE_ADDRESS_MAX])
{
	struct store_txn *t;
	struct ing_str val;
	uint8_t k[8];

	out[0] = '\0';
	store_be64(k, id);
	if (store_read_begin(n->store, &t) == 0) {
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
	for (unsigned i = 0; out[0] == '\0' && i < n->cfg.npeers; i++)
		if (n->cfg.peers[i].id == id)
			snprintf(out, NODE_ADDRESS_MAX, "%s", n->cfg.peers[i].api_address);
}
