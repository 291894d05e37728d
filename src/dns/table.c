/*
 * table.c: DNS answers from a table read from a file.
 *
 * Owns sp_dns_table_*.  Tests and offline diagnosis need DNS answers that
 * are fixed, including failures (SERVFAIL, TIMEOUT) a live server would
 * only give by accident.  The table is a flat array searched linearly: it
 * holds tens of names, not millions.
 */
#include "dns.h"

#include <string.h>
#include <strings.h>

struct table_entry {
    char *name;           /* lower case, no final dot; owned */
    sp_dns_status status; /* SP_DNS_OK for a TXT record */
    char *text;           /* joined strings of a TXT record; owned */
    size_t len;
};

struct sp_dns_table {
    struct table_entry *entries; /* owned array */
    size_t count;
    size_t capacity;
};

/* Copy a name in lower case without its final dot. */
static char *
table_name(const char *name, size_t len)
{
    char *copy;

    if (len > 0 && name[len - 1] == '.')
        len--;
    copy = sp_strndup(name, len);
    for (size_t i = 0; copy != NULL && i < len; i++)
        if (copy[i] >= 'A' && copy[i] <= 'Z')
            copy[i] = (char)(copy[i] + ('a' - 'A'));
    return copy;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Append the quoted strings in line[pos..len) to text, joined.  Returns
 * SP_OK, SP_ESYNTAX for a missing quote or bad escape, SP_ENOMEM.
 */
static int
table_strings(const char *line, size_t pos, size_t len, sp_buf *text)
{
    bool any = false;

    for (;;) {
        while (pos < len && (line[pos] == ' ' || line[pos] == '\t'))
            pos++;
        if (pos == len)
            return any ? SP_OK : SP_ESYNTAX;
        if (line[pos] != '"')
            return SP_ESYNTAX;
        any = true;

        for (pos++; pos < len && line[pos] != '"'; pos++) {
            char c = line[pos];

            /* \DDD is a decimal octet (three digits, at most 255); a
               backslash before anything else quotes that character. */
            if (c == '\\' && pos + 1 < len && is_digit(line[pos + 1])) {
                int value;

                if (pos + 3 >= len || !is_digit(line[pos + 2]) ||
                    !is_digit(line[pos + 3]))
                    return SP_ESYNTAX;
                value = (line[pos + 1] - '0') * 100 +
                        (line[pos + 2] - '0') * 10 + (line[pos + 3] - '0');
                if (value > 255)
                    return SP_ESYNTAX;
                c = (char)value;
                pos += 3;
            } else if (c == '\\') {
                if (pos + 1 == len)
                    return SP_ESYNTAX;
                c = line[++pos];
            }
            if (sp_buf_append(text, &c, 1) != SP_OK)
                return SP_ENOMEM;
        }
        if (pos == len)
            return SP_ESYNTAX;
        pos++;
    }
}

/* Add one parsed line to the table. */
static int
table_add(sp_dns_table *table, struct table_entry *entry)
{
    if (table->count == table->capacity) {
        size_t capacity = table->capacity ? table->capacity * 2 : 16;
        struct table_entry *grown =
            sp_realloc(table->entries, capacity * sizeof(*grown));

        if (grown == NULL)
            return SP_ENOMEM;
        table->entries = grown;
        table->capacity = capacity;
    }
    table->entries[table->count++] = *entry;
    return SP_OK;
}

/* Parse one line that is neither blank nor a comment. */
static int
table_line(sp_dns_table *table, const char *line, size_t len)
{
    static const struct {
        const char *word;
        sp_dns_status status;
    } kinds[] = {
        {"TXT", SP_DNS_OK},
        {"NXDOMAIN", SP_DNS_NXDOMAIN},
        {"SERVFAIL", SP_DNS_SERVFAIL},
        {"TIMEOUT", SP_DNS_TIMEOUT},
    };
    struct table_entry entry = {0};
    sp_buf text = SP_BUF_INIT;
    size_t name_end = 0, kind_start, kind_end;
    int rc = SP_ESYNTAX;

    while (name_end < len && line[name_end] != ' ' && line[name_end] != '\t')
        name_end++;
    kind_start = name_end;
    while (kind_start < len &&
           (line[kind_start] == ' ' || line[kind_start] == '\t'))
        kind_start++;
    kind_end = kind_start;
    while (kind_end < len && line[kind_end] != ' ' && line[kind_end] != '\t')
        kind_end++;

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (strlen(kinds[k].word) != kind_end - kind_start ||
            memcmp(kinds[k].word, line + kind_start, kind_end - kind_start))
            continue;
        entry.status = kinds[k].status;
        rc = SP_OK;
        if (entry.status == SP_DNS_OK)
            rc = table_strings(line, kind_end, len, &text);
        else if (kind_end != len)
            rc = SP_ESYNTAX; /* nothing may follow a failure's name */
        break;
    }
    if (rc != SP_OK || name_end == 0) {
        sp_buf_free(&text);
        return rc == SP_OK ? SP_ESYNTAX : rc;
    }

    entry.name = table_name(line, name_end);
    entry.text = text.data ? text.data : sp_strndup("", 0);
    entry.len = text.len;
    if (entry.name == NULL || entry.text == NULL ||
        table_add(table, &entry) != SP_OK) {
        sp_free(entry.name);
        sp_free(entry.text);
        return SP_ENOMEM;
    }
    return SP_OK;
}

int
sp_dns_table_parse(const char *text, size_t len, sp_dns_table **out,
                   sp_error *err)
{
    sp_dns_table *table = sp_calloc(1, sizeof(*table));
    size_t pos = 0, line_number = 0;

    *out = NULL;
    if (table == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");

    while (pos < len) {
        const char *newline = memchr(text + pos, '\n', len - pos);
        size_t end = newline ? (size_t)(newline - text) : len;
        size_t start = pos, stop = end;
        int rc;

        line_number++;
        pos = end + 1;
        while (start < stop && (text[start] == ' ' || text[start] == '\t'))
            start++;
        while (stop > start &&
               (text[stop - 1] == ' ' || text[stop - 1] == '\t' ||
                text[stop - 1] == '\r'))
            stop--;
        if (start == stop || text[start] == '#')
            continue;

        rc = table_line(table, text + start, stop - start);
        if (rc != SP_OK) {
            sp_dns_table_free(table);
            return sp_err_set(err, rc,
                              rc == SP_ENOMEM
                                  ? "out of memory at line %zu"
                                  : "line %zu is not \"name TXT \\\"text\\\"\" "
                                    "or \"name NXDOMAIN|SERVFAIL|TIMEOUT\"",
                              line_number);
        }
    }
    *out = table;
    return SP_OK;
}

void
sp_dns_table_txt(const sp_dns_table *table, const char *name,
                 sp_dns_answer *answer)
{
    size_t len = strlen(name);

    answer->status = SP_DNS_NXDOMAIN;
    answer->count = 0;
    if (len > 0 && name[len - 1] == '.')
        len--;

    for (size_t i = 0; i < table->count; i++) {
        const struct table_entry *entry = &table->entries[i];

        if (strlen(entry->name) != len || strncasecmp(entry->name, name, len))
            continue;
        answer->status = entry->status;
        if (entry->status != SP_DNS_OK) {
            answer->count = 0;
            return;
        }
        if (answer->count < SP_DNS_MAX_RECORDS) {
            answer->records[answer->count].text = entry->text;
            answer->records[answer->count].len = entry->len;
            answer->count++;
        }
    }
}

void
sp_dns_table_free(sp_dns_table *table)
{
    if (table == NULL)
        return;
    for (size_t i = 0; i < table->count; i++) {
        sp_free(table->entries[i].name);
        sp_free(table->entries[i].text);
    }
    sp_free(table->entries);
    sp_free(table);
}
