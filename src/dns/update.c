/*
 * update.c: RFC 2136 dynamic updates of TXT records, signed with TSIG
 * (RFC 8945), built and signed by libldns.
 *
 * Owns sp_dns_update_txt and sp_dns_update_delete, which publish and
 * withdraw DKIM key records on a zone's primary server.  Each call sends
 * one UPDATE message and waits for its answer: a replacement is a delete
 * of the TXT RRset and an add in the same message, which the server
 * applies whole or not at all.
 *
 * Errors: SP_EINVAL for a server, key, zone, name or TTL that cannot be
 * used, naming the part; SP_ELIMIT for a value too long for one update;
 * SP_EIO when the server refuses (the RCODE name and what to change), its
 * answer cannot be trusted, or it cannot be reached or stays silent;
 * SP_ENOMEM.  The TSIG secret never appears in an error text, and this
 * file's copy of it is wiped before it is freed.
 *
 * Limits: the message goes over TCP, always: a record with a 2048-bit RSA
 * key makes it larger than the 512 octets every server takes over UDP,
 * and TCP tells a closed port from a silent one.  The server is an
 * address, not a host name, and the zone is named by the caller: nothing
 * looks up the zone's SOA or primary.  The whole exchange has
 * UPDATE_TIMEOUT_MS and is not retried: an update that timed out may
 * still have been applied, which a query will tell.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UPDATE_PORT       53
#define UPDATE_TIMEOUT_MS 5000
#define UPDATE_FUDGE      300         /* seconds the two clocks may differ */
#define UPDATE_VALUE_MAX  8192        /* octets of one TXT value */
#define UPDATE_STRING_MAX 255         /* octets of one character-string */
#define UPDATE_TTL_MAX    2147483647u /* RFC 2181, section 8 */
#define UPDATE_SHOWN      80          /* room for a name in a message */

/* TSIG error codes (RFC 8945, section 5.3) a server may answer with. */
#define UPDATE_TSIG_BADSIG  16
#define UPDATE_TSIG_BADKEY  17
#define UPDATE_TSIG_BADTIME 18

/* Where the update goes. */
struct update_server {
    struct sockaddr_storage addr;     /* address and port */
    socklen_t addr_len;               /* bytes of addr in use */
    char text[INET6_ADDRSTRLEN + 12]; /* "ADDR port N", for messages */
};

/* The TSIG key the update is signed with, when there is one. */
struct update_key {
    bool used;          /* false: the update goes unsigned */
    char algorithm[16]; /* as libldns names it: "hmac-sha256." */
    char name[256];     /* the key's name, as the server knows it */
    sp_buf secret;      /* base64 of the secret, canonical; wiped */
};

/* One update: where it goes, how it is signed, what it is about. */
struct update_job {
    struct update_server server;
    struct update_key key;
    ldns_rdf *zone;                /* owned until the packet takes it */
    char zone_shown[UPDATE_SHOWN]; /* escaped, for messages */
    char name_shown[UPDATE_SHOWN]; /* escaped, for messages */
};

/*
 * TSIG algorithms by name, with the reason for each one refused.  libldns
 * 1.8 signs with hmac-sha256 and hmac-sha512 (RFC 8945's recommended one
 * and its strongest) but not hmac-sha224 or hmac-sha384.
 */
static const struct {
    const char *name;    /* as operators and BIND write it */
    const char *refused; /* why it is not used, NULL when it is */
} update_algorithms[] = {
    {"hmac-sha256", NULL},
    {"hmac-sha512", NULL},
    {"hmac-md5", "RFC 8945 deprecates it"},
    {"hmac-sha1", "RFC 8945 advises against it"},
    {"hmac-sha224", "libldns cannot sign with it"},
    {"hmac-sha384", "libldns cannot sign with it"},
};

/* ------------------------------------------------------------------------
 * What the caller hands in
 */

/* Fill server from an address literal and a port. */
static int
update_server_address(struct update_server *server, const char *addr,
                      uint16_t port, const char *shown, sp_error *err)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&server->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&server->addr;

    memset(&server->addr, 0, sizeof(server->addr));
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        server->addr_len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        server->addr_len = sizeof(*in6);
    } else {
        return sp_err_set(err, SP_EINVAL,
                          "DNS server \"%s\": not an IPv4 or IPv6 address "
                          "(host names are not looked up)",
                          shown);
    }
    snprintf(server->text, sizeof(server->text), "%s port %u", addr,
             (unsigned)port);
    return SP_OK;
}

/* "ADDR" or "ADDR@PORT". */
static int
update_parse_server(const char *text, struct update_server *server,
                    sp_error *err)
{
    char addr[INET6_ADDRSTRLEN];
    char shown[UPDATE_SHOWN];
    const char *at;
    size_t addr_len;
    long port = UPDATE_PORT;

    if (text == NULL || *text == '\0')
        return sp_err_set(err, SP_EINVAL,
                          "DNS server: none given (ADDR or ADDR@PORT)");
    sp_log_escape(shown, sizeof(shown), text, strlen(text));
    at = strrchr(text, '@');
    addr_len = at ? (size_t)(at - text) : strlen(text);

    /* Digits only: strtol would take " 53", "+53" or "53x" halfway. */
    if (at != NULL) {
        size_t digits = strspn(at + 1, "0123456789");

        port = digits > 0 && digits <= 5 ? strtol(at + 1, NULL, 10) : 0;
        if (at[1 + digits] != '\0' || port < 1 || port > 65535)
            return sp_err_set(err, SP_EINVAL,
                              "DNS server \"%s\": the port after '@' must "
                              "be a number from 1 to 65535",
                              shown);
    }
    if (addr_len == 0 || addr_len >= sizeof(addr))
        return sp_err_set(err, SP_EINVAL,
                          "DNS server \"%s\": not an IPv4 or IPv6 address",
                          shown);
    memcpy(addr, text, addr_len);
    addr[addr_len] = '\0';
    return update_server_address(server, addr, (uint16_t)port, shown, err);
}

/* The algorithm part of a key, checked against the table. */
static int
update_parse_algorithm(const char *text, size_t len, struct update_key *key,
                       sp_error *err)
{
    const char *refused = "no such TSIG algorithm is known";
    char shown[UPDATE_SHOWN];

    for (size_t i = 0;
         i < sizeof(update_algorithms) / sizeof(update_algorithms[0]); i++) {
        if (strlen(update_algorithms[i].name) != len ||
            strncasecmp(text, update_algorithms[i].name, len) != 0)
            continue;
        refused = update_algorithms[i].refused;
        if (refused != NULL)
            break;
        snprintf(key->algorithm, sizeof(key->algorithm), "%s.",
                 update_algorithms[i].name);
        return SP_OK;
    }
    sp_log_escape(shown, sizeof(shown), text, len);
    return sp_err_set(err, SP_EINVAL,
                      "TSIG algorithm \"%s\": not accepted (%s); use "
                      "hmac-sha256 or hmac-sha512",
                      shown, refused);
}

/* The name part of a key: a domain name of at most 255 octets. */
static int
update_parse_key_name(const char *text, size_t len, struct update_key *key,
                      sp_error *err)
{
    ldns_rdf *name;

    if (len == 0 || len >= sizeof(key->name))
        return sp_err_set(err, SP_EINVAL, "TSIG key name: %s",
                          len ? "longer than a domain name" : "empty");
    memcpy(key->name, text, len);
    key->name[len] = '\0';
    name = ldns_dname_new_frm_str(key->name);
    if (name == NULL)
        return sp_err_set(err, SP_EINVAL, "TSIG key name: not a domain name");
    ldns_rdf_deep_free(name);
    return SP_OK;
}

/*
 * The secret part of a key: base64 of at least one octet, kept in the
 * canonical form libldns decodes.  No message quotes it.
 */
static int
update_parse_secret(const char *text, struct update_key *key, sp_error *err)
{
    sp_buf raw = SP_BUF_INIT;
    int rc;

    rc = sp_b64_decode(&raw, text, strlen(text), NULL);
    if (rc == SP_ENOMEM)
        return sp_err_set(err, rc, "out of memory");
    if (rc != SP_OK || raw.len == 0) {
        rc = sp_err_set(err, SP_EINVAL, "TSIG secret: %s",
                        rc ? "not base64" : "empty");
    } else if (sp_b64_encode(&key->secret, raw.data, raw.len) != SP_OK) {
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (raw.data != NULL)
        explicit_bzero(raw.data, raw.size);
    sp_buf_free(&raw);
    return rc;
}

/* "ALGORITHM:NAME:BASE64SECRET", or NULL or "" for no key. */
static int
update_parse_key(const char *text, struct update_key *key, sp_error *err)
{
    const char *colon1, *colon2;
    int rc;

    key->used = text != NULL && *text != '\0';
    if (!key->used)
        return SP_OK;
    colon1 = strchr(text, ':');
    colon2 = colon1 ? strchr(colon1 + 1, ':') : NULL;
    if (colon2 == NULL)
        return sp_err_set(err, SP_EINVAL,
                          "TSIG key: expected ALGORITHM:NAME:SECRET");
    rc = update_parse_algorithm(text, (size_t)(colon1 - text), key, err);
    if (rc == SP_OK)
        rc = update_parse_key_name(colon1 + 1, (size_t)(colon2 - colon1 - 1),
                                   key, err);
    if (rc == SP_OK)
        rc = update_parse_secret(colon2 + 1, key, err);
    return rc;
}

/* A domain name from the caller, as libldns holds it. */
static int
update_parse_name(const char *what, const char *text, ldns_rdf **out,
                  char *shown, sp_error *err)
{
    size_t len = text ? strlen(text) : 0;

    *out = NULL;
    sp_log_escape(shown, UPDATE_SHOWN, text ? text : "", len);
    if (len == 0)
        return sp_err_set(err, SP_EINVAL, "%s: none given", what);
    *out = ldns_dname_new_frm_str(text);
    if (*out == NULL)
        return sp_err_set(err, SP_EINVAL, "%s \"%s\": not a domain name", what,
                          shown);
    return SP_OK;
}

static void
update_job_clear(struct update_job *job)
{
    if (job->key.secret.data != NULL)
        explicit_bzero(job->key.secret.data, job->key.secret.size);
    sp_buf_free(&job->key.secret);
    ldns_rdf_deep_free(job->zone);
    job->zone = NULL;
}

/* Check everything but the record itself; owner gets the name. */
static int
update_job_init(struct update_job *job, const char *server, const char *tsig,
                const char *zone, const char *name, ldns_rdf **owner,
                sp_error *err)
{
    int rc;

    memset(job, 0, sizeof(*job));
    *owner = NULL;
    rc = update_parse_server(server, &job->server, err);
    if (rc == SP_OK)
        rc = update_parse_key(tsig, &job->key, err);
    if (rc == SP_OK)
        rc = update_parse_name("zone", zone, &job->zone, job->zone_shown, err);
    if (rc == SP_OK)
        rc = update_parse_name("name", name, owner, job->name_shown, err);
    return rc;
}

/* ------------------------------------------------------------------------
 * The records of the update section
 */

/* An update RR at owner (cloned) with no rdata yet. */
static ldns_rr *
update_rr(const ldns_rdf *owner, ldns_rr_class class, uint32_t ttl)
{
    ldns_rr *rr = ldns_rr_new();
    ldns_rdf *copy = ldns_rdf_clone(owner);

    if (rr == NULL || copy == NULL) {
        ldns_rr_free(rr);
        ldns_rdf_deep_free(copy);
        return NULL;
    }
    ldns_rr_set_owner(rr, copy);
    ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
    ldns_rr_set_class(rr, class);
    ldns_rr_set_ttl(rr, ttl);
    return rr;
}

/* Append value to rr as character-strings of at most 255 octets. */
static bool
update_push_strings(ldns_rr *rr, const char *value)
{
    size_t len = strlen(value);
    size_t pos = 0;

    /* An empty value is one empty string: TXT rdata cannot be empty. */
    do {
        uint8_t piece[UPDATE_STRING_MAX + 1];
        size_t part =
            len - pos < UPDATE_STRING_MAX ? len - pos : UPDATE_STRING_MAX;
        ldns_rdf *rdf;

        piece[0] = (uint8_t)part;
        memcpy(piece + 1, value + pos, part);
        rdf = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, part + 1, piece);
        if (rdf == NULL || !ldns_rr_push_rdf(rr, rdf)) {
            ldns_rdf_deep_free(rdf);
            return false;
        }
        pos += part;
    } while (pos < len);
    return true;
}

/*
 * The update section: "delete the TXT RRset at owner" (RFC 2136, section
 * 2.5.2: class ANY, TTL 0, no rdata), then, when value is not NULL, "add
 * this TXT record".  NULL when memory runs out.
 */
static ldns_rr_list *
update_section(const ldns_rdf *owner, const char *value, uint32_t ttl)
{
    ldns_rr_list *list = ldns_rr_list_new();
    ldns_rr *del = update_rr(owner, LDNS_RR_CLASS_ANY, 0);
    ldns_rr *add = value ? update_rr(owner, LDNS_RR_CLASS_IN, ttl) : NULL;
    bool ok = list != NULL && del != NULL && (value == NULL || add != NULL);

    if (ok && value != NULL)
        ok = update_push_strings(add, value);
    if (ok)
        ok = ldns_rr_list_push_rr(list, del);
    if (ok)
        del = NULL;
    if (ok && add != NULL)
        ok = ldns_rr_list_push_rr(list, add);
    if (ok)
        return list;
    ldns_rr_free(del);
    ldns_rr_free(add);
    ldns_rr_list_deep_free(list);
    return NULL;
}

/* ------------------------------------------------------------------------
 * The exchange with the server, over TCP
 */

static int64_t
update_now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline: 0, ETIMEDOUT or an errno. */
static int
update_wait(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    for (;;) {
        int64_t left = deadline - update_now_ms();
        int ready;

        if (left <= 0)
            return ETIMEDOUT;
        ready = poll(&pfd, 1, (int)left);
        if (ready > 0)
            return 0;
        if (ready < 0 && errno != EINTR)
            return errno;
    }
}

/* Connect without blocking past deadline: 0 or an errno. */
static int
update_connect(const struct update_server *server, int64_t deadline, int *fd)
{
    int error = 0;
    socklen_t len = sizeof(error);

    *fd = socket(server->addr.ss_family,
                 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return errno;
    if (connect(*fd, (const struct sockaddr *)&server->addr,
                server->addr_len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    error = update_wait(*fd, POLLOUT, deadline);
    if (error == 0 && getsockopt(*fd, SOL_SOCKET, SO_ERROR, &error, &len))
        error = errno;
    return error;
}

/* Send all of data: 0 or an errno. */
static int
update_send(int fd, const uint8_t *data, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t put = send(fd, data, len, MSG_NOSIGNAL);
        int error;

        if (put > 0) {
            data += put;
            len -= (size_t)put;
            continue;
        }
        if (put < 0 && errno != EAGAIN && errno != EINTR)
            return errno;
        error = update_wait(fd, POLLOUT, deadline);
        if (error != 0)
            return error;
    }
    return 0;
}

/* Read exactly len octets: 0, ECONNRESET at end of stream, or an errno. */
static int
update_recv(int fd, uint8_t *data, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t got = recv(fd, data, len, 0);
        int error;

        if (got > 0) {
            data += got;
            len -= (size_t)got;
            continue;
        }
        if (got == 0)
            return ECONNRESET;
        if (errno != EAGAIN && errno != EINTR)
            return errno;
        error = update_wait(fd, POLLIN, deadline);
        if (error != 0)
            return error;
    }
    return 0;
}

/* The sentence for a failed exchange. */
static int
update_io_error(const struct update_server *server, int error, sp_error *err)
{
    if (error == ETIMEDOUT)
        return sp_err_set(err, SP_EIO,
                          "DNS server %s did not answer within %d seconds "
                          "(timeout); check that it runs and that TCP can "
                          "reach it",
                          server->text, UPDATE_TIMEOUT_MS / 1000);
    if (error == ECONNREFUSED)
        return sp_err_set(err, SP_EIO,
                          "DNS server %s refused the connection: nothing "
                          "listens there on TCP",
                          server->text);
    if (error == ECONNRESET)
        return sp_err_set(err, SP_EIO,
                          "DNS server %s closed the connection without a "
                          "whole answer",
                          server->text);
    return sp_err_set(err, SP_EIO, "DNS server %s: %s", server->text,
                      strerror(error));
}

/* One message out, its answer (without the length prefix) into reply. */
static int
update_exchange(const struct update_server *server, const uint8_t *query,
                size_t query_len, sp_buf *reply, sp_error *err)
{
    int64_t deadline = update_now_ms() + UPDATE_TIMEOUT_MS;
    uint8_t prefix[2] = {(uint8_t)(query_len >> 8), (uint8_t)query_len};
    size_t len;
    int fd = -1;
    int error;

    error = update_connect(server, deadline, &fd);
    if (error == 0)
        error = update_send(fd, prefix, sizeof(prefix), deadline);
    if (error == 0)
        error = update_send(fd, query, query_len, deadline);
    if (error == 0)
        error = update_recv(fd, prefix, sizeof(prefix), deadline);
    len = (size_t)prefix[0] << 8 | prefix[1];
    if (error == 0 && sp_buf_reserve(reply, len) != SP_OK)
        error = ENOMEM;
    if (error == 0)
        error = update_recv(fd, (uint8_t *)reply->data, len, deadline);
    if (fd >= 0)
        close(fd);
    if (error == ENOMEM)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (error != 0)
        return update_io_error(server, error, err);
    reply->len = len;
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * Judging the answer
 */

/* What an RCODE means for an update, and what the operator can do. */
static const char *
update_rcode_advice(ldns_pkt_rcode rcode, const char **word)
{
    static const struct {
        const char *word;
        const char *advice;
    } rcodes[] = {
        {"NOERROR", "done"},
        {"FORMERR", "the server could not parse the update"},
        {"SERVFAIL", "the server failed to apply it; its log says why "
                     "(often a zone file or journal it cannot write)"},
        {"NXDOMAIN", "a prerequisite failed"},
        {"NOTIMP", "the server does not take dynamic updates"},
        {"REFUSED", "the server's policy does not allow it; let this key "
                    "update the zone (BIND: allow-update or update-policy)"},
        {"YXDOMAIN", "a prerequisite failed"},
        {"YXRRSET", "a prerequisite failed"},
        {"NXRRSET", "a prerequisite failed"},
        {"NOTAUTH", "the server is not authoritative for the zone; send "
                    "updates to the zone's primary server"},
        {"NOTZONE", "the name is not inside the zone; name the zone that "
                    "holds it"},
    };

    if ((size_t)rcode < sizeof(rcodes) / sizeof(rcodes[0])) {
        *word = rcodes[rcode].word;
        return rcodes[rcode].advice;
    }
    *word = "RCODE";
    return "an answer code this client does not know";
}

/* The server refused the key itself (a TSIG error with NOTAUTH). */
static int
update_tsig_error(const struct update_job *job, uint16_t error, sp_error *err)
{
    const char *word = "BADSIG";
    const char *why = "the secret or the algorithm differs from the "
                      "server's copy of the key";

    if (error == UPDATE_TSIG_BADKEY) {
        word = "BADKEY";
        why = "the server knows no key of this name and algorithm";
    } else if (error == UPDATE_TSIG_BADTIME) {
        word = "BADTIME";
        why = "this clock and the server's differ by more than 5 minutes";
    } else if (error != UPDATE_TSIG_BADSIG) {
        word = "TSIG error";
    }
    return sp_err_set(err, SP_EIO,
                      "DNS server %s did not apply the update of %s: "
                      "NOTAUTH, TSIG rejected (%s, key %s): %s",
                      job->server.text, job->name_shown, word, job->key.name,
                      why);
}

/*
 * Check the answer's TSIG.  A signed update needs a signed success: an
 * unsigned NOERROR could come from anyone on the path.  A failure is a
 * failure whether or not it is signed, so its RCODE is reported as is.
 */
static int
update_check_tsig(const struct update_job *job, ldns_pkt *query,
                  ldns_pkt *answer, const sp_buf *reply, sp_error *err)
{
    ldns_rr *tsig = ldns_pkt_tsig(answer);
    const ldns_rdf *mac = ldns_rr_rdf(ldns_pkt_tsig(query), 3);
    uint16_t error;

    if (tsig == NULL || ldns_rr_rd_count(tsig) < 7) {
        if (ldns_pkt_get_rcode(answer) != LDNS_RCODE_NOERROR)
            return SP_OK;
        return sp_err_set(err, SP_EIO,
                          "DNS server %s answered the signed update of %s "
                          "without TSIG; query the name to see whether it "
                          "was applied",
                          job->server.text, job->name_shown);
    }
    error = ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
    if (error != 0)
        return update_tsig_error(job, error, err);
    if (!ldns_pkt_tsig_verify(answer, (const uint8_t *)reply->data, reply->len,
                              job->key.name, job->key.secret.data, mac))
        return sp_err_set(err, SP_EIO,
                          "the answer from DNS server %s about %s fails "
                          "TSIG verification; query the name to see "
                          "whether the update was applied",
                          job->server.text, job->name_shown);
    return SP_OK;
}

/* Read the answer to query out of reply. */
static int
update_judge(const struct update_job *job, ldns_pkt *query, const sp_buf *reply,
             sp_error *err)
{
    ldns_pkt *answer = NULL;
    const char *word, *advice;
    int rc = SP_OK;

    if (ldns_wire2pkt(&answer, (const uint8_t *)reply->data, reply->len) !=
            LDNS_STATUS_OK ||
        ldns_pkt_id(answer) != ldns_pkt_id(query) || !ldns_pkt_qr(answer) ||
        ldns_pkt_get_opcode(answer) != LDNS_PACKET_UPDATE)
        rc = sp_err_set(err, SP_EIO,
                        "DNS server %s sent something that is not the "
                        "answer to the update of %s",
                        job->server.text, job->name_shown);
    if (rc == SP_OK && job->key.used)
        rc = update_check_tsig(job, query, answer, reply, err);
    if (rc == SP_OK && ldns_pkt_get_rcode(answer) != LDNS_RCODE_NOERROR) {
        advice = update_rcode_advice(ldns_pkt_get_rcode(answer), &word);
        rc = sp_err_set(err, SP_EIO,
                        "DNS server %s did not apply the update of %s in "
                        "zone %s: %s, %s",
                        job->server.text, job->name_shown, job->zone_shown,
                        word, advice);
    }
    ldns_pkt_free(answer);
    return rc;
}

/* ------------------------------------------------------------------------
 * The update
 */

/* The UPDATE message for section, signed when there is a key. */
static int
update_packet(struct update_job *job, const ldns_rr_list *section,
              ldns_pkt **out, sp_error *err)
{
    ldns_pkt *query;
    ldns_status status;

    *out = NULL;
    query =
        ldns_update_pkt_new(job->zone, LDNS_RR_CLASS_IN, NULL, section, NULL);
    /*
     * The packet owns the zone name now; on failure libldns does not say
     * whether it freed it, and a leak on that path beats a double free.
     */
    job->zone = NULL;
    if (query == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");

    /* RFC 2136 has no RD bit: the header's bit there is zero. */
    ldns_pkt_set_rd(query, false);
    ldns_pkt_set_random_id(query);
    if (job->key.used) {
        status = ldns_pkt_tsig_sign(query, job->key.name, job->key.secret.data,
                                    UPDATE_FUDGE, job->key.algorithm, NULL);
        if (status != LDNS_STATUS_OK) {
            ldns_pkt_free(query);
            return sp_err_set(err, SP_ECRYPTO, "TSIG signing failed: %s",
                              ldns_get_errorstr_by_id(status));
        }
    }
    *out = query;
    return SP_OK;
}

/* Send the update section to the server and judge the answer. */
static int
update_run(struct update_job *job, const ldns_rr_list *section, sp_error *err)
{
    ldns_pkt *query = NULL;
    uint8_t *wire = NULL;
    size_t wire_len = 0;
    sp_buf reply = SP_BUF_INIT;
    int rc;

    rc = update_packet(job, section, &query, err);
    if (rc == SP_OK && ldns_pkt2wire(&wire, query, &wire_len) != LDNS_STATUS_OK)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK && wire_len > UINT16_MAX)
        rc = sp_err_set(err, SP_ELIMIT,
                        "the update of %s does not fit in one DNS message",
                        job->name_shown);
    if (rc == SP_OK)
        rc = update_exchange(&job->server, wire, wire_len, &reply, err);
    if (rc == SP_OK)
        rc = update_judge(job, query, &reply, err);
    free(wire);
    ldns_pkt_free(query);
    sp_buf_free(&reply);
    return rc;
}

/* Check, build and send one update; value NULL deletes. */
static int
update_txt(const char *server, const char *tsig, const char *zone,
           const char *name, const char *value, uint32_t ttl, sp_error *err)
{
    struct update_job job;
    ldns_rdf *owner = NULL;
    ldns_rr_list *section = NULL;
    int rc;

    rc = update_job_init(&job, server, tsig, zone, name, &owner, err);
    if (rc == SP_OK && value != NULL && strlen(value) > UPDATE_VALUE_MAX)
        rc = sp_err_set(err, SP_ELIMIT,
                        "TXT value for %s: %zu octets, more than the %d "
                        "one update carries",
                        job.name_shown, strlen(value), UPDATE_VALUE_MAX);
    if (rc == SP_OK && ttl > UPDATE_TTL_MAX)
        rc = sp_err_set(err, SP_EINVAL, "TTL %lu: more than %u seconds",
                        (unsigned long)ttl, UPDATE_TTL_MAX);
    if (rc == SP_OK) {
        section = update_section(owner, value, ttl);
        if (section == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (rc == SP_OK)
        rc = update_run(&job, section, err);
    ldns_rr_list_deep_free(section);
    ldns_rdf_deep_free(owner);
    update_job_clear(&job);
    return rc;
}

int
sp_dns_update_txt(const char *server, const char *tsig, const char *zone,
                  const char *name, const char *value, uint32_t ttl,
                  sp_error *err)
{
    if (value == NULL)
        return sp_err_set(err, SP_EINVAL, "TXT value: none given");
    return update_txt(server, tsig, zone, name, value, ttl, err);
}

int
sp_dns_update_delete(const char *server, const char *tsig, const char *zone,
                     const char *name, sp_error *err)
{
    return update_txt(server, tsig, zone, name, NULL, 0, err);
}
