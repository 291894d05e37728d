/*
 * log.c: the log API of the daemon and the CLI.
 *
 * Owns sp_log_*, sp_text_clean and the sp_x* allocation wrappers.  Lines go to
 * stderr, one per event, prefixed with the program name and the level when it
 * is not info.  Library modules never log: they return errors with a detail
 * text, and the program that called them decides what to print.
 *
 * Limits: no syslog or log file yet; the daemon's supervisor is expected to
 * collect stderr (systemd's journal does).
 */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_program = "sealpost";

void
sp_log_init(const char *program)
{
    log_program = program;
}

/* Write one line: "program: [level: ]text". */
static void
log_line(const char *level, const char *fmt, va_list args)
{
    char line[2048];

    vsnprintf(line, sizeof(line), fmt, args);
    if (level != NULL)
        fprintf(stderr, "%s: %s: %s\n", log_program, level, line);
    else
        fprintf(stderr, "%s: %s\n", log_program, line);
}

void
sp_log_info(const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    log_line(NULL, fmt, args);
    va_end(args);
}

void
sp_log_warning(const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    log_line("warning", fmt, args);
    va_end(args);
}

void
sp_log_error(const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    log_line("error", fmt, args);
    va_end(args);
}

void
sp_log_fatal(int status, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    log_line("fatal", fmt, args);
    va_end(args);
    exit(status);
}

void
sp_log_panic(const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    log_line("panic", fmt, args);
    va_end(args);
    abort();
}

char *
sp_log_escape(char *dst, size_t dst_size, const void *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *in = text;
    size_t out = 0;

    if (dst_size == 0)
        return dst;

    /* Reserve room for "..." and the NUL in case the text is cut. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = in[i];
        size_t need = 1;

        if (c < 0x20 || c > 0x7e)
            need = 4;
        else if (c == '"' || c == '\\')
            need = 2;
        if (out + need + 4 > dst_size) {
            if (out + 4 <= dst_size) {
                memcpy(dst + out, "...", 3);
                out += 3;
            }
            break;
        }
        if (c < 0x20 || c > 0x7e) {
            dst[out++] = '\\';
            dst[out++] = 'x';
            dst[out++] = hex[c >> 4];
            dst[out++] = hex[c & 15];
        } else if (c == '"' || c == '\\') {
            dst[out++] = '\\';
            dst[out++] = (char)c;
        } else {
            dst[out++] = (char)c;
        }
    }
    dst[out] = '\0';
    return dst;
}

void *
sp_xmalloc(size_t size)
{
    void *ptr = malloc(size ? size : 1);

    if (ptr == NULL)
        sp_log_fatal(3, "out of memory allocating %zu bytes", size);
    return ptr;
}

char *
sp_xstrdup(const char *text)
{
    size_t len = strlen(text);
    char *copy = sp_xmalloc(len + 1);

    memcpy(copy, text, len + 1);
    return copy;
}

void
sp_text_clean(char *text)
{
    unsigned char *c = (unsigned char *)text;

    while (*c != '\0') {
        int length = *c < 0x80             ? 1
                     : (*c & 0xE0) == 0xC0 ? 2
                     : (*c & 0xF0) == 0xE0 ? 3
                     : (*c & 0xF8) == 0xF0 ? 4
                                           : 0;
        bool ok = length > 0;

        for (int i = 1; i < length && ok; i++)
            ok = (c[i] & 0xC0) == 0x80;
        if (!ok || (length == 1 && (*c < ' ' || *c == 0x7F))) {
            *c++ = '?';
            continue;
        }
        c += length;
    }
}
