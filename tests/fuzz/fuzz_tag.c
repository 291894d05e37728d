/*
 * fuzz_tag.c: libFuzzer target for the tag=value list parser of the DKIM
 * module (dkim__tag_parse, dkim__tag_find, dkim__tag_is,
 * dkim__tag_list_next and dkim__tag_list_has in src/dkim/tag.c).
 *
 * The input is one tag list, as it follows "DKIM-Signature:" or makes up
 * a key record.  Besides the memory errors the sanitizers catch, it checks
 * what the verifier relies on when it blanks b= byte for byte: every name
 * and value lies inside the input, after_equals <= spec_end <= len, a spec
 * ends at ';' or at the end, only whitespace and empty specs are skipped,
 * names are unique and well formed, the count is the number of non-empty
 * specs, and finding a tag by name or walking its value as a list gives
 * back what was parsed.  A failed parse must leave no tags and say why.
 *
 * A broken invariant aborts, so libFuzzer keeps the input as a crash.
 */
#include "dkim/dkim_int.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whitespace tag.c skips between tokens. */
static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Whether p[0..len) lies inside text[0..size). */
static bool
inside(const char *text, size_t size, const char *p, size_t len)
{
    return p >= text && (size_t)(p - text) <= size &&
           len <= size - (size_t)(p - text);
}

/* NUL-terminated copy, since the lookup functions take C strings. */
static char *
copy(const char *p, size_t len)
{
    char *out = malloc(len + 1);

    CHECK(out != NULL);
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

/* Specs holding more than whitespace: what a successful parse counts. */
static size_t
count_specs(const char *text, size_t size)
{
    size_t count = 0;
    bool content = false;

    for (size_t i = 0; i <= size; i++) {
        if (i == size || text[i] == ';') {
            count += content;
            content = false;
        } else if (!is_space(text[i])) {
            content = true;
        }
    }
    return count;
}

/*
 * One tag's place in the text: the name, then only whitespace up to '=',
 * then the trimmed value, then only whitespace up to the end of the spec.
 */
static void
check_place(const char *text, size_t size, const dkim__tag *tag)
{
    size_t name_at, value_at, value_end;

    CHECK(tag->name_len > 0);
    CHECK(inside(text, size, tag->name, tag->name_len));
    CHECK(inside(text, size, tag->value, tag->value_len));
    CHECK(tag->after_equals <= tag->spec_end && tag->spec_end <= size);
    CHECK(tag->after_equals > 0 && text[tag->after_equals - 1] == '=');
    CHECK(tag->spec_end == size || text[tag->spec_end] == ';');

    name_at = (size_t)(tag->name - text);
    value_at = (size_t)(tag->value - text);
    value_end = value_at + tag->value_len;
    CHECK(name_at + tag->name_len < tag->after_equals);
    CHECK(value_at >= tag->after_equals && value_end <= tag->spec_end);
    for (size_t i = name_at + tag->name_len; i < tag->after_equals - 1; i++)
        CHECK(is_space(text[i]));
    for (size_t i = tag->after_equals; i < value_at; i++)
        CHECK(is_space(text[i]));
    for (size_t i = value_end; i < tag->spec_end; i++)
        CHECK(is_space(text[i]));
    if (tag->value_len > 0)
        CHECK(!is_space(tag->value[0]) &&
              !is_space(tag->value[tag->value_len - 1]));
    CHECK(memchr(tag->value, ';', tag->value_len) == NULL);

    /* tag-name = ALPHA *(ALPHA / DIGIT / "_") */
    CHECK(is_alpha(tag->name[0]));
    for (size_t i = 1; i < tag->name_len; i++)
        CHECK(is_alpha(tag->name[i]) ||
              (tag->name[i] >= '0' && tag->name[i] <= '9') ||
              tag->name[i] == '_');
}

/*
 * Walk the value as a colon-separated list: one element more than there
 * are colons, each trimmed, in order, inside the value, then nothing.
 */
static void
check_list(const dkim__tag *tag)
{
    const char *end = tag->value + tag->value_len;
    const char *seen = tag->value;
    size_t colons = 0, items = 0, pos = 0, len;
    const char *item;

    for (size_t i = 0; i < tag->value_len; i++)
        colons += tag->value[i] == ':';
    while (dkim__tag_list_next(tag, &pos, &item, &len)) {
        CHECK(++items <= colons + 1);
        CHECK(item >= seen && item <= end && len <= (size_t)(end - item));
        CHECK(memchr(item, ':', len) == NULL);
        if (len > 0)
            CHECK(!is_space(item[0]) && !is_space(item[len - 1]));
        seen = item + len;

        /* A word with a NUL cannot be asked for as a C string. */
        if (len > 0 && memchr(item, '\0', len) == NULL) {
            char *word = copy(item, len);

            CHECK(dkim__tag_list_has(tag, word));
            free(word);
        }
    }
    CHECK(items == colons + 1);
    CHECK(!dkim__tag_list_next(tag, &pos, &item, &len));
}

/* Lookups by name and by value must give back the parsed tag. */
static void
check_lookups(const dkim__tags *tags, size_t index)
{
    const dkim__tag *tag = &tags->tag[index];
    char *name = copy(tag->name, tag->name_len);

    CHECK(dkim__tag_find(tags, name) == tag);
    free(name);
    if (memchr(tag->value, '\0', tag->value_len) == NULL) {
        char *value = copy(tag->value, tag->value_len);

        CHECK(dkim__tag_is(tag, value));
        free(value);
    }
    check_list(tag);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    dkim__tags tags;
    sp_error err;
    size_t next = 0;

    if (dkim__tag_parse(text, size, &tags, &err) != SP_OK) {
        CHECK(tags.count == 0);
        CHECK(err.code == SP_ESYNTAX);
        CHECK(err.text[0] != '\0' &&
              memchr(err.text, '\0', sizeof(err.text)) != NULL);
        return 0;
    }
    CHECK(tags.count == count_specs(text, size));

    for (size_t i = 0; i < tags.count; i++) {
        const dkim__tag *tag = &tags.tag[i];
        size_t name_at = (size_t)(tag->name - text);

        check_place(text, size, tag);

        /* Tags come in text order; what lies between is empty specs. */
        CHECK(name_at >= next);
        for (size_t k = next; k < name_at; k++)
            CHECK(is_space(text[k]) || text[k] == ';');
        next = tag->spec_end + 1;

        for (size_t k = 0; k < i; k++)
            CHECK(tags.tag[k].name_len != tag->name_len ||
                  memcmp(tags.tag[k].name, tag->name, tag->name_len) != 0);
        check_lookups(&tags, i);
    }
    for (size_t k = next; k < size; k++)
        CHECK(is_space(text[k]) || text[k] == ';');
    return 0;
}
