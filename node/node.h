/*
 * node.h - one ingotd node: the store, the state machine, the replicated
 * log and the API server on one libuv loop.
 */
#ifndef INGOT_NODE_NODE_H
#define INGOT_NODE_NODE_H

#include <uv.h>

#include "common/err.h"
#include "node/config.h"

struct node;

/*
 * Opens the store in cfg->data_dir (created if absent), starts the
 * replicated log (bootstrapping from cfg->peers on first start) and the API
 * server.  cfg is copied.  Errors name what failed: ING_EINVAL (bad
 * config), ING_EUNAVAILABLE (API address in use or not local), ING_ENEWER
 * (store of a newer ingot), ING_ECORRUPT, ING_EIO.
 */
/* `stopped(data, status)` runs once, when the node has released everything
 * after node_stop or a fatal error: status 0, or the fatal error's code (the
 * process should then exit non-zero).  The node is freed by then.  On a
 * failed start it is not called, but the loop must still be run until it
 * has no more handles. */
int node_start(uv_loop_t *loop, const struct node_config *cfg,
               void (*stopped)(void *data, int status), void *data, struct node **out,
               struct ing_error *e);

/*
 * Re-reads the TLS files of the configuration (SIGHUP): new connections of
 * the API, the raft transport, this node's clients and HTTPS use the new
 * certificate, key and CA; open connections keep theirs.  On an error of
 * the OpenSSL checks nothing changes; when only HTTPS refuses the files
 * (GnuTLS), the rest uses them and HTTPS keeps its old ones.  0 (also
 * without TLS: nothing to do), ing_tls_reload's errors with e naming the
 * file, or http_reload_tls's.
 */
int node_reload_tls(struct node *n, struct ing_error *e);

/* Stops serving and closes everything (see node_start's `stopped`). */
void node_stop(struct node *n);
/* SIGTERM: with leave_on_shutdown, asks the cluster to remove this node
 * (the leader transfers its leadership first), then stops; else node_stop. */
void node_shutdown(struct node *n);

#endif
