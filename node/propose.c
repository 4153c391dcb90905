/*
 * propose.c - the one proposal path (propose.h): stamp, encode, propose,
 * and hand the apply result to the proposer's callback.  The result is
 * allocated by the apply callback (node.c) and freed here after `done`.
 * Commands are encoded into the node's buffer (node_propose_buf), kept
 * between proposals up to PROPOSE_BUF_KEEP: cons_propose copies them.  A
 * worker's last report proposed here tells the scheduler that its slot is
 * being freed (sched_releasing) until the proposal is settled.
 */
#include "node/propose.h"

#include <stdlib.h>

#include "common/mp.h"
#include "node/leader/scheduler.h"

/* The encoding buffer is kept between proposals up to this size. */
#define PROPOSE_BUF_KEEP (64 * 1024)

struct proposal {
	struct cons_proposal p;
	node_proposed_cb done;
	void *data;
	struct node *n;
	uint64_t end_job; /* the attempt it ends (ends_attempt), 0: none */
	uint32_t end_attempt;
	uint64_t end_run_ms; /* its last stage's run time, UINT64_MAX: not known */
};

/* A worker's last report, which ends the job's live attempt (and frees its
 * slot) when it applies: its job and attempt, and how long the stage it
 * ends ran (UINT64_MAX: none), else false. */
static bool ends_attempt(const struct cmd *c, uint64_t *job, uint32_t *attempt, uint64_t *run_ms)
{
	if (c->type == CMD_JOB_STAGE_FINISH && c->u.job_stage_finish.then == CMD_THEN_FINISH) {
		*job = c->u.job_stage_finish.job;
		*attempt = c->u.job_stage_finish.attempt;
		*run_ms = c->u.job_stage_finish.duration_ms;
		return true;
	}
	if (c->type == CMD_JOB_FINISH) {
		*job = c->u.job_finish.job;
		*attempt = c->u.job_finish.attempt;
		*run_ms = UINT64_MAX;
		return true;
	}
	return false;
}

static void on_proposed(struct cons_proposal *p, int status, void *result)
{
	struct proposal *pr = p->data;
	if (pr->end_job != 0)
		sched_release_settled(node_sched(pr->n), pr->end_job, pr->end_attempt);
	if (pr->done != NULL)
		pr->done(pr->data, status, status == 0 ? result : NULL);
	free(result);
	free(pr);
}

int node_propose(struct node *n, const struct cmd *c, node_proposed_cb done, void *data,
                 struct ing_error *e)
{
	struct cmd copy = *c;
	struct ing_error codec;
	struct mp_out *o = node_propose_buf(n); /* cons_propose copies it */
	struct proposal *pr;
	int rv;

	if (node_cons(n) == NULL)
		return ing_error_set(e, ING_EUNAVAILABLE, "cannot propose: %s",
		                     ing_err_msg(ING_EUNAVAILABLE));
	pr = calloc(1, sizeof(*pr));
	if (pr == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	copy.version = cmd_type_version(copy.type);
	copy.time_ms = node_now_ms();
	mp_out_reset(o);
	rv = cmd_encode(&copy, o, &codec);
	if (rv != 0) {
		if (e != NULL)
			*e = codec;
	} else {
		pr->done = done;
		pr->data = data;
		pr->p.data = pr;
		pr->p.cb = on_proposed;
		pr->n = n;
		rv = cons_propose(node_cons(n), &pr->p, o->data, o->len);
		if (rv != 0) {
			ing_error_set(e, rv, "cannot propose: %s", ing_err_msg(rv));
		} else if (ends_attempt(&copy, &pr->end_job, &pr->end_attempt, &pr->end_run_ms)) {
			/* The next job's assignment need not wait for this end
			 * to commit: it follows it in the log. */
			sched_releasing(node_sched(n), pr->end_job, pr->end_attempt,
			                pr->end_run_ms);
		}
	}
	if (o->cap > PROPOSE_BUF_KEEP)
		mp_out_free(o); /* a large command's buffer is not kept */
	if (rv != 0)
		free(pr);
	return rv;
}
