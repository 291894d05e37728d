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
 *   POST /api/v1/transmissions   send: messages built from content and
 *                                recipients (doc/transmissions.md),
 *                                handed to the daemon through the
 *                                injector below
 *   GET, POST /api/v1/templates  templates: list them, store one
 *   GET, PUT, DELETE /api/v1/templates/ID
 *                                templates: show, change, delete one
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

typedef struct sp_http_batch sp_http_batch;

/*
 * How the API hands messages to the daemon: the same signing, checks and
 * spool as a message submitted over SMTP.  Called on the server's
 * threads; each function is thread-safe.
 */
typedef struct sp_http_injector {
    void *arg;

    /*
     * Begin a transmission for the API key named identity, which may send
     * only from domains ("" for any), from client_ip.  The transmission's
     * id is written to id.  NULL when memory runs out.
     */
    sp_http_batch *(*begin)(void *arg, const char *identity,
                            const char *domains, const char *client_ip,
                            char id[32]);

    /*
     * Hand one message over, for recipient from sender, with the fields
     * its events carry (a JSON object's text), to be delivered from
     * not_before_ms on (0: at once).  Waits while many are in flight.
     * SP_OK: taken, its fate told by finish; otherwise err says why and
     * nothing was taken.
     */
    int (*add)(sp_http_batch *batch, const char *sender, const char *recipient,
               const char *data, size_t len, const char *event_fields,
               int64_t not_before_ms, sp_error *err);

    /*
     * A recipient whose message could not be made (reason says why): a
     * generation_failure event, counted as refused.
     */
    void (*fail)(sp_http_batch *batch, const char *sender,
                 const char *recipient, const char *event_fields,
                 const char *reason);

    /*
     * Wait until every message taken is durable or refused; write how
     * many were each and the first refusal's reason ("" for none), and
     * free batch.
     */
    void (*finish)(sp_http_batch *batch, size_t *accepted, size_t *refused,
                   char *why, size_t why_size);
} sp_http_injector;

typedef struct sp_http_options {
    const struct sockaddr *address; /* where to listen */
    sp_store *store;         /* API keys and events; thread-safe, borrowed */
    const sp_config *config; /* for the master key; borrowed */
    const char *hostname;    /* for Message-IDs; borrowed */
    const sp_http_injector *injector; /* NULL: transmissions refused */
    unsigned threads;                 /* request threads; 0 for 2 */
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
