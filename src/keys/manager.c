/*
 * manager.c: opening key management, making keys, naming them, and
 * opening a private key to sign.
 *
 * Owns sp_keys_open, sp_keys_close, sp_keys_store, sp_keys_selector,
 * sp_keys_generate and sp_keys_private.  The master key is read only when
 * a private key is sealed or opened, so commands that only list or check
 * keys work without it.
 */
#include "keys_int.h"

#include "crypt/crypt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int
sp_keys_open(const sp_config *config, bool create, sp_keys **out, sp_error *err)
{
    sp_keys *keys = sp_calloc(1, sizeof(*keys));
    int rc;

    *out = NULL;
    if (keys == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    keys->config = config;
    keys->create = create;
    rc = sp_store_open(config->data_dir, &keys->store, err);
    if (rc != SP_OK) {
        sp_free(keys);
        return rc;
    }
    *out = keys;
    return SP_OK;
}

void
sp_keys_close(sp_keys *keys)
{
    if (keys == NULL)
        return;
    sp_crypt_master_wipe(&keys->master);
    sp_store_close(keys->store);
    sp_free(keys);
}

sp_store *
sp_keys_store(sp_keys *keys)
{
    return keys->store;
}

void
sp_keys_set_queued(sp_keys *keys, sp_keys_queued_fn fn, void *arg)
{
    keys->queued = fn;
    keys->queued_arg = arg;
}

int
keys__master(sp_keys *keys, sp_error *err)
{
    char path[4096];
    int rc;

    if (keys->master_loaded)
        return SP_OK;
    rc = sp_crypt_master_load(
        sp_config_master_key(keys->config, path, sizeof(path)), keys->create,
        &keys->master, err);
    if (rc == SP_OK)
        keys->master_loaded = true;
    return rc;
}

int
sp_keys_seal(sp_keys *keys, const char *context, const void *plain, size_t len,
             sp_buf *out, sp_error *err)
{
    int rc = keys__master(keys, err);

    return rc == SP_OK
               ? sp_crypt_seal(&keys->master, context, plain, len, out, err)
               : rc;
}

int
sp_keys_unseal(sp_keys *keys, const char *context, const sp_buf *sealed,
               sp_buf *out, sp_error *err)
{
    int rc = keys__master(keys, err);

    return rc == SP_OK ? sp_crypt_open(&keys->master, context, sealed->data,
                                       sealed->len, out, err)
                       : rc;
}

/* The context a sealed private key is bound to. */
static void
keys_context(const char *domain, const char *selector, char *out, size_t size)
{
    snprintf(out, size, "dkim %s %s", domain, selector);
}

int
sp_keys_selector(sp_keys *keys, const char *domain, const char *algorithm,
                 int64_t now, char *out, size_t size, sp_error *err)
{
    sp_store_key *rows = NULL;
    size_t count = 0;
    time_t when = (time_t)now;
    struct tm utc;
    int rc;

    rc = sp_store_key_list(keys->store, domain, &rows, &count, err);
    if (rc != SP_OK)
        return rc;
    gmtime_r(&when, &utc);

    /* sp2027q1r, then sp2027q1r2, sp2027q1r3... until one is unused. */
    for (int number = 1;; number++) {
        bool used = false;

        if (number == 1)
            snprintf(out, size, "sp%04dq%d%c", utc.tm_year + 1900,
                     utc.tm_mon / 3 + 1, algorithm[0]);
        else
            snprintf(out, size, "sp%04dq%d%c%d", utc.tm_year + 1900,
                     utc.tm_mon / 3 + 1, algorithm[0], number);
        for (size_t i = 0; i < count && !used; i++)
            used = strcasecmp(rows[i].selector, out) == 0;
        if (!used)
            break;
    }
    sp_store_keys_free(rows, count);
    return SP_OK;
}

/* Check what keygen was asked for; *warning for a weak RSA size. */
static int
keys_check_request(const char *domain, const char *algorithm, unsigned bits,
                   const char **warning, sp_error *err)
{
    *warning = NULL;
    if (!sp_dkim_valid_name(domain))
        return sp_err_set(err, SP_EINVAL,
                          "\"%.80s\" is not a domain name (internationalized "
                          "names must be A-labels)",
                          domain);
    if (strcmp(algorithm, "ed25519") == 0)
        return SP_OK;
    if (strcmp(algorithm, "rsa") != 0)
        return sp_err_set(err, SP_EINVAL, "algorithm %.20s: use rsa or ed25519",
                          algorithm);
    if (bits < SP_DKIM_RSA_MIN_BITS)
        return sp_err_set(err, SP_EPOLICY,
                          "RSA keys of %u bits are refused: RFC 8301 says "
                          "receivers treat keys under 1024 bits as invalid, "
                          "and the major mailbox providers reject them; use "
                          "2048",
                          bits);
    if (bits > 4096)
        return sp_err_set(err, SP_EPOLICY,
                          "RSA keys over 4096 bits are refused: their "
                          "records do not fit DNS well; use 2048");
    if (bits < SP_DKIM_RSA_WARN_BITS)
        *warning = "1024-bit RSA keys are weak: receivers accept them today "
                   "but recommend 2048";
    return SP_OK;
}

int
sp_keys_generate(sp_keys *keys, const char *domain, const char *selector,
                 const char *algorithm, unsigned bits, bool testing,
                 int64_t now, sp_store_key *made, const char **warning,
                 sp_error *err)
{
    sp_store_key row = {0};
    sp_dkim_key *key = NULL;
    sp_buf pem = SP_BUF_INIT, record = SP_BUF_INIT;
    char context[400];
    int rc;

    rc = keys_check_request(domain, algorithm, bits, warning, err);
    if (rc == SP_OK && selector != NULL && !sp_dkim_valid_name(selector))
        rc = sp_err_set(err, SP_EINVAL,
                        "selector \"%.80s\" is not valid: letters, digits, "
                        "'-' and dots only",
                        selector);
    if (rc == SP_OK && selector == NULL)
        rc = sp_keys_selector(keys, domain, algorithm, now, row.selector,
                              sizeof(row.selector), err);
    else if (rc == SP_OK)
        snprintf(row.selector, sizeof(row.selector), "%s", selector);
    if (rc == SP_OK)
        rc = keys__master(keys, err);
    if (rc != SP_OK)
        return rc;

    /* The key, its record, and its private half sealed for this row. */
    rc = sp_dkim_key_generate(
        strcmp(algorithm, "rsa") == 0 ? SP_DKIM_KEY_RSA : SP_DKIM_KEY_ED25519,
        bits, &key, err);
    snprintf(row.domain, sizeof(row.domain), "%s", domain);
    for (char *c = row.domain; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + ('a' - 'A') : *c);
    keys_context(row.domain, row.selector, context, sizeof(context));
    if (rc == SP_OK && (sp_dkim_key_pem(key, &pem) != SP_OK ||
                        sp_dkim_key_record(key, testing, &record) != SP_OK))
        rc = sp_err_set(err, SP_ENOMEM, "out of memory making a key");
    if (rc == SP_OK)
        rc = sp_crypt_seal(&keys->master, context, pem.data, pem.len,
                           &row.sealed, err);

    if (rc == SP_OK) {
        snprintf(row.algorithm, sizeof(row.algorithm), "%s", algorithm);
        row.bits = sp_dkim_key_bits(key);
        row.testing = testing;
        row.state = SP_STORE_KEY_PENDING;
        row.created = now;
        row.public_record = record.data;
        rc = sp_store_key_insert(keys->store, &row, err);
    }
    if (pem.data != NULL)
        memset(pem.data, 0, pem.len);
    sp_buf_free(&pem);
    sp_dkim_key_free(key);
    if (rc == SP_OK && made != NULL) {
        *made = row;
        return SP_OK;
    }
    sp_buf_free(&record);
    sp_buf_free(&row.sealed);
    return rc;
}

int
sp_keys_private(sp_keys *keys, const sp_store_key *row, sp_dkim_key **out,
                sp_error *err)
{
    sp_buf pem = SP_BUF_INIT;
    char context[400];
    int rc;

    *out = NULL;
    rc = keys__master(keys, err);
    if (rc != SP_OK)
        return rc;
    keys_context(row->domain, row->selector, context, sizeof(context));
    rc = sp_crypt_open(&keys->master, context, row->sealed.data,
                       row->sealed.len, &pem, err);
    if (rc == SP_OK)
        rc = sp_dkim_key_parse(pem.data, pem.len, out, err);
    if (pem.data != NULL)
        memset(pem.data, 0, pem.len);
    sp_buf_free(&pem);
    return rc;
}
