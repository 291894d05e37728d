/*
 * fuzz_verify.c: libFuzzer target for the whole verifier: the input is a
 * message, fed to sp_dkim_verify_* (src/dkim/verify.c, judge.c and the
 * files they use) as a receiving MTA would, then finished, reported with
 * sp_dkim_verify_auth_results and freed.
 *
 * Key records come from a fixed table: the records of the dns.txt files
 * under tests/data (so the seed messages verify for real), a few more
 * that reach the other answers (SERVFAIL, timeout, no record, a revoked
 * key, t=s, g=, h=sha1, several records at one name, control bytes), and
 * NXDOMAIN for every other name.
 *
 * Each message is verified twice, once in one piece and once in chunks of
 * a size derived from the input, with options (legacy, the signature
 * limit) derived the same way.  Checked, besides crashes and leaks:
 *   - both runs give the same results, counts and Authentication-Results;
 *   - the lookup is called only from finish, once per name;
 *   - every result is well formed: a known status and reason, a detail,
 *     NUL-terminated, printable texts (peer bytes escaped), "pass" only
 *     with reason "ok", a valid signature behind every "pass" and
 *     "policy", signatures past the limit marked not checked, and no
 *     "pass" that RFC 8301 or the l= and From rules forbid;
 *   - Authentication-Results is one field: printable ASCII, folded only
 *     with CRLF TAB, ending in CRLF;
 *   - feeding or finishing a finished verifier is refused.
 * The chunked run takes its keys through a small key cache made for the
 * input, so hits and evictions must not change a result either.  A third
 * run, through the same cache, makes the library's allocations fail after
 * a number of them derived from the input (sp_alloc_fail_after): it must
 * end in SP_ENOMEM or in results as well formed as above, leak nothing
 * and free cleanly.
 * A broken invariant aborts, so libFuzzer keeps the input.
 */
#include "dkim/dkim_int.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Seconds since the epoch: after the seeds' t=, before their x=. */
#define NOW 1700003600

#define AUTHSERV_ID "mx.example.net"

/* One name of the table and its answer. */
struct dns_entry {
    const char *name;
    sp_dkim_dns status;
    const char *record[SP_DKIM_MAX_TXT]; /* the first count, then NULL */
};

static const struct dns_entry dns_table[] = {
    {"ed1._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR"
      "o="}},
    {"rsa1._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC"
      "3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijS"
      "sq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitd"
      "Y9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"}},
    {"rsa1pkcs1._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; p=MIGJAoGBAPAhE/9QLdIGwSYapn1klbf8OQygZ4udCDV9af"
      "v/Ni0jE3ZKcUKPE4Iob2/dviNh9xM2HmKNKyrrfW4Ei0truh36/9G10LZTMnWVZP"
      "3jupH5FxpzaBu2j80yonR/N9WMfg64qGK11j21/qZzAaNo0FxZOggyY9I8N1A81R"
      "hyRxDZAgMBAAE="}},
    {"ed1spki._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcv"
      "PapiMlrwIaaPcHURo="}},
    {"brisbane._domainkey.football.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR"
      "o="}},
    {"test._domainkey.football.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoB"
      "TzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W"
      "91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9Pzox"
      "ZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"}},
    {"sed._domainkey.test.ex",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; p=sPs07Vu29FpHT/80UXUcYHFOHifD4o2ZlP2+XUh9g6"
      "E="}},
    {"20120113._domainkey.gmail.com",
     SP_DKIM_DNS_OK,
     {"k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1Kd87/UeJje"
      "npabgbFwh+eBCsSTrqmwIYYvywlbhbqoo2DymndFkbjOVIPIldNs/m40KF+yzMn1"
      "skyoxcTUGCQs8g3FgD2Ap3ZB5DekAo5wMmk4wimDO+U8QzI3SD07y2+07wlNWwIt"
      "8svnxgdxGkVbbhzY8i+RQ9DpSVpPbF7ykQxtKXkv/ahW3KjViiAH+ghvvIhkx4xY"
      "SIc9oSwVmAl5OctMEeWUwg8Istjqz8BZeTWbf41fbNhte7Y+YqZOwq1Sd0DbvYAD"
      "9NOZK9vlfuac0598HY+vtSBczUiKERHv1yRbcaQtZFh5wtiRrN04BLUTD21MycBX"
      "5jYchHjPY/wIDAQAB"}},
    {"expirationtest._domainkey.example.org",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC848PMQX"
      "uR6V4Tbj3Wb2TN/4Qon0v8ch1WoS0v5wC4/2FXHaH5g7xNwtIwgfE7kxkSqv1LnS"
      "4tUrpHjWcXJhtCkT9wkI0FOVFzKHRc7Gy7vYSFMUCnojiVVQjxY6bnyPLIIP2l/D"
      "++0awe+XCWQsjFZ+CHW5Lo/lQ/bdrUcYEU/QIDAQAB"}},
    {"selector1._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDhMlYqwtUA9UrrDcN"
      "p/IMtdFnytggDl5oIAzJ55oWzPILZE7eX4hLdP6WperHm1WJ9M32XsiKrr4TDbWf"
      "p4WjGWBnXf8QMi+WlDuEFOvwVRC/uWy+sAiEf3VcBR5KjGvDovPnGSnW8uDntSOY"
      "4HlkTJF/BTWnk29zKmlGyGnw9mQIDAQAB"}},
    {"test1._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; t=y; s=email; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqX"
      "VSEmfcIsOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh"
      "/R1WzN4MO/kI/7XsCAwEAAQ=="}},
    {"test2._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; s=email:web:fine; x1 = extra ; t = y:n:extra; h=md5:sha"
      "1; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsOzw7oRuCCOws"
      "mtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO/kI/7XsCAwE"
      "AAQ== ;"}},
    {"test3._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; g=jl*g; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfc"
      "IsOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN"
      "4MO/kI/7XsCAwEAAQ=="}},
    {"test4._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; g=; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsOz"
      "w7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO/"
      "kI/7XsCAwEAAQ=="}},
    {"test5._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; t=s; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsO"
      "zw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO"
      "/kI/7XsCAwEAAQ=="}},
    {"test6._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; t=s; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDbk"
      "mfdB0MGEQbLivEOYOyH4A0vkM3tZB+vsQnzmIpKJoDxPUjNS9ZRtjycm+EO1jP1y"
      "Let3NNSYLbRp1qwi9q1qXbDVfqI0d6LI67LQyrs/AKiw03++aNhqHMJNrSuKQdR+"
      "LD9QJxinWVB1KI8wcC2k5IKZ1bJQ1A7bg7b2+uTlwIDAQAB"}},
    {"testbad1._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM3; t=y; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsO"
      "zw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO"
      "/kI/7XsCAwEAAQ=="}},
    {"testbad2._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"k=rsa; t; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsOzw7o"
      "RuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO/kI/"
      "7XsCAwEAAQ=="}},
    {"testbad3._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"k=foobar; t=y; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIs"
      "Ozw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4M"
      "O/kI/7XsCAwEAAQ=="}},
    {"testbad4._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; s=chat; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfc"
      "IsOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN"
      "4MO/kI/7XsCAwEAAQ=="}},
    {"testbad7._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; h=bad; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcI"
      "sOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4"
      "MO/kI/7XsCAwEAAQ=="}},
    {"testbad8._domainkey.messiah.edu",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; g=*poe; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfc"
      "IsOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN"
      "4MO/kI/7XsCAwEAAQ=="}},
    {"testrevoked._domainkey.messiah.edu", SP_DKIM_DNS_OK, {"k=rsa; t=y; p="}},
    {"s1024._domainkey.yahoo.com",
     SP_DKIM_DNS_OK,
     {"k=rsa; t=y; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDrEee0Ri4Juz"
      "+QfiWYui/E9UGSXau/2P8LjnTD8V4Unn+2FAZVGE3kL23bzeoULYv4PeleB3gfmJ"
      "iDJOKU3Ns5L4KJAUUHjFwDebt0NP+sBK0VKeTATL2Yr/S3bT/xhy+1xtj4RkdV7f"
      "VxTn56Lb4udUnwuxK4V5b5PdOKj/+XcwIDAQAB; n=A 1024 bit key;"}},
    {"beta._domainkey.gmail.com",
     SP_DKIM_DNS_OK,
     {"t=y; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC69TURXN3oNf"
      "z+G/m3g5rt4P6nsKmVgU1D6cw2X6BnxKJNlQKm10f8tMx6P6bN7juTR1BeD8ubaG"
      "qtzm2rWK4LiMJqhoQcwQziGbK1zp/MkdXZEWMCflLY6oUITrivK7JNOLXtZbdxJG"
      "2y/RAHGswKKyVhSP9niRsZF/IBr5p8uQIDAQAB"}},
    {"jakla2._domainkey.ijs.si",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCvWSehCSmnxlhzM"
      "+P1Ai+7CgzeAcvkL3RdoHFq8JwtpKN3iLnp/s1yRwE/heAi4QQXxDRdlB0bJm5Nx"
      "ZOsckzK7tJM8EdkebMjyXeKOzBKoJaOIlsx4WC2qHqORB0RLqm4lqJFYZJpUypEp"
      "skeAGy7WBG7a+1hOlir9+Tf9xtOkwIDAQAB"}},
    {"shan._domainkey.vmt2.cis.att.net",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; h=sha1:sha256:sha512;n=send%20comments%20to%20to"
      "ny%40att%2Ecom; g=*; s=*;p=MHwwDQYJKoZIhvcNAQEBBQADawAwaAJhALSQ1"
      "y/+tHT1d9XvpiVap4Z+GFaydEmDgfC48m3wLLmDqfKBADWYIqrCnfKPvZPzGYzo+"
      "aJMEiAOTtiNxPWYToiTfJlTpn2YyEEz6OUIXw0uc+NfEQviN4QQr0jVX9yRjwIDA"
      "QAB"}},
    {"foo._domainkey.vmt2.cis.att.net",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; n=send%20comments%20to%20tony%40att%2Ecom; g=*; "
      "s=*;p=MHwwDQYJKoZIhvcNAQEBBQADawAwaAJhALSQ1y/+tHT1d9XvpiVap4Z+GF"
      "aydEmDgfC48m3wLLmDqfKBADWYIqrCnfKPvZPzGYzo+aJMEiAOTtiNxPWYToiTfJ"
      "lTpn2YyEEz6OUIXw0uc+NfEQviN4QQr0jVX9yRjwIDAQAB"}},
    {"nonexistent._domainkey.messiah.edu", SP_DKIM_DNS_NXDOMAIN, {NULL}},
    {"test3._domainkey.blackhole.messiah.edu", SP_DKIM_DNS_TIMEOUT, {NULL}},
    {"test3._domainkey.blackhole2.messiah.edu", SP_DKIM_DNS_SERVFAIL, {NULL}},
    {"2023-05-ed25519._domainkey.wander.science",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; p=pP+YUyRjAvKha4Oc49KAY703oLUS1NLMEuGD3IHMKw"
      "w="}},
    {"2023-05-ed25519-empty._domainkey.wander.science", SP_DKIM_DNS_OK, {""}},
    {"invalid._domainkey.wander.science",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA3SUqa9UbfciWkk7tlcJ9P1VD5p"
      "XAasg0JUn/OgjVbKE="}},
    {"servfail._domainkey.example.com", SP_DKIM_DNS_SERVFAIL, {NULL}},
    {"timeout._domainkey.example.com", SP_DKIM_DNS_TIMEOUT, {NULL}},
    {"empty._domainkey.example.com", SP_DKIM_DNS_OK, {NULL}},
    {"revoked._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; p="}},
    {"strict._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; t=s:y; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwI"
      "aaPcHURo="}},
    {"gran._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=ed25519; g=a*e; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwI"
      "aaPcHURo="}},
    {"sha1only._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa; h=sha1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ"
      "DwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYf"
      "cTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH"
      "4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"}},
    {"multi._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM2; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
      "v=DKIM1; k=dsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
      "v=DKIM1; s=web; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
      "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR"
      "o="}},
    /* Control bytes from DNS, which must reach no detail unescaped. */
    {"hostile._domainkey.example.com",
     SP_DKIM_DNS_OK,
     {"v=DKIM1; k=rsa\x1b[2J; p=AAAA",
      "v=DKIM1; k=ed25519; g=\x1b[2J\x07\r\n; "
      "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}},
};

/* Lookups may be asked at most once per checked signature. */
#define MAX_LOOKUPS DKIM__MAX_BODY_HASHES

/* What the lookup callback saw during one verification. */
struct lookups {
    bool in_finish;               /* sp_dkim_verify_finish runs */
    size_t count;                 /* names asked so far */
    char asked[MAX_LOOKUPS][520]; /* those names */
};

/* One verification of the message and what came of it. */
struct run {
    struct lookups lookups;
    sp_dkim_verify *verify; /* owned; NULL if making it failed */
    int rc;                 /* first failure of new, feed or finish, or SP_OK */
    int auth_rc;            /* what sp_dkim_verify_auth_results returned */
    sp_buf auth;            /* Authentication-Results, once finished */
};

static void
lookup(void *arg, const char *name, sp_dkim_txt *answer)
{
    struct lookups *seen = arg;
    size_t name_len = strnlen(name, sizeof(seen->asked[0]));

    /* dkim.h: called only from finish, once per distinct name. */
    CHECK(seen->in_finish);
    CHECK(name_len < sizeof(seen->asked[0]));
    for (size_t i = 0; i < seen->count; i++)
        CHECK(strcmp(seen->asked[i], name) != 0);
    CHECK(seen->count < MAX_LOOKUPS);
    memcpy(seen->asked[seen->count++], name, name_len + 1);

    /* DNS names compare without case. */
    answer->status = SP_DKIM_DNS_NXDOMAIN;
    answer->count = 0;
    for (size_t i = 0; i < sizeof(dns_table) / sizeof(dns_table[0]); i++) {
        const struct dns_entry *entry = &dns_table[i];

        if (strcasecmp(entry->name, name) != 0)
            continue;
        answer->status = entry->status;
        for (size_t k = 0; k < SP_DKIM_MAX_TXT && entry->record[k]; k++) {
            answer->record[k] = entry->record[k];
            answer->length[k] = strlen(entry->record[k]);
            answer->count = k + 1;
        }
        break;
    }
}

/*
 * Verify msg fed in chunks of chunk bytes (0: all at once), with every
 * library allocation after the first fail_after failing (-1: none fails).
 */
static void
verify_run(const char *msg, size_t len, size_t chunk, long fail_after,
           const sp_dkim_verify_opts *base, struct run *run)
{
    sp_dkim_verify_opts opts = *base;
    size_t pos = 0;
    sp_error err;

    memset(run, 0, sizeof(*run));
    opts.lookup_arg = &run->lookups;
    sp_alloc_fail_after(fail_after);
    run->rc = sp_dkim_verify_new(&opts, &run->verify, &err);

    chunk = chunk == 0 ? len : chunk;
    while (run->rc == SP_OK) {
        size_t take = len - pos < chunk ? len - pos : chunk;

        run->rc = sp_dkim_verify_feed(run->verify, msg + pos, take, &err);
        pos += take;
        if (pos == len)
            break;
    }
    if (run->rc == SP_OK) {
        run->lookups.in_finish = true;
        run->rc = sp_dkim_verify_finish(run->verify, &err);
        run->lookups.in_finish = false;
    }
    if (run->rc == SP_OK)
        run->auth_rc =
            sp_dkim_verify_auth_results(run->verify, AUTHSERV_ID, &run->auth);
    sp_alloc_fail_after(-1);
    CHECK(run->rc != SP_OK || run->verify != NULL);
}

static bool
nul_within(const char *text, size_t size)
{
    return memchr(text, '\0', size) != NULL;
}

/*
 * Whether text is printable ASCII: what reaches a person or a log must
 * have peer bytes escaped (sp_log_escape), as the style guide asks.
 */
static bool
printable(const char *text)
{
    for (; *text != '\0'; text++)
        if (*text < 0x20 || *text > 0x7e)
            return false;
    return true;
}

/* What RFC 8301, l= and the From rule require of a "pass". */
static void
check_pass(const sp_dkim_verify *verify, const sp_dkim_result *res, bool legacy)
{
    CHECK(res->crypto_valid);
    CHECK(sp_dkim_verify_from_count(verify) == 1);
    CHECK(res->body_limit < 0 || (uint64_t)res->body_limit == res->body_octets);
    CHECK(res->expires < 0 || res->expires >= NOW);
    if (legacy)
        return;
    if (strcmp(res->algorithm, "ed25519-sha256") == 0)
        CHECK(res->key_bits == 256);
    else
        CHECK(strcmp(res->algorithm, "rsa-sha256") == 0 &&
              res->key_bits >= SP_DKIM_RSA_MIN_BITS);
}

static void
check_result(const sp_dkim_verify *verify, size_t index, unsigned limit,
             bool legacy)
{
    const sp_dkim_result *res = sp_dkim_verify_result(verify, index);

    CHECK(res != NULL);
    CHECK(res->status <= SP_DKIM_PERMERROR);
    CHECK(res->reason <= SP_DKIM_R_INTERNAL);
    CHECK(sp_dkim_status_name(res->status) != NULL);
    CHECK(sp_dkim_reason_word(res->reason) != NULL);
    CHECK(res->detail[0] != '\0' &&
          nul_within(res->detail, sizeof(res->detail)));
    CHECK(nul_within(res->domain, sizeof(res->domain)));
    CHECK(nul_within(res->selector, sizeof(res->selector)));
    CHECK(nul_within(res->identity, sizeof(res->identity)));
    CHECK(nul_within(res->algorithm, sizeof(res->algorithm)));
    CHECK(nul_within(res->b_prefix, sizeof(res->b_prefix)));
    CHECK(printable(res->detail) && printable(res->domain) &&
          printable(res->selector) && printable(res->identity) &&
          printable(res->algorithm) && printable(res->b_prefix));
    CHECK(res->timestamp >= -1 && res->expires >= -1 && res->body_limit >= -1);

    CHECK((res->status == SP_DKIM_PASS) == (res->reason == SP_DKIM_R_OK));
    CHECK(res->status != SP_DKIM_POLICY || res->crypto_valid);
    CHECK((index >= limit) == (res->reason == SP_DKIM_R_NOT_CHECKED));
    if (res->status == SP_DKIM_PASS)
        check_pass(verify, res, legacy);
}

/* One header field: printable ASCII, folded with CRLF TAB, ending CRLF. */
static void
check_auth_results(const sp_buf *auth)
{
    static const char start[] = "Authentication-Results: " AUTHSERV_ID ";";
    const unsigned char *p = (const unsigned char *)auth->data;
    size_t len = auth->len;

    CHECK(len > sizeof(start) && memcmp(p, start, sizeof(start) - 1) == 0);
    CHECK(p[len - 2] == '\r' && p[len - 1] == '\n');
    for (size_t i = 0; i + 2 < len; i++) {
        if (p[i] == '\r')
            CHECK(p[i + 1] == '\n' && p[i + 2] == '\t');
        else if (p[i] == '\n')
            CHECK(i > 0 && p[i - 1] == '\r');
        else
            CHECK(p[i] == '\t' || (p[i] >= 0x20 && p[i] < 0x7f));
    }
}

static void
check_run(const struct run *run, unsigned limit, bool legacy)
{
    size_t count = sp_dkim_verify_count(run->verify);

    for (size_t i = 0; i < count; i++)
        check_result(run->verify, i, limit, legacy);
    CHECK(sp_dkim_verify_result(run->verify, count) == NULL);
    CHECK(run->lookups.count <= count);
    if (run->auth_rc == SP_OK)
        check_auth_results(&run->auth);
}

static void
same_result(const sp_dkim_result *a, const sp_dkim_result *b)
{
    CHECK(a->status == b->status && a->reason == b->reason);
    CHECK(strcmp(a->detail, b->detail) == 0);
    CHECK(a->crypto_valid == b->crypto_valid && a->testing == b->testing);
    CHECK(strcmp(a->domain, b->domain) == 0);
    CHECK(strcmp(a->selector, b->selector) == 0);
    CHECK(strcmp(a->identity, b->identity) == 0);
    CHECK(strcmp(a->algorithm, b->algorithm) == 0);
    CHECK(strcmp(a->b_prefix, b->b_prefix) == 0);
    CHECK(a->header_canon == b->header_canon && a->body_canon == b->body_canon);
    CHECK(a->key_bits == b->key_bits && a->timestamp == b->timestamp &&
          a->expires == b->expires && a->body_limit == b->body_limit &&
          a->body_octets == b->body_octets);
}

/* Chunking must not change anything a caller can see. */
static void
same_runs(const struct run *a, const struct run *b)
{
    size_t count;

    CHECK(a->rc == b->rc);
    if (a->rc != SP_OK)
        return;
    count = sp_dkim_verify_count(a->verify);
    CHECK(sp_dkim_verify_count(b->verify) == count);
    CHECK(sp_dkim_verify_domainkeys(a->verify) ==
          sp_dkim_verify_domainkeys(b->verify));
    CHECK(sp_dkim_verify_from_count(a->verify) ==
          sp_dkim_verify_from_count(b->verify));
    for (size_t i = 0; i < count; i++)
        same_result(sp_dkim_verify_result(a->verify, i),
                    sp_dkim_verify_result(b->verify, i));
    CHECK(a->auth.len == b->auth.len &&
          memcmp(a->auth.data, b->auth.data, a->auth.len) == 0);
}

/* A finished verifier refuses more input and a second finish. */
static void
check_finished(sp_dkim_verify *verify)
{
    sp_error err;

    CHECK(sp_dkim_verify_feed(verify, "x", 1, &err) == SP_ESTATE);
    CHECK(sp_dkim_verify_finish(verify, &err) == SP_ESTATE);
}

static void
run_free(struct run *run)
{
    sp_dkim_verify_free(run->verify);
    sp_buf_free(&run->auth);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned limits[] = {0, 1, 3, 64};
    static struct run whole, chunked, starved; /* too large for the stack */
    const char *msg = (const char *)data;
    uint32_t hash = fuzz_hash(data, size);
    sp_dkim_verify_opts opts = {.lookup = lookup, .now = NOW};
    sp_dkim_keycache *cache;
    unsigned limit;

    opts.legacy = (hash >> 8 & 1) != 0;
    opts.max_signatures = limits[hash >> 9 & 3];

    /* The limit the verifier applies, as dkim.h and verify.c set it. */
    limit = opts.max_signatures;
    limit = limit == 0 ? SP_DKIM_MAX_SIGNATURES : limit;
    limit = limit > DKIM__MAX_BODY_HASHES ? DKIM__MAX_BODY_HASHES : limit;

    /* Fewer slots than the message may have keys, to force evictions. */
    CHECK(sp_dkim_keycache_new(1 + (hash >> 24 & 3), &cache, NULL) == SP_OK);

    verify_run(msg, size, 0, -1, &opts, &whole);
    opts.keycache = cache;
    verify_run(msg, size, 1 + hash % 67, -1, &opts, &chunked);
    same_runs(&whole, &chunked);
    if (whole.rc == SP_OK) {
        CHECK(whole.auth_rc == SP_OK);
        check_run(&whole, limit, opts.legacy);
        check_finished(whole.verify);
    }
    run_free(&whole);
    run_free(&chunked);

    /*
     * Out of memory: SP_ENOMEM or well-formed results, nothing leaked,
     * and the verifier still safe to free (dkim.h).
     */
    verify_run(msg, size, 1 + hash % 67, (long)(hash >> 16 & 31), &opts,
               &starved);
    CHECK(starved.rc == SP_OK || starved.rc == SP_ENOMEM);
    CHECK(starved.auth_rc == SP_OK || starved.auth_rc == SP_ENOMEM);
    if (starved.rc == SP_OK)
        check_run(&starved, limit, opts.legacy);
    run_free(&starved);
    sp_dkim_keycache_free(cache);
    return 0;
}
