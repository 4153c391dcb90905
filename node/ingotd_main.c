/*
 * ingotd_main.c - the daemon: `ingotd --config FILE [flags]` or
 * `ingotd --dev`.
 *
 * `ingotd gpus` prints the NVIDIA GPUs that discovery finds (the same
 * code the node runs at start) and exits 0, or 1 when there are none.
 *
 * Signals: SIGINT/SIGTERM stop the node; SIGHUP reopens the log file and
 * re-reads the TLS files (node_reload_tls), keeping the old ones when the
 * new ones do not load.
 *
 * The data directory's lock (common/fs.h) is taken before anything else
 * touches the directory: at once when the directory exists, else right
 * after the bind addresses were checked; a directory made for it is
 * removed again when the start is refused before anything else was
 * written in it (a TLS file that does not load): a bad configuration
 * writes nothing.  It is held until the process exits.
 *
 * Exit status: 0 after a clean stop (SIGINT/SIGTERM) or once the node learns
 * it was removed from the cluster, 1 when the node stopped on a fatal error
 * (store failure, unknown log format), 2 for a bad command line or
 * configuration (nothing is written in that case: the bind addresses are
 * checked before the data directory is touched), for a data directory
 * another process holds, for data that belongs to another cluster than the
 * one it was told to join, and for a data directory whose node was removed.
 */
#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <jansson.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <yaml.h>

#include "common/build_info.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/version.h"
#include "node/config.h"
#include "node/backup/backup.h"
#include "node/member/recover.h"
#include "node/node.h"
#include "node/sm/cmd.h"
#include "node/worker/gpu.h"
#include "rpc/http.h"
#include "storage/store.h"

struct daemon {
	uv_loop_t loop;
	uv_signal_t sigint, sigterm, sighup;
	struct node *node;
	int status;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ingotd --config FILE [options]\n"
	           "       ingotd --dev [options]\n"
	           "       ingotd recover --config FILE --members ID[,ID...] [--yes]\n"
	           "       ingotd restore --from SNAPSHOT --config FILE [--data-dir DIR]\n"
	           "       ingotd gpus\n"
	           "\n"
	           "  --config FILE        YAML configuration (docs/operations.md)\n"
	           "  --dev                single-node cluster with embedded defaults:\n"
	           "                       API 127.0.0.1:7401, raft 127.0.0.1:7501,\n"
	           "                       HTTP 127.0.0.1:7601, data ./ingot-dev\n"
	           "  --data-dir DIR       override data_dir\n"
	           "  --api-address A:P    override api_address\n"
	           "  --raft-address A:P   override raft_address\n"
	           "  --join A:P[,A:P...]  join the cluster of these members' API addresses\n"
	           "                       (empty data directory only; see docs/operations.md)\n"
	           "  --log-level LEVEL    debug, info, warn, error\n"
	           "  --version            version, commit and the libraries' versions\n"
	           "  -h, --help           this text\n");
}

/* `ingotd gpus`: what GPU discovery finds here. */
static int gpus_main(int argc, char **argv)
{
	struct gpu_inventory inv;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: ingotd gpus\n");
		return 2;
	}
	gpu_discover(NULL, &inv);
	if (inv.count == 0) {
		fprintf(stderr, "ingotd: no NVIDIA GPU found (%s)\n", inv.note);
		return 1;
	}
	printf("driver %s, CUDA %s (%s)\n", inv.driver_version[0] ? inv.driver_version : "-",
	       inv.cuda_version[0] ? inv.cuda_version : "-", inv.library);
	printf("%-5s  %-6s  %-10s  %-14s  %-24s  %s\n", "INDEX", "ARCH", "MEMORY", "DEVICE",
	       "MODEL", "UUID");
	for (unsigned i = 0; i < inv.count; i++) {
		const struct gpu_device *g = &inv.devices[i];
		char mem[32], dev[32] = "-";

		snprintf(mem, sizeof(mem), "%llu MiB", (unsigned long long)(g->memory_bytes >> 20));
		if (g->minor != GPU_MINOR_NONE)
			snprintf(dev, sizeof(dev), "/dev/nvidia%d", g->minor);
		printf("%-5u  %-6s  %-10s  %-14s  %-24s  %s\n", g->index, g->arch, mem, dev,
		       g->model, g->uuid);
	}
	if (inv.note[0] != '\0')
		fprintf(stderr, "ingotd: note: %s\n", inv.note);
	return 0;
}

/* `ingotd --version`: every library ingotd links, at run time where the
 * library says (common/version.h). */
static void print_version(FILE *f)
{
	char lmdb_running[ING_VERSION_MAX], lmdb_built[ING_VERSION_MAX];
	char uv_built[ING_VERSION_MAX], mhd_built[ING_VERSION_MAX];
	const char *mhd_running = rpc_http_library_version(mhd_built, sizeof(mhd_built));
	store_lmdb_version(lmdb_running, lmdb_built, ING_VERSION_MAX);
	snprintf(uv_built, sizeof(uv_built), "%d.%d.%d", UV_VERSION_MAJOR, UV_VERSION_MINOR,
	         UV_VERSION_PATCH);
	const struct ing_lib_version libs[] = {
	    {"libraft", NULL, INGOT_BUILT_RAFT},
	    {"LMDB", lmdb_running, lmdb_built},
	    {"libuv", uv_version_string(), uv_built},
	    {"OpenSSL", OpenSSL_version(OPENSSL_VERSION_STRING), OPENSSL_VERSION_STR},
	    {"msgpack-c", msgpack_version(), MSGPACK_VERSION},
	    {"libyaml", yaml_get_version_string(), INGOT_BUILT_YAML},
	    {"libmicrohttpd", mhd_running, mhd_built},
	    {"jansson", jansson_version_str(), JANSSON_VERSION},
	};
	ing_version_print(f, "ingotd", libs, sizeof(libs) / sizeof(libs[0]));
}

static void on_stopped(void *data, int status)
{
	struct daemon *d = data;
	d->node = NULL;
	/* A node that cannot belong where it was asked to (another cluster's
	 * data, removed from its cluster) is a configuration problem: 2. */
	d->status = status == 0 ? 0 : status == ING_EINVAL ? 2 : 1;
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sighup, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	ING_LOG_INFO("signal received signal=%d: stopping", signum);
	if (d->node != NULL)
		node_shutdown(d->node);
}

/* SIGHUP: logrotate moved the log file away, or the TLS files were
 * replaced.  The log file is opened again by name, then the TLS files are
 * read again (node_reload_tls: a failure keeps the old ones). */
static void on_sighup(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	struct ing_error e;
	(void)signum;
	if (ing_log_reopen(&e) != 0)
		ING_LOG_ERROR("log file reopen failed msg=\"%s\": still logging to the old file",
		              e.msg);
	else
		ING_LOG_INFO("log file reopened (SIGHUP)");
	if (d->node != NULL)
		node_reload_tls(d->node, &e);
}

/* Checks that addr can be bound, so that a bad address fails before any
 * file is written. */
static int check_bind(uv_loop_t *loop, const char *source, const char *key, const char *addr)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa;
	uv_tcp_t tcp;
	int rv;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0) {
		fprintf(stderr, "ingotd: %s: key '%s': '%s' is not an IPv4 address\n", source, key,
		        addr);
		return -1;
	}
	uv_tcp_init(loop, &tcp);
	rv = uv_tcp_bind(&tcp, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&tcp, 1, NULL);
	uv_close((uv_handle_t *)&tcp, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	if (rv != 0) {
		fprintf(stderr, "ingotd: %s: key '%s': cannot listen on %s: %s\n", source, key,
		        addr, uv_strerror(rv));
		return -1;
	}
	return 0;
}

/* Takes the data directory's lock (creating the directory when `create`);
 * prints why not and returns -1 (exit 2) when another process holds it, -2
 * (exit 1) when the directory cannot be created or locked. */
static int lock_data_dir(const char *source, const char *dir, bool create, int *fd)
{
	struct ing_error e;
	int rv = create ? ing_mkdirs(dir, 0700, &e) : 0;
	if (rv == 0)
		rv = ing_dir_lock(dir, fd, &e);
	if (rv == 0)
		return 0;
	fprintf(stderr, "ingotd: %s: key 'data_dir': %s\n", source, e.msg);
	return rv == ING_ECONFLICT ? -1 : -2;
}

/* A start refused after this run created data_dir (a TLS file that does
 * not load, say): removes the directory again when it holds nothing but
 * its lock file, so that a bad configuration writes nothing. */
static void undo_data_dir(const char *dir, int lock_fd)
{
	char path[PATH_MAX];
	struct dirent *de;
	bool only_lock = true;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, ING_DIR_LOCK_FILE) != 0)
			only_lock = false;
	closedir(d);
	if (!only_lock ||
	    snprintf(path, sizeof(path), "%s/%s", dir, ING_DIR_LOCK_FILE) >= (int)sizeof(path))
		return;
	unlink(path);
	ing_dir_unlock(lock_fd);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"dev", no_argument, NULL, 'D'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"api-address", required_argument, NULL, 'a'},
	    {"raft-address", required_argument, NULL, 'r'},
	    {"join", required_argument, NULL, 'j'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *data_dir = NULL, *api = NULL, *raft = NULL, *level = NULL,
	           *join = NULL;
	bool dev = false;
	struct node_config cfg;
	struct ing_error e;
	struct daemon d;
	struct stat st;
	int opt, lock_fd = -1, rv;

	if (argc > 1 && strcmp(argv[1], "recover") == 0)
		return node_recover_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "restore") == 0)
		return node_restore_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "gpus") == 0)
		return gpus_main(argc - 1, argv + 1);
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'D': dev = true; break;
		case 'd': data_dir = optarg; break;
		case 'a': api = optarg; break;
		case 'r': raft = optarg; break;
		case 'j': join = optarg; break;
		case 'l': level = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': print_version(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (config == NULL) == !dev) {
		fprintf(stderr, "ingotd: give exactly one of --config FILE or --dev\n");
		usage(stderr);
		return 2;
	}
	const char *source = dev ? "--dev" : config;
	if (dev) {
		node_config_dev(&cfg);
	} else {
		node_config_defaults(&cfg);
		if (node_config_load(&cfg, config, &e) != 0) {
			fprintf(stderr, "ingotd: %s\n", e.msg);
			return 2;
		}
	}
	if (data_dir != NULL)
		snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", data_dir);
	if (api != NULL) {
		if (!cmd_address_valid(ing_str_c(api)) || strlen(api) >= NODE_ADDRESS_MAX) {
			fprintf(stderr, "ingotd: --api-address '%s' is not an IPv4 address:port\n",
			        api);
			return 2;
		}
		snprintf(cfg.api_address, sizeof(cfg.api_address), "%s", api);
		for (unsigned i = 0; dev && i < cfg.npeers; i++)
			snprintf(cfg.peers[i].api_address, NODE_ADDRESS_MAX, "%s", api);
	}
	if (raft != NULL) {
		if (!cmd_address_valid(ing_str_c(raft)) || strlen(raft) >= NODE_ADDRESS_MAX) {
			fprintf(stderr, "ingotd: --raft-address '%s' is not an IPv4 address:port\n",
			        raft);
			return 2;
		}
		snprintf(cfg.raft_address, sizeof(cfg.raft_address), "%s", raft);
		for (unsigned i = 0; dev && i < cfg.npeers; i++)
			snprintf(cfg.peers[i].raft_address, NODE_ADDRESS_MAX, "%s", raft);
	}
	if (join != NULL && node_config_set_join(&cfg, join, &e) != 0) {
		fprintf(stderr, "ingotd: %s\n", e.msg);
		return 2;
	}
	if (level != NULL && ing_log_parse_level(level, &cfg.log_level) != 0) {
		fprintf(stderr, "ingotd: --log-level '%s': expected debug, info, warn or error\n",
		        level);
		return 2;
	}
	if (node_config_check(&cfg, source, &e) != 0 ||
	    node_config_check_tls(&cfg, source, &e) != 0) {
		fprintf(stderr, "ingotd: %s\n", e.msg);
		return 2;
	}
	ing_log_set_level(cfg.log_level);
	signal(SIGPIPE, SIG_IGN); /* a peer closing its socket must not kill us */

	if (stat(cfg.data_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (rv = lock_data_dir(source, cfg.data_dir, false, &lock_fd)) != 0)
		return rv == -1 ? 2 : 1;
	memset(&d, 0, sizeof(d));
	uv_loop_init(&d.loop);
	if (check_bind(&d.loop, source, "api_address", cfg.api_address) != 0 ||
	    check_bind(&d.loop, source, "raft_address", cfg.raft_address) != 0 ||
	    (cfg.http_address[0] != '\0' &&
	     check_bind(&d.loop, source, "http_address", cfg.http_address) != 0)) {
		uv_run(&d.loop, UV_RUN_DEFAULT);
		uv_loop_close(&d.loop);
		return 2;
	}
	ing_log_set_format(cfg.log_format);
	if (cfg.log_file[0] != '\0' && ing_log_open(cfg.log_file, &e) != 0) {
		fprintf(stderr, "ingotd: %s: key 'log_file': %s\n", source, e.msg);
		uv_run(&d.loop, UV_RUN_DEFAULT);
		uv_loop_close(&d.loop);
		return 2;
	}
	bool created = lock_fd < 0;
	if (created && (rv = lock_data_dir(source, cfg.data_dir, true, &lock_fd)) != 0) {
		uv_loop_close(&d.loop);
		return rv == -1 ? 2 : 1;
	}
	if (node_start(&d.loop, &cfg, on_stopped, &d, &d.node, &e) != 0) {
		fprintf(stderr, "ingotd: %s: cannot start: %s\n", source, e.msg);
		uv_run(&d.loop, UV_RUN_DEFAULT);
		uv_loop_close(&d.loop);
		if (created)
			undo_data_dir(cfg.data_dir, lock_fd);
		return e.code == ING_EINVAL ? 2 : 1;
	}
	uv_signal_init(&d.loop, &d.sigint);
	uv_signal_init(&d.loop, &d.sigterm);
	uv_signal_init(&d.loop, &d.sighup);
	d.sigint.data = d.sigterm.data = d.sighup.data = &d;
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sighup, on_sighup, SIGHUP);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d.loop) != 0)
		ING_LOG_WARN("loop closed with handles still open");
	ING_LOG_INFO("ingotd exiting status=%d", d.status);
	ing_dir_unlock(lock_fd);
	ing_log_close();
	return d.status;
}
