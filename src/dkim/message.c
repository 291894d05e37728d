/*
 * message.c: splitting a message that arrives in chunks into its header
 * section, kept whole and indexed, and its body, passed through.
 *
 * Owns dkim__message_*.  Both the signer and the verifier need every field
 * before the first body byte can be judged (which fields are signed, which
 * canonicalizations the body needs), so the header is buffered, up to
 * msg->limit octets of fields; the body never is.
 */
#include "dkim_int.h"

#include <string.h>

void
dkim__message_reset(dkim__message *msg)
{
    sp_buf_reset(&msg->header);
    msg->scanned = 0;
    msg->in_body = false;
    msg->index.count = 0;
}

static int
message_too_large(const dkim__message *msg, sp_error *err)
{
    return sp_err_set(err, SP_ELIMIT, "header section larger than %zu octets",
                      msg->limit);
}

/* The header is complete: index its fields. */
static int
message_index(dkim__message *msg, sp_error *err)
{
    msg->in_body = true;
    if (sp_mail_header_index(&msg->index, msg->header.data, msg->header.len) !=
        SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory indexing fields");
    return SP_OK;
}

int
dkim__message_feed(dkim__message *msg, const char *data, size_t len,
                   bool *header_done, const char **body, size_t *body_len,
                   sp_error *err)
{
    size_t old_len = msg->header.len;
    size_t take, end;

    *header_done = false;
    if (msg->in_body) {
        *body = data;
        *body_len = len;
        return SP_OK;
    }
    *body = NULL;
    *body_len = 0;

    /*
     * Only bytes that could still be header are collected: fields up to
     * the limit, the empty line, and two more octets to see it whole.
     */
    take = msg->limit + 4 - old_len;
    take = len < take ? len : take;
    if (sp_buf_append(&msg->header, data, take) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory reading a header");

    end = sp_mail_header_end(msg->header.data, msg->header.len, &msg->scanned);
    if ((end == 0 && msg->header.len > msg->limit + 2) || end > msg->limit + 2)
        return message_too_large(msg, err);
    if (end == 0)
        return SP_OK;

    /* The end lies in this chunk: the rest of the chunk is body. */
    *body = data + (end - old_len);
    *body_len = len - (end - old_len);
    msg->header.len = end;
    msg->header.data[end] = '\0';
    *header_done = true;
    return message_index(msg, err);
}

int
dkim__message_end(dkim__message *msg, bool *header_done, sp_error *err)
{
    *header_done = false;
    if (msg->in_body)
        return SP_OK;
    if (msg->header.len > msg->limit)
        return message_too_large(msg, err);
    *header_done = true;
    if (msg->header.data == NULL && sp_buf_append(&msg->header, "", 0) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory reading a header");
    return message_index(msg, err);
}

void
dkim__message_free(dkim__message *msg)
{
    sp_buf_free(&msg->header);
    sp_mail_header_free(&msg->index);
}
