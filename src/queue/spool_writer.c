/*
 * spool_writer.c: the threads behind the spool's group commits.
 *
 * Owns queue__writer_*.  The writer thread takes every item waiting at
 * the moment it looks (at most options.max_batch): submissions of new
 * messages, records of delivery outcomes, and events alone.  It stores them in
 * one transaction with one flush, and then calls their callbacks, in the order
 * they were queued.  While it flushes, sessions go on queueing behind it, so
 * the busier the spool, the more messages one flush carries.
 *
 * The checkpointer thread copies SQLite's write-ahead log back into the
 * database file once the log holds CHECKPOINT_PAGES pages.  SQLite would
 * otherwise do it inside the commit that crosses the threshold, and that
 * group would wait for a second write and flush of everything in it:
 * with 20 sessions that doubles the p99 latency (doc/spool.md).
 *
 * A failed commit fails only its own group: each done gets the error
 * (SP_EIO with SQLite's message, such as "database or disk is full"),
 * the free-space answer is forgotten so sp_queue_has_room looks again,
 * and the writer goes on with the next group.  Nothing here logs; the
 * daemon logs what its callbacks receive.
 */
#include "queue_int.h"

#include <assert.h>

#define CHECKPOINT_PAGES                                                       \
    250 /* 4 MiB of 16 KiB pages, as SQLite's default                          \
          of 1000 pages of 4 KiB */

/* Take up to max_batch waiting submissions; caller holds queue->lock. */
static size_t
writer_take(sp_queue *queue)
{
    size_t count = 0;

    while (queue->head != NULL && count < queue->options.max_batch) {
        queue->group[count++] = queue->head;
        queue->head = queue->head->next;
    }
    if (queue->head == NULL)
        queue->tail = &queue->head;
    queue__check(queue);
    return count;
}

/* An item of a stored group refused alone; err says why. */
static void
writer_refused(sp_queue *queue, queue__item *item)
{
    sp_error err;

    if (item->kind == QUEUE_ITEM_RECORD) {
        if (item->rc == SP_ENOTFOUND)
            sp_err_set(&err, item->rc, "spool: no message %s", item->id);
        else
            sp_err_set(&err, item->rc,
                       "spool: message %s has no such recipient", item->id);
        item->recorded(item->arg, item->rc, item->id, false, &err);
        return;
    }
    atomic_fetch_sub(&queue->committed, 1);
    atomic_fetch_add(&queue->failed, 1);
    sp_err_set(&err, item->rc, "spool: queue id %s is in the spool already",
               item->id);
    item->done(item->arg, item->rc, item->id, &err);
}

/* Tell an item's caller how the commit of its group went. */
static void
writer_tell(queue__item *item, int rc, const sp_error *err)
{
    if (item->kind == QUEUE_ITEM_EVENT)
        return; /* nobody waits for these */
    if (item->kind == QUEUE_ITEM_RECORD)
        item->recorded(item->arg, rc, item->id, rc == SP_OK && item->finished,
                       err);
    else
        item->done(item->arg, rc, item->id, err);
}

/* Store the group taken, then tell each caller, then free them. */
static void
writer_commit(sp_queue *queue, size_t count)
{
    size_t submissions = 0;
    sp_error err;
    int rc;

    sp_err_clear(&err);
    for (size_t i = 0; i < count; i++)
        submissions += queue->group[i]->kind == QUEUE_ITEM_SUBMIT;
    rc = queue__db_store(queue->writer_db, queue->group, count, &err);
    if (rc == SP_OK) {
        atomic_fetch_add(&queue->flushes, 1);
        atomic_fetch_add(&queue->committed, submissions);
    } else {
        atomic_fetch_add(&queue->failed, submissions);
        queue__room_forget(queue);
    }
    for (size_t i = 0; i < count; i++) {
        queue__item *item = queue->group[i];

        if (rc == SP_OK && item->rc != SP_OK)
            writer_refused(queue, item);
        else
            writer_tell(item, rc, &err);
        sp_free(item);
        queue->group[i] = NULL;
    }
}

static void *
writer_main(void *arg)
{
    sp_queue *queue = arg;

    (void)pthread_setname_np(pthread_self(), "sp-spool-write");
    pthread_mutex_lock(&queue->lock);
    for (;;) {
        size_t count;

        while (queue->head == NULL && !queue->closing)
            pthread_cond_wait(&queue->wake, &queue->lock);
        if (queue->head == NULL)
            break; /* closing, and nothing left to drain */
        count = writer_take(queue);

        /* Unlocked while flushing, so the next group can gather. */
        pthread_mutex_unlock(&queue->lock);
        writer_commit(queue, count);
        pthread_mutex_lock(&queue->lock);
    }
    pthread_mutex_unlock(&queue->lock);
    return NULL;
}

/* Called by SQLite after each of the writer's commits. */
static void
writer_wal_grown(void *arg, int pages)
{
    sp_queue *queue = arg;

    atomic_store(&queue->wal_pages, pages);
    if (pages < CHECKPOINT_PAGES)
        return;
    pthread_mutex_lock(&queue->checkpoint_lock);
    queue->checkpoint_pages = pages;
    pthread_cond_signal(&queue->checkpoint_wake);
    pthread_mutex_unlock(&queue->checkpoint_lock);
}

/*
 * One checkpoint.  On a full filesystem the reserve gives the room to
 * finish it (spool_room.c).  When it caught up with a log that no commit
 * has added to meanwhile, the database file owes the log nothing, which
 * the free-space answer counts.  A commit finishing in the very moment
 * of the last check may be missed: the threshold's margin covers that
 * one group until the next commit counts the log again.
 */
static void
checkpoint_run(sp_queue *queue)
{
    uint64_t flushes = atomic_load(&queue->flushes);
    bool caught_up;
    int rc = queue__db_checkpoint(queue->checkpoint_db, &caught_up);

    if (rc == SP_ELIMIT && queue__reserve_release(queue->dir)) {
        queue__room_forget(queue);
        rc = queue__db_checkpoint(queue->checkpoint_db, &caught_up);
    }
    if (rc == SP_OK && caught_up && atomic_load(&queue->flushes) == flushes)
        atomic_store(&queue->wal_pages, 0);
}

/*
 * A passive checkpoint copies what no reader still needs and never
 * blocks the writer, which goes on appending meanwhile; SQLite starts
 * the log over once a checkpoint has caught up with it.
 */
static void *
checkpoint_main(void *arg)
{
    sp_queue *queue = arg;

    (void)pthread_setname_np(pthread_self(), "sp-checkpoint");
    pthread_mutex_lock(&queue->checkpoint_lock);
    while (!queue->checkpoint_stop) {
        if (queue->checkpoint_pages < CHECKPOINT_PAGES) {
            pthread_cond_wait(&queue->checkpoint_wake, &queue->checkpoint_lock);
            continue;
        }
        queue->checkpoint_pages = 0;
        pthread_mutex_unlock(&queue->checkpoint_lock);
        checkpoint_run(queue);
        pthread_mutex_lock(&queue->checkpoint_lock);
    }
    pthread_mutex_unlock(&queue->checkpoint_lock);
    return NULL;
}

int
queue__writer_start(sp_queue *queue, sp_error *err)
{
    if (pthread_create(&queue->checkpointer, NULL, checkpoint_main, queue) != 0)
        return sp_err_set(err, SP_EIO,
                          "spool: cannot start the checkpoint thread");
    queue->checkpoint_started = true;
    queue__db_on_commit(queue->writer_db, writer_wal_grown, queue);

    /* Set first, so the writer never sees it unset (queue__check). */
    queue->writer_started = true;
    if (pthread_create(&queue->writer, NULL, writer_main, queue) != 0) {
        queue->writer_started = false;
        queue__writer_stop(queue);
        return sp_err_set(err, SP_EIO, "spool: cannot start the writer");
    }
    return SP_OK;
}

void
queue__writer_wake(sp_queue *queue)
{
    pthread_cond_signal(&queue->wake);
}

void
queue__writer_stop(sp_queue *queue)
{
    if (queue->writer_started) {
        pthread_mutex_lock(&queue->lock);
        queue->closing = true;
        pthread_cond_signal(&queue->wake);
        pthread_mutex_unlock(&queue->lock);
        pthread_join(queue->writer, NULL);
        pthread_mutex_lock(&queue->lock);
        queue__check(queue);
        assert(queue->head == NULL);
        queue->writer_started = false;
        pthread_mutex_unlock(&queue->lock);
    }

    /* After the writer, so that its last commits may still wake it. */
    if (queue->checkpoint_started) {
        pthread_mutex_lock(&queue->checkpoint_lock);
        queue->checkpoint_stop = true;
        pthread_cond_signal(&queue->checkpoint_wake);
        pthread_mutex_unlock(&queue->checkpoint_lock);
        pthread_join(queue->checkpointer, NULL);
        queue->checkpoint_started = false;
    }
}
