/*
 * smime.c: S/MIME sealing (RFC 8551) with OpenSSL's CMS: reading and
 * checking a recipient's X.509 certificate, and wrapping a message's MIME
 * entity in EnvelopedData (AES-256-CBC) or AuthEnvelopedData
 * (AES-256-GCM, RFC 5083 and 5084).
 *
 * Owns sp_seal_smime_read, sp_seal_smime_wrap and sp_seal_smime_free;
 * seal.c calls them after telling a certificate from an OpenPGP key.
 *
 * A certificate is refused (SP_EKEY, with a sentence saying why) when it
 * is not valid at the check time, its key is neither RSA of 2048 bits or
 * more nor EC, its keyUsage forbids the encryption its key type needs,
 * its extendedKeyUsage leaves out emailProtection, or it does not chain
 * to a trusted root (the system's, plus the caller's CA file).  The leaf's
 * key usages are judged here rather than by OpenSSL's S/MIME purpose,
 * which would refuse an EC certificate that allows only keyAgreement and
 * one whose extendedKeyUsage is anyExtendedKeyUsage; the CAs above it are
 * still judged by that purpose.
 *
 * Errors come back with a sentence and nothing is logged: SP_ESYNTAX for
 * bytes that hold no certificate, SP_EKEY for a refused one, SP_EIO for a
 * CA file that cannot be read, SP_ECRYPTO with OpenSSL's reason when
 * encryption fails, SP_ENOMEM.
 *
 * Limits: revocation (CRL, OCSP) is not checked, and a certificate whose
 * key is neither RSA nor EC (X25519, say) is refused.  OpenSSL's own
 * allocations do not go through sp_malloc; their failures come back as
 * SP_ECRYPTO rather than SP_ENOMEM.
 */
#include "seal.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define SMIME_RSA_MIN_BITS 2048 /* RSA keys below this are refused */

/* What sp_seal_key.impl points at for a certificate. */
typedef struct smime_impl {
    X509 *cert;            /* the recipient's certificate, owned */
    STACK_OF(X509) * more; /* the certificates after it (the chain the
                              sender supplied), owned; may be empty */
} smime_impl;

/* The oldest OpenSSL error as text, and the queue emptied. */
static const char *
smime_ssl_reason(char *text, size_t size)
{
    unsigned long code = ERR_get_error();

    if (code == 0)
        snprintf(text, size, "no reason given");
    else
        ERR_error_string_n(code, text, size);
    ERR_clear_error();
    return text;
}

/* ------------------------------------------------------------------------
 * Parsing.
 */

/*
 * Whether data holds PEM: a boundary anywhere, since tools write text
 * (openssl x509 -text, PKCS#12 bag attributes) before the blocks.  DER
 * starts with a SEQUENCE tag instead.
 */
static bool
smime_is_pem(const void *data, size_t len)
{
    static const char begin[] = "-----BEGIN ";

    return memmem(data, len, begin, sizeof(begin) - 1) != NULL;
}

/*
 * Read every CERTIFICATE block of PEM text into impl: the first is the
 * recipient's, the rest its chain.  Blocks of other kinds are skipped, as
 * PEM files often carry comments or keys beside certificates.
 */
static int
smime_parse_pem(const void *data, size_t len, smime_impl *impl)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    X509 *cert;
    int rc = SP_OK;

    if (bio == NULL)
        return SP_ECRYPTO;
    while (rc == SP_OK && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (impl->cert == NULL)
            impl->cert = cert;
        else if (sk_X509_push(impl->more, cert) == 0) {
            X509_free(cert);
            rc = SP_ECRYPTO;
        }
    }

    /* The loop ends on "no start line" at the end of the text. */
    ERR_clear_error();
    BIO_free(bio);
    if (rc == SP_OK && impl->cert == NULL)
        rc = SP_ESYNTAX;
    return rc;
}

/* Read one DER certificate that fills all len bytes. */
static int
smime_parse_der(const void *data, size_t len, smime_impl *impl)
{
    const unsigned char *at = data;

    impl->cert = d2i_X509(NULL, &at, (long)len);
    ERR_clear_error();
    if (impl->cert == NULL)
        return SP_ESYNTAX;
    if ((size_t)(at - (const unsigned char *)data) != len)
        return SP_ESYNTAX;
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * What the key records: fingerprint, subject, validity, addresses.
 */

static void
smime_fingerprint(X509 *cert, sp_seal_key *key)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    /* X509_digest hashes the DER encoding, as the fingerprint demands. */
    if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1)
        md_len = 0;
    for (unsigned int i = 0; i < md_len; i++) {
        key->fingerprint[2 * i] = hex[md[i] >> 4];
        key->fingerprint[2 * i + 1] = hex[md[i] & 0x0F];
    }
    key->fingerprint[2 * md_len] = '\0';
}

/*
 * The subject in RFC 2253 form, non-ASCII left as UTF-8 so a person can
 * read it, cut at a character boundary to fit.
 */
static void
smime_subject(X509 *cert, sp_seal_key *key)
{
    unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
    BIO *bio = BIO_new(BIO_s_mem());
    char *text = NULL;
    long len = 0;
    size_t take;

    key->subject[0] = '\0';
    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, flags) >= 0)
        len = BIO_get_mem_data(bio, &text);
    take = len > 0 ? (size_t)len : 0;
    if (take >= sizeof(key->subject)) {
        take = sizeof(key->subject) - 1;
        while (take > 0 && ((unsigned char)text[take] & 0xC0) == 0x80)
            take--;
    }
    if (take > 0)
        memcpy(key->subject, text, take);
    key->subject[take] = '\0';
    BIO_free(bio);
}

/* An ASN1_TIME as seconds since the epoch; false when it cannot be. */
static bool
smime_time(const ASN1_TIME *when, int64_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (when == NULL || ASN1_TIME_to_tm(when, &tm) != 1)
        return false;
    *out = (int64_t)timegm(&tm);
    return true;
}

/* Add one address, lower case; one with a NUL inside is skipped. */
static int
smime_add_address(sp_seal_key *key, const ASN1_STRING *value)
{
    const char *text = (const char *)ASN1_STRING_get0_data(value);
    size_t len = (size_t)ASN1_STRING_length(value);
    char **grown, *copy;

    if (len == 0 || memchr(text, '\0', len) != NULL)
        return SP_OK;
    copy = sp_strndup(text, len);
    if (copy == NULL)
        return SP_ENOMEM;
    for (size_t i = 0; i < len; i++)
        copy[i] = (char)tolower((unsigned char)copy[i]);
    grown = sp_realloc(key->addresses,
                       (key->n_addresses + 1) * sizeof(*key->addresses));
    if (grown == NULL) {
        sp_free(copy);
        return SP_ENOMEM;
    }
    key->addresses = grown;
    key->addresses[key->n_addresses++] = copy;
    return SP_OK;
}

/*
 * The rfc822Name entries of subjectAltName; without any, the subject's
 * emailAddress attributes, which older certificates use instead.
 */
static int
smime_addresses(X509 *cert, sp_seal_key *key)
{
    GENERAL_NAMES *names;
    X509_NAME *subject = X509_get_subject_name(cert);
    int rc = SP_OK, at = -1;

    names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; rc == SP_OK && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);

        if (name->type == GEN_EMAIL)
            rc = smime_add_address(key, name->d.rfc822Name);
    }
    GENERAL_NAMES_free(names);
    while (rc == SP_OK && key->n_addresses == 0 &&
           (at = X509_NAME_get_index_by_NID(subject, NID_pkcs9_emailAddress,
                                            at)) >= 0) {
        X509_NAME_ENTRY *entry = X509_NAME_get_entry(subject, at);

        rc = smime_add_address(key, X509_NAME_ENTRY_get_data(entry));
    }
    ERR_clear_error();
    return rc;
}

/* ------------------------------------------------------------------------
 * Checks.
 */

/* A time as "2031-05-04 12:00:00 UTC". */
static const char *
smime_date(int64_t when, char *text, size_t size)
{
    time_t t = (time_t)when;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(text, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(text, size, "%lld seconds after 1970", (long long)when);
    return text;
}

static int
smime_check_dates(const sp_seal_key *key, int64_t now, sp_error *err)
{
    char date[64];

    if (now < key->not_before)
        return sp_err_set(err, SP_EKEY,
                          "the certificate is not valid yet: its validity "
                          "begins on %s",
                          smime_date(key->not_before, date, sizeof(date)));
    if (now > key->not_after)
        return sp_err_set(err, SP_EKEY, "the certificate expired on %s",
                          smime_date(key->not_after, date, sizeof(date)));
    return SP_OK;
}

/*
 * The key must be able to carry a content-encryption key: RSA key
 * transport (big enough) or EC key agreement; *is_rsa says which.
 */
static int
smime_check_key_type(X509 *cert, bool *is_rsa, sp_error *err)
{
    EVP_PKEY *pkey = X509_get0_pubkey(cert);
    int bits;

    ERR_clear_error();
    if (pkey == NULL)
        return sp_err_set(err, SP_EKEY,
                          "the certificate's public key cannot be read");
    *is_rsa = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
    if (!*is_rsa && EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return sp_err_set(err, SP_EKEY,
                          "the certificate's key is of type %s; only RSA "
                          "and EC keys can receive S/MIME mail here",
                          OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
    bits = EVP_PKEY_get_bits(pkey);
    if (*is_rsa && bits < SMIME_RSA_MIN_BITS)
        return sp_err_set(err, SP_EKEY,
                          "the certificate's RSA key has %d bits; at least "
                          "%d are needed to encrypt to it safely",
                          bits, SMIME_RSA_MIN_BITS);
    return SP_OK;
}

/* keyUsage and extendedKeyUsage, where present, must allow encryption. */
static int
smime_check_usage(X509 *cert, bool is_rsa, sp_error *err)
{
    uint32_t flags = X509_get_extension_flags(cert);
    uint32_t need = is_rsa ? KU_KEY_ENCIPHERMENT : KU_KEY_AGREEMENT;

    if (flags & EXFLAG_INVALID)
        return sp_err_set(err, SP_EKEY,
                          "the certificate's extensions cannot be parsed");
    if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(cert) & need))
        return sp_err_set(err, SP_EKEY,
                          "the certificate's keyUsage does not allow %s, "
                          "which encrypting to its %s key needs",
                          is_rsa ? "keyEncipherment" : "keyAgreement",
                          is_rsa ? "RSA" : "EC");
    if ((flags & EXFLAG_XKUSAGE) &&
        !(X509_get_extended_key_usage(cert) & (XKU_SMIME | XKU_ANYEKU)))
        return sp_err_set(err, SP_EKEY,
                          "the certificate's extendedKeyUsage does not "
                          "include emailProtection, so it is not meant "
                          "for mail");
    return SP_OK;
}

/*
 * Verification callback: the leaf's usages were judged by
 * smime_check_usage, so OpenSSL's stricter purpose check on it alone is
 * waived; every other failure stands.
 */
static int
smime_verify_cb(int ok, X509_STORE_CTX *ctx)
{
    if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_INVALID_PURPOSE &&
        X509_STORE_CTX_get_error_depth(ctx) == 0)
        return 1;
    return ok;
}

/*
 * The system's roots, loaded once per process: loading them costs tens of
 * milliseconds, paid once rather than per certificate read.  OpenSSL locks
 * a store's lookups, so threads share it.
 */
static X509_STORE *smime_system_store;
static pthread_once_t smime_system_once = PTHREAD_ONCE_INIT;

static void
smime_load_system(void)
{
    X509_STORE *store = X509_STORE_new();

    if (store == NULL || X509_STORE_set_default_paths(store) != 1) {
        X509_STORE_free(store);
        return;
    }
    X509_STORE_set_verify_cb(store, smime_verify_cb);
    smime_system_store = store;
}

/* A trust store with the system's roots and those of ca_file, in *out. */
static int
smime_store(const sp_seal_check *check, X509_STORE **out, sp_error *err)
{
    X509_STORE *store;
    char why[256];

    *out = NULL;
    pthread_once(&smime_system_once, smime_load_system);
    if (check->ca_file == NULL && smime_system_store != NULL &&
        X509_STORE_up_ref(smime_system_store) == 1) {
        ERR_clear_error();
        *out = smime_system_store;
        return SP_OK;
    }

    store = X509_STORE_new();
    if (store == NULL || X509_STORE_set_default_paths(store) != 1) {
        X509_STORE_free(store);
        return sp_err_set(err, SP_ECRYPTO, "no trust store: %s",
                          smime_ssl_reason(why, sizeof(why)));
    }
    if (check->ca_file != NULL &&
        X509_STORE_load_file(store, check->ca_file) != 1) {
        X509_STORE_free(store);
        return sp_err_set(err, SP_EIO,
                          "the trust anchors in %s cannot be read: %s",
                          check->ca_file, smime_ssl_reason(why, sizeof(why)));
    }
    X509_STORE_set_verify_cb(store, smime_verify_cb);
    ERR_clear_error();
    *out = store;
    return SP_OK;
}

/* The reason a chain failed, as a sentence. */
static int
smime_chain_error(X509_STORE_CTX *ctx, sp_error *err)
{
    int code = X509_STORE_CTX_get_error(ctx);
    X509 *at = X509_STORE_CTX_get_current_cert(ctx);
    char name[128] = "?", issuer[128] = "?";

    if (at != NULL) {
        X509_NAME_oneline(X509_get_subject_name(at), name, sizeof(name));
        X509_NAME_oneline(X509_get_issuer_name(at), issuer, sizeof(issuer));
    }
    ERR_clear_error();
    if (code == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
        return sp_err_set(err, SP_EKEY,
                          "the certificate is self-signed and not among "
                          "the trusted roots");
    if (code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
        code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
        code == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
        return sp_err_set(err, SP_EKEY,
                          "the certificate does not chain to a trusted "
                          "root: %s, issuer of %s, is not trusted and not "
                          "in the chain given",
                          issuer, name);
    return sp_err_set(err, SP_EKEY,
                      "the certificate's chain to a trusted root fails at "
                      "%s: %s",
                      name, X509_verify_cert_error_string(code));
}

/* The chain from the certificate to a trusted root, at check->now. */
static int
smime_check_chain(const smime_impl *impl, const sp_seal_check *check,
                  sp_error *err)
{
    X509_STORE *store;
    X509_STORE_CTX *ctx;
    X509_VERIFY_PARAM *param;
    char why[256];
    int rc = smime_store(check, &store, err);

    if (rc != SP_OK)
        return rc;
    ctx = X509_STORE_CTX_new();
    if (ctx == NULL ||
        X509_STORE_CTX_init(ctx, store, impl->cert, impl->more) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SMIME_ENCRYPT) != 1) {
        rc = sp_err_set(err, SP_ECRYPTO, "cannot verify the certificate: %s",
                        smime_ssl_reason(why, sizeof(why)));
        goto done;
    }

    /* The caller's clock, not the system's: keys are judged at a time. */
    param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t)check->now);
    if (X509_verify_cert(ctx) != 1)
        rc = smime_chain_error(ctx, err);

done:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

/* ------------------------------------------------------------------------
 * Reading a key.
 */

/* Fill key from impl->cert and run every check on it. */
static int
smime_fill(sp_seal_key *key, const smime_impl *impl, const sp_seal_check *check,
           sp_error *err)
{
    bool is_rsa = false;
    int rc;

    smime_fingerprint(impl->cert, key);
    smime_subject(impl->cert, key);
    if (!smime_time(X509_get0_notBefore(impl->cert), &key->not_before) ||
        !smime_time(X509_get0_notAfter(impl->cert), &key->not_after))
        return sp_err_set(err, SP_ESYNTAX,
                          "the certificate's validity dates cannot be read");
    if (smime_addresses(impl->cert, key) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory");

    /* Cheap, specific checks first, so the reason names the real fault. */
    rc = smime_check_dates(key, check->now, err);
    if (rc == SP_OK)
        rc = smime_check_key_type(impl->cert, &is_rsa, err);
    if (rc == SP_OK)
        rc = smime_check_usage(impl->cert, is_rsa, err);
    if (rc == SP_OK)
        rc = smime_check_chain(impl, check, err);
    return rc;
}

/*
 * Read a certificate (PEM, the chain after it, or DER) and check it, as
 * sp_seal_key_read describes.  On success *out owns the certificate and
 * its chain; after a failure *out is NULL and nothing is held.
 */
int
sp_seal_smime_read(const void *data, size_t len, const sp_seal_check *check,
                   sp_seal_key **out, sp_error *err)
{
    sp_seal_key *key;
    smime_impl *impl;
    int rc;

    *out = NULL;
    if (len > INT_MAX)
        return sp_err_set(err, SP_ESYNTAX, "the certificate file is too big");
    key = sp_calloc(1, sizeof(*key));
    impl = sp_calloc(1, sizeof(*impl));
    if (key == NULL || impl == NULL) {
        sp_free(key);
        sp_free(impl);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    key->method = SP_SEAL_SMIME;
    key->impl = impl;
    impl->more = sk_X509_new_null();
    if (impl->more == NULL)
        rc = SP_ECRYPTO;
    else if (smime_is_pem(data, len))
        rc = smime_parse_pem(data, len, impl);
    else
        rc = smime_parse_der(data, len, impl);
    if (rc == SP_ESYNTAX)
        sp_err_set(err, rc,
                   "the key is neither a certificate (PEM or DER) "
                   "nor an OpenPGP key");
    else if (rc != SP_OK)
        sp_err_set(err, rc, "out of memory reading the certificate");
    else
        rc = smime_fill(key, impl, check, err);
    if (rc != SP_OK) {
        sp_seal_key_free(key);
        return rc;
    }
    *out = key;
    return SP_OK;
}

void
sp_seal_smime_free(sp_seal_key *key)
{
    smime_impl *impl = key->impl;

    if (impl == NULL)
        return;
    X509_free(impl->cert);
    sk_X509_pop_free(impl->more, X509_free);
    sp_free(impl);
    key->impl = NULL;
}

/* ------------------------------------------------------------------------
 * Wrapping.
 */

/* The entity encrypted for the certificate, as DER, into der. */
static int
smime_encrypt(X509 *cert, const sp_buf *entity, sp_seal_cipher cipher,
              sp_buf *der, sp_error *err)
{
    STACK_OF(X509) *recipients = sk_X509_new_null();
    BIO *in = BIO_new_mem_buf(entity->data, (int)entity->len);
    BIO *mem = BIO_new(BIO_s_mem());
    const EVP_CIPHER *evp =
        cipher == SP_SEAL_AES256_GCM ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
    CMS_ContentInfo *cms = NULL;
    char why[256], *bytes;
    long len;
    int rc = SP_ECRYPTO;

    /*
     * CMS_BINARY: the entity is CRLF already and must arrive byte for
     * byte; an AEAD cipher makes OpenSSL build AuthEnvelopedData.
     */
    if (recipients != NULL && in != NULL && mem != NULL &&
        sk_X509_push(recipients, cert) > 0)
        cms = CMS_encrypt(recipients, in, evp, CMS_BINARY);
    if (cms != NULL && i2d_CMS_bio(mem, cms) == 1) {
        len = BIO_get_mem_data(mem, &bytes);
        rc = sp_buf_append(der, bytes, (size_t)len);
        if (rc != SP_OK)
            sp_err_set(err, rc, "out of memory");
    } else {
        sp_err_set(err, rc, "S/MIME encryption failed: %s",
                   smime_ssl_reason(why, sizeof(why)));
    }
    CMS_ContentInfo_free(cms);
    BIO_free(mem);
    BIO_free(in);
    sk_X509_free(recipients); /* the certificate stays the key's */
    return rc;
}

/* The outer fields, the new MIME fields, the empty line, the base64. */
static int
smime_compose(const sp_seal_parts *parts, sp_seal_cipher cipher,
              const sp_buf *der, sp_buf *out)
{
    int rc;

    /* Folded after the media type so that every line stays short. */
    rc = sp_buf_append(out, parts->outer.data, parts->outer.len);
    if (rc == SP_OK)
        rc = sp_buf_printf(
            out,
            "MIME-Version: 1.0\r\n"
            "Content-Type: application/pkcs7-mime;\r\n"
            " smime-type=%s; name=\"smime.p7m\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n"
            "\r\n",
            cipher == SP_SEAL_AES256_GCM ? "authEnveloped-data"
                                         : "enveloped-data");
    if (rc == SP_OK)
        rc = sp_seal_base64_lines(out, der->data, der->len);
    return rc;
}

/*
 * Encrypt parts->entity for key's certificate with cipher and append the
 * whole sealed message to out.  SP_ECRYPTO with OpenSSL's reason,
 * SP_ENOMEM; out is as it was after a failure.
 */
int
sp_seal_smime_wrap(const sp_seal_key *key, const sp_seal_parts *parts,
                   sp_seal_cipher cipher, sp_buf *out, sp_error *err)
{
    const smime_impl *impl = key->impl;
    sp_buf der = SP_BUF_INIT;
    size_t start = out->len;
    int rc;

    if (parts->entity.len > INT_MAX)
        return sp_err_set(err, SP_ELIMIT, "the message is too big to seal");
    rc = smime_encrypt(impl->cert, &parts->entity, cipher, &der, err);
    if (rc == SP_OK) {
        rc = smime_compose(parts, cipher, &der, out);
        if (rc != SP_OK) {
            out->len = start;
            if (out->data != NULL)
                out->data[start] = '\0';
            sp_err_set(err, rc, "out of memory");
        }
    }
    sp_buf_free(&der);
    return rc;
}
