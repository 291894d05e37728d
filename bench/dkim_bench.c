/*
 * dkim_bench.c: the DKIM benchmark, sealpost against libopendkim, one
 * thread, in one run.
 *
 * Owns main.  For each message size and each algorithm (RSA-2048,
 * Ed25519; relaxed/relaxed) it times signing and verifying with both
 * libraries and the bare signature operation (bench_bare.c), in
 * interleaved rounds (bench_time.c), and prints one line per figure for
 * bench/run to put in its table:
 *
 *   result op=sign size=4k bytes=4201 alg=rsa-sha256 impl=sealpost
 *          rate=1234.5 messages=3702 rounds=5
 *   check op=sign size=4k alg=rsa-sha256 signer=libopendkim
 *          verifier=sealpost status=pass
 *
 * It also leaves in --dir what the other measurements need: keys.txt (the
 * key records, one "name record" line each: libopendkim's query file, and
 * dkimpy's answers) and the messages signed by sealpost with index.txt
 * listing them ("size alg file").
 *
 * Nothing is printed for work that failed: a signature that does not
 * verify with sealpost's verifier, or a verification that does not pass,
 * stops the run with the reason on stderr and exit status 1.  Usage
 * errors exit with 2.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_COUNT  2
#define SIZE_COUNT 2

/* The messages timed, by approximate size. */
static const struct {
    const char *label; /* as printed: size=4k */
    size_t bytes;      /* target length of the whole message */
} sizes[SIZE_COUNT] = {
    {"4k", 4 * 1024},
    {"100k", 100 * 1024},
};

/* What a run needs besides the case being timed. */
struct run {
    const char *dir;       /* output directory for the other measurements */
    bench_plan plan;       /* rounds and their length */
    const char *only_op;   /* --op: "sign" or "verify", NULL for both */
    const char *only_size; /* --size: a size label, NULL for all */
    const char *only_alg;  /* --alg: an a= value, NULL for all */
    bench_key keys[KEY_COUNT];
    bench_opendkim *opendkim;
    FILE *index; /* dir/index.txt, open while running */
    char why[BENCH_WHY_SIZE];
};

static void
usage(void)
{
    fprintf(stderr,
            "usage: dkim_bench --dir DIR [--rounds N] [--seconds S]\n"
            "                  [--op OP] [--size SIZE] [--alg ALG]\n"
            "  --dir DIR    where to write keys.txt and the signed messages\n"
            "  --rounds N   timed rounds per figure, median kept (5)\n"
            "  --seconds S  length of one round (0.4)\n"
            "  --op OP      only sign or only verify (for profiling)\n"
            "  --size SIZE  only 4k or only 100k\n"
            "  --alg ALG    only rsa-sha256 or only ed25519-sha256\n");
    exit(2);
}

static void
parse_options(int argc, char **argv, struct run *run)
{
    run->plan.rounds = 5;
    run->plan.round_seconds = 0.4;
    for (int i = 1; i < argc; i++) {
        if (i + 1 == argc)
            usage();
        if (strcmp(argv[i], "--dir") == 0)
            run->dir = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0)
            run->plan.rounds = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0)
            run->plan.round_seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--op") == 0)
            run->only_op = argv[++i];
        else if (strcmp(argv[i], "--size") == 0)
            run->only_size = argv[++i];
        else if (strcmp(argv[i], "--alg") == 0)
            run->only_alg = argv[++i];
        else
            usage();
    }
    if (run->dir == NULL || run->plan.rounds == 0 ||
        run->plan.rounds > BENCH_MAX_ROUNDS || !(run->plan.round_seconds > 0))
        usage();
}

/*
 * Make a key of the given type for the run.  The signer gets it the way
 * sealpostd does, parsed once from PEM text with sp_dkim_key_parse.
 */
static int
make_key(sp_dkim_keytype type, bench_key *key, char *why)
{
    sp_dkim_key *fresh = NULL;
    sp_error err;
    int rc;

    key->alg = type == SP_DKIM_KEY_RSA ? "rsa-sha256" : "ed25519-sha256";
    key->label = type == SP_DKIM_KEY_RSA ? "rsa2048" : "ed25519";
    snprintf(key->dns_name, sizeof(key->dns_name), "%s._domainkey.%s",
             key->label, BENCH_DOMAIN);
    rc = sp_dkim_key_generate(type, 2048, &fresh, &err);
    if (rc == SP_OK &&
        (sp_dkim_key_pem(fresh, &key->pem) != SP_OK ||
         sp_dkim_key_record(fresh, false, &key->record) != SP_OK))
        rc = sp_err_set(&err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK)
        rc = sp_dkim_key_parse(key->pem.data, key->pem.len, &key->key, &err);
    sp_dkim_key_free(fresh);
    if (rc != SP_OK)
        snprintf(why, BENCH_WHY_SIZE, "%s key: %s", key->label, err.text);
    return rc == SP_OK ? 0 : -1;
}

/* Write data to dir/name; 0 or -1 with why filled. */
static int
write_file(const char *dir, const char *name, const char *data, size_t len,
           char *why)
{
    char path[4096];
    FILE *file;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    file = fopen(path, "wb");
    if (file == NULL || fwrite(data, 1, len, file) != len ||
        fclose(file) != 0) {
        snprintf(why, BENCH_WHY_SIZE, "cannot write %.300s", path);
        return -1;
    }
    return 0;
}

/* The keys, dir/keys.txt, and libopendkim reading that file. */
static int
setup_keys(struct run *run)
{
    sp_buf lines = SP_BUF_INIT;
    char path[4096];
    int rc = 0;

    if (make_key(SP_DKIM_KEY_RSA, &run->keys[0], run->why) != 0 ||
        make_key(SP_DKIM_KEY_ED25519, &run->keys[1], run->why) != 0)
        return -1;
    for (size_t i = 0; i < KEY_COUNT && rc == 0; i++)
        if (sp_buf_printf(&lines, "%s %s\n", run->keys[i].dns_name,
                          run->keys[i].record.data) != SP_OK)
            rc = -1;
    if (rc == 0)
        rc = write_file(run->dir, "keys.txt", lines.data, lines.len, run->why);
    sp_buf_free(&lines);
    if (rc != 0)
        return -1;

    snprintf(path, sizeof(path), "%s/keys.txt", run->dir);
    run->opendkim = bench_opendkim_new(path, run->why);
    return run->opendkim ? 0 : -1;
}

static void
print_results(const char *op, const char *size, const bench_message *msg,
              const bench_key *key, const bench_job *jobs, size_t count,
              const bench_plan *plan)
{
    for (size_t j = 0; j < count; j++)
        printf("result op=%s size=%s bytes=%zu alg=%s impl=%s rate=%.1f "
               "messages=%lu rounds=%u\n",
               op, size, msg->len, key->alg, jobs[j].impl, jobs[j].median,
               jobs[j].messages, plan->rounds);
    fflush(stdout);
}

/* Check that field, made by signer, verifies with sealpost over msg. */
static int
check_signature(struct run *run, const char *signer, const char *field,
                size_t field_len, const bench_message *msg, const char *size,
                const bench_key *key)
{
    bench_sealpost_verifier *verifier;
    bench_message signed_msg;
    int rc;

    if (bench_msg_prepend(msg, field, field_len, &signed_msg, run->why) != 0)
        return -1;
    verifier = bench_sealpost_verifier_new(run->keys, KEY_COUNT, &signed_msg,
                                           run->why);
    rc = verifier ? bench_sealpost_verify_step(verifier, run->why) : -1;
    bench_sealpost_verifier_free(verifier);
    bench_msg_free(&signed_msg);
    if (rc != 0)
        return -1;
    printf("check op=sign size=%s alg=%s signer=%s verifier=sealpost "
           "status=pass\n",
           size, key->alg, signer);
    return 0;
}

/* Time signing msg with key by both libraries, then check their output. */
static int
run_sign(struct run *run, const char *size, const bench_message *msg,
         const bench_key *key)
{
    bench_sealpost_signer *ours;
    bench_opendkim_signer *theirs;
    bench_bare *bare;
    const char *field;
    size_t field_len;
    int rc = -1;

    ours = bench_sealpost_signer_new(key, msg, run->why);
    theirs = bench_opendkim_signer_new(run->opendkim, key, msg, run->why);
    bare = bench_bare_new(key, false, run->why);
    if (ours != NULL && theirs != NULL && bare != NULL) {
        bench_job jobs[3] = {
            {.impl = "sealpost",
             .step = bench_sealpost_sign_step,
             .state = ours},
            {.impl = "libopendkim",
             .step = bench_opendkim_sign_step,
             .state = theirs},
            {.impl = "bare", .step = bench_bare_step, .state = bare},
        };

        rc = bench_time_jobs(jobs, 3, &run->plan, run->why);
        if (rc == 0)
            print_results("sign", size, msg, key, jobs, 3, &run->plan);
    }

    /* The last signature each one made in the timed loop. */
    if (rc == 0) {
        field = bench_sealpost_signature(ours, &field_len);
        rc = check_signature(run, "sealpost", field, field_len, msg, size, key);
    }
    if (rc == 0) {
        field = bench_opendkim_signature(theirs, &field_len);
        rc = check_signature(run, "libopendkim", field, field_len, msg, size,
                             key);
    }
    bench_sealpost_signer_free(ours);
    bench_opendkim_signer_free(theirs);
    bench_bare_free(bare);
    return rc;
}

/* Sign msg once with sealpost and keep the result for the verifiers. */
static int
make_signed(struct run *run, const char *size, const bench_message *msg,
            const bench_key *key, bench_message *signed_msg)
{
    bench_sealpost_signer *signer;
    const char *field;
    size_t field_len;
    char name[64];
    int rc;

    signer = bench_sealpost_signer_new(key, msg, run->why);
    if (signer == NULL)
        return -1;
    rc = bench_sealpost_sign_step(signer, run->why);
    if (rc == 0) {
        field = bench_sealpost_signature(signer, &field_len);
        rc = bench_msg_prepend(msg, field, field_len, signed_msg, run->why);
    }
    bench_sealpost_signer_free(signer);
    if (rc != 0)
        return -1;

    /* For dkimpy, which runs in its own process. */
    snprintf(name, sizeof(name), "signed-%s-%s.eml", size, key->label);
    if (write_file(run->dir, name, signed_msg->data, signed_msg->len,
                   run->why) != 0) {
        bench_msg_free(signed_msg);
        return -1;
    }
    fprintf(run->index, "%s %s %s\n", size, key->alg, name);
    return 0;
}

/* Time verifying msg, signed by sealpost with key, by both libraries. */
static int
run_verify(struct run *run, const char *size, const bench_message *msg,
           const bench_key *key)
{
    bench_sealpost_verifier *ours = NULL;
    bench_opendkim_verifier *theirs = NULL;
    bench_bare *bare = NULL;
    bench_message signed_msg;
    int rc = -1;

    if (make_signed(run, size, msg, key, &signed_msg) != 0)
        return -1;
    ours = bench_sealpost_verifier_new(run->keys, KEY_COUNT, &signed_msg,
                                       run->why);
    theirs = bench_opendkim_verifier_new(run->opendkim, &signed_msg, run->why);
    bare = bench_bare_new(key, true, run->why);
    if (ours != NULL && theirs != NULL && bare != NULL) {
        bench_job jobs[3] = {
            {.impl = "sealpost",
             .step = bench_sealpost_verify_step,
             .state = ours},
            {.impl = "libopendkim",
             .step = bench_opendkim_verify_step,
             .state = theirs},
            {.impl = "bare", .step = bench_bare_step, .state = bare},
        };

        rc = bench_time_jobs(jobs, 3, &run->plan, run->why);
        if (rc == 0)
            print_results("verify", size, &signed_msg, key, jobs, 3,
                          &run->plan);
    }
    bench_sealpost_verifier_free(ours);
    bench_opendkim_verifier_free(theirs);
    bench_bare_free(bare);
    bench_msg_free(&signed_msg);
    return rc;
}

/* Whether value passes the filter only (NULL lets everything through). */
static bool
selected(const char *only, const char *value)
{
    return only == NULL || strcmp(only, value) == 0;
}

/* Sign, then verify, msg with key, as far as the filters allow. */
static int
run_case(struct run *run, const char *size, const bench_message *msg,
         const bench_key *key)
{
    int rc = 0;

    if (!selected(run->only_size, size) || !selected(run->only_alg, key->alg))
        return 0;
    fprintf(stderr, "dkim_bench: %s %s\n", size, key->alg);
    if (selected(run->only_op, "sign"))
        rc = run_sign(run, size, msg, key);
    if (rc == 0 && selected(run->only_op, "verify"))
        rc = run_verify(run, size, msg, key);
    return rc;
}

/* Every case: sizes by algorithms. */
static int
run_cases(struct run *run)
{
    char path[4096];
    int rc = 0;

    snprintf(path, sizeof(path), "%s/index.txt", run->dir);
    run->index = fopen(path, "w");
    if (run->index == NULL) {
        snprintf(run->why, BENCH_WHY_SIZE, "cannot write %.300s", path);
        return -1;
    }
    for (size_t s = 0; s < SIZE_COUNT && rc == 0; s++) {
        bench_message msg;

        if (bench_msg_make(sizes[s].bytes, &msg) != 0) {
            snprintf(run->why, BENCH_WHY_SIZE, "cannot make a message");
            rc = -1;
            break;
        }
        for (size_t k = 0; k < KEY_COUNT && rc == 0; k++)
            rc = run_case(run, sizes[s].label, &msg, &run->keys[k]);
        bench_msg_free(&msg);
    }
    if (fclose(run->index) != 0 && rc == 0) {
        snprintf(run->why, BENCH_WHY_SIZE, "cannot write %.300s", path);
        rc = -1;
    }
    return rc;
}

int
main(int argc, char **argv)
{
    struct run run = {0};
    int rc;

    parse_options(argc, argv, &run);
    rc = setup_keys(&run);
    if (rc == 0)
        rc = run_cases(&run);
    if (rc != 0)
        fprintf(stderr, "dkim_bench: %s\n", run.why);

    bench_opendkim_free(run.opendkim);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        sp_dkim_key_free(run.keys[i].key);
        sp_buf_free(&run.keys[i].pem);
        sp_buf_free(&run.keys[i].record);
    }
    return rc == 0 ? 0 : 1;
}
