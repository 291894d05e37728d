/*
 * testlib.h: helpers shared by sealpost's C unit tests (cmocka).
 *
 * Tests are single-threaded programs; the helpers abort through cmocka's
 * assertions on anything unexpected, so a test body reads as its steps.
 */
#ifndef SP_TESTLIB_H
#define SP_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "dkim/dkim.h"
#include "dns/dns.h"

/*
 * Make a fresh directory /tmp/sealpost-test-<what>-XXXXXX into path
 * (size octets), or fail the test.
 */
void testlib_temp_dir(const char *what, char *path, size_t size);

/* Remove path and everything under it, or fail the test. */
void testlib_remove_dir(const char *path);

/* Read tests/data/<relative> into buf (NUL-terminated); fails the test
 * when the file is missing. */
void testlib_read(const char *relative, sp_buf *buf);

/* A verification key source backed by a dns.txt table. */
typedef struct testlib_dns {
    sp_dns_table *table;
} testlib_dns;

void testlib_dns_load(testlib_dns *dns, const char *relative);
void testlib_dns_free(testlib_dns *dns);
void testlib_dns_lookup(void *arg, const char *name, sp_dkim_txt *answer);

/*
 * Verify message (len bytes) fed in chunks of chunk bytes (0: at once)
 * against dns; returns the finished verifier, which the caller frees.
 */
sp_dkim_verify *testlib_verify(testlib_dns *dns, const char *message,
                               size_t len, size_t chunk, bool legacy);

/* Sign message with the given specs, fed in chunks; append the signed
 * message (signatures then message) to out.  Returns the engine's code. */
int testlib_sign(const sp_dkim_sign_spec *specs, size_t count,
                 const char *message, size_t len, size_t chunk, sp_buf *out,
                 sp_error *err);

/* The RFC 8032 test key 1 (Ed25519), published as ed1 in dns-all.txt. */
sp_dkim_key *testlib_ed25519_key(void);

/* A fresh RSA key of bits bits (generated once per size per process). */
sp_dkim_key *testlib_rsa_key(unsigned bits);

#endif /* SP_TESTLIB_H */
