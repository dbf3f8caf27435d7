#include "sessreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* `K='v'; export K; ` for each variable, then the command: POSIX shells (sh, bash, dash, ksh,
 * zsh) all read it, so variables apply even where AcceptEnv refuses them. */
static char *sessreq_command_with_env(const char *cmd, const smx_strvec *env)
{
    size_t len = strlen(cmd) + 1;
    for (size_t i = 0; i < env->n; i++)
        len += strlen(env->v[i]) * 4 + 32;
    char *out = malloc(len);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < env->n; i++) {
        const char *kv = env->v[i];
        const char *eq = strchr(kv, '=');
        size_t klen = (size_t)(eq - kv);
        memcpy(p, kv, klen);
        p += klen;
        *p++ = '=';
        *p++ = '\'';
        for (const char *v = eq + 1; *v; v++) {
            if (*v == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *v;
            }
        }
        p += sprintf(p, "'; export %.*s; ", (int)klen, kv);
    }
    strcpy(p, cmd);
    return out;
}

int smx_sessreq_init(smx_sessreq *r, const smx_sessreq_spec *spec)
{
    memset(r, 0, sizeof *r);
    r->spec = spec;
    r->state = spec->pty ? SMX_SESSREQ_PTY : SMX_SESSREQ_ENV;
    if (spec->kind == SMX_SESSREQ_EXEC &&
        !(r->command = strdup(spec->command ? spec->command : "")))
        return SMX_ENOMEM;
    return 0;
}

void smx_sessreq_free(smx_sessreq *r)
{
    free(r->command);
    r->command = NULL;
}

/* 1 when every variable was sent or the rest go on the command line, 0 pending, <0 failed. */
static int sessreq_env_step(smx_sessreq *r, ssh_channel ch)
{
    const smx_strvec *env = r->spec->env;
    while (env && r->env_pos < env->n && !r->env_refused) {
        const char *kv = env->v[r->env_pos];
        const char *eq = strchr(kv, '=');
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv);
        int rc = ssh_channel_request_env(ch, name, eq + 1);
        if (rc == SSH_AGAIN)
            return 0;
        if (rc == SSH_ERROR) {
            if (!ssh_is_connected(ssh_channel_get_session(ch)))
                return SMX_ECLOSED;
            r->env_refused = 1;   /* the rest go through the command line too */
            break;
        }
        r->env_pos++;
    }
    if (r->env_refused && r->spec->kind == SMX_SESSREQ_EXEC) {
        char *cmd = sessreq_command_with_env(r->spec->command ? r->spec->command : "", env);
        if (!cmd)
            return SMX_ENOMEM;
        free(r->command);
        r->command = cmd;
    }
    return 1;
}

static int sessreq_start(smx_sessreq *r, ssh_channel ch)
{
    switch (r->spec->kind) {
    case SMX_SESSREQ_EXEC:
        return ssh_channel_request_exec(ch, r->command);
    case SMX_SESSREQ_SHELL:
        return ssh_channel_request_shell(ch);
    case SMX_SESSREQ_SUBSYSTEM:
        return ssh_channel_request_subsystem(ch, r->spec->command);
    }
    return SSH_ERROR;
}

static int sessreq_refused(smx_sessreq *r, ssh_channel ch, const char *what)
{
    r->refused = what;
    r->state = SMX_SESSREQ_REFUSED;
    return ssh_is_connected(ssh_channel_get_session(ch)) ? SMX_ECHANNEL : SMX_ECLOSED;
}

int smx_sessreq_step(smx_sessreq *r, ssh_channel ch)
{
    const smx_sessreq_spec *sp = r->spec;
    static const char *const start_names[] = {"exec request", "shell request",
                                              "subsystem request"};
    int rc;
    for (;;) {
        switch (r->state) {
        case SMX_SESSREQ_PTY:
            if (sp->modes)
                rc = ssh_channel_request_pty_size_modes(ch, sp->term ? sp->term : "xterm",
                                                        sp->cols ? sp->cols : 80,
                                                        sp->rows ? sp->rows : 24, sp->modes,
                                                        sp->modes_len);
            else
                rc = ssh_channel_request_pty_size(ch, sp->term ? sp->term : "xterm",
                                                  sp->cols ? sp->cols : 80,
                                                  sp->rows ? sp->rows : 24);
            if (rc == SSH_AGAIN)
                return 0;
            if (rc != SSH_OK)
                return sessreq_refused(r, ch, "pty request");
            r->state = SMX_SESSREQ_ENV;
            break;
        case SMX_SESSREQ_ENV:
            rc = sessreq_env_step(r, ch);
            if (rc <= 0) {
                if (rc < 0) {
                    r->state = SMX_SESSREQ_REFUSED;
                    r->refused = "env request";
                }
                return rc;
            }
            r->state = SMX_SESSREQ_START;
            break;
        case SMX_SESSREQ_START:
            rc = sessreq_start(r, ch);
            if (rc == SSH_AGAIN)
                return 0;
            if (rc != SSH_OK)
                return sessreq_refused(r, ch, start_names[sp->kind]);
            r->state = SMX_SESSREQ_STARTED;
            return 1;
        case SMX_SESSREQ_STARTED:
            return 1;
        case SMX_SESSREQ_REFUSED:
            return SMX_ECHANNEL;
        }
    }
}

void smx_sessreq_refusal(const smx_sessreq *r, ssh_channel ch, char *out, size_t len)
{
    snprintf(out, len, "%s refused: %s", r->refused ? r->refused : "request",
             ssh_get_error(ssh_channel_get_session(ch)));
}
