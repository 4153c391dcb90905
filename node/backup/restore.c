/*
 * restore.c - `ingotd restore --from FILE --config FILE`: seeds one node of
 * a new cluster with the state of a snapshot file (docs/operations.md
 * "Disaster recovery").
 *
 * Offline, before the node first starts: the file is read and checked
 * whole (backup_check: header, length, SHA-256) before anything is
 * written; the data directory must be missing or empty.  The payload
 * replaces the state of a fresh store (store_snapshot_import), then two
 * facts of the old cluster are cleared in one transaction, identically on
 * every node restored from the same file:
 *  - the applied index goes back to 0, because the new cluster's Raft log
 *    starts at index 1 and every entry of it must be applied;
 *  - the cluster id is removed, so the new cluster names itself (a node of
 *    the old cluster can then not join it by mistake).
 * Every node of the new cluster is restored from the same file and then
 * started with its configuration (peers: the new voters); the stores are
 * identical, and so is everything the new log adds.
 *
 * The data directory's lock (common/fs.h) is held from the moment the
 * directory exists until the store is written, like every program that
 * opens a data directory.
 *
 * Exit status: 0 restored; 1 the file is not a good snapshot, or the store
 * could not be written (a partial data directory is removed); 2 bad
 * command line or configuration, a data directory that is not empty, or
 * one another process holds.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/backup/backup.h"
#include "node/config.h"
#include "node/sm/sm.h"
#include "storage/store.h"

#define EXIT_BAD_FILE 1
#define EXIT_USAGE    2

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: ingotd restore --from FILE --config FILE [--data-dir DIR]\n"
	        "\n"
	        "  --from FILE       a snapshot file (ingotctl snapshot save, GET /v1/snapshot)\n"
	        "  --config FILE     the configuration of the node to seed\n"
	        "  --data-dir DIR    override data_dir (must be missing or empty)\n"
	        "  --log-level LEVEL debug, info, warn, error (default warn)\n"
	        "  -h, --help        this text\n");
}

/* 1 when dir exists and holds anything, 0 when missing or empty, -1 on error. */
static int dir_in_use(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	int used = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			used = 1;
	closedir(d);
	return used;
}

static int read_file(const char *path, uint8_t **out, size_t *len, struct ing_error *e)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	if (f == NULL || fstat(fileno(f), &st) != 0) {
		int err = errno;
		if (f != NULL)
			fclose(f);
		return ing_error_set(e, ING_EIO, "cannot read %s: %s", path, strerror(err));
	}
	uint8_t *buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	size_t n = buf != NULL ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	bool bad = buf == NULL || ferror(f) || n != (size_t)st.st_size;
	fclose(f);
	if (bad) {
		free(buf);
		return ing_error_set(e, buf == NULL ? ING_ENOMEM : ING_EIO, "cannot read %s", path);
	}
	*out = buf;
	*len = n;
	return 0;
}

static int write_file(const char *path, const void *p, size_t n, struct ing_error *e)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return ing_error_set(e, ING_EIO, "cannot write %s: %s", path, strerror(errno));
	bool ok = fwrite(p, 1, n, f) == n;
	ok = fclose(f) == 0 && ok;
	return ok ? 0 : ing_error_set(e, ING_EIO, "cannot write %s", path);
}

/* Imports the payload into a fresh store in dir and clears the old
 * cluster's applied index and id.  Fills *jobs. */
static int seed(const char *dir, const uint8_t *payload, size_t len, uint64_t *jobs,
                struct ing_error *e)
{
	char tmp[600];
	struct store *s = NULL;
	struct store_txn *t = NULL;
	bool replaced = false;
	snprintf(tmp, sizeof(tmp), "%s/restore.mdb.tmp", dir);
	int rv = write_file(tmp, payload, len, e);
	if (rv == 0)
		rv = store_open(dir, NULL, &s, e);
	if (rv == 0)
		rv = store_snapshot_import(s, tmp, &replaced, e);
	unlink(tmp);
	if (rv == 0)
		rv = store_write_begin(s, &t);
	if (rv == 0)
		rv = store_set_applied_index(t, 0);
	if (rv == 0) {
		rv = store_del(t, STORE_META, ing_str_c(SM_META_CLUSTER_ID));
		if (rv == ING_ENOTFOUND)
			rv = 0;
	}
	if (rv == 0)
		rv = store_count(t, STORE_JOBS, jobs);
	if (rv == 0) {
		rv = store_commit(t);
		t = NULL;
	}
	store_abort(t);
	if (rv != 0 && e->msg[0] == '\0')
		ing_error_set(e, rv, "cannot write the store in %s: %s", dir, ing_err_msg(rv));
	store_close(s);
	return rv;
}

int node_restore_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"from", required_argument, NULL, 'f'},     {"config", required_argument, NULL, 'c'},
	    {"data-dir", required_argument, NULL, 'd'}, {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	const char *from = NULL, *config = NULL, *data_dir = NULL, *level = NULL;
	enum ing_log_level log_level = ING_LOG_LEVEL_WARN;
	struct node_config cfg;
	struct ing_error e = {0};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': from = optarg; break;
		case 'c': config = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'l': level = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || from == NULL || config == NULL) {
		fprintf(stderr, "ingotd restore: --from FILE and --config FILE are required\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (level != NULL && ing_log_parse_level(level, &log_level) != 0) {
		fprintf(stderr,
		        "ingotd restore: --log-level '%s': expected debug, info, warn or "
		        "error\n",
		        level);
		return EXIT_USAGE;
	}
	ing_log_set_level(log_level);
	node_config_defaults(&cfg);
	if (node_config_load(&cfg, config, &e) != 0) {
		fprintf(stderr, "ingotd restore: %s\n", e.msg);
		return EXIT_USAGE;
	}
	if (data_dir != NULL)
		snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", data_dir);
	if (node_config_check(&cfg, config, &e) != 0) {
		fprintf(stderr, "ingotd restore: %s\n", e.msg);
		return EXIT_USAGE;
	}
	int used = dir_in_use(cfg.data_dir);
	if (used != 0) {
		fprintf(stderr,
		        "ingotd restore: data directory %s %s: restore seeds a node of a new "
		        "cluster, give it an empty or missing directory\n",
		        cfg.data_dir, used > 0 ? "is not empty" : "cannot be read");
		return EXIT_USAGE;
	}
	uint8_t *file = NULL;
	size_t len = 0;
	struct backup_header h;
	if (read_file(from, &file, &len, &e) != 0 || backup_check(file, len, &h, &e) != 0) {
		fprintf(stderr, "ingotd restore: %s: %s; nothing written\n", from, e.msg);
		free(file);
		return EXIT_BAD_FILE;
	}
	bool created = dir_in_use(cfg.data_dir) == 0 && access(cfg.data_dir, F_OK) != 0;
	uint64_t jobs = 0;
	int lock_fd = -1;
	int rv = ing_mkdirs(cfg.data_dir, 0700, &e);
	if (rv == 0)
		rv = ing_dir_lock(cfg.data_dir, &lock_fd, &e);
	if (rv == ING_ECONFLICT) { /* an ingotd started on it meanwhile */
		fprintf(stderr, "ingotd restore: %s\n", e.msg);
		free(file);
		return EXIT_USAGE;
	}
	if (rv == 0)
		rv = seed(cfg.data_dir, file + BACKUP_HEADER_LEN, h.payload_len, &jobs, &e);
	free(file);
	if (rv != 0) {
		fprintf(stderr, "ingotd restore: %s\n", e.msg);
		char path[600];
		static const char *const files[] = {"state.mdb", "state.mdb-lock",
		                                    "restore.mdb.tmp", ING_DIR_LOCK_FILE};
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", cfg.data_dir, files[i]);
			unlink(path);
		}
		ing_dir_unlock(lock_fd);
		if (created)
			rmdir(cfg.data_dir);
		return EXIT_BAD_FILE;
	}
	ing_dir_unlock(lock_fd);
	time_t when = (time_t)(h.created_at_ms / 1000);
	struct tm tm;
	char at[40];
	gmtime_r(&when, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("restored %s into %s: %" PRIu64
	       " jobs, state of cluster %s at applied index %" PRIu64 " (taken %s by node %" PRIu64
	       ", %" PRIu64 " bytes)\n",
	       from, cfg.data_dir, jobs, h.cluster_id[0] != '\0' ? h.cluster_id : "(unnamed)",
	       h.applied_index, at, h.node_id, h.payload_len);
	printf("next: restore every node of the new cluster from the same file, then start each "
	       "with ingotd --config FILE; the first leader names the new cluster\n");
	return 0;
}
