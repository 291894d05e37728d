/*
 * tag.c: the tag=value list syntax of DKIM-Signature fields and key records
 * (RFC 6376 section 3.2).
 *
 * Owns dkim__tag_parse, dkim__tag_find and dkim__tag_is.  The parser does
 * not copy: each tag points into the text, and records where its value
 * starts and where its spec ends, so the verifier can blank the b= value
 * byte for byte.
 *
 * Leniency, on purpose: whitespace is SP, TAB, CR or LF anywhere between
 * tokens (folding is already undone or harmless here), and empty specs
 * ("a=1;;b=2") are skipped, as several widely used signers emit them.
 * Values may hold any byte but ';' and whitespace runs inside them are
 * kept, since RFC 6376 allows FWS inside values (b=, h=, z=).
 */
#include "dkim_int.h"

#include <string.h>

static bool
tag_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
tag_name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return !first && ((c >= '0' && c <= '9') || c == '_');
}

/* Parse the spec in text[start..end), which holds no ';'. */
static int
tag_spec(const char *text, size_t start, size_t end, dkim__tags *tags,
         sp_error *err)
{
    size_t pos = start;
    size_t name_start, name_end, value_start, value_end;
    dkim__tag *tag;

    while (pos < end && tag_space(text[pos]))
        pos++;
    if (pos == end)
        return SP_OK; /* an empty spec */

    /* tag-name = ALPHA *(ALPHA / DIGIT / "_") */
    name_start = pos;
    while (pos < end && tag_name_char(text[pos], pos == name_start))
        pos++;
    name_end = pos;
    if (name_end == name_start)
        return sp_err_set(err, SP_ESYNTAX,
                          "a tag name must start with a letter "
                          "(at offset %zu)",
                          name_start);

    while (pos < end && tag_space(text[pos]))
        pos++;
    if (pos == end || text[pos] != '=')
        return sp_err_set(
            err, SP_ESYNTAX, "tag \"%.*s\" has no '='",
            (int)(name_end - name_start > 32 ? 32 : name_end - name_start),
            text + name_start);
    pos++;

    /* The value, without the whitespace around it. */
    value_start = pos;
    while (value_start < end && tag_space(text[value_start]))
        value_start++;
    value_end = end;
    while (value_end > value_start && tag_space(text[value_end - 1]))
        value_end--;

    /* RFC 6376 3.2: a duplicate tag makes the whole list invalid. */
    for (size_t i = 0; i < tags->count; i++)
        if (tags->tag[i].name_len == name_end - name_start &&
            memcmp(tags->tag[i].name, text + name_start,
                   name_end - name_start) == 0)
            return sp_err_set(
                err, SP_ESYNTAX, "tag \"%.*s\" appears twice",
                (int)(name_end - name_start > 32 ? 32 : name_end - name_start),
                text + name_start);
    if (tags->count == DKIM__MAX_TAGS)
        return sp_err_set(err, SP_ESYNTAX, "more than %d tags", DKIM__MAX_TAGS);

    tag = &tags->tag[tags->count++];
    tag->name = text + name_start;
    tag->name_len = name_end - name_start;
    tag->value = text + value_start;
    tag->value_len = value_end - value_start;
    tag->after_equals = pos;
    tag->spec_end = end;
    return SP_OK;
}

int
dkim__tag_parse(const char *text, size_t len, dkim__tags *tags, sp_error *err)
{
    size_t start = 0;

    tags->count = 0;
    while (start <= len) {
        const char *semicolon = memchr(text + start, ';', len - start);
        size_t end = semicolon ? (size_t)(semicolon - text) : len;
        int rc = tag_spec(text, start, end, tags, err);

        if (rc != SP_OK) {
            tags->count = 0;
            return rc;
        }
        start = end + 1;
    }
    return SP_OK;
}

const dkim__tag *
dkim__tag_find(const dkim__tags *tags, const char *name)
{
    size_t name_len = strlen(name);

    for (size_t i = 0; i < tags->count; i++)
        if (tags->tag[i].name_len == name_len &&
            memcmp(tags->tag[i].name, name, name_len) == 0)
            return &tags->tag[i];
    return NULL;
}

bool
dkim__tag_is(const dkim__tag *tag, const char *text)
{
    size_t len = strlen(text);

    return tag->value_len == len && memcmp(tag->value, text, len) == 0;
}

bool
dkim__tag_list_next(const dkim__tag *tag, size_t *pos, const char **item,
                    size_t *item_len)
{
    const char *colon;
    size_t start = *pos, end;

    if (start > tag->value_len)
        return false;
    colon = memchr(tag->value + start, ':', tag->value_len - start);
    end = colon ? (size_t)(colon - tag->value) : tag->value_len;
    *pos = end + 1;

    while (start < end && tag_space(tag->value[start]))
        start++;
    while (end > start && tag_space(tag->value[end - 1]))
        end--;
    *item = tag->value + start;
    *item_len = end - start;
    return true;
}

bool
dkim__tag_list_has(const dkim__tag *tag, const char *word)
{
    size_t word_len = strlen(word), pos = 0, len;
    const char *item;

    while (dkim__tag_list_next(tag, &pos, &item, &len))
        if (len == word_len && memcmp(item, word, len) == 0)
            return true;
    return false;
}

const char *
dkim__tag_show(const dkim__tag *tag, char *dst, size_t size)
{
    return sp_log_escape(dst, size, tag->value, tag->value_len);
}
