/*
 * alloc.c: the allocation functions every library module uses.
 *
 * They add one thing to the C library: a testing hook that makes
 * allocations fail after a given number of successes, so the failure path
 * of each caller can be exercised.  The hook is a process-wide counter and
 * is meant for single-threaded tests only.
 */
#include "base.h"

#include <stdlib.h>
#include <string.h>

/* Allocations left before failure starts; negative means never fail. */
static long allocations_left = -1;

void
sp_alloc_fail_after(long allowed)
{
    allocations_left = allowed;
}

/* Consume one allocation from the testing budget; false means fail it. */
static bool
alloc_permitted(void)
{
    if (allocations_left < 0)
        return true;
    if (allocations_left == 0)
        return false;
    allocations_left--;
    return true;
}

void *
sp_malloc(size_t size)
{
    if (!alloc_permitted())
        return NULL;
    return malloc(size ? size : 1);
}

void *
sp_calloc(size_t count, size_t size)
{
    if (!alloc_permitted())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *
sp_realloc(void *ptr, size_t size)
{
    if (!alloc_permitted())
        return NULL;
    return realloc(ptr, size ? size : 1);
}

void
sp_free(void *ptr)
{
    free(ptr);
}

char *
sp_strndup(const char *text, size_t length)
{
    char *copy = sp_malloc(length + 1);

    if (copy == NULL)
        return NULL;
    memcpy(copy, text, length);
    copy[length] = '\0';
    return copy;
}
