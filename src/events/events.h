/*
 * events.h: the public face of sealpost's event stream.
 *
 * Every step that matters to a sender or an operator is an event with one
 * shape: a JSON object with event_id (unique), type, timestamp (UTC, in
 * milliseconds) and the fields of its type (doc/events.md lists them).
 * What it owns: making an event's text (sp_event_text), and emitting the
 * key lifecycle's events: a JSON line in events.jsonl in the data
 * directory, the log, and the event store when one is set.  Message
 * events go through the spool into the event store (store.h); the daemon
 * moves them.
 *
 * Errors are returned, never logged; an event that cannot be written is
 * reported to the caller, which decides whether that stops anything.
 */
#ifndef SP_EVENTS_H
#define SP_EVENTS_H

#include "base/base.h"
#include "keys/keys.h"
#include "store/store.h"

#include <jansson.h>

typedef struct sp_events sp_events;

/*
 * Open the event log of data_dir (events.jsonl, appended, created 0600).
 * With echo set, each event is also written to the log as one line
 * "event {...}".
 */
int sp_events_open(const char *data_dir, bool echo, sp_events **out,
                   sp_error *err);

/*
 * Also add every event emitted from now on to store's event store (where
 * "sealpost events" and the API read them); store is borrowed and must
 * outlive events.
 */
void sp_events_set_store(sp_events *events, sp_store *store);

/*
 * Emit one event of type with the fields in fields (an object, whose
 * reference this takes over): event_id, type and timestamp are added, the
 * line is appended and flushed to the file.  SP_EIO when the write fails.
 */
int sp_events_emit(sp_events *events, const char *type, json_t *fields,
                   sp_error *err);

void sp_events_close(sp_events *events);

/*
 * The compact JSON text of a new event of type: fields (an object, whose
 * reference this takes over) with event_id, type and timestamp added.
 * NULL when memory runs out or fields is not an object.  free() it.
 */
char *sp_event_text(const char *type, json_t *fields);

/*
 * The store's row for a parsed event: its id, type, time, recipient,
 * queue id and campaign, borrowed from event (json is left as it was).
 * False when event lacks an id, a type or a valid timestamp.
 */
bool sp_event_row(json_t *event, sp_store_event *row);

/*
 * Whether each name of a comma-separated list ("delivery,bounce") is an
 * event type, the reserved ones included; "" is a valid (empty) list.
 */
bool sp_event_types_valid(const char *list);

/*
 * Milliseconds since the epoch of an event timestamp
 * ("2026-12-03T16:40:01.123Z"); -1 for text that is not one.
 */
int64_t sp_event_time_ms(const char *timestamp);

/* "whsec_", 64 hexadecimal digits and a NUL. */
#define SP_WEBHOOK_SECRET_SIZE 71

/*
 * Register a webhook: hook's name (1 to 63 printable characters), url
 * (http:// or https://) and events (types, comma-separated; "" for all)
 * are checked; a signing secret is made into secret, sealed with keys'
 * master key into the hook and the hook stored (hook->id is set).
 * SP_EINVAL with err saying what is wrong (a name already taken too);
 * otherwise the key manager's or the store's errors.
 */
int sp_webhook_add(sp_keys *keys, sp_store_webhook *hook,
                   char secret[SP_WEBHOOK_SECRET_SIZE], sp_error *err);

/*
 * A webhook as the API and "webhooks list --json" show it: {"id": "3",
 * "name", "target" (its URL), "events": [types; empty for all],
 * "created" (seconds since the epoch), "cursor", "failing_since" (ms; 0
 * while it takes events), "last_error"}; the secret never.  NULL when
 * memory runs out.
 */
json_t *sp_webhook_json(const sp_store_webhook *hook);

#endif /* SP_EVENTS_H */
