/*
 * events.h: the public face of sealpost's event stream.
 *
 * Every step that matters to a sender or an operator is an event with one
 * shape: a JSON object with event_id (unique), type, timestamp (UTC, in
 * milliseconds) and the fields of its type.  What it owns today: writing
 * events as JSON lines to events.jsonl in the data directory and to the
 * log; the store, the query API and webhooks take them over later.
 *
 * Errors are returned, never logged; an event that cannot be written is
 * reported to the caller, which decides whether that stops anything.
 */
#ifndef SP_EVENTS_H
#define SP_EVENTS_H

#include "base/base.h"

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
 * Emit one event of type with the fields in fields (an object, whose
 * reference this takes over): event_id, type and timestamp are added, the
 * line is appended and flushed to the file.  SP_EIO when the write fails.
 */
int sp_events_emit(sp_events *events, const char *type, json_t *fields,
                   sp_error *err);

void sp_events_close(sp_events *events);

#endif /* SP_EVENTS_H */
