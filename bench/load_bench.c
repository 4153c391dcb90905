/*
 * load_bench.c - write load on a running ingot cluster through the client
 * library (rpc/client.h): job.submit throughput and latency.
 *
 *   load_bench --endpoints A,B,C [--connections N] [--inflight M]
 *              [--requests TOTAL | --duration S] [--source-bytes B]
 *              [--target NAME] [--capability CAP] [--spread] [--warmup W]
 *              [--timeout-ms T]
 *              [--report-gaps] [--gap-ms G] [--token T]
 *              [--cacert FILE [--cert FILE --key FILE]]
 *
 * The credential (a submitter's or an admin's token) is --token, else
 * INGOT_TOKEN, else the first line of the file INGOT_TOKEN_FILE names
 * (a new cluster's <data_dir>/admin.token).
 *
 * TLS like ingotctl: --cacert (or INGOT_CACERT) makes every connection TLS
 * 1.3, checking the nodes' certificates against that CA; --cert/--key (or
 * INGOT_CERT/INGOT_KEY) give the client certificate a cluster with
 * `client_certs: required` asks for (scripts/cluster env prints them).
 *
 * One libuv loop, N clients (one connection each), M job.submit requests in
 * flight per client (RPC_WRITE, so each carries a request id and is retried
 * safely across a leader change).  Without --spread every client lists the
 * endpoints in the given order (so all talk to the first, and fail over in
 * order); with --spread client i starts at endpoint i % n (writes that land
 * on a follower are forwarded to the leader by the server).
 *
 * Before measuring it puts the target (target.put: one stage "bench", argv
 * ["true"]) and runs W (default 300) submits that are not counted.  Every
 * submit carries one source of B bytes (default 256) whose contents are
 * distinct (run nonce + counter), so each stores a new artifact.
 *
 * It stops by itself: after TOTAL requests (default 20000), or after S
 * seconds of issuing (the requests then in flight are waited for, each bounded
 * by the client's timeout).  Every latency is recorded and sorted at the end.
 *
 * --report-gaps (failover measurement): prints, with wall-clock times in ms
 * since the epoch, the first failure after a success and the first success
 * after a failure, every gap longer than G ms (default 100) between two
 * consecutive successful completions, and the longest gap.  Lines start with
 * "gap", "first_failure", "first_success_after_failure", "longest_gap" and
 * are meant for bench/failover.sh.
 *
 * Traffic goes only to 127.0.0.1 / localhost: other endpoints are refused.
 * Output: one summary line, a small table, and errors by code name.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/tls.h"
#include "rpc/client.h"

#include "bench/lib/args.h"
#include "bench/lib/token.h"

#define MAX_ENDPOINTS 16
#define NERR          32

struct slot {
	struct rpc_request req;
	struct bclient *cl;
	double t_start; /* monotonic seconds */
	bool measured;  /* issued in the measured phase */
};

struct bclient {
	struct rpc_client *c;
	struct slot *slots;
	unsigned idx;
};

static struct {
	/* options */
	const char *endpoints[MAX_ENDPOINTS];
	unsigned nendpoints;
	unsigned connections, inflight;
	uint64_t total;  /* 0: duration mode */
	double duration; /* seconds */
	unsigned source_bytes;
	const char *target;
	const char *capability; /* the target requires it (NULL: none) */
	bool spread;
	unsigned warmup;
	unsigned timeout_ms;
	bool report_gaps;
	double gap_ms;
	const char *token; /* NULL: none */
	char token_buf[4097];
	const char *cacert, *cert, *key; /* TLS (NULL: plaintext) */

	/* state */
	struct ing_tls *tls;
	uv_loop_t *loop;
	struct bclient *clients;
	struct mp_out args;
	char *source;
	uint64_t nonce, counter;
	int phase; /* 0 warm-up, 1 measured, 2 draining/stopped */
	uint64_t warm_issued, warm_done;
	uint64_t issued, done, ok;
	uint64_t errors[NERR + 1]; /* by -code; [NERR]: other */
	uint64_t warm_errors;
	double t0, t_last;
	double *lat; /* ms, successes of the measured phase */
	size_t nlat, caplat;
	uv_timer_t guard;
	unsigned closing;

	/* gaps (--report-gaps) */
	double last_ok_wall; /* ms since epoch, 0 before the first success */
	bool failing;
	double longest_gap, longest_from, longest_to;
} B;

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(void)
{
	fprintf(stderr, "usage: load_bench --endpoints A,B,C [--connections N] [--inflight M]\n"
	                "                  [--requests TOTAL | --duration S] [--source-bytes B]\n"
	                "                  [--target NAME] [--capability CAP] [--spread] [--warmup "
	                "W] [--timeout-ms T]\n"
	                "                  [--report-gaps] [--gap-ms G] [--token T]\n"
	                "                  [--cacert FILE [--cert FILE --key FILE]]\n");
	exit(2);
}

static bool loopback(const char *ep)
{
	return strncmp(ep, "127.0.0.1:", 10) == 0 || strncmp(ep, "localhost:", 10) == 0;
}

static void parse_endpoints(char *list)
{
	for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
		if (B.nendpoints == MAX_ENDPOINTS) {
			fprintf(stderr, "load_bench: at most %d endpoints\n", MAX_ENDPOINTS);
			exit(2);
		}
		if (!loopback(tok)) {
			fprintf(
			    stderr,
			    "load_bench: endpoint '%s' refused: traffic goes to 127.0.0.1 only\n",
			    tok);
			exit(2);
		}
		B.endpoints[B.nendpoints++] = tok;
	}
}

static void parse_args(int argc, char **argv)
{
	B.connections = 1;
	B.inflight = 1;
	B.source_bytes = 256;
	B.target = "bench";
	B.warmup = 300;
	B.timeout_ms = 10000;
	B.gap_ms = 100;
	bool have_requests = false, have_duration = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                          \
	do {                                                                  \
		if (v == NULL) {                                              \
			fprintf(stderr, "load_bench: %s needs a value\n", a); \
			exit(2);                                              \
		}                                                             \
		i++;                                                          \
	} while (0)
		if (strcmp(a, "--endpoints") == 0) {
			NEED_VALUE();
			parse_endpoints(argv[i]);
		} else if (strcmp(a, "--connections") == 0) {
			NEED_VALUE();
			B.connections = (unsigned)bench_num("load_bench", a, v, 1, 1024);
		} else if (strcmp(a, "--inflight") == 0) {
			NEED_VALUE();
			B.inflight = (unsigned)bench_num("load_bench", a, v, 1, 65536);
		} else if (strcmp(a, "--requests") == 0) {
			NEED_VALUE();
			B.total = bench_num("load_bench", a, v, 1, 100000000);
			have_requests = true;
		} else if (strcmp(a, "--duration") == 0) {
			NEED_VALUE();
			B.duration = (double)bench_num("load_bench", a, v, 1, 3600);
			have_duration = true;
		} else if (strcmp(a, "--source-bytes") == 0) {
			NEED_VALUE();
			B.source_bytes = (unsigned)bench_num("load_bench", a, v, 32, 1024 * 1024);
		} else if (strcmp(a, "--capability") == 0) {
			NEED_VALUE();
			B.capability = v;
		} else if (strcmp(a, "--target") == 0) {
			NEED_VALUE();
			B.target = v;
		} else if (strcmp(a, "--warmup") == 0) {
			NEED_VALUE();
			B.warmup = (unsigned)bench_num("load_bench", a, v, 0, 1000000);
		} else if (strcmp(a, "--timeout-ms") == 0) {
			NEED_VALUE();
			B.timeout_ms = (unsigned)bench_num("load_bench", a, v, 100, 600000);
		} else if (strcmp(a, "--gap-ms") == 0) {
			NEED_VALUE();
			B.gap_ms = (double)bench_num("load_bench", a, v, 1, 600000);
		} else if (strcmp(a, "--token") == 0) {
			NEED_VALUE();
			B.token = v;
		} else if (strcmp(a, "--cacert") == 0) {
			NEED_VALUE();
			B.cacert = v;
		} else if (strcmp(a, "--cert") == 0) {
			NEED_VALUE();
			B.cert = v;
		} else if (strcmp(a, "--key") == 0) {
			NEED_VALUE();
			B.key = v;
		} else if (strcmp(a, "--spread") == 0) {
			B.spread = true;
		} else if (strcmp(a, "--report-gaps") == 0) {
			B.report_gaps = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
		} else {
			fprintf(stderr, "load_bench: unknown argument '%s'\n", a);
			usage();
		}
#undef NEED_VALUE
	}
	if (B.nendpoints == 0)
		usage();
	B.token = bench_token("load_bench", B.token, B.token_buf, sizeof(B.token_buf));
	if (have_requests && have_duration) {
		fprintf(stderr, "load_bench: --requests and --duration exclude each other\n");
		exit(2);
	}
	if (!have_requests && !have_duration)
		B.total = 20000;
}

/* ---- requests ------------------------------------------------------------ */

static void issue(struct slot *s);
static void maybe_finish(void);
static void issue_all(void);

static void build_submit(void)
{
	/* Distinct contents: a run nonce and a counter in the first bytes. */
	uint64_t n = B.counter++;
	int k =
	    snprintf(B.source, B.source_bytes + 1, "/* %016" PRIx64 " %" PRIu64 " */", B.nonce, n);
	if ((unsigned)k < B.source_bytes)
		memset(B.source + k, ' ', B.source_bytes - (unsigned)k);
	mp_out_reset(&B.args);
	msgpack_packer *pk = &B.args.pk;
	msgpack_pack_map(pk, 2);
	mp_pack_cstr(pk, "target");
	mp_pack_cstr(pk, B.target);
	mp_pack_cstr(pk, "sources");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 2);
	mp_pack_cstr(pk, "path");
	mp_pack_cstr(pk, "kernel.c");
	mp_pack_cstr(pk, "data");
	mp_pack_bin(pk, B.source, B.source_bytes);
	if (mp_out_failed(&B.args) != 0) {
		fprintf(stderr, "load_bench: out of memory\n");
		exit(1);
	}
}

static void count_error(int code)
{
	int i = -code;
	if (i <= 0 || i >= NERR)
		i = NERR;
	B.errors[i]++;
}

static void gaps_on_success(double now)
{
	if (B.failing) {
		printf("first_success_after_failure wall_ms=%.1f\n", now);
		B.failing = false;
	}
	if (B.last_ok_wall > 0) {
		double g = now - B.last_ok_wall;
		if (g >= B.gap_ms)
			printf("gap ms=%.1f from_wall_ms=%.1f to_wall_ms=%.1f\n", g, B.last_ok_wall,
			       now);
		if (g > B.longest_gap) {
			B.longest_gap = g;
			B.longest_from = B.last_ok_wall;
			B.longest_to = now;
		}
	}
	B.last_ok_wall = now;
}

static void on_reply(struct rpc_request *r, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	(void)result;
	struct slot *s = r->data;
	double now = mono_s();
	if (B.report_gaps) {
		double w = wall_ms();
		if (status == 0) {
			gaps_on_success(w);
		} else if (!B.failing) {
			B.failing = true;
			printf("first_failure wall_ms=%.1f code=%s msg=%s\n", w,
			       ing_err_name(err != NULL ? err->code : status),
			       err != NULL ? err->msg : "");
		}
	}
	if (!s->measured) {
		B.warm_done++;
		if (status != 0) {
			B.warm_errors++;
			if (B.warm_errors <= 3)
				fprintf(stderr, "load_bench: warm-up error %s: %s\n",
				        ing_err_name(err != NULL ? err->code : status),
				        err != NULL ? err->msg : "");
		}
		if (B.phase == 0 && B.warm_issued < B.warmup) {
			issue(s);
		} else if (B.phase == 0 && B.warm_done == B.warm_issued) {
			/* Barrier: every warm-up request is back; start measuring. */
			B.phase = 1;
			B.t0 = mono_s();
			B.t_last = B.t0;
			issue_all();
		}
		maybe_finish();
		return;
	}
	B.done++;
	B.t_last = now;
	if (status == 0) {
		B.ok++;
		if (B.nlat == B.caplat) {
			B.caplat = B.caplat ? B.caplat * 2 : 65536;
			B.lat = realloc(B.lat, B.caplat * sizeof(*B.lat));
			if (B.lat == NULL) {
				fprintf(stderr, "load_bench: out of memory\n");
				exit(1);
			}
		}
		B.lat[B.nlat++] = (now - s->t_start) * 1e3;
	} else {
		count_error(err != NULL ? err->code : status);
	}
	if (B.phase == 1) {
		if (B.total > 0 && B.issued >= B.total)
			B.phase = 2;
		else if (B.total == 0 && now - B.t0 >= B.duration)
			B.phase = 2;
	}
	if (B.phase == 1)
		issue(s);
	maybe_finish();
}

static void issue(struct slot *s)
{
	build_submit();
	s->req.data = s;
	s->req.cb = on_reply;
	s->req.event_cb = NULL;
	s->req.request_id = NULL;
	s->measured = B.phase == 1;
	s->t_start = mono_s();
	int rv =
	    rpc_client_call(s->cl->c, &s->req, "job.submit", B.args.data, B.args.len, RPC_WRITE);
	if (rv != 0) {
		fprintf(stderr, "load_bench: rpc_client_call: %s\n", ing_err_name(rv));
		exit(1);
	}
	if (s->measured)
		B.issued++;
	else
		B.warm_issued++;
}

/* Starts the measured phase: every slot of every client, at most TOTAL. */
static void issue_all(void)
{
	for (unsigned c = 0; c < B.connections; c++)
		for (unsigned j = 0; j < B.inflight; j++)
			if (B.total == 0 || B.issued < B.total)
				issue(&B.clients[c].slots[j]);
}

static void on_client_closed(void *data)
{
	(void)data;
	if (--B.closing == 0)
		uv_close((uv_handle_t *)&B.guard, NULL);
}

static void close_all(void)
{
	if (B.closing > 0 || B.phase == 3)
		return;
	B.phase = 3;
	uv_timer_stop(&B.guard);
	B.closing = B.connections;
	for (unsigned c = 0; c < B.connections; c++)
		rpc_client_close(B.clients[c].c, on_client_closed, NULL);
}

static void maybe_finish(void)
{
	if (B.phase == 2 && B.done == B.issued && B.warm_done == B.warm_issued)
		close_all();
}

/* Hard bound: nothing may keep the benchmark running past its budget. */
static void on_guard(uv_timer_t *t)
{
	(void)t;
	fprintf(stderr, "load_bench: time budget exceeded; %" PRIu64 " requests unanswered\n",
	        B.issued - B.done);
	B.phase = 2;
	close_all();
}

/* ---- results ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	if (B.nlat == 0)
		return NAN;
	double x = p * (double)B.nlat;
	size_t i = (size_t)x; /* ceil without libm */
	if ((double)i < x)
		i++;
	if (i > 0)
		i--;
	if (i >= B.nlat)
		i = B.nlat - 1;
	return B.lat[i];
}

static void report(void)
{
	double secs = B.t_last - B.t0;
	if (secs <= 0)
		secs = 1e-9;
	qsort(B.lat, B.nlat, sizeof(*B.lat), cmp_double);
	uint64_t nerr = B.done - B.ok;
	double rate = (double)B.ok / secs;
	const char *mode = B.spread ? "spread" : "first-endpoint";
	printf(
	    "load_bench: %u conn x %u inflight (%s), %" PRIu64 " ok, %" PRIu64
	    " errors in %.2f s: %.0f submits/s; latency ms p50 %.3f p90 %.3f p99 %.3f max %.3f\n",
	    B.connections, B.inflight, mode, B.ok, nerr, secs, rate, pct(0.50), pct(0.90),
	    pct(0.99), B.nlat ? B.lat[B.nlat - 1] : NAN);
	printf("%-11s %-8s %-14s %9s %7s %8s %10s %8s %8s %8s %9s\n", "connections", "inflight",
	       "endpoints", "ok", "errors", "seconds", "submits/s", "p50_ms", "p90_ms", "p99_ms",
	       "max_ms");
	printf("%-11u %-8u %-14s %9" PRIu64 " %7" PRIu64 " %8.2f %10.0f %8.3f %8.3f %8.3f %9.3f\n",
	       B.connections, B.inflight, mode, B.ok, nerr, secs, rate, pct(0.50), pct(0.90),
	       pct(0.99), B.nlat ? B.lat[B.nlat - 1] : NAN);
	if (nerr > 0 || B.warm_errors > 0) {
		printf("errors:");
		for (int i = 1; i < NERR; i++)
			if (B.errors[i] > 0)
				printf(" %s=%" PRIu64, ing_err_name(-i), B.errors[i]);
		if (B.errors[NERR] > 0)
			printf(" other=%" PRIu64, B.errors[NERR]);
		if (B.warm_errors > 0)
			printf(" (warm-up: %" PRIu64 " errors, not counted)", B.warm_errors);
		printf("\n");
	}
	if (B.report_gaps)
		printf("longest_gap ms=%.1f from_wall_ms=%.1f to_wall_ms=%.1f\n", B.longest_gap,
		       B.longest_from, B.longest_to);
}

/* ---- setup --------------------------------------------------------------- */

static void put_target(void)
{
	struct mp_out a;
	mp_out_init(&a);
	msgpack_packer *pk = &a.pk;
	msgpack_pack_map(pk, B.capability != NULL ? 3 : 2);
	if (B.capability != NULL) {
		/* a capability no node has keeps every job queued: the write path
		 * alone, without the workers' own traffic */
		mp_pack_cstr(pk, "capabilities");
		msgpack_pack_array(pk, 1);
		mp_pack_cstr(pk, B.capability);
	}
	mp_pack_cstr(pk, "name");
	mp_pack_cstr(pk, B.target);
	mp_pack_cstr(pk, "stages");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 2);
	mp_pack_cstr(pk, "name");
	mp_pack_cstr(pk, "bench");
	mp_pack_cstr(pk, "argv");
	msgpack_pack_array(pk, 1);
	mp_pack_cstr(pk, "true");
	if (mp_out_failed(&a) != 0) {
		fprintf(stderr, "load_bench: out of memory\n");
		exit(1);
	}
	struct rpc_client_options o = {.endpoints = B.endpoints,
	                               .nendpoints = B.nendpoints,
	                               .timeout_ms = B.timeout_ms,
	                               .token = B.token,
	                               .tls = B.tls};
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	msgpack_object res;
	struct ing_error e;
	ing_error_clear(&e);
	int rv = rpc_call_sync(&o, "target.put", a.data, a.len, RPC_WRITE, &z, &res, &e);
	if (rv != 0) {
		fprintf(stderr, "load_bench: target.put %s: %s: %s\n", B.target, ing_err_name(rv),
		        e.msg);
		exit(1);
	}
	msgpack_zone_destroy(&z);
	mp_out_free(&a);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	ing_log_set_level(ING_LOG_LEVEL_WARN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	B.nonce = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	B.source = malloc(B.source_bytes + 64);
	if (B.source == NULL)
		return 1;
	mp_out_init(&B.args);
	if (B.cacert == NULL && getenv("INGOT_CACERT") != NULL && *getenv("INGOT_CACERT") != '\0') {
		B.cacert = getenv("INGOT_CACERT");
		if (B.cert == NULL && getenv("INGOT_CERT") != NULL && *getenv("INGOT_CERT") != '\0')
			B.cert = getenv("INGOT_CERT");
		if (B.key == NULL && getenv("INGOT_KEY") != NULL && *getenv("INGOT_KEY") != '\0')
			B.key = getenv("INGOT_KEY");
	}
	if (B.cacert != NULL) {
		struct ing_tls_config tc = {B.cacert, B.cert, B.key, ING_TLS_CLIENT_CERTS_OPTIONAL};
		struct ing_error e;
		if (ing_tls_new(&tc, &B.tls, &e) != 0) {
			fprintf(stderr, "load_bench: %s\n", e.msg);
			return 2;
		}
	}
	put_target();

	B.loop = uv_default_loop();
	B.clients = calloc(B.connections, sizeof(*B.clients));
	if (B.clients == NULL)
		return 1;
	for (unsigned c = 0; c < B.connections; c++) {
		const char *eps[MAX_ENDPOINTS];
		unsigned first = B.spread ? c % B.nendpoints : 0;
		for (unsigned k = 0; k < B.nendpoints; k++)
			eps[k] = B.endpoints[(first + k) % B.nendpoints];
		struct rpc_client_options o = {.endpoints = eps,
		                               .nendpoints = B.nendpoints,
		                               .timeout_ms = B.timeout_ms,
		                               .token = B.token,
		                               .tls = B.tls};
		struct ing_error e;
		int rv = rpc_client_new(B.loop, &o, &B.clients[c].c, &e);
		if (rv != 0) {
			fprintf(stderr, "load_bench: rpc_client_new: %s\n", e.msg);
			return 1;
		}
		B.clients[c].idx = c;
		B.clients[c].slots = calloc(B.inflight, sizeof(struct slot));
		if (B.clients[c].slots == NULL)
			return 1;
		for (unsigned j = 0; j < B.inflight; j++)
			B.clients[c].slots[j].cl = &B.clients[c];
	}

	/* Budget: warm-up and run, plus one client timeout for the tail. */
	uv_timer_init(B.loop, &B.guard);
	double budget_s = (B.total > 0 ? 600.0 : B.duration + 60.0) + B.timeout_ms / 1e3;
	uv_timer_start(&B.guard, on_guard, (uint64_t)(budget_s * 1e3), 0);

	if (B.warmup > 0) {
		B.phase = 0;
		for (unsigned c = 0; c < B.connections && B.warm_issued < B.warmup; c++)
			for (unsigned j = 0; j < B.inflight && B.warm_issued < B.warmup; j++)
				issue(&B.clients[c].slots[j]);
	} else {
		B.phase = 1;
		B.t0 = mono_s();
		B.t_last = B.t0;
		issue_all();
	}
	uv_run(B.loop, UV_RUN_DEFAULT);
	report();
	uv_loop_close(B.loop);
	return B.ok > 0 ? 0 : 1;
}
