/*
 * test_seal_pgp.c: PGP/MIME sealing.  Throw-away keys are made with
 * librnp at test time (RSA, Curve25519, expiring, revoked, sign-only,
 * weak); reading must accept or refuse each for the right reason, and a
 * sealed message must decrypt, with the secret key, to the entity that
 * went in, byte for byte, inside a CRLF-only multipart/encrypted message.
 */
#include "testlib.h"

#include "crypt/seal.h"

#include <jansson.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DAY 86400

/* A key made for a test: its secret half stays in ffi. */
typedef struct test_key {
    rnp_ffi_t ffi;            /* holds the secret key and subkeys */
    rnp_key_handle_t primary; /* the primary, in ffi */
    char fpr[129];            /* the primary's fingerprint */
} test_key;

static const char rsa_json[] =
    "{\"primary\": {\"type\": \"RSA\", \"length\": 2048,"
    " \"userid\": \"Test <pgp@example.com>\", \"usage\": [\"sign\"],"
    " \"expiration\": 0},"
    " \"sub\": {\"type\": \"RSA\", \"length\": 2048,"
    " \"usage\": [\"encrypt\"]}}";

static const char weak_rsa_json[] =
    "{\"primary\": {\"type\": \"RSA\", \"length\": 1024,"
    " \"userid\": \"Weak <weak@example.com>\"},"
    " \"sub\": {\"type\": \"RSA\", \"length\": 1024,"
    " \"usage\": [\"encrypt\"]}}";

static const char weak_sub_json[] =
    "{\"primary\": {\"type\": \"EDDSA\","
    " \"userid\": \"Weak Sub <weak-sub@example.com>\","
    " \"usage\": [\"sign\"]},"
    " \"sub\": {\"type\": \"RSA\", \"length\": 1024,"
    " \"usage\": [\"encrypt\"]}}";

static const char sign_only_json[] =
    "{\"primary\": {\"type\": \"EDDSA\","
    " \"userid\": \"Signer <signer@example.com>\","
    " \"usage\": [\"sign\"]}}";

/* A Curve25519 key whose primary expires after expiry seconds (0: no
 * expiry), its user id given. */
static void
cv25519_json(char *json, size_t size, const char *userid, unsigned expiry)
{
    snprintf(json, size,
             "{\"primary\": {\"type\": \"EDDSA\", \"userid\": \"%s\","
             " \"usage\": [\"sign\"], \"expiration\": %u},"
             " \"sub\": {\"type\": \"ECDH\", \"curve\": \"Curve25519\","
             " \"usage\": [\"encrypt\"]}}",
             userid, expiry);
}

/* Make a key from a rnp key generation description. */
static void
key_make(test_key *key, const char *json)
{
    char *results = NULL, *fpr = NULL;
    json_t *root;
    const char *grip;

    memset(key, 0, sizeof(*key));
    assert_int_equal(rnp_ffi_create(&key->ffi, "GPG", "GPG"), RNP_SUCCESS);
    assert_int_equal(rnp_generate_key_json(key->ffi, json, &results),
                     RNP_SUCCESS);
    root = json_loads(results, 0, NULL);
    assert_non_null(root);
    grip = json_string_value(
        json_object_get(json_object_get(root, "primary"), "grip"));
    assert_non_null(grip);
    assert_int_equal(rnp_locate_key(key->ffi, "grip", grip, &key->primary),
                     RNP_SUCCESS);
    assert_non_null(key->primary);
    json_decref(root);
    rnp_buffer_destroy(results);
    assert_int_equal(rnp_key_get_fprint(key->primary, &fpr), RNP_SUCCESS);
    snprintf(key->fpr, sizeof(key->fpr), "%s", fpr);
    rnp_buffer_destroy(fpr);
}

static void
key_free(test_key *key)
{
    rnp_key_handle_destroy(key->primary);
    rnp_ffi_destroy(key->ffi);
}

/* Append the public key with its subkeys to out, armored or binary. */
static void
key_export(const test_key *key, bool armored, sp_buf *out)
{
    rnp_output_t output = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    uint32_t flags = RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS;

    if (armored)
        flags |= RNP_KEY_EXPORT_ARMORED;
    assert_int_equal(rnp_output_to_memory(&output, 0), RNP_SUCCESS);
    assert_int_equal(rnp_key_export(key->primary, output, flags), RNP_SUCCESS);
    assert_int_equal(rnp_output_memory_get_buf(output, &data, &len, false),
                     RNP_SUCCESS);
    assert_int_equal(sp_buf_append(out, data, len), SP_OK);
    rnp_output_destroy(output);
}

/* Read the exported key at now; returns the code, err filled. */
static int
read_at(const test_key *key, bool armored, int64_t now, sp_seal_key **out,
        sp_error *err)
{
    sp_seal_check check = {.now = now, .ca_file = NULL};
    sp_buf data = SP_BUF_INIT;
    int rc;

    key_export(key, armored, &data);
    rc = sp_seal_key_read(data.data, data.len, &check, out, err);
    sp_buf_free(&data);
    return rc;
}

/* Read must refuse the key at now with code, its reason holding words. */
static void
assert_refused(const test_key *key, int64_t now, int code, const char *words)
{
    sp_seal_key *read = (sp_seal_key *)1;
    sp_error err;

    assert_int_equal(read_at(key, true, now, &read, &err), code);
    assert_null(read);
    assert_int_equal(err.code, code);
    if (strstr(err.text, words) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", err.text, words);
}

/* Decrypt armored (len octets) with the secret keys in ffi into out. */
static rnp_result_t
decrypt(rnp_ffi_t ffi, const char *armored, size_t len, sp_buf *out)
{
    rnp_input_t input = NULL;
    rnp_output_t output = NULL;
    uint8_t *data = NULL;
    size_t data_len = 0;
    rnp_result_t result;

    assert_int_equal(
        rnp_input_from_memory(&input, (const uint8_t *)armored, len, false),
        RNP_SUCCESS);
    assert_int_equal(rnp_output_to_memory(&output, 0), RNP_SUCCESS);
    result = rnp_decrypt(ffi, input, output);
    if (result == RNP_SUCCESS) {
        assert_int_equal(
            rnp_output_memory_get_buf(output, &data, &data_len, false),
            RNP_SUCCESS);
        assert_int_equal(sp_buf_append(out, data, data_len), SP_OK);
    }
    rnp_output_destroy(output);
    rnp_input_destroy(input);
    return result;
}

static const char message[] =
    "From: Sender <sender@example.org>\r\n"
    "To: Test <pgp@example.com>\r\n"
    "Subject: the quarterly figures\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "--outer\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Gr\xc3\xbc\xc3\x9f\x65, the figures are attached.\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"
    "--outer--\r\n";

/*
 * Check a sealed message's shape and return the armored text of its
 * encrypted part in armored: CRLF only, the outer fields kept, one
 * multipart/encrypted with the version part first.
 */
static void
parse_sealed(const sp_buf *sealed, sp_buf *armored)
{
    const char *at, *end, *boundary;
    char delimiter[128], closing[128];
    size_t boundary_len;

    /* CRLF only: no bare CR, no bare LF. */
    for (size_t i = 0; i < sealed->len; i++) {
        if (sealed->data[i] == '\n')
            assert_true(i > 0 && sealed->data[i - 1] == '\r');
        if (sealed->data[i] == '\r')
            assert_true(i + 1 < sealed->len && sealed->data[i + 1] == '\n');
    }

    /* The routing fields outside, the old Content-Type not. */
    assert_non_null(strstr(sealed->data, "From: Sender <sender@example.org>"));
    assert_non_null(strstr(sealed->data, "To: Test <pgp@example.com>\r\n"));
    assert_non_null(strstr(sealed->data, "Subject: the quarterly figures"));
    assert_null(strstr(sealed->data, "multipart/mixed"));
    assert_non_null(strstr(sealed->data, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(sealed->data, "Content-Type: multipart/encrypted;"));
    assert_non_null(
        strstr(sealed->data, "protocol=\"application/pgp-encrypted\""));

    /* The boundary, and the two parts it separates. */
    boundary = strstr(sealed->data, "boundary=\"");
    assert_non_null(boundary);
    boundary += strlen("boundary=\"");
    boundary_len = strcspn(boundary, "\"");
    assert_true(boundary_len > 0 && boundary_len < 70);
    snprintf(delimiter, sizeof(delimiter), "\r\n--%.*s\r\n", (int)boundary_len,
             boundary);
    snprintf(closing, sizeof(closing), "\r\n--%.*s--\r\n", (int)boundary_len,
             boundary);
    at = strstr(sealed->data, "\r\n\r\n");
    assert_non_null(at);
    at = strstr(at, delimiter);
    assert_non_null(at);
    at += strlen(delimiter);
    assert_memory_equal(at,
                        "Content-Type: application/pgp-encrypted\r\n"
                        "Content-Description: PGP/MIME version "
                        "identification\r\n\r\nVersion: 1\r\n",
                        strlen("Content-Type: application/pgp-encrypted\r\n"
                               "Content-Description: PGP/MIME version "
                               "identification\r\n\r\nVersion: 1\r\n"));
    at = strstr(at, delimiter);
    assert_non_null(at);
    at += strlen(delimiter);
    assert_memory_equal(at, "Content-Type: application/octet-stream;", 39);
    at = strstr(at, "\r\n\r\n");
    assert_non_null(at);
    at += 4;
    end = strstr(at, closing);
    assert_non_null(end);
    assert_int_equal(end + strlen(closing) - sealed->data, sealed->len);
    assert_memory_equal(at, "-----BEGIN PGP MESSAGE-----\r\n", 29);
    assert_int_equal(sp_buf_append(armored, at, (size_t)(end - at)), SP_OK);
    assert_null(memchr(at, '\0', (size_t)(end - at)));
}

/* Seal message for key, decrypt it with key's secret and compare. */
static void
assert_round_trip(const test_key *key, const sp_seal_key *read)
{
    sp_seal_options options = {.cipher = SP_SEAL_AES256_CBC, .subject = NULL};
    sp_buf sealed = SP_BUF_INIT, armored = SP_BUF_INIT, plain = SP_BUF_INIT;
    const char *entity = strstr(message, "Content-Type: multipart/mixed");
    sp_error err;

    assert_int_equal(sp_seal_message(read, message, strlen(message), &options,
                                     &sealed, &err),
                     SP_OK);
    parse_sealed(&sealed, &armored);
    assert_int_equal(decrypt(key->ffi, armored.data, armored.len, &plain),
                     RNP_SUCCESS);
    assert_int_equal(plain.len, strlen(entity));
    assert_memory_equal(plain.data, entity, plain.len);
    sp_buf_free(&sealed);
    sp_buf_free(&armored);
    sp_buf_free(&plain);
}

static void
rsa_key_is_read_and_round_trips(void **state)
{
    test_key key;
    sp_seal_key *read = NULL;
    sp_error err;
    uint32_t created = 0;

    (void)state;
    key_make(&key, rsa_json);
    assert_int_equal(rnp_key_get_creation(key.primary, &created), RNP_SUCCESS);

    /* Armored and binary read alike. */
    for (int armored = 0; armored < 2; armored++) {
        assert_int_equal(read_at(&key, armored, time(NULL), &read, &err),
                         SP_OK);
        assert_int_equal(read->method, SP_SEAL_PGP);
        assert_string_equal(read->fingerprint, key.fpr);
        assert_int_equal(strlen(read->fingerprint), 40);
        assert_string_equal(read->subject, "Test <pgp@example.com>");
        assert_int_equal(read->n_addresses, 1);
        assert_string_equal(read->addresses[0], "pgp@example.com");
        assert_true(sp_seal_key_names(read, "PGP@Example.COM"));
        assert_int_equal(read->not_before, created);
        assert_int_equal(read->not_after, 0);
        if (armored)
            assert_round_trip(&key, read);
        sp_seal_key_free(read);
    }
    key_free(&key);
}

static void
cv25519_key_names_each_valid_address(void **state)
{
    char json[512];
    test_key key;
    sp_seal_key *read = NULL;
    sp_error err;

    (void)state;
    cv25519_json(json, sizeof(json), "Curve <Curve@Example.COM>", 0);
    key_make(&key, json);

    /* A bare address counts; a name alone names no one. */
    assert_int_equal(
        rnp_key_add_uid(key.primary, "Bare@Example.ORG", NULL, 0, 0, false),
        RNP_SUCCESS);
    assert_int_equal(
        rnp_key_add_uid(key.primary, "Only A Name", NULL, 0, 0, false),
        RNP_SUCCESS);
    assert_int_equal(read_at(&key, true, time(NULL), &read, &err), SP_OK);
    assert_string_equal(read->subject, "Curve <Curve@Example.COM>");
    assert_int_equal(read->n_addresses, 2);
    assert_string_equal(read->addresses[0], "curve@example.com");
    assert_string_equal(read->addresses[1], "bare@example.org");
    assert_false(sp_seal_key_names(read, "only"));
    assert_round_trip(&key, read);
    sp_seal_key_free(read);
    key_free(&key);
}

static void
expiry_is_judged_at_the_check_time(void **state)
{
    char json[512];
    test_key key;
    sp_seal_key *read = NULL;
    sp_error err;
    uint32_t created = 0;
    int64_t now = time(NULL);

    (void)state;
    cv25519_json(json, sizeof(json), "Soon <soon@example.com>", DAY);
    key_make(&key, json);
    assert_int_equal(rnp_key_get_creation(key.primary, &created), RNP_SUCCESS);

    /* Valid now, with its end; expired two days on; not yet before. */
    assert_int_equal(read_at(&key, true, now, &read, &err), SP_OK);
    assert_int_equal(read->not_after, (int64_t)created + DAY);
    sp_seal_key_free(read);
    assert_refused(&key, now + 2 * DAY, SP_EKEY, "expired on");
    assert_refused(&key, (int64_t)created - DAY, SP_EKEY, "not valid before");
    key_free(&key);
}

static void
expired_by_the_clock_but_not_at_the_check_time(void **state)
{
    char json[512];
    test_key key;
    sp_seal_key *read = NULL;
    sp_seal_options options = {.cipher = SP_SEAL_AES256_CBC, .subject = NULL};
    sp_buf sealed = SP_BUF_INIT;
    sp_error err;
    uint32_t created = 0;

    (void)state;
    cv25519_json(json, sizeof(json), "Gone <gone@example.com>", 1);
    key_make(&key, json);
    assert_int_equal(rnp_key_get_creation(key.primary, &created), RNP_SUCCESS);
    sleep(2);

    /* Read judges at the time it is given, rnp's own view aside. */
    assert_refused(&key, time(NULL), SP_EKEY, "expired on");
    assert_int_equal(read_at(&key, true, created, &read, &err), SP_OK);

    /* rnp will not encrypt to it now: an error, never plaintext. */
    assert_int_equal(sp_seal_message(read, message, strlen(message), &options,
                                     &sealed, &err),
                     SP_ECRYPTO);
    assert_int_equal(sealed.len, 0);
    sp_seal_key_free(read);
    key_free(&key);
}

static void
revoked_keys_are_refused(void **state)
{
    char json[512];
    test_key key;
    rnp_key_handle_t sub = NULL;

    (void)state;
    cv25519_json(json, sizeof(json), "Revoked <revoked@example.com>", 0);
    key_make(&key, json);
    assert_int_equal(
        rnp_key_revoke(key.primary, 0, NULL, "retired", "left the company"),
        RNP_SUCCESS);
    assert_refused(&key, time(NULL), SP_EKEY, "is revoked");
    key_free(&key);

    /* A revoked encryption subkey leaves nothing to encrypt to. */
    key_make(&key, json);
    assert_int_equal(rnp_key_get_subkey_at(key.primary, 0, &sub), RNP_SUCCESS);
    assert_int_equal(rnp_key_revoke(sub, 0, NULL, "compromised", NULL),
                     RNP_SUCCESS);
    rnp_key_handle_destroy(sub);
    assert_refused(&key, time(NULL), SP_EKEY, "may encrypt");
    key_free(&key);
}

static void
keys_that_cannot_encrypt_safely_are_refused(void **state)
{
    test_key key;

    (void)state;
    key_make(&key, sign_only_json);
    assert_refused(&key, time(NULL), SP_EKEY, "may encrypt");
    key_free(&key);

    key_make(&key, weak_rsa_json);
    assert_refused(&key, time(NULL), SP_EKEY, "RSA of 1024 bits");
    key_free(&key);

    key_make(&key, weak_sub_json);
    assert_refused(&key, time(NULL), SP_EKEY, "under 2048 bits");
    key_free(&key);
}

static void
what_is_no_single_key_is_a_syntax_error(void **state)
{
    static const char garbage[] = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n"
                                  "\n"
                                  "bm90IGEga2V5\n"
                                  "-----END PGP PUBLIC KEY BLOCK-----\n";
    static const unsigned char packet[] = {0x99, 0x00, 0x03, 0x04, 0x00, 0x00};
    sp_seal_check check = {.now = time(NULL), .ca_file = NULL};
    char json[512];
    test_key one, two;
    sp_buf both = SP_BUF_INIT;
    sp_seal_key *read = NULL;
    sp_error err;

    (void)state;
    assert_int_equal(
        sp_seal_key_read(garbage, strlen(garbage), &check, &read, &err),
        SP_ESYNTAX);
    assert_null(read);
    assert_int_equal(
        sp_seal_pgp_read(packet, sizeof(packet), &check, &read, &err),
        SP_ESYNTAX);
    assert_null(read);

    /* Two keys in one file. */
    cv25519_json(json, sizeof(json), "One <one@example.com>", 0);
    key_make(&one, json);
    cv25519_json(json, sizeof(json), "Two <two@example.com>", 0);
    key_make(&two, json);
    key_export(&one, false, &both);
    key_export(&two, false, &both);
    assert_int_equal(sp_seal_key_read(both.data, both.len, &check, &read, &err),
                     SP_ESYNTAX);
    assert_non_null(strstr(err.text, "one key per file"));
    assert_null(read);
    sp_buf_free(&both);
    key_free(&one);
    key_free(&two);
}

static void
allocation_failures_are_reported_and_leak_nothing(void **state)
{
    char json[512];
    test_key key;
    sp_buf data = SP_BUF_INIT, sealed = SP_BUF_INIT;
    sp_seal_check check = {.now = time(NULL), .ca_file = NULL};
    sp_seal_options options = {.cipher = SP_SEAL_AES256_CBC,
                               .subject = "sealed"};
    sp_seal_key *read = NULL;
    sp_error err;
    int rc;

    (void)state;
    cv25519_json(json, sizeof(json), "Mem <mem@example.com>", 0);
    key_make(&key, json);
    key_export(&key, true, &data);

    /* Fail each allocation of read in turn, then of sealing. */
    for (long allowed = 0;; allowed++) {
        sp_alloc_fail_after(allowed);
        rc = sp_seal_key_read(data.data, data.len, &check, &read, &err);
        sp_alloc_fail_after(-1);
        if (rc == SP_OK)
            break;
        assert_int_equal(rc, SP_ENOMEM);
        assert_null(read);
    }
    for (long allowed = 0;; allowed++) {
        sp_alloc_fail_after(allowed);
        rc = sp_seal_message(read, message, strlen(message), &options, &sealed,
                             &err);
        sp_alloc_fail_after(-1);
        if (rc == SP_OK)
            break;
        assert_int_equal(rc, SP_ENOMEM);
        assert_int_equal(sealed.len, 0);
    }
    assert_non_null(strstr(sealed.data, "Subject: sealed\r\n"));
    sp_buf_free(&sealed);
    sp_seal_key_free(read);
    sp_buf_free(&data);
    key_free(&key);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rsa_key_is_read_and_round_trips),
        cmocka_unit_test(cv25519_key_names_each_valid_address),
        cmocka_unit_test(expiry_is_judged_at_the_check_time),
        cmocka_unit_test(expired_by_the_clock_but_not_at_the_check_time),
        cmocka_unit_test(revoked_keys_are_refused),
        cmocka_unit_test(keys_that_cannot_encrypt_safely_are_refused),
        cmocka_unit_test(what_is_no_single_key_is_a_syntax_error),
        cmocka_unit_test(allocation_failures_are_reported_and_leak_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
