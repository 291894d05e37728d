/*
 * api_transmissions.c: POST /api/v1/transmissions, messages built from a
 * content and a list of recipients, in the shape of SparkPost's API.
 *
 * Owns http__transmissions_create.  The request is read whole and checked
 * before anything is sent: a field of the wrong type or missing, an
 * invalid address, base64 that does not decode, a template that does not
 * parse, each is a 422 naming the field, and nothing is queued.  Then
 * each recipient's message is rendered (render.c) with the transmission's
 * substitution_data under the recipient's own, built (compose.c) and
 * handed to the daemon's injector, which signs and stores it as it would
 * a message submitted over SMTP.  At most a window of messages is in
 * flight at once, so a large transmission never holds all its messages
 * in memory.  The answer comes once every message is durable (or
 * refused):
 *
 *   {"results": {"id", "total_accepted_recipients",
 *                "total_rejected_recipients"}, "warnings": [...]}
 *
 * warnings, when there are any, name the substitution variables that had
 * no value.  doc/transmissions.md documents the fields.
 */
#include "http_int.h"

#include "mail/mail.h"

#include "smtp/smtp.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TX_MAX_RECIPIENTS 100000
#define TX_MAX_FILES      100
#define TX_MAX_HEADERS    50
#define TX_MAX_CAMPAIGN   64
#define TX_MAX_METADATA   1000 /* octets as compact JSON */
#define TX_MAX_FIELD      998  /* octets of a rendered header field value */
#define TX_EVENT_SUBJECT  255  /* octets of a subject an event keeps */

/* SparkPost's error codes, by what went wrong. */
#define TX_CODE_FORMAT  "1300" /* invalid data format or type */
#define TX_CODE_MISSING "1400" /* a required field is missing */

/* Files decoded from base64: what compose takes, and their bytes. */
struct tx_files {
    sp_mail_file files[TX_MAX_FILES];
    sp_buf bytes[TX_MAX_FILES];
    size_t count;
};

/* A transmission's request, checked; strings borrowed from root. */
struct tx {
    json_t *root;
    json_t *template_content; /* a stored template's content, or NULL */
    json_t *recipients;
    json_t *substitution; /* an object, or NULL */
    json_t *metadata;     /* an object, or NULL */
    const char *campaign; /* or NULL */
    const char *return_path;
    int64_t not_before_ms; /* options.start_time; 0 for at once */
    const char *from_email;
    const char *from_name; /* template, or NULL */
    const char *subject;   /* template */
    const char *reply_to;  /* template, or NULL */
    const char *text;      /* template, or NULL */
    const char *html;      /* template, or NULL */
    const char *rfc822;    /* a whole message (template), or NULL */
    json_t *headers;       /* an object of templates, or NULL */
    struct tx_files attachments;
    struct tx_files images;
    json_t *unknown; /* substitution names with no value */
};

/* One recipient, as the request gives it. */
struct tx_recipient {
    const char *email;
    const char *name;      /* or NULL */
    const char *header_to; /* or NULL */
    json_t *substitution;  /* an object, or NULL */
    json_t *metadata;      /* an object, or NULL */
    json_t *tags;          /* an array, or NULL */
    json_t *attachments;   /* an array, or NULL (sealpost's extension) */
};

/* A 422 naming field: "what" is the message, why the description. */
static bool
tx_invalid(http__reply *reply, const char *field, const char *why)
{
    char description[300];

    snprintf(description, sizeof(description), "%s: %s", field, why);
    http__fail(reply, 422, TX_CODE_FORMAT, "invalid data format/type",
               description);
    return false;
}

static bool
tx_missing(http__reply *reply, const char *field)
{
    char description[200];

    snprintf(description, sizeof(description), "%s is required", field);
    http__fail(reply, 422, TX_CODE_MISSING, "required field is missing",
               description);
    return false;
}

/* An optional string member: *out stays NULL when absent. */
static bool
tx_string(json_t *object, const char *key, const char *field, const char **out,
          http__reply *reply)
{
    json_t *value = json_object_get(object, key);

    *out = NULL;
    if (value == NULL || json_is_null(value))
        return true;
    if (!json_is_string(value))
        return tx_invalid(reply, field, "a string");
    if (strlen(json_string_value(value)) != json_string_length(value))
        return tx_invalid(reply, field, "a string without NUL characters");
    *out = json_string_value(value);
    return true;
}

/* An optional object member: *out stays NULL when absent. */
static bool
tx_object(json_t *object, const char *key, const char *field, json_t **out,
          http__reply *reply)
{
    json_t *value = json_object_get(object, key);

    *out = NULL;
    if (value == NULL || json_is_null(value))
        return true;
    if (!json_is_object(value))
        return tx_invalid(reply, field, "an object");
    *out = value;
    return true;
}

/* Metadata: an object of at most TX_MAX_METADATA octets. */
static bool
tx_metadata(json_t *object, const char *field, json_t **out, http__reply *reply)
{
    char *text;
    size_t len;

    if (!tx_object(object, "metadata", field, out, reply))
        return false;
    if (*out == NULL)
        return true;
    text = json_dumps(*out, JSON_COMPACT);
    len = text ? strlen(text) : 0;
    free(text);
    if (len > TX_MAX_METADATA)
        return tx_invalid(reply, field, "an object of up to 1000 octets");
    return true;
}

static void
tx_files_free(struct tx_files *set)
{
    for (size_t i = 0; i < set->count; i++)
        sp_buf_free(&set->bytes[i]);
    set->count = 0;
}

/*
 * Decode an array of {name, type, data (base64)} into set, appended;
 * field names the array for errors.
 */
static bool
tx_files(json_t *array, const char *field, struct tx_files *set,
         http__reply *reply)
{
    char where[96];
    size_t index;
    json_t *file;

    if (array == NULL || json_is_null(array))
        return true;
    if (!json_is_array(array))
        return tx_invalid(reply, field, "an array");
    json_array_foreach(array, index, file) {
        const char *name, *type, *data;
        sp_buf *bytes;
        sp_error err;

        snprintf(where, sizeof(where), "%s[%zu]", field, index);
        if (set->count == TX_MAX_FILES)
            return tx_invalid(reply, field, "at most 100 files");
        if (!json_is_object(file))
            return tx_invalid(reply, where, "an object {name, type, data}");
        snprintf(where, sizeof(where), "%s[%zu].name", field, index);
        if (!tx_string(file, "name", where, &name, reply))
            return false;
        if (name == NULL || name[0] == '\0' || strpbrk(name, "\r\n") != NULL)
            return tx_invalid(reply, where, "a file name, on one line");
        snprintf(where, sizeof(where), "%s[%zu].type", field, index);
        if (!tx_string(file, "type", where, &type, reply))
            return false;
        if (type == NULL || !sp_mail_type_valid(type))
            return tx_invalid(reply, where,
                              "a MIME type such as application/pdf, "
                              "without parameters");
        snprintf(where, sizeof(where), "%s[%zu].data", field, index);
        if (!tx_string(file, "data", where, &data, reply))
            return false;
        if (data == NULL)
            return tx_missing(reply, where);

        bytes = &set->bytes[set->count];
        *bytes = (sp_buf)SP_BUF_INIT;
        if (sp_b64_decode(bytes, data, strlen(data), &err) != SP_OK) {
            sp_buf_free(bytes);
            return tx_invalid(reply, where, "base64");
        }
        set->files[set->count++] = (sp_mail_file){
            .name = name,
            .type = type,
            .data = (const unsigned char *)(bytes->data ? bytes->data : ""),
            .len = bytes->len,
        };
    }
    return true;
}

/* The sender: content.from as "a@b" or {email, name}. */
static bool
tx_from(json_t *content, struct tx *tx, http__reply *reply)
{
    json_t *from = json_object_get(content, "from");

    tx->from_name = NULL;
    if (from == NULL || json_is_null(from))
        return tx_missing(reply, "content.from");
    if (json_is_string(from))
        tx->from_email = json_string_value(from);
    else if (json_is_object(from)) {
        if (!tx_string(from, "email", "content.from.email", &tx->from_email,
                       reply) ||
            !tx_string(from, "name", "content.from.name", &tx->from_name,
                       reply))
            return false;
        if (tx->from_email == NULL)
            return tx_missing(reply, "content.from.email");
    } else
        return tx_invalid(reply, "content.from",
                          "an address, or {email, name}");
    if (!sp_smtp_mailbox_valid(tx->from_email))
        return tx_invalid(reply, "content.from", "a valid email address");
    if (strstr(tx->from_email, "@[") != NULL)
        return tx_invalid(reply, "content.from",
                          "an address at a domain name: an address literal "
                          "cannot be signed for");
    if (tx->from_name != NULL && strpbrk(tx->from_name, "\r\n") != NULL)
        return tx_invalid(reply, "content.from.name", "on one line");
    return true;
}

/* Check that a template parses (with no data: only its syntax). */
static bool
tx_template(const char *text, const char *field, http__reply *reply)
{
    json_t *empty, *unknown;
    sp_buf out = SP_BUF_INIT;
    char error[160];
    int rc;

    if (text == NULL)
        return true;
    empty = json_object();
    unknown = json_array();
    rc = http__render(text, strlen(text), empty, false, 0, unknown, &out, error,
                      sizeof(error));
    sp_buf_free(&out);
    json_decref(empty);
    json_decref(unknown);
    if (rc == SP_EINVAL)
        return tx_invalid(reply, field, error);
    return true;
}

static bool tx_content(const http__call *call, json_t *content, struct tx *tx,
                       http__reply *reply);

/* content.template_id: the stored template's content instead. */
static bool
tx_stored(const http__call *call, const char *id, struct tx *tx,
          http__reply *reply)
{
    sp_store_template stored;
    sp_error err;
    int rc = sp_store_template_get(call->store, id, &stored, &err);

    if (rc == SP_ENOTFOUND)
        return tx_invalid(reply, "content.template_id", "no such template");
    if (rc != SP_OK) {
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the template cannot be read just now; try again");
        return false;
    }
    tx->template_content = json_loads(stored.content, 0, NULL);
    sp_store_template_clear(&stored);
    if (!json_is_object(tx->template_content))
        return tx_invalid(reply, "content.template_id",
                          "the stored template is not an object");
    return tx_content(call, tx->template_content, tx, reply);
}

/* content: the inline parts, a whole message, or a stored template. */
static bool
tx_content(const http__call *call, json_t *content, struct tx *tx,
           http__reply *reply)
{
    const char *template_id = NULL;
    const char *key;
    json_t *value;

    if (content == NULL)
        return tx_missing(reply, "content");
    if (!json_is_object(content))
        return tx_invalid(reply, "content", "an object");
    if (!tx_string(content, "template_id", "content.template_id", &template_id,
                   reply))
        return false;
    if (template_id != NULL && tx->template_content != NULL)
        return tx_invalid(reply, "content.template_id",
                          "a template's content cannot name a template");
    if (template_id != NULL && json_object_size(content) > 1)
        return tx_invalid(reply, "content.template_id",
                          "with a template, content holds nothing else");
    if (template_id != NULL)
        return tx_stored(call, template_id, tx, reply);
    if (!tx_string(content, "email_rfc822", "content.email_rfc822", &tx->rfc822,
                   reply))
        return false;
    if (tx->rfc822 != NULL)
        return tx_template(tx->rfc822, "content.email_rfc822", reply);

    if (!tx_from(content, tx, reply) ||
        !tx_string(content, "subject", "content.subject", &tx->subject,
                   reply) ||
        !tx_string(content, "reply_to", "content.reply_to", &tx->reply_to,
                   reply) ||
        !tx_string(content, "text", "content.text", &tx->text, reply) ||
        !tx_string(content, "html", "content.html", &tx->html, reply) ||
        !tx_object(content, "headers", "content.headers", &tx->headers, reply))
        return false;
    if (tx->subject == NULL)
        return tx_missing(reply, "content.subject");
    if (tx->text == NULL && tx->html == NULL)
        return tx_missing(reply, "content.text or content.html");
    if (json_object_size(tx->headers) > TX_MAX_HEADERS)
        return tx_invalid(reply, "content.headers", "at most 50 fields");
    json_object_foreach(tx->headers, key, value) {
        static const char *const reserved[] = {
            "from",           "to",           "subject",
            "date",           "message-id",   "reply-to",
            "mime-version",   "content-type", "content-transfer-encoding",
            "dkim-signature", "received"};
        char field[120];

        snprintf(field, sizeof(field), "content.headers.%.80s", key);
        if (!json_is_string(value) ||
            strpbrk(json_string_value(value), "\r\n") != NULL)
            return tx_invalid(reply, field, "a string on one line");
        if (key[0] == '\0' || strpbrk(key, ": \t\r\n") != NULL)
            return tx_invalid(reply, field, "a field name");
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
            if (strcasecmp(key, reserved[i]) == 0)
                return tx_invalid(reply, field,
                                  "set by its own member, or by sealpost");
        if (!tx_template(json_string_value(value), field, reply))
            return false;
    }
    if (tx->html == NULL &&
        json_array_size(json_object_get(content, "inline_images")) > 0)
        return tx_invalid(reply, "content.inline_images",
                          "images need content.html to show them");
    return tx_files(json_object_get(content, "attachments"),
                    "content.attachments", &tx->attachments, reply) &&
           tx_files(json_object_get(content, "inline_images"),
                    "content.inline_images", &tx->images, reply) &&
           tx_template(tx->subject, "content.subject", reply) &&
           tx_template(tx->text, "content.text", reply) &&
           tx_template(tx->html, "content.html", reply) &&
           tx_template(tx->reply_to, "content.reply_to", reply) &&
           tx_template(tx->from_name, "content.from.name", reply);
}

/* One recipient of the array: "a@b", {address: "a@b" or {...}, ...}. */
static bool
tx_recipient(json_t *item, size_t index, struct tx_recipient *rcpt,
             http__reply *reply)
{
    json_t *address =
        json_is_object(item) ? json_object_get(item, "address") : item;
    char field[96];

    memset(rcpt, 0, sizeof(*rcpt));
    snprintf(field, sizeof(field), "recipients[%zu].address", index);
    if (json_is_string(address))
        rcpt->email = json_string_value(address);
    else if (json_is_object(address)) {
        char email[112], name[112], header_to[112];

        snprintf(email, sizeof(email), "%s.email", field);
        snprintf(name, sizeof(name), "%s.name", field);
        snprintf(header_to, sizeof(header_to), "%s.header_to", field);
        if (!tx_string(address, "email", email, &rcpt->email, reply) ||
            !tx_string(address, "name", name, &rcpt->name, reply) ||
            !tx_string(address, "header_to", header_to, &rcpt->header_to,
                       reply))
            return false;
        if (rcpt->email == NULL)
            return tx_missing(reply, email);
        if (rcpt->header_to != NULL && strpbrk(rcpt->header_to, "\r\n") != NULL)
            return tx_invalid(reply, header_to, "a field value on one line");
        if (rcpt->name != NULL && strpbrk(rcpt->name, "\r\n") != NULL)
            return tx_invalid(reply, name, "a name on one line");
        snprintf(field, sizeof(field), "recipients[%zu].address.email", index);
    } else if (address == NULL)
        return tx_missing(reply, field);
    else
        return tx_invalid(reply, field, "an address, or {email, name}");
    if (!sp_smtp_mailbox_valid(rcpt->email))
        return tx_invalid(reply, field, "a valid email address");
    if (!json_is_object(item))
        return true;

    snprintf(field, sizeof(field), "recipients[%zu].substitution_data", index);
    if (!tx_object(item, "substitution_data", field, &rcpt->substitution,
                   reply))
        return false;
    snprintf(field, sizeof(field), "recipients[%zu].metadata", index);
    if (!tx_metadata(item, field, &rcpt->metadata, reply))
        return false;
    rcpt->tags = json_object_get(item, "tags");
    snprintf(field, sizeof(field), "recipients[%zu].tags", index);
    if (rcpt->tags != NULL && !json_is_array(rcpt->tags))
        return tx_invalid(reply, field, "an array of strings");
    rcpt->attachments = json_object_get(item, "attachments");
    if (rcpt->attachments != NULL && !json_is_array(rcpt->attachments)) {
        snprintf(field, sizeof(field), "recipients[%zu].attachments", index);
        return tx_invalid(reply, field, "an array");
    }
    return true;
}

/*
 * Whether the files of set, with the content's, fit in a message of
 * smtp_max_message once base64 has grown them by a third; a 422 naming
 * field if not.
 */
static bool
tx_fits(const http__call *call, const struct tx *tx, const struct tx_files *set,
        const char *field, http__reply *reply)
{
    uint64_t total = 0, limit = (uint64_t)http__config(call)->smtp_max_message;
    const struct tx_files *sets[3] = {&tx->attachments, &tx->images, set};
    size_t count = set == &tx->attachments || set == &tx->images ? 2 : 3;
    char why[120];

    for (size_t s = 0; s < count; s++)
        for (size_t i = 0; i < sets[s]->count; i++)
            total += sets[s]->files[i].len;
    if (total / 3 * 4 <= limit)
        return true;
    snprintf(why, sizeof(why),
             "the files make a message over smtp_max_message (%llu octets)",
             (unsigned long long)limit);
    return tx_invalid(reply, field, why);
}

/*
 * An ISO 8601 time with seconds and a zone ("2026-12-05T08:00:00Z",
 * "...+01:00") in ms since the epoch; -1 when it is not one.
 */
static int64_t
tx_time(const char *text)
{
    struct tm when = {0};
    const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &when);
    int hours, minutes, sign;
    int64_t seconds;

    if (rest == NULL)
        return -1;
    seconds = (int64_t)timegm(&when);
    if (strcmp(rest, "Z") == 0)
        return seconds * 1000;
    if ((rest[0] != '+' && rest[0] != '-') ||
        sscanf(rest + 1, "%2d:%2d", &hours, &minutes) != 2 ||
        strlen(rest) != 6 || hours > 23 || minutes > 59)
        return -1;
    sign = rest[0] == '+' ? 1 : -1;
    return (seconds - sign * (hours * 3600 + minutes * 60)) * 1000;
}

/*
 * options: start_time (when delivery may begin; "now" or a time within
 * queue_max_lifetime) means something here; the others are accepted and
 * left alone (doc/transmissions.md says why).
 */
static bool
tx_options(const http__call *call, json_t *options, struct tx *tx,
           http__reply *reply)
{
    const char *start = NULL;
    int64_t now = (int64_t)time(NULL) * 1000, lifetime;

    if (options == NULL || json_is_null(options))
        return true;
    if (!json_is_object(options))
        return tx_invalid(reply, "options", "an object");
    if (!tx_string(options, "start_time", "options.start_time", &start, reply))
        return false;
    if (start == NULL || strcmp(start, "now") == 0)
        return true;
    tx->not_before_ms = tx_time(start);
    lifetime = http__config(call)->queue_max_lifetime * 1000;
    if (tx->not_before_ms < 0)
        return tx_invalid(reply, "options.start_time",
                          "\"now\", or a time such as "
                          "2026-12-05T08:00:00+01:00");
    if (tx->not_before_ms >= now + lifetime)
        return tx_invalid(reply, "options.start_time",
                          "within queue_max_lifetime from now");
    if (tx->not_before_ms <= now)
        tx->not_before_ms = 0;
    return true;
}

/* Read and check the whole request; false with reply set. */
static bool
tx_parse(const http__call *call, struct tx *tx, http__reply *reply)
{
    struct tx_recipient rcpt;
    size_t index;
    json_t *item;

    tx->root = http__body_json(call, reply);
    if (tx->root == NULL)
        return false;
    tx->recipients = json_object_get(tx->root, "recipients");
    if (tx->recipients == NULL)
        return tx_missing(reply, "recipients");
    if (!json_is_array(tx->recipients))
        return tx_invalid(reply, "recipients", "an array");
    if (json_array_size(tx->recipients) == 0)
        return tx_invalid(reply, "recipients", "at least one recipient");
    if (json_array_size(tx->recipients) > TX_MAX_RECIPIENTS)
        return tx_invalid(reply, "recipients", "at most 100000 recipients");
    if (!tx_object(tx->root, "substitution_data", "substitution_data",
                   &tx->substitution, reply) ||
        !tx_metadata(tx->root, "metadata", &tx->metadata, reply) ||
        !tx_string(tx->root, "campaign_id", "campaign_id", &tx->campaign,
                   reply) ||
        !tx_string(tx->root, "return_path", "return_path", &tx->return_path,
                   reply))
        return false;
    if (tx->campaign != NULL && (strlen(tx->campaign) > TX_MAX_CAMPAIGN ||
                                 strpbrk(tx->campaign, "\r\n\t") != NULL))
        return tx_invalid(reply, "campaign_id", "up to 64 octets on one line");
    if (tx->return_path != NULL && !sp_smtp_mailbox_valid(tx->return_path))
        return tx_invalid(reply, "return_path", "a valid email address");
    if (!tx_options(call, json_object_get(tx->root, "options"), tx, reply))
        return false;
    if (!tx_content(call, json_object_get(tx->root, "content"), tx, reply))
        return false;
    if (!tx_fits(call, tx, &tx->attachments, "content.attachments", reply) ||
        !tx_fits(call, tx, &tx->images, "content.inline_images", reply))
        return false;

    /* Every recipient, and their own files, before anything is sent. */
    json_array_foreach(tx->recipients, index, item) {
        struct tx_files own = {0};
        char field[64];
        bool ok;

        if (!tx_recipient(item, index, &rcpt, reply))
            return false;
        snprintf(field, sizeof(field), "recipients[%zu].attachments", index);
        ok = tx_files(rcpt.attachments, field, &own, reply) &&
             tx_fits(call, tx, &own, field, reply);
        tx_files_free(&own);
        if (!ok)
            return false;
    }
    return true;
}

/*
 * Render template (may be NULL) into a NUL-terminated buffer of at most
 * max octets.  SP_EINVAL with error naming field when the data makes it
 * pass a limit (this recipient's message is not made), SP_ENOMEM.
 */
static int
tx_render(struct tx *tx, const char *template, const json_t *data, bool html,
          size_t max, const char *field, sp_buf *out, char *error,
          size_t error_size)
{
    char why[160];
    int rc;

    sp_buf_reset(out);
    if (template == NULL)
        return SP_OK;
    rc = http__render(template, strlen(template), data, html, max, tx->unknown,
                      out, why, sizeof(why));
    if (rc == SP_ELIMIT || rc == SP_EINVAL) {
        snprintf(error, error_size, "%.40s: %.150s: the message was not made",
                 field, why);
        return SP_EINVAL;
    }
    return rc == SP_OK ? sp_buf_append(out, "", 0) : rc;
}
/* The fields every event of rcpt's message carries, as text. */
static char *
tx_event_fields(const http__call *call, const struct tx *tx, const char *id,
                const struct tx_recipient *rcpt, const char *subject)
{
    json_t *fields = json_pack("{s:s}", "transmission_id", id);
    json_t *metadata = NULL;
    char *text;

    if (fields == NULL)
        return NULL;
    if (tx->campaign != NULL)
        json_object_set_new(fields, "campaign_id", json_string(tx->campaign));
    if (tx->metadata != NULL || rcpt->metadata != NULL) {
        metadata = tx->metadata ? json_copy(tx->metadata) : json_object();
        if (rcpt->metadata != NULL)
            json_object_update(metadata, rcpt->metadata);
        json_object_set_new(fields, "metadata", metadata);
    }
    if (rcpt->tags != NULL)
        json_object_set(fields, "tags", rcpt->tags);
    if (http__config(call)->events_subject && subject != NULL) {
        size_t len = strlen(subject);

        /* As over SMTP: the first TX_EVENT_SUBJECT octets, whole
         * characters. */
        if (len > TX_EVENT_SUBJECT) {
            len = TX_EVENT_SUBJECT;
            while (len > 0 && ((unsigned char)subject[len] & 0xc0) == 0x80)
                len--;
        }
        json_object_set_new(fields, "subject", json_stringn(subject, len));
    }
    text = json_dumps(fields, JSON_COMPACT);
    json_decref(fields);
    return text;
}

/* The rendered parts of one recipient's message. */
struct tx_parts {
    sp_buf subject, text, html, reply_to, from_name;
    sp_buf header_values[TX_MAX_HEADERS];
    sp_mail_added_field headers[TX_MAX_HEADERS];
    sp_buf message;
};

static void
tx_parts_free(struct tx_parts *parts)
{
    sp_buf_free(&parts->subject);
    sp_buf_free(&parts->text);
    sp_buf_free(&parts->html);
    sp_buf_free(&parts->reply_to);
    sp_buf_free(&parts->from_name);
    for (size_t i = 0; i < TX_MAX_HEADERS; i++)
        sp_buf_free(&parts->header_values[i]);
    sp_buf_free(&parts->message);
}

/* A whole message given as email_rfc822, rendered, with CRLF line ends. */
static int
tx_build_rfc822(struct tx *tx, const json_t *data, size_t max,
                struct tx_parts *parts, char *error, size_t error_size)
{
    int rc = tx_render(tx, tx->rfc822, data, false, max, "content.email_rfc822",
                       &parts->text, error, error_size);
    sp_mail_eol eol;

    sp_buf_reset(&parts->message);
    sp_mail_eol_init(&eol);
    if (rc == SP_OK)
        rc = sp_mail_eol_feed(&eol, parts->text.data, parts->text.len,
                              &parts->message);
    if (rc == SP_OK)
        rc = sp_mail_eol_finish(&eol, &parts->message);
    if (rc == SP_OK && (parts->message.len == 0 ||
                        parts->message.data[parts->message.len - 1] != '\n'))
        rc = sp_buf_append(&parts->message, "\r\n", 2);
    return rc;
}

/*
 * Whether a rendered field value stayed on one line: substitution data
 * must not add fields to a message.  error says which if not.
 */
static bool
tx_one_line(const sp_buf *value, const char *field, char *error,
            size_t error_size)
{
    if (value->data == NULL || strpbrk(value->data, "\r\n") == NULL)
        return true;
    snprintf(error, error_size,
             "substitution put a line break into %s: the message was not "
             "made",
             field);
    return false;
}

/* Build one recipient's message into parts->message. */
static int
tx_build(const http__call *call, struct tx *tx, const char *id, size_t index,
         const struct tx_recipient *rcpt, const struct tx_files *own,
         const json_t *data, struct tx_parts *parts, char *error,
         size_t error_size)
{
    size_t max = (size_t)http__config(call)->smtp_max_message;
    sp_mail_file files[2 * TX_MAX_FILES];
    char message_id[320];
    size_t headers = 0;
    const char *name;
    json_t *value;
    int rc;

    if (tx->rfc822 != NULL)
        return tx_build_rfc822(tx, data, max, parts, error, error_size);

    rc = tx_render(tx, tx->subject, data, false, TX_MAX_FIELD,
                   "content.subject", &parts->subject, error, error_size);
    if (rc == SP_OK)
        rc = tx_render(tx, tx->text, data, false, max, "content.text",
                       &parts->text, error, error_size);
    if (rc == SP_OK)
        rc = tx_render(tx, tx->html, data, true, max, "content.html",
                       &parts->html, error, error_size);
    if (rc == SP_OK)
        rc = tx_render(tx, tx->reply_to, data, false, TX_MAX_FIELD,
                       "content.reply_to", &parts->reply_to, error, error_size);
    if (rc == SP_OK)
        rc = tx_render(tx, tx->from_name, data, false, TX_MAX_FIELD,
                       "content.from.name", &parts->from_name, error,
                       error_size);
    json_object_foreach(tx->headers, name, value) {
        if (rc != SP_OK)
            break;
        rc = tx_render(tx, json_string_value(value), data, false, TX_MAX_FIELD,
                       "content.headers", &parts->header_values[headers], error,
                       error_size);
        parts->headers[headers] =
            (sp_mail_added_field){name, parts->header_values[headers].data
                                            ? parts->header_values[headers].data
                                            : ""};
        headers++;
    }
    if (rc != SP_OK)
        return rc;
    if (!tx_one_line(&parts->subject, "content.subject", error, error_size) ||
        !tx_one_line(&parts->from_name, "content.from.name", error,
                     error_size) ||
        !tx_one_line(&parts->reply_to, "content.reply_to", error, error_size))
        return SP_EINVAL;
    for (size_t i = 0; i < headers; i++)
        if (!tx_one_line(&parts->header_values[i], "content.headers", error,
                         error_size))
            return SP_EINVAL;

    memcpy(files, tx->attachments.files,
           tx->attachments.count * sizeof(files[0]));
    memcpy(files + tx->attachments.count, own->files,
           own->count * sizeof(files[0]));
    snprintf(message_id, sizeof(message_id), "%s.%zu@%s", id, index,
             http__hostname(call));
    sp_buf_reset(&parts->message);
    rc = sp_mail_compose(
        &(sp_mail_content){
            .from_email = tx->from_email,
            .from_name = tx->from_name ? parts->from_name.data : NULL,
            .to_email = rcpt->email,
            .to_name = rcpt->name,
            .header_to = rcpt->header_to,
            .reply_to = tx->reply_to ? parts->reply_to.data : NULL,
            .subject = parts->subject.data ? parts->subject.data : "",
            .message_id = message_id,
            .text =
                tx->text ? (parts->text.data ? parts->text.data : "") : NULL,
            .text_len = parts->text.len,
            .html =
                tx->html ? (parts->html.data ? parts->html.data : "") : NULL,
            .html_len = parts->html.len,
            .headers = parts->headers,
            .header_count = headers,
            .images = tx->images.files,
            .image_count = tx->images.count,
            .attachments = files,
            .attachment_count = tx->attachments.count + own->count,
            .shared_attachments = tx->attachments.count,
        },
        &parts->message, error, error_size);
    if (rc == SP_OK && parts->message.len > max) {
        snprintf(error, error_size,
                 "the message would be over smtp_max_message (%zu octets): "
                 "it was not made",
                 max);
        rc = SP_EINVAL;
    }
    return rc;
}

/* Answer 200 with the counts, and warnings for unknown names. */
static void
tx_answer(const struct tx *tx, const char *id, size_t accepted,
          http__reply *reply)
{
    size_t total = json_array_size(tx->recipients), index;
    json_t *results, *unknown;

    results =
        json_pack("{s:{s:s, s:I, s:I}}", "results", "id", id,
                  "total_accepted_recipients", (json_int_t)accepted,
                  "total_rejected_recipients", (json_int_t)(total - accepted));
    if (results != NULL && json_array_size(tx->unknown) > 0) {
        json_t *warnings = json_array();

        json_array_foreach(tx->unknown, index, unknown) {
            char text[200];

            snprintf(text, sizeof(text),
                     "substitution variable %.150s had no value",
                     json_string_value(unknown));
            json_array_append_new(warnings,
                                  json_pack("{s:s}", "message", text));
        }
        json_object_set_new(results, "warnings", warnings);
    }
    http__json(reply, MHD_HTTP_OK, results);
}

/* Render, build and hand over every recipient's message. */
static void
tx_send(const http__call *call, struct tx *tx, http__reply *reply)
{
    const sp_http_injector *injector = http__injector(call);
    const char *sender = tx->return_path ? tx->return_path : tx->from_email;
    struct tx_parts parts = {0};
    char id[32] = "", why[256] = "", first[256] = "", error[256] = "";
    size_t accepted = 0, refused = 0, index;
    sp_http_batch *batch;
    json_t *item;
    int rc = SP_OK;

    batch = injector->begin(injector->arg, call->key->name, call->key->domains,
                            call->client_ip, id);
    if (batch == NULL) {
        http__error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    json_array_foreach(tx->recipients, index, item) {
        struct tx_recipient rcpt;
        struct tx_files own = {0};
        json_t *data;
        char *fields = NULL;
        http__reply ignored = {0};
        sp_error err;

        /* Checked already: these cannot fail now but for memory. */
        tx_recipient(item, index, &rcpt, &ignored);
        tx_files(rcpt.attachments, "", &own, &ignored);
        free(ignored.body);

        data = tx->substitution ? json_copy(tx->substitution) : json_object();
        if (data != NULL && rcpt.substitution != NULL)
            json_object_update(data, rcpt.substitution);
        rc = data == NULL ? SP_ENOMEM
                          : tx_build(call, tx, id, index, &rcpt, &own, data,
                                     &parts, error, sizeof(error));
        if (rc == SP_OK || rc == SP_EINVAL) {
            fields = tx_event_fields(call, tx, id, &rcpt,
                                     tx->rfc822 ? NULL : parts.subject.data);
            if (fields == NULL)
                rc = SP_ENOMEM;
        }

        /* Taken, or (this recipient's message alone) not made. */
        if (rc == SP_EINVAL)
            injector->fail(batch, sender, rcpt.email, fields, error);
        else if (rc == SP_OK &&
                 injector->add(batch, sender, rcpt.email, parts.message.data,
                               parts.message.len, fields, tx->not_before_ms,
                               &err) != SP_OK &&
                 why[0] == '\0')
            snprintf(why, sizeof(why), "%.250s", err.text);
        free(fields);
        json_decref(data);
        tx_files_free(&own);
        if (rc == SP_ENOMEM)
            break;
        rc = SP_OK;
    }
    tx_parts_free(&parts);
    injector->finish(batch, &accepted, &refused, first, sizeof(first));
    if (why[0] == '\0')
        snprintf(why, sizeof(why), "%.250s", first);

    if (rc != SP_OK)
        http__error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    else if (accepted == 0)
        http__fail(reply, 422, TX_CODE_FORMAT, "no recipient was accepted",
                   why);
    else
        tx_answer(tx, id, accepted, reply);
}

void
http__transmissions_create(const http__call *call, http__reply *reply)
{
    struct tx tx = {0};

    if (http__injector(call) == NULL) {
        http__fail(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "1000",
                   "this server takes no transmissions", NULL);
        return;
    }
    tx.unknown = json_array();
    if (tx.unknown != NULL && tx_parse(call, &tx, reply))
        tx_send(call, &tx, reply);
    else if (tx.unknown == NULL)
        http__error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    tx_files_free(&tx.attachments);
    tx_files_free(&tx.images);
    json_decref(tx.unknown);
    json_decref(tx.template_content);
    json_decref(tx.root);
}

bool
http__content_valid(const http__call *call, json_t *content, http__reply *reply)
{
    struct tx tx = {0};
    bool valid;

    tx.template_content = content; /* no template named inside */
    valid = tx_content(call, content, &tx, reply);
    tx_files_free(&tx.attachments);
    tx_files_free(&tx.images);
    return valid;
}
