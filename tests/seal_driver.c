/*
 * seal_driver.c: seals one message through seal.h for the integration
 * tests (test_seal_smime.py and the OpenPGP ones), until the command line
 * can do it.
 *
 *   seal_driver KEYFILE [--ca FILE] [--gcm] [--subject S] < message
 *
 * KEYFILE is any key sp_seal_key_read takes (a certificate, PEM or DER,
 * or an OpenPGP public key), checked at the current time, with FILE as
 * extra trust anchors for a certificate.  The message on standard input
 * is made CRLF first, as sealpost's intake makes every message; the sealed
 * message goes to standard output.  --gcm asks for AES-256-GCM (S/MIME
 * only), --subject replaces the outer Subject.
 *
 * Exit status 0; 2 when the key is refused (SP_EKEY), 1 for any other
 * failure, 3 for usage; the reason goes to standard error.
 */
#include "crypt/seal.h"
#include "mail/mail.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Everything from file into buf; false with errno on a read error. */
static bool
slurp(FILE *file, sp_buf *buf)
{
    char chunk[65536];
    size_t got;

    while ((got = fread(chunk, 1, sizeof(chunk), file)) > 0)
        if (sp_buf_append(buf, chunk, got) != SP_OK) {
            errno = ENOMEM;
            return false;
        }
    return !ferror(file);
}

static int
usage(void)
{
    fprintf(stderr, "usage: seal_driver KEYFILE [--ca FILE] [--gcm] "
                    "[--subject S] < message > sealed\n");
    return 3;
}

/* The key in path, read and checked; the exit status on failure. */
static int
load_key(const char *path, const char *ca_file, sp_seal_key **key)
{
    sp_seal_check check = {.now = (int64_t)time(NULL), .ca_file = ca_file};
    sp_buf bytes = SP_BUF_INIT;
    FILE *file = fopen(path, "rb");
    sp_error err;
    int rc;

    if (file == NULL || !slurp(file, &bytes)) {
        fprintf(stderr, "seal_driver: %s: %s\n", path, strerror(errno));
        if (file != NULL)
            fclose(file);
        sp_buf_free(&bytes);
        return 1;
    }
    fclose(file);
    rc = sp_seal_key_read(bytes.data, bytes.len, &check, key, &err);
    sp_buf_free(&bytes);
    if (rc != SP_OK) {
        fprintf(stderr, "seal_driver: %s: %s: %s\n", path, sp_err_name(rc),
                err.text);
        return rc == SP_EKEY ? 2 : 1;
    }
    return 0;
}

/* Standard input, every line ending made CRLF, into message. */
static int
read_message(sp_buf *message)
{
    sp_buf raw = SP_BUF_INIT;
    sp_mail_eol eol;
    int rc = SP_ENOMEM;

    if (!slurp(stdin, &raw)) {
        fprintf(stderr, "seal_driver: standard input: %s\n", strerror(errno));
        sp_buf_free(&raw);
        return 1;
    }
    sp_mail_eol_init(&eol);
    if (sp_mail_eol_feed(&eol, raw.data, raw.len, message) == SP_OK)
        rc = sp_mail_eol_finish(&eol, message);
    sp_buf_free(&raw);
    if (rc != SP_OK || sp_buf_append(message, "", 0) != SP_OK) {
        fprintf(stderr, "seal_driver: out of memory\n");
        return 1;
    }
    return 0;
}

/* Seal message for key and write the result; the exit status. */
static int
seal(const sp_seal_key *key, const sp_buf *message,
     const sp_seal_options *options)
{
    sp_buf out = SP_BUF_INIT;
    sp_error err;
    int rc;

    rc = sp_seal_message(key, message->data, message->len, options, &out, &err);
    if (rc != SP_OK) {
        fprintf(stderr, "seal_driver: %s: %s\n", sp_err_name(rc), err.text);
        return rc == SP_EKEY ? 2 : 1;
    }
    rc = fwrite(out.data, 1, out.len, stdout) == out.len && fflush(stdout) == 0
             ? 0
             : 1;
    if (rc != 0)
        fprintf(stderr, "seal_driver: standard output: %s\n", strerror(errno));
    sp_buf_free(&out);
    return rc;
}

int
main(int argc, char **argv)
{
    sp_seal_options options = {.cipher = SP_SEAL_AES256_CBC, .subject = NULL};
    const char *ca_file = NULL;
    sp_seal_key *key = NULL;
    sp_buf message = SP_BUF_INIT;
    int status;

    if (argc < 2 || argv[1][0] == '-')
        return usage();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--gcm") == 0)
            options.cipher = SP_SEAL_AES256_GCM;
        else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            ca_file = argv[++i];
        else if (strcmp(argv[i], "--subject") == 0 && i + 1 < argc)
            options.subject = argv[++i];
        else
            return usage();
    }

    status = load_key(argv[1], ca_file, &key);
    if (status == 0)
        status = read_message(&message);
    if (status == 0)
        status = seal(key, &message, &options);
    sp_seal_key_free(key);
    sp_buf_free(&message);
    return status;
}
