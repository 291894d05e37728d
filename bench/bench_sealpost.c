/*
 * bench_sealpost.c: sealpost's side of the DKIM benchmark.
 *
 * Owns bench_sealpost_*.  Signing is done the way sealpostd does it: the
 * key parsed once, one signer made once and reset for every message.
 * Verifying makes a verifier per message, as the public API requires, and
 * answers key lookups from records held in memory, so the figure is the
 * engine's work without DNS; parsed keys are kept in a key cache between
 * messages, as the CLI and the daemon keep them.  Messages are fed BENCH_CHUNK
 * bytes at a time.
 *
 * Every step checks its outcome: a signing error, or a verification that
 * is anything but a single "pass", stops the benchmark with the reason.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct bench_sealpost_signer {
    sp_dkim_sign *sign;       /* owned, reused for every message */
    const bench_message *msg; /* borrowed */
    int64_t now;              /* t= of every signature */
    sp_buf field;             /* the last DKIM-Signature field */
};

struct bench_sealpost_verifier {
    const bench_key *keys; /* borrowed, the records to answer with */
    size_t key_count;
    const bench_message *msg; /* borrowed, carries one signature */
    sp_dkim_verify_opts opts; /* lookup answers from keys */
    sp_dkim_keycache *cache;  /* owned, parsed keys between messages */
};

bench_sealpost_signer *
bench_sealpost_signer_new(const bench_key *key, const bench_message *msg,
                          char *why)
{
    bench_sealpost_signer *signer = sp_calloc(1, sizeof(*signer));
    sp_dkim_sign_spec spec = {
        .domain = BENCH_DOMAIN,
        .selector = key->label,
        .key = key->key,
        .header_canon = SP_DKIM_RELAXED,
        .body_canon = SP_DKIM_RELAXED,
    };
    sp_error err;

    if (signer == NULL) {
        snprintf(why, BENCH_WHY_SIZE, "out of memory");
        return NULL;
    }
    signer->msg = msg;
    signer->now = (int64_t)time(NULL);
    if (sp_dkim_sign_new(&spec, 1, signer->now, &signer->sign, &err) != SP_OK) {
        snprintf(why, BENCH_WHY_SIZE, "sp_dkim_sign_new: %s", err.text);
        sp_free(signer);
        return NULL;
    }
    return signer;
}

int
bench_sealpost_sign_step(void *state, char *why)
{
    bench_sealpost_signer *signer = state;
    const bench_message *msg = signer->msg;
    sp_error err;

    sp_dkim_sign_reset(signer->sign, signer->now);
    for (size_t pos = 0; pos < msg->len; pos += BENCH_CHUNK) {
        size_t take = msg->len - pos;

        take = take < BENCH_CHUNK ? take : BENCH_CHUNK;
        if (sp_dkim_sign_feed(signer->sign, msg->data + pos, take, &err) !=
            SP_OK) {
            snprintf(why, BENCH_WHY_SIZE, "sp_dkim_sign_feed: %s", err.text);
            return -1;
        }
    }
    sp_buf_reset(&signer->field);
    if (sp_dkim_sign_finish(signer->sign, &signer->field, &err) != SP_OK) {
        snprintf(why, BENCH_WHY_SIZE, "sp_dkim_sign_finish: %s", err.text);
        return -1;
    }
    return 0;
}

const char *
bench_sealpost_signature(const bench_sealpost_signer *signer, size_t *len)
{
    *len = signer->field.len;
    return signer->field.data;
}

void
bench_sealpost_signer_free(bench_sealpost_signer *signer)
{
    if (signer == NULL)
        return;
    sp_dkim_sign_free(signer->sign);
    sp_buf_free(&signer->field);
    sp_free(signer);
}

/* The key lookup: answer from the records in memory, as a cache would. */
static void
sealpost_lookup(void *arg, const char *name, sp_dkim_txt *answer)
{
    const bench_sealpost_verifier *verifier = arg;
    size_t name_len = strlen(name);

    /* The engine may or may not write the root's final dot. */
    if (name_len > 0 && name[name_len - 1] == '.')
        name_len--;
    answer->status = SP_DKIM_DNS_NXDOMAIN;
    answer->count = 0;
    for (size_t i = 0; i < verifier->key_count; i++) {
        const bench_key *key = &verifier->keys[i];

        if (strlen(key->dns_name) != name_len ||
            strncasecmp(key->dns_name, name, name_len) != 0)
            continue;
        answer->status = SP_DKIM_DNS_OK;
        answer->count = 1;
        answer->record[0] = key->record.data;
        answer->length[0] = key->record.len;
        return;
    }
}

bench_sealpost_verifier *
bench_sealpost_verifier_new(const bench_key *keys, size_t count,
                            const bench_message *msg, char *why)
{
    bench_sealpost_verifier *verifier = sp_calloc(1, sizeof(*verifier));

    if (verifier == NULL) {
        snprintf(why, BENCH_WHY_SIZE, "out of memory");
        return NULL;
    }
    verifier->keys = keys;
    verifier->key_count = count;
    verifier->msg = msg;
    verifier->opts.lookup = sealpost_lookup;
    verifier->opts.lookup_arg = verifier;
    verifier->opts.now = (int64_t)time(NULL);
    if (sp_dkim_keycache_new(16, &verifier->cache, NULL) != SP_OK) {
        snprintf(why, BENCH_WHY_SIZE, "out of memory");
        sp_free(verifier);
        return NULL;
    }
    verifier->opts.keycache = verifier->cache;
    return verifier;
}

/* Feed the whole message and finish; 0 or -1 with why filled. */
static int
sealpost_verify_run(sp_dkim_verify *verify, const bench_message *msg, char *why)
{
    sp_error err;

    for (size_t pos = 0; pos < msg->len; pos += BENCH_CHUNK) {
        size_t take = msg->len - pos;

        take = take < BENCH_CHUNK ? take : BENCH_CHUNK;
        if (sp_dkim_verify_feed(verify, msg->data + pos, take, &err) != SP_OK) {
            snprintf(why, BENCH_WHY_SIZE, "sp_dkim_verify_feed: %s", err.text);
            return -1;
        }
    }
    if (sp_dkim_verify_finish(verify, &err) != SP_OK) {
        snprintf(why, BENCH_WHY_SIZE, "sp_dkim_verify_finish: %s", err.text);
        return -1;
    }
    return 0;
}

int
bench_sealpost_verify_step(void *state, char *why)
{
    bench_sealpost_verifier *verifier = state;
    const sp_dkim_result *result;
    sp_dkim_verify *verify;
    sp_error err;
    int rc;

    if (sp_dkim_verify_new(&verifier->opts, &verify, &err) != SP_OK) {
        snprintf(why, BENCH_WHY_SIZE, "sp_dkim_verify_new: %s", err.text);
        return -1;
    }
    rc = sealpost_verify_run(verify, verifier->msg, why);

    /* Exactly one signature, and it passes. */
    if (rc == 0 && sp_dkim_verify_count(verify) != 1) {
        snprintf(why, BENCH_WHY_SIZE, "%zu signatures found instead of 1",
                 sp_dkim_verify_count(verify));
        rc = -1;
    }
    if (rc == 0) {
        result = sp_dkim_verify_result(verify, 0);
        if (result->status != SP_DKIM_PASS) {
            snprintf(why, BENCH_WHY_SIZE, "verification gave %s (%s): %.300s",
                     sp_dkim_status_name(result->status),
                     sp_dkim_reason_word(result->reason), result->detail);
            rc = -1;
        }
    }
    sp_dkim_verify_free(verify);
    return rc;
}

void
bench_sealpost_verifier_free(bench_sealpost_verifier *verifier)
{
    if (verifier != NULL)
        sp_dkim_keycache_free(verifier->cache);
    sp_free(verifier);
}
