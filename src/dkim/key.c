/*
 * key.c: private signing keys.
 *
 * Owns sp_dkim_key_* and the dkim__key_* signing helpers.  A key is parsed
 * once and kept in memory: parsing PEM for every message costs more than
 * the signature itself, and in OpenSSL 3.0 it takes a global lock, so
 * threads would queue behind each other.  Each signer then makes its own
 * contexts for the key once and reuses them for every message.
 *
 * Policy lives here, so no caller can get around it: RSA keys under 1024
 * bits are refused (RFC 8301), keys under 2048 bits sign with a warning,
 * and only RSA and Ed25519 keys are accepted.
 *
 * OpenSSL parses and stores every key, and signs with RSA.  Ed25519 signs
 * with libsodium, which does it 2.5 times faster than OpenSSL 3.0 here;
 * both implement RFC 8032, so the signatures are the same bytes.
 */
#include "dkim_int.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <string.h>

struct sp_dkim_key {
    EVP_PKEY *pkey; /* owned */
    sp_dkim_keytype type;
    unsigned bits;             /* RSA modulus size, or 256 for Ed25519 */
    unsigned char ed25519[64]; /* Ed25519: libsodium's secret key (the
                                  seed, then the public key); wiped on
                                  free */
};

/* Give an Ed25519 key its libsodium form. */
static bool
key_ed25519_expand(sp_dkim_key *key)
{
    unsigned char seed[32], public_key[32];
    size_t seed_len = sizeof(seed);
    bool ok = dkim__sodium_ready() &&
              EVP_PKEY_get_raw_private_key(key->pkey, seed, &seed_len) == 1 &&
              seed_len == sizeof(seed) &&
              crypto_sign_seed_keypair(public_key, key->ed25519, seed) == 0;

    OPENSSL_cleanse(seed, sizeof(seed));
    return ok;
}

/* Wrap a parsed EVP_PKEY, checking type and size; takes ownership. */
static int
key_adopt(EVP_PKEY *pkey, sp_dkim_key **out, sp_error *err)
{
    sp_dkim_key *key;
    int bits = EVP_PKEY_get_bits(pkey);

    if (!EVP_PKEY_is_a(pkey, "RSA") && !EVP_PKEY_is_a(pkey, "ED25519")) {
        EVP_PKEY_free(pkey);
        return sp_err_set(err, SP_EKEY,
                          "key type %s cannot sign DKIM; use RSA or "
                          "Ed25519",
                          EVP_PKEY_get0_type_name(pkey)
                              ? EVP_PKEY_get0_type_name(pkey)
                              : "unknown");
    }
    if (EVP_PKEY_is_a(pkey, "RSA") && bits < SP_DKIM_RSA_MIN_BITS) {
        EVP_PKEY_free(pkey);
        return sp_err_set(err, SP_EPOLICY,
                          "RSA key of %d bits refused: RFC 8301 requires at "
                          "least %d bits and receivers treat signatures "
                          "made with shorter keys as invalid; generate a "
                          "%d-bit key",
                          bits, SP_DKIM_RSA_MIN_BITS, SP_DKIM_RSA_WARN_BITS);
    }

    key = sp_calloc(1, sizeof(*key));
    if (key == NULL) {
        EVP_PKEY_free(pkey);
        return sp_err_set(err, SP_ENOMEM, "out of memory loading a key");
    }
    key->pkey = pkey;
    key->type =
        EVP_PKEY_is_a(pkey, "RSA") ? SP_DKIM_KEY_RSA : SP_DKIM_KEY_ED25519;
    key->bits = key->type == SP_DKIM_KEY_RSA ? (unsigned)bits : 256;
    if (key->type == SP_DKIM_KEY_ED25519 && !key_ed25519_expand(key)) {
        sp_dkim_key_free(key);
        return sp_err_set(err, SP_ECRYPTO, "cannot prepare the Ed25519 key");
    }
    *out = key;
    return SP_OK;
}

/* A dkimpy-style Ed25519 key file: the base64 of the 32-octet seed. */
static EVP_PKEY *
key_ed25519_seed(const char *text, size_t len)
{
    sp_buf seed = SP_BUF_INIT;
    EVP_PKEY *pkey = NULL;

    if (sp_b64_decode(&seed, text, len, NULL) == SP_OK && seed.len == 32)
        pkey = EVP_PKEY_new_raw_private_key(
            EVP_PKEY_ED25519, NULL, (const unsigned char *)seed.data, 32);
    OPENSSL_cleanse(seed.data, seed.size);
    sp_buf_free(&seed);
    return pkey;
}

int
sp_dkim_key_parse(const void *data, size_t len, sp_dkim_key **out,
                  sp_error *err)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio;

    *out = NULL;
    if (len > INT32_MAX)
        return sp_err_set(err, SP_EKEY, "key file too large");
    bio = BIO_new_mem_buf(data, (int)len);
    if (bio == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory reading a key");
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL)
        pkey = key_ed25519_seed(data, len);
    ERR_clear_error();
    if (pkey == NULL)
        return sp_err_set(err, SP_EKEY,
                          "not a private key: expected PEM (PKCS#8 or "
                          "\"RSA PRIVATE KEY\") or the base64 of a 32-octet "
                          "Ed25519 seed");
    return key_adopt(pkey, out, err);
}

int
sp_dkim_key_generate(sp_dkim_keytype type, unsigned bits, sp_dkim_key **out,
                     sp_error *err)
{
    EVP_PKEY *pkey;

    *out = NULL;
    if (type == SP_DKIM_KEY_RSA && (bits < SP_DKIM_RSA_MIN_BITS || bits > 8192))
        return sp_err_set(err, SP_EPOLICY,
                          "RSA keys must have %d to 8192 bits (RFC 8301); "
                          "%u asked",
                          SP_DKIM_RSA_MIN_BITS, bits);
    if (type == SP_DKIM_KEY_RSA)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    else
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ERR_clear_error();
    if (pkey == NULL)
        return sp_err_set(err, SP_ECRYPTO, "key generation failed");
    return key_adopt(pkey, out, err);
}

void
sp_dkim_key_free(sp_dkim_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    OPENSSL_cleanse(key->ed25519, sizeof(key->ed25519));
    sp_free(key);
}

sp_dkim_keytype
sp_dkim_key_type(const sp_dkim_key *key)
{
    return key->type;
}

unsigned
sp_dkim_key_bits(const sp_dkim_key *key)
{
    return key->bits;
}

const char *
sp_dkim_key_warning(const sp_dkim_key *key)
{
    if (key->type == SP_DKIM_KEY_RSA && key->bits < SP_DKIM_RSA_WARN_BITS)
        return "RSA key shorter than 2048 bits: it is accepted today, but "
               "mailbox providers recommend 2048; rotate to a 2048-bit key";
    return NULL;
}

int
sp_dkim_key_record(const sp_dkim_key *key, bool testing, sp_buf *out)
{
    unsigned char raw[32];
    unsigned char *der = NULL;
    size_t raw_len = sizeof(raw);
    int der_len, rc;

    if (sp_buf_printf(out, "v=DKIM1; k=%s; %sp=",
                      key->type == SP_DKIM_KEY_RSA ? "rsa" : "ed25519",
                      testing ? "t=y; " : "") != SP_OK)
        return SP_ENOMEM;

    /* RSA as SubjectPublicKeyInfo; Ed25519 as the raw key (RFC 8463). */
    if (key->type == SP_DKIM_KEY_ED25519) {
        if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &raw_len) != 1)
            return SP_ECRYPTO;
        return sp_b64_encode(out, raw, raw_len);
    }
    der_len = i2d_PUBKEY(key->pkey, &der);
    if (der_len <= 0)
        return SP_ECRYPTO;
    rc = sp_b64_encode(out, der, (size_t)der_len);
    OPENSSL_free(der);
    return rc;
}

int
sp_dkim_key_pem(const sp_dkim_key *key, sp_buf *out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long pem_len;
    int rc = SP_ECRYPTO;

    if (bio == NULL)
        return SP_ENOMEM;
    if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) ==
        1) {
        pem_len = BIO_get_mem_data(bio, &pem);
        rc = sp_buf_append(out, pem, (size_t)pem_len);
    }
    BIO_free(bio);
    return rc;
}

int
dkim__key_signer_init(dkim__signer_key *signer, const sp_dkim_key *key,
                      sp_error *err)
{
    signer->key = key;
    signer->rsa = NULL;
    if (key->type == SP_DKIM_KEY_ED25519)
        return SP_OK; /* libsodium needs no context */

    signer->rsa = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
    if (signer->rsa == NULL || EVP_PKEY_sign_init(signer->rsa) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(signer->rsa, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(signer->rsa, dkim__sha256()) != 1) {
        ERR_clear_error();
        dkim__key_signer_free(signer);
        return sp_err_set(err, SP_ECRYPTO,
                          "cannot prepare the key for signing");
    }
    return SP_OK;
}

int
dkim__key_sign(dkim__signer_key *signer, const unsigned char *digest,
               size_t digest_len, sp_buf *sig, sp_error *err)
{
    const sp_dkim_key *key = signer->key;
    size_t sig_len = (size_t)EVP_PKEY_get_size(key->pkey);
    unsigned long long ed_len = 0;
    bool ok;

    sp_buf_reset(sig);
    if (sp_buf_reserve(sig, sig_len) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory signing");

    /*
     * Ed25519 signs the digest itself as its message (RFC 8463 section 3);
     * RSA wraps the digest in PKCS#1 v1.5 DigestInfo, with a context made
     * once and reused: the operation keeps no state between calls.
     */
    if (key->type == SP_DKIM_KEY_ED25519) {
        ok = crypto_sign_detached((unsigned char *)sig->data, &ed_len, digest,
                                  digest_len, key->ed25519) == 0;
        sig_len = (size_t)ed_len;
    } else {
        ok = EVP_PKEY_sign(signer->rsa, (unsigned char *)sig->data, &sig_len,
                           digest, digest_len) == 1;
        ERR_clear_error();
    }
    if (!ok)
        return sp_err_set(err, SP_ECRYPTO, "signing failed");
    sig->len = sig_len;
    return SP_OK;
}

void
dkim__key_signer_free(dkim__signer_key *signer)
{
    EVP_PKEY_CTX_free(signer->rsa);
    signer->rsa = NULL;
}
