/*
 * spool_stores.c: the three spool designs the benchmark compares.
 *
 * Owns spool_sqlite_ops, spool_log_ops and spool_files_ops.  Each keeps
 * what a real spool must keep (the message bytes, the sender, the
 * recipients, the client address and the time of acceptance) and makes
 * it durable before its commit returns:
 *
 *   sqlite  SQLite in WAL mode with synchronous=FULL: one transaction per
 *           group, the bytes as a BLOB in their own table, the envelope as
 *           rows (a message row, one row per recipient).  Two ways of
 *           copying the WAL back into the database: SQLite's default
 *           (the commit that crosses 1,000 pages does it), and, as
 *           "sqlite-ckpt", a thread of its own with its own connection.
 *   log     segment files of our own, appended with writev, one
 *           fdatasync per group; each record carries its length and a
 *           CRC-32 (zlib) so that a torn tail could be detected.
 *   files   one file per message, written and flushed by the submitting
 *           thread under a temporary name; the writer renames a group
 *           into place and flushes the directory once for all of it.
 *
 * None of them deletes or recovers: the benchmark measures acceptance.
 */
#include "spool_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#define SQLITE_CHECKPOINT_PAGES 1000        /* SQLite's own default threshold */
#define LOG_SEGMENT_BYTES       (64u << 20) /* a new segment past this size */
#define LOG_MAGIC               0x53504c31u /* "SPL1" */
#define LOG_HEADER_BYTES        1024        /* record header and envelope */

static int
fail_errno(char *why, const char *doing)
{
    snprintf(why, SPOOL_WHY_SIZE, "%s: %s", doing, strerror(errno));
    return -1;
}

/* ------------------------------------------------------------------------
 * SQLite
 */

struct sqlite_store {
    sqlite3 *db;
    sqlite3_stmt *message;   /* INSERT INTO messages */
    sqlite3_stmt *body;      /* INSERT INTO bodies */
    sqlite3_stmt *recipient; /* INSERT INTO recipients */

    /* The checkpointing thread, in the sqlite-ckpt variant only. */
    bool checkpointer;      /* whether it runs */
    sqlite3 *checkpoint_db; /* its own connection */
    pthread_t thread;
    pthread_mutex_t lock; /* guards the two fields below */
    pthread_cond_t wake;  /* signalled when the WAL has grown */
    int wal_pages;        /* pages in the WAL after the last commit */
    bool stop;            /* the store is closing */
};

static const char sqlite_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE messages (id INTEGER PRIMARY KEY, created INTEGER NOT NULL,"
    " state INTEGER NOT NULL, sender TEXT NOT NULL,"
    " client_ip TEXT NOT NULL, size INTEGER NOT NULL);"
    "CREATE TABLE bodies (id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE recipients (message INTEGER NOT NULL,"
    " position INTEGER NOT NULL, address TEXT NOT NULL,"
    " state INTEGER NOT NULL, PRIMARY KEY (message, position))"
    " WITHOUT ROWID;";

static int sqlite_open(const char *dir, void **store, char *why);

static int
sqlite_fail(struct sqlite_store *self, char *why, const char *doing)
{
    snprintf(why, SPOOL_WHY_SIZE, "sqlite: %s: %s", doing,
             sqlite3_errmsg(self->db));
    return -1;
}

static void
sqlite_close(void *store)
{
    struct sqlite_store *self = store;

    if (self->checkpointer) {
        pthread_mutex_lock(&self->lock);
        self->stop = true;
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
        sqlite3_close(self->checkpoint_db);
    }
    sqlite3_finalize(self->message);
    sqlite3_finalize(self->body);
    sqlite3_finalize(self->recipient);
    sqlite3_close(self->db);
    free(self);
}

/*
 * Called by SQLite after each commit of the writer's connection: instead
 * of checkpointing there (SQLite's default, which makes the commit that
 * crosses the threshold wait for a copy and a flush of the database
 * file), wake the checkpointing thread.
 */
static int
sqlite_wal_grown(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct sqlite_store *self = arg;

    (void)db;
    (void)name;
    if (pages < SQLITE_CHECKPOINT_PAGES)
        return SQLITE_OK;
    pthread_mutex_lock(&self->lock);
    self->wal_pages = pages;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return SQLITE_OK;
}

/* Copy the WAL into the database while the writer goes on appending. */
static void *
sqlite_checkpoint_main(void *arg)
{
    struct sqlite_store *self = arg;

    pthread_mutex_lock(&self->lock);
    while (!self->stop) {
        if (self->wal_pages < SQLITE_CHECKPOINT_PAGES) {
            pthread_cond_wait(&self->wake, &self->lock);
            continue;
        }
        self->wal_pages = 0;
        pthread_mutex_unlock(&self->lock);
        sqlite3_wal_checkpoint_v2(self->checkpoint_db, NULL,
                                  SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

static int
sqlite_start_checkpointer(struct sqlite_store *self, const char *path,
                          char *why)
{
    if (sqlite3_open(path, &self->checkpoint_db) != SQLITE_OK) {
        snprintf(why, SPOOL_WHY_SIZE, "sqlite: opening the checkpointer");
        return -1;
    }
    sqlite3_busy_timeout(self->checkpoint_db, 5000);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    if (pthread_create(&self->thread, NULL, sqlite_checkpoint_main, self) !=
        0) {
        snprintf(why, SPOOL_WHY_SIZE, "sqlite: starting the checkpointer");
        return -1;
    }
    self->checkpointer = true;
    sqlite3_wal_hook(self->db, sqlite_wal_grown, self);
    return 0;
}

static int
sqlite_open_ckpt(const char *dir, void **store, char *why)
{
    char path[PATH_MAX];

    if (sqlite_open(dir, store, why) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/spool.db", dir);
    return sqlite_start_checkpointer(*store, path, why);
}

static int
sqlite_open(const char *dir, void **store, char *why)
{
    struct sqlite_store *self = calloc(1, sizeof(*self));
    char path[PATH_MAX];

    if (self == NULL)
        return fail_errno(why, "sqlite");
    snprintf(path, sizeof(path), "%s/spool.db", dir);
    *store = self;
    if (sqlite3_open(path, &self->db) != SQLITE_OK ||
        sqlite3_exec(self->db, sqlite_schema, NULL, NULL, NULL) != SQLITE_OK)
        return sqlite_fail(self, why, "opening");
    if (sqlite3_prepare_v2(self->db,
                           "INSERT INTO messages VALUES (?, ?, 0, ?, ?, ?)", -1,
                           &self->message, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(self->db, "INSERT INTO bodies VALUES (?, ?)", -1,
                           &self->body, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(self->db,
                           "INSERT INTO recipients VALUES (?, ?, ?, 0)", -1,
                           &self->recipient, NULL) != SQLITE_OK)
        return sqlite_fail(self, why, "preparing");
    return 0;
}

/* Run stmt once to completion and make it ready for the next bindings. */
static int
sqlite_step(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);

    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int
sqlite_insert(struct sqlite_store *self, const spool_msg *msg)
{
    sqlite3_int64 id = (sqlite3_int64)msg->number;

    sqlite3_bind_int64(self->message, 1, id);
    sqlite3_bind_int64(self->message, 2, msg->created_ms);
    sqlite3_bind_text(self->message, 3, msg->sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(self->message, 4, msg->client_ip, -1, SQLITE_STATIC);
    sqlite3_bind_int64(self->message, 5, (sqlite3_int64)msg->len);
    if (sqlite_step(self->message) != 0)
        return -1;
    sqlite3_bind_int64(self->body, 1, id);
    sqlite3_bind_blob(self->body, 2, msg->data, (int)msg->len, SQLITE_STATIC);
    if (sqlite_step(self->body) != 0)
        return -1;
    for (size_t i = 0; i < msg->recipient_count; i++) {
        sqlite3_bind_int64(self->recipient, 1, id);
        sqlite3_bind_int64(self->recipient, 2, (sqlite3_int64)i);
        sqlite3_bind_text(self->recipient, 3, msg->recipients[i], -1,
                          SQLITE_STATIC);
        if (sqlite_step(self->recipient) != 0)
            return -1;
    }
    return 0;
}

static int
sqlite_commit(void *store, const spool_msg *const *msgs, size_t count,
              char *why)
{
    struct sqlite_store *self = store;

    if (sqlite3_exec(self->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return sqlite_fail(self, why, "BEGIN");
    for (size_t i = 0; i < count; i++) {
        if (sqlite_insert(self, msgs[i]) != 0) {
            sqlite_fail(self, why, "inserting");
            sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    if (sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return sqlite_fail(self, why, "COMMIT");
    return 0;
}

const spool_store_ops spool_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .prepare = NULL,
    .commit = sqlite_commit,
    .close = sqlite_close,
};

const spool_store_ops spool_sqlite_ckpt_ops = {
    .name = "sqlite-ckpt",
    .open = sqlite_open_ckpt,
    .prepare = NULL,
    .commit = sqlite_commit,
    .close = sqlite_close,
};

/* ------------------------------------------------------------------------
 * Append-only log
 */

struct log_store {
    int dir_fd;       /* the spool directory, flushed for new segments */
    int fd;           /* the segment being appended */
    unsigned segment; /* its number, in its name */
    uint64_t offset;  /* its length so far */
    char (*headers)[LOG_HEADER_BYTES]; /* one per message of a group */
    struct iovec *iov;                 /* two per message of a group */
    size_t capacity; /* messages headers[] and iov[] can take */
};

static void
log_close(void *store)
{
    struct log_store *self = store;

    if (self->fd >= 0)
        close(self->fd);
    if (self->dir_fd >= 0)
        close(self->dir_fd);
    free(self->headers);
    free(self->iov);
    free(self);
}

/* Start segment number self->segment and make its name durable. */
static int
log_new_segment(struct log_store *self, char *why)
{
    char name[32];

    if (self->fd >= 0)
        close(self->fd);
    snprintf(name, sizeof(name), "%08u.log", self->segment);
    self->fd = openat(self->dir_fd, name,
                      O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (self->fd < 0 || fsync(self->dir_fd) != 0)
        return fail_errno(why, "log: new segment");
    self->offset = 0;
    return 0;
}

static int
log_open(const char *dir, void **store, char *why)
{
    struct log_store *self = calloc(1, sizeof(*self));

    if (self == NULL)
        return fail_errno(why, "log");
    self->fd = -1;
    *store = self;
    self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0)
        return fail_errno(why, "log: opening the directory");
    return log_new_segment(self, why);
}

static void
put32(unsigned char *at, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        at[i] = (unsigned char)(value >> (8 * i));
}

static void
put64(unsigned char *at, uint64_t value)
{
    put32(at, (uint32_t)value);
    put32(at + 4, (uint32_t)(value >> 32));
}

/*
 * Lay out msg's record header in head: magic, total length, CRC-32 of
 * everything after the first 12 bytes (the rest of the header and the
 * data), number, creation time, envelope length, then the envelope as
 * NUL-terminated strings.  Returns the header's length, 0 if too long.
 */
static size_t
log_header(const spool_msg *msg, unsigned char *head)
{
    size_t used = 32;
    uLong crc;

#define LOG_PUT_TEXT(text)                                                     \
    do {                                                                       \
        size_t n = strlen(text) + 1;                                           \
        if (used + n > LOG_HEADER_BYTES)                                       \
            return 0;                                                          \
        memcpy(head + used, text, n);                                          \
        used += n;                                                             \
    } while (0)

    LOG_PUT_TEXT(msg->sender);
    LOG_PUT_TEXT(msg->client_ip);
    for (size_t i = 0; i < msg->recipient_count; i++)
        LOG_PUT_TEXT(msg->recipients[i]);
#undef LOG_PUT_TEXT

    put32(head, LOG_MAGIC);
    put32(head + 4, (uint32_t)(used + msg->len));
    put64(head + 12, msg->number);
    put64(head + 20, (uint64_t)msg->created_ms);
    put32(head + 28, (uint32_t)(used - 32));
    crc = crc32(0L, head + 12, (uInt)(used - 12));
    crc = crc32(crc, msg->data, (uInt)msg->len);
    put32(head + 8, (uint32_t)crc);
    return used;
}

static int
log_reserve(struct log_store *self, size_t count, char *why)
{
    if (count <= self->capacity)
        return 0;
    free(self->headers);
    free(self->iov);
    self->headers = malloc(count * sizeof(*self->headers));
    self->iov = malloc(2 * count * sizeof(*self->iov));
    if (self->headers == NULL || self->iov == NULL)
        return fail_errno(why, "log");
    self->capacity = count;
    return 0;
}

/* Write iov[0..count) completely, IOV_MAX entries at a time. */
static int
log_writev(int fd, struct iovec *iov, size_t count)
{
    while (count > 0) {
        int take = count < IOV_MAX ? (int)count : IOV_MAX;
        ssize_t done = writev(fd, iov, take);

        if (done < 0 && errno == EINTR)
            continue;
        if (done < 0)
            return -1;
        while (count > 0 && (size_t)done >= iov->iov_len) {
            done -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= (size_t)done;
        }
    }
    return 0;
}

static int
log_commit(void *store, const spool_msg *const *msgs, size_t count, char *why)
{
    struct log_store *self = store;
    size_t bytes = 0;

    if (log_reserve(self, count, why) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        size_t head = log_header(msgs[i], (unsigned char *)self->headers[i]);

        if (head == 0) {
            snprintf(why, SPOOL_WHY_SIZE, "log: envelope too long");
            return -1;
        }
        self->iov[2 * i] = (struct iovec){self->headers[i], head};
        self->iov[2 * i + 1] =
            (struct iovec){(void *)msgs[i]->data, msgs[i]->len};
        bytes += head + msgs[i]->len;
    }
    if (log_writev(self->fd, self->iov, 2 * count) != 0 ||
        fdatasync(self->fd) != 0)
        return fail_errno(why, "log: appending");
    self->offset += bytes;
    if (self->offset >= LOG_SEGMENT_BYTES) {
        self->segment++;
        return log_new_segment(self, why);
    }
    return 0;
}

const spool_store_ops spool_log_ops = {
    .name = "log",
    .open = log_open,
    .prepare = NULL,
    .commit = log_commit,
    .close = log_close,
};

/* ------------------------------------------------------------------------
 * One file per message
 */

struct files_store {
    int dir_fd; /* the spool directory, where the files are */
};

static void
files_close(void *store)
{
    struct files_store *self = store;

    if (self->dir_fd >= 0)
        close(self->dir_fd);
    free(self);
}

static int
files_open(const char *dir, void **store, char *why)
{
    struct files_store *self = calloc(1, sizeof(*self));

    if (self == NULL)
        return fail_errno(why, "files");
    *store = self;
    self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0)
        return fail_errno(why, "files: opening the directory");
    return 0;
}

/* Write the envelope as text lines, then the data, then flush the file. */
static int
files_prepare(void *store, const spool_msg *msg, char *why)
{
    struct files_store *self = store;
    char name[40], head[LOG_HEADER_BYTES];
    struct iovec iov[2];
    int fd, used;

    snprintf(name, sizeof(name), "%016llx.tmp",
             (unsigned long long)msg->number);
    used = snprintf(head, sizeof(head), "S%s\nC%s\nT%lld\n", msg->sender,
                    msg->client_ip, (long long)msg->created_ms);
    for (size_t i = 0; i < msg->recipient_count && used < (int)sizeof(head);
         i++)
        used += snprintf(head + used, sizeof(head) - (size_t)used, "R%s\n",
                         msg->recipients[i]);
    if (used >= (int)sizeof(head)) {
        snprintf(why, SPOOL_WHY_SIZE, "files: envelope too long");
        return -1;
    }
    iov[0] = (struct iovec){head, (size_t)used};
    iov[1] = (struct iovec){(void *)msg->data, msg->len};
    fd = openat(self->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                0600);
    if (fd < 0)
        return fail_errno(why, "files: creating");
    if (log_writev(fd, iov, 2) != 0 || fdatasync(fd) != 0) {
        close(fd);
        return fail_errno(why, "files: writing");
    }
    close(fd);
    return 0;
}

static int
files_commit(void *store, const spool_msg *const *msgs, size_t count, char *why)
{
    struct files_store *self = store;
    char from[40], to[40];

    for (size_t i = 0; i < count; i++) {
        unsigned long long number = (unsigned long long)msgs[i]->number;

        snprintf(from, sizeof(from), "%016llx.tmp", number);
        snprintf(to, sizeof(to), "%016llx", number);
        if (renameat(self->dir_fd, from, self->dir_fd, to) != 0)
            return fail_errno(why, "files: renaming");
    }
    if (fsync(self->dir_fd) != 0)
        return fail_errno(why, "files: flushing the directory");
    return 0;
}

const spool_store_ops spool_files_ops = {
    .name = "files",
    .open = files_open,
    .prepare = files_prepare,
    .commit = files_commit,
    .close = files_close,
};
