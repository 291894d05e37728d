/*
 * mail.h: the public face of the mail module, sealpost's representation of
 * messages as exact bytes.
 *
 * What it owns today: the line-ending normalizer (eol.c), which turns bare
 * CR and bare LF into CRLF for callers that accept careless input, and the
 * header index (header.c), which finds the fields of a header section
 * without copying or altering a byte, so signatures computed over those
 * bytes stay valid, the syntax of domain names (domain.c), and messages
 * composed from parts through GMime (compose.c).
 *
 * The module does no I/O and never logs; functions return SP_* codes.
 */
#ifndef SP_MAIL_H
#define SP_MAIL_H

#include "base/base.h"

/*
 * Line-ending normalizer.  CRLF passes unchanged; a CR not followed by LF
 * and an LF not preceded by CR each become CRLF.  Input may be cut into
 * chunks anywhere: the output does not depend on where.
 */
typedef struct sp_mail_eol {
    bool cr_pending;  /* the last byte fed was a CR, not yet written */
    uint64_t rewrote; /* line endings changed so far */
} sp_mail_eol;

void sp_mail_eol_init(sp_mail_eol *eol);

/*
 * Append the normalized form of data to out.  Returns SP_OK or SP_ENOMEM;
 * after SP_ENOMEM the state and out are unusable for this message.
 */
int sp_mail_eol_feed(sp_mail_eol *eol, const void *data, size_t len,
                     sp_buf *out);

/* Flush a CR held back at the end of input. */
int sp_mail_eol_finish(sp_mail_eol *eol, sp_buf *out);

/*
 * Find the end of the header section in the first len bytes of a message.
 * scanned is where a previous call stopped looking (0 at first); it is
 * updated so that repeated calls on a growing buffer cost O(total).
 * Returns the offset where the body starts (just after the empty line), or
 * 0 when the empty line is not there yet.
 */
size_t sp_mail_header_end(const char *data, size_t len, size_t *scanned);

/* One field of a header section, located by offsets into the section. */
typedef struct sp_mail_field {
    size_t offset;      /* first byte of the field name */
    size_t length;      /* whole field, folded lines and final CRLF */
    size_t name_length; /* name without whitespace before the colon;
                           0 for a line that has no colon */
    size_t colon;       /* offset of the colon from the field start */
    uint32_t name_hash; /* case-insensitive hash of the name */
} sp_mail_field;

/* The fields of one header section, top to bottom. */
typedef struct sp_mail_header {
    sp_mail_field *fields; /* owned array */
    size_t count;          /* fields in use */
    size_t capacity;       /* fields allocated */
} sp_mail_header;

#define SP_MAIL_HEADER_INIT                                                    \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

/*
 * Index the header section in block[0..len).  len ends where the body
 * starts, or at the end of a message that has no body.  Fields end at CRLF
 * followed by something other than SP or TAB; a bare CR or LF is field
 * content.  A line without a colon is kept as a field with name_length 0,
 * so callers can refuse it.  Replaces any previous index in header.
 * Returns SP_OK or SP_ENOMEM (header then holds no fields).
 */
int sp_mail_header_index(sp_mail_header *header, const char *block, size_t len);

/* Case-insensitive hash of a field name, as stored in name_hash. */
uint32_t sp_mail_name_hash(const char *name, size_t len);

/* Whether field has the given name, compared without regard to case. */
bool sp_mail_field_is(const sp_mail_field *field, const char *block,
                      const char *name, size_t name_len);

/* Number of fields named name. */
size_t sp_mail_header_count(const sp_mail_header *header, const char *block,
                            const char *name);

void sp_mail_header_free(sp_mail_header *header);

/*
 * Options of sp_mail_domain_valid: allow '_' in labels (DKIM selectors,
 * _dmarc names); require two labels or more.
 */
#define SP_MAIL_DOMAIN_UNDERSCORE 0x1u
#define SP_MAIL_DOMAIN_DOTTED     0x2u

/*
 * Whether text[0..len) is a domain name: labels of letters, digits and
 * '-' (not first or last), 1 to 63 octets each, 253 in all, separated by
 * single dots, no final dot.
 */
bool sp_mail_domain_valid(const char *text, size_t len, unsigned flags);

/*
 * The domain of the mailbox in a From field's value (the text after the
 * colon, folding included), lowercased into out (size octets): for
 * "Bank <Statements@Example.COM>" it is "example.com".  Comments and
 * quoted strings are skipped.  SP_EINVAL when there is no such domain,
 * it is not a valid name (address literals included), it does not fit,
 * or the value lists more than one mailbox.
 */
int sp_mail_from_domain(const char *value, size_t len, char *out, size_t size);

/* ------------------------------------------------------------------------
 * compose.c: messages built from parts, with GMime.
 */

/* A file of a message: an attachment or an inline image. */
typedef struct sp_mail_file {
    const char *name;
    const char *type; /* "application/pdf" */
    const unsigned char *data;
    size_t len;
} sp_mail_file;

/* A header field a sender adds. */
typedef struct sp_mail_added_field {
    const char *name, *value;
} sp_mail_added_field;

/* What a message composed from parts is made of (compose.c). */
typedef struct sp_mail_content {
    const char *from_email, *from_name; /* name may be NULL */
    const char *to_email, *to_name;     /* name may be NULL */
    const char *header_to;              /* the To field instead, or NULL */
    const char *reply_to;               /* or NULL */
    const char *subject;
    const char *message_id; /* without brackets */
    const char *text;       /* NULL for none */
    size_t text_len;
    const char *html; /* NULL for none; one of the two is given */
    size_t html_len;
    const sp_mail_added_field *headers;
    size_t header_count;
    const sp_mail_file *images; /* inline, related to the html */
    size_t image_count;
    const sp_mail_file *attachments;
    size_t attachment_count;
    size_t shared_attachments; /* the first ones are the content's, the
                                  rest the recipient's own (for errors) */
} sp_mail_content;

/*
 * Whether mime is a MIME type as a part's Content-Type names it:
 * type/subtype, both tokens (RFC 2045 5.1), no parameters.
 */
bool sp_mail_type_valid(const char *mime);

/* Start GMime (once per process; any thread). */
void sp_mail_compose_init(void);

/*
 * Build content's message into out (appended).  SP_EINVAL with error
 * naming the field (a file type that is not type/subtype), SP_ENOMEM.
 */
int sp_mail_compose(const sp_mail_content *content, sp_buf *out, char *error,
                    size_t error_size);

#endif /* SP_MAIL_H */
