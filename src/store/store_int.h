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

#endif /* SP_STORE_INT_H */
