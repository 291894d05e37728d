/*
 * bench_msg.c: the messages the DKIM benchmark signs and verifies.
 *
 * Owns bench_msg_*.  A message is plain text mail as people write it: the
 * header fields every mail client sends, then paragraphs of prose folded
 * under 78 columns, with the irregularities relaxed canonicalization has
 * to undo (two spaces after a full stop, trailing blanks, quoted lines
 * indented with a tab, empty lines at the end).  The text comes from a
 * fixed pseudo-random sequence, so every run signs the same bytes.
 *
 * The header is split into fields once, here, because libopendkim takes
 * fields one at a time, already split by the MTA; sealpost splits the
 * message itself, so that work is counted against sealpost only.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

#define MSG_LINE_MAX 76 /* longest body line, as mail clients fold */

static const char msg_header[] =
    "From: Alice Martin <alice.martin@example.com>\r\n"
    "To: Bob Durand <bob.durand@example.org>, "
    "Carol Petit <carol.petit@example.net>\r\n"
    "Subject: Minutes of the Tuesday meeting and the plan for the "
    "next quarter\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0100\r\n"
    "Message-ID: <20231114221320.4f2a9c81d7@mail.example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n";

static const char *const msg_words[] = {
    "the",      "meeting",  "agreed", "that",      "we",       "should",
    "move",     "delivery", "queue",  "to",        "a",        "new",
    "server",   "before",   "end",    "of",        "month",    "and",
    "keep",     "old",      "one",    "as",        "backup",   "until",
    "reports",  "show",     "no",     "bounces",   "for",      "week",
    "Bob",      "will",     "check",  "DNS",       "records",  "with",
    "provider", "Carol",    "asked",  "whether",   "customer", "list",
    "needs",    "cleaning", "first",  "everyone",  "thought",  "it",
    "does",     "budget",   "is",     "unchanged", "but",      "travel",
    "costs",    "rose",     "this",   "quarter",   "please",   "send",
    "comments", "by",       "Friday", "thanks",
};

#define MSG_WORD_COUNT (sizeof(msg_words) / sizeof(msg_words[0]))

/* A small fixed generator (xorshift32): same sequence on every machine. */
static unsigned
msg_random(unsigned *seed)
{
    unsigned x = *seed;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *seed = x;
    return x;
}

/* Append one body line of prose, its irregularities chosen by seed. */
static int
msg_line(sp_buf *out, unsigned *seed)
{
    unsigned shape = msg_random(seed) % 16;
    size_t start = out->len;
    size_t limit = 44 + msg_random(seed) % (MSG_LINE_MAX - 44);
    int rc = SP_OK;

    /* One line in sixteen is quoted from an earlier message. */
    if (shape == 0)
        rc = sp_buf_append_str(out, ">\t");
    while (rc == SP_OK && out->len - start < limit) {
        const char *word = msg_words[msg_random(seed) % MSG_WORD_COUNT];
        unsigned gap = msg_random(seed) % 12;

        rc = sp_buf_append_str(out, word);
        if (rc == SP_OK && gap == 0)
            rc = sp_buf_append_str(out, ".  ");
        else if (rc == SP_OK && gap == 1)
            rc = sp_buf_append_str(out, ", ");
        else if (rc == SP_OK)
            rc = sp_buf_append_str(out, " ");
    }

    /* Trailing blanks, which relaxed canonicalization removes. */
    if (rc == SP_OK && shape == 1)
        rc = sp_buf_append_str(out, " \t ");
    if (rc == SP_OK)
        rc = sp_buf_append_str(out, "\r\n");
    if (rc == SP_OK && shape == 2)
        rc = sp_buf_append_str(out, "\r\n"); /* paragraph break */
    return rc;
}

/* Record where each field of the header starts and ends. */
static int
msg_split(bench_message *msg)
{
    size_t pos = 0;

    msg->field_count = 0;
    while (pos + 1 < msg->len &&
           !(msg->data[pos] == '\r' && msg->data[pos + 1] == '\n')) {
        size_t end = pos;

        /* A field ends at a CRLF not followed by folding whitespace. */
        for (;;) {
            const char *crlf = strstr(msg->data + end, "\r\n");

            if (crlf == NULL)
                return -1;
            end = (size_t)(crlf - msg->data);
            if (msg->data[end + 2] != ' ' && msg->data[end + 2] != '\t')
                break;
            end += 2;
        }
        if (msg->field_count == BENCH_MAX_FIELDS)
            return -1;
        msg->fields[msg->field_count].offset = pos;
        msg->fields[msg->field_count].length = end - pos;
        msg->field_count++;
        pos = end + 2;
    }
    if (pos + 1 >= msg->len)
        return -1;
    msg->body = pos + 2;
    return 0;
}

/* Take the bytes of text as the message, owning them. */
static int
msg_adopt(sp_buf *text, bench_message *msg)
{
    memset(msg, 0, sizeof(*msg));
    msg->data = text->data;
    msg->len = text->len;
    *text = (sp_buf)SP_BUF_INIT;
    if (msg_split(msg) != 0) {
        bench_msg_free(msg);
        return -1;
    }
    return 0;
}

int
bench_msg_make(size_t target, bench_message *msg)
{
    sp_buf text = SP_BUF_INIT;
    unsigned seed = 2463534242u ^ (unsigned)target;
    int rc;

    rc = sp_buf_append_str(&text, msg_header);
    while (rc == SP_OK && text.len + 40 < target)
        rc = msg_line(&text, &seed);

    /* A signature block and the empty lines some clients leave. */
    if (rc == SP_OK)
        rc = sp_buf_append_str(&text, "-- \r\nAlice\r\n\r\n\r\n");
    if (rc != SP_OK) {
        sp_buf_free(&text);
        return -1;
    }
    return msg_adopt(&text, msg);
}

int
bench_msg_prepend(const bench_message *base, const char *prefix,
                  size_t prefix_len, bench_message *msg, char *why)
{
    sp_buf text = SP_BUF_INIT;

    if (sp_buf_append(&text, prefix, prefix_len) != SP_OK ||
        sp_buf_append(&text, base->data, base->len) != SP_OK) {
        sp_buf_free(&text);
        snprintf(why, BENCH_WHY_SIZE, "out of memory");
        return -1;
    }
    if (msg_adopt(&text, msg) != 0) {
        snprintf(why, BENCH_WHY_SIZE,
                 "the signed message does not split into header fields "
                 "(more than %d, or a field without CRLF)",
                 BENCH_MAX_FIELDS);
        return -1;
    }
    return 0;
}

void
bench_msg_free(bench_message *msg)
{
    sp_free(msg->data);
    memset(msg, 0, sizeof(*msg));
}
