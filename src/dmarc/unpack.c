/*
 * unpack.c: finding the aggregate reports in what a receiver sent: bare
 * XML, gzip (zlib), zip (libarchive), or a mail message whose MIME parts
 * hold any of those (GMime).
 *
 * Owns sp_dmarc_read and sp_dmarc_limits_default.  Each layer is told by
 * its leading bytes, since receivers name and label their files every
 * which way.  Decompression streams into the parser a chunk at a time and
 * counts what it inflates: past the size cap, or past the ratio cap once
 * a report passes a mebibyte, the payload is refused there, so a bomb
 * costs a mebibyte or so of work and the chunk buffer of memory.  A zip
 * member whose header declares a size past the cap is refused before it
 * is inflated at all; one whose header lies is caught by the count.
 *
 * A payload the strict parse cannot read is read a second time through
 * the repair filter, decompressing again: nothing is kept inflated.
 */
#include "mail/mail.h"
#include "report.h"

#include <archive.h>
#include <archive_entry.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define UNPACK_MIB         ((size_t)1 << 20)
#define UNPACK_CHUNK       65536
#define UNPACK_MAIL_DEPTH  8    /* messages forwarded inside messages */
#define UNPACK_MAX_MEMBERS 1000 /* payloads per input */
#define UNPACK_MAX_PARTS   4096 /* MIME boundary lines in one mail */

enum kind { KIND_EMPTY, KIND_GZIP, KIND_ZIP, KIND_XML, KIND_MAIL, KIND_OTHER };

/* One payload on its way into the parser. */
typedef struct payload {
    sp_dmarc_parser *parser;
    const sp_dmarc_limits *limits;
    size_t inflated;    /* octets handed to the parser */
    size_t compressed;  /* octets they came from; 0 when not compressed */
    bool parser_failed; /* the fault is the parser's, not a cap's */
    bool cut_short;     /* the compressed stream ended early */
    sp_error err;
} payload;

/* Runs the stream of one payload into pl; member picks a zip member. */
typedef int stream_fn(const void *data, size_t len, size_t member, payload *pl);

/* The state of one sp_dmarc_read. */
typedef struct reader {
    const sp_dmarc_limits *limits;
    sp_dmarc_found_fn *found;
    void *arg;
    size_t payloads; /* found, read or refused */
    bool capped;     /* told already that the rest is not read */
} reader;

/* Say once that what follows is not read; true when the cap is reached. */
static bool
reader_capped(reader *rd, const char *part)
{
    sp_error refusal;

    if (rd->payloads < UNPACK_MAX_MEMBERS)
        return false;
    if (!rd->capped) {
        rd->capped = true;
        sp_err_set(&refusal, SP_ELIMIT,
                   "more than %d reports in one input: the rest is not "
                   "read",
                   UNPACK_MAX_MEMBERS);
        rd->found(rd->arg, part, NULL, &refusal);
    }
    return true;
}

void
sp_dmarc_limits_default(sp_dmarc_limits *limits)
{
    limits->max_xml = 16 * UNPACK_MIB;
    limits->max_ratio = 200;
}

/* ------------------------------------------------------------------------
 * Telling the layers apart.
 */

static bool
blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether data begins with a header field "Name:" or an mbox "From ". */
static bool
looks_like_mail(const unsigned char *data, size_t len)
{
    size_t i = 0;

    if (len >= 5 && memcmp(data, "From ", 5) == 0)
        return true;
    while (i < len && i < 80 && data[i] > 32 && data[i] < 127 && data[i] != ':')
        i++;
    return i > 0 && i < len && data[i] == ':';
}

static enum kind
sniff(const unsigned char *data, size_t len)
{
    size_t i = 0;

    if (len >= 2 && data[0] == 0x1F && data[1] == 0x8B)
        return KIND_GZIP;
    if (len >= 4 && data[0] == 'P' && data[1] == 'K' &&
        ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6)))
        return KIND_ZIP;
    if (len >= 2 && ((data[0] == 0xFE && data[1] == 0xFF) ||
                     (data[0] == 0xFF && data[1] == 0xFE)))
        return KIND_XML;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        i = 3;
    while (i < len && blank(data[i]))
        i++;
    if (i == len)
        return KIND_EMPTY;
    if (data[i] == '<')
        return KIND_XML;
    return looks_like_mail(data, len) ? KIND_MAIL : KIND_OTHER;
}

/* Up to 24 printable characters of data, for a sentence. */
static void
show_start(const unsigned char *data, size_t len, char *out, size_t size)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n + 1 < size && n < 24; i++)
        out[n++] = (data[i] >= 0x20 && data[i] < 0x7F) ? (char)data[i] : '.';
    out[n] = '\0';
}

/* ------------------------------------------------------------------------
 * Streams.
 */

/* Inflated bytes reach the parser here, and the caps are checked. */
static int
payload_take(payload *pl, const void *data, size_t len, size_t consumed)
{
    const sp_dmarc_limits *limits = pl->limits;

    pl->inflated += len;
    if (pl->inflated > limits->max_xml)
        return sp_err_set(&pl->err, SP_ELIMIT,
                          "the report inflates past %zu octets, the limit "
                          "on one report's XML",
                          limits->max_xml);
    if (pl->compressed > 0 && pl->inflated > UNPACK_MIB && consumed > 0 &&
        pl->inflated / consumed > limits->max_ratio)
        return sp_err_set(&pl->err, SP_ELIMIT,
                          "the report inflates more than %u times its "
                          "compressed size, the limit (a decompression "
                          "bomb)",
                          limits->max_ratio);
    if (sp_dmarc_parser_feed(pl->parser, data, len, &pl->err) != SP_OK) {
        pl->parser_failed = true;
        return pl->err.code;
    }
    return SP_OK;
}

static int
stream_plain(const void *data, size_t len, size_t member, payload *pl)
{
    (void)member;
    return payload_take(pl, data, len, len);
}

/* gzip, one member or several in a row (RFC 1952 allows it). */
static int
stream_gzip(const void *data, size_t len, size_t member, payload *pl)
{
    unsigned char out[UNPACK_CHUNK];
    z_stream z;
    int zrc = Z_OK, rc = SP_OK;

    (void)member;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return sp_err_set(&pl->err, SP_ENOMEM, "out of memory");
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;

    while (rc == SP_OK) {
        z.next_out = out;
        z.avail_out = sizeof(out);
        zrc = inflate(&z, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR) {
            rc =
                sp_err_set(&pl->err, SP_ESYNTAX, "the gzip data is corrupt: %s",
                           z.msg != NULL ? z.msg : "unknown fault");
            break;
        }
        if (sizeof(out) > z.avail_out)
            rc = payload_take(pl, out, sizeof(out) - z.avail_out,
                              (size_t)z.total_in);
        if (zrc == Z_STREAM_END) {
            if (z.avail_in == 0 ||
                ((const unsigned char *)z.next_in)[0] != 0x1F)
                break;
            inflateReset(&z);
        } else if (zrc == Z_BUF_ERROR || (z.avail_in == 0 && z.avail_out > 0)) {
            pl->cut_short = true;
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

/* Open a zip held in memory. */
static struct archive *
zip_open(const void *data, size_t len)
{
    struct archive *zip = archive_read_new();

    if (zip == NULL)
        return NULL;
    if (archive_read_support_format_zip(zip) != ARCHIVE_OK ||
        archive_read_open_memory(zip, data, len) != ARCHIVE_OK) {
        archive_read_free(zip);
        return NULL;
    }
    return zip;
}

/* The member-th file of a zip. */
static int
stream_zip(const void *data, size_t len, size_t member, payload *pl)
{
    struct archive *zip = zip_open(data, len);
    struct archive_entry *entry;
    unsigned char out[UNPACK_CHUNK];
    size_t index = 0;
    int rc = SP_OK;

    if (zip == NULL)
        return sp_err_set(&pl->err, SP_ESYNTAX, "the zip cannot be opened");
    while (archive_read_next_header(zip, &entry) == ARCHIVE_OK) {
        if (archive_entry_filetype(entry) != AE_IFREG)
            continue;
        if (index++ == member)
            break;
        entry = NULL;
    }

    while (entry != NULL && rc == SP_OK) {
        la_ssize_t got = archive_read_data(zip, out, sizeof(out));

        if (got == 0)
            break;
        if (got < 0) {
            rc = sp_err_set(&pl->err, SP_ESYNTAX, "the zip is corrupt: %s",
                            archive_error_string(zip) != NULL
                                ? archive_error_string(zip)
                                : "unknown fault");
            break;
        }
        rc = payload_take(pl, out, (size_t)got, len);
    }
    archive_read_free(zip);
    return rc;
}

/* ------------------------------------------------------------------------
 * One payload: a strict reading, and if it may help, a repaired one.
 */

static void
add_note(sp_dmarc_report *report, const char *sentence)
{
    char **grown =
        sp_realloc(report->notes, (report->n_notes + 1) * sizeof(*grown));

    if (grown == NULL)
        return;
    report->notes = grown;
    report->notes[report->n_notes] = sp_strndup(sentence, strlen(sentence));
    if (report->notes[report->n_notes] != NULL)
        report->n_notes++;
}

/* One reading; SP_OK with *out, or the fault in *refusal. */
static int
read_once(reader *rd, stream_fn *stream, const void *data, size_t len,
          size_t member, bool repair, sp_dmarc_report **out, bool *repairable,
          sp_error *refusal)
{
    payload pl;
    int rc;

    memset(&pl, 0, sizeof(pl));
    pl.limits = rd->limits;
    pl.compressed = stream == stream_plain ? 0 : len;
    pl.parser = sp_dmarc_parser_new(repair);
    if (pl.parser == NULL)
        return sp_err_set(refusal, SP_ENOMEM, "out of memory");

    rc = stream(data, len, member, &pl);
    if (rc == SP_OK || pl.parser_failed)
        rc = sp_dmarc_parser_finish(pl.parser, out, repairable, &pl.err);
    sp_dmarc_parser_free(pl.parser);
    if (rc != SP_OK) {
        if (pl.cut_short)
            sp_err_set(refusal, rc, "the compressed data ends early: %s",
                       pl.err.text);
        else
            *refusal = pl.err;
        return rc;
    }
    if (pl.cut_short) {
        (*out)->flags |= SP_DMARC_TRUNCATED;
        add_note(*out, "the compressed data ends early");
    }
    return SP_OK;
}

static void
read_payload(reader *rd, const char *part, stream_fn *stream, const void *data,
             size_t len, size_t member)
{
    sp_dmarc_report *report = NULL;
    sp_error refusal, second;
    bool repairable = false;

    sp_err_clear(&refusal);
    rd->payloads++;
    if (read_once(rd, stream, data, len, member, false, &report, &repairable,
                  &refusal) != SP_OK &&
        repairable &&
        read_once(rd, stream, data, len, member, true, &report, &repairable,
                  &second) != SP_OK)
        report = NULL; /* the strict reading's fault says it best */
    rd->found(rd->arg, part, report, report != NULL ? NULL : &refusal);
}

/* Every file of a zip, each a payload. */
static void
read_zip(reader *rd, const char *part, const void *data, size_t len)
{
    struct archive *zip = zip_open(data, len);
    struct archive_entry *entry;
    size_t index = 0, before = rd->payloads;
    int status = ARCHIVE_EOF;
    char name[256];
    sp_error refusal;

    if (zip == NULL) {
        sp_err_set(&refusal, SP_ESYNTAX, "the zip cannot be opened");
        rd->payloads++;
        rd->found(rd->arg, part, NULL, &refusal);
        return;
    }
    while ((status = archive_read_next_header(zip, &entry)) == ARCHIVE_OK) {
        const char *member = archive_entry_pathname(entry);

        if (archive_entry_filetype(entry) != AE_IFREG)
            continue;
        if (reader_capped(rd, part))
            break;
        snprintf(name, sizeof(name), "%s%s%s", part, part[0] ? "/" : "",
                 member != NULL ? member : "?");
        sp_text_clean(name);

        /* A size stated past the cap is not inflated at all. */
        if (archive_entry_size_is_set(entry) &&
            (uint64_t)archive_entry_size(entry) > rd->limits->max_xml) {
            sp_err_set(&refusal, SP_ELIMIT,
                       "the zip member declares %jd octets, past the limit "
                       "of %zu on one report's XML",
                       (intmax_t)archive_entry_size(entry),
                       rd->limits->max_xml);
            rd->payloads++;
            rd->found(rd->arg, name, NULL, &refusal);
        } else {
            read_payload(rd, name, stream_zip, data, len, index);
        }
        index++;
    }
    if (status != ARCHIVE_OK && status != ARCHIVE_EOF && !rd->capped) {
        const char *why = archive_error_string(zip);

        sp_err_set(&refusal, SP_ESYNTAX, "the zip is damaged: %s",
                   why != NULL ? why : "a damaged member header");
        rd->payloads++;
        rd->found(rd->arg, part, NULL, &refusal);
    }
    archive_read_free(zip);
    if (rd->payloads == before) {
        sp_err_set(&refusal, SP_ESYNTAX, "the zip holds no file");
        rd->payloads++;
        rd->found(rd->arg, part, NULL, &refusal);
    }
}

/* ------------------------------------------------------------------------
 * Mail.
 */

static void read_layer(reader *rd, const char *part, const unsigned char *data,
                       size_t len);

/* A leaf MIME part: decoded, and read when its bytes are a report's. */
static void
read_mime_part(reader *rd, GMimePart *mime)
{
    GMimeDataWrapper *content = g_mime_part_get_content(mime);
    GMimeContentType *type = g_mime_object_get_content_type(GMIME_OBJECT(mime));
    const char *filename = g_mime_part_get_filename(mime);
    GByteArray *bytes;
    GMimeStream *sink;
    enum kind kind;

    if (content == NULL)
        return;
    sink = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(content, sink);
    bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(sink));
    kind = sniff(bytes->data, bytes->len);

    /* A text body is a report only if it is the XML itself. */
    if (type != NULL && g_mime_content_type_is_type(type, "text", "*") &&
        (kind != KIND_XML ||
         memmem(bytes->data, bytes->len, "<feedback", 9) == NULL))
        kind = KIND_OTHER;
    if (kind == KIND_GZIP || kind == KIND_ZIP || kind == KIND_XML) {
        char name[256];

        snprintf(name, sizeof(name), "%s",
                 filename != NULL ? filename : "attachment");
        sp_text_clean(name); /* it goes to logs, terminals and JSON */
        read_layer(rd, name, bytes->data, bytes->len);
    }
    g_object_unref(sink);
}

static void
walk_mime(reader *rd, GMimeObject *object, int depth)
{
    if (GMIME_IS_MULTIPART(object)) {
        GMimeMultipart *multipart = GMIME_MULTIPART(object);
        int count = g_mime_multipart_get_count(multipart);

        for (int i = 0; i < count && !reader_capped(rd, ""); i++)
            walk_mime(rd, g_mime_multipart_get_part(multipart, i), depth);
    } else if (GMIME_IS_MESSAGE_PART(object)) {
        GMimeMessage *inner =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));

        if (inner != NULL && depth >= UNPACK_MAIL_DEPTH) {
            sp_error refusal;

            sp_err_set(&refusal, SP_ELIMIT,
                       "a message forwarded more than %d deep is not read",
                       UNPACK_MAIL_DEPTH);
            rd->payloads++;
            rd->found(rd->arg, "", NULL, &refusal);
        } else if (inner != NULL &&
                   g_mime_message_get_mime_part(inner) != NULL) {
            walk_mime(rd, g_mime_message_get_mime_part(inner), depth + 1);
        }
    } else if (GMIME_IS_PART(object)) {
        read_mime_part(rd, GMIME_PART(object));
    }
}

/* Whether data has more lines starting "--", or header lines, than
 * UNPACK_MAX_PARTS. */
static bool
mail_too_parted(const unsigned char *data, size_t len)
{
    size_t boundaries = 0, header_lines = 0;
    bool in_header = true;

    for (const unsigned char *at = data, *end = data + len; at < end;) {
        const unsigned char *nl = memchr(at, '\n', (size_t)(end - at));
        size_t line = (size_t)((nl != NULL ? nl : end) - at);

        if (in_header && (line == 0 || (line == 1 && at[0] == '\r')))
            in_header = false;
        else if (in_header)
            header_lines++;
        if (line >= 2 && at[0] == '-' && at[1] == '-')
            boundaries++;
        if (boundaries > UNPACK_MAX_PARTS || header_lines > UNPACK_MAX_PARTS)
            return true;
        if (nl == NULL)
            break;
        at = nl + 1;
    }
    return false;
}

/* SP_ESYNTAX when the mail holds no report. */
static int
read_mail(reader *rd, const unsigned char *data, size_t len, sp_error *err)
{
    GMimeStream *stream;
    GMimeParser *mime_parser;
    GMimeMessage *message;
    size_t before = rd->payloads;

    /*
     * GMime builds the whole tree; a mail of many thousand parts or header
     * fields would cost memory out of all proportion to its size.  Report
     * mails have a few of each.
     */
    if (mail_too_parted(data, len))
        return sp_err_set(err, SP_ELIMIT,
                          "not read: the mail has more than %d MIME "
                          "boundaries or header lines, where report mails "
                          "have a few",
                          UNPACK_MAX_PARTS);

    sp_mail_compose_init(); /* GMime, started once for the process */
    stream = g_mime_stream_mem_new_with_buffer((const char *)data, len);
    mime_parser = g_mime_parser_new_with_stream(stream);
    message = g_mime_parser_construct_message(mime_parser, NULL);
    if (message != NULL && g_mime_message_get_mime_part(message) != NULL)
        walk_mime(rd, g_mime_message_get_mime_part(message), 0);

    if (message != NULL)
        g_object_unref(message);
    g_object_unref(mime_parser);
    g_object_unref(stream);
    if (message == NULL)
        return sp_err_set(err, SP_ESYNTAX,
                          "not an aggregate report: a mail message that "
                          "cannot be parsed");
    if (rd->payloads == before)
        return sp_err_set(err, SP_ESYNTAX,
                          "not an aggregate report: a mail message with no "
                          "XML, gzip or zip part");
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * The layers.
 */

static void
read_layer(reader *rd, const char *part, const unsigned char *data, size_t len)
{
    sp_error refusal;
    char shown[32];

    switch (sniff(data, len)) {
    case KIND_GZIP:
        read_payload(rd, part, stream_gzip, data, len, 0);
        return;
    case KIND_ZIP:
        read_zip(rd, part, data, len);
        return;
    case KIND_XML:
        read_payload(rd, part, stream_plain, data, len, 0);
        return;
    default:
        break;
    }
    show_start(data, len, shown, sizeof(shown));
    sp_err_set(&refusal, SP_ESYNTAX,
               "not an aggregate report: neither XML, gzip nor zip (it "
               "begins \"%s\")",
               shown);
    rd->payloads++;
    rd->found(rd->arg, part, NULL, &refusal);
}

int
sp_dmarc_read(const void *data, size_t len, const sp_dmarc_limits *limits,
              sp_dmarc_found_fn *found, void *arg, sp_error *err)
{
    reader rd = {.limits = limits, .found = found, .arg = arg};
    char shown[32];

    switch (sniff(data, len)) {
    case KIND_EMPTY:
        return sp_err_set(err, SP_ESYNTAX,
                          len == 0 ? "not an aggregate report: the file is "
                                     "empty"
                                   : "not an aggregate report: the file "
                                     "holds only blanks");
    case KIND_MAIL:
        return read_mail(&rd, data, len, err);
    case KIND_OTHER:
        show_start(data, len, shown, sizeof(shown));
        return sp_err_set(err, SP_ESYNTAX,
                          "not an aggregate report: neither XML, gzip, zip "
                          "nor a mail message (it begins \"%s\")",
                          shown);
    default:
        read_layer(&rd, "", data, len);
        return SP_OK;
    }
}
