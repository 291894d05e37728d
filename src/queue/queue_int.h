/*
 * queue_int.h: what the files of the queue module share, and what its
 * unit tests may look at.  Nothing outside src/queue/ and its tests
 * includes this.
 *
 *   spool.c         sp_queue_*: opening, the writer lock, submissions,
 *                   closing; queue__id_* (queue ids)
 *   spool_room.c    sp_queue_has_room, queue__room_*, queue__reserve_*:
 *                   free space and the reserve file
 *   spool_writer.c  queue__writer_*: the writer thread, which commits the
 *                   waiting submissions in groups, and the checkpointer
 *   spool_db.c      queue__db_*: the SQLite database the spool lives in
 *
 * A queue id is a 64-bit number, (milliseconds since the epoch << 20) +
 * a counter, written as 13 characters of Crockford's base32, so ids sort
 * as text in the order they were given out (by sp_queue_new_id or
 * sp_queue_submit).  The database keys messages by the number.
 */
#ifndef SP_QUEUE_INT_H
#define SP_QUEUE_INT_H

#include "queue/queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define QUEUE_ID_CHARS       13     /* characters of a queue id */
#define QUEUE_ID_SEQ_BITS    20     /* counter bits under the milliseconds */
#define QUEUE_DEFAULT_BATCH  256    /* messages in one commit by default */
#define QUEUE_ROOM_CACHE_MS  500    /* how long a free-space answer holds */
#define QUEUE_MAX_RECIPIENTS 100000 /* more in one envelope: SP_ELIMIT */
#define QUEUE_RESERVE_MAX    ((uint64_t)32 << 20) /* the reserve file */

/* The largest message the spool takes: under SQLite's 1e9 blob limit. */
#define QUEUE_MAX_MESSAGE ((size_t)900 * 1000 * 1000)

typedef struct queue__db queue__db;

/* What a waiting item asks of the writer. */
typedef enum queue__kind {
    QUEUE_ITEM_SUBMIT, /* store a new message (sp_queue_submit) */
    QUEUE_ITEM_RECORD, /* record delivery outcomes (sp_queue_record) */
    QUEUE_ITEM_EVENT,  /* store an event alone (sp_queue_event) */
} queue__kind;

/*
 * One submission or record, in a single allocation that holds its copies
 * of the envelope strings and the data, or of the outcomes and their
 * replies.  Owned by the queue from sp_queue_submit or sp_queue_record
 * until the writer has called done (or recorded) and freed it.
 */
typedef struct queue__item {
    struct queue__item *next; /* next waiting item */
    queue__kind kind;
    uint64_t number;               /* the queue id as a number */
    char id[SP_QUEUE_ID_SIZE];     /* the queue id as text */
    int64_t created_ms;            /* accepted at, ms since the epoch */
    const char *sender;            /* in this allocation */
    const char *const *recipients; /* in this allocation */
    size_t recipient_count;
    const char *client_ip;    /* in this allocation */
    const char *identity;     /* in this allocation */
    const char *event;        /* in this allocation, or NULL */
    const char *event_fields; /* in this allocation; "" for none */
    int64_t not_before_ms;    /* no delivery before; 0 for at once */
    const int64_t *dkim_keys; /* in this allocation */
    size_t dkim_key_count;
    const void *data;      /* in this allocation, len bytes */
    size_t len;            /* octets of the message */
    int rc;                /* its own result in a stored group: SP_OK,
                              SP_EINVAL for an id used already or a
                              position out of range, SP_ENOTFOUND for
                              outcomes of a message not stored */
    sp_queue_done_fn done; /* submissions: called once by the writer */
    void *arg;             /* for done or recorded */

    /* Records only; the replies in this allocation. */
    const sp_queue_outcome *outcomes;
    size_t outcome_count;
    sp_queue_recorded_fn recorded; /* called once by the writer */
    bool finished;                 /* no recipient left pending: the
                                      message was deleted */
} queue__item;

struct sp_queue {
    char *dir;                /* the spool directory; owned */
    sp_queue_options options; /* as opened, max_batch filled in */
    int lock_fd;              /* the writer lock, held; -1 if no_writer */

    /* list, read, delete and count share one connection. */
    pthread_mutex_t reader_lock; /* recursive: list's each may read */
    queue__db *reader;           /* under reader_lock */

    /* Submissions waiting for the writer, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* the writer waits here for work */
    queue__item *head;    /* oldest waiting submission */
    queue__item **tail;   /* where the next one goes */
    uint64_t last_number; /* the last queue id given out */
    bool closing;         /* sp_queue_close: drain, then stop */
    bool writer_started;  /* writer is a thread to join */
    pthread_t writer;     /* the writer thread */

    /* The writer thread's own; no lock needed. */
    queue__db *writer_db; /* its connection */
    queue__item **group;  /* options.max_batch slots */

    /* Checkpoints run on a thread of their own; see spool_writer.c. */
    pthread_mutex_t checkpoint_lock;
    pthread_cond_t checkpoint_wake; /* the WAL crossed its threshold */
    int checkpoint_pages;           /* WAL pages at the last commit */
    bool checkpoint_stop;           /* under checkpoint_lock */
    bool checkpoint_started;        /* checkpointer is a thread to join */
    pthread_t checkpointer;
    queue__db *checkpoint_db; /* the checkpointer's connection */

    /* Free space, measured at most every QUEUE_ROOM_CACHE_MS. */
    pthread_mutex_t room_lock;
    int64_t room_checked_ms;  /* monotonic time of the last measurement */
    bool room_known;          /* room_checked_ms and room_free are set */
    int64_t room_free;        /* octets the spool can count on, less what
                                 was taken since (spool_room.c) */
    atomic_int wal_pages;     /* frames in the log at the last commit */
    uint64_t wal_frame_bytes; /* octets of one frame in the log */

    /* Counters, for tests and statistics. */
    atomic_uint_fast64_t flushes;   /* commits made (one flush each) */
    atomic_uint_fast64_t committed; /* messages they made durable */
    atomic_uint_fast64_t failed;    /* messages whose commit failed */
};

/* ------------------------------------------------------------------------
 * spool.c
 */

/* A clock's time in milliseconds. */
int64_t queue__clock_ms(clockid_t clock);

/* Write number as a queue id (QUEUE_ID_CHARS characters and a NUL). */
void queue__id_format(uint64_t number, char id[SP_QUEUE_ID_SIZE]);

/* Read a queue id; SP_EINVAL when text is not one. */
int queue__id_parse(const char *text, uint64_t *number);

/*
 * Assert the invariants of the waiting list; caller holds queue->lock.
 * Called after every change to it.
 */
void queue__check(const sp_queue *queue);

/* ------------------------------------------------------------------------
 * spool_room.c
 */

/*
 * Whether a message of octets fits above the free-space threshold (true
 * when there is none).  With take, its space counts as used until the
 * next measurement (sp_queue_submit); without, it is only a question.
 */
bool queue__room_take(sp_queue *queue, uint64_t octets, bool take);

/* Forget the cached free-space answer (after a storage error). */
void queue__room_forget(sp_queue *queue);

/* The reserve file's size for these options (0: none). */
uint64_t queue__reserve_size(const sp_queue_options *options);

/* Make (or complete) the reserve file in dir; true when it is there. */
bool queue__reserve_make(const char *dir, uint64_t size);

/* Remove the reserve file in dir; true when there was one. */
bool queue__reserve_release(const char *dir);

/* Commits made so far, each with one flush; for tests. */
uint64_t queue__flush_count(sp_queue *queue);

/* ------------------------------------------------------------------------
 * spool_writer.c
 */

/*
 * Start the writer and the checkpointer threads.  The caller has opened
 * queue->writer_db and queue->checkpoint_db and allocated queue->group.
 * SP_EIO when a thread cannot be started (err says so); then no thread
 * runs.
 */
int queue__writer_start(sp_queue *queue, sp_error *err);

/*
 * Wake the writer for a submission just queued; caller holds queue->lock.
 */
void queue__writer_wake(sp_queue *queue);

/*
 * Let the writer finish every waiting submission, then stop and join
 * both threads.  Does nothing for threads that were not started.
 */
void queue__writer_stop(sp_queue *queue);

/* ------------------------------------------------------------------------
 * spool_db.c
 */

/*
 * Open the database in dir, creating or upgrading its schema.  for_writer
 * turns SQLite's automatic checkpoints off (the checkpointer does them)
 * and prepares the statements a commit uses.  Every error is SP_EIO
 * with err filled, or SP_EINVAL for a schema newer than this sealpost.
 */
int queue__db_open(const char *dir, bool for_writer, queue__db **out,
                   sp_error *err);

void queue__db_close(queue__db *db);

/*
 * Call hook(arg, pages) after each commit of db with the pages in the
 * write-ahead log, from the committing thread.
 */
void queue__db_on_commit(queue__db *db, void (*hook)(void *arg, int pages),
                         void *arg);

/*
 * Store items[0..count) in one transaction, flushed before this returns:
 * new messages, and the outcomes of records (deleting the messages they
 * leave with no recipient pending).  On failure nothing of the group is
 * stored: SP_EIO with err filled.  On success each item's rc says whether
 * it was stored (SP_OK) or refused alone: a submission whose id is in
 * the spool already (SP_EINVAL), a record for a message not in the spool
 * (SP_ENOTFOUND) or naming a position it lacks (SP_EINVAL).  A record's
 * finished says whether its message was deleted.
 */
int queue__db_store(queue__db *db, queue__item *const *items, size_t count,
                    sp_error *err);

/*
 * Copy the write-ahead log into the database file, as far as readers
 * allow; *caught_up when all of it is copied.  SP_ELIMIT when the
 * filesystem was too full, SP_EIO for other failures.
 */
int queue__db_checkpoint(queue__db *db, bool *caught_up);

/* Octets of the database's pages: one frame of the log holds one. */
uint64_t queue__db_page_bytes(queue__db *db);

/* Octets of free pages inside the database, which inserts reuse. */
int queue__db_reusable_bytes(queue__db *db, uint64_t *octets);

/* The highest message number stored (0 for none). */
int queue__db_last_number(queue__db *db, uint64_t *number, sp_error *err);

/*
 * See sp_queue_list, sp_queue_read, sp_queue_delete, sp_queue_count;
 * delete returns SP_ELIMIT when the filesystem was too full for it.
 */
int queue__db_list(queue__db *db,
                   void (*each)(void *arg, const sp_queue_info *info),
                   void *arg, sp_error *err);
int queue__db_read(queue__db *db, uint64_t number,
                   void (*each)(void *arg, const sp_queue_info *info),
                   void *arg, sp_buf *data, sp_error *err);
int queue__db_delete(queue__db *db, uint64_t number, sp_error *err);
int queue__db_count(queue__db *db, uint64_t *count, sp_error *err);

/* See sp_queue_events_take and sp_queue_events_forget. */
int queue__db_events(queue__db *db, size_t max,
                     void (*each)(void *arg, int64_t seq, const char *event),
                     void *arg, sp_error *err);
int queue__db_events_forget(queue__db *db, int64_t seq, sp_error *err);
int queue__db_key_count(queue__db *db, int64_t key, uint64_t *count,
                        sp_error *err);

#endif /* SP_QUEUE_INT_H */
