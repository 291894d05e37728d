/*
 * event_pump.c: moving events from the spool into the event store.
 *
 * Owns daemon_event_pump_*.  The spool commits each event with the
 * submission or delivery outcome it describes (so a terminal event is
 * durable before the spool forgets its message); this thread takes them
 * in batches from a spool handle of its own, adds them to the event
 * store (events.db) in one transaction per batch, and only then tells
 * the spool to forget them.  A crash in between gives the same events
 * again at the next start, and the store keeps each event id once.
 *
 * The thread opens its own store and spool connections, so neither the
 * loop nor the spool's writer ever waits for it.  When there is nothing
 * to move it looks again every PUMP_IDLE_MS.  A store that fails (a full
 * disk) leaves the events in the spool, tried again after PUMP_RETRY_MS.
 * The same thread prunes the store of events older than events_retention,
 * at start and then every hour (or every retention period, if shorter).
 */
#include "daemon.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PUMP_BATCH      1000 /* spool rows (messages' events) per batch */
#define PUMP_EVENTS     8192 /* events a batch stops taking rows at */
#define PUMP_IDLE_MS    100
#define PUMP_RETRY_MS   5000
#define PUMP_PRUNE_MS   (3600 * 1000) /* at most this long between prunes */
#define PUMP_PRUNE_ROWS 10000         /* events deleted per transaction */

struct daemon_event_pump {
    char data_dir[PATH_MAX];
    int64_t retention_ms; /* events older go; 0 keeps them all */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping; /* under lock */
    bool started;
};

/* One batch being moved: the parsed events and what holds their text. */
struct pump_batch {
    sp_store_event *events;
    json_t **parsed;
    size_t count, capacity;
    int64_t last_seq; /* the last spool row read whole */
    bool full;        /* enough taken: the rows after wait */
    bool no_memory;   /* a row could not be held: stop before it */
};

/* Room for more events in batch; false when memory runs out. */
static bool
pump_grow(struct pump_batch *batch, size_t more)
{
    size_t want = batch->count + more, capacity = batch->capacity;
    sp_store_event *events;
    json_t **parsed;

    if (want <= capacity)
        return true;
    while (capacity < want)
        capacity = capacity ? capacity * 2 : 1024;
    events = sp_realloc(batch->events, capacity * sizeof(*events));
    if (events == NULL)
        return false;
    batch->events = events;
    parsed = sp_realloc(batch->parsed, capacity * sizeof(*parsed));
    if (parsed == NULL)
        return false;
    batch->parsed = parsed;
    batch->capacity = capacity;
    return true;
}

/* A spool row: one event per line. */
static void
pump_row(void *arg, int64_t seq, const char *text)
{
    struct pump_batch *batch = arg;
    size_t lines = 1;

    if (batch->full || batch->no_memory)
        return; /* the next batch starts with this row */
    for (const char *at = text; (at = strchr(at, '\n')) != NULL; at++)
        lines++;
    if (!pump_grow(batch, lines)) {
        batch->no_memory = true;
        return;
    }

    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        json_error_t error;
        json_t *event = json_loadb(line, len, 0, &error);

        /* The store keeps the text as it was committed. */
        if (event != NULL && batch->count < batch->capacity &&
            sp_event_row(event, &batch->events[batch->count])) {
            batch->events[batch->count].json = sp_strndup(line, len);
            batch->parsed[batch->count++] = event;
        } else {
            if (len > 0)
                sp_log_warning("event error=\"not an event: %.*s\"",
                               (int)(len < 80 ? len : 80), line);
            json_decref(event);
        }
        line += len + (line[len] == '\n');
    }
    batch->last_seq = seq;
    batch->full = batch->count >= PUMP_EVENTS;
}

/* Empty the batch for the next one, keeping its arrays. */
static void
pump_batch_reset(struct pump_batch *batch)
{
    for (size_t i = 0; i < batch->count; i++) {
        sp_free((char *)batch->events[i].json);
        json_decref(batch->parsed[i]);
    }
    batch->count = 0;
    batch->last_seq = 0;
    batch->full = batch->no_memory = false;
}

/*
 * Move one batch; returns the number of spool rows moved, or -1 when the
 * spool or the store failed (logged).
 */
static int64_t
pump_move(sp_queue *queue, sp_store *store, struct pump_batch *batch)
{
    sp_error err;
    int64_t moved = 0;
    int rc;

    rc = sp_queue_events_take(queue, PUMP_BATCH, pump_row, batch, &err);
    if (rc == SP_OK && batch->no_memory && batch->count == 0)
        rc = sp_err_set(&err, SP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == SP_OK && i < batch->count; i++)
        if (batch->events[i].json == NULL)
            rc = sp_err_set(&err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK && batch->count > 0)
        rc = sp_store_events_add(store, batch->events, batch->count, &err);
    if (rc == SP_OK && batch->last_seq > 0) {
        rc = sp_queue_events_forget(queue, batch->last_seq, &err);
        moved = 1;
    }
    pump_batch_reset(batch);
    if (rc != SP_OK) {
        sp_log_error("events error=\"%s\" note=\"kept in the spool; tried "
                     "again shortly\"",
                     err.text);
        return -1;
    }
    return moved;
}

int64_t
daemon_now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/*
 * Delete the events older than the retention period, in transactions of
 * PUMP_PRUNE_ROWS, until none is left or the pump is told to stop.
 */
static void
pump_prune(struct daemon_event_pump *pump, sp_store *store)
{
    int64_t before = daemon_now_ms() - pump->retention_ms;
    size_t deleted = 0, total = 0;
    bool stopping = false;
    sp_error err;

    do {
        if (sp_store_events_prune(store, before, PUMP_PRUNE_ROWS, &deleted,
                                  &err) != SP_OK) {
            sp_log_error("events error=\"%s\"", err.text);
            break;
        }
        total += deleted;
        pthread_mutex_lock(&pump->lock);
        stopping = pump->stopping;
        pthread_mutex_unlock(&pump->lock);
    } while (deleted == PUMP_PRUNE_ROWS && !stopping);
    if (total > 0)
        sp_log_info("events pruned=%zu note=\"older than the retention "
                    "period\"",
                    total);
}

bool
daemon_thread_wait(pthread_mutex_t *lock, pthread_cond_t *wake,
                   const bool *stopping, int64_t ms)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(lock);
    if (!*stopping)
        pthread_cond_timedwait(wake, lock, &until);
    stop = *stopping;
    pthread_mutex_unlock(lock);
    return stop;
}

static void *
pump_main(void *arg)
{
    struct daemon_event_pump *pump = arg;
    sp_queue_options options = {.no_writer = true};
    struct pump_batch *batch = sp_calloc(1, sizeof(*batch));
    sp_queue *queue = NULL;
    sp_store *store = NULL;
    char spool[PATH_MAX + 8];
    int64_t next_prune = 0; /* at once, then every hour or retention */
    bool stopping = false;
    sp_error err;

    (void)pthread_setname_np(pthread_self(), "sp-events");
    snprintf(spool, sizeof(spool), "%s/spool", pump->data_dir);
    if (batch == NULL ||
        sp_queue_open(spool, &options, &queue, &err) != SP_OK ||
        sp_store_open(pump->data_dir, &store, &err) != SP_OK) {
        sp_log_error("events error=\"%s\" note=\"events wait in the spool "
                     "until the next start\"",
                     batch ? err.text : "out of memory");
        stopping = true;
    }

    /* After the stop, one last pass takes what the spool's last commits
     * added. */
    while (!stopping) {
        int64_t moved;

        if (pump->retention_ms > 0 && daemon_now_ms() >= next_prune) {
            pump_prune(pump, store);
            next_prune = daemon_now_ms() + (pump->retention_ms < PUMP_PRUNE_MS
                                                ? pump->retention_ms
                                                : PUMP_PRUNE_MS);
        }
        moved = pump_move(queue, store, batch);
        if (moved > 0)
            continue;
        stopping = daemon_thread_wait(&pump->lock, &pump->wake, &pump->stopping,
                                      moved < 0 ? PUMP_RETRY_MS : PUMP_IDLE_MS);
    }
    while (queue != NULL && store != NULL && pump_move(queue, store, batch) > 0)
        ;
    sp_store_close(store);
    sp_queue_close(queue);
    if (batch != NULL) {
        sp_free(batch->events);
        sp_free(batch->parsed);
    }
    sp_free(batch);
    return NULL;
}

struct daemon_event_pump *
daemon_event_pump_start(const char *data_dir, int64_t retention_seconds,
                        sp_error *err)
{
    struct daemon_event_pump *pump = sp_calloc(1, sizeof(*pump));

    if (pump == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(pump->data_dir, sizeof(pump->data_dir), "%s", data_dir);
    pump->retention_ms = retention_seconds * 1000;
    pthread_mutex_init(&pump->lock, NULL);
    pthread_cond_init(&pump->wake, NULL);
    if (pthread_create(&pump->thread, NULL, pump_main, pump) != 0) {
        sp_err_set(err, SP_EIO, "cannot start the event thread");
        pthread_mutex_destroy(&pump->lock);
        pthread_cond_destroy(&pump->wake);
        sp_free(pump);
        return NULL;
    }
    pump->started = true;
    return pump;
}

void
daemon_event_pump_stop(struct daemon_event_pump *pump)
{
    if (pump == NULL)
        return;
    pthread_mutex_lock(&pump->lock);
    pump->stopping = true;
    pthread_cond_signal(&pump->wake);
    pthread_mutex_unlock(&pump->lock);
    if (pump->started)
        pthread_join(pump->thread, NULL);
    pthread_mutex_destroy(&pump->lock);
    pthread_cond_destroy(&pump->wake);
    sp_free(pump);
}
