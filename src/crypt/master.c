/*
 * master.c: the master key and the values it seals.
 *
 * Owns sp_crypt_master_* and sp_crypt_seal/open.  The key is a file of 32
 * random octets kept outside the database, so a copy of the database alone
 * reveals no private key.  Each value is sealed with AES-256-GCM under a
 * fresh random nonce, the context (say "dkim example.com sp2027q1r") as
 * additional data, and a four-octet format tag that says which scheme made
 * it, so the scheme can change without guessing at old values.
 */
#include "crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_TAG   "SPS1"
#define SEAL_NONCE 12
#define SEAL_MAC   16

/* Make a new key file; O_EXCL, so an existing file is never replaced. */
static int
master_create(const char *path, sp_crypt_master *master, sp_error *err)
{
    int fd, saved;
    ssize_t put;

    if (RAND_bytes(master->key, sizeof(master->key)) != 1)
        return sp_err_set(err, SP_ECRYPTO, "no random bytes for a master key");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_err_set(err, SP_EIO, "%s: %s", path, strerror(errno));
    put = write(fd, master->key, sizeof(master->key));
    saved = errno;
    if (put != (ssize_t)sizeof(master->key) || fsync(fd) != 0) {
        close(fd);
        unlink(path);
        return sp_err_set(err, SP_EIO, "%s: %s", path,
                          put < 0 ? strerror(saved) : "short write");
    }
    close(fd);
    return SP_OK;
}

int
sp_crypt_master_load(const char *path, bool create, sp_crypt_master *master,
                     sp_error *err)
{
    struct stat st;
    ssize_t got;
    int fd;

    memset(master, 0, sizeof(*master));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create)
        return master_create(path, master, err);
    if (fd < 0)
        return sp_err_set(err, SP_EIO, "master key %s: %s", path,
                          strerror(errno));

    /* Refuse a key others could have read: it would no longer be secret. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
        close(fd);
        return sp_err_set(err, SP_EINVAL,
                          "master key %s must be a file of its owner, mode "
                          "0600 (chmod 600 %s)",
                          path, path);
    }
    got = read(fd, master->key, sizeof(master->key));
    close(fd);
    if (got != (ssize_t)sizeof(master->key) ||
        st.st_size != (off_t)sizeof(master->key)) {
        sp_crypt_master_wipe(master);
        return sp_err_set(err, SP_EINVAL,
                          "master key %s must hold exactly %d octets", path,
                          SP_CRYPT_MASTER_BYTES);
    }
    return SP_OK;
}

void
sp_crypt_master_wipe(sp_crypt_master *master)
{
    OPENSSL_cleanse(master->key, sizeof(master->key));
}

/* Run AES-256-GCM one way; returns SP_OK or SP_ECRYPTO. */
static int
seal_cipher(bool encrypt, const sp_crypt_master *master, const char *context,
            const unsigned char *nonce, const unsigned char *in, size_t len,
            unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int done = 0, rest = 0, ok;

    ok = ctx != NULL && len <= INT32_MAX &&
         EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, master->key, nonce,
                           encrypt) == 1 &&
         EVP_CipherUpdate(ctx, NULL, &done, (const unsigned char *)context,
                          (int)strlen(context)) == 1 &&
         EVP_CipherUpdate(ctx, out, &done, in, (int)len) == 1 &&
         (encrypt ||
          EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_MAC, tag) == 1) &&
         EVP_CipherFinal_ex(ctx, out + done, &rest) == 1 &&
         (!encrypt ||
          EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_MAC, tag) == 1);
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return ok ? SP_OK : SP_ECRYPTO;
}

int
sp_crypt_seal(const sp_crypt_master *master, const char *context,
              const void *plain, size_t len, sp_buf *out, sp_error *err)
{
    size_t start = out->len;
    unsigned char *dst;

    if (sp_buf_reserve(out, 4 + SEAL_NONCE + len + SEAL_MAC) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory sealing");
    dst = (unsigned char *)out->data + start;
    memcpy(dst, SEAL_TAG, 4);
    if (RAND_bytes(dst + 4, SEAL_NONCE) != 1 ||
        seal_cipher(true, master, context, dst + 4, plain, len,
                    dst + 4 + SEAL_NONCE, dst + 4 + SEAL_NONCE + len) != SP_OK)
        return sp_err_set(err, SP_ECRYPTO, "sealing failed");
    out->len = start + 4 + SEAL_NONCE + len + SEAL_MAC;
    out->data[out->len] = '\0';
    return SP_OK;
}

int
sp_crypt_open(const sp_crypt_master *master, const char *context,
              const void *sealed, size_t len, sp_buf *out, sp_error *err)
{
    const unsigned char *in = sealed;
    size_t body, start = out->len;
    unsigned char tag[SEAL_MAC];

    if (len < 4 + SEAL_NONCE + SEAL_MAC || memcmp(in, SEAL_TAG, 4) != 0)
        return sp_err_set(err, SP_ECRYPTO,
                          "sealed value is not in a format this sealpost "
                          "knows");
    body = len - 4 - SEAL_NONCE - SEAL_MAC;
    if (sp_buf_reserve(out, body) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory opening");
    memcpy(tag, in + len - SEAL_MAC, SEAL_MAC);
    if (seal_cipher(false, master, context, in + 4, in + 4 + SEAL_NONCE, body,
                    (unsigned char *)out->data + start, tag) != SP_OK) {
        OPENSSL_cleanse(out->data + start, body);
        return sp_err_set(err, SP_ECRYPTO,
                          "sealed value does not open: altered, or sealed "
                          "with another master key");
    }
    out->len = start + body;
    out->data[out->len] = '\0';
    return SP_OK;
}
