/*
 * raftcluster.c - see raftcluster.h.
 */
#include "tests/lib/raftcluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "tests/lib/testutil.h"

void rc_set_log_level(void)
{
	const char *s = getenv("INGOT_TEST_LOG");
	enum ing_log_level level = ING_LOG_LEVEL_WARN;
	if (s != NULL)
		ing_log_parse_level(s, &level);
	ing_log_set_level(level);
}

/* Ports the kernel just handed out for 127.0.0.1: held open together so
 * they differ, released right before libraft binds them. */
static void free_ports(unsigned short *ports, unsigned n)
{
	int fds[RC_NODES];
	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t len = sizeof(a);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(bind(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(getsockname(fds[i], (struct sockaddr *)&a, &len), 0);
		ports[i] = ntohs(a.sin_port);
	}
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static void noop_tick(uv_timer_t *t)
{
	(void)t;
}

static struct ing_tls *use_tls[RC_NODES];

void rc_use_tls(struct ing_tls *const *tls)
{
	for (unsigned i = 0; i < RC_NODES; i++)
		use_tls[i] = tls != NULL ? tls[i] : NULL;
}

struct rc_cluster *rc_new(unsigned threshold, unsigned trailing)
{
	struct rc_cluster *cl = calloc(1, sizeof(*cl));
	unsigned short ports[RC_NODES];

	assert_non_null(cl);
	rc_set_log_level();
	assert_int_equal(uv_loop_init(&cl->loop), 0);
	assert_int_equal(uv_timer_init(&cl->loop, &cl->tick), 0);
	free_ports(ports, RC_NODES);
	for (unsigned i = 0; i < RC_NODES; i++)
		snprintf(cl->addrs[i], sizeof(cl->addrs[i]), "127.0.0.1:%u", ports[i]);
	for (unsigned i = 0; i < RC_NODES; i++) {
		struct rc_node *n = &cl->nodes[i];
		tu_tmpdir(n->dir, sizeof(n->dir));
		for (unsigned j = 0; j < RC_NODES; j++) {
			n->peers[j].id = j + 1;
			n->peers[j].address = cl->addrs[j];
		}
		n->cfg.id = i + 1;
		n->cfg.address = cl->addrs[i];
		n->cfg.dir = n->dir;
		/* As the daemon does on every start: the configured peers, which
		 * libraft ignores once the directory holds state. */
		n->cfg.initial = n->peers;
		n->cfg.ninitial = RC_NODES;
		n->cfg.snapshot_threshold = threshold;
		n->cfg.snapshot_trailing = trailing;
		n->cfg.tls = use_tls[i];
		/* Not the LAN defaults (120/12 ms): sanitizer builds on a loaded
		 * machine pause the one loop of all three nodes for longer. */
		n->cfg.election_timeout_ms = 300;
		n->cfg.heartbeat_timeout_ms = 30;
		capp_init(&n->app);
	}
	return cl;
}

bool rc_run_until(struct rc_cluster *cl, rc_pred pred, void *arg, unsigned ms)
{
	uint64_t deadline;
	bool ok = true;

	uv_update_time(&cl->loop);
	deadline = uv_now(&cl->loop) + ms;
	uv_timer_start(&cl->tick, noop_tick, 5, 5);
	while (!pred(cl, arg)) {
		if (uv_now(&cl->loop) > deadline) {
			ok = false;
			break;
		}
		uv_run(&cl->loop, UV_RUN_ONCE);
	}
	uv_timer_stop(&cl->tick);
	return ok;
}

static bool pred_never(struct rc_cluster *cl, void *arg)
{
	(void)cl;
	(void)arg;
	return false;
}

void rc_run_for(struct rc_cluster *cl, unsigned ms)
{
	rc_run_until(cl, pred_never, NULL, ms);
}

void rc_start(struct rc_cluster *cl, unsigned i)
{
	struct rc_node *n = &cl->nodes[i];
	struct cons_callbacks cb;
	struct ing_error e = {0};

	if (n->keep) {
		capp_restart(&n->app);
	} else {
		capp_free(&n->app);
		capp_init(&n->app);
	}
	n->keep = false;
	n->app.cons_of = &n->c;
	cb = n->durable ? capp_callbacks_durable(&n->app) : capp_callbacks(&n->app);
	if (cons_start(&cl->loop, &n->cfg, &cb, &n->c, &e) != 0)
		fail_msg("cons_start node %u: %s", i + 1, e.msg);
	n->open = true;
	n->closed = false;
}

static void on_closed(void *data)
{
	((struct rc_node *)data)->closed = true;
}

static bool pred_closed(struct rc_cluster *cl, void *arg)
{
	(void)cl;
	return ((struct rc_node *)arg)->closed;
}

void rc_close(struct rc_cluster *cl, unsigned i)
{
	struct rc_node *n = &cl->nodes[i];
	assert_true(n->open);
	cl->in_close = true;
	cons_close(n->c, on_closed, n);
	cl->in_close = false;
	n->open = false;
	n->c = NULL;
	assert_true(rc_run_until(cl, pred_closed, n, RC_RUN_MS));
}

void rc_free(struct rc_cluster *cl)
{
	for (unsigned i = 0; i < RC_NODES; i++)
		if (cl->nodes[i].open)
			rc_close(cl, i);
	uv_close((uv_handle_t *)&cl->tick, NULL);
	/* Nothing of ours or libraft's may keep the loop alive. */
	assert_int_equal(uv_run(&cl->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&cl->loop), 0);
	for (unsigned i = 0; i < RC_NODES; i++) {
		capp_free(&cl->nodes[i].app);
		tu_rmrf(cl->nodes[i].dir);
	}
	free(cl);
}

int rc_ready_leader(struct rc_cluster *cl, uint64_t min_term)
{
	for (unsigned i = 0; i < RC_NODES; i++) {
		struct rc_node *n = &cl->nodes[i];
		if (n->open && capp_role(&n->app) == CONS_LEADER_READY &&
		    n->app.roles[n->app.nroles - 1].term > min_term)
			return (int)i;
	}
	return -1;
}

static bool pred_ready(struct rc_cluster *cl, void *arg)
{
	return rc_ready_leader(cl, *(uint64_t *)arg) >= 0;
}

int rc_wait_leader(struct rc_cluster *cl, uint64_t min_term)
{
	assert_true(rc_run_until(cl, pred_ready, &min_term, RC_RUN_MS));
	return rc_ready_leader(cl, min_term);
}

static void prop_cb(struct cons_proposal *p, int status, void *result)
{
	struct rc_prop *t = (struct rc_prop *)p;
	t->calls++;
	t->status = status;
	if (t->cl->in_close)
		t->cl->cb_inside_close++;
	if (result != NULL) {
		t->had_result = true;
		t->result = *(uint64_t *)result;
		free(result);
	}
}

int rc_propose(struct rc_cluster *cl, unsigned i, uint32_t seed, size_t len, struct rc_prop **out)
{
	struct rc_prop *t;
	uint8_t buf[512];
	int rv;

	assert_true(cl->nprops < RC_MAX_PROPS && len <= sizeof(buf));
	t = &cl->props[cl->nprops];
	memset(t, 0, sizeof(*t));
	t->cl = cl;
	t->p.cb = prop_cb;
	capp_payload(buf, len, seed);
	rv = cons_propose(cl->nodes[i].c, &t->p, buf, len);
	if (rv == 0)
		cl->nprops++;
	if (out != NULL)
		*out = t;
	return rv;
}

bool rc_pred_props_done(struct rc_cluster *cl, void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < cl->nprops; i++)
		if (cl->props[i].calls == 0)
			return false;
	return true;
}

struct applied_goal {
	unsigned node;
	size_t n;
};

static bool pred_applied(struct rc_cluster *cl, void *arg)
{
	struct applied_goal *g = arg;
	return cl->nodes[g->node].app.n >= g->n;
}

void rc_wait_applied(struct rc_cluster *cl, unsigned node, size_t n)
{
	struct applied_goal g = {node, n};
	if (!rc_run_until(cl, pred_applied, &g, RC_RUN_MS))
		fail_msg("node %u applied %zu of %zu entries", node + 1, cl->nodes[node].app.n, n);
}
