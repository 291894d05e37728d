/*
 * signer.c: DKIM signing at acceptance, on a pool of worker threads, so
 * that RSA never runs on the event loop.
 *
 * Owns daemon_signer_*.  The loop hands over a finished message; a
 * worker finds its signing domain (the domain of the From address),
 * signs it with every active key of that domain (RSA and Ed25519 where
 * both exist) and calls the job's done function on its own thread with
 * the DKIM-Signature fields to prepend and the store ids of the keys
 * used.  A message whose domain has no active key, or is not one of
 * dkim_domains, goes on unsigned.
 *
 * Keys: the active keys of every configured domain are read from the
 * store and opened once into a key set, which workers share; reloading
 * (after a lifecycle check) swaps in a new set while jobs in flight
 * finish with the old one, freed when its last user lets go.  Nothing
 * here logs but a failed last flush: the caller logs what done reports.
 *
 * Which keys signed a message is kept with it in the spool, so a key
 * retires only when no queued message carries its signature.  The key
 * store's count of signatures and latest x= (which keeps a retiring key
 * published until its signatures have expired) are tallied here and
 * written by daemon_signer_flush: a store commit per message would cost
 * a flush each.  A crash loses the tally since the last flush; the x=
 * it held is at most a flush interval later than the one stored, and a
 * key only signs while active, long before it may retire.
 */
#include "daemon.h"

#include "mail/mail.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SIGNER_MAX_KEYS    4 /* per domain: RSA and Ed25519, and spares */
#define SIGNER_MAX_THREADS 64

struct signer_domain {
    char name[254];
    size_t count;
    int64_t ids[SIGNER_MAX_KEYS];
    char selectors[SIGNER_MAX_KEYS][64];
    sp_dkim_key *keys[SIGNER_MAX_KEYS];
};

/* The keys of one moment; shared by workers, freed by its last user. */
struct signer_set {
    atomic_int users;
    struct signer_domain *domains;
    size_t count;
};

struct signer_job {
    struct signer_job *next;
    const char *data; /* the message, borrowed until done */
    size_t len;
    daemon_signer_done_fn done;
    void *arg;
};

/* Signatures made by one key since the last flush. */
struct signer_tally {
    int64_t id;     /* the key's store id */
    int64_t count;  /* signatures made */
    int64_t expiry; /* the latest x= among them */
};

struct daemon_signer {
    const sp_config *config;
    sp_keys *keys;

    pthread_mutex_t tally_lock;
    struct signer_tally *tally; /* under tally_lock */
    size_t tally_count, tally_capacity;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct signer_job *head, **tail; /* waiting jobs, under lock */
    bool stopping;                   /* under lock */
    struct signer_set *set;          /* under lock */

    pthread_t threads[SIGNER_MAX_THREADS];
    size_t thread_count;
};

/* ------------------------------------------------------------------------
 * Key sets
 */

static void
set_release(struct signer_set *set)
{
    if (set == NULL || atomic_fetch_sub(&set->users, 1) != 1)
        return;
    for (size_t i = 0; i < set->count; i++)
        for (size_t k = 0; k < set->domains[i].count; k++)
            sp_dkim_key_free(set->domains[i].keys[k]);
    sp_free(set->domains);
    sp_free(set);
}

/* Open the active keys of one domain into slot. */
static int
set_load_domain(struct daemon_signer *signer, const char *name,
                struct signer_domain *slot, sp_error *err)
{
    sp_store_key *rows = NULL;
    size_t count = 0;
    int rc;

    snprintf(slot->name, sizeof(slot->name), "%s", name);
    rc = sp_store_key_list(sp_keys_store(signer->keys), name, &rows, &count,
                           err);
    for (size_t i = 0; rc == SP_OK && i < count; i++) {
        if (rows[i].state != SP_STORE_KEY_ACTIVE ||
            slot->count == SIGNER_MAX_KEYS)
            continue;
        rc = sp_keys_private(signer->keys, &rows[i], &slot->keys[slot->count],
                             err);
        if (rc != SP_OK)
            break;
        slot->ids[slot->count] = rows[i].id;
        snprintf(slot->selectors[slot->count], sizeof(slot->selectors[0]), "%s",
                 rows[i].selector);
        slot->count++;
    }
    sp_store_keys_free(rows, count);
    return rc;
}

int
daemon_signer_reload(struct daemon_signer *signer, sp_error *err)
{
    const sp_config_list *names = &signer->config->dkim_domains;
    struct signer_set *set = sp_calloc(1, sizeof(*set)), *old;
    int rc = SP_OK;

    if (set == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    atomic_init(&set->users, 1);
    set->domains = sp_calloc(names->count + 1, sizeof(*set->domains));
    if (set->domains == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == SP_OK && i < names->count; i++) {
        rc = set_load_domain(signer, names->items[i], &set->domains[i], err);
        set->count = i + 1;
    }
    if (rc != SP_OK) {
        set_release(set);
        return rc;
    }

    pthread_mutex_lock(&signer->lock);
    old = signer->set;
    signer->set = set;
    pthread_mutex_unlock(&signer->lock);
    set_release(old);
    return SP_OK;
}

/* The current set, with a use taken; the caller releases it. */
static struct signer_set *
set_take(struct daemon_signer *signer)
{
    struct signer_set *set;

    pthread_mutex_lock(&signer->lock);
    set = signer->set;
    if (set != NULL)
        atomic_fetch_add(&set->users, 1);
    pthread_mutex_unlock(&signer->lock);
    return set;
}

/* ------------------------------------------------------------------------
 * The tally of signatures made
 */

/* Count count signatures of key id expiring at expiry; caller locks. */
static void
tally_add(struct daemon_signer *signer, int64_t id, int64_t count,
          int64_t expiry)
{
    struct signer_tally *grown;
    size_t i = 0;

    while (i < signer->tally_count && signer->tally[i].id != id)
        i++;
    if (i == signer->tally_count) {
        if (i == signer->tally_capacity) {
            size_t capacity = signer->tally_capacity * 2 + 8;

            grown = sp_realloc(signer->tally, capacity * sizeof(*grown));
            if (grown == NULL)
                return; /* the count is lost, the spool still knows */
            signer->tally = grown;
            signer->tally_capacity = capacity;
        }
        signer->tally[i] = (struct signer_tally){.id = id};
        signer->tally_count++;
    }
    signer->tally[i].count += count;
    if (expiry > signer->tally[i].expiry)
        signer->tally[i].expiry = expiry;
}

int
daemon_signer_flush(struct daemon_signer *signer, sp_store *store,
                    sp_error *err)
{
    struct signer_tally *tally;
    size_t count;
    int rc = SP_OK;

    pthread_mutex_lock(&signer->tally_lock);
    tally = signer->tally;
    count = signer->tally_count;
    signer->tally = NULL;
    signer->tally_count = signer->tally_capacity = 0;
    pthread_mutex_unlock(&signer->tally_lock);

    /* What cannot be written now is kept for the next flush. */
    for (size_t i = 0; i < count; i++) {
        if (rc == SP_OK)
            rc = sp_store_key_signed(store, tally[i].id, tally[i].count,
                                     tally[i].expiry, NULL, err);
        if (rc != SP_OK) {
            pthread_mutex_lock(&signer->tally_lock);
            tally_add(signer, tally[i].id, tally[i].count, tally[i].expiry);
            pthread_mutex_unlock(&signer->tally_lock);
        }
    }
    sp_free(tally);
    return rc;
}

/* ------------------------------------------------------------------------
 * Signing
 */

/* The signing domain of a message: its From address's domain. */
static int
sign_domain(const char *data, size_t len, char *domain, size_t size,
            sp_error *err)
{
    sp_mail_header header = SP_MAIL_HEADER_INIT;
    size_t scanned = 0, end = sp_mail_header_end(data, len, &scanned);
    const sp_mail_field *from = NULL;
    size_t froms = 0;
    int rc;

    rc = sp_mail_header_index(&header, data, end ? end : len);
    for (size_t i = 0; rc == SP_OK && i < header.count; i++)
        if (sp_mail_field_is(&header.fields[i], data, "from", 4)) {
            from = &header.fields[i];
            froms++;
        }
    if (rc != SP_OK)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    else if (froms != 1)
        rc = sp_err_set(err, SP_EPOLICY,
                        "the message has %s From field; RFC 5322 asks for "
                        "exactly one, and DKIM signs it",
                        froms == 0 ? "no" : "more than one");
    else if (sp_mail_from_domain(data + from->offset + from->colon + 1,
                                 from->length - from->colon - 1, domain,
                                 size) != SP_OK)
        rc = sp_err_set(err, SP_EPOLICY,
                        "the From field must hold exactly one address with "
                        "a domain name, the domain it is signed for");
    sp_mail_header_free(&header);
    return rc;
}

/* Sign one message with the keys of its domain; done reports. */
/* Give job's owner what signing made (keys NULL: no signature). */
static void
sign_tell(struct signer_job *job, int rc, const char *domain,
          const sp_buf *fields, const struct signer_domain *keys,
          const sp_error *err)
{
    const char *selectors[SIGNER_MAX_KEYS];
    daemon_signed made = {
        .domain = rc == SP_OK ? domain : "",
        .fields = fields,
        .key_ids = keys != NULL ? keys->ids : NULL,
        .selectors = selectors,
        .key_count = keys != NULL ? keys->count : 0,
    };

    for (size_t i = 0; i < made.key_count; i++)
        selectors[i] = keys->selectors[i];
    job->done(job->arg, rc, &made, rc == SP_OK ? NULL : err);
}

static void
sign_job(struct daemon_signer *signer, struct signer_job *job)
{
    sp_dkim_sign_spec specs[SIGNER_MAX_KEYS];
    const struct signer_domain *keys = NULL;
    struct signer_set *set = NULL;
    sp_buf fields = SP_BUF_INIT;
    sp_dkim_sign *sign = NULL;
    char domain[254];
    sp_error err;
    int rc;

    sp_err_clear(&err);
    rc = sign_domain(job->data, job->len, domain, sizeof(domain), &err);
    if (rc == SP_OK)
        set = set_take(signer);
    for (size_t i = 0; set != NULL && i < set->count; i++)
        if (strcmp(set->domains[i].name, domain) == 0)
            keys = &set->domains[i];

    /* Specs for every key of the domain; none: the message goes on. */
    for (size_t i = 0; keys != NULL && i < keys->count; i++)
        specs[i] = (sp_dkim_sign_spec){
            .domain = keys->name,
            .selector = keys->selectors[i],
            .key = keys->keys[i],
            .header_canon = SP_DKIM_RELAXED,
            .body_canon = SP_DKIM_RELAXED,
            .expire_after = signer->config->dkim_signature_expiry,
        };
    if (rc == SP_OK && keys != NULL && keys->count > 0) {
        int64_t now = (int64_t)time(NULL);

        rc = sp_dkim_sign_new(specs, keys->count, now, &sign, &err);
        if (rc == SP_OK)
            rc = sp_dkim_sign_feed(sign, job->data, job->len, &err);
        if (rc == SP_OK)
            rc = sp_dkim_sign_finish(sign, &fields, &err);
        sp_dkim_sign_free(sign);

        pthread_mutex_lock(&signer->tally_lock);
        for (size_t i = 0; rc == SP_OK && i < keys->count; i++)
            tally_add(signer, keys->ids[i], 1,
                      specs[i].expire_after ? now + specs[i].expire_after : 0);
        pthread_mutex_unlock(&signer->tally_lock);
    }

    sign_tell(job, rc, domain, &fields, rc == SP_OK ? keys : NULL, &err);
    sp_buf_free(&fields);
    set_release(set);
}

static void *
signer_main(void *arg)
{
    struct daemon_signer *signer = arg;

    (void)pthread_setname_np(pthread_self(), "sp-dkim-sign");
    pthread_mutex_lock(&signer->lock);
    for (;;) {
        struct signer_job *job = signer->head;

        if (job == NULL) {
            if (signer->stopping)
                break;
            pthread_cond_wait(&signer->wake, &signer->lock);
            continue;
        }
        signer->head = job->next;
        if (signer->head == NULL)
            signer->tail = &signer->head;
        pthread_mutex_unlock(&signer->lock);
        sign_job(signer, job);
        sp_free(job);
        pthread_mutex_lock(&signer->lock);
    }
    pthread_mutex_unlock(&signer->lock);
    return NULL;
}

/* ------------------------------------------------------------------------
 * The pool
 */

int
daemon_signer_start(const sp_config *config, sp_keys *keys,
                    struct daemon_signer **out, sp_error *err)
{
    struct daemon_signer *signer = sp_calloc(1, sizeof(*signer));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = cores < 1                    ? 1
                     : cores > SIGNER_MAX_THREADS ? SIGNER_MAX_THREADS
                                                  : (size_t)cores;
    int rc;

    *out = NULL;
    if (signer == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    signer->config = config;
    signer->keys = keys;
    signer->tail = &signer->head;
    pthread_mutex_init(&signer->lock, NULL);
    pthread_mutex_init(&signer->tally_lock, NULL);
    pthread_cond_init(&signer->wake, NULL);
    rc = daemon_signer_reload(signer, err);
    for (size_t i = 0; rc == SP_OK && i < threads; i++) {
        if (pthread_create(&signer->threads[i], NULL, signer_main, signer) != 0)
            rc = sp_err_set(err, SP_EIO, "cannot start a signing thread");
        else
            signer->thread_count++;
    }
    if (rc != SP_OK) {
        daemon_signer_stop(signer, NULL);
        return rc;
    }
    *out = signer;
    return SP_OK;
}

int
daemon_signer_submit(struct daemon_signer *signer, const char *data, size_t len,
                     daemon_signer_done_fn done, void *arg)
{
    struct signer_job *job = sp_calloc(1, sizeof(*job));

    if (job == NULL)
        return SP_ENOMEM;
    job->data = data;
    job->len = len;
    job->done = done;
    job->arg = arg;
    pthread_mutex_lock(&signer->lock);
    *signer->tail = job;
    signer->tail = &job->next;
    pthread_cond_signal(&signer->wake);
    pthread_mutex_unlock(&signer->lock);
    return SP_OK;
}

size_t
daemon_signer_key_count(struct daemon_signer *signer, const char *domain)
{
    struct signer_set *set = set_take(signer);
    size_t count = 0;

    for (size_t i = 0; set != NULL && i < set->count; i++)
        if (strcasecmp(set->domains[i].name, domain) == 0)
            count = set->domains[i].count;
    set_release(set);
    return count;
}

void
daemon_signer_stop(struct daemon_signer *signer, sp_store *store)
{
    sp_error err;

    if (signer == NULL)
        return;
    pthread_mutex_lock(&signer->lock);
    signer->stopping = true;
    pthread_cond_broadcast(&signer->wake);
    pthread_mutex_unlock(&signer->lock);
    for (size_t i = 0; i < signer->thread_count; i++)
        pthread_join(signer->threads[i], NULL);
    if (store != NULL && daemon_signer_flush(signer, store, &err) != SP_OK)
        sp_log_error("dkim_tally error=\"%s\"", err.text);
    set_release(signer->set);
    sp_free(signer->tally);
    pthread_mutex_destroy(&signer->tally_lock);
    pthread_mutex_destroy(&signer->lock);
    pthread_cond_destroy(&signer->wake);
    sp_free(signer);
}
