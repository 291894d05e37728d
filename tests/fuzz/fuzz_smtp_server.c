/*
 * fuzz_smtp_server.c: libFuzzer target for the SMTP submission server
 * engine (sp_smtp_session_* in src/smtp/server.c and the files it uses).
 *
 * The first four octets of the input set up the session: flags (TLS
 * available or active, AUTH allowed or required, normalize_eol, a failing
 * allocator), small limits so that every limit is reached, and the seed
 * of a generator that cuts the rest into chunks of random sizes and picks
 * the owner's verdicts (authentication, sender, recipient, message) and
 * when the TLS handshake "completes".  The rest is what the client sends.
 *
 * Checked, besides crashes and leaks:
 *   - every reply line is "ddd" SP or "-" text CRLF, with a class of 2 to
 *     5, no CR or LF inside, and a multi-line reply keeps one code;
 *   - at most one message per 354 reply for DATA, and per "LAST" in the
 *     input for BDAT; each message has a sender, one to max_recipients
 *     recipients, at most max_message octets, and only CRLF line endings
 *     and no NUL, whatever the policy (bare ones are refused or
 *     normalized);
 *   - the message callback comes only when the engine says WAIT (or the
 *     owner answers inside it, which it sometimes does), and nothing is
 *     answered while it waits or after STARTTLS or CLOSE;
 *   - the timeout is one of the values of the RFC 5321 table.
 * With the failing allocator on, the same holds except the message
 * counts, and every path must still free what it took.
 * A broken invariant aborts, so libFuzzer keeps the input.
 */
#include "fuzz.h"
#include "smtp/smtp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One run: the owner's choices and what it has seen. */
typedef struct owner {
    uint32_t rng;             /* xorshift state for chunks and verdicts */
    sp_smtp_limits limits;    /* the limits the session got */
    sp_smtp_session *session; /* the engine under test */
    const sp_buf *out;        /* replies not yet checked */
    bool failing;             /* allocations fail at some point */
    bool in_message;          /* a message callback came, no verdict yet */
    size_t data_messages;     /* messages ended by CRLF.CRLF */
    size_t bdat_messages;     /* messages ended by BDAT LAST */
    size_t go_aheads;         /* 354 replies seen */
    size_t lasts;             /* "LAST" in the input, any case */
} owner;

static uint32_t
next_random(owner *o)
{
    o->rng ^= o->rng << 13;
    o->rng ^= o->rng >> 17;
    o->rng ^= o->rng << 5;
    return o->rng;
}

/* The 354 replies in out, which has not been checked yet. */
static size_t
count_go_aheads(const sp_buf *out)
{
    size_t count = 0;

    for (size_t i = 0; i + 4 <= out->len; i++)
        count += (i == 0 || out->data[i - 1] == '\n') &&
                 memcmp(out->data + i, "354 ", 4) == 0;
    return count;
}

/* A verdict for the owner's reply: mostly accept, sometimes not. */
static void
pick_reply(owner *o, sp_smtp_reply *reply)
{
    static const int codes[] = {0, 0, 0, 250, 451, 550, 552, 199, 354};
    uint32_t r = next_random(o);
    int code = codes[r % (sizeof(codes) / sizeof(codes[0]))];

    memset(reply, 0, sizeof(*reply));
    if (code == 0)
        return;
    sp_smtp_reply_set(reply, code, (r >> 8) % 3 ? "5.1.1" : NULL,
                      (r >> 10) % 2 ? "verdict\r\n%d" : "%d", code);
}

/* The owner's verdict on a finished message: mostly "queued". */
static void
pick_verdict(owner *o, sp_smtp_reply *reply)
{
    pick_reply(o, reply);
    if (reply->code == 0)
        sp_smtp_reply_set(reply, 250, "2.0.0", "queued");
}

static bool
cb_authenticate(void *arg, const char *user, const char *password,
                char *identity, size_t size)
{
    owner *o = arg;

    CHECK(user != NULL && password != NULL && size == SMTP__NAME_SIZE);
    CHECK(strlen(user) < 13000 && strlen(password) < 13000);
    if (next_random(o) % 2)
        snprintf(identity, size, "id-%s", user);
    return next_random(o) % 3 != 0;
}

/* The envelope the owner sees must always be whole. */
static void
check_envelope(const owner *o, const sp_smtp_envelope *e)
{
    CHECK(e->sender != NULL);
    CHECK(e->recipient_count <= o->limits.max_recipients);
    for (size_t i = 0; i < e->recipient_count; i++)
        CHECK(e->recipients[i] != NULL && e->recipients[i][0] != '\0');
    CHECK(memchr(e->helo, '\0', sizeof(e->helo)) != NULL);
    CHECK(memchr(e->identity, '\0', sizeof(e->identity)) != NULL);
}

static void
cb_mail(void *arg, const sp_smtp_envelope *envelope, sp_smtp_reply *reply)
{
    owner *o = arg;

    check_envelope(o, envelope);
    CHECK(envelope->recipient_count == 0);
    pick_reply(o, reply);
}

static void
cb_rcpt(void *arg, const sp_smtp_envelope *envelope, const char *recipient,
        sp_smtp_reply *reply)
{
    owner *o = arg;

    check_envelope(o, envelope);
    CHECK(recipient[0] != '\0' && strlen(recipient) <= 254);
    pick_reply(o, reply);
}

static void
cb_message(void *arg, const sp_smtp_envelope *envelope, const sp_buf *data)
{
    owner *o = arg;

    check_envelope(o, envelope);
    CHECK(envelope->recipient_count >= 1);
    CHECK(!o->in_message);
    CHECK(data->data != NULL && data->len <= o->limits.max_message);
    o->in_message = true;

    /* Only CRLF, never NUL, under either policy. */
    for (size_t i = 0; i < data->len; i++) {
        char c = data->data[i];

        CHECK(c != '\0');
        if (c == '\r')
            CHECK(i + 1 < data->len && data->data[i + 1] == '\n');
        if (c == '\n')
            CHECK(i > 0 && data->data[i - 1] == '\r');
    }
    CHECK(data->len == 0 ||
          (data->len >= 2 && data->data[data->len - 1] == '\n'));

    /* One message per 354 (counting those not yet checked), one per
     * BDAT LAST. */
    if (o->session->body.dotted)
        CHECK(++o->data_messages <= o->go_aheads + count_go_aheads(o->out));
    else
        CHECK(++o->bdat_messages <= o->lasts);

    /* Sometimes the owner answers at once, inside the callback. */
    if (next_random(o) % 4 == 0) {
        sp_smtp_reply reply;
        sp_buf unused = SP_BUF_INIT;

        o->in_message = false;
        pick_verdict(o, &reply);
        CHECK(sp_smtp_session_done(o->session, &reply, &unused) !=
              SP_SMTP_WAIT);
        CHECK(unused.data == NULL);
    }
}

/*
 * The replies appended since the last check: well-formed lines, and a
 * count of 354s.  A multi-line reply may be cut short when the failing
 * allocator stopped out from growing.
 */
static void
check_replies(owner *o, const sp_buf *out)
{
    const char *p = out->data, *end = out->data + out->len;
    int continued = 0;

    while (p < end) {
        const char *crlf = memchr(p, '\r', (size_t)(end - p));

        CHECK(crlf != NULL && crlf + 1 < end && crlf[1] == '\n');
        CHECK(crlf - p >= 4 && memchr(p, '\n', (size_t)(crlf - p)) == NULL);
        CHECK(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
              p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-'));
        if (continued)
            CHECK(atoi(p) == continued);
        continued = p[3] == '-' ? atoi(p) : 0;
        p = crlf + 2;
    }
    CHECK(continued == 0 || o->failing);
    o->go_aheads += count_go_aheads(out);
}

/* The owner's verdict on the waiting message. */
static sp_smtp_next
answer_message(owner *o, sp_buf *out)
{
    sp_smtp_reply reply;

    CHECK(o->in_message);
    o->in_message = false;
    pick_verdict(o, &reply);
    return sp_smtp_session_done(o->session, &reply, out);
}

/* Count "LAST" in the input, which bounds the BDAT messages. */
static size_t
count_lasts(const uint8_t *data, size_t size)
{
    size_t count = 0;

    for (size_t i = 0; i + 4 <= size; i++)
        count += (data[i] | 0x20) == 'l' && (data[i + 1] | 0x20) == 'a' &&
                 (data[i + 2] | 0x20) == 's' && (data[i + 3] | 0x20) == 't';
    return count;
}

/* Session set-up from the first octets of the input. */
static void
setup(owner *o, const uint8_t *data, sp_smtp_context *context)
{
    uint8_t flags = data[0];

    memset(o, 0, sizeof(*o));
    o->rng = (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    o->rng |= 1;
    o->limits.max_message = 16 + (size_t)(data[1] % 8) * 64;
    o->limits.max_recipients = 1 + data[2] % 4;
    o->limits.max_command = 24 + (size_t)(data[3] % 8) * 64;
    o->limits.max_text_line = 8 + (size_t)(data[2] % 16) * 16;
    o->limits.max_errors = 2 + data[3] % 16;
    o->limits.normalize_eol = flags & 1;
    o->failing = (flags & 0xe0) == 0xe0;

    memset(context, 0, sizeof(*context));
    context->hostname = "mx.example.org";
    context->client_ip = (flags & 2) ? "192.0.2.1" : NULL;
    context->tls_available = flags & 4;
    context->tls_active = (flags & 0x0c) == 0x08;
    context->auth_allowed = flags & 16;
    context->auth_required = flags & 32;
}

/* Feed the client octets in random chunks, acting as the owner. */
static void
converse(owner *o, const uint8_t *data, size_t size, sp_buf *out)
{
    sp_smtp_next next = SP_SMTP_READ, before;
    size_t at = 0;

    while (at < size && next != SP_SMTP_CLOSE) {
        uint32_t r = next_random(o);
        size_t chunk = r % 4 == 0 ? 1 + (r >> 4) % 1024 : 1 + (r >> 4) % 16;

        if (chunk > size - at)
            chunk = size - at;
        if (next == SP_SMTP_WAIT && (r >> 20) % 4 == 0) {
            next = answer_message(o, out);
            check_replies(o, out);
            CHECK((next == SP_SMTP_WAIT) == o->in_message);
            sp_buf_reset(out);
            continue;
        }
        if (next == SP_SMTP_STARTTLS && (r >> 20) % 2 == 0) {
            sp_smtp_session_tls_started(o->session, (r >> 22) % 2);
            next = SP_SMTP_READ;
            continue;
        }

        /* While waiting or before the handshake, nothing is answered. */
        before = next;
        next = sp_smtp_session_input(o->session, data + at, chunk, out);
        at += chunk;
        CHECK(before == SP_SMTP_READ || out->len == 0);
        CHECK(before != SP_SMTP_WAIT || next == SP_SMTP_WAIT);
        check_replies(o, out);
        CHECK((next == SP_SMTP_WAIT) == o->in_message);
        sp_buf_reset(out);
        CHECK(sp_smtp_session_timeout(o->session) % 60 == 0 &&
              sp_smtp_session_timeout(o->session) <= 600);
    }
    if (next == SP_SMTP_WAIT) {
        answer_message(o, out);
        check_replies(o, out);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sp_smtp_callbacks callbacks = {0};
    sp_smtp_context context;
    sp_buf out = SP_BUF_INIT;
    owner o;

    if (size < 4)
        return 0;
    setup(&o, data, &context);
    o.lasts = count_lasts(data + 4, size - 4);
    o.out = &out;
    callbacks.arg = &o;
    callbacks.authenticate = cb_authenticate;
    callbacks.mail = cb_mail;
    callbacks.rcpt = cb_rcpt;
    callbacks.message = cb_message;

    if (o.failing)
        sp_alloc_fail_after(o.rng % 48);
    if (sp_smtp_session_new(&o.limits, &context, &callbacks, &o.session, &out,
                            NULL) == SP_OK) {
        check_replies(&o, &out);
        sp_buf_reset(&out);
        converse(&o, data + 4, size - 4, &out);
        sp_smtp_session_free(o.session);
    } else {
        CHECK(o.failing && o.session == NULL);
    }
    sp_alloc_fail_after(-1);
    sp_buf_free(&out);
    return 0;
}
