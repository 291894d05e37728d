/*
 * store.c: the storage interface, dispatching to a backend.
 *
 * Owns sp_store_* (but for what the backends implement) and the key state
 * names.  Callers hold an sp_store and never see which backend is behind
 * it; sqlite.c is the embedded default.
 */
#include "store.h"
#include "store_int.h"

#include "crypt/seal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sp_store {
    const struct sp_store_backend *backend;
    void *impl; /* the backend's own state */
};

static const char *const state_names[] = {
    [SP_STORE_KEY_PENDING] = "pending",
    [SP_STORE_KEY_ACTIVE] = "active",
    [SP_STORE_KEY_RETIRING] = "retiring",
    [SP_STORE_KEY_RETIRED] = "retired",
};

const char *
sp_store_key_state_name(sp_store_key_state state)
{
    if ((size_t)state >= sizeof(state_names) / sizeof(state_names[0]))
        return "unknown";
    return state_names[state];
}

int
sp_store_key_state_parse(const char *name, sp_store_key_state *out)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(name, state_names[i]) == 0) {
            *out = (sp_store_key_state)i;
            return SP_OK;
        }
    return SP_ESYNTAX;
}

int
sp_store_open(const char *data_dir, sp_store **out, sp_error *err)
{
    sp_store *store = sp_calloc(1, sizeof(*store));
    int rc;

    *out = NULL;
    if (store == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    rc = store__sqlite_open(data_dir, &store->backend, &store->impl, err);
    if (rc != SP_OK) {
        sp_free(store);
        return rc;
    }
    *out = store;
    return SP_OK;
}

void
sp_store_close(sp_store *store)
{
    if (store == NULL)
        return;
    store->backend->close(store->impl);
    sp_free(store);
}

int
sp_store_key_insert(sp_store *store, sp_store_key *key, sp_error *err)
{
    return store->backend->key_insert(store->impl, key, err);
}

int
sp_store_key_list(sp_store *store, const char *domain, sp_store_key **keys,
                  size_t *count, sp_error *err)
{
    return store->backend->key_list(store->impl, domain, keys, count, err);
}

void
sp_store_key_clear(sp_store_key *key)
{
    sp_free(key->public_record);
    key->public_record = NULL;
    if (key->sealed.data != NULL)
        memset(key->sealed.data, 0, key->sealed.len);
    sp_buf_free(&key->sealed);
}

void
sp_store_keys_free(sp_store_key *keys, size_t count)
{
    for (size_t i = 0; keys != NULL && i < count; i++)
        sp_store_key_clear(&keys[i]);
    sp_free(keys);
}

int
sp_store_key_set_state(sp_store *store, int64_t id, sp_store_key_state state,
                       int64_t at, bool unconfirmed, sp_error *err)
{
    return store->backend->key_set_state(store->impl, id, state, at,
                                         unconfirmed, err);
}

int
sp_store_key_signed(sp_store *store, int64_t id, int64_t count, int64_t expiry,
                    const char *message, sp_error *err)
{
    return store->backend->key_signed(store->impl, id, count, expiry, message,
                                      err);
}

int
sp_store_key_released(sp_store *store, const char *message, sp_error *err)
{
    return store->backend->key_released(store->impl, message, err);
}

int
sp_store_key_queued(sp_store *store, int64_t id, int64_t *count, sp_error *err)
{
    return store->backend->key_queued(store->impl, id, count, err);
}

int
sp_store_apikey_insert(sp_store *store, sp_store_apikey *key, sp_error *err)
{
    return store->backend->apikey_insert(store->impl, key, err);
}

int
sp_store_apikey_list(sp_store *store, sp_store_apikey **keys, size_t *count,
                     sp_error *err)
{
    return store->backend->apikey_list(store->impl, keys, count, err);
}

int
sp_store_apikey_find(sp_store *store, const unsigned char hash[32],
                     sp_store_apikey *out, sp_error *err)
{
    return store->backend->apikey_find(store->impl, hash, out, err);
}

int
sp_store_apikey_revoke(sp_store *store, const char *name, int64_t at,
                       sp_error *err)
{
    return store->backend->apikey_revoke(store->impl, name, at, err);
}

int
sp_store_events_add(sp_store *store, const sp_store_event *events, size_t count,
                    sp_error *err)
{
    return store->backend->events_add(store->impl, events, count, err);
}

int
sp_store_events_find(sp_store *store, const sp_store_event_filter *filter,
                     void (*each)(void *arg, int64_t cursor, const char *json),
                     void *arg, sp_error *err)
{
    return store->backend->events_find(store->impl, filter, each, arg, err);
}

int
sp_store_events_prune(sp_store *store, int64_t before_ms, size_t max,
                      size_t *deleted, sp_error *err)
{
    return store->backend->events_prune(store->impl, before_ms, max, deleted,
                                        err);
}

int
sp_store_events_count(sp_store *store, int64_t from_ms, int64_t to_ms,
                      int64_t bucket_ms, bool by_domain,
                      void (*each)(void *arg, int64_t bucket,
                                   const char *domain, const char *type,
                                   int64_t count),
                      void *arg, sp_error *err)
{
    return store->backend->events_count(store->impl, from_ms, to_ms, bucket_ms,
                                        by_domain, each, arg, err);
}

bool
sp_store_apikey_allows(const sp_store_apikey *key, const char *scope)
{
    size_t len = strlen(scope);

    for (const char *at = key->scopes; *at != '\0';) {
        size_t word = strcspn(at, ",");

        if (word == len && strncmp(at, scope, len) == 0)
            return true;
        at += word + (at[word] == ',');
    }
    return false;
}

int
sp_store_webhook_insert(sp_store *store, sp_store_webhook *hook, sp_error *err)
{
    return store->backend->webhook_insert(store->impl, hook, err);
}

int
sp_store_webhook_list(sp_store *store, sp_store_webhook **hooks, size_t *count,
                      sp_error *err)
{
    return store->backend->webhook_list(store->impl, hooks, count, err);
}

void
sp_store_webhooks_free(sp_store_webhook *hooks, size_t count)
{
    for (size_t i = 0; hooks != NULL && i < count; i++)
        sp_buf_free(&hooks[i].sealed);
    sp_free(hooks);
}

int
sp_store_webhook_remove(sp_store *store, const char *name, sp_error *err)
{
    return store->backend->webhook_remove(store->impl, name, err);
}

int
sp_store_webhook_progress(sp_store *store, int64_t id, int64_t cursor,
                          int64_t failing_since, const char *last_error,
                          sp_error *err)
{
    return store->backend->webhook_progress(store->impl, id, cursor,
                                            failing_since, last_error, err);
}

int
sp_store_template_save(sp_store *store, sp_store_template *tpl, bool create,
                       sp_error *err)
{
    return store->backend->template_save(store->impl, tpl, create, err);
}

int
sp_store_template_get(sp_store *store, const char *id, sp_store_template *out,
                      sp_error *err)
{
    return store->backend->template_get(store->impl, id, out, err);
}

int
sp_store_template_list(sp_store *store, sp_store_template **out, size_t *count,
                       sp_error *err)
{
    return store->backend->template_list(store->impl, out, count, err);
}

int
sp_store_template_delete(sp_store *store, const char *id, sp_error *err)
{
    return store->backend->template_delete(store->impl, id, err);
}

void
sp_store_template_clear(sp_store_template *tpl)
{
    free(tpl->content);
    tpl->content = NULL;
}

void
sp_store_templates_free(sp_store_template *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sp_store_template_clear(&list[i]);
    sp_free(list);
}

int
sp_store_dmarc_add(sp_store *store, const sp_dmarc_report *report,
                   const char *source, int64_t imported, int64_t *id_out,
                   sp_error *err)
{
    return store->backend->dmarc_add(store->impl, report, source, imported,
                                     id_out, err);
}

int
sp_store_rkey_add(sp_store *store, sp_store_rkey *key, sp_error *err)
{
    return store->backend->rkey_add(store->impl, key, err);
}

int
sp_store_rkey_put(sp_store *store, const sp_seal_key *key, const sp_buf *data,
                  const char *address, int64_t now, sp_store_rkey *row,
                  sp_error *err)
{
    sp_store_rkey made = {0};
    int rc;

    snprintf(made.address, sizeof(made.address), "%s", address);
    snprintf(made.method, sizeof(made.method), "%s",
             sp_seal_method_name(key->method));
    snprintf(made.fingerprint, sizeof(made.fingerprint), "%s",
             key->fingerprint);
    snprintf(made.subject, sizeof(made.subject), "%s", key->subject);
    made.not_before = key->not_before;
    made.not_after = key->not_after;
    made.imported = now;
    made.data = *data; /* borrowed: the store copies it */

    rc = sp_store_rkey_add(store, &made, err);
    if (rc == SP_OK && row != NULL) {
        for (char *c = made.address; *c != '\0'; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + ('a' - 'A'));
        made.data = (sp_buf)SP_BUF_INIT;
        *row = made;
    }
    return rc;
}

int
sp_store_rkey_list(sp_store *store, const char *address, sp_store_rkey **keys,
                   size_t *count, sp_error *err)
{
    return store->backend->rkey_list(store->impl, address, keys, count, err);
}

int
sp_store_rkey_remove(sp_store *store, const char *address,
                     const char *fingerprint, size_t *removed, sp_error *err)
{
    return store->backend->rkey_remove(store->impl, address, fingerprint,
                                       removed, err);
}

void
sp_store_rkeys_free(sp_store_rkey *keys, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sp_buf_free(&keys[i].data);
    sp_free(keys);
}

int
sp_store_dmarc_batch_begin(sp_store *store, sp_error *err)
{
    return store->backend->dmarc_batch(store->impl, true, false, err);
}

int
sp_store_dmarc_batch_end(sp_store *store, bool commit, sp_error *err)
{
    return store->backend->dmarc_batch(store->impl, false, commit, err);
}

int
sp_store_dmarc_refuse(sp_store *store, const char *source, const char *reason,
                      const void *content, int64_t size, int64_t refused,
                      sp_error *err)
{
    return store->backend->dmarc_refuse(store->impl, source, reason, content,
                                        size, refused, err);
}

int
sp_store_dmarc_rows(sp_store *store, const char *domain, int64_t since,
                    sp_store_dmarc_row_fn *fn, void *arg, sp_error *err)
{
    return store->backend->dmarc_rows(store->impl, domain, since, fn, arg, err);
}

int
sp_store_dmarc_counts(sp_store *store, int64_t *reports, int64_t *records,
                      int64_t *refused, sp_error *err)
{
    return store->backend->dmarc_counts(store->impl, reports, records, refused,
                                        err);
}
