/*
 * sqlite.c: the embedded store backend, SQLite in data_dir/sealpost.db.
 *
 * Owns store__sqlite_open and the functions of its table.  The database
 * runs in WAL mode with full synchronization, so a commit is on disk when
 * the call returns, and the daemon and the command line may use it at
 * once (each waits up to STORE_BUSY_MS for the other's lock).
 *
 * The schema carries a version (PRAGMA user_version), checked at open: an
 * older one is upgraded step by step, a newer one refused untouched.
 * Events live in a database of their own (sqlite_events.c); templates
 * and DMARC reports are tables of this one, handled in sqlite_templates.c
 * and sqlite_dmarc.c.
 */
#include "store_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_SCHEMA_VERSION 7
#define STORE_BUSY_MS        5000

/* The schema, version 1. */
static const char store_schema_1[] =
    "CREATE TABLE dkim_keys ("
    " id INTEGER PRIMARY KEY,"
    " domain TEXT NOT NULL COLLATE NOCASE,"
    " selector TEXT NOT NULL COLLATE NOCASE,"
    " algorithm TEXT NOT NULL,"
    " bits INTEGER NOT NULL,"
    " testing INTEGER NOT NULL,"
    " state TEXT NOT NULL,"
    " unconfirmed INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " activated INTEGER NOT NULL DEFAULT 0,"
    " retiring INTEGER NOT NULL DEFAULT 0,"
    " retired INTEGER NOT NULL DEFAULT 0,"
    " last_expiry INTEGER NOT NULL DEFAULT 0,"
    " signatures INTEGER NOT NULL DEFAULT 0,"
    " public_record TEXT NOT NULL,"
    " sealed_private BLOB NOT NULL,"
    " UNIQUE (domain, selector));"
    "CREATE TABLE queued_signatures ("
    " key_id INTEGER NOT NULL REFERENCES dkim_keys(id),"
    " message TEXT NOT NULL,"
    " PRIMARY KEY (key_id, message));"
    "CREATE INDEX queued_by_message ON queued_signatures(message);";

/* Version 2 adds API keys. */
static const char store_schema_2[] = "CREATE TABLE apikeys ("
                                     " id INTEGER PRIMARY KEY,"
                                     " name TEXT NOT NULL UNIQUE,"
                                     " prefix TEXT NOT NULL,"
                                     " hash BLOB NOT NULL UNIQUE,"
                                     " domains TEXT NOT NULL,"
                                     " created INTEGER NOT NULL,"
                                     " revoked INTEGER NOT NULL DEFAULT 0);";

/* Version 3: what each API key may do; older keys may do both. */
static const char store_schema_3[] =
    "ALTER TABLE apikeys ADD COLUMN scopes TEXT NOT NULL DEFAULT "
    "'send,read';";

/* Version 4: webhooks, each with its cursor into the event store. */
static const char store_schema_4[] = "CREATE TABLE webhooks ("
                                     " id INTEGER PRIMARY KEY,"
                                     " name TEXT NOT NULL UNIQUE,"
                                     " url TEXT NOT NULL,"
                                     " events TEXT NOT NULL,"
                                     " sealed BLOB NOT NULL,"
                                     " cursor INTEGER NOT NULL DEFAULT 0,"
                                     " failing_since INTEGER NOT NULL"
                                     " DEFAULT 0,"
                                     " last_error TEXT NOT NULL DEFAULT '',"
                                     " created INTEGER NOT NULL);";

/* Version 5: the stored content of transmissions. */
static const char store_schema_5[] = "CREATE TABLE templates ("
                                     " id TEXT PRIMARY KEY,"
                                     " name TEXT NOT NULL,"
                                     " description TEXT NOT NULL,"
                                     " content TEXT NOT NULL,"
                                     " created INTEGER NOT NULL,"
                                     " updated INTEGER NOT NULL);";

/*
 * Version 6: DMARC aggregate reports (sqlite_dmarc.c).  A report's lists
 * (errors, notes, a record's reasons) are JSON arrays; pct is NULL when
 * the report leaves it out.  Input refused as a report is kept apart.
 */
static const char store_schema_6[] =
    "CREATE TABLE dmarc_reports ("
    " id INTEGER PRIMARY KEY,"
    " org_name TEXT NOT NULL,"
    " report_id TEXT NOT NULL,"
    " email TEXT,"
    " extra_contact_info TEXT,"
    " generator TEXT,"
    " format INTEGER NOT NULL,"
    " version TEXT,"
    " \"begin\" INTEGER NOT NULL,"
    " \"end\" INTEGER NOT NULL,"
    " domain TEXT COLLATE NOCASE,"
    " adkim TEXT,"
    " aspf TEXT,"
    " p TEXT,"
    " sp TEXT,"
    " np TEXT,"
    " pct INTEGER,"
    " fo TEXT,"
    " testing TEXT,"
    " discovery_method TEXT,"
    " errors TEXT NOT NULL,"
    " flags INTEGER NOT NULL,"
    " notes TEXT NOT NULL,"
    " messages INTEGER NOT NULL,"
    " records INTEGER NOT NULL,"
    " source TEXT NOT NULL,"
    " imported INTEGER NOT NULL,"
    " UNIQUE (org_name, report_id));"
    "CREATE INDEX dmarc_reports_by_domain ON dmarc_reports (domain, \"begin\");"
    "CREATE TABLE dmarc_records ("
    " id INTEGER PRIMARY KEY,"
    " report INTEGER NOT NULL REFERENCES dmarc_reports(id) ON DELETE CASCADE,"
    " source_ip TEXT NOT NULL,"
    " count INTEGER NOT NULL,"
    " disposition TEXT,"
    " dkim TEXT,"
    " spf TEXT,"
    " header_from TEXT,"
    " envelope_from TEXT,"
    " envelope_to TEXT,"
    " reasons TEXT NOT NULL);"
    "CREATE INDEX dmarc_records_by_report ON dmarc_records (report);"
    "CREATE INDEX dmarc_records_by_source_ip ON dmarc_records (source_ip);"
    "CREATE TABLE dmarc_dkim ("
    " record INTEGER NOT NULL REFERENCES dmarc_records(id) ON DELETE CASCADE,"
    " domain TEXT,"
    " selector TEXT,"
    " result TEXT,"
    " human_result TEXT);"
    "CREATE INDEX dmarc_dkim_by_record ON dmarc_dkim (record);"
    "CREATE INDEX dmarc_dkim_by_selector ON dmarc_dkim (domain, selector);"
    "CREATE TABLE dmarc_spf ("
    " record INTEGER NOT NULL REFERENCES dmarc_records(id) ON DELETE CASCADE,"
    " domain TEXT,"
    " scope TEXT,"
    " result TEXT,"
    " human_result TEXT);"
    "CREATE INDEX dmarc_spf_by_record ON dmarc_spf (record);"
    "CREATE TABLE dmarc_refused ("
    " id INTEGER PRIMARY KEY,"
    " source TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " refused INTEGER NOT NULL,"
    " content BLOB);";

/*
 * Version 7: the directory of recipients' keys (sqlite_rkeys.c): one row
 * per address and key, "@domain" for a domain's default; the key's bytes
 * as imported, and what reading them found.
 */
static const char store_schema_7[] =
    "CREATE TABLE recipient_keys ("
    " id INTEGER PRIMARY KEY,"
    " address TEXT NOT NULL,"
    " method TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " imported INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " UNIQUE (address, method, fingerprint));"
    "CREATE INDEX recipient_keys_by_address ON recipient_keys (address);";

struct store_sqlite {
    sqlite3 *db;
    struct dmarc_add *dmarc_batch; /* open batch (sqlite_dmarc.c), or NULL */
    sqlite3 *events;               /* data_dir/events.db (sqlite_events.c) */
};

/* Fill err from the database's last error. */
static int
sqlite_fail(struct store_sqlite *self, sp_error *err, const char *doing)
{
    return sp_err_set(err, SP_EIO, "store: %s: %s", doing,
                      sqlite3_errmsg(self->db));
}

static int
sqlite_exec(struct store_sqlite *self, const char *sql, sp_error *err)
{
    if (sqlite3_exec(self->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "setting up the database");
    return SP_OK;
}

/* Create or upgrade the schema; refuse one from a newer sealpost. */
static int
sqlite_schema(struct store_sqlite *self, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int version, rc;

    if (sqlite3_prepare_v2(self->db, "PRAGMA user_version", -1, &stmt, NULL) !=
            SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        return sqlite_fail(self, err, "reading the schema version");
    }
    version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);

    if (version > STORE_SCHEMA_VERSION)
        return sp_err_set(err, SP_EINVAL,
                          "store: the database has schema version %d, newer "
                          "than this sealpost (%d); run a newer sealpost",
                          version, STORE_SCHEMA_VERSION);
    if (version == STORE_SCHEMA_VERSION)
        return SP_OK;

    rc = sqlite_exec(self, "BEGIN IMMEDIATE", err);
    /* Each step takes the schema one version further, in one transaction. */
    if (rc == SP_OK && version < 1)
        rc = sqlite_exec(self, store_schema_1, err);
    if (rc == SP_OK && version < 2)
        rc = sqlite_exec(self, store_schema_2, err);
    if (rc == SP_OK && version < 3)
        rc = sqlite_exec(self, store_schema_3, err);
    if (rc == SP_OK && version < 4)
        rc = sqlite_exec(self, store_schema_4, err);
    if (rc == SP_OK && version < 5)
        rc = sqlite_exec(self, store_schema_5, err);
    if (rc == SP_OK && version < 6)
        rc = sqlite_exec(self, store_schema_6, err);
    if (rc == SP_OK && version < 7)
        rc = sqlite_exec(self, store_schema_7, err);
    if (rc == SP_OK)
        rc = sqlite_exec(self, "PRAGMA user_version = 7", err);
    if (rc == SP_OK)
        return sqlite_exec(self, "COMMIT", err);
    sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void
sqlite_close(void *impl)
{
    struct store_sqlite *self = impl;

    if (self->dmarc_batch != NULL)
        store__dmarc_batch_end(self->db, self->dmarc_batch, false, NULL);
    sqlite3_close(self->db);
    sqlite3_close(self->events);
    sp_free(self);
}

/* Key rows are read and written with the same column order. */
#define KEY_COLUMNS                                                            \
    "id, domain, selector, algorithm, bits, testing, state, unconfirmed, "     \
    "created, activated, retiring, retired, last_expiry, signatures, "         \
    "public_record, sealed_private"

static int
sqlite_key_insert(void *impl, sp_store_key *key, sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (sqlite3_prepare_v2(
            self->db,
            "INSERT INTO dkim_keys (domain, selector, algorithm, bits, "
            "testing, state, created, public_record, sealed_private) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "adding a key");
    sqlite3_bind_text(stmt, 1, key->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, key->selector, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, key->algorithm, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 4, (int)key->bits);
    sqlite3_bind_int(stmt, 5, key->testing);
    sqlite3_bind_text(stmt, 6, sp_store_key_state_name(key->state), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 7, key->created);
    sqlite3_bind_text(stmt, 8, key->public_record, -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 9, key->sealed.data, (int)key->sealed.len,
                      SQLITE_STATIC);

    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc == SQLITE_CONSTRAINT)
        return sp_err_set(err, SP_EINVAL,
                          "selector %s of %s was used before; selectors "
                          "are never reused",
                          key->selector, key->domain);
    if (rc != SQLITE_DONE)
        return sqlite_fail(self, err, "adding a key");
    key->id = sqlite3_last_insert_rowid(self->db);
    return SP_OK;
}

/* Copy one result row into key. */
static int
sqlite_key_row(sqlite3_stmt *stmt, sp_store_key *key)
{
    const char *text;

    memset(key, 0, sizeof(*key));
    key->id = sqlite3_column_int64(stmt, 0);
    snprintf(key->domain, sizeof(key->domain), "%s",
             (const char *)sqlite3_column_text(stmt, 1));
    snprintf(key->selector, sizeof(key->selector), "%s",
             (const char *)sqlite3_column_text(stmt, 2));
    snprintf(key->algorithm, sizeof(key->algorithm), "%s",
             (const char *)sqlite3_column_text(stmt, 3));
    key->bits = (unsigned)sqlite3_column_int(stmt, 4);
    key->testing = sqlite3_column_int(stmt, 5) != 0;
    text = (const char *)sqlite3_column_text(stmt, 6);
    if (text == NULL || sp_store_key_state_parse(text, &key->state) != SP_OK)
        return SP_EIO;
    key->unconfirmed = sqlite3_column_int(stmt, 7) != 0;
    key->created = sqlite3_column_int64(stmt, 8);
    key->activated = sqlite3_column_int64(stmt, 9);
    key->retiring = sqlite3_column_int64(stmt, 10);
    key->retired = sqlite3_column_int64(stmt, 11);
    key->last_expiry = sqlite3_column_int64(stmt, 12);
    key->signatures = sqlite3_column_int64(stmt, 13);
    text = (const char *)sqlite3_column_text(stmt, 14);
    key->public_record = sp_strndup(text ? text : "", text ? strlen(text) : 0);
    if (key->public_record == NULL ||
        sp_buf_append(&key->sealed, sqlite3_column_blob(stmt, 15),
                      (size_t)sqlite3_column_bytes(stmt, 15)) != SP_OK)
        return SP_ENOMEM;
    return SP_OK;
}

static int
sqlite_key_list(void *impl, const char *domain, sp_store_key **keys,
                size_t *count, sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    sp_store_key *found = NULL;
    size_t used = 0, capacity = 0;
    int rc = SP_OK, step;

    *keys = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(self->db,
                           domain ? "SELECT " KEY_COLUMNS " FROM dkim_keys "
                                    "WHERE domain = ? ORDER BY created, id"
                                  : "SELECT " KEY_COLUMNS " FROM dkim_keys "
                                    "ORDER BY domain, created, id",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "listing keys");
    if (domain != NULL)
        sqlite3_bind_text(stmt, 1, domain, -1, SQLITE_STATIC);

    while (rc == SP_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (used == capacity) {
            size_t grown_capacity = capacity ? capacity * 2 : 8;
            sp_store_key *grown =
                sp_realloc(found, grown_capacity * sizeof(*grown));

            if (grown == NULL) {
                rc = SP_ENOMEM;
                break;
            }
            found = grown;
            capacity = grown_capacity;
        }
        rc = sqlite_key_row(stmt, &found[used++]);
    }
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = sqlite_fail(self, err, "listing keys");
    else if (rc != SP_OK)
        sp_err_set(err, rc, "store: listing keys: %s", sp_err_describe(rc));
    sqlite3_finalize(stmt);
    if (rc != SP_OK) {
        sp_store_keys_free(found, used);
        return rc;
    }
    *keys = found;
    *count = used;
    return SP_OK;
}

static int
sqlite_key_set_state(void *impl, int64_t id, sp_store_key_state state,
                     int64_t at, bool unconfirmed, sp_error *err)
{
    static const char *const columns[] = {
        [SP_STORE_KEY_PENDING] = "created",
        [SP_STORE_KEY_ACTIVE] = "activated",
        [SP_STORE_KEY_RETIRING] = "retiring",
        [SP_STORE_KEY_RETIRED] = "retired",
    };
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    char sql[160];
    int rc;

    /* The column is one of the fixed names above, never outside text. */
    snprintf(sql, sizeof(sql),
             "UPDATE dkim_keys SET state = ?, %s = ?, unconfirmed = ? "
             "WHERE id = ?",
             columns[state]);
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "changing a key's state");
    sqlite3_bind_text(stmt, 1, sp_store_key_state_name(state), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, at);
    sqlite3_bind_int(stmt, 3, unconfirmed);
    sqlite3_bind_int64(stmt, 4, id);
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE)
        return sqlite_fail(self, err, "changing a key's state");
    if (sqlite3_changes(self->db) == 0)
        return sp_err_set(err, SP_ENOTFOUND, "store: no key %lld",
                          (long long)id);
    return SP_OK;
}

/* Run one statement with up to two int64 and one text parameter. */
static int
sqlite_run(struct store_sqlite *self, const char *sql, int64_t a, int64_t b,
           const char *text, sp_error *err, const char *doing)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, doing);
    for (int i = 1; i <= sqlite3_bind_parameter_count(stmt); i++) {
        const char *name = sqlite3_bind_parameter_name(stmt, i);

        if (strcmp(name, ":a") == 0)
            sqlite3_bind_int64(stmt, i, a);
        else if (strcmp(name, ":b") == 0)
            sqlite3_bind_int64(stmt, i, b);
        else
            sqlite3_bind_text(stmt, i, text, -1, SQLITE_STATIC);
    }
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? SP_OK : sqlite_fail(self, err, doing);
}

static int
sqlite_key_signed(void *impl, int64_t id, int64_t count, int64_t expiry,
                  const char *message, sp_error *err)
{
    struct store_sqlite *self = impl;
    int rc;

    rc = sqlite_run(self,
                    "UPDATE dkim_keys SET signatures = signatures + :b "
                    "WHERE id = :a",
                    id, count, NULL, err, "recording a signature");
    if (rc == SP_OK)
        rc = sqlite_run(self,
                        "UPDATE dkim_keys SET last_expiry = "
                        "MAX(last_expiry, :b) WHERE id = :a",
                        id, expiry, NULL, err, "recording a signature");
    if (rc == SP_OK && message != NULL)
        rc = sqlite_run(self,
                        "INSERT OR IGNORE INTO queued_signatures "
                        "(key_id, message) VALUES (:a, :t)",
                        id, 0, message, err, "recording a signature");
    return rc;
}

static int
sqlite_key_released(void *impl, const char *message, sp_error *err)
{
    return sqlite_run(impl, "DELETE FROM queued_signatures WHERE message = :t",
                      0, 0, message, err, "releasing a message");
}

static int
sqlite_key_queued(void *impl, int64_t id, int64_t *count, sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;

    if (sqlite3_prepare_v2(self->db,
                           "SELECT COUNT(*) FROM queued_signatures "
                           "WHERE key_id = ?",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "counting queued messages");
    sqlite3_bind_int64(stmt, 1, id);
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        return sqlite_fail(self, err, "counting queued messages");
    }
    *count = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return SP_OK;
}

static int
sqlite_apikey_insert(void *impl, sp_store_apikey *key, sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (sqlite3_prepare_v2(self->db,
                           "INSERT INTO apikeys (name, prefix, hash, domains, "
                           "created, scopes) VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "adding an API key");
    sqlite3_bind_text(stmt, 1, key->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, key->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 3, key->hash, sizeof(key->hash), SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, key->domains, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, key->created);
    sqlite3_bind_text(stmt, 6, key->scopes[0] ? key->scopes : "send,read", -1,
                      SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc == SQLITE_CONSTRAINT)
        return sp_err_set(err, SP_EINVAL,
                          "an API key named %s exists; choose another name",
                          key->name);
    if (rc != SQLITE_DONE)
        return sqlite_fail(self, err, "adding an API key");
    key->id = sqlite3_last_insert_rowid(self->db);
    return SP_OK;
}

/* Copy one apikeys row (id, name, prefix, hash, domains, created,
 * revoked, scopes) into key. */
static void
sqlite_apikey_row(sqlite3_stmt *stmt, sp_store_apikey *key)
{
    const void *hash = sqlite3_column_blob(stmt, 3);

    memset(key, 0, sizeof(*key));
    key->id = sqlite3_column_int64(stmt, 0);
    snprintf(key->name, sizeof(key->name), "%s",
             (const char *)sqlite3_column_text(stmt, 1));
    snprintf(key->prefix, sizeof(key->prefix), "%s",
             (const char *)sqlite3_column_text(stmt, 2));
    if (hash != NULL && sqlite3_column_bytes(stmt, 3) == sizeof(key->hash))
        memcpy(key->hash, hash, sizeof(key->hash));
    snprintf(key->domains, sizeof(key->domains), "%s",
             (const char *)sqlite3_column_text(stmt, 4));
    key->created = sqlite3_column_int64(stmt, 5);
    key->revoked = sqlite3_column_int64(stmt, 6);
    snprintf(key->scopes, sizeof(key->scopes), "%s",
             (const char *)sqlite3_column_text(stmt, 7));
}

#define APIKEY_COLUMNS                                                         \
    "id, name, prefix, hash, domains, created, revoked, scopes"

static int
sqlite_apikey_list(void *impl, sp_store_apikey **keys, size_t *count,
                   sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    size_t used = 0, capacity = 0;
    sp_store_apikey *found = NULL;
    int step;

    *keys = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(self->db,
                           "SELECT " APIKEY_COLUMNS " FROM apikeys ORDER BY id",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "listing API keys");
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (used == capacity) {
            size_t grown_capacity = capacity ? capacity * 2 : 8;
            sp_store_apikey *grown =
                sp_realloc(found, grown_capacity * sizeof(*grown));

            if (grown == NULL) {
                sqlite3_finalize(stmt);
                sp_free(found);
                return sp_err_set(err, SP_ENOMEM, "out of memory");
            }
            found = grown;
            capacity = grown_capacity;
        }
        sqlite_apikey_row(stmt, &found[used++]);
    }
    sqlite3_finalize(stmt);
    if (step != SQLITE_DONE) {
        sp_free(found);
        return sqlite_fail(self, err, "listing API keys");
    }
    *keys = found;
    *count = used;
    return SP_OK;
}

static int
sqlite_apikey_find(void *impl, const unsigned char hash[32],
                   sp_store_apikey *out, sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    int step;

    if (sqlite3_prepare_v2(self->db,
                           "SELECT " APIKEY_COLUMNS " FROM apikeys "
                           "WHERE hash = ? AND revoked = 0",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "looking up an API key");
    sqlite3_bind_blob(stmt, 1, hash, 32, SQLITE_STATIC);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        sqlite_apikey_row(stmt, out);
    sqlite3_finalize(stmt);
    if (step == SQLITE_ROW)
        return SP_OK;
    if (step == SQLITE_DONE)
        return sp_err_set(err, SP_ENOTFOUND, "no such API key");
    return sqlite_fail(self, err, "looking up an API key");
}

static int
sqlite_apikey_revoke(void *impl, const char *name, int64_t at, sp_error *err)
{
    struct store_sqlite *self = impl;
    int rc;

    rc = sqlite_run(self,
                    "UPDATE apikeys SET revoked = :a WHERE name = :t "
                    "AND revoked = 0",
                    at, 0, name, err, "revoking an API key");
    if (rc == SP_OK && sqlite3_changes(self->db) == 0)
        return sp_err_set(err, SP_ENOTFOUND, "no valid API key named %s", name);
    return rc;
}

static int
sqlite_webhook_insert(void *impl, sp_store_webhook *hook, sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (sqlite3_prepare_v2(self->db,
                           "INSERT INTO webhooks (name, url, events, sealed, "
                           "created) VALUES (?, ?, ?, ?, ?)",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "adding a webhook");
    sqlite3_bind_text(stmt, 1, hook->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, hook->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, hook->events, -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 4, hook->sealed.data, (int)hook->sealed.len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, hook->created);
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc == SQLITE_CONSTRAINT)
        return sp_err_set(err, SP_EINVAL,
                          "a webhook named %s exists; choose another name",
                          hook->name);
    if (rc != SQLITE_DONE)
        return sqlite_fail(self, err, "adding a webhook");
    hook->id = sqlite3_last_insert_rowid(self->db);
    return SP_OK;
}

static int
sqlite_webhook_list(void *impl, sp_store_webhook **hooks, size_t *count,
                    sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    sp_store_webhook *found = NULL;
    size_t used = 0;
    int step, rc = SP_OK;

    *hooks = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(self->db,
                           "SELECT id, name, url, events, sealed, cursor, "
                           "failing_since, last_error, created FROM webhooks "
                           "ORDER BY id",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "listing webhooks");
    while (rc == SP_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        sp_store_webhook *grown =
            sp_realloc(found, (used + 1) * sizeof(*found));
        sp_store_webhook *hook;

        if (grown == NULL) {
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            break;
        }
        found = grown;
        hook = &found[used++];
        memset(hook, 0, sizeof(*hook));
        hook->id = sqlite3_column_int64(stmt, 0);
        snprintf(hook->name, sizeof(hook->name), "%s",
                 (const char *)sqlite3_column_text(stmt, 1));
        snprintf(hook->url, sizeof(hook->url), "%s",
                 (const char *)sqlite3_column_text(stmt, 2));
        snprintf(hook->events, sizeof(hook->events), "%s",
                 (const char *)sqlite3_column_text(stmt, 3));
        rc = sp_buf_append(&hook->sealed, sqlite3_column_blob(stmt, 4),
                           (size_t)sqlite3_column_bytes(stmt, 4));
        if (rc != SP_OK)
            sp_err_set(err, rc, "out of memory");
        hook->cursor = sqlite3_column_int64(stmt, 5);
        hook->failing_since = sqlite3_column_int64(stmt, 6);
        snprintf(hook->last_error, sizeof(hook->last_error), "%s",
                 (const char *)sqlite3_column_text(stmt, 7));
        hook->created = sqlite3_column_int64(stmt, 8);
    }
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = sqlite_fail(self, err, "listing webhooks");
    sqlite3_finalize(stmt);
    if (rc != SP_OK) {
        sp_store_webhooks_free(found, used);
        return rc;
    }
    *hooks = found;
    *count = used;
    return SP_OK;
}

static int
sqlite_webhook_remove(void *impl, const char *name, sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(self->db, "DELETE FROM webhooks WHERE name = ?", -1,
                           &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "removing a webhook");
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = sqlite_fail(self, err, "removing a webhook");
    else if (sqlite3_changes(self->db) == 0)
        rc = sp_err_set(err, SP_ENOTFOUND, "no webhook named %s", name);
    sqlite3_finalize(stmt);
    return rc;
}

static int
sqlite_webhook_progress(void *impl, int64_t id, int64_t cursor,
                        int64_t failing_since, const char *last_error,
                        sp_error *err)
{
    struct store_sqlite *self = impl;
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(self->db,
                           "UPDATE webhooks SET cursor = ?, failing_since = "
                           "?, last_error = ? WHERE id = ?",
                           -1, &stmt, NULL) != SQLITE_OK)
        return sqlite_fail(self, err, "recording a webhook's progress");
    sqlite3_bind_int64(stmt, 1, cursor);
    sqlite3_bind_int64(stmt, 2, failing_since);
    sqlite3_bind_text(stmt, 3, last_error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, id);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = sqlite_fail(self, err, "recording a webhook's progress");
    sqlite3_finalize(stmt);
    return rc;
}

static int
sqlite_events_add(void *impl, const sp_store_event *events, size_t count,
                  sp_error *err)
{
    return store__events_add(((struct store_sqlite *)impl)->events, events,
                             count, err);
}

static int
sqlite_events_find(void *impl, const sp_store_event_filter *filter,
                   void (*each)(void *arg, int64_t cursor, const char *json),
                   void *arg, sp_error *err)
{
    return store__events_find(((struct store_sqlite *)impl)->events, filter,
                              each, arg, err);
}

static int
sqlite_events_prune(void *impl, int64_t before_ms, size_t max, size_t *deleted,
                    sp_error *err)
{
    return store__events_prune(((struct store_sqlite *)impl)->events, before_ms,
                               max, deleted, err);
}

static int
sqlite_events_count(void *impl, int64_t from_ms, int64_t to_ms,
                    int64_t bucket_ms, bool by_domain,
                    void (*each)(void *arg, int64_t bucket, const char *domain,
                                 const char *type, int64_t count),
                    void *arg, sp_error *err)
{
    return store__events_count(((struct store_sqlite *)impl)->events, from_ms,
                               to_ms, bucket_ms, by_domain, each, arg, err);
}

static int
sqlite_template_save(void *impl, sp_store_template *tpl, bool create,
                     sp_error *err)
{
    return store__template_save(((struct store_sqlite *)impl)->db, tpl, create,
                                err);
}

static int
sqlite_template_get(void *impl, const char *id, sp_store_template *out,
                    sp_error *err)
{
    return store__template_get(((struct store_sqlite *)impl)->db, id, out, err);
}

static int
sqlite_template_list(void *impl, sp_store_template **out, size_t *count,
                     sp_error *err)
{
    return store__template_list(((struct store_sqlite *)impl)->db, out, count,
                                err);
}

static int
sqlite_template_delete(void *impl, const char *id, sp_error *err)
{
    return store__template_delete(((struct store_sqlite *)impl)->db, id, err);
}

static int
sqlite_dmarc_add(void *impl, const sp_dmarc_report *report, const char *source,
                 int64_t imported, int64_t *id_out, sp_error *err)
{
    struct store_sqlite *self = impl;

    return store__dmarc_add(self->db, self->dmarc_batch, report, source,
                            imported, id_out, err);
}

static int
sqlite_rkey_add(void *impl, sp_store_rkey *key, sp_error *err)
{
    return store__rkey_add(((struct store_sqlite *)impl)->db, key, err);
}

static int
sqlite_rkey_list(void *impl, const char *address, sp_store_rkey **keys,
                 size_t *count, sp_error *err)
{
    return store__rkey_list(((struct store_sqlite *)impl)->db, address, keys,
                            count, err);
}

static int
sqlite_rkey_remove(void *impl, const char *address, const char *fingerprint,
                   size_t *removed, sp_error *err)
{
    return store__rkey_remove(((struct store_sqlite *)impl)->db, address,
                              fingerprint, removed, err);
}

static int
sqlite_dmarc_batch(void *impl, bool begin, bool commit, sp_error *err)
{
    struct store_sqlite *self = impl;
    int rc;

    if (begin == (self->dmarc_batch != NULL))
        return sp_err_set(err, SP_ESTATE,
                          begin ? "store: a batch of DMARC reports is open"
                                : "store: no batch of DMARC reports is open");
    if (begin)
        return store__dmarc_batch_begin(self->db, &self->dmarc_batch, err);
    rc = store__dmarc_batch_end(self->db, self->dmarc_batch, commit, err);
    self->dmarc_batch = NULL;
    return rc;
}

static int
sqlite_dmarc_refuse(void *impl, const char *source, const char *reason,
                    const void *content, int64_t size, int64_t refused,
                    sp_error *err)
{
    return store__dmarc_refuse(((struct store_sqlite *)impl)->db, source,
                               reason, content, size, refused, err);
}

static int
sqlite_dmarc_rows(void *impl, const char *domain, int64_t since,
                  sp_store_dmarc_row_fn *fn, void *arg, sp_error *err)
{
    return store__dmarc_rows(((struct store_sqlite *)impl)->db, domain, since,
                             fn, arg, err);
}

static int
sqlite_dmarc_counts(void *impl, int64_t *reports, int64_t *records,
                    int64_t *refused, sp_error *err)
{
    return store__dmarc_counts(((struct store_sqlite *)impl)->db, reports,
                               records, refused, err);
}

static const struct sp_store_backend sqlite_backend = {
    .name = "sqlite",
    .close = sqlite_close,
    .key_insert = sqlite_key_insert,
    .key_list = sqlite_key_list,
    .key_set_state = sqlite_key_set_state,
    .key_signed = sqlite_key_signed,
    .key_released = sqlite_key_released,
    .key_queued = sqlite_key_queued,
    .apikey_insert = sqlite_apikey_insert,
    .apikey_list = sqlite_apikey_list,
    .apikey_find = sqlite_apikey_find,
    .apikey_revoke = sqlite_apikey_revoke,
    .webhook_insert = sqlite_webhook_insert,
    .webhook_list = sqlite_webhook_list,
    .webhook_remove = sqlite_webhook_remove,
    .webhook_progress = sqlite_webhook_progress,
    .template_save = sqlite_template_save,
    .template_get = sqlite_template_get,
    .template_list = sqlite_template_list,
    .template_delete = sqlite_template_delete,
    .events_add = sqlite_events_add,
    .events_find = sqlite_events_find,
    .events_prune = sqlite_events_prune,
    .events_count = sqlite_events_count,
    .dmarc_add = sqlite_dmarc_add,
    .dmarc_refuse = sqlite_dmarc_refuse,
    .dmarc_batch = sqlite_dmarc_batch,
    .rkey_add = sqlite_rkey_add,
    .rkey_list = sqlite_rkey_list,
    .rkey_remove = sqlite_rkey_remove,
    .dmarc_rows = sqlite_dmarc_rows,
    .dmarc_counts = sqlite_dmarc_counts,
};

int
store__sqlite_open(const char *data_dir,
                   const struct sp_store_backend **backend, void **impl,
                   sp_error *err)
{
    struct store_sqlite *self = sp_calloc(1, sizeof(*self));
    char path[4096];
    int rc;

    if (self == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    /* The data directory itself is made here if missing (one level). */
    if (mkdir(data_dir, 0750) != 0 && errno != EEXIST) {
        rc = sp_err_set(err, SP_EIO, "store: data directory %s: %s", data_dir,
                        strerror(errno));
        sp_free(self);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/sealpost.db", data_dir);
    if (sqlite3_open_v2(path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        rc = sp_err_set(err, SP_EIO, "store: %s: %s", path,
                        self->db ? sqlite3_errmsg(self->db) : "cannot open");
        sqlite_close(self);
        return rc;
    }
    sqlite3_busy_timeout(self->db, STORE_BUSY_MS);

    rc = sqlite_exec(self,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                     "PRAGMA foreign_keys = ON",
                     err);
    if (rc == SP_OK)
        rc = sqlite_schema(self, err);
    if (rc == SP_OK)
        rc = store__events_open(data_dir, &self->events, err);
    if (rc != SP_OK) {
        sqlite_close(self);
        return rc;
    }
    *backend = &sqlite_backend;
    *impl = self;
    return SP_OK;
}
