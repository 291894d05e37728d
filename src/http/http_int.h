/*
 * http_int.h: what the files of the HTTP module share.
 *
 *   server.c        sp_http_*: the server, routing, authentication,
 *                   request bodies, replies
 *   api_events.c    http__events: GET /api/v1/events/message;
 *                   http__metrics: GET /api/v1/metrics/deliverability
 *   api_webhooks.c  http__webhooks_*: /api/v1/webhooks
 *   render.c        http__render: substitution in content
 *   api_transmissions.c
 *                   http__transmissions_create: POST /api/v1/transmissions
 *   api_templates.c http__templates_*: /api/v1/templates
 *   api_keys.c  http__rkeys_*: /api/v1/recipient-keys
 */
#ifndef SP_HTTP_INT_H
#define SP_HTTP_INT_H

#include "http.h"

#include <jansson.h>

/* A request's parameters, for handlers: NULL when absent. */
typedef const char *(*http__param_fn)(void *request, const char *name);

/* What a handler is given: one request, its body whole. */
typedef struct http__call {
    struct sp_http *http;
    const sp_store_apikey *key; /* the caller's */
    const char *client_ip;
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
 * Set reply to status and body's compact text, taking body's reference;
 * a 500 without a body when body is NULL or memory runs out.
 */
void http__json(http__reply *reply, unsigned status, json_t *body);

/*
 * Set reply to an error: status and {"errors": [{"message": text}]}.
 * Returns false when memory ran out (then status is 500, body NULL).
 */
bool http__error(http__reply *reply, unsigned status, const char *text);

/*
 * Set reply to an error as SparkPost words them: {"errors": [{"message",
 * "description", "code"}]}.  description may be NULL.
 */
void http__fail(http__reply *reply, unsigned status, const char *code,
                const char *message, const char *description);

/*
 * The request body as a JSON object, or NULL with a 400 in reply saying
 * where the parser stopped (or that it is not an object).  json_decref.
 */
json_t *http__body_json(const http__call *call, http__reply *reply);

/* The server's settings, injector and host name, for handlers. */
const sp_config *http__config(const http__call *call);
const sp_http_injector *http__injector(const http__call *call);
const char *http__hostname(const http__call *call);

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

/*
 * Render text[0..len) with data (an object) into out, escaping values for
 * HTML when html is set (render.c says the language), writing at most
 * max_out octets (0: no limit).  Each name that had no value is appended
 * to unknown (an array of strings) once.  SP_EINVAL with error set for a
 * malformed template, SP_ELIMIT with error set when the output or the
 * work passes its limit, SP_ENOMEM.
 */
int http__render(const char *text, size_t len, const json_t *data, bool html,
                 size_t max_out, json_t *unknown, sp_buf *out, char *error,
                 size_t error_size);

/* POST /api/v1/transmissions. */
void http__transmissions_create(const http__call *call, http__reply *reply);

/*
 * Whether content (a template's) is what a transmission's content may
 * be, inline; false with a 422 naming the member in reply.
 */
bool http__content_valid(const http__call *call, json_t *content,
                         http__reply *reply);

/* /api/v1/templates: POST, GET; /api/v1/templates/ID: GET, PUT, DELETE. */
void http__templates_create(const http__call *call, http__reply *reply);
void http__templates_list(const http__call *call, http__reply *reply);
void http__templates_show(const http__call *call, http__reply *reply);
void http__templates_update(const http__call *call, http__reply *reply);
void http__templates_delete(const http__call *call, http__reply *reply);
void http__rkeys_create(const http__call *call, http__reply *reply);
void http__rkeys_list(const http__call *call, http__reply *reply);
void http__rkeys_delete(const http__call *call, http__reply *reply);

#endif /* SP_HTTP_INT_H */
