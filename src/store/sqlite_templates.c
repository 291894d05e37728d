/*
 * sqlite_templates.c: the SQLite backend's templates, a table of the key
 * database (sealpost.db): id, name, description, the content as JSON
 * text, and when each was made and last changed.
 *
 * Owns store__template_*.  Errors as the rest of the backend: SP_EIO
 * with SQLite's message, SP_ENOMEM, and SP_EINVAL or SP_ENOTFOUND for an
 * id taken or missing.
 */
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int
templates_fail(sqlite3 *db, sp_error *err, const char *doing)
{
    return sp_err_set(err, SP_EIO, "store: %s: %s", doing, sqlite3_errmsg(db));
}

int
store__template_save(sqlite3 *db, sp_store_template *tpl, bool create,
                     sp_error *err)
{
    static const char insert[] =
        "INSERT INTO templates (id, name, description, content, created, "
        "updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)";
    static const char update[] =
        "UPDATE templates SET name = ?2, description = ?3, content = ?4, "
        "updated = ?5 WHERE id = ?1";
    sqlite3_stmt *stmt = NULL;
    int step, rc = SP_OK;

    if (sqlite3_prepare_v2(db, create ? insert : update, -1, &stmt, NULL) !=
        SQLITE_OK)
        return templates_fail(db, err, "storing a template");
    tpl->updated = (int64_t)time(NULL);
    if (create)
        tpl->created = tpl->updated;
    sqlite3_bind_text(stmt, 1, tpl->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, tpl->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, tpl->description, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, tpl->content, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, tpl->updated);
    step = sqlite3_step(stmt);
    if (step == SQLITE_CONSTRAINT)
        rc =
            sp_err_set(err, SP_EINVAL, "a template with id %s exists", tpl->id);
    else if (step != SQLITE_DONE)
        rc = templates_fail(db, err, "storing a template");
    else if (!create && sqlite3_changes(db) == 0)
        rc = sp_err_set(err, SP_ENOTFOUND, "no template with id %s", tpl->id);
    sqlite3_finalize(stmt);
    return rc;
}

/* Fill tpl from a row of (id, name, description, content, times). */
static int
templates_row(sqlite3_stmt *stmt, sp_store_template *tpl, sp_error *err)
{
    const char *content = (const char *)sqlite3_column_text(stmt, 3);

    memset(tpl, 0, sizeof(*tpl));
    snprintf(tpl->id, sizeof(tpl->id), "%s",
             (const char *)sqlite3_column_text(stmt, 0));
    snprintf(tpl->name, sizeof(tpl->name), "%s",
             (const char *)sqlite3_column_text(stmt, 1));
    snprintf(tpl->description, sizeof(tpl->description), "%s",
             (const char *)sqlite3_column_text(stmt, 2));
    tpl->created = sqlite3_column_int64(stmt, 4);
    tpl->updated = sqlite3_column_int64(stmt, 5);
    tpl->content = strdup(content != NULL ? content : "{}");
    if (tpl->content == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return SP_OK;
}

#define TEMPLATES_COLUMNS "id, name, description, content, created, updated"

int
store__template_get(sqlite3 *db, const char *id, sp_store_template *out,
                    sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int step, rc;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(db,
                           "SELECT " TEMPLATES_COLUMNS " FROM templates "
                           "WHERE id = ?",
                           -1, &stmt, NULL) != SQLITE_OK)
        return templates_fail(db, err, "reading a template");
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        rc = templates_row(stmt, out, err);
    else if (step == SQLITE_DONE)
        rc = sp_err_set(err, SP_ENOTFOUND, "no template with id %s", id);
    else
        rc = templates_fail(db, err, "reading a template");
    sqlite3_finalize(stmt);
    return rc;
}

int
store__template_list(sqlite3 *db, sp_store_template **out, size_t *count,
                     sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    sp_store_template *found = NULL;
    size_t used = 0;
    int step = SQLITE_DONE, rc = SP_OK;

    *out = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT " TEMPLATES_COLUMNS " FROM templates "
                           "ORDER BY id",
                           -1, &stmt, NULL) != SQLITE_OK)
        return templates_fail(db, err, "listing templates");
    while (rc == SP_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        sp_store_template *grown =
            sp_realloc(found, (used + 1) * sizeof(*found));

        if (grown == NULL) {
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            break;
        }
        found = grown;
        rc = templates_row(stmt, &found[used++], err);
    }
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = templates_fail(db, err, "listing templates");
    sqlite3_finalize(stmt);
    if (rc != SP_OK) {
        sp_store_templates_free(found, used);
        return rc;
    }
    *out = found;
    *count = used;
    return SP_OK;
}

int
store__template_delete(sqlite3 *db, const char *id, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(db, "DELETE FROM templates WHERE id = ?", -1, &stmt,
                           NULL) != SQLITE_OK)
        return templates_fail(db, err, "deleting a template");
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = templates_fail(db, err, "deleting a template");
    else if (sqlite3_changes(db) == 0)
        rc = sp_err_set(err, SP_ENOTFOUND, "no template with id %s", id);
    sqlite3_finalize(stmt);
    return rc;
}
