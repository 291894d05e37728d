/*
 * report.c: the streaming parser of DMARC aggregate reports (RFC 7489
 * appendix C, and the dmarc-2.0 namespace of its revision), on expat.
 *
 * Owns sp_dmarc_parser_*, sp_dmarc_report_free and sp_dmarc_report_json.
 * The parser keeps only the report it builds, never the document: the
 * path of open elements, the text of the value being read, the records.
 *
 * Hostile input: a DOCTYPE stops the parse (no entity is ever declared,
 * so none expands and none is fetched), values are capped at
 * PARSER_MAX_VALUE octets and nesting at PARSER_MAX_DEPTH.  A report that
 * does not parse may be parsed again with the repair filter (repair.c) in
 * front; a report cut short then keeps the records that were complete.
 * A fault inside a record that the filter cannot mend (a mismatched end
 * tag) leaves that record ambiguous, and the report is refused with the
 * line and column of the fault.
 */
#include "report.h"
#include "dmarc_int.h"

#include <arpa/inet.h>
#include <expat.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PARSER_MAX_DEPTH 32
#define PARSER_MAX_VALUE 65536
#define PARSER_NAME_MAX  32
#define PARSER_MAX_NOTES 32
#define PARSER_CHUNK     (1 << 20)
#define NS_SEPARATOR     '|'
#define NS_REVISION      "urn:ietf:params:xml:ns:dmarc-2.0"

struct sp_dmarc_parser {
    XML_Parser xml;
    bool repair;
    dmarc_repair mend;
    sp_buf mended;
    sp_dmarc_report *report;

    char names[PARSER_MAX_DEPTH][PARSER_NAME_MAX]; /* open elements */
    unsigned depth;
    sp_buf text;             /* the value being read, leading blanks skipped */
    bool leaf;               /* no child since the innermost element opened */
    bool row_open;           /* a record has begun and not ended */
    bool root_closed;        /* </feedback> has been read */
    unsigned feedback_depth; /* depth inside <feedback>; 0 before it */
    char wrapper[PARSER_NAME_MAX]; /* the root, when not <feedback> */
    bool began;                    /* a byte other than blanks has arrived */
    int64_t fed;                   /* bytes handed to expat so far */
    bool trailing;                 /* more than blanks came after </feedback> */
    int64_t root_end;  /* where </feedback> ends in what expat read */
    unsigned bom_seen; /* bytes of a UTF-8 byte order mark so far */
    bool bom_over;     /* past where a byte order mark may be */
    size_t rows_cap;

    int failed; /* SP_OK until the document is known bad */
    enum XML_Error xml_error;
    sp_error err;
};

/* The schema's tokens, by field; anything else is kept and flagged. */
static const char *const tokens_disposition[] = {"none", "quarantine", "reject",
                                                 "pass", NULL};
static const char *const tokens_verdict[] = {"pass", "fail", NULL};
static const char *const tokens_dkim[] = {"none",      "pass",    "fail",
                                          "policy",    "neutral", "temperror",
                                          "permerror", NULL};
static const char *const tokens_spf[] = {"none",      "neutral",  "pass",
                                         "fail",      "softfail", "temperror",
                                         "permerror", NULL};
static const char *const tokens_alignment[] = {"r", "s", NULL};
static const char *const tokens_policy[] = {"none", "quarantine", "reject",
                                            NULL};
static const char *const tokens_scope[] = {"helo", "mfrom", NULL};
static const char *const tokens_testing[] = {"n", "y", NULL};
static const char *const tokens_discovery[] = {"psl", "treewalk", NULL};
static const char *const tokens_reason[] = {
    "forwarded",    "sampled_out", "trusted_forwarder", "mailing_list",
    "local_policy", "other",       "policy_test_mode",  NULL};

/* ------------------------------------------------------------------------
 * Freeing.
 */

static void
free_strings(char **list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sp_free(list[i]);
    sp_free(list);
}

static void
row_clear(sp_dmarc_row *row)
{
    sp_free(row->source_ip);
    sp_free(row->disposition);
    sp_free(row->dkim);
    sp_free(row->spf);
    for (size_t i = 0; i < row->n_reasons; i++) {
        sp_free(row->reasons[i].type);
        sp_free(row->reasons[i].comment);
    }
    sp_free(row->reasons);
    sp_free(row->header_from);
    sp_free(row->envelope_from);
    sp_free(row->envelope_to);
    for (size_t i = 0; i < row->n_dkim; i++) {
        sp_free(row->dkim_results[i].domain);
        sp_free(row->dkim_results[i].selector);
        sp_free(row->dkim_results[i].result);
        sp_free(row->dkim_results[i].human_result);
    }
    sp_free(row->dkim_results);
    for (size_t i = 0; i < row->n_spf; i++) {
        sp_free(row->spf_results[i].domain);
        sp_free(row->spf_results[i].scope);
        sp_free(row->spf_results[i].result);
        sp_free(row->spf_results[i].human_result);
    }
    sp_free(row->spf_results);
    memset(row, 0, sizeof(*row));
}

void
sp_dmarc_report_free(sp_dmarc_report *report)
{
    if (report == NULL)
        return;
    sp_free(report->version);
    sp_free(report->org_name);
    sp_free(report->email);
    sp_free(report->extra_contact_info);
    sp_free(report->report_id);
    sp_free(report->generator);
    free_strings(report->errors, report->n_errors);
    sp_free(report->domain);
    sp_free(report->adkim);
    sp_free(report->aspf);
    sp_free(report->p);
    sp_free(report->sp);
    sp_free(report->np);
    sp_free(report->fo);
    sp_free(report->testing);
    sp_free(report->discovery_method);
    for (size_t i = 0; i < report->n_rows; i++)
        row_clear(&report->rows[i]);
    sp_free(report->rows);
    free_strings(report->notes, report->n_notes);
    sp_free(report);
}

/* ------------------------------------------------------------------------
 * Faults and notes.
 */

/* The document is bad: keep the first fault, with its place, and stop. */
SP_PRINTF(3, 4)
static void
parser_fail(sp_dmarc_parser *parser, int code, const char *fmt, ...)
{
    char sentence[512];
    va_list args;

    if (parser->failed != SP_OK)
        return;
    va_start(args, fmt);
    vsnprintf(sentence, sizeof(sentence), fmt, args);
    va_end(args);
    parser->failed = code;
    sp_err_set(&parser->err, code, "line %lu, column %lu: %s",
               (unsigned long)XML_GetCurrentLineNumber(parser->xml),
               (unsigned long)XML_GetCurrentColumnNumber(parser->xml),
               sentence);
    XML_StopParser(parser->xml, XML_FALSE);
}

/* Add a sentence to the report's notes; past the cap, only count. */
SP_PRINTF(2, 3)
static void
parser_note(sp_dmarc_parser *parser, const char *fmt, ...)
{
    sp_dmarc_report *report = parser->report;
    char sentence[512];
    char **grown;
    va_list args;

    if (report->n_notes >= PARSER_MAX_NOTES)
        return;
    va_start(args, fmt);
    vsnprintf(sentence, sizeof(sentence), fmt, args);
    va_end(args);
    grown = sp_realloc(report->notes, (report->n_notes + 1) * sizeof(*grown));
    if (grown == NULL) {
        parser_fail(parser, SP_ENOMEM, "out of memory");
        return;
    }
    report->notes = grown;
    report->notes[report->n_notes] = sp_strndup(sentence, strlen(sentence));
    if (report->notes[report->n_notes] == NULL) {
        parser_fail(parser, SP_ENOMEM, "out of memory");
        return;
    }
    report->n_notes++;
}

/* ------------------------------------------------------------------------
 * Values.
 */

static char
lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* Replace *field with a copy of value. */
static void
set_text(sp_dmarc_parser *parser, char **field, const char *value)
{
    char *copy = sp_strndup(value, strlen(value));

    if (copy == NULL) {
        parser_fail(parser, SP_ENOMEM, "out of memory");
        return;
    }
    sp_free(*field);
    *field = copy;
}

/*
 * Replace *field with the token value names, in lower case when it is one
 * of tokens, else as written with a note.  An empty value is absent.
 */
static void
set_token(sp_dmarc_parser *parser, char **field, const char *what,
          const char *value, const char *const *tokens)
{
    char folded[32];
    size_t len = strlen(value);

    if (len == 0) {
        sp_free(*field);
        *field = NULL;
        return;
    }
    if (len < sizeof(folded)) {
        for (size_t i = 0; i <= len; i++)
            folded[i] = lower(value[i]);
        for (size_t i = 0; tokens[i] != NULL; i++)
            if (strcmp(folded, tokens[i]) == 0) {
                set_text(parser, field, tokens[i]);
                return;
            }
    }
    parser->report->flags |= SP_DMARC_UNKNOWN_VALUES;
    parser_note(parser,
                "%s \"%.64s\" is not a token of the schema; kept as "
                "written",
                what, value);
    set_text(parser, field, value);
}

/* A count or a time: digits, and for times a fraction that is dropped. */
static bool
parse_number(const char *value, bool fraction, uint64_t *out)
{
    uint64_t number = 0;
    const char *c = value;

    if (*c < '0' || *c > '9')
        return false;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (number > (UINT64_MAX - 9) / 10)
            return false;
        number = number * 10 + (uint64_t)(*c - '0');
    }
    if (fraction && *c == '.')
        for (c++; *c >= '0' && *c <= '9'; c++)
            ;
    *out = number;
    return *c == '\0';
}

static void
set_time(sp_dmarc_parser *parser, int64_t *field, const char *what,
         const char *value)
{
    uint64_t number;

    if (!parse_number(value, true, &number) || number > INT64_MAX) {
        parser_fail(parser, SP_ESYNTAX,
                    "%s is not a time in seconds: \"%.64s\"", what, value);
        return;
    }
    *field = (int64_t)number;
}

/*
 * Append a zeroed element to *list and return it, or NULL.  Lists grow
 * only through here, so their room is the count rounded up to a power of
 * two (at least 4): it doubles when the count reaches it, and appending
 * stays linear however many records a report has.
 */
static void *
push(sp_dmarc_parser *parser, void *list_ptr, size_t *count, size_t size)
{
    void **list = list_ptr;
    size_t n = *count;
    char *grown = *list;

    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        grown = sp_realloc(*list, (n == 0 ? 4 : n * 2) * size);
        if (grown == NULL) {
            parser_fail(parser, SP_ENOMEM, "out of memory");
            return NULL;
        }
        *list = grown;
    }
    memset(grown + n * size, 0, size);
    return grown + (*count)++ * size;
}

static sp_dmarc_row *
current_row(sp_dmarc_parser *parser)
{
    return parser->row_open ? &parser->report->rows[parser->report->n_rows - 1]
                            : NULL;
}

/* A value of report_metadata, date_range or policy_published. */
static void
take_report_value(sp_dmarc_parser *parser, const char *parent, const char *name,
                  const char *value)
{
    sp_dmarc_report *report = parser->report;

    if (strcmp(parent, "feedback") == 0 && strcmp(name, "version") == 0) {
        set_text(parser, &report->version, value);
        return;
    }
    if (strcmp(parent, "date_range") == 0) {
        if (strcmp(name, "begin") == 0)
            set_time(parser, &report->begin, "begin", value);
        else if (strcmp(name, "end") == 0)
            set_time(parser, &report->end, "end", value);
        return;
    }

    if (strcmp(parent, "report_metadata") == 0) {
        char **error;

        if (strcmp(name, "org_name") == 0)
            set_text(parser, &report->org_name, value);
        else if (strcmp(name, "email") == 0)
            set_text(parser, &report->email, value);
        else if (strcmp(name, "extra_contact_info") == 0)
            set_text(parser, &report->extra_contact_info, value);
        else if (strcmp(name, "report_id") == 0)
            set_text(parser, &report->report_id, value);
        else if (strcmp(name, "generator") == 0)
            set_text(parser, &report->generator, value);
        else if (strcmp(name, "error") == 0 &&
                 (error = push(parser, &report->errors, &report->n_errors,
                               sizeof(*error))) != NULL)
            set_text(parser, error, value);
        return;
    }

    if (strcmp(parent, "policy_published") != 0)
        return;
    if (strcmp(name, "domain") == 0)
        set_text(parser, &report->domain, value);
    else if (strcmp(name, "adkim") == 0)
        set_token(parser, &report->adkim, "adkim", value, tokens_alignment);
    else if (strcmp(name, "aspf") == 0)
        set_token(parser, &report->aspf, "aspf", value, tokens_alignment);
    else if (strcmp(name, "p") == 0)
        set_token(parser, &report->p, "p", value, tokens_policy);
    else if (strcmp(name, "sp") == 0)
        set_token(parser, &report->sp, "sp", value, tokens_policy);
    else if (strcmp(name, "np") == 0)
        set_token(parser, &report->np, "np", value, tokens_policy);
    else if (strcmp(name, "fo") == 0)
        set_text(parser, &report->fo, value);
    else if (strcmp(name, "testing") == 0)
        set_token(parser, &report->testing, "testing", value, tokens_testing);
    else if (strcmp(name, "discovery_method") == 0)
        set_token(parser, &report->discovery_method, "discovery_method", value,
                  tokens_discovery);
    else if (strcmp(name, "pct") == 0) {
        uint64_t pct;

        if (value[0] != '\0' &&
            (!parse_number(value, false, &pct) || pct > 100)) {
            parser_fail(parser, SP_ESYNTAX,
                        "pct is not a percentage: \"%.64s\"", value);
            return;
        }
        report->pct = value[0] != '\0' ? (int)pct : -1;
    }
}

/* A value inside a record. */
static void
take_row_value(sp_dmarc_parser *parser, sp_dmarc_row *row, const char *parent,
               const char *name, const char *value)
{
    if (strcmp(parent, "row") == 0) {
        unsigned char address[16];
        uint64_t count;

        if (strcmp(name, "source_ip") == 0) {
            set_text(parser, &row->source_ip, value);
            if (inet_pton(AF_INET, value, address) != 1 &&
                inet_pton(AF_INET6, value, address) != 1) {
                parser->report->flags |= SP_DMARC_UNKNOWN_VALUES;
                parser_note(parser,
                            "source_ip \"%.64s\" is not an IP "
                            "address",
                            value);
            }
        } else if (strcmp(name, "count") == 0) {
            if (!parse_number(value, false, &count) || count > INT64_MAX) {
                parser_fail(parser, SP_ESYNTAX,
                            "count is not a number from 0 to 2^63-1: "
                            "\"%.64s\"",
                            value);
                return;
            }
            row->count = count;
        }
    } else if (strcmp(parent, "policy_evaluated") == 0) {
        if (strcmp(name, "disposition") == 0)
            set_token(parser, &row->disposition, "disposition", value,
                      tokens_disposition);
        else if (strcmp(name, "dkim") == 0)
            set_token(parser, &row->dkim, "policy_evaluated dkim", value,
                      tokens_verdict);
        else if (strcmp(name, "spf") == 0)
            set_token(parser, &row->spf, "policy_evaluated spf", value,
                      tokens_verdict);
    } else if (strcmp(parent, "reason") == 0 && row->n_reasons > 0) {
        sp_dmarc_reason *reason = &row->reasons[row->n_reasons - 1];

        if (strcmp(name, "type") == 0)
            set_token(parser, &reason->type, "reason type", value,
                      tokens_reason);
        else if (strcmp(name, "comment") == 0)
            set_text(parser, &reason->comment, value);
    } else if (strcmp(parent, "identifiers") == 0) {
        if (strcmp(name, "header_from") == 0)
            set_text(parser, &row->header_from, value);
        else if (strcmp(name, "envelope_from") == 0)
            set_text(parser, &row->envelope_from, value);
        else if (strcmp(name, "envelope_to") == 0)
            set_text(parser, &row->envelope_to, value);
    } else if (strcmp(parent, "dkim") == 0 && row->n_dkim > 0) {
        sp_dmarc_dkim *dkim = &row->dkim_results[row->n_dkim - 1];

        if (strcmp(name, "domain") == 0)
            set_text(parser, &dkim->domain, value);
        else if (strcmp(name, "selector") == 0)
            set_text(parser, &dkim->selector, value);
        else if (strcmp(name, "result") == 0)
            set_token(parser, &dkim->result, "dkim result", value, tokens_dkim);
        else if (strcmp(name, "human_result") == 0)
            set_text(parser, &dkim->human_result, value);
    } else if (strcmp(parent, "spf") == 0 && row->n_spf > 0) {
        sp_dmarc_spf *spf = &row->spf_results[row->n_spf - 1];

        if (strcmp(name, "domain") == 0)
            set_text(parser, &spf->domain, value);
        else if (strcmp(name, "scope") == 0)
            set_token(parser, &spf->scope, "spf scope", value, tokens_scope);
        else if (strcmp(name, "result") == 0)
            set_token(parser, &spf->result, "spf result", value, tokens_spf);
        else if (strcmp(name, "human_result") == 0)
            set_text(parser, &spf->human_result, value);
    }
}

/* ------------------------------------------------------------------------
 * expat's handlers.
 */

static const char *
local_name(const XML_Char *name)
{
    const char *separator = strrchr(name, NS_SEPARATOR);

    return separator != NULL ? separator + 1 : name;
}

/*
 * An element opens at depth 0 or 1 before <feedback> was seen: the root
 * must be <feedback>, or a wrapper whose first child is (some reporters
 * wrap the report in the <xs:schema> of its XML Schema).  <feedback> is in
 * no namespace, or in the revision's.
 */
static void
open_feedback(sp_dmarc_parser *parser, const XML_Char *name, const char *local)
{
    const char *separator = strrchr(name, NS_SEPARATOR);

    if (strcmp(local, "feedback") != 0) {
        if (parser->depth == 0) {
            snprintf(parser->wrapper, sizeof(parser->wrapper), "%s", local);
            return;
        }
        parser_fail(parser, SP_ESYNTAX,
                    "not an aggregate report: the root element is "
                    "<%.64s>, not <feedback>",
                    parser->wrapper);
        return;
    }
    parser->feedback_depth = parser->depth + 1;
    if (parser->depth > 0)
        parser_note(parser,
                    "the report is wrapped in <%.64s>, which was "
                    "ignored",
                    parser->wrapper);
    if (separator == NULL)
        return;
    if ((size_t)(separator - name) == strlen(NS_REVISION) &&
        memcmp(name, NS_REVISION, strlen(NS_REVISION)) == 0)
        parser->report->format = 2;
    else
        parser_note(parser, "unknown namespace %.*s; read as RFC 7489",
                    (int)(separator - name > 128 ? 128 : separator - name),
                    name);
}

static void XMLCALL
on_start(void *arg, const XML_Char *name, const XML_Char **attributes)
{
    sp_dmarc_parser *parser = arg;
    sp_dmarc_report *report = parser->report;
    const char *local = local_name(name);
    const char *parent;
    sp_dmarc_row *row;

    (void)attributes;
    if (parser->failed != SP_OK)
        return;
    if (parser->depth >= PARSER_MAX_DEPTH) {
        parser_fail(parser, SP_ELIMIT, "elements nested deeper than %d",
                    PARSER_MAX_DEPTH);
        return;
    }
    if (parser->feedback_depth == 0 && parser->depth < 2)
        open_feedback(parser, name, local);

    parent = parser->depth > 0 ? parser->names[parser->depth - 1] : "";
    snprintf(parser->names[parser->depth], PARSER_NAME_MAX, "%s",
             strlen(local) < PARSER_NAME_MAX ? local : "");
    parser->depth++;
    parser->leaf = true;
    sp_buf_reset(&parser->text);

    /* Elements that begin an entry of a list. */
    row = current_row(parser);
    if (parser->feedback_depth > 0 &&
        parser->depth == parser->feedback_depth + 1 &&
        strcmp(local, "record") == 0) {
        if (push(parser, &report->rows, &report->n_rows,
                 sizeof(*report->rows)) != NULL)
            parser->row_open = true;
    } else if (row != NULL && strcmp(parent, "auth_results") == 0) {
        if (strcmp(local, "dkim") == 0)
            push(parser, &row->dkim_results, &row->n_dkim,
                 sizeof(*row->dkim_results));
        else if (strcmp(local, "spf") == 0)
            push(parser, &row->spf_results, &row->n_spf,
                 sizeof(*row->spf_results));
    } else if (row != NULL && strcmp(parent, "policy_evaluated") == 0 &&
               strcmp(local, "reason") == 0) {
        push(parser, &row->reasons, &row->n_reasons, sizeof(*row->reasons));
    }
}

/* A record ends: it must say where the mail came from and how much. */
static void
close_row(sp_dmarc_parser *parser)
{
    sp_dmarc_report *report = parser->report;
    sp_dmarc_row *row = current_row(parser);

    parser->row_open = false;
    if (row->source_ip == NULL || row->source_ip[0] == '\0') {
        parser_fail(parser, SP_ESYNTAX, "record %zu has no source_ip",
                    report->n_rows);
        return;
    }
    if (row->header_from == NULL)
        set_text(parser, &row->header_from, "");
    /* Counts are at most INT64_MAX each; their sum saturates there. */
    report->messages = row->count > (uint64_t)INT64_MAX - report->messages
                           ? (uint64_t)INT64_MAX
                           : report->messages + row->count;
}

static void XMLCALL
on_end(void *arg, const XML_Char *name)
{
    sp_dmarc_parser *parser = arg;
    const char *local, *parent;
    sp_dmarc_row *row;

    (void)name;
    if (parser->failed != SP_OK)
        return;
    parser->depth--;
    local = parser->names[parser->depth];
    parent = parser->depth > 0 ? parser->names[parser->depth - 1] : "";

    if (parser->leaf) {
        /* The value, without the blanks after it. */
        while (parser->text.len > 0 &&
               strchr(" \t\r\n", parser->text.data[parser->text.len - 1]))
            parser->text.data[--parser->text.len] = '\0';
        row = current_row(parser);
        if (row != NULL)
            take_row_value(parser, row, parent, local,
                           parser->text.len > 0 ? parser->text.data : "");
        else
            take_report_value(parser, parent, local,
                              parser->text.len > 0 ? parser->text.data : "");
    }
    parser->leaf = false;
    sp_buf_reset(&parser->text);

    if (parser->depth == parser->feedback_depth && parser->row_open &&
        strcmp(local, "record") == 0)
        close_row(parser);
    if (parser->depth + 1 == parser->feedback_depth || parser->depth == 0) {
        /* Whatever follows <feedback> (a wrapper's end) is not read. */
        if (parser->feedback_depth == 0)
            parser_fail(parser, SP_ESYNTAX,
                        "not an aggregate report: the root element is "
                        "<%.64s>, not <feedback>",
                        parser->wrapper);
        parser->root_closed = true;
        parser->root_end = (int64_t)XML_GetCurrentByteIndex(parser->xml) +
                           XML_GetCurrentByteCount(parser->xml);
        XML_StopParser(parser->xml, XML_FALSE);
    }
}

static void XMLCALL
on_text(void *arg, const XML_Char *text, int len)
{
    sp_dmarc_parser *parser = arg;
    size_t skip = 0;

    if (parser->failed != SP_OK || !parser->leaf)
        return;
    if (parser->text.len == 0)
        while (skip < (size_t)len && strchr(" \t\r\n", text[skip]) != NULL)
            skip++;
    if (skip == (size_t)len)
        return;
    if (parser->text.len + ((size_t)len - skip) > PARSER_MAX_VALUE) {
        parser_fail(parser, SP_ELIMIT, "a value longer than %d octets in <%s>",
                    PARSER_MAX_VALUE, parser->names[parser->depth - 1]);
        return;
    }
    if (sp_buf_append(&parser->text, text + skip, (size_t)len - skip) != SP_OK)
        parser_fail(parser, SP_ENOMEM, "out of memory");
}

static void XMLCALL
on_doctype(void *arg, const XML_Char *name, const XML_Char *system_id,
           const XML_Char *public_id, int has_internal_subset)
{
    (void)name;
    (void)system_id;
    (void)public_id;
    (void)has_internal_subset;
    parser_fail(arg, SP_ESYNTAX,
                "a DOCTYPE declaration is refused: reports need none, and "
                "its entities could expand or read files");
}

/*
 * Windows-1252, which expat does not know and some reporters declare: a
 * byte is its Latin-1 code point but for 0x80-0x9F.  The five bytes the
 * code page leaves undefined keep their C1 value, as browsers read them.
 */
static int XMLCALL
on_unknown_encoding(void *data, const XML_Char *name, XML_Encoding *info)
{
    static const unsigned short c1[32] = {
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
        0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
        0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
        0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

    (void)data;
    if (strcasecmp(name, "windows-1252") != 0 &&
        strcasecmp(name, "cp1252") != 0)
        return XML_STATUS_ERROR;
    for (int byte = 0; byte < 256; byte++)
        info->map[byte] = byte >= 0x80 && byte < 0xA0 ? c1[byte - 0x80] : byte;
    info->data = NULL;
    info->convert = NULL;
    info->release = NULL;
    return XML_STATUS_OK;
}

/* ------------------------------------------------------------------------
 * The parser.
 */

sp_dmarc_parser *
sp_dmarc_parser_new(bool repair)
{
    sp_dmarc_parser *parser = sp_calloc(1, sizeof(*parser));

    if (parser == NULL)
        return NULL;
    parser->report = sp_calloc(1, sizeof(*parser->report));
    parser->xml = XML_ParserCreateNS(NULL, NS_SEPARATOR);
    if (parser->report == NULL || parser->xml == NULL) {
        sp_dmarc_parser_free(parser);
        return NULL;
    }
    parser->repair = repair;
    dmarc__repair_init(&parser->mend);
    parser->report->format = 1;
    parser->report->begin = -1;
    parser->report->end = -1;
    parser->report->pct = -1;

    XML_SetUserData(parser->xml, parser);
    XML_SetElementHandler(parser->xml, on_start, on_end);
    XML_SetCharacterDataHandler(parser->xml, on_text);
    XML_SetStartDoctypeDeclHandler(parser->xml, on_doctype);
    XML_SetUnknownEncodingHandler(parser->xml, on_unknown_encoding, NULL);
    XML_SetParamEntityParsing(parser->xml, XML_PARAM_ENTITY_PARSING_NEVER);
    return parser;
}

void
sp_dmarc_parser_free(sp_dmarc_parser *parser)
{
    if (parser == NULL)
        return;
    if (parser->xml != NULL)
        XML_ParserFree(parser->xml);
    dmarc__repair_clear(&parser->mend);
    sp_buf_free(&parser->mended);
    sp_buf_free(&parser->text);
    sp_dmarc_report_free(parser->report);
    sp_free(parser);
}

/* Faults a second reading through the repair filter may get past. */
static bool
xml_error_repairable(enum XML_Error code)
{
    switch (code) {
    case XML_ERROR_SYNTAX:
    case XML_ERROR_NO_ELEMENTS:
    case XML_ERROR_INVALID_TOKEN:
    case XML_ERROR_UNCLOSED_TOKEN:
    case XML_ERROR_PARTIAL_CHAR:
    case XML_ERROR_TAG_MISMATCH:
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_BAD_CHAR_REF:
    case XML_ERROR_UNCLOSED_CDATA_SECTION:
        return true;
    default:
        return false;
    }
}

/* Faults of a document that stops in the middle. */
static bool
xml_error_at_end(enum XML_Error code)
{
    return code == XML_ERROR_NO_ELEMENTS || code == XML_ERROR_UNCLOSED_TOKEN ||
           code == XML_ERROR_PARTIAL_CHAR ||
           code == XML_ERROR_UNCLOSED_CDATA_SECTION;
}

/* Bytes after </feedback>: blanks pass, anything else is noted once. */
static void
note_trailing(sp_dmarc_parser *parser, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !parser->trailing; i++)
        if (strchr(" \t\r\n", data[i]) == NULL || data[i] == '\0')
            parser->trailing = true;
}

/* Hand bytes to expat, a chunk at a time. */
static int
xml_feed(sp_dmarc_parser *parser, const char *data, size_t len, bool final)
{
    do {
        size_t chunk = len < PARSER_CHUNK ? len : PARSER_CHUNK;
        bool last = final && chunk == len;
        bool was_closed = parser->root_closed;
        int64_t start = parser->fed;
        int status = XML_Parse(parser->xml, data, (int)chunk, last);

        parser->fed += (int64_t)chunk;
        if (parser->root_closed && !was_closed &&
            parser->root_end - start < (int64_t)chunk)
            note_trailing(parser, data + (parser->root_end - start),
                          chunk - (size_t)(parser->root_end - start));
        if (status == XML_STATUS_ERROR) {
            enum XML_Error code = XML_GetErrorCode(parser->xml);

            if (parser->failed != SP_OK || parser->root_closed)
                return parser->failed;
            parser->failed = SP_ESYNTAX;
            parser->xml_error = code;
            sp_err_set(&parser->err, SP_ESYNTAX, "line %lu, column %lu: %s",
                       (unsigned long)XML_GetCurrentLineNumber(parser->xml),
                       (unsigned long)XML_GetCurrentColumnNumber(parser->xml),
                       XML_ErrorString(code));
            return parser->failed;
        }
        if (chunk == 0)
            break;
        data += chunk;
        len -= chunk;
    } while (len > 0);
    return SP_OK;
}

/*
 * A piece through the repair filter, then to expat.  Repairs past the end
 * of </feedback> were never read, so they are taken back: they flag
 * nothing.
 */
static int
mended_feed(sp_dmarc_parser *parser, const void *data, size_t len, bool final)
{
    bool was_closed = parser->root_closed;
    int64_t before = parser->fed;
    int rc;

    sp_buf_reset(&parser->mended);
    if (dmarc__repair_feed(&parser->mend, data, len, final, &parser->mended) !=
        SP_OK)
        return SP_ENOMEM;
    rc = xml_feed(parser, parser->mended.data, parser->mended.len, final);
    if (parser->root_closed && !was_closed)
        dmarc__repair_unread(&parser->mend,
                             (size_t)(parser->root_end - before));
    return rc;
}

/*
 * Before the document: a UTF-8 byte order mark and blanks are dropped
 * (expat takes neither before the XML declaration, but reports come with
 * both), and the first byte after them must be '<', or the start of
 * UTF-16.  Returns how many bytes of data to drop.
 */
static size_t
check_start(sp_dmarc_parser *parser, const unsigned char *data, size_t len)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    char shown[40];
    size_t i = 0, n = 0, start;

    /* The mark may come split over several pieces. */
    while (!parser->bom_over && i < len && parser->bom_seen < 3 &&
           data[i] == bom[parser->bom_seen]) {
        parser->bom_seen++;
        i++;
    }
    if (i == len && !parser->bom_over && parser->bom_seen < 3)
        return len;
    parser->bom_over = true;
    if (parser->bom_seen > 0 && parser->bom_seen < 3)
        i = 0; /* not a mark after all: what came is judged below */
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' ||
                       data[i] == '\n'))
        i++;
    if (i == len)
        return len;
    parser->began = true;
    if (data[i] == '<')
        return i;
    if (data[i] == 0 || data[i] == 0xFE || data[i] == 0xFF)
        return 0;

    for (start = i; i < len && n + 1 < sizeof(shown) && n < 24; i++)
        shown[n++] = (data[i] >= 0x20 && data[i] < 0x7F) ? (char)data[i] : '.';
    shown[n] = '\0';
    parser->failed = SP_ESYNTAX;
    sp_err_set(&parser->err, SP_ESYNTAX,
               "not an aggregate report: the payload is not XML (it begins "
               "\"%s\")",
               shown);
    return start;
}

int
sp_dmarc_parser_feed(sp_dmarc_parser *parser, const void *data, size_t len,
                     sp_error *err)
{
    int rc;

    if (parser->failed == SP_OK && !parser->began) {
        size_t skip = check_start(parser, data, len);

        data = (const char *)data + skip;
        len -= skip;
    }
    if (parser->failed != SP_OK) {
        sp_err_set(err, parser->failed, "%s", parser->err.text);
        return parser->failed;
    }
    if (parser->root_closed) {
        note_trailing(parser, data, len);
        return SP_OK;
    }
    if (len == 0)
        return SP_OK;

    rc = parser->repair ? mended_feed(parser, data, len, false)
                        : xml_feed(parser, data, len, false);
    if (rc == SP_ENOMEM)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc != SP_OK)
        sp_err_set(err, rc, "%s", parser->err.text);
    return rc;
}

/*
 * A repaired reading that stops in the middle keeps the records that
 * were complete, if it has any and knows whose report it is.
 */
static bool
recover_truncated(sp_dmarc_parser *parser)
{
    sp_dmarc_report *report = parser->report;
    size_t complete = report->n_rows - (parser->row_open ? 1 : 0);
    const char *inside =
        parser->depth > 0 ? parser->names[parser->depth - 1] : "the document";

    if (!parser->repair || !xml_error_at_end(parser->xml_error) ||
        complete == 0 || report->report_id == NULL || report->domain == NULL)
        return false;
    if (parser->row_open) {
        row_clear(&report->rows[--report->n_rows]);
        parser->row_open = false;
    }
    parser->failed = SP_OK;
    report->flags |= SP_DMARC_TRUNCATED;
    parser_note(parser,
                "the report is cut short (%s, inside <%s>); the %zu "
                "complete records before that were kept",
                parser->err.text, inside, complete);
    return parser->failed == SP_OK;
}

/* What every report must hold, with stand-ins where a value is missing. */
static int
check_report(sp_dmarc_parser *parser, sp_error *err)
{
    sp_dmarc_report *report = parser->report;
    const char *at;

    if (report->report_id == NULL || report->report_id[0] == '\0')
        return sp_err_set(err, SP_ESYNTAX, "report_metadata has no report_id");
    if (report->org_name == NULL || report->org_name[0] == '\0') {
        at = report->email != NULL ? strrchr(report->email, '@') : NULL;
        if (at == NULL || at[1] == '\0')
            return sp_err_set(err, SP_ESYNTAX,
                              "report_metadata has neither org_name nor an "
                              "email address");
        set_text(parser, &report->org_name, at + 1);
        parser_note(parser,
                    "no org_name: the domain of email <%.128s> "
                    "stands for it",
                    report->email);
    }
    if (report->begin < 0 || report->end < 0)
        return sp_err_set(err, SP_ESYNTAX,
                          "report_metadata has no date_range begin and end");
    if (report->domain == NULL || report->domain[0] == '\0')
        return sp_err_set(err, SP_ESYNTAX, "policy_published has no domain");
    if (report->end < report->begin)
        parser_note(parser, "date_range ends before it begins");

    if (parser->trailing)
        parser_note(parser, "more followed </feedback> and was not read: "
                            "one report per file or stream");
    if (parser->mend.markup_repairs > 0) {
        report->flags |= SP_DMARC_REPAIRED_MARKUP;
        parser_note(parser,
                    "raw '<' or '&' read as text: %zu, the first on line %lu",
                    parser->mend.markup_repairs, parser->mend.markup_line);
    }
    if (parser->mend.byte_repairs > 0) {
        report->flags |= SP_DMARC_REPAIRED_BYTES;
        parser_note(parser,
                    "bytes that are not UTF-8 replaced by U+FFFD: %zu, the "
                    "first on line %lu",
                    parser->mend.byte_repairs, parser->mend.bytes_line);
    }
    if (parser->failed != SP_OK)
        return sp_err_set(err, parser->failed, "%s", parser->err.text);
    return SP_OK;
}

int
sp_dmarc_parser_finish(sp_dmarc_parser *parser, sp_dmarc_report **out,
                       bool *repairable, sp_error *err)
{
    int rc;

    *out = NULL;
    *repairable = false;
    if (parser->failed == SP_OK && !parser->began)
        return sp_err_set(err, SP_ESYNTAX,
                          "not an aggregate report: the payload is empty");

    if (parser->failed == SP_OK && !parser->root_closed) {
        if (parser->repair && mended_feed(parser, NULL, 0, true) == SP_ENOMEM)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        if (!parser->repair)
            xml_feed(parser, NULL, 0, true);
    }
    if (parser->failed != SP_OK && !recover_truncated(parser)) {
        *repairable = !parser->repair && parser->xml_error != XML_ERROR_NONE &&
                      xml_error_repairable(parser->xml_error);
        return sp_err_set(err, parser->failed, "%s", parser->err.text);
    }

    rc = check_report(parser, err);
    if (rc != SP_OK)
        return rc;
    *out = parser->report;
    parser->report = NULL;
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * JSON, in the shape of the XML.
 */

static json_t *
json_text(const char *text)
{
    return text != NULL ? json_string(text) : json_null();
}

static json_t *
row_json(const sp_dmarc_row *row)
{
    json_t *reasons = json_array(), *dkim = json_array(), *spf = json_array();

    for (size_t i = 0; i < row->n_reasons; i++)
        json_array_append_new(
            reasons,
            json_pack("{s:o, s:o}", "type", json_text(row->reasons[i].type),
                      "comment", json_text(row->reasons[i].comment)));
    for (size_t i = 0; i < row->n_dkim; i++) {
        const sp_dmarc_dkim *d = &row->dkim_results[i];

        json_array_append_new(dkim,
                              json_pack("{s:o, s:o, s:o, s:o}", "domain",
                                        json_text(d->domain), "selector",
                                        json_text(d->selector), "result",
                                        json_text(d->result), "human_result",
                                        json_text(d->human_result)));
    }
    for (size_t i = 0; i < row->n_spf; i++) {
        const sp_dmarc_spf *s = &row->spf_results[i];

        json_array_append_new(
            spf, json_pack("{s:o, s:o, s:o, s:o}", "domain",
                           json_text(s->domain), "scope", json_text(s->scope),
                           "result", json_text(s->result), "human_result",
                           json_text(s->human_result)));
    }

    return json_pack(
        "{s:{s:o, s:I, s:{s:o, s:o, s:o, s:o}}, s:{s:o, s:o, s:o}, "
        "s:{s:o, s:o}}",
        "row", "source_ip", json_text(row->source_ip), "count",
        (json_int_t)row->count, "policy_evaluated", "disposition",
        json_text(row->disposition), "dkim", json_text(row->dkim), "spf",
        json_text(row->spf), "reason", reasons, "identifiers", "envelope_to",
        json_text(row->envelope_to), "envelope_from",
        json_text(row->envelope_from), "header_from",
        json_text(row->header_from), "auth_results", "dkim", dkim, "spf", spf);
}

json_t *
sp_dmarc_report_json(const sp_dmarc_report *report)
{
    static const char *const flag_names[] = {
        "repaired_markup", "repaired_bytes", "truncated", "unknown_values"};
    json_t *errors = json_array(), *records = json_array(),
           *flags = json_array(), *notes = json_array();

    for (size_t i = 0; i < report->n_errors; i++)
        json_array_append_new(errors, json_string(report->errors[i]));
    for (size_t i = 0; i < report->n_rows; i++)
        json_array_append_new(records, row_json(&report->rows[i]));
    for (size_t i = 0; i < 4; i++)
        if (report->flags & (1u << i))
            json_array_append_new(flags, json_string(flag_names[i]));
    for (size_t i = 0; i < report->n_notes; i++)
        json_array_append_new(notes, json_string(report->notes[i]));

    return json_pack(
        "{s:i, s:o, s:{s:o, s:o, s:o, s:o, s:{s:I, s:I}, s:o, s:o}, "
        "s:{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}, s:o, s:I, "
        "s:o, s:o}",
        "format", report->format, "version", json_text(report->version),
        "report_metadata", "org_name", json_text(report->org_name), "email",
        json_text(report->email), "extra_contact_info",
        json_text(report->extra_contact_info), "report_id",
        json_text(report->report_id), "date_range", "begin",
        (json_int_t)report->begin, "end", (json_int_t)report->end, "error",
        errors, "generator", json_text(report->generator), "policy_published",
        "domain", json_text(report->domain), "adkim", json_text(report->adkim),
        "aspf", json_text(report->aspf), "p", json_text(report->p), "sp",
        json_text(report->sp), "np", json_text(report->np), "pct",
        report->pct >= 0 ? json_integer(report->pct) : json_null(), "fo",
        json_text(report->fo), "testing", json_text(report->testing),
        "discovery_method", json_text(report->discovery_method), "record",
        records, "messages", (json_int_t)report->messages, "flags", flags,
        "notes", notes);
}
