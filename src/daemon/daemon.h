/*
 * daemon.h: names shared by the files of sealpostd.
 *
 *   main.c      options, start-up, the event loop, shutdown
 *   dkim_task.c daemon_dkim_*: the DKIM key lifecycle on a schedule
 */
#ifndef SP_DAEMON_H
#define SP_DAEMON_H

#include "base/base.h"
#include "config/config.h"
#include "dns/dns.h"
#include "events/events.h"
#include "keys/keys.h"

struct dkim_domain_check;

/* The lifecycle task: what it uses, borrowed from the daemon. */
struct daemon_dkim {
    const sp_config *config;
    sp_keys *keys;
    sp_events *events;
    sp_dns_resolver *resolver;        /* driven by the event loop */
    struct dkim_domain_check *checks; /* domains waiting for DNS */
};

/*
 * Refuse to start on keys that break the rules: an active t=y key of a
 * domain not in dkim_testing_domains.  Warns about keys that sign
 * unconfirmed.
 */
int daemon_dkim_startup(struct daemon_dkim *task, sp_error *err);

/* Start a lifecycle check of every configured domain. */
void daemon_dkim_check(struct daemon_dkim *task);

/* Drop checks still waiting for DNS, before the resolver goes. */
void daemon_dkim_stop(struct daemon_dkim *task);

#endif /* SP_DAEMON_H */
