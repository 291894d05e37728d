/*
 * keys_int.h: names shared by the files of the keys module.
 */
#ifndef SP_KEYS_INT_H
#define SP_KEYS_INT_H

#include "crypt/crypt.h"
#include "keys.h"

#include <strings.h>

struct sp_keys {
    const sp_config *config;  /* borrowed: rotation period, expiry, ... */
    sp_store *store;          /* owned */
    bool create;              /* make the master key if it is missing */
    bool master_loaded;       /* master holds the key */
    sp_crypt_master master;   /* read on first need; wiped on close */
    sp_keys_queued_fn queued; /* the spool's count, or NULL */
    void *queued_arg;
};

/* Load the master key if it is not loaded yet. */
int keys__master(sp_keys *keys, sp_error *err);

/* What the planner knows of one key beyond its row. */
typedef struct keys__fact {
    int64_t key_id;
    sp_keys_seen_state seen; /* what DNS showed (pending keys) */
    char why[300];           /* the reason behind seen */
    int64_t queued;          /* queued messages carrying its signature */
} keys__fact;

typedef struct keys__facts {
    keys__fact *items; /* owned by whoever gathered them */
    size_t count;
} keys__facts;

/* Everything one plan depends on; nothing else is read. */
typedef struct keys__plan_input {
    const sp_store_key *rows; /* the domain's keys */
    size_t count;
    const keys__facts *facts;
    const char *const *algorithms; /* those with a lifecycle here */
    size_t algorithm_count;
    const sp_config_list *rotating; /* those that get new keys */
    int64_t now;
    bool force;               /* rotate now, due or not */
    int64_t rotation_period;  /* seconds */
    int64_t signature_expiry; /* seconds, for keys that signed
                                 without x= */
    bool testing_allowed;     /* t=y keys may sign */
} keys__plan_input;

/*
 * Decide a step: every move and blocker is appended to plan (entries whose
 * from and to differ are moves), and the algorithms that need a new key
 * are written to due (at most due_max).  Pure: reads only in.  SP_ENOMEM.
 */
int keys__plan(const keys__plan_input *in, sp_keys_report *plan, char due[][24],
               size_t *due_count, size_t due_max);

#endif /* SP_KEYS_INT_H */
