/*
 * events_bench.c: the event store benchmark: how fast events go in, and
 * how fast one recipient's events come back out of a large store.
 *
 * Owns main.  In a fresh directory (--dir, on the disk being measured) it
 * opens the event store the daemon uses (store.h, SQLite in events.db)
 * and adds --events events (1,000,000 by default) in transactions of
 * --batch (1,000: what the daemon's event thread moves at once), each
 * event shaped as the delivery engine writes them (about 450 octets of
 * JSON), for --recipients distinct recipients (100,000).  Then, with the
 * store full, it times the queries the API and "sealpost events" make:
 *
 *   recipient   one recipient's events (a few of them among a million)
 *   page        the next page of 1,000 after a cursor halfway through
 *   type+time   1,000 bounces of the last hour
 *   metrics     counts by type over the whole period (a full scan)
 *
 * each --queries times (the median and the slowest are kept), and prints
 * one table with the targets: a recipient's events in under 50 ms, and
 * event writing at least as fast as the delivery engine makes events at
 * its best measured rate (--delivery-rate messages a second, two events
 * a message: injection and delivery), as a ratio.  Exit status 1 when
 * the store fails, 2 for usage errors; the targets do not change it.
 */
#include "clock.h"
#include "store/store.h"

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QUERY_TARGET_MS    50.0
#define EVENTS_PER_MESSAGE 2 /* injection and delivery */

struct options {
    const char *dir;
    long events, batch, recipients, queries;
    double delivery_rate;
};

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The i-th event: JSON as the delivery engine writes it, and its row. */
static void
make_event(long i, long recipients, int64_t start_ms, char *json, size_t size,
           char *id, char *rcpt, char *queue, sp_store_event *row)
{
    static const char *const types[] = {"injection", "delivery", "delay",
                                        "bounce"};
    const char *type = types[i % 7 == 0 ? 3 : i % 5 == 0 ? 2 : i % 2];
    int64_t when = start_ms + i; /* one event a millisecond, in order */
    time_t seconds = (time_t)(when / 1000);
    struct tm utc;
    char stamp[40];

    gmtime_r(&seconds, &utc);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(id, 33, "%032lx", (unsigned long)i * 2654435761UL + 1);
    snprintf(rcpt, 64, "customer%ld@example%ld.org", i % recipients,
             (i % recipients) % 97);
    snprintf(queue, 24, "1M9%010ld", i / EVENTS_PER_MESSAGE);
    snprintf(json, size,
             "{\"enhanced_code\":\"2.0.0\",\"error_code\":250,"
             "\"event_id\":\"%s\",\"message_id\":\"%s\","
             "\"msg_from\":\"statements@bank.example\",\"msg_size\":4321,"
             "\"mx_host\":\"mx1.example%ld.org\",\"mx_ip\":"
             "\"192.0.2.%ld:25\",\"num_retries\":0,\"queue_id\":\"%s\","
             "\"raw_reason\":\"2.0.0 OK queued as 4Xy7\",\"rcpt_to\":\"%s\","
             "\"routing_domain\":\"example%ld.org\",\"timestamp\":"
             "\"%s.%03dZ\",\"tls\":\"yes\",\"tls_cipher\":"
             "\"TLS_AES_256_GCM_SHA384\",\"tls_version\":\"TLSv1.3\","
             "\"type\":\"%s\"}",
             id, queue, i % 97, i % 250, queue, rcpt, i % 97, stamp,
             (int)(when % 1000), type);
    *row = (sp_store_event){
        .id = id,
        .timestamp_ms = when,
        .type = type,
        .recipient = rcpt,
        .queue_id = queue,
        .campaign_id = "",
        .json = json,
    };
}

/* Fill the store; the events a second and CPU per event. */
static int
fill(sp_store *store, const struct options *opt, int64_t start_ms, double *rate,
     double *cpu_us)
{
    sp_store_event *rows = calloc((size_t)opt->batch, sizeof(*rows));
    char(*json)[700] = calloc((size_t)opt->batch, sizeof(*json));
    char(*ids)[33] = calloc((size_t)opt->batch, sizeof(*ids));
    char(*rcpts)[64] = calloc((size_t)opt->batch, sizeof(*rcpts));
    char(*queues)[24] = calloc((size_t)opt->batch, sizeof(*queues));
    double started = bench_wall_s(), cpu_started = bench_cpu_s();
    sp_error err;
    int rc = rows && json && ids && rcpts && queues ? SP_OK : SP_ENOMEM;

    for (long done = 0; rc == SP_OK && done < opt->events;) {
        long count =
            opt->events - done < opt->batch ? opt->events - done : opt->batch;

        for (long k = 0; k < count; k++)
            make_event(done + k, opt->recipients, start_ms, json[k],
                       sizeof(json[k]), ids[k], rcpts[k], queues[k], &rows[k]);
        rc = sp_store_events_add(store, rows, (size_t)count, &err);
        if (rc != SP_OK)
            fprintf(stderr, "events_bench: %s\n", err.text);
        done += count;
    }
    *rate = (double)opt->events / (bench_wall_s() - started);
    *cpu_us = (bench_cpu_s() - cpu_started) * 1e6 / (double)opt->events;
    free(rows);
    free(json);
    free(ids);
    free(rcpts);
    free(queues);
    return rc;
}

static void
count_found(void *arg, int64_t cursor, const char *json)
{
    (void)cursor;
    (void)json;
    (*(long *)arg)++;
}

static void
count_metric(void *arg, int64_t bucket, const char *domain, const char *type,
             int64_t count)
{
    (void)bucket;
    (void)domain;
    (void)type;
    *(long *)arg += (long)count;
}

/* Time one kind of query queries times; median and slowest in ms. */
static int
time_query(sp_store *store, const struct options *opt, int64_t start_ms,
           const char *kind, double *median, double *slowest, long *found)
{
    double *times = calloc((size_t)opt->queries, sizeof(*times));
    sp_error err;
    int rc = times ? SP_OK : SP_ENOMEM;

    for (long q = 0; rc == SP_OK && q < opt->queries; q++) {
        char rcpt[64];
        sp_store_event_filter filter = {.limit = 1000};
        double started;

        *found = 0;
        snprintf(rcpt, sizeof(rcpt), "customer%ld@example%ld.org",
                 (q * 7919) % opt->recipients,
                 ((q * 7919) % opt->recipients) % 97);
        if (strcmp(kind, "recipient") == 0)
            filter.recipient = rcpt;
        else if (strcmp(kind, "page") == 0)
            filter.after = opt->events / 2 + q;
        else if (strcmp(kind, "type+time") == 0) {
            filter.type = "bounce";
            filter.from_ms = start_ms + opt->events - 3600 * 1000;
        }
        started = bench_wall_s();
        if (strcmp(kind, "metrics") == 0)
            rc = sp_store_events_count(store, start_ms, 0, 0, false,
                                       count_metric, found, &err);
        else
            rc = sp_store_events_find(store, &filter, count_found, found, &err);
        times[q] = (bench_wall_s() - started) * 1000.0;
        if (rc != SP_OK)
            fprintf(stderr, "events_bench: %s\n", err.text);
    }
    if (rc == SP_OK) {
        qsort(times, (size_t)opt->queries, sizeof(*times), compare_doubles);
        *median = times[opt->queries / 2];
        *slowest = times[opt->queries - 1];
    }
    free(times);
    return rc;
}

static int
usage(void)
{
    fprintf(stderr, "usage: events_bench --dir DIR [--events N] [--batch N] "
                    "[--recipients N]\n"
                    "                    [--queries N] [--delivery-rate "
                    "MSG_PER_S]\n");
    return 2;
}

static bool
parse_long(const char *text, long *out)
{
    char *end;
    long value = strtol(text, &end, 10);

    if (end == text || *end != '\0' || value < 1)
        return false;
    *out = value;
    return true;
}

int
main(int argc, char **argv)
{
    static const char *const kinds[] = {"recipient", "page", "type+time",
                                        "metrics"};
    struct options opt = {NULL, 1000000, 1000, 100000, 21, 1674.0};
    int64_t start_ms = (int64_t)(time(NULL) - 86400) * 1000;
    double rate = 0, cpu_us = 0;
    char path[4096];
    sp_store *store = NULL;
    sp_error err;
    int status = 0;

    for (int i = 1; i < argc; i += 2) {
        bool ok = i + 1 < argc;

        if (!ok)
            return usage();
        if (strcmp(argv[i], "--dir") == 0)
            opt.dir = argv[i + 1];
        else if (strcmp(argv[i], "--events") == 0)
            ok = parse_long(argv[i + 1], &opt.events);
        else if (strcmp(argv[i], "--batch") == 0)
            ok = parse_long(argv[i + 1], &opt.batch);
        else if (strcmp(argv[i], "--recipients") == 0)
            ok = parse_long(argv[i + 1], &opt.recipients);
        else if (strcmp(argv[i], "--queries") == 0)
            ok = parse_long(argv[i + 1], &opt.queries);
        else if (strcmp(argv[i], "--delivery-rate") == 0)
            opt.delivery_rate = atof(argv[i + 1]);
        else
            ok = false;
        if (!ok)
            return usage();
    }
    if (opt.dir == NULL || opt.delivery_rate <= 0)
        return usage();

    snprintf(path, sizeof(path), "%s/events_bench.%ld", opt.dir,
             (long)getpid());
    if (mkdir(path, 0700) != 0 || sp_store_open(path, &store, &err) != SP_OK) {
        fprintf(stderr, "events_bench: cannot make a store in %s\n", path);
        return 1;
    }
    if (fill(store, &opt, start_ms, &rate, &cpu_us) != SP_OK)
        status = 1;
    printf("result events=%ld batch=%ld rate=%.0f cpu_us=%.1f\n", opt.events,
           opt.batch, rate, cpu_us);
    printf("\n| measure | sealpost | target | ratio (over 1: better than the "
           "target) |\n|---|---:|---:|---:|\n");
    printf("| events written, a second | %.0f | %.0f | %.2fx |\n", rate,
           opt.delivery_rate * EVENTS_PER_MESSAGE,
           rate / (opt.delivery_rate * EVENTS_PER_MESSAGE));
    printf("| CPU per event written, us | %.1f | - | - |\n", cpu_us);

    for (size_t k = 0; status == 0 && k < sizeof(kinds) / sizeof(kinds[0]);
         k++) {
        double median = 0, slowest = 0;
        long found = 0;

        if (time_query(store, &opt, start_ms, kinds[k], &median, &slowest,
                       &found) != SP_OK) {
            status = 1;
            break;
        }
        fprintf(stderr,
                "result query=%s median_ms=%.2f slowest_ms=%.2f "
                "found=%ld\n",
                kinds[k], median, slowest, found);
        if (strcmp(kinds[k], "recipient") == 0)
            printf("| query %s (%ld found), ms median / slowest | %.2f / "
                   "%.2f | %.0f | %.2fx |\n",
                   kinds[k], found, median, slowest, QUERY_TARGET_MS,
                   QUERY_TARGET_MS / slowest);
        else
            printf("| query %s (%ld found), ms median / slowest | %.2f / "
                   "%.2f | - | - |\n",
                   kinds[k], found, median, slowest);
    }
    sp_store_close(store);
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}
