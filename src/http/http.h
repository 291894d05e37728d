/*
 * http.h: the public face of sealpost's HTTP API (libmicrohttpd).
 *
 * What it owns: a server on one address, on threads of its own, that
 * authenticates each request by an API key (the key itself in the
 * Authorization header, as SparkPost's clients send it), routes it, and
 * answers JSON: results as {"results": ...}, errors as
 * {"errors": [{"message": "..."}]} with a status that says what went
 * wrong.  The routes, and the scope of API key each needs
 * (sp_store_apikey_allows):
 *
 *   GET /api/v1/events/message   read: the event store (doc/events.md),
 *                                with filters and cursor pagination
 *   GET /api/v1/metrics/deliverability
 *                                read: counts of events by type, over
 *                                time or by recipient domain
 *   GET, POST /api/v1/webhooks   webhooks: list them, register one
 *   GET, DELETE /api/v1/webhooks/ID
 *                                webhooks: show one, remove it
 *
 * Known limit: plain HTTP only, so the daemon listens on loopback
 * addresses alone (TLS for the API comes with a certificate setting of
 * its own).
 */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include "base/base.h"
#include "config/config.h"
#include "keys/keys.h"
#include "store/store.h"

#include <sys/socket.h>

typedef struct sp_http sp_http;

typedef struct sp_http_options {
    const struct sockaddr *address; /* where to listen */
    sp_store *store;         /* API keys and events; thread-safe, borrowed */
    const sp_config *config; /* for the master key; borrowed */
    unsigned threads;        /* request threads; 0 for 2 */
} sp_http_options;

/*
 * Listen and serve until sp_http_stop.  SP_EIO (err says why: the
 * address in use, no permission), SP_ENOMEM, or the key manager's errors
 * (the master key seals the secrets of webhooks made over the API).
 */
int sp_http_start(const sp_http_options *options, sp_http **out, sp_error *err);

/* Stop serving: requests in progress finish first. */
void sp_http_stop(sp_http *http);

#endif /* SP_HTTP_H */
