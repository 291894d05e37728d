/*
 * domain.c: the syntax of domain names as mail and DNS records use them.
 *
 * Owns sp_mail_domain_valid.  Names are checked as ASCII: internationalized
 * domains must arrive as A-labels (xn--), which is what DNS holds.
 */
#include "mail.h"

bool
sp_mail_domain_valid(const char *text, size_t len, unsigned flags)
{
    size_t label = 0, labels = 1;

    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (c == '.') {
            if (label == 0 || text[i - 1] == '-')
                return false;
            label = 0;
            labels++;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' ||
              (c == '_' && (flags & SP_MAIL_DOMAIN_UNDERSCORE))))
            return false;
        if ((c == '-' && label == 0) || ++label > 63)
            return false;
    }
    if (label == 0 || text[len - 1] == '-')
        return false;
    return labels >= 2 || !(flags & SP_MAIL_DOMAIN_DOTTED);
}
