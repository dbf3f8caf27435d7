/* A growable vector of owned C strings. */
#ifndef SSHMUX_STRVEC_H
#define SSHMUX_STRVEC_H

#include <stddef.h>

typedef struct smx_strvec {
    char **v;
    size_t n, cap;
} smx_strvec;

int smx_strvec_push(smx_strvec *sv, const char *s);          /* copies s; 0 or SMX_ENOMEM */
int smx_strvec_push_owned(smx_strvec *sv, char *s);          /* takes ownership of s */
int smx_strvec_contains(const smx_strvec *sv, const char *s);
void smx_strvec_free(smx_strvec *sv);                        /* frees strings and array; zeroes sv */
void smx_strvec_free_wipe(smx_strvec *sv);                   /* same, zeroing each string first
                                                              * (it held secrets) */
/* OpenSSH's freezero for a C string that held a secret: zeroed, then freed. NULL is a no-op. */
void smx_str_wipe_free(char *s);
/* Zeroes len bytes of p (a secret, or memory that held one), then frees it. NULL is fine. */
void smx_wipe_free(void *p, size_t len);

#endif
