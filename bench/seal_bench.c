/*
 * seal_bench.c: how fast sealpost seals one message for one recipient,
 * the encryption benchmark's sealpost side (bench/seal_bench_run drives
 * it and runs the peers).
 *
 *   seal_bench KEYFILE MESSAGE N [--ca CAFILE] [--out FILE]
 *
 * Owns main.  It reads the recipient's key once (sp_seal_key_read,
 * checked at the current time, with CAFILE as extra trust anchors for a
 * certificate), as the daemon reads a recipient's key once and seals
 * many messages with it, then seals MESSAGE (taken as it is: CRLF line
 * endings, as sealpost's intake makes every message) N times with
 * sp_seal_message, AES-256-CBC for S/MIME, each time into a fresh buffer
 * that is freed again.  One warm-up seal comes first and is not timed;
 * its result goes to FILE with --out, for the driver's decryption check.
 *
 * It prints one line on standard output:
 *
 *   result method=smime|pgp encryptions=N in_octets=... out_octets=...
 *       key_read_us=... cpu_s=... wall_s=... cpu_rate=... wall_rate=...
 *
 * (on one line), the rates in encryptions per second of the process's
 * CPU time (user + system, getrusage) and of wall-clock time.  Exit
 * status 1 when a file cannot be read or written or a key or seal fails
 * (the reason on standard error), 2 for usage.
 */
#include "clock.h"
#include "crypt/seal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* The whole of path into buf; false after saying why. */
static bool
slurp(const char *path, sp_buf *buf)
{
    char chunk[65536];
    FILE *file = fopen(path, "rb");
    size_t got;
    bool ok = file != NULL;

    while (ok && (got = fread(chunk, 1, sizeof(chunk), file)) > 0)
        if (sp_buf_append(buf, chunk, got) != SP_OK) {
            errno = ENOMEM;
            ok = false;
        }
    if (ok && ferror(file))
        ok = false;
    if (!ok)
        fprintf(stderr, "seal_bench: %s: %s\n", path, strerror(errno));
    if (file != NULL)
        fclose(file);
    return ok;
}

/* len octets of data into path; false after saying why. */
static bool
spill(const char *path, const void *data, size_t len)
{
    FILE *file = fopen(path, "wb");
    bool ok = file != NULL && fwrite(data, 1, len, file) == len;

    if (file != NULL && fclose(file) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "seal_bench: %s: %s\n", path, strerror(errno));
    return ok;
}

/*
 * The key in path, read and checked once, into *key; its reading time in
 * microseconds into *read_us.  False after saying why.
 */
static bool
load_key(const char *path, const char *ca_file, sp_seal_key **key,
         double *read_us)
{
    sp_seal_check check = {.now = (int64_t)time(NULL), .ca_file = ca_file};
    sp_buf bytes = SP_BUF_INIT;
    sp_error err;
    double started;
    int rc;

    if (!slurp(path, &bytes)) {
        sp_buf_free(&bytes);
        return false;
    }
    started = bench_wall_s();
    rc = sp_seal_key_read(bytes.data, bytes.len, &check, key, &err);
    *read_us = (bench_wall_s() - started) * 1e6;
    sp_buf_free(&bytes);
    if (rc != SP_OK)
        fprintf(stderr, "seal_bench: %s: %s: %s\n", path, sp_err_name(rc),
                err.text);
    return rc == SP_OK;
}

/* One seal of message into a fresh buffer; its size, or 0 after saying
 * why.  The result is kept in *keep when keep is not NULL. */
static size_t
seal_once(const sp_seal_key *key, const sp_buf *message, sp_buf *keep)
{
    sp_seal_options options = {.cipher = SP_SEAL_AES256_CBC, .subject = NULL};
    sp_buf out = SP_BUF_INIT;
    sp_error err;
    size_t len;
    int rc;

    rc =
        sp_seal_message(key, message->data, message->len, &options, &out, &err);
    if (rc != SP_OK) {
        fprintf(stderr, "seal_bench: %s: %s\n", sp_err_name(rc), err.text);
        sp_buf_free(&out);
        return 0;
    }
    len = out.len;
    if (keep != NULL)
        *keep = out;
    else
        sp_buf_free(&out);
    return len;
}

static int
usage(void)
{
    fprintf(stderr, "usage: seal_bench KEYFILE MESSAGE N [--ca CAFILE] "
                    "[--out FILE]\n");
    return 2;
}

int
main(int argc, char **argv)
{
    const char *ca_file = NULL, *out_path = NULL;
    sp_buf message = SP_BUF_INIT, first = SP_BUF_INIT;
    sp_seal_key *key = NULL;
    double read_us = 0, cpu_started, wall_started, cpu, wall;
    size_t out_len = 0;
    long count;
    char *end;
    int status = 1;

    if (argc < 4)
        return usage();
    count = strtol(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0' || count < 1)
        return usage();
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            ca_file = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else
            return usage();
    }

    if (!load_key(argv[1], ca_file, &key, &read_us) ||
        !slurp(argv[2], &message))
        goto done;

    /* The warm-up: the libraries' first-use costs stay out of the timing,
     * and its result is the one the driver decrypts. */
    out_len = seal_once(key, &message, &first);
    if (out_len == 0 ||
        (out_path != NULL && !spill(out_path, first.data, first.len)))
        goto done;

    cpu_started = bench_cpu_s();
    wall_started = bench_wall_s();
    for (long i = 0; i < count; i++)
        if (seal_once(key, &message, NULL) == 0)
            goto done;
    cpu = bench_cpu_s() - cpu_started;
    wall = bench_wall_s() - wall_started;

    printf("result method=%s encryptions=%ld in_octets=%zu out_octets=%zu "
           "key_read_us=%.0f cpu_s=%.4f wall_s=%.4f cpu_rate=%.1f "
           "wall_rate=%.1f\n",
           sp_seal_method_name(key->method), count, message.len, out_len,
           read_us, cpu, wall, cpu > 0 ? (double)count / cpu : 0.0,
           wall > 0 ? (double)count / wall : 0.0);
    status = fflush(stdout) == 0 ? 0 : 1;

done:
    sp_seal_key_free(key);
    sp_buf_free(&message);
    sp_buf_free(&first);
    return status;
}
