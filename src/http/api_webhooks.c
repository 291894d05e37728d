/*
 * api_webhooks.c: /api/v1/webhooks, the endpoints events are POSTed to,
 * managed over HTTP as "sealpost webhooks" manages them.
 *
 * Owns http__webhooks_list, _create, _show and _delete:
 *
 *   GET    /api/v1/webhooks      {"results": [webhook, ...]}
 *   POST   /api/v1/webhooks      {"name", "target", "events": [...]};
 *                                200 {"results": {"id", "name",
 *                                "secret"}}, the secret shown this once
 *   GET    /api/v1/webhooks/ID   {"results": webhook}
 *   DELETE /api/v1/webhooks/ID   204
 *
 * A webhook reads as sp_webhook_json writes it.  "events" left out or
 * empty means every type.  A body that is not such an object is a 400
 * naming what is wrong; an unknown ID is a 404.
 */
#include "http_int.h"

#include "events/events.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answer status with {"results": results} (whose reference this takes). */
static void
webhooks_reply(http__reply *reply, unsigned status, json_t *results)
{
    http__json(reply, status,
               results ? json_pack("{s:o}", "results", results) : NULL);
}

/* Every webhook, or a 503 in reply; free with sp_store_webhooks_free. */
static bool
webhooks_all(const http__call *call, sp_store_webhook **hooks, size_t *count,
             http__reply *reply)
{
    sp_error err;

    if (sp_store_webhook_list(call->store, hooks, count, &err) == SP_OK)
        return true;
    http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                "the webhook list cannot be read just now; try again");
    return false;
}

/* The webhook whose id is call->id, or NULL with a 404 in reply. */
static const sp_store_webhook *
webhooks_find(const http__call *call, const sp_store_webhook *hooks,
              size_t count, http__reply *reply)
{
    char id[24];

    for (size_t i = 0; i < count; i++) {
        snprintf(id, sizeof(id), "%lld", (long long)hooks[i].id);
        if (strcmp(id, call->id) == 0)
            return &hooks[i];
    }
    http__error(reply, MHD_HTTP_NOT_FOUND, "no webhook with that id");
    return NULL;
}

void
http__webhooks_list(const http__call *call, http__reply *reply)
{
    sp_store_webhook *hooks = NULL;
    size_t count = 0;
    json_t *results = json_array();

    if (!webhooks_all(call, &hooks, &count, reply)) {
        json_decref(results);
        return;
    }
    for (size_t i = 0; results != NULL && i < count; i++)
        if (json_array_append_new(results, sp_webhook_json(&hooks[i])) != 0) {
            json_decref(results);
            results = NULL;
        }
    sp_store_webhooks_free(hooks, count);
    webhooks_reply(reply, MHD_HTTP_OK, results);
}

void
http__webhooks_show(const http__call *call, http__reply *reply)
{
    sp_store_webhook *hooks = NULL;
    size_t count = 0;
    const sp_store_webhook *hook;

    if (!webhooks_all(call, &hooks, &count, reply))
        return;
    hook = webhooks_find(call, hooks, count, reply);
    if (hook != NULL)
        webhooks_reply(reply, MHD_HTTP_OK, sp_webhook_json(hook));
    sp_store_webhooks_free(hooks, count);
}

void
http__webhooks_delete(const http__call *call, http__reply *reply)
{
    sp_store_webhook *hooks = NULL;
    size_t count = 0;
    const sp_store_webhook *hook;
    sp_error err;
    int rc;

    if (!webhooks_all(call, &hooks, &count, reply))
        return;
    hook = webhooks_find(call, hooks, count, reply);
    if (hook != NULL) {
        rc = sp_store_webhook_remove(call->store, hook->name, &err);
        if (rc == SP_OK)
            reply->status = MHD_HTTP_NO_CONTENT;
        else if (rc == SP_ENOTFOUND)
            http__error(reply, MHD_HTTP_NOT_FOUND, "no webhook with that id");
        else
            http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "the webhook cannot be removed just now; try again");
    }
    sp_store_webhooks_free(hooks, count);
}

/*
 * Read the body's name, target and events into hook; false with a 400 in
 * reply when the body is not such an object.
 */
static bool
webhooks_parse(const http__call *call, sp_store_webhook *hook,
               http__reply *reply)
{
    json_t *body = http__body_json(call, reply);
    json_t *name = json_object_get(body, "name");
    json_t *target = json_object_get(body, "target");
    json_t *events = json_object_get(body, "events");
    json_t *type;
    size_t index;
    bool ok = false;

    if (body == NULL)
        ; /* the reply says why */
    else if (!json_is_string(name) ||
             json_string_length(name) >= sizeof(hook->name))
        http__error(reply, MHD_HTTP_BAD_REQUEST,
                    "name: a string of 1 to 63 characters (needed)");
    else if (!json_is_string(target) ||
             json_string_length(target) >= sizeof(hook->url))
        http__error(reply, MHD_HTTP_BAD_REQUEST,
                    "target: an http:// or https:// URL (needed)");
    else if (events != NULL && !json_is_array(events))
        http__error(reply, MHD_HTTP_BAD_REQUEST,
                    "events: an array of event types");
    else
        ok = true;
    if (ok) {
        snprintf(hook->name, sizeof(hook->name), "%s", json_string_value(name));
        snprintf(hook->url, sizeof(hook->url), "%s", json_string_value(target));
    }

    /* The types, as the store keeps them: one comma-separated list. */
    json_array_foreach(ok ? events : NULL, index, type) {
        size_t used = strlen(hook->events);
        const char *text = json_string_value(type);

        if (text == NULL || strchr(text, ',') != NULL ||
            used + strlen(text) + 2 > sizeof(hook->events)) {
            http__error(reply, MHD_HTTP_BAD_REQUEST,
                        "events: an array of event types");
            ok = false;
            break;
        }
        snprintf(hook->events + used, sizeof(hook->events) - used, "%s%s",
                 used ? "," : "", text);
    }
    json_decref(body);
    return ok;
}

void
http__webhooks_create(const http__call *call, http__reply *reply)
{
    sp_store_webhook hook = {.sealed = SP_BUF_INIT};
    char secret[SP_WEBHOOK_SECRET_SIZE];
    sp_keys *keys;
    sp_error err;
    int rc;

    if (!webhooks_parse(call, &hook, reply))
        return;

    keys = http__keys_lock(call);
    rc = sp_webhook_add(keys, &hook, secret, &err);
    http__keys_unlock(call);
    sp_buf_free(&hook.sealed);

    if (rc == SP_EINVAL)
        http__error(reply, MHD_HTTP_BAD_REQUEST, err.text);
    else if (rc != SP_OK)
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the webhook cannot be stored just now; try again");
    else {
        char id[24];

        snprintf(id, sizeof(id), "%lld", (long long)hook.id);
        webhooks_reply(reply, MHD_HTTP_OK,
                       json_pack("{s:s, s:s, s:s}", "id", id, "name", hook.name,
                                 "secret", secret));
    }
    memset(secret, 0, sizeof(secret));
}
