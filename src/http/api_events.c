/*
 * api_events.c: GET /api/v1/events/message, the event store over HTTP.
 *
 * Owns http__events.  Parameters, as SparkPost's Events API names them:
 *
 *   events         types, comma-separated (delivery,bounce)
 *   recipients     addresses, comma-separated
 *   message_ids    queue ids, comma-separated
 *   campaign_ids   comma-separated
 *   from, to       timestamps: 2026-12-04T10:00, ...:00Z or ...:00.000Z
 *   cursor         "initial" (the default) or links.next's value
 *   per_page       1 to 10000, 1000 by default
 *
 * The answer is {"results": [events, oldest first], "links": {"next":
 * "/api/v1/events/message?cursor=..."}}, links.next only while a page came
 * full.  A parameter with a bad value is a 400 naming it.
 *
 * Also owns http__metrics, GET /api/v1/metrics/deliverability: from
 * (needed) and to as above, precision (1min, 5min, 15min, hour, day) for
 * a time series; the answer is {"results": {"totals": {...},
 * "time_series": [{"ts": ..., counts}], "domains": [{"domain": ...,
 * counts}]}}, each counts object "count_" and the metric of each type
 * (count_injected, count_delivered, count_bounce, count_delayed,
 * count_expired, ...).
 */
#include "http_int.h"

#include "events/events.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENTS_PER_PAGE     1000
#define EVENTS_MAX_PER_PAGE 10000

/* The page being written: the events' texts joined into one array. */
struct events_page {
    sp_buf body;
    int64_t cursor; /* the last event's */
    size_t count;
    int rc;
};

static void
events_add(void *arg, int64_t cursor, const char *json)
{
    struct events_page *page = arg;

    if (page->rc == SP_OK && page->count > 0)
        page->rc = sp_buf_append(&page->body, ",", 1);
    if (page->rc == SP_OK)
        page->rc = sp_buf_append(&page->body, json, strlen(json));
    page->cursor = cursor;
    page->count++;
}

/* A timestamp as the API takes it, in milliseconds; -1 when it is not. */
static int64_t
events_time(const char *text)
{
    static const char *const formats[] = {
        "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"};
    int64_t ms = sp_event_time_ms(text);

    for (size_t i = 0; ms < 0 && i < sizeof(formats) / sizeof(formats[0]);
         i++) {
        struct tm utc = {0};
        const char *rest = strptime(text, formats[i], &utc);

        if (rest != NULL && *rest == '\0')
            ms = (int64_t)timegm(&utc) * 1000;
    }
    return ms;
}

/* Append a query parameter, percent-encoding all but unreserved octets. */
static int
events_query(sp_buf *out, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = sp_buf_printf(out, "&%s=", name);

    for (const unsigned char *at = (const unsigned char *)value;
         rc == SP_OK && *at != '\0'; at++) {
        char encoded[4] = {'%', hex[*at >> 4], hex[*at & 15], '\0'};
        bool plain = (*at >= 'a' && *at <= 'z') || (*at >= 'A' && *at <= 'Z') ||
                     (*at >= '0' && *at <= '9') || strchr("-._~@,:", *at);

        rc = plain ? sp_buf_append(out, (const char *)at, 1)
                   : sp_buf_append(out, encoded, 3);
    }
    return rc;
}

/* Read the parameters into filter; false with reply set when one is bad. */
static bool
events_filter(http__param_fn param, void *request,
              sp_store_event_filter *filter, http__reply *reply)
{
    const char *from = param(request, "from"), *to = param(request, "to");
    const char *cursor = param(request, "cursor");
    const char *per_page = param(request, "per_page");
    char *end = NULL;

    filter->type = param(request, "events");
    filter->recipient = param(request, "recipients");
    filter->queue_id = param(request, "message_ids");
    filter->campaign_id = param(request, "campaign_ids");
    filter->limit = EVENTS_PER_PAGE;
    if (filter->type != NULL && !sp_event_types_valid(filter->type))
        return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                            "events: a type it names is not an event type");
    if (from != NULL && (filter->from_ms = events_time(from)) < 0)
        return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                            "from: a time such as 2026-12-04T10:00Z");
    if (to != NULL && (filter->to_ms = events_time(to)) < 0)
        return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                            "to: a time such as 2026-12-04T10:00Z");
    if (cursor != NULL && strcmp(cursor, "initial") != 0) {
        filter->after = strtoll(cursor, &end, 10);
        if (end == cursor || *end != '\0' || filter->after < 0)
            return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                                "cursor: \"initial\" or the value of "
                                "links.next");
    }
    if (per_page != NULL) {
        long long value = strtoll(per_page, &end, 10);

        if (end == per_page || *end != '\0' || value < 1 ||
            value > EVENTS_MAX_PER_PAGE)
            return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                                "per_page: a number from 1 to 10000");
        filter->limit = (size_t)value;
    }
    return true;
}

/* The link to the page after this one, with the same filters. */
static int
events_next(http__param_fn param, void *request, int64_t cursor, sp_buf *out)
{
    static const char *const kept[] = {
        "events", "recipients", "message_ids", "campaign_ids",
        "from",   "to",         "per_page"};
    int rc = sp_buf_printf(out,
                           "],\"links\":{\"next\":\"/api/v1/events/message?"
                           "cursor=%lld",
                           (long long)cursor);

    for (size_t i = 0; rc == SP_OK && i < sizeof(kept) / sizeof(kept[0]); i++)
        if (param(request, kept[i]) != NULL)
            rc = events_query(out, kept[i], param(request, kept[i]));
    if (rc == SP_OK)
        rc = sp_buf_append(out, "\"}}", 3);
    return rc;
}

void
http__events(const http__call *call, http__reply *reply)
{
    http__param_fn param = call->param;
    void *request = call->request;
    sp_store_event_filter filter = {0};
    struct events_page page = {.body = SP_BUF_INIT};
    sp_error err;

    if (!events_filter(param, request, &filter, reply))
        return;
    page.rc = sp_buf_append(&page.body, "{\"results\":[", 12);
    if (page.rc == SP_OK &&
        sp_store_events_find(call->store, &filter, events_add, &page, &err) !=
            SP_OK) {
        sp_buf_free(&page.body);
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the event store cannot be read just now; try again");
        return;
    }

    /* A full page may have more behind it; a short one is the last. */
    if (page.rc == SP_OK && page.count == filter.limit)
        page.rc = events_next(param, request, page.cursor, &page.body);
    else if (page.rc == SP_OK)
        page.rc = sp_buf_append(&page.body, "],\"links\":{}}", 13);
    if (page.rc != SP_OK) {
        sp_buf_free(&page.body);
        http__error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    reply->status = MHD_HTTP_OK;
    reply->body = strdup(page.body.data);
    sp_buf_free(&page.body);
    if (reply->body == NULL)
        http__error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
}

/* The metric a type counts under: SparkPost's names where they exist. */
static void
metrics_name(const char *type, char *out, size_t size)
{
    static const char *const names[][2] = {
        {"injection", "count_injected"}, {"delivery", "count_delivered"},
        {"bounce", "count_bounce"},      {"delay", "count_delayed"},
        {"expired", "count_expired"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(type, names[i][0]) == 0) {
            snprintf(out, size, "%s", names[i][1]);
            return;
        }
    snprintf(out, size, "count_%s", type);
}

/* What the counts are gathered into. */
struct metrics {
    json_t *totals;  /* {"count_...": n} */
    json_t *groups;  /* time buckets or domains, in order */
    const char *key; /* "ts" or "domain" */
    bool by_domain;
};

/* Add count to object's metric for type. */
static void
metrics_add(json_t *object, const char *type, int64_t count)
{
    char name[64];

    metrics_name(type, name, sizeof(name));
    json_object_set_new(
        object, name,
        json_integer(json_integer_value(json_object_get(object, name)) +
                     count));
}

/* One group's count of one type (from sp_store_events_count). */
static void
metrics_row(void *arg, int64_t bucket, const char *domain, const char *type,
            int64_t count)
{
    struct metrics *metrics = arg;
    size_t last = json_array_size(metrics->groups);
    json_t *group = last ? json_array_get(metrics->groups, last - 1) : NULL;
    char when[40];
    time_t seconds = (time_t)(bucket / 1000);
    struct tm utc;

    if (metrics->by_domain)
        snprintf(when, sizeof(when), "%s", domain ? domain : "");
    else {
        gmtime_r(&seconds, &utc);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &utc);
    }
    if (group == NULL ||
        strcmp(json_string_value(json_object_get(group, metrics->key)), when) !=
            0) {
        group = json_pack("{s:s}", metrics->key, when);
        json_array_append_new(metrics->groups, group);
    }
    metrics_add(group, type, count);
    if (!metrics->by_domain)
        metrics_add(metrics->totals, type, count);
}

/* Read from, to and precision; false with reply set when one is bad. */
static bool
metrics_params(http__param_fn param, void *request, int64_t *from_ms,
               int64_t *to_ms, int64_t *bucket_ms, http__reply *reply)
{
    static const struct {
        const char *name;
        int64_t ms;
    } precisions[] = {
        {"1min", 60000},   {"5min", 300000},  {"15min", 900000},
        {"hour", 3600000}, {"day", 86400000},
    };
    const char *from = param(request, "from"), *to = param(request, "to");
    const char *precision = param(request, "precision");

    *from_ms = from ? events_time(from) : -1;
    *to_ms = to ? events_time(to) : 0;
    *bucket_ms = 0;
    if (*from_ms < 0)
        return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                            "from: a time such as 2026-12-04T10:00Z "
                            "(needed)");
    if (*to_ms < 0)
        return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                            "to: a time such as 2026-12-04T10:00Z");
    for (size_t i = 0;
         precision && i < sizeof(precisions) / sizeof(precisions[0]); i++)
        if (strcmp(precision, precisions[i].name) == 0)
            *bucket_ms = precisions[i].ms;
    if (precision != NULL && *bucket_ms == 0)
        return !http__error(reply, MHD_HTTP_BAD_REQUEST,
                            "precision: 1min, 5min, 15min, hour or day");
    return true;
}

void
http__metrics(const http__call *call, http__reply *reply)
{
    int64_t from_ms, to_ms, bucket_ms;
    struct metrics by_time = {.key = "ts"};
    struct metrics by_domain = {.key = "domain", .by_domain = true};
    json_t *results;
    sp_error err;
    int rc;

    if (!metrics_params(call->param, call->request, &from_ms, &to_ms,
                        &bucket_ms, reply))
        return;
    by_time.totals = json_object();
    by_time.groups = json_array();
    by_domain.groups = json_array();
    rc = sp_store_events_count(call->store, from_ms, to_ms, bucket_ms, false,
                               metrics_row, &by_time, &err);
    if (rc == SP_OK)
        rc = sp_store_events_count(call->store, from_ms, to_ms, 0, true,
                                   metrics_row, &by_domain, &err);
    results =
        json_pack("{s:{s:o, s:o, s:o}}", "results", "totals", by_time.totals,
                  "time_series", bucket_ms ? by_time.groups : json_array(),
                  "domains", by_domain.groups);
    if (bucket_ms == 0)
        json_decref(by_time.groups);
    if (rc != SP_OK) {
        json_decref(results);
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the event store cannot be read just now; try again");
        return;
    }
    http__json(reply, MHD_HTTP_OK, results);
}
