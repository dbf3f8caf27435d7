/* HMAC-SHA1 (RFC 2104) for hashed known_hosts names (|1|salt|hash), computed with whichever crypto
 * library libssh was built against, so sshmux links no second one.
 *
 * Checking a host against hashed known_hosts lines costs one HMAC per line (each has its own
 * salt), so the reusable context matters: with OpenSSL 3 the one-shot HMAC() spends most of its
 * ~2 us looking up the digest and allocating; a context brings it to ~0.5 us. */
#ifndef SSHMUX_HMAC_SHA1_H
#define SSHMUX_HMAC_SHA1_H

#include <stddef.h>

#define SMX_SHA1_LEN 20

typedef struct smx_hmac_sha1_ctx smx_hmac_sha1_ctx;

/* NULL when out of memory or SHA-1 is unavailable. Not for use by two threads at once. */
smx_hmac_sha1_ctx *smx_hmac_sha1_new(void);
void smx_hmac_sha1_free(smx_hmac_sha1_ctx *ctx);

/* out = HMAC-SHA1(key, msg). Returns 0, or SMX_ESSH if the crypto library refused. */
int smx_hmac_sha1_compute(smx_hmac_sha1_ctx *ctx, const void *key, size_t keylen,
                          const void *msg, size_t msglen, unsigned char out[SMX_SHA1_LEN]);

/* One-shot form: creates a context, computes, frees it. SMX_ENOMEM if no context. */
int smx_hmac_sha1(const void *key, size_t keylen, const void *msg, size_t msglen,
                  unsigned char out[SMX_SHA1_LEN]);

#endif
