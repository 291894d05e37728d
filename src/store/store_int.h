/*
 * store_int.h: names shared between store.c and its backends.
 */
#ifndef SP_STORE_INT_H
#define SP_STORE_INT_H

#include "store.h"

/*
 * Open the SQLite backend on data_dir/sealpost.db: *backend gets its
 * function table, *impl its state.
 */
int store__sqlite_open(const char *data_dir,
                       const struct sp_store_backend **backend, void **impl,
                       sp_error *err);

/* The event database of the SQLite backend (sqlite_events.c). */
struct sqlite3;

/* Open (creating) data_dir/events.db and its schema. */
int store__events_open(const char *data_dir, struct sqlite3 **out,
                       sp_error *err);

/* See sp_store_events_add and sp_store_events_find. */
int store__events_add(struct sqlite3 *db, const sp_store_event *events,
                      size_t count, sp_error *err);
int store__events_find(struct sqlite3 *db, const sp_store_event_filter *filter,
                       void (*each)(void *arg, int64_t cursor,
                                    const char *json),
                       void *arg, sp_error *err);

int store__events_prune(struct sqlite3 *db, int64_t before_ms, size_t max,
                        size_t *deleted, sp_error *err);

int store__events_count(struct sqlite3 *db, int64_t from_ms, int64_t to_ms,
                        int64_t bucket_ms, bool by_domain,
                        void (*each)(void *arg, int64_t bucket,
                                     const char *domain, const char *type,
                                     int64_t count),
                        void *arg, sp_error *err);

/* The templates of the SQLite backend (sqlite_templates.c), in db. */
int store__template_save(struct sqlite3 *db, sp_store_template *tpl,
                         bool create, sp_error *err);
int store__template_get(struct sqlite3 *db, const char *id,
                        sp_store_template *out, sp_error *err);
int store__template_list(struct sqlite3 *db, sp_store_template **out,
                         size_t *count, sp_error *err);
int store__template_delete(struct sqlite3 *db, const char *id, sp_error *err);

/* The DMARC reports of the SQLite backend (sqlite_dmarc.c), in db; see
 * sp_store_dmarc_*. */
/* The recipients' keys of the SQLite backend (sqlite_rkeys.c), in db. */
int store__rkey_add(struct sqlite3 *db, sp_store_rkey *key, sp_error *err);
int store__rkey_list(struct sqlite3 *db, const char *address,
                     sp_store_rkey **out, size_t *count, sp_error *err);
int store__rkey_remove(struct sqlite3 *db, const char *address,
                       const char *fingerprint, size_t *removed, sp_error *err);

struct dmarc_add;
int store__dmarc_add(struct sqlite3 *db, struct dmarc_add *batch,
                     const sp_dmarc_report *report, const char *source,
                     int64_t imported, int64_t *id_out, sp_error *err);
int store__dmarc_batch_begin(struct sqlite3 *db, struct dmarc_add **out,
                             sp_error *err);
int store__dmarc_batch_end(struct sqlite3 *db, struct dmarc_add *batch,
                           bool commit, sp_error *err);
int store__dmarc_refuse(struct sqlite3 *db, const char *source,
                        const char *reason, const void *content, int64_t size,
                        int64_t refused, sp_error *err);
int store__dmarc_rows(struct sqlite3 *db, const char *domain, int64_t since,
                      sp_store_dmarc_row_fn *fn, void *arg, sp_error *err);
int store__dmarc_counts(struct sqlite3 *db, int64_t *reports, int64_t *records,
                        int64_t *refused, sp_error *err);

#endif /* SP_STORE_INT_H */
