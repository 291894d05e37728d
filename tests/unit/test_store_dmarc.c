/*
 * test_store_dmarc.c: DMARC aggregate reports in the store: a report
 * comes back record by record with its DKIM results per selector and its
 * SPF results; a report stored twice is refused and nothing of the second
 * is written, nor of one that fails half-way; refusals are kept and
 * counted; the domain and since filters select; text that is not UTF-8
 * or holds control bytes is contained; reading survives memory running
 * out; a large report goes in one transaction; a store of schema version
 * 5 is upgraded on open (to the latest).
 *
 * Reports are built by hand with the library's allocator and freed here,
 * so the test does not depend on the parser.
 */
#include "testlib.h"

#include "store/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORTED 1714564800 /* 2024-05-01 12:00:00 UTC */
#define DAY      86400

/* ------------------------------------------------------------------------
 * Reports built by hand.
 */

static char *
text_dup(const char *text)
{
    char *copy = text ? sp_strndup(text, strlen(text)) : NULL;

    assert_true(text == NULL || copy != NULL);
    return copy;
}

static void
report_free(sp_dmarc_report *report)
{
    char **texts[] = {
        &report->version,
        &report->org_name,
        &report->email,
        &report->extra_contact_info,
        &report->report_id,
        &report->generator,
        &report->domain,
        &report->adkim,
        &report->aspf,
        &report->p,
        &report->sp,
        &report->np,
        &report->fo,
        &report->testing,
        &report->discovery_method,
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        sp_free(*texts[i]);
    for (size_t i = 0; i < report->n_errors; i++)
        sp_free(report->errors[i]);
    sp_free(report->errors);
    for (size_t i = 0; i < report->n_notes; i++)
        sp_free(report->notes[i]);
    sp_free(report->notes);
    for (size_t i = 0; i < report->n_rows; i++) {
        sp_dmarc_row *row = &report->rows[i];

        sp_free(row->source_ip);
        sp_free(row->disposition);
        sp_free(row->dkim);
        sp_free(row->spf);
        sp_free(row->header_from);
        sp_free(row->envelope_from);
        sp_free(row->envelope_to);
        for (size_t j = 0; j < row->n_reasons; j++) {
            sp_free(row->reasons[j].type);
            sp_free(row->reasons[j].comment);
        }
        sp_free(row->reasons);
        for (size_t j = 0; j < row->n_dkim; j++) {
            sp_free(row->dkim_results[j].domain);
            sp_free(row->dkim_results[j].selector);
            sp_free(row->dkim_results[j].result);
            sp_free(row->dkim_results[j].human_result);
        }
        sp_free(row->dkim_results);
        for (size_t j = 0; j < row->n_spf; j++) {
            sp_free(row->spf_results[j].domain);
            sp_free(row->spf_results[j].scope);
            sp_free(row->spf_results[j].result);
            sp_free(row->spf_results[j].human_result);
        }
        sp_free(row->spf_results);
    }
    sp_free(report->rows);
    sp_free(report);
}

/*
 * A report of org for domain over [begin, end) with n_rows records: the
 * first passes DKIM with selector s1, fails it with s2, passes SPF, and
 * was forwarded; the others pass SPF alone.
 */
static sp_dmarc_report *
report_new(const char *org, const char *id, const char *domain, int64_t begin,
           size_t n_rows)
{
    sp_dmarc_report *report = sp_calloc(1, sizeof(*report));

    assert_non_null(report);
    *report = (sp_dmarc_report){
        .format = 1,
        .version = text_dup("1.0"),
        .org_name = text_dup(org),
        .email = text_dup("noreply-dmarc@example.net"),
        .report_id = text_dup(id),
        .begin = begin,
        .end = begin + DAY,
        .domain = text_dup(domain),
        .adkim = text_dup("r"),
        .aspf = text_dup("s"),
        .p = text_dup("quarantine"),
        .pct = -1,
        .flags = SP_DMARC_REPAIRED_MARKUP,
    };
    report->errors = sp_calloc(1, sizeof(char *));
    report->notes = sp_calloc(1, sizeof(char *));
    report->rows = sp_calloc(n_rows, sizeof(sp_dmarc_row));
    assert_true(report->errors && report->notes && report->rows);
    report->errors[report->n_errors++] = text_dup("one \"quoted\" error");
    report->notes[report->n_notes++] = text_dup("a raw '&' was escaped");
    for (size_t i = 0; i < n_rows; i++) {
        sp_dmarc_row *row = &report->rows[report->n_rows++];

        row->source_ip = text_dup(i == 0 ? "192.0.2.1" : "2001:db8::2");
        row->count = 3 + i;
        row->disposition = text_dup("none");
        row->dkim = text_dup(i == 0 ? "pass" : "fail");
        row->spf = text_dup("pass");
        row->header_from = text_dup(domain);
        row->spf_results = sp_calloc(1, sizeof(sp_dmarc_spf));
        assert_non_null(row->spf_results);
        row->spf_results[row->n_spf++] = (sp_dmarc_spf){
            text_dup(domain), text_dup("mfrom"), text_dup("pass"), NULL};
        if (i > 0)
            continue;
        row->envelope_to = text_dup("example.net");
        row->reasons = sp_calloc(1, sizeof(sp_dmarc_reason));
        row->dkim_results = sp_calloc(2, sizeof(sp_dmarc_dkim));
        assert_true(row->reasons && row->dkim_results);
        row->reasons[row->n_reasons++] =
            (sp_dmarc_reason){text_dup("forwarded"), text_dup("list")};
        row->dkim_results[row->n_dkim++] = (sp_dmarc_dkim){
            text_dup(domain), text_dup("s1"), text_dup("pass"), NULL};
        row->dkim_results[row->n_dkim++] =
            (sp_dmarc_dkim){text_dup(domain), text_dup("s2"), text_dup("fail"),
                            text_dup("body hash")};
    }
    report->messages = n_rows == 0 ? 0 : 3 * n_rows + n_rows * (n_rows - 1) / 2;
    return report;
}

/* ------------------------------------------------------------------------
 * What sp_store_dmarc_rows gives, copied out of the call.
 */

struct seen_row {
    char domain[64], org_name[64], report_id[64];
    int64_t begin, end;
    char source_ip[64];
    int64_t count;
    char disposition[16], dkim[16], spf[16], header_from[64];
    char reasons[128];
    size_t n_dkim, n_spf;
    char dkim_results[2][4][32]; /* domain, selector, result, human */
    char spf_results[1][4][32];  /* domain, scope, result, human */
};

struct seen {
    struct seen_row rows[8];
    size_t count;
};

/* Copy text, "(null)" standing for NULL. */
static void
copy(char *dst, size_t size, const char *text)
{
    snprintf(dst, size, "%s", text ? text : "(null)");
}

static void
on_row(void *arg, const sp_store_dmarc_row *row)
{
    struct seen *seen = arg;
    struct seen_row *to = &seen->rows[seen->count++];

    assert_true(seen->count <= 8);
    copy(to->domain, sizeof(to->domain), row->domain);
    copy(to->org_name, sizeof(to->org_name), row->org_name);
    copy(to->report_id, sizeof(to->report_id), row->report_id);
    to->begin = row->begin;
    to->end = row->end;
    copy(to->source_ip, sizeof(to->source_ip), row->source_ip);
    to->count = row->count;
    copy(to->disposition, sizeof(to->disposition), row->disposition);
    copy(to->dkim, sizeof(to->dkim), row->dkim);
    copy(to->spf, sizeof(to->spf), row->spf);
    copy(to->header_from, sizeof(to->header_from), row->header_from);
    copy(to->reasons, sizeof(to->reasons), row->reasons_json);
    to->n_dkim = row->n_dkim;
    to->n_spf = row->n_spf;
    assert_true(row->n_dkim <= 2 && row->n_spf <= 1);
    for (size_t i = 0; i < row->n_dkim; i++) {
        const sp_dmarc_dkim *dkim = &row->dkim_results[i];
        const char *texts[4] = {dkim->domain, dkim->selector, dkim->result,
                                dkim->human_result};

        for (int j = 0; j < 4; j++)
            copy(to->dkim_results[i][j], 32, texts[j]);
    }
    for (size_t i = 0; i < row->n_spf; i++) {
        const sp_dmarc_spf *spf = &row->spf_results[i];
        const char *texts[4] = {spf->domain, spf->scope, spf->result,
                                spf->human_result};

        for (int j = 0; j < 4; j++)
            copy(to->spf_results[i][j], 32, texts[j]);
    }
}

static struct seen *
rows(sp_store *store, const char *domain, int64_t since)
{
    static struct seen seen;
    sp_error err;

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(
        sp_store_dmarc_rows(store, domain, since, on_row, &seen, &err), SP_OK);
    return &seen;
}

static void
assert_counts(sp_store *store, int64_t reports, int64_t records,
              int64_t refused)
{
    int64_t got[3] = {-1, -1, -1};
    sp_error err;

    assert_int_equal(
        sp_store_dmarc_counts(store, &got[0], &got[1], &got[2], &err), SP_OK);
    assert_int_equal(got[0], reports);
    assert_int_equal(got[1], records);
    assert_int_equal(got[2], refused);
}

/* One text value from the store's database, "(null)" for NULL. */
static void
query(const char *dir, const char *sql, char *out, size_t size)
{
    char path[300];
    sqlite3 *db;
    sqlite3_stmt *stmt;

    snprintf(path, sizeof(path), "%s/sealpost.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    copy(out, size, (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------
 * The tests.
 */

static void
added_report_comes_back(void **state)
{
    sp_dmarc_report *report =
        report_new("example.net", "R1", "a.example", 1714435200, 2);
    struct seen *seen;
    struct seen_row *row;
    char dir[256], value[256];
    sp_store *store = NULL;
    int64_t id = 0;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_int_equal(
        sp_store_dmarc_add(store, report, "r1.xml.gz", IMPORTED, &id, &err),
        SP_OK);
    assert_true(id > 0);
    assert_counts(store, 1, 2, 0);

    seen = rows(store, NULL, 0);
    assert_int_equal(seen->count, 2);
    row = &seen->rows[0];
    assert_string_equal(row->domain, "a.example");
    assert_string_equal(row->org_name, "example.net");
    assert_string_equal(row->report_id, "R1");
    assert_int_equal(row->begin, 1714435200);
    assert_int_equal(row->end, 1714435200 + DAY);
    assert_string_equal(row->source_ip, "192.0.2.1");
    assert_int_equal(row->count, 3);
    assert_string_equal(row->disposition, "none");
    assert_string_equal(row->dkim, "pass");
    assert_string_equal(row->spf, "pass");
    assert_string_equal(row->header_from, "a.example");
    assert_string_equal(row->reasons,
                        "[{\"type\":\"forwarded\",\"comment\":\"list\"}]");

    /* One DKIM result per selector, in the report's order. */
    assert_int_equal(row->n_dkim, 2);
    assert_string_equal(row->dkim_results[0][0], "a.example");
    assert_string_equal(row->dkim_results[0][1], "s1");
    assert_string_equal(row->dkim_results[0][2], "pass");
    assert_string_equal(row->dkim_results[0][3], "(null)");
    assert_string_equal(row->dkim_results[1][1], "s2");
    assert_string_equal(row->dkim_results[1][2], "fail");
    assert_string_equal(row->dkim_results[1][3], "body hash");
    assert_int_equal(row->n_spf, 1);
    assert_string_equal(row->spf_results[0][0], "a.example");
    assert_string_equal(row->spf_results[0][1], "mfrom");
    assert_string_equal(row->spf_results[0][2], "pass");
    assert_string_equal(row->spf_results[0][3], "(null)");

    row = &seen->rows[1];
    assert_string_equal(row->source_ip, "2001:db8::2");
    assert_int_equal(row->count, 4);
    assert_string_equal(row->dkim, "fail");
    assert_string_equal(row->reasons, "[]");
    assert_int_equal(row->n_dkim, 0);
    assert_int_equal(row->n_spf, 1);

    /* What the rows do not carry is stored too. */
    sp_store_close(store);
    query(dir,
          "SELECT format || '|' || version || '|' || email || '|' || "
          "adkim || aspf || p || '|' || ifnull(sp, 'NULL') || '|' || "
          "ifnull(pct, 'NULL') || '|' || errors || '|' || flags || '|' || "
          "notes || '|' || messages || '|' || records || '|' || source || "
          "'|' || imported FROM dmarc_reports",
          value, sizeof(value));
    assert_string_equal(value, "1|1.0|noreply-dmarc@example.net|rsquarantine|"
                               "NULL|NULL|[\"one \\\"quoted\\\" error\"]|1|"
                               "[\"a raw '&' was escaped\"]|7|2|r1.xml.gz|"
                               "1714564800");
    query(dir,
          "SELECT ifnull(envelope_from, 'NULL') || '|' || envelope_to "
          "FROM dmarc_records ORDER BY id LIMIT 1",
          value, sizeof(value));
    assert_string_equal(value, "NULL|example.net");
    report_free(report);
    testlib_remove_dir(dir);
}

static void
duplicate_report_is_refused(void **state)
{
    sp_dmarc_report *first =
        report_new("example.net", "R1", "a.example", 1714435200, 2);
    sp_dmarc_report *again =
        report_new("example.net", "R1", "b.example", 1714435200 + DAY, 3);
    sp_dmarc_report *other =
        report_new("example.com", "R1", "a.example", 1714435200, 1);
    char dir[256];
    sp_store *store = NULL;
    int64_t id = 0, before;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_int_equal(
        sp_store_dmarc_add(store, first, "r1.xml", IMPORTED, &id, &err), SP_OK);
    before = id;

    /* Same receiver, same id: refused, whatever it holds, id untouched. */
    assert_int_equal(sp_store_dmarc_add(store, again, "r1-again.xml",
                                        IMPORTED + 60, &id, &err),
                     SP_EINVAL);
    assert_int_equal(err.code, SP_EINVAL);
    assert_string_equal(err.text,
                        "duplicate report: example.net report id R1 "
                        "(imported 2024-05-01 12:00:00 UTC from r1.xml)");
    assert_int_equal(id, before);
    assert_counts(store, 1, 2, 0);
    assert_int_equal(rows(store, "b.example", 0)->count, 0);

    /* The same id from another receiver is another report. */
    assert_int_equal(
        sp_store_dmarc_add(store, other, "r2.xml", IMPORTED, NULL, &err),
        SP_OK);
    assert_counts(store, 2, 3, 0);

    sp_store_close(store);
    report_free(first);
    report_free(again);
    report_free(other);
    testlib_remove_dir(dir);
}

/* A report that fails part-way leaves nothing of itself behind. */
static void
failed_report_leaves_nothing(void **state)
{
    sp_dmarc_report *report =
        report_new("example.net", "R9", "a.example", 1714435200, 3);
    char dir[256];
    sp_store *store = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);

    /* The last record breaks a constraint: no source address. */
    sp_free(report->rows[2].source_ip);
    report->rows[2].source_ip = NULL;
    assert_int_equal(
        sp_store_dmarc_add(store, report, "r9.xml", IMPORTED, NULL, &err),
        SP_EIO);
    assert_counts(store, 0, 0, 0);

    /* Mended, it goes in: the failure left no duplicate behind. */
    report->rows[2].source_ip = text_dup("198.51.100.7");
    assert_int_equal(
        sp_store_dmarc_add(store, report, "r9.xml", IMPORTED, NULL, &err),
        SP_OK);
    assert_counts(store, 1, 3, 0);
    sp_store_close(store);
    report_free(report);
    testlib_remove_dir(dir);
}

static void
refusal_is_recorded(void **state)
{
    char dir[256], value[256];
    sp_store *store = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_counts(store, 0, 0, 0);
    assert_int_equal(sp_store_dmarc_refuse(store, "bomb.gz",
                                           "inflates past the ratio cap", NULL,
                                           4096, IMPORTED, &err),
                     SP_OK);
    assert_int_equal(sp_store_dmarc_refuse(store, "mail <a@b>", "not XML",
                                           "unused", 6, IMPORTED + 1, &err),
                     SP_OK);
    assert_counts(store, 0, 0, 2);
    assert_int_equal(rows(store, NULL, 0)->count, 0);
    sp_store_close(store);

    query(dir,
          "SELECT source || '|' || reason || '|' || size || '|' || refused "
          "FROM dmarc_refused ORDER BY id LIMIT 1",
          value, sizeof(value));
    assert_string_equal(value,
                        "bomb.gz|inflates past the ratio cap|4096|1714564800");
    query(dir,
          "SELECT coalesce((SELECT count(*) FROM dmarc_refused WHERE content "
          "IS NULL), 0) || '|' || (SELECT CAST(content AS TEXT) FROM "
          "dmarc_refused WHERE id = 2)",
          value, sizeof(value));
    assert_string_equal(value, "1|unused");
    testlib_remove_dir(dir);
}

static void
domain_and_since_filter(void **state)
{
    sp_dmarc_report *reports[] = {
        report_new("z.example", "Z1", "a.example", 1000 * DAY, 1),
        report_new("y.example", "Y1", "a.example", 1002 * DAY, 1),
        report_new("y.example", "Y0", "a.example", 1001 * DAY, 1),
        report_new("y.example", "Y2", "b.example", 1000 * DAY, 2),
    };
    struct seen *seen;
    char dir[256];
    sp_store *store = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(sp_store_dmarc_add(store, reports[i], "r.xml",
                                            IMPORTED, NULL, &err),
                         SP_OK);

    /* All: by domain, org_name, begin, then record. */
    seen = rows(store, NULL, 0);
    assert_int_equal(seen->count, 5);
    assert_string_equal(seen->rows[0].report_id, "Y0");
    assert_string_equal(seen->rows[1].report_id, "Y1");
    assert_string_equal(seen->rows[2].report_id, "Z1");
    assert_string_equal(seen->rows[3].report_id, "Y2");
    assert_string_equal(seen->rows[3].source_ip, "192.0.2.1");
    assert_string_equal(seen->rows[4].source_ip, "2001:db8::2");

    seen = rows(store, "b.example", 0);
    assert_int_equal(seen->count, 2);
    assert_string_equal(seen->rows[0].domain, "b.example");
    assert_int_equal(rows(store, "B.Example", 0)->count, 2);
    assert_int_equal(rows(store, "c.example", 0)->count, 0);

    /* since compares with the end of the date range. */
    seen = rows(store, NULL, 1002 * DAY);
    assert_int_equal(seen->count, 2);
    assert_string_equal(seen->rows[0].report_id, "Y0");
    assert_string_equal(seen->rows[1].report_id, "Y1");
    seen = rows(store, "a.example", 1003 * DAY);
    assert_int_equal(seen->count, 1);
    assert_string_equal(seen->rows[0].report_id, "Y1");
    assert_int_equal(rows(store, "b.example", 1002 * DAY)->count, 0);

    sp_store_close(store);
    for (size_t i = 0; i < 4; i++)
        report_free(reports[i]);
    testlib_remove_dir(dir);
}

/*
 * Text that is not UTF-8 still goes into the JSON lists, its other bytes
 * as '?'; control bytes of names quoted in an error are escaped.
 */
static void
hostile_text_is_contained(void **state)
{
    sp_dmarc_report *report =
        report_new("evil\x01org", "R\n1", "a.example", 1714435200, 1);
    char dir[256], value[128];
    sp_store *store = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    sp_free(report->errors[0]);
    report->errors[0] = text_dup("bad \xff byte");
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_int_equal(
        sp_store_dmarc_add(store, report, "x\ty.xml", IMPORTED, NULL, &err),
        SP_OK);
    assert_int_equal(
        sp_store_dmarc_add(store, report, "again.xml", IMPORTED, NULL, &err),
        SP_EINVAL);
    assert_string_equal(err.text, "duplicate report: evil\\x01org report id "
                                  "R\\x0a1 (imported 2024-05-01 12:00:00 UTC "
                                  "from x\\x09y.xml)");
    sp_store_close(store);
    query(dir, "SELECT errors FROM dmarc_reports", value, sizeof(value));
    assert_string_equal(value, "[\"bad ? byte\"]");
    report_free(report);
    testlib_remove_dir(dir);
}

/* Memory running out while reading: SP_ENOMEM, and nothing leaks. */
static void
rows_survive_failing_allocations(void **state)
{
    sp_dmarc_report *report =
        report_new("example.net", "R1", "a.example", 1714435200, 2);
    char dir[256];
    sp_store *store = NULL;
    sp_error err;
    int rc;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_int_equal(
        sp_store_dmarc_add(store, report, "r1.xml", IMPORTED, NULL, &err),
        SP_OK);
    for (long allowed = 0;; allowed++) {
        struct seen seen = {0};

        assert_true(allowed < 100);
        sp_alloc_fail_after(allowed);
        rc = sp_store_dmarc_rows(store, NULL, 0, on_row, &seen, &err);
        sp_alloc_fail_after(-1);
        if (rc == SP_OK) {
            assert_int_equal(seen.count, 2);
            break;
        }
        assert_int_equal(rc, SP_ENOMEM);
        assert_int_equal(err.code, SP_ENOMEM);
    }
    sp_store_close(store);
    report_free(report);
    testlib_remove_dir(dir);
}

/* Thousands of records go in at once and are counted. */
static void
large_report_goes_in(void **state)
{
    sp_dmarc_report *report =
        report_new("example.net", "BIG", "a.example", 1714435200, 20000);
    char dir[256];
    sp_store *store = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_int_equal(
        sp_store_dmarc_add(store, report, "big.xml", IMPORTED, NULL, &err),
        SP_OK);
    assert_counts(store, 1, 20000, 0);
    sp_store_close(store);
    report_free(report);
    testlib_remove_dir(dir);
}

/* A store written before DMARC reports opens upgraded, its rows kept. */
static void
schema_5_is_upgraded(void **state)
{
    sp_dmarc_report *report =
        report_new("example.net", "R1", "a.example", 1714435200, 1);
    sp_store_template tpl = {.id = "welcome", .name = "Welcome"};
    char dir[256], path[300], value[64], content[] = "{}";
    sp_store *store = NULL;
    sqlite3 *db;
    sp_error err;

    (void)state;
    testlib_temp_dir("dmarc", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    tpl.content = content;
    assert_int_equal(sp_store_template_save(store, &tpl, true, &err), SP_OK);
    sp_store_close(store);

    /* Take the database back to version 5: no DMARC tables, nor the
     * recipients' keys of version 7. */
    snprintf(path, sizeof(path), "%s/sealpost.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE dmarc_spf; DROP TABLE dmarc_dkim;"
                                  "DROP TABLE dmarc_records;"
                                  "DROP TABLE dmarc_reports;"
                                  "DROP TABLE dmarc_refused;"
                                  "DROP TABLE recipient_keys;"
                                  "PRAGMA user_version = 5",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    query(dir, "PRAGMA user_version", value, sizeof(value));
    assert_string_equal(value, "5");

    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    query(dir, "PRAGMA user_version", value, sizeof(value));
    assert_string_equal(value, "7");
    assert_int_equal(
        sp_store_dmarc_add(store, report, "r1.xml", IMPORTED, NULL, &err),
        SP_OK);
    assert_counts(store, 1, 1, 0);
    memset(&tpl, 0, sizeof(tpl));
    assert_int_equal(sp_store_template_get(store, "welcome", &tpl, &err),
                     SP_OK);
    assert_string_equal(tpl.name, "Welcome");
    sp_store_template_clear(&tpl);
    sp_store_close(store);
    report_free(report);
    testlib_remove_dir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(added_report_comes_back),
        cmocka_unit_test(duplicate_report_is_refused),
        cmocka_unit_test(failed_report_leaves_nothing),
        cmocka_unit_test(refusal_is_recorded),
        cmocka_unit_test(domain_and_since_filter),
        cmocka_unit_test(hostile_text_is_contained),
        cmocka_unit_test(rows_survive_failing_allocations),
        cmocka_unit_test(large_report_goes_in),
        cmocka_unit_test(schema_5_is_upgraded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
