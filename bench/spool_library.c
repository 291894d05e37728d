/*
 * spool_library.c: sealpost's own spool (src/queue/), timed by the same
 * harness as the designs it was chosen from.
 *
 * Owns spool_library_ops.  The whole submission happens in prepare, in
 * the submitting thread, as a session does it: sp_queue_submit, then a
 * wait for the done callback; the library's writer thread makes the
 * groups, and the harness's writer stays idle (no commit).  Groups are
 * the library's flushes (queue__flush_count).
 */
#include "spool_bench.h"

#include "queue/queue_int.h"

#include <pthread.h>
#include <stdio.h>

/* One submission waiting for its done call. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    char text[sizeof(((sp_error *)0)->text)];
};

static int
library_open(const char *dir, void **store, char *why)
{
    sp_queue *queue = NULL;
    sp_error err;

    if (sp_queue_open(dir, NULL, &queue, &err) != SP_OK) {
        snprintf(why, SPOOL_WHY_SIZE, "%s", err.text);
        return -1;
    }
    *store = queue;
    return 0;
}

static void
library_done(void *arg, int rc, const char *id, const sp_error *err)
{
    struct waiter *waiter = arg;

    (void)id;
    pthread_mutex_lock(&waiter->lock);
    waiter->done = true;
    waiter->rc = rc;
    snprintf(waiter->text, sizeof(waiter->text), "%s", err->text);
    pthread_cond_signal(&waiter->cond);
    pthread_mutex_unlock(&waiter->lock);
}

static int
library_prepare(void *store, const spool_msg *msg, char *why)
{
    struct waiter waiter = {.done = false};
    sp_queue_envelope envelope = {
        .sender = msg->sender,
        .recipients = msg->recipients,
        .recipient_count = msg->recipient_count,
        .client_ip = msg->client_ip,
        .identity = "",
    };
    char id[SP_QUEUE_ID_SIZE] = "";
    sp_error err;

    pthread_mutex_init(&waiter.lock, NULL);
    pthread_cond_init(&waiter.cond, NULL);
    if (sp_queue_submit(store, &envelope, msg->data, msg->len, library_done,
                        &waiter, id, &err) != SP_OK) {
        snprintf(why, SPOOL_WHY_SIZE, "%s", err.text);
        return -1;
    }
    pthread_mutex_lock(&waiter.lock);
    while (!waiter.done)
        pthread_cond_wait(&waiter.cond, &waiter.lock);
    pthread_mutex_unlock(&waiter.lock);
    pthread_mutex_destroy(&waiter.lock);
    pthread_cond_destroy(&waiter.cond);
    if (waiter.rc != SP_OK) {
        snprintf(why, SPOOL_WHY_SIZE, "%s", waiter.text);
        return -1;
    }
    return 0;
}

static uint64_t
library_flushes(void *store)
{
    return queue__flush_count(store);
}

static void
library_close(void *store)
{
    sp_queue_close(store);
}

const spool_store_ops spool_library_ops = {
    .name = "sp_queue",
    .open = library_open,
    .prepare = library_prepare,
    .close = library_close,
    .flushes = library_flushes,
};
