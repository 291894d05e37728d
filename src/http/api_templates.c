/*
 * api_templates.c: /api/v1/templates, stored content that transmissions
 * name by content.template_id, in the shape of SparkPost's Templates API.
 *
 * Owns http__templates_*:
 *
 *   POST   /api/v1/templates      {"id", "name", "description",
 *                                 "content"}; id made from name when
 *                                 left out; 200 {"results": {"id"}}
 *   GET    /api/v1/templates      {"results": [template, no content]}
 *   GET    /api/v1/templates/ID   {"results": template with content}
 *   PUT    /api/v1/templates/ID   any of name, description, content
 *   DELETE /api/v1/templates/ID   204
 *
 * A template reads {"id", "name", "description", "published": true,
 * "last_update_time", "created_time"} (times as ISO 8601, UTC), with
 * "content" when one is shown alone.  Content is checked as a
 * transmission's inline content is (http__content_valid), so a template
 * that is stored can be sent.
 */
#include "http_int.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A template's JSON; with_content adds its content. */
static json_t *
templates_json(const sp_store_template *tpl, bool with_content)
{
    char created[32], updated[32];
    time_t when;
    struct tm utc;
    json_t *object;

    when = (time_t)tpl->created;
    gmtime_r(&when, &utc);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%S+00:00", &utc);
    when = (time_t)tpl->updated;
    gmtime_r(&when, &utc);
    strftime(updated, sizeof(updated), "%Y-%m-%dT%H:%M:%S+00:00", &utc);
    object = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "id", tpl->id, "name",
                       tpl->name, "description", tpl->description, "published",
                       1, "last_update_time", updated, "created_time", created);
    if (object != NULL && with_content)
        json_object_set_new(object, "content",
                            json_loads(tpl->content, 0, NULL));
    return object;
}

/* The store could not be reached: a 503. */
static void
templates_unavailable(http__reply *reply)
{
    http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                "the template store cannot be used just now; try again");
}

/* Whether rc, the store's answer about one template, is a failure (a 404
 * or a 503, then set in reply). */
static bool
templates_failed(int rc, http__reply *reply)
{
    if (rc == SP_ENOTFOUND)
        http__fail(reply, MHD_HTTP_NOT_FOUND, "1600", "resource not found",
                   "no template with that id");
    else if (rc != SP_OK)
        templates_unavailable(reply);
    return rc != SP_OK;
}

/* A 422 in SparkPost's words, naming field. */
static bool
templates_invalid(http__reply *reply, const char *field, const char *why)
{
    char description[200];

    snprintf(description, sizeof(description), "%s: %s", field, why);
    http__fail(reply, 422, "1300", "invalid data format/type", description);
    return false;
}

/* An id from a name: lower case, runs of other characters as '-'. */
static void
templates_id_from(const char *name, char *id, size_t size)
{
    size_t used = 0;

    for (const unsigned char *at = (const unsigned char *)name;
         *at != '\0' && used + 1 < size; at++) {
        if (isalnum(*at))
            id[used++] = (char)tolower(*at);
        else if (used > 0 && id[used - 1] != '-')
            id[used++] = '-';
    }
    while (used > 0 && id[used - 1] == '-')
        used--;
    id[used] = '\0';
}

/* Whether id is 1 to 64 of [a-z0-9_-]. */
static bool
templates_id_valid(const char *id)
{
    size_t len = strlen(id);

    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!islower((unsigned char)id[i]) && !isdigit((unsigned char)id[i]) &&
            id[i] != '-' && id[i] != '_')
            return false;
    return true;
}

/*
 * Read the body's name, description and content into tpl (content made
 * compact); need_all: name and content must be there (POST).  false with
 * reply set.
 */
static bool
templates_read(const http__call *call, json_t *body, sp_store_template *tpl,
               bool need_all, http__reply *reply)
{
    json_t *name = json_object_get(body, "name");
    json_t *description = json_object_get(body, "description");
    json_t *content = json_object_get(body, "content");

    if (body == NULL)
        return false; /* http__body_json said why */
    if (name != NULL &&
        (!json_is_string(name) || json_string_length(name) == 0 ||
         json_string_length(name) >= sizeof(tpl->name)))
        return templates_invalid(reply, "name", "1 to 255 octets");
    if (description != NULL &&
        (!json_is_string(description) ||
         json_string_length(description) >= sizeof(tpl->description)))
        return templates_invalid(reply, "description", "up to 255 octets");
    if (need_all && name == NULL) {
        http__fail(reply, 422, "1400", "required field is missing",
                   "name is required");
        return false;
    }
    if (need_all && content == NULL) {
        http__fail(reply, 422, "1400", "required field is missing",
                   "content is required");
        return false;
    }
    if (content != NULL && !http__content_valid(call, content, reply))
        return false;

    if (name != NULL)
        snprintf(tpl->name, sizeof(tpl->name), "%s", json_string_value(name));
    if (description != NULL)
        snprintf(tpl->description, sizeof(tpl->description), "%s",
                 json_string_value(description));
    if (content != NULL) {
        free(tpl->content);
        tpl->content = json_dumps(content, JSON_COMPACT);
        if (tpl->content == NULL) {
            http__error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
            return false;
        }
    }
    return true;
}

void
http__templates_create(const http__call *call, http__reply *reply)
{
    json_t *body = http__body_json(call, reply);
    json_t *id = json_object_get(body, "id");
    sp_store_template tpl = {0};
    sp_error err;
    int rc;

    if (!templates_read(call, body, &tpl, true, reply))
        goto done;
    if (id != NULL && !json_is_string(id)) {
        templates_invalid(reply, "id", "a string");
        goto done;
    }
    if (id != NULL)
        snprintf(tpl.id, sizeof(tpl.id), "%s", json_string_value(id));
    else
        templates_id_from(tpl.name, tpl.id, sizeof(tpl.id));
    if (!templates_id_valid(tpl.id)) {
        templates_invalid(reply, "id",
                          id != NULL ? "1 to 64 of lower-case letters, "
                                       "digits, - and _"
                                     : "the name gives none (it has no "
                                       "letter or digit); give an id");
        goto done;
    }

    rc = sp_store_template_save(call->store, &tpl, true, &err);
    if (rc == SP_EINVAL)
        http__fail(reply, MHD_HTTP_CONFLICT, "1602", "resource conflict",
                   err.text);
    else if (rc != SP_OK)
        templates_unavailable(reply);
    else
        http__json(reply, MHD_HTTP_OK,
                   json_pack("{s:{s:s}}", "results", "id", tpl.id));
done:
    sp_store_template_clear(&tpl);
    json_decref(body);
}

void
http__templates_list(const http__call *call, http__reply *reply)
{
    sp_store_template *list = NULL;
    size_t count = 0;
    json_t *results;
    sp_error err;

    if (sp_store_template_list(call->store, &list, &count, &err) != SP_OK) {
        templates_unavailable(reply);
        return;
    }
    results = json_array();
    for (size_t i = 0; results != NULL && i < count; i++)
        json_array_append_new(results, templates_json(&list[i], false));
    sp_store_templates_free(list, count);
    http__json(reply, MHD_HTTP_OK,
               results ? json_pack("{s:o}", "results", results) : NULL);
}

/* The template of the path's id into tpl; false with reply set. */
static bool
templates_find(const http__call *call, sp_store_template *tpl,
               http__reply *reply)
{
    sp_error err;

    return !templates_failed(
        sp_store_template_get(call->store, call->id, tpl, &err), reply);
}

void
http__templates_show(const http__call *call, http__reply *reply)
{
    sp_store_template tpl;

    if (!templates_find(call, &tpl, reply))
        return;
    http__json(reply, MHD_HTTP_OK,
               json_pack("{s:o*}", "results", templates_json(&tpl, true)));
    sp_store_template_clear(&tpl);
}

void
http__templates_update(const http__call *call, http__reply *reply)
{
    json_t *body = http__body_json(call, reply);
    sp_store_template tpl;
    sp_error err;

    if (body == NULL || !templates_find(call, &tpl, reply)) {
        json_decref(body);
        return;
    }
    if (templates_read(call, body, &tpl, false, reply) &&
        !templates_failed(
            sp_store_template_save(call->store, &tpl, false, &err), reply))
        http__json(reply, MHD_HTTP_OK,
                   json_pack("{s:{s:s}}", "results", "id", tpl.id));
    sp_store_template_clear(&tpl);
    json_decref(body);
}

void
http__templates_delete(const http__call *call, http__reply *reply)
{
    sp_error err;

    if (!templates_failed(sp_store_template_delete(call->store, call->id, &err),
                          reply))
        reply->status = MHD_HTTP_NO_CONTENT;
}
