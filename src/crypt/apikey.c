/*
 * apikey.c: API keys, the secrets applications authenticate with.
 *
 * Owns sp_crypt_apikey_new and sp_crypt_apikey_hash.  A key is shown once,
 * when made; sealpost keeps only its SHA-256, so a copy of the store does
 * not reveal a key that could be used.
 */
#include "crypt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

int
sp_crypt_apikey_new(char key[SP_CRYPT_APIKEY_SIZE], sp_error *err)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char random[32];
    size_t out = 3;
    uint32_t bits = 0;
    int held = 0;

    if (RAND_bytes(random, sizeof(random)) != 1)
        return sp_err_set(err, SP_ECRYPTO, "no random bytes for an API key");
    key[0] = 's';
    key[1] = 'p';
    key[2] = '_';

    /* Base32: five bits a character, the last character padded. */
    for (size_t i = 0; i < sizeof(random); i++) {
        bits = bits << 8 | random[i];
        held += 8;
        while (held >= 5) {
            held -= 5;
            key[out++] = alphabet[(bits >> held) & 31];
        }
    }
    if (held > 0)
        key[out++] = alphabet[(bits << (5 - held)) & 31];
    key[out] = '\0';
    OPENSSL_cleanse(random, sizeof(random));
    return SP_OK;
}

void
sp_crypt_apikey_hash(const char *key, size_t len, unsigned char hash[32])
{
    unsigned size = 32;

    if (EVP_Digest(key, len, hash, &size, EVP_sha256(), NULL) != 1)
        memset(hash, 0, 32);
}
