/*
 * http_int.h: what the files of the HTTP module share.
 *
 *   server.c        sp_http_*: the server, routing, authentication,
 *                   request bodies, replies
 *   api_events.c    http__events: GET /api/v1/events/message;
 *                   http__metrics: GET /api/v1/metrics/deliverability
 *   api_webhooks.c  http__webhooks_*: /api/v1/webhooks
 */
#ifndef SP_HTTP_INT_H
#define SP_HTTP_INT_H

#include "http.h"

/* A request's parameters, for handlers: NULL when absent. */
typedef const char *(*http__param_fn)(void *request, const char *name);

/* What a handler is given: one request, its body whole. */
typedef struct http__call {
    struct sp_http *http;
    sp_store *store;      /* thread-safe */
    http__param_fn param; /* the query string's parameters */
    void *request;        /* for param */
    const char *id;       /* the path's id, for routes that take one */
    const char *body;     /* "" when none; NUL-terminated */
    size_t body_len;
} http__call;

/* What a handler answers: a status and a JSON body (owned, malloc'd). */
typedef struct http__reply {
    unsigned status;
    char *body; /* NULL only with 204 */
} http__reply;

/*
 * Set reply to an error: status and {"errors": [{"message": text}]}.
 * Returns false when memory ran out (then status is 500, body NULL).
 */
bool http__error(http__reply *reply, unsigned status, const char *text);

/*
 * The server's key manager (the master key), for one handler at a time:
 * lock, use, unlock.
 */
sp_keys *http__keys_lock(const http__call *call);
void http__keys_unlock(const http__call *call);

/* GET /api/v1/events/message. */
void http__events(const http__call *call, http__reply *reply);

/* GET /api/v1/metrics/deliverability. */
void http__metrics(const http__call *call, http__reply *reply);

/* GET and POST /api/v1/webhooks, GET and DELETE /api/v1/webhooks/ID. */
void http__webhooks_list(const http__call *call, http__reply *reply);
void http__webhooks_create(const http__call *call, http__reply *reply);
void http__webhooks_show(const http__call *call, http__reply *reply);
void http__webhooks_delete(const http__call *call, http__reply *reply);

#endif /* SP_HTTP_INT_H */
