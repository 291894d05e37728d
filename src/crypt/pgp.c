/*
 * pgp.c: PGP/MIME sealing (RFC 3156) with librnp: reading and checking a
 * recipient's OpenPGP public key, and wrapping a split message's entity
 * into a multipart/encrypted message for it.
 *
 * Owns sp_seal_pgp_read, sp_seal_pgp_wrap and sp_seal_pgp_free.  A read
 * key keeps its own rnp ffi holding just that key (the primary and its
 * subkeys); wrap finds the primary again by its fingerprint and lets rnp
 * choose the encryption subkey.
 *
 * Checks are made at check->now, not at the wall clock: the primary must
 * not be revoked, must have been created by then and must not have
 * expired; some key or subkey, itself unrevoked and valid then, must
 * allow encryption; RSA and ElGamal keys under 2048 bits are refused.
 * rnp itself judges validity at the wall clock when it picks the subkey
 * to encrypt to, so a key read with a check time far from now may still
 * fail in wrap (SP_ECRYPTO), never silently.
 *
 * The message is encrypted with AES-256 in a SEIPD packet with its
 * modification detection code, which every OpenPGP implementation reads
 * (AEAD packets are not yet read by all), and without compression: the
 * attachments that make a message large are mostly compressed already,
 * and compressing secrets together with text an attacker chose can leak
 * through the length.
 *
 * An ffi is not safe to use from two threads at once, so wrap holds the
 * key's lock around it; reading and freeing are the caller's to order.
 *
 * Nothing here is fatal and nothing is logged: every failure returns its
 * code and sentence.  Known limit: librnp itself writes parser
 * diagnostics to standard error, with no switch per ffi, so a program
 * that reads keys from others should send its standard error to its log.
 */
#include "mail/mail.h"
#include "seal.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PGP_MIN_BITS 2048 /* the least RSA or ElGamal key accepted */
#define PGP_ADDRESS  254  /* longest address kept (RFC 5321 path) */

/* What a read key holds beside the fields of sp_seal_key. */
typedef struct pgp_impl {
    rnp_ffi_t ffi;        /* holds the key alone; NULL until made */
    pthread_mutex_t lock; /* held while wrap uses ffi */
} pgp_impl;

/* The code for a failed rnp call: SP_ENOMEM when it ran out of memory. */
static int
pgp_code(rnp_result_t result, int otherwise)
{
    return result == RNP_ERROR_OUT_OF_MEMORY ? SP_ENOMEM : otherwise;
}

/* Write t as "YYYY-MM-DD HH:MM:SS UTC" into text (32 octets). */
static void
pgp_time_text(int64_t t, char text[32])
{
    time_t when = (time_t)t;
    struct tm tm;

    if (gmtime_r(&when, &tm) == NULL ||
        strftime(text, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(text, 32, "%lld", (long long)t);
}

/* ------------------------------------------------------------------------
 * Reading.
 */

/*
 * The one primary key in ffi into *primary (the caller destroys the
 * handle).  SP_ESYNTAX for none and for more than one, SP_ECRYPTO,
 * SP_ENOMEM; *primary is NULL then.
 */
static int
pgp_find_primary(rnp_ffi_t ffi, rnp_key_handle_t *primary, sp_error *err)
{
    rnp_identifier_iterator_t it = NULL;
    const char *fpr = NULL;
    size_t primaries = 0;
    rnp_result_t result;
    int rc = SP_OK;

    /* The iterator lists subkeys too; count the primaries among them. */
    *primary = NULL;
    result = rnp_identifier_iterator_create(ffi, &it, "fingerprint");
    while (result == RNP_SUCCESS && rc == SP_OK) {
        rnp_key_handle_t handle = NULL;
        bool is_primary = false;

        result = rnp_identifier_iterator_next(it, &fpr);
        if (result != RNP_SUCCESS || fpr == NULL)
            break;
        result = rnp_locate_key(ffi, "fingerprint", fpr, &handle);
        if (result == RNP_SUCCESS && handle != NULL)
            result = rnp_key_is_primary(handle, &is_primary);
        if (result == RNP_SUCCESS && is_primary && ++primaries == 1) {
            *primary = handle;
            handle = NULL;
        }
        if (primaries > 1)
            rc = sp_err_set(err, SP_ESYNTAX,
                            "the file holds several OpenPGP keys; "
                            "one key per file");
        rnp_key_handle_destroy(handle);
    }
    rnp_identifier_iterator_destroy(it);
    if (rc == SP_OK && result != RNP_SUCCESS)
        rc = sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                        "rnp could not list the keys read: %s",
                        rnp_result_to_string(result));
    if (rc == SP_OK && primaries == 0)
        rc = sp_err_set(err, SP_ESYNTAX,
                        "the file holds no OpenPGP primary key");
    if (rc != SP_OK) {
        rnp_key_handle_destroy(*primary);
        *primary = NULL;
    }
    return rc;
}

/*
 * Import data into a new ffi in impl and find its one primary key into
 * *primary (the caller destroys the handle).  SP_ESYNTAX for bytes rnp
 * cannot read as public keys, for no primary key and for more than one;
 * SP_ECRYPTO, SP_ENOMEM.  impl->ffi is set whenever it was made, so the
 * caller frees it on failure too.
 */
static int
pgp_import(pgp_impl *impl, const void *data, size_t len,
           rnp_key_handle_t *primary, sp_error *err)
{
    rnp_input_t input = NULL;
    rnp_result_t result;

    *primary = NULL;
    result = rnp_ffi_create(&impl->ffi, "GPG", "GPG");
    if (result != RNP_SUCCESS) {
        impl->ffi = NULL;
        return sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                          "rnp could not start: %s",
                          rnp_result_to_string(result));
    }
    result = rnp_input_from_memory(&input, data, len, false);
    if (result != RNP_SUCCESS)
        return sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                          "rnp could not take the key's bytes: %s",
                          rnp_result_to_string(result));
    result = rnp_import_keys(impl->ffi, input, RNP_LOAD_SAVE_PUBLIC_KEYS, NULL);
    rnp_input_destroy(input);
    if (result != RNP_SUCCESS)
        return sp_err_set(err, pgp_code(result, SP_ESYNTAX),
                          "not an OpenPGP public key: %s",
                          rnp_result_to_string(result));
    return pgp_find_primary(impl->ffi, primary, err);
}

/*
 * The addr-spec a user id names, lower-cased into out (PGP_ADDRESS + 1
 * octets): what stands between the last '<' and the '>' after it, or the
 * whole user id when it is a bare address.  false when it names none.
 */
static bool
pgp_uid_address(const char *uid, char out[PGP_ADDRESS + 1])
{
    const char *start = strrchr(uid, '<'), *end;
    size_t len, at = 0, ats = 0;

    if (start != NULL) {
        start++;
        end = strchr(start, '>');
        if (end == NULL)
            return false;
    } else {
        start = uid;
        end = uid + strlen(uid);
    }
    len = (size_t)(end - start);
    if (len == 0 || len > PGP_ADDRESS)
        return false;

    /* One '@' with something on each side, no space, control or bracket. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)start[i];

        if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',')
            return false;
        if (c == '@') {
            ats++;
            at = i;
        }
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[len] = '\0';
    return ats == 1 && at > 0 && at + 1 < len;
}

/* Add address to key->addresses unless it is there already; SP_ENOMEM. */
static int
pgp_add_address(sp_seal_key *key, const char *address)
{
    char **grown, *copy;

    if (sp_seal_key_names(key, address))
        return SP_OK;
    copy = sp_strndup(address, strlen(address));
    if (copy == NULL)
        return SP_ENOMEM;
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
 * Fill key->subject with the first valid, unrevoked user id and
 * key->addresses with the address of each such one.  SP_ENOMEM, SP_ECRYPTO.
 */
static int
pgp_read_uids(sp_seal_key *key, rnp_key_handle_t primary, sp_error *err)
{
    size_t count = 0;
    rnp_result_t result = rnp_key_get_uid_count(primary, &count);
    int rc = SP_OK;

    for (size_t i = 0; result == RNP_SUCCESS && rc == SP_OK && i < count; i++) {
        rnp_uid_handle_t uid = NULL;
        uint32_t type = 0;
        bool valid = false, revoked = true;
        char *text = NULL, address[PGP_ADDRESS + 1];

        /* Photo ids and other attributes name no one. */
        result = rnp_key_get_uid_handle_at(primary, i, &uid);
        if (result == RNP_SUCCESS)
            result = rnp_uid_get_type(uid, &type);
        if (result == RNP_SUCCESS && type == RNP_USER_ID)
            result = rnp_uid_is_valid(uid, &valid);
        if (result == RNP_SUCCESS && valid)
            result = rnp_uid_is_revoked(uid, &revoked);
        if (result == RNP_SUCCESS && valid)
            result = rnp_key_get_uid_at(primary, i, &text);
        rnp_uid_handle_destroy(uid);
        if (result != RNP_SUCCESS || text == NULL)
            continue;

        if (!revoked && key->subject[0] == '\0')
            snprintf(key->subject, sizeof(key->subject), "%s", text);
        if (!revoked && pgp_uid_address(text, address))
            rc = pgp_add_address(key, address);
        rnp_buffer_destroy(text);
    }
    if (rc != SP_OK)
        return sp_err_set(err, rc, "out of memory");
    if (result != RNP_SUCCESS)
        return sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                          "rnp could not read the user ids: %s",
                          rnp_result_to_string(result));
    return SP_OK;
}

/*
 * The key's fingerprint, validity and user ids into key.  SP_ECRYPTO,
 * SP_ENOMEM.
 */
static int
pgp_describe(sp_seal_key *key, rnp_key_handle_t primary, sp_error *err)
{
    char *fpr = NULL;
    uint32_t created = 0;
    uint64_t till = 0;
    rnp_result_t result;

    result = rnp_key_get_fprint(primary, &fpr);
    if (result == RNP_SUCCESS) {
        snprintf(key->fingerprint, sizeof(key->fingerprint), "%s", fpr);
        rnp_buffer_destroy(fpr);
        result = rnp_key_get_creation(primary, &created);
    }
    if (result == RNP_SUCCESS)
        result = rnp_key_valid_till64(primary, &till);
    if (result != RNP_SUCCESS)
        return sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                          "rnp could not describe the key: %s",
                          rnp_result_to_string(result));

    /* rnp: zero for never valid, the largest value for no expiry. */
    key->not_before = created;
    key->not_after = till == UINT64_MAX ? 0 : (int64_t)till;
    return pgp_read_uids(key, primary, err);
}

/*
 * Whether handle (a primary or subkey) may encrypt at now: unrevoked,
 * created by now, valid till after now and allowed to encrypt.  *weak is
 * set when it could, but is RSA or ElGamal under PGP_MIN_BITS.
 */
static rnp_result_t
pgp_can_encrypt(rnp_key_handle_t handle, int64_t now, bool *usable, bool *weak)
{
    bool revoked = true, allowed = false;
    uint32_t created = 0, bits = 0;
    uint64_t till = 0;
    char *alg = NULL;
    rnp_result_t result;

    *usable = false;
    result = rnp_key_is_revoked(handle, &revoked);
    if (result == RNP_SUCCESS)
        result = rnp_key_allows_usage(handle, "encrypt", &allowed);
    if (result == RNP_SUCCESS)
        result = rnp_key_get_creation(handle, &created);
    if (result == RNP_SUCCESS)
        result = rnp_key_valid_till64(handle, &till);
    if (result != RNP_SUCCESS || revoked || !allowed || created > now ||
        till == 0 || (till != UINT64_MAX && (int64_t)till <= now))
        return result;

    result = rnp_key_get_alg(handle, &alg);
    if (result == RNP_SUCCESS)
        result = rnp_key_get_bits(handle, &bits);
    if (result == RNP_SUCCESS && bits < PGP_MIN_BITS &&
        (strcmp(alg, RNP_ALGNAME_RSA) == 0 ||
         strcmp(alg, RNP_ALGNAME_ELGAMAL) == 0))
        *weak = true;
    else if (result == RNP_SUCCESS)
        *usable = true;
    rnp_buffer_destroy(alg);
    return result;
}

/*
 * Refuse an encryption key that is weak, or find none: SP_EKEY when no
 * key or subkey may encrypt at now, or one that could is too small.
 */
static int
pgp_check_encrypt(const sp_seal_key *key, rnp_key_handle_t primary, int64_t now,
                  sp_error *err)
{
    bool usable = false, weak = false, found = false;
    size_t count = 0;
    rnp_result_t result = pgp_can_encrypt(primary, now, &found, &weak);

    if (result == RNP_SUCCESS)
        result = rnp_key_get_subkey_count(primary, &count);
    for (size_t i = 0; result == RNP_SUCCESS && i < count; i++) {
        rnp_key_handle_t sub = NULL;

        result = rnp_key_get_subkey_at(primary, i, &sub);
        if (result == RNP_SUCCESS)
            result = pgp_can_encrypt(sub, now, &usable, &weak);
        found = found || usable;
        rnp_key_handle_destroy(sub);
    }
    if (result != RNP_SUCCESS)
        return sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                          "rnp could not check the subkeys: %s",
                          rnp_result_to_string(result));

    /* rnp may pick any usable subkey, so one weak one spoils the key. */
    if (weak)
        return sp_err_set(err, SP_EKEY,
                          "the OpenPGP key %s encrypts with an RSA or "
                          "ElGamal key under %d bits",
                          key->fingerprint, PGP_MIN_BITS);
    if (!found)
        return sp_err_set(err, SP_EKEY,
                          "the OpenPGP key %s has no valid, unrevoked and "
                          "unexpired key or subkey that may encrypt",
                          key->fingerprint);
    return SP_OK;
}

/*
 * Check the primary key at now: not revoked, self-signed, created, not
 * expired, not a weak RSA key, and some key that may encrypt.  SP_EKEY with the
 * reason, SP_ECRYPTO, SP_ENOMEM.
 */
static int
pgp_check(const sp_seal_key *key, rnp_key_handle_t primary, int64_t now,
          sp_error *err)
{
    bool revoked = false;
    char *alg = NULL, when[32];
    uint32_t bits = 0;
    uint64_t till = 0;
    rnp_result_t result;
    int rc = SP_OK;

    result = rnp_key_is_revoked(primary, &revoked);
    if (result == RNP_SUCCESS)
        result = rnp_key_valid_till64(primary, &till);
    if (result == RNP_SUCCESS)
        result = rnp_key_get_alg(primary, &alg);
    if (result == RNP_SUCCESS)
        result = rnp_key_get_bits(primary, &bits);
    if (result != RNP_SUCCESS)
        rc = sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                        "rnp could not check the key: %s",
                        rnp_result_to_string(result));
    else if (revoked)
        rc = sp_err_set(err, SP_EKEY, "the OpenPGP key %s is revoked",
                        key->fingerprint);
    else if (till == 0)
        rc = sp_err_set(err, SP_EKEY,
                        "the OpenPGP key %s has no valid self-signature",
                        key->fingerprint);
    else if (key->not_before > now) {
        pgp_time_text(key->not_before, when);
        rc = sp_err_set(err, SP_EKEY,
                        "the OpenPGP key %s is not valid before %s",
                        key->fingerprint, when);
    } else if (key->not_after != 0 && key->not_after <= now) {
        pgp_time_text(key->not_after, when);
        rc = sp_err_set(err, SP_EKEY, "the OpenPGP key %s expired on %s",
                        key->fingerprint, when);
    } else if (strcmp(alg, RNP_ALGNAME_RSA) == 0 && bits < PGP_MIN_BITS)
        rc = sp_err_set(err, SP_EKEY,
                        "the OpenPGP key %s is RSA of %u bits; sealpost "
                        "needs %d at least",
                        key->fingerprint, bits, PGP_MIN_BITS);
    rnp_buffer_destroy(alg);
    if (rc == SP_OK)
        rc = pgp_check_encrypt(key, primary, now, err);
    return rc;
}

/*
 * Read an OpenPGP public key (armored or binary; seal.c has told it from
 * a certificate) and check it at check->now.  On success *out holds the
 * key, its ffi inside; free it with sp_seal_key_free.  SP_ESYNTAX for
 * bytes that are no key or hold several, SP_EKEY with the reason for a
 * key that fails a check, SP_ECRYPTO, SP_ENOMEM; *out is NULL then.
 */
int
sp_seal_pgp_read(const void *data, size_t len, const sp_seal_check *check,
                 sp_seal_key **out, sp_error *err)
{
    sp_seal_key *key = sp_calloc(1, sizeof(*key));
    pgp_impl *impl = sp_calloc(1, sizeof(*impl));
    rnp_key_handle_t primary = NULL;
    int rc;

    *out = NULL;
    if (key == NULL || impl == NULL) {
        sp_free(key);
        sp_free(impl);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (pthread_mutex_init(&impl->lock, NULL) != 0) {
        sp_free(key);
        sp_free(impl);
        return sp_err_set(err, SP_ENOMEM, "no lock for the key");
    }
    key->method = SP_SEAL_PGP;
    key->impl = impl;

    rc = pgp_import(impl, data, len, &primary, err);
    if (rc == SP_OK)
        rc = pgp_describe(key, primary, err);
    if (rc == SP_OK)
        rc = pgp_check(key, primary, check->now, err);
    rnp_key_handle_destroy(primary);
    if (rc != SP_OK) {
        sp_seal_key_free(key);
        return rc;
    }
    *out = key;
    return SP_OK;
}

/* Release the ffi and the lock of a key read by sp_seal_pgp_read; the
 * rest of the key is seal.c's to free. */
void
sp_seal_pgp_free(sp_seal_key *key)
{
    pgp_impl *impl = key->impl;

    if (impl == NULL)
        return;
    if (impl->ffi != NULL)
        rnp_ffi_destroy(impl->ffi);
    pthread_mutex_destroy(&impl->lock);
    sp_free(impl);
    key->impl = NULL;
}

/* ------------------------------------------------------------------------
 * Wrapping.
 */

/*
 * Encrypt entity (len octets) to the key with fingerprint fpr in ffi,
 * armored, into armored with every line ended by CRLF.  SP_ECRYPTO with
 * rnp's reason, SP_ENOMEM.
 */
static int
pgp_encrypt(rnp_ffi_t ffi, const char *fpr, const char *entity, size_t len,
            sp_buf *armored, sp_error *err)
{
    rnp_key_handle_t handle = NULL;
    rnp_input_t input = NULL;
    rnp_output_t output = NULL;
    rnp_op_encrypt_t op = NULL;
    uint8_t *text = NULL;
    size_t text_len = 0;
    rnp_result_t result;
    int rc = SP_OK;

    result = rnp_locate_key(ffi, "fingerprint", fpr, &handle);
    if (result == RNP_SUCCESS && handle == NULL)
        result = RNP_ERROR_KEY_NOT_FOUND;
    if (result == RNP_SUCCESS)
        result =
            rnp_input_from_memory(&input, (const uint8_t *)entity, len, false);
    if (result == RNP_SUCCESS)
        result = rnp_output_to_memory(&output, 0);
    if (result == RNP_SUCCESS)
        result = rnp_op_encrypt_create(&op, ffi, input, output);

    /* See the header comment for the choice of packet and compression. */
    if (result == RNP_SUCCESS)
        result = rnp_op_encrypt_add_recipient(op, handle);
    if (result == RNP_SUCCESS)
        result = rnp_op_encrypt_set_cipher(op, "AES256");
    if (result == RNP_SUCCESS)
        result = rnp_op_encrypt_set_aead(op, "None");
    if (result == RNP_SUCCESS)
        result = rnp_op_encrypt_set_compression(op, "Uncompressed", 0);
    if (result == RNP_SUCCESS)
        result = rnp_op_encrypt_set_armor(op, true);
    if (result == RNP_SUCCESS)
        result = rnp_op_encrypt_execute(op);
    if (result == RNP_SUCCESS)
        result = rnp_output_memory_get_buf(output, &text, &text_len, false);

    /* rnp ends armor lines with LF; mail wants CRLF and nothing else. */
    if (result == RNP_SUCCESS) {
        sp_mail_eol eol;

        sp_mail_eol_init(&eol);
        rc = sp_mail_eol_feed(&eol, text, text_len, armored);
        if (rc == SP_OK)
            rc = sp_mail_eol_finish(&eol, armored);
    }
    if (result == RNP_SUCCESS && rc == SP_OK &&
        (armored->len < 2 || armored->data[armored->len - 1] != '\n'))
        rc = sp_buf_append(armored, "\r\n", 2);

    rnp_op_encrypt_destroy(op);
    rnp_output_destroy(output);
    rnp_input_destroy(input);
    rnp_key_handle_destroy(handle);
    if (result != RNP_SUCCESS)
        return sp_err_set(err, pgp_code(result, SP_ECRYPTO),
                          "OpenPGP encryption failed: %s",
                          rnp_result_to_string(result));
    if (rc != SP_OK)
        return sp_err_set(err, rc, "out of memory");
    return SP_OK;
}

/*
 * Append the multipart/encrypted message to out: the outer fields, the
 * MIME fields, the version part and armored as the encrypted part, all
 * between boundaries that armor cannot contain ('=' is followed by
 * '_' nowhere in it).  SP_ECRYPTO for want of random bytes, SP_ENOMEM.
 */
static int
pgp_compose(const sp_seal_parts *parts, const sp_buf *armored, sp_buf *out)
{
    unsigned char random[16];
    char boundary[sizeof("=_sealpost_") + 2 * sizeof(random)] = "=_sealpost_";
    size_t at = strlen(boundary);
    int rc;

    if (RAND_bytes(random, sizeof(random)) != 1)
        return SP_ECRYPTO;
    for (size_t i = 0; i < sizeof(random); i++, at += 2)
        snprintf(boundary + at, 3, "%02x", random[i]);

    rc = sp_buf_append(out, parts->outer.data, parts->outer.len);
    if (rc == SP_OK)
        rc = sp_buf_printf(
            out,
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/encrypted;\r\n"
            " protocol=\"application/pgp-encrypted\";\r\n"
            " boundary=\"%s\"\r\n"
            "\r\n"
            "This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n"
            "--%s\r\n"
            "Content-Type: application/pgp-encrypted\r\n"
            "Content-Description: PGP/MIME version identification\r\n"
            "\r\n"
            "Version: 1\r\n"
            "\r\n"
            "--%s\r\n"
            "Content-Type: application/octet-stream; "
            "name=\"encrypted.asc\"\r\n"
            "Content-Description: OpenPGP encrypted message\r\n"
            "Content-Disposition: inline; filename=\"encrypted.asc\"\r\n"
            "\r\n",
            boundary, boundary, boundary);
    if (rc == SP_OK)
        rc = sp_buf_append(out, armored->data, armored->len);
    if (rc == SP_OK)
        rc = sp_buf_printf(out, "\r\n--%s--\r\n", boundary);
    return rc;
}

/*
 * Encrypt parts->entity to key (read by sp_seal_pgp_read) and append the
 * PGP/MIME message to out.  SP_ECRYPTO with rnp's reason, SP_ENOMEM; out
 * is unchanged after a failure.  Safe to call from several threads with
 * the same key.
 */
int
sp_seal_pgp_wrap(const sp_seal_key *key, const sp_seal_parts *parts,
                 sp_buf *out, sp_error *err)
{
    pgp_impl *impl = key->impl;
    sp_buf armored = SP_BUF_INIT, message = SP_BUF_INIT;
    int rc;

    pthread_mutex_lock(&impl->lock);
    rc = pgp_encrypt(impl->ffi, key->fingerprint, parts->entity.data,
                     parts->entity.len, &armored, err);
    pthread_mutex_unlock(&impl->lock);
    if (rc == SP_OK) {
        rc = pgp_compose(parts, &armored, &message);
        if (rc == SP_ECRYPTO)
            sp_err_set(err, rc, "no random bytes for the MIME boundary");
        else if (rc != SP_OK)
            sp_err_set(err, rc, "out of memory");
    }
    if (rc == SP_OK && sp_buf_append(out, message.data, message.len) != 0)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    sp_buf_free(&armored);
    sp_buf_free(&message);
    return rc;
}
