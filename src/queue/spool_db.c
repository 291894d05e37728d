/*
 * spool_db.c: the SQLite database the spool lives in, dir/spool.db.
 *
 * Owns queue__db_*.  doc/spool.md says why SQLite: measured against an
 * append-only log of our own and a file per message, it was fast enough
 * with room to spare, and its crash safety is the best-tested code we
 * could stand on.
 *
 * The database runs in WAL mode with synchronous=FULL: a commit returns
 * once its frames are in the write-ahead log and flushed, and after a
 * crash SQLite replays the log up to the last complete commit, dropping a
 * torn or partly written tail by its frame checksums.  Other processes
 * (the command line) read and delete at the same time; each side waits
 * up to DB_BUSY_MS for the other's write lock.
 *
 * A message is a row of messages (its envelope and state), one row of
 * recipients per forward-path (with where its delivery stands), and its
 * bytes as one row of bodies, apart so that listing never reads them.
 * Delivery outcomes are recorded in the writer's group commits; the
 * message's rows go in the same transaction as its last pending
 * recipient.  The schema carries a version (PRAGMA
 * user_version), checked at open: an older one is upgraded, a newer one
 * refused untouched.
 *
 * Errors: SP_EIO with SQLite's message for everything the storage does
 * (a full disk is SQLite's "database or disk is full"), SP_ENOMEM when
 * SQLite or we run out of memory, SP_ENOTFOUND for an unknown message.
 * Nothing here logs.
 */
#include "queue_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define DB_SCHEMA_VERSION  5
#define DB_BUSY_MS         10000
#define DB_WAL_LIMIT_BYTES (64 << 20) /* WAL cut back to this after use */
#define DB_PAGE_BYTES      16384      /* page size of a new spool */

/* The schema, version 1. */
static const char db_schema_1[] =
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY," /* the queue id as a number */
    " created_ms INTEGER NOT NULL,"
    " state TEXT NOT NULL,"
    " sender TEXT NOT NULL,"
    " client_ip TEXT NOT NULL,"
    " identity TEXT NOT NULL,"
    " size INTEGER NOT NULL);"
    "CREATE TABLE recipients ("
    " message INTEGER NOT NULL,"
    " position INTEGER NOT NULL,"
    " address TEXT NOT NULL,"
    " PRIMARY KEY (message, position)) WITHOUT ROWID;"
    "CREATE TABLE bodies ("
    " id INTEGER PRIMARY KEY,"
    " data BLOB NOT NULL);";

/*
 * Version 2: the DKIM keys whose signatures a message carries (their ids
 * in the key store), so that a key retires only when no queued message
 * needs it.  Indexed by key for that question.
 */
static const char db_schema_2[] =
    "CREATE TABLE message_keys ("
    " message INTEGER NOT NULL,"
    " key INTEGER NOT NULL,"
    " PRIMARY KEY (message, key)) WITHOUT ROWID;"
    "CREATE INDEX message_keys_by_key ON message_keys (key);";

/*
 * Version 3: where each recipient stands: pending (from next_try_ms on),
 * delivered or failed, with the attempts made and the last reply.  Rows
 * of older spools are pending, due at once.
 */
static const char db_schema_3[] =
    "ALTER TABLE recipients ADD COLUMN state TEXT NOT NULL"
    " DEFAULT 'pending';"
    "ALTER TABLE recipients ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE recipients ADD COLUMN next_try_ms INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE recipients ADD COLUMN reply TEXT NOT NULL DEFAULT '';";

/*
 * Version 4: events committed with the submissions and outcomes they
 * describe, kept until the event store has them (an outbox).
 */
static const char db_schema_4[] = "CREATE TABLE events ("
                                  " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                                  " event TEXT NOT NULL);";

/*
 * Version 5: the fields every event of a message carries (a JSON object:
 * subject, campaign, metadata ...), given at submission.
 */
static const char db_schema_5[] =
    "ALTER TABLE messages ADD COLUMN event_fields TEXT NOT NULL DEFAULT '';";

/* Message rows are read with the same column order everywhere. */
#define DB_MESSAGE_COLUMNS                                                     \
    "id, created_ms, state, sender, client_ip, identity, size, event_fields"

struct queue__db {
    sqlite3 *sql;
    sqlite3_stmt *insert_message;   /* writer only */
    sqlite3_stmt *insert_recipient; /* writer only */
    sqlite3_stmt *insert_body;      /* writer only */
    sqlite3_stmt *insert_key;       /* writer only */
    sqlite3_stmt *count_recipients; /* writer only: of a message */
    sqlite3_stmt *update_recipient; /* writer only: record an outcome */
    sqlite3_stmt *count_pending;    /* writer only: recipients pending */
    sqlite3_stmt *delete_rows[4];   /* writer only: a finished message */
    sqlite3_stmt *insert_event;     /* writer only */
    sqlite3_stmt *select_message;   /* one message by id */
    sqlite3_stmt *select_recipients;
    void (*hook)(void *arg, int pages); /* after each commit, or NULL */
    void *hook_arg;
    sp_buf texts;            /* addresses and replies of the recipients
                                of the message being described */
    const char **recipients; /* pointers into texts */
    sp_queue_rcpt *rcpt;     /* their states, replies into texts */
    size_t recipient_capacity;
};

/* The four tables' rows of one message, deleted in this order. */
static const char *const db_delete_sql[4] = {
    "DELETE FROM recipients WHERE message = ?1",
    "DELETE FROM message_keys WHERE message = ?1",
    "DELETE FROM bodies WHERE id = ?1",
    "DELETE FROM messages WHERE id = ?1",
};

/* Fill err from the connection's last error; SP_EIO or SP_ENOMEM. */
static int
db_fail(queue__db *db, sp_error *err, const char *doing)
{
    int code = sqlite3_errcode(db->sql) == SQLITE_NOMEM ? SP_ENOMEM : SP_EIO;

    return sp_err_set(err, code, "spool: %s: %s", doing,
                      sqlite3_errmsg(db->sql));
}

static int
db_exec(queue__db *db, const char *sql, sp_error *err, const char *doing)
{
    if (sqlite3_exec(db->sql, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, err, doing);
    return SP_OK;
}

/* End a failed transaction, keeping the error of what failed. */
static void
db_rollback(queue__db *db)
{
    if (!sqlite3_get_autocommit(db->sql))
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
}

static int
db_user_version(queue__db *db, int *version, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(db->sql, "PRAGMA user_version", -1, &stmt, NULL) !=
            SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW)
        rc = db_fail(db, err, "reading the schema version");
    else
        *version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    return rc;
}

/*
 * Create or upgrade the schema; refuse one from a newer sealpost.  The
 * version is read again inside the write transaction, since a daemon and
 * a command line may open a new spool at the same moment.
 */
static int
db_schema(queue__db *db, sp_error *err)
{
    int version = 0, rc;

    rc = db_user_version(db, &version, err);
    if (rc == SP_OK && version == DB_SCHEMA_VERSION)
        return SP_OK;
    if (rc == SP_OK)
        rc = db_exec(db, "BEGIN IMMEDIATE", err, "creating the schema");
    if (rc == SP_OK)
        rc = db_user_version(db, &version, err);
    if (rc == SP_OK && version > DB_SCHEMA_VERSION)
        rc = sp_err_set(err, SP_EINVAL,
                        "spool: schema version %d is newer than this "
                        "sealpost's (%d); run a newer sealpost",
                        version, DB_SCHEMA_VERSION);
    if (rc == SP_OK && version < 1)
        rc = db_exec(db, db_schema_1, err, "creating the schema");
    if (rc == SP_OK && version < 2)
        rc = db_exec(db, db_schema_2, err, "upgrading the schema");
    if (rc == SP_OK && version < 3)
        rc = db_exec(db, db_schema_3, err, "upgrading the schema");
    if (rc == SP_OK && version < 4)
        rc = db_exec(db, db_schema_4, err, "upgrading the schema");
    if (rc == SP_OK && version < 5)
        rc = db_exec(db, db_schema_5, err, "upgrading the schema");
    if (rc == SP_OK && version < DB_SCHEMA_VERSION)
        rc = db_exec(db, "PRAGMA user_version = 5", err, "creating the schema");
    if (rc == SP_OK)
        rc = db_exec(db, "COMMIT", err, "creating the schema");
    if (rc != SP_OK)
        db_rollback(db);
    return rc;
}

static int
db_prepare(queue__db *db, const char *sql, sqlite3_stmt **stmt, sp_error *err)
{
    if (sqlite3_prepare_v3(db->sql, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt,
                           NULL) != SQLITE_OK)
        return db_fail(db, err, "preparing a statement");
    return SP_OK;
}

static int
db_prepare_all(queue__db *db, bool for_writer, sp_error *err)
{
    int rc = db_prepare(db,
                        "SELECT " DB_MESSAGE_COLUMNS " FROM messages "
                        "WHERE id = ?",
                        &db->select_message, err);

    if (rc == SP_OK)
        rc = db_prepare(db,
                        "SELECT address, state, attempts, next_try_ms, "
                        "reply FROM recipients WHERE message = ? "
                        "ORDER BY position",
                        &db->select_recipients, err);
    if (rc != SP_OK || !for_writer)
        return rc;
    rc = db_prepare(db,
                    "INSERT INTO messages (" DB_MESSAGE_COLUMNS ") "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    &db->insert_message, err);
    if (rc == SP_OK)
        rc = db_prepare(db,
                        "INSERT INTO recipients (message, position, address, "
                        "next_try_ms) VALUES (?, ?, ?, ?)",
                        &db->insert_recipient, err);
    if (rc == SP_OK)
        rc = db_prepare(db, "INSERT INTO bodies (id, data) VALUES (?, ?)",
                        &db->insert_body, err);
    if (rc == SP_OK)
        rc = db_prepare(db,
                        "INSERT OR IGNORE INTO message_keys (message, key) "
                        "VALUES (?, ?)",
                        &db->insert_key, err);
    if (rc == SP_OK)
        rc = db_prepare(db, "SELECT count(*) FROM recipients WHERE message = ?",
                        &db->count_recipients, err);
    if (rc == SP_OK)
        rc = db_prepare(db,
                        "UPDATE recipients SET state = ?, attempts = "
                        "attempts + 1, next_try_ms = ?, reply = ? "
                        "WHERE message = ? AND position = ?",
                        &db->update_recipient, err);
    if (rc == SP_OK)
        rc = db_prepare(db,
                        "SELECT count(*) FROM recipients WHERE message = ? "
                        "AND state = 'pending'",
                        &db->count_pending, err);
    for (size_t i = 0; rc == SP_OK && i < 4; i++)
        rc = db_prepare(db, db_delete_sql[i], &db->delete_rows[i], err);
    if (rc == SP_OK)
        rc = db_prepare(db, "INSERT INTO events (event) VALUES (?)",
                        &db->insert_event, err);
    return rc;
}

static int
db_settings(queue__db *db, bool for_writer, sp_error *err)
{
    char sql[200];
    int rc;

    /*
     * 16 KiB pages (for a new spool; an existing one keeps its own): a
     * 64 KiB message then spans 4 overflow pages instead of 16, and the
     * spool spends a fifth less CPU on it, small messages a little less
     * too (bench/README.md).  64 KiB pages cost small messages more.
     *
     * secure_delete FAST: a delete does not overwrite the freed pages of
     * the message's bytes (Debian's SQLite does by default), which would
     * write every deleted message into the log again, double the I/O of
     * delivery, and make a delete need as much free space as the message
     * (doc/spool.md says what protects deleted mail instead).
     */
    sqlite3_busy_timeout(db->sql, DB_BUSY_MS);
    snprintf(sql, sizeof(sql),
             "PRAGMA page_size = %d; PRAGMA journal_mode = WAL; "
             "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = %d; "
             "PRAGMA secure_delete = FAST",
             DB_PAGE_BYTES, DB_WAL_LIMIT_BYTES);
    rc = db_exec(db, sql, err, "opening the database");

    /* The writer's commits must not stop to copy the log back. */
    if (rc == SP_OK && for_writer)
        sqlite3_wal_autocheckpoint(db->sql, 0);
    return rc;
}

int
queue__db_open(const char *dir, bool for_writer, queue__db **out, sp_error *err)
{
    queue__db *db;
    char *path;
    int rc;

    *out = NULL;
    db = sp_calloc(1, sizeof(*db));
    path = sqlite3_mprintf("%s/spool.db", dir);
    if (db == NULL || path == NULL) {
        sp_free(db);
        sqlite3_free(path);
        return sp_err_set(err, SP_ENOMEM, "spool: out of memory");
    }
    if (sqlite3_open_v2(path, &db->sql,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        rc = db->sql ? db_fail(db, err, "opening the database")
                     : sp_err_set(err, SP_ENOMEM, "spool: out of memory");
    else
        rc = db_settings(db, for_writer, err);
    sqlite3_free(path);
    if (rc == SP_OK)
        rc = db_schema(db, err);
    if (rc == SP_OK)
        rc = db_prepare_all(db, for_writer, err);
    if (rc != SP_OK) {
        queue__db_close(db);
        return rc;
    }
    *out = db;
    return SP_OK;
}

void
queue__db_close(queue__db *db)
{
    if (db == NULL)
        return;
    sqlite3_finalize(db->insert_message);
    sqlite3_finalize(db->insert_recipient);
    sqlite3_finalize(db->insert_body);
    sqlite3_finalize(db->insert_key);
    sqlite3_finalize(db->count_recipients);
    sqlite3_finalize(db->update_recipient);
    sqlite3_finalize(db->count_pending);
    for (size_t i = 0; i < 4; i++)
        sqlite3_finalize(db->delete_rows[i]);
    sqlite3_finalize(db->insert_event);
    sqlite3_finalize(db->select_message);
    sqlite3_finalize(db->select_recipients);
    sqlite3_close(db->sql);
    sp_buf_free(&db->texts);
    sp_free(db->recipients);
    sp_free(db->rcpt);
    sp_free(db);
}

static int
db_wal_hook(void *arg, sqlite3 *sql, const char *name, int pages)
{
    queue__db *db = arg;

    (void)sql;
    (void)name;
    db->hook(db->hook_arg, pages);
    return SQLITE_OK;
}

void
queue__db_on_commit(queue__db *db, void (*hook)(void *arg, int pages),
                    void *arg)
{
    db->hook = hook;
    db->hook_arg = arg;
    sqlite3_wal_hook(db->sql, db_wal_hook, db);
}

int
queue__db_checkpoint(queue__db *db, bool *caught_up)
{
    int log_frames = 0, copied_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(db->sql, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       &log_frames, &copied_frames);

    *caught_up = rc == SQLITE_OK && log_frames == copied_frames;
    if (rc == SQLITE_FULL)
        return SP_ELIMIT;
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? SP_OK : SP_EIO;
}

/* One integer from a PRAGMA; false when it cannot be read. */
static bool
db_pragma_integer(queue__db *db, const char *sql, sqlite3_int64 *value)
{
    sqlite3_stmt *stmt = NULL;
    bool read =
        sqlite3_prepare_v2(db->sql, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW;

    if (read)
        *value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return read;
}

uint64_t
queue__db_page_bytes(queue__db *db)
{
    sqlite3_int64 size = 0;

    return db_pragma_integer(db, "PRAGMA page_size", &size) && size > 0
               ? (uint64_t)size
               : 65536; /* SQLite's largest, when it cannot say */
}

int
queue__db_reusable_bytes(queue__db *db, uint64_t *octets)
{
    sqlite3_int64 pages = 0;

    *octets = 0;
    if (!db_pragma_integer(db, "PRAGMA freelist_count", &pages) || pages < 0)
        return SP_EIO;
    *octets = (uint64_t)pages * queue__db_page_bytes(db);
    return SP_OK;
}

/* Run a bound INSERT once and make it ready for the next bindings. */
static int
db_step(sqlite3_stmt *stmt)
{
    int step = sqlite3_step(stmt);

    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return step;
}

/* Add an event to the outbox; SQLITE_DONE or the failing step. */
static int
db_add_event(queue__db *db, const char *event)
{
    sqlite3_bind_text(db->insert_event, 1, event, -1, SQLITE_STATIC);
    return db_step(db->insert_event);
}

/*
 * Insert one message's rows.  SQLITE_CONSTRAINT on the first means its id
 * is in the spool already: that statement alone is undone, and the rest
 * of the group can go on.
 */
static int
db_insert(queue__db *db, const queue__item *item)
{
    sqlite3_int64 id = (sqlite3_int64)item->number;
    sqlite3_stmt *stmt = db->insert_message;
    int step;

    sqlite3_bind_int64(stmt, 1, id);
    sqlite3_bind_int64(stmt, 2, item->created_ms);
    sqlite3_bind_text(stmt, 3, sp_queue_state_name(SP_QUEUE_QUEUED), -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, item->sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, item->client_ip, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 6, item->identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 7, (sqlite3_int64)item->len);
    sqlite3_bind_text(stmt, 8, item->event_fields, -1, SQLITE_STATIC);
    if ((step = db_step(stmt)) != SQLITE_DONE)
        return step;
    for (size_t i = 0; i < item->recipient_count; i++) {
        stmt = db->insert_recipient;
        sqlite3_bind_int64(stmt, 1, id);
        sqlite3_bind_int64(stmt, 2, (sqlite3_int64)i);
        sqlite3_bind_text(stmt, 3, item->recipients[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 4, item->not_before_ms);
        if ((step = db_step(stmt)) != SQLITE_DONE)
            return step == SQLITE_CONSTRAINT ? SQLITE_ERROR : step;
    }
    for (size_t i = 0; i < item->dkim_key_count; i++) {
        stmt = db->insert_key;
        sqlite3_bind_int64(stmt, 1, id);
        sqlite3_bind_int64(stmt, 2, item->dkim_keys[i]);
        if ((step = db_step(stmt)) != SQLITE_DONE)
            return step == SQLITE_CONSTRAINT ? SQLITE_ERROR : step;
    }
    if (item->event != NULL &&
        (step = db_add_event(db, item->event)) != SQLITE_DONE)
        return step;
    stmt = db->insert_body;
    sqlite3_bind_int64(stmt, 1, id);
    sqlite3_bind_blob64(stmt, 2, item->data, item->len, SQLITE_STATIC);
    step = db_step(stmt);
    return step == SQLITE_CONSTRAINT ? SQLITE_ERROR : step;
}

/* One count(*) of a message's rows; SQLITE_ROW when it was read. */
static int
db_count_rows(sqlite3_stmt *stmt, sqlite3_int64 id, sqlite3_int64 *count)
{
    int step;

    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        *count = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return step;
}

/*
 * Record one item's outcomes; when no recipient is left pending, delete
 * the message.  A record for a message not stored, or naming a position
 * it lacks, changes nothing and sets the item's rc.  Returns SQLITE_DONE
 * or the failing step.
 */
static int
db_record(queue__db *db, queue__item *item)
{
    sqlite3_int64 id = (sqlite3_int64)item->number;
    sqlite3_int64 recipients = 0, pending = 0;
    sqlite3_stmt *stmt = db->update_recipient;
    int step;

    if ((step = db_count_rows(db->count_recipients, id, &recipients)) !=
        SQLITE_ROW)
        return step;
    item->rc = recipients == 0 ? SP_ENOTFOUND : SP_OK;
    for (size_t i = 0; item->rc == SP_OK && i < item->outcome_count; i++)
        if (item->outcomes[i].position >= (size_t)recipients)
            item->rc = SP_EINVAL;
    if (item->rc != SP_OK)
        return SQLITE_DONE;

    for (size_t i = 0; i < item->outcome_count; i++) {
        const sp_queue_outcome *outcome = &item->outcomes[i];

        sqlite3_bind_text(stmt, 1, sp_queue_rcpt_state_name(outcome->state), -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, outcome->next_try_ms);
        sqlite3_bind_text(stmt, 3, outcome->reply, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 4, id);
        sqlite3_bind_int64(stmt, 5, (sqlite3_int64)outcome->position);
        if ((step = db_step(stmt)) != SQLITE_DONE)
            return step;
        if (outcome->event != NULL &&
            (step = db_add_event(db, outcome->event)) != SQLITE_DONE)
            return step;
    }

    if ((step = db_count_rows(db->count_pending, id, &pending)) != SQLITE_ROW)
        return step;
    item->finished = pending == 0;
    for (size_t i = 0; item->finished && i < 4; i++) {
        sqlite3_bind_int64(db->delete_rows[i], 1, id);
        if ((step = db_step(db->delete_rows[i])) != SQLITE_DONE)
            return step;
    }
    return SQLITE_DONE;
}

int
queue__db_store(queue__db *db, queue__item *const *items, size_t count,
                sp_error *err)
{
    int rc = db_exec(db, "BEGIN IMMEDIATE", err, "storing messages");

    for (size_t i = 0; rc == SP_OK && i < count; i++) {
        int step;

        items[i]->finished = false;
        if (items[i]->kind == QUEUE_ITEM_RECORD)
            step = db_record(db, items[i]);
        else if (items[i]->kind == QUEUE_ITEM_EVENT)
            step = db_add_event(db, items[i]->event);
        else {
            step = db_insert(db, items[i]);
            items[i]->rc = step == SQLITE_CONSTRAINT ? SP_EINVAL : SP_OK;
        }
        if (step != SQLITE_DONE && step != SQLITE_CONSTRAINT)
            rc = db_fail(db, err, "storing messages");
    }

    /* COMMIT returns once the log is flushed (synchronous=FULL). */
    if (rc == SP_OK)
        rc = db_exec(db, "COMMIT", err, "storing messages");
    if (rc != SP_OK)
        db_rollback(db);
    return rc;
}

int
queue__db_last_number(queue__db *db, uint64_t *number, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(db->sql, "SELECT max(id) FROM messages", -1, &stmt,
                           NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW)
        rc = db_fail(db, err, "reading the last queue id");
    else
        *number = (uint64_t)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return rc;
}

static const char *
db_text(sqlite3_stmt *stmt, int column)
{
    const char *text = (const char *)sqlite3_column_text(stmt, column);

    return text ? text : "";
}

/* Make room for count recipients' pointers and states. */
static int
db_grow_recipients(queue__db *db, size_t count)
{
    const char **recipients;
    sp_queue_rcpt *rcpt;

    if (count <= db->recipient_capacity)
        return SP_OK;
    recipients = sp_realloc(db->recipients, count * sizeof(*recipients));
    if (recipients == NULL)
        return SP_ENOMEM;
    db->recipients = recipients;
    rcpt = sp_realloc(db->rcpt, count * sizeof(*rcpt));
    if (rcpt == NULL)
        return SP_ENOMEM;
    db->rcpt = rcpt;
    db->recipient_capacity = count;
    return SP_OK;
}

/* The state a recipient row names; FAILED for one this sealpost lacks. */
static sp_queue_rcpt_state
db_rcpt_state(const char *name)
{
    if (strcmp(name, "pending") == 0)
        return SP_QUEUE_RCPT_PENDING;
    if (strcmp(name, "delivered") == 0)
        return SP_QUEUE_RCPT_DELIVERED;
    return SP_QUEUE_RCPT_FAILED;
}

/*
 * Read the recipients of message number into db->texts, db->recipients
 * and db->rcpt.  Runs inside the caller's statement, so it sees the same
 * snapshot.  Texts are appended as address NUL reply NUL, and pointed at
 * once all are read (the buffer may move while it grows).
 */
static int
db_recipients(queue__db *db, sqlite3_int64 number, size_t *count, sp_error *err)
{
    sqlite3_stmt *stmt = db->select_recipients;
    size_t found = 0, offset = 0;
    int step, rc = SP_OK;

    sp_buf_reset(&db->texts);
    sqlite3_bind_int64(stmt, 1, number);
    while (rc == SP_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        rc = db_grow_recipients(db, found + 1);
        if (rc == SP_OK)
            rc = sp_buf_append(&db->texts, db_text(stmt, 0),
                               strlen(db_text(stmt, 0)) + 1);
        if (rc == SP_OK)
            rc = sp_buf_append(&db->texts, db_text(stmt, 4),
                               strlen(db_text(stmt, 4)) + 1);
        if (rc == SP_OK) {
            db->rcpt[found].state = db_rcpt_state(db_text(stmt, 1));
            db->rcpt[found].attempts = (unsigned)sqlite3_column_int(stmt, 2);
            db->rcpt[found].next_try_ms = sqlite3_column_int64(stmt, 3);
            found++;
        }
    }
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = db_fail(db, err, "reading recipients");
    sqlite3_reset(stmt);
    if (rc == SP_ENOMEM)
        return sp_err_set(err, rc, "spool: out of memory");

    for (size_t i = 0; rc == SP_OK && i < found; i++) {
        db->recipients[i] = db->texts.data + offset;
        offset += strlen(db->recipients[i]) + 1;
        db->rcpt[i].reply = db->texts.data + offset;
        offset += strlen(db->rcpt[i].reply) + 1;
    }
    *count = found;
    return rc;
}

/* Describe the message on stmt's current row to each. */
static int
db_describe(queue__db *db, sqlite3_stmt *stmt,
            void (*each)(void *arg, const sp_queue_info *info), void *arg,
            sp_error *err)
{
    sp_queue_info info = {0};
    sqlite3_int64 number = sqlite3_column_int64(stmt, 0);
    int rc = db_recipients(db, number, &info.recipient_count, err);

    if (rc != SP_OK)
        return rc;
    queue__id_format((uint64_t)number, info.id);
    info.created_ms = sqlite3_column_int64(stmt, 1);
    info.state = SP_QUEUE_QUEUED; /* the only state a stored message has */
    info.sender = db_text(stmt, 3);
    info.client_ip = db_text(stmt, 4);
    info.identity = db_text(stmt, 5);
    info.size = (uint64_t)sqlite3_column_int64(stmt, 6);
    info.event_fields = db_text(stmt, 7);
    info.recipients = db->recipients;
    info.rcpt = db->rcpt;
    each(arg, &info);
    return SP_OK;
}

int
queue__db_list(queue__db *db,
               void (*each)(void *arg, const sp_queue_info *info), void *arg,
               sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc, step = SQLITE_DONE;

    rc = db_prepare(db,
                    "SELECT " DB_MESSAGE_COLUMNS " FROM messages "
                    "ORDER BY id",
                    &stmt, err);
    while (rc == SP_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW)
        rc = db_describe(db, stmt, each, arg, err);
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = db_fail(db, err, "listing messages");
    sqlite3_finalize(stmt);
    return rc;
}

/* Append the bytes of message number to data, without a second copy. */
static int
db_body(queue__db *db, sqlite3_int64 number, sp_buf *data, sp_error *err)
{
    sqlite3_blob *blob = NULL;
    size_t len;
    int rc;

    if (sqlite3_blob_open(db->sql, "main", "bodies", "data", number, 0,
                          &blob) != SQLITE_OK)
        return db_fail(db, err, "reading a message");
    len = (size_t)sqlite3_blob_bytes(blob);
    rc = sp_buf_reserve(data, len);
    if (rc != SP_OK)
        sp_err_set(err, rc, "spool: out of memory");
    else if (sqlite3_blob_read(blob, data->data + data->len, (int)len, 0) !=
             SQLITE_OK)
        rc = db_fail(db, err, "reading a message");
    else {
        data->len += len;
        data->data[data->len] = '\0';
    }
    sqlite3_blob_close(blob);
    return rc;
}

int
queue__db_read(queue__db *db, uint64_t number,
               void (*each)(void *arg, const sp_queue_info *info), void *arg,
               sp_buf *data, sp_error *err)
{
    sqlite3_stmt *stmt = db->select_message;
    size_t old_len = data ? data->len : 0;
    int rc = SP_OK, step;

    /* The row stays current while the rest is read: one snapshot. */
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)number);
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        char id[SP_QUEUE_ID_SIZE];

        queue__id_format(number, id);
        rc = sp_err_set(err, SP_ENOTFOUND, "spool: no message %s", id);
    } else if (step != SQLITE_ROW)
        rc = db_fail(db, err, "reading a message");
    if (rc == SP_OK && data != NULL)
        rc = db_body(db, (sqlite3_int64)number, data, err);
    if (rc == SP_OK && each != NULL)
        rc = db_describe(db, stmt, each, arg, err);
    sqlite3_reset(stmt);
    if (rc != SP_OK && data != NULL && data->data != NULL) {
        data->len = old_len;
        data->data[old_len] = '\0';
    }
    return rc;
}

int
queue__db_delete(queue__db *db, uint64_t number, sp_error *err)
{
    char sql[300], id[SP_QUEUE_ID_SIZE];
    int rc;

    snprintf(sql, sizeof(sql),
             "DELETE FROM recipients WHERE message = %lld; "
             "DELETE FROM message_keys WHERE message = %lld; "
             "DELETE FROM bodies WHERE id = %lld; "
             "DELETE FROM messages WHERE id = %lld",
             (long long)number, (long long)number, (long long)number,
             (long long)number);
    rc = db_exec(db, "BEGIN IMMEDIATE", err, "deleting a message");
    if (rc == SP_OK)
        rc = db_exec(db, sql, err, "deleting a message");
    if (rc == SP_OK && sqlite3_changes(db->sql) == 0) {
        queue__id_format(number, id);
        rc = sp_err_set(err, SP_ENOTFOUND, "spool: no message %s", id);
    }
    if (rc == SP_OK)
        rc = db_exec(db, "COMMIT", err, "deleting a message");
    if (rc == SP_EIO && sqlite3_errcode(db->sql) == SQLITE_FULL)
        rc = err->code = SP_ELIMIT;
    if (rc != SP_OK)
        db_rollback(db);
    return rc;
}

int
queue__db_key_count(queue__db *db, int64_t key, uint64_t *count, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(db->sql,
                           "SELECT count(*) FROM message_keys WHERE key = ?",
                           -1, &stmt, NULL) != SQLITE_OK)
        return db_fail(db, err, "counting a key's messages");
    sqlite3_bind_int64(stmt, 1, key);
    if (sqlite3_step(stmt) != SQLITE_ROW)
        rc = db_fail(db, err, "counting a key's messages");
    else
        *count = (uint64_t)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return rc;
}

int
queue__db_count(queue__db *db, uint64_t *count, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(db->sql, "SELECT count(*) FROM messages", -1, &stmt,
                           NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW)
        rc = db_fail(db, err, "counting messages");
    else
        *count = (uint64_t)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return rc;
}

int
queue__db_events(queue__db *db, size_t max,
                 void (*each)(void *arg, int64_t seq, const char *event),
                 void *arg, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc, step = SQLITE_DONE;

    rc = db_prepare(db, "SELECT seq, event FROM events ORDER BY seq LIMIT ?",
                    &stmt, err);
    if (rc == SP_OK)
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)max);
    while (rc == SP_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW)
        each(arg, sqlite3_column_int64(stmt, 0), db_text(stmt, 1));
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = db_fail(db, err, "reading events");
    sqlite3_finalize(stmt);
    return rc;
}

int
queue__db_events_forget(queue__db *db, int64_t seq, sp_error *err)
{
    char sql[80];

    snprintf(sql, sizeof(sql), "DELETE FROM events WHERE seq <= %lld",
             (long long)seq);
    return db_exec(db, sql, err, "forgetting events");
}
