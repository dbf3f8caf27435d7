#include "hmac_sha1.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#if defined(SSHMUX_CRYPTO_MBEDTLS)

#include <mbedtls/md.h>

struct smx_hmac_sha1_ctx {
    mbedtls_md_context_t md; /* set up for HMAC once; starts() rekeys it without allocating */
};

smx_hmac_sha1_ctx *smx_hmac_sha1_new(void)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
    smx_hmac_sha1_ctx *ctx;

    if (info == NULL || (ctx = malloc(sizeof *ctx)) == NULL)
        return NULL;
    mbedtls_md_init(&ctx->md);
    if (mbedtls_md_setup(&ctx->md, info, 1) != 0) {
        mbedtls_md_free(&ctx->md);
        free(ctx);
        return NULL;
    }
    return ctx;
}

void smx_hmac_sha1_free(smx_hmac_sha1_ctx *ctx)
{
    if (ctx == NULL)
        return;
    mbedtls_md_free(&ctx->md);
    free(ctx);
}

int smx_hmac_sha1_compute(smx_hmac_sha1_ctx *ctx, const void *key, size_t keylen,
                          const void *msg, size_t msglen, unsigned char out[SMX_SHA1_LEN])
{
    if (mbedtls_md_hmac_starts(&ctx->md, key, keylen) != 0 ||
        mbedtls_md_hmac_update(&ctx->md, msg, msglen) != 0 ||
        mbedtls_md_hmac_finish(&ctx->md, out) != 0)
        return SMX_ESSH;
    return 0;
}

#else /* OpenSSL 3 */

#include <openssl/evp.h>

#define SHA1_BLOCK 64

/* RFC 2104 over a reused digest context: HMAC() and EVP_MAC both fetch the digest and allocate
 * contexts on every call, which is most of their cost for short messages. */
struct smx_hmac_sha1_ctx {
    EVP_MD *sha1;
    EVP_MD_CTX *md;
};

smx_hmac_sha1_ctx *smx_hmac_sha1_new(void)
{
    smx_hmac_sha1_ctx *ctx = calloc(1, sizeof *ctx);

    if (ctx == NULL)
        return NULL;
    ctx->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    ctx->md = EVP_MD_CTX_new();
    if (ctx->sha1 == NULL || ctx->md == NULL) {
        smx_hmac_sha1_free(ctx);
        return NULL;
    }
    return ctx;
}

void smx_hmac_sha1_free(smx_hmac_sha1_ctx *ctx)
{
    if (ctx == NULL)
        return;
    EVP_MD_CTX_free(ctx->md);
    EVP_MD_free(ctx->sha1);
    free(ctx);
}

/* out = SHA1(a || b) */
static int sha1_two(smx_hmac_sha1_ctx *ctx, const void *a, size_t alen, const void *b,
                    size_t blen, unsigned char out[SMX_SHA1_LEN])
{
    unsigned int len = 0;

    if (EVP_DigestInit_ex2(ctx->md, ctx->sha1, NULL) != 1 ||
        EVP_DigestUpdate(ctx->md, a, alen) != 1 || EVP_DigestUpdate(ctx->md, b, blen) != 1 ||
        EVP_DigestFinal_ex(ctx->md, out, &len) != 1 || len != SMX_SHA1_LEN)
        return SMX_ESSH;
    return 0;
}

int smx_hmac_sha1_compute(smx_hmac_sha1_ctx *ctx, const void *key, size_t keylen,
                          const void *msg, size_t msglen, unsigned char out[SMX_SHA1_LEN])
{
    unsigned char k0[SHA1_BLOCK] = {0}, pad[SHA1_BLOCK], inner[SMX_SHA1_LEN];
    int rc = 0, i;

    if (keylen > SHA1_BLOCK)
        rc = sha1_two(ctx, key, keylen, "", 0, k0); /* long keys are hashed first */
    else if (keylen > 0)
        memcpy(k0, key, keylen);
    for (i = 0; i < SHA1_BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    if (rc == 0)
        rc = sha1_two(ctx, pad, sizeof pad, msg, msglen, inner);
    for (i = 0; i < SHA1_BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    if (rc == 0)
        rc = sha1_two(ctx, pad, sizeof pad, inner, sizeof inner, out);
    /* the key may be a secret for other callers */
    explicit_bzero(k0, sizeof k0);
    explicit_bzero(pad, sizeof pad);
    return rc;
}

#endif

int smx_hmac_sha1(const void *key, size_t keylen, const void *msg, size_t msglen,
                  unsigned char out[SMX_SHA1_LEN])
{
    smx_hmac_sha1_ctx *ctx = smx_hmac_sha1_new();
    int rc;

    if (ctx == NULL)
        return SMX_ENOMEM;
    rc = smx_hmac_sha1_compute(ctx, key, keylen, msg, msglen, out);
    smx_hmac_sha1_free(ctx);
    return rc;
}
