/*
 * sqlite_rkeys.c: the SQLite backend's directory of recipients' keys, a
 * table of the key database (sealpost.db): per address (or "@domain" for
 * a domain's default) the S/MIME certificates and OpenPGP keys that mail
 * to it may be encrypted with, as imported, with what reading them found.
 *
 * Owns store__rkey_*.  Errors as the rest of the backend: SP_EIO with
 * SQLite's message, SP_ENOMEM, SP_EINVAL for a key already there.
 */
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define RKEY_COLUMNS                                                           \
    "id, address, method, fingerprint, subject, not_before, not_after, "       \
    "imported, data"

static int
rkeys_fail(sqlite3 *db, sp_error *err, const char *doing)
{
    return sp_err_set(err, SP_EIO, "store: %s: %s", doing, sqlite3_errmsg(db));
}

int
store__rkey_add(sqlite3 *db, sp_store_rkey *key, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int step, rc = SP_OK;

    if (sqlite3_prepare_v2(db,
                           "INSERT INTO recipient_keys (address, method, "
                           "fingerprint, subject, not_before, not_after, "
                           "imported, data) VALUES (lower(?1), ?2, ?3, ?4, "
                           "?5, ?6, ?7, ?8)",
                           -1, &stmt, NULL) != SQLITE_OK)
        return rkeys_fail(db, err, "adding a recipient key");
    sqlite3_bind_text(stmt, 1, key->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, key->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, key->fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, key->subject, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, key->not_before);
    sqlite3_bind_int64(stmt, 6, key->not_after);
    sqlite3_bind_int64(stmt, 7, key->imported);
    sqlite3_bind_blob64(stmt, 8, key->data.len ? key->data.data : "",
                        key->data.len, SQLITE_STATIC);

    step = sqlite3_step(stmt);
    if (step == SQLITE_CONSTRAINT)
        rc = sp_err_set(err, SP_EINVAL,
                        "store: %.200s already has this %s key (%.64s)",
                        key->address, key->method, key->fingerprint);
    else if (step != SQLITE_DONE)
        rc = rkeys_fail(db, err, "adding a recipient key");
    else
        key->id = sqlite3_last_insert_rowid(db);
    sqlite3_finalize(stmt);
    return rc;
}

/* One row into key; SP_ENOMEM. */
static int
rkeys_row(sqlite3_stmt *stmt, sp_store_rkey *key)
{
    const void *data = sqlite3_column_blob(stmt, 8);
    int len = sqlite3_column_bytes(stmt, 8);

    memset(key, 0, sizeof(*key));
    key->id = sqlite3_column_int64(stmt, 0);
    snprintf(key->address, sizeof(key->address), "%s",
             (const char *)sqlite3_column_text(stmt, 1));
    snprintf(key->method, sizeof(key->method), "%s",
             (const char *)sqlite3_column_text(stmt, 2));
    snprintf(key->fingerprint, sizeof(key->fingerprint), "%s",
             (const char *)sqlite3_column_text(stmt, 3));
    snprintf(key->subject, sizeof(key->subject), "%s",
             (const char *)sqlite3_column_text(stmt, 4));
    key->not_before = sqlite3_column_int64(stmt, 5);
    key->not_after = sqlite3_column_int64(stmt, 6);
    key->imported = sqlite3_column_int64(stmt, 7);
    return sp_buf_append(&key->data, data != NULL ? data : "", (size_t)len);
}

int
store__rkey_list(sqlite3 *db, const char *address, sp_store_rkey **out,
                 size_t *count, sp_error *err)
{
    static const char all[] = "SELECT " RKEY_COLUMNS " FROM recipient_keys "
                              "ORDER BY address, method, imported, id";
    static const char one[] = "SELECT " RKEY_COLUMNS " FROM recipient_keys "
                              "WHERE address = lower(?1) "
                              "ORDER BY method, imported, id";
    sp_store_rkey *keys = NULL, *grown;
    sqlite3_stmt *stmt = NULL;
    size_t n = 0;
    int step = SQLITE_DONE, rc = SP_OK;

    *out = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(db, address ? one : all, -1, &stmt, NULL) !=
        SQLITE_OK)
        return rkeys_fail(db, err, "reading recipient keys");
    if (address != NULL)
        sqlite3_bind_text(stmt, 1, address, -1, SQLITE_STATIC);

    while (rc == SP_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        grown = sp_realloc(keys, (n + 1) * sizeof(*keys));
        if (grown == NULL) {
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            break;
        }
        keys = grown;
        rc = rkeys_row(stmt, &keys[n]);
        n++;
        if (rc != SP_OK)
            sp_err_set(err, rc, "out of memory");
    }
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = rkeys_fail(db, err, "reading recipient keys");
    sqlite3_finalize(stmt);
    if (rc != SP_OK) {
        sp_store_rkeys_free(keys, n);
        return rc;
    }
    *out = keys;
    *count = n;
    return SP_OK;
}

int
store__rkey_remove(sqlite3 *db, const char *address, const char *fingerprint,
                   size_t *removed, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    *removed = 0;
    if (sqlite3_prepare_v2(db,
                           "DELETE FROM recipient_keys WHERE address = "
                           "lower(?1) AND (?2 IS NULL OR fingerprint = "
                           "upper(?2) OR fingerprint = lower(?2))",
                           -1, &stmt, NULL) != SQLITE_OK)
        return rkeys_fail(db, err, "removing recipient keys");
    sqlite3_bind_text(stmt, 1, address, -1, SQLITE_STATIC);
    if (fingerprint != NULL)
        sqlite3_bind_text(stmt, 2, fingerprint, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = rkeys_fail(db, err, "removing recipient keys");
    else
        *removed = (size_t)sqlite3_changes(db);
    sqlite3_finalize(stmt);
    return rc;
}
