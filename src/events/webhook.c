/*
 * webhook.c: registering a webhook, for the command line and the HTTP
 * API alike.
 *
 * Owns sp_webhook_add and sp_webhook_json.  The endpoint's signing secret is
 * shown to the caller once and kept only sealed with the master key, bound to
 * the endpoint's name (as DKIM private keys are bound to their selector).
 */
#include "events.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Whether name is 1 to 63 printable ASCII characters, no space. */
static bool
webhook_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len >= sizeof(((sp_store_webhook *)0)->name))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)name[i]))
            return false;
    return true;
}

int
sp_webhook_add(sp_keys *keys, sp_store_webhook *hook,
               char secret[SP_WEBHOOK_SECRET_SIZE], sp_error *err)
{
    unsigned char raw[32];
    char context[100];
    int rc;

    secret[0] = '\0';
    if (!webhook_name_valid(hook->name))
        return sp_err_set(err, SP_EINVAL,
                          "name: 1 to 63 printable characters, no space");
    if (strncmp(hook->url, "http://", 7) != 0 &&
        strncmp(hook->url, "https://", 8) != 0)
        return sp_err_set(err, SP_EINVAL,
                          "url: an http:// or https:// address");
    if (!sp_event_types_valid(hook->events))
        return sp_err_set(err, SP_EINVAL,
                          "events: injection, delivery, delay, bounce, "
                          "expired, policy_rejection, generation_failure "
                          "or dkim_key");

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return sp_err_set(err, SP_EIO, "no randomness for a secret");
    memcpy(secret, "whsec_", 6);
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(secret + 6 + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));

    snprintf(context, sizeof(context), "webhook:%s", hook->name);
    hook->created = (int64_t)time(NULL);
    sp_buf_reset(&hook->sealed);
    rc =
        sp_keys_seal(keys, context, secret, strlen(secret), &hook->sealed, err);
    if (rc == SP_OK)
        rc = sp_store_webhook_insert(sp_keys_store(keys), hook, err);
    if (rc != SP_OK)
        OPENSSL_cleanse(secret, SP_WEBHOOK_SECRET_SIZE);
    return rc;
}

json_t *
sp_webhook_json(const sp_store_webhook *hook)
{
    char id[24];
    json_t *events = json_array();
    json_t *object;

    snprintf(id, sizeof(id), "%lld", (long long)hook->id);
    for (const char *at = hook->events; events != NULL && *at != '\0';) {
        size_t len = strcspn(at, ",");

        if (len > 0)
            json_array_append_new(events, json_stringn(at, len));
        at += len + (at[len] == ',');
    }
    object =
        json_pack("{s:s, s:s, s:s, s:o*, s:I, s:I, s:I, s:s}", "id", id, "name",
                  hook->name, "target", hook->url, "events", events, "created",
                  (json_int_t)hook->created, "cursor", (json_int_t)hook->cursor,
                  "failing_since", (json_int_t)hook->failing_since,
                  "last_error", hook->last_error);
    return object;
}
