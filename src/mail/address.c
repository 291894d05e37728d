/*
 * address.c: the domain of the author address in a From field, which is
 * where sealpost's DKIM signatures must align for DMARC.
 *
 * Owns sp_mail_from_domain.  The field value is read as RFC 5322 3.4
 * writes a mailbox: a display name and an angle address, or a bare
 * addr-spec, with comments and quoted strings anywhere; folding is just
 * whitespace here.  A list of mailboxes is refused: RFC 5322 lets From
 * name several authors (with a Sender field), but DMARC cannot align a
 * message to more than one domain, receivers refuse such mail, and an
 * author list would let one domain's sender hide another domain behind
 * the first.  Obsolete forms (routes inside the angle brackets) end at
 * their last '@', which is the address's own.
 */
#include "mail.h"

#include <ctype.h>
#include <string.h>

/*
 * Copy the mailbox of value with comments and quoted strings blanked and
 * folding turned into spaces, so that '<', '>' and '@' left in out are
 * syntax.  Quoted strings keep their place as 'q's: a quoted local part
 * still sits before its '@'.  False when a quote or comment is not
 * closed, or value is a list (a ',' outside them and outside '<>').
 */
static bool
address_skeleton(const char *value, size_t len, char *out, size_t *out_len)
{
    size_t used = 0;
    int depth = 0;
    bool quoted = false, angle = false;

    for (size_t i = 0; i < len; i++) {
        char c = value[i];

        if ((quoted || depth > 0) && c == '\\' && i + 1 < len) {
            out[used++] = quoted ? 'q' : ' ';
            out[used++] = quoted ? 'q' : ' ';
            i++;
            continue;
        }
        if (quoted) {
            quoted = c != '"';
            out[used++] = 'q';
        } else if (depth > 0) {
            depth += c == '(' ? 1 : c == ')' ? -1 : 0;
            out[used++] = ' ';
        } else if (c == '"' || c == '(') {
            quoted = c == '"';
            depth = c == '(';
            out[used++] = quoted ? 'q' : ' ';
        } else if (c == ',' && !angle) {
            return false; /* a list of mailboxes */
        } else {
            angle = (angle || c == '<') && c != '>';
            out[used++] = (c == '\r' || c == '\n' || c == '\t') ? ' ' : c;
        }
    }
    *out_len = used;
    return !quoted && depth == 0;
}

int
sp_mail_from_domain(const char *value, size_t len, char *out, size_t size)
{
    char skeleton[1024];
    size_t used, start, end;
    const char *open, *at;

    if (size == 0 || len >= sizeof(skeleton) / 2)
        return SP_EINVAL;
    out[0] = '\0';
    if (!address_skeleton(value, len, skeleton, &used))
        return SP_EINVAL;
    skeleton[used] = '\0';

    /* The angle address, when there is one; else the whole mailbox. */
    start = 0;
    end = used;
    open = strchr(skeleton, '<');
    if (open != NULL) {
        const char *close = strchr(open, '>');

        if (close == NULL)
            return SP_EINVAL;
        start = (size_t)(open - skeleton) + 1;
        end = (size_t)(close - skeleton);
    }

    /* The domain: after the last '@', without spaces around it. */
    skeleton[end] = '\0';
    at = strrchr(skeleton + start, '@');
    if (at == NULL)
        return SP_EINVAL;
    start = (size_t)(at - skeleton) + 1;
    while (start < end && skeleton[start] == ' ')
        start++;
    while (end > start && skeleton[end - 1] == ' ')
        end--;
    if (end - start >= size ||
        !sp_mail_domain_valid(skeleton + start, end - start, 0))
        return SP_EINVAL;
    for (size_t i = start; i < end; i++)
        out[i - start] = (char)tolower((unsigned char)skeleton[i]);
    out[end - start] = '\0';
    return SP_OK;
}
