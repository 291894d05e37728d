/*
 * error.c: the error vocabulary and its detail text.
 *
 * Owns sp_err_name, sp_err_describe, sp_err_set and sp_err_clear.  The codes
 * themselves are generated from the SP_ERRORS table in base.h, so a code and
 * its name can never drift apart.
 */
#include "base.h"

#include <stdio.h>
#include <string.h>

struct error_entry {
    int code;
    const char *name;
    const char *text;
};

static const struct error_entry error_table[] = {{SP_OK, "SP_OK", "success"},
#define SP_ERROR_ROW(name, value, text) {name, #name, text},
                                                 SP_ERRORS(SP_ERROR_ROW)
#undef SP_ERROR_ROW
};

static const struct error_entry *
error_lookup(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return &error_table[i];
    return NULL;
}

const char *
sp_err_name(int code)
{
    const struct error_entry *entry = error_lookup(code);

    return entry ? entry->name : "SP_UNKNOWN";
}

const char *
sp_err_describe(int code)
{
    const struct error_entry *entry = error_lookup(code);

    return entry ? entry->text : "unknown error";
}

int
sp_err_set(sp_error *err, int code, const char *fmt, ...)
{
    va_list args;

    if (err == NULL)
        return code;
    err->code = code;
    va_start(args, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, args);
    va_end(args);
    return code;
}

void
sp_err_clear(sp_error *err)
{
    if (err == NULL)
        return;
    err->code = SP_OK;
    err->text[0] = '\0';
}
