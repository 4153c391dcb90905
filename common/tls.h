/*
 * tls.h - TLS 1.3 for every ingot connection, with OpenSSL 3 doing all of
 * the cryptography (nothing here is hand-written crypto).
 *
 * Shared by rpc/ (the API server and the client library) and raft/ (the
 * peer transport), which must not include each other: this is the one
 * place that loads certificates, drives a TLS session and says who the
 * peer is.  common/ links OpenSSL for it; it knows nothing of sockets or
 * libuv.  A session is a pure byte-in / byte-out engine over OpenSSL memory
 * BIOs, so each caller pumps it from its own event loop without blocking
 * sockets or threads.
 *
 * Identities (docs/operations.md, "Certificates"): ingot's offline PKI
 * (`ingotctl pki`) writes the identity into a subjectAltName URI:
 *   ingot:node:<raft id>    a node certificate (server and client use)
 *   ingot:client:<name>     a client certificate (client use)
 * A certificate carries at most one such URI; one with two or more is
 * refused at the handshake.  A verified certificate without any is kind
 * ING_TLS_PEER_OTHER and named by its subject CN.
 *
 * Lifetimes: a `struct ing_tls` belongs to whoever made it and must
 * outlive every session made from it.  ing_tls_reload swaps the context
 * that new sessions use; sessions already open keep the one they started
 * with (OpenSSL counts the references), so a reload drops no connection.
 *
 * Nothing here is thread-safe per object; distinct objects may be used on
 * distinct threads.
 */
#ifndef INGOT_COMMON_TLS_H
#define INGOT_COMMON_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ING_TLS_NODE_URI_PREFIX   "ingot:node:"
#define ING_TLS_CLIENT_URI_PREFIX "ingot:client:"
#define ING_TLS_NAME_MAX          128
/* A client name: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
#define ING_TLS_CLIENT_NAME_MAX 64

/* Whether a server asks its clients for a certificate, and requires one. */
enum ing_tls_client_certs {
	ING_TLS_CLIENT_CERTS_OPTIONAL = 0, /* verified when sent; none is fine */
	ING_TLS_CLIENT_CERTS_REQUIRED = 1, /* none: the handshake fails */
};

struct ing_tls_config {
	const char *ca_file;   /* PEM: the CA(s) peers must chain to; required */
	const char *cert_file; /* PEM: this side's certificate (chain); NULL: none */
	const char *key_file;  /* PEM: its private key; required with cert_file */
	enum ing_tls_client_certs client_certs; /* as a server */
};

struct ing_tls;

/*
 * Loads the files of cfg (paths copied) into a TLS 1.3 context.  The
 * certificate must match the key and chain to the CA.  Errors: ING_EINVAL
 * (a file missing, unreadable, not PEM, key not matching the certificate,
 * certificate not issued by the CA, key without certificate), ING_ENOMEM;
 * e names the file and says what is wrong.
 */
int ing_tls_new(const struct ing_tls_config *cfg, struct ing_tls **out, struct ing_error *e);

/*
 * Reads the same files again (e.g. on SIGHUP).  On success new sessions
 * use the new certificate, key and CA; on error nothing changes and e says
 * why (errors as ing_tls_new).
 */
int ing_tls_reload(struct ing_tls *t, struct ing_error *e);

/* Frees t (NULL is fine).  Sessions made from it must be freed first. */
void ing_tls_free(struct ing_tls *t);

/* True when t has a certificate of its own (cert_file was given). */
bool ing_tls_has_cert(const struct ing_tls *t);

/* One line about t's own certificate for logs: "subject=... not_after=...". */
void ing_tls_describe(const struct ing_tls *t, char *buf, size_t cap);

/* When t's own certificate (0 without one) and the first certificate of
 * its CA file to end (0: none read) stop being valid, in Unix seconds, as
 * of the last successful load. */
void ing_tls_not_after(const struct ing_tls *t, int64_t *cert, int64_t *ca);

struct ing_tls_identity;
/* The identity t's own certificate names (kind ING_TLS_PEER_NONE without
 * a certificate), as of the last successful load. */
void ing_tls_own_identity(const struct ing_tls *t, struct ing_tls_identity *out);

/* ---- who the peer is --------------------------------------------------- */

enum ing_tls_peer_kind {
	ING_TLS_PEER_NONE = 0,   /* no certificate (plaintext, or none sent) */
	ING_TLS_PEER_NODE = 1,   /* ingot:node:<id> */
	ING_TLS_PEER_CLIENT = 2, /* ingot:client:<name> */
	ING_TLS_PEER_OTHER = 3,  /* verified, no ingot identity: named by CN */
};

/* A verified peer certificate's identity.  Plain value. */
struct ing_tls_identity {
	enum ing_tls_peer_kind kind;
	uint64_t node_id;            /* kind NODE: the raft id (>= 1) */
	char name[ING_TLS_NAME_MAX]; /* CLIENT: its name; NODE: "node <id>";
	                              * OTHER: subject CN ("" when none) */
};

/* True when p[0..n) is a valid client name (ING_TLS_CLIENT_NAME_MAX). */
bool ing_tls_client_name_valid(const char *p, size_t n);

/* "node 3", "client alice", "cert CN=foo", "no certificate". */
void ing_tls_identity_format(const struct ing_tls_identity *id, char *buf, size_t cap);

/* ---- sessions ---------------------------------------------------------- */

enum ing_tls_role { ING_TLS_CONNECT, ING_TLS_ACCEPT };

struct ing_tls_session_options {
	enum ing_tls_role role;
	/* CONNECT: the server's certificate must name this IPv4 address in a
	 * subjectAltName (NULL: no name check; callers then check the
	 * identity themselves, e.g. the raft id). */
	const char *expect_ip;
	/* ACCEPT: require a client certificate whatever the context says
	 * (peer transport: always mutual). */
	bool require_peer_cert;
};

struct ing_tls_session;

/* A session on t's current context.  ING_ENOMEM, ING_EINVAL (expect_ip is
 * not an IPv4 address). */
int ing_tls_session_new(struct ing_tls *t, const struct ing_tls_session_options *o,
                        struct ing_tls_session **out, struct ing_error *e);
void ing_tls_session_free(struct ing_tls_session *s);

/* Hands ciphertext received from the peer to the session (copied).
 * ING_ENOMEM. */
int ing_tls_session_input(struct ing_tls_session *s, const void *data, size_t len);

/*
 * Advances the handshake with the input given so far, then decrypts up to
 * cap bytes of application data into buf.  0 with *got bytes (0: nothing
 * more until more input arrives; a CONNECT session produces its first
 * handshake message on the first call).  After every call, send what
 * ing_tls_session_take gives.  Errors (the session is then dead):
 *   ING_EUNAVAILABLE  the peer ended the session (close_notify)
 *   ING_EDENIED       a certificate was refused: the peer's (not trusted,
 *                     wrong name, none when one is required, two ingot
 *                     identities) or ours (the peer's alert says so)
 *   ING_EMALFORMED    not TLS 1.3, or a protocol error
 *   ING_ENOMEM
 * with a message for people in e.
 */
int ing_tls_session_read(struct ing_tls_session *s, void *buf, size_t cap, size_t *got,
                         struct ing_error *e);

/* Encrypts all of data (established sessions only: ING_ECONFLICT before).
 * ING_ENOMEM, ING_EIO. */
int ing_tls_session_write(struct ing_tls_session *s, const void *data, size_t len,
                          struct ing_error *e);

/* Ciphertext waiting to be sent, in bytes. */
size_t ing_tls_session_pending(const struct ing_tls_session *s);

/* Moves the waiting ciphertext into *data (malloc'd, caller frees) and
 * *len; *data NULL and *len 0 when there is none.  ING_ENOMEM. */
int ing_tls_session_take(struct ing_tls_session *s, char **data, size_t *len);

/* Queues a close_notify alert (send it with ing_tls_session_take). */
void ing_tls_session_shutdown(struct ing_tls_session *s);

/* True once the handshake completed (from this side's point of view). */
bool ing_tls_session_established(const struct ing_tls_session *s);

/* The verified peer, valid once established (kind NONE before, or when the
 * peer sent no certificate). */
const struct ing_tls_identity *ing_tls_session_peer(const struct ing_tls_session *s);

/* ---- OpenSSL errors ---------------------------------------------------- */

/*
 * The one translation of OpenSSL's error queue into ours: sets e to
 * `code` with "<what>: <OpenSSL's reason>" (or just what when the queue is
 * empty), clears the queue and returns code.
 */
int ing_tls_openssl_error(struct ing_error *e, int code, const char *what);

#endif
