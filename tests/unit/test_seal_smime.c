/*
 * test_seal_smime.c: reading recipient certificates and sealing messages
 * with S/MIME (crypt/smime.c, through seal.h).
 *
 * Every key and certificate is made afresh with OpenSSL when the tests
 * start: a root CA (written to a temporary CA file), an intermediate CA,
 * and recipients good and bad.  Sealed messages are opened again with
 * CMS_decrypt and the recipient's private key, and what comes out must be
 * the message's MIME entity byte for byte.
 */
#include "crypt/seal.h"
#include "testlib.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DAY 86400

/* What a test certificate is made of; NULL fields are left out. */
typedef struct cert_spec {
    const char *cn;       /* subject common name */
    const char *subj_rfc; /* subject emailAddress attribute */
    const char *san;      /* subjectAltName value, "email:a@b" */
    const char *ku;       /* keyUsage value */
    const char *eku;      /* extendedKeyUsage value */
    bool ca;              /* a CA: basicConstraints CA:TRUE */
    int64_t from, to;     /* validity, relative to now (seconds) */
    EVP_PKEY *key;        /* the subject's key */
    X509 *issuer;         /* NULL: self-signed */
    EVP_PKEY *issuer_key; /* signs it; the subject's key when self-signed */
} cert_spec;

/* Keys and CAs made once for all tests. */
static struct {
    int64_t now;         /* the check time */
    char dir[128];       /* temporary directory */
    char ca_file[256];   /* the root CA, PEM */
    EVP_PKEY *root_key;  /* RSA 2048 */
    X509 *root;          /* self-signed root, trusted through ca_file */
    EVP_PKEY *inter_key; /* RSA 2048 */
    X509 *inter;         /* intermediate CA under root */
    EVP_PKEY *rsa;       /* recipients' RSA 2048 key */
    EVP_PKEY *rsa_small; /* RSA 1024 */
    EVP_PKEY *ec;        /* P-256 */
} pki;

static const char message[] =
    "Received: from mx.example.org by relay.example.net;\r\n"
    " Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "From: Sender <sender@example.org>\r\n"
    "To: Alice <alice@example.org>\r\n"
    "Subject: Quarterly numbers\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <q3@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain;\r\n"
    "\tcharset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Numbers inside: 42 \xe2\x82\xac.\r\n"
    "Trailing spaces stay.   \r\n";

static const char entity[] = "Content-Type: text/plain;\r\n"
                             "\tcharset=utf-8\r\n"
                             "Content-Transfer-Encoding: 8bit\r\n"
                             "\r\n"
                             "Numbers inside: 42 \xe2\x82\xac.\r\n"
                             "Trailing spaces stay.   \r\n";

/* ------------------------------------------------------------------------
 * Making keys and certificates.
 */

static EVP_PKEY *
make_rsa(unsigned bits)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);

    assert_non_null(key);
    return key;
}

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    if (value == NULL)
        return;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void
set_subject(X509 *cert, const cert_spec *spec)
{
    X509_NAME *name = X509_get_subject_name(cert);

    assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                                (const unsigned char *)"Test",
                                                -1, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                                (const unsigned char *)spec->cn,
                                                -1, -1, 0),
                     1);
    if (spec->subj_rfc != NULL)
        assert_int_equal(X509_NAME_add_entry_by_txt(
                             name, "emailAddress", MBSTRING_ASC,
                             (const unsigned char *)spec->subj_rfc, -1, -1, 0),
                         1);
}

static X509 *
make_cert(const cert_spec *spec)
{
    static long serial = 1;
    X509 *cert = X509_new();
    X509 *issuer;

    assert_non_null(cert);
    assert_int_equal(X509_set_version(cert, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(cert),
                                  (time_t)(pki.now + spec->from)));
    assert_non_null(
        ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)(pki.now + spec->to)));
    set_subject(cert, spec);
    issuer = spec->issuer != NULL ? spec->issuer : cert;
    assert_int_equal(X509_set_issuer_name(cert, X509_get_subject_name(issuer)),
                     1);
    assert_int_equal(X509_set_pubkey(cert, spec->key), 1);

    add_ext(cert, issuer, NID_basic_constraints,
            spec->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(cert, issuer, NID_subject_key_identifier, "hash");
    if (spec->issuer != NULL)
        add_ext(cert, issuer, NID_authority_key_identifier, "keyid");
    add_ext(cert, issuer, NID_key_usage, spec->ku);
    add_ext(cert, issuer, NID_ext_key_usage, spec->eku);
    add_ext(cert, issuer, NID_subject_alt_name, spec->san);
    assert_true(X509_sign(cert, spec->issuer_key, EVP_sha256()) > 0);
    return cert;
}

/* A recipient as most tests want it, signed by the intermediate CA. */
static cert_spec
good_spec(void)
{
    cert_spec spec = {
        .cn = "Alice Example",
        .san = "email:Alice@Example.ORG",
        .ku = "critical,digitalSignature,keyEncipherment",
        .eku = "emailProtection",
        .from = -DAY,
        .to = 365 * DAY,
        .key = pki.rsa,
        .issuer = pki.inter,
        .issuer_key = pki.inter_key,
    };

    return spec;
}

/* Append cert as PEM to buf. */
static void
append_pem(sp_buf *buf, X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long len;

    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_X509(bio, cert), 1);
    len = BIO_get_mem_data(bio, &data);
    assert_int_equal(sp_buf_append(buf, data, (size_t)len), SP_OK);
    BIO_free(bio);
}

static int
setup(void **state)
{
    cert_spec root = {.cn = "Test Root CA",
                      .ku = "critical,keyCertSign,cRLSign",
                      .ca = true,
                      .from = -10 * DAY,
                      .to = 3650 * DAY};
    cert_spec inter = root;
    sp_buf pem = SP_BUF_INIT;
    FILE *file;

    (void)state;
    pki.now = (int64_t)time(NULL);
    pki.root_key = root.key = root.issuer_key = make_rsa(2048);
    pki.root = make_cert(&root);
    inter.cn = "Test Intermediate CA";
    pki.inter_key = inter.key = make_rsa(2048);
    inter.issuer = pki.root;
    inter.issuer_key = pki.root_key;
    pki.inter = make_cert(&inter);
    pki.rsa = make_rsa(2048);
    pki.rsa_small = make_rsa(1024);
    pki.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pki.ec);

    /* Only the root goes into the CA file; the intermediate travels. */
    testlib_temp_dir("smime", pki.dir, sizeof(pki.dir));
    snprintf(pki.ca_file, sizeof(pki.ca_file), "%s/ca.pem", pki.dir);
    append_pem(&pem, pki.root);
    file = fopen(pki.ca_file, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(pem.data, 1, pem.len, file), pem.len);
    assert_int_equal(fclose(file), 0);
    sp_buf_free(&pem);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    testlib_remove_dir(pki.dir);
    X509_free(pki.root);
    X509_free(pki.inter);
    EVP_PKEY_free(pki.root_key);
    EVP_PKEY_free(pki.inter_key);
    EVP_PKEY_free(pki.rsa);
    EVP_PKEY_free(pki.rsa_small);
    EVP_PKEY_free(pki.ec);
    return 0;
}

/* ------------------------------------------------------------------------
 * Reading through seal.h.
 */

/* Read bytes as a key, checked at now against the test CA file. */
static int
read_key(const sp_buf *bytes, sp_seal_key **key, sp_error *err)
{
    sp_seal_check check = {.now = pki.now, .ca_file = pki.ca_file};

    sp_err_clear(err);
    return sp_seal_key_read(bytes->data, bytes->len, &check, key, err);
}

/* Read the certificate made from spec, with the intermediate after it. */
static int
read_spec(const cert_spec *spec, sp_seal_key **key, sp_error *err)
{
    X509 *cert = make_cert(spec);
    sp_buf pem = SP_BUF_INIT;
    int rc;

    append_pem(&pem, cert);
    append_pem(&pem, pki.inter);
    rc = read_key(&pem, key, err);
    sp_buf_free(&pem);
    X509_free(cert);
    return rc;
}

/* spec must be refused with SP_EKEY and a reason that names words. */
static void
assert_refused(const cert_spec *spec, const char *words)
{
    sp_seal_key *key = (sp_seal_key *)&key;
    sp_error err;

    assert_int_equal(read_spec(spec, &key, &err), SP_EKEY);
    assert_null(key);
    assert_int_equal(err.code, SP_EKEY);
    if (strstr(err.text, words) == NULL)
        fail_msg("reason \"%s\" does not name \"%s\"", err.text, words);
}

/* The lower-case hex SHA-256 of the DER certificate. */
static void
expected_fingerprint(X509 *cert, char *hex)
{
    unsigned char *der = NULL, md[32];
    int len = i2d_X509(cert, &der);

    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL),
                     1);
    for (size_t i = 0; i < sizeof(md); i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    OPENSSL_free(der);
}

static void
read_accepts_a_good_certificate_with_its_chain(void **state)
{
    cert_spec spec = good_spec();
    X509 *cert = make_cert(&spec);
    sp_buf pem = SP_BUF_INIT;
    sp_seal_key *key;
    sp_error err;
    char hex[65];

    (void)state;
    append_pem(&pem, cert);
    append_pem(&pem, pki.inter);
    if (read_key(&pem, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    expected_fingerprint(cert, hex);
    assert_int_equal(key->method, SP_SEAL_SMIME);
    assert_string_equal(key->fingerprint, hex);
    assert_string_equal(key->subject, "CN=Alice Example,O=Test");
    assert_int_equal(key->not_before, pki.now - DAY);
    assert_int_equal(key->not_after, pki.now + 365 * DAY);
    assert_int_equal(key->n_addresses, 1);
    assert_string_equal(key->addresses[0], "alice@example.org");
    assert_true(sp_seal_key_names(key, "alice@example.org"));
    assert_true(sp_seal_key_names(key, "Alice@EXAMPLE.org"));
    assert_false(sp_seal_key_names(key, "bob@example.org"));
    sp_seal_key_free(key);
    sp_buf_free(&pem);
    X509_free(cert);
}

static void
read_accepts_der(void **state)
{
    cert_spec spec = good_spec();
    X509 *cert;
    unsigned char *der = NULL;
    sp_buf bytes = SP_BUF_INIT;
    sp_seal_key *key;
    sp_error err;
    int len;

    (void)state;
    spec.issuer = pki.root;
    spec.issuer_key = pki.root_key;
    cert = make_cert(&spec);
    len = i2d_X509(cert, &der);
    assert_true(len > 0);
    assert_int_equal(sp_buf_append(&bytes, der, (size_t)len), SP_OK);
    if (read_key(&bytes, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    assert_string_equal(key->addresses[0], "alice@example.org");
    sp_seal_key_free(key);

    /* A byte more after the certificate is not a certificate. */
    assert_int_equal(sp_buf_append(&bytes, "x", 1), SP_OK);
    assert_int_equal(read_key(&bytes, &key, &err), SP_ESYNTAX);
    sp_buf_free(&bytes);
    OPENSSL_free(der);
    X509_free(cert);
}

/* Text before, between and after the blocks, and a key block beside. */
static void
read_skips_text_around_pem_blocks(void **state)
{
    cert_spec spec = good_spec();
    X509 *cert = make_cert(&spec);
    sp_buf pem = SP_BUF_INIT;
    sp_seal_key *key;
    sp_error err;
    char hex[65];

    (void)state;
    sp_buf_append_str(&pem, "Bag Attributes\n    friendlyName: alice\n");
    append_pem(&pem, cert);
    sp_buf_append_str(&pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                            "-----END PRIVATE KEY-----\nsubject=CN = x\n");
    append_pem(&pem, pki.inter);
    sp_buf_append_str(&pem, "trailing words\n");
    if (read_key(&pem, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    expected_fingerprint(cert, hex);
    assert_string_equal(key->fingerprint, hex);
    sp_seal_key_free(key);
    sp_buf_free(&pem);
    X509_free(cert);
}

static void
read_takes_the_subject_address_without_alt_names(void **state)
{
    cert_spec spec = good_spec();
    sp_seal_key *key;
    sp_error err;

    (void)state;
    spec.san = NULL;
    spec.subj_rfc = "Carol@Example.COM";
    if (read_spec(&spec, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    assert_int_equal(key->n_addresses, 1);
    assert_string_equal(key->addresses[0], "carol@example.com");
    sp_seal_key_free(key);

    /* Alt names win over the subject's attribute. */
    spec.san = "email:dave@example.net,email:Eve@example.net";
    assert_int_equal(read_spec(&spec, &key, &err), SP_OK);
    assert_int_equal(key->n_addresses, 2);
    assert_string_equal(key->addresses[0], "dave@example.net");
    assert_string_equal(key->addresses[1], "eve@example.net");
    assert_false(sp_seal_key_names(key, "carol@example.com"));
    sp_seal_key_free(key);
}

static void
read_accepts_ec_with_key_agreement_and_any_eku(void **state)
{
    cert_spec spec = good_spec();
    sp_seal_key *key;
    sp_error err;

    (void)state;
    spec.key = pki.ec;
    spec.ku = "critical,digitalSignature,keyAgreement";
    if (read_spec(&spec, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    sp_seal_key_free(key);

    spec.key = pki.rsa;
    spec.ku = "keyEncipherment";
    spec.eku = "anyExtendedKeyUsage";
    if (read_spec(&spec, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    sp_seal_key_free(key);

    /* Neither extension at all: nothing restricts the key. */
    spec.ku = spec.eku = NULL;
    if (read_spec(&spec, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    sp_seal_key_free(key);
}

static void
read_refuses_expired_and_future_certificates(void **state)
{
    cert_spec spec = good_spec();
    char date[32];
    time_t when;

    (void)state;
    spec.from = -30 * DAY;
    spec.to = -2 * DAY;
    when = (time_t)(pki.now - 2 * DAY);
    strftime(date, sizeof(date), "%Y-%m-%d", gmtime(&when));
    assert_refused(&spec, "expired on");
    assert_refused(&spec, date);

    spec.from = 2 * DAY;
    spec.to = 30 * DAY;
    assert_refused(&spec, "not valid yet");
}

static void
read_refuses_usages_that_forbid_encryption(void **state)
{
    cert_spec spec = good_spec();

    (void)state;
    spec.ku = "critical,digitalSignature";
    assert_refused(&spec, "keyEncipherment");

    spec.key = pki.ec;
    spec.ku = "critical,keyEncipherment";
    assert_refused(&spec, "keyAgreement");

    spec = good_spec();
    spec.eku = "serverAuth";
    assert_refused(&spec, "emailProtection");
}

static void
read_refuses_small_rsa_keys(void **state)
{
    cert_spec spec = good_spec();

    (void)state;
    spec.key = pki.rsa_small;
    assert_refused(&spec, "1024 bits");
}

static void
read_refuses_certificates_without_a_trusted_root(void **state)
{
    cert_spec spec = good_spec();
    X509 *cert;
    sp_buf pem = SP_BUF_INIT;
    sp_seal_key *key;
    sp_error err;

    (void)state;
    spec.issuer = NULL;
    spec.issuer_key = pki.rsa;
    assert_refused(&spec, "self-signed");

    /* The intermediate left out: the root alone cannot reach the leaf. */
    spec = good_spec();
    cert = make_cert(&spec);
    append_pem(&pem, cert);
    assert_int_equal(read_key(&pem, &key, &err), SP_EKEY);
    assert_non_null(strstr(err.text, "trusted"));

    /* No CA file: the system's roots do not know the test root. */
    {
        sp_seal_check check = {.now = pki.now, .ca_file = NULL};

        append_pem(&pem, pki.inter);
        assert_int_equal(
            sp_seal_key_read(pem.data, pem.len, &check, &key, &err), SP_EKEY);
        assert_non_null(strstr(err.text, "trusted"));
    }
    sp_buf_free(&pem);
    X509_free(cert);
}

static void
read_reports_an_unreadable_ca_file(void **state)
{
    cert_spec spec = good_spec();
    X509 *cert = make_cert(&spec);
    sp_seal_check check = {.now = pki.now, .ca_file = "/nonexistent/ca.pem"};
    sp_buf pem = SP_BUF_INIT;
    sp_seal_key *key;
    sp_error err;

    (void)state;
    append_pem(&pem, cert);
    assert_int_equal(sp_seal_key_read(pem.data, pem.len, &check, &key, &err),
                     SP_EIO);
    assert_non_null(strstr(err.text, "/nonexistent/ca.pem"));
    sp_buf_free(&pem);
    X509_free(cert);
}

static void
read_calls_garbage_a_syntax_error(void **state)
{
    static const char *bad[] = {
        "not a certificate at all",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "\x30\x82\x01\x00\x30",
    };
    sp_seal_check check = {.now = pki.now, .ca_file = pki.ca_file};
    sp_seal_key *key;
    sp_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            sp_seal_key_read(bad[i], strlen(bad[i]), &check, &key, &err),
            SP_ESYNTAX);
        assert_null(key);
    }
    assert_int_equal(ERR_peek_error(), 0);
}

/* ------------------------------------------------------------------------
 * Sealing.
 */

/* Seal message for a good recipient with key material pkey. */
static void
seal(EVP_PKEY *pkey, X509 **cert, const sp_seal_options *options, sp_buf *out)
{
    cert_spec spec = good_spec();
    sp_seal_key *key;
    sp_error err;
    sp_buf pem = SP_BUF_INIT;

    spec.key = pkey;
    if (pkey == pki.ec)
        spec.ku = "keyAgreement";
    *cert = make_cert(&spec);
    append_pem(&pem, *cert);
    append_pem(&pem, pki.inter);
    if (read_key(&pem, &key, &err) != SP_OK)
        fail_msg("refused: %s", err.text);
    if (sp_seal_message(key, message, sizeof(message) - 1, options, out,
                        &err) != SP_OK)
        fail_msg("seal: %s", err.text);
    sp_seal_key_free(key);
    sp_buf_free(&pem);
}

/* Open sealed with pkey and cert; the CMS content type goes to *nid. */
static void
open_sealed(const sp_buf *sealed, EVP_PKEY *pkey, X509 *cert, int *nid,
            sp_buf *plain)
{
    const char *body = strstr(sealed->data, "\r\n\r\n");
    sp_buf der = SP_BUF_INIT;
    const unsigned char *at;
    CMS_ContentInfo *cms;
    BIO *out = BIO_new(BIO_s_mem());
    char *data;
    long len;

    assert_non_null(body);
    body += 4;
    assert_int_equal(sp_b64_decode(&der, body,
                                   sealed->len - (size_t)(body - sealed->data),
                                   NULL),
                     SP_OK);
    at = (const unsigned char *)der.data;
    cms = d2i_CMS_ContentInfo(NULL, &at, (long)der.len);
    assert_non_null(cms);
    *nid = OBJ_obj2nid(CMS_get0_type(cms));
    assert_int_equal(CMS_decrypt(cms, pkey, cert, NULL, out, CMS_BINARY), 1);
    len = BIO_get_mem_data(out, &data);
    assert_int_equal(sp_buf_append(plain, data, (size_t)len), SP_OK);
    CMS_ContentInfo_free(cms);
    BIO_free(out);
    sp_buf_free(&der);
}

/* CRLF only, and no line longer than 78 characters. */
static void
assert_wire_lines(const sp_buf *text)
{
    size_t line = 0;

    for (size_t i = 0; i < text->len; i++) {
        if (text->data[i] == '\r') {
            assert_true(i + 1 < text->len && text->data[i + 1] == '\n');
            assert_true(line <= 78);
            line = 0;
            i++;
        } else {
            assert_true(text->data[i] != '\n');
            line++;
        }
    }
    assert_int_equal(line, 0);
}

/* The header section of sealed, up to and with its empty line. */
static size_t
header_len(const sp_buf *sealed)
{
    const char *end = strstr(sealed->data, "\r\n\r\n");

    assert_non_null(end);
    return (size_t)(end - sealed->data) + 4;
}

static void
seal_and_open(EVP_PKEY *pkey, sp_seal_cipher cipher, int want_nid)
{
    sp_seal_options options = {.cipher = cipher, .subject = NULL};
    static const char outer[] =
        "Received: from mx.example.org by relay.example.net;\r\n"
        " Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        "From: Sender <sender@example.org>\r\n"
        "To: Alice <alice@example.org>\r\n"
        "Subject: Quarterly numbers\r\n"
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        "Message-ID: <q3@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: application/pkcs7-mime;\r\n";
    const char *type = cipher == SP_SEAL_AES256_GCM
                           ? " smime-type=authEnveloped-data;"
                           : " smime-type=enveloped-data;";
    sp_buf sealed = SP_BUF_INIT, plain = SP_BUF_INIT;
    X509 *cert;
    int nid;

    seal(pkey, &cert, &options, &sealed);
    assert_wire_lines(&sealed);
    assert_memory_equal(sealed.data, outer, sizeof(outer) - 1);
    assert_memory_equal(sealed.data + sizeof(outer) - 1, type, strlen(type));
    assert_non_null(strstr(sealed.data, "Content-Transfer-Encoding: base64"));
    assert_true(strstr(sealed.data, "text/plain") == NULL);
    open_sealed(&sealed, pkey, cert, &nid, &plain);
    assert_int_equal(nid, want_nid);
    assert_int_equal(plain.len, sizeof(entity) - 1);
    assert_memory_equal(plain.data, entity, plain.len);
    sp_buf_free(&sealed);
    sp_buf_free(&plain);
    X509_free(cert);
}

static void
seal_cbc_opens_to_the_entity(void **state)
{
    (void)state;
    seal_and_open(pki.rsa, SP_SEAL_AES256_CBC, NID_pkcs7_enveloped);
    seal_and_open(pki.ec, SP_SEAL_AES256_CBC, NID_pkcs7_enveloped);
}

static void
seal_gcm_opens_to_the_entity(void **state)
{
    (void)state;
    seal_and_open(pki.rsa, SP_SEAL_AES256_GCM,
                  NID_id_smime_ct_authEnvelopedData);
    seal_and_open(pki.ec, SP_SEAL_AES256_GCM,
                  NID_id_smime_ct_authEnvelopedData);
}

static void
seal_with_a_replacement_subject_carries_the_real_one_inside(void **state)
{
    sp_seal_options options = {.cipher = SP_SEAL_AES256_GCM,
                               .subject = "Encrypted message"};
    sp_buf sealed = SP_BUF_INIT, plain = SP_BUF_INIT, header = SP_BUF_INIT;
    X509 *cert;
    int nid;

    (void)state;
    seal(pki.rsa, &cert, &options, &sealed);
    assert_wire_lines(&sealed);
    assert_int_equal(sp_buf_append(&header, sealed.data, header_len(&sealed)),
                     SP_OK);
    assert_non_null(strstr(header.data, "\r\nSubject: Encrypted message\r\n"));
    assert_null(strstr(header.data, "Quarterly"));
    assert_non_null(strstr(header.data, "\r\nMessage-ID: <q3@example.org>"));
    open_sealed(&sealed, pki.rsa, cert, &nid, &plain);
    assert_string_equal(plain.data, "Subject: Quarterly numbers\r\n"
                                    "Content-Type: text/plain;\r\n"
                                    "\tcharset=utf-8\r\n"
                                    "Content-Transfer-Encoding: 8bit\r\n"
                                    "\r\n"
                                    "Numbers inside: 42 \xe2\x82\xac.\r\n"
                                    "Trailing spaces stay.   \r\n");
    sp_buf_free(&sealed);
    sp_buf_free(&plain);
    sp_buf_free(&header);
    X509_free(cert);
}

static void
split_keeps_routing_outside_and_content_inside(void **state)
{
    sp_seal_parts parts;
    sp_error err;

    (void)state;
    assert_int_equal(
        sp_seal_split(message, sizeof(message) - 1, NULL, &parts, &err), SP_OK);
    assert_string_equal(parts.outer.data,
                        "Received: from mx.example.org by relay.example.net;"
                        "\r\n Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                        "From: Sender <sender@example.org>\r\n"
                        "To: Alice <alice@example.org>\r\n"
                        "Subject: Quarterly numbers\r\n"
                        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                        "Message-ID: <q3@example.org>\r\n");
    assert_int_equal(parts.entity.len, sizeof(entity) - 1);
    assert_memory_equal(parts.entity.data, entity, parts.entity.len);
    sp_seal_parts_free(&parts);

    assert_int_equal(sp_seal_split("From: a\r\nno end", 15, NULL, &parts, &err),
                     SP_ESYNTAX);
}

/* Every allocation failure is SP_ENOMEM, and leaves nothing behind. */
static void
read_and_seal_survive_failing_allocations(void **state)
{
    sp_seal_options options = {.cipher = SP_SEAL_AES256_CBC};
    cert_spec spec = good_spec();
    X509 *cert = make_cert(&spec);
    sp_buf pem = SP_BUF_INIT, out = SP_BUF_INIT;
    sp_seal_key *key = NULL;
    sp_error err;
    int rc = SP_ENOMEM;

    (void)state;
    append_pem(&pem, cert);
    append_pem(&pem, pki.inter);
    for (long allowed = 0; rc == SP_ENOMEM; allowed++) {
        sp_alloc_fail_after(allowed);
        rc = read_key(&pem, &key, &err);
        sp_alloc_fail_after(-1);
        assert_true(rc == SP_OK || rc == SP_ENOMEM);
    }
    rc = SP_ENOMEM;
    for (long allowed = 0; rc == SP_ENOMEM; allowed++) {
        sp_alloc_fail_after(allowed);
        rc = sp_seal_message(key, message, sizeof(message) - 1, &options, &out,
                             &err);
        sp_alloc_fail_after(-1);
        assert_true(rc == SP_OK || rc == SP_ENOMEM);
        if (rc != SP_OK)
            assert_int_equal(out.len, 0);
    }
    assert_true(out.len > 0);
    sp_seal_key_free(key);
    sp_buf_free(&pem);
    sp_buf_free(&out);
    X509_free(cert);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_accepts_a_good_certificate_with_its_chain),
        cmocka_unit_test(read_accepts_der),
        cmocka_unit_test(read_skips_text_around_pem_blocks),
        cmocka_unit_test(read_takes_the_subject_address_without_alt_names),
        cmocka_unit_test(read_accepts_ec_with_key_agreement_and_any_eku),
        cmocka_unit_test(read_refuses_expired_and_future_certificates),
        cmocka_unit_test(read_refuses_usages_that_forbid_encryption),
        cmocka_unit_test(read_refuses_small_rsa_keys),
        cmocka_unit_test(read_refuses_certificates_without_a_trusted_root),
        cmocka_unit_test(read_reports_an_unreadable_ca_file),
        cmocka_unit_test(read_calls_garbage_a_syntax_error),
        cmocka_unit_test(seal_cbc_opens_to_the_entity),
        cmocka_unit_test(seal_gcm_opens_to_the_entity),
        cmocka_unit_test(
            seal_with_a_replacement_subject_carries_the_real_one_inside),
        cmocka_unit_test(split_keeps_routing_outside_and_content_inside),
        cmocka_unit_test(read_and_seal_survive_failing_allocations),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
