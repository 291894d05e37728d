/*
 * dmarc_int.h: what the files of the dmarc module share and no one else
 * uses: the repair filter that report.c runs in front of the XML parser
 * on a second reading of a report the first reading could not take.
 */
#ifndef SP_DMARC_INT_H
#define SP_DMARC_INT_H

#include "base/base.h"

/*
 * The repair filter.  It streams: bytes in, mended bytes out, with a
 * short tail held back where a decision needs more input (a '<' whose
 * tag is not complete yet, a UTF-8 sequence cut by the chunk's end).
 *
 * It mends, where the text is UTF-8 (no other encoding declared):
 * - bytes that do not form UTF-8, each replaced by U+FFFD;
 * - a '<' that does not open well-formed markup (a tag, an end tag, a
 *   comment, a CDATA section, a processing instruction), written as
 *   "&lt;";
 * - a '&' that does not open one of XML's five predefined entities or a
 *   character reference, written as "&amp;".
 * Anything else passes as it came, so the parser still refuses what the
 * filter cannot make unambiguous (a DOCTYPE, a mismatched end tag).
 */
typedef struct dmarc_repair {
    sp_buf held;               /* bytes waiting for more input */
    int state;                 /* where the markup scan stands */
    bool prolog_read;          /* the XML declaration has been looked at */
    bool utf8;                 /* the text is UTF-8: bytes may be mended */
    bool off;                  /* UTF-16 or similar: pass everything through */
    unsigned long line;        /* of the input, from 1 */
    unsigned long markup_line; /* first markup repair, 0 if none */
    unsigned long bytes_line;  /* first byte repair, 0 if none */
    size_t markup_repairs;
    size_t byte_repairs;
    /* Where the repairs of the last call sit in its output: offset * 2,
     * plus 1 for a byte repair, so that a parser which stops reading
     * can take back the ones it never read. */
    size_t *marks;
    size_t n_marks, marks_cap;
} dmarc_repair;

void dmarc__repair_init(dmarc_repair *repair);
void dmarc__repair_clear(dmarc_repair *repair);

/*
 * Take len bytes of the document and append what can be decided to out,
 * which must be empty (marks are offsets into it); with final set,
 * everything left is decided (an open '<' at the end is escaped).
 * SP_ENOMEM only.
 */
int dmarc__repair_feed(dmarc_repair *repair, const void *data, size_t len,
                       bool final, sp_buf *out);

/*
 * The reader stopped at offset stop of the last call's output: forget the
 * repairs from there on.
 */
void dmarc__repair_unread(dmarc_repair *repair, size_t stop);

#endif /* SP_DMARC_INT_H */
