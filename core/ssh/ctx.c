#include "ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "auth.h"
#include "gate.h"
#include "hostkey.h"

int smx_ctx_init(smx_ctx *ctx, uv_loop_t *loop, const smx_ctx_opts *o, int handshake_initial,
                 int handshake_max)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->loop = loop;
    ctx->opts = *o;
    ctx->gates = smx_gates_new(handshake_initial, handshake_max);
    ctx->keyring = smx_keyring_new();
    ctx->agents = smx_agents_new(loop);
    ctx->hostkeys = smx_hostkeys_new();
    ctx->kbd = smx_kbd_new(loop, o->interactive, o->prompt_timeout_ms);
    if (!ctx->gates || !ctx->keyring || !ctx->agents || !ctx->hostkeys || !ctx->kbd)
        return SMX_ENOMEM;
    /* Without SSH_OPTIONS_SSH_DIR, every session's ssh_connect looks the user up in the
     * password database (getpwuid_r: nsswitch.conf and /etc/passwd opened and read, 6 system
     * calls) to find ~/.ssh. libssh only uses it for the known_hosts file that orders host key
     * algorithms; "~" is $HOME here as everywhere in sshmux's configuration. */
    const char *home = getenv("HOME");
    if (home && home[0] == '/') {
        size_t n = strlen(home) + sizeof "/.ssh";
        if (!(ctx->ssh_dir = malloc(n)))
            return SMX_ENOMEM;
        snprintf(ctx->ssh_dir, n, "%s/.ssh", home);
    }
    return 0;
}

void smx_ctx_quiesce(smx_ctx *ctx)
{
    if (ctx->agents)
        smx_agents_close_all(ctx->agents);
}

void smx_ctx_close(smx_ctx *ctx)
{
    smx_agents_free(ctx->agents);
    smx_gates_free(ctx->gates);
    smx_keyring_free(ctx->keyring);
    smx_secret_wipe(&ctx->password);
    smx_hostkeys_free(ctx->hostkeys);
    smx_kbd_free(ctx->kbd);
    free(ctx->ssh_dir);
    memset(ctx, 0, sizeof *ctx);
}
