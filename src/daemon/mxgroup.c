/*
 * mxgroup.c: the destination of a domain's mail when delivery rules
 * group domains by their MX host ("mx:*.mail.example.net"): all the
 * domains one provider serves then share one queue, one set of limits and
 * one set of connections.
 *
 * Owns daemon_mxgroups_*.  The answer depends on the domain's most
 * preferred MX host, so each domain's MX is looked up (asynchronously, on
 * the loop) before its jobs are placed; the answer is kept for an hour,
 * five minutes when the lookup failed (the domain then waits in a
 * destination of its own, where delivery reports the DNS trouble).  Jobs
 * that arrive while their domain's lookup runs wait in its entry.
 *
 * Known limit: entries are kept until the daemon stops, one per domain
 * seen (some hundred octets each); a sender with millions of distinct
 * recipient domains would want them aged out.
 */
#include "daemon.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MXGROUP_BUCKETS     4096
#define MXGROUP_KEEP_MS     (3600 * 1000) /* a known group holds */
#define MXGROUP_RETRY_MS    (300 * 1000)  /* after a failed lookup */
#define MXGROUP_DOMAIN_SIZE 254

struct mxgroup_entry {
    struct daemon_mxgroups *groups;
    struct mxgroup_entry *next; /* in its bucket */
    char domain[MXGROUP_DOMAIN_SIZE];
    char dest[256];              /* "" until the first answer */
    int64_t expires_ms;          /* dest holds until then */
    bool asking;                 /* an MX lookup is out */
    daemon_pending_job *pending; /* jobs waiting for it, oldest first */
    daemon_pending_job **pending_tail;
};

struct daemon_mxgroups {
    sp_sched *sched;
    sp_dns_resolver *resolver;
    daemon_place_fn place;
    void *arg;
    struct mxgroup_entry *buckets[MXGROUP_BUCKETS];
};

static size_t
mxgroup_bucket(const char *domain)
{
    size_t hash = 5381;

    for (; *domain != '\0'; domain++)
        hash = hash * 33 + (unsigned char)(*domain | 0x20);
    return hash % MXGROUP_BUCKETS;
}

struct daemon_mxgroups *
daemon_mxgroups_new(sp_sched *sched, sp_dns_resolver *resolver,
                    daemon_place_fn place, void *arg)
{
    struct daemon_mxgroups *groups = sp_calloc(1, sizeof(*groups));

    if (groups == NULL)
        return NULL;
    groups->sched = sched;
    groups->resolver = resolver;
    groups->place = place;
    groups->arg = arg;
    return groups;
}

/* Place every job waiting in entry, at its destination. */
static void
mxgroup_release(struct daemon_mxgroups *groups, struct mxgroup_entry *entry)
{
    daemon_pending_job *job = entry->pending, *next;

    entry->pending = NULL;
    entry->pending_tail = &entry->pending;
    for (; job != NULL; job = next) {
        next = job->next;
        job->next = NULL;
        groups->place(groups->arg, entry->domain, entry->dest, job);
    }
}

/* The MX answer for an entry's domain: its destination, then its jobs. */
static void
mxgroup_answer(void *arg, const sp_dns_mx_answer *answer)
{
    struct mxgroup_entry *entry = arg;
    struct daemon_mxgroups *groups = entry->groups;
    bool found =
        answer->status == SP_DNS_OK && answer->count > 0 && !answer->null_mx;
    const char *dest = sp_sched_dest_for(groups->sched, entry->domain,
                                         found ? answer->hosts[0].host : NULL);
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    entry->asking = false;
    snprintf(entry->dest, sizeof(entry->dest), "%s", dest);
    entry->expires_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 +
                        (found ? MXGROUP_KEEP_MS : MXGROUP_RETRY_MS);
    mxgroup_release(groups, entry);
}

/* The entry of domain, made when new; NULL when memory runs out. */
static struct mxgroup_entry *
mxgroup_entry(struct daemon_mxgroups *groups, const char *domain)
{
    size_t bucket = mxgroup_bucket(domain);
    struct mxgroup_entry *entry;

    for (entry = groups->buckets[bucket]; entry != NULL; entry = entry->next)
        if (strcasecmp(entry->domain, domain) == 0)
            return entry;
    entry = sp_calloc(1, sizeof(*entry));
    if (entry == NULL)
        return NULL;
    entry->groups = groups;
    snprintf(entry->domain, sizeof(entry->domain), "%s", domain);
    entry->pending_tail = &entry->pending;
    entry->next = groups->buckets[bucket];
    groups->buckets[bucket] = entry;
    return entry;
}

void
daemon_mxgroups_place(struct daemon_mxgroups *groups, const char *domain,
                      daemon_pending_job *job, int64_t now_ms)
{
    struct mxgroup_entry *entry = mxgroup_entry(groups, domain);
    sp_error err;

    /* Without memory for an entry, the domain waits alone. */
    if (entry == NULL) {
        groups->place(groups->arg, domain, domain, job);
        return;
    }
    if (entry->dest[0] != '\0' && now_ms < entry->expires_ms &&
        !entry->asking) {
        groups->place(groups->arg, domain, entry->dest, job);
        return;
    }

    job->next = NULL;
    *entry->pending_tail = job;
    entry->pending_tail = &job->next;
    if (entry->asking)
        return;
    entry->asking = true;
    if (sp_dns_resolver_mx_async(groups->resolver, domain, mxgroup_answer,
                                 entry, &err) != SP_OK) {
        sp_log_warning("schedule domain=%s error=\"%s\"", domain, err.text);
        entry->asking = false;
        snprintf(entry->dest, sizeof(entry->dest), "%s", domain);
        entry->expires_ms = now_ms + MXGROUP_RETRY_MS;
        mxgroup_release(groups, entry);
    }
}

void
daemon_mxgroups_free(struct daemon_mxgroups *groups)
{
    if (groups == NULL)
        return;
    for (size_t i = 0; i < MXGROUP_BUCKETS; i++)
        for (struct mxgroup_entry *entry = groups->buckets[i], *next; entry;
             entry = next) {
            next = entry->next;
            if (entry->asking)
                sp_dns_resolver_cancel(groups->resolver, entry);
            for (daemon_pending_job *job = entry->pending, *after; job;
                 job = after) {
                after = job->next;
                sp_free(job);
            }
            sp_free(entry);
        }
    sp_free(groups);
}
