/*
 * record.c: DMARC policy records, the TXT value at _dmarc.DOMAIN
 * (RFC 7489 6.3 and 6.4).
 *
 * Owns sp_dmarc_record_*, sp_dmarc_uri_*, sp_dmarc_policy_* and
 * (domain names are checked by the mail module).  Pure: bytes in, a parsed
 * record or a sentence out.
 *
 * The parser reads every tag it can and reports the first fault, so one
 * broken tag does not hide what the rest of the record says.  It is
 * stricter than a receiver on purpose, since it serves people publishing
 * or auditing a record: unknown tags and report URIs other than mailto:
 * are faults here (receivers ignore the one and may ignore the other, so
 * either way the publisher does not get what was written).
 *
 * Also accepted: np=, psd= and t= from the DMARCbis drafts, which
 * receivers have begun to read.  Limits: at most RECORD_MAX_TAGS tags;
 * report URIs are checked for form only, not whether the reports would be
 * accepted by the receiving domain (RFC 7489 7.1 needs DNS for that).
 */
#include "dmarc.h"
#include "mail/mail.h"

#include <stdio.h>
#include <string.h>

#define RECORD_MAX_TAGS  32
#define RECORD_SHOW      48 /* bytes of a value quoted in a message */
#define RECORD_LOCAL_MAX 64 /* octets of an address's local part */

/* One tag=value spec; both parts point into the record text. */
typedef struct record_tag {
    const char *name;
    size_t name_len;
    const char *value; /* without the whitespace around it */
    size_t value_len;
} record_tag;

static bool
record_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char
record_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* Whether len bytes of text equal word, without regard to case. */
static bool
record_word(const char *text, size_t len, const char *word)
{
    size_t word_len = strlen(word);

    if (len != word_len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (record_lower(text[i]) != word[i])
            return false;
    return true;
}

/* A value for a message: escaped, since records come from strangers. */
static const char *
record_show(const char *text, size_t len, char *dst, size_t size)
{
    return sp_log_escape(dst, size, text, len);
}

static int record_fail(sp_error *err, const char *fmt, ...) SP_PRINTF(2, 3);

/* Fill err with a DMARC fault and return SP_ESYNTAX. */
static int
record_fail(sp_error *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return SP_ESYNTAX;
    err->code = SP_ESYNTAX;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return SP_ESYNTAX;
}

const char *
sp_dmarc_policy_name(sp_dmarc_policy policy)
{
    switch (policy) {
    case SP_DMARC_QUARANTINE:
        return "quarantine";
    case SP_DMARC_REJECT:
        return "reject";
    default:
        return "none";
    }
}

int
sp_dmarc_policy_parse(const char *text, size_t len, sp_dmarc_policy *out)
{
    static const sp_dmarc_policy all[] = {SP_DMARC_NONE, SP_DMARC_QUARANTINE,
                                          SP_DMARC_REJECT};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (record_word(text, len, sp_dmarc_policy_name(all[i]))) {
            *out = all[i];
            return SP_OK;
        }
    return SP_ESYNTAX;
}

/* ------------------------------------------------------------------------
 * Report URIs
 */

bool
sp_dmarc_uri_next(const char *text, size_t len, size_t *pos, const char **uri,
                  size_t *uri_len)
{
    size_t start = *pos, end;
    const char *comma;

    if (start > len)
        return false;
    comma = memchr(text + start, ',', len - start);
    end = comma ? (size_t)(comma - text) : len;
    *pos = end + 1;
    while (start < end && record_space(text[start]))
        start++;
    while (end > start && record_space(text[end - 1]))
        end--;
    *uri = text + start;
    *uri_len = end - start;
    return true;
}

/*
 * Bytes allowed in a local part: RFC 5322 atext and '.', but not '!',
 * which DMARC gives the size limit, nor '?', which would start URI header
 * fields DMARC has no use for; '%' is checked as an escape.
 */
static bool
record_local_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr(".#$&'*+/=^_`{|}~-", c) != NULL;
}

static bool
record_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* The "!10m" size limit after an address: digits and an optional unit. */
static bool
record_size_limit(const char *text, size_t len)
{
    size_t digits = 0;

    while (digits < len && text[digits] >= '0' && text[digits] <= '9')
        digits++;
    if (digits == 0)
        return false;
    return digits == len || (digits + 1 == len && text[digits] != '\0' &&
                             strchr("kmgtKMGT", text[digits]) != NULL);
}

/* Whether an address's local part is well formed (escapes included). */
static bool
record_local_valid(const char *text, size_t len)
{
    if (len == 0 || len > RECORD_LOCAL_MAX || text[0] == '.' ||
        text[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '%') {
            if (i + 2 >= len || !record_hex(text[i + 1]) ||
                !record_hex(text[i + 2]))
                return false;
            i += 2;
        } else if (text[i] == '\0' || !record_local_char(text[i]) ||
                   (text[i] == '.' && i + 1 < len && text[i + 1] == '.')) {
            return false; /* ".." is no dot-atom */
        }
    }
    return true;
}

/* Check one mailto: URI. */
static int
record_uri_check(const char *uri, size_t len, sp_error *err)
{
    const char *address, *at, *bang, *end = uri + len;
    char shown[RECORD_SHOW];

    if (len == 0)
        return record_fail(err, "an empty URI in the list (two commas, or "
                                "one at an end)");
    if (len < 7 || !record_word(uri, 7, "mailto:"))
        return record_fail(err,
                           "\"%s\" is not a mailto: URI (mailto: is the only "
                           "scheme receivers must support, RFC 7489 6.2)",
                           record_show(uri, len, shown, sizeof(shown)));

    /* The size limit follows the last '!'; the address comes before. */
    address = uri + 7;
    bang = memchr(address, '!', (size_t)(end - address));
    if (bang != NULL && !record_size_limit(bang + 1, (size_t)(end - bang - 1)))
        return record_fail(err,
                           "\"%s\": a size limit after '!' must be digits "
                           "with an optional k, m, g or t",
                           record_show(uri, len, shown, sizeof(shown)));
    if (bang != NULL)
        end = bang;
    at = memchr(address, '@', (size_t)(end - address));
    if (at == NULL || !record_local_valid(address, (size_t)(at - address)) ||
        !sp_mail_domain_valid(at + 1, (size_t)(end - at - 1),
                              SP_MAIL_DOMAIN_DOTTED))
        return record_fail(err,
                           "\"%s\" does not hold an address local@domain.tld",
                           record_show(uri, len, shown, sizeof(shown)));
    return SP_OK;
}

int
sp_dmarc_uri_list_check(const char *text, size_t len, sp_error *err)
{
    const char *uri;
    size_t pos = 0, uri_len;
    int rc;

    if (len == 0)
        return record_fail(err, "the list of report addresses is empty");
    while (sp_dmarc_uri_next(text, len, &pos, &uri, &uri_len)) {
        rc = record_uri_check(uri, uri_len, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

void
sp_dmarc_uri_domain(const char *uri, size_t len, const char **domain,
                    size_t *domain_len)
{
    const char *bang = memchr(uri, '!', len);
    const char *end = bang ? bang : uri + len;
    const char *at = uri;

    for (const char *p = uri; p < end; p++)
        if (*p == '@')
            at = p + 1;
    *domain = at;
    *domain_len = (size_t)(end - at);
}

/* ------------------------------------------------------------------------
 * Tags
 */

/* Parse the spec text[start..end), which holds no ';'; *empty if blank. */
static int
record_spec(const char *text, size_t start, size_t end, record_tag *tag,
            bool *empty, sp_error *err)
{
    size_t pos = start, name_start;
    char shown[RECORD_SHOW];

    while (pos < end && record_space(text[pos]))
        pos++;
    *empty = pos == end;
    if (*empty)
        return SP_OK;

    name_start = pos;
    while (pos < end &&
           ((text[pos] >= 'a' && text[pos] <= 'z') ||
            (text[pos] >= 'A' && text[pos] <= 'Z') ||
            (pos > name_start &&
             ((text[pos] >= '0' && text[pos] <= '9') || text[pos] == '_'))))
        pos++;
    tag->name = text + name_start;
    tag->name_len = pos - name_start;
    while (pos < end && record_space(text[pos]))
        pos++;
    if (tag->name_len == 0 || pos == end || text[pos] != '=')
        return record_fail(err,
                           "\"%s\" is not a tag=value pair (a missing '=' "
                           "or ';'?)",
                           record_show(text + name_start, end - name_start,
                                       shown, sizeof(shown)));
    pos++;
    while (pos < end && record_space(text[pos]))
        pos++;
    while (end > pos && record_space(text[end - 1]))
        end--;
    tag->value = text + pos;
    tag->value_len = end - pos;
    return SP_OK;
}

/* A policy value: p=, sp= or np=. */
static int
record_policy_value(const record_tag *tag, sp_dmarc_policy *out, sp_error *err)
{
    char shown[RECORD_SHOW];

    if (sp_dmarc_policy_parse(tag->value, tag->value_len, out) == SP_OK)
        return SP_OK;
    return record_fail(
        err, "%.*s=%s is not none, quarantine or reject", (int)tag->name_len,
        tag->name,
        record_show(tag->value, tag->value_len, shown, sizeof(shown)));
}

/* A number of at most max; ri= and pct=. */
static int
record_number(const record_tag *tag, uint64_t max, uint64_t *out, sp_error *err)
{
    char shown[RECORD_SHOW];
    uint64_t value = 0;
    size_t i;

    for (i = 0; i < tag->value_len && i < 10; i++) {
        if (tag->value[i] < '0' || tag->value[i] > '9')
            break;
        value = value * 10 + (uint64_t)(tag->value[i] - '0');
    }
    if (tag->value_len == 0 || i != tag->value_len || value > max)
        return record_fail(
            err, "%.*s=%s is not a number from 0 to %llu", (int)tag->name_len,
            tag->name,
            record_show(tag->value, tag->value_len, shown, sizeof(shown)),
            (unsigned long long)max);
    *out = value;
    return SP_OK;
}

/*
 * A colon-separated list whose items are all among the words of allowed
 * (separated by spaces): fo= and rf=.
 */
static int
record_word_list(const record_tag *tag, const char *allowed, sp_error *err)
{
    char shown[RECORD_SHOW];
    size_t start = 0;

    while (start <= tag->value_len) {
        const char *colon =
            memchr(tag->value + start, ':', tag->value_len - start);
        size_t end = colon ? (size_t)(colon - tag->value) : tag->value_len;
        size_t a = start, b = end;
        bool known = false;

        while (a < b && record_space(tag->value[a]))
            a++;
        while (b > a && record_space(tag->value[b - 1]))
            b--;
        for (const char *w = allowed; *w != '\0' && !known;) {
            size_t wlen = strcspn(w, " ");

            known = b - a == wlen && memcmp(tag->value + a, w, wlen) == 0;
            w += wlen + (w[wlen] == ' ');
        }
        if (!known)
            return record_fail(
                err, "%.*s=%s: allowed values are %s", (int)tag->name_len,
                tag->name,
                record_show(tag->value, tag->value_len, shown, sizeof(shown)),
                allowed);
        start = end + 1;
    }
    return SP_OK;
}

/* One of a few single letters: adkim=, aspf=, psd=, t=. */
static int
record_letter(const record_tag *tag, const char *allowed, char *out,
              sp_error *err)
{
    char shown[RECORD_SHOW];

    if (tag->value_len == 1 && tag->value[0] != '\0' &&
        strchr(allowed, record_lower(tag->value[0])) != NULL) {
        *out = record_lower(tag->value[0]);
        return SP_OK;
    }
    return record_fail(
        err, "%.*s=%s: allowed values are the letters \"%s\"",
        (int)tag->name_len, tag->name,
        record_show(tag->value, tag->value_len, shown, sizeof(shown)), allowed);
}

/* A report address list: rua= or ruf=. */
static int
record_uris(const record_tag *tag, sp_error *err)
{
    sp_error why;

    if (sp_dmarc_uri_list_check(tag->value, tag->value_len, &why) == SP_OK)
        return SP_OK;
    return record_fail(err, "%.*s=: %s", (int)tag->name_len, tag->name,
                       why.text);
}

/* Read one tag other than v= into rec. */
static int
record_tag_read(const record_tag *tag, sp_dmarc_record *rec, sp_error *err)
{
    const char *n = tag->name;
    size_t nl = tag->name_len;
    sp_dmarc_policy ignored;
    uint64_t number;
    char letter = 0;
    int rc;

    if (record_word(n, nl, "p")) {
        rc = record_policy_value(tag, &rec->policy, err);
        rec->has_policy = rc == SP_OK;
        return rc;
    }
    if (record_word(n, nl, "sp")) {
        rc = record_policy_value(tag, &rec->subdomain_policy, err);
        rec->has_subdomain_policy = rc == SP_OK;
        return rc;
    }
    if (record_word(n, nl, "np"))
        return record_policy_value(tag, &ignored, err);
    if (record_word(n, nl, "adkim") || record_word(n, nl, "aspf")) {
        rc = record_letter(tag, "rs", &letter, err);
        if (rc == SP_OK && record_word(n, nl, "adkim"))
            rec->strict_dkim = letter == 's';
        else if (rc == SP_OK)
            rec->strict_spf = letter == 's';
        return rc;
    }
    if (record_word(n, nl, "pct")) {
        rc = record_number(tag, 100, &number, err);
        if (rc == SP_OK)
            rec->pct = (unsigned)number;
        return rc;
    }
    if (record_word(n, nl, "ri")) {
        rc = record_number(tag, UINT32_MAX, &number, err);
        if (rc == SP_OK)
            rec->interval = (uint32_t)number;
        return rc;
    }
    if (record_word(n, nl, "rua") || record_word(n, nl, "ruf")) {
        rc = record_uris(tag, err);
        if (rc == SP_OK && record_word(n, nl, "rua")) {
            rec->rua = tag->value;
            rec->rua_len = tag->value_len;
        } else if (rc == SP_OK) {
            rec->ruf = tag->value;
            rec->ruf_len = tag->value_len;
        }
        return rc;
    }
    if (record_word(n, nl, "fo"))
        return record_word_list(tag, "0 1 d s", err);
    if (record_word(n, nl, "rf"))
        return record_word_list(tag, "afrf", err);
    if (record_word(n, nl, "psd"))
        return record_letter(tag, "ynu", &letter, err);
    if (record_word(n, nl, "t"))
        return record_letter(tag, "yn", &letter, err);
    return record_fail(err,
                       "unknown tag \"%.*s\" (receivers ignore it; a "
                       "misspelled tag?)",
                       (int)(nl > 32 ? 32 : nl), n);
}

/* Whether a tag of the same name came before tags[count]. */
static bool
record_duplicate(const record_tag *tags, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (tags[i].name_len == tags[count].name_len) {
            bool same = true;

            for (size_t j = 0; j < tags[i].name_len && same; j++)
                same = record_lower(tags[i].name[j]) ==
                       record_lower(tags[count].name[j]);
            if (same)
                return true;
        }
    return false;
}

/* Check tags[count], the latest spec read, and read it into rec. */
static int
record_check_tag(record_tag *tags, size_t count, sp_dmarc_record *rec,
                 sp_error *err)
{
    const record_tag *tag = &tags[count];
    char shown[RECORD_SHOW];

    if (count == 0 && !record_word(tag->name, tag->name_len, "v"))
        return record_fail(err, "the record must start with v=DMARC1; "
                                "receivers discard it otherwise");
    if (record_duplicate(tags, count))
        return record_fail(err, "tag \"%.*s\" appears twice",
                           (int)(tag->name_len > 32 ? 32 : tag->name_len),
                           tag->name);
    if (!record_word(tag->name, tag->name_len, "v"))
        return record_tag_read(tag, rec, err);
    if (count != 0)
        return record_fail(err, "v= must be the first tag");
    if (tag->value_len != 6 || memcmp(tag->value, "DMARC1", 6) != 0)
        return record_fail(
            err, "version v=%s is not DMARC1",
            record_show(tag->value, tag->value_len, shown, sizeof(shown)));
    return SP_OK;
}

int
sp_dmarc_record_parse(const char *text, size_t len, sp_dmarc_record *rec,
                      sp_error *err)
{
    record_tag tags[RECORD_MAX_TAGS];
    size_t count = 0, start = 0;
    sp_error first = {SP_OK, ""}, one;
    int rc = SP_OK;

    memset(rec, 0, sizeof(*rec));
    rec->pct = 100;
    rec->interval = 86400;

    /* Every spec is read; the first fault is the one reported. */
    while (start <= len) {
        const char *semicolon = memchr(text + start, ';', len - start);
        size_t end = semicolon ? (size_t)(semicolon - text) : len;
        record_tag tag;
        bool empty;
        int one_rc = record_spec(text, start, end, &tag, &empty, &one);

        start = end + 1;
        if (one_rc == SP_OK && !empty && count == RECORD_MAX_TAGS) {
            one_rc = record_fail(&one, "more than %d tags", RECORD_MAX_TAGS);
            start = len + 1;
        } else if (one_rc == SP_OK && !empty) {
            tags[count] = tag;
            one_rc = record_check_tag(tags, count, rec, &one);
            count++;
        }
        if (one_rc != SP_OK && rc == SP_OK) {
            rc = one_rc;
            first = one;
        }
    }
    rec->tags = count;

    if (rc == SP_OK && count == 0)
        rc = record_fail(&first, "the record is empty");
    if (rc == SP_OK && !rec->has_policy)
        rc = record_fail(&first,
                         "no p= tag: the policy is required (receivers "
                         "treat a record without one as p=none at best)");
    if (rc != SP_OK)
        return sp_err_set(err, rc, "DMARC record: %s", first.text);
    return SP_OK;
}

int
sp_dmarc_record_make(sp_dmarc_policy policy, unsigned pct, const char *rua,
                     sp_buf *out, sp_error *err)
{
    sp_buf record = SP_BUF_INIT;
    const char *uri;
    size_t pos = 0, uri_len, rua_len = strlen(rua);
    sp_error why;
    int rc;

    if (sp_dmarc_uri_list_check(rua, rua_len, &why) != SP_OK)
        return sp_err_set(err, SP_EINVAL, "rua: %s", why.text);
    if (pct > 100 || (pct < 100 && policy == SP_DMARC_NONE))
        return sp_err_set(err, SP_EINVAL,
                          "pct=%u: a percentage below 100 applies to "
                          "quarantine or reject only",
                          pct);

    /* The URIs are written again without the spaces the list allowed. */
    rc = sp_buf_printf(&record, "v=DMARC1; p=%s", sp_dmarc_policy_name(policy));
    if (rc == SP_OK && pct < 100)
        rc = sp_buf_printf(&record, "; pct=%u", pct);
    if (rc == SP_OK)
        rc = sp_buf_append_str(&record, "; rua=");
    for (bool first = true;
         rc == SP_OK && sp_dmarc_uri_next(rua, rua_len, &pos, &uri, &uri_len);
         first = false) {
        if (!first)
            rc = sp_buf_append(&record, ",", 1);
        if (rc == SP_OK)
            rc = sp_buf_append(&record, uri, uri_len);
    }
    if (rc == SP_OK)
        rc = sp_buf_append(out, record.data, record.len);
    sp_buf_free(&record);
    if (rc != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory making a record");
    return SP_OK;
}
