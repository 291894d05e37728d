/*
 * header.c: locating the fields of a header section without changing it.
 *
 * Owns sp_mail_header_* and sp_mail_field_is.  Signatures cover the exact
 * bytes of fields, so the index records offsets only; nothing is unfolded,
 * decoded or copied.  Only CRLF ends a line: a bare CR or LF inside a field
 * is content, as RFC 5322 sees it, and whoever wants otherwise normalizes
 * the message first (eol.c).
 */
#include "mail.h"

#include <string.h>

size_t
sp_mail_header_end(const char *data, size_t len, size_t *scanned)
{
    size_t i = *scanned;

    /* A message that starts with an empty line has an empty header. */
    if (len >= 2 && data[0] == '\r' && data[1] == '\n')
        return 2;

    /* Look for CRLF CRLF; resume three bytes back to catch a split. */
    i = i >= 3 ? i - 3 : 0;
    while (i + 4 <= len) {
        const char *cr = memchr(data + i, '\r', len - i);

        if (cr == NULL)
            break;
        i = (size_t)(cr - data);
        if (i + 4 > len)
            break;
        if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
            return i + 4;
        i++;
    }
    *scanned = len;
    return 0;
}

uint32_t
sp_mail_name_hash(const char *name, size_t len)
{
    uint32_t hash = 2166136261u;

    /* FNV-1a over the lower-cased name. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        hash = (hash ^ c) * 16777619u;
    }
    return hash;
}

/* Append one field to the index, growing it as needed. */
static int
header_push(sp_mail_header *header, const sp_mail_field *field)
{
    if (header->count == header->capacity) {
        size_t capacity = header->capacity ? header->capacity * 2 : 32;
        sp_mail_field *grown =
            sp_realloc(header->fields, capacity * sizeof(*grown));

        if (grown == NULL)
            return SP_ENOMEM;
        header->fields = grown;
        header->capacity = capacity;
    }
    header->fields[header->count++] = *field;
    return SP_OK;
}

/* Fill the name part of field from the bytes of its first line. */
static void
field_name(sp_mail_field *field, const char *block)
{
    const char *start = block + field->offset;
    const char *colon = memchr(start, ':', field->length);
    size_t name_length;

    if (colon == NULL) {
        field->name_length = 0;
        field->colon = 0;
        field->name_hash = 0;
        return;
    }

    /* Obsolete syntax allows whitespace between the name and the colon. */
    field->colon = (size_t)(colon - start);
    name_length = field->colon;
    while (name_length > 0 &&
           (start[name_length - 1] == ' ' || start[name_length - 1] == '\t'))
        name_length--;
    field->name_length = name_length;
    field->name_hash = sp_mail_name_hash(start, name_length);
}

int
sp_mail_header_index(sp_mail_header *header, const char *block, size_t len)
{
    size_t pos = 0;

    header->count = 0;
    while (pos < len) {
        sp_mail_field field = {.offset = pos};
        size_t end = pos;

        /* The blank line that ends the section is not a field. */
        if (len - pos >= 2 && block[pos] == '\r' && block[pos + 1] == '\n')
            break;

        /* A field runs until CRLF that is not followed by SP or TAB. */
        for (;;) {
            const char *cr = memchr(block + end, '\r', len - end);

            if (cr == NULL) {
                end = len;
                break;
            }
            end = (size_t)(cr - block) + 1;
            if (end < len && block[end] == '\n') {
                end++;
                if (end >= len || (block[end] != ' ' && block[end] != '\t'))
                    break;
            }
        }
        field.length = end - pos;
        field_name(&field, block);
        if (header_push(header, &field) != SP_OK) {
            header->count = 0;
            return SP_ENOMEM;
        }
        pos = end;
    }
    return SP_OK;
}

bool
sp_mail_field_is(const sp_mail_field *field, const char *block,
                 const char *name, size_t name_len)
{
    const char *have = block + field->offset;

    if (field->name_length != name_len)
        return false;
    for (size_t i = 0; i < name_len; i++) {
        unsigned char a = (unsigned char)have[i];
        unsigned char b = (unsigned char)name[i];

        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + ('a' - 'A'));
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + ('a' - 'A'));
        if (a != b)
            return false;
    }
    return true;
}

size_t
sp_mail_header_count(const sp_mail_header *header, const char *block,
                     const char *name)
{
    size_t name_len = strlen(name);
    uint32_t hash = sp_mail_name_hash(name, name_len);
    size_t count = 0;

    for (size_t i = 0; i < header->count; i++) {
        const sp_mail_field *field = &header->fields[i];

        if (field->name_hash == hash &&
            sp_mail_field_is(field, block, name, name_len))
            count++;
    }
    return count;
}

void
sp_mail_header_free(sp_mail_header *header)
{
    sp_free(header->fields);
    header->fields = NULL;
    header->count = 0;
    header->capacity = 0;
}
