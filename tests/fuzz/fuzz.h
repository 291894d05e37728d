/*
 * fuzz.h: what every libFuzzer target of sealpost shares: the entry
 * point's prototype and CHECK, which names the broken invariant on stderr
 * before aborting, so that a crash report says what went wrong and the
 * input that did it follows.
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

#endif /* SP_FUZZ_H */
