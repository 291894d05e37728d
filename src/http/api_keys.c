/*
 * api_keys.c: /api/v1/recipient-keys, the directory of the keys mail to a
 * recipient is encrypted with, as "sealpost keys" manages it.
 *
 * Owns http__rkeys_*:
 *
 *   POST   /api/v1/recipient-keys        {"key": PEM or armored text, or
 *                                        "key_base64": DER or binary,
 *                                        "address" or "domain"}; the key
 *                                        is checked, then stored for the
 *                                        addresses it names (or the one
 *                                        given, or "@domain"); 200
 *                                        {"results": [stored keys]}, 422
 *                                        with the reason when refused
 *   GET    /api/v1/recipient-keys        {"results": [keys]}, all, or
 *                                        ?address=A
 *   DELETE /api/v1/recipient-keys/ADDR   the address's keys (or the one
 *                                        of ?fingerprint=F); 204, or 404
 *
 * A key reads {"address", "method", "fingerprint", "subject",
 * "not_before", "not_after", "imported"} (times in seconds; not_after 0
 * for none).  Certificates chain to the system's trusted roots; one from
 * a private authority is imported with "sealpost keys import --ca".
 */
#include "http_int.h"

#include "crypt/seal.h"
#include "mail/mail.h"

#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static json_t *
rkeys_json(const sp_store_rkey *key)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "address", key->address,
        "method", key->method, "fingerprint", key->fingerprint, "subject",
        key->subject, "not_before", (json_int_t)key->not_before, "not_after",
        (json_int_t)key->not_after, "imported", (json_int_t)key->imported);
}

static void
rkeys_invalid(http__reply *reply, const char *field, const char *want)
{
    char text[200];

    snprintf(text, sizeof(text), "%s: expected %s", field, want);
    http__fail(reply, 422, "1300", "invalid data format/type", text);
}

/* The key's bytes from the body into data; false with reply set. */
static bool
rkeys_bytes(json_t *body, sp_buf *data, http__reply *reply)
{
    json_t *text = json_object_get(body, "key");
    json_t *b64 = json_object_get(body, "key_base64");
    sp_error err;

    if ((text == NULL) == (b64 == NULL) ||
        (text != NULL && !json_is_string(text)) ||
        (b64 != NULL && !json_is_string(b64))) {
        rkeys_invalid(reply, "key", "one of key (text) or key_base64");
        return false;
    }
    if (text != NULL) {
        if (sp_buf_append(data, json_string_value(text),
                          json_string_length(text)) == SP_OK)
            return true;
        http__error(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return false;
    }
    if (sp_b64_decode(data, json_string_value(b64), json_string_length(b64),
                      &err) != SP_OK) {
        rkeys_invalid(reply, "key_base64", "base64");
        return false;
    }
    return true;
}

/* Store key for address; false with reply set. */
static bool
rkeys_store(const http__call *call, const sp_seal_key *key, const sp_buf *data,
            const char *address, json_t *results, http__reply *reply)
{
    sp_store_rkey row;
    sp_error err;
    int rc;

    rc = sp_store_rkey_put(call->store, key, data, address, (int64_t)time(NULL),
                           &row, &err);
    if (rc == SP_EINVAL) {
        http__fail(reply, MHD_HTTP_CONFLICT, "1602", "resource conflict",
                   err.text);
        return false;
    }
    if (rc != SP_OK) {
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the key store cannot be used just now; try again");
        return false;
    }
    json_array_append_new(results, rkeys_json(&row));
    return true;
}

void
http__rkeys_create(const http__call *call, http__reply *reply)
{
    json_t *body = http__body_json(call, reply);
    json_t *address = json_object_get(body, "address");
    json_t *domain = json_object_get(body, "domain");
    sp_seal_check check = {.now = (int64_t)time(NULL)};
    sp_buf data = SP_BUF_INIT;
    sp_seal_key *key = NULL;
    json_t *results = json_array();
    char target[256];
    sp_error err;
    bool ok = true;

    if (body == NULL || !rkeys_bytes(body, &data, reply))
        goto done;
    if ((address != NULL && (!json_is_string(address) ||
                             !strchr(json_string_value(address), '@'))) ||
        (domain != NULL &&
         (!json_is_string(domain) ||
          !sp_mail_domain_valid(json_string_value(domain),
                                json_string_length(domain), 0))) ||
        (address != NULL && domain != NULL)) {
        rkeys_invalid(reply, "address, domain",
                      "an address, or a domain, not both");
        goto done;
    }

    /* Checked before anything is stored. */
    if (sp_seal_key_read(data.data, data.len, &check, &key, &err) != SP_OK) {
        http__fail(reply, 422, "1300", "key refused", err.text);
        goto done;
    }
    if (address != NULL &&
        !sp_seal_key_names(key, json_string_value(address))) {
        snprintf(target, sizeof(target), "the key does not name %.200s",
                 json_string_value(address));
        http__fail(reply, 422, "1300", "key refused", target);
        goto done;
    }
    if (address == NULL && domain == NULL &&
        key->n_addresses > SP_SEAL_MAX_ADDRESSES) {
        snprintf(target, sizeof(target),
                 "the key names %zu addresses, more than the %d stored at "
                 "once; give an address",
                 key->n_addresses, SP_SEAL_MAX_ADDRESSES);
        http__fail(reply, 422, "1300", "key refused", target);
        goto done;
    }
    if (address == NULL && domain == NULL && key->n_addresses == 0) {
        http__fail(reply, 422, "1300", "key refused",
                   "the key names no address; give a domain");
        goto done;
    }

    if (domain != NULL) {
        snprintf(target, sizeof(target), "@%.250s", json_string_value(domain));
        ok = rkeys_store(call, key, &data, target, results, reply);
    } else if (address != NULL) {
        ok = rkeys_store(call, key, &data, json_string_value(address), results,
                         reply);
    } else {
        for (size_t i = 0; ok && i < key->n_addresses; i++)
            ok = rkeys_store(call, key, &data, key->addresses[i], results,
                             reply);
    }
    if (ok) {
        http__json(reply, MHD_HTTP_OK, json_pack("{s:O}", "results", results));
    }
done:
    json_decref(results);
    sp_seal_key_free(key);
    sp_buf_free(&data);
    json_decref(body);
}

void
http__rkeys_list(const http__call *call, http__reply *reply)
{
    const char *address = call->param(call->request, "address");
    sp_store_rkey *keys = NULL;
    size_t count = 0;
    json_t *results;
    sp_error err;

    if (sp_store_rkey_list(call->store, address, &keys, &count, &err) !=
        SP_OK) {
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the key store cannot be used just now; try again");
        return;
    }
    results = json_array();
    for (size_t i = 0; results != NULL && i < count; i++)
        json_array_append_new(results, rkeys_json(&keys[i]));
    sp_store_rkeys_free(keys, count);
    http__json(reply, MHD_HTTP_OK,
               results ? json_pack("{s:o}", "results", results) : NULL);
}

void
http__rkeys_delete(const http__call *call, http__reply *reply)
{
    const char *fingerprint = call->param(call->request, "fingerprint");
    size_t removed = 0;
    sp_error err;

    if (sp_store_rkey_remove(call->store, call->id, fingerprint, &removed,
                             &err) != SP_OK)
        http__error(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the key store cannot be used just now; try again");
    else if (removed == 0)
        http__error(reply, MHD_HTTP_NOT_FOUND, "no such recipient key");
    else
        reply->status = MHD_HTTP_NO_CONTENT;
}
