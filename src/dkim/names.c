/*
 * names.c: domain names, selectors and the names and tables the other
 * files of the DKIM module share.
 *
 * Owns dkim__name_*, dkim__canon_parse, dkim__sha256, dkim__sha1,
 * dkim__sodium_ready, and the public name functions sp_dkim_valid_name,
 * sp_dkim_alg_name,
 * sp_dkim_canon_name, sp_dkim_canon_parse, sp_dkim_status_name and
 * sp_dkim_reason_word.
 *
 * Domains are checked as ASCII: internationalized domains must arrive as
 * A-labels (xn--), which is what DNS holds and what d= must carry.
 */
#include "dkim_int.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

static char
name_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

bool
dkim__name_valid_domain(const char *text, size_t len)
{
    return sp_mail_domain_valid(text, len, SP_MAIL_DOMAIN_UNDERSCORE);
}

bool
sp_dkim_valid_name(const char *text)
{
    return dkim__name_valid_domain(text, strlen(text));
}

int
dkim__name_compare(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t common = a_len < b_len ? a_len : b_len;

    for (size_t i = 0; i < common; i++) {
        unsigned char x = (unsigned char)name_lower(a[i]);
        unsigned char y = (unsigned char)name_lower(b[i]);

        if (x != y)
            return x < y ? -1 : 1;
    }
    return a_len == b_len ? 0 : (a_len < b_len ? -1 : 1);
}

bool
dkim__name_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (name_lower(a[i]) != name_lower(b[i]))
            return false;
    return true;
}

bool
dkim__name_within(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len == b_len)
        return dkim__name_equal(a, a_len, b, b_len);
    if (a_len < b_len + 1 || a[a_len - b_len - 1] != '.')
        return false;
    return dkim__name_equal(a + a_len - b_len, b_len, b, b_len);
}

/*
 * The digest types, fetched from the provider once.  Initializing a digest
 * with the static EVP_sha256() makes OpenSSL 3 fetch the implementation
 * again, under a lock, for every message; a fetched method skips that.
 */
static EVP_MD *fetched_sha256;
static EVP_MD *fetched_sha1;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void
names_fetch(void)
{
    fetched_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    fetched_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
}

static bool sodium_ok;
static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void
names_sodium(void)
{
    sodium_ok = sodium_init() >= 0;
}

bool
dkim__sodium_ready(void)
{
    pthread_once(&sodium_once, names_sodium);
    return sodium_ok;
}

const EVP_MD *
dkim__sha256(void)
{
    pthread_once(&fetch_once, names_fetch);
    return fetched_sha256 ? fetched_sha256 : EVP_sha256();
}

const EVP_MD *
dkim__sha1(void)
{
    pthread_once(&fetch_once, names_fetch);
    return fetched_sha1 ? fetched_sha1 : EVP_sha1();
}

const char *
sp_dkim_alg_name(sp_dkim_alg alg)
{
    switch (alg) {
    case SP_DKIM_RSA_SHA256:
        return "rsa-sha256";
    case SP_DKIM_ED25519_SHA256:
        return "ed25519-sha256";
    case SP_DKIM_RSA_SHA1:
        return "rsa-sha1";
    }
    return "unknown";
}

const char *
sp_dkim_canon_name(sp_dkim_canon canon)
{
    return canon == SP_DKIM_RELAXED ? "relaxed" : "simple";
}

/* One canonicalization name, exactly (RFC 6376 names are lower case). */
static int
canon_word(const char *text, size_t len, sp_dkim_canon *out)
{
    if (len == 6 && memcmp(text, "simple", 6) == 0)
        *out = SP_DKIM_SIMPLE;
    else if (len == 7 && memcmp(text, "relaxed", 7) == 0)
        *out = SP_DKIM_RELAXED;
    else
        return SP_ESYNTAX;
    return SP_OK;
}

int
dkim__canon_parse(const char *text, size_t len, sp_dkim_canon *header,
                  sp_dkim_canon *body)
{
    const char *slash = memchr(text, '/', len);
    size_t head_len = slash ? (size_t)(slash - text) : len;

    /* A missing body part means simple (RFC 6376 3.5, c=). */
    *body = SP_DKIM_SIMPLE;
    if (canon_word(text, head_len, header) != SP_OK ||
        (slash && canon_word(slash + 1, len - head_len - 1, body) != SP_OK))
        return SP_ESYNTAX;
    return SP_OK;
}

int
sp_dkim_canon_parse(const char *text, sp_dkim_canon *header,
                    sp_dkim_canon *body, sp_error *err)
{
    if (dkim__canon_parse(text, strlen(text), header, body) != SP_OK)
        return sp_err_set(err, SP_ESYNTAX,
                          "canonicalization \"%.40s\" is not simple or "
                          "relaxed, optionally as header/body",
                          text);
    return SP_OK;
}

const char *
sp_dkim_status_name(sp_dkim_status status)
{
    static const char *const names[] = {
#define SP_DKIM_STATUS_NAME(name, text) text,
        SP_DKIM_STATUSES(SP_DKIM_STATUS_NAME)
#undef SP_DKIM_STATUS_NAME
    };

    if ((size_t)status >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[status];
}

const char *
sp_dkim_reason_word(sp_dkim_reason reason)
{
    static const char *const words[] = {
#define SP_DKIM_REASON_WORD(name, word, text) word,
        SP_DKIM_REASONS(SP_DKIM_REASON_WORD)
#undef SP_DKIM_REASON_WORD
    };

    if ((size_t)reason >= sizeof(words) / sizeof(words[0]))
        return "unknown";
    return words[reason];
}
