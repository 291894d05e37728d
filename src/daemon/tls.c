/*
 * tls.c: the server's TLS context for STARTTLS.
 *
 * Owns daemon_tls_context.  With tls_cert_file and tls_key_file the
 * operator's certificate is used.  Without them sealpostd makes a
 * self-signed one on first start (an EC P-256 key, the host name as
 * subject and SAN, ten years) under data_dir/tls, so STARTTLS works out
 * of the box: submission clients that check certificates will need the
 * operator's own.  TLS 1.2 is the floor.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Write a PEM file atomically enough: a fresh file, mode given. */
static bool
tls_write(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
    FILE *file;
    bool ok;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    if (fd < 0 || (file = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    ok = key ? PEM_write_PrivateKey(file, key, NULL, NULL, 0, NULL, NULL) == 1
             : PEM_write_X509(file, cert) == 1;
    return fclose(file) == 0 && ok;
}

/* Make a self-signed certificate for hostname into cert and key files. */
static int
tls_make_self_signed(const char *hostname, const char *cert_path,
                     const char *key_path, sp_error *err)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert = X509_new();
    X509_NAME *name;
    X509_EXTENSION *san = NULL;
    char san_text[300];
    bool ok;

    snprintf(san_text, sizeof(san_text), "DNS:%s", hostname);
    ok = key != NULL && cert != NULL && X509_set_version(cert, 2) == 1 &&
         ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 366 * 86400) != NULL &&
         X509_set_pubkey(cert, key) == 1;
    if (ok) {
        name = X509_get_subject_name(cert);
        ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const unsigned char *)hostname, -1, -1,
                                        0) == 1 &&
             X509_set_issuer_name(cert, name) == 1;
    }
    if (ok) {
        san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san_text);
        ok = san != NULL && X509_add_ext(cert, san, -1) == 1 &&
             X509_sign(cert, key, EVP_sha256()) > 0 &&
             tls_write(key_path, 0600, key, NULL) &&
             tls_write(cert_path, 0644, NULL, cert);
    }
    X509_EXTENSION_free(san);
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (!ok)
        return sp_err_set(err, SP_ECRYPTO,
                          "cannot make a self-signed certificate in %s",
                          cert_path);
    sp_log_info("tls_certificate made=self-signed path=%s note=\"set "
                "tls_cert_file and tls_key_file to use your own\"",
                cert_path);
    return SP_OK;
}

int
daemon_tls_context(const sp_config *config, const char *hostname, SSL_CTX **out,
                   sp_error *err)
{
    char cert_path[4200], key_path[4200], dir[4096];
    SSL_CTX *ctx;
    int rc = SP_OK;

    *out = NULL;
    if (config->tls_cert_file[0] != '\0') {
        snprintf(cert_path, sizeof(cert_path), "%s", config->tls_cert_file);
        snprintf(key_path, sizeof(key_path), "%s", config->tls_key_file);
    } else {
        snprintf(dir, sizeof(dir), "%s/tls", config->data_dir);
        snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
        snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return sp_err_set(err, SP_EIO, "%s: %s", dir, strerror(errno));
        if (access(cert_path, R_OK) != 0 || access(key_path, R_OK) != 0)
            rc = tls_make_self_signed(hostname, cert_path, key_path, err);
    }
    if (rc != SP_OK)
        return rc;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        unsigned long code = ERR_get_error();

        SSL_CTX_free(ctx);
        ERR_clear_error();
        return sp_err_set(err, SP_EINVAL, "TLS with %s and %s: %s", cert_path,
                          key_path,
                          code ? ERR_reason_error_string(code) : "failed");
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    *out = ctx;
    return SP_OK;
}
