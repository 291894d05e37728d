/*
 * webhooks.c: sending the events to the endpoints registered with
 * "sealpost webhooks add", on a thread of its own.
 *
 * Owns daemon_webhooks_*.  Each endpoint has a cursor into the event
 * store: the store is the queue, so nothing is lost across a restart and
 * every event is sent at least once.  The thread takes up to
 * WEBHOOK_BATCH events past an endpoint's cursor (of the types it wants),
 * POSTs them as one JSON array with the header
 *
 *   X-Sealpost-Signature: sha256=HEX(HMAC-SHA256(secret, body))
 *
 * and moves the cursor past them only on a 2xx.  A failure (no answer in
 * WEBHOOK_TIMEOUT_S, a refused connection, any other status) is recorded
 * with the endpoint, which is tried again after a pause that doubles
 * from a second up to webhook_retry_max (an hour by default); events it still
 * refuses after WEBHOOK_GIVE_UP_MS of failing are skipped, with a log line, so
 * that one dead endpoint holds nothing for ever.  Mail never waits for any of
 * this: the thread has its own store and key connections.
 *
 * Known limit: endpoints are served one after another, so a slow one
 * delays the others by up to WEBHOOK_TIMEOUT_S a batch.
 */
#include "daemon.h"

#include <curl/curl.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WEBHOOK_BATCH      100
#define WEBHOOK_TIMEOUT_S  10
#define WEBHOOK_IDLE_MS    500
#define WEBHOOK_PAUSE_MS   1000             /* after a first failure */
#define WEBHOOK_GIVE_UP_MS (86400 * 1000LL) /* then events are skipped */

struct daemon_webhooks {
    const sp_config *config;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping; /* under lock */
    bool started;
};

/* When an endpoint may be tried next; the thread's own, by id. */
struct webhook_pause {
    int64_t id;
    int64_t until_ms, pause_ms;
};

/* What one batch for one endpoint holds. */
struct webhook_batch {
    sp_buf body; /* "[event,event]" */
    size_t count;
    int64_t last; /* the last event's cursor */
};

static void
webhook_add_event(void *arg, int64_t cursor, const char *json)
{
    struct webhook_batch *batch = arg;

    if (sp_buf_append(&batch->body, batch->count ? "," : "[", 1) == SP_OK &&
        sp_buf_append(&batch->body, json, strlen(json)) == SP_OK) {
        batch->count++;
        batch->last = cursor;
    }
}

/* The signature header for body, with secret. */
static void
webhook_sign(const sp_buf *secret, const sp_buf *body, char *header,
             size_t size)
{
    unsigned char mac[32];
    unsigned int len = 0;
    size_t used;

    HMAC(EVP_sha256(), secret->data, (int)secret->len,
         (const unsigned char *)body->data, body->len, mac, &len);
    used = (size_t)snprintf(header, size, "X-Sealpost-Signature: sha256=");
    for (unsigned int i = 0; i < len && used + 2 < size; i++, used += 2)
        snprintf(header + used, size - used, "%02x", mac[i]);
}

/* POST body; SP_OK on a 2xx, else why in error. */
static int
webhook_post(CURL *curl, const char *url, const char *signature,
             const sp_buf *body, char *error, size_t size)
{
    struct curl_slist *headers = NULL;
    char curl_error[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode done;

    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, signature);
    headers =
        curl_slist_append(headers, "User-Agent: sealpost/" SEALPOST_VERSION);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body->len);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)WEBHOOK_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    done = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    if (done != CURLE_OK) {
        snprintf(error, size, "%s",
                 curl_error[0] ? curl_error : curl_easy_strerror(done));
        return SP_EIO;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status / 100 == 2)
        return SP_OK;
    snprintf(error, size, "the endpoint answered HTTP %ld", status);
    return SP_EIO;
}

/* The pause record of endpoint id, made when new; NULL out of memory. */
static struct webhook_pause *
webhook_pause_of(struct webhook_pause **pauses, size_t *count, int64_t id)
{
    struct webhook_pause *grown;

    for (size_t i = 0; i < *count; i++)
        if ((*pauses)[i].id == id)
            return &(*pauses)[i];
    grown = sp_realloc(*pauses, (*count + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    *pauses = grown;
    grown[*count] = (struct webhook_pause){.id = id};
    return &grown[(*count)++];
}

/*
 * One batch for hook: send it and record how it went.  True when a full
 * batch went (there may be more at once).
 */
static bool
webhook_serve(sp_keys *keys, CURL *curl, const sp_store_webhook *hook,
              struct webhook_pause *pause, int64_t pause_max_ms)
{
    sp_store *store = sp_keys_store(keys);
    sp_store_event_filter filter = {
        .type = hook->events,
        .after = hook->cursor,
        .limit = WEBHOOK_BATCH,
    };
    struct webhook_batch batch = {.body = SP_BUF_INIT};
    sp_buf secret = SP_BUF_INIT;
    char context[100], signature[120], error[256] = "";
    int64_t now = daemon_now_ms();
    sp_error err;
    int rc;

    rc = sp_store_events_find(store, &filter, webhook_add_event, &batch, &err);
    if (rc == SP_OK && batch.count == 0) {
        sp_buf_free(&batch.body);
        return false;
    }
    if (rc == SP_OK)
        rc = sp_buf_append(&batch.body, "]", 1);
    snprintf(context, sizeof(context), "webhook:%s", hook->name);
    if (rc == SP_OK)
        rc = sp_keys_unseal(keys, context, &hook->sealed, &secret, &err);
    if (rc != SP_OK)
        snprintf(error, sizeof(error), "%.250s", err.text);
    else {
        webhook_sign(&secret, &batch.body, signature, sizeof(signature));
        rc = webhook_post(curl, hook->url, signature, &batch.body, error,
                          sizeof(error));
    }
    if (secret.data != NULL)
        memset(secret.data, 0, secret.len);
    sp_buf_free(&secret);
    sp_buf_free(&batch.body);

    if (rc == SP_OK) {
        pause->pause_ms = pause->until_ms = 0;
        if (sp_store_webhook_progress(store, hook->id, batch.last, 0, "",
                                      &err) != SP_OK)
            sp_log_error("webhook name=%s error=\"%s\"", hook->name, err.text);
        return batch.count == WEBHOOK_BATCH;
    }

    /* Failed: wait longer each time; after a day, skip what it refuses. */
    pause->pause_ms = pause->pause_ms ? pause->pause_ms * 2 : WEBHOOK_PAUSE_MS;
    if (pause->pause_ms > pause_max_ms && pause_max_ms >= WEBHOOK_PAUSE_MS)
        pause->pause_ms = pause_max_ms;
    pause->until_ms = now + pause->pause_ms;
    if (hook->failing_since != 0 &&
        now - hook->failing_since > WEBHOOK_GIVE_UP_MS) {
        sp_log_warning("webhook name=%s skipped=%zu error=\"%s\" "
                       "note=\"failing for over a day\"",
                       hook->name, batch.count, error);
        (void)sp_store_webhook_progress(store, hook->id, batch.last,
                                        hook->failing_since, error, &err);
        return false;
    }
    sp_log_info("webhook name=%s result=failed error=\"%s\" retry_in=%llds",
                hook->name, error, (long long)(pause->pause_ms / 1000));
    (void)sp_store_webhook_progress(
        store, hook->id, hook->cursor,
        hook->failing_since ? hook->failing_since : now, error, &err);
    return false;
}

static void *
webhook_main(void *arg)
{
    struct daemon_webhooks *hooks = arg;
    struct webhook_pause *pauses = NULL;
    size_t pause_count = 0;
    sp_keys *keys = NULL;
    CURL *curl = curl_easy_init();
    bool stopping = false;
    sp_error err;

    (void)pthread_setname_np(pthread_self(), "sp-webhooks");
    if (curl == NULL ||
        sp_keys_open(hooks->config, false, &keys, &err) != SP_OK) {
        sp_log_error("webhooks error=\"%s\" note=\"no events are sent "
                     "until the next start\"",
                     curl ? err.text : "cannot start libcurl");
        stopping = true;
    }
    while (!stopping) {
        sp_store_webhook *list = NULL;
        size_t count = 0;
        bool more = false;

        if (sp_store_webhook_list(sp_keys_store(keys), &list, &count, &err) !=
            SP_OK)
            sp_log_error("webhooks error=\"%s\"", err.text);
        for (size_t i = 0; i < count; i++) {
            struct webhook_pause *pause =
                webhook_pause_of(&pauses, &pause_count, list[i].id);

            if (pause != NULL && daemon_now_ms() >= pause->until_ms)
                more = webhook_serve(keys, curl, &list[i], pause,
                                     hooks->config->webhook_retry_max * 1000) ||
                       more;
        }
        sp_store_webhooks_free(list, count);
        stopping =
            daemon_thread_wait(&hooks->lock, &hooks->wake, &hooks->stopping,
                               more ? 0 : WEBHOOK_IDLE_MS);
    }
    sp_free(pauses);
    sp_keys_close(keys);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    return NULL;
}

struct daemon_webhooks *
daemon_webhooks_start(const sp_config *config, sp_error *err)
{
    struct daemon_webhooks *hooks = sp_calloc(1, sizeof(*hooks));

    if (hooks == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        sp_free(hooks);
        sp_err_set(err, SP_EIO, "cannot start libcurl");
        return NULL;
    }
    hooks->config = config;
    pthread_mutex_init(&hooks->lock, NULL);
    pthread_cond_init(&hooks->wake, NULL);
    if (pthread_create(&hooks->thread, NULL, webhook_main, hooks) != 0) {
        sp_err_set(err, SP_EIO, "cannot start the webhook thread");
        daemon_webhooks_stop(hooks);
        return NULL;
    }
    hooks->started = true;
    return hooks;
}

void
daemon_webhooks_stop(struct daemon_webhooks *hooks)
{
    if (hooks == NULL)
        return;
    pthread_mutex_lock(&hooks->lock);
    hooks->stopping = true;
    pthread_cond_signal(&hooks->wake);
    pthread_mutex_unlock(&hooks->lock);
    if (hooks->started)
        pthread_join(hooks->thread, NULL);
    pthread_mutex_destroy(&hooks->lock);
    pthread_cond_destroy(&hooks->wake);
    curl_global_cleanup();
    sp_free(hooks);
}
