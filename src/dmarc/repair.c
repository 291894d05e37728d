/*
 * repair.c: the filter that mends the markup faults real aggregate
 * reports carry, so that the records around them can still be read.
 *
 * Owns dmarc__repair_*.  Two stages, both streaming: the first replaces
 * bytes that are not UTF-8 (a Windows-1252 quote in a UTF-8 report), the
 * second escapes a '<' or '&' that cannot start markup.  A decision about
 * a '<' looks ahead at most REPAIR_LOOKAHEAD bytes, so the output is the
 * same however the input is cut into chunks, and the held tail stays
 * small.
 */
#include "dmarc_int.h"

#include <string.h>
#include <strings.h>

#define REPAIR_LOOKAHEAD 4096 /* longest tag the scan waits for */
#define REPAIR_PROLOG    256  /* where the XML declaration must end */

enum { REPAIR_TEXT, REPAIR_COMMENT, REPAIR_CDATA };

/* What a look at a '<' or '&' found. */
enum { LOOK_MORE = 0, LOOK_BAD = -1 };

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

void
dmarc__repair_init(dmarc_repair *repair)
{
    memset(repair, 0, sizeof(*repair));
    repair->line = 1;
    repair->utf8 = true;
}

void
dmarc__repair_clear(dmarc_repair *repair)
{
    sp_buf_free(&repair->held);
    sp_free(repair->marks);
    memset(repair, 0, sizeof(*repair));
}

/*
 * The length of the UTF-8 sequence at text (1 to 4), LOOK_MORE when it
 * may continue past avail, LOOK_BAD when it is not UTF-8 (overlong forms,
 * surrogates and values past U+10FFFF included).
 */
static int
utf8_length(const unsigned char *text, size_t avail)
{
    unsigned char lead = text[0];
    int length;
    unsigned char low = 0x80, high = 0xBF;

    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF)
        length = 2;
    else if (lead >= 0xE0 && lead <= 0xEF)
        length = 3;
    else if (lead >= 0xF0 && lead <= 0xF4)
        length = 4;
    else
        return LOOK_BAD;

    /* The second byte's range rules out overlong forms and surrogates. */
    if (lead == 0xE0)
        low = 0xA0;
    else if (lead == 0xED)
        high = 0x9F;
    else if (lead == 0xF0)
        low = 0x90;
    else if (lead == 0xF4)
        high = 0x8F;
    for (int i = 1; i < length; i++) {
        if ((size_t)i >= avail)
            return LOOK_MORE;
        if (text[i] < low || text[i] > high)
            return LOOK_BAD;
        low = 0x80;
        high = 0xBF;
    }
    return length;
}

static bool
name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':' || c >= 0x80;
}

static bool
name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool
space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether the avail bytes at text begin word, or could once more come. */
static int
prefix(const unsigned char *text, size_t avail, const char *word)
{
    size_t length = strlen(word);

    if (memcmp(text, word, avail < length ? avail : length) != 0)
        return LOOK_BAD;
    return avail < length ? LOOK_MORE : (int)length;
}

/*
 * The length of the tag or end tag at text ('<' first), LOOK_MORE, or
 * LOOK_BAD when it is not one.  Attribute values are quoted and hold no
 * '<'.
 */
static int
tag_length(const unsigned char *text, size_t avail)
{
    size_t i = 1;
    bool end = false;

    if (i < avail && text[i] == '/') {
        end = true;
        i++;
    }
    if (i >= avail)
        return LOOK_MORE;
    if (!name_start(text[i]))
        return LOOK_BAD;
    while (i < avail && name_char(text[i]))
        i++;

    for (;;) {
        while (i < avail && space(text[i]))
            i++;
        if (i >= avail)
            break;
        if (text[i] == '>')
            return (int)i + 1;
        if (end)
            return LOOK_BAD;
        if (text[i] == '/') {
            if (i + 1 >= avail)
                break;
            return text[i + 1] == '>' ? (int)i + 2 : LOOK_BAD;
        }

        /* An attribute: name, '=', a quoted value. */
        if (!name_start(text[i]) || !space(text[i - 1]))
            return LOOK_BAD;
        while (i < avail && name_char(text[i]))
            i++;
        while (i < avail && space(text[i]))
            i++;
        if (i >= avail)
            break;
        if (text[i++] != '=')
            return LOOK_BAD;
        while (i < avail && space(text[i]))
            i++;
        if (i >= avail)
            break;
        if (text[i] != '"' && text[i] != '\'')
            return LOOK_BAD;
        for (unsigned char quote = text[i++]; i < avail && text[i] != quote;
             i++)
            if (text[i] == '<')
                return LOOK_BAD;
        if (i >= avail)
            break;
        i++;
    }
    return avail >= REPAIR_LOOKAHEAD ? LOOK_BAD : LOOK_MORE;
}

/*
 * What the '<' at text opens: a tag's length, the length of "<!--",
 * "<![CDATA[" or "<!" (the state then changes, or the parser judges a
 * declaration), a processing instruction's length, LOOK_MORE or LOOK_BAD.
 */
static int
markup_length(dmarc_repair *repair, const unsigned char *text, size_t avail)
{
    int length;

    if (avail < 2)
        return LOOK_MORE;
    if (text[1] == '?') {
        for (size_t i = 2; i + 1 < avail; i++)
            if (text[i] == '?' && text[i + 1] == '>')
                return (int)i + 2;
        return avail >= REPAIR_LOOKAHEAD ? LOOK_BAD : LOOK_MORE;
    }
    if (text[1] != '!')
        return tag_length(text, avail);

    length = prefix(text, avail, "<!--");
    if (length > 0)
        repair->state = REPAIR_COMMENT;
    if (length != LOOK_BAD)
        return length;
    length = prefix(text, avail, "<![CDATA[");
    if (length > 0)
        repair->state = REPAIR_CDATA;
    if (length != LOOK_BAD)
        return length;
    if (avail < 3)
        return LOOK_MORE;
    return name_start(text[2]) ? 2 : LOOK_BAD;
}

/* The length of the entity or character reference at text ('&' first). */
static int
reference_length(const unsigned char *text, size_t avail)
{
    static const char *const predefined[] = {"amp;", "lt;", "gt;", "apos;",
                                             "quot;"};
    size_t i = 1;

    if (avail < 2)
        return LOOK_MORE;
    if (text[1] == '#') {
        bool hex = avail > 2 && text[2] == 'x';
        size_t digits = 0;

        for (i = hex ? 3 : 2; i < avail && i < 12; i++, digits++) {
            unsigned char c = text[i];

            if (c == ';')
                return digits > 0 ? (int)i + 1 : LOOK_BAD;
            if (!(c >= '0' && c <= '9') &&
                !(hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))))
                return LOOK_BAD;
        }
        return i >= 12 ? LOOK_BAD : LOOK_MORE;
    }
    for (size_t k = 0; k < sizeof(predefined) / sizeof(predefined[0]); k++) {
        int length = prefix(text + 1, avail - 1, predefined[k]);

        if (length != LOOK_BAD)
            return length == LOOK_MORE ? LOOK_MORE : length + 1;
    }
    return LOOK_BAD;
}

/*
 * Look at the start of the document once: UTF-16 (a byte order mark, or
 * a NUL beside the first '<') turns the filter off; an XML declaration
 * naming another encoding than UTF-8 leaves bytes alone.  False while
 * more input is needed to tell.
 */
static bool
read_prolog(dmarc_repair *repair, bool final)
{
    const unsigned char *text = (const unsigned char *)repair->held.data;
    size_t avail = repair->held.len;
    const unsigned char *end;
    const char *encoding;

    if (avail < 2 && !final)
        return false;
    if (avail >= 2 &&
        (text[0] == 0 || text[1] == 0 || (text[0] == 0xFE && text[1] == 0xFF) ||
         (text[0] == 0xFF && text[1] == 0xFE))) {
        repair->off = true;
        return true;
    }
    if (avail < 5 || memcmp(text, "<?xml", 5) != 0)
        return avail >= 5 || final;

    end = memmem(text, avail < REPAIR_PROLOG ? avail : REPAIR_PROLOG, "?>", 2);
    if (end == NULL)
        return avail >= REPAIR_PROLOG || final;
    encoding = memmem(text, (size_t)(end - text), "encoding", 8);
    if (encoding != NULL) {
        const char *value = encoding + 8;

        while (value < (const char *)end && (space(*value) || *value == '='))
            value++;
        if (value < (const char *)end && (*value == '"' || *value == '\''))
            value++;
        if (strncasecmp(value, "utf-8", 5) != 0 &&
            strncasecmp(value, "utf8", 4) != 0)
            repair->utf8 = false;
    }
    return true;
}

/* Where the terminator of a comment or CDATA section ends, or NULL. */
static const unsigned char *
section_end(const unsigned char *text, size_t avail, int state)
{
    const char *word = state == REPAIR_COMMENT ? "-->" : "]]>";
    const unsigned char *found = memmem(text, avail, word, 3);

    return found != NULL ? found + 3 : NULL;
}

/* Count the newlines of what passes, for the line of a first repair. */
static void
count_lines(dmarc_repair *repair, const unsigned char *text, size_t len)
{
    for (const unsigned char *nl = memchr(text, '\n', len); nl != NULL;
         nl = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - text)))
        repair->line++;
}

/* Decide what can be decided of held[0..], return how much was used. */
static int
repair_scan(dmarc_repair *repair, bool final, sp_buf *out, size_t *used)
{
    const unsigned char *text = (const unsigned char *)repair->held.data;
    size_t avail = repair->held.len, pos = 0;
    int rc = SP_OK;

    while (pos < avail && rc == SP_OK) {
        const unsigned char *here = text + pos;
        size_t left = avail - pos;
        int length;

        /* Inside a comment or CDATA: pass up to the terminator. */
        if (repair->state != REPAIR_TEXT) {
            const unsigned char *stop = section_end(here, left, repair->state);

            length = stop != NULL ? (int)(stop - here)
                     : final      ? (int)left
                                  : (int)(left > 2 ? left - 2 : 0);
            if (stop != NULL)
                repair->state = REPAIR_TEXT;
            if (length == 0)
                break;
            count_lines(repair, here, (size_t)length);
            rc = sp_buf_append(out, here, (size_t)length);
            pos += (size_t)length;
            continue;
        }

        if (*here == '<')
            length = markup_length(repair, here, left);
        else if (*here == '&')
            length = reference_length(here, left);
        else if (*here >= 0x80 && repair->utf8)
            length = utf8_length(here, left);
        else
            length = 1;

        if (length == LOOK_MORE && !final)
            break;
        if (length > 0) {
            count_lines(repair, here, (size_t)length);
            rc = sp_buf_append(out, here, (size_t)length);
            pos += (size_t)length;
            continue;
        }

        /* Not markup, not UTF-8: mend it, and mark where. */
        if (repair->n_marks == repair->marks_cap) {
            size_t cap = repair->marks_cap ? repair->marks_cap * 2 : 64;
            size_t *grown = sp_realloc(repair->marks, cap * sizeof(*grown));

            if (grown == NULL) {
                rc = SP_ENOMEM;
                break;
            }
            repair->marks = grown;
            repair->marks_cap = cap;
        }
        repair->marks[repair->n_marks++] =
            out->len * 2 + (*here >= 0x80 ? 1 : 0);
        if (*here >= 0x80) {
            repair->byte_repairs++;
            if (repair->bytes_line == 0)
                repair->bytes_line = repair->line;
            rc = sp_buf_append(out, replacement, 3);
        } else {
            repair->markup_repairs++;
            if (repair->markup_line == 0)
                repair->markup_line = repair->line;
            rc = sp_buf_append_str(out, *here == '<' ? "&lt;" : "&amp;");
        }
        pos++;
    }
    *used = pos;
    return rc;
}

int
dmarc__repair_feed(dmarc_repair *repair, const void *data, size_t len,
                   bool final, sp_buf *out)
{
    size_t used = 0;
    int rc;

    repair->n_marks = 0;
    if (sp_buf_append(&repair->held, data, len) != SP_OK)
        return SP_ENOMEM;

    if (!repair->prolog_read) {
        if (!read_prolog(repair, final))
            return SP_OK;
        repair->prolog_read = true;
    }
    if (repair->off) {
        rc = sp_buf_append(out, repair->held.data, repair->held.len);
        sp_buf_reset(&repair->held);
        return rc;
    }

    rc = repair_scan(repair, final, out, &used);
    if (rc != SP_OK)
        return rc;
    if (used > 0) {
        memmove(repair->held.data, repair->held.data + used,
                repair->held.len - used);
        repair->held.len -= used;
        repair->held.data[repair->held.len] = '\0';
    }
    return SP_OK;
}

void
dmarc__repair_unread(dmarc_repair *repair, size_t stop)
{
    for (size_t i = 0; i < repair->n_marks; i++) {
        if (repair->marks[i] / 2 < stop)
            continue;
        if (repair->marks[i] % 2 == 1)
            repair->byte_repairs--;
        else
            repair->markup_repairs--;
    }
    repair->n_marks = 0;
}
