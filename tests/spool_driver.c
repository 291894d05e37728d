/*
 * spool_driver.c: drives the spool library for the integration tests
 * that kill it (test_spool_crash.py) and starve it of space
 * (test_spool_full.py).
 *
 *   spool_driver DIR run THREADS MAX_SIZE
 *       submit from THREADS threads until killed, each message of 1 to
 *       MAX_SIZE octets
 *   spool_driver DIR serve [MIN_FREE]
 *       read commands from standard input: "submit N SIZE" submits N
 *       messages of SIZE octets from one thread and waits for all of
 *       them, then prints "end"; "quit" closes the spool and exits
 *   spool_driver DIR check [delete]
 *       read every message back (as the command line would, no_writer),
 *       check it against what its name says it must be, print it, and
 *       with "delete" remove it afterwards; then "count N"
 *
 * Output, one line each, written with one write(2) so that a SIGKILL
 * never leaves half a line:
 *   ok ID HASH SIZE         done reported SP_OK: the message is durable
 *   fail ID CODE            done reported an error
 *   refused CODE            sp_queue_submit refused at once
 *   have ID HASH SIZE good  (check) found, and equal to what was sent
 *   have ID HASH SIZE bad   (check) found, but not what was sent
 *
 * A message's bytes, sender and recipients follow from a name the driver
 * gives it, carried as the envelope's identity (message_make), so check
 * can compare byte for byte without the test having kept them; HASH is 64-bit
 * FNV-1a of the bytes, so the test also compares what was acknowledged with
 * what was found.  Exit status 0, or 1 when the spool cannot be opened or read
 * (reason on stderr), 2 for usage.
 */
#include "queue/queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 64

static size_t max_size = 4096;

/* One line to stdout in one write, so lines never interleave or tear. */
static void say(const char *fmt, ...) SP_PRINTF(1, 2);

static void
say(const char *fmt, ...)
{
    char line[256];
    va_list args;
    int len;

    va_start(args, fmt);
    len = vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    if (len > 0 && write(STDOUT_FILENO, line, (size_t)len) != len)
        _exit(1);
}

static uint64_t
fnv1a(const void *data, size_t len)
{
    const unsigned char *at = data;
    uint64_t hash = 14695981039346656037ull;

    for (size_t i = 0; i < len; i++)
        hash = (hash ^ at[i]) * 1099511628211ull;
    return hash;
}

/* What a message with this name must hold. */
struct message {
    char sender[64];
    char recipient[2][64];
    size_t recipient_count;
    sp_buf data;
};

/*
 * Fill msg from its name and size (0: a size drawn from the name, 1 to
 * max_size): a header with the name, then bytes from a generator seeded
 * with the name.
 */
static void
message_make(const char *name, size_t size, struct message *msg)
{
    uint64_t state = fnv1a(name, strlen(name)) | 1;
    char head[80];
    int head_len;

    if (size == 0)
        size = 1 + state % max_size;
    snprintf(msg->sender, sizeof(msg->sender), "s-%s@example.com", name);
    msg->recipient_count = 1 + state % 2;
    for (size_t i = 0; i < msg->recipient_count; i++)
        snprintf(msg->recipient[i], sizeof(msg->recipient[i]),
                 "r%zu-%s@example.org", i, name);
    sp_buf_reset(&msg->data);
    head_len = snprintf(head, sizeof(head), "Message-ID: <%s@test>\r\n", name);
    if (sp_buf_append(&msg->data, head, (size_t)head_len) != SP_OK)
        abort();
    if (sp_buf_reserve(&msg->data, size) != SP_OK)
        abort();
    for (size_t i = msg->data.len; i < size; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        msg->data.data[i] = (char)(state & 0xff);
    }
    msg->data.len = size; /* the header may be cut short by a small size */
}

/* ------------------------------------------------------------------------
 * Submitting
 */

/* A submission's own copy of what it sent, until done. */
struct pending {
    uint64_t hash;
    size_t size;
    int *outstanding; /* serve: submissions not yet done, under lock */
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

static void
on_done(void *arg, int rc, const char *id, const sp_error *err)
{
    struct pending *pending = arg;

    (void)err;
    if (rc == SP_OK)
        say("ok %s %016llx %zu\n", id, (unsigned long long)pending->hash,
            pending->size);
    else
        say("fail %s %s\n", id, sp_err_name(rc));
    pthread_mutex_lock(&done_lock);
    if (pending->outstanding != NULL)
        (*pending->outstanding)--;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
    free(pending);
}

/*
 * Submit one message of size octets (0: drawn from its name), made from
 * a name unique to this process and submission.  The name travels as the
 * envelope's identity, so check can make the message again from what the
 * spool returns.  Prints "refused" when the submission is refused at
 * once; done prints the rest.
 */
static int
submit_one(sp_queue *queue, size_t size, int *outstanding, struct message *msg)
{
    static unsigned long long serial;
    char name[40], id[SP_QUEUE_ID_SIZE] = "";
    const char *recipients[2];
    struct pending *pending = malloc(sizeof(*pending));
    sp_queue_envelope envelope;
    sp_error err;
    int rc;

    if (pending == NULL)
        abort();
    snprintf(name, sizeof(name), "%ld-%llu", (long)getpid(),
             __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
    message_make(name, size, msg);
    recipients[0] = msg->recipient[0];
    recipients[1] = msg->recipient[1];
    envelope = (sp_queue_envelope){
        .sender = msg->sender,
        .recipients = recipients,
        .recipient_count = msg->recipient_count,
        .client_ip = "127.0.0.1",
        .identity = name,
    };
    pending->hash = fnv1a(msg->data.data, msg->data.len);
    pending->size = msg->data.len;
    pending->outstanding = outstanding;
    rc = sp_queue_submit(queue, &envelope, msg->data.data, msg->data.len,
                         on_done, pending, id, &err);
    if (rc != SP_OK) {
        say("refused %s\n", sp_err_name(rc));
        free(pending);
    }
    return rc;
}

static void *
run_thread(void *arg)
{
    sp_queue *queue = arg;
    struct message msg = {.data = SP_BUF_INIT};
    int outstanding;

    /* One message in flight per thread, as one SMTP session has. */
    for (;;) {
        outstanding = 1;
        if (submit_one(queue, 0, &outstanding, &msg) != SP_OK) {
            usleep(10000);
            continue;
        }
        pthread_mutex_lock(&done_lock);
        while (outstanding > 0)
            pthread_cond_wait(&done_cond, &done_lock);
        pthread_mutex_unlock(&done_lock);
    }
    return NULL;
}

static int
command_run(sp_queue *queue, int threads)
{
    pthread_t thread[MAX_THREADS];

    for (int t = 0; t < threads; t++)
        if (pthread_create(&thread[t], NULL, run_thread, queue) != 0)
            return 1;
    say("started\n");
    for (;;)
        pause(); /* until the test kills us */
}

static int
command_serve(sp_queue *queue)
{
    struct message msg = {.data = SP_BUF_INIT};
    char line[128];
    int outstanding = 0;

    while (fgets(line, sizeof(line), stdin) != NULL) {
        unsigned long count, size;

        if (strncmp(line, "quit", 4) == 0)
            break;
        if (sscanf(line, "submit %lu %lu", &count, &size) != 2 || size == 0)
            return 2;
        for (unsigned long i = 0; i < count; i++) {
            pthread_mutex_lock(&done_lock);
            outstanding++;
            pthread_mutex_unlock(&done_lock);
            if (submit_one(queue, size, &outstanding, &msg) != SP_OK) {
                pthread_mutex_lock(&done_lock);
                outstanding--;
                pthread_mutex_unlock(&done_lock);
            }
        }
        pthread_mutex_lock(&done_lock);
        while (outstanding > 0)
            pthread_cond_wait(&done_cond, &done_lock);
        pthread_mutex_unlock(&done_lock);
        say("end\n");
    }
    sp_buf_free(&msg.data);
    return 0;
}

/* ------------------------------------------------------------------------
 * Checking
 */

struct checker {
    sp_queue *queue;
    struct message expected;
    sp_buf data;
    char (*ids)[SP_QUEUE_ID_SIZE]; /* found, for deleting afterwards */
    size_t count;
    size_t capacity;
    bool failed;
};

/* Whether info describes what message_make gives for its name. */
static bool
envelope_matches(const sp_queue_info *info, const struct message *expected)
{
    if (strcmp(info->sender, expected->sender) != 0 ||
        info->recipient_count != expected->recipient_count)
        return false;
    for (size_t i = 0; i < info->recipient_count; i++)
        if (strcmp(info->recipients[i], expected->recipient[i]) != 0)
            return false;
    return true;
}

static void
on_found(void *arg, const sp_queue_info *info)
{
    struct checker *self = arg;
    sp_error err;
    bool good;

    sp_buf_reset(&self->data);
    if (sp_queue_read(self->queue, info->id, NULL, NULL, &self->data, &err) !=
        SP_OK) {
        fprintf(stderr, "spool_driver: read %s: %s\n", info->id, err.text);
        self->failed = true;
        return;
    }
    message_make(info->identity, info->size, &self->expected);
    good =
        info->size == self->data.len &&
        envelope_matches(info, &self->expected) &&
        memcmp(self->data.data, self->expected.data.data, self->data.len) == 0;
    say("have %s %016llx %zu %s\n", info->id,
        (unsigned long long)fnv1a(self->data.data, self->data.len),
        self->data.len, good ? "good" : "bad");
    if (self->count == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 1024;
        self->ids = realloc(self->ids, self->capacity * sizeof(*self->ids));
        if (self->ids == NULL)
            abort();
    }
    memcpy(self->ids[self->count++], info->id, SP_QUEUE_ID_SIZE);
}

static int
command_check(sp_queue *queue, bool delete)
{
    struct checker self = {.queue = queue};
    sp_error err;

    if (sp_queue_list(queue, on_found, &self, &err) != SP_OK) {
        fprintf(stderr, "spool_driver: list: %s\n", err.text);
        return 1;
    }
    for (size_t i = 0; delete &&i < self.count; i++)
        if (sp_queue_delete(queue, self.ids[i], &err) != SP_OK) {
            fprintf(stderr, "spool_driver: delete: %s\n", err.text);
            return 1;
        }
    say("count %zu\n", self.count);
    sp_buf_free(&self.data);
    sp_buf_free(&self.expected.data);
    free(self.ids);
    return self.failed ? 1 : 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: spool_driver DIR run THREADS MAX_SIZE\n"
                    "       spool_driver DIR serve [MIN_FREE]\n"
                    "       spool_driver DIR check [delete]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    sp_queue_options options = {0};
    sp_queue *queue = NULL;
    sp_error err;
    int status;

    if (argc < 3)
        usage();
    if (strcmp(argv[2], "run") == 0 && argc == 5) {
        max_size = strtoul(argv[4], NULL, 10);
        if (atoi(argv[3]) < 1 || atoi(argv[3]) > MAX_THREADS || max_size < 1)
            usage();
    } else if (strcmp(argv[2], "serve") == 0 && argc <= 4) {
        options.min_free_bytes = argc == 4 ? strtoull(argv[3], NULL, 10) : 0;
    } else if (strcmp(argv[2], "check") == 0 && argc <= 4) {
        options.no_writer = true;
    } else
        usage();

    if (sp_queue_open(argv[1], &options, &queue, &err) != SP_OK) {
        fprintf(stderr, "spool_driver: open: %s\n", err.text);
        return 1;
    }
    if (strcmp(argv[2], "run") == 0)
        status = command_run(queue, atoi(argv[3]));
    else if (strcmp(argv[2], "serve") == 0)
        status = command_serve(queue);
    else
        status = command_check(queue, argc == 4);
    sp_queue_close(queue);
    return status;
}
