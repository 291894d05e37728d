/*
 * test_dmarc_report.c: the aggregate report parser and the unpacking in
 * front of it: values and their normalization, the same result however
 * the bytes are cut into chunks, the repairs and their flags, a report
 * cut short, DOCTYPE refused, the caps on values and on inflating, and
 * the layers (gzip, zip, mail) told apart by their bytes.
 */
#include "dmarc/report.h"
#include "testlib.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define HEAD                                                                   \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                             \
    "<feedback>\n"                                                             \
    "<report_metadata><org_name>rx.example</org_name>"                         \
    "<email>dmarc@rx.example</email><report_id>r-1</report_id>"                \
    "<date_range><begin>1700000000</begin><end>1700086399</end>"               \
    "</date_range></report_metadata>\n"                                        \
    "<policy_published><domain>example.com</domain><adkim>r</adkim>"           \
    "<p>none</p><pct>100</pct></policy_published>\n"

#define RECORD(ip, count)                                                      \
    "<record><row><source_ip>" ip "</source_ip><count>" count "</count>"       \
    "<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>"       \
    "<spf>fail</spf></policy_evaluated></row>"                                 \
    "<identifiers><header_from>example.com</header_from></identifiers>"        \
    "<auth_results><dkim><domain>example.com</domain>"                         \
    "<selector>s1</selector><result>pass</result></dkim>"                      \
    "<spf><domain>example.com</domain><result>fail</result></spf>"             \
    "</auth_results></record>\n"

#define TAIL "</feedback>\n"

/* Parse text with the given chunk size (0: at once). */
static int
parse_chunked(const char *text, size_t len, size_t chunk, bool repair,
              sp_dmarc_report **out, bool *repairable, sp_error *err)
{
    sp_dmarc_parser *parser = sp_dmarc_parser_new(repair);
    int rc = SP_OK;

    assert_non_null(parser);
    if (chunk == 0)
        chunk = len > 0 ? len : 1;
    for (size_t at = 0; at < len && rc == SP_OK; at += chunk)
        rc = sp_dmarc_parser_feed(parser, text + at,
                                  len - at < chunk ? len - at : chunk, err);
    rc = sp_dmarc_parser_finish(parser, out, repairable, err);
    sp_dmarc_parser_free(parser);
    return rc;
}

/* A strict reading, then a repaired one when it may help, as unpack does. */
static int
parse(const char *text, sp_dmarc_report **out, sp_error *err)
{
    bool repairable;
    int rc = parse_chunked(text, strlen(text), 0, false, out, &repairable, err);

    if (rc != SP_OK && repairable)
        rc = parse_chunked(text, strlen(text), 0, true, out, &repairable, err);
    return rc;
}

/* Assert text is refused with words in the reason. */
static void
refused(const char *text, const char *words)
{
    sp_dmarc_report *report = NULL;
    sp_error err;

    if (parse(text, &report, &err) == SP_OK)
        fail_msg("accepted: %.80s", text);
    if (strstr(err.text, words) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", err.text, words);
    assert_null(report);
}

static void
values_are_read_and_normalized(void **state)
{
    static const char text[] =
        HEAD "<record><row><source_ip>2001:db8::1</source_ip>"
             "<count>7</count><policy_evaluated>"
             "<disposition>None</disposition><dkim>PASS</dkim>"
             "<spf>Fail</spf><reason><type>Forwarded</type>"
             "<comment>list</comment></reason></policy_evaluated></row>"
             "<identifiers><header_from>example.com</header_from>"
             "<envelope_from>bounce.example.com</envelope_from>"
             "</identifiers><auth_results>"
             "<dkim><domain>example.com</domain><selector>ed1</selector>"
             "<result>PermError</result><human_result>unsupported "
             "algorithm</human_result></dkim>"
             "<dkim><domain>example.com</domain><selector>rsa1</selector>"
             "<result>pass</result></dkim>"
             "<spf><domain>bounce.example.com</domain><scope>MFROM</scope>"
             "<result>SoftFail</result></spf></auth_results></record>" TAIL;
    sp_dmarc_report *report;
    sp_dmarc_row *row;
    sp_error err;

    (void)state;
    assert_int_equal(parse(text, &report, &err), SP_OK);
    assert_string_equal(report->org_name, "rx.example");
    assert_string_equal(report->report_id, "r-1");
    assert_int_equal(report->begin, 1700000000);
    assert_int_equal(report->end, 1700086399);
    assert_string_equal(report->domain, "example.com");
    assert_string_equal(report->p, "none");
    assert_int_equal(report->pct, 100);
    assert_null(report->sp);
    assert_int_equal(report->n_rows, 1);
    assert_int_equal(report->messages, 7);
    assert_int_equal(report->flags, 0);

    row = &report->rows[0];
    assert_string_equal(row->source_ip, "2001:db8::1");
    assert_int_equal(row->count, 7);
    assert_string_equal(row->disposition, "none");
    assert_string_equal(row->dkim, "pass");
    assert_string_equal(row->spf, "fail");
    assert_int_equal(row->n_reasons, 1);
    assert_string_equal(row->reasons[0].type, "forwarded");
    assert_string_equal(row->reasons[0].comment, "list");
    assert_string_equal(row->envelope_from, "bounce.example.com");
    assert_null(row->envelope_to);
    assert_int_equal(row->n_dkim, 2);
    assert_string_equal(row->dkim_results[0].selector, "ed1");
    assert_string_equal(row->dkim_results[0].result, "permerror");
    assert_string_equal(row->dkim_results[0].human_result,
                        "unsupported algorithm");
    assert_string_equal(row->dkim_results[1].result, "pass");
    assert_int_equal(row->n_spf, 1);
    assert_string_equal(row->spf_results[0].scope, "mfrom");
    assert_string_equal(row->spf_results[0].result, "softfail");
    sp_dmarc_report_free(report);
}

static void
unknown_tokens_are_kept_and_flagged(void **state)
{
    sp_dmarc_report *report;
    sp_error err;

    (void)state;
    assert_int_equal(parse(HEAD "<record><row><source_ip>192.0.2.1"
                                "</source_ip><count>1</count>"
                                "<policy_evaluated><disposition>Hold"
                                "</disposition></policy_evaluated></row>"
                                "</record>" TAIL,
                           &report, &err),
                     SP_OK);
    assert_string_equal(report->rows[0].disposition, "Hold");
    assert_true(report->flags & SP_DMARC_UNKNOWN_VALUES);
    assert_true(report->n_notes >= 1);
    assert_non_null(strstr(report->notes[0], "Hold"));
    sp_dmarc_report_free(report);
}

/* Every cut of a report into two chunks, and chunks of 1 to 7 bytes. */
static void
chunking_changes_nothing(void **state)
{
    static const char text[] =
        HEAD RECORD("192.0.2.1", "3") "<record><row><source_ip>192.0.2.2"
                                      "</source_ip><count>2</count></row>"
                                      "<identifiers><header_from>a&lt;b"
                                      "</header_from></identifiers>"
                                      "</record>" TAIL;
    size_t len = strlen(text);

    (void)state;
    for (int repair = 0; repair < 2; repair++)
        for (size_t chunk = 1; chunk <= len; chunk += chunk < 8 ? 1 : 37) {
            sp_dmarc_report *report;
            bool repairable;
            sp_error err;

            assert_int_equal(parse_chunked(text, len, chunk, repair, &report,
                                           &repairable, &err),
                             SP_OK);
            assert_int_equal(report->n_rows, 2);
            assert_int_equal(report->messages, 5);
            assert_string_equal(report->rows[1].header_from, "a<b");
            assert_int_equal(report->flags, 0);
            sp_dmarc_report_free(report);
        }
}

/* A raw '<' or '&' in a value is mended the same at every chunk size. */
static void
raw_markup_in_values_is_repaired(void **state)
{
    static const char text[] =
        HEAD "<record><row><source_ip>192.0.2.9</source_ip><count>1</count>"
             "</row><identifiers><header_from>bad<xml.net</header_from>"
             "<envelope_from>AT&T <x@y></envelope_from></identifiers>"
             "</record>" TAIL;
    size_t len = strlen(text);
    sp_dmarc_report *report;
    bool repairable;
    sp_error err;

    (void)state;
    assert_int_not_equal(
        parse_chunked(text, len, 0, false, &report, &repairable, &err), SP_OK);
    assert_true(repairable);
    for (size_t chunk = 1; chunk <= len; chunk += chunk < 16 ? 1 : 53) {
        assert_int_equal(
            parse_chunked(text, len, chunk, true, &report, &repairable, &err),
            SP_OK);
        assert_string_equal(report->rows[0].header_from, "bad<xml.net");
        assert_string_equal(report->rows[0].envelope_from, "AT&T <x@y>");
        assert_true(report->flags & SP_DMARC_REPAIRED_MARKUP);
        sp_dmarc_report_free(report);
    }
}

static void
bytes_not_utf8_are_replaced(void **state)
{
    static const char text[] =
        HEAD "<record><row><source_ip>192.0.2.9</source_ip><count>1</count>"
             "</row><identifiers><header_from>\x91quoted\x92</header_from>"
             "</identifiers></record>" TAIL;
    sp_dmarc_report *report;
    sp_error err;

    (void)state;
    assert_int_equal(parse(text, &report, &err), SP_OK);
    assert_string_equal(report->rows[0].header_from,
                        "\xEF\xBF\xBDquoted\xEF\xBF\xBD");
    assert_true(report->flags & SP_DMARC_REPAIRED_BYTES);
    sp_dmarc_report_free(report);
}

/* A report in Windows-1252, which expat alone does not read. */
static void
windows_1252_is_read(void **state)
{
    static const char text[] =
        "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n"
        "<feedback><report_metadata><org_name>M\xfcller \x93GmbH\x94"
        "</org_name><report_id>w-1</report_id><date_range><begin>1</begin>"
        "<end>2</end></date_range></report_metadata><policy_published>"
        "<domain>example.com</domain></policy_published>" RECORD("192.0.2.1",
                                                                 "1") TAIL;
    sp_dmarc_report *report;
    sp_error err;

    (void)state;
    assert_int_equal(parse(text, &report, &err), SP_OK);
    assert_string_equal(report->org_name,
                        "M\xc3\xbcller \xe2\x80\x9cGmbH\xe2\x80\x9d");
    assert_int_equal(report->flags, 0);
    sp_dmarc_report_free(report);
}

/* Cut short: the complete records stay, the broken one goes. */
static void
report_cut_short_keeps_complete_records(void **state)
{
    static const char whole[] = HEAD RECORD("192.0.2.1", "3")
        RECORD("192.0.2.2", "4") RECORD("192.0.2.3", "5") TAIL;
    const char *third = strstr(whole, "192.0.2.3");
    char cut[sizeof(whole)];
    sp_dmarc_report *report;
    sp_error err;

    (void)state;
    snprintf(cut, sizeof(cut), "%.*s", (int)(third - whole), whole);
    assert_int_equal(parse(cut, &report, &err), SP_OK);
    assert_int_equal(report->n_rows, 2);
    assert_int_equal(report->messages, 7);
    assert_true(report->flags & SP_DMARC_TRUNCATED);
    sp_dmarc_report_free(report);

    /* Before any record is complete there is nothing to keep. */
    snprintf(cut, sizeof(cut), "%.*s", (int)(strstr(whole, "<count>") - whole),
             whole);
    refused(cut, "line");
}

static void
faults_are_refused_with_their_place(void **state)
{
    (void)state;
    refused("", "empty");
    refused("unused", "not XML");
    refused("<html><body>hi</body></html>", "<html>, not <feedback>");
    refused(HEAD "<record><row><source_ip>192.0.2.1</source_ip><count>1"
                 "</row></record>" TAIL,
            "line 5");
    refused(HEAD "<record><row><count>1</count></row></record>" TAIL,
            "no source_ip");
    refused(HEAD "<record><row><source_ip>192.0.2.1</source_ip><count>-1"
                 "</count></row></record>" TAIL,
            "count is not a number");
    refused("<feedback><report_metadata><org_name>x</org_name>"
            "</report_metadata></feedback>",
            "no report_id");
    refused("<?xml version=\"1.0\"?>\n<!DOCTYPE feedback [\n"
            "<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>\n"
            "<feedback><report_metadata><org_name>&b;</org_name>"
            "</report_metadata></feedback>",
            "DOCTYPE");
    refused("<!DOCTYPE feedback SYSTEM \"file:///etc/hostname\">"
            "<feedback/>",
            "DOCTYPE");
}

static void
values_and_nesting_are_capped(void **state)
{
    sp_buf text = SP_BUF_INIT;

    (void)state;
    assert_int_equal(sp_buf_append_str(&text, HEAD "<record><row>"
                                                   "<source_ip>"),
                     SP_OK);
    for (int i = 0; i < 70000; i++)
        assert_int_equal(sp_buf_append_str(&text, "x"), SP_OK);
    assert_int_equal(sp_buf_append_str(&text, "</source_ip></row></record>"
                                              "</feedback>"),
                     SP_OK);
    refused(text.data, "longer than");

    sp_buf_reset(&text);
    assert_int_equal(sp_buf_append_str(&text, "<feedback>"), SP_OK);
    for (int i = 0; i < 40; i++)
        assert_int_equal(sp_buf_append_str(&text, "<a>"), SP_OK);
    refused(text.data, "nested deeper");
    sp_buf_free(&text);
}

/* The revision's namespace, and a wrapper around <feedback>. */
static void
revision_and_wrapped_reports_are_read(void **state)
{
    static const char revision[] =
        "<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">"
        "<version>1.0</version><report_metadata><org_name>o</org_name>"
        "<report_id>x</report_id><date_range><begin>1</begin><end>2</end>"
        "</date_range><generator>gen 1.2</generator></report_metadata>"
        "<policy_published><domain>example.com</domain><p>quarantine</p>"
        "<np>reject</np><testing>N</testing>"
        "<discovery_method>treewalk</discovery_method></"
        "policy_published>" RECORD("192.0.2.1", "1") TAIL;
    static const char wrapped[] =
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">\n"
        "<feedback><report_metadata><org_name>o</org_name>"
        "<report_id>y</report_id><date_range><begin>1</begin><end>2</end>"
        "</date_range></report_metadata><policy_published>"
        "<domain>example.com</domain></policy_published>" RECORD("192.0.2.1",
                                                                 "1") TAIL;
    sp_dmarc_report *report;
    sp_error err;

    (void)state;
    assert_int_equal(parse(revision, &report, &err), SP_OK);
    assert_int_equal(report->format, 2);
    assert_string_equal(report->version, "1.0");
    assert_string_equal(report->generator, "gen 1.2");
    assert_string_equal(report->np, "reject");
    assert_string_equal(report->testing, "n");
    assert_string_equal(report->discovery_method, "treewalk");
    assert_int_equal(report->n_rows, 1);
    sp_dmarc_report_free(report);

    assert_int_equal(parse(wrapped, &report, &err), SP_OK);
    assert_int_equal(report->format, 1);
    assert_string_equal(report->report_id, "y");
    assert_int_equal(report->n_rows, 1);
    sp_dmarc_report_free(report);
}

/* What sp_dmarc_read found. */
struct found {
    size_t reports, refused;
    size_t rows;
    char part[256];
    char reason[320];
};

static void
on_found(void *arg, const char *part, sp_dmarc_report *report,
         const sp_error *refusal)
{
    struct found *found = arg;

    snprintf(found->part, sizeof(found->part), "%s", part);
    if (report != NULL) {
        found->reports++;
        found->rows += report->n_rows;
        sp_dmarc_report_free(report);
    } else {
        found->refused++;
        snprintf(found->reason, sizeof(found->reason), "%s", refusal->text);
    }
}

/* gzip of len bytes of data into out. */
static void
gzip(const void *data, size_t len, sp_buf *out)
{
    z_stream z;
    unsigned char chunk[65536];
    int rc;

    memset(&z, 0, sizeof(z));
    assert_int_equal(
        deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY),
        Z_OK);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof(chunk);
        rc = deflate(&z, Z_FINISH);
        assert_int_equal(sp_buf_append(out, chunk, sizeof(chunk) - z.avail_out),
                         SP_OK);
    } while (rc == Z_OK);
    assert_int_equal(rc, Z_STREAM_END);
    deflateEnd(&z);
}

static void
layers_are_told_by_their_bytes(void **state)
{
    static const char xml[] = HEAD RECORD("192.0.2.1", "3") TAIL;
    sp_dmarc_limits limits;
    sp_buf packed = SP_BUF_INIT, mail = SP_BUF_INIT;
    struct found found;
    sp_error err;

    (void)state;
    sp_dmarc_limits_default(&limits);

    memset(&found, 0, sizeof(found));
    gzip(xml, strlen(xml), &packed);
    assert_int_equal(
        sp_dmarc_read(packed.data, packed.len, &limits, on_found, &found, &err),
        SP_OK);
    assert_int_equal(found.reports, 1);
    assert_int_equal(found.rows, 1);

    /* The same gzip in a mail, declared as a zip with a .xml name. */
    assert_int_equal(sp_buf_printf(&mail,
                                   "From: r@rx.example\r\n"
                                   "Subject: report\r\nMIME-Version: 1.0\r\n"
                                   "Content-Type: multipart/mixed; "
                                   "boundary=b\r\n\r\n--b\r\n"
                                   "Content-Type: text/plain\r\n\r\nhello\r\n"
                                   "--b\r\nContent-Type: application/zip; "
                                   "name=r.xml\r\n"
                                   "Content-Transfer-Encoding: base64\r\n"
                                   "\r\n"),
                     SP_OK);
    assert_int_equal(sp_b64_encode(&mail, packed.data, packed.len), SP_OK);
    assert_int_equal(sp_buf_append_str(&mail, "\r\n--b--\r\n"), SP_OK);
    memset(&found, 0, sizeof(found));
    assert_int_equal(
        sp_dmarc_read(mail.data, mail.len, &limits, on_found, &found, &err),
        SP_OK);
    assert_int_equal(found.reports, 1);
    assert_string_equal(found.part, "r.xml");

    /* A mail with no report in it says so. */
    memset(&found, 0, sizeof(found));
    assert_int_equal(sp_dmarc_read("From: a@b\r\n\r\nhello\r\n", 20, &limits,
                                   on_found, &found, &err),
                     SP_ESYNTAX);
    assert_non_null(strstr(err.text, "no XML, gzip or zip part"));
    assert_int_equal(found.reports + found.refused, 0);

    sp_buf_free(&packed);
    sp_buf_free(&mail);
}

/* A gzip bomb is refused on the ratio, long before the size cap. */
static void
bombs_are_refused_on_the_caps(void **state)
{
    size_t len = (size_t)8 << 20;
    char *spaces = sp_malloc(len);
    sp_buf packed = SP_BUF_INIT, document = SP_BUF_INIT;
    sp_dmarc_limits limits;
    struct found found;
    sp_error err;

    (void)state;
    assert_non_null(spaces);
    memset(spaces, ' ', len);
    assert_int_equal(sp_buf_append_str(&document, "<feedback>"), SP_OK);
    assert_int_equal(sp_buf_append(&document, spaces, len), SP_OK);
    assert_int_equal(sp_buf_append_str(&document, TAIL), SP_OK);
    gzip(document.data, document.len, &packed);

    sp_dmarc_limits_default(&limits);
    memset(&found, 0, sizeof(found));
    assert_int_equal(
        sp_dmarc_read(packed.data, packed.len, &limits, on_found, &found, &err),
        SP_OK);
    assert_int_equal(found.refused, 1);
    assert_non_null(strstr(found.reason, "times its compressed size"));

    /* With the ratio out of the way, the size cap holds. */
    limits.max_ratio = 1u << 30;
    limits.max_xml = (size_t)4 << 20;
    memset(&found, 0, sizeof(found));
    assert_int_equal(
        sp_dmarc_read(packed.data, packed.len, &limits, on_found, &found, &err),
        SP_OK);
    assert_int_equal(found.refused, 1);
    assert_non_null(strstr(found.reason, "inflates past 4194304 octets"));

    sp_free(spaces);
    sp_buf_free(&packed);
    sp_buf_free(&document);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_read_and_normalized),
        cmocka_unit_test(unknown_tokens_are_kept_and_flagged),
        cmocka_unit_test(chunking_changes_nothing),
        cmocka_unit_test(raw_markup_in_values_is_repaired),
        cmocka_unit_test(bytes_not_utf8_are_replaced),
        cmocka_unit_test(windows_1252_is_read),
        cmocka_unit_test(report_cut_short_keeps_complete_records),
        cmocka_unit_test(faults_are_refused_with_their_place),
        cmocka_unit_test(values_and_nesting_are_capped),
        cmocka_unit_test(revision_and_wrapped_reports_are_read),
        cmocka_unit_test(layers_are_told_by_their_bytes),
        cmocka_unit_test(bombs_are_refused_on_the_caps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
