/*
 * crypt.h: the public face of sealpost's crypt module.
 *
 * What it owns today: the master key (master.c), which seals secrets kept
 * at rest, DKIM private keys first, with AES-256-GCM; API keys (apikey.c),
 * made at random and stored as hashes.  Messages encrypted for their
 * recipients, S/MIME and OpenPGP, have their own header, seal.h; the
 * portal's message envelopes will live here too.
 *
 * Secrets never reach a log: error texts name files and reasons, never
 * key material.  Buffers that held secrets are wiped before they are
 * freed.
 */
#ifndef SP_CRYPT_H
#define SP_CRYPT_H

#include "base/base.h"

#define SP_CRYPT_MASTER_BYTES 32

typedef struct sp_crypt_master {
    unsigned char key[SP_CRYPT_MASTER_BYTES]; /* AES-256 key; wiped */
} sp_crypt_master;

/*
 * Load the master key from path, a file of SP_CRYPT_MASTER_BYTES random
 * octets readable by its owner alone (mode 0600); with create, make one
 * when the file does not exist.  A file that others may read, or of the
 * wrong size, is refused (SP_EINVAL) with the reason; SP_EIO when it
 * cannot be read or written.
 */
int sp_crypt_master_load(const char *path, bool create, sp_crypt_master *master,
                         sp_error *err);

void sp_crypt_master_wipe(sp_crypt_master *master);

/*
 * Seal plain with the master key, bound to context (which must be given
 * again to open it: a sealed value moved to another row will not open).
 * Appends "SPS1", a fresh 12-octet nonce, the ciphertext and the 16-octet
 * tag to out.
 */
int sp_crypt_seal(const sp_crypt_master *master, const char *context,
                  const void *plain, size_t len, sp_buf *out, sp_error *err);

/*
 * Open what sp_crypt_seal made, appending the plain text to out (which the
 * caller wipes after use).  SP_ECRYPTO when the value was altered, sealed
 * for another context or with another master key.
 */
int sp_crypt_open(const sp_crypt_master *master, const char *context,
                  const void *sealed, size_t len, sp_buf *out, sp_error *err);

/* ------------------------------------------------------------------------
 * API keys (apikey.c)
 */

#define SP_CRYPT_APIKEY_SIZE 56 /* "sp_" + 52 base32 characters + NUL */

/*
 * Make a new API key: "sp_" and 256 random bits in lower-case base32, so
 * it survives copying through shells, URLs and configuration files.
 */
int sp_crypt_apikey_new(char key[SP_CRYPT_APIKEY_SIZE], sp_error *err);

/*
 * The hash stored for a key: SHA-256.  Keys carry 256 random bits, so a
 * slow password hash would add nothing but latency to every login.
 */
void sp_crypt_apikey_hash(const char *key, size_t len, unsigned char hash[32]);

#endif /* SP_CRYPT_H */
