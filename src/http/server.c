/*
 * server.c: the HTTP server: libmicrohttpd on threads of its own,
 * routing, authentication by API key, request bodies, and the replies.
 *
 * Owns sp_http_*, http__json, http__error, http__fail, http__keys_lock and
 * _unlock, and the accessors http__config, _injector and _hostname.  Each
 * request is matched against the route table first (404 for an unknown path,
 * 405 naming the methods a known one takes), then needs a valid API key in the
 * Authorization header (the key alone, or after "Bearer ") holding the route's
 * scope; only the key's hash is looked up in the store.  A refused request is
 * answered before its body is read.  A body is gathered up to the route's limit
 * (413 past that: a mebibyte, 64 for transmissions with their attachments) and
 * handed to the route's handler whole.
 */
#include "http_int.h"

#include "mail/mail.h"

#include "crypt/crypt.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_CONNECTION_LIMIT 1024
#define HTTP_TIMEOUT_S        10
#define HTTP_BODY_SMALL       (1024 * 1024)      /* most routes */
#define HTTP_BODY_LARGE       (64 * 1024 * 1024) /* transmissions */

struct sp_http {
    struct MHD_Daemon *daemon;
    sp_store *store;
    const sp_config *config;
    const sp_http_injector *injector;
    char hostname[256];
    sp_keys *keys; /* the master key, for webhook secrets; under keys_lock */
    pthread_mutex_t keys_lock;
};

/* A route: a method and a path, or a path prefix followed by an id. */
struct http_route {
    const char *method;
    const char *path;
    bool takes_id; /* path ends in '/'; the id is the one segment after */
    const char *scope;
    size_t body_max; /* octets; a larger body is a 413 */
    void (*handler)(const http__call *call, http__reply *reply);
};

static const struct http_route http_routes[] = {
    {"GET", "/api/v1/events/message", false, "read", HTTP_BODY_SMALL,
     http__events},
    {"GET", "/api/v1/metrics/deliverability", false, "read", HTTP_BODY_SMALL,
     http__metrics},
    {"GET", "/api/v1/webhooks", false, "webhooks", HTTP_BODY_SMALL,
     http__webhooks_list},
    {"POST", "/api/v1/webhooks", false, "webhooks", HTTP_BODY_SMALL,
     http__webhooks_create},
    {"GET", "/api/v1/webhooks/", true, "webhooks", HTTP_BODY_SMALL,
     http__webhooks_show},
    {"DELETE", "/api/v1/webhooks/", true, "webhooks", HTTP_BODY_SMALL,
     http__webhooks_delete},
    {"POST", "/api/v1/transmissions", false, "send", HTTP_BODY_LARGE,
     http__transmissions_create},
    {"GET", "/api/v1/templates", false, "templates", HTTP_BODY_SMALL,
     http__templates_list},
    {"POST", "/api/v1/templates", false, "templates", HTTP_BODY_LARGE,
     http__templates_create},
    {"GET", "/api/v1/templates/", true, "templates", HTTP_BODY_SMALL,
     http__templates_show},
    {"PUT", "/api/v1/templates/", true, "templates", HTTP_BODY_LARGE,
     http__templates_update},
    {"DELETE", "/api/v1/templates/", true, "templates", HTTP_BODY_SMALL,
     http__templates_delete},
    {"GET", "/api/v1/recipient-keys", false, "keys", HTTP_BODY_SMALL,
     http__rkeys_list},
    {"POST", "/api/v1/recipient-keys", false, "keys", HTTP_BODY_SMALL,
     http__rkeys_create},
    {"DELETE", "/api/v1/recipient-keys/", true, "keys", HTTP_BODY_SMALL,
     http__rkeys_delete},
};

#define HTTP_ROUTES (sizeof(http_routes) / sizeof(http_routes[0]))

/* One request in progress: its route, and the body as it arrives. */
struct http_request {
    const struct http_route *route;
    const char *id;
    sp_store_apikey key; /* the caller's */
    char client_ip[48];
    sp_buf body;
    bool too_large;
};

void
http__json(http__reply *reply, unsigned status, json_t *body)
{
    reply->status = status;
    reply->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (reply->body == NULL)
        reply->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
}

bool
http__error(http__reply *reply, unsigned status, const char *text)
{
    http__json(reply, status,
               json_pack("{s:[{s:s}]}", "errors", "message", text));
    return reply->body != NULL;
}

void
http__fail(http__reply *reply, unsigned status, const char *code,
           const char *message, const char *description)
{
    json_t *error = json_pack("{s:s, s:s}", "message", message, "code", code);
    json_t *body;

    if (error != NULL && description != NULL)
        json_object_set_new(error, "description", json_string(description));
    body = error ? json_pack("{s:[o]}", "errors", error) : NULL;
    http__json(reply, status, body);
}

json_t *
http__body_json(const http__call *call, http__reply *reply)
{
    json_error_t error;
    json_t *body = json_loadb(call->body, call->body_len, 0, &error);
    char description[220];

    if (json_is_object(body))
        return body;
    if (body != NULL)
        snprintf(description, sizeof(description),
                 "the body is JSON but not an object");
    else if (strstr(error.text, "NUL") != NULL)
        snprintf(description, sizeof(description),
                 "line %d: a string holds a NUL character (\\u0000)",
                 error.line);
    else
        snprintf(description, sizeof(description), "line %d, column %d: %s",
                 error.line, error.column, error.text);
    json_decref(body);
    http__fail(reply, MHD_HTTP_BAD_REQUEST, "1200",
               "the body is not a JSON object", description);
    return NULL;
}

const sp_config *
http__config(const http__call *call)
{
    return call->http->config;
}

const sp_http_injector *
http__injector(const http__call *call)
{
    return call->http->injector;
}

const char *
http__hostname(const http__call *call)
{
    return call->http->hostname;
}

sp_keys *
http__keys_lock(const http__call *call)
{
    pthread_mutex_lock(&call->http->keys_lock);
    return call->http->keys;
}

void
http__keys_unlock(const http__call *call)
{
    pthread_mutex_unlock(&call->http->keys_lock);
}

/* A request parameter from the query string (http__param_fn). */
static const char *
http_param(void *request, const char *name)
{
    return MHD_lookup_connection_value(request, MHD_GET_ARGUMENT_KIND, name);
}

/* Whether path is route's; *id set for routes that take one. */
static bool
http_route_matches(const struct http_route *route, const char *path,
                   const char **id)
{
    size_t len = strlen(route->path);

    if (!route->takes_id)
        return strcmp(path, route->path) == 0;
    if (strncmp(path, route->path, len) != 0 || path[len] == '\0' ||
        strchr(path + len, '/') != NULL)
        return false;
    *id = path + len;
    return true;
}

/* The route for method and path; NULL with reply set (404, 405). */
static const struct http_route *
http_route(const char *method, const char *path, const char **id,
           http__reply *reply)
{
    char allowed[64] = "";

    for (size_t i = 0; i < HTTP_ROUTES; i++) {
        if (!http_route_matches(&http_routes[i], path, id))
            continue;
        if (strcmp(method, http_routes[i].method) == 0)
            return &http_routes[i];
        snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed),
                 "%s%s", allowed[0] ? " or " : "", http_routes[i].method);
    }
    if (allowed[0] == '\0')
        http__error(reply, MHD_HTTP_NOT_FOUND, "no such resource");
    else {
        char text[128];

        snprintf(text, sizeof(text), "this resource takes %s", allowed);
        http__error(reply, MHD_HTTP_METHOD_NOT_ALLOWED, text);
    }
    return NULL;
}

/* Whether the request carries a valid key with scope; reply set if not. */
static bool
http_authorized(const struct sp_http *http, struct MHD_Connection *connection,
                const char *scope, sp_store_apikey *found, http__reply *reply)
{
    const char *key = MHD_lookup_connection_value(
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    unsigned char hash[32];
    sp_error err;
    char text[160];
    int rc;

    if (key != NULL && strncasecmp(key, "Bearer ", 7) == 0)
        key += 7;
    if (key == NULL || key[0] == '\0') {
        http__error(reply, MHD_HTTP_UNAUTHORIZED,
                    "an API key is needed in the Authorization header");
        return false;
    }
    sp_crypt_apikey_hash(key, strlen(key), hash);
    rc = sp_store_apikey_find(http->store, hash, found, &err);
    if (rc == SP_OK && sp_store_apikey_allows(found, scope))
        return true;
    if (rc == SP_OK) {
        snprintf(text, sizeof(text),
                 "this API key lacks the %s scope (it has: %s); make one "
                 "with --scope %s",
                 scope, found->scopes, scope);
        http__error(reply, MHD_HTTP_FORBIDDEN, text);
    } else if (rc == SP_ENOTFOUND)
        http__error(reply, MHD_HTTP_UNAUTHORIZED,
                    "the API key is not valid (unknown or revoked)");
    else
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the key store cannot be read just now; try again");
    return false;
}

/* Send reply: its body, none for 204, or a bare 500 when it has none. */
static enum MHD_Result
http_send(struct MHD_Connection *connection, http__reply *reply)
{
    static char fallback[] = "{\"errors\":[{\"message\":\"out of memory\"}]}";
    struct MHD_Response *response;
    enum MHD_Result result;

    if (reply->body != NULL)
        response = MHD_create_response_from_buffer(
            strlen(reply->body), reply->body, MHD_RESPMEM_MUST_FREE);
    else if (reply->status == MHD_HTTP_NO_CONTENT)
        response = MHD_create_response_from_buffer(0, fallback,
                                                   MHD_RESPMEM_PERSISTENT);
    else {
        reply->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        response = MHD_create_response_from_buffer(strlen(fallback), fallback,
                                                   MHD_RESPMEM_PERSISTENT);
    }
    if (response == NULL) {
        free(reply->body);
        return MHD_NO;
    }
    if (reply->status != MHD_HTTP_NO_CONTENT)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
    result = MHD_queue_response(connection, reply->status, response);
    MHD_destroy_response(response);
    return result;
}

/*
 * Whether the body the request declares (Content-Length) fits the
 * route's limit; a 413 in reply, before any of it is read, if not.
 */
static bool
http_length_fits(struct MHD_Connection *connection,
                 const struct http_route *route, http__reply *reply)
{
    const char *length = MHD_lookup_connection_value(
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL, text[80];
    unsigned long long declared;

    if (length == NULL)
        return true;
    declared = strtoull(length, &end, 10);
    if (end != length && *end == '\0' && declared <= route->body_max)
        return true;
    snprintf(text, sizeof(text), "the request body is over %zu MiB",
             route->body_max >> 20);
    http__error(reply, MHD_HTTP_CONTENT_TOO_LARGE, text);
    return false;
}

/* The client's address as text, or "" when it cannot be had. */
static void
http_client_ip(struct MHD_Connection *connection, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *address = info ? info->client_addr : NULL;

    out[0] = '\0';
    if (address != NULL && address->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)address)->sin_addr,
                  out, (socklen_t)size);
    else if (address != NULL && address->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)address)->sin6_addr,
                  out, (socklen_t)size);
}

/*
 * Every request, called several times: first with its headers (route,
 * authenticate, or refuse at once), then with each part of its body, then
 * once more with none left (answer).
 */
static enum MHD_Result
http_request(void *cls, struct MHD_Connection *connection, const char *url,
             const char *method, const char *version, const char *upload,
             size_t *upload_size, void **state)
{
    struct sp_http *http = cls;
    struct http_request *request = *state;
    http__reply reply = {0};
    const struct http_route *route;
    const char *id = NULL;

    (void)version;

    /* The headers: route and authenticate before any body is read. */
    if (request == NULL) {
        sp_store_apikey key;

        route = http_route(method, url, &id, &reply);
        if (route == NULL ||
            !http_authorized(http, connection, route->scope, &key, &reply) ||
            !http_length_fits(connection, route, &reply))
            return http_send(connection, &reply);
        request = sp_calloc(1, sizeof(*request));
        if (request == NULL)
            return MHD_NO;
        request->route = route;
        request->id = id;
        request->key = key;
        http_client_ip(connection, request->client_ip,
                       sizeof(request->client_ip));
        request->body = (sp_buf)SP_BUF_INIT;
        *state = request;
        return MHD_YES;
    }

    /* A part of the body: kept up to the limit, dropped past it. */
    if (*upload_size > 0) {
        if (request->body.len + *upload_size > request->route->body_max)
            request->too_large = true;
        else if (sp_buf_append(&request->body, upload, *upload_size) != SP_OK)
            request->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }

    if (request->too_large) {
        char text[80];

        snprintf(text, sizeof(text), "the request body is over %zu MiB",
                 request->route->body_max >> 20);
        http__error(&reply, MHD_HTTP_CONTENT_TOO_LARGE, text);
    } else {
        http__call call = {
            .http = http,
            .key = &request->key,
            .client_ip = request->client_ip,
            .store = http->store,
            .param = http_param,
            .request = connection,
            .id = request->id,
            .body = request->body.data ? (const char *)request->body.data : "",
            .body_len = request->body.len,
        };

        request->route->handler(&call, &reply);
    }
    return http_send(connection, &reply);
}

/* When a request is over, however it ended: free what it gathered. */
static void
http_completed(void *cls, struct MHD_Connection *connection, void **state,
               enum MHD_RequestTerminationCode code)
{
    struct http_request *request = *state;

    (void)cls;
    (void)connection;
    (void)code;
    if (request == NULL)
        return;
    sp_buf_free(&request->body);
    sp_free(request);
    *state = NULL;
}

int
sp_http_start(const sp_http_options *options, sp_http **out, sp_error *err)
{
    sp_http *http = sp_calloc(1, sizeof(*http));
    int rc;

    *out = NULL;
    if (http == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    http->store = options->store;
    http->config = options->config;
    http->injector = options->injector;
    snprintf(http->hostname, sizeof(http->hostname), "%s",
             options->hostname ? options->hostname : "localhost");
    sp_mail_compose_init();
    pthread_mutex_init(&http->keys_lock, NULL);
    rc = sp_keys_open(options->config, true, &http->keys, err);
    if (rc != SP_OK) {
        pthread_mutex_destroy(&http->keys_lock);
        sp_free(http);
        return rc;
    }

    http->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
        http_request, http, MHD_OPTION_SOCK_ADDR, options->address,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, NULL,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(options->threads ? options->threads : 2),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_END);
    if (http->daemon == NULL) {
        sp_keys_close(http->keys);
        pthread_mutex_destroy(&http->keys_lock);
        sp_free(http);
        return sp_err_set(err, SP_EIO,
                          "http: cannot listen (address in use, or not "
                          "ours)");
    }
    *out = http;
    return SP_OK;
}

void
sp_http_stop(sp_http *http)
{
    if (http == NULL)
        return;
    MHD_stop_daemon(http->daemon);
    sp_keys_close(http->keys);
    pthread_mutex_destroy(&http->keys_lock);
    sp_free(http);
}
