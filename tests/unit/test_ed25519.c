/* Ed25519 signatures of the patched libssh (scripts/libssh-patches/0010: libsodium in the
 * OpenSSL build; libssh's own code in the mbedTLS build).
 *
 * The integration tests only show that valid signatures pass: sshd accepts the user key's,
 * and sshmux accepts sshd's host key signatures. A verify that accepted anything would pass
 * them too, so this test signs with libssh's internal signing function and checks that its
 * verify refuses a changed message, a changed signature and another key's signature, and
 * (OpenSSL build) that OpenSSL's own Ed25519 accepts what was signed. pki_sign_data and
 * pki_verify_data_signature are libssh internals, reachable because libssh is linked in
 * statically; their prototypes are copied here (include/libssh/pki_priv.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>

#ifdef SSHMUX_CRYPTO_OPENSSL
#include <openssl/evp.h>
#endif

typedef struct ssh_signature_struct *ssh_signature;
ssh_signature pki_sign_data(const ssh_key privkey, int hash_type, const unsigned char *input,
                            size_t input_len);
int pki_verify_data_signature(ssh_signature signature, const ssh_key pubkey,
                              const unsigned char *input, size_t input_len);
int ssh_pki_export_signature_blob(const ssh_signature sign, ssh_string *sign_blob);
int ssh_pki_import_signature_blob(const ssh_string sig_blob, const ssh_key pubkey,
                                  ssh_signature *psig);
int ssh_pki_export_pubkey_blob(const ssh_key key, ssh_string *pblob);
void ssh_signature_free(ssh_signature sign);

#define SSH_DIGEST_AUTO 0

static const unsigned char msg[] = "the bytes RFC 4252 section 7 signs, or an exchange hash";

typedef struct keys {
    ssh_key priv, pub, other_pub;
} keys;

static int setup(void **state)
{
    keys *k = calloc(1, sizeof *k);
    ssh_key other = NULL;

    if (!k || ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &k->priv) != SSH_OK ||
        ssh_pki_export_privkey_to_pubkey(k->priv, &k->pub) != SSH_OK ||
        ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &other) != SSH_OK ||
        ssh_pki_export_privkey_to_pubkey(other, &k->other_pub) != SSH_OK)
        return -1;
    ssh_key_free(other);
    *state = k;
    return 0;
}

static int teardown(void **state)
{
    keys *k = *state;

    ssh_key_free(k->priv);
    ssh_key_free(k->pub);
    ssh_key_free(k->other_pub);
    free(k);
    return 0;
}

/* The signature's 64 raw bytes: the last ones of its blob (string type, string signature). */
static ssh_string sign_blob(const keys *k, const unsigned char *m, size_t len)
{
    ssh_signature sig = pki_sign_data(k->priv, SSH_DIGEST_AUTO, m, len);
    ssh_string blob = NULL;

    assert_non_null(sig);
    assert_int_equal(ssh_pki_export_signature_blob(sig, &blob), SSH_OK);
    ssh_signature_free(sig);
    assert_true(ssh_string_len(blob) >= 64);
    return blob;
}

static int verify_blob(const ssh_key pub, ssh_string blob, const unsigned char *m, size_t len)
{
    ssh_signature sig = NULL;
    int rc;

    assert_int_equal(ssh_pki_import_signature_blob(blob, pub, &sig), SSH_OK);
    rc = pki_verify_data_signature(sig, pub, m, len);
    ssh_signature_free(sig);
    return rc;
}

static void test_sign_verify(void **state)
{
    keys *k = *state;
    ssh_string blob = sign_blob(k, msg, sizeof msg);
    ssh_string again = sign_blob(k, msg, sizeof msg);

    assert_int_equal(verify_blob(k->pub, blob, msg, sizeof msg), SSH_OK);
    /* RFC 8032 signatures are deterministic. */
    assert_memory_equal(ssh_string_data(blob), ssh_string_data(again), ssh_string_len(blob));
    ssh_string_free(blob);
    ssh_string_free(again);
}

static void test_refusals(void **state)
{
    keys *k = *state;
    ssh_string blob = sign_blob(k, msg, sizeof msg);
    unsigned char changed[sizeof msg];
    unsigned char *raw = (unsigned char *)ssh_string_data(blob) + ssh_string_len(blob) - 64;

    memcpy(changed, msg, sizeof msg);
    changed[3] ^= 1;
    assert_int_not_equal(verify_blob(k->pub, blob, changed, sizeof changed), SSH_OK);
    assert_int_not_equal(verify_blob(k->pub, blob, msg, sizeof msg - 1), SSH_OK);
    assert_int_not_equal(verify_blob(k->other_pub, blob, msg, sizeof msg), SSH_OK);
    raw[10] ^= 0x40;                                    /* in R */
    assert_int_not_equal(verify_blob(k->pub, blob, msg, sizeof msg), SSH_OK);
    raw[10] ^= 0x40;
    raw[40] ^= 0x01;                                    /* in S */
    assert_int_not_equal(verify_blob(k->pub, blob, msg, sizeof msg), SSH_OK);
    raw[40] ^= 0x01;
    assert_int_equal(verify_blob(k->pub, blob, msg, sizeof msg), SSH_OK);
    ssh_string_free(blob);
}

/* What libssh signs, OpenSSL's own Ed25519 accepts (and refuses once the message changes). */
static void test_openssl_agrees(void **state)
{
#ifdef SSHMUX_CRYPTO_OPENSSL
    keys *k = *state;
    ssh_string blob = sign_blob(k, msg, sizeof msg), kblob = NULL;
    const unsigned char *raw = (const unsigned char *)ssh_string_data(blob) +
                               ssh_string_len(blob) - 64;
    unsigned char changed[sizeof msg];

    assert_int_equal(ssh_pki_export_pubkey_blob(k->pub, &kblob), SSH_OK);
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, NULL,
        (const unsigned char *)ssh_string_data(kblob) + ssh_string_len(kblob) - 32, 32);
    assert_non_null(pk);
    for (int round = 0; round < 2; round++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        memcpy(changed, msg, sizeof msg);
        changed[0] ^= (unsigned char)round;
        assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk), 1);
        assert_int_equal(EVP_DigestVerify(ctx, raw, 64, changed, sizeof changed), round == 0);
        EVP_MD_CTX_free(ctx);
    }
    EVP_PKEY_free(pk);
    ssh_string_free(kblob);
    ssh_string_free(blob);
#else
    (void)state;
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_openssl_agrees),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
