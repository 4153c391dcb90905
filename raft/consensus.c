/*
 * consensus.c - one node's libraft instance on the caller's libuv loop:
 * start (bootstrap or restart), role tracking, the leader barrier, close,
 * status and membership view.
 *
 * Start: validate the configuration, mkdir -p the directory, then
 * cons_transport_init (transport.h), raft_uv_init, raft_init, the tuning calls, raft_bootstrap
 * when initial voters are given (RAFT_CANTBOOTSTRAP means the directory
 * already holds state: a plain restart) and raft_start.  Before libraft
 * opens the directory, startcheck.c refuses what 0.15 would spin on (a
 * truncated snapshot) or silently get wrong (a log whose metadata is lost).  libraft's
 * auto-recovery is off: 0.15 would rename a damaged segment to `corrupt-*` and start again silently
 * with a shorter log, losing entries this node may have acknowledged; instead the start fails with
 * ING_ECORRUPT naming the segment.  While starting, libraft's traces are on and those reporting
 * damage are logged at warn (trace.c).
 *
 * Role tracking: libraft 0.15 has no state-change callback, so a uv_prepare
 * handle (the "pump") runs before every poll of the loop.  Whatever libraft
 * did during an iteration (timers, I/O callbacks) is therefore seen before
 * the loop blocks again.  The pump compares (role, leader, term) with what it
 * last reported and calls role_changed on any difference; it also hands
 * the proposals staged during the iteration to libraft as one batch,
 * delivers completed proposals (propose.c) and a fatal failure, so that no
 * user callback ever runs inside libraft or inside a cons_* call.  A
 * proposal staged after the pump ran (another prepare handle) starts
 * flush_idle, an idle handle whose only effect is that the poll does not
 * block, so the next pump comes at once.
 *
 * Leader barrier (DESIGN.md: 0.15 appends no entry at election and may
 * count older-term replicas as committed): the first pump that sees the node
 * leader in a term proposes a barrier.  The role is CONS_LEADER until that
 * barrier's callback reports success in the same term, then
 * CONS_LEADER_READY.  Losing leadership fails the barrier
 * (RAFT_LEADERSHIPLOST); the next term as leader proposes a new one.
 *
 * States: running (pump started) -> draining (cons_close: no new requests,
 * no role reports; the pump delivers completions and waits until the whole
 * log is persisted, however long the disk takes, because 0.15 crashes when
 * raft_close cancels two or more leader appends; nothing new is appended
 * meanwhile, since every proposal, barrier and change is refused, so the
 * wait ends when the disk has written what it was given) -> raft closing (pump
 * stopped, raft_close called from the pump; libraft fails every pending
 * request synchronously, which only queues them) -> raft closed
 * (raft_uv_close, cons_transport_close, uv_close of the pump) -> pump closed
 * (pending requests delivered with ING_EUNAVAILABLE, struct freed,
 * close_cb).  A failed start after raft_init goes straight to raft closing,
 * without close_cb.
 *
 * Close gate: libraft 0.15 may call raft_close's callback before the file
 * writers of the segments it finalizes have closed, and again from each
 * writer's close (a use-after-free; ingotd's crash on SIGTERM with its data
 * on tmpfs).  The transport's close is therefore reported to libraft one
 * loop iteration late, which keeps libraft's close waiting until those
 * writers are gone (close_raft).
 *
 * Failure modes: bad configuration (ING_EINVAL, nothing allocated); libraft
 * or disk failures at start (translated, with libraft's message); apply or
 * restore failing, or libraft turning itself RAFT_UNAVAILABLE while running:
 * fatal, reported once through cb.fatal from the pump, role
 * CONS_UNAVAILABLE, proposals refused with ING_EUNAVAILABLE.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/tls.h"
#include "raft/cons_internal.h"
#include "raft/transport.h"

#define DEFAULT_ELECTION_TIMEOUT_MS  120
#define DEFAULT_HEARTBEAT_TIMEOUT_MS 12
#define DEFAULT_CONNECT_RETRY_MS     50
#define DEFAULT_SNAPSHOT_THRESHOLD   4096
#define DEFAULT_SNAPSHOT_TRAILING    1024
/* While cons_close waits for the disk: one warning line this often. */
#define CLOSE_WARN_EVERY_MS 5000

const char *cons_role_name(enum cons_role role)
{
	switch (role) {
	case CONS_FOLLOWER: return "follower";
	case CONS_CANDIDATE: return "candidate";
	case CONS_LEADER:
	case CONS_LEADER_READY: return "leader";
	case CONS_UNAVAILABLE: return "unavailable";
	}
	return "unknown";
}

const char *cons_role_ready(enum cons_role role)
{
	return role == CONS_LEADER_READY ? "yes" : role == CONS_LEADER ? "no" : NULL;
}

/* "a.b.c.d:port", the only form libraft's TCP transport takes. */
bool cons_address_valid(const char *s)
{
	const char *colon;
	char host[INET_ADDRSTRLEN];
	struct in_addr a;
	unsigned long port;
	char *end;
	size_t n;

	if (s == NULL || (colon = strrchr(s, ':')) == NULL) {
		return false;
	}
	n = (size_t)(colon - s);
	if (n == 0 || n >= sizeof(host)) {
		return false;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1 || !isdigit((unsigned char)colon[1])) {
		return false;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && port > 0 && port <= 65535;
}

static int validate(const struct cons_config *cfg, const struct cons_callbacks *cb,
                    struct ing_error *e)
{
	unsigned i, j, election, heartbeat;
	bool self = false;

	if (cfg == NULL || cb == NULL || cb->apply == NULL || cb->snapshot == NULL ||
	    cb->restore == NULL) {
		return ing_error_set(e, ING_EINVAL,
		                     "consensus: config and apply/snapshot/restore "
		                     "callbacks are required");
	}
	if ((cb->snapshot_sync == NULL) != (cb->state_index == NULL)) {
		return ing_error_set(e, ING_EINVAL,
		                     "consensus: snapshot_sync and state_index go together");
	}
	if (cfg->id == 0) {
		return ing_error_set(e, ING_EINVAL, "consensus: node id must be non-zero");
	}
	if (!cons_address_valid(cfg->address)) {
		return ing_error_set(e, ING_EINVAL, "consensus: address \"%s\" is not a.b.c.d:port",
		                     cfg->address != NULL ? cfg->address : "");
	}
	if (cfg->dir == NULL || cfg->dir[0] == '\0') {
		return ing_error_set(e, ING_EINVAL, "consensus: raft directory is required");
	}
	election =
	    cfg->election_timeout_ms ? cfg->election_timeout_ms : DEFAULT_ELECTION_TIMEOUT_MS;
	heartbeat =
	    cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms : DEFAULT_HEARTBEAT_TIMEOUT_MS;
	if (heartbeat >= election) {
		return ing_error_set(e, ING_EINVAL,
		                     "consensus: heartbeat timeout %ums must be below the "
		                     "election timeout %ums",
		                     heartbeat, election);
	}
	if (cfg->ninitial > 0 && cfg->initial == NULL) {
		return ing_error_set(e, ING_EINVAL, "consensus: initial voters missing");
	}
	for (i = 0; i < cfg->ninitial; i++) {
		const struct cons_peer *p = &cfg->initial[i];
		if (p->id == 0 || !cons_address_valid(p->address)) {
			return ing_error_set(e, ING_EINVAL,
			                     "consensus: initial voter %u (id %" PRIu64
			                     ", address \"%s\") is invalid",
			                     i, p->id, p->address != NULL ? p->address : "");
		}
		for (j = 0; j < i; j++) {
			if (cfg->initial[j].id == p->id ||
			    strcmp(cfg->initial[j].address, p->address) == 0) {
				return ing_error_set(e, ING_EINVAL,
				                     "consensus: initial voters %u and %u share an "
				                     "id or address",
				                     j, i);
			}
		}
		if (p->id == cfg->id) {
			if (strcmp(p->address, cfg->address) != 0) {
				return ing_error_set(e, ING_EINVAL,
				                     "consensus: node %" PRIu64
				                     " is %s among the initial voters but %s here",
				                     cfg->id, p->address, cfg->address);
			}
			self = true;
		}
	}
	if (cfg->ninitial > 0 && !self) {
		return ing_error_set(
		    e, ING_EINVAL, "consensus: node %" PRIu64 " is not among the %u initial voters",
		    cfg->id, cfg->ninitial);
	}
	return 0;
}

/* libraft's message for its last failure: raft_start and raft_init leave
 * some of theirs in the io or transport only. */
static const char *raft_detail(struct cons *c)
{
	const char *m = raft_errmsg(&c->raft);
	if (m != NULL && m[0] != '\0') {
		return m;
	}
	if (c->io.errmsg[0] != '\0') {
		return c->io.errmsg;
	}
	return c->transport.errmsg[0] != '\0' ? c->transport.errmsg : "no detail";
}

static void cons_free(struct cons *c)
{
	cons_metrics_stop(c);
	free(c->address);
	free(c->dir);
	free(c);
}

/* Records the first fatal failure; the pump reports it. */
static void note_fatal(void *owner, int code, const char *message)
{
	struct cons *c = owner;
	if (c->failed) {
		return;
	}
	c->failed = true;
	c->fatal_code = code;
	snprintf(c->fatal_msg, sizeof(c->fatal_msg), "%s", message);
}

static enum cons_role current_role(struct cons *c)
{
	if (c->failed || c->closing) {
		return CONS_UNAVAILABLE;
	}
	switch (raft_state(&c->raft)) {
	case RAFT_FOLLOWER: return CONS_FOLLOWER;
	case RAFT_CANDIDATE: return CONS_CANDIDATE;
	case RAFT_LEADER:
		return c->ready_term == c->raft.current_term ? CONS_LEADER_READY : CONS_LEADER;
	default: return CONS_UNAVAILABLE;
	}
}

static void lead_barrier_cb(struct raft_barrier *req, int status)
{
	struct cons *c = req->data;
	c->lead_barrier_busy = false;
	if (status == 0 && raft_state(&c->raft) == RAFT_LEADER &&
	    c->raft.current_term == c->lead_barrier_term) {
		c->ready_term = c->lead_barrier_term;
		ING_LOG_INFO("raft leader barrier committed raft_node=%" PRIu64 " term=%" PRIu64
		             " index=%llu",
		             c->id, c->ready_term, req->index);
		return;
	}
	ING_LOG_DEBUG("raft leader barrier failed raft_node=%" PRIu64 " term=%" PRIu64 " rc=%d",
	              c->id, c->lead_barrier_term, status);
	c->lead_barrier_term = 0; /* retried if still leader in that term */
}

static void maybe_lead_barrier(struct cons *c)
{
	uint64_t term = c->raft.current_term;
	int rv;

	if (c->failed || raft_state(&c->raft) != RAFT_LEADER || c->lead_barrier_busy ||
	    c->lead_barrier_term == term) {
		return;
	}
	c->lead_barrier.data = c;
	rv = raft_barrier(&c->raft, &c->lead_barrier, lead_barrier_cb);
	if (rv != 0) {
		/* e.g. a leadership transfer in flight: retried at the next pump. */
		if (rv != RAFT_NOTLEADER) {
			cons_raft_failed(c, "raft_barrier(leader)", rv, raft_detail(c));
		}
		return;
	}
	c->lead_barrier_busy = true;
	c->lead_barrier_term = term;
	ING_LOG_DEBUG("raft leader barrier proposed raft_node=%" PRIu64 " term=%" PRIu64
	              " index=%llu",
	              c->id, term, c->lead_barrier.index);
}

static void report_role(struct cons *c)
{
	enum cons_role role = current_role(c);
	uint64_t term = c->raft.current_term;
	const char *address = NULL;
	raft_id leader = 0;

	raft_leader(&c->raft, &leader, &address);
	if (c->reported && role == c->role && leader == c->leader_id && term == c->term) {
		return;
	}
	if (term != c->term) {
		ing_log_set_term(term);
	}
	if (c->reported && leader != c->leader_id)
		cons_metrics_leader_changed();
	c->reported = true;
	c->role = role;
	c->leader_id = leader;
	c->term = term;
	ING_LOG_INFO("raft role changed raft_node=%" PRIu64 " role=%s%s%s leader=%" PRIu64
	             " term=%" PRIu64,
	             c->id, cons_role_name(role), cons_role_ready(role) ? " ready=" : "",
	             cons_role_ready(role) ? cons_role_ready(role) : "", (uint64_t)leader, term);
	if (c->cb.role_changed != NULL) {
		c->cb.role_changed(c->cb.data, role, leader, term);
	}
}

static void raft_closed(struct raft *r);

/* Nothing the leader appended is still being written: 0.15's raft_close
 * cancels in-flight appends, and its appendLeaderCb truncates the log at
 * each cancelled request's index; from the second one on that index lies
 * past the end of the log and the truncation crashes (fixed upstream after
 * 0.15 with an `index <= logLastIndex` guard).  Follower appends are safe. */
static bool log_persisted(struct cons *c)
{
	return raft_last_index(&c->raft) <= c->raft.last_stored;
}

/*
 * The close gate.  raft_close closes libraft's uv backend (uvClose), whose
 * callback uvMaybeFireCloseCb (src/uv.c:157) runs once the tick timer, the
 * transport, the segment queues and the pool work are done, but it does not
 * wait for the file writers of the open segments being finalized:
 * uvAliveSegmentFinalize (src/uv_append.c:94) takes a segment off
 * append_segments and then closes its writer, whose libuv handles close at
 * the end of the loop iteration; the writer's close callback calls
 * uvMaybeFireCloseCb again (src/uv_append.c:78).  When the segment's
 * finalization (a pool thread) completes before that, as it does on tmpfs,
 * and the timer or transport close is the last thing awaited, the callback
 * runs from there, we free the struct raft and libraft's struct uv, and the
 * writer's close then runs it a second time on freed memory (ioCloseCb,
 * src/raft.c:100).
 *
 * The transport is the part of the io we own: libraft hears of its close
 * only from the close callback of close_gate, an idle handle started when
 * the real transport has closed (from a close callback, or inside
 * raft_close).  An idle handle first runs in the next loop iteration, after
 * the closing phase of the current one, which runs the close callbacks of
 * the writers raft_close closed (it closes only writers with no write in
 * flight, so their handles close at once).  A writer closed later, once its
 * write completes, keeps libraft waiting on its segment's finalization,
 * queued along with the writer's close and completed at the earliest in the
 * next iteration, after the writer's close callback.
 */
static struct cons *cons_of_transport(struct raft_uv_transport *t)
{
	return (struct cons *)(void *)((char *)t - offsetof(struct cons, transport));
}

static void close_gate_closed(uv_handle_t *h)
{
	struct cons *c = h->data;
	/* May free c (start_failed_raft_closed). */
	c->transport_closed_cb(&c->transport);
}

static void close_gate_cb(uv_idle_t *h)
{
	uv_idle_stop(h);
	uv_close((uv_handle_t *)h, close_gate_closed);
}

static void gated_transport_closed(struct raft_uv_transport *t)
{
	struct cons *c = cons_of_transport(t);
	uv_idle_start(&c->close_gate, close_gate_cb);
}

static void gated_transport_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct cons *c = cons_of_transport(t);
	c->transport_closed_cb = cb;
	uv_idle_init(c->loop, &c->close_gate);
	c->close_gate.data = c;
	c->transport_close(t, gated_transport_closed);
}

/* raft_close with the close gate in place. */
static void close_raft(struct cons *c, void (*cb)(struct raft *r))
{
	c->transport_close = c->transport.close;
	c->transport.close = gated_transport_close;
	raft_close(&c->raft, cb);
}

/* Closing: deliver what completed, and call raft_close once the log is
 * persisted.  No deadline: closing earlier is the crash this avoids.  The
 * pump runs before each poll, and the loop wakes for every completed write
 * (and for libraft's heartbeat timer), so the wait ends on the iteration
 * after the last write completes. */
static void drain(struct cons *c)
{
	cons_flush(c); /* closing: fails what is staged */
	cons_deliver(c, true);
	if (c->snapref_copies > 0) {
		return; /* its completion calls into libraft (snapref.c) */
	}
	if (!log_persisted(c)) {
		uint64_t now = uv_now(c->loop);
		if (now >= c->close_next_warn_ms) {
			ING_LOG_WARN("raft close waiting for the disk raft_node=%" PRIu64
			             " last_index=%llu last_stored=%llu",
			             c->id, raft_last_index(&c->raft), c->raft.last_stored);
			c->close_next_warn_ms = now + CLOSE_WARN_EVERY_MS;
		}
		return;
	}
	c->raft_closing = true;
	uv_prepare_stop(&c->pump);
	/* Fails libraft's pending requests synchronously: they are only
	 * queued here and delivered from pump_closed. */
	close_raft(c, raft_closed);
}

/* Leader: notes which members answered lately.  libraft sets a member's
 * recent_recv on each reply and clears it once per election timeout, in its
 * leader tick, right before it sets election_timer_start to that moment.
 * Two views follow:
 *  - at_ms, an upper bound: now whenever the flag is set, so it trails the
 *    truth by at most one election timeout (members not heard from yet
 *    count from the start of the leadership: a grace period);
 *  - confirmed_ms, a lower bound on the last reply: a set flag proves a
 *    reply at or after election_timer_start (the last clear), and a flag
 *    seen clear at one pump and set at the next proves one after that
 *    pump.  Never from the start of the leadership: a member is confirmed
 *    only by a reply this leader received. */
static void update_contacts(struct cons *c)
{
	const struct raft_configuration *conf = &c->raft.configuration;
	uint64_t now = uv_now(c->loop);
	uint64_t cleared = c->raft.election_timer_start;
	unsigned i, j, n = 0;
	struct cons_contact next[CONS_MAX_CONTACTS];

	if (raft_state(&c->raft) != RAFT_LEADER) {
		c->contact_term = 0;
		return;
	}
	if (c->contact_term != c->raft.current_term) {
		c->contact_term = c->raft.current_term;
		c->leader_since_ms = now;
		c->ncontact = 0;
	}
	for (i = 0; i < conf->n && n < CONS_MAX_CONTACTS; i++) {
		const struct raft_server *s = &conf->servers[i];
		struct cons_contact *x = &next[n];
		*x = (struct cons_contact){.id = s->id, .at_ms = c->leader_since_ms};
		for (j = 0; j < c->ncontact; j++)
			if (c->contact[j].id == s->id)
				*x = c->contact[j];
		if (s->id == c->id) {
			x->at_ms = x->confirmed_ms = now;
		} else if (c->raft.leader_state.progress[i].recent_recv) {
			uint64_t lb = cleared;
			if (x->clear_ms >= cleared && x->clear_ms > lb)
				lb = x->clear_ms;
			if (lb > x->confirmed_ms)
				x->confirmed_ms = lb;
			x->at_ms = now;
		} else {
			x->clear_ms = now;
		}
		n++;
	}
	memcpy(c->contact, next, n * sizeof(next[0]));
	c->ncontact = n;
}

static void pump(struct cons *c)
{
	if (c->closing) {
		if (!c->raft_closing) {
			drain(c);
		}
		return;
	}
	cons_trace_refresh(c);
	if (!c->failed && raft_state(&c->raft) == RAFT_UNAVAILABLE) {
		char msg[sizeof(c->fatal_msg)];
		snprintf(msg, sizeof(msg), "libraft stopped: %s", raft_detail(c));
		note_fatal(c, ING_EINTERNAL, msg);
	}
	if (c->failed && !c->fatal_reported) {
		c->fatal_reported = true;
		ING_LOG_ERROR("raft node failed raft_node=%" PRIu64 " code=%s msg=\"%s\"", c->id,
		              ing_err_name(c->fatal_code), c->fatal_msg);
		if (c->cb.fatal != NULL) {
			c->cb.fatal(c->cb.data, c->fatal_code, c->fatal_msg);
		}
		if (c->closing) {
			return;
		}
	}
	maybe_lead_barrier(c);
	update_contacts(c);
	report_role(c);
	if (c->closing) {
		return;
	}
	cons_propose_pump(c);
	cons_deliver(c, false);
	if (c->closing) {
		return;
	}
	/* What the callbacks proposed goes out before the poll too. */
	cons_flush(c);
	if (!cons_link_empty(&c->done)) {
		cons_flush_soon(c);
	}
}

static void pump_cb(uv_prepare_t *h)
{
	pump(h->data);
}

/* Runs before the pump in the same iteration; being active, it keeps the
 * poll from blocking, which is all it is for. */
static void flush_idle_cb(uv_idle_t *h)
{
	uv_idle_stop(h);
}

void cons_flush_soon(struct cons *c)
{
	if (!uv_is_active((uv_handle_t *)&c->flush_idle)) {
		uv_idle_start(&c->flush_idle, flush_idle_cb);
	}
}

/* Start failed after raft_init: libraft's I/O closes asynchronously. */
static void start_failed_raft_closed(struct raft *r)
{
	struct cons *c = r->data;
	raft_uv_close(&c->io);
	cons_transport_close(&c->transport);
	cons_free(c);
}

static int bootstrap(struct cons *c, const struct cons_config *cfg, struct ing_error *e)
{
	struct raft_configuration conf;
	unsigned i;
	int rv = 0;

	raft_configuration_init(&conf);
	for (i = 0; i < cfg->ninitial && rv == 0; i++) {
		rv = raft_configuration_add(&conf, cfg->initial[i].id, cfg->initial[i].address,
		                            RAFT_VOTER);
	}
	if (rv == 0) {
		rv = raft_bootstrap(&c->raft, &conf);
	}
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP) {
		ING_LOG_INFO("raft state exists, restarting raft_node=%" PRIu64 " dir=%s", c->id,
		             c->dir);
		return 0;
	}
	if (rv != 0) {
		int code = cons_raft_failed(c, "raft_bootstrap", rv, raft_detail(c));
		/* 0.15 bootstraps when it finds no valid metadata file; if the
		 * directory holds a log, the metadata is what is damaged. */
		return ing_error_set(e, code,
		                     "consensus: bootstrap in %s failed: %s (a directory holding "
		                     "a raft log but no valid metadata1/metadata2 is damaged)",
		                     c->dir, raft_detail(c));
	}
	ING_LOG_INFO("raft bootstrapped raft_node=%" PRIu64 " voters=%u dir=%s", c->id,
	             cfg->ninitial, c->dir);
	return 0;
}

int cons_start(uv_loop_t *loop, const struct cons_config *cfg, const struct cons_callbacks *cb,
               struct cons **out, struct ing_error *e)
{
	struct cons *c;
	int rv, code;

	if (loop == NULL || out == NULL) {
		return ing_error_set(e, ING_EINVAL, "consensus: loop and out are required");
	}
	rv = validate(cfg, cb, e);
	if (rv != 0) {
		return rv;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->address = strdup(cfg->address)) == NULL ||
	    (c->dir = strdup(cfg->dir)) == NULL) {
		if (c != NULL) {
			cons_free(c);
		}
		return ing_error_set(e, ING_ENOMEM, "consensus: out of memory");
	}
	c->loop = loop;
	c->id = cfg->id;
	c->cb = *cb;
	c->starting = true;
	cons_link_init(&c->pending);
	cons_link_init(&c->done);
	cons_link_init(&c->staged);

	if (cfg->tls != NULL) {
		struct ing_tls_identity own;
		ing_tls_own_identity(cfg->tls, &own);
		if (own.kind != ING_TLS_PEER_NODE || own.node_id != cfg->id) {
			char who[ING_TLS_NAME_MAX + 16];
			ing_tls_identity_format(&own, who, sizeof(who));
			cons_free(c);
			return ing_error_set(
			    e, ING_EINVAL,
			    "consensus: the TLS certificate is that of %s, not of node "
			    "%" PRIu64 " (make one with 'ingotctl pki issue node --id "
			    "%" PRIu64 "')",
			    who, cfg->id, cfg->id);
		}
	}
	rv = ing_mkdirs(c->dir, 0700, e);
	if (rv == 0)
		rv = cons_check_dir(c->dir, c->snapshot, sizeof(c->snapshot), e);
	if (rv != 0) {
		cons_free(c);
		return rv;
	}
	rv = cons_transport_init(&c->transport, loop, cfg->tls);
	if (rv != 0) {
		code = cons_raft_failed(c, "cons_transport_init", rv, c->transport.errmsg);
		ing_error_set(e, code, "consensus: transport init failed: %s",
		              c->transport.errmsg[0] ? c->transport.errmsg : raft_strerror(rv));
		cons_free(c);
		return code;
	}
	rv = raft_uv_init(&c->io, loop, c->dir, &c->transport);
	if (rv != 0) {
		code = cons_raft_failed(c, "raft_uv_init", rv, c->io.errmsg);
		ing_error_set(e, code, "consensus: raft storage in %s: %s", c->dir,
		              c->io.errmsg[0] ? c->io.errmsg : raft_strerror(rv));
		cons_transport_close(&c->transport);
		cons_free(c);
		return code;
	}
	if (cb->snapshot_sync != NULL) {
		cons_snapref_wrap(c);
	}
	cons_trace_init(c);
	cons_metrics_start(c);
	cons_commit_early_wrap(c);
	cons_send_guard_wrap(c);
	raft_uv_set_tracer(&c->io, &c->tracer);
	raft_uv_set_auto_recovery(&c->io, false);
	raft_uv_set_connect_retry_delay(&c->io, cfg->connect_retry_ms ? cfg->connect_retry_ms
	                                                              : DEFAULT_CONNECT_RETRY_MS);

	/* libraft 0.15's uv backend implements async work but still says
	 * io->version 1, and raft_init refuses an async-snapshot fsm (version 3)
	 * with a version-1 io.  Raising it lets snapshots copy the state on a
	 * pool thread instead of pausing the loop (measured: 800 ms at 100 MB,
	 * enough to trigger elections).  It leans on libraft's internals: the
	 * upstream releases that fixed this (0.16+) set version 2 themselves. */
	bool async = c->io.async_work != NULL;
	if (async && c->io.version < 2)
		c->io.version = 2;
	cons_fsm_init(&c->fsm, c->id, cb, async);
	c->fsm.claim = cons_claim;
	c->fsm.on_fatal = note_fatal;
	c->fsm.owner = c;
	rv = raft_init(&c->raft, &c->io, &c->fsm.fsm, c->id, c->address);
	if (rv != 0) {
		code = cons_raft_failed(c, "raft_init", rv, raft_detail(c));
		ing_error_set(e, code, "consensus: raft init in %s: %s", c->dir, raft_detail(c));
		raft_uv_close(&c->io);
		cons_transport_close(&c->transport);
		cons_free(c);
		return code;
	}
	c->raft.data = c;
	c->raft.tracer = &c->tracer;
	cons_transport_set_raft(&c->transport, &c->raft);
	c->fsm.raft = &c->raft;
	raft_set_election_timeout(&c->raft, cfg->election_timeout_ms ? cfg->election_timeout_ms
	                                                             : DEFAULT_ELECTION_TIMEOUT_MS);
	raft_set_heartbeat_timeout(&c->raft, cfg->heartbeat_timeout_ms
	                                         ? cfg->heartbeat_timeout_ms
	                                         : DEFAULT_HEARTBEAT_TIMEOUT_MS);
	raft_set_pre_vote(&c->raft, true);
	unsigned threshold =
	    cfg->snapshot_threshold ? cfg->snapshot_threshold : DEFAULT_SNAPSHOT_THRESHOLD;
	raft_set_snapshot_threshold(&c->raft, threshold);
	c->fsm.snap_threshold = threshold;
	c->fsm.snap_cap = threshold > UINT_MAX / 16 ? UINT_MAX : threshold * 16;
	c->fsm.snap_interval_ms = cfg->snapshot_interval_ms;
	raft_set_snapshot_trailing(&c->raft, cfg->snapshot_trailing ? cfg->snapshot_trailing
	                                                            : DEFAULT_SNAPSHOT_TRAILING);

	if (cfg->ninitial > 0) {
		rv = bootstrap(c, cfg, e);
		if (rv != 0) {
			goto fail_after_init;
		}
	}
	rv = raft_start(&c->raft);
	c->starting = false;
	cons_trace_refresh(c);
	if (rv != 0) {
		code = cons_raft_failed(c, "raft_start", rv, raft_detail(c));
		if (c->fsm.failed) {
			code = c->fsm.fatal_code;
			rv = ing_error_set(
			    e, code, "consensus: restoring the raft snapshot %s/%s failed: %s",
			    c->dir, c->snapshot,
			    c->fatal_msg[0] ? c->fatal_msg : ing_err_msg(code));
		} else {
			rv = ing_error_set(e, code, "consensus: raft start in %s failed: %s",
			                   c->dir, raft_detail(c));
		}
		goto fail_after_init;
	}
	uv_prepare_init(loop, &c->pump);
	c->pump.data = c;
	uv_prepare_start(&c->pump, pump_cb);
	uv_idle_init(loop, &c->flush_idle);
	c->flush_idle.data = c;
	ING_LOG_INFO("raft started raft_node=%" PRIu64 " address=%s dir=%s term=%llu "
	             "last_index=%llu",
	             c->id, c->address, c->dir, c->raft.current_term, raft_last_index(&c->raft));
	*out = c;
	return 0;

fail_after_init:
	c->starting = false;
	c->closing = true;
	c->raft_closing = true;
	close_raft(c, start_failed_raft_closed);
	return rv;
}

static void pump_closed(uv_handle_t *h)
{
	struct cons *c = h->data;
	void (*close_cb)(void *) = c->close_cb;
	void *data = c->close_data;

	cons_fail_pending(c, ING_EUNAVAILABLE);
	cons_deliver(c, true);
	ING_LOG_INFO("raft closed raft_node=%" PRIu64, c->id);
	cons_free(c);
	if (close_cb != NULL) {
		close_cb(data);
	}
}

/* The pump goes last: its close callback frees c. */
static void flush_idle_closed(uv_handle_t *h)
{
	struct cons *c = h->data;
	uv_close((uv_handle_t *)&c->pump, pump_closed);
}

static void raft_closed(struct raft *r)
{
	struct cons *c = r->data;
	raft_uv_close(&c->io);
	cons_transport_close(&c->transport);
	uv_close((uv_handle_t *)&c->flush_idle, flush_idle_closed);
}

void cons_close(struct cons *c, void (*close_cb)(void *data), void *data)
{
	if (c->closing) {
		ING_LOG_WARN("raft close called twice raft_node=%" PRIu64, c->id);
		return;
	}
	c->closing = true;
	c->close_cb = close_cb;
	c->close_data = data;
	cons_metrics_stop(c);
	uv_update_time(c->loop);
	c->close_next_warn_ms = uv_now(c->loop) + CLOSE_WARN_EVERY_MS;
	ING_LOG_INFO("raft closing raft_node=%" PRIu64 " term=%llu last_index=%llu "
	             "last_stored=%llu",
	             c->id, c->raft.current_term, raft_last_index(&c->raft), c->raft.last_stored);
	/* The pump (still started) drains, then calls raft_close: never from
	 * here, so no user callback runs inside cons_close. */
}

void cons_status(struct cons *c, struct cons_status *out)
{
	const char *address = NULL;
	raft_id leader = 0;

	*out = (struct cons_status){0};
	out->role = current_role(c);
	out->id = c->id;
	raft_leader(&c->raft, &leader, &address);
	out->leader_id = leader;
	if (address != NULL) {
		snprintf(out->leader_address, sizeof(out->leader_address), "%s", address);
	}
	out->term = c->raft.current_term;
	out->commit_index = c->raft.commit_index;
	out->last_applied = raft_last_applied(&c->raft);
	out->last_index = raft_last_index(&c->raft);
	out->start_reference = c->fsm.ref_restored;
	out->proposals = c->n_proposals;
	out->proposal_batches = c->n_batches;
	if (raft_state(&c->raft) != RAFT_LEADER) {
		/* libraft restarts its election timer on each valid append from
		 * the leader (and when it starts): its start is the last contact. */
		raft_time now = uv_now(c->loop);
		out->leader_contact_ago_ms = c->raft.election_timer_start == 0 ? UINT64_MAX
		                             : now > c->raft.election_timer_start
		                                 ? now - c->raft.election_timer_start
		                                 : 0;
	}
}

int cons_members(struct cons *c, struct cons_member **out, unsigned *n)
{
	const struct raft_configuration *conf = &c->raft.configuration;
	bool leader =
	    raft_state(&c->raft) == RAFT_LEADER && c->contact_term == c->raft.current_term;
	uint64_t now = uv_now(c->loop);
	struct cons_member *m;
	unsigned i, j;

	if (conf->n == 0) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	m = calloc(conf->n, sizeof(*m));
	if (m == NULL) {
		return ING_ENOMEM;
	}
	for (i = 0; i < conf->n; i++) {
		const struct raft_server *s = &conf->servers[i];
		m[i].id = s->id;
		snprintf(m[i].address, sizeof(m[i].address), "%s", s->address);
		m[i].role = s->role == RAFT_VOTER     ? CONS_VOTER
		            : s->role == RAFT_STANDBY ? CONS_STANDBY
		                                      : CONS_SPARE;
		if (!leader) {
			continue;
		}
		m[i].match_index = s->id == c->id ? raft_last_index(&c->raft)
		                                  : c->raft.leader_state.progress[i].match_index;
		m[i].contact_ago_ms = UINT64_MAX;
		m[i].confirmed_ago_ms = UINT64_MAX;
		for (j = 0; j < c->ncontact; j++) {
			const struct cons_contact *x = &c->contact[j];
			if (x->id != s->id)
				continue;
			m[i].contact_ago_ms = now > x->at_ms ? now - x->at_ms : 0;
			if (x->confirmed_ms != 0)
				m[i].confirmed_ago_ms =
				    now > x->confirmed_ms ? now - x->confirmed_ms : 0;
		}
	}
	*out = m;
	*n = conf->n;
	return 0;
}

bool cons_config_pending(struct cons *c)
{
	return c->raft.configuration_uncommitted_index != 0;
}
