/*
 * sqlite_events.c: the event store of the SQLite backend, in
 * data_dir/events.db.
 *
 * Owns store__events_*.  Events are many and short-lived next to the
 * keys, so they have a database of their own: its write-ahead log, its
 * growth and (later) its pruning do not touch sealpost.db.  Each event is
 * a row holding its JSON and the fields queries select by, indexed; the
 * row's sequence number is the cursor of pagination and of --follow.
 * WAL with synchronous=FULL, like the rest of the store: an add is durable
 * when it returns.  Events older than the retention period are pruned in
 * short transactions by whoever calls store__events_prune (the daemon).  An
 * event id seen before is ignored, so whoever moves events here may give the
 * same ones again after a crash.
 */
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define EVENTS_SCHEMA_VERSION 1
#define EVENTS_BUSY_MS        5000
#define EVENTS_DEFAULT_LIMIT  1000

static const char events_schema_1[] =
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE,"
    " ts INTEGER NOT NULL,"
    " type TEXT NOT NULL,"
    " recipient TEXT NOT NULL,"
    " queue_id TEXT NOT NULL,"
    " campaign_id TEXT NOT NULL,"
    " body TEXT NOT NULL);"
    "CREATE INDEX events_by_recipient ON events (recipient, seq);"
    "CREATE INDEX events_by_queue_id ON events (queue_id, seq);"
    "CREATE INDEX events_by_campaign ON events (campaign_id, seq);"
    "CREATE INDEX events_by_type ON events (type, ts);"
    "CREATE INDEX events_by_time ON events (ts);"
    "PRAGMA user_version = 1;";

static int
events_fail(sqlite3 *db, sp_error *err, const char *doing)
{
    return sp_err_set(err, SP_EIO, "event store: %s: %s", doing,
                      db ? sqlite3_errmsg(db) : "cannot open");
}

/* Create the schema when new; refuse one from a newer sealpost. */
static int
events_schema(sqlite3 *db, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int version = -1;

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return events_fail(db, err, "opening");
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL) ==
            SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    if (version < 0 || version > EVENTS_SCHEMA_VERSION) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (version < 0)
            return events_fail(db, err, "reading the schema version");
        return sp_err_set(err, SP_EINVAL,
                          "event store: schema version %d is newer than "
                          "this sealpost's (%d)",
                          version, EVENTS_SCHEMA_VERSION);
    }
    if ((version == 0 &&
         sqlite3_exec(db, events_schema_1, NULL, NULL, NULL) != SQLITE_OK) ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = events_fail(db, err, "creating the schema");

        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return SP_OK;
}

int
store__events_open(const char *data_dir, sqlite3 **out, sp_error *err)
{
    char path[4096];
    sqlite3 *db = NULL;
    int rc = SP_OK;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/events.db", data_dir);
    if (sqlite3_open_v2(path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK)
        rc = events_fail(db, err, "opening");
    if (rc == SP_OK) {
        sqlite3_busy_timeout(db, EVENTS_BUSY_MS);
        if (sqlite3_exec(db,
                         "PRAGMA journal_mode = WAL; "
                         "PRAGMA synchronous = FULL",
                         NULL, NULL, NULL) != SQLITE_OK)
            rc = events_fail(db, err, "opening");
    }
    if (rc == SP_OK)
        rc = events_schema(db, err);
    if (rc != SP_OK) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return SP_OK;
}

int
store__events_add(sqlite3 *db, const sp_store_event *events, size_t count,
                  sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO events (event_id, ts, type,"
                           " recipient, queue_id, campaign_id, body)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           -1, &stmt, NULL) != SQLITE_OK)
        rc = events_fail(db, err, "adding events");

    for (size_t i = 0; rc == SP_OK && i < count; i++) {
        const sp_store_event *event = &events[i];

        sqlite3_bind_text(stmt, 1, event->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, event->timestamp_ms);
        sqlite3_bind_text(stmt, 3, event->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 4, event->recipient ? event->recipient : "", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(stmt, 5, event->queue_id ? event->queue_id : "", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(stmt, 6, event->campaign_id ? event->campaign_id : "",
                          -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 7, event->json, -1, SQLITE_STATIC);
        if (sqlite3_step(stmt) != SQLITE_DONE)
            rc = events_fail(db, err, "adding events");
        sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);

    /* COMMIT returns once the log is flushed (synchronous=FULL). */
    if (rc == SP_OK &&
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = events_fail(db, err, "adding events");
    if (rc != SP_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

#define EVENTS_MAX_VALUES 100 /* values of one list filter */

/* The values of a list filter ("a,b,c"), split in place into values[]. */
static size_t
events_split(char *list, const char **values)
{
    size_t count = 0;
    char *save = NULL;

    for (char *value = strtok_r(list, ",", &save);
         value != NULL && count < EVENTS_MAX_VALUES;
         value = strtok_r(NULL, ",", &save))
        values[count++] = value;
    return count;
}

/* One list filter: its column, and its values once split. */
struct events_list {
    const char *column;
    char *copy; /* owned */
    const char *values[EVENTS_MAX_VALUES];
    size_t count;
};

/* "AND column IN (?, ...)" for a list that is set; false: out of memory. */
static bool
events_where(sp_buf *sql, struct events_list *list, const char *text)
{
    if (text == NULL || text[0] == '\0')
        return true;
    list->copy = sp_strndup(text, strlen(text));
    if (list->copy == NULL)
        return false;
    list->count = events_split(list->copy, list->values);
    if (list->count == 0)
        return true;
    if (sp_buf_printf(sql, " AND %s IN (?", list->column) != SP_OK)
        return false;
    for (size_t i = 1; i < list->count; i++)
        if (sp_buf_append(sql, ", ?", 3) != SP_OK)
            return false;
    return sp_buf_append(sql, ")", 1) == SP_OK;
}

int
store__events_find(sqlite3 *db, const sp_store_event_filter *filter,
                   void (*each)(void *arg, int64_t cursor, const char *json),
                   void *arg, sp_error *err)
{
    struct events_list lists[4] = {
        {.column = "type"},
        {.column = "recipient"},
        {.column = "queue_id"},
        {.column = "campaign_id"},
    };
    const char *texts[4] = {filter->type, filter->recipient, filter->queue_id,
                            filter->campaign_id};
    sp_buf sql = SP_BUF_INIT;
    sqlite3_stmt *stmt = NULL;
    int step = SQLITE_DONE, next = 2, rc = SP_OK;

    /* Only the filters that are set, so SQLite picks their index. */
    if (sp_buf_printf(&sql, "SELECT seq, body FROM events WHERE seq > ?") !=
        SP_OK)
        rc = SP_ENOMEM;
    for (size_t i = 0; rc == SP_OK && i < 4; i++)
        if (!events_where(&sql, &lists[i], texts[i]))
            rc = SP_ENOMEM;
    if (rc == SP_OK &&
        sp_buf_printf(&sql, "%s%s ORDER BY seq LIMIT ?",
                      filter->from_ms ? " AND ts >= ?" : "",
                      filter->to_ms ? " AND ts < ?" : "") != SP_OK)
        rc = SP_ENOMEM;
    if (rc == SP_ENOMEM)
        sp_err_set(err, rc, "out of memory");
    else if (sqlite3_prepare_v2(db, sql.data, -1, &stmt, NULL) != SQLITE_OK)
        rc = events_fail(db, err, "reading events");

    if (rc == SP_OK) {
        sqlite3_bind_int64(stmt, 1, filter->after);
        for (size_t i = 0; i < 4; i++)
            for (size_t v = 0; v < lists[i].count; v++)
                sqlite3_bind_text(stmt, next++, lists[i].values[v], -1,
                                  SQLITE_STATIC);
        if (filter->from_ms)
            sqlite3_bind_int64(stmt, next++, filter->from_ms);
        if (filter->to_ms)
            sqlite3_bind_int64(stmt, next++, filter->to_ms);
        sqlite3_bind_int64(stmt, next,
                           (sqlite3_int64)(filter->limit
                                               ? filter->limit
                                               : EVENTS_DEFAULT_LIMIT));
        while ((step = sqlite3_step(stmt)) == SQLITE_ROW)
            each(arg, sqlite3_column_int64(stmt, 0),
                 (const char *)sqlite3_column_text(stmt, 1));
        if (step != SQLITE_DONE)
            rc = events_fail(db, err, "reading events");
    }
    sqlite3_finalize(stmt);
    for (size_t i = 0; i < 4; i++)
        sp_free(lists[i].copy);
    sp_buf_free(&sql);
    return rc;
}

int
store__events_prune(sqlite3 *db, int64_t before_ms, size_t max, size_t *deleted,
                    sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    /* By the time index, oldest first, a bounded number at a time. */
    *deleted = 0;
    if (sqlite3_prepare_v2(db,
                           "DELETE FROM events WHERE seq IN (SELECT seq FROM "
                           "events WHERE ts < ? ORDER BY ts LIMIT ?)",
                           -1, &stmt, NULL) != SQLITE_OK)
        return events_fail(db, err, "pruning events");
    sqlite3_bind_int64(stmt, 1, before_ms);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)max);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = events_fail(db, err, "pruning events");
    else
        *deleted = (size_t)sqlite3_changes(db);
    sqlite3_finalize(stmt);
    return rc;
}

int
store__events_count(sqlite3 *db, int64_t from_ms, int64_t to_ms,
                    int64_t bucket_ms, bool by_domain,
                    void (*each)(void *arg, int64_t bucket, const char *domain,
                                 const char *type, int64_t count),
                    void *arg, sp_error *err)
{
    /* Both by the time index; the domain is what follows the last '@'. */
    static const char by_time[] =
        "SELECT CASE WHEN ?3 > 0 THEN (ts / ?3) * ?3 ELSE ?1 END AS bucket,"
        " '', type, count(*) FROM events"
        " WHERE ts >= ?1 AND (?2 = 0 OR ts < ?2)"
        " GROUP BY bucket, type ORDER BY bucket, type";
    static const char by_domain_sql[] =
        "SELECT ?1, lower(substr(recipient, instr(recipient, '@') + 1))"
        " AS domain, type, count(*) FROM events"
        " WHERE ts >= ?1 AND (?2 = 0 OR ts < ?2) AND recipient != ''"
        " GROUP BY domain, type ORDER BY domain, type";
    sqlite3_stmt *stmt = NULL;
    int step;

    if (sqlite3_prepare_v2(db, by_domain ? by_domain_sql : by_time, -1, &stmt,
                           NULL) != SQLITE_OK)
        return events_fail(db, err, "counting events");
    sqlite3_bind_int64(stmt, 1, from_ms);
    sqlite3_bind_int64(stmt, 2, to_ms);
    if (!by_domain)
        sqlite3_bind_int64(stmt, 3, bucket_ms);
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW)
        each(arg, sqlite3_column_int64(stmt, 0),
             (const char *)sqlite3_column_text(stmt, 1),
             (const char *)sqlite3_column_text(stmt, 2),
             sqlite3_column_int64(stmt, 3));
    sqlite3_finalize(stmt);
    if (step != SQLITE_DONE)
        return events_fail(db, err, "counting events");
    return SP_OK;
}
