/*
 * fuzz.h: what every libFuzzer target of sealpost shares: the entry
 * point's prototype, CHECK, which names the broken invariant on stderr
 * before aborting, so that a crash report says what went wrong and the
 * input that did it follows, and fuzz_hash.
 */
#ifndef SP_FUZZ_H
#define SP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer calls this with each input; it returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/*
 * FNV-1a of the input: a stable source of choices (where to split it,
 * which options to try), so a crash replays from the input alone.
 */
static inline uint32_t
fuzz_hash(const uint8_t *data, size_t size)
{
    uint32_t hash = 2166136261u;

    for (size_t i = 0; i < size; i++)
        hash = (hash ^ data[i]) * 16777619u;
    return hash;
}

#endif /* SP_FUZZ_H */
