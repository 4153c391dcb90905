/*
 * raft_bench.c - raw libraft commit rate over the plaintext TCP transport
 * against the mutual-TLS one (raft/transport_tls.c), in the same run.
 *
 *   raft_bench [-n ENTRIES] [-i IN_FLIGHT] [-s BYTES] [-r ROUNDS] [-d DIR]
 *              [-m both|plain|tls]
 *
 * Three raft/ nodes (cons_start, real libraft 0.15 with its uv backend,
 * fsync on) in this process on one libuv loop, over 127.0.0.1, with a
 * state machine that only counts.  Each round runs both transports, plain
 * first in even rounds and TLS first in odd ones, each on fresh raft
 * directories under DIR (default: a new directory under the current one, so
 * the disk measured is the project's): elect, then propose ENTRIES entries
 * of BYTES bytes (a multiple of 8) on the leader with IN_FLIGHT outstanding,
 * timing the first proposal to the last commit.  Certificates come from
 * ingotctl's own PKI (cli/pki.c) in DIR.  Prints commits/s per round, the
 * median per transport, and the median over rounds of TLS's rate divided
 * by plain's in the same round (the two run back to back, so slow drift of
 * a shared machine cancels out).  -m plain or -m tls runs one transport
 * only (for perf, strace or callgrind of one side).
 *
 * One process holds all three nodes, so one core does every node's
 * encryption and libraft work: the ratio is a pessimistic view of what TLS
 * costs.  The figure through ingot itself is load_bench's.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/tls.h"
#include "raft/consensus.h"

#define NODES 3

struct bnode {
	struct cons *c;
	bool closed;
	enum cons_role role;
	uint64_t applied;
};

struct bench {
	uv_loop_t loop;
	struct bnode n[NODES];
	struct cons_proposal *props;
	unsigned total, inflight, outstanding, sent, done, failed;
	int lead;
	size_t bytes;
	uint8_t *payload;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int apply(void *data, uint64_t index, const void *buf, size_t len, void **result)
{
	(void)index;
	(void)buf;
	(void)len;
	((struct bnode *)data)->applied++;
	*result = NULL;
	return 0;
}

static int snapshot(void *data, void **buf, size_t *len)
{
	(void)data;
	*buf = calloc(1, 8);
	*len = 8;
	return *buf != NULL ? 0 : ING_ENOMEM;
}

static int restore(void *data, const void *buf, size_t len)
{
	(void)data;
	(void)buf;
	(void)len;
	return 0;
}

static void role_changed(void *data, enum cons_role role, uint64_t leader, uint64_t term)
{
	(void)leader;
	(void)term;
	((struct bnode *)data)->role = role;
}

static void on_closed(void *data)
{
	((struct bnode *)data)->closed = true;
}

static int leader(const struct bench *b)
{
	for (int i = 0; i < NODES; i++)
		if (b->n[i].c != NULL && b->n[i].role == CONS_LEADER_READY)
			return i;
	return -1;
}

static void pump(struct bench *b, int lead);

static void prop_cb(struct cons_proposal *p, int status, void *result)
{
	struct bench *b = p->data;
	free(result);
	b->outstanding--;
	b->done++;
	if (status != 0)
		b->failed++;
	/* The next proposal at once, not after the loop's next poll. */
	pump(b, b->lead);
}

static void pump(struct bench *b, int lead)
{
	while (b->sent < b->total && b->outstanding < b->inflight) {
		struct cons_proposal *p = &b->props[b->sent];
		p->data = b;
		p->cb = prop_cb;
		if (cons_propose(b->n[lead].c, p, b->payload, b->bytes) != 0)
			return;
		b->sent++;
		b->outstanding++;
	}
}

/* A port the kernel just handed out on 127.0.0.1 (released at once; the
 * next bind of it follows within milliseconds). */
static unsigned free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		perror("raft_bench: free port");
		exit(1);
	}
	close(fd);
	return ntohs(a.sin_port);
}

static void rm_dir(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "raft_bench: could not remove %s\n", dir);
}

/* One round on one transport; commits/s, or a negative value on failure. */
static double round_once(const char *parent, unsigned round, struct ing_tls *const *tls,
                         unsigned total, unsigned inflight, size_t bytes, uint8_t *payload)
{
	struct bench b;
	memset(&b, 0, sizeof(b));
	b.total = total;
	b.inflight = inflight;
	b.bytes = bytes;
	b.payload = payload;
	b.props = calloc(total, sizeof(*b.props));
	uv_loop_init(&b.loop);

	char dirs[NODES][512], addrs[NODES][32];
	struct cons_peer peers[NODES];
	for (int i = 0; i < NODES; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%u", free_port());
		snprintf(dirs[i], sizeof(dirs[i]), "%s/r%u-%s-%d", parent, round,
		         tls[0] != NULL ? "tls" : "tcp", i + 1);
		peers[i].id = (uint64_t)i + 1;
		peers[i].address = addrs[i];
	}
	double rate = -1;
	for (int i = 0; i < NODES; i++) {
		struct cons_config cfg = {.id = (uint64_t)i + 1,
		                          .address = addrs[i],
		                          .dir = dirs[i],
		                          .initial = peers,
		                          .ninitial = NODES,
		                          .snapshot_threshold = 1u << 30,
		                          .tls = tls[i]};
		struct cons_callbacks cb = {.data = &b.n[i],
		                            .apply = apply,
		                            .snapshot = snapshot,
		                            .restore = restore,
		                            .role_changed = role_changed};
		struct ing_error e;
		if (cons_start(&b.loop, &cfg, &cb, &b.n[i].c, &e) != 0) {
			fprintf(stderr, "raft_bench: cons_start: %s\n", e.msg);
			goto out;
		}
	}
	double t_end = now_s() + 10;
	int lead;
	while ((lead = leader(&b)) < 0 && now_s() < t_end)
		uv_run(&b.loop, UV_RUN_ONCE);
	if (lead < 0) {
		fprintf(stderr, "raft_bench: no leader within 10 s\n");
		goto out;
	}
	double t0 = now_s();
	t_end = t0 + 120;
	b.lead = lead;
	pump(&b, lead);
	while (b.done < total && now_s() < t_end)
		uv_run(&b.loop, UV_RUN_ONCE);
	double dt = now_s() - t0;
	if (b.done == total && b.failed == 0)
		rate = total / dt;
	else
		fprintf(stderr, "raft_bench: %u of %u committed, %u failed\n", b.done, total,
		        b.failed);
out:
	for (int i = 0; i < NODES; i++)
		if (b.n[i].c != NULL)
			cons_close(b.n[i].c, on_closed, &b.n[i]);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	uv_loop_close(&b.loop);
	for (int i = 0; i < NODES; i++)
		rm_dir(dirs[i]);
	free(b.props);
	return rate;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	unsigned total = 20000, inflight = 64, rounds = 3;
	size_t bytes = 256;
	const char *parent = NULL, *mode = "both";
	char made[64] = "";
	int opt;
	while ((opt = getopt(argc, argv, "n:i:s:r:d:m:")) != -1) {
		switch (opt) {
		case 'n': total = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'i': inflight = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': bytes = strtoul(optarg, NULL, 10); break;
		case 'r': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': parent = optarg; break;
		case 'm': mode = optarg; break;
		default:
			fprintf(stderr, "usage: raft_bench [-n ENTRIES] [-i IN_FLIGHT] [-s BYTES] "
			                "[-r ROUNDS] [-d DIR] [-m both|plain|tls]\n");
			return 2;
		}
	}
	if (total < 10 || inflight < 1 || bytes < 8 || bytes % 8 != 0 || bytes > 1u << 20 ||
	    rounds < 1 || rounds > 50 ||
	    (strcmp(mode, "both") != 0 && strcmp(mode, "plain") != 0 && strcmp(mode, "tls") != 0)) {
		fprintf(stderr, "raft_bench: -n >= 10, -i >= 1, -s a multiple of 8 from 8 to "
		                "1 MiB, -r 1..50, -m both, plain or tls\n");
		return 2;
	}
	if (parent == NULL) {
		snprintf(made, sizeof(made), "raft-bench-XXXXXX");
		if (mkdtemp(made) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		parent = made;
	}
	ing_log_set_level(ING_LOG_LEVEL_ERROR);
	signal(SIGPIPE, SIG_IGN); /* as consensus.h requires: peers close sockets */

	char pki[600];
	snprintf(pki, sizeof(pki), "%s/pki", parent);
	struct cli_pki_issued r;
	struct ing_error e;
	const char *local[] = {"127.0.0.1"};
	if (cli_pki_init(pki, 2, false, &r, &e) != 0) {
		fprintf(stderr, "raft_bench: %s\n", e.msg);
		return 1;
	}
	struct ing_tls *tls[NODES], *none[NODES] = {NULL};
	for (int i = 0; i < NODES; i++) {
		char cert[700], key[700], ca[700];
		if (cli_pki_issue_node(pki, (uint64_t)i + 1, local, 1, 1, false, &r, &e) != 0) {
			fprintf(stderr, "raft_bench: %s\n", e.msg);
			return 1;
		}
		snprintf(ca, sizeof(ca), "%s/ca.crt", pki);
		snprintf(cert, sizeof(cert), "%s/node-%d.crt", pki, i + 1);
		snprintf(key, sizeof(key), "%s/node-%d.key", pki, i + 1);
		struct ing_tls_config tc = {ca, cert, key, ING_TLS_CLIENT_CERTS_REQUIRED};
		if (ing_tls_new(&tc, &tls[i], &e) != 0) {
			fprintf(stderr, "raft_bench: %s\n", e.msg);
			return 1;
		}
	}
	uint8_t *payload = malloc(bytes);
	memset(payload, 0xa5, bytes);
	printf("raft_bench: 3 nodes in one process, %u entries of %zu bytes, %u in flight, "
	       "%u rounds, directories in %s\n",
	       total, bytes, inflight, rounds, parent);
	double plain[50], tlsr[50];
	for (unsigned k = 0; k < rounds; k++) {
		bool tls_first = k % 2 == 1;
		for (int m = 0; m < 2; m++) {
			bool use_tls = (m == 0) == tls_first;
			if (strcmp(mode, use_tls ? "plain" : "tls") == 0)
				continue;
			double v = round_once(parent, k, use_tls ? tls : none, total, inflight,
			                      bytes, payload);
			if (v < 0)
				return 1;
			(use_tls ? tlsr : plain)[k] = v;
			printf("round %u %-5s %9.0f commits/s\n", k + 1, use_tls ? "tls" : "plain",
			       v);
			fflush(stdout);
		}
	}
	if (strcmp(mode, "both") != 0) {
		double *v = strcmp(mode, "tls") == 0 ? tlsr : plain;
		printf("median: %s %.0f commits/s\n", mode, median(v, rounds));
	} else {
		double ratio[50];
		for (unsigned k = 0; k < rounds; k++)
			ratio[k] = tlsr[k] / plain[k];
		double mr = median(ratio, rounds);
		double mp = median(plain, rounds), mt = median(tlsr, rounds);
		printf("median: plain %.0f commits/s, tls %.0f commits/s; median of the "
		       "rounds' tls/plain: %.2f\n",
		       mp, mt, mr);
	}
	for (int i = 0; i < NODES; i++)
		ing_tls_free(tls[i]);
	rm_dir(pki);
	if (made[0] != '\0')
		rmdir(made);
	free(payload);
	return 0;
}
