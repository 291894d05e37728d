/*
 * classify.c: what a remote server's refusal means for the sender, as
 * one bounce class, by the table in doc/bounces.md.
 *
 * Owns sp_smtp_classify and the class names.  A reply is judged in three
 * steps, the first that decides wins:
 *
 *   1. its enhanced status code (RFC 3463, with the later registrations:
 *      RFC 7505's X.1.10, RFC 7372's X.7.x, RFC 8689's X.7.30), when the
 *      code says something specific;
 *   2. its text, searched without regard to case for the phrases large
 *      receivers use, in the order of the table, for replies whose
 *      enhanced code is missing or generic (X.0.0, X.7.1, X.4.1 ...);
 *   3. its basic code: 4xx is a transient failure, 5xx an undetermined
 *      bounce.
 *
 * Whether to retry is the basic code's: a 4xx is always retried, a 5xx
 * never, whatever the class (a 4.2.2 mailbox full is retried; a 5.2.2 is
 * not).  The class says why, for reports; it never turns a 5xx into a
 * retry or a 4xx into a bounce.
 */
#include "smtp.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    sp_smtp_class class;
    const char *name;
    int number; /* SparkPost's bounce class number, where one fits */
} class_names[] = {
    {SP_SMTP_CLASS_NONE, "none", 0},
    {SP_SMTP_CLASS_UNDETERMINED, "undetermined", 1},
    {SP_SMTP_CLASS_INVALID_RECIPIENT, "invalid_recipient", 10},
    {SP_SMTP_CLASS_DNS_FAILURE, "dns_failure", 21},
    {SP_SMTP_CLASS_MAILBOX_FULL, "mailbox_full", 22},
    {SP_SMTP_CLASS_TOO_LARGE, "too_large", 23},
    {SP_SMTP_CLASS_TIMEOUT, "timeout", 24},
    {SP_SMTP_CLASS_POLICY, "policy", 50},
    {SP_SMTP_CLASS_SPAM_BLOCK, "spam_block", 51},
    {SP_SMTP_CLASS_SPAM_CONTENT, "spam_content", 52},
    {SP_SMTP_CLASS_RELAY_DENIED, "relay_denied", 54},
    {SP_SMTP_CLASS_RATE_LIMITED, "rate_limited", 20},
    {SP_SMTP_CLASS_TLS_FAILURE, "tls_failure", 25},
    {SP_SMTP_CLASS_AUTH_FAILURE, "auth_failure", 25},
    {SP_SMTP_CLASS_TRANSIENT, "transient", 70},
};

const char *
sp_smtp_class_name(sp_smtp_class class)
{
    for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++)
        if (class_names[i].class == class)
            return class_names[i].name;
    return "undetermined";
}

int
sp_smtp_class_number(sp_smtp_class class)
{
    for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++)
        if (class_names[i].class == class)
            return class_names[i].number;
    return 1;
}

/*
 * Step 1: enhanced codes that decide alone, as "subject.detail" (the
 * class digit is the reply's own).  Generic ones (0.0, 7.0, 7.1, 4.1,
 * 5.x) are missing on purpose: their text says more.
 */
static const struct {
    const char *code;
    sp_smtp_class class;
} enhanced_table[] = {
    {"1.1", SP_SMTP_CLASS_INVALID_RECIPIENT},  /* bad mailbox */
    {"1.3", SP_SMTP_CLASS_INVALID_RECIPIENT},  /* bad mailbox syntax */
    {"1.6", SP_SMTP_CLASS_INVALID_RECIPIENT},  /* mailbox has moved */
    {"2.1", SP_SMTP_CLASS_INVALID_RECIPIENT},  /* mailbox disabled */
    {"1.2", SP_SMTP_CLASS_DNS_FAILURE},        /* bad destination system */
    {"1.10", SP_SMTP_CLASS_DNS_FAILURE},       /* null MX, RFC 7505 */
    {"4.3", SP_SMTP_CLASS_DNS_FAILURE},        /* directory server */
    {"4.4", SP_SMTP_CLASS_DNS_FAILURE},        /* unable to route */
    {"2.2", SP_SMTP_CLASS_MAILBOX_FULL},       /* mailbox full */
    {"2.3", SP_SMTP_CLASS_TOO_LARGE},          /* message over the limit */
    {"3.4", SP_SMTP_CLASS_TOO_LARGE},          /* too big for the system */
    {"4.2", SP_SMTP_CLASS_TIMEOUT},            /* bad connection */
    {"4.7", SP_SMTP_CLASS_TIMEOUT},            /* delivery time expired */
    {"7.10", SP_SMTP_CLASS_TLS_FAILURE},       /* encryption needed */
    {"7.11", SP_SMTP_CLASS_TLS_FAILURE},       /* encryption required */
    {"7.30", SP_SMTP_CLASS_TLS_FAILURE},       /* REQUIRETLS, RFC 8689 */
    {"7.8", SP_SMTP_CLASS_AUTH_FAILURE},       /* bad credentials */
    {"7.9", SP_SMTP_CLASS_AUTH_FAILURE},       /* mechanism too weak */
    {"7.25", SP_SMTP_CLASS_POLICY},            /* reverse DNS failed */
    {"7.26", SP_SMTP_CLASS_POLICY},            /* authentication failed */
    {"7.27", SP_SMTP_CLASS_POLICY},            /* SPF failed */
    {"7.28", SP_SMTP_CLASS_RATE_LIMITED},      /* mail flood */
    {"7.15", SP_SMTP_CLASS_POLICY},            /* priority too low */
    {"7.16", SP_SMTP_CLASS_TOO_LARGE},         /* too big for priority */
    {"7.17", SP_SMTP_CLASS_INVALID_RECIPIENT}, /* mailbox owner changed */
    {"7.18", SP_SMTP_CLASS_INVALID_RECIPIENT}, /* domain owner changed */
    {"7.19", SP_SMTP_CLASS_POLICY},            /* RRVS cannot be done */
};

/*
 * Step 2: phrases, in order; the first found decides.  Specific before
 * general: "spamhaus" before "spam", "quota" before "rate".
 */
static const struct {
    const char *phrase;
    sp_smtp_class class;
} phrase_table[] = {
    /* Greylisting names itself in replies that say other things too
     * ("Recipient address rejected: Greylisted"); it is only a delay. */
    {"greylist", SP_SMTP_CLASS_TRANSIENT},
    {"graylist", SP_SMTP_CLASS_TRANSIENT},
    {"mailbox full", SP_SMTP_CLASS_MAILBOX_FULL},
    {"mailbox is full", SP_SMTP_CLASS_MAILBOX_FULL},
    {"over quota", SP_SMTP_CLASS_MAILBOX_FULL},
    {"quota exceeded", SP_SMTP_CLASS_MAILBOX_FULL},
    {"exceeded storage", SP_SMTP_CLASS_MAILBOX_FULL},
    {"insufficient storage", SP_SMTP_CLASS_MAILBOX_FULL},
    {"user unknown", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"unknown user", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"no such user", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"does not exist", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"doesn't exist", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"unknown recipient", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"invalid recipient", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"recipient not found", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"no mailbox", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"mailbox unavailable", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"mailbox not found", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"address rejected", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"account disabled", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {"relay access denied", SP_SMTP_CLASS_RELAY_DENIED},
    {"relaying denied", SP_SMTP_CLASS_RELAY_DENIED},
    {"not permitted to relay", SP_SMTP_CLASS_RELAY_DENIED},
    {"unable to relay", SP_SMTP_CLASS_RELAY_DENIED},
    {"too large", SP_SMTP_CLASS_TOO_LARGE},
    {"size exceeds", SP_SMTP_CLASS_TOO_LARGE},
    {"exceeds the size", SP_SMTP_CLASS_TOO_LARGE},
    {"spamhaus", SP_SMTP_CLASS_SPAM_BLOCK},
    {"blocklist", SP_SMTP_CLASS_SPAM_BLOCK},
    {"blacklist", SP_SMTP_CLASS_SPAM_BLOCK},
    {"block list", SP_SMTP_CLASS_SPAM_BLOCK},
    {"listed", SP_SMTP_CLASS_SPAM_BLOCK},
    {"reputation", SP_SMTP_CLASS_SPAM_BLOCK},
    {"blocked", SP_SMTP_CLASS_SPAM_BLOCK},
    {"content", SP_SMTP_CLASS_SPAM_CONTENT},
    {"spam", SP_SMTP_CLASS_SPAM_CONTENT},
    {"virus", SP_SMTP_CLASS_SPAM_CONTENT},
    {"rate limit", SP_SMTP_CLASS_RATE_LIMITED},
    {"rate-limit", SP_SMTP_CLASS_RATE_LIMITED},
    {"too many", SP_SMTP_CLASS_RATE_LIMITED},
    {"throttl", SP_SMTP_CLASS_RATE_LIMITED},
    {"unusual rate", SP_SMTP_CLASS_RATE_LIMITED},
    {"try again later", SP_SMTP_CLASS_RATE_LIMITED},
    {"temporarily deferred", SP_SMTP_CLASS_RATE_LIMITED},
    {"unexpected volume", SP_SMTP_CLASS_RATE_LIMITED},
    {"starttls", SP_SMTP_CLASS_TLS_FAILURE},
    {"tls", SP_SMTP_CLASS_TLS_FAILURE},
    {"encryption", SP_SMTP_CLASS_TLS_FAILURE},
    {"dmarc", SP_SMTP_CLASS_POLICY},
    {"dkim", SP_SMTP_CLASS_POLICY},
    {"spf", SP_SMTP_CLASS_POLICY},
    {"ptr", SP_SMTP_CLASS_POLICY},
    {"reverse dns", SP_SMTP_CLASS_POLICY},
    {"policy", SP_SMTP_CLASS_POLICY},
    {"not authorized", SP_SMTP_CLASS_POLICY},
    {"unauthenticated", SP_SMTP_CLASS_POLICY},
    {"domain not found", SP_SMTP_CLASS_DNS_FAILURE},
    {"host not found", SP_SMTP_CLASS_DNS_FAILURE},
    {"timed out", SP_SMTP_CLASS_TIMEOUT},
    {"timeout", SP_SMTP_CLASS_TIMEOUT},
};

/* Whether text holds phrase, without regard to case. */
static bool
classify_has(const char *text, const char *phrase)
{
    size_t len = strlen(phrase);

    for (; *text != '\0'; text++)
        if (strncasecmp(text, phrase, len) == 0)
            return true;
    return false;
}

/*
 * The "subject.detail" of an enhanced code "c.s.d" whose class digit is
 * class_digit, in out; false when enhanced is not one such code.
 */
static bool
classify_subject(const char *enhanced, int class_digit, char *out, size_t size)
{
    int klass, subject, detail, used = 0;

    if (enhanced == NULL ||
        sscanf(enhanced, "%1d.%3d.%3d%n", &klass, &subject, &detail, &used) !=
            3 ||
        enhanced[used] != '\0' || klass != class_digit)
        return false;
    snprintf(out, size, "%d.%d", subject, detail);
    return true;
}

sp_smtp_class
sp_smtp_classify(int code, const char *enhanced, const char *text)
{
    char subject[16];

    if (code >= 200 && code < 400)
        return SP_SMTP_CLASS_NONE;

    /* 1. An enhanced code that says something specific. */
    if (classify_subject(enhanced, code / 100, subject, sizeof(subject)))
        for (size_t i = 0;
             i < sizeof(enhanced_table) / sizeof(enhanced_table[0]); i++)
            if (strcmp(subject, enhanced_table[i].code) == 0)
                return enhanced_table[i].class;

    /* 2. The phrases receivers write. */
    for (size_t i = 0;
         text != NULL && i < sizeof(phrase_table) / sizeof(phrase_table[0]);
         i++)
        if (classify_has(text, phrase_table[i].phrase))
            return phrase_table[i].class;

    /* 3. The basic code. */
    return code >= 400 && code < 500 ? SP_SMTP_CLASS_TRANSIENT
                                     : SP_SMTP_CLASS_UNDETERMINED;
}
