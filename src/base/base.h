/*
 * base.h: the public face of sealpost's base module.
 *
 * The base module holds the few things no library gives us and every other
 * module needs: one error vocabulary with a detail text (error.c), the
 * allocation hooks that let tests make allocations fail (alloc.c), a
 * growable byte buffer (buf.c), base64 that tolerates the folding
 * whitespace DKIM allows inside values (b64.c), and the log API (log.c).
 *
 * Out-of-memory policy: base functions report SP_ENOMEM and leave their
 * arguments as they were; they never exit.  Only the daemon and the CLI
 * decide to stop (see sp_xmalloc in log.c, which they use).
 */
#ifndef SP_BASE_H
#define SP_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/*
 * The error vocabulary, generated from this one table.  Every function that
 * can fail returns SP_OK (zero) or one of these negative codes.
 */
#define SP_ERRORS(X)                                                           \
    X(SP_ENOMEM, -1, "out of memory")                                          \
    X(SP_EINVAL, -2, "invalid argument")                                       \
    X(SP_ESYNTAX, -3, "malformed input")                                       \
    X(SP_ELIMIT, -4, "input exceeds a limit")                                  \
    X(SP_EKEY, -5, "unusable key")                                             \
    X(SP_EPOLICY, -6, "refused by policy")                                     \
    X(SP_EIO, -7, "input/output error")                                        \
    X(SP_ECRYPTO, -8, "cryptographic library failure")                         \
    X(SP_ESTATE, -9, "call out of order")                                      \
    X(SP_ENOTFOUND, -10, "not found")

enum sp_status {
    SP_OK = 0,
#define SP_ERROR_ENUM(name, value, text) name = value,
    SP_ERRORS(SP_ERROR_ENUM)
#undef SP_ERROR_ENUM
};

/*
 * A failure with the sentence a person needs.  Functions take an optional
 * sp_error pointer; when it is not NULL and they fail, they fill it.
 */
typedef struct sp_error {
    int code;       /* an SP_E* value, SP_OK when nothing failed */
    char text[320]; /* what went wrong and, where known, what to do */
} sp_error;

/* Name of an error code ("SP_ENOMEM"), or "SP_UNKNOWN". */
const char *sp_err_name(int code);

/* Short generic description of an error code. */
const char *sp_err_describe(int code);

/*
 * Fill err (when not NULL) with code and a formatted text; return code, so
 * that callers can write "return sp_err_set(err, SP_ESYNTAX, ...)".
 */
int sp_err_set(sp_error *err, int code, const char *fmt, ...) SP_PRINTF(3, 4);

/* Clear err (when not NULL) to SP_OK and an empty text. */
void sp_err_clear(sp_error *err);

/*
 * Allocation.  Every allocation in the library modules goes through these,
 * so tests can make the Nth allocation fail (sp_alloc_fail_after) and check
 * that each caller reports SP_ENOMEM and leaks nothing.
 */
void *sp_malloc(size_t size);
void *sp_calloc(size_t count, size_t size);
void *sp_realloc(void *ptr, size_t size);
void sp_free(void *ptr);
char *sp_strndup(const char *text, size_t length);

/*
 * Testing hook: after `allowed` more successful allocations, every further
 * one fails until the hook is reset with a negative value.
 */
void sp_alloc_fail_after(long allowed);

/*
 * A growable byte buffer.  The bytes are always followed by a NUL that is
 * not counted in len, so text can be handed to C string functions.  A
 * buffer that failed to grow keeps its old contents.
 */
typedef struct sp_buf {
    char *data;  /* owned; NULL until the first append */
    size_t len;  /* bytes in use, not counting the trailing NUL */
    size_t size; /* bytes allocated */
} sp_buf;

#define SP_BUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

int sp_buf_reserve(sp_buf *buf, size_t extra);
int sp_buf_append(sp_buf *buf, const void *data, size_t len);
int sp_buf_append_str(sp_buf *buf, const char *text);
int sp_buf_printf(sp_buf *buf, const char *fmt, ...) SP_PRINTF(2, 3);
void sp_buf_reset(sp_buf *buf);
void sp_buf_free(sp_buf *buf);

/*
 * Base64 (RFC 4648, standard alphabet, padded).  Decoding skips SP, TAB, CR
 * and LF anywhere, as DKIM tag values may be folded; any other byte outside
 * the alphabet, misplaced padding or a dangling bit group is SP_ESYNTAX.
 */
size_t sp_b64_encoded_len(size_t len);
int sp_b64_encode(sp_buf *out, const void *data, size_t len);
int sp_b64_decode(sp_buf *out, const char *text, size_t len, sp_error *err);

/*
 * Logging, for the daemon and the CLI.  One line per event: a fixed event
 * word first, then key=value fields.  info is for what operators track,
 * warning for something recoverable, fatal for configuration or environment
 * problems (the process exits with status 3, or 2 for usage), panic for
 * sealpost's own bugs (abort).
 */
enum sp_log_level {
    SP_LOG_INFO,
    SP_LOG_WARNING,
    SP_LOG_ERROR,
};

/* Set the program name that prefixes every line ("sealpostd"). */
void sp_log_init(const char *program);

void sp_log_info(const char *fmt, ...) SP_PRINTF(1, 2);
void sp_log_warning(const char *fmt, ...) SP_PRINTF(1, 2);
void sp_log_error(const char *fmt, ...) SP_PRINTF(1, 2);
_Noreturn void sp_log_fatal(int status, const char *fmt, ...) SP_PRINTF(2, 3);
_Noreturn void sp_log_panic(const char *fmt, ...) SP_PRINTF(1, 2);

/*
 * Copy text from a peer into dst for a log line: at most dst_size - 1
 * bytes, control bytes and bytes above 0x7e written as \xHH, '"' and '\\'
 * escaped, cut short with "..." when too long.  Returns dst.
 */
char *sp_log_escape(char *dst, size_t dst_size, const void *text, size_t len);

/*
 * Make text (NUL-terminated, changed in place) fit to show and to put in
 * JSON: control bytes and bytes that do not form UTF-8 become '?'.  For
 * names that come from peers (attachment names, certificate subjects).
 */
void sp_text_clean(char *text);

/* Allocation for programs: stops the process when memory runs out. */
void *sp_xmalloc(size_t size);
char *sp_xstrdup(const char *text);

#endif /* SP_BASE_H */
