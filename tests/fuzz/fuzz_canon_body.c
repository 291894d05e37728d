/*
 * fuzz_canon_body.c: libFuzzer target for the streaming body
 * canonicalizer (dkim__canon_body_* in src/dkim/canon.c, RFC 6376 3.4.3
 * and 3.4.4), as a differential oracle.
 *
 * Input layout: four control bytes, then the body.  The control bytes
 * choose where the body is cut and the l= limit of a second digest.  Each
 * mode canonicalizes the body whole, cut once, cut into pieces of varying
 * size (empty pieces included) and cut into single bytes, in strict and
 * in lenient mode.  Every run must give the same SHA-256 digests, the same
 * 'produced' count and, in strict mode, the same 'failed' flag and
 * 'failed_at' offset; lenient runs never fail.  Two plain references keep
 * all runs honest together: the canonical body computed line by line over
 * the whole input (its digest, its length, its l= prefix) and the offset
 * of the first bare CR or LF, which strict mode must report.
 *
 * Any difference aborts, so libFuzzer keeps the input as a crash.
 */
#include "dkim/dkim_int.h"
#include "fuzz.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTROL_BYTES 4

/* How a run cuts the body into the chunks it feeds. */
enum cut {
    CUT_NONE,   /* one feed */
    CUT_ONCE,   /* two feeds, at a point the control bytes choose */
    CUT_VARIED, /* pseudo-random pieces, empty ones included */
    CUT_BYTES,  /* one byte per feed */
};

/* What one run produced, compared across runs. */
struct outcome {
    unsigned char full[EVP_MAX_MD_SIZE]; /* digest of the whole output */
    unsigned char head[EVP_MAX_MD_SIZE]; /* digest cut at the l= limit */
    uint64_t produced;                   /* canonical octets */
    bool failed;                         /* strict: bare CR or LF seen */
    uint64_t failed_at;                  /* input offset of the first */
};

/* Choices the control bytes make for every run of one input. */
struct plan {
    size_t once;      /* CUT_ONCE: length of the first chunk */
    uint32_t seed;    /* CUT_VARIED: state of the piece generator */
    size_t max_piece; /* CUT_VARIED: longest piece */
    uint64_t limit;   /* l= of the second digest */
};

/* The plain reference of one mode, over the whole body. */
struct reference {
    char *text; /* the canonical body, owned */
    size_t len;
};

static void
hash_start(dkim__body_hash *hash, uint64_t limit)
{
    memset(hash, 0, sizeof(*hash));
    hash->md = EVP_MD_CTX_new();
    CHECK(hash->md != NULL);
    CHECK(EVP_DigestInit_ex(hash->md, EVP_sha256(), NULL) == 1);
    hash->type = EVP_sha256();
    hash->limit = limit;
}

static void
hash_end(dkim__body_hash *hash, unsigned char *digest)
{
    unsigned len = 0;

    CHECK(EVP_DigestFinal_ex(hash->md, digest, &len) == 1 && len == 32);
    EVP_MD_CTX_free(hash->md);
    hash->md = NULL;
}

/* Next piece length for CUT_VARIED, from a small LCG. */
static size_t
next_piece(uint32_t *state, size_t max_piece)
{
    *state = *state * 1103515245u + 12345u;
    return (size_t)(*state >> 16) % (max_piece + 1);
}

static void
feed(dkim__canon_body *canon, const char *body, size_t len)
{
    CHECK(dkim__canon_body_feed(canon, body, len) == SP_OK);
}

/* Feed body to canon the way cut says. */
static void
feed_cut(dkim__canon_body *canon, const char *body, size_t len, enum cut cut,
         const struct plan *plan)
{
    uint32_t state = plan->seed;
    size_t pos = 0;

    switch (cut) {
    case CUT_NONE:
        feed(canon, body, len);
        break;
    case CUT_ONCE:
        feed(canon, body, plan->once);
        feed(canon, body + plan->once, len - plan->once);
        break;
    case CUT_VARIED:
        while (pos < len) {
            size_t piece = next_piece(&state, plan->max_piece);

            piece = piece < len - pos ? piece : len - pos;
            feed(canon, body + pos, piece);
            pos += piece;
        }
        break;
    case CUT_BYTES:
        for (; pos < len; pos++)
            feed(canon, body + pos, 1);
        break;
    }
}

/* One canonicalization of body, with a full and an l= digest. */
static void
run(sp_dkim_canon mode, bool strict, const char *body, size_t len, enum cut cut,
    const struct plan *plan, struct outcome *out)
{
    dkim__canon_body canon;
    dkim__body_hash full, head;

    hash_start(&full, UINT64_MAX);
    hash_start(&head, plan->limit);
    dkim__canon_body_init(&canon, mode, strict);
    canon.hashes[0] = &full;
    canon.hashes[1] = &head;
    canon.hash_count = 2;

    feed_cut(&canon, body, len, cut, plan);
    CHECK(canon.consumed == len);
    CHECK(dkim__canon_body_finish(&canon) == SP_OK);
    CHECK(canon.staged == 0);

    /* Each digest took exactly its share of the output. */
    CHECK(full.hashed == canon.produced);
    CHECK(head.hashed ==
          (plan->limit < canon.produced ? plan->limit : canon.produced));
    CHECK(strict || !canon.failed);

    memset(out, 0, sizeof(*out));
    hash_end(&full, out->full);
    hash_end(&head, out->head);
    out->produced = canon.produced;
    out->failed = canon.failed;
    out->failed_at = canon.failed ? canon.failed_at : 0;
}

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Append one relaxed line: WSP runs squeezed to SP, trailing WSP gone. */
static size_t
relaxed_line(const char *line, size_t len, char *out)
{
    size_t n = 0;
    bool space = false;

    for (size_t i = 0; i < len; i++) {
        if (is_wsp(line[i])) {
            space = true;
            continue;
        }
        if (space)
            out[n++] = ' ';
        space = false;
        out[n++] = line[i];
    }
    return n;
}

/*
 * The canonical body the plain way: split into lines at CRLF only, treat
 * each line, keep output up to the last line with content (trailing empty
 * lines go), and give the simple empty body its CRLF.
 */
static struct reference
reference_body(sp_dkim_canon mode, const char *body, size_t len)
{
    struct reference ref = {malloc(len + 2), 0};
    size_t pos = 0, kept = 0;

    CHECK(ref.text != NULL);
    while (pos < len) {
        size_t start = pos, line_len;

        while (pos < len &&
               !(body[pos] == '\r' && pos + 1 < len && body[pos + 1] == '\n'))
            pos++;
        line_len = pos - start;
        pos = pos < len ? pos + 2 : pos;

        if (mode == SP_DKIM_RELAXED) {
            line_len = relaxed_line(body + start, line_len, ref.text + ref.len);
        } else {
            memcpy(ref.text + ref.len, body + start, line_len);
        }
        ref.len += line_len;
        memcpy(ref.text + ref.len, "\r\n", 2);
        ref.len += 2;
        if (line_len > 0)
            kept = ref.len;
    }
    ref.len = kept;
    if (mode == SP_DKIM_SIMPLE && ref.len == 0) {
        memcpy(ref.text, "\r\n", 2);
        ref.len = 2;
    }
    return ref;
}

/* Offset of the first CR not before LF or LF not after CR, or -1. */
static int64_t
first_bare(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\r' && (i + 1 == len || body[i + 1] != '\n'))
            return (int64_t)i;
        if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
            return (int64_t)i;
    }
    return -1;
}

static void
same_outcome(const struct outcome *a, const struct outcome *b)
{
    CHECK(memcmp(a->full, b->full, 32) == 0);
    CHECK(memcmp(a->head, b->head, 32) == 0);
    CHECK(a->produced == b->produced);
    CHECK(a->failed == b->failed);
    CHECK(a->failed_at == b->failed_at);
}

/* Every run of one mode against the reference and against each other. */
static void
check_mode(sp_dkim_canon mode, const char *body, size_t len,
           const struct plan *plan)
{
    static const enum cut cuts[] = {CUT_NONE, CUT_ONCE, CUT_VARIED, CUT_BYTES};
    struct reference ref = reference_body(mode, body, len);
    int64_t bare = first_bare(body, len);
    size_t head_len = plan->limit < ref.len ? (size_t)plan->limit : ref.len;
    struct outcome want = {0}, got;

    CHECK(EVP_Digest(ref.text, ref.len, want.full, NULL, EVP_sha256(), NULL) ==
          1);
    CHECK(EVP_Digest(ref.text, head_len, want.head, NULL, EVP_sha256(), NULL) ==
          1);
    want.produced = ref.len;
    free(ref.text);

    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        /* Lenient: the same output, and never a failure. */
        run(mode, false, body, len, cuts[i], plan, &got);
        same_outcome(&want, &got);

        /* Strict: the same output, failing at the first bare CR or LF. */
        run(mode, true, body, len, cuts[i], plan, &got);
        want.failed = bare >= 0;
        want.failed_at = bare >= 0 ? (uint64_t)bare : 0;
        same_outcome(&want, &got);
        want.failed = false;
        want.failed_at = 0;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data + CONTROL_BYTES;
    struct plan plan;
    size_t len;

    if (size < CONTROL_BYTES)
        return 0;
    len = size - CONTROL_BYTES;
    plan.once = ((size_t)data[0] << 8 | data[1]) % (len + 1);
    plan.seed = (uint32_t)data[0] << 8 | data[1];
    plan.max_piece = 1 + data[1] % 16;
    plan.limit = (uint64_t)data[2] << 8 | data[3];

    check_mode(SP_DKIM_SIMPLE, body, len, &plan);
    check_mode(SP_DKIM_RELAXED, body, len, &plan);
    return 0;
}
