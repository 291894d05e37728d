/*
 * bench_time.c: timing the jobs of one benchmark case.
 *
 * Owns bench_time_jobs.  The machines the project runs on are shared and
 * noisy, so the jobs being compared are timed in turns, a short round
 * each, several times over, and each job's figure is the median of its
 * rounds: a burst of load from elsewhere spoils one round of every job
 * rather than the whole of one job.  The job that starts a round rotates,
 * so none is always the first after a switch.
 *
 * Time is the CPU time of the thread (user and system, so libopendkim's
 * file reads count), as `openssl speed` measures by default: on a machine
 * shared with other work, wall-clock time would mostly measure how much
 * of a core the scheduler handed us.  What other work still changes,
 * caches and a shared core's pipeline, the interleaving spreads evenly.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TIME_WARMUP_SECONDS 0.1

static double
time_cpu(void)
{
    struct timespec now;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/*
 * Run job's step until seconds have passed; at least one message.  Puts
 * the rate in *rate and adds the messages to *messages.
 */
static int
time_round(bench_job *job, double seconds, double *rate,
           unsigned long *messages, char *why)
{
    double start = time_cpu(), elapsed;
    unsigned long done = 0;

    do {
        if (job->step(job->state, why) != 0)
            return -1;
        done++;
        elapsed = time_cpu() - start;
    } while (elapsed < seconds);
    *rate = (double)done / elapsed;
    *messages += done;
    return 0;
}

static int
time_compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
time_median(const double *values, unsigned count)
{
    double sorted[BENCH_MAX_ROUNDS];

    for (unsigned i = 0; i < count; i++)
        sorted[i] = values[i];
    qsort(sorted, count, sizeof(sorted[0]), time_compare);
    if (count % 2 == 1)
        return sorted[count / 2];
    return (sorted[count / 2 - 1] + sorted[count / 2]) / 2;
}

/* Prefix the failure text with the name of the job that failed. */
static int
time_failed(const bench_job *job, char *why)
{
    char text[BENCH_WHY_SIZE];

    snprintf(text, sizeof(text), "%s", why);
    snprintf(why, BENCH_WHY_SIZE, "%s: %.360s", job->impl, text);
    return -1;
}

int
bench_time_jobs(bench_job *jobs, size_t count, const bench_plan *plan,
                char *why)
{
    unsigned rounds = plan->rounds;
    double ignored;

    if (rounds == 0 || rounds > BENCH_MAX_ROUNDS) {
        snprintf(why, BENCH_WHY_SIZE, "rounds must be 1 to %d",
                 BENCH_MAX_ROUNDS);
        return -1;
    }

    /* Warm caches, lazy initialization and the CPU clock first. */
    for (size_t j = 0; j < count; j++) {
        unsigned long warm = 0;

        jobs[j].messages = 0;
        if (time_round(&jobs[j], TIME_WARMUP_SECONDS, &ignored, &warm, why) !=
            0)
            return time_failed(&jobs[j], why);
    }

    for (unsigned r = 0; r < rounds; r++) {
        for (size_t k = 0; k < count; k++) {
            bench_job *job = &jobs[(r + k) % count];

            if (time_round(job, plan->round_seconds, &job->rate[r],
                           &job->messages, why) != 0)
                return time_failed(job, why);
        }
    }
    for (size_t j = 0; j < count; j++)
        jobs[j].median = time_median(jobs[j].rate, rounds);
    return 0;
}
