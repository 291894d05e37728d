/*
 * keycache.c: parsed public keys kept between verifications.
 *
 * Owns sp_dkim_keycache_* and dkim__keycache_pkey.  Turning a key record
 * into an OpenSSL key costs more than verifying an RSA signature with it
 * (OpenSSL 3 builds a decoder for every parse), and a receiver sees the
 * same few keys again and again.  The cache maps the decoded p= bytes and
 * key type to the parsed key, evicting the least recently used entry.
 *
 * It is shared: one mutex guards the table, and keys leave it with their
 * own reference, so a verifier in one thread may keep using a key another
 * thread has just evicted.  Parsing happens outside the lock.
 */
#include "dkim_int.h"

#include <pthread.h>
#include <string.h>

struct cache_entry {
    sp_dkim_keytype type;
    unsigned char *der; /* decoded p=, owned; NULL when the slot is free */
    size_t len;
    EVP_PKEY *pkey; /* owned reference */
    uint64_t used;  /* tick of the last hit, for eviction */
};

struct sp_dkim_keycache {
    pthread_mutex_t lock;
    struct cache_entry *entries; /* owned array of capacity slots */
    size_t capacity;
    uint64_t tick; /* advances on every lookup */
};

int
sp_dkim_keycache_new(size_t capacity, sp_dkim_keycache **out, sp_error *err)
{
    sp_dkim_keycache *cache;

    *out = NULL;
    if (capacity == 0)
        return sp_err_set(err, SP_EINVAL, "a key cache needs room for a key");
    cache = sp_calloc(1, sizeof(*cache));
    if (cache != NULL)
        cache->entries = sp_calloc(capacity, sizeof(*cache->entries));
    if (cache == NULL || cache->entries == NULL) {
        sp_free(cache);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (pthread_mutex_init(&cache->lock, NULL) != 0) {
        sp_free(cache->entries);
        sp_free(cache);
        return sp_err_set(err, SP_ENOMEM, "cannot make a mutex");
    }
    cache->capacity = capacity;
    *out = cache;
    return SP_OK;
}

/* The entry holding this key, or NULL; the caller holds the lock. */
static struct cache_entry *
cache_find(sp_dkim_keycache *cache, const sp_dkim_keyrec *rec)
{
    for (size_t i = 0; i < cache->capacity; i++) {
        struct cache_entry *entry = &cache->entries[i];

        if (entry->der != NULL && entry->type == rec->type &&
            entry->len == rec->public_key.len &&
            memcmp(entry->der, rec->public_key.data, entry->len) == 0)
            return entry;
    }
    return NULL;
}

/* Keep a new key, in a free slot or the least recently used one. */
static void
cache_store(sp_dkim_keycache *cache, const sp_dkim_keyrec *rec, EVP_PKEY *pkey)
{
    struct cache_entry *slot = &cache->entries[0];
    unsigned char *der;

    if (cache_find(cache, rec) != NULL)
        return; /* another thread stored it meanwhile */
    for (size_t i = 0; i < cache->capacity; i++) {
        struct cache_entry *entry = &cache->entries[i];

        if (entry->der == NULL || entry->used < slot->used)
            slot = entry;
        if (entry->der == NULL)
            break;
    }
    der = sp_malloc(rec->public_key.len);
    if (der == NULL || EVP_PKEY_up_ref(pkey) != 1) {
        sp_free(der);
        return; /* not caching costs speed, never correctness */
    }
    sp_free(slot->der);
    EVP_PKEY_free(slot->pkey);
    memcpy(der, rec->public_key.data, rec->public_key.len);
    slot->type = rec->type;
    slot->der = der;
    slot->len = rec->public_key.len;
    slot->pkey = pkey;
    slot->used = ++cache->tick;
}

int
dkim__keycache_pkey(sp_dkim_keycache *cache, const sp_dkim_keyrec *rec,
                    EVP_PKEY **out, sp_error *err)
{
    struct cache_entry *entry;
    int rc;

    if (cache == NULL)
        return dkim__keyrec_pkey(rec, out, err);

    pthread_mutex_lock(&cache->lock);
    entry = cache_find(cache, rec);
    if (entry != NULL && EVP_PKEY_up_ref(entry->pkey) == 1) {
        entry->used = ++cache->tick;
        *out = entry->pkey;
        pthread_mutex_unlock(&cache->lock);
        return SP_OK;
    }
    pthread_mutex_unlock(&cache->lock);

    rc = dkim__keyrec_pkey(rec, out, err);
    if (rc == SP_OK) {
        pthread_mutex_lock(&cache->lock);
        cache_store(cache, rec, *out);
        pthread_mutex_unlock(&cache->lock);
    }
    return rc;
}

void
sp_dkim_keycache_free(sp_dkim_keycache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < cache->capacity; i++) {
        sp_free(cache->entries[i].der);
        EVP_PKEY_free(cache->entries[i].pkey);
    }
    pthread_mutex_destroy(&cache->lock);
    sp_free(cache->entries);
    sp_free(cache);
}
