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

#endif /* SP_EVENTS_H */
