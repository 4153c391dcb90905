/*
 * pkitest.c - see pkitest.h.
 */
#include "tests/lib/pkitest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "tests/lib/testutil.h"

void tp_path(char *buf, size_t cap, const char *dir, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

static void make_one(const char *dir)
{
	struct cli_pki_issued r;
	struct ing_error e;
	const char *local[] = {"127.0.0.1"};
	const char *other[] = {"127.0.0.2"};
	if (cli_pki_init(dir, 30, false, &r, &e) != 0)
		fail_msg("pki init %s: %s", dir, e.msg);
	for (uint64_t id = 1; id <= 3; id++) {
		if (cli_pki_issue_node(dir, id, local, 1, 10, false, &r, &e) != 0)
			fail_msg("pki issue node %llu: %s", (unsigned long long)id, e.msg);
	}
	if (cli_pki_issue_node(dir, 9, other, 1, 10, false, &r, &e) != 0)
		fail_msg("pki issue node 9: %s", e.msg);
	if (cli_pki_issue_client(dir, "alice", 10, false, &r, &e) != 0)
		fail_msg("pki issue client: %s", e.msg);
}

void tp_make(struct tp_pki *p)
{
	tu_tmpdir(p->dir, sizeof(p->dir));
	snprintf(p->main_, sizeof(p->main_), "%s/main", p->dir);
	snprintf(p->foreign, sizeof(p->foreign), "%s/foreign", p->dir);
	make_one(p->main_);
	make_one(p->foreign);
	/* <dir>/ca.crt: both CAs in one bundle. */
	char path[512], part[512];
	tp_path(path, sizeof(path), p->dir, CLI_PKI_CA_CERT);
	FILE *out = fopen(path, "w");
	if (out == NULL)
		fail_msg("cannot write %s", path);
	const char *dirs[] = {p->main_, p->foreign};
	for (int i = 0; i < 2; i++) {
		void *buf;
		size_t len;
		tp_path(part, sizeof(part), dirs[i], CLI_PKI_CA_CERT);
		if (tu_read_file(part, &buf, &len) != 0)
			fail_msg("cannot read %s", part);
		fwrite(buf, 1, len, out);
		free(buf);
	}
	fclose(out);
}

void tp_remove(struct tp_pki *p)
{
	tu_rmrf(p->dir);
}

struct ing_tls *tp_tls(const char *ca_dir, const char *cert_dir, const char *who,
                       enum ing_tls_client_certs client_certs)
{
	char ca[512], cert[512], key[512], name[128];
	struct ing_tls_config cfg = {ca, NULL, NULL, client_certs};
	struct ing_tls *t;
	struct ing_error e;
	tp_path(ca, sizeof(ca), ca_dir, CLI_PKI_CA_CERT);
	if (who != NULL) {
		snprintf(name, sizeof(name), "%s.crt", who);
		tp_path(cert, sizeof(cert), cert_dir, name);
		snprintf(name, sizeof(name), "%s.key", who);
		tp_path(key, sizeof(key), cert_dir, name);
		cfg.cert_file = cert;
		cfg.key_file = key;
	}
	if (ing_tls_new(&cfg, &t, &e) != 0)
		fail_msg("ing_tls_new: %s", e.msg);
	return t;
}
