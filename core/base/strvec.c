#include "strvec.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

int smx_strvec_push_owned(smx_strvec *sv, char *s)
{
    if (!s)
        return SMX_ENOMEM;
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 8;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return SMX_ENOMEM;
        }
        sv->v = v;
        sv->cap = cap;
    }
    sv->v[sv->n++] = s;
    return 0;
}

int smx_strvec_push(smx_strvec *sv, const char *s)
{
    return smx_strvec_push_owned(sv, strdup(s));
}

int smx_strvec_contains(const smx_strvec *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcmp(sv->v[i], s) == 0)
            return 1;
    return 0;
}

void smx_strvec_free(smx_strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

void smx_strvec_free_wipe(smx_strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        explicit_bzero(sv->v[i], strlen(sv->v[i]));
    smx_strvec_free(sv);
}

void smx_wipe_free(void *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

void smx_str_wipe_free(char *s)
{
    if (s)
        smx_wipe_free(s, strlen(s));
}
