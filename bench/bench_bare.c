/*
 * bench_bare.c: the bare signature operation, timed in the same rounds as
 * the libraries.
 *
 * Owns bench_bare_*.  `openssl speed`, which bench/run also runs, gives
 * the machine's limit, but in its own seconds: on a shared machine the
 * load can differ between those seconds and ours.  This job does what
 * openssl speed does, one RSA-2048 or Ed25519 signature (or verification)
 * of a SHA-256 digest with a key loaded once and a context reused, inside
 * dkim_bench's interleaved rounds, so the ratio of sealpost to it is
 * measured under the same load.
 */
#include "bench.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>

struct bench_bare {
    EVP_PKEY *pkey;           /* owned, parsed from the key's PEM */
    bool verifying;           /* verify the signature instead of making it */
    bool rsa;                 /* RSA-2048; otherwise Ed25519 */
    EVP_PKEY_CTX *rsa_ctx;    /* RSA: set up once for the operation */
    EVP_MD_CTX *ed_ctx;       /* Ed25519: set up once for the operation */
    unsigned char digest[32]; /* what is signed: a SHA-256 digest */
    unsigned char sig[512];   /* made once for verifying, else scratch */
    size_t sig_len;
};

/* Set up the contexts for signing or verifying; false on failure. */
static bool
bare_contexts(bench_bare *bare)
{
    if (bare->rsa) {
        bare->rsa_ctx = EVP_PKEY_CTX_new(bare->pkey, NULL);
        return bare->rsa_ctx != NULL &&
               (bare->verifying ? EVP_PKEY_verify_init(bare->rsa_ctx)
                                : EVP_PKEY_sign_init(bare->rsa_ctx)) == 1 &&
               EVP_PKEY_CTX_set_rsa_padding(bare->rsa_ctx, RSA_PKCS1_PADDING) ==
                   1 &&
               EVP_PKEY_CTX_set_signature_md(bare->rsa_ctx, EVP_sha256()) == 1;
    }
    bare->ed_ctx = EVP_MD_CTX_new();
    return bare->ed_ctx != NULL &&
           (bare->verifying ? EVP_DigestVerifyInit(bare->ed_ctx, NULL, NULL,
                                                   NULL, bare->pkey)
                            : EVP_DigestSignInit(bare->ed_ctx, NULL, NULL, NULL,
                                                 bare->pkey)) == 1;
}

/* Make one signature into bare->sig; false on failure. */
static bool
bare_sign(bench_bare *bare, EVP_PKEY_CTX *rsa_ctx, EVP_MD_CTX *ed_ctx)
{
    bare->sig_len = sizeof(bare->sig);
    if (bare->rsa)
        return EVP_PKEY_sign(rsa_ctx, bare->sig, &bare->sig_len, bare->digest,
                             sizeof(bare->digest)) == 1;
    return EVP_DigestSign(ed_ctx, bare->sig, &bare->sig_len, bare->digest,
                          sizeof(bare->digest)) == 1;
}

/* Load the key; when verifying, make the signature to verify. */
static bool
bare_prepare(bench_bare *bare, const bench_key *key)
{
    BIO *pem = BIO_new_mem_buf(key->pem.data, (int)key->pem.len);
    bool ok;

    bare->pkey = pem ? PEM_read_bio_PrivateKey(pem, NULL, NULL, NULL) : NULL;
    BIO_free(pem);
    if (bare->pkey == NULL)
        return false;
    bare->rsa = EVP_PKEY_is_a(bare->pkey, "RSA");
    for (size_t i = 0; i < sizeof(bare->digest); i++)
        bare->digest[i] = (unsigned char)(i * 7 + 1);
    if (!bare->verifying)
        return bare_contexts(bare);

    /* A signing context used once, then the verifying ones. */
    bare->verifying = false;
    ok = bare_contexts(bare) && bare_sign(bare, bare->rsa_ctx, bare->ed_ctx);
    EVP_PKEY_CTX_free(bare->rsa_ctx);
    EVP_MD_CTX_free(bare->ed_ctx);
    bare->rsa_ctx = NULL;
    bare->ed_ctx = NULL;
    bare->verifying = true;
    return ok && bare_contexts(bare);
}

bench_bare *
bench_bare_new(const bench_key *key, bool verifying, char *why)
{
    bench_bare *bare = sp_calloc(1, sizeof(*bare));

    if (bare == NULL) {
        snprintf(why, BENCH_WHY_SIZE, "out of memory");
        return NULL;
    }
    bare->verifying = verifying;
    if (!bare_prepare(bare, key)) {
        ERR_clear_error();
        snprintf(why, BENCH_WHY_SIZE, "cannot set up a bare %s %s", key->label,
                 verifying ? "verification" : "signature");
        bench_bare_free(bare);
        return NULL;
    }
    return bare;
}

int
bench_bare_step(void *state, char *why)
{
    bench_bare *bare = state;
    int ok;

    if (!bare->verifying)
        ok = bare_sign(bare, bare->rsa_ctx, bare->ed_ctx);
    else if (bare->rsa)
        ok = EVP_PKEY_verify(bare->rsa_ctx, bare->sig, bare->sig_len,
                             bare->digest, sizeof(bare->digest)) == 1;
    else
        ok = EVP_DigestVerify(bare->ed_ctx, bare->sig, bare->sig_len,
                              bare->digest, sizeof(bare->digest)) == 1;
    if (!ok) {
        ERR_clear_error();
        snprintf(why, BENCH_WHY_SIZE, "OpenSSL refused the operation");
        return -1;
    }
    return 0;
}

void
bench_bare_free(bench_bare *bare)
{
    if (bare == NULL)
        return;
    EVP_PKEY_CTX_free(bare->rsa_ctx);
    EVP_MD_CTX_free(bare->ed_ctx);
    EVP_PKEY_free(bare->pkey);
    sp_free(bare);
}
