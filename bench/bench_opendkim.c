/*
 * bench_opendkim.c: the same DKIM work done by libopendkim, the library
 * behind OpenDKIM's filter, for comparison.
 *
 * Owns bench_opendkim_*.  The library is used as the filter uses it: one
 * library handle for the process, then for every message a new handle made
 * with the private key as PEM text (dkim_sign) or for verifying
 * (dkim_verify), the header fields one at a time, the end of the header,
 * the body in chunks, the end of the message, and dkim_free.  The filter
 * gets header fields already split by the MTA; so do we, split once before
 * timing.  Like Debian's configuration, From is oversigned.
 *
 * Key records come from libopendkim's file query method: a file of
 * "name record" lines that it opens and reads for each signature, which is
 * its way of answering without DNS.
 */
#include "bench.h"

#include <opendkim/dkim.h>
#include <stdio.h>
#include <string.h>

#define OPENDKIM_SIGHDR_SIZE 4096 /* a folded field of a 8192-bit key */

struct bench_opendkim {
    DKIM_LIB *lib;        /* owned */
    unsigned long serial; /* message ids, for its logging */
};

struct bench_opendkim_signer {
    bench_opendkim *lib;              /* borrowed */
    const bench_key *key;             /* borrowed */
    dkim_alg_t alg;                   /* DKIM_SIGN_* of the key */
    const bench_message *msg;         /* borrowed */
    char field[OPENDKIM_SIGHDR_SIZE]; /* the last DKIM-Signature field */
    size_t field_len;
};

struct bench_opendkim_verifier {
    bench_opendkim *lib;      /* borrowed */
    const bench_message *msg; /* borrowed, carries one signature */
};

/* Fill why with what libopendkim says about stat on handle dkim. */
static int
opendkim_failed(DKIM *dkim, const char *call, DKIM_STAT stat, char *why)
{
    const char *detail = dkim ? dkim_geterror(dkim) : NULL;

    snprintf(why, BENCH_WHY_SIZE, "%s: %s%s%s", call, dkim_getresultstr(stat),
             detail ? ": " : "", detail ? detail : "");
    return -1;
}

bench_opendkim *
bench_opendkim_new(const char *query_file, char *why)
{
    static const char *const oversign[] = {"from", NULL};
    bench_opendkim *lib = sp_calloc(1, sizeof(*lib));
    dkim_query_t method = DKIM_QUERY_FILE;

    if (lib == NULL || (lib->lib = dkim_init(NULL, NULL)) == NULL) {
        snprintf(why, BENCH_WHY_SIZE, "dkim_init failed");
        sp_free(lib);
        return NULL;
    }
    if (dkim_options(lib->lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method,
                     sizeof(method)) != DKIM_STAT_OK ||
        dkim_options(lib->lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO,
                     (void *)query_file, strlen(query_file)) != DKIM_STAT_OK ||
        dkim_options(lib->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
                     (void *)oversign, sizeof(char **)) != DKIM_STAT_OK) {
        snprintf(why, BENCH_WHY_SIZE, "dkim_options refused a setting");
        bench_opendkim_free(lib);
        return NULL;
    }
    if (!dkim_libfeature(lib->lib, DKIM_FEATURE_ED25519)) {
        snprintf(why, BENCH_WHY_SIZE,
                 "this libopendkim was built without Ed25519");
        bench_opendkim_free(lib);
        return NULL;
    }
    return lib;
}

void
bench_opendkim_free(bench_opendkim *lib)
{
    if (lib == NULL)
        return;
    if (lib->lib != NULL)
        dkim_close(lib->lib);
    sp_free(lib);
}

/* Header fields, end of header, body, end of message: one message. */
static int
opendkim_feed(DKIM *dkim, const bench_message *msg, char *why)
{
    DKIM_STAT stat;

    for (size_t i = 0; i < msg->field_count; i++) {
        const bench_field *field = &msg->fields[i];

        stat = dkim_header(dkim, (u_char *)msg->data + field->offset,
                           field->length);
        if (stat != DKIM_STAT_OK)
            return opendkim_failed(dkim, "dkim_header", stat, why);
    }
    stat = dkim_eoh(dkim);
    if (stat != DKIM_STAT_OK)
        return opendkim_failed(dkim, "dkim_eoh", stat, why);
    for (size_t pos = msg->body; pos < msg->len; pos += BENCH_CHUNK) {
        size_t take = msg->len - pos;

        take = take < BENCH_CHUNK ? take : BENCH_CHUNK;
        stat = dkim_body(dkim, (u_char *)msg->data + pos, take);
        if (stat != DKIM_STAT_OK)
            return opendkim_failed(dkim, "dkim_body", stat, why);
    }
    stat = dkim_eom(dkim, NULL);
    if (stat != DKIM_STAT_OK)
        return opendkim_failed(dkim, "dkim_eom", stat, why);
    return 0;
}

bench_opendkim_signer *
bench_opendkim_signer_new(bench_opendkim *lib, const bench_key *key,
                          const bench_message *msg, char *why)
{
    bench_opendkim_signer *signer = sp_calloc(1, sizeof(*signer));

    if (signer == NULL) {
        snprintf(why, BENCH_WHY_SIZE, "out of memory");
        return NULL;
    }
    signer->lib = lib;
    signer->key = key;
    signer->msg = msg;
    signer->alg = sp_dkim_key_type(key->key) == SP_DKIM_KEY_RSA
                      ? DKIM_SIGN_RSASHA256
                      : DKIM_SIGN_ED25519SHA256;
    return signer;
}

/*
 * Keep the field made by dkim_getsighdr as a whole field: name, value
 * with its folds turned into CRLF (the library folds with LF alone, as
 * milters insert fields), final CRLF.
 */
static int
opendkim_keep_field(bench_opendkim_signer *signer, const char *value, char *why)
{
    size_t out = (size_t)snprintf(signer->field, sizeof(signer->field),
                                  "DKIM-Signature: ");

    for (size_t i = 0; value[i] != '\0'; i++) {
        if (out + 3 >= sizeof(signer->field)) {
            snprintf(why, BENCH_WHY_SIZE, "signature field too long");
            return -1;
        }
        if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r'))
            signer->field[out++] = '\r';
        signer->field[out++] = value[i];
    }
    signer->field[out++] = '\r';
    signer->field[out++] = '\n';
    signer->field[out] = '\0';
    signer->field_len = out;
    return 0;
}

int
bench_opendkim_sign_step(void *state, char *why)
{
    bench_opendkim_signer *signer = state;
    u_char value[OPENDKIM_SIGHDR_SIZE];
    char id[32];
    DKIM_STAT stat;
    DKIM *dkim;
    int rc;

    snprintf(id, sizeof(id), "sign%lu", signer->lib->serial++);
    dkim = dkim_sign(signer->lib->lib, (u_char *)id, NULL,
                     (dkim_sigkey_t)signer->key->pem.data,
                     (u_char *)signer->key->label, (u_char *)BENCH_DOMAIN,
                     DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, signer->alg, -1,
                     &stat);
    if (dkim == NULL)
        return opendkim_failed(NULL, "dkim_sign", stat, why);

    rc = opendkim_feed(dkim, signer->msg, why);
    if (rc == 0) {
        stat = dkim_getsighdr(dkim, value, sizeof(value),
                              strlen("DKIM-Signature: "));
        if (stat != DKIM_STAT_OK)
            rc = opendkim_failed(dkim, "dkim_getsighdr", stat, why);
    }
    if (rc == 0)
        rc = opendkim_keep_field(signer, (const char *)value, why);
    dkim_free(dkim);
    return rc;
}

const char *
bench_opendkim_signature(const bench_opendkim_signer *signer, size_t *len)
{
    *len = signer->field_len;
    return signer->field;
}

void
bench_opendkim_signer_free(bench_opendkim_signer *signer)
{
    sp_free(signer);
}

bench_opendkim_verifier *
bench_opendkim_verifier_new(bench_opendkim *lib, const bench_message *msg,
                            char *why)
{
    bench_opendkim_verifier *verifier = sp_calloc(1, sizeof(*verifier));

    if (verifier == NULL) {
        snprintf(why, BENCH_WHY_SIZE, "out of memory");
        return NULL;
    }
    verifier->lib = lib;
    verifier->msg = msg;
    return verifier;
}

int
bench_opendkim_verify_step(void *state, char *why)
{
    bench_opendkim_verifier *verifier = state;
    DKIM_SIGINFO *sig;
    DKIM_STAT stat;
    DKIM *dkim;
    char id[32];
    int rc;

    snprintf(id, sizeof(id), "verify%lu", verifier->lib->serial++);
    dkim = dkim_verify(verifier->lib->lib, (u_char *)id, NULL, &stat);
    if (dkim == NULL)
        return opendkim_failed(NULL, "dkim_verify", stat, why);
    rc = opendkim_feed(dkim, verifier->msg, why);

    /* dkim_eom said OK; the signature must also have been checked good. */
    sig = rc == 0 ? dkim_getsignature(dkim) : NULL;
    if (rc == 0 && (sig == NULL || !DKIM_SIG_CHECK(sig))) {
        snprintf(why, BENCH_WHY_SIZE, "signature not good: %s",
                 sig ? dkim_sig_geterrorstr(dkim_sig_geterror(sig))
                     : "none found");
        rc = -1;
    }
    dkim_free(dkim);
    return rc;
}

void
bench_opendkim_verifier_free(bench_opendkim_verifier *verifier)
{
    sp_free(verifier);
}
