/*
 * pkitest.h - certificates for the TLS tests, made with ingotctl's own
 * offline PKI (cli/pki.c) into a temporary directory: no fixture files,
 * nothing hand-made.
 *
 * One call makes two independent CAs ("main" and "foreign") and, under
 * each, node certificates for ids 1-3 naming 127.0.0.1, node 9 naming only
 * 127.0.0.2, and a client "alice".  Paths are "<dir>/<ca>/<file>", and
 * "<dir>/ca.crt" is a bundle of both CAs.
 */
#ifndef INGOT_TESTS_LIB_PKITEST_H
#define INGOT_TESTS_LIB_PKITEST_H

#include <stdbool.h>
#include <stddef.h>

#include "common/tls.h"

struct tp_pki {
	char dir[256];     /* the temporary root */
	char main_[300];   /* <dir>/main */
	char foreign[300]; /* <dir>/foreign */
};

/* Makes both PKIs.  Fails the test on error. */
void tp_make(struct tp_pki *p);
/* Removes the directory tree. */
void tp_remove(struct tp_pki *p);

/*
 * A TLS context trusting `ca_dir`'s CA (a tp_pki main_ or foreign, or dir
 * for both), with
 * the certificate `who` from `cert_dir` ("node-1", "client-alice"; NULL:
 * none).  Fails the test on error.
 */
struct ing_tls *tp_tls(const char *ca_dir, const char *cert_dir, const char *who,
                       enum ing_tls_client_certs client_certs);

/* "<dir>/<name>" into buf (cap >= 512). */
void tp_path(char *buf, size_t cap, const char *dir, const char *name);

#endif
