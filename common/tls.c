/*
 * tls.c - TLS contexts, sessions over memory BIOs, peer identities and the
 * translation of OpenSSL's errors (see tls.h).
 *
 * Context: TLS 1.3 only, no session tickets or cache (nothing to resume,
 * nothing kept per peer).  AES-128-GCM is offered first (then AES-256-GCM
 * and ChaCha20-Poly1305): on x86-64 with AES-NI it is the cheapest per
 * record, and 128-bit keys are what TLS 1.3 mandates.  Record buffers are
 * kept for the life of a session (no SSL_MODE_RELEASE_BUFFERS): about
 * 34 KiB per connection, instead of a malloc and free of each buffer for
 * every record (measured in docs/performance.md, "What TLS costs").  The files are checked when
 * loaded: the key must match the certificate and the certificate must chain to the CA (with its
 * validity dates), so a node with a wrong file stops at start with a message naming it instead of
 * failing every handshake later.
 *
 * Session: SSL object with two memory BIOs.  Input ciphertext is appended
 * to the read BIO (which says "retry" when empty, never EOF); the write BIO
 * collects what OpenSSL wants sent, taken by the caller after each step.
 * With memory BIOs nothing ever blocks, so WANT_READ is the only "not yet".
 * States: handshaking -> established -> dead (an error or the peer's
 * close_notify).  A dead session refuses everything with its first error.
 *
 * Verification: the peer chain is verified by OpenSSL against the
 * context's CA store (dates included); a verify callback adds ingot's rule
 * at depth 0 (at most one ingot: identity URI, well formed), so a bad
 * certificate fails inside the handshake with a proper alert and our own
 * reason.  Client-side IP checks use OpenSSL's X509_VERIFY_PARAM.
 *
 * Failure modes: every OpenSSL failure becomes ING_E* here and only here
 * (session_fail for sessions, ing_tls_openssl_error for the rest), and the
 * thread's OpenSSL error queue is cleared after each operation so a stale
 * entry never explains a later failure.
 */
#include "common/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"

struct ing_tls {
	char *ca_file;
	char *cert_file;
	char *key_file;
	enum ing_tls_client_certs client_certs;
	SSL_CTX *ctx;
	char describe[256];
	struct ing_tls_identity own;
	int64_t cert_not_after; /* Unix seconds; 0: no certificate */
	int64_t ca_not_after;   /* the earliest of the CA file's; 0: none */
};

struct ing_tls_session {
	SSL *ssl;
	BIO *rbio; /* owned by ssl */
	BIO *wbio; /* owned by ssl */
	enum ing_tls_role role;
	bool established;
	int dead_code; /* 0 while alive */
	char dead_msg[ING_ERROR_MSG_MAX];
	char expect_ip[INET_ADDRSTRLEN];
	char reject[160]; /* ingot's own reason for refusing the peer's certificate */
	struct ing_tls_identity peer;
};

int ing_tls_openssl_error(struct ing_error *e, int code, const char *what)
{
	unsigned long err = ERR_peek_last_error();
	if (err != 0) {
		char reason[160];
		ERR_error_string_n(err, reason, sizeof(reason));
		ing_error_set(e, code, "%s: %s", what, reason);
	} else {
		ing_error_set(e, code, "%s", what);
	}
	ERR_clear_error();
	return code;
}

/* ---- identities -------------------------------------------------------- */

bool ing_tls_client_name_valid(const char *p, size_t n)
{
	if (n == 0 || n > ING_TLS_CLIENT_NAME_MAX || p[0] == '.' || p[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Decimal 1..UINT64_MAX without sign, spaces or leading zeros. */
static bool parse_node_id(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20 || p[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* ingot's reading of a (verified) certificate.  0, or -1 with why set. */
static int identity_from_cert(X509 *cert, struct ing_tls_identity *out, char *why, size_t cap)
{
	struct ing_tls_identity id;
	unsigned found = 0;
	memset(&id, 0, sizeof(id));
	id.kind = ING_TLS_PEER_OTHER;
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, id.name,
	                          sizeof(id.name));
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
	int rv = 0;
	for (int i = 0; i < n && rv == 0; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_URI)
			continue;
		const char *u = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		size_t len = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len < 6 || strncmp(u, "ingot:", 6) != 0)
			continue;
		if (++found > 1) {
			snprintf(why, cap, "the certificate names more than one ingot identity");
			rv = -1;
		} else if (len > strlen(ING_TLS_NODE_URI_PREFIX) &&
		           strncmp(u, ING_TLS_NODE_URI_PREFIX, strlen(ING_TLS_NODE_URI_PREFIX)) ==
		               0) {
			size_t pl = strlen(ING_TLS_NODE_URI_PREFIX);
			if (!parse_node_id(u + pl, len - pl, &id.node_id)) {
				snprintf(why, cap, "bad node identity '%.*s'",
				         (int)(len > 64 ? 64 : len), u);
				rv = -1;
			}
			id.kind = ING_TLS_PEER_NODE;
			snprintf(id.name, sizeof(id.name), "node %" PRIu64, id.node_id);
		} else if (strncmp(u, ING_TLS_CLIENT_URI_PREFIX,
		                   strlen(ING_TLS_CLIENT_URI_PREFIX)) == 0) {
			size_t pl = strlen(ING_TLS_CLIENT_URI_PREFIX);
			if (!ing_tls_client_name_valid(u + pl, len - pl)) {
				snprintf(why, cap, "bad client identity '%.*s'",
				         (int)(len > 80 ? 80 : len), u);
				rv = -1;
			}
			id.kind = ING_TLS_PEER_CLIENT;
			snprintf(id.name, sizeof(id.name), "%.*s", (int)(len - pl), u + pl);
		} else {
			snprintf(why, cap, "unknown ingot identity '%.*s'",
			         (int)(len > 64 ? 64 : len), u);
			rv = -1;
		}
	}
	GENERAL_NAMES_free(gens);
	if (rv == 0)
		*out = id;
	return rv;
}

void ing_tls_identity_format(const struct ing_tls_identity *id, char *buf, size_t cap)
{
	switch (id->kind) {
	case ING_TLS_PEER_NODE: snprintf(buf, cap, "node %" PRIu64, id->node_id); break;
	case ING_TLS_PEER_CLIENT: snprintf(buf, cap, "client %s", id->name); break;
	case ING_TLS_PEER_OTHER: snprintf(buf, cap, "cert CN=%s", id->name); break;
	default: snprintf(buf, cap, "no certificate"); break;
	}
}

/* ---- contexts ---------------------------------------------------------- */

/* A clear message for a file that cannot even be opened. */
static int check_readable(const char *what, const char *path, struct ing_error *e)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return ing_error_set(e, ING_EINVAL, "TLS %s '%s': %s", what, path, strerror(errno));
	fclose(f);
	return 0;
}

static void describe_cert(X509 *cert, char *buf, size_t cap)
{
	char subject[128] = "?", until[64] = "?";
	X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
	BIO *b = BIO_new(BIO_s_mem());
	if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(cert)) == 1) {
		int n = BIO_read(b, until, sizeof(until) - 1);
		until[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	snprintf(buf, cap, "subject=\"%s\" not_after=\"%s\"", subject, until);
}

/* A certificate's notAfter in Unix seconds (0 when unreadable). */
static int64_t not_after_unix(const X509 *cert)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* The earliest notAfter among the certificates of ctx's CA store. */
static int64_t ca_not_after(SSL_CTX *ctx)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	int64_t first = 0;
	for (int i = 0; objs != NULL && i < sk_X509_OBJECT_num(objs); i++) {
		X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		int64_t t = ca != NULL ? not_after_unix(ca) : 0;
		if (t != 0 && (first == 0 || t < first))
			first = t;
	}
	return first;
}

/* Verifies the context's own certificate against its CA store. */
static int check_chain(SSL_CTX *ctx, const struct ing_tls *t, struct ing_error *e)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	STACK_OF(X509) *chain = NULL;
	SSL_CTX_get0_chain_certs(ctx, &chain);
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	if (sc == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	int rv = 0;
	if (X509_STORE_CTX_init(sc, SSL_CTX_get_cert_store(ctx), cert, chain) != 1) {
		rv = ing_tls_openssl_error(e, ING_ENOMEM, "TLS: cannot check the certificate");
	} else if (X509_verify_cert(sc) != 1) {
		int err = X509_STORE_CTX_get_error(sc);
		rv = ing_error_set(e, ING_EINVAL,
		                   "TLS certificate '%s' is not valid under the CA in '%s': %s%s",
		                   t->cert_file, t->ca_file, X509_verify_cert_error_string(err),
		                   err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
		                           err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
		                       ? " (was it issued by another CA?)"
		                       : "");
	}
	X509_STORE_CTX_free(sc);
	ERR_clear_error();
	return rv;
}

static int load_ctx(struct ing_tls *t, SSL_CTX **out, struct ing_error *e)
{
	int rv = check_readable("CA file", t->ca_file, e);
	if (rv == 0 && t->cert_file != NULL)
		rv = check_readable("certificate", t->cert_file, e);
	if (rv == 0 && t->key_file != NULL)
		rv = check_readable("key", t->key_file, e);
	if (rv != 0)
		return rv;
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (ctx == NULL)
		return ing_tls_openssl_error(e, ING_ENOMEM, "TLS: cannot create a context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
	                                  "TLS_CHACHA20_POLY1305_SHA256") != 1) {
		SSL_CTX_free(ctx);
		return ing_tls_openssl_error(e, ING_ENOMEM, "TLS: cannot set the cipher suites");
	}
	char what[600];
	if (SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1) {
		snprintf(what, sizeof(what), "TLS CA file '%s': no PEM certificate could be read",
		         t->ca_file);
		rv = ing_tls_openssl_error(e, ING_EINVAL, what);
	}
	if (rv == 0 && t->cert_file != NULL &&
	    SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
		snprintf(what, sizeof(what), "TLS certificate '%s': not a PEM certificate",
		         t->cert_file);
		rv = ing_tls_openssl_error(e, ING_EINVAL, what);
	}
	if (rv == 0 && t->key_file != NULL &&
	    SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what),
		         "TLS key '%s': not a PEM private key, or not the key of '%s'", t->key_file,
		         t->cert_file);
		rv = ing_tls_openssl_error(e, ING_EINVAL, what);
	}
	if (rv == 0 && t->cert_file != NULL && SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof(what), "TLS key '%s' does not belong to certificate '%s'",
		         t->key_file, t->cert_file);
		rv = ing_tls_openssl_error(e, ING_EINVAL, what);
	}
	if (rv == 0 && t->cert_file != NULL)
		rv = check_chain(ctx, t, e);
	if (rv != 0) {
		SSL_CTX_free(ctx);
		return rv;
	}
	if (t->key_file != NULL) {
		struct stat st;
		if (stat(t->key_file, &st) == 0 && (st.st_mode & 077) != 0)
			ING_LOG_WARN("tls key file is readable by others file=%s mode=%03o "
			             "(chmod 600 it)",
			             t->key_file, (unsigned)(st.st_mode & 0777));
	}
	memset(&t->own, 0, sizeof(t->own));
	t->cert_not_after = 0;
	t->ca_not_after = ca_not_after(ctx);
	if (t->cert_file != NULL) {
		char why[160];
		X509 *own = SSL_CTX_get0_certificate(ctx);
		describe_cert(own, t->describe, sizeof(t->describe));
		t->cert_not_after = not_after_unix(own);
		if (identity_from_cert(own, &t->own, why, sizeof(why)) != 0) {
			SSL_CTX_free(ctx);
			return ing_error_set(e, ING_EINVAL, "TLS certificate '%s': %s",
			                     t->cert_file, why);
		}
	} else {
		snprintf(t->describe, sizeof(t->describe), "no certificate, ca=%s", t->ca_file);
	}
	ERR_clear_error();
	*out = ctx;
	return 0;
}

static void tls_free_strings(struct ing_tls *t)
{
	free(t->ca_file);
	free(t->cert_file);
	free(t->key_file);
}

int ing_tls_new(const struct ing_tls_config *cfg, struct ing_tls **out, struct ing_error *e)
{
	if (cfg == NULL || cfg->ca_file == NULL || cfg->ca_file[0] == '\0')
		return ing_error_set(e, ING_EINVAL, "TLS: a CA file is required");
	if ((cfg->cert_file == NULL) != (cfg->key_file == NULL))
		return ing_error_set(e, ING_EINVAL,
		                     "TLS: a certificate and its key go together (got only the %s)",
		                     cfg->cert_file != NULL ? "certificate" : "key");
	struct ing_tls *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	t->client_certs = cfg->client_certs;
	t->ca_file = strdup(cfg->ca_file);
	t->cert_file = cfg->cert_file != NULL ? strdup(cfg->cert_file) : NULL;
	t->key_file = cfg->key_file != NULL ? strdup(cfg->key_file) : NULL;
	if (t->ca_file == NULL || (cfg->cert_file != NULL && t->cert_file == NULL) ||
	    (cfg->key_file != NULL && t->key_file == NULL)) {
		tls_free_strings(t);
		free(t);
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	int rv = load_ctx(t, &t->ctx, e);
	if (rv != 0) {
		tls_free_strings(t);
		free(t);
		return rv;
	}
	*out = t;
	return 0;
}

int ing_tls_reload(struct ing_tls *t, struct ing_error *e)
{
	SSL_CTX *ctx;
	char old[sizeof(t->describe)];
	struct ing_tls_identity old_own = t->own;
	int64_t old_cert = t->cert_not_after, old_ca = t->ca_not_after;
	memcpy(old, t->describe, sizeof(old));
	int rv = load_ctx(t, &ctx, e);
	if (rv != 0) {
		memcpy(t->describe, old, sizeof(old));
		t->own = old_own;
		t->cert_not_after = old_cert;
		t->ca_not_after = old_ca;
		return rv;
	}
	SSL_CTX_free(t->ctx); /* open sessions hold their own reference */
	t->ctx = ctx;
	return 0;
}

void ing_tls_free(struct ing_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	tls_free_strings(t);
	free(t);
}

bool ing_tls_has_cert(const struct ing_tls *t)
{
	return t->cert_file != NULL;
}

void ing_tls_describe(const struct ing_tls *t, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", t->describe);
}

void ing_tls_not_after(const struct ing_tls *t, int64_t *cert, int64_t *ca)
{
	*cert = t->cert_not_after;
	*ca = t->ca_not_after;
}

void ing_tls_own_identity(const struct ing_tls *t, struct ing_tls_identity *out)
{
	*out = t->own;
}

/* ---- sessions ---------------------------------------------------------- */

/* ingot's rule on top of OpenSSL's chain verification, at the leaf. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
	if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
		return ok;
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct ing_tls_session *s = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	struct ing_tls_identity id;
	char why[160];
	if (s == NULL)
		return ok;
	if (identity_from_cert(X509_STORE_CTX_get_current_cert(x), &id, why, sizeof(why)) != 0) {
		snprintf(s->reject, sizeof(s->reject), "%s", why);
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

int ing_tls_session_new(struct ing_tls *t, const struct ing_tls_session_options *o,
                        struct ing_tls_session **out, struct ing_error *e)
{
	struct ing_tls_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	ERR_clear_error();
	s->role = o->role;
	s->ssl = SSL_new(t->ctx);
	s->rbio = BIO_new(BIO_s_mem());
	s->wbio = BIO_new(BIO_s_mem());
	if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
		BIO_free(s->rbio);
		BIO_free(s->wbio);
		SSL_free(s->ssl);
		free(s);
		return ing_tls_openssl_error(e, ING_ENOMEM, "TLS: cannot create a session");
	}
	BIO_set_mem_eof_return(s->rbio, -1); /* empty means "retry", never EOF */
	SSL_set_bio(s->ssl, s->rbio, s->wbio);
	SSL_set_app_data(s->ssl, s);
	if (o->role == ING_TLS_CONNECT) {
		SSL_set_connect_state(s->ssl);
		SSL_set_verify(s->ssl, SSL_VERIFY_PEER, verify_cb);
		if (o->expect_ip != NULL) {
			snprintf(s->expect_ip, sizeof(s->expect_ip), "%s", o->expect_ip);
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), o->expect_ip) !=
			    1) {
				ing_tls_session_free(s);
				ERR_clear_error();
				return ing_error_set(
				    e, ING_EINVAL, "TLS: '%s' is not an IP address", o->expect_ip);
			}
		}
	} else {
		int mode = SSL_VERIFY_PEER;
		if (o->require_peer_cert || t->client_certs == ING_TLS_CLIENT_CERTS_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_set_accept_state(s->ssl);
		SSL_set_verify(s->ssl, mode, verify_cb);
	}
	*out = s;
	return 0;
}

void ing_tls_session_free(struct ing_tls_session *s)
{
	if (s == NULL)
		return;
	SSL_free(s->ssl); /* frees both BIOs */
	free(s);
}

int ing_tls_session_input(struct ing_tls_session *s, const void *data, size_t len)
{
	size_t written;
	if (len == 0)
		return 0;
	if (BIO_write_ex(s->rbio, data, len, &written) != 1 || written != len) {
		ERR_clear_error();
		return ING_ENOMEM;
	}
	return 0;
}

/* The one translation of a session's OpenSSL failure; the session dies. */
static int session_fail(struct ing_tls_session *s, int ssl_err, struct ing_error *e)
{
	unsigned long err = ERR_peek_error();
	int reason = ERR_GET_REASON(err);
	long vr = SSL_get_verify_result(s->ssl);
	const char *peer = s->role == ING_TLS_CONNECT ? "server" : "client";
	int code = ING_EMALFORMED;
	char detail[160] = "";
	if (err != 0)
		ERR_error_string_n(err, detail, sizeof(detail));

	if (s->reject[0] != '\0') {
		code = ing_error_set(e, ING_EDENIED, "the %s's certificate was refused: %s", peer,
		                     s->reject);
	} else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
		const char *hint = "";
		if (vr == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
		    vr == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
		    vr == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
			hint = " (issued by another CA?)";
		if (vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
			code =
			    ing_error_set(e, ING_EDENIED,
			                  "the server's certificate does not name %s (reissue it "
			                  "with --address %s)",
			                  s->expect_ip, s->expect_ip);
		} else {
			code = ing_error_set(e, ING_EDENIED,
			                     "the %s's certificate is not trusted: %s%s", peer,
			                     X509_verify_cert_error_string(vr), hint);
		}
	} else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		code = ing_error_set(e, ING_EDENIED,
		                     "the client sent no certificate, and one is required");
	} else if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED) {
		code = ing_error_set(e, ING_EDENIED,
		                     "the server requires a client certificate (give a certificate "
		                     "and key)");
	} else if (reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
	           reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
	           reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ||
	           reason == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
	           reason == SSL_R_TLSV1_ALERT_ACCESS_DENIED) {
		code = ing_error_set(e, ING_EDENIED,
		                     "the %s refused this side's certificate (%s): is it issued by "
		                     "the cluster's CA, and still valid?",
		                     peer, detail);
	} else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
	           reason == SSL_R_HTTPS_PROXY_REQUEST || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
	           reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_UNKNOWN_PROTOCOL ||
	           reason == SSL_R_RECORD_LENGTH_MISMATCH ||
	           reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) {
		code = ing_error_set(e, ING_EMALFORMED, "the %s does not speak TLS 1.3 (%s)", peer,
		                     detail);
	} else if (ssl_err == SSL_ERROR_SSL || ssl_err == SSL_ERROR_SYSCALL) {
		code = ing_error_set(e, ING_EMALFORMED, "TLS failed: %s",
		                     detail[0] != '\0' ? detail : "protocol error");
	} else {
		code = ing_error_set(e, ING_EMALFORMED, "TLS failed (error %d)", ssl_err);
	}
	ERR_clear_error();
	s->dead_code = code;
	snprintf(s->dead_msg, sizeof(s->dead_msg), "%s", e != NULL ? e->msg : "TLS failed");
	return code;
}

static void session_note_peer(struct ing_tls_session *s)
{
	X509 *cert = SSL_get0_peer_certificate(s->ssl);
	char why[160];
	memset(&s->peer, 0, sizeof(s->peer));
	/* verify_cb already refused a certificate this cannot read. */
	if (cert != NULL && SSL_get_verify_result(s->ssl) == X509_V_OK &&
	    identity_from_cert(cert, &s->peer, why, sizeof(why)) != 0)
		memset(&s->peer, 0, sizeof(s->peer));
}

int ing_tls_session_read(struct ing_tls_session *s, void *buf, size_t cap, size_t *got,
                         struct ing_error *e)
{
	*got = 0;
	if (s->dead_code != 0)
		return ing_error_set(e, s->dead_code, "%s", s->dead_msg);
	ERR_clear_error();
	if (!s->established) {
		int r = SSL_do_handshake(s->ssl);
		if (r != 1) {
			int err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				ERR_clear_error();
				return 0;
			}
			return session_fail(s, err, e);
		}
		s->established = true;
		session_note_peer(s);
	}
	if (cap == 0)
		return 0;
	size_t n = 0;
	int r = SSL_read_ex(s->ssl, buf, cap, &n);
	if (r == 1) {
		*got = n;
		return 0;
	}
	int err = SSL_get_error(s->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return 0;
	}
	if (err == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		s->dead_code = ING_EUNAVAILABLE;
		snprintf(s->dead_msg, sizeof(s->dead_msg), "the peer closed the TLS session");
		return ing_error_set(e, ING_EUNAVAILABLE, "%s", s->dead_msg);
	}
	return session_fail(s, err, e);
}

int ing_tls_session_write(struct ing_tls_session *s, const void *data, size_t len,
                          struct ing_error *e)
{
	if (s->dead_code != 0)
		return ing_error_set(e, s->dead_code, "%s", s->dead_msg);
	if (!s->established)
		return ing_error_set(e, ING_ECONFLICT, "TLS handshake not finished");
	if (len == 0)
		return 0;
	ERR_clear_error();
	size_t written = 0;
	if (SSL_write_ex(s->ssl, data, len, &written) != 1 || written != len)
		return session_fail(s, SSL_get_error(s->ssl, 0), e);
	return 0;
}

size_t ing_tls_session_pending(const struct ing_tls_session *s)
{
	return BIO_ctrl_pending(s->wbio);
}

int ing_tls_session_take(struct ing_tls_session *s, char **data, size_t *len)
{
	size_t n = BIO_ctrl_pending(s->wbio);
	*data = NULL;
	*len = 0;
	if (n == 0)
		return 0;
	char *p = malloc(n);
	if (p == NULL)
		return ING_ENOMEM;
	size_t got = 0;
	if (BIO_read_ex(s->wbio, p, n, &got) != 1 || got != n) {
		ERR_clear_error();
		free(p);
		return ING_ENOMEM;
	}
	*data = p;
	*len = n;
	return 0;
}

void ing_tls_session_shutdown(struct ing_tls_session *s)
{
	if (s->established && s->dead_code == 0)
		SSL_shutdown(s->ssl);
	ERR_clear_error();
}

bool ing_tls_session_established(const struct ing_tls_session *s)
{
	return s->established && s->dead_code == 0;
}

const struct ing_tls_identity *ing_tls_session_peer(const struct ing_tls_session *s)
{
	return &s->peer;
}
