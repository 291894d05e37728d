/*
 * compose.c: a message built from its parts (what the HTTP API makes for
 * each recipient), with GMime.
 *
 * Owns sp_mail_compose, sp_mail_compose_init and sp_mail_type_valid.  The shape
 * follows the content:
 *
 *   text only, html only      a single text part
 *   text and html             multipart/alternative (text first)
 *   inline images             multipart/related around the html, each
 *                             image with its Content-ID (the image's name,
 *                             as <img src="cid:NAME"> names it)
 *   attachments               multipart/mixed around all of the above
 *
 * Text is UTF-8; each part is 7bit when it can be, else quoted-printable
 * or base64, whichever GMime finds shorter for the content, so no line
 * passes 998 octets.  Names and subjects outside ASCII become RFC 2047
 * encoded words.  The message is written with CRLF line ends only, the
 * last line included.
 */
#include "mail.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_once_t compose_once = PTHREAD_ONCE_INIT;

static void
compose_start_gmime(void)
{
    g_mime_init();
}

void
sp_mail_compose_init(void)
{
    pthread_once(&compose_once, compose_start_gmime);
}

/* A leaf part of type/subtype holding data[0..len), encoded for 7bit. */
static GMimePart *
compose_leaf(const char *type, const char *subtype, const void *data,
             size_t len, bool text)
{
    GMimePart *part = g_mime_part_new_with_type(type, subtype);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeDataWrapper *content = g_mime_data_wrapper_new_with_stream(
        stream, GMIME_CONTENT_ENCODING_DEFAULT);

    g_mime_part_set_content(part, content);
    g_object_unref(content);
    g_object_unref(stream);
    if (text)
        g_mime_object_set_content_type_parameter((GMimeObject *)part, "charset",
                                                 "utf-8");
    g_mime_part_set_content_encoding(
        part, text ? g_mime_part_get_best_content_encoding(
                         part, GMIME_ENCODING_CONSTRAINT_7BIT)
                   : GMIME_CONTENT_ENCODING_BASE64);
    return part;
}

/* A character of a MIME token (RFC 2045 5.1). */
static bool
compose_token_char(unsigned char c)
{
    return c > 32 && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

bool
sp_mail_type_valid(const char *mime)
{
    const char *slash = strchr(mime, '/');
    size_t len = strlen(mime);

    if (slash == NULL || slash == mime || slash[1] == '\0' || len > 127)
        return false;
    for (const char *at = mime; *at != '\0'; at++)
        if (at != slash && !compose_token_char((unsigned char)*at))
            return false;
    return true;
}

/* "image/png" split into its type and subtype; false if not that form. */
static bool
compose_split_type(const char *mime, char *type, char *subtype, size_t size)
{
    const char *slash = strchr(mime, '/');
    size_t len = slash ? (size_t)(slash - mime) : 0;

    if (!sp_mail_type_valid(mime) || len >= size || strlen(slash + 1) >= size)
        return false;
    memcpy(type, mime, len);
    type[len] = '\0';
    snprintf(subtype, size, "%s", slash + 1);
    return true;
}

/* A file part: an attachment, or an inline image with its Content-ID. */
static GMimePart *
compose_file(const sp_mail_file *file, bool inline_image)
{
    char type[128], subtype[128];
    GMimePart *part;

    if (!compose_split_type(file->type, type, subtype, sizeof(type)))
        return NULL;
    part = compose_leaf(type, subtype, file->data, file->len, false);
    g_mime_part_set_filename(part, file->name);
    if (inline_image) {
        g_mime_object_set_disposition((GMimeObject *)part,
                                      GMIME_DISPOSITION_INLINE);
        g_mime_part_set_content_id(part, file->name);
    } else
        g_mime_object_set_disposition((GMimeObject *)part,
                                      GMIME_DISPOSITION_ATTACHMENT);
    return part;
}

/* Add child to multipart and drop the caller's reference. */
static void
compose_add(GMimeMultipart *multipart, GMimeObject *child)
{
    g_mime_multipart_add(multipart, child);
    g_object_unref(child);
}

/* The body: text, html, images and attachments in their nesting. */
static GMimeObject *
compose_body(const sp_mail_content *content, char *error, size_t error_size)
{
    GMimeObject *html = NULL, *body = NULL;

    if (content->html != NULL)
        html = (GMimeObject *)compose_leaf("text", "html", content->html,
                                           content->html_len, true);
    if (html != NULL && content->image_count > 0) {
        GMimeMultipart *related = g_mime_multipart_new_with_subtype("related");

        compose_add(related, html);
        for (size_t i = 0; i < content->image_count; i++) {
            GMimePart *image = compose_file(&content->images[i], true);

            if (image == NULL) {
                snprintf(error, error_size,
                         "content.inline_images[%zu].type: a MIME type such "
                         "as image/png",
                         i);
                g_object_unref(related);
                return NULL;
            }
            compose_add(related, (GMimeObject *)image);
        }
        html = (GMimeObject *)related;
    }
    if (content->text != NULL) {
        GMimeObject *text = (GMimeObject *)compose_leaf(
            "text", "plain", content->text, content->text_len, true);

        if (html != NULL) {
            GMimeMultipart *alternative =
                g_mime_multipart_new_with_subtype("alternative");

            compose_add(alternative, text);
            compose_add(alternative, html);
            body = (GMimeObject *)alternative;
        } else
            body = text;
    } else
        body = html;

    if (content->attachment_count > 0) {
        GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");

        compose_add(mixed, body);
        for (size_t i = 0; i < content->attachment_count; i++) {
            GMimePart *file = compose_file(&content->attachments[i], false);

            if (file == NULL) {
                snprintf(error, error_size,
                         "%s[%zu].type: a MIME type such as "
                         "application/pdf",
                         i < content->shared_attachments
                             ? "content.attachments"
                             : "recipients[].attachments",
                         i < content->shared_attachments
                             ? i
                             : i - content->shared_attachments);
                g_object_unref(mixed);
                return NULL;
            }
            compose_add(mixed, (GMimeObject *)file);
        }
        body = (GMimeObject *)mixed;
    }
    return body;
}

/* Add an address to a list of the message (From, To, Reply-To). */
static void
compose_address(GMimeMessage *message, GMimeAddressType type, const char *name,
                const char *email)
{
    g_mime_message_add_mailbox(message, type, name ? name : "", email);
}

int
sp_mail_compose(const sp_mail_content *content, sp_buf *out, char *error,
                size_t error_size)
{
    GMimeMessage *message;
    GMimeObject *body;
    GMimeStream *stream;
    GMimeFormatOptions *format;
    GByteArray *bytes;
    GDateTime *now;
    int rc = SP_OK;

    sp_mail_compose_init();
    error[0] = '\0';
    body = compose_body(content, error, error_size);
    if (body == NULL)
        return error[0] != '\0' ? SP_EINVAL : SP_ENOMEM;

    message = g_mime_message_new(TRUE);
    compose_address(message, GMIME_ADDRESS_TYPE_FROM, content->from_name,
                    content->from_email);
    if (content->header_to != NULL)
        g_mime_object_set_header((GMimeObject *)message, "To",
                                 content->header_to, "utf-8");
    else
        compose_address(message, GMIME_ADDRESS_TYPE_TO, content->to_name,
                        content->to_email);
    if (content->reply_to != NULL)
        g_mime_object_set_header((GMimeObject *)message, "Reply-To",
                                 content->reply_to, "utf-8");
    g_mime_message_set_subject(message, content->subject, "utf-8");
    now = g_date_time_new_now_utc();
    g_mime_message_set_date(message, now);
    g_date_time_unref(now);
    g_mime_message_set_message_id(message, content->message_id);
    for (size_t i = 0; i < content->header_count; i++)
        g_mime_object_append_header((GMimeObject *)message,
                                    content->headers[i].name,
                                    content->headers[i].value, "utf-8");
    g_mime_message_set_mime_part(message, body);
    g_object_unref(body);

    /* Written out with CRLF only. */
    format = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(format, GMIME_NEWLINE_FORMAT_DOS);
    stream = g_mime_stream_mem_new();
    if (g_mime_object_write_to_stream((GMimeObject *)message, format, stream) <
        0)
        rc = SP_ENOMEM;
    bytes = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)stream);
    if (rc == SP_OK)
        rc = sp_buf_append(out, bytes->data, bytes->len);
    if (rc == SP_OK && (bytes->len < 2 || bytes->data[bytes->len - 1] != '\n'))
        rc = sp_buf_append(out, "\r\n", 2); /* the last line ends too */
    g_object_unref(stream);
    g_mime_format_options_free(format);
    g_object_unref(message);
    if (rc != SP_OK)
        snprintf(error, error_size, "out of memory");
    return rc;
}
