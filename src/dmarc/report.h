/*
 * report.h: DMARC aggregate reports, as receivers send them back: the
 * XML of RFC 7489 appendix C and of its revision (the namespace
 * urn:ietf:params:xml:ns:dmarc-2.0), bare, gzip-compressed, zipped, or
 * attached to a mail message.
 *
 * Owns the parsed report (sp_dmarc_report), the streaming XML parser
 * (report.c) and the unpacking of the layers around it (unpack.c).
 * Reports are hostile input: the parser refuses any DOCTYPE, reads no
 * external resource, caps the size of every value, and decompression is
 * capped in size and ratio while it streams, so a bomb is refused before
 * it is inflated.  Markup faults seen in real reports (a raw '<' or '&'
 * in a value, bytes that are not UTF-8, a report cut short) are repaired
 * where the records stay unambiguous, and every repair is flagged.
 *
 * Like the rest of dmarc/, no I/O: bytes in, reports out.
 */
#ifndef SP_DMARC_REPORT_H
#define SP_DMARC_REPORT_H

#include "base/base.h"

#include <jansson.h>

/* What was repaired or noticed in a report that was still read. */
enum {
    SP_DMARC_REPAIRED_MARKUP = 1 << 0, /* raw '<' or '&' in a value */
    SP_DMARC_REPAIRED_BYTES = 1 << 1,  /* bytes not UTF-8 replaced */
    SP_DMARC_TRUNCATED = 1 << 2,       /* cut short: complete records kept */
    SP_DMARC_UNKNOWN_VALUES = 1 << 3,  /* a token outside the schema */
};

/* One DKIM signature as the receiver judged it (auth_results/dkim). */
typedef struct sp_dmarc_dkim {
    char *domain;
    char *selector;     /* NULL when the report leaves it out */
    char *result;       /* none, pass, fail, policy, neutral, temperror,
                           permerror; other tokens verbatim */
    char *human_result; /* NULL when absent */
} sp_dmarc_dkim;

/* One SPF check (auth_results/spf). */
typedef struct sp_dmarc_spf {
    char *domain;
    char *scope;  /* helo or mfrom; NULL when absent */
    char *result; /* none, neutral, pass, fail, softfail, temperror,
                     permerror; other tokens verbatim */
    char *human_result;
} sp_dmarc_spf;

/* Why the receiver applied another disposition than the policy's. */
typedef struct sp_dmarc_reason {
    char *type; /* forwarded, sampled_out, trusted_forwarder, ... */
    char *comment;
} sp_dmarc_reason;

/* One record: messages from one source with one set of results. */
typedef struct sp_dmarc_row {
    char *source_ip;   /* as written; checked to be an IPv4 or IPv6 address */
    uint64_t count;    /* messages */
    char *disposition; /* none, quarantine, reject (pass in the revision) */
    char *dkim;        /* policy_evaluated: the aligned DKIM verdict */
    char *spf;         /* policy_evaluated: the aligned SPF verdict */
    sp_dmarc_reason *reasons;
    size_t n_reasons;
    char *header_from;
    char *envelope_from; /* NULL when absent */
    char *envelope_to;   /* NULL when absent */
    sp_dmarc_dkim *dkim_results;
    size_t n_dkim;
    sp_dmarc_spf *spf_results;
    size_t n_spf;
} sp_dmarc_row;

/*
 * A report.  Enumerated values are normalized to lower case when they are
 * one of the schema's tokens ("PASS" is "pass"); any other token is kept
 * as written, with SP_DMARC_UNKNOWN_VALUES set and a note.  Absent values
 * are NULL; absent numbers are -1.
 */
typedef struct sp_dmarc_report {
    int format;    /* 1: RFC 7489; 2: the dmarc-2.0 namespace */
    char *version; /* <version>, NULL when absent */
    char *org_name;
    char *email;
    char *extra_contact_info;
    char *report_id;
    char *generator;
    int64_t begin; /* date_range, seconds since the epoch */
    int64_t end;
    char **errors; /* report_metadata/error */
    size_t n_errors;

    /* policy_published */
    char *domain;
    char *adkim; /* r or s */
    char *aspf;
    char *p; /* none, quarantine, reject */
    char *sp;
    char *np;
    int pct; /* 0..100, -1 when absent */
    char *fo;
    char *testing;          /* n or y */
    char *discovery_method; /* psl or treewalk */

    sp_dmarc_row *rows;
    size_t n_rows;
    uint64_t messages; /* sum of the rows' counts */

    unsigned flags; /* SP_DMARC_* above */
    char **notes;   /* one sentence per repair or oddity */
    size_t n_notes;
} sp_dmarc_report;

void sp_dmarc_report_free(sp_dmarc_report *report);

/*
 * One record of a stored report with what its report says around it, as
 * the store hands records back and summaries read them.  Absent values
 * are NULL; the pointers belong to whoever hands the view over.
 */
typedef struct sp_dmarc_record_view {
    const char *domain;    /* the report's policy_published domain */
    const char *org_name;  /* the receiver that sent the report */
    const char *report_id; /* the receiver's id of the report */
    int64_t begin;         /* the report's date range, seconds */
    int64_t end;
    const char *source_ip; /* the record: the sending address */
    int64_t count;         /* messages */
    const char *disposition;
    const char *dkim; /* the aligned DKIM verdict */
    const char *spf;  /* the aligned SPF verdict */
    const char *header_from;
    const char *reasons_json;          /* a JSON array of {"type", "comment"} */
    const sp_dmarc_dkim *dkim_results; /* one per signature judged */
    size_t n_dkim;
    const sp_dmarc_spf *spf_results; /* one per SPF check */
    size_t n_spf;
} sp_dmarc_record_view;

/*
 * The report as a JSON object in the shape of its XML: report_metadata,
 * policy_published, record (each with row, identifiers, auth_results),
 * plus format, messages, flags (their names) and notes.  Absent values
 * are null.  NULL when memory runs out.
 */
json_t *sp_dmarc_report_json(const sp_dmarc_report *report);

/*
 * The streaming parser.  Feed the XML in pieces of any size, then finish.
 * With repair false the XML must be well formed; with repair true the
 * faults named above are mended on the way in and flagged.  A parser
 * serves one document.
 */
typedef struct sp_dmarc_parser sp_dmarc_parser;

sp_dmarc_parser *sp_dmarc_parser_new(bool repair);

/*
 * Feed len bytes.  SP_ESYNTAX with err naming the line, the column and
 * the fault once the document is known to be bad (the parser then takes
 * nothing more); SP_ELIMIT for a value or a nesting past the caps;
 * SP_ENOMEM.
 */
int sp_dmarc_parser_feed(sp_dmarc_parser *parser, const void *data, size_t len,
                         sp_error *err);

/*
 * The end of the document: the report into *out (the caller frees it), or
 * SP_ESYNTAX with the reason: not XML, not a <feedback> document, a value
 * the schema requires missing or malformed.  *repairable tells whether a
 * second parse with repair could read what this one could not.
 */
int sp_dmarc_parser_finish(sp_dmarc_parser *parser, sp_dmarc_report **out,
                           bool *repairable, sp_error *err);

void sp_dmarc_parser_free(sp_dmarc_parser *parser);

/* Caps on what unpacking a report may cost. */
typedef struct sp_dmarc_limits {
    size_t max_xml;     /* octets of XML per report after decompression */
    unsigned max_ratio; /* inflated octets per compressed octet, checked
                           once a report passes one MiB */
} sp_dmarc_limits;

/* The defaults: 16 MiB, ratio 200.  Real reports are far below 1 MiB. */
void sp_dmarc_limits_default(sp_dmarc_limits *limits);

/*
 * Called once per report payload found in the input: report is the
 * parsed report (the callee owns it and frees it with
 * sp_dmarc_report_free), or NULL with refusal saying why that payload was
 * not read.  part names the payload within the input: "" for the input
 * itself, the member's name in a zip, the attachment's file name in a
 * mail.
 */
typedef void sp_dmarc_found_fn(void *arg, const char *part,
                               sp_dmarc_report *report,
                               const sp_error *refusal);

/*
 * Read every aggregate report in data: XML, gzip, zip, or a mail message
 * with reports in its MIME parts, told apart by their leading bytes and
 * never by a name or a declared type.  found is called per payload.
 * Returns SP_OK when at least one payload was found (read or refused);
 * SP_ESYNTAX when the input holds none, with err saying what it is
 * instead (an empty file, a mail without a report).
 */
int sp_dmarc_read(const void *data, size_t len, const sp_dmarc_limits *limits,
                  sp_dmarc_found_fn *found, void *arg, sp_error *err);

#endif /* SP_DMARC_REPORT_H */
