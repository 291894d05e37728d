/*
 * spool.c: the spool's public functions: opening and closing it, taking
 * submissions and delivery outcomes for the writer, answering whether
 * there is room, and the reads and deletes that pass through to the
 * database.
 *
 * Owns sp_queue_* (see queue.h) but for sp_queue_has_room
 * (spool_room.c), and queue__id_*, queue__clock_ms, queue__check and
 * queue__flush_count (see queue_int.h).
 *
 * Layout of a spool directory (mode 0700 when made here):
 *   spool.db, spool.db-wal, spool.db-shm   the SQLite database (spool_db.c)
 *   writer.lock   flock()ed by the one process that writes, holding its
 *                 pid for the operator; the command line (no_writer)
 *                 neither takes nor needs it
 *   reserve       space held back for deletes and checkpoints on a full
 *                 filesystem, when there is a free-space threshold
 *                 (spool_room.c)
 *
 * Threads: sp_queue_submit, sp_queue_record and sp_queue_has_room may be
 * called from any number of threads at once; so may list, read, delete
 * and count, which share one connection under a lock.  The writer and
 * checkpointer threads are spool_writer.c's.
 *
 * Allocation failures are reported as SP_ENOMEM and leave the spool as it
 * was; nothing here exits or logs.  Known limit: sp_queue_delete (the
 * operator's) is its own transaction and flush; delivery's deletes go
 * through the writer's groups with the outcomes that finish a message.
 */
#include "queue_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Crockford's base32: digits and capitals without I, L, O and U. */
static const char id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const char *
sp_queue_state_name(sp_queue_state state)
{
    switch (state) {
    case SP_QUEUE_QUEUED:
        return "queued";
    }
    return "unknown";
}

const char *
sp_queue_rcpt_state_name(sp_queue_rcpt_state state)
{
    switch (state) {
    case SP_QUEUE_RCPT_PENDING:
        return "pending";
    case SP_QUEUE_RCPT_DELIVERED:
        return "delivered";
    case SP_QUEUE_RCPT_FAILED:
        return "failed";
    }
    return "unknown";
}

void
queue__id_format(uint64_t number, char id[SP_QUEUE_ID_SIZE])
{
    for (int i = QUEUE_ID_CHARS - 1; i >= 0; i--) {
        id[i] = id_alphabet[number & 31];
        number >>= 5;
    }
    id[QUEUE_ID_CHARS] = '\0';
}

int
queue__id_parse(const char *text, uint64_t *number)
{
    uint64_t value = 0;

    if (text == NULL || strlen(text) != QUEUE_ID_CHARS || text[0] > '7')
        return SP_EINVAL; /* ids fit in 63 bits: the first digit is 0-7 */
    for (int i = 0; i < QUEUE_ID_CHARS; i++) {
        const char *at = strchr(id_alphabet, text[i]);

        if (text[i] == '\0' || at == NULL)
            return SP_EINVAL;
        value = value << 5 | (uint64_t)(at - id_alphabet);
    }
    *number = value;
    return SP_OK;
}

int64_t
queue__clock_ms(clockid_t clock)
{
    struct timespec now;

    clock_gettime(clock, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * Opening and closing
 */

/* Make dir (0700) unless it exists; flush its parent when made. */
static int
spool_make_dir(const char *dir, sp_error *err)
{
    char parent[PATH_MAX];
    struct stat st;
    int fd;

    if (mkdir(dir, 0700) != 0) {
        if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return SP_OK;
        return sp_err_set(err, SP_EIO, "spool: cannot make %s: %s", dir,
                          errno == EEXIST ? "not a directory"
                                          : strerror(errno));
    }
    snprintf(parent, sizeof(parent), "%s", dir);
    fd = open(dirname(parent), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return SP_OK;
}

/* Flush dir itself, so the names of the files just made are durable. */
static int
spool_sync_dir(const char *dir, sp_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = SP_OK;

    if (fd < 0 || fsync(fd) != 0)
        rc = sp_err_set(err, SP_EIO, "spool: cannot flush %s: %s", dir,
                        strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

/*
 * Take the writer lock, so that a second daemon on the same spool stops
 * at start rather than writing beside the first.  The lock goes with the
 * descriptor: it is released when the process ends, however it ends.
 */
static int
spool_lock(sp_queue *queue, sp_error *err)
{
    char path[PATH_MAX], holder[32] = "";
    ssize_t got;

    snprintf(path, sizeof(path), "%s/writer.lock", queue->dir);
    queue->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (queue->lock_fd < 0)
        return sp_err_set(err, SP_EIO, "spool: cannot open %s: %s", path,
                          strerror(errno));
    if (flock(queue->lock_fd, LOCK_EX | LOCK_NB) == 0) {
        if (ftruncate(queue->lock_fd, 0) == 0)
            dprintf(queue->lock_fd, "%ld\n", (long)getpid());
        return SP_OK;
    }
    if (errno != EWOULDBLOCK)
        return sp_err_set(err, SP_EIO, "spool: cannot lock %s: %s", path,
                          strerror(errno));
    got = pread(queue->lock_fd, holder, sizeof(holder) - 1, 0);
    holder[got > 0 ? got : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    return sp_err_set(err, SP_ESTATE,
                      "spool: %s is in use by another process (pid %s); "
                      "stop it first",
                      queue->dir, holder[0] ? holder : "unknown");
}

/* Everything sp_queue_open may have set up, undone in reverse. */
static void
spool_free(sp_queue *queue)
{
    queue__writer_stop(queue);
    queue__db_close(queue->writer_db);
    queue__db_close(queue->checkpoint_db);
    queue__db_close(queue->reader);
    if (queue->lock_fd >= 0)
        close(queue->lock_fd);
    pthread_mutex_destroy(&queue->reader_lock);
    pthread_mutex_destroy(&queue->lock);
    pthread_cond_destroy(&queue->wake);
    pthread_mutex_destroy(&queue->checkpoint_lock);
    pthread_cond_destroy(&queue->checkpoint_wake);
    pthread_mutex_destroy(&queue->room_lock);
    sp_free(queue->group);
    sp_free(queue->dir);
    sp_free(queue);
}

/* A queue with its locks made and nothing opened yet; NULL for ENOMEM. */
static sp_queue *
spool_new(const char *dir, const sp_queue_options *options)
{
    sp_queue *queue = sp_calloc(1, sizeof(*queue));
    pthread_mutexattr_t recursive;

    if (queue == NULL)
        return NULL;
    queue->dir = sp_strndup(dir, strlen(dir));
    queue->lock_fd = -1;
    queue->tail = &queue->head;
    if (options != NULL)
        queue->options = *options;
    if (queue->options.max_batch == 0)
        queue->options.max_batch = QUEUE_DEFAULT_BATCH;
    pthread_mutexattr_init(&recursive);
    pthread_mutexattr_settype(&recursive, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&queue->reader_lock, &recursive);
    pthread_mutexattr_destroy(&recursive);
    pthread_mutex_init(&queue->lock, NULL);
    pthread_cond_init(&queue->wake, NULL);
    pthread_mutex_init(&queue->checkpoint_lock, NULL);
    pthread_cond_init(&queue->checkpoint_wake, NULL);
    pthread_mutex_init(&queue->room_lock, NULL);
    if (queue->dir == NULL) {
        spool_free(queue);
        return NULL;
    }
    return queue;
}

/* The writer's side: the lock, its connections, its threads. */
static int
spool_open_writer(sp_queue *queue, sp_error *err)
{
    int rc = spool_lock(queue, err);

    if (rc == SP_OK) {
        queue->group =
            sp_calloc(queue->options.max_batch, sizeof(*queue->group));
        if (queue->group == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "spool: out of memory");
    }
    if (rc == SP_OK)
        rc = queue__db_open(queue->dir, true, &queue->writer_db, err);
    if (rc == SP_OK) {
        /* A frame of the log: a page and its 24-octet header. */
        queue->wal_frame_bytes = queue__db_page_bytes(queue->writer_db) + 24;

        /* Missing now, it is made when there is space (spool_room.c). */
        (void)queue__reserve_make(queue->dir,
                                  queue__reserve_size(&queue->options));
    }
    if (rc == SP_OK)
        rc = queue__db_open(queue->dir, false, &queue->checkpoint_db, err);
    if (rc == SP_OK)
        rc = spool_sync_dir(queue->dir, err);
    if (rc == SP_OK)
        rc = queue__writer_start(queue, err);
    return rc;
}

/*
 * Open the spool in dir.  SQLite recovers the database when it is first
 * read after a crash: the write-ahead log is replayed up to its last
 * complete commit, and a torn tail is dropped.  The id counter then
 * resumes after the highest id stored, so ids stay unique and ordered
 * even if the clock went back while the daemon was down.
 *
 * Returns SP_OK with *out set; SP_EINVAL for a bad argument or a spool
 * from a newer sealpost, SP_ESTATE when another process holds the writer
 * lock, SP_EIO when the directory or database cannot be used, SP_ENOMEM.
 * On failure nothing stays open and *out is NULL.
 */
int
sp_queue_open(const char *dir, const sp_queue_options *options, sp_queue **out,
              sp_error *err)
{
    sp_queue *queue;
    int rc;

    *out = NULL;
    if (dir == NULL || dir[0] == '\0' || strlen(dir) > PATH_MAX - 32)
        return sp_err_set(err, SP_EINVAL, "spool: bad directory name");
    queue = spool_new(dir, options);
    if (queue == NULL)
        return sp_err_set(err, SP_ENOMEM, "spool: out of memory");
    rc = spool_make_dir(dir, err);
    if (rc == SP_OK)
        rc = queue__db_open(dir, false, &queue->reader, err);
    if (rc == SP_OK)
        rc = queue__db_last_number(queue->reader, &queue->last_number, err);
    if (rc == SP_OK && !queue->options.no_writer)
        rc = spool_open_writer(queue, err);
    if (rc != SP_OK) {
        spool_free(queue);
        return rc;
    }
    *out = queue;
    return SP_OK;
}

/*
 * Drain and close: submissions already accepted by sp_queue_submit are
 * committed (or failed) and get their done call before this returns.
 * No other call on queue may run at the same time or after.
 */
void
sp_queue_close(sp_queue *queue)
{
    if (queue != NULL)
        spool_free(queue);
}

/* ------------------------------------------------------------------------
 * Submissions
 */

void
queue__check(const sp_queue *queue)
{
    /* tail is where the next submission goes: head's slot when empty. */
    assert(queue->tail != NULL && *queue->tail == NULL);
    assert((queue->head == NULL) == (queue->tail == &queue->head));

    /* Only a writer takes submissions, and it drains before it stops. */
    assert(queue->head == NULL || !queue->options.no_writer);
    assert(queue->head == NULL || queue->writer_started);
    assert(queue->options.max_batch > 0);
}

uint64_t
queue__flush_count(sp_queue *queue)
{
    return atomic_load(&queue->flushes);
}

/* Copy text to *at and advance it; returns the copy. */
static const char *
spool_put(char **at, const char *text, size_t len)
{
    char *copy = *at;

    memcpy(copy, text, len);
    copy[len] = '\0';
    *at += len + 1;
    return copy;
}

/*
 * Copy envelope and data into one allocation: the item, the key ids, the
 * recipient pointers, the strings, then the bytes.  NULL when memory runs out.
 */
static queue__item *
spool_copy(const sp_queue_envelope *envelope, const void *data, size_t len)
{
    const char *client_ip = envelope->client_ip ? envelope->client_ip : "";
    const char *identity = envelope->identity ? envelope->identity : "";
    const char *fields = envelope->event_fields ? envelope->event_fields : "";
    size_t n = envelope->recipient_count;
    size_t keys = envelope->dkim_keys != NULL ? envelope->dkim_key_count : 0;
    size_t size =
        sizeof(queue__item) + keys * sizeof(int64_t) + n * sizeof(char *) + len;
    const char **recipients;
    int64_t *key_ids;
    queue__item *item;
    char *at;

    size += strlen(envelope->sender) + strlen(client_ip) + strlen(identity) +
            strlen(fields) + 4;
    if (envelope->event != NULL)
        size += strlen(envelope->event) + 1;
    for (size_t i = 0; i < n; i++)
        size += strlen(envelope->recipients[i]) + 1;
    item = sp_malloc(size);
    if (item == NULL)
        return NULL;
    memset(item, 0, sizeof(*item));
    key_ids = (int64_t *)(item + 1);
    recipients = (const char **)(key_ids + keys);
    at = (char *)(recipients + n);
    if (keys > 0)
        memcpy(key_ids, envelope->dkim_keys, keys * sizeof(int64_t));
    item->dkim_keys = key_ids;
    item->dkim_key_count = keys;
    item->sender = spool_put(&at, envelope->sender, strlen(envelope->sender));
    item->client_ip = spool_put(&at, client_ip, strlen(client_ip));
    item->identity = spool_put(&at, identity, strlen(identity));
    item->event_fields = spool_put(&at, fields, strlen(fields));
    item->not_before_ms = envelope->not_before_ms;
    if (envelope->event != NULL)
        item->event = spool_put(&at, envelope->event, strlen(envelope->event));
    for (size_t i = 0; i < n; i++)
        recipients[i] = spool_put(&at, envelope->recipients[i],
                                  strlen(envelope->recipients[i]));
    if (len > 0)
        memcpy(at, data, len);
    item->recipients = recipients;
    item->recipient_count = n;
    item->data = at;
    item->len = len;
    return item;
}

/* Check what sp_queue_submit is given, before copying anything. */
static int
spool_check_submission(sp_queue *queue, const sp_queue_envelope *envelope,
                       const void *data, size_t len, sp_queue_done_fn done,
                       sp_error *err)
{
    if (queue->options.no_writer)
        return sp_err_set(err, SP_ESTATE,
                          "spool: opened without a writer; cannot submit");
    if (envelope == NULL || envelope->sender == NULL ||
        envelope->recipient_count == 0 || envelope->recipients == NULL ||
        done == NULL || (data == NULL && len > 0))
        return sp_err_set(err, SP_EINVAL, "spool: incomplete submission");
    for (size_t i = 0; i < envelope->recipient_count; i++)
        if (envelope->recipients[i] == NULL)
            return sp_err_set(err, SP_EINVAL, "spool: missing recipient");
    if (envelope->dkim_key_count > 0 && envelope->dkim_keys == NULL)
        return sp_err_set(err, SP_EINVAL, "spool: missing DKIM key ids");
    if (len > QUEUE_MAX_MESSAGE ||
        envelope->recipient_count > QUEUE_MAX_RECIPIENTS)
        return sp_err_set(err, SP_ELIMIT,
                          "spool: message of %zu octets for %zu recipients "
                          "is over the spool's limits",
                          len, envelope->recipient_count);
    if (!queue__room_take(queue, len, true))
        return sp_err_set(err, SP_ELIMIT,
                          "spool: free space on %s would fall under %llu "
                          "octets",
                          queue->dir,
                          (unsigned long long)queue->options.min_free_bytes);
    return SP_OK;
}

/* Hand item to the writer, last in line; caller holds queue->lock. */
static void
spool_enqueue(sp_queue *queue, queue__item *item)
{
    *queue->tail = item;
    queue->tail = &item->next;
    queue__check(queue);
    queue__writer_wake(queue);
}

/*
 * Hand item to the writer unless the spool is closing (then free it and
 * return SP_EIO); the writer may free item at once.
 */
static int
spool_hand_over(sp_queue *queue, queue__item *item, sp_error *err)
{
    pthread_mutex_lock(&queue->lock);
    if (queue->closing) {
        pthread_mutex_unlock(&queue->lock);
        sp_free(item);
        return sp_err_set(err, SP_EIO, "spool: the writer has stopped");
    }
    spool_enqueue(queue, item);
    pthread_mutex_unlock(&queue->lock);
    return SP_OK;
}

/*
 * Ids come from the clock, never going back: the next id is the current
 * millisecond with a zero counter, or the last id plus one, whichever is
 * greater.  Caller holds queue->lock.
 */
static uint64_t
spool_next_number(sp_queue *queue, int64_t now_ms)
{
    uint64_t number = (uint64_t)now_ms << QUEUE_ID_SEQ_BITS;

    if (number <= queue->last_number)
        number = queue->last_number + 1;
    queue->last_number = number;
    return number;
}

/*
 * An id for a message about to be submitted, from the same counter as
 * the ids sp_queue_submit gives, so both kinds stay unique and ordered by
 * the moment they were given.
 */
void
sp_queue_new_id(sp_queue *queue, char id[SP_QUEUE_ID_SIZE])
{
    uint64_t number;

    pthread_mutex_lock(&queue->lock);
    number = spool_next_number(queue, queue__clock_ms(CLOCK_REALTIME));
    pthread_mutex_unlock(&queue->lock);
    queue__id_format(number, id);
}

/*
 * The number for a submission: a new one when id is "", else the one id
 * holds, which must have come from sp_queue_new_id (not above the last
 * given).  Caller holds queue->lock.
 */
static int
spool_submission_number(sp_queue *queue, queue__item *item, const char *id,
                        sp_error *err)
{
    if (id[0] == '\0') {
        item->number = spool_next_number(queue, item->created_ms);
        queue__id_format(item->number, item->id);
        return SP_OK;
    }
    if (queue__id_parse(id, &item->number) != SP_OK ||
        item->number > queue->last_number)
        return sp_err_set(err, SP_EINVAL,
                          "spool: %.30s is not a queue id from "
                          "sp_queue_new_id",
                          id);
    queue__id_format(item->number, item->id);
    return SP_OK;
}

/*
 * Also SP_EINVAL for an incomplete envelope (no sender, no recipient, a
 * NULL recipient, no done), data NULL with len > 0, or an id that
 * sp_queue_new_id did not give; SP_ESTATE when the spool was opened with
 * no_writer; SP_ENOMEM.  done is not called then, and id is left as it
 * was.  An id given twice fails the second submission through its done
 * call, with SP_EINVAL; the other messages of its group are stored.
 */
int
sp_queue_submit(sp_queue *queue, const sp_queue_envelope *envelope,
                const void *data, size_t len, sp_queue_done_fn done, void *arg,
                char id[SP_QUEUE_ID_SIZE], sp_error *err)
{
    queue__item *item;
    int rc;

    rc = spool_check_submission(queue, envelope, data, len, done, err);
    if (rc != SP_OK)
        return rc;
    item = spool_copy(envelope, data, len);
    if (item == NULL)
        return sp_err_set(err, SP_ENOMEM, "spool: out of memory");
    item->done = done;
    item->arg = arg;
    item->created_ms = queue__clock_ms(CLOCK_REALTIME);

    /* A new id is given under the lock that queues it: commits keep order. */
    pthread_mutex_lock(&queue->lock);
    if (queue->closing)
        rc = sp_err_set(err, SP_EIO, "spool: the writer has stopped");
    else
        rc = spool_submission_number(queue, item, id, err);
    if (rc != SP_OK) {
        pthread_mutex_unlock(&queue->lock);
        sp_free(item);
        return rc;
    }
    memcpy(id, item->id, SP_QUEUE_ID_SIZE);
    spool_enqueue(queue, item);

    /* From here the writer may have freed item at any moment. */
    pthread_mutex_unlock(&queue->lock);
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * Delivery outcomes
 */

/* Check what sp_queue_record is given, before copying anything. */
static int
spool_check_record(sp_queue *queue, const char *id,
                   const sp_queue_outcome *outcomes, size_t count,
                   sp_queue_recorded_fn done, uint64_t *number, sp_error *err)
{
    if (queue->options.no_writer)
        return sp_err_set(err, SP_ESTATE,
                          "spool: opened without a writer; cannot record");
    if (queue__id_parse(id, number) != SP_OK)
        return sp_err_set(err, SP_EINVAL, "spool: not a queue id");
    if (outcomes == NULL || count == 0 || count > QUEUE_MAX_RECIPIENTS ||
        done == NULL)
        return sp_err_set(err, SP_EINVAL, "spool: incomplete record");
    for (size_t i = 0; i < count; i++)
        if (outcomes[i].state != SP_QUEUE_RCPT_PENDING &&
            outcomes[i].state != SP_QUEUE_RCPT_DELIVERED &&
            outcomes[i].state != SP_QUEUE_RCPT_FAILED)
            return sp_err_set(err, SP_EINVAL, "spool: unknown outcome");
    return SP_OK;
}

/* Copy the outcomes and their replies into one allocation; NULL: ENOMEM. */
static queue__item *
spool_copy_record(const sp_queue_outcome *outcomes, size_t count)
{
    size_t size = sizeof(queue__item) + count * sizeof(sp_queue_outcome);
    sp_queue_outcome *copies;
    queue__item *item;
    char *at;

    for (size_t i = 0; i < count; i++) {
        size += strlen(outcomes[i].reply ? outcomes[i].reply : "") + 1;
        if (outcomes[i].event != NULL)
            size += strlen(outcomes[i].event) + 1;
    }
    item = sp_malloc(size);
    if (item == NULL)
        return NULL;
    memset(item, 0, sizeof(*item));
    copies = (sp_queue_outcome *)(item + 1);
    at = (char *)(copies + count);
    for (size_t i = 0; i < count; i++) {
        const char *reply = outcomes[i].reply ? outcomes[i].reply : "";

        copies[i] = outcomes[i];
        copies[i].reply = spool_put(&at, reply, strlen(reply));
        if (outcomes[i].event != NULL)
            copies[i].event =
                spool_put(&at, outcomes[i].event, strlen(outcomes[i].event));
    }
    item->kind = QUEUE_ITEM_RECORD;
    item->outcomes = copies;
    item->outcome_count = count;
    return item;
}

int
sp_queue_record(sp_queue *queue, const char *id,
                const sp_queue_outcome *outcomes, size_t count,
                sp_queue_recorded_fn done, void *arg, sp_error *err)
{
    queue__item *item;
    uint64_t number;
    int rc;

    rc = spool_check_record(queue, id, outcomes, count, done, &number, err);
    if (rc != SP_OK)
        return rc;
    item = spool_copy_record(outcomes, count);
    if (item == NULL)
        return sp_err_set(err, SP_ENOMEM, "spool: out of memory");
    item->number = number;
    queue__id_format(number, item->id);
    item->recorded = done;
    item->arg = arg;

    return spool_hand_over(queue, item, err);
}

/* ------------------------------------------------------------------------
 * Reading and deleting
 */

/*
 * each runs with the spool's read connection held: it may call
 * sp_queue_read, but must leave deleting until the list has returned.
 * The info strings live until each returns.  Returns SP_EIO or SP_ENOMEM
 * on failure, after the messages already described.
 */
int
sp_queue_list(sp_queue *queue,
              void (*each)(void *arg, const sp_queue_info *info), void *arg,
              sp_error *err)
{
    int rc;

    pthread_mutex_lock(&queue->reader_lock);
    rc = queue__db_list(queue->reader, each, arg, err);
    pthread_mutex_unlock(&queue->reader_lock);
    return rc;
}

/*
 * each may be NULL.  SP_EINVAL for text that is not a queue id,
 * SP_ENOTFOUND for an id not in the spool, SP_EIO, SP_ENOMEM; data keeps
 * what it held before on failure (its allocation may have grown).
 */
int
sp_queue_read(sp_queue *queue, const char *id,
              void (*each)(void *arg, const sp_queue_info *info), void *arg,
              sp_buf *data, sp_error *err)
{
    uint64_t number;
    int rc;

    if (queue__id_parse(id, &number) != SP_OK)
        return sp_err_set(err, SP_EINVAL, "spool: not a queue id");
    pthread_mutex_lock(&queue->reader_lock);
    rc = queue__db_read(queue->reader, number, each, arg, data, err);
    pthread_mutex_unlock(&queue->reader_lock);
    return rc;
}

/*
 * The delete is durable when this returns.  SP_EINVAL for text that is
 * not a queue id, SP_ENOTFOUND, SP_EIO (also when the other process held
 * the database's write lock for longer than the wait allows).
 */
int
sp_queue_delete(sp_queue *queue, const char *id, sp_error *err)
{
    uint64_t number;
    int rc;

    if (queue__id_parse(id, &number) != SP_OK)
        return sp_err_set(err, SP_EINVAL, "spool: not a queue id");
    pthread_mutex_lock(&queue->reader_lock);
    rc = queue__db_delete(queue->reader, number, err);

    /* Full: the reserve gives the room to delete (spool_room.c). */
    if (rc == SP_ELIMIT && queue__reserve_release(queue->dir))
        rc = queue__db_delete(queue->reader, number, err);
    pthread_mutex_unlock(&queue->reader_lock);
    if (rc == SP_ELIMIT)
        rc = err->code = SP_EIO;
    return rc;
}

int
sp_queue_events_take(sp_queue *queue, size_t max,
                     void (*each)(void *arg, int64_t seq, const char *event),
                     void *arg, sp_error *err)
{
    int rc;

    pthread_mutex_lock(&queue->reader_lock);
    rc = queue__db_events(queue->reader, max, each, arg, err);
    pthread_mutex_unlock(&queue->reader_lock);
    return rc;
}

int
sp_queue_events_forget(sp_queue *queue, int64_t seq, sp_error *err)
{
    int rc;

    pthread_mutex_lock(&queue->reader_lock);
    rc = queue__db_events_forget(queue->reader, seq, err);
    pthread_mutex_unlock(&queue->reader_lock);
    return rc;
}

int
sp_queue_count(sp_queue *queue, uint64_t *count, sp_error *err)
{
    int rc;

    pthread_mutex_lock(&queue->reader_lock);
    rc = queue__db_count(queue->reader, count, err);
    pthread_mutex_unlock(&queue->reader_lock);
    return rc;
}

int
sp_queue_key_count(sp_queue *queue, int64_t key, uint64_t *count, sp_error *err)
{
    int rc;

    pthread_mutex_lock(&queue->reader_lock);
    rc = queue__db_key_count(queue->reader, key, count, err);
    pthread_mutex_unlock(&queue->reader_lock);
    return rc;
}

int
sp_queue_keys_queued(void *queue, int64_t key, int64_t *count, sp_error *err)
{
    uint64_t spooled = 0;
    int rc = sp_queue_key_count(queue, key, &spooled, err);

    *count = rc == SP_OK ? (int64_t)spooled : 0;
    return rc;
}

int
sp_queue_event(sp_queue *queue, const char *event, sp_error *err)
{
    size_t len = event != NULL ? strlen(event) : 0;
    queue__item *item;
    char *at;

    if (queue->options.no_writer)
        return sp_err_set(err, SP_ESTATE,
                          "spool: opened without a writer; cannot store");
    if (len == 0)
        return sp_err_set(err, SP_EINVAL, "spool: no event");
    item = sp_malloc(sizeof(*item) + len + 1);
    if (item == NULL)
        return sp_err_set(err, SP_ENOMEM, "spool: out of memory");
    memset(item, 0, sizeof(*item));
    at = (char *)(item + 1);
    item->kind = QUEUE_ITEM_EVENT;
    item->event = spool_put(&at, event, len);

    return spool_hand_over(queue, item, err);
}
