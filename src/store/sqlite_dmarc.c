/*
 * sqlite_dmarc.c: the SQLite backend's DMARC aggregate reports, tables of
 * the key database (sealpost.db): a row per report (dmarc_reports), a row
 * per record of a report (dmarc_records), under each record the DKIM and
 * SPF results its receiver saw (dmarc_dkim, dmarc_spf), and apart from
 * them the input refused as a report (dmarc_refused).
 *
 * Owns store__dmarc_*.  A report goes in one transaction through
 * statements prepared once per report and reset for every row, so a
 * report of thousands of records costs one commit and no re-parsing.  A
 * report already stored (same org_name and report_id) is refused with
 * SP_EINVAL before anything is written.  Lists (errors, notes, a record's
 * reasons) are stored as JSON arrays.  Errors as the rest of the backend:
 * SP_EIO with SQLite's message, SP_ENOMEM.
 *
 * Limits: the transaction belongs to the connection, so, as with the
 * event store, threads sharing one store must not write to it while a
 * report is being added.  Report text quoted in an error is escaped and
 * cut short, since it comes from the receiver.
 */
#include "store_int.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int
dmarc_fail(sqlite3 *db, sp_error *err, const char *doing)
{
    return sp_err_set(err, SP_EIO, "store: %s: %s", doing, sqlite3_errmsg(db));
}

/* ------------------------------------------------------------------------
 * Lists as JSON text.
 */

/*
 * A JSON string of text, JSON null for NULL.  jansson takes only UTF-8:
 * a value that is not keeps its ASCII, with '?' for every other byte,
 * rather than cost the whole report.  NULL when memory runs out.
 */
static json_t *
dmarc_json_string(const char *text)
{
    json_t *value;
    char *ascii;

    if (text == NULL)
        return json_null();
    value = json_string(text);
    if (value != NULL)
        return value;
    ascii = sp_strndup(text, strlen(text));
    if (ascii == NULL)
        return NULL;
    for (char *c = ascii; *c != '\0'; c++)
        if ((unsigned char)*c > 0x7e || (unsigned char)*c < 0x20)
            *c = '?';
    value = json_string(ascii);
    sp_free(ascii);
    return value;
}

/* Append value to array, taking it; false when either is missing. */
static bool
dmarc_json_push(json_t *array, json_t *value)
{
    return array != NULL && value != NULL &&
           json_array_append_new(array, value) == 0;
}

/* The text of array (taken), malloc'd; NULL when memory ran out. */
static char *
dmarc_json_text(json_t *array, bool complete)
{
    char *text = complete ? json_dumps(array, JSON_COMPACT) : NULL;

    json_decref(array);
    return text;
}

/* texts[0..n) as a JSON array of strings. */
static char *
dmarc_json_list(char *const *texts, size_t n)
{
    json_t *array = json_array();
    bool complete = array != NULL;

    for (size_t i = 0; complete && i < n; i++)
        complete = dmarc_json_push(array, dmarc_json_string(texts[i]));
    return dmarc_json_text(array, complete);
}

/* reasons[0..n) as a JSON array of {"type", "comment"}. */
static char *
dmarc_json_reasons(const sp_dmarc_reason *reasons, size_t n)
{
    json_t *array = json_array();
    bool complete = array != NULL;

    for (size_t i = 0; complete && i < n; i++) {
        json_t *reason = json_object();

        complete =
            reason != NULL &&
            json_object_set_new(reason, "type",
                                dmarc_json_string(reasons[i].type)) == 0 &&
            json_object_set_new(reason, "comment",
                                dmarc_json_string(reasons[i].comment)) == 0;
        if (!complete)
            json_decref(reason);
        else
            complete = dmarc_json_push(array, reason);
    }
    return dmarc_json_text(array, complete);
}

/* ------------------------------------------------------------------------
 * Adding a report.
 */

/* The statements one add prepares once and reuses for every row. */
struct dmarc_add {
    sqlite3 *db;
    sqlite3_stmt *find;   /* the report stored before, if any */
    sqlite3_stmt *report; /* one dmarc_reports row */
    sqlite3_stmt *record; /* one dmarc_records row */
    sqlite3_stmt *dkim;   /* one dmarc_dkim row */
    sqlite3_stmt *spf;    /* one dmarc_spf row */
};

static const char dmarc_find_sql[] =
    "SELECT imported, source FROM dmarc_reports "
    "WHERE org_name = ?1 AND report_id = ?2";

static const char dmarc_report_sql[] =
    "INSERT INTO dmarc_reports (org_name, report_id, email, "
    "extra_contact_info, generator, format, version, \"begin\", \"end\", "
    "domain, adkim, aspf, p, sp, np, pct, fo, testing, discovery_method, "
    "errors, flags, notes, messages, records, source, imported) VALUES "
    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
    "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

static const char dmarc_record_sql[] =
    "INSERT INTO dmarc_records (report, source_ip, count, disposition, "
    "dkim, spf, header_from, envelope_from, envelope_to, reasons) VALUES "
    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

static const char dmarc_dkim_sql[] =
    "INSERT INTO dmarc_dkim (record, domain, selector, result, "
    "human_result) VALUES (?1, ?2, ?3, ?4, ?5)";

static const char dmarc_spf_sql[] =
    "INSERT INTO dmarc_spf (record, domain, scope, result, human_result) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";

static int
dmarc_add_prepare(struct dmarc_add *add, sp_error *err)
{
    if (sqlite3_prepare_v2(add->db, dmarc_find_sql, -1, &add->find, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(add->db, dmarc_report_sql, -1, &add->report, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(add->db, dmarc_record_sql, -1, &add->record, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(add->db, dmarc_dkim_sql, -1, &add->dkim, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(add->db, dmarc_spf_sql, -1, &add->spf, NULL) !=
            SQLITE_OK)
        return dmarc_fail(add->db, err, "adding a DMARC report");
    return SP_OK;
}

static void
dmarc_add_finalize(struct dmarc_add *add)
{
    sqlite3_finalize(add->find);
    sqlite3_finalize(add->report);
    sqlite3_finalize(add->record);
    sqlite3_finalize(add->dkim);
    sqlite3_finalize(add->spf);
}

/* Run an insert whose parameters are bound, and make it ready again. */
static int
dmarc_insert(struct dmarc_add *add, sqlite3_stmt *stmt, sp_error *err)
{
    int step = sqlite3_step(stmt);

    sqlite3_reset(stmt);
    if (step != SQLITE_DONE)
        return dmarc_fail(add->db, err, "adding a DMARC report");
    return SP_OK;
}

/* A count from a report, which SQLite holds as a signed 64-bit value. */
static int64_t
dmarc_count(uint64_t count)
{
    return count > INT64_MAX ? INT64_MAX : (int64_t)count;
}

/*
 * SP_EINVAL, saying when and from where, when the report is stored
 * already; SP_OK when it is not.
 */
static int
dmarc_add_unique(struct dmarc_add *add, const sp_dmarc_report *report,
                 sp_error *err)
{
    char org[64], id[64], source[96], when[32] = "at an unknown time";
    const char *text;
    time_t imported;
    struct tm tm;
    int step, rc = SP_OK;

    sqlite3_bind_text(add->find, 1, report->org_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(add->find, 2, report->report_id, -1, SQLITE_STATIC);
    step = sqlite3_step(add->find);
    if (step == SQLITE_ROW) {
        /* The names come from receivers and files: escaped to be shown. */
        imported = (time_t)sqlite3_column_int64(add->find, 0);
        if (gmtime_r(&imported, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        text = (const char *)sqlite3_column_text(add->find, 1);
        sp_log_escape(source, sizeof(source), text ? text : "",
                      text ? strlen(text) : 0);
        sp_log_escape(org, sizeof(org), report->org_name,
                      strlen(report->org_name));
        sp_log_escape(id, sizeof(id), report->report_id,
                      strlen(report->report_id));
        rc = sp_err_set(err, SP_EINVAL,
                        "duplicate report: %s report id %s (imported %s "
                        "from %s)",
                        org, id, when, source);
    } else if (step != SQLITE_DONE) {
        rc = dmarc_fail(add->db, err, "adding a DMARC report");
    }
    sqlite3_reset(add->find);
    return rc;
}

/* Bind the report's own values, but for the JSON lists (?20, ?22). */
static void
dmarc_bind_report(sqlite3_stmt *stmt, const sp_dmarc_report *report,
                  const char *source, int64_t imported)
{
    const char *texts[] = {
        report->org_name,           report->report_id, report->email,
        report->extra_contact_info, report->generator,
    };
    const char *policy[] = {
        report->domain, report->adkim, report->aspf,
        report->p,      report->sp,    report->np,
    };

    /* ?1 to ?5, then ?10 to ?15: text in the order of the columns. */
    for (int i = 0; i < 5; i++)
        sqlite3_bind_text(stmt, 1 + i, texts[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 6, report->format);
    sqlite3_bind_text(stmt, 7, report->version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 8, report->begin);
    sqlite3_bind_int64(stmt, 9, report->end);
    for (int i = 0; i < 6; i++)
        sqlite3_bind_text(stmt, 10 + i, policy[i], -1, SQLITE_STATIC);
    if (report->pct >= 0)
        sqlite3_bind_int(stmt, 16, report->pct);
    else
        sqlite3_bind_null(stmt, 16);
    sqlite3_bind_text(stmt, 17, report->fo, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 18, report->testing, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 19, report->discovery_method, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 21, (int64_t)report->flags);
    sqlite3_bind_int64(stmt, 23, dmarc_count(report->messages));
    sqlite3_bind_int64(stmt, 24, dmarc_count(report->n_rows));
    sqlite3_bind_text(stmt, 25, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 26, imported);
}

/* The dmarc_reports row; *id gets its id. */
static int
dmarc_add_report(struct dmarc_add *add, const sp_dmarc_report *report,
                 const char *source, int64_t imported, int64_t *id,
                 sp_error *err)
{
    char *errors = dmarc_json_list(report->errors, report->n_errors);
    char *notes = dmarc_json_list(report->notes, report->n_notes);
    int rc;

    if (errors == NULL || notes == NULL) {
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    } else {
        dmarc_bind_report(add->report, report, source, imported);
        sqlite3_bind_text(add->report, 20, errors, -1, SQLITE_STATIC);
        sqlite3_bind_text(add->report, 22, notes, -1, SQLITE_STATIC);
        rc = dmarc_insert(add, add->report, err);
        sqlite3_clear_bindings(add->report);
        *id = sqlite3_last_insert_rowid(add->db);
    }
    free(errors);
    free(notes);
    return rc;
}

/* The four text columns of a DKIM or SPF result, bound from ?2 on. */
static int
dmarc_add_result(struct dmarc_add *add, sqlite3_stmt *stmt, int64_t record,
                 const char *const texts[4], sp_error *err)
{
    sqlite3_bind_int64(stmt, 1, record);
    for (int i = 0; i < 4; i++)
        sqlite3_bind_text(stmt, 2 + i, texts[i], -1, SQLITE_STATIC);
    return dmarc_insert(add, stmt, err);
}

/* One record of the report, then its DKIM and SPF results. */
static int
dmarc_add_record(struct dmarc_add *add, int64_t report, const sp_dmarc_row *row,
                 sp_error *err)
{
    sqlite3_stmt *stmt = add->record;
    char *reasons = dmarc_json_reasons(row->reasons, row->n_reasons);
    int64_t record;
    int rc;

    if (reasons == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    sqlite3_bind_int64(stmt, 1, report);
    sqlite3_bind_text(stmt, 2, row->source_ip, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, dmarc_count(row->count));
    sqlite3_bind_text(stmt, 4, row->disposition, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, row->dkim, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 6, row->spf, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 7, row->header_from, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 8, row->envelope_from, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 9, row->envelope_to, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 10, reasons, -1, SQLITE_STATIC);
    rc = dmarc_insert(add, stmt, err);
    sqlite3_clear_bindings(stmt);
    free(reasons);
    record = sqlite3_last_insert_rowid(add->db);

    for (size_t i = 0; rc == SP_OK && i < row->n_dkim; i++) {
        const sp_dmarc_dkim *dkim = &row->dkim_results[i];
        const char *const texts[4] = {dkim->domain, dkim->selector,
                                      dkim->result, dkim->human_result};

        rc = dmarc_add_result(add, add->dkim, record, texts, err);
    }
    for (size_t i = 0; rc == SP_OK && i < row->n_spf; i++) {
        const sp_dmarc_spf *spf = &row->spf_results[i];
        const char *const texts[4] = {spf->domain, spf->scope, spf->result,
                                      spf->human_result};

        rc = dmarc_add_result(add, add->spf, record, texts, err);
    }
    return rc;
}

/* The report, its records and their results, with add's statements. */
static int
dmarc_add_all(struct dmarc_add *add, const sp_dmarc_report *report,
              const char *source, int64_t imported, int64_t *id, sp_error *err)
{
    int rc = dmarc_add_unique(add, report, err);

    if (rc == SP_OK)
        rc = dmarc_add_report(add, report, source ? source : "", imported, id,
                              err);
    for (size_t i = 0; rc == SP_OK && i < report->n_rows; i++)
        rc = dmarc_add_record(add, *id, &report->rows[i], err);
    return rc;
}

int
store__dmarc_add(sqlite3 *db, struct dmarc_add *batch,
                 const sp_dmarc_report *report, const char *source,
                 int64_t imported, int64_t *id_out, sp_error *err)
{
    struct dmarc_add add = {.db = db};
    int64_t id = 0;
    int rc;

    if (report->org_name == NULL || report->report_id == NULL)
        return sp_err_set(err, SP_EINVAL,
                          "store: a DMARC report needs its org_name and "
                          "report_id");

    /* In a batch: a savepoint, so a refused report leaves the others. */
    if (batch != NULL) {
        if (sqlite3_exec(db, "SAVEPOINT dmarc_add", NULL, NULL, NULL) !=
            SQLITE_OK)
            return dmarc_fail(db, err, "adding a DMARC report");
        rc = dmarc_add_all(batch, report, source, imported, &id, err);
        if (rc != SP_OK)
            sqlite3_exec(db, "ROLLBACK TO dmarc_add", NULL, NULL, NULL);
        sqlite3_exec(db, "RELEASE dmarc_add", NULL, NULL, NULL);
        if (rc == SP_OK && id_out != NULL)
            *id_out = id;
        return rc;
    }

    /* IMMEDIATE: no other writer between the check and the inserts. */
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return dmarc_fail(db, err, "adding a DMARC report");
    rc = dmarc_add_prepare(&add, err);
    if (rc == SP_OK)
        rc = dmarc_add_all(&add, report, source, imported, &id, err);
    dmarc_add_finalize(&add);

    /* COMMIT returns once the log is flushed (synchronous=FULL). */
    if (rc == SP_OK &&
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = dmarc_fail(db, err, "adding a DMARC report");
    if (rc != SP_OK) {
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (id_out != NULL)
        *id_out = id;
    return SP_OK;
}

int
store__dmarc_batch_begin(sqlite3 *db, struct dmarc_add **out, sp_error *err)
{
    struct dmarc_add *add = sp_calloc(1, sizeof(*add));
    int rc;

    *out = NULL;
    if (add == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    add->db = db;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        sp_free(add);
        return dmarc_fail(db, err, "starting a batch of DMARC reports");
    }
    rc = dmarc_add_prepare(add, err);
    if (rc != SP_OK) {
        dmarc_add_finalize(add);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sp_free(add);
        return rc;
    }
    *out = add;
    return SP_OK;
}

int
store__dmarc_batch_end(sqlite3 *db, struct dmarc_add *batch, bool commit,
                       sp_error *err)
{
    int rc = SP_OK;

    dmarc_add_finalize(batch);
    sp_free(batch);
    if (commit && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = dmarc_fail(db, err, "committing a batch of DMARC reports");
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int
store__dmarc_refuse(sqlite3 *db, const char *source, const char *reason,
                    const void *content, int64_t size, int64_t refused,
                    sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(db,
                           "INSERT INTO dmarc_refused (source, reason, size, "
                           "refused, content) VALUES (?1, ?2, ?3, ?4, ?5)",
                           -1, &stmt, NULL) != SQLITE_OK)
        return dmarc_fail(db, err, "recording a refused DMARC report");
    sqlite3_bind_text(stmt, 1, source ? source : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, size);
    sqlite3_bind_int64(stmt, 4, refused);
    if (content != NULL)
        sqlite3_bind_blob64(stmt, 5, content, (sqlite3_uint64)size,
                            SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = dmarc_fail(db, err, "recording a refused DMARC report");
    sqlite3_finalize(stmt);
    return rc;
}

/* ------------------------------------------------------------------------
 * Reading records back.
 */

/* A walk over the records, with the results of the current one. */
struct dmarc_walk {
    sqlite3 *db;
    sqlite3_stmt *records;       /* the records, with their report's values */
    sqlite3_stmt *dkim;          /* the DKIM results of one record */
    sqlite3_stmt *spf;           /* the SPF results of one record */
    sp_dmarc_dkim *dkim_results; /* of the current record; owned */
    size_t n_dkim, dkim_size;    /* in use, allocated */
    sp_dmarc_spf *spf_results;
    size_t n_spf, spf_size;
};

/* Records read with their report's values: the columns of this list. */
#define DMARC_ROW_COLUMNS                                                      \
    "r.domain, r.org_name, r.report_id, r.\"begin\", r.\"end\", c.id, "        \
    "c.source_ip, c.count, c.disposition, c.dkim, c.spf, c.header_from, "      \
    "c.reasons FROM dmarc_records c JOIN dmarc_reports r ON r.id = c.report "

#define DMARC_ROW_ORDER " ORDER BY r.domain, r.org_name, r.\"begin\", c.id"

static int
dmarc_walk_prepare(struct dmarc_walk *walk, const char *domain, int64_t since,
                   sp_error *err)
{
    static const char all[] =
        "SELECT " DMARC_ROW_COLUMNS "WHERE r.\"end\" >= ?2" DMARC_ROW_ORDER;
    static const char one[] =
        "SELECT " DMARC_ROW_COLUMNS
        "WHERE r.domain = ?1 AND r.\"end\" >= ?2" DMARC_ROW_ORDER;

    if (sqlite3_prepare_v2(walk->db, domain ? one : all, -1, &walk->records,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(walk->db,
                           "SELECT domain, selector, result, human_result "
                           "FROM dmarc_dkim WHERE record = ? ORDER BY rowid",
                           -1, &walk->dkim, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(walk->db,
                           "SELECT domain, scope, result, human_result "
                           "FROM dmarc_spf WHERE record = ? ORDER BY rowid",
                           -1, &walk->spf, NULL) != SQLITE_OK)
        return dmarc_fail(walk->db, err, "reading DMARC reports");
    if (domain != NULL)
        sqlite3_bind_text(walk->records, 1, domain, -1, SQLITE_STATIC);
    sqlite3_bind_int64(walk->records, 2, since > 0 ? since : INT64_MIN);
    return SP_OK;
}

/*
 * Copy the four text columns of a result row into texts (NULL stays
 * NULL).  SP_ENOMEM with nothing left allocated.
 */
static int
dmarc_walk_texts(sqlite3_stmt *stmt, char *texts[4])
{
    for (int i = 0; i < 4; i++) {
        const char *text = (const char *)sqlite3_column_text(stmt, i);

        texts[i] = NULL;
        if (text == NULL)
            continue;
        texts[i] = sp_strndup(text, (size_t)sqlite3_column_bytes(stmt, i));
        if (texts[i] != NULL)
            continue;
        while (i-- > 0)
            sp_free(texts[i]);
        return SP_ENOMEM;
    }
    return SP_OK;
}

/* Free the results of the record before, keeping the arrays. */
static void
dmarc_walk_clear(struct dmarc_walk *walk)
{
    for (size_t i = 0; i < walk->n_dkim; i++) {
        sp_dmarc_dkim *dkim = &walk->dkim_results[i];

        sp_free(dkim->domain);
        sp_free(dkim->selector);
        sp_free(dkim->result);
        sp_free(dkim->human_result);
    }
    for (size_t i = 0; i < walk->n_spf; i++) {
        sp_dmarc_spf *spf = &walk->spf_results[i];

        sp_free(spf->domain);
        sp_free(spf->scope);
        sp_free(spf->result);
        sp_free(spf->human_result);
    }
    walk->n_dkim = walk->n_spf = 0;
}

/* Make room for one more element in *array (*size elements now). */
static int
dmarc_walk_grow(void **array, size_t *size, size_t used, size_t element)
{
    size_t grown_size = *size ? *size * 2 : 4;
    void *grown;

    if (used < *size)
        return SP_OK;
    grown = sp_realloc(*array, grown_size * element);
    if (grown == NULL)
        return SP_ENOMEM;
    *array = grown;
    *size = grown_size;
    return SP_OK;
}

/* Fill err for a code that is not from SQLite, or from SQLite's own. */
static int
dmarc_walk_fail(struct dmarc_walk *walk, int rc, sp_error *err)
{
    if (rc == SP_ENOMEM)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return dmarc_fail(walk->db, err, "reading DMARC reports");
}

/* The DKIM results of record into walk. */
static int
dmarc_walk_dkim(struct dmarc_walk *walk, int64_t record, sp_error *err)
{
    char *texts[4];
    int step, rc = SP_OK;

    sqlite3_bind_int64(walk->dkim, 1, record);
    while (rc == SP_OK && (step = sqlite3_step(walk->dkim)) == SQLITE_ROW) {
        rc = dmarc_walk_grow((void **)&walk->dkim_results, &walk->dkim_size,
                             walk->n_dkim, sizeof(*walk->dkim_results));
        if (rc == SP_OK)
            rc = dmarc_walk_texts(walk->dkim, texts);
        if (rc == SP_OK)
            walk->dkim_results[walk->n_dkim++] =
                (sp_dmarc_dkim){texts[0], texts[1], texts[2], texts[3]};
    }
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = SP_EIO;
    if (rc != SP_OK)
        dmarc_walk_fail(walk, rc, err);
    sqlite3_reset(walk->dkim);
    return rc;
}

/* The SPF results of record into walk. */
static int
dmarc_walk_spf(struct dmarc_walk *walk, int64_t record, sp_error *err)
{
    char *texts[4];
    int step, rc = SP_OK;

    sqlite3_bind_int64(walk->spf, 1, record);
    while (rc == SP_OK && (step = sqlite3_step(walk->spf)) == SQLITE_ROW) {
        rc = dmarc_walk_grow((void **)&walk->spf_results, &walk->spf_size,
                             walk->n_spf, sizeof(*walk->spf_results));
        if (rc == SP_OK)
            rc = dmarc_walk_texts(walk->spf, texts);
        if (rc == SP_OK)
            walk->spf_results[walk->n_spf++] =
                (sp_dmarc_spf){texts[0], texts[1], texts[2], texts[3]};
    }
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = SP_EIO;
    if (rc != SP_OK)
        dmarc_walk_fail(walk, rc, err);
    sqlite3_reset(walk->spf);
    return rc;
}

/* Hand the current row of walk->records, with its results, to fn. */
static int
dmarc_walk_row(struct dmarc_walk *walk, sp_store_dmarc_row_fn *fn, void *arg,
               sp_error *err)
{
    sqlite3_stmt *stmt = walk->records;
    sp_store_dmarc_row row;
    int rc;

    dmarc_walk_clear(walk);
    rc = dmarc_walk_dkim(walk, sqlite3_column_int64(stmt, 5), err);
    if (rc == SP_OK)
        rc = dmarc_walk_spf(walk, sqlite3_column_int64(stmt, 5), err);
    if (rc != SP_OK)
        return rc;

    /* The text stays valid until walk->records steps again, after fn. */
    row = (sp_store_dmarc_row){
        .domain = (const char *)sqlite3_column_text(stmt, 0),
        .org_name = (const char *)sqlite3_column_text(stmt, 1),
        .report_id = (const char *)sqlite3_column_text(stmt, 2),
        .begin = sqlite3_column_int64(stmt, 3),
        .end = sqlite3_column_int64(stmt, 4),
        .source_ip = (const char *)sqlite3_column_text(stmt, 6),
        .count = sqlite3_column_int64(stmt, 7),
        .disposition = (const char *)sqlite3_column_text(stmt, 8),
        .dkim = (const char *)sqlite3_column_text(stmt, 9),
        .spf = (const char *)sqlite3_column_text(stmt, 10),
        .header_from = (const char *)sqlite3_column_text(stmt, 11),
        .reasons_json = (const char *)sqlite3_column_text(stmt, 12),
        .dkim_results = walk->dkim_results,
        .n_dkim = walk->n_dkim,
        .spf_results = walk->spf_results,
        .n_spf = walk->n_spf,
    };
    fn(arg, &row);
    return SP_OK;
}

int
store__dmarc_rows(sqlite3 *db, const char *domain, int64_t since,
                  sp_store_dmarc_row_fn *fn, void *arg, sp_error *err)
{
    struct dmarc_walk walk = {.db = db};
    int step, rc;

    /* The sub-queries run inside the read of the records, so they see
     * the same state of the database. */
    rc = dmarc_walk_prepare(&walk, domain, since, err);
    while (rc == SP_OK && (step = sqlite3_step(walk.records)) == SQLITE_ROW)
        rc = dmarc_walk_row(&walk, fn, arg, err);
    if (rc == SP_OK && step != SQLITE_DONE)
        rc = dmarc_fail(db, err, "reading DMARC reports");

    dmarc_walk_clear(&walk);
    sp_free(walk.dkim_results);
    sp_free(walk.spf_results);
    sqlite3_finalize(walk.records);
    sqlite3_finalize(walk.dkim);
    sqlite3_finalize(walk.spf);
    return rc;
}

int
store__dmarc_counts(sqlite3 *db, int64_t *reports, int64_t *records,
                    int64_t *refused, sp_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SP_OK;

    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT count(*) FROM dmarc_reports), "
                           "(SELECT count(*) FROM dmarc_records), "
                           "(SELECT count(*) FROM dmarc_refused)",
                           -1, &stmt, NULL) != SQLITE_OK)
        return dmarc_fail(db, err, "counting DMARC reports");
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        *reports = sqlite3_column_int64(stmt, 0);
        *records = sqlite3_column_int64(stmt, 1);
        *refused = sqlite3_column_int64(stmt, 2);
    } else {
        rc = dmarc_fail(db, err, "counting DMARC reports");
    }
    sqlite3_finalize(stmt);
    return rc;
}
