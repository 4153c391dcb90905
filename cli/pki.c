/*
 * pki.c - ingot's offline PKI: the cluster CA, node and client
 * certificates (`ingotctl pki`, docs/operations.md "Certificates").
 *
 * Everything is made here, on this machine, with OpenSSL 3; nothing is
 * sent anywhere.  Keys are ECDSA P-256 (every TLS 1.3 implementation,
 * OpenSSL's, Python's ssl and Go's included, handles it), signatures
 * ECDSA with SHA-256.
 *
 * Files in DIR (see cli.h for the names): certificates 0644, private keys
 * 0600, DIR itself created 0700 when missing.  Each file is written to a
 * temporary name in DIR, fsync'd and renamed, so a crash leaves either the
 * old file or the new one.  Existing files are refused unless `force`;
 * that check happens before any key is made, so a refusal changes nothing.
 *
 * Certificates (X.509 v3):
 *   CA      CN "ingot cluster CA <8 hex>", basicConstraints critical CA:TRUE
 *           pathlen:0, keyUsage critical keyCertSign+cRLSign, SKI.
 *   node    CN "ingot node <id>", SAN URI:ingot:node:<id> plus IP:/DNS: per
 *           --address, EKU serverAuth+clientAuth (a node is both).
 *   client  CN <name>, SAN URI:ingot:client:<name>, EKU clientAuth.
 * Leaves: basicConstraints critical CA:FALSE, keyUsage critical
 * digitalSignature, SKI and AKI.  Serial: 128 random bits.  Not before:
 * now minus 5 minutes (clock skew between machines); not after: now plus
 * `days`, never past the CA's own end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli/cli.h"
#include "common/fs.h"
#include "common/tls.h"

#define BACKDATE_S (5 * 60)

/* ---- names ------------------------------------------------------------- */

static int pki_path(char *buf, size_t cap, const char *dir, const char *name, struct ing_error *e)
{
	int n = snprintf(buf, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap)
		return ing_error_set(e, ING_EINVAL, "--dir '%s': path too long", dir);
	return 0;
}

/* A DNS name: labels of letters, digits and '-', not at a label's ends. */
static bool dns_name_valid(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

int cli_pki_address_kind(const char *s, const char **kind)
{
	unsigned char buf[16];
	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1) {
		*kind = "IP";
		return 0;
	}
	if (dns_name_valid(s)) {
		*kind = "DNS";
		return 0;
	}
	return ING_EINVAL;
}

/* ---- files ------------------------------------------------------------- */

static int refuse_existing(const char *path, bool force, struct ing_error *e)
{
	struct stat st;
	if (force || lstat(path, &st) != 0)
		return 0;
	return ing_error_set(
	    e, ING_EEXIST, "%s exists: refusing to overwrite it (use --force to replace it)", path);
}

/* Writes one PEM object to path (mode) through a temporary file and rename. */
static int write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key, struct ing_error *e)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return ing_error_set(e, ING_EINVAL, "%s: path too long", path);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return ing_error_set(e, ING_EIO, "cannot create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0) {
		int err = errno;
		close(fd);
		unlink(tmp);
		return ing_error_set(e, ING_EIO, "cannot chmod %s: %s", tmp, strerror(err));
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		int err = errno;
		close(fd);
		unlink(tmp);
		return ing_error_set(e, ING_EIO, "cannot write %s: %s", tmp, strerror(err));
	}
	int ok = cert != NULL ? PEM_write_X509(f, cert)
	                      : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	int rv = 0;
	if (ok != 1)
		rv = ing_tls_openssl_error(e, ING_EIO, "cannot encode a PEM file");
	if (rv == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		rv = ing_error_set(e, ING_EIO, "cannot write %s: %s", tmp, strerror(errno));
	if (fclose(f) != 0 && rv == 0)
		rv = ing_error_set(e, ING_EIO, "cannot write %s: %s", tmp, strerror(errno));
	if (rv == 0 && rename(tmp, path) != 0)
		rv = ing_error_set(e, ING_EIO, "cannot rename %s to %s: %s", tmp, path,
		                   strerror(errno));
	if (rv != 0)
		unlink(tmp);
	return rv;
}

/* ---- certificates ------------------------------------------------------ */

static int new_key(EVP_PKEY **out, struct ing_error *e)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	if (k == NULL)
		return ing_tls_openssl_error(e, ING_EINTERNAL, "cannot make an ECDSA P-256 key");
	*out = k;
	return 0;
}

static int set_serial(X509 *x, struct ing_error *e)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return ing_tls_openssl_error(e, ING_EINTERNAL, "no random bytes for a serial");
	raw[0] &= 0x7f; /* positive */
	raw[0] |= 0x40; /* and never short */
	BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
	int rv = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL ? 0 : -1;
	BN_free(bn);
	if (rv != 0)
		return ing_tls_openssl_error(e, ING_ENOMEM, "cannot set a serial number");
	return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, struct ing_error *e)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
		X509_EXTENSION_free(ext);
		char what[256];
		snprintf(what, sizeof(what), "cannot add extension %s = %s", OBJ_nid2sn(nid),
		         value);
		return ing_tls_openssl_error(e, ING_EINTERNAL, what);
	}
	X509_EXTENSION_free(ext);
	return 0;
}

static void format_time(const ASN1_TIME *t, char *buf, size_t cap)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
	else
		snprintf(buf, cap, "?");
}

/*
 * A certificate for `key` with subject CN `cn` (and O=ingot), valid from
 * now minus BACKDATE_S for `days`, signed by (issuer, issuer_key), or
 * self-signed when issuer is NULL.  `exts` is a list of {nid, value},
 * ending with nid 0.
 */
struct ext {
	int nid;
	const char *value;
};

static int make_cert(EVP_PKEY *key, const char *cn, unsigned days, X509 *issuer,
                     EVP_PKEY *issuer_key, const struct ext *exts, X509 **out, struct ing_error *e)
{
	X509 *x = X509_new();
	if (x == NULL)
		return ing_tls_openssl_error(e, ING_ENOMEM, "out of memory");
	int rv = 0;
	X509_NAME *name = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || X509_set_pubkey(x, key) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"ingot", -1,
	                               -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
	                               0) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL)
		rv = ing_tls_openssl_error(e, ING_EINTERNAL, "cannot fill a certificate");
	if (rv == 0)
		rv = set_serial(x, e);
	if (rv == 0 && issuer != NULL &&
	    ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuer)) > 0) {
		char until[64];
		format_time(X509_get0_notAfter(issuer), until, sizeof(until));
		rv = ing_error_set(e, ING_EINVAL,
		                   "--days %u: the certificate would outlive the CA (valid until "
		                   "%s); give fewer days, or make a new CA",
		                   days, until);
	}
	for (const struct ext *x1 = exts; rv == 0 && x1->nid != 0; x1++)
		rv = add_ext(x, issuer, x1->nid, x1->value, e);
	if (rv == 0 && X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) <= 0)
		rv = ing_tls_openssl_error(e, ING_EINTERNAL, "cannot sign the certificate");
	if (rv != 0) {
		X509_free(x);
		return rv;
	}
	*out = x;
	return 0;
}

static void fill_issued(struct cli_pki_issued *out, const char *cert_path, const char *key_path,
                        const char *identity, const char *names, X509 *x)
{
	snprintf(out->cert_path, sizeof(out->cert_path), "%s", cert_path);
	snprintf(out->key_path, sizeof(out->key_path), "%s", key_path);
	snprintf(out->identity, sizeof(out->identity), "%s", identity);
	snprintf(out->names, sizeof(out->names), "%s", names);
	format_time(X509_get0_notAfter(x), out->not_after, sizeof(out->not_after));
}

/* Writes key then certificate (the pair's paths were checked before). */
static int write_pair(const char *cert_path, const char *key_path, X509 *x, EVP_PKEY *key,
                      struct ing_error *e)
{
	int rv = write_pem(key_path, 0600, NULL, key, e);
	if (rv == 0)
		rv = write_pem(cert_path, 0644, x, NULL, e);
	return rv;
}

static int check_days(unsigned days, struct ing_error *e)
{
	if (days < 1 || days > CLI_PKI_DAYS_MAX)
		return ing_error_set(e, ING_EINVAL, "--days: must be 1 to %u, got %u",
		                     CLI_PKI_DAYS_MAX, days);
	return 0;
}

int cli_pki_init(const char *dir, unsigned days, bool force, struct cli_pki_issued *out,
                 struct ing_error *e)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	int rv = check_days(days, e);
	if (rv == 0)
		rv = pki_path(cert_path, sizeof(cert_path), dir, CLI_PKI_CA_CERT, e);
	if (rv == 0)
		rv = pki_path(key_path, sizeof(key_path), dir, CLI_PKI_CA_KEY, e);
	if (rv == 0)
		rv = refuse_existing(key_path, force, e);
	if (rv == 0)
		rv = refuse_existing(cert_path, force, e);
	if (rv == 0)
		rv = ing_mkdirs(dir, 0700, e);
	if (rv != 0)
		return rv;
	unsigned char tag[4];
	char cn[64];
	if (RAND_bytes(tag, sizeof(tag)) != 1)
		return ing_tls_openssl_error(e, ING_EINTERNAL, "no random bytes");
	snprintf(cn, sizeof(cn), "ingot cluster CA %02x%02x%02x%02x", tag[0], tag[1], tag[2],
	         tag[3]);
	const struct ext exts[] = {
	    {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
	    {NID_key_usage, "critical,keyCertSign,cRLSign"},
	    {NID_subject_key_identifier, "hash"},
	    {0, NULL},
	};
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	rv = new_key(&key, e);
	if (rv == 0)
		rv = make_cert(key, cn, days, NULL, NULL, exts, &x, e);
	if (rv == 0)
		rv = write_pair(cert_path, key_path, x, key, e);
	if (rv == 0) {
		char identity[80];
		snprintf(identity, sizeof(identity), "CN=%s", cn);
		fill_issued(out, cert_path, key_path, identity, "", x);
	}
	X509_free(x);
	EVP_PKEY_free(key);
	return rv;
}

/* Reads DIR's CA (certificate and key; the key must be private). */
static int load_ca(const char *dir, X509 **ca, EVP_PKEY **ca_key, struct ing_error *e)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	int rv = pki_path(cert_path, sizeof(cert_path), dir, CLI_PKI_CA_CERT, e);
	if (rv == 0)
		rv = pki_path(key_path, sizeof(key_path), dir, CLI_PKI_CA_KEY, e);
	if (rv != 0)
		return rv;
	struct stat st;
	if (stat(key_path, &st) != 0 || stat(cert_path, &st) != 0)
		return ing_error_set(e, ING_ENOTFOUND,
		                     "no CA in %s (%s: %s): run 'ingotctl pki init --dir %s' first",
		                     dir, stat(key_path, &st) != 0 ? key_path : cert_path,
		                     strerror(errno), dir);
	if (stat(key_path, &st) == 0 && (st.st_mode & 077) != 0)
		return ing_error_set(e, ING_EDENIED,
		                     "%s is readable by others (mode %03o): run 'chmod 600 %s' and "
		                     "keep the CA key offline",
		                     key_path, (unsigned)(st.st_mode & 0777), key_path);
	FILE *f = fopen(cert_path, "r");
	X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f != NULL)
		fclose(f);
	if (x == NULL) {
		char what[PATH_MAX + 64];
		snprintf(what, sizeof(what), "%s: not a PEM certificate", cert_path);
		return ing_tls_openssl_error(e, ING_EINVAL, what);
	}
	f = fopen(key_path, "r");
	EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f != NULL)
		fclose(f);
	if (k == NULL || X509_check_private_key(x, k) != 1) {
		char what[2 * PATH_MAX + 64];
		snprintf(what, sizeof(what), "%s: not the PEM private key of %s", key_path,
		         cert_path);
		X509_free(x);
		EVP_PKEY_free(k);
		return ing_tls_openssl_error(e, ING_EINVAL, what);
	}
	*ca = x;
	*ca_key = k;
	return 0;
}

/* Issues one leaf into DIR/<base>.crt and .key. */
static int issue_leaf(const char *dir, const char *base, const char *cn, const char *identity,
                      const char *san, const char *eku, unsigned days, bool force,
                      struct cli_pki_issued *out, struct ing_error *e)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX], name[ING_TLS_CLIENT_NAME_MAX + 16];
	int rv = check_days(days, e);
	snprintf(name, sizeof(name), "%s.crt", base);
	if (rv == 0)
		rv = pki_path(cert_path, sizeof(cert_path), dir, name, e);
	snprintf(name, sizeof(name), "%s.key", base);
	if (rv == 0)
		rv = pki_path(key_path, sizeof(key_path), dir, name, e);
	if (rv == 0)
		rv = refuse_existing(key_path, force, e);
	if (rv == 0)
		rv = refuse_existing(cert_path, force, e);
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	if (rv == 0)
		rv = load_ca(dir, &ca, &ca_key, e);
	if (rv != 0)
		return rv;
	const struct ext exts[] = {
	    {NID_basic_constraints, "critical,CA:FALSE"},
	    {NID_key_usage, "critical,digitalSignature"},
	    {NID_ext_key_usage, eku},
	    {NID_subject_key_identifier, "hash"},
	    {NID_authority_key_identifier, "keyid:always"},
	    {NID_subject_alt_name, san},
	    {0, NULL},
	};
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	rv = new_key(&key, e);
	if (rv == 0)
		rv = make_cert(key, cn, days, ca, ca_key, exts, &x, e);
	if (rv == 0)
		rv = write_pair(cert_path, key_path, x, key, e);
	if (rv == 0)
		fill_issued(out, cert_path, key_path, identity, san, x);
	X509_free(x);
	EVP_PKEY_free(key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rv;
}

int cli_pki_issue_node(const char *dir, uint64_t id, const char *const *addresses,
                       unsigned naddresses, unsigned days, bool force, struct cli_pki_issued *out,
                       struct ing_error *e)
{
	char base[32], cn[48], identity[48], san[CLI_PKI_MAX_ADDRESSES * 270 + 64];
	if (id == 0)
		return ing_error_set(e, ING_EINVAL, "--id: node ids start at 1");
	if (naddresses == 0)
		return ing_error_set(e, ING_EINVAL,
		                     "'pki issue node' needs --address HOST_OR_IP (each address "
		                     "clients and peers use to reach the node)");
	if (naddresses > CLI_PKI_MAX_ADDRESSES)
		return ing_error_set(e, ING_EINVAL, "--address: at most %d", CLI_PKI_MAX_ADDRESSES);
	snprintf(base, sizeof(base), "node-%" PRIu64, id);
	snprintf(cn, sizeof(cn), "ingot node %" PRIu64, id);
	snprintf(identity, sizeof(identity), ING_TLS_NODE_URI_PREFIX "%" PRIu64, id);
	size_t len = (size_t)snprintf(san, sizeof(san), "URI:%s", identity);
	for (unsigned i = 0; i < naddresses; i++) {
		const char *kind;
		if (cli_pki_address_kind(addresses[i], &kind) != 0)
			return ing_error_set(
			    e, ING_EINVAL,
			    "--address '%.80s': expected an IPv4 or IPv6 address or "
			    "a DNS name",
			    addresses[i]);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(addresses[j], addresses[i]) == 0)
				return ing_error_set(e, ING_EINVAL, "--address '%s' given twice",
				                     addresses[i]);
		len += (size_t)snprintf(san + len, sizeof(san) - len, ",%s:%s", kind, addresses[i]);
	}
	return issue_leaf(dir, base, cn, identity, san, "serverAuth,clientAuth", days, force, out,
	                  e);
}

int cli_pki_issue_client(const char *dir, const char *name, unsigned days, bool force,
                         struct cli_pki_issued *out, struct ing_error *e)
{
	char base[ING_TLS_CLIENT_NAME_MAX + 8], identity[ING_TLS_CLIENT_NAME_MAX + 16],
	    san[ING_TLS_CLIENT_NAME_MAX + 32];
	if (!ing_tls_client_name_valid(name, strlen(name)))
		return ing_error_set(e, ING_EINVAL,
		                     "--name '%.80s': expected 1 to %d characters of letters, "
		                     "digits, '.', '_' and '-', not starting with '.' or '-'",
		                     name, ING_TLS_CLIENT_NAME_MAX);
	snprintf(base, sizeof(base), "client-%s", name);
	snprintf(identity, sizeof(identity), ING_TLS_CLIENT_URI_PREFIX "%s", name);
	snprintf(san, sizeof(san), "URI:%s", identity);
	return issue_leaf(dir, base, name, identity, san, "clientAuth", days, force, out, e);
}
