/*
 * spool_bench.c: the spool benchmark: which storage can make messages
 * durable fastest on this machine's disk, with sessions submitting at
 * once as the daemon's do.
 *
 * Owns main.  For every design in spool_stores.c, 1, 8 and 20 submitting
 * threads and messages of 4 KiB and 64 KiB, it runs the same harness: each
 * thread submits one message, waits until the writer thread says it is
 * durable, and submits the next; the writer takes every message waiting
 * (up to --max-batch), commits them with one flush, and wakes their
 * threads.  The cases run in turns, --rounds times, so a burst of load
 * from elsewhere on the shared machine spoils one round of every design
 * rather than all of one.
 *
 * It prints one line per case and round, then a table:
 *
 *   result design=sqlite threads=20 size=4k rate=9876.5 ...
 *   | design | threads | size | msg/s | median ms | p99 ms | CPU us/msg |
 *
 * rate is the median of the rounds; the latencies are those of every
 * submission of every round; CPU is the process's user and system time
 * (all threads) per message.  Each case writes into a fresh directory
 * under --dir, removed after it; --dir must be on the disk being measured
 * (not a tmpfs).  A store failure stops the run with exit status 1; usage
 * errors exit with 2.
 */
#include "spool_bench.h"
#include "clock.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS  64
#define MAX_ROUNDS   9
#define DESIGN_COUNT 5

static const spool_store_ops *const designs[DESIGN_COUNT] = {
    &spool_sqlite_ops, &spool_sqlite_ckpt_ops, &spool_log_ops,
    &spool_files_ops,  &spool_library_ops,
};

static const unsigned thread_counts[] = {1, 8, 20};
static const struct {
    const char *label; /* as printed: size=4k */
    size_t bytes;      /* message length */
    bool usual;        /* timed unless --size names another */
} sizes[] = {{"4k", 4096, true}, {"10k", 10240, false}, {"64k", 65536, true}};

#define THREAD_CASES (sizeof(thread_counts) / sizeof(thread_counts[0]))
#define SIZE_CASES   (sizeof(sizes) / sizeof(sizes[0]))

static const char *const recipients[] = {
    "alice@example.org",
    "bob@example.net",
    "carol@example.com",
};

/* A submission waiting for the writer. */
struct item {
    spool_msg msg;
    struct item *next; /* in the writer's queue */
    bool done;         /* set by the writer, under the lock */
    int rc;            /* the commit's result */
};

/* What the threads of one case share. */
struct harness {
    pthread_mutex_t lock;
    pthread_cond_t work; /* the writer waits here for submissions */
    pthread_cond_t done; /* submitters wait here for their commit */
    struct item *head;   /* waiting submissions, oldest first */
    struct item **tail;
    bool stop;        /* submitters stop at their next submission */
    bool writer_exit; /* every submitter has finished */
    const spool_store_ops *ops;
    void *store;
    unsigned max_batch;
    uint64_t next_number; /* unique message numbers */
    uint64_t groups;      /* commits made */
    uint64_t messages;    /* messages committed */
    char why[SPOOL_WHY_SIZE];
    bool failed;
};

/* One submitting thread and its latencies. */
struct submitter {
    pthread_t thread;
    struct harness *harness;
    const char *data; /* the message bytes it submits */
    size_t len;
    double *latency; /* ms per submission, grown as needed */
    size_t count;
    size_t capacity;
};

/* Accumulated over the rounds of one case. */
struct result {
    double rate[MAX_ROUNDS]; /* messages per second, per round */
    double *latency;         /* ms, every submission of every round */
    size_t count;
    size_t capacity;    /* of latency[] */
    double cpu_seconds; /* user and system time of all rounds */
    uint64_t messages;
    uint64_t groups;
};

static struct {
    const char *dir;
    double seconds;
    unsigned rounds;
    unsigned max_batch;
    const char *only_design; /* --design: names, comma-separated */
    unsigned only_threads;   /* --threads: one of thread_counts, or 0 */
    const char *only_size;   /* --size: a size label, or NULL */
} options = {.seconds = 3.0, .rounds = 3, .max_batch = 256};

static void
die(const char *why)
{
    fprintf(stderr, "spool_bench: %s\n", why);
    exit(1);
}

static void
record(double **values, size_t *count, size_t *capacity, double value)
{
    if (*count == *capacity) {
        *capacity = *capacity ? *capacity * 2 : 4096;
        *values = realloc(*values, *capacity * sizeof(**values));
        if (*values == NULL)
            die("out of memory");
    }
    (*values)[(*count)++] = value;
}

/* ------------------------------------------------------------------------
 * The writer: one commit per group of waiting submissions.
 */

/* Take up to max_batch waiting items off the queue; caller holds lock. */
static size_t
take_group(struct harness *h, struct item **group)
{
    size_t count = 0;

    while (h->head != NULL && count < h->max_batch) {
        group[count++] = h->head;
        h->head = h->head->next;
    }
    if (h->head == NULL)
        h->tail = &h->head;
    return count;
}

static void *
writer_main(void *arg)
{
    struct harness *h = arg;
    struct item **group = calloc(h->max_batch, sizeof(*group));
    const spool_msg **msgs = calloc(h->max_batch, sizeof(*msgs));
    char why[SPOOL_WHY_SIZE];

    if (group == NULL || msgs == NULL)
        die("out of memory");
    pthread_mutex_lock(&h->lock);
    for (;;) {
        size_t count;
        int rc;

        while (h->head == NULL && !h->writer_exit)
            pthread_cond_wait(&h->work, &h->lock);
        if (h->head == NULL)
            break;
        count = take_group(h, group);
        pthread_mutex_unlock(&h->lock);

        /* The commit runs unlocked, so sessions keep queueing behind it. */
        for (size_t i = 0; i < count; i++)
            msgs[i] = &group[i]->msg;
        rc = h->ops->commit(h->store, msgs, count, why);

        pthread_mutex_lock(&h->lock);
        if (rc != 0 && !h->failed) {
            h->failed = true;
            memcpy(h->why, why, sizeof(why));
        }
        for (size_t i = 0; i < count; i++) {
            group[i]->done = true;
            group[i]->rc = rc;
        }
        h->groups++;
        h->messages += count;
        pthread_cond_broadcast(&h->done);
    }
    pthread_mutex_unlock(&h->lock);
    free(group);
    free(msgs);
    return NULL;
}

/* ------------------------------------------------------------------------
 * The submitters: one message at a time, each waiting for its commit.
 */

/* Submit one message and wait until it is durable; false to stop. */
static bool
submit_one(struct submitter *self, struct item *item)
{
    struct harness *h = self->harness;
    char why[SPOOL_WHY_SIZE];
    double start = bench_wall_s();
    struct timespec created;

    clock_gettime(CLOCK_REALTIME, &created);
    pthread_mutex_lock(&h->lock);
    if (h->stop || h->failed) {
        pthread_mutex_unlock(&h->lock);
        return false;
    }
    item->msg.number = ++h->next_number;
    pthread_mutex_unlock(&h->lock);
    item->msg.created_ms =
        (int64_t)created.tv_sec * 1000 + created.tv_nsec / 1000000;

    if (h->ops->prepare != NULL &&
        h->ops->prepare(h->store, &item->msg, why) != 0)
        die(why);

    /* A store without commit has made the message durable in prepare. */
    pthread_mutex_lock(&h->lock);
    if (h->ops->commit == NULL) {
        h->messages++;
        item->done = true;
        item->rc = 0;
    } else {
        item->done = false;
        item->next = NULL;
        *h->tail = item;
        h->tail = &item->next;
        pthread_cond_signal(&h->work);
    }
    while (!item->done)
        pthread_cond_wait(&h->done, &h->lock);
    pthread_mutex_unlock(&h->lock);
    if (item->rc != 0)
        return false;
    record(&self->latency, &self->count, &self->capacity,
           (bench_wall_s() - start) * 1000.0);
    return true;
}

static void *
submitter_main(void *arg)
{
    struct submitter *self = arg;
    struct item item = {
        .msg =
            {
                .sender = "bounces+12345@sender.example.com",
                .recipients = recipients,
                .recipient_count = 3,
                .client_ip = "192.0.2.10",
                .data = self->data,
                .len = self->len,
            },
    };

    while (submit_one(self, &item))
        ;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Cases
 */

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
start_threads(struct harness *h, struct submitter *subs, unsigned threads,
              const char *data, size_t len, pthread_t *writer)
{
    if (pthread_create(writer, NULL, writer_main, h) != 0)
        die("cannot start the writer");
    for (unsigned t = 0; t < threads; t++) {
        subs[t] = (struct submitter){.harness = h, .data = data, .len = len};
        if (pthread_create(&subs[t].thread, NULL, submitter_main, &subs[t]) !=
            0)
            die("cannot start a submitter");
    }
}

/* Run one round of one case in a fresh directory; add to result. */
static void
run_case(const spool_store_ops *ops, unsigned threads, size_t len,
         const char *data, unsigned round, struct result *result)
{
    struct harness h = {.ops = ops, .max_batch = options.max_batch};
    struct submitter subs[MAX_THREADS];
    char dir[4096];
    pthread_t writer;
    double start, cpu_start;

    snprintf(dir, sizeof(dir), "%s/case-%s", options.dir, ops->name);
    if (mkdir(dir, 0700) != 0)
        die(strerror(errno));
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.work, NULL);
    pthread_cond_init(&h.done, NULL);
    h.tail = &h.head;
    if (ops->open(dir, &h.store, h.why) != 0)
        die(h.why);

    /* Time from the first submission to the last commit. */
    cpu_start = bench_cpu_s();
    start = bench_wall_s();
    start_threads(&h, subs, threads, data, len, &writer);
    usleep((useconds_t)(options.seconds * 1e6));
    pthread_mutex_lock(&h.lock);
    h.stop = true;
    pthread_mutex_unlock(&h.lock);
    for (unsigned t = 0; t < threads; t++)
        pthread_join(subs[t].thread, NULL);
    pthread_mutex_lock(&h.lock);
    h.writer_exit = true;
    pthread_cond_signal(&h.work);
    pthread_mutex_unlock(&h.lock);
    pthread_join(writer, NULL);
    if (h.failed)
        die(h.why);

    result->rate[round] = (double)h.messages / (bench_wall_s() - start);
    result->cpu_seconds += bench_cpu_s() - cpu_start;
    result->messages += h.messages;
    result->groups += ops->flushes ? ops->flushes(h.store) : h.groups;
    for (unsigned t = 0; t < threads; t++) {
        for (size_t i = 0; i < subs[t].count; i++)
            record(&result->latency, &result->count, &result->capacity,
                   subs[t].latency[i]);
        free(subs[t].latency);
    }

    /* Leave the disk as it was, so the next case starts alike. */
    ops->close(h.store);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    sync();
    usleep(200000);
}

static int
compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The q-quantile of values[0..count), sorting them in place. */
static double
quantile(double *values, size_t count, double q)
{
    if (count == 0)
        return 0;
    qsort(values, count, sizeof(*values), compare_doubles);
    return values[(size_t)(q * (double)(count - 1))];
}

static void
print_result(const spool_store_ops *ops, unsigned threads, const char *size,
             struct result *result, FILE *out, bool table)
{
    double rates[MAX_ROUNDS];
    double rate, median, p99, cpu_us, group;

    memcpy(rates, result->rate, sizeof(rates));
    rate = quantile(rates, options.rounds, 0.5);
    median = quantile(result->latency, result->count, 0.5);
    p99 = quantile(result->latency, result->count, 0.99);
    cpu_us = result->cpu_seconds * 1e6 / (double)result->messages;
    group = (double)result->messages / (double)result->groups;
    if (table)
        fprintf(out, "| %s | %u | %s | %.0f | %.2f | %.2f | %.0f | %.1f |\n",
                ops->name, threads, size, rate, median, p99, cpu_us, group);
    else
        fprintf(out,
                "result design=%s threads=%u size=%s rate=%.1f "
                "median_ms=%.3f p99_ms=%.3f cpu_us=%.1f group=%.2f "
                "messages=%llu\n",
                ops->name, threads, size, rate, median, p99, cpu_us, group,
                (unsigned long long)result->messages);
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: spool_bench --dir DIR [--seconds S] [--rounds N]\n"
            "                   [--max-batch N] [--design NAMES]\n"
            "                   [--threads N] [--size SIZE]\n"
            "  --dir DIR       where the cases write (on the disk measured)\n"
            "  --seconds S     length of one round of one case (3)\n"
            "  --rounds N      rounds per case, median rate kept (3)\n"
            "  --max-batch N   most messages in one commit (256)\n"
            "  --design NAMES  only these, comma-separated: sqlite,\n"
            "                  sqlite-ckpt, log, files, sp_queue\n"
            "  --threads N     only 1, 8 or 20 submitting threads\n"
            "  --size SIZE     only 4k, 10k or 64k (default: 4k and 64k)\n");
    exit(2);
}

static void
parse_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 == argc)
            usage();
        if (strcmp(argv[i], "--dir") == 0)
            options.dir = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0)
            options.seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            options.rounds = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--max-batch") == 0)
            options.max_batch = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--design") == 0)
            options.only_design = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            options.only_threads = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            options.only_size = argv[i + 1];
        else
            usage();
    }
    if (options.dir == NULL || options.seconds <= 0 || options.rounds == 0 ||
        options.rounds > MAX_ROUNDS || options.max_batch == 0)
        usage();
}

static bool
design_wanted(const spool_store_ops *ops)
{
    size_t len = strlen(ops->name);

    for (const char *at = options.only_design; at != NULL;
         at = strchr(at, ',') ? strchr(at, ',') + 1 : NULL)
        if (strncmp(at, ops->name, len) == 0 &&
            (at[len] == ',' || at[len] == '\0'))
            return true;
    return options.only_design == NULL;
}

/* Whether case (t, s) is to be timed. */
static bool
case_wanted(size_t t, size_t s)
{
    if (options.only_threads != 0 && options.only_threads != thread_counts[t])
        return false;
    if (options.only_size != NULL)
        return strcmp(options.only_size, sizes[s].label) == 0;
    return sizes[s].usual;
}

int
main(int argc, char **argv)
{
    static struct result results[DESIGN_COUNT][THREAD_CASES][SIZE_CASES];
    char *data;

    parse_options(argc, argv);
    data = malloc(sizes[SIZE_CASES - 1].bytes);
    if (data == NULL)
        die("out of memory");
    for (size_t i = 0; i < sizes[SIZE_CASES - 1].bytes; i++)
        data[i] = (char)(' ' + (i * 7919 + i / 61) % 95);

    for (unsigned r = 0; r < options.rounds; r++)
        for (size_t t = 0; t < THREAD_CASES; t++)
            for (size_t s = 0; s < SIZE_CASES; s++)
                for (size_t k = 0; k < DESIGN_COUNT; k++) {
                    size_t d = (k + r) % DESIGN_COUNT;

                    if (design_wanted(designs[d]) && case_wanted(t, s))
                        run_case(designs[d], thread_counts[t], sizes[s].bytes,
                                 data, r, &results[d][t][s]);
                }

    for (int table = 0; table < 2; table++) {
        if (table)
            printf("\n| design | threads | size | msg/s | median ms | p99 ms "
                   "| CPU us/msg | msgs/commit |\n"
                   "|---|---:|---|---:|---:|---:|---:|---:|\n");
        for (size_t d = 0; d < DESIGN_COUNT; d++)
            for (size_t t = 0; t < THREAD_CASES; t++)
                for (size_t s = 0; s < SIZE_CASES; s++)
                    if (design_wanted(designs[d]) && case_wanted(t, s))
                        print_result(designs[d], thread_counts[t],
                                     sizes[s].label, &results[d][t][s], stdout,
                                     table);
    }
    free(data);
    return 0;
}
