/*
 * events.c: writing events as JSON lines.
 *
 * Owns sp_events_*.  Each event is one line appended with a single write,
 * so concurrent writers (the daemon and the command line) never interleave
 * within a line.  Event ids are 16 random octets in hex.
 */
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct sp_events {
    int fd;          /* events.jsonl, O_APPEND */
    bool echo;       /* also write each event to the log */
    sp_store *store; /* also add each event here, when set */
};

void
sp_events_set_store(sp_events *events, sp_store *store)
{
    events->store = store;
}

/* Every event type; the last ones are reserved for work to come. */
static const char *const event_types[] = {
    "injection",        "delivery",           "delay",    "bounce", "expired",
    "policy_rejection", "generation_failure", "dkim_key",
};

bool
sp_event_types_valid(const char *list)
{
    for (const char *at = list; *at != '\0';) {
        size_t len = strcspn(at, ",");
        bool known = false;

        for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]);
             i++)
            known = known || (strlen(event_types[i]) == len &&
                              strncmp(at, event_types[i], len) == 0);
        if (!known)
            return false;
        at += len + (at[len] == ',');
    }
    return true;
}

bool
sp_event_row(json_t *event, sp_store_event *row)
{
    const char *when = json_string_value(json_object_get(event, "timestamp"));

    row->id = json_string_value(json_object_get(event, "event_id"));
    row->type = json_string_value(json_object_get(event, "type"));
    row->timestamp_ms = when ? sp_event_time_ms(when) : -1;
    row->recipient = json_string_value(json_object_get(event, "rcpt_to"));
    row->queue_id = json_string_value(json_object_get(event, "queue_id"));
    row->campaign_id = json_string_value(json_object_get(event, "campaign_id"));
    return row->id != NULL && row->type != NULL && row->timestamp_ms >= 0;
}

/* Add the event line to the store, when there is one. */
static int
events_store(sp_events *events, const char *line, sp_error *err)
{
    json_t *event = events->store ? json_loads(line, 0, NULL) : NULL;
    sp_store_event row;
    int rc;

    if (events->store == NULL)
        return SP_OK;
    if (event == NULL || !sp_event_row(event, &row)) {
        json_decref(event);
        return sp_err_set(err, SP_ENOMEM, "out of memory storing an event");
    }
    row.json = line;
    rc = sp_store_events_add(events->store, &row, 1, err);
    json_decref(event);
    return rc;
}

int
sp_events_open(const char *data_dir, bool echo, sp_events **out, sp_error *err)
{
    sp_events *events;
    char path[4096];
    int fd;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/events.jsonl", data_dir);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_err_set(err, SP_EIO, "%s: %s", path, strerror(errno));
    events = sp_calloc(1, sizeof(*events));
    if (events == NULL) {
        close(fd);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    events->fd = fd;
    events->echo = echo;
    *out = events;
    return SP_OK;
}

/* A fresh event id: 32 hex digits. */
static void
events_id(char id[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        memset(raw, 0, sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++) {
        id[2 * i] = hex[raw[i] >> 4];
        id[2 * i + 1] = hex[raw[i] & 15];
    }
    id[32] = '\0';
}

/* Now as UTC with milliseconds: 2026-12-03T16:40:01.123Z. */
static void
events_timestamp(char text[40])
{
    struct timespec now;
    struct tm utc;
    char seconds[24];

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    strftime(seconds, sizeof(seconds), "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(text, 40, "%s.%03dZ", seconds, (int)(now.tv_nsec / 1000000));
}

char *
sp_event_text(const char *type, json_t *fields)
{
    char id[33], when[40];
    char *text;

    if (fields == NULL || !json_is_object(fields)) {
        json_decref(fields);
        return NULL;
    }
    events_id(id);
    events_timestamp(when);
    json_object_set_new(fields, "event_id", json_string(id));
    json_object_set_new(fields, "type", json_string(type));
    json_object_set_new(fields, "timestamp", json_string(when));
    text = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(fields);
    return text;
}

int64_t
sp_event_time_ms(const char *timestamp)
{
    struct tm utc = {0};
    const char *rest = strptime(timestamp, "%Y-%m-%dT%H:%M:%S", &utc);
    int ms = 0;

    if (rest == NULL || sscanf(rest, ".%3dZ", &ms) != 1 || ms < 0)
        return -1;
    return (int64_t)timegm(&utc) * 1000 + ms;
}

int
sp_events_emit(sp_events *events, const char *type, json_t *fields,
               sp_error *err)
{
    char *line;
    size_t len;
    ssize_t put;
    int rc;

    if (fields == NULL || !json_is_object(fields)) {
        json_decref(fields);
        return sp_err_set(err, SP_EINVAL, "an event needs an object");
    }
    line = sp_event_text(type, fields);
    if (line == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory writing an event");

    /* One write per line, so lines from several writers never mix. */
    len = strlen(line);
    line[len] = '\n';
    put = write(events->fd, line, len + 1);
    line[len] = '\0';
    if (events->echo)
        sp_log_info("event %s", line);
    if (put != (ssize_t)(len + 1)) {
        free(line);
        return sp_err_set(err, SP_EIO, "writing an event: %s",
                          put < 0 ? strerror(errno) : "short write");
    }
    rc = events_store(events, line, err);
    free(line);
    return rc;
}

void
sp_events_close(sp_events *events)
{
    if (events == NULL)
        return;
    close(events->fd);
    sp_free(events);
}
