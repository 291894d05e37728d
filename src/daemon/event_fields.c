/*
 * event_fields.c: what every event of a message submitted over SMTP
 * carries besides its envelope: its subject, its transmission, and the
 * campaign and metadata a sender gives in an X-MSYS-API field.
 *
 * Owns smtp__event_fields and smtp__is_api_field.  X-MSYS-API is the
 * field SparkPost's SMTP users already write: a JSON object, of which
 * sealpost takes
 *
 *   campaign_id   a string of up to 64 octets
 *   metadata      an object, up to 1,000 octets as compact JSON
 *
 * and leaves the other members alone.  The field is removed from the
 * message before it is signed and stored (smtp__is_api_field finds it):
 * it is for sealpost, not for the recipient.
 */
#include "smtp_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELDS_SUBJECT_MAX  255  /* octets of a subject kept */
#define FIELDS_CAMPAIGN_MAX 64   /* octets of a campaign id */
#define FIELDS_METADATA_MAX 1000 /* octets of metadata as compact JSON */
#define FIELDS_API_MAX      8192 /* octets of an X-MSYS-API value */

bool
smtp__is_api_field(const sp_mail_field *field, const char *block)
{
    return sp_mail_field_is(field, block, "X-MSYS-API", 10);
}

/*
 * A field's value unfolded (CRLFs dropped, whitespace at both ends
 * trimmed) into out, cut to at most max octets; false when it is longer.
 */
static bool
fields_value(const sp_mail_field *field, const char *block, size_t max,
             sp_buf *out)
{
    const char *at = block + field->offset + field->colon + 1;
    const char *end = block + field->offset + field->length;
    bool whole = true;

    while (at < end && (*at == ' ' || *at == '\t'))
        at++;
    for (; at < end; at++) {
        if (*at == '\r' || *at == '\n')
            continue;
        if (out->len == max) {
            whole = false;
            break;
        }
        if (sp_buf_append(out, at, 1) != SP_OK)
            return false;
    }
    while (out->len > 0 &&
           (out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
        out->data[--out->len] = '\0';
    return whole;
}

/* A JSON string of text; octets that are not UTF-8 become '?'. */
static json_t *
fields_string(sp_buf *text)
{
    json_t *string = json_stringn(text->data ? text->data : "", text->len);

    if (string != NULL || text->len == 0)
        return string;
    for (size_t i = 0; i < text->len; i++)
        if ((unsigned char)text->data[i] >= 0x80)
            text->data[i] = '?';
    return json_stringn(text->data, text->len);
}

/* Take campaign_id and metadata from X-MSYS-API's value; why if bad. */
static bool
fields_api(json_t *fields, const char *value, size_t len, char *why,
           size_t why_size)
{
    json_t *api = json_loadb(value, len, 0, NULL);
    json_t *campaign = json_object_get(api, "campaign_id");
    json_t *metadata = json_object_get(api, "metadata");
    char *compact = NULL;
    bool ok = false;

    if (!json_is_object(api))
        snprintf(why, why_size, "X-MSYS-API: not a JSON object");
    else if (campaign != NULL &&
             (!json_is_string(campaign) ||
              json_string_length(campaign) > FIELDS_CAMPAIGN_MAX))
        snprintf(why, why_size,
                 "X-MSYS-API: campaign_id: a string of up to %d octets",
                 FIELDS_CAMPAIGN_MAX);
    else if (metadata != NULL &&
             (!json_is_object(metadata) ||
              (compact = json_dumps(metadata, JSON_COMPACT)) == NULL ||
              strlen(compact) > FIELDS_METADATA_MAX))
        snprintf(why, why_size,
                 "X-MSYS-API: metadata: an object of up to %d octets",
                 FIELDS_METADATA_MAX);
    else
        ok = true;

    if (ok && campaign != NULL)
        json_object_set(fields, "campaign_id", campaign);
    if (ok && metadata != NULL)
        json_object_set(fields, "metadata", metadata);
    free(compact);
    json_decref(api);
    return ok;
}

char *
smtp__event_fields(const char *block, const sp_mail_header *header,
                   bool subject, const char *queue_id, char *why,
                   size_t why_size)
{
    json_t *fields = json_pack("{s:s}", "transmission_id", queue_id);
    bool took_subject = !subject, took_api = false, ok = fields != NULL;
    sp_buf value = SP_BUF_INIT;
    char *text = NULL;

    why[0] = '\0';
    for (size_t i = 0; ok && i < header->count; i++) {
        const sp_mail_field *field = &header->fields[i];

        if (!took_subject && sp_mail_field_is(field, block, "Subject", 7)) {
            took_subject = true;
            sp_buf_reset(&value);
            fields_value(field, block, FIELDS_SUBJECT_MAX, &value);
            ok = json_object_set_new(fields, "subject",
                                     fields_string(&value)) == 0;
        } else if (smtp__is_api_field(field, block)) {
            sp_buf_reset(&value);
            if (took_api)
                snprintf(why, why_size, "X-MSYS-API: given twice");
            else if (!fields_value(field, block, FIELDS_API_MAX, &value))
                snprintf(why, why_size, "X-MSYS-API: over %d octets",
                         FIELDS_API_MAX);
            else
                fields_api(fields, value.data ? value.data : "", value.len, why,
                           why_size);
            took_api = true;
            ok = why[0] == '\0';
        }
    }

    if (ok)
        text = json_dumps(fields, JSON_COMPACT);
    json_decref(fields);
    sp_buf_free(&value);
    return text;
}
