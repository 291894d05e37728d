/*
 * http_int.h: what the files of the HTTP module share.
 *
 *   server.c      sp_http_*: the server, authentication, routing, replies
 *   api_events.c  http__events: GET /api/v1/events/message;
 *                 http__metrics: GET /api/v1/metrics/deliverability
 */
#ifndef SP_HTTP_INT_H
#define SP_HTTP_INT_H

#include "http.h"

/* A request's parameters, for handlers: NULL when absent. */
typedef const char *(*http__param_fn)(void *request, const char *name);

/* What a handler answers: a status and a JSON body (owned, malloc'd). */
typedef struct http__reply {
    unsigned status;
    char *body;
} http__reply;

/*
 * Set reply to an error: status and {"errors": [{"message": text}]}.
 * Returns false when memory ran out (then status is 500, body NULL).
 */
bool http__error(http__reply *reply, unsigned status, const char *text);

/* GET /api/v1/events/message. */
void http__events(sp_store *store, http__param_fn param, void *request,
                  http__reply *reply);

/* GET /api/v1/metrics/deliverability. */
void http__metrics(sp_store *store, http__param_fn param, void *request,
                   http__reply *reply);

#endif /* SP_HTTP_INT_H */
