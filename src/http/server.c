/*
 * server.c: the HTTP server: libmicrohttpd on threads of its own,
 * authentication by API key, routing, and the JSON replies.
 *
 * Owns sp_http_*, http__error.  Every request needs a valid API key in
 * the Authorization header (the key alone, or after "Bearer "); only its
 * hash is looked up in the store.  Requests other than the routes of
 * http.h get 404, other methods 405, both as JSON.
 */
#include "http_int.h"

#include "crypt/crypt.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_CONNECTION_LIMIT 256
#define HTTP_TIMEOUT_S        30

struct sp_http {
    struct MHD_Daemon *daemon;
    sp_store *store;
};

bool
http__error(http__reply *reply, unsigned status, const char *text)
{
    json_t *body = json_pack("{s:[{s:s}]}", "errors", "message", text);

    reply->status = status;
    reply->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (reply->body == NULL)
        reply->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    return reply->body != NULL;
}

/* A request parameter from the query string (http__param_fn). */
static const char *
http_param(void *request, const char *name)
{
    return MHD_lookup_connection_value(request, MHD_GET_ARGUMENT_KIND, name);
}

/* Whether the request carries a valid API key; fills reply if not. */
static bool
http_authorized(const struct sp_http *http, struct MHD_Connection *connection,
                http__reply *reply)
{
    const char *key = MHD_lookup_connection_value(
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    unsigned char hash[32];
    sp_store_apikey found;
    sp_error err;
    int rc;

    if (key != NULL && strncasecmp(key, "Bearer ", 7) == 0)
        key += 7;
    if (key == NULL || key[0] == '\0') {
        http__error(reply, MHD_HTTP_UNAUTHORIZED,
                    "an API key is needed in the Authorization header");
        return false;
    }
    sp_crypt_apikey_hash(key, strlen(key), hash);
    rc = sp_store_apikey_find(http->store, hash, &found, &err);
    if (rc == SP_OK && sp_store_apikey_allows(&found, "read"))
        return true;
    if (rc == SP_OK) {
        http__error(reply, MHD_HTTP_FORBIDDEN,
                    "this API key may not read events (its scopes: "
                    "send); make one with --scope read");
        return false;
    }
    if (rc == SP_ENOTFOUND)
        http__error(reply, MHD_HTTP_UNAUTHORIZED,
                    "the API key is not valid (unknown or revoked)");
    else
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the key store cannot be read just now; try again");
    return false;
}

/* Send reply (or a bare 500 when it has no body). */
static enum MHD_Result
http_send(struct MHD_Connection *connection, http__reply *reply)
{
    static char fallback[] = "{\"errors\":[{\"message\":\"out of memory\"}]}";
    struct MHD_Response *response;
    enum MHD_Result result;

    if (reply->body != NULL)
        response = MHD_create_response_from_buffer(
            strlen(reply->body), reply->body, MHD_RESPMEM_MUST_FREE);
    else {
        reply->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        response = MHD_create_response_from_buffer(strlen(fallback), fallback,
                                                   MHD_RESPMEM_PERSISTENT);
    }
    if (response == NULL) {
        free(reply->body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    result = MHD_queue_response(connection, reply->status, response);
    MHD_destroy_response(response);
    return result;
}

/* Every request: authenticate, route, answer. */
static enum MHD_Result
http_request(void *cls, struct MHD_Connection *connection, const char *url,
             const char *method, const char *version, const char *upload,
             size_t *upload_size, void **state)
{
    struct sp_http *http = cls;
    http__reply reply = {0};

    (void)version;
    (void)upload;

    /* A body (none of today's routes takes one) is read and dropped. */
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    *state = NULL;

    if (!http_authorized(http, connection, &reply))
        return http_send(connection, &reply);
    if (strcmp(url, "/api/v1/events/message") != 0 &&
        strcmp(url, "/api/v1/metrics/deliverability") != 0)
        http__error(&reply, MHD_HTTP_NOT_FOUND, "no such resource");
    else if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        http__error(&reply, MHD_HTTP_METHOD_NOT_ALLOWED,
                    "this resource takes GET");
    else if (strcmp(url, "/api/v1/events/message") == 0)
        http__events(http->store, http_param, connection, &reply);
    else
        http__metrics(http->store, http_param, connection, &reply);
    return http_send(connection, &reply);
}

int
sp_http_start(const sp_http_options *options, sp_http **out, sp_error *err)
{
    sp_http *http = sp_calloc(1, sizeof(*http));

    *out = NULL;
    if (http == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    http->store = options->store;
    http->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
        http_request, http, MHD_OPTION_SOCK_ADDR, options->address,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(options->threads ? options->threads : 2),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_END);
    if (http->daemon == NULL) {
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
    sp_free(http);
}
