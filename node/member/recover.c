/*
 * recover.c - `ingotd recover`: rewrite a stopped node's Raft configuration
 * to a set of survivors after a loss of quorum that will not heal.
 *
 * Flow (each step refuses before anything is written):
 *  1. the command line and the node's configuration (only id, data_dir and
 *     raft_address matter here; peers may be empty);
 *  2. the data directory's lock (common/fs.h: ing_dir_lock), held to the
 *     end: no ingotd (or other tool) can open the directory meanwhile;
 *  3. the store, opened to read the members table (the address book of
 *     every member) and the applied index, then closed;
 *  4. the raft log read offline (raft/recover.h: cons_inspect) for its term
 *     and last index;
 *  5. each id of --members resolved to a raft address: this node's own
 *     from the configuration, the others from the members table (or the
 *     configuration's peers when the table lacks them); an unknown id is
 *     an error naming it;
 *  6. the plan printed; without --yes, stop (exit 1);
 *  7. with --yes: cons_recover, which raises
 *     the log's term by one and appends the new configuration (all
 *     voters) to the log on disk.
 *
 * The members table is left as it is: it still lists the dead members
 * until the leader reconciles it with the Raft configuration.
 *
 * Exit status: 0 recovered, 1 refused (no state, libraft failure) or not
 * confirmed, 2 bad command line or configuration, or a data directory that
 * another process holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/sm/cmd.h"
#include "node/config.h"
#include "node/member/recover.h"
#include "raft/recover.h"
#include "storage/records.h"
#include "storage/store.h"

#define RECOVER_MAX_VOTERS  64
#define RECOVER_MAX_MEMBERS 1024

#define EXIT_REFUSED 1
#define EXIT_USAGE   2

struct member_row {
	uint64_t id;
	char raft_address[NODE_ADDRESS_MAX];
	char api_address[NODE_ADDRESS_MAX];
	uint8_t role;
};

struct survivor {
	uint64_t id;
	char raft_address[NODE_ADDRESS_MAX];
	const char *source; /* where the address came from */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: ingotd recover --config FILE --members ID[,ID...] [--yes]\n"
	        "\n"
	        "Offline recovery after a loss of quorum: rewrites this node's Raft\n"
	        "configuration to the named survivors (all voters).  ingotd must not be\n"
	        "running on this data directory.  Run it on exactly one node, the one with\n"
	        "the highest last log term and then the highest last index; see\n"
	        "docs/operations.md, \"Quorum loss\".\n"
	        "\n"
	        "  --config FILE        this node's YAML configuration\n"
	        "  --data-dir DIR       override data_dir\n"
	        "  --members IDS        the voters of the new configuration, this node included\n"
	        "  --yes                apply (without it, only print what would be done)\n"
	        "  --log-level LEVEL    debug, info, warn (default), error\n"
	        "  -h, --help           this text\n"
	        "\n"
	        "Exit status: 0 recovered, 1 refused or not confirmed, 2 usage or config error.\n");
}

/* "1,2,3": non-zero ids, no duplicates, at least one. */
static int parse_members(const char *list, uint64_t *ids, unsigned *n, struct ing_error *e)
{
	const char *p = list;
	unsigned count = 0;

	while (*p != '\0') {
		char *end;
		unsigned long long v;

		if (*p < '0' || *p > '9') {
			return ing_error_set(
			    e, ING_EINVAL, "--members '%s': expected node ids separated by commas",
			    list);
		}
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno != 0 || v == 0 || (*end != ',' && *end != '\0')) {
			return ing_error_set(
			    e, ING_EINVAL,
			    "--members '%s': expected node ids (1 or more) separated "
			    "by commas",
			    list);
		}
		for (unsigned i = 0; i < count; i++) {
			if (ids[i] == v) {
				return ing_error_set(e, ING_EINVAL,
				                     "--members: id %llu appears twice", v);
			}
		}
		if (count == RECOVER_MAX_VOTERS) {
			return ing_error_set(e, ING_EINVAL, "--members: more than %d ids",
			                     RECOVER_MAX_VOTERS);
		}
		ids[count++] = v;
		p = *end == ',' ? end + 1 : end;
		if (*end == ',' && *p == '\0') {
			return ing_error_set(e, ING_EINVAL, "--members '%s': trailing comma", list);
		}
	}
	if (count == 0) {
		return ing_error_set(e, ING_EINVAL, "--members: at least one node id is required");
	}
	*n = count;
	return 0;
}

static void copy_str(char *out, size_t cap, struct ing_str s)
{
	snprintf(out, cap, "%.*s", ING_STR_FMT(s));
}

/* The members table and the applied index.  *rows malloc'd (caller frees). */
static int read_store(const char *data_dir, struct member_row **rows, unsigned *nrows,
                      uint64_t *applied, struct ing_error *e)
{
	struct store_options so = {.sync = STORE_SYNC_FULL};
	struct member_row *out = NULL;
	struct store_iter *it = NULL;
	struct store_txn *t = NULL;
	struct store *s = NULL;
	struct ing_str key, val;
	unsigned n = 0;
	int rv;

	rv = store_open(data_dir, &so, &s, e);
	if (rv != 0) {
		return rv;
	}
	rv = store_read_begin(s, &t);
	if (rv == 0) {
		rv = store_applied_index(t, applied);
	}
	if (rv == 0) {
		rv = store_iter_open(t, STORE_MEMBERS, (struct ing_str){NULL, 0}, &it);
	}
	if (rv != 0) {
		ing_error_set(e, rv, "store in %s: cannot read: %s", data_dir, ing_err_msg(rv));
		goto out;
	}
	out = calloc(RECOVER_MAX_MEMBERS, sizeof(*out));
	if (out == NULL) {
		rv = ing_error_set(e, ING_ENOMEM, "out of memory");
		goto out;
	}
	while ((rv = store_iter_next(it, &key, &val)) == 0) {
		struct ing_error de = {0};
		struct rec_member m;
		msgpack_zone z;

		if (n == RECOVER_MAX_MEMBERS) {
			rv = ing_error_set(e, ING_ETOOBIG, "members table: more than %d members",
			                   RECOVER_MAX_MEMBERS);
			goto out;
		}
		msgpack_zone_init(&z, 512);
		rv = rec_member_decode(val, &z, &m, &de);
		if (rv == 0) {
			out[n].id = m.id;
			copy_str(out[n].raft_address, sizeof(out[n].raft_address), m.raft_address);
			copy_str(out[n].api_address, sizeof(out[n].api_address), m.api_address);
			out[n].role = m.role;
			n++;
		}
		msgpack_zone_destroy(&z);
		if (rv != 0) {
			rv = ing_error_set(e, ING_ECORRUPT, "store in %s: members table: %s",
			                   data_dir, de.msg);
			goto out;
		}
	}
	if (rv != ING_ENOTFOUND) {
		ing_error_set(e, rv, "store in %s: members table: %s", data_dir, ing_err_msg(rv));
		goto out;
	}
	rv = 0;
	*rows = out;
	*nrows = n;
	out = NULL;
out:
	free(out);
	store_iter_close(it);
	store_abort(t);
	store_close(s);
	return rv;
}

static const struct member_row *find_row(const struct member_row *rows, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++) {
		if (rows[i].id == id) {
			return &rows[i];
		}
	}
	return NULL;
}

/* Each named id's raft address: this node's from its configuration, the
 * others' from the members table, else from the configured peers. */
static int resolve(const struct node_config *cfg, const uint64_t *ids, unsigned n,
                   const struct member_row *rows, unsigned nrows, struct survivor *out,
                   struct ing_error *e)
{
	bool self = false;

	for (unsigned i = 0; i < n; i++) {
		const struct member_row *r = find_row(rows, nrows, ids[i]);
		struct survivor *s = &out[i];

		s->id = ids[i];
		s->raft_address[0] = '\0';
		if (ids[i] == cfg->id) {
			snprintf(s->raft_address, sizeof(s->raft_address), "%s", cfg->raft_address);
			s->source = "this node";
			self = true;
		} else if (r != NULL) {
			snprintf(s->raft_address, sizeof(s->raft_address), "%s", r->raft_address);
			s->source = "members table";
		} else {
			for (unsigned j = 0; j < cfg->npeers; j++) {
				if (cfg->peers[j].id == ids[i]) {
					snprintf(s->raft_address, sizeof(s->raft_address), "%s",
					         cfg->peers[j].raft_address);
					s->source = "config peers";
				}
			}
		}
		if (s->raft_address[0] == '\0') {
			return ing_error_set(e, ING_EINVAL,
			                     "--members: node %" PRIu64
			                     " is not in the members table of this data directory "
			                     "nor in the configuration's peers",
			                     ids[i]);
		}
		if (!cmd_address_valid(ing_str_c(s->raft_address))) {
			return ing_error_set(e, ING_EINVAL,
			                     "--members: node %" PRIu64
			                     " has the raft address '%s' (%s), not a.b.c.d:port",
			                     ids[i], s->raft_address, s->source);
		}
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(out[j].raft_address, s->raft_address) == 0) {
				return ing_error_set(e, ING_EINVAL,
				                     "--members: nodes %" PRIu64 " and %" PRIu64
				                     " share the raft address %s",
				                     out[j].id, s->id, s->raft_address);
			}
		}
	}
	if (!self) {
		return ing_error_set(e, ING_EINVAL,
		                     "--members: this node (id %" PRIu64
		                     ") must be among the survivors: recover rewrites its own log",
		                     cfg->id);
	}
	return 0;
}

static bool named(const uint64_t *ids, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++) {
		if (ids[i] == id) {
			return true;
		}
	}
	return false;
}

static void print_plan(const struct node_config *cfg, const struct cons_disk_state *ds,
                       uint64_t applied, const struct member_row *rows, unsigned nrows,
                       const struct survivor *sv, unsigned n, const uint64_t *ids)
{
	const struct member_row *me = find_row(rows, nrows, cfg->id);
	unsigned dropped = 0;

	printf("ingotd recover: node %" PRIu64 ", data_dir %s\n\n", cfg->id, cfg->data_dir);
	printf("raft log:  term %" PRIu64 ", last index %" PRIu64 " (term %" PRIu64 ")", ds->term,
	       ds->last_index, ds->last_term);
	if (ds->snapshot_index > 0) {
		printf(", snapshot at %" PRIu64 " (term %" PRIu64 ")", ds->snapshot_index,
		       ds->snapshot_term);
	}
	printf(", %" PRIu64 " entries on disk\n", ds->n_entries);
	printf("store:     applied index %" PRIu64 "\n\n", applied);

	printf("current members (members table):\n");
	if (nrows == 0) {
		printf("  (none recorded)\n");
	}
	for (unsigned i = 0; i < nrows; i++) {
		printf("  %-6" PRIu64 " %-8s raft %-21s api %s%s\n", rows[i].id,
		       rec_role_name(rows[i].role), rows[i].raft_address, rows[i].api_address,
		       named(ids, n, rows[i].id) ? "" : "   <- dropped");
		if (!named(ids, n, rows[i].id)) {
			dropped++;
		}
	}
	printf("\nnew configuration (%u voter%s):\n", n, n == 1 ? "" : "s");
	for (unsigned i = 0; i < n; i++) {
		printf("  %-6" PRIu64 " voter    raft %-21s (%s)\n", sv[i].id, sv[i].raft_address,
		       sv[i].source);
	}
	printf("the log's term %" PRIu64 " is raised to %" PRIu64
	       ", so no entry written after the\nrecovery can share a term with the old "
	       "cluster's last leader.\n",
	       ds->term, ds->term + 1);
	if (me != NULL && strcmp(me->raft_address, cfg->raft_address) != 0) {
		printf("\nnote: the members table has %s as this node's raft address; the "
		       "configuration's %s is used.\n",
		       me->raft_address, cfg->raft_address);
	}
	printf("\nWARNING: run recover on exactly ONE node: the survivor whose raft log has the\n"
	       "highest last term, then the highest last index (compare the \"raft log\" line\n"
	       "of every survivor).  Entries only the dead nodes held are lost.\n");
	if (n > 1) {
		printf("The other survivors named here (");
		for (unsigned i = 0, k = 0; i < n; i++) {
			if (sv[i].id != cfg->id) {
				printf("%s%" PRIu64, k++ ? ", " : "", sv[i].id);
			}
		}
		printf(") must be stopped now and must\n"
		       "get a copy of this data directory, replacing theirs, before they start.\n"
		       "Simpler and recommended: name only this node, start it, then wipe the\n"
		       "others and add them back with `ingotd --join` / `ingotctl member add`.\n");
	} else {
		printf("After recovery, start this node alone; it elects itself.  Wipe the other\n"
		       "survivors' data directories and add them back with `ingotd --join` or\n"
		       "`ingotctl member add`.\n");
	}
	if (dropped > 0) {
		printf("Dropped members must never start again with their old data: wipe them.\n");
	}
}

int node_recover_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"members", required_argument, NULL, 'm'},
	    {"yes", no_argument, NULL, 'y'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *data_dir = NULL, *members = NULL, *level = NULL;
	uint64_t ids[RECOVER_MAX_VOTERS];
	struct survivor sv[RECOVER_MAX_VOTERS];
	struct cons_peer voters[RECOVER_MAX_VOTERS];
	struct member_row *rows = NULL;
	struct cons_disk_state ds;
	struct node_config cfg;
	struct ing_error e = {0};
	enum ing_log_level log_level = ING_LOG_LEVEL_WARN;
	char raft_dir[sizeof(cfg.data_dir) + 8], store_file[sizeof(cfg.data_dir) + 16];
	unsigned n = 0, nrows = 0;
	uint64_t applied = 0, index = 0;
	bool yes = false;
	struct stat st;
	int opt, status = EXIT_REFUSED, lock_fd = -1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'm': members = optarg; break;
		case 'y': yes = true; break;
		case 'l': level = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || config == NULL || members == NULL) {
		fprintf(stderr, "ingotd recover: --config FILE and --members IDS are required\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (level != NULL && ing_log_parse_level(level, &log_level) != 0) {
		fprintf(stderr,
		        "ingotd recover: --log-level '%s': expected debug, info, warn or error\n",
		        level);
		return EXIT_USAGE;
	}
	ing_log_set_level(log_level);
	if (parse_members(members, ids, &n, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		return EXIT_USAGE;
	}
	node_config_defaults(&cfg);
	if (node_config_load(&cfg, config, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		return EXIT_USAGE;
	}
	if (data_dir != NULL) {
		snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", data_dir);
	}
	if (node_config_check(&cfg, config, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		return EXIT_USAGE;
	}
	ing_log_set_node(cfg.id);
	snprintf(raft_dir, sizeof(raft_dir), "%s/raft", cfg.data_dir);
	snprintf(store_file, sizeof(store_file), "%s/state.mdb", cfg.data_dir);

	if (stat(store_file, &st) != 0) {
		fprintf(stderr,
		        "ingotd recover: no store at %s (%s): is data_dir right?  Nothing to "
		        "recover.\n",
		        store_file, strerror(errno));
		return EXIT_REFUSED;
	}
	if (ing_dir_lock(cfg.data_dir, &lock_fd, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		return e.code == ING_ECONFLICT ? EXIT_USAGE : EXIT_REFUSED;
	}
	if (read_store(cfg.data_dir, &rows, &nrows, &applied, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		goto out;
	}
	if (cons_inspect(raft_dir, cfg.id, cfg.raft_address, &ds, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		goto out;
	}
	if (resolve(&cfg, ids, n, rows, nrows, sv, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		status = EXIT_USAGE;
		goto out;
	}
	print_plan(&cfg, &ds, applied, rows, nrows, sv, n, ids);
	if (!yes) {
		printf("\nNothing written.  Re-run with --yes to apply.\n");
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		voters[i].id = sv[i].id;
		voters[i].address = sv[i].raft_address;
	}
	if (cons_recover(raft_dir, cfg.id, cfg.raft_address, voters, n, &index, &e) != 0) {
		fprintf(stderr, "ingotd recover: %s\n", e.msg);
		goto out;
	}
	printf("\nrecovered: term %" PRIu64 ", the configuration entry at index %" PRIu64
	       " names %u voter%s (",
	       ds.term + 1, index, n, n == 1 ? "" : "s");
	for (unsigned i = 0; i < n; i++) {
		printf("%s%" PRIu64, i ? ", " : "", sv[i].id);
	}
	printf(").\nnext: start ingotd on this data directory, then add fresh nodes "
	       "(docs/operations.md).\n");
	status = 0;
out:
	free(rows);
	ing_dir_unlock(lock_fd);
	return status;
}
