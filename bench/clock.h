/*
 * clock.h: the two clocks sealpost's single-program benchmarks read:
 * wall-clock time and the CPU time of the process, in seconds.  Header
 * only, so each benchmark program takes it without another source file.
 */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <sys/resource.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double
bench_wall_s(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* CPU seconds of this process so far, user and system. */
static inline double
bench_cpu_s(void)
{
    struct rusage usage;

    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_stime.tv_sec +
           ((double)usage.ru_utime.tv_usec + (double)usage.ru_stime.tv_usec) /
               1e6;
}

#endif /* BENCH_CLOCK_H */
