/*
 * fuzz_dmarc_report.c: libFuzzer target for the reader of DMARC aggregate
 * reports (src/dmarc/report.c, repair.c and unpack.c): the input is a
 * file as a receiver might send it, XML, gzip, zip or a report mail.
 *
 * Each input goes through sp_dmarc_read with the default limits but XML
 * capped at 1 MiB, so that a decompression bomb is refused quickly and
 * the fuzzer spends its time on parsing rather than on inflating.  Every
 * report that comes back is turned into JSON and freed.  Checked, besides
 * crashes and leaks:
 *   - sp_dmarc_read returns SP_OK exactly when it called back at least
 *     once, and each call brings a report or a refusal, never both;
 *   - a refusal has an error code and a reason;
 *   - a report holds what report.h promises: report_id, org_name and
 *     domain, a date range, a pct of -1 to 100, known flags, a source_ip
 *     and a header_from in every record, messages the sum of the counts;
 *   - sp_dmarc_report_json gives an object.
 *
 * A small input is also handed to the streaming parser directly, twice:
 * strict and with repair, each fed in two pieces split at a point taken
 * from the input.  A document the strict parser accepts is well formed,
 * so the repair filter must let it through untouched: the repaired parse
 * must accept it too, with the same number of records and the same values
 * (the reports compared as JSON).  Flags and notes are left out of that
 * comparison, beyond the strict report's flags being among the repaired
 * one's: the filter also mends and counts bytes after </feedback>, which
 * neither parse reads, so a repaired report may name repairs the strict
 * one did not need.
 * A broken invariant aborts, so libFuzzer keeps the input.
 */
#include "dmarc/report.h"
#include "fuzz.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_XML    ((size_t)1 << 20)  /* XML octets per report */
#define FUZZ_PARSE_SIZE ((size_t)64 << 10) /* inputs parsed directly */

/* The flags report.h defines, and those only a repaired reading sets. */
#define FUZZ_REPAIR_FLAGS                                                      \
    (SP_DMARC_REPAIRED_MARKUP | SP_DMARC_REPAIRED_BYTES | SP_DMARC_TRUNCATED)
#define FUZZ_KNOWN_FLAGS (FUZZ_REPAIR_FLAGS | SP_DMARC_UNKNOWN_VALUES)

/* What the callback saw during one sp_dmarc_read. */
struct found {
    size_t reports;  /* payloads read */
    size_t refusals; /* payloads refused */
};

static bool
filled(const char *text)
{
    return text != NULL && text[0] != '\0';
}

static void
check_row(const sp_dmarc_row *row)
{
    CHECK(filled(row->source_ip));
    CHECK(row->header_from != NULL);
    CHECK(row->n_reasons == 0 || row->reasons != NULL);
    CHECK(row->n_dkim == 0 || row->dkim_results != NULL);
    CHECK(row->n_spf == 0 || row->spf_results != NULL);
}

/* What every report that is handed out holds (report.h). */
static void
check_report(const sp_dmarc_report *report)
{
    uint64_t messages = 0;
    json_t *json;

    CHECK(report->format == 1 || report->format == 2);
    CHECK(filled(report->report_id));
    CHECK(filled(report->org_name));
    CHECK(filled(report->domain));
    CHECK(report->begin >= 0 && report->end >= 0);
    CHECK(report->pct >= -1 && report->pct <= 100);
    CHECK((report->flags & ~(unsigned)FUZZ_KNOWN_FLAGS) == 0);
    CHECK(report->n_rows == 0 || report->rows != NULL);
    for (size_t i = 0; i < report->n_rows; i++) {
        check_row(&report->rows[i]);
        messages += report->rows[i].count;
    }
    CHECK(messages == report->messages);
    for (size_t i = 0; i < report->n_errors; i++)
        CHECK(report->errors[i] != NULL);
    for (size_t i = 0; i < report->n_notes; i++)
        CHECK(report->notes[i] != NULL);

    json = sp_dmarc_report_json(report);
    CHECK(json != NULL && json_is_object(json));
    json_decref(json);
}

/* sp_dmarc_found_fn: check the payload, then free the report. */
static void
on_found(void *arg, const char *part, sp_dmarc_report *report,
         const sp_error *refusal)
{
    struct found *found = arg;

    CHECK(part != NULL);
    CHECK((report == NULL) != (refusal == NULL));
    if (report == NULL) {
        CHECK(refusal->code != SP_OK);
        CHECK(memchr(refusal->text, '\0', sizeof(refusal->text)) != NULL);
        CHECK(refusal->text[0] != '\0');
        found->refusals++;
        return;
    }
    check_report(report);
    found->reports++;
    sp_dmarc_report_free(report);
}

/*
 * One streaming parse of data, fed in two pieces split at split; the
 * report, or NULL when the parser refused the document.
 */
static sp_dmarc_report *
parse_split(const uint8_t *data, size_t size, size_t split, bool repair)
{
    sp_dmarc_parser *parser = sp_dmarc_parser_new(repair);
    sp_dmarc_report *report = NULL;
    bool repairable;
    sp_error err;
    int rc;

    CHECK(parser != NULL);
    rc = sp_dmarc_parser_feed(parser, data, split, &err);
    if (rc == SP_OK)
        rc = sp_dmarc_parser_feed(parser, data + split, size - split, &err);
    CHECK(rc == SP_OK || rc == SP_ESYNTAX || rc == SP_ELIMIT);

    /* Finishing after a refused piece is allowed and says why. */
    rc = sp_dmarc_parser_finish(parser, &report, &repairable, &err);
    CHECK((rc == SP_OK) == (report != NULL));
    CHECK(rc == SP_OK || err.text[0] != '\0');
    CHECK(!repair || !repairable);
    sp_dmarc_parser_free(parser);
    if (report != NULL)
        check_report(report);
    return report;
}

/*
 * The report's values as text, keys sorted, for comparing two readings:
 * its JSON without the flags and notes.
 */
static char *
report_text(const sp_dmarc_report *report)
{
    json_t *json = sp_dmarc_report_json(report);
    char *text;

    CHECK(json != NULL);
    CHECK(json_object_del(json, "flags") == 0);
    CHECK(json_object_del(json, "notes") == 0);
    text = json_dumps(json, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK(text != NULL);
    json_decref(json);
    return text;
}

/* A well-formed document reads the same with repair as without. */
static void
check_strict_and_repaired(const uint8_t *data, size_t size)
{
    size_t split = size == 0 ? 0 : fuzz_hash(data, size) % (size + 1);
    sp_dmarc_report *strict = parse_split(data, size, split, false);
    sp_dmarc_report *repaired = parse_split(data, size, split, true);

    if (strict != NULL) {
        char *strict_text, *repaired_text;

        CHECK((strict->flags & FUZZ_REPAIR_FLAGS) == 0);
        CHECK(repaired != NULL);
        CHECK(repaired->n_rows == strict->n_rows);
        CHECK((strict->flags & ~repaired->flags) == 0);
        strict_text = report_text(strict);
        repaired_text = report_text(repaired);
        CHECK(strcmp(strict_text, repaired_text) == 0);
        free(strict_text);
        free(repaired_text);
    }
    sp_dmarc_report_free(strict);
    sp_dmarc_report_free(repaired);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct found found = {0};
    sp_dmarc_limits limits;
    sp_error err;
    int rc;

    sp_dmarc_limits_default(&limits);
    limits.max_xml = FUZZ_MAX_XML;
    sp_err_clear(&err);
    rc = sp_dmarc_read(data, size, &limits, on_found, &found, &err);
    CHECK(rc == SP_OK || rc == SP_ESYNTAX);
    CHECK((rc == SP_OK) == (found.reports + found.refusals > 0));
    CHECK(rc == SP_OK || err.text[0] != '\0');

    if (size <= FUZZ_PARSE_SIZE)
        check_strict_and_repaired(data, size);
    return 0;
}
